// SPDX-License-Identifier: MIT
/*
 * The driver-side control plane against a hostile device.
 *
 * The input plays the device for a driver runtime (src/drvrt.c) that goes
 * through what drivers/rng.c and drivers/blk.c do: attach (session
 * handshake), GET_DEVICES, device init (info, reset, features), config
 * read and write, queue setup, DRIVER_OK, status, raw calls, one request
 * through a queue with waits, and, when the device went away, re-attach
 * and re-init, then detach.  A header of HDR bytes picks the driver's
 * options and the device's shape; the rest is a list of records, read one
 * device step at a time.  A step runs wherever the driver waits: in its
 * sleeps (the handshake, reset polling) and in its doorbell waits (the
 * mailbox, a queue).  Each record answers a pending request honestly, or
 * with a corrupted body or header, truncated, twice, or not at all; keeps
 * it for later (reordering); posts events (EVENT_CONFIG with NEEDS_RESET,
 * generation flaps), predicted responses or raw bytes; rewrites role
 * words, mailbox indices or the driver area; restarts the device; serves
 * or lies about the queues; or lets virtual time pass.  Once the input is
 * used up the device is honest, so short inputs reach a full attach.
 *
 * Time is virtual: drvrt's clock and sleeps are replaced (its VSHM_FUZZ
 * hook), the doorbell is the harness's, and the mailbox never sleeps (the
 * device drains requests the moment the driver looks for room).
 * VSHM_DRVRT_VERBOSE=1 prints a line per API call.
 *
 * Header bytes (0 = the default): 0: ring layout (bits 0-1), strict config
 * generation (2), a peer-change hook (3), another driver holds the role
 * (4), no I/O (5); 1: device number; 2: device type asked for; 3: features
 * wanted; 4: queues, entries, indirect tables; 5, 6: config offset and
 * length; 7, 8: call and attach timeouts (ms); 9: wait timeout; 10: I/O
 * size; 11: re-attach (bit 0), raw calls (1, 2), re-init (3), leave a
 * request in flight (4); 12: offered features toggled; 13: queue size;
 * 14: device 1's type; 15: FEATURES_OK refused.
 *
 * Invariants (beyond ASan, UBSan and LeakSanitizer):
 *  - every request decodes, is a request, and carries a fresh token;
 *  - of the messages the driver consumed while waiting for a response, it
 *    took the first one matching its token, message id, bus bit and
 *    device number, and only that one; when it went on with the same API
 *    call, or the call succeeded, it had taken one, and that answer was not
 *    one the API must refuse (echo fields, FEATURES_OK, DRIVER_OK, the
 *    queue read back, the device type, ...), and a reset was not taken as
 *    done before the status read 0;
 *  - what a successful call returns is what that answer said (status,
 *    device numbers, device info, negotiated features within what was
 *    offered, config bytes under one generation, raw responses);
 *  - SET_CONFIG carries the generation of the last EVENT_CONFIG consumed
 *    (strict generation only); needs_reset is set only by a consumed
 *    NEEDS_RESET event, is sticky until a reset completes (the status read
 *    0), and makes waits fail;
 *  - re-init refuses requests in flight, asks for the same features and
 *    puts every queue back where it was;
 *  - once the driver found the device gone, it stays gone and every call
 *    fails, until a re-attach succeeds;
 *  - every exchange ends within the call timeout and every API call within
 *    its bound, in virtual time and in device steps;
 *  - destroy releases the driver role, runs the destroy hook once, and
 *    leaves no allocation and no file descriptor behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vshm/drvrt.h>
#include <vshm/mbox.h>
#include <vshm/session.h>
#include "barrier.h"
#include "mbox_ring.h"

/* drvrt's clock and sleep, replaceable in fuzz builds (src/drvrt.c). */
extern int64_t (*__vshm_fuzz_drvrt_now)(void);
extern void (*__vshm_fuzz_drvrt_sleep)(int64_t ns);

#define WIN		(1u << 20)
#define HDR		16
#define NDEV		2		/* devices the model serves: 0, 1 */
#define MAXD		4		/* device numbers the checks track */
#define MAXQ		3
#define CFG_MAX		300		/* > one GET_CONFIG: reads are chunked */
#define PEND_MAX	64
#define REC_MAX		4096		/* V2D messages per session */
#define LOG_MAX		4096		/* requests per input */
#define API_MAX		256
#define STEP_RECORDS	16
#define MS		1000000ll
#define QUIET		(20 * MS)	/* an honest idle step */
#define OVERSHOOT	(130 * MS)	/* two steps past a deadline, at most */
#define DRV_PEER	0
#define DEV_PEER	1

static struct vshm_window w;

#define CHECK(c, why) do { if (!(c)) fail(__LINE__, why); } while (0)

static void fail(int line, const char *why)
{
	fprintf(stderr, "fuzz_drvrt:%d: %s\n", line, why);
	__builtin_trap();
}

/* ======================================================================== */
/* Input and virtual time                                                   */

static const uint8_t *in;
static size_t in_len, in_pos;
static uint8_t hdr[HDR];
static int64_t vnow;
static unsigned hooks;		/* device steps */

static int more(void) { return in_pos < in_len; }
static uint8_t byte(void) { return in_pos < in_len ? in[in_pos++] : 0; }

static uint32_t word(void)
{
	uint32_t v = byte();

	v |= (uint32_t)byte() << 8;
	v |= (uint32_t)byte() << 16;
	return v | (uint32_t)byte() << 24;
}

static int64_t v_now(void) { return vnow; }

/* ======================================================================== */
/* The mailbox, as the device sees it                                       */

static struct vshm_mbox_ring *d2v(void) { return fuzz_mbox_ring(&w, VSHM_MBOX_D2V); }
static struct vshm_mbox_ring *v2d(void) { return fuzz_mbox_ring(&w, VSHM_MBOX_V2D); }
static uint32_t ld32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static void st32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

/* What the driver reads at each V2D index: snapshots taken when published. */
struct rec {
	int framed;			/* the driver's mailbox takes it */
	int decoded;			/* and the codec does */
	struct vshm_msg m;
};

static struct rec recs[REC_MAX];
static uint32_t dev_prod;		/* V2D: ours */
static uint32_t dev_cons;		/* D2V: ours */
static uint32_t scan_pos;		/* V2D consumed and seen by the model */
static int cons_armed;			/* a hostile D2V cons for the next send */
static uint32_t cons_hostile;

static uint32_t drv_cons(void) { return ld32(&v2d()->cons); }

static void snapshot(uint32_t idx)
{
	struct vshm_mbox_slot *s = fuzz_mbox_slot(&w, VSHM_MBOX_V2D, idx);
	struct rec *r = &recs[idx];
	uint32_t len = s->len;

	r->framed = len >= VSHM_MBOX_MSG_MIN && len <= VSHM_MSG_MAX_SIZE &&
		    (s->msg[6] | (uint32_t)s->msg[7] << 8) == len;
	r->decoded = r->framed && vshm_msg_decode(s->msg, len, VSHM_MSG_MAX_SIZE, &r->m) == 0;
}

/* Publish @len bytes with slot length @slen; 1 if posted. */
static int post_raw(const uint8_t *buf, uint32_t len, uint32_t slen)
{
	struct vshm_mbox_slot *s;

	if (dev_prod >= REC_MAX || dev_prod - drv_cons() >= VSHM_MBOX_SLOTS)
		return 0;
	s = fuzz_mbox_slot(&w, VSHM_MBOX_V2D, dev_prod);
	memset(s, 0, sizeof(*s));
	memcpy(s->msg, buf, len);
	s->len = slen;
	snapshot(dev_prod);
	st32(&v2d()->prod, ++dev_prod);
	return 1;
}

static int encode(const struct vshm_msg *m, uint8_t *buf)
{
	return vshm_msg_encode(m, buf, VSHM_MSG_MAX_SIZE, VSHM_MSG_MAX_SIZE);
}

static int post_msg(const struct vshm_msg *m)
{
	uint8_t buf[VSHM_MSG_MAX_SIZE];
	int n = encode(m, buf);

	return n > 0 ? post_raw(buf, (uint32_t)n, (uint32_t)n) : 0;
}

/* ======================================================================== */
/* API calls and the requests they send                                     */

enum { A_CREATE, A_GETDEV, A_INIT, A_CFGR, A_CFGW, A_SETUPVQ, A_READY, A_STATUS,
       A_CALL, A_WAIT, A_IO, A_REATTACH, A_REINIT, A_DESTROY_DEV, A_DESTROY };

struct api {
	int kind;
	uint16_t dev_num;
	uint32_t device_id;		/* INIT: asked for (0 = any) */
	uint32_t num;			/* SETUPVQ: entries asked for */
	uint32_t len;			/* CFGR, CFGW */
	unsigned first, nreq;		/* requests log[first..first+nreq) */
	uint32_t c0;			/* the driver's V2D cons before it */
	int64_t t0;
	unsigned hooks0;
	size_t in0;
};

struct req {
	struct vshm_msg m;
	int api;
	int has_s, fin, took;		/* took: the driver took recs[c - 1] */
	uint32_t s, c;			/* V2D indices consumed while it waited */
	int64_t t;			/* virtual time it was sent */
	uint32_t gen[MAXD];		/* generations the driver had seen then */
	int label;
};

