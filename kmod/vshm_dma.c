// SPDX-License-Identifier: GPL-2.0
/*
 * virtio_shm DMA layer: DMA ops that keep every byte the device may touch
 * inside the shared window.
 *
 * One struct vshm_dma per virtio device: a struct device (a child of the
 * PCI device, the parent of the virtio device, so the virtio core uses it
 * for every DMA API call of that device) and a pool, a page-aligned range
 * of the window's driver area managed by a gen_pool whose "physical"
 * addresses are window offsets.
 *
 *  - dma_alloc_coherent() hands out zeroed, page-aligned pool memory; the
 *    virtio core puts its vrings there.
 *  - dma_map_page() and dma_map_sg() allocate a bounce buffer in the pool:
 *    TO_DEVICE and BIDIRECTIONAL buffers are copied in, FROM_DEVICE buffers
 *    are cleared (no stale bytes of an earlier mapping reach the guest when
 *    the device writes less than it was given).  Unmapping copies
 *    FROM_DEVICE and BIDIRECTIONAL buffers back, then frees.
 *  - sync_single_for_cpu/_device copy the named range the right way.
 *  - max_mapping_size() is the segment limit, so virtio_blk caps its
 *    segments there; a mapping that is too big or finds the pool full
 *    fails with DMA_MAPPING_ERROR (the virtio core turns that into -ENOMEM,
 *    the block layer retries later), it never waits.
 *
 * What each bounce buffer shadows is recorded per 512-byte granule in
 * private memory; the window holds only data.  The device can rewrite a
 * bounce buffer at any time: its bytes are data, copied once and never
 * interpreted here.
 */
#include <linux/atomic.h>
#include <linux/dma-map-ops.h>
#include <linux/dma-mapping.h>
#include <linux/err.h>
#include <linux/genalloc.h>
#include <linux/io.h>
#include <linux/mm.h>
#include <linux/overflow.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/vmalloc.h>

#include "vshm_priv.h"

#define GRAN_SHIFT	9			/* bounce allocation unit */
#define GRAN		(1u << GRAN_SHIFT)

enum { REC_FREE, REC_BOUNCE, REC_COHERENT };

/* One per granule of the pool; private memory, never in the window. */
struct vshm_brec {
	phys_addr_t orig;	/* guest RAM the mapping shadows (its start) */
	u32 head;		/* granule index where the mapping starts */
	u32 size;		/* bytes of the mapping (as asked) */
	u8 dir;			/* enum dma_data_direction */
	u8 kind;		/* REC_* */
};

struct vshm_dma {
	struct device dev;		/* carries the ops; parent of the vdev */
	struct device_dma_parameters parms;
	void *base;			/* the pool in our mapping of the window */
	u64 off;			/* the pool's window offset */
	u64 size;			/* bytes of the pool */
	size_t max_seg;			/* largest single mapping */
	struct gen_pool *pool;		/* addresses: base..; "phys": window offsets */
	spinlock_t lock;		/* recs[] */
	struct vshm_brec *recs;		/* [size >> GRAN_SHIFT] */
	void (*unmap_hook)(void *ctx);	/* after every bounce unmap */
	void *hook_ctx;

	atomic64_t in_use, peak, coherent;
	atomic64_t maps, unmaps, bytes_to_dev, bytes_from_dev;
	atomic64_t map_failures, alloc_failures, bad_unmaps;
};

static struct vshm_dma *to_vshm_dma(struct device *dev)
{
	return container_of(dev, struct vshm_dma, dev);
}

static void account(struct vshm_dma *d, s64 bytes)
{
	s64 now = atomic64_add_return(bytes, &d->in_use);
	s64 peak = atomic64_read(&d->peak);

	while (now > peak) {
		s64 seen = atomic64_cmpxchg(&d->peak, peak, now);

		if (seen == peak)
			break;
		peak = seen;
	}
}

