// SPDX-License-Identifier: MIT
/*
 * Resource limits against a misbehaving peer.
 *
 * One device process (a runtime thread on its own mapping) serves two echo
 * devices.  The driver misbehaves on device 0 and behaves on device 1;
 * device 1 must keep being served, and the device side must not grow:
 *   1. maximal chains on device 0, never kicked;
 *   2. a doorbell storm on device 0's vector;
 *   3. device 0's queue broken on purpose (only device 0 needs a reset);
 *   4. the mailbox flooded and its answers never read.
 * And the other way round, the driver stays bounded against a device that
 *   5. changes its config generation on every read;
 *   6. never answers.
 * (The flood runs last: it leaves the driver's mailbox indices behind.)
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <vshm/devrt.h>
#include <vshm/drvrt.h>
#include <vshm/mbox.h>
#include "barrier.h"
#include "echo_model.h"
#include "tap.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long rss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

static int nfds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n++;
	if (d)
		closedir(d);
	return n;
}

/* Echo @n requests of @len bytes through @vq of @dev, one at a time. */
static int echo_round_trips(struct vshm_drv_dev *dev, struct vshm_drv_vq *vq, int n, size_t len)
{
	struct vshm_bounce_pool *pool = vshm_drv_dev_pool(dev);
	uint8_t src[512], dst[512];
	int done = 0;

	for (int i = 0; i < n; i++) {
		struct vshm_bounce_map mi, mo;
		struct vshm_sg sg[4];
		void *ck;
		uint32_t got = 0;
		int a, b, rc;
		int64_t deadline = now_ms() + 2000;

		memset(src, i, len);
		a = vshm_bounce_map(pool, src, len, VSHM_DMA_TO_DEVICE, &mi, sg, 2);
		b = vshm_bounce_map(pool, dst, len, VSHM_DMA_FROM_DEVICE, &mo, sg + a, 2);
		if (a < 1 || b < 1 || vshm_drv_vq_add(vq, sg, (unsigned)a, (unsigned)b, &mi) ||
		    vshm_drv_vq_kick(vq) < 0)
			break;
		while ((rc = vshm_drv_vq_harvest(vq, &ck, &got)) == 0 && now_ms() < deadline)
			if (vshm_drv_vq_enable_cb(vq) == 0)
				vshm_drv_dev_wait(dev, 0, 50000000ll);
		vshm_bounce_unmap(pool, &mi, 0);
		vshm_bounce_unmap(pool, &mo, got);
		if (rc != 1 || got != len || memcmp(src, dst, len))
			break;
		done++;
	}
	return done;
}

static struct devside ds;
static struct vshm_db_eventfd ddb;	/* the driver's doorbells: ring the device */

static void *storm(void *arg)
{
	int *stop = arg;
	unsigned vec = vshm_vq_vector(ds.w.vectors, 0, 0);

	/* rings device 0's queue vector as fast as it can */
	while (!__atomic_load_n(stop, __ATOMIC_ACQUIRE))
		vshm_doorbell_ring(&ddb.db, vec);
	return NULL;
}

