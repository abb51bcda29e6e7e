// SPDX-License-Identifier: MIT
/*
 * Control mailbox: two-thread traffic in both directions (eventfd and
 * poll-only doorbells, one and two mappings), full/empty bounds, the
 * sleep/wake handshake, and a hostile peer writing the shared words.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <vshm/mbox.h>
#include <vshm/window.h>
#include "tap.h"

#define MS	1000000LL
#define US	1000LL
#define LATE	(1000 * MS)	/* a sleep may end late (shared CI machines), never early */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* messages                                                                  */

static uint32_t mix(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352dU;
	x ^= x >> 15;
	x *= 0x846ca68bU;
	x ^= x >> 16;
	return x;
}

/* Message @seq of direction @dir: 8..264 bytes, contents derived from both. */
static size_t make_msg(uint8_t *m, unsigned dir, uint32_t seq)
{
	uint32_t h = mix(seq * 2 + dir);
	size_t len = VSHM_MBOX_MSG_MIN + h % (VSHM_MSG_MAX_SIZE - VSHM_MBOX_MSG_MIN + 1);

	m[0] = (uint8_t)dir;
	m[1] = 0x80;
	m[2] = (uint8_t)seq;
	m[3] = (uint8_t)(seq >> 8);
	m[4] = (uint8_t)(seq >> 16);
	m[5] = (uint8_t)(seq >> 24);
	m[6] = (uint8_t)len;
	m[7] = (uint8_t)(len >> 8);
	for (size_t i = 8; i < len; i++)
		m[i] = (uint8_t)(h + i * 131);
	return len;
}

/* A fixed-size message for the single-threaded checks. */
static size_t small_msg(uint8_t *m, size_t len, uint8_t fill)
{
	memset(m, fill, len);
	m[6] = (uint8_t)len;
	m[7] = (uint8_t)(len >> 8);
	return len;
}

/* ------------------------------------------------------------------------ */
/* a window with two endpoints                                               */

struct env {
	struct vshm_window w;		/* the hub's (and driver's) mapping */
	struct vshm_window m;		/* the device's mapping of the same fd */
	int mapped;			/* m is in use */
	struct vshm_db_eventfd ea, eb;	/* driver's, device's doorbell */
	int efd;			/* ea/eb are in use */
	struct vshm_mbox drv, dev;
};

static struct vshm_mbox_ring *ring(struct env *e, int which)
{
	return (struct vshm_mbox_ring *)(void *)
		(e->w.base + VSHM_MBOX_OFF + (size_t)which * VSHM_MBOX_RING_SIZE);
}

static struct vshm_mbox_slot *slot(struct env *e, int which, unsigned i)
{
	return (struct vshm_mbox_slot *)(void *)
		((uint8_t *)ring(e, which) + VSHM_MBOX_SLOTS_OFF) + i;
}

/* @efd: eventfd doorbells (else poll-only); @twice: the device maps the fd itself. */
static int env_open(struct env *e, int efd, int twice)
{
	struct vshm_window_opts o = { .size = 1 << 20, .vectors = 2, .name = "test-mbox" };
	const struct vshm_doorbell *da = NULL, *db = NULL;
	struct vshm_window *dw;

	memset(e, 0, sizeof(*e));
	if (vshm_window_create(&e->w, &o))
		return -1;
	dw = &e->w;
	if (twice) {
		if (vshm_window_map(&e->m, e->w.fd))
			return -1;
		e->mapped = 1;
		dw = &e->m;
	}
	if (efd) {
		if (vshm_doorbell_eventfd_pair(&e->ea, &e->eb, 2))
			return -1;
		e->efd = 1;
		da = &e->ea.db;
		db = &e->eb.db;
	}
	if (vshm_mbox_format(&e->w))
		return -1;
	if (vshm_mbox_init(&e->drv, &e->w, VSHM_MBOX_SIDE_DRIVER, da) ||
	    vshm_mbox_init(&e->dev, dw, VSHM_MBOX_SIDE_DEVICE, db))
		return -1;
	return 0;
}

static void env_close(struct env *e)
{
	if (e->efd) {
		vshm_doorbell_eventfd_fini(&e->ea);
		vshm_doorbell_eventfd_fini(&e->eb);
	}
	if (e->mapped)
		vshm_window_unmap(&e->m);
	vshm_window_unmap(&e->w);
}

/* Format and restart both endpoints (the re-attach path). */
static void env_reset(struct env *e)
{
	vshm_mbox_format(&e->w);
	vshm_mbox_reset(&e->drv);
	vshm_mbox_reset(&e->dev);
}

