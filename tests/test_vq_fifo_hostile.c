// SPDX-License-Identifier: MIT
/*
 * FIFO ring against a hostile peer, both directions.
 *
 * Each case builds a fresh window and queue, lets the hostile side write its
 * ring words and frames by hand, and checks that our side refuses them:
 * -EIO, the queue broken for good with the expected reason, and nothing
 * touched outside the window (tests/vq_hostile.h: the side under test has
 * the header and mailbox PROT_NONE and guard pages around its mapping).
 * Every outstanding request of a broken driver queue comes back once
 * through detach.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

#include <vshm/vq.h>
#include "barrier.h"
#include "tap.h"
#include "vq_hostile.h"

#define QNUM	8u
#define RING	4096u

#define FIFO	(1ull << VSHM_F_FIFO_RING)
#define CANARY	0x5a

/* The D2V and V2D control blocks and data areas, as the hostile side sees them. */
static struct vshm_fifo_ctrl *dc(struct hostile_env *e)
{
	return (struct vshm_fifo_ctrl *)(void *)(e->w.base + e->l.desc);
}

static struct vshm_fifo_ctrl *vc(struct hostile_env *e)
{
	return (struct vshm_fifo_ctrl *)(void *)(e->w.base + e->l.avail);
}

static uint8_t *dd(struct hostile_env *e)
{
	return e->w.base + e->l.desc + VSHM_FIFO_CTRL_SIZE;
}

static uint8_t *vd(struct hostile_env *e)
{
	return e->w.base + e->l.avail + VSHM_FIFO_CTRL_SIZE;
}

static void put(uint8_t *data, uint32_t pos, uint32_t len, uint16_t type, uint16_t id,
		uint32_t a, uint32_t b)
{
	struct vshm_fifo_frame *f = (void *)(data + (pos & (RING - 1)));

	f->len = len;
	f->type = type;
	f->id = id;
	f->a = a;
	f->b = b;
}

/* ======================================================================== */
/* Hostile driver vs our device side                                        */

/* A well-formed REQUEST at the producer position (PAD first if needed). */
static void hd_req(struct hostile_env *e, uint16_t id, uint32_t out, uint32_t in)
{
	uint32_t len = (16 + out + 15) & ~15u, rest = RING - (e->pos & (RING - 1));

	if (rest < len) {
		put(dd(e), e->pos, rest, VSHM_FIFO_PAD, 0, 0, 0);
		e->pos += rest;
	}
	put(dd(e), e->pos, len, VSHM_FIFO_REQUEST, id, out, in);
	e->pos += len;
}

static void hd_raw(struct hostile_env *e, uint32_t len, uint16_t type, uint16_t id, uint32_t a, uint32_t b,
		   uint32_t advance)
{
	put(dd(e), e->pos, len, type, id, a, b);
	e->pos += advance;
}

static void hd_publish(struct hostile_env *e, uint32_t tail)
{
	vshm_store_release(&dc(e)->tail, tail);
}

/* What the driver writes first: zeroed blocks, the ring sizes; canaries in scratch. */
static void prepare(struct hostile_env *e)
{
	memset(dc(e), 0, VSHM_FIFO_CTRL_SIZE);
	memset(vc(e), 0, VSHM_FIFO_CTRL_SIZE);
	dc(e)->size = RING;
	vc(e)->size = RING;
	memset(e->w.base + e->buf, CANARY, 65536);
}

