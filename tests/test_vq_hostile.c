// SPDX-License-Identifier: MIT
/*
 * Split ring against a hostile peer, both directions.
 *
 * Each case builds a fresh window and queue, lets the hostile side write the
 * ring by hand, and checks that our side refuses it: -EIO, the queue marked
 * broken for good, the reason named, and nothing touched outside the window
 * (tests/vq_hostile.h: the side under test has the header and mailbox
 * PROT_NONE and guard pages around its mapping).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

#include <vshm/vq.h>
#include "barrier.h"
#include "tap.h"
#include "vq_hostile.h"

#define QNUM 8u

#define F_EV	(1ull << VSHM_F_EVENT_IDX)
#define F_ALL	(F_EV | (1ull << VSHM_F_INDIRECT_DESC))

/* The ring as the hostile side writes it. */
static struct vshm_vring_desc *desc(struct hostile_env *e)
{
	return (struct vshm_vring_desc *)(void *)(e->w.base + e->l.desc);
}

static struct vshm_vring_avail *avail(struct hostile_env *e)
{
	return (struct vshm_vring_avail *)(void *)(e->w.base + e->l.avail);
}

static struct vshm_vring_used *used(struct hostile_env *e)
{
	return (struct vshm_vring_used *)(void *)(e->w.base + e->l.used);
}

/*
 * hostile_post's chains: A = 1 out + 1 in (100 writable bytes, descriptors
 * 0,1), B = 1 in of 50 bytes (descriptor 2), C = 1 out (descriptor 3).
 * Chain D is added but never published (descriptor 4).
 */
static int posted(struct hostile_drv_env *de)
{
	for (unsigned k = 0; k < 3; k++)
		de->ids[k] = avail(&de->e)->ring[k];
	return 0;
}

/* ======================================================================== */
/* Hostile driver vs our device side                                        */