/* The pool offset of @dma if [@dma, @dma + @len) lies in the pool. */
static bool in_pool(struct vshm_dma *d, dma_addr_t dma, u64 len, u64 *rel)
{
	u64 r;

	if (dma < d->off)
		return false;
	r = dma - d->off;
	if (r >= d->size || len > d->size - r)
		return false;
	*rel = r;
	return true;
}

void *vshm_dma_pool_ptr(struct vshm_dma *d, u64 off, u64 len)
{
	u64 rel;

	return in_pool(d, off, len, &rel) ? d->base + rel : NULL;
}

/* ------------------------------------------------------------------------ */
/* Coherent memory                                                           */

static void *vshm_dma_alloc(struct device *dev, size_t size, dma_addr_t *dma,
			    gfp_t gfp, unsigned long attrs)
{
	struct vshm_dma *d = to_vshm_dma(dev);
	struct genpool_data_align align = { .align = PAGE_SIZE };
	size_t len = PAGE_ALIGN(size);
	unsigned long flags, va;
	u32 g;

	if (!size || len > d->size) {
		atomic64_inc(&d->alloc_failures);
		return NULL;
	}
	va = gen_pool_alloc_algo(d->pool, len, gen_pool_first_fit_align, &align);
	if (!va) {
		atomic64_inc(&d->alloc_failures);
		return NULL;
	}
	memset((void *)va, 0, len);
	g = (va - (unsigned long)d->base) >> GRAN_SHIFT;
	spin_lock_irqsave(&d->lock, flags);
	d->recs[g] = (struct vshm_brec){ .head = g, .size = len, .kind = REC_COHERENT };
	spin_unlock_irqrestore(&d->lock, flags);
	account(d, len);
	atomic64_add(len, &d->coherent);
	*dma = d->off + (va - (unsigned long)d->base);
	return (void *)va;
}

static void vshm_dma_free(struct device *dev, size_t size, void *vaddr,
			  dma_addr_t dma, unsigned long attrs)
{
	struct vshm_dma *d = to_vshm_dma(dev);
	unsigned long flags;
	u64 rel;
	u32 g, len = 0;

	if (!in_pool(d, dma, 1, &rel) || vaddr != d->base + rel) {
		atomic64_inc(&d->bad_unmaps);
		dev_warn_ratelimited(dev, "dma_free_coherent of %pad, not ours\n", &dma);
		return;
	}
	g = rel >> GRAN_SHIFT;
	spin_lock_irqsave(&d->lock, flags);
	if (d->recs[g].kind == REC_COHERENT && d->recs[g].head == g) {
		len = d->recs[g].size;
		d->recs[g].kind = REC_FREE;
	}
	spin_unlock_irqrestore(&d->lock, flags);
	if (!len) {
		atomic64_inc(&d->bad_unmaps);
		dev_warn_ratelimited(dev, "dma_free_coherent of %pad, not allocated\n", &dma);
		return;
	}
	gen_pool_free(d->pool, (unsigned long)vaddr, len);
	account(d, -(s64)len);
	atomic64_sub(len, &d->coherent);
}

/* ------------------------------------------------------------------------ */
/* Bounce buffers                                                            */

static dma_addr_t map_phys(struct vshm_dma *d, phys_addr_t phys, size_t size,
			   enum dma_data_direction dir, unsigned long attrs)
{
	unsigned long flags, va;
	size_t len;
	u32 g0, n, i;
	void *bounce;

	if (!size || size > d->max_seg)
		goto fail;
	len = ALIGN(size, GRAN);
	va = gen_pool_alloc(d->pool, len);
	if (!va)
		goto fail;
	bounce = (void *)va;
	g0 = (va - (unsigned long)d->base) >> GRAN_SHIFT;
	n = len >> GRAN_SHIFT;
	spin_lock_irqsave(&d->lock, flags);
	for (i = 0; i < n; i++)
		d->recs[g0 + i] = (struct vshm_brec){
			.orig = phys, .head = g0, .size = size, .dir = dir, .kind = REC_BOUNCE,
		};
	spin_unlock_irqrestore(&d->lock, flags);

