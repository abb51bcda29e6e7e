// SPDX-License-Identifier: MIT
/*
 * virtio-console model, driven directly with a fake runtime and a fake
 * sink over a real window: output order across chains and back-pressure,
 * input split across receive buffers, the bounded input buffer, emergency
 * writes, reset.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <vshm/devmodel.h>
#include <vshm/window.h>
#include "tap.h"

#define RXQ 0
#define TXQ 1

struct treq {
	struct vshm_req r;		/* first: the host callback casts back */
	struct vshm_iov iov[16];
	int done;
	uint32_t written;
	unsigned order;
	size_t sink_len;		/* bytes the sink had at completion */
};

/* ---- fake sink ----------------------------------------------------------- */

struct sink {
	uint8_t *buf;
	size_t len, cap;
	size_t per_call;		/* most bytes taken per call, 0 = all */
	int alternate;			/* every other call: -EAGAIN */
	int blocked;			/* always -EAGAIN */
	long fail;			/* nonzero: return this error */
	unsigned calls;
};

static struct sink sink;

static long sink_out(void *ctx, const void *p, size_t len)
{
	struct sink *s = ctx;
	size_t n = len;

	s->calls++;
	if (s->fail)
		return s->fail;
	if (s->blocked || (s->alternate && (s->calls & 1)))
		return -EAGAIN;
	if (s->per_call && n > s->per_call)
		n = s->per_call;
	if (n > s->cap - s->len)
		n = s->cap - s->len;
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	return (long)n;
}

/* ---- fake runtime -------------------------------------------------------- */

static unsigned n_complete, n_double, n_kick_rx;

static void fh_complete(void *ctx, struct vshm_req *r, uint32_t written)
{
	struct treq *t = (struct treq *)r;

	(void)ctx;
	if (t->done++)
		n_double++;
	t->written = written;
	t->order = n_complete++;
	t->sink_len = sink.len;
}

static void fh_kick(void *ctx, unsigned q)
{
	(void)ctx;
	if (q == RXQ)
		n_kick_rx++;
}

static const struct vshm_devmodel_host host = { .complete = fh_complete, .kick_queue = fh_kick };

/* ---- window and chains --------------------------------------------------- */

static struct vshm_window win;
static uint64_t bump;
static uint64_t seed = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return seed;
}

static uint8_t *walloc(size_t len)
{
	uint64_t gap = rnd() % 32;

	if (bump < win.drv_lo || bump + gap + len > win.drv_hi)
		bump = win.drv_lo;
	bump += gap + len;
	return win.base + bump - len;
}

/* A chain of buffers: @src bytes readable (NULL: none), @wlen writable, cut in up to @maxp. */
static void build(struct treq *t, uint16_t queue, const uint8_t *src, size_t rlen,
		  size_t wlen, unsigned maxp)
{
	unsigned k = 0;

	memset(t, 0, sizeof(*t));
	for (int part = 0; part < 2; part++) {
		size_t len = part ? wlen : rlen, done = 0;
		unsigned first = k;

		while (done < len) {
			size_t take = (k - first + 1 >= maxp) ? len - done : 1 + rnd() % (len - done);

			t->iov[k].base = walloc(take);
			t->iov[k].len = (uint32_t)take;
			if (!part)
				memcpy(t->iov[k].base, src + done, take);
			else
				memset(t->iov[k].base, 0xee, take);
			done += take;
			k++;
		}
		if (!part)
			t->r.chain.nout = (uint16_t)k;
	}
	t->r.chain.nin = (uint16_t)(k - t->r.chain.nout);
	t->r.chain.iov = t->iov;
	t->r.queue = queue;
}

static void read_back(const struct treq *t, uint8_t *dst, size_t len)
{
	for (unsigned i = t->r.chain.nout; i < t->r.chain.nout + t->r.chain.nin && len; i++) {
		size_t n = t->iov[i].len < len ? t->iov[i].len : len;

		memcpy(dst, t->iov[i].base, n);
		dst += n;
		len -= n;
	}
}

static uint8_t pat(size_t i)
{
	return (uint8_t)(i * 7 + (i >> 8) * 13 + 1);
}

static void sink_reset(size_t cap)
{
	free(sink.buf);
	memset(&sink, 0, sizeof(sink));
	sink.buf = malloc(cap);
	sink.cap = cap;
}

static struct treq *reqs;

/* ---- tests --------------------------------------------------------------- */

