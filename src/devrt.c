// SPDX-License-Identifier: MIT
/*
 * Device-side runtime: virtio-msg device transport, session handshake, and
 * queue servicing for a set of device models.
 *
 * Everything the driver sends is decoded from a private copy (the mailbox
 * copies each message out once; the codec validates it).  Malformed or
 * unroutable messages are dropped without an answer, as virtio-msg asks;
 * a queue the driver breaks sets DEVICE_NEEDS_RESET on its device only.
 * Requests are bounded by a per-queue pool of `size` entries, so a driver
 * that keeps publishing without consuming completions cannot make us
 * allocate more.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vshm/devrt.h>
#include <vshm/mbox.h>
#include <vshm/msg.h>
#include <vshm/session.h>
#include "barrier.h"

#define POP_BUDGET	64	/* chains per queue per step: fairness */
#define HEARTBEAT_NS	(100 * 1000 * 1000ull)

/* Transport features every device offers on this bus. */
#define RT_FEATURES ((1ull << VSHM_F_VERSION_1) | (1ull << VSHM_F_ACCESS_PLATFORM) | \
		     (1ull << VSHM_F_EVENT_IDX) | (1ull << VSHM_F_INDIRECT_DESC) | \
		     (1ull << VSHM_F_RING_PACKED) | (1ull << VSHM_F_FIFO_RING))

struct rt_req {
	struct vshm_req r;		/* handed to the model */
	struct rt_queue *q;
	uint32_t gen;			/* queue generation at pop time */
	uint32_t next_free;
};

struct rt_queue {
	struct vshm_dev_vq *vq;		/* live while enabled */
	uint32_t max_size;		/* from the model */
	uint32_t size;			/* configured, 0 = none */
	uint64_t desc, driver, device;	/* configured window offsets */
	int enabled;
	uint32_t gen;			/* bumped whenever the queue is torn down */
	struct rt_req *reqs;		/* pool of `size` */
	struct vshm_iov *iovs;		/* size * seg_max */
	uint32_t free_head;		/* pool free list, UINT32_MAX = empty */
	uint32_t nfree;
	int dirty;			/* completions pushed, not published */
	uint32_t done;			/* completions since enabled (faults) */
	uint16_t dev_num;
	uint16_t index;
};

struct vshm_dev_rt;

struct rt_dev {
	struct vshm_devmodel_host host;	/* ctx = this rt_dev */
	struct vshm_dev_rt *rt;
	struct vshm_devmodel *m;
	uint32_t status;
	uint64_t offered;
	uint64_t drv_features;		/* blocks 0 and 1 as the driver set them */
	uint32_t drv_features_hi;	/* any bit set in blocks >= 2 */
	uint32_t generation;
	uint32_t nq;
	uint32_t seg_max;
	struct rt_queue *q;
	int in_reset;
};

struct vshm_dev_rt {
	struct vshm_window *w;
	struct vshm_mbox mb;
	const struct vshm_doorbell *db;
	struct rt_dev devs[VSHM_RT_MAX_DEVICES];
	unsigned ndev;
	uint32_t peer_id;
	uint64_t epoch;			/* our device-role epoch */
	int state;
	uint32_t drv_owner;		/* driver role owner of this session */
	uint64_t drv_epoch;		/* driver epoch of this session */
	uint64_t acked_epoch;		/* last driver epoch we acknowledged */
	uint64_t last_beat;
	uint8_t pending[VSHM_MSG_MAX_SIZE];	/* a response the mailbox could not take */
	int pending_len;
	struct vshm_dev_rt_stats st;
	struct vshm_dev_rt_faults faults;	/* testing only */
	uint32_t faults_done;		/* USED_ID faults so far */
	uint64_t rnd;			/* CONFIG's garbage */
	uint64_t fault_at;		/* CONFIG's last event */
};

static uint64_t fault_rand(struct vshm_dev_rt *rt)
{
	/* xorshift64*: garbage, not secrets. */
	rt->rnd ^= rt->rnd >> 12;
	rt->rnd ^= rt->rnd << 25;
	rt->rnd ^= rt->rnd >> 27;
	return rt->rnd * 2685821657736338717ull;
}

static uint64_t coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ======================================================================== */
/* Queues                                                                   */

static void queue_teardown(struct rt_queue *q)
{
	vshm_dev_vq_destroy(q->vq);
	q->vq = NULL;
	free(q->reqs);
	free(q->iovs);
	q->reqs = NULL;
	q->iovs = NULL;
	q->nfree = 0;
	q->free_head = UINT32_MAX;
	q->enabled = 0;
	q->dirty = 0;
	q->done = 0;
	q->gen++;
}

