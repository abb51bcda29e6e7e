// SPDX-License-Identifier: MIT
/*
 * FIFO ring, driver side, against an arbitrary device.
 *
 * The input is a program: the driver posts real requests (shapes from the
 * input) and the "device" answers with honest completions, raw frames,
 * PADs, marks of its choosing anywhere near its position, and D2V head
 * values of its choosing.  A frame is produced by its mark, so where the
 * device writes one it picks, from the input, either the correct mark for
 * the position (the frame can be valid and the driver goes on, deep into
 * the ring) or any 32-bit word.  The honest part reads the driver's D2V
 * frames through their marks, so every REQUEST our driver writes is
 * checked too, and it keeps the 16 bytes after its frames free unless the
 * input says otherwise.
 *
 * Invariants after every step: a harvested cookie is a request in flight,
 * harvested once, in request order, with a length no larger than its
 * capacity; once broken, every call returns -EIO; nothing is written
 * outside the posted in buffers; the driver's D2V frames are well formed,
 * marked with their own positions, and end 16 bytes short of the head the
 * device released.  In the end every request is returned exactly once
 * (harvested or detached) and every id is free.
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

static inline uint32_t flen(uint32_t n)
{
	return (16 + n + 15) & ~15u;
}

static struct vshm_fifo_frame *frame_at(uint8_t *data, uint32_t size, uint32_t pos)
{
	return (struct vshm_fifo_frame *)(void *)(data + (pos & (size - 1)));
}

/* A V2D header as a device writes it: the fields, then the mark. */
static void vframe(uint8_t *data, uint32_t size, uint32_t pos, uint32_t mark, uint16_t id,
		   uint16_t zero, uint32_t a, uint32_t b)
{
	struct vshm_fifo_frame *f = frame_at(data, size, pos);

	f->id = id;
	f->zero = zero;
	f->a = a;
	f->b = b;
	vshm_store_release(&f->mark, mark);
}

/*
 * The mark for a frame of @type at @pos: the right one unless bit 0 of
 * @sel asks for a raw word from the input.  The right one keeps the
 * driver going; the raw one is any lie.
 */
static uint32_t pick_mark(struct in *in, uint8_t sel, uint32_t pos, uint32_t type)
{
	return sel & 1 ? get(in, 4) : VSHM_FIFO_MARK(pos, type);
}

