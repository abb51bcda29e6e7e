// SPDX-License-Identifier: MIT
/* Doorbells: the eventfd pair, caller-supplied fds, poll-only. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <vshm/doorbell.h>
#include "tap.h"

#define MS	1000000LL
#define US	1000LL

/*
 * Timing slack.  Sleeps never end early (checked tightly below) but can end
 * late on a loaded machine or under a sanitizer, so the upper bound is loose.
 */
#define LATE	(1000 * MS)	/* generous: CI machines are shared and sanitizers slow */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static int fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static void test_pair(void)
{
	struct vshm_db_eventfd a, b;
	const struct vshm_doorbell *da = &a.db, *db = &b.db;
	int64_t t0, dt;
	int rc, fd;

	rc = vshm_doorbell_eventfd_pair(&a, &b, 4);
	is(rc, 0, "eventfd pair with 4 vectors");
	if (rc)
		return;

	is(vshm_doorbell_ring(da, 0), 0, "a rings vector 0");
	t0 = now_ns();
	is(vshm_doorbell_wait(db, 0, 1000 * MS), 0, "b's wait on vector 0 returns 0");
	ok(now_ns() - t0 < LATE, "... without sleeping out the timeout");
	is(vshm_doorbell_wait(da, 0, 0), -ETIMEDOUT, "a's own vector 0 was not signalled");

	is(vshm_doorbell_wait(db, 0, 0), -ETIMEDOUT, "the wait consumed the signal");

	t0 = now_ns();
	rc = vshm_doorbell_wait(db, 1, 30 * MS);
	dt = now_ns() - t0;
	is(rc, -ETIMEDOUT, "wait with nothing pending times out");
	ok(dt >= 30 * MS - 1 * MS, "... not before the timeout (%lld us)", (long long)(dt / US));
	ok(dt < 30 * MS + LATE, "... and not long after it (%lld us)", (long long)(dt / US));

	/* Three rings coalesce into one wake. */
	for (int i = 0; i < 3; i++)
		vshm_doorbell_ring(da, 2);
	is(vshm_doorbell_wait(db, 2, 100 * MS), 0, "three rings, first wait returns 0");
	is(vshm_doorbell_wait(db, 2, 0), -ETIMEDOUT, "... second wait finds them consumed");

	/* Vectors are independent. */
	vshm_doorbell_ring(da, 3);
	is(vshm_doorbell_wait(db, 1, 5 * MS), -ETIMEDOUT, "ring on 3 leaves vector 1 quiet");
	is(vshm_doorbell_wait(db, 3, 0), 0, "... and vector 3 signalled");
	vshm_doorbell_ring(db, 1);
	is(vshm_doorbell_wait(da, 1, 100 * MS), 0, "the other direction works (b -> a)");

	/* fd is pollable, drain consumes. */
	fd = vshm_doorbell_fd(db, 0);
	ok(fd >= 0, "b has a pollable fd for vector 0");
	ok(!readable(fd), "... not readable while idle");
	vshm_doorbell_ring(da, 0);
	ok(readable(fd), "... readable after a ring");
	vshm_doorbell_drain(db, 0);
	ok(!readable(fd), "... not readable after drain");
	is(vshm_doorbell_wait(db, 0, 0), -ETIMEDOUT, "wait after drain finds nothing");
	t0 = now_ns();
	vshm_doorbell_drain(db, 0);
	ok(now_ns() - t0 < LATE, "drain with nothing pending does not block");

	/* Bad arguments. */
	is(vshm_doorbell_ring(da, 4), -EINVAL, "ring on vector >= nvec refused");
	is(vshm_doorbell_wait(db, 4, 0), -EINVAL, "wait on vector >= nvec refused");
	is(vshm_doorbell_wait(db, 0, -1), -EINVAL, "negative timeout refused");
	is(vshm_doorbell_fd(db, 4), -1, "fd of vector >= nvec is -1");
	vshm_doorbell_drain(db, 99);
	vshm_doorbell_ring(da, 1);
	is(vshm_doorbell_wait(db, 1, 100 * MS), 0, "drain of a bad vector is harmless");

	/* A hostile peer reading our count (it holds the same file) only steals a wake. */
	vshm_doorbell_ring(da, 0);
	{
		uint64_t v;
		ok(read(b.tx[0], &v, sizeof(v)) < 0 && errno == EAGAIN,
		   "b's tx fd of vector 0 is a's rx, which is empty");
		ok(read(a.tx[0], &v, sizeof(v)) == sizeof(v) && v == 1,
		   "a peer can read our count through its tx fd");
	}
	is(vshm_doorbell_wait(db, 0, 10 * MS), -ETIMEDOUT, "... the stolen wake times out, bounded");

	/* A peer that makes our rx blocking cannot make wait or drain block. */
	{
		int fl = fcntl(a.tx[0], F_GETFL);
		ok(fl >= 0 && fcntl(a.tx[0], F_SETFL, fl & ~O_NONBLOCK) == 0,
		   "peer clears O_NONBLOCK on the shared file");
		vshm_doorbell_ring(da, 0);
		ok(readable(fd), "ring after that");
		t0 = now_ns();
		vshm_doorbell_drain(db, 0);
		vshm_doorbell_drain(db, 0);
		ok(now_ns() - t0 < LATE, "two drains on a blocking file return at once");
	}

	/* A peer that saturates its counter cannot make ring block. */
	{
		uint64_t big = 0xfffffffffffffffeull;
		ok(write(b.rx[1], &big, sizeof(big)) == sizeof(big), "peer saturates its vector 1 count");
		t0 = now_ns();
		is(vshm_doorbell_ring(da, 1), 0, "ring on a saturated count returns 0 (already signalled)");
		ok(now_ns() - t0 < LATE, "... at once");
		vshm_doorbell_drain(db, 1);
	}

	vshm_doorbell_eventfd_fini(&a);
	vshm_doorbell_eventfd_fini(&b);
	vshm_doorbell_eventfd_fini(&b);
	ok(a.nvec == 0 && a.rx[0] == -1, "fini leaves nothing to close; twice is harmless");
}

