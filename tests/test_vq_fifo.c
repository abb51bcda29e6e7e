// SPDX-License-Identifier: MIT
/*
 * FIFO ring, functional: single-threaded checks of the API contract (layout,
 * refused layouts, add/publish/pop/push/harvest, full rings, PAD frames at
 * the wrap, out-of-order push with in-order release, notification
 * suppression both ways, detach, reset), then driver and device as two
 * threads over one window (tests/vq_harness.h: the device on its own
 * mapping with the header and mailbox PROT_NONE), a million requests of
 * random shapes, every byte verified both ways, completions pushed out of
 * order and released in order, polling and sleeping on doorbells.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <vshm/vq.h>
#include "tap.h"
#include "vq_harness.h"

static const uint64_t FIFO = 1ull << VSHM_F_FIFO_RING;

#define SENTINEL 0xee

static struct vshm_fifo_ctrl *ctrl(struct vshm_window *w, uint64_t off)
{
	return (struct vshm_fifo_ctrl *)(void *)(w->base + off);
}

static struct vshm_fifo_frame *frame_at(struct vshm_window *w, uint64_t block, uint32_t off)
{
	return (struct vshm_fifo_frame *)(void *)(w->base + block + VSHM_FIFO_CTRL_SIZE + off);
}

/* The mark at data offset @off of the block at @block, as the peer sees it. */
static uint32_t mark_of(struct vshm_window *w, uint64_t block, uint32_t off)
{
	return __atomic_load_n(&frame_at(w, block, off)->mark, __ATOMIC_ACQUIRE);
}

/* ======================================================================== */
/* Layouts                                                                  */

static void test_layout(void)
{
	struct vshm_window_opts o = { .size = 1 << 20, .vectors = 1 };
	struct vshm_window w;
	struct vshm_vq_layout l, bad;
	struct vshm_drv_vq *d;
	struct vshm_dev_vq *v;
	int64_t used;

	if (vshm_window_create(&w, &o)) {
		ok(0, "layout: window");
		return;
	}
	is(vshm_vq_layout_fifo(&l, w.drv_lo, 3, 4096), -EINVAL, "layout refuses 3 ids");
	is(vshm_vq_layout_fifo(&l, w.drv_lo, 65536, 4096), -EINVAL, "layout refuses 65536 ids");
	is(vshm_vq_layout_fifo(&l, w.drv_lo, 4, 2048), -EINVAL, "layout refuses 2 KiB rings");
	is(vshm_vq_layout_fifo(&l, w.drv_lo, 4, 6144), -EINVAL, "layout refuses a ring size not a power of two");
	is(vshm_vq_layout_fifo(&l, w.drv_lo, 4, 1u << 25), -EINVAL, "layout refuses 32 MiB rings");
	used = vshm_vq_layout_fifo(&l, w.drv_lo + 8, 4, 4096);
	ok(used == 56 + 2 * (256 + 4096) && l.desc % 64 == 0 && l.avail % 64 == 0 &&
	   l.avail >= l.desc + 256 + 4096 && l.used == 0 && l.num == 4 && l.ring_bytes == 4096,
	   "layout of 4 ids, 4 KiB rings: two aligned blocks (%lld bytes)", (long long)used);
	vshm_vq_layout_fifo(&l, w.drv_lo, 4, 4096);

	/* The driver refuses what it cannot lay out. */
	bad = l; bad.desc += 16;
	is(vshm_drv_vq_create(&d, &w, &bad, FIFO, NULL), -EINVAL, "driver refuses an unaligned block");
	bad = l; bad.used = bad.avail + 8192;
	is(vshm_drv_vq_create(&d, &w, &bad, FIFO, NULL), -EINVAL, "driver refuses used != 0");
	bad = l; bad.ring_bytes = 5000;
	is(vshm_drv_vq_create(&d, &w, &bad, FIFO, NULL), -EINVAL, "driver refuses ring_bytes not a power of two");
	bad = l; bad.avail = w.size - 4096;
	is(vshm_drv_vq_create(&d, &w, &bad, FIFO, NULL), -EINVAL, "driver refuses a block past the window end");
	bad = l; bad.avail = bad.desc + 2048;
	is(vshm_drv_vq_create(&d, &w, &bad, FIFO, NULL), -EINVAL, "driver refuses overlapping blocks");
	bad = l; bad.desc = VSHM_MBOX_OFF;
	is(vshm_drv_vq_create(&d, &w, &bad, FIFO, NULL), -EINVAL, "driver refuses a block in the mailbox");
	is(vshm_drv_vq_create(&d, &w, &l, FIFO | (1ull << VSHM_F_RING_PACKED), NULL), -EINVAL,
	   "driver refuses FIFO together with RING_PACKED");

	is(vshm_drv_vq_create(&d, &w, &l, FIFO, NULL), 0, "driver queue created");
	is(ctrl(&w, l.desc)->size, 4096, "driver wrote the D2V size");
	is(ctrl(&w, l.avail)->size, 4096, "driver wrote the V2D size");

	/* The device validates what the driver wrote. */
	bad = l; bad.desc += 16;
	is(vshm_dev_vq_create(&v, &w, &bad, FIFO, NULL), -EINVAL, "device refuses an unaligned block");
	bad = l; bad.used = 64;
	is(vshm_dev_vq_create(&v, &w, &bad, FIFO, NULL), -EINVAL, "device refuses used != 0");
	bad = l; bad.num = 6;
	is(vshm_dev_vq_create(&v, &w, &bad, FIFO, NULL), -EINVAL, "device refuses 6 ids");
	bad = l; bad.desc = 0;
	is(vshm_dev_vq_create(&v, &w, &bad, FIFO, NULL), -EINVAL, "device refuses a block in the header");
	bad = l; bad.avail = w.size - 128;
	is(vshm_dev_vq_create(&v, &w, &bad, FIFO, NULL), -EINVAL, "device refuses a control block past the end");
	ctrl(&w, l.desc)->size = 5000;
	is(vshm_dev_vq_create(&v, &w, &l, FIFO, NULL), -EINVAL, "device refuses a size not a power of two");
	ctrl(&w, l.desc)->size = 2048;
	is(vshm_dev_vq_create(&v, &w, &l, FIFO, NULL), -EINVAL, "device refuses a 2 KiB ring");
	ctrl(&w, l.desc)->size = 1u << 25;
	is(vshm_dev_vq_create(&v, &w, &l, FIFO, NULL), -EINVAL, "device refuses a 32 MiB ring");
	ctrl(&w, l.desc)->size = 1u << 20;
	is(vshm_dev_vq_create(&v, &w, &l, FIFO, NULL), -EINVAL, "device refuses a ring running out of the window");
	ctrl(&w, l.desc)->size = 8192;
	is(vshm_dev_vq_create(&v, &w, &l, FIFO, NULL), -EINVAL, "device refuses a ring overlapping the other block");
	ctrl(&w, l.desc)->size = 4096;
	ctrl(&w, l.avail)->flags = 1;
	is(vshm_dev_vq_create(&v, &w, &l, FIFO, NULL), -EINVAL, "device refuses non-zero flags");
	ctrl(&w, l.avail)->flags = 0;
	is(vshm_dev_vq_create(&v, &w, &l, FIFO | (1ull << VSHM_F_RING_PACKED), NULL), -EINVAL,
	   "device refuses FIFO together with RING_PACKED");
	is(vshm_dev_vq_create(&v, &w, &l, FIFO, NULL), 0, "device accepts the driver's layout");
	vshm_dev_vq_destroy(v);
	vshm_drv_vq_destroy(d);
	vshm_window_unmap(&w);
}

