// SPDX-License-Identifier: MIT
/*
 * Core figures: split-ring round trip against a bare cache-line ping-pong,
 * and bounce-buffer streaming against bare memcpy.  Both sides poll, pinned
 * to the two cores; subject and baseline trials alternate, and each figure
 * is the median of the trials.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <vshm/bounce.h>
#include <vshm/vq.h>
#include "barrier.h"
#include "bench.h"

#define TRIALS 7

/* ------------------------------------------------------------------------ */
/* Cache-line ping-pong: the physical floor of any two-core round trip.     */

struct pingpong {
	_Alignas(64) uint32_t ping;	/* written by A */
	_Alignas(64) uint32_t pong;	/* written by B */
	_Alignas(64) uint32_t iters;
};

static void *pong_thread(void *arg)
{
	struct pingpong *pp = arg;
	uint32_t n = pp->iters;

	bench_pin(1);
	for (uint32_t i = 1; i <= n; i++) {
		while (__atomic_load_n(&pp->ping, __ATOMIC_ACQUIRE) != i)
			vshm_cpu_relax();
		__atomic_store_n(&pp->pong, i, __ATOMIC_RELEASE);
	}
	return NULL;
}

static double cacheline_rtt_ns(uint32_t iters)
{
	static struct pingpong pp;
	pthread_t t;
	uint64_t t0, t1;

	memset(&pp, 0, sizeof(pp));
	pp.iters = iters;
	bench_pin(0);
	pthread_create(&t, NULL, pong_thread, &pp);
	t0 = bench_ns();
	for (uint32_t i = 1; i <= iters; i++) {
		__atomic_store_n(&pp.ping, i, __ATOMIC_RELEASE);
		while (__atomic_load_n(&pp.pong, __ATOMIC_ACQUIRE) != i)
			vshm_cpu_relax();
	}
	t1 = bench_ns();
	pthread_join(t, NULL);
	return (double)(t1 - t0) / iters;
}

/* ------------------------------------------------------------------------ */
/* Split ring: one 64-byte buffer, driver posts -> device completes -> harvest */

struct ring_rt {
	struct vshm_window *w;
	struct vshm_drv_vq *d;
	struct vshm_dev_vq *v;
	uint32_t iters;
	int fail;
};

static void *ring_device(void *arg)
{
	struct ring_rt *r = arg;
	struct vshm_iov iov[4];
	struct vshm_chain c;
	uint32_t done = 0;

	bench_pin(1);
	while (done < r->iters) {
		int rc = vshm_dev_vq_pop(r->v, &c, iov, 4);

		if (rc == 0) {
			vshm_cpu_relax();
			continue;
		}
		if (rc < 0) {
			r->fail = 1;
			return NULL;
		}
		vshm_dev_vq_push(r->v, c.head, 64);
		vshm_dev_vq_publish(r->v);
		done++;
	}
	return NULL;
}

static double ring_rtt_ns(struct vshm_window *w, uint32_t iters)
{
	struct vshm_vq_layout l;
	struct ring_rt r = { .w = w, .iters = iters };
	uint64_t feat = 1ull << VSHM_F_EVENT_IDX;
	struct vshm_sg sg[2];
	pthread_t t;
	uint64_t t0, t1;
	int64_t used;
	int x = 0;

	used = vshm_vq_layout_split(&l, w->drv_lo, 256, 0);
	sg[0].off = (w->drv_lo + (uint64_t)used + 4095) & ~4095ull;
	sg[0].len = 64;
	sg[1].off = sg[0].off + 4096;
	sg[1].len = 64;
	if (vshm_drv_vq_create(&r.d, w, &l, feat, NULL) ||
	    vshm_dev_vq_create(&r.v, w, &l, feat, NULL))
		return -1;
	bench_pin(0);
	pthread_create(&t, NULL, ring_device, &r);
	t0 = bench_ns();
	for (uint32_t i = 0; i < iters; i++) {
		void *ck;
		uint32_t len;
		int rc;

		vshm_drv_vq_add(r.d, sg, 1, 1, &x);
		vshm_drv_vq_publish(r.d);
		while ((rc = vshm_drv_vq_harvest(r.d, &ck, &len)) == 0)
			vshm_cpu_relax();
		if (rc < 0) {
			r.fail = 1;
			break;
		}
	}
	t1 = bench_ns();
	pthread_join(t, NULL);
	vshm_drv_vq_destroy(r.d);
	vshm_dev_vq_destroy(r.v);
	return r.fail ? -1 : (double)(t1 - t0) / iters;
}

/* ------------------------------------------------------------------------ */
/* Bounce streaming: map -> ring -> device reads every byte -> unmap.        */

#define INFLIGHT 8

struct stream {
	struct vshm_window *w;
	struct vshm_bounce_pool pool;
	struct vshm_drv_vq *d;
	struct vshm_dev_vq *v;
	size_t bufsz;
	uint64_t total;		/* buffers to move */
	uint64_t sink;
	int fail;
};

static uint64_t consume(const void *p, size_t n)
{
	const uint64_t *q = p;
	uint64_t s = 0;

	for (size_t i = 0; i < n / 8; i++)
		s += q[i];
	return s;
}

