// SPDX-License-Identifier: MIT
/*
 * Driver-side runtime: session handshake, bounded control exchanges, the
 * virtio initialisation sequence, queue setup in the driver area.
 *
 * What the device sends is decoded from a private copy and checked against
 * the request it answers (message id, device number, token, echoed fields);
 * anything else is dropped.  Waits are sliced: between slices the device
 * role is re-read, so a device that died (the hub releases its role) turns
 * every wait into -EIO within one slice.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vshm/drvrt.h>
#include <vshm/mbox.h>
#include <vshm/session.h>
#include "barrier.h"

#define SLICE_NS	(20 * 1000 * 1000ll)	/* liveness re-check period */
#define MAX_DEVS	256
#define MAX_QUEUES	64

struct vshm_drv {
	struct vshm_window *w;
	const struct vshm_doorbell *db;
	struct vshm_mbox mb;
	struct vshm_drv_opts o;
	uint32_t peer_id;
	uint64_t epoch;			/* our driver-role epoch */
	uint32_t dev_owner;		/* device role owner at attach */
	uint64_t dev_epoch;		/* device role epoch at attach */
	uint16_t token;
	int dead;
	uint64_t brk;			/* next free byte of the driver area */
	uint32_t generation[MAX_DEVS];	/* from EVENT_CONFIG */
	uint8_t needs_reset[MAX_DEVS];
	void (*cleanup)(void *);	/* vshm_drv_on_destroy */
	void *cleanup_ctx;
	int (*peer_change)(void *ctx, uint32_t peer_id, int64_t timeout_ns);
	void *peer_ctx;			/* vshm_drv_on_peer_change */
	uint64_t sessions;		/* sessions entered (1 + re-attaches) */
};

struct vshm_drv_dev {
	struct vshm_drv *d;
	uint16_t dev_num;
	struct vshm_msg_dev_info info;
	uint64_t features;
	struct vshm_bounce_pool pool;
	int pool_ok;
	struct vshm_drv_vq *vq[MAX_QUEUES];
	struct vshm_vq_layout layout[MAX_QUEUES];	/* where each queue lives */
	int ready;			/* DRIVER_OK was accepted */
	struct kick_ctx {
		struct vshm_drv_dev *dev;
		unsigned index;
	} kick[MAX_QUEUES];		/* what a queue's kick hook needs */
};

#ifdef VSHM_FUZZ
/*
 * Fuzz builds only (-DVSHM_FUZZ): a harness may replace our clock and our
 * sleeps (fuzz/fuzz_drvrt.c plays the device inside them, in virtual time).
 * NULL, the real ones, unless it installs its own.  Release builds have
 * neither pointer.
 */
extern int64_t (*__vshm_fuzz_drvrt_now)(void);
extern void (*__vshm_fuzz_drvrt_sleep)(int64_t ns);
int64_t (*__vshm_fuzz_drvrt_now)(void);
void (*__vshm_fuzz_drvrt_sleep)(int64_t ns);
#endif

static int64_t now_ns(void)
{
	struct timespec ts;

#ifdef VSHM_FUZZ
	if (__vshm_fuzz_drvrt_now)
		return __vshm_fuzz_drvrt_now();
#endif
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000ll, .tv_nsec = ns % 1000000000ll };

#ifdef VSHM_FUZZ
	if (__vshm_fuzz_drvrt_sleep) {
		__vshm_fuzz_drvrt_sleep(ns);
		return;
	}
#endif
	nanosleep(&ts, NULL);
}

/* ======================================================================== */
/* Session                                                                  */

int vshm_drv_alive(struct vshm_drv *d)
{
	struct vshm_role_view v;

	if (d->dead)
		return -EIO;
	vshm_role_read(d->w, VSHM_ROLE_DEVICE, &v);
	if (v.owner != d->dev_owner || v.epoch != d->dev_epoch) {
		d->dead = 1;
		return -EIO;
	}
	return 0;
}

