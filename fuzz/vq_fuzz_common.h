/* SPDX-License-Identifier: MIT */
/*
 * What the ring fuzz targets share (fuzz_vq_{,packed_,fifo_}{dev,drv}.c and
 * fuzz_interleave.c): the two mappings of one window, an input reader, the
 * checks on a popped chain and on every cookie a driver gives back, the
 * driver's operations that read the same in every program (add a chain,
 * harvest, callbacks) and the final accounting of every chain.
 *
 * Every check traps: the fuzzer reports a trap as a crash.
 */
#ifndef VSHM_FUZZ_VQ_COMMON_H
#define VSHM_FUZZ_VQ_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <vshm/vq.h>

#define WIN	(1u << 20)

/*
 * hw: the hostile peer's view, all of it read-write.  dw: the view of the
 * side under test, header and mailbox PROT_NONE and guard pages on both
 * ends, so any access outside the driver area crashes.
 */
static struct vshm_window hw, dw;

static inline void vqf_windows(void)
{
	struct vshm_window_opts o = { .size = WIN, .vectors = 1 };

	if (vshm_window_create(&hw, &o) || vshm_window_map(&dw, hw.fd) ||
	    vshm_window_protect_ctrl(&dw, PROT_NONE))
		abort();
}

/* The input, read little-endian; past its end, zeros. */
struct in {
	const uint8_t *p;
	size_t n, i;
};

static inline uint32_t get(struct in *in, unsigned bytes)
{
	uint32_t v = 0;

	for (unsigned k = 0; k < bytes; k++)
		v |= (uint32_t)(in->i < in->n ? in->p[in->i++] : 0) << (8 * k);
	return v;
}

/*
 * The hostile driver's image: @n bytes over the start of the driver area,
 * zeros for 64 KiB after them (where the rings and tables sit).
 */
static inline void vqf_image(const uint8_t *img, size_t n)
{
	uint64_t area = hw.drv_hi - hw.drv_lo;

	if (n > area)
		n = area;
	memset(hw.base + hw.drv_lo, 0, n + 65536 < area ? n + 65536 : area);
	memcpy(hw.base + hw.drv_lo, img, n);
}

/*
 * A popped chain: at most @max_iov buffers, its head an id below @num,
 * every buffer non-empty and inside the driver area (read at both ends if
 * readable, written at both ends if writable), byte counts that add up.
 */
static inline void check_chain(const struct vshm_chain *c, unsigned max_iov, uint32_t num)
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

/* ---- a driver's chains --------------------------------------------------- */

/*
 * The driver's queue: @num entries laid out by @layout (with @arg) at the
 * start of the driver area, zeroed first; *buf: scratch, page aligned past
 * the ring.  Our own layout must be accepted.
 */
static inline struct vshm_drv_vq *vqf_drv_open(struct vshm_vq_layout *l,
					       int64_t (*layout)(struct vshm_vq_layout *, uint64_t,
								 uint32_t, uint32_t),
					       uint32_t num, uint32_t arg, uint64_t feat, uint64_t *buf)
{
	struct vshm_drv_vq *d;
	int64_t lay = layout(l, dw.drv_lo, num, arg);

	if (lay < 0)
		__builtin_trap();
	memset(hw.base + hw.drv_lo, 0, (size_t)lay);
	*buf = dw.drv_lo + (uint64_t)((lay + 4095) & ~4095);
	if (vshm_drv_vq_create(&d, &dw, l, feat, NULL))
		__builtin_trap();
	return d;
}

/* A chain the driver added: live until harvested or detached. */
struct rec {
	int live;
	uint64_t seq;		/* its place among the adds */
	uint32_t in_len;	/* its writable bytes */
};

/*
 * A cookie the driver gave back, with @len bytes written: one of
 * recs[0..nrec), live (never given back before), @len no more than it
 * posted.  It is given back now.
 */
