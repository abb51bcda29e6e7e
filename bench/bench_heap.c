// SPDX-License-Identifier: MIT
/*
 * The zero-copy heap against bounce pools: streaming buffers of 4 KiB,
 * 64 KiB, 1 MiB and 16 MiB through a split ring to a device thread that
 * reads every byte.
 *
 * What is measured.  The application produces every byte of every buffer
 * it sends; both paths run the same producer, which computes each 8-byte
 * word of the buffer from the buffer's sequence number ("generating data
 * in place": no source is read).  What differs is where it writes:
 *
 *  - bounce: into a private buffer with plain stores (one buffer, reused:
 *    TO_DEVICE copies at map, so the application may refill it at once;
 *    the best case for bounce, since that buffer stays in the producer's
 *    cache for the copy to read), then vshm_bounce_map(TO_DEVICE) copies
 *    it into the pool with memcpy, the chain goes on the ring, the device
 *    reads it, and harvest is followed by unmap;
 *  - heap: straight into a heap buffer through its extent pointers, then
 *    the same ring and device; on completion the buffer is reused for the
 *    next one (INFLIGHT buffers allocated before the clock starts).
 *
 * Both paths write the same bytes and the device reads the same bytes
 * (checked: every path must end with the same checksum); the difference is
 * the bounce layer's copy and its allocator work.
 *
 * Why generation rather than a memcpy from a private source on both
 * paths: then the heap producer would do one copy into the window, the
 * same copy the bounce layer does, and the figure would compare a copy
 * with a copy.  An application that uses the heap writes its results into
 * the heap buffer instead of into private memory; that is what is timed.
 *
 * The same producer function on both paths, plain stores: only the
 * destination differs.  The bounce path's copy into the window is glibc's
 * memcpy, which picks its own store strategy by size (rep movsb, or
 * non-temporal stores for very large copies).  A producer writing the
 * heap with plain stores must first pull back every line the device read
 * last round from the device's cache; a producer can avoid that with
 * streaming (non-temporal) stores, fenced before the buffer is published.
 * The heapN_stream_mbps rows show that variant, for information; the
 * figures and the target use the plain-store producer.
 *
 * The devreadN_mbps rows run the heap path with a producer that writes
 * nothing: the device reading every byte is then the only work, which is
 * the ceiling for both paths.  Where bounce already runs close to it, the
 * copy is hidden behind the device's read (it runs on the other core at
 * the same time) and no producer-side saving can show.
 *
 * A more expensive producer shrinks every ratio towards 1, since the copy
 * becomes a smaller part of the work; this one is about as cheap as
 * producing every byte can be.  bench_core's bounce rows send a constant,
 * pre-generated buffer (no production); the bounce rows here include
 * production, hence the "_gen" keys for the sizes bench_core also reports.
 *
 * Both sides poll, pinned to cores 0 (driver) and 1 (device); bounce,
 * heap, streaming-store heap and read-only trials alternate, and each
 * figure is the median of TRIALS.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <vshm/bounce.h>
#include <vshm/heap.h>
#include <vshm/vq.h>
#include "barrier.h"
#include "bench.h"

#define TRIALS		7
#define INFLIGHT	8
#define RING_NUM	1024u		/* 8 x 16 MiB bounced = 512 segments */
#define MAX_SG		128u		/* per chain: 16 MiB / 256 KiB = 64 */
#define WIN_SIZE	(512ull << 20)
#define POOL_SIZE	(160ull << 20)	/* 8 x 16 MiB and room to spare */
#define HEAP_SIZE	(160ull << 20)

struct ctx {
	struct vshm_window w;
	struct vshm_bounce_pool pool;
	struct vshm_heap heap;
	struct vshm_vq_layout l;
	uint8_t *priv;			/* the bounce producer's buffer */
};

struct stream {
	struct vshm_dev_vq *v;
	uint64_t total;			/* buffers to move */
	uint64_t sink;			/* checksum of every byte read */
	int fail;
};

/* The producer: word i of buffer @seq, starting at word @w0 of the buffer. */
static void generate(void *dst, size_t len, uint64_t seq, size_t w0)
{
	uint64_t *q = dst, base = seq * 0x9e3779b97f4a7c15ull + w0;

	for (size_t i = 0; i < len / 8; i++)
		q[i] = base + i;
}

/*
 * The same producer for memory another agent will read and this CPU will
 * not: streaming (non-temporal) stores, which write whole lines without
 * first fetching them from the reader's cache.  They are weakly ordered,
 * so a fence must separate them from the release that publishes the
 * buffer; generate_fence() is called once per buffer, before it is added
 * to the ring.  Elsewhere than x86-64: plain stores.
 */
#if defined(__x86_64__)
static void generate_stream(void *dst, size_t len, uint64_t seq, size_t w0)
{
	uint64_t base = seq * 0x9e3779b97f4a7c15ull + w0;
	__m128i *q = dst;	/* extents are page aligned */
	size_t i, n = len / 16;

	for (i = 0; i < n; i++)
		_mm_stream_si128(&q[i], _mm_set_epi64x((long long)(base + 2 * i + 1),
						       (long long)(base + 2 * i)));
	if (len / 8 > 2 * n)
		generate((uint8_t *)dst + 16 * n, 8, seq, w0 + 2 * n);
}

