// SPDX-License-Identifier: GPL-2.0
/*
 * virtio_shm transport: virtio devices over the vshm window.
 *
 * The window (BAR2) holds a header with two role words, the control mailbox
 * and the driver area (include/vshm/abi.h, docs/abi.md).  A user-space
 * backend (`vshm serve`) holds the device role and can reach nothing but
 * the window.  This file is the driver side of that protocol, the same one
 * libvshm's src/drvrt.c speaks:
 *
 *  - session: claim the driver role (compare-and-swap of its owner word),
 *    wait, bounded, for the device to acknowledge our epoch, format the
 *    mailbox, publish READY (docs/runtime.md, "Sessions");
 *  - control plane: virtio-msg requests over the mailbox, one at a time,
 *    each answered within a bound (docs/mailbox.md, docs/virtio-msg.md);
 *    the codec is libvshm's, so every message from the device is decoded
 *    from a private copy and validated before use;
 *  - one struct virtio_device per device the backend serves, whose
 *    virtio_config_ops turn into those messages, whose virtqueues the
 *    virtio core allocates in the window through the DMA layer
 *    (vshm_dma.c), and whose notifications are doorbells;
 *  - a watchdog that notices when the backend goes away, completes what
 *    it left in flight with errors, and has the virtio devices removed; a
 *    backend that comes back gets a new session and new virtio devices.
 *
 * Every value read from the window is loaded once, checked, then used.
 * Every wait on the device is bounded.  Memory-ordering labels (R2, M1,
 * ...) refer to docs/memory-model.md; the user-space side carries the same
 * labels.
 *
 * Debugfs: /sys/kernel/debug/virtio_shm/<pci device>/stats.
 */
#include <linux/atomic.h>
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/err.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/jiffies.h>
#include <linux/list.h>
#include <linux/log2.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <asm/unaligned.h>

#include <vshm/abi.h>
#include <vshm/msg.h>

#include "vshm_priv.h"
#include "vshm_tp.h"

/* ------------------------------------------------------------------------ */
/* Parameters                                                               */

static unsigned int call_timeout_ms = 2000;
module_param(call_timeout_ms, uint, 0644);
MODULE_PARM_DESC(call_timeout_ms, "bound on one control exchange with the device, ms (2000)");

static unsigned int attach_timeout_ms = 5000;
module_param(attach_timeout_ms, uint, 0644);
MODULE_PARM_DESC(attach_timeout_ms, "bound on the device acknowledging a new session, ms (5000)");

static unsigned int poll_ms = 100;
module_param(poll_ms, uint, 0644);
MODULE_PARM_DESC(poll_ms, "period of the liveness check and of the rescan for lost doorbells, ms (100)");

static unsigned int heartbeat_ms = 10000;
module_param(heartbeat_ms, uint, 0644);
MODULE_PARM_DESC(heartbeat_ms, "end the session when the device's heartbeat stands still this long, ms; 0 = never (10000)");

static unsigned int stall_ms = 30000;
module_param(stall_ms, uint, 0644);
MODULE_PARM_DESC(stall_ms, "reset a device that holds requests this long without completing any, ms; 0 = never (30000)");

static unsigned int pool_kb = 8192;
module_param(pool_kb, uint, 0644);
MODULE_PARM_DESC(pool_kb, "window KiB per virtio device for its rings and bounce buffers, shrunk to fit (8192)");

static unsigned int max_seg_kb = 256;
module_param(max_seg_kb, uint, 0644);
MODULE_PARM_DESC(max_seg_kb, "largest single DMA mapping, KiB: the segment limit drivers see (256)");

static bool packed;
module_param(packed, bool, 0644);
MODULE_PARM_DESC(packed, "let drivers negotiate packed virtqueues (default: split only; only split queues can be completed with errors when the device vanishes)");

#define VSHM_KMAX_DEVS		32	/* virtio devices per window */
#define VSHM_KMAX_VQS		64	/* queues per device */
#define WAIT_SLICE_MS		20	/* liveness re-check inside a wait */
#define HANDSHAKE_POLL_MS	5
#define FAIL_GRACE_MS		500	/* a live device that lost the session stops by then */
#define FAIL_POLL_MS		20
#define RESET_TIMEOUT_MS	12000	/* a blk reset waits up to 10 s for host I/O */
#define MIN_POOL		(64u << 10)
#define DRAIN_BUDGET		(4 * VSHM_MBOX_SLOTS)	/* messages per drain */
#define GEN_UPDATES_PER_SEC	16	/* config generation changes we follow */
#define MAX_RESETS		5	/* re-probes of one device per session */
#define MAX_SILENT_CALLS	3	/* unanswered exchanges in a row: session over */

/* ------------------------------------------------------------------------ */
/* State                                                                    */

enum { ST_IDLE, ST_HANDSHAKE, ST_ACTIVE };

enum {
	C_SESSIONS, C_SESSIONS_LOST, C_MSGS_TX, C_MSGS_RX, C_CALLS, C_CALL_TIMEOUTS,
	C_CALL_ERRORS, C_DROPPED, C_EVENTS, C_MBOX_VIOLATIONS, C_NOTIFIES, C_IRQ_MBOX,
	C_IRQ_VQ, C_RESCANS, C_FAILED_CHAINS, C_NEEDS_RESET, C_DEVICES, C_PROBE_ERRORS,
	C_BAD_USED, C_NR
};

static const char *const counter_names[C_NR] = {
	[C_SESSIONS] = "sessions",
	[C_SESSIONS_LOST] = "sessions_lost",
	[C_MSGS_TX] = "mbox_msgs_sent",
	[C_MSGS_RX] = "mbox_msgs_received",
	[C_CALLS] = "mbox_calls",
	[C_CALL_TIMEOUTS] = "mbox_call_timeouts",
	[C_CALL_ERRORS] = "mbox_call_errors",
	[C_DROPPED] = "mbox_msgs_dropped",
	[C_EVENTS] = "mbox_events",
	[C_MBOX_VIOLATIONS] = "mbox_violations",
	[C_NOTIFIES] = "notifies",
	[C_IRQ_MBOX] = "irqs_mailbox",
	[C_IRQ_VQ] = "irqs_queue",
	[C_RESCANS] = "rescans_with_work",
	[C_FAILED_CHAINS] = "chains_failed",
	[C_NEEDS_RESET] = "needs_reset",
	[C_DEVICES] = "devices_registered",
	[C_PROBE_ERRORS] = "probe_errors",
	[C_BAD_USED] = "bad_completions",
};

struct vshm_tp;
struct vshm_vdev;

/* One virtqueue. */
struct vshm_vq {
	struct virtqueue *vq;
	struct vshm_vdev *vd;
	struct list_head tp_node;	/* tp->vqs: interrupts, rescans */
	struct list_head vd_node;	/* vd->qvs: the unmap hook */
	unsigned int index;		/* queue number on the device */
	unsigned int vector;		/* doorbell vector, both directions */

	/*
	 * Which chains the device holds (split queues only).  The counts
	 * follow the avail ring (heads published) minus the used ring
	 * (heads completed); they are brought up to date whenever a buffer
	 * of the device is unmapped, which happens before any descriptor is
	 * reused, so neither ring can lap us.  When the device is gone the
	 * transport completes exactly these chains with an error.
	 */
	spinlock_t trk_lock;
	struct vring vr;		/* the split ring, in the window */
	u16 trk_avail;			/* avail index accounted */
	u16 trk_used;			/* used index accounted */
	u8 *trk_count;			/* [vr.num] chains outstanding per head */
	bool trk_ok;			/* false: packed, or lost track */
	bool trk_bad;			/* stopped at a completion of nothing */
	u16 stall_used;			/* trk_used when it last moved */
	unsigned long stall_since;	/* jiffies: since then */
};

/* One virtio device. */
struct vshm_vdev {
	struct virtio_device vdev;	/* registered; its release frees us */
	struct vshm_tp *tp;
	u16 dev_num;			/* the backend's device number */
	struct vshm_msg_dev_info info;	/* GET_DEVICE_INFO, validated */
	u64 offered;			/* GET_DEVICE_FEATURES, blocks 0-1 */
	u8 status;			/* device status as the device answered */
	u32 generation;			/* config generation last seen */
	unsigned long gen_window;	/* jiffies: start of the rate window */
	unsigned int gen_updates;	/* generation changes in that window */
	bool cfg_deferred;		/* a config change not yet told (rate) */
	bool needs_reset;		/* the device asked for a reset */
	atomic_t misbehaved;		/* we found it breaking the ring rules */
	atomic_t failing;		/* reset for recovery: fail in-flight chains */
	struct vshm_dma *dma;		/* its DMA device, our vdev's parent */
	u64 pool_off, pool_size;	/* its range of the driver area */
	struct list_head node;		/* tp->vdevs */
	spinlock_t qv_lock;		/* qvs */
	struct list_head qvs;
};

struct vshm_ev {
	u32 generation;
	u32 status;
	bool pending;
};

struct vshm_tp {
	struct pci_dev *pdev;
	void *win;			/* the window, write-back */
	u64 win_size;
	void __iomem *regs;		/* BAR0 */
	u32 ivposition;			/* our peer id */
	u32 vectors;			/* the hub's vectors per peer: the mapping */
	unsigned int nvec;		/* MSI-X vectors we have */
	u32 transport_features;		/* header, read once */
	struct vshm_win_hdr *hdr;
	struct vshm_mbox_ring *d2v;	/* we produce, the device consumes */
	struct vshm_mbox_ring *v2d;	/* the device produces, we consume */

	struct workqueue_struct *wq;	/* ordered: session_work */
	struct workqueue_struct *aux_wq;	/* watchdog, event_work */
	struct delayed_work session_work;
	struct delayed_work watchdog;
	struct work_struct event_work;
	bool stopping;			/* no more session steps */
	bool quiesce;			/* no more watchdog or event work */

