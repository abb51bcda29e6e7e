// SPDX-License-Identifier: MIT
/*
 * virtio-blk model, driven directly with a fake runtime: chains built by
 * hand in a real window (header, data and status split across buffers in
 * odd ways), an image file in /tmp mirrored by an in-memory reference.
 * The same suite runs on the io_uring engine and on the pread engine.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <vshm/devmodel.h>
#include <vshm/window.h>
#include "tap.h"

#define IMG_SIZE	(8u << 20)
#define CAPACITY	(IMG_SIZE / 512u)
#define WIN_SIZE	(64u << 20)
#define TIOV		160u
#define NREQ		80u

#define T_IN		0u
#define T_OUT		1u
#define T_SCSI		2u
#define T_FLUSH		4u
#define T_GET_ID	8u
#define T_DISCARD	11u
#define T_WZ		13u
#define S_OK		0
#define S_IOERR		1
#define S_UNSUPP	2

#define F_SIZE_MAX	(1ull << 1)
#define F_SEG_MAX	(1ull << 2)
#define F_RO		(1ull << 5)
#define F_BLK_SIZE	(1ull << 6)
#define F_FLUSH		(1ull << 9)
#define F_CONFIG_WCE	(1ull << 11)
#define F_DISCARD	(1ull << 13)
#define F_WZ		(1ull << 14)

/* ---- fake runtime -------------------------------------------------------- */

struct treq {
	struct vshm_req r;		/* first: the host callback casts back */
	struct vshm_iov iov[TIOV];
	int done;			/* completions seen (must end at 1) */
	uint32_t written;
	unsigned order;			/* completion sequence number */
};

static unsigned n_complete, n_double, n_needs_reset;

static void fh_complete(void *ctx, struct vshm_req *r, uint32_t written)
{
	struct treq *t = (struct treq *)r;

	(void)ctx;
	if (t->done++)
		n_double++;
	t->written = written;
	t->order = n_complete++;
}

static void fh_config_changed(void *ctx) { (void)ctx; }
static void fh_kick(void *ctx, unsigned q) { (void)ctx; (void)q; }
static void fh_needs_reset(void *ctx, const char *why)
{
	(void)ctx;
	diag("needs_reset: %s", why);
	n_needs_reset++;
}

static const struct vshm_devmodel_host host = {
	.complete = fh_complete,
	.config_changed = fh_config_changed,
	.kick_queue = fh_kick,
	.needs_reset = fh_needs_reset,
};

/* ---- window and chains --------------------------------------------------- */

static struct vshm_window win;
static uint64_t bump;
static uint64_t seed = 0x243f6a8885a308d3ull;

static uint64_t rnd(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return seed;
}

/* Window memory for one buffer, at a random small distance from the last. */
static uint8_t *walloc(size_t len)
{
	uint64_t gap = rnd() % 64;

	if (bump < win.drv_lo || bump + gap + len > win.drv_hi)
		bump = win.drv_lo;
	bump += gap;
	bump += len;
	return win.base + bump - len;
}

/*
 * Place @len bytes (from @src, or 0xa5 filler when NULL) into the window
 * as up to @maxp buffers cut at random points.  Returns the entries used.
 */
static unsigned place(struct vshm_iov *iov, const uint8_t *src, size_t len, unsigned maxp)
{
	unsigned k = 0;
	size_t done = 0;

	while (done < len) {
		size_t left = len - done, take;

		if (k + 1 >= maxp)
			take = left;
		else
			take = (rnd() & 1) ? 1 + rnd() % left : 1 + rnd() % (left < 24 ? left : 24);
		iov[k].base = walloc(take);
		iov[k].len = (uint32_t)take;
		if (src)
			memcpy(iov[k].base, src + done, take);
		else
			memset(iov[k].base, 0xa5, take);
		done += take;
		k++;
	}
	return k;
}

/* A chain: @rlen readable bytes from @rd, @wlen writable bytes, random cuts. */
static void build(struct treq *t, const uint8_t *rd, size_t rlen, size_t wlen, unsigned maxp)
{
	unsigned nout, nin;

	memset(t, 0, sizeof(*t));
	nout = place(t->iov, rd, rlen, maxp);
	nin = place(t->iov + nout, NULL, wlen, maxp);
	t->r.chain.iov = t->iov;
	t->r.chain.nout = (uint16_t)nout;
	t->r.chain.nin = (uint16_t)nin;
	t->r.chain.out_bytes = rlen;
	t->r.chain.in_bytes = wlen;
}

static uint8_t status_of(const struct treq *t)
{
	const struct vshm_iov *l = &t->iov[t->r.chain.nout + t->r.chain.nin - 1];

	return ((const uint8_t *)l->base)[l->len - 1];
}

