/* SPDX-License-Identifier: MIT */
/*
 * The zero-copy heap: the driver side of the DMA layer for large buffers.
 *
 * Bounce pools copy every buffer into the window.  The heap is the other
 * path: a buffer is allocated in the window and used there in place, so the
 * producer writes its data where the device will read it and nothing is
 * copied.  A heap is a page-aligned range [off, off+size) of the window's
 * driver area, managed in pages of VSHM_PAGE_SIZE bytes.  Allocations are
 * page granular and need not be contiguous: a buffer is one or more
 * extents (runs of contiguous pages), and it reaches a ring as a
 * scatter-gather list of window offsets.
 *
 * Who owns what:
 *  - the heap's bytes in the window: shared with the device for as long as
 *    they are allocated, and readable and writable by it at any time
 *    (free pages too); nothing the allocator depends on lives there;
 *  - the allocator metadata (extent tree, boundary tags, counters): private
 *    memory, malloc'd by vshm_heap_init, freed by _fini;
 *  - struct vshm_heap and struct vshm_heap_buf: the caller's memory, with
 *    fields visible only so they can be embedded; written by this library
 *    alone.  A buffer record holds its extents privately, so free, the
 *    accessors and vshm_heap_sg never read the window to find them.
 *
 * Data read back from a heap buffer is hostile input: the device can change
 * it between two reads.  Copy it once (vshm_heap_read) before interpreting
 * it.  docs/dma.md, "The zero-copy heap", has the whole model.
 *
 * Threading: single-threaded by default (the caller serialises every call
 * on one heap).  vshm_heap_set_flags(h, VSHM_HEAP_F_LOCKED) makes
 * alloc/free/stats/check safe from several threads; copies and pointer
 * look-ups run without the lock.  One buffer record is used by one thread
 * at a time.
 */
#ifndef VSHM_HEAP_H
#define VSHM_HEAP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <vshm/window.h>

/*
 * A scatter-gather element: one contiguous run of the window, named by its
 * offset.  The same guarded definition as in bounce.h and vq.h.  The heap
 * sets @flags to 0; its meaning belongs to the layer that posts it.
 */
#ifndef VSHM_SG_DEFINED
#define VSHM_SG_DEFINED
struct vshm_sg { uint64_t off; uint32_t len; uint32_t flags; };
#endif

#define VSHM_HEAP_PAGE_SIZE	VSHM_PAGE_SIZE	/* allocation granule, bytes */
/*
 * Longest extent a buffer gets, in pages (2 GiB): every extent then fits
 * the 32-bit length of an sg element and of a virtio descriptor.  A longer
 * contiguous run is handed out as several adjacent extents.
 */
#define VSHM_HEAP_EXT_MAX_PAGES	(1u << 19)
#define VSHM_HEAP_BUF_INLINE	4u	/* extents held without malloc */
#define VSHM_HEAP_NO_LIMIT	UINT32_MAX /* max_extents: any number */

/* Heap flags (vshm_heap_set_flags). */
#define VSHM_HEAP_F_LOCKED	(1u << 0)	/* serialise with a mutex */
#define VSHM_HEAP_F_SCRUB	(1u << 1)	/* zero a buffer's pages at free */
#define VSHM_HEAP_F_ALL		(VSHM_HEAP_F_LOCKED | VSHM_HEAP_F_SCRUB)

/* Counters and the free-space picture; a snapshot from vshm_heap_stats(). */
struct vshm_heap_stats {
	uint64_t pages_total;	/* pages in the heap */
	uint64_t pages_free;	/* pages on no buffer now */
	uint64_t pages_peak;	/* high-water mark of pages in use */
	uint64_t largest_free;	/* pages in the largest free extent */
	uint64_t free_extents;	/* maximal runs of free pages */
	uint64_t free_extents_peak; /* high-water mark of free_extents */
	uint64_t live_bufs;	/* buffers allocated and not yet freed */
	uint64_t allocs;	/* successful allocations */
	uint64_t frees;		/* successful frees */
	uint64_t multi_extent;	/* allocations that got more than one extent */
	uint64_t extents_out;	/* extents handed out, summed over allocs */
	uint64_t fail_nomem;	/* -ENOMEM: fewer free pages than asked for */
	uint64_t fail_frag;	/* -E2BIG: enough pages, too many extents */
	uint64_t fail_size;	/* -EMSGSIZE: larger than the whole heap */
	uint64_t fail_meta;	/* -ENOMEM: private extent array not allocated */
	uint64_t bytes_written;	/* copied in by vshm_heap_write */
	uint64_t bytes_read;	/* copied out by vshm_heap_read */
	uint64_t bytes_scrubbed; /* zeroed at free (VSHM_HEAP_F_SCRUB) */
	uint32_t tree_height;	/* free-extent tree height now */
	uint32_t tree_height_max; /* its high-water mark */
};