static int queue_enable(struct vshm_dev_rt *rt, struct rt_dev *d, struct rt_queue *q)
{
	struct vshm_vq_layout l = {
		.num = q->size, .desc = q->desc, .avail = q->driver, .used = q->device,
	};
	uint64_t feat = d->drv_features;
	uint32_t i;

	if (!q->size)
		return -EINVAL;
	if (vshm_dev_vq_create(&q->vq, rt->w, &l, feat, NULL))
		return -EINVAL;
	q->reqs = calloc(q->size, sizeof(*q->reqs));
	q->iovs = calloc((size_t)q->size * d->seg_max, sizeof(*q->iovs));
	if (!q->reqs || !q->iovs) {
		queue_teardown(q);
		return -ENOMEM;
	}
	for (i = 0; i < q->size; i++) {
		q->reqs[i].q = q;
		q->reqs[i].next_free = i + 1 < q->size ? i + 1 : UINT32_MAX;
		q->reqs[i].r.queue = q->index;
		q->reqs[i].r.rt_priv = &q->reqs[i];
	}
	q->free_head = 0;
	q->nfree = q->size;
	q->enabled = 1;
	return 0;
}

/* ======================================================================== */
/* Devices                                                                  */

static void send_event_config(struct vshm_dev_rt *rt, unsigned dev_num);

static void device_reset(struct vshm_dev_rt *rt, struct rt_dev *d)
{
	uint32_t i;

	/* The model completes what it holds; completions of a torn-down
	 * queue are recognised by the generation and dropped. */
	d->in_reset = 1;
	if (d->m->ops->reset)
		d->m->ops->reset(d->m);
	d->in_reset = 0;
	for (i = 0; i < d->nq; i++) {
		queue_teardown(&d->q[i]);
		d->q[i].size = 0;
		d->q[i].desc = d->q[i].driver = d->q[i].device = 0;
	}
	d->status = 0;
	d->drv_features = 0;
	d->drv_features_hi = 0;
}

static void reset_all(struct vshm_dev_rt *rt)
{
	for (unsigned i = 0; i < rt->ndev; i++)
		device_reset(rt, &rt->devs[i]);
	rt->pending_len = 0;
}

static void set_needs_reset(struct vshm_dev_rt *rt, struct rt_dev *d)
{
	if (d->status & VSHM_MSG_STATUS_NEEDS_RESET)
		return;
	d->status |= VSHM_MSG_STATUS_NEEDS_RESET;
	send_event_config(rt, (unsigned)(d - rt->devs));
}

/* ======================================================================== */
/* Model host callbacks                                                     */

/*
 * The hostile completions (vshm_dev_rt_set_faults).  1: done here (the
 * completion was replaced), 0: push it as usual.
 */
static int fault_complete(struct vshm_dev_rt *rt, struct rt_queue *q, uint16_t head,
			  uint32_t written)
{
	uint32_t every = rt->faults.after ? rt->faults.after : 1;

	q->done++;
	if ((rt->faults.classes & VSHM_RT_FAULT_STALL) && q->done > every)
		return 1;	/* taken, never completed */
	if ((rt->faults.classes & VSHM_RT_FAULT_USED_ID) && q->done % every == 0) {
		if (rt->faults_done++ % 2 == 0)
			vshm_dev_vq_inject_used(q->vq, q->size + 0x1000u, 0);
		else if (vshm_dev_vq_push(q->vq, head, written) == 0)
			vshm_dev_vq_inject_used(q->vq, head, written);
		return 1;
	}
	if (rt->faults.classes & VSHM_RT_FAULT_USED_LEN) {
		vshm_dev_vq_push(q->vq, head, UINT32_MAX);
		return 1;
	}
	return 0;
}

static void host_complete(void *ctx, struct vshm_req *r, uint32_t written)
{
	struct rt_dev *d = ctx;
	struct rt_req *rr = r->rt_priv;
	struct rt_queue *q = rr->q;

	if (rr->gen != q->gen || !q->reqs)
		return;		/* the queue was torn down since: drop */
	if (q->vq && d->rt->faults.classes && fault_complete(d->rt, q, r->chain.head, written)) {
		q->dirty = 1;
	} else if (q->vq && vshm_dev_vq_push(q->vq, r->chain.head, written) == 0) {
		q->dirty = 1;
		d->rt->st.completions++;
	}
	rr->next_free = q->free_head;
	q->free_head = (uint32_t)(rr - q->reqs);
	q->nfree++;
}