/* ======================================================================== */
/* The API contract, one thread                                             */

struct api {
	struct vshm_window w;	/* driver */
	struct vshm_window t;	/* device: header and mailbox PROT_NONE */
	struct vshm_vq_layout l;
	struct vshm_drv_vq *d;
	struct vshm_dev_vq *v;
	uint64_t buf;		/* driver buffers */
};

static int api_init(struct api *a, uint32_t num, uint32_t ring)
{
	struct vshm_window_opts o = { .size = 4u << 20, .vectors = 1 };
	int64_t used;

	memset(a, 0, sizeof(*a));
	if (vshm_window_create(&a->w, &o) || vshm_window_map(&a->t, a->w.fd) ||
	    vshm_window_protect_ctrl(&a->t, PROT_NONE))
		return -1;
	used = vshm_vq_layout_fifo(&a->l, a->w.drv_lo, num, ring);
	a->buf = (a->w.drv_lo + (uint64_t)used + 4095) & ~4095ull;
	if (vshm_drv_vq_create(&a->d, &a->w, &a->l, FIFO, NULL) ||
	    vshm_dev_vq_create(&a->v, &a->t, &a->l, FIFO, NULL))
		return -1;
	return 0;
}

static void api_fini(struct api *a)
{
	vshm_drv_vq_destroy(a->d);
	vshm_dev_vq_destroy(a->v);
	vshm_window_unmap(&a->t);
	vshm_window_unmap(&a->w);
}

/* Add one request: @out bytes of out_pat(seq) in one buffer, @in bytes of
 * writable buffer (sentinel-filled) in one buffer. */
static int add_simple(struct api *a, uint64_t seq, uint32_t out, uint32_t in, void *cookie)
{
	struct vshm_sg sg[2];
	unsigned n = 0;
	uint64_t slot = a->buf + (seq % 64) * 16384;

	for (uint32_t j = 0; j < out; j++)
		a->w.base[slot + j] = out_pat(seq, j);
	memset(a->w.base + slot + 8192, SENTINEL, in);
	sg[n++] = (struct vshm_sg){ slot, out, 0 };
	sg[n++] = (struct vshm_sg){ slot + 8192, in, 0 };
	return vshm_drv_vq_add(a->d, sg, 1, 1, cookie);
}

/* Device: check the out bytes of @c are out_pat(seq), write @written bytes. */
static int serve(struct vshm_chain *c, uint64_t seq, uint32_t written)
{
	int good = 1;

	if (c->nout) {
		const uint8_t *p = c->iov[0].base;

		for (uint32_t j = 0; j < c->iov[0].len; j++)
			good &= p[j] == out_pat(seq, j);
	}
	if (c->nin) {
		uint8_t *p = c->iov[c->nout].base;

		for (uint32_t j = 0; j < written && j < c->iov[c->nout].len; j++)
			p[j] = in_pat(seq, j);
	}
	return good;
}

