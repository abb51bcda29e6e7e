/* SPDX-License-Identifier: MIT */
/*
 * Driver-side runtime: the virtio-msg driver transport over the window.
 *
 * vshm_drv_create() enters a session with the device peer (the handshake
 * of docs/abi.md "Sessions"); vshm_drv_call() is one bounded request/
 * response exchange; vshm_drv_dev_*() run the virtio initialisation
 * sequence for one device number and set its queues up in the driver area,
 * with a bounce pool per device.  Every wait is bounded and checks that the
 * device role is still held by the peer we started with: when the device
 * goes away, calls fail with -EIO instead of waiting.
 *
 * Single-threaded: the caller serialises calls on one vshm_drv.
 */
#ifndef VSHM_DRVRT_H
#define VSHM_DRVRT_H

#include <stdint.h>
#include <vshm/bounce.h>
#include <vshm/doorbell.h>
#include <vshm/msg.h>
#include <vshm/vq.h>
#include <vshm/window.h>

struct vshm_drv;
struct vshm_drv_dev;

/* Ring layouts a driver can ask for (the device must offer them). */
#define VSHM_RING_SPLIT		0	/* virtio 1.x split ring (default) */
#define VSHM_RING_PACKED	1	/* VIRTIO_F_RING_PACKED */
#define VSHM_RING_FIFO		2	/* VSHM_F_FIFO_RING: data inline, docs/fifo-ring.md */

struct vshm_drv_opts {
	int64_t call_timeout_ns;	/* each control exchange; 0 = 2 s */
	int64_t attach_timeout_ns;	/* waiting for the device; 0 = 5 s */
	uint64_t pool_size;		/* bounce pool per device; 0 = 4 MiB */
	int ring;			/* VSHM_RING_*; -ENOTSUP at init if not offered */
	uint32_t fifo_ring_bytes;	/* FIFO data area per direction; 0 = 1 MiB */
};

/* Parse "split", "packed" or "fifo"; -EINVAL otherwise. */
int vshm_ring_parse(const char *s);
const char *vshm_ring_name(int ring);

/*
 * Enter a session as ivshmem peer @peer_id on @w.  @db rings the device
 * and waits on our vectors.  Errors: -EBUSY (another driver holds the role),
 * -ETIMEDOUT (no device answered the handshake), -ENOMEM.
 */
int vshm_drv_create(struct vshm_drv **out, struct vshm_window *w, uint32_t peer_id,
		    const struct vshm_doorbell *db, const struct vshm_drv_opts *o);
void vshm_drv_destroy(struct vshm_drv *d);
/* Run @fn(@ctx) at the end of vshm_drv_destroy (owner of the window, say). */
void vshm_drv_on_destroy(struct vshm_drv *d, void (*fn)(void *), void *ctx);

/*
 * The device went away (calls returned -EIO): wait up to @timeout_ns for a
 * new device process to hold the device role and enter a new session with
 * it.  Device objects are then brought back with vshm_drv_dev_reinit().
 * -ETIMEDOUT when no device came.
 */
int vshm_drv_reattach(struct vshm_drv *d, int64_t timeout_ns);
/* How many sessions this driver has entered (1 + successful re-attaches). */
uint64_t vshm_drv_sessions(const struct vshm_drv *d);
/*
 * Called when the session moves to another device peer, to point the
 * doorbells at it (vshm_drv_attach installs this).
 */
void vshm_drv_on_peer_change(struct vshm_drv *d,
			     int (*fn)(void *ctx, uint32_t peer_id, int64_t timeout_ns), void *ctx);

/* The device peer's ivshmem id (the device role owner at attach). */
uint32_t vshm_drv_device_peer(const struct vshm_drv *d);
/* 0 while the device we attached to still holds its role, else -EIO. */
int vshm_drv_alive(struct vshm_drv *d);

