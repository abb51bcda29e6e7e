// SPDX-License-Identifier: MIT
/*
 * Bounce pools: argument checks, exhaustion, fragmentation and coalescing,
 * split mappings, data integrity in every direction, sync sub-ranges, pool
 * isolation, a randomized run against a shadow model, the O(log n) step
 * bound, and a locked pool under several threads.
 *
 * The test plays both sides: it maps buffers as the driver and reads or
 * writes the window at the returned offsets as the device would.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <vshm/bounce.h>
#include <vshm/window.h>
#include "tap.h"

#define WIN_SIZE	(64ull << 20)
#define MAX_SG		256u	/* 1 MiB in 4 KiB segments */
#define KiB		(1ull << 10)
#define MiB		(1ull << 20)

static struct vshm_window win;

/* ---- helpers ----------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	/* xorshift64*: deterministic, so a failure reproduces. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static uint64_t rnd_range(uint64_t lo, uint64_t hi)	/* inclusive */
{
	return lo + rnd() % (hi - lo + 1);
}

/* Lengths 1 .. max, spread over the orders of magnitude. */
static size_t rnd_len(size_t max)
{
	unsigned bits = (unsigned)rnd_range(0, 63 - (unsigned)__builtin_clzll(max));
	size_t hi = ((size_t)1 << bits) * 2 - 1;

	if (hi > max)
		hi = max;
	return (size_t)rnd_range(1, hi);
}

static void fill_random(uint8_t *b, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t x = rnd();

		memcpy(b + i, &x, 8);
	}
	for (; i < n; i++)
		b[i] = (uint8_t)(rnd() >> 56);
}

static uint8_t pattern(size_t i, unsigned seed)
{
	return (uint8_t)(i * 131u + seed + (i >> 9));
}

static struct vshm_bounce_stats stats(struct vshm_bounce_pool *p)
{
	struct vshm_bounce_stats s;

	memset(&s, 0, sizeof(s));
	vshm_bounce_stats(p, &s);
	return s;
}

static uint64_t in_use(struct vshm_bounce_pool *p)
{
	return stats(p).slots_in_use;
}

/* Copy a mapping's bytes out of the window, as the device reads them. */
static int sg_gather(const struct vshm_sg *sg, int n, uint8_t *out)
{
	size_t pos = 0;

	for (int i = 0; i < n; i++) {
		const uint8_t *w = vshm_win_ptr(&win, sg[i].off, sg[i].len);

		if (!w)
			return -1;
		memcpy(out + pos, w, sg[i].len);
		pos += sg[i].len;
	}
	return 0;
}

/* Write the device's pattern into the first @n bytes of a mapping. */
static void sg_device_write(const struct vshm_sg *sg, int nseg, size_t n,
			    unsigned seed)
{
	size_t pos = 0;

	for (int i = 0; i < nseg && pos < n; i++) {
		uint8_t *w = vshm_win_ptr(&win, sg[i].off, sg[i].len);

		for (uint32_t j = 0; j < sg[i].len && pos < n; j++, pos++)
			w[j] = pattern(pos, seed);
	}
}

/* Is every byte of the mapping zero in the window? */
static int sg_all_zero(const struct vshm_sg *sg, int n)
{
	for (int i = 0; i < n; i++) {
		const uint8_t *w = vshm_win_ptr(&win, sg[i].off, sg[i].len);

		for (uint32_t j = 0; j < sg[i].len; j++)
			if (w[j])
				return 0;
	}
	return 1;
}

/* Dirty the whole pool range, so "cleared" and "copied" checks can fail. */
static void dirty_pool(const struct vshm_bounce_pool *p, uint8_t v)
{
	memset(vshm_win_ptr(&win, p->off, p->size), v, p->size);
}

static int pool_at(struct vshm_bounce_pool *p, uint64_t off, uint64_t size,
		   uint32_t slot, uint32_t max_seg)
{
	int rc = vshm_bounce_pool_init(p, &win, off, size, slot, max_seg);

	if (rc)
		diag("pool_init(off %llu size %llu slot %u max_seg %u) = %d",
		     (unsigned long long)off, (unsigned long long)size, slot,
		     max_seg, rc);
	return rc;
}

static uint8_t big_src[4 * MiB], big_dst[4 * MiB], big_tmp[4 * MiB];

/* ---- bad arguments ----------------------------------------------------- */