	if (dir == DMA_FROM_DEVICE) {
		memset(bounce, 0, size);
	} else if (!(attrs & DMA_ATTR_SKIP_CPU_SYNC)) {
		memcpy(bounce, phys_to_virt(phys), size);
		atomic64_add(size, &d->bytes_to_dev);
	}
	atomic64_inc(&d->maps);
	account(d, len);
	return d->off + (va - (unsigned long)d->base);

fail:
	atomic64_inc(&d->map_failures);
	return DMA_MAPPING_ERROR;
}

/*
 * The mapping that contains [@dma, @dma + @size): its record (copied) and
 * the byte offset of @dma in it.  With @release the records are cleared.
 */
static bool find_mapping(struct vshm_dma *d, dma_addr_t dma, size_t size,
			 bool release, struct vshm_brec *out, u64 *delta)
{
	unsigned long flags;
	struct vshm_brec r;
	u64 rel, start;
	u32 i, n;
	bool ok = false;

	if (!in_pool(d, dma, size ? size : 1, &rel))
		return false;
	spin_lock_irqsave(&d->lock, flags);
	r = d->recs[rel >> GRAN_SHIFT];
	start = (u64)r.head << GRAN_SHIFT;
	if (r.kind == REC_BOUNCE && rel - start <= r.size && size <= r.size - (rel - start) &&
	    (!release || rel == start)) {
		ok = true;
		if (release) {
			n = ALIGN(r.size, GRAN) >> GRAN_SHIFT;
			for (i = 0; i < n; i++)
				d->recs[r.head + i].kind = REC_FREE;
		}
	}
	spin_unlock_irqrestore(&d->lock, flags);
	if (ok) {
		*out = r;
		*delta = rel - start;
	}
	return ok;
}

static void unmap_phys(struct vshm_dma *d, dma_addr_t dma, size_t size,
		       enum dma_data_direction dir, unsigned long attrs)
{
	struct vshm_brec r;
	void *bounce;
	u64 delta;

	if (!find_mapping(d, dma, 0, true, &r, &delta)) {
		atomic64_inc(&d->bad_unmaps);
		dev_warn_ratelimited(&d->dev, "unmap of %pad (%zu bytes): not a live mapping\n",
				     &dma, size);
		return;
	}
	bounce = d->base + ((u64)r.head << GRAN_SHIFT);
	if (r.dir != DMA_TO_DEVICE && !(attrs & DMA_ATTR_SKIP_CPU_SYNC)) {
		memcpy(phys_to_virt(r.orig), bounce, r.size);
		atomic64_add(r.size, &d->bytes_from_dev);
	}
	/*
	 * The hook runs before the bounce space can be handed out again: what
	 * it reads there (an indirect table being unmapped) is still ours.
	 */
	if (d->unmap_hook)
		d->unmap_hook(d->hook_ctx);
	gen_pool_free(d->pool, (unsigned long)bounce, ALIGN(r.size, GRAN));
	account(d, -(s64)ALIGN(r.size, GRAN));
	atomic64_inc(&d->unmaps);
}

static void sync_phys(struct vshm_dma *d, dma_addr_t dma, size_t size, bool to_device)
{
	struct vshm_brec r;
	void *bounce;
	u64 delta;

	if (!find_mapping(d, dma, size, false, &r, &delta)) {
		atomic64_inc(&d->bad_unmaps);
		dev_warn_ratelimited(&d->dev, "sync of %pad (%zu bytes): not a live mapping\n",
				     &dma, size);
		return;
	}
	bounce = d->base + ((u64)r.head << GRAN_SHIFT) + delta;
	if (to_device && r.dir != DMA_FROM_DEVICE) {
		memcpy(bounce, phys_to_virt(r.orig + delta), size);
		atomic64_add(size, &d->bytes_to_dev);
	} else if (!to_device && r.dir != DMA_TO_DEVICE) {
		memcpy(phys_to_virt(r.orig + delta), bounce, size);
		atomic64_add(size, &d->bytes_from_dev);
	}
}

