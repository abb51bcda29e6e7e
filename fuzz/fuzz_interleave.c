// SPDX-License-Identifier: MIT
/*
 * Double fetches and concurrent peer writes, under the interleaving harness
 * (fuzz/interleave.h): every load the library makes from the window is
 * watched, any window bytes loaded twice within one request trap, and the
 * input's script rewrites window bytes between any two loads.
 *
 * One target for the three ring layouts and the mailbox (a selector byte),
 * so that make fuzz-smoke stays within its time budget.  For a campaign on
 * one of them, set VSHM_INTERLEAVE_ONLY=split|packed|fifo|mbox.
 *
 * Input:
 *   byte 0  bits 0-1 what: 0 split, 1 packed, 2 fifo, 3 mailbox
 *           bit 2 EVENT_IDX, bit 3 INDIRECT_DESC, bits 4-6 log2 ring size
 *           (1 .. 64), bit 7 FIFO data area 8192 instead of 4096
 *   byte 1  bits 0-2 the device's segment limit (1 .. 8); bits 3-7 a
 *           hostile layout if not 0: the device is given the driver's
 *           layout with one ring area moved onto another (as a driver
 *           could ask with SET_VQUEUE), which it must refuse or survive
 *   byte 2  n: script records (interleave.h), the next 10 n bytes
 *   then a program, one operation per byte followed by its operands.
 *
 * Rings: a real driver and a real device on one queue in one mapping (the
 * header and mailbox PROT_NONE), so chains in flight are real posted
 * state; each call of either side is one request:
 *   0 add a chain (shape, size)          4 harvest one completion
 *   1 driver publish                     5 enable / disable callbacks
 *   2 device pop (up to 64 held)         6 enable / disable notifications
 *   3 device completes a held chain      7 hostile write: 8 bytes anywhere
 *     and publishes                        in the queue's memory
 * Checked: every popped buffer lies in the driver area, with byte counts
 * that add up; a harvested cookie is a chain in flight, harvested once,
 * within what it posted; once broken, -EIO; at the end every chain comes
 * back exactly once (harvested or detached) and every slot is free.
 *
 * Mailbox: a driver and a device endpoint on one window; each send, recv
 * and arm is one request:
 *   0/1 driver/device sends (length, fill)   4 arm or disarm either side
 *   2/3 driver/device receives (capacity)    5 hostile write: 8 bytes
 * Checked: a received length is in [8, capacity] and matches the copied
 * header's msg_size; once broken, -EIO; and while nothing hostile has
 * happened (no rewrite, no hostile write), messages arrive intact, in order.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sanitizer/common_interface_defs.h>

#include <vshm/mbox.h>
#include <vshm/vq.h>
#include "barrier.h"
#include "interleave.c"
#include "vq_fuzz_common.h"	/* hw, dw: header and mailbox PROT_NONE in dw */

#define HOLD	64u
#define NREC	1024u
#define MAXIOV	8u
#define BUFSPAN	8192u		/* bytes of posted buffers after the ring */

static int only = -1;
static bool verbose;	/* VSHM_INTERLEAVE_VERBOSE: a line per input */

/*
 * VSHM_INTERLEAVE_LOG: report double fetches with a stack trace and go on
 * (the first at each load site), to survey them all in one campaign
 * instead of stopping at the first.
 */
static void log_report(const struct interleave_report *r, void *ctx)
{
	static const void *seen[256];
	unsigned k;

	(void)ctx;
	for (k = 0; k < 256 && seen[k]; k++)
		if (seen[k] == r->site)
			return;
	if (k == 256)
		return;
	seen[k] = r->site;
	fprintf(stderr, "interleave: double fetch in %s: %zu bytes at offset %#zx, "
		"already loaded as %zu bytes at offset %#zx\n",
		r->what, r->size, r->off, r->first_size, r->first_off);
	__sanitizer_print_stack_trace();
}

static void setup(void)
{
	const char *e = getenv("VSHM_INTERLEAVE_ONLY");
	static const char *const names[] = { "split", "packed", "fifo", "mbox" };

	vqf_windows();
	for (int k = 0; e && k < 4; k++)
		if (!strcmp(e, names[k]))
			only = k;
	verbose = getenv("VSHM_INTERLEAVE_VERBOSE") != NULL;
	if (getenv("VSHM_INTERLEAVE_LOG"))
		interleave_set_report(log_report, NULL);
}

/* ---- rings -------------------------------------------------------------- */

struct held {
	struct vshm_chain c;
	struct vshm_iov iov[MAXIOV];
};

/* The layout the device gets: the driver's, or one with areas overlapping. */
static struct vshm_vq_layout hostile_layout(const struct vshm_vq_layout *l, unsigned sh)
{
	struct vshm_vq_layout h = *l;
	uint64_t amt = (uint64_t)(sh >> 2) * 64;

