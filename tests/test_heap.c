// SPDX-License-Identifier: MIT
/*
 * The zero-copy heap: argument checks, exhaustion, fragmentation (best fit,
 * largest-first, -E2BIG against -ENOMEM) and coalescing, data integrity for
 * random sizes up to 80 MiB written and read both through the copy helpers
 * and through the extent pointers, a 64 MiB and larger buffer, extents
 * capped at 2 GiB in a 4 GiB window, scrubbing, a device that scribbles
 * over the whole heap, a randomized run checked against a shadow model of
 * the allocator, and a locked heap under several threads.
 *
 * A private page map (owner[] per page) records which live buffer holds
 * each page, so no two live buffers can overlap without a failing check.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <vshm/heap.h>
#include <vshm/window.h>
#include "tap.h"

#define WIN_SIZE	(256ull << 20)
#define KiB		(1ull << 10)
#define MiB		(1ull << 20)
#define GiB		(1ull << 30)
#define PG		4096ull

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

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* The content of buffer @seed: 8-byte words, a function of seed and index. */
static void fill_pattern(uint8_t *p, size_t len, uint64_t seed)
{
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t x = mix(seed ^ (i >> 3));

		memcpy(p + i, &x, 8);
	}
	if (i < len) {
		uint64_t x = mix(seed ^ (i >> 3));

		memcpy(p + i, &x, len - i);
	}
}

static struct vshm_heap_stats stats(struct vshm_heap *h)
{
	struct vshm_heap_stats s;

	memset(&s, 0, sizeof(s));
	vshm_heap_stats(h, &s);
	return s;
}

static int heap_at(struct vshm_heap *h, struct vshm_window *w, uint64_t off,
		   uint64_t size)
{
	int rc = vshm_heap_init(h, w, off, size);

	if (rc)
		diag("heap_init(off %llu size %llu) = %d", (unsigned long long)off,
		     (unsigned long long)size, rc);
	return rc;
}

/*
 * The tallest AVL tree of @n nodes: the sparsest tree of height k has
 * N(k) = N(k-1) + N(k-2) + 1 nodes (N(0) = 0, N(1) = 1), about
 * 1.44 log2(n + 2) levels.
 */
static unsigned avl_bound(uint64_t n)
{
	uint64_t a = 0, b = 1;	/* N(k-1), N(k) */
	unsigned k = 1;

	while (a + b + 1 <= n) {
		uint64_t c = a + b + 1;

		a = b;
		b = c;
		k++;
	}
	return n ? k : 0;
}

/* Page of the heap that window offset @off falls on. */
static uint64_t page_of(const struct vshm_heap *h, uint64_t off)
{
	return (off - h->off) / PG;
}

/*
 * Check a fresh buffer's shape and claim its pages in @owner for @id:
 * extents inside the heap and the driver area, sg and extent views agree,
 * lengths add up, no page already owned.  Returns NULL or why not.
 */
static const char *claim(const struct vshm_heap *h, const struct vshm_heap_buf *b,
			 uint32_t *owner, uint32_t id, int nret)
{
	static struct vshm_sg sg[4096];
	uint64_t total = 0;
	int n;

	if (nret < 1 || (uint32_t)nret != b->nextents)
		return "return value is not the extent count";
	if (b->npages != (b->len + PG - 1) / PG)
		return "npages is not ceil(len / page)";
	n = vshm_heap_sg(b, sg, 4096);
	if (n != nret)
		return "vshm_heap_sg count differs";
	for (int i = 0; i < n; i++) {
		void *p;
		size_t len;

		if (!sg[i].len || sg[i].flags || sg[i].off % PG)
			return "bad sg element";
		if (sg[i].off < h->off || sg[i].off - h->off > h->size ||
		    sg[i].len > h->size - (sg[i].off - h->off))
			return "extent outside the heap";
		if (!vshm_win_range_ok(h->win, sg[i].off, sg[i].len))
			return "extent outside the driver area";
		if (vshm_heap_extent(h, b, (unsigned)i, &p, &len) ||
		    p != h->win->base + sg[i].off || len != sg[i].len)
			return "extent view differs from sg";
		if (i + 1 < n && sg[i].len % PG)
			return "a short extent before the last";
		for (uint64_t pg = page_of(h, sg[i].off);
		     pg < page_of(h, sg[i].off) + (sg[i].len + PG - 1) / PG; pg++) {
			if (owner[pg])
				return "page already belongs to a live buffer";
			owner[pg] = id;
		}
		total += sg[i].len;
	}
	if (total != b->len)
		return "sg lengths do not add up to len";
	{
		void *p;
		size_t len;

		if (vshm_heap_extent(h, b, (unsigned)n, &p, &len) != -ENOENT)
			return "extent past the end is not -ENOENT";
	}
	return NULL;
}

/* Give @b's pages back in @owner (before freeing it). */
static void unclaim(const struct vshm_heap *h, const struct vshm_heap_buf *b,
		    uint32_t *owner, uint32_t id)
{
	void *p;
	size_t len;

	for (unsigned i = 0; !vshm_heap_extent(h, b, i, &p, &len); i++) {
		uint64_t pg = page_of(h, vshm_win_off(h->win, p));

		for (uint64_t j = 0; j < (len + PG - 1) / PG; j++)
			if (owner[pg + j] == id)
				owner[pg + j] = 0;
	}
}

/* ---- bad arguments ----------------------------------------------------- */