static void host_config_changed(void *ctx)
{
	struct rt_dev *d = ctx;

	d->generation++;
	send_event_config(d->rt, (unsigned)(d - d->rt->devs));
}

static void host_kick_queue(void *ctx, unsigned queue)
{
	(void)ctx;
	(void)queue;	/* every step scans every live queue */
}

static void host_needs_reset(void *ctx, const char *why)
{
	struct rt_dev *d = ctx;

	(void)why;
	if (!d->in_reset)
		set_needs_reset(d->rt, d);
}

/* ======================================================================== */
/* Messages                                                                 */

static void mbox_send_msg(struct vshm_dev_rt *rt, const struct vshm_msg *m)
{
	uint8_t buf[VSHM_MSG_MAX_SIZE];
	int n;

	if ((rt->faults.classes & VSHM_RT_FAULT_MUTE) && rt->st.messages > rt->faults.after)
		return;
	n = vshm_msg_encode(m, buf, sizeof(buf), VSHM_MSG_MAX_SIZE);
	if (n < 0)
		return;
	if (rt->pending_len) {
		/* Keep order: a response is already waiting for space. */
		return;
	}
	if (vshm_mbox_send(&rt->mb, buf, (size_t)n) == -EAGAIN) {
		memcpy(rt->pending, buf, (size_t)n);
		rt->pending_len = n;
	}
}

static void send_event_config(struct vshm_dev_rt *rt, unsigned dev_num)
{
	struct vshm_msg m;
	struct rt_dev *d = &rt->devs[dev_num];

	if (rt->state != VSHM_RT_ACTIVE)
		return;
	vshm_msg_init_req(&m, VSHM_MSG_EVENT_CONFIG, (uint16_t)dev_num);
	m.u.event_config.status = d->status;
	m.u.event_config.generation = d->generation;
	mbox_send_msg(rt, &m);
}

static void on_get_devices(struct vshm_dev_rt *rt, struct vshm_msg *m)
{
	uint16_t off = m->u.get_devices.offset;
	uint32_t count = m->u.get_devices.count, limit, i;

	limit = (uint32_t)vshm_msg_max_devices_window(VSHM_MSG_MAX_SIZE);
	if (count > limit)
		count = limit;
	/* Trailing empty slots may be trimmed: stop after our last device. */
	if (off >= rt->ndev)
		count = 0;
	else if (count > rt->ndev - off)
		count = rt->ndev - off;
	vshm_msg_init_resp(m, m);
	m->u.get_devices.offset = off;
	m->u.get_devices.next_offset = 0;
	m->u.get_devices.count = (uint16_t)count;
	memset(m->u.get_devices.bitmap, 0, sizeof(m->u.get_devices.bitmap));
	for (i = 0; i < count; i++)
		m->u.get_devices.bitmap[i / 8] |= (uint8_t)(1u << (i % 8));
}

static int features_ok(struct rt_dev *d)
{
	uint64_t f = d->drv_features;

	if (d->drv_features_hi)
		return 0;
	if (f & ~d->offered)
		return 0;
	if (!(f & (1ull << VSHM_F_VERSION_1)))
		return 0;
	/* One layout per device: packed and FIFO exclude each other. */
	if ((f & (1ull << VSHM_F_RING_PACKED)) && (f & (1ull << VSHM_F_FIFO_RING)))
		return 0;
	/* The model hears only about the bits it offered itself. */
	if (d->m->ops->set_features &&
	    d->m->ops->set_features(d->m, f & (d->m->ops->features ? d->m->ops->features(d->m) : 0)))
		return 0;
	return 1;
}

static void on_set_status(struct vshm_dev_rt *rt, struct rt_dev *d, uint32_t s)
{
	uint32_t old = d->status;

	if (s == 0) {
		device_reset(rt, d);
		return;
	}
	/* Status only grows between resets; NEEDS_RESET stays ours to set. */
	s |= old & VSHM_MSG_STATUS_NEEDS_RESET;
	if ((s & VSHM_MSG_STATUS_FEATURES_OK) && !(old & VSHM_MSG_STATUS_FEATURES_OK)) {
		if (!(old & VSHM_MSG_STATUS_DRIVER) || !features_ok(d))
			s &= ~VSHM_MSG_STATUS_FEATURES_OK;
	}
	if ((s & VSHM_MSG_STATUS_DRIVER_OK) && !(old & VSHM_MSG_STATUS_DRIVER_OK)) {
		if (!(s & VSHM_MSG_STATUS_FEATURES_OK)) {
			s &= ~VSHM_MSG_STATUS_DRIVER_OK;
		} else if (d->m->ops->start && d->m->ops->start(d->m)) {
			s |= VSHM_MSG_STATUS_NEEDS_RESET;
		}
	}
	d->status = s;
}

