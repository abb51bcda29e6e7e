// SPDX-License-Identifier: MIT
/*
 * virtio-blk device model (virtio 1.x section 5.2) over a raw image file or
 * block device.
 *
 * Who owns what: the request header, the discard/write-zeroes ranges and
 * the status byte live in the window, which the driver may rewrite at any
 * moment.  The header and the ranges are copied into a struct blk_rq once,
 * when the request arrives, and only that copy is ever looked at.  Data
 * buffers are handed to the kernel as iovecs pointing into the window (the
 * zero-copy path); we never read them ourselves.  The status pointer and
 * the iovec array are computed from the chain's iov, which lives in the
 * runtime's private memory.
 *
 * Flush: a FLUSH waits until every write-class request (OUT, DISCARD,
 * WRITE_ZEROES) started before it has completed, then runs fdatasync; any
 * request arriving while a FLUSH waits queues behind it, so a stream of
 * writes cannot starve it.  In writethrough mode (writeback = 0) every
 * write-class request runs fdatasync before it completes.
 *
 * Requests are not reordered otherwise: virtio-blk makes no ordering
 * promise between requests in flight, and neither do we.
 *
 * Threading: none; the runtime serialises every call into the model.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fs.h>

#include <vshm/devmodel.h>
#include "blkio.h"
#include "iov_copy.h"

/* ---- virtio-blk numbers (virtio 1.x 5.2, linux/virtio_blk.h) ------------ */

#define BLK_F_SIZE_MAX		1
#define BLK_F_SEG_MAX		2
#define BLK_F_RO		5
#define BLK_F_BLK_SIZE		6
#define BLK_F_FLUSH		9
#define BLK_F_CONFIG_WCE	11
#define BLK_F_DISCARD		13
#define BLK_F_WRITE_ZEROES	14

#define BLK_T_IN		0u
#define BLK_T_OUT		1u
#define BLK_T_FLUSH		4u
#define BLK_T_GET_ID		8u
#define BLK_T_DISCARD		11u
#define BLK_T_WRITE_ZEROES	13u

#define BLK_S_OK		0
#define BLK_S_IOERR		1
#define BLK_S_UNSUPP		2

#define BLK_WZ_FLAG_UNMAP	1u
#define BLK_ID_BYTES		20u

/* Config space offsets (struct virtio_blk_config, little-endian). */
#define BLK_CFG_CAPACITY	0	/* le64 */
#define BLK_CFG_SIZE_MAX	8	/* le32 */
#define BLK_CFG_SEG_MAX		12	/* le32 */
#define BLK_CFG_BLK_SIZE	20	/* le32 */
#define BLK_CFG_WRITEBACK	32	/* u8 */
#define BLK_CFG_NUM_QUEUES	34	/* le16 */
#define BLK_CFG_MAX_DISCARD_SECTORS 36	/* le32 */
#define BLK_CFG_MAX_DISCARD_SEG	40	/* le32 */
#define BLK_CFG_DISCARD_ALIGN	44	/* le32 */
#define BLK_CFG_MAX_WZ_SECTORS	48	/* le32 */
#define BLK_CFG_MAX_WZ_SEG	52	/* le32 */
#define BLK_CFG_WZ_MAY_UNMAP	56	/* u8 */
#define BLK_CFG_SIZE		60	/* up to and including unused1[3] */

/* ---- our limits (docs/devices.md) --------------------------------------- */

#define BLK_SECTOR		512u
#define BLK_HDR_BYTES		16u
#define BLK_RANGE_BYTES		16u
#define BLK_SEG_MAX		126u		/* data buffers per request */
#define BLK_IOV_MAX		(BLK_SEG_MAX + 2)	/* + header + status */
#define BLK_SIZE_MAX		(1u << 20)	/* per buffer, advisory */
#define BLK_QUEUE_MAX		256u
#define BLK_MAX_RANGES		16u		/* discard / write-zeroes segments */
#define BLK_MAX_DISCARD_SECTORS	(1u << 22)	/* 2 GiB per range */
#define BLK_MAX_WZ_SECTORS	(1u << 22)
#define BLK_DISCARD_ALIGN	8u		/* 4 KiB: a hint, not enforced */
#define BLK_MAX_DATA		0xfffffe00u	/* bytes per request: written is 32-bit */
#define BLK_RESET_WAIT_MS	10000u		/* bound on waiting for host I/O */
#define BLK_ZERO_BUF		65536u		/* write-zeroes fallback */
#define BLK_ZERO_IOV		16u		/* so 1 MiB per write */

#define BLK_OFFERED_RW	((1ull << BLK_F_SIZE_MAX) | (1ull << BLK_F_SEG_MAX) |	\
			 (1ull << BLK_F_BLK_SIZE) | (1ull << BLK_F_FLUSH) |	\
			 (1ull << BLK_F_CONFIG_WCE) | (1ull << BLK_F_DISCARD) |	\
			 (1ull << BLK_F_WRITE_ZEROES))
