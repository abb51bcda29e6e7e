// SPDX-License-Identifier: MIT
/*
 * Packed ring, functional: single-threaded checks of the API contract
 * (layout, add/publish/pop/push/harvest, full ring, indirect, event
 * suppression both ways, wrap-around, out-of-order completion, detach,
 * reset, batches), the notification handshakes raced head on, then driver
 * and device as two threads over one window (tests/vq_harness.h: the device
 * on its own mapping of the memfd with the header and mailbox PROT_NONE, as
 * a separate process would have): a million chains of random shapes and
 * sizes, every byte verified both ways, completions out of order, with and
 * without event index and indirect tables, polling and sleeping on
 * doorbells.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <vshm/vq.h>
#include "barrier.h"
#include "tap.h"
#include "vq_harness.h"

/*
 * Sanitizers slow the handshake rounds 10-25x and are there to find races,
 * not to provoke store-buffer reordering: fewer rounds under them.
 */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define HS_ROUNDS	10000ul
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define HS_ROUNDS	10000ul
#endif
#endif
#ifndef HS_ROUNDS
#define HS_ROUNDS	100000ul
#endif

#define F_PACKED	(1ull << VSHM_F_RING_PACKED)
#define F_EV		(1ull << VSHM_F_EVENT_IDX)
#define F_IND		(1ull << VSHM_F_INDIRECT_DESC)

/* The packed descriptor as the test reads it back (virtio 1.x 2.8.13). */
struct tdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t id;
	uint16_t flags;
};
#define T_AVAIL	(1u << 7)
#define T_USED	(1u << 15)

/*
 * The notification handshakes, raced head on.  Each round both threads
 * leave a barrier together; one side makes work visible and then asks
 * whether the other wants a notification, the other side arms its
 * notification and then re-checks for work.  At least one of them must see
 * the other (otherwise a sleeper would never wake): that is what the full
 * fences P5/P6 and P7/P8 guarantee, the store-buffer pattern that
 * acquire/release alone does not.
 */
struct hs {
	struct vshm_window dw, vw;
	struct vshm_drv_vq *d;
	struct vshm_dev_vq *v;
	uint64_t buf;
	unsigned long rounds;
	int irq;			/* 0: kick direction, 1: interrupt direction */
	unsigned arrive;		/* atomic: barrier */
	int drv_saw, dev_saw;		/* atomic: this round's outcomes */
	unsigned long lost, both;	/* device thread only */
	int err;			/* atomic */
	uint64_t deadline;
};

/* Spin briefly, then yield: the peer thread may not be on a CPU. */
static void hs_wait(unsigned *spins)
{
	if (++*spins < 256)
		vshm_cpu_relax();
	else
		sched_yield();
}

static void hs_barrier(struct hs *h, unsigned target)
{
	unsigned spins = 0;

	__atomic_add_fetch(&h->arrive, 1, __ATOMIC_ACQ_REL);
	while (__atomic_load_n(&h->arrive, __ATOMIC_ACQUIRE) < target) {
		if (__atomic_load_n(&h->err, __ATOMIC_RELAXED))
			return;
		hs_wait(&spins);
	}
}

/* A few pauses, so the two sides' critical instants sweep past each other. */
static void hs_skew(uint64_t *rs)
{
	for (unsigned n = (unsigned)(rnd(rs) & 63); n; n--)
		vshm_cpu_relax();
}

static void hs_fail(struct hs *h, int code)
{
	__atomic_store_n(&h->err, code, __ATOMIC_RELAXED);
}

