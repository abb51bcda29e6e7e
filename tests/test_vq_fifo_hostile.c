// SPDX-License-Identifier: MIT
/*
 * FIFO ring against a hostile peer, both directions.
 *
 * Each case builds a fresh window and queue, lets the hostile side write its
 * frames and ring words by hand, and checks that our side refuses them:
 * -EIO, the queue broken for good with the expected reason, and nothing
 * touched outside the window (tests/vq_hostile.h: the side under test has
 * the header and mailbox PROT_NONE and guard pages around its mapping).
 * Every outstanding request of a broken driver queue comes back once
 * through detach.
 *
 * There is no tail word: a frame is produced by its mark (position | type),
 * stored after its header fields, and the producer keeps the 16 bytes after
 * its frames free.  So where a peer used to lie with its tail, it now lies
 * with a mark: one naming another position (a lap ahead, a stale lap, the
 * next slot, a frame behind), one with a type that does not exist, or a
 * frame that reaches into bytes the consumer has not released yet.
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

#define REQ	VSHM_FIFO_REQUEST
#define COMP	VSHM_FIFO_COMPLETION
#define PAD	VSHM_FIFO_PAD
#define M(pos, type)	VSHM_FIFO_MARK((uint32_t)(pos), (type))

/* The length of a frame carrying @n bytes: header plus @n, rounded up to 16. */
static uint32_t flen(uint32_t n)
{
	return (16 + n + 15) & ~15u;
}

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

static struct vshm_fifo_frame *at(uint8_t *data, uint32_t pos)
{
	return (struct vshm_fifo_frame *)(void *)(data + (pos & (RING - 1)));
}

/*
 * A frame header at @pos the way a producer writes it: the fields first,
 * the mark last.  Every mark here gets a release store, which is more than
 * the frames behind the first of a batch need, and harmless.
 */
static void put(uint8_t *data, uint32_t pos, uint32_t mark, uint16_t id, uint16_t zero,
		uint32_t a, uint32_t b)
{
	struct vshm_fifo_frame *f = at(data, pos);

	f->id = id;
	f->zero = zero;
	f->a = a;
	f->b = b;
	vshm_store_release(&f->mark, mark);
}

/* The slot after a producer's last frame reads 0 until it produces there. */
static void clear(uint8_t *data, uint32_t pos)
{
	vshm_store_once(&at(data, pos)->mark, 0);
}

/* ======================================================================== */
/* Hostile driver vs our device side                                        */

static uint32_t req_in[QNUM];	/* in_len of the last REQUEST with each id */
static uint32_t v_seen;		/* V2D bytes the hostile driver consumed */

/*
 * A well-formed REQUEST at the producer position, PAD first if needed, in
 * an honest driver's order: the slot after zeroed, the REQUEST, then the
 * first frame's mark (the PAD's, if there is one).  Data bytes are left as
 * they are: the device only hands them on.
 */
static void hd_req(struct hostile_env *e, uint16_t id, uint32_t out, uint32_t in)
{
	uint32_t len = flen(out), rest = RING - (e->pos & (RING - 1));
	uint32_t pad = rest < len ? rest : 0, pos = e->pos + pad;

	if (id < QNUM)
		req_in[id] = in;
	clear(dd(e), pos + len);
	put(dd(e), pos, M(pos, REQ), id, 0, out, in);
	if (pad)
		put(dd(e), e->pos, M(e->pos, PAD), 0, 0, 0, 0);
	e->pos = pos + len;
}

/* Any header with any mark at the producer position; then move on. */
static void hd_raw(struct hostile_env *e, uint32_t mark, uint16_t id, uint16_t zero,
		   uint32_t a, uint32_t b, uint32_t advance)
{
	put(dd(e), e->pos, mark, id, zero, a, b);
	e->pos += advance;
}

/* A correct mark of @type for the producer position. */
static uint32_t here(struct hostile_env *e, uint16_t type)
{
	return M(e->pos, type);
}

/* What the driver writes first: zeroed blocks, the ring sizes; canaries in scratch. */
static void prepare(struct hostile_env *e)
{
	memset(dc(e), 0, VSHM_FIFO_CTRL_SIZE);
	memset(vc(e), 0, VSHM_FIFO_CTRL_SIZE);
	dc(e)->size = RING;
	vc(e)->size = RING;
	memset(e->w.base + e->buf, CANARY, 65536);
	memset(req_in, 0, sizeof(req_in));
	v_seen = 0;
}