	/* Session; written by the session work (and stop), read anywhere. */
	int state;			/* ST_* */
	u64 epoch;			/* our driver-role epoch */
	u32 dev_owner;			/* the device role's owner word */
	u64 dev_epoch;			/* and epoch, for this session */
	u16 dev_peer;			/* dev_owner - 1: where doorbells go */
	u64 dev_beat;			/* device heartbeat last seen */
	unsigned long dev_beat_at;	/* jiffies when it last moved */
	u32 refused_owner;		/* a device dropped for misbehaving */
	u64 refused_epoch;
	unsigned long hs_deadline;	/* handshake bound */
	bool busy_logged;
	atomic_t alive;			/* the session is usable */
	atomic_t failing;		/* lost: fail in-flight chains */
	unsigned long fail_from;	/* jiffies: not before (grace) */
	atomic_t vd_failing;		/* devices being recovered */
	u8 resets[VSHM_KMAX_DEVS];	/* recoveries per device, this session */
	bool refuse;			/* refuse this device next time */

	/* Mailbox (docs/mailbox.md), under mbox_lock. */
	struct mutex mbox_lock;
	u32 tx_prod;			/* our D2V prod, never re-read */
	u32 tx_cons;			/* last D2V cons that passed the checks */
	u32 rx_cons;			/* our V2D cons, never re-read */
	u32 rx_prod;			/* last V2D prod that passed the checks */
	u16 token;
	unsigned int silent_calls;	/* exchanges unanswered in a row */
	wait_queue_head_t mbox_wq;	/* woken by vector 0 */
	u8 tx_buf[VSHM_MSG_MAX_SIZE];
	u8 rx_buf[VSHM_MSG_MAX_SIZE];
	struct vshm_msg ev_msg;		/* event_work's scratch */

	/* Events recorded by the mailbox, dispatched by event_work. */
	spinlock_t ev_lock;
	struct vshm_ev ev[VSHM_KMAX_DEVS];

	spinlock_t devs_lock;		/* vdevs */
	struct list_head vdevs;
	spinlock_t vqs_lock;		/* vqs */
	struct list_head vqs;

	atomic64_t c[C_NR];
	struct dentry *dbg;
};

static void tp_count(struct vshm_tp *tp, int which)
{
	atomic64_inc(&tp->c[which]);
}

static struct device *tp_dev(struct vshm_tp *tp)
{
	return &tp->pdev->dev;
}

static struct vshm_vdev *to_vd(struct virtio_device *vdev)
{
	return container_of(vdev, struct vshm_vdev, vdev);
}

static void ring_doorbell(struct vshm_tp *tp, u16 peer, u32 vector)
{
	/* writel orders our earlier stores to the window before the ring. */
	writel(((u32)peer << 16) | (vector & 0xffff), tp->regs + 0x0c);
}

/* ------------------------------------------------------------------------ */
/* Role words (docs/abi.md, "Role claims")                                  */

struct role_view {
	u32 owner;
	u64 epoch;
	u32 status;
	u64 peer_epoch;
	u64 heartbeat;
};

static void role_read(struct vshm_role *r, struct role_view *v)
{
	/* Pairs with the owner's claim (R1, H1) and its epoch release. */
	v->owner = le32_to_cpu(smp_load_acquire(&r->owner));
	/* Pairs with the release of epoch after a claim. */
	v->epoch = le64_to_cpu(smp_load_acquire(&r->epoch));
	/* R3: pairs with the owner's R2 (READY after its set-up). */
	v->status = le32_to_cpu(smp_load_acquire(&r->status));
	/* R5: pairs with the device's R4 (it quiesced before acknowledging). */
	v->peer_epoch = le64_to_cpu(smp_load_acquire(&r->peer_epoch));
	v->heartbeat = le64_to_cpu(READ_ONCE(r->heartbeat));
}

static u32 my_owner(struct vshm_tp *tp)
{
	return tp->ivposition + 1;
}

static int role_claim(struct vshm_tp *tp)
{
	struct vshm_role *r = &tp->hdr->driver;
	u32 old;
	u64 e;

	/* R1: a full barrier; our stores below come after the hub's release. */
	old = le32_to_cpu(cmpxchg(&r->owner, 0, cpu_to_le32(my_owner(tp))));
	/* Our own id: a claim this peer left behind (an earlier binding). */
	if (old && old != my_owner(tp))
		return -EBUSY;
	WRITE_ONCE(r->status, 0);
	WRITE_ONCE(r->peer_epoch, 0);
	WRITE_ONCE(r->pid, 0);
	e = le64_to_cpu(READ_ONCE(r->epoch)) + 1;
	if (!e)
		e = 1;
	/* Status and peer_epoch cleared before the new epoch is seen. */
	smp_store_release(&r->epoch, cpu_to_le64(e));
	tp->epoch = e;
	return 0;
}

static void role_release(struct vshm_tp *tp)
{
	struct vshm_role *r = &tp->hdr->driver;

	if (le32_to_cpu(READ_ONCE(r->owner)) != my_owner(tp))
		return;
	/* Not READY before the role is free (pairs with R3, like the hub's H1). */
	smp_store_release(&r->status, 0);
	cmpxchg(&r->owner, cpu_to_le32(my_owner(tp)), 0);
}

/*
 * The session ended.  @gone: the device left its role (it cannot touch the
 * window any more).  Otherwise it may still be running: leave the role so
 * that it resets and stops, and give it a grace period before the
 * transport completes what it held.  Any context.
 */
static void session_lost(struct vshm_tp *tp, const char *why, bool gone, bool refuse)
{
	if (atomic_cmpxchg(&tp->alive, 1, 0) != 1)
		return;
	tp_count(tp, C_SESSIONS_LOST);
	dev_warn(tp_dev(tp), "session with device peer %u ended: %s\n", tp->dev_peer, why);
	if (refuse)
		WRITE_ONCE(tp->refuse, true);
	if (!gone)
		role_release(tp);
	WRITE_ONCE(tp->fail_from, jiffies + (gone ? 0 : msecs_to_jiffies(FAIL_GRACE_MS)));
	smp_wmb();	/* fail_from before failing */
	atomic_set(&tp->failing, 1);
	wake_up_all(&tp->mbox_wq);
	if (!READ_ONCE(tp->quiesce))
		mod_delayed_work(tp->aux_wq, &tp->watchdog, 0);
	if (!READ_ONCE(tp->stopping))
		mod_delayed_work(tp->wq, &tp->session_work, 0);
}

/*
 * Is the session still the one we entered?  Any context.  @beat: also judge
 * the device's heartbeat (the watchdog only: it owns dev_beat).
 */
static void check_liveness(struct vshm_tp *tp, bool beat)
{
	struct role_view d, me;

	if (!atomic_read_acquire(&tp->alive))
		return;
	role_read(&tp->hdr->device, &d);
	role_read(&tp->hdr->driver, &me);
	if (d.owner != tp->dev_owner || d.epoch != tp->dev_epoch) {
		session_lost(tp, "the device left its role", true, false);
		return;
	}
	if (!(d.status & VSHM_ROLE_READY) || (d.status & VSHM_ROLE_DETACHING)) {
		session_lost(tp, "the device is detaching", false, false);
		return;
	}
	if (me.owner != my_owner(tp) || me.epoch != tp->epoch) {
		session_lost(tp, "our driver role was taken away", false, false);
		return;
	}
	if (!beat)
		return;
	if (d.heartbeat != tp->dev_beat) {
		tp->dev_beat = d.heartbeat;
		tp->dev_beat_at = jiffies;
	} else if (heartbeat_ms &&
		   time_after(jiffies, tp->dev_beat_at + msecs_to_jiffies(heartbeat_ms))) {
		session_lost(tp, "the device's heartbeat stopped", false, false);
	}
}

/* ------------------------------------------------------------------------ */
/* Mailbox, driver side (docs/mailbox.md)                                   */

static struct vshm_mbox_slot *mbox_slot(struct vshm_mbox_ring *r, u32 index)
{
	return (struct vshm_mbox_slot *)((u8 *)r + VSHM_MBOX_SLOTS_OFF) +
	       (index % VSHM_MBOX_SLOTS);
}

static void mbox_violation(struct vshm_tp *tp, const char *why)
{
	tp_count(tp, C_MBOX_VIOLATIONS);
	dev_err(tp_dev(tp), "mailbox: %s; the device is not trusted any more\n", why);
	session_lost(tp, "mailbox protocol violation", false, true);
}

/* Under mbox_lock. 0, -EAGAIN (full) or -EIO. */
static int mbox_send(struct vshm_tp *tp, const u8 *msg, u32 len)
{
	struct vshm_mbox_ring *r = tp->d2v;
	struct vshm_mbox_slot *s;
	u32 cons;

	/* M4: the device's reads of a slot happen before we rewrite it. */
	cons = le32_to_cpu(smp_load_acquire(&r->cons));
	if (cons - tp->tx_cons > tp->tx_prod - tp->tx_cons) {
		mbox_violation(tp, "the device moved D2V cons backwards or past prod");
		return -EIO;
	}
	tp->tx_cons = cons;
	if (tp->tx_prod - cons >= VSHM_MBOX_SLOTS)
		return -EAGAIN;
	s = mbox_slot(r, tp->tx_prod);
	memcpy(s->msg, msg, len);
	memset(s->msg + len, 0, VSHM_MSG_MAX_SIZE - len);
	WRITE_ONCE(s->reserved, 0);
	WRITE_ONCE(s->len, cpu_to_le32(len));
	tp->tx_prod++;
	/* M1: the slot is complete before the device sees it. */
	smp_store_release(&r->prod, cpu_to_le32(tp->tx_prod));
	/* M5: store prod, then load cons_waiting (pairs with the device's M6). */
	smp_mb();
	if (READ_ONCE(r->cons_waiting))
		ring_doorbell(tp, tp->dev_peer, VSHM_VEC_MBOX);
	tp_count(tp, C_MSGS_TX);
	return 0;
}

/* Under mbox_lock.  The length received, -EAGAIN (empty) or -EIO. */
static int mbox_recv(struct vshm_tp *tp, u8 *buf)
{
	struct vshm_mbox_ring *r = tp->v2d;
	struct vshm_mbox_slot *s;
	u32 prod, len;

	/* M2: every slot in [cons, prod) is complete. */
	prod = le32_to_cpu(smp_load_acquire(&r->prod));
	if (prod - tp->rx_prod > tp->rx_cons + VSHM_MBOX_SLOTS - tp->rx_prod) {
		mbox_violation(tp, "the device moved V2D prod backwards or more than a ring ahead");
		return -EIO;
	}
	tp->rx_prod = prod;
	if (prod == tp->rx_cons)
		return -EAGAIN;
	s = mbox_slot(r, tp->rx_cons);
	len = le32_to_cpu(READ_ONCE(s->len));
	if (len < VSHM_MSG_HDR_SIZE || len > VSHM_MSG_MAX_SIZE) {
		mbox_violation(tp, "a V2D slot length outside 8..264");
		return -EIO;
	}
	memcpy(buf, s->msg, len);
	if (get_unaligned_le16(buf + 6) != len) {
		mbox_violation(tp, "a V2D message whose msg_size differs from its slot length");
		return -EIO;
	}
	WRITE_ONCE(tp->rx_cons, tp->rx_cons + 1);
	/* M3: our copy is done before the device may reuse the slot (M4). */
	smp_store_release(&r->cons, cpu_to_le32(tp->rx_cons));
	tp_count(tp, C_MSGS_RX);
	return len;
}

