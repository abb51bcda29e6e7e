/* SPDX-License-Identifier: MIT */
/*
 * Doorbells: "wake the peer on vector N" and "sleep until my vector N is
 * signalled", behind an ops struct so that nothing above this layer knows
 * whether a doorbell is an eventfd pair from the ivshmem server, an ivshmem
 * BAR0 write, or nothing at all (polling).
 *
 * Doorbells are wake-up hints only.  A signal may be lost (an unconnected
 * peer), coalesced (several rings, one wake) or spurious (a stale signal, a
 * hostile peer ringing for no reason).  Every caller therefore re-checks the
 * shared state after a wake and bounds every wait with a deadline of its own.
 *
 * Thread safety: ring() may be called from any thread.  wait() and drain()
 * on one vector consume that vector's signals, so two threads waiting on
 * the same vector steal each other's wake-ups; give each waiter its own
 * vector (or accept the latency of a stolen wake-up, which the waiter's own
 * bound caps).
 */
#ifndef VSHM_DOORBELL_H
#define VSHM_DOORBELL_H

#include <stdint.h>

/* Most vectors one doorbell carries: the window header allows 1..64. */
#define VSHM_DB_MAX_VECTORS	64u

/* Default sleep quantum of the poll-only doorbell. */
#define VSHM_DB_POLL_QUANTUM_NS	50000

struct vshm_doorbell_ops {
	/*
	 * Notify the peer on @vector.  0 on success, including "the peer was
	 * already signalled"; -EINVAL for a vector out of range; -ENOTCONN
	 * when that vector of the peer is not connected (the signal is lost,
	 * which is allowed: doorbells are hints); another -errno on failure.
	 */
	int (*ring)(void *ctx, unsigned vector);
	/*
	 * Block until our @vector is signalled or @timeout_ns (>= 0; 0 polls)
	 * expires, consuming the pending signals.  0: signalled, or spurious
	 * (re-check shared state); -ETIMEDOUT; -EINTR when a signal handler
	 * interrupted the sleep (returned, not retried, so that a daemon's
	 * SIGTERM is seen promptly); -EINVAL for a bad vector or a negative
	 * timeout.  Never sleeps longer than @timeout_ns plus scheduling slack.
	 */
	int (*wait)(void *ctx, unsigned vector, int64_t timeout_ns);
	/*
	 * A pollable fd (POLLIN when @vector has a pending signal) for the
	 * caller's event loop, or -1 when this doorbell has none.  The fd
	 * stays owned by the doorbell.  After it polls readable, call drain().
	 */
	int (*fd)(void *ctx, unsigned vector);
	/* Consume pending signals of our @vector without blocking. */
	void (*drain)(void *ctx, unsigned vector);
};

/* The handle the rest of the library passes around.  Borrowed, never owned. */
struct vshm_doorbell {
	const struct vshm_doorbell_ops *ops;
	void *ctx;
};

static inline int vshm_doorbell_ring(const struct vshm_doorbell *db, unsigned vector)
{
	return db->ops->ring(db->ctx, vector);
}

static inline int vshm_doorbell_wait(const struct vshm_doorbell *db, unsigned vector,
				     int64_t timeout_ns)
{
	return db->ops->wait(db->ctx, vector, timeout_ns);
}

static inline int vshm_doorbell_fd(const struct vshm_doorbell *db, unsigned vector)
{
	return db->ops->fd(db->ctx, vector);
}

static inline void vshm_doorbell_drain(const struct vshm_doorbell *db, unsigned vector)
{
	db->ops->drain(db->ctx, vector);
}

/* ------------------------------------------------------------------------ */
/* eventfd doorbells (the ivshmem-server protocol)                          */

/*
 * To interrupt a peer on vector k, write the 8-byte value 1 to the peer's
 * eventfd k (tx); to receive, poll our own eventfd k (rx) and read it to
 * reset the count.  The structure owns every fd stored in it.
 *
 * In the ivshmem-server protocol the peer holds the same open file as our
 * rx eventfd (it is its tx fd), so it can read our count (stealing a wake:
 * costs latency only) and change the file's O_NONBLOCK flag.  wait() and
 * drain() therefore read with RWF_NOWAIT, which works whatever that flag
 * says (Linux >= 5.12; older kernels fall back to read() on the O_NONBLOCK
 * that init sets).  ring() checks POLLOUT before writing, so a peer that
 * saturates its own counter cannot block us, except by winning a race
 * between that check and the write on a file it has made blocking.
 *
 * The handle's ctx points at the structure itself: do not copy or move it
 * after init; pass &e->db around instead.
 */
struct vshm_db_eventfd {
	struct vshm_doorbell db;		/* handle: ops + ctx = this */
	unsigned nvec;				/* vectors in use */
	int tx[VSHM_DB_MAX_VECTORS];		/* peer's eventfds (we write), owned, -1 = none */
	int rx[VSHM_DB_MAX_VECTORS];		/* our eventfds (we poll/read), owned, -1 = none */
};

/*
 * Set up @e for @nvec (1..VSHM_DB_MAX_VECTORS) vectors.  @tx_fds[k] is the
 * peer's eventfd for vector k, @rx_fds[k] ours; either array may be NULL and
 * any entry -1 (not connected: ring returns -ENOTCONN; wait sleeps like the
 * poll-only doorbell and returns 0).  Every fd is duplicated (close-on-exec);
 * the caller keeps and closes its own.  The rx files are set O_NONBLOCK
 * (a property of the open file, so the caller's descriptors see it too).
 * Returns 0 or -errno; on failure @e owns nothing.
 */
int vshm_doorbell_eventfd_init(struct vshm_db_eventfd *e, unsigned nvec,
			       const int *tx_fds, const int *rx_fds);

/*
 * Two doorbells wired to each other in this process: ringing @a's vector k
 * signals @b's vector k and the reverse.  Creates 2 * @nvec eventfds
 * (EFD_NONBLOCK | EFD_CLOEXEC).  Returns 0 or -errno.
 */
int vshm_doorbell_eventfd_pair(struct vshm_db_eventfd *a, struct vshm_db_eventfd *b,
			       unsigned nvec);

/* Close every fd @e owns.  Safe to call twice and on a zeroed struct. */
void vshm_doorbell_eventfd_fini(struct vshm_db_eventfd *e);

/* ------------------------------------------------------------------------ */
/* poll-only doorbells                                                      */

/*
 * For peers without notifications (ivshmem-plain) and for benchmarks:
 * ring() does nothing and returns 0; wait() sleeps min(timeout, quantum) and
 * returns 0 so the caller re-checks shared state (-EINTR if a signal handler
 * cut the sleep short); fd() returns -1; drain() does nothing.
 */
struct vshm_db_poll {
	struct vshm_doorbell db;	/* handle: ops + ctx = this */
	int64_t quantum_ns;		/* longest single sleep */
};

/* @quantum_ns <= 0 selects VSHM_DB_POLL_QUANTUM_NS.  Like the eventfd one, not movable. */
void vshm_doorbell_poll_init(struct vshm_db_poll *p, int64_t quantum_ns);

/* A ready-made poll-only doorbell with the default quantum. */
extern const struct vshm_doorbell vshm_doorbell_poll_only;

#endif