static void test_shape(struct vshm_devmodel *m)
{
	uint8_t cfg[12];

	ok(strcmp(m->ops->name, "console") == 0 && m->ops->device_id == VSHM_VIRTIO_ID_CONSOLE,
	   "name console, device id 3");
	ok(m->ops->num_queues(m) == 2 && m->ops->queue_max(m, 0) == 256 &&
	   m->ops->queue_max(m, 1) == 256, "two queues of 256 (receiveq, transmitq)");
	is(m->ops->seg_max(m), 64, "64 buffers per chain");
	is(m->ops->features(m), 1ull << 2, "offers EMERG_WRITE only (no SIZE, no MULTIPORT)");
	is(m->ops->set_features(m, 1ull << 1), -EINVAL, "MULTIPORT refused");
	is(m->ops->config_size(m), 12, "config size 12");
	m->ops->config_read(m, 0, cfg, sizeof(cfg));
	ok(cfg[0] == 0 && cfg[1] == 0 && cfg[2] == 0 && cfg[3] == 0,
	   "cols and rows 0");
	ok(cfg[4] == 1 && cfg[5] == 0 && cfg[6] == 0 && cfg[7] == 0, "max_nr_ports 1");
	is(m->ops->config_write(m, 0, "\x50\0", 2), -EPERM, "cols is read-only");
	is(m->ops->set_features(m, 1ull << 2), 0, "EMERG_WRITE negotiated");
	is(m->ops->start(m), 0, "start");
}

/* Many chains, random cuts; a fast sink, then a slow and stuttering one. */
static void test_output(struct vshm_devmodel *m)
{
	unsigned long n = tap_scale(200);
	size_t total = 0, bad = 0, early = 0, pos = 0;
	uint8_t *src = malloc(4096);
	unsigned spins = 0;

	sink_reset(n * 4096 + 1);
	for (unsigned long i = 0; i < n && i < 256; i++) {
		size_t len = rnd() % 600;

		for (size_t j = 0; j < len; j++)
			src[j] = pat(total + j);
		total += len;
		build(&reqs[i], TXQ, src, len, 0, 1 + rnd() % 8);
		if (m->ops->request(m, &reqs[i].r))
			bad++;
		if (reqs[i].done != 1 || reqs[i].written != 0)
			bad++;
	}
	is(bad, 0, "fast sink: every chain completed at once with written 0");
	ok(sink.len == total, "fast sink: %zu bytes out", total);
	for (size_t j = 0; j < sink.len; j++)
		if (sink.buf[j] != pat(j))
			bad++;
	is(bad, 0, "fast sink: bytes in order");

	/* 7 bytes per call, -EAGAIN every other call. */
	sink_reset(256 * 4096);
	sink.per_call = 7;
	sink.alternate = 1;
	total = 0;
	for (unsigned i = 0; i < 100; i++) {
		size_t len = rnd() % 300;

		for (size_t j = 0; j < len; j++)
			src[j] = pat(total + j);
		total += len;
		build(&reqs[i], TXQ, src, len, 0, 1 + rnd() % 8);
		m->ops->request(m, &reqs[i].r);
	}
	while (sink.len < total && spins++ < 100000)
		m->ops->poll(m);
	ok(sink.len == total, "slow sink: all %zu bytes out after %u polls", total, spins);
	for (size_t j = 0; j < sink.len; j++)
		if (sink.buf[j] != pat(j))
			bad++;
	is(bad, 0, "slow sink: bytes in order");
	for (unsigned i = 0; i < 100; i++)
		if (reqs[i].done != 1)
			bad++;
	is(bad, 0, "slow sink: every chain completed once");
	pos = 0;
	for (unsigned i = 0; i < 100; i++) {
		for (unsigned k = 0; k < reqs[i].r.chain.nout; k++)
			pos += reqs[i].iov[k].len;
		if (reqs[i].sink_len < pos)
			early++;
	}
	is(early, 0, "no chain completed before all its bytes were taken");

	/* A blocked sink: one attempt per poll, no spinning. */
	sink_reset(4096);
	sink.blocked = 1;
	for (size_t j = 0; j < 100; j++)
		src[j] = (uint8_t)j;
	build(&reqs[0], TXQ, src, 100, 0, 4);
	build(&reqs[1], TXQ, src, 100, 0, 4);
	m->ops->request(m, &reqs[0].r);
	m->ops->request(m, &reqs[1].r);
	sink.calls = 0;
	for (int i = 0; i < 10; i++)
		m->ops->poll(m);
	ok(sink.calls <= 10 && !reqs[0].done && !reqs[1].done,
	   "blocked sink: %u calls in 10 polls, nothing completed", sink.calls);
	sink.blocked = 0;
	m->ops->poll(m);
	ok(reqs[0].done == 1 && reqs[1].done == 1 && sink.len == 200 &&
	   memcmp(sink.buf, src, 100) == 0 && memcmp(sink.buf + 100, src, 100) == 0,
	   "unblocked: both chains out and completed");

	/* A failing sink drops output instead of holding the driver. */
	sink.fail = -EIO;
	build(&reqs[0], TXQ, src, 50, 0, 2);
	ok(m->ops->request(m, &reqs[0].r) == 0 && reqs[0].done == 1,
	   "sink error: chain completed, output dropped");
	sink.fail = 0;

	/* Writable buffers on a transmit chain are not touched. */
	build(&reqs[0], TXQ, src, 10, 20, 2);
	m->ops->request(m, &reqs[0].r);
	{
		uint8_t back[20];

		read_back(&reqs[0], back, 20);
		ok(reqs[0].done == 1 && reqs[0].written == 0 && back[0] == 0xee && back[19] == 0xee,
		   "transmit chain with writable buffers: written 0, untouched");
	}
	build(&reqs[0], TXQ, src, 0, 0, 1);
	ok(m->ops->request(m, &reqs[0].r) == 0 && reqs[0].done == 1, "empty transmit chain");
	free(src);
}

