/* SPDX-License-Identifier: MIT OR GPL-2.0 */
/*
 * vshm window and wire ABI.
 *
 * This is the only header shared between user space (libvshm, the daemons)
 * and the Linux guest module, so it includes nothing from libc and nothing
 * from the kernel beyond <linux/types.h>.  It is dual-licensed so that anyone
 * can use the definitions.
 *
 * Every multi-byte field in shared memory is little-endian and fixed-width.
 * Every size and offset is pinned with a static assertion at the bottom.
 * docs/abi.md describes the same layout byte by byte.
 *
 * Who writes what (the trust model in one table):
 *
 *   header geometry ........ the hub, once, before any peer attaches
 *   role claim words ....... the claiming peer (CAS) and the hub (release)
 *   heartbeat, status ...... the owner of the role only
 *   mailbox ring d2v ....... prod/slots: driver; cons/waiting: device
 *   mailbox ring v2d ....... prod/slots: device; cons/waiting: driver
 *   driver area ............ laid out by the driver; the device touches only
 *                            what the driver names to it (vrings, buffers)
 *   FIFO ring blocks ....... tail and frames: the producer; head and event:
 *                            the consumer; size and flags: the driver
 */
#ifndef VSHM_ABI_H
#define VSHM_ABI_H

#ifdef __KERNEL__
#include <linux/types.h>
typedef __u8  vshm_u8;
typedef __u16 vshm_u16;
typedef __u32 vshm_u32;
typedef __u64 vshm_u64;
#else
typedef __UINT8_TYPE__  vshm_u8;
typedef __UINT16_TYPE__ vshm_u16;
typedef __UINT32_TYPE__ vshm_u32;
typedef __UINT64_TYPE__ vshm_u64;
#endif

/* Little-endian wire types: a different name so a reviewer sees the rule. */
typedef vshm_u16 vshm_le16;
typedef vshm_u32 vshm_le32;
typedef vshm_u64 vshm_le64;

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "vshm: big-endian hosts need byte-swapping accessors; not supported yet"
#endif

/* ------------------------------------------------------------------------ */
/* Identity and versioning                                                  */

/* "VSHMWIN1" as bytes in memory. */
#define VSHM_MAGIC		0x314e49574d485356ULL
#define VSHM_ABI_MAJOR		1	/* incompatible layout change */
#define VSHM_ABI_MINOR		0	/* compatible additions only */

#define VSHM_PAGE_SIZE		4096u
#define VSHM_CACHELINE		64u

/* ------------------------------------------------------------------------ */
/* Fixed geometry of ABI 1.x                                                */

#define VSHM_HDR_OFF		0u
#define VSHM_HDR_SIZE		4096u
#define VSHM_MBOX_OFF		4096u
#define VSHM_MBOX_SIZE		32768u		/* two rings of 16 KiB */
#define VSHM_MBOX_RING_SIZE	16384u
#define VSHM_MBOX_SLOTS		32u		/* per ring, power of two */
#define VSHM_MBOX_SLOT_SIZE	272u		/* 8-byte slot header + 264 */
#define VSHM_MBOX_SLOTS_OFF	256u		/* from the start of a ring */
#define VSHM_DRV_AREA_OFF	(VSHM_MBOX_OFF + VSHM_MBOX_SIZE)

/* Window sizes: a power of two (it becomes a PCI BAR), 64 KiB .. 64 GiB. */
#define VSHM_WIN_MIN_SIZE	(64ULL << 10)
#define VSHM_WIN_MAX_SIZE	(64ULL << 30)

/* virtio-msg parameters this bus advertises (virtio-msg revision 1). */
#define VSHM_MSG_REVISION	1u
#define VSHM_MSG_MAX_SIZE	264u		/* 8-byte header + 256 payload */
#define VSHM_MSG_MIN_MAX_SIZE	52u

/* Transport (bus) feature bits, header field transport_features. */
#define VSHM_TF_STRICT_CONFIG_GENERATION	(1u << 0)

/* ------------------------------------------------------------------------ */
/* Role claim words                                                          */

/*
 * One per role, each on its own cache line.  A peer claims a role with a
 * compare-and-swap of @owner from 0 to (its ivshmem peer id + 1), then bumps
 * @epoch, then publishes @status with VSHM_ROLE_READY (release).  The hub,
 * which sees peers leave, resets @owner of a departed peer to 0 (release).
 * Everything here is written by the owner only, except @owner itself.
 */