/*
 * One heap.  Caller-allocated; every field is written only by this library.
 * Free extents are the nodes of an AVL tree ordered by (length, first
 * page); a node's links live in the private per-page arrays @left/@right
 * and @height at the extent's first page.  Boundary tags (@state, @len at
 * the first and last page of each free extent) find a freed extent's
 * neighbours in O(1).  The head page of an allocated extent keeps the
 * owning buffer's serial in @left/@right instead.
 */
struct vshm_heap {
	const struct vshm_window *win;	/* borrowed; outlives the heap */
	uint8_t *base;			/* window pointer of page 0 */
	uint64_t off;			/* window offset of page 0 */
	uint64_t size;			/* bytes, npages * VSHM_PAGE_SIZE */
	uint64_t id;			/* unique per init: stale buffers refused */
	uint64_t serial;		/* last buffer serial issued */
	uint32_t npages;		/* pages in the heap */
	uint32_t flags;			/* VSHM_HEAP_F_* */
	uint32_t max_extents;		/* limit for vshm_heap_alloc */
	uint32_t root;			/* tree root page, UINT32_MAX if empty */
	uint8_t *state;			/* private: per-page boundary tags */
	uint8_t *height;		/* private: AVL height at a node's page */
	uint32_t *len;			/* private: extent length at head/tail */
	uint32_t *left;			/* private: tree link, or serial low */
	uint32_t *right;		/* private: tree link, or serial high */
	struct vshm_heap_stats st;	/* counters, under the lock */
	uint64_t bytes_written;		/* relaxed atomics: copies run */
	uint64_t bytes_read;		/*   without the lock, so these */
	uint64_t bytes_scrubbed;	/*   live outside st */
	pthread_mutex_t lock;		/* taken when VSHM_HEAP_F_LOCKED */
};

/* One extent of a buffer. */
struct vshm_heap_ext {
	uint32_t page;		/* first page, relative to the heap */
	uint32_t npages;	/* 1 .. VSHM_HEAP_EXT_MAX_PAGES */
	uint32_t bpage;		/* its first page's index within the buffer */
};

/*
 * One buffer: byte b of the buffer is at byte (b % page) of page
 * (b / page) of the buffer, and the buffer's pages are its extents in
 * order.  Zero it (or leave it as free left it) when not allocated.
 */
struct vshm_heap_buf {
	uint64_t heap_id;	/* the heap's id at alloc time, 0 = free */
	uint64_t serial;	/* this allocation, checked at free */
	uint64_t base_off;	/* window offset of heap page 0 */
	size_t len;		/* bytes asked for */
	uint32_t nextents;	/* extents */
	uint32_t npages;	/* pages, ceil(len / page) */
	struct vshm_heap_ext *ext_ext;	/* malloc'd if nextents > INLINE */
	struct vshm_heap_ext ext_inline[VSHM_HEAP_BUF_INLINE];
};

/*
 * Create a heap over [off, off+size) of @w's driver area; @off and @size
 * are page aligned, @size > 0.  Returns 0, -EINVAL for a range that is
 * misaligned, empty or not wholly inside the driver area, -ENOMEM.
 */
int vshm_heap_init(struct vshm_heap *h, struct vshm_window *w,
		   uint64_t off, uint64_t size);

/*
 * Free the private metadata.  Buffers still allocated become invalid
 * (their free returns -EINVAL); their window bytes are not touched.  Safe
 * on a zeroed or already finished heap.
 */
void vshm_heap_fini(struct vshm_heap *h);

/* Set VSHM_HEAP_F_* before the heap is shared.  -EINVAL on unknown bits. */
int vshm_heap_set_flags(struct vshm_heap *h, uint32_t flags);

/*
 * The extent limit vshm_heap_alloc applies (the device's seg_max, say);
 * VSHM_HEAP_NO_LIMIT (the default) for none.  -EINVAL on 0.
 */