static void on_set_vqueue(struct vshm_dev_rt *rt, struct rt_dev *d, const struct vshm_msg_set_vq *sv)
{
	struct rt_queue *q;
	uint32_t op = sv->flags & VSHM_MSG_SETVQ_OP_MASK;
	uint32_t size;
	uint64_t desc, drv, dev;

	if (sv->invalid || sv->index >= d->nq)
		return;
	q = &d->q[sv->index];
	if (op == VSHM_MSG_SETVQ_OP_RESERVED)
		return;
	if (q->enabled && op == VSHM_MSG_SETVQ_OP_DISABLED)
		return;
	size = (sv->flags & VSHM_MSG_SETVQ_SIZE_IGNORE) ? q->size : sv->size;
	desc = (sv->flags & VSHM_MSG_SETVQ_DESC_IGNORE) ? q->desc : sv->desc_addr;
	drv = (sv->flags & VSHM_MSG_SETVQ_DRIVER_IGNORE) ? q->driver : sv->driver_addr;
	dev = (sv->flags & VSHM_MSG_SETVQ_DEVICE_IGNORE) ? q->device : sv->device_addr;
	if (q->enabled && (size != q->size || desc != q->desc || drv != q->driver || dev != q->device))
		return;
	/* Split rings need a power-of-two size no larger than the maximum. */
	if (size > q->max_size || (size & (size - 1)))
		return;
	q->size = size;
	q->desc = desc;
	q->driver = drv;
	q->device = dev;
	if (op == VSHM_MSG_SETVQ_OP_ENABLE && !q->enabled &&
	    (d->status & VSHM_MSG_STATUS_FEATURES_OK))
		queue_enable(rt, d, q);	/* on failure the queue stays disabled */
}