static inline struct rec *vqf_take(struct rec *recs, unsigned nrec, void *ck, uint32_t len)
{
	struct rec *r = ck;

	if (r < recs || r >= recs + nrec || !r->live || len > r->in_len)
		__builtin_trap();
	r->live = 0;
	return r;
}

/* add_ex flags from a shape byte: 0x80 no indirect table, 0x40 one if possible. */
static inline unsigned vqf_add_flags(uint8_t a)
{
	if (a & 0x80)
		return VSHM_ADD_NO_INDIRECT;
	return a & 0x40 ? VSHM_ADD_INDIRECT : 0;
}

/*
 * The driver adds a chain of @a's shape (bits 0-1 readable buffers, 2-3
 * writable, one writable if both are 0): buffer k at @buf + k * @stride,
 * @b * (k + 1) + @plus bytes long.  Once broken, -EIO; an added chain is
 * recs[*nrec] (counted).  Returns what add_ex did.
 */
static inline int vqf_add(struct vshm_drv_vq *d, struct rec *recs, unsigned *nrec, uint64_t buf,
			  uint32_t stride, uint8_t a, uint8_t b, uint32_t plus, unsigned flags,
			  int broken)
{
	struct vshm_sg sg[6];
	unsigned nout = a & 3, nin = (a >> 2) & 3;
	struct rec *r = &recs[*nrec];
	int rc;

	if (nout + nin == 0)
		nin = 1;
	r->in_len = 0;
	for (unsigned k = 0; k < nout + nin; k++) {
		sg[k].off = buf + k * stride;
		sg[k].len = (uint32_t)b * (k + 1) + plus;
		sg[k].flags = 0;
		if (k >= nout)
			r->in_len += sg[k].len;
	}
	rc = vshm_drv_vq_add_ex(d, sg, nout, nin, r, flags);
	if (broken && rc != -EIO)
		__builtin_trap();
	if (rc == 0) {
		r->live = 1;
		r->seq = *nrec;
		++*nrec;
	}
	return rc;
}

/* Publish (-EIO once broken). */
static inline void vqf_publish(struct vshm_drv_vq *d, int broken)
{
	int rc = vshm_drv_vq_publish(d);

	if (broken && rc != -EIO)
		__builtin_trap();
}

/*
 * Harvest up to @n completions, each checked by vqf_take and, with
 * @next_seq, in the order of the adds.  Once broken, -EIO.
 */
static inline void vqf_harvest(struct vshm_drv_vq *d, struct rec *recs, unsigned nrec,
			       unsigned *returned, unsigned n, int broken, uint64_t *next_seq)
{
	while (n--) {
		void *ck;
		uint32_t len;
		struct rec *r;
		int rc = vshm_drv_vq_harvest(d, &ck, &len);

		if (broken && rc != -EIO)
			__builtin_trap();
		if (rc != 1)
			break;
		r = vqf_take(recs, nrec, ck, len);
		if (next_seq && r->seq != (*next_seq)++)
			__builtin_trap();
		++*returned;
	}
}

/* Odd @a: callbacks off; even: on (-EIO once broken). */
static inline void vqf_callbacks(struct vshm_drv_vq *d, unsigned a, int broken)
{
	if (a & 1)
		vshm_drv_vq_disable_cb(d);
	else if (vshm_drv_vq_enable_cb(d) != -EIO && broken)
		__builtin_trap();
}

/*
 * The end of a driver's program: every chain not harvested comes back
 * through detach, once; then every one of the @num slots is free.
 */
static inline void vqf_detach_all(struct vshm_drv_vq *d, struct rec *recs, unsigned nrec,
				  unsigned returned, unsigned num)
{
	void *ck;

	while ((ck = vshm_drv_vq_detach_unused(d)) != NULL) {
		vqf_take(recs, nrec, ck, 0);
		returned++;
	}
	if (returned != nrec || vshm_drv_vq_num_free(d) != num || vshm_drv_vq_inflight(d) != 0)
		__builtin_trap();
}

#endif