#define BLK_OFFERED_RO	((1ull << BLK_F_SIZE_MAX) | (1ull << BLK_F_SEG_MAX) |	\
			 (1ull << BLK_F_BLK_SIZE) | (1ull << BLK_F_FLUSH) |	\
			 (1ull << BLK_F_CONFIG_WCE) | (1ull << BLK_F_RO))

#define container_of(p, t, m) ((t *)(void *)((char *)(p) - offsetof(t, m)))

static const uint8_t blk_zeros[BLK_ZERO_BUF];

enum blk_stage {
	ST_RW,		/* the data read or write */
	ST_RANGE,	/* fallocate for the current range */
	ST_ZWRITE,	/* writing zeroes for the current range */
	ST_SYNC,	/* fdatasync */
};

enum blk_method { M_PUNCH, M_ZERO_RANGE, M_WRITE };

struct blk_range {
	uint64_t off;			/* bytes */
	uint64_t len;			/* bytes */
	uint32_t flags;
};

/* One request taken from the driver; lives in a pool sized by the queue. */
struct blk_rq {
	struct vshm_blkio_op op;	/* the current stage's I/O */
	struct blk *b;
	struct vshm_req *req;		/* the runtime's; NULL once orphaned */
	uint8_t *status;		/* last writable byte (window) */
	uint32_t type;			/* BLK_T_*, from the private header copy */
	uint32_t written;		/* used length at completion */
	int stage;			/* enum blk_stage */
	int method;			/* enum blk_method (ST_RANGE) */
	int writeclass;			/* counted in b->writes_inflight */
	int busy;			/* taken from the pool */
	int orphan;			/* given back on reset while the kernel had it */
	unsigned nrange, range;		/* ranges, the one being worked on */
	uint64_t zoff, zleft, zchunk;	/* ST_ZWRITE progress */
	struct blk_range ranges[BLK_MAX_RANGES];
	struct blk_rq *next;		/* free list or flush wait list */
	struct iovec iov[BLK_IOV_MAX];	/* data, as the kernel sees it */
};

struct blk {
	struct vshm_devmodel *m;
	int fd;				/* the image */
	int read_only;
	uint64_t capacity;		/* sectors */
	char serial[BLK_ID_BYTES];	/* NUL padded, not terminated */
	uint32_t depth;			/* io_uring entries */
	int force_pread;
	uint64_t features;		/* negotiated */
	uint8_t wce;			/* 1 writeback, 0 writethrough */
	int no_zero_range;		/* fallocate(ZERO_RANGE) unsupported here */
	int no_punch;			/* fallocate(PUNCH_HOLE) unsupported here */
	int resetting;			/* inside reset: everything completes with 0 */
	int dispatching;		/* inside blk_dispatch_waiting */
	int broken_reported;		/* needs_reset sent for a dead engine */
	unsigned writes_inflight;	/* write-class requests started, not done */
	uint64_t completed;		/* requests completed (poll's count) */
	struct blk_rq *wait_head;	/* behind a waiting FLUSH, FIFO */
	struct blk_rq **wait_tail;
	struct blk_rq *free;		/* pool free list */
	struct blk_rq *pool;		/* BLK_QUEUE_MAX entries */
	struct vshm_blkio io;
};

static inline uint32_t ld_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t ld_le64(const uint8_t *p)
{
	return (uint64_t)ld_le32(p) | (uint64_t)ld_le32(p + 4) << 32;
}

static inline void st_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void st_le32(uint8_t *p, uint32_t v)
{
	st_le16(p, (uint16_t)v);
	st_le16(p + 2, (uint16_t)(v >> 16));
}

static inline void st_le64(uint8_t *p, uint64_t v)
{
	st_le32(p, (uint32_t)v);
	st_le32(p + 4, (uint32_t)(v >> 32));
}

static inline int blk_has(const struct blk *b, int bit)
{
	return !!(b->features & (1ull << bit));
}

/* [sector, sector + nsect) inside the disk?  Never computes a wrapping sum. */
static inline int blk_in_range(const struct blk *b, uint64_t sector, uint64_t nsect)
{
	return sector <= b->capacity && nsect <= b->capacity - sector;
}

/* ------------------------------------------------------------------------ */
/* Request bookkeeping                                                       */

static struct blk_rq *blk_rq_get(struct blk *b)
{
	struct blk_rq *rq = b->free;

	if (!rq)
		return NULL;
	b->free = rq->next;
	rq->next = NULL;
	rq->busy = 1;
	rq->orphan = 0;
	rq->writeclass = 0;
	rq->nrange = rq->range = 0;
	rq->written = 1;
	return rq;
}