static void hd_tail_jump(struct hostile_env *e) { hd_req(e, 0, 8, 8); hd_publish(e, RING + 16); }
static void hd_tail_backwards(struct hostile_env *e) { hd_req(e, 0, 8, 8); hd_publish(e, (uint32_t)-16); }
static void hd_tail_unaligned(struct hostile_env *e) { hd_req(e, 0, 8, 8); hd_publish(e, 8); }
static void hd_len_zero(struct hostile_env *e) { hd_raw(e, 0, VSHM_FIFO_REQUEST, 0, 0, 0, 16); hd_publish(e, e->pos); }
static void hd_len_odd(struct hostile_env *e) { hd_raw(e, 24, VSHM_FIFO_REQUEST, 0, 8, 0, 32); hd_publish(e, e->pos); }
static void hd_len_past_tail(struct hostile_env *e) { hd_raw(e, 64, VSHM_FIFO_REQUEST, 0, 48, 0, 32); hd_publish(e, e->pos); }
static void hd_out_mismatch(struct hostile_env *e) { hd_raw(e, 32, VSHM_FIFO_REQUEST, 0, 100, 0, 32); hd_publish(e, e->pos); }
static void hd_out_short(struct hostile_env *e) { hd_raw(e, 48, VSHM_FIFO_REQUEST, 0, 8, 0, 48); hd_publish(e, e->pos); }
static void hd_out_huge(struct hostile_env *e) { hd_raw(e, 32, VSHM_FIFO_REQUEST, 0, 0xfffffff8u, 0, 32); hd_publish(e, e->pos); }
static void hd_over_half(struct hostile_env *e) { hd_req(e, 0, 2040, 0); hd_publish(e, e->pos); }
static void hd_in_too_big(struct hostile_env *e) { hd_req(e, 0, 0, 2033); hd_publish(e, e->pos); }
static void hd_in_huge(struct hostile_env *e) { hd_req(e, 0, 0, 0xffffffffu); hd_publish(e, e->pos); }
static void hd_type_unknown(struct hostile_env *e) { hd_raw(e, 16, 7, 0, 0, 0, 16); hd_publish(e, e->pos); }
static void hd_type_completion(struct hostile_env *e) { hd_raw(e, 16, VSHM_FIFO_COMPLETION, 0, 0, 0, 16); hd_publish(e, e->pos); }
static void hd_pad_short(struct hostile_env *e) { hd_raw(e, 64, VSHM_FIFO_PAD, 0, 0, 0, 64); hd_req(e, 0, 0, 0); hd_publish(e, e->pos); }
static void hd_id_oob(struct hostile_env *e) { hd_req(e, QNUM, 8, 8); hd_publish(e, e->pos); }
static void hd_id_huge(struct hostile_env *e) { hd_req(e, 0xffff, 8, 8); hd_publish(e, e->pos); }
static void hd_id_twice(struct hostile_env *e) { hd_req(e, 3, 8, 8); hd_req(e, 3, 8, 8); hd_publish(e, e->pos); }
static void hd_segments(struct hostile_env *e) { hd_req(e, 0, 8, 8); hd_publish(e, e->pos); }
static void hd_good_then_bad(struct hostile_env *e) { hd_req(e, 0, 8, 8); hd_req(e, 1, 8, 8); hd_req(e, QNUM, 0, 0); hd_publish(e, e->pos); }

/* Three 1 KiB requests take the consumer to offset 3072. */
static void hd_three_kib(struct hostile_env *e)
{
	for (uint16_t i = 0; i < 3; i++)
		hd_req(e, i, 1008, 0);
	hd_publish(e, e->pos);
}

/* Second rounds: the released first round is the hostile side's to reuse. */
static void released(struct hostile_env *e)
{
	vshm_store_release(&vc(e)->head, vshm_load_acquire(&vc(e)->tail));
}

static void hd_then_wrap_frame(struct hostile_env *e) { released(e); hd_raw(e, 2048, VSHM_FIFO_REQUEST, 0, 2032, 0, 2048); hd_publish(e, e->pos); }
static void hd_then_pad_fields(struct hostile_env *e) { released(e); hd_raw(e, 1024, VSHM_FIFO_PAD, 1, 0, 0, 1024); hd_req(e, 0, 0, 0); hd_publish(e, e->pos); }
static void hd_then_tail_back(struct hostile_env *e) { released(e); hd_publish(e, e->pos - 16); }
static void hd_then_tail_stale(struct hostile_env *e) { released(e); hd_publish(e, e->pos - 3072); }

/* Two requests reserve all of V2D; the third needs the driver's head. */
static void hd_fill_v2d(struct hostile_env *e)
{
	hd_req(e, 0, 0, 2032);
	hd_req(e, 1, 0, 2032);
	hd_publish(e, e->pos);
}