/*
 * Claim the driver role and run the session handshake (docs/runtime.md):
 * wait, bounded, for a device holding its role, READY, that acknowledges our
 * epoch — and that is not (@not_owner, @not_epoch), the device we lost —
 * then format the mailbox and publish READY.
 */
static int enter_session(struct vshm_drv *d, uint32_t not_owner, uint64_t not_epoch,
			 int64_t timeout_ns)
{
	struct vshm_window *w = d->w;
	struct vshm_role_view v;
	int64_t deadline = now_ns() + timeout_ns;
	uint32_t seen_owner = 0;
	uint64_t seen_epoch = 0;
	int rc;

	rc = vshm_role_claim(w, VSHM_ROLE_DRIVER, d->peer_id, &d->epoch, NULL);
	if (rc)
		return rc;
	for (;;) {
		vshm_role_read(w, VSHM_ROLE_DEVICE, &v);
		if (v.owner && (v.status & VSHM_ROLE_READY) &&
		    !(v.owner == not_owner && v.epoch == not_epoch)) {
			/* A new device: point the doorbells at it first. */
			if (d->peer_change && (v.owner != seen_owner || v.epoch != seen_epoch)) {
				if (d->peer_change(d->peer_ctx, v.owner - 1, deadline - now_ns()) == 0) {
					seen_owner = v.owner;
					seen_epoch = v.epoch;
				}
			} else if (!d->peer_change) {
				seen_owner = v.owner;
				seen_epoch = v.epoch;
			}
			if (v.owner == seen_owner && v.epoch == seen_epoch && v.peer_epoch == d->epoch)
				break;
		}
		if (now_ns() > deadline) {
			vshm_role_release(w, VSHM_ROLE_DRIVER, d->peer_id);
			return -ETIMEDOUT;
		}
		sleep_ns(200000);
	}
	d->dev_owner = v.owner;
	d->dev_epoch = v.epoch;
	/* Only now is the device off the mailbox: format it, then go READY. */
	vshm_mbox_format(w);
	vshm_mbox_init(&d->mb, w, VSHM_MBOX_SIDE_DRIVER, d->db);
	vshm_role_set_status(w, VSHM_ROLE_DRIVER, VSHM_ROLE_READY);
	d->dead = 0;
	d->sessions++;
	return 0;
}

int vshm_drv_reattach(struct vshm_drv *d, int64_t timeout_ns)
{
	uint32_t lost_owner = d->dev_owner;
	uint64_t lost_epoch = d->dev_epoch;

	/* Leave the old session for good, then wait for a new device. */
	d->dead = 1;
	vshm_role_release(d->w, VSHM_ROLE_DRIVER, d->peer_id);
	memset(d->generation, 0, sizeof(d->generation));
	memset(d->needs_reset, 0, sizeof(d->needs_reset));
	return enter_session(d, lost_owner, lost_epoch, timeout_ns);
}

void vshm_drv_on_peer_change(struct vshm_drv *d,
			     int (*fn)(void *ctx, uint32_t peer_id, int64_t timeout_ns), void *ctx)
{
	d->peer_change = fn;
	d->peer_ctx = ctx;
}

uint64_t vshm_drv_sessions(const struct vshm_drv *d)
{
	return d->sessions;
}

int vshm_drv_create(struct vshm_drv **out, struct vshm_window *w, uint32_t peer_id,
		    const struct vshm_doorbell *db, const struct vshm_drv_opts *o)
{
	struct vshm_drv *d;
	int rc;

	*out = NULL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->w = w;
	d->db = db;
	d->peer_id = peer_id;
	if (o)
		d->o = *o;
	if (!d->o.call_timeout_ns)
		d->o.call_timeout_ns = 2000000000ll;
	if (!d->o.attach_timeout_ns)
		d->o.attach_timeout_ns = 5000000000ll;
	if (!d->o.pool_size)
		d->o.pool_size = 4u << 20;
	d->brk = w->drv_lo;

	rc = enter_session(d, 0, 0, d->o.attach_timeout_ns);
	if (rc) {
		free(d);
		return rc;
	}
	*out = d;
	return 0;
}