static void blk_rq_put(struct blk *b, struct blk_rq *rq)
{
	rq->busy = 0;
	rq->orphan = 0;
	rq->req = NULL;
	rq->next = b->free;
	b->free = rq;
}

static void blk_dispatch_waiting(struct blk *b);

/*
 * Finish @rq: write @status (a BLK_S_* value), or with @status < 0 (reset)
 * complete with written 0 and leave the status byte alone.
 */
static void blk_end(struct blk_rq *rq, int status)
{
	struct blk *b = rq->b;
	struct vshm_req *req = rq->req;
	uint32_t written = 0;

	if (status >= 0) {
		*rq->status = (uint8_t)status;
		written = rq->written;
	}
	if (rq->writeclass && b->writes_inflight)
		b->writes_inflight--;
	blk_rq_put(b, rq);
	b->completed++;
	b->m->host->complete(b->m->host->ctx, req, written);
	if (!b->resetting)
		blk_dispatch_waiting(b);
}

/* Answer a request that never got a blk_rq (rejected up front). */
static int blk_reply(struct blk *b, struct vshm_req *r, uint8_t *status, uint8_t st,
		     uint32_t written)
{
	*status = st;
	b->completed++;
	b->m->host->complete(b->m->host->ctx, r, written);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Stages                                                                    */

static void blk_io_done(struct vshm_blkio_op *op, int res);

static void blk_submit(struct blk_rq *rq, int stage, int opcode)
{
	rq->stage = stage;
	rq->op.opcode = opcode;
	rq->op.done = blk_io_done;
	vshm_blkio_submit(&rq->b->io, &rq->op);
}

/* Data of a write-class request is in: make it durable if writethrough. */
static void blk_after_write(struct blk_rq *rq)
{
	if (rq->b->wce) {
		blk_end(rq, BLK_S_OK);
		return;
	}
	blk_submit(rq, ST_SYNC, VSHM_BLKIO_DSYNC);
}

static void blk_zero_chunk(struct blk_rq *rq)
{
	uint64_t left = rq->zleft;
	unsigned k = 0;

	rq->zchunk = 0;
	while (left && k < BLK_ZERO_IOV) {
		size_t n = left < BLK_ZERO_BUF ? (size_t)left : BLK_ZERO_BUF;

		/* The kernel only reads this buffer. */
		rq->iov[k].iov_base = (void *)(uintptr_t)blk_zeros;
		rq->iov[k].iov_len = n;
		rq->zchunk += n;
		left -= n;
		k++;
	}
	rq->op.iov = rq->iov;
	rq->op.niov = k;
	rq->op.off = rq->zoff;
	rq->op.len = rq->zchunk;
	blk_submit(rq, ST_ZWRITE, VSHM_BLKIO_WRITE);
}

/* Start @method on the current range. */
static void blk_range_method(struct blk_rq *rq, int method)
{
	const struct blk_range *r = &rq->ranges[rq->range];

	rq->method = method;
	if (method == M_WRITE) {
		rq->zoff = r->off;
		rq->zleft = r->len;
		blk_zero_chunk(rq);
		return;
	}
	rq->op.falloc_mode = FALLOC_FL_KEEP_SIZE |
		(method == M_PUNCH ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE);
	rq->op.off = r->off;
	rq->op.len = r->len;
	blk_submit(rq, ST_RANGE, VSHM_BLKIO_FALLOC);
}

/* The write-zeroes method after ZERO_RANGE turned out unsupported. */
static int blk_wz_fallback(const struct blk *b, const struct blk_range *r)
{
	if ((r->flags & BLK_WZ_FLAG_UNMAP) && !b->no_punch)
		return M_PUNCH;
	return M_WRITE;
}

/* Work on the next non-empty range, or finish the request. */
static void blk_range_next(struct blk_rq *rq)
{
	struct blk *b = rq->b;

	while (rq->range < rq->nrange && rq->ranges[rq->range].len == 0)
		rq->range++;
	if (rq->range == rq->nrange) {
		blk_after_write(rq);
		return;
	}
	if (rq->type == BLK_T_DISCARD) {
		if (b->no_punch) {	/* discard is a hint: nothing to do */
			rq->range = rq->nrange;
			blk_after_write(rq);
			return;
		}
		blk_range_method(rq, M_PUNCH);
		return;
	}
	if (!b->no_zero_range)
		blk_range_method(rq, M_ZERO_RANGE);
	else
		blk_range_method(rq, blk_wz_fallback(b, &rq->ranges[rq->range]));
}

static void blk_range_done(struct blk_rq *rq, int res)
{
	struct blk *b = rq->b;

	if (res == -EOPNOTSUPP) {
		if (rq->method == M_ZERO_RANGE) {
			b->no_zero_range = 1;
			blk_range_method(rq, blk_wz_fallback(b, &rq->ranges[rq->range]));
			return;
		}
		/* M_PUNCH */
		b->no_punch = 1;
		if (rq->type == BLK_T_WRITE_ZEROES) {
			blk_range_method(rq, M_WRITE);
			return;
		}
		res = 0;	/* discard without hole punching: a no-op */
	}
	if (res) {
		blk_end(rq, BLK_S_IOERR);
		return;
	}
	rq->range++;
	blk_range_next(rq);
}

static void blk_io_done(struct vshm_blkio_op *op, int res)
{
	struct blk_rq *rq = container_of(op, struct blk_rq, op);
	struct blk *b = rq->b;

	if (rq->orphan) {		/* its request went back at reset */
		blk_rq_put(b, rq);
		return;
	}
	if (b->resetting) {
		blk_end(rq, -1);
		return;
	}
	switch (rq->stage) {
	case ST_RW:
		if (res)
			blk_end(rq, BLK_S_IOERR);
		else if (rq->type == BLK_T_OUT)
			blk_after_write(rq);
		else
			blk_end(rq, BLK_S_OK);
		break;
	case ST_SYNC:
		blk_end(rq, res ? BLK_S_IOERR : BLK_S_OK);
		break;
	case ST_RANGE:
		blk_range_done(rq, res);
		break;
	case ST_ZWRITE:
		if (res) {
			blk_end(rq, BLK_S_IOERR);
			break;
		}
		rq->zoff += rq->zchunk;
		rq->zleft -= rq->zchunk;
		if (rq->zleft) {
			blk_zero_chunk(rq);
		} else {
			rq->range++;
			blk_range_next(rq);
		}
		break;
	}
}

/* Begin the I/O of a validated request. */
static void blk_start(struct blk_rq *rq)
{
	struct blk *b = rq->b;

	switch (rq->type) {
	case BLK_T_IN:
		blk_submit(rq, ST_RW, VSHM_BLKIO_READ);
		break;
	case BLK_T_OUT:
		rq->writeclass = 1;
		b->writes_inflight++;
		blk_submit(rq, ST_RW, VSHM_BLKIO_WRITE);
		break;
	case BLK_T_FLUSH:
		blk_submit(rq, ST_SYNC, VSHM_BLKIO_DSYNC);
		break;
	default:		/* DISCARD, WRITE_ZEROES */
		rq->writeclass = 1;
		b->writes_inflight++;
		blk_range_next(rq);
		break;
	}
}

/*
 * Start what waits behind a FLUSH: everything up to the next FLUSH that
 * still has writes ahead of it.  Completions inside blk_start (synchronous
 * engine) come back here and return at once; the loop picks up from there.
 */
static void blk_dispatch_waiting(struct blk *b)
{
	struct blk_rq *rq;

	if (b->dispatching)
		return;
	b->dispatching = 1;
	while ((rq = b->wait_head)) {
		if (rq->type == BLK_T_FLUSH && b->writes_inflight)
			break;
		b->wait_head = rq->next;
		if (!b->wait_head)
			b->wait_tail = &b->wait_head;
		rq->next = NULL;
		blk_start(rq);
	}
	b->dispatching = 0;
}

static void blk_check_engine(struct blk *b)
{
	if (b->io.broken && !b->broken_reported && b->m->host->needs_reset) {
		b->broken_reported = 1;
		b->m->host->needs_reset(b->m->host->ctx, "blk: io_uring submission failed");
	}
}

/* ------------------------------------------------------------------------ */
/* Request parsing                                                           */

/* The last writable byte: the status.  NULL when the chain has none. */
static uint8_t *blk_status_ptr(const struct vshm_iov *wr, unsigned n)
{
	for (unsigned i = n; i-- > 0;)
		if (wr[i].len)
			return (uint8_t *)wr[i].base + wr[i].len - 1;
	return NULL;
}

/* Copy, decode and validate discard/write-zeroes ranges; returns a BLK_S_*. */
static int blk_parse_ranges(struct blk *b, struct blk_rq *rq, const struct vshm_iov *rd,
			    unsigned nrd, uint64_t payload)
{
	uint8_t raw[BLK_MAX_RANGES * BLK_RANGE_BYTES];
	int discard = rq->type == BLK_T_DISCARD;
	uint32_t max_sectors = discard ? BLK_MAX_DISCARD_SECTORS : BLK_MAX_WZ_SECTORS;
	unsigned n;

	if (payload == 0 || payload % BLK_RANGE_BYTES)
		return BLK_S_IOERR;
	if (payload / BLK_RANGE_BYTES > BLK_MAX_RANGES)
		return BLK_S_UNSUPP;
	n = (unsigned)(payload / BLK_RANGE_BYTES);
	/* The one read of the ranges: everything below looks at raw[] only. */
	vshm_iov_gather(raw, rd, nrd, BLK_HDR_BYTES, n * BLK_RANGE_BYTES);
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *p = raw + i * BLK_RANGE_BYTES;
		uint64_t sector = ld_le64(p);
		uint32_t nsect = ld_le32(p + 8);
		uint32_t flags = ld_le32(p + 12);

		/* Unknown flags, or unmap on a discard: UNSUPP (5.2.6.2). */
		if (flags & ~BLK_WZ_FLAG_UNMAP)
			return BLK_S_UNSUPP;
		if (discard && flags)
			return BLK_S_UNSUPP;
		if (nsect > max_sectors || !blk_in_range(b, sector, nsect))
			return BLK_S_IOERR;
		rq->ranges[i].off = sector * BLK_SECTOR;
		rq->ranges[i].len = (uint64_t)nsect * BLK_SECTOR;
		rq->ranges[i].flags = flags;
	}
	rq->nrange = n;
	return BLK_S_OK;
}