/* A hint without the lock: may a V2D message be waiting? */
static bool mbox_pending(struct vshm_tp *tp)
{
	return le32_to_cpu(READ_ONCE(tp->v2d->prod)) != READ_ONCE(tp->rx_cons);
}

/* Under mbox_lock, while no session is active on the device's side. */
static void mbox_format(struct vshm_tp *tp)
{
	memset(tp->win + VSHM_MBOX_OFF, 0, VSHM_MBOX_SIZE);
	tp->tx_prod = 0;
	tp->tx_cons = 0;
	tp->rx_prod = 0;
	WRITE_ONCE(tp->rx_cons, 0);
	/*
	 * Every wait of ours sleeps on vector 0, so ask for a doorbell on
	 * every message, for good: a consumer that keeps cons_waiting set
	 * only makes its producer ring each time (docs/mailbox.md).
	 */
	WRITE_ONCE(tp->v2d->cons_waiting, cpu_to_le32(1));
}

static void queue_events(struct vshm_tp *tp)
{
	if (!READ_ONCE(tp->quiesce))
		queue_work(tp->aux_wq, &tp->event_work);
}

static void record_event(struct vshm_tp *tp, const struct vshm_msg *m)
{
	unsigned long flags;

	tp_count(tp, C_EVENTS);
	if (vshm_msg_is_bus(m)) {
		if (m->id == VSHM_MSG_BUS_EVENT_DEVICE)
			dev_info(tp_dev(tp), "the backend reports device %u %s; picked up by the next session\n",
				 m->u.event_device.dev_num,
				 m->u.event_device.state == VSHM_MSG_DEV_ADDED ?
				 "added" : "removed or changed");
		return;
	}
	if (m->id != VSHM_MSG_EVENT_CONFIG || m->dev_num >= VSHM_KMAX_DEVS)
		return;	/* EVENT_USED: the doorbell already said it */
	spin_lock_irqsave(&tp->ev_lock, flags);
	tp->ev[m->dev_num].generation = m->u.event_config.generation;
	tp->ev[m->dev_num].status = m->u.event_config.status;
	tp->ev[m->dev_num].pending = true;
	spin_unlock_irqrestore(&tp->ev_lock, flags);
	queue_events(tp);
}

/*
 * Under mbox_lock: read what the device sent.  Events are recorded,
 * stale responses and malformed messages dropped.  With @want, stop at its
 * response (in @m) and return 1.  0 when empty, -EIO when broken.
 */
static int mbox_drain(struct vshm_tp *tp, const struct vshm_msg *want, struct vshm_msg *m)
{
	unsigned int budget = DRAIN_BUDGET;
	int n;

	/* Bounded: a device that floods us cannot keep us here. */
	while (budget--) {
		n = mbox_recv(tp, tp->rx_buf);
		if (n == -EAGAIN)
			return 0;
		if (n < 0)
			return n;
		if (vshm_msg_decode(tp->rx_buf, n, VSHM_MSG_MAX_SIZE, m)) {
			tp_count(tp, C_DROPPED);
			continue;
		}
		if (!vshm_msg_is_resp(m)) {
			if (vshm_msg_is_event(m))
				record_event(tp, m);
			else
				tp_count(tp, C_DROPPED);
			continue;
		}
		if (want && m->token == want->token && m->id == want->id &&
		    vshm_msg_is_bus(m) == vshm_msg_is_bus(want) && m->dev_num == want->dev_num)
			return 1;
		tp_count(tp, C_DROPPED);	/* the answer to an exchange that timed out */
	}
	return 0;
}

/*
 * One control exchange: send @req, wait at most @timeout_ms for the
 * response with its token, message id and device number.  0, -ETIMEDOUT,
 * -EIO (no session), or an encoder error.  Sleeps.
 */
static int vshm_call_timeout(struct vshm_tp *tp, struct vshm_msg *req, struct vshm_msg *resp,
			     unsigned int timeout_ms)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(timeout_ms);
	unsigned int silent;
	int n, rc;

	might_sleep();
	mutex_lock(&tp->mbox_lock);
	tp_count(tp, C_CALLS);
	if (!atomic_read(&tp->alive)) {
		rc = -EIO;
		goto out;
	}
	req->token = ++tp->token;
	n = vshm_msg_encode(req, tp->tx_buf, sizeof(tp->tx_buf), VSHM_MSG_MAX_SIZE);
	if (n < 0) {
		rc = n;
		goto out;
	}
	/* ABI 1.0 has no producer-waiting word: poll for room (docs/mailbox.md). */
	while ((rc = mbox_send(tp, tp->tx_buf, n)) == -EAGAIN) {
		if (!atomic_read(&tp->alive)) {
			rc = -EIO;
			goto out;
		}
		if (time_after(jiffies, deadline)) {
			rc = -ETIMEDOUT;
			goto out;
		}
		usleep_range(100, 200);
	}
	if (rc)
		goto out;
	for (;;) {
		long left;

		rc = mbox_drain(tp, req, resp);
		if (rc == 1) {
			rc = 0;
			break;
		}
		if (rc < 0)
			break;
		if (!atomic_read(&tp->alive)) {
			rc = -EIO;
			break;
		}
		left = (long)(deadline - jiffies);
		if (left <= 0) {
			rc = -ETIMEDOUT;
			break;
		}
		left = min_t(long, left, msecs_to_jiffies(WAIT_SLICE_MS));
		wait_event_timeout(tp->mbox_wq, mbox_pending(tp) || !atomic_read(&tp->alive),
				   max(left, 1L));
		check_liveness(tp, false);
	}
out:
	silent = 0;
	if (rc == -ETIMEDOUT) {
		tp_count(tp, C_CALL_TIMEOUTS);
		silent = ++tp->silent_calls;
	} else {
		if (rc)
			tp_count(tp, C_CALL_ERRORS);
		tp->silent_calls = 0;
	}
	mutex_unlock(&tp->mbox_lock);
	if (rc == -ETIMEDOUT)
		dev_warn_ratelimited(tp_dev(tp), "%s for device %u: no answer within %u ms\n",
				     vshm_msg_name(req->type, req->id), req->dev_num, timeout_ms);
	/* A device that keeps its heartbeat but answers nothing is not serving. */
	if (silent >= MAX_SILENT_CALLS)
		session_lost(tp, "the device stopped answering", false, true);
	return rc;
}

static int vshm_call(struct vshm_tp *tp, struct vshm_msg *req, struct vshm_msg *resp)
{
	return vshm_call_timeout(tp, req, resp, call_timeout_ms);
}

/* ------------------------------------------------------------------------ */
/* Completion tracking and failing what a vanished device held              */

/*
 * The device broke the ring rules on one of @vd's queues: log it, and have
 * the session work reset the device, fail what it held and probe it afresh
 * (at most MAX_RESETS times a session), as for DEVICE_NEEDS_RESET.  Any
 * context.
 */
static void vd_misbehaved(struct vshm_vdev *vd, unsigned int queue, const char *what, u32 v1, u32 v2)
{
	struct vshm_tp *tp = vd->tp;

	if (atomic_xchg(&vd->misbehaved, 1))
		return;
	tp_count(tp, C_BAD_USED);
	dev_err(&vd->vdev.dev, "device %u, queue %u: %s (%u, %u); the device is broken, resetting it\n",
		vd->dev_num, queue, what, v1, v2);
	if (!READ_ONCE(tp->stopping))
		mod_delayed_work(tp->wq, &tp->session_work, 0);
}

/*
 * Call @fn on every buffer of the chain at @head, as the descriptors in the
 * window say, with whether the device may write it: a walk bounded to the
 * queue size that touches only this device's pool (an indirect table is
 * read from its bounce copy).  Under trk_lock.
 */
static void walk_chain(struct vshm_vq *qv, u16 head,
		       void (*fn)(struct vshm_vq *qv, u64 addr, u32 len, bool write, void *arg),
		       void *arg)
{
	struct virtio_device *vdev = &qv->vd->vdev;
	u16 num = qv->vr.num, i = head, hops;

	for (hops = 0; hops < num; hops++) {
		struct vring_desc *d = &qv->vr.desc[i];
		u64 addr = virtio64_to_cpu(vdev, READ_ONCE(d->addr));
		u32 len = virtio32_to_cpu(vdev, READ_ONCE(d->len));
		u16 flags = virtio16_to_cpu(vdev, READ_ONCE(d->flags));
		u16 next = virtio16_to_cpu(vdev, READ_ONCE(d->next));

		if (flags & VRING_DESC_F_INDIRECT) {
			struct vring_desc *t = vshm_dma_pool_ptr(qv->vd->dma, addr, len);
			u32 j, n = len / sizeof(*t);

			for (j = 0; t && j < n && j < VSHM_VQ_MAX_SIZE; j++) {
				u16 f = virtio16_to_cpu(vdev, READ_ONCE(t[j].flags));

				fn(qv, virtio64_to_cpu(vdev, READ_ONCE(t[j].addr)),
				   virtio32_to_cpu(vdev, READ_ONCE(t[j].len)), f & VRING_DESC_F_WRITE, arg);
			}
		} else {
			fn(qv, addr, len, flags & VRING_DESC_F_WRITE, arg);
		}
		if (!(flags & VRING_DESC_F_NEXT) || next >= num)
			break;
		i = next;
	}
}

static void add_len(struct vshm_vq *qv, u64 addr, u32 len, bool write, void *arg)
{
	if (write)
		*(u64 *)arg += len;
}

