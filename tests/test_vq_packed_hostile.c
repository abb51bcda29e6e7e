// SPDX-License-Identifier: MIT
/*
 * Packed ring against a hostile peer, both directions.
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

#define F_PACKED	(1ull << VSHM_F_RING_PACKED)
#define F_EV		(1ull << VSHM_F_EVENT_IDX)
#define F_IND		(1ull << VSHM_F_INDIRECT_DESC)

#define F_ALL		(F_PACKED | F_EV | F_IND)
#define F_NOIND		(F_PACKED | F_EV)

/* The packed descriptor (virtio 1.x 2.8.13), as a hostile peer writes it. */
struct tdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t id;
	uint16_t flags;
};

#define NEXT	VSHM_VRING_DESC_F_NEXT
#define WRITE	VSHM_VRING_DESC_F_WRITE
#define INDIR	VSHM_VRING_DESC_F_INDIRECT
#define AV0	(1u << 7)		/* available in lap 0 (wrap counter 1) */
#define AV1	(1u << 15)		/* available in lap 1 (wrap counter 0) */
#define USED0	((1u << 7) | (1u << 15))	/* used in lap 0 */

/* The ring as the hostile side writes it. */
static struct tdesc *desc(struct hostile_env *e)
{
	return (struct tdesc *)(void *)(e->w.base + e->l.desc);
}

/* ======================================================================== */
/* Hostile driver vs our device side                                        */

/* Write a descriptor, flags last with release (as a real driver would). */
static void put(struct tdesc *d, uint64_t addr, uint32_t len, uint16_t id, uint16_t flags)
{
	d->addr = addr;
	d->len = len;
	d->id = id;
	vshm_store_release(&d->flags, flags);
}

/* An indirect table entry (only WRITE means something there). */
static void tab_put(struct tdesc *d, uint64_t addr, uint32_t len, uint16_t flags)
{
	d->addr = addr;
	d->len = len;
	d->id = 0;
	d->flags = flags;
}

static struct tdesc *table(struct hostile_env *e)
{
	return (struct tdesc *)(void *)(e->w.base + e->buf);
}

static void hd_too_long(struct hostile_env *e)
{
	/* NEXT on every descriptor of the ring: the chain would run into
	 * its own head (which does not look available then, but the hop
	 * limit comes first). */
	for (unsigned i = 0; i < e->l.num; i++)
		put(&desc(e)[i], e->buf, 16, 0, AV0 | NEXT);
}

static void hd_too_long_indirect(struct hostile_env *e)
{
	for (unsigned i = 0; i <= e->l.num; i++)
		tab_put(&table(e)[i], e->buf + 4096, 8, 0);
	put(&desc(e)[0], e->buf, (e->l.num + 1) * 16, 0, AV0 | INDIR);
}

static void hd_wrap(struct hostile_env *e) { put(&desc(e)[0], UINT64_MAX - 15, 32, 0, AV0); }
static void hd_wrap_len(struct hostile_env *e) { put(&desc(e)[0], e->w.size - 16, UINT32_MAX, 0, AV0); }
static void hd_outside(struct hostile_env *e) { put(&desc(e)[0], e->w.size, 1, 0, AV0); }
static void hd_straddle_end(struct hostile_env *e) { put(&desc(e)[0], e->w.size - 8, 9, 0, AV0); }
static void hd_header(struct hostile_env *e) { put(&desc(e)[0], 0, 64, 0, AV0 | WRITE); }
static void hd_mailbox(struct hostile_env *e) { put(&desc(e)[0], VSHM_MBOX_OFF + 128, 8, 0, AV0 | WRITE); }
static void hd_straddle_drv_start(struct hostile_env *e) { put(&desc(e)[0], VSHM_DRV_AREA_OFF - 4, 8, 0, AV0); }

static void hd_nested_indirect(struct hostile_env *e)
{
	tab_put(&table(e)[0], e->buf + 64, 32, INDIR);
	put(&desc(e)[0], e->buf, 16, 0, AV0 | INDIR);
}

static void hd_zero_indirect(struct hostile_env *e) { put(&desc(e)[0], e->buf, 0, 0, AV0 | INDIR); }
static void hd_odd_indirect(struct hostile_env *e) { put(&desc(e)[0], e->buf, 24, 0, AV0 | INDIR); }