enum { L_NONE, L_ACCEPT, L_REFUSE };

static struct api apis[API_MAX];
static unsigned napi;
static int cur = -1;			/* the API call in progress */
static struct req logv[LOG_MAX];
static unsigned nlog;
static unsigned pend[PEND_MAX], npend;	/* requests not answered yet */
static int s_valid;
static uint32_t s_next;
static int64_t t_next;
static uint32_t gen_next[MAXD];

/* What the driver has consumed: EVENT_CONFIG as drvrt's on_event sees it. */
static uint32_t mgen[MAXD];
static int nr_seen[MAXD];		/* a NEEDS_RESET event, this session */
static int nr_due[MAXD];		/* ... since the last API that may reset */

/* Driver-side facts the checks need. */
static struct vshm_msg_dev_info info0;	/* at init */
static uint64_t feat0;
static int ring_opt;
static int64_t call_timeout, attach_timeout, wait_timeout;

/* An EVENT_CONFIG, as drvrt's on_event takes it (NEEDS_RESET: @nr). */
static int config_event(const struct rec *r, int nr)
{
	return r->decoded && !vshm_msg_is_resp(&r->m) && !vshm_msg_is_bus(&r->m) &&
	       r->m.id == VSHM_MSG_EVENT_CONFIG &&
	       (!nr || (r->m.u.event_config.status & VSHM_MSG_STATUS_NEEDS_RESET));
}

static void scan_events(uint32_t c)
{
	for (; scan_pos < c && scan_pos < REC_MAX; scan_pos++) {
		const struct rec *r = &recs[scan_pos];

		if (!config_event(r, 0) || r->m.dev_num >= MAXD)
			continue;
		mgen[r->m.dev_num] = r->m.u.event_config.generation;
		if (r->m.u.event_config.status & VSHM_MSG_STATUS_NEEDS_RESET)
			nr_seen[r->m.dev_num] = nr_due[r->m.dev_num] = 1;
	}
}

static int is_pow2(uint32_t x) { return x && !(x & (x - 1)); }

/*
 * How a response @m to request @r must be treated: not an answer to it
 * (L_NONE), an answer the API may go on with (L_ACCEPT), or one it must
 * fail on once it took it (L_REFUSE).
 */
static int classify(const struct req *r, const struct vshm_msg *m)
{
	const struct vshm_msg *q = &r->m;
	const struct api *a = &apis[r->api];
	const struct req *prev = r > logv && r[-1].api == r->api ? &r[-1] : NULL;
	int bad = 0;

	if (!vshm_msg_is_resp(m) || m->token != q->token || m->id != q->id ||
	    vshm_msg_is_bus(m) != vshm_msg_is_bus(q) || m->dev_num != q->dev_num)
		return L_NONE;
	if (vshm_msg_is_bus(q)) {
		if (q->id == VSHM_MSG_BUS_GET_DEVICES)
			bad = m->u.get_devices.offset != q->u.get_devices.offset ||
			      m->u.get_devices.count > q->u.get_devices.count;
		return bad ? L_REFUSE : L_ACCEPT;
	}
	switch (q->id) {
	case VSHM_MSG_GET_DEVICE_INFO: {
		const struct vshm_msg_dev_info *i = &m->u.dev_info;

		bad = i->max_virtqueues == 0 || i->max_virtqueues > 64 || i->num_feature_blocks < 2;
		if (a->kind == A_INIT)
			bad |= a->device_id && i->device_id != a->device_id;
		if (a->kind == A_REINIT)
			bad |= (info0.device_id && i->device_id != info0.device_id) ||
			       i->max_virtqueues != info0.max_virtqueues ||
			       i->config_size != info0.config_size;
		break;
	}
	case VSHM_MSG_GET_DEVICE_FEATURES: {
		uint64_t off = m->u.feat.features[0] | (uint64_t)m->u.feat.features[1] << 32;
		uint64_t ring = ring_opt == VSHM_RING_PACKED ? 1ull << VSHM_F_RING_PACKED :
				ring_opt == VSHM_RING_FIFO ? 1ull << VSHM_F_FIFO_RING : 0;

		bad = m->u.feat.block_index != 0 || m->u.feat.num_blocks != 2 ||
		      !(off & (1ull << VSHM_F_VERSION_1));
		if (a->kind == A_REINIT)
			bad |= (feat0 & ~off) != 0;
		else
			bad |= ring && !(off & ring);
		break;
	}
	case VSHM_MSG_SET_DEVICE_STATUS: {
		uint32_t want = q->u.status.status, got = m->u.status.status;

		if (want & VSHM_MSG_STATUS_DRIVER_OK)
			bad = !(got & VSHM_MSG_STATUS_DRIVER_OK) || (got & VSHM_MSG_STATUS_NEEDS_RESET);
		else if (want & VSHM_MSG_STATUS_FEATURES_OK)
			bad = !(got & VSHM_MSG_STATUS_FEATURES_OK);
		break;
	}
	case VSHM_MSG_GET_CONFIG:
		bad = m->u.cfg.offset != q->u.cfg.offset || m->u.cfg.length != q->u.cfg.length;
		break;
	case VSHM_MSG_SET_CONFIG:
		bad = m->u.cfg.length != q->u.cfg.length;
		break;
	case VSHM_MSG_GET_VQUEUE: {
		const struct vshm_msg_get_vq *g = &m->u.get_vq;

		if (a->kind != A_SETUPVQ && a->kind != A_REINIT)
			break;
		if (prev && prev->m.id == VSHM_MSG_SET_VQUEUE) {
			const struct vshm_msg_set_vq *sv = &prev->m.u.set_vq;

			bad = !(g->flags & VSHM_MSG_VQ_ENABLED) || g->cur_size != sv->size ||
			      g->desc_addr != sv->desc_addr || g->driver_addr != sv->driver_addr ||
			      g->device_addr != sv->device_addr;
		} else {
			uint32_t num = a->num ? a->num : g->max_size < 256 ? g->max_size : 256;

			bad = g->index != q->u.get_vq.index || g->max_size == 0 ||
			      (g->flags & VSHM_MSG_VQ_ENABLED) || num > g->max_size || !is_pow2(num);
		}
		break;
	}
	default:
		break;
	}
	return bad ? L_REFUSE : L_ACCEPT;
}

/* The driver is done waiting for @r: it has consumed V2D up to @c. */
static void finalize(struct req *r, uint32_t c)
{
	if (r->fin)
		return;
	r->fin = 1;
	if (!r->has_s)
		return;
	CHECK(c >= r->s && c <= REC_MAX, "the driver's V2D cons went backwards");
	r->c = c;
	for (uint32_t i = r->s; i + 1 < c; i++)
		CHECK(!recs[i].decoded || classify(r, &recs[i].m) == L_NONE,
		      "the driver read past the first response matching its request");
	if (c > r->s && recs[c - 1].decoded) {
		r->label = classify(r, &recs[c - 1].m);
		r->took = r->label != L_NONE;
	}
	CHECK(vnow - r->t <= call_timeout + OVERSHOOT, "an exchange outlived the call timeout");
}

/* @r was followed by @next in the same API call: @r must have succeeded. */
static void went_on(const struct req *r, const struct req *next)
{
	const struct vshm_msg *m;

	if (!r->has_s)
		return;
	CHECK(r->fin && r->took, "the driver went on without an answer");
	CHECK(r->label == L_ACCEPT, "the driver went on after an answer it must refuse");
	m = &recs[r->c - 1].m;
	if (apis[r->api].kind == A_DESTROY_DEV || apis[r->api].kind == A_INIT ||
	    apis[r->api].kind == A_REINIT) {
		int resetting = (r->m.id == VSHM_MSG_SET_DEVICE_STATUS && r->m.u.status.status == 0) ||
				r->m.id == VSHM_MSG_GET_DEVICE_STATUS;

		if (resetting && m->u.status.status != 0)
			CHECK(next->m.id == VSHM_MSG_GET_DEVICE_STATUS,
			      "a reset was taken as done before the status read 0");
	}
}

static const char *const api_names[] = {
	"create", "get_devices", "init", "config_read", "config_write", "setup_vq", "ready",
	"status", "call", "wait", "io", "reattach", "reinit", "dev_destroy", "destroy",
};
static int verbose;		/* VSHM_DRVRT_VERBOSE=1: a line per API call */

static const unsigned max_reqs[] = {
	[A_GETDEV] = 64, [A_INIT] = 107, [A_CFGW] = 1, [A_SETUPVQ] = 3, [A_READY] = 1,
	[A_STATUS] = 1, [A_CALL] = 1, [A_REINIT] = 107 + 2 * MAXQ + 1, [A_DESTROY_DEV] = 101,
};

static unsigned api_max_reqs(const struct api *a)
{
	if (a->kind == A_CFGR)
		return 8 * ((a->len + VSHM_MSG_MAX_CONFIG_DATA - 1) / VSHM_MSG_MAX_CONFIG_DATA);
	return a->kind < (int)(sizeof(max_reqs) / sizeof(max_reqs[0])) ? max_reqs[a->kind] : 0;
}

