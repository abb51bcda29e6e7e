// SPDX-License-Identifier: MIT
/* Hub attachment: connection, window, doorbells wired to the remote peer. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vshm/attach.h>
#include <vshm/session.h>

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int vshm_peer_attach(struct vshm_peer *p, const char *path, int timeout_ms,
		     char *err, size_t errlen)
{
	int rc;

	memset(p, 0, sizeof(*p));
	p->remote = -1;
	p->w.fd = -1;
	rc = vshm_hub_connect(&p->hc, path, timeout_ms, err, errlen);
	if (rc)
		return rc;
	rc = vshm_window_map(&p->w, p->hc.shm_fd);
	if (rc) {
		if (err && rc == -EPROTONOSUPPORT)
			snprintf(err, errlen, "the window behind %s has a different vshm ABI major version "
				 "(this build speaks %d.%d): use matching vshm builds", path,
				 VSHM_ABI_MAJOR, VSHM_ABI_MINOR);
		else if (err && rc == -EPROTO)
			snprintf(err, errlen, "the memory behind %s is not a vshm window (bad magic or "
				 "geometry): is that socket a vshm hub?", path);
		else if (err)
			snprintf(err, errlen, "cannot map the window from %s: %s", path, strerror(-rc));
		vshm_hub_client_close(&p->hc);
		return rc;
	}
	/* The mapping holds its own duplicate: keep one window fd, not two. */
	close(p->hc.shm_fd);
	p->hc.shm_fd = -1;
	rc = vshm_doorbell_eventfd_init(&p->db, p->hc.vectors, NULL, p->hc.own);
	if (rc) {
		if (err)
			snprintf(err, errlen, "cannot set up doorbells: %s", strerror(-rc));
		vshm_window_unmap(&p->w);
		vshm_hub_client_close(&p->hc);
		return rc;
	}
	p->db_ok = 1;
	return 0;
}

void vshm_peer_detach(struct vshm_peer *p)
{
	if (p->db_ok)
		vshm_doorbell_eventfd_fini(&p->db);
	p->db_ok = 0;
	vshm_window_unmap(&p->w);
	vshm_hub_client_close(&p->hc);
}

int vshm_peer_pump(struct vshm_peer *p, struct vshm_hub_event *ev)
{
	int rc = vshm_hub_client_process(&p->hc, ev);

	if (rc == 1 && ev->type == VSHM_HUB_EV_LEAVE && ev->id == p->remote)
		vshm_peer_set_remote(p, -1, 0);
	if (rc < 0 && rc != -EPIPE)
		rc = -EPIPE;
	return rc;
}

int vshm_peer_set_remote(struct vshm_peer *p, int64_t id, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	const int *fds = NULL;
	unsigned n = 0;

	if (id >= 0) {
		for (;;) {
			struct vshm_hub_event ev;
			struct pollfd pfd = { .fd = vshm_hub_client_fd(&p->hc), .events = POLLIN };
			int rc;

			fds = vshm_hub_peer_fds(&p->hc, id, &n);
			if (fds && n >= p->hc.vectors)
				break;
			while ((rc = vshm_hub_client_process(&p->hc, &ev)) == 1)
				;
			if (rc < 0)
				return -EPIPE;
			fds = vshm_hub_peer_fds(&p->hc, id, &n);
			if (fds && n >= p->hc.vectors)
				break;
			if (now_ms() >= deadline)
				return -ETIMEDOUT;
			poll(&pfd, 1, (int)(deadline - now_ms()));
		}
	}
	/* Re-initialise in place: users hold &p->db.db. */
	if (p->db_ok)
		vshm_doorbell_eventfd_fini(&p->db);
	p->db_ok = 0;
	if (vshm_doorbell_eventfd_init(&p->db, p->hc.vectors, id >= 0 ? fds : NULL, p->hc.own))
		return -ENOMEM;
	p->db_ok = 1;
	p->remote = id;
	return 0;
}

/* A re-attach moved the session to device peer @id: ring that one now. */
static int peer_change(void *ctx, uint32_t id, int64_t timeout_ns)
{
	struct vshm_peer *p = ctx;
	struct vshm_hub_event ev;
	int64_t ms = timeout_ns / 1000000;

	while (vshm_peer_pump(p, &ev) == 1)
		;	/* take in the hub's news: the old device left, a new one came */
	return vshm_peer_set_remote(p, id, (int)(ms > 0 ? ms : 1));
}

static void free_peer(void *ctx)
{
	struct vshm_peer *p = ctx;

	vshm_peer_detach(p);
	free(p);
}

int vshm_drv_attach(const char *path, const struct vshm_drv_opts *o,
		    struct vshm_drv **out, char *err, size_t errlen)
{
	struct vshm_peer *p = calloc(1, sizeof(*p));
	int64_t timeout = o && o->attach_timeout_ns ? o->attach_timeout_ns / 1000000 : 5000;
	int64_t deadline = now_ms() + timeout;
	struct vshm_role_view v;
	int rc;

	*out = NULL;
	if (!p)
		return -ENOMEM;
	rc = vshm_peer_attach(p, path, (int)timeout, err, errlen);
	if (rc) {
		free(p);
		return rc;
	}
	/* Who is the device?  The role word says; the hub gives its fds. */
	for (;;) {
		vshm_role_read(&p->w, VSHM_ROLE_DEVICE, &v);
		if (v.owner && (v.status & VSHM_ROLE_READY))
			break;
		if (now_ms() >= deadline) {
			if (err)
				snprintf(err, errlen, "no device is serving the window of %s (start one: vshm serve --hub %s ...)",
					 path, path);
			rc = -ENODEV;
			goto fail;
		}
		{
			struct timespec ts = { 0, 2000000 };
			nanosleep(&ts, NULL);
		}
	}
	rc = vshm_peer_set_remote(p, (int64_t)v.owner - 1, (int)(deadline - now_ms() > 0 ? deadline - now_ms() : 1));
	if (rc) {
		if (err)
			snprintf(err, errlen, "the hub at %s did not hand out the device's doorbells: %s",
				 path, strerror(-rc));
		goto fail;
	}
	rc = vshm_drv_create(out, &p->w, (uint32_t)p->hc.id, &p->db.db, o);
	if (rc) {
		if (err && rc == -EBUSY)
			snprintf(err, errlen, "another driver is attached to %s (one driver per window)", path);
		else if (err && rc == -ETIMEDOUT)
			snprintf(err, errlen, "the device behind %s did not answer the session handshake", path);
		else if (err)
			snprintf(err, errlen, "cannot start a driver session on %s: %s", path, strerror(-rc));
		goto fail;
	}
	vshm_drv_on_destroy(*out, free_peer, p);
	vshm_drv_on_peer_change(*out, peer_change, p);
	return 0;
fail:
	vshm_peer_detach(p);
	free(p);
	return rc;
}
