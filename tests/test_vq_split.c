// SPDX-License-Identifier: MIT
/*
 * Split ring, functional: driver and device as two threads over one window
 * (the device on its own mapping of the memfd, as a separate process would
 * have), a million chains of random shapes and sizes, every byte verified
 * both ways, completions out of order, with and without event index and
 * indirect tables.  Plus single-threaded checks of the API contract.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <vshm/vq.h>
#include "barrier.h"
#include "tap.h"

#define WIN_SIZE	(16u << 20)
#define QNUM		256u
#define MAX_SG		8u
#define SLOT_BYTES	(MAX_SG * 4096u)
#define HOLD		8u	/* device keeps up to this many to reorder */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static inline uint8_t out_pat(uint64_t seq, uint64_t j) { return (uint8_t)(seq * 131 + j * 7 + 1); }
static inline uint8_t in_pat(uint64_t seq, uint64_t j) { return (uint8_t)(seq * 29 + j * 13 + 5); }

/* Mostly small buffers, sometimes a page: keeps a million chains quick. */
static uint32_t rnd_len(uint64_t *s)
{
	uint64_t r = rnd(s);

	switch (r & 7) {
	case 0: return 0;			/* zero-length descriptors are legal */
	case 1: return 4096;
	case 2: return (uint32_t)((r >> 8) % 4096) + 1;
	default: return (uint32_t)((r >> 8) % 128) + 1;
	}
}

struct run {
	struct vshm_window dw, vw;	/* driver and device mappings */
	struct vshm_vq_layout l;
	uint64_t features;
	unsigned long chains;
	uint64_t data_base;
	uint64_t deadline;
	/* results */
	unsigned long drv_done, dev_done;
	unsigned long bad_out, bad_in, bad_len;
	int drv_err, dev_err;
	const char *why;
	struct vshm_drv_vq *dvq;
	struct vshm_dev_vq *vvq;
	int stop;
};

struct chain_rec {		/* driver-private: what was posted */
	uint64_t seq;
	unsigned nout, nin;
	struct vshm_sg sg[MAX_SG];
	unsigned slot;
};

static void *device_thread(void *arg)
{
	struct run *r = arg;
	struct vshm_dev_vq *vq = r->vvq;
	static struct vshm_iov iov[HOLD][QNUM];
	struct vshm_chain held[HOLD];
	uint64_t held_seq[HOLD];
	unsigned nheld = 0;
	uint64_t seq = 0, rs = 0x9e3779b97f4a7c15ull;
	unsigned idle = 0;
	int rc;

	while (r->dev_done < r->chains) {
		unsigned slot = nheld;

		rc = nheld < HOLD ? vshm_dev_vq_pop(vq, &held[slot], iov[slot], QNUM) : 0;
		if (rc < 0) {
			r->dev_err = rc;
			r->why = vshm_dev_vq_error(vq);
			break;
		}
		if (rc == 1) {
			struct vshm_chain *c = &held[slot];
			uint64_t j = 0;

			/* Verify every readable byte. */
			for (unsigned k = 0; k < c->nout; k++) {
				const uint8_t *p = c->iov[k].base;

				for (uint32_t b = 0; b < c->iov[k].len; b++, j++)
					if (p[b] != out_pat(seq, j))
						r->bad_out++;
			}
			held_seq[slot] = seq++;
			nheld++;
			idle = 0;
		}
		/* Complete a random held chain when full, or when idle. */
		if (nheld && (nheld == HOLD || rc == 0 || (rnd(&rs) & 3) == 0)) {
			unsigned pick = (unsigned)(rnd(&rs) % nheld);
			struct vshm_chain *c = &held[pick];
			uint64_t written = c->in_bytes ? rnd(&rs) % (c->in_bytes + 1) : 0, j = 0;

			if ((rnd(&rs) & 3) == 0)
				written = c->in_bytes;
			for (unsigned k = c->nout; k < c->nout + c->nin && j < written; k++) {
				uint8_t *p = c->iov[k].base;

				for (uint32_t b = 0; b < c->iov[k].len && j < written; b++, j++)
					p[b] = in_pat(held_seq[pick], j);
			}
			vshm_dev_vq_push(vq, c->head, (uint32_t)written);
			if (vshm_dev_vq_publish(vq) < 0) {
				r->dev_err = -EIO;
				break;
			}
			r->dev_done++;
			/* keep held[] dense: move the last into the hole */
			nheld--;
			if (pick != nheld) {
				held[pick] = held[nheld];
				held_seq[pick] = held_seq[nheld];
				memcpy(iov[pick], iov[nheld], sizeof(iov[0][0]) * (held[pick].nout + held[pick].nin));
				held[pick].iov = iov[pick];
			}
			continue;
		}
		if (rc == 0) {
			if (++idle > 64) {
				sched_yield();
				idle = 0;
				if (now_ns() > r->deadline || __atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
					r->dev_err = -ETIMEDOUT;
					break;
				}
			} else {
				vshm_cpu_relax();
			}
		}
	}
	return NULL;
}