static void hd_misaligned_indirect(struct hostile_env *e)
{
	tab_put(&table(e)[1], e->buf + 4096, 8, 0);
	put(&desc(e)[0], e->buf + 8, 16, 0, AV0 | INDIR);
}

static void hd_indirect_next(struct hostile_env *e)
{
	tab_put(&table(e)[0], e->buf + 4096, 8, 0);
	put(&desc(e)[1], e->buf + 4096, 8, 0, AV0);
	put(&desc(e)[0], e->buf, 16, 0, AV0 | INDIR | NEXT);
}

static void hd_indirect_outside(struct hostile_env *e) { put(&desc(e)[0], VSHM_MBOX_OFF, 64, 0, AV0 | INDIR); }

static void hd_indirect_midchain(struct hostile_env *e)
{
	tab_put(&table(e)[0], e->buf + 4096, 8, 0);
	put(&desc(e)[1], e->buf, 16, 0, AV0 | INDIR);
	put(&desc(e)[0], e->buf + 4096, 8, 0, AV0 | NEXT);
}

static void hd_read_after_write(struct hostile_env *e)
{
	put(&desc(e)[1], e->buf + 64, 8, 0, AV0);
	put(&desc(e)[0], e->buf, 8, 0, AV0 | WRITE | NEXT);
}

static void hd_read_after_write_indirect(struct hostile_env *e)
{
	tab_put(&table(e)[0], e->buf + 4096, 8, WRITE);
	tab_put(&table(e)[1], e->buf + 8192, 8, 0);
	put(&desc(e)[0], e->buf, 32, 0, AV0 | INDIR);
}

static void hd_too_many_segments(struct hostile_env *e)
{
	/* 7 descriptors; the device under test accepts at most 4 (seg_max). */
	for (unsigned i = 7; i-- > 0;)
		put(&desc(e)[i], e->buf + i * 64, 8, 0, AV0 | (i < 6 ? NEXT : 0));
}

static void hd_good_then_bad(struct hostile_env *e)
{
	/* Chain 0 is valid; chain 1 points into the header. */
	put(&desc(e)[0], e->buf, 8, 0, AV0);
	put(&desc(e)[1], 8, 8, 1, AV0);
}

/* Total > 4 GiB: 80 descriptors of 62 MiB each, all in the driver area. */
static void hd_over_4g(struct hostile_env *e)
{
	uint32_t each = 62u << 20;

	for (unsigned i = 0; i < 80; i++)
		tab_put(&table(e)[i], e->w.drv_lo + 4096, each, 0);
	put(&desc(e)[0], e->buf, 80 * 16, 0, AV0 | INDIR);
}

static void hd_id_num(struct hostile_env *e) { put(&desc(e)[0], e->buf, 8, (uint16_t)e->l.num, AV0); }
static void hd_id_huge(struct hostile_env *e) { put(&desc(e)[0], e->buf, 8, 0xffff, AV0); }

static void hd_id_in_flight(struct hostile_env *e)
{
	/* Two chains with the same buffer id; the first is still held. */
	put(&desc(e)[0], e->buf, 8, 2, AV0);
	put(&desc(e)[1], e->buf + 64, 8, 2, AV0);
}

static void hd_id_in_flight_indirect(struct hostile_env *e)
{
	tab_put(&table(e)[0], e->buf + 4096, 8, 0);
	put(&desc(e)[0], e->buf, 16, 5, AV0 | INDIR);
	put(&desc(e)[1], e->buf + 64, 8, 5, AV0);
}

static void hd_next_not_avail(struct hostile_env *e)
{
	/* The second descriptor carries lap-1 bits in lap 0. */
	put(&desc(e)[1], e->buf + 64, 8, 0, AV1);
	put(&desc(e)[0], e->buf, 8, 0, AV0 | NEXT);
}

static void hd_next_used(struct hostile_env *e)
{
	/* The second descriptor looks used (AVAIL = USED). */
	put(&desc(e)[1], e->buf + 64, 8, 0, USED0);
	put(&desc(e)[0], e->buf, 8, 0, AV0 | NEXT);
}

/* Stage 1 of the wrap cases: seven single chains, slots 0..6 of lap 0. */
static void hd_seven(struct hostile_env *e)
{
	for (unsigned i = 0; i < 7; i++)
		put(&desc(e)[i], e->buf + i * 64, 8, (uint16_t)i, AV0);
}

