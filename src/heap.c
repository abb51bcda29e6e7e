// SPDX-License-Identifier: MIT
/*
 * The zero-copy heap in the window's driver area (docs/dma.md).
 *
 * Free space is a set of maximal free extents (runs of free pages; two free
 * extents are never adjacent, because frees coalesce).  They are indexed
 * twice, both in private memory:
 *
 *  - by address, through boundary tags: the first and the last page of a
 *    free extent are tagged in @state and carry the extent's length in
 *    @len, so a freed run finds a free left neighbour (its tail is the page
 *    just below) and a free right neighbour (its head is the page just
 *    above) in O(1);
 *  - by size, in an AVL tree keyed by (length, first page), whose nodes are
 *    the extents' first pages and whose links are the per-page arrays
 *    @left, @right and @height.
 *
 * Allocation of n pages: if some free extent has >= n pages, the smallest
 * such one (best fit, lowest address among equals) gives one extent.
 * Otherwise the largest free extent is taken whole and the rest asked for
 * again, so the buffer gets the fewest extents these free runs allow.
 * Before anything is taken, a walk over the extents in decreasing size
 * counts the extents the buffer would get, so -E2BIG (too fragmented for
 * max_extents) and -ENOMEM (too few free pages, known from a counter)
 * leave the heap untouched.
 *
 * Cost, with F free extents and k extents in the result: the tree is an
 * AVL tree, height <= 1.44 log2(F + 2), so a look-up, insert or removal is
 * O(log F).  Allocation is O(k log F) (the counting walk does one
 * predecessor look-up per extent, the carving one look-up, one removal and
 * at most one insert per extent), free is O(k log F) (per extent: at most
 * two removals and one insert).  Nothing scans pages, except scrubbing
 * (which touches the bytes anyway) and vshm_heap_check.
 *
 * Private memory: 14 bytes per 4 KiB page (0.34 %), malloc'd at init; the
 * arrays are only touched at extent boundaries, so pages of them that
 * cover the interior of large extents are never faulted in.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <vshm/heap.h>

#define NIL		UINT32_MAX	/* no node */
#define PAGE		((uint64_t)VSHM_HEAP_PAGE_SIZE)
#define CAP		VSHM_HEAP_EXT_MAX_PAGES

/*
 * Page tags.  A free extent [s, s+n) has FREE_HEAD at s and FREE_TAIL at
 * s+n-1 (both on one page when n == 1) and n in len[] at both; an
 * allocated extent has exactly ALLOC_HEAD at s and its length in len[s].
 * Every other page holds 0.
 */
#define ST_FREE_HEAD	0x01u
#define ST_FREE_TAIL	0x02u
#define ST_ALLOC_HEAD	0x04u

/* Heap ids start at 1 so a zeroed buffer (heap_id 0) is never live. */
static uint64_t next_heap_id;

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */

static void heap_lock(struct vshm_heap *h)
{
	if (h->flags & VSHM_HEAP_F_LOCKED)
		pthread_mutex_lock(&h->lock);
}

static void heap_unlock(struct vshm_heap *h)
{
	if (h->flags & VSHM_HEAP_F_LOCKED)
		pthread_mutex_unlock(&h->lock);
}

/* Byte counters are bumped outside the lock (copies run unlocked). */
static void count_bytes(uint64_t *ctr, uint64_t n)
{
	__atomic_fetch_add(ctr, n, __ATOMIC_RELAXED);
}

static int heap_live(const struct vshm_heap *h)
{
	return h && h->state;
}

static uint8_t *page_ptr(const struct vshm_heap *h, uint32_t page)
{
	return h->base + (uint64_t)page * PAGE;
}

static uint32_t chunks(uint32_t pages)
{
	return pages / CAP + (pages % CAP != 0);
}

/* ------------------------------------------------------------------------ */
/* the size-ordered AVL tree of free extents (caller holds the lock)        */

/* Is the key (length, first page) of node @a below that of node @b? */
static int key_less(const struct vshm_heap *h, uint32_t a, uint32_t b)
{
	return h->len[a] < h->len[b] || (h->len[a] == h->len[b] && a < b);
}