int vshm_heap_set_max_extents(struct vshm_heap *h, uint32_t max_extents);

/*
 * Allocate a buffer of @len bytes (rounded up to whole pages) as at most
 * @max_extents extents, and describe it in @b.  Returns the number of
 * extents (>= 1).  Errors, with nothing allocated and @b not written:
 *   -EINVAL   len == 0, max_extents == 0, NULL pointers, dead heap
 *   -EMSGSIZE larger than the whole heap: it could never be allocated
 *   -ENOMEM   fewer free pages than the buffer needs, right now
 *             (stats: fail_nomem), or no private memory for the extent
 *             list (fail_meta)
 *   -E2BIG    enough free pages, but they are too fragmented to make the
 *             buffer out of max_extents extents (fail_frag)
 * Never waits.  The buffer's contents are unspecified: whatever the device
 * or an earlier buffer left in those pages.
 */
int vshm_heap_alloc(struct vshm_heap *h, size_t len, struct vshm_heap_buf *b);
int vshm_heap_alloc_max(struct vshm_heap *h, size_t len, uint32_t max_extents,
			struct vshm_heap_buf *b);

/*
 * Return a buffer's pages to the heap (zeroed first under
 * VSHM_HEAP_F_SCRUB) and clear @b.  The device must be done with them: the
 * caller has harvested or detached every chain that named the buffer.
 * Returns 0, or -EINVAL if @b is not a live buffer of @h (nothing touched).
 */
int vshm_heap_free(struct vshm_heap *h, struct vshm_heap_buf *b);

/*
 * Copy @len bytes between a private buffer and [off, off+len) of a heap
 * buffer.  0, or -EINVAL when the range is not inside the buffer (checked
 * without overflow) or @b is not a live buffer of @h.  What read returns
 * is a snapshot the device may contradict a moment later.
 */
int vshm_heap_write(struct vshm_heap *h, const struct vshm_heap_buf *b,
		    size_t off, const void *src, size_t len);
int vshm_heap_read(struct vshm_heap *h, const struct vshm_heap_buf *b,
		   size_t off, void *dst, size_t len);

/*
 * Zero-copy access.  vshm_heap_extent: extent @i of the buffer as a window
 * pointer and the buffer's bytes in it (the last extent stops at len);
 * 0, -ENOENT when i >= nextents, -EINVAL when @b is not a live buffer of
 * @h.  Iterate with  for (i = 0; !vshm_heap_extent(h, b, i, &p, &n); i++).
 * vshm_heap_ptr: the window pointer of byte @off and, in *@contig, how many
 * bytes from there are contiguous in the window; NULL if off >= len or @b
 * is not a live buffer of @h.
 */
int vshm_heap_extent(const struct vshm_heap *h, const struct vshm_heap_buf *b,
		     unsigned i, void **ptr, size_t *len);
void *vshm_heap_ptr(const struct vshm_heap *h, const struct vshm_heap_buf *b,
		    size_t off, size_t *contig);

/*
 * Describe the buffer's bytes [0, len) in @sg[0..n) (window offsets, flags
 * 0) for vshm_drv_vq_add; returns n, which is nextents.
 * vshm_heap_sg_range does the same for [off, off+len) of the buffer (a
 * prefix the producer filled, say) and returns the number of extents that
 * range touches.  -E2BIG if @max is too small, -EINVAL on a buffer that is
 * not allocated, a range not inside it, or len == 0.  Needs nothing but
 * the buffer record, so it cannot tell a stale record from a live one: do
 * not post a buffer after freeing it.
 */
int vshm_heap_sg(const struct vshm_heap_buf *b, struct vshm_sg *sg,
		 unsigned max);
int vshm_heap_sg_range(const struct vshm_heap_buf *b, size_t off, size_t len,
		       struct vshm_sg *sg, unsigned max);

/* Snapshot the counters.  Returns 0, or -EINVAL on a NULL/dead argument. */
int vshm_heap_stats(struct vshm_heap *h, struct vshm_heap_stats *out);

/* A static one-line description of a vshm_heap_* return code. */
const char *vshm_heap_strerror(int err);

/*
 * Debug: check every invariant (tree ordered and balanced, boundary tags,
 * free extents maximal and disjoint, every page on exactly one extent,
 * counters consistent).  O(pages); for tests.  Returns 0 or -EIO.
 */
int vshm_heap_check(struct vshm_heap *h);

#endif /* VSHM_HEAP_H */
