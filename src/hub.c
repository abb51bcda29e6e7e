// SPDX-License-Identifier: MIT
/*
 * The hub: server side of QEMU's ivshmem-server protocol (docs/hub.md).
 *
 * One epoll loop, one thread.  Every client socket is non-blocking and
 * every message to a client goes through that client's queue, flushed as
 * far as the socket takes it.  So a client that does not read costs the
 * hub memory (bounded: qlimit messages, then it is dropped) but never time:
 * the hub never blocks on anyone.  A queue, not "drop on EAGAIN", because a
 * legitimate burst (3 + peers x N messages, each 8 bytes plus an fd, to a
 * QEMU that reads the tail asynchronously) can exceed a Unix socket's send
 * buffer with 64 vectors and a few peers.
 *
 * Queued messages name the eventfd they carry by (peer id, peer serial,
 * vector) instead of holding an fd: if that peer leaves before the message
 * goes out, the message is skipped and the receiver just sees the leave.
 * Serials, not ids, because ids wrap and are eventually reused.
 *
 * Peers are freed only in reap(), after each batch of epoll events, so an
 * event later in the same batch never points at freed memory; a peer being
 * dropped is marked dead first and ignored from then on.
 *
 * Memory-ordering label (docs/memory-model.md):
 *   H1  hub: CAS (release) of a role's owner from a departed peer's id + 1
 *       to 0, after clearing its status; pairs with R1, the claimant's CAS
 *       (acquire) in src/session.c: whoever claims the role next sees the
 *       cleared status.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <vshm/hub.h>
#include <vshm/mbox.h>
#include "barrier.h"

#define LISTEN_BACKLOG	64
#define ACCEPT_BATCH	64	/* accepts per loop turn, so clients are served too */
#define RETRY_MS	10	/* resend after ETOOMANYREFS */
#define ACCEPT_PAUSE_MS	100	/* after EMFILE: let fds free up */

/* Where a queued message's fd comes from. */
#define SRC_NONE	0		/* no fd */
#define SRC_SHM		UINT64_MAX	/* the window */
/* anything else: the serial of the peer whose eventfd @vec rides along */

struct hub_msg {
	int64_t value;		/* what goes on the wire */
	uint64_t src;		/* SRC_NONE, SRC_SHM or a peer serial */
	unsigned vec;		/* which of that peer's eventfds */
};

struct hub_peer {
	struct hub_peer *prev, *next;	/* join order (the order we announce) */
	struct hub_peer *dead_next;	/* reap list */
	int64_t id;			/* 0..65535 */
	uint64_t serial;		/* unique for the hub's lifetime, from 1 */
	int sock;			/* non-blocking, ours */
	int efd[VSHM_HUB_MAX_VECTORS];	/* its receive eventfds, ours */
	struct hub_msg *q;		/* ring of messages not yet sent */
	unsigned qhead, qlen, qcap;
	unsigned qsent;			/* bytes of q[qhead] already sent */
	bool dead;			/* left or dropped: reap() frees it */
	bool want_out;			/* EPOLLOUT registered */
	bool retry;			/* waiting out ETOOMANYREFS */
};