static int blk_request(struct vshm_devmodel *m, struct vshm_req *r)
{
	struct blk *b = m->priv;
	const struct vshm_chain *c = &r->chain;
	const struct vshm_iov *rd = c->iov;
	const struct vshm_iov *wr = c->iov + c->nout;
	uint64_t out_bytes = vshm_iov_bytes(rd, c->nout);
	uint64_t in_bytes = vshm_iov_bytes(wr, c->nin);
	uint8_t *status = blk_status_ptr(wr, c->nin);
	uint8_t hdr[BLK_HDR_BYTES];
	struct blk_rq *rq;
	uint64_t sector, dlen;
	uint32_t type;
	int st, n;

	if (!status)
		return -EINVAL;		/* nowhere to say anything */
	if (out_bytes < BLK_HDR_BYTES)
		return blk_reply(b, r, status, BLK_S_IOERR, 1);
	/* The one read of the header: everything below looks at hdr[] only. */
	vshm_iov_gather(hdr, rd, c->nout, 0, sizeof(hdr));
	type = ld_le32(hdr);
	sector = ld_le64(hdr + 8);

	switch (type) {
	case BLK_T_IN:
		if (out_bytes != BLK_HDR_BYTES)
			return blk_reply(b, r, status, BLK_S_IOERR, 1);
		dlen = in_bytes - 1;
		break;
	case BLK_T_OUT:
		if (in_bytes != 1 || b->read_only)
			return blk_reply(b, r, status, BLK_S_IOERR, 1);
		dlen = out_bytes - BLK_HDR_BYTES;
		break;
	case BLK_T_FLUSH:
		if (!blk_has(b, BLK_F_FLUSH))
			return blk_reply(b, r, status, BLK_S_UNSUPP, 1);
		if (out_bytes != BLK_HDR_BYTES || in_bytes != 1)
			return blk_reply(b, r, status, BLK_S_IOERR, 1);
		dlen = 0;
		break;
	case BLK_T_GET_ID: {
		size_t len = in_bytes - 1 < BLK_ID_BYTES ? (size_t)(in_bytes - 1) : BLK_ID_BYTES;

		if (out_bytes != BLK_HDR_BYTES)
			return blk_reply(b, r, status, BLK_S_IOERR, 1);
		vshm_iov_scatter(wr, c->nin, 0, b->serial, len);
		return blk_reply(b, r, status, BLK_S_OK, (uint32_t)len + 1);
	}
	case BLK_T_DISCARD:
	case BLK_T_WRITE_ZEROES:
		if (!blk_has(b, type == BLK_T_DISCARD ? BLK_F_DISCARD : BLK_F_WRITE_ZEROES))
			return blk_reply(b, r, status, BLK_S_UNSUPP, 1);
		if (b->read_only || in_bytes != 1)
			return blk_reply(b, r, status, BLK_S_IOERR, 1);
		dlen = 0;
		break;
	default:
		return blk_reply(b, r, status, BLK_S_UNSUPP, 1);
	}

	if (type == BLK_T_IN || type == BLK_T_OUT) {
		if (dlen % BLK_SECTOR || dlen > BLK_MAX_DATA ||
		    !blk_in_range(b, sector, dlen / BLK_SECTOR))
			return blk_reply(b, r, status, BLK_S_IOERR, 1);
		if (dlen == 0)
			return blk_reply(b, r, status, BLK_S_OK, 1);
	}

	rq = blk_rq_get(b);
	if (!rq)	/* more requests than the queue can hold: not a real driver */
		return blk_reply(b, r, status, BLK_S_IOERR, 1);
	rq->req = r;
	rq->status = status;
	rq->type = type;
	rq->op.off = sector * BLK_SECTOR;
	rq->op.len = dlen;

	if (type == BLK_T_IN || type == BLK_T_OUT) {
		/* Reads: the writable part less the status; writes: the readable less the header. */
		n = type == BLK_T_IN ?
			vshm_iov_to_iovec(rq->iov, BLK_IOV_MAX, wr, c->nin, 0, dlen) :
			vshm_iov_to_iovec(rq->iov, BLK_IOV_MAX, rd, c->nout, BLK_HDR_BYTES, dlen);
		if (n < 0) {
			blk_rq_put(b, rq);
			return blk_reply(b, r, status, BLK_S_IOERR, 1);
		}
		rq->op.iov = rq->iov;
		rq->op.niov = (unsigned)n;
		/*
		 * A read reports the whole data length written, also on error:
		 * the kernel may have stored into any of it.
		 */
		if (type == BLK_T_IN)
			rq->written = (uint32_t)in_bytes;
	} else if (type != BLK_T_FLUSH) {
		st = blk_parse_ranges(b, rq, rd, c->nout, out_bytes - BLK_HDR_BYTES);
		if (st != BLK_S_OK) {
			blk_rq_put(b, rq);
			return blk_reply(b, r, status, (uint8_t)st, 1);
		}
	}

	if (b->wait_head || (type == BLK_T_FLUSH && b->writes_inflight)) {
		rq->next = NULL;
		*b->wait_tail = rq;
		b->wait_tail = &rq->next;
	} else {
		blk_start(rq);
	}
	blk_check_engine(b);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Device ops                                                                */

static uint32_t blk_num_queues(struct vshm_devmodel *m)
{
	return 1;
}

static uint32_t blk_queue_max(struct vshm_devmodel *m, unsigned queue)
{
	return queue == 0 ? BLK_QUEUE_MAX : 0;
}

static uint32_t blk_seg_max(struct vshm_devmodel *m)
{
	return BLK_IOV_MAX;
}

static uint64_t blk_features(struct vshm_devmodel *m)
{
	const struct blk *b = m->priv;

	return b->read_only ? BLK_OFFERED_RO : BLK_OFFERED_RW;
}

static int blk_set_features(struct vshm_devmodel *m, uint64_t f)
{
	struct blk *b = m->priv;

	if (f & ~blk_features(m))
		return -EINVAL;
	b->features = f;
	/* Without FLUSH the driver cannot ask for durability: write through. */
	b->wce = (f & (1ull << BLK_F_FLUSH)) ? 1 : 0;
	return 0;
}

static uint32_t blk_config_size(struct vshm_devmodel *m)
{
	return BLK_CFG_SIZE;
}

static void blk_config_read(struct vshm_devmodel *m, uint32_t off, void *buf, uint32_t len)
{
	const struct blk *b = m->priv;
	uint8_t cfg[BLK_CFG_SIZE];

	memset(cfg, 0, sizeof(cfg));
	st_le64(cfg + BLK_CFG_CAPACITY, b->capacity);
	st_le32(cfg + BLK_CFG_SIZE_MAX, BLK_SIZE_MAX);
	st_le32(cfg + BLK_CFG_SEG_MAX, BLK_SEG_MAX);
	st_le32(cfg + BLK_CFG_BLK_SIZE, BLK_SECTOR);
	cfg[BLK_CFG_WRITEBACK] = b->wce;
	st_le16(cfg + BLK_CFG_NUM_QUEUES, 1);
	if (!b->read_only) {
		st_le32(cfg + BLK_CFG_MAX_DISCARD_SECTORS, BLK_MAX_DISCARD_SECTORS);
		st_le32(cfg + BLK_CFG_MAX_DISCARD_SEG, BLK_MAX_RANGES);
		st_le32(cfg + BLK_CFG_DISCARD_ALIGN, BLK_DISCARD_ALIGN);
		st_le32(cfg + BLK_CFG_MAX_WZ_SECTORS, BLK_MAX_WZ_SECTORS);
		st_le32(cfg + BLK_CFG_MAX_WZ_SEG, BLK_MAX_RANGES);
		cfg[BLK_CFG_WZ_MAY_UNMAP] = 1;
	}
	if (off > sizeof(cfg)) {
		memset(buf, 0, len);
		return;
	}
	if (len > sizeof(cfg) - off) {
		memset((uint8_t *)buf + (sizeof(cfg) - off), 0, len - (sizeof(cfg) - off));
		len = (uint32_t)(sizeof(cfg) - off);
	}
	memcpy(buf, cfg + off, len);
}

static int blk_config_write(struct vshm_devmodel *m, uint32_t off, const void *buf,
			    uint32_t len)
{
	struct blk *b = m->priv;
	uint8_t v;

	if (off != BLK_CFG_WRITEBACK || len != 1 || !blk_has(b, BLK_F_CONFIG_WCE))
		return -EPERM;
	v = *(const uint8_t *)buf;
	/* Writeback needs FLUSH, or the driver could never make data durable. */
	if (v > 1 || (v == 1 && !blk_has(b, BLK_F_FLUSH)))
		return -EPERM;
	b->wce = v;
	return 0;
}

static int blk_start_op(struct vshm_devmodel *m)
{
	return 0;
}

static void blk_reset(struct vshm_devmodel *m)
{
	struct blk *b = m->priv;
	struct blk_rq *rq;
	unsigned left;

	b->resetting = 1;
	/* Never started: give back at once. */
	while ((rq = b->wait_head)) {
		b->wait_head = rq->next;
		blk_end(rq, -1);
	}
	b->wait_tail = &b->wait_head;
	/* Started: cancel, wait (bounded); each comes back through blk_io_done. */
	left = vshm_blkio_quiesce(&b->io, BLK_RESET_WAIT_MS);
	/*
	 * Host I/O that outlived the wait (a hung disk): the request goes back
	 * now, its slot stays taken until the kernel finishes with it.
	 */
	for (unsigned i = 0; left && i < BLK_QUEUE_MAX; i++) {
		rq = &b->pool[i];
		if (rq->busy && !rq->orphan && rq->req) {
			struct vshm_req *req = rq->req;

			rq->orphan = 1;
			rq->req = NULL;
			b->completed++;
			m->host->complete(m->host->ctx, req, 0);
		}
	}
	if (b->io.broken && !left) {
		/* A fresh ring for the next session. */
		vshm_blkio_exit(&b->io);
		vshm_blkio_init(&b->io, b->fd, b->depth, b->force_pread);
		b->broken_reported = 0;
	}
	b->writes_inflight = 0;
	b->features = 0;
	b->wce = 1;
	b->resetting = 0;
}

static int blk_event_fd(struct vshm_devmodel *m)
{
	const struct blk *b = m->priv;

	return vshm_blkio_event_fd(&b->io);
}

static int blk_poll(struct vshm_devmodel *m)
{
	struct blk *b = m->priv;
	uint64_t before = b->completed;

	vshm_blkio_poll(&b->io);
	blk_check_engine(b);
	return (int)(b->completed - before);
}

static void blk_destroy(struct vshm_devmodel *m)
{
	struct blk *b = m->priv;

	if (!b)
		return;
	blk_reset(m);
	vshm_blkio_exit(&b->io);
	close(b->fd);
	free(b->pool);
	free(b);
	m->priv = NULL;
}

static const struct vshm_devmodel_ops vshm_blk_ops = {
	.name = "blk",
	.device_id = VSHM_VIRTIO_ID_BLOCK,
	.num_queues = blk_num_queues,
	.queue_max = blk_queue_max,
	.seg_max = blk_seg_max,
	.features = blk_features,
	.set_features = blk_set_features,
	.config_size = blk_config_size,
	.config_read = blk_config_read,
	.config_write = blk_config_write,
	.start = blk_start_op,
	.reset = blk_reset,
	.request = blk_request,
	.event_fd = blk_event_fd,
	.poll = blk_poll,
	.destroy = blk_destroy,
};

/* ------------------------------------------------------------------------ */
/* Creation                                                                  */

__attribute__((format(printf, 3, 4)))
static void blk_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
}