static void hd_then_v2d_head_past(struct hostile_env *e) { released(e); hd_req(e, 2, 0, 2032); hd_publish(e, e->pos); vshm_store_release(&vc(e)->head, 2 * 2048 + 16); }
static void hd_then_v2d_head_back(struct hostile_env *e) { released(e); hd_req(e, 2, 0, 2032); hd_publish(e, e->pos); vshm_store_release(&vc(e)->head, (uint32_t)-16); }
static void hd_then_v2d_head_odd(struct hostile_env *e) { released(e); hd_req(e, 2, 0, 2032); hd_publish(e, e->pos); vshm_store_release(&vc(e)->head, 8); }

static const struct hostile_drv_case dcases[] = {
	/* name, first round, second round, reason, features, good, segment limit, push, num, window */
	{ "D2V tail jumps past the ring size", hd_tail_jump, NULL, "more than the ring size", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "D2V tail moves backwards (below head)", hd_tail_backwards, NULL, "backwards", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "D2V tail not a multiple of 16", hd_tail_unaligned, NULL, "multiple of 16", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "frame len 0", hd_len_zero, NULL, "length zero", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "frame len 24", hd_len_odd, NULL, "not a multiple of 16", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "frame beyond the produced bytes", hd_len_past_tail, NULL, "past the produced bytes", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "out_len larger than the frame", hd_out_mismatch, NULL, "does not match its out_len", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "frame longer than its out_len", hd_out_short, NULL, "does not match its out_len", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "out_len 2^32-8 (wraps when rounded)", hd_out_huge, NULL, "does not match its out_len", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "REQUEST over half the data area", hd_over_half, NULL, "longer than half", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "in_len too big for V2D", hd_in_too_big, NULL, "in_len too big", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "in_len 2^32-1", hd_in_huge, NULL, "in_len too big", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "unknown frame type", hd_type_unknown, NULL, "unknown D2V frame type", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "COMPLETION frame on D2V", hd_type_completion, NULL, "unknown D2V frame type", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "PAD not reaching the end", hd_pad_short, NULL, "PAD does not reach the end", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "id = num", hd_id_oob, NULL, "id out of range", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "id = 65535", hd_id_huge, NULL, "id out of range", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "id already in flight", hd_id_twice, NULL, "already in flight", FIFO, 1, 2, PUSH_ROUND, QNUM, 0 },
	{ "more segments than the device accepts", hd_segments, NULL, "more buffers", FIFO, 0, 1, PUSH_ROUND, QNUM, 0 },
	{ "two valid requests, then id = num", hd_good_then_bad, NULL, "id out of range", FIFO, 2, 2, PUSH_ROUND, QNUM, 0 },
	{ "frame runs past the data area end", hd_three_kib, hd_then_wrap_frame, "past the end of the data area", FIFO, 3, 2, PUSH_ROUND, QNUM, 0 },
	{ "PAD with a non-zero id", hd_three_kib, hd_then_pad_fields, "non-zero", FIFO, 3, 2, PUSH_ROUND, QNUM, 0 },
	{ "D2V tail moves backwards after progress", hd_three_kib, hd_then_tail_back, "backwards", FIFO, 3, 2, PUSH_ROUND, QNUM, 0 },
	{ "D2V tail back to an old value", hd_three_kib, hd_then_tail_stale, "backwards", FIFO, 3, 2, PUSH_ROUND, QNUM, 0 },
	{ "V2D head runs past the device's tail", hd_fill_v2d, hd_then_v2d_head_past, "ran past the device's tail", FIFO, 2, 2, PUSH_ROUND, QNUM, 0 },
	{ "V2D head moves backwards", hd_fill_v2d, hd_then_v2d_head_back, "V2D head moved backwards", FIFO, 2, 2, PUSH_ROUND, QNUM, 0 },
	{ "V2D head not a multiple of 16", hd_fill_v2d, hd_then_v2d_head_odd, "V2D head not a multiple", FIFO, 2, 2, PUSH_ROUND, QNUM, 0 },
	{ "D2V tail moves back over held requests", hd_three_kib, hd_then_tail_back, "backwards", FIFO, 3, 2, PUSH_NEVER, QNUM, 0 },
	{ "D2V tail back to the released head", hd_three_kib, hd_then_tail_stale, "backwards", FIFO, 3, 2, PUSH_NEVER, QNUM, 0 },
};

