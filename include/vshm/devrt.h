/* SPDX-License-Identifier: MIT */
/*
 * Device-side runtime: the virtio-msg device transport over the window.
 *
 * It serves one driver at a time for any number of device models
 * (device numbers 0..n-1 in the order they were added).  It owns no event
 * loop: the caller (vshm serve, a test) calls vshm_dev_rt_step() when
 * something may have happened and vshm_dev_rt_arm() before it sleeps.  It
 * answers the whole control plane (GET_DEVICES, PING, GET_DEVICE_INFO,
 * features, config with generation, status, GET/SET/RESET_VQUEUE,
 * GET_SHM), pops validated chains and hands them to the models, and
 * publishes completions with event-index suppressed notifications.
 *
 * Notifications are out of band: the driver kicks queue q of device d by
 * ringing our doorbell vector vshm_vq_vector(V, d, q) (an EVENT_AVAIL
 * message is accepted too); we signal used buffers on the driver's vector
 * for the same pair and EVENT_CONFIG through the mailbox.
 */
#ifndef VSHM_DEVRT_H
#define VSHM_DEVRT_H

#include <stdint.h>
#include <vshm/devmodel.h>
#include <vshm/doorbell.h>
#include <vshm/window.h>

#define VSHM_RT_MAX_DEVICES	32

struct vshm_dev_rt;

/* Session states, as vshm_dev_rt_state() reports them. */
#define VSHM_RT_NO_DRIVER	0	/* waiting for a driver to claim */
#define VSHM_RT_HANDSHAKE	1	/* acknowledged a driver, waiting READY */
#define VSHM_RT_ACTIVE		2	/* serving */

struct vshm_dev_rt_stats {
	uint64_t sessions;	/* drivers served */
	uint64_t messages;	/* control messages answered */
	uint64_t dropped;	/* malformed / unroutable messages dropped */
	uint64_t chains;	/* requests handed to models */
	uint64_t completions;
	uint64_t notifies;	/* doorbells rung to the driver */
	uint64_t broken_queues;	/* queues the driver broke */
};

/*
 * Claim the device role in @w as ivshmem peer @peer_id.  @db rings the
 * driver (its tx side must be connected once a driver is present, see
 * vshm_dev_rt_set_doorbell).  Returns -EBUSY if another device owns the role.
 */
int vshm_dev_rt_create(struct vshm_dev_rt **out, struct vshm_window *w,
		       uint32_t peer_id);
void vshm_dev_rt_destroy(struct vshm_dev_rt *rt);

/*
 * Adding a model: create it with the host callbacks of the next device
 * number, then add it.  vshm_dev_rt_next_host() is NULL when full.
 * vshm_dev_rt_add() returns the device number, -ENOSPC or -EINVAL.
 */
const struct vshm_devmodel_host *vshm_dev_rt_next_host(struct vshm_dev_rt *rt);
int vshm_dev_rt_add(struct vshm_dev_rt *rt, struct vshm_devmodel *m);

/* Use @db to notify the driver (NULL: polling only). */
void vshm_dev_rt_set_doorbell(struct vshm_dev_rt *rt, const struct vshm_doorbell *db);

/*
 * Do all work that is ready: follow the session handshake, answer control
 * messages, pop and dispatch chains, poll the models, publish completions.
 * Returns the amount of work done (0 = idle), or a negative errno if the
 * runtime cannot continue (the device role was taken from us).
 */
int vshm_dev_rt_step(struct vshm_dev_rt *rt);

/*
 * Before sleeping: ask for kicks on every live queue and for a mailbox
 * doorbell.  Returns 1 if work arrived meanwhile (do not sleep), else 0.
 */
int vshm_dev_rt_arm(struct vshm_dev_rt *rt);
void vshm_dev_rt_disarm(struct vshm_dev_rt *rt);

/*
 * The driver went away (the hub announced it, or its heartbeat stopped):
 * reset every device and wait for the next one.
 */
void vshm_dev_rt_driver_gone(struct vshm_dev_rt *rt);

/*
 * Misbehaviour on purpose, to test a driver against a hostile device
 * (`vshm serve --hostile`, tests/test_guest_hostile.sh).  Never set in
 * service.  Classes (bits of @classes):
 *   USED_ID   each queue's @after-th completion, and every @after-th one
 *             after it, names a buffer the driver does not hold: alternately
 *             an id past the queue's size, and a second completion of a
 *             chain just completed.  The real completion is dropped.
 *   USED_LEN  every completion claims 4 GiB - 1 bytes written.
 *   CONFIG    config reads return random bytes under a random generation,
 *             config-change events come every step.
 *   MUTE      after @after control messages answered, answer none: the
 *             heartbeat goes on, the mailbox is read and ignored.
 *   STORM     ring every doorbell of the driver on every step, and never
 *             go idle.
 *   STALL     after @after completions on a queue, complete nothing more
 *             there (requests are taken and dropped).
 */
#define VSHM_RT_FAULT_USED_ID	(1u << 0)
#define VSHM_RT_FAULT_USED_LEN	(1u << 1)
#define VSHM_RT_FAULT_CONFIG	(1u << 2)
#define VSHM_RT_FAULT_MUTE	(1u << 3)
#define VSHM_RT_FAULT_STORM	(1u << 4)
#define VSHM_RT_FAULT_STALL	(1u << 5)

struct vshm_dev_rt_faults {
	uint32_t classes;	/* VSHM_RT_FAULT_* */
	uint32_t after;		/* completions / messages served correctly first */
};

void vshm_dev_rt_set_faults(struct vshm_dev_rt *rt, const struct vshm_dev_rt_faults *f);

int vshm_dev_rt_state(const struct vshm_dev_rt *rt);
/* The ivshmem peer id of the driver being served, or -1. */
int64_t vshm_dev_rt_driver_peer(const struct vshm_dev_rt *rt);
void vshm_dev_rt_stats(const struct vshm_dev_rt *rt, struct vshm_dev_rt_stats *s);
/* Model fds to watch (event_fd of each model, -1 skipped); returns count. */
int vshm_dev_rt_model_fds(const struct vshm_dev_rt *rt, int *fds, int max);

#endif