static uint32_t ht(const struct vshm_heap *h, uint32_t x)
{
	return x == NIL ? 0 : h->height[x];
}

static void fix_height(struct vshm_heap *h, uint32_t x)
{
	uint32_t l = ht(h, h->left[x]), r = ht(h, h->right[x]);

	h->height[x] = (uint8_t)(1 + (l > r ? l : r));
}

static uint32_t rot_right(struct vshm_heap *h, uint32_t x)
{
	uint32_t y = h->left[x];

	h->left[x] = h->right[y];
	h->right[y] = x;
	fix_height(h, x);
	fix_height(h, y);
	return y;
}

static uint32_t rot_left(struct vshm_heap *h, uint32_t x)
{
	uint32_t y = h->right[x];

	h->right[x] = h->left[y];
	h->left[y] = x;
	fix_height(h, x);
	fix_height(h, y);
	return y;
}

/* Restore the AVL condition at @x (its subtrees already are AVL trees). */
static uint32_t rebalance(struct vshm_heap *h, uint32_t x)
{
	uint32_t l = ht(h, h->left[x]), r = ht(h, h->right[x]);

	fix_height(h, x);
	if (l > r + 1) {
		uint32_t y = h->left[x];

		if (ht(h, h->left[y]) < ht(h, h->right[y]))
			h->left[x] = rot_left(h, y);
		return rot_right(h, x);
	}
	if (r > l + 1) {
		uint32_t y = h->right[x];

		if (ht(h, h->right[y]) < ht(h, h->left[y]))
			h->right[x] = rot_right(h, y);
		return rot_left(h, x);
	}
	return x;
}

/* Recursion depth is the tree height: at most 1.44 log2(2^32) < 47. */
static uint32_t tree_insert(struct vshm_heap *h, uint32_t r, uint32_t x)
{
	if (r == NIL) {
		h->left[x] = NIL;
		h->right[x] = NIL;
		h->height[x] = 1;
		return x;
	}
	if (key_less(h, x, r))
		h->left[r] = tree_insert(h, h->left[r], x);
	else
		h->right[r] = tree_insert(h, h->right[r], x);
	return rebalance(h, r);
}

static uint32_t tree_remove_min(struct vshm_heap *h, uint32_t r, uint32_t *min)
{
	if (h->left[r] == NIL) {
		*min = r;
		return h->right[r];
	}
	h->left[r] = tree_remove_min(h, h->left[r], min);
	return rebalance(h, r);
}

/* Remove node @x, whose key (len[x]) must still be the one it went in with. */
static uint32_t tree_remove(struct vshm_heap *h, uint32_t r, uint32_t x)
{
	if (r == NIL)
		return NIL;
	if (r == x) {
		uint32_t l = h->left[r], m;

		r = h->right[r];
		if (r == NIL)
			return l;
		r = tree_remove_min(h, r, &m);
		h->left[m] = l;
		h->right[m] = r;
		return rebalance(h, m);
	}
	if (key_less(h, x, r))
		h->left[r] = tree_remove(h, h->left[r], x);
	else
		h->right[r] = tree_remove(h, h->right[r], x);
	return rebalance(h, r);
}

static uint32_t tree_max(const struct vshm_heap *h)
{
	uint32_t x = h->root;

	if (x == NIL)
		return NIL;
	while (h->right[x] != NIL)
		x = h->right[x];
	return x;
}

/* The node with the next smaller key than @x's, or NIL. */
static uint32_t tree_pred(const struct vshm_heap *h, uint32_t x)
{
	uint32_t best = NIL, y = h->root;

	while (y != NIL) {
		if (key_less(h, y, x)) {
			best = y;
			y = h->right[y];
		} else {
			y = h->left[y];
		}
	}
	return best;
}

/* Best fit: the smallest extent of >= @n pages (lowest address among equals). */
static uint32_t tree_ceil(const struct vshm_heap *h, uint32_t n)
{
	uint32_t best = NIL, y = h->root;

	while (y != NIL) {
		if (h->len[y] >= n) {
			best = y;
			y = h->left[y];
		} else {
			y = h->right[y];
		}
	}
	return best;
}

/* ------------------------------------------------------------------------ */
/* free extents: tags + tree together (caller holds the lock)               */

