/* SPDX-License-Identifier: MIT */
/*
 * The shared window: creation (memfd, size sealed), mapping, and the one
 * bounds-checked accessor through which every peer-named offset becomes a
 * pointer.
 */
#ifndef VSHM_WINDOW_H
#define VSHM_WINDOW_H

#include <stddef.h>
#include <stdint.h>
#include <vshm/abi.h>

/*
 * A mapped window.  The geometry fields are copied out of the header once,
 * at map time, after validation; nothing here is ever re-read from shared
 * memory, so a peer that rewrites the header later changes nothing.
 */
struct vshm_window {
	uint8_t *base;		/* first byte of the window */
	uint64_t size;		/* bytes */
	int fd;			/* memfd, or -1 if not owned */
	uint64_t drv_lo;	/* driver area: the only range a peer may name */
	uint64_t drv_hi;	/* exclusive */
	uint32_t vectors;	/* doorbell vectors per peer (header) */
	uint32_t transport_features; /* VSHM_TF_* (header) */
	void *map;		/* mapping incl. guard pages (private) */
	size_t map_len;
};

struct vshm_window_opts {
	uint64_t size;		/* power of two, VSHM_WIN_MIN..MAX_SIZE */
	uint32_t vectors;	/* doorbell vectors per peer, 1..64 */
	uint32_t transport_features;
	const char *name;	/* memfd name, for /proc/PID/maps; may be NULL */
};

/* Parse "64M", "1G", "65536" into bytes; -EINVAL on bad syntax. */
int vshm_parse_size(const char *s, uint64_t *out);

/* Check a size against the window rules; returns 0 or -EINVAL. */
int vshm_window_size_ok(uint64_t size);

/*
 * Create a memfd of @o->size, seal its size (F_SEAL_SHRINK|GROW|SEAL), map
 * it between PROT_NONE guard pages and format the header.  The hub's job.
 */
int vshm_window_create(struct vshm_window *w, const struct vshm_window_opts *o);

/*
 * Map an existing window fd (received from a hub) and validate its header:
 * magic, ABI major, header size, geometry consistent with the fd size.  The
 * fd is dup'ed; the caller keeps its own.  Returns -EPROTO on a bad magic or
 * geometry, -EPROTONOSUPPORT on a foreign ABI major.
 */
int vshm_window_map(struct vshm_window *w, int fd);

/* Unmap and close.  Safe on a zeroed or already-unmapped window. */
void vshm_window_unmap(struct vshm_window *w);

/* The header, for hub and role code. */
static inline struct vshm_win_hdr *vshm_window_hdr(const struct vshm_window *w)
{
	return (struct vshm_win_hdr *)(void *)w->base;
}

/*
 * Is [off, off+len) inside the driver area?  Overflow-safe: the checks never
 * compute off + len before knowing it cannot wrap.  len == 0 is in range when
 * off is (a zero-length buffer names no byte, but its address must be sane).
 */
static inline int vshm_win_range_ok(const struct vshm_window *w,
				    uint64_t off, uint64_t len)
{
	if (off < w->drv_lo || off > w->drv_hi)
		return 0;
	return len <= w->drv_hi - off;
}

/*
 * The accessor: a peer-named offset and length become a pointer, or NULL
 * when any byte of the range falls outside the driver area (the header and
 * the mailbox are never reachable through it).
 */
static inline void *vshm_win_ptr(const struct vshm_window *w,
				 uint64_t off, uint64_t len)
{
	if (!vshm_win_range_ok(w, off, len))
		return NULL;
	return w->base + off;
}

/* Window offset of a pointer known to lie in the window (our own memory). */
static inline uint64_t vshm_win_off(const struct vshm_window *w, const void *p)
{
	return (uint64_t)((const uint8_t *)p - w->base);
}

/*
 * Local-only views used by tests: make the header and mailbox inaccessible
 * in this mapping (PROT_NONE), to prove a code path never touches them.
 */
int vshm_window_protect_ctrl(struct vshm_window *w, int prot);

#endif