static void test_bad_args(void)
{
	const uint64_t lo = win.drv_lo, hi = win.drv_hi;
	static const struct {
		uint64_t off, size;
		uint32_t slot, max_seg;
		int want;
		const char *what;
	} cases[] = {
		{ 0, 64 * KiB, 0, 0, -EINVAL, "pool in the header" },
		{ VSHM_MBOX_OFF, 8 * KiB, 0, 0, -EINVAL, "pool in the mailbox" },
		{ 32 * KiB, 64 * KiB, 0, 0, -EINVAL, "pool straddling the driver area start" },
		{ WIN_SIZE - 64 * KiB, 128 * KiB, 0, 0, -EINVAL, "pool past the window end" },
		{ WIN_SIZE, 4 * KiB, 0, 0, -EINVAL, "pool starting at the window end" },
		{ UINT64_MAX - 4095, 8 * KiB, 0, 0, -EINVAL, "offset + size wraps 2^64" },
		{ 64 * KiB, UINT64_MAX - 4095, 0, 0, -EINVAL, "size near 2^64" },
		{ 64 * KiB + 100, 64 * KiB, 0, 0, -EINVAL, "misaligned offset" },
		{ 64 * KiB, 64 * KiB + 512, 512, 0, -EINVAL, "size not page aligned" },
		{ 64 * KiB, 0, 0, 0, -EINVAL, "zero size" },
		{ 64 * KiB, 64 * KiB, 3000, 0, -EINVAL, "slot size not a power of two" },
		{ 64 * KiB, 64 * KiB, 32, 0, -EINVAL, "slot size below 64" },
		{ 64 * KiB, 64 * KiB, 2048, 3 * 2048, -EINVAL, "max_seg not a power of two" },
		{ 64 * KiB, 64 * KiB, 2048, 1024, -EINVAL, "max_seg below slot size" },
		{ 64 * KiB, 12 * KiB, 8192, 0, -EINVAL, "size not a multiple of the slot" },
		{ 64 * KiB, 64 * KiB, 0, 0, 0, "defaults in the driver area" },
		{ WIN_SIZE - 4 * KiB, 4 * KiB, 64, 64, 0, "last page of the window" },
	};
	struct vshm_bounce_pool p, q;
	struct vshm_bounce_map m, m2, m3;
	struct vshm_sg sg[MAX_SG], seg;
	uint8_t buf[8192];

	memset(buf, 0x3c, sizeof(buf));

	ok(lo == VSHM_DRV_AREA_OFF && hi == WIN_SIZE, "driver area is [%llu, %llu)",
	   (unsigned long long)lo, (unsigned long long)hi);
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = vshm_bounce_pool_init(&p, &win, cases[i].off, cases[i].size,
					       cases[i].slot, cases[i].max_seg);

		is(rc, cases[i].want, "init case %u: %s", i + 1, cases[i].what);
		vshm_bounce_pool_fini(&p);
	}
	is(vshm_bounce_pool_init(&p, NULL, 64 * KiB, 64 * KiB, 0, 0), -EINVAL, "NULL window");
	is(vshm_bounce_pool_init(NULL, &win, 64 * KiB, 64 * KiB, 0, 0), -EINVAL, "NULL pool");

	/* Defaults, and max_seg lowered to what a small pool can hold. */
	if (pool_at(&p, 64 * KiB, 1 * MiB, 0, 0))
		return;
	is(stats(&p).slot_size, VSHM_BOUNCE_SLOT_SIZE_DEFAULT, "default slot size 2048");
	is(vshm_bounce_max_seg(&p), VSHM_BOUNCE_MAX_SEG_DEFAULT, "default max_seg 256 KiB");
	is(stats(&p).slots_total, 512, "1 MiB / 2048 = 512 slots");
	vshm_bounce_pool_fini(&p);
	if (pool_at(&q, 64 * KiB, 24 * KiB, 2048, 0))
		return;
	is(vshm_bounce_max_seg(&q), 16 * KiB, "max_seg lowered to the largest power-of-two run (8 of 12 slots)");
	vshm_bounce_pool_fini(&q);

	/* A 7-slot pool: 7 slots fit only 4+2+1, so a 4+3 mapping never can. */
	if (pool_at(&q, 64 * KiB, 7 * 4096, 4096, 4 * 4096))
		return;
	is(vshm_bounce_map(&q, big_src, 7 * 4096, VSHM_DMA_TO_DEVICE, &m, sg, MAX_SG),
	   -EMSGSIZE, "mapping that can never fit the pool: -EMSGSIZE");
	is(vshm_bounce_map(&q, big_src, 6 * 4096, VSHM_DMA_TO_DEVICE, &m, sg, MAX_SG),
	   2, "6 slots of a 7-slot pool: segments of 4 and 2 slots");
	is(vshm_bounce_map(&q, big_src, 4096, VSHM_DMA_TO_DEVICE, &m2, sg, MAX_SG),
	   1, "the odd 7th slot is usable");
	is(vshm_bounce_unmap(&q, &m, 0), 0, "unmap 6 slots");
	is(vshm_bounce_unmap(&q, &m2, 0), 0, "unmap the 7th");
	is(vshm_bounce_pool_check(&q), 0, "7-slot pool consistent");
	vshm_bounce_pool_fini(&q);

	if (pool_at(&p, 64 * KiB, 1 * MiB, 2048, 64 * KiB) ||
	    pool_at(&q, 2 * MiB, 64 * KiB, 2048, 0))
		return;
	{
		static const struct { size_t len; int dir; int null; int want; const char *what; } mc[] = {
			{ 0, VSHM_DMA_TO_DEVICE, 0, -EINVAL, "zero-length map" },
			{ 16, 3, 0, -EINVAL, "direction 3" },
			{ 16, -1, 0, -EINVAL, "direction -1" },
			{ 16, VSHM_DMA_TO_DEVICE, 1, -EINVAL, "NULL buffer" },
			{ 16, VSHM_DMA_TO_DEVICE, 2, -EINVAL, "NULL map record" },
			{ 16, VSHM_DMA_TO_DEVICE, 3, -EINVAL, "NULL sg array" },
			{ 2 * MiB, VSHM_DMA_TO_DEVICE, 0, -EMSGSIZE, "longer than the pool" },
			{ SIZE_MAX, VSHM_DMA_FROM_DEVICE, 0, -EMSGSIZE, "length SIZE_MAX" },
		};
		for (unsigned i = 0; i < sizeof(mc) / sizeof(mc[0]); i++) {
			int rc = vshm_bounce_map(&p, mc[i].null == 1 ? NULL : big_src,
						 mc[i].len, mc[i].dir,
						 mc[i].null == 2 ? NULL : &m,
						 mc[i].null == 3 ? NULL : sg, MAX_SG);
			is(rc, mc[i].want, "map case %u: %s", i + 1, mc[i].what);
		}
	}
	is(in_use(&p), 0, "failed maps took nothing");
	is(stats(&p).map_enomem, 0, "argument errors are not counted as exhaustion");

	memset(&m, 0, sizeof(m));
	is(vshm_bounce_unmap(&p, &m, 0), -EINVAL, "unmap of a zeroed map record");
	is(vshm_bounce_unmap(&p, NULL, 0), -EINVAL, "unmap of NULL");
	is(vshm_bounce_map(&p, buf, 5000, VSHM_DMA_BIDIRECTIONAL, &m, sg, MAX_SG), 1, "map 5000 bytes");
	is(vshm_bounce_unmap(&q, &m, 0), -EINVAL, "unmap through the wrong pool");
	m2 = m;
	m2.seg_inline[0] ^= 1;
	is(vshm_bounce_unmap(&p, &m2, 0), -EINVAL, "unmap of a scribbled record");
	{
		static const struct { size_t off, len; int want; const char *what; } sc[] = {
			{ 0, 5000, 0, "whole mapping" },
			{ 4999, 1, 0, "last byte" },
			{ 5000, 0, 0, "empty range at the end" },
			{ 0, 5001, -EINVAL, "one byte past the end" },
			{ 5001, 0, -EINVAL, "empty range past the end" },
			{ 4000, 2000, -EINVAL, "range straddling the end" },
			{ SIZE_MAX, 2, -EINVAL, "offset SIZE_MAX (no wrap)" },
			{ 1, SIZE_MAX, -EINVAL, "length SIZE_MAX (no wrap)" },
		};
		for (unsigned i = 0; i < sizeof(sc) / sizeof(sc[0]); i++) {
			is(vshm_bounce_sync_for_device(&p, &m, sc[i].off, sc[i].len), sc[i].want,
			   "sync_for_device case %u: %s", i + 1, sc[i].what);
			is(vshm_bounce_sync_for_cpu(&p, &m, sc[i].off, sc[i].len), sc[i].want,
			   "sync_for_cpu case %u: %s", i + 1, sc[i].what);
		}
	}
	m3 = m;
	is(vshm_bounce_unmap(&p, &m, 0), 0, "unmap");
	is(vshm_bounce_unmap(&p, &m, 0), -EINVAL, "double unmap refused");
	is(vshm_bounce_unmap(&p, &m3, 0), -EINVAL, "unmap of a stale copy of the record refused");
	is(in_use(&p), 0, "the refused unmaps freed nothing twice");
	is(vshm_bounce_sync_for_cpu(&p, &m, 0, 1), -EINVAL, "sync on an unmapped record");

	/* Coherent allocations. */
	is(vshm_bounce_alloc(&p, 0, &seg), -EINVAL, "coherent alloc of 0 bytes");
	is(vshm_bounce_alloc(&p, 64 * KiB + 1, &seg), -EINVAL, "coherent alloc above max_seg");
	is(vshm_bounce_alloc(&p, 3000, NULL), -EINVAL, "coherent alloc into NULL");
	is(vshm_bounce_alloc(&p, 3000, &seg), 0, "coherent alloc of 3000 bytes");
	{
		struct vshm_sg bad[] = {
			{ seg.off + 1, seg.len, 0 }, { seg.off + 2048, seg.len, 0 },
			{ seg.off, 5000, 0 }, { seg.off, 0, 0 }, { p.off - 4096, 100, 0 },
			{ p.off + p.size, 100, 0 }, { UINT64_MAX, 1, 0 },
		};
		for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			is(vshm_bounce_free(&p, &bad[i]), -EINVAL, "free of a bogus segment %u", i + 1);
	}
	is(vshm_bounce_map(&p, buf, 100, VSHM_DMA_TO_DEVICE, &m, sg, MAX_SG), 1, "map one slot");
	is(vshm_bounce_free(&p, &sg[0]), -EINVAL, "a mapping's segment is not a coherent allocation");
	is(vshm_bounce_unmap(&p, &m, 0), 0, "and its mapping still unmaps");
	is(vshm_bounce_free(&p, &seg), 0, "free the coherent allocation");
	is(vshm_bounce_free(&p, &seg), -EINVAL, "double free refused");
	is(in_use(&p), 0, "nothing in use after the argument tests");

	is(vshm_bounce_pool_set_flags(&p, 1u << 7), -EINVAL, "unknown pool flag");
	is(vshm_bounce_stats(&p, NULL), -EINVAL, "stats into NULL");
	is(vshm_bounce_pool_check(&p), 0, "pool consistent");

	/* A map record outlives its pool: refused, even once the struct is reused. */
	is(vshm_bounce_map(&p, buf, 100, VSHM_DMA_TO_DEVICE, &m, sg, MAX_SG), 1, "map before fini");
	vshm_bounce_pool_fini(&p);
	is(vshm_bounce_unmap(&p, &m, 0), -EINVAL, "unmap after fini refused");
	is(vshm_bounce_map(&p, buf, 100, VSHM_DMA_TO_DEVICE, &m2, sg, MAX_SG), -EINVAL, "map on a finished pool");
	if (!pool_at(&p, 64 * KiB, 1 * MiB, 2048, 64 * KiB)) {
		is(vshm_bounce_unmap(&p, &m, 0), -EINVAL, "stale record refused by a re-initialised pool");
		is(in_use(&p), 0, "re-initialised pool is empty");
	}
	vshm_bounce_pool_fini(&p);
	vshm_bounce_pool_fini(&p);
	vshm_bounce_pool_fini(&q);
	ok(1, "double fini is harmless");
}