/*
 * Under trk_lock.  Account what the device completed since the last call
 * and check each completion as the virtio core will: a head the driver
 * holds (else the core marks the queue broken and stops there, and so do
 * we), and no more bytes written than the chain can take (the core takes
 * the length as it is; we have the device reset).
 */
static void track_locked(struct vshm_vq *qv)
{
	struct virtio_device *vdev = &qv->vd->vdev;
	u16 num = qv->vr.num, used, avail, na, nu, k;

	if (!qv->trk_ok)
		return;
	/*
	 * Used before avail: every completion up to @used is of a chain
	 * published before it, so it is in [.., @avail) too.
	 */
	/* S4: the used entries up to @used are written (device's S3). */
	used = virtio16_to_cpu(vdev, smp_load_acquire(&qv->vr.used->idx));
	/* Like S2: the avail entries up to @avail are written (virtio_ring). */
	avail = virtio16_to_cpu(vdev, smp_load_acquire(&qv->vr.avail->idx));
	na = avail - qv->trk_avail;
	nu = used - qv->trk_used;
	if (na > num) {
		/* The driver took buffers back: we cannot follow. */
		qv->trk_ok = false;
		return;
	}
	for (k = 0; k < na; k++) {
		u16 slot = (u16)(qv->trk_avail + k) & (num - 1);
		u16 h = virtio16_to_cpu(vdev, READ_ONCE(qv->vr.avail->ring[slot]));

		if (h < num && qv->trk_count[h] < U8_MAX)
			qv->trk_count[h]++;
	}
	qv->trk_avail = avail;
	if (qv->trk_bad)
		return;
	if (nu > num) {
		/* More completions than the queue holds: a used index gone wild. */
		qv->trk_bad = true;
		vd_misbehaved(qv->vd, qv->index, "used index moved past the queue size", used, qv->trk_used);
		return;
	}
	for (k = 0; k < nu; k++) {
		u16 slot = (u16)(qv->trk_used + k) & (num - 1);
		u32 id = virtio32_to_cpu(vdev, READ_ONCE(qv->vr.used->ring[slot].id));
		u32 len = virtio32_to_cpu(vdev, READ_ONCE(qv->vr.used->ring[slot].len));
		u64 room = 0;

		if (id >= num || !qv->trk_count[id]) {
			qv->trk_bad = true;	/* where the virtio core stops too */
			qv->trk_used += k;
			vd_misbehaved(qv->vd, qv->index,
				      id >= num ? "completion of a buffer id past the queue (id, size)" :
						  "completion of a buffer it does not hold (id, size)", id, num);
			return;
		}
		qv->trk_count[id]--;
		walk_chain(qv, (u16)id, add_len, &room);
		if (len > room)
			vd_misbehaved(qv->vd, qv->index, "completion longer than its buffers (length, room)",
				      len, (u32)min_t(u64, room, U32_MAX));
	}
	qv->trk_used = used;
}

/* The DMA layer calls this after unmapping a buffer of @ctx's device. */
static void vshm_vd_unmap_hook(void *ctx)
{
	struct vshm_vdev *vd = ctx;
	struct vshm_vq *qv;
	unsigned long flags, f2;

	spin_lock_irqsave(&vd->qv_lock, flags);
	list_for_each_entry(qv, &vd->qvs, vd_node) {
		spin_lock_irqsave(&qv->trk_lock, f2);
		track_locked(qv);
		spin_unlock_irqrestore(&qv->trk_lock, f2);
	}
	spin_unlock_irqrestore(&vd->qv_lock, flags);
}

static void poison(struct vshm_vq *qv, u64 addr, u32 len, bool write, void *arg)
{
	void *p = write ? vshm_dma_pool_ptr(qv->vd->dma, addr, len) : NULL;

	if (p)
		memset(p, 0xff, len);
}

/*
 * The device is gone: play its part for every chain it held, completing it
 * with nothing written, and make sure the driver kicks us for every chain
 * it adds from now on (avail_event = what we have seen).  Any context.
 */
static unsigned int vq_fail_outstanding(struct vshm_vq *qv)
{
	struct virtio_device *vdev = &qv->vd->vdev;
	unsigned long flags;
	unsigned int n = 0;
	bool unbreak = false;
	u16 num = qv->vr.num, used, h;

	spin_lock_irqsave(&qv->trk_lock, flags);
	track_locked(qv);
	if (!qv->trk_ok)
		goto out;
	if (virtqueue_is_broken(qv->vq)) {
		/*
		 * The virtio core stopped at a bad completion; it reads the
		 * used ring from its own position, which it tells us here.
		 * Ours stopped at the same entry (track_locked), unless the
		 * device rewrote the ring under both of us.
		 */
		u16 pos = (u16)virtqueue_enable_cb_prepare(qv->vq);

		if (pos != qv->trk_used)
			dev_warn_ratelimited(&vdev->dev, "queue %u: the core stopped at completion %u, we at %u\n",
					     qv->index, pos, qv->trk_used);
		qv->trk_used = pos;
		unbreak = true;
	}
	qv->trk_bad = false;	/* the ring is ours now */
	used = qv->trk_used;
	for (h = 0; h < num; h++) {
		if (!qv->trk_count[h])
			continue;
		/*
		 * The buffers the device was to write are filled with 0xff,
		 * so that what the driver copies back carries no success
		 * status (virtio-blk: status 0xff is an I/O error).
		 */
		walk_chain(qv, h, poison, NULL);
		qv->vr.used->ring[used & (num - 1)].id = cpu_to_virtio32(vdev, h);
		qv->vr.used->ring[used & (num - 1)].len = 0;
		used++;
		qv->trk_count[h] = 0;
		n++;
	}
	WRITE_ONCE(vring_avail_event(&qv->vr), cpu_to_virtio16(vdev, qv->trk_avail));
	WRITE_ONCE(qv->vr.used->flags, 0);
	/* S3's part: the entries (and the poisoned buffers) before the index. */
	smp_store_release(&qv->vr.used->idx, cpu_to_virtio16(vdev, used));
	qv->trk_used = used;
	/* The core may read the ring again: what is there now is ours. */
	if (unbreak)
		__virtqueue_unbreak(qv->vq);
out:
	spin_unlock_irqrestore(&qv->trk_lock, flags);
	return n;
}

static bool failing_now(struct vshm_tp *tp)
{
	if (!atomic_read(&tp->failing))
		return false;
	smp_rmb();	/* failing before fail_from (session_lost) */
	return time_after_eq(jiffies, READ_ONCE(tp->fail_from));
}

/* Does nobody serve @qv's chains any more (and the grace is over)? */
static bool vq_failing(struct vshm_vq *qv)
{
	return atomic_read(&qv->vd->failing) || failing_now(qv->vd->tp);
}

static void is_request(struct vshm_vq *qv, u64 addr, u32 len, bool write, void *arg)
{
	if (!write)
		*(bool *)arg = true;
}

/*
 * Chains of @qv that are requests: they carry something for the device to
 * read.  Receive buffers (write-only chains: a console's input, an rng's
 * buffer) may be held for as long as the device has nothing to say.
 * Under trk_lock.
 */
static unsigned int held_requests(struct vshm_vq *qv)
{
	unsigned int n = 0;
	u16 h;

	for (h = 0; h < qv->vr.num; h++) {
		bool readable = false;

		if (!qv->trk_count[h])
			continue;
		walk_chain(qv, h, is_request, &readable);
		n += readable;
	}
	return n;
}

/*
 * A device that holds requests and completes none of them for stall_ms is
 * not serving: Linux 6.1's virtio_blk would wait for it forever.  From the
 * watchdog.
 */
static void check_stalled(struct vshm_vq *qv)
{
	unsigned long flags;
	unsigned int held;
	u16 used;

	if (!stall_ms || !qv->trk_ok || vq_failing(qv) || atomic_read(&qv->vd->misbehaved))
		return;
	spin_lock_irqsave(&qv->trk_lock, flags);
	track_locked(qv);
	used = qv->trk_used;
	held = qv->trk_bad ? 0 : held_requests(qv);
	spin_unlock_irqrestore(&qv->trk_lock, flags);
	if (!held || used != qv->stall_used) {
		qv->stall_used = used;
		qv->stall_since = jiffies;
		return;
	}
	if (time_after(jiffies, qv->stall_since + msecs_to_jiffies(stall_ms)))
		vd_misbehaved(qv->vd, qv->index, "requests held without a completion (requests, ms)",
			      held, stall_ms);
}

/* Did the virtio core find a completion it could not take?  Any context. */
static void check_broken(struct vshm_vq *qv)
{
	if (unlikely(virtqueue_is_broken(qv->vq)) && !vq_failing(qv))
		vd_misbehaved(qv->vd, qv->index, "the virtio core refused a completion (see above); queue, device",
			      qv->index, qv->vd->dev_num);
}

/*
 * Look at every queue: doorbells are hints, so this also delivers a
 * completion whose interrupt got lost.  Queues nobody serves any more get
 * their chains failed first.
 */
static void rescan_vqs(struct vshm_tp *tp)
{
	struct vshm_vq *qv;
	unsigned long flags;
	unsigned int n;

	spin_lock_irqsave(&tp->vqs_lock, flags);
	list_for_each_entry(qv, &tp->vqs, tp_node) {
		if (vq_failing(qv)) {
			n = vq_fail_outstanding(qv);
			if (n)
				atomic64_add(n, &tp->c[C_FAILED_CHAINS]);
		}
		if (vring_interrupt(0, qv->vq) == IRQ_HANDLED)
			tp_count(tp, C_RESCANS);
		check_broken(qv);
		check_stalled(qv);
	}
	spin_unlock_irqrestore(&tp->vqs_lock, flags);
}

/* ------------------------------------------------------------------------ */
/* virtio_config_ops                                                        */

/*
 * The virtio core re-reads config until generation() stands still, without
 * a bound.  A device that changes its generation without end would keep it
 * there: we follow at most GEN_UPDATES_PER_SEC changes a second.
 */
static bool follow_generation(struct vshm_vdev *vd, u32 gen)
{
	if (gen == READ_ONCE(vd->generation))
		return true;
	if (time_after(jiffies, vd->gen_window + HZ)) {
		vd->gen_window = jiffies;
		vd->gen_updates = 0;
	}
	if (vd->gen_updates++ >= GEN_UPDATES_PER_SEC) {
		dev_warn_ratelimited(&vd->vdev.dev, "config generation keeps changing; not followed\n");
		return false;
	}
	WRITE_ONCE(vd->generation, gen);
	return true;
}

