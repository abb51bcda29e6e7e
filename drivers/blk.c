// SPDX-License-Identifier: MIT
/*
 * virtio-blk driver in user space, over a vshm driver session.
 *
 * Each request slot owns 64 bytes of window memory for its header, a
 * discard segment, a GET_ID buffer and the status byte, so small fields
 * never go through the bounce pool; data is bounced.  The status byte and
 * the used length are the only device-written values read back, each once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vshm/devmodel.h>
#include <vshm/drivers.h>
#include "barrier.h"

#define F_SIZE_MAX	1
#define F_SEG_MAX	2
#define F_RO		5
#define F_BLK_SIZE	6
#define F_FLUSH		9
#define F_DISCARD	13
#define F_WRITE_ZEROES	14

#define T_GET_ID	8
#define S_OK		0
#define S_IOERR		1
#define S_UNSUPP	2

#define META		64	/* bytes of window memory per slot */
#define M_HDR		0
#define M_SEG		16
#define M_ID		32
#define M_STATUS	63

/* Poll this long before sleeping on the doorbell: adapted between these. */
#define SPIN_MIN_NS	20000
#define SPIN_MAX_NS	200000

struct blk_slot {
	int busy;
	uint64_t seq;		/* submission order, for resubmission */
	int64_t t_submit;	/* when it went to the device (request timeout) */
	struct vshm_sg *sg;	/* the chain as submitted (max_sg entries) */
	unsigned nout, nin;
	int op;
	void *buf;
	size_t len;
	vshm_blk_cb cb;
	void *arg;
	struct vshm_bounce_map data;
	int mapped;
	unsigned next_free;
};