static void on_transport(struct vshm_dev_rt *rt, struct vshm_msg *m)
{
	struct rt_dev *d;
	uint32_t off, len, csize;

	if (m->dev_num >= rt->ndev || vshm_msg_is_resp(m)) {
		rt->st.dropped++;
		return;
	}
	d = &rt->devs[m->dev_num];
	if (vshm_msg_is_event(m)) {
		/* EVENT_AVAIL: a kick; every step scans the queues anyway. */
		return;
	}
	switch (m->id) {
	case VSHM_MSG_GET_DEVICE_INFO:
		vshm_msg_init_resp(m, m);
		memset(&m->u.dev_info, 0, sizeof(m->u.dev_info));
		m->u.dev_info.device_id = d->m->ops->device_id;
		m->u.dev_info.vendor_id = 0x4d485356;	/* "VSHM" */
		m->u.dev_info.num_feature_blocks = 2;
		m->u.dev_info.config_size = d->m->ops->config_size ? d->m->ops->config_size(d->m) : 0;
		m->u.dev_info.max_virtqueues = d->nq;
		break;
	case VSHM_MSG_GET_DEVICE_FEATURES: {
		uint32_t b0 = m->u.feat.block_index, n = m->u.feat.num_blocks;

		vshm_msg_init_resp(m, m);
		m->u.feat.block_index = b0;
		m->u.feat.num_blocks = n;
		for (uint32_t i = 0; i < n; i++) {
			uint64_t b = (uint64_t)b0 + i;

			m->u.feat.features[i] = b == 0 ? (uint32_t)d->offered :
						b == 1 ? (uint32_t)(d->offered >> 32) : 0;
		}
		break;
	}
	case VSHM_MSG_SET_DRIVER_FEATURES: {
		uint32_t b0 = m->u.feat.block_index, n = m->u.feat.num_blocks;

		if (!(d->status & VSHM_MSG_STATUS_FEATURES_OK)) {
			for (uint32_t i = 0; i < n; i++) {
				uint64_t b = (uint64_t)b0 + i;
				uint32_t v = m->u.feat.features[i];

				if (b == 0)
					d->drv_features = (d->drv_features & ~0xffffffffull) | v;
				else if (b == 1)
					d->drv_features = (d->drv_features & 0xffffffffull) | ((uint64_t)v << 32);
				else if (v)
					d->drv_features_hi = 1;
			}
		}
		vshm_msg_init_resp(m, m);
		break;
	}
	case VSHM_MSG_GET_CONFIG:
		off = m->u.cfg.offset;
		len = m->u.cfg.length;
		csize = d->m->ops->config_size ? d->m->ops->config_size(d->m) : 0;
		if (off > csize || len > csize - off) {
			rt->st.dropped++;
			return;
		}
		vshm_msg_init_resp(m, m);
		m->u.cfg.generation = d->generation;
		m->u.cfg.offset = off;
		m->u.cfg.length = len;
		if (len)
			d->m->ops->config_read(d->m, off, m->u.cfg.data, len);
		if (rt->faults.classes & VSHM_RT_FAULT_CONFIG) {
			m->u.cfg.generation = (uint32_t)fault_rand(rt);
			for (uint32_t i = 0; i < len; i++)
				m->u.cfg.data[i] = (uint8_t)fault_rand(rt);
		}
		break;
	case VSHM_MSG_SET_CONFIG: {
		int applied = 0;

		off = m->u.cfg.offset;
		len = m->u.cfg.length;
		csize = d->m->ops->config_size ? d->m->ops->config_size(d->m) : 0;
		if (off > csize || len > csize - off) {
			rt->st.dropped++;
			return;
		}
		if (len && (!(rt->w->transport_features & VSHM_TF_STRICT_CONFIG_GENERATION) ||
			    m->u.cfg.generation == d->generation))
			applied = d->m->ops->config_write &&
				  d->m->ops->config_write(d->m, off, m->u.cfg.data, len) == 0;
		/* The response echoes the data when applied: keep it. */
		{
			struct vshm_msg_config echo = m->u.cfg;

			vshm_msg_init_resp(m, m);
			m->u.cfg = echo;
		}
		m->u.cfg.generation = d->generation;
		m->u.cfg.offset = off;
		m->u.cfg.length = applied ? len : 0;
		break;
	}
	case VSHM_MSG_GET_DEVICE_STATUS:
		vshm_msg_init_resp(m, m);
		m->u.status.status = d->status;
		break;
	case VSHM_MSG_SET_DEVICE_STATUS:
		on_set_status(rt, d, m->u.status.status);
		vshm_msg_init_resp(m, m);
		m->u.status.status = d->status;
		break;
	case VSHM_MSG_GET_VQUEUE: {
		uint32_t idx = m->u.get_vq.index;

		vshm_msg_init_resp(m, m);
		memset(&m->u.get_vq, 0, sizeof(m->u.get_vq));
		m->u.get_vq.index = idx;
		if (idx < d->nq) {
			struct rt_queue *q = &d->q[idx];

			m->u.get_vq.max_size = q->max_size;
			m->u.get_vq.cur_size = q->size;
			m->u.get_vq.flags = q->enabled ? VSHM_MSG_VQ_ENABLED : 0;
			m->u.get_vq.desc_addr = q->desc;
			m->u.get_vq.driver_addr = q->driver;
			m->u.get_vq.device_addr = q->device;
		}
		break;
	}
	case VSHM_MSG_SET_VQUEUE:
		on_set_vqueue(rt, d, &m->u.set_vq);
		vshm_msg_init_resp(m, m);
		break;
	case VSHM_MSG_RESET_VQUEUE:
		/* RING_RESET is not offered: an empty answer, nothing done. */
		vshm_msg_init_resp(m, m);
		break;
	case VSHM_MSG_GET_SHM: {
		uint32_t id = m->u.shm.shmid;

		vshm_msg_init_resp(m, m);
		memset(&m->u.shm, 0, sizeof(m->u.shm));
		m->u.shm.shmid = id;
		break;
	}
	default:
		rt->st.dropped++;
		return;
	}
	rt->st.messages++;
	mbox_send_msg(rt, m);
}

