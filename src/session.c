// SPDX-License-Identifier: MIT
/*
 * Role words in the window header.
 *
 * Memory-ordering labels (docs/memory-model.md):
 *   R1  claimant: CAS of owner (acq_rel)        — pairs with H1 (hub release)
 *   R2  owner: release store of status           — pairs with R3
 *   R3  reader: acquire load of status           — pairs with R2
 *   R4  owner: release store of peer_epoch       — pairs with R5
 *   R5  reader: acquire load of peer_epoch       — pairs with R4
 */
#include <errno.h>
#include <stdbool.h>
#include <unistd.h>

#include <vshm/session.h>
#include "barrier.h"

static struct vshm_role *role_of(const struct vshm_window *w, int role)
{
	struct vshm_win_hdr *h = vshm_window_hdr(w);

	return role == VSHM_ROLE_DRIVER ? &h->driver : &h->device;
}

int vshm_role_claim(struct vshm_window *w, int role, uint32_t peer_id,
		    uint64_t *epoch, uint32_t *owner)
{
	struct vshm_role *r = role_of(w, role);
	uint32_t expect = 0;
	uint64_t e;

	/* R1: owning the role orders our later stores after the hub's reset. */
	if (!__atomic_compare_exchange_n(&r->owner, &expect, peer_id + 1, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		if (owner)
			*owner = expect;
		return -EBUSY;
	}
	vshm_store_once(&r->status, 0);
	vshm_store_once(&r->peer_epoch, 0);
	vshm_store_once(&r->pid, (uint32_t)getpid());
	e = vshm_load_once(&r->epoch) + 1;
	if (e == 0)
		e = 1;
	vshm_store_release(&r->epoch, e);
	*epoch = e;
	return 0;
}

void vshm_role_release(struct vshm_window *w, int role, uint32_t peer_id)
{
	struct vshm_role *r = role_of(w, role);
	uint32_t expect = peer_id + 1;

	vshm_store_release(&r->status, 0);
	__atomic_compare_exchange_n(&r->owner, &expect, 0, false,
				    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

void vshm_role_set_status(struct vshm_window *w, int role, uint32_t status)
{
	/* R2: everything set up before READY is visible with it (pairs with R3). */
	vshm_store_release(&role_of(w, role)->status, status);
}

void vshm_role_set_peer_epoch(struct vshm_window *w, int role, uint64_t epoch)
{
	/* R4: our quiescence happens before the ack (pairs with R5). */
	vshm_store_release(&role_of(w, role)->peer_epoch, epoch);
}

void vshm_role_heartbeat(struct vshm_window *w, int role)
{
	struct vshm_role *r = role_of(w, role);

	vshm_store_once(&r->heartbeat, vshm_load_once(&r->heartbeat) + 1);
}

void vshm_role_read(const struct vshm_window *w, int role, struct vshm_role_view *v)
{
	const struct vshm_role *r = role_of(w, role);

	v->owner = vshm_load_acquire(&r->owner);
	v->epoch = vshm_load_acquire(&r->epoch);
	v->status = vshm_load_acquire(&r->status);		/* R3 */
	v->peer_epoch = vshm_load_acquire(&r->peer_epoch);	/* R5 */
	v->heartbeat = vshm_load_once(&r->heartbeat);
}
