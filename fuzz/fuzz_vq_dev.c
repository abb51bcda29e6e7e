// SPDX-License-Identifier: MIT
/*
 * Device-side chain walker against an arbitrary window image.
 *
 * Input: 3 parameter bytes (ring size, features, segment limit), then bytes
 * copied over the driver area (the rings sit at its start).  The device
 * side pops and completes until the ring is empty or broken.  Its mapping
 * has the header and mailbox PROT_NONE and guard pages on both ends, so any
 * access outside the driver area crashes; every returned iov is checked to
 * lie inside the driver area and is read and written in full.
 */
#include <errno.h>
#include <stdint.h>

#include <vshm/vq.h>
#include "vq_fuzz_common.h"	/* hw: the hostile driver's view, dw: the device's */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vshm_iov iov[256];
	struct vshm_vq_layout l;
	struct vshm_dev_vq *v;
	struct vshm_chain c;
	uint64_t feat = 0;
	unsigned max_iov, pops = 0;
	int rc;

	if (!hw.base)
		vqf_windows();
	if (size < 3)
		return 0;
	if (data[1] & 1)
		feat |= 1ull << VSHM_F_EVENT_IDX;
	if (data[1] & 2)
		feat |= 1ull << VSHM_F_INDIRECT_DESC;
	max_iov = (data[2] % 255) + 1;
	if (vshm_vq_layout_split(&l, dw.drv_lo, 1u << (data[0] % 9), 0) < 0)
		return 0;
	vqf_image(data + 3, size - 3);

	if (vshm_dev_vq_create(&v, &dw, &l, feat, NULL))
		__builtin_trap();	/* our own layout must be accepted */
	while (pops < 4 * l.num && (rc = vshm_dev_vq_pop(v, &c, iov, max_iov)) == 1) {
		check_chain(&c, max_iov, l.num);
		vshm_dev_vq_push(v, c.head, (uint32_t)(c.in_bytes > UINT32_MAX ? UINT32_MAX : c.in_bytes));
		vshm_dev_vq_publish(v);
		pops++;
	}
	if (vshm_dev_vq_broken(v) && vshm_dev_vq_pop(v, &c, iov, max_iov) != -EIO)
		__builtin_trap();
	vshm_dev_vq_destroy(v);
	return 0;
}
