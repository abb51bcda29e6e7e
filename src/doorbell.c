// SPDX-License-Identifier: MIT
/*
 * Doorbells: eventfd (ivshmem-server semantics) and poll-only.
 *
 * Nothing here touches the window.  The eventfd doorbell owns duplicates of
 * the fds it was given, so the caller (the hub client, a test) can close or
 * re-use its own descriptors without coordinating with us.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <vshm/doorbell.h>

static struct timespec ns_to_ts(int64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / 1000000000),
		.tv_nsec = (long)(ns % 1000000000),
	};
	return ts;
}

/* One relative sleep of @ns; 0 or -EINTR. */
static int sleep_ns(int64_t ns)
{
	struct timespec ts;
	int rc;

	if (ns <= 0)
		return 0;
	ts = ns_to_ts(ns);
	rc = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
	return rc == EINTR ? -EINTR : 0;
}

/* ------------------------------------------------------------------------ */
/* eventfd                                                                   */

/*
 * Reset an eventfd's count without ever blocking.  RWF_NOWAIT makes this
 * independent of the file's O_NONBLOCK flag, which the peer shares with us
 * and may have cleared; kernels without it fall back to read() and rely on
 * the O_NONBLOCK set at init.  An empty count (EAGAIN) is fine: someone
 * consumed it first, the caller re-checks shared state anyway.
 */
static void efd_consume(int fd)
{
	uint64_t v;
	ssize_t n;

#ifdef RWF_NOWAIT
	struct iovec iov = { .iov_base = &v, .iov_len = sizeof(v) };

	do
		n = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
	while (n < 0 && errno == EINTR);
	if (n >= 0 || (errno != EOPNOTSUPP && errno != EINVAL))
		return;
#endif
	do
		n = read(fd, &v, sizeof(v));
	while (n < 0 && errno == EINTR);
}

static int efd_ring(void *ctx, unsigned vector)
{
	struct vshm_db_eventfd *e = ctx;
	const uint64_t one = 1;
	struct pollfd pfd;
	ssize_t n;
	int fd, rc;

	if (vector >= e->nvec)
		return -EINVAL;
	fd = e->tx[vector];
	if (fd < 0)
		return -ENOTCONN;
	/*
	 * No POLLOUT means the count is saturated: the peer is signalled
	 * already, and a write could block if the peer made its file blocking.
	 */
	pfd.fd = fd;
	pfd.events = POLLOUT;
	do
		rc = poll(&pfd, 1, 0);
	while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return -errno;
	if (pfd.revents & POLLNVAL)
		return -EBADF;
	if (!(pfd.revents & POLLOUT))
		return 0;
	do
		n = write(fd, &one, sizeof(one));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? 0 : -errno;
	return n == sizeof(one) ? 0 : -EIO;
}

static int efd_wait(void *ctx, unsigned vector, int64_t timeout_ns)
{
	struct vshm_db_eventfd *e = ctx;
	struct pollfd pfd;
	struct timespec ts;
	int rc;

	if (vector >= e->nvec || timeout_ns < 0)
		return -EINVAL;
	if (e->rx[vector] < 0) {
		/* Not connected: behave like the poll-only doorbell. */
		int64_t q = VSHM_DB_POLL_QUANTUM_NS;
		return sleep_ns(timeout_ns < q ? timeout_ns : q);
	}
	pfd.fd = e->rx[vector];
	pfd.events = POLLIN;
	ts = ns_to_ts(timeout_ns);
	rc = ppoll(&pfd, 1, &ts, NULL);
	if (rc < 0)
		return -errno;		/* -EINTR: see doorbell.h */
	if (rc == 0)
		return -ETIMEDOUT;
	if (pfd.revents & POLLNVAL)
		return -EBADF;
	efd_consume(pfd.fd);
	return 0;
}

static int efd_fd(void *ctx, unsigned vector)
{
	struct vshm_db_eventfd *e = ctx;

	if (vector >= e->nvec)
		return -1;
	return e->rx[vector];
}

static void efd_drain(void *ctx, unsigned vector)
{
	struct vshm_db_eventfd *e = ctx;

	if (vector < e->nvec && e->rx[vector] >= 0)
		efd_consume(e->rx[vector]);
}

static const struct vshm_doorbell_ops efd_ops = {
	.ring = efd_ring,
	.wait = efd_wait,
	.fd = efd_fd,
	.drain = efd_drain,
};