/* ---- exhaustion -------------------------------------------------------- */

#define EXH_MAX 2048

static void test_exhaustion(void)
{
	static struct vshm_bounce_map maps[EXH_MAX];
	static size_t lens[EXH_MAX];
	struct vshm_bounce_pool p;
	struct vshm_sg sg[MAX_SG];
	struct vshm_bounce_stats s;
	unsigned n = 0, iters = 0;
	int rc = 0;

	if (pool_at(&p, 4 * MiB, 1 * MiB, 2048, 64 * KiB))
		return;
	/* Random sizes until the first refusal... */
	while (n < EXH_MAX && iters++ < 10000) {
		lens[n] = rnd_len(64 * KiB);
		rc = vshm_bounce_map(&p, big_src, lens[n], VSHM_DMA_TO_DEVICE, &maps[n], sg, MAX_SG);
		if (rc < 0)
			break;
		n++;
	}
	is(rc, -ENOMEM, "random maps end in -ENOMEM (after %u maps)", n);
	is(stats(&p).map_enomem, 1, "the refusal is counted");
	/* ...then single slots until the pool is completely full. */
	while (n < EXH_MAX && iters++ < 10000) {
		lens[n] = 1;
		rc = vshm_bounce_map(&p, big_src, 1, VSHM_DMA_TO_DEVICE, &maps[n], sg, MAX_SG);
		if (rc < 0)
			break;
		n++;
	}
	s = stats(&p);
	is(rc, -ENOMEM, "single-slot maps end in -ENOMEM");
	is(s.slots_in_use, s.slots_total, "every slot is in use");
	is(s.slots_peak, s.slots_total, "peak reached the total");
	is(s.map_enomem, 2, "both refusals counted");
	is(s.maps, n, "every success counted");
	is(vshm_bounce_map(&p, big_src, 1, VSHM_DMA_FROM_DEVICE, &maps[n], sg, MAX_SG),
	   -ENOMEM, "a full pool refuses even one byte, without waiting");
	is(stats(&p).map_enomem, 3, "third refusal counted");

	/* Free one mapping: one of the same size fits again. */
	{
		unsigned victim = n / 2;
		size_t l = lens[victim];

		is(vshm_bounce_unmap(&p, &maps[victim], 0), 0, "unmap one (%zu bytes)", l);
		rc = vshm_bounce_map(&p, big_src, l, VSHM_DMA_TO_DEVICE, &maps[victim], sg, MAX_SG);
		ok(rc >= 1, "a map of the same length succeeds again (%d)", rc);
		is(stats(&p).map_enomem, 3, "no new refusal");
	}
	for (unsigned i = 0; i < n; i++)
		vshm_bounce_unmap(&p, &maps[i], 0);
	s = stats(&p);
	is(s.slots_in_use, 0, "all slots back");
	is(s.unmaps, s.maps, "unmaps == maps");
	is(vshm_bounce_pool_check(&p), 0, "pool consistent after exhaustion");
	vshm_bounce_pool_fini(&p);
}