static void *stream_device(void *arg)
{
	struct stream *s = arg;
	static struct vshm_iov iov[4096];
	struct vshm_chain c;
	uint64_t done = 0, sum = 0;

	bench_pin(1);
	while (done < s->total) {
		int rc = vshm_dev_vq_pop(s->v, &c, iov, 4096);

		if (rc == 0) {
			vshm_cpu_relax();
			continue;
		}
		if (rc < 0) {
			s->fail = 1;
			return NULL;
		}
		for (unsigned k = 0; k < c.nout; k++)
			sum += consume(iov[k].base, iov[k].len);
		vshm_dev_vq_push(s->v, c.head, 0);
		vshm_dev_vq_publish(s->v);
		done++;
	}
	s->sink = sum;
	return NULL;
}

static double bounce_mbps(struct vshm_window *w, uint8_t *src, size_t bufsz, uint64_t bytes)
{
	struct stream s = { .w = w, .bufsz = bufsz };
	struct vshm_vq_layout l;
	struct vshm_bounce_map maps[INFLIGHT];
	static struct vshm_sg sg[INFLIGHT][4096];
	int cookie_idx[INFLIGHT], freelist[INFLIGHT], nfree = INFLIGHT;
	uint64_t posted = 0, done = 0, t0, t1, poolo;
	int64_t used;
	pthread_t t;

	s.total = bytes / bufsz ? bytes / bufsz : 1;
	used = vshm_vq_layout_split(&l, w->drv_lo, 256, 0);
	poolo = (w->drv_lo + (uint64_t)used + 4095) & ~4095ull;
	if (vshm_bounce_pool_init(&s.pool, w, poolo, 32u << 20, 0, 0) ||
	    vshm_drv_vq_create(&s.d, w, &l, 1ull << VSHM_F_EVENT_IDX, NULL) ||
	    vshm_dev_vq_create(&s.v, w, &l, 1ull << VSHM_F_EVENT_IDX, NULL))
		return -1;
	for (int i = 0; i < INFLIGHT; i++) {
		freelist[i] = i;
		cookie_idx[i] = i;
	}
	bench_pin(0);
	pthread_create(&t, NULL, stream_device, &s);
	t0 = bench_ns();
	while (done < s.total && !s.fail) {
		void *ck;
		uint32_t len;
		int rc;

		while (nfree && posted < s.total) {
			int i = freelist[--nfree];
			int n = vshm_bounce_map(&s.pool, src, bufsz, VSHM_DMA_TO_DEVICE, &maps[i], sg[i], 4096);

			if (n < 0 || vshm_drv_vq_add(s.d, sg[i], (unsigned)n, 0, &cookie_idx[i])) {
				s.fail = 1;
				break;
			}
			vshm_drv_vq_publish(s.d);
			posted++;
		}
		rc = vshm_drv_vq_harvest(s.d, &ck, &len);
		if (rc < 0) {
			s.fail = 1;
			break;
		}
		if (rc == 0) {
			vshm_cpu_relax();
			continue;
		}
		vshm_bounce_unmap(&s.pool, &maps[*(int *)ck], 0);
		freelist[nfree++] = *(int *)ck;
		done++;
	}
	t1 = bench_ns();
	pthread_join(t, NULL);
	vshm_drv_vq_destroy(s.d);
	vshm_dev_vq_destroy(s.v);
	vshm_bounce_pool_fini(&s.pool);
	return s.fail ? -1 : (double)(s.total * bufsz) / ((double)(t1 - t0) / 1e9) / 1e6;
}

/* Single-core memcpy into window memory, destination hot: information only. */
static double memcpy_hot_mbps(struct vshm_window *w, uint8_t *src, size_t bufsz, uint64_t bytes)
{
	uint64_t n = bytes / bufsz ? bytes / bufsz : 1, t0, t1;
	uint8_t *dst = w->base + w->drv_lo + (1u << 20);

	bench_pin(0);
	t0 = bench_ns();
	for (uint64_t i = 0; i < n; i++) {
		memcpy(dst + (i % INFLIGHT) * bufsz, src, bufsz);
		__asm__ __volatile__("" ::: "memory");
	}
	t1 = bench_ns();
	return (double)(n * bufsz) / ((double)(t1 - t0) / 1e9) / 1e6;
}

/*
 * The baseline: the least any bounce design can do.  One core memcpys each
 * buffer into shared memory, the other core reads every byte of it, with
 * INFLIGHT buffers in flight and a bare flag per slot for the handoff: no
 * allocator, no ring, no validation.
 */
struct handoff {
	uint8_t *dst;
	size_t bufsz;
	uint64_t n;
	uint64_t sink;
	_Alignas(64) uint64_t full[INFLIGHT][8];	/* one line per slot */
};

