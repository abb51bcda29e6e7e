// SPDX-License-Identifier: MIT
/*
 * The three ring layouts side by side: split, packed and FIFO, each driven
 * through the public vq API with a 64-byte request and a 64-byte reply.
 *
 *   rtt, polling      one request in flight, both sides spin
 *   rtt, doorbell     one request in flight, both sides sleep on eventfd
 *                     doorbells between requests (arm, re-check, wait)
 *   ops, batch 32     32 requests added, published once, harvested as a batch
 *
 * The driver thread runs on core 0 over the window it created, the device
 * thread on core 1 over its own mapping of the same memfd, as two processes
 * would.  Baselines measured in the same run, between the same two pinned
 * threads: a bare cache-line ping-pong (the floor of any two-core round
 * trip: two of them, below), and pipe, Unix stream socket and eventfd
 * ping-pongs (what a
 * kernel-mediated channel costs).  Every trial runs every subject once, so a
 * burst of load from elsewhere on the machine hits all of them; each figure
 * is the median of TRIALS trials (a trial's figure is its median block, see
 * below), each ratio the median of the per-trial ratios.
 *
 *   bench_rings                     the table (VSHM_BENCH_QUICK=1: shorter;
 *                                   VSHM_BENCH_MEANS=1: whole-run means too)
 *   bench_rings --once LAYOUT N     N polling round trips, silent, for
 *                                   scripts/ringtest.sh to time from outside
 *                                   (LAYOUT also cacheline, cacheline1 or
 *                                   msg64: the floors below)
 *
 * The two floors.  cacheline: each side writes its own line and polls the
 * other's, as any layout with separate request and completion memory does
 * (split, FIFO).  cacheline1: one line, each side writes the word the
 * other polls, as a ring that completes in place over the request does
 * (packed, ringtest's ring).  On x86 the second is cheaper: the side that
 * has just read the line can write it without asking the other core again.
 *
 * A third floor, for --once only: msg64, the bare exchange of PAYLOAD
 * bytes each way that any layout moving the data must do at least.  One
 * ring, completed in place: the driver writes a 16-byte header and the
 * request bytes and then a mark, the device polls the mark, copies the
 * request into the reply area of the same frame and flips the mark, the
 * driver polls and copies the reply out.  No ids, no validation, no
 * notification check: a model, not a ring anyone could use.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vshm/doorbell.h>
#include <vshm/vq.h>
#include <vshm/window.h>
#include "barrier.h"
#include "bench.h"

#define TRIALS		9
#define PAYLOAD		64		/* bytes each way */
#define QNUM		256		/* ring entries (FIFO: request ids) */
#define FIFO_RING	8192		/* FIFO data bytes per direction */
#define BATCH		32
#define SLOT_STRIDE	256		/* out buffer, then in buffer 128 bytes on */
#define WAIT_NS		1000000000ll	/* one doorbell wait: a hint, re-checked */
#define MAX_IDLE_WAITS	10		/* waits in a row that saw nothing: give up */

enum { L_SPLIT, L_PACKED, L_FIFO, NLAYOUT };
static const char *const layout_name[NLAYOUT] = { "split", "packed", "fifo" };
static const uint64_t layout_features[NLAYOUT] = {
	1ull << VSHM_F_EVENT_IDX,
	(1ull << VSHM_F_RING_PACKED) | (1ull << VSHM_F_EVENT_IDX),
	1ull << VSHM_F_FIFO_RING,
};

/* ------------------------------------------------------------------------ */
/* Block timing                                                              */

/*
 * A timed run is cut into blocks of tens to hundreds of microseconds, and
 * its figure is the median block.  On a shared machine a pinned, spinning
 * thread still loses its core to other tasks now and then; a round trip
 * that waits for a descheduled peer costs a scheduler tick, and a handful
 * of those would dominate a plain mean.  The median block is what the code
 * costs when both threads are on their cores; the mean over the whole run
 * is kept for comparison (last_mean_ns, printed with VSHM_BENCH_MEANS=1).
 */
#define MAX_BLOCKS	2048

struct blocks {
	uint64_t per;			/* rounds per block */
	uint64_t n;			/* blocks recorded */
	uint64_t t_start, t_last;
	double ns[MAX_BLOCKS];		/* each block's nanoseconds per round */
};

