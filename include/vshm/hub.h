/* SPDX-License-Identifier: MIT */
/*
 * The hub: the stand-in for the hypervisor.  It owns the window (a sealed
 * memfd, formatted once) and hands it, together with one eventfd per
 * doorbell vector and peer, to every process or QEMU guest that connects to
 * its Unix socket.  It speaks QEMU's ivshmem-server protocol byte for byte,
 * so an `ivshmem-doorbell` device and a vshm process are interchangeable
 * peers.  docs/hub.md has the protocol table, the options and the limits.
 *
 * Two halves:
 *  - the server (src/hub.c): vshm_hub_create / _run / _destroy, a library
 *    loop that `vshm hub` and the tests drive;
 *  - the client (src/hubclient.c): what the device and driver runtimes use
 *    to join a hub, learn their peer id, the window fd, their own receive
 *    eventfds and the eventfds that ring every other peer.
 *
 * Everything the client receives is validated as hostile input (values,
 * which messages may carry an fd, counts), although the hub itself is
 * trusted: a broken or foreign server must produce -EPROTO, never a crash
 * or a leaked descriptor.
 */
#ifndef VSHM_HUB_H
#define VSHM_HUB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <vshm/window.h>

/* The protocol as QEMU defines it (docs/specs/ivshmem-spec.rst). */
#define VSHM_HUB_PROTOCOL_VERSION	0
#define VSHM_HUB_MAX_VECTORS		64u	/* eventfds per peer */
#define VSHM_HUB_MAX_ID			65535	/* 16-bit doorbell field */
#define VSHM_HUB_MAX_PEERS		65536u	/* ids 0..65535 */

/* Defaults of `vshm hub`. */
#define VSHM_HUB_DEFAULT_SIZE		(64ULL << 20)
#define VSHM_HUB_DEFAULT_VECTORS	4u
#define VSHM_HUB_DEFAULT_MAX_PEERS	16u
#define VSHM_HUB_DEFAULT_MODE		0600u

/*
 * The default socket path: /run/vshm/hub.sock for root (euid 0), else
 * $XDG_RUNTIME_DIR/vshm/hub.sock (the variable must be an absolute path).
 * Returns the length, -ENOENT when there is no sane default (not root and
 * no usable XDG_RUNTIME_DIR), or -ENAMETOOLONG.  Every tool that talks to a hub uses this, so that
 * `vshm hub` and `vshm serve` meet without options.
 */
int vshm_hub_default_path(char *buf, size_t len);

/* ------------------------------------------------------------------------ */
/* Server                                                                    */

#define VSHM_HUB_LOG_WARN	0	/* always worth a line: dropped clients, full */
#define VSHM_HUB_LOG_INFO	1	/* joins and leaves, printed with -v */

struct vshm_hub_opts {
	const char *socket_path;	/* required */
	uint64_t size;			/* window bytes; 0 = VSHM_HUB_DEFAULT_SIZE */
	unsigned vectors;		/* 1..64; 0 = VSHM_HUB_DEFAULT_VECTORS */
	unsigned max_peers;		/* 1..65536; 0 = VSHM_HUB_DEFAULT_MAX_PEERS */
	unsigned mode;			/* socket file mode; 0 = VSHM_HUB_DEFAULT_MODE */
	int set_group;			/* nonzero: give the socket file to @gid */
	gid_t gid;			/* (so that a zeroed struct leaves the group alone) */
	uint32_t transport_features;	/* VSHM_TF_* written into the header */
	/* One line per event, no trailing newline, no prefix; NULL = silent.
	 * Called from the thread running vshm_hub_run. */
	void (*log)(void *arg, int level, const char *line);
	void *log_arg;
};

struct vshm_hub;

/*
 * Create the window (vshm_window_create + vshm_mbox_format) and listen on
 * @o->socket_path.  An existing socket file is probed first: if a server
 * answers, -EADDRINUSE ("... is in use by a running hub"); if nobody does,
 * the stale file is unlinked and reused.  The probe is a real connection,
 * so a running vshm hub (or ivshmem-server) sees a peer that joins and
 * leaves at once.  Other errors: -EINVAL (bad size, vectors, max_peers,
 * mode), -ENAMETOOLONG, -ENOENT (directory missing), -EACCES/-EPERM,
 * -EEXIST (the path exists and is not a socket), or what the system said.
 * On failure @err holds one line (no prefix, no newline) naming the input.
 */
int vshm_hub_create(struct vshm_hub **h, const struct vshm_hub_opts *o,
		    char *err, size_t errlen);

/*
 * Serve until @stop_fd (-1: none) becomes readable; returns 0 then, without
 * reading it.  -errno on a fatal error of the hub itself (epoll failure);
 * a misbehaving client is dropped and never ends the loop.  May be called
 * again after it returned.  Clients stay connected until destroy.
 */
int vshm_hub_run(struct vshm_hub *h, int stop_fd);

/* Close every client, unlink the socket (if it is still ours), unmap. */
void vshm_hub_destroy(struct vshm_hub *h);

/* The hub's own mapping of the window (for tests and `vshm stat`). */
const struct vshm_window *vshm_hub_window(const struct vshm_hub *h);

/* The socket path the hub listens on. */
const char *vshm_hub_socket_path(const struct vshm_hub *h);

