// SPDX-License-Identifier: MIT
/*
 * FIFO ring, device side, against an arbitrary driver.
 *
 * Input: 3 parameter bytes (ids, ring sizes, segment limit), then a
 * program: the hostile driver writes frames (well-formed or raw), marks of
 * its choosing near its position, V2D head anywhere, pokes any word of its
 * D2V block (the size word included); the device pops, pushes in any order,
 * publishes and arms notifications in between.  A frame is produced by its
 * mark, so where the driver writes one it picks, from the input, either
 * the correct mark for the position (well-formed frames then pop and the
 * device goes deep into the ring) or any 32-bit word.  The well-formed
 * writer does what an honest driver does: it keeps the 16 bytes after its
 * frames free and zeroed, and may hold back the mark of the first frame of
 * a batch until a later step publishes it; flags from the input make it
 * break each of those rules.  The device's mapping has the header and
 * mailbox PROT_NONE and guard pages on both ends.
 *
 * Checked after every step: an iov lies inside the data area of the right
 * ring and is read and written in full; a chain has at most max_iov
 * segments and its byte counts match its iovs; push of a held id succeeds
 * while the queue is healthy; once broken, every call returns -EIO.  The
 * honest driver's harvest checks every frame the device released: marked
 * with its own position, a PAD only where a frame did not fit, completions
 * in pop order, exactly as long as their reservations, written no larger
 * than in_len, and 16 bytes short of the V2D head it released.  At the
 * end: the device wrote nothing in D2V but its head and event, nothing in
 * V2D's driver-owned words, nothing outside the two blocks.
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
#define MAXPOP	4096u			/* pops in one program, at most */

static uint8_t shadow[AREA];		/* what the driver area should hold */

static inline uint32_t flen(uint32_t n)
{
	return (16 + n + 15) & ~15u;
}

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

/* A mark: stored last, with release, as a producer must. */
static void hmark(uint64_t data, uint32_t size, uint32_t pos, uint32_t mark)
{
	uint64_t off = data + (pos & (size - 1));

	vshm_store_release((uint32_t *)(void *)(hw.base + hw.drv_lo + off), mark);
	memcpy(shadow + off, &mark, 4);
}

/* A frame header without its mark (0 until hmark). */
static void hframe(uint64_t data, uint32_t size, uint32_t pos, uint16_t id, uint16_t zero,
		   uint32_t a, uint32_t b)
{
	struct vshm_fifo_frame f = { 0, id, zero, a, b };

	hwrite(data + (pos & (size - 1)), &f, sizeof(f));
}

/* Did the device write only where it may?  Refresh the shadow of those. */
static void check_writes(const struct vshm_vq_layout *l, uint32_t vsize)
{
	uint64_t d = l->desc - hw.drv_lo, v = l->avail - hw.drv_lo;

	/* Device-owned: D2V head and event, the V2D data area. */
	memcpy(shadow + d, hw.base + l->desc, 4);
	memcpy(shadow + d + 64, hw.base + l->desc + 64, 4);
	memcpy(shadow + v + VSHM_FIFO_CTRL_SIZE, hw.base + l->avail + VSHM_FIFO_CTRL_SIZE, vsize);
	if (memcmp(shadow, hw.base + hw.drv_lo, AREA))
		__builtin_trap();
}

static int iov_in(const struct vshm_iov *v, const uint8_t *data, uint32_t size)
{
	const uint8_t *p = v->base;

	return v->len && p >= data + 16 && p <= data + size && v->len <= (uint64_t)(data + size - p);
}

/* Signed distance from @b to @a on free-running positions. */
static inline int32_t ahead(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b);
}

/* The honest driver's V2D consumer, and what it knows of the device's pops. */
static struct {
	uint32_t head;		/* next V2D byte to read */
	uint32_t rel;		/* the furthest V2D head stored that was no lie */
	int lied;		/* a V2D head past what was read (or too many
				   pops to track): stop checking */
	uint16_t popped[MAXPOP];	/* ids in pop order, free-running */
	uint32_t in_len[MAXPOP];	/* and their in_len */
	uint32_t pop_head, pop_tail;
} hv;