static void *hs_driver(void *arg)
{
	struct hs *h = arg;
	struct vshm_sg sg = { h->buf, 64, 0 };
	static int ck;
	void *c;
	uint32_t len;
	uint64_t rs = 0x243f6a8885a308d3ull;

	for (unsigned long r = 0; r < h->rounds && !__atomic_load_n(&h->err, __ATOMIC_RELAXED); r++) {
		if (h->irq) {
			/* The device completes a chain; we arm and re-check. */
			hs_barrier(h, 4 * (unsigned)r + 2);
			hs_skew(&rs);
			__atomic_store_n(&h->drv_saw, vshm_drv_vq_enable_cb(h->d), __ATOMIC_RELAXED);
			hs_barrier(h, 4 * (unsigned)r + 4);
			if (vshm_drv_vq_harvest(h->d, &c, &len) != 1)
				hs_fail(h, 1);
			vshm_drv_vq_disable_cb(h->d);
			/* the next round's chain */
			if (r + 1 < h->rounds && (vshm_drv_vq_add(h->d, &sg, 1, 0, &ck) ||
						  vshm_drv_vq_publish(h->d) < 0))
				hs_fail(h, 2);
		} else {
			/* The device is armed or arming; we publish and ask. */
			if (vshm_drv_vq_add(h->d, &sg, 1, 0, &ck))
				hs_fail(h, 3);
			hs_barrier(h, 4 * (unsigned)r + 2);
			hs_skew(&rs);
			__atomic_store_n(&h->drv_saw, vshm_drv_vq_publish(h->d), __ATOMIC_RELAXED);
			hs_barrier(h, 4 * (unsigned)r + 4);
			for (unsigned spins = 0; vshm_drv_vq_harvest(h->d, &c, &len) == 0;) {
				if (__atomic_load_n(&h->err, __ATOMIC_RELAXED) || now_ns() > h->deadline) {
					hs_fail(h, 4);
					break;
				}
				hs_wait(&spins);
			}
		}
	}
	return NULL;
}

static void *hs_device(void *arg)
{
	struct hs *h = arg;
	struct vshm_iov iov[2];
	struct vshm_chain c;
	uint64_t rs = 0x13198a2e03707344ull;

	for (unsigned long r = 0; r < h->rounds && !__atomic_load_n(&h->err, __ATOMIC_RELAXED); r++) {
		int drv, dev;

		if (h->irq) {
			/* The driver's chain for this round is available. */
			for (unsigned spins = 0; vshm_dev_vq_pop(h->v, &c, iov, 2) == 0;) {
				if (__atomic_load_n(&h->err, __ATOMIC_RELAXED) || now_ns() > h->deadline) {
					hs_fail(h, 5);
					break;
				}
				hs_wait(&spins);
			}
			hs_barrier(h, 4 * (unsigned)r + 2);
			hs_skew(&rs);
			vshm_dev_vq_push(h->v, c.head, 0);
			__atomic_store_n(&h->dev_saw, vshm_dev_vq_publish(h->v), __ATOMIC_RELAXED);
		} else {
			hs_barrier(h, 4 * (unsigned)r + 2);
			hs_skew(&rs);
			__atomic_store_n(&h->dev_saw, vshm_dev_vq_enable_notify(h->v), __ATOMIC_RELAXED);
		}
		hs_barrier(h, 4 * (unsigned)r + 4);
		drv = __atomic_load_n(&h->drv_saw, __ATOMIC_RELAXED);
		dev = __atomic_load_n(&h->dev_saw, __ATOMIC_RELAXED);
		if (drv < 0 || dev < 0)
			hs_fail(h, 6);
		if (!drv && !dev)
			h->lost++;
		if (drv && dev)
			h->both++;
		if (!h->irq) {
			/* Disarm, then serve the chain published this round. */
			vshm_dev_vq_disable_notify(h->v);
			if (vshm_dev_vq_pop(h->v, &c, iov, 2) != 1)
				hs_fail(h, 7);
			vshm_dev_vq_push(h->v, c.head, 0);
			vshm_dev_vq_publish(h->v);
		}
	}
	return NULL;
}

