/* SPDX-License-Identifier: MIT */
/*
 * The control mailbox: two single-producer single-consumer message rings in
 * the window (abi.h, "Control mailbox"), one per direction.  Each peer holds
 * one endpoint: it produces into one ring and consumes the other.
 *
 *   driver endpoint: sends on VSHM_MBOX_D2V, receives on VSHM_MBOX_V2D
 *   device endpoint: sends on VSHM_MBOX_V2D, receives on VSHM_MBOX_D2V
 *
 * The peer is hostile: every index and length it writes is loaded once,
 * checked, and a bad one marks the endpoint broken (sticky; every later call
 * returns -EIO).  docs/mailbox.md has the protocol and the memory-order
 * table (labels M1..M6).
 *
 * Concurrency: one thread may send (vshm_mbox_send*) while another receives
 * (vshm_mbox_recv*, _arm, _disarm) on the same endpoint; two senders or two
 * receivers need the caller's own lock.  init, reset and set_flags need a
 * quiescent endpoint.
 */
#ifndef VSHM_MBOX_H
#define VSHM_MBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <vshm/abi.h>
#include <vshm/doorbell.h>
#include <vshm/window.h>

#define VSHM_MBOX_SIDE_DRIVER	0
#define VSHM_MBOX_SIDE_DEVICE	1

/* Every virtio-msg message starts with an 8-byte header (msg_size at 6). */
#define VSHM_MBOX_MSG_MIN	8u

/* Ring the peer after every send, not only when it asked (cons_waiting). */
#define VSHM_MBOX_F_ALWAYS_RING	(1u << 0)

/* How long recv_timeout polls before it arms the doorbell and sleeps. */
#define VSHM_MBOX_SPIN		128u

struct vshm_mbox_stats {
	uint64_t sent;		/* messages published */
	uint64_t received;	/* messages consumed */
	uint64_t full;		/* send calls that found the ring full */
	uint64_t rings;		/* doorbells rung (successfully) */
	uint64_t sleeps;	/* recv_timeout went to sleep on the doorbell */
};

/*
 * One endpoint.  The fields are private to mbox.c; they are in the header
 * so that callers can embed the struct.  Pointers point into the window,
 * which the caller owns and must keep mapped while the endpoint lives.
 */
struct vshm_mbox {
	/* send side: touched only by the sending thread */
	struct vshm_mbox_ring *tx;	/* window: ring we produce into */
	struct vshm_mbox_slot *tx_slot;	/* window: its slots */
	uint32_t tx_prod;		/* our prod; never re-read from the window */
	uint32_t tx_cons;		/* last peer cons that passed the checks */
	/* receive side: touched only by the receiving thread */
	struct vshm_mbox_ring *rx;	/* window: ring we consume */
	struct vshm_mbox_slot *rx_slot;	/* window: its slots */
	uint32_t rx_cons;		/* our cons; never re-read from the window */
	uint32_t rx_prod;		/* last peer prod that passed the checks */
	/* both sides */
	const struct vshm_doorbell *db;	/* borrowed; rings VSHM_VEC_MBOX */
	int side;			/* VSHM_MBOX_SIDE_* */
	unsigned flags;			/* VSHM_MBOX_F_* */
	const char *broken;		/* NULL, or why (sticky; atomic) */
	struct vshm_mbox_stats st;	/* each counter has one writer */
};

/*
 * Zero both rings (indices, waiting flags, slots).  The hub does this when
 * it formats a window; it must only run while no endpoint is in use (see
 * docs/mailbox.md, "Re-attach").  0 or -EINVAL.
 */
int vshm_mbox_format(struct vshm_window *w);

/*
 * Attach endpoint @mb for @side to the mailbox of @w, ringing and waiting on
 * @db (borrowed: it and the mapping of @w must outlive the endpoint; NULL
 * means vshm_doorbell_poll_only).  Reads nothing from
 * the window: the private indices start at 0, as vshm_mbox_format left
 * them.  0 or -EINVAL.
 */
int vshm_mbox_init(struct vshm_mbox *mb, struct vshm_window *w, int side,
		   const struct vshm_doorbell *db);

/* VSHM_MBOX_F_* (replaces the set).  Call before any traffic. */
void vshm_mbox_set_flags(struct vshm_mbox *mb, unsigned flags);

/*
 * Copy @msg (@len bytes, VSHM_MBOX_MSG_MIN .. VSHM_MSG_MAX_SIZE, its own
 * msg_size field equal to @len) into the next slot and publish it; ring the
 * peer if it is waiting.  0; -EINVAL for a bad length or msg_size;
 * -EAGAIN when the ring is full; -EIO when broken.
 */
int vshm_mbox_send(struct vshm_mbox *mb, const void *msg, size_t len);

/*
 * vshm_mbox_send, waiting up to @timeout_ns (>= 0) for a free slot.  ABI 1.0
 * gives the consumer no way to wake a waiting producer, so the wait polls
 * with a backoff capped at VSHM_DB_POLL_QUANTUM_NS.  -ETIMEDOUT when the
 * ring stayed full; -EINTR when a signal cut a sleep short; -EINVAL for a
 * negative timeout; otherwise as vshm_mbox_send.
 */
int vshm_mbox_send_timeout(struct vshm_mbox *mb, const void *msg, size_t len,
			   int64_t timeout_ns);

/*
 * Take the next message into @buf (@cap bytes; VSHM_MSG_MAX_SIZE always
 * suffices).  Returns its length (>= VSHM_MBOX_MSG_MIN); -EAGAIN when the
 * ring is empty; -EMSGSIZE when @cap is too small (the message stays
 * queued); -EIO when broken, now or before.  On -EIO the contents of @buf
 * are unspecified.
 */
int vshm_mbox_recv(struct vshm_mbox *mb, void *buf, size_t cap);

/*
 * vshm_mbox_recv, waiting up to @timeout_ns (>= 0; 0 checks once) for a
 * message: poll VSHM_MBOX_SPIN times, then arm (cons_waiting), re-check, and
 * sleep on the doorbell for the remaining time.  -ETIMEDOUT when the bound
 * expires; -EINTR when a signal interrupted the sleep; -EINVAL for a
 * negative timeout (there is no "forever": every wait on the peer is
 * bounded); a doorbell error is returned as is.
 */
int vshm_mbox_recv_timeout(struct vshm_mbox *mb, void *buf, size_t cap,
			   int64_t timeout_ns);

/*
 * For callers with their own event loop: ask the peer to ring our doorbell
 * on its next send (sets cons_waiting), with the fence that makes the
 * request race-free.  Returns 1 if a message may already be queued (do not
 * sleep: call recv), 0 if it is safe to sleep on the doorbell fd, -EIO when
 * broken.  Call vshm_mbox_disarm() after waking.
 */
int vshm_mbox_arm(struct vshm_mbox *mb);
void vshm_mbox_disarm(struct vshm_mbox *mb);

/* Sticky broken state: true once the peer violated the protocol. */
bool vshm_mbox_broken(const struct vshm_mbox *mb);

/* Why it is broken (a fixed string), or NULL. */
const char *vshm_mbox_broken_reason(const struct vshm_mbox *mb);

/* A snapshot of the counters; safe from any thread. */
void vshm_mbox_get_stats(const struct vshm_mbox *mb, struct vshm_mbox_stats *out);

/*
 * Restart the endpoint from a freshly formatted mailbox: private indices to
 * 0, broken cleared.  Touches no shared memory; the counters keep counting.
 * See docs/mailbox.md, "Re-attach", for when to call it.
 */
void vshm_mbox_reset(struct vshm_mbox *mb);

#endif