static void test_bad_args(void)
{
	const uint64_t lo = win.drv_lo, hi = win.drv_hi;
	static const struct {
		uint64_t off, size;
		int want;
		const char *what;
	} cases[] = {
		{ 0, 64 * KiB, -EINVAL, "heap in the header" },
		{ VSHM_MBOX_OFF, 8 * KiB, -EINVAL, "heap in the mailbox" },
		{ VSHM_DRV_AREA_OFF - PG, 64 * KiB, -EINVAL, "heap straddling the driver area start" },
		{ WIN_SIZE - 64 * KiB, 128 * KiB, -EINVAL, "heap past the window end" },
		{ WIN_SIZE, PG, -EINVAL, "heap starting at the window end" },
		{ UINT64_MAX - 4095, 8 * KiB, -EINVAL, "offset + size wraps 2^64" },
		{ 64 * KiB, UINT64_MAX - 4095, -EINVAL, "size near 2^64" },
		{ 64 * KiB + 512, 64 * KiB, -EINVAL, "misaligned offset" },
		{ 64 * KiB, 64 * KiB + 512, -EINVAL, "size not page aligned" },
		{ 64 * KiB, 0, -EINVAL, "zero size" },
		{ VSHM_DRV_AREA_OFF, PG, 0, "first page of the driver area" },
		{ WIN_SIZE - PG, PG, 0, "last page of the window" },
		{ VSHM_DRV_AREA_OFF, WIN_SIZE - VSHM_DRV_AREA_OFF, 0, "the whole driver area" },
	};
	struct vshm_heap h, g, dead;
	struct vshm_heap_buf b, b2, copy;
	struct vshm_sg sg[8];
	uint8_t buf[64];
	void *p;
	size_t len;

	ok(lo == VSHM_DRV_AREA_OFF && hi == WIN_SIZE, "driver area is [%llu, %llu)",
	   (unsigned long long)lo, (unsigned long long)hi);
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = vshm_heap_init(&h, &win, cases[i].off, cases[i].size);

		is(rc, cases[i].want, "init case %u: %s", i + 1, cases[i].what);
		if (!rc)
			is(stats(&h).pages_total, cases[i].size / PG,
			   "init case %u: %llu pages", i + 1,
			   (unsigned long long)(cases[i].size / PG));
		vshm_heap_fini(&h);
	}
	is(vshm_heap_init(&h, NULL, 64 * KiB, 64 * KiB), -EINVAL, "NULL window");
	is(vshm_heap_init(NULL, &win, 64 * KiB, 64 * KiB), -EINVAL, "NULL heap");

	if (heap_at(&h, &win, 1 * MiB, 64 * KiB) || heap_at(&g, &win, 2 * MiB, 64 * KiB))
		return;
	memset(&dead, 0, sizeof(dead));
	is(vshm_heap_alloc(&h, 0, &b), -EINVAL, "zero-length alloc");
	is(vshm_heap_alloc(&h, 1, NULL), -EINVAL, "alloc into NULL");
	is(vshm_heap_alloc(NULL, 1, &b), -EINVAL, "alloc from NULL heap");
	is(vshm_heap_alloc(&dead, 1, &b), -EINVAL, "alloc from a zeroed heap");
	is(vshm_heap_alloc_max(&h, 1, 0, &b), -EINVAL, "max_extents 0");
	is(vshm_heap_alloc(&h, 64 * KiB + 1, &b), -EMSGSIZE, "one byte more than the heap: -EMSGSIZE");
	is(vshm_heap_alloc(&h, SIZE_MAX, &b), -EMSGSIZE, "SIZE_MAX: -EMSGSIZE");
	is(stats(&h).fail_size, 2, "both counted in fail_size");
	is(stats(&h).fail_nomem + stats(&h).fail_frag, 0, "...and not as exhaustion or fragmentation");
	is(vshm_heap_set_flags(&h, 1u << 7), -EINVAL, "unknown flag");
	is(vshm_heap_set_flags(&dead, 0), -EINVAL, "flags on a zeroed heap");
	is(vshm_heap_set_max_extents(&h, 0), -EINVAL, "default max_extents 0");
	is(vshm_heap_stats(&h, NULL), -EINVAL, "stats into NULL");
	is(vshm_heap_stats(&dead, &(struct vshm_heap_stats){ 0 }), -EINVAL, "stats of a zeroed heap");
	is(vshm_heap_check(&dead), -EINVAL, "check of a zeroed heap");

	memset(&b, 0, sizeof(b));
	is(vshm_heap_free(&h, &b), -EINVAL, "free of a zeroed record");
	is(vshm_heap_free(&h, NULL), -EINVAL, "free of NULL");
	is(vshm_heap_alloc(&h, 5000, &b), 1, "alloc 5000 bytes: one extent");
	is(vshm_heap_free(&g, &b), -EINVAL, "free through the wrong heap");
	copy = b;
	copy.ext_inline[0].page ^= 1;
	is(vshm_heap_free(&h, &copy), -EINVAL, "free of a record naming other pages");
	copy = b;
	copy.serial++;
	is(vshm_heap_free(&h, &copy), -EINVAL, "free of a record with another serial");
	copy = b;
	copy.len = 9000;
	is(vshm_heap_free(&h, &copy), -EINVAL, "free of a record with another length");

	{
		static const struct { size_t off, len; int want; const char *what; } rc[] = {
			{ 0, 5000, 0, "whole buffer" },
			{ 4999, 1, 0, "last byte" },
			{ 5000, 0, 0, "empty range at the end" },
			{ 0, 5001, -EINVAL, "one byte past the end" },
			{ 5001, 0, -EINVAL, "empty range past the end" },
			{ 4096, 1000, -EINVAL, "range straddling the end" },
			{ SIZE_MAX, 2, -EINVAL, "offset SIZE_MAX (no wrap)" },
			{ 1, SIZE_MAX, -EINVAL, "length SIZE_MAX (no wrap)" },
		};
		static uint8_t big[8192];

		for (unsigned i = 0; i < sizeof(rc) / sizeof(rc[0]); i++) {
			is(vshm_heap_write(&h, &b, rc[i].off, big, rc[i].len), rc[i].want,
			   "write case %u: %s", i + 1, rc[i].what);
			is(vshm_heap_read(&h, &b, rc[i].off, big, rc[i].len), rc[i].want,
			   "read case %u: %s", i + 1, rc[i].what);
		}
	}
	is(vshm_heap_write(&h, &b, 0, NULL, 1), -EINVAL, "write from NULL");
	is(vshm_heap_read(&h, &b, 0, NULL, 1), -EINVAL, "read into NULL");
	is(vshm_heap_write(&g, &b, 0, buf, 1), -EINVAL, "write through the wrong heap");
	is(vshm_heap_extent(&h, &b, 1, &p, &len), -ENOENT, "extent 1 of a 1-extent buffer: -ENOENT");
	is(vshm_heap_extent(&g, &b, 0, &p, &len), -EINVAL, "extent through the wrong heap");
	is(vshm_heap_extent(&h, &b, 0, NULL, &len), -EINVAL, "extent into NULL");
	ok(vshm_heap_extent(&h, &b, 0, &p, &len) == 0 && len == 5000 &&
	   p == vshm_win_ptr(&win, 1 * MiB, 5000), "extent 0: 5000 bytes at the heap start");
	ok(vshm_heap_ptr(&h, &b, 5000, &len) == NULL, "ptr at len: NULL");
	ok(vshm_heap_ptr(&h, &b, 4100, &len) == (uint8_t *)vshm_win_ptr(&win, 1 * MiB, 5000) + 4100 &&
	   len == 900, "ptr at 4100: 900 contiguous bytes");
	is(vshm_heap_sg(&b, sg, 0), -E2BIG, "sg into a 0-element array: -E2BIG");
	is(vshm_heap_sg(NULL, sg, 8), -EINVAL, "sg of NULL");
	is(vshm_heap_sg_range(&b, 0, 0, sg, 8), -EINVAL, "sg of an empty range");
	is(vshm_heap_sg_range(&b, 4000, 1001, sg, 8), -EINVAL, "sg range past the end");
	ok(vshm_heap_sg_range(&b, 4000, 1000, sg, 8) == 1 &&
	   sg[0].off == 1 * MiB + 4000 && sg[0].len == 1000, "sg of [4000, 5000)");

	b2 = b;
	is(vshm_heap_free(&h, &b), 0, "free");
	is(b.heap_id, 0, "free clears the record");
	is(vshm_heap_free(&h, &b), -EINVAL, "double free");
	is(vshm_heap_free(&h, &b2), -EINVAL, "free of a stale copy");
	is(vshm_heap_write(&h, &b, 0, buf, 1), -EINVAL, "write to a freed buffer");
	is(vshm_heap_sg(&b, sg, 8), -EINVAL, "sg of a freed buffer");
	ok(vshm_heap_alloc(&h, 4096, &b) == 1 && vshm_heap_free(&h, &b2) == -EINVAL,
	   "a stale copy stays refused after its pages are reused");
	vshm_heap_free(&h, &b);
	is(vshm_heap_check(&h), 0, "heap consistent after the refusals");
	ok(stats(&h).allocs == 2 && stats(&h).frees == 2 && stats(&h).live_bufs == 0,
	   "refused frees are not counted");

	/* After fini, buffers of the old heap are refused by the new one. */
	is(vshm_heap_alloc(&h, 100, &b), 1, "alloc before fini");
	vshm_heap_fini(&h);
	is(vshm_heap_free(&h, &b), -EINVAL, "free into a finished heap");
	if (heap_at(&h, &win, 1 * MiB, 64 * KiB))
		return;
	is(vshm_heap_free(&h, &b), -EINVAL, "free into a re-initialised heap");
	vshm_heap_fini(&h);
	vshm_heap_fini(&h);
	vshm_heap_fini(&g);
	ok(1, "fini twice is harmless");

	{
		static const int codes[] = { 0, -EINVAL, -EMSGSIZE, -ENOMEM, -E2BIG, -ENOENT, -EIO };
		int distinct = 1;

		for (unsigned i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
			for (unsigned j = 0; j < i; j++)
				if (!strcmp(vshm_heap_strerror(codes[i]), vshm_heap_strerror(codes[j])))
					distinct = 0;
		ok(distinct, "strerror: a distinct message per code");
		ok(strstr(vshm_heap_strerror(-E2BIG), "fragmented") &&
		   strstr(vshm_heap_strerror(-ENOMEM), "free pages"),
		   "strerror: -E2BIG says fragmented, -ENOMEM says free pages");
	}
}

