/* SPDX-License-Identifier: MIT */
/*
 * User-space drivers for vshm devices: blk, rng, console.
 *
 * Each sits on a vshm_drv session (include/vshm/drvrt.h), initialises one
 * device number, and moves data through that device's bounce pool, so the
 * caller's buffers can live anywhere in its private memory.  All calls are
 * bounded: when the device goes away or breaks the protocol they return
 * -EIO (and async requests complete with -EIO); they never hang.
 * One thread per driver handle.
 */
#ifndef VSHM_DRIVERS_H
#define VSHM_DRIVERS_H

#include <stddef.h>
#include <stdint.h>
#include <vshm/drvrt.h>

/* ---- blk --------------------------------------------------------------- */

struct vshm_blkdrv;

#define VSHM_BLK_SECTOR		512u

/* Operations for the async API. */
#define VSHM_BLK_OP_READ	0
#define VSHM_BLK_OP_WRITE	1
#define VSHM_BLK_OP_FLUSH	4
#define VSHM_BLK_OP_DISCARD	11
#define VSHM_BLK_OP_WRITE_ZEROES 13

struct vshm_blkdrv_info {
	uint64_t capacity;	/* sectors of 512 bytes */
	uint32_t seg_max;	/* buffers per request the device takes */
	uint32_t size_max;	/* bytes per buffer */
	uint32_t blk_size;
	int read_only;
	int flush;		/* VIRTIO_BLK_F_FLUSH negotiated */
	int discard;
	int write_zeroes;
	uint32_t queue_size;
};

/*
 * Open blk device @dev_num with a queue of @depth entries (0 = 128).
 * -ENODEV if it is not a block device.
 */
int vshm_blkdrv_open(struct vshm_drv *d, uint16_t dev_num, uint32_t depth,
		     struct vshm_blkdrv **out);
void vshm_blkdrv_close(struct vshm_blkdrv *b);
void vshm_blkdrv_info(const struct vshm_blkdrv *b, struct vshm_blkdrv_info *info);
/* The device under the driver (its bounce pool, status, config). */
struct vshm_drv_dev *vshm_blkdrv_dev(struct vshm_blkdrv *b);

/*
 * Synchronous I/O.  @len is a multiple of 512; @sector + @len/512 within
 * the capacity.  0, or -EIO (device I/O error or device gone), -EROFS,
 * -EOPNOTSUPP, -EINVAL.
 */
int vshm_blkdrv_read(struct vshm_blkdrv *b, uint64_t sector, void *buf, size_t len);
int vshm_blkdrv_write(struct vshm_blkdrv *b, uint64_t sector, const void *buf, size_t len);
int vshm_blkdrv_flush(struct vshm_blkdrv *b);
int vshm_blkdrv_discard(struct vshm_blkdrv *b, uint64_t sector, uint32_t nsectors);
int vshm_blkdrv_write_zeroes(struct vshm_blkdrv *b, uint64_t sector, uint32_t nsectors);
/* The device's serial (up to 20 bytes, NUL-terminated into @id). */
int vshm_blkdrv_get_id(struct vshm_blkdrv *b, char id[static 21]);

/*
 * Asynchronous I/O: submit up to the queue depth, then poll or wait.  @cb
 * runs from vshm_blkdrv_poll/wait with 0 or a negative errno; @buf must
 * stay valid until then.  submit returns -EAGAIN when the queue is full
 * (poll first), -EIO once the device is gone.  For DISCARD and
 * WRITE_ZEROES, @len is the byte count and @buf is unused.
 */
typedef void (*vshm_blk_cb)(void *arg, int status);
int vshm_blkdrv_submit(struct vshm_blkdrv *b, int op, uint64_t sector, void *buf,
		       size_t len, vshm_blk_cb cb, void *arg);
/*
 * Zero-copy I/O: the data already lives in the window (a zero-copy heap
 * buffer, include/vshm/heap.h: vshm_heap_sg()), named by @nsg segments of
 * window offsets, at most seg_max of them; nothing is bounced.  READ or
 * WRITE only; the total must be a multiple of 512.  While the request is
 * in flight the device may read or write those bytes; after a READ
 * completes, treat the data as the device's (it can still rewrite it):
 * copy it out once before interpreting it.
 */
int vshm_blkdrv_submit_sg(struct vshm_blkdrv *b, int op, uint64_t sector,
			  const struct vshm_sg *sg, unsigned nsg, vshm_blk_cb cb, void *arg);