static void vshm_get(struct virtio_device *vdev, unsigned int offset, void *buf, unsigned int len)
{
	struct vshm_vdev *vd = to_vd(vdev);
	struct vshm_msg req, resp;
	int tries;

	if (offset > vd->info.config_size || len > vd->info.config_size - offset) {
		dev_warn_ratelimited(&vdev->dev, "config read of %u bytes at %u: the config space has %u\n",
				     len, offset, vd->info.config_size);
		memset(buf, 0, len);
		return;
	}
	/* Re-read until one generation covers the whole range. */
	for (tries = 0; tries < 8; tries++) {
		u32 done = 0, gen0 = 0;
		bool stable = true;

		while (done < len) {
			u32 n = min_t(u32, len - done, VSHM_MSG_MAX_CONFIG_DATA);

			vshm_msg_init_req(&req, VSHM_MSG_GET_CONFIG, vd->dev_num);
			req.u.cfg.offset = offset + done;
			req.u.cfg.length = n;
			if (vshm_call(vd->tp, &req, &resp))
				goto fail;
			if (resp.u.cfg.offset != offset + done || resp.u.cfg.length != n) {
				dev_warn_ratelimited(&vdev->dev,
						     "GET_CONFIG answered for %u+%u, asked %u+%u\n",
						     resp.u.cfg.offset, resp.u.cfg.length,
						     offset + done, n);
				goto fail;
			}
			if (!done)
				gen0 = resp.u.cfg.generation;
			else if (resp.u.cfg.generation != gen0)
				stable = false;
			memcpy((u8 *)buf + done, resp.u.cfg.data, n);
			done += n;
		}
		if (len)
			follow_generation(vd, gen0);
		if (stable)
			return;
	}
fail:
	memset(buf, 0, len);
}

static void vshm_set(struct virtio_device *vdev, unsigned int offset, const void *buf,
		     unsigned int len)
{
	struct vshm_vdev *vd = to_vd(vdev);
	struct vshm_msg req, resp;
	u32 done = 0;

	if (offset > vd->info.config_size || len > vd->info.config_size - offset) {
		dev_warn_ratelimited(&vdev->dev, "config write of %u bytes at %u: the config space has %u\n",
				     len, offset, vd->info.config_size);
		return;
	}
	while (done < len) {
		u32 n = min_t(u32, len - done, VSHM_MSG_MAX_CONFIG_DATA);
		bool strict = vd->tp->transport_features & VSHM_TF_STRICT_CONFIG_GENERATION;

		vshm_msg_init_req(&req, VSHM_MSG_SET_CONFIG, vd->dev_num);
		req.u.cfg.generation = strict ? READ_ONCE(vd->generation) : 0;
		req.u.cfg.offset = offset + done;
		req.u.cfg.length = n;
		memcpy(req.u.cfg.data, (const u8 *)buf + done, n);
		if (vshm_call(vd->tp, &req, &resp))
			return;
		if (resp.u.cfg.length != n) {
			dev_warn_ratelimited(&vdev->dev, "config write of %u bytes at %u not applied\n",
					     n, offset + done);
			return;
		}
		done += n;
	}
}

static u32 vshm_generation(struct virtio_device *vdev)
{
	return READ_ONCE(to_vd(vdev)->generation);
}

static u8 vshm_get_status(struct virtio_device *vdev)
{
	return READ_ONCE(to_vd(vdev)->status);
}

static int vshm_set_status_msg(struct vshm_vdev *vd, u32 status, u32 *got, unsigned int timeout_ms)
{
	struct vshm_msg req, resp;
	int rc;

	vshm_msg_init_req(&req, VSHM_MSG_SET_DEVICE_STATUS, vd->dev_num);
	req.u.status.status = status;
	rc = vshm_call_timeout(vd->tp, &req, &resp, timeout_ms);
	if (!rc)
		*got = resp.u.status.status;
	return rc;
}

static void vshm_reset(struct virtio_device *vdev)
{
	struct vshm_vdev *vd = to_vd(vdev);
	struct vshm_msg req, resp;
	u32 s = 1;
	int rc, i;

	rc = vshm_set_status_msg(vd, 0, &s, max_t(unsigned int, call_timeout_ms, RESET_TIMEOUT_MS));
	/* vshm completes a reset synchronously; poll, bounded, if not. */
	for (i = 0; !rc && s && i < 100; i++) {
		usleep_range(1000, 2000);
		vshm_msg_init_req(&req, VSHM_MSG_GET_DEVICE_STATUS, vd->dev_num);
		rc = vshm_call(vd->tp, &req, &resp);
		if (!rc)
			s = resp.u.status.status;
	}
	if (!rc && s)
		dev_warn(&vdev->dev, "the device did not finish its reset (status %#x)\n", s);
	else if (rc && atomic_read(&vd->tp->alive))
		dev_warn(&vdev->dev, "reset failed: %d\n", rc);
	WRITE_ONCE(vd->status, 0);
	vd->needs_reset = false;
}

static void vshm_set_status(struct virtio_device *vdev, u8 status)
{
	struct vshm_vdev *vd = to_vd(vdev);
	u32 got;

	if (!status) {
		vshm_reset(vdev);
		return;
	}
	/* The device's answer is its status; it drops FEATURES_OK it refuses. */
	if (!vshm_set_status_msg(vd, status, &got, call_timeout_ms))
		WRITE_ONCE(vd->status, (u8)got);
}

static u64 vshm_get_features(struct virtio_device *vdev)
{
	struct vshm_vdev *vd = to_vd(vdev);
	struct vshm_msg req, resp;

	vshm_msg_init_req(&req, VSHM_MSG_GET_DEVICE_FEATURES, vd->dev_num);
	req.u.feat.block_index = 0;
	req.u.feat.num_blocks = 2;
	if (vshm_call(vd->tp, &req, &resp) || resp.u.feat.block_index != 0 ||
	    resp.u.feat.num_blocks != 2)
		return 0;
	vd->offered = resp.u.feat.features[0] | ((u64)resp.u.feat.features[1] << 32);
	return vd->offered;
}

static int vshm_finalize_features(struct virtio_device *vdev)
{
	struct vshm_vdev *vd = to_vd(vdev);
	struct vshm_msg req, resp;
	int rc;

	vring_transport_features(vdev);
	vdev->features &= vd->offered;
	/* vshm's FIFO layout is for its own drivers, never for Linux's. */
	vdev->features &= ~BIT_ULL(VSHM_F_FIFO_RING);
	if (!packed)
		vdev->features &= ~BIT_ULL(VIRTIO_F_RING_PACKED);
	if (!(vdev->features & BIT_ULL(VIRTIO_F_VERSION_1)) ||
	    !(vdev->features & BIT_ULL(VIRTIO_F_ACCESS_PLATFORM))) {
		dev_err(&vdev->dev, "device %u does not offer VERSION_1 and ACCESS_PLATFORM (features %#llx): refused, every buffer must go through the window\n",
			vd->dev_num, vd->offered);
		return -ENODEV;
	}
	vshm_msg_init_req(&req, VSHM_MSG_SET_DRIVER_FEATURES, vd->dev_num);
	req.u.feat.block_index = 0;
	req.u.feat.num_blocks = 2;
	req.u.feat.features[0] = lower_32_bits(vdev->features);
	req.u.feat.features[1] = upper_32_bits(vdev->features);
	rc = vshm_call(vd->tp, &req, &resp);
	return rc ? -EIO : 0;
}

static bool vshm_vq_notify(struct virtqueue *vq)
{
	struct vshm_vq *qv = vq->priv;
	struct vshm_tp *tp = qv->vd->tp;

	if (likely(atomic_read(&tp->alive) && !atomic_read(&qv->vd->failing))) {
		ring_doorbell(tp, READ_ONCE(tp->dev_peer), qv->vector);
		tp_count(tp, C_NOTIFIES);
		return true;
	}
	/*
	 * No device: the chain just added is completed (with an error) right
	 * here, so that a driver polling for it with interrupts off sees it;
	 * the watchdog delivers the completion to drivers that wait for the
	 * callback.
	 */
	if (vq_failing(qv))
		atomic64_add(vq_fail_outstanding(qv), &tp->c[C_FAILED_CHAINS]);
	if (!READ_ONCE(tp->quiesce))
		mod_delayed_work(tp->aux_wq, &tp->watchdog, 0);
	return true;
}

/* GET_VQUEUE @index; 0 and @resp filled, or an error. */
static int get_vqueue(struct vshm_vdev *vd, unsigned int index, struct vshm_msg *resp)
{
	struct vshm_msg req;
	int rc;

	vshm_msg_init_req(&req, VSHM_MSG_GET_VQUEUE, vd->dev_num);
	req.u.get_vq.index = index;
	rc = vshm_call(vd->tp, &req, resp);
	if (!rc && resp->u.get_vq.index != index)
		rc = -EPROTO;
	return rc;
}

