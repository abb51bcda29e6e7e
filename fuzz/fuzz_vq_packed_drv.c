// SPDX-License-Identifier: MIT
/*
 * Driver-side packed-ring harvesting against an arbitrary device.
 *
 * The input is a program.  Byte 0: ring size (low 4 bits, 1 .. 64) and
 * features (bit 4 EVENT_IDX, bit 5 INDIRECT_DESC).  Then operations, most
 * 3 bytes (op, a, b):
 *   0  add a chain: a = shape (bits 0-1 out, 2-3 in, 0x40 INDIRECT,
 *      0x80 NO_INDIRECT), b = size
 *   1  publish
 *   2  hostile device writes a used descriptor: a = slot, b = flags
 *      (0 AVAIL|USED, 1 none, 2 AVAIL, 3 USED), then le16 id, le32 len
 *   3  honest device pops a chain
 *   4  harvest up to a % 8 + 1
 *   5  enable (a even) or disable callbacks
 *   6  honest device completes held chain a with up to 16 b bytes
 *   7  device event area: a & 1 enable, a & 2 disable notifications,
 *      a & 4 write the word (a, b) by hand
 * The honest device runs on the hostile side's mapping, so hostile writes
 * and honest completions interleave.  Invariants checked after every step:
 * a harvested cookie is a chain in flight, harvested once, with a length
 * no larger than what it posted; once broken, every call returns -EIO; in
 * the end every chain is returned exactly once (harvested or detached) and
 * every ring slot is free again.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <vshm/vq.h>
#include "barrier.h"

#define WIN (1u << 20)
#define MAXQ 64u
#define NREC 4096u

struct pdesc {			/* virtio 1.x 2.8.13 */
	uint64_t addr;
	uint32_t len;
	uint16_t id;
	uint16_t flags;
};

static struct vshm_window dw, hw;	/* driver's view, hostile device's view */

struct rec {
	int live;
	uint32_t in_len;
};

