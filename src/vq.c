// SPDX-License-Identifier: MIT
/*
 * Virtqueue dispatchers: the public vshm_drv_vq_* / vshm_dev_vq_* calls,
 * routed to the layout the queue was created with (split, packed), plus
 * what is the same for every layout (kick, complete, batches, counters).
 */
#include <errno.h>

#include "vq_internal.h"

/* ---- driver side ------------------------------------------------------- */

int vshm_drv_vq_create(struct vshm_drv_vq **out, struct vshm_window *w,
		       const struct vshm_vq_layout *l, uint64_t features,
		       const struct vshm_vq_notify *notify)
{
	int rc;

	if ((features >> VSHM_F_FIFO_RING) & 1)
		rc = vq_fifo_drv_create(out, w, l, features);
	else if ((features >> VSHM_F_RING_PACKED) & 1)
		rc = vq_packed_drv_create(out, w, l, features);
	else
		rc = vq_split_drv_create(out, w, l, features);
	if (rc == 0 && notify)
		vq_drv_common(*out)->notify = *notify;
	return rc;
}

void vshm_drv_vq_destroy(struct vshm_drv_vq *vq)
{
	if (vq)
		vq_drv_common(vq)->ops.drv->destroy(vq);
}

int vshm_drv_vq_add_ex(struct vshm_drv_vq *vq, const struct vshm_sg *sg,
		       unsigned nout, unsigned nin, void *cookie, unsigned flags)
{
	if (vq_drv_common(vq)->broken)
		return -EIO;
	return vq_drv_common(vq)->ops.drv->add(vq, sg, nout, nin, cookie, flags);
}

int vshm_drv_vq_add(struct vshm_drv_vq *vq, const struct vshm_sg *sg,
		    unsigned nout, unsigned nin, void *cookie)
{
	return vshm_drv_vq_add_ex(vq, sg, nout, nin, cookie, 0);
}

int vshm_drv_vq_publish(struct vshm_drv_vq *vq)
{
	if (vq_drv_common(vq)->broken)
		return -EIO;
	return vq_drv_common(vq)->ops.drv->publish(vq);
}

int vshm_drv_vq_kick(struct vshm_drv_vq *vq)
{
	struct vq_common *c = vq_drv_common(vq);
	int need = vshm_drv_vq_publish(vq);

	if (need > 0 && c->notify.notify) {
		c->stats.notifies++;
		return c->notify.notify(c->notify.ctx) < 0 ? -EIO : 1;
	}
	return need;
}

int vshm_drv_vq_harvest_batch(struct vshm_drv_vq *vq, void **cookies,
			      uint32_t *lens, unsigned max)
{
	if (vq_drv_common(vq)->broken)
		return -EIO;
	return vq_drv_common(vq)->ops.drv->harvest_batch(vq, cookies, lens, max);
}

int vshm_drv_vq_harvest(struct vshm_drv_vq *vq, void **cookie, uint32_t *len)
{
	return vshm_drv_vq_harvest_batch(vq, cookie, len, 1);
}

int vshm_drv_vq_enable_cb(struct vshm_drv_vq *vq)
{
	if (vq_drv_common(vq)->broken)
		return -EIO;
	return vq_drv_common(vq)->ops.drv->enable_cb(vq);
}

void vshm_drv_vq_disable_cb(struct vshm_drv_vq *vq)
{
	if (!vq_drv_common(vq)->broken)
		vq_drv_common(vq)->ops.drv->disable_cb(vq);
}

void *vshm_drv_vq_detach_unused(struct vshm_drv_vq *vq)
{
	/* Works on a broken queue: that is how outstanding requests fail. */
	return vq_drv_common(vq)->ops.drv->detach_unused(vq);
}

/* The layout resets its ring; the common state is cleared here, once. */
int vshm_drv_vq_reset(struct vshm_drv_vq *vq)
{
	struct vq_common *c = vq_drv_common(vq);
	int rc = c->ops.drv->reset(vq);

	if (rc == 0) {
		c->broken = false;
		c->error = NULL;
		c->stats = (struct vshm_vq_stats){ 0 };
	}
	return rc;
}