/* ------------------------------------------------------------------------ */
/* two threads, both directions                                              */

struct side {
	struct vshm_mbox *mb;
	unsigned dir;			/* direction we send: 0 d2v, 1 v2d */
	uint32_t n;			/* messages each way */
	int blocking;			/* use only the *_timeout calls */
	int64_t deadline;		/* give up (test failure) after this */
	uint32_t sent, recvd;
	unsigned long timeouts;		/* *_timeout calls that expired */
	int err;			/* first failure, or 0 */
	uint32_t bad_seq;
};

static int check_msg(struct side *s, const uint8_t *buf, int len)
{
	uint8_t want[VSHM_MSG_MAX_SIZE];
	size_t wl = make_msg(want, s->dir ^ 1, s->recvd);

	if (len < 0 || (size_t)len != wl || memcmp(buf, want, wl)) {
		s->bad_seq = s->recvd;
		return -1;
	}
	s->recvd++;
	return 0;
}

/* Interleave sends and receives; sleep only when neither can progress. */
static void *traffic(void *arg)
{
	struct side *s = arg;
	uint8_t out[VSHM_MSG_MAX_SIZE], in[VSHM_MSG_MAX_SIZE];
	size_t olen = 0;
	int have = 0, rc;

	while (s->sent < s->n || s->recvd < s->n) {
		int progress = 0;

		if (now_ns() > s->deadline) {
			s->err = -ETIME;
			break;
		}
		while (s->sent < s->n) {
			if (!have) {
				olen = make_msg(out, s->dir, s->sent);
				have = 1;
			}
			rc = vshm_mbox_send(s->mb, out, olen);
			if (rc == -EAGAIN)
				break;
			if (rc) {
				s->err = rc;
				return NULL;
			}
			have = 0;
			s->sent++;
			progress = 1;
		}
		while (s->recvd < s->n) {
			rc = vshm_mbox_recv(s->mb, in, sizeof(in));
			if (rc == -EAGAIN)
				break;
			if (check_msg(s, in, rc)) {
				s->err = rc < 0 ? rc : -EBADMSG;
				return NULL;
			}
			progress = 1;
		}
		if (progress)
			continue;
		if (s->recvd < s->n) {
			rc = vshm_mbox_recv_timeout(s->mb, in, sizeof(in), 2 * MS);
			if (rc == -ETIMEDOUT) {
				s->timeouts++;
				continue;
			}
			if (check_msg(s, in, rc)) {
				s->err = rc < 0 ? rc : -EBADMSG;
				return NULL;
			}
		} else {
			rc = vshm_mbox_send_timeout(s->mb, out, olen, 2 * MS);
			if (rc == -ETIMEDOUT) {
				s->timeouts++;
				continue;
			}
			if (rc) {
				s->err = rc;
				return NULL;
			}
			have = 0;
			s->sent++;
		}
	}
	return NULL;
}

/* One direction, every call a bounded blocking one: exercises the handshake. */
static void *blocking_tx(void *arg)
{
	struct side *s = arg;
	uint8_t out[VSHM_MSG_MAX_SIZE];

	while (s->sent < s->n) {
		size_t len = make_msg(out, s->dir, s->sent);
		int rc = vshm_mbox_send_timeout(s->mb, out, len, 2000 * MS);

		if (rc == -ETIMEDOUT) {
			s->timeouts++;
			if (now_ns() > s->deadline) {
				s->err = -ETIME;
				return NULL;
			}
			continue;
		}
		if (rc) {
			s->err = rc;
			return NULL;
		}
		s->sent++;
	}
	return NULL;
}

static void *blocking_rx(void *arg)
{
	struct side *s = arg;
	uint8_t in[VSHM_MSG_MAX_SIZE];

	while (s->recvd < s->n) {
		int rc = vshm_mbox_recv_timeout(s->mb, in, sizeof(in), 2000 * MS);

		if (rc == -ETIMEDOUT) {
			s->timeouts++;
			if (now_ns() > s->deadline) {
				s->err = -ETIME;
				return NULL;
			}
			continue;
		}
		if (check_msg(s, in, rc)) {
			s->err = rc < 0 ? rc : -EBADMSG;
			return NULL;
		}
	}
	return NULL;
}

