// SPDX-License-Identifier: MIT
/*
 * Bounce pools in the window's driver area (docs/dma.md).
 *
 * The allocator is a binary buddy allocator over slots.  Blocks are runs of
 * 2^k slots aligned to 2^k (relative to the pool's first slot), k in
 * [0, max_order].  Free blocks sit on one doubly-linked list per order; the
 * links are slot indices in two private arrays, and a bitmap of non-empty
 * orders finds the smallest usable list with one count-trailing-zeros.  So
 * an allocation costs one bit scan plus at most max_order splits, a free at
 * most max_order merges: O(log slots), never a scan over slots.
 *
 * Nothing the allocator reads lives in the window: the device may rewrite
 * every byte of the pool at any moment and can only ever corrupt payload.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <vshm/bounce.h>

#define NIL		UINT32_MAX	/* end of a free list */

/*
 * Slot state, one byte per slot, meaningful only at a block's first slot;
 * every other slot holds 0.  That invariant is what lets a free look at its
 * buddy's first slot and know in O(1) whether the buddy is a whole free
 * block of the same order.
 */
#define ST_FREE		0x80u	/* head of a free block */
#define ST_MAP		0x40u	/* head of a block owned by a mapping */
#define ST_COH		0x20u	/* head of a coherent allocation */
#define ST_ORDER	0x1fu	/* the block's order */

_Static_assert(VSHM_BOUNCE_MAX_ORDER <= ST_ORDER, "order must fit the state byte");

/* Pool ids start at 1 so a zeroed map (pool_id 0) is never live. */
static uint64_t next_pool_id;

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */

static int is_pow2_u64(uint64_t x)
{
	return x && !(x & (x - 1));
}

static uint32_t ilog2_u64(uint64_t x)
{
	return 63u - (uint32_t)__builtin_clzll(x);
}

static void pool_lock(struct vshm_bounce_pool *p)
{
	if (p->flags & VSHM_BOUNCE_F_LOCKED)
		pthread_mutex_lock(&p->lock);
}

static void pool_unlock(struct vshm_bounce_pool *p)
{
	if (p->flags & VSHM_BOUNCE_F_LOCKED)
		pthread_mutex_unlock(&p->lock);
}

/*
 * Byte counters are bumped outside the lock (copies run unlocked), so they
 * are relaxed atomics; everything else in st is written under the lock.
 */
static void count_bytes(uint64_t *ctr, uint64_t n)
{
	__atomic_fetch_add(ctr, n, __ATOMIC_RELAXED);
}

/* Order of the smallest block holding @len bytes (1 <= len <= max_seg). */
static uint32_t order_for_len(const struct vshm_bounce_pool *p, uint64_t len)
{
	uint64_t slots = (len + p->slot_size - 1) >> p->slot_shift;

	return slots <= 1 ? 0 : ilog2_u64(slots - 1) + 1;
}

/* Window pointer of slot @i (an index we issued, so always in range). */
static uint8_t *slot_ptr(const struct vshm_bounce_pool *p, uint32_t i)
{
	return p->base + ((uint64_t)i << p->slot_shift);
}

static int pool_live(const struct vshm_bounce_pool *p)
{
	return p && p->state;
}

/* ------------------------------------------------------------------------ */
/* buddy allocator (caller holds the lock)                                  */

static void list_push(struct vshm_bounce_pool *p, uint32_t i, uint32_t k)
{
	uint32_t h = p->free_head[k];

	p->next[i] = h;
	p->prev[i] = NIL;
	if (h != NIL)
		p->prev[h] = i;
	p->free_head[k] = i;
	p->nonempty |= 1u << k;
	p->state[i] = (uint8_t)(ST_FREE | k);
}

static void list_del(struct vshm_bounce_pool *p, uint32_t i, uint32_t k)
{
	uint32_t n = p->next[i], pv = p->prev[i];

	if (pv != NIL)
		p->next[pv] = n;
	else
		p->free_head[k] = n;
	if (n != NIL)
		p->prev[n] = pv;
	if (p->free_head[k] == NIL)
		p->nonempty &= ~(1u << k);
	p->state[i] = 0;
}