static const struct hostile_ring ring;	/* defined below, after the hooks it names */

/* The harness accepts honest rings (it is not vacuous); sizes are kept. */
static void test_driver_control(void)
{
	static const struct hostile_drv_case pops = { .max_iov = 2, .push = PUSH_ROUND };
	struct hostile_env e;
	struct vshm_dev_vq *v;
	struct vshm_chain c;
	struct vshm_iov iov[2];
	unsigned good = 0;
	int rc;

	if (hostile_dev_setup(&e, &v, &ring, 0, QNUM, FIFO)) {
		ok(0, "control: setup");
		return;
	}
	/* a 2048-byte frame, a zero-length one, and one that ends exactly at
	 * the end of the data area: a full ring */
	hd_req(&e, 0, 2032, 0);
	hd_req(&e, 1, 0, 0);
	hd_req(&e, 2, 2016, 16);
	hd_publish(&e, e.pos);
	rc = hostile_pop_round(v, &pops, &good);
	ok(rc == 0 && good == 3 && !vshm_dev_vq_broken(v), "control: a full ring of honest requests pops (%s)",
	   vshm_dev_vq_error(v) ? vshm_dev_vq_error(v) : "healthy");

	/* The driver rewrites both sizes after enable: the device kept its
	 * copies, so a frame valid only for the bigger size is refused. */
	dc(&e)->size = 1u << 20;
	vc(&e)->size = 1u << 20;
	vshm_store_release(&vc(&e)->head, vshm_load_acquire(&vc(&e)->tail));
	hd_req(&e, 4, 100, 100);
	hd_publish(&e, e.pos);
	is(vshm_dev_vq_pop(v, &c, iov, 2), 1, "control: size rewritten after enable, honest frame still pops");
	ok(c.iov[0].base == e.t.base + e.l.desc + 256 + ((e.pos - 128) & (RING - 1)) + 16,
	   "control: at the position the 4 KiB ring puts it");
	hd_raw(&e, 3024, VSHM_FIFO_REQUEST, 5, 3008, 0, 3024);
	hd_publish(&e, e.pos);
	is(vshm_dev_vq_pop(v, &c, iov, 2), -EIO, "control: a 3 KiB frame is judged by the kept 4 KiB size");
	vshm_dev_vq_destroy(v);
	hostile_env_fini(&e);
}

/* ======================================================================== */
/* Hostile device vs our driver side                                        */

/* Where the driver put hostile_post's REQUESTs in D2V, their reservations in V2D. */
static struct {
	uint32_t dpos[HOSTILE_POSTED];	/* D2V position of each REQUEST */
	uint32_t res[HOSTILE_POSTED];	/* completion reservations */
	uint32_t d_pub;			/* D2V tail the driver published */
} sent;

/*
 * hostile_post's chains: A = 64 out + 100 in, B = 50 in, C = 10 out,
 * published; then D = 10 out, added but never published.  In buffers sit
 * between canaries.  Read back the ids, positions and reservations.
 */
static int posted(struct hostile_drv_env *de)
{
	uint32_t pos = 0;

	for (int i = 0; i < HOSTILE_POSTED; i++) {
		const struct vshm_fifo_frame *f = (const void *)(dd(&de->e) + pos);

		de->ids[i] = f->id;
		sent.dpos[i] = pos;
		sent.res[i] = (16 + f->b + 15) & ~15u;
		pos += f->len;
	}
	sent.d_pub = vshm_load_acquire(&dc(&de->e)->tail);
	return 0;
}

/* The hostile device writes a frame at its V2D position and moves on. */
static void hv_put(struct hostile_drv_env *de, uint32_t len, uint16_t type, uint16_t id, uint32_t a, uint32_t b)
{
	put(vd(&de->e), de->e.pos, len, type, id, a, b);
	de->e.pos += len;
}

