/* SPDX-License-Identifier: MIT */
/*
 * Bounce pools: the driver side of the DMA layer.
 *
 * The device can touch only the shared window, so every buffer the driver
 * hands to it is first copied ("bounced") into a pool carved out of the
 * window's driver area, and the device is given window offsets.  A pool is a
 * page-aligned range [off, off+size) divided into power-of-two slots; a
 * binary buddy allocator hands out runs of 2^k slots.
 *
 * Who owns what:
 *  - the pool's bytes in the window: the device may read or rewrite them at
 *    any time, so nothing the allocator depends on lives there;
 *  - the allocator metadata (free lists, slot states, counters): private
 *    memory, malloc'd by vshm_bounce_pool_init, freed by _fini;
 *  - struct vshm_bounce_pool and struct vshm_bounce_map: the caller's memory;
 *    the fields are visible only so the caller can embed them, and are
 *    written by this library alone;
 *  - the caller's buffer: read at map / sync_for_device, written at unmap /
 *    sync_for_cpu, never retained beyond the map's lifetime.
 *
 * Threading: by default a pool is single-threaded (the caller serialises
 * every call on it).  vshm_bounce_pool_set_flags(p, VSHM_BOUNCE_F_LOCKED)
 * makes map/unmap/alloc/free/stats safe to call from several threads; the
 * copies then run outside the lock.  One map record is always used by one
 * thread at a time.  docs/dma.md has the whole model.
 */
#ifndef VSHM_BOUNCE_H
#define VSHM_BOUNCE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <vshm/window.h>

/*
 * A scatter-gather element: one contiguous run of the window, named by its
 * offset.  Shared with other headers (rings), hence the guard.  The bounce
 * layer sets @flags to 0; its meaning belongs to the layer that posts the
 * element.
 */
#ifndef VSHM_SG_DEFINED
#define VSHM_SG_DEFINED
struct vshm_sg { uint64_t off; uint32_t len; uint32_t flags; };
#endif

/* Directions, numbered like the Linux DMA API so a guest module maps 1:1. */
#define VSHM_DMA_BIDIRECTIONAL	0	/* copy in at map, back at unmap */
#define VSHM_DMA_TO_DEVICE	1	/* copy in at map only */
#define VSHM_DMA_FROM_DEVICE	2	/* cleared at map, copied back at unmap */

#define VSHM_BOUNCE_SLOT_SIZE_DEFAULT	2048u		/* bytes per slot */
#define VSHM_BOUNCE_SLOT_SIZE_MIN	64u		/* one cache line */
#define VSHM_BOUNCE_MAX_SEG_DEFAULT	(256u << 10)	/* 128 default slots */
#define VSHM_BOUNCE_MAX_ORDER		30u		/* 2^30 slots per block */
#define VSHM_BOUNCE_MAP_INLINE		8u		/* segments without malloc */

/* Pool flags (vshm_bounce_pool_set_flags). */
#define VSHM_BOUNCE_F_LOCKED	(1u << 0)	/* serialise with a mutex */
#define VSHM_BOUNCE_F_SCRUB	(1u << 1)	/* zero bytes at unmap/free */
#define VSHM_BOUNCE_F_ALL	(VSHM_BOUNCE_F_LOCKED | VSHM_BOUNCE_F_SCRUB)

