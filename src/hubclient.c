// SPDX-License-Identifier: MIT
/*
 * Client side of the ivshmem-server protocol (docs/hub.md).
 *
 * Two layers: a pure state machine (vshm_hub_client_feed) that takes one
 * protocol message at a time, and the socket code around it that turns a
 * byte stream with SCM_RIGHTS ancillary data into such messages.  The
 * state machine never does I/O, so the fuzzer drives it directly.
 *
 * Every message is hostile input.  The rules, in the order QEMU checks
 * them and a little stricter:
 *   - message 1: value 0 (the version), no fd;
 *   - message 2: our id, 0..65535, no fd;
 *   - message 3: -1 with the window fd;
 *   - then: our id with an fd (one of our receive vectors), another id with
 *     an fd (a vector to ring that peer), another id without an fd (it
 *     left).  Never -1 again, never below -1 or above 65535, never our own
 *     id without an fd, at most N fds per peer (64 before N is known).
 * A violation closes the fd that came with the message and marks the
 * client broken (sticky -EPROTO).  Every fd we keep is in exactly one slot
 * of the struct, so vshm_hub_client_close releases all of them.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <vshm/hub.h>

enum {
	ST_VERSION,	/* waiting for the protocol version */
	ST_ID,		/* waiting for our id */
	ST_SHM,		/* waiting for the window fd */
	ST_RUN,		/* vectors, joins and leaves */
};

/* How long connect waits for more own vectors when N is unknown. */
#define SETTLE_MS	100

/* fds one recvmsg can bring; anything above one is a protocol error. */
#define CMSG_MAX_FDS	16

static void close_fd(int fd)
{
	if (fd >= 0)
		close(fd);
}

static int fail(struct vshm_hub_client *c, const char *why, int fd)
{
	close_fd(fd);
	if (!c->broken)
		c->broken = why;
	return -EPROTO;
}

void vshm_hub_client_init(struct vshm_hub_client *c, unsigned expect_vectors)
{
	memset(c, 0, sizeof(*c));
	c->sock = -1;
	c->id = -1;
	c->shm_fd = -1;
	c->rfd = -1;
	for (unsigned k = 0; k < VSHM_HUB_MAX_VECTORS; k++)
		c->own[k] = -1;
	c->expect = expect_vectors <= VSHM_HUB_MAX_VECTORS ? expect_vectors : 0;
	c->state = ST_VERSION;
}

/* ------------------------------------------------------------------------ */
/* Peer table: sorted by id, at most 65536 entries (the id range).           */

