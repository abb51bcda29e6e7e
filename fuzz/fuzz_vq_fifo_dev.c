// SPDX-License-Identifier: MIT
/*
 * FIFO ring, device side, against an arbitrary driver.
 *
 * Input: 3 parameter bytes (ids, ring sizes, segment limit), then a
 * program: the hostile driver writes frames (well-formed or raw), moves
 * D2V tail and V2D head anywhere, pokes any word of its ring blocks (the
 * size words included); the device pops, pushes in any order, publishes
 * and arms notifications in between.  The device's mapping has the header
 * and mailbox PROT_NONE and guard pages on both ends.
 *
 * Checked after every step: an iov lies inside the data area of the right
 * ring and is read and written in full; a chain has at most max_iov
 * segments and its byte counts match its iovs; push of a held id succeeds
 * while the queue is healthy; once broken, every call returns -EIO.  At
 * the end: the device wrote nothing in D2V but its head and event, nothing
 * in V2D's driver-owned words, nothing outside the two blocks.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <vshm/vq.h>
#include "barrier.h"
#include "vq_fuzz_common.h"	/* hw: the hostile driver's view, dw: the device's */

#define MAXR	8192u			/* largest data area used here */
#define BLOCK	(VSHM_FIFO_CTRL_SIZE + MAXR)
#define AREA	(2 * BLOCK + 65536)	/* what is compared against a shadow */

static uint8_t shadow[AREA];		/* what the driver area should hold */

/* The hostile driver writes: window and shadow alike. */
static void hwrite(uint64_t off, const void *src, size_t len)
{
	memcpy(hw.base + hw.drv_lo + off, src, len);
	memcpy(shadow + off, src, len);
}

static void hput32(uint64_t off, uint32_t v)
{
	hwrite(off, &v, 4);
}

static void hframe(uint64_t data, uint32_t size, uint32_t pos, uint32_t len, uint16_t type,
		   uint16_t id, uint32_t a, uint32_t b)
{
	struct vshm_fifo_frame f = { len, type, id, a, b };

	hwrite(data + (pos & (size - 1)), &f, sizeof(f));
}

/* Did the device write only where it may?  Refresh the shadow of those. */
static void check_writes(const struct vshm_vq_layout *l, uint32_t vsize)
{
	uint64_t d = l->desc - hw.drv_lo, v = l->avail - hw.drv_lo;

	/* Device-owned words: D2V head and event, V2D tail and data. */
	memcpy(shadow + d + 64, hw.base + l->desc + 64, 8);
	memcpy(shadow + v, hw.base + l->avail, 4);
	memcpy(shadow + v + VSHM_FIFO_CTRL_SIZE, hw.base + l->avail + VSHM_FIFO_CTRL_SIZE, vsize);
	if (memcmp(shadow, hw.base + hw.drv_lo, AREA))
		__builtin_trap();
}

