/* SPDX-License-Identifier: MIT */
/*
 * One request at a time, bounded: what the rng and console drivers share.
 * The device may never complete a request; then the buffer it holds stays
 * mapped (the device may still write it), the driver refuses further
 * requests, and the caller gets -ETIMEDOUT.
 */
#ifndef VSHM_DRIVERS_WAIT_ONE_H
#define VSHM_DRIVERS_WAIT_ONE_H

#include <errno.h>
#include <stdint.h>
#include <time.h>

#include <vshm/drivers.h>
#include <vshm/drvrt.h>
#include <vshm/vq.h>

#define DRV_TIMEOUT_NS	(10 * 1000000000ll)	/* default bound on one request */

static inline int64_t drv_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/*
 * Wait for the one chain in flight on @vq (queue @index of @dev): 1 with
 * its cookie and length, -EIO when the queue or the device failed,
 * -ETIMEDOUT when nothing came back within @timeout_ns.
 */
static inline int drv_wait_one(struct vshm_drv_dev *dev, struct vshm_drv_vq *vq, unsigned index,
			       int64_t timeout_ns, void **ck, uint32_t *got)
{
	int64_t deadline = drv_now_ns() + timeout_ns;
	int rc;

	while ((rc = vshm_drv_vq_harvest(vq, ck, got)) == 0) {
		int64_t left = deadline - drv_now_ns();

		if (left <= 0)
			return -ETIMEDOUT;
		if (vshm_drv_vq_enable_cb(vq) == 0 &&
		    vshm_drv_dev_wait(dev, index, left < 1000000000ll ? left : 1000000000ll) == -EIO)
			return -EIO;
	}
	return rc == 1 ? 1 : -EIO;
}

#endif