void vshm_drv_destroy(struct vshm_drv *d)
{
	void (*fn)(void *);
	void *ctx;

	if (!d)
		return;
	vshm_role_release(d->w, VSHM_ROLE_DRIVER, d->peer_id);
	fn = d->cleanup;
	ctx = d->cleanup_ctx;
	free(d);
	if (fn)
		fn(ctx);
}

void vshm_drv_on_destroy(struct vshm_drv *d, void (*fn)(void *), void *ctx)
{
	d->cleanup = fn;
	d->cleanup_ctx = ctx;
}

uint32_t vshm_drv_device_peer(const struct vshm_drv *d)
{
	return d->dev_owner - 1;
}

int vshm_drv_alloc(struct vshm_drv *d, uint64_t size, uint64_t align, uint64_t *off)
{
	uint64_t p;

	if (!align || (align & (align - 1)))
		return -EINVAL;
	p = (d->brk + align - 1) & ~(align - 1);
	if (p < d->brk || size > d->w->drv_hi || p > d->w->drv_hi - size)
		return -ENOMEM;
	d->brk = p + size;
	*off = p;
	return 0;
}

/* ======================================================================== */
/* Control exchanges                                                        */

static void on_event(struct vshm_drv *d, const struct vshm_msg *m)
{
	if (m->id == VSHM_MSG_EVENT_CONFIG && !vshm_msg_is_bus(m) && m->dev_num < MAX_DEVS) {
		d->generation[m->dev_num] = m->u.event_config.generation;
		if (m->u.event_config.status & VSHM_MSG_STATUS_NEEDS_RESET)
			d->needs_reset[m->dev_num] = 1;
	}
	/* EVENT_USED and bus events need no action: waiters re-check rings. */
}

/* Receive one message into @m within @timeout_ns; 1, 0 on timeout, -EIO. */
static int recv_msg(struct vshm_drv *d, struct vshm_msg *m, int64_t timeout_ns)
{
	uint8_t buf[VSHM_MSG_MAX_SIZE];
	int n = timeout_ns > 0 ? vshm_mbox_recv_timeout(&d->mb, buf, sizeof(buf), timeout_ns)
			       : vshm_mbox_recv(&d->mb, buf, sizeof(buf));

	if (n == -ETIMEDOUT || n == -EAGAIN || n == -EINTR)
		return 0;
	if (n < 0) {
		d->dead = 1;
		return -EIO;
	}
	if (vshm_msg_decode(buf, (size_t)n, VSHM_MSG_MAX_SIZE, m))
		return 2;	/* malformed: dropped, keep waiting */
	return 1;
}

int vshm_drv_call(struct vshm_drv *d, struct vshm_msg *req, struct vshm_msg *resp)
{
	uint8_t buf[VSHM_MSG_MAX_SIZE];
	int64_t deadline = now_ns() + d->o.call_timeout_ns;
	int n, rc;

	if (vshm_drv_alive(d))
		return -EIO;
	req->token = ++d->token;
	n = vshm_msg_encode(req, buf, sizeof(buf), VSHM_MSG_MAX_SIZE);
	if (n < 0)
		return n;
	rc = vshm_mbox_send_timeout(&d->mb, buf, (size_t)n, d->o.call_timeout_ns);
	if (rc == -ETIMEDOUT)
		return -ETIMEDOUT;
	if (rc < 0) {
		d->dead = 1;
		return -EIO;
	}
	for (;;) {
		int64_t left = deadline - now_ns();

		if (left <= 0)
			return -ETIMEDOUT;
		rc = recv_msg(d, resp, left < SLICE_NS ? left : SLICE_NS);
		if (rc < 0)
			return rc;
		if (rc == 0 || rc == 2) {
			if (vshm_drv_alive(d))
				return -EIO;
			continue;
		}
		if (!vshm_msg_is_resp(resp)) {
			if (vshm_msg_is_event(resp))
				on_event(d, resp);
			continue;
		}
		if (resp->token == req->token && resp->id == req->id &&
		    (resp->type & VSHM_MSG_TYPE_BUS) == (req->type & VSHM_MSG_TYPE_BUS) &&
		    resp->dev_num == req->dev_num)
			return 0;
		/* a stale response to an exchange that timed out: drop it */
	}
}

