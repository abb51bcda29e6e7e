/* SPDX-License-Identifier: MIT */
/*
 * Inside the virtqueue layer: each ring layout (split, packed, fifo)
 * implements these ops; include/vshm/vq.h's functions dispatch through
 * them.  Every queue struct starts with the common part, so the dispatchers
 * and the generic helpers reach it without knowing the layout.
 */
#ifndef VSHM_VQ_INTERNAL_H
#define VSHM_VQ_INTERNAL_H

#include <vshm/vq.h>

#define VSHM_VQ_FMT_SPLIT	0
#define VSHM_VQ_FMT_PACKED	1
#define VSHM_VQ_FMT_FIFO	2

struct vq_drv_ops;
struct vq_dev_ops;

/* The first member of every driver- or device-side queue. */
struct vq_common {
	int format;			/* VSHM_VQ_FMT_* */
	bool broken;			/* sticky: -EIO from then on */
	const char *error;		/* why it broke (static string) */
	struct vshm_vq_notify notify;	/* how we wake the peer */
	struct vshm_vq_stats stats;
	union {
		const struct vq_drv_ops *drv;
		const struct vq_dev_ops *dev;
	} ops;
};

struct vq_drv_ops {
	int (*add)(struct vshm_drv_vq *vq, const struct vshm_sg *sg, unsigned nout,
		   unsigned nin, void *cookie, unsigned flags);
	int (*publish)(struct vshm_drv_vq *vq);
	int (*harvest_batch)(struct vshm_drv_vq *vq, void **cookies, uint32_t *lens, unsigned max);
	int (*enable_cb)(struct vshm_drv_vq *vq);
	void (*disable_cb)(struct vshm_drv_vq *vq);
	void *(*detach_unused)(struct vshm_drv_vq *vq);
	int (*reset)(struct vshm_drv_vq *vq);
	unsigned (*num_free)(const struct vshm_drv_vq *vq);
	unsigned (*inflight)(const struct vshm_drv_vq *vq);
	void (*destroy)(struct vshm_drv_vq *vq);
};

struct vq_dev_ops {
	int (*pop)(struct vshm_dev_vq *vq, struct vshm_chain *c, struct vshm_iov *iov, unsigned max_iov);
	int (*push)(struct vshm_dev_vq *vq, uint16_t head, uint32_t written);
	int (*inject_used)(struct vshm_dev_vq *vq, uint32_t id, uint32_t len);	/* NULL: none */
	int (*publish)(struct vshm_dev_vq *vq);
	int (*enable_notify)(struct vshm_dev_vq *vq);
	void (*disable_notify)(struct vshm_dev_vq *vq);
	void (*destroy)(struct vshm_dev_vq *vq);
};

static inline struct vq_common *vq_drv_common(const struct vshm_drv_vq *vq)
{
	return (struct vq_common *)(void *)vq;
}

static inline struct vq_common *vq_dev_common(const struct vshm_dev_vq *vq)
{
	return (struct vq_common *)(void *)vq;
}

/* Mark broken (first reason wins) and return -EIO. */
static inline int vq_fail(struct vq_common *c, const char *why)
{
	if (!c->broken) {
		c->broken = true;
		c->error = why;
	}
	return -EIO;
}

/*
 * A chain the caller wants to add: every buffer inside the driver area,
 * at most 2^32 bytes in all, the writable part's total (returned in
 * *in_total) fitting a used length.  1 if so, 0 if not.
 */
static inline int vq_sg_ok(const struct vshm_window *w, const struct vshm_sg *sg,
			   unsigned n, unsigned nout, uint64_t *in_total)
{
	uint64_t total = 0, in = 0;

	for (unsigned i = 0; i < n; i++) {
		if (!vshm_win_range_ok(w, sg[i].off, sg[i].len))
			return 0;
		total += sg[i].len;
		if (i >= nout)
			in += sg[i].len;
	}
	if (total > (1ull << 32) || in > UINT32_MAX)
		return 0;
	*in_total = in;
	return 1;
}

/* Layout constructors. */
int vq_split_drv_create(struct vshm_drv_vq **out, struct vshm_window *w,
			const struct vshm_vq_layout *l, uint64_t features);
int vq_split_dev_create(struct vshm_dev_vq **out, const struct vshm_window *w,
			const struct vshm_vq_layout *l, uint64_t features);
int vq_packed_drv_create(struct vshm_drv_vq **out, struct vshm_window *w,
			 const struct vshm_vq_layout *l, uint64_t features);
int vq_packed_dev_create(struct vshm_dev_vq **out, const struct vshm_window *w,
			 const struct vshm_vq_layout *l, uint64_t features);
int vq_fifo_drv_create(struct vshm_drv_vq **out, struct vshm_window *w,
		       const struct vshm_vq_layout *l, uint64_t features);
int vq_fifo_dev_create(struct vshm_dev_vq **out, const struct vshm_window *w,
		       const struct vshm_vq_layout *l, uint64_t features);

#endif
