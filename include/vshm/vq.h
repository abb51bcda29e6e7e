/* SPDX-License-Identifier: MIT */
/*
 * Virtqueues over the window.
 *
 * The driver side (vshm_drv_vq_*) posts chains of window buffers and harvests
 * completions; its bookkeeping (free list, cookies, posted lengths, chain
 * links) lives in private memory, so a device that rewrites the ring can
 * never corrupt it.  The device side (vshm_dev_vq_*) pops chains with full
 * validation and pushes completions.  Either side marks a queue broken on the
 * first protocol violation by its peer: the state is sticky and every call
 * returns -EIO from then on.
 *
 * Functions are split-ring today; the packed and FIFO layouts will slot in
 * behind the same calls.  A queue is single-threaded on each side: the caller
 * serialises calls on one handle; the two sides run concurrently.
 */
#ifndef VSHM_VQ_H
#define VSHM_VQ_H

#include <stdbool.h>
#include <stdint.h>
#include <vshm/window.h>

#ifndef VSHM_SG_DEFINED
#define VSHM_SG_DEFINED
/* One buffer, named by its window offset. */
struct vshm_sg { uint64_t off; uint32_t len; uint32_t flags; };
#endif

/* Where a split ring lives in the window (all offsets are window offsets). */
struct vshm_vq_layout {
	uint32_t num;		/* entries: power of two, 1 .. 32768 */
	uint32_t indirect_max;	/* driver: entries per indirect table, 0 = none */
	uint64_t desc;		/* descriptor table, 16-byte aligned */
	uint64_t avail;		/* available ring, 2-byte aligned */
	uint64_t used;		/* used ring, 4-byte aligned */
	uint64_t indirect;	/* driver: num tables of indirect_max entries */
	uint32_t ring_bytes;	/* FIFO: data area bytes per direction (driver) */
};

/*
 * Lay out a ring of @num entries (and, if @indirect_max, its indirect
 * tables) contiguously at window offset @base.  Returns the bytes used, or
 * a negative errno for a bad @num.  The used ring starts on its own cache
 * line so driver-written and device-written lines never share.
 */
int64_t vshm_vq_layout_split(struct vshm_vq_layout *l, uint64_t base,
			     uint32_t num, uint32_t indirect_max);

/*
 * The same for a packed ring (negotiated with VSHM_F_RING_PACKED): @desc is
 * the descriptor ring (num x 16 bytes), @avail the driver event suppression
 * area and @used the device event suppression area (4 bytes each; the
 * device's on its own cache line), @indirect as for split.  @num is a power
 * of two, 1 .. 32768.  Returns the bytes used, or -EINVAL.
 */
int64_t vshm_vq_layout_packed(struct vshm_vq_layout *l, uint64_t base,
			      uint32_t num, uint32_t indirect_max);

/*
 * The same for a FIFO queue (negotiated with VSHM_F_FIFO_RING,
 * docs/fifo-ring.md): @desc is the D2V ring block, @avail the V2D ring
 * block, each 64-byte aligned, a 256-byte control block and @ring_bytes of
 * data; @used is 0.  @num is the number of request ids (a power of two,
 * 1 .. 32768), @ring_bytes a power of two, 4096 .. 2^24.  The driver writes
 * @ring_bytes into both control blocks; the device reads each block's size
 * from the window instead.  Returns the bytes used, or -EINVAL.
 *
 * Behind the same calls, a FIFO queue differs in what it can carry: add
 * copies the readable bytes into the ring and refuses (-EINVAL) a request
 * whose readable or writable total exceeds ring_bytes / 2 - 16; -ENOSPC
 * means no free id or no room in the ring; harvest copies the reply into
 * the writable buffers.  A popped chain has at most one readable and one
 * writable iov, both pointing into the rings; completions reach the driver
 * in request order.
 */
int64_t vshm_vq_layout_fifo(struct vshm_vq_layout *l, uint64_t base,
			    uint32_t num, uint32_t ring_bytes);