int vshm_drv_get_devices(struct vshm_drv *d, uint16_t *nums, unsigned max)
{
	struct vshm_msg req, resp;
	unsigned n = 0;
	uint32_t off = 0;
	int rc;

	for (int rounds = 0; rounds < 64 && off <= 0xffff; rounds++) {
		uint16_t want = 256;

		vshm_msg_init_bus(&req, VSHM_MSG_BUS_GET_DEVICES);
		req.u.get_devices.offset = (uint16_t)off;
		req.u.get_devices.count = want;
		rc = vshm_drv_call(d, &req, &resp);
		if (rc)
			return rc;
		if (resp.u.get_devices.offset != off || resp.u.get_devices.count > want)
			return -EPROTO;
		for (uint32_t i = 0; i < resp.u.get_devices.count; i++)
			if (resp.u.get_devices.bitmap[i / 8] & (1u << (i % 8))) {
				if (n < max)
					nums[n] = (uint16_t)(off + i);
				n++;
			}
		if (resp.u.get_devices.next_offset == 0)
			break;
		off = resp.u.get_devices.next_offset;
	}
	return (int)(n < max ? n : max);
}

/* ======================================================================== */
/* Devices                                                                  */

static int set_status(struct vshm_drv_dev *dev, uint32_t s, uint32_t *got)
{
	struct vshm_msg req, resp;
	int rc;

	vshm_msg_init_req(&req, VSHM_MSG_SET_DEVICE_STATUS, dev->dev_num);
	req.u.status.status = s;
	rc = vshm_drv_call(dev->d, &req, &resp);
	if (rc)
		return rc;
	*got = resp.u.status.status;
	return 0;
}

int vshm_drv_dev_status(struct vshm_drv_dev *dev, uint32_t *status)
{
	struct vshm_msg req, resp;
	int rc;

	vshm_msg_init_req(&req, VSHM_MSG_GET_DEVICE_STATUS, dev->dev_num);
	rc = vshm_drv_call(dev->d, &req, &resp);
	if (!rc)
		*status = resp.u.status.status;
	return rc;
}

static int dev_reset(struct vshm_drv_dev *dev)
{
	uint32_t s = 1;
	int rc = set_status(dev, 0, &s);

	/* Asynchronous completion: poll GET_DEVICE_STATUS, bounded. */
	for (int i = 0; !rc && s != 0 && i < 100; i++) {
		sleep_ns(1000000);
		rc = vshm_drv_dev_status(dev, &s);
	}
	if (rc)
		return rc;
	if (s != 0)
		return -ETIMEDOUT;	/* not reset: a NEEDS_RESET it reported stands */
	if (dev->dev_num < MAX_DEVS)
		dev->d->needs_reset[dev->dev_num] = 0;
	return 0;
}

/*
 * GET_DEVICE_INFO, reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK.
 * With @exact, the device must accept exactly dev->features (a re-attach
 * may not silently change what was negotiated); otherwise @want decides.
 */
