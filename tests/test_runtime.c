// SPDX-License-Identifier: MIT
/*
 * Device and driver runtimes over one window, in one process: the device
 * runtime serves an echo model from its own thread and mapping; the driver
 * runtime discovers it, negotiates, sets a queue up, moves data through the
 * bounce pool, and then the sessions end both ways (driver leaves, device
 * dies) with the bounds the runtimes promise.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vshm/devrt.h>
#include <vshm/drvrt.h>
#include <vshm/mbox.h>
#include <vshm/session.h>
#include "tap.h"

#include "echo_model.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(void)
{
	struct vshm_window_opts o = { .size = 16u << 20, .vectors = 2, .name = "rt-test" };
	static struct devside ds;
	struct vshm_window dw;
	struct vshm_db_eventfd ddb;
	struct vshm_drv *drv;
	struct vshm_drv_dev *dev;
	struct vshm_drv_vq *vq;
	struct vshm_drv_opts dopt = { .call_timeout_ns = 300000000ll, .attach_timeout_ns = 2000000000ll };
	pthread_t t;
	uint16_t nums[8];
	uint8_t cfg[300];
	int rc, n;

	if (vshm_window_create(&dw, &o) || vshm_window_map(&ds.w, dw.fd) ||
	    vshm_doorbell_eventfd_pair(&ddb, &ds.db, 2)) {
		ok(0, "setup");
		return tap_done();
	}
	vshm_mbox_format(&dw);
	is(vshm_dev_rt_create(&ds.rt, &ds.w, 1), 0, "device runtime claims the device role");
	{
		struct vshm_dev_rt *other;
		is(vshm_dev_rt_create(&other, &ds.w, 2), -EBUSY, "a second device is refused");
	}
	ds.m.ops = &echo_ops;
	ds.m.priv = &ds.echo;
	ds.m.host = vshm_dev_rt_next_host(ds.rt);
	is(vshm_dev_rt_add(ds.rt, &ds.m), 0, "echo model is device 0");
	vshm_dev_rt_set_doorbell(ds.rt, &ds.db.db);
	pthread_create(&t, NULL, device_loop, &ds);

	rc = vshm_drv_create(&drv, &dw, 0, &ddb.db, &dopt);
	is(rc, 0, "driver enters a session");
	if (rc)
		goto out;
	n = vshm_drv_get_devices(drv, nums, 8);
	ok(n == 1 && nums[0] == 0, "GET_DEVICES finds device 0 (%d)", n);
	is(vshm_drv_dev_init(drv, 0, 1234, 0, &dev), -ENODEV, "init refuses the wrong device type");
	rc = vshm_drv_dev_init(drv, 0, ECHO_ID, 1u << 3, &dev);
	is(rc, 0, "init negotiates");
	if (rc)
		goto out;
	ok(vshm_drv_dev_features(dev) & (1ull << VSHM_F_VERSION_1), "VERSION_1 negotiated");
	ok(vshm_drv_dev_features(dev) & (1u << 3), "device feature bit 3 negotiated");
	ok(vshm_drv_dev_features(dev) & (1ull << VSHM_F_ACCESS_PLATFORM), "ACCESS_PLATFORM negotiated");
	is(vshm_drv_dev_info(dev)->max_virtqueues, 1, "one virtqueue");

	__atomic_store_n(&ds.echo.config[0], 0xab, __ATOMIC_RELAXED);
	is(vshm_drv_dev_config_read(dev, 0, cfg, 8), 0, "config read");
	is(cfg[0], 0xab, "config byte arrives");
	is(vshm_drv_dev_config_write(dev, 0, "xx", 2), -EPERM, "read-only config write refused (length 0)");
	is(vshm_drv_dev_config_write(dev, 4, "zz", 2), 0, "config write applied");
	is(__atomic_load_n(&ds.echo.config[5], __ATOMIC_RELAXED), 'z', "written config byte reached the model");
	is(vshm_drv_dev_config_read(dev, 298, cfg, 4), -EINVAL, "config read past config_size refused locally");

	/* A GET_CONFIG past config_size sent raw is dropped: the call times out. */
	{
		struct vshm_msg req, resp;
		int64_t t0 = now_ms();

		vshm_msg_init_req(&req, VSHM_MSG_GET_CONFIG, 0);
		req.u.cfg.offset = 296;
		req.u.cfg.length = 8;
		is(vshm_drv_call(drv, &req, &resp), -ETIMEDOUT, "out-of-range GET_CONFIG gets no answer");
		ok(now_ms() - t0 < 1000, "and the wait is bounded");
		vshm_msg_init_req(&req, VSHM_MSG_GET_VQUEUE, 0);
		req.u.get_vq.index = 7;
		ok(vshm_drv_call(drv, &req, &resp) == 0 && resp.u.get_vq.max_size == 0 &&
		   resp.u.get_vq.index == 7, "GET_VQUEUE of a missing queue is the zero sentinel");
		vshm_msg_init_bus(&req, VSHM_MSG_BUS_PING);
		req.u.ping.data = 0xfeedbeef;
		ok(vshm_drv_call(drv, &req, &resp) == 0 && resp.u.ping.data == 0xfeedbeef, "PING echoes");
		vshm_msg_init_req(&req, VSHM_MSG_GET_DEVICE_INFO, 5);
		is(vshm_drv_call(drv, &req, &resp), -ETIMEDOUT, "a message for a missing device is dropped");
	}

	rc = vshm_drv_dev_setup_vq(dev, 0, 64, 8, &vq);
	is(rc, 0, "queue 0 set up and verified");
	{
		struct vshm_drv_vq *none;

		is(vshm_drv_dev_setup_vq(dev, 1, 64, 8, &none), -EINVAL, "no queue 1");
	}
	is(vshm_drv_dev_ready(dev), 0, "DRIVER_OK");
	is(__atomic_load_n(&ds.echo.starts, __ATOMIC_RELAXED), 1, "model started once");

	/* Move data: 2000 requests through the bounce pool, echoed back. */
	{
		struct vshm_bounce_pool *pool = vshm_drv_dev_pool(dev);
		unsigned bad = 0, done = 0, waits = 0;
		uint8_t src[3000], dst[3000];

		for (unsigned i = 0; i < 2000; i++) {
			struct vshm_bounce_map mi, mo;
			struct vshm_sg sg[8];
			int a, b;
			size_t len = 1 + (i * 7919) % sizeof(src);
			void *ck;
			uint32_t got = 0;

			for (size_t k = 0; k < len; k++)
				src[k] = (uint8_t)(i + k * 3);
			memset(dst, 0, sizeof(dst));
			a = vshm_bounce_map(pool, src, len, VSHM_DMA_TO_DEVICE, &mi, sg, 4);
			b = vshm_bounce_map(pool, dst, len, VSHM_DMA_FROM_DEVICE, &mo, sg + a, 4);
			if (a < 1 || b < 1 || vshm_drv_vq_add(vq, sg, (unsigned)a, (unsigned)b, &mi) ||
			    vshm_drv_vq_kick(vq) < 0) {
				bad++;
				break;
			}
			for (;;) {
				rc = vshm_drv_vq_harvest(vq, &ck, &got);
				if (rc != 0)
					break;
				waits++;
				if (vshm_drv_vq_enable_cb(vq) == 0 &&
				    vshm_drv_dev_wait(dev, 0, 1000000000ll) == -EIO)
					break;
			}
			if (rc != 1 || got != len) {
				bad++;
				break;
			}
			vshm_bounce_unmap(pool, &mi, 0);
			vshm_bounce_unmap(pool, &mo, got);
			if (memcmp(src, dst, len))
				bad++;
			done++;
		}
		is(done, 2000, "2000 echo requests completed");
		is(bad, 0, "every echoed byte matches");
		diag("waited for a notification %u times", waits);
	}

	/* The driver leaves: the device resets and waits for the next one. */
	vshm_drv_dev_destroy(dev);
	vshm_drv_destroy(drv);
	{
		int64_t t0 = now_ms();
		while (vshm_dev_rt_state(ds.rt) != VSHM_RT_NO_DRIVER && now_ms() - t0 < 2000)
			;
		is(vshm_dev_rt_state(ds.rt), VSHM_RT_NO_DRIVER, "device back to waiting after the driver left");
	}
	rc = vshm_drv_create(&drv, &dw, 3, &ddb.db, &dopt);
	is(rc, 0, "a second driver enters a new session");
	if (!rc) {
		rc = vshm_drv_dev_init(drv, 0, ECHO_ID, 0, &dev);
		is(rc, 0, "and initialises the device again");
		if (!rc) {
			rc = vshm_drv_dev_setup_vq(dev, 0, 0, 0, &vq);
			is(rc, 0, "queue 0 again (default size)");
		}
		/* The device dies: the driver notices within a bound. */
		__atomic_store_n(&ds.stop, 1, __ATOMIC_RELEASE);
		pthread_join(t, NULL);
		vshm_dev_rt_destroy(ds.rt);
		ds.rt = NULL;
		{
			int64_t t0 = now_ms();
			uint32_t s;

			is(vshm_drv_dev_status(dev, &s), -EIO, "calls fail with -EIO once the device is gone");
			ok(now_ms() - t0 < 500, "within the liveness slice (%lld ms)", (long long)(now_ms() - t0));
			is(vshm_drv_dev_wait(dev, 0, 1000000000ll), -EIO, "waits fail with -EIO too");
		}
		vshm_drv_dev_destroy(dev);
		vshm_drv_destroy(drv);
	}
out:
	if (ds.rt) {
		__atomic_store_n(&ds.stop, 1, __ATOMIC_RELEASE);
		pthread_join(t, NULL);
		vshm_dev_rt_destroy(ds.rt);
	}
	vshm_doorbell_eventfd_fini(&ddb);
	vshm_doorbell_eventfd_fini(&ds.db);
	vshm_window_unmap(&ds.w);
	vshm_window_unmap(&dw);
	return tap_done();
}
