// SPDX-License-Identifier: MIT
/*
 * Packed virtqueue (virtio 1.x section 2.8), both sides.
 *
 * One descriptor ring carries both directions: the driver makes descriptors
 * available in ring order, the device overwrites slots with used
 * descriptors in ring order.  Two 4-byte event suppression words tell the
 * peer when to notify.
 *
 * Ownership of ring memory, and therefore who may be trusted about what:
 *
 *   descriptor ring ... written by the driver (available descriptors) and
 *                       by the device (used descriptors), slot by slot in
 *                       ring order; a slot belongs to the driver from the
 *                       moment it harvests the used descriptor covering it
 *                       until it makes it available again, and to the
 *                       device from then until it writes a used descriptor
 *                       at or past it
 *   indirect tables ... written by the driver only
 *   driver event area (layout "avail") ... written by the driver only
 *   device event area (layout "used") .... written by the device only
 *
 * Neither side ever reads back what it wrote itself: the driver keeps the
 * buffer ids, cookies, chain lengths and posted writable lengths in private
 * memory, the device keeps the ring-slot count of every chain it popped.
 * Each side loads a peer-written word once into a local, checks it, then
 * uses the local.
 *
 * Positions are free-running 16-bit counters of descriptor slots.  num is a
 * power of two (the packed format does not need one; vshm keeps it for
 * simplicity), so num divides 65536: slot = idx & (num - 1), and the wrap
 * counter is 1 on even laps and 0 on odd ones, the same at 65536 as at 0.
 *
 * Memory-ordering labels (docs/memory-model.md has the table):
 *   P1  driver: release store of a chain's head flags     — pairs with P2
 *   P2  device: acquire load of the flags at its avail
 *       position (pop, enable_notify's re-check)           — pairs with P1
 *   P3  device: release store of a used descriptor's flags — pairs with P4
 *   P4  driver: acquire load of the flags at its used
 *       position (harvest, enable_cb's re-check)           — pairs with P3
 *   P5  driver: full fence between P1 and loading the
 *       device event area                                  — pairs with P6
 *   P6  device: full fence between writing the device event
 *       area and re-loading the flags at its avail position — pairs with P5
 *   P7  device: full fence between P3 and loading the driver
 *       event area                                         — pairs with P8
 *   P8  driver: full fence between writing the driver event
 *       area and re-loading the flags at its used position — pairs with P7
 *
 * IN_ORDER is not implemented: completions are always one used descriptor
 * per chain, in any order, named by buffer id.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <vshm/vq.h>
#include "barrier.h"
#include "vq_internal.h"

/* ======================================================================== */
/* Wire format (virtio 1.x 2.8), as laid out in the window                  */

/* A ring or indirect-table descriptor.  16 bytes, 16-byte aligned. */
struct pk_desc {
	vshm_le64 addr;		/* window offset of the buffer (or table) */
	vshm_le32 len;		/* bytes; used descriptor: bytes written */
	vshm_le16 id;		/* buffer id (last descriptor of a chain) */
	vshm_le16 flags;	/* PK_F_* */
};

_Static_assert(sizeof(struct pk_desc) == 16, "packed descriptor is 16 bytes");
_Static_assert(__builtin_offsetof(struct pk_desc, len) == 8, "len at 8");
_Static_assert(__builtin_offsetof(struct pk_desc, id) == 12, "id at 12");
_Static_assert(__builtin_offsetof(struct pk_desc, flags) == 14, "flags at 14");

#define PK_F_NEXT	VSHM_VRING_DESC_F_NEXT		/* 1 */
#define PK_F_WRITE	VSHM_VRING_DESC_F_WRITE		/* 2 */
#define PK_F_INDIRECT	VSHM_VRING_DESC_F_INDIRECT	/* 4 */
#define PK_F_AVAIL	(1u << 7)
#define PK_F_USED	(1u << 15)

/*
 * Event suppression area: le16 desc (bits 0..14 ring offset, bit 15 wrap
 * counter), then le16 flags.  It is handled as one little-endian 32-bit
 * word (4-byte aligned), so each side stores and loads it in one access and
 * the peer never sees an offset from one update with flags from another.
 */
#define PK_EV_ENABLE	0u	/* notify on every event */
#define PK_EV_DISABLE	1u	/* never notify */
#define PK_EV_DESC	2u	/* notify when the named descriptor is reached
				 * (only with EVENT_IDX negotiated) */
#define PK_EV_WRAP	(1u << 15)
#define PK_EV_BYTES	4u

static inline uint32_t ev_word(uint32_t flags, uint16_t off_wrap)
{
	return (flags << 16) | off_wrap;
}

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

static unsigned log2u(uint32_t num)
{
	return (unsigned)__builtin_ctz(num);
}