static void free_ext_add(struct vshm_heap *h, uint32_t s, uint32_t n)
{
	uint32_t t = s + n - 1;

	h->len[s] = n;
	h->len[t] = n;
	h->state[t] = ST_FREE_TAIL;
	h->state[s] = (uint8_t)(ST_FREE_HEAD | (s == t ? ST_FREE_TAIL : 0));
	h->root = tree_insert(h, h->root, s);
	if (++h->st.free_extents > h->st.free_extents_peak)
		h->st.free_extents_peak = h->st.free_extents;
	if (h->height[h->root] > h->st.tree_height_max)
		h->st.tree_height_max = h->height[h->root];
}

static void free_ext_del(struct vshm_heap *h, uint32_t s)
{
	uint32_t n = h->len[s];

	h->root = tree_remove(h, h->root, s);
	h->state[s] = 0;
	h->state[s + n - 1] = 0;
	h->st.free_extents--;
}

/*
 * How many extents would a buffer of @n pages get?  Walks the free extents
 * from the largest down, exactly as carve() will take them: the first one
 * that holds the remainder (or, by best fit, a smaller one that does) ends
 * the buffer.  Stops counting once past @max.  Needs pages_free >= n.
 */
static uint64_t count_extents(const struct vshm_heap *h, uint32_t n,
			      uint32_t max)
{
	uint64_t cnt = 0;
	uint32_t rem = n, x;

	for (x = tree_max(h); x != NIL; x = tree_pred(h, x)) {
		uint32_t l = h->len[x];

		if (rem <= l)
			return cnt + chunks(rem);
		cnt += chunks(l);
		rem -= l;
		if (cnt > max)
			return cnt;
	}
	return UINT64_MAX;	/* fewer free pages than n: not reached */
}

/*
 * Allocate the first @take pages of free extent @x to buffer @serial, as
 * extents of at most CAP pages appended to @ext from index @k; the rest of
 * @x stays free.  Returns the new extent count.
 */
static uint32_t take_pages(struct vshm_heap *h, uint32_t x, uint32_t take,
			   uint64_t serial, struct vshm_heap_ext *ext,
			   uint32_t k, uint32_t *bpage)
{
	uint32_t l = h->len[x], end = x + take;

	free_ext_del(h, x);
	if (l > take)
		free_ext_add(h, end, l - take);
	for (uint32_t p = x; p < end; ) {
		uint32_t m = end - p < CAP ? end - p : CAP;

		h->state[p] = ST_ALLOC_HEAD;
		h->len[p] = m;
		h->left[p] = (uint32_t)serial;
		h->right[p] = (uint32_t)(serial >> 32);
		ext[k++] = (struct vshm_heap_ext){ .page = p, .npages = m,
						   .bpage = *bpage };
		*bpage += m;
		p += m;
	}
	h->st.pages_free -= take;
	return k;
}

static uint32_t carve(struct vshm_heap *h, uint32_t n, uint64_t serial,
		      struct vshm_heap_ext *ext)
{
	uint32_t rem = n, k = 0, bpage = 0;

	while (rem) {
		uint32_t x = tree_ceil(h, rem), take = rem;

		if (x == NIL) {
			x = tree_max(h);
			take = h->len[x];
		}
		k = take_pages(h, x, take, serial, ext, k, &bpage);
		rem -= take;
	}
	return k;
}

/* Give back allocated extent [s, s+n), merging with free neighbours. */
static void release(struct vshm_heap *h, uint32_t s, uint32_t n)
{
	h->state[s] = 0;
	h->st.pages_free += n;
	if (s > 0 && (h->state[s - 1] & ST_FREE_TAIL)) {
		uint32_t ln = h->len[s - 1];

		free_ext_del(h, s - ln);
		s -= ln;
		n += ln;
	}
	if (s + n < h->npages && (h->state[s + n] & ST_FREE_HEAD)) {
		uint32_t rn = h->len[s + n];

		free_ext_del(h, s + n);
		n += rn;
	}
	free_ext_add(h, s, n);
}

/* ------------------------------------------------------------------------ */
/* heaps                                                                    */

