// SPDX-License-Identifier: MIT
/*
 * The control mailbox: two SPSC message rings in the window.
 *
 * Memory ownership: the ring indices and slots live in the window, which
 * the caller maps and owns; struct vshm_mbox holds pointers into it plus
 * our private copies of our own indices.  We never re-read our own index
 * from the window (a hostile peer could have rewritten it), and every word
 * the peer writes is loaded exactly once per call, checked, then used.
 *
 * Memory-order labels (docs/mailbox.md has the table):
 *   M1  producer release-store of prod        pairs with M2
 *   M2  consumer acquire-load of prod         pairs with M1
 *   M3  consumer release-store of cons        pairs with M4
 *   M4  producer acquire-load of cons         pairs with M3
 *   M5  producer full fence, prod -> waiting  pairs with M6
 *   M6  consumer full fence, waiting -> prod  pairs with M5
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <vshm/mbox.h>
#include "barrier.h"

#define SLOT_MASK	(VSHM_MBOX_SLOTS - 1u)

/* msg_size: bytes 6..7 of the virtio-msg header, little-endian. */
#define MSG_SIZE_OFF	6

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Deadline for a relative timeout, saturating instead of overflowing. */
static int64_t deadline_after(int64_t timeout_ns)
{
	int64_t now = now_ns();

	return timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
}

static unsigned msg_size_of(const uint8_t *msg)
{
	return (unsigned)msg[MSG_SIZE_OFF] | (unsigned)msg[MSG_SIZE_OFF + 1] << 8;
}

/* Single-writer counter, readable from other threads without a race. */
static void count(uint64_t *c)
{
	vshm_store_once(c, vshm_load_once(c) + 1);
}

/*
 * The broken word is private memory shared by our own send and receive
 * threads; relaxed is enough, it carries no data but a static string.
 */
static int set_broken(struct vshm_mbox *mb, const char *why)
{
	if (!vshm_load_once(&mb->broken))
		vshm_store_once(&mb->broken, why);
	return -EIO;
}

bool vshm_mbox_broken(const struct vshm_mbox *mb)
{
	return vshm_load_once(&mb->broken) != NULL;
}

const char *vshm_mbox_broken_reason(const struct vshm_mbox *mb)
{
	return vshm_load_once(&mb->broken);
}

static struct vshm_mbox_ring *ring_at(struct vshm_window *w, int which)
{
	return (struct vshm_mbox_ring *)(void *)
		(w->base + VSHM_MBOX_OFF + (size_t)which * VSHM_MBOX_RING_SIZE);
}

static struct vshm_mbox_slot *slots_of(struct vshm_mbox_ring *r)
{
	return (struct vshm_mbox_slot *)(void *)((uint8_t *)r + VSHM_MBOX_SLOTS_OFF);
}

int vshm_mbox_format(struct vshm_window *w)
{
	if (!w || !w->base || w->size < VSHM_DRV_AREA_OFF)
		return -EINVAL;
	/*
	 * No ordering here: formatting happens while no endpoint runs, and the
	 * role protocol (a release on the role status) publishes it to peers.
	 */
	memset(w->base + VSHM_MBOX_OFF, 0, VSHM_MBOX_SIZE);
	return 0;
}

int vshm_mbox_init(struct vshm_mbox *mb, struct vshm_window *w, int side,
		   const struct vshm_doorbell *db)
{
	int txr, rxr;

	if (!mb || !w || !w->base || w->size < VSHM_DRV_AREA_OFF)
		return -EINVAL;
	if (side == VSHM_MBOX_SIDE_DRIVER) {
		txr = VSHM_MBOX_D2V;
		rxr = VSHM_MBOX_V2D;
	} else if (side == VSHM_MBOX_SIDE_DEVICE) {
		txr = VSHM_MBOX_V2D;
		rxr = VSHM_MBOX_D2V;
	} else {
		return -EINVAL;
	}
	if (db && (!db->ops || !db->ops->ring || !db->ops->wait))
		return -EINVAL;
	memset(mb, 0, sizeof(*mb));
	mb->tx = ring_at(w, txr);
	mb->tx_slot = slots_of(mb->tx);
	mb->rx = ring_at(w, rxr);
	mb->rx_slot = slots_of(mb->rx);
	mb->db = db ? db : &vshm_doorbell_poll_only;
	mb->side = side;
	return 0;
}

void vshm_mbox_set_flags(struct vshm_mbox *mb, unsigned flags)
{
	mb->flags = flags;
}

void vshm_mbox_reset(struct vshm_mbox *mb)
{
	mb->tx_prod = mb->tx_cons = 0;
	mb->rx_cons = mb->rx_prod = 0;
	vshm_store_once(&mb->broken, (const char *)NULL);
}

