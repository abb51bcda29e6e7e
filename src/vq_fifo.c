// SPDX-License-Identifier: MIT
/*
 * FIFO ring (docs/fifo-ring.md), both sides.
 *
 * Two byte rings in the driver area carry the data inline: D2V holds
 * REQUEST frames (header + the bytes the device reads), V2D holds
 * COMPLETION frames (header + the bytes the device wrote).  Nothing in a
 * frame points anywhere else, so the device touches only the two ring
 * blocks, and the driver copies in and out of its own buffers.
 *
 * Ownership of ring memory, and therefore who may be trusted about what:
 *
 *   D2V frames ................... written by the driver only
 *   D2V head, D2V event .......... written by the device only
 *   V2D frames ................... written by the device only
 *   V2D head, V2D event .......... written by the driver only
 *   size, flags (both blocks) .... the driver, before the queue is enabled
 *
 * There is no tail word.  Each frame's first word, its mark, is 0 until
 * the frame is produced and then (position | type), stored after the rest
 * of the frame: with release for the first frame of a publish, plainly for
 * the frames behind it, which the consumer reaches only through that
 * first one.  A consumer polls the mark at its consume position and nothing
 * else; a producer keeps the mark of the slot after its last frame at 0
 * (it zeroes it before it releases the frame in front), so a consumer that
 * arrives there sees 0 or the next frame, never last lap's bytes.  Hence
 * a producer always leaves the 16 bytes after its frames free.
 *
 * Each side keeps private copies of everything it needs: the ring sizes
 * (the device loads them once, at create), its own positions, and per-id
 * records (the driver: cookie, in buffers, reservation; the device: where
 * the request and its completion live).  Peer-written words are loaded once
 * into a local, checked against that private state, then used; frame
 * headers likewise, field by field.  Payload bytes are only copied (driver)
 * or handed out as iovs (device), never parsed.
 *
 * Requests are released in pop order and completions come back in that
 * order, so both sides keep their outstanding ids in a FIFO; the driver
 * also keeps the in buffers of its requests in a FIFO pool.
 *
 * Memory-ordering labels (docs/memory-model.md has the table):
 *   Q1  driver: release store of a D2V mark  - pairs with Q2
 *   Q2  device: acquire load of a D2V mark   - pairs with Q1
 *   Q3  device: release store of D2V head    - pairs with Q6
 *   Q6  driver: acquire load of D2V head     - pairs with Q3
 *   Q7  device: release store of a V2D mark  - pairs with Q4
 *   Q4  driver: acquire load of a V2D mark   - pairs with Q7
 *   Q5  driver: release store of V2D head    - pairs with Q8
 *   Q8  device: acquire load of V2D head     - pairs with Q5
 *   QF  both:   full fence between a mark release and the load of the
 *               peer's event, and between an event store and the re-check
 *               of the mark
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <vshm/vq.h>
#include "barrier.h"
#include "vq_internal.h"

/* ======================================================================== */
/* Generic helpers                                                          */

#define HDR	16u	/* sizeof(struct vshm_fifo_frame); also the slack a
			   producer keeps free after its frames */

static inline uint64_t align_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) & ~(a - 1);
}

static int num_ok(uint32_t num)
{
	return num >= 1 && num <= VSHM_VQ_MAX_SIZE && !(num & (num - 1));
}

static int ring_size_ok(uint32_t s)
{
	return s >= VSHM_FIFO_MIN_SIZE && s <= VSHM_FIFO_MAX_SIZE && !(s & (s - 1));
}

/* A frame carrying @payload bytes: header plus payload, rounded up to 16. */
static inline uint64_t frame_len(uint64_t payload)
{
	return align_up(HDR + payload, 16);
}

/* The event-index rule on byte positions: notify if event is in [old, new). */
static inline int need_event32(uint32_t event, uint32_t new_pos, uint32_t old)
{
	return (uint32_t)(new_pos - event - 1) < (uint32_t)(new_pos - old);
}

int64_t vshm_vq_layout_fifo(struct vshm_vq_layout *l, uint64_t base,
			    uint32_t num, uint32_t ring_bytes)
{
	uint64_t p;

	if (!num_ok(num) || !ring_size_ok(ring_bytes))
		return -EINVAL;
	memset(l, 0, sizeof(*l));
	l->num = num;
	l->ring_bytes = ring_bytes;
	p = align_up(base, VSHM_FIFO_ALIGN);
	l->desc = p;
	p += VSHM_FIFO_CTRL_SIZE + (uint64_t)ring_bytes;
	p = align_up(p, VSHM_FIFO_ALIGN);
	l->avail = p;
	p += VSHM_FIFO_CTRL_SIZE + (uint64_t)ring_bytes;
	p = align_up(p, VSHM_FIFO_ALIGN);
	return (int64_t)(p - base);
}

/* One direction as a side sees it: pointers into the window, private size. */
struct fifo_ring {
	struct vshm_fifo_ctrl *ctl;
	uint8_t *data;		/* ctl + 256 */
	uint32_t size;		/* private copy: data bytes, power of two */
	uint32_t mask;		/* size - 1 */
};

/* Map the block at @off with @size data bytes; -EINVAL if it does not fit. */
static int map_block(const struct vshm_window *w, uint64_t off, uint32_t size,
		     struct fifo_ring *r)
{
	uint8_t *p;