/* Driver: the reply to request @seq arrived exactly: @len bytes, then the
 * untouched sentinel up to @in. */
static int reply_ok(struct api *a, uint64_t seq, uint32_t len, uint32_t in)
{
	const uint8_t *p = a->w.base + a->buf + (seq % 64) * 16384 + 8192;

	for (uint32_t j = 0; j < in; j++)
		if (p[j] != (j < len ? in_pat(seq, j) : SENTINEL))
			return 0;
	return 1;
}

static void test_api(void)
{
	struct api a;
	struct vshm_sg sg[4];
	struct vshm_iov iov[4];
	struct vshm_chain c, cs[4];
	struct vshm_vq_stats st;
	int ck[8];
	void *cookie;
	uint32_t len;
	uint8_t *d2v_data, *v2d_data;

	if (api_init(&a, 4, 4096)) {
		ok(0, "api: setup");
		return;
	}
	d2v_data = a.t.base + a.l.desc + 256;
	v2d_data = a.t.base + a.l.avail + 256;

	/* add refuses what can never work */
	for (int i = 0; i < 4; i++)
		sg[i] = (struct vshm_sg){ a.buf + (uint64_t)i * 4096, 100, 0 };
	is(vshm_drv_vq_add(a.d, sg, 1, 0, NULL), -EINVAL, "add refuses a NULL cookie");
	is(vshm_drv_vq_add(a.d, sg, 0, 0, &ck[0]), -EINVAL, "add refuses an empty request");
	sg[1].off = 0;
	is(vshm_drv_vq_add(a.d, sg, 2, 0, &ck[0]), -EINVAL, "add refuses a buffer in the header");
	sg[1].off = a.w.size - 50;
	is(vshm_drv_vq_add(a.d, sg, 1, 1, &ck[0]), -EINVAL, "add refuses a buffer past the end");
	sg[1].off = a.buf + 4096;
	sg[0].len = 2033;
	is(vshm_drv_vq_add(a.d, sg, 1, 0, &ck[0]), -EINVAL, "add refuses out data over half the ring");
	sg[0].len = 100;
	sg[1].len = 2033;
	is(vshm_drv_vq_add(a.d, sg, 1, 1, &ck[0]), -EINVAL, "add refuses in capacity over half the ring");
	sg[1].len = 100;
	is(vshm_drv_vq_num_free(a.d), 4, "refused adds took no id");

	/* one request, 2 out + 2 in buffers */
	for (uint32_t j = 0; j < 150; j++)
		a.w.base[(j < 100 ? a.buf + j : a.buf + 4096 + j - 100)] = out_pat(7, j);
	sg[1].len = 50;
	sg[2] = (struct vshm_sg){ a.buf + 8192, 100, 0 };
	sg[3] = (struct vshm_sg){ a.buf + 12288, 60, 0 };
	memset(a.w.base + a.buf + 8192, SENTINEL, 8192);
	is(vshm_dev_vq_pop(a.v, &c, iov, 4), 0, "device sees nothing before publish");
	is(vshm_drv_vq_add(a.d, sg, 2, 2, &ck[0]), 0, "add 2 out + 2 in");
	ok(mark_of(&a.w, a.l.desc, 0) == 0 && frame_at(&a.w, a.l.desc, 0)->a == 150 &&
	   frame_at(&a.w, a.l.desc, 0)->b == 160, "added: header written, mark still 0");
	is(mark_of(&a.w, a.l.desc, 176), 0, "the slot after the 176-byte frame reads 0");
	is(vshm_dev_vq_pop(a.v, &c, iov, 4), 0, "still nothing before publish");
	is(vshm_drv_vq_publish(a.d), 1, "first publish asks for a kick");
	is(mark_of(&a.w, a.l.desc, 0), VSHM_FIFO_MARK(0, VSHM_FIFO_REQUEST),
	   "publish stores the REQUEST's mark: position 0 | type 1");
	is(vshm_dev_vq_pop(a.v, &c, iov, 4), 1, "device pops the request");
	ok(c.nout == 1 && c.nin == 1 && c.out_bytes == 150 && c.in_bytes == 160 && c.iov == iov,
	   "chain: one inline out segment of 150, one in segment of 160");
	ok(iov[0].base == d2v_data + 16 && iov[0].len == 150, "out iov is the inline data in D2V");
	ok(iov[1].base == v2d_data + 16 && iov[1].len == 160, "in iov is the reserved completion in V2D");
	{
		int good = 1;

		for (uint32_t j = 0; j < 150; j++)
			good &= ((uint8_t *)iov[0].base)[j] == out_pat(7, j);
		ok(good, "the device reads the driver's bytes");
	}
	is(vshm_dev_vq_pop(a.v, &c, iov, 4), 0, "ring empty again");
	is(mark_of(&a.w, a.l.avail, 0), 0, "the reserved completion's mark stays 0");
	is(vshm_drv_vq_harvest(a.d, &cookie, &len), 0, "nothing to harvest before the device publishes");
	for (uint32_t j = 0; j < 130; j++)
		((uint8_t *)iov[1].base)[j] = in_pat(7, j);
	is(vshm_dev_vq_push(a.v, (uint16_t)(c.head ^ 1), 1), -EINVAL, "push of an id never popped: -EINVAL");
	is(vshm_dev_vq_push(a.v, 4, 1), -EINVAL, "push of id 4: -EINVAL");
	is(vshm_dev_vq_push(a.v, c.head, 130), 0, "push 130 bytes");
	is(mark_of(&a.w, a.l.avail, 0), 0, "push releases nothing: the mark is publish's");
	is(vshm_dev_vq_push(a.v, c.head, 130), -EINVAL, "a second push of the same id: -EINVAL");
	ok(!vshm_dev_vq_broken(a.v), "caller errors do not break the queue");
	is(vshm_dev_vq_publish(a.v), 1, "device publish notifies (callbacks on)");
	is(ctrl(&a.w, a.l.desc)->head, 176, "D2V head released past the request");
	ok(mark_of(&a.w, a.l.avail, 0) == VSHM_FIFO_MARK(0, VSHM_FIFO_COMPLETION) &&
	   frame_at(&a.w, a.l.avail, 0)->id == c.head && frame_at(&a.w, a.l.avail, 0)->a == 130 &&
	   frame_at(&a.w, a.l.avail, 0)->b == 0 && frame_at(&a.w, a.l.avail, 0)->zero == 0,
	   "V2D: COMPLETION at 0 with id, written 130, b 0");
	is(mark_of(&a.w, a.l.avail, 176), 0, "V2D: the slot after it reads 0");
	is(vshm_drv_vq_harvest(a.d, &cookie, &len), 1, "driver harvests");
	ok(cookie == &ck[0] && len == 130, "cookie and length come back");
	{
		const uint8_t *p = a.w.base + a.buf + 8192, *q = a.w.base + a.buf + 12288;
		int good = 1;

		for (uint32_t j = 0; j < 100; j++)
			good &= p[j] == in_pat(7, j);
		for (uint32_t j = 0; j < 60; j++)
			good &= q[j] == (j < 30 ? in_pat(7, 100 + j) : SENTINEL);
		good &= p[100] == SENTINEL && q[60] == SENTINEL;
		ok(good, "reply copied across both in buffers, nothing past the written bytes");
	}
	is(ctrl(&a.w, a.l.avail)->head, 176, "V2D head released after the copy");
	is(vshm_drv_vq_num_free(a.d), 4, "id free again");
	is(vshm_dev_vq_push(a.v, c.head, 0), -EINVAL, "push after release: -EINVAL");

	/* written larger than the capacity is clamped, and out-only / in-only shapes */
	is(add_simple(&a, 1, 0, 10, &ck[1]), 0, "add in-only (out buffer of 0 bytes)");
	is(add_simple(&a, 2, 20, 0, &ck[2]), 0, "add out-only (in buffer of 0 bytes)");
	vshm_drv_vq_publish(a.d);
	is(vshm_dev_vq_pop(a.v, &cs[0], iov, 1), 1, "pop in-only with one iov");
	ok(cs[0].nout == 0 && cs[0].nin == 1 && iov[0].len == 10, "in-only chain: iov[0] is writable");
	serve(&cs[0], 1, 10);
	is(vshm_dev_vq_push(a.v, cs[0].head, 50), 0, "push more than the capacity");
	is(vshm_dev_vq_pop(a.v, &cs[1], iov + 2, 1), 1, "pop out-only with one iov");
	ok(cs[1].nout == 1 && cs[1].nin == 0 && serve(&cs[1], 2, 0), "out-only chain carries its bytes");
	vshm_dev_vq_push(a.v, cs[1].head, 0);
	vshm_dev_vq_publish(a.v);
	ok(vshm_drv_vq_harvest(a.d, &cookie, &len) == 1 && cookie == &ck[1] && len == 10 &&
	   reply_ok(&a, 1, 10, 10), "clamped to the 10 writable bytes");
	ok(vshm_drv_vq_harvest(a.d, &cookie, &len) == 1 && cookie == &ck[2] && len == 0,
	   "out-only completes with 0");

	/* full: ids */
	for (int i = 0; i < 4; i++)
		is(add_simple(&a, 10 + (unsigned)i, 8, 8, &ck[i]), 0, "add %d of 4", i + 1);
	is(add_simple(&a, 14, 8, 8, &ck[4]), -ENOSPC, "no free id -> -ENOSPC");
	is(vshm_drv_vq_num_free(a.d), 0, "num_free 0");
	vshm_drv_vq_publish(a.d);
	is(vshm_drv_vq_inflight(a.d), 4, "four in flight");

	/* out-of-order push, in-order release */
	{
		struct vshm_iov biov[8];
		void *cks[4];
		uint32_t lens[4];
		int good = 1;

		is(vshm_dev_vq_pop_batch(a.v, cs, 4, biov, 2), 4, "pop_batch takes all four");
		for (int i = 0; i < 4; i++)
			good &= serve(&cs[i], 10 + (unsigned)i, 8);
		ok(good, "four requests carry their bytes, in order");
		vshm_dev_vq_push(a.v, cs[2].head, 8);
		vshm_dev_vq_push(a.v, cs[3].head, 7);
		is(vshm_dev_vq_publish(a.v), 0, "completions 3 and 4 are held back behind 1");
		is(vshm_drv_vq_harvest(a.d, &cookie, &len), 0, "driver sees nothing yet");
		vshm_dev_vq_push(a.v, cs[0].head, 6);
		is(vshm_dev_vq_publish(a.v), 1, "completion 1 released");
		ok(vshm_drv_vq_harvest(a.d, &cookie, &len) == 1 && cookie == &ck[0] && len == 6 &&
		   reply_ok(&a, 10, 6, 8), "harvest 1");
		is(vshm_drv_vq_harvest(a.d, &cookie, &len), 0, "2 is still in flight, 3 and 4 wait");
		vshm_dev_vq_push(a.v, cs[1].head, 5);
		vshm_dev_vq_publish(a.v);
		is(vshm_drv_vq_harvest_batch(a.d, cks, lens, 4), 3, "harvest_batch gets 2, 3, 4");
		ok(cks[0] == &ck[1] && cks[1] == &ck[2] && cks[2] == &ck[3] &&
		   lens[0] == 5 && lens[1] == 8 && lens[2] == 7 &&
		   reply_ok(&a, 11, 5, 8) && reply_ok(&a, 12, 8, 8) && reply_ok(&a, 13, 7, 8),
		   "in request order, with their replies");
	}
	vshm_drv_vq_stats(a.d, &st);
	ok(st.chains == 7 && st.completions == 7, "driver counted 7 requests and 7 completions");
	vshm_dev_vq_stats(a.v, &st);
	ok(st.chains == 7 && st.completions == 7, "device counted 7 pops and 7 pushes");
	ok(!vshm_drv_vq_broken(a.d) && !vshm_dev_vq_broken(a.v), "both sides healthy");
	api_fini(&a);
}