void vshm_mbox_get_stats(const struct vshm_mbox *mb, struct vshm_mbox_stats *out)
{
	out->sent = vshm_load_once(&mb->st.sent);
	out->received = vshm_load_once(&mb->st.received);
	out->full = vshm_load_once(&mb->st.full);
	out->rings = vshm_load_once(&mb->st.rings);
	out->sleeps = vshm_load_once(&mb->st.sleeps);
}

/* ------------------------------------------------------------------------ */
/* producer                                                                  */

static int do_send(struct vshm_mbox *mb, const void *msg, size_t len, bool count_full)
{
	struct vshm_mbox_slot *s;
	uint32_t cons;

	if (vshm_mbox_broken(mb))
		return -EIO;
	if (!msg || len < VSHM_MBOX_MSG_MIN || len > VSHM_MSG_MAX_SIZE ||
	    msg_size_of(msg) != len)
		return -EINVAL;

	/*
	 * M4: pairs with M3.  Every read the consumer made of a slot before
	 * publishing cons past it is complete before we overwrite that slot.
	 */
	cons = vshm_load_acquire(&mb->tx->cons);
	/*
	 * The peer's cons may only move forward, and never past what we
	 * published: cons in [last cons, prod].  This also bounds
	 * prod - cons by VSHM_MBOX_SLOTS.
	 */
	if ((uint32_t)(cons - mb->tx_cons) > (uint32_t)(mb->tx_prod - mb->tx_cons))
		return set_broken(mb, "peer cons index outside [last cons, prod]");
	mb->tx_cons = cons;
	if ((uint32_t)(mb->tx_prod - cons) == VSHM_MBOX_SLOTS) {
		if (count_full)
			count(&mb->st.full);
		return -EAGAIN;
	}

	/* The slot is ours until we publish it; the peer only reads it. */
	s = &mb->tx_slot[mb->tx_prod & SLOT_MASK];
	memcpy(s->msg, msg, len);
	/* Zero the tail: no stale bytes of an older message reach the peer. */
	memset(s->msg + len, 0, VSHM_MSG_MAX_SIZE - len);
	vshm_store_once(&s->reserved, 0);
	vshm_store_once(&s->len, (uint32_t)len);
	mb->tx_prod++;
	/*
	 * M1: pairs with M2.  The slot's len and bytes written above are
	 * visible to a consumer that sees the new prod.
	 */
	vshm_store_release(&mb->tx->prod, mb->tx_prod);
	count(&mb->st.sent);

	if (!(mb->flags & VSHM_MBOX_F_ALWAYS_RING)) {
		/*
		 * M5: pairs with M6.  Store-load order between our prod store
		 * (M1) and the cons_waiting load: either the consumer's
		 * re-check after M6 sees our prod, or we see its
		 * cons_waiting = 1 here and ring.  No lost wake-up.
		 */
		vshm_mb();
		if (!vshm_load_once(&mb->tx->cons_waiting))
			return 0;
	}
	/* Doorbells are hints: a lost ring costs the peer latency, not data. */
	if (vshm_doorbell_ring(mb->db, VSHM_VEC_MBOX) == 0)
		count(&mb->st.rings);
	return 0;
}

int vshm_mbox_send(struct vshm_mbox *mb, const void *msg, size_t len)
{
	return do_send(mb, msg, len, true);
}

int vshm_mbox_send_timeout(struct vshm_mbox *mb, const void *msg, size_t len,
			   int64_t timeout_ns)
{
	int64_t deadline, left, nap = 1000;
	struct timespec ts;
	int rc;

	if (timeout_ns < 0)
		return -EINVAL;
	rc = do_send(mb, msg, len, true);
	if (rc != -EAGAIN)
		return rc;
	deadline = deadline_after(timeout_ns);
	for (;;) {
		for (unsigned i = 0; i < VSHM_MBOX_SPIN; i++) {
			rc = do_send(mb, msg, len, false);
			if (rc != -EAGAIN)
				return rc;
			vshm_cpu_relax();
		}
		left = deadline - now_ns();
		if (left <= 0)
			return -ETIMEDOUT;
		/*
		 * ABI 1.0 has no "producer waiting" word, so the consumer never
		 * rings us for space: nap with a capped exponential backoff.
		 * The doorbell is not used here, so that a sender cannot
		 * consume a wake-up meant for a receiver on the same vector.
		 */
		if (nap > left)
			nap = left;
		ts.tv_sec = (time_t)(nap / 1000000000);
		ts.tv_nsec = (long)(nap % 1000000000);
		if (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL) == EINTR)
			return -EINTR;
		if (nap < VSHM_DB_POLL_QUANTUM_NS)
			nap *= 2;
	}
}

/* ------------------------------------------------------------------------ */
/* consumer                                                                  */