static dma_addr_t vshm_dma_map_page(struct device *dev, struct page *page,
				    unsigned long offset, size_t size,
				    enum dma_data_direction dir, unsigned long attrs)
{
	return map_phys(to_vshm_dma(dev), page_to_phys(page) + offset, size, dir, attrs);
}

static void vshm_dma_unmap_page(struct device *dev, dma_addr_t dma, size_t size,
				enum dma_data_direction dir, unsigned long attrs)
{
	unmap_phys(to_vshm_dma(dev), dma, size, dir, attrs);
}

static int vshm_dma_map_sg(struct device *dev, struct scatterlist *sgl, int nents,
			   enum dma_data_direction dir, unsigned long attrs)
{
	struct vshm_dma *d = to_vshm_dma(dev);
	struct scatterlist *sg;
	int i, j;

	for_each_sg(sgl, sg, nents, i) {
		sg->dma_address = map_phys(d, sg_phys(sg), sg->length, dir, attrs);
		if (sg->dma_address == DMA_MAPPING_ERROR)
			goto undo;
		sg_dma_len(sg) = sg->length;
	}
	return nents;

undo:
	for_each_sg(sgl, sg, i, j)
		unmap_phys(d, sg->dma_address, sg->length, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC);
	return -ENOMEM;
}

static void vshm_dma_unmap_sg(struct device *dev, struct scatterlist *sgl, int nents,
			      enum dma_data_direction dir, unsigned long attrs)
{
	struct vshm_dma *d = to_vshm_dma(dev);
	struct scatterlist *sg;
	int i;

	for_each_sg(sgl, sg, nents, i)
		unmap_phys(d, sg->dma_address, sg_dma_len(sg), dir, attrs);
}

static void vshm_dma_sync_single_for_cpu(struct device *dev, dma_addr_t dma,
					 size_t size, enum dma_data_direction dir)
{
	sync_phys(to_vshm_dma(dev), dma, size, false);
}

static void vshm_dma_sync_single_for_device(struct device *dev, dma_addr_t dma,
					    size_t size, enum dma_data_direction dir)
{
	sync_phys(to_vshm_dma(dev), dma, size, true);
}

static void vshm_dma_sync_sg_for_cpu(struct device *dev, struct scatterlist *sgl,
				     int nents, enum dma_data_direction dir)
{
	struct scatterlist *sg;
	int i;

	for_each_sg(sgl, sg, nents, i)
		sync_phys(to_vshm_dma(dev), sg->dma_address, sg_dma_len(sg), false);
}

static void vshm_dma_sync_sg_for_device(struct device *dev, struct scatterlist *sgl,
					int nents, enum dma_data_direction dir)
{
	struct scatterlist *sg;
	int i;

	for_each_sg(sgl, sg, nents, i)
		sync_phys(to_vshm_dma(dev), sg->dma_address, sg_dma_len(sg), true);
}

/* Window offsets fit any mask that covers the window's end. */
static int vshm_dma_supported(struct device *dev, u64 mask)
{
	struct vshm_dma *d = to_vshm_dma(dev);

	return mask >= d->off + d->size - 1;
}

static size_t vshm_dma_max_mapping_size(struct device *dev)
{
	return to_vshm_dma(dev)->max_seg;
}

static const struct dma_map_ops vshm_dma_ops = {
	.alloc			= vshm_dma_alloc,
	.free			= vshm_dma_free,
	.map_page		= vshm_dma_map_page,
	.unmap_page		= vshm_dma_unmap_page,
	.map_sg			= vshm_dma_map_sg,
	.unmap_sg		= vshm_dma_unmap_sg,
	.sync_single_for_cpu	= vshm_dma_sync_single_for_cpu,
	.sync_single_for_device	= vshm_dma_sync_single_for_device,
	.sync_sg_for_cpu	= vshm_dma_sync_sg_for_cpu,
	.sync_sg_for_device	= vshm_dma_sync_sg_for_device,
	.dma_supported		= vshm_dma_supported,
	.max_mapping_size	= vshm_dma_max_mapping_size,
};

