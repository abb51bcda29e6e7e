/* SPDX-License-Identifier: MIT */
/*
 * For fuzz harnesses that play one end of the mailbox by hand (the other
 * end being the runtime under test): the rings and slots of a window, where
 * include/vshm/abi.h puts them.  fuzz_devrt plays the driver, fuzz_drvrt
 * the device.
 */
#ifndef VSHM_FUZZ_MBOX_RING_H
#define VSHM_FUZZ_MBOX_RING_H

#include <stdint.h>
#include <vshm/abi.h>
#include <vshm/window.h>

/* Ring VSHM_MBOX_D2V or VSHM_MBOX_V2D of @w. */
static inline struct vshm_mbox_ring *fuzz_mbox_ring(const struct vshm_window *w, unsigned which)
{
	return (struct vshm_mbox_ring *)(void *)(w->base + VSHM_MBOX_OFF + which * VSHM_MBOX_RING_SIZE);
}

/* The slot of free-running index @idx in that ring. */
static inline struct vshm_mbox_slot *fuzz_mbox_slot(const struct vshm_window *w, unsigned which,
						    uint32_t idx)
{
	return (struct vshm_mbox_slot *)(void *)((uint8_t *)fuzz_mbox_ring(w, which) + VSHM_MBOX_SLOTS_OFF +
						 (idx % VSHM_MBOX_SLOTS) * VSHM_MBOX_SLOT_SIZE);
}

#endif