static void run_both_ways(const char *what, int efd, int twice, uint32_t n)
{
	struct env e;
	struct side d = { .dir = 0, .n = n }, v = { .dir = 1, .n = n };
	struct vshm_mbox_stats sd, sv;
	pthread_t td, tv;
	int64_t t0, dt;

	if (env_open(&e, efd, twice)) {
		ok(0, "%s: set up window and endpoints", what);
		return;
	}
	d.mb = &e.drv;
	v.mb = &e.dev;
	t0 = now_ns();
	d.deadline = v.deadline = t0 + 240000 * MS;
	pthread_create(&td, NULL, traffic, &d);
	pthread_create(&tv, NULL, traffic, &v);
	pthread_join(td, NULL);
	pthread_join(tv, NULL);
	dt = now_ns() - t0;

	ok(!d.err && !v.err, "%s: no errors (driver %d at %u, device %d at %u)", what,
	   d.err, d.bad_seq, v.err, v.bad_seq);
	ok(d.sent == n && v.recvd == n, "%s: %u messages driver -> device, in order, verified",
	   what, v.recvd);
	ok(v.sent == n && d.recvd == n, "%s: %u messages device -> driver, in order, verified",
	   what, d.recvd);
	vshm_mbox_get_stats(&e.drv, &sd);
	vshm_mbox_get_stats(&e.dev, &sv);
	ok(sd.sent == n && sd.received == n && sv.sent == n && sv.received == n,
	   "%s: counters agree", what);
	ok(!vshm_mbox_broken(&e.drv) && !vshm_mbox_broken(&e.dev), "%s: nobody broken", what);
	diag("%s: %u msgs each way in %.3f s (%.0f msg/s total); full %llu/%llu, rings %llu/%llu, "
	     "sleeps %llu/%llu, timeouts %lu/%lu", what, n, (double)dt / 1e9,
	     2.0 * n / ((double)dt / 1e9),
	     (unsigned long long)sd.full, (unsigned long long)sv.full,
	     (unsigned long long)sd.rings, (unsigned long long)sv.rings,
	     (unsigned long long)sd.sleeps, (unsigned long long)sv.sleeps, d.timeouts, v.timeouts);
	env_close(&e);
}

static void run_blocking(const char *what, int efd, uint32_t n)
{
	struct env e;
	struct side tx = { .dir = 0, .n = n, .blocking = 1 }, rx = { .dir = 1, .n = n, .blocking = 1 };
	struct vshm_mbox_stats st, sr;
	pthread_t tt, tr;
	int64_t t0, dt;

	if (env_open(&e, efd, 1)) {
		ok(0, "%s: set up", what);
		return;
	}
	tx.mb = &e.drv;
	rx.mb = &e.dev;
	t0 = now_ns();
	tx.deadline = rx.deadline = t0 + 240000 * MS;
	pthread_create(&tt, NULL, blocking_tx, &tx);
	pthread_create(&tr, NULL, blocking_rx, &rx);
	pthread_join(tt, NULL);
	pthread_join(tr, NULL);
	dt = now_ns() - t0;
	vshm_mbox_get_stats(&e.drv, &st);
	vshm_mbox_get_stats(&e.dev, &sr);
	ok(!tx.err && !rx.err && rx.recvd == n, "%s: %u messages with send/recv_timeout only (%d %d)",
	   what, rx.recvd, tx.err, rx.err);
	/* A lost wake-up would show as a 2 s timeout of the receiver. */
	is(rx.timeouts, 0, "%s: the receiver never waited out its bound (no lost wake-up)", what);
	diag("%s: %.3f s, %.0f msg/s; sender full %llu rings %llu; receiver sleeps %llu",
	     what, (double)dt / 1e9, n / ((double)dt / 1e9), (unsigned long long)st.full,
	     (unsigned long long)st.rings, (unsigned long long)sr.sleeps);
	env_close(&e);
}

/* ------------------------------------------------------------------------ */
/* single-threaded checks                                                    */