int vshm_heap_init(struct vshm_heap *h, struct vshm_window *w,
		   uint64_t off, uint64_t size)
{
	uint64_t npages;
	uint8_t *base;
	int err;

	if (!h)
		return -EINVAL;
	memset(h, 0, sizeof(*h));
	if (!w || !size || off % PAGE || size % PAGE)
		return -EINVAL;
	/* The accessor is the one bounds check: driver area only, no wrap. */
	base = vshm_win_ptr(w, off, size);
	if (!base)
		return -EINVAL;
	npages = size / PAGE;
	if (npages >= NIL)
		return -EINVAL;

	h->win = w;
	h->base = base;
	h->off = off;
	h->size = size;
	h->npages = (uint32_t)npages;
	h->max_extents = VSHM_HEAP_NO_LIMIT;
	h->root = NIL;
	/*
	 * Private metadata, never in the window.  calloc for the tags, whose
	 * zero is meaningful; the rest is written before it is read.
	 */
	h->state = calloc(npages, 1);
	h->height = malloc(npages);
	h->len = malloc(npages * sizeof(*h->len));
	h->left = malloc(npages * sizeof(*h->left));
	h->right = malloc(npages * sizeof(*h->right));
	if (!h->state || !h->height || !h->len || !h->left || !h->right) {
		err = -ENOMEM;
		goto fail;
	}
	err = -pthread_mutex_init(&h->lock, NULL);
	if (err)
		goto fail;

	h->st.pages_total = npages;
	h->st.pages_free = npages;
	free_ext_add(h, 0, h->npages);
	h->id = __atomic_add_fetch(&next_heap_id, 1, __ATOMIC_RELAXED);
	return 0;

fail:
	free(h->state);
	free(h->height);
	free(h->len);
	free(h->left);
	free(h->right);
	memset(h, 0, sizeof(*h));
	return err;
}

void vshm_heap_fini(struct vshm_heap *h)
{
	if (!heap_live(h))
		return;
	pthread_mutex_destroy(&h->lock);
	free(h->state);
	free(h->height);
	free(h->len);
	free(h->left);
	free(h->right);
	memset(h, 0, sizeof(*h));
}

int vshm_heap_set_flags(struct vshm_heap *h, uint32_t flags)
{
	if (!heap_live(h) || (flags & ~VSHM_HEAP_F_ALL))
		return -EINVAL;
	h->flags = flags;
	return 0;
}

