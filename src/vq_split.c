// SPDX-License-Identifier: MIT
/*
 * Split virtqueue (virtio 1.x section 2.7), both sides.
 *
 * Ownership of ring memory, and therefore who may be trusted about what:
 *
 *   descriptor table, indirect tables ... written by the driver only
 *   avail ring (flags, idx, ring, used_event) ... written by the driver only
 *   used ring (flags, idx, ring, avail_event) ... written by the device only
 *
 * The driver never reads back its own descriptors: chain links and lengths
 * are mirrored in private arrays.  The only device-written values it loads
 * are used->idx, used elements and avail_event/used->flags, each once.
 * The device loads every driver-written word once into a local, validates
 * it, and only then uses it.
 *
 * Memory-ordering labels (docs/memory-model.md has the table):
 *   S1  driver: release store of avail->idx  — pairs with S2
 *   S2  device: acquire load of avail->idx   — pairs with S1
 *   S3  device: release store of used->idx   — pairs with S4
 *   S4  driver: acquire load of used->idx    — pairs with S3
 *   F1  driver: full fence between publishing avail->idx and reading
 *       avail_event / used->flags            — pairs with F2
 *   F2  device: full fence between writing avail_event / used->flags and
 *       re-reading avail->idx                — pairs with F1
 *   F3  device: full fence between publishing used->idx and reading
 *       used_event / avail->flags            — pairs with F4
 *   F4  driver: full fence between writing used_event / avail->flags and
 *       re-reading used->idx                 — pairs with F3
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <vshm/vq.h>
#include "barrier.h"
#include "vq_internal.h"

/* ======================================================================== */
/* Generic helpers                                                          */

static inline uint64_t align_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) & ~(a - 1);
}

static int num_ok(uint32_t num)
{
	return num >= 1 && num <= VSHM_VQ_MAX_SIZE && !(num & (num - 1));
}

static int has(uint64_t features, int bit)
{
	return (features >> bit) & 1;
}

int64_t vshm_vq_layout_split(struct vshm_vq_layout *l, uint64_t base,
			     uint32_t num, uint32_t indirect_max)
{
	uint64_t p;

	if (!num_ok(num) || indirect_max > VSHM_VQ_MAX_SIZE)
		return -EINVAL;
	memset(l, 0, sizeof(*l));
	l->num = num;
	p = align_up(base, VSHM_CACHELINE);
	l->desc = p;
	p += VSHM_VRING_DESC_BYTES(num);
	l->avail = p;
	p += VSHM_VRING_AVAIL_BYTES(num);
	p = align_up(p, VSHM_CACHELINE);
	l->used = p;
	p += VSHM_VRING_USED_BYTES(num);
	if (indirect_max) {
		p = align_up(p, VSHM_CACHELINE);
		l->indirect = p;
		l->indirect_max = indirect_max;
		p += (uint64_t)num * indirect_max * sizeof(struct vshm_vring_desc);
	}
	p = align_up(p, VSHM_CACHELINE);
	return (int64_t)(p - base);
}

/* Translate and check a whole ring layout against the window. */
struct ring_ptrs {
	struct vshm_vring_desc *desc;
	struct vshm_vring_avail *avail;
	struct vshm_vring_used *used;
	vshm_le16 *used_event;	/* trailing word of the avail ring */
	vshm_le16 *avail_event;	/* trailing word of the used ring */
};

/* Do [a, a + alen) and [b, b + blen) share a byte?  (Both lie in the window.) */
static int overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

static int map_ring(const struct vshm_window *w, const struct vshm_vq_layout *l,
		    struct ring_ptrs *r)
{
	uint32_t num = l->num;

	if (!num_ok(num))
		return -EINVAL;
	if ((l->desc & 15) || (l->avail & 1) || (l->used & 3))
		return -EINVAL;
	r->desc = vshm_win_ptr(w, l->desc, VSHM_VRING_DESC_BYTES(num));
	r->avail = vshm_win_ptr(w, l->avail, VSHM_VRING_AVAIL_BYTES(num));
	r->used = vshm_win_ptr(w, l->used, VSHM_VRING_USED_BYTES(num));
	if (!r->desc || !r->avail || !r->used)
		return -EINVAL;
	/*
	 * The three areas must not share bytes: the used ring has another
	 * writer, and the device would load a descriptor's bytes again as
	 * an avail entry within one pop (a double fetch).
	 */
	if (overlap(l->desc, VSHM_VRING_DESC_BYTES(num), l->avail, VSHM_VRING_AVAIL_BYTES(num)) ||
	    overlap(l->desc, VSHM_VRING_DESC_BYTES(num), l->used, VSHM_VRING_USED_BYTES(num)) ||
	    overlap(l->avail, VSHM_VRING_AVAIL_BYTES(num), l->used, VSHM_VRING_USED_BYTES(num)))
		return -EINVAL;
	r->used_event = &r->avail->ring[num];
	r->avail_event = (vshm_le16 *)(void *)&r->used->ring[num];
	return 0;
}