static void hd_wrap_no_flip(struct hostile_env *e)
{
	/* A chain from slot 7 into slot 0 marked as in lap 0 again. */
	put(&desc(e)[0], e->buf + 128, 8, 3, AV0);
	put(&desc(e)[7], e->buf + 64, 8, 0, AV0 | NEXT);
}

static void hd_wrap_flip(struct hostile_env *e)
{
	/* The same chain done right: slot 0 carries lap 1's bits. */
	put(&desc(e)[0], e->buf + 128, 8, 3, AV1 | WRITE);
	put(&desc(e)[7], e->buf + 64, 8, 0, AV0 | NEXT);
}

static void hd_whole_ring(struct hostile_env *e)
{
	/* One chain over all eight slots; the device holds it. */
	for (unsigned i = e->l.num; i-- > 0;)
		put(&desc(e)[i], e->buf + i * 64, 8, 0, AV0 | (i + 1 < e->l.num ? NEXT : 0));
}

static void hd_lap_ahead(struct hostile_env *e)
{
	/* Slot 0 again, for lap 1, before the device completed lap 0. */
	put(&desc(e)[0], e->buf, 8, 1, AV1);
}

static const struct hostile_drv_case drv_cases[] = {
	/* name, writes, second stage, reason (NULL: accepted), features, good, segment limit, push, num, window */
	{ "NEXT on every descriptor of the ring", hd_too_long, NULL, "longer than the queue", F_NOIND, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "indirect table longer than the queue", hd_too_long_indirect, NULL, "longer than the queue", F_ALL, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "address+length wraps 2^64", hd_wrap, NULL, "outside", F_NOIND, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "length 4 GiB-1 at the window end", hd_wrap_len, NULL, "outside", F_NOIND, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "address at the window end", hd_outside, NULL, "outside", F_NOIND, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "buffer straddling the window end", hd_straddle_end, NULL, "outside", F_NOIND, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "writable buffer in the header", hd_header, NULL, "outside", F_NOIND, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "writable buffer in the mailbox", hd_mailbox, NULL, "outside", F_NOIND, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "buffer straddling the driver-area start", hd_straddle_drv_start, NULL, "outside", F_NOIND, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "nested indirect table", hd_nested_indirect, NULL, "nested", F_ALL, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "zero-length indirect table", hd_zero_indirect, NULL, "multiple of 16", F_ALL, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "indirect table size not a multiple of 16", hd_odd_indirect, NULL, "multiple of 16", F_ALL, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "indirect table not 16-byte aligned", hd_misaligned_indirect, NULL, "16-byte aligned", F_ALL, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "INDIRECT|NEXT", hd_indirect_next, NULL, "with NEXT", F_ALL, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "indirect table in the mailbox", hd_indirect_outside, NULL, "indirect table outside", F_ALL, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "indirect descriptor mid-chain", hd_indirect_midchain, NULL, "inside a chain", F_ALL, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "indirect without INDIRECT_DESC negotiated", hd_nested_indirect, NULL, "without INDIRECT_DESC", F_NOIND, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "readable after writable", hd_read_after_write, NULL, "after a writable", F_NOIND, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "readable after writable in a table", hd_read_after_write_indirect, NULL, "after a writable", F_ALL, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "more segments than the device accepts", hd_too_many_segments, NULL, "more buffers", F_NOIND, 0, 4, PUSH_EACH, QNUM, 0 },
	{ "valid chain, then one into the header", hd_good_then_bad, NULL, "outside", F_NOIND, 1, 256, PUSH_EACH, QNUM, 0 },
	{ "chain totalling more than 4 GiB", hd_over_4g, NULL, "4 GiB", F_ALL, 0, 256, PUSH_EACH, 128, 128u << 20 },
	{ "buffer id = queue size", hd_id_num, NULL, "id out of range", F_NOIND, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "buffer id 0xffff", hd_id_huge, NULL, "id out of range", F_NOIND, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "buffer id already in flight", hd_id_in_flight, NULL, "already in flight", F_NOIND, 1, 256, PUSH_NEVER, QNUM, 0 },
	{ "buffer id in flight through a table", hd_id_in_flight_indirect, NULL, "already in flight", F_ALL, 1, 256, PUSH_NEVER, QNUM, 0 },
	{ "chain continues into a lap-1 descriptor", hd_next_not_avail, NULL, "not available", F_NOIND, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "chain continues into a used descriptor", hd_next_used, NULL, "not available", F_NOIND, 0, 256, PUSH_EACH, QNUM, 0 },
	{ "chain across the ring end, wrap not flipped", hd_seven, hd_wrap_no_flip, "not available", F_NOIND, 7, 256, PUSH_EACH, QNUM, 0 },
	{ "chain across the ring end, wrap flipped", hd_seven, hd_wrap_flip, NULL, F_NOIND, 8, 256, PUSH_EACH, QNUM, 0 },
	{ "a lap ahead of the device", hd_whole_ring, hd_lap_ahead, "more descriptors in flight", F_NOIND, 1, 256, PUSH_NEVER, QNUM, 0 },
	{ "the whole ring as one chain", hd_whole_ring, NULL, NULL, F_NOIND, 1, 256, PUSH_EACH, QNUM, 0 },
};