/* Counters; a snapshot is returned by vshm_bounce_stats(). */
struct vshm_bounce_stats {
	uint64_t slots_total;	/* slots in the pool */
	uint64_t slots_in_use;	/* slots allocated now (rounded blocks) */
	uint64_t slots_peak;	/* high-water mark of slots_in_use */
	uint64_t maps;		/* successful vshm_bounce_map calls */
	uint64_t unmaps;	/* successful vshm_bounce_unmap calls */
	uint64_t map_enomem;	/* maps refused with -ENOMEM (pool full) */
	uint64_t split_maps;	/* successful maps needing > 1 segment */
	uint64_t allocs;	/* successful vshm_bounce_alloc calls */
	uint64_t frees;		/* successful vshm_bounce_free calls */
	uint64_t bytes_to_dev;	/* copied buffer -> window (map, sync) */
	uint64_t bytes_from_dev; /* copied window -> buffer (unmap, sync) */
	uint64_t bytes_cleared;	/* zeroed in the window (FROM_DEVICE, scrub) */
	/*
	 * Allocator work, for proving the complexity: every block allocate or
	 * free is one op; each op costs 1 step plus one per split or merge.
	 */
	uint64_t alloc_ops;
	uint64_t alloc_steps;
	uint32_t alloc_steps_max; /* worst single op */
	uint32_t max_order;	/* largest block order (max_seg / slot_size) */
	uint32_t slot_size;	/* bytes */
	uint32_t max_seg;	/* effective maximum segment, bytes */
};

/*
 * One pool.  Caller-allocated; every field is written only by this library.
 * Free lists are doubly linked through the private index arrays @next and
 * @prev (slot indices, UINT32_MAX ends a list); @state has one byte per slot,
 * meaningful only at the first slot of a block.
 */
struct vshm_bounce_pool {
	const struct vshm_window *win;	/* borrowed; outlives the pool */
	uint8_t *base;			/* window pointer of the first slot */
	uint64_t off;			/* window offset of the first slot */
	uint64_t size;			/* bytes, nslots * slot_size */
	uint64_t id;			/* unique per init: stale maps refused */
	uint32_t slot_size;		/* bytes, power of two */
	uint32_t slot_shift;		/* log2(slot_size) */
	uint32_t max_seg;		/* bytes, slot_size << max_order */
	uint32_t max_order;		/* largest block is 2^max_order slots */
	uint32_t nslots;		/* slots in the pool */
	uint32_t flags;			/* VSHM_BOUNCE_F_* */
	uint32_t nonempty;		/* bit k set: free_head[k] not empty */
	uint32_t free_head[VSHM_BOUNCE_MAX_ORDER + 1]; /* per-order lists */
	uint32_t *next;			/* private: free-list successor */
	uint32_t *prev;			/* private: free-list predecessor */
	uint8_t *state;			/* private: per-slot block state */
	struct vshm_bounce_stats st;	/* counters (byte counters atomic) */
	pthread_mutex_t lock;		/* taken when VSHM_BOUNCE_F_LOCKED */
};

/*
 * One mapping: everything unmap and sync need, recorded privately at map
 * time, so they never read back what the device may have rewritten.
 * Segment i has length min(max_seg, len - i * max_seg) and starts at slot
 * seg[i].  Zero it (or leave it as unmap left it) when not mapped.
 */
struct vshm_bounce_map {
	uint64_t pool_id;		/* the pool's id at map time, 0 = unmapped */
	void *buf;			/* caller's buffer (caller-owned) */
	size_t len;			/* bytes mapped */
	int dir;			/* VSHM_DMA_* */
	uint32_t nseg;			/* segments */
	uint32_t *seg_ext;		/* malloc'd slot indices if nseg > INLINE */
	uint32_t seg_inline[VSHM_BOUNCE_MAP_INLINE]; /* first slot per segment */
};

/*
 * Create a pool over [off, off+size) of @w's driver area.  @off and @size
 * are page aligned, @size a multiple of @slot_size.  @slot_size is a power
 * of two >= VSHM_BOUNCE_SLOT_SIZE_MIN (0 selects 2048).  @max_seg is a
 * power-of-two multiple of @slot_size (0 selects 256 KiB, or slot_size if
 * larger); when it exceeds the largest power-of-two run of slots the pool
 * holds, it is lowered to that run (read it back with vshm_bounce_max_seg).
 * Returns 0, -EINVAL on a bad range or geometry, -ENOMEM.
 */
int vshm_bounce_pool_init(struct vshm_bounce_pool *p, struct vshm_window *w,
			  uint64_t off, uint64_t size, uint32_t slot_size,
			  uint32_t max_seg);