/* ======================================================================== */
/* Split ring: driver side                                                  */

/* Private per-descriptor state; index = descriptor id. */
struct drv_desc_state {
	void *cookie;		/* non-NULL on a head in flight */
	uint32_t in_len;	/* writable bytes posted in the chain */
	uint16_t ndesc;		/* descriptors of the chain in the table */
	uint8_t head;		/* 1 on the head of a chain in flight */
	uint8_t published;	/* 1 once the device may see it */
};

struct vshm_drv_vq {
	struct vq_common c;	/* first: format, broken, error, notify, stats */
	struct vshm_window *w;
	struct ring_ptrs r;
	struct vshm_vq_layout l;
	struct vshm_vring_desc *indirect;	/* num tables, or NULL */
	uint32_t num;
	uint32_t mask;
	bool event_idx;		/* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool cb_enabled;	/* we want used notifications */

	uint16_t free_head;	/* first free descriptor (private list) */
	uint16_t num_free;
	uint16_t avail_idx;	/* next avail->idx value (private copy) */
	uint16_t avail_pub;	/* avail->idx as last published */
	uint16_t last_used;	/* next used element to harvest */
	uint16_t used_seen;	/* used->idx as last loaded (validated) */
	uint32_t inflight;	/* published heads not yet harvested */
	uint16_t *next;		/* private mirror of descriptor links */
	uint16_t *pub_heads;	/* heads added but not yet published */
	uint32_t npending;
	struct drv_desc_state *st;
};

static int drv_fail(struct vshm_drv_vq *vq, const char *why)
{
	return vq_fail(&vq->c, why);
}

static void drv_init_ring(struct vshm_drv_vq *vq)
{
	uint32_t i;

	memset(vq->r.desc, 0, VSHM_VRING_DESC_BYTES(vq->num));
	memset(vq->r.avail, 0, VSHM_VRING_AVAIL_BYTES(vq->num));
	memset(vq->r.used, 0, VSHM_VRING_USED_BYTES(vq->num));
	for (i = 0; i < vq->num; i++) {
		vq->next[i] = (uint16_t)(i + 1);
		memset(&vq->st[i], 0, sizeof(vq->st[i]));
	}
	vq->free_head = 0;
	vq->num_free = (uint16_t)vq->num;	/* <= 32768 */
	vq->avail_idx = vq->avail_pub = 0;
	vq->last_used = vq->used_seen = 0;
	vq->inflight = 0;
	vq->npending = 0;
	vq->cb_enabled = true;
}

static const struct vq_drv_ops split_drv_ops;
static void split_drv_destroy(struct vshm_drv_vq *vq);

int vq_split_drv_create(struct vshm_drv_vq **out, struct vshm_window *w,
			const struct vshm_vq_layout *l, uint64_t features)
{
	struct vshm_drv_vq *vq;

	*out = NULL;
	vq = calloc(1, sizeof(*vq));
	if (!vq)
		return -ENOMEM;
	if (map_ring(w, l, &vq->r)) {
		free(vq);
		return -EINVAL;
	}
	vq->w = w;
	vq->l = *l;
	vq->num = l->num;
	vq->mask = l->num - 1;
	vq->event_idx = has(features, VSHM_F_EVENT_IDX);
	if (has(features, VSHM_F_INDIRECT_DESC) && l->indirect_max) {
		if (l->indirect & 15)
			goto einval;
		vq->indirect = vshm_win_ptr(w, l->indirect, (uint64_t)l->num *
					    l->indirect_max * sizeof(struct vshm_vring_desc));
		if (!vq->indirect)
			goto einval;
	}
	vq->c.format = VSHM_VQ_FMT_SPLIT;
	vq->c.ops.drv = &split_drv_ops;
	vq->next = calloc(l->num, sizeof(*vq->next));
	vq->pub_heads = calloc(l->num, sizeof(*vq->pub_heads));
	vq->st = calloc(l->num, sizeof(*vq->st));
	if (!vq->next || !vq->pub_heads || !vq->st) {
		split_drv_destroy(vq);
		return -ENOMEM;
	}
	drv_init_ring(vq);
	*out = vq;
	return 0;
einval:
	free(vq);
	return -EINVAL;
}

