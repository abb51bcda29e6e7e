// SPDX-License-Identifier: MIT
/*
 * blk I/O straight from zero-copy heap buffers: a 64 MiB buffer (sixteen
 * times the whole bounce pool) written and read back in one request each,
 * nothing bounced; checked through the device and on the host's image
 * file.  Fragmented buffers beyond the device's segment limit are refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vshm/drivers.h>
#include <vshm/drvrt.h>
#include <vshm/heap.h>
#include <vshm/mbox.h>
#include "echo_model.h"
#include "tap.h"

#define BIG (64u << 20)

struct done {
	int n;
	int status;
};

static void done_cb(void *arg, int status)
{
	struct done *d = arg;

	d->n++;
	if (status)
		d->status = status;
}

static int wait_done(struct vshm_blkdrv *b, struct done *d, int want)
{
	for (int i = 0; i < 100 && d->n < want; i++)
		if (vshm_blkdrv_wait(b, 100000000ll) < 0)
			return -EIO;
	return d->n == want ? d->status : -ETIMEDOUT;
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = seed ^ (i * 0x9e3779b97f4a7c15ull);

		memcpy(p + i, &v, 8);
	}
}

int main(void)
{
	struct vshm_window_opts o = { .size = 512u << 20, .vectors = 4, .name = "zerocopy" };
	static struct devside ds;
	struct vshm_window dw;
	struct vshm_db_eventfd ddb;
	struct vshm_blk_opts bo = { 0 };
	struct vshm_drv *drv;
	struct vshm_blkdrv *b;
	struct vshm_blkdrv_info bi;
	struct vshm_heap heap;
	struct vshm_heap_buf wbuf, rbuf;
	struct vshm_sg sg[128];
	char img[] = "/tmp/vshm-zc.XXXXXX", err[256];
	uint8_t *expect, *got;
	uint64_t heap_off;
	pthread_t t;
	int fd, n, rc;

	fd = mkstemp(img);
	if (fd < 0 || ftruncate(fd, 128u << 20) ||
	    vshm_window_create(&dw, &o) || vshm_window_map(&ds.w, dw.fd) ||
	    vshm_doorbell_eventfd_pair(&ddb, &ds.db, 4)) {
		ok(0, "setup");
		return tap_done();
	}
	vshm_mbox_format(&dw);
	vshm_dev_rt_create(&ds.rt, &ds.w, 1);
	bo.path = img;
	ds.m.host = vshm_dev_rt_next_host(ds.rt);
	rc = vshm_blk_create(&ds.m, ds.m.host, &bo, err, sizeof(err));
	if (!ok(rc == 0, "blk model on a 128 MiB image (%s)", rc ? err : "ok"))
		return tap_done();
	vshm_dev_rt_add(ds.rt, &ds.m);
	vshm_dev_rt_set_doorbell(ds.rt, &ds.db.db);
	pthread_create(&t, NULL, device_loop, &ds);

	rc = vshm_drv_create(&drv, &dw, 0, &ddb.db, NULL);
	if (!rc)
		rc = vshm_blkdrv_open(drv, 0, 32, &b);
	if (!ok(rc == 0, "driver session and blk device"))
		goto out;
	vshm_blkdrv_info(b, &bi);
	rc = vshm_drv_alloc(drv, 160u << 20, 4096, &heap_off);
	ok(rc == 0 && vshm_heap_init(&heap, &dw, heap_off, 160u << 20) == 0, "a 160 MiB heap in the window");

	expect = malloc(BIG);
	got = malloc(BIG);
	fill(expect, BIG, 0x1234);
	rc = vshm_heap_alloc_max(&heap, BIG, bi.seg_max, &wbuf);
	ok(rc >= 1, "allocate a 64 MiB heap buffer (%d extent(s))", rc);
	/* The producer writes straight into the window, extent by extent. */
	{
		void *p;
		size_t len, off = 0;

		for (unsigned i = 0; !vshm_heap_extent(&heap, &wbuf, i, &p, &len); i++) {
			memcpy(p, expect + off, len);
			off += len;
		}
		is(off, BIG, "filled in place through its extents");
	}
	n = vshm_heap_sg(&wbuf, sg, 128);
	ok(n >= 1 && n <= (int)bi.seg_max, "it is %d segment(s), within seg_max %u", n, bi.seg_max);
	{
		struct vshm_bounce_stats before, after;
		struct done d = { 0, 0 };

		vshm_bounce_stats(vshm_drv_dev_pool(vshm_blkdrv_dev(b)), &before);
		is(vshm_blkdrv_submit_sg(b, VSHM_BLK_OP_WRITE, 0, sg, (unsigned)n, done_cb, &d), 0,
		   "one 64 MiB write straight from the heap");
		is(wait_done(b, &d, 1), 0, "completes");
		vshm_bounce_stats(vshm_drv_dev_pool(vshm_blkdrv_dev(b)), &after);
		is(after.maps - before.maps, 0, "nothing went through the bounce pool");
	}
	{
		uint8_t *onhost = malloc(BIG);

		ok(onhost && pread(fd, onhost, BIG, 0) == (ssize_t)BIG && !memcmp(onhost, expect, BIG),
		   "the image file on the host holds exactly those 64 MiB");
		free(onhost);
	}
	rc = vshm_heap_alloc_max(&heap, BIG, bi.seg_max, &rbuf);
	ok(rc >= 1, "allocate a second 64 MiB buffer (%d extent(s))", rc);
	n = vshm_heap_sg(&rbuf, sg, 128);
	{
		struct done d = { 0, 0 };

		is(vshm_blkdrv_submit_sg(b, VSHM_BLK_OP_READ, 0, sg, (unsigned)n, done_cb, &d), 0,
		   "one 64 MiB read straight into the heap");
		is(wait_done(b, &d, 1), 0, "completes");
	}
	ok(vshm_heap_read(&heap, &rbuf, 0, got, BIG) == 0 && !memcmp(got, expect, BIG),
	   "the bytes read back match");
	{
		struct done d = { 0, 0 };

		is(vshm_blkdrv_submit(b, VSHM_BLK_OP_WRITE, 0, expect, BIG, done_cb, &d), -EINVAL,
		   "the same 64 MiB through the bounce pool is refused (the pool is 4 MiB)");
	}
	vshm_heap_free(&heap, &wbuf);
	vshm_heap_free(&heap, &rbuf);

	/* A buffer fragmented past the device's segment limit: a small heap of
	 * 256 pages, every other one still in use. */
	{
		struct vshm_heap small;
		struct vshm_heap_buf pages[256], frag;
		struct vshm_sg many[256];
		struct done d = { 0, 0 };
		uint64_t off;
		int k = 0;

		ok(vshm_drv_alloc(drv, 256 * 4096, 4096, &off) == 0 &&
		   vshm_heap_init(&small, &dw, off, 256 * 4096) == 0, "a 256-page heap");
		while (k < 256 && vshm_heap_alloc(&small, 4096, &pages[k]) == 1)
			k++;
		is(k, 256, "filled with one-page buffers");
		for (int i = 0; i < k; i += 2)
			vshm_heap_free(&small, &pages[i]);
		is(vshm_heap_alloc_max(&small, 128 * 4096, bi.seg_max, &frag), -E2BIG,
		   "128 pages in 128 holes exceed seg_max %u: the heap refuses (-E2BIG)", bi.seg_max);
		rc = vshm_heap_alloc_max(&small, 128 * 4096, VSHM_HEAP_NO_LIMIT, &frag);
		is(rc, 128, "without a limit the buffer has 128 extents");
		n = vshm_heap_sg(&frag, many, 256);
		is(vshm_blkdrv_submit_sg(b, VSHM_BLK_OP_WRITE, 0, many, (unsigned)n, done_cb, &d), -EINVAL,
		   "and the driver refuses to post it");
		vshm_heap_free(&small, &frag);
		for (int i = 1; i < k; i += 2)
			vshm_heap_free(&small, &pages[i]);
		vshm_heap_fini(&small);
	}
	free(expect);
	free(got);
	vshm_heap_fini(&heap);
	vshm_blkdrv_close(b);
	vshm_drv_destroy(drv);
out:
	__atomic_store_n(&ds.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	vshm_dev_rt_destroy(ds.rt);
	ds.m.ops->destroy(&ds.m);
	vshm_doorbell_eventfd_fini(&ddb);
	vshm_doorbell_eventfd_fini(&ds.db);
	vshm_window_unmap(&ds.w);
	vshm_window_unmap(&dw);
	close(fd);
	unlink(img);
	return tap_done();
}