/* ---- exhaustion -------------------------------------------------------- */

static void test_exhaustion(void)
{
	enum { PAGES = 64 };
	static struct vshm_heap_buf b[PAGES + 1];
	static uint32_t owner[PAGES];
	struct vshm_heap h;
	struct vshm_heap_stats s;
	unsigned n = 0, bad = 0;
	int rc = 0;

	if (heap_at(&h, &win, 4 * MiB, PAGES * PG))
		return;
	memset(owner, 0, sizeof(owner));
	while (n <= PAGES && (rc = vshm_heap_alloc(&h, n % 3 ? PG : 1, &b[n])) == 1) {
		const char *why = claim(&h, &b[n], owner, n + 1, rc);

		if (why && !bad++)
			diag("buffer %u: %s", n, why);
		n++;
	}
	is(rc, -ENOMEM, "allocating until the heap is full ends in -ENOMEM");
	is(n, PAGES, "%u one-page buffers in a %u-page heap", n, PAGES);
	is(bad, 0, "no two of them overlap");
	s = stats(&h);
	ok(s.pages_free == 0 && s.free_extents == 0 && s.largest_free == 0,
	   "stats: 0 free pages, 0 free extents, largest 0");
	ok(s.fail_nomem == 1 && s.fail_frag == 0 && s.pages_peak == PAGES,
	   "stats: one -ENOMEM counted, no fragmentation failure, peak %u", PAGES);
	is(vshm_heap_alloc(&h, 1, &b[PAGES]), -ENOMEM, "a full heap refuses even 1 byte, at once");

	for (unsigned i = 0; i < n; i += 2)
		vshm_heap_free(&h, &b[i]);
	s = stats(&h);
	ok(s.pages_free == PAGES / 2 && s.free_extents == PAGES / 2 && s.largest_free == 1,
	   "half freed (every other page): 32 free extents of 1 page");
	for (unsigned i = 1; i < n; i += 2)
		vshm_heap_free(&h, &b[i]);
	s = stats(&h);
	ok(s.pages_free == PAGES && s.free_extents == 1 && s.largest_free == PAGES,
	   "all freed: one free extent of %u pages", PAGES);
	is(vshm_heap_alloc_max(&h, PAGES * PG, 1, &b[0]), 1, "the whole heap again, as one extent");
	ok(b[0].ext_inline[0].page == 0 && b[0].ext_inline[0].npages == PAGES,
	   "...starting at page 0");
	is(vshm_heap_free(&h, &b[0]), 0, "free it");
	is(vshm_heap_check(&h), 0, "heap consistent");
	vshm_heap_fini(&h);
}

/* ---- fragmentation, best fit, largest first, coalescing --------------- */