static void split_drv_destroy(struct vshm_drv_vq *vq)
{
	if (!vq)
		return;
	free(vq->next);
	free(vq->pub_heads);
	free(vq->st);
	free(vq);
}

static inline void write_desc(struct vshm_vring_desc *d, const struct vshm_sg *sg,
			      uint16_t flags, uint16_t next)
{
	d->addr = sg->off;
	d->len = sg->len;
	d->flags = flags;
	d->next = next;
}

static int split_add(struct vshm_drv_vq *vq, const struct vshm_sg *sg,
		       unsigned nout, unsigned nin, void *cookie, unsigned flags)
{
	unsigned n = nout + nin, i;
	uint64_t in_len;
	uint16_t head, id;
	bool indirect;

	if (vq->c.broken)
		return -EIO;
	if (!cookie || n == 0 || n < nout || !vq_sg_ok(vq->w, sg, n, nout, &in_len))
		return -EINVAL;

	indirect = vq->indirect && n > 1 && n <= vq->l.indirect_max &&
		   !(flags & VSHM_ADD_NO_INDIRECT) &&
		   ((flags & VSHM_ADD_INDIRECT) || n > vq->num_free || n > 2);
	if (!indirect && n > vq->num)
		return -EINVAL;		/* can never fit */
	if (vq->num_free == 0 || (!indirect && n > vq->num_free))
		return -ENOSPC;

	head = vq->free_head;
	if (indirect) {
		struct vshm_vring_desc *tab = vq->indirect +
			(uint64_t)head * vq->l.indirect_max;
		struct vshm_sg tsg = {
			.off = vq->l.indirect + (uint64_t)head * vq->l.indirect_max * 16,
			.len = n * 16u,
		};

		for (i = 0; i < n; i++) {
			uint16_t f = (uint16_t)((i + 1 < n ? VSHM_VRING_DESC_F_NEXT : 0) |
				     (i >= nout ? VSHM_VRING_DESC_F_WRITE : 0));
			write_desc(&tab[i], &sg[i], f, (uint16_t)(i + 1 < n ? i + 1 : 0));
		}
		write_desc(&vq->r.desc[head], &tsg, VSHM_VRING_DESC_F_INDIRECT, 0);
		vq->free_head = vq->next[head];
		vq->num_free--;
		vq->st[head].ndesc = 1;
		vq->c.stats.indirect++;
	} else {
		id = head;
		for (i = 0; i < n; i++) {
			uint16_t f = (uint16_t)((i + 1 < n ? VSHM_VRING_DESC_F_NEXT : 0) |
				     (i >= nout ? VSHM_VRING_DESC_F_WRITE : 0));
			write_desc(&vq->r.desc[id], &sg[i], f, vq->next[id]);
			id = vq->next[id];
		}
		vq->free_head = id;
		vq->num_free = (uint16_t)(vq->num_free - n);
		vq->st[head].ndesc = (uint16_t)n;
	}
	vq->st[head].cookie = cookie;
	vq->st[head].in_len = (uint32_t)in_len;
	vq->st[head].head = 1;
	vq->st[head].published = 0;

	/* Not yet visible: avail->idx moves only in publish (S1). */
	vq->r.avail->ring[vq->avail_idx & vq->mask] = head;
	vq->avail_idx++;
	vq->pub_heads[vq->npending++] = head;
	vq->c.stats.chains++;
	return 0;
}