static void count_steps(struct vshm_bounce_pool *p, uint32_t steps)
{
	p->st.alloc_ops++;
	p->st.alloc_steps += steps;
	if (steps > p->st.alloc_steps_max)
		p->st.alloc_steps_max = steps;
}

/* Take a block of 2^k slots, tagged @tag; its first slot goes to *@out. */
static int block_alloc(struct vshm_bounce_pool *p, uint32_t k, uint32_t tag,
		       uint32_t *out)
{
	uint32_t mask = p->nonempty & ~((1u << k) - 1u);
	uint32_t j, i, steps = 1;

	if (!mask)
		return -ENOMEM;
	j = (uint32_t)__builtin_ctz(mask);
	i = p->free_head[j];
	list_del(p, i, j);
	/* Split: keep the lower half, free the upper half, down to order k. */
	while (j > k) {
		j--;
		list_push(p, i + (1u << j), j);
		steps++;
	}
	p->state[i] = (uint8_t)(tag | k);
	p->st.slots_in_use += 1u << k;
	if (p->st.slots_in_use > p->st.slots_peak)
		p->st.slots_peak = p->st.slots_in_use;
	count_steps(p, steps);
	*out = i;
	return 0;
}

/* Return the block at slot @i of order @k (already validated). */
static void block_free(struct vshm_bounce_pool *p, uint32_t i, uint32_t k)
{
	uint32_t steps = 1;

	p->state[i] = 0;
	p->st.slots_in_use -= 1u << k;
	/*
	 * Merge with the buddy while it is a whole free block of the same
	 * order.  A buddy that would run past the last slot (pools need not
	 * be a power of two slots long) is never free, so it stops the merge.
	 */
	while (k < p->max_order) {
		uint32_t b = i ^ (1u << k);

		if (b > p->nslots - (1u << k) || p->state[b] != (ST_FREE | k))
			break;
		list_del(p, b, k);
		i &= ~(1u << k);
		k++;
		steps++;
	}
	list_push(p, i, k);
	count_steps(p, steps);
}

/* Is slot @i the head of a live block tagged @tag of order @k? */
static int block_is(const struct vshm_bounce_pool *p, uint32_t i, uint32_t k,
		    uint32_t tag)
{
	return i < p->nslots && p->state[i] == (tag | k);
}

/* ------------------------------------------------------------------------ */
/* pools                                                                    */

int vshm_bounce_pool_init(struct vshm_bounce_pool *p, struct vshm_window *w,
			  uint64_t off, uint64_t size, uint32_t slot_size,
			  uint32_t max_seg)
{
	uint32_t seg_order, pool_order, i;
	uint64_t nslots;
	uint8_t *base;
	int err;

	if (!p)
		return -EINVAL;
	memset(p, 0, sizeof(*p));
	if (!w)
		return -EINVAL;
	if (!slot_size)
		slot_size = VSHM_BOUNCE_SLOT_SIZE_DEFAULT;
	if (!max_seg)
		max_seg = slot_size > VSHM_BOUNCE_MAX_SEG_DEFAULT ?
			  slot_size : VSHM_BOUNCE_MAX_SEG_DEFAULT;
	if (!is_pow2_u64(slot_size) || slot_size < VSHM_BOUNCE_SLOT_SIZE_MIN)
		return -EINVAL;
	if (!is_pow2_u64(max_seg) || max_seg < slot_size)
		return -EINVAL;
	if (!size || off % VSHM_PAGE_SIZE || size % VSHM_PAGE_SIZE ||
	    size % slot_size)
		return -EINVAL;
	/* The accessor is the one bounds check: driver area only, no wrap. */
	base = vshm_win_ptr(w, off, size);
	if (!base)
		return -EINVAL;
	nslots = size / slot_size;
	if (nslots >= NIL)
		return -EINVAL;

	seg_order = ilog2_u64(max_seg) - ilog2_u64(slot_size);
	pool_order = ilog2_u64(nslots);
	p->max_order = seg_order < pool_order ? seg_order : pool_order;
	if (p->max_order > VSHM_BOUNCE_MAX_ORDER)
		p->max_order = VSHM_BOUNCE_MAX_ORDER;
	p->win = w;
	p->base = base;
	p->off = off;
	p->size = size;
	p->slot_size = slot_size;
	p->slot_shift = ilog2_u64(slot_size);
	p->max_seg = slot_size << p->max_order;
	p->nslots = (uint32_t)nslots;

	/* Private metadata: 9 bytes per slot, never in the window. */
	p->next = malloc(nslots * sizeof(*p->next));
	p->prev = malloc(nslots * sizeof(*p->prev));
	p->state = calloc(nslots, 1);
	if (!p->next || !p->prev || !p->state) {
		err = -ENOMEM;
		goto fail;
	}
	err = -pthread_mutex_init(&p->lock, NULL);
	if (err)
		goto fail;

	for (i = 0; i <= VSHM_BOUNCE_MAX_ORDER; i++)
		p->free_head[i] = NIL;
	/*
	 * Cut [0, nslots) into the largest aligned blocks that fit, capped
	 * at max_order: 2^max_order blocks, then a tail of smaller ones.
	 */
	for (i = 0; i < p->nslots; ) {
		uint32_t k = i ? (uint32_t)__builtin_ctz(i) : p->max_order;

		if (k > p->max_order)
			k = p->max_order;
		while ((uint64_t)i + (1u << k) > p->nslots)
			k--;
		list_push(p, i, k);
		i += 1u << k;
	}
	p->st.slots_total = p->nslots;
	p->st.max_order = p->max_order;
	p->st.slot_size = p->slot_size;
	p->st.max_seg = p->max_seg;
	p->id = __atomic_add_fetch(&next_pool_id, 1, __ATOMIC_RELAXED);
	return 0;

fail:
	free(p->next);
	free(p->prev);
	free(p->state);
	memset(p, 0, sizeof(*p));
	return err;
}