static int check_completion(struct run *r, struct chain_rec *cr, uint32_t len)
{
	uint64_t j = 0, posted = 0;
	const uint8_t *base = r->dw.base;

	for (unsigned k = cr->nout; k < cr->nout + cr->nin; k++)
		posted += cr->sg[k].len;
	if (len > posted) {
		r->bad_len++;
		return 0;
	}
	for (unsigned k = cr->nout; k < cr->nout + cr->nin && j < len; k++) {
		const uint8_t *p = base + cr->sg[k].off;

		for (uint32_t b = 0; b < cr->sg[k].len && j < len; b++, j++)
			if (p[b] != in_pat(cr->seq, j))
				r->bad_in++;
	}
	return 1;
}

static void *driver_thread(void *arg)
{
	struct run *r = arg;
	struct vshm_drv_vq *vq = r->dvq;
	static struct chain_rec recs[QNUM];
	unsigned free_slots[QNUM], nfree = QNUM;
	uint64_t seq = 0, rs = 0x2545f4914f6cdd1dull;
	unsigned long added = 0;
	unsigned idle = 0;
	int rc;

	for (unsigned i = 0; i < QNUM; i++)
		free_slots[i] = QNUM - 1 - i;
	while (r->drv_done < r->chains) {
		int progressed = 0;
		unsigned batch = (unsigned)(rnd(&rs) % 8) + 1;

		/* Add a batch of random chains, publish once. */
		for (unsigned b = 0; b < batch && added < r->chains && nfree; b++) {
			struct chain_rec *cr;
			unsigned slot = free_slots[nfree - 1], n;
			uint64_t j = 0;

			cr = &recs[slot];
			cr->slot = slot;
			cr->seq = seq;
			cr->nout = (unsigned)(rnd(&rs) % 5);
			cr->nin = (unsigned)(rnd(&rs) % 4);
			if (cr->nout + cr->nin == 0)
				cr->nout = 1;
			n = cr->nout + cr->nin;
			for (unsigned k = 0; k < n; k++) {
				uint32_t len = rnd_len(&rs);
				uint32_t skew = len < 4096 ? (uint32_t)(rnd(&rs) % (4096 - len + 1)) : 0;

				cr->sg[k].off = r->data_base + (uint64_t)slot * SLOT_BYTES + k * 4096u + skew;
				cr->sg[k].len = len;
				cr->sg[k].flags = 0;
				if (k < cr->nout) {
					uint8_t *p = r->dw.base + cr->sg[k].off;

					for (uint32_t x = 0; x < len; x++, j++)
						p[x] = out_pat(seq, j);
				}
			}
			{
				unsigned fl = 0;
				uint64_t pick = rnd(&rs) % 3;

				if (pick == 0)
					fl = VSHM_ADD_NO_INDIRECT;
				else if (pick == 1)
					fl = VSHM_ADD_INDIRECT;
				rc = vshm_drv_vq_add_ex(vq, cr->sg, cr->nout, cr->nin, cr, fl);
			}
			if (rc == -ENOSPC)
				break;
			if (rc) {
				r->drv_err = rc;
				r->why = vshm_drv_vq_error(vq);
				goto out;
			}
			nfree--;
			seq++;
			added++;
			progressed = 1;
		}
		if (vshm_drv_vq_publish(vq) < 0) {
			r->drv_err = -EIO;
			goto out;
		}
		/* Harvest what is there. */
		for (;;) {
			void *cookies[16];
			uint32_t lens[16];
			int got = vshm_drv_vq_harvest_batch(vq, cookies, lens, 16);

			if (got < 0) {
				r->drv_err = got;
				r->why = vshm_drv_vq_error(vq);
				goto out;
			}
			for (int g = 0; g < got; g++) {
				struct chain_rec *cr = cookies[g];

				check_completion(r, cr, lens[g]);
				free_slots[nfree++] = cr->slot;
				r->drv_done++;
			}
			if (got)
				progressed = 1;
			if (got < 16)
				break;
		}
		if (!progressed) {
			if (++idle > 64) {
				sched_yield();
				idle = 0;
				if (now_ns() > r->deadline) {
					r->drv_err = -ETIMEDOUT;
					break;
				}
			} else {
				vshm_cpu_relax();
			}
		}
	}
out:
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED);
	if (!r->drv_err && vshm_drv_vq_inflight(vq) != 0)
		r->drv_err = -EBADE;
	return NULL;
}