	if (off & (VSHM_FIFO_ALIGN - 1) || !ring_size_ok(size))
		return -EINVAL;
	p = vshm_win_ptr(w, off, VSHM_FIFO_CTRL_SIZE + (uint64_t)size);
	if (!p)
		return -EINVAL;
	r->ctl = (struct vshm_fifo_ctrl *)(void *)p;
	r->data = p + VSHM_FIFO_CTRL_SIZE;
	r->size = size;
	r->mask = size - 1;
	return 0;
}

/* Both blocks lie in the window (no overflow possible); do they overlap? */
static int blocks_overlap(uint64_t a, uint32_t asize, uint64_t b, uint32_t bsize)
{
	return a < b + VSHM_FIFO_CTRL_SIZE + bsize && b < a + VSHM_FIFO_CTRL_SIZE + asize;
}

/*
 * A frame header past its mark, loaded field by field exactly once (after
 * the acquire load of the mark), and the length that follows from it.
 */
struct frame_copy {
	uint32_t len;		/* derived, never loaded */
	uint16_t type;		/* from the mark */
	uint16_t id;
	uint16_t zero;
	uint32_t a;
	uint32_t b;
};

static inline void load_frame(const uint8_t *p, uint32_t mark, struct frame_copy *f)
{
	const struct vshm_fifo_frame *h = (const void *)p;

	f->len = 0;
	f->type = (uint16_t)VSHM_FIFO_MARK_TYPE(mark);
	f->id = vshm_load_once(&h->id);
	f->zero = vshm_load_once(&h->zero);
	f->a = vshm_load_once(&h->a);
	f->b = vshm_load_once(&h->b);
}

static inline uint32_t *mark_at(const struct fifo_ring *r, uint32_t pos)
{
	return (uint32_t *)(void *)(r->data + (pos & r->mask));
}

/* Our own frame header, mark included (0 while the frame is held back). */
static inline void store_frame(uint8_t *p, uint32_t mark, uint16_t id, uint32_t a, uint32_t b)
{
	struct vshm_fifo_frame *h = (void *)p;

	vshm_store_once(&h->mark, mark);
	h->id = id;
	h->zero = 0;
	h->a = a;
	h->b = b;
}

/*
 * Checks every frame shares, for the consumer at @pos of @r, which has
 * released everything before @rel: the mark names this position, and
 * @len bytes from @pos lie before the end of the data area and inside
 * what the producer may have written (everything but the 16 bytes it
 * keeps free).  A PAD also gets its length here: the rest of the data
 * area, which is less than half of it (only a frame that does not fit
 * needs one), with id, a and b zero.  Returns the reason, or NULL.
 */
static const char *frame_bad(const struct fifo_ring *r, uint32_t pos, uint32_t rel,
			     uint32_t mark, struct frame_copy *f)
{
	uint32_t rest = r->size - (pos & r->mask);

	if (VSHM_FIFO_MARK_POS(mark) != pos)
		return "frame mark does not name its position";
	if (f->zero)
		return "frame header field zero is not zero";
	if (f->type == VSHM_FIFO_PAD) {
		if (f->id || f->a || f->b)
			return "PAD with non-zero id, a or b";
		if (rest >= r->size / 2)
			return "PAD where a frame would have fitted";
		f->len = rest;
	}
	if (f->len > rest)
		return "frame runs past the end of the data area";
	if (pos + f->len - rel > r->size - HDR)
		return "frame extends into bytes not yet released to the producer";
	return NULL;
}

/* ======================================================================== */
/* FIFO ring: driver side                                                   */

enum { DRV_FREE, DRV_ADDED, DRV_PUBLISHED };

/* Private per-id state; index = request id. */
struct drv_id {
	void *cookie;		/* non-NULL while the id is in use */
	uint32_t in_len;	/* writable bytes posted */
	uint32_t res;		/* the COMPLETION frame the device reserves */
	uint32_t nin;		/* in buffers, in the pool from sg_first */
	uint32_t sg_first;	/* pool position (free-running) */
	uint8_t state;		/* DRV_* */
};

struct vshm_drv_vq {
	struct vq_common c;	/* first: format, broken, error, notify, stats */
	struct vshm_window *w;
	struct fifo_ring d2v;	/* we produce */
	struct fifo_ring v2d;	/* we consume */
	uint32_t num;
	uint32_t mask;
	bool cb_enabled;	/* we want completion notifications */

	uint32_t d_tail;	/* next D2V byte we write (private) */
	uint32_t d_pub;		/* D2V bytes published (Q1) */
	uint32_t d_head;	/* D2V head as last loaded (Q6), validated */
	uint16_t d_held;	/* type of the frame at d_pub, mark held back */
	uint32_t v_head;	/* next V2D byte to read (private) */
	uint32_t v_hpub;	/* V2D head as last stored (Q5) */

	uint16_t *free_ids;	/* stack of unused ids */
	uint32_t nfree;
	uint16_t *order;	/* ids in D2V order, num entries, free-running: */
	uint32_t ord_head;	/*   oldest not yet harvested */
	uint32_t ord_pub;	/*   [ord_head, ord_pub) published */
	uint32_t ord_tail;	/*   [ord_pub, ord_tail) added, not published */
	struct vshm_sg *pool;	/* in buffers of those requests, same order */
	uint32_t pool_cap;	/* power of two */
	uint32_t pool_head;
	uint32_t pool_tail;
	struct drv_id *st;
};