/*
 * The hostile driver as an honest V2D consumer: walk the completions the
 * device released (a COMPLETION is as long as the reservation of its
 * request, a PAD reaches the end of the data area) and give the bytes back.
 */
static void released(struct hostile_env *e)
{
	for (unsigned k = 0; k < 2 * RING / 16; k++) {
		const struct vshm_fifo_frame *f = at(vd(e), v_seen);
		uint32_t m = vshm_load_acquire(&f->mark);

		if (m == 0 || VSHM_FIFO_MARK_POS(m) != v_seen)
			break;
		if (VSHM_FIFO_MARK_TYPE(m) == PAD)
			v_seen += RING - (v_seen & (RING - 1));
		else if (VSHM_FIFO_MARK_TYPE(m) == COMP && f->id < QNUM)
			v_seen += flen(req_in[f->id]);
		else
			break;
	}
	vshm_store_release(&vc(e)->head, v_seen);
}

/* Marks that name another position (the tail lies of old). */
static void hd_mark_lap(struct hostile_env *e) { hd_raw(e, M(RING, REQ), 0, 0, 8, 8, 32); }
static void hd_mark_below(struct hostile_env *e) { hd_raw(e, M(-16, REQ), 0, 0, 8, 8, 32); }
static void hd_mark_next(struct hostile_env *e) { hd_raw(e, M(16, REQ), 0, 0, 8, 8, 32); }

/* Types that do not exist on D2V; type 0 needs a position, or the mark is 0. */
static void hd_type0(struct hostile_env *e) { hd_req(e, 0, 8, 8); hd_raw(e, here(e, 0), 1, 0, 8, 8, 32); }
static void hd_type4(struct hostile_env *e) { hd_raw(e, here(e, 4), 0, 0, 0, 0, 16); }
static void hd_type7(struct hostile_env *e) { hd_raw(e, here(e, 7), 0, 0, 0, 0, 16); }
static void hd_type15(struct hostile_env *e) { hd_raw(e, here(e, 15), 0, 0, 0, 0, 16); }
static void hd_type_completion(struct hostile_env *e) { hd_raw(e, here(e, COMP), 0, 0, 0, 0, 16); }
static void hd_zero(struct hostile_env *e) { hd_raw(e, here(e, REQ), 0, 1, 8, 8, 32); }

/* A whole lap of frames with nothing released: the last reaches the 16
 * bytes the producer must keep free. */
static void hd_no_slack(struct hostile_env *e)
{
	hd_raw(e, here(e, REQ), 0, 0, 2032, 0, 2048);
	hd_raw(e, here(e, REQ), 1, 0, 1008, 0, 1024);
	hd_raw(e, here(e, REQ), 2, 0, 1008, 0, 1024);
}

/* Three 1 KiB requests take the consumer to offset 3072. */
static void hd_three_kib(struct hostile_env *e)
{
	for (uint16_t i = 0; i < 3; i++)
		hd_req(e, i, 1008, 0);
}

static void hd_out_past_end(struct hostile_env *e) { hd_three_kib(e); hd_raw(e, here(e, REQ), 3, 0, 1500, 0, 1520); }
static void hd_out_huge(struct hostile_env *e) { hd_raw(e, here(e, REQ), 0, 0, 0xfffffff8u, 0, 32); }
static void hd_out_max(struct hostile_env *e) { hd_raw(e, here(e, REQ), 0, 0, 0xffffffffu, 0, 32); }
static void hd_over_half(struct hostile_env *e) { hd_req(e, 0, 2040, 0); }
static void hd_in_too_big(struct hostile_env *e) { hd_req(e, 0, 0, 2033); }
static void hd_in_huge(struct hostile_env *e) { hd_req(e, 0, 0, 0xffffffffu); }
static void hd_pad_zero(struct hostile_env *e) { hd_raw(e, here(e, PAD), 0, 0, 0, 0, RING); }
static void hd_pad_half(struct hostile_env *e) { hd_req(e, 0, 2032, 0); hd_raw(e, here(e, PAD), 0, 0, 0, 0, RING / 2); }
static void hd_id_oob(struct hostile_env *e) { hd_req(e, QNUM, 8, 8); }
static void hd_id_huge(struct hostile_env *e) { hd_req(e, 0xffff, 8, 8); }
static void hd_id_twice(struct hostile_env *e) { hd_req(e, 3, 8, 8); hd_req(e, 3, 8, 8); }
static void hd_segments(struct hostile_env *e) { hd_req(e, 0, 8, 8); }
static void hd_good_then_bad(struct hostile_env *e) { hd_req(e, 0, 8, 8); hd_req(e, 1, 8, 8); hd_req(e, QNUM, 0, 0); }