/* Copy writable bytes [off, off+len) of @t out. */
static void read_back(const struct treq *t, uint8_t *dst, size_t off, size_t len)
{
	for (unsigned i = t->r.chain.nout; i < t->r.chain.nout + t->r.chain.nin && len; i++) {
		size_t n;

		if (off >= t->iov[i].len) {
			off -= t->iov[i].len;
			continue;
		}
		n = t->iov[i].len - off;
		if (n > len)
			n = len;
		memcpy(dst, (uint8_t *)t->iov[i].base + off, n);
		dst += n;
		len -= n;
		off = 0;
	}
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static void hdr(uint8_t *h, uint32_t type, uint64_t sector)
{
	put32(h, type);
	put32(h + 4, 0);
	put64(h + 8, sector);
}

/* ---- model plumbing ------------------------------------------------------ */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Run the model's event loop until @target completions in total (10 s bound). */
static int wait_for(struct vshm_devmodel *m, unsigned target)
{
	uint64_t end = now_ms() + 10000;

	while (n_complete < target && now_ms() < end) {
		int fd = m->ops->event_fd ? m->ops->event_fd(m) : -1;

		if (fd >= 0) {
			struct pollfd p = { .fd = fd, .events = POLLIN };

			poll(&p, 1, 100);
		}
		if (m->ops->poll)
			m->ops->poll(m);
	}
	return n_complete >= target;
}

static int submit(struct vshm_devmodel *m, struct treq *t)
{
	return m->ops->request(m, &t->r);
}

/* One request start to finish; returns request()'s result. */
static int run1(struct vshm_devmodel *m, struct treq *t)
{
	uint64_t end = now_ms() + 10000;
	int rc = submit(m, t);

	while (rc == 0 && !t->done && now_ms() < end)
		wait_for(m, n_complete + 1);
	if (rc == 0 && !t->done)
		diag("request did not complete in time");
	return rc;
}

static uint32_t cfg32(struct vshm_devmodel *m, uint32_t off)
{
	uint8_t b[4];

	m->ops->config_read(m, off, b, 4);
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t cfg64(struct vshm_devmodel *m, uint32_t off)
{
	return cfg32(m, off) | (uint64_t)cfg32(m, off + 4) << 32;
}

static uint8_t cfg8(struct vshm_devmodel *m, uint32_t off)
{
	uint8_t v;

	m->ops->config_read(m, off, &v, 1);
	return v;
}

/* ---- image and reference ------------------------------------------------- */

static uint8_t *ref;		/* what the image must contain */
static char img_path[64];

static void fill_rand(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(rnd() >> 24);
}

static int make_image(const char *dir, char *path, size_t pathlen, size_t size, int randomize)
{
	uint8_t *buf;
	int fd;

	snprintf(path, pathlen, "%s/vshm-blk-XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	buf = malloc(size);
	if (!buf) {
		close(fd);
		return -1;
	}
	if (randomize)
		fill_rand(buf, size);
	else
		memset(buf, 0, size);
	if (pwrite(fd, buf, size, 0) != (ssize_t)size) {
		free(buf);
		close(fd);
		return -1;
	}
	if (randomize && ref)
		memcpy(ref, buf, size);
	free(buf);
	close(fd);
	return 0;
}

/* Does the file at @path hold exactly ref[]? */
static int image_matches(const char *path)
{
	uint8_t *buf = malloc(IMG_SIZE);
	int fd = open(path, O_RDONLY), same = 0;

	if (buf && fd >= 0 && pread(fd, buf, IMG_SIZE, 0) == IMG_SIZE)
		same = memcmp(buf, ref, IMG_SIZE) == 0;
	if (fd >= 0)
		close(fd);
	free(buf);
	return same;
}

static int create(struct vshm_devmodel *m, const char *path, int ro, int force_pread,
		  const char *serial)
{
	struct vshm_blk_opts o = { .path = path, .read_only = ro, .force_pread = force_pread,
				   .serial = serial };
	char err[256];
	int rc = vshm_blk_create(m, &host, &o, err, sizeof(err));

	if (rc)
		diag("create %s: %s", path, err);
	return rc;
}

/* ---- request builders ---------------------------------------------------- */

static void mk_read(struct treq *t, uint64_t sector, size_t len, unsigned maxp)
{
	uint8_t h[16];

	hdr(h, T_IN, sector);
	build(t, h, 16, len + 1, maxp);
}

static void mk_write(struct treq *t, uint64_t sector, const uint8_t *data, size_t len,
		     unsigned maxp)
{
	uint8_t *buf = malloc(16 + len);

	hdr(buf, T_OUT, sector);
	if (len)
		memcpy(buf + 16, data, len);
	build(t, buf, 16 + len, 1, maxp);
	free(buf);
}

static void mk_simple(struct treq *t, uint32_t type, uint64_t sector, size_t wlen)
{
	uint8_t h[16];

	hdr(h, type, sector);
	build(t, h, 16, wlen, 4);
}

struct range { uint64_t sector; uint32_t n; uint32_t flags; };

static void mk_ranges(struct treq *t, uint32_t type, const struct range *r, unsigned n)
{
	uint8_t buf[16 + 32 * 16];

	hdr(buf, type, 0);
	for (unsigned i = 0; i < n; i++) {
		put64(buf + 16 + 16 * i, r[i].sector);
		put32(buf + 24 + 16 * i, r[i].n);
		put32(buf + 28 + 16 * i, r[i].flags);
	}
	build(t, buf, 16 + 16 * n, 1, 6);
}

static struct treq *reqs;

/* ---- the suite ----------------------------------------------------------- */

static void test_shape(struct vshm_devmodel *m, const char *eng)
{
	ok(strcmp(m->ops->name, "blk") == 0 && m->ops->device_id == VSHM_VIRTIO_ID_BLOCK,
	   "%s: name blk, device id 2", eng);
	is(m->ops->num_queues(m), 1, "%s: one queue", eng);
	is(m->ops->queue_max(m, 0), 256, "%s: queue_max 256", eng);
	is(m->ops->seg_max(m), 128, "%s: chains of up to 128 buffers (seg_max + 2)", eng);
	ok((m->ops->features(m) & (F_SIZE_MAX | F_SEG_MAX | F_BLK_SIZE | F_FLUSH | F_CONFIG_WCE |
				  F_DISCARD | F_WZ)) ==
	   (F_SIZE_MAX | F_SEG_MAX | F_BLK_SIZE | F_FLUSH | F_CONFIG_WCE | F_DISCARD | F_WZ) &&
	   !(m->ops->features(m) & F_RO), "%s: features offered", eng);
	is(m->ops->set_features(m, 1ull << 0), -EINVAL, "%s: unoffered feature refused", eng);
	is(m->ops->config_size(m), 60, "%s: config size 60", eng);
	is(cfg64(m, 0), CAPACITY, "%s: capacity in sectors", eng);
	ok(cfg32(m, 8) == (1u << 20) && cfg32(m, 12) == 126 && cfg32(m, 20) == 512,
	   "%s: size_max 1 MiB, seg_max 126, blk_size 512", eng);
	ok(cfg32(m, 36) == (1u << 22) && cfg32(m, 40) == 16 && cfg32(m, 44) == 8 &&
	   cfg32(m, 48) == (1u << 22) && cfg32(m, 52) == 16 && cfg8(m, 56) == 1,
	   "%s: discard / write-zeroes limits", eng);
	is(m->ops->config_write(m, 32, "\0", 1), -EPERM,
	   "%s: writeback read-only before CONFIG_WCE is negotiated", eng);
}

/*
 * Batches of up to 8 requests, each in its own 1 MiB slot of the disk so
 * none overlaps another in flight; random sizes and buffer cuts.
 */
static void test_roundtrip(struct vshm_devmodel *m, const char *eng)
{
	unsigned long batches = tap_scale(300);
	unsigned bad_status = 0, bad_data = 0, bad_written = 0, rc_bad = 0, lost = 0;
	uint8_t *data = malloc(512 * 256), *back = malloc(512 * 256);

	for (unsigned long b = 0; b < batches; b++) {
		unsigned n = 1 + rnd() % 8, base = n_complete;
		struct { int write; uint64_t sector; size_t len; } d[8];

		for (unsigned i = 0; i < n; i++) {
			uint64_t slot = (CAPACITY / 8) * i;
			unsigned nsect = (rnd() & 3) ? 1 + rnd() % 64 : 1 + rnd() % 256;

			d[i].write = rnd() & 1;
			d[i].sector = slot + rnd() % (CAPACITY / 8 - nsect + 1);
			d[i].len = (size_t)nsect * 512;
			if (d[i].write) {
				fill_rand(data, d[i].len);
				mk_write(&reqs[i], d[i].sector, data, d[i].len, 1 + rnd() % 12);
				/* Writes land before we check them: update the reference now. */
				memcpy(ref + d[i].sector * 512, data, d[i].len);
			} else {
				mk_read(&reqs[i], d[i].sector, d[i].len, 1 + rnd() % 12);
			}
		}
		for (unsigned i = 0; i < n; i++)
			if (submit(m, &reqs[i]))
				rc_bad++;
		if (!wait_for(m, base + n))
			lost++;
		for (unsigned i = 0; i < n; i++) {
			if (reqs[i].done != 1 || status_of(&reqs[i]) != S_OK) {
				bad_status++;
				continue;
			}
			if (reqs[i].written != (d[i].write ? 1 : d[i].len + 1))
				bad_written++;
			if (!d[i].write) {
				read_back(&reqs[i], back, 0, d[i].len);
				if (memcmp(back, ref + d[i].sector * 512, d[i].len))
					bad_data++;
			}
		}
	}
	is(rc_bad, 0, "%s: %lu batches: request() took every request", eng, batches);
	is(lost, 0, "%s: every batch completed", eng);
	is(bad_status, 0, "%s: every request completed once with S_OK", eng);
	is(bad_written, 0, "%s: written = data + status for reads, 1 for writes", eng);
	is(bad_data, 0, "%s: reads return what was written", eng);
	ok(image_matches(img_path), "%s: image file equals the reference", eng);
	free(data);
	free(back);
}

/* Header split one byte per buffer, status alone or sharing with data. */
static void test_odd_layouts(struct vshm_devmodel *m, const char *eng)
{
	uint8_t h[16 + 1024], back[1024];
	struct treq *t = &reqs[0];
	unsigned k = 0;

	/* A write whose header is 16 one-byte buffers and data is 2 x 512. */
	hdr(h, T_OUT, 100);
	fill_rand(h + 16, 1024);
	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < 16; i++) {
		t->iov[k].base = walloc(1);
		t->iov[k].len = 1;
		memcpy(t->iov[k].base, h + i, 1);
		k++;
	}
	for (unsigned i = 0; i < 2; i++) {
		t->iov[k].base = walloc(512);
		t->iov[k].len = 512;
		memcpy(t->iov[k].base, h + 16 + 512 * i, 512);
		k++;
	}
	t->r.chain.nout = (uint16_t)k;
	t->iov[k].base = walloc(1);
	t->iov[k].len = 1;
	k++;
	t->r.chain.nin = 1;
	t->r.chain.iov = t->iov;
	ok(run1(m, t) == 0 && status_of(t) == S_OK, "%s: header as 16 one-byte buffers", eng);
	memcpy(ref + 100 * 512, h + 16, 1024);

	/* A read whose last buffer holds both the data tail and the status. */
	hdr(h, T_IN, 100);
	memset(t, 0, sizeof(*t));
	t->iov[0].base = walloc(16);
	t->iov[0].len = 16;
	memcpy(t->iov[0].base, h, 16);
	t->iov[1].base = walloc(1000);
	t->iov[1].len = 1000;
	t->iov[2].base = walloc(25);		/* 24 data bytes + status */
	t->iov[2].len = 25;
	t->r.chain.nout = 1;
	t->r.chain.nin = 2;
	t->r.chain.iov = t->iov;
	ok(run1(m, t) == 0 && status_of(t) == S_OK && t->written == 1025,
	   "%s: status sharing a buffer with data", eng);
	read_back(t, back, 0, 1024);
	ok(memcmp(back, ref + 100 * 512, 1024) == 0, "%s: ... and the data is right", eng);

	/* Header and data in one buffer, a zero-length buffer before the status. */
	memset(t, 0, sizeof(*t));
	t->iov[0].base = walloc(16 + 512);
	t->iov[0].len = 16 + 512;
	hdr(t->iov[0].base, T_OUT, 7);
	fill_rand((uint8_t *)t->iov[0].base + 16, 512);
	memcpy(ref + 7 * 512, (uint8_t *)t->iov[0].base + 16, 512);
	t->iov[1].base = walloc(1);
	t->iov[1].len = 1;
	t->iov[2].base = walloc(1);
	t->iov[2].len = 0;
	t->r.chain.nout = 1;
	t->r.chain.nin = 2;
	t->r.chain.iov = t->iov;
	ok(run1(m, t) == 0 && ((uint8_t *)t->iov[1].base)[0] == S_OK,
	   "%s: header sharing a buffer with data; empty trailing buffer ignored", eng);
	ok(image_matches(img_path), "%s: image equals the reference after odd layouts", eng);
}

static void test_flush(struct vshm_devmodel *m, const char *eng)
{
	uint8_t *data = malloc(256 * 1024);
	unsigned base = n_complete, late = 0;
	struct treq *t = &reqs[0];

	mk_simple(t, T_FLUSH, 0, 1);
	ok(run1(m, t) == 0 && status_of(t) == S_OK && t->written == 1, "%s: flush", eng);

	/* Eight 256 KiB writes, then a flush: it may complete only after all of them. */
	base = n_complete;
	for (unsigned i = 0; i < 8; i++) {
		fill_rand(data, 256 * 1024);
		mk_write(&reqs[i], (uint64_t)i * 512, data, 256 * 1024, 8);
		memcpy(ref + (uint64_t)i * 512 * 512, data, 256 * 1024);
		submit(m, &reqs[i]);
	}
	mk_simple(&reqs[8], T_FLUSH, 0, 1);
	submit(m, &reqs[8]);
	mk_read(&reqs[9], 3, 4096, 3);		/* behind the flush */
	submit(m, &reqs[9]);
	ok(wait_for(m, base + 10), "%s: writes, flush, read all complete", eng);
	for (unsigned i = 0; i < 8; i++)
		if (reqs[i].order > reqs[8].order || status_of(&reqs[i]) != S_OK)
			late++;
	ok(late == 0 && status_of(&reqs[8]) == S_OK,
	   "%s: flush completes after every write submitted before it", eng);
	ok(status_of(&reqs[9]) == S_OK, "%s: read queued behind a flush", eng);

	/*
	 * io_uring: a flush reaches the kernel only once the completions of
	 * the writes before it were processed.  Let the kernel finish the
	 * writes, then reap once: they complete, the flush is only then
	 * issued, so it cannot complete in that same poll.
	 */
	if (strcmp(eng, "io_uring") == 0) {
		unsigned wdone = 0;

		base = n_complete;
		for (unsigned i = 0; i < 8; i++) {
			fill_rand(data, 64 * 1024);
			mk_write(&reqs[i], 4096 + (uint64_t)i * 128, data, 64 * 1024, 4);
			memcpy(ref + (4096 + (uint64_t)i * 128) * 512, data, 64 * 1024);
			submit(m, &reqs[i]);
		}
		mk_simple(&reqs[8], T_FLUSH, 0, 1);
		submit(m, &reqs[8]);
		m->ops->poll(m);	/* requests are submitted to the kernel in poll */
		usleep(200000);
		m->ops->poll(m);
		for (unsigned i = 0; i < 8; i++)
			wdone += reqs[i].done == 1;
		ok(wdone == 8 && reqs[8].done == 0,
		   "%s: the flush is issued only after the writes before it completed", eng);
		ok(wait_for(m, base + 9) && status_of(&reqs[8]) == S_OK, "%s: ... then completes", eng);
	} else {
		ok(1, "%s: synchronous engine: writes complete before a flush arrives", eng);
		ok(1, "%s: (nothing to wait for)", eng);
	}

	mk_simple(t, T_FLUSH, 0, 5);
	ok(run1(m, t) == 0 && status_of(t) == S_IOERR, "%s: flush with a data buffer: IOERR", eng);
	free(data);
}

/* Write non-zero data at [sector, +n) through the model. */
static int scribble(struct vshm_devmodel *m, uint64_t sector, unsigned n)
{
	uint8_t *d = malloc((size_t)n * 512);
	int okk;

	fill_rand(d, (size_t)n * 512);
	d[0] |= 1;
	mk_write(&reqs[0], sector, d, (size_t)n * 512, 3);
	okk = run1(m, &reqs[0]) == 0 && status_of(&reqs[0]) == S_OK;
	if (okk)
		memcpy(ref + sector * 512, d, (size_t)n * 512);
	free(d);
	return okk;
}

/* Read [sector, +n) through the model and compare with ref. */
static int reads_ref(struct vshm_devmodel *m, uint64_t sector, unsigned n)
{
	uint8_t *d = malloc((size_t)n * 512);
	int same;

	mk_read(&reqs[1], sector, (size_t)n * 512, 5);
	same = run1(m, &reqs[1]) == 0 && status_of(&reqs[1]) == S_OK;
	read_back(&reqs[1], d, 0, (size_t)n * 512);
	same = same && memcmp(d, ref + sector * 512, (size_t)n * 512) == 0;
	free(d);
	return same;
}

static void test_discard_wz(struct vshm_devmodel *m, const char *eng, const char *where)
{
	struct treq *t = &reqs[2];
	struct range r[17];

	/* Discard (ext4 and tmpfs punch holes: the range reads back as zeros). */
	ok(scribble(m, 2048, 64), "%s/%s: data written before discard", eng, where);
	r[0] = (struct range){ 2048 + 8, 40, 0 };
	mk_ranges(t, T_DISCARD, r, 1);
	ok(run1(m, t) == 0 && status_of(t) == S_OK && t->written == 1,
	   "%s/%s: discard", eng, where);
	memset(ref + (2048 + 8) * 512, 0, 40 * 512);
	ok(reads_ref(m, 2048, 64), "%s/%s: discarded range reads zero, the rest intact",
	   eng, where);

	/* Write zeroes, three ranges, with and without unmap. */
	ok(scribble(m, 4096, 128), "%s/%s: data written before write-zeroes", eng, where);
	r[0] = (struct range){ 4096, 3, 0 };
	r[1] = (struct range){ 4096 + 10, 50, 1 };
	r[2] = (struct range){ 4096 + 100, 1, 0 };
	mk_ranges(t, T_WZ, r, 3);
	ok(run1(m, t) == 0 && status_of(t) == S_OK, "%s/%s: write-zeroes, 3 ranges", eng, where);
	memset(ref + 4096 * 512, 0, 3 * 512);
	memset(ref + (4096 + 10) * 512, 0, 50 * 512);
	memset(ref + (4096 + 100) * 512, 0, 512);
	ok(reads_ref(m, 4096, 128), "%s/%s: zeroed ranges read zero, the rest intact",
	   eng, where);
	/* A large range (several zero-writing chunks when fallocate cannot). */
	ok(scribble(m, 8192, 256), "%s/%s: data written before a 3 MiB write-zeroes",
	   eng, where);
	r[0] = (struct range){ 8000, 6144, 0 };
	mk_ranges(t, T_WZ, r, 1);
	ok(run1(m, t) == 0 && status_of(t) == S_OK, "%s/%s: 3 MiB write-zeroes", eng, where);
	memset(ref + 8000 * 512, 0, 6144 * 512);
	ok(reads_ref(m, 8000, 256) && reads_ref(m, 8000 + 6144 - 256, 256),
	   "%s/%s: ... reads zero", eng, where);
	ok(image_matches(img_path), "%s/%s: image equals the reference", eng, where);

	/* Validation. */
	r[0] = (struct range){ 10, 1, 1 };
	mk_ranges(t, T_DISCARD, r, 1);
	ok(run1(m, t) == 0 && status_of(t) == S_UNSUPP, "%s/%s: discard with unmap: UNSUPP",
	   eng, where);
	r[0] = (struct range){ 10, 1, 2 };
	mk_ranges(t, T_WZ, r, 1);
	ok(run1(m, t) == 0 && status_of(t) == S_UNSUPP,
	   "%s/%s: write-zeroes with an unknown flag: UNSUPP", eng, where);
	for (unsigned i = 0; i < 17; i++)
		r[i] = (struct range){ i, 1, 0 };
	mk_ranges(t, T_DISCARD, r, 17);
	ok(run1(m, t) == 0 && status_of(t) == S_UNSUPP,
	   "%s/%s: 17 discard ranges (max 16): UNSUPP", eng, where);
	r[0] = (struct range){ CAPACITY - 1, 2, 0 };
	mk_ranges(t, T_DISCARD, r, 1);
	ok(run1(m, t) == 0 && status_of(t) == S_IOERR, "%s/%s: discard past the end: IOERR",
	   eng, where);
	r[0] = (struct range){ UINT64_MAX - 1, 4, 0 };
	mk_ranges(t, T_WZ, r, 1);
	ok(run1(m, t) == 0 && status_of(t) == S_IOERR,
	   "%s/%s: write-zeroes with a wrapping sector: IOERR", eng, where);
	r[0] = (struct range){ 0, (1u << 22) + 1, 0 };
	mk_ranges(t, T_WZ, r, 1);
	ok(run1(m, t) == 0 && status_of(t) == S_IOERR,
	   "%s/%s: write-zeroes over max_write_zeroes_sectors: IOERR", eng, where);
	{
		uint8_t b[16 + 20];

		hdr(b, T_DISCARD, 0);
		memset(b + 16, 0, 20);
		build(t, b, sizeof(b), 1, 3);
		ok(run1(m, t) == 0 && status_of(t) == S_IOERR,
		   "%s/%s: discard payload not a multiple of 16: IOERR", eng, where);
		build(t, b, 16, 1, 3);
		ok(run1(m, t) == 0 && status_of(t) == S_IOERR,
		   "%s/%s: discard without ranges: IOERR", eng, where);
	}
	ok(image_matches(img_path), "%s/%s: rejected requests changed nothing", eng, where);
}

static void test_get_id(struct vshm_devmodel *m, const char *eng)
{
	struct treq *t = &reqs[0];
	uint8_t id[20];

	mk_simple(t, T_GET_ID, 0, 21);
	ok(run1(m, t) == 0 && status_of(t) == S_OK && t->written == 21, "%s: GET_ID", eng);
	read_back(t, id, 0, 20);
	ok(memcmp(id, "serial-0123\0\0\0\0\0\0\0\0\0", 20) == 0,
	   "%s: GET_ID returns the serial, NUL padded", eng);
	mk_simple(t, T_GET_ID, 0, 6);
	ok(run1(m, t) == 0 && status_of(t) == S_OK && t->written == 6,
	   "%s: GET_ID into a 5-byte buffer: truncated", eng);
	read_back(t, id, 0, 5);
	ok(memcmp(id, "seria", 5) == 0, "%s: ... with the first 5 bytes", eng);
}

static void test_rejects(struct vshm_devmodel *m, const char *eng)
{
	struct treq *t = &reqs[0];
	uint8_t d[2048] = { 1 };
	unsigned before;

	mk_read(t, CAPACITY - 1, 1024, 3);
	ok(run1(m, t) == 0 && status_of(t) == S_IOERR && t->written == 1,
	   "%s: read past the end: IOERR, written 1", eng);
	mk_write(t, CAPACITY, d, 512, 3);
	ok(run1(m, t) == 0 && status_of(t) == S_IOERR, "%s: write at capacity: IOERR", eng);
	mk_read(t, 1ull << 63, 512, 3);
	ok(run1(m, t) == 0 && status_of(t) == S_IOERR, "%s: sector 2^63: IOERR", eng);
	mk_read(t, UINT64_MAX, 512, 3);
	ok(run1(m, t) == 0 && status_of(t) == S_IOERR, "%s: sector 2^64-1: IOERR", eng);
	mk_write(t, 0, d, 700, 3);
	ok(run1(m, t) == 0 && status_of(t) == S_IOERR, "%s: write of 700 bytes: IOERR", eng);
	mk_read(t, 0, 513, 3);
	ok(run1(m, t) == 0 && status_of(t) == S_IOERR, "%s: read of 513 bytes: IOERR", eng);
	mk_read(t, 5, 0, 3);
	ok(run1(m, t) == 0 && status_of(t) == S_OK && t->written == 1,
	   "%s: read of 0 bytes: OK", eng);

	/* A read with stray readable bytes after the header. */
	{
		uint8_t h[20];

		hdr(h, T_IN, 0);
		build(t, h, 20, 513, 3);
		ok(run1(m, t) == 0 && status_of(t) == S_IOERR,
		   "%s: read with readable data: IOERR", eng);
		/* A write with extra writable bytes besides the status. */
		hdr(d, T_OUT, 0);
		build(t, d, 16 + 512, 2, 3);
		ok(run1(m, t) == 0 && status_of(t) == S_IOERR,
		   "%s: write with two writable bytes: IOERR", eng);
	}

	/* No writable byte: nowhere to put a status. */
	hdr(d, T_IN, 0);
	build(t, d, 16, 0, 3);
	before = n_complete;
	is(submit(m, t), -EINVAL, "%s: no status byte: -EINVAL", eng);
	ok(n_complete == before && t->done == 0, "%s: ... and not completed by the model", eng);

	/* Header shorter than 16 bytes. */
	build(t, d, 10, 513, 3);
	ok(run1(m, t) == 0 && status_of(t) == S_IOERR && t->written == 1,
	   "%s: 10-byte header: IOERR", eng);
	build(t, d, 0, 1, 3);
	ok(run1(m, t) == 0 && status_of(t) == S_IOERR, "%s: no header at all: IOERR", eng);

	mk_simple(t, 99, 0, 1);
	ok(run1(m, t) == 0 && status_of(t) == S_UNSUPP, "%s: type 99: UNSUPP", eng);
	mk_simple(t, T_SCSI, 0, 100);
	ok(run1(m, t) == 0 && status_of(t) == S_UNSUPP, "%s: SCSI command: UNSUPP", eng);
	mk_simple(t, T_OUT | 0x80000000u, 0, 1);
	ok(run1(m, t) == 0 && status_of(t) == S_UNSUPP, "%s: legacy barrier flag: UNSUPP", eng);

	/* More buffers than seg_max + 2: cannot be described to the kernel. */
	hdr(d, T_IN, 0);
	memset(t, 0, sizeof(*t));
	t->iov[0].base = walloc(16);
	t->iov[0].len = 16;
	memcpy(t->iov[0].base, d, 16);
	for (unsigned i = 1; i <= 129; i++) {
		t->iov[i].base = walloc(4);
		t->iov[i].len = 4;
	}
	t->iov[130].base = walloc(1);
	t->iov[130].len = 1;
	t->r.chain.nout = 1;
	t->r.chain.nin = 130;
	t->r.chain.iov = t->iov;
	ok(run1(m, t) == 0 && status_of(t) == S_IOERR, "%s: 129 data buffers: IOERR", eng);
	ok(image_matches(img_path), "%s: rejected requests changed nothing", eng);
}

/* The header is read once: rewriting it after request() changes nothing. */
static void test_toctou(struct vshm_devmodel *m, const char *eng)
{
	struct treq *t = &reqs[0];
	unsigned target = n_complete + 1;
	uint8_t back[8192];

	mk_read(t, 1000, 8192, 1);
	ok(submit(m, t) == 0, "%s: read submitted", eng);
	/* The driver rewrites the header to "write sector 0". */
	hdr(t->iov[0].base, T_OUT, 0);
	ok(wait_for(m, target) && status_of(t) == S_OK, "%s: ... completes", eng);
	read_back(t, back, 0, sizeof(back));
	ok(memcmp(back, ref + 1000 * 512, sizeof(back)) == 0,
	   "%s: rewritten header ignored: the read returned sector 1000", eng);
	ok(image_matches(img_path), "%s: ... and nothing was written", eng);
}

static void test_writeback(struct vshm_devmodel *m, const char *eng, uint64_t feat)
{
	ok(cfg8(m, 32) == 1, "%s: writeback 1 after FLUSH is negotiated", eng);
	is(m->ops->config_write(m, 32, "\0", 1), 0, "%s: writeback set to 0", eng);
	ok(cfg8(m, 32) == 0, "%s: ... reads back 0", eng);
	is(m->ops->config_write(m, 32, "\x02", 1), -EPERM, "%s: writeback 2 refused", eng);
	is(m->ops->config_write(m, 0, "\0\0\0\0", 4), -EPERM, "%s: capacity is read-only", eng);
	is(m->ops->config_write(m, 32, "\0\0", 2), -EPERM, "%s: 2-byte write at 32 refused", eng);
	ok(scribble(m, 500, 16) && reads_ref(m, 500, 16), "%s: writethrough write", eng);
	ok(scribble(m, 3000, 8), "%s: writethrough write 2", eng);
	is(m->ops->config_write(m, 32, "\x01", 1), 0, "%s: writeback back to 1", eng);
	(void)feat;
}

/* Reset with requests in flight and a flush waiting. */
static void test_reset(struct vshm_devmodel *m, const char *eng, uint64_t feat)
{
	uint8_t *data = malloc(512 * 1024);
	unsigned base = n_complete, n = 0, once = 0, zero_or_ok = 0;
	struct treq *t;

	for (unsigned i = 0; i < 24; i++) {
		t = &reqs[n++];
		if (i % 3 == 0) {
			fill_rand(data, 512 * 1024);
			mk_write(t, (uint64_t)(i % 8) * 1024, data, 512 * 1024, 4);
		} else {
			mk_read(t, (uint64_t)(i % 8) * 1024, 512 * 1024, 4);
		}
		submit(m, t);
		if (i == 10) {
			mk_simple(&reqs[n++], T_FLUSH, 0, 1);
			submit(m, &reqs[n - 1]);
		}
	}
	m->ops->reset(m);
	ok(n_complete - base == n, "%s: reset completed every request (%u of %u)", eng,
	   n_complete - base, n);
	for (unsigned i = 0; i < n; i++) {
		once += reqs[i].done == 1;
		zero_or_ok += reqs[i].written == 0 || status_of(&reqs[i]) == S_OK;
	}
	ok(once == n, "%s: ... each exactly once", eng);
	ok(zero_or_ok == n, "%s: ... with written 0 or a good status", eng);
	if (strcmp(eng, "io_uring") == 0) {
		unsigned zero = 0;

		for (unsigned i = 0; i < n; i++)
			zero += reqs[i].written == 0;
		/* Nothing was polled: every one was in the kernel or waiting. */
		is(zero, n, "%s: requests in flight at reset come back with written 0", eng);
	} else {
		ok(1, "%s: synchronous engine: nothing was in flight at reset", eng);
	}
	base = n_complete;
	m->ops->poll(m);
	usleep(20000);
	m->ops->poll(m);
	ok(n_complete == base, "%s: nothing completes after reset returned", eng);
	ok(cfg8(m, 32) == 1, "%s: writeback back to its default after reset", eng);

	/* The model works again after renegotiation.  The writes above raced: resync ref. */
	is(m->ops->set_features(m, feat), 0, "%s: renegotiated", eng);
	{
		int fd = open(img_path, O_RDONLY);

		ok(fd >= 0 && pread(fd, ref, IMG_SIZE, 0) == IMG_SIZE, "%s: reference resynced", eng);
		if (fd >= 0)
			close(fd);
	}
	ok(scribble(m, 77, 9) && reads_ref(m, 70, 30), "%s: I/O works after reset", eng);
	free(data);
}

/* Host I/O that fails: a read past the end of a shrunk file, a write over RLIMIT_FSIZE. */
static void test_host_errors(const char *eng, int force_pread, uint64_t feat)
{
	struct vshm_devmodel m;
	struct rlimit old, lim;
	char path[64];
	uint8_t d[4096];
	struct treq *t = &reqs[0];

	if (make_image("/tmp", path, sizeof(path), 2u << 20, 0)) {
		ok(0, "%s: scratch image", eng);
		return;
	}
	if (create(&m, path, 0, force_pread, NULL)) {
		ok(0, "%s: scratch model", eng);
		unlink(path);
		return;
	}
	m.ops->set_features(&m, feat);
	ok(truncate(path, 1u << 20) == 0, "%s: image shrunk to 1 MiB under a 2 MiB disk", eng);
	mk_read(t, 3000, 4096, 3);
	ok(run1(&m, t) == 0 && status_of(t) == S_IOERR, "%s: read past end of file: IOERR", eng);
	mk_read(t, 2044, 4096, 3);
	ok(run1(&m, t) == 0 && status_of(t) == S_IOERR,
	   "%s: read straddling end of file: IOERR", eng);
	mk_read(t, 100, 4096, 3);
	ok(run1(&m, t) == 0 && status_of(t) == S_OK, "%s: read inside the file still OK", eng);

	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = 1u << 20;
	signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
		memset(d, 0x5a, sizeof(d));
		mk_write(t, 3000, d, sizeof(d), 3);
		ok(run1(&m, t) == 0 && status_of(t) == S_IOERR,
		   "%s: write beyond RLIMIT_FSIZE (EFBIG): IOERR", eng);
		mk_write(t, 10, d, sizeof(d), 3);
		ok(run1(&m, t) == 0 && status_of(t) == S_OK, "%s: write inside the limit: OK", eng);
		setrlimit(RLIMIT_FSIZE, &old);
	} else {
		ok(1, "# SKIP setrlimit(RLIMIT_FSIZE) failed");
		ok(1, "# SKIP setrlimit(RLIMIT_FSIZE) failed");
	}
	m.ops->destroy(&m);
	unlink(path);
}

static void test_read_only(const char *eng, int force_pread)
{
	struct vshm_devmodel m;
	struct treq *t = &reqs[0];
	uint8_t d[1024];
	struct range r = { 0, 8, 0 };

	if (create(&m, img_path, 1, force_pread, NULL)) {
		ok(0, "%s: read-only model", eng);
		return;
	}
	ok((m.ops->features(&m) & F_RO) && !(m.ops->features(&m) & (F_DISCARD | F_WZ)),
	   "%s/ro: RO offered, DISCARD and WRITE_ZEROES not", eng);
	ok(cfg32(&m, 36) == 0 && cfg32(&m, 48) == 0, "%s/ro: no discard limits in config", eng);
	is(m.ops->set_features(&m, m.ops->features(&m)), 0, "%s/ro: negotiated", eng);
	memset(d, 0x33, sizeof(d));
	mk_write(t, 8, d, sizeof(d), 3);
	ok(run1(&m, t) == 0 && status_of(t) == S_IOERR, "%s/ro: write: IOERR", eng);
	mk_ranges(t, T_DISCARD, &r, 1);
	ok(run1(&m, t) == 0 && status_of(t) == S_UNSUPP, "%s/ro: discard: UNSUPP", eng);
	mk_ranges(t, T_WZ, &r, 1);
	ok(run1(&m, t) == 0 && status_of(t) == S_UNSUPP, "%s/ro: write-zeroes: UNSUPP", eng);
	ok(reads_ref(&m, 0, 64), "%s/ro: reads work", eng);
	mk_simple(t, T_FLUSH, 0, 1);
	ok(run1(&m, t) == 0 && status_of(t) == S_OK, "%s/ro: flush OK", eng);
	ok(image_matches(img_path), "%s/ro: image unchanged", eng);
	m.ops->destroy(&m);
}

/* A ring of 4 entries under 64 requests: the backlog keeps order and loses nothing. */
static void test_small_ring(const char *eng, int force_pread, uint64_t feat)
{
	struct vshm_blk_opts o = { .path = img_path, .force_pread = force_pread, .queue_depth = 4 };
	struct vshm_devmodel m;
	uint8_t *data = malloc(64 * 1024), *back = malloc(64 * 1024);
	unsigned base, bad = 0, n = 64;
	char err[256];
	int fd;

	if (vshm_blk_create(&m, &host, &o, err, sizeof(err))) {
		ok(0, "%s/depth 4: create: %s", eng, err);
		free(data);
		free(back);
		return;
	}
	m.ops->set_features(&m, feat);
	fd = open(img_path, O_RDONLY);
	if (fd < 0 || pread(fd, ref, IMG_SIZE, 0) != IMG_SIZE)
		bad++;
	if (fd >= 0)
		close(fd);
	/* Even slots written, odd slots read: none overlaps another. */
	base = n_complete;
	for (unsigned i = 0; i < n; i++) {
		uint64_t sector = (uint64_t)i * 256;

		if (i % 2 == 0) {
			fill_rand(data, 64 * 1024);
			mk_write(&reqs[i], sector, data, 64 * 1024, 6);
			memcpy(ref + sector * 512, data, 64 * 1024);
		} else {
			mk_read(&reqs[i], sector, 64 * 1024, 6);
		}
		if (submit(&m, &reqs[i]))
			bad++;
		if (i == 40) {		/* a flush in the middle of the backlog */
			mk_simple(&reqs[n], T_FLUSH, 0, 1);
			submit(&m, &reqs[n]);
		}
	}
	ok(wait_for(&m, base + n + 1), "%s/depth 4: 64 requests and a flush complete", eng);
	for (unsigned i = 0; i <= n; i++) {
		if (reqs[i].done != 1 || status_of(&reqs[i]) != S_OK) {
			bad++;
			continue;
		}
		if (i < n && i % 2) {
			read_back(&reqs[i], back, 0, 64 * 1024);
			if (memcmp(back, ref + (uint64_t)i * 256 * 512, 64 * 1024))
				bad++;
		}
	}
	for (unsigned i = 0; i <= 40; i += 2)
		if (reqs[i].order > reqs[n].order)
			bad++;
	is(bad, 0, "%s/depth 4: all OK, reads right, flush after the writes before it", eng);
	ok(image_matches(img_path), "%s/depth 4: image equals the reference", eng);

	/* Reset with most of them still in the backlog. */
	base = n_complete;
	for (unsigned i = 0; i < 32; i++) {
		mk_read(&reqs[i], (uint64_t)i * 64, 32 * 1024, 2);
		submit(&m, &reqs[i]);
	}
	m.ops->reset(&m);
	bad = 0;
	for (unsigned i = 0; i < 32; i++)
		bad += reqs[i].done != 1;
	ok(n_complete - base == 32 && bad == 0,
	   "%s/depth 4: reset gives back backlogged and in-flight requests once", eng);
	m.ops->destroy(&m);
	free(data);
	free(back);
}

/*
 * 4 GiB of data cannot be reported in a 32-bit used length: IOERR, no I/O.
 * 128 buffers of 32 MiB all naming the same window range, on a sparse
 * 8 GiB image so the sectors are in range.
 */
static void test_huge(const char *eng, int force_pread)
{
	struct vshm_devmodel m;
	struct treq *t = &reqs[0];
	uint8_t *region = win.base + win.drv_lo;
	char path[64];
	uint64_t t0;
	int fd;

	snprintf(path, sizeof(path), "/tmp/vshm-blk-huge-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0 || ftruncate(fd, 8ull << 30) || create(&m, path, 0, force_pread, NULL)) {
		ok(0, "%s: sparse 8 GiB image", eng);
		if (fd >= 0)
			close(fd);
		unlink(path);
		return;
	}
	close(fd);
	memset(t, 0, sizeof(*t));
	t->iov[0].base = walloc(16);
	t->iov[0].len = 16;
	hdr(t->iov[0].base, T_IN, 0);
	for (unsigned i = 1; i <= 128; i++) {
		t->iov[i].base = region;
		t->iov[i].len = 32u << 20;
	}
	t->iov[129].base = walloc(1);
	t->iov[129].len = 1;
	t->r.chain.nout = 1;
	t->r.chain.nin = 129;
	t->r.chain.iov = t->iov;
	t0 = now_ms();
	ok(run1(&m, t) == 0 && status_of(t) == S_IOERR && t->written == 1 && now_ms() - t0 < 1000,
	   "%s: a 4 GiB read: IOERR at once", eng);
	m.ops->destroy(&m);
	unlink(path);
}

/* The suite on one engine. */
static void suite(int force_pread)
{
	const char *eng = force_pread ? "pread" : "io_uring";
	struct vshm_devmodel m;
	uint64_t feat;

	if (make_image("/tmp", img_path, sizeof(img_path), IMG_SIZE, 1) ||
	    create(&m, img_path, 0, force_pread, "serial-0123")) {
		ok(0, "%s: image and model", eng);
		return;
	}
	if (strcmp(vshm_blk_engine(&m), eng)) {
		diag("asked for %s, got %s (io_uring unavailable?)", eng, vshm_blk_engine(&m));
		ok(force_pread == 0, "%s: engine", eng);
		eng = vshm_blk_engine(&m);
	} else {
		ok(1, "%s: engine is %s", eng, eng);
	}
	ok(force_pread || m.ops->event_fd(&m) >= 0, "%s: event fd present iff io_uring", eng);
	test_shape(&m, eng);

	/* Before negotiation, optional commands are unsupported. */
	{
		struct range r = { 0, 1, 0 };

		mk_ranges(&reqs[0], T_DISCARD, &r, 1);
		ok(run1(&m, &reqs[0]) == 0 && status_of(&reqs[0]) == S_UNSUPP,
		   "%s: discard before negotiation: UNSUPP", eng);
		mk_simple(&reqs[0], T_FLUSH, 0, 1);
		ok(run1(&m, &reqs[0]) == 0 && status_of(&reqs[0]) == S_UNSUPP,
		   "%s: flush before negotiation: UNSUPP", eng);
	}
	feat = m.ops->features(&m);
	is(m.ops->set_features(&m, feat), 0, "%s: every offered feature accepted", eng);
	is(m.ops->start(&m), 0, "%s: start", eng);

	test_roundtrip(&m, eng);
	test_odd_layouts(&m, eng);
	test_flush(&m, eng);
	test_discard_wz(&m, eng, "tmp");
	test_get_id(&m, eng);
	test_rejects(&m, eng);
	test_toctou(&m, eng);
	test_writeback(&m, eng, feat);
	test_reset(&m, eng, feat);
	ok(image_matches(img_path), "%s: image equals the reference at the end", eng);
	m.ops->destroy(&m);
	test_small_ring(eng, force_pread, feat);
	test_huge(eng, force_pread);
	test_read_only(eng, force_pread);
	unlink(img_path);

	/* tmpfs has no FALLOC_FL_ZERO_RANGE: the fallbacks run there. */
	{
		struct statfs sf;

		if (statfs("/dev/shm", &sf) == 0 &&
		    make_image("/dev/shm", img_path, sizeof(img_path), IMG_SIZE, 1) == 0) {
			if (create(&m, img_path, 0, force_pread, NULL) == 0) {
				m.ops->set_features(&m, feat);
				test_discard_wz(&m, eng, "shm");
				mk_simple(&reqs[0], T_GET_ID, 0, 21);
				uint8_t id[20];

				ok(run1(&m, &reqs[0]) == 0 && reqs[0].written == 21,
				   "%s: GET_ID without a configured serial", eng);
				read_back(&reqs[0], id, 0, 20);
				int hex = 1;

				for (int i = 4; i < 20; i++)
					hex &= (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f');
				ok(memcmp(id, "vshm", 4) == 0 && hex,
				   "%s: default serial vshm + 16 hex digits", eng);
				m.ops->destroy(&m);
			}
			unlink(img_path);
		}
	}
	test_host_errors(eng, force_pread, feat);
}

/* ---- creation errors ----------------------------------------------------- */

static int create_err(const char *path, int ro, const char *serial, char *err, size_t n)
{
	struct vshm_devmodel m;
	struct vshm_blk_opts o = { .path = path, .read_only = ro, .serial = serial,
				   .force_pread = 1 };
	int rc = vshm_blk_create(&m, &host, &o, err, n);

	if (rc == 0)
		m.ops->destroy(&m);
	else
		diag("%s", err);
	return rc;
}

static void test_create_errors(void)
{
	char err[256], dir[64], path[96];
	int fd, rc;

	rc = create_err("/nonexistent-vshm/disk.img", 0, NULL, err, sizeof(err));
	ok(rc == -ENOENT && strstr(err, "/nonexistent-vshm/disk.img") &&
	   strstr(err, "No such file") && strstr(err, "truncate -s"),
	   "missing image: -ENOENT naming the file and how to create it");

	snprintf(dir, sizeof(dir), "/tmp/vshm-blk-dir-XXXXXX");
	if (!mkdtemp(dir)) {
		ok(0, "mkdtemp");
		return;
	}
	rc = create_err(dir, 0, NULL, err, sizeof(err));
	ok(rc == -EISDIR && strstr(err, "directory"), "directory: -EISDIR, says directory");
	rc = create_err(dir, 1, NULL, err, sizeof(err));
	ok(rc == -EISDIR && strstr(err, "directory"), "directory read-only: -EISDIR");

	snprintf(path, sizeof(path), "%s/empty.img", dir);
	fd = open(path, O_CREAT | O_RDWR, 0644);
	close(fd);
	rc = create_err(path, 0, NULL, err, sizeof(err));
	ok(rc == -EINVAL && strstr(err, "empty") && strstr(err, "truncate -s"),
	   "empty image: -EINVAL, says empty and how to size it");
	ok(truncate(path, 1000) == 0, "image resized to 1000 bytes");
	rc = create_err(path, 0, NULL, err, sizeof(err));
	ok(rc == -EINVAL && strstr(err, "multiple of 512") && strstr(err, "1024"),
	   "size 1000: -EINVAL, not a multiple of 512, suggests 1024");
	ok(truncate(path, 4096) == 0, "image resized to 4096 bytes");
	rc = create_err(path, 0, "123456789012345678901", err, sizeof(err));
	ok(rc == -EINVAL && strstr(err, "serial"), "21-byte serial: -EINVAL");
	rc = create_err(path, 0, "12345678901234567890", err, sizeof(err));
	is(rc, 0, "20-byte serial accepted");
	{
		struct vshm_devmodel a;
		struct vshm_blk_opts o = { .path = path, .force_pread = 1 };

		ok(vshm_blk_create(&a, &host, &o, err, sizeof(err)) == 0, "first writer opens");
		rc = create_err(path, 0, NULL, err, sizeof(err));
		ok(rc == -EBUSY && strstr(err, "another process"),
		   "second writer: -EBUSY, image in use");
		rc = create_err(path, 1, NULL, err, sizeof(err));
		is(rc, -EBUSY, "reader while a writer has it: -EBUSY");
		a.ops->destroy(&a);
		rc = create_err(path, 0, NULL, err, sizeof(err));
		is(rc, 0, "writer after the first one closed");
	}
	rc = vshm_blk_create(NULL, &host, NULL, err, sizeof(err));
	is(rc, -EINVAL, "no options: -EINVAL");

	chmod(path, 0400);
	if (geteuid() != 0) {
		rc = create_err(path, 0, NULL, err, sizeof(err));
		ok(rc == -EACCES && strstr(err, "permission denied") && strstr(err, "read-only"),
		   "mode 0400 opened read-write: -EACCES, suggests read-only");
		rc = create_err(path, 1, NULL, err, sizeof(err));
		is(rc, 0, "mode 0400 opened read-only");
	} else {
		ok(1, "# SKIP running as root: permissions are not enforced");
		ok(1, "# SKIP running as root: permissions are not enforced");
	}
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	struct vshm_window_opts wo = { .size = WIN_SIZE, .vectors = 1, .name = "test-blk" };

	if (vshm_window_create(&win, &wo)) {
		ok(0, "window");
		return tap_done();
	}
	reqs = calloc(NREQ, sizeof(*reqs));
	ref = malloc(IMG_SIZE);
	if (!reqs || !ref)
		return 1;
	test_create_errors();
	suite(0);
	suite(1);
	is(n_double, 0, "no request was ever completed twice");
	is(n_needs_reset, 0, "no needs_reset");
	free(reqs);
	free(ref);
	vshm_window_unmap(&win);
	return tap_done();
}