void vshm_bounce_pool_fini(struct vshm_bounce_pool *p)
{
	if (!pool_live(p))
		return;
	pthread_mutex_destroy(&p->lock);
	free(p->next);
	free(p->prev);
	free(p->state);
	memset(p, 0, sizeof(*p));
}

int vshm_bounce_pool_set_flags(struct vshm_bounce_pool *p, uint32_t flags)
{
	if (!pool_live(p) || (flags & ~VSHM_BOUNCE_F_ALL))
		return -EINVAL;
	p->flags = flags;
	return 0;
}

uint32_t vshm_bounce_max_seg(const struct vshm_bounce_pool *p)
{
	return pool_live(p) ? p->max_seg : 0;
}

size_t vshm_bounce_nseg(const struct vshm_bounce_pool *p, size_t len)
{
	if (!pool_live(p) || !len)
		return 0;
	return (len - 1) / p->max_seg + 1;
}

/* ------------------------------------------------------------------------ */
/* mappings                                                                 */

static int dir_ok(int dir)
{
	return dir == VSHM_DMA_BIDIRECTIONAL || dir == VSHM_DMA_TO_DEVICE ||
	       dir == VSHM_DMA_FROM_DEVICE;
}

static const uint32_t *map_segs(const struct vshm_bounce_map *m)
{
	return m->nseg > VSHM_BOUNCE_MAP_INLINE ? m->seg_ext : m->seg_inline;
}

static size_t seg_len(const struct vshm_bounce_pool *p, size_t len, size_t i)
{
	size_t left = len - i * (size_t)p->max_seg;

	return left < p->max_seg ? left : p->max_seg;
}

static int map_live(const struct vshm_bounce_pool *p,
		    const struct vshm_bounce_map *m)
{
	return pool_live(p) && m && m->pool_id == p->id && m->nseg &&
	       m->len && m->buf;
}

enum copy_way { TO_WINDOW, FROM_WINDOW, CLEAR_WINDOW };

/*
 * Copy [off, off+len) of a mapping.  Segments are uniform (max_seg each but
 * the last), so the segment of a byte is off / max_seg.  Runs unlocked: the
 * blocks belong to this mapping alone until it is unmapped.
 *
 * Payload is copied out of the window with plain memcpy although the device
 * may be rewriting it: the bytes are data that this library never
 * interprets, so a concurrent writer can only make them wrong, never steer
 * a decision here (docs/dma.md, "Copying out of the window").
 */