/* Full rings: D2V bytes, V2D room for completions. */
static void test_room(void)
{
	struct api a;
	struct vshm_iov iov[8];
	struct vshm_chain c[4];
	int ck[4];
	void *cookie;
	uint32_t len;

	if (api_init(&a, 4, 4096)) {
		ok(0, "room: setup");
		return;
	}
	/* 2048 + 2032 bytes, and the 16 a producer keeps free after its frames */
	is(add_simple(&a, 0, 2032, 0, &ck[0]), 0, "a 2048-byte request");
	is(add_simple(&a, 1, 2016, 0, &ck[1]), 0, "a 2032-byte one fills D2V");
	is(add_simple(&a, 2, 0, 0, &ck[2]), -ENOSPC, "D2V full -> -ENOSPC");
	is(vshm_drv_vq_num_free(a.d), 2, "while ids are free");
	vshm_drv_vq_publish(a.d);
	is(vshm_dev_vq_pop(a.v, &c[0], iov, 2), 1, "pop");
	vshm_dev_vq_push(a.v, c[0].head, 0);
	is(add_simple(&a, 2, 0, 0, &ck[2]), -ENOSPC, "popped and pushed is not released");
	vshm_dev_vq_publish(a.v);
	is(add_simple(&a, 2, 0, 0, &ck[2]), 0, "released bytes are reusable before the harvest");
	ok(vshm_drv_vq_harvest(a.d, &cookie, &len) == 1 && cookie == &ck[0], "harvest");
	is(vshm_dev_vq_pop(a.v, &c[1], iov + 2, 2), 1, "pop the second");
	vshm_dev_vq_push(a.v, c[1].head, 0);
	vshm_dev_vq_publish(a.v);
	vshm_drv_vq_harvest(a.d, &cookie, &len);
	vshm_drv_vq_publish(a.d);
	is(vshm_dev_vq_pop(a.v, &c[2], iov + 4, 2), 1, "pop the third");
	vshm_dev_vq_push(a.v, c[2].head, 0);
	vshm_dev_vq_publish(a.v);
	ok(vshm_drv_vq_harvest(a.d, &cookie, &len) == 1 && cookie == &ck[2], "harvest the third");

	/* V2D, on fresh rings: completions of 2048, 2032 and 2032 bytes,
	 * room for two */
	api_fini(&a);
	if (api_init(&a, 4, 4096)) {
		ok(0, "room: setup");
		return;
	}
	for (int i = 0; i < 3; i++)
		add_simple(&a, 10 + (unsigned)i, 0, i ? 2016 : 2032, &ck[i]);
	vshm_drv_vq_publish(a.d);
	is(vshm_dev_vq_pop(a.v, &c[0], iov, 2), 1, "pop a 2032-byte in request");
	is(vshm_dev_vq_pop(a.v, &c[1], iov + 2, 2), 1, "pop another");
	is(vshm_dev_vq_pop(a.v, &c[2], iov + 4, 2), 0, "no V2D room: nothing poppable now");
	ok(!vshm_dev_vq_broken(a.v), "not broken");
	is(vshm_dev_vq_enable_notify(a.v), 1, "a request waiting for room counts as pending");
	serve(&c[0], 10, 2032);
	vshm_dev_vq_push(a.v, c[0].head, 2032);
	vshm_dev_vq_publish(a.v);
	is(vshm_dev_vq_pop(a.v, &c[2], iov + 4, 2), 0, "released but not harvested: still no room");
	ok(vshm_drv_vq_harvest(a.d, &cookie, &len) == 1 && cookie == &ck[0] && len == 2032 &&
	   reply_ok(&a, 10, 2032, 2032), "harvest frees the room");
	is(vshm_dev_vq_pop(a.v, &c[2], iov + 4, 2), 1, "now it pops");
	ok(c[2].nin == 1 && c[2].in_bytes == 2016 && iov[4].base == a.t.base + a.l.avail + 256 + 16,
	   "its completion is at the start of V2D");
	serve(&c[1], 11, 1);
	serve(&c[2], 12, 2);
	vshm_dev_vq_push(a.v, c[2].head, 2);
	vshm_dev_vq_push(a.v, c[1].head, 1);
	vshm_dev_vq_publish(a.v);
	ok(vshm_drv_vq_harvest(a.d, &cookie, &len) == 1 && cookie == &ck[1] && reply_ok(&a, 11, 1, 2016) &&
	   vshm_drv_vq_harvest(a.d, &cookie, &len) == 1 && cookie == &ck[2] && reply_ok(&a, 12, 2, 2016),
	   "both harvested in order");
	ok(!vshm_drv_vq_broken(a.d) && !vshm_dev_vq_broken(a.v), "both sides healthy");
	api_fini(&a);
}

