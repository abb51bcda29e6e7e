// SPDX-License-Identifier: MIT
/*
 * The blk model's I/O engine (see blkio.h).
 *
 * io_uring: operations are prepared straight on the window iovecs (the
 * kernel copies the iovec array at submission, IORING_FEAT_SUBMIT_STABLE,
 * so the caller's array may change afterwards) and tagged with the op
 * pointer.  At most @depth are in the kernel at once; the ring has that many
 * SQ entries and twice as many CQ entries, so the completion queue cannot
 * overflow even with one cancel request per operation in flight.  Anything
 * beyond waits in a FIFO backlog.  The eventfd registered with the ring is
 * the only thing the runtime sees of all this.
 *
 * Synchronous: preadv/pwritev/fdatasync/fallocate run inline, through a
 * trampoline so done() callbacks that submit the next stage do not recurse.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "blkio.h"

/* Retries of -EAGAIN/-EINTR per stage before the operation fails with -EIO. */
#define BLKIO_MAX_RETRIES	64u
/* CQEs taken per peek. */
#define BLKIO_BATCH		32u

/* Advance @op past @n transferred bytes (n <= op->len). */
static void blkio_advance(struct vshm_blkio_op *op, size_t n)
{
	op->off += n;
	op->len -= n;
	while (n && op->niov) {
		if (n < op->iov->iov_len) {
			op->iov->iov_base = (uint8_t *)op->iov->iov_base + n;
			op->iov->iov_len -= n;
			return;
		}
		n -= op->iov->iov_len;
		op->iov++;
		op->niov--;
	}
	/* Drop empty leading entries so the next call names real bytes. */
	while (op->niov && op->iov->iov_len == 0) {
		op->iov++;
		op->niov--;
	}
}

/*
 * One attempt finished with @res (a syscall or CQE result).  Returns 1 when
 * the operation is over (*out holds 0 or -errno), 0 when it must run again.
 */