/* Signed distance from @b to @a on free-running positions. */
static inline int32_t ahead(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b);
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
	uint32_t ring, num, dpos = 0, drel = 0, vpos = 0;
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
			/* After a lie the driver may rightly reuse unread bytes. */
			for (unsigned k = 0; !lied && npend < MAXREQ && k < ring / 16; k++) {
				const struct vshm_fifo_frame *f = frame_at(dd, ring, dpos);
				uint32_t m = vshm_load_acquire(&f->mark), len;
				uint32_t rest = ring - (dpos & (ring - 1));

				if (m == 0)
					break;
				if (VSHM_FIFO_MARK_POS(m) != dpos || f->zero)
					__builtin_trap();
				if (VSHM_FIFO_MARK_TYPE(m) == VSHM_FIFO_PAD) {
					if (rest >= ring / 2 || f->id || f->a || f->b)
						__builtin_trap();
					len = rest;
				} else if (VSHM_FIFO_MARK_TYPE(m) != VSHM_FIFO_REQUEST || f->id >= num ||
					   f->a > ring / 2 || flen(f->a) > ring / 2 || flen(f->a) > rest ||
					   f->b > ring / 2 || flen(f->b) > ring / 2) {
					__builtin_trap();
				} else {
					len = flen(f->a);
					pend_id[npend] = f->id;
					pend_in[npend++] = f->b;
				}
				/* The driver keeps the 16 bytes after its frames free. */
				if ((uint32_t)(dpos + len - drel) > ring - 16)
					__builtin_trap();
				dpos += len;
			}
			break;
		}
		/*
		 * Completion of the oldest popped, honest unless its flags say:
		 * bit 1 ignores the room, bit 2 lets written exceed in_len,
		 * bit 3 takes a raw mark, bit 4 runs the frame over the end of
		 * the data area instead of writing a PAD, bit 5 leaves the slot
		 * after as it is.
		 */
		case 3: {
			uint8_t fl = (uint8_t)get(&in, 1);
			uint32_t w = get(&in, 2), res, rest, pad, mark, room;

			if (pend_head == npend)
				break;
			res = flen(pend_in[pend_head]);
			rest = ring - (vpos & (ring - 1));
			pad = rest < res && !(fl & 16) ? rest : 0;
			/* An honest device waits for the room the driver's head gives. */
			if (!(fl & 2) &&
			    (uint32_t)(vpos - vshm_load_acquire(&vc->head)) + pad + res + 16 > ring)
				break;
			if (!(fl & 4))
				w %= pend_in[pend_head] + 1;	/* else maybe too big */
			mark = pick_mark(&in, fl >> 3, vpos + pad, VSHM_FIFO_COMPLETION);
			/* The reply, up to the end of the data area at most. */
			room = ring - ((vpos + pad) & (ring - 1));
			memset(vd + ((vpos + pad + 16) & (ring - 1)), (int)w, (res < room ? res : room) - 16);
			if (!(fl & 32))
				vshm_store_once(&frame_at(vd, ring, vpos + pad + res)->mark, 0);
			vframe(vd, ring, vpos + pad, mark, pend_id[pend_head], 0, w, 0);
			if (pad)
				vframe(vd, ring, vpos, VSHM_FIFO_MARK(vpos, VSHM_FIFO_PAD), 0, 0, 0, 0);
			vpos += pad + res;
			pend_head++;
			break;
		}
		case 4: {	/* a raw V2D frame, any type, then move on */
			uint8_t sel = (uint8_t)get(&in, 1);
			uint32_t mark = pick_mark(&in, sel, vpos, sel >> 4);
			uint16_t id = (uint16_t)(get(&in, 1) % (num + 2));
			uint16_t zero = sel & 2 ? (uint16_t)get(&in, 2) : 0;
			uint32_t a = get(&in, 4), b = sel & 4 ? get(&in, 4) : 0;
			uint32_t adv = get(&in, 1) * 16u;

			vframe(vd, ring, vpos, mark, id, zero, a, b);
			vpos += adv;
			break;
		}
		case 5: {	/* a mark word near our position: 0, its own, a lap off, raw */
			int8_t delta = (int8_t)get(&in, 1);
			uint8_t sel = (uint8_t)get(&in, 1);
			uint32_t p = vpos + (uint32_t)(delta * 16), v;

			switch (sel & 3) {
			case 0: v = 0; break;
			case 1: v = VSHM_FIFO_MARK(p, sel >> 4); break;
			case 2: v = VSHM_FIFO_MARK(p + (sel & 4 ? ring : -ring), sel >> 4); break;
			default: v = get(&in, 4); break;
			}
			vshm_store_release(&frame_at(vd, ring, p)->mark, v);
			break;
		}
		case 6: {	/* D2V head: released where we are, or not, or not aligned */
			int8_t delta = (int8_t)get(&in, 1);
			uint32_t h = dpos + (uint32_t)(delta * (delta & 1 ? 1 : 16));

			/* An odd one is refused if loaded: it releases nothing. */
			if (!(delta & 1)) {
				if (delta > 0)
					lied = 1;
				else if (ahead(h, drel) > 0)
					drel = h;
			}
			vshm_store_release(&dc->head, h);
			break;
		}
		case 7: {	/* harvest up to a, in request order, one by one or batched */
			unsigned a = get(&in, 1), n = a % 8 + 1;
			void *ck[8];
			uint32_t lens[8];

			if (!(a & 0x80)) {
				vqf_harvest(d, recs, nrec, &returned, n, broken, &next_seq);
				break;
			}
			/* A batch releases V2D head only at its end. */
			rc = vshm_drv_vq_harvest_batch(d, ck, lens, n);
			if ((broken && rc != -EIO) || rc > (int)n)
				__builtin_trap();
			for (int k = 0; k < rc; k++) {
				if (vqf_take(recs, nrec, ck[k], lens[k])->seq != next_seq++)
					__builtin_trap();
				returned++;
			}
			break;
		}
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