static void session_follow(void);
static uint16_t last_token;
static uint16_t dnum;			/* the device the driver sets up */
static struct vshm_msg_set_vq vq_set[MAXQ];	/* how each queue was programmed */

/* What a request must say, given the API call that sent it. */
static void check_request(const struct req *r)
{
	const struct vshm_msg *m = &r->m;
	int kind = apis[r->api].kind;

	if (kind == A_GETDEV || kind == A_CALL)
		return;
	CHECK(!vshm_msg_is_bus(m) && m->dev_num == dnum, "a request for another device");
	/* SET_CONFIG names the generation of the last EVENT_CONFIG seen. */
	if (m->id == VSHM_MSG_SET_CONFIG && r->has_s && (dnum < MAXD || dnum >= 256))
		CHECK(m->u.cfg.generation == (!(w.transport_features & VSHM_TF_STRICT_CONFIG_GENERATION) ||
					      dnum >= MAXD ? 0 : r->gen[dnum]),
		      "SET_CONFIG with a stale generation");
	/* A re-init asks for the same features and the same queues. */
	if (kind == A_REINIT && m->id == VSHM_MSG_SET_DRIVER_FEATURES)
		CHECK(m->u.feat.num_blocks == 2 &&
		      (m->u.feat.features[0] | (uint64_t)m->u.feat.features[1] << 32) == feat0,
		      "re-init asked for other features");
	if (kind == A_REINIT && m->id == VSHM_MSG_SET_VQUEUE) {
		const struct vshm_msg_set_vq *a = &m->u.set_vq, *b = &vq_set[a->index % MAXQ];

		CHECK(a->index < MAXQ && a->flags == b->flags && a->size == b->size &&
		      a->desc_addr == b->desc_addr && a->driver_addr == b->driver_addr &&
		      a->device_addr == b->device_addr, "re-init put a queue elsewhere");
	}
}

/* Read what the driver sent since we last looked. */
static void drain(int from_send)
{
	uint32_t prod = ld32(&d2v()->prod);

	while (dev_cons != prod) {
		struct vshm_mbox_slot *s = fuzz_mbox_slot(&w, VSHM_MBOX_D2V, dev_cons);
		struct req *r;
		uint32_t len = s->len;

		CHECK(prod - dev_cons <= VSHM_MBOX_SLOTS, "the driver's D2V prod is past its ring");
		CHECK(len >= VSHM_MBOX_MSG_MIN && len <= VSHM_MSG_MAX_SIZE, "bad D2V slot length");
		CHECK(nlog < LOG_MAX, "too many requests for one input");
		CHECK(cur >= 0, "a request outside any API call");
		r = &logv[nlog];
		memset(r, 0, sizeof(*r));
		CHECK(vshm_msg_decode(s->msg, len, VSHM_MSG_MAX_SIZE, &r->m) == 0,
		      "the driver sent a message that does not decode");
		CHECK(!vshm_msg_is_resp(&r->m) && !vshm_msg_is_event(&r->m), "the driver sent a non-request");
		for (unsigned i = 0; i < nlog; i++)
			CHECK(logv[i].m.token != r->m.token, "a request token was used twice");
		last_token = r->m.token;
		r->api = cur;
		r->has_s = s_valid;
		r->s = s_next;
		r->t = t_next;
		memcpy(r->gen, gen_next, sizeof(r->gen));
		s_valid = 0;
		if (!apis[cur].nreq)
			apis[cur].first = nlog;
		CHECK(++apis[cur].nreq <= api_max_reqs(&apis[cur]), "an API call sent too many requests");
		if (nlog && logv[nlog - 1].api == cur)
			went_on(&logv[nlog - 1], r);
		check_request(r);
		nlog++;
		if (npend == PEND_MAX)
			memmove(pend, pend + 1, --npend * sizeof(pend[0]));
		pend[npend++] = nlog - 1;
		dev_cons++;
	}
	if (cons_armed && from_send) {
		cons_armed = 0;
		st32(&d2v()->cons, cons_hostile);
	} else if (!cons_armed) {
		st32(&d2v()->cons, dev_cons);
	}
}

/*
 * The load hook: the driver loads D2V cons only when it is about to send,
 * so this is "a request is coming".  Read what came before it, close the
 * previous exchange, and note where this one starts.
 */
static void on_load(const void *p, size_t size)
{
	uint32_t c;

	(void)size;
	if (p != (const void *)&d2v()->cons)
		return;
	session_follow();
	drain(1);
	c = drv_cons();
	scan_events(c);
	if (nlog && !logv[nlog - 1].fin)
		finalize(&logv[nlog - 1], c);
	s_valid = 1;
	s_next = c;
	t_next = vnow;
	memcpy(gen_next, mgen, sizeof(gen_next));
}

/* ======================================================================== */
/* The device model (what an honest device answers)                         */

struct mq {
	struct vshm_msg_get_vq g;	/* as GET_VQUEUE reports it */
	struct vshm_dev_vq *vq;
};

struct mdev {
	uint32_t id, cfg_size, gen, status, nq;
	uint64_t offered, feat;
	int feat_hi, refuse;
	int stuck;			/* its reset never completes */
	uint8_t cfg[CFG_MAX];
	struct mq q[MAXQ];
};

static struct mdev devs[NDEV];
static int notify_due[VSHM_DB_MAX_VECTORS];
static uint64_t acked;			/* driver epoch we acknowledged */
static uint64_t ignore_epoch;		/* a restarted device does not serve it */
static uint64_t sess_epoch;		/* driver epoch whose mailbox we follow */
static uint32_t self_owner;		/* the device role's owner word, when ours */

static void mdev_reset(struct mdev *d)
{
	for (unsigned i = 0; i < d->nq; i++) {
		uint32_t max = d->q[i].g.max_size;

		vshm_dev_vq_destroy(d->q[i].vq);
		memset(&d->q[i], 0, sizeof(d->q[i]));
		d->q[i].g.index = i;
		d->q[i].g.max_size = max;
	}
	d->status = 0;
	d->feat = 0;
	d->feat_hi = 0;
}

static int features_ok(const struct mdev *d)
{
	uint64_t f = d->feat;

	return !d->feat_hi && !(f & ~d->offered) && (f & (1ull << VSHM_F_VERSION_1)) &&
	       !((f & (1ull << VSHM_F_RING_PACKED)) && (f & (1ull << VSHM_F_FIFO_RING))) && !d->refuse;
}

static void set_status(struct mdev *d, uint32_t s)
{
	uint32_t old = d->status;

	if (s == 0) {
		mdev_reset(d);
		return;
	}
	s |= old & VSHM_MSG_STATUS_NEEDS_RESET;
	if ((s & VSHM_MSG_STATUS_FEATURES_OK) && !(old & VSHM_MSG_STATUS_FEATURES_OK) &&
	    (!(old & VSHM_MSG_STATUS_DRIVER) || !features_ok(d)))
		s &= ~VSHM_MSG_STATUS_FEATURES_OK;
	if ((s & VSHM_MSG_STATUS_DRIVER_OK) && !(s & VSHM_MSG_STATUS_FEATURES_OK))
		s &= ~VSHM_MSG_STATUS_DRIVER_OK;
	d->status = s;
}

static void set_vqueue(struct mdev *d, const struct vshm_msg_set_vq *sv)
{
	struct mq *q;
	struct vshm_vq_layout l;

	if (sv->invalid || sv->index >= d->nq || (sv->flags & VSHM_MSG_SETVQ_OP_MASK) != VSHM_MSG_SETVQ_OP_ENABLE)
		return;
	q = &d->q[sv->index];
	if (q->vq || !is_pow2(sv->size) || sv->size > q->g.max_size ||
	    !(d->status & VSHM_MSG_STATUS_FEATURES_OK))
		return;
	memset(&l, 0, sizeof(l));
	l.num = q->g.cur_size = sv->size;
	l.desc = q->g.desc_addr = sv->desc_addr;
	l.avail = q->g.driver_addr = sv->driver_addr;
	l.used = q->g.device_addr = sv->device_addr;
	if (vshm_dev_vq_create(&q->vq, &w, &l, d->feat, NULL) == 0)
		q->g.flags = VSHM_MSG_VQ_ENABLED;
}

