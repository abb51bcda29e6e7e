/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The hooks between the PCI layer (virtio_shm.c) and the virtio transport
 * (vshm_transport.c).  The PCI layer owns the device, the mappings and the
 * interrupts; the transport owns everything in the window beyond the
 * header's geometry.
 */
#ifndef VSHM_TP_H
#define VSHM_TP_H

#include <linux/pci.h>
#include <linux/types.h>

struct vshm_tp;

struct vshm_tp_params {
	struct pci_dev *pdev;
	void *win;			/* BAR2, mapped write-back */
	u64 win_size;			/* checked against the header */
	void __iomem *regs;		/* BAR0: the doorbell register */
	u32 ivposition;			/* our ivshmem peer id */
	u32 hub_vectors;		/* vectors per peer, from the window header */
	unsigned int nvec;		/* MSI-X vectors we have */
};

/*
 * Start the transport on a bound device whose interrupts are already
 * requested.  It waits for a device role in the background; nothing in the
 * window is touched until one is there.  Returns an ERR_PTR on failure.
 */
struct vshm_tp *vshm_tp_create(const struct vshm_tp_params *p);
/*
 * Unregister every virtio device, leave the session, stop all background
 * work.  Interrupts must still be live (virtio drivers finish their I/O).
 */
void vshm_tp_stop(struct vshm_tp *tp);
/* Free; after vshm_tp_stop() and after the interrupts were freed. */
void vshm_tp_free(struct vshm_tp *tp);
/*
 * From the handler of MSI-X vector @vector; @tp may be NULL.  True if the
 * interrupt found work (a message or a completion).
 */
bool vshm_tp_irq(struct vshm_tp *tp, unsigned int vector);

#endif /* VSHM_TP_H */