	switch (sh & 3) {
	case 1:
		h.avail = l->desc + amt;
		break;
	case 2:
		h.used = l->desc + amt;
		break;
	case 3:
		h.used = l->avail + (amt & 63);
		break;
	}
	return h;
}

static void run_ring(int what, uint8_t p0, uint8_t p1, struct in *in)
{
	static struct rec recs[NREC];
	static struct held held[HOLD];
	uint64_t feat = 0, buf;
	unsigned num = 1u << (((p0 >> 4) & 7) % 7), nrec = 0, returned = 0, nheld = 0, steps = 0;
	unsigned harvested = 0;
	unsigned max_iov = (p1 & 7) + 1, sh = p1 >> 3;
	struct vshm_vq_layout l, dl;
	struct vshm_drv_vq *d;
	struct vshm_dev_vq *v = NULL;
	size_t span;
	int64_t lay;
	int rc;

	if (p0 & 4)
		feat |= 1ull << VSHM_F_EVENT_IDX;
	if (p0 & 8)
		feat |= 1ull << VSHM_F_INDIRECT_DESC;
	if (what == 0) {
		lay = vshm_vq_layout_split(&l, dw.drv_lo, num, 4);
	} else if (what == 1) {
		feat |= 1ull << VSHM_F_RING_PACKED;
		lay = vshm_vq_layout_packed(&l, dw.drv_lo, num, 4);
	} else {
		feat = 1ull << VSHM_F_FIFO_RING;
		lay = vshm_vq_layout_fifo(&l, dw.drv_lo, num, p0 & 0x80 ? 8192 : 4096);
	}
	if (lay < 0)
		__builtin_trap();
	buf = dw.drv_lo + (uint64_t)((lay + 4095) & ~4095);
	span = (size_t)(buf - dw.drv_lo) + BUFSPAN;
	memset(hw.base + hw.drv_lo, 0, span);
	if (interleave_window(dw.base + dw.drv_lo, span))
		abort();

	if (vshm_drv_vq_create(&d, &dw, &l, feat, NULL))
		__builtin_trap();	/* our own layout must be accepted */
	dl = hostile_layout(&l, sh);
	interleave_begin("device create");
	rc = vshm_dev_vq_create(&v, &dw, &dl, feat, NULL);
	interleave_end();
	if (rc) {
		/* Only the FIFO device loads anything here (the ring sizes),
		 * and only a rewrite can make it refuse our own layout. */
		if (what != 2 && !sh)
			__builtin_trap();
		if (verbose)
			fprintf(stderr, "interleave: ring %d num %u: device create refused (%d)\n",
				what, num, rc);
		vshm_drv_vq_destroy(d);
		return;
	}

	while (in->i < in->n && steps++ < 1024 && nrec < NREC) {
		uint8_t op = (uint8_t)get(in, 1);
		int dbroken = vshm_drv_vq_broken(d), vbroken = vshm_dev_vq_broken(v);

		switch (op % 8) {
		case 0: {	/* add: a = shape, b = size */
			uint8_t a = (uint8_t)get(in, 1), b = (uint8_t)get(in, 1);

			interleave_begin("driver add");
			vqf_add(d, recs, &nrec, buf, 1024, a, b, 1, vqf_add_flags(a), dbroken);
			interleave_end();
			break;
		}
		case 1:
			interleave_begin("driver publish");
			vqf_publish(d, dbroken);
			interleave_end();
			break;
		case 2: {
			struct held *h = &held[nheld];

			if (nheld == HOLD)
				break;
			interleave_begin("device pop");
			rc = vshm_dev_vq_pop(v, &h->c, h->iov, max_iov);
			interleave_end();
			if (vbroken && rc != -EIO)
				__builtin_trap();
			if (rc != 1)
				break;
			check_chain(&h->c, max_iov, num);
			/* Packed and FIFO devices track ids in flight; a split
			 * device trusts the avail ring's heads (a duplicate
			 * completion is the driver's to refuse). */
			for (unsigned k = 0; what && k < nheld; k++)
				if (held[k].c.head == h->c.head)
					__builtin_trap();	/* one id popped twice */
			nheld++;
			break;
		}
		case 3: {	/* complete held chain a with b * 16 bytes */
			unsigned k = get(in, 1);
			uint64_t w = (uint64_t)get(in, 1) * 16;

			if (!nheld)
				break;
			k %= nheld;
			if (w > held[k].c.in_bytes)
				w = held[k].c.in_bytes;
			rc = vshm_dev_vq_push(v, held[k].c.head, (uint32_t)w);
			if (rc != (vbroken ? -EIO : 0))
				__builtin_trap();	/* a chain we popped is pushable */
			interleave_begin("device publish");
			rc = vshm_dev_vq_publish(v);
			interleave_end();
			if (vbroken ? rc != -EIO : rc < 0)
				__builtin_trap();
			nheld--;
			if (k != nheld) {
				held[k] = held[nheld];
				held[k].c.iov = held[k].iov;
			}
			break;
		}
		case 4: {
			void *ck;
			uint32_t len;

			interleave_begin("driver harvest");
			rc = vshm_drv_vq_harvest(d, &ck, &len);
			interleave_end();
			if (dbroken && rc != -EIO)
				__builtin_trap();
			if (rc != 1)
				break;
			vqf_take(recs, nrec, ck, len);
			returned++;
			harvested++;
			break;
		}
		case 5:
			if (get(in, 1) & 1) {
				vshm_drv_vq_disable_cb(d);
				break;
			}
			interleave_begin("driver enable_cb");
			rc = vshm_drv_vq_enable_cb(d);
			interleave_end();
			if (dbroken && rc != -EIO)
				__builtin_trap();
			break;
		case 6:
			if (get(in, 1) & 1) {
				vshm_dev_vq_disable_notify(v);
				break;
			}
			interleave_begin("device enable_notify");
			rc = vshm_dev_vq_enable_notify(v);
			interleave_end();
			if (vbroken && rc != -EIO)
				__builtin_trap();
			break;
		case 7: {	/* the hostile peer writes 8 bytes */
			size_t off = get(in, 2) % (span - 8);
			uint8_t val[8];

			for (unsigned k = 0; k < 8; k++)
				val[k] = (uint8_t)get(in, 1);
			memcpy(hw.base + hw.drv_lo + off, val, 8);
			break;
		}
		}
		if (vshm_drv_vq_num_free(d) > num || vshm_drv_vq_inflight(d) > num)
			__builtin_trap();
	}
	vqf_detach_all(d, recs, nrec, returned, num);
	if (vshm_dev_vq_broken(v) && vshm_dev_vq_pop(v, &held[0].c, held[0].iov, max_iov) != -EIO)
		__builtin_trap();
	if (verbose)
		fprintf(stderr, "interleave: ring %d num %u: %u steps, %u chains, %u harvested, "
			"%u held; driver %s, device %s\n", what, num, steps, nrec,
			harvested, nheld,
			vshm_drv_vq_broken(d) ? vshm_drv_vq_error(d) : "ok",
			vshm_dev_vq_broken(v) ? vshm_dev_vq_error(v) : "ok");
	vshm_dev_vq_destroy(v);
	vshm_drv_vq_destroy(d);
}