/*
 * The honest driver harvests what the device released from hv.head on.
 * Every mark it meets there is the device's (the driver never writes V2D
 * data), so unless a lie let the device overwrite unread frames, each
 * frame must be valid; after a lie the walk goes on unchecked while the
 * frames look valid.
 */
static void harvest(const uint8_t *vdata, uint32_t vsize, uint32_t num)
{
	for (unsigned k = 0; k < 2 * vsize / 16; k++) {
		const struct vshm_fifo_frame *f = (const void *)(vdata + (hv.head & (vsize - 1)));
		uint32_t m = vshm_load_acquire(&f->mark), rest = vsize - (hv.head & (vsize - 1));
		uint32_t len = 0, inl;
		int ok = VSHM_FIFO_MARK_POS(m) == hv.head && !f->zero;

		if (m == 0)
			return;
		switch (VSHM_FIFO_MARK_TYPE(m)) {
		case VSHM_FIFO_PAD:
			len = rest;
			ok = ok && rest < vsize / 2 && !f->id && !f->a && !f->b;
			break;
		case VSHM_FIFO_COMPLETION:
			/* Released in pop order, exactly the reservation long. */
			ok = ok && hv.pop_head != hv.pop_tail;
			if (!ok)
				break;
			inl = hv.in_len[hv.pop_head % MAXPOP];
			len = flen(inl);
			ok = f->id < num && f->id == hv.popped[hv.pop_head % MAXPOP] &&
			     f->a <= inl && !f->b && len <= rest;
			break;
		default:
			ok = 0;
			break;
		}
		if (!ok) {
			if (hv.lied)
				return;
			__builtin_trap();
		}
		/* The device keeps the 16 bytes after its frames free. */
		if (!hv.lied && (uint32_t)(hv.head + len - hv.rel) > vsize - 16)
			__builtin_trap();
		if (VSHM_FIFO_MARK_TYPE(m) == VSHM_FIFO_COMPLETION)
			hv.pop_head++;
		hv.head += len;
	}
}