static void test_init_fds(void)
{
	struct vshm_db_eventfd e, z;
	int peer[2], mine[2], ours[4], rc;
	uint64_t v;

	for (int i = 0; i < 2; i++) {
		peer[i] = eventfd(0, EFD_CLOEXEC);	/* blocking, as a hub might send them */
		mine[i] = eventfd(0, EFD_CLOEXEC);
	}
	rc = vshm_doorbell_eventfd_init(&e, 2, peer, mine);
	is(rc, 0, "init from caller-supplied fds");
	if (rc)
		return;
	ok(e.tx[0] != peer[0] && e.rx[0] != mine[0], "the fds are duplicated");
	ok(fcntl(e.rx[0], F_GETFD) & FD_CLOEXEC, "duplicates are close-on-exec");
	ok(fcntl(mine[0], F_GETFL) & O_NONBLOCK, "rx files are made non-blocking");

	is(vshm_doorbell_ring(&e.db, 1), 0, "ring vector 1");
	ok(read(peer[1], &v, sizeof(v)) == sizeof(v) && v == 1,
	   "the peer's eventfd 1 received the 8-byte value 1");
	v = 1;
	ok(write(mine[0], &v, sizeof(v)) == sizeof(v), "the peer writes our eventfd 0");
	is(vshm_doorbell_wait(&e.db, 0, 100 * MS), 0, "wait on vector 0 sees it");
	is(vshm_doorbell_fd(&e.db, 1), e.rx[1], "fd() is our rx eventfd");

	for (int i = 0; i < 2; i++) {
		ours[i] = e.tx[i];
		ours[2 + i] = e.rx[i];
	}
	vshm_doorbell_eventfd_fini(&e);
	ok(!fd_open(ours[0]) && !fd_open(ours[1]) && !fd_open(ours[2]) && !fd_open(ours[3]),
	   "fini closes the duplicates");
	ok(fd_open(peer[0]) && fd_open(mine[1]), "... and leaves the caller's fds alone");

	/* Unconnected vectors. */
	{
		int tx1[2] = { -1, peer[1] };
		int64_t t0, dt;

		rc = vshm_doorbell_eventfd_init(&z, 2, tx1, NULL);
		is(rc, 0, "init with a missing tx fd and no rx fds");
		is(vshm_doorbell_ring(&z.db, 0), -ENOTCONN, "ring on an unconnected vector: -ENOTCONN");
		is(vshm_doorbell_ring(&z.db, 1), 0, "ring on the connected one works");
		is(vshm_doorbell_fd(&z.db, 0), -1, "no rx fd: fd() is -1");
		t0 = now_ns();
		rc = vshm_doorbell_wait(&z.db, 0, 1000 * MS);
		dt = now_ns() - t0;
		is(rc, 0, "no rx fd: wait returns 0 (re-check)");
		ok(dt < VSHM_DB_POLL_QUANTUM_NS + LATE, "... after at most a quantum (%lld us)",
		   (long long)(dt / US));
		vshm_doorbell_eventfd_fini(&z);
	}

	is(vshm_doorbell_eventfd_init(&z, 0, NULL, NULL), -EINVAL, "0 vectors refused");
	is(vshm_doorbell_eventfd_init(&z, VSHM_DB_MAX_VECTORS + 1, NULL, NULL), -EINVAL,
	   "more than VSHM_DB_MAX_VECTORS refused");
	{
		int bad[1] = { 100000 };
		is(vshm_doorbell_eventfd_init(&z, 1, bad, NULL), -EBADF, "a closed fd is refused");
		ok(z.nvec == 0, "... and nothing is left owned");
	}
	for (int i = 0; i < 2; i++) {
		close(peer[i]);
		close(mine[i]);
	}
}