/*
 * One exchange: @req gets a fresh token and is sent; the matching response
 * lands in @resp.  Events seen meanwhile are processed.  -ETIMEDOUT, -EIO.
 */
int vshm_drv_call(struct vshm_drv *d, struct vshm_msg *req, struct vshm_msg *resp);

/* Device numbers on the bus (GET_DEVICES), up to @max; returns the count. */
int vshm_drv_get_devices(struct vshm_drv *d, uint16_t *nums, unsigned max);

/* Carve @size bytes (aligned to @align, a power of two) from the driver area. */
int vshm_drv_alloc(struct vshm_drv *d, uint64_t size, uint64_t align, uint64_t *off);

/*
 * Initialise device @dev_num: GET_DEVICE_INFO, reset, ACKNOWLEDGE, DRIVER,
 * feature negotiation (@want & offered, plus VERSION_1, ACCESS_PLATFORM,
 * EVENT_IDX, INDIRECT_DESC when offered), FEATURES_OK checked.  Queues are
 * set up next, then vshm_drv_dev_ready().  -ENODEV for a device type other
 * than @device_id (0 = any), -ENOTSUP if FEATURES_OK was refused.
 */
int vshm_drv_dev_init(struct vshm_drv *d, uint16_t dev_num, uint32_t device_id,
		      uint64_t want, struct vshm_drv_dev **out);
void vshm_drv_dev_destroy(struct vshm_drv_dev *dev);

const struct vshm_msg_dev_info *vshm_drv_dev_info(const struct vshm_drv_dev *dev);
uint64_t vshm_drv_dev_features(const struct vshm_drv_dev *dev);
struct vshm_bounce_pool *vshm_drv_dev_pool(struct vshm_drv_dev *dev);
struct vshm_window *vshm_drv_dev_window(struct vshm_drv_dev *dev);

/* Read config space [off, off+len), consistent under one generation. */
int vshm_drv_dev_config_read(struct vshm_drv_dev *dev, uint32_t off, void *buf, uint32_t len);
int vshm_drv_dev_config_write(struct vshm_drv_dev *dev, uint32_t off, const void *buf, uint32_t len);

/*
 * Set up queue @index with @num entries (0 = the device's maximum, capped at
 * 256) and @indirect_max entries per indirect table (0 = none): rings in the
 * driver area, SET_VQUEUE, verified with GET_VQUEUE.  The queue's kick rings
 * the device's doorbell for it.
 */
int vshm_drv_dev_setup_vq(struct vshm_drv_dev *dev, unsigned index, uint32_t num,
			  uint32_t indirect_max, struct vshm_drv_vq **vq);
/*
 * After vshm_drv_reattach: reset and renegotiate the device with exactly the
 * features it had (-ENOTSUP if the new device cannot), reprogram every
 * queue at the same place in the window (rings reset; the caller detached
 * what was in flight first, else -EBUSY), and DRIVER_OK if it was live.
 * Bounce mappings stay valid, so requests can be resubmitted as they were.
 */
int vshm_drv_dev_reinit(struct vshm_drv_dev *dev);
/* DRIVER_OK; -EIO if the device refused it. */
int vshm_drv_dev_ready(struct vshm_drv_dev *dev);
/* Device status as last read (GET_DEVICE_STATUS). */
int vshm_drv_dev_status(struct vshm_drv_dev *dev, uint32_t *status);

/*
 * Wait up to @timeout_ns for a used-buffer notification on @vq of this
 * device (or a short slice; callers re-check the ring).  0, -ETIMEDOUT, or
 * -EIO when the device went away or flagged DEVICE_NEEDS_RESET.
 */
int vshm_drv_dev_wait(struct vshm_drv_dev *dev, unsigned index, int64_t timeout_ns);
/* 1 once the device reported DEVICE_NEEDS_RESET (EVENT_CONFIG). */
int vshm_drv_dev_needs_reset(const struct vshm_drv_dev *dev);

#endif