static void run_threads(const char *name, uint64_t features, unsigned long chains)
{
	struct vshm_window_opts o = { .size = WIN_SIZE, .vectors = 2, .name = "vq-test" };
	static struct run r;
	pthread_t td, tv;
	int64_t used;
	uint64_t t0;

	memset(&r, 0, sizeof(r));
	if (vshm_window_create(&r.dw, &o) || vshm_window_map(&r.vw, r.dw.fd)) {
		ok(0, "%s: window", name);
		return;
	}
	/* The device never needs the header or mailbox: take them away. */
	vshm_window_protect_ctrl(&r.vw, 0);
	used = vshm_vq_layout_split(&r.l, r.dw.drv_lo, QNUM, MAX_SG);
	r.features = features;
	r.chains = chains;
	r.data_base = (r.dw.drv_lo + (uint64_t)used + 4095) & ~4095ull;
	if (vshm_drv_vq_create(&r.dvq, &r.dw, &r.l, features, NULL) ||
	    vshm_dev_vq_create(&r.vvq, &r.vw, &r.l, features, NULL)) {
		ok(0, "%s: queues", name);
		return;
	}
	t0 = now_ns();
	r.deadline = t0 + 300ull * 1000000000ull;
	pthread_create(&tv, NULL, device_thread, &r);
	pthread_create(&td, NULL, driver_thread, &r);
	pthread_join(td, NULL);
	pthread_join(tv, NULL);
	ok(r.drv_err == 0 && r.dev_err == 0, "%s: both sides ran clean (drv %d, dev %d%s%s)",
	   name, r.drv_err, r.dev_err, r.why ? ": " : "", r.why ? r.why : "");
	is(r.drv_done, chains, "%s: driver harvested every chain", name);
	is(r.dev_done, chains, "%s: device completed every chain", name);
	is(r.bad_out, 0, "%s: every device-readable byte arrived intact", name);
	is(r.bad_in, 0, "%s: every device-written byte arrived intact", name);
	is(r.bad_len, 0, "%s: no used length exceeded what was posted", name);
	diag("%s: %lu chains in %.2f s", name, chains, (double)(now_ns() - t0) / 1e9);
	vshm_drv_vq_destroy(r.dvq);
	vshm_dev_vq_destroy(r.vvq);
	vshm_window_unmap(&r.vw);
	vshm_window_unmap(&r.dw);
}

/* ---- single-threaded contract checks ---------------------------------- */