static int negotiate(struct vshm_drv_dev *dev, uint32_t device_id, uint64_t want, int exact)
{
	struct vshm_drv *d = dev->d;
	uint16_t dev_num = dev->dev_num;
	struct vshm_msg req, resp;
	uint64_t offered, feat;
	uint32_t s = 0, status;
	int rc;

	vshm_msg_init_req(&req, VSHM_MSG_GET_DEVICE_INFO, dev_num);
	if ((rc = vshm_drv_call(d, &req, &resp)))
		return rc;
	if (device_id && resp.u.dev_info.device_id != device_id)
		return -ENODEV;
	if (resp.u.dev_info.max_virtqueues == 0 || resp.u.dev_info.max_virtqueues > MAX_QUEUES ||
	    resp.u.dev_info.num_feature_blocks < 2)
		return -EPROTO;
	if (exact && (resp.u.dev_info.max_virtqueues != dev->info.max_virtqueues ||
		      resp.u.dev_info.config_size != dev->info.config_size))
		return -ENOTSUP;
	dev->info = resp.u.dev_info;
	if ((rc = dev_reset(dev)))
		return rc;
	status = VSHM_MSG_STATUS_ACKNOWLEDGE;
	if ((rc = set_status(dev, status, &s)))
		return rc;
	status |= VSHM_MSG_STATUS_DRIVER;
	if ((rc = set_status(dev, status, &s)))
		return rc;

	vshm_msg_init_req(&req, VSHM_MSG_GET_DEVICE_FEATURES, dev_num);
	req.u.feat.block_index = 0;
	req.u.feat.num_blocks = 2;
	if ((rc = vshm_drv_call(d, &req, &resp)))
		return rc;
	if (resp.u.feat.block_index != 0 || resp.u.feat.num_blocks != 2)
		return -EPROTO;
	offered = resp.u.feat.features[0] | ((uint64_t)resp.u.feat.features[1] << 32);
	if (!(offered & (1ull << VSHM_F_VERSION_1)))
		return -ENOTSUP;
	if (exact) {
		feat = dev->features;
		if (feat & ~offered)
			return -ENOTSUP;
	} else {
		uint64_t ring = d->o.ring == VSHM_RING_PACKED ? 1ull << VSHM_F_RING_PACKED :
				d->o.ring == VSHM_RING_FIFO ? 1ull << VSHM_F_FIFO_RING : 0;

		if (ring && !(offered & ring))
			return -ENOTSUP;	/* the layout asked for is not offered */
		feat = offered & (want | ring | (1ull << VSHM_F_VERSION_1) | (1ull << VSHM_F_ACCESS_PLATFORM) |
				  (1ull << VSHM_F_EVENT_IDX) | (1ull << VSHM_F_INDIRECT_DESC));
		feat &= ~((1ull << VSHM_F_NOTIF_CONFIG_DATA) | (1ull << VSHM_F_NOTIFICATION_DATA) |
			  (1ull << VSHM_F_RING_RESET));
		/* exactly one layout: the one asked for */
		feat &= ~(((1ull << VSHM_F_RING_PACKED) | (1ull << VSHM_F_FIFO_RING)) & ~ring);
	}
	vshm_msg_init_req(&req, VSHM_MSG_SET_DRIVER_FEATURES, dev_num);
	req.u.feat.block_index = 0;
	req.u.feat.num_blocks = 2;
	req.u.feat.features[0] = (uint32_t)feat;
	req.u.feat.features[1] = (uint32_t)(feat >> 32);
	if ((rc = vshm_drv_call(d, &req, &resp)))
		return rc;
	status |= VSHM_MSG_STATUS_FEATURES_OK;
	if ((rc = set_status(dev, status, &s)))
		return rc;
	if (!(s & VSHM_MSG_STATUS_FEATURES_OK))
		return -ENOTSUP;
	dev->features = feat;
	return 0;
}

int vshm_drv_dev_init(struct vshm_drv *d, uint16_t dev_num, uint32_t device_id,
		      uint64_t want, struct vshm_drv_dev **out)
{
	struct vshm_drv_dev *dev;
	uint64_t pool_off;
	int rc;

	*out = NULL;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->d = d;
	dev->dev_num = dev_num;
	rc = negotiate(dev, device_id, want, 0);
	if (rc)
		goto fail;
	rc = vshm_drv_alloc(d, d->o.pool_size, 4096, &pool_off);
	if (rc)
		goto fail;
	rc = vshm_bounce_pool_init(&dev->pool, d->w, pool_off, d->o.pool_size, 0, 0);
	if (rc)
		goto fail;
	dev->pool_ok = 1;
	*out = dev;
	return 0;
fail:
	free(dev);
	return rc;
}