/* Counters; each written by the loop thread only, read them when it is idle. */
struct vshm_hub_stats {
	uint64_t accepted;	/* clients that got an id */
	uint64_t refused;	/* connections closed at once (full, no id, no fds) */
	uint64_t left;		/* clients that disconnected or were dropped */
	uint64_t dropped;	/* of those: dropped by us (not reading, send error) */
	uint64_t roles_released; /* role words freed for departed peers */
	uint64_t stalls;	/* sends that found a client's socket full (queued) */
	unsigned peers;		/* connected now */
};
void vshm_hub_get_stats(const struct vshm_hub *h, struct vshm_hub_stats *st);

/* ------------------------------------------------------------------------ */
/* Client                                                                    */

enum vshm_hub_ev_type {
	VSHM_HUB_EV_NONE = 0,
	VSHM_HUB_EV_JOIN,	/* peer @id has all N vectors: it can be rung */
	VSHM_HUB_EV_LEAVE,	/* peer @id (previously reported by JOIN) left */
};

struct vshm_hub_event {
	enum vshm_hub_ev_type type;
	int64_t id;		/* peer id, 0..65535; -1 with EV_NONE */
};

/* What the client knows about one other peer.  Owned by the client. */
struct vshm_hub_peer {
	int64_t id;				/* 0..65535 */
	unsigned nfds;				/* eventfds received so far */
	int fds[VSHM_HUB_MAX_VECTORS];		/* [k] rings that peer's vector k */
	unsigned char joined;			/* nfds reached N */
	unsigned char announced;		/* JOIN was reported */
};

/*
 * One connection to a hub.  Every fd stored here is owned by the struct and
 * closed by vshm_hub_client_close.  Fields the runtimes read directly:
 * id, shm_fd, vectors, own[]; the rest is private to hubclient.c.
 */
struct vshm_hub_client {
	int sock;			/* the Unix socket, -1 for a bare state machine */
	int64_t id;			/* our peer id, -1 until received */
	int shm_fd;			/* the window memfd, -1 until received */
	unsigned vectors;		/* N: our vectors; final once ready */
	int own[VSHM_HUB_MAX_VECTORS];	/* [k]: our receive eventfd of vector k */
	/* private */
	unsigned expect;		/* N from the window header, 0 = unknown */
	int state;			/* which message comes next */
	int ready;			/* all N own vectors received */
	const char *broken;		/* why the hub was refused (sticky), or NULL */
	struct vshm_hub_peer *peers;	/* sorted by id */
	unsigned npeers, peers_cap;
	unsigned pending;		/* joined peers not yet announced */
	unsigned char rbuf[8];		/* a message split across reads */
	unsigned rlen;
	int rfd;			/* the fd that came with rbuf, or -1 */
};

/*
 * Connect to the hub at @path and read everything up to and including our
 * own N receive vectors (N from the window header's `vectors`; for a
 * foreign window, what arrived before the socket went quiet for 100 ms).
 * Bounded by @timeout_ms (> 0).  Returns 0, or: -ENOENT (no socket),
 * -ECONNREFUSED (nobody listening), -EACCES, -ETIMEDOUT, -ECONNRESET ("hub
 * closed the connection (full?)"), -EPROTO (protocol violation), -ENOMEM,
 * -ENAMETOOLONG; @err (may be NULL) gets one line.  On failure @c holds
 * nothing and needs no close.  Peers that already existed are reported as
 * JOIN events by the first vshm_hub_client_process calls.
 */
int vshm_hub_connect(struct vshm_hub_client *c, const char *path, int timeout_ms,
		     char *err, size_t errlen);

/* The socket, for the caller's poll/epoll (POLLIN: call process). */
int vshm_hub_client_fd(const struct vshm_hub_client *c);

/*
 * Non-blocking: report pending JOINs first, then consume readable messages
 * until one yields an event.  Returns 1 with *ev filled, 0 when nothing is
 * left (ev->type = NONE), -EPIPE when the hub went away, -EPROTO when it
 * broke the protocol (sticky; vshm_hub_client_error says why).  Call it
 * until it returns 0 before sleeping on the fd again.
 */
int vshm_hub_client_process(struct vshm_hub_client *c, struct vshm_hub_event *ev);

/* The eventfds that ring peer @id (n = how many), or NULL if unknown. */
const int *vshm_hub_peer_fds(const struct vshm_hub_client *c, int64_t id, unsigned *n);

/* Why the client refused the hub, or NULL. */
const char *vshm_hub_client_error(const struct vshm_hub_client *c);

/* Close every fd, free everything.  Safe twice and after a failed connect. */
void vshm_hub_client_close(struct vshm_hub_client *c);

/*
 * The pure state machine, for vshm_hub_connect and the fuzzer.  init makes
 * an empty client (sock -1); @expect_vectors is N if known (1..64), else 0.
 * feed takes one protocol message: @value and the one fd it carried (-1 for
 * none); the fd is always consumed (kept or closed).  Returns 0 with *ev
 * set (often NONE), or -EPROTO (sticky) / -ENOMEM.  JOINs of peers that were
 * complete before we were ready are queued and come out of process().
 */
void vshm_hub_client_init(struct vshm_hub_client *c, unsigned expect_vectors);
int vshm_hub_client_feed(struct vshm_hub_client *c, int64_t value, int fd,
			 struct vshm_hub_event *ev);

#endif