static void test_placement(void)
{
	struct vshm_heap h;
	struct vshm_heap_buf b[8], x, y, z;
	struct vshm_heap_stats s;
	static const uint32_t sizes[] = { 1, 3, 1, 5, 1, 8, 1, 44 };
	uint64_t base = 5 * MiB;
	const struct vshm_heap_ext *e;
	int rc;

	if (heap_at(&h, &win, base, 64 * PG))
		return;
	for (unsigned i = 0; i < 8; i++)
		vshm_heap_alloc(&h, sizes[i] * PG, &b[i]);
	ok(b[1].ext_inline[0].page == 1 && b[3].ext_inline[0].page == 5 &&
	   b[5].ext_inline[0].page == 11 && b[7].ext_inline[0].page == 20,
	   "an empty heap fills from the bottom");
	vshm_heap_free(&h, &b[1]);
	vshm_heap_free(&h, &b[3]);
	vshm_heap_free(&h, &b[5]);
	s = stats(&h);
	ok(s.free_extents == 3 && s.largest_free == 8 && s.pages_free == 16,
	   "holes of 3, 5 and 8 pages: 3 free extents, largest 8");

	rc = vshm_heap_alloc(&h, 4 * PG, &x);
	ok(rc == 1 && x.ext_inline[0].page == 5, "4 pages go to the 5-page hole (best fit)");
	is(vshm_heap_alloc_max(&h, 10 * PG, 1, &y), -E2BIG,
	   "10 pages in one extent: -E2BIG (holes 3, 1, 8)");
	s = stats(&h);
	ok(s.fail_frag == 1 && s.pages_free == 12 && s.free_extents == 3,
	   "counted as fragmentation, heap untouched");
	rc = vshm_heap_alloc_max(&h, 10 * PG, 2, &y);
	e = y.ext_inline;
	ok(rc == 2 && e[0].page == 11 && e[0].npages == 8 && e[0].bpage == 0 &&
	   e[1].page == 1 && e[1].npages == 2 && e[1].bpage == 8,
	   "10 pages in 2 extents: the 8-page hole whole, then 2 of the 3-page hole");
	is(vshm_heap_alloc(&h, 3 * PG, &z), -ENOMEM, "3 pages with 2 free: -ENOMEM");
	is(vshm_heap_alloc_max(&h, 2 * PG, 1, &z), -E2BIG,
	   "2 pages from two 1-page holes in one extent: -E2BIG");
	rc = vshm_heap_alloc_max(&h, 2 * PG, 2, &z);
	ok(rc == 2 && z.ext_inline[0].page == 9 && z.ext_inline[1].page == 3,
	   "...and in two extents it works: pages 9 and 3 (highest first among equals)");
	s = stats(&h);
	ok(s.pages_free == 0 && s.fail_nomem == 1 && s.fail_frag == 2 && s.multi_extent == 2,
	   "counters: 1 -ENOMEM, 2 -E2BIG, 2 multi-extent buffers");

	/*
	 * Coalescing.  Now: 0 b0, 1-2 y, 3 z, 4 b2, 5-8 x, 9 z, 10 b4,
	 * 11-18 y, 19 b6, 20-63 b7.
	 */
	vshm_heap_free(&h, &b[0]);
	vshm_heap_free(&h, &b[2]);
	is(stats(&h).free_extents, 2, "pages 0 and 4 free, isolated");
	vshm_heap_free(&h, &z);
	s = stats(&h);
	ok(s.free_extents == 3 && s.largest_free == 2,
	   "page 9 isolated, page 3 merged with its right neighbour 4");
	vshm_heap_free(&h, &y);
	s = stats(&h);
	ok(s.free_extents == 3 && s.largest_free == 8 && s.pages_free == 14,
	   "pages 1-2 merged on both sides (0-4), 11-18 alone");
	vshm_heap_free(&h, &b[4]);
	s = stats(&h);
	ok(s.free_extents == 2 && s.largest_free == 10,
	   "page 10 joined 9 and 11-18 into one 10-page extent");
	is(vshm_heap_check(&h), 0, "heap consistent");
	vshm_heap_free(&h, &x);
	ok(stats(&h).free_extents == 1 && stats(&h).largest_free == 19,
	   "pages 5-8 bridged 0-4 and 9-18");
	vshm_heap_free(&h, &b[6]);
	vshm_heap_free(&h, &b[7]);
	s = stats(&h);
	ok(s.free_extents == 1 && s.largest_free == 64 && s.pages_free == 64,
	   "everything freed: one extent of 64 pages");
	is(vshm_heap_check(&h), 0, "heap consistent");
	vshm_heap_fini(&h);
}

static void test_fragmentation(void)
{
	enum { PAGES = 4096, WANT = 1000 };
	static struct vshm_heap_buf b[PAGES];
	static uint32_t owner[PAGES];
	static uint8_t src[WANT * 4096], dst[WANT * 4096];
	struct vshm_heap h;
	struct vshm_heap_buf big;
	struct vshm_heap_stats s, s2;
	unsigned n = 0, bad = 0;
	const char *why;
	int rc;

	if (heap_at(&h, &win, 8 * MiB, PAGES * PG))
		return;
	memset(owner, 0, sizeof(owner));
	while (n < PAGES && vshm_heap_alloc(&h, PG, &b[n]) == 1)
		n++;
	is(n, PAGES, "%u one-page buffers fill the heap", PAGES);
	for (unsigned i = 0; i < n; i += 2)
		vshm_heap_free(&h, &b[i]);
	for (unsigned i = 1; i < n; i += 2)
		claim(&h, &b[i], owner, i + 1, 1);
	s = stats(&h);
	ok(s.pages_free == PAGES / 2 && s.free_extents == PAGES / 2 && s.largest_free == 1,
	   "every other page freed: %llu free extents, largest %llu page",
	   (unsigned long long)s.free_extents, (unsigned long long)s.largest_free);

	is(vshm_heap_alloc_max(&h, WANT * PG, 16, &big), -E2BIG,
	   "%u pages with max_extents 16: -E2BIG", WANT);
	is(vshm_heap_set_max_extents(&h, 64), 0, "heap default max_extents 64");
	is(vshm_heap_alloc(&h, WANT * PG, &big), -E2BIG, "vshm_heap_alloc applies it: -E2BIG");
	s2 = stats(&h);
	ok(s2.fail_frag == 2 && s2.fail_nomem == 0 && s2.pages_free == s.pages_free &&
	   s2.free_extents == s.free_extents, "both counted as fragmentation, heap untouched");
	is(vshm_heap_alloc_max(&h, (PAGES / 2 + 1) * PG, VSHM_HEAP_NO_LIMIT, &big), -ENOMEM,
	   "one page more than is free: -ENOMEM, whatever the limit");
	rc = vshm_heap_alloc_max(&h, WANT * PG, WANT, &big);
	is(rc, WANT, "the same %u pages with max_extents %u: %d extents", WANT, WANT, rc);
	why = rc > 0 ? claim(&h, &big, owner, PAGES + 1, rc) : "no buffer";
	ok(!why, "its extents are the free pages, overlapping no live buffer%s%s",
	   why ? ": " : "", why ? why : "");
	ok(big.ext_ext != NULL, "a %u-extent buffer keeps its extents in malloc'd memory", WANT);
	fill_pattern(src, sizeof(src), 77);
	ok(!vshm_heap_write(&h, &big, 0, src, sizeof(src)) &&
	   !vshm_heap_read(&h, &big, 0, dst, sizeof(dst)) && !memcmp(src, dst, sizeof(src)),
	   "data round-trips through %u extents", WANT);
	/* Each extent holds its own 4 KiB of the pattern. */
	{
		void *p;
		size_t len;

		for (unsigned i = 0; !vshm_heap_extent(&h, &big, i, &p, &len); i++)
			if (len != PG || memcmp(p, src + (size_t)i * PG, PG))
				bad++;
		is(bad, 0, "extent pointers see the same bytes, in order");
	}
	s = stats(&h);
	ok(s.tree_height_max <= avl_bound(s.free_extents_peak),
	   "tree height %u <= AVL bound %u for %llu free extents", s.tree_height_max,
	   avl_bound(s.free_extents_peak), (unsigned long long)s.free_extents_peak);

	is(vshm_heap_free(&h, &big), 0, "free the %u-extent buffer", WANT);
	for (unsigned i = 1; i < n; i += 2)
		vshm_heap_free(&h, &b[i]);
	s = stats(&h);
	ok(s.free_extents == 1 && s.largest_free == s.pages_total && s.pages_free == PAGES,
	   "coalescing restores one extent: largest %llu = total %llu",
	   (unsigned long long)s.largest_free, (unsigned long long)s.pages_total);
	is(vshm_heap_check(&h), 0, "heap consistent");
	vshm_heap_fini(&h);
}