/*
 * With VSHM_CORPUS_DIR set, each hostile image becomes a seed for
 * fuzz/fuzz_vq_packed_dev: 5 parameter bytes (ring size, features and
 * hold, segment limit, image length), the driver area as stage 1 wrote it,
 * then one 17-byte record (slot, descriptor) per ring slot stage 2 rewrote.
 */
static size_t seed_len(const struct hostile_env *e)
{
	return (size_t)(e->buf - e->w.drv_lo) + 4096 + 256;
}

static void write_seed(struct hostile_env *e, const struct hostile_drv_case *c,
		       const uint8_t *img, const struct tdesc *before)
{
	const char *dir = getenv("VSHM_CORPUS_DIR");
	size_t len = seed_len(e);
	uint8_t hdr[5] = { 0, 0, (uint8_t)(c->max_iov - 1), (uint8_t)len, (uint8_t)(len >> 8) };
	char path[512];
	FILE *fp;

	if (!dir)
		return;
	while ((1u << hdr[0]) < c->num)
		hdr[0]++;
	hdr[1] = (uint8_t)(((c->features >> VSHM_F_EVENT_IDX) & 1) |
			   (((c->features >> VSHM_F_INDIRECT_DESC) & 1) << 1) |
			   (c->push == PUSH_NEVER ? 4 : 0));
	snprintf(path, sizeof(path), "%s/hostile-driver-%02u", dir, e->i + 1);
	fp = fopen(path, "wb");
	if (!fp)
		return;
	fwrite(hdr, 1, sizeof(hdr), fp);
	fwrite(img, 1, len, fp);
	for (unsigned s = 0; before && s < c->num; s++) {
		uint8_t slot = (uint8_t)s;

		if (!memcmp(&before[s], &desc(e)[s], sizeof(*before)))
			continue;
		fwrite(&slot, 1, 1, fp);
		fwrite(&desc(e)[s], 1, sizeof(*before), fp);
	}
	fclose(fp);
}

/* Stage 0: the image stage 1 wrote; 1: the ring before stage 2; 2: after. */
static void save_seed(struct hostile_env *e, const struct hostile_drv_case *c, int stage)
{
	static uint8_t img[1 << 16];
	static struct tdesc before[QNUM];

	if (seed_len(e) > sizeof(img))
		return;
	if (stage == 0)
		memcpy(img, e->w.base + e->w.drv_lo, seed_len(e));
	if (stage == 0 && !c->again)
		write_seed(e, c, img, NULL);
	if (stage == 1)
		memcpy(before, desc(e), sizeof(before));
	if (stage == 2)
		write_seed(e, c, img, before);
}

/*
 * hostile_post's chains: A = 1 out + 1 in (100 writable bytes, slots 0-1),
 * B = 1 in of 50 bytes (slot 2), C = 1 out (slot 3).  Chain D is added but
 * never published (slot 4).  The buffer id is in the last descriptor of
 * each chain.
 */
static int posted(struct hostile_drv_env *de)
{
	for (unsigned k = 0; k < 4; k++)
		de->ids[k] = desc(&de->e)[k + 1].id;
	return 0;
}

static const struct hostile_ring ring = {
	.layout = vshm_vq_layout_packed, .layout_arg = 4, .seed = save_seed,
	.drv_features = F_ALL, .num = QNUM, .a_flags = VSHM_ADD_NO_INDIRECT,
	.late = { 0, 8, 0 }, .posted = posted,
};