/* PAD frames where a frame does not fit before the end. */
static void test_wrap(void)
{
	struct api a;
	struct vshm_iov iov[8];
	struct vshm_chain c;
	struct vshm_fifo_frame *f;
	int ck[4];
	void *cookie;
	uint32_t len;
	uint64_t rs = 88172645463325252ull;
	unsigned long bad = 0, done = 0;

	if (api_init(&a, 4, 4096)) {
		ok(0, "wrap: setup");
		return;
	}
	/* two requests take D2V and V2D to offset 3568 */
	add_simple(&a, 0, 2032, 2032, &ck[0]);
	add_simple(&a, 1, 1504, 1504, &ck[1]);
	vshm_drv_vq_publish(a.d);
	for (int i = 0; i < 2; i++) {
		vshm_dev_vq_pop(a.v, &c, iov, 2);
		vshm_dev_vq_push(a.v, c.head, 0);
	}
	vshm_dev_vq_publish(a.v);
	vshm_drv_vq_harvest(a.d, &cookie, &len);
	vshm_drv_vq_harvest(a.d, &cookie, &len);
	is(ctrl(&a.w, a.l.avail)->head, 3568, "both rings at offset 3568");

	is(add_simple(&a, 2, 1000, 1000, &ck[2]), 0, "add a 1024-byte frame with 528 bytes left");
	f = frame_at(&a.w, a.l.desc, 3568);
	ok(f->mark == 0 && !f->id && !f->a && !f->b, "D2V: a PAD covers the rest, its mark held");
	f = frame_at(&a.w, a.l.desc, 0);
	ok(f->mark == VSHM_FIFO_MARK(3568 + 528, VSHM_FIFO_REQUEST) && f->a == 1000 && f->b == 1000,
	   "D2V: the REQUEST starts at offset 0 with its mark (position 4096)");
	is(mark_of(&a.w, a.l.desc, 1024), 0, "D2V: the slot after it reads 0");
	vshm_drv_vq_publish(a.d);
	is(mark_of(&a.w, a.l.desc, 3568), VSHM_FIFO_MARK(3568, VSHM_FIFO_PAD), "D2V: publish releases the PAD");
	is(vshm_dev_vq_pop(a.v, &c, iov, 2), 1, "device skips the PAD and pops");
	ok(iov[0].base == a.t.base + a.l.desc + 256 + 16 && serve(&c, 2, 999),
	   "out data read from offset 16");
	is(mark_of(&a.w, a.l.avail, 3568), 0, "V2D: nothing released before publish");
	ok(iov[1].base == a.t.base + a.l.avail + 256 + 16, "V2D: the completion starts at offset 0");
	vshm_dev_vq_push(a.v, c.head, 999);
	vshm_dev_vq_publish(a.v);
	f = frame_at(&a.w, a.l.avail, 3568);
	ok(mark_of(&a.w, a.l.avail, 3568) == VSHM_FIFO_MARK(3568, VSHM_FIFO_PAD) &&
	   !f->id && !f->a && !f->b, "V2D: the device released a PAD before its completion");
	is(mark_of(&a.w, a.l.avail, 0), VSHM_FIFO_MARK(4096, VSHM_FIFO_COMPLETION),
	   "V2D: the COMPLETION at offset 0 names position 4096");
	ok(vshm_drv_vq_harvest(a.d, &cookie, &len) == 1 && cookie == &ck[2] && len == 999 &&
	   reply_ok(&a, 2, 999, 1000), "driver skips the PAD and harvests the reply");
	is(ctrl(&a.w, a.l.avail)->head, 3568 + 528 + 1024, "V2D head past both");

	/* Many laps with random sizes, 1..4 in flight, pushed in any order. */
	{
		struct vshm_chain held[4];
		struct vshm_iov hiov[4][2];
		uint64_t hseq[4], seq = 100, next_harvest = 100, dev_seq = 100;
		uint32_t inlen[64];
		unsigned nheld = 0;

		while (done < 20000 && bad == 0) {
			uint32_t out = (uint32_t)(rnd(&rs) % 2033), in = (uint32_t)(rnd(&rs) % 2033);
			int rc;

			if ((rnd(&rs) & 1) && add_simple(&a, seq, out, in, &ck[0]) == 0) {
				inlen[seq % 64] = in;
				seq++;
			}
			vshm_drv_vq_publish(a.d);
			if (nheld < 4) {
				rc = vshm_dev_vq_pop(a.v, &held[nheld], hiov[nheld], 2);
				if (rc < 0)
					bad++;
				if (rc == 1) {
					if (!serve(&held[nheld], dev_seq, 0))
						bad++;
					hseq[nheld++] = dev_seq++;
				}
			}
			if (nheld && (rnd(&rs) & 1)) {
				unsigned k = (unsigned)(rnd(&rs) % nheld);
				uint32_t wr = (uint32_t)(rnd(&rs) % (held[k].in_bytes + 1));

				serve(&held[k], hseq[k], wr);
				vshm_dev_vq_push(a.v, held[k].head, wr);
				vshm_dev_vq_publish(a.v);
				nheld--;
				held[k] = held[nheld];
				hseq[k] = hseq[nheld];
				memcpy(hiov[k], hiov[nheld], sizeof(hiov[k]));
				held[k].iov = hiov[k];
			}
			while ((rc = vshm_drv_vq_harvest(a.d, &cookie, &len)) == 1) {
				if (!reply_ok(&a, next_harvest, len, inlen[next_harvest % 64]))
					bad++;
				next_harvest++;
				done++;
			}
			if (rc < 0)
				bad++;
		}
	}
	ok(bad == 0 && done >= 20000, "20000 requests over 4 KiB rings, many laps (%lu bad)", bad);
	ok(!vshm_drv_vq_broken(a.d) && !vshm_dev_vq_broken(a.v), "both sides healthy (%s / %s)",
	   vshm_drv_vq_error(a.d) ? vshm_drv_vq_error(a.d) : "-",
	   vshm_dev_vq_error(a.v) ? vshm_dev_vq_error(a.v) : "-");
	api_fini(&a);
}