struct vshm_hub {
	struct vshm_hub_opts o;		/* copy; o.socket_path points at path */
	char *path;			/* socket path, ours */
	struct vshm_window win;		/* the window, formatted by us */
	int lfd;			/* listening socket */
	int ep;				/* epoll */
	dev_t sock_dev;			/* identity of the socket file we bound, */
	ino_t sock_ino;			/* so we never unlink somebody else's */
	bool bound;
	struct hub_peer *head, *tail;	/* live and dead-not-reaped peers */
	struct hub_peer **by_id;	/* [id] -> peer, 65536 entries */
	unsigned npeers;		/* in the list, dead ones included */
	unsigned live;			/* not dead */
	uint16_t next_id;		/* the example server's counter */
	uint64_t serial;		/* last serial handed out */
	unsigned qlimit;		/* most messages queued for one client */
	struct hub_peer *dead;		/* to reap, oldest first */
	struct hub_peer **dead_tail;	/* where the next one goes */
	unsigned nretry;		/* peers with retry set */
	bool accept_paused;
	int64_t accept_resume;		/* CLOCK_MONOTONIC ms */
	char tag_listen, tag_stop;	/* epoll data.ptr targets */
	struct vshm_hub_stats st;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

__attribute__((format(printf, 3, 4)))
static void hub_log(struct vshm_hub *h, int level, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!h->o.log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	h->o.log(h->o.log_arg, level, line);
}

__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int vshm_hub_default_path(char *buf, size_t len)
{
	const char *x;
	int n;

	if (geteuid() == 0) {
		n = snprintf(buf, len, "/run/vshm/hub.sock");
	} else {
		x = getenv("XDG_RUNTIME_DIR");
		if (!x || x[0] != '/')
			return -ENOENT;
		n = snprintf(buf, len, "%s/vshm/hub.sock", x);
	}
	if (n < 0 || (size_t)n >= len ||
	    (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	return n;
}

/* ------------------------------------------------------------------------ */
/* Sending                                                                   */

static void peer_kill(struct vshm_hub *h, struct hub_peer *p, const char *why);

static void set_out(struct vshm_hub *h, struct hub_peer *p, bool on)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = p };

	if (p->want_out == on)
		return;
	if (on)
		ev.events |= EPOLLOUT;
	if (epoll_ctl(h->ep, EPOLL_CTL_MOD, p->sock, &ev) < 0) {
		peer_kill(h, p, "cannot watch its socket");
		return;
	}
	p->want_out = on;
}

static void set_retry(struct vshm_hub *h, struct hub_peer *p, bool on)
{
	if (p->retry == on)
		return;
	p->retry = on;
	if (on)
		h->nretry++;
	else
		h->nretry--;
}

/* The fd a queued message carries, -1 for none, -2 if its peer is gone. */
static int msg_fd(const struct vshm_hub *h, const struct hub_msg *m)
{
	const struct hub_peer *src;

	if (m->src == SRC_NONE)
		return -1;
	if (m->src == SRC_SHM)
		return h->win.fd;
	src = h->by_id[m->value];
	if (!src || src->serial != m->src || src->dead)
		return -2;
	return src->efd[m->vec];
}

/*
 * Send (the rest of) one message.  1: done (or skipped); 0: the socket is
 * full; -ETOOMANYREFS: too many fds in flight; another -errno: the client
 * is broken.
 */
static int send_one(struct vshm_hub *h, struct hub_peer *p, const struct hub_msg *m)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	unsigned char b[8];
	uint64_t u = (uint64_t)m->value;
	struct iovec iov;
	struct msghdr mh;
	int fd = -1;
	ssize_t n;

	if (p->qsent == 0) {
		fd = msg_fd(h, m);
		if (fd == -2)
			return 1;	/* that peer left; its leave follows */
	}
	for (unsigned i = 0; i < 8; i++)	/* little-endian on the wire */
		b[i] = (unsigned char)(u >> (8 * i));

	while (p->qsent < sizeof(b)) {
		memset(&mh, 0, sizeof(mh));
		iov.iov_base = b + p->qsent;
		iov.iov_len = sizeof(b) - p->qsent;
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		if (fd >= 0) {
			struct cmsghdr *cm;

			memset(&cbuf, 0, sizeof(cbuf));
			mh.msg_control = cbuf.buf;
			mh.msg_controllen = sizeof(cbuf.buf);
			cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &fd, sizeof(int));
		}
		n = sendmsg(p->sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		/* The fd went with the first byte sent; never send it twice. */
		fd = -1;
		p->qsent += (unsigned)n;
	}
	p->qsent = 0;
	return 1;
}