/* ---- integrity: random sizes up to 80 MiB ------------------------------ */

#define INT_HEAP_OFF	(16 * MiB)
#define INT_HEAP_SIZE	(WIN_SIZE - INT_HEAP_OFF)
#define INT_PAGES	(INT_HEAP_SIZE / PG)
#define MAX_LEN		(80 * MiB)
#define SCRATCH		(208 * MiB)	/* the largest buffer tested */
#define LIVE		8

static uint32_t int_owner[INT_PAGES];
static uint8_t *scratch_a, *scratch_b;

/* Write @b's pattern in one of three ways. */
static int write_buf(struct vshm_heap *h, struct vshm_heap_buf *b, uint64_t seed,
		     unsigned how)
{
	size_t off = 0;

	fill_pattern(scratch_a, b->len, seed);
	switch (how % 3) {
	case 0:		/* vshm_heap_write, random chunks */
		while (off < b->len) {
			size_t n = (size_t)rnd_range(1, 3 * MiB);

			if (n > b->len - off)
				n = b->len - off;
			if (vshm_heap_write(h, b, off, scratch_a + off, n))
				return -1;
			off += n;
		}
		return 0;
	case 1: {	/* zero copy, extent by extent */
		void *p;
		size_t len;

		for (unsigned i = 0; !vshm_heap_extent(h, b, i, &p, &len); i++) {
			memcpy(p, scratch_a + off, len);
			off += len;
		}
		return off == b->len ? 0 : -1;
	}
	default:	/* zero copy, through vshm_heap_ptr */
		while (off < b->len) {
			size_t contig;
			uint8_t *p = vshm_heap_ptr(h, b, off, &contig);

			if (!p || !contig)
				return -1;
			memcpy(p, scratch_a + off, contig);
			off += contig;
		}
		return 0;
	}
}

/* Read @b back both ways and compare with its pattern; NULL or why not. */
static const char *verify_buf(struct vshm_heap *h, struct vshm_heap_buf *b,
			      uint64_t seed)
{
	size_t off = 0;
	void *p;
	size_t len;

	fill_pattern(scratch_a, b->len, seed);
	memset(scratch_b, 0, b->len);
	if (vshm_heap_read(h, b, 0, scratch_b, b->len))
		return "vshm_heap_read failed";
	if (memcmp(scratch_a, scratch_b, b->len))
		return "vshm_heap_read: bytes differ";
	for (unsigned i = 0; !vshm_heap_extent(h, b, i, &p, &len); i++) {
		if (memcmp(p, scratch_a + off, len))
			return "extent pointer: bytes differ";
		off += len;
	}
	if (off != b->len)
		return "extents do not cover the buffer";
	/* A random sub-range through vshm_heap_read at an odd offset. */
	off = (size_t)rnd_range(0, b->len - 1);
	len = (size_t)rnd_range(0, b->len - off);
	if (vshm_heap_read(h, b, off, scratch_b, len) ||
	    memcmp(scratch_b, scratch_a + off, len))
		return "sub-range read differs";
	return NULL;
}

static void test_integrity(void)
{
	struct vshm_heap h;
	struct vshm_heap_buf b[LIVE];
	uint64_t seed[LIVE];
	uint32_t id[LIVE];
	int live[LIVE] = { 0 };
	unsigned rounds = (unsigned)tap_scale(120), bad = 0, allocs = 0, enomem = 0;
	unsigned other = 0, big = 0;
	uint64_t bytes = 0;
	struct vshm_heap_stats s;

	if (heap_at(&h, &win, INT_HEAP_OFF, INT_HEAP_SIZE))
		return;
	if (rounds < 30)
		rounds = 30;
	memset(int_owner, 0, sizeof(int_owner));
	for (unsigned r = 0; r < rounds; r++) {
		static const size_t first[] = { MAX_LEN, 1, 4095, 4096, 4097, 64 * MiB };
		unsigned i = (unsigned)rnd_range(0, LIVE - 1);
		const char *why;
		size_t len;
		int rc;

		if (live[i]) {
			why = verify_buf(&h, &b[i], seed[i]);
			if (why && !bad++)
				diag("round %u: before free, buffer of %zu bytes: %s", r, b[i].len, why);
			unclaim(&h, &b[i], int_owner, id[i]);
			if (vshm_heap_free(&h, &b[i]) && !bad++)
				diag("round %u: free failed", r);
			live[i] = 0;
			continue;
		}
		len = r < sizeof(first) / sizeof(first[0]) ? first[r] : rnd_len(MAX_LEN);
		rc = vshm_heap_alloc(&h, len, &b[i]);
		if (rc == -ENOMEM) {
			enomem++;
			continue;
		}
		if (rc < 1) {
			if (!bad++)
				diag("round %u: alloc %zu = %d", r, len, rc);
			other++;
			continue;
		}
		allocs++;
		big += len >= 64 * MiB;
		bytes += len;
		id[i] = r + 1;
		seed[i] = rnd();
		live[i] = 1;
		why = claim(&h, &b[i], int_owner, id[i], rc);
		if (!why && write_buf(&h, &b[i], seed[i], r))
			why = "write failed";
		if (!why)
			why = verify_buf(&h, &b[i], seed[i]);
		if (why && !bad++)
			diag("round %u: %zu bytes, %d extents: %s", r, len, rc, why);
	}
	/* Every survivor must still hold its own bytes: nobody wrote over it. */
	for (unsigned i = 0; i < LIVE; i++) {
		const char *why;

		if (!live[i])
			continue;
		why = verify_buf(&h, &b[i], seed[i]);
		if (why && !bad++)
			diag("survivor %u: %s", i, why);
		unclaim(&h, &b[i], int_owner, id[i]);
		vshm_heap_free(&h, &b[i]);
	}
	is(bad, 0, "%u buffers (1 B .. 80 MiB, %llu MiB in all) written and read back both ways, "
	   "none overlapping", allocs, (unsigned long long)(bytes >> 20));
	ok(big >= 1, "%u of them were 64 MiB or more", big);
	is(other, 0, "no error but -ENOMEM (%u times, the heap being full)", enomem);
	s = stats(&h);
	ok(s.pages_free == INT_PAGES && s.free_extents == 1 && s.live_bufs == 0,
	   "all freed: one free extent of %llu pages", (unsigned long long)INT_PAGES);
	ok(s.bytes_written > 0 && s.bytes_read > 0, "byte counters moved (%llu written, %llu read)",
	   (unsigned long long)s.bytes_written, (unsigned long long)s.bytes_read);
	is(vshm_heap_check(&h), 0, "heap consistent");
	vshm_heap_fini(&h);
}

/* ---- 64 MiB and more ---------------------------------------------------- */