void vshm_drv_dev_destroy(struct vshm_drv_dev *dev)
{
	if (!dev)
		return;
	if (!dev->d->dead)
		dev_reset(dev);
	for (unsigned i = 0; i < MAX_QUEUES; i++)
		vshm_drv_vq_destroy(dev->vq[i]);
	if (dev->pool_ok)
		vshm_bounce_pool_fini(&dev->pool);
	free(dev);
}

const struct vshm_msg_dev_info *vshm_drv_dev_info(const struct vshm_drv_dev *dev) { return &dev->info; }
uint64_t vshm_drv_dev_features(const struct vshm_drv_dev *dev) { return dev->features; }
struct vshm_bounce_pool *vshm_drv_dev_pool(struct vshm_drv_dev *dev) { return &dev->pool; }
struct vshm_window *vshm_drv_dev_window(struct vshm_drv_dev *dev) { return dev->d->w; }

int vshm_drv_dev_needs_reset(const struct vshm_drv_dev *dev)
{
	return dev->dev_num < MAX_DEVS && dev->d->needs_reset[dev->dev_num];
}

int vshm_drv_dev_config_read(struct vshm_drv_dev *dev, uint32_t off, void *buf, uint32_t len)
{
	struct vshm_msg req, resp;
	uint32_t chunk = VSHM_MSG_MAX_CONFIG_DATA;
	int rc;

	if (off > dev->info.config_size || len > dev->info.config_size - off)
		return -EINVAL;
	/* Re-read until the generation is stable across the whole range. */
	for (int tries = 0; tries < 8; tries++) {
		uint32_t gen0 = 0, done = 0;
		int stable = 1;

		while (done < len) {
			uint32_t n = len - done < chunk ? len - done : chunk;

			vshm_msg_init_req(&req, VSHM_MSG_GET_CONFIG, dev->dev_num);
			req.u.cfg.offset = off + done;
			req.u.cfg.length = n;
			rc = vshm_drv_call(dev->d, &req, &resp);
			if (rc)
				return rc;
			if (resp.u.cfg.offset != off + done || resp.u.cfg.length != n)
				return -EPROTO;
			if (done == 0)
				gen0 = resp.u.cfg.generation;
			else if (resp.u.cfg.generation != gen0)
				stable = 0;
			memcpy((uint8_t *)buf + done, resp.u.cfg.data, n);
			done += n;
		}
		if (len == 0 || stable)
			return 0;
	}
	return -EAGAIN;
}

int vshm_drv_dev_config_write(struct vshm_drv_dev *dev, uint32_t off, const void *buf, uint32_t len)
{
	struct vshm_msg req, resp;
	int rc;

	if (off > dev->info.config_size || len > dev->info.config_size - off ||
	    len > VSHM_MSG_MAX_CONFIG_DATA)
		return -EINVAL;
	vshm_msg_init_req(&req, VSHM_MSG_SET_CONFIG, dev->dev_num);
	req.u.cfg.generation = (dev->d->w->transport_features & VSHM_TF_STRICT_CONFIG_GENERATION) &&
			       dev->dev_num < MAX_DEVS ? dev->d->generation[dev->dev_num] : 0;
	req.u.cfg.offset = off;
	req.u.cfg.length = len;
	memcpy(req.u.cfg.data, buf, len);
	rc = vshm_drv_call(dev->d, &req, &resp);
	if (rc)
		return rc;
	if (resp.u.cfg.length == len)
		return 0;
	return resp.u.cfg.length == 0 ? -EPERM : -EPROTO;
}

