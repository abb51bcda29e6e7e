/* SPDX-License-Identifier: MIT */
/*
 * The ring tests' common harness (tests/test_vq_split.c, test_vq_packed.c,
 * test_vq_fifo.c): a clock, a PRNG, the byte patterns, and the two-thread
 * run.
 *
 * The run: driver and device as two threads over one window, the device on
 * its own mapping of the memfd with the header and mailbox PROT_NONE (as a
 * separate process would have).  The driver adds batches of chains of
 * random shapes and sizes, every readable byte a pattern of the chain's
 * sequence number and every writable byte a sentinel; the device checks
 * what it reads, holds up to VQH_HOLD chains and completes them in random
 * order, writing a pattern into a random prefix of the writable buffers;
 * the driver checks each reply byte and that nothing past the reported
 * length was written.  Doorbells are eventfds behind the notify hooks, so
 * kick and complete ring them; a sleeping run arms notifications when idle
 * and sleeps on its bell (a bell that stays silent for 2 s while the peer
 * owes one is a lost wake-up).  What depends on the layout is in struct
 * vqh_cfg.
 *
 * Header-only: a test is one source file linked with the library.
 */
#ifndef VSHM_TEST_VQ_HARNESS_H
#define VSHM_TEST_VQ_HARNESS_H

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <vshm/vq.h>
#include "barrier.h"
#include "tap.h"

static inline uint64_t now_ns(void)
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

/* Byte @j of chain @seq: what the driver writes, what the device replies. */
static inline uint8_t out_pat(uint64_t seq, uint64_t j) { return (uint8_t)(seq * 131 + j * 7 + 1); }
static inline uint8_t in_pat(uint64_t seq, uint64_t j) { return (uint8_t)(seq * 29 + j * 13 + 5); }

/* Mostly small buffers, sometimes a page: keeps a million chains quick. */
static inline uint32_t rnd_len(uint64_t *s)
{
	uint64_t r = rnd(s);

	switch (r & 7) {
	case 0: return 0;			/* zero-length buffers are legal */
	case 1: return 4096;
	case 2: return (uint32_t)((r >> 8) % 4096) + 1;
	default: return (uint32_t)((r >> 8) % 128) + 1;
	}
}

/* ---- single-threaded contract checks -------------------------------------- */

/* Four buffers of 100 bytes, a page apart, 64 KiB into @w's driver area. */
static inline void vqh_four_buffers(struct vshm_sg *sg, const struct vshm_window *w)
{
	for (int i = 0; i < 4; i++) {
		sg[i].off = w->drv_lo + 65536 + (uint64_t)i * 4096;
		sg[i].len = 100;
		sg[i].flags = 0;
	}
}

/*
 * What add refuses whatever the ring: a NULL cookie, an empty chain, a
 * buffer in the header, one past the window end.  @sg: four good buffers
 * (left as they were), @w the driver's window.
 */
static inline void vqh_add_refusals(struct vshm_drv_vq *d, const struct vshm_window *w,
				    struct vshm_sg *sg, void *cookie)
{
	uint64_t off = sg[3].off;

	is(vshm_drv_vq_add(d, sg, 1, 0, NULL), -EINVAL, "add refuses a NULL cookie");
	is(vshm_drv_vq_add(d, sg, 0, 0, cookie), -EINVAL, "add refuses an empty chain");
	sg[3].off = 0;
	is(vshm_drv_vq_add(d, sg, 2, 2, cookie), -EINVAL, "add refuses a buffer in the header");
	sg[3].off = w->size - 50;
	is(vshm_drv_vq_add(d, sg, 2, 2, cookie), -EINVAL, "add refuses a buffer past the end");
	sg[3].off = off;
}

/*
 * Event index, kick side, with nothing in flight and the device not
 * re-armed since its last pop: a chain added and published asks for no
 * kick; enable_notify sees it pending; once it is popped (into @c, @iov),
 * enable_notify arms; the next chain asks for a kick.
 */