static void test_big(void)
{
	enum { NB = (int)(INT_HEAP_SIZE / (4 * MiB)) };
	static struct vshm_heap_buf b[NB];
	static struct vshm_sg sg[64];
	struct vshm_heap h;
	struct vshm_heap_buf x;
	const char *why;
	int rc, n = 0;

	if (heap_at(&h, &win, INT_HEAP_OFF, INT_HEAP_SIZE))
		return;
	memset(int_owner, 0, sizeof(int_owner));
	rc = vshm_heap_alloc_max(&h, 200 * MiB + 1, 1, &x);
	is(rc, 1, "200 MiB + 1 byte in an empty 240 MiB heap: one extent");
	if (rc == 1) {
		ok(vshm_heap_sg(&x, sg, 64) == 1 && sg[0].len == 200 * MiB + 1,
		   "one sg element of 200 MiB + 1");
		why = write_buf(&h, &x, 5, 0) ? "write failed" : verify_buf(&h, &x, 5);
		ok(!why, "200 MiB round-trips%s%s", why ? ": " : "", why ? why : "");
		vshm_heap_free(&h, &x);
	}

	/* Fragment: 4 MiB buffers, every other one freed. */
	while (n < NB && vshm_heap_alloc(&h, 4 * MiB, &b[n]) == 1)
		n++;
	is(n, NB, "%d buffers of 4 MiB fill the heap", NB);
	for (int i = 0; i < n; i += 2)
		vshm_heap_free(&h, &b[i]);
	is(vshm_heap_alloc_max(&h, 64 * MiB, 8, &x), -E2BIG,
	   "64 MiB from 4 MiB holes within 8 extents: -E2BIG");
	rc = vshm_heap_alloc_max(&h, 64 * MiB, 16, &x);
	is(rc, 16, "64 MiB from 4 MiB holes within 16 extents: 16");
	if (rc == 16) {
		why = claim(&h, &x, int_owner, 1, rc);
		ok(!why, "16 extents inside the heap and the driver area%s%s",
		   why ? ": " : "", why ? why : "");
		rc = vshm_heap_sg(&x, sg, 64);
		for (int i = 1; i < rc; i++)
			if (sg[i].off == sg[i - 1].off + sg[i - 1].len)
				rc = -1;
		ok(rc == 16, "no two extents contiguous (holes between)");
		why = write_buf(&h, &x, 6, 1) ? "write failed" : verify_buf(&h, &x, 6);
		ok(!why, "64 MiB over 16 extents round-trips%s%s", why ? ": " : "", why ? why : "");
		vshm_heap_free(&h, &x);
	}
	for (int i = 1; i < n; i += 2)
		vshm_heap_free(&h, &b[i]);
	is(stats(&h).largest_free, INT_PAGES, "all freed: one extent again");
	vshm_heap_fini(&h);
}

/* Extents are capped at 2 GiB so each fits a 32-bit length. */
static void test_cap(void)
{
	struct vshm_window_opts o = { .size = 4 * GiB, .vectors = 1, .name = "test-heap-4g" };
	struct vshm_window w4;
	struct vshm_heap h;
	struct vshm_heap_buf x;
	struct vshm_sg sg[4];
	uint8_t in[16] = "0123456789abcdef", out[16];
	size_t len = 3 * GiB;
	int rc;

	if (vshm_window_create(&w4, &o)) {
		diag("no 4 GiB window here: extent-cap checks skipped");
		return;
	}
	if (heap_at(&h, &w4, 1 * MiB, 4 * GiB - 1 * MiB))
		goto out;
	is(vshm_heap_alloc_max(&h, len, 1, &x), -E2BIG,
	   "3 GiB in one extent: -E2BIG even in an empty heap (2 GiB cap)");
	rc = vshm_heap_alloc_max(&h, len, 2, &x);
	is(rc, 2, "3 GiB in two extents");
	if (rc == 2) {
		ok(vshm_heap_sg(&x, sg, 4) == 2 && sg[0].len == 2 * GiB && sg[1].len == 1 * GiB &&
		   sg[1].off == sg[0].off + 2 * GiB, "2 GiB + 1 GiB, adjacent in the window");
		ok(!vshm_heap_write(&h, &x, 2 * GiB - 8, in, 16) &&
		   !vshm_heap_read(&h, &x, 2 * GiB - 8, out, 16) && !memcmp(in, out, 16) &&
		   !memcmp(w4.base + sg[0].off + 2 * GiB - 8, in, 16),
		   "a write across the cap boundary lands in both extents");
		is(vshm_heap_free(&h, &x), 0, "free");
		ok(stats(&h).free_extents == 1 && vshm_heap_check(&h) == 0,
		   "the two adjacent extents coalesce");
	}
	vshm_heap_fini(&h);
out:
	vshm_window_unmap(&w4);
}

/* ---- scrub and a scribbling device -------------------------------------- */

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static void test_scrub(void)
{
	struct vshm_heap h;
	struct vshm_heap_buf b, keep;
	uint8_t *w;
	void *p;
	size_t len;

	if (heap_at(&h, &win, 12 * MiB, 64 * PG))
		return;
	w = vshm_win_ptr(&win, 12 * MiB, 64 * PG);
	memset(w, 0x5a, 64 * PG);
	vshm_heap_alloc(&h, 10000, &b);
	vshm_heap_free(&h, &b);
	ok(w[0] == 0x5a && w[3 * PG - 1] == 0x5a, "without scrub, freed pages keep their bytes");
	is(vshm_heap_set_flags(&h, VSHM_HEAP_F_SCRUB), 0, "enable scrub");
	vshm_heap_alloc(&h, 3 * PG, &keep);
	vshm_heap_alloc(&h, 10000, &b);
	vshm_heap_extent(&h, &b, 0, &p, &len);
	ok(len == 10000 && !all_zero(p, 3 * PG), "a new buffer's bytes are whatever was there");
	is(vshm_heap_free(&h, &b), 0, "free with scrub");
	ok(all_zero(p, 3 * PG), "with scrub, free zeroes every page of the buffer (past len too)");
	ok(w[0] == 0x5a && w[3 * PG - 1] == 0x5a, "...and nothing of the buffer next to it");
	is(stats(&h).bytes_scrubbed, 3 * PG, "bytes_scrubbed counts whole pages");
	vshm_heap_free(&h, &keep);
	vshm_heap_fini(&h);
}