static void test_handshake(const char *name, uint64_t features, int irq, unsigned long rounds)
{
	struct vshm_window_opts o = { .size = 1 << 20, .vectors = 1 };
	static struct hs h;
	struct vshm_vq_layout l;
	pthread_t a, b;
	int64_t used;
	uint64_t t0 = now_ns();

	memset(&h, 0, sizeof(h));
	h.rounds = rounds;
	h.irq = irq;
	h.deadline = t0 + 120ull * 1000000000ull;
	if (vshm_window_create(&h.dw, &o) || vshm_window_map(&h.vw, h.dw.fd)) {
		ok(0, "%s: window", name);
		return;
	}
	vshm_window_protect_ctrl(&h.vw, PROT_NONE);
	used = vshm_vq_layout_packed(&l, h.dw.drv_lo, 16, 0);
	h.buf = h.dw.drv_lo + (uint64_t)used;
	features |= F_PACKED;
	if (vshm_drv_vq_create(&h.d, &h.dw, &l, features, NULL) ||
	    vshm_dev_vq_create(&h.v, &h.vw, &l, features, NULL)) {
		ok(0, "%s: queues", name);
		return;
	}
	if (irq) {
		/* Round 0's chain, published; callbacks off to start from rest. */
		static int ck;
		struct vshm_sg sg = { h.buf, 64, 0 };

		vshm_drv_vq_add(h.d, &sg, 1, 0, &ck);
		vshm_drv_vq_publish(h.d);
		vshm_drv_vq_disable_cb(h.d);
	}
	vshm_dev_vq_disable_notify(h.v);
	pthread_create(&a, NULL, hs_device, &h);
	pthread_create(&b, NULL, hs_driver, &h);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	is(h.err, 0, "%s: %lu rounds ran", name, rounds);
	is(h.lost, 0, "%s: no round where neither side saw the other (%lu saw each other)",
	   name, h.both);
	diag("%s: %.2f s", name, (double)(now_ns() - t0) / 1e9);
	vshm_drv_vq_destroy(h.d);
	vshm_dev_vq_destroy(h.v);
	vshm_window_unmap(&h.vw);
	vshm_window_unmap(&h.dw);
}

/* ---- single-threaded contract checks ---------------------------------- */

