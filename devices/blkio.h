/* SPDX-License-Identifier: MIT */
/*
 * The blk model's I/O engine: whole-length primitive operations on one file
 * descriptor, through io_uring when the kernel lets us, else synchronously
 * with preadv/pwritev.
 *
 * An operation always runs to completion: short reads and writes are
 * resubmitted for the remainder, -EAGAIN and -EINTR are retried a bounded
 * number of times, end of file on a read is -EIO.  The caller learns the
 * outcome through op->done (0 or -errno), exactly once per submit.
 *
 * Threading: none.  One caller thread drives submit, poll and quiesce.
 * Reentrancy: done() may submit the next operation (of the same or another
 * op).  With the synchronous engine, submit() runs the operation and calls
 * done() before returning, except when called from inside a done(): then
 * the operation runs right after that done() returns (no recursion, so a
 * chain of a thousand stages uses constant stack).
 */
#ifndef VSHM_DEV_BLKIO_H
#define VSHM_DEV_BLKIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <liburing.h>

enum vshm_blkio_opcode {
	VSHM_BLKIO_READ,	/* preadv: iov/niov, off, len */
	VSHM_BLKIO_WRITE,	/* pwritev: iov/niov, off, len */
	VSHM_BLKIO_DSYNC,	/* fdatasync */
	VSHM_BLKIO_FALLOC,	/* fallocate(mode, off, len) */
};

struct vshm_blkio_op {
	/* Set by the caller before each submit. */
	int opcode;			/* enum vshm_blkio_opcode */
	int falloc_mode;		/* FALLOC: FALLOC_FL_* */
	struct iovec *iov;		/* READ/WRITE: advanced in place on short transfers */
	unsigned niov;
	uint64_t off;			/* file offset */
	uint64_t len;			/* READ/WRITE: bytes left; FALLOC: range */
	void (*done)(struct vshm_blkio_op *op, int res);
	/* Engine-private. */
	unsigned retries;		/* -EAGAIN/-EINTR seen for this stage */
	int cancelled;			/* quiesced: never restart, report -ECANCELED */
	struct vshm_blkio_op *next;	/* backlog or in-flight list */
	struct vshm_blkio_op *prev;	/* in-flight list */
};

struct vshm_blkio {
	int fd;				/* the image (borrowed) */
	int uring;			/* 1: io_uring, 0: synchronous */
	struct io_uring ring;		/* uring only */
	int efd;			/* eventfd registered with the ring, or -1 */
	unsigned depth;			/* most operations handed to the kernel */
	unsigned inflight;		/* handed to the kernel, CQE not yet reaped */
	int need_submit;		/* SQEs prepared, io_uring_submit still owed */
	int broken;			/* submit failed for good: everything fails */
	struct vshm_blkio_op *flight;	/* in-flight list (for cancel) */
	struct vshm_blkio_op *backlog;	/* waiting for ring space, FIFO */
	struct vshm_blkio_op **backlog_tail;
	struct vshm_blkio_op *sync_q;	/* synchronous trampoline, FIFO */
	struct vshm_blkio_op **sync_tail;
	int sync_running;		/* inside the trampoline */
	char why[96];			/* why io_uring is not used, "" when it is */
};

/*
 * Set up on @fd (borrowed; must outlive the engine).  @depth bounds the
 * operations in flight (ring entries).  With @force_sync, or when the ring
 * cannot be created or lacks an opcode, the synchronous engine is used and
 * io->why says why.  Returns 0 or -errno (only for allocation failures).
 */
int vshm_blkio_init(struct vshm_blkio *io, int fd, unsigned depth, int force_sync);
/* Quiesce (bounded), then release the ring and eventfd. */
void vshm_blkio_exit(struct vshm_blkio *io);

/* Start @op; its done() is called exactly once. */
void vshm_blkio_submit(struct vshm_blkio *io, struct vshm_blkio_op *op);

/*
 * Reap completions without blocking, continue short transfers, push
 * backlogged operations into the ring.  Returns the number of done() calls.
 */
int vshm_blkio_poll(struct vshm_blkio *io);

/* The eventfd that becomes readable when poll has work, or -1 (synchronous). */
int vshm_blkio_event_fd(const struct vshm_blkio *io);

/*
 * Stop everything: backlogged operations get done(-ECANCELED) without ever
 * reaching the kernel; in-flight ones are cancelled (best effort: file I/O
 * already running cannot be interrupted) and waited for, at most
 * @timeout_ms, each reported with done(-ECANCELED) as it finishes.
 * done() must not submit while this runs.  Returns how many operations are
 * still in the kernel when the time ran out (their done() comes from a later
 * poll, or never after exit).
 */
unsigned vshm_blkio_quiesce(struct vshm_blkio *io, unsigned timeout_ms);

static inline const char *vshm_blkio_name(const struct vshm_blkio *io)
{
	return io->uring ? "io_uring" : "pread";
}

#endif
