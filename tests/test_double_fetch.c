// SPDX-License-Identifier: MIT
/*
 * The interleaving harness (fuzz/interleave.c) catches double fetches.
 *
 * The library in this build has no load hook (it is compiled without
 * VSHM_FUZZ), so this program turns the hook on for its own translation
 * unit only: it defines VSHM_FUZZ before barrier.h and compiles in
 * src/fuzzhook.c (the hook pointer) and fuzz/interleave.c.  The functions
 * below then load through the hooked vshm_load_once / vshm_load_acquire,
 * exactly as library code does in a fuzz build.  The fuzz target
 * fuzz_interleave runs the real rings and mailbox under the same harness.
 *
 * Checked: a field loaded twice in one request is reported with both
 * offsets, so is a load overlapping an earlier one; single loads, loads in
 * different requests, loads outside the range or outside a request are
 * not; a script rewrite between two loads turns a check-then-reload into a
 * use of an unchecked value (the bug the detector exists for), and the
 * load-once version is immune; each rewrite mode does what it says.
 *
 * Then, in the release library, the fixes for the double fetches the
 * harness found (docs/security.md, "Double fetches"): a split chain that
 * reaches a descriptor twice, an indirect table over the ring (split and
 * packed), a split table longer than the queue, a split layout whose areas
 * overlap: each refused before any byte is loaded a second time.
 */
#define VSHM_FUZZ 1

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <vshm/vq.h>
#include "tap.h"
#include "barrier.h"
#include "../src/fuzzhook.c"
#include "../fuzz/interleave.c"