static inline void vqh_kick_contract(struct vshm_drv_vq *d, struct vshm_dev_vq *v,
				     const struct vshm_sg *sg, struct vshm_chain *c,
				     struct vshm_iov *iov, void *first, void *second)
{
	is(vshm_drv_vq_add(d, sg, 1, 0, first), 0, "add one more");
	is(vshm_drv_vq_publish(d), 0, "no kick: the device has not re-armed its event index");
	is(vshm_dev_vq_enable_notify(v), 1, "enable_notify sees the pending chain (no sleep)");
	is(vshm_dev_vq_pop(v, c, iov, 8), 1, "pop it");
	is(vshm_dev_vq_enable_notify(v), 0, "armed with nothing pending");
	is(vshm_drv_vq_add(d, sg, 1, 0, second), 0, "add another");
	is(vshm_drv_vq_publish(d), 1, "now the kick is requested");
}

/* ---- the two-thread run -------------------------------------------------- */

#define VQH_WIN_SIZE	(16u << 20)
#define VQH_QNUM	256u
#define VQH_MAX_SG	8u			/* buffers per chain, at most */
#define VQH_SLOT_BYTES	(VQH_MAX_SG * 4096u)	/* data per chain in flight */
#define VQH_HOLD	8u	/* the device keeps up to this many to reorder */
#define VQH_SENTINEL	0xee	/* writable bytes before the device writes */

typedef int64_t (*vqh_layout_fn)(struct vshm_vq_layout *l, uint64_t base,
				 uint32_t num, uint32_t arg);

/* One run, and what its ring layout allows. */
struct vqh_cfg {
	const char *name;
	vqh_layout_fn layout;	/* vshm_vq_layout_split/packed/fifo */
	uint32_t layout_arg;	/* indirect_max, or the FIFO's ring bytes */
	uint64_t features;	/* all of them, the layout's own bit included */
	int sleepy;		/* sleep on the doorbells when idle */
	unsigned long chains;
	unsigned max_out, max_in;	/* buffers per direction, at most */
	uint32_t max_bytes;	/* bytes per direction per chain; 0: no limit */
	int pick_indirect;	/* ask for and refuse indirect tables at random */
	int in_order;		/* completions come back in the order of the adds */
};

struct vqh_run {
	const struct vqh_cfg *cfg;
	struct vshm_window dw, vw;	/* driver and device mappings */
	struct vshm_vq_layout l;
	int drv_bell, dev_bell;		/* eventfds: wake the driver / device */
	uint64_t data_base;
	uint64_t deadline;
	/* results: each written by one thread, read after join */
	unsigned long drv_done, dev_done;
	unsigned long bad_out, bad_in, bad_len, bad_order;
	unsigned long drv_sleeps, dev_sleeps, drv_lost, dev_lost;
	int drv_err, dev_err;
	const char *drv_why, *dev_why;
	struct vshm_drv_vq *dvq;
	struct vshm_dev_vq *vvq;
	int stop;			/* atomic */
};

struct vqh_rec {		/* driver-private: what was posted */
	uint64_t seq;
	unsigned nout, nin;
	struct vshm_sg sg[VQH_MAX_SG];
	unsigned slot;
};

/* A doorbell: an eventfd. */
static inline int vqh_ring_bell(void *ctx)
{
	uint64_t one = 1;

	return write(*(int *)ctx, &one, sizeof(one)) == sizeof(one) ? 0 : -1;
}

/* Wait for a bell; 0 when it rang, -1 when 2 s passed without one. */
static inline int vqh_wait_bell(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t v;

	if (poll(&p, 1, 2000) <= 0)
		return -1;
	if (read(fd, &v, sizeof(v)) < 0)
		return -1;
	return 0;
}