/* The wrap counter at free-running position @idx: 1 on even laps. */
static inline unsigned wrap_at(uint16_t idx, unsigned shift)
{
	return 1u ^ ((unsigned)(idx >> shift) & 1u);
}

/* A descriptor's AVAIL/USED bits as the driver sets them at @idx. */
static inline uint16_t avail_bits(uint16_t idx, unsigned shift)
{
	return wrap_at(idx, shift) ? PK_F_AVAIL : PK_F_USED;
}

/* A descriptor's AVAIL/USED bits as the device sets them at @idx. */
static inline uint16_t used_bits(uint16_t idx, unsigned shift)
{
	return wrap_at(idx, shift) ? (PK_F_AVAIL | PK_F_USED) : 0;
}

/* The desc field of an event word naming position @idx. */
static inline uint16_t off_wrap(uint16_t idx, uint32_t mask, unsigned shift)
{
	return (uint16_t)((idx & mask) | (wrap_at(idx, shift) ? PK_EV_WRAP : 0));
}

/*
 * Turn the peer's (offset, wrap) back into a free-running position next to
 * @now, our own position: the same lap when the wrap counters agree, the lap
 * before otherwise (a peer's event never runs ahead of where we are).  A
 * hostile value only yields a position; it decides a notification, nothing
 * else.
 */
static inline uint16_t ev_position(uint16_t ow, uint16_t now, uint32_t mask, unsigned shift)
{
	uint16_t e = (uint16_t)((now & ~mask) + (ow & 0x7fffu));

	if ((unsigned)(ow >> 15) != wrap_at(now, shift))
		e = (uint16_t)(e - (mask + 1));
	return e;
}

/*
 * Should a side that moved its position from @old to @new notify the peer
 * whose event word is @word?  Unknown flag values count as ENABLE: an extra
 * notification is always safe.
 */
static int ev_wants(uint32_t word, bool event_idx, uint16_t old, uint16_t new_idx,
		    uint32_t mask, unsigned shift)
{
	uint32_t flags = (word >> 16) & 3u;

	if (flags == PK_EV_DISABLE)
		return 0;
	if (flags == PK_EV_DESC && event_idx)
		return vshm_need_event(ev_position((uint16_t)word, new_idx, mask, shift),
				       new_idx, old);
	return 1;
}

int64_t vshm_vq_layout_packed(struct vshm_vq_layout *l, uint64_t base,
			      uint32_t num, uint32_t indirect_max)
{
	uint64_t p;

	if (!num_ok(num) || indirect_max > VSHM_VQ_MAX_SIZE)
		return -EINVAL;
	memset(l, 0, sizeof(*l));
	l->num = num;
	p = align_up(base, VSHM_CACHELINE);
	l->desc = p;
	p += (uint64_t)num * sizeof(struct pk_desc);
	l->avail = p;			/* driver event area, 16-aligned */
	p += PK_EV_BYTES;
	p = align_up(p, VSHM_CACHELINE);
	l->used = p;			/* device event area: its own line */
	p += VSHM_CACHELINE;
	if (indirect_max) {
		l->indirect = p;
		l->indirect_max = indirect_max;
		p += (uint64_t)num * indirect_max * sizeof(struct pk_desc);
	}
	p = align_up(p, VSHM_CACHELINE);
	return (int64_t)(p - base);
}

/* Translate and check a whole ring layout against the window. */
struct pk_ring {
	struct pk_desc *desc;
	vshm_le32 *drv_ev;	/* driver event suppression (driver writes) */
	vshm_le32 *dev_ev;	/* device event suppression (device writes) */
};

static int disjoint(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a + alen <= b || b + blen <= a;	/* both ranges are in the window */
}

static int map_ring(const struct vshm_window *w, const struct vshm_vq_layout *l,
		    struct pk_ring *r)
{
	uint64_t dbytes;

	if (!num_ok(l->num))
		return -EINVAL;
	dbytes = (uint64_t)l->num * sizeof(struct pk_desc);
	if ((l->desc & 15) || (l->avail & 3) || (l->used & 3))
		return -EINVAL;
	r->desc = vshm_win_ptr(w, l->desc, dbytes);
	r->drv_ev = vshm_win_ptr(w, l->avail, PK_EV_BYTES);
	r->dev_ev = vshm_win_ptr(w, l->used, PK_EV_BYTES);
	if (!r->desc || !r->drv_ev || !r->dev_ev)
		return -EINVAL;
	/* Each area has one writer; they must not share bytes. */
	if (!disjoint(l->desc, dbytes, l->avail, PK_EV_BYTES) ||
	    !disjoint(l->desc, dbytes, l->used, PK_EV_BYTES) ||
	    !disjoint(l->avail, PK_EV_BYTES, l->used, PK_EV_BYTES))
		return -EINVAL;
	return 0;
}