/* The honest answer to @q in @r; 0 when an honest device drops @q. */
static int honest(const struct vshm_msg *q, struct vshm_msg *r, int apply)
{
	struct mdev *d;
	uint32_t off, len;

	vshm_msg_init_resp(r, q);
	if (vshm_msg_is_bus(q)) {
		if (q->id == VSHM_MSG_BUS_PING) {
			r->u.ping.data = q->u.ping.data;
			return 1;
		}
		if (q->id != VSHM_MSG_BUS_GET_DEVICES)
			return 0;
		off = q->u.get_devices.offset;
		len = off >= NDEV ? 0 : q->u.get_devices.count < NDEV - off ? q->u.get_devices.count : NDEV - off;
		r->u.get_devices.offset = (uint16_t)off;
		r->u.get_devices.count = (uint16_t)len;
		for (uint32_t i = 0; i < len; i++)
			r->u.get_devices.bitmap[i / 8] |= (uint8_t)(1u << (i % 8));
		return 1;
	}
	if (q->dev_num >= NDEV)
		return 0;
	d = &devs[q->dev_num];
	switch (q->id) {
	case VSHM_MSG_GET_DEVICE_INFO:
		r->u.dev_info.device_id = d->id;
		r->u.dev_info.vendor_id = 0x4d485356;
		r->u.dev_info.num_feature_blocks = 2;
		r->u.dev_info.config_size = d->cfg_size;
		r->u.dev_info.max_virtqueues = d->nq;
		return 1;
	case VSHM_MSG_GET_DEVICE_FEATURES:
		r->u.feat.block_index = q->u.feat.block_index;
		r->u.feat.num_blocks = q->u.feat.num_blocks;
		for (uint32_t i = 0; i < q->u.feat.num_blocks && i < VSHM_MSG_MAX_FEATURE_BLOCKS; i++) {
			uint64_t b = (uint64_t)q->u.feat.block_index + i;

			r->u.feat.features[i] = b == 0 ? (uint32_t)d->offered :
						b == 1 ? (uint32_t)(d->offered >> 32) : 0;
		}
		return 1;
	case VSHM_MSG_SET_DRIVER_FEATURES:
		if (apply && !(d->status & VSHM_MSG_STATUS_FEATURES_OK))
			for (uint32_t i = 0; i < q->u.feat.num_blocks && i < VSHM_MSG_MAX_FEATURE_BLOCKS; i++) {
				uint64_t b = (uint64_t)q->u.feat.block_index + i, v = q->u.feat.features[i];

				if (b == 0)
					d->feat = (d->feat & ~0xffffffffull) | v;
				else if (b == 1)
					d->feat = (d->feat & 0xffffffffull) | v << 32;
				else if (v)
					d->feat_hi = 1;
			}
		return 1;
	case VSHM_MSG_GET_CONFIG:
	case VSHM_MSG_SET_CONFIG:
		off = q->u.cfg.offset;
		len = q->u.cfg.length;
		if (off > d->cfg_size || len > d->cfg_size - off)
			return 0;
		r->u.cfg.generation = d->gen;
		r->u.cfg.offset = off;
		r->u.cfg.length = len;
		if (q->id == VSHM_MSG_SET_CONFIG) {
			int ok = len && (!(w.transport_features & VSHM_TF_STRICT_CONFIG_GENERATION) ||
					 q->u.cfg.generation == d->gen);

			if (ok && apply)
				memcpy(d->cfg + off, q->u.cfg.data, len);
			r->u.cfg.length = ok ? len : 0;
		}
		memcpy(r->u.cfg.data, d->cfg + off, r->u.cfg.length);
		return 1;
	case VSHM_MSG_GET_DEVICE_STATUS:
	case VSHM_MSG_SET_DEVICE_STATUS:
		if (apply && q->id == VSHM_MSG_SET_DEVICE_STATUS)
			set_status(d, q->u.status.status);
		r->u.status.status = d->status | (d->stuck ? VSHM_MSG_STATUS_NEEDS_RESET : 0);
		return 1;
	case VSHM_MSG_GET_VQUEUE:
		r->u.get_vq.index = q->u.get_vq.index;
		if (q->u.get_vq.index < d->nq)
			r->u.get_vq = d->q[q->u.get_vq.index].g;
		return 1;
	case VSHM_MSG_SET_VQUEUE:
		if (apply)
			set_vqueue(d, &q->u.set_vq);
		return 1;
	case VSHM_MSG_RESET_VQUEUE:
		return 1;
	case VSHM_MSG_GET_SHM:
		r->u.shm.shmid = q->u.shm.shmid;
		return 1;
	default:
		return 0;
	}
}

/* Pop what the driver queued on every live queue and complete it. */
static int serve_queues(uint32_t written, int hostile_id)
{
	struct vshm_iov iov[16];
	struct vshm_chain c;
	int work = 0;

	for (unsigned i = 0; i < NDEV; i++) {
		struct mdev *d = &devs[i];

		if (!(d->status & VSHM_MSG_STATUS_DRIVER_OK))
			continue;
		for (unsigned k = 0; k < d->nq; k++) {
			struct mq *q = &d->q[k];

			if (!q->vq)
				continue;
			while (vshm_dev_vq_pop(q->vq, &c, iov, 16) == 1) {
				uint32_t n = c.in_bytes < written ? (uint32_t)c.in_bytes : written, left = n;

				for (unsigned j = c.nout; j < (unsigned)c.nout + c.nin && left; j++) {
					uint32_t part = iov[j].len < left ? iov[j].len : left;

					memset(iov[j].base, 0xa5, part);
					left -= part;
				}
				if (hostile_id >= 0)
					vshm_dev_vq_inject_used(q->vq, (uint32_t)hostile_id, written);
				else
					vshm_dev_vq_push(q->vq, c.head, n);
				work++;
			}
			if (vshm_dev_vq_publish(q->vq) > 0 || work)
				notify_due[vshm_vq_vector(w.vectors, i, k)] = 1;
		}
	}
	return work;
}

/* ======================================================================== */
/* Roles and sessions                                                       */

static struct vshm_role *role(int which)
{
	struct vshm_win_hdr *h = vshm_window_hdr(&w);

	return which == VSHM_ROLE_DRIVER ? &h->driver : &h->device;
}

static void ack(uint64_t epoch)
{
	acked = epoch;
	for (unsigned i = 0; i < NDEV; i++)
		mdev_reset(&devs[i]);
	npend = 0;
	vshm_role_set_peer_epoch(&w, VSHM_ROLE_DEVICE, epoch);
	vshm_role_set_status(&w, VSHM_ROLE_DEVICE, VSHM_ROLE_READY);
}

/*
 * The driver formats the mailbox right after it sees our ack and before it
 * publishes READY: once READY shows for a new epoch, start the mailbox over.
 */
static void session_follow(void)
{
	uint64_t e = __atomic_load_n(&role(VSHM_ROLE_DRIVER)->epoch, __ATOMIC_ACQUIRE);
	uint32_t st = ld32(&role(VSHM_ROLE_DRIVER)->status);

	if (!(st & VSHM_ROLE_READY) || e == sess_epoch)
		return;
	sess_epoch = e;
	dev_prod = dev_cons = scan_pos = 0;
	cons_armed = 0;
	s_valid = 0;
	npend = 0;
	memset(mgen, 0, sizeof(mgen));
	memset(nr_seen, 0, sizeof(nr_seen));
	memset(nr_due, 0, sizeof(nr_due));
	for (unsigned i = 0; i < nlog; i++)
		logv[i].fin = 1;
}

static int serving(void)
{
	return sess_epoch && sess_epoch == acked;
}

/* ======================================================================== */
/* One device step                                                          */

static void take(unsigned k)
{
	memmove(pend + k, pend + k + 1, (--npend - k) * sizeof(pend[0]));
}

/* The honest answer to pending request @k, encoded; 0 if none. */
static int answer_bytes(unsigned k, int apply, struct vshm_msg *r, uint8_t *buf)
{
	if (!honest(&logv[pend[k]].m, r, apply))
		return 0;
	return encode(r, buf);
}

/*
 * Answer pending request @k and forget it: honestly, or, with @lie >= 0,
 * with body word @lie changed (a well-formed answer that may be a lie).
 */
static int answer(unsigned k, int lie)
{
	struct vshm_msg r;
	int posted = 0;

	if (honest(&logv[pend[k]].m, &r, 1)) {
		if (lie >= 0) {
			uint32_t v = word(), old;

			memcpy(&old, (uint8_t *)&r.u + lie * 4, 4);
			v = byte() & 1 ? v : old + (v & 3) - 1;
			memcpy((uint8_t *)&r.u + lie * 4, &v, 4);
		}
		posted = post_msg(&r);
	}
	take(k);
	return posted;
}

static int answer_all(void)
{
	int posted = 0;

	while (npend)
		posted |= answer(0, -1);
	return posted;
}

/* Honest behaviour, once the input is used up. */
static int honest_step(void)
{
	struct vshm_role_view dv, rv;
	int did = 0;

	vshm_role_read(&w, VSHM_ROLE_DRIVER, &dv);
	vshm_role_read(&w, VSHM_ROLE_DEVICE, &rv);
	if (rv.owner != self_owner)
		return 0;	/* not our role any more: an honest device stays out */
	if (!(rv.status & VSHM_ROLE_READY)) {
		vshm_role_set_status(&w, VSHM_ROLE_DEVICE, VSHM_ROLE_READY);
		did = 1;
	}
	if (dv.owner && dv.epoch != acked && dv.epoch != ignore_epoch) {
		ack(dv.epoch);
		did = 1;
	}
	if (serving()) {
		did |= answer_all();
		did |= serve_queues(UINT32_MAX, -1) > 0;
	}
	return did;
}