static void test_layout(struct vshm_window *w)
{
	struct vshm_vq_layout l, bad;
	struct vshm_dev_vq *v;
	struct vshm_drv_vq *d;
	uint64_t feat = F_PACKED | F_EV | F_IND;
	int64_t used;

	is(vshm_vq_layout_packed(&l, w->drv_lo, 3, 0), -EINVAL, "layout refuses a non-power-of-two size");
	is(vshm_vq_layout_packed(&l, w->drv_lo, 0, 0), -EINVAL, "layout refuses 0 entries");
	is(vshm_vq_layout_packed(&l, w->drv_lo, 65536, 0), -EINVAL, "layout refuses 65536 entries");
	is(vshm_vq_layout_packed(&l, w->drv_lo, 4, 65536), -EINVAL, "layout refuses 65536-entry tables");
	used = vshm_vq_layout_packed(&l, w->drv_lo + 8, 4, 4);
	ok(used > 0 && l.desc % 64 == 0 && l.avail % 4 == 0 && l.used % 64 == 0 &&
	   l.indirect % 16 == 0 && l.num == 4 && l.indirect_max == 4,
	   "layout of a 4-entry ring is aligned (%lld bytes)", (long long)used);
	ok(l.avail >= l.desc + 4 * 16 && l.used >= l.avail + 4 && l.used / 64 != l.avail / 64 &&
	   l.indirect >= l.used + 4 && l.indirect + 4 * 4 * 16 <= w->drv_lo + 8 + (uint64_t)used,
	   "areas in order, disjoint, device area on its own cache line, all inside the size");
	used = vshm_vq_layout_packed(&l, w->drv_lo, 32768, 0);
	ok(used == 32768 * 16 + 128 && l.indirect == 0, "32768 entries without tables: %lld bytes",
	   (long long)used);

	vshm_vq_layout_packed(&l, w->drv_lo, 4, 4);
	bad = l;
	bad.desc = 0;
	is(vshm_dev_vq_create(&v, w, &bad, feat, NULL), -EINVAL, "device refuses a ring in the header");
	bad = l;
	bad.desc += 8;
	is(vshm_dev_vq_create(&v, w, &bad, feat, NULL), -EINVAL, "device refuses a misaligned descriptor ring");
	bad = l;
	bad.avail += 2;
	is(vshm_dev_vq_create(&v, w, &bad, feat, NULL), -EINVAL, "device refuses a misaligned driver event area");
	bad = l;
	bad.used += 1;
	is(vshm_dev_vq_create(&v, w, &bad, feat, NULL), -EINVAL, "device refuses a misaligned device event area");
	bad = l;
	bad.used = w->size - 2;
	is(vshm_dev_vq_create(&v, w, &bad, feat, NULL), -EINVAL, "device refuses a device area past the end");
	bad = l;
	bad.avail = VSHM_MBOX_OFF;
	is(vshm_dev_vq_create(&v, w, &bad, feat, NULL), -EINVAL, "device refuses a driver area in the mailbox");
	bad = l;
	bad.used = bad.avail;
	is(vshm_dev_vq_create(&v, w, &bad, feat, NULL), -EINVAL, "device refuses overlapping event areas");
	bad = l;
	bad.used = bad.desc + 16;
	is(vshm_dev_vq_create(&v, w, &bad, feat, NULL), -EINVAL, "device refuses an event area inside the ring");
	bad = l;
	bad.num = 6;
	is(vshm_dev_vq_create(&v, w, &bad, feat, NULL), -EINVAL, "device refuses num 6");
	bad = l;
	bad.num = 0;
	is(vshm_dev_vq_create(&v, w, &bad, feat, NULL), -EINVAL, "device refuses num 0");
	bad = l;
	bad.indirect += 8;
	is(vshm_drv_vq_create(&d, w, &bad, feat, NULL), -EINVAL, "driver refuses misaligned indirect tables");
	bad = l;
	bad.indirect = w->size - 64;
	is(vshm_drv_vq_create(&d, w, &bad, feat, NULL), -EINVAL, "driver refuses tables past the end");
	bad = l;
	bad.indirect = w->size - 64;
	is(vshm_drv_vq_create(&d, w, &bad, feat & ~F_IND, NULL), 0,
	   "tables are ignored without INDIRECT_DESC");
	vshm_drv_vq_destroy(d);
}