/* Event words: kicks and completion notifications, suppressed and not. */
static void test_notify(void)
{
	struct api a;
	struct vshm_iov iov[8];
	struct vshm_chain c[4];
	struct vshm_vq_stats st;
	int ck[8];
	void *cookie;
	uint32_t len;

	if (api_init(&a, 4, 4096)) {
		ok(0, "notify: setup");
		return;
	}
	/* driver -> device */
	add_simple(&a, 0, 8, 8, &ck[0]);
	is(vshm_drv_vq_publish(a.d), 1, "kick: the device's event starts at 0");
	add_simple(&a, 1, 8, 8, &ck[1]);
	is(vshm_drv_vq_publish(a.d), 0, "no kick: the device has not re-armed");
	is(vshm_dev_vq_enable_notify(a.v), 1, "enable_notify sees pending requests (do not sleep)");
	vshm_dev_vq_pop(a.v, &c[0], iov, 2);
	vshm_dev_vq_pop(a.v, &c[1], iov + 2, 2);
	is(vshm_dev_vq_enable_notify(a.v), 0, "armed with nothing pending");
	add_simple(&a, 2, 8, 8, &ck[2]);
	is(vshm_drv_vq_publish(a.d), 1, "kick: the release moved past the device's event");
	vshm_dev_vq_pop(a.v, &c[2], iov + 4, 2);
	is(vshm_dev_vq_enable_notify(a.v), 0, "armed again");
	vshm_dev_vq_disable_notify(a.v);
	add_simple(&a, 3, 8, 8, &ck[3]);
	is(vshm_drv_vq_publish(a.d), 0, "no kick after disable_notify");
	vshm_dev_vq_pop(a.v, &c[3], iov + 6, 2);

	/* device -> driver */
	vshm_dev_vq_push(a.v, c[0].head, 1);
	is(vshm_dev_vq_publish(a.v), 1, "notify: the driver's event starts at 0");
	vshm_dev_vq_push(a.v, c[1].head, 1);
	is(vshm_dev_vq_publish(a.v), 0, "no notify: the driver has not harvested");
	ok(vshm_drv_vq_harvest(a.d, &cookie, &len) == 1 && vshm_drv_vq_harvest(a.d, &cookie, &len) == 1,
	   "harvest both");
	vshm_dev_vq_push(a.v, c[2].head, 1);
	is(vshm_dev_vq_publish(a.v), 1, "notify: harvest moved the event along");
	is(vshm_drv_vq_harvest(a.d, &cookie, &len), 1, "harvest it");
	vshm_drv_vq_disable_cb(a.d);
	{
		uint32_t ev;

		vshm_dev_vq_push(a.v, c[3].head, 1);
		is(vshm_dev_vq_publish(a.v), 0, "no notify: callbacks disabled");
		is(vshm_drv_vq_enable_cb(a.d), 1, "enable_cb reports the pending completion");
		vshm_drv_vq_disable_cb(a.d);
		ev = ctrl(&a.w, a.l.avail)->event;
		is(vshm_drv_vq_harvest(a.d, &cookie, &len), 1, "harvest it");
		is(ctrl(&a.w, a.l.avail)->event, ev,
		   "with callbacks off, a harvest leaves the event word alone");
		vshm_drv_vq_enable_cb(a.d);
	}
	is(vshm_drv_vq_enable_cb(a.d), 0, "armed with nothing pending");
	add_simple(&a, 4, 8, 8, &ck[4]);
	add_simple(&a, 5, 8, 8, &ck[5]);
	is(vshm_drv_vq_publish(a.d), 0, "still no kick: the device's event is behind");
	vshm_dev_vq_pop(a.v, &c[0], iov, 2);
	vshm_dev_vq_pop(a.v, &c[1], iov + 2, 2);
	vshm_dev_vq_push(a.v, c[0].head, 1);
	is(vshm_dev_vq_publish(a.v), 1, "notify once re-armed");
	vshm_drv_vq_disable_cb(a.d);
	is(vshm_drv_vq_harvest(a.d, &cookie, &len), 1, "harvest with callbacks off");
	vshm_dev_vq_push(a.v, c[1].head, 1);
	is(vshm_dev_vq_publish(a.v), 0, "no notify: a harvest with callbacks off keeps the event behind");
	is(vshm_drv_vq_harvest(a.d, &cookie, &len), 1, "harvest the last");
	vshm_dev_vq_stats(a.v, &st);
	is(st.suppressed, 3, "device counted 3 suppressed notifications");
	vshm_drv_vq_stats(a.d, &st);
	is(st.suppressed, 3, "driver counted 3 suppressed kicks");
	api_fini(&a);
}

