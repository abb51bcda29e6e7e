// SPDX-License-Identifier: MIT
/*
 * FIFO ring against a hostile peer, both directions.
 *
 * Each case builds a fresh window and queue, lets the hostile side write its
 * ring words and frames by hand, and checks that our side refuses them:
 * -EIO, the queue broken for good with the expected reason, and nothing
 * touched outside the window.  The side under test runs on its own mapping
 * whose header and mailbox pages are PROT_NONE and which sits between guard
 * pages, so a stray access kills the test instead of passing silently.
 * Every outstanding request of a broken driver queue comes back once
 * through detach.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <vshm/vq.h>
#include "barrier.h"
#include "tap.h"

#define QNUM	8u
#define RING	4096u

static const uint64_t FIFO = 1ull << VSHM_F_FIFO_RING;

struct env {
	struct vshm_window w;	/* the hostile side's view */
	struct vshm_window t;	/* the side under test: ctrl pages PROT_NONE */
	struct vshm_vq_layout l;
	struct vshm_fifo_ctrl *dc, *vc;	/* D2V and V2D control blocks */
	uint8_t *dd, *vd;		/* their data areas */
	uint64_t buf;		/* scratch buffers */
	uint32_t pos;		/* the hostile producer's position */
};

static int env_init(struct env *e)
{
	struct vshm_window_opts o = { .size = 4u << 20, .vectors = 1 };
	int64_t used;

	memset(e, 0, sizeof(*e));
	if (vshm_window_create(&e->w, &o) || vshm_window_map(&e->t, e->w.fd))
		return -1;
	if (vshm_window_protect_ctrl(&e->t, PROT_NONE))
		return -1;
	used = vshm_vq_layout_fifo(&e->l, e->w.drv_lo, QNUM, RING);
	e->dc = (void *)(e->w.base + e->l.desc);
	e->vc = (void *)(e->w.base + e->l.avail);
	e->dd = e->w.base + e->l.desc + VSHM_FIFO_CTRL_SIZE;
	e->vd = e->w.base + e->l.avail + VSHM_FIFO_CTRL_SIZE;
	e->buf = (e->w.drv_lo + (uint64_t)used + 4095) & ~4095ull;
	return 0;
}