static int blkio_result(struct vshm_blkio_op *op, long res, int *out)
{
	if (res == -EAGAIN || res == -EINTR) {
		if (++op->retries < BLKIO_MAX_RETRIES)
			return 0;
		*out = -EIO;
		return 1;
	}
	if (res < 0) {
		*out = (int)res;
		return 1;
	}
	if (op->opcode != VSHM_BLKIO_READ && op->opcode != VSHM_BLKIO_WRITE) {
		*out = 0;
		return 1;
	}
	if ((uint64_t)res > op->len) {		/* the kernel never does this */
		*out = -EIO;
		return 1;
	}
	if (res == 0 && op->len) {
		/* Read: end of file inside the disk (image shrank); write: no progress. */
		*out = -EIO;
		return 1;
	}
	blkio_advance(op, (size_t)res);
	op->retries = 0;
	if (op->len == 0) {
		*out = 0;
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Synchronous engine                                                        */

static long blkio_sync_once(struct vshm_blkio *io, struct vshm_blkio_op *op)
{
	long r;
	int cnt = op->niov > IOV_MAX ? IOV_MAX : (int)op->niov;

	switch (op->opcode) {
	case VSHM_BLKIO_READ:
		if (op->len == 0)
			return 0;
		r = preadv(io->fd, op->iov, cnt, (off_t)op->off);
		break;
	case VSHM_BLKIO_WRITE:
		if (op->len == 0)
			return 0;
		r = pwritev(io->fd, op->iov, cnt, (off_t)op->off);
		break;
	case VSHM_BLKIO_DSYNC:
		r = fdatasync(io->fd);
		break;
	case VSHM_BLKIO_FALLOC:
		r = fallocate(io->fd, op->falloc_mode, (off_t)op->off, (off_t)op->len);
		break;
	default:
		return -EINVAL;
	}
	return r < 0 ? -errno : r;
}

static void blkio_sync_run(struct vshm_blkio *io)
{
	struct vshm_blkio_op *op;

	io->sync_running = 1;
	while ((op = io->sync_q)) {
		int res = 0;

		io->sync_q = op->next;
		if (!io->sync_q)
			io->sync_tail = &io->sync_q;
		op->retries = 0;
		if (op->len || (op->opcode != VSHM_BLKIO_READ && op->opcode != VSHM_BLKIO_WRITE))
			while (!blkio_result(op, blkio_sync_once(io, op), &res))
				;
		op->done(op, res);
	}
	io->sync_running = 0;
}

/* ------------------------------------------------------------------------ */
/* io_uring engine                                                           */

static void blkio_flight_add(struct vshm_blkio *io, struct vshm_blkio_op *op)
{
	op->prev = NULL;
	op->next = io->flight;
	if (io->flight)
		io->flight->prev = op;
	io->flight = op;
	io->inflight++;
}

static void blkio_flight_del(struct vshm_blkio *io, struct vshm_blkio_op *op)
{
	if (op->prev)
		op->prev->next = op->next;
	else
		io->flight = op->next;
	if (op->next)
		op->next->prev = op->prev;
	op->next = op->prev = NULL;
	io->inflight--;
}

static void blkio_backlog_add(struct vshm_blkio *io, struct vshm_blkio_op *op)
{
	op->next = NULL;
	*io->backlog_tail = op;
	io->backlog_tail = &op->next;
}

static struct vshm_blkio_op *blkio_backlog_pop(struct vshm_blkio *io)
{
	struct vshm_blkio_op *op = io->backlog;

	if (op) {
		io->backlog = op->next;
		if (!io->backlog)
			io->backlog_tail = &io->backlog;
		op->next = NULL;
	}
	return op;
}

/* Wake the runtime so it calls poll (a submit to retry, say). */
static void blkio_self_wake(struct vshm_blkio *io)
{
	uint64_t one = 1;

	if (write(io->efd, &one, sizeof(one)) < 0) {
		/* The counter is already huge: the fd is readable, which is all we want. */
	}
}

static void blkio_flush_submit(struct vshm_blkio *io)
{
	int rc;

	if (!io->need_submit)
		return;
	rc = io_uring_submit(&io->ring);
	if (rc >= 0) {
		io->need_submit = io_uring_sq_ready(&io->ring) != 0;
		if (!io->need_submit)
			return;
		rc = -EAGAIN;
	}
	/*
	 * -EAGAIN/-EBUSY: the kernel is short of memory or has a CQ backlog.
	 * The SQEs stay in the ring; come back through the eventfd.  Any other
	 * error means the ring itself is unusable: later calls fail fast and
	 * what is stuck in the SQ ring is reaped by the quiesce timeout.
	 */
	if (rc != -EAGAIN && rc != -EBUSY && rc != -EINTR)
		io->broken = 1;
	blkio_self_wake(io);
}


/* Room for one more operation in the kernel? */
static int blkio_has_room(struct vshm_blkio *io)
{
	return io->inflight < io->depth && io_uring_sq_space_left(&io->ring) > 0;
}

/* Prepare @op's SQE; the caller checked blkio_has_room. */
static void blkio_uring_queue(struct vshm_blkio *io, struct vshm_blkio_op *op)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);

	switch (op->opcode) {
	case VSHM_BLKIO_READ:
		io_uring_prep_readv(sqe, io->fd, op->iov, op->niov, op->off);
		break;
	case VSHM_BLKIO_WRITE:
		io_uring_prep_writev(sqe, io->fd, op->iov, op->niov, op->off);
		break;
	case VSHM_BLKIO_DSYNC:
		io_uring_prep_fsync(sqe, io->fd, IORING_FSYNC_DATASYNC);
		break;
	default:
		io_uring_prep_fallocate(sqe, io->fd, op->falloc_mode, (off_t)op->off,
					(off_t)op->len);
		break;
	}
	io_uring_sqe_set_data(sqe, op);
	blkio_flight_add(io, op);
	io->need_submit = 1;
}

/* Move backlogged operations into free ring slots (FIFO order kept). */
static void blkio_refill(struct vshm_blkio *io)
{
	while (io->backlog && blkio_has_room(io))
		blkio_uring_queue(io, blkio_backlog_pop(io));
}