static void test_input(struct vshm_devmodel *m)
{
	uint8_t in[100000], back[4096];
	unsigned kicks;
	long n;
	int bad = 0;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = pat(i);

	/* Three posted buffers (one cut in two), 25 bytes of input. */
	build(&reqs[0], RXQ, NULL, 0, 10, 1);
	build(&reqs[1], RXQ, NULL, 0, 10, 3);
	build(&reqs[2], RXQ, NULL, 0, 10, 1);
	for (int i = 0; i < 3; i++)
		is(m->ops->request(m, &reqs[i].r), 0, "receive buffer %d posted", i);
	ok(!reqs[0].done, "no input: receive buffer held");
	is(vshm_console_input(m, in, 25), 25, "25 bytes of input accepted");
	ok(reqs[0].done == 1 && reqs[0].written == 10 && reqs[1].done == 1 &&
	   reqs[1].written == 10 && reqs[2].done == 1 && reqs[2].written == 5,
	   "split over the buffers: 10, 10, 5");
	ok(reqs[0].order < reqs[1].order && reqs[1].order < reqs[2].order, "in posting order");
	read_back(&reqs[0], back, 10);
	read_back(&reqs[1], back + 10, 10);
	read_back(&reqs[2], back + 20, 5);
	ok(memcmp(back, in, 25) == 0, "input bytes in order");

	/* Input first, buffer later. */
	kicks = n_kick_rx;
	is(vshm_console_input(m, in + 25, 30), 30, "input with no buffer posted: buffered");
	ok(n_kick_rx > kicks, "the runtime is told the receive queue has work");
	build(&reqs[3], RXQ, NULL, 0, 100, 4);
	ok(m->ops->request(m, &reqs[3].r) == 0 && reqs[3].done == 1 && reqs[3].written == 30,
	   "buffer posted later: filled at once with the 30 bytes");
	read_back(&reqs[3], back, 30);
	ok(memcmp(back, in + 25, 30) == 0, "... the right ones");

	/* Bounded: 64 KiB, then short counts, wrap-around kept in order. */
	n = vshm_console_input(m, in, sizeof(in));
	is(n, 65536, "100000 bytes offered: 65536 accepted");
	is(vshm_console_input(m, in, 10), 0, "buffer full: 0 accepted");
	{
		size_t got = 0, expect = 65536;
		uint8_t *all = malloc(65536 + 40000);

		/* Drain 40000, refill 40000 (the ring wraps), drain everything. */
		while (got < 40000) {
			build(&reqs[4], RXQ, NULL, 0, 4000, 3);
			m->ops->request(m, &reqs[4].r);
			read_back(&reqs[4], all + got, reqs[4].written);
			got += reqs[4].written;
		}
		is(vshm_console_input(m, in + 65536, 34464), 34464, "refilled after draining");
		is(vshm_console_input(m, in, 40000), 40000 - 34464, "... up to the bound");
		expect = 65536 + 40000;
		while (got < expect) {
			build(&reqs[4], RXQ, NULL, 0, 4096, 5);
			m->ops->request(m, &reqs[4].r);
			if (!reqs[4].done)
				break;
			read_back(&reqs[4], all + got, reqs[4].written);
			got += reqs[4].written;
		}
		is(got, expect, "everything accepted came out");
		bad = memcmp(all, in, 65536 + 34464) != 0 ||
		      memcmp(all + 65536 + 34464, in, 40000 - 34464) != 0;
		ok(!bad, "in order across the wrap");
		build(&reqs[4], RXQ, NULL, 0, 4096, 5);
		m->ops->request(m, &reqs[4].r);
		ok(reqs[4].done == 0, "one more buffer is held (no input left)");
		free(all);
	}

	/* Malformed receive chains. */
	build(&reqs[5], RXQ, in, 4, 10, 1);
	is(m->ops->request(m, &reqs[5].r), -EINVAL, "receive chain with a readable buffer: -EINVAL");
	build(&reqs[5], RXQ, NULL, 0, 0, 1);
	is(m->ops->request(m, &reqs[5].r), -EINVAL, "receive chain without buffers: -EINVAL");
	build(&reqs[5], 2, NULL, 0, 10, 1);
	is(m->ops->request(m, &reqs[5].r), -EINVAL, "queue 2: -EINVAL");

	/* Reset: held receive buffer (reqs[4]) and buffered input go. */
	is(vshm_console_input(m, in, 100), 100, "100 bytes accepted into the held buffer");
	ok(reqs[4].done == 1, "... which completes");
	build(&reqs[6], RXQ, NULL, 0, 10, 1);
	build(&reqs[7], RXQ, NULL, 0, 10, 1);
	m->ops->request(m, &reqs[6].r);
	m->ops->request(m, &reqs[7].r);
	ok(!reqs[6].done && !reqs[7].done, "two buffers held");
	m->ops->reset(m);
	ok(reqs[6].done == 1 && reqs[6].written == 0 && reqs[7].done == 1 && reqs[7].written == 0,
	   "reset completes held receive buffers with written 0");
	is(vshm_console_input(m, in, 50), 50, "input after reset buffered");
	m->ops->reset(m);
	build(&reqs[6], RXQ, NULL, 0, 10, 1);
	m->ops->request(m, &reqs[6].r);
	ok(!reqs[6].done, "reset dropped buffered input: new buffer held");
	m->ops->reset(m);
	ok(reqs[6].done == 1 && reqs[6].written == 0, "... and given back on the next reset");
}