static int drv_fail(struct vshm_drv_vq *vq, const char *why)
{
	return vq_fail(&vq->c, why);
}

static void drv_init_ring(struct vshm_drv_vq *vq)
{
	uint32_t i;

	/* The driver owns setup: both control blocks start zeroed, and so
	 * does the mark of each ring's first frame. */
	memset(vq->d2v.ctl, 0, VSHM_FIFO_CTRL_SIZE);
	memset(vq->v2d.ctl, 0, VSHM_FIFO_CTRL_SIZE);
	vshm_store_once(&vq->d2v.ctl->size, vq->d2v.size);
	vshm_store_once(&vq->v2d.ctl->size, vq->v2d.size);
	vshm_store_once(mark_at(&vq->d2v, 0), 0);
	vshm_store_once(mark_at(&vq->v2d, 0), 0);
	vq->d_tail = vq->d_pub = vq->d_head = 0;
	vq->d_held = 0;
	vq->v_head = vq->v_hpub = 0;
	for (i = 0; i < vq->num; i++) {
		vq->free_ids[i] = (uint16_t)(vq->num - 1 - i);	/* id 0 first */
		memset(&vq->st[i], 0, sizeof(vq->st[i]));
	}
	vq->nfree = vq->num;
	vq->ord_head = vq->ord_pub = vq->ord_tail = 0;
	vq->pool_head = vq->pool_tail = 0;
	vq->cb_enabled = true;
}

static const struct vq_drv_ops fifo_drv_ops;
static void fifo_drv_destroy(struct vshm_drv_vq *vq);

int vq_fifo_drv_create(struct vshm_drv_vq **out, struct vshm_window *w,
		       const struct vshm_vq_layout *l, uint64_t features)
{
	struct vshm_drv_vq *vq;

	*out = NULL;
	/* FIFO and packed exclude each other (the device refuses FEATURES_OK). */
	if ((features >> VSHM_F_RING_PACKED) & 1)
		return -EINVAL;
	if (!num_ok(l->num) || l->used != 0 || !ring_size_ok(l->ring_bytes))
		return -EINVAL;
	vq = calloc(1, sizeof(*vq));
	if (!vq)
		return -ENOMEM;
	if (map_block(w, l->desc, l->ring_bytes, &vq->d2v) ||
	    map_block(w, l->avail, l->ring_bytes, &vq->v2d) ||
	    blocks_overlap(l->desc, l->ring_bytes, l->avail, l->ring_bytes)) {
		free(vq);
		return -EINVAL;
	}
	vq->c.format = VSHM_VQ_FMT_FIFO;
	vq->c.ops.drv = &fifo_drv_ops;
	vq->w = w;
	vq->num = l->num;
	vq->mask = l->num - 1;
	vq->pool_cap = l->num * 4 < 256 ? 256 : l->num * 4;
	vq->free_ids = calloc(l->num, sizeof(*vq->free_ids));
	vq->order = calloc(l->num, sizeof(*vq->order));
	vq->pool = calloc(vq->pool_cap, sizeof(*vq->pool));
	vq->st = calloc(l->num, sizeof(*vq->st));
	if (!vq->free_ids || !vq->order || !vq->pool || !vq->st) {
		fifo_drv_destroy(vq);
		return -ENOMEM;
	}
	drv_init_ring(vq);
	*out = vq;
	return 0;
}

static void fifo_drv_destroy(struct vshm_drv_vq *vq)
{
	if (!vq)
		return;
	free(vq->free_ids);
	free(vq->order);
	free(vq->pool);
	free(vq->st);
	free(vq);
}

/*
 * Is there room for @need more bytes in D2V, plus the 16 we keep free after
 * them?  Reloads the device's head only when our last copy says no.  1, 0,
 * or -EIO.
 */
static int drv_d2v_room(struct vshm_drv_vq *vq, uint32_t need)
{
	uint32_t h;

	need += HDR;
	if (vq->d2v.size - (vq->d_tail - vq->d_head) >= need)
		return 1;
	/* Q6: the device's reads of the bytes it released happen before we
	 * overwrite them (pairs with Q3). */
	h = vshm_load_acquire(&vq->d2v.ctl->head);
	if (h & 15)
		return drv_fail(vq, "D2V head not a multiple of 16");
	if ((uint32_t)(h - vq->d_head) > (uint32_t)(vq->d_pub - vq->d_head))
		return drv_fail(vq, (int32_t)(h - vq->d_head) < 0 ?
				"D2V head moved backwards" :
				"D2V head ran past the driver's tail");
	vq->d_head = h;
	return vq->d2v.size - (vq->d_tail - vq->d_head) >= need;
}

