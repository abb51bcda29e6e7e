/* SPDX-License-Identifier: MIT */
/*
 * Role claims and the session handshake in the window header
 * (include/vshm/abi.h, docs/abi.md "Sessions").  Everything read from the
 * other role's words is a hint to be re-checked, never trusted for memory
 * safety.
 */
#ifndef VSHM_SESSION_H
#define VSHM_SESSION_H

#include <stdint.h>
#include <vshm/window.h>

#define VSHM_ROLE_DRIVER	0
#define VSHM_ROLE_DEVICE	1

/* One coherent-enough snapshot of a role's words, each loaded once. */
struct vshm_role_view {
	uint32_t owner;		/* 0 = free, else peer id + 1 */
	uint32_t status;	/* VSHM_ROLE_* */
	uint64_t epoch;
	uint64_t peer_epoch;
	uint64_t heartbeat;
};

/*
 * Claim @role for ivshmem peer @peer_id: CAS owner 0 -> id + 1, bump the
 * epoch, clear status.  Returns 0 with *epoch, or -EBUSY (owner in *owner).
 */
int vshm_role_claim(struct vshm_window *w, int role, uint32_t peer_id,
		    uint64_t *epoch, uint32_t *owner);
/* Give the role back if we still own it. */
void vshm_role_release(struct vshm_window *w, int role, uint32_t peer_id);
void vshm_role_set_status(struct vshm_window *w, int role, uint32_t status);
void vshm_role_set_peer_epoch(struct vshm_window *w, int role, uint64_t epoch);
void vshm_role_heartbeat(struct vshm_window *w, int role);
void vshm_role_read(const struct vshm_window *w, int role, struct vshm_role_view *v);

#endif