static void setup(void)
{
	struct vshm_window_opts o = { .size = WIN, .vectors = 1 };

	if (vshm_window_create(&hw, &o) || vshm_window_map(&dw, hw.fd) ||
	    vshm_window_protect_ctrl(&dw, PROT_NONE))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint16_t fl[4] = { (1u << 7) | (1u << 15), 0, 1u << 7, 1u << 15 };
	static struct rec recs[NREC];
	static struct vshm_iov hiov[MAXQ][8];
	struct vshm_chain held[MAXQ];
	struct vshm_vq_layout l;
	struct vshm_drv_vq *d;
	struct vshm_dev_vq *v;
	struct pdesc *ring;
	uint64_t feat = 1ull << VSHM_F_RING_PACKED;
	uint64_t buf;
	unsigned nrec = 0, returned = 0, num, nheld = 0;
	size_t i = 1;
	int64_t lay;

	if (!dw.base)
		setup();
	if (size < 1)
		return 0;
	num = 1u << ((data[0] & 15) % 7);	/* 1 .. 64 */
	if (data[0] & 0x10)
		feat |= 1ull << VSHM_F_EVENT_IDX;
	if (data[0] & 0x20)
		feat |= 1ull << VSHM_F_INDIRECT_DESC;
	lay = vshm_vq_layout_packed(&l, dw.drv_lo, num, 4);
	memset(hw.base + hw.drv_lo, 0, (size_t)lay);
	if (vshm_drv_vq_create(&d, &dw, &l, feat, NULL))
		__builtin_trap();
	if (vshm_dev_vq_create(&v, &hw, &l, feat, NULL))
		__builtin_trap();
	ring = (void *)(hw.base + l.desc);
	buf = dw.drv_lo + (uint64_t)((lay + 4095) & ~4095);
	memset(recs, 0, sizeof(recs));

	while (i + 3 <= size && nrec < NREC) {
		uint8_t op = data[i], a = data[i + 1], b = data[i + 2];
		int broken = vshm_drv_vq_broken(d), rc;

		i += 3;
		switch (op % 8) {
		case 0: {	/* add a chain: a = shape, b = size */
			struct vshm_sg sg[6];
			unsigned nout = a & 3, nin = (a >> 2) & 3, fla = 0;

			if (nout + nin == 0)
				nin = 1;
			recs[nrec].in_len = 0;
			for (unsigned k = 0; k < nout + nin; k++) {
				sg[k].off = buf + k * 512;
				sg[k].len = (uint32_t)b * (k + 1);
				sg[k].flags = 0;
				if (k >= nout)
					recs[nrec].in_len += sg[k].len;
			}
			if (a & 0x80)
				fla = VSHM_ADD_NO_INDIRECT;
			else if (a & 0x40)
				fla = VSHM_ADD_INDIRECT;
			rc = vshm_drv_vq_add_ex(d, sg, nout, nin, &recs[nrec], fla);
			if (broken && rc != -EIO)
				__builtin_trap();
			if (rc == 0)
				recs[nrec++].live = 1;
			break;
		}
		case 1:		/* publish */
			rc = vshm_drv_vq_publish(d);
			if (broken && rc != -EIO)
				__builtin_trap();
			break;
		case 2: {	/* hostile used descriptor: slot a, flags b, id, len */
			struct pdesc *s = &ring[a % num];
			uint16_t id = 0;
			uint32_t len = 0;

			if (i + 6 <= size) {
				memcpy(&id, data + i, 2);
				memcpy(&len, data + i + 2, 4);
				i += 6;
			}
			s->id = id;
			s->len = len;
			vshm_store_release(&s->flags, fl[b & 3]);
			break;
		}
		case 3:		/* honest device pops */
			if (nheld < MAXQ && vshm_dev_vq_pop(v, &held[nheld], hiov[nheld], 8) == 1)
				nheld++;
			break;
		case 4: {	/* harvest up to a */
			for (unsigned k = 0; k < (unsigned)(a % 8) + 1; k++) {
				void *ck;
				uint32_t len;
				struct rec *r;

				rc = vshm_drv_vq_harvest(d, &ck, &len);
				if (broken && rc != -EIO)
					__builtin_trap();
				if (rc != 1)
					break;
				r = ck;
				if (r < recs || r >= recs + nrec || !r->live || len > r->in_len)
					__builtin_trap();
				r->live = 0;
				returned++;
			}
			break;
		}
		case 5:
			if (a & 1)
				vshm_drv_vq_disable_cb(d);
			else if (vshm_drv_vq_enable_cb(d) != -EIO && broken)
				__builtin_trap();
			break;
		case 6:		/* honest device completes a held chain */
			if (nheld) {
				unsigned k = a % nheld;
				uint64_t w = (uint64_t)b * 16;

				if (w > held[k].in_bytes)
					w = held[k].in_bytes;
				vshm_dev_vq_push(v, held[k].head, (uint32_t)w);
				vshm_dev_vq_publish(v);
				held[k] = held[--nheld];
				memcpy(hiov[k], hiov[nheld], sizeof(hiov[k]));
				held[k].iov = hiov[k];
			}
			break;
		case 7:		/* device event area */
			if (a & 1)
				vshm_dev_vq_enable_notify(v);
			if (a & 2)
				vshm_dev_vq_disable_notify(v);
			if (a & 4)
				vshm_store_once((uint32_t *)(void *)(hw.base + l.used),
						(uint32_t)a << 24 | (uint32_t)b << 8 | b);
			break;
		}
		if (vshm_drv_vq_num_free(d) > num || vshm_drv_vq_inflight(d) > num)
			__builtin_trap();
	}
	/* Everything not harvested comes back through detach, once. */
	for (;;) {
		struct rec *r = vshm_drv_vq_detach_unused(d);

		if (!r)
			break;
		if (r < recs || r >= recs + nrec || !r->live)
			__builtin_trap();
		r->live = 0;
		returned++;
	}
	if (returned != nrec || vshm_drv_vq_num_free(d) != num || vshm_drv_vq_inflight(d) != 0)
		__builtin_trap();
	vshm_dev_vq_destroy(v);
	vshm_drv_vq_destroy(d);
	return 0;
}