static void env_fini(struct env *e)
{
	vshm_window_unmap(&e->t);
	vshm_window_unmap(&e->w);
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
static void hd_req(struct env *e, uint16_t id, uint32_t out, uint32_t in)
{
	uint32_t len = (16 + out + 15) & ~15u, rest = RING - (e->pos & (RING - 1));

	if (rest < len) {
		put(e->dd, e->pos, rest, VSHM_FIFO_PAD, 0, 0, 0);
		e->pos += rest;
	}
	put(e->dd, e->pos, len, VSHM_FIFO_REQUEST, id, out, in);
	e->pos += len;
}

static void hd_raw(struct env *e, uint32_t len, uint16_t type, uint16_t id, uint32_t a, uint32_t b,
		   uint32_t advance)
{
	put(e->dd, e->pos, len, type, id, a, b);
	e->pos += advance;
}

static void hd_publish(struct env *e, uint32_t tail)
{
	vshm_store_release(&e->dc->tail, tail);
}

static void hd_setup(struct env *e)
{
	memset(e->dc, 0, VSHM_FIFO_CTRL_SIZE);
	memset(e->vc, 0, VSHM_FIFO_CTRL_SIZE);
	e->dc->size = RING;
	e->vc->size = RING;
}

typedef void (*hd_fn)(struct env *e);

static void hd_tail_jump(struct env *e) { hd_req(e, 0, 8, 8); hd_publish(e, RING + 16); }
static void hd_tail_backwards(struct env *e) { hd_req(e, 0, 8, 8); hd_publish(e, (uint32_t)-16); }
static void hd_tail_unaligned(struct env *e) { hd_req(e, 0, 8, 8); hd_publish(e, 8); }
static void hd_len_zero(struct env *e) { hd_raw(e, 0, VSHM_FIFO_REQUEST, 0, 0, 0, 16); hd_publish(e, e->pos); }
static void hd_len_odd(struct env *e) { hd_raw(e, 24, VSHM_FIFO_REQUEST, 0, 8, 0, 32); hd_publish(e, e->pos); }
static void hd_len_past_tail(struct env *e) { hd_raw(e, 64, VSHM_FIFO_REQUEST, 0, 48, 0, 32); hd_publish(e, e->pos); }
static void hd_out_mismatch(struct env *e) { hd_raw(e, 32, VSHM_FIFO_REQUEST, 0, 100, 0, 32); hd_publish(e, e->pos); }
static void hd_out_short(struct env *e) { hd_raw(e, 48, VSHM_FIFO_REQUEST, 0, 8, 0, 48); hd_publish(e, e->pos); }
static void hd_out_huge(struct env *e) { hd_raw(e, 32, VSHM_FIFO_REQUEST, 0, 0xfffffff8u, 0, 32); hd_publish(e, e->pos); }
static void hd_over_half(struct env *e) { hd_req(e, 0, 2040, 0); hd_publish(e, e->pos); }
static void hd_in_too_big(struct env *e) { hd_req(e, 0, 0, 2033); hd_publish(e, e->pos); }
static void hd_in_huge(struct env *e) { hd_req(e, 0, 0, 0xffffffffu); hd_publish(e, e->pos); }
static void hd_type_unknown(struct env *e) { hd_raw(e, 16, 7, 0, 0, 0, 16); hd_publish(e, e->pos); }
static void hd_type_completion(struct env *e) { hd_raw(e, 16, VSHM_FIFO_COMPLETION, 0, 0, 0, 16); hd_publish(e, e->pos); }
static void hd_pad_short(struct env *e) { hd_raw(e, 64, VSHM_FIFO_PAD, 0, 0, 0, 64); hd_req(e, 0, 0, 0); hd_publish(e, e->pos); }
static void hd_id_oob(struct env *e) { hd_req(e, QNUM, 8, 8); hd_publish(e, e->pos); }
static void hd_id_huge(struct env *e) { hd_req(e, 0xffff, 8, 8); hd_publish(e, e->pos); }
static void hd_id_twice(struct env *e) { hd_req(e, 3, 8, 8); hd_req(e, 3, 8, 8); hd_publish(e, e->pos); }
static void hd_segments(struct env *e) { hd_req(e, 0, 8, 8); hd_publish(e, e->pos); }
static void hd_good_then_bad(struct env *e) { hd_req(e, 0, 8, 8); hd_req(e, 1, 8, 8); hd_req(e, QNUM, 0, 0); hd_publish(e, e->pos); }

/* Three 1 KiB requests take the consumer to offset 3072. */
static void hd_three_kib(struct env *e)
{
	for (uint16_t i = 0; i < 3; i++)
		hd_req(e, i, 1008, 0);
	hd_publish(e, e->pos);
}

static void hd_then_wrap_frame(struct env *e) { hd_raw(e, 2048, VSHM_FIFO_REQUEST, 0, 2032, 0, 2048); hd_publish(e, e->pos); }
static void hd_then_pad_fields(struct env *e) { hd_raw(e, 1024, VSHM_FIFO_PAD, 1, 0, 0, 1024); hd_req(e, 0, 0, 0); hd_publish(e, e->pos); }
static void hd_then_tail_back(struct env *e) { hd_publish(e, e->pos - 16); }
static void hd_then_tail_stale(struct env *e) { hd_publish(e, e->pos - 3072); }

/* Two requests reserve all of V2D; the third needs the driver's head. */
static void hd_fill_v2d(struct env *e)
{
	hd_req(e, 0, 0, 2032);
	hd_req(e, 1, 0, 2032);
	hd_publish(e, e->pos);
}

static void hd_then_v2d_head_past(struct env *e) { hd_req(e, 2, 0, 2032); hd_publish(e, e->pos); vshm_store_release(&e->vc->head, 2 * 2048 + 16); }
static void hd_then_v2d_head_back(struct env *e) { hd_req(e, 2, 0, 2032); hd_publish(e, e->pos); vshm_store_release(&e->vc->head, (uint32_t)-16); }
static void hd_then_v2d_head_odd(struct env *e) { hd_req(e, 2, 0, 2032); hd_publish(e, e->pos); vshm_store_release(&e->vc->head, 8); }

static const struct {
	const char *name;
	hd_fn fn;		/* first round */
	hd_fn again;		/* after the first round is completed and released */
	const char *why;	/* expected reason, a substring */
	unsigned good;		/* requests popped before the refusal */
	unsigned max_iov;
	int keep;		/* run again while the first round is still held */
} dcases[] = {
	{ "D2V tail jumps past the ring size", hd_tail_jump, NULL, "more than the ring size", 0, 2, 0 },
	{ "D2V tail moves backwards (below head)", hd_tail_backwards, NULL, "backwards", 0, 2, 0 },
	{ "D2V tail not a multiple of 16", hd_tail_unaligned, NULL, "multiple of 16", 0, 2, 0 },
	{ "frame len 0", hd_len_zero, NULL, "length zero", 0, 2, 0 },
	{ "frame len 24", hd_len_odd, NULL, "not a multiple of 16", 0, 2, 0 },
	{ "frame beyond the produced bytes", hd_len_past_tail, NULL, "past the produced bytes", 0, 2, 0 },
	{ "out_len larger than the frame", hd_out_mismatch, NULL, "does not match its out_len", 0, 2, 0 },
	{ "frame longer than its out_len", hd_out_short, NULL, "does not match its out_len", 0, 2, 0 },
	{ "out_len 2^32-8 (wraps when rounded)", hd_out_huge, NULL, "does not match its out_len", 0, 2, 0 },
	{ "REQUEST over half the data area", hd_over_half, NULL, "longer than half", 0, 2, 0 },
	{ "in_len too big for V2D", hd_in_too_big, NULL, "in_len too big", 0, 2, 0 },
	{ "in_len 2^32-1", hd_in_huge, NULL, "in_len too big", 0, 2, 0 },
	{ "unknown frame type", hd_type_unknown, NULL, "unknown D2V frame type", 0, 2, 0 },
	{ "COMPLETION frame on D2V", hd_type_completion, NULL, "unknown D2V frame type", 0, 2, 0 },
	{ "PAD not reaching the end", hd_pad_short, NULL, "PAD does not reach the end", 0, 2, 0 },
	{ "id = num", hd_id_oob, NULL, "id out of range", 0, 2, 0 },
	{ "id = 65535", hd_id_huge, NULL, "id out of range", 0, 2, 0 },
	{ "id already in flight", hd_id_twice, NULL, "already in flight", 1, 2, 0 },
	{ "more segments than the device accepts", hd_segments, NULL, "more buffers", 0, 1, 0 },
	{ "two valid requests, then id = num", hd_good_then_bad, NULL, "id out of range", 2, 2, 0 },
	{ "frame runs past the data area end", hd_three_kib, hd_then_wrap_frame, "past the end of the data area", 3, 2, 0 },
	{ "PAD with a non-zero id", hd_three_kib, hd_then_pad_fields, "non-zero", 3, 2, 0 },
	{ "D2V tail moves backwards after progress", hd_three_kib, hd_then_tail_back, "backwards", 3, 2, 0 },
	{ "D2V tail back to an old value", hd_three_kib, hd_then_tail_stale, "backwards", 3, 2, 0 },
	{ "V2D head runs past the device's tail", hd_fill_v2d, hd_then_v2d_head_past, "ran past the device's tail", 2, 2, 0 },
	{ "V2D head moves backwards", hd_fill_v2d, hd_then_v2d_head_back, "V2D head moved backwards", 2, 2, 0 },
	{ "V2D head not a multiple of 16", hd_fill_v2d, hd_then_v2d_head_odd, "V2D head not a multiple", 2, 2, 0 },
	{ "D2V tail moves back over held requests", hd_three_kib, hd_then_tail_back, "backwards", 3, 2, 1 },
	{ "D2V tail back to the released head", hd_three_kib, hd_then_tail_stale, "backwards", 3, 2, 1 },
};

/*
 * Pop everything (held, not pushed, so ids stay in flight); when a case has
 * a second round, complete and release the first, then run it.
 */
static int pop_all(struct vshm_dev_vq *v, unsigned max_iov, unsigned *good, int keep)
{
	struct vshm_chain c;
	struct vshm_iov iov[4];
	uint16_t held[QNUM + 1];
	unsigned n = 0;
	int rc;

	while ((rc = vshm_dev_vq_pop(v, &c, iov, max_iov)) == 1) {
		(*good)++;
		if (n < QNUM)
			held[n++] = c.head;
	}
	if (keep)
		return rc;
	for (unsigned i = 0; i < n && rc == 0; i++)
		vshm_dev_vq_push(v, held[i], 0);
	if (rc == 0)
		vshm_dev_vq_publish(v);
	return rc;
}

static void test_hostile_driver(void)
{
	for (unsigned i = 0; i < sizeof(dcases) / sizeof(dcases[0]); i++) {
		struct env e;
		struct vshm_dev_vq *v;
		struct vshm_chain c;
		struct vshm_iov iov[4];
		unsigned good = 0;
		const char *err;
		int rc;

		if (env_init(&e)) {
			ok(0, "hostile driver %u: setup", i + 1);
			continue;
		}
		hd_setup(&e);
		if (vshm_dev_vq_create(&v, &e.t, &e.l, FIFO, NULL)) {
			ok(0, "hostile driver %u: create", i + 1);
			env_fini(&e);
			continue;
		}
		dcases[i].fn(&e);
		rc = pop_all(v, dcases[i].max_iov, &good, dcases[i].keep);
		if (rc == 0 && dcases[i].again) {
			/* The released first round is the hostile side's to reuse. */
			vshm_store_release(&e.vc->head, vshm_load_acquire(&e.vc->tail));
			dcases[i].again(&e);
			rc = pop_all(v, dcases[i].max_iov, &good, 0);
		}
		err = vshm_dev_vq_error(v);
		ok(rc == -EIO && vshm_dev_vq_broken(v) && good == dcases[i].good &&
		   err && strstr(err, dcases[i].why),
		   "hostile driver %u: %s -> refused (%s)", i + 1, dcases[i].name, err ? err : "not refused");
		if (good != dcases[i].good)
			diag("popped %u, expected %u", good, dcases[i].good);
		ok(vshm_dev_vq_pop(v, &c, iov, 4) == -EIO && vshm_dev_vq_push(v, 0, 0) == -EIO &&
		   vshm_dev_vq_publish(v) == -EIO && vshm_dev_vq_enable_notify(v) == -EIO,
		   "hostile driver %u: broken is sticky", i + 1);
		vshm_dev_vq_destroy(v);
		env_fini(&e);
	}
}

/* The harness accepts honest rings (it is not vacuous); sizes are kept. */
static void test_driver_control(void)
{
	struct env e;
	struct vshm_dev_vq *v;
	struct vshm_chain c;
	struct vshm_iov iov[2];
	unsigned good = 0;
	int rc;

	if (env_init(&e)) {
		ok(0, "control: setup");
		return;
	}
	hd_setup(&e);
	vshm_dev_vq_create(&v, &e.t, &e.l, FIFO, NULL);
	/* a 2048-byte frame, a zero-length one, and one that ends exactly at
	 * the end of the data area: a full ring */
	hd_req(&e, 0, 2032, 0);
	hd_req(&e, 1, 0, 0);
	hd_req(&e, 2, 2016, 16);
	hd_publish(&e, e.pos);
	rc = pop_all(v, 2, &good, 0);
	ok(rc == 0 && good == 3 && !vshm_dev_vq_broken(v), "control: a full ring of honest requests pops (%s)",
	   vshm_dev_vq_error(v) ? vshm_dev_vq_error(v) : "healthy");

	/* The driver rewrites both sizes after enable: the device kept its
	 * copies, so a frame valid only for the bigger size is refused. */
	e.dc->size = 1u << 20;
	e.vc->size = 1u << 20;
	vshm_store_release(&e.vc->head, vshm_load_acquire(&e.vc->tail));
	hd_req(&e, 4, 100, 100);
	hd_publish(&e, e.pos);
	is(vshm_dev_vq_pop(v, &c, iov, 2), 1, "control: size rewritten after enable, honest frame still pops");
	ok(c.iov[0].base == e.t.base + e.l.desc + 256 + ((e.pos - 128) & (RING - 1)) + 16,
	   "control: at the position the 4 KiB ring puts it");
	hd_raw(&e, 3024, VSHM_FIFO_REQUEST, 5, 3008, 0, 3024);
	hd_publish(&e, e.pos);
	is(vshm_dev_vq_pop(v, &c, iov, 2), -EIO, "control: a 3 KiB frame is judged by the kept 4 KiB size");
	vshm_dev_vq_destroy(v);
	env_fini(&e);
}

/* ======================================================================== */
/* Hostile device vs our driver side                                        */

#define NREQ	4
#define CANARY	0x5a

struct drv_env {
	struct env e;
	struct vshm_drv_vq *d;
	int cookies[16];
	uint16_t ids[NREQ];	/* as the driver put them in its frames */
	uint32_t dpos[NREQ];	/* D2V position of each REQUEST */
	uint32_t res[NREQ];	/* completion reservations */
	uint32_t d_pub;		/* D2V tail the driver published */
	int extra;		/* requests added during the case */
};

/*
 * Post A = 64 out + 100 in, B = 50 in, C = 10 out, publish; then D = 8 out,
 * added but never published.  In buffers sit between canaries.
 */
static int drv_setup(struct drv_env *de)
{
	struct env *e = &de->e;
	uint32_t pos = 0;

	if (env_init(e) || vshm_drv_vq_create(&de->d, &e->t, &e->l, FIFO, NULL))
		return -1;
	memset(e->w.base + e->buf, CANARY, 65536);
	struct vshm_sg a[2] = { { e->buf, 64, 0 }, { e->buf + 4096, 100, 0 } };
	struct vshm_sg b = { e->buf + 8192, 50, 0 }, c = { e->buf + 12288, 10, 0 };
	if (vshm_drv_vq_add(de->d, a, 1, 1, &de->cookies[0]) ||
	    vshm_drv_vq_add(de->d, &b, 0, 1, &de->cookies[1]) ||
	    vshm_drv_vq_add(de->d, &c, 1, 0, &de->cookies[2]))
		return -1;
	if (vshm_drv_vq_publish(de->d) < 0)
		return -1;
	if (vshm_drv_vq_add(de->d, &c, 1, 0, &de->cookies[3]))
		return -1;
	for (int i = 0; i < NREQ; i++) {
		const struct vshm_fifo_frame *f = (const void *)(e->dd + pos);

		de->ids[i] = f->id;
		de->dpos[i] = pos;
		de->res[i] = (16 + f->b + 15) & ~15u;
		pos += f->len;
	}
	de->d_pub = vshm_load_acquire(&e->dc->tail);
	return 0;
}

/* The hostile device writes a frame at its V2D position and moves on. */
static void hv_put(struct drv_env *de, uint32_t len, uint16_t type, uint16_t id, uint32_t a, uint32_t b)
{
	put(de->e.vd, de->e.pos, len, type, id, a, b);
	de->e.pos += len;
}

static void hv_comp(struct drv_env *de, int i, uint32_t written)
{
	uint8_t *p = de->e.vd + ((de->e.pos + 16) & (RING - 1));

	for (uint32_t j = 0; j < written && j < de->res[i] - 16; j++)
		p[j] = (uint8_t)(i * 16 + j);
	hv_put(de, de->res[i], VSHM_FIFO_COMPLETION, de->ids[i], written, 0);
}

static void hv_tail(struct drv_env *de, uint32_t t)
{
	vshm_store_release(&de->e.vc->tail, t);
}

typedef void (*hv_fn)(struct drv_env *de);

static void hv_not_issued(struct drv_env *de)
{
	uint16_t id = 0;

	while (id == de->ids[0] || id == de->ids[1] || id == de->ids[2] || id == de->ids[3])
		id++;
	hv_put(de, 16, VSHM_FIFO_COMPLETION, id, 0, 0);
	hv_tail(de, de->e.pos);
}
static void hv_id_oob(struct drv_env *de) { hv_put(de, 128, VSHM_FIFO_COMPLETION, QNUM, 0, 0); hv_tail(de, de->e.pos); }
static void hv_unpublished(struct drv_env *de) { hv_put(de, 16, VSHM_FIFO_COMPLETION, de->ids[3], 0, 0); hv_tail(de, de->e.pos); }
static void hv_duplicate(struct drv_env *de) { hv_comp(de, 0, 10); hv_comp(de, 0, 10); hv_tail(de, de->e.pos); }
static void hv_len_not_res(struct drv_env *de) { hv_put(de, de->res[0] + 16, VSHM_FIFO_COMPLETION, de->ids[0], 0, 0); hv_tail(de, de->e.pos); }
static void hv_len_short(struct drv_env *de) { hv_put(de, 16, VSHM_FIFO_COMPLETION, de->ids[0], 0, 0); hv_tail(de, de->e.pos); }
static void hv_written_big(struct drv_env *de) { hv_comp(de, 0, 101); hv_tail(de, de->e.pos); }
static void hv_written_huge(struct drv_env *de) { hv_comp(de, 0, 0xffffffffu); hv_tail(de, de->e.pos); }
static void hv_written_readonly(struct drv_env *de) { hv_comp(de, 0, 0); hv_comp(de, 1, 0); hv_comp(de, 2, 1); hv_tail(de, de->e.pos); }
static void hv_out_of_order(struct drv_env *de) { hv_comp(de, 1, 50); hv_tail(de, de->e.pos); }
static void hv_skip_one(struct drv_env *de) { hv_comp(de, 0, 1); hv_comp(de, 2, 0); hv_tail(de, de->e.pos); }
static void hv_b_nonzero(struct drv_env *de) { hv_put(de, de->res[0], VSHM_FIFO_COMPLETION, de->ids[0], 1, 1); hv_tail(de, de->e.pos); }
static void hv_request(struct drv_env *de) { hv_put(de, 16, VSHM_FIFO_REQUEST, de->ids[0], 0, 0); hv_tail(de, de->e.pos); }
static void hv_type_unknown(struct drv_env *de) { hv_put(de, 16, 0, 0, 0, 0); hv_tail(de, de->e.pos); }
static void hv_len_zero(struct drv_env *de) { hv_put(de, 0, VSHM_FIFO_COMPLETION, de->ids[0], 0, 0); hv_tail(de, 16); }
static void hv_len_odd(struct drv_env *de) { hv_put(de, 120, VSHM_FIFO_COMPLETION, de->ids[0], 0, 0); hv_tail(de, 128); }
static void hv_len_past_tail(struct drv_env *de) { hv_comp(de, 0, 1); hv_tail(de, 64); }
static void hv_tail_jump(struct drv_env *de) { hv_comp(de, 0, 1); hv_tail(de, RING + 16); }
static void hv_tail_backwards(struct drv_env *de) { hv_comp(de, 0, 1); hv_tail(de, (uint32_t)-16); }
static void hv_tail_unaligned(struct drv_env *de) { hv_comp(de, 0, 1); hv_tail(de, 8); }
static void hv_pad_short(struct drv_env *de) { hv_put(de, 64, VSHM_FIFO_PAD, 0, 0, 0); hv_comp(de, 0, 1); hv_tail(de, de->e.pos); }
static void hv_pad_fields(struct drv_env *de) { hv_put(de, RING, VSHM_FIFO_PAD, 0, 7, 0); hv_tail(de, de->e.pos); }
static void hv_pad_then_ok(struct drv_env *de) { hv_comp(de, 0, 100); hv_tail(de, de->e.pos); }

/* D2V head: the driver reloads it when it lacks room for an add. */
static void hv_d2v_head_past(struct drv_env *de) { vshm_store_release(&de->e.dc->head, de->d_pub + 16); }
static void hv_d2v_head_back(struct drv_env *de) { vshm_store_release(&de->e.dc->head, (uint32_t)-16); }
static void hv_d2v_head_odd(struct drv_env *de) { vshm_store_release(&de->e.dc->head, 8); }

/* Second round: after A was harvested honestly. */
static void hv_then_tail_back(struct drv_env *de) { hv_tail(de, de->e.pos - 16); }
static void hv_then_wrap(struct drv_env *de)
{
	/* a PAD that stops 64 bytes before the end */
	hv_put(de, RING - 64 - de->e.pos, VSHM_FIFO_PAD, 0, 0, 0);	/* bad PAD */
	hv_tail(de, de->e.pos);
}
static void hv_then_straddle(struct drv_env *de)
{
	/* a frame 16 bytes longer than the rest of the data area */
	hv_put(de, RING - (de->e.pos & (RING - 1)) + 16, VSHM_FIFO_COMPLETION, de->ids[1], 0, 0);
	hv_tail(de, de->e.pos);
}

static const struct {
	const char *name;
	hv_fn fn;
	hv_fn again;		/* after the good ones were harvested */
	const char *why;
	unsigned good;
	int add;		/* the refusal comes from add (D2V head) */
} vcases[] = {
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
static int buffers_ok(struct drv_env *de, uint32_t a_len, uint32_t b_len)
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

static void test_hostile_device(void)
{
	for (unsigned i = 0; i < sizeof(vcases) / sizeof(vcases[0]); i++) {
		struct drv_env de;
		struct vshm_sg s;
		int returned[16] = { 0 }, twice = 0;
		uint32_t lens[16] = { 0 };
		unsigned good = 0, detached = 0;
		const char *err;
		void *ck;
		uint32_t len;
		int rc;

		memset(&de, 0, sizeof(de));
		if (drv_setup(&de)) {
			ok(0, "hostile device %u: setup", i + 1);
			continue;
		}
		s = (struct vshm_sg){ de.e.buf + 16384, 2032, 0 };
		vcases[i].fn(&de);
		for (int round = 0; round < 2; round++) {
			while ((rc = vshm_drv_vq_harvest(de.d, &ck, &len)) == 1) {
				int k = (int)((int *)ck - de.cookies);

				if (k >= 0 && k < 16 && returned[k]++)
					twice++;
				if (k >= 0 && k < 16)
					lens[k] = len;
				good++;
			}
			if (rc != 0 || !vcases[i].again || round)
				break;
			vcases[i].again(&de);
		}
		if (vcases[i].add) {
			/* Adds of 2 KiB frames until the driver needs the head. */
			for (int k = 0; k < 4 && (rc = vshm_drv_vq_add(de.d, &s, 1, 0, &de.cookies[4 + k])) == 0; k++)
				de.extra++;
		}
		err = vshm_drv_vq_error(de.d);
		ok(rc == -EIO && vshm_drv_vq_broken(de.d) && good == vcases[i].good &&
		   err && strstr(err, vcases[i].why),
		   "hostile device %u: %s -> refused (%s)", i + 1, vcases[i].name, err ? err : "not refused");
		if (good != vcases[i].good)
			diag("harvested %u, expected %u", good, vcases[i].good);
		ok(vshm_drv_vq_harvest(de.d, &ck, &len) == -EIO &&
		   vshm_drv_vq_add(de.d, &s, 1, 0, &de.cookies[15]) == -EIO &&
		   vshm_drv_vq_publish(de.d) == -EIO && vshm_drv_vq_enable_cb(de.d) == -EIO,
		   "hostile device %u: -EIO from then on", i + 1);
		while ((ck = vshm_drv_vq_detach_unused(de.d)) != NULL && detached < 32) {
			int k = (int)((int *)ck - de.cookies);

			if (k < 0 || k >= 16 || returned[k]++)
				twice++;
			detached++;
		}
		ok(detached + good == (unsigned)(NREQ + de.extra) && !twice &&
		   vshm_drv_vq_num_free(de.d) == QNUM && vshm_drv_vq_inflight(de.d) == 0,
		   "hostile device %u: every request accounted for once", i + 1);
		ok(buffers_ok(&de, lens[0], lens[1]), "hostile device %u: nothing written outside the in buffers", i + 1);
		vshm_drv_vq_destroy(de.d);
		env_fini(&de.e);
	}
}

/* Control: the same setup harvests honest completions, across a PAD. */
static void test_device_control(void)
{
	struct drv_env de;
	void *ck;
	uint32_t len;

	memset(&de, 0, sizeof(de));
	if (drv_setup(&de)) {
		ok(0, "control: setup");
		return;
	}
	hv_comp(&de, 0, 100);
	hv_put(&de, RING - de.e.pos, VSHM_FIFO_PAD, 0, 0, 0);
	hv_tail(&de, de.e.pos);
	ok(vshm_drv_vq_harvest(de.d, &ck, &len) == 1 && ck == &de.cookies[0] && len == 100,
	   "control: A with its full length");
	/* the device may fill up to the driver's released head + size */
	hv_comp(&de, 1, 50);
	hv_comp(&de, 2, 0);
	hv_tail(&de, de.e.pos);
	ok(vshm_drv_vq_harvest(de.d, &ck, &len) == 1 && ck == &de.cookies[1] && len == 50,
	   "control: B after a PAD to the end");
	ok(vshm_drv_vq_harvest(de.d, &ck, &len) == 1 && ck == &de.cookies[2] && len == 0,
	   "control: C");
	ok(!vshm_drv_vq_broken(de.d) && buffers_ok(&de, 100, 50), "control: healthy, replies in place");
	is(vshm_load_acquire(&de.e.vc->head), de.e.pos, "control: V2D head released");
	vshm_drv_vq_destroy(de.d);
	env_fini(&de.e);
}

int main(void)
{
	test_hostile_driver();
	test_driver_control();
	test_hostile_device();
	test_device_control();
	return tap_done();
}
