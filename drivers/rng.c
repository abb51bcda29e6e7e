// SPDX-License-Identifier: MIT
/* virtio-rng driver in user space: writable buffers, filled by the device. */
#include <errno.h>
#include <stdlib.h>

#include <vshm/devmodel.h>
#include <vshm/drivers.h>
#include "wait_one.h"

#define CHUNK (64u << 10)	/* bytes per request */

struct vshm_rngdrv {
	struct vshm_drv_dev *dev;
	struct vshm_drv_vq *vq;
	struct vshm_bounce_pool *pool;
	int64_t timeout_ns;	/* bound on one request */
	int stuck;		/* a request timed out: its buffer stays mapped */
};

int vshm_rngdrv_open(struct vshm_drv *d, uint16_t dev_num, struct vshm_rngdrv **out)
{
	struct vshm_rngdrv *r = calloc(1, sizeof(*r));
	int rc;

	*out = NULL;
	if (!r)
		return -ENOMEM;
	rc = vshm_drv_dev_init(d, dev_num, VSHM_VIRTIO_ID_RNG, 0, &r->dev);
	if (!rc)
		rc = vshm_drv_dev_setup_vq(r->dev, 0, 8, 0, &r->vq);
	if (!rc)
		rc = vshm_drv_dev_ready(r->dev);
	if (rc) {
		vshm_drv_dev_destroy(r->dev);
		free(r);
		return rc;
	}
	r->pool = vshm_drv_dev_pool(r->dev);
	r->timeout_ns = DRV_TIMEOUT_NS;
	*out = r;
	return 0;
}

void vshm_rngdrv_set_timeout(struct vshm_rngdrv *r, int64_t timeout_ns)
{
	r->timeout_ns = timeout_ns > 0 ? timeout_ns : DRV_TIMEOUT_NS;
}

int vshm_rngdrv_read(struct vshm_rngdrv *r, void *buf, size_t len)
{
	uint8_t *p = buf;

	if (r->stuck)
		return -EIO;
	while (len) {
		size_t n = len < CHUNK ? len : CHUNK;
		struct vshm_bounce_map m;
		struct vshm_sg sg[4];
		void *ck;
		uint32_t got = 0;
		int nseg, rc;

		nseg = vshm_bounce_map(r->pool, p, n, VSHM_DMA_FROM_DEVICE, &m, sg, 4);
		if (nseg < 0)
			return nseg;
		if (vshm_drv_vq_add(r->vq, sg, 0, (unsigned)nseg, &m) || vshm_drv_vq_kick(r->vq) < 0) {
			vshm_bounce_unmap(r->pool, &m, 0);
			return -EIO;
		}
		rc = drv_wait_one(r->dev, r->vq, 0, r->timeout_ns, &ck, &got);
		if (rc == -ETIMEDOUT) {
			r->stuck = 1;
			return rc;
		}
		if (rc != 1) {
			vshm_drv_vq_detach_unused(r->vq);
			vshm_bounce_unmap(r->pool, &m, 0);
			return -EIO;
		}
		vshm_bounce_unmap(r->pool, &m, got);
		if (got == 0)
			return -EIO;	/* a device that gives nothing would loop us forever */
		p += got;
		len -= got;
	}
	return 0;
}

void vshm_rngdrv_close(struct vshm_rngdrv *r)
{
	if (!r)
		return;
	vshm_drv_dev_destroy(r->dev);
	free(r);
}