/* Index of @id, or of where it would go (with *found = 0). */
static unsigned peer_pos(const struct vshm_hub_client *c, int64_t id, int *found)
{
	unsigned lo = 0, hi = c->npeers;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (c->peers[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < c->npeers && c->peers[lo].id == id;
	return lo;
}

static struct vshm_hub_peer *peer_insert(struct vshm_hub_client *c, unsigned pos, int64_t id)
{
	struct vshm_hub_peer *p;

	if (c->npeers == c->peers_cap) {
		unsigned cap = c->peers_cap ? 2 * c->peers_cap : 8;

		/* The id range bounds the table; ids are checked before we get here. */
		if (cap > VSHM_HUB_MAX_PEERS)
			cap = VSHM_HUB_MAX_PEERS;
		if (cap <= c->npeers)
			return NULL;
		p = realloc(c->peers, (size_t)cap * sizeof(*p));
		if (!p)
			return NULL;
		c->peers = p;
		c->peers_cap = cap;
	}
	memmove(&c->peers[pos + 1], &c->peers[pos],
		(size_t)(c->npeers - pos) * sizeof(*c->peers));
	c->npeers++;
	p = &c->peers[pos];
	memset(p, 0, sizeof(*p));
	p->id = id;
	for (unsigned k = 0; k < VSHM_HUB_MAX_VECTORS; k++)
		p->fds[k] = -1;
	return p;
}

static void peer_remove(struct vshm_hub_client *c, unsigned pos)
{
	struct vshm_hub_peer *p = &c->peers[pos];

	for (unsigned k = 0; k < p->nfds; k++)
		close_fd(p->fds[k]);
	if (p->joined && !p->announced)
		c->pending--;
	memmove(&c->peers[pos], &c->peers[pos + 1],
		(size_t)(c->npeers - pos - 1) * sizeof(*c->peers));
	c->npeers--;
}

const int *vshm_hub_peer_fds(const struct vshm_hub_client *c, int64_t id, unsigned *n)
{
	unsigned pos;
	int found;

	if (n)
		*n = 0;
	if (!c->peers)
		return NULL;
	pos = peer_pos(c, id, &found);
	if (!found)
		return NULL;
	if (n)
		*n = c->peers[pos].nfds;
	return c->peers[pos].fds;
}

/*
 * All N own vectors are here: N is final.  Peers announced before us (the
 * hub sends them first) become joined now; their JOINs queue up as pending.
 */
static int become_ready(struct vshm_hub_client *c)
{
	/* Check everything before changing anything: a refused client
	 * keeps consistent tables (the fuzzer checks them). */
	for (unsigned i = 0; i < c->npeers; i++)
		if (c->peers[i].nfds > c->vectors)
			return fail(c, "a peer has more eventfds than we have vectors", -1);
	c->ready = 1;
	for (unsigned i = 0; i < c->npeers; i++) {
		struct vshm_hub_peer *p = &c->peers[i];

		if (p->nfds == c->vectors && !p->joined) {
			p->joined = 1;
			c->pending++;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The state machine                                                         */

static int feed_run(struct vshm_hub_client *c, int64_t value, int fd,
		    struct vshm_hub_event *ev)
{
	struct vshm_hub_peer *p;
	unsigned pos, limit;
	int found;

	if (value == -1)
		return fail(c, "a second shared memory message", fd);
	if (value < -1 || value > VSHM_HUB_MAX_ID)
		return fail(c, "peer id out of range 0..65535", fd);

	if (value == c->id) {
		if (fd < 0)
			return fail(c, "the hub announced our own disconnect", fd);
		if (c->ready || c->vectors >= VSHM_HUB_MAX_VECTORS)
			return fail(c, "more own vectors than the hub announced", fd);
		c->own[c->vectors++] = fd;
		if (c->expect && c->vectors == c->expect)
			return become_ready(c);
		return 0;
	}

	pos = peer_pos(c, value, &found);
	if (fd < 0) {
		/* A leave.  Unknown ids are allowed: the peer may have left
		 * before its vectors reached us, or never had any. */
		if (!found)
			return 0;
		if (c->peers[pos].announced) {
			ev->type = VSHM_HUB_EV_LEAVE;
			ev->id = value;
		}
		peer_remove(c, pos);
		return 0;
	}

	if (found) {
		p = &c->peers[pos];
	} else {
		p = peer_insert(c, pos, value);
		if (!p) {
			close_fd(fd);
			if (!c->broken)
				c->broken = "out of memory";
			return -ENOMEM;
		}
	}
	limit = c->ready ? c->vectors : VSHM_HUB_MAX_VECTORS;
	if (p->nfds >= limit)
		return fail(c, "more eventfds for a peer than it has vectors", fd);
	p->fds[p->nfds++] = fd;
	if (c->ready && p->nfds == c->vectors) {
		p->joined = 1;
		p->announced = 1;
		ev->type = VSHM_HUB_EV_JOIN;
		ev->id = value;
	}
	return 0;
}

int vshm_hub_client_feed(struct vshm_hub_client *c, int64_t value, int fd,
			 struct vshm_hub_event *ev)
{
	ev->type = VSHM_HUB_EV_NONE;
	ev->id = -1;
	if (c->broken) {
		close_fd(fd);
		return -EPROTO;
	}
	switch (c->state) {
	case ST_VERSION:
		if (fd >= 0)
			return fail(c, "an fd came with the version message", fd);
		if (value != VSHM_HUB_PROTOCOL_VERSION)
			return fail(c, "unsupported protocol version (want 0)", fd);
		c->state = ST_ID;
		return 0;
	case ST_ID:
		if (fd >= 0)
			return fail(c, "an fd came with our id", fd);
		if (value < 0 || value > VSHM_HUB_MAX_ID)
			return fail(c, "our id is out of range 0..65535", fd);
		c->id = value;
		c->state = ST_SHM;
		return 0;
	case ST_SHM:
		if (value != -1)
			return fail(c, "the third message is not the shared memory (-1)", fd);
		if (fd < 0)
			return fail(c, "the shared memory message carries no fd", fd);
		c->shm_fd = fd;
		c->state = ST_RUN;
		return 0;
	default:
		return feed_run(c, value, fd, ev);
	}
}

/* Report one queued JOIN; 1 if there was one. */
static int pop_pending(struct vshm_hub_client *c, struct vshm_hub_event *ev)
{
	if (!c->pending)
		return 0;
	for (unsigned i = 0; i < c->npeers; i++) {
		struct vshm_hub_peer *p = &c->peers[i];

		if (p->joined && !p->announced) {
			p->announced = 1;
			c->pending--;
			ev->type = VSHM_HUB_EV_JOIN;
			ev->id = p->id;
			return 1;
		}
	}
	c->pending = 0;		/* unreachable: the counter tracks the flags */
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The socket                                                                */

/*
 * Read at most the rest of one 8-byte message.  A message may arrive in
 * pieces; its fd rides on whichever piece the hub's sendmsg started, so we
 * keep it until the last byte is in.  Returns 1 with *value and *fd (fd owned
 * by the caller), 0 when nothing more is readable, -EPIPE on EOF or reset,
 * -EPROTO when a message came with more than one fd (all closed), another
 * -errno on failure.
 */
static int recv_msg(struct vshm_hub_client *c, int64_t *value, int *fd)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(CMSG_MAX_FDS * sizeof(int))];
	} cbuf;
	struct iovec iov;
	struct msghdr mh;
	struct cmsghdr *cm;
	int fds[CMSG_MAX_FDS];
	unsigned nfds = 0;
	ssize_t n;

	for (;;) {
		memset(&mh, 0, sizeof(mh));
		iov.iov_base = c->rbuf + c->rlen;
		iov.iov_len = sizeof(c->rbuf) - c->rlen;
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = sizeof(cbuf.buf);
		n = recvmsg(c->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n >= 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (errno == ECONNRESET || errno == EPIPE)
			return -EPIPE;
		return -errno;
	}

	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t cnt;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
		    cm->cmsg_len < CMSG_LEN(0))
			continue;
		cnt = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < cnt; i++) {
			int f;

			memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(f));
			if (nfds < CMSG_MAX_FDS)
				fds[nfds++] = f;
			else
				close_fd(f);	/* cannot happen: the buffer holds CMSG_MAX_FDS */
		}
	}
	if ((mh.msg_flags & MSG_CTRUNC) || nfds > 1 || (nfds == 1 && c->rfd >= 0)) {
		/* Too many fds for one message: close every one, keep none. */
		for (unsigned i = 0; i < nfds; i++)
			close_fd(fds[i]);
		close_fd(c->rfd);
		c->rfd = -1;
		return fail(c, "a message carried more than one fd", -1);
	}
	if (nfds == 1)
		c->rfd = fds[0];
	if (n == 0)
		return -EPIPE;
	c->rlen += (unsigned)n;
	if (c->rlen < sizeof(c->rbuf))
		return 0;

	{
		uint64_t u = 0;

		for (unsigned i = 0; i < 8; i++)	/* little-endian on the wire */
			u |= (uint64_t)c->rbuf[i] << (8 * i);
		*value = (int64_t)u;
	}
	*fd = c->rfd;
	c->rfd = -1;
	c->rlen = 0;
	return 1;
}