static void restart_device(uint32_t peer)
{
	uint64_t epoch;

	vshm_role_release(&w, VSHM_ROLE_DEVICE, DEV_PEER);
	vshm_role_release(&w, VSHM_ROLE_DEVICE, peer);
	if (vshm_role_claim(&w, VSHM_ROLE_DEVICE, peer, &epoch, NULL))
		return;
	self_owner = peer + 1;
	vshm_role_set_status(&w, VSHM_ROLE_DEVICE, VSHM_ROLE_READY);
	ignore_epoch = __atomic_load_n(&role(VSHM_ROLE_DRIVER)->epoch, __ATOMIC_ACQUIRE);
	acked = 0;
	for (unsigned i = 0; i < NDEV; i++)
		mdev_reset(&devs[i]);
	npend = 0;
}

enum {
	OP_ANSWER, OP_ANSWER_ALL, OP_BODY, OP_HEADER, OP_TRUNCATE, OP_DUP, OP_IGNORE, OP_DEFER,
	OP_EVENT_CONFIG, OP_EVENT_OTHER, OP_RAW, OP_ROLE, OP_RESTART, OP_MBOX, OP_MODEL,
	OP_SILENCE, OP_SERVE, OP_DRVAREA, OP_NOTIFY, OP_ACK, OP_PREDICT, OP_LIE, OP_HONEST, OP_COUNT
};

/* One record; returns 1 when it ends the step. */
static int record(void)
{
	uint8_t op = byte(), a = byte();
	int stop = op & 0x80;
	unsigned k = npend ? a % npend : 0;
	uint8_t buf[VSHM_MSG_MAX_SIZE];
	struct vshm_msg r;
	int n;

	switch ((op & 0x7f) % OP_COUNT) {
	case OP_ANSWER:
		if (npend)
			answer(k, -1);
		return 1;
	case OP_ANSWER_ALL:
		answer_all();
		return 1;
	case OP_BODY: {
		/* An honest answer with one byte of its body replaced. */
		uint8_t at = byte(), v = byte();

		if (npend && (n = answer_bytes(k, 1, &r, buf)) > 0) {
			if (n > 8)
				buf[8 + at % (n - 8)] = v;
			post_raw(buf, (uint32_t)n, (uint32_t)n);
			if (!(a & 0x80))
				take(k);
		}
		break;
	}
	case OP_HEADER: {
		/* type, id, dev_num or token wrong (msg_size stays right). */
		uint8_t at = byte(), v = byte();

		if (npend && (n = answer_bytes(k, 1, &r, buf)) > 0) {
			buf[at % 6] ^= v ? v : 1;
			post_raw(buf, (uint32_t)n, (uint32_t)n);
			if (!(a & 0x80))
				take(k);
		}
		break;
	}
	case OP_TRUNCATE: {
		uint8_t to = byte();

		if (npend && (n = answer_bytes(k, 1, &r, buf)) > 8) {
			uint32_t len = 8 + to % (uint32_t)(n - 8);

			buf[6] = (uint8_t)len;
			buf[7] = (uint8_t)(len >> 8);
			post_raw(buf, len, len);
			take(k);
		}
		break;
	}
	case OP_DUP:
		if (npend && (n = answer_bytes(k, 1, &r, buf)) > 0) {
			post_raw(buf, (uint32_t)n, (uint32_t)n);
			post_raw(buf, (uint32_t)n, (uint32_t)n);
			take(k);
		}
		return 1;
	case OP_IGNORE:
		if (npend)
			take(k);
		return 1;
	case OP_DEFER:
		if (npend) {
			unsigned id = pend[k];

			take(k);
			pend[npend++] = id;
		}
		break;
	case OP_EVENT_CONFIG: {
		uint8_t f = byte(), g = byte();
		uint16_t dev = a % 5 == 4 ? 300 : a % 5 == 3 ? 2 : a % 2;

		vshm_msg_init_req(&r, VSHM_MSG_EVENT_CONFIG, dev);
		if (dev < NDEV) {
			if (f & 1)
				devs[dev].status |= VSHM_MSG_STATUS_NEEDS_RESET;
			if (f & 2)
				devs[dev].gen += g;
			r.u.event_config.status = devs[dev].status;
			r.u.event_config.generation = devs[dev].gen;
		} else {
			r.u.event_config.status = f & 1 ? VSHM_MSG_STATUS_NEEDS_RESET : 0;
			r.u.event_config.generation = g;
		}
		if (f & 4) {
			r.u.event_config.status ^= (uint32_t)byte() << 2;
			r.u.event_config.generation = word();
		}
		if (f & 8) {
			r.u.event_config.offset = g % 16;
			r.u.event_config.length = 1 + g % 8;
			r.u.event_config.has_data = 1;
		}
		post_msg(&r);
		break;
	}
	case OP_EVENT_OTHER:
		if (a & 1) {
			vshm_msg_init_req(&r, VSHM_MSG_EVENT_USED, a >> 1 & 3);
			r.u.event_used.vq_index = byte() % 4;
		} else if (a & 2) {
			vshm_msg_init_bus(&r, VSHM_MSG_BUS_EVENT_DEVICE);
			r.u.event_device.dev_num = byte() % 4;
			r.u.event_device.state = byte() % 3;
		} else {
			/* A request, from the device: the driver must not answer it. */
			vshm_msg_init_req(&r, VSHM_MSG_GET_DEVICE_STATUS, a >> 2 & 1);
			r.token = last_token;
		}
		post_msg(&r);
		break;
	case OP_RAW: {
		/* Raw bytes; framing right unless the top bit says otherwise. */
		uint32_t len = 8 + a % (VSHM_MSG_MAX_SIZE - 7);

		memset(buf, 0, sizeof(buf));
		for (uint32_t i = 0; i < len && more(); i++)
			buf[i] = byte();
		buf[6] = (uint8_t)len;
		buf[7] = (uint8_t)(len >> 8);
		post_raw(buf, len, a & 0x80 ? word() : len);
		break;
	}
	case OP_ROLE: {
		struct vshm_role *d = role(VSHM_ROLE_DEVICE);
		int8_t v = (int8_t)byte();

		switch (a % 6) {
		case 0: st32(&d->owner, (uint32_t)(v & 3)); break;
		case 1: __atomic_store_n(&d->epoch, d->epoch + (uint64_t)(int64_t)v, __ATOMIC_RELEASE); break;
		case 2: st32(&d->status, (uint32_t)v & 3); break;
		case 3: __atomic_store_n(&d->peer_epoch, role(VSHM_ROLE_DRIVER)->epoch + (uint64_t)(int64_t)v,
					 __ATOMIC_RELEASE); break;
		case 4: __atomic_store_n(&d->heartbeat, d->heartbeat + 1, __ATOMIC_RELAXED); break;
		default: d->pid = (uint32_t)v; break;
		}
		break;
	}
	case OP_RESTART:
		restart_device(a & 1 ? DEV_PEER : DEV_PEER + 2);
		break;
	case OP_MBOX: {
		int8_t v = (int8_t)byte();

		switch (a % 4) {
		case 0:		/* V2D prod moves by itself */
			if (v > 0 && dev_prod < REC_MAX && dev_prod + (uint32_t)v < REC_MAX)
				for (int i = 0; i < v; i++)
					snapshot(dev_prod++);
			else if (v <= 0)
				dev_prod += (uint32_t)(int32_t)v;
			st32(&v2d()->prod, dev_prod);
			break;
		case 1:		/* D2V cons, for the driver's next send */
			cons_armed = 1;
			cons_hostile = dev_cons + (uint32_t)(int32_t)v;
			break;
		case 2:
			st32(&d2v()->cons_waiting, (uint32_t)v);
			break;
		default:	/* rewrite a slot the driver has not read yet */
			if (dev_prod > drv_cons() && dev_prod <= REC_MAX) {
				struct vshm_mbox_slot *s = fuzz_mbox_slot(&w, VSHM_MBOX_V2D, dev_prod - 1);

				((uint8_t *)s)[byte() % sizeof(*s)] = (uint8_t)v;
				snapshot(dev_prod - 1);
			}
			break;
		}
		break;
	}
	case OP_MODEL: {
		struct mdev *d = &devs[a & 1];

		switch ((a >> 1) % 5) {
		case 0: d->gen += 1 + byte() % 3; break;
		case 1: d->status |= VSHM_MSG_STATUS_NEEDS_RESET; break;
		case 2: d->refuse ^= 1; break;
		case 3: d->stuck ^= 1; break;
		default: d->offered ^= 1ull << (byte() % 41); break;
		}
		break;
	}
	case OP_SILENCE:
		vnow += (int64_t)(1 + a % 64) * MS;
		return 1;
	case OP_SERVE:
		serve_queues(a & 0x80 ? (uint32_t)a * 64 : UINT32_MAX, a & 0x40 ? (int)byte() : -1);
		return 1;
	case OP_DRVAREA: {
		/* Eight bytes anywhere in what the driver has laid out. */
		uint32_t off = (a | (uint32_t)byte() << 8) * 8 % (256u << 10);

		for (int i = 0; i < 8; i++)
			w.base[w.drv_lo + off + (unsigned)i] = byte();
		break;
	}
	case OP_NOTIFY:
		notify_due[a % w.vectors] = 1;
		return 1;
	case OP_ACK: {
		uint64_t e = __atomic_load_n(&role(VSHM_ROLE_DRIVER)->epoch, __ATOMIC_ACQUIRE);

		if (a & 1)
			ack(e);
		else
			vshm_role_set_peer_epoch(&w, VSHM_ROLE_DEVICE, e + (uint64_t)(int64_t)(int8_t)byte());
		break;
	}
	case OP_PREDICT:
		/* A response for a request not sent yet (tokens count up). */
		vshm_msg_init(&r, VSHM_MSG_TYPE_RESPONSE | (a & 0x80 ? VSHM_MSG_TYPE_BUS : 0),
			      (uint8_t)(2 + byte() % 11), a & 0x40 ? 1 : 0);
		r.token = (uint16_t)(last_token + 1 + (a & 3));
		memcpy(&r.u, in + in_pos, in_len - in_pos < 16 ? in_len - in_pos : 16);
		in_pos += in_len - in_pos < 16 ? in_len - in_pos : 16;
		post_msg(&r);
		break;
	case OP_LIE:
		if (npend)
			answer(k, (a >> 4) % 12);
		return 1;
	case OP_HONEST:
		honest_step();
		return 1;
	}
	return stop;
}