/* detach_unused and reset. */
static void test_detach_reset(void)
{
	struct api a;
	struct vshm_iov iov[4];
	struct vshm_chain c;
	int ck[4], seen[4] = { 0 };
	void *cookie, *p;
	uint32_t len;
	unsigned n = 0;

	if (api_init(&a, 4, 4096)) {
		ok(0, "detach: setup");
		return;
	}
	add_simple(&a, 0, 8, 8, &ck[0]);
	add_simple(&a, 1, 8, 8, &ck[1]);
	vshm_drv_vq_publish(a.d);
	add_simple(&a, 2, 8, 8, &ck[2]);	/* never published */
	vshm_dev_vq_pop(a.v, &c, iov, 2);
	vshm_dev_vq_push(a.v, c.head, 8);
	vshm_dev_vq_publish(a.v);		/* released, never harvested */
	is(vshm_drv_vq_inflight(a.d), 2, "two published, one added");
	is(vshm_drv_vq_reset(a.d), -EBUSY, "reset refused with requests outstanding");
	while ((p = vshm_drv_vq_detach_unused(a.d)) != NULL && n < 8) {
		for (int i = 0; i < 4; i++)
			if (p == &ck[i])
				seen[i]++;
		n++;
	}
	ok(n == 3 && seen[0] == 1 && seen[1] == 1 && seen[2] == 1, "detach returns each cookie once");
	ok(vshm_drv_vq_detach_unused(a.d) == NULL, "then NULL");
	is(vshm_drv_vq_num_free(a.d), 4, "every id free");
	is(vshm_drv_vq_inflight(a.d), 0, "nothing in flight");
	is(vshm_drv_vq_reset(a.d), 0, "reset");
	ok(mark_of(&a.w, a.l.desc, 0) == 0 && ctrl(&a.w, a.l.desc)->head == 0 &&
	   mark_of(&a.w, a.l.avail, 0) == 0 && ctrl(&a.w, a.l.avail)->head == 0 &&
	   ctrl(&a.w, a.l.desc)->size == 4096 && ctrl(&a.w, a.l.avail)->size == 4096,
	   "control blocks re-initialised");
	vshm_dev_vq_destroy(a.v);
	is(vshm_dev_vq_create(&a.v, &a.t, &a.l, FIFO, NULL), 0, "device re-enables the queue");
	add_simple(&a, 5, 30, 30, &ck[3]);
	is(vshm_drv_vq_publish(a.d), 1, "kick after reset");
	ok(vshm_dev_vq_pop(a.v, &c, iov, 2) == 1 && serve(&c, 5, 30), "pop after reset");
	vshm_dev_vq_push(a.v, c.head, 30);
	vshm_dev_vq_publish(a.v);
	ok(vshm_drv_vq_harvest(a.d, &cookie, &len) == 1 && cookie == &ck[3] && reply_ok(&a, 5, 30, 30),
	   "harvest after reset");
	api_fini(&a);
}

/* ======================================================================== */
/* Two threads (tests/vq_harness.h)                                         */

static void run(const char *name, uint32_t ring, int sleepy, unsigned long chains)
{
	struct vqh_cfg c = {
		.name = name, .layout = vshm_vq_layout_fifo, .layout_arg = ring,
		.features = FIFO, .sleepy = sleepy, .chains = chains,
		.max_out = 3, .max_in = 3, .max_bytes = ring / 2 - 16, .in_order = 1,
	};

	vqh_run(&c);
}

int main(void)
{
	unsigned long n = tap_scale(250000);

	test_layout();
	test_api();
	test_room();
	test_wrap();
	test_notify();
	test_detach_reset();
	/* Four configurations, a million requests in all. */
	run("64 KiB rings, polling", 65536, 0, n);
	run("8 KiB rings, polling", 8192, 0, n);
	run("64 KiB rings, sleeping", 65536, 1, n);
	run("8 KiB rings, sleeping", 8192, 1, n);
	return tap_done();
}
