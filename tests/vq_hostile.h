/* SPDX-License-Identifier: MIT */
/*
 * The common harness of the ring tests against a hostile peer
 * (tests/test_vq_hostile.c, test_vq_packed_hostile.c,
 * test_vq_fifo_hostile.c).
 *
 * Each case builds a fresh window and queue and lets the hostile side write
 * the ring by hand through one mapping; the side under test runs on a
 * second mapping whose header and mailbox pages are PROT_NONE and which
 * sits between guard pages, so any stray access kills the test rather than
 * pass silently.  A case ends in a verdict: refused with the expected
 * reason and broken for good (or accepted and healthy, where that is the
 * point), and on the driver side every chain accounted for exactly once.
 *
 * A layout's file describes its ring (struct hostile_ring) and its cases
 * (struct hostile_drv_case: a hostile driver against our device;
 * struct hostile_dev_case: a hostile device against our driver); the
 * runners here do the rest.
 *
 * Header-only: a test is one source file linked with the library.
 */
#ifndef VSHM_TEST_VQ_HOSTILE_H
#define VSHM_TEST_VQ_HOSTILE_H

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <vshm/vq.h>
#include "tap.h"

#define HOSTILE_COOKIES	16
#define HOSTILE_POSTED	4	/* chains hostile_post adds */

/* One case's window. */
struct hostile_env {
	struct vshm_window w;	/* the hostile side's view */
	struct vshm_window t;	/* the side under test: ctrl pages PROT_NONE */
	struct vshm_vq_layout l;
	uint64_t buf;		/* scratch: page aligned, past the ring */
	uint32_t pos;		/* a hostile producer's position (FIFO frames) */
	unsigned i;		/* the case (0-based) */
};

/* A driver under test, with hostile_post's chains. */
struct hostile_drv_env {
	struct hostile_env e;
	struct vshm_drv_vq *d;
	int cookies[HOSTILE_COOKIES];
	uint16_t ids[HOSTILE_POSTED];	/* the ids chains A..D went out with */
	unsigned extra;			/* chains added during the case */
};

/* What the driver gave back, by cookie (an index into cookies[]). */
struct hostile_tally {
	int *cookies;				/* HOSTILE_COOKIES of them */
	unsigned returned[HOSTILE_COOKIES];
	uint32_t len[HOSTILE_COOKIES];		/* harvested lengths */
	unsigned good, detached;
	unsigned strays;	/* cookies never posted, or returned twice */
};

/* When the device completes (with 0 bytes) what it popped. */
enum {
	PUSH_EACH,	/* at once, and publishes */
	PUSH_ROUND,	/* once the ring ran dry, all at once, then publishes */
	PUSH_NEVER,	/* it holds them: their ids stay in flight */
};

/* A hostile driver against our device. */
struct hostile_drv_case {
	const char *name;
	void (*fn)(struct hostile_env *e);	/* the hostile driver's writes */
	void (*again)(struct hostile_env *e);	/* once the device ran dry, or NULL */
	const char *why;	/* the expected reason, a substring; NULL: accepted */
	uint64_t features;
	unsigned good;		/* chains the device pops before the verdict */
	unsigned max_iov;	/* the device's segment limit (up to 256) */
	int push;		/* PUSH_EACH, PUSH_ROUND or PUSH_NEVER */
	uint32_t num;		/* ring size */
	uint64_t win;		/* window size; 0: 4 MiB */
};

/* A hostile device against our driver. */
struct hostile_dev_case {
	const char *name;
	void (*fn)(struct hostile_drv_env *de);	/* the hostile device's writes */
	void (*again)(struct hostile_drv_env *de);	/* after a first harvest, or NULL */
	const char *why;	/* the expected reason, a substring */
	unsigned good;		/* completions harvested before the refusal */
	int add;		/* then adds until refused: the refusal comes from one */
};