int vshm_heap_set_max_extents(struct vshm_heap *h, uint32_t max_extents)
{
	if (!heap_live(h) || !max_extents)
		return -EINVAL;
	h->max_extents = max_extents;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* buffers                                                                  */

static const struct vshm_heap_ext *buf_ext(const struct vshm_heap_buf *b)
{
	return b->nextents > VSHM_HEAP_BUF_INLINE ? b->ext_ext : b->ext_inline;
}

/* Is @b a buffer of this incarnation of @h (from the record alone)? */
static int buf_live(const struct vshm_heap *h, const struct vshm_heap_buf *b)
{
	return heap_live(h) && b && b->heap_id == h->id && b->nextents &&
	       b->len && buf_ext(b);
}

int vshm_heap_alloc_max(struct vshm_heap *h, size_t len, uint32_t max_extents,
			struct vshm_heap_buf *b)
{
	struct vshm_heap_ext local[VSHM_HEAP_BUF_INLINE], *ext = local;
	uint64_t need, serial;
	uint32_t n, k;

	if (!heap_live(h) || !b || !len || !max_extents)
		return -EINVAL;
	if (len > h->size) {
		heap_lock(h);
		h->st.fail_size++;
		heap_unlock(h);
		return -EMSGSIZE;
	}
	n = (uint32_t)((len + PAGE - 1) / PAGE);

	heap_lock(h);
	if (h->st.pages_free < n) {
		h->st.fail_nomem++;
		heap_unlock(h);
		return -ENOMEM;
	}
	need = count_extents(h, n, max_extents);
	if (need > max_extents) {
		h->st.fail_frag++;
		heap_unlock(h);
		return -E2BIG;
	}
	if (need > VSHM_HEAP_BUF_INLINE) {
		ext = malloc(need * sizeof(*ext));
		if (!ext) {
			h->st.fail_meta++;
			heap_unlock(h);
			return -ENOMEM;
		}
	}
	serial = ++h->serial;
	k = carve(h, n, serial, ext);
	h->st.allocs++;
	h->st.live_bufs++;
	h->st.extents_out += k;
	if (k > 1)
		h->st.multi_extent++;
	if (h->st.pages_total - h->st.pages_free > h->st.pages_peak)
		h->st.pages_peak = h->st.pages_total - h->st.pages_free;
	heap_unlock(h);

	memset(b, 0, sizeof(*b));
	b->heap_id = h->id;
	b->serial = serial;
	b->base_off = h->off;
	b->len = len;
	b->nextents = k;
	b->npages = n;
	if (ext == local)
		memcpy(b->ext_inline, local, k * sizeof(*ext));
	else
		b->ext_ext = ext;
	return (int)k;
}

int vshm_heap_alloc(struct vshm_heap *h, size_t len, struct vshm_heap_buf *b)
{
	if (!heap_live(h))
		return -EINVAL;
	return vshm_heap_alloc_max(h, len, h->max_extents, b);
}

/*
 * Does every extent of @b still belong to it (lock held)?  Only a caller
 * bug fails here: a copied, stale or scribbled record.
 */
static int buf_owned(const struct vshm_heap *h, const struct vshm_heap_buf *b)
{
	const struct vshm_heap_ext *ext = buf_ext(b);
	uint64_t pages = 0;

	for (uint32_t i = 0; i < b->nextents; i++) {
		uint32_t p = ext[i].page, m = ext[i].npages;

		if (p >= h->npages || !m || m > h->npages - p ||
		    ext[i].bpage != pages ||
		    h->state[p] != ST_ALLOC_HEAD || h->len[p] != m ||
		    h->left[p] != (uint32_t)b->serial ||
		    h->right[p] != (uint32_t)(b->serial >> 32))
			return 0;
		pages += m;
	}
	return pages == b->npages && pages == (b->len + PAGE - 1) / PAGE;
}

int vshm_heap_free(struct vshm_heap *h, struct vshm_heap_buf *b)
{
	const struct vshm_heap_ext *ext;
	int owned;

	if (!buf_live(h, b))
		return -EINVAL;
	ext = buf_ext(b);
	heap_lock(h);
	owned = buf_owned(h, b);
	heap_unlock(h);
	if (!owned)
		return -EINVAL;

	/* The pages are still this buffer's: scrub them without the lock. */
	if (h->flags & VSHM_HEAP_F_SCRUB) {
		for (uint32_t i = 0; i < b->nextents; i++)
			memset(page_ptr(h, ext[i].page), 0, ext[i].npages * PAGE);
		count_bytes(&h->bytes_scrubbed, b->npages * PAGE);
	}

	heap_lock(h);
	for (uint32_t i = 0; i < b->nextents; i++)
		release(h, ext[i].page, ext[i].npages);
	h->st.frees++;
	h->st.live_bufs--;
	heap_unlock(h);

	free(b->ext_ext);
	memset(b, 0, sizeof(*b));
	return 0;
}

/* ------------------------------------------------------------------------ */
/* access                                                                   */

/* The extent holding buffer page @bp (< npages): binary search on bpage. */
static uint32_t ext_of(const struct vshm_heap_buf *b, uint64_t bp)
{
	const struct vshm_heap_ext *ext = buf_ext(b);
	uint32_t lo = 0, hi = b->nextents - 1;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo + 1) / 2;

		if (ext[mid].bpage <= bp)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

static int range_ok(const struct vshm_heap_buf *b, size_t off, size_t len)
{
	return off <= b->len && len <= b->len - off;
}

/*
 * Copy between a private buffer and [off, off+len) of a heap buffer.
 * Unlocked: the pages are the buffer's until it is freed.  Reads use plain
 * memcpy although the device may be writing the same bytes: they are data
 * this library never interprets, and the caller gets one snapshot it can
 * check before use (docs/dma.md).
 */
static void copy_range(const struct vshm_heap *h, const struct vshm_heap_buf *b,
		       size_t off, const uint8_t *from, uint8_t *to, size_t len)
{
	const struct vshm_heap_ext *ext = buf_ext(b);
	uint32_t i;

	if (!len)
		return;
	i = ext_of(b, off / PAGE);
	while (len) {
		size_t in = off - (size_t)ext[i].bpage * PAGE;
		size_t n = (size_t)ext[i].npages * PAGE - in;
		uint8_t *win = page_ptr(h, ext[i].page) + in;

		if (n > len)
			n = len;
		if (from) {
			memcpy(win, from, n);
			from += n;
		} else {
			memcpy(to, win, n);
			to += n;
		}
		off += n;
		len -= n;
		i++;
	}
}

int vshm_heap_write(struct vshm_heap *h, const struct vshm_heap_buf *b,
		    size_t off, const void *src, size_t len)
{
	if (!buf_live(h, b) || !src || !range_ok(b, off, len))
		return -EINVAL;
	copy_range(h, b, off, src, NULL, len);
	if (len)
		count_bytes(&h->bytes_written, len);
	return 0;
}

int vshm_heap_read(struct vshm_heap *h, const struct vshm_heap_buf *b,
		   size_t off, void *dst, size_t len)
{
	if (!buf_live(h, b) || !dst || !range_ok(b, off, len))
		return -EINVAL;
	copy_range(h, b, off, NULL, dst, len);
	if (len)
		count_bytes(&h->bytes_read, len);
	return 0;
}

int vshm_heap_extent(const struct vshm_heap *h, const struct vshm_heap_buf *b,
		     unsigned i, void **ptr, size_t *len)
{
	const struct vshm_heap_ext *e;
	size_t start, n;

	if (!buf_live(h, b) || !ptr || !len)
		return -EINVAL;
	if (i >= b->nextents)
		return -ENOENT;
	e = &buf_ext(b)[i];
	start = (size_t)e->bpage * PAGE;
	n = (size_t)e->npages * PAGE;
	*ptr = page_ptr(h, e->page);
	*len = b->len - start < n ? b->len - start : n;
	return 0;
}

void *vshm_heap_ptr(const struct vshm_heap *h, const struct vshm_heap_buf *b,
		    size_t off, size_t *contig)
{
	const struct vshm_heap_ext *e;
	size_t in, end;

	if (!buf_live(h, b) || off >= b->len)
		return NULL;
	e = &buf_ext(b)[ext_of(b, off / PAGE)];
	in = off - (size_t)e->bpage * PAGE;
	end = (size_t)(e->bpage + e->npages) * PAGE;
	if (end > b->len)
		end = b->len;
	if (contig)
		*contig = end - off;
	return page_ptr(h, e->page) + in;
}

int vshm_heap_sg_range(const struct vshm_heap_buf *b, size_t off, size_t len,
		       struct vshm_sg *sg, unsigned max)
{
	const struct vshm_heap_ext *ext;
	uint32_t first, last;

	if (!b || !sg || !b->heap_id || !b->nextents || !buf_ext(b) || !len ||
	    !range_ok(b, off, len))
		return -EINVAL;
	ext = buf_ext(b);
	first = ext_of(b, off / PAGE);
	last = ext_of(b, (off + len - 1) / PAGE);
	if (last - first + 1 > max)
		return -E2BIG;
	for (uint32_t i = first; i <= last; i++) {
		size_t start = (size_t)ext[i].bpage * PAGE;
		size_t in = off > start ? off - start : 0;
		size_t end = start + (size_t)ext[i].npages * PAGE;

		if (end > off + len)
			end = off + len;
		sg[i - first].off = b->base_off + (uint64_t)ext[i].page * PAGE + in;
		sg[i - first].len = (uint32_t)(end - start - in);
		sg[i - first].flags = 0;
	}
	return (int)(last - first + 1);
}

int vshm_heap_sg(const struct vshm_heap_buf *b, struct vshm_sg *sg,
		 unsigned max)
{
	if (!b)
		return -EINVAL;
	return vshm_heap_sg_range(b, 0, b->len, sg, max);
}

/* ------------------------------------------------------------------------ */
/* counters, errors and self-check                                          */

int vshm_heap_stats(struct vshm_heap *h, struct vshm_heap_stats *out)
{
	uint32_t x;

	if (!heap_live(h) || !out)
		return -EINVAL;
	heap_lock(h);
	*out = h->st;
	x = tree_max(h);
	out->largest_free = x == NIL ? 0 : h->len[x];
	out->tree_height = ht(h, h->root);
	heap_unlock(h);
	out->bytes_written = __atomic_load_n(&h->bytes_written, __ATOMIC_RELAXED);
	out->bytes_read = __atomic_load_n(&h->bytes_read, __ATOMIC_RELAXED);
	out->bytes_scrubbed = __atomic_load_n(&h->bytes_scrubbed, __ATOMIC_RELAXED);
	return 0;
}

const char *vshm_heap_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case -EINVAL:
		return "invalid argument, or not a live buffer of this heap";
	case -EMSGSIZE:
		return "larger than the whole heap";
	case -ENOMEM:
		return "not enough free pages in the heap";
	case -E2BIG:
		return "enough free pages, but too fragmented for the extent limit";
	case -ENOENT:
		return "no such extent";
	case -EIO:
		return "heap metadata inconsistent";
	default:
		return "unknown heap error";
	}
}

