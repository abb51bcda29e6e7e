/* SPDX-License-Identifier: MIT */
/*
 * Device models: the logic of a virtio device (blk, console, rng, ...),
 * separated from the runtime that serves it.
 *
 * A model never sees a socket, an eventfd, or the control plane.  The
 * runtime (vshm serve) negotiates with the driver over virtio-msg, pops
 * validated chains from the queues and hands each one to the model as a
 * request; the model parses it (every byte in the window is hostile), does
 * the work, and completes it, synchronously or later.  Whatever waits on
 * the outside world (an io_uring, a pty) is reached through ops the runtime
 * passes in, so the model stays testable with fakes.
 */
#ifndef VSHM_DEVMODEL_H
#define VSHM_DEVMODEL_H

#include <stdint.h>
#include <vshm/vq.h>

/* virtio device type ids (virtio 1.x section 5) */
#define VSHM_VIRTIO_ID_NET	1
#define VSHM_VIRTIO_ID_BLOCK	2
#define VSHM_VIRTIO_ID_CONSOLE	3
#define VSHM_VIRTIO_ID_RNG	4

/*
 * One request: a chain popped from queue @queue.  The model owns it from
 * request() until it calls host->complete(); it must complete every request
 * exactly once, also on reset (with written = 0).  @model_priv is free for
 * the model (e.g. to link requests waiting for I/O).
 */
struct vshm_req {
	struct vshm_chain chain;	/* iov point into the window */
	uint16_t queue;
	void *model_priv;
	void *rt_priv;			/* runtime's; do not touch */
};

/* What the runtime offers a model. */
struct vshm_devmodel_host {
	void *ctx;
	/* Request done: @written bytes were written into its writable iov. */
	void (*complete)(void *ctx, struct vshm_req *r, uint32_t written);
	/* Device config space changed (EVENT_CONFIG to the driver). */
	void (*config_changed)(void *ctx);
	/* The model can make progress on @queue now (e.g. input arrived). */
	void (*kick_queue)(void *ctx, unsigned queue);
	/* An unrecoverable device error: set DEVICE_NEEDS_RESET. */
	void (*needs_reset)(void *ctx, const char *why);
};

struct vshm_devmodel;

struct vshm_devmodel_ops {
	const char *name;		/* "blk", "console", "rng" */
	uint32_t device_id;		/* VSHM_VIRTIO_ID_* */

	/* Static shape; the runtime advertises these through GET_VQUEUE. */
	uint32_t (*num_queues)(struct vshm_devmodel *m);
	uint32_t (*queue_max)(struct vshm_devmodel *m, unsigned queue);
	/* Most buffers a chain may have, header and status included (the iov
	 * array the runtime pops into); a longer chain breaks the queue. */
	uint32_t (*seg_max)(struct vshm_devmodel *m);

	/* Device-type feature bits offered (the runtime adds VERSION_1 etc.). */
	uint64_t (*features)(struct vshm_devmodel *m);
	/*
	 * The driver's final choice among the bits this model offered (the
	 * transport bits are the runtime's and never reach the model); 0 to
	 * accept, -EINVAL to refuse FEATURES_OK.
	 */
	int (*set_features)(struct vshm_devmodel *m, uint64_t features);

	uint32_t (*config_size)(struct vshm_devmodel *m);
	/* Copy [off, off+len) of config space; the runtime checked the range. */
	void (*config_read)(struct vshm_devmodel *m, uint32_t off, void *buf, uint32_t len);
	/* 0 applied, -EPERM for a read-only range (SET_CONFIG answers length 0). */
	int (*config_write)(struct vshm_devmodel *m, uint32_t off, const void *buf, uint32_t len);

	/* DRIVER_OK: queues are live. */
	int (*start)(struct vshm_devmodel *m);
	/*
	 * Device reset: stop, complete (written 0) or drop every request held,
	 * forget negotiated state.  After it returns, no request of the old
	 * session is touched again (the runtime frees them).
	 */
	void (*reset)(struct vshm_devmodel *m);

	/*
	 * A request arrived.  Return 0 when it was taken (completed now or
	 * later through host->complete), or a negative errno when the request
	 * is malformed beyond a device-level error status: the runtime then
	 * completes it with written = 0.  Models prefer device-level errors
	 * (VIRTIO_BLK_S_IOERR ...) wherever the device type has them.
	 */
	int (*request)(struct vshm_devmodel *m, struct vshm_req *r);

	/*
	 * Event sources the model depends on (its io_uring, say) are reached
	 * through @poll: the runtime calls it when the fd the model reported
	 * through @event_fd is readable, and in its polling phase.  Returns the
	 * number of completions processed.  Both may be NULL.
	 */
	int (*event_fd)(struct vshm_devmodel *m);
	int (*poll)(struct vshm_devmodel *m);

	void (*destroy)(struct vshm_devmodel *m);
};

struct vshm_devmodel {
	const struct vshm_devmodel_ops *ops;
	const struct vshm_devmodel_host *host;
	void *priv;			/* the model's state */
};

/* ------------------------------------------------------------------------ */
/* The models shipped in devices/                                           */

struct vshm_blk_opts {
	const char *path;		/* raw image file */
	int read_only;
	const char *serial;		/* VIRTIO_BLK_ID_BYTES (20) max, may be NULL */
	int force_pread;		/* never use io_uring */
	uint32_t queue_depth;		/* io_uring entries, 0 = 128 */
};

/*
 * Open the image and set up I/O.  On failure, a negative errno and a
 * human-readable reason in @err (naming the file and the fix).
 */
int vshm_blk_create(struct vshm_devmodel *m, const struct vshm_devmodel_host *host,
		    const struct vshm_blk_opts *o, char *err, size_t errlen);
/* Which I/O engine the blk model ended up with: "io_uring" or "pread". */
const char *vshm_blk_engine(const struct vshm_devmodel *m);

int vshm_rng_create(struct vshm_devmodel *m, const struct vshm_devmodel_host *host);

/*
 * The console bridges bytes; the runtime owns the stdio / pty / socket.
 * Output from the driver goes to @out; input is fed with
 * vshm_console_input.
 */
struct vshm_console_io {
	void *ctx;
	/* Bytes the driver wrote to the port: returns bytes taken (may be short), or -EAGAIN. */
	long (*out)(void *ctx, const void *buf, size_t len);
};
int vshm_console_create(struct vshm_devmodel *m, const struct vshm_devmodel_host *host,
			const struct vshm_console_io *io);
/* Host input for the driver: buffered (bounded) until the driver posts buffers.
 * Returns bytes accepted (short when the buffer is full). */
long vshm_console_input(struct vshm_devmodel *m, const void *buf, size_t len);

#endif