/* What the runners need to know of a layout. */
struct hostile_ring {
	int64_t (*layout)(struct vshm_vq_layout *l, uint64_t base, uint32_t num, uint32_t arg);
	uint32_t layout_arg;	/* indirect_max, or the FIFO's ring bytes */
	/* What a driver writes before either side creates its queue; or NULL. */
	void (*prepare)(struct hostile_env *e);
	/*
	 * Hostile driver cases: keep the case as a fuzz seed (stage 0 after its
	 * writes, 1 before its second stage, 2 after); or NULL.
	 */
	void (*seed)(struct hostile_env *e, const struct hostile_drv_case *c, int stage);
	/* Hostile device cases: the driver's features and ring size, */
	uint64_t drv_features;
	uint32_t num;
	unsigned a_flags;	/* A's add_ex flags (hostile_post), */
	struct vshm_sg late;	/* what later adds add (at buf + off), */
	int (*posted)(struct hostile_drv_env *de);	/* what reads the ids back, */
	/* and a layout's own checks after each verdict; or NULL. */
	void (*also)(struct hostile_drv_env *de, const struct hostile_tally *t, unsigned n);
};

/* ---- windows -------------------------------------------------------------- */

/* A window of @size, a ring of @num laid out at the start of the driver area. */
static inline int hostile_env_init(struct hostile_env *e, const struct hostile_ring *r,
				   uint64_t size, uint32_t num)
{
	struct vshm_window_opts o = { .size = size, .vectors = 1 };
	int64_t used;

	memset(e, 0, sizeof(*e));
	e->w.fd = e->t.fd = -1;
	if (vshm_window_create(&e->w, &o) || vshm_window_map(&e->t, e->w.fd) ||
	    vshm_window_protect_ctrl(&e->t, PROT_NONE))
		return -1;
	used = r->layout(&e->l, e->w.drv_lo, num, r->layout_arg);
	if (used < 0)
		return -1;
	e->buf = (e->w.drv_lo + (uint64_t)used + 4095) & ~4095ull;
	if (r->prepare)
		r->prepare(e);
	return 0;
}

static inline void hostile_env_fini(struct hostile_env *e)
{
	vshm_window_unmap(&e->t);
	vshm_window_unmap(&e->w);
}

/* ---- a hostile driver against our device ---------------------------------- */

/* A fresh window (@size, 0: 4 MiB) and device queue of @num with @features. */
static inline int hostile_dev_setup(struct hostile_env *e, struct vshm_dev_vq **v,
				    const struct hostile_ring *r, uint64_t size, uint32_t num,
				    uint64_t features)
{
	if (hostile_env_init(e, r, size ? size : 4u << 20, num) ||
	    vshm_dev_vq_create(v, &e->t, &e->l, features, NULL)) {
		hostile_env_fini(e);
		return -1;
	}
	return 0;
}

/*
 * Close hostile driver case @n: with @why the device side must have
 * refused the ring after @want good chains (@rc its last pop) and stay
 * broken; with @why NULL it must have accepted @want chains and be healthy.
 */
static inline void hostile_dev_verdict(struct vshm_dev_vq *v, int rc, unsigned good, unsigned want,
				       const char *why, unsigned n, const char *name)
{
	const char *err = vshm_dev_vq_error(v);
	struct vshm_chain c;
	struct vshm_iov iov[4];

	if (!why) {
		ok(rc == 0 && !vshm_dev_vq_broken(v) && good == want,
		   "hostile driver %u: %s -> accepted (%u chains%s%s)", n, name,
		   good, err ? ", " : "", err ? err : "");
		return;
	}
	ok(rc == -EIO && vshm_dev_vq_broken(v) && good == want && err && strstr(err, why),
	   "hostile driver %u: %s -> refused (%s)", n, name, err ? err : "not refused");
	if (good != want)
		diag("popped %u, expected %u", good, want);
	ok(vshm_dev_vq_pop(v, &c, iov, 4) == -EIO && vshm_dev_vq_push(v, 0, 0) == -EIO &&
	   vshm_dev_vq_publish(v) == -EIO && vshm_dev_vq_enable_notify(v) == -EIO,
	   "hostile driver %u: broken is sticky", n);
}