/* ======================================================================== */
/* Packed ring: driver side                                                 */

/* Private per-buffer-id state; index = the buffer id we put on the wire. */
struct pk_id_state {
	void *cookie;		/* non-NULL while the id is in use */
	uint32_t in_len;	/* writable bytes posted in the chain */
	uint16_t ndesc;		/* ring slots the chain occupies */
	uint16_t head;		/* free-running position of its first slot */
	uint16_t head_flags;	/* flags of the head, stored by publish (P1) */
	uint16_t next_free;	/* free-id list link */
	uint8_t published;	/* 1 once the device may see it */
};

struct vshm_drv_vq {
	struct vq_common c;	/* first: format, broken, error, notify, stats */
	struct vshm_window *w;
	struct pk_ring r;
	struct vshm_vq_layout l;
	struct pk_desc *indirect;	/* num tables, or NULL */
	uint32_t num;
	uint32_t mask;
	unsigned shift;		/* log2(num) */
	bool event_idx;		/* VIRTIO_F_EVENT_IDX negotiated */
	bool cb_enabled;	/* we want used notifications */

	uint16_t free_id;	/* head of the free-id list (num = empty) */
	uint16_t num_free;	/* ring slots not held by a chain */
	uint16_t avail_idx;	/* next slot to fill (free-running) */
	uint16_t avail_pub;	/* avail_idx as of the last publish */
	uint16_t used_idx;	/* next slot to look for a used descriptor */
	uint32_t inflight;	/* published chains not yet harvested */
	uint16_t *pending;	/* ids added but not yet published, in order */
	uint32_t npending;
	struct pk_id_state *st;
};

static int drv_fail(struct vshm_drv_vq *vq, const char *why)
{
	return vq_fail(&vq->c, why);
}

static void drv_init_ring(struct vshm_drv_vq *vq)
{
	uint32_t i;

	/*
	 * Zeroed flags are "not available" for lap 0 (wrap counter 1) and not
	 * a used descriptor either.  The device area is the device's, but no
	 * device runs while the driver (re)initialises the queue.
	 */
	memset(vq->r.desc, 0, (size_t)vq->num * sizeof(struct pk_desc));
	vshm_store_once(vq->r.dev_ev, 0);
	for (i = 0; i < vq->num; i++) {
		memset(&vq->st[i], 0, sizeof(vq->st[i]));
		vq->st[i].next_free = (uint16_t)(i + 1);	/* num ends the list */
	}
	vq->free_id = 0;
	vq->num_free = (uint16_t)vq->num;	/* wraps to 0 for 65536: never */
	vq->avail_idx = vq->avail_pub = 0;
	vq->used_idx = 0;
	vq->inflight = 0;
	vq->npending = 0;
	vq->cb_enabled = true;
	/* Callbacks on: with event index, "the first used descriptor". */
	vshm_store_once(vq->r.drv_ev, vq->event_idx ?
			ev_word(PK_EV_DESC, off_wrap(0, vq->mask, vq->shift)) :
			ev_word(PK_EV_ENABLE, 0));
}

static const struct vq_drv_ops packed_drv_ops;
static void packed_drv_destroy(struct vshm_drv_vq *vq);

int vq_packed_drv_create(struct vshm_drv_vq **out, struct vshm_window *w,
			 const struct vshm_vq_layout *l, uint64_t features)
{
	struct vshm_drv_vq *vq;

	*out = NULL;
	vq = calloc(1, sizeof(*vq));
	if (!vq)
		return -ENOMEM;
	if (map_ring(w, l, &vq->r))
		goto einval;
	vq->w = w;
	vq->l = *l;
	vq->num = l->num;
	vq->mask = l->num - 1;
	vq->shift = log2u(l->num);
	vq->event_idx = has(features, VSHM_F_EVENT_IDX);
	if (has(features, VSHM_F_INDIRECT_DESC) && l->indirect_max) {
		if (l->indirect & 15)
			goto einval;
		vq->indirect = vshm_win_ptr(w, l->indirect, (uint64_t)l->num *
					    l->indirect_max * sizeof(struct pk_desc));
		if (!vq->indirect)
			goto einval;
	}
	vq->c.format = VSHM_VQ_FMT_PACKED;
	vq->c.ops.drv = &packed_drv_ops;
	vq->pending = calloc(l->num, sizeof(*vq->pending));
	vq->st = calloc(l->num, sizeof(*vq->st));
	if (!vq->pending || !vq->st) {
		packed_drv_destroy(vq);
		return -ENOMEM;
	}
	drv_init_ring(vq);
	*out = vq;
	return 0;
einval:
	free(vq);
	return -EINVAL;
}

