// SPDX-License-Identifier: MIT
/*
 * FIFO ring, driver side, against an arbitrary device.
 *
 * The input is a program: the driver posts real requests (shapes from the
 * input) and the "device" answers with honest completions, raw frames,
 * PADs, and D2V head / V2D tail values of its choosing.  The honest part
 * reads the driver's D2V frames, so every REQUEST our driver writes is
 * checked too.  Invariants after every step: a harvested cookie is a
 * request in flight, harvested once, in request order, with a length no
 * larger than its capacity; once broken, every call returns -EIO; nothing
 * is written outside the posted in buffers.  In the end every request is
 * returned exactly once (harvested or detached) and every id is free.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <vshm/vq.h>
#include "barrier.h"
#include "vq_fuzz_common.h"	/* dw: the driver's view, hw: the hostile device's */

#define MAXREQ	4096u
#define SLOT	2048u	/* in buffer k of a request at buf + k * SLOT, <= 1024 bytes */
#define CANARY	0x5a

static void vframe(uint8_t *data, uint32_t size, uint32_t pos, uint32_t len, uint16_t type,
		   uint16_t id, uint32_t a, uint32_t b)
{
	struct vshm_fifo_frame *f = (void *)(data + (pos & (size - 1)));

	f->len = len;
	f->type = type;
	f->id = id;
	f->a = a;
	f->b = b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rec recs[MAXREQ];
	static uint16_t pend_id[MAXREQ];	/* popped by the honest device, in order */
	static uint32_t pend_in[MAXREQ];
	struct in in = { data, size, 0 };
	struct vshm_vq_layout l;
	struct vshm_drv_vq *d;
	struct vshm_fifo_ctrl *dc, *vc;
	uint8_t *dd, *vd;
	uint64_t buf, next_seq = 0;
	uint32_t ring, num, dpos = 0, vpos = 0;
	unsigned nrec = 0, returned = 0, npend = 0, pend_head = 0, steps = 0;
	int lied = 0;	/* D2V head released bytes the honest device had not read */

	if (!dw.base)
		vqf_windows();
	if (size < 2)
		return 0;
	num = 1u << (get(&in, 1) % 6);	/* 1 .. 32 */
	ring = get(&in, 1) & 1 ? 8192 : 4096;
	d = vqf_drv_open(&l, vshm_vq_layout_fifo, num, ring, 1ull << VSHM_F_FIFO_RING, &buf);
	memset(hw.base + buf, CANARY, 6 * SLOT);
	dc = (void *)(hw.base + l.desc);
	vc = (void *)(hw.base + l.avail);
	dd = hw.base + l.desc + VSHM_FIFO_CTRL_SIZE;
	vd = hw.base + l.avail + VSHM_FIFO_CTRL_SIZE;
	memset(recs, 0, sizeof(recs));

	while (in.i < in.n && nrec < MAXREQ && steps++ < 1024) {
		uint8_t op = (uint8_t)get(&in, 1);
		int broken = vshm_drv_vq_broken(d), rc;

		switch (op % 10) {
		case 0: {	/* add: a = shape, b = sizes */
			struct vshm_sg sg[6];
			uint32_t a = get(&in, 1), b = get(&in, 2);
			unsigned nout = a & 3, nin = (a >> 2) & 3;

			if (nout + nin == 0)
				nin = 1;
			recs[nrec].in_len = 0;
			for (unsigned k = 0; k < nout + nin; k++) {
				sg[k].off = buf + k * SLOT;
				sg[k].len = ((b >> (k * 2)) * 37u) % 1025u;
				sg[k].flags = 0;
				if (k >= nout)
					recs[nrec].in_len += sg[k].len;
			}
			rc = vshm_drv_vq_add(d, sg, nout, nin, &recs[nrec]);
			if (broken && rc != -EIO)
				__builtin_trap();
			if (rc == 0) {
				recs[nrec].live = 1;
				recs[nrec].seq = nrec;
				nrec++;
			}
			break;
		}
		case 1:
			vqf_publish(d, broken);
			break;
		case 2: {	/* the honest device pops: our driver's frames must be valid */
			uint32_t tail = vshm_load_acquire(&dc->tail);

			/* After a lie the driver may rightly reuse unread bytes. */
			while (!lied && dpos != tail && npend < MAXREQ) {
				const struct vshm_fifo_frame *f = (const void *)(dd + (dpos & (ring - 1)));
				uint32_t rest = ring - (dpos & (ring - 1));

				if (f->len == 0 || (f->len & 15) || f->len > rest || f->len > tail - dpos)
					__builtin_trap();
				if (f->type == VSHM_FIFO_PAD) {
					if (f->len != rest || f->id || f->a || f->b)
						__builtin_trap();
				} else if (f->type != VSHM_FIFO_REQUEST || f->id >= num ||
					   f->len != ((16 + f->a + 15) & ~15u) || f->len > ring / 2 ||
					   ((16 + f->b + 15) & ~15u) > ring / 2) {
					__builtin_trap();
				} else {
					pend_id[npend] = f->id;
					pend_in[npend++] = f->b;
				}
				dpos += f->len;
			}
			break;
		}
		case 3: {	/* honest completion of the oldest popped, written from input */
			uint32_t w = get(&in, 2), res, rest;

			if (pend_head == npend)
				break;
			res = (16 + pend_in[pend_head] + 15) & ~15u;
			rest = ring - (vpos & (ring - 1));
			if (rest < res) {
				vframe(vd, ring, vpos, rest, VSHM_FIFO_PAD, 0, 0, 0);
				vpos += rest;
			}
			if (!(get(&in, 1) & 1))
				w %= pend_in[pend_head] + 1;	/* else maybe too big */
			memset(vd + ((vpos + 16) & (ring - 1)), (int)w, res - 16);
			vframe(vd, ring, vpos, res, VSHM_FIFO_COMPLETION, pend_id[pend_head], w, 0);
			vpos += res;
			pend_head++;
			break;
		}
		case 4: {	/* a raw V2D frame, then move on */
			uint32_t len = get(&in, 2), a = get(&in, 4);
			uint16_t type = (uint16_t)(get(&in, 1) & 3), id = (uint16_t)(get(&in, 1) % (num + 2));
			uint32_t adv = get(&in, 1) * 16u;

			vframe(vd, ring, vpos & ~15u, len, type, id, a, 0);
			vpos += adv;
			break;
		}
		case 5: {	/* V2D tail: published as is, or off by a bit */
			int8_t delta = (int8_t)get(&in, 1);

			vshm_store_release(&vc->tail, vpos + (uint32_t)(delta * (delta & 1 ? 1 : 16)));
			break;
		}
		case 6: {	/* D2V head: released where we are, or not */
			int8_t delta = (int8_t)get(&in, 1);

			if (delta > 0)
				lied = 1;
			vshm_store_release(&dc->head, dpos + (uint32_t)(delta * 16));
			break;
		}
		case 7:		/* harvest up to a, in request order */
			vqf_harvest(d, recs, nrec, &returned, get(&in, 1) % 8 + 1, broken, &next_seq);
			break;
		case 8:
			vqf_callbacks(d, get(&in, 1), broken);
			break;
		case 9: {	/* scribble on the V2D data area */
			uint32_t off = get(&in, 2) % ring;

			vd[off] = (uint8_t)get(&in, 1);
			break;
		}
		}
		/* Nothing outside the in buffers: bytes past 1024 in each slot. */
		for (unsigned k = 0; k < 6; k++)
			for (unsigned j = 1024; j < SLOT; j += 61)
				if (hw.base[buf + k * SLOT + j] != CANARY)
					__builtin_trap();
	}
	vqf_detach_all(d, recs, nrec, returned, num);
	vshm_drv_vq_destroy(d);
	return 0;
}