/* Second rounds at 3072: the released first round is the hostile side's to reuse. */
static void hd_then_wrap_frame(struct hostile_env *e) { released(e); hd_raw(e, here(e, REQ), 0, 0, 2032, 0, 2048); }
static void hd_then_pad_fields(struct hostile_env *e) { released(e); hd_raw(e, here(e, PAD), 1, 0, 0, 0, 1024); hd_req(e, 0, 0, 0); }
/* The mark of the frame before (at 2048), replayed. */
static void hd_then_mark_back(struct hostile_env *e) { released(e); hd_raw(e, M(e->pos - 1024, REQ), 3, 0, 8, 8, 32); }
/* A good PAD, and at offset 0 nothing new: the first round's mark, a lap old. */
static void hd_then_stale_lap(struct hostile_env *e) { released(e); hd_raw(e, here(e, PAD), 0, 0, 0, 0, 1024); }
/* A REQUEST to the end of the data area, over bytes the device holds. */
static void hd_then_req_held(struct hostile_env *e) { released(e); hd_raw(e, here(e, REQ), 3, 0, 1008, 0, 1024); }

/* Two requests reserve 4032 bytes of V2D; the third needs the driver's head. */
static void hd_fill_v2d(struct hostile_env *e)
{
	hd_req(e, 0, 0, 2000);
	hd_req(e, 1, 0, 2000);
}

static void hd_then_v2d_head_past(struct hostile_env *e) { released(e); hd_req(e, 2, 0, 2000); vshm_store_release(&vc(e)->head, 2 * 2016 + 16); }
static void hd_then_v2d_head_back(struct hostile_env *e) { released(e); hd_req(e, 2, 0, 2000); vshm_store_release(&vc(e)->head, (uint32_t)-16); }
static void hd_then_v2d_head_odd(struct hostile_env *e) { released(e); hd_req(e, 2, 0, 2000); vshm_store_release(&vc(e)->head, 8); }

#define NAMES	"does not name its position"
#define UNREL	"not yet released"
#define FITTED	"where a frame would have fitted"

