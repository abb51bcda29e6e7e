// SPDX-License-Identifier: MIT
/*
 * Split ring against a hostile peer, both directions.
 *
 * Each case builds a fresh window and queue, lets the hostile side write the
 * ring by hand, and checks that our side refuses it: -EIO, the queue marked
 * broken for good, and nothing touched outside the window.  The side under
 * test runs on its own mapping whose header and mailbox pages are PROT_NONE
 * and which sits between guard pages, so any stray access would kill the
 * test rather than pass silently.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <vshm/vq.h>
#include "barrier.h"
#include "tap.h"

#define QNUM 8u

static uint64_t feat_all = (1ull << VSHM_F_EVENT_IDX) | (1ull << VSHM_F_INDIRECT_DESC);

struct env {
	struct vshm_window w;	/* the hostile side's view */
	struct vshm_window t;	/* the side under test: ctrl pages PROT_NONE */
	struct vshm_vq_layout l;
	struct vshm_vring_desc *desc;
	struct vshm_vring_avail *avail;
	struct vshm_vring_used *used;
	uint64_t buf;		/* a scratch data area, 1 MiB */
};

static int env_init(struct env *e, uint64_t size, uint32_t num)
{
	struct vshm_window_opts o = { .size = size, .vectors = 1 };
	int64_t used;

	memset(e, 0, sizeof(*e));
	if (vshm_window_create(&e->w, &o) || vshm_window_map(&e->t, e->w.fd))
		return -1;
	if (vshm_window_protect_ctrl(&e->t, PROT_NONE))
		return -1;
	used = vshm_vq_layout_split(&e->l, e->w.drv_lo, num, 4);
	e->desc = (void *)(e->w.base + e->l.desc);
	e->avail = (void *)(e->w.base + e->l.avail);
	e->used = (void *)(e->w.base + e->l.used);
	e->buf = (e->w.drv_lo + (uint64_t)used + 4095) & ~4095ull;
	return 0;
}

static void env_fini(struct env *e)
{
	vshm_window_unmap(&e->t);
	vshm_window_unmap(&e->w);
}

/* ======================================================================== */
/* Hostile driver vs our device side                                        */