static void generate_fence(void)
{
	_mm_sfence();
}
#else
#define generate_stream generate
static void generate_fence(void)
{
}
#endif

static uint64_t consume(const void *p, size_t n)
{
	const uint64_t *q = p;
	uint64_t s = 0;

	for (size_t i = 0; i < n / 8; i++)
		s += q[i];
	return s;
}

static void *device(void *arg)
{
	struct stream *s = arg;
	static struct vshm_iov iov[MAX_SG];
	struct vshm_chain c;
	uint64_t done = 0, sum = 0;

	bench_pin(1);
	/* total drops to 0 when the driver gives up. */
	while (done < __atomic_load_n(&s->total, __ATOMIC_RELAXED)) {
		int rc = vshm_dev_vq_pop(s->v, &c, iov, MAX_SG);

		if (rc == 0) {
			vshm_cpu_relax();
			continue;
		}
		if (rc < 0) {
			__atomic_store_n(&s->fail, 1, __ATOMIC_RELAXED);
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

/* READ_ONLY: the producer writes nothing; the device reads what is there. */
enum mode { BOUNCE, HEAP, HEAP_STREAM, READ_ONLY };

/*
 * Move @bytes in buffers of @bufsz; MB/s, or -1 on any failure.  *@sink
 * gets the device's checksum.
 */
static double stream_mbps(struct ctx *c, enum mode mode, size_t bufsz,
			  uint64_t bytes, uint64_t *sink)
{
	static struct vshm_sg sg[INFLIGHT][MAX_SG];
	struct vshm_heap_buf hb[INFLIGHT];
	struct vshm_bounce_map maps[INFLIGHT];
	struct stream s = { .total = bytes / bufsz ? bytes / bufsz : 1 };
	struct vshm_drv_vq *d = NULL;
	int cookie[INFLIGHT], freelist[INFLIGHT], nsg[INFLIGHT], nfree = INFLIGHT;
	uint64_t posted = 0, done = 0, t0 = 0, t1 = 0, total = s.total;
	int fail = 0, nheap = 0;
	pthread_t t;

	if (vshm_drv_vq_create(&d, &c->w, &c->l, 1ull << VSHM_F_EVENT_IDX, NULL) ||
	    vshm_dev_vq_create(&s.v, &c->w, &c->l, 1ull << VSHM_F_EVENT_IDX, NULL)) {
		vshm_drv_vq_destroy(d);
		return -1;
	}
	for (int i = 0; i < INFLIGHT; i++) {
		freelist[i] = i;
		cookie[i] = i;
		if (mode == BOUNCE)
			continue;
		/* Allocated once; every trial of this size gets the same pages. */
		if (vshm_heap_alloc(&c->heap, bufsz, &hb[i]) < 1)
			fail = 1;
		else
			nheap++;
		nsg[i] = fail ? -1 : vshm_heap_sg(&hb[i], sg[i], MAX_SG);
		if (nsg[i] < 1)
			fail = 1;
	}
	if (fail)
		goto out;

	bench_pin(0);
	pthread_create(&t, NULL, device, &s);
	t0 = bench_ns();
	while (done < total && !fail) {
		void *ck;
		uint32_t len;
		int rc;

		while (nfree && posted < total) {
			int i = freelist[--nfree];

			if (mode == BOUNCE) {
				generate(c->priv, bufsz, posted, 0);
				nsg[i] = vshm_bounce_map(&c->pool, c->priv, bufsz, VSHM_DMA_TO_DEVICE,
							 &maps[i], sg[i], MAX_SG);
			} else {
				void *p;
				size_t n, w = 0;

				for (unsigned e = 0; mode != READ_ONLY &&
				     !vshm_heap_extent(&c->heap, &hb[i], e, &p, &n); e++) {
					if (mode == HEAP)
						generate(p, n, posted, w);
					else
						generate_stream(p, n, posted, w);
					w += n / 8;
				}
				generate_fence();
			}
			if (nsg[i] < 1 || vshm_drv_vq_add(d, sg[i], (unsigned)nsg[i], 0, &cookie[i])) {
				fail = 1;
				break;
			}
			vshm_drv_vq_publish(d);
			posted++;
		}
		rc = vshm_drv_vq_harvest(d, &ck, &len);
		if (rc < 0) {
			fail = 1;
			break;
		}
		if (rc == 0) {
			if (__atomic_load_n(&s.fail, __ATOMIC_RELAXED))
				fail = 1;
			vshm_cpu_relax();
			continue;
		}
		if (mode == BOUNCE && vshm_bounce_unmap(&c->pool, &maps[*(int *)ck], 0))
			fail = 1;
		freelist[nfree++] = *(int *)ck;
		done++;
	}
	t1 = bench_ns();
	if (fail)
		__atomic_store_n(&s.total, 0, __ATOMIC_RELAXED);
	pthread_join(t, NULL);
	*sink = s.sink;
out:
	/* After a failure chains may still be posted: the rings go first. */
	vshm_drv_vq_destroy(d);
	vshm_dev_vq_destroy(s.v);
	for (int i = 0; i < nheap; i++)
		vshm_heap_free(&c->heap, &hb[i]);
	if (fail || s.fail)
		return -1;
	return (double)(total * bufsz) / ((double)(t1 - t0) / 1e9) / 1e6;
}

static int setup(struct ctx *c)
{
	struct vshm_window_opts o = { .size = WIN_SIZE, .vectors = 1, .name = "vshm-bench-heap" };
	uint64_t at;
	int64_t used;

	if (vshm_window_create(&c->w, &o))
		return -1;
	used = vshm_vq_layout_split(&c->l, c->w.drv_lo, RING_NUM, 0);
	if (used < 0)
		return -1;
	at = (c->w.drv_lo + (uint64_t)used + 4095) & ~4095ull;
	if (vshm_bounce_pool_init(&c->pool, &c->w, at, POOL_SIZE, 0, 0) ||
	    vshm_heap_init(&c->heap, &c->w, at + POOL_SIZE, HEAP_SIZE))
		return -1;
	c->priv = aligned_alloc(4096, 16u << 20);
	return c->priv ? 0 : -1;
}

int main(int argc, char **argv)
{
	static const size_t sizes[] = { 4096, 65536, 1u << 20, 16u << 20 };
	static const char *names[] = { "4k", "64k", "1m", "16m" };
	static struct ctx c;
	int quick = getenv("VSHM_BENCH_QUICK") != NULL;

	(void)argc;
	(void)argv;
	bench_json_open();
	if (setup(&c)) {
		fprintf(stderr, "bench_heap: cannot set up the window, pool and heap\n");
		return 1;
	}
	printf("zero-copy heap vs bounce: produce every byte, ring, device reads every byte "
	       "(cores 0/1, %d in flight, %d trials)\n", INFLIGHT, TRIALS);
	for (unsigned z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
		double b[TRIALS], h[TRIALS], hp[TRIALS], ro[TRIALS], bm, hm;
		uint64_t bytes = (quick ? 64ull : 512ull) << 20;
		char key[64];

		if (sizes[z] >= (16u << 20))
			bytes *= 2;
		for (int i = 0; i < TRIALS; i++) {
			uint64_t sb = 0, sh = 0, sp = 0, sr = 0;

			b[i] = stream_mbps(&c, BOUNCE, sizes[z], bytes, &sb);
			h[i] = stream_mbps(&c, HEAP, sizes[z], bytes, &sh);
			hp[i] = stream_mbps(&c, HEAP_STREAM, sizes[z], bytes, &sp);
			ro[i] = stream_mbps(&c, READ_ONLY, sizes[z], bytes, &sr);
			if (b[i] < 0 || h[i] < 0 || hp[i] < 0 || ro[i] < 0) {
				fprintf(stderr, "bench_heap: a %s stream failed\n", names[z]);
				return 1;
			}
			if (sb != sh || sb != sp) {
				fprintf(stderr, "bench_heap: the device read different bytes on the paths\n");
				return 1;
			}
		}
		bm = bench_median(b, TRIALS);
		hm = bench_median(h, TRIALS);
		snprintf(key, sizeof(key), z < 3 ? "bounce%s_gen_mbps" : "bounce%s_mbps", names[z]);
		bench_report(key, bm, "MB/s", "produce in private memory, bounce, ring, read, unmap");
		snprintf(key, sizeof(key), "heap%s_mbps", names[z]);
		bench_report(key, hm, "MB/s", "produce in a heap buffer, ring, read, reuse (no copy)");
		snprintf(key, sizeof(key), "heap%s_stream_mbps", names[z]);
		bench_report(key, bench_median(hp, TRIALS), "MB/s",
			     "the same, producer using streaming stores (information)");
		snprintf(key, sizeof(key), "devread%s_mbps", names[z]);
		bench_report(key, bench_median(ro, TRIALS), "MB/s",
			     "producer writes nothing: the device's read alone, a ceiling (information)");
		/* heap <= devread: the device's read bounds any ratio heap / bounce. */
		snprintf(key, sizeof(key), "devread%s_over_bounce%s", names[z], names[z]);
		bench_report(key, bench_median(ro, TRIALS) / bm, "ratio",
			     "the ceiling of heap/bounce here: the device's read alone, over bounce");
		snprintf(key, sizeof(key), "heap%s_over_bounce%s", names[z], names[z]);
		if (sizes[z] == (1u << 20))
			bench_target(key, hm / bm, ">=", 2.0);
		else
			bench_report(key, hm / bm, "ratio", "same run, same bytes");
	}
	vshm_heap_fini(&c.heap);
	vshm_bounce_pool_fini(&c.pool);
	vshm_window_unmap(&c.w);
	free(c.priv);
	return 0;
}