static void *handoff_reader(void *arg)
{
	struct handoff *h = arg;
	uint64_t sum = 0;

	bench_pin(1);
	for (uint64_t i = 0; i < h->n; i++) {
		unsigned slot = (unsigned)(i % INFLIGHT);

		while (__atomic_load_n(&h->full[slot][0], __ATOMIC_ACQUIRE) != i + 1)
			vshm_cpu_relax();
		sum += consume(h->dst + slot * h->bufsz, h->bufsz);
		__atomic_store_n(&h->full[slot][0], 0, __ATOMIC_RELEASE);
	}
	h->sink = sum;
	return NULL;
}

static double memcpy_mbps(struct vshm_window *w, uint8_t *src, size_t bufsz, uint64_t bytes)
{
	static struct handoff h;
	uint64_t t0, t1;
	pthread_t t;

	memset(&h, 0, sizeof(h));
	h.n = bytes / bufsz ? bytes / bufsz : 1;
	h.bufsz = bufsz;
	h.dst = w->base + w->drv_lo + (1u << 20);
	bench_pin(0);
	pthread_create(&t, NULL, handoff_reader, &h);
	t0 = bench_ns();
	for (uint64_t i = 0; i < h.n; i++) {
		unsigned slot = (unsigned)(i % INFLIGHT);

		while (__atomic_load_n(&h.full[slot][0], __ATOMIC_ACQUIRE) != 0)
			vshm_cpu_relax();
		memcpy(h.dst + slot * bufsz, src, bufsz);
		__atomic_store_n(&h.full[slot][0], i + 1, __ATOMIC_RELEASE);
	}
	pthread_join(t, NULL);
	t1 = bench_ns();
	return (double)(h.n * bufsz) / ((double)(t1 - t0) / 1e9) / 1e6;
}

int main(int argc, char **argv)
{
	struct vshm_window_opts o = { .size = 128u << 20, .vectors = 1, .name = "vshm-bench" };
	struct vshm_window w;
	double cl[TRIALS], rt[TRIALS], cl_m, rt_m;
	static const size_t sizes[] = { 4096, 65536, 1u << 20 };
	static const char *names[] = { "4k", "64k", "1m" };
	uint8_t *src;
	uint32_t iters = 200000;

	(void)argc;
	(void)argv;
	if (getenv("VSHM_BENCH_QUICK"))
		iters = 20000;
	bench_json_open();
	if (vshm_window_create(&w, &o)) {
		fprintf(stderr, "bench: cannot create a window\n");
		return 1;
	}
	printf("split ring round trip vs cache-line ping-pong (polling, cores 0/1, %u round trips x %d trials)\n",
	       iters, TRIALS);
	for (int i = 0; i < TRIALS; i++) {
		cl[i] = cacheline_rtt_ns(iters);
		rt[i] = ring_rtt_ns(&w, iters);
		if (rt[i] < 0) {
			fprintf(stderr, "bench: ring round trip failed\n");
			return 1;
		}
	}
	cl_m = bench_median(cl, TRIALS);
	rt_m = bench_median(rt, TRIALS);
	bench_report("cacheline_rtt_ns", cl_m, "ns", "bare cache-line ping-pong");
	bench_report("split_rtt_ns", rt_m, "ns", "one buffer: post, complete, harvest");
	bench_target("split_rtt_over_cacheline", rt_m / cl_m, "<=", 3.0);

	src = aligned_alloc(4096, 1u << 20);
	memset(src, 0x5a, 1u << 20);
	printf("bounce streaming (map -> ring -> device reads -> unmap) vs memcpy + cross-core read, %d in flight\n", INFLIGHT);
	for (unsigned s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		double b[TRIALS], m[TRIALS], hot[TRIALS], bm, mm;
		uint64_t bytes = getenv("VSHM_BENCH_QUICK") ? 64ull << 20 : 512ull << 20;
		char key[64], what[96];

		for (int i = 0; i < TRIALS; i++) {
			hot[i] = memcpy_hot_mbps(&w, src, sizes[s], bytes);
			m[i] = memcpy_mbps(&w, src, sizes[s], bytes);
			b[i] = bounce_mbps(&w, src, sizes[s], bytes);
			if (b[i] < 0) {
				fprintf(stderr, "bench: bounce stream failed\n");
				return 1;
			}
		}
		mm = bench_median(m, TRIALS);
		bm = bench_median(b, TRIALS);
		snprintf(key, sizeof(key), "memcpy%s_hot_mbps", names[s]);
		snprintf(what, sizeof(what), "one core, destination in its cache (information)");
		bench_report(key, bench_median(hot, TRIALS), "MB/s", what);
		snprintf(key, sizeof(key), "memcpy%s_mbps", names[s]);
		snprintf(what, sizeof(what), "memcpy by core 0, every byte read by core 1 (baseline)");
		bench_report(key, mm, "MB/s", what);
		snprintf(key, sizeof(key), "bounce%s_mbps", names[s]);
		snprintf(what, sizeof(what), "bounced through pool and ring, read by core 1");
		bench_report(key, bm, "MB/s", what);
		snprintf(key, sizeof(key), "bounce%s_over_memcpy", names[s]);
		if (sizes[s] == 65536)
			bench_target(key, bm / mm, ">=", 0.8);
		else
			bench_report(key, bm / mm, "ratio", "");
	}
	free(src);
	vshm_window_unmap(&w);
	return 0;
}