static int fifo_add(struct vshm_drv_vq *vq, const struct vshm_sg *sg,
		    unsigned nout, unsigned nin, void *cookie, unsigned flags)
{
	unsigned n = nout + nin, i;
	uint64_t out_len = 0, in_len = 0;
	uint32_t len, off, pad, room_end, res;
	uint8_t *p;
	uint16_t id;
	int rc;

	(void)flags;		/* indirect hints mean nothing here */
	if (vq->c.broken)
		return -EIO;
	if (!cookie || n == 0 || n < nout)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (!vshm_win_range_ok(vq->w, sg[i].off, sg[i].len))
			return -EINVAL;
		if (i < nout)
			out_len += sg[i].len;
		else
			in_len += sg[i].len;
		if (out_len > UINT32_MAX || in_len > UINT32_MAX)
			return -EINVAL;
	}
	/* Frames are at most half a data area (docs/fifo-ring.md, Frames). */
	if (frame_len(out_len) > vq->d2v.size / 2 || frame_len(in_len) > vq->v2d.size / 2 ||
	    nin > vq->pool_cap)
		return -EINVAL;		/* can never fit */
	if (vq->nfree == 0 || vq->pool_cap - (vq->pool_tail - vq->pool_head) < nin)
		return -ENOSPC;

	len = (uint32_t)frame_len(out_len);
	res = (uint32_t)frame_len(in_len);
	off = vq->d_tail & vq->d2v.mask;
	room_end = vq->d2v.size - off;
	pad = room_end < len ? room_end : 0;
	rc = drv_d2v_room(vq, pad + len);
	if (rc <= 0)
		return rc < 0 ? rc : -ENOSPC;

	/*
	 * Everything from d_tail on is ours until Q1 publishes it.  The first
	 * frame after d_pub keeps its mark at 0 until publish releases it;
	 * frames behind it get theirs now, as the device reaches them only
	 * through that release.
	 */
	if (vq->d_tail == vq->d_pub)
		vq->d_held = pad ? VSHM_FIFO_PAD : VSHM_FIFO_REQUEST;
	if (pad) {
		store_frame(vq->d2v.data + off,
			    vq->d_tail == vq->d_pub ? 0 : VSHM_FIFO_MARK(vq->d_tail, VSHM_FIFO_PAD),
			    0, 0, 0);
		off = 0;
	}
	id = vq->free_ids[--vq->nfree];
	p = vq->d2v.data + off;
	store_frame(p, vq->d_tail + pad == vq->d_pub ? 0 :
		    VSHM_FIFO_MARK(vq->d_tail + pad, VSHM_FIFO_REQUEST),
		    id, (uint32_t)out_len, (uint32_t)in_len);
	p += HDR;
	for (i = 0; i < nout; i++) {
		/* memmove: a caller's buffer overlapping the ring is nonsense,
		 * but not undefined behaviour. */
		memmove(p, vq->w->base + sg[i].off, sg[i].len);
		p += sg[i].len;
	}
	memset(p, 0, len - HDR - (uint32_t)out_len);

	vq->st[id].cookie = cookie;
	vq->st[id].in_len = (uint32_t)in_len;
	vq->st[id].res = res;
	vq->st[id].nin = nin;
	vq->st[id].sg_first = vq->pool_tail;
	vq->st[id].state = DRV_ADDED;
	for (i = 0; i < nin; i++)
		vq->pool[(vq->pool_tail++) & (vq->pool_cap - 1)] = sg[nout + i];
	vq->order[(vq->ord_tail++) & vq->mask] = id;
	vq->d_tail += pad + len;
	/* The slot after our last frame reads 0 until we produce there. */
	vshm_store_once(mark_at(&vq->d2v, vq->d_tail), 0);
	vq->c.stats.chains++;
	return 0;
}

static int fifo_drv_publish(struct vshm_drv_vq *vq)
{
	uint32_t old = vq->d_pub, new_pos = vq->d_tail, i;
	int need;

	if (vq->c.broken)
		return -EIO;
	if (old == new_pos)
		return 0;
	for (i = vq->ord_pub; i != vq->ord_tail; i++)
		vq->st[vq->order[i & vq->mask]].state = DRV_PUBLISHED;
	vq->ord_pub = vq->ord_tail;

	/* Q1: the first new frame's mark, after everything the new frames
	 * hold, the marks behind it and the zeroed slot after them (pairs
	 * with Q2). */
	vshm_store_release(mark_at(&vq->d2v, old), VSHM_FIFO_MARK(old, vq->d_held));
	vq->d_pub = new_pos;

	/* QF: the mark store before the event load (pairs with the device's
	 * QF in enable_notify). */
	vshm_mb();
	need = need_event32(vshm_load_once(&vq->d2v.ctl->event), new_pos, old);
	if (!need)
		vq->c.stats.suppressed++;
	return need;
}

/* Is a frame (or a broken peer's bytes) at v_head?  A hint, not a load
 * anything is parsed from. */
static int drv_v2d_more(struct vshm_drv_vq *vq)
{
	return vshm_load_once(mark_at(&vq->v2d, vq->v_head)) != 0;
}

/* Copy @written reply bytes into the in buffers recorded for @s. */
static void drv_copy_out(struct vshm_drv_vq *vq, const struct drv_id *s,
			 const uint8_t *src, uint32_t written)
{
	uint32_t k, m;

	for (k = 0; k < s->nin && written; k++) {
		const struct vshm_sg *b = &vq->pool[(s->sg_first + k) & (vq->pool_cap - 1)];

		m = b->len < written ? b->len : written;
		memmove(vq->w->base + b->off, src, m);
		src += m;
		written -= m;
	}
}