static void copy_range(struct vshm_bounce_pool *p,
		       const struct vshm_bounce_map *m, size_t off, size_t len,
		       enum copy_way way)
{
	const uint32_t *segs = map_segs(m);
	uint8_t *buf = (uint8_t *)m->buf;
	size_t done = 0;

	while (done < len) {
		size_t pos = off + done;
		size_t i = pos >> (p->slot_shift + p->max_order);
		size_t in = pos & (p->max_seg - 1u);
		size_t n = seg_len(p, m->len, i) - in;
		uint8_t *win = slot_ptr(p, segs[i]) + in;

		if (n > len - done)
			n = len - done;
		switch (way) {
		case TO_WINDOW:
			memcpy(win, buf + pos, n);
			break;
		case FROM_WINDOW:
			memcpy(buf + pos, win, n);
			break;
		case CLEAR_WINDOW:
			memset(win, 0, n);
			break;
		}
		done += n;
	}
	if (!len)
		return;
	if (way == TO_WINDOW)
		count_bytes(&p->st.bytes_to_dev, len);
	else if (way == FROM_WINDOW)
		count_bytes(&p->st.bytes_from_dev, len);
	else
		count_bytes(&p->st.bytes_cleared, len);
}

/* Free the blocks of @nseg segments of a @len-byte mapping (lock held). */
static void free_segs(struct vshm_bounce_pool *p, const uint32_t *segs,
		      size_t nseg, size_t len)
{
	for (size_t i = 0; i < nseg; i++)
		block_free(p, segs[i], order_for_len(p, seg_len(p, len, i)));
}

int vshm_bounce_map(struct vshm_bounce_pool *p, void *buf, size_t len, int dir,
		    struct vshm_bounce_map *m, struct vshm_sg *sg,
		    unsigned max_sg)
{
	uint32_t local[VSHM_BOUNCE_MAP_INLINE], *segs = local;
	uint64_t need;
	size_t nseg, i;

	if (!pool_live(p) || !buf || !m || !sg || !len || !dir_ok(dir))
		return -EINVAL;
	if (len > p->size)
		return -EMSGSIZE;
	nseg = vshm_bounce_nseg(p, len);
	/* Slots needed even in an empty pool: full segments plus the tail. */
	need = ((uint64_t)(nseg - 1) << p->max_order) +
	       (1ull << order_for_len(p, seg_len(p, len, nseg - 1)));
	if (need > p->nslots)
		return -EMSGSIZE;
	if (nseg > max_sg)
		return -E2BIG;
	if (nseg > VSHM_BOUNCE_MAP_INLINE) {
		segs = malloc(nseg * sizeof(*segs));
		if (!segs)
			return -ENOMEM;
	}

	pool_lock(p);
	for (i = 0; i < nseg; i++) {
		uint32_t k = order_for_len(p, seg_len(p, len, i));

		if (block_alloc(p, k, ST_MAP, &segs[i]))
			break;
	}
	if (i < nseg) {
		/* Exhausted part-way: give back what this mapping took. */
		free_segs(p, segs, i, len);
		p->st.map_enomem++;
		pool_unlock(p);
		if (segs != local)
			free(segs);
		return -ENOMEM;
	}
	p->st.maps++;
	if (nseg > 1)
		p->st.split_maps++;
	pool_unlock(p);

	memset(m, 0, sizeof(*m));
	m->pool_id = p->id;
	m->buf = buf;
	m->len = len;
	m->dir = dir;
	m->nseg = (uint32_t)nseg;
	if (segs == local)
		memcpy(m->seg_inline, local, nseg * sizeof(*segs));
	else
		m->seg_ext = segs;

	for (i = 0; i < nseg; i++) {
		sg[i].off = p->off + ((uint64_t)segs[i] << p->slot_shift);
		sg[i].len = (uint32_t)seg_len(p, len, i);
		sg[i].flags = 0;
	}
	/*
	 * FROM_DEVICE: the caller's bytes are private and the device must not
	 * get them; stale bytes of an earlier mapping must not reach the
	 * caller either, if the device writes less than it reports.  So the
	 * window is cleared, never filled with the buffer.
	 */
	copy_range(p, m, 0, len,
		   dir == VSHM_DMA_FROM_DEVICE ? CLEAR_WINDOW : TO_WINDOW);
	return (int)nseg;
}