static void test_reset_tx(struct vshm_devmodel *m)
{
	uint8_t src[64] = "held output";

	sink_reset(4096);
	sink.blocked = 1;
	build(&reqs[0], TXQ, src, 64, 0, 3);
	build(&reqs[1], TXQ, src, 64, 0, 3);
	m->ops->request(m, &reqs[0].r);
	m->ops->request(m, &reqs[1].r);
	ok(!reqs[0].done && !reqs[1].done, "blocked sink: transmit chains held");
	m->ops->reset(m);
	ok(reqs[0].done == 1 && reqs[1].done == 1 && reqs[0].written == 0,
	   "reset completes held transmit chains with written 0");
	sink.blocked = 0;
	m->ops->poll(m);
	is(sink.len, 0, "their bytes are not sent after reset");
	build(&reqs[2], TXQ, src, 5, 0, 1);
	m->ops->request(m, &reqs[2].r);
	ok(reqs[2].done == 1 && sink.len == 5 && memcmp(sink.buf, "held ", 5) == 0,
	   "a new chain starts cleanly after reset");
}

static void test_emerg(struct vshm_devmodel *m)
{
	sink_reset(4096);
	is(m->ops->config_write(m, 8, "A\0\0\0", 4), 0, "emerg_wr accepted (before negotiation)");
	ok(sink.len == 1 && sink.buf[0] == 'A', "emergency character out");
	sink.blocked = 1;
	m->ops->config_write(m, 8, "B\0\0\0", 4);
	m->ops->config_write(m, 8, "C", 1);
	is(sink.len, 1, "blocked sink: emergency characters held");
	sink.blocked = 0;
	m->ops->poll(m);
	ok(sink.len == 3 && memcmp(sink.buf, "ABC", 3) == 0, "... and out on the next poll");
	is(m->ops->config_write(m, 8, "\0\0\0\0\0", 5), -EPERM, "5-byte write refused");
	is(m->ops->config_write(m, 4, "\0\0\0\0", 4), -EPERM, "max_nr_ports is read-only");
}

int main(void)
{
	struct vshm_window_opts wo = { .size = 16u << 20, .vectors = 1, .name = "test-con" };
	struct vshm_console_io io = { .ctx = &sink, .out = sink_out };
	struct vshm_devmodel m;

	if (vshm_window_create(&win, &wo)) {
		ok(0, "window");
		return tap_done();
	}
	reqs = calloc(256, sizeof(*reqs));
	sink_reset(4096);
	is(vshm_console_create(&m, &host, NULL), -EINVAL, "create without io: -EINVAL");
	is(vshm_console_create(&m, &host, &io), 0, "create");
	test_shape(&m);
	test_emerg(&m);
	test_output(&m);
	test_input(&m);
	test_reset_tx(&m);
	is(n_double, 0, "no request completed twice");
	m.ops->destroy(&m);
	free(reqs);
	free(sink.buf);
	vshm_window_unmap(&win);
	return tap_done();
}