static int split_drv_publish(struct vshm_drv_vq *vq)
{
	uint16_t old = vq->avail_pub, new_idx = vq->avail_idx;
	uint32_t i;
	int need;

	if (vq->c.broken)
		return -EIO;
	if (old == new_idx)
		return 0;
	for (i = 0; i < vq->npending; i++)
		vq->st[vq->pub_heads[i]].published = 1;
	vq->inflight += vq->npending;
	vq->npending = 0;

	/* S1: descriptors and ring entries before the index (pairs with S2). */
	vshm_store_release(&vq->r.avail->idx, new_idx);
	vq->avail_pub = new_idx;

	/* F1: the index store before the suppression load (pairs with F2). */
	vshm_mb();
	if (vq->event_idx) {
		uint16_t ev = vshm_load_once(vq->r.avail_event);

		need = vshm_need_event(ev, new_idx, old);
	} else {
		need = !(vshm_load_once(&vq->r.used->flags) & VSHM_VRING_USED_F_NO_NOTIFY);
	}
	if (!need)
		vq->c.stats.suppressed++;
	return need;
}

/* Load used->idx if everything seen so far has been harvested; validate. */
static int drv_more_used(struct vshm_drv_vq *vq)
{
	uint16_t idx, delta;

	if (vq->last_used != vq->used_seen)
		return 1;
	/* S4: used elements before the index (pairs with S3). */
	idx = vshm_load_acquire(&vq->r.used->idx);
	delta = (uint16_t)(idx - vq->last_used);
	if (delta == 0)
		return 0;
	if (delta > vq->inflight)
		return drv_fail(vq, "used index moved past the buffers in flight");
	vq->used_seen = idx;
	return 1;
}

static void drv_free_chain(struct vshm_drv_vq *vq, uint16_t head)
{
	struct drv_desc_state *s = &vq->st[head];
	uint16_t tail = head, i;

	for (i = 1; i < s->ndesc; i++)
		tail = vq->next[tail];
	vq->next[tail] = vq->free_head;
	vq->free_head = head;
	vq->num_free = (uint16_t)(vq->num_free + s->ndesc);
	memset(s, 0, sizeof(*s));
}

static int drv_harvest_one(struct vshm_drv_vq *vq, void **cookie, uint32_t *len)
{
	const struct vshm_vring_used_elem *e;
	struct drv_desc_state *s;
	uint32_t id, l;
	int more;

	more = drv_more_used(vq);
	if (more <= 0)
		return more;
	e = &vq->r.used->ring[vq->last_used & vq->mask];
	/* Each peer-written word is loaded once, then checked. */
	id = vshm_load_once(&e->id);
	l = vshm_load_once(&e->len);
	if (id >= vq->num)
		return drv_fail(vq, "used id out of range");
	s = &vq->st[id];
	if (!s->head || !s->published)
		return drv_fail(vq, "used id is not a chain in flight");
	if (l > s->in_len)
		return drv_fail(vq, "used length larger than the writable buffers");
	*cookie = s->cookie;
	*len = l;
	drv_free_chain(vq, (uint16_t)id);
	vq->inflight--;
	vq->last_used++;
	vq->c.stats.completions++;
	return 1;
}

/*
 * With event index and callbacks on, move used_event along so the device
 * notifies on the next completion (after the ones harvested now).
 */
static void drv_update_used_event(struct vshm_drv_vq *vq)
{
	if (vq->event_idx && vq->cb_enabled)
		vshm_store_once(vq->r.used_event, vq->last_used);
}

static int split_harvest_batch(struct vshm_drv_vq *vq, void **cookies,
			      uint32_t *lens, unsigned max)
{
	unsigned n = 0;
	int rc;

	if (vq->c.broken)
		return -EIO;
	while (n < max) {
		rc = drv_harvest_one(vq, &cookies[n], &lens[n]);
		if (rc < 0)
			return rc;
		if (rc == 0)
			break;
		n++;
	}
	if (n)
		drv_update_used_event(vq);
	return (int)n;
}

static int split_enable_cb(struct vshm_drv_vq *vq)
{
	uint16_t idx;

	if (vq->c.broken)
		return -EIO;
	vq->cb_enabled = true;
	if (vq->event_idx)
		vshm_store_once(vq->r.used_event, vq->last_used);
	else
		vshm_store_once(&vq->r.avail->flags, 0);
	/* F4: the request before the re-check (pairs with F3). */
	vshm_mb();
	if (vq->last_used != vq->used_seen)
		return 1;
	/* S4 again: pairs with S3 (the recheck itself). */
	idx = vshm_load_acquire(&vq->r.used->idx);
	return idx != vq->last_used;
}