static struct blocks blk;		/* only the timing (driver) thread uses it */
static double last_mean_ns;		/* whole-run mean of the last run */

/*
 * How long a measurement runs: @blocks blocks of @per rounds, after @warm
 * untimed rounds (PLAN_WARM: a tenth of the timed ones, at least a block).
 */
struct plan {
	uint64_t per;
	uint64_t blocks;
	uint64_t warm;
};

#define PLAN_WARM	UINT64_MAX

static uint64_t plan_warm(const struct plan *p)
{
	uint64_t rounds = p->per * p->blocks;

	if (p->warm != PLAN_WARM)
		return p->warm;
	return rounds / 10 > p->per ? rounds / 10 : p->per;
}

static void blocks_start(uint64_t per)
{
	blk.per = per;
	blk.n = 0;
	blk.t_start = blk.t_last = bench_ns();
}

/* Call after round @done (counted from 1 after warm-up). */
static inline void blocks_tick(uint64_t done)
{
	if (done % blk.per == 0 && blk.n < MAX_BLOCKS) {
		uint64_t now = bench_ns();

		blk.ns[blk.n++] = (double)(now - blk.t_last) / (double)blk.per;
		blk.t_last = now;
	}
}

/* The median block, in nanoseconds per round; records the whole-run mean. */
static double blocks_end(uint64_t rounds)
{
	last_mean_ns = (double)(bench_ns() - blk.t_start) / (double)rounds;
	return blk.n ? bench_median(blk.ns, (int)blk.n) : last_mean_ns;
}

/* ------------------------------------------------------------------------ */
/* Ring runs                                                                 */

/* One run of one layout: everything both threads share. */
struct run {
	struct vshm_window *dw;		/* the driver's mapping */
	struct vshm_window *vw;		/* the device's mapping of the same fd */
	struct vshm_drv_vq *d;
	struct vshm_dev_vq *v;
	struct vshm_db_eventfd db_drv;	/* driver's end: rings the device, waits here */
	struct vshm_db_eventfd db_dev;	/* device's end: rings the driver, waits here */
	uint64_t buf;			/* window offset of the BATCH buffer slots */
	int doorbell;			/* 1: sleep between requests, 0: spin */
	unsigned batch;			/* requests per publish */
	uint64_t total;			/* requests the device serves, warm-up included */
	const char *why;		/* first failure */
	int fail;
};

static void run_fail(struct run *r, const char *why)
{
	if (!__atomic_exchange_n(&r->fail, 1, __ATOMIC_RELAXED))
		r->why = why;
}

/* The driver's kick: rung on its end of the pair, it wakes the device. */
static int kick_device(void *ctx)
{
	return vshm_doorbell_ring(&((struct run *)ctx)->db_drv.db, 0);
}

/* The device's interrupt: rung on its end, it wakes the driver. */
static int interrupt_driver(void *ctx)
{
	return vshm_doorbell_ring(&((struct run *)ctx)->db_dev.db, 0);
}

/*
 * Sleep on @db until something may have changed.  Returns 0 to re-check,
 * -1 when the peer has been silent for MAX_IDLE_WAITS waits (or failed).
 */
static int doorbell_sleep(struct run *r, struct vshm_db_eventfd *db, int *idle)
{
	int rc = vshm_doorbell_wait(&db->db, 0, WAIT_NS);

	if (__atomic_load_n(&r->fail, __ATOMIC_RELAXED))
		return -1;
	if (rc == 0) {
		*idle = 0;
		return 0;
	}
	if (rc != -ETIMEDOUT && rc != -EINTR) {
		run_fail(r, "doorbell wait failed");
		return -1;
	}
	if (++*idle >= MAX_IDLE_WAITS) {
		run_fail(r, "no doorbell for 10 s");
		return -1;
	}
	return 0;
}