/* ---- fragmentation and coalescing -------------------------------------- */

static int cmp_off(const void *a, const void *b)
{
	const struct vshm_sg *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

static void test_fragmentation(void)
{
	enum { SLOTS = 64, SLOT = 2048 };
	static struct vshm_bounce_map maps[SLOTS], extra;
	struct vshm_sg sg[MAX_SG], one[SLOTS];
	struct vshm_bounce_pool p;
	unsigned i, got = 0;
	int rc;

	if (pool_at(&p, 8 * MiB, SLOTS * SLOT, SLOT, SLOTS * SLOT))
		return;
	for (i = 0; i < SLOTS; i++) {
		rc = vshm_bounce_map(&p, big_src, SLOT, VSHM_DMA_TO_DEVICE, &maps[i], &one[i], 1);
		got += rc == 1;
	}
	is(got, SLOTS, "%u single-slot maps fill the pool", SLOTS);
	is(in_use(&p), SLOTS, "all slots in use");

	/* Free every other slot by position: no two free slots are buddies. */
	for (i = 0; i < SLOTS; i++) {
		uint64_t slot = (one[i].off - p.off) / SLOT;

		if (slot % 2 == 0)
			vshm_bounce_unmap(&p, &maps[i], 0);
	}
	is(in_use(&p), SLOTS / 2, "half the slots free");
	is(vshm_bounce_pool_check(&p), 0, "fragmented pool consistent");
	is(vshm_bounce_map(&p, big_src, SLOT + 1, VSHM_DMA_TO_DEVICE, &extra, sg, MAX_SG),
	   -ENOMEM, "2-slot map fails: free space is only single slots");
	is(vshm_bounce_map(&p, big_src, SLOT, VSHM_DMA_TO_DEVICE, &extra, sg, MAX_SG),
	   1, "1-slot map succeeds");
	is((sg[0].off - p.off) / SLOT % 2, 0, "it reuses one of the freed slots");
	is(vshm_bounce_unmap(&p, &extra, 0), 0, "unmap it");

	for (i = 0; i < SLOTS; i++)
		if (((one[i].off - p.off) / SLOT) % 2)
			vshm_bounce_unmap(&p, &maps[i], 0);
	is(in_use(&p), 0, "all free again");
	is(vshm_bounce_pool_check(&p), 0, "coalesced pool consistent");
	is(vshm_bounce_map(&p, big_src, SLOTS * SLOT, VSHM_DMA_TO_DEVICE, &extra, sg, MAX_SG),
	   1, "whole-pool mapping is one segment: buddies coalesced");
	is(sg[0].off, p.off, "it starts at the pool's first slot");
	vshm_bounce_unmap(&p, &extra, 0);

	/* Sorting by offset shows the single-slot allocations tiled the pool. */
	qsort(one, SLOTS, sizeof(one[0]), cmp_off);
	for (i = 0, got = 0; i < SLOTS; i++)
		got += one[i].off == p.off + (uint64_t)i * SLOT;
	is(got, SLOTS, "the %u single slots tiled the pool exactly", SLOTS);
	vshm_bounce_pool_fini(&p);
}

/* ---- split mappings ---------------------------------------------------- */

/* Segments inside the pool and the driver area, pairwise disjoint. */
static int segs_sane(const struct vshm_bounce_pool *p, const struct vshm_sg *sg, int n)
{
	for (int i = 0; i < n; i++) {
		if (!vshm_win_ptr(&win, sg[i].off, sg[i].len) || sg[i].off < p->off ||
		    sg[i].off + sg[i].len > p->off + p->size || sg[i].len == 0)
			return 0;
		for (int j = 0; j < i; j++)
			if (sg[i].off < sg[j].off + sg[j].len && sg[j].off < sg[i].off + sg[i].len)
				return 0;
	}
	return 1;
}

static void test_split(void)
{
	struct vshm_bounce_pool p;
	struct vshm_bounce_map m;
	struct vshm_sg sg[MAX_SG], coh;
	int rc, lens_ok = 1;

	if (pool_at(&p, 12 * MiB, 2 * MiB, 0, 0))
		return;
	rc = vshm_bounce_map(&p, big_src, 1 * MiB, VSHM_DMA_TO_DEVICE, &m, sg, MAX_SG);
	is(rc, 4, "1 MiB with max_seg 256 KiB: 4 segments");
	for (int i = 0; i < rc; i++)
		lens_ok &= sg[i].len == 256 * KiB && sg[i].flags == 0;
	ok(rc == 4 && lens_ok, "each segment is 256 KiB");
	ok(rc == 4 && segs_sane(&p, sg, rc), "segments inside the pool and driver area, disjoint");
	is(stats(&p).split_maps, 1, "split mapping counted");
	is(in_use(&p), 512, "512 slots in use");
	vshm_bounce_unmap(&p, &m, 0);

	rc = vshm_bounce_map(&p, big_src, 1 * MiB - 1, VSHM_DMA_TO_DEVICE, &m, sg, MAX_SG);
	ok(rc == 4 && sg[3].len == 256 * KiB - 1, "1 MiB - 1: last segment 256 KiB - 1");
	vshm_bounce_unmap(&p, &m, 0);
	rc = vshm_bounce_map(&p, big_src, 256 * KiB + 1, VSHM_DMA_TO_DEVICE, &m, sg, MAX_SG);
	ok(rc == 2 && sg[1].len == 1, "256 KiB + 1: a second segment of 1 byte");
	vshm_bounce_unmap(&p, &m, 0);

	is(vshm_bounce_nseg(&p, 1 * MiB), 4, "nseg(1 MiB) == 4");
	is(vshm_bounce_map(&p, big_src, 1 * MiB, VSHM_DMA_TO_DEVICE, &m, sg, 3), -E2BIG,
	   "sg array of 3 for 4 segments: -E2BIG");
	is(in_use(&p), 0, "-E2BIG left nothing allocated");

	/* Exhaustion on the 4th segment: the first three are given back. */
	is(vshm_bounce_alloc(&p, 1 * MiB + 768 * KiB, &coh), -EINVAL, "coherent alloc above max_seg refused");
	{
		struct vshm_sg hold[5];
		int n = 0;

		for (int i = 0; i < 5; i++)
			n += vshm_bounce_alloc(&p, 256 * KiB, &hold[i]) == 0;
		is(n, 5, "hold 5 of 8 max-size blocks");
		is(vshm_bounce_alloc(&p, 1, &coh), 0, "and one slot, breaking a 6th block");
		rc = vshm_bounce_map(&p, big_src, 1 * MiB, VSHM_DMA_TO_DEVICE, &m, sg, MAX_SG);
		is(rc, -ENOMEM, "1 MiB needs 4 whole blocks, 2 are free: -ENOMEM");
		is(in_use(&p), 5 * 128 + 1, "the segments taken before the failure were freed");
		is(stats(&p).map_enomem, 1, "counted once");
		is(vshm_bounce_pool_check(&p), 0, "pool consistent after the rollback");
		vshm_bounce_free(&p, &coh);
		for (int i = 0; i < 5; i++)
			vshm_bounce_free(&p, &hold[i]);
	}
	vshm_bounce_pool_fini(&p);

	/* More segments than the record holds inline: 1 MiB in 64 KiB pieces. */
	if (pool_at(&p, 12 * MiB, 2 * MiB, 2048, 64 * KiB))
		return;
	fill_random(big_src, 1 * MiB);
	rc = vshm_bounce_map(&p, big_src, 1 * MiB, VSHM_DMA_BIDIRECTIONAL, &m, sg, MAX_SG);
	is(rc, 16, "1 MiB with max_seg 64 KiB: 16 segments");
	ok(rc == 16 && segs_sane(&p, sg, rc), "16 segments sane");
	ok(rc == 16 && !sg_gather(sg, rc, big_tmp) && !memcmp(big_tmp, big_src, 1 * MiB),
	   "16-segment mapping carries the buffer");
	is(vshm_bounce_unmap(&p, &m, 0), 0, "unmap the 16-segment mapping");
	is(in_use(&p), 0, "and every segment is freed");
	vshm_bounce_pool_fini(&p);
}

/* ---- data integrity ---------------------------------------------------- */

static const char *dir_name(int dir)
{
	return dir == VSHM_DMA_TO_DEVICE ? "to-device" :
	       dir == VSHM_DMA_FROM_DEVICE ? "from-device" : "bidirectional";
}

/*
 * One round trip: map, check the window, let the device write, unmap with a
 * reported length, check the buffer.  Returns 0 or a failure description.
 */
static const char *round_trip(struct vshm_bounce_pool *p, size_t len, int dir,
			      size_t written, unsigned seed)
{
	struct vshm_bounce_map m;
	struct vshm_sg sg[MAX_SG];
	size_t copied = written < len ? written : len;
	int n;

	fill_random(big_dst, len + 1);
	memcpy(big_tmp, big_dst, len + 1);	/* the caller's original bytes */
	dirty_pool(p, 0xa5);
	n = vshm_bounce_map(p, big_dst, len, dir, &m, sg, MAX_SG);
	if (n < 1)
		return "map failed";
	if (!segs_sane(p, sg, n))
		return "segments outside the pool or overlapping";
	if (dir == VSHM_DMA_FROM_DEVICE) {
		if (!sg_all_zero(sg, n))
			return "from-device window not cleared at map";
	} else {
		static uint8_t seen[4 * MiB];

		if (sg_gather(sg, n, seen) || memcmp(seen, big_dst, len))
			return "window differs from the buffer after map";
	}
	sg_device_write(sg, n, len, seed);
	if (vshm_bounce_unmap(p, &m, written))
		return "unmap failed";
	if (dir == VSHM_DMA_TO_DEVICE) {
		if (memcmp(big_dst, big_tmp, len + 1))
			return "to-device unmap changed the buffer";
		return NULL;
	}
	for (size_t i = 0; i < copied; i++)
		if (big_dst[i] != pattern(i, seed))
			return "written bytes not copied back";
	if (memcmp(big_dst + copied, big_tmp + copied, len + 1 - copied))
		return "bytes beyond the reported length were touched";
	return NULL;
}

static void test_integrity(void)
{
	static const struct { uint32_t slot, max_seg; unsigned rounds; } cfg[] = {
		{ 2048, 256 * KiB, 40 }, { 512, 64 * KiB, 40 },
		{ 4096, 4096, 20 }, { 64, 4096, 10 },
	};
	for (unsigned c = 0; c < sizeof(cfg) / sizeof(cfg[0]); c++) {
		struct vshm_bounce_pool p;
		struct vshm_bounce_stats s;
		uint64_t want_in = 0, want_out = 0;
		unsigned bad = 0, rounds = (unsigned)tap_scale(cfg[c].rounds);

		if (pool_at(&p, 16 * MiB, 4 * MiB, cfg[c].slot, cfg[c].max_seg))
			continue;
		for (unsigned r = 0; r < rounds; r++) {
			size_t len = r < 3 ? (size_t[]){ 1, 1 * MiB, cfg[c].max_seg }[r] : rnd_len(1 * MiB);
			int dir = (int)(r % 3);
			size_t written;
			const char *why;

			switch (rnd() % 4) {
			case 0: written = len; break;
			case 1: written = 0; break;
			case 2: written = len + rnd_range(1, 100); break; /* clamped */
			default: written = (size_t)rnd_range(0, len); break;
			}
			why = round_trip(&p, len, dir, written, r);
			if (why && !bad++)
				diag("config %u round %u: %s, len %zu, written %zu: %s",
				     c + 1, r, dir_name(dir), len, written, why);
			if (dir != VSHM_DMA_FROM_DEVICE)
				want_in += len;
			if (dir != VSHM_DMA_TO_DEVICE)
				want_out += written < len ? written : len;
		}
		s = stats(&p);
		is(bad, 0, "config %u (slot %u, max_seg %u): %u random round trips",
		   c + 1, cfg[c].slot, cfg[c].max_seg, rounds);
		ok(s.bytes_to_dev == want_in && s.bytes_from_dev == want_out,
		   "config %u: byte counters in %llu/%llu out %llu/%llu", c + 1,
		   (unsigned long long)s.bytes_to_dev, (unsigned long long)want_in,
		   (unsigned long long)s.bytes_from_dev, (unsigned long long)want_out);
		ok(s.slots_in_use == 0 && s.maps == rounds && s.unmaps == rounds,
		   "config %u: all %u mappings returned", c + 1, rounds);
		vshm_bounce_pool_fini(&p);
	}
}

/* sync_for_device / sync_for_cpu over sub-ranges that cross segments. */
static void test_sync(void)
{
	enum { LEN = 40000 };
	struct vshm_bounce_pool p;
	struct vshm_bounce_map m;
	struct vshm_sg sg[MAX_SG];
	unsigned bad_dev = 0, bad_cpu = 0, rounds = (unsigned)tap_scale(200);
	static uint8_t expect_win[LEN], expect_buf[LEN], now[LEN];
	int n;

	if (pool_at(&p, 24 * MiB, 1 * MiB, 512, 4096))
		return;
	fill_random(big_dst, LEN);
	n = vshm_bounce_map(&p, big_dst, LEN, VSHM_DMA_BIDIRECTIONAL, &m, sg, MAX_SG);
	is(n, 10, "40000 bytes in 4 KiB segments: 10");
	if (n != 10)
		return;
	memcpy(expect_win, big_dst, LEN);
	memcpy(expect_buf, big_dst, LEN);
	for (unsigned r = 0; r < rounds; r++) {
		size_t off = (size_t)rnd_range(0, LEN), len = (size_t)rnd_range(0, LEN - off);

		/* The driver changes its buffer, then pushes only [off, off+len). */
		for (size_t i = 0; i < LEN; i++)
			big_dst[i] = expect_buf[i] = (uint8_t)rnd();
		if (vshm_bounce_sync_for_device(&p, &m, off, len))
			bad_dev++;
		memcpy(expect_win + off, big_dst + off, len);
		if (sg_gather(sg, n, now) || memcmp(now, expect_win, LEN))
			bad_dev++;

		/* The device writes everything; the driver pulls only a sub-range. */
		off = (size_t)rnd_range(0, LEN);
		len = (size_t)rnd_range(0, LEN - off);
		sg_device_write(sg, n, LEN, r);
		for (size_t i = 0; i < LEN; i++)
			expect_win[i] = pattern(i, r);
		if (vshm_bounce_sync_for_cpu(&p, &m, off, len))
			bad_cpu++;
		memcpy(expect_buf + off, expect_win + off, len);
		if (memcmp(big_dst, expect_buf, LEN))
			bad_cpu++;
	}
	is(bad_dev, 0, "%u sync_for_device sub-ranges copy exactly their bytes", rounds);
	is(bad_cpu, 0, "%u sync_for_cpu sub-ranges copy exactly their bytes", rounds);
	vshm_bounce_unmap(&p, &m, 0);

	/* Direction no-ops: nothing crosses the wrong way. */
	fill_random(big_dst, LEN);
	memcpy(expect_buf, big_dst, LEN);
	n = vshm_bounce_map(&p, big_dst, LEN, VSHM_DMA_TO_DEVICE, &m, sg, MAX_SG);
	sg_device_write(sg, n, LEN, 7);
	is(vshm_bounce_sync_for_cpu(&p, &m, 0, LEN), 0, "sync_for_cpu on a to-device mapping: 0");
	ok(!memcmp(big_dst, expect_buf, LEN), "...and the buffer is untouched");
	vshm_bounce_unmap(&p, &m, LEN);
	ok(!memcmp(big_dst, expect_buf, LEN), "to-device unmap never copies back");

	n = vshm_bounce_map(&p, big_dst, LEN, VSHM_DMA_FROM_DEVICE, &m, sg, MAX_SG);
	is(vshm_bounce_sync_for_device(&p, &m, 0, LEN), 0, "sync_for_device on a from-device mapping: 0");
	ok(n > 0 && sg_all_zero(sg, n), "...and the caller's bytes never reach the window");
	is(vshm_bounce_sync_for_cpu(&p, &m, 100, 50), 0, "sync_for_cpu before the device wrote");
	ok(!memcmp(big_dst, expect_buf, 100) && big_dst[100] == 0 && big_dst[149] == 0 &&
	   !memcmp(big_dst + 150, expect_buf + 150, LEN - 150),
	   "...yields zeroes, never another mapping's stale bytes");
	vshm_bounce_unmap(&p, &m, 0);
	vshm_bounce_pool_fini(&p);
}

/* Residue: what stays in the window after unmap, with and without scrub. */
static void test_scrub(void)
{
	struct vshm_bounce_pool p;
	struct vshm_bounce_map m;
	struct vshm_sg sg[MAX_SG], coh;
	int n;

	if (pool_at(&p, 24 * MiB, 256 * KiB, 2048, 64 * KiB))
		return;
	memset(big_src, 0x5a, 100 * KiB);
	n = vshm_bounce_map(&p, big_src, 100 * KiB, VSHM_DMA_TO_DEVICE, &m, sg, MAX_SG);
	vshm_bounce_unmap(&p, &m, 0);
	ok(n == 2 && !sg_all_zero(sg, n), "without scrub, unmapped bytes stay in the window");
	is(vshm_bounce_pool_set_flags(&p, VSHM_BOUNCE_F_SCRUB), 0, "enable scrub");
	n = vshm_bounce_map(&p, big_src, 100 * KiB, VSHM_DMA_BIDIRECTIONAL, &m, sg, MAX_SG);
	vshm_bounce_unmap(&p, &m, 10);
	ok(n == 2 && sg_all_zero(sg, n), "with scrub, unmap zeroes the mapping's bytes");

	dirty_pool(&p, 0xee);
	is(vshm_bounce_alloc(&p, 5000, &coh), 0, "coherent alloc in a dirty pool");
	ok(sg_all_zero(&coh, 1), "coherent memory starts zeroed");
	memset(vshm_win_ptr(&win, coh.off, coh.len), 0x11, coh.len);
	is(vshm_bounce_free(&p, &coh), 0, "free it");
	ok(sg_all_zero(&coh, 1), "with scrub, free zeroes it");
	vshm_bounce_pool_fini(&p);
}

/* ---- pool isolation ---------------------------------------------------- */

static void test_isolation(void)
{
	static struct vshm_bounce_map maps[600];
	struct vshm_bounce_pool a, b;
	struct vshm_bounce_map mb;
	struct vshm_bounce_stats sa, sb;
	struct vshm_sg sg[MAX_SG];
	unsigned n = 0;
	int rc;

	if (pool_at(&a, 28 * MiB, 1 * MiB, 2048, 0) || pool_at(&b, 29 * MiB, 1 * MiB, 2048, 0))
		return;
	while (n < 600 && (rc = vshm_bounce_map(&a, big_src, 2048, VSHM_DMA_TO_DEVICE,
						 &maps[n], sg, MAX_SG)) == 1)
		n++;
	sa = stats(&a);
	ok(n == 512 && sa.slots_in_use == sa.slots_total && sa.map_enomem == 1,
	   "pool A exhausted after %u maps", n);
	sb = stats(&b);
	ok(sb.slots_in_use == 0 && sb.maps == 0 && sb.map_enomem == 0 && sb.slots_peak == 0,
	   "pool B's counters untouched by A");
	rc = vshm_bounce_map(&b, big_src, 300 * KiB, VSHM_DMA_TO_DEVICE, &mb, sg, MAX_SG);
	is(rc, 2, "pool B maps 300 KiB while A is full");
	ok(rc == 2 && segs_sane(&b, sg, rc) &&
	   (sg[0].off >= a.off + a.size || sg[0].off + sg[0].len <= a.off),
	   "B's segments lie in B, not in A");
	sb = stats(&b);
	ok(sb.maps == 1 && sb.map_enomem == 0 && stats(&a).maps == n,
	   "each pool counts only its own maps");
	vshm_bounce_unmap(&b, &mb, 0);
	for (unsigned i = 0; i < n; i++)
		vshm_bounce_unmap(&a, &maps[i], 0);
	ok(in_use(&a) == 0 && in_use(&b) == 0, "both pools empty");
	vshm_bounce_pool_fini(&a);
	vshm_bounce_pool_fini(&b);
}

/* ---- randomized stress against a shadow model --------------------------- */

#define LIVE_MAX 512
#define LIVE_SG 8		/* 600 KiB in 256 KiB segments */

struct live {
	int coherent;
	struct vshm_bounce_map m;
	struct vshm_sg sg[LIVE_SG];
	int nseg;
};

/* The shadow's own idea of the slots behind a segment (rounded to 2^k). */
static uint32_t shadow_slots(uint32_t len, uint32_t slot)
{
	uint32_t s = (len + slot - 1) / slot, r = 1;

	while (r < s)
		r <<= 1;
	return r;
}

static void test_stress(void)
{
	enum { SLOT = 64, POOL = 4 * MiB, NSLOTS = POOL / SLOT };
	static struct live live[LIVE_MAX];
	static uint32_t owner[NSLOTS];
	struct vshm_bounce_pool p;
	struct vshm_bounce_stats s;
	/* Cheap even under sanitizers; the floor keeps exhaustion reachable. */
	unsigned long ops = tap_scale(100000) < 20000 ? 20000 : tap_scale(100000), op;
	unsigned nlive = 0, overlap = 0, outside = 0, inuse_bad = 0, rollback_bad = 0,
		 check_bad = 0, other_err = 0;
	uint64_t shadow_inuse = 0, enomem = 0, ids = 0;

	if (pool_at(&p, 32 * MiB, POOL, SLOT, 256 * KiB))
		return;
	fill_random(big_src, 1 * MiB);
	for (op = 0; op < ops; op++) {
		uint64_t r = rnd() % 100;

		if (nlive && (nlive == LIVE_MAX || r < 45)) {
			unsigned k = (unsigned)(rnd() % nlive);
			struct live *l = &live[k];
			int rc = l->coherent ? vshm_bounce_free(&p, &l->sg[0])
					     : vshm_bounce_unmap(&p, &l->m, rnd() % 64);

			other_err += rc != 0;
			for (int i = 0; i < l->nseg; i++) {
				uint32_t first = (uint32_t)((l->sg[i].off - p.off) / SLOT);
				uint32_t cnt = shadow_slots(l->sg[i].len, SLOT);

				for (uint32_t j = first; j < first + cnt; j++)
					owner[j] = 0;
				shadow_inuse -= cnt;
			}
			*l = live[--nlive];
		} else {
			struct live *l = &live[nlive];
			size_t len = r < 75 ? (size_t)rnd_range(1, 1024) :
				     r < 98 ? (size_t)rnd_range(1, 16 * KiB) :
				     (size_t)rnd_range(1, 600 * KiB);
			uint64_t before = in_use(&p);
			int rc;

			l->coherent = r % 10 == 0 && len <= 256 * KiB;
			if (l->coherent) {
				rc = vshm_bounce_alloc(&p, len, &l->sg[0]);
				rc = rc ? rc : 1;
			} else {
				rc = vshm_bounce_map(&p, big_src, len, (int)(rnd() % 3),
						     &l->m, l->sg, LIVE_SG);
			}
			if (rc == -ENOMEM) {
				enomem += !l->coherent;
				rollback_bad += in_use(&p) != before;
				continue;
			}
			if (rc < 1) {
				other_err++;
				continue;
			}
			l->nseg = rc;
			ids++;
			for (int i = 0; i < rc; i++) {
				uint64_t o = l->sg[i].off;
				uint32_t first, cnt;

				if (o < p.off || (o - p.off) % SLOT || o + l->sg[i].len > p.off + p.size ||
				    !vshm_win_ptr(&win, o, l->sg[i].len)) {
					outside++;
					continue;
				}
				first = (uint32_t)((o - p.off) / SLOT);
				cnt = shadow_slots(l->sg[i].len, SLOT);
				if (first % cnt || first + cnt > NSLOTS) {
					outside++;
					continue;
				}
				for (uint32_t j = first; j < first + cnt; j++) {
					overlap += owner[j] != 0;
					owner[j] = (uint32_t)ids;
				}
				shadow_inuse += cnt;
			}
			nlive++;
		}
		inuse_bad += in_use(&p) != shadow_inuse;
		if (op % 5000 == 0)
			check_bad += vshm_bounce_pool_check(&p) != 0;
	}
	s = stats(&p);
	diag("%lu ops: %llu maps, %llu allocs, %llu refused, peak %llu of %llu slots",
	     ops, (unsigned long long)s.maps, (unsigned long long)s.allocs,
	     (unsigned long long)enomem, (unsigned long long)s.slots_peak,
	     (unsigned long long)s.slots_total);
	is(overlap, 0, "stress: no two live allocations overlap (private byte map)");
	is(outside, 0, "stress: every segment inside its pool, aligned to its size");
	is(inuse_bad, 0, "stress: in_use == sum of live allocations after every op");
	is(rollback_bad, 0, "stress: a refused map leaves in_use unchanged");
	is(other_err, 0, "stress: no unexpected errors");
	is(check_bad, 0, "stress: allocator invariants hold throughout");
	is(s.map_enomem, enomem, "stress: map_enomem matches the refusals seen");
	ok(enomem > 0 && s.slots_peak > NSLOTS / 2, "stress: the run reached exhaustion");

	/*
	 * O(log n): one step per block op plus one per split or merge.  A
	 * scan over slots or free blocks would blow through this bound.
	 */
	ok(s.alloc_steps_max <= s.max_order + 1 && s.max_order + 1 <= 17,
	   "stress: worst op took %u steps <= max_order + 1 = %u <= log2(%u) + 1",
	   s.alloc_steps_max, s.max_order + 1, NSLOTS);
	ok(s.alloc_ops >= s.maps + s.allocs && s.alloc_steps <= s.alloc_ops * (s.max_order + 1),
	   "stress: %llu steps over %llu block ops (mean %.2f)",
	   (unsigned long long)s.alloc_steps, (unsigned long long)s.alloc_ops,
	   s.alloc_ops ? (double)s.alloc_steps / (double)s.alloc_ops : 0.0);

	while (nlive) {
		struct live *l = &live[--nlive];

		if (l->coherent)
			vshm_bounce_free(&p, &l->sg[0]);
		else
			vshm_bounce_unmap(&p, &l->m, 0);
	}
	is(in_use(&p), 0, "stress: everything returned");
	is(vshm_bounce_pool_check(&p), 0, "stress: pool fully coalesced and consistent");
	vshm_bounce_pool_fini(&p);
}

/* ---- a locked pool under several threads -------------------------------- */

#define THREADS 4

struct worker {
	struct vshm_bounce_pool *p;
	unsigned long ops;
	unsigned bad;
	uint64_t seed;
	uint8_t buf[64 * 1024];
	uint8_t win_copy[64 * 1024];
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct vshm_sg sg[MAX_SG];
	struct vshm_bounce_map m;
	uint64_t x = w->seed;

	for (unsigned long i = 0; i < w->ops; i++) {
		size_t len;
		int n;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		len = 1 + x % sizeof(w->buf);
		memset(w->buf, (int)(x >> 32), len);
		n = vshm_bounce_map(w->p, w->buf, len, VSHM_DMA_BIDIRECTIONAL, &m, sg, MAX_SG);
		if (n == -ENOMEM)
			continue;
		if (n < 1 || sg_gather(sg, n, w->win_copy) || memcmp(w->win_copy, w->buf, len))
			w->bad++;
		sg_device_write(sg, n, len, (unsigned)i);
		if (vshm_bounce_unmap(w->p, &m, len) || w->buf[len - 1] != pattern(len - 1, (unsigned)i))
			w->bad++;
		if (i % 256 == 0) {
			struct vshm_bounce_stats s;

			vshm_bounce_stats(w->p, &s);
		}
	}
	return NULL;
}

static void test_threads(void)
{
	static struct worker wk[THREADS];
	pthread_t t[THREADS];
	struct vshm_bounce_pool p;
	struct vshm_bounce_stats s;
	unsigned bad = 0, started = 0;

	/* Small enough that the threads contend for slots and hit -ENOMEM. */
	if (pool_at(&p, 40 * MiB, 256 * KiB, 2048, 64 * KiB))
		return;
	is(vshm_bounce_pool_set_flags(&p, VSHM_BOUNCE_F_LOCKED | VSHM_BOUNCE_F_SCRUB), 0,
	   "locked, scrubbing pool");
	for (unsigned i = 0; i < THREADS; i++) {
		wk[i] = (struct worker){ .p = &p, .ops = tap_scale(5000), .seed = 0x1234567ull * (i + 1) };
		started += pthread_create(&t[i], NULL, worker_main, &wk[i]) == 0;
	}
	is(started, THREADS, "%u threads share one pool", THREADS);
	for (unsigned i = 0; i < started; i++) {
		pthread_join(t[i], NULL);
		bad += wk[i].bad;
	}
	s = stats(&p);
	is(bad, 0, "every thread's mappings round-tripped intact");
	ok(s.slots_in_use == 0 && s.maps == s.unmaps && s.maps > 0,
	   "threads: %llu maps, %llu unmaps, %llu refused, nothing leaked",
	   (unsigned long long)s.maps, (unsigned long long)s.unmaps,
	   (unsigned long long)s.map_enomem);
	is(vshm_bounce_pool_check(&p), 0, "threads: pool consistent");
	vshm_bounce_pool_fini(&p);
}

int main(void)
{
	struct vshm_window_opts o = { .size = WIN_SIZE, .vectors = 2, .name = "test-bounce" };
	int rc = vshm_window_create(&win, &o);

	is(rc, 0, "create a 64 MiB window");
	if (rc)
		return tap_done();
	test_bad_args();
	test_exhaustion();
	test_fragmentation();
	test_split();
	test_integrity();
	test_sync();
	test_scrub();
	test_isolation();
	test_stress();
	test_threads();
	vshm_window_unmap(&win);
	return tap_done();
}
