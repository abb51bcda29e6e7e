// SPDX-License-Identifier: MIT
/*
 * The device models' request parsers against hostile requests.
 *
 * The input is a list of requests.  Each picks a model (blk on a 1 MiB
 * scratch image with the pread engine, console, rng), a queue, a chain
 * shape (up to 6 readable and 6 writable buffers of any sizes), and the
 * bytes of its readable buffers (a blk header, console output, garbage).
 * Now and then the model is reset.  Invariants: every request is completed
 * exactly once (at once, or by poll or reset), with a written length no
 * larger than the writable bytes; nothing is read or written outside the
 * buffers (ASan); nothing leaks.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vshm/devmodel.h>

#define MAXREQ 64

struct held {
	struct vshm_req r;
	struct vshm_iov iov[12];
	uint8_t *bufs[12];
	uint64_t writable;
	int done;
};

static struct held reqs[MAXREQ];
static unsigned nreq;

static void h_complete(void *ctx, struct vshm_req *r, uint32_t written)
{
	struct held *h = (struct held *)(void *)r;

	(void)ctx;
	if (h < reqs || h >= reqs + nreq || h->done || written > h->writable)
		__builtin_trap();
	h->done = 1;
}

static void h_config_changed(void *ctx) { (void)ctx; }
static void h_kick(void *ctx, unsigned q) { (void)ctx; (void)q; }
static void h_needs_reset(void *ctx, const char *why) { (void)ctx; (void)why; }

static const struct vshm_devmodel_host host = {
	.complete = h_complete, .config_changed = h_config_changed,
	.kick_queue = h_kick, .needs_reset = h_needs_reset,
};

static long sink(void *ctx, const void *buf, size_t len)
{
	(void)ctx;
	(void)buf;
	return len > 7 ? (long)(len / 2) : (long)len;	/* short writes too */
}

static struct vshm_devmodel models[3];
static char img[] = "/tmp/vshm-fuzz-blk.XXXXXX";

static void setup(void)
{
	struct vshm_blk_opts bo = { 0 };
	struct vshm_console_io io = { .ctx = NULL, .out = sink };
	char err[256];
	int fd = mkstemp(img);

	if (fd < 0 || ftruncate(fd, 1 << 20))
		abort();
	close(fd);
	bo.path = img;
	bo.force_pread = 1;
	bo.serial = "fuzz";
	if (vshm_blk_create(&models[0], &host, &bo, err, sizeof(err)) ||
	    vshm_console_create(&models[1], &host, &io) || vshm_rng_create(&models[2], &host))
		abort();
	unlink(img);
}

static void start(struct vshm_devmodel *m)
{
	/* negotiate everything the model offers, then go */
	if (m->ops->set_features)
		m->ops->set_features(m, m->ops->features ? m->ops->features(m) : 0);
	if (m->ops->start)
		m->ops->start(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t i = 0;

	if (!models[0].ops) {
		setup();
		for (int k = 0; k < 3; k++)
			start(&models[k]);
	}
	nreq = 0;
	memset(reqs, 0, sizeof(reqs));
	while (i + 3 <= size && nreq < MAXREQ) {
		uint8_t sel = data[i], shape = data[i + 1], sz = data[i + 2];
		struct vshm_devmodel *m = &models[sel % 3];
		struct held *h = &reqs[nreq++];
		unsigned nout = shape & 7, nin = (shape >> 3) & 7, n;

		i += 3;
		if (nout > 6)
			nout = 6;
		if (nin > 6)
			nin = 6;
		if (sel & 0x80) {
			/* a reset: everything held must come back */
			m->ops->reset(m);
			start(m);
			nreq--;
			continue;
		}
		h->r.queue = (uint16_t)((sel >> 2) % m->ops->num_queues(m));
		n = nout + nin;
		h->r.chain.iov = h->iov;
		h->r.chain.nout = (uint16_t)nout;
		h->r.chain.nin = (uint16_t)nin;
		for (unsigned k = 0; k < n; k++) {
			/* sizes: mostly the shapes a blk request has, sometimes odd */
			size_t len = k == 0 ? 16 : (size_t)(sz & 0x3f) * 64 + (sz >> 6);

			if (k == n - 1 && nin)
				len = (sz & 1) ? 1 : len + 1;
			h->bufs[k] = malloc(len ? len : 1);
			h->iov[k].base = h->bufs[k];
			h->iov[k].len = (uint32_t)len;
			if (k < nout) {
				size_t take = len < size - i ? len : size - i;

				memset(h->bufs[k], 0, len);
				memcpy(h->bufs[k], data + i, take);
				i += take;
				h->r.chain.out_bytes += len;
			} else {
				memset(h->bufs[k], 0xee, len);
				h->r.chain.in_bytes += len;
				h->writable += len;
			}
		}
		if (m->ops->request(m, &h->r) < 0)
			h_complete(NULL, &h->r, 0);	/* the runtime does this */
		if (m->ops->poll)
			m->ops->poll(m);
	}
	/* Drain: poll, then reset; every request must be complete. */
	for (int k = 0; k < 3; k++) {
		if (models[k].ops->poll)
			models[k].ops->poll(&models[k]);
		models[k].ops->reset(&models[k]);
		start(&models[k]);
	}
	for (unsigned r = 0; r < nreq; r++) {
		if (!reqs[r].done)
			__builtin_trap();
		for (unsigned k = 0; k < 12; k++)
			free(reqs[r].bufs[k]);
	}
	return 0;
}