/* A notification hook: how a side wakes its peer (a doorbell, usually). */
struct vshm_vq_notify {
	int (*notify)(void *ctx);
	void *ctx;
};

/* Counters, per queue and side; plain numbers, read with vshm_*_vq_stats. */
struct vshm_vq_stats {
	uint64_t chains;	/* added (driver) or popped (device) */
	uint64_t completions;	/* harvested (driver) or pushed (device) */
	uint64_t notifies;	/* peer notifications sent */
	uint64_t suppressed;	/* notifications the peer's event index saved */
	uint64_t indirect;	/* chains that used an indirect table */
};

/* ------------------------------------------------------------------------ */
/* Driver side                                                               */

struct vshm_drv_vq;

/* Feature bits (VSHM_F_*) that change ring behaviour: EVENT_IDX, INDIRECT_DESC. */
int vshm_drv_vq_create(struct vshm_drv_vq **out, struct vshm_window *w,
		       const struct vshm_vq_layout *l, uint64_t features,
		       const struct vshm_vq_notify *notify);
void vshm_drv_vq_destroy(struct vshm_drv_vq *vq);

/* Flags for vshm_drv_vq_add_ex. */
#define VSHM_ADD_NO_INDIRECT	(1u << 0)	/* never use an indirect table */
#define VSHM_ADD_INDIRECT	(1u << 1)	/* use one if at all possible */

/*
 * Add a chain: @sg[0..nout) are device-readable, @sg[nout..nout+nin)
 * device-writable.  Every buffer must lie in the window's driver area.
 * @cookie (non-NULL) comes back from harvest.  The chain is not visible to
 * the device until vshm_drv_vq_publish/kick.  With INDIRECT_DESC negotiated
 * and tables laid out, multi-buffer chains use one descriptor.
 * Returns 0, -ENOSPC (no free descriptors), -EINVAL, -EIO (broken).
 */
int vshm_drv_vq_add(struct vshm_drv_vq *vq, const struct vshm_sg *sg,
		    unsigned nout, unsigned nin, void *cookie);
int vshm_drv_vq_add_ex(struct vshm_drv_vq *vq, const struct vshm_sg *sg,
		       unsigned nout, unsigned nin, void *cookie, unsigned flags);

/*
 * Make every added chain visible to the device.  Returns 1 when the device
 * asked to be notified (event index or flags), 0 when it did not, -EIO.
 */
int vshm_drv_vq_publish(struct vshm_drv_vq *vq);
/* publish, then call the notify hook if the device wants it. */
int vshm_drv_vq_kick(struct vshm_drv_vq *vq);

/*
 * Harvest one completion: 1 with *cookie and *len (bytes the device wrote,
 * never more than the chain's writable total), 0 if none, -EIO.
 */
int vshm_drv_vq_harvest(struct vshm_drv_vq *vq, void **cookie, uint32_t *len);
/* Up to @max completions; returns the count or -EIO. */
int vshm_drv_vq_harvest_batch(struct vshm_drv_vq *vq, void **cookies,
			      uint32_t *lens, unsigned max);

/*
 * Ask the device to notify on the next completion.  Returns 1 if
 * completions are already pending (harvest before sleeping), 0, or -EIO.
 */
int vshm_drv_vq_enable_cb(struct vshm_drv_vq *vq);
void vshm_drv_vq_disable_cb(struct vshm_drv_vq *vq);

/*
 * After a device reset, or once broken: take back a chain the device never
 * completed.  Returns its cookie, or NULL when none remain.  Works on a
 * broken queue (that is how outstanding requests get failed).
 */
void *vshm_drv_vq_detach_unused(struct vshm_drv_vq *vq);
/* Re-initialise ring memory and indices (all chains must be detached). */
int vshm_drv_vq_reset(struct vshm_drv_vq *vq);

bool vshm_drv_vq_broken(const struct vshm_drv_vq *vq);
/* Why the queue broke (static string), or NULL. */
const char *vshm_drv_vq_error(const struct vshm_drv_vq *vq);
unsigned vshm_drv_vq_num_free(const struct vshm_drv_vq *vq);
unsigned vshm_drv_vq_inflight(const struct vshm_drv_vq *vq);
void vshm_drv_vq_stats(const struct vshm_drv_vq *vq, struct vshm_vq_stats *s);