static void packed_drv_destroy(struct vshm_drv_vq *vq)
{
	if (!vq)
		return;
	free(vq->pending);
	free(vq->st);
	free(vq);
}

/*
 * Write the body of a descriptor.  Only the driver writes a slot it owns
 * (harvested, not yet published); the device reads it after P1/P2.
 */
static inline void put_desc(struct pk_desc *d, uint64_t addr, uint32_t len, uint16_t id)
{
	d->addr = addr;
	d->len = len;
	d->id = id;
}

static int packed_add(struct vshm_drv_vq *vq, const struct vshm_sg *sg,
		      unsigned nout, unsigned nin, void *cookie, unsigned flags)
{
	unsigned n = nout + nin, i;
	struct pk_id_state *s;
	uint64_t in_len;
	uint16_t id, k = vq->avail_idx;
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

	/* A chain takes at least one slot, so a free slot means a free id. */
	id = vq->free_id;
	s = &vq->st[id];
	vq->free_id = s->next_free;

	s->head = k;
	if (indirect) {
		struct pk_desc *tab = vq->indirect + (uint64_t)id * vq->l.indirect_max;

		/* Table entries carry only WRITE; no NEXT, id or wrap bits. */
		for (i = 0; i < n; i++) {
			put_desc(&tab[i], sg[i].off, sg[i].len, 0);
			tab[i].flags = (uint16_t)(i >= nout ? PK_F_WRITE : 0);
		}
		put_desc(&vq->r.desc[k & vq->mask],
			 vq->l.indirect + (uint64_t)id * vq->l.indirect_max * sizeof(struct pk_desc),
			 n * (uint32_t)sizeof(struct pk_desc), id);
		s->head_flags = (uint16_t)(PK_F_INDIRECT | avail_bits(k, vq->shift));
		s->ndesc = 1;
		vq->c.stats.indirect++;
	} else {
		/*
		 * Consecutive slots, wrapping at num with the wrap counter of
		 * each slot's own lap; the buffer id goes in the last one.
		 * Every descriptor but the head gets its flags now; the head's
		 * are stored by publish, after all of these (P1).
		 */
		for (i = 0; i < n; i++) {
			uint16_t p = (uint16_t)(k + i);
			uint16_t f = (uint16_t)((i + 1 < n ? PK_F_NEXT : 0) |
						(i >= nout ? PK_F_WRITE : 0) |
						avail_bits(p, vq->shift));
			struct pk_desc *d = &vq->r.desc[p & vq->mask];

			put_desc(d, sg[i].off, sg[i].len, i + 1 == n ? id : 0);
			if (i == 0)
				s->head_flags = f;
			else
				vshm_store_once(&d->flags, f);
		}
		s->ndesc = (uint16_t)n;
	}
	s->cookie = cookie;
	s->in_len = (uint32_t)in_len;
	s->published = 0;
	vq->avail_idx = (uint16_t)(k + s->ndesc);
	vq->num_free = (uint16_t)(vq->num_free - s->ndesc);
	vq->pending[vq->npending++] = id;
	vq->c.stats.chains++;
	return 0;
}

static int packed_drv_publish(struct vshm_drv_vq *vq)
{
	uint16_t old = vq->avail_pub, new_idx = vq->avail_idx;
	uint32_t i, word;
	int need;

	if (vq->c.broken)
		return -EIO;
	if (vq->npending == 0)
		return 0;
	/*
	 * P1: one release per head, in ring order.  Everything the chain
	 * needs (its other descriptors, its indirect table, the contents of
	 * its readable buffers) was written before; a device that sees the
	 * head available (P2) sees all of it.  It is never at a later head
	 * before consuming the earlier ones.
	 */
	for (i = 0; i < vq->npending; i++) {
		struct pk_id_state *s = &vq->st[vq->pending[i]];

		s->published = 1;
		vshm_store_release(&vq->r.desc[s->head & vq->mask].flags, s->head_flags);
	}
	vq->inflight += vq->npending;
	vq->npending = 0;
	vq->avail_pub = new_idx;

	/* P5: the head stores before the suppression load (pairs with P6). */
	vshm_mb();
	word = vshm_load_once(vq->r.dev_ev);
	need = ev_wants(word, vq->event_idx, old, new_idx, vq->mask, vq->shift);
	if (!need)
		vq->c.stats.suppressed++;
	return need;
}

/*
 * Is there a used descriptor at our used position?  1 yes (*fl holds its
 * flags), 0 no, -EIO when the slot holds something an honest device
 * cannot have put there.
 *
 * With chains in flight the slot was written by us in the current lap
 * (AVAIL = wrap, USED = !wrap) or overwritten by the device with a used
 * descriptor (AVAIL = USED = wrap); with none in flight it still holds the
 * previous lap (AVAIL = !wrap), or zeroes.  Anything else is the device's.
 */
