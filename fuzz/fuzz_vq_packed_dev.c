// SPDX-License-Identifier: MIT
/*
 * Device-side packed-ring chain walker against an arbitrary driver.
 *
 * Input: 5 parameter bytes (ring size, features and hold mode, segment
 * limit, le16 image length), the image copied over the driver area (the
 * ring sits at its start), then 17-byte records: a slot and a descriptor
 * the hostile driver writes there (flags last, with release) once the
 * device has run dry, so rings can be driven through several laps.
 * The device pops until empty or broken; in hold mode it keeps up to four
 * chains and completes them out of order.  Its mapping has the header and
 * mailbox PROT_NONE and guard pages on both ends, so any access outside
 * the driver area crashes; every returned iov is checked to lie inside the
 * driver area and is read and written in full.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <vshm/vq.h>
#include "barrier.h"
#include "vq_fuzz_common.h"	/* hw: the hostile driver's view, dw: the device's */

#define HOLD 4u
#define MAX_IOV 256u

struct pdesc {			/* virtio 1.x 2.8.13 */
	uint64_t addr;
	uint32_t len;
	uint16_t id;
	uint16_t flags;
};

static void complete(struct vshm_dev_vq *v, struct vshm_chain *c)
{
	if (vshm_dev_vq_push(v, c->head, (uint32_t)(c->in_bytes > UINT32_MAX ? UINT32_MAX : c->in_bytes)) &&
	    !vshm_dev_vq_broken(v))
		__builtin_trap();	/* a chain we popped must be pushable */
	vshm_dev_vq_publish(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vshm_iov iov[HOLD + 1][MAX_IOV];
	struct vshm_chain held[HOLD + 1];
	struct vshm_vq_layout l;
	struct vshm_dev_vq *v;
	struct pdesc *ring;
	uint64_t feat = 1ull << VSHM_F_RING_PACKED;
	unsigned max_iov, pops = 0, nheld = 0, hold;
	size_t img, pos;
	int rc;

	if (!hw.base)
		vqf_windows();
	if (size < 5)
		return 0;
	if (data[1] & 1)
		feat |= 1ull << VSHM_F_EVENT_IDX;
	if (data[1] & 2)
		feat |= 1ull << VSHM_F_INDIRECT_DESC;
	hold = data[1] & 4;
	max_iov = (unsigned)data[2] + 1;	/* 1 .. MAX_IOV */
	if (vshm_vq_layout_packed(&l, dw.drv_lo, 1u << (data[0] % 9), 0) < 0)
		return 0;
	img = (size_t)data[3] | (size_t)data[4] << 8;
	if (img > size - 5)
		img = size - 5;
	if (img > hw.drv_hi - hw.drv_lo)
		img = hw.drv_hi - hw.drv_lo;
	vqf_image(data + 5, img);
	pos = 5 + img;
	ring = (struct pdesc *)(void *)(hw.base + l.desc);

	if (vshm_dev_vq_create(&v, &dw, &l, feat, NULL))
		__builtin_trap();	/* our own layout must be accepted */
	for (;;) {
		while (pops < 8 * l.num + 64 &&
		       (rc = vshm_dev_vq_pop(v, &held[nheld], iov[nheld], max_iov)) == 1) {
			held[nheld].iov = iov[nheld];
			check_chain(&held[nheld], max_iov, l.num);
			for (unsigned k = 0; k < nheld; k++)
				if (held[k].head == held[nheld].head)
					__builtin_trap();	/* an id popped twice */
			pops++;
			if (!hold) {
				complete(v, &held[nheld]);
				continue;
			}
			if (++nheld == HOLD) {
				/* complete one out of order, keep the rest */
				unsigned pick = pops % HOLD;

				complete(v, &held[pick]);
				nheld--;
				if (pick != nheld) {
					held[pick] = held[nheld];
					memcpy(iov[pick], iov[nheld], sizeof(iov[0][0]) *
					       ((unsigned)held[pick].nout + held[pick].nin));
					held[pick].iov = iov[pick];
				}
			}
		}
		if (vshm_dev_vq_broken(v) || pos + 17 > size || pops >= 8 * l.num + 64)
			break;
		/* The hostile driver writes one more descriptor. */
		{
			struct pdesc d;
			struct pdesc *s = &ring[data[pos] % l.num];

			memcpy(&d, data + pos + 1, sizeof(d));
			s->addr = d.addr;
			s->len = d.len;
			s->id = d.id;
			vshm_store_release(&s->flags, d.flags);
			pos += 17;
		}
		if (vshm_dev_vq_enable_notify(v) < 0)
			break;
		vshm_dev_vq_disable_notify(v);
	}
	for (unsigned k = 0; k < nheld; k++)
		complete(v, &held[k]);
	if (vshm_dev_vq_broken(v) && (vshm_dev_vq_pop(v, &held[0], iov[0], max_iov) != -EIO ||
				      vshm_dev_vq_error(v) == NULL))
		__builtin_trap();
	vshm_dev_vq_destroy(v);
	return 0;
}