int vshm_hub_client_fd(const struct vshm_hub_client *c)
{
	return c->sock;
}

const char *vshm_hub_client_error(const struct vshm_hub_client *c)
{
	return c->broken;
}

int vshm_hub_client_process(struct vshm_hub_client *c, struct vshm_hub_event *ev)
{
	ev->type = VSHM_HUB_EV_NONE;
	ev->id = -1;
	if (c->broken)
		return -EPROTO;
	if (pop_pending(c, ev))
		return 1;
	if (c->sock < 0)
		return 0;
	for (;;) {
		int64_t value;
		int fd, rc;

		rc = recv_msg(c, &value, &fd);
		if (rc <= 0)
			return rc;
		rc = vshm_hub_client_feed(c, value, fd, ev);
		if (rc < 0)
			return rc;
		if (ev->type != VSHM_HUB_EV_NONE)
			return 1;
		if (pop_pending(c, ev))
			return 1;
	}
}

void vshm_hub_client_close(struct vshm_hub_client *c)
{
	close_fd(c->sock);
	close_fd(c->shm_fd);
	close_fd(c->rfd);
	for (unsigned k = 0; k < c->vectors && k < VSHM_HUB_MAX_VECTORS; k++)
		close_fd(c->own[k]);
	for (unsigned i = 0; i < c->npeers; i++)
		for (unsigned k = 0; k < c->peers[i].nfds; k++)
			close_fd(c->peers[i].fds[k]);
	free(c->peers);
	vshm_hub_client_init(c, 0);
}

/* ------------------------------------------------------------------------ */
/* Connecting                                                                */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * N from the window header, if the fd is a vshm window: the hub writes the
 * header before it accepts anyone, and the same N into every peer's
 * messages.  A foreign window (plain ivshmem-server) leaves N unknown.
 */