/* The device: echo each request's 64 bytes into its reply buffer. */
static void *device_thread(void *arg)
{
	struct run *r = arg;
	struct vshm_chain c[BATCH];
	struct vshm_iov iov[BATCH * 2];
	uint64_t done = 0;
	int idle = 0;

	bench_pin(1);
	if (!r->doorbell)
		vshm_dev_vq_disable_notify(r->v);
	while (done < r->total) {
		int n = vshm_dev_vq_pop_batch(r->v, c, BATCH, iov, 2);

		if (n < 0) {
			run_fail(r, vshm_dev_vq_error(r->v));
			break;
		}
		if (n == 0) {
			if (__atomic_load_n(&r->fail, __ATOMIC_RELAXED))
				break;
			if (!r->doorbell) {
				vshm_cpu_relax();
				continue;
			}
			/* Arm, then re-check: a chain published before the arm is seen here. */
			if (vshm_dev_vq_enable_notify(r->v) == 0 && doorbell_sleep(r, &r->db_dev, &idle))
				break;
			vshm_dev_vq_disable_notify(r->v);
			continue;
		}
		for (int k = 0; k < n; k++) {
			if (c[k].nout != 1 || c[k].nin != 1 || c[k].iov[0].len != PAYLOAD ||
			    c[k].iov[1].len < PAYLOAD) {
				run_fail(r, "device: unexpected chain shape");
				return NULL;
			}
			memcpy(c[k].iov[1].base, c[k].iov[0].base, PAYLOAD);
			if (vshm_dev_vq_push(r->v, c[k].head, PAYLOAD) < 0) {
				run_fail(r, vshm_dev_vq_error(r->v));
				return NULL;
			}
		}
		if ((r->doorbell ? vshm_dev_vq_complete(r->v) : vshm_dev_vq_publish(r->v)) < 0) {
			run_fail(r, vshm_dev_vq_error(r->v));
			break;
		}
		done += (uint64_t)n;
	}
	return NULL;
}

/*
 * The driver: @warm untimed rounds, then @rounds timed ones in blocks of
 * @per, each round posting r->batch requests and waiting for all their
 * replies.  Returns 0, or -1 on failure.
 */
static int driver_loop(struct run *r, uint64_t warm, uint64_t rounds, uint64_t per)
{
	struct vshm_sg sg[BATCH][2];
	uint8_t msg[PAYLOAD];
	void *ck[BATCH];
	uint32_t len[BATCH];
	uint64_t seq = 0;
	int idle = 0;

	for (unsigned k = 0; k < r->batch; k++) {
		sg[k][0].off = r->buf + (uint64_t)k * SLOT_STRIDE;
		sg[k][0].len = PAYLOAD;
		sg[k][0].flags = 0;
		sg[k][1].off = sg[k][0].off + 128;
		sg[k][1].len = PAYLOAD;
		sg[k][1].flags = 0;
	}
	for (unsigned i = 0; i < PAYLOAD; i++)
		msg[i] = (uint8_t)i;
	if (!r->doorbell)
		vshm_drv_vq_disable_cb(r->d);
	for (uint64_t it = 0; it < warm + rounds; it++) {
		unsigned got = 0;

		if (it == warm)
			blocks_start(per);
		else if (it > warm)
			blocks_tick(it - warm);
		for (unsigned k = 0; k < r->batch; k++) {
			uint64_t s = ++seq;

			memcpy(msg, &s, sizeof(s));
			memcpy(r->dw->base + sg[k][0].off, msg, PAYLOAD);
			if (vshm_drv_vq_add(r->d, sg[k], 1, 1, (void *)(uintptr_t)(k + 1)) < 0) {
				run_fail(r, "driver: add failed");
				return -1;
			}
		}
		if ((r->doorbell ? vshm_drv_vq_kick(r->d) : vshm_drv_vq_publish(r->d)) < 0) {
			run_fail(r, vshm_drv_vq_error(r->d));
			return -1;
		}
		while (got < r->batch) {
			int n = vshm_drv_vq_harvest_batch(r->d, ck, len, r->batch - got);

			if (n < 0) {
				run_fail(r, vshm_drv_vq_error(r->d));
				return -1;
			}
			for (int j = 0; j < n; j++) {
				unsigned k = (unsigned)(uintptr_t)ck[j] - 1;
				uint64_t want = seq - r->batch + 1 + k, echo = 0;

				if (k < r->batch)
					memcpy(&echo, r->dw->base + sg[k][1].off, sizeof(echo));
				if (k >= r->batch || len[j] != PAYLOAD || echo != want) {
					run_fail(r, "driver: wrong reply");
					return -1;
				}
			}
			got += (unsigned)n;
			if (n)
				continue;
			if (__atomic_load_n(&r->fail, __ATOMIC_RELAXED))
				return -1;
			if (!r->doorbell) {
				vshm_cpu_relax();
				continue;
			}
			/* Arm, then re-check: 1 means a completion beat the arm. */
			if (vshm_drv_vq_enable_cb(r->d) == 0 && doorbell_sleep(r, &r->db_drv, &idle))
				return 0;
			vshm_drv_vq_disable_cb(r->d);
		}
	}
	blocks_tick(rounds);
	return 0;
}