static void hv_comp(struct hostile_drv_env *de, int i, uint32_t written)
{
	uint8_t *p = vd(&de->e) + ((de->e.pos + 16) & (RING - 1));

	for (uint32_t j = 0; j < written && j < sent.res[i] - 16; j++)
		p[j] = (uint8_t)(i * 16 + j);
	hv_put(de, sent.res[i], VSHM_FIFO_COMPLETION, de->ids[i], written, 0);
}

static void hv_tail(struct hostile_drv_env *de, uint32_t t)
{
	vshm_store_release(&vc(&de->e)->tail, t);
}

static void hv_not_issued(struct hostile_drv_env *de)
{
	uint16_t id = 0;

	while (id == de->ids[0] || id == de->ids[1] || id == de->ids[2] || id == de->ids[3])
		id++;
	hv_put(de, 16, VSHM_FIFO_COMPLETION, id, 0, 0);
	hv_tail(de, de->e.pos);
}
static void hv_id_oob(struct hostile_drv_env *de) { hv_put(de, 128, VSHM_FIFO_COMPLETION, QNUM, 0, 0); hv_tail(de, de->e.pos); }
static void hv_unpublished(struct hostile_drv_env *de) { hv_put(de, 16, VSHM_FIFO_COMPLETION, de->ids[3], 0, 0); hv_tail(de, de->e.pos); }
static void hv_duplicate(struct hostile_drv_env *de) { hv_comp(de, 0, 10); hv_comp(de, 0, 10); hv_tail(de, de->e.pos); }
static void hv_len_not_res(struct hostile_drv_env *de) { hv_put(de, sent.res[0] + 16, VSHM_FIFO_COMPLETION, de->ids[0], 0, 0); hv_tail(de, de->e.pos); }
static void hv_len_short(struct hostile_drv_env *de) { hv_put(de, 16, VSHM_FIFO_COMPLETION, de->ids[0], 0, 0); hv_tail(de, de->e.pos); }
static void hv_written_big(struct hostile_drv_env *de) { hv_comp(de, 0, 101); hv_tail(de, de->e.pos); }
static void hv_written_huge(struct hostile_drv_env *de) { hv_comp(de, 0, 0xffffffffu); hv_tail(de, de->e.pos); }
static void hv_written_readonly(struct hostile_drv_env *de) { hv_comp(de, 0, 0); hv_comp(de, 1, 0); hv_comp(de, 2, 1); hv_tail(de, de->e.pos); }
static void hv_out_of_order(struct hostile_drv_env *de) { hv_comp(de, 1, 50); hv_tail(de, de->e.pos); }
static void hv_skip_one(struct hostile_drv_env *de) { hv_comp(de, 0, 1); hv_comp(de, 2, 0); hv_tail(de, de->e.pos); }
static void hv_b_nonzero(struct hostile_drv_env *de) { hv_put(de, sent.res[0], VSHM_FIFO_COMPLETION, de->ids[0], 1, 1); hv_tail(de, de->e.pos); }
static void hv_request(struct hostile_drv_env *de) { hv_put(de, 16, VSHM_FIFO_REQUEST, de->ids[0], 0, 0); hv_tail(de, de->e.pos); }
static void hv_type_unknown(struct hostile_drv_env *de) { hv_put(de, 16, 0, 0, 0, 0); hv_tail(de, de->e.pos); }
static void hv_len_zero(struct hostile_drv_env *de) { hv_put(de, 0, VSHM_FIFO_COMPLETION, de->ids[0], 0, 0); hv_tail(de, 16); }
static void hv_len_odd(struct hostile_drv_env *de) { hv_put(de, 120, VSHM_FIFO_COMPLETION, de->ids[0], 0, 0); hv_tail(de, 128); }
static void hv_len_past_tail(struct hostile_drv_env *de) { hv_comp(de, 0, 1); hv_tail(de, 64); }
static void hv_tail_jump(struct hostile_drv_env *de) { hv_comp(de, 0, 1); hv_tail(de, RING + 16); }
static void hv_tail_backwards(struct hostile_drv_env *de) { hv_comp(de, 0, 1); hv_tail(de, (uint32_t)-16); }
static void hv_tail_unaligned(struct hostile_drv_env *de) { hv_comp(de, 0, 1); hv_tail(de, 8); }
static void hv_pad_short(struct hostile_drv_env *de) { hv_put(de, 64, VSHM_FIFO_PAD, 0, 0, 0); hv_comp(de, 0, 1); hv_tail(de, de->e.pos); }
static void hv_pad_fields(struct hostile_drv_env *de) { hv_put(de, RING, VSHM_FIFO_PAD, 0, 7, 0); hv_tail(de, de->e.pos); }
static void hv_pad_then_ok(struct hostile_drv_env *de) { hv_comp(de, 0, 100); hv_tail(de, de->e.pos); }