static int drv_used_ready(struct vshm_drv_vq *vq, uint16_t *fl)
{
	unsigned w = wrap_at(vq->used_idx, vq->shift), a, u;
	uint16_t f;

	/* P4: the used descriptor and the device's buffer writes after the
	 * flags (pairs with P3). */
	f = vshm_load_acquire(&vq->r.desc[vq->used_idx & vq->mask].flags);
	a = !!(f & PK_F_AVAIL);
	u = !!(f & PK_F_USED);
	if (vq->inflight == 0) {
		if (a == w && u == w)
			return drv_fail(vq, "used descriptor with no buffer in flight");
		return 0;
	}
	if (a != w)
		return drv_fail(vq, "used descriptor with the wrong wrap counter");
	if (u != w)
		return 0;
	*fl = f;
	return 1;
}

static void drv_free_id(struct vshm_drv_vq *vq, uint16_t id)
{
	struct pk_id_state *s = &vq->st[id];

	vq->num_free = (uint16_t)(vq->num_free + s->ndesc);
	memset(s, 0, sizeof(*s));
	s->next_free = vq->free_id;
	vq->free_id = id;
}

static int drv_harvest_one(struct vshm_drv_vq *vq, void **cookie, uint32_t *len)
{
	const struct pk_desc *d;
	struct pk_id_state *s;
	uint16_t fl, id;
	uint32_t l;
	int rc;

	rc = drv_used_ready(vq, &fl);
	if (rc <= 0)
		return rc;
	d = &vq->r.desc[vq->used_idx & vq->mask];
	/* Each peer-written word is loaded once, then checked. */
	id = vshm_load_once(&d->id);
	l = vshm_load_once(&d->len);
	if (id >= vq->num)
		return drv_fail(vq, "used id out of range");
	s = &vq->st[id];
	if (!s->cookie || !s->published)
		return drv_fail(vq, "used id is not a chain in flight");
	if (l > s->in_len)
		return drv_fail(vq, "used length larger than the writable buffers");
	*cookie = s->cookie;
	*len = l;
	/* Skip the slots of that chain: from our records, not the ring. */
	vq->used_idx = (uint16_t)(vq->used_idx + s->ndesc);
	drv_free_id(vq, id);
	vq->inflight--;
	vq->c.stats.completions++;
	return 1;
}

static int packed_harvest_batch(struct vshm_drv_vq *vq, void **cookies,
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
	/* With event index and callbacks on, ask for the next one. */
	if (n && vq->event_idx && vq->cb_enabled)
		vshm_store_once(vq->r.drv_ev,
				ev_word(PK_EV_DESC, off_wrap(vq->used_idx, vq->mask, vq->shift)));
	return (int)n;
}

static int packed_enable_cb(struct vshm_drv_vq *vq)
{
	uint16_t fl;

	if (vq->c.broken)
		return -EIO;
	vq->cb_enabled = true;
	vshm_store_once(vq->r.drv_ev, vq->event_idx ?
			ev_word(PK_EV_DESC, off_wrap(vq->used_idx, vq->mask, vq->shift)) :
			ev_word(PK_EV_ENABLE, 0));
	/* P8: the request before the re-check (pairs with P7). */
	vshm_mb();
	/* The re-check itself is P4. */
	return drv_used_ready(vq, &fl);
}

static void packed_disable_cb(struct vshm_drv_vq *vq)
{
	vq->cb_enabled = false;
	if (vq->c.broken)
		return;
	vshm_store_once(vq->r.drv_ev, ev_word(PK_EV_DISABLE, 0));
}

static void *packed_detach_unused(struct vshm_drv_vq *vq)
{
	uint32_t i, j;

	for (i = 0; i < vq->num; i++) {
		struct pk_id_state *s = &vq->st[i];
		void *cookie = s->cookie;

		if (!cookie)
			continue;
		if (s->published) {
			vq->inflight--;
		} else {
			for (j = 0; j < vq->npending; j++)
				if (vq->pending[j] == i)
					break;
			if (j < vq->npending) {
				memmove(&vq->pending[j], &vq->pending[j + 1],
					(vq->npending - j - 1) * sizeof(vq->pending[0]));
				vq->npending--;
			}
		}
		drv_free_id(vq, (uint16_t)i);
		if (vq->num_free == vq->num) {
			/* All back: our positions agree again (reset still
			 * required before a new device session). */
			vq->used_idx = vq->avail_idx;
			vq->avail_pub = vq->avail_idx;
		}
		return cookie;
	}
	return NULL;
}

static int packed_drv_reset(struct vshm_drv_vq *vq)
{
	uint32_t i;

	for (i = 0; i < vq->num; i++)
		if (vq->st[i].cookie)
			return -EBUSY;
	drv_init_ring(vq);
	return 0;
}