/* A device step; 1 if it published anything for the driver. */
static int step(void)
{
	uint32_t prod0 = dev_prod;
	int did = 0;

	hooks++;
	session_follow();
	drain(0);
	for (int i = 0; i < STEP_RECORDS; i++) {
		if (!more()) {
			int64_t t0 = vnow;

			did = honest_step();
			if (!did && vnow == t0 && prod0 == dev_prod)
				vnow += QUIET;
			break;
		}
		if (record())
			break;
	}
	drain(0);
	return dev_prod != prod0;
}

static void v_sleep(int64_t ns)
{
	vnow += ns;
	step();
}

/* ======================================================================== */
/* The driver's doorbell                                                    */

static int db_ring(void *ctx, unsigned vector) { (void)ctx; (void)vector; return 0; }
static int db_fd(void *ctx, unsigned vector) { (void)ctx; (void)vector; return -1; }
static void db_drain(void *ctx, unsigned vector) { (void)ctx; (void)vector; }

static int db_wait(void *ctx, unsigned vector, int64_t timeout_ns)
{
	int posted;

	(void)ctx;
	(void)timeout_ns;
	CHECK(vector < w.vectors, "wait on a vector out of range");
	posted = step();
	if (notify_due[vector]) {
		notify_due[vector] = 0;
		return 0;
	}
	/* Nothing new: the wait is over; -EINTR makes the mailbox return. */
	return posted ? 0 : vector == VSHM_VEC_MBOX ? -EINTR : -ETIMEDOUT;
}

static const struct vshm_doorbell_ops db_ops = {
	.ring = db_ring, .wait = db_wait, .fd = db_fd, .drain = db_drain,
};
static const struct vshm_doorbell db = { .ops = &db_ops, .ctx = NULL };

/* ======================================================================== */
/* The driver                                                               */

static struct vshm_drv *drv;
static struct vshm_drv_dev *dev;
static int dead;			/* the driver found the device gone */
static int nr_now;			/* vshm_drv_dev_needs_reset(dev) */
static unsigned destroyed;

static void on_destroy(void *ctx) { (void)ctx; destroyed++; }

static int peer_change(void *ctx, uint32_t peer_id, int64_t timeout_ns)
{
	(void)ctx;
	(void)timeout_ns;
	CHECK(peer_id + 1 == ld32(&role(VSHM_ROLE_DEVICE)->owner), "peer change to a peer not the device");
	return more() && (byte() & 1) ? -ETIMEDOUT : 0;
}

static struct api *begin(int kind)
{
	struct api *a;

	CHECK(napi < API_MAX, "too many API calls");
	session_follow();
	drain(0);
	a = &apis[napi];
	memset(a, 0, sizeof(*a));
	a->kind = kind;
	a->t0 = vnow;
	a->hooks0 = hooks;
	a->in0 = in_pos;
	a->c0 = drv_cons();
	cur = (int)napi++;
	return a;
}

static int exchanges(int kind)
{
	return kind != A_WAIT && kind != A_IO && kind != A_CREATE && kind != A_REATTACH &&
	       kind != A_DESTROY_DEV && kind != A_DESTROY;
}

/*
 * Whether device @dev_num must still be flagged after init or re-init @a:
 * a NEEDS_RESET event was consumed after its reset last read status 0 (or
 * it was flagged, @before, and no reset completed).
 */
static int reset_kept_needs(const struct api *a, uint16_t dev_num, int before, uint32_t c)
{
	int64_t done = -1;

	for (unsigned i = a->first; i < a->first + a->nreq; i++) {
		const struct req *r = &logv[i];

		if (!r->has_s || !r->took)
			continue;
		if (((r->m.id == VSHM_MSG_SET_DEVICE_STATUS && r->m.u.status.status == 0) ||
		     r->m.id == VSHM_MSG_GET_DEVICE_STATUS) && recs[r->c - 1].m.u.status.status == 0)
			done = r->c - 1;
	}
	for (uint32_t i = a->c0; i < c && i < REC_MAX; i++)
		if ((int64_t)i > done && config_event(&recs[i], 1) && recs[i].m.dev_num == dev_num)
			return 1;
	return done < 0 && before;
}

/* After the call: close its last exchange and check what it promised. */
static void end(int ok)
{
	uint16_t dev_num = dnum;
	struct api *a = &apis[cur];
	int kind = a->kind, was_dead = dead, nr_was = nr_now;
	uint32_t c;
	int64_t bound;

	session_follow();
	drain(0);
	c = drv_cons();
	scan_events(c);
	if (a->nreq && !logv[a->first + a->nreq - 1].fin)
		finalize(&logv[a->first + a->nreq - 1], c);
	if (ok && a->nreq) {
		const struct req *r = &logv[a->first + a->nreq - 1];

		if (r->has_s) {
			CHECK(r->took, "a call succeeded without an answer");
			CHECK(r->label == L_ACCEPT, "a call succeeded on an answer it must refuse");
		}
	}
	/* Bounded, in virtual time and in device steps. */
	bound = (int64_t)api_max_reqs(a) * (call_timeout + OVERSHOOT) + OVERSHOOT;
	if (kind == A_CREATE || kind == A_REATTACH)
		bound += attach_timeout;
	if (kind == A_WAIT)
		bound += wait_timeout;
	CHECK(vnow - a->t0 <= bound, "an API call outlived its bound");
	CHECK(hooks - a->hooks0 <= (in_pos - a->in0) + 2 * a->nreq + 64 + (unsigned)((vnow - a->t0) / QUIET),
	      "the driver kept the device busy without progress");

	/* Gone stays gone, until a re-attach. */
	if (drv) {
		int alive = vshm_drv_alive(drv);

		if (was_dead && kind != A_REATTACH)
			CHECK(alive != 0, "a device found gone came back without a re-attach");
		if (was_dead && ok && exchanges(kind))
			CHECK(0, "a call succeeded after the device was found gone");
		dead = alive != 0;
	}
	/* needs_reset: only from a consumed event, sticky until a reset. */
	if (dev) {
		nr_now = vshm_drv_dev_needs_reset(dev);
		if (dev_num < MAXD) {
			CHECK(!nr_now || nr_seen[dev_num], "needs_reset without a NEEDS_RESET event");
			if (kind == A_INIT || kind == A_REINIT)
				CHECK(nr_now || !reset_kept_needs(a, dev_num, kind == A_REINIT && nr_was, c),
				      "needs_reset cleared without a completed reset");
			if (kind == A_INIT || kind == A_REINIT || kind == A_DESTROY_DEV || kind == A_REATTACH) {
				nr_due[dev_num] = 0;
			} else {
				CHECK(!nr_was || nr_now, "needs_reset cleared without a reset");
				CHECK(!nr_due[dev_num] || nr_now, "a NEEDS_RESET event was not recorded");
			}
		} else if (dev_num >= 256) {
			CHECK(!nr_now, "needs_reset for a device number out of range");
		}
	}
	if (verbose)
		fprintf(stderr, "fuzz_drvrt: %-11s ok %d, %u requests, %lld ms, %u steps%s%s\n",
			api_names[kind], ok, a->nreq, (long long)((vnow - a->t0) / MS), hooks - a->hooks0,
			dead ? ", gone" : "", nr_now ? ", needs reset" : "");
	cur = -1;
}

/* The response the driver took for the last request of the call just ended. */
static const struct vshm_msg *taken(const struct api *a, unsigned back)
{
	const struct req *r;

	if (a->nreq <= back)
		return NULL;
	r = &logv[a->first + a->nreq - 1 - back];
	return r->has_s && r->took ? &recs[r->c - 1].m : NULL;
}

static void check_cfg_read(const struct api *a, uint32_t off, const uint8_t *buf, uint32_t len)
{
	uint8_t want[CFG_MAX];
	uint32_t gen = 0, have = 0;
	int stable = 1;

	/* The last round of GET_CONFIG answers, in order, is what came back. */
	for (unsigned i = a->first; i < a->first + a->nreq; i++) {
		const struct req *r = &logv[i];
		const struct vshm_msg *m;

		if (!r->has_s)
			return;
		m = &recs[r->c - 1].m;
		if (r->m.u.cfg.offset == off) {
			gen = m->u.cfg.generation;
			have = 0;
			stable = 1;
		} else if (m->u.cfg.generation != gen) {
			stable = 0;
		}
		memcpy(want + (r->m.u.cfg.offset - off), m->u.cfg.data, r->m.u.cfg.length);
		have += r->m.u.cfg.length;
	}
	CHECK(stable, "config bytes from two generations");
	CHECK(have == len && !memcmp(want, buf, len), "config read returned other bytes");
}