/* Queue @op behind anything already waiting, so order is first come first served. */
static void blkio_uring_start(struct vshm_blkio *io, struct vshm_blkio_op *op)
{
	if (!io->backlog && blkio_has_room(io))
		blkio_uring_queue(io, op);
	else
		blkio_backlog_add(io, op);
}

/*
 * Reap what the kernel finished.  With @quiescing, every finished operation
 * reports -ECANCELED and nothing is restarted.  Returns done() calls made.
 */
static int blkio_reap(struct vshm_blkio *io, int quiescing)
{
	struct io_uring_cqe *cqes[BLKIO_BATCH];
	struct vshm_blkio_op *ops[BLKIO_BATCH];
	int res[BLKIO_BATCH];
	int total = 0;
	unsigned n;

	do {
		n = io_uring_peek_batch_cqe(&io->ring, cqes, BLKIO_BATCH);
		/* Copy out and release the CQ slots before any callback runs. */
		for (unsigned i = 0; i < n; i++) {
			ops[i] = io_uring_cqe_get_data(cqes[i]);
			res[i] = cqes[i]->res;
		}
		io_uring_cq_advance(&io->ring, n);
		for (unsigned i = 0; i < n; i++) {
			struct vshm_blkio_op *op = ops[i];
			int out;

			if (!op || op == (void *)(uintptr_t)LIBURING_UDATA_TIMEOUT)
				continue;	/* a cancel request's own completion */
			blkio_flight_del(io, op);
			if (quiescing || op->cancelled) {
				op->done(op, -ECANCELED);
				total++;
			} else if (blkio_result(op, res[i], &out)) {
				op->done(op, out);
				total++;
			} else {
				blkio_uring_start(io, op);	/* the remainder */
			}
		}
	} while (n == BLKIO_BATCH);
	return total;
}

/* ------------------------------------------------------------------------ */
/* Generic                                                                   */

int vshm_blkio_init(struct vshm_blkio *io, int fd, unsigned depth, int force_sync)
{
	struct io_uring_params p;
	struct io_uring_probe *probe;
	int rc;

	memset(io, 0, sizeof(*io));
	io->fd = fd;
	io->efd = -1;
	io->depth = depth ? depth : 128;
	if (io->depth > 4096)
		io->depth = 4096;
	io->backlog_tail = &io->backlog;
	io->sync_tail = &io->sync_q;
	if (force_sync) {
		snprintf(io->why, sizeof(io->why), "synchronous engine requested");
		return 0;
	}

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = 2 * io->depth;
	rc = io_uring_queue_init_params(io->depth, &io->ring, &p);
	if (rc < 0) {
		snprintf(io->why, sizeof(io->why), "io_uring_queue_init: %s", strerror(-rc));
		return 0;
	}
	/* The SQ may be rounded up; the in-flight bound stays ours. */
	probe = io_uring_get_probe_ring(&io->ring);
	if (!probe || !io_uring_opcode_supported(probe, IORING_OP_READV) ||
	    !io_uring_opcode_supported(probe, IORING_OP_WRITEV) ||
	    !io_uring_opcode_supported(probe, IORING_OP_FSYNC) ||
	    !io_uring_opcode_supported(probe, IORING_OP_FALLOCATE) ||
	    !io_uring_opcode_supported(probe, IORING_OP_ASYNC_CANCEL) ||
	    !(p.features & IORING_FEAT_SUBMIT_STABLE)) {
		snprintf(io->why, sizeof(io->why), "io_uring lacks an operation we need");
		goto fail_ring;
	}
	io_uring_free_probe(probe);
	probe = NULL;
	io->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (io->efd < 0) {
		snprintf(io->why, sizeof(io->why), "eventfd: %s", strerror(errno));
		goto fail_ring;
	}
	rc = io_uring_register_eventfd(&io->ring, io->efd);
	if (rc < 0) {
		snprintf(io->why, sizeof(io->why), "io_uring_register_eventfd: %s",
			 strerror(-rc));
		close(io->efd);
		io->efd = -1;
		goto fail_ring;
	}
	io->uring = 1;
	return 0;

fail_ring:
	if (probe)
		io_uring_free_probe(probe);
	io_uring_queue_exit(&io->ring);
	return 0;
}