static void set_desc(struct hostile_env *e, struct vshm_vring_desc *d, uint64_t addr,
		     uint32_t len, uint16_t flags, uint16_t next)
{
	(void)e;
	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

/* Publish @heads as avail entries 0..n-1 and set avail->idx to @idx. */
static void publish(struct hostile_env *e, const uint16_t *heads, unsigned n, uint16_t idx)
{
	for (unsigned i = 0; i < n; i++)
		avail(e)->ring[i % e->l.num] = heads[i];
	vshm_store_release(&avail(e)->idx, idx);
}

/*
 * With VSHM_CORPUS_DIR set, each hostile image becomes a seed for
 * fuzz/fuzz_vq_dev: ring size, features, segment limit, driver area bytes.
 */
static void save_seed(struct hostile_env *e, const struct hostile_drv_case *c, int stage)
{
	const char *dir = getenv("VSHM_CORPUS_DIR");
	unsigned i = e->i;
	uint32_t num = c->num;
	uint64_t f = c->features;
	char path[512];
	uint8_t hdr[3] = { 0, 0, 254 };	/* 255 segments */
	size_t len = (size_t)(e->buf - e->w.drv_lo) + 4096 + 256;
	FILE *fp;

	if (!dir || stage)
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

static const struct hostile_ring ring = {
	.layout = vshm_vq_layout_split, .layout_arg = 4, .seed = save_seed,
	.drv_features = F_ALL, .num = QNUM, .a_flags = VSHM_ADD_NO_INDIRECT,
	.late = { 0, 8, 0 }, .posted = posted,
};

static void hd_loop(struct hostile_env *e)
{
	uint16_t h = 0;

	set_desc(e, &desc(e)[0], e->buf, 16, VSHM_VRING_DESC_F_NEXT, 1);
	set_desc(e, &desc(e)[1], e->buf, 16, VSHM_VRING_DESC_F_NEXT, 0);
	publish(e, &h, 1, 1);
}

static void hd_self_loop(struct hostile_env *e)
{
	uint16_t h = 3;

	set_desc(e, &desc(e)[3], e->buf, 16, VSHM_VRING_DESC_F_NEXT, 3);
	publish(e, &h, 1, 1);
}

static void hd_too_long_indirect(struct hostile_env *e)
{
	/* An indirect table with num + 1 entries, properly linked. */
	struct vshm_vring_desc *tab = (void *)(e->w.base + e->buf);
	uint16_t h = 0;

	for (unsigned i = 0; i <= e->l.num; i++)
		set_desc(e, &tab[i], e->buf + 4096, 8,
			 i < e->l.num ? VSHM_VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	set_desc(e, &desc(e)[0], e->buf, (e->l.num + 1) * 16, VSHM_VRING_DESC_F_INDIRECT, 0);
	publish(e, &h, 1, 1);
}

static void hd_wrap(struct hostile_env *e)
{
	uint16_t h = 0;

	set_desc(e, &desc(e)[0], UINT64_MAX - 15, 32, 0, 0);
	publish(e, &h, 1, 1);
}

static void hd_wrap_len(struct hostile_env *e)
{
	uint16_t h = 0;

	set_desc(e, &desc(e)[0], e->w.size - 16, UINT32_MAX, 0, 0);
	publish(e, &h, 1, 1);
}

static void hd_outside(struct hostile_env *e)
{
	uint16_t h = 0;

	set_desc(e, &desc(e)[0], e->w.size, 1, 0, 0);
	publish(e, &h, 1, 1);
}

static void hd_straddle_end(struct hostile_env *e)
{
	uint16_t h = 0;

	set_desc(e, &desc(e)[0], e->w.size - 8, 9, 0, 0);
	publish(e, &h, 1, 1);
}

static void hd_header(struct hostile_env *e)
{
	uint16_t h = 0;

	set_desc(e, &desc(e)[0], 0, 64, VSHM_VRING_DESC_F_WRITE, 0);
	publish(e, &h, 1, 1);
}

static void hd_mailbox(struct hostile_env *e)
{
	uint16_t h = 0;

	set_desc(e, &desc(e)[0], VSHM_MBOX_OFF + 128, 8, VSHM_VRING_DESC_F_WRITE, 0);
	publish(e, &h, 1, 1);
}

static void hd_straddle_drv_start(struct hostile_env *e)
{
	uint16_t h = 0;

	set_desc(e, &desc(e)[0], VSHM_DRV_AREA_OFF - 4, 8, 0, 0);
	publish(e, &h, 1, 1);
}

static void hd_nested_indirect(struct hostile_env *e)
{
	struct vshm_vring_desc *tab = (void *)(e->w.base + e->buf);
	uint16_t h = 0;

	set_desc(e, &tab[0], e->buf + 64, 32, VSHM_VRING_DESC_F_INDIRECT, 0);
	set_desc(e, &desc(e)[0], e->buf, 16, VSHM_VRING_DESC_F_INDIRECT, 0);
	publish(e, &h, 1, 1);
}

static void hd_zero_indirect(struct hostile_env *e)
{
	uint16_t h = 0;

	set_desc(e, &desc(e)[0], e->buf, 0, VSHM_VRING_DESC_F_INDIRECT, 0);
	publish(e, &h, 1, 1);
}

static void hd_odd_indirect(struct hostile_env *e)
{
	uint16_t h = 0;

	set_desc(e, &desc(e)[0], e->buf, 24, VSHM_VRING_DESC_F_INDIRECT, 0);
	publish(e, &h, 1, 1);
}

static void hd_indirect_next(struct hostile_env *e)
{
	struct vshm_vring_desc *tab = (void *)(e->w.base + e->buf);
	uint16_t h = 0;

	set_desc(e, &tab[0], e->buf + 4096, 8, 0, 0);
	set_desc(e, &desc(e)[0], e->buf, 16, VSHM_VRING_DESC_F_INDIRECT | VSHM_VRING_DESC_F_NEXT, 1);
	set_desc(e, &desc(e)[1], e->buf + 4096, 8, 0, 0);
	publish(e, &h, 1, 1);
}

static void hd_indirect_outside(struct hostile_env *e)
{
	uint16_t h = 0;

	set_desc(e, &desc(e)[0], VSHM_MBOX_OFF, 64, VSHM_VRING_DESC_F_INDIRECT, 0);
	publish(e, &h, 1, 1);
}

static void hd_indirect_midchain(struct hostile_env *e)
{
	struct vshm_vring_desc *tab = (void *)(e->w.base + e->buf);
	uint16_t h = 0;

	set_desc(e, &tab[0], e->buf + 4096, 8, 0, 0);
	set_desc(e, &desc(e)[0], e->buf + 4096, 8, VSHM_VRING_DESC_F_NEXT, 1);
	set_desc(e, &desc(e)[1], e->buf, 16, VSHM_VRING_DESC_F_INDIRECT, 0);
	publish(e, &h, 1, 1);
}

static void hd_indirect_next_oob(struct hostile_env *e)
{
	struct vshm_vring_desc *tab = (void *)(e->w.base + e->buf);
	uint16_t h = 0;

	/* two entries; the first links to entry 2, past the table */
	set_desc(e, &tab[0], e->buf + 4096, 8, VSHM_VRING_DESC_F_NEXT, 2);
	set_desc(e, &tab[1], e->buf + 4096, 8, 0, 0);
	set_desc(e, &desc(e)[0], e->buf, 32, VSHM_VRING_DESC_F_INDIRECT, 0);
	publish(e, &h, 1, 1);
}

static void hd_avail_jump(struct hostile_env *e)
{
	uint16_t h[1] = { 0 };

	set_desc(e, &desc(e)[0], e->buf, 8, 0, 0);
	publish(e, h, 1, (uint16_t)(e->l.num + 1));
}

static void hd_avail_backwards(struct hostile_env *e)
{
	uint16_t h[1] = { 0 };

	set_desc(e, &desc(e)[0], e->buf, 8, 0, 0);
	publish(e, h, 1, 0xffff);	/* "minus one": a jump of 65535 */
}

static void hd_head_oob(struct hostile_env *e)
{
	uint16_t h = (uint16_t)e->l.num;

	publish(e, &h, 1, 1);
}

static void hd_next_oob(struct hostile_env *e)
{
	uint16_t h = 0;

	set_desc(e, &desc(e)[0], e->buf, 8, VSHM_VRING_DESC_F_NEXT, (uint16_t)e->l.num);
	publish(e, &h, 1, 1);
}

static void hd_read_after_write(struct hostile_env *e)
{
	uint16_t h = 0;

	set_desc(e, &desc(e)[0], e->buf, 8, VSHM_VRING_DESC_F_WRITE | VSHM_VRING_DESC_F_NEXT, 1);
	set_desc(e, &desc(e)[1], e->buf + 64, 8, 0, 0);
	publish(e, &h, 1, 1);
}

static void hd_too_many_segments(struct hostile_env *e)
{
	/* 7 descriptors; the device under test accepts at most 4 (seg_max). */
	uint16_t h = 0;

	for (unsigned i = 0; i < 7; i++)
		set_desc(e, &desc(e)[i], e->buf + i * 64, 8,
			 i < 6 ? VSHM_VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	publish(e, &h, 1, 1);
}

static void hd_good_then_bad(struct hostile_env *e)
{
	/* Chain 0 is valid; chain 1 points into the header. */
	uint16_t h[2] = { 0, 1 };

	set_desc(e, &desc(e)[0], e->buf, 8, 0, 0);
	set_desc(e, &desc(e)[1], 8, 8, 0, 0);
	publish(e, h, 2, 2);
}

/* Total > 4 GiB: 80 descriptors of 62 MiB each, all in the driver area. */
static void hd_over_4g(struct hostile_env *e)
{
	struct vshm_vring_desc *tab = (void *)(e->w.base + e->buf);
	uint32_t each = 62u << 20;
	uint16_t h = 0;

	for (unsigned i = 0; i < 80; i++)
		set_desc(e, &tab[i], e->w.drv_lo + 4096, each,
			 i < 79 ? VSHM_VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	set_desc(e, &desc(e)[0], e->buf, 80 * 16, VSHM_VRING_DESC_F_INDIRECT, 0);
	publish(e, &h, 1, 1);
}

static const struct hostile_drv_case drv_cases[] = {
	/* name, writes, -, reason, features, good, segment limit, push, num, window */
	{ "descriptor loop 0->1->0", hd_loop, NULL, "longer than the queue", F_EV, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "descriptor pointing at itself", hd_self_loop, NULL, "longer than the queue", F_EV, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "indirect chain longer than the queue", hd_too_long_indirect, NULL, "longer than the queue", F_ALL, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "address+length wraps 2^64", hd_wrap, NULL, "outside", F_EV, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "length 4 GiB-1 at the window end", hd_wrap_len, NULL, "outside", F_EV, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "address at the window end", hd_outside, NULL, "outside", F_EV, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "buffer straddling the window end", hd_straddle_end, NULL, "outside", F_EV, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "writable buffer in the header", hd_header, NULL, "outside", F_EV, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "writable buffer in the mailbox", hd_mailbox, NULL, "outside", F_EV, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "buffer straddling the driver-area start", hd_straddle_drv_start, NULL, "outside", F_EV, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "nested indirect table", hd_nested_indirect, NULL, "nested", F_ALL, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "zero-length indirect table", hd_zero_indirect, NULL, "multiple of 16", F_ALL, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "indirect table size not a multiple of 16", hd_odd_indirect, NULL, "multiple of 16", F_ALL, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "INDIRECT|NEXT", hd_indirect_next, NULL, "with NEXT", F_ALL, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "indirect table in the mailbox", hd_indirect_outside, NULL, "indirect table outside", F_ALL, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "indirect descriptor mid-chain", hd_indirect_midchain, NULL, "inside a chain", F_ALL, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "indirect next past the table", hd_indirect_next_oob, NULL, "out of range", F_ALL, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "indirect without INDIRECT_DESC negotiated", hd_nested_indirect, NULL, "without INDIRECT_DESC", F_EV, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "avail idx jumps past the queue size", hd_avail_jump, NULL, "queue size", F_EV, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "avail idx moves backwards", hd_avail_backwards, NULL, "queue size", F_EV, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "avail entry names descriptor num", hd_head_oob, NULL, "out of range", F_EV, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "next names descriptor num", hd_next_oob, NULL, "out of range", F_EV, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "readable after writable", hd_read_after_write, NULL, "after a writable", F_EV, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "more segments than the device accepts", hd_too_many_segments, NULL, "more buffers", F_EV, 0, 4, PUSH_EACH, QNUM, 0 },
	{ "valid chain, then one into the header", hd_good_then_bad, NULL, "outside", F_EV, 1, 256, PUSH_EACH, QNUM, 0 },
	{ "chain totalling more than 4 GiB", hd_over_4g, NULL, "4 GiB", F_ALL, 0, 256, PUSH_EACH, 128, 128u << 20 },
};

/* The same harness accepts a well-formed chain (it is not vacuous). */
static void test_driver_control(void)
{
	struct hostile_env e;
	struct vshm_dev_vq *v;
	struct vshm_chain c;
	struct vshm_iov iov[4];
	struct vshm_vring_desc *tab;
	uint16_t h[2] = { 0, 1 };

	hostile_dev_setup(&e, &v, &ring, 0, QNUM, F_ALL);
	tab = (void *)(e.w.base + e.buf);
	set_desc(&e, &tab[0], e.buf + 4096, 8, VSHM_VRING_DESC_F_NEXT, 1);
	set_desc(&e, &tab[1], e.buf + 8192, 8, VSHM_VRING_DESC_F_WRITE, 0);
	set_desc(&e, &desc(&e)[0], e.buf, 32, VSHM_VRING_DESC_F_INDIRECT, 0);
	set_desc(&e, &desc(&e)[1], e.w.size - 8, 8, VSHM_VRING_DESC_F_WRITE, 0);
	publish(&e, h, 2, 2);
	is(vshm_dev_vq_pop(v, &c, iov, 4), 1, "control: a valid indirect chain pops");
	is(vshm_dev_vq_pop(v, &c, iov, 4), 1, "control: a buffer ending exactly at the window end pops");
	ok(!vshm_dev_vq_broken(v), "control: queue healthy");
	vshm_dev_vq_destroy(v);
	hostile_env_fini(&e);
}

/* ======================================================================== */
/* Hostile device vs our driver side                                        */

/* The hostile device writes used element @slot and publishes used->idx. */
static void dev_write_used(struct hostile_env *e, unsigned slot, uint32_t id, uint32_t len, uint16_t idx)
{
	used(e)->ring[slot % e->l.num].id = id;
	used(e)->ring[slot % e->l.num].len = len;
	vshm_store_release(&used(e)->idx, idx);
}

static void hv_id_oob(struct hostile_drv_env *de) { dev_write_used(&de->e, 0, QNUM, 0, 1); }
static void hv_id_huge(struct hostile_drv_env *de) { dev_write_used(&de->e, 0, 0xffffffffu, 0, 1); }
static void hv_never_issued(struct hostile_drv_env *de) { dev_write_used(&de->e, 0, 7, 0, 1); }
static void hv_unpublished(struct hostile_drv_env *de) { dev_write_used(&de->e, 0, 4, 0, 1); }
static void hv_mid_chain(struct hostile_drv_env *de) { dev_write_used(&de->e, 0, (uint32_t)de->ids[0] + 1, 0, 1); }
static void hv_len_too_big(struct hostile_drv_env *de) { dev_write_used(&de->e, 0, de->ids[0], 101, 1); }
static void hv_len_on_readonly(struct hostile_drv_env *de) { dev_write_used(&de->e, 0, de->ids[2], 1, 1); }
static void hv_len_huge(struct hostile_drv_env *de) { dev_write_used(&de->e, 0, de->ids[1], 0xffffffffu, 1); }
static void hv_idx_jump(struct hostile_drv_env *de) { dev_write_used(&de->e, 0, de->ids[0], 0, (uint16_t)(QNUM + 1)); }
static void hv_idx_past_inflight(struct hostile_drv_env *de)
{
	/* three in flight, device claims four completions */
	used(&de->e)->ring[0].id = de->ids[0];
	used(&de->e)->ring[1].id = de->ids[1];
	used(&de->e)->ring[2].id = de->ids[2];
	dev_write_used(&de->e, 3, de->ids[0], 0, 4);
}
static void hv_duplicate(struct hostile_drv_env *de)
{
	/* complete A twice in two used entries */
	used(&de->e)->ring[0].id = de->ids[0];
	used(&de->e)->ring[0].len = 10;
	dev_write_used(&de->e, 1, de->ids[0], 10, 2);
}
static void hv_idx_backwards(struct hostile_drv_env *de) { dev_write_used(&de->e, 0, de->ids[0], 0, 0xffff); }

static const struct hostile_dev_case dev_cases[] = {
	/* name, writes, -, reason, good, - */
	{ "used id = queue size", hv_id_oob, NULL, "out of range", 0, 0 },
	{ "used id = 2^32-1", hv_id_huge, NULL, "out of range", 0, 0 },
	{ "used id never issued", hv_never_issued, NULL, "not a chain in flight", 0, 0 },
	{ "used id added but never published", hv_unpublished, NULL, "not a chain in flight", 0, 0 },
	{ "used id of a mid-chain descriptor", hv_mid_chain, NULL, "not a chain in flight", 0, 0 },
	{ "used len one more than posted", hv_len_too_big, NULL, "length larger", 0, 0 },
	{ "used len on a read-only chain", hv_len_on_readonly, NULL, "length larger", 0, 0 },
	{ "used len 2^32-1", hv_len_huge, NULL, "length larger", 0, 0 },
	{ "used idx jumps past the queue size", hv_idx_jump, NULL, "past the buffers in flight", 0, 0 },
	{ "used idx counts more than in flight", hv_idx_past_inflight, NULL, "past the buffers in flight", 0, 0 },
	{ "duplicate completion", hv_duplicate, NULL, "not a chain in flight", 1, 0 },
	{ "used idx moves backwards", hv_idx_backwards, NULL, "past the buffers in flight", 0, 0 },
};

/* Control: the same setup harvests honest completions. */
static void test_device_control(void)
{
	struct hostile_drv_env de;

	hostile_drv_setup(&de, &ring);
	used(&de.e)->ring[0].id = de.ids[1];
	used(&de.e)->ring[0].len = 50;
	dev_write_used(&de.e, 1, de.ids[0], 100, 2);
	hostile_harvested(&de, 1, 50, "out-of-order completion with the full length");
	hostile_harvested(&de, 0, 100, "second completion");
	ok(!vshm_drv_vq_broken(de.d), "control: queue healthy");
	hostile_drv_fini(&de);
}

int main(void)
{
	hostile_driver_cases(&ring, drv_cases, sizeof(drv_cases) / sizeof(drv_cases[0]));
	test_driver_control();
	hostile_device_cases(&ring, dev_cases, sizeof(dev_cases) / sizeof(dev_cases[0]));
	test_device_control();
	return tap_done();
}