struct vshm_role {
	vshm_le32 owner;	/* 0 = free, else ivshmem peer id + 1 */
	vshm_le32 pid;		/* informational: owner's host pid, or 0 */
	vshm_le64 epoch;	/* owner: +1 on every successful claim */
	vshm_le64 heartbeat;	/* owner: free-running liveness counter */
	vshm_le32 status;	/* owner: VSHM_ROLE_* bits */
	vshm_le32 reserved0;
	vshm_le64 peer_epoch;	/* owner: the other role's epoch it has
				 * quiesced for (session handshake) */
	vshm_u8   reserved[24];
};

#define VSHM_ROLE_READY		(1u << 0)	/* owner finished attaching */
#define VSHM_ROLE_DETACHING	(1u << 1)	/* owner is leaving cleanly */

/*
 * The session handshake (docs/abi.md, "Sessions"):
 *  1. the driver claims its role (owner CAS), bumps epoch, status = 0;
 *  2. the device sees a new driver epoch, drops everything of the old
 *     session and stores device.peer_epoch = driver.epoch (release);
 *  3. the driver waits for that, formats the mailbox, and publishes
 *     driver.status = READY (release);
 *  4. the device sees READY for the epoch it acknowledged (acquire) and
 *     starts serving the mailbox.
 * Neither side touches the mailbox outside a session both have entered.
 */

/* ------------------------------------------------------------------------ */
/* Window header (page 0).  Written by the hub before any peer maps it.      */

struct vshm_win_hdr {
	vshm_le64 magic;		/* VSHM_MAGIC */
	vshm_le16 abi_major;		/* VSHM_ABI_MAJOR */
	vshm_le16 abi_minor;		/* VSHM_ABI_MINOR */
	vshm_le32 hdr_size;		/* VSHM_HDR_SIZE */
	vshm_le64 win_size;		/* whole window, bytes */
	vshm_le64 mbox_off;		/* VSHM_MBOX_OFF */
	vshm_le64 mbox_size;		/* VSHM_MBOX_SIZE */
	vshm_le64 drv_off;		/* VSHM_DRV_AREA_OFF */
	vshm_le64 drv_size;		/* win_size - drv_off */
	vshm_le32 mbox_slot_size;	/* VSHM_MBOX_SLOT_SIZE */
	vshm_le32 mbox_slots;		/* VSHM_MBOX_SLOTS */
	vshm_le32 msg_revision;		/* VSHM_MSG_REVISION */
	vshm_le32 msg_max_size;		/* VSHM_MSG_MAX_SIZE */
	vshm_le32 transport_features;	/* VSHM_TF_* */
	vshm_le32 vectors;		/* doorbell vectors per peer */
	vshm_le64 hub_nonce;		/* random per formatted window */
	vshm_u8   reserved0[40];	/* zero */
	struct vshm_role driver;	/* offset 128 */
	struct vshm_role device;	/* offset 192 */
	vshm_u8   reserved1[VSHM_HDR_SIZE - 256];
};

/* ------------------------------------------------------------------------ */
/* Control mailbox: two single-producer single-consumer message rings.      */

#define VSHM_MBOX_D2V		0	/* driver -> device, first 16 KiB */
#define VSHM_MBOX_V2D		1	/* device -> driver, second 16 KiB */

/*
 * Indices are free-running 32-bit counters; slot = index % VSHM_MBOX_SLOTS.
 * The producer owns the first cache line, the consumer the third (a gap line
 * between them defeats adjacent-line prefetch).  Peer-written indices are
 * hostile: a consumer that sees prod - cons > VSHM_MBOX_SLOTS, or a producer
 * that sees it, marks the mailbox broken.
 */
struct vshm_mbox_ring {
	vshm_le32 prod;			/* producer: next slot to fill */
	vshm_le32 prod_reserved;
	vshm_u8   pad0[120];
	vshm_le32 cons;			/* consumer: next slot to read */
	vshm_le32 cons_waiting;		/* consumer: 1 = ring my doorbell */
	vshm_u8   pad1[120];
};

/* One slot: a length word, then the message, padded with zeroes. */
struct vshm_mbox_slot {
	vshm_le32 len;			/* bytes of msg, 8 .. VSHM_MSG_MAX_SIZE */
	vshm_le32 reserved;		/* zero */
	vshm_u8   msg[VSHM_MSG_MAX_SIZE];
};

/* ------------------------------------------------------------------------ */
/* Doorbell vectors                                                          */

/*
 * Vector 0 signals the control mailbox.  With V vectors per peer (V >= 2),
 * notifications for virtqueue q of the device numbered d use vector
 * 1 + ((d * 256 + q) % (V - 1)); with V == 1 everything shares vector 0 and
 * the receiver rescans.  Doorbells are wake-up hints only: the shared state
 * is the truth.
 */