static void split_disable_cb(struct vshm_drv_vq *vq)
{
	vq->cb_enabled = false;
	if (vq->c.broken)
		return;
	if (vq->event_idx)
		/* An event index behind everything the device can reach. */
		vshm_store_once(vq->r.used_event, (uint16_t)(vq->last_used - 1));
	else
		vshm_store_once(&vq->r.avail->flags, VSHM_VRING_AVAIL_F_NO_INTERRUPT);
}

static void *split_detach_unused(struct vshm_drv_vq *vq)
{
	uint32_t i;

	for (i = 0; i < vq->num; i++) {
		struct drv_desc_state *s = &vq->st[i];
		void *cookie;

		if (!s->head)
			continue;
		cookie = s->cookie;
		if (s->published)
			vq->inflight--;
		drv_free_chain(vq, (uint16_t)i);
		return cookie;
	}
	return NULL;
}

static int split_drv_reset(struct vshm_drv_vq *vq)
{
	uint32_t i;

	for (i = 0; i < vq->num; i++)
		if (vq->st[i].head)
			return -EBUSY;
	drv_init_ring(vq);
	return 0;
}

static unsigned split_num_free(const struct vshm_drv_vq *vq) { return vq->num_free; }
static unsigned split_inflight(const struct vshm_drv_vq *vq) { return vq->inflight; }

/* ======================================================================== */
/* Split ring: device side                                                  */

struct vshm_dev_vq {
	struct vq_common c;	/* first: format, broken, error, notify, stats */
	const struct vshm_window *w;
	struct ring_ptrs r;
	uint32_t num;
	uint32_t mask;
	bool event_idx;
	bool indirect_ok;	/* INDIRECT_DESC negotiated */

	uint16_t last_avail;	/* next avail entry to pop */
	uint16_t avail_seen;	/* avail->idx as last loaded (validated) */
	uint16_t used_idx;	/* next used->idx value (private copy) */
	uint16_t used_pub;	/* used->idx as last published */
	uint64_t desc_off;	/* window offsets of the descriptor table */
	uint64_t avail_off;	/* and of the avail ring */
	uint32_t walk;		/* number of the current chain walk */
	uint32_t *visited;	/* per descriptor (or table entry): the walk
				 * that last loaded it (private) */
};

static int dev_fail(struct vshm_dev_vq *vq, const char *why)
{
	return vq_fail(&vq->c, why);
}

/* Start a walk (a chain, or the table it moves into): a new number. */
static uint32_t dev_new_walk(struct vshm_dev_vq *vq)
{
	if (++vq->walk == 0) {
		memset(vq->visited, 0, vq->num * sizeof(*vq->visited));
		vq->walk = 1;
	}
	return vq->walk;
}

static const struct vq_dev_ops split_dev_ops;

int vq_split_dev_create(struct vshm_dev_vq **out, const struct vshm_window *w,
			const struct vshm_vq_layout *l, uint64_t features)
{
	struct vshm_dev_vq *vq;

	*out = NULL;
	vq = calloc(1, sizeof(*vq));
	if (!vq)
		return -ENOMEM;
	if (map_ring(w, l, &vq->r)) {
		free(vq);
		return -EINVAL;
	}
	vq->visited = calloc(l->num, sizeof(*vq->visited));
	if (!vq->visited) {
		free(vq);
		return -ENOMEM;
	}
	vq->w = w;
	vq->desc_off = l->desc;
	vq->avail_off = l->avail;
	vq->num = l->num;
	vq->mask = l->num - 1;
	vq->event_idx = has(features, VSHM_F_EVENT_IDX);
	vq->indirect_ok = has(features, VSHM_F_INDIRECT_DESC);
	vq->c.format = VSHM_VQ_FMT_SPLIT;
	vq->c.ops.dev = &split_dev_ops;
	/*
	 * The device owns the used ring: start it clean.  Indices start at 0
	 * as the spec requires after a queue is (re)enabled.
	 */
	vshm_store_once(&vq->r.used->flags, 0);
	vshm_store_once(vq->r.avail_event, 0);
	vshm_store_release(&vq->r.used->idx, 0);
	*out = vq;
	return 0;
}

static void split_dev_destroy(struct vshm_dev_vq *vq)
{
	if (!vq)
		return;
	free(vq->visited);
	free(vq);
}