int vshm_bounce_unmap(struct vshm_bounce_pool *p, struct vshm_bounce_map *m,
		      size_t written)
{
	const uint32_t *segs;
	size_t i;
	int bad = 0;

	if (!map_live(p, m))
		return -EINVAL;
	segs = map_segs(m);
	if (!segs)
		return -EINVAL;

	/*
	 * Check the whole record before touching anything: every segment must
	 * still be a mapped block of the order this length implies.  Only a
	 * caller bug (a copied or scribbled map) fails here.
	 */
	pool_lock(p);
	for (i = 0; i < m->nseg && !bad; i++)
		bad = !block_is(p, segs[i], order_for_len(p, seg_len(p, m->len, i)),
				ST_MAP);
	pool_unlock(p);
	if (bad)
		return -EINVAL;

	if (m->dir != VSHM_DMA_TO_DEVICE)
		copy_range(p, m, 0, written < m->len ? written : m->len,
			   FROM_WINDOW);
	if (p->flags & VSHM_BOUNCE_F_SCRUB)
		copy_range(p, m, 0, m->len, CLEAR_WINDOW);

	pool_lock(p);
	free_segs(p, segs, m->nseg, m->len);
	p->st.unmaps++;
	pool_unlock(p);

	free(m->seg_ext);
	memset(m, 0, sizeof(*m));
	return 0;
}

static int sync_range_ok(const struct vshm_bounce_pool *p,
			 const struct vshm_bounce_map *m, size_t off, size_t len)
{
	return map_live(p, m) && off <= m->len && len <= m->len - off;
}

int vshm_bounce_sync_for_device(struct vshm_bounce_pool *p,
				const struct vshm_bounce_map *m,
				size_t off, size_t len)
{
	if (!sync_range_ok(p, m, off, len))
		return -EINVAL;
	if (m->dir != VSHM_DMA_FROM_DEVICE)
		copy_range(p, m, off, len, TO_WINDOW);
	return 0;
}