static void test_args(void)
{
	struct env e;
	struct vshm_mbox x;
	uint8_t m[VSHM_MSG_MAX_SIZE + 8], b[VSHM_MSG_MAX_SIZE];

	if (env_open(&e, 0, 0)) {
		ok(0, "set up");
		return;
	}
	is(vshm_mbox_init(&x, &e.w, 2, NULL), -EINVAL, "init: bad side refused");
	is(vshm_mbox_init(&x, NULL, VSHM_MBOX_SIDE_DRIVER, NULL), -EINVAL, "init: no window refused");
	is(vshm_mbox_format(NULL), -EINVAL, "format: no window refused");

	small_msg(m, 7, 1);
	is(vshm_mbox_send(&e.drv, m, 0), -EINVAL, "send: length 0 refused");
	is(vshm_mbox_send(&e.drv, m, 7), -EINVAL, "send: length 7 refused");
	small_msg(m, VSHM_MSG_MAX_SIZE + 1, 1);
	is(vshm_mbox_send(&e.drv, m, VSHM_MSG_MAX_SIZE + 1), -EINVAL, "send: length 265 refused");
	small_msg(m, 16, 1);
	m[6] = 17;
	is(vshm_mbox_send(&e.drv, m, 16), -EINVAL, "send: msg_size != len refused");
	is(vshm_mbox_send(&e.drv, NULL, 16), -EINVAL, "send: NULL message refused");
	is(ring(&e, VSHM_MBOX_D2V)->prod, 0, "refused sends publish nothing");
	ok(!vshm_mbox_broken(&e.drv), "refused sends do not break the endpoint");

	is(vshm_mbox_recv(&e.dev, b, sizeof(b)), -EAGAIN, "recv on empty: -EAGAIN");
	is(vshm_mbox_recv_timeout(&e.dev, b, sizeof(b), -1), -EINVAL, "recv_timeout: negative refused");
	is(vshm_mbox_send_timeout(&e.drv, m, 16, -1), -EINVAL, "send_timeout: negative refused");
	{
		int64_t t0 = now_ns();
		is(vshm_mbox_recv_timeout(&e.dev, b, sizeof(b), 0), -ETIMEDOUT,
		   "recv_timeout(0) on empty: -ETIMEDOUT");
		ok(now_ns() - t0 < LATE, "... at once");
	}

	small_msg(m, 100, 3);
	is(vshm_mbox_send(&e.drv, m, 100), 0, "send 100 bytes");
	is(vshm_mbox_recv(&e.dev, b, 99), -EMSGSIZE, "recv into 99 bytes: -EMSGSIZE");
	is(vshm_mbox_recv(&e.dev, b, sizeof(b)), 100, "... the message stayed queued");
	ok(!memcmp(b, m, 100), "... and arrives intact");
	ok(!vshm_mbox_broken(&e.dev), "-EMSGSIZE does not break the endpoint");

	/* The slot's reserved word is ignored on receive (forward compatible). */
	vshm_mbox_send(&e.drv, m, 100);
	slot(&e, VSHM_MBOX_D2V, 1)->reserved = 0xdead;
	is(vshm_mbox_recv(&e.dev, b, sizeof(b)), 100, "a non-zero reserved word is ignored");
	env_close(&e);
}

static void test_padding(void)
{
	struct env e;
	uint8_t m[VSHM_MSG_MAX_SIZE], b[VSHM_MSG_MAX_SIZE];
	struct vshm_mbox_slot *s;
	int clean = 1;

	if (env_open(&e, 0, 0)) {
		ok(0, "set up");
		return;
	}
	/* Stale bytes everywhere, as if older, longer messages had been there. */
	memset(slot(&e, VSHM_MBOX_D2V, 0), 0xaa, VSHM_MBOX_SLOTS * VSHM_MBOX_SLOT_SIZE);
	small_msg(m, 20, 0x55);
	is(vshm_mbox_send(&e.drv, m, 20), 0, "send 20 bytes over a dirty slot");
	s = slot(&e, VSHM_MBOX_D2V, 0);
	is(s->len, 20, "slot len is 20");
	is(s->reserved, 0, "slot reserved word is zero");
	ok(!memcmp(s->msg, m, 20), "slot holds the message");
	for (unsigned i = 20; i < VSHM_MSG_MAX_SIZE; i++)
		clean &= s->msg[i] == 0;
	ok(clean, "the 244 bytes past len are zero (no stale bytes leak)");

	/* Full-size, then a short one in the same slot after a lap. */
	for (unsigned i = 0; i < VSHM_MBOX_SLOTS; i++) {
		small_msg(m, VSHM_MSG_MAX_SIZE, 0xff);
		vshm_mbox_recv(&e.dev, b, sizeof(b));
		vshm_mbox_send(&e.drv, m, VSHM_MSG_MAX_SIZE);
	}
	vshm_mbox_recv(&e.dev, b, sizeof(b));
	small_msg(m, 8, 0x11);
	is(vshm_mbox_send(&e.drv, m, 8), 0, "an 8-byte message over a 264-byte one");
	s = slot(&e, VSHM_MBOX_D2V, 1);
	clean = 1;
	for (unsigned i = 8; i < VSHM_MSG_MAX_SIZE; i++)
		clean &= s->msg[i] == 0;
	ok(s->len == 8 && clean, "... leaves no byte of the older message");
	env_close(&e);
}