static void test_api(void)
{
	struct vshm_window_opts o = { .size = 1 << 20, .vectors = 1 };
	struct vshm_window w;
	struct vshm_vq_layout l, bad;
	struct vshm_drv_vq *d;
	struct vshm_dev_vq *v;
	struct vshm_sg sg[4];
	struct vshm_iov iov[8];
	struct vshm_chain c;
	uint64_t feat = (1ull << VSHM_F_EVENT_IDX) | (1ull << VSHM_F_INDIRECT_DESC);
	void *cookie;
	uint32_t len;
	int64_t used;
	int x = 1;

	if (vshm_window_create(&w, &o)) {
		ok(0, "api: window");
		return;
	}
	is(vshm_vq_layout_split(&l, w.drv_lo, 3, 0), -EINVAL, "layout refuses a non-power-of-two size");
	is(vshm_vq_layout_split(&l, w.drv_lo, 65536, 0), -EINVAL, "layout refuses 65536 entries");
	used = vshm_vq_layout_split(&l, w.drv_lo, 4, 4);
	ok(used > 0 && l.desc % 16 == 0 && l.used % 64 == 0 && l.indirect % 16 == 0,
	   "layout of a 4-entry ring is aligned (%lld bytes)", (long long)used);

	bad = l;
	bad.desc = 0;
	is(vshm_dev_vq_create(&v, &w, &bad, feat, NULL), -EINVAL, "device refuses a ring in the header");
	bad = l;
	bad.desc += 8;
	is(vshm_dev_vq_create(&v, &w, &bad, feat, NULL), -EINVAL, "device refuses a misaligned descriptor table");
	bad = l;
	bad.used = w.size - 8;
	is(vshm_dev_vq_create(&v, &w, &bad, feat, NULL), -EINVAL, "device refuses a used ring past the end");
	bad = l;
	bad.num = 6;
	is(vshm_dev_vq_create(&v, &w, &bad, feat, NULL), -EINVAL, "device refuses num 6");

	is(vshm_drv_vq_create(&d, &w, &l, feat, NULL), 0, "driver queue created");
	is(vshm_dev_vq_create(&v, &w, &l, feat, NULL), 0, "device queue created");

	for (int i = 0; i < 4; i++) {
		sg[i].off = w.drv_lo + 65536 + (uint64_t)i * 4096;
		sg[i].len = 100;
		sg[i].flags = 0;
	}
	is(vshm_drv_vq_add(d, sg, 1, 0, NULL), -EINVAL, "add refuses a NULL cookie");
	is(vshm_drv_vq_add(d, sg, 0, 0, &x), -EINVAL, "add refuses an empty chain");
	sg[3].off = 0;
	is(vshm_drv_vq_add(d, sg, 2, 2, &x), -EINVAL, "add refuses a buffer in the header");
	sg[3].off = w.size - 50;
	is(vshm_drv_vq_add(d, sg, 2, 2, &x), -EINVAL, "add refuses a buffer past the end");
	sg[3].off = w.drv_lo + 65536 + 3 * 4096;

	is(vshm_dev_vq_pop(v, &c, iov, 8), 0, "device sees nothing before publish");
	is(vshm_drv_vq_add_ex(d, sg, 2, 2, &x, VSHM_ADD_NO_INDIRECT), 0, "add a 4-descriptor chain directly");
	is(vshm_drv_vq_num_free(d), 0, "all four descriptors in use");
	is(vshm_drv_vq_add_ex(d, sg, 1, 0, &x, 0), -ENOSPC, "ring full -> -ENOSPC");
	is(vshm_dev_vq_pop(v, &c, iov, 8), 0, "still nothing before publish");
	is(vshm_drv_vq_publish(d), 1, "first publish asks for a kick (event index 0)");
	is(vshm_dev_vq_pop(v, &c, iov, 8), 1, "device pops the chain");
	ok(c.nout == 2 && c.nin == 2 && c.out_bytes == 200 && c.in_bytes == 200 && !c.indirect,
	   "chain shape 2 out + 2 in, 200/200 bytes");
	ok(iov[0].base == w.base + sg[0].off && iov[3].base == w.base + sg[3].off, "iov points at the buffers");
	is(vshm_dev_vq_pop(v, &c, iov, 8), 0, "ring empty again");
	is(vshm_drv_vq_harvest(d, &cookie, &len), 0, "nothing to harvest yet");
	vshm_dev_vq_push(v, c.head, 150);
	is(vshm_dev_vq_publish(v), 1, "device publish notifies (callbacks on)");
	is(vshm_drv_vq_harvest(d, &cookie, &len), 1, "driver harvests");
	ok(cookie == &x && len == 150, "cookie and length come back");
	is(vshm_drv_vq_num_free(d), 4, "descriptors returned to the free list");

	/* Indirect: one descriptor carries a 4-buffer chain. */
	is(vshm_drv_vq_add_ex(d, sg, 3, 1, &x, VSHM_ADD_INDIRECT), 0, "add through an indirect table");
	is(vshm_drv_vq_num_free(d), 3, "an indirect chain takes one descriptor");
	vshm_drv_vq_publish(d);
	is(vshm_dev_vq_pop(v, &c, iov, 8), 1, "device pops the indirect chain");
	ok(c.indirect && c.nout == 3 && c.nin == 1, "indirect chain shape 3 + 1");
	is(vshm_dev_vq_pop(v, &c, iov, 2), 0, "nothing else pending");

	/* Event index: the device only wants a kick when it asked. */
	vshm_dev_vq_push(v, c.head, 0);
	vshm_dev_vq_publish(v);
	is(vshm_drv_vq_harvest(d, &cookie, &len), 1, "harvest indirect completion");
	is(vshm_drv_vq_add(d, sg, 1, 0, &x), 0, "add one more");
	is(vshm_drv_vq_publish(d), 0, "no kick: the device has not re-armed its event index");
	is(vshm_dev_vq_enable_notify(v), 1, "enable_notify sees the pending chain (no sleep)");
	is(vshm_dev_vq_pop(v, &c, iov, 8), 1, "pop it");
	is(vshm_dev_vq_enable_notify(v), 0, "armed with nothing pending");
	is(vshm_drv_vq_add(d, sg, 1, 0, &x), 0, "add another");
	is(vshm_drv_vq_publish(d), 1, "now the kick is requested");
	vshm_drv_vq_disable_cb(d);
	vshm_dev_vq_push(v, c.head, 0);
	is(vshm_dev_vq_publish(v), 0, "callbacks disabled: device does not notify");
	is(vshm_drv_vq_enable_cb(d), 1, "enable_cb reports the pending completion");
	is(vshm_drv_vq_harvest(d, &cookie, &len), 1, "harvest it");
	is(vshm_drv_vq_inflight(d), 1, "one chain still in flight");
	ok(vshm_drv_vq_detach_unused(d) == &x, "detach returns the unfinished chain");
	ok(vshm_drv_vq_detach_unused(d) == NULL, "nothing more to detach");
	is(vshm_drv_vq_num_free(d), 4, "detach returned the descriptors");
	is(vshm_drv_vq_reset(d), 0, "reset an idle queue");

	/* Batch pop/push. */
	vshm_dev_vq_destroy(v);
	vshm_dev_vq_create(&v, &w, &l, feat, NULL);
	for (int i = 0; i < 4; i++)
		vshm_drv_vq_add_ex(d, &sg[i], 1, 0, &x, 0);
	vshm_drv_vq_publish(d);
	{
		struct vshm_chain cs[4];
		struct vshm_iov biov[4 * 2];
		void *cks[4];
		uint32_t lens[4];

		is(vshm_dev_vq_pop_batch(v, cs, 4, biov, 2), 4, "pop_batch takes all four");
		for (int i = 0; i < 4; i++)
			vshm_dev_vq_push(v, cs[i].head, 0);
		vshm_dev_vq_publish(v);
		is(vshm_drv_vq_harvest_batch(d, cks, lens, 4), 4, "harvest_batch gets all four");
	}
	vshm_drv_vq_destroy(d);
	vshm_dev_vq_destroy(v);
	vshm_window_unmap(&w);
}

int main(void)
{
	uint64_t ev = 1ull << VSHM_F_EVENT_IDX, ind = 1ull << VSHM_F_INDIRECT_DESC;
	unsigned long n = tap_scale(250000);

	test_api();
	/* Four configurations, a million chains in all. */
	run_threads("event_idx+indirect", ev | ind, n);
	run_threads("event_idx", ev, n);
	run_threads("flags+indirect", ind, n);
	run_threads("flags", 0, n);
	return tap_done();
}
