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
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <vshm/vq.h>

#define WIN (1u << 20)

static struct vshm_window hw, dw;	/* hostile driver's view, device's view */

static void setup(void)
{
	struct vshm_window_opts o = { .size = WIN, .vectors = 1 };

	if (vshm_window_create(&hw, &o) || vshm_window_map(&dw, hw.fd) ||
	    vshm_window_protect_ctrl(&dw, PROT_NONE))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vshm_iov iov[256];
	struct vshm_vq_layout l;
	struct vshm_dev_vq *v;
	struct vshm_chain c;
	uint64_t feat = 0, area = dw.drv_hi - dw.drv_lo;
	unsigned max_iov, pops = 0;
	size_t img;
	int rc;

	if (!hw.base)
		setup();
	if (size < 3)
		return 0;
	if (data[1] & 1)
		feat |= 1ull << VSHM_F_EVENT_IDX;
	if (data[1] & 2)
		feat |= 1ull << VSHM_F_INDIRECT_DESC;
	max_iov = (data[2] % 255) + 1;
	if (vshm_vq_layout_split(&l, dw.drv_lo, 1u << (data[0] % 9), 0) < 0)
		return 0;
	img = size - 3 < area ? size - 3 : area;
	memset(hw.base + hw.drv_lo, 0, img + 65536 < area ? img + 65536 : area);
	memcpy(hw.base + hw.drv_lo, data + 3, img);

	if (vshm_dev_vq_create(&v, &dw, &l, feat, NULL))
		__builtin_trap();	/* our own layout must be accepted */
	while (pops < 4 * l.num && (rc = vshm_dev_vq_pop(v, &c, iov, max_iov)) == 1) {
		uint64_t out = 0, in = 0;

		if ((unsigned)c.nout + c.nin > max_iov)
			__builtin_trap();
		for (unsigned k = 0; k < (unsigned)c.nout + c.nin; k++) {
			uint8_t *p = c.iov[k].base;
			uint64_t off = (uint64_t)(p - dw.base);

			if (!vshm_win_range_ok(&dw, off, c.iov[k].len) || c.iov[k].len == 0)
				__builtin_trap();
			if (k < c.nout) {
				volatile uint8_t sink = p[0] ^ p[c.iov[k].len - 1];
				(void)sink;
				out += c.iov[k].len;
			} else {
				p[0] = 0xa5;
				p[c.iov[k].len - 1] = 0x5a;
				in += c.iov[k].len;
			}
		}
		if (out != c.out_bytes || in != c.in_bytes || out + in > (1ull << 32))
			__builtin_trap();
		vshm_dev_vq_push(v, c.head, (uint32_t)(in > UINT32_MAX ? UINT32_MAX : in));
		vshm_dev_vq_publish(v);
		pops++;
	}
	if (vshm_dev_vq_broken(v) && vshm_dev_vq_pop(v, &c, iov, max_iov) != -EIO)
		__builtin_trap();
	vshm_dev_vq_destroy(v);
	return 0;
}