static unsigned header_vectors(int shm_fd)
{
	unsigned char b[128];
	uint64_t magic;
	uint32_t vec;

	if (pread(shm_fd, b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return 0;
	memcpy(&magic, b + __builtin_offsetof(struct vshm_win_hdr, magic), sizeof(magic));
	memcpy(&vec, b + __builtin_offsetof(struct vshm_win_hdr, vectors), sizeof(vec));
	if (magic != VSHM_MAGIC || vec < 1 || vec > VSHM_HUB_MAX_VECTORS)
		return 0;
	return vec;
}

/* Fill @err (when given), drop everything, return @rc. */
__attribute__((format(printf, 5, 6)))
static int connect_fail(struct vshm_hub_client *c, int rc, char *err, size_t errlen,
			const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	vshm_hub_client_close(c);
	return rc;
}

static int open_socket(const char *path, int64_t deadline, int *out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s;

	memcpy(sa.sun_path, path, strlen(path) + 1);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return -errno;
	for (;;) {
		if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		if (errno == EINTR)
			continue;
		/* A full listen backlog: the hub is busy, try again shortly. */
		if (errno == EAGAIN && now_ms() < deadline) {
			poll(NULL, 0, 10);
			continue;
		}
		{
			int e = errno == EAGAIN ? -ETIMEDOUT : -errno;

			close(s);
			return e;
		}
	}
	*out = s;
	return 0;
}

int vshm_hub_connect(struct vshm_hub_client *c, const char *path, int timeout_ms,
		     char *err, size_t errlen)
{
	int64_t deadline;
	int hdr_checked = 0, rc;

	vshm_hub_client_init(c, 0);
	if (err && errlen)
		err[0] = '\0';
	if (!path || !*path)
		return connect_fail(c, -EINVAL, err, errlen, "no hub socket path given");
	if (timeout_ms <= 0)
		return connect_fail(c, -EINVAL, err, errlen,
				    "bad timeout %d ms for connecting to the hub", timeout_ms);
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return connect_fail(c, -ENAMETOOLONG, err, errlen,
				    "hub socket path %s is too long (at most %zu bytes)", path,
				    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	deadline = now_ms() + timeout_ms;

	rc = open_socket(path, deadline, &c->sock);
	switch (rc) {
	case 0:
		break;
	case -ENOENT:
		return connect_fail(c, rc, err, errlen,
				    "no hub at %s (no such socket; is `vshm hub` running?)", path);
	case -ECONNREFUSED:
		return connect_fail(c, rc, err, errlen,
				    "no hub is listening on %s (stale socket file?)", path);
	case -EACCES:
	case -EPERM:
		return connect_fail(c, rc, err, errlen,
				    "permission denied connecting to %s (check the socket's mode and group)",
				    path);
	case -ETIMEDOUT:
		return connect_fail(c, rc, err, errlen,
				    "hub at %s did not accept within %d ms (listen backlog full)",
				    path, timeout_ms);
	default:
		return connect_fail(c, rc, err, errlen, "cannot connect to %s: %s", path,
				    strerror(-rc));
	}

	while (!c->ready) {
		struct vshm_hub_event ev;
		struct pollfd pfd = { .fd = c->sock, .events = POLLIN };
		int64_t value, left, cap;
		int fd, settle;

		rc = recv_msg(c, &value, &fd);
		if (rc == 1) {
			rc = vshm_hub_client_feed(c, value, fd, &ev);
			if (rc < 0)
				break;
			if (c->shm_fd >= 0 && !hdr_checked) {
				hdr_checked = 1;
				c->expect = header_vectors(c->shm_fd);
			}
			continue;
		}
		if (rc < 0)
			break;

		left = deadline - now_ms();
		if (left <= 0) {
			rc = -ETIMEDOUT;
			break;
		}
		/*
		 * N unknown (a foreign window): the hub sends our vectors in
		 * one burst, so once some arrived, a quiet socket ends them.
		 */
		settle = c->state == ST_RUN && !c->expect && c->vectors > 0;
		cap = settle ? SETTLE_MS : left;
		rc = poll(&pfd, 1, (int)(left < cap ? left : cap));
		if (rc < 0 && errno != EINTR) {
			rc = -errno;
			break;
		}
		if (rc == 0 && settle) {
			rc = become_ready(c);
			if (rc < 0)
				break;
		}
	}
	if (c->ready)
		return 0;

	switch (rc) {
	case -EPIPE:
		return connect_fail(c, -ECONNRESET, err, errlen,
				    "hub at %s closed the connection (full?)", path);
	case -EPROTO:
		return connect_fail(c, rc, err, errlen, "hub at %s broke the protocol: %s",
				    path, c->broken ? c->broken : "?");
	case -ENOMEM:
		return connect_fail(c, rc, err, errlen,
				    "out of memory talking to the hub at %s", path);
	case -ETIMEDOUT:
		return connect_fail(c, rc, err, errlen,
				    "timed out after %d ms waiting for the hub at %s (%s)",
				    timeout_ms, path, c->state == ST_RUN ?
				    "own vectors incomplete" : "no window yet");
	default:
		return connect_fail(c, rc, err, errlen, "reading from the hub at %s: %s",
				    path, strerror(-rc));
	}
}