static const struct hostile_drv_case dcases[] = {
	/* name, first round, second round, reason, features, good, segment limit, push, num, window */
	{ "D2V mark names the position a lap ahead", hd_mark_lap, NULL, NAMES, FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "D2V mark names 2^32-16 (below the first)", hd_mark_below, NULL, NAMES, FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "D2V mark names the next slot", hd_mark_next, NULL, NAMES, FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "mark of type 0 with a position", hd_type0, NULL, "unknown D2V frame type", FIFO, 1, 2, PUSH_ROUND, QNUM, 0 },
	{ "mark of type 4", hd_type4, NULL, "unknown D2V frame type", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "mark of type 15", hd_type15, NULL, "unknown D2V frame type", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "a lap of frames leaves no 16 bytes free", hd_no_slack, NULL, UNREL, FIFO, 2, 2, PUSH_ROUND, QNUM, 0 },
	{ "out_len runs the frame past the data area end", hd_out_past_end, NULL, "past the end of the data area", FIFO, 3, 2, PUSH_ROUND, QNUM, 0 },
	{ "out_len 2^32-8 (wraps when rounded)", hd_out_huge, NULL, "longer than half", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "out_len 2^32-1", hd_out_max, NULL, "longer than half", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "REQUEST over half the data area", hd_over_half, NULL, "longer than half", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "in_len too big for V2D", hd_in_too_big, NULL, "in_len too big", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "in_len 2^32-1", hd_in_huge, NULL, "in_len too big", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "unknown frame type 7", hd_type7, NULL, "unknown D2V frame type", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "COMPLETION frame on D2V", hd_type_completion, NULL, "unknown D2V frame type", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "header field zero not zero", hd_zero, NULL, "field zero is not zero", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "PAD at offset 0", hd_pad_zero, NULL, FITTED, FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "PAD whose rest is half the data area", hd_pad_half, NULL, FITTED, FIFO, 1, 2, PUSH_ROUND, QNUM, 0 },
	{ "id = num", hd_id_oob, NULL, "id out of range", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "id = 65535", hd_id_huge, NULL, "id out of range", FIFO, 0, 2, PUSH_ROUND, QNUM, 0 },
	{ "id already in flight", hd_id_twice, NULL, "already in flight", FIFO, 1, 2, PUSH_ROUND, QNUM, 0 },
	{ "more segments than the device accepts", hd_segments, NULL, "more buffers", FIFO, 0, 1, PUSH_ROUND, QNUM, 0 },
	{ "two valid requests, then id = num", hd_good_then_bad, NULL, "id out of range", FIFO, 2, 2, PUSH_ROUND, QNUM, 0 },
	{ "frame runs past the data area end", hd_three_kib, hd_then_wrap_frame, "past the end of the data area", FIFO, 3, 2, PUSH_ROUND, QNUM, 0 },
	{ "PAD with a non-zero id", hd_three_kib, hd_then_pad_fields, "non-zero", FIFO, 3, 2, PUSH_ROUND, QNUM, 0 },
	{ "D2V mark names the frame before, after progress", hd_three_kib, hd_then_mark_back, NAMES, FIFO, 3, 2, PUSH_ROUND, QNUM, 0 },
	{ "D2V mark a lap old after a PAD", hd_three_kib, hd_then_stale_lap, NAMES, FIFO, 3, 2, PUSH_ROUND, QNUM, 0 },
	{ "V2D head runs past the device's tail", hd_fill_v2d, hd_then_v2d_head_past, "ran past the device's tail", FIFO, 2, 2, PUSH_ROUND, QNUM, 0 },
	{ "V2D head moves backwards", hd_fill_v2d, hd_then_v2d_head_back, "V2D head moved backwards", FIFO, 2, 2, PUSH_ROUND, QNUM, 0 },
	{ "V2D head not a multiple of 16", hd_fill_v2d, hd_then_v2d_head_odd, "V2D head not a multiple", FIFO, 2, 2, PUSH_ROUND, QNUM, 0 },
	{ "D2V mark names a held request's position", hd_three_kib, hd_then_mark_back, NAMES, FIFO, 3, 2, PUSH_NEVER, QNUM, 0 },
	{ "PAD over bytes the device holds", hd_three_kib, hd_then_stale_lap, UNREL, FIFO, 3, 2, PUSH_NEVER, QNUM, 0 },
	{ "REQUEST over bytes the device holds", hd_three_kib, hd_then_req_held, UNREL, FIFO, 3, 2, PUSH_NEVER, QNUM, 0 },
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
	/* a 2048-byte frame, a zero-length one, and one that ends 16 bytes
	 * before the end of the data area: a full ring */
	hd_req(&e, 0, 2032, 0);
	hd_req(&e, 1, 0, 0);
	hd_req(&e, 2, 2000, 16);
	rc = hostile_pop_round(v, &pops, &good);
	ok(rc == 0 && good == 3 && !vshm_dev_vq_broken(v), "control: a full ring of honest requests pops (%s)",
	   vshm_dev_vq_error(v) ? vshm_dev_vq_error(v) : "healthy");
	is(vshm_load_acquire(&dc(&e)->head), 4080, "control: D2V head released");

	/* The driver rewrites both sizes after enable: the device kept its
	 * copies, so a frame valid only for the bigger size is refused.  The
	 * next request needs a 16-byte PAD first. */
	dc(&e)->size = 1u << 20;
	vc(&e)->size = 1u << 20;
	released(&e);
	hd_req(&e, 4, 100, 100);
	is(vshm_dev_vq_pop(v, &c, iov, 2), 1, "control: size rewritten after enable, honest frame still pops");
	ok(c.iov[0].base == e.t.base + e.l.desc + 256 + ((e.pos - 128) & (RING - 1)) + 16,
	   "control: at the position the 4 KiB ring puts it");
	hd_raw(&e, here(&e, REQ), 5, 0, 3008, 0, 3024);
	is(vshm_dev_vq_pop(v, &c, iov, 2), -EIO, "control: a 3 KiB frame is judged by the kept 4 KiB size");
	vshm_dev_vq_destroy(v);
	hostile_env_fini(&e);
}