/* Send as much of @p's queue as its socket takes. */
static void flush(struct vshm_hub *h, struct hub_peer *p)
{
	while (p->qlen && !p->dead) {
		int rc = send_one(h, p, &p->q[p->qhead]);

		if (rc == 1) {
			p->qhead = (p->qhead + 1) % p->qcap;
			p->qlen--;
			continue;
		}
		if (rc == 0) {
			h->st.stalls++;
			set_out(h, p, true);
			return;
		}
		if (rc == -ETOOMANYREFS) {
			/*
			 * Our user has too many fds in flight (RLIMIT_NOFILE):
			 * they drain as clients read, and no socket event says
			 * when, so poll on a short timer.
			 */
			set_retry(h, p, true);
			return;
		}
		if (rc == -EPIPE || rc == -ECONNRESET) {
			peer_kill(h, p, NULL);	/* it closed first: an ordinary leave */
		} else {
			char why[96];

			snprintf(why, sizeof(why), "send failed: %s", strerror(-rc));
			peer_kill(h, p, why);
		}
		return;
	}
	if (p->dead)
		return;
	set_retry(h, p, false);
	set_out(h, p, false);
}

static void enqueue(struct vshm_hub *h, struct hub_peer *p, int64_t value,
		    uint64_t src, unsigned vec)
{
	struct hub_msg *m;

	if (p->dead)
		return;
	if (p->qlen == p->qcap) {
		unsigned cap = p->qcap ? 2 * p->qcap : 64;
		struct hub_msg *nq;

		if (p->qcap >= h->qlimit) {
			char why[96];

			snprintf(why, sizeof(why), "not reading (%u messages queued)", p->qlen);
			peer_kill(h, p, why);
			return;
		}
		if (cap > h->qlimit)
			cap = h->qlimit;
		nq = malloc((size_t)cap * sizeof(*nq));
		if (!nq) {
			peer_kill(h, p, "out of memory for its queue");
			return;
		}
		/* Unroll the ring into the new array. */
		for (unsigned i = 0; i < p->qlen; i++)
			nq[i] = p->q[(p->qhead + i) % p->qcap];
		free(p->q);
		p->q = nq;
		p->qcap = cap;
		p->qhead = 0;
	}
	m = &p->q[(p->qhead + p->qlen) % p->qcap];
	m->value = value;
	m->src = src;
	m->vec = vec;
	p->qlen++;
}

/* ------------------------------------------------------------------------ */
/* Peers coming and going                                                    */

static void peer_kill(struct vshm_hub *h, struct hub_peer *p, const char *why)
{
	if (p->dead)
		return;
	p->dead = true;
	h->live--;
	/* FIFO, so leaves are announced in the order we noticed them. */
	*h->dead_tail = p;
	h->dead_tail = &p->dead_next;
	h->st.left++;
	if (why) {
		h->st.dropped++;
		hub_log(h, VSHM_HUB_LOG_WARN, "dropping peer %lld: %s", (long long)p->id, why);
	} else {
		hub_log(h, VSHM_HUB_LOG_INFO, "peer %lld left", (long long)p->id);
	}
}