#define VSHM_VEC_MBOX		0u

static inline vshm_u32 vshm_vq_vector(vshm_u32 vectors, vshm_u32 dev, vshm_u32 q)
{
	if (vectors < 2)
		return VSHM_VEC_MBOX;
	return 1u + (vshm_u32)(((vshm_u64)dev * 256u + q) % (vectors - 1u));
}

/* ------------------------------------------------------------------------ */
/* Virtio split ring (virtio 1.x, section 2.7), as laid out in the window.  */

#define VSHM_VRING_DESC_F_NEXT		1u
#define VSHM_VRING_DESC_F_WRITE		2u
#define VSHM_VRING_DESC_F_INDIRECT	4u
#define VSHM_VRING_USED_F_NO_NOTIFY	1u
#define VSHM_VRING_AVAIL_F_NO_INTERRUPT	1u

#define VSHM_F_FIFO_RING		25	/* vshm-private, see docs/fifo-ring.md */
#define VSHM_F_INDIRECT_DESC		28
#define VSHM_F_EVENT_IDX		29
#define VSHM_F_VERSION_1		32
#define VSHM_F_ACCESS_PLATFORM		33
#define VSHM_F_RING_PACKED		34
#define VSHM_F_IN_ORDER			35
#define VSHM_F_ORDER_PLATFORM		36
#define VSHM_F_NOTIFICATION_DATA	38
#define VSHM_F_NOTIF_CONFIG_DATA	39
#define VSHM_F_RING_RESET		40

#define VSHM_VQ_MAX_SIZE		32768u

struct vshm_vring_desc {
	vshm_le64 addr;		/* window offset of the buffer */
	vshm_le32 len;
	vshm_le16 flags;	/* VSHM_VRING_DESC_F_* */
	vshm_le16 next;
};

struct vshm_vring_avail {
	vshm_le16 flags;	/* driver: VSHM_VRING_AVAIL_F_NO_INTERRUPT */
	vshm_le16 idx;		/* driver: free-running */
	vshm_le16 ring[];	/* then le16 used_event (EVENT_IDX) */
};

struct vshm_vring_used_elem {
	vshm_le32 id;		/* head of the completed chain */
	vshm_le32 len;		/* bytes written into the chain */
};

struct vshm_vring_used {
	vshm_le16 flags;	/* device: VSHM_VRING_USED_F_NO_NOTIFY */
	vshm_le16 idx;		/* device: free-running */
	struct vshm_vring_used_elem ring[];	/* then le16 avail_event */
};

/* Sizes of the three areas of a split ring of @num entries. */
#define VSHM_VRING_DESC_BYTES(num)	(16ULL * (num))
#define VSHM_VRING_AVAIL_BYTES(num)	(6ULL + 2ULL * (num))
#define VSHM_VRING_USED_BYTES(num)	(6ULL + 8ULL * (num))

/* ------------------------------------------------------------------------ */
/* FIFO ring (VSHM_F_FIFO_RING), docs/fifo-ring.md                           */

/*
 * A FIFO queue is two of these ring blocks in the driver area, D2V (named by
 * desc_addr) and V2D (named by driver_addr), each a 256-byte control block
 * followed by @size bytes of frames.  Positions are free-running u32 byte
 * counts; position p lives at data[p % size].  There is no tail word: a
 * frame announces itself through its own mark (below), so a polling
 * consumer watches the frame it expects next and nothing else.  The
 * consumer's two words sit on cache lines of their own.
 */
struct vshm_fifo_ctrl {
	vshm_le32 head;		/* consumer: bytes consumed */
	vshm_u8   pad0[60];	/* zero */
	vshm_le32 event;	/* consumer: notify me when frames past this are produced */
	vshm_u8   pad1[60];	/* zero */
	vshm_le32 size;		/* driver, before enabling: data area bytes */
	vshm_le32 flags;	/* driver, before enabling: zero */
	vshm_u8   pad2[120];	/* zero */
};

#define VSHM_FIFO_CTRL_SIZE	256u
#define VSHM_FIFO_MIN_SIZE	4096u		/* data area bytes, power of two */
#define VSHM_FIFO_MAX_SIZE	(1u << 24)
#define VSHM_FIFO_ALIGN		64u		/* a ring block's alignment */

/*
 * Every frame starts with this header.  mark is written last: 0 until the
 * frame is produced, then VSHM_FIFO_MARK(position, type).  A frame's length
 * follows from its type (docs/fifo-ring.md, Frames).
 */