/*
 * Consume frames at v_head until one COMPLETION is harvested.  1 with the
 * cookie and length, 0 when nothing (more) is released, -EIO.  A PAD is
 * followed by a frame at offset 0, which cannot be a PAD: two rounds at
 * most.
 */
static int drv_harvest_one(struct vshm_drv_vq *vq, void **cookie, uint32_t *len)
{
	for (;;) {
		const uint8_t *p = vq->v2d.data + (vq->v_head & vq->v2d.mask);
		struct frame_copy f;
		struct drv_id *s;
		const char *bad;
		uint32_t m;

		/* Q4: the completion's header and reply bytes, and the marks
		 * behind it (pairs with Q7). */
		m = vshm_load_acquire((const uint32_t *)(const void *)p);
		if (m == 0)
			return 0;
		load_frame(p, m, &f);
		if (f.type == VSHM_FIFO_PAD) {
			bad = frame_bad(&vq->v2d, vq->v_head, vq->v_hpub, m, &f);
			if (bad)
				return drv_fail(vq, bad);
			vq->v_head += f.len;
			continue;
		}
		if (f.type != VSHM_FIFO_COMPLETION)
			return drv_fail(vq, "unknown V2D frame type");
		if (f.id >= vq->num)
			return drv_fail(vq, "completion id out of range");
		s = &vq->st[f.id];
		if (s->state != DRV_PUBLISHED)
			return drv_fail(vq, "completion id is not a request in flight");
		/* Released in pop order, which is D2V order. */
		if (vq->order[vq->ord_head & vq->mask] != f.id)
			return drv_fail(vq, "completion out of request order");
		f.len = s->res;		/* exactly the reservation */
		bad = frame_bad(&vq->v2d, vq->v_head, vq->v_hpub, m, &f);
		if (bad)
			return drv_fail(vq, bad);
		if (f.a > s->in_len)
			return drv_fail(vq, "completion written larger than the writable buffers");
		if (f.b != 0)
			return drv_fail(vq, "completion field b not zero");

		drv_copy_out(vq, s, p + HDR, f.a);
		*cookie = s->cookie;
		*len = f.a;
		vq->pool_head += s->nin;
		vq->ord_head++;
		memset(s, 0, sizeof(*s));
		vq->free_ids[vq->nfree++] = f.id;
		vq->v_head += f.len;
		vq->c.stats.completions++;
		return 1;
	}
}

/* Give consumed V2D bytes back to the device and move our event along. */
static void drv_release_v2d(struct vshm_drv_vq *vq)
{
	if (vq->v_head == vq->v_hpub)
		return;
	/* With callbacks on, the next completion after these notifies.  With
	 * them off the event stays where disable_cb left it, behind: not
	 * storing it keeps its line out of the device's way. */
	if (vq->cb_enabled)
		vshm_store_once(&vq->v2d.ctl->event, vq->v_head);
	/* Q5: our copies out of the released frames are done before the
	 * device may reuse the bytes (pairs with Q8). */
	vshm_store_release(&vq->v2d.ctl->head, vq->v_head);
	vq->v_hpub = vq->v_head;
}

static int fifo_harvest_batch(struct vshm_drv_vq *vq, void **cookies,
			      uint32_t *lens, unsigned max)
{
	unsigned n = 0;
	int rc = 0;

	if (vq->c.broken)
		return -EIO;
	while (n < max) {
		rc = drv_harvest_one(vq, &cookies[n], &lens[n]);
		if (rc <= 0)
			break;
		n++;
	}
	drv_release_v2d(vq);
	/* What was harvested before a violation is still the caller's. */
	if (rc < 0 && n == 0)
		return rc;
	return (int)n;
}

static int fifo_enable_cb(struct vshm_drv_vq *vq)
{
	if (vq->c.broken)
		return -EIO;
	vq->cb_enabled = true;
	vshm_store_once(&vq->v2d.ctl->event, vq->v_head);
	/* QF: the event store before the re-check of the mark (pairs with
	 * the device's QF in publish). */
	vshm_mb();
	return drv_v2d_more(vq);
}

static void fifo_disable_cb(struct vshm_drv_vq *vq)
{
	vq->cb_enabled = false;
	if (vq->c.broken)
		return;
	/* Behind everything the device can release from here on. */
	vshm_store_once(&vq->v2d.ctl->event, vq->v_head - 1);
}

static void *fifo_detach_unused(struct vshm_drv_vq *vq)
{
	struct drv_id *s;
	void *cookie;
	uint16_t id;

	if (vq->ord_head == vq->ord_tail)
		return NULL;
	id = vq->order[vq->ord_head & vq->mask];
	s = &vq->st[id];
	cookie = s->cookie;
	if (vq->ord_pub == vq->ord_head)
		vq->ord_pub++;		/* it was never published */
	vq->ord_head++;
	vq->pool_head += s->nin;
	memset(s, 0, sizeof(*s));
	vq->free_ids[vq->nfree++] = id;
	return cookie;
}

static int fifo_drv_reset(struct vshm_drv_vq *vq)
{
	if (vq->ord_head != vq->ord_tail)
		return -EBUSY;
	drv_init_ring(vq);
	return 0;
}

static unsigned fifo_num_free(const struct vshm_drv_vq *vq) { return vq->nfree; }
static unsigned fifo_inflight(const struct vshm_drv_vq *vq) { return vq->ord_pub - vq->ord_head; }