/* One descriptor, loaded field by field exactly once. */
struct desc_copy {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

static inline void load_desc(const struct vshm_vring_desc *d, struct desc_copy *c)
{
	c->addr = vshm_load_once(&d->addr);
	c->len = vshm_load_once(&d->len);
	c->flags = vshm_load_once(&d->flags);
	c->next = vshm_load_once(&d->next);
}

static int dev_avail_pending(struct vshm_dev_vq *vq)
{
	uint16_t idx, delta;

	if (vq->last_avail != vq->avail_seen)
		return 1;
	/* S2: ring entries and descriptors after the index (pairs with S1). */
	idx = vshm_load_acquire(&vq->r.avail->idx);
	delta = (uint16_t)(idx - vq->last_avail);
	if (delta == 0)
		return 0;
	if (delta > vq->num)
		return dev_fail(vq, "avail index moved more than the queue size");
	vq->avail_seen = idx;
	return 1;
}

static int dev_pop_one(struct vshm_dev_vq *vq, struct vshm_chain *c,
		       struct vshm_iov *iov, unsigned max_iov)
{
	const struct vshm_vring_desc *tab = vq->r.desc;
	uint32_t count = vq->num, hops = 0, i, walk;
	uint64_t total = 0;
	bool in_indirect = false, seen_write = false;
	unsigned niov = 0;
	uint16_t head;
	int rc;

	rc = dev_avail_pending(vq);
	if (rc <= 0)
		return rc;
	head = vshm_load_once(&vq->r.avail->ring[vq->last_avail & vq->mask]);
	if (head >= vq->num)
		return dev_fail(vq, "avail ring names a descriptor out of range");