static int kick_notify(void *ctx)
{
	struct kick_ctx *k = ctx;

	if (!k->dev->d->db)
		return 0;	/* polling only */
	return vshm_doorbell_ring(k->dev->d->db,
				  vshm_vq_vector(k->dev->d->w->vectors, k->dev->dev_num, k->index));
}

/* SET_VQUEUE at @l, then read it back: SET_VQUEUE has no result. */
static int program_queue(struct vshm_drv_dev *dev, unsigned index, const struct vshm_vq_layout *l)
{
	struct vshm_msg req, resp;
	int rc;

	vshm_msg_init_req(&req, VSHM_MSG_SET_VQUEUE, dev->dev_num);
	req.u.set_vq.index = index;
	req.u.set_vq.flags = VSHM_MSG_SETVQ_OP_ENABLE;
	req.u.set_vq.size = l->num;
	req.u.set_vq.desc_addr = l->desc;
	req.u.set_vq.driver_addr = l->avail;
	req.u.set_vq.device_addr = l->used;
	if ((rc = vshm_drv_call(dev->d, &req, &resp)))
		return rc;
	vshm_msg_init_req(&req, VSHM_MSG_GET_VQUEUE, dev->dev_num);
	req.u.get_vq.index = index;
	if ((rc = vshm_drv_call(dev->d, &req, &resp)))
		return rc;
	if (!(resp.u.get_vq.flags & VSHM_MSG_VQ_ENABLED) || resp.u.get_vq.cur_size != l->num ||
	    resp.u.get_vq.desc_addr != l->desc || resp.u.get_vq.driver_addr != l->avail ||
	    resp.u.get_vq.device_addr != l->used)
		return -EPROTO;
	return 0;
}

int vshm_drv_dev_setup_vq(struct vshm_drv_dev *dev, unsigned index, uint32_t num,
			  uint32_t indirect_max, struct vshm_drv_vq **vq)
{
	struct vshm_msg req, resp;
	struct vshm_vq_layout l;
	struct vshm_vq_notify nt;
	uint64_t base;
	int64_t bytes;
	int rc;

	*vq = NULL;
	if (index >= dev->info.max_virtqueues || dev->vq[index])
		return -EINVAL;
	vshm_msg_init_req(&req, VSHM_MSG_GET_VQUEUE, dev->dev_num);
	req.u.get_vq.index = index;
	if ((rc = vshm_drv_call(dev->d, &req, &resp)))
		return rc;
	if (resp.u.get_vq.index != index || resp.u.get_vq.max_size == 0)
		return -ENODEV;
	if (resp.u.get_vq.flags & VSHM_MSG_VQ_ENABLED)
		return -EBUSY;
	if (num == 0)
		num = resp.u.get_vq.max_size < 256 ? resp.u.get_vq.max_size : 256;
	if (num > resp.u.get_vq.max_size || (num & (num - 1)))
		return -EINVAL;
	if (!(dev->features & (1ull << VSHM_F_INDIRECT_DESC)))
		indirect_max = 0;

	/* The layout negotiated decides the shape; the last argument is the
	 * indirect table size (split, packed) or the ring bytes (FIFO). */
	{
		int64_t (*lay)(struct vshm_vq_layout *, uint64_t, uint32_t, uint32_t) = vshm_vq_layout_split;
		uint32_t arg = indirect_max;

		if (dev->features & (1ull << VSHM_F_FIFO_RING)) {
			lay = vshm_vq_layout_fifo;
			arg = dev->d->o.fifo_ring_bytes ? dev->d->o.fifo_ring_bytes : 1u << 20;
		} else if (dev->features & (1ull << VSHM_F_RING_PACKED)) {
			lay = vshm_vq_layout_packed;
		}
		bytes = lay(&l, 0, num, arg);
		if (bytes < 0)
			return (int)bytes;
		if ((rc = vshm_drv_alloc(dev->d, (uint64_t)bytes, 4096, &base)))
			return rc;
		lay(&l, base, num, arg);
	}

	/* The kick hook needs (dev, index): keep them in the device. */
	dev->kick[index].dev = dev;
	dev->kick[index].index = index;
	nt.notify = kick_notify;
	nt.ctx = &dev->kick[index];
	rc = vshm_drv_vq_create(vq, dev->d->w, &l, dev->features, &nt);
	if (rc)
		return rc;

	if ((rc = program_queue(dev, index, &l)))
		goto fail;
	dev->vq[index] = *vq;
	dev->layout[index] = l;
	return 0;
fail:
	vshm_drv_vq_destroy(*vq);
	*vq = NULL;
	return rc;
}