/* ======================================================================== */
/* FIFO ring: device side                                                   */

enum { DEV_FREE, DEV_POPPED, DEV_DONE };

/* Private per-id state; index = request id. */
struct dev_id {
	uint32_t d2v_pos;	/* where its REQUEST frame starts */
	uint32_t v2d_pos;	/* where its reservation starts (PAD included) */
	uint32_t v2d_frame;	/* where its COMPLETION frame starts (after a PAD
				   when it is not v2d_pos) */
	uint32_t res;		/* COMPLETION frame length */
	uint32_t in_len;	/* writable bytes the driver asked for */
	uint32_t written;	/* bytes of reply, from push */
	uint8_t state;		/* DEV_*: in flight from pop until released */
};

struct vshm_dev_vq {
	struct vq_common c;	/* first: format, broken, error, notify, stats */
	const struct vshm_window *w;
	struct fifo_ring d2v;	/* we consume */
	struct fifo_ring v2d;	/* we produce */
	uint32_t num;
	uint32_t mask;

	uint32_t d_head;	/* next D2V byte to parse (private) */
	uint32_t d_rel;		/* D2V head as last stored (Q3) */
	uint32_t v_tail;	/* next V2D byte to reserve (private) */
	uint32_t v_rel;		/* V2D bytes released (Q7) */
	uint32_t v_head;	/* V2D head as last loaded (Q8), validated */

	uint16_t *order;	/* popped ids in pop order, num entries */
	uint32_t ord_head;	/* oldest not yet released */
	uint32_t ord_tail;
	struct dev_id *st;

	bool pend;		/* pf: a validated REQUEST at d_head that waits */
	struct frame_copy pf;	/*     for V2D room (never loaded twice) */
};

static int dev_fail(struct vshm_dev_vq *vq, const char *why)
{
	return vq_fail(&vq->c, why);
}

static const struct vq_dev_ops fifo_dev_ops;
static void fifo_dev_destroy(struct vshm_dev_vq *vq);

int vq_fifo_dev_create(struct vshm_dev_vq **out, const struct vshm_window *w,
		       const struct vshm_vq_layout *l, uint64_t features)
{
	const struct vshm_fifo_ctrl *dc, *vc;
	struct vshm_dev_vq *vq;
	uint32_t dsize, vsize, dflags, vflags;

	*out = NULL;
	if ((features >> VSHM_F_RING_PACKED) & 1)
		return -EINVAL;
	if (!num_ok(l->num) || l->used != 0 ||
	    (l->desc & (VSHM_FIFO_ALIGN - 1)) || (l->avail & (VSHM_FIFO_ALIGN - 1)))
		return -EINVAL;
	dc = vshm_win_ptr(w, l->desc, VSHM_FIFO_CTRL_SIZE);
	vc = vshm_win_ptr(w, l->avail, VSHM_FIFO_CTRL_SIZE);
	/* Control blocks apart before any load: one block for both would
	 * have its size word loaded twice, as D2V's and as V2D's. */
	if (!dc || !vc || blocks_overlap(l->desc, 0, l->avail, 0))
		return -EINVAL;
	/* The sizes are loaded once, here; later rewrites change nothing. */
	dsize = vshm_load_once(&dc->size);
	dflags = vshm_load_once(&dc->flags);
	vsize = vshm_load_once(&vc->size);
	vflags = vshm_load_once(&vc->flags);
	if (dflags || vflags)
		return -EINVAL;
	vq = calloc(1, sizeof(*vq));
	if (!vq)
		return -ENOMEM;
	if (map_block(w, l->desc, dsize, &vq->d2v) || map_block(w, l->avail, vsize, &vq->v2d) ||
	    blocks_overlap(l->desc, dsize, l->avail, vsize)) {
		free(vq);
		return -EINVAL;
	}
	vq->c.format = VSHM_VQ_FMT_FIFO;
	vq->c.ops.dev = &fifo_dev_ops;
	vq->w = w;
	vq->num = l->num;
	vq->mask = l->num - 1;
	vq->order = calloc(l->num, sizeof(*vq->order));
	vq->st = calloc(l->num, sizeof(*vq->st));
	if (!vq->order || !vq->st) {
		fifo_dev_destroy(vq);
		return -ENOMEM;
	}
	/*
	 * The device owns D2V head and event and the V2D frames: start them
	 * at 0, where the driver's setup put them.  An event of 0 asks for a
	 * kick on the first request.  (The message exchange that enabled the
	 * queue orders these for the driver; no ring pair is involved yet.)
	 */
	vshm_store_once(&vq->d2v.ctl->event, 0);
	vshm_store_once(&vq->d2v.ctl->head, 0);
	vshm_store_once(mark_at(&vq->v2d, 0), 0);
	*out = vq;
	return 0;
}

static void fifo_dev_destroy(struct vshm_dev_vq *vq)
{
	if (!vq)
		return;
	free(vq->order);
	free(vq->st);
	free(vq);
}

/*
 * Parse frames at d_head until a REQUEST that passes every check is in
 * vq->pf.  PADs are consumed on the way (a PAD is followed by a frame at
 * offset 0, which cannot be a PAD).  1, 0 (nothing produced), -EIO.
 */