static struct virtqueue *setup_vq(struct vshm_vdev *vd, unsigned int index,
				  vq_callback_t *callback, const char *name, bool ctx)
{
	struct vshm_tp *tp = vd->tp;
	struct virtio_device *vdev = &vd->vdev;
	struct vshm_msg req, resp;
	struct virtqueue *vq;
	struct vshm_vq *qv;
	unsigned long flags;
	u64 desc, drv, dev;
	u32 num;
	int rc;

	if (index >= vd->info.max_virtqueues)
		return ERR_PTR(-ENOENT);
	rc = get_vqueue(vd, index, &resp);
	if (rc)
		return ERR_PTR(rc);
	if (!resp.u.get_vq.max_size)
		return ERR_PTR(-ENOENT);
	if (resp.u.get_vq.flags & VSHM_MSG_VQ_ENABLED)
		return ERR_PTR(-EBUSY);
	num = rounddown_pow_of_two(min_t(u32, resp.u.get_vq.max_size, VSHM_VQ_MAX_SIZE));

	qv = kzalloc(sizeof(*qv), GFP_KERNEL);
	if (!qv)
		return ERR_PTR(-ENOMEM);
	qv->vd = vd;
	qv->index = index;
	qv->vector = vshm_vq_vector(tp->vectors, vd->dev_num, index);
	spin_lock_init(&qv->trk_lock);
	INIT_LIST_HEAD(&qv->tp_node);
	INIT_LIST_HEAD(&qv->vd_node);

	/* The DMA API puts the ring in the window; its addresses are offsets. */
	vq = vring_create_virtqueue(index, num, SMP_CACHE_BYTES, vdev, true, true, ctx,
				    vshm_vq_notify, callback, name);
	if (!vq) {
		kfree(qv);
		return ERR_PTR(-ENOMEM);
	}
	qv->vq = vq;
	vq->priv = qv;
	if (!virtio_has_feature(vdev, VIRTIO_F_RING_PACKED)) {
		qv->vr = *virtqueue_get_vring(vq);
		qv->trk_count = kcalloc(qv->vr.num, sizeof(*qv->trk_count), GFP_KERNEL);
		qv->trk_ok = !!qv->trk_count;
		qv->stall_since = jiffies;
	}

	num = virtqueue_get_vring_size(vq);
	desc = virtqueue_get_desc_addr(vq);
	drv = virtqueue_get_avail_addr(vq);
	dev = virtqueue_get_used_addr(vq);
	vshm_msg_init_req(&req, VSHM_MSG_SET_VQUEUE, vd->dev_num);
	req.u.set_vq.index = index;
	req.u.set_vq.flags = VSHM_MSG_SETVQ_OP_ENABLE;
	req.u.set_vq.size = num;
	req.u.set_vq.desc_addr = desc;
	req.u.set_vq.driver_addr = drv;
	req.u.set_vq.device_addr = dev;
	rc = vshm_call(tp, &req, &resp);
	/* SET_VQUEUE has no result: read the queue back. */
	if (!rc)
		rc = get_vqueue(vd, index, &resp);
	if (!rc && (!(resp.u.get_vq.flags & VSHM_MSG_VQ_ENABLED) || resp.u.get_vq.cur_size != num ||
		    resp.u.get_vq.desc_addr != desc || resp.u.get_vq.driver_addr != drv ||
		    resp.u.get_vq.device_addr != dev)) {
		dev_err(&vdev->dev, "queue %u (%u entries at %#llx/%#llx/%#llx) was not enabled by the device\n",
			index, num, desc, drv, dev);
		rc = -EIO;
	}
	if (rc) {
		vring_del_virtqueue(vq);
		kfree(qv->trk_count);
		kfree(qv);
		return ERR_PTR(rc);
	}

	spin_lock_irqsave(&vd->qv_lock, flags);
	list_add_tail(&qv->vd_node, &vd->qvs);
	spin_unlock_irqrestore(&vd->qv_lock, flags);
	spin_lock_irqsave(&tp->vqs_lock, flags);
	list_add_tail(&qv->tp_node, &tp->vqs);
	spin_unlock_irqrestore(&tp->vqs_lock, flags);
	return vq;
}

static void vshm_del_vqs(struct virtio_device *vdev)
{
	struct vshm_vdev *vd = to_vd(vdev);
	struct vshm_tp *tp = vd->tp;
	struct virtqueue *vq, *n;
	unsigned long flags;

	/* A driver that bails out of probe may not have reset the device. */
	if (READ_ONCE(vd->status))
		vshm_reset(vdev);
	list_for_each_entry_safe(vq, n, &vdev->vqs, list) {
		struct vshm_vq *qv = vq->priv;

		/* Off both lists first: no interrupt, rescan or hook sees it. */
		spin_lock_irqsave(&tp->vqs_lock, flags);
		list_del_init(&qv->tp_node);
		spin_unlock_irqrestore(&tp->vqs_lock, flags);
		spin_lock_irqsave(&vd->qv_lock, flags);
		list_del_init(&qv->vd_node);
		spin_unlock_irqrestore(&vd->qv_lock, flags);
		vring_del_virtqueue(vq);
		kfree(qv->trk_count);
		kfree(qv);
	}
}

static int vshm_find_vqs(struct virtio_device *vdev, unsigned int nvqs, struct virtqueue *vqs[],
			 vq_callback_t *callbacks[], const char * const names[], const bool *ctx,
			 struct irq_affinity *desc)
{
	unsigned int i, queue = 0;

	if (nvqs > VSHM_KMAX_VQS)
		return -EINVAL;
	for (i = 0; i < nvqs; i++) {
		if (!names[i]) {
			vqs[i] = NULL;
			continue;
		}
		vqs[i] = setup_vq(to_vd(vdev), queue++, callbacks[i], names[i],
				  ctx ? ctx[i] : false);
		if (IS_ERR(vqs[i])) {
			int err = PTR_ERR(vqs[i]);

			vshm_del_vqs(vdev);
			return err;
		}
	}
	return 0;
}

static void vshm_synchronize_cbs(struct virtio_device *vdev)
{
	struct vshm_tp *tp = to_vd(vdev)->tp;
	unsigned int i;

	for (i = 0; i < tp->nvec; i++)
		synchronize_irq(pci_irq_vector(tp->pdev, i));
}

static const char *vshm_bus_name(struct virtio_device *vdev)
{
	return pci_name(to_vd(vdev)->tp->pdev);
}

static const struct virtio_config_ops vshm_config_ops = {
	.get			= vshm_get,
	.set			= vshm_set,
	.generation		= vshm_generation,
	.get_status		= vshm_get_status,
	.set_status		= vshm_set_status,
	.reset			= vshm_reset,
	.find_vqs		= vshm_find_vqs,
	.del_vqs		= vshm_del_vqs,
	.synchronize_cbs	= vshm_synchronize_cbs,
	.get_features		= vshm_get_features,
	.finalize_features	= vshm_finalize_features,
	.bus_name		= vshm_bus_name,
};

/* ------------------------------------------------------------------------ */
/* Devices                                                                  */

static void vshm_vdev_release(struct device *dev)
{
	kfree(to_vd(dev_to_virtio(dev)));
}

static int get_devices(struct vshm_tp *tp, u16 *nums, unsigned int max)
{
	struct vshm_msg req, resp;
	unsigned int n = 0, rounds;
	u32 off = 0, i;
	int rc;

	for (rounds = 0; rounds < 64 && off <= 0xffff; rounds++) {
		u16 want = 256;

		vshm_msg_init_bus(&req, VSHM_MSG_BUS_GET_DEVICES);
		req.u.get_devices.offset = off;
		req.u.get_devices.count = want;
		rc = vshm_call(tp, &req, &resp);
		if (rc)
			return rc;
		if (resp.u.get_devices.offset != off || resp.u.get_devices.count > want)
			return -EPROTO;
		for (i = 0; i < resp.u.get_devices.count; i++)
			if (resp.u.get_devices.bitmap[i / 8] & (1u << (i % 8))) {
				if (n < max)
					nums[n] = off + i;
				n++;
			}
		if (!resp.u.get_devices.next_offset)
			break;
		off = resp.u.get_devices.next_offset;
	}
	if (n > max)
		dev_warn(tp_dev(tp), "the backend serves %u devices; using the first %u\n", n, max);
	return min(n, max);
}

static void probe_dev(struct vshm_tp *tp, u16 dev_num, u64 pool_off, u64 pool_size)
{
	struct vshm_msg req, resp;
	struct vshm_vdev *vd;
	struct vshm_dma *dma;
	unsigned long flags;
	char name[24];
	int rc;

	vshm_msg_init_req(&req, VSHM_MSG_GET_DEVICE_INFO, dev_num);
	rc = vshm_call(tp, &req, &resp);
	if (rc)
		goto err;
	if (!resp.u.dev_info.device_id || !resp.u.dev_info.max_virtqueues ||
	    resp.u.dev_info.max_virtqueues > VSHM_KMAX_VQS) {
		dev_err(tp_dev(tp), "device %u: device id %u with %u queues: not supported\n",
			dev_num, resp.u.dev_info.device_id, resp.u.dev_info.max_virtqueues);
		rc = -EPROTO;
		goto err;
	}
	vd = kzalloc(sizeof(*vd), GFP_KERNEL);
	if (!vd) {
		rc = -ENOMEM;
		goto err;
	}
	vd->tp = tp;
	vd->dev_num = dev_num;
	vd->info = resp.u.dev_info;
	spin_lock_init(&vd->qv_lock);
	INIT_LIST_HEAD(&vd->qvs);
	INIT_LIST_HEAD(&vd->node);

	snprintf(name, sizeof(name), "vshm%u", dev_num);
	dma = vshm_dma_create(tp_dev(tp), name, tp->win, pool_off, pool_size,
			      (size_t)max_seg_kb << 10, vshm_vd_unmap_hook, vd);
	if (IS_ERR(dma)) {
		rc = PTR_ERR(dma);
		kfree(vd);
		goto err;
	}
	vd->dma = dma;
	vd->pool_off = pool_off;
	vd->pool_size = pool_size;
	vd->vdev.dev.parent = vshm_dma_device(dma);
	vd->vdev.dev.release = vshm_vdev_release;
	vd->vdev.config = &vshm_config_ops;
	vd->vdev.id.device = vd->info.device_id;
	vd->vdev.id.vendor = vd->info.vendor_id;
	rc = register_virtio_device(&vd->vdev);
	if (rc) {
		put_device(&vd->vdev.dev);	/* frees vd */
		vshm_dma_destroy(dma);
		goto err;
	}
	spin_lock_irqsave(&tp->devs_lock, flags);
	list_add_tail(&vd->node, &tp->vdevs);
	spin_unlock_irqrestore(&tp->devs_lock, flags);
	tp_count(tp, C_DEVICES);
	dev_info(tp_dev(tp), "device %u: virtio id %u as %s, pool %llu KiB at window offset %#llx\n",
		 dev_num, vd->info.device_id, dev_name(&vd->vdev.dev), pool_size >> 10, pool_off);
	return;
err:
	tp_count(tp, C_PROBE_ERRORS);
	if (atomic_read(&tp->alive))
		dev_err(tp_dev(tp), "device %u: %d; not registered\n", dev_num, rc);
}