static void test_full_and_timeouts(int efd)
{
	const char *db = efd ? "eventfd" : "poll-only";
	struct env e;
	uint8_t m[VSHM_MSG_MAX_SIZE], b[VSHM_MSG_MAX_SIZE];
	struct vshm_mbox_stats st;
	int64_t t0, dt;
	int rc, all = 1;

	if (env_open(&e, efd, 1)) {
		ok(0, "%s: set up", db);
		return;
	}
	for (unsigned i = 0; i < VSHM_MBOX_SLOTS; i++)
		all &= vshm_mbox_send(&e.drv, m, small_msg(m, 8 + i, (uint8_t)i)) == 0;
	ok(all, "%s: 32 sends fill the ring", db);
	small_msg(m, 8, 0);
	is(vshm_mbox_send(&e.drv, m, 8), -EAGAIN, "%s: the 33rd send: -EAGAIN", db);

	t0 = now_ns();
	rc = vshm_mbox_send_timeout(&e.drv, m, 8, 20 * MS);
	dt = now_ns() - t0;
	is(rc, -ETIMEDOUT, "%s: send_timeout on a full ring: -ETIMEDOUT", db);
	ok(dt >= 20 * MS && dt < 20 * MS + LATE, "%s: ... after the 20 ms bound (%lld us)", db,
	   (long long)(dt / US));
	vshm_mbox_get_stats(&e.drv, &st);
	is(st.full, 2, "%s: two full events counted", db);

	is(vshm_mbox_recv(&e.dev, b, sizeof(b)), 8, "%s: the consumer takes one", db);
	t0 = now_ns();
	is(vshm_mbox_send_timeout(&e.drv, m, 8, 1000 * MS), 0, "%s: send_timeout then succeeds", db);
	ok(now_ns() - t0 < LATE, "%s: ... at once", db);
	for (unsigned i = 1; i < VSHM_MBOX_SLOTS; i++)
		all &= vshm_mbox_recv(&e.dev, b, sizeof(b)) == (int)(8 + i);
	ok(all, "%s: the rest arrive in order", db);
	vshm_mbox_recv(&e.dev, b, sizeof(b));

	t0 = now_ns();
	rc = vshm_mbox_recv_timeout(&e.dev, b, sizeof(b), 20 * MS);
	dt = now_ns() - t0;
	is(rc, -ETIMEDOUT, "%s: recv_timeout on an empty ring: -ETIMEDOUT", db);
	ok(dt >= 20 * MS && dt < 20 * MS + LATE, "%s: ... after the 20 ms bound (%lld us)", db,
	   (long long)(dt / US));
	is(ring(&e, VSHM_MBOX_D2V)->cons_waiting, 0, "%s: cons_waiting is cleared again", db);
	env_close(&e);
}

struct late_sender {
	struct vshm_mbox *mb;
	int64_t delay;
	int rc;
};

static void *send_later(void *arg)
{
	struct late_sender *l = arg;
	uint8_t m[32];
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)l->delay };

	nanosleep(&ts, NULL);
	l->rc = vshm_mbox_send(l->mb, m, small_msg(m, 32, 7));
	return NULL;
}