/* The same harness accepts well-formed chains (it is not vacuous). */
static void test_driver_control(void)
{
	struct hostile_env e;
	struct vshm_dev_vq *v;
	struct vshm_chain c;
	struct vshm_iov iov[4];
	struct tdesc *tab;

	hostile_dev_setup(&e, &v, &ring, 0, QNUM, F_ALL);
	tab = table(&e);
	tab_put(&tab[0], e.buf + 4096, 8, NEXT);	/* NEXT ignored in a table */
	tab_put(&tab[1], e.buf + 8192, 8, WRITE);
	put(&desc(&e)[0], e.buf, 32, 3, AV0 | INDIR | WRITE);	/* WRITE ignored */
	put(&desc(&e)[1], e.w.size - 8, 8, 6, AV0 | WRITE);
	put(&desc(&e)[3], e.buf, 0, 1, AV0 | WRITE);
	put(&desc(&e)[2], e.buf, 8, 0xffff, AV0 | NEXT);	/* id only from the last */
	is(vshm_dev_vq_pop(v, &c, iov, 4), 1, "control: a valid indirect chain pops");
	ok(c.head == 3 && c.indirect && c.nout == 1 && c.nin == 1, "control: its id and shape");
	is(vshm_dev_vq_pop(v, &c, iov, 4), 1, "control: a buffer ending exactly at the window end pops");
	is(vshm_dev_vq_pop(v, &c, iov, 4), 1, "control: a chain ending in a zero-length buffer pops");
	ok(c.head == 1 && c.nout == 1 && c.nin == 0 && c.in_bytes == 0,
	   "control: the id is the last descriptor's, the empty buffer is skipped");
	is(vshm_dev_vq_pop(v, &c, iov, 4), 0, "control: then the ring is empty");
	ok(!vshm_dev_vq_broken(v), "control: queue healthy");
	vshm_dev_vq_destroy(v);
	hostile_env_fini(&e);
}

/* ======================================================================== */
/* Hostile device vs our driver side                                        */

/*
 * A hostile device's writes, as data: up to four used descriptors, each
 * (slot, id, len, flags).  An id below 4 names chain A..D; others are
 * literal (minus 4).
 */
struct used_write { uint8_t slot; uint32_t id; uint32_t len; uint16_t flags; };
#define ID(x)	((uint32_t)(x) + 4)	/* a literal id */

static const struct {
	const char *name;
	const char *why;
	unsigned good_first;
	unsigned n;
	struct used_write w[4];
} dev_cases[] = {
	{ "used id = queue size", "out of range", 0, 1, { { 0, ID(QNUM), 0, USED0 } } },
	{ "used id = 0xffff", "out of range", 0, 1, { { 0, ID(0xffff), 0, USED0 } } },
	{ "used id never issued", "not a chain in flight", 0, 1, { { 0, ID(7), 0, USED0 } } },
	{ "used id added but never published", "not a chain in flight", 0, 1, { { 0, 3, 0, USED0 } } },
	{ "used len one more than posted", "length larger", 0, 1, { { 0, 0, 101, USED0 } } },
	{ "used len on a read-only chain", "length larger", 0, 1, { { 0, 2, 1, USED0 } } },
	{ "used len 2^32-1", "length larger", 0, 1, { { 0, 1, 0xffffffffu, USED0 } } },
	{ "duplicate completion", "not a chain in flight", 1, 2,
	  { { 0, 0, 10, USED0 }, { 2, 0, 10, USED0 } } },
	{ "duplicate completion, out of order", "not a chain in flight", 2, 3,
	  { { 0, 1, 0, USED0 }, { 1, 2, 0, USED0 }, { 2, 1, 0, USED0 } } },
	{ "used flags of the previous lap", "wrong wrap", 0, 1, { { 0, 0, 0, 0 } } },
	{ "USED set, AVAIL clear", "wrong wrap", 0, 1, { { 0, 0, 0, AV1 } } },
	{ "used flags of the previous lap after a good one", "wrong wrap", 1, 2,
	  { { 0, 1, 50, USED0 }, { 1, 0, 0, 0 } } },
	{ "used descriptor past everything in flight", "no buffer in flight", 3, 4,
	  { { 0, 2, 0, USED0 }, { 1, 1, 0, USED0 }, { 2, 0, 0, USED0 }, { 4, 0, 0, USED0 } } },
};