/* Nanoseconds per round (of @batch requests), or -1 on failure. */
static double ring_run(struct vshm_window *dw, struct vshm_window *vw, int layout,
		       int doorbell, unsigned batch, const struct plan *p)
{
	static struct run r;
	struct vshm_vq_layout l;
	struct vshm_vq_notify kick = { kick_device, &r }, irq = { interrupt_driver, &r };
	uint64_t feat = layout_features[layout], rounds = p->per * p->blocks, warm = plan_warm(p);
	int64_t used;
	pthread_t t;

	memset(&r, 0, sizeof(r));
	r.dw = dw;
	r.vw = vw;
	r.doorbell = doorbell;
	r.batch = batch;
	r.total = (warm + rounds) * batch;
	if (layout == L_SPLIT)
		used = vshm_vq_layout_split(&l, dw->drv_lo, QNUM, 0);
	else if (layout == L_PACKED)
		used = vshm_vq_layout_packed(&l, dw->drv_lo, QNUM, 0);
	else
		used = vshm_vq_layout_fifo(&l, dw->drv_lo, QNUM, FIFO_RING);
	if (used < 0)
		return -1;
	r.buf = (dw->drv_lo + (uint64_t)used + 4095) & ~4095ull;
	if (vshm_doorbell_eventfd_pair(&r.db_drv, &r.db_dev, 1))
		return -1;
	if (vshm_drv_vq_create(&r.d, dw, &l, feat, doorbell ? &kick : NULL) ||
	    vshm_dev_vq_create(&r.v, vw, &l, feat, doorbell ? &irq : NULL)) {
		fprintf(stderr, "bench: cannot create %s queues\n", layout_name[layout]);
		vshm_drv_vq_destroy(r.d);
		vshm_doorbell_eventfd_fini(&r.db_drv);
		vshm_doorbell_eventfd_fini(&r.db_dev);
		return -1;
	}
	bench_pin(0);
	if (pthread_create(&t, NULL, device_thread, &r) == 0) {
		driver_loop(&r, warm, rounds, p->per);
		if (r.fail) {
			/* Let a sleeping device see the failure. */
			vshm_doorbell_ring(&r.db_drv.db, 0);
		}
		pthread_join(t, NULL);
	} else {
		run_fail(&r, "pthread_create");
	}
	if (r.fail)
		fprintf(stderr, "bench: %s %s batch %u: %s\n", layout_name[layout],
			doorbell ? "doorbell" : "polling", batch, r.why ? r.why : "failed");
	vshm_drv_vq_destroy(r.d);
	vshm_dev_vq_destroy(r.v);
	vshm_doorbell_eventfd_fini(&r.db_drv);
	vshm_doorbell_eventfd_fini(&r.db_dev);
	return r.fail ? -1 : blocks_end(rounds);
}

/* ------------------------------------------------------------------------ */
/* Baselines                                                                 */

#define MSG_RING	8192
#define MSG_FRAME	((16 + 2 * PAYLOAD + 15) & ~15u)	/* header, request, reply */

struct msgfloor {
	_Alignas(64) uint8_t ring[MSG_RING];
	uint64_t iters;
};

static inline uint32_t *msg_mark(struct msgfloor *m, uint32_t pos)
{
	return (uint32_t *)(void *)(m->ring + (pos & (MSG_RING - 1)));
}

/* The next frame's position: frames never wrap, 16 bytes stay free after. */
static inline uint32_t msg_next(uint32_t pos)
{
	if ((pos & (MSG_RING - 1)) + MSG_FRAME + 16 > MSG_RING)
		pos = (pos + MSG_RING) & ~(MSG_RING - 1);
	return pos;
}