/*
 * The largest PAD (size/2 - 16) and a half-ring REQUEST behind it fill
 * the ring up to the 16 bytes kept free: accepted once the device released
 * what came before, over the previous lap's bytes.
 */
static void test_driver_control_pad(void)
{
	static const struct hostile_drv_case pops = { .max_iov = 2, .push = PUSH_ROUND };
	struct hostile_env e;
	struct vshm_dev_vq *v;
	unsigned good = 0;
	int rc;

	if (hostile_dev_setup(&e, &v, &ring, 0, QNUM, FIFO)) {
		ok(0, "control: setup");
		return;
	}
	hd_req(&e, 0, 2032, 0);
	hd_req(&e, 1, 0, 0);
	rc = hostile_pop_round(v, &pops, &good);
	released(&e);
	hd_req(&e, 2, 2032, 0);
	is(e.pos, 2 * RING - RING / 2, "control: PAD from 2064, REQUEST at 4096");
	if (rc == 0)
		rc = hostile_pop_round(v, &pops, &good);
	ok(rc == 0 && good == 3 && !vshm_dev_vq_broken(v), "control: the largest PAD and a half-ring frame pop (%s)",
	   vshm_dev_vq_error(v) ? vshm_dev_vq_error(v) : "healthy");
	vshm_dev_vq_destroy(v);
	hostile_env_fini(&e);
}

/* ======================================================================== */
/* Hostile device vs our driver side                                        */

#define SENT	8	/* hostile_post's chains, then the ones added here */

/* Where the driver put its REQUESTs in D2V, their reservations in V2D. */
static struct {
	uint16_t id[SENT];		/* chain k's id */
	uint32_t res[SENT];		/* its completion reservation */
	uint32_t d_pub;			/* D2V bytes the driver published */
	uint32_t d_end;			/* D2V bytes the driver wrote */
} sent;

/*
 * hostile_post's chains: A = 64 out + 100 in, B = 50 in, C = 10 out,
 * published; then D = 10 out, added but never published.  In buffers sit
 * between canaries.  Read back the ids and reservations, and check that
 * the driver marked what it published and nothing else.
 */
static int posted(struct hostile_drv_env *de)
{
	uint32_t pos = 0;

	memset(&sent, 0, sizeof(sent));
	for (int i = 0; i < HOSTILE_POSTED; i++) {
		const struct vshm_fifo_frame *f = at(dd(&de->e), pos);
		uint32_t want = i < HOSTILE_POSTED - 1 ? M(pos, REQ) : 0;

		if (f->mark != want || f->zero)
			return -1;
		if (i == HOSTILE_POSTED - 1)
			sent.d_pub = pos;
		de->ids[i] = f->id;
		sent.id[i] = f->id;
		sent.res[i] = flen(f->b);
		pos += flen(f->a);
	}
	sent.d_end = pos;
	return at(dd(&de->e), pos)->mark == 0 ? 0 : -1;
}

/* The hostile device writes a frame at its V2D position and moves on. */
static void hv_put(struct hostile_drv_env *de, uint32_t mark, uint16_t id, uint16_t zero,
		   uint32_t a, uint32_t b, uint32_t advance)
{
	put(vd(&de->e), de->e.pos, mark, id, zero, a, b);
	de->e.pos += advance;
}

static uint32_t vhere(struct hostile_drv_env *de, uint16_t type)
{
	return M(de->e.pos, type);
}

/* Chain @i's COMPLETION with @written reply bytes, as an honest device writes it. */
static void hv_comp(struct hostile_drv_env *de, int i, uint32_t written)
{
	uint8_t *p = vd(&de->e) + ((de->e.pos + 16) & (RING - 1));

	for (uint32_t j = 0; j < written && j < sent.res[i] - 16; j++)
		p[j] = (uint8_t)(i * 16 + j);
	clear(vd(&de->e), de->e.pos + sent.res[i]);
	hv_put(de, vhere(de, COMP), sent.id[i], 0, written, 0, sent.res[i]);
}