static void dev_write(struct hostile_drv_env *de, const struct used_write *u)
{
	struct tdesc *d = &desc(&de->e)[u->slot];

	d->id = (uint16_t)(u->id < 4 ? de->ids[u->id] : u->id - 4);
	d->len = u->len;
	vshm_store_release(&d->flags, u->flags);
}

/*
 * With VSHM_CORPUS_DIR_DRV set, each case becomes a program for
 * fuzz/fuzz_vq_packed_drv (ops documented there): the setup above, then
 * the case's used descriptors, then harvests.
 */
static void save_drv_seed(struct hostile_drv_env *de, unsigned i)
{
	const char *dir = getenv("VSHM_CORPUS_DIR_DRV");
	uint8_t p[128];
	size_t n = 0;
	char path[512];
	FILE *fp;

	if (!dir)
		return;
	p[n++] = 3 | (3 << 4);		/* 8 entries, EVENT_IDX | INDIRECT_DESC */
	/* add A (1+1, sizes 64/100 ~ b = 50: 50, 100), B (0+1), C (1+0) */
	p[n++] = 0; p[n++] = 0x80 | 1 | (1 << 2); p[n++] = 50;
	p[n++] = 0; p[n++] = 1 << 2; p[n++] = 50;
	p[n++] = 0; p[n++] = 1; p[n++] = 10;
	p[n++] = 1; p[n++] = 0; p[n++] = 0;
	p[n++] = 0; p[n++] = 1; p[n++] = 10;
	for (unsigned k = 0; k < dev_cases[i].n; k++) {
		const struct used_write *u = &dev_cases[i].w[k];
		uint32_t id = u->id < 4 ? de->ids[u->id] : u->id - 4;

		p[n++] = 2;
		p[n++] = u->slot;
		p[n++] = (uint8_t)(u->flags == USED0 ? 0 : u->flags == 0 ? 1 : 3);
		p[n++] = (uint8_t)id;
		p[n++] = (uint8_t)(id >> 8);
		memcpy(&p[n], &u->len, 4);
		n += 4;
	}
	p[n++] = 4; p[n++] = 7; p[n++] = 0;
	snprintf(path, sizeof(path), "%s/hostile-device-%02u", dir, i + 1);
	fp = fopen(path, "wb");
	if (!fp)
		return;
	fwrite(p, 1, n, fp);
	fclose(fp);
}

/* The hostile device of case de->e.i: its used descriptors, as data. */
static void hv_play(struct hostile_drv_env *de)
{
	save_drv_seed(de, de->e.i);
	for (unsigned k = 0; k < dev_cases[de->e.i].n; k++)
		dev_write(de, &dev_cases[de->e.i].w[k]);
}

static void test_hostile_device(void)
{
	for (unsigned i = 0; i < sizeof(dev_cases) / sizeof(dev_cases[0]); i++) {
		struct hostile_dev_case c = {
			dev_cases[i].name, hv_play, NULL, dev_cases[i].why, dev_cases[i].good_first, 0,
		};

		hostile_device_case(&ring, &c, i);
	}
}

/* Control: the same setup harvests honest completions, out of order. */
static void test_device_control(void)
{
	struct hostile_drv_env de;
	void *ck;
	uint32_t len;
	struct used_write honest[3] = {
		{ 0, 1, 50, USED0 },	/* B first, in slot 0 (A's head) */
		{ 1, 2, 0, USED0 },	/* then C, in slot 1 */
		{ 2, 0, 100, USED0 },	/* then A, in slot 2 */
	};

	hostile_drv_setup(&de, &ring);
	for (unsigned k = 0; k < 3; k++)
		dev_write(&de, &honest[k]);
	hostile_harvested(&de, 1, 50, "out-of-order completion with the full length");
	hostile_harvested(&de, 2, 0, "second completion (in the middle of A's slots)");
	hostile_harvested(&de, 0, 100, "third completion");
	is(vshm_drv_vq_harvest(de.d, &ck, &len), 0, "control: then nothing (D never published)");
	ok(!vshm_drv_vq_broken(de.d), "control: queue healthy");
	hostile_drv_fini(&de);
}

int main(void)
{
	hostile_driver_cases(&ring, drv_cases, sizeof(drv_cases) / sizeof(drv_cases[0]));
	test_driver_control();
	test_hostile_device();
	test_device_control();
	return tap_done();
}