int vshm_drv_dev_ready(struct vshm_drv_dev *dev)
{
	uint32_t s = 0;
	int rc = set_status(dev, VSHM_MSG_STATUS_ACKNOWLEDGE | VSHM_MSG_STATUS_DRIVER |
			    VSHM_MSG_STATUS_FEATURES_OK | VSHM_MSG_STATUS_DRIVER_OK, &s);

	if (rc)
		return rc;
	if (!(s & VSHM_MSG_STATUS_DRIVER_OK) || (s & VSHM_MSG_STATUS_NEEDS_RESET))
		return -EIO;
	dev->ready = 1;
	return 0;
}

int vshm_drv_dev_reinit(struct vshm_drv_dev *dev)
{
	int rc;

	/* Every queue must be empty: the caller detached what was in flight. */
	for (unsigned i = 0; i < MAX_QUEUES; i++)
		if (dev->vq[i] && vshm_drv_vq_inflight(dev->vq[i]))
			return -EBUSY;
	rc = negotiate(dev, dev->info.device_id, 0, 1);
	if (rc)
		return rc;
	for (unsigned i = 0; i < MAX_QUEUES; i++) {
		if (!dev->vq[i])
			continue;
		if ((rc = vshm_drv_vq_reset(dev->vq[i])))
			return rc;
		if ((rc = program_queue(dev, i, &dev->layout[i])))
			return rc;
	}
	if (dev->ready) {
		dev->ready = 0;
		return vshm_drv_dev_ready(dev);
	}
	return 0;
}

int vshm_drv_dev_wait(struct vshm_drv_dev *dev, unsigned index, int64_t timeout_ns)
{
	unsigned vec = vshm_vq_vector(dev->d->w->vectors, dev->dev_num, index);
	int64_t deadline = now_ns() + timeout_ns;
	int rc;

	for (;;) {
		int64_t left = deadline - now_ns();
		struct vshm_msg m;

		if (vshm_drv_alive(dev->d))
			return -EIO;
		/* Control events (EVENT_CONFIG with NEEDS_RESET) arrive in the
		 * mailbox: drain them without blocking. */
		while ((rc = recv_msg(dev->d, &m, 0)) > 0)
			if (rc == 1 && !vshm_msg_is_resp(&m) && vshm_msg_is_event(&m))
				on_event(dev->d, &m);
		if (rc < 0)
			return -EIO;
		if (vshm_drv_dev_needs_reset(dev))
			return -EIO;
		if (left <= 0)
			return -ETIMEDOUT;
		if (!dev->d->db) {
			sleep_ns(left < 50000 ? left : 50000);
			return 0;
		}
		rc = vshm_doorbell_wait(dev->d->db, vec, left < SLICE_NS ? left : SLICE_NS);
		if (rc == 0)
			return 0;
		if (rc != -ETIMEDOUT && rc != -EINTR)
			return -EIO;
	}
}

int vshm_ring_parse(const char *s)
{
	if (!strcmp(s, "split"))
		return VSHM_RING_SPLIT;
	if (!strcmp(s, "packed"))
		return VSHM_RING_PACKED;
	if (!strcmp(s, "fifo"))
		return VSHM_RING_FIFO;
	return -EINVAL;
}

const char *vshm_ring_name(int ring)
{
	return ring == VSHM_RING_PACKED ? "packed" : ring == VSHM_RING_FIFO ? "fifo" : "split";
}