/* Pop until the ring is dry or broken, completing as @c says: the last pop. */
static inline int hostile_pop_round(struct vshm_dev_vq *v, const struct hostile_drv_case *c,
				    unsigned *good)
{
	static struct vshm_iov iov[256];
	uint16_t held[256];
	struct vshm_chain ch;
	unsigned nheld = 0;
	int rc;

	while ((rc = vshm_dev_vq_pop(v, &ch, iov, c->max_iov)) == 1) {
		(*good)++;
		if (c->push == PUSH_EACH) {
			vshm_dev_vq_push(v, ch.head, 0);
			vshm_dev_vq_publish(v);
		} else if (nheld < 256) {
			held[nheld++] = ch.head;
		}
	}
	if (rc == 0 && c->push == PUSH_ROUND) {
		for (unsigned k = 0; k < nheld; k++)
			vshm_dev_vq_push(v, held[k], 0);
		vshm_dev_vq_publish(v);
	}
	return rc;
}

/* Hostile driver case @i (0-based): its writes, the device pops, the verdict. */
static inline void hostile_driver_case(const struct hostile_ring *r, const struct hostile_drv_case *c,
				       unsigned i)
{
	struct hostile_env e;
	struct vshm_dev_vq *v;
	unsigned good = 0;
	int rc;

	if (hostile_dev_setup(&e, &v, r, c->win, c->num, c->features)) {
		ok(0, "hostile driver %u: setup", i + 1);
		return;
	}
	e.i = i;
	c->fn(&e);
	if (r->seed)
		r->seed(&e, c, 0);
	rc = hostile_pop_round(v, c, &good);
	if (rc == 0 && c->again) {
		if (r->seed)
			r->seed(&e, c, 1);
		c->again(&e);
		if (r->seed)
			r->seed(&e, c, 2);
		rc = hostile_pop_round(v, c, &good);
	}
	hostile_dev_verdict(v, rc, good, c->good, c->why, i + 1, c->name);
	vshm_dev_vq_destroy(v);
	hostile_env_fini(&e);
}

static inline void hostile_driver_cases(const struct hostile_ring *r,
					const struct hostile_drv_case *cases, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		hostile_driver_case(r, &cases[i], i);
}

/* ---- a hostile device against our driver ---------------------------------- */

/*
 * The chains every hostile device case starts from: A = 1 out of 64 bytes
 * + 1 in of 100 (buf, buf + 4096), B = 1 in of 50 (buf + 8192), C = 1 out
 * of 10 (buf + 12288), published; then D, like C, added but never
 * published.  Their cookies are &cookies[0..3].
 */
static inline int hostile_post(struct hostile_drv_env *de, unsigned a_flags)
{
	uint64_t buf = de->e.buf;
	struct vshm_sg a[2] = { { buf, 64, 0 }, { buf + 4096, 100, 0 } };
	struct vshm_sg b = { buf + 8192, 50, 0 }, c = { buf + 12288, 10, 0 };

	if (vshm_drv_vq_add_ex(de->d, a, 1, 1, &de->cookies[0], a_flags) ||
	    vshm_drv_vq_add(de->d, &b, 0, 1, &de->cookies[1]) ||
	    vshm_drv_vq_add(de->d, &c, 1, 0, &de->cookies[2]))
		return -1;
	if (vshm_drv_vq_publish(de->d) < 0)
		return -1;
	return vshm_drv_vq_add(de->d, &c, 1, 0, &de->cookies[3]) ? -1 : 0;
}

/* A fresh window and driver queue with hostile_post's chains out. */
static inline int hostile_drv_setup(struct hostile_drv_env *de, const struct hostile_ring *r)
{
	memset(de, 0, sizeof(*de));
	if (hostile_env_init(&de->e, r, 4u << 20, r->num) ||
	    vshm_drv_vq_create(&de->d, &de->e.t, &de->e.l, r->drv_features, NULL) ||
	    hostile_post(de, r->a_flags))
		return -1;
	return r->posted ? r->posted(de) : 0;
}

static inline void hostile_drv_fini(struct hostile_drv_env *de)
{
	vshm_drv_vq_destroy(de->d);
	hostile_env_fini(&de->e);
}

static inline void hostile_count(struct hostile_tally *t, void *ck, uint32_t len)
{
	uintptr_t p = (uintptr_t)ck, base = (uintptr_t)t->cookies;
	uintptr_t k = (p - base) / sizeof(int);

	if (p < base || (p - base) % sizeof(int) || k >= HOSTILE_COOKIES || t->returned[k]++) {
		t->strays++;
		return;
	}
	t->len[k] = len;
}