static void *msg_device(void *arg)
{
	struct msgfloor *m = arg;
	uint32_t pos = 0;

	bench_pin(1);
	for (uint64_t i = 0; i < m->iters; i++) {
		uint8_t *f;

		pos = msg_next(pos);
		while (__atomic_load_n(msg_mark(m, pos), __ATOMIC_ACQUIRE) != (pos | 1))
			vshm_cpu_relax();
		f = m->ring + (pos & (MSG_RING - 1));
		memcpy(f + 16 + PAYLOAD, f + 16, PAYLOAD);
		__atomic_store_n(msg_mark(m, pos), pos | 2, __ATOMIC_RELEASE);
		pos += MSG_FRAME;
	}
	return NULL;
}

static int msgfloor_run(uint64_t iters)
{
	static struct msgfloor m;
	uint8_t msg[PAYLOAD], reply[PAYLOAD];
	uint32_t pos = 0;
	pthread_t t;
	int bad = 0;

	memset(&m, 0, sizeof(m));
	memset(msg, 0x5a, sizeof(msg));
	m.iters = iters;
	bench_pin(0);
	if (pthread_create(&t, NULL, msg_device, &m))
		return -1;
	for (uint64_t i = 0; i < iters; i++) {
		uint8_t *f;

		pos = msg_next(pos);
		f = m.ring + (pos & (MSG_RING - 1));
		memcpy(msg, &i, sizeof(i));
		memcpy(f + 16, msg, PAYLOAD);
		*msg_mark(&m, pos + MSG_FRAME) = 0;	/* the slot after reads 0 */
		__atomic_store_n(msg_mark(&m, pos), pos | 1, __ATOMIC_RELEASE);
		while (__atomic_load_n(msg_mark(&m, pos), __ATOMIC_ACQUIRE) != (pos | 2))
			vshm_cpu_relax();
		memcpy(reply, f + 16 + PAYLOAD, PAYLOAD);
		bad |= memcmp(reply, &i, sizeof(i)) != 0;
		pos += MSG_FRAME;
	}
	pthread_join(t, NULL);
	return bad ? -1 : 0;
}

/*
 * Cache-line ping-pong: a sequence number each way.  Two lines: ping and
 * pong each on its own line.  One line: both in ping, core 0 writing odd
 * numbers and core 1 even ones.
 */
struct pingpong {
	_Alignas(64) uint64_t ping;	/* written by core 0 (one line: both) */
	_Alignas(64) uint64_t pong;	/* written by core 1 */
	_Alignas(64) uint64_t iters;
	int one;			/* one line */
};

static void *pong_thread(void *arg)
{
	struct pingpong *pp = arg;
	uint64_t *out = pp->one ? &pp->ping : &pp->pong;

	bench_pin(1);
	for (uint64_t i = 1; i <= pp->iters; i++) {
		uint64_t want = pp->one ? 2 * i - 1 : i;

		while (__atomic_load_n(&pp->ping, __ATOMIC_ACQUIRE) != want)
			vshm_cpu_relax();
		__atomic_store_n(out, pp->one ? 2 * i : i, __ATOMIC_RELEASE);
	}
	return NULL;
}

static double cacheline_rtt_ns(const struct plan *p, int one)
{
	static struct pingpong pp;
	uint64_t iters = p->per * p->blocks, warm = plan_warm(p);
	uint64_t *in;
	pthread_t t;

	memset(&pp, 0, sizeof(pp));
	pp.iters = warm + iters;
	pp.one = one;
	in = one ? &pp.ping : &pp.pong;
	bench_pin(0);
	if (pthread_create(&t, NULL, pong_thread, &pp))
		return -1;
	for (uint64_t i = 1; i <= warm + iters; i++) {
		if (i == warm + 1)
			blocks_start(p->per);
		else if (i > warm + 1)
			blocks_tick(i - warm - 1);
		__atomic_store_n(&pp.ping, one ? 2 * i - 1 : i, __ATOMIC_RELEASE);
		while (__atomic_load_n(in, __ATOMIC_ACQUIRE) != (one ? 2 * i : i))
			vshm_cpu_relax();
	}
	blocks_tick(iters);
	pthread_join(t, NULL);
	return blocks_end(iters);
}

/*
 * Kernel channels: core 0 writes a message on fd tx[0] and reads the answer
 * from rx[0]; core 1 reads from rx[1] and answers on tx[1].  Both block.
 */
struct fdpp {
	int tx[2], rx[2];
	size_t msg;			/* bytes each way */
	uint64_t iters;
	int fail;
};