/* The session is up: find the backend's devices and register them. */
static void discover(struct vshm_tp *tp)
{
	u16 nums[VSHM_KMAX_DEVS];
	u64 area = tp->win_size - VSHM_DRV_AREA_OFF, per, off;
	int n, i;

	n = get_devices(tp, nums, ARRAY_SIZE(nums));
	if (n < 0) {
		dev_err(tp_dev(tp), "GET_DEVICES failed: %d\n", n);
		return;
	}
	if (!n) {
		dev_info(tp_dev(tp), "the backend serves no devices\n");
		return;
	}
	/* The driver area is ours to lay out: one pool per device. */
	per = min_t(u64, (u64)pool_kb << 10, div_u64(area, n)) & PAGE_MASK;
	if (per < MIN_POOL) {
		dev_err(tp_dev(tp), "a %llu-byte window leaves %llu bytes for each of %d devices; need %u\n",
			tp->win_size, per, n, MIN_POOL);
		return;
	}
	off = VSHM_DRV_AREA_OFF;
	for (i = 0; i < n && atomic_read(&tp->alive); i++, off += per)
		probe_dev(tp, nums[i], off, per);
}

/* Unregister every virtio device; none of the session remains after. */
static void remove_devices(struct vshm_tp *tp)
{
	struct vshm_vdev *vd, *n;
	unsigned long flags;
	LIST_HEAD(gone);

	spin_lock_irqsave(&tp->devs_lock, flags);
	list_splice_init(&tp->vdevs, &gone);
	spin_unlock_irqrestore(&tp->devs_lock, flags);
	list_for_each_entry_safe_reverse(vd, n, &gone, node) {
		struct vshm_dma *dma = vd->dma;

		list_del_init(&vd->node);
		unregister_virtio_device(&vd->vdev);	/* may free vd */
		vshm_dma_destroy(dma);
	}
}

/*
 * A device that set DEVICE_NEEDS_RESET stopped serving its queues; one
 * that broke the ring rules (vd_misbehaved) cannot be trusted with them.
 * Reset it (synchronous: it lets go of the rings), fail what it held,
 * remove its virtio device and probe it afresh in the same part of the
 * window.  Other devices carry on.  The session work runs this.
 */
static void recover_devices(struct vshm_tp *tp)
{
	struct vshm_vdev *vd;
	unsigned long flags;

	while (atomic_read(&tp->alive)) {
		struct vshm_dma *dma;
		u64 off, size;
		bool found = false;
		u16 num;

		spin_lock_irqsave(&tp->devs_lock, flags);
		list_for_each_entry(vd, &tp->vdevs, node) {
			if (vd->needs_reset || atomic_read(&vd->misbehaved)) {
				list_del_init(&vd->node);
				found = true;
				break;
			}
		}
		spin_unlock_irqrestore(&tp->devs_lock, flags);
		if (!found)
			return;
		num = vd->dev_num;
		dma = vd->dma;
		off = vd->pool_off;
		size = vd->pool_size;
		vshm_reset(&vd->vdev);
		if (num < VSHM_KMAX_DEVS) {
			spin_lock_irqsave(&tp->ev_lock, flags);
			tp->ev[num].pending = false;	/* that event is handled */
			spin_unlock_irqrestore(&tp->ev_lock, flags);
		}
		atomic_inc(&tp->vd_failing);
		atomic_set(&vd->failing, 1);
		if (!READ_ONCE(tp->quiesce))
			mod_delayed_work(tp->aux_wq, &tp->watchdog, 0);
		unregister_virtio_device(&vd->vdev);	/* may free vd */
		atomic_dec(&tp->vd_failing);
		vshm_dma_destroy(dma);
		if (num < VSHM_KMAX_DEVS && ++tp->resets[num] > MAX_RESETS) {
			dev_err(tp_dev(tp), "device %u needed %u resets in this session; left unregistered\n",
				num, MAX_RESETS);
			continue;
		}
		probe_dev(tp, num, off, size);
	}
}

static void dispatch_events(struct vshm_tp *tp)
{
	struct vshm_vdev *vd;
	unsigned long flags;

	spin_lock_irqsave(&tp->devs_lock, flags);
	list_for_each_entry(vd, &tp->vdevs, node) {
		struct vshm_ev ev;

		spin_lock(&tp->ev_lock);
		ev = tp->ev[vd->dev_num];
		tp->ev[vd->dev_num].pending = false;
		spin_unlock(&tp->ev_lock);
		if (!ev.pending)
			continue;
		if ((ev.status & VSHM_MSG_STATUS_NEEDS_RESET) && !vd->needs_reset) {
			/* The session work resets and re-probes it. */
			vd->needs_reset = true;
			WRITE_ONCE(vd->status, vd->status | VIRTIO_CONFIG_S_NEEDS_RESET);
			tp_count(tp, C_NEEDS_RESET);
			dev_err(&vd->vdev.dev, "device %u needs a reset (it found a queue broken); resetting it\n",
				vd->dev_num);
			if (!READ_ONCE(tp->stopping))
				mod_delayed_work(tp->wq, &tp->session_work, 0);
		}
		/* Past the rate we follow, the watchdog tells the driver later. */
		if (!follow_generation(vd, ev.generation)) {
			vd->cfg_deferred = true;
			continue;
		}
		vd->cfg_deferred = false;
		virtio_config_changed(&vd->vdev);
	}
	spin_unlock_irqrestore(&tp->devs_lock, flags);
}

/* The config changes dispatch_events held back, once the rate allows. */
static void deliver_deferred(struct vshm_tp *tp)
{
	struct vshm_vdev *vd;
	unsigned long flags;

	spin_lock_irqsave(&tp->devs_lock, flags);
	list_for_each_entry(vd, &tp->vdevs, node) {
		if (vd->cfg_deferred && time_after(jiffies, vd->gen_window + HZ)) {
			vd->cfg_deferred = false;
			virtio_config_changed(&vd->vdev);
		}
	}
	spin_unlock_irqrestore(&tp->devs_lock, flags);
}

static void event_work_fn(struct work_struct *work)
{
	struct vshm_tp *tp = container_of(work, struct vshm_tp, event_work);

	/* A caller in vshm_call() drains for us; never wait behind it. */
	if (mutex_trylock(&tp->mbox_lock)) {
		if (atomic_read(&tp->alive))
			mbox_drain(tp, NULL, &tp->ev_msg);
		mutex_unlock(&tp->mbox_lock);
	}
	dispatch_events(tp);
}

/* ------------------------------------------------------------------------ */
/* Session state machine (docs/runtime.md, "Sessions")                      */

static bool try_claim(struct vshm_tp *tp)
{
	struct role_view d, me;

	role_read(&tp->hdr->device, &d);
	if (!d.owner || !(d.status & VSHM_ROLE_READY) || d.owner - 1 > 0xffff)
		return false;
	if (d.owner == tp->refused_owner && d.epoch == tp->refused_epoch)
		return false;
	if (role_claim(tp)) {
		role_read(&tp->hdr->driver, &me);
		if (!tp->busy_logged)
			dev_info(tp_dev(tp), "the driver role is held by peer %d; waiting for it\n",
				 (int)me.owner - 1);
		tp->busy_logged = true;
		return false;
	}
	tp->busy_logged = false;
	tp->hs_deadline = jiffies + msecs_to_jiffies(attach_timeout_ms);
	return true;
}

/* 1: acknowledged, 0: not yet, -ETIMEDOUT: given up (role released). */
static int handshake_step(struct vshm_tp *tp)
{
	struct role_view d;

	role_read(&tp->hdr->device, &d);
	if (d.owner && d.owner - 1 <= 0xffff && (d.status & VSHM_ROLE_READY) &&
	    d.peer_epoch == tp->epoch &&
	    !(d.owner == tp->refused_owner && d.epoch == tp->refused_epoch)) {
		tp->dev_owner = d.owner;
		tp->dev_epoch = d.epoch;
		tp->dev_peer = d.owner - 1;
		tp->dev_beat = d.heartbeat;
		tp->dev_beat_at = jiffies;
		return 1;
	}
	if (time_after(jiffies, tp->hs_deadline)) {
		role_release(tp);
		dev_warn(tp_dev(tp), "no device acknowledged our session (epoch %llu) within %u ms\n",
			 tp->epoch, attach_timeout_ms);
		return -ETIMEDOUT;
	}
	return 0;
}

static void session_up(struct vshm_tp *tp)
{
	/* The device is off the mailbox until it sees READY: format it. */
	mutex_lock(&tp->mbox_lock);
	mbox_format(tp);
	tp->silent_calls = 0;
	mutex_unlock(&tp->mbox_lock);
	atomic_set(&tp->failing, 0);
	WRITE_ONCE(tp->refuse, false);
	memset(tp->resets, 0, sizeof(tp->resets));
	atomic_set_release(&tp->alive, 1);
	/* R2: the formatted mailbox is visible with READY. */
	smp_store_release(&tp->hdr->driver.status, cpu_to_le32(VSHM_ROLE_READY));
	tp->state = ST_ACTIVE;
	tp_count(tp, C_SESSIONS);
	dev_info(tp_dev(tp), "session %lld with device peer %u (driver epoch %llu, device epoch %llu)\n",
		 (long long)atomic64_read(&tp->c[C_SESSIONS]), tp->dev_peer, tp->epoch,
		 tp->dev_epoch);
	discover(tp);
}

/*
 * End of a session: every virtio device goes (in-flight requests of a lost
 * device are failed by the watchdog meanwhile), the role is released.
 */
static void session_down(struct vshm_tp *tp)
{
	unsigned long flags;

	remove_devices(tp);
	if (READ_ONCE(tp->refuse)) {
		tp->refused_owner = tp->dev_owner;
		tp->refused_epoch = tp->dev_epoch;
	}
	atomic_set(&tp->alive, 0);
	role_release(tp);
	atomic_set(&tp->failing, 0);
	spin_lock_irqsave(&tp->ev_lock, flags);
	memset(tp->ev, 0, sizeof(tp->ev));
	spin_unlock_irqrestore(&tp->ev_lock, flags);
	tp->state = ST_IDLE;
}

static void session_work_fn(struct work_struct *work)
{
	struct vshm_tp *tp = container_of(to_delayed_work(work), struct vshm_tp, session_work);
	unsigned long next = msecs_to_jiffies(poll_ms);

	if (READ_ONCE(tp->stopping))
		return;
	switch (tp->state) {
	case ST_IDLE:
		if (try_claim(tp)) {
			tp->state = ST_HANDSHAKE;
			next = msecs_to_jiffies(HANDSHAKE_POLL_MS);
		}
		break;
	case ST_HANDSHAKE:
		switch (handshake_step(tp)) {
		case 1:
			session_up(tp);
			break;
		case 0:
			next = msecs_to_jiffies(HANDSHAKE_POLL_MS);
			break;
		default:
			tp->state = ST_IDLE;
		}
		break;
	case ST_ACTIVE:
		recover_devices(tp);
		if (!atomic_read(&tp->alive)) {
			session_down(tp);
			next = 0;
		}
		break;
	}
	if (!READ_ONCE(tp->stopping))
		queue_delayed_work(tp->wq, &tp->session_work, next);
}