/* Harvest while there is something: the last return (0, or -EIO). */
static inline int hostile_harvest(struct vshm_drv_vq *d, struct hostile_tally *t)
{
	void *ck;
	uint32_t len;
	int rc;

	while ((rc = vshm_drv_vq_harvest(d, &ck, &len)) == 1) {
		hostile_count(t, ck, len);
		t->good++;
	}
	return rc;
}

/*
 * Close hostile device case @n: the driver side must have refused (@rc its
 * last call, the reason containing @why) after @want good completions,
 * answer -EIO from then on (an add of @s among the calls), and give back
 * through detach every one of @posted chains it did not complete, once,
 * which frees all @num slots.
 */
static inline void hostile_drv_verdict(struct vshm_drv_vq *d, int rc, struct hostile_tally *t,
				       unsigned want, const char *why, unsigned n, const char *name,
				       const struct vshm_sg *s, unsigned posted, unsigned num)
{
	const char *err = vshm_drv_vq_error(d);
	void *ck;
	uint32_t len;

	ok(rc == -EIO && vshm_drv_vq_broken(d) && t->good == want && err && strstr(err, why),
	   "hostile device %u: %s -> refused (%s)", n, name, err ? err : "not refused");
	if (t->good != want)
		diag("harvested %u, expected %u", t->good, want);
	ok(vshm_drv_vq_harvest(d, &ck, &len) == -EIO &&
	   vshm_drv_vq_add(d, s, 1, 0, &t->cookies[HOSTILE_COOKIES - 1]) == -EIO &&
	   vshm_drv_vq_publish(d) == -EIO && vshm_drv_vq_enable_cb(d) == -EIO,
	   "hostile device %u: -EIO from then on", n);
	/* Every outstanding request can still be failed explicitly. */
	while (t->detached < 4 * HOSTILE_COOKIES && (ck = vshm_drv_vq_detach_unused(d)) != NULL) {
		hostile_count(t, ck, 0);
		t->detached++;
	}
	ok(t->good + t->detached == posted && !t->strays,
	   "hostile device %u: every chain accounted for once", n);
	if (t->good + t->detached != posted || t->strays)
		diag("harvested %u, detached %u, %u strays; %u posted",
		     t->good, t->detached, t->strays, posted);
	ok(vshm_drv_vq_num_free(d) == num && vshm_drv_vq_inflight(d) == 0,
	   "hostile device %u: every slot free after detach", n);
}

/* Hostile device case @i (0-based): its writes, harvests, the verdict. */
static inline void hostile_device_case(const struct hostile_ring *r, const struct hostile_dev_case *c,
				       unsigned i)
{
	struct hostile_drv_env de;
	struct hostile_tally t = { .cookies = de.cookies };
	struct vshm_sg s = r->late;
	int rc;

	if (hostile_drv_setup(&de, r)) {
		ok(0, "hostile device %u: setup", i + 1);
		return;
	}
	de.e.i = i;
	s.off += de.e.buf;
	c->fn(&de);
	rc = hostile_harvest(de.d, &t);
	if (rc == 0 && c->again) {
		c->again(&de);
		rc = hostile_harvest(de.d, &t);
	}
	/* Adds until the driver needs what the hostile device moved. */
	for (unsigned k = 0; c->add && k < 4; k++) {
		rc = vshm_drv_vq_add(de.d, &s, 1, 0, &de.cookies[HOSTILE_POSTED + k]);
		if (rc)
			break;
		de.extra++;
	}
	hostile_drv_verdict(de.d, rc, &t, c->good, c->why, i + 1, c->name, &s,
			    HOSTILE_POSTED + de.extra, r->num);
	if (r->also)
		r->also(&de, &t, i + 1);
	hostile_drv_fini(&de);
}

static inline void hostile_device_cases(const struct hostile_ring *r,
					const struct hostile_dev_case *cases, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		hostile_device_case(r, &cases[i], i);
}

/* For the controls: the next harvest is chain @k's, @want bytes long. */
static inline void hostile_harvested(struct hostile_drv_env *de, unsigned k, uint32_t want,
				     const char *what)
{
	void *ck;
	uint32_t len;

	ok(vshm_drv_vq_harvest(de->d, &ck, &len) == 1 && ck == &de->cookies[k] && len == want,
	   "control: %s", what);
}

#endif