/* D2V head: the driver reloads it when it lacks room for an add. */
static void hv_d2v_head_past(struct hostile_drv_env *de) { vshm_store_release(&dc(&de->e)->head, sent.d_pub + 16); }
static void hv_d2v_head_back(struct hostile_drv_env *de) { vshm_store_release(&dc(&de->e)->head, (uint32_t)-16); }
static void hv_d2v_head_odd(struct hostile_drv_env *de) { vshm_store_release(&dc(&de->e)->head, 8); }

/* Second round: after A was harvested honestly. */
static void hv_then_tail_back(struct hostile_drv_env *de) { hv_tail(de, de->e.pos - 16); }
static void hv_then_wrap(struct hostile_drv_env *de)
{
	/* a PAD that stops 64 bytes before the end */
	hv_put(de, RING - 64 - de->e.pos, VSHM_FIFO_PAD, 0, 0, 0);	/* bad PAD */
	hv_tail(de, de->e.pos);
}
static void hv_then_straddle(struct hostile_drv_env *de)
{
	/* a frame 16 bytes longer than the rest of the data area */
	hv_put(de, RING - (de->e.pos & (RING - 1)) + 16, VSHM_FIFO_COMPLETION, de->ids[1], 0, 0);
	hv_tail(de, de->e.pos);
}

static const struct hostile_dev_case vcases[] = {
	/* name, first round, after a first harvest, reason, good, refused by an add (D2V head) */
	{ "completion of an id never issued", hv_not_issued, NULL, "not a request in flight", 0, 0 },
	{ "completion id = num", hv_id_oob, NULL, "id out of range", 0, 0 },
	{ "completion of a request never published", hv_unpublished, NULL, "not a request in flight", 0, 0 },
	{ "duplicate completion", hv_duplicate, NULL, "not a request in flight", 1, 0 },
	{ "len larger than the reservation", hv_len_not_res, NULL, "not the reservation", 0, 0 },
	{ "len smaller than the reservation", hv_len_short, NULL, "not the reservation", 0, 0 },
	{ "written = in_len + 1", hv_written_big, NULL, "written larger", 0, 0 },
	{ "written = 2^32-1", hv_written_huge, NULL, "written larger", 0, 0 },
	{ "written 1 on an out-only request", hv_written_readonly, NULL, "written larger", 2, 0 },
	{ "completion out of order", hv_out_of_order, NULL, "out of request order", 0, 0 },
	{ "a completion skipped", hv_skip_one, NULL, "out of request order", 1, 0 },
	{ "completion with b != 0", hv_b_nonzero, NULL, "field b", 0, 0 },
	{ "REQUEST frame on V2D", hv_request, NULL, "unknown V2D frame type", 0, 0 },
	{ "frame type 0", hv_type_unknown, NULL, "unknown V2D frame type", 0, 0 },
	{ "frame len 0", hv_len_zero, NULL, "length zero", 0, 0 },
	{ "frame len 120", hv_len_odd, NULL, "not a multiple of 16", 0, 0 },
	{ "frame beyond the released bytes", hv_len_past_tail, NULL, "past the released bytes", 0, 0 },
	{ "V2D tail jumps past the ring size", hv_tail_jump, NULL, "more than the ring size", 0, 0 },
	{ "V2D tail moves backwards", hv_tail_backwards, NULL, "backwards", 0, 0 },
	{ "V2D tail not a multiple of 16", hv_tail_unaligned, NULL, "V2D tail not a multiple", 0, 0 },
	{ "PAD not reaching the end", hv_pad_short, NULL, "PAD does not reach the end", 0, 0 },
	{ "PAD with a non-zero a", hv_pad_fields, NULL, "non-zero", 0, 0 },
	{ "V2D tail backwards after a harvest", hv_pad_then_ok, hv_then_tail_back, "backwards", 1, 0 },
	{ "PAD ending before the end", hv_pad_then_ok, hv_then_wrap, "PAD does not reach the end", 1, 0 },
	{ "completion running past the data area end", hv_pad_then_ok, hv_then_straddle, "past the end of the data area", 1, 0 },
	{ "D2V head runs past the driver's tail", hv_d2v_head_past, NULL, "ran past the driver's tail", 0, 1 },
	{ "D2V head moves backwards", hv_d2v_head_back, NULL, "D2V head moved backwards", 0, 1 },
	{ "D2V head not a multiple of 16", hv_d2v_head_odd, NULL, "D2V head not a multiple", 0, 1 },
};

