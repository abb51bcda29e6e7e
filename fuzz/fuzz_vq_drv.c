// SPDX-License-Identifier: MIT
/*
 * Driver-side used-ring harvesting against an arbitrary device.
 *
 * The input is a program: the driver posts real chains (shapes from the
 * input) and the "device" writes whatever the input says into the used
 * ring.  Invariants checked after every step: a harvested cookie is a chain
 * in flight, harvested once, with a length no larger than what it posted;
 * once broken, every call returns -EIO; in the end every chain is returned
 * exactly once (harvested or detached) and every descriptor is free again.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <vshm/vq.h>
#include "barrier.h"
#include "vq_fuzz_common.h"	/* dw: the driver's view, hw: the hostile device's */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rec recs[4096];
	struct vshm_vq_layout l;
	struct vshm_drv_vq *d;
	struct vshm_vring_used *used;
	uint64_t feat = (1ull << VSHM_F_EVENT_IDX) | (1ull << VSHM_F_INDIRECT_DESC);
	uint64_t buf;
	unsigned nrec = 0, returned = 0, num;
	size_t i = 1;

	if (!dw.base)
		vqf_windows();
	if (size < 1)
		return 0;
	num = 1u << (data[0] % 7);	/* 1 .. 64 */
	d = vqf_drv_open(&l, vshm_vq_layout_split, num, 4, feat, &buf);
	used = (void *)(hw.base + l.used);
	memset(recs, 0, sizeof(recs));

	while (i + 3 <= size && nrec < 4096) {
		uint8_t op = data[i], a = data[i + 1], b = data[i + 2];
		int broken = vshm_drv_vq_broken(d);

		i += 3;
		switch (op % 6) {
		case 0:		/* add a chain: a = shape (0x80 no table), b = size */
			vqf_add(d, recs, &nrec, buf, 512, a, b, 0,
				(a & 0x80) ? VSHM_ADD_NO_INDIRECT : 0, broken);
			break;
		case 1:
			vqf_publish(d, broken);
			break;
		case 2: {	/* device writes a used element: slot a, id b, len */
			uint32_t len = i + 1 < size ? (uint32_t)data[i] << (data[i + 1] % 25) : 0;

			i += 2;
			used->ring[a % num].id = b % 2 ? b : b % (num + 2);
			used->ring[a % num].len = len;
			break;
		}
		case 3:		/* device moves used->idx by a (signed) */
			vshm_store_release(&used->idx, (uint16_t)(used->idx + (int8_t)a));
			break;
		case 4:		/* harvest up to a */
			vqf_harvest(d, recs, nrec, &returned, (unsigned)(a % 8) + 1, broken, NULL);
			break;
		case 5:
			vqf_callbacks(d, a, broken);
			break;
		}
	}
	vqf_detach_all(d, recs, nrec, returned, num);
	vshm_drv_vq_destroy(d);
	return 0;
}