/* The device rewrites every byte of the heap: the allocator does not care. */
static void test_scribble(void)
{
	struct vshm_heap h;
	struct vshm_heap_buf b[16];
	uint8_t *w;
	unsigned good = 0;

	if (heap_at(&h, &win, 13 * MiB, 256 * PG))
		return;
	w = vshm_win_ptr(&win, 13 * MiB, 256 * PG);
	for (unsigned i = 0; i < 16; i++)
		vshm_heap_alloc(&h, (i + 1) * 3000, &b[i]);
	for (unsigned i = 0; i < 16; i += 3)
		vshm_heap_free(&h, &b[i]);
	for (unsigned v = 0; v < 256; v += 51)
		memset(w, (int)v, 256 * PG);
	is(vshm_heap_check(&h), 0, "heap consistent after the device rewrote all of it");
	for (unsigned i = 0; i < 16; i++)
		if (i % 3 && vshm_heap_free(&h, &b[i]) == 0)
			good++;
	is(good, 10, "every live buffer frees normally");
	ok(stats(&h).free_extents == 1 && vshm_heap_check(&h) == 0, "one free extent again");
	vshm_heap_fini(&h);
}

/* ---- randomized run against a shadow model ------------------------------ */

#define SH_PAGES	1024u
#define SH_LIVE		64

struct run { uint32_t start, len; };

static uint32_t sh_owner[SH_PAGES];

/* The free runs of the shadow map. */
static unsigned sh_runs(struct run *r)
{
	unsigned n = 0;

	for (uint32_t i = 0; i < SH_PAGES; ) {
		uint32_t j = i;

		if (sh_owner[i]) {
			i++;
			continue;
		}
		while (j < SH_PAGES && !sh_owner[j])
			j++;
		r[n++] = (struct run){ i, j - i };
		i = j;
	}
	return n;
}

/* Keys compare (len, start), as the allocator's tree does. */
static int run_less(const struct run *a, const struct run *b)
{
	return a->len < b->len || (a->len == b->len && a->start < b->start);
}

/*
 * What the allocator should do, worked out from the page map alone: best
 * fit when one run holds the rest, else the largest run (highest address
 * among equals) whole.  Fills @ext and returns the count, or an error.
 */
static int sh_predict(size_t len, uint32_t max, struct vshm_heap_ext *ext)
{
	static struct run r[SH_PAGES];
	unsigned nr;
	uint32_t need, rem, freep = 0, k = 0, bpage = 0;

	if (len > SH_PAGES * PG)
		return -EMSGSIZE;
	need = (uint32_t)((len + PG - 1) / PG);
	nr = sh_runs(r);
	for (unsigned i = 0; i < nr; i++)
		freep += r[i].len;
	if (freep < need)
		return -ENOMEM;
	for (rem = need; rem; ) {
		int fit = -1, big = -1;

		for (unsigned i = 0; i < nr; i++) {
			if (!r[i].len)
				continue;
			if (r[i].len >= rem && (fit < 0 || run_less(&r[i], &r[fit])))
				fit = (int)i;
			if (big < 0 || run_less(&r[big], &r[i]))
				big = (int)i;
		}
		if (k == max)
			return -E2BIG;
		if (fit >= 0) {
			ext[k++] = (struct vshm_heap_ext){ r[fit].start, rem, bpage };
			r[fit].start += rem;
			r[fit].len -= rem;
			rem = 0;
		} else {
			ext[k++] = (struct vshm_heap_ext){ r[big].start, r[big].len, bpage };
			bpage += r[big].len;
			rem -= r[big].len;
			r[big].len = 0;
		}
	}
	return (int)k;
}

static const struct vshm_heap_ext *exts(const struct vshm_heap_buf *b)
{
	return b->nextents > VSHM_HEAP_BUF_INLINE ? b->ext_ext : b->ext_inline;
}

/* Stamp the first 16 bytes of each page of @b with (id, page). */
static int stamp(struct vshm_heap *h, const struct vshm_heap_buf *b, uint32_t id,
		 int check)
{
	for (uint32_t pg = 0; pg < b->npages; pg++) {
		uint64_t want[2] = { id, pg }, got[2];
		size_t off = (size_t)pg * PG, n = b->len - off < 16 ? b->len - off : 16;

		if (!check) {
			if (vshm_heap_write(h, b, off, want, n))
				return -1;
		} else {
			memset(got, 0, sizeof(got));
			if (vshm_heap_read(h, b, off, got, n) || memcmp(got, want, n))
				return -1;
		}
	}
	return 0;
}

static void test_stress(void)
{
	static struct vshm_heap_buf b[SH_LIVE];
	static struct vshm_heap_ext want[SH_PAGES];
	static struct run r[SH_PAGES];
	static const uint32_t limits[] = { 1, 2, 3, 8, VSHM_HEAP_NO_LIMIT };
	uint32_t id[SH_LIVE] = { 0 };
	struct vshm_heap h;
	struct vshm_heap_stats s;
	unsigned long ops = tap_scale(100000) < 20000 ? 20000 : tap_scale(100000), op;
	unsigned long n_alloc = 0, n_free = 0, n_nomem = 0, n_frag = 0, n_size = 0;
	unsigned long bad_rc = 0, bad_ext = 0, bad_data = 0, bad_stats = 0, bad_check = 0;
	uint32_t next_id = 1;

	if (heap_at(&h, &win, 20 * MiB, SH_PAGES * PG))
		return;
	memset(sh_owner, 0, sizeof(sh_owner));
	for (op = 0; op < ops; op++) {
		unsigned i = (unsigned)rnd_range(0, SH_LIVE - 1);
		uint64_t dice = rnd() % 100;

		if (id[i] && dice < 50) {
			if (stamp(&h, &b[i], id[i], 1) && !bad_data++)
				diag("op %lu: buffer %u lost its stamps", op, id[i]);
			unclaim(&h, &b[i], sh_owner, id[i]);
			if (vshm_heap_free(&h, &b[i]) && !bad_rc++)
				diag("op %lu: free failed", op);
			id[i] = 0;
			n_free++;
		} else if (!id[i]) {
			size_t len = dice < 2 ? SH_PAGES * PG + rnd_range(1, PG) :
				     (size_t)rnd_range(1, 96 * PG);
			uint32_t max = limits[rnd() % 5];
			int pred = sh_predict(len, max, want);
			int rc = vshm_heap_alloc_max(&h, len, max, &b[i]);

			if (rc != pred) {
				if (!bad_rc++)
					diag("op %lu: alloc %zu max %u = %d, model says %d", op, len,
					     max, rc, pred);
				if (rc > 0)
					vshm_heap_free(&h, &b[i]);
				continue;
			}
			if (rc == -ENOMEM)
				n_nomem++;
			else if (rc == -E2BIG)
				n_frag++;
			else if (rc == -EMSGSIZE)
				n_size++;
			if (rc < 0)
				continue;
			if (memcmp(exts(&b[i]), want, (size_t)rc * sizeof(want[0])) && !bad_ext++)
				diag("op %lu: extents differ from the model", op);
			id[i] = next_id++;
			if (claim(&h, &b[i], sh_owner, id[i], rc) && !bad_ext++)
				diag("op %lu: extents overlap or are malformed", op);
			if (stamp(&h, &b[i], id[i], 0) && !bad_data++)
				diag("op %lu: stamp write failed", op);
			n_alloc++;
		}
		if (op % 97 == 0) {
			unsigned nr = sh_runs(r);
			uint64_t freep = 0, largest = 0;

			for (unsigned k = 0; k < nr; k++) {
				freep += r[k].len;
				if (r[k].len > largest)
					largest = r[k].len;
			}
			s = stats(&h);
			if ((s.pages_free != freep || s.free_extents != nr ||
			     s.largest_free != largest) && !bad_stats++)
				diag("op %lu: stats free %llu/%llu extents %llu/%u largest %llu/%llu",
				     op, (unsigned long long)s.pages_free, (unsigned long long)freep,
				     (unsigned long long)s.free_extents, nr,
				     (unsigned long long)s.largest_free, (unsigned long long)largest);
		}
		if (op % 4999 == 0 && vshm_heap_check(&h) && !bad_check++)
			diag("op %lu: heap check failed", op);
	}
	for (unsigned i = 0; i < SH_LIVE; i++) {
		if (!id[i])
			continue;
		if (stamp(&h, &b[i], id[i], 1) && !bad_data++)
			diag("final: buffer %u lost its stamps", id[i]);
		vshm_heap_free(&h, &b[i]);
	}
	is(bad_rc, 0, "%lu ops: every return code matches the model (%lu allocs, %lu -ENOMEM, "
	   "%lu -E2BIG, %lu -EMSGSIZE, %lu frees)", ops, n_alloc, n_nomem, n_frag, n_size, n_free);
	ok(n_nomem > 100 && n_frag > 100 && n_size > 100, "every failure mode was exercised");
	is(bad_ext, 0, "every buffer got exactly the extents the model predicts, no overlaps");
	is(bad_data, 0, "every page kept its stamp until its buffer was freed");
	is(bad_stats, 0, "free pages, free extents and the largest extent match the model");
	is(bad_check, 0, "invariants held at every check");
	s = stats(&h);
	ok(s.pages_free == SH_PAGES && s.free_extents == 1 && s.live_bufs == 0 &&
	   s.allocs == n_alloc && s.frees == s.allocs,
	   "all freed: %llu allocs, %llu frees, one free extent",
	   (unsigned long long)s.allocs, (unsigned long long)s.frees);
	ok(s.fail_nomem == n_nomem && s.fail_frag == n_frag && s.fail_size == n_size,
	   "failure counters match the refusals by cause");
	ok(s.tree_height_max <= avl_bound(s.free_extents_peak),
	   "tree height never above %u (AVL bound for %llu free extents): max %u",
	   avl_bound(s.free_extents_peak), (unsigned long long)s.free_extents_peak,
	   s.tree_height_max);
	is(vshm_heap_check(&h), 0, "heap consistent");
	vshm_heap_fini(&h);
}