static int serve_mailbox(struct vshm_dev_rt *rt)
{
	uint8_t buf[VSHM_MSG_MAX_SIZE];
	struct vshm_msg m;
	int work = 0, n;

	/* A held response goes first; until it leaves, take no new request. */
	if (rt->pending_len) {
		if (vshm_mbox_send(&rt->mb, rt->pending, (size_t)rt->pending_len) == -EAGAIN)
			return 0;
		rt->pending_len = 0;
		work++;
	}
	while (!rt->pending_len && (n = vshm_mbox_recv(&rt->mb, buf, sizeof(buf))) > 0) {
		work++;
		if (vshm_msg_decode(buf, (size_t)n, VSHM_MSG_MAX_SIZE, &m)) {
			rt->st.dropped++;
			continue;
		}
		if (vshm_msg_is_bus(&m)) {
			if (vshm_msg_is_resp(&m) || vshm_msg_is_event(&m)) {
				rt->st.dropped++;
				continue;
			}
			if (m.id == VSHM_MSG_BUS_GET_DEVICES)
				on_get_devices(rt, &m);
			else if (m.id == VSHM_MSG_BUS_PING) {
				uint32_t data = m.u.ping.data;

				vshm_msg_init_resp(&m, &m);
				m.u.ping.data = data;	/* an exact echo */
			}
			else {
				rt->st.dropped++;
				continue;
			}
			rt->st.messages++;
			mbox_send_msg(rt, &m);
			continue;
		}
		on_transport(rt, &m);
	}
	return work;
}

/* ======================================================================== */
/* Queue servicing                                                          */

static int serve_queue(struct vshm_dev_rt *rt, struct rt_dev *d, struct rt_queue *q)
{
	int work = 0, rc;

	while (work < POP_BUDGET && q->nfree) {
		struct rt_req *rr = &q->reqs[q->free_head];

		rc = vshm_dev_vq_pop(q->vq, &rr->r.chain,
				     q->iovs + (size_t)(rr - q->reqs) * d->seg_max, d->seg_max);
		if (rc == 0)
			break;
		if (rc < 0) {
			rt->st.broken_queues++;
			set_needs_reset(rt, d);
			break;
		}
		q->free_head = rr->next_free;
		q->nfree--;
		rr->gen = q->gen;
		rr->r.model_priv = NULL;
		rt->st.chains++;
		work++;
		if (d->m->ops->request(d->m, &rr->r) < 0)
			host_complete(d, &rr->r, 0);
	}
	return work;
}

static void flush_queue(struct vshm_dev_rt *rt, unsigned dev_num, struct rt_queue *q)
{
	int need;

	if (!q->dirty || !q->vq)
		return;
	q->dirty = 0;
	need = vshm_dev_vq_publish(q->vq);
	if (need > 0 && rt->db) {
		vshm_doorbell_ring(rt->db, vshm_vq_vector(rt->w->vectors, dev_num, q->index));
		rt->st.notifies++;
	}
}

static int serve_queues(struct vshm_dev_rt *rt)
{
	int work = 0;

	for (unsigned i = 0; i < rt->ndev; i++) {
		struct rt_dev *d = &rt->devs[i];
		int live = (d->status & VSHM_MSG_STATUS_DRIVER_OK) &&
			   !(d->status & (VSHM_MSG_STATUS_NEEDS_RESET | VSHM_MSG_STATUS_FAILED));

		if (live && d->m->ops->poll)
			work += d->m->ops->poll(d->m);
		for (uint32_t k = 0; k < d->nq; k++) {
			struct rt_queue *q = &d->q[k];

			if (live && q->enabled)
				work += serve_queue(rt, d, q);
			if (live && d->m->ops->poll)
				work += d->m->ops->poll(d->m);
			flush_queue(rt, i, q);
		}
	}
	return work;
}

/* ======================================================================== */
/* Session                                                                  */

static void end_session(struct vshm_dev_rt *rt)
{
	reset_all(rt);
	rt->state = VSHM_RT_NO_DRIVER;
	rt->drv_owner = 0;
	rt->drv_epoch = 0;
}