static int xfer(int fd, void *buf, size_t n, int rd)
{
	size_t done = 0;

	while (done < n) {
		ssize_t k = rd ? read(fd, (char *)buf + done, n - done)
			       : write(fd, (char *)buf + done, n - done);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		done += (size_t)k;
	}
	return 0;
}

static void *fd_echo_thread(void *arg)
{
	struct fdpp *p = arg;
	uint8_t buf[PAYLOAD];

	bench_pin(1);
	for (uint64_t i = 0; i < p->iters; i++) {
		if (xfer(p->rx[1], buf, p->msg, 1) || xfer(p->tx[1], buf, p->msg, 0)) {
			p->fail = 1;
			break;
		}
	}
	return NULL;
}

static double fd_rtt_ns(struct fdpp *p, const struct plan *pl)
{
	uint64_t iters = pl->per * pl->blocks, warm = plan_warm(pl);
	uint8_t buf[PAYLOAD];
	pthread_t t;

	memset(buf, 1, sizeof(buf));
	p->iters = warm + iters;
	p->fail = 0;
	bench_pin(0);
	if (pthread_create(&t, NULL, fd_echo_thread, p))
		return -1;
	for (uint64_t i = 0; i < warm + iters; i++) {
		if (i == warm)
			blocks_start(pl->per);
		else if (i > warm)
			blocks_tick(i - warm);
		if (xfer(p->tx[0], buf, p->msg, 0) || xfer(p->rx[0], buf, p->msg, 1)) {
			p->fail = 1;
			break;
		}
	}
	if (p->fail) {
		/* The echo thread may be blocked for good; the caller exits. */
		pthread_detach(t);
		return -1;
	}
	blocks_tick(iters);
	pthread_join(t, NULL);
	return p->fail ? -1 : blocks_end(iters);
}

enum { B_PIPE, B_UNIX, B_EVENTFD, NFDBASE };
static const char *const fdbase_key[NFDBASE] = { "pipe_rtt_ns", "unix_rtt_ns", "eventfd_rtt_ns" };
static const char *const fdbase_what[NFDBASE] = {
	"pipe ping-pong, 64 B each way",
	"Unix stream socketpair ping-pong, 64 B each way",
	"eventfd ping-pong, 8 B each way",
};

static double fdbase_rtt_ns(int kind, const struct plan *pl)
{
	struct fdpp p = { .msg = PAYLOAD };
	int a[2] = { -1, -1 }, b[2] = { -1, -1 };
	double ns = -1;

	if (kind == B_PIPE) {
		if (pipe2(a, O_CLOEXEC) || pipe2(b, O_CLOEXEC))
			goto out;
		/* a: core 0 -> core 1, b: core 1 -> core 0 */
		p.tx[0] = a[1];
		p.rx[1] = a[0];
		p.tx[1] = b[1];
		p.rx[0] = b[0];
	} else if (kind == B_UNIX) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a))
			goto out;
		p.tx[0] = p.rx[0] = a[0];
		p.tx[1] = p.rx[1] = a[1];
	} else {
		/* One eventfd per direction; a read blocks until the count is non-zero. */
		a[0] = eventfd(0, EFD_CLOEXEC);
		b[0] = eventfd(0, EFD_CLOEXEC);
		if (a[0] < 0 || b[0] < 0)
			goto out;
		p.msg = sizeof(uint64_t);
		p.tx[0] = p.rx[1] = a[0];
		p.tx[1] = p.rx[0] = b[0];
	}
	ns = fd_rtt_ns(&p, pl);
out:
	for (int i = 0; i < 2; i++) {
		if (a[i] >= 0)
			close(a[i]);
		if (b[i] >= 0)
			close(b[i]);
	}
	return ns;
}

/* ------------------------------------------------------------------------ */

static double median_of(double *v)
{
	return bench_median(v, TRIALS);
}

/* With VSHM_BENCH_MEANS set, also print each figure's whole-run mean. */
static int show_means;

static void report_ns(const char *key, double *v, double *mean, const char *what)
{
	bench_report(key, median_of(v), "ns", what);
	if (show_means)
		printf("  %-34s %14.3f %-8s whole-run mean, for comparison\n", "", median_of(mean), "ns");
}

/*
 * --once LAYOUT N: N polling round trips, no warm-up, nothing printed, the
 * way Linux's ringtest runs; scripts/ringtest.sh times this process from
 * outside exactly as it times ringtest, so the two compare like for like.
 */