/*
 * Free the private metadata.  Mappings still outstanding become invalid
 * (their unmap returns -EINVAL); their window bytes are not touched.  Safe on
 * a zeroed or already finished pool.
 */
void vshm_bounce_pool_fini(struct vshm_bounce_pool *p);

/* Set VSHM_BOUNCE_F_* before the pool is shared.  -EINVAL on unknown bits. */
int vshm_bounce_pool_set_flags(struct vshm_bounce_pool *p, uint32_t flags);

/* The effective maximum segment length in bytes (0 for a dead pool). */
uint32_t vshm_bounce_max_seg(const struct vshm_bounce_pool *p);

/* How many segments (sg entries) a mapping of @len bytes takes. */
size_t vshm_bounce_nseg(const struct vshm_bounce_pool *p, size_t len);

/*
 * Bounce @len bytes at @buf into the pool and describe them in @sg[0..n) as
 * window offsets; returns n >= 1.  What is copied depends on @dir (see the
 * VSHM_DMA_* comments; FROM_DEVICE segments are zeroed, never filled with
 * the caller's bytes).  Errors, with nothing left allocated:
 *   -EINVAL   len == 0, bad dir, NULL pointers, dead pool
 *   -EMSGSIZE the mapping could never fit in this pool, however empty
 *   -E2BIG    @max_sg is smaller than vshm_bounce_nseg(p, len)
 *   -ENOMEM   not enough free slots right now (counted in map_enomem)
 * Never waits.  @buf must stay valid until unmap.
 */
int vshm_bounce_map(struct vshm_bounce_pool *p, void *buf, size_t len, int dir,
		    struct vshm_bounce_map *m, struct vshm_sg *sg,
		    unsigned max_sg);

/*
 * Release a mapping.  For FROM_DEVICE and BIDIRECTIONAL, first copies back
 * min(@written, len) bytes from the start of the mapping: @written is what
 * the device reported (a used length the caller has already checked); bytes
 * of the buffer beyond it are left untouched.  Returns 0, or -EINVAL if @m
 * is not a live mapping of @p (nothing is touched then).
 */
int vshm_bounce_unmap(struct vshm_bounce_pool *p, struct vshm_bounce_map *m,
		      size_t written);

/*
 * Copy the sub-range [off, off+len) of a live mapping: buffer -> window
 * (for_device; a no-op on FROM_DEVICE mappings) or window -> buffer
 * (for_cpu; a no-op on TO_DEVICE mappings).  -EINVAL if the range is not
 * inside the mapping or @m is not a live mapping of @p.
 */
int vshm_bounce_sync_for_device(struct vshm_bounce_pool *p,
				const struct vshm_bounce_map *m,
				size_t off, size_t len);
int vshm_bounce_sync_for_cpu(struct vshm_bounce_pool *p,
			     const struct vshm_bounce_map *m,
			     size_t off, size_t len);

/*
 * Coherent memory: one zeroed, contiguous run of at most max_seg bytes that
 * both sides use in place (no copies), e.g. for small rings.  Fills @seg
 * (off, len = @len, flags 0).  -EINVAL on len 0 or > max_seg, -ENOMEM.
 * vshm_bounce_free takes the same @seg back; -EINVAL if it does not name a
 * live coherent allocation of this length.
 */
int vshm_bounce_alloc(struct vshm_bounce_pool *p, size_t len,
		      struct vshm_sg *seg);
int vshm_bounce_free(struct vshm_bounce_pool *p, const struct vshm_sg *seg);

/* Snapshot the counters.  Returns 0, or -EINVAL on a NULL argument. */
int vshm_bounce_stats(struct vshm_bounce_pool *p, struct vshm_bounce_stats *out);

/*
 * Debug: walk every free list and check the allocator's invariants (lists
 * well linked, blocks aligned, inside the pool, not overlapping, free +
 * in-use slots == total).  O(slots); for tests.  Returns 0 or -EIO.
 */
int vshm_bounce_pool_check(struct vshm_bounce_pool *p);

#endif /* VSHM_BOUNCE_H */