static int follow_session(struct vshm_dev_rt *rt)
{
	struct vshm_role_view d, me;

	vshm_role_read(rt->w, VSHM_ROLE_DEVICE, &me);
	if (me.owner != rt->peer_id + 1 || me.epoch != rt->epoch) {
		end_session(rt);
		return -EOWNERDEAD;	/* someone took the device role */
	}
	vshm_role_read(rt->w, VSHM_ROLE_DRIVER, &d);
	switch (rt->state) {
	case VSHM_RT_NO_DRIVER:
		if (d.owner && d.epoch && d.epoch != rt->acked_epoch &&
		    !(d.status & VSHM_ROLE_READY)) {
			rt->drv_owner = d.owner;
			rt->drv_epoch = d.epoch;
			rt->acked_epoch = d.epoch;
			vshm_role_set_peer_epoch(rt->w, VSHM_ROLE_DEVICE, d.epoch);
			rt->state = VSHM_RT_HANDSHAKE;
			return 1;
		}
		return 0;
	case VSHM_RT_HANDSHAKE:
		if (d.owner != rt->drv_owner || d.epoch != rt->drv_epoch) {
			end_session(rt);
			return 1;
		}
		if (d.status & VSHM_ROLE_READY) {
			/* The driver formatted the mailbox after our ack. */
			vshm_mbox_init(&rt->mb, rt->w, VSHM_MBOX_SIDE_DEVICE, rt->db);
			rt->state = VSHM_RT_ACTIVE;
			rt->st.sessions++;
			return 1;
		}
		return 0;
	default:
		if (d.owner != rt->drv_owner || d.epoch != rt->drv_epoch ||
		    !(d.status & VSHM_ROLE_READY)) {
			end_session(rt);
			return 1;
		}
		return 0;
	}
}

/* ======================================================================== */
/* Public API                                                               */

int vshm_dev_rt_create(struct vshm_dev_rt **out, struct vshm_window *w, uint32_t peer_id)
{
	struct vshm_dev_rt *rt;
	uint32_t owner = 0;
	int rc;

	*out = NULL;
	rt = calloc(1, sizeof(*rt));
	if (!rt)
		return -ENOMEM;
	rt->w = w;
	rt->peer_id = peer_id;
	for (unsigned i = 0; i < VSHM_RT_MAX_DEVICES; i++) {
		struct rt_dev *d = &rt->devs[i];

		d->rt = rt;
		d->host.ctx = d;
		d->host.complete = host_complete;
		d->host.config_changed = host_config_changed;
		d->host.kick_queue = host_kick_queue;
		d->host.needs_reset = host_needs_reset;
	}
	rc = vshm_role_claim(w, VSHM_ROLE_DEVICE, peer_id, &rt->epoch, &owner);
	if (rc) {
		free(rt);
		return rc;
	}
	/* A driver already READY belongs to an earlier device: never serve it
	 * without a fresh handshake. */
	{
		struct vshm_role_view d;

		vshm_role_read(w, VSHM_ROLE_DRIVER, &d);
		if (d.status & VSHM_ROLE_READY)
			rt->acked_epoch = d.epoch;
	}
	vshm_role_set_status(w, VSHM_ROLE_DEVICE, VSHM_ROLE_READY);
	*out = rt;
	return 0;
}

void vshm_dev_rt_destroy(struct vshm_dev_rt *rt)
{
	if (!rt)
		return;
	reset_all(rt);
	for (unsigned i = 0; i < rt->ndev; i++)
		free(rt->devs[i].q);
	vshm_role_release(rt->w, VSHM_ROLE_DEVICE, rt->peer_id);
	free(rt);
}

const struct vshm_devmodel_host *vshm_dev_rt_next_host(struct vshm_dev_rt *rt)
{
	return rt->ndev < VSHM_RT_MAX_DEVICES ? &rt->devs[rt->ndev].host : NULL;
}

int vshm_dev_rt_add(struct vshm_dev_rt *rt, struct vshm_devmodel *m)
{
	struct rt_dev *d;
	uint32_t nq;

	if (rt->ndev >= VSHM_RT_MAX_DEVICES)
		return -ENOSPC;
	nq = m->ops->num_queues(m);
	if (nq == 0 || nq > 256)
		return -EINVAL;
	d = &rt->devs[rt->ndev];
	if (m->host != &d->host)
		return -EINVAL;	/* created with vshm_dev_rt_next_host() */
	d->m = m;
	d->nq = nq;
	d->seg_max = m->ops->seg_max ? m->ops->seg_max(m) : 128;	/* buffers per chain, all told */
	d->offered = (m->ops->features ? m->ops->features(m) : 0) | RT_FEATURES;
	d->q = calloc(nq, sizeof(*d->q));
	if (!d->q)
		return -ENOMEM;
	for (uint32_t i = 0; i < nq; i++) {
		uint32_t mx = m->ops->queue_max ? m->ops->queue_max(m, i) : 256;

		if (mx > VSHM_VQ_MAX_SIZE)
			mx = VSHM_VQ_MAX_SIZE;
		d->q[i].max_size = mx;
		d->q[i].index = (uint16_t)i;
		d->q[i].dev_num = (uint16_t)rt->ndev;
		d->q[i].free_head = UINT32_MAX;
	}
	return (int)rt->ndev++;
}