static void test_wakeup(void)
{
	struct env e;
	struct late_sender l;
	struct vshm_mbox_stats sd, sv;
	uint8_t m[VSHM_MSG_MAX_SIZE], b[VSHM_MSG_MAX_SIZE];
	pthread_t t;
	int64_t t0, dt;
	int rc, fd;

	if (env_open(&e, 1, 1)) {
		ok(0, "set up");
		return;
	}
	/* No waiter: no doorbell. */
	for (int i = 0; i < 5; i++)
		vshm_mbox_send(&e.drv, m, small_msg(m, 16, 1));
	vshm_mbox_get_stats(&e.drv, &sd);
	is(sd.rings, 0, "sends to a consumer that is not waiting ring no doorbell");
	fd = vshm_doorbell_fd(&e.eb.db, VSHM_VEC_MBOX);
	for (int i = 0; i < 5; i++)
		vshm_mbox_recv(&e.dev, b, sizeof(b));

	/* Armed: one ring. */
	is(vshm_mbox_arm(&e.dev), 0, "arm on an empty ring: safe to sleep");
	is(ring(&e, VSHM_MBOX_D2V)->cons_waiting, 1, "... cons_waiting is 1");
	vshm_mbox_send(&e.drv, m, small_msg(m, 16, 1));
	vshm_mbox_get_stats(&e.drv, &sd);
	is(sd.rings, 1, "a send to an armed consumer rings once");
	{
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ok(poll(&p, 1, 0) == 1, "... and the device's doorbell fd is readable");
	}
	is(vshm_mbox_arm(&e.dev), 1, "arm with a message queued says: do not sleep");
	vshm_mbox_disarm(&e.dev);
	is(ring(&e, VSHM_MBOX_D2V)->cons_waiting, 0, "disarm clears cons_waiting");
	vshm_mbox_recv(&e.dev, b, sizeof(b));
	vshm_doorbell_drain(&e.eb.db, VSHM_VEC_MBOX);

	/* Always-ring. */
	vshm_mbox_set_flags(&e.drv, VSHM_MBOX_F_ALWAYS_RING);
	for (int i = 0; i < 3; i++)
		vshm_mbox_send(&e.drv, m, small_msg(m, 16, 1));
	vshm_mbox_get_stats(&e.drv, &sd);
	is(sd.rings, 4, "VSHM_MBOX_F_ALWAYS_RING rings on every send");
	vshm_mbox_set_flags(&e.drv, 0);
	for (int i = 0; i < 3; i++)
		vshm_mbox_recv(&e.dev, b, sizeof(b));

	/* A sleeping receiver is woken by the send, long before its bound. */
	l.mb = &e.drv;
	l.delay = 30 * MS;
	l.rc = -1;
	pthread_create(&t, NULL, send_later, &l);
	t0 = now_ns();
	rc = vshm_mbox_recv_timeout(&e.dev, b, sizeof(b), 5000 * MS);
	dt = now_ns() - t0;
	pthread_join(t, NULL);
	is(rc, 32, "recv_timeout gets the message sent 30 ms later");
	/* Correctness, not speed: the doorbell woke it, long before the 5 s bound. */
	ok(dt < 2500 * MS, "... woken by the doorbell, not the 5 s bound (%lld us)",
	   (long long)(dt / US));
	vshm_mbox_get_stats(&e.drv, &sd);
	vshm_mbox_get_stats(&e.dev, &sv);
	ok(sv.sleeps >= 1 && sd.rings >= 5, "... it slept (%llu) and was rung (%llu)",
	   (unsigned long long)sv.sleeps, (unsigned long long)sd.rings);
	env_close(&e);
}

static void on_alarm(int sig)
{
	(void)sig;
}

/* A signal cuts a bounded wait short with -EINTR, and leaves no request armed. */
static void test_eintr(int efd)
{
	const char *db = efd ? "eventfd" : "poll-only";
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	struct itimerval it = { .it_value = { .tv_usec = 20000 } }, off = { 0 };
	struct vshm_db_poll slow;
	uint8_t b[VSHM_MSG_MAX_SIZE];
	struct env e;
	int64_t t0, dt;
	int rc;

	if (env_open(&e, efd, 1)) {
		ok(0, "%s: set up", db);
		return;
	}
	if (!efd) {
		/* One long quantum, so that the signal lands in the sleep. */
		vshm_doorbell_poll_init(&slow, 10000 * MS);
		vshm_mbox_init(&e.dev, &e.m, VSHM_MBOX_SIDE_DEVICE, &slow.db);
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, &old);	/* no SA_RESTART */
	setitimer(ITIMER_REAL, &it, NULL);
	t0 = now_ns();
	rc = vshm_mbox_recv_timeout(&e.dev, b, sizeof(b), 5000 * MS);
	dt = now_ns() - t0;
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);
	is(rc, -EINTR, "%s: a signal during recv_timeout returns -EINTR", db);
	ok(dt < 2000 * MS, "%s: ... promptly (%lld ms)", db, (long long)(dt / MS));
	is(ring(&e, VSHM_MBOX_D2V)->cons_waiting, 0, "%s: ... with cons_waiting cleared", db);
	env_close(&e);
}

static void test_wrap(void)
{
	struct env e;
	uint8_t m[VSHM_MSG_MAX_SIZE], b[VSHM_MSG_MAX_SIZE];
	const uint32_t x = 0xfffffff0u;
	int good = 1;

	if (env_open(&e, 0, 0)) {
		ok(0, "set up");
		return;
	}
	/* Both sides agree on indices 16 short of 2^32. */
	ring(&e, VSHM_MBOX_D2V)->prod = ring(&e, VSHM_MBOX_D2V)->cons = x;
	e.drv.tx_prod = e.drv.tx_cons = x;
	e.dev.rx_cons = e.dev.rx_prod = x;
	for (uint32_t i = 0; i < 100; i++) {
		size_t len = make_msg(m, 0, i);
		int n = 0;

		good &= vshm_mbox_send(&e.drv, m, len) == 0;
		if (i % 3 == 2) {	/* let up to 3 queue across the wrap */
			while (n < 3 && vshm_mbox_recv(&e.dev, b, sizeof(b)) > 0)
				n++;
			good &= n == 3;
		}
	}
	while (vshm_mbox_recv(&e.dev, b, sizeof(b)) > 0)
		;
	ok(good && !vshm_mbox_broken(&e.drv) && !vshm_mbox_broken(&e.dev),
	   "100 messages across the 2^32 index wrap");
	is(ring(&e, VSHM_MBOX_D2V)->prod, x + 100, "prod wrapped to %u", x + 100);
	env_close(&e);
}