static unsigned packed_num_free(const struct vshm_drv_vq *vq) { return vq->num_free; }
static unsigned packed_inflight(const struct vshm_drv_vq *vq) { return vq->inflight; }

/* ======================================================================== */
/* Packed ring: device side                                                 */

struct vshm_dev_vq {
	struct vq_common c;	/* first: format, broken, error, notify, stats */
	const struct vshm_window *w;
	struct pk_ring r;
	uint32_t num;
	uint32_t mask;
	unsigned shift;		/* log2(num) */
	bool event_idx;
	bool indirect_ok;	/* INDIRECT_DESC negotiated */

	uint16_t avail_idx;	/* next slot to look for a chain (free-running) */
	uint16_t used_idx;	/* next slot to write a used descriptor */
	uint16_t used_pub;	/* used_idx as of the last publish */
	uint32_t pushed;	/* ring slots covered by used descriptors
				 * since that publish */
	uint16_t *ndesc;	/* per buffer id: ring slots of the popped chain
				 * not yet pushed; 0 = not in flight (private) */
	uint64_t desc_off;	/* window offset of the descriptor ring */
};

static int dev_fail(struct vshm_dev_vq *vq, const char *why)
{
	return vq_fail(&vq->c, why);
}

static const struct vq_dev_ops packed_dev_ops;

int vq_packed_dev_create(struct vshm_dev_vq **out, const struct vshm_window *w,
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
	vq->ndesc = calloc(l->num, sizeof(*vq->ndesc));
	if (!vq->ndesc) {
		free(vq);
		return -ENOMEM;
	}
	vq->w = w;
	vq->desc_off = l->desc;
	vq->num = l->num;
	vq->mask = l->num - 1;
	vq->shift = log2u(l->num);
	vq->event_idx = has(features, VSHM_F_EVENT_IDX);
	vq->indirect_ok = has(features, VSHM_F_INDIRECT_DESC);
	vq->c.format = VSHM_VQ_FMT_PACKED;
	vq->c.ops.dev = &packed_dev_ops;
	/*
	 * The device owns its event area: start it asking for a kick on the
	 * first chain.  Positions start at slot 0, wrap counter 1, as the
	 * spec requires when a queue is (re)enabled.
	 */
	vshm_store_once(vq->r.dev_ev, vq->event_idx ?
			ev_word(PK_EV_DESC, off_wrap(0, vq->mask, vq->shift)) :
			ev_word(PK_EV_ENABLE, 0));
	*out = vq;
	return 0;
}

static void packed_dev_destroy(struct vshm_dev_vq *vq)
{
	if (!vq)
		return;
	free(vq->ndesc);
	free(vq);
}

/* Available for lap @idx: AVAIL matches its wrap counter, USED does not. */
static inline int desc_avail(uint16_t f, uint16_t idx, unsigned shift)
{
	unsigned a = !!(f & PK_F_AVAIL), u = !!(f & PK_F_USED);

	return a != u && a == wrap_at(idx, shift);
}

/* Is a chain available at our avail position?  The load is P2. */
static int dev_avail_ready(struct vshm_dev_vq *vq, uint16_t *fl)
{
	/* P2: the chain's descriptors, table and buffers after the head's
	 * flags (pairs with P1). */
	uint16_t f = vshm_load_acquire(&vq->r.desc[vq->avail_idx & vq->mask].flags);

	*fl = f;
	return desc_avail(f, vq->avail_idx, vq->shift);
}

/*
 * One buffer of a chain, already loaded: validate and append it to @c.
 * Returns 0 or the -EIO of dev_fail.
 */
struct buf_walk {
	struct vshm_chain *c;
	struct vshm_iov *iov;
	unsigned max_iov;
	unsigned niov;
	uint64_t total;
	bool seen_write;
};

static int dev_take_buf(struct vshm_dev_vq *vq, struct buf_walk *bw,
			uint64_t addr, uint32_t len, bool write)
{
	struct vshm_chain *c = bw->c;
	void *p;

	if (write) {
		bw->seen_write = true;
		c->in_bytes += len;
	} else {
		if (bw->seen_write)
			return dev_fail(vq, "readable descriptor after a writable one");
		c->out_bytes += len;
	}
	bw->total += len;
	if (bw->total > (1ull << 32))
		return dev_fail(vq, "chain longer than 4 GiB");
	p = vshm_win_ptr(vq->w, addr, len);
	if (!p)
		return dev_fail(vq, "buffer outside the driver area");
	if (len) {
		if (bw->niov == bw->max_iov)
			return dev_fail(vq, "chain has more buffers than the device accepts");
		bw->iov[bw->niov].base = p;
		bw->iov[bw->niov].len = len;
		bw->niov++;
		if (write)
			c->nin++;
		else
			c->nout++;
	}
	return 0;
}