/* ---- threads ------------------------------------------------------------ */

#define THREADS 4

struct worker {
	struct vshm_heap *h;
	unsigned long ops;
	uint64_t seed;
	unsigned bad;
	unsigned nomem;
};

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	struct vshm_heap_buf b;
	uint8_t in[256], out[256];
	uint64_t st = wk->seed;

	for (unsigned long i = 0; i < wk->ops; i++) {
		size_t len;
		int rc;

		st = mix(st);
		len = (size_t)(st % (24 * PG)) + 1;
		rc = vshm_heap_alloc(wk->h, len, &b);
		if (rc == -ENOMEM) {
			wk->nomem++;
			continue;
		}
		if (rc < 1) {
			wk->bad++;
			continue;
		}
		fill_pattern(in, sizeof(in), st);
		/* Head and tail of the buffer: a foreign writer would show here. */
		for (int end = 0; end < 2; end++) {
			size_t n = len < sizeof(in) ? len : sizeof(in);
			size_t off = end ? len - n : 0;

			if (vshm_heap_write(wk->h, &b, off, in, n))
				wk->bad++;
		}
		sched_yield();
		for (int end = 0; end < 2; end++) {
			size_t n = len < sizeof(in) ? len : sizeof(in);
			size_t off = end ? len - n : 0;

			if (len > 2 * sizeof(in) || end) {
				if (vshm_heap_read(wk->h, &b, off, out, n) || memcmp(in, out, n))
					wk->bad++;
			}
		}
		if (vshm_heap_free(wk->h, &b))
			wk->bad++;
		if (i % 64 == 0) {
			struct vshm_heap_stats s;

			vshm_heap_stats(wk->h, &s);
		}
	}
	return NULL;
}

static void test_threads(void)
{
	static struct worker wk[THREADS];
	pthread_t t[THREADS];
	struct vshm_heap h;
	struct vshm_heap_stats s;
	unsigned bad = 0, started = 0, nomem = 0;

	/* Small enough that the threads contend for pages and hit -ENOMEM. */
	if (heap_at(&h, &win, 24 * MiB, 64 * PG))
		return;
	is(vshm_heap_set_flags(&h, VSHM_HEAP_F_LOCKED | VSHM_HEAP_F_SCRUB), 0,
	   "locked, scrubbing heap");
	for (unsigned i = 0; i < THREADS; i++) {
		wk[i] = (struct worker){ .h = &h, .ops = tap_scale(20000),
					 .seed = 0x1234567ull * (i + 1) };
		started += pthread_create(&t[i], NULL, worker_main, &wk[i]) == 0;
	}
	is(started, THREADS, "%u threads share one heap", THREADS);
	for (unsigned i = 0; i < started; i++) {
		pthread_join(t[i], NULL);
		bad += wk[i].bad;
		nomem += wk[i].nomem;
	}
	s = stats(&h);
	is(bad, 0, "every thread's buffers round-tripped intact");
	ok(s.live_bufs == 0 && s.allocs == s.frees && s.allocs > 0 &&
	   s.pages_free == s.pages_total,
	   "threads: %llu allocs, %llu frees, %u refused, nothing leaked",
	   (unsigned long long)s.allocs, (unsigned long long)s.frees, nomem);
	is(vshm_heap_check(&h), 0, "threads: heap consistent");
	vshm_heap_fini(&h);
}

int main(void)
{
	struct vshm_window_opts o = { .size = WIN_SIZE, .vectors = 2, .name = "test-heap" };
	int rc = vshm_window_create(&win, &o);

	is(rc, 0, "create a 256 MiB window (sparse)");
	scratch_a = malloc(SCRATCH);
	scratch_b = malloc(SCRATCH);
	ok(scratch_a && scratch_b, "two %llu MiB scratch buffers", SCRATCH >> 20);
	if (rc || !scratch_a || !scratch_b)
		return tap_done();
	test_bad_args();
	test_exhaustion();
	test_placement();
	test_fragmentation();
	test_integrity();
	test_big();
	test_cap();
	test_scrub();
	test_scribble();
	test_stress();
	test_threads();
	vshm_window_unmap(&win);
	free(scratch_a);
	free(scratch_b);
	return tap_done();
}