static void test_api(void)
{
	struct vshm_window_opts o = { .size = 1 << 20, .vectors = 1 };
	struct vshm_window w;
	struct vshm_vq_layout l;
	struct vshm_drv_vq *d;
	struct vshm_dev_vq *v;
	struct vshm_sg sg[4];
	struct vshm_iov iov[8];
	struct vshm_chain c;
	struct tdesc *ring;
	uint64_t feat = F_PACKED | F_EV | F_IND;
	void *cookie;
	uint32_t len;
	int x = 1, y = 2, z = 3;

	if (vshm_window_create(&w, &o)) {
		ok(0, "api: window");
		return;
	}
	test_layout(&w);
	vshm_vq_layout_packed(&l, w.drv_lo, 4, 4);
	ring = (struct tdesc *)(void *)(w.base + l.desc);

	is(vshm_drv_vq_create(&d, &w, &l, feat, NULL), 0, "driver queue created");
	is(vshm_dev_vq_create(&v, &w, &l, feat, NULL), 0, "device queue created");

	vqh_four_buffers(sg, &w);
	vqh_add_refusals(d, &w, sg, &x);
	{
		struct vshm_sg five[5];

		for (int i = 0; i < 5; i++)
			five[i] = sg[0];
		is(vshm_drv_vq_add_ex(d, five, 5, 0, &x, VSHM_ADD_NO_INDIRECT), -EINVAL,
		   "a direct chain longer than the ring can never fit");
	}
	is(vshm_drv_vq_num_free(d), 4, "refused adds took nothing");

	is(vshm_dev_vq_pop(v, &c, iov, 8), 0, "device sees nothing before publish");
	is(vshm_drv_vq_add_ex(d, sg, 2, 2, &x, VSHM_ADD_NO_INDIRECT), 0, "add a 4-descriptor chain directly");
	is(vshm_drv_vq_num_free(d), 0, "all four descriptors in use");
	is(vshm_drv_vq_add_ex(d, sg, 1, 0, &y, 0), -ENOSPC, "ring full -> -ENOSPC");
	ok(!(ring[0].flags & (T_AVAIL | T_USED)) && (ring[1].flags & T_AVAIL) &&
	   (ring[3].flags & T_AVAIL) && !(ring[3].flags & 1),
	   "before publish: the head is not yet available, the rest is written");
	ok(ring[0].id == 0 && ring[1].id == 0 && ring[2].id == 0 && ring[3].addr == sg[3].off,
	   "the buffer id only in the last descriptor");
	is(vshm_dev_vq_pop(v, &c, iov, 8), 0, "still nothing before publish");
	is(vshm_drv_vq_inflight(d), 0, "nothing in flight before publish");
	is(vshm_drv_vq_publish(d), 1, "first publish asks for a kick (event at slot 0)");
	is(ring[0].flags, T_AVAIL | 1, "head now available: AVAIL for wrap 1, NEXT, readable");
	is(vshm_drv_vq_inflight(d), 1, "one chain in flight");
	is(vshm_drv_vq_publish(d), 0, "publishing nothing kicks nobody");
	is(vshm_dev_vq_pop(v, &c, iov, 8), 1, "device pops the chain");
	ok(c.nout == 2 && c.nin == 2 && c.out_bytes == 200 && c.in_bytes == 200 && !c.indirect,
	   "chain shape 2 out + 2 in, 200/200 bytes");
	ok(iov[0].base == w.base + sg[0].off && iov[3].base == w.base + sg[3].off, "iov points at the buffers");
	is(c.head, ring[3].id, "chain head is the buffer id of the last descriptor");
	is(vshm_dev_vq_pop(v, &c, iov, 8), 0, "ring empty again");
	is(vshm_drv_vq_harvest(d, &cookie, &len), 0, "nothing to harvest yet");
	is(vshm_dev_vq_push(v, (uint16_t)(c.head + 1) & 3, 0), -EINVAL, "push of an id not popped: -EINVAL");
	is(vshm_dev_vq_push(v, 4, 0), -EINVAL, "push of an id >= num: -EINVAL");
	ok(!vshm_dev_vq_broken(v), "caller errors do not break the queue");
	is(vshm_dev_vq_push(v, c.head, 150), 0, "push");
	is(ring[0].flags, T_AVAIL | T_USED, "used descriptor in slot 0: AVAIL = USED = wrap 1");
	is(vshm_dev_vq_push(v, c.head, 150), -EINVAL, "second push of the same chain: -EINVAL");
	is(vshm_dev_vq_publish(v), 1, "device publish notifies (callbacks on)");
	is(vshm_dev_vq_publish(v), 0, "publishing nothing notifies nobody");
	is(vshm_drv_vq_harvest(d, &cookie, &len), 1, "driver harvests");
	ok(cookie == &x && len == 150, "cookie and length come back");
	is(vshm_drv_vq_num_free(d), 4, "descriptors returned");
	is(vshm_drv_vq_harvest(d, &cookie, &len), 0, "nothing more");

	/* Indirect: one descriptor carries a 4-buffer chain; slot 0 again. */
	is(vshm_drv_vq_add_ex(d, sg, 3, 1, &y, VSHM_ADD_INDIRECT), 0, "add through an indirect table");
	is(vshm_drv_vq_num_free(d), 3, "an indirect chain takes one descriptor");
	is(vshm_drv_vq_publish(d), 0, "no kick: the device has not re-armed its event");
	is(ring[0].flags, T_USED | 4, "lap 2 head: INDIRECT, AVAIL = wrap 0, USED = 1");
	is(vshm_dev_vq_pop(v, &c, iov, 8), 1, "device pops the indirect chain");
	ok(c.indirect && c.nout == 3 && c.nin == 1 && iov[3].base == w.base + sg[3].off,
	   "indirect chain shape 3 + 1");
	is(vshm_dev_vq_pop(v, &c, iov, 2), 0, "nothing else pending");

	/* Event index: the device only wants a kick when it asked. */
	vshm_dev_vq_push(v, c.head, 0);
	vshm_dev_vq_publish(v);
	is(vshm_drv_vq_harvest(d, &cookie, &len), 1, "harvest indirect completion");
	ok(cookie == &y && len == 0, "its cookie");
	vqh_kick_contract(d, v, sg, &c, iov, &x, &y);
	vshm_dev_vq_disable_notify(v);
	is(vshm_drv_vq_add(d, &sg[2], 1, 0, &z), 0, "add a third");
	is(vshm_drv_vq_publish(d), 0, "notifications disabled: no kick");
	vshm_drv_vq_disable_cb(d);
	vshm_dev_vq_push(v, c.head, 0);
	is(vshm_dev_vq_publish(v), 0, "callbacks disabled: device does not notify");
	is(vshm_drv_vq_enable_cb(d), 1, "enable_cb reports the pending completion");
	is(vshm_drv_vq_harvest(d, &cookie, &len), 1, "harvest it");
	is(vshm_drv_vq_enable_cb(d), 0, "enable_cb with nothing pending");
	is(vshm_dev_vq_pop(v, &c, iov, 8), 1, "pop the second");
	vshm_dev_vq_push(v, c.head, 0);
	is(vshm_dev_vq_publish(v), 1, "armed callbacks: device notifies");
	is(vshm_drv_vq_inflight(d), 2, "two chains still in flight");
	is(vshm_drv_vq_reset(d), -EBUSY, "reset refuses while chains are out");
	{
		void *a = vshm_drv_vq_detach_unused(d), *b = vshm_drv_vq_detach_unused(d);

		ok(a != b && (a == &y || a == &z) && (b == &y || b == &z),
		   "detach returns both unfinished chains");
	}
	ok(vshm_drv_vq_detach_unused(d) == NULL, "nothing more to detach");
	is(vshm_drv_vq_num_free(d), 4, "detach returned the descriptors");
	is(vshm_drv_vq_inflight(d), 0, "nothing in flight after detach");
	is(vshm_drv_vq_reset(d), 0, "reset an idle queue");
	ok(ring[0].flags == 0 && ring[1].flags == 0, "reset cleared the ring");

	/* Detach of a chain that was never published. */
	is(vshm_drv_vq_add(d, sg, 1, 1, &x), 0, "add without publishing");
	ok(vshm_drv_vq_detach_unused(d) == &x && vshm_drv_vq_num_free(d) == 4 &&
	   vshm_drv_vq_publish(d) == 0, "an unpublished chain detaches and is not published later");
	ok(vshm_drv_vq_reset(d) == 0, "reset");

	/* Batch pop/push, completed out of order. */
	vshm_dev_vq_destroy(v);
	vshm_dev_vq_create(&v, &w, &l, feat, NULL);
	{
		struct vshm_chain cs[4];
		struct vshm_iov biov[4 * 2];
		int ck[4];
		void *cks[4];
		uint32_t lens[4];
		static const int order[4] = { 2, 0, 3, 1 };
		int good = 1;

		for (int i = 0; i < 4; i++)
			vshm_drv_vq_add_ex(d, &sg[i], 0, 1, &ck[i], 0);
		vshm_drv_vq_publish(d);
		is(vshm_dev_vq_pop_batch(v, cs, 4, biov, 2), 4, "pop_batch takes all four");
		for (int i = 0; i < 4; i++)
			vshm_dev_vq_push(v, cs[order[i]].head, (uint32_t)order[i]);
		vshm_dev_vq_publish(v);
		is(vshm_drv_vq_harvest_batch(d, cks, lens, 4), 4, "harvest_batch gets all four");
		for (int i = 0; i < 4; i++)
			good &= cks[i] == &ck[order[i]] && lens[i] == (uint32_t)order[i];
		ok(good, "completions come back in the device's order with their lengths");
	}

	/*
	 * Wrap-around: chains of 1..3 descriptors across the ring end, over
	 * many laps, completed out of order; event index re-armed each time.
	 */
	{
		struct vshm_chain cs[4], spare;
		struct vshm_iov biov[4][4], siov[4];
		int ck[4], bad = 0, kicks = 0, irqs = 0;
		uint64_t rs = 7;

		for (int lap = 0; lap < 200; lap++) {
			unsigned n = (unsigned)(rnd(&rs) % 3) + 1, m = 0, nd = 0;
			void *cks[4];
			uint32_t lens[4];

			/* Fill the ring with as many chains as fit. */
			while (nd + n <= 4) {
				if (vshm_drv_vq_add_ex(d, sg, n - 1, 1, &ck[m], VSHM_ADD_NO_INDIRECT))
					bad++;
				nd += n;
				m++;
			}
			vshm_dev_vq_enable_notify(v);
			kicks += vshm_drv_vq_publish(d);
			for (unsigned i = 0; i < m; i++) {
				if (vshm_dev_vq_pop(v, &cs[i], biov[i], 4) != 1 || cs[i].nout != n - 1 ||
				    cs[i].nin != 1 || biov[i][n - 1].base != w.base + sg[n - 1].off)
					bad++;
			}
			if (vshm_dev_vq_pop(v, &spare, siov, 4) != 0)
				bad++;
			vshm_drv_vq_enable_cb(d);
			for (unsigned i = m; i-- > 0;)
				vshm_dev_vq_push(v, cs[i].head, i);
			irqs += vshm_dev_vq_publish(v);
			if (vshm_drv_vq_harvest_batch(d, cks, lens, 4) != (int)m)
				bad++;
			for (unsigned i = 0; i < m; i++)
				if (cks[i] != &ck[m - 1 - i] || lens[i] != m - 1 - i)
					bad++;
			if (vshm_drv_vq_num_free(d) != 4)
				bad++;
		}
		is(bad, 0, "200 rounds across the ring end: shapes, order, lengths, free slots");
		ok(kicks == 200 && irqs == 200, "each re-armed round kicked and notified once (%d, %d)",
		   kicks, irqs);
		ok(!vshm_drv_vq_broken(d) && !vshm_dev_vq_broken(v), "both sides healthy");
	}
	vshm_drv_vq_destroy(d);
	vshm_dev_vq_destroy(v);

	/* Flags mode (no event index): ENABLE/DISABLE both ways. */
	is(vshm_drv_vq_create(&d, &w, &l, F_PACKED, NULL), 0, "driver queue without event index");
	is(vshm_dev_vq_create(&v, &w, &l, F_PACKED, NULL), 0, "device queue without event index");
	vshm_drv_vq_add(d, sg, 1, 0, &x);
	is(vshm_drv_vq_publish(d), 1, "flags mode: kick by default");
	vshm_dev_vq_disable_notify(v);
	vshm_drv_vq_add(d, sg, 1, 0, &y);
	is(vshm_drv_vq_publish(d), 0, "flags mode: DISABLE suppresses the kick");
	is(vshm_dev_vq_enable_notify(v), 1, "enable_notify sees chains pending");
	vshm_drv_vq_add(d, sg, 1, 0, &z);
	is(vshm_drv_vq_publish(d), 1, "flags mode: ENABLE asks again");
	is(vshm_dev_vq_pop_batch(v, &c, 1, iov, 8), 1, "pop one");
	vshm_dev_vq_push(v, c.head, 0);
	is(vshm_dev_vq_publish(v), 1, "flags mode: interrupts on by default");
	vshm_drv_vq_disable_cb(d);
	vshm_dev_vq_pop(v, &c, iov, 8);
	vshm_dev_vq_push(v, c.head, 0);
	is(vshm_dev_vq_publish(v), 0, "flags mode: DISABLE suppresses the interrupt");
	is(vshm_drv_vq_enable_cb(d), 1, "enable_cb sees completions pending");
	vshm_dev_vq_pop(v, &c, iov, 8);
	vshm_dev_vq_push(v, c.head, 0);
	is(vshm_dev_vq_publish(v), 1, "flags mode: ENABLE asks again");
	{
		void *cks[4];
		uint32_t lens[4];
		struct vshm_vq_stats s;

		is(vshm_drv_vq_harvest_batch(d, cks, lens, 4), 3, "all three harvested");
		vshm_drv_vq_stats(d, &s);
		ok(s.chains == 3 && s.completions == 3 && s.suppressed == 1, "driver counters");
		vshm_dev_vq_stats(v, &s);
		ok(s.chains == 3 && s.completions == 3 && s.suppressed == 1, "device counters");
	}
	vshm_drv_vq_destroy(d);
	vshm_dev_vq_destroy(v);

	/* A one-entry ring: every chain flips the wrap counter. */
	vshm_vq_layout_packed(&l, w.drv_lo, 1, 0);
	vshm_drv_vq_create(&d, &w, &l, F_PACKED | F_EV, NULL);
	vshm_dev_vq_create(&v, &w, &l, F_PACKED | F_EV, NULL);
	{
		int bad = 0;

		for (int i = 0; i < 100; i++) {
			if (vshm_drv_vq_add(d, sg, 0, 1, &x) || vshm_drv_vq_add(d, sg, 0, 1, &y) != -ENOSPC)
				bad++;
			vshm_drv_vq_publish(d);
			if (vshm_dev_vq_pop(v, &c, iov, 8) != 1 || vshm_dev_vq_pop(v, &c, iov, 8) != 0)
				bad++;
			vshm_dev_vq_push(v, c.head, 7);
			vshm_dev_vq_publish(v);
			if (vshm_drv_vq_harvest(d, &cookie, &len) != 1 || cookie != &x || len != 7)
				bad++;
		}
		is(bad, 0, "one-entry ring: 100 chains, wrap counter flipping each time");
	}
	vshm_drv_vq_destroy(d);
	vshm_dev_vq_destroy(v);
	vshm_window_unmap(&w);
}

static const struct vqh_cfg packed = {
	.layout = vshm_vq_layout_packed, .layout_arg = VQH_MAX_SG, .features = F_PACKED,
	.max_out = 4, .max_in = 3, .pick_indirect = 1,
};

int main(void)
{
	unsigned long n = tap_scale(200000), s = tap_scale(100000), h = tap_scale(HS_ROUNDS);

	test_api();
	test_handshake("kick handshake, event_idx", F_EV, 0, h);
	test_handshake("kick handshake, flags", 0, 0, h);
	test_handshake("interrupt handshake, event_idx", F_EV, 1, h);
	test_handshake("interrupt handshake, flags", 0, 1, h);
	/* Six configurations, a million chains in all. */
	vqh_run_as(&packed, "event_idx+indirect", F_EV | F_IND, 0, n);
	vqh_run_as(&packed, "event_idx", F_EV, 0, n);
	vqh_run_as(&packed, "flags+indirect", F_IND, 0, n);
	vqh_run_as(&packed, "flags", 0, 0, n);
	vqh_run_as(&packed, "sleeping, event_idx+indirect", F_EV | F_IND, 1, s);
	vqh_run_as(&packed, "sleeping, flags", 0, 1, s);
	return tap_done();
}