/* Walk an indirect table named by a ring descriptor; entries loaded once. */
static int dev_walk_table(struct vshm_dev_vq *vq, struct buf_walk *bw,
			  uint64_t addr, uint32_t len)
{
	const struct pk_desc *tab;
	uint32_t count, i;
	int rc;

	if (!vq->indirect_ok)
		return dev_fail(vq, "indirect descriptor without INDIRECT_DESC");
	if (len == 0 || (len & 15))
		return dev_fail(vq, "indirect table size not a multiple of 16");
	if (addr & 15)
		return dev_fail(vq, "indirect table not 16-byte aligned");
	tab = vshm_win_ptr(vq->w, addr, len);
	if (!tab)
		return dev_fail(vq, "indirect table outside the driver area");
	/* Its entries would be ring bytes, the head among them, that we
	 * loaded already in this pop (a double fetch). */
	if (!disjoint(addr, len, vq->desc_off, (uint64_t)vq->num * sizeof(struct pk_desc)))
		return dev_fail(vq, "indirect table overlaps the ring");
	count = len / 16;
	if (count > vq->num)
		return dev_fail(vq, "indirect table longer than the queue");
	bw->c->indirect = 1;
	for (i = 0; i < count; i++) {
		uint64_t a = vshm_load_once(&tab[i].addr);
		uint32_t l = vshm_load_once(&tab[i].len);
		uint16_t f = vshm_load_once(&tab[i].flags);

		/* Only WRITE means something in a table (NEXT, the id and
		 * the wrap bits are ignored); a table in a table is refused. */
		if (f & PK_F_INDIRECT)
			return dev_fail(vq, "nested indirect table");
		rc = dev_take_buf(vq, bw, a, l, f & PK_F_WRITE);
		if (rc)
			return rc;
	}
	return 0;
}

static int dev_pop_one(struct vshm_dev_vq *vq, struct vshm_chain *c,
		       struct vshm_iov *iov, unsigned max_iov)
{
	struct buf_walk bw = { .c = c, .iov = iov, .max_iov = max_iov };
	uint32_t hops = 0;
	uint16_t k = vq->avail_idx, f, id = 0;
	int rc;

	if (!dev_avail_ready(vq, &f))
		return 0;

	memset(c, 0, sizeof(*c));
	c->iov = iov;
	for (;;) {
		const struct pk_desc *d = &vq->r.desc[k & vq->mask];
		uint64_t addr;
		uint32_t len;

		/* A chain longer than the queue would run into itself. */
		if (++hops > vq->num)
			return dev_fail(vq, "descriptor chain longer than the queue");
		if (hops > 1) {
			/* Every descriptor of a chain carries the wrap bits of
			 * its own slot (2.8.6), written before the head (P1). */
			f = vshm_load_once(&d->flags);
			if (!desc_avail(f, k, vq->shift))
				return dev_fail(vq, "chain continues into a descriptor that is not available");
		}
		addr = vshm_load_once(&d->addr);
		len = vshm_load_once(&d->len);

		if (f & PK_F_INDIRECT) {
			/* Only a head may point to a table, and it ends the
			 * chain; its own WRITE bit is ignored. */
			if (hops != 1)
				return dev_fail(vq, "indirect descriptor inside a chain");
			if (f & PK_F_NEXT)
				return dev_fail(vq, "indirect descriptor with NEXT");
			rc = dev_walk_table(vq, &bw, addr, len);
			if (rc)
				return rc;
		} else {
			rc = dev_take_buf(vq, &bw, addr, len, f & PK_F_WRITE);
			if (rc)
				return rc;
		}
		if (!(f & PK_F_NEXT)) {
			/* The buffer id is in the last descriptor. */
			id = vshm_load_once(&d->id);
			break;
		}
		k++;
	}
	if (id >= vq->num)
		return dev_fail(vq, "buffer id out of range");
	if (vq->ndesc[id])
		return dev_fail(vq, "buffer id already in flight");
	/* Slots we have read but not yet covered with used descriptors. */
	if ((uint16_t)(vq->avail_idx - vq->used_idx) + hops > vq->num)
		return dev_fail(vq, "more descriptors in flight than the queue size");
	vq->ndesc[id] = (uint16_t)hops;
	vq->avail_idx = (uint16_t)(vq->avail_idx + hops);
	c->head = id;
	vq->c.stats.chains++;
	if (c->indirect)
		vq->c.stats.indirect++;
	return 1;
}

static int packed_pop(struct vshm_dev_vq *vq, struct vshm_chain *c,
		      struct vshm_iov *iov, unsigned max_iov)
{
	if (vq->c.broken)
		return -EIO;
	return dev_pop_one(vq, c, iov, max_iov);
}

