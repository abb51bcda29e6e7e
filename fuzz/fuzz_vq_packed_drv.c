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
#include <string.h>

#include <vshm/vq.h>
#include "barrier.h"
#include "vq_fuzz_common.h"	/* dw: the driver's view, hw: the hostile device's */

#define MAXQ 64u
#define NREC 4096u

struct pdesc {			/* virtio 1.x 2.8.13 */
	uint64_t addr;
	uint32_t len;
	uint16_t id;
	uint16_t flags;
};

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

	if (!dw.base)
		vqf_windows();
	if (size < 1)
		return 0;
	num = 1u << ((data[0] & 15) % 7);	/* 1 .. 64 */
	if (data[0] & 0x10)
		feat |= 1ull << VSHM_F_EVENT_IDX;
	if (data[0] & 0x20)
		feat |= 1ull << VSHM_F_INDIRECT_DESC;
	d = vqf_drv_open(&l, vshm_vq_layout_packed, num, 4, feat, &buf);
	if (vshm_dev_vq_create(&v, &hw, &l, feat, NULL))
		__builtin_trap();
	ring = (void *)(hw.base + l.desc);
	memset(recs, 0, sizeof(recs));

	while (i + 3 <= size && nrec < NREC) {
		uint8_t op = data[i], a = data[i + 1], b = data[i + 2];
		int broken = vshm_drv_vq_broken(d);

		i += 3;
		switch (op % 8) {
		case 0:		/* add a chain: a = shape, b = size */
			vqf_add(d, recs, &nrec, buf, 512, a, b, 0, vqf_add_flags(a), broken);
			break;
		case 1:
			vqf_publish(d, broken);
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
		case 4:		/* harvest up to a */
			vqf_harvest(d, recs, nrec, &returned, (unsigned)(a % 8) + 1, broken, NULL);
			break;
		case 5:
			vqf_callbacks(d, a, broken);
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
	vqf_detach_all(d, recs, nrec, returned, num);
	vshm_dev_vq_destroy(v);
	vshm_drv_vq_destroy(d);
	return 0;
}