int vshm_mbox_recv(struct vshm_mbox *mb, void *buf, size_t cap)
{
	const struct vshm_mbox_slot *s;
	uint32_t prod, len;

	if (vshm_mbox_broken(mb))
		return -EIO;
	if (!buf)
		return -EINVAL;

	/*
	 * M2: pairs with M1.  Every slot in [cons, prod) was fully written
	 * (len and bytes) before the producer published prod.
	 */
	prod = vshm_load_acquire(&mb->rx->prod);
	/*
	 * The peer's prod may only move forward and never more than a ring
	 * ahead of us: prod in [last prod, cons + SLOTS].
	 */
	if ((uint32_t)(prod - mb->rx_prod) >
	    (uint32_t)(mb->rx_cons + VSHM_MBOX_SLOTS - mb->rx_prod))
		return set_broken(mb, "peer prod index outside [last prod, cons + slots]");
	mb->rx_prod = prod;
	if (prod == mb->rx_cons)
		return -EAGAIN;

	s = &mb->rx_slot[mb->rx_cons & SLOT_MASK];
	len = vshm_load_once(&s->len);
	if (len < VSHM_MBOX_MSG_MIN || len > VSHM_MSG_MAX_SIZE)
		return set_broken(mb, "slot len out of range");
	if (len > cap)
		return -EMSGSIZE;
	/*
	 * The one read of the message bytes: from here on only the caller's
	 * private copy is looked at, so a peer rewriting the slot changes
	 * nothing we have validated.
	 */
	memcpy(buf, s->msg, len);
	/*
	 * The header's msg_size and the slot's len are both framing written
	 * by the same producer; disagreement is a broken producer, not a
	 * malformed message, and we stop trusting its framing altogether.
	 */
	if (msg_size_of(buf) != len)
		return set_broken(mb, "msg_size differs from slot len");
	mb->rx_cons++;
	/*
	 * M3: pairs with M4.  Our copy out of the slot is complete before
	 * the producer can see the slot as free and overwrite it.
	 */
	vshm_store_release(&mb->rx->cons, mb->rx_cons);
	count(&mb->st.received);
	return (int)len;
}

int vshm_mbox_arm(struct vshm_mbox *mb)
{
	if (vshm_mbox_broken(mb))
		return -EIO;
	/*
	 * Only we write cons_waiting (the consumer's line); a stale 1 left
	 * behind costs the producer one extra ring, nothing more.
	 */
	vshm_store_once(&mb->rx->cons_waiting, 1);
	/*
	 * M6: pairs with M5.  Store-load order between cons_waiting = 1 and
	 * the prod re-check below: either we see the producer's new prod, or
	 * the producer sees cons_waiting = 1 and rings.  The load is only a
	 * hint; vshm_mbox_recv reloads prod (M2) and checks it.
	 */
	vshm_mb();
	return vshm_load_once(&mb->rx->prod) != mb->rx_cons;
}

void vshm_mbox_disarm(struct vshm_mbox *mb)
{
	vshm_store_once(&mb->rx->cons_waiting, 0);
}

int vshm_mbox_recv_timeout(struct vshm_mbox *mb, void *buf, size_t cap,
			   int64_t timeout_ns)
{
	int64_t deadline, left;
	int rc;

	if (timeout_ns < 0)
		return -EINVAL;
	rc = vshm_mbox_recv(mb, buf, cap);
	if (rc != -EAGAIN)
		return rc;
	if (timeout_ns == 0)
		return -ETIMEDOUT;
	deadline = deadline_after(timeout_ns);
	for (;;) {
		/* Busy: a reply is often a few hundred nanoseconds away. */
		for (unsigned i = 0; i < VSHM_MBOX_SPIN; i++) {
			vshm_cpu_relax();
			rc = vshm_mbox_recv(mb, buf, cap);
			if (rc != -EAGAIN)
				return rc;
		}
		rc = vshm_mbox_arm(mb);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			left = deadline - now_ns();
			if (left <= 0) {
				vshm_mbox_disarm(mb);
				return -ETIMEDOUT;
			}
			count(&mb->st.sleeps);
			rc = vshm_doorbell_wait(mb->db, VSHM_VEC_MBOX, left);
			vshm_mbox_disarm(mb);
			if (rc && rc != -ETIMEDOUT)
				return rc;
		} else {
			vshm_mbox_disarm(mb);
		}
		/*
		 * Woken, timed out, or told a message is queued: look again.
		 * The deadline is checked on every turn, so neither spurious
		 * rings nor a prod that flickers under arm() keep us here.
		 */
		rc = vshm_mbox_recv(mb, buf, cap);
		if (rc != -EAGAIN)
			return rc;
		if (now_ns() >= deadline)
			return -ETIMEDOUT;
	}
}
