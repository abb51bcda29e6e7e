/* SPDX-License-Identifier: MIT */
/*
 * Attaching a process to a hub: the hub connection, the window it hands
 * out, and eventfd doorbells wired to the peer on the other side.
 */
#ifndef VSHM_ATTACH_H
#define VSHM_ATTACH_H

#include <vshm/doorbell.h>
#include <vshm/drvrt.h>
#include <vshm/hub.h>
#include <vshm/window.h>

struct vshm_peer {
	struct vshm_hub_client hc;
	struct vshm_window w;
	struct vshm_db_eventfd db;	/* tx: the remote peer's fds; rx: ours */
	int64_t remote;			/* the peer we ring, -1 = none */
	int db_ok;
};

/*
 * Connect to the hub at @path and map its window (magic and ABI checked).
 * Errors come with one line in @err naming the problem and the fix.
 */
int vshm_peer_attach(struct vshm_peer *p, const char *path, int timeout_ms,
		     char *err, size_t errlen);
void vshm_peer_detach(struct vshm_peer *p);

/*
 * Ring peer @id from now on (-1: nobody).  Waits up to @timeout_ms for the
 * hub to have delivered that peer's eventfds.  -ETIMEDOUT, -EPIPE.
 */
int vshm_peer_set_remote(struct vshm_peer *p, int64_t id, int timeout_ms);

/*
 * Process hub messages without blocking.  Returns 1 with *ev (JOIN/LEAVE),
 * 0 when nothing is pending, -EPIPE when the hub is gone.  A LEAVE of the
 * remote peer disconnects the doorbell.
 */
int vshm_peer_pump(struct vshm_peer *p, struct vshm_hub_event *ev);

/*
 * A driver session through the hub at @path: attach, find the device that
 * holds the device role, enter a session with it.  The returned driver
 * owns the attachment (vshm_drv_destroy detaches).
 */
int vshm_drv_attach(const char *path, const struct vshm_drv_opts *o,
		    struct vshm_drv **out, char *err, size_t errlen);

#endif