static void msg_same(const struct vshm_msg *x, const struct vshm_msg *y, const char *why)
{
	uint8_t bx[VSHM_MSG_MAX_SIZE], by[VSHM_MSG_MAX_SIZE];
	int nx = encode(x, bx), ny = encode(y, by);

	CHECK(nx > 0 && nx == ny && !memcmp(bx, by, (size_t)nx), why);
}

/* One request through queue @vq, the way drivers/rng.c reads. */
static void io(struct vshm_drv_vq *vq, unsigned qi)
{
	struct vshm_bounce_pool *pool = vshm_drv_dev_pool(dev);
	uint8_t out[16] = "fuzz_drvrt", inb[4096];
	struct vshm_bounce_map mo, mi;
	struct vshm_sg sg[8];
	uint32_t len = 16 + (hdr[10] & 0x3f) * 64, got = 0;
	int no, ni, rc = 0, harvested = 0;
	void *ck = NULL;

	no = vshm_bounce_map(pool, out, sizeof(out), VSHM_DMA_TO_DEVICE, &mo, sg, 4);
	if (no < 0)
		return;
	ni = vshm_bounce_map(pool, inb, len, VSHM_DMA_FROM_DEVICE, &mi, sg + no, 4);
	if (ni < 0) {
		vshm_bounce_unmap(pool, &mo, 0);
		return;
	}
	begin(A_IO);
	if (!vshm_drv_vq_add(vq, sg, (unsigned)no, (unsigned)ni, &mi) && vshm_drv_vq_kick(vq) >= 0) {
		for (int i = 0; i < 16 && !harvested; i++) {
			rc = vshm_drv_vq_harvest(vq, &ck, &got);
			if (rc < 0)
				break;
			if (rc == 1) {
				CHECK(ck == &mi && got <= len, "a harvest that was never posted");
				harvested = 1;
				break;
			}
			if (vshm_drv_vq_enable_cb(vq) == 0) {
				int nr = nr_now, gone;

				end(1);
				gone = dead;
				begin(A_WAIT);
				rc = vshm_drv_dev_wait(dev, qi, wait_timeout);
				end(0);
				/* (The device may die during the wait: that is seen next time.) */
				if (rc == 0 || rc == -ETIMEDOUT)
					CHECK(!nr && !nr_now && !gone, "a wait went on after needs_reset or death");
				if (rc == -EIO)
					CHECK(nr_now || dead, "a wait failed with the device well");
				begin(A_IO);
				if (rc == -EIO)
					break;
			}
		}
		/* Given up: take it back, or (a test of re-init) leave it posted. */
		if (!harvested && !(hdr[11] & 0x10))
			while (vshm_drv_vq_detach_unused(vq))
				;
	}
	end(1);
	vshm_bounce_unmap(pool, &mi, harvested ? got : 0);
	vshm_bounce_unmap(pool, &mo, 0);
}

static void scenario(void)
{
	struct vshm_drv_opts o;
	struct vshm_drv_vq *vq[MAXQ] = { NULL };
	uint16_t nums[8], dev_num;
	uint32_t dev_id;
	uint8_t cfg[CFG_MAX];
	struct api *a;
	int rc;

	memset(&o, 0, sizeof(o));
	ring_opt = hdr[0] & 3;
	o.ring = ring_opt == 3 ? VSHM_RING_SPLIT : ring_opt;
	ring_opt = o.ring;
	o.call_timeout_ns = hdr[7] ? hdr[7] * MS : 0;
	o.attach_timeout_ns = hdr[8] ? (hdr[8] % 64) * MS + MS : 0;
	o.pool_size = 64u << 10;
	o.fifo_ring_bytes = 8192;
	call_timeout = o.call_timeout_ns ? o.call_timeout_ns : 2000 * MS;
	attach_timeout = o.attach_timeout_ns ? o.attach_timeout_ns : 5000 * MS;
	wait_timeout = (1 + hdr[9] % 100) * MS;

	/* Attach. */
	if (hdr[0] & 0x10) {
		uint64_t e;

		CHECK(!vshm_role_claim(&w, VSHM_ROLE_DRIVER, 7, &e, NULL), "claim");
	}
	begin(A_CREATE);
	rc = vshm_drv_create(&drv, &w, DRV_PEER, &db, &o);
	end(rc == 0);
	if (hdr[0] & 0x10) {
		CHECK(rc == -EBUSY && !drv, "attach took a role another driver holds");
		CHECK(ld32(&role(VSHM_ROLE_DRIVER)->owner) == 8, "attach changed another driver's role");
		return;
	}
	if (rc) {
		CHECK(rc == -ETIMEDOUT && !drv, "attach failed other than by timing out");
		CHECK(ld32(&role(VSHM_ROLE_DRIVER)->owner) == 0, "a failed attach kept the driver role");
		return;
	}
	CHECK(vshm_drv_sessions(drv) == 1, "one session after attach");
	CHECK(vshm_drv_device_peer(drv) + 1 == ld32(&role(VSHM_ROLE_DEVICE)->owner) || dead,
	      "attached to a peer that is not the device");
	vshm_drv_on_destroy(drv, on_destroy, NULL);
	if (hdr[0] & 0x08)
		vshm_drv_on_peer_change(drv, peer_change, NULL);

	/* Probe. */
	a = begin(A_GETDEV);
	rc = vshm_drv_get_devices(drv, nums, 8);
	end(rc >= 0);
	if (rc >= 0 && a->nreq) {
		unsigned n = 0;

		for (unsigned i = 0; i < a->nreq; i++) {
			const struct req *r = &logv[a->first + i];
			const struct vshm_msg *m = &recs[r->c - 1].m;

			if (!r->has_s)
				return;
			for (uint32_t b = 0; b < m->u.get_devices.count; b++)
				if (m->u.get_devices.bitmap[b / 8] & (1u << (b % 8))) {
					if (n < 8)
						CHECK(nums[n] == r->m.u.get_devices.offset + b, "a device number not reported");
					n++;
				}
		}
		CHECK((unsigned)rc == (n < 8 ? n : 8), "GET_DEVICES counted other devices");
	}

	/* Init: reset, features. */
	dev_num = (uint16_t[]){ 0, 1, 2, 300 }[hdr[1] & 3];
	dnum = dev_num;
	dev_id = (uint32_t[]){ 0, dev_num < NDEV ? devs[dev_num].id : 4, 1234, 0 }[hdr[2] & 3];
	a = begin(A_INIT);
	a->device_id = dev_id;
	rc = vshm_drv_dev_init(drv, dev_num, dev_id, hdr[3], &dev);
	end(rc == 0);
	if (rc) {
		CHECK(!dev, "a failed init returned a device");
		goto out;
	}
	{
		const struct vshm_msg *set = NULL, *offer = NULL, *info = NULL;
		uint64_t f = vshm_drv_dev_features(dev), off;

		for (unsigned i = a->first; i < a->first + a->nreq; i++) {
			const struct req *r = &logv[i];

			if (!r->has_s)
				goto skip;
			if (r->m.id == VSHM_MSG_SET_DRIVER_FEATURES)
				set = &r->m;
			if (r->m.id == VSHM_MSG_GET_DEVICE_FEATURES)
				offer = &recs[r->c - 1].m;
			if (r->m.id == VSHM_MSG_GET_DEVICE_INFO)
				info = &recs[r->c - 1].m;
		}
		CHECK(set && offer && info, "init succeeded without negotiating");
		off = offer->u.feat.features[0] | (uint64_t)offer->u.feat.features[1] << 32;
		CHECK(f == (set->u.feat.features[0] | (uint64_t)set->u.feat.features[1] << 32),
		      "features differ from what was sent");
		CHECK(!(f & ~off), "a feature the device did not offer was negotiated");
		CHECK(f & (1ull << VSHM_F_VERSION_1), "VERSION_1 not negotiated");
		CHECK(!((f >> VSHM_F_RING_PACKED) & (f >> VSHM_F_FIFO_RING) & 1), "two ring layouts");
		CHECK(!memcmp(vshm_drv_dev_info(dev), &info->u.dev_info, sizeof(info->u.dev_info)),
		      "device info differs from the answer");
skip:
		info0 = *vshm_drv_dev_info(dev);
		feat0 = f;
		nr_now = vshm_drv_dev_needs_reset(dev);
	}

	/* Config. */
	{
		uint32_t off = hdr[5] % 8, len = hdr[6] * 2u % (CFG_MAX + 1);

		a = begin(A_CFGR);
		a->len = len;
		rc = vshm_drv_dev_config_read(dev, off, cfg, len);
		end(rc == 0 && len);
		if (rc == 0 && len)
			check_cfg_read(a, off, cfg, len);
		a = begin(A_CFGW);
		rc = vshm_drv_dev_config_write(dev, hdr[5] % 4, "vshm", 1 + hdr[6] % 4);
		end(rc == 0);
	}

	/* Queues, DRIVER_OK, status. */
	for (unsigned i = 0; i < 1 + hdr[4] % MAXQ; i++) {
		uint32_t num = hdr[4] >> 2 & 7 ? 1u << (hdr[4] >> 2 & 7) : 0;

		a = begin(A_SETUPVQ);
		a->num = num;
		rc = vshm_drv_dev_setup_vq(dev, i, num, hdr[4] & 0x80 ? 4 : 0, &vq[i]);
		end(rc == 0);
		CHECK(!rc == !!vq[i], "setup_vq's result and its queue disagree");
		if (rc == 0 && a->nreq == 3)
			vq_set[i] = logv[a->first + 1].m.u.set_vq;
	}
	begin(A_READY);
	rc = vshm_drv_dev_ready(dev);
	end(rc == 0);
	{
		uint32_t s = 0;

		a = begin(A_STATUS);
		rc = vshm_drv_dev_status(dev, &s);
		end(rc == 0);
		if (rc == 0 && taken(a, 0))
			CHECK(s == taken(a, 0)->u.status.status, "status differs from the answer");
	}
	if (hdr[11] & 2) {
		struct vshm_msg q, r;

		vshm_msg_init_bus(&q, VSHM_MSG_BUS_PING);
		q.u.ping.data = 0x5a5a0000u | hdr[11];
		a = begin(A_CALL);
		rc = vshm_drv_call(drv, &q, &r);
		end(rc == 0);
		if (rc == 0 && taken(a, 0))
			msg_same(&r, taken(a, 0), "vshm_drv_call returned another response");
		vshm_msg_init_req(&q, hdr[11] & 4 ? VSHM_MSG_GET_SHM : VSHM_MSG_RESET_VQUEUE, dev_num);
		a = begin(A_CALL);
		rc = vshm_drv_call(drv, &q, &r);
		end(rc == 0);
		if (rc == 0 && taken(a, 0))
			msg_same(&r, taken(a, 0), "vshm_drv_call returned another response");
	}

	/* I/O. */
	if (vq[0] && !(hdr[0] & 0x20))
		io(vq[0], 0);

	/* The device asked for a reset (or not): reset it and set it up again. */
	if (!dead && (hdr[11] & 8)) {
		unsigned busy = 0;

		for (unsigned i = 0; i < MAXQ; i++)
			busy += vq[i] ? vshm_drv_vq_inflight(vq[i]) : 0;
		begin(A_REINIT);
		rc = vshm_drv_dev_reinit(dev);
		end(rc == 0);
		CHECK(!busy || rc == -EBUSY, "re-init with requests in flight");
		if (rc == 0)
			CHECK(vshm_drv_dev_features(dev) == feat0, "re-init changed the features");
	}
	for (unsigned i = 0; i < MAXQ; i++)
		while (vq[i] && vshm_drv_vq_detach_unused(vq[i]))
			;

	/* The device went away: come back, as drivers/blk.c recovers. */
	if (dead && (hdr[11] & 1)) {
		uint64_t s0 = vshm_drv_sessions(drv);

		begin(A_REATTACH);
		rc = vshm_drv_reattach(drv, attach_timeout);
		end(rc == 0);
		if (rc == 0) {
			struct vshm_role_view v;

			CHECK(!dead && vshm_drv_sessions(drv) == s0 + 1, "a re-attach that did not attach");
			vshm_role_read(&w, VSHM_ROLE_DEVICE, &v);
			CHECK((v.status & VSHM_ROLE_READY) && v.peer_epoch ==
			      __atomic_load_n(&role(VSHM_ROLE_DRIVER)->epoch, __ATOMIC_ACQUIRE),
			      "re-attached without the device's acknowledgement");
			begin(A_REINIT);
			rc = vshm_drv_dev_reinit(dev);
			end(rc == 0);
			if (rc == 0) {
				CHECK(vshm_drv_dev_features(dev) == feat0, "re-init changed the features");
				if (vq[0] && !(hdr[0] & 0x20))
					io(vq[0], 0);
			}
		} else {
			CHECK(rc == -ETIMEDOUT, "re-attach failed other than by timing out");
		}
	}
out:
	if (dev) {
		begin(A_DESTROY_DEV);
		vshm_drv_dev_destroy(dev);
		dev = NULL;
		end(0);
	}
}