/*
 * Are the canaries around the in buffers intact, and the replies as the
 * hostile device wrote them (@a_len bytes into A's, @b_len into B's)?
 */
static int buffers_ok(struct hostile_drv_env *de, uint32_t a_len, uint32_t b_len)
{
	const uint8_t *p = de->e.w.base + de->e.buf;

	for (uint32_t j = 0; j < 65536; j++) {
		uint8_t want = CANARY;

		if (j >= 4096 && j < 4096 + a_len)
			want = (uint8_t)(j - 4096);
		if (j >= 8192 && j < 8192 + b_len)
			want = (uint8_t)(16 + j - 8192);
		if (j < 64 || (j >= 12288 && j < 12298))
			continue;	/* out buffers: the driver's own bytes */
		if (p[j] != want)
			return 0;
	}
	return 1;
}

static void no_stray_writes(struct hostile_drv_env *de, const struct hostile_tally *t, unsigned n)
{
	ok(buffers_ok(de, t->len[0], t->len[1]), "hostile device %u: nothing written outside the in buffers", n);
}

static const struct hostile_ring ring = {
	.layout = vshm_vq_layout_fifo, .layout_arg = RING, .prepare = prepare,
	.drv_features = FIFO, .num = QNUM, .a_flags = 0,
	.late = { 16384, 2032, 0 }, .posted = posted, .also = no_stray_writes,
};

/* Control: the same setup harvests honest completions, across a PAD. */
static void test_device_control(void)
{
	struct hostile_drv_env de;

	if (hostile_drv_setup(&de, &ring)) {
		ok(0, "control: setup");
		return;
	}
	hv_comp(&de, 0, 100);
	hv_put(&de, RING - de.e.pos, VSHM_FIFO_PAD, 0, 0, 0);
	hv_tail(&de, de.e.pos);
	hostile_harvested(&de, 0, 100, "A with its full length");
	/* the device may fill up to the driver's released head + size */
	hv_comp(&de, 1, 50);
	hv_comp(&de, 2, 0);
	hv_tail(&de, de.e.pos);
	hostile_harvested(&de, 1, 50, "B after a PAD to the end");
	hostile_harvested(&de, 2, 0, "C");
	ok(!vshm_drv_vq_broken(de.d) && buffers_ok(&de, 100, 50), "control: healthy, replies in place");
	is(vshm_load_acquire(&vc(&de.e)->head), de.e.pos, "control: V2D head released");
	hostile_drv_fini(&de);
}

int main(void)
{
	hostile_driver_cases(&ring, dcases, sizeof(dcases) / sizeof(dcases[0]));
	test_driver_control();
	hostile_device_cases(&ring, vcases, sizeof(vcases) / sizeof(vcases[0]));
	test_device_control();
	return tap_done();
}