static int iov_in(const struct vshm_iov *v, const uint8_t *data, uint32_t size)
{
	const uint8_t *p = v->base;

	return v->len && p >= data + 16 && p <= data + size && v->len <= (uint64_t)(data + size - p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { data, size, 0 };
	struct vshm_vq_layout l;
	struct vshm_dev_vq *v;
	struct vshm_chain c;
	struct vshm_iov iov[4];
	uint16_t held[64];
	uint32_t in_len[64];
	unsigned nheld = 0, max_iov, num, steps = 0;
	uint32_t dsize, vsize, hpos = 0;
	uint64_t dd;		/* D2V data area, driver-area relative */
	uint8_t *ddata, *vdata;		/* the same, device's view */
	uint8_t p0, p1;
	int rc;

	if (!hw.base)
		vqf_windows();
	if (size < 3)
		return 0;
	p0 = (uint8_t)get(&in, 1);
	p1 = (uint8_t)get(&in, 1);
	max_iov = get(&in, 1) % 3;
	num = 1u << (p0 % 7);
	dsize = p1 & 1 ? 8192 : 4096;
	vsize = p1 & 2 ? 8192 : 4096;
	if (vshm_vq_layout_fifo(&l, dw.drv_lo, num, MAXR) < 0)
		return 0;
	dd = l.desc - dw.drv_lo + VSHM_FIFO_CTRL_SIZE;
	ddata = dw.base + l.desc + VSHM_FIFO_CTRL_SIZE;
	vdata = dw.base + l.avail + VSHM_FIFO_CTRL_SIZE;

	/* The driver's setup: zeroed blocks and the two sizes. */
	memset(hw.base + hw.drv_lo, 0, AREA);
	memset(shadow, 0, AREA);
	hput32(l.desc - dw.drv_lo + 128, dsize);
	hput32(l.avail - dw.drv_lo + 128, vsize);
	if (p1 & 4) {		/* a raw size word, valid or not */
		uint32_t raw = get(&in, 4);

		hput32(l.desc - dw.drv_lo + 128, raw);
		if (raw == 4096 || raw == 8192)
			dsize = raw;	/* the only others that fit */
	}
	if (vshm_dev_vq_create(&v, &dw, &l, 1ull << VSHM_F_FIFO_RING, NULL))
		return 0;
	check_writes(&l, vsize);

	while (in.i < in.n && steps++ < 512) {
		uint8_t op = (uint8_t)get(&in, 1);
		int broken = vshm_dev_vq_broken(v);

		switch (op % 10) {
		case 0: {	/* a well-formed REQUEST (PAD first if needed) */
			uint16_t id = (uint16_t)(get(&in, 1) % (num + 1));
			uint32_t out = get(&in, 2) % (dsize / 2), inl = get(&in, 2) % (vsize / 2);
			uint32_t len = (16 + out + 15) & ~15u, rest = dsize - (hpos & (dsize - 1));
			uint8_t fill[MAXR / 2];

			if (len > dsize / 2)
				break;
			if (rest < len) {
				hframe(dd, dsize, hpos, rest, VSHM_FIFO_PAD, 0, 0, 0);
				hpos += rest;
			}
			hframe(dd, dsize, hpos, len, VSHM_FIFO_REQUEST, id, out, inl);
			memset(fill, op, len - 16);
			hwrite(dd + ((hpos + 16) & (dsize - 1)), fill, len - 16);
			hpos += len;
			break;
		}
		case 1: {	/* a raw header, then move on by any multiple of 16 */
			uint32_t len = get(&in, 2), a = get(&in, 4), b = get(&in, 4);
			uint16_t type = (uint16_t)(get(&in, 1) & 3), id = (uint16_t)get(&in, 2);
			uint32_t adv = get(&in, 1) * 16u;

			hframe(dd, dsize, hpos & ~15u, len, type, id, a, b);
			hpos += adv;
			break;
		}
		case 2: {	/* publish D2V tail, maybe off by a bit */
			int8_t delta = (int8_t)get(&in, 1);
			uint8_t raw = (uint8_t)get(&in, 1);

			vshm_store_release((uint32_t *)(void *)(hw.base + l.desc), hpos + (uint32_t)(delta * (raw & 1 ? 1 : 16)));
			memcpy(shadow + l.desc - dw.drv_lo, hw.base + l.desc, 4);
			break;
		}
		case 3: {	/* V2D head: caught up with the device's tail, or not */
			uint32_t t = vshm_load_acquire((uint32_t *)(void *)(hw.base + l.avail));
			int8_t delta = (int8_t)get(&in, 1);

			hput32(l.avail - dw.drv_lo + 64, t + (uint32_t)(delta * 16));
			break;
		}
		case 4: {	/* pop a few */
			unsigned k = get(&in, 1) % 8 + 1;

			while (k--) {
				rc = vshm_dev_vq_pop(v, &c, iov, max_iov);
				if (broken && rc != -EIO)
					__builtin_trap();
				if (rc != 1)
					break;
				if ((unsigned)c.nout + c.nin > max_iov || c.nout > 1 || c.nin > 1 ||
				    c.head >= num || nheld >= 64)
					__builtin_trap();
				if (c.nout && (!iov_in(&iov[0], ddata, dsize) || iov[0].len != c.out_bytes))
					__builtin_trap();
				if (!c.nout && c.out_bytes)
					__builtin_trap();
				if (c.nin && (!iov_in(&iov[c.nout], vdata, vsize) || iov[c.nout].len != c.in_bytes))
					__builtin_trap();
				if (!c.nin && c.in_bytes)
					__builtin_trap();
				if (c.nout) {
					volatile uint8_t sink = 0;
					const uint8_t *p = iov[0].base;

					for (uint32_t j = 0; j < iov[0].len; j++)
						sink ^= p[j];
					(void)sink;
				}
				if (c.nin)
					memset(iov[c.nout].base, 0xa5, iov[c.nout].len);
				held[nheld] = c.head;
				in_len[nheld++] = (uint32_t)c.in_bytes;
			}
			break;
		}
		case 5: {	/* push one held request, written maybe too big */
			unsigned k = get(&in, 1);
			uint32_t w = get(&in, 2);

			if (!nheld) {
				if (vshm_dev_vq_push(v, (uint16_t)k, w) != (broken ? -EIO : -EINVAL))
					__builtin_trap();
				break;
			}
			k %= nheld;
			rc = vshm_dev_vq_push(v, held[k], w);
			if (rc != (broken ? -EIO : 0))
				__builtin_trap();
			held[k] = held[--nheld];
			in_len[k] = in_len[nheld];
			break;
		}
		case 6:
			rc = vshm_dev_vq_publish(v);
			if (broken ? rc != -EIO : rc < 0)
				__builtin_trap();
			break;
		case 7:
			if (get(&in, 1) & 1) {
				vshm_dev_vq_disable_notify(v);
			} else {
				rc = vshm_dev_vq_enable_notify(v);
				if (broken && rc != -EIO)
					__builtin_trap();
			}
			break;
		case 8: {	/* poke any word of the D2V block, size included */
			uint32_t off = (get(&in, 2) % (VSHM_FIFO_CTRL_SIZE + dsize)) & ~3u;

			hput32(l.desc - dw.drv_lo + off, get(&in, 4));
			break;
		}
		case 9:		/* complete everything, publish, the driver harvests */
			while (nheld) {
				nheld--;
				if (vshm_dev_vq_push(v, held[nheld], in_len[nheld]) != (broken ? -EIO : 0))
					__builtin_trap();
			}
			rc = vshm_dev_vq_publish(v);
			if (broken ? rc != -EIO : rc < 0)
				__builtin_trap();
			hput32(l.avail - dw.drv_lo + 64,
			       vshm_load_acquire((uint32_t *)(void *)(hw.base + l.avail)));
			break;
		}
		check_writes(&l, vsize);
	}
	if (vshm_dev_vq_broken(v) && vshm_dev_vq_pop(v, &c, iov, 2) != -EIO)
		__builtin_trap();
	vshm_dev_vq_destroy(v);
	return 0;
}