/* ======================================================================== */

static void reset_model(void)
{
	static const uint32_t ids[NDEV] = { 4, 3 };
	static const uint32_t cfg_sizes[NDEV] = { 16, CFG_MAX };
	static const uint32_t nqs[NDEV] = { 1, MAXQ };
	uint64_t base = 1ull << VSHM_F_VERSION_1 | 1ull << VSHM_F_ACCESS_PLATFORM |
			1ull << VSHM_F_EVENT_IDX | 1ull << VSHM_F_INDIRECT_DESC |
			1ull << VSHM_F_RING_PACKED | 1ull << VSHM_F_FIFO_RING | 0x0f;
	static const int toggles[8] = { VSHM_F_VERSION_1, VSHM_F_RING_PACKED, VSHM_F_FIFO_RING,
					VSHM_F_EVENT_IDX, VSHM_F_INDIRECT_DESC, VSHM_F_RING_RESET,
					VSHM_F_NOTIFICATION_DATA, 3 };

	for (unsigned i = 0; i < NDEV; i++) {
		struct mdev *d = &devs[i];

		memset(d, 0, sizeof(*d));
		d->id = i == 1 && hdr[14] ? hdr[14] : ids[i];
		d->cfg_size = cfg_sizes[i];
		d->nq = nqs[i];
		d->offered = base;
		for (int b = 0; b < 8; b++)
			if (hdr[12] >> b & 1)
				d->offered ^= 1ull << toggles[b];
		for (unsigned k = 0; k < MAXQ; k++)
			d->q[k].g = (struct vshm_msg_get_vq){
				.index = k, .max_size = hdr[13] ? 1u << (hdr[13] % 11) : 256 };
		for (unsigned k = 0; k < CFG_MAX; k++)
			d->cfg[k] = (uint8_t)(k * 7 + i);
		d->refuse = hdr[15] & 1;
	}
}

static int next_fd(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (fd >= 0)
		close(fd);
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vshm_window_opts wo = { .size = WIN, .vectors = 4 };
	struct vshm_win_hdr *h;
	uint64_t epoch;
	int fd0;

	if (!w.base && vshm_window_create(&w, &wo))
		abort();
	verbose = getenv("VSHM_DRVRT_VERBOSE") != NULL;
	h = vshm_window_hdr(&w);
	memset(&h->driver, 0, sizeof(h->driver));
	memset(&h->device, 0, sizeof(h->device));
	vshm_mbox_format(&w);
	memset(w.base + w.drv_lo, 0, w.drv_hi - w.drv_lo);

	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, data, size < HDR ? size : HDR);
	in = data;
	in_len = size;
	in_pos = size < HDR ? size : HDR;
	w.transport_features = hdr[0] & 0x04 ? VSHM_TF_STRICT_CONFIG_GENERATION : 0;
	vnow = 1000 * MS;
	hooks = 0;
	napi = nlog = npend = 0;
	cur = -1;
	dev_prod = dev_cons = scan_pos = 0;
	cons_armed = s_valid = 0;
	acked = ignore_epoch = sess_epoch = 0;
	last_token = 0;
	dead = nr_now = 0;
	destroyed = 0;
	drv = NULL;
	dev = NULL;
	memset(notify_due, 0, sizeof(notify_due));
	memset(vq_set, 0, sizeof(vq_set));
	memset(mgen, 0, sizeof(mgen));
	memset(nr_seen, 0, sizeof(nr_seen));
	memset(nr_due, 0, sizeof(nr_due));
	reset_model();
	fd0 = next_fd();

	/* The device (peer 1) holds its role; the driver is peer 0. */
	if (vshm_role_claim(&w, VSHM_ROLE_DEVICE, DEV_PEER, &epoch, NULL))
		abort();
	self_owner = DEV_PEER + 1;
	vshm_role_set_status(&w, VSHM_ROLE_DEVICE, VSHM_ROLE_READY);

	__vshm_fuzz_drvrt_now = v_now;
	__vshm_fuzz_drvrt_sleep = v_sleep;
	__vshm_fuzz_load_hook = on_load;
	scenario();
	if (drv) {
		begin(A_DESTROY);
		vshm_drv_destroy(drv);
		drv = NULL;
		end(0);
		CHECK(destroyed == 1, "the destroy hook did not run once");
		CHECK(ld32(&role(VSHM_ROLE_DRIVER)->owner) == 0, "destroy kept the driver role");
	}
	__vshm_fuzz_load_hook = NULL;
	__vshm_fuzz_drvrt_now = NULL;
	__vshm_fuzz_drvrt_sleep = NULL;

	for (unsigned i = 0; i < NDEV; i++)
		mdev_reset(&devs[i]);
	CHECK(next_fd() == fd0, "a file descriptor leaked");
	return 0;
}