static void watchdog_fn(struct work_struct *work)
{
	struct vshm_tp *tp = container_of(to_delayed_work(work), struct vshm_tp, watchdog);
	unsigned long next = msecs_to_jiffies(poll_ms);

	if (atomic_read(&tp->alive)) {
		struct vshm_role *me = &tp->hdr->driver;

		check_liveness(tp, true);
		WRITE_ONCE(me->heartbeat, cpu_to_le64(le64_to_cpu(READ_ONCE(me->heartbeat)) + 1));
		if (mbox_pending(tp))
			queue_events(tp);
		deliver_deferred(tp);
	}
	rescan_vqs(tp);
	if (atomic_read(&tp->failing) || atomic_read(&tp->vd_failing))
		next = msecs_to_jiffies(FAIL_POLL_MS);
	if (!READ_ONCE(tp->quiesce))
		queue_delayed_work(tp->aux_wq, &tp->watchdog, next);
}

/* ------------------------------------------------------------------------ */
/* Debugfs                                                                  */

static DEFINE_MUTEX(dbg_lock);
static struct dentry *dbg_root;
static unsigned int dbg_users;

static int stats_show(struct seq_file *m, void *unused)
{
	static const char *const states[] = { "idle", "handshake", "active" };
	struct vshm_tp *tp = m->private;
	struct vshm_vdev *vd;
	unsigned long flags;
	int i;

	seq_printf(m, "state %s\n", states[READ_ONCE(tp->state)]);
	seq_printf(m, "alive %d\n", atomic_read(&tp->alive));
	seq_printf(m, "failing %d\n", atomic_read(&tp->failing));
	seq_printf(m, "peer_id %u\n", tp->ivposition);
	seq_printf(m, "device_peer %u\n", READ_ONCE(tp->dev_peer));
	seq_printf(m, "driver_epoch %llu\n", READ_ONCE(tp->epoch));
	seq_printf(m, "vectors %u\n", tp->vectors);
	for (i = 0; i < C_NR; i++)
		seq_printf(m, "%s %lld\n", counter_names[i], (long long)atomic64_read(&tp->c[i]));
	spin_lock_irqsave(&tp->devs_lock, flags);
	list_for_each_entry(vd, &tp->vdevs, node) {
		struct vshm_dma_stats s;
		struct vshm_vq *qv;

		vshm_dma_get_stats(vd->dma, &s);
		seq_printf(m, "dev%u.virtio_id %u\n", vd->dev_num, vd->info.device_id);
		seq_printf(m, "dev%u.name %s\n", vd->dev_num, dev_name(&vd->vdev.dev));
		seq_printf(m, "dev%u.features %#llx\n", vd->dev_num, vd->vdev.features);
		seq_printf(m, "dev%u.status %#x\n", vd->dev_num, READ_ONCE(vd->status));
		seq_printf(m, "dev%u.pool_offset %#llx\n", vd->dev_num, vd->pool_off);
		seq_printf(m, "dev%u.pool_size %llu\n", vd->dev_num, s.pool_size);
		seq_printf(m, "dev%u.pool_in_use %llu\n", vd->dev_num, s.in_use);
		seq_printf(m, "dev%u.pool_peak %llu\n", vd->dev_num, s.peak);
		seq_printf(m, "dev%u.pool_coherent %llu\n", vd->dev_num, s.coherent);
		seq_printf(m, "dev%u.bounce_maps %llu\n", vd->dev_num, s.maps);
		seq_printf(m, "dev%u.bounce_unmaps %llu\n", vd->dev_num, s.unmaps);
		seq_printf(m, "dev%u.bounce_live %llu\n", vd->dev_num, s.live);
		seq_printf(m, "dev%u.bytes_to_device %llu\n", vd->dev_num, s.bytes_to_dev);
		seq_printf(m, "dev%u.bytes_from_device %llu\n", vd->dev_num, s.bytes_from_dev);
		seq_printf(m, "dev%u.map_failures %llu\n", vd->dev_num, s.map_failures);
		seq_printf(m, "dev%u.alloc_failures %llu\n", vd->dev_num, s.alloc_failures);
		seq_printf(m, "dev%u.bad_unmaps %llu\n", vd->dev_num, s.bad_unmaps);
		spin_lock(&vd->qv_lock);
		list_for_each_entry(qv, &vd->qvs, vd_node)
			seq_printf(m, "dev%u.vq%u size %u vector %u desc %#llx driver %#llx device %#llx tracked %d\n",
				   vd->dev_num, qv->index, virtqueue_get_vring_size(qv->vq),
				   qv->vector, (u64)virtqueue_get_desc_addr(qv->vq),
				   (u64)virtqueue_get_avail_addr(qv->vq),
				   (u64)virtqueue_get_used_addr(qv->vq), qv->trk_ok);
		spin_unlock(&vd->qv_lock);
	}
	spin_unlock_irqrestore(&tp->devs_lock, flags);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(stats);

static void dbg_add(struct vshm_tp *tp)
{
	mutex_lock(&dbg_lock);
	if (!dbg_users++)
		dbg_root = debugfs_create_dir(KBUILD_MODNAME, NULL);
	tp->dbg = debugfs_create_dir(pci_name(tp->pdev), dbg_root);
	debugfs_create_file("stats", 0444, tp->dbg, tp, &stats_fops);
	mutex_unlock(&dbg_lock);
}

static void dbg_remove(struct vshm_tp *tp)
{
	mutex_lock(&dbg_lock);
	debugfs_remove_recursive(tp->dbg);
	tp->dbg = NULL;
	if (!--dbg_users) {
		debugfs_remove_recursive(dbg_root);
		dbg_root = NULL;
	}
	mutex_unlock(&dbg_lock);
}

/* ------------------------------------------------------------------------ */
/* Hooks for the PCI layer                                                  */

bool vshm_tp_irq(struct vshm_tp *tp, unsigned int vector)
{
	struct vshm_vq *qv;
	bool work = false;

	if (!tp)
		return false;
	if (vector == VSHM_VEC_MBOX) {
		tp_count(tp, C_IRQ_MBOX);
		work = mbox_pending(tp);
		wake_up(&tp->mbox_wq);
		if (atomic_read(&tp->alive))
			queue_events(tp);
		if (tp->vectors >= 2)
			return work;
	} else {
		tp_count(tp, C_IRQ_VQ);
	}
	spin_lock(&tp->vqs_lock);
	list_for_each_entry(qv, &tp->vqs, tp_node) {
		if (qv->vector == vector) {
			if (vring_interrupt(0, qv->vq) == IRQ_HANDLED)
				work = true;
			check_broken(qv);
		}
	}
	spin_unlock(&tp->vqs_lock);
	return work;
}

struct vshm_tp *vshm_tp_create(const struct vshm_tp_params *p)
{
	struct vshm_tp *tp;
	int i;

	tp = kzalloc(sizeof(*tp), GFP_KERNEL);
	if (!tp)
		return ERR_PTR(-ENOMEM);
	tp->pdev = p->pdev;
	tp->win = p->win;
	tp->win_size = p->win_size;
	tp->regs = p->regs;
	tp->ivposition = p->ivposition;
	tp->vectors = clamp_t(u32, p->hub_vectors, 1, 64);
	tp->nvec = p->nvec;
	tp->hdr = p->win;
	tp->d2v = p->win + VSHM_MBOX_OFF;
	tp->v2d = p->win + VSHM_MBOX_OFF + VSHM_MBOX_RING_SIZE;
	tp->transport_features = le32_to_cpu(READ_ONCE(tp->hdr->transport_features));
	mutex_init(&tp->mbox_lock);
	init_waitqueue_head(&tp->mbox_wq);
	spin_lock_init(&tp->ev_lock);
	spin_lock_init(&tp->devs_lock);
	spin_lock_init(&tp->vqs_lock);
	INIT_LIST_HEAD(&tp->vdevs);
	INIT_LIST_HEAD(&tp->vqs);
	INIT_DELAYED_WORK(&tp->session_work, session_work_fn);
	INIT_DELAYED_WORK(&tp->watchdog, watchdog_fn);
	INIT_WORK(&tp->event_work, event_work_fn);
	for (i = 0; i < C_NR; i++)
		atomic64_set(&tp->c[i], 0);

	tp->wq = alloc_ordered_workqueue("%s-%s", 0, KBUILD_MODNAME, pci_name(p->pdev));
	tp->aux_wq = alloc_workqueue("%s-%s-aux", 0, 0, KBUILD_MODNAME, pci_name(p->pdev));
	if (!tp->wq || !tp->aux_wq) {
		if (tp->wq)
			destroy_workqueue(tp->wq);
		if (tp->aux_wq)
			destroy_workqueue(tp->aux_wq);
		kfree(tp);
		return ERR_PTR(-ENOMEM);
	}
	dbg_add(tp);
	queue_delayed_work(tp->wq, &tp->session_work, 0);
	queue_delayed_work(tp->aux_wq, &tp->watchdog, msecs_to_jiffies(poll_ms));
	return tp;
}

void vshm_tp_stop(struct vshm_tp *tp)
{
	if (!tp)
		return;
	WRITE_ONCE(tp->stopping, true);
	smp_mb();	/* stopping before the cancel: no step re-arms after it */
	cancel_delayed_work_sync(&tp->session_work);
	/* The watchdog keeps running: a device that dies now is still failed. */
	if (tp->state != ST_IDLE)
		session_down(tp);
	WRITE_ONCE(tp->quiesce, true);
	smp_mb();	/* quiesce before the cancel: no work re-arms after it */
	cancel_delayed_work_sync(&tp->watchdog);
	cancel_work_sync(&tp->event_work);
	dbg_remove(tp);
}

void vshm_tp_free(struct vshm_tp *tp)
{
	if (!tp)
		return;
	destroy_workqueue(tp->wq);
	destroy_workqueue(tp->aux_wq);
	kfree(tp);
}