static int once(const char *layout, const char *count)
{
	struct vshm_window_opts o = { .size = 16u << 20, .vectors = 1, .name = "vshm-bench-rings" };
	struct vshm_window dw, vw;
	struct plan p = { 0, 1, 0 };
	char *end;
	int L;

	for (L = 0; L < NLAYOUT; L++)
		if (strcmp(layout, layout_name[L]) == 0)
			break;
	p.per = strtoull(count, &end, 0);
	if (*end || p.per == 0 ||
	    (L == NLAYOUT && strcmp(layout, "cacheline") && strcmp(layout, "cacheline1") &&
	     strcmp(layout, "msg64"))) {
		fprintf(stderr, "bench_rings: --once split|packed|fifo|cacheline|cacheline1|msg64 ROUND_TRIPS\n");
		return 2;
	}
	if (strcmp(layout, "msg64") == 0)
		return msgfloor_run(p.per) < 0;
	if (L == NLAYOUT)
		return cacheline_rtt_ns(&p, strcmp(layout, "cacheline1") == 0) < 0;
	if (vshm_window_create(&dw, &o) || vshm_window_map(&vw, dw.fd)) {
		fprintf(stderr, "bench_rings: cannot create and map a window\n");
		return 1;
	}
	return ring_run(&dw, &vw, L, 0, 1, &p) < 0;
}