/* V2D head: where the harvest got to, moved by @delta slots (odd: bytes). */
static void release_v2d(const struct vshm_vq_layout *l, int8_t delta)
{
	uint32_t h = hv.head + (uint32_t)(delta * (delta & 1 ? 1 : 16));

	/* An odd one is refused if loaded: it releases nothing. */
	if (!(delta & 1)) {
		if (delta > 0)
			hv.lied = 1;
		else if (ahead(h, hv.rel) > 0)
			hv.rel = h;
	}
	hput32(l->avail - hw.drv_lo, h);
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
	uint32_t held_pos = 0, held_mark = 0;	/* a batch's first mark, held back */
	int holding = 0;
	uint64_t dd;		/* D2V data area, driver-area relative */
	uint8_t *ddata, *vdata;		/* the same, device's view */
	uint8_t p0, p1;
	int rc;

	if (!hw.base)
		vqf_windows();
	if (size < 3)
		return 0;
	memset(&hv, 0, sizeof(hv));
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
		/*
		 * A well-formed REQUEST (PAD first if needed), honest unless
		 * its flags say: bit 0 holds back the batch's first mark for
		 * case 2, bit 1 ignores the room the device released, bit 2
		 * takes a raw mark for the REQUEST, bit 3 leaves the slot
		 * after as it is, bit 4 runs the REQUEST over the end of the
		 * data area instead of writing a PAD.
		 */
		case 0: {
			uint8_t fl = (uint8_t)get(&in, 1);
			uint16_t id = (uint16_t)(get(&in, 1) % (num + 1));
			uint32_t out = get(&in, 2) % (dsize / 2), inl = get(&in, 2) % (vsize / 2);
			uint32_t len = flen(out), rest = dsize - (hpos & (dsize - 1));
			uint32_t pad = rest < len && !(fl & 16) ? rest : 0, pos = hpos + pad;
			uint32_t first, rmark, room;
			uint32_t head = vshm_load_acquire((uint32_t *)(void *)(hw.base + l.desc));
			uint8_t fill[MAXR / 2];

			if (len > dsize / 2)
				break;
			if (!(fl & 2) && (uint32_t)(hpos - head) + pad + len + 16 > dsize)
				break;	/* an honest driver waits for room */
			rmark = fl & 4 ? get(&in, 4) : VSHM_FIFO_MARK(pos, VSHM_FIFO_REQUEST);
			/* The data, up to the end of the data area at most. */
			memset(fill, op, len - 16);
			room = dsize - (pos & (dsize - 1));
			hwrite(dd + ((pos + 16) & (dsize - 1)), fill, (len < room ? len : room) - 16);
			hframe(dd, dsize, pos, id, 0, out, inl);
			if (pad)
				hframe(dd, dsize, hpos, 0, 0, 0, 0);
			if (!(fl & 8))
				hmark(dd, dsize, pos + len, 0);
			/* Frames behind the batch's first get their marks now;
			 * the first's comes last (or is held back). */
			first = pad ? VSHM_FIFO_MARK(hpos, VSHM_FIFO_PAD) : rmark;
			if (pad)
				hmark(dd, dsize, pos, rmark);
			if (holding) {
				hmark(dd, dsize, hpos, first);
			} else if (fl & 1) {
				holding = 1;
				held_pos = hpos;
				held_mark = first;
				hmark(dd, dsize, hpos, 0);
			} else {
				hmark(dd, dsize, hpos, first);
			}
			hpos = pos + len;
			break;
		}
		case 1: {	/* a raw header, any mark, then move on by any multiple of 16 */
			uint8_t sel = (uint8_t)get(&in, 1);
			uint32_t mark = sel & 1 ? get(&in, 4) : VSHM_FIFO_MARK(hpos, sel >> 4);
			uint32_t a = get(&in, 4), b = get(&in, 4);
			uint16_t id = (uint16_t)get(&in, 2), zero = sel & 2 ? (uint16_t)get(&in, 2) : 0;
			uint32_t adv = get(&in, 1) * 16u;

			hframe(dd, dsize, hpos, id, zero, a, b);
			hmark(dd, dsize, hpos, mark);
			hpos += adv;
			break;
		}
		case 2: {	/* publish the held mark, or a mark word near our position */
			uint8_t sel = (uint8_t)get(&in, 1);
			int8_t delta = (int8_t)get(&in, 1);
			uint32_t p = hpos + (uint32_t)(delta * 16), m;

			if (holding && !(sel & 0x80)) {
				hmark(dd, dsize, held_pos, held_mark);
				holding = 0;
				break;
			}
			switch (sel & 3) {
			case 0: m = 0; break;
			case 1: m = VSHM_FIFO_MARK(p, (sel >> 2) & 15); break;
			case 2: m = VSHM_FIFO_MARK(p + (sel & 4 ? dsize : -dsize), (sel >> 3) & 15); break;
			default: m = get(&in, 4); break;
			}
			hmark(dd, dsize, p, m);
			break;
		}
		case 3:		/* V2D head: where the harvest got, or not */
			harvest(vdata, vsize, num);
			release_v2d(&l, (int8_t)get(&in, 1));
			break;
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
				if (hv.pop_tail - hv.pop_head >= MAXPOP) {
					hv.lied = 1;	/* lost track: stop checking */
					continue;
				}
				hv.popped[hv.pop_tail % MAXPOP] = c.head;
				hv.in_len[hv.pop_tail++ % MAXPOP] = (uint32_t)c.in_bytes;
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
			harvest(vdata, vsize, num);
			release_v2d(&l, 0);
			break;
		}
		check_writes(&l, vsize);
	}
	if (vshm_dev_vq_broken(v) && vshm_dev_vq_pop(v, &c, iov, 2) != -EIO)
		__builtin_trap();
	vshm_dev_vq_destroy(v);
	return 0;
}
