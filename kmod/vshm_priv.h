/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Internals of virtio_shm shared between the transport (vshm_transport.c)
 * and the DMA layer (vshm_dma.c).
 */
#ifndef VSHM_PRIV_H
#define VSHM_PRIV_H

#include <linux/device.h>
#include <linux/types.h>

/*
 * The DMA layer: one struct device per virtio device, a child of the PCI
 * device and the parent of the virtio device, carrying DMA ops that serve
 * everything from one pool, a range of the window's driver area:
 *
 *   dma_alloc_coherent   page-aligned memory of the pool (the vrings);
 *   dma_map_page/_sg     a bounce buffer of the pool: the data is copied in
 *                        (TO_DEVICE, BIDIRECTIONAL) or the buffer is cleared
 *                        (FROM_DEVICE); unmap copies back (FROM_DEVICE,
 *                        BIDIRECTIONAL).
 *
 * The DMA address of anything is its window offset, the only kind of
 * address the device ever sees.  Nothing of guest RAM outside the window is
 * named to it.  Bookkeeping (what each bounce buffer shadows) is private
 * memory the device cannot reach.
 */
struct vshm_dma;

struct vshm_dma_stats {
	u64 pool_size;		/* bytes of the pool */
	u64 in_use;		/* bytes allocated now (bounce + coherent) */
	u64 peak;		/* most bytes ever allocated at once */
	u64 coherent;		/* of in_use: coherent allocations (rings) */
	u64 maps;		/* bounce mappings made */
	u64 unmaps;		/* bounce mappings released */
	u64 live;		/* bounce mappings alive now */
	u64 bytes_to_dev;	/* copied into the window (map, sync) */
	u64 bytes_from_dev;	/* copied out of the window (unmap, sync) */
	u64 map_failures;	/* DMA_MAPPING_ERROR returned */
	u64 alloc_failures;	/* dma_alloc_coherent refused */
	u64 bad_unmaps;		/* unmap/sync of an address we never mapped */
};

/*
 * Create and register the DMA device "@name" under @parent for the pool
 * [@off, @off + @size) of the window mapped at @win.  @max_seg bounds one
 * mapping (max_mapping_size).  @unmap_hook(@hook_ctx) runs on every
 * bounce unmap, after the copy back and before the bounce space is freed
 * (any context, may not sleep).  Returns an ERR_PTR on failure.
 */
struct vshm_dma *vshm_dma_create(struct device *parent, const char *name,
				 void *win, u64 off, u64 size, size_t max_seg,
				 void (*unmap_hook)(void *ctx), void *hook_ctx);
/* Unregister; the memory goes when the last reference to the device does. */
void vshm_dma_destroy(struct vshm_dma *d);
struct device *vshm_dma_device(struct vshm_dma *d);
/*
 * [@off, @off + @len) of the window as a pointer when it lies inside this
 * device's pool (overflow-safe), else NULL.  For the transport, which
 * walks chains the device left behind.
 */
void *vshm_dma_pool_ptr(struct vshm_dma *d, u64 off, u64 len);
void vshm_dma_get_stats(struct vshm_dma *d, struct vshm_dma_stats *s);

#endif /* VSHM_PRIV_H */