/* ------------------------------------------------------------------------ */
/* Device side                                                               */

struct vshm_dev_vq;

/* One validated buffer of a popped chain, as a pointer into the window. */
struct vshm_iov {
	void *base;
	uint32_t len;
};

/*
 * A popped chain.  iov[0..nout) are readable, iov[nout..nout+nin) writable;
 * zero-length descriptors are skipped.  Every pointer was checked against
 * the driver area, so the whole of each iov may be accessed.
 */
struct vshm_chain {
	uint16_t head;		/* pass back to vshm_dev_vq_push */
	uint16_t nout;
	uint16_t nin;
	uint16_t indirect;	/* 1 if the chain came through a table */
	uint64_t out_bytes;
	uint64_t in_bytes;
	struct vshm_iov *iov;	/* the caller's array */
};

/*
 * The layout comes from the peer (SET_VQUEUE): it is validated here —
 * num a power of two <= 32768, every area aligned and inside the driver
 * area.  Returns -EINVAL when it is not.
 */
int vshm_dev_vq_create(struct vshm_dev_vq **out, const struct vshm_window *w,
		       const struct vshm_vq_layout *l, uint64_t features,
		       const struct vshm_vq_notify *notify);
void vshm_dev_vq_destroy(struct vshm_dev_vq *vq);

/*
 * Pop the next available chain into @c, using @iov[0..max_iov) for its
 * buffers.  Returns 1, 0 when the ring is empty, -EIO when the driver broke
 * the protocol (the queue is then broken).  A chain with more buffers than
 * @max_iov breaks the queue too: it exceeds the segment limit the device
 * advertised.
 */
int vshm_dev_vq_pop(struct vshm_dev_vq *vq, struct vshm_chain *c,
		    struct vshm_iov *iov, unsigned max_iov);
/*
 * Pop up to @n chains; chain i uses iov[i * iov_per .. (i+1) * iov_per).
 * Returns the count popped (0 if empty) or -EIO.
 */
int vshm_dev_vq_pop_batch(struct vshm_dev_vq *vq, struct vshm_chain *c,
			  unsigned n, struct vshm_iov *iov, unsigned iov_per);

/* Record the completion of chain @head with @written bytes; not yet visible. */
int vshm_dev_vq_push(struct vshm_dev_vq *vq, uint16_t head, uint32_t written);
/*
 * For testing drivers against a hostile device only (vshm serve --hostile):
 * record a used element carrying @id and @len exactly as given, with no
 * check that @id names a chain this side popped.  Split rings take any
 * 32-bit id, packed rings any 16-bit one; the FIFO ring has no ids
 * (-EOPNOTSUPP).  Made visible by the next publish, like a push.
 */
int vshm_dev_vq_inject_used(struct vshm_dev_vq *vq, uint32_t id, uint32_t len);
/*
 * Make pushed completions visible.  Returns 1 if the driver wants a
 * notification, 0 if not, -EIO.
 */
int vshm_dev_vq_publish(struct vshm_dev_vq *vq);
/* publish, then notify the driver if it asked. */
int vshm_dev_vq_complete(struct vshm_dev_vq *vq);

/*
 * Before sleeping: ask the driver to kick on new chains.  Returns 1 if
 * chains are already available (do not sleep), 0, or -EIO.
 */
int vshm_dev_vq_enable_notify(struct vshm_dev_vq *vq);
void vshm_dev_vq_disable_notify(struct vshm_dev_vq *vq);

bool vshm_dev_vq_broken(const struct vshm_dev_vq *vq);
const char *vshm_dev_vq_error(const struct vshm_dev_vq *vq);
void vshm_dev_vq_stats(const struct vshm_dev_vq *vq, struct vshm_vq_stats *s);

/* The event-index test of virtio 1.x 2.7.7: notify if event is in (old, new]. */
static inline int vshm_need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

#endif
