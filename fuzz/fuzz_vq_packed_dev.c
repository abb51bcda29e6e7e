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
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <vshm/vq.h>
#include "barrier.h"

#define WIN (1u << 20)
#define HOLD 4u
#define MAX_IOV 256u

struct pdesc {			/* virtio 1.x 2.8.13 */
	uint64_t addr;
	uint32_t len;
	uint16_t id;
	uint16_t flags;
};

static struct vshm_window hw, dw;	/* hostile driver's view, device's view */

static void setup(void)
{
	struct vshm_window_opts o = { .size = WIN, .vectors = 1 };

	if (vshm_window_create(&hw, &o) || vshm_window_map(&dw, hw.fd) ||
	    vshm_window_protect_ctrl(&dw, PROT_NONE))
		abort();
}

static void check_chain(const struct vshm_chain *c, unsigned max_iov, uint32_t num)
{
	uint64_t out = 0, in = 0;

	if ((unsigned)c->nout + c->nin > max_iov || c->head >= num)
		__builtin_trap();
	for (unsigned k = 0; k < (unsigned)c->nout + c->nin; k++) {
		uint8_t *p = c->iov[k].base;
		uint64_t off = (uint64_t)(p - dw.base);

		if (!vshm_win_range_ok(&dw, off, c->iov[k].len) || c->iov[k].len == 0)
			__builtin_trap();
		if (k < c->nout) {
			volatile uint8_t sink = p[0] ^ p[c->iov[k].len - 1];
			(void)sink;
			out += c->iov[k].len;
		} else {
			p[0] = 0xa5;
			p[c->iov[k].len - 1] = 0x5a;
			in += c->iov[k].len;
		}
	}
	if (out != c->out_bytes || in != c->in_bytes || out + in > (1ull << 32))
		__builtin_trap();
}

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
	uint64_t feat = 1ull << VSHM_F_RING_PACKED, area;
	unsigned max_iov, pops = 0, nheld = 0, hold;
	size_t img, pos;
	int rc;

	if (!hw.base)
		setup();
	if (size < 5)
		return 0;
	area = dw.drv_hi - dw.drv_lo;
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
	if (img > area)
		img = area;
	memset(hw.base + hw.drv_lo, 0, img + 65536 < area ? img + 65536 : area);
	memcpy(hw.base + hw.drv_lo, data + 5, img);
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