/* Chain @i's COMPLETION (nothing written) with the mark @mark. */
static void hv_comp_marked(struct hostile_drv_env *de, int i, uint32_t mark)
{
	hv_put(de, mark, sent.id[i], 0, 0, 0, sent.res[i]);
}

/*
 * One more chain: @in_len writable bytes at buf + @off (left alone: its
 * completions write nothing), published at once with D.  Its index.
 */
static int hv_more(struct hostile_drv_env *de, uint64_t off, uint32_t in_len)
{
	struct vshm_sg s = { de->e.buf + off, in_len, 0 };
	int k = HOSTILE_POSTED + (int)de->extra;

	sent.id[k] = 0xffff;	/* refused by every check if the add failed */
	if (vshm_drv_vq_add(de->d, &s, 0, 1, &de->cookies[k]) == 0) {
		de->extra++;
		sent.id[k] = at(dd(&de->e), sent.d_end)->id;
		sent.res[k] = flen(in_len);
		sent.d_end += 16;
	}
	vshm_drv_vq_publish(de->d);
	return k;
}

/*
 * Deep into V2D: chains X (@x_in writable bytes) and Y (2032, a half-ring
 * reservation) join A..D, and A..D and X complete: V2D ends at 240 + the
 * reservation of X, Y still in flight.
 */
static void hv_deep(struct hostile_drv_env *de, uint32_t x_in)
{
	hv_more(de, 16384, x_in);
	hv_more(de, 20480, 2032);
	hv_comp(de, 0, 100);
	hv_comp(de, 1, 50);
	hv_comp(de, 2, 0);
	hv_comp(de, 3, 0);
	hv_comp(de, 4, 0);
}

static void hv_deep_2064(struct hostile_drv_env *de) { hv_deep(de, 1808); }

static void hv_not_issued(struct hostile_drv_env *de)
{
	uint16_t id = 0;

	while (id == de->ids[0] || id == de->ids[1] || id == de->ids[2] || id == de->ids[3])
		id++;
	hv_put(de, vhere(de, COMP), id, 0, 0, 0, 16);
}
static void hv_id_oob(struct hostile_drv_env *de) { hv_put(de, vhere(de, COMP), QNUM, 0, 0, 0, 128); }
static void hv_unpublished(struct hostile_drv_env *de) { hv_put(de, vhere(de, COMP), de->ids[3], 0, 0, 0, 16); }
static void hv_duplicate(struct hostile_drv_env *de) { hv_comp(de, 0, 10); hv_comp(de, 0, 10); }
static void hv_written_big(struct hostile_drv_env *de) { hv_comp(de, 0, 101); }
static void hv_written_huge(struct hostile_drv_env *de) { hv_comp(de, 0, 0xffffffffu); }
static void hv_written_readonly(struct hostile_drv_env *de) { hv_comp(de, 0, 0); hv_comp(de, 1, 0); hv_comp(de, 2, 1); }
static void hv_out_of_order(struct hostile_drv_env *de) { hv_comp(de, 1, 50); }
static void hv_skip_one(struct hostile_drv_env *de) { hv_comp(de, 0, 1); hv_comp(de, 2, 0); }
static void hv_b_nonzero(struct hostile_drv_env *de) { hv_put(de, vhere(de, COMP), de->ids[0], 0, 1, 1, sent.res[0]); }
static void hv_zero(struct hostile_drv_env *de) { hv_put(de, vhere(de, COMP), de->ids[0], 0x8000, 1, 0, sent.res[0]); }
static void hv_request(struct hostile_drv_env *de) { hv_put(de, vhere(de, REQ), de->ids[0], 0, 0, 0, 16); }
static void hv_type0(struct hostile_drv_env *de) { hv_comp(de, 0, 1); hv_put(de, vhere(de, 0), de->ids[1], 0, 0, 0, 16); }
static void hv_type4(struct hostile_drv_env *de) { hv_put(de, vhere(de, 4), de->ids[0], 0, 0, 0, 16); }
static void hv_type15(struct hostile_drv_env *de) { hv_put(de, vhere(de, 15), de->ids[0], 0, 0, 0, 16); }
static void hv_mark_next(struct hostile_drv_env *de) { hv_comp_marked(de, 0, M(16, COMP)); }
static void hv_mark_lap(struct hostile_drv_env *de) { hv_comp_marked(de, 0, M(RING, COMP)); }
static void hv_mark_below(struct hostile_drv_env *de) { hv_comp_marked(de, 0, M(-16, COMP)); }
static void hv_pad_zero(struct hostile_drv_env *de) { hv_put(de, vhere(de, PAD), 0, 0, 0, 0, RING); }
static void hv_first(struct hostile_drv_env *de) { hv_comp(de, 0, 100); }