void vshm_blkio_submit(struct vshm_blkio *io, struct vshm_blkio_op *op)
{
	op->retries = 0;
	op->cancelled = 0;
	op->next = op->prev = NULL;
	if (!io->uring) {
		*io->sync_tail = op;
		io->sync_tail = &op->next;
		if (!io->sync_running)
			blkio_sync_run(io);
		return;
	}
	if (io->broken) {
		op->done(op, -EIO);
		return;
	}
	/*
	 * Queued only: vshm_blkio_poll() submits everything queued since the
	 * last call in one io_uring_enter.  The runtime polls a model right
	 * after each pass over a queue, so a pass of N requests costs one
	 * system call instead of N.
	 */
	blkio_uring_start(io, op);
}

int vshm_blkio_poll(struct vshm_blkio *io)
{
	uint64_t v;
	int n;

	if (!io->uring)
		return 0;
	/* Drain the eventfd first: a CQE posted after the reap re-arms it. */
	if (read(io->efd, &v, sizeof(v)) < 0) {
		/* -EAGAIN: nothing signalled; reap anyway (polling phase). */
	}
	n = blkio_reap(io, 0);
	blkio_refill(io);
	blkio_flush_submit(io);
	if (io->broken) {
		struct vshm_blkio_op *op;

		/* Nothing backlogged can ever reach the kernel now. */
		while ((op = blkio_backlog_pop(io))) {
			op->done(op, -EIO);
			n++;
		}
	}
	return n;
}

int vshm_blkio_event_fd(const struct vshm_blkio *io)
{
	return io->uring ? io->efd : -1;
}

static int64_t blkio_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

unsigned vshm_blkio_quiesce(struct vshm_blkio *io, unsigned timeout_ms)
{
	struct vshm_blkio_op *op;
	int64_t deadline;
	uint64_t v;

	if (!io->uring)
		return 0;	/* synchronous: nothing ever outlives a call */
	while ((op = blkio_backlog_pop(io)))
		op->done(op, -ECANCELED);
	if (!io->inflight)
		return 0;

	/*
	 * None of them is restarted from here on, even if its completion only
	 * arrives after the timeout; then ask the kernel to cancel each (best
	 * effort).
	 */
	for (op = io->flight; op; op = op->next)
		op->cancelled = 1;
	for (op = io->flight; op; op = op->next) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);

		if (!sqe) {
			io->need_submit = 1;
			blkio_flush_submit(io);
			sqe = io_uring_get_sqe(&io->ring);
			if (!sqe)
				break;
		}
		io_uring_prep_cancel(sqe, op, 0);
		io_uring_sqe_set_data(sqe, NULL);
		io->need_submit = 1;
	}
	blkio_flush_submit(io);

	deadline = blkio_now_ms() + timeout_ms;
	while (io->inflight) {
		struct __kernel_timespec ts;
		struct io_uring_cqe *cqe;
		int64_t left = deadline - blkio_now_ms();
		int rc;

		if (left <= 0)
			break;
		if (io->need_submit)
			blkio_flush_submit(io);
		ts.tv_sec = left / 1000;
		ts.tv_nsec = (left % 1000) * 1000000;
		rc = io_uring_wait_cqe_timeout(&io->ring, &cqe, &ts);
		if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN) {
			/* The ring cannot wait: sleep in small steps instead. */
			poll(NULL, 0, 10);
		}
		blkio_reap(io, 1);
	}
	if (read(io->efd, &v, sizeof(v)) < 0) {
		/* nothing signalled */
	}
	return io->inflight;
}

void vshm_blkio_exit(struct vshm_blkio *io)
{
	if (!io->uring)
		return;
	vshm_blkio_quiesce(io, 10000);
	io_uring_queue_exit(&io->ring);
	close(io->efd);
	io->efd = -1;
	io->uring = 0;
}