static int blk_open(const struct vshm_blk_opts *o, char *err, size_t errlen)
{
	int fd = open(o->path, (o->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	int e = errno;

	if (fd >= 0)
		return fd;
	switch (e) {
	case ENOENT:
		blk_err(err, errlen, "cannot open %s: %s (create it, e.g. truncate -s 64M %s)",
			o->path, strerror(e), o->path);
		break;
	case EACCES:
	case EPERM:
		blk_err(err, errlen, "cannot open %s: permission denied (check its mode%s)",
			o->path, o->read_only ? "" : " or pass read-only");
		break;
	case EROFS:
		blk_err(err, errlen, "cannot open %s for writing: read-only file system "
			"(pass read-only)", o->path);
		break;
	case EISDIR:
		blk_err(err, errlen, "cannot use %s: it is a directory, not a disk image "
			"(pass a regular file or a block device)", o->path);
		break;
	default:
		blk_err(err, errlen, "cannot open %s: %s", o->path, strerror(e));
		break;
	}
	return -e;
}

/* Check the opened image and learn its size in bytes. */
static int blk_probe(int fd, const struct vshm_blk_opts *o, uint64_t *size,
		     uint64_t *ident, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		int e = errno;

		blk_err(err, errlen, "cannot stat %s: %s", o->path, strerror(e));
		return -e;
	}
	*ident = (uint64_t)st.st_dev * 0x9e3779b97f4a7c15ull ^ (uint64_t)st.st_ino;
	if (S_ISDIR(st.st_mode)) {
		blk_err(err, errlen, "cannot use %s: it is a directory, not a disk image "
			"(pass a regular file or a block device)", o->path);
		return -EISDIR;
	}
	if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size) < 0) {
			int e = errno;

			blk_err(err, errlen, "cannot get the size of %s: %s", o->path, strerror(e));
			return -e;
		}
	} else {
		blk_err(err, errlen, "cannot use %s: not a regular file or block device",
			o->path);
		return -EINVAL;
	}
	if (*size == 0) {
		blk_err(err, errlen, "cannot use %s: it is empty (size 0; give it a size, "
			"e.g. truncate -s 64M %s)", o->path, o->path);
		return -EINVAL;
	}
	if (*size % BLK_SECTOR) {
		blk_err(err, errlen, "cannot use %s: its size %" PRIu64 " is not a multiple "
			"of 512 bytes (e.g. truncate -s %" PRIu64 " %s)", o->path, *size,
			(*size / BLK_SECTOR + 1) * BLK_SECTOR, o->path);
		return -EINVAL;
	}
	/*
	 * One writer per image; readers may share.  A device process that was
	 * just killed keeps its lock until the kernel has torn down its
	 * io_uring, a moment after the process is gone: retry for up to 2 s
	 * before calling the image busy.
	 */
	for (int tries = 0; tries < 100; tries++) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };

		if (flock(fd, (o->read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) == 0 ||
		    errno != EWOULDBLOCK)
			break;
		nanosleep(&ts, NULL);
	}
	if (flock(fd, (o->read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0 &&
	    errno == EWOULDBLOCK) {
		blk_err(err, errlen, "cannot use %s: another process has it open%s",
			o->path, o->read_only ? " for writing" : "");
		return -EBUSY;
	}
	return 0;
}

int vshm_blk_create(struct vshm_devmodel *m, const struct vshm_devmodel_host *host,
		    const struct vshm_blk_opts *o, char *err, size_t errlen)
{
	struct blk *b;
	uint64_t size = 0, ident = 0;
	int fd, rc;

	if (err && errlen)
		err[0] = '\0';
	if (!m || !host || !host->complete || !o || !o->path || !o->path[0]) {
		blk_err(err, errlen, "blk: no image path given");
		return -EINVAL;
	}
	if (o->serial && strlen(o->serial) > BLK_ID_BYTES) {
		blk_err(err, errlen, "blk: serial \"%s\" is longer than %u bytes",
			o->serial, BLK_ID_BYTES);
		return -EINVAL;
	}
	fd = blk_open(o, err, errlen);
	if (fd < 0)
		return fd;
	rc = blk_probe(fd, o, &size, &ident, err, errlen);
	if (rc)
		goto fail_fd;

	rc = -ENOMEM;
	b = calloc(1, sizeof(*b));
	if (!b) {
		blk_err(err, errlen, "blk: out of memory");
		goto fail_fd;
	}
	b->pool = calloc(BLK_QUEUE_MAX, sizeof(*b->pool));
	if (!b->pool) {
		blk_err(err, errlen, "blk: out of memory");
		goto fail_b;
	}
	for (unsigned i = BLK_QUEUE_MAX; i-- > 0;) {
		b->pool[i].b = b;
		blk_rq_put(b, &b->pool[i]);
	}
	b->m = m;
	b->fd = fd;
	b->read_only = !!o->read_only;
	b->capacity = size / BLK_SECTOR;
	b->depth = o->queue_depth ? o->queue_depth : 128;
	b->force_pread = !!o->force_pread;
	b->wce = 1;
	b->wait_tail = &b->wait_head;
	if (o->serial) {
		memcpy(b->serial, o->serial, strlen(o->serial));
	} else {
		/* Stable per image (device and inode): "vshm" + 16 hex digits. */
		char id[BLK_ID_BYTES + 1];

		snprintf(id, sizeof(id), "vshm%016" PRIx64, ident);
		memcpy(b->serial, id, BLK_ID_BYTES);
	}
	rc = vshm_blkio_init(&b->io, fd, b->depth, b->force_pread);
	if (rc) {
		blk_err(err, errlen, "blk: cannot set up I/O: %s", strerror(-rc));
		goto fail_pool;
	}
	m->ops = &vshm_blk_ops;
	m->host = host;
	m->priv = b;
	return 0;

fail_pool:
	free(b->pool);
fail_b:
	free(b);
fail_fd:
	close(fd);
	return rc;
}

const char *vshm_blk_engine(const struct vshm_devmodel *m)
{
	const struct blk *b = m->priv;

	return vshm_blkio_name(&b->io);
}