static void efd_clear(struct vshm_db_eventfd *e)
{
	memset(e, 0, sizeof(*e));
	for (unsigned i = 0; i < VSHM_DB_MAX_VECTORS; i++)
		e->tx[i] = e->rx[i] = -1;
	e->db.ops = &efd_ops;
	e->db.ctx = e;
}

void vshm_doorbell_eventfd_fini(struct vshm_db_eventfd *e)
{
	/* A zeroed struct has fd 0 in every slot but nvec 0: closes nothing. */
	for (unsigned i = 0; i < e->nvec && i < VSHM_DB_MAX_VECTORS; i++) {
		if (e->tx[i] >= 0)
			close(e->tx[i]);
		if (e->rx[i] >= 0)
			close(e->rx[i]);
	}
	efd_clear(e);
}

/* A close-on-exec duplicate of @fd, or -errno. */
static int dup_cloexec(int fd)
{
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);

	return nfd < 0 ? -errno : nfd;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* Store a duplicate of @fd (or -1 for "not connected") in *@slot. */
static int adopt(int *slot, int fd, int nonblock)
{
	int nfd, err;

	if (fd < 0)
		return 0;
	nfd = dup_cloexec(fd);
	if (nfd < 0)
		return nfd;
	*slot = nfd;	/* owned from here: fini closes it */
	if (nonblock) {
		err = set_nonblock(nfd);
		if (err)
			return err;
	}
	return 0;
}

int vshm_doorbell_eventfd_init(struct vshm_db_eventfd *e, unsigned nvec,
			       const int *tx_fds, const int *rx_fds)
{
	int err;

	efd_clear(e);
	if (nvec < 1 || nvec > VSHM_DB_MAX_VECTORS)
		return -EINVAL;
	e->nvec = nvec;
	for (unsigned i = 0; i < nvec; i++) {
		err = adopt(&e->tx[i], tx_fds ? tx_fds[i] : -1, 0);
		if (!err)
			err = adopt(&e->rx[i], rx_fds ? rx_fds[i] : -1, 1);
		if (err) {
			vshm_doorbell_eventfd_fini(e);
			return err;
		}
	}
	return 0;
}

/*
 * One eventfd seen from both ends: *rx for the doorbell that sleeps on it,
 * *tx (a second descriptor of the same file) for the one that rings it.
 * On failure both stay -1.
 */
static int new_link(int *rx, int *tx)
{
	int r, t;

	r = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r < 0)
		return -errno;
	t = dup_cloexec(r);
	if (t < 0) {
		close(r);
		return t;
	}
	*rx = r;
	*tx = t;
	return 0;
}

int vshm_doorbell_eventfd_pair(struct vshm_db_eventfd *a, struct vshm_db_eventfd *b,
			       unsigned nvec)
{
	int err;

	efd_clear(a);
	efd_clear(b);
	if (nvec < 1 || nvec > VSHM_DB_MAX_VECTORS)
		return -EINVAL;
	a->nvec = b->nvec = nvec;
	for (unsigned i = 0; i < nvec; i++) {
		err = new_link(&a->rx[i], &b->tx[i]);
		if (!err)
			err = new_link(&b->rx[i], &a->tx[i]);
		if (err) {
			vshm_doorbell_eventfd_fini(a);
			vshm_doorbell_eventfd_fini(b);
			return err;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* poll-only                                                                 */

static int poll_ring(void *ctx, unsigned vector)
{
	return 0;
}

static int poll_wait(void *ctx, unsigned vector, int64_t timeout_ns)
{
	const struct vshm_db_poll *p = ctx;
	int64_t q = p && p->quantum_ns > 0 ? p->quantum_ns : VSHM_DB_POLL_QUANTUM_NS;

	if (timeout_ns < 0)
		return -EINVAL;
	return sleep_ns(timeout_ns < q ? timeout_ns : q);
}

static int poll_fd(void *ctx, unsigned vector)
{
	return -1;
}

static void poll_drain(void *ctx, unsigned vector)
{
}

static const struct vshm_doorbell_ops poll_ops = {
	.ring = poll_ring,
	.wait = poll_wait,
	.fd = poll_fd,
	.drain = poll_drain,
};

/* ctx NULL: the default quantum. */
const struct vshm_doorbell vshm_doorbell_poll_only = { .ops = &poll_ops, .ctx = NULL };

void vshm_doorbell_poll_init(struct vshm_db_poll *p, int64_t quantum_ns)
{
	p->db.ops = &poll_ops;
	p->db.ctx = p;
	p->quantum_ns = quantum_ns > 0 ? quantum_ns : VSHM_DB_POLL_QUANTUM_NS;
}
