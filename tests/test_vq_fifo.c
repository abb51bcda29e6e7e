// SPDX-License-Identifier: MIT
/*
 * FIFO ring, functional: single-threaded checks of the API contract (layout,
 * refused layouts, add/publish/pop/push/harvest, full rings, PAD frames at
 * the wrap, out-of-order push with in-order release, notification
 * suppression both ways, detach, reset), then driver and device as two
 * threads over one window (the device on its own mapping with the header
 * and mailbox PROT_NONE), a million requests of random shapes, every byte
 * verified both ways, completions pushed out of order, polling and
 * sleeping on notifications.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <vshm/vq.h>
#include "barrier.h"
#include "tap.h"

static const uint64_t FIFO = 1ull << VSHM_F_FIFO_RING;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static inline uint8_t out_pat(uint64_t seq, uint64_t j) { return (uint8_t)(seq * 131 + j * 7 + 1); }
static inline uint8_t in_pat(uint64_t seq, uint64_t j) { return (uint8_t)(seq * 29 + j * 13 + 5); }

#define SENTINEL 0xee

static struct vshm_fifo_ctrl *ctrl(struct vshm_window *w, uint64_t off)
{
	return (struct vshm_fifo_ctrl *)(void *)(w->base + off);
}

static struct vshm_fifo_frame *frame_at(struct vshm_window *w, uint64_t block, uint32_t off)
{
	return (struct vshm_fifo_frame *)(void *)(w->base + block + VSHM_FIFO_CTRL_SIZE + off);
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
	is(vshm_dev_vq_pop(a.v, &c, iov, 4), 0, "still nothing before publish");
	is(vshm_drv_vq_publish(a.d), 1, "first publish asks for a kick");
	is(ctrl(&a.w, a.l.desc)->tail, 16 + 160, "D2V tail covers one 176-byte frame");
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
	is(vshm_drv_vq_harvest(a.d, &cookie, &len), 0, "nothing to harvest before the device publishes");
	for (uint32_t j = 0; j < 130; j++)
		((uint8_t *)iov[1].base)[j] = in_pat(7, j);
	is(vshm_dev_vq_push(a.v, (uint16_t)(c.head ^ 1), 1), -EINVAL, "push of an id never popped: -EINVAL");
	is(vshm_dev_vq_push(a.v, 4, 1), -EINVAL, "push of id 4: -EINVAL");
	is(vshm_dev_vq_push(a.v, c.head, 130), 0, "push 130 bytes");
	is(vshm_dev_vq_push(a.v, c.head, 130), -EINVAL, "a second push of the same id: -EINVAL");
	ok(!vshm_dev_vq_broken(a.v), "caller errors do not break the queue");
	is(vshm_dev_vq_publish(a.v), 1, "device publish notifies (callbacks on)");
	is(ctrl(&a.w, a.l.desc)->head, 176, "D2V head released past the request");
	is(ctrl(&a.w, a.l.avail)->tail, 176, "V2D tail released past the completion");
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
	is(add_simple(&a, 0, 2032, 0, &ck[0]), 0, "a 2048-byte request");
	is(add_simple(&a, 1, 2032, 0, &ck[1]), 0, "another fills D2V");
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

	/* V2D, on fresh rings: three completions of 2048 bytes, room for two */
	api_fini(&a);
	if (api_init(&a, 4, 4096)) {
		ok(0, "room: setup");
		return;
	}
	for (int i = 0; i < 3; i++)
		add_simple(&a, 10 + (unsigned)i, 0, 2032, &ck[i]);
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
	ok(c[2].nin == 1 && c[2].in_bytes == 2032 && iov[4].base == a.t.base + a.l.avail + 256 + 16,
	   "its completion is at the start of V2D");
	serve(&c[1], 11, 1);
	serve(&c[2], 12, 2);
	vshm_dev_vq_push(a.v, c[2].head, 2);
	vshm_dev_vq_push(a.v, c[1].head, 1);
	vshm_dev_vq_publish(a.v);
	ok(vshm_drv_vq_harvest(a.d, &cookie, &len) == 1 && cookie == &ck[1] && reply_ok(&a, 11, 1, 2032) &&
	   vshm_drv_vq_harvest(a.d, &cookie, &len) == 1 && cookie == &ck[2] && reply_ok(&a, 12, 2, 2032),
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
	ok(f->type == VSHM_FIFO_PAD && f->len == 528 && !f->id && !f->a && !f->b, "D2V: a PAD covers the rest");
	f = frame_at(&a.w, a.l.desc, 0);
	ok(f->type == VSHM_FIFO_REQUEST && f->len == 1024 && f->a == 1000 && f->b == 1000,
	   "D2V: the REQUEST starts at offset 0");
	vshm_drv_vq_publish(a.d);
	is(ctrl(&a.w, a.l.desc)->tail, 3568 + 528 + 1024, "D2V tail counts the PAD");
	is(vshm_dev_vq_pop(a.v, &c, iov, 2), 1, "device skips the PAD and pops");
	ok(iov[0].base == a.t.base + a.l.desc + 256 + 16 && serve(&c, 2, 999),
	   "out data read from offset 16");
	f = frame_at(&a.w, a.l.avail, 3568);
	ok(f->type == VSHM_FIFO_PAD && f->len == 528, "V2D: the device wrote a PAD for its reservation");
	ok(iov[1].base == a.t.base + a.l.avail + 256 + 16, "V2D: the completion starts at offset 0");
	vshm_dev_vq_push(a.v, c.head, 999);
	vshm_dev_vq_publish(a.v);
	is(ctrl(&a.w, a.l.avail)->tail, 3568 + 528 + 1024, "V2D tail counts the PAD");
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
	is(vshm_drv_vq_publish(a.d), 1, "kick: the tail moved past the device's event");
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
	vshm_dev_vq_push(a.v, c[3].head, 1);
	is(vshm_dev_vq_publish(a.v), 0, "no notify: callbacks disabled");
	is(vshm_drv_vq_enable_cb(a.d), 1, "enable_cb reports the pending completion");
	is(vshm_drv_vq_harvest(a.d, &cookie, &len), 1, "harvest it");
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
	ok(ctrl(&a.w, a.l.desc)->tail == 0 && ctrl(&a.w, a.l.desc)->head == 0 &&
	   ctrl(&a.w, a.l.avail)->tail == 0 && ctrl(&a.w, a.l.avail)->head == 0 &&
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
/* Two threads                                                              */

#define WIN_SIZE	(16u << 20)
#define QNUM		256u
#define MAX_SG		6u
#define SLOT_BYTES	(MAX_SG * 4096u)
#define HOLD		8u	/* device keeps up to this many to reorder */

/* Mostly small buffers, sometimes a page. */
static uint32_t rnd_len(uint64_t *s)
{
	uint64_t r = rnd(s);

	switch (r & 7) {
	case 0: return 0;
	case 1: return 4096;
	case 2: return (uint32_t)((r >> 8) % 4096) + 1;
	default: return (uint32_t)((r >> 8) % 128) + 1;
	}
}

struct run {
	struct vshm_window dw, vw;	/* driver and device mappings */
	struct vshm_vq_layout l;
	unsigned long chains;
	uint64_t data_base;
	uint64_t deadline;
	uint32_t max_bytes;		/* per direction per request */
	int sleep;			/* wait on notifications when idle */
	struct vshm_drv_vq *dvq;
	struct vshm_dev_vq *vvq;
	/* the "doorbells": each side bumps the other's */
	uint32_t bell_dev, bell_drv;
	int stop;
	/* results, each written by one thread */
	unsigned long drv_done, dev_done, drv_sleeps, dev_sleeps;
	unsigned long bad_out, bad_in, bad_len, bad_order;
	int drv_err, dev_err;
	const char *drv_why, *dev_why;
};

struct chain_rec {		/* driver-private: what was posted */
	uint64_t seq;
	unsigned nout, nin;
	struct vshm_sg sg[MAX_SG];
	unsigned slot;
};

/* Wait until *bell differs from @seen; 0, or -ETIMEDOUT. */
static int wait_bell(struct run *r, uint32_t *bell, uint32_t seen)
{
	unsigned spins = 0;

	while (__atomic_load_n(bell, __ATOMIC_ACQUIRE) == seen) {
		if (__atomic_load_n(&r->stop, __ATOMIC_RELAXED))
			return -ETIMEDOUT;
		if (++spins > 64) {
			sched_yield();
			spins = 0;
			if (now_ns() > r->deadline)
				return -ETIMEDOUT;
		} else {
			vshm_cpu_relax();
		}
	}
	return 0;
}

static void *device_thread(void *arg)
{
	struct run *r = arg;
	struct vshm_dev_vq *vq = r->vvq;
	struct vshm_chain held[HOLD];
	struct vshm_iov iov[HOLD][2];
	uint64_t held_seq[HOLD];
	unsigned nheld = 0, idle = 0;
	uint64_t seq = 0, rs = 0x9e3779b97f4a7c15ull;
	unsigned long bad_out = 0;
	int rc;

	while (r->dev_done < r->chains) {
		unsigned slot = nheld;

		rc = nheld < HOLD ? vshm_dev_vq_pop(vq, &held[slot], iov[slot], 2) : 0;
		if (rc < 0) {
			r->dev_err = rc;
			r->dev_why = vshm_dev_vq_error(vq);
			break;
		}
		if (rc == 1) {
			struct vshm_chain *c = &held[slot];

			if (c->nout) {
				const uint8_t *p = c->iov[0].base;

				for (uint32_t b = 0; b < c->iov[0].len; b++)
					if (p[b] != out_pat(seq, b))
						bad_out++;
			}
			held_seq[slot] = seq++;
			nheld++;
			idle = 0;
		}
		/* Complete a random held request when full, idle, or by chance. */
		if (nheld && (nheld == HOLD || rc == 0 || (rnd(&rs) & 3) == 0)) {
			unsigned pick = (unsigned)(rnd(&rs) % nheld);
			struct vshm_chain *c = &held[pick];
			uint64_t written = c->in_bytes ? rnd(&rs) % (c->in_bytes + 1) : 0;

			if ((rnd(&rs) & 3) == 0)
				written = c->in_bytes;
			if (c->nin) {
				uint8_t *p = c->iov[c->nout].base;

				for (uint32_t b = 0; b < written; b++)
					p[b] = in_pat(held_seq[pick], b);
			}
			vshm_dev_vq_push(vq, c->head, (uint32_t)written);
			rc = vshm_dev_vq_publish(vq);
			if (rc < 0) {
				r->dev_err = rc;
				break;
			}
			if (rc == 1)
				__atomic_fetch_add(&r->bell_drv, 1, __ATOMIC_RELEASE);
			r->dev_done++;
			nheld--;
			if (pick != nheld) {
				held[pick] = held[nheld];
				held_seq[pick] = held_seq[nheld];
				memcpy(iov[pick], iov[nheld], sizeof(iov[0]));
				held[pick].iov = iov[pick];
			}
			continue;
		}
		if (rc == 0 && r->sleep && nheld == 0) {
			uint32_t seen = __atomic_load_n(&r->bell_dev, __ATOMIC_ACQUIRE);

			rc = vshm_dev_vq_enable_notify(vq);
			if (rc == 0) {
				r->dev_sleeps++;
				if (wait_bell(r, &r->bell_dev, seen)) {
					r->dev_err = -ETIMEDOUT;
					break;
				}
				vshm_dev_vq_disable_notify(vq);
				continue;
			}
			/* Pending but not poppable: waiting for V2D room, which
			 * the driver's harvest frees without a kick.  Poll. */
			vshm_dev_vq_disable_notify(vq);
			rc = 0;
		}
		if (rc == 0) {
			if (++idle > 64) {
				sched_yield();
				idle = 0;
				if (now_ns() > r->deadline || __atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
					r->dev_err = -ETIMEDOUT;
					break;
				}
			} else {
				vshm_cpu_relax();
			}
		}
	}
	r->bad_out = bad_out;
	return NULL;
}

static void check_completion(struct run *r, struct chain_rec *cr, uint32_t len)
{
	uint64_t j = 0, posted = 0;
	const uint8_t *base = r->dw.base;

	for (unsigned k = cr->nout; k < cr->nout + cr->nin; k++)
		posted += cr->sg[k].len;
	if (len > posted) {
		r->bad_len++;
		return;
	}
	/* The reply, then the sentinel: nothing past len was written. */
	for (unsigned k = cr->nout; k < cr->nout + cr->nin; k++) {
		const uint8_t *p = base + cr->sg[k].off;

		for (uint32_t b = 0; b < cr->sg[k].len; b++, j++)
			if (p[b] != (j < len ? in_pat(cr->seq, j) : SENTINEL))
				r->bad_in++;
	}
}

static void *driver_thread(void *arg)
{
	struct run *r = arg;
	struct vshm_drv_vq *vq = r->dvq;
	static struct chain_rec recs[QNUM];
	unsigned free_slots[QNUM], nfree = QNUM;
	uint64_t seq = 0, next = 0, rs = 0x2545f4914f6cdd1dull;
	unsigned long added = 0;
	unsigned idle = 0;
	int rc;

	for (unsigned i = 0; i < QNUM; i++)
		free_slots[i] = QNUM - 1 - i;
	while (r->drv_done < r->chains) {
		int progressed = 0;
		unsigned batch = (unsigned)(rnd(&rs) % 8) + 1;

		for (unsigned b = 0; b < batch && added < r->chains && nfree; b++) {
			unsigned slot = free_slots[nfree - 1];
			struct chain_rec *cr = &recs[slot];
			uint32_t tot[2] = { 0, 0 };
			uint64_t j = 0;

			cr->slot = slot;
			cr->seq = seq;
			cr->nout = (unsigned)(rnd(&rs) % 4);
			cr->nin = (unsigned)(rnd(&rs) % 4);
			if (cr->nout + cr->nin == 0)
				cr->nout = 1;
			for (unsigned k = 0; k < cr->nout + cr->nin; k++) {
				unsigned dir = k >= cr->nout;
				uint32_t len = rnd_len(&rs);
				uint32_t skew;

				if (len > r->max_bytes - tot[dir])
					len = r->max_bytes - tot[dir];
				tot[dir] += len;
				skew = len < 4096 ? (uint32_t)(rnd(&rs) % (4096 - len + 1)) : 0;
				cr->sg[k].off = r->data_base + (uint64_t)slot * SLOT_BYTES + k * 4096u + skew;
				cr->sg[k].len = len;
				cr->sg[k].flags = 0;
				if (!dir) {
					uint8_t *p = r->dw.base + cr->sg[k].off;

					for (uint32_t x = 0; x < len; x++, j++)
						p[x] = out_pat(seq, j);
				} else {
					memset(r->dw.base + cr->sg[k].off, SENTINEL, len);
				}
			}
			rc = vshm_drv_vq_add(vq, cr->sg, cr->nout, cr->nin, cr);
			if (rc == -ENOSPC)
				break;
			if (rc) {
				r->drv_err = rc;
				r->drv_why = vshm_drv_vq_error(vq);
				goto out;
			}
			nfree--;
			seq++;
			added++;
			progressed = 1;
		}
		rc = vshm_drv_vq_publish(vq);
		if (rc < 0) {
			r->drv_err = rc;
			goto out;
		}
		if (rc == 1)
			__atomic_fetch_add(&r->bell_dev, 1, __ATOMIC_RELEASE);
		for (;;) {
			void *cookies[16];
			uint32_t lens[16];
			int got = vshm_drv_vq_harvest_batch(vq, cookies, lens, 16);

			if (got < 0) {
				r->drv_err = got;
				r->drv_why = vshm_drv_vq_error(vq);
				goto out;
			}
			for (int g = 0; g < got; g++) {
				struct chain_rec *cr = cookies[g];

				if (cr->seq != next++)
					r->bad_order++;
				check_completion(r, cr, lens[g]);
				free_slots[nfree++] = cr->slot;
				r->drv_done++;
			}
			if (got)
				progressed = 1;
			if (got < 16)
				break;
		}
		if (progressed) {
			idle = 0;
			continue;
		}
		if (r->sleep) {
			uint32_t seen = __atomic_load_n(&r->bell_drv, __ATOMIC_ACQUIRE);

			rc = vshm_drv_vq_enable_cb(vq);
			if (rc < 0) {
				r->drv_err = rc;
				goto out;
			}
			if (rc == 0) {
				r->drv_sleeps++;
				if (wait_bell(r, &r->bell_drv, seen)) {
					r->drv_err = -ETIMEDOUT;
					goto out;
				}
			}
			continue;
		}
		if (++idle > 64) {
			sched_yield();
			idle = 0;
			if (now_ns() > r->deadline) {
				r->drv_err = -ETIMEDOUT;
				break;
			}
		} else {
			vshm_cpu_relax();
		}
	}
out:
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED);
	if (!r->drv_err && vshm_drv_vq_inflight(vq) != 0)
		r->drv_err = -EBADE;
	return NULL;
}

static void run_threads(const char *name, uint32_t ring, int sleep, unsigned long chains)
{
	struct vshm_window_opts o = { .size = WIN_SIZE, .vectors = 2, .name = "vq-fifo-test" };
	static struct run r;
	pthread_t td, tv;
	int64_t used;
	uint64_t t0;

	memset(&r, 0, sizeof(r));
	if (vshm_window_create(&r.dw, &o) || vshm_window_map(&r.vw, r.dw.fd)) {
		ok(0, "%s: window", name);
		return;
	}
	/* The device never needs the header or mailbox: take them away. */
	vshm_window_protect_ctrl(&r.vw, PROT_NONE);
	used = vshm_vq_layout_fifo(&r.l, r.dw.drv_lo, QNUM, ring);
	r.chains = chains;
	r.sleep = sleep;
	r.max_bytes = ring / 2 - 16;
	r.data_base = (r.dw.drv_lo + (uint64_t)used + 4095) & ~4095ull;
	if (vshm_drv_vq_create(&r.dvq, &r.dw, &r.l, FIFO, NULL) ||
	    vshm_dev_vq_create(&r.vvq, &r.vw, &r.l, FIFO, NULL)) {
		ok(0, "%s: queues", name);
		return;
	}
	t0 = now_ns();
	r.deadline = t0 + 300ull * 1000000000ull;
	pthread_create(&tv, NULL, device_thread, &r);
	pthread_create(&td, NULL, driver_thread, &r);
	pthread_join(td, NULL);
	pthread_join(tv, NULL);
	ok(r.drv_err == 0 && r.dev_err == 0, "%s: both sides ran clean (drv %d%s%s, dev %d%s%s)", name,
	   r.drv_err, r.drv_why ? ": " : "", r.drv_why ? r.drv_why : "",
	   r.dev_err, r.dev_why ? ": " : "", r.dev_why ? r.dev_why : "");
	is(r.drv_done, chains, "%s: driver harvested every request", name);
	is(r.dev_done, chains, "%s: device completed every request", name);
	is(r.bad_out, 0, "%s: every device-readable byte arrived intact", name);
	is(r.bad_in, 0, "%s: every reply byte arrived intact, nothing past it written", name);
	is(r.bad_len, 0, "%s: no reply longer than its buffers", name);
	is(r.bad_order, 0, "%s: completions in request order", name);
	diag("%s: %lu requests in %.2f s (driver slept %lu, device slept %lu times)", name, chains,
	     (double)(now_ns() - t0) / 1e9, r.drv_sleeps, r.dev_sleeps);
	vshm_drv_vq_destroy(r.dvq);
	vshm_dev_vq_destroy(r.vvq);
	vshm_window_unmap(&r.vw);
	vshm_window_unmap(&r.dw);
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
	run_threads("64 KiB rings, polling", 65536, 0, n);
	run_threads("8 KiB rings, polling", 8192, 0, n);
	run_threads("64 KiB rings, sleeping", 65536, 1, n);
	run_threads("8 KiB rings, sleeping", 8192, 1, n);
	return tap_done();
}