/* ------------------------------------------------------------------------ */
/* hostile peer                                                              */

enum victim { DEV_RX, DRV_TX };

struct attack {
	const char *what;
	enum victim victim;
	void (*fn)(struct env *e);
};

static uint8_t hm[VSHM_MSG_MAX_SIZE];

static void send_n(struct env *e, unsigned n, size_t len)
{
	for (unsigned i = 0; i < n; i++)
		vshm_mbox_send(&e->drv, hm, small_msg(hm, len, (uint8_t)i));
}

static void recv_n(struct env *e, unsigned n)
{
	uint8_t b[VSHM_MSG_MAX_SIZE];

	for (unsigned i = 0; i < n; i++)
		vshm_mbox_recv(&e->dev, b, sizeof(b));
}

static void a_prod_33(struct env *e)
{
	ring(e, VSHM_MBOX_D2V)->prod = 33;
}

static void a_prod_huge(struct env *e)
{
	ring(e, VSHM_MBOX_D2V)->prod = 0x80000000u;
}

static void a_prod_back(struct env *e)
{
	send_n(e, 2, 16);
	recv_n(e, 1);		/* the device has seen prod 2 */
	ring(e, VSHM_MBOX_D2V)->prod = 1;
}

static void a_prod_ahead_after_traffic(struct env *e)
{
	send_n(e, 5, 16);
	recv_n(e, 5);
	ring(e, VSHM_MBOX_D2V)->prod = 5 + VSHM_MBOX_SLOTS + 1;
}

static void set_len(struct env *e, uint32_t len)
{
	send_n(e, 1, 16);
	slot(e, VSHM_MBOX_D2V, 0)->len = len;
}

static void a_len_0(struct env *e) { set_len(e, 0); }
static void a_len_7(struct env *e) { set_len(e, 7); }
static void a_len_265(struct env *e) { set_len(e, 265); }
static void a_len_max(struct env *e) { set_len(e, 0xffffffffu); }

static void a_msg_size_bigger(struct env *e)
{
	send_n(e, 1, 16);
	slot(e, VSHM_MBOX_D2V, 0)->msg[6] = 17;
}

static void a_len_smaller(struct env *e)
{
	send_n(e, 1, 24);
	slot(e, VSHM_MBOX_D2V, 0)->len = 16;	/* msg_size still says 24 */
}

static void a_cons_ahead(struct env *e)
{
	ring(e, VSHM_MBOX_D2V)->cons = 5;	/* nothing was ever sent */
}

static void a_cons_past_prod(struct env *e)
{
	send_n(e, 3, 16);
	ring(e, VSHM_MBOX_D2V)->cons = 4;
}

static void a_cons_back(struct env *e)
{
	send_n(e, 3, 16);
	recv_n(e, 3);
	send_n(e, 1, 16);	/* the driver has seen cons 3 */
	ring(e, VSHM_MBOX_D2V)->cons = 1;
}

static void a_cons_wrap(struct env *e)
{
	ring(e, VSHM_MBOX_D2V)->cons = 0xffffffffu;
}

static const struct attack attacks[] = {
	{ "prod jumps 33 ahead", DEV_RX, a_prod_33 },
	{ "prod jumps 2^31 ahead", DEV_RX, a_prod_huge },
	{ "prod moves backwards", DEV_RX, a_prod_back },
	{ "prod more than a ring ahead after traffic", DEV_RX, a_prod_ahead_after_traffic },
	{ "slot len 0", DEV_RX, a_len_0 },
	{ "slot len 7", DEV_RX, a_len_7 },
	{ "slot len 265", DEV_RX, a_len_265 },
	{ "slot len 0xffffffff", DEV_RX, a_len_max },
	{ "msg_size 17, slot len 16", DEV_RX, a_msg_size_bigger },
	{ "msg_size 24, slot len 16", DEV_RX, a_len_smaller },
	{ "cons ahead of anything sent", DRV_TX, a_cons_ahead },
	{ "cons past prod", DRV_TX, a_cons_past_prod },
	{ "cons moves backwards", DRV_TX, a_cons_back },
	{ "cons 0xffffffff (behind 0)", DRV_TX, a_cons_wrap },
};