struct vshm_blkdrv {
	struct vshm_drv *d;
	struct vshm_drv_dev *dev;
	struct vshm_drv_vq *vq;
	struct vshm_window *w;
	struct vshm_bounce_pool *pool;
	struct vshm_blkdrv_info info;
	struct blk_slot *slots;
	unsigned nslots;
	unsigned free_head;
	unsigned inflight;
	uint64_t meta_off;	/* window offset of slot 0's metadata */
	struct vshm_sg *sgs;	/* nslots * max_sg: each slot's chain */
	unsigned max_sg;
	int dead;
	int64_t spin_ns;	/* poll window of vshm_blkdrv_wait (see adapt_spin) */
	uint64_t seq;
	int64_t recover_ns;	/* 0: a lost device fails requests; else re-attach bound */
	int64_t req_timeout_ns;	/* a request not completed by then fails them all */
	int fail_status;	/* what failed requests complete with (-EIO) */
	struct vshm_blkdrv_stats st;
	int in_recovery;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static uint8_t *meta(struct vshm_blkdrv *b, unsigned slot)
{
	return b->w->base + b->meta_off + (uint64_t)slot * META;
}

static uint64_t meta_off(struct vshm_blkdrv *b, unsigned slot, unsigned field)
{
	return b->meta_off + (uint64_t)slot * META + field;
}

static uint32_t le32_at(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t le64_at(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

int vshm_drv_find(struct vshm_drv *d, uint32_t device_id)
{
	uint16_t nums[64];
	int n = vshm_drv_get_devices(d, nums, 64), err = -ENODEV, rc;

	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		struct vshm_msg req, resp;

		vshm_msg_init_req(&req, VSHM_MSG_GET_DEVICE_INFO, nums[i]);
		rc = vshm_drv_call(d, &req, &resp);
		if (rc == 0 && resp.u.dev_info.device_id == device_id)
			return nums[i];
		if (rc < 0)
			err = rc;	/* a device that did not answer may be the one */
	}
	return err;
}

int vshm_blkdrv_open(struct vshm_drv *d, uint16_t dev_num, uint32_t depth,
		     struct vshm_blkdrv **out)
{
	struct vshm_blkdrv *b;
	uint8_t cfg[60];
	uint32_t csize;
	uint64_t f;
	int rc;

	*out = NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->d = d;
	b->req_timeout_ns = 30 * 1000000000ll;
	b->fail_status = -EIO;
	rc = vshm_drv_dev_init(d, dev_num, VSHM_VIRTIO_ID_BLOCK,
			       (1ull << F_SIZE_MAX) | (1ull << F_SEG_MAX) | (1ull << F_RO) |
			       (1ull << F_BLK_SIZE) | (1ull << F_FLUSH) | (1ull << F_DISCARD) |
			       (1ull << F_WRITE_ZEROES), &b->dev);
	if (rc)
		goto fail;
	f = vshm_drv_dev_features(b->dev);
	csize = vshm_drv_dev_info(b->dev)->config_size;
	memset(cfg, 0, sizeof(cfg));
	rc = vshm_drv_dev_config_read(b->dev, 0, cfg, csize < sizeof(cfg) ? csize : sizeof(cfg));
	if (rc)
		goto fail;
	b->info.capacity = le64_at(cfg);
	b->info.size_max = (f & (1ull << F_SIZE_MAX)) ? le32_at(cfg + 8) : 0;
	b->info.seg_max = (f & (1ull << F_SEG_MAX)) ? le32_at(cfg + 12) : 1;
	b->info.blk_size = (f & (1ull << F_BLK_SIZE)) ? le32_at(cfg + 20) : 512;
	b->info.read_only = !!(f & (1ull << F_RO));
	b->info.flush = !!(f & (1ull << F_FLUSH));
	b->info.discard = !!(f & (1ull << F_DISCARD));
	b->info.write_zeroes = !!(f & (1ull << F_WRITE_ZEROES));
	if (b->info.seg_max == 0 || b->info.seg_max > 1024)
		b->info.seg_max = b->info.seg_max ? 1024 : 1;

	if (!depth)
		depth = 128;
	if (depth > 32768) {
		rc = -EINVAL;
		goto fail;
	}
	/*
	 * The ring: a power of two, at least 128 entries, because virtio caps
	 * a chain (indirect entries included) at the queue size and a request
	 * takes up to seg_max + 2 buffers.  One indirect table per request
	 * means depth requests always fit.  @depth bounds what is in flight.
	 */
	{
		uint32_t num = 128;

		while (num < depth || num < b->info.seg_max + 2)
			num <<= 1;
		rc = vshm_drv_dev_setup_vq(b->dev, 0, num, b->info.seg_max + 3, &b->vq);
		b->info.queue_size = num;
	}
	if (rc)
		goto fail;
	/* We poll; vshm_blkdrv_wait asks for notifications only to sleep. */
	vshm_drv_vq_disable_cb(b->vq);
	b->w = vshm_drv_dev_window(b->dev);
	b->pool = vshm_drv_dev_pool(b->dev);
	rc = vshm_drv_alloc(d, (uint64_t)depth * META, 64, &b->meta_off);
	if (rc)
		goto fail;
	b->nslots = depth;
	b->slots = calloc(depth, sizeof(*b->slots));
	b->max_sg = b->info.seg_max + 3;
	b->sgs = calloc((size_t)depth * b->max_sg, sizeof(*b->sgs));
	if (!b->slots || !b->sgs) {
		rc = -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < depth; i++) {
		b->slots[i].next_free = i + 1;
		b->slots[i].sg = b->sgs + (size_t)i * b->max_sg;
	}
	b->free_head = 0;
	rc = vshm_drv_dev_ready(b->dev);
	if (rc)
		goto fail;
	*out = b;
	return 0;
fail:
	vshm_drv_dev_destroy(b->dev);
	free(b->slots);
	free(b->sgs);
	free(b);
	return rc;
}

void vshm_blkdrv_info(const struct vshm_blkdrv *b, struct vshm_blkdrv_info *info)
{
	*info = b->info;
}

struct vshm_drv_dev *vshm_blkdrv_dev(struct vshm_blkdrv *b)
{
	return b->dev;
}

unsigned vshm_blkdrv_inflight(const struct vshm_blkdrv *b)
{
	return b->inflight;
}

static void slot_put(struct vshm_blkdrv *b, unsigned i)
{
	b->slots[i].busy = 0;
	b->slots[i].next_free = b->free_head;
	b->free_head = i;
	b->inflight--;
}

/* Finish slot @i with the device's used length @written (or fail it). */
static void finish(struct vshm_blkdrv *b, unsigned i, int fail, uint32_t written)
{
	struct blk_slot *s = &b->slots[i];
	vshm_blk_cb cb = s->cb;
	void *arg = s->arg;
	int status = fail ? b->fail_status : -EIO;

	if (!fail && written >= 1) {
		uint8_t st = vshm_load_once(&meta(b, i)[M_STATUS]);

		status = st == S_OK ? 0 : st == S_UNSUPP ? -EOPNOTSUPP : -EIO;
		if (status == 0 && s->op == VSHM_BLK_OP_READ && written - 1 < s->len)
			status = -EIO;	/* the device claims success but wrote less */
		if (status == 0 && s->op == T_GET_ID)
			memcpy(s->buf, meta(b, i) + M_ID, 20);
	}
	if (s->mapped)
		vshm_bounce_unmap(b->pool, &s->data, s->op == VSHM_BLK_OP_READ && !status ? s->len : 0);
	s->mapped = 0;
	slot_put(b, i);
	if (cb)
		cb(arg, status);
}

static void fail_all(struct vshm_blkdrv *b)
{
	struct blk_slot *s;

	b->dead = 1;
	while ((s = vshm_drv_vq_detach_unused(b->vq))) {
		b->st.failed++;
		finish(b, (unsigned)(s - b->slots), 1, 0);
	}
}

static int cmp_seq(const void *a, const void *b)
{
	const struct blk_slot *x = *(struct blk_slot *const *)a, *y = *(struct blk_slot *const *)b;

	return (x->seq > y->seq) - (x->seq < y->seq);
}

/*
 * The device is gone (or broke the queue): with recovery enabled, enter a
 * session with the next device, bring the device back with exactly the
 * features it had, and resubmit every outstanding request in the order it
 * was first submitted, from the same bounce mappings.  Without recovery, or
 * when it fails, every outstanding request completes with -EIO.  Either
 * way nothing is dropped silently.  Returns 0 when the requests are back
 * in flight, -EIO otherwise.
 */
static int lost_device(struct vshm_blkdrv *b)
{
	struct blk_slot **out;
	struct blk_slot *s;
	unsigned n = 0;
	int rc;

	if (!b->recover_ns || b->in_recovery) {
		fail_all(b);
		return -EIO;
	}
	out = calloc(b->nslots, sizeof(*out));
	if (!out) {
		fail_all(b);
		return -EIO;
	}
	while ((s = vshm_drv_vq_detach_unused(b->vq)))
		out[n++] = s;
	qsort(out, n, sizeof(*out), cmp_seq);
	b->in_recovery = 1;
	{
		int64_t deadline = now_ns() + b->recover_ns;

		/*
		 * The next device may die too, even mid-recovery: keep going
		 * until the deadline as long as the failure is a lost device.
		 */
		for (;;) {
			int64_t left = deadline - now_ns();

			if (left <= 0) {
				rc = -ETIMEDOUT;
				break;
			}
			rc = 0;
			if (vshm_drv_alive(b->d))	/* session lost: the next device */
				rc = vshm_drv_reattach(b->d, left);
			if (rc == -ETIMEDOUT)
				break;
			if (!rc)
				rc = vshm_drv_dev_reinit(b->dev);
			if (!rc)
				break;			/* back in business */
			if (!vshm_drv_alive(b->d))
				break;			/* a live device refused: give up */
			/* the device was lost again mid-recovery: go round */
		}
	}
	for (unsigned i = 0; !rc && i < n; i++) {
		s = out[i];
		meta(b, (unsigned)(s - b->slots))[M_STATUS] = 0xff;
		s->t_submit = now_ns();
		rc = vshm_drv_vq_add(b->vq, s->sg, s->nout, s->nin, s);
		if (!rc)
			b->st.retried++;
	}
	if (!rc && vshm_drv_vq_kick(b->vq) < 0)
		rc = -EIO;
	b->in_recovery = 0;
	if (rc) {
		b->st.last_error = rc;
		/* Whatever made it back onto the queue is detached again; the
		 * rest was never resubmitted: every one fails explicitly. */
		while ((s = vshm_drv_vq_detach_unused(b->vq)))
			;
		b->dead = 1;
		for (unsigned i = 0; i < n; i++) {
			b->st.failed++;
			finish(b, (unsigned)(out[i] - b->slots), 1, 0);
		}
		free(out);
		return -EIO;
	}
	b->st.recoveries++;
	free(out);
	return 0;
}

void vshm_blkdrv_set_recovery(struct vshm_blkdrv *b, int64_t timeout_ns)
{
	b->recover_ns = timeout_ns;
}

void vshm_blkdrv_get_stats(const struct vshm_blkdrv *b, struct vshm_blkdrv_stats *st)
{
	*st = b->st;
}

/*
 * One request.  Data is either the caller's private @buf (bounced) or,
 * with @wsg, @nwsg segments already in the window (zero-copy: the heap).
 */
static int submit(struct vshm_blkdrv *b, int op, uint64_t sector, void *buf, size_t len,
		  const struct vshm_sg *wsg, unsigned nwsg, vshm_blk_cb cb, void *arg)
{
	struct blk_slot *s;
	struct vshm_sg *sg;
	unsigned i, nout = 0, nin = 0, n = 0;
	uint8_t *m;
	uint32_t type;
	int rc;

	if (b->dead)
		return -EIO;
	if (b->free_head >= b->nslots)
		return -EAGAIN;
	switch (op) {
	case VSHM_BLK_OP_READ:
	case VSHM_BLK_OP_WRITE:
		if (!len || len % VSHM_BLK_SECTOR || (!buf && !wsg))
			return -EINVAL;
		if (wsg && (nwsg == 0 || nwsg > b->info.seg_max))
			return -EINVAL;
		if (op == VSHM_BLK_OP_WRITE && b->info.read_only)
			return -EROFS;
		break;
	case VSHM_BLK_OP_FLUSH:
		if (!b->info.flush)
			return -EOPNOTSUPP;
		break;
	case VSHM_BLK_OP_DISCARD:
	case VSHM_BLK_OP_WRITE_ZEROES:
		if ((op == VSHM_BLK_OP_DISCARD && !b->info.discard) ||
		    (op == VSHM_BLK_OP_WRITE_ZEROES && !b->info.write_zeroes))
			return -EOPNOTSUPP;
		if (b->info.read_only)
			return -EROFS;
		if (!len || len % VSHM_BLK_SECTOR || len / VSHM_BLK_SECTOR > UINT32_MAX)
			return -EINVAL;
		break;
	case T_GET_ID:
		break;
	default:
		return -EINVAL;
	}
	if (op != VSHM_BLK_OP_FLUSH && op != T_GET_ID &&
	    (sector > b->info.capacity || len / VSHM_BLK_SECTOR > b->info.capacity - sector))
		return -EINVAL;

	i = b->free_head;
	s = &b->slots[i];
	m = meta(b, i);
	sg = s->sg;	/* kept with the slot: a recovery resubmits it as is */
	type = (uint32_t)op;
	memcpy(m + M_HDR, &type, 4);
	memset(m + M_HDR + 4, 0, 4);
	memcpy(m + M_HDR + 8, &sector, 8);
	m[M_STATUS] = 0xff;

	sg[n++] = (struct vshm_sg){ meta_off(b, i, M_HDR), 16, 0 };
	nout = 1;
	s->mapped = 0;
	if ((op == VSHM_BLK_OP_READ || op == VSHM_BLK_OP_WRITE) && wsg) {
		/* Already in the window: the ring checks every range on add. */
		memcpy(sg + n, wsg, nwsg * sizeof(*wsg));
		rc = (int)nwsg;
		if (op == VSHM_BLK_OP_WRITE)
			nout += (unsigned)rc;
		else
			nin += (unsigned)rc;
		n += (unsigned)rc;
	} else if (op == VSHM_BLK_OP_READ || op == VSHM_BLK_OP_WRITE) {
		int dir = op == VSHM_BLK_OP_READ ? VSHM_DMA_FROM_DEVICE : VSHM_DMA_TO_DEVICE;

		rc = vshm_bounce_map(b->pool, buf, len, dir, &s->data, sg + n,
				     b->info.seg_max < b->max_sg - n ? b->info.seg_max : b->max_sg - n);
		if (rc < 0)
			return rc == -E2BIG || rc == -EMSGSIZE ? -EINVAL : rc == -ENOMEM ? -EAGAIN : rc;
		s->mapped = 1;
		if (op == VSHM_BLK_OP_WRITE)
			nout += (unsigned)rc;
		else
			nin += (unsigned)rc;
		n += (unsigned)rc;
	} else if (op == VSHM_BLK_OP_DISCARD || op == VSHM_BLK_OP_WRITE_ZEROES) {
		uint32_t num = (uint32_t)(len / VSHM_BLK_SECTOR), flags = 0;

		memcpy(m + M_SEG, &sector, 8);
		memcpy(m + M_SEG + 8, &num, 4);
		memcpy(m + M_SEG + 12, &flags, 4);
		sg[n++] = (struct vshm_sg){ meta_off(b, i, M_SEG), 16, 0 };
		nout++;
	} else if (op == T_GET_ID) {
		sg[n++] = (struct vshm_sg){ meta_off(b, i, M_ID), 20, 0 };
		nin++;
	}
	sg[n++] = (struct vshm_sg){ meta_off(b, i, M_STATUS), 1, 0 };
	nin++;

	s->op = op;
	s->buf = buf;
	s->len = len;
	s->cb = cb;
	s->arg = arg;
	s->nout = nout;
	s->nin = nin;
	s->seq = b->seq++;
	s->t_submit = now_ns();
	rc = vshm_drv_vq_add(b->vq, sg, nout, nin, s);
	if (rc == -EIO && lost_device(b) == 0)
		rc = vshm_drv_vq_add(b->vq, sg, nout, nin, s);	/* on the new session */
	if (rc) {
		if (s->mapped)
			vshm_bounce_unmap(b->pool, &s->data, 0);
		s->mapped = 0;
		return rc == -ENOSPC ? -EAGAIN : rc;
	}
	b->free_head = s->next_free;
	s->busy = 1;
	b->inflight++;
	b->st.submitted++;
	if (vshm_drv_vq_kick(b->vq) < 0)
		lost_device(b);	/* the request completes through recovery or with -EIO */
	return 0;
}

int vshm_blkdrv_submit(struct vshm_blkdrv *b, int op, uint64_t sector, void *buf,
		       size_t len, vshm_blk_cb cb, void *arg)
{
	return submit(b, op, sector, buf, len, NULL, 0, cb, arg);
}

int vshm_blkdrv_submit_sg(struct vshm_blkdrv *b, int op, uint64_t sector,
			  const struct vshm_sg *sg, unsigned nsg, vshm_blk_cb cb, void *arg)
{
	uint64_t len = 0;

	if (op != VSHM_BLK_OP_READ && op != VSHM_BLK_OP_WRITE)
		return -EINVAL;
	for (unsigned k = 0; k < nsg; k++)
		len += sg[k].len;
	if (len > SIZE_MAX)
		return -EINVAL;
	return submit(b, op, sector, NULL, (size_t)len, sg, nsg, cb, arg);
}

int vshm_blkdrv_poll(struct vshm_blkdrv *b)
{
	void *ck[32];
	uint32_t lens[32];
	int n, total = 0;

	if (b->dead)
		return -EIO;
	do {
		n = vshm_drv_vq_harvest_batch(b->vq, ck, lens, 32);
		if (n < 0)
			return lost_device(b) ? -EIO : total;
		for (int k = 0; k < n; k++)
			finish(b, (unsigned)((struct blk_slot *)ck[k] - b->slots), 0, lens[k]);
		total += n;
	} while (n == 32);
	return total;
}

/*
 * Halt polling, as KVM does it.  A wait that had to sleep and still saw its
 * completion within SPIN_MAX_NS would have done better spinning: no doorbell
 * for the device to ring, no wake-up for us.  So the window doubles; a
 * longer wait halves it, down to SPIN_MIN_NS, so a slow backend costs
 * little spinning.  Typically: requests complete in batches (the device
 * publishes once per pass over the ring) a few tens of microseconds apart.
 */
static void adapt_spin(struct vshm_blkdrv *b, int64_t waited_ns)
{
	if (waited_ns <= SPIN_MAX_NS)
		b->spin_ns = b->spin_ns * 2 < SPIN_MAX_NS ? b->spin_ns * 2 : SPIN_MAX_NS;
	else
		b->spin_ns = b->spin_ns / 2 > SPIN_MIN_NS ? b->spin_ns / 2 : SPIN_MIN_NS;
}

/* Has a request waited longer than the request timeout? */
static int stuck(const struct vshm_blkdrv *b)
{
	int64_t now = now_ns();

	if (!b->req_timeout_ns)
		return 0;
	for (unsigned i = 0; i < b->nslots; i++)
		if (b->slots[i].busy && now - b->slots[i].t_submit > b->req_timeout_ns)
			return 1;
	return 0;
}

/* Sleep no later than @deadline, nor past the oldest request's timeout. */
static int64_t next_wake(const struct vshm_blkdrv *b, int64_t deadline)
{
	for (unsigned i = 0; b->req_timeout_ns && i < b->nslots; i++) {
		int64_t t = b->slots[i].t_submit + b->req_timeout_ns + 1;

		if (b->slots[i].busy && t < deadline)
			deadline = t;
	}
	return deadline;
}

void vshm_blkdrv_set_timeout(struct vshm_blkdrv *b, int64_t timeout_ns)
{
	b->req_timeout_ns = timeout_ns > 0 ? timeout_ns : 0;
}

int vshm_blkdrv_wait(struct vshm_blkdrv *b, int64_t timeout_ns)
{
	int64_t start = now_ns(), deadline = start + timeout_ns;
	int n, rc, slept = 0;

	if (b->spin_ns < SPIN_MIN_NS)
		b->spin_ns = SPIN_MIN_NS;
	for (;;) {
		n = vshm_blkdrv_poll(b);
		if (n != 0) {
			if (n > 0 && slept)
				adapt_spin(b, now_ns() - start);
			return n;
		}
		if (!b->inflight)
			return 0;
		if (now_ns() - start < b->spin_ns) {
			vshm_cpu_relax();
			continue;
		}
		/*
		 * Used notifications are on only while we sleep: left on, every
		 * completion would cost the device a doorbell write.
		 */
		rc = vshm_drv_vq_enable_cb(b->vq);
		if (rc > 0) {
			vshm_drv_vq_disable_cb(b->vq);
			continue;
		}
		if (rc < 0) {
			if (lost_device(b))
				return -EIO;
			continue;
		}
		if (stuck(b)) {
			/*
			 * A live device that keeps a request forever: fail them
			 * all and take no more (the buffers it holds are never
			 * handed out again).
			 */
			vshm_drv_vq_disable_cb(b->vq);
			b->st.timeouts++;
			b->fail_status = -ETIMEDOUT;
			fail_all(b);
			return -ETIMEDOUT;
		}
		if (now_ns() >= deadline) {
			vshm_drv_vq_disable_cb(b->vq);
			return 0;
		}
		rc = vshm_drv_dev_wait(b->dev, 0, next_wake(b, deadline) - now_ns());
		slept = 1;
		vshm_drv_vq_disable_cb(b->vq);
		if (rc == -EIO && lost_device(b))
			return -EIO;
	}
}

/* ---- synchronous wrappers ---------------------------------------------- */

struct sync_ctx {
	int done;
	int status;
};

static void sync_cb(void *arg, int status)
{
	struct sync_ctx *c = arg;

	c->done = 1;
	c->status = status;
}

static int sync_io(struct vshm_blkdrv *b, int op, uint64_t sector, void *buf, size_t len)
{
	struct sync_ctx c = { 0, 0 };
	int rc;

	for (;;) {
		rc = vshm_blkdrv_submit(b, op, sector, buf, len, sync_cb, &c);
		if (rc != -EAGAIN)
			break;
		if ((rc = vshm_blkdrv_wait(b, 1000000000ll)) < 0)
			return rc;
	}
	if (rc)
		return rc;
	while (!c.done)
		if ((rc = vshm_blkdrv_wait(b, 1000000000ll)) < 0 && !c.done)
			return rc;
	return c.status;
}

int vshm_blkdrv_read(struct vshm_blkdrv *b, uint64_t sector, void *buf, size_t len)
{
	return sync_io(b, VSHM_BLK_OP_READ, sector, buf, len);
}

int vshm_blkdrv_write(struct vshm_blkdrv *b, uint64_t sector, const void *buf, size_t len)
{
	return sync_io(b, VSHM_BLK_OP_WRITE, sector, (void *)buf, len);
}

int vshm_blkdrv_flush(struct vshm_blkdrv *b)
{
	return sync_io(b, VSHM_BLK_OP_FLUSH, 0, NULL, 0);
}

int vshm_blkdrv_discard(struct vshm_blkdrv *b, uint64_t sector, uint32_t nsectors)
{
	return sync_io(b, VSHM_BLK_OP_DISCARD, sector, NULL, (size_t)nsectors * VSHM_BLK_SECTOR);
}

int vshm_blkdrv_write_zeroes(struct vshm_blkdrv *b, uint64_t sector, uint32_t nsectors)
{
	return sync_io(b, VSHM_BLK_OP_WRITE_ZEROES, sector, NULL, (size_t)nsectors * VSHM_BLK_SECTOR);
}

int vshm_blkdrv_get_id(struct vshm_blkdrv *b, char id[static 21])
{
	int rc = sync_io(b, T_GET_ID, 0, id, 20);

	id[20] = 0;
	if (rc)
		id[0] = 0;
	return rc;
}

void vshm_blkdrv_close(struct vshm_blkdrv *b)
{
	if (!b)
		return;
	/* Give outstanding requests a bounded chance, then fail the rest. */
	for (int i = 0; i < 50 && b->inflight && !b->dead; i++)
		vshm_blkdrv_wait(b, 20000000ll);
	if (b->inflight)
		fail_all(b);
	vshm_drv_dev_destroy(b->dev);
	free(b->slots);
	free(b->sgs);
	free(b);
}