/* D2V head: the driver reloads it when it lacks room for an add. */
static void hv_d2v_head_past(struct hostile_drv_env *de) { vshm_store_release(&dc(&de->e)->head, sent.d_pub + 16); }
static void hv_d2v_head_back(struct hostile_drv_env *de) { vshm_store_release(&dc(&de->e)->head, (uint32_t)-16); }
static void hv_d2v_head_odd(struct hostile_drv_env *de) { vshm_store_release(&dc(&de->e)->head, 8); }

/* Second round, after A was harvested: B's mark replays A's position. */
static void hv_then_mark_back(struct hostile_drv_env *de) { hv_comp_marked(de, 1, M(0, COMP)); }

/* With A..D and X harvested, V2D at 2048 (X of 1792) or 2064 (X of 1808). */
static void hv_deep_pad_half(struct hostile_drv_env *de) { hv_deep(de, 1792); hv_put(de, vhere(de, PAD), 0, 0, 0, 0, RING / 2); }
static void hv_then_pad_fields(struct hostile_drv_env *de) { hv_put(de, vhere(de, PAD), 0, 0, 7, 0, RING - 2064); }
/* Y's 2048 bytes from 2064, without the PAD that makes them fit. */
static void hv_then_straddle(struct hostile_drv_env *de) { hv_comp_marked(de, 5, vhere(de, COMP)); }
/* A good PAD, then Y at 4096 with the mark its slot had a lap ago. */
static void hv_then_prev_lap(struct hostile_drv_env *de)
{
	hv_put(de, vhere(de, PAD), 0, 0, 0, 0, RING - 2064);
	hv_comp_marked(de, 5, M(de->e.pos - RING, COMP));
}

static const struct hostile_dev_case vcases[] = {
	/* name, first round, after a first harvest, reason, good, refused by an add (D2V head) */
	{ "completion of an id never issued", hv_not_issued, NULL, "not a request in flight", 0, 0 },
	{ "completion id = num", hv_id_oob, NULL, "id out of range", 0, 0 },
	{ "completion of a request never published", hv_unpublished, NULL, "not a request in flight", 0, 0 },
	{ "duplicate completion", hv_duplicate, NULL, "not a request in flight", 1, 0 },
	{ "written = in_len + 1", hv_written_big, NULL, "written larger", 0, 0 },
	{ "written = 2^32-1", hv_written_huge, NULL, "written larger", 0, 0 },
	{ "written 1 on an out-only request", hv_written_readonly, NULL, "written larger", 2, 0 },
	{ "completion out of order", hv_out_of_order, NULL, "out of request order", 0, 0 },
	{ "a completion skipped", hv_skip_one, NULL, "out of request order", 1, 0 },
	{ "completion with b != 0", hv_b_nonzero, NULL, "field b", 0, 0 },
	{ "completion with field zero not zero", hv_zero, NULL, "field zero is not zero", 0, 0 },
	{ "REQUEST frame on V2D", hv_request, NULL, "unknown V2D frame type", 0, 0 },
	{ "mark of type 0 with a position", hv_type0, NULL, "unknown V2D frame type", 1, 0 },
	{ "mark of type 4", hv_type4, NULL, "unknown V2D frame type", 0, 0 },
	{ "mark of type 15", hv_type15, NULL, "unknown V2D frame type", 0, 0 },
	{ "V2D mark names the next slot", hv_mark_next, NULL, NAMES, 0, 0 },
	{ "V2D mark names the position a lap ahead", hv_mark_lap, NULL, NAMES, 0, 0 },
	{ "V2D mark names 2^32-16 (below the first)", hv_mark_below, NULL, NAMES, 0, 0 },
	{ "PAD at offset 0", hv_pad_zero, NULL, FITTED, 0, 0 },
	{ "V2D mark replays the harvested frame's position", hv_first, hv_then_mark_back, NAMES, 1, 0 },
	{ "PAD whose rest is half the data area", hv_deep_pad_half, NULL, FITTED, 5, 0 },
	{ "PAD with a non-zero a", hv_deep_2064, hv_then_pad_fields, "non-zero", 5, 0 },
	{ "completion running past the data area end", hv_deep_2064, hv_then_straddle, "past the end of the data area", 5, 0 },
	{ "completion whose mark names the previous lap", hv_deep_2064, hv_then_prev_lap, NAMES, 5, 0 },
	{ "D2V head runs past the driver's tail", hv_d2v_head_past, NULL, "ran past the driver's tail", 0, 1 },
	{ "D2V head moves backwards", hv_d2v_head_back, NULL, "D2V head moved backwards", 0, 1 },
	{ "D2V head not a multiple of 16", hv_d2v_head_odd, NULL, "D2V head not a multiple", 0, 1 },
};

