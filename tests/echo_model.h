/* SPDX-License-Identifier: MIT */
/*
 * A device model for runtime tests: one queue whose requests copy their
 * readable bytes into their writable ones, 300 bytes of config (the first
 * word read-only), and counters the test reads.
 */
#ifndef VSHM_TEST_ECHO_MODEL_H
#define VSHM_TEST_ECHO_MODEL_H

#include <errno.h>
#include <string.h>
#include <vshm/devmodel.h>

#define ECHO_ID 0x7e57

/*
 * ---- an echo device model: copies the readable bytes into the writable ----
 *
 * The device thread works on its own mapping of the window, and TSan tracks
 * synchronisation by address: the mailbox's release/acquire pairs order
 * this test's accesses, but TSan cannot see that across two mappings.  So
 * the model state shared with the main thread is accessed atomically.
 */

struct echo {
	uint8_t config[300];	/* more than one message's worth */
	int resets, starts;
	int flap;		/* 1: every config read changes the generation */
	long served;		/* requests completed */
};

static uint32_t e_nq(struct vshm_devmodel *m) { (void)m; return 1; }
static uint32_t e_qmax(struct vshm_devmodel *m, unsigned q) { (void)m; (void)q; return 128; }
static uint32_t e_segmax(struct vshm_devmodel *m) { (void)m; return 16; }
static uint64_t e_features(struct vshm_devmodel *m) { (void)m; return 1u << 3; }
static uint32_t e_csize(struct vshm_devmodel *m) { (void)m; return 300; }

static void e_cread(struct vshm_devmodel *m, uint32_t off, void *buf, uint32_t len)
{
	if (__atomic_load_n(&((struct echo *)m->priv)->flap, __ATOMIC_RELAXED))
		m->host->config_changed(m->host->ctx);
	for (uint32_t i = 0; i < len; i++)
		((uint8_t *)buf)[i] = __atomic_load_n(&((struct echo *)m->priv)->config[off + i],
						      __ATOMIC_RELAXED);
}

static int e_cwrite(struct vshm_devmodel *m, uint32_t off, const void *buf, uint32_t len)
{
	if (off < 4)
		return -EPERM;	/* first word read-only */
	for (uint32_t i = 0; i < len; i++)
		__atomic_store_n(&((struct echo *)m->priv)->config[off + i], ((const uint8_t *)buf)[i],
				 __ATOMIC_RELAXED);
	return 0;
}

static int e_start(struct vshm_devmodel *m)
{
	__atomic_fetch_add(&((struct echo *)m->priv)->starts, 1, __ATOMIC_RELAXED);
	return 0;
}

static void e_reset(struct vshm_devmodel *m)
{
	__atomic_fetch_add(&((struct echo *)m->priv)->resets, 1, __ATOMIC_RELAXED);
}

static int e_request(struct vshm_devmodel *m, struct vshm_req *r)
{
	struct vshm_chain *c = &r->chain;
	uint32_t in = 0, out_i = c->nout, out_off = 0, written = 0;

	/* copy readable bytes into writable ones, in order */
	for (unsigned k = 0; k < c->nout; k++) {
		const uint8_t *p = c->iov[k].base;

		for (uint32_t b = 0; b < c->iov[k].len; b++) {
			while (out_i < (unsigned)c->nout + c->nin && out_off == c->iov[out_i].len) {
				out_i++;
				out_off = 0;
			}
			if (out_i >= (unsigned)c->nout + c->nin)
				break;
			((uint8_t *)c->iov[out_i].base)[out_off++] = p[b];
			written++;
		}
		in += c->iov[k].len;
	}
	(void)in;
	__atomic_fetch_add(&((struct echo *)m->priv)->served, 1, __ATOMIC_RELAXED);
	m->host->complete(m->host->ctx, r, written);
	return 0;
}

static const struct vshm_devmodel_ops echo_ops __attribute__((unused)) = {
	.name = "echo", .device_id = ECHO_ID,
	.num_queues = e_nq, .queue_max = e_qmax, .seg_max = e_segmax,
	.features = e_features, .config_size = e_csize,
	.config_read = e_cread, .config_write = e_cwrite,
	.start = e_start, .reset = e_reset, .request = e_request,
};

#include <poll.h>
#include <vshm/devrt.h>
#include <vshm/doorbell.h>

/* ---- the device side thread ---- */

struct devside {
	struct vshm_window w;
	int pause;		/* 1: stop stepping (a device that never answers) */
	int paused;		/* the loop's acknowledgement of pause */
	struct vshm_db_eventfd db;
	struct vshm_dev_rt *rt;
	struct echo echo;
	struct vshm_devmodel m;
	struct echo echo2;	/* a second device, when a test adds it */
	struct vshm_devmodel m2;
	int stop;
};

static __attribute__((unused)) void *device_loop(void *arg)
{
	struct devside *ds = arg;

	while (!__atomic_load_n(&ds->stop, __ATOMIC_ACQUIRE)) {
		int work;

		if (__atomic_load_n(&ds->pause, __ATOMIC_ACQUIRE)) {
			__atomic_store_n(&ds->paused, 1, __ATOMIC_RELEASE);
			poll(NULL, 0, 1);
			continue;
		}
		__atomic_store_n(&ds->paused, 0, __ATOMIC_RELEASE);
		work = vshm_dev_rt_step(ds->rt);

		if (work < 0)
			break;
		if (work > 0)
			continue;
		if (vshm_dev_rt_arm(ds->rt) == 0) {
			struct pollfd pfd[4];
			unsigned n = 0;

			for (unsigned v = 0; v < ds->db.nvec && n < 4; v++)
				pfd[n++] = (struct pollfd){ .fd = ds->db.rx[v], .events = POLLIN };
			poll(pfd, n, 5);
			for (unsigned v = 0; v < ds->db.nvec; v++)
				vshm_doorbell_drain(&ds->db.db, v);
		}
		vshm_dev_rt_disarm(ds->rt);
	}
	return NULL;
}

#endif
