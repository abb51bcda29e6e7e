// SPDX-License-Identifier: MIT
/* virtio-rng model, driven directly with a fake runtime over a real window. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <vshm/devmodel.h>
#include <vshm/window.h>
#include "tap.h"

struct treq {
	struct vshm_req r;		/* first: the host callback casts back */
	struct vshm_iov iov[20];
	int done;
	uint32_t written;
};

static unsigned n_complete, n_double;

static void fh_complete(void *ctx, struct vshm_req *r, uint32_t written)
{
	struct treq *t = (struct treq *)r;

	(void)ctx;
	if (t->done++)
		n_double++;
	t->written = written;
	n_complete++;
}

static const struct vshm_devmodel_host host = { .complete = fh_complete };

static struct vshm_window win;
static uint64_t bump;

static uint8_t *walloc(size_t len)
{
	if (bump < win.drv_lo || bump + len + 64 > win.drv_hi)
		bump = win.drv_lo;
	bump += len + 64;		/* a 64-byte gap after each buffer */
	return win.base + bump - len - 64;
}

/* A chain of @nout readable and @nin writable buffers of the given sizes. */
static void build(struct treq *t, const uint32_t *rlen, unsigned nout, const uint32_t *wlen,
		  unsigned nin)
{
	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < nout + nin; i++) {
		uint32_t len = i < nout ? rlen[i] : wlen[i - nout];

		t->iov[i].base = walloc(len + 64);
		t->iov[i].len = len;
		memset(t->iov[i].base, 0, len + 64);	/* guard bytes stay 0 */
	}
	t->r.chain.iov = t->iov;
	t->r.chain.nout = (uint16_t)nout;
	t->r.chain.nin = (uint16_t)nin;
}

static size_t zeros(const uint8_t *p, size_t n)
{
	size_t z = 0;

	for (size_t i = 0; i < n; i++)
		z += p[i] == 0;
	return z;
}

/* Were the 64 bytes after each writable buffer left alone? */
static int guards_clean(const struct treq *t)
{
	for (unsigned i = t->r.chain.nout; i < t->r.chain.nout + t->r.chain.nin; i++)
		if (zeros((const uint8_t *)t->iov[i].base + t->iov[i].len, 64) != 64)
			return 0;
	return 1;
}

int main(void)
{
	struct vshm_window_opts wo = { .size = 4u << 20, .vectors = 1, .name = "test-rng" };
	struct vshm_devmodel m;
	struct treq t, u;
	uint32_t w1[] = { 4096 }, w3[] = { 7, 1000, 33 }, big[] = { 60000, 10000, 100 };
	uint32_t r1[] = { 16 };
	unsigned before;

	if (vshm_window_create(&win, &wo)) {
		ok(0, "window");
		return tap_done();
	}
	is(vshm_rng_create(&m, &host), 0, "create");
	is(vshm_rng_create(&m, NULL), -EINVAL, "create without a host: -EINVAL");
	ok(strcmp(m.ops->name, "rng") == 0 && m.ops->device_id == VSHM_VIRTIO_ID_RNG,
	   "name rng, device id 4");
	ok(m.ops->num_queues(&m) == 1 && m.ops->queue_max(&m, 0) == 256 &&
	   m.ops->seg_max(&m) == 16, "one queue of 256, 16 buffers per chain");
	ok(m.ops->features(&m) == 0 && m.ops->config_size(&m) == 0, "no features, no config");
	is(m.ops->set_features(&m, 1), -EINVAL, "unoffered feature refused");
	is(m.ops->set_features(&m, 0), 0, "no features accepted");
	is(m.ops->config_write(&m, 0, "", 1), -EPERM, "config write refused");
	is(m.ops->start(&m), 0, "start");

	build(&t, NULL, 0, w1, 1);
	is(m.ops->request(&m, &t.r), 0, "one 4 KiB buffer: taken");
	ok(t.done == 1 && t.written == 4096, "completed at once with written 4096");
	ok(zeros(t.iov[0].base, 4096) < 64, "bytes are not all zero (%zu zero bytes)",
	   zeros(t.iov[0].base, 4096));
	ok(guards_clean(&t), "nothing written past the buffer");
	build(&u, NULL, 0, w1, 1);
	m.ops->request(&m, &u.r);
	ok(memcmp(t.iov[0].base, u.iov[0].base, 4096) != 0, "two requests differ");

	build(&t, NULL, 0, w3, 3);
	ok(m.ops->request(&m, &t.r) == 0 && t.written == 1040, "three buffers: written 1040");
	ok(zeros(t.iov[1].base, 1000) < 32 && guards_clean(&t),
	   "every buffer filled, nothing past them");

	build(&t, NULL, 0, big, 3);
	ok(m.ops->request(&m, &t.r) == 0 && t.written == 65536,
	   "70100 bytes asked: capped at 65536");
	ok(zeros((uint8_t *)t.iov[1].base + 5536 - 512, 512) < 32,
	   "the cap falls inside the second buffer, filled up to it");
	ok(zeros((uint8_t *)t.iov[1].base + 5536, 10000 - 5536) == 10000 - 5536 &&
	   zeros(t.iov[2].base, 100) == 100, "nothing written beyond the cap");

	before = n_complete;
	build(&t, r1, 1, w1, 1);
	is(m.ops->request(&m, &t.r), -EINVAL, "a readable buffer: -EINVAL");
	ok(n_complete == before && zeros(t.iov[1].base, 4096) == 4096,
	   "... not completed by the model, nothing written");
	build(&t, NULL, 0, NULL, 0);
	is(m.ops->request(&m, &t.r), -EINVAL, "no buffer at all: -EINVAL");
	{
		uint32_t z[] = { 0 };

		build(&t, NULL, 0, z, 1);
		is(m.ops->request(&m, &t.r), -EINVAL, "only a zero-length buffer: -EINVAL");
	}
	m.ops->reset(&m);
	build(&t, NULL, 0, w1, 1);
	ok(m.ops->request(&m, &t.r) == 0 && t.written == 4096, "works after reset");
	is(n_double, 0, "no request completed twice");
	m.ops->destroy(&m);
	vshm_window_unmap(&win);
	return tap_done();
}