static void set_desc(struct env *e, struct vshm_vring_desc *d, uint64_t addr,
		     uint32_t len, uint16_t flags, uint16_t next)
{
	(void)e;
	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

/* Publish @heads as avail entries 0..n-1 and set avail->idx to @idx. */
static void publish(struct env *e, const uint16_t *heads, unsigned n, uint16_t idx)
{
	for (unsigned i = 0; i < n; i++)
		e->avail->ring[i % e->l.num] = heads[i];
	vshm_store_release(&e->avail->idx, idx);
}

typedef void (*hostile_drv_fn)(struct env *e);

/*
 * With VSHM_CORPUS_DIR set, each hostile image becomes a seed for
 * fuzz/fuzz_vq_dev: ring size, features, segment limit, driver area bytes.
 */
static void save_seed(struct env *e, unsigned i, uint32_t num, uint64_t f)
{
	const char *dir = getenv("VSHM_CORPUS_DIR");
	char path[512];
	uint8_t hdr[3] = { 0, 0, 254 };	/* 255 segments */
	size_t len = (size_t)(e->buf - e->w.drv_lo) + 4096 + 256;
	FILE *fp;

	if (!dir)
		return;
	while ((1u << hdr[0]) < num)
		hdr[0]++;
	hdr[1] = (uint8_t)(((f >> VSHM_F_EVENT_IDX) & 1) | (((f >> VSHM_F_INDIRECT_DESC) & 1) << 1));
	snprintf(path, sizeof(path), "%s/hostile-driver-%02u", dir, i + 1);
	fp = fopen(path, "wb");
	if (!fp)
		return;
	fwrite(hdr, 1, 3, fp);
	fwrite(e->w.base + e->w.drv_lo, 1, len, fp);
	fclose(fp);
}

static void hd_loop(struct env *e)
{
	uint16_t h = 0;

	set_desc(e, &e->desc[0], e->buf, 16, VSHM_VRING_DESC_F_NEXT, 1);
	set_desc(e, &e->desc[1], e->buf, 16, VSHM_VRING_DESC_F_NEXT, 0);
	publish(e, &h, 1, 1);
}

static void hd_self_loop(struct env *e)
{
	uint16_t h = 3;

	set_desc(e, &e->desc[3], e->buf, 16, VSHM_VRING_DESC_F_NEXT, 3);
	publish(e, &h, 1, 1);
}

static void hd_too_long_indirect(struct env *e)
{
	/* An indirect table with num + 1 entries, properly linked. */
	struct vshm_vring_desc *tab = (void *)(e->w.base + e->buf);
	uint16_t h = 0;

	for (unsigned i = 0; i <= e->l.num; i++)
		set_desc(e, &tab[i], e->buf + 4096, 8,
			 i < e->l.num ? VSHM_VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	set_desc(e, &e->desc[0], e->buf, (e->l.num + 1) * 16, VSHM_VRING_DESC_F_INDIRECT, 0);
	publish(e, &h, 1, 1);
}

static void hd_wrap(struct env *e)
{
	uint16_t h = 0;

	set_desc(e, &e->desc[0], UINT64_MAX - 15, 32, 0, 0);
	publish(e, &h, 1, 1);
}

static void hd_wrap_len(struct env *e)
{
	uint16_t h = 0;

	set_desc(e, &e->desc[0], e->w.size - 16, UINT32_MAX, 0, 0);
	publish(e, &h, 1, 1);
}

static void hd_outside(struct env *e)
{
	uint16_t h = 0;

	set_desc(e, &e->desc[0], e->w.size, 1, 0, 0);
	publish(e, &h, 1, 1);
}

static void hd_straddle_end(struct env *e)
{
	uint16_t h = 0;

	set_desc(e, &e->desc[0], e->w.size - 8, 9, 0, 0);
	publish(e, &h, 1, 1);
}

static void hd_header(struct env *e)
{
	uint16_t h = 0;

	set_desc(e, &e->desc[0], 0, 64, VSHM_VRING_DESC_F_WRITE, 0);
	publish(e, &h, 1, 1);
}

static void hd_mailbox(struct env *e)
{
	uint16_t h = 0;

	set_desc(e, &e->desc[0], VSHM_MBOX_OFF + 128, 8, VSHM_VRING_DESC_F_WRITE, 0);
	publish(e, &h, 1, 1);
}

static void hd_straddle_drv_start(struct env *e)
{
	uint16_t h = 0;

	set_desc(e, &e->desc[0], VSHM_DRV_AREA_OFF - 4, 8, 0, 0);
	publish(e, &h, 1, 1);
}

static void hd_nested_indirect(struct env *e)
{
	struct vshm_vring_desc *tab = (void *)(e->w.base + e->buf);
	uint16_t h = 0;

	set_desc(e, &tab[0], e->buf + 64, 32, VSHM_VRING_DESC_F_INDIRECT, 0);
	set_desc(e, &e->desc[0], e->buf, 16, VSHM_VRING_DESC_F_INDIRECT, 0);
	publish(e, &h, 1, 1);
}

static void hd_zero_indirect(struct env *e)
{
	uint16_t h = 0;

	set_desc(e, &e->desc[0], e->buf, 0, VSHM_VRING_DESC_F_INDIRECT, 0);
	publish(e, &h, 1, 1);
}

static void hd_odd_indirect(struct env *e)
{
	uint16_t h = 0;

	set_desc(e, &e->desc[0], e->buf, 24, VSHM_VRING_DESC_F_INDIRECT, 0);
	publish(e, &h, 1, 1);
}

static void hd_indirect_next(struct env *e)
{
	struct vshm_vring_desc *tab = (void *)(e->w.base + e->buf);
	uint16_t h = 0;

	set_desc(e, &tab[0], e->buf + 4096, 8, 0, 0);
	set_desc(e, &e->desc[0], e->buf, 16, VSHM_VRING_DESC_F_INDIRECT | VSHM_VRING_DESC_F_NEXT, 1);
	set_desc(e, &e->desc[1], e->buf + 4096, 8, 0, 0);
	publish(e, &h, 1, 1);
}

static void hd_indirect_outside(struct env *e)
{
	uint16_t h = 0;

	set_desc(e, &e->desc[0], VSHM_MBOX_OFF, 64, VSHM_VRING_DESC_F_INDIRECT, 0);
	publish(e, &h, 1, 1);
}

static void hd_indirect_midchain(struct env *e)
{
	struct vshm_vring_desc *tab = (void *)(e->w.base + e->buf);
	uint16_t h = 0;

	set_desc(e, &tab[0], e->buf + 4096, 8, 0, 0);
	set_desc(e, &e->desc[0], e->buf + 4096, 8, VSHM_VRING_DESC_F_NEXT, 1);
	set_desc(e, &e->desc[1], e->buf, 16, VSHM_VRING_DESC_F_INDIRECT, 0);
	publish(e, &h, 1, 1);
}

static void hd_indirect_next_oob(struct env *e)
{
	struct vshm_vring_desc *tab = (void *)(e->w.base + e->buf);
	uint16_t h = 0;

	/* two entries; the first links to entry 2, past the table */
	set_desc(e, &tab[0], e->buf + 4096, 8, VSHM_VRING_DESC_F_NEXT, 2);
	set_desc(e, &tab[1], e->buf + 4096, 8, 0, 0);
	set_desc(e, &e->desc[0], e->buf, 32, VSHM_VRING_DESC_F_INDIRECT, 0);
	publish(e, &h, 1, 1);
}

static void hd_avail_jump(struct env *e)
{
	uint16_t h[1] = { 0 };

	set_desc(e, &e->desc[0], e->buf, 8, 0, 0);
	publish(e, h, 1, (uint16_t)(e->l.num + 1));
}

static void hd_avail_backwards(struct env *e)
{
	uint16_t h[1] = { 0 };

	set_desc(e, &e->desc[0], e->buf, 8, 0, 0);
	publish(e, h, 1, 0xffff);	/* "minus one": a jump of 65535 */
}

static void hd_head_oob(struct env *e)
{
	uint16_t h = (uint16_t)e->l.num;

	publish(e, &h, 1, 1);
}

static void hd_next_oob(struct env *e)
{
	uint16_t h = 0;

	set_desc(e, &e->desc[0], e->buf, 8, VSHM_VRING_DESC_F_NEXT, (uint16_t)e->l.num);
	publish(e, &h, 1, 1);
}

static void hd_read_after_write(struct env *e)
{
	uint16_t h = 0;

	set_desc(e, &e->desc[0], e->buf, 8, VSHM_VRING_DESC_F_WRITE | VSHM_VRING_DESC_F_NEXT, 1);
	set_desc(e, &e->desc[1], e->buf + 64, 8, 0, 0);
	publish(e, &h, 1, 1);
}

static void hd_too_many_segments(struct env *e)
{
	/* 7 descriptors; the device under test accepts at most 4 (seg_max). */
	uint16_t h = 0;

	for (unsigned i = 0; i < 7; i++)
		set_desc(e, &e->desc[i], e->buf + i * 64, 8,
			 i < 6 ? VSHM_VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	publish(e, &h, 1, 1);
}

static void hd_good_then_bad(struct env *e)
{
	/* Chain 0 is valid; chain 1 points into the header. */
	uint16_t h[2] = { 0, 1 };

	set_desc(e, &e->desc[0], e->buf, 8, 0, 0);
	set_desc(e, &e->desc[1], 8, 8, 0, 0);
	publish(e, h, 2, 2);
}

/* Total > 4 GiB: 80 descriptors of 62 MiB each, all in the driver area. */
static void hd_over_4g(struct env *e)
{
	struct vshm_vring_desc *tab = (void *)(e->w.base + e->buf);
	uint32_t each = 62u << 20;
	uint16_t h = 0;

	for (unsigned i = 0; i < 80; i++)
		set_desc(e, &tab[i], e->w.drv_lo + 4096, each,
			 i < 79 ? VSHM_VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	set_desc(e, &e->desc[0], e->buf, 80 * 16, VSHM_VRING_DESC_F_INDIRECT, 0);
	publish(e, &h, 1, 1);
}

static const struct {
	const char *name;
	hostile_drv_fn fn;
	const char *why;	/* expected reason, a substring */
	uint64_t features;
	unsigned good_first;	/* valid chains expected before the bad one */
	uint32_t num;
	uint64_t win;
} drv_cases[] = {
	{ "descriptor loop 0->1->0", hd_loop, "longer than the queue", 0, 0, QNUM, 0 },
	{ "descriptor pointing at itself", hd_self_loop, "longer than the queue", 0, 0, QNUM, 0 },
	{ "indirect chain longer than the queue", hd_too_long_indirect, "longer than the queue", 1, 0, QNUM, 0 },
	{ "address+length wraps 2^64", hd_wrap, "outside", 0, 0, QNUM, 0 },
	{ "length 4 GiB-1 at the window end", hd_wrap_len, "outside", 0, 0, QNUM, 0 },
	{ "address at the window end", hd_outside, "outside", 0, 0, QNUM, 0 },
	{ "buffer straddling the window end", hd_straddle_end, "outside", 0, 0, QNUM, 0 },
	{ "writable buffer in the header", hd_header, "outside", 0, 0, QNUM, 0 },
	{ "writable buffer in the mailbox", hd_mailbox, "outside", 0, 0, QNUM, 0 },
	{ "buffer straddling the driver-area start", hd_straddle_drv_start, "outside", 0, 0, QNUM, 0 },
	{ "nested indirect table", hd_nested_indirect, "nested", 1, 0, QNUM, 0 },
	{ "zero-length indirect table", hd_zero_indirect, "multiple of 16", 1, 0, QNUM, 0 },
	{ "indirect table size not a multiple of 16", hd_odd_indirect, "multiple of 16", 1, 0, QNUM, 0 },
	{ "INDIRECT|NEXT", hd_indirect_next, "with NEXT", 1, 0, QNUM, 0 },
	{ "indirect table in the mailbox", hd_indirect_outside, "indirect table outside", 1, 0, QNUM, 0 },
	{ "indirect descriptor mid-chain", hd_indirect_midchain, "inside a chain", 1, 0, QNUM, 0 },
	{ "indirect next past the table", hd_indirect_next_oob, "out of range", 1, 0, QNUM, 0 },
	{ "indirect without INDIRECT_DESC negotiated", hd_nested_indirect, "without INDIRECT_DESC", 0, 0, QNUM, 0 },
	{ "avail idx jumps past the queue size", hd_avail_jump, "queue size", 0, 0, QNUM, 0 },
	{ "avail idx moves backwards", hd_avail_backwards, "queue size", 0, 0, QNUM, 0 },
	{ "avail entry names descriptor num", hd_head_oob, "out of range", 0, 0, QNUM, 0 },
	{ "next names descriptor num", hd_next_oob, "out of range", 0, 0, QNUM, 0 },
	{ "readable after writable", hd_read_after_write, "after a writable", 0, 0, QNUM, 0 },
	{ "more segments than the device accepts", hd_too_many_segments, "more buffers", 0, 0, QNUM, 0 },
	{ "valid chain, then one into the header", hd_good_then_bad, "outside", 0, 1, QNUM, 0 },
	{ "chain totalling more than 4 GiB", hd_over_4g, "4 GiB", 1, 0, 128, 128u << 20 },
};

static void test_hostile_driver(void)
{
	for (unsigned i = 0; i < sizeof(drv_cases) / sizeof(drv_cases[0]); i++) {
		struct env e;
		struct vshm_dev_vq *v;
		struct vshm_chain c;
		static struct vshm_iov iov[256];
		unsigned max_iov = drv_cases[i].fn == hd_too_many_segments ? 4 : 256;
		uint64_t f = drv_cases[i].features ? feat_all : (1ull << VSHM_F_EVENT_IDX);
		unsigned good = 0;
		int rc;

		if (env_init(&e, drv_cases[i].win ? drv_cases[i].win : 4u << 20, drv_cases[i].num) ||
		    vshm_dev_vq_create(&v, &e.t, &e.l, f, NULL)) {
			ok(0, "hostile driver %u: setup", i + 1);
			continue;
		}
		drv_cases[i].fn(&e);
		save_seed(&e, i, drv_cases[i].num, f);
		while ((rc = vshm_dev_vq_pop(v, &c, iov, max_iov)) == 1) {
			good++;
			vshm_dev_vq_push(v, c.head, 0);
		}
		ok(rc == -EIO && vshm_dev_vq_broken(v) && good == drv_cases[i].good_first &&
		   vshm_dev_vq_error(v) && strstr(vshm_dev_vq_error(v), drv_cases[i].why),
		   "hostile driver %u: %s -> refused (%s)", i + 1, drv_cases[i].name,
		   vshm_dev_vq_error(v) ? vshm_dev_vq_error(v) : "not refused");
		ok(vshm_dev_vq_pop(v, &c, iov, 4) == -EIO && vshm_dev_vq_push(v, 0, 0) == -EIO &&
		   vshm_dev_vq_publish(v) == -EIO && vshm_dev_vq_enable_notify(v) == -EIO,
		   "hostile driver %u: broken is sticky", i + 1);
		vshm_dev_vq_destroy(v);
		env_fini(&e);
	}

	/* The same harness accepts a well-formed chain (it is not vacuous). */
	{
		struct env e;
		struct vshm_dev_vq *v;
		struct vshm_chain c;
		struct vshm_iov iov[4];
		struct vshm_vring_desc *tab;
		uint16_t h[2] = { 0, 1 };

		env_init(&e, 4u << 20, QNUM);
		vshm_dev_vq_create(&v, &e.t, &e.l, feat_all, NULL);
		tab = (void *)(e.w.base + e.buf);
		set_desc(&e, &tab[0], e.buf + 4096, 8, VSHM_VRING_DESC_F_NEXT, 1);
		set_desc(&e, &tab[1], e.buf + 8192, 8, VSHM_VRING_DESC_F_WRITE, 0);
		set_desc(&e, &e.desc[0], e.buf, 32, VSHM_VRING_DESC_F_INDIRECT, 0);
		set_desc(&e, &e.desc[1], e.w.size - 8, 8, VSHM_VRING_DESC_F_WRITE, 0);
		publish(&e, h, 2, 2);
		is(vshm_dev_vq_pop(v, &c, iov, 4), 1, "control: a valid indirect chain pops");
		is(vshm_dev_vq_pop(v, &c, iov, 4), 1, "control: a buffer ending exactly at the window end pops");
		ok(!vshm_dev_vq_broken(v), "control: queue healthy");
		vshm_dev_vq_destroy(v);
		env_fini(&e);
	}
}

/* ======================================================================== */
/* Hostile device vs our driver side                                        */

struct drv_env {
	struct env e;
	struct vshm_drv_vq *d;
	int cookies[QNUM];
	uint16_t heads[3];	/* descriptor ids of the three posted chains */
};

/*
 * Post three chains: A = 1 out + 1 in (100 writable bytes, descriptors 0,1),
 * B = 1 in of 50 bytes (descriptor 2), C = 1 out (descriptor 3).  Chain D is
 * added but never published (descriptor 4).
 */
static int drv_setup(struct drv_env *de)
{
	struct env *e = &de->e;

	if (env_init(e, 4u << 20, QNUM) ||
	    vshm_drv_vq_create(&de->d, &e->t, &e->l, feat_all, NULL))
		return -1;
	struct vshm_sg a[2] = { { e->buf, 64, 0 }, { e->buf + 4096, 100, 0 } };
	struct vshm_sg b = { e->buf + 8192, 50, 0 }, c = { e->buf + 12288, 10, 0 };
	if (vshm_drv_vq_add_ex(de->d, a, 1, 1, &de->cookies[0], VSHM_ADD_NO_INDIRECT) ||
	    vshm_drv_vq_add(de->d, &b, 0, 1, &de->cookies[1]) ||
	    vshm_drv_vq_add(de->d, &c, 1, 0, &de->cookies[2]))
		return -1;
	if (vshm_drv_vq_publish(de->d) < 0)
		return -1;
	if (vshm_drv_vq_add(de->d, &c, 1, 0, &de->cookies[3]))
		return -1;
	de->heads[0] = e->avail->ring[0];
	de->heads[1] = e->avail->ring[1];
	de->heads[2] = e->avail->ring[2];
	return 0;
}

/* The hostile device writes used element @slot and publishes used->idx. */
static void dev_write_used(struct env *e, unsigned slot, uint32_t id, uint32_t len, uint16_t idx)
{
	e->used->ring[slot % e->l.num].id = id;
	e->used->ring[slot % e->l.num].len = len;
	vshm_store_release(&e->used->idx, idx);
}

typedef void (*hostile_dev_fn)(struct drv_env *de);

static void hv_id_oob(struct drv_env *de) { dev_write_used(&de->e, 0, QNUM, 0, 1); }
static void hv_id_huge(struct drv_env *de) { dev_write_used(&de->e, 0, 0xffffffffu, 0, 1); }
static void hv_never_issued(struct drv_env *de) { dev_write_used(&de->e, 0, 7, 0, 1); }
static void hv_unpublished(struct drv_env *de) { dev_write_used(&de->e, 0, 4, 0, 1); }
static void hv_mid_chain(struct drv_env *de) { dev_write_used(&de->e, 0, (uint32_t)de->heads[0] + 1, 0, 1); }
static void hv_len_too_big(struct drv_env *de) { dev_write_used(&de->e, 0, de->heads[0], 101, 1); }
static void hv_len_on_readonly(struct drv_env *de) { dev_write_used(&de->e, 0, de->heads[2], 1, 1); }
static void hv_len_huge(struct drv_env *de) { dev_write_used(&de->e, 0, de->heads[1], 0xffffffffu, 1); }
static void hv_idx_jump(struct drv_env *de) { dev_write_used(&de->e, 0, de->heads[0], 0, (uint16_t)(QNUM + 1)); }
static void hv_idx_past_inflight(struct drv_env *de)
{
	/* three in flight, device claims four completions */
	de->e.used->ring[0].id = de->heads[0];
	de->e.used->ring[1].id = de->heads[1];
	de->e.used->ring[2].id = de->heads[2];
	dev_write_used(&de->e, 3, de->heads[0], 0, 4);
}
static void hv_duplicate(struct drv_env *de)
{
	/* complete A twice in two used entries */
	de->e.used->ring[0].id = de->heads[0];
	de->e.used->ring[0].len = 10;
	dev_write_used(&de->e, 1, de->heads[0], 10, 2);
}
static void hv_idx_backwards(struct drv_env *de) { dev_write_used(&de->e, 0, de->heads[0], 0, 0xffff); }

static const struct {
	const char *name;
	hostile_dev_fn fn;
	unsigned good_first;
} dev_cases[] = {
	{ "used id = queue size", hv_id_oob, 0 },
	{ "used id = 2^32-1", hv_id_huge, 0 },
	{ "used id never issued", hv_never_issued, 0 },
	{ "used id added but never published", hv_unpublished, 0 },
	{ "used id of a mid-chain descriptor", hv_mid_chain, 0 },
	{ "used len one more than posted", hv_len_too_big, 0 },
	{ "used len on a read-only chain", hv_len_on_readonly, 0 },
	{ "used len 2^32-1", hv_len_huge, 0 },
	{ "used idx jumps past the queue size", hv_idx_jump, 0 },
	{ "used idx counts more than in flight", hv_idx_past_inflight, 0 },
	{ "duplicate completion", hv_duplicate, 1 },
	{ "used idx moves backwards", hv_idx_backwards, 0 },
};

static void test_hostile_device(void)
{
	for (unsigned i = 0; i < sizeof(dev_cases) / sizeof(dev_cases[0]); i++) {
		struct drv_env de;
		struct vshm_sg s = { 0, 8, 0 };
		void *ck;
		uint32_t len;
		unsigned good = 0, detached = 0;
		int rc;

		memset(&de, 0, sizeof(de));
		if (drv_setup(&de)) {
			ok(0, "hostile device %u: setup", i + 1);
			continue;
		}
		s.off = de.e.buf;
		dev_cases[i].fn(&de);
		while ((rc = vshm_drv_vq_harvest(de.d, &ck, &len)) == 1)
			good++;
		ok(rc == -EIO && vshm_drv_vq_broken(de.d) && good == dev_cases[i].good_first,
		   "hostile device %u: %s -> refused (%s)", i + 1, dev_cases[i].name,
		   vshm_drv_vq_error(de.d) ? vshm_drv_vq_error(de.d) : "not refused");
		ok(vshm_drv_vq_harvest(de.d, &ck, &len) == -EIO &&
		   vshm_drv_vq_add(de.d, &s, 1, 0, &de.cookies[5]) == -EIO &&
		   vshm_drv_vq_publish(de.d) == -EIO && vshm_drv_vq_enable_cb(de.d) == -EIO,
		   "hostile device %u: -EIO from then on", i + 1);
		/* Every outstanding request can still be failed explicitly. */
		while (vshm_drv_vq_detach_unused(de.d))
			detached++;
		is(detached + good, 4, "hostile device %u: every chain accounted for once", i + 1);
		vshm_drv_vq_destroy(de.d);
		env_fini(&de.e);
	}

	/* Control: the same setup harvests honest completions. */
	{
		struct drv_env de;
		void *ck;
		uint32_t len;

		memset(&de, 0, sizeof(de));
		drv_setup(&de);
		de.e.used->ring[0].id = de.heads[1];
		de.e.used->ring[0].len = 50;
		dev_write_used(&de.e, 1, de.heads[0], 100, 2);
		ok(vshm_drv_vq_harvest(de.d, &ck, &len) == 1 && ck == &de.cookies[1] && len == 50,
		   "control: out-of-order completion with the full length");
		ok(vshm_drv_vq_harvest(de.d, &ck, &len) == 1 && ck == &de.cookies[0] && len == 100,
		   "control: second completion");
		ok(!vshm_drv_vq_broken(de.d), "control: queue healthy");
		vshm_drv_vq_destroy(de.d);
		env_fini(&de.e);
	}
}

int main(void)
{
	test_hostile_driver();
	test_hostile_device();
	return tap_done();
}