/*
 * In-order walk: keys strictly increasing, heights right and balanced,
 * every node the head of a free extent.  @depth bounds the recursion on a
 * corrupt tree.
 */
static int check_tree(const struct vshm_heap *h, uint32_t x, unsigned depth,
		      uint32_t *prev, uint64_t *nodes, uint32_t *height)
{
	uint32_t hl, hr;

	if (x == NIL) {
		*height = 0;
		return 0;
	}
	if (depth > 64 || x >= h->npages || !(h->state[x] & ST_FREE_HEAD))
		return -EIO;
	if (check_tree(h, h->left[x], depth + 1, prev, nodes, &hl))
		return -EIO;
	if (*prev != NIL && !key_less(h, *prev, x))
		return -EIO;
	*prev = x;
	++*nodes;
	if (check_tree(h, h->right[x], depth + 1, prev, nodes, &hr))
		return -EIO;
	if (hl > hr + 1 || hr > hl + 1 || h->height[x] != 1 + (hl > hr ? hl : hr))
		return -EIO;
	*height = h->height[x];
	return 0;
}

static int check_locked(const struct vshm_heap *h)
{
	uint64_t free_pages = 0, free_ext = 0, nodes = 0;
	uint32_t i = 0, prev = NIL, height;
	int prev_free = 0;

	/* Every page on exactly one extent: hop from head to head. */
	while (i < h->npages) {
		uint8_t s = h->state[i];
		uint32_t n, t;

		/* len[] is meaningful only at a tagged page: check the tag first. */
		if (!(s & ST_FREE_HEAD) && s != ST_ALLOC_HEAD)
			return -EIO;
		n = h->len[i];
		if (!n || n > h->npages - i)
			return -EIO;
		t = i + n - 1;
		if (s & ST_FREE_HEAD) {
			if (prev_free)
				return -EIO;	/* two free extents touch */
			if (n == 1 ? s != (ST_FREE_HEAD | ST_FREE_TAIL) :
			    s != ST_FREE_HEAD || h->state[t] != ST_FREE_TAIL)
				return -EIO;
			if (h->len[t] != n)
				return -EIO;
			free_pages += n;
			free_ext++;
			prev_free = 1;
		} else if (s == ST_ALLOC_HEAD) {
			if (n > CAP)
				return -EIO;
			prev_free = 0;
		} else {
			return -EIO;
		}
		for (uint32_t j = i + 1; j < t; j++)
			if (h->state[j])
				return -EIO;
		if (n > 1 && !(s & ST_FREE_HEAD) && h->state[t])
			return -EIO;
		i += n;
	}
	if (check_tree(h, h->root, 0, &prev, &nodes, &height))
		return -EIO;
	if (nodes != free_ext || free_ext != h->st.free_extents ||
	    free_pages != h->st.pages_free || h->st.pages_total != h->npages)
		return -EIO;
	return 0;
}

int vshm_heap_check(struct vshm_heap *h)
{
	int err;

	if (!heap_live(h))
		return -EINVAL;
	heap_lock(h);
	err = check_locked(h);
	heap_unlock(h);
	return err;
}