void vshm_dev_rt_set_faults(struct vshm_dev_rt *rt, const struct vshm_dev_rt_faults *f)
{
	rt->faults = *f;
	rt->rnd = 0x9e3779b97f4a7c15ull ^ rt->epoch;
}

/* STORM and CONFIG's side: every step, while a session is active. */
static int fault_step(struct vshm_dev_rt *rt, uint64_t now)
{
	if (rt->faults.classes & VSHM_RT_FAULT_STORM) {
		for (uint32_t v = 0; rt->db && v < rt->w->vectors; v++)
			vshm_doorbell_ring(rt->db, v);
	}
	if ((rt->faults.classes & VSHM_RT_FAULT_CONFIG) && now - rt->fault_at >= 10000000ull) {
		rt->fault_at = now;
		for (unsigned i = 0; i < rt->ndev; i++)
			host_config_changed(&rt->devs[i]);
	}
	return (rt->faults.classes & VSHM_RT_FAULT_STORM) ? 1 : 0;	/* a storm never idles */
}

void vshm_dev_rt_set_doorbell(struct vshm_dev_rt *rt, const struct vshm_doorbell *db)
{
	rt->db = db;
	if (rt->state == VSHM_RT_ACTIVE)
		rt->mb.db = db;
}

int vshm_dev_rt_step(struct vshm_dev_rt *rt)
{
	uint64_t now = coarse_ns();
	int work, rc;

	if (now - rt->last_beat >= HEARTBEAT_NS) {
		vshm_role_heartbeat(rt->w, VSHM_ROLE_DEVICE);
		rt->last_beat = now;
	}
	rc = follow_session(rt);
	if (rc < 0)
		return rc;
	work = rc;
	if (rt->state != VSHM_RT_ACTIVE)
		return work;
	if (vshm_mbox_broken(&rt->mb)) {
		/* The driver broke the control plane: drop the session. */
		end_session(rt);
		return work + 1;
	}
	work += serve_mailbox(rt);
	work += serve_queues(rt);
	if (rt->faults.classes)
		work += fault_step(rt, now);
	return work;
}

int vshm_dev_rt_arm(struct vshm_dev_rt *rt)
{
	int pending = 0;

	if (rt->state != VSHM_RT_ACTIVE)
		return 0;
	if (vshm_mbox_arm(&rt->mb) != 0)
		pending = 1;
	for (unsigned i = 0; i < rt->ndev; i++) {
		struct rt_dev *d = &rt->devs[i];

		for (uint32_t k = 0; k < d->nq; k++)
			if (d->q[k].vq && vshm_dev_vq_enable_notify(d->q[k].vq) > 0 &&
			    d->q[k].nfree && (d->status & VSHM_MSG_STATUS_DRIVER_OK))
				pending = 1;
	}
	return pending;
}

void vshm_dev_rt_disarm(struct vshm_dev_rt *rt)
{
	if (rt->state != VSHM_RT_ACTIVE)
		return;
	vshm_mbox_disarm(&rt->mb);
	for (unsigned i = 0; i < rt->ndev; i++)
		for (uint32_t k = 0; k < rt->devs[i].nq; k++)
			if (rt->devs[i].q[k].vq)
				vshm_dev_vq_disable_notify(rt->devs[i].q[k].vq);
}

void vshm_dev_rt_driver_gone(struct vshm_dev_rt *rt)
{
	if (rt->state != VSHM_RT_NO_DRIVER)
		end_session(rt);
}

int vshm_dev_rt_state(const struct vshm_dev_rt *rt)
{
	return rt->state;
}

int64_t vshm_dev_rt_driver_peer(const struct vshm_dev_rt *rt)
{
	return rt->drv_owner ? (int64_t)rt->drv_owner - 1 : -1;
}

void vshm_dev_rt_stats(const struct vshm_dev_rt *rt, struct vshm_dev_rt_stats *s)
{
	*s = rt->st;
}

int vshm_dev_rt_model_fds(const struct vshm_dev_rt *rt, int *fds, int max)
{
	int n = 0;

	for (unsigned i = 0; i < rt->ndev && n < max; i++) {
		struct vshm_devmodel *m = rt->devs[i].m;
		int fd = m->ops->event_fd ? m->ops->event_fd(m) : -1;

		if (fd >= 0)
			fds[n++] = fd;
	}
	return n;
}