int main(int argc, char **argv)
{
	struct vshm_window_opts o = { .size = 16u << 20, .vectors = 1, .name = "vshm-bench-rings" };
	struct vshm_window dw, vw;
	static double cl[TRIALS], cl1[TRIALS], fdb[NFDBASE][TRIALS];
	static double poll[NLAYOUT][TRIALS], bell[NLAYOUT][TRIALS];
	static double ops[NLAYOUT][TRIALS], opsbell[NLAYOUT][TRIALS];
	static double m_cl[TRIALS], m_cl1[TRIALS], m_fdb[NFDBASE][TRIALS];
	static double m_poll[NLAYOUT][TRIALS], m_bell[NLAYOUT][TRIALS];
	static double r_packed_cl[TRIALS], r_fifo_split[TRIALS], r_split_cl[TRIALS], r_fifo_cl[TRIALS];
	static double r_cl1_cl[TRIALS], r_packed_cl1[TRIALS];
	/* Blocks of roughly 20..500 us each. */
	struct plan p_cl = { 1000, 500, PLAN_WARM }, p_poll = { 100, 2000, PLAN_WARM };
	struct plan p_sleep = { 16, 300, PLAN_WARM }, p_b32 = { 8, 1000, PLAN_WARM };
	struct plan p_b32_sleep = { 2, 500, PLAN_WARM };
	char key[64], what[128];

	if (argc == 4 && strcmp(argv[1], "--once") == 0)
		return once(argv[2], argv[3]);
	if (argc != 1) {
		fprintf(stderr, "usage: bench_rings [--once split|packed|fifo|cacheline|cacheline1|msg64 ROUND_TRIPS]\n");
		return 2;
	}
	if (getenv("VSHM_BENCH_QUICK")) {
		p_cl.blocks = p_poll.blocks = p_b32.blocks = 50;
		p_sleep.blocks = p_b32_sleep.blocks = 20;
	}
	show_means = getenv("VSHM_BENCH_MEANS") != NULL;
	bench_json_open();
	if (vshm_window_create(&dw, &o) || vshm_window_map(&vw, dw.fd)) {
		fprintf(stderr, "bench: cannot create and map a window\n");
		return 1;
	}
	printf("ring layouts, %d B request + %d B reply, driver core 0, device core 1 (own mapping), "
	       "%d interleaved trials, median blocks, medians of trials\n", PAYLOAD, PAYLOAD, TRIALS);
	fflush(stdout);
	for (int i = 0; i < TRIALS; i++) {
		cl[i] = cacheline_rtt_ns(&p_cl, 0);
		m_cl[i] = last_mean_ns;
		cl1[i] = cacheline_rtt_ns(&p_cl, 1);
		m_cl1[i] = last_mean_ns;
		for (int j = 0; j < NLAYOUT; j++) {
			/* Rotate the order so that no layout always runs first. */
			int L = (i + j) % NLAYOUT;

			poll[L][i] = ring_run(&dw, &vw, L, 0, 1, &p_poll);
			m_poll[L][i] = last_mean_ns;
			bell[L][i] = ring_run(&dw, &vw, L, 1, 1, &p_sleep);
			m_bell[L][i] = last_mean_ns;
			ops[L][i] = ring_run(&dw, &vw, L, 0, BATCH, &p_b32);
			opsbell[L][i] = ring_run(&dw, &vw, L, 1, BATCH, &p_b32_sleep);
			if (poll[L][i] < 0 || bell[L][i] < 0 || ops[L][i] < 0 || opsbell[L][i] < 0)
				return 1;
			/* ns per round of 32 -> requests per second */
			ops[L][i] = 1e9 * BATCH / ops[L][i];
			opsbell[L][i] = 1e9 * BATCH / opsbell[L][i];
		}
		for (int k = 0; k < NFDBASE; k++) {
			fdb[k][i] = fdbase_rtt_ns(k, &p_sleep);
			m_fdb[k][i] = last_mean_ns;
			if (fdb[k][i] < 0) {
				fprintf(stderr, "bench: %s failed\n", fdbase_key[k]);
				return 1;
			}
		}
		r_packed_cl[i] = poll[L_PACKED][i] / cl[i];
		r_split_cl[i] = poll[L_SPLIT][i] / cl[i];
		r_fifo_cl[i] = poll[L_FIFO][i] / cl[i];
		r_fifo_split[i] = poll[L_FIFO][i] / poll[L_SPLIT][i];
		r_cl1_cl[i] = cl1[i] / cl[i];
		r_packed_cl1[i] = poll[L_PACKED][i] / cl1[i];
	}

	printf("round trip, one request in flight\n");
	report_ns("cacheline_rtt_ns", cl, m_cl, "cache-line ping-pong, a line each way (floor)");
	report_ns("cacheline1_rtt_ns", cl1, m_cl1, "cache-line ping-pong, one line both ways (floor)");
	for (int L = 0; L < NLAYOUT; L++) {
		snprintf(key, sizeof(key), "%s_rtt_ns_poll", layout_name[L]);
		snprintf(what, sizeof(what), "%s ring, both sides polling", layout_name[L]);
		report_ns(key, poll[L], m_poll[L], what);
	}
	for (int L = 0; L < NLAYOUT; L++) {
		snprintf(key, sizeof(key), "%s_rtt_ns_doorbell", layout_name[L]);
		snprintf(what, sizeof(what), "%s ring, both sides sleep on eventfd doorbells", layout_name[L]);
		report_ns(key, bell[L], m_bell[L], what);
	}
	for (int k = 0; k < NFDBASE; k++)
		report_ns(fdbase_key[k], fdb[k], m_fdb[k], fdbase_what[k]);
	printf("throughput, 32 requests per publish, harvested as a batch\n");
	for (int L = 0; L < NLAYOUT; L++) {
		snprintf(key, sizeof(key), "%s_ops_batch32_poll", layout_name[L]);
		snprintf(what, sizeof(what), "%s ring, requests/s, polling", layout_name[L]);
		bench_report(key, median_of(ops[L]), "ops/s", what);
	}
	for (int L = 0; L < NLAYOUT; L++) {
		snprintf(key, sizeof(key), "%s_ops_batch32_doorbell", layout_name[L]);
		snprintf(what, sizeof(what), "%s ring, requests/s, doorbells", layout_name[L]);
		bench_report(key, median_of(opsbell[L]), "ops/s", what);
	}
	printf("ratios (median of per-trial ratios, polling, batch 1)\n");
	bench_target("packed_rtt_over_cacheline", median_of(r_packed_cl), "<=", 2.5);
	bench_target("split_rtt_over_cacheline", median_of(r_split_cl), "<=", 3.0);
	bench_report("fifo_rtt_over_cacheline", median_of(r_fifo_cl), "ratio", "information");
	bench_report("cacheline1_over_cacheline", median_of(r_cl1_cl), "ratio",
		     "information: one line against two");
	bench_report("packed_rtt_over_cacheline1", median_of(r_packed_cl1), "ratio", "information");
	bench_target("fifo_rtt_over_split_rtt", median_of(r_fifo_split), "<=", 1.0);
	vshm_window_unmap(&vw);
	vshm_window_unmap(&dw);
	return 0;
}