	memset(c, 0, sizeof(*c));
	c->head = head;
	c->iov = iov;
	i = head;
	walk = dev_new_walk(vq);
	for (;;) {
		struct desc_copy d;

		/* Every descriptor visited counts, direct or in a table: a
		 * chain longer than the queue is a loop or a lie. */
		if (++hops > vq->num)
			return dev_fail(vq, "descriptor chain longer than the queue (loop?)");
		/*
		 * A descriptor reached a second time is a loop, which ends
		 * only if the driver rewrites it while we walk: refuse it
		 * before loading it again (load once, even across a loop).
		 */
		if (vq->visited[i] == walk)
			return dev_fail(vq, "descriptor chain longer than the queue (loop: a descriptor reached twice)");
		vq->visited[i] = walk;
		load_desc(&tab[i], &d);

		if (d.flags & VSHM_VRING_DESC_F_INDIRECT) {
			if (!vq->indirect_ok)
				return dev_fail(vq, "indirect descriptor without INDIRECT_DESC");
			if (in_indirect)
				return dev_fail(vq, "nested indirect table");
			/* Only a head may point to a table (what every driver
			 * does); a table in mid-chain is refused. */
			if (hops != 1)
				return dev_fail(vq, "indirect descriptor inside a chain");
			if (d.flags & VSHM_VRING_DESC_F_NEXT)
				return dev_fail(vq, "indirect descriptor with NEXT");
			if (d.len == 0 || (d.len & 15))
				return dev_fail(vq, "indirect table size not a multiple of 16");
			if (d.addr & 15)
				return dev_fail(vq, "indirect table not 16-byte aligned");
			tab = vshm_win_ptr(vq->w, d.addr, d.len);
			if (!tab)
				return dev_fail(vq, "indirect table outside the driver area");
			/* Its entries would be bytes we loaded already in
			 * this pop, as a descriptor or an avail entry. */
			if (overlap(d.addr, d.len, vq->desc_off, VSHM_VRING_DESC_BYTES(vq->num)) ||
			    overlap(d.addr, d.len, vq->avail_off, VSHM_VRING_AVAIL_BYTES(vq->num)))
				return dev_fail(vq, "indirect table overlaps the ring");
			count = d.len / 16;
			/* A driver sizes a table to its chain, which may not
			 * be longer than the queue: refuse longer tables (the
			 * packed ring's rule too), so entries fit the map. */
			if (count > vq->num)
				return dev_fail(vq, "indirect table longer than the queue");
			in_indirect = true;
			c->indirect = 1;
			hops = 0;	/* the table may hold up to num entries */
			walk = dev_new_walk(vq);
			i = 0;
			continue;
		}

		if (d.flags & VSHM_VRING_DESC_F_WRITE) {
			seen_write = true;
			c->in_bytes += d.len;
		} else {
			if (seen_write)
				return dev_fail(vq, "readable descriptor after a writable one");
			c->out_bytes += d.len;
		}
		total += d.len;
		if (total > (1ull << 32))
			return dev_fail(vq, "chain longer than 4 GiB");
		{
			void *p = vshm_win_ptr(vq->w, d.addr, d.len);

			if (!p)
				return dev_fail(vq, "buffer outside the driver area");
			if (d.len) {
				if (niov == max_iov)
					return dev_fail(vq, "chain has more buffers than the device accepts");
				iov[niov].base = p;
				iov[niov].len = d.len;
				niov++;
				if (d.flags & VSHM_VRING_DESC_F_WRITE)
					c->nin++;
				else
					c->nout++;
			}
		}
		if (!(d.flags & VSHM_VRING_DESC_F_NEXT))
			break;
		if (d.next >= count)
			return dev_fail(vq, "next descriptor out of range");
		i = d.next;
	}
	vq->last_avail++;
	vq->c.stats.chains++;
	if (c->indirect)
		vq->c.stats.indirect++;
	return 1;
}

static int split_pop(struct vshm_dev_vq *vq, struct vshm_chain *c,
		    struct vshm_iov *iov, unsigned max_iov)
{
	if (vq->c.broken)
		return -EIO;
	return dev_pop_one(vq, c, iov, max_iov);
}

static int split_inject_used(struct vshm_dev_vq *vq, uint32_t id, uint32_t len)
{
	struct vshm_vring_used_elem *e;

	if (vq->c.broken)
		return -EIO;
	e = &vq->r.used->ring[vq->used_idx & vq->mask];
	vshm_store_once(&e->id, id);
	vshm_store_once(&e->len, len);
	vq->used_idx++;
	vq->c.stats.completions++;
	return 0;
}

static int split_push(struct vshm_dev_vq *vq, uint16_t head, uint32_t written)
{
	if (head >= vq->num)
		return vq->c.broken ? -EIO : -EINVAL;
	return split_inject_used(vq, head, written);
}

static int split_dev_publish(struct vshm_dev_vq *vq)
{
	uint16_t old = vq->used_pub, new_idx = vq->used_idx;
	int need;

	if (vq->c.broken)
		return -EIO;
	if (old == new_idx)
		return 0;
	/* S3: used elements before the index (pairs with S4). */
	vshm_store_release(&vq->r.used->idx, new_idx);
	vq->used_pub = new_idx;
	/* F3: the index store before the suppression load (pairs with F4). */
	vshm_mb();
	if (vq->event_idx) {
		uint16_t ev = vshm_load_once(vq->r.used_event);

		need = vshm_need_event(ev, new_idx, old);
	} else {
		need = !(vshm_load_once(&vq->r.avail->flags) & VSHM_VRING_AVAIL_F_NO_INTERRUPT);
	}
	if (!need)
		vq->c.stats.suppressed++;
	return need;
}

static int split_enable_notify(struct vshm_dev_vq *vq)
{
	if (vq->c.broken)
		return -EIO;
	if (vq->event_idx)
		vshm_store_once(vq->r.avail_event, vq->last_avail);
	else
		vshm_store_once(&vq->r.used->flags, 0);
	/* F2: the request before the re-check (pairs with F1). */
	vshm_mb();
	return dev_avail_pending(vq);
}

static void split_disable_notify(struct vshm_dev_vq *vq)
{
	if (vq->c.broken)
		return;
	/*
	 * With event index a stale avail_event already suppresses kicks (the
	 * driver only kicks when it crosses it); without, set the flag.
	 */
	if (!vq->event_idx)
		vshm_store_once(&vq->r.used->flags, VSHM_VRING_USED_F_NO_NOTIFY);
}

static const struct vq_drv_ops split_drv_ops = {
	.add = split_add,
	.publish = split_drv_publish,
	.harvest_batch = split_harvest_batch,
	.enable_cb = split_enable_cb,
	.disable_cb = split_disable_cb,
	.detach_unused = split_detach_unused,
	.reset = split_drv_reset,
	.num_free = split_num_free,
	.inflight = split_inflight,
	.destroy = split_drv_destroy,
};

static const struct vq_dev_ops split_dev_ops = {
	.pop = split_pop,
	.push = split_push,
	.inject_used = split_inject_used,
	.publish = split_dev_publish,
	.enable_notify = split_enable_notify,
	.disable_notify = split_disable_notify,
	.destroy = split_dev_destroy,
};