static int dev_next_request(struct vshm_dev_vq *vq)
{
	for (;;) {
		const uint8_t *p = vq->d2v.data + (vq->d_head & vq->d2v.mask);
		struct frame_copy f;
		const char *bad;
		uint32_t m;

		/* Q2: the request's header and inline data, and the marks
		 * behind it (pairs with Q1). */
		m = vshm_load_acquire((const uint32_t *)(const void *)p);
		if (m == 0)
			return 0;
		load_frame(p, m, &f);
		if (f.type == VSHM_FIFO_REQUEST) {
			if (f.a > vq->d2v.size / 2 || frame_len(f.a) > vq->d2v.size / 2)
				return dev_fail(vq, "REQUEST longer than half the data area");
			f.len = (uint32_t)frame_len(f.a);
		} else if (f.type != VSHM_FIFO_PAD) {
			return dev_fail(vq, "unknown D2V frame type");
		}
		bad = frame_bad(&vq->d2v, vq->d_head, vq->d_rel, m, &f);
		if (bad)
			return dev_fail(vq, bad);
		if (f.type == VSHM_FIFO_PAD) {
			vq->d_head += f.len;
			continue;
		}
		if (f.id >= vq->num)
			return dev_fail(vq, "REQUEST id out of range");
		if (vq->st[f.id].state != DEV_FREE)
			return dev_fail(vq, "REQUEST id already in flight");
		if (frame_len(f.b) > vq->v2d.size / 2)
			return dev_fail(vq, "REQUEST in_len too big for the V2D ring");
		vq->pf = f;
		vq->pend = true;
		return 1;
	}
}

/*
 * Room for @need more V2D bytes, plus the 16 we keep free after them?
 * Reloads the driver's head only when our last copy says no.  1, 0, or
 * -EIO.
 */
static int dev_v2d_room(struct vshm_dev_vq *vq, uint32_t need)
{
	uint32_t h;

	need += HDR;
	if (vq->v2d.size - (vq->v_tail - vq->v_head) >= need)
		return 1;
	/* Q8: the driver's copies out of the bytes it consumed happen before
	 * we reuse them (pairs with Q5). */
	h = vshm_load_acquire(&vq->v2d.ctl->head);
	if (h & 15)
		return dev_fail(vq, "V2D head not a multiple of 16");
	if ((uint32_t)(h - vq->v_head) > (uint32_t)(vq->v_rel - vq->v_head))
		return dev_fail(vq, (int32_t)(h - vq->v_head) < 0 ?
				"V2D head moved backwards" :
				"V2D head ran past the device's tail");
	vq->v_head = h;
	return vq->v2d.size - (vq->v_tail - vq->v_head) >= need;
}

static int fifo_pop(struct vshm_dev_vq *vq, struct vshm_chain *c,
		    struct vshm_iov *iov, unsigned max_iov)
{
	struct dev_id *s;
	uint32_t res, off, pad, rest, doff;
	unsigned segs, niov = 0;
	uint16_t id;
	int rc;

	if (vq->c.broken)
		return -EIO;
	if (!vq->pend) {
		rc = dev_next_request(vq);
		if (rc <= 0)
			return rc;
	}
	segs = (vq->pf.a != 0) + (vq->pf.b != 0);
	if (segs > max_iov)
		return dev_fail(vq, "chain has more buffers than the device accepts");

	/* Reserve the completion (after a PAD if it would not fit before
	 * the end); without room the request waits for the driver's harvest. */
	res = (uint32_t)frame_len(vq->pf.b);
	off = vq->v_tail & vq->v2d.mask;
	rest = vq->v2d.size - off;
	pad = rest < res ? rest : 0;
	rc = dev_v2d_room(vq, pad + res);
	if (rc <= 0)
		return rc;

	/*
	 * Bytes from v_tail on are ours until Q7 releases them.  Nothing is
	 * written to them here: the headers, their marks and the zeroed slot
	 * after the last one are all stored by publish, in one burst, so the
	 * line the driver polls changes hands once per release.  The device
	 * model writes only the reply bytes, after the header.
	 */
	if (pad)
		off = 0;
	id = vq->pf.id;
	s = &vq->st[id];
	s->d2v_pos = vq->d_head;
	s->v2d_pos = vq->v_tail;
	s->v2d_frame = vq->v_tail + pad;
	s->res = res;
	s->in_len = vq->pf.b;
	s->state = DEV_POPPED;
	vq->order[(vq->ord_tail++) & vq->mask] = id;

	doff = vq->d_head & vq->d2v.mask;
	memset(c, 0, sizeof(*c));
	c->head = id;
	c->iov = iov;
	c->out_bytes = vq->pf.a;
	c->in_bytes = vq->pf.b;
	if (vq->pf.a) {
		/* Checked in frame_bad: the frame lies in what the driver
		 * may have written, before the end of the data area. */
		iov[niov].base = vq->d2v.data + doff + HDR;
		iov[niov].len = vq->pf.a;
		niov++;
		c->nout = 1;
	}
	if (vq->pf.b) {
		iov[niov].base = vq->v2d.data + off + HDR;
		iov[niov].len = vq->pf.b;
		c->nin = 1;
	}
	vq->d_head += vq->pf.len;
	vq->v_tail += pad + res;
	vq->pend = false;
	vq->c.stats.chains++;
	return 1;
}