/* Complete what is done; returns the number of callbacks run, or -EIO. */
int vshm_blkdrv_poll(struct vshm_blkdrv *b);
/*
 * Wait up to @timeout_ns for at least one completion (runs callbacks).
 * Returns callbacks run (0 on timeout) or -EIO; after -EIO every
 * outstanding request has been completed with -EIO.  -ETIMEDOUT: a request
 * outlived the request timeout (vshm_blkdrv_set_timeout); every outstanding
 * request has been completed with -ETIMEDOUT.
 */
int vshm_blkdrv_wait(struct vshm_blkdrv *b, int64_t timeout_ns);
unsigned vshm_blkdrv_inflight(const struct vshm_blkdrv *b);

/*
 * Recovery from a lost device.  By default, when the device process dies
 * or breaks the protocol, every outstanding request completes with -EIO.
 * With a non-zero @timeout_ns, the driver instead waits up to that long for
 * a device process to come back (`vshm serve` restarted on the same hub),
 * enters a new session, resets and renegotiates the device with exactly the
 * same features, and resubmits every outstanding request in its original
 * submission order from its original bounce mapping.  Requests are then
 * retried, never dropped: each completes exactly once, successfully or,
 * if recovery fails, with -EIO.  Writes are idempotent, so a write that
 * the lost device may already have performed is performed again with the
 * same bytes.  Other devices opened on the same vshm_drv must be brought
 * back with vshm_drv_dev_reinit() by their owners.
 */
void vshm_blkdrv_set_recovery(struct vshm_blkdrv *b, int64_t timeout_ns);

struct vshm_blkdrv_stats {
	uint64_t submitted;	/* requests accepted */
	uint64_t retried;	/* resubmissions after a recovery */
	uint64_t failed;	/* completed with -EIO because the device was lost,
				   or -ETIMEDOUT after a request timeout */
	uint64_t timeouts;	/* requests a live device kept past the timeout */
	uint64_t recoveries;	/* successful re-attaches */
	int last_error;		/* why the last recovery failed (-errno), or 0 */
};
void vshm_blkdrv_get_stats(const struct vshm_blkdrv *b, struct vshm_blkdrv_stats *st);
/*
 * A device that is alive but keeps a request longer than @timeout_ns (30 s
 * by default; 0: wait forever) is not trusted again: vshm_blkdrv_wait()
 * fails every request in flight with -ETIMEDOUT, returns -ETIMEDOUT, and
 * the driver takes no more requests (the buffers the device holds are
 * never reused).
 */
void vshm_blkdrv_set_timeout(struct vshm_blkdrv *b, int64_t timeout_ns);

/* ---- rng --------------------------------------------------------------- */

struct vshm_rngdrv;
int vshm_rngdrv_open(struct vshm_drv *d, uint16_t dev_num, struct vshm_rngdrv **out);
/*
 * Fill @buf with @len random bytes from the device: 0, -EIO, or -ETIMEDOUT
 * when one request was not completed within the timeout (10 s unless set;
 * the driver refuses further reads then: the device may still write the
 * buffer it holds, which stays mapped until close).
 */
int vshm_rngdrv_read(struct vshm_rngdrv *r, void *buf, size_t len);
void vshm_rngdrv_set_timeout(struct vshm_rngdrv *r, int64_t timeout_ns);
void vshm_rngdrv_close(struct vshm_rngdrv *r);

/* ---- console ------------------------------------------------------------ */

struct vshm_condrv;
int vshm_condrv_open(struct vshm_drv *d, uint16_t dev_num, struct vshm_condrv **out);
/*
 * Send @len bytes to the console's host side: 0, -EIO, or -ETIMEDOUT as
 * for vshm_rngdrv_read() (the same bound, the same refusal afterwards).
 */
int vshm_condrv_write(struct vshm_condrv *c, const void *buf, size_t len);
void vshm_condrv_set_timeout(struct vshm_condrv *c, int64_t timeout_ns);
/*
 * Receive what the host side sent: waits up to @timeout_ns for the first
 * byte, returns the bytes copied (0 on timeout) or -EIO.
 */
long vshm_condrv_read(struct vshm_condrv *c, void *buf, size_t len, int64_t timeout_ns);
void vshm_condrv_close(struct vshm_condrv *c);

/*
 * Find the first device of @device_id on the bus: its number, -ENODEV if
 * there is none, or the error of a control exchange that failed (e.g.
 * -ETIMEDOUT: the device did not answer).
 */
int vshm_drv_find(struct vshm_drv *d, uint32_t device_id);

#endif