bool vshm_drv_vq_broken(const struct vshm_drv_vq *vq) { return vq_drv_common(vq)->broken; }
const char *vshm_drv_vq_error(const struct vshm_drv_vq *vq) { return vq_drv_common(vq)->error; }
unsigned vshm_drv_vq_num_free(const struct vshm_drv_vq *vq) { return vq_drv_common(vq)->ops.drv->num_free(vq); }
unsigned vshm_drv_vq_inflight(const struct vshm_drv_vq *vq) { return vq_drv_common(vq)->ops.drv->inflight(vq); }

void vshm_drv_vq_stats(const struct vshm_drv_vq *vq, struct vshm_vq_stats *s)
{
	*s = vq_drv_common(vq)->stats;
}

/* ---- device side ------------------------------------------------------- */

int vshm_dev_vq_create(struct vshm_dev_vq **out, const struct vshm_window *w,
		       const struct vshm_vq_layout *l, uint64_t features,
		       const struct vshm_vq_notify *notify)
{
	int rc;

	if ((features >> VSHM_F_FIFO_RING) & 1)
		rc = vq_fifo_dev_create(out, w, l, features);
	else if ((features >> VSHM_F_RING_PACKED) & 1)
		rc = vq_packed_dev_create(out, w, l, features);
	else
		rc = vq_split_dev_create(out, w, l, features);
	if (rc == 0 && notify)
		vq_dev_common(*out)->notify = *notify;
	return rc;
}

void vshm_dev_vq_destroy(struct vshm_dev_vq *vq)
{
	if (vq)
		vq_dev_common(vq)->ops.dev->destroy(vq);
}

int vshm_dev_vq_pop(struct vshm_dev_vq *vq, struct vshm_chain *c,
		    struct vshm_iov *iov, unsigned max_iov)
{
	if (vq_dev_common(vq)->broken)
		return -EIO;
	return vq_dev_common(vq)->ops.dev->pop(vq, c, iov, max_iov);
}

int vshm_dev_vq_pop_batch(struct vshm_dev_vq *vq, struct vshm_chain *c,
			  unsigned n, struct vshm_iov *iov, unsigned iov_per)
{
	unsigned k;
	int rc;

	for (k = 0; k < n; k++) {
		rc = vshm_dev_vq_pop(vq, &c[k], iov + (size_t)k * iov_per, iov_per);
		if (rc < 0)
			return rc;
		if (rc == 0)
			break;
	}
	return (int)k;
}

int vshm_dev_vq_push(struct vshm_dev_vq *vq, uint16_t head, uint32_t written)
{
	if (vq_dev_common(vq)->broken)
		return -EIO;
	return vq_dev_common(vq)->ops.dev->push(vq, head, written);
}

int vshm_dev_vq_inject_used(struct vshm_dev_vq *vq, uint32_t id, uint32_t len)
{
	struct vq_common *c = vq_dev_common(vq);

	if (c->broken)
		return -EIO;
	if (!c->ops.dev->inject_used)
		return -EOPNOTSUPP;
	return c->ops.dev->inject_used(vq, id, len);
}

int vshm_dev_vq_publish(struct vshm_dev_vq *vq)
{
	if (vq_dev_common(vq)->broken)
		return -EIO;
	return vq_dev_common(vq)->ops.dev->publish(vq);
}

int vshm_dev_vq_complete(struct vshm_dev_vq *vq)
{
	struct vq_common *c = vq_dev_common(vq);
	int need = vshm_dev_vq_publish(vq);

	if (need > 0 && c->notify.notify) {
		c->stats.notifies++;
		return c->notify.notify(c->notify.ctx) < 0 ? -EIO : 1;
	}
	return need;
}

int vshm_dev_vq_enable_notify(struct vshm_dev_vq *vq)
{
	if (vq_dev_common(vq)->broken)
		return -EIO;
	return vq_dev_common(vq)->ops.dev->enable_notify(vq);
}

void vshm_dev_vq_disable_notify(struct vshm_dev_vq *vq)
{
	if (!vq_dev_common(vq)->broken)
		vq_dev_common(vq)->ops.dev->disable_notify(vq);
}

bool vshm_dev_vq_broken(const struct vshm_dev_vq *vq) { return vq_dev_common(vq)->broken; }
const char *vshm_dev_vq_error(const struct vshm_dev_vq *vq) { return vq_dev_common(vq)->error; }

void vshm_dev_vq_stats(const struct vshm_dev_vq *vq, struct vshm_vq_stats *s)
{
	*s = vq_dev_common(vq)->stats;
}
