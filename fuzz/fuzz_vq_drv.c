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
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <vshm/vq.h>
#include "barrier.h"

#define WIN (1u << 20)
#define MAXQ 64u

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
	static struct rec recs[4096];
	struct vshm_vq_layout l;
	struct vshm_drv_vq *d;
	struct vshm_vring_used *used;
	uint64_t feat = (1ull << VSHM_F_EVENT_IDX) | (1ull << VSHM_F_INDIRECT_DESC);
	uint64_t buf;
	unsigned nrec = 0, returned = 0, num;
	size_t i = 1;
	int64_t lay;

	if (!dw.base)
		setup();
	if (size < 1)
		return 0;
	num = 1u << (data[0] % 7);	/* 1 .. 64 */
	lay = vshm_vq_layout_split(&l, dw.drv_lo, num, 4);
	memset(hw.base + hw.drv_lo, 0, (size_t)lay);
	if (vshm_drv_vq_create(&d, &dw, &l, feat, NULL))
		__builtin_trap();
	used = (void *)(hw.base + l.used);
	buf = dw.drv_lo + (uint64_t)((lay + 4095) & ~4095);
	memset(recs, 0, sizeof(recs));

	while (i + 3 <= size && nrec < 4096) {
		uint8_t op = data[i], a = data[i + 1], b = data[i + 2];
		int broken = vshm_drv_vq_broken(d), rc;

		i += 3;
		switch (op % 6) {
		case 0: {	/* add a chain: a = shape, b = size */
			struct vshm_sg sg[6];
			unsigned nout = a & 3, nin = (a >> 2) & 3;

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
			rc = vshm_drv_vq_add_ex(d, sg, nout, nin, &recs[nrec],
						(a & 0x80) ? VSHM_ADD_NO_INDIRECT : 0);
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
		}
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
	vshm_drv_vq_destroy(d);
	return 0;
}