static int fifo_push(struct vshm_dev_vq *vq, uint16_t head, uint32_t written)
{
	struct dev_id *s;

	if (vq->c.broken)
		return -EIO;
	if (head >= vq->num || vq->st[head].state != DEV_POPPED)
		return -EINVAL;		/* not a request we popped: our caller's bug */
	s = &vq->st[head];
	if (written > s->in_len)
		written = s->in_len;	/* never claim more than the driver offered */
	s->written = written;	/* the header is publish's */
	s->state = DEV_DONE;
	vq->c.stats.completions++;
	return 0;
}

/* Mark @pos with @type: relaxed for a frame behind the first one released,
 * which Q7 publishes; nothing for that first one, whose type is returned. */
static inline void dev_mark(struct vshm_dev_vq *vq, uint32_t pos, uint16_t type,
			    uint32_t first, uint16_t *first_type)
{
	if (pos == first)
		*first_type = type;
	else
		vshm_store_once(mark_at(&vq->v2d, pos), VSHM_FIFO_MARK(pos, type));
}

static int fifo_dev_publish(struct vshm_dev_vq *vq)
{
	uint32_t rel_d = vq->d_head, rel_v = vq->v_tail, old = vq->v_rel;
	uint16_t first_type = 0;
	int need;

	if (vq->c.broken)
		return -EIO;
	/* Release in pop order, up to the first request still in flight. */
	while (vq->ord_head != vq->ord_tail) {
		struct dev_id *s = &vq->st[vq->order[vq->ord_head & vq->mask]];

		if (s->state != DEV_DONE) {
			rel_d = s->d2v_pos;
			rel_v = s->v2d_pos;
			break;
		}
		if (s->v2d_pos != s->v2d_frame) {
			store_frame(vq->v2d.data + (s->v2d_pos & vq->v2d.mask), 0, 0, 0, 0);
			dev_mark(vq, s->v2d_pos, VSHM_FIFO_PAD, old, &first_type);
		}
		store_frame(vq->v2d.data + (s->v2d_frame & vq->v2d.mask), 0,
			    vq->order[vq->ord_head & vq->mask], s->written, 0);
		dev_mark(vq, s->v2d_frame, VSHM_FIFO_COMPLETION, old, &first_type);
		s->state = DEV_FREE;
		vq->ord_head++;
	}
	if (rel_d != vq->d_rel) {
		/* Q3: our reads of the released requests happen before the
		 * driver reuses the bytes (pairs with Q6).  Stored before Q7,
		 * so a driver that harvested a completion also sees its
		 * request's bytes free. */
		vshm_store_release(&vq->d2v.ctl->head, rel_d);
		vq->d_rel = rel_d;
	}
	if (rel_v == old)
		return 0;
	/* The slot after the last released frame reads 0 until it is
	 * released in turn: it is free, or a reservation still in flight. */
	vshm_store_once(mark_at(&vq->v2d, rel_v), 0);
	/* Q7: the first released frame's mark, after the completion headers,
	 * reply bytes, the marks behind it and the zeroed slot (pairs with
	 * Q4). */
	vshm_store_release(mark_at(&vq->v2d, old), VSHM_FIFO_MARK(old, first_type));
	vq->v_rel = rel_v;
	/* QF: the mark store before the event load (pairs with the driver's
	 * QF in enable_cb). */
	vshm_mb();
	need = need_event32(vshm_load_once(&vq->v2d.ctl->event), rel_v, old);
	if (!need)
		vq->c.stats.suppressed++;
	return need;
}

static int fifo_enable_notify(struct vshm_dev_vq *vq)
{
	if (vq->c.broken)
		return -EIO;
	vshm_store_once(&vq->d2v.ctl->event, vq->d_head);
	/* QF: the event store before the re-check of the mark (pairs with
	 * the driver's QF in publish). */
	vshm_mb();
	/* A request waiting for V2D room counts as pending: the driver's
	 * harvest frees the room but does not kick (docs/fifo-ring.md).  Its
	 * mark is not loaded again. */
	if (vq->pend)
		return 1;
	return vshm_load_once(mark_at(&vq->d2v, vq->d_head)) != 0;
}

static void fifo_disable_notify(struct vshm_dev_vq *vq)
{
	if (vq->c.broken)
		return;
	/* Behind everything the driver can publish from here on. */
	vshm_store_once(&vq->d2v.ctl->event, vq->d_head - 1);
}

static const struct vq_drv_ops fifo_drv_ops = {
	.add = fifo_add,
	.publish = fifo_drv_publish,
	.harvest_batch = fifo_harvest_batch,
	.enable_cb = fifo_enable_cb,
	.disable_cb = fifo_disable_cb,
	.detach_unused = fifo_detach_unused,
	.reset = fifo_drv_reset,
	.num_free = fifo_num_free,
	.inflight = fifo_inflight,
	.destroy = fifo_drv_destroy,
};

static const struct vq_dev_ops fifo_dev_ops = {
	.pop = fifo_pop,
	.push = fifo_push,
	.publish = fifo_dev_publish,
	.enable_notify = fifo_enable_notify,
	.disable_notify = fifo_disable_notify,
	.destroy = fifo_dev_destroy,
};
