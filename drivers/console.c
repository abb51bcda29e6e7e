// SPDX-License-Identifier: MIT
/*
 * virtio-console driver in user space (single port, no MULTIPORT):
 * queue 0 receives (we keep writable buffers posted), queue 1 transmits.
 * Receive buffers are coherent window memory from the bounce pool.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vshm/devmodel.h>
#include <vshm/drivers.h>
#include "wait_one.h"

#define RXBUFS	8
#define RXSIZE	4096u

struct rxbuf {
	struct vshm_sg sg;	/* window memory, ours */
	uint32_t len;		/* bytes received, not yet read */
	uint32_t pos;
};

struct vshm_condrv {
	struct vshm_drv_dev *dev;
	struct vshm_drv_vq *rxq, *txq;
	struct vshm_bounce_pool *pool;
	struct vshm_window *w;
	struct rxbuf rx[RXBUFS];
	unsigned head;		/* next rx buffer to read from, in completion order */
	unsigned ready[RXBUFS];	/* completed buffers in order */
	unsigned nready;
	int64_t timeout_ns;	/* bound on one transmit */
	int stuck;		/* a transmit timed out: its buffer stays mapped */
};

static int post_rx(struct vshm_condrv *c, unsigned i)
{
	c->rx[i].len = c->rx[i].pos = 0;
	if (vshm_drv_vq_add(c->rxq, &c->rx[i].sg, 0, 1, &c->rx[i]))
		return -EIO;
	return vshm_drv_vq_kick(c->rxq) < 0 ? -EIO : 0;
}

int vshm_condrv_open(struct vshm_drv *d, uint16_t dev_num, struct vshm_condrv **out)
{
	struct vshm_condrv *c = calloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	rc = vshm_drv_dev_init(d, dev_num, VSHM_VIRTIO_ID_CONSOLE, 0, &c->dev);
	if (!rc)
		rc = vshm_drv_dev_setup_vq(c->dev, 0, 16, 0, &c->rxq);
	if (!rc)
		rc = vshm_drv_dev_setup_vq(c->dev, 1, 16, 0, &c->txq);
	if (rc)
		goto fail;
	c->pool = vshm_drv_dev_pool(c->dev);
	c->w = vshm_drv_dev_window(c->dev);
	c->timeout_ns = DRV_TIMEOUT_NS;
	for (unsigned i = 0; i < RXBUFS && !rc; i++) {
		rc = vshm_bounce_alloc(c->pool, RXSIZE, &c->rx[i].sg);
		if (rc >= 0)
			rc = 0;
	}
	if (!rc)
		rc = vshm_drv_dev_ready(c->dev);
	for (unsigned i = 0; i < RXBUFS && !rc; i++)
		rc = post_rx(c, i);
	if (rc)
		goto fail;
	*out = c;
	return 0;
fail:
	vshm_drv_dev_destroy(c->dev);
	free(c);
	return rc;
}

void vshm_condrv_set_timeout(struct vshm_condrv *c, int64_t timeout_ns)
{
	c->timeout_ns = timeout_ns > 0 ? timeout_ns : DRV_TIMEOUT_NS;
}

int vshm_condrv_write(struct vshm_condrv *c, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	if (c->stuck)
		return -EIO;
	while (len) {
		size_t n = len < 65536 ? len : 65536;
		struct vshm_bounce_map m;
		struct vshm_sg sg[4];
		void *ck;
		uint32_t got;
		int nseg, rc;

		nseg = vshm_bounce_map(c->pool, (void *)p, n, VSHM_DMA_TO_DEVICE, &m, sg, 4);
		if (nseg < 0)
			return nseg;
		if (vshm_drv_vq_add(c->txq, sg, (unsigned)nseg, 0, &m) || vshm_drv_vq_kick(c->txq) < 0) {
			vshm_bounce_unmap(c->pool, &m, 0);
			return -EIO;
		}
		rc = drv_wait_one(c->dev, c->txq, 1, c->timeout_ns, &ck, &got);
		if (rc == -ETIMEDOUT) {
			c->stuck = 1;
			return rc;
		}
		if (rc != 1) {
			vshm_drv_vq_detach_unused(c->txq);
			vshm_bounce_unmap(c->pool, &m, 0);
			return -EIO;
		}
		vshm_bounce_unmap(c->pool, &m, 0);
		p += n;
		len -= n;
	}
	return 0;
}

long vshm_condrv_read(struct vshm_condrv *c, void *buf, size_t len, int64_t timeout_ns)
{
	int64_t deadline = drv_now_ns() + timeout_ns;
	size_t copied = 0;

	for (;;) {
		void *ck;
		uint32_t got;
		int rc;

		while ((rc = vshm_drv_vq_harvest(c->rxq, &ck, &got)) == 1) {
			struct rxbuf *r = ck;

			r->len = got;	/* checked against RXSIZE by the ring */
			c->ready[c->nready++] = (unsigned)(r - c->rx);
		}
		if (rc < 0)
			return -EIO;
		while (c->nready && copied < len) {
			struct rxbuf *r = &c->rx[c->ready[0]];
			size_t n = r->len - r->pos < len - copied ? r->len - r->pos : len - copied;

			memcpy((uint8_t *)buf + copied, c->w->base + r->sg.off + r->pos, n);
			r->pos += (uint32_t)n;
			copied += n;
			if (r->pos == r->len) {
				unsigned i = c->ready[0];

				memmove(c->ready, c->ready + 1, (c->nready - 1) * sizeof(c->ready[0]));
				c->nready--;
				if (post_rx(c, i))
					return copied ? (long)copied : -EIO;
			}
		}
		if (copied)
			return (long)copied;
		if (drv_now_ns() >= deadline)
			return 0;
		if (vshm_drv_vq_enable_cb(c->rxq) == 0 &&
		    vshm_drv_dev_wait(c->dev, 0, deadline - drv_now_ns()) == -EIO)
			return -EIO;
	}
}

void vshm_condrv_close(struct vshm_condrv *c)
{
	if (!c)
		return;
	vshm_drv_dev_destroy(c->dev);
	free(c);
}