int vshm_bounce_sync_for_cpu(struct vshm_bounce_pool *p,
			     const struct vshm_bounce_map *m,
			     size_t off, size_t len)
{
	if (!sync_range_ok(p, m, off, len))
		return -EINVAL;
	if (m->dir != VSHM_DMA_TO_DEVICE)
		copy_range(p, m, off, len, FROM_WINDOW);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* coherent allocations                                                     */

int vshm_bounce_alloc(struct vshm_bounce_pool *p, size_t len,
		      struct vshm_sg *seg)
{
	uint32_t i;
	int err;

	if (!pool_live(p) || !seg || !len || len > p->max_seg)
		return -EINVAL;
	pool_lock(p);
	err = block_alloc(p, order_for_len(p, len), ST_COH, &i);
	if (!err)
		p->st.allocs++;
	pool_unlock(p);
	if (err)
		return err;
	memset(slot_ptr(p, i), 0, len);
	count_bytes(&p->st.bytes_cleared, len);
	seg->off = p->off + ((uint64_t)i << p->slot_shift);
	seg->len = (uint32_t)len;
	seg->flags = 0;
	return 0;
}

int vshm_bounce_free(struct vshm_bounce_pool *p, const struct vshm_sg *seg)
{
	uint64_t rel;
	uint32_t i, k;
	int err = -EINVAL;

	if (!pool_live(p) || !seg || !seg->len || seg->len > p->max_seg ||
	    seg->off < p->off)
		return -EINVAL;
	rel = seg->off - p->off;
	if (rel >= p->size || rel & (p->slot_size - 1u))
		return -EINVAL;
	i = (uint32_t)(rel >> p->slot_shift);
	k = order_for_len(p, seg->len);

	pool_lock(p);
	if (block_is(p, i, k, ST_COH)) {
		/* Rare and small: scrub under the lock, before anyone reuses it. */
		if (p->flags & VSHM_BOUNCE_F_SCRUB) {
			memset(slot_ptr(p, i), 0, seg->len);
			count_bytes(&p->st.bytes_cleared, seg->len);
		}
		block_free(p, i, k);
		p->st.frees++;
		err = 0;
	}
	pool_unlock(p);
	return err;
}

/* ------------------------------------------------------------------------ */
/* counters and self-check                                                  */

int vshm_bounce_stats(struct vshm_bounce_pool *p, struct vshm_bounce_stats *out)
{
	if (!pool_live(p) || !out)
		return -EINVAL;
	pool_lock(p);
	*out = (struct vshm_bounce_stats){
		.slots_total = p->st.slots_total,
		.slots_in_use = p->st.slots_in_use,
		.slots_peak = p->st.slots_peak,
		.maps = p->st.maps,
		.unmaps = p->st.unmaps,
		.map_enomem = p->st.map_enomem,
		.split_maps = p->st.split_maps,
		.allocs = p->st.allocs,
		.frees = p->st.frees,
		.alloc_ops = p->st.alloc_ops,
		.alloc_steps = p->st.alloc_steps,
		.alloc_steps_max = p->st.alloc_steps_max,
		.max_order = p->st.max_order,
		.slot_size = p->st.slot_size,
		.max_seg = p->st.max_seg,
	};
	pool_unlock(p);
	out->bytes_to_dev = __atomic_load_n(&p->st.bytes_to_dev, __ATOMIC_RELAXED);
	out->bytes_from_dev = __atomic_load_n(&p->st.bytes_from_dev, __ATOMIC_RELAXED);
	out->bytes_cleared = __atomic_load_n(&p->st.bytes_cleared, __ATOMIC_RELAXED);
	return 0;
}

/*
 * Mark [i, i + 2^k) in @seen (2 for the head, 1 for the rest); 0 if the block
 * is aligned, inside the pool and overlaps nothing marked before.
 */
static int cover(const struct vshm_bounce_pool *p, uint8_t *seen, uint32_t i,
		 uint32_t k)
{
	if (k > p->max_order || i & ((1u << k) - 1u) ||
	    (uint64_t)i + (1u << k) > p->nslots)
		return -EIO;
	for (uint32_t s = i; s < i + (1u << k); s++) {
		if (seen[s])
			return -EIO;
		seen[s] = s == i ? 2 : 1;
	}
	return 0;
}

static int check_locked(struct vshm_bounce_pool *p, uint8_t *seen)
{
	uint64_t free_slots = 0, used_slots = 0;
	uint32_t k, i;

	for (k = 0; k <= VSHM_BOUNCE_MAX_ORDER; k++) {
		uint32_t prev = NIL, hops = 0;

		if (!!(p->nonempty & (1u << k)) != (p->free_head[k] != NIL))
			return -EIO;
		for (i = p->free_head[k]; i != NIL; prev = i, i = p->next[i]) {
			if (++hops > p->nslots || i >= p->nslots ||
			    p->prev[i] != prev || p->state[i] != (ST_FREE | k))
				return -EIO;
			if (cover(p, seen, i, k))
				return -EIO;
			free_slots += 1u << k;
		}
	}
	/*
	 * A free state must be the head of a listed block; any other non-zero
	 * state is the head of a live block.  With no overlaps and the sums
	 * matching, every slot is then covered exactly once.
	 */
	for (i = 0; i < p->nslots; i++) {
		uint8_t s = p->state[i];

		if (s & ST_FREE) {
			if (seen[i] != 2)
				return -EIO;
			continue;
		}
		if (!s)
			continue;
		if ((s & ~ST_ORDER) != ST_MAP && (s & ~ST_ORDER) != ST_COH)
			return -EIO;
		if (cover(p, seen, i, s & ST_ORDER))
			return -EIO;
		used_slots += 1u << (s & ST_ORDER);
	}
	if (free_slots + used_slots != p->nslots ||
	    used_slots != p->st.slots_in_use)
		return -EIO;
	return 0;
}

int vshm_bounce_pool_check(struct vshm_bounce_pool *p)
{
	uint8_t *seen;
	int err;

	if (!pool_live(p))
		return -EINVAL;
	seen = calloc(p->nslots, 1);
	if (!seen)
		return -ENOMEM;
	pool_lock(p);
	err = check_locked(p, seen);
	pool_unlock(p);
	free(seen);
	return err;
}