/* A little peer-written structure, like a descriptor. */
struct rec {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

static union {
	struct rec r[4];
	uint8_t bytes[64];
} win;

static struct {
	unsigned n;
	const char *what;
	size_t off, size, first_off, first_size;
	const void *site;
} got;

static void record(const struct interleave_report *r, void *ctx)
{
	(void)ctx;
	got.n++;
	got.what = r->what;
	got.off = r->off;
	got.size = r->size;
	got.first_off = r->first_off;
	got.first_size = r->first_size;
	got.site = r->site;
}

static void reset(void)
{
	memset(&got, 0, sizeof(got));
	memset(&win, 0, sizeof(win));
	interleave_script(NULL, 0);
}

#define LIMIT 16u

/* The bug: check one load of len, then use another. */
static __attribute__((noinline)) uint32_t check_then_reload(const struct rec *r)
{
	if (vshm_load_once(&r->len) > LIMIT)
		return 0;
	return vshm_load_once(&r->len);
}

/* The rule: one load into a local, checked, used. */
static __attribute__((noinline)) uint32_t load_once_then_check(const struct rec *r)
{
	uint32_t len = vshm_load_once(&r->len);

	return len > LIMIT ? 0 : len;
}

/* Every field once, the index with acquire: not a double fetch. */
static __attribute__((noinline)) uint64_t walk_fields(const struct rec *r)
{
	uint16_t next = vshm_load_acquire(&r->next);
	uint64_t a = vshm_load_once(&r->addr);
	uint32_t l = vshm_load_once(&r->len);
	uint16_t f = vshm_load_once(&r->flags);

	return a + l + f + next;
}

/* A 16-bit load inside an earlier 32-bit one: overlapping. */
static __attribute__((noinline)) uint32_t overlap(const struct rec *r)
{
	uint32_t l = vshm_load_once(&r->len);
	const uint16_t *hi = (const uint16_t *)(const void *)((const uint8_t *)&r->len + 2);

	return l + vshm_load_acquire(hi);
}

/* ---- the library's fixes, release build ------------------------------- */

struct pdesc {			/* packed descriptor, virtio 1.x 2.8.13 */
	uint64_t addr;
	uint32_t len;
	uint16_t id;
	uint16_t flags;
};

#define QNUM 8u

static void set_desc(struct vshm_vring_desc *d, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

/* A split device on the ring as set up: the avail ring names head 0; pop once. */
static const char *split_pop(struct vshm_window *w, const struct vshm_vq_layout *l,
			     uint64_t feat)
{
	static struct vshm_iov iov[QNUM];
	struct vshm_vring_avail *av = (void *)(w->base + l->avail);
	struct vshm_dev_vq *v;
	struct vshm_chain c;
	const char *why;
	int rc;

	if (vshm_dev_vq_create(&v, w, l, feat, NULL))
		return "create failed";
	av->ring[0] = 0;
	vshm_store_release(&av->idx, 1);
	rc = vshm_dev_vq_pop(v, &c, iov, QNUM);
	why = rc == -EIO ? vshm_dev_vq_error(v) : "not refused";
	vshm_dev_vq_destroy(v);
	return why;
}

static void library_fixes(void)
{
	struct vshm_window_opts o = { .size = 1u << 20, .vectors = 1 };
	uint64_t ind = 1ull << VSHM_F_INDIRECT_DESC;
	struct vshm_vq_layout l, bad;
	struct vshm_vring_desc *desc;
	struct vshm_dev_vq *v;
	struct vshm_drv_vq *d;
	struct vshm_window w;
	uint64_t buf;
	const char *why;
	int64_t lay;

	if (!ok(vshm_window_create(&w, &o) == 0, "13 a window for the library cases"))
		return;
	lay = vshm_vq_layout_split(&l, w.drv_lo, QNUM, 0);
	buf = w.drv_lo + (uint64_t)((lay + 4095) & ~4095);
	desc = (void *)(w.base + l.desc);

	/* 13: 0 -> 1 -> 0 is refused when 0 comes round again, not after
	 * num hops: a driver that rewrites 0 meanwhile cannot end the loop. */
	memset(w.base + w.drv_lo, 0, (size_t)lay);
	set_desc(&desc[0], buf, 16, VSHM_VRING_DESC_F_NEXT, 1);
	set_desc(&desc[1], buf, 16, VSHM_VRING_DESC_F_NEXT, 0);
	why = split_pop(&w, &l, 0);
	ok(strstr(why, "reached twice") && strstr(why, "longer than the queue"),
	   "13 split: a descriptor reached twice is a loop, refused then (%s)", why);

	/* 14: an indirect table on the descriptor table, or on the avail ring. */
	memset(w.base + w.drv_lo, 0, (size_t)lay);
	set_desc(&desc[0], l.desc, 32, VSHM_VRING_DESC_F_INDIRECT, 0);
	why = split_pop(&w, &l, ind);
	ok(strstr(why, "overlaps the ring") != NULL,
	   "14 split: indirect table over the descriptor table refused (%s)", why);
	memset(w.base + w.drv_lo, 0, (size_t)lay);
	set_desc(&desc[0], l.avail & ~15ull, 16, VSHM_VRING_DESC_F_INDIRECT, 0);
	why = split_pop(&w, &l, ind);
	ok(strstr(why, "overlaps the ring") != NULL,
	   "14 split: indirect table over the avail ring refused (%s)", why);

	/* 15: a table with more entries than the queue (they would not fit
	 * the visited map; no chain in it may be that long anyway). */
	memset(w.base + w.drv_lo, 0, (size_t)lay);
	set_desc(&desc[0], buf, (QNUM + 1) * 16, VSHM_VRING_DESC_F_INDIRECT, 0);
	why = split_pop(&w, &l, ind);
	ok(strstr(why, "indirect table longer than the queue") != NULL,
	   "15 split: indirect table of num + 1 entries refused (%s)", why);

	/* 16: a layout whose areas overlap is refused by both sides. */
	bad = l;
	bad.avail = l.desc + 64;
	is(vshm_dev_vq_create(&v, &w, &bad, 0, NULL), -EINVAL, "16 split: avail ring on the descriptor table");
	is(vshm_drv_vq_create(&d, &w, &bad, 0, NULL), -EINVAL, "16 and the driver refuses it too");
	bad = l;
	bad.used = l.avail;
	is(vshm_dev_vq_create(&v, &w, &bad, 0, NULL), -EINVAL, "16 split: used ring on the avail ring");

	/* 17: packed, a table on the descriptor ring. */
	{
		uint64_t feat = (1ull << VSHM_F_RING_PACKED) | ind;
		static struct vshm_iov iov[QNUM];
		struct vshm_chain c;
		struct pdesc *ring;
		int rc;

		lay = vshm_vq_layout_packed(&l, w.drv_lo, QNUM, 0);
		memset(w.base + w.drv_lo, 0, (size_t)lay);
		ring = (void *)(w.base + l.desc);
		if (!ok(vshm_dev_vq_create(&v, &w, &l, feat, NULL) == 0, "17 packed device"))
			return;
		ring[0].addr = l.desc;
		ring[0].len = 32;
		ring[0].id = 0;
		vshm_store_release(&ring[0].flags, (uint16_t)(VSHM_VRING_DESC_F_INDIRECT | 1u << 7));
		rc = vshm_dev_vq_pop(v, &c, iov, QNUM);
		why = rc == -EIO ? vshm_dev_vq_error(v) : "not refused";
		ok(strstr(why, "overlaps the ring") != NULL,
		   "17 packed: indirect table over the descriptor ring refused (%s)", why);
		vshm_dev_vq_destroy(v);
	}
	vshm_window_unmap(&w);
}

int main(void)
{
	static uint8_t script[4 * INTERLEAVE_REC];
	struct interleave_stats st;
	const void *site;
	uint32_t outside = 7, v;

	if (!ok(interleave_window(&win, sizeof(win)) == 0, "1 harness installed on a 64-byte range"))
		return tap_done();
	interleave_set_report(record, NULL);

	/* 2: one load per field is not a double fetch. */
	reset();
	interleave_begin("walk");
	walk_fields(&win.r[1]);
	interleave_end();
	is(got.n, 0, "2 one load per field: nothing reported");

	/* 3: the same field twice in one request is. */
	reset();
	interleave_begin("check-then-reload");
	check_then_reload(&win.r[1]);
	interleave_end();
	is(got.n, 1, "3 len loaded twice: one report");
	ok(got.what && !strcmp(got.what, "check-then-reload"), "3 the report names the request");
	is(got.off, 16 + 8, "3 at the offset of r[1].len");
	is(got.size, 4, "3 four bytes");
	is(got.first_off, 16 + 8, "3 the first load was the same field");
	ok(got.site != NULL, "3 with the code address of the second load");
	site = got.site;

	/* 4: load once, then check: clean. */
	reset();
	interleave_begin("load-once");
	load_once_then_check(&win.r[1]);
	interleave_end();
	is(got.n, 0, "4 load-once version: nothing reported");

	/* 5: overlapping loads of different sizes. */
	reset();
	interleave_begin("overlap");
	overlap(&win.r[2]);
	interleave_end();
	is(got.n, 1, "5 a 16-bit load inside an earlier 32-bit load: reported");
	is(got.off, 32 + 10, "5 at the second load's offset");
	is(got.size, 2, "5 two bytes");
	is(got.first_off, 32 + 8, "5 overlapping the 32-bit load at r[2].len");
	is(got.first_size, 4, "5 whose size was 4");
	ok(got.site && got.site != site, "5 at another load site than 3");

	/* 6: the same field in two requests is two requests, not a bug. */
	reset();
	interleave_begin("first");
	walk_fields(&win.r[0]);
	interleave_end();
	interleave_begin("second");
	walk_fields(&win.r[0]);
	interleave_end();
	is(got.n, 0, "6 one load in each of two requests: nothing reported");

	/* 7: outside a request, or outside the range: not watched. */
	reset();
	check_then_reload(&win.r[0]);
	interleave_begin("outside");
	(void)vshm_load_once(&outside);
	(void)vshm_load_once(&outside);
	interleave_end();
	is(got.n, 0, "7 loads outside a request or outside the range: ignored");

	/*
	 * 8: why it matters.  The peer rewrites len between the check and
	 * the reload: the checked-then-reloaded value escapes the check.
	 * Record: skip 1 load (the check), replace the next with 1000.
	 */
	reset();
	win.r[3].len = 8;
	memset(script, 0, sizeof(script));
	script[0] = 1;
	script[1] = 0;
	script[2] = 1000 & 0xff;
	script[3] = 1000 >> 8;
	interleave_script(script, INTERLEAVE_REC);
	interleave_begin("toctou");
	v = check_then_reload(&win.r[3]);
	interleave_end();
	is(v, 1000, "8 rewrite between check and reload: the unchecked 1000 is used");
	is(got.n, 1, "8 and the double fetch is reported");
	ok(got.site == site, "8 at the same load site as 3");

	/* The load-once version has one load to rewrite: the one checked. */
	reset();
	win.r[3].len = 8;
	script[0] = 0;
	interleave_script(script, INTERLEAVE_REC);
	interleave_begin("toctou-fixed");
	v = load_once_then_check(&win.r[3]);
	interleave_end();
	is(v, 0, "8 load-once version: the rewritten 1000 is the value checked, and refused");
	is(got.n, 0, "8 and nothing is reported");

	/* 9-11: the other rewrite modes. */
	reset();
	win.r[0].len = 0x0f0f;
	memset(script, 0, sizeof(script));
	script[1] = 1;			/* xor */
	script[2] = 0xff;
	interleave_script(script, INTERLEAVE_REC);
	interleave_begin("xor");
	v = vshm_load_once(&win.r[0].len);
	interleave_end();
	is(v, 0x0ff0, "9 xor rewrite");

	reset();
	win.r[0].len = 0xffff;
	memset(script, 0, sizeof(script));
	script[1] = 2;			/* add */
	script[2] = 1;
	interleave_script(script, INTERLEAVE_REC);
	interleave_begin("add");
	v = vshm_load_once(&win.r[0].len);
	interleave_end();
	is(v, 0x10000, "10 add rewrite carries");

	reset();
	memset(script, 0, sizeof(script));
	script[1] = 3;			/* write elsewhere: offset 40, value 0xabcd */
	script[2] = 40;
	script[6] = 0xcd;
	script[7] = 0xab;
	interleave_script(script, INTERLEAVE_REC);
	interleave_begin("elsewhere");
	v = vshm_load_once(&win.r[0].len);
	interleave_end();
	is(v, 0, "11 write-elsewhere leaves the loaded bytes alone");
	is(win.r[2].len, 0xabcd, "11 and writes four bytes at the offset named");

	interleave_get_stats(&st);
	ok(st.double_fetches == 3 && st.rewrites == 5 && st.loads > 10,
	   "12 counters: %llu loads, %llu rewrites, %llu double fetches",
	   (unsigned long long)st.loads, (unsigned long long)st.rewrites,
	   (unsigned long long)st.double_fetches);
	interleave_teardown();

	library_fixes();
	return tap_done();
}