static int packed_push(struct vshm_dev_vq *vq, uint16_t id, uint32_t written)
{
	struct pk_desc *d;
	uint16_t n;

	if (vq->c.broken)
		return -EIO;
	if (id >= vq->num || !(n = vq->ndesc[id]))
		return -EINVAL;		/* not a chain we popped: caller bug */
	/*
	 * Our used position never passes our avail position (we covered
	 * fewer slots than we popped), so this slot was read by us already
	 * and the driver is not writing it.
	 */
	d = &vq->r.desc[vq->used_idx & vq->mask];
	vshm_store_once(&d->id, id);
	vshm_store_once(&d->len, written);
	/* P3: id, len, the buffer contents and our reads of the chain's
	 * descriptors before the flags (pairs with P4). */
	vshm_store_release(&d->flags, used_bits(vq->used_idx, vq->shift));
	vq->used_idx = (uint16_t)(vq->used_idx + n);
	vq->ndesc[id] = 0;
	vq->pushed += n;
	vq->c.stats.completions++;
	return 0;
}

/*
 * Testing only: a used descriptor with an arbitrary id over the next slot
 * we have read (never one the driver may still be writing: -EAGAIN when
 * there is none).  It covers one slot.
 */
static int packed_inject_used(struct vshm_dev_vq *vq, uint32_t id, uint32_t len)
{
	struct pk_desc *d;

	if (vq->c.broken)
		return -EIO;
	if (vq->used_idx == vq->avail_idx)
		return -EAGAIN;
	d = &vq->r.desc[vq->used_idx & vq->mask];
	vshm_store_once(&d->id, (uint16_t)id);
	vshm_store_once(&d->len, len);
	vshm_store_release(&d->flags, used_bits(vq->used_idx, vq->shift));
	vq->used_idx = (uint16_t)(vq->used_idx + 1);
	vq->pushed++;
	vq->c.stats.completions++;
	return 0;
}

static int packed_dev_publish(struct vshm_dev_vq *vq)
{
	uint16_t old = vq->used_pub, new_idx = vq->used_idx;
	uint32_t word;
	int need;

	if (vq->c.broken)
		return -EIO;
	if (vq->pushed == 0)
		return 0;
	/* The used descriptors are already visible (P3, per push). */
	vq->used_pub = new_idx;
	/* P7: the flag stores before the suppression load (pairs with P8). */
	vshm_mb();
	word = vshm_load_once(vq->r.drv_ev);
	if (vq->pushed >= vq->num)
		/* A whole ring since the last publish: whatever position the
		 * driver named, we passed it (and 16-bit positions may have
		 * come full circle). */
		need = ((word >> 16) & 3u) != PK_EV_DISABLE;
	else
		need = ev_wants(word, vq->event_idx, old, new_idx, vq->mask, vq->shift);
	vq->pushed = 0;
	if (!need)
		vq->c.stats.suppressed++;
	return need;
}

static int packed_enable_notify(struct vshm_dev_vq *vq)
{
	uint16_t f;

	if (vq->c.broken)
		return -EIO;
	vshm_store_once(vq->r.dev_ev, vq->event_idx ?
			ev_word(PK_EV_DESC, off_wrap(vq->avail_idx, vq->mask, vq->shift)) :
			ev_word(PK_EV_ENABLE, 0));
	/* P6: the request before the re-check (pairs with P5); the re-check
	 * is P2. */
	vshm_mb();
	return dev_avail_ready(vq, &f);
}

static void packed_disable_notify(struct vshm_dev_vq *vq)
{
	if (vq->c.broken)
		return;
	/*
	 * DISABLE in both modes: a stale DESC event would match again every
	 * two laps of the ring (wrap counters repeat), not every 65536.
	 */
	vshm_store_once(vq->r.dev_ev, ev_word(PK_EV_DISABLE, 0));
}

static const struct vq_drv_ops packed_drv_ops = {
	.add = packed_add,
	.publish = packed_drv_publish,
	.harvest_batch = packed_harvest_batch,
	.enable_cb = packed_enable_cb,
	.disable_cb = packed_disable_cb,
	.detach_unused = packed_detach_unused,
	.reset = packed_drv_reset,
	.num_free = packed_num_free,
	.inflight = packed_inflight,
	.destroy = packed_drv_destroy,
};

static const struct vq_dev_ops packed_dev_ops = {
	.pop = packed_pop,
	.push = packed_push,
	.inject_used = packed_inject_used,
	.publish = packed_dev_publish,
	.enable_notify = packed_enable_notify,
	.disable_notify = packed_disable_notify,
	.destroy = packed_dev_destroy,
};