struct vshm_fifo_frame {
	vshm_le32 mark;		/* 0, or the frame's position | its type */
	vshm_le16 id;		/* request id, < the queue's size */
	vshm_le16 zero;		/* zero */
	vshm_le32 a;		/* REQUEST: out_len; COMPLETION: written */
	vshm_le32 b;		/* REQUEST: in_len; COMPLETION: 0 */
};

#define VSHM_FIFO_MARK(pos, type)	((vshm_u32)(pos) | (vshm_u32)(type))
#define VSHM_FIFO_MARK_TYPE(m)		((m) & 15u)
#define VSHM_FIFO_MARK_POS(m)		((m) & ~15u)

#define VSHM_FIFO_REQUEST	1u	/* D2V only */
#define VSHM_FIFO_COMPLETION	2u	/* V2D only */
#define VSHM_FIFO_PAD		3u	/* either: covers the rest of the data area */

/* ------------------------------------------------------------------------ */
/* Static checks: sizes and offsets are the ABI.                            */

#define VSHM_ABI_CHECK(e) _Static_assert(e, #e)
#define VSHM_OFF(t, f) __builtin_offsetof(t, f)

VSHM_ABI_CHECK(sizeof(struct vshm_role) == 64);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_role, owner) == 0);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_role, pid) == 4);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_role, epoch) == 8);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_role, heartbeat) == 16);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_role, status) == 24);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_role, peer_epoch) == 32);

VSHM_ABI_CHECK(sizeof(struct vshm_win_hdr) == VSHM_HDR_SIZE);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_win_hdr, magic) == 0);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_win_hdr, abi_major) == 8);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_win_hdr, abi_minor) == 10);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_win_hdr, hdr_size) == 12);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_win_hdr, win_size) == 16);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_win_hdr, mbox_off) == 24);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_win_hdr, mbox_size) == 32);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_win_hdr, drv_off) == 40);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_win_hdr, drv_size) == 48);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_win_hdr, mbox_slot_size) == 56);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_win_hdr, mbox_slots) == 60);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_win_hdr, msg_revision) == 64);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_win_hdr, msg_max_size) == 68);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_win_hdr, transport_features) == 72);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_win_hdr, vectors) == 76);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_win_hdr, hub_nonce) == 80);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_win_hdr, driver) == 128);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_win_hdr, device) == 192);

VSHM_ABI_CHECK(sizeof(struct vshm_mbox_ring) == 256);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_mbox_ring, prod) == 0);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_mbox_ring, cons) == 128);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_mbox_ring, cons_waiting) == 132);
VSHM_ABI_CHECK(sizeof(struct vshm_mbox_slot) == VSHM_MBOX_SLOT_SIZE);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_mbox_slot, msg) == 8);
VSHM_ABI_CHECK(VSHM_MBOX_SLOTS_OFF + VSHM_MBOX_SLOTS * VSHM_MBOX_SLOT_SIZE
	       <= VSHM_MBOX_RING_SIZE);
VSHM_ABI_CHECK((VSHM_MBOX_SLOTS & (VSHM_MBOX_SLOTS - 1)) == 0);
VSHM_ABI_CHECK(2 * VSHM_MBOX_RING_SIZE == VSHM_MBOX_SIZE);
VSHM_ABI_CHECK(VSHM_DRV_AREA_OFF == 36864);
VSHM_ABI_CHECK(VSHM_DRV_AREA_OFF % VSHM_PAGE_SIZE == 0);

VSHM_ABI_CHECK(sizeof(struct vshm_vring_desc) == 16);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_vring_desc, len) == 8);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_vring_desc, flags) == 12);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_vring_desc, next) == 14);
VSHM_ABI_CHECK(sizeof(struct vshm_vring_avail) == 4);
VSHM_ABI_CHECK(sizeof(struct vshm_vring_used_elem) == 8);
VSHM_ABI_CHECK(sizeof(struct vshm_vring_used) == 4);

VSHM_ABI_CHECK(sizeof(struct vshm_fifo_ctrl) == VSHM_FIFO_CTRL_SIZE);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_fifo_ctrl, head) == 0);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_fifo_ctrl, event) == 64);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_fifo_ctrl, size) == 128);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_fifo_ctrl, flags) == 132);
VSHM_ABI_CHECK(sizeof(struct vshm_fifo_frame) == 16);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_fifo_frame, mark) == 0);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_fifo_frame, id) == 4);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_fifo_frame, zero) == 6);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_fifo_frame, a) == 8);
VSHM_ABI_CHECK(VSHM_OFF(struct vshm_fifo_frame, b) == 12);

#undef VSHM_OFF
#undef VSHM_ABI_CHECK

#endif /* VSHM_ABI_H */