#define NVCASES	(sizeof(vcases) / sizeof(vcases[0]))

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

/*
 * Hostile device case @n, outside the table because it needs a batch
 * harvest: the driver consumes A..D and X in one batch and releases
 * nothing until its end, so the PAD after X, which an honest device could
 * only write once V2D head passed 16, reaches into unreleased bytes.  One
 * harvest at a time would have accepted it.
 */
static void test_device_batch(unsigned n)
{
	static const char *const name = "a PAD the batch has not released room for";
	struct hostile_drv_env de;
	struct hostile_tally t = { .cookies = de.cookies };
	struct vshm_sg s = ring.late;
	void *ck[16];
	uint32_t len[16];
	int rc;

	if (hostile_drv_setup(&de, &ring)) {
		ok(0, "hostile device %u: setup", n);
		return;
	}
	s.off += de.e.buf;
	hv_deep(&de, 1808);
	hv_put(&de, vhere(&de, PAD), 0, 0, 0, 0, RING - 2064);
	rc = vshm_drv_vq_harvest_batch(de.d, ck, len, 16);
	for (int k = 0; k < rc; k++) {
		hostile_count(&t, ck[k], len[k]);
		t.good++;
	}
	if (rc >= 0)
		rc = vshm_drv_vq_harvest_batch(de.d, ck, len, 16);
	hostile_drv_verdict(de.d, rc, &t, 5, UNREL, n, name, &s, HOSTILE_POSTED + de.extra, QNUM);
	no_stray_writes(&de, &t, n);
	hostile_drv_fini(&de);
}

/*
 * Control: the same setup harvests honest completions, into the second lap
 * across the largest PAD, up to the 16 bytes kept free.
 */
static void test_device_control(void)
{
	struct hostile_drv_env de;

	if (hostile_drv_setup(&de, &ring)) {
		ok(0, "control: setup");
		return;
	}
	hv_comp(&de, 0, 100);
	hv_comp(&de, 1, 50);
	hv_comp(&de, 2, 0);
	hostile_harvested(&de, 0, 100, "A with its full length");
	hostile_harvested(&de, 1, 50, "B");
	hostile_harvested(&de, 2, 0, "C");
	hv_more(&de, 16384, 1808);
	hv_more(&de, 20480, 2032);
	hv_comp(&de, 3, 0);
	hv_comp(&de, 4, 0);
	hostile_harvested(&de, 3, 0, "D, published with X and Y");
	hostile_harvested(&de, 4, 0, "X, up to 2064");
	/* the device may fill up to the driver's released head + size - 16 */
	hv_put(&de, vhere(&de, PAD), 0, 0, 0, 0, RING - 2064);
	hv_comp(&de, 5, 0);
	hostile_harvested(&de, 5, 0, "Y after a PAD of size/2 - 16, at 4096");
	ok(!vshm_drv_vq_broken(de.d) && buffers_ok(&de, 100, 50), "control: healthy, replies in place");
	is(vshm_load_acquire(&vc(&de.e)->head), de.e.pos, "control: V2D head released");
	is(de.e.pos - 2064, RING - 16, "control: Y ended 16 bytes short of the head released before it");
	hostile_drv_fini(&de);
}

int main(void)
{
	hostile_driver_cases(&ring, dcases, sizeof(dcases) / sizeof(dcases[0]));
	test_driver_control();
	test_driver_control_pad();
	hostile_device_cases(&ring, vcases, NVCASES);
	test_device_batch(NVCASES + 1);
	test_device_control();
	return tap_done();
}