/* ------------------------------------------------------------------------ */
/* The device                                                                */

static void vshm_dma_release(struct device *dev)
{
	struct vshm_dma *d = to_vshm_dma(dev);

	if (d->pool) {
		/*
		 * gen_pool_destroy() insists on an empty pool; a driver that
		 * leaked mappings costs us the pool's bookkeeping, not a BUG.
		 */
		if (atomic64_read(&d->in_use))
			pr_warn("%s: %lld bytes of its pool still mapped; pool leaked\n",
				dev_name(dev), (long long)atomic64_read(&d->in_use));
		else
			gen_pool_destroy(d->pool);
	}
	vfree(d->recs);
	kfree(d);
}

struct vshm_dma *vshm_dma_create(struct device *parent, const char *name,
				 void *win, u64 off, u64 size, size_t max_seg,
				 void (*unmap_hook)(void *ctx), void *hook_ctx)
{
	struct vshm_dma *d;
	int err;

	if (!size || (off | size) & (PAGE_SIZE - 1) || size >> GRAN_SHIFT > U32_MAX)
		return ERR_PTR(-EINVAL);
	d = kzalloc(sizeof(*d), GFP_KERNEL);
	if (!d)
		return ERR_PTR(-ENOMEM);
	device_initialize(&d->dev);
	d->dev.parent = parent;
	d->dev.release = vshm_dma_release;
	d->base = win + off;
	d->off = off;
	d->size = size;
	d->max_seg = min_t(u64, max_seg, size);
	d->unmap_hook = unmap_hook;
	d->hook_ctx = hook_ctx;
	spin_lock_init(&d->lock);

	err = dev_set_name(&d->dev, "%s", name);
	if (err)
		goto err_put;
	err = -ENOMEM;
	d->recs = vzalloc(array_size(size >> GRAN_SHIFT, sizeof(*d->recs)));
	if (!d->recs)
		goto err_put;
	d->pool = gen_pool_create(GRAN_SHIFT, dev_to_node(parent));
	if (!d->pool)
		goto err_put;
	/* The pool's "physical" addresses are window offsets: the DMA addresses. */
	err = gen_pool_add_virt(d->pool, (unsigned long)d->base, off, size, dev_to_node(parent));
	if (err)
		goto err_put;

	d->dev.coherent_dma_mask = DMA_BIT_MASK(64);
	d->dev.dma_mask = &d->dev.coherent_dma_mask;
	d->parms.max_segment_size = d->max_seg;
	d->dev.dma_parms = &d->parms;
	set_dma_ops(&d->dev, &vshm_dma_ops);

	err = device_add(&d->dev);
	if (err)
		goto err_put;
	return d;

err_put:
	put_device(&d->dev);
	return ERR_PTR(err);
}

void vshm_dma_destroy(struct vshm_dma *d)
{
	if (d)
		device_unregister(&d->dev);
}

struct device *vshm_dma_device(struct vshm_dma *d)
{
	return &d->dev;
}

void vshm_dma_get_stats(struct vshm_dma *d, struct vshm_dma_stats *s)
{
	s->pool_size = d->size;
	s->in_use = atomic64_read(&d->in_use);
	s->peak = atomic64_read(&d->peak);
	s->coherent = atomic64_read(&d->coherent);
	s->maps = atomic64_read(&d->maps);
	s->unmaps = atomic64_read(&d->unmaps);
	s->live = s->maps - s->unmaps;
	s->bytes_to_dev = atomic64_read(&d->bytes_to_dev);
	s->bytes_from_dev = atomic64_read(&d->bytes_from_dev);
	s->map_failures = atomic64_read(&d->map_failures);
	s->alloc_failures = atomic64_read(&d->alloc_failures);
	s->bad_unmaps = atomic64_read(&d->bad_unmaps);
}