/* H1, see the top of the file.  1 if the role was released. */
static int release_role(struct vshm_role *r, int64_t id)
{
	uint32_t want = (uint32_t)id + 1;

	if (vshm_load_once(&r->owner) != want)
		return 0;
	vshm_store_once(&r->status, 0);
	/*
	 * H1: a CAS rather than a plain store, so that a claim made since
	 * the load above (the departed peer released, someone else claimed)
	 * is never wiped out.
	 */
	return __atomic_compare_exchange_n(&r->owner, &want, 0, false,
					   __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

static void release_roles(struct vshm_hub *h, int64_t id)
{
	struct vshm_win_hdr *hdr = vshm_window_hdr(&h->win);

	if (release_role(&hdr->driver, id)) {
		h->st.roles_released++;
		hub_log(h, VSHM_HUB_LOG_INFO, "released the driver role of peer %lld",
			(long long)id);
	}
	if (release_role(&hdr->device, id)) {
		h->st.roles_released++;
		hub_log(h, VSHM_HUB_LOG_INFO, "released the device role of peer %lld",
			(long long)id);
	}
}

static void peer_free(struct hub_peer *p)
{
	if (p->sock >= 0)
		close(p->sock);
	for (unsigned k = 0; k < VSHM_HUB_MAX_VECTORS; k++)
		if (p->efd[k] >= 0)
			close(p->efd[k]);
	free(p->q);
	free(p);
}

static void unlink_peer(struct vshm_hub *h, struct hub_peer *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		h->head = p->next;
	if (p->next)
		p->next->prev = p->prev;
	else
		h->tail = p->prev;
	h->by_id[p->id] = NULL;
	h->npeers--;
}

/*
 * Free dead peers.  Announcing a leave can kill another peer (its queue
 * overflows, its socket fails); that one lands on the list and is reaped
 * in the same call.
 */
static void reap(struct vshm_hub *h)
{
	while (h->dead) {
		struct hub_peer *p = h->dead, *q;

		h->dead = p->dead_next;
		if (!h->dead)
			h->dead_tail = &h->dead;
		unlink_peer(h, p);
		set_retry(h, p, false);
		epoll_ctl(h->ep, EPOLL_CTL_DEL, p->sock, NULL);
		close(p->sock);
		p->sock = -1;
		/* Free its roles before anyone hears it left: a peer reacting
		 * to the leave finds the role free. */
		release_roles(h, p->id);
		for (q = h->head; q; q = q->next)
			enqueue(h, q, p->id, SRC_NONE, 0);
		for (q = h->head; q; q = q->next)
			flush(h, q);
		peer_free(p);
	}
}

/* The example server's rule: a 16-bit counter, skipping live ids. */
static int64_t alloc_id(struct vshm_hub *h)
{
	for (unsigned i = 0; i < VSHM_HUB_MAX_PEERS; i++) {
		uint16_t id = h->next_id++;

		if (!h->by_id[id])
			return id;
	}
	return -1;
}

static void refuse(struct vshm_hub *h, int s, const char *why)
{
	h->st.refused++;
	/* Log before closing, so the line exists once the client sees EOF. */
	hub_log(h, VSHM_HUB_LOG_WARN, "refusing a client: %s", why);
	close(s);
}

static void peer_add(struct vshm_hub *h, int s)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
	unsigned n = h->o.vectors;
	struct hub_peer *p, *q;
	int64_t id;

	if (h->live >= h->o.max_peers) {
		char why[96];

		snprintf(why, sizeof(why), "%u peers connected (the --max-peers limit)",
			 h->live);
		refuse(h, s, why);
		return;
	}
	/*
	 * Dead peers keep their ids until reap() runs after this batch of
	 * events (it may not run here: later events of the batch may name
	 * them), so alloc_id skips those too.
	 */
	id = alloc_id(h);
	if (id < 0) {
		refuse(h, s, "no free peer id");
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		refuse(h, s, "out of memory");
		return;
	}
	p->sock = s;
	for (unsigned k = 0; k < VSHM_HUB_MAX_VECTORS; k++)
		p->efd[k] = -1;
	for (unsigned k = 0; k < n; k++) {
		p->efd[k] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (p->efd[k] < 0) {
			char why[96];

			snprintf(why, sizeof(why), "cannot create eventfds: %s", strerror(errno));
			p->sock = -1;
			peer_free(p);
			refuse(h, s, why);
			return;
		}
	}
	ev.data.ptr = p;
	if (epoll_ctl(h->ep, EPOLL_CTL_ADD, s, &ev) < 0) {
		char why[96];

		snprintf(why, sizeof(why), "epoll: %s", strerror(errno));
		p->sock = -1;
		peer_free(p);
		refuse(h, s, why);
		return;
	}
	p->id = id;
	p->serial = ++h->serial;

	/* Tell everyone already here first (the example server's order). */
	for (q = h->head; q; q = q->next)
		for (unsigned k = 0; k < n; k++)
			enqueue(h, q, id, p->serial, k);
	/* Then the newcomer: version, id, window, the others, its own. */
	enqueue(h, p, VSHM_HUB_PROTOCOL_VERSION, SRC_NONE, 0);
	enqueue(h, p, id, SRC_NONE, 0);
	enqueue(h, p, -1, SRC_SHM, 0);
	for (q = h->head; q; q = q->next)
		if (!q->dead)
			for (unsigned k = 0; k < n; k++)
				enqueue(h, p, q->id, q->serial, k);
	for (unsigned k = 0; k < n; k++)
		enqueue(h, p, id, p->serial, k);

	p->prev = h->tail;
	if (h->tail)
		h->tail->next = p;
	else
		h->head = p;
	h->tail = p;
	h->by_id[id] = p;
	h->npeers++;
	h->live++;
	h->st.accepted++;
	hub_log(h, VSHM_HUB_LOG_INFO, "peer %lld joined (%u connected)", (long long)id, h->live);

	for (q = h->head; q; q = q->next)
		flush(h, q);
}

static void do_accept(struct vshm_hub *h)
{
	for (unsigned i = 0; i < ACCEPT_BATCH; i++) {
		int s = accept4(h->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (s >= 0) {
			peer_add(h, s);
			continue;
		}
		switch (errno) {
		case EINTR:
		case ECONNABORTED:
		case EPROTO:
			continue;
		case EAGAIN:
#if EAGAIN != EWOULDBLOCK
		case EWOULDBLOCK:
#endif
			return;
		default: {
			/*
			 * Out of fds or memory: the connection stays in the
			 * backlog and the listening socket stays readable, so
			 * stop watching it for a while instead of spinning.
			 */
			struct epoll_event ev = { .events = 0, .data.ptr = &h->tag_listen };

			hub_log(h, VSHM_HUB_LOG_WARN, "accept: %s; pausing for %d ms",
				strerror(errno), ACCEPT_PAUSE_MS);
			epoll_ctl(h->ep, EPOLL_CTL_MOD, h->lfd, &ev);
			h->accept_paused = true;
			h->accept_resume = now_ms() + ACCEPT_PAUSE_MS;
			return;
		}
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Listening socket                                                          */

static void dir_of(const char *path, char *buf, size_t len)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(buf, len, ".");
	else if (slash == path)
		snprintf(buf, len, "/");
	else
		snprintf(buf, len, "%.*s", (int)(slash - path), path);
}

/* Is somebody serving @path?  1 yes, 0 no (stale), -errno if we cannot tell. */
static int probe(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s, rc;

	memcpy(sa.sun_path, path, strlen(path) + 1);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return -errno;
	do {
		rc = connect(s, (struct sockaddr *)&sa, sizeof(sa));
	} while (rc < 0 && errno == EINTR);
	if (rc == 0)
		rc = 1;
	else if (errno == EAGAIN)	/* a listener with a full backlog */
		rc = 1;
	else if (errno == ECONNREFUSED)
		rc = 0;
	else
		rc = -errno;
	close(s);
	return rc;
}

static int hub_listen(struct vshm_hub *h, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = h->path;
	char dir[sizeof(sa.sun_path)];
	struct stat st;
	int rc;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		set_err(err, errlen, "socket path %s is too long (at most %zu bytes)",
			path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	dir_of(path, dir, sizeof(dir));
	memcpy(sa.sun_path, path, strlen(path) + 1);

	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			set_err(err, errlen, "%s exists and is not a socket; pick another --socket",
				path);
			return -EEXIST;
		}
		rc = probe(path);
		if (rc == 1) {
			set_err(err, errlen, "socket %s is in use by a running hub; "
				"stop it or pick another --socket", path);
			return -EADDRINUSE;
		}
		if (rc < 0) {
			set_err(err, errlen, "cannot check whether socket %s is in use: %s",
				path, strerror(-rc));
			return rc;
		}
		if (unlink(path) < 0 && errno != ENOENT) {
			rc = -errno;
			set_err(err, errlen, "cannot remove stale socket %s: %s", path,
				strerror(-rc));
			return rc;
		}
		hub_log(h, VSHM_HUB_LOG_INFO, "removed stale socket %s", path);
	} else if (errno != ENOENT) {
		rc = -errno;
		if (rc == -EACCES)
			set_err(err, errlen, "permission denied looking up %s; "
				"pick another path or fix the permissions of %s", path, dir);
		else
			set_err(err, errlen, "cannot use socket path %s: %s", path, strerror(-rc));
		return rc;
	}

	h->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (h->lfd < 0) {
		rc = -errno;
		set_err(err, errlen, "socket: %s", strerror(-rc));
		return rc;
	}
	if (bind(h->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		if (rc == -ENOENT)
			set_err(err, errlen, "cannot create socket %s: directory %s does not exist; "
				"create it or pick another path", path, dir);
		else if (rc == -EACCES || rc == -EPERM)
			set_err(err, errlen, "cannot create socket %s: permission denied in %s; "
				"pick another path or fix its permissions", path, dir);
		else if (rc == -EADDRINUSE)
			set_err(err, errlen, "socket %s is in use by a running hub; "
				"stop it or pick another --socket", path);
		else
			set_err(err, errlen, "cannot create socket %s: %s", path, strerror(-rc));
		return rc;
	}
	h->bound = true;
	if (lstat(path, &st) == 0) {
		h->sock_dev = st.st_dev;
		h->sock_ino = st.st_ino;
	}
	/*
	 * Mode and group are set before listen(): until then a connect is
	 * refused, so nobody gets in under the umask's permissions.
	 */
	if (chmod(path, h->o.mode) < 0) {
		rc = -errno;
		set_err(err, errlen, "cannot set mode %04o on %s: %s", h->o.mode, path,
			strerror(-rc));
		return rc;
	}
	if (h->o.set_group && chown(path, (uid_t)-1, h->o.gid) < 0) {
		rc = -errno;
		set_err(err, errlen, "cannot give socket %s to group %u: %s", path,
			(unsigned)h->o.gid, strerror(-rc));
		return rc;
	}
	if (listen(h->lfd, LISTEN_BACKLOG) < 0) {
		rc = -errno;
		set_err(err, errlen, "listen on %s: %s", path, strerror(-rc));
		return rc;
	}
	return 0;
}

/* Unlink the socket file only if it is still the one we bound. */
static void unlink_ours(struct vshm_hub *h)
{
	struct stat st;

	if (!h->bound)
		return;
	h->bound = false;
	if (lstat(h->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    st.st_dev == h->sock_dev && st.st_ino == h->sock_ino)
		unlink(h->path);
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */

int vshm_hub_create(struct vshm_hub **hp, const struct vshm_hub_opts *o,
		    char *err, size_t errlen)
{
	struct vshm_window_opts wo = { .name = "vshm-hub" };
	struct epoll_event ev = { .events = EPOLLIN };
	struct vshm_hub *h;
	uint64_t burst;
	int rc;

	*hp = NULL;
	set_err(err, errlen, "%s", "");
	if (!o || !o->socket_path || !*o->socket_path) {
		set_err(err, errlen, "no socket path given");
		return -EINVAL;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	h->o = *o;
	h->dead_tail = &h->dead;
	h->lfd = -1;
	h->ep = -1;
	h->win.fd = -1;
	if (!h->o.size)
		h->o.size = VSHM_HUB_DEFAULT_SIZE;
	if (!h->o.vectors)
		h->o.vectors = VSHM_HUB_DEFAULT_VECTORS;
	if (!h->o.max_peers)
		h->o.max_peers = VSHM_HUB_DEFAULT_MAX_PEERS;
	if (!h->o.mode)
		h->o.mode = VSHM_HUB_DEFAULT_MODE;

	rc = -EINVAL;
	if (vshm_window_size_ok(h->o.size)) {
		set_err(err, errlen, "bad size %llu: expected a power of two between 64K and 64G",
			(unsigned long long)h->o.size);
		goto fail;
	}
	if (h->o.vectors > VSHM_HUB_MAX_VECTORS) {
		set_err(err, errlen, "bad vector count %u: expected 1..%u", h->o.vectors,
			VSHM_HUB_MAX_VECTORS);
		goto fail;
	}
	if (h->o.max_peers > VSHM_HUB_MAX_PEERS) {
		set_err(err, errlen, "bad peer limit %u: expected 1..%u", h->o.max_peers,
			VSHM_HUB_MAX_PEERS);
		goto fail;
	}
	if (h->o.mode & ~0777u) {
		set_err(err, errlen, "bad socket mode %o: expected 0..0777", h->o.mode);
		goto fail;
	}
	/*
	 * A client's queue holds its initial burst (3 + max_peers x N) twice
	 * over, room for as much churn again while it catches up.
	 */
	burst = 3 + (uint64_t)h->o.max_peers * h->o.vectors;
	h->qlimit = burst * 2 > UINT32_MAX / 2 ? UINT32_MAX / 2 : (unsigned)(burst * 2);

	rc = -ENOMEM;
	h->path = strdup(o->socket_path);
	h->by_id = calloc(VSHM_HUB_MAX_PEERS, sizeof(*h->by_id));
	if (!h->path || !h->by_id) {
		set_err(err, errlen, "out of memory");
		goto fail;
	}
	h->o.socket_path = h->path;

	wo.size = h->o.size;
	wo.vectors = h->o.vectors;
	wo.transport_features = h->o.transport_features;
	rc = vshm_window_create(&h->win, &wo);
	if (!rc)
		rc = vshm_mbox_format(&h->win);
	if (rc) {
		set_err(err, errlen, "cannot create a %llu-byte window: %s",
			(unsigned long long)h->o.size, strerror(-rc));
		goto fail;
	}

	h->ep = epoll_create1(EPOLL_CLOEXEC);
	if (h->ep < 0) {
		rc = -errno;
		set_err(err, errlen, "epoll: %s", strerror(-rc));
		goto fail;
	}
	rc = hub_listen(h, err, errlen);
	if (rc)
		goto fail;
	ev.data.ptr = &h->tag_listen;
	if (epoll_ctl(h->ep, EPOLL_CTL_ADD, h->lfd, &ev) < 0) {
		rc = -errno;
		set_err(err, errlen, "epoll: %s", strerror(-rc));
		goto fail;
	}
	*hp = h;
	return 0;

fail:
	vshm_hub_destroy(h);
	return rc;
}

int vshm_hub_run(struct vshm_hub *h, int stop_fd)
{
	struct epoll_event evs[64];
	bool stop = false;
	int rc = 0;

	if (stop_fd >= 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &h->tag_stop };

		if (epoll_ctl(h->ep, EPOLL_CTL_ADD, stop_fd, &ev) < 0)
			return -errno;
	}
	while (!stop) {
		int timeout = -1, n;

		if (h->nretry)
			timeout = RETRY_MS;
		if (h->accept_paused) {
			int64_t left = h->accept_resume - now_ms();

			left = left < 0 ? 0 : left;
			if (timeout < 0 || left < timeout)
				timeout = (int)left;
		}
		n = epoll_wait(h->ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		for (int i = 0; i < n; i++) {
			void *tag = evs[i].data.ptr;
			struct hub_peer *p;

			if (tag == &h->tag_stop) {
				stop = true;
				continue;
			}
			if (tag == &h->tag_listen) {
				do_accept(h);
				continue;
			}
			p = tag;
			if (p->dead)
				continue;
			/* Clients never write: any byte, EOF or error means gone. */
			if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				peer_kill(h, p, NULL);
			else if (evs[i].events & EPOLLOUT)
				flush(h, p);
		}
		if (h->accept_paused && now_ms() >= h->accept_resume) {
			struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &h->tag_listen };

			epoll_ctl(h->ep, EPOLL_CTL_MOD, h->lfd, &ev);
			h->accept_paused = false;
		}
		if (h->nretry)
			for (struct hub_peer *p = h->head; p; p = p->next)
				if (p->retry && !p->dead)
					flush(h, p);
		reap(h);
	}
	if (stop_fd >= 0)
		epoll_ctl(h->ep, EPOLL_CTL_DEL, stop_fd, NULL);
	return rc;
}

void vshm_hub_destroy(struct vshm_hub *h)
{
	struct hub_peer *p, *next;

	if (!h)
		return;
	/* Shutting down: no leave announcements, every client sees EOF. */
	for (p = h->head; p; p = next) {
		next = p->next;
		peer_free(p);
	}
	if (h->lfd >= 0)
		close(h->lfd);
	if (h->path)
		unlink_ours(h);
	if (h->ep >= 0)
		close(h->ep);
	vshm_window_unmap(&h->win);
	free(h->by_id);
	free(h->path);
	free(h);
}

const struct vshm_window *vshm_hub_window(const struct vshm_hub *h)
{
	return &h->win;
}

const char *vshm_hub_socket_path(const struct vshm_hub *h)
{
	return h->path;
}

void vshm_hub_get_stats(const struct vshm_hub *h, struct vshm_hub_stats *st)
{
	*st = h->st;
	st->peers = h->live;
}