static void on_alarm(int sig)
{
	(void)sig;
}

static void test_eintr(void)
{
	struct vshm_db_eventfd a, b;
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	struct itimerval it = { .it_value = { .tv_usec = 20000 } }, off = { 0 };
	int64_t t0, dt;
	int rc;

	if (vshm_doorbell_eventfd_pair(&a, &b, 1)) {
		ok(0, "pair for the EINTR test");
		return;
	}
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;	/* no SA_RESTART: the wait must see EINTR */
	sigaction(SIGALRM, &sa, &old);
	setitimer(ITIMER_REAL, &it, NULL);
	t0 = now_ns();
	rc = vshm_doorbell_wait(&b.db, 0, 2000 * MS);
	dt = now_ns() - t0;
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);
	is(rc, -EINTR, "a signal during wait returns -EINTR");
	ok(dt < 1000 * MS, "... promptly (%lld ms)", (long long)(dt / MS));
	vshm_doorbell_eventfd_fini(&a);
	vshm_doorbell_eventfd_fini(&b);
}

static void test_poll_only(void)
{
	const struct vshm_doorbell *p = &vshm_doorbell_poll_only;
	struct vshm_db_poll q;
	int64_t t0, dt;
	int rc;

	is(vshm_doorbell_ring(p, 0), 0, "poll-only ring is a no-op returning 0");
	is(vshm_doorbell_ring(p, 63), 0, "... on any vector");
	is(vshm_doorbell_fd(p, 0), -1, "poll-only fd is -1");
	t0 = now_ns();
	vshm_doorbell_drain(p, 0);
	ok(now_ns() - t0 < LATE, "poll-only drain returns at once");

	t0 = now_ns();
	rc = vshm_doorbell_wait(p, 0, 1000 * MS);
	dt = now_ns() - t0;
	is(rc, 0, "poll-only wait returns 0 (caller re-checks)");
	ok(dt >= VSHM_DB_POLL_QUANTUM_NS - 1 * US, "... after sleeping about a quantum (%lld us)",
	   (long long)(dt / US));
	ok(dt < VSHM_DB_POLL_QUANTUM_NS + LATE, "... not the whole timeout");

	t0 = now_ns();
	rc = vshm_doorbell_wait(p, 0, 10 * US);
	dt = now_ns() - t0;
	is(rc, 0, "poll-only wait with a timeout below the quantum returns 0");
	ok(dt >= 10 * US - 1 * US && dt < 10 * US + LATE,
	   "... sleeping the timeout (%lld us)", (long long)(dt / US));
	is(vshm_doorbell_wait(p, 0, 0), 0, "poll-only wait(0) returns 0 at once");
	is(vshm_doorbell_wait(p, 0, -5), -EINVAL, "poll-only negative timeout refused");

	vshm_doorbell_poll_init(&q, 2 * MS);
	t0 = now_ns();
	rc = vshm_doorbell_wait(&q.db, 0, 1000 * MS);
	dt = now_ns() - t0;
	ok(rc == 0 && dt >= 2 * MS - 1 * US && dt < 2 * MS + LATE,
	   "a 2 ms quantum sleeps 2 ms (%lld us)", (long long)(dt / US));
	vshm_doorbell_poll_init(&q, 0);
	is(q.quantum_ns, VSHM_DB_POLL_QUANTUM_NS, "quantum 0 selects the default");
}

int main(void)
{
	test_pair();
	test_init_fds();
	test_eintr();
	test_poll_only();
	return tap_done();
}