/* ---- mailbox ------------------------------------------------------------ */

/* Messages sent and not yet received, per direction, while all is honest. */
struct expect {
	uint16_t len[VSHM_MBOX_SLOTS];
	uint8_t fill[VSHM_MBOX_SLOTS];
	unsigned head, tail;
};

static void make_msg(uint8_t *m, unsigned len, uint8_t fill)
{
	memset(m, fill, len);
	m[6] = (uint8_t)len;		/* msg_size, le16 */
	m[7] = (uint8_t)(len >> 8);
}

static void run_mbox(struct in *in)
{
	static const char *const what_send[2] = { "driver mbox send", "device mbox send" };
	static const char *const what_recv[2] = { "driver mbox recv", "device mbox recv" };
	static const char *const what_arm[2] = { "driver mbox arm", "device mbox arm" };
	struct vshm_mbox mb[2];			/* [0] driver, [1] device */
	struct expect ex[2];			/* [s]: sent by side s */
	struct interleave_stats st;
	uint8_t msg[VSHM_MSG_MAX_SIZE], got[VSHM_MSG_MAX_SIZE];
	unsigned steps = 0;
	uint64_t rewrites0;
	bool hostile = false;	/* a rewrite or a hostile write happened */
	int rc;

	if (vshm_mbox_format(&hw) ||
	    vshm_mbox_init(&mb[0], &hw, VSHM_MBOX_SIDE_DRIVER, NULL) ||
	    vshm_mbox_init(&mb[1], &hw, VSHM_MBOX_SIDE_DEVICE, NULL))
		__builtin_trap();
	if (interleave_window(hw.base + VSHM_MBOX_OFF, VSHM_MBOX_SIZE))
		abort();
	interleave_get_stats(&st);
	rewrites0 = st.rewrites;
	memset(ex, 0, sizeof(ex));

	while (in->i < in->n && steps++ < 1024) {
		uint8_t op = (uint8_t)get(in, 1);
		unsigned s = op & 1, a = get(in, 1);
		bool broken = vshm_mbox_broken(&mb[s]);

		switch ((op >> 1) % 4) {
		case 0: {	/* side s sends a + 8 bytes (capped), filled with op */
			unsigned len = 8 + a % (VSHM_MSG_MAX_SIZE - 7);

			make_msg(msg, len, op);
			interleave_begin(what_send[s]);
			rc = vshm_mbox_send(&mb[s], msg, len);
			interleave_end();
			interleave_get_stats(&st);
			hostile |= st.rewrites != rewrites0;
			if (broken ? rc != -EIO : rc != 0 && rc != -EAGAIN && rc != -EIO)
				__builtin_trap();
			if (rc == -EIO && !hostile)
				__builtin_trap();	/* broken by an honest peer */
			if (rc == 0 && ex[s].tail - ex[s].head < VSHM_MBOX_SLOTS) {
				ex[s].len[ex[s].tail % VSHM_MBOX_SLOTS] = (uint16_t)len;
				ex[s].fill[ex[s].tail % VSHM_MBOX_SLOTS] = op;
				ex[s].tail++;
			} else if (rc == 0) {
				hostile = true;	/* more than a ring in flight: cons was moved */
			}
			break;
		}
		case 1: {	/* side s receives into a buffer of capacity cap */
			unsigned cap = a < 8 ? VSHM_MSG_MAX_SIZE : a + 8;
			struct expect *e = &ex[!s];

			interleave_begin(what_recv[s]);
			rc = vshm_mbox_recv(&mb[s], got, cap);
			interleave_end();
			interleave_get_stats(&st);
			hostile |= st.rewrites != rewrites0;
			if (broken && rc != -EIO)
				__builtin_trap();
			if (rc < 0) {
				if (rc != -EAGAIN && rc != -EIO && rc != -EMSGSIZE)
					__builtin_trap();
				if (!hostile && (rc == -EIO || (rc == -EAGAIN && e->head != e->tail)))
					__builtin_trap();	/* an honest message lost */
				break;
			}
			if ((unsigned)rc < VSHM_MBOX_MSG_MIN || (unsigned)rc > cap ||
			    (unsigned)rc > VSHM_MSG_MAX_SIZE ||
			    (unsigned)(got[6] | got[7] << 8) != (unsigned)rc)
				__builtin_trap();
			if (!hostile) {
				if (e->head == e->tail)
					__builtin_trap();	/* a message nobody sent */
				make_msg(msg, e->len[e->head % VSHM_MBOX_SLOTS],
					 e->fill[e->head % VSHM_MBOX_SLOTS]);
				if ((unsigned)rc != e->len[e->head % VSHM_MBOX_SLOTS] ||
				    memcmp(got, msg, (size_t)rc))
					__builtin_trap();	/* not what was sent */
				e->head++;
			}
			break;
		}
		case 2:
			if (a & 1) {
				vshm_mbox_disarm(&mb[s]);
				break;
			}
			interleave_begin(what_arm[s]);
			rc = vshm_mbox_arm(&mb[s]);
			interleave_end();
			if (broken ? rc != -EIO : rc < 0)
				__builtin_trap();
			break;
		case 3: {	/* the hostile peer writes 8 bytes anywhere */
			size_t off = (a | get(in, 1) << 8) % (VSHM_MBOX_SIZE - 8);
			uint8_t val[8];

			for (unsigned k = 0; k < 8; k++)
				val[k] = (uint8_t)get(in, 1);
			memcpy(hw.base + VSHM_MBOX_OFF + off, val, 8);
			hostile = true;
			break;
		}
		}
		interleave_get_stats(&st);
		hostile |= st.rewrites != rewrites0;
	}
	if (verbose)
		fprintf(stderr, "interleave: mbox: %u steps, %u and %u in flight; %s; driver %s, device %s\n",
			steps, ex[0].tail - ex[0].head, ex[1].tail - ex[1].head,
			hostile ? "hostile" : "honest",
			vshm_mbox_broken(&mb[0]) ? vshm_mbox_broken_reason(&mb[0]) : "ok",
			vshm_mbox_broken(&mb[1]) ? vshm_mbox_broken_reason(&mb[1]) : "ok");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in;
	size_t nscript;
	int what;

	if (!hw.base)
		setup();
	if (size < 3)
		return 0;
	what = only >= 0 ? only : data[0] & 3;
	nscript = (size_t)data[2] * INTERLEAVE_REC;
	if (nscript > size - 3)
		nscript = (size - 3) / INTERLEAVE_REC * INTERLEAVE_REC;
	interleave_script(data + 3, nscript);
	in = (struct in){ data, size, 3 + nscript };
	if (what == 3)
		run_mbox(&in);
	else
		run_ring(what, data[0], data[1], &in);
	interleave_script(NULL, 0);
	return 0;
}