static void test_hostile(void)
{
	struct env e;
	uint8_t m[VSHM_MSG_MAX_SIZE], b[VSHM_MSG_MAX_SIZE];

	if (env_open(&e, 0, 0)) {
		ok(0, "set up");
		return;
	}
	small_msg(m, 16, 9);
	for (unsigned i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++) {
		const struct attack *a = &attacks[i];
		struct vshm_mbox *v = a->victim == DEV_RX ? &e.dev : &e.drv;
		int first, sticky;

		env_reset(&e);
		a->fn(&e);
		if (a->victim == DEV_RX)
			first = vshm_mbox_recv(v, b, sizeof(b));
		else
			first = vshm_mbox_send(v, m, 16);
		sticky = vshm_mbox_recv(v, b, sizeof(b)) == -EIO &&
			 vshm_mbox_send(v, m, 16) == -EIO &&
			 vshm_mbox_recv_timeout(v, b, sizeof(b), 1 * MS) == -EIO &&
			 vshm_mbox_send_timeout(v, m, 16, 1 * MS) == -EIO &&
			 vshm_mbox_arm(v) == -EIO;
		ok(first == -EIO && vshm_mbox_broken(v) && sticky && vshm_mbox_broken_reason(v),
		   "hostile %u: %s => -EIO, sticky (%s)", i + 1, a->what,
		   vshm_mbox_broken_reason(v) ? vshm_mbox_broken_reason(v) : "not broken");
	}

	/* Recovery: format + reset. */
	env_reset(&e);
	ok(!vshm_mbox_broken(&e.dev) && !vshm_mbox_broken_reason(&e.dev), "reset clears broken");
	ok(vshm_mbox_send(&e.drv, m, 16) == 0 && vshm_mbox_recv(&e.dev, b, sizeof(b)) == 16,
	   "traffic flows again after format + reset");
	env_close(&e);
}

/* Random garbage in the consumer's ring: every outcome is one of three, never a crash. */
static void test_garbage(void)
{
	struct env e;
	uint8_t b[VSHM_MSG_MAX_SIZE];
	uint32_t r = 12345;
	unsigned long got = 0, empty = 0, eio = 0, other = 0;
	const unsigned rounds = (unsigned)tap_scale(20000);

	if (env_open(&e, 0, 0)) {
		ok(0, "set up");
		return;
	}
	for (unsigned i = 0; i < rounds; i++) {
		struct vshm_mbox_ring *rg = ring(&e, VSHM_MBOX_D2V);
		int rc;

		env_reset(&e);
		r = mix(r + i);
		rg->prod = r % 4 == 0 ? r : r % 40;
		for (unsigned k = 0; k < 3; k++) {
			struct vshm_mbox_slot *s = slot(&e, VSHM_MBOX_D2V, k);
			r = mix(r);
			s->len = r % 2 ? r % 300 : r;
			s->msg[6] = (uint8_t)mix(r);
			s->msg[7] = r % 5 == 0 ? 0 : (uint8_t)(r >> 8);
		}
		rc = vshm_mbox_recv(&e.dev, b, sizeof(b));
		if (rc >= (int)VSHM_MBOX_MSG_MIN && rc <= (int)VSHM_MSG_MAX_SIZE &&
		    (b[6] | b[7] << 8) == rc)
			got++;
		else if (rc == -EAGAIN)
			empty++;
		else if (rc == -EIO && vshm_mbox_broken(&e.dev))
			eio++;
		else
			other++;
	}
	ok(other == 0, "%u garbage rings: %lu valid, %lu empty, %lu broken, %lu anything else",
	   rounds, got, empty, eio, other);
	env_close(&e);
}

int main(void)
{
	uint32_t n = (uint32_t)tap_scale(100000);

	test_args();
	test_padding();
	test_full_and_timeouts(1);
	test_full_and_timeouts(0);
	test_wakeup();
	test_eintr(1);
	test_eintr(0);
	test_wrap();
	test_hostile();
	test_garbage();
	run_both_ways("eventfd, two mappings", 1, 1, n);
	run_both_ways("eventfd, one mapping", 1, 0, n);
	run_both_ways("poll-only, two mappings", 0, 1, n);
	run_blocking("blocking, eventfd", 1, n);
	run_blocking("blocking, poll-only", 0, n);
	return tap_done();
}