static inline void *vqh_device_thread(void *arg)
{
	struct vqh_run *r = arg;
	struct vshm_dev_vq *vq = r->vvq;
	static struct vshm_iov iov[VQH_HOLD][VQH_MAX_SG];
	struct vshm_chain held[VQH_HOLD];
	uint64_t held_seq[VQH_HOLD];
	unsigned nheld = 0;
	uint64_t seq = 0, rs = 0x9e3779b97f4a7c15ull;
	unsigned idle = 0;
	int rc;

	while (r->dev_done < r->cfg->chains) {
		unsigned slot = nheld;

		rc = nheld < VQH_HOLD ? vshm_dev_vq_pop(vq, &held[slot], iov[slot], VQH_MAX_SG) : 0;
		if (rc < 0) {
			r->dev_err = rc;
			r->dev_why = vshm_dev_vq_error(vq);
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
		/* Complete a random held chain when full, idle, or by chance. */
		if (nheld && (nheld == VQH_HOLD || rc == 0 || (rnd(&rs) & 3) == 0)) {
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
			if (vshm_dev_vq_push(vq, c->head, (uint32_t)written) ||
			    vshm_dev_vq_complete(vq) < 0) {
				r->dev_err = -EIO;
				r->dev_why = vshm_dev_vq_error(vq);
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
		if (rc != 0)
			continue;
		if (r->cfg->sleepy) {
			/*
			 * Nothing available, nothing held: arm, re-check, sleep.
			 * (A FIFO request waiting for V2D room counts as
			 * available: the driver's harvest frees the room
			 * without a kick, so that is polled.)
			 */
			rc = vshm_dev_vq_enable_notify(vq);
			if (rc < 0) {
				r->dev_err = rc;
				r->dev_why = vshm_dev_vq_error(vq);
				break;
			}
			if (rc == 0) {
				r->dev_sleeps++;
				if (vqh_wait_bell(r->dev_bell) < 0) {
					/* the driver cannot be idle now: a lost kick */
					if (r->dev_done < r->cfg->chains &&
					    !__atomic_load_n(&r->stop, __ATOMIC_RELAXED))
						r->dev_lost++;
				}
			}
			vshm_dev_vq_disable_notify(vq);
		}
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
	return NULL;
}

/* The reply to @cr: @len bytes of in_pat, then the untouched sentinel. */
static inline void vqh_check_completion(struct vqh_run *r, struct vqh_rec *cr, uint32_t len)
{
	uint64_t j = 0, posted = 0;
	const uint8_t *base = r->dw.base;

	for (unsigned k = cr->nout; k < cr->nout + cr->nin; k++)
		posted += cr->sg[k].len;
	if (len > posted) {
		r->bad_len++;
		return;
	}
	for (unsigned k = cr->nout; k < cr->nout + cr->nin; k++) {
		const uint8_t *p = base + cr->sg[k].off;

		for (uint32_t b = 0; b < cr->sg[k].len; b++, j++)
			if (p[b] != (j < len ? in_pat(cr->seq, j) : VQH_SENTINEL))
				r->bad_in++;
	}
}

static inline void *vqh_driver_thread(void *arg)
{
	struct vqh_run *r = arg;
	const struct vqh_cfg *cfg = r->cfg;
	struct vshm_drv_vq *vq = r->dvq;
	static struct vqh_rec recs[VQH_QNUM];
	unsigned free_slots[VQH_QNUM], nfree = VQH_QNUM;
	uint64_t seq = 0, next = 0, rs = 0x2545f4914f6cdd1dull;
	unsigned long added = 0;
	unsigned idle = 0;
	int rc = 0;

	for (unsigned i = 0; i < VQH_QNUM; i++)
		free_slots[i] = VQH_QNUM - 1 - i;
	if (cfg->sleepy)
		vshm_drv_vq_disable_cb(vq);
	while (r->drv_done < cfg->chains) {
		int progressed = 0;
		unsigned batch = (unsigned)(rnd(&rs) % 8) + 1;

		/* Add a batch of random chains, publish once. */
		for (unsigned b = 0; b < batch && added < cfg->chains && nfree; b++) {
			unsigned slot = free_slots[nfree - 1], fl = 0;
			struct vqh_rec *cr = &recs[slot];
			uint32_t tot[2] = { 0, 0 };
			uint64_t j = 0;

			cr->slot = slot;
			cr->seq = seq;
			cr->nout = (unsigned)(rnd(&rs) % (cfg->max_out + 1));
			cr->nin = (unsigned)(rnd(&rs) % (cfg->max_in + 1));
			if (cr->nout + cr->nin == 0)
				cr->nout = 1;
			for (unsigned k = 0; k < cr->nout + cr->nin; k++) {
				unsigned dir = k >= cr->nout;
				uint32_t len = rnd_len(&rs), skew;
				uint8_t *p;

				if (cfg->max_bytes && len > cfg->max_bytes - tot[dir])
					len = cfg->max_bytes - tot[dir];
				tot[dir] += len;
				skew = len < 4096 ? (uint32_t)(rnd(&rs) % (4096 - len + 1)) : 0;
				cr->sg[k].off = r->data_base + (uint64_t)slot * VQH_SLOT_BYTES + k * 4096u + skew;
				cr->sg[k].len = len;
				cr->sg[k].flags = 0;
				p = r->dw.base + cr->sg[k].off;
				if (dir) {
					memset(p, VQH_SENTINEL, len);
					continue;
				}
				for (uint32_t x = 0; x < len; x++, j++)
					p[x] = out_pat(seq, j);
			}
			if (cfg->pick_indirect) {
				uint64_t pick = rnd(&rs) % 3;

				if (pick == 0)
					fl = VSHM_ADD_NO_INDIRECT;
				else if (pick == 1)
					fl = VSHM_ADD_INDIRECT;
			}
			rc = vshm_drv_vq_add_ex(vq, cr->sg, cr->nout, cr->nin, cr, fl);
			if (rc == -ENOSPC)
				break;
			if (rc) {
				r->drv_err = rc;
				r->drv_why = vshm_drv_vq_error(vq);
				goto out;
			}
			nfree--;
			seq++;
			added++;
			progressed = 1;
		}
		if (vshm_drv_vq_kick(vq) < 0) {
			r->drv_err = -EIO;
			r->drv_why = vshm_drv_vq_error(vq);
			goto out;
		}
		/* Harvest what is there. */
		for (;;) {
			void *cookies[16];
			uint32_t lens[16];
			int got = vshm_drv_vq_harvest_batch(vq, cookies, lens, 16);

			if (got < 0) {
				r->drv_err = got;
				r->drv_why = vshm_drv_vq_error(vq);
				goto out;
			}
			for (int g = 0; g < got; g++) {
				struct vqh_rec *cr = cookies[g];

				if (cfg->in_order && cr->seq != next++)
					r->bad_order++;
				vqh_check_completion(r, cr, lens[g]);
				free_slots[nfree++] = cr->slot;
				r->drv_done++;
			}
			if (got)
				progressed = 1;
			if (got < 16)
				break;
		}
		if (progressed) {
			idle = 0;
			continue;
		}
		if (cfg->sleepy && vshm_drv_vq_inflight(vq)) {
			/* Cannot add, nothing harvested: arm, re-check, sleep. */
			rc = vshm_drv_vq_enable_cb(vq);
			if (rc < 0) {
				r->drv_err = rc;
				r->drv_why = vshm_drv_vq_error(vq);
				goto out;
			}
			if (rc == 0) {
				r->drv_sleeps++;
				if (vqh_wait_bell(r->drv_bell) < 0)
					r->drv_lost++;	/* chains in flight: a lost interrupt */
			}
			vshm_drv_vq_disable_cb(vq);
		}
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
out:
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED);
	if (cfg->sleepy)
		vqh_ring_bell(&r->dev_bell);	/* let a sleeping device see stop */
	if (!r->drv_err && vshm_drv_vq_inflight(vq) != 0)
		r->drv_err = -EBADE;
	return NULL;
}

/* Run @cfg's chains through one queue; 8 to 11 checks, prefixed by its name. */
static inline void vqh_run(const struct vqh_cfg *cfg)
{
	struct vshm_window_opts o = { .size = VQH_WIN_SIZE, .vectors = 2, .name = "vq-test" };
	static struct vqh_run r;
	const char *name = cfg->name;
	unsigned long chains = cfg->chains;
	struct vshm_vq_notify kick, irq;
	struct vshm_vq_stats ds, vs;
	pthread_t td, tv;
	int64_t used;
	uint64_t t0;

	memset(&r, 0, sizeof(r));
	r.cfg = cfg;
	r.drv_bell = r.dev_bell = -1;
	if (vshm_window_create(&r.dw, &o) || vshm_window_map(&r.vw, r.dw.fd)) {
		ok(0, "%s: window", name);
		return;
	}
	/* The device never needs the header or mailbox: take them away. */
	vshm_window_protect_ctrl(&r.vw, PROT_NONE);
	used = cfg->layout(&r.l, r.dw.drv_lo, VQH_QNUM, cfg->layout_arg);
	r.data_base = (r.dw.drv_lo + (uint64_t)used + 4095) & ~4095ull;
	r.drv_bell = eventfd(0, EFD_CLOEXEC);
	r.dev_bell = eventfd(0, EFD_CLOEXEC);
	kick.notify = vqh_ring_bell;
	kick.ctx = &r.dev_bell;
	irq.notify = vqh_ring_bell;
	irq.ctx = &r.drv_bell;
	if (used < 0 || r.drv_bell < 0 || r.dev_bell < 0 ||
	    vshm_drv_vq_create(&r.dvq, &r.dw, &r.l, cfg->features, &kick) ||
	    vshm_dev_vq_create(&r.vvq, &r.vw, &r.l, cfg->features, &irq)) {
		ok(0, "%s: queues", name);
		return;
	}
	t0 = now_ns();
	r.deadline = t0 + 300ull * 1000000000ull;
	pthread_create(&tv, NULL, vqh_device_thread, &r);
	pthread_create(&td, NULL, vqh_driver_thread, &r);
	pthread_join(td, NULL);
	pthread_join(tv, NULL);
	ok(r.drv_err == 0 && r.dev_err == 0, "%s: both sides ran clean (drv %d%s%s, dev %d%s%s)",
	   name, r.drv_err, r.drv_why ? ": " : "", r.drv_why ? r.drv_why : "",
	   r.dev_err, r.dev_why ? ": " : "", r.dev_why ? r.dev_why : "");
	is(r.drv_done, chains, "%s: driver harvested every chain", name);
	is(r.dev_done, chains, "%s: device completed every chain", name);
	is(r.bad_out, 0, "%s: every device-readable byte arrived intact", name);
	is(r.bad_in, 0, "%s: every device-written byte arrived intact, nothing past it written", name);
	is(r.bad_len, 0, "%s: no used length exceeded what was posted", name);
	if (cfg->in_order)
		is(r.bad_order, 0, "%s: completions in request order", name);
	vshm_drv_vq_stats(r.dvq, &ds);
	vshm_dev_vq_stats(r.vvq, &vs);
	ok(ds.chains == chains && vs.chains == chains && ds.completions == chains &&
	   vs.completions == chains, "%s: counters agree (%llu/%llu added/popped)", name,
	   (unsigned long long)ds.chains, (unsigned long long)vs.chains);
	if (cfg->features & (1ull << VSHM_F_INDIRECT_DESC))
		ok(ds.indirect > 0 && ds.indirect == vs.indirect,
		   "%s: indirect tables used (%llu)", name, (unsigned long long)ds.indirect);
	else
		is(ds.indirect + vs.indirect, 0, "%s: no indirect table without INDIRECT_DESC", name);
	if (cfg->sleepy) {
		is(r.drv_lost + r.dev_lost, 0, "%s: no lost wake-up (slept %lu/%lu times)", name,
		   r.drv_sleeps, r.dev_sleeps);
		/* Whether each side sleeps depends on scheduling (a fast side
		 * may never need to); the run must at least take the path. */
		ok(r.drv_sleeps + r.dev_sleeps > 0, "%s: the sleeping path was taken (driver %lu, device %lu)",
		   name, r.drv_sleeps, r.dev_sleeps);
	}
	diag("%s: %lu chains in %.2f s; kicks %llu (%llu suppressed), interrupts %llu (%llu suppressed)",
	     name, chains, (double)(now_ns() - t0) / 1e9,
	     (unsigned long long)ds.notifies, (unsigned long long)ds.suppressed,
	     (unsigned long long)vs.notifies, (unsigned long long)vs.suppressed);
	vshm_drv_vq_destroy(r.dvq);
	vshm_dev_vq_destroy(r.vvq);
	close(r.drv_bell);
	close(r.dev_bell);
	vshm_window_unmap(&r.vw);
	vshm_window_unmap(&r.dw);
}

/* Run @base as @name, with @features added, sleeping or not, @chains chains. */
static inline void vqh_run_as(const struct vqh_cfg *base, const char *name, uint64_t features,
			      int sleepy, unsigned long chains)
{
	struct vqh_cfg c = *base;

	c.name = name;
	c.features |= features;
	c.sleepy = sleepy;
	c.chains = chains;
	vqh_run(&c);
}

#endif