int main(void)
{
	struct vshm_window_opts o = { .size = 32u << 20, .vectors = 4, .name = "limits" };
	struct vshm_window dw;
	struct vshm_drv *drv;
	struct vshm_drv_dev *d0, *d1;
	struct vshm_drv_vq *q0, *q1;
	struct vshm_drv_opts dopt = { .call_timeout_ns = 300000000ll, .attach_timeout_ns = 2000000000ll };
	pthread_t t;
	long rss0;
	int fds0;

	if (vshm_window_create(&dw, &o) || vshm_window_map(&ds.w, dw.fd) ||
	    vshm_doorbell_eventfd_pair(&ddb, &ds.db, 4)) {
		ok(0, "setup");
		return tap_done();
	}
	vshm_mbox_format(&dw);
	vshm_dev_rt_create(&ds.rt, &ds.w, 1);
	ds.m.ops = &echo_ops;
	ds.m.priv = &ds.echo;
	ds.m.host = vshm_dev_rt_next_host(ds.rt);
	vshm_dev_rt_add(ds.rt, &ds.m);
	ds.m2.ops = &echo_ops;
	ds.m2.priv = &ds.echo2;
	ds.m2.host = vshm_dev_rt_next_host(ds.rt);
	vshm_dev_rt_add(ds.rt, &ds.m2);
	vshm_dev_rt_set_doorbell(ds.rt, &ds.db.db);
	pthread_create(&t, NULL, device_loop, &ds);

	if (vshm_drv_create(&drv, &dw, 0, &ddb.db, &dopt) ||
	    vshm_drv_dev_init(drv, 0, ECHO_ID, 0, &d0) || vshm_drv_dev_init(drv, 1, ECHO_ID, 0, &d1) ||
	    vshm_drv_dev_setup_vq(d0, 0, 128, 0, &q0) || vshm_drv_dev_setup_vq(d1, 0, 64, 0, &q1) ||
	    vshm_drv_dev_ready(d0) || vshm_drv_dev_ready(d1)) {
		ok(0, "two devices set up");
		goto out;
	}
	ok(1, "two devices set up");
	is(echo_round_trips(d1, q1, 100, 256), 100, "baseline: device 1 echoes");
	rss0 = rss_kib();
	fds0 = nfds();

	/* 1. Maximal chains on device 0, never kicked. */
	{
		struct vshm_sg sg[16];
		uint64_t base;
		int added = 0;

		vshm_drv_alloc(drv, 16 * 65536, 4096, &base);
		for (int k = 0; k < 16; k++) {
			sg[k].off = base + (uint64_t)k * 65536;
			sg[k].len = 65536;
			sg[k].flags = 0;
		}
		/* 8 chains of 16 x 64 KiB (the device's segment limit), no kick */
		for (int i = 0; i < 8; i++)
			if (vshm_drv_vq_add_ex(q0, sg, 8, 8, &added, VSHM_ADD_NO_INDIRECT) == 0)
				added++;
		vshm_drv_vq_publish(q0);
		is(added, 8, "1: device 0 gets 8 maximal chains, never kicked");
		is(echo_round_trips(d1, q1, 500, 256), 500, "1: device 1 is still served");
	}

	/* 2. A doorbell storm on device 0's vector. */
	{
		int stop = 0, done;
		pthread_t st;
		int64_t t0 = now_ms();

		pthread_create(&st, NULL, storm, &stop);
		done = echo_round_trips(d1, q1, 500, 256);
		__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
		pthread_join(st, NULL);
		is(done, 500, "2: device 1 is served through a doorbell storm (%lld ms)",
		   (long long)(now_ms() - t0));
	}

	/* 3. Device 0's queue broken on purpose: only device 0 needs a reset. */
	{
		uint32_t status = 0;
		int64_t t0 = now_ms();

		/* the driver rewrites its avail index far ahead: a protocol violation */
		{
			struct vshm_msg req, resp;

			vshm_msg_init_req(&req, VSHM_MSG_GET_VQUEUE, 0);
			req.u.get_vq.index = 0;
			if (vshm_drv_call(drv, &req, &resp) == 0) {
				struct vshm_vring_avail *a = (void *)(dw.base + resp.u.get_vq.driver_addr);

				vshm_store_release(&a->idx, (uint16_t)(a->idx + 1000));
			}
		}
		while (now_ms() - t0 < 2000 && vshm_drv_dev_status(d0, &status) == 0 &&
		       !(status & VSHM_MSG_STATUS_NEEDS_RESET))
			poll(NULL, 0, 5);
		ok(status & VSHM_MSG_STATUS_NEEDS_RESET, "3: device 0 reports DEVICE_NEEDS_RESET");
		is(vshm_drv_dev_status(d1, &status), 0, "3: device 1 answers");
		ok(!(status & VSHM_MSG_STATUS_NEEDS_RESET), "3: device 1 is not affected");
		is(echo_round_trips(d1, q1, 200, 256), 200, "3: and still served");
	}

	/* 5. A device that changes its config generation on every read. */
	{
		uint8_t cfg[300];
		int64_t t0 = now_ms();

		__atomic_store_n(&ds.echo2.flap, 1, __ATOMIC_RELAXED);
		is(vshm_drv_dev_config_read(d1, 0, cfg, 300), -EAGAIN,
		   "5: a two-message config read against a flapping generation gives up");
		ok(now_ms() - t0 < 3000, "5: after a bounded number of tries (%lld ms)", (long long)(now_ms() - t0));
		__atomic_store_n(&ds.echo2.flap, 0, __ATOMIC_RELAXED);
		is(vshm_drv_dev_config_read(d1, 0, cfg, 300), 0, "5: and reads fine once it stops");
	}

	/* 6. A device that never answers: every wait is bounded. */
	{
		uint32_t status;
		int64_t t0 = now_ms();
		int rc;

		__atomic_store_n(&ds.pause, 1, __ATOMIC_RELEASE);
		while (!__atomic_load_n(&ds.paused, __ATOMIC_ACQUIRE) && now_ms() - t0 < 2000)
			poll(NULL, 0, 1);
		t0 = now_ms();
		rc = vshm_drv_dev_status(d1, &status);
		ok(rc == -ETIMEDOUT || rc == -EIO, "6: a call to a silent device fails (%d)", rc);
		ok(now_ms() - t0 < 3000, "6: within its bound (%lld ms)", (long long)(now_ms() - t0));
		__atomic_store_n(&ds.pause, 0, __ATOMIC_RELEASE);
	}
	/* 4. The mailbox flooded, its answers never read. */
	{
		struct vshm_mbox_ring *d2v = (void *)(dw.base + VSHM_MBOX_OFF);
		uint32_t prod = vshm_load_acquire(&d2v->prod);
		int64_t t0 = now_ms();
		int sent = 0;

		/* 32 GET_DEVICE_INFO requests at a time, again and again, for 300 ms */
		while (now_ms() - t0 < 300) {
			uint32_t cons = vshm_load_acquire(&d2v->cons);

			while (prod - cons < VSHM_MBOX_SLOTS) {
				struct vshm_mbox_slot *sl = (void *)((uint8_t *)d2v + VSHM_MBOX_SLOTS_OFF +
							(prod % VSHM_MBOX_SLOTS) * VSHM_MBOX_SLOT_SIZE);
				uint8_t m[8] = { 0, VSHM_MSG_GET_DEVICE_INFO, 1, 0, 0, 0, 8, 0 };

				memcpy(sl->msg, m, 8);
				sl->len = 8;
				vshm_store_release(&d2v->prod, ++prod);
				sent++;
			}
			poll(NULL, 0, 1);
		}
		ok(sent >= 32, "4: the driver flooded the mailbox (%d requests)", sent);
		ok(sent <= 64 + 32, "4: and the device stopped taking requests it could not answer (%d)", sent);
		is(echo_round_trips(d1, q1, 200, 256), 200, "4: device 1's queue is still served");
	}
	{
		long rss1 = rss_kib();
		int fds1 = nfds();

		ok(rss1 - rss0 < 8192, "the device side did not grow (RSS %ld -> %ld KiB)", rss0, rss1);
		is(fds1, fds0, "no file descriptors leaked");
	}

	vshm_drv_dev_destroy(d0);
	vshm_drv_dev_destroy(d1);
	vshm_drv_destroy(drv);
out:
	__atomic_store_n(&ds.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	vshm_dev_rt_destroy(ds.rt);
	vshm_doorbell_eventfd_fini(&ddb);
	vshm_doorbell_eventfd_fini(&ds.db);
	vshm_window_unmap(&ds.w);
	vshm_window_unmap(&dw);
	return tap_done();
}
