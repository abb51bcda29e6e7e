// SPDX-License-Identifier: MIT
/*
 * The hub: the ivshmem-server protocol byte for byte (checked with raw
 * recvmsg code that shares nothing with src/hubclient.c), the client API,
 * role release, limits, socket-path handling, the client state machine on
 * hostile sequences, and `vshm hub` itself (cmd/hub.c is compiled into this
 * program so its messages and exit codes are tested without a binary).
 *
 * Every wait is bounded; every hub thread is joined; the fd count at the
 * end must equal the one at the start.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <vshm/hub.h>
#include <vshm/window.h>
#include "tap.h"

/* The command, for its messages and exit codes (it has no main()). */
#include "../cmd/hub.c"

#define T_MS	3000	/* generous bound for anything that should be quick */
#define QUIET_MS 150	/* "nothing more arrives" */

static char tmpdir[64];

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own fd */
}

static void sock_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[16384];

static void test_log(void *arg, int level, const char *line)
{
	(void)arg;
	pthread_mutex_lock(&log_mu);
	if (strlen(log_buf) + strlen(line) + 2 < sizeof(log_buf)) {
		strcat(log_buf, line);
		strcat(log_buf, "\n");
	}
	pthread_mutex_unlock(&log_mu);
	(void)level;
}

static int log_has(const char *s)
{
	int r;

	pthread_mutex_lock(&log_mu);
	r = strstr(log_buf, s) != NULL;
	pthread_mutex_unlock(&log_mu);
	return r;
}

static void log_clear(void)
{
	pthread_mutex_lock(&log_mu);
	log_buf[0] = '\0';
	pthread_mutex_unlock(&log_mu);
}

/* A hub running vshm_hub_run in its own thread. */
struct hub_thr {
	struct vshm_hub *h;
	int stop;		/* eventfd: readable = return */
	pthread_t t;
	int rc;
	int running;
};

static void *hub_main(void *arg)
{
	struct hub_thr *ht = arg;

	ht->rc = vshm_hub_run(ht->h, ht->stop);
	return NULL;
}

static int hub_start(struct hub_thr *ht, const char *path, unsigned vectors,
		     unsigned max_peers, uint64_t size)
{
	struct vshm_hub_opts o = {
		.socket_path = path, .size = size, .vectors = vectors,
		.max_peers = max_peers,
		.log = test_log,
	};
	char err[256];
	int rc;

	memset(ht, 0, sizeof(*ht));
	rc = vshm_hub_create(&ht->h, &o, err, sizeof(err));
	if (rc) {
		diag("hub_create: %s", err);
		return rc;
	}
	ht->stop = eventfd(0, EFD_CLOEXEC);
	if (ht->stop < 0 || pthread_create(&ht->t, NULL, hub_main, ht)) {
		vshm_hub_destroy(ht->h);
		return -1;
	}
	ht->running = 1;
	return 0;
}

/* Stop the loop (the hub stays, for inspection) */
static void hub_halt(struct hub_thr *ht)
{
	uint64_t one = 1;

	if (!ht->running)
		return;
	if (write(ht->stop, &one, sizeof(one)) != sizeof(one))
		diag("cannot stop the hub thread");
	pthread_join(ht->t, NULL);
	ht->running = 0;
}

static void hub_stop(struct hub_thr *ht)
{
	hub_halt(ht);
	vshm_hub_destroy(ht->h);
	close(ht->stop);
	ht->h = NULL;
}

/* Our test paths are short; a long one is a bug in the test. */
static void set_sun(struct sockaddr_un *sa, const char *path)
{
	size_t n = strlen(path);

	if (n >= sizeof(sa->sun_path))
		n = sizeof(sa->sun_path) - 1;
	memcpy(sa->sun_path, path, n);
	sa->sun_path[n] = '\0';
}

static int raw_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	set_sun(&sa, path);
	if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(s);
		return -1;
	}
	return s;
}

/*
 * Read one 8-byte little-endian message and the fd (at most one) that came
 * with it, written from scratch for the test.  1: got it; 0: nothing within
 * @ms; -1: EOF; -2: a broken message (several fds, EOF or timeout inside).
 */
static int raw_recv(int s, int64_t *value, int *fd, int ms)
{
	unsigned char b[8];
	size_t got = 0;

	*fd = -1;
	while (got < sizeof(b)) {
		union { struct cmsghdr a; char buf[CMSG_SPACE(4 * sizeof(int))]; } cb;
		struct iovec iov = { .iov_base = b + got, .iov_len = sizeof(b) - got };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cb.buf, .msg_controllen = sizeof(cb.buf),
		};
		struct pollfd pfd = { .fd = s, .events = POLLIN };
		struct cmsghdr *cm;
		ssize_t n;

		if (poll(&pfd, 1, ms) <= 0)
			return got ? -2 : 0;
		n = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);
		/* Closed with our byte unread on its side: a reset, not EOF. */
		if (n < 0 && errno == ECONNRESET && !got)
			return -1;
		if (n <= 0)
			return got || n < 0 ? -2 : -1;
		for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t i = 0; i < k; i++) {
				int f;

				memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(f));
				if (*fd >= 0) {
					close(f);
					return -2;
				}
				*fd = f;
			}
		}
		got += (size_t)n;
	}
	*value = 0;
	for (int i = 7; i >= 0; i--)
		*value = (int64_t)(((uint64_t)*value << 8) | b[i]);
	return 1;
}

/* Expect exactly (@value, fd or not); returns the fd (or -1), -2 on mismatch. */
static int expect(int s, int64_t value, int with_fd, const char *what)
{
	int64_t v = -99;
	int fd = -1, rc = raw_recv(s, &v, &fd, T_MS);

	if (!ok(rc == 1 && v == value && (fd >= 0) == !!with_fd,
		"%s: value %lld %s", what, (long long)value, with_fd ? "with an fd" : "without fd")) {
		diag("   got rc %d, value %lld, fd %d", rc, (long long)v, fd);
		if (fd >= 0)
			close(fd);
		return -2;
	}
	return fd;
}

static int quiet(int s, int ms)
{
	struct pollfd pfd = { .fd = s, .events = POLLIN };

	return poll(&pfd, 1, ms) == 0;
}

static int readable(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, ms) == 1 && (pfd.revents & POLLIN);
}

static int ring(int fd)
{
	uint64_t one = 1;

	return write(fd, &one, sizeof(one)) == sizeof(one);
}

static void drain(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0)
		(void)0;	/* EAGAIN: nothing pending; fine */
}

/* Wait for the next event from @c (bounded); NONE on timeout. */
static struct vshm_hub_event next_event(struct vshm_hub_client *c, int ms)
{
	struct vshm_hub_event ev = { VSHM_HUB_EV_NONE, -1 };
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int rc = vshm_hub_client_process(c, &ev), el;

		if (rc != 0)
			return ev;
		clock_gettime(CLOCK_MONOTONIC, &t);
		el = (int)((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (el >= ms)
			return ev;
		readable(vshm_hub_client_fd(c), ms - el);
	}
}

/* ------------------------------------------------------------------------ */
/* 1. The exact byte sequence (the spec's worked example, N = 2)             */

static void test_wire(void)
{
	char path[128];
	struct hub_thr ht;
	struct vshm_window w;
	int a, b, c, fd, shm, a_own[2], b_own[2], a_to_b[2], b_to_a[2];
	int64_t v;

	diag("wire format, N = 2");
	sock_path(path, sizeof(path), "wire.sock");
	if (hub_start(&ht, path, 2, 8, 1 << 20)) {
		ok(0, "start a hub");
		return;
	}
	ok(1, "start a hub (2 vectors, 1 MiB)");

	a = raw_connect(path);
	ok(a >= 0, "peer A connects");
	expect(a, 0, 0, "A msg 1 (version)");
	expect(a, 0, 0, "A msg 2 (id 0)");
	shm = expect(a, -1, 1, "A msg 3 (window)");
	a_own[0] = expect(a, 0, 1, "A msg 4 (own vector 0)");
	a_own[1] = expect(a, 0, 1, "A msg 5 (own vector 1)");
	ok(quiet(a, QUIET_MS), "A: nothing more");

	is(vshm_window_map(&w, shm), 0, "the window fd maps as a vshm window");
	is(w.size, 1 << 20, "window size is the requested 1 MiB");
	is(w.vectors, 2, "header says 2 vectors");
	vshm_window_unmap(&w);
	close(shm);

	b = raw_connect(path);
	ok(b >= 0, "peer B connects");
	expect(b, 0, 0, "B msg 1 (version)");
	expect(b, 1, 0, "B msg 2 (id 1)");
	shm = expect(b, -1, 1, "B msg 3 (window)");
	if (shm >= 0)
		close(shm);
	b_to_a[0] = expect(b, 0, 1, "B msg 4 (peer 0, vector 0)");
	b_to_a[1] = expect(b, 0, 1, "B msg 5 (peer 0, vector 1)");
	b_own[0] = expect(b, 1, 1, "B msg 6 (own vector 0)");
	b_own[1] = expect(b, 1, 1, "B msg 7 (own vector 1)");
	ok(quiet(b, QUIET_MS), "B: nothing more");

	a_to_b[0] = expect(a, 1, 1, "A hears B join (vector 0)");
	a_to_b[1] = expect(a, 1, 1, "A hears B join (vector 1)");
	ok(quiet(a, QUIET_MS), "A: exactly N messages for the join");

	/* Same eventfds on both sides: A's copy for B vector k is B's own k. */
	ok(a_to_b[1] >= 0 && ring(a_to_b[1]), "A rings B vector 1");
	ok(b_own[1] >= 0 && readable(b_own[1], T_MS), "B's own vector 1 fires");
	ok(b_own[0] >= 0 && !readable(b_own[0], 0), "B's vector 0 stays quiet");
	drain(b_own[1]);
	ok(b_to_a[0] >= 0 && ring(b_to_a[0]), "B rings A vector 0");
	ok(a_own[0] >= 0 && readable(a_own[0], T_MS), "A's own vector 0 fires");
	ok(a_own[1] >= 0 && !readable(a_own[1], 0), "A's vector 1 stays quiet");
	drain(a_own[0]);

	close(b);
	expect(a, 1, 0, "A hears B leave (id 1, no fd)");
	ok(quiet(a, QUIET_MS), "A: one message for the leave");

	c = raw_connect(path);
	expect(c, 0, 0, "C msg 1 (version)");
	expect(c, 2, 0, "C gets id 2 (ids are not reused at once)");
	fd = expect(c, -1, 1, "C msg 3 (window)");
	if (fd >= 0)
		close(fd);
	for (int k = 0; k < 2; k++) {
		fd = expect(c, 0, 1, "C hears of peer 0");
		if (fd >= 0)
			close(fd);
	}
	for (int k = 0; k < 2; k++) {
		fd = expect(c, 2, 1, "C own vector");
		if (fd >= 0)
			close(fd);
	}
	for (int k = 0; k < 2; k++) {
		fd = expect(a, 2, 1, "A hears C join");
		if (fd >= 0)
			close(fd);
	}
	/* A client that writes anything is treated as gone (like the example server). */
	ok(write(c, "x", 1) == 1, "C writes a byte");
	expect(a, 2, 0, "A hears C leave");
	ok(raw_recv(c, &v, &fd, T_MS) == -1, "the hub closed C's connection (EOF or reset)");
	close(c);

	close(a);
	for (int k = 0; k < 2; k++) {
		close(a_own[k]);
		close(b_own[k]);
		close(a_to_b[k]);
		close(b_to_a[k]);
	}
	hub_stop(&ht);
	ok(access(path, F_OK) < 0 && errno == ENOENT, "destroy unlinks the socket");
}

/* ------------------------------------------------------------------------ */
/* 2. The client API against the hub                                         */

static void test_client(void)
{
	char path[128], err[256];
	struct hub_thr ht;
	struct vshm_hub_client c1, c2, c3;
	struct vshm_hub_event ev;
	const int *fds;
	unsigned n;
	int rc;

	diag("client API, N = 3");
	sock_path(path, sizeof(path), "client.sock");
	if (hub_start(&ht, path, 3, 8, 1 << 20)) {
		ok(0, "start a hub");
		return;
	}
	rc = vshm_hub_connect(&c1, path, T_MS, err, sizeof(err));
	is(rc, 0, "client 1 connects");
	if (rc) {
		diag("%s", err);
		hub_stop(&ht);
		return;
	}
	is(c1.id, 0, "client 1 is peer 0");
	is(c1.vectors, 3, "client 1 has 3 own vectors");
	ok(c1.shm_fd >= 0 && c1.own[0] >= 0 && c1.own[2] >= 0, "client 1 holds the window and its eventfds");
	ev = next_event(&c1, 50);
	is(ev.type, VSHM_HUB_EV_NONE, "client 1: no peers yet");

	rc = vshm_hub_connect(&c2, path, T_MS, err, sizeof(err));
	is(rc, 0, "client 2 connects");
	if (rc) {
		vshm_hub_client_close(&c1);
		hub_stop(&ht);
		return;
	}
	is(c2.id, 1, "client 2 is peer 1");
	ev = next_event(&c2, T_MS);
	ok(ev.type == VSHM_HUB_EV_JOIN && ev.id == 0, "client 2 learns peer 0 (pending JOIN)");
	ev = next_event(&c1, T_MS);
	ok(ev.type == VSHM_HUB_EV_JOIN && ev.id == 1, "client 1 hears peer 1 join");
	fds = vshm_hub_peer_fds(&c1, 1, &n);
	ok(fds && n == 3, "client 1 has 3 eventfds for peer 1");
	ok(vshm_hub_peer_fds(&c1, 7, &n) == NULL && n == 0, "unknown peer: no fds");
	if (fds) {
		ok(ring(fds[2]), "client 1 rings peer 1 vector 2");
		ok(readable(c2.own[2], T_MS), "client 2 vector 2 fires");
		ok(!readable(c2.own[0], 0) && !readable(c2.own[1], 0), "other vectors quiet");
		drain(c2.own[2]);
	}
	fds = vshm_hub_peer_fds(&c2, 0, &n);
	if (fds && n == 3) {
		ok(ring(fds[0]), "client 2 rings peer 0 vector 0");
		ok(readable(c1.own[0], T_MS), "client 1 vector 0 fires");
		drain(c1.own[0]);
	} else {
		ok(0, "client 2 has peer 0's eventfds");
	}

	vshm_hub_client_close(&c2);
	ev = next_event(&c1, T_MS);
	ok(ev.type == VSHM_HUB_EV_LEAVE && ev.id == 1, "client 1 hears peer 1 leave");
	ok(vshm_hub_peer_fds(&c1, 1, &n) == NULL, "its eventfds are gone");

	rc = vshm_hub_connect(&c3, path, T_MS, err, sizeof(err));
	is(rc, 0, "client 3 connects");
	is(c3.id, 2, "client 3 is peer 2");
	ev = next_event(&c1, T_MS);
	ok(ev.type == VSHM_HUB_EV_JOIN && ev.id == 2, "client 1 hears peer 2 join");
	ev = next_event(&c3, T_MS);
	ok(ev.type == VSHM_HUB_EV_JOIN && ev.id == 0, "client 3 learns peer 0");
	ev = next_event(&c3, 50);
	is(ev.type, VSHM_HUB_EV_NONE, "client 3: nobody else");

	/* The hub going away. */
	hub_halt(&ht);
	vshm_hub_destroy(ht.h);
	close(ht.stop);
	rc = vshm_hub_client_process(&c1, &ev);
	is(rc, -EPIPE, "client 1 sees the hub go away (-EPIPE)");
	vshm_hub_client_close(&c1);
	vshm_hub_client_close(&c3);
	vshm_hub_client_close(&c3);
	ok(1, "double close is harmless");

	rc = vshm_hub_connect(&c1, path, 200, err, sizeof(err));
	ok(rc == -ENOENT && strstr(err, "no hub at"), "connect without a hub: -ENOENT (%s)", err);
}

/* ------------------------------------------------------------------------ */
/* 3. A departing peer's role is released                                    */

static uint32_t load32(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static int wait_owner(const struct vshm_role *r, uint32_t want)
{
	for (int i = 0; i < T_MS; i++) {
		if (load32(&r->owner) == want)
			return 1;
		usleep(1000);
	}
	return 0;
}

static void test_roles(void)
{
	char path[128], err[256];
	struct hub_thr ht;
	struct vshm_hub_client drv, dev;
	struct vshm_window w;
	struct vshm_win_hdr *hdr;
	struct vshm_hub_stats st;
	uint32_t expect0 = 0;
	int rc;

	diag("role release");
	sock_path(path, sizeof(path), "roles.sock");
	if (hub_start(&ht, path, 1, 4, 1 << 20)) {
		ok(0, "start a hub");
		return;
	}
	rc = vshm_hub_connect(&dev, path, T_MS, err, sizeof(err));
	rc |= vshm_hub_connect(&drv, path, T_MS, err, sizeof(err));
	is(rc, 0, "device and driver connect");
	if (rc) {
		hub_stop(&ht);
		return;
	}
	is(vshm_window_map(&w, drv.shm_fd), 0, "driver maps the window");
	hdr = vshm_window_hdr(&w);

	ok(__atomic_compare_exchange_n(&hdr->driver.owner, &expect0, (uint32_t)drv.id + 1, 0,
				       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE), "driver claims its role");
	__atomic_store_n(&hdr->driver.status, VSHM_ROLE_READY, __ATOMIC_RELEASE);
	expect0 = 0;
	ok(__atomic_compare_exchange_n(&hdr->device.owner, &expect0, (uint32_t)dev.id + 1, 0,
				       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE), "device claims its role");
	__atomic_store_n(&hdr->device.status, VSHM_ROLE_READY, __ATOMIC_RELEASE);

	vshm_hub_client_close(&drv);
	ok(wait_owner(&hdr->driver, 0), "the hub frees the driver role when the driver leaves");
	is(load32(&hdr->driver.status), 0, "and clears its status");
	is(load32(&hdr->device.owner), (uint32_t)dev.id + 1, "the device role stays with the device");
	is(load32(&hdr->device.status), VSHM_ROLE_READY, "and its status stays");

	vshm_hub_client_close(&dev);
	ok(wait_owner(&hdr->device, 0), "the device role is freed when the device leaves");
	vshm_window_unmap(&w);

	hub_halt(&ht);
	vshm_hub_get_stats(ht.h, &st);
	is(st.roles_released, 2, "stats: 2 roles released");
	is(st.accepted, 2, "stats: 2 accepted");
	is(st.left, 2, "stats: 2 left");
	is(st.peers, 0, "stats: nobody connected");
	hub_stop(&ht);
}

/* ------------------------------------------------------------------------ */
/* 4. Limits: max peers, slow readers                                        */

static void test_max_peers(void)
{
	char path[128], err[256];
	struct hub_thr ht;
	struct vshm_hub_client c[3];
	struct vshm_hub_stats st;
	int rc;

	diag("max peers");
	sock_path(path, sizeof(path), "full.sock");
	log_clear();
	if (hub_start(&ht, path, 2, 2, 1 << 20)) {
		ok(0, "start a hub");
		return;
	}
	is(vshm_hub_connect(&c[0], path, T_MS, err, sizeof(err)), 0, "peer 1 of 2 connects");
	is(vshm_hub_connect(&c[1], path, T_MS, err, sizeof(err)), 0, "peer 2 of 2 connects");
	rc = vshm_hub_connect(&c[2], path, T_MS, err, sizeof(err));
	ok(rc == -ECONNRESET && strstr(err, "closed the connection (full?)"),
	   "a third is closed at once: %d (%s)", rc, err);
	ok(log_has("refusing a client: 2 peers connected"), "the hub logs the refusal");
	vshm_hub_client_close(&c[1]);
	/* Wait until the hub noticed, then the slot is free again. */
	{
		struct vshm_hub_event ev = next_event(&c[0], T_MS);

		ok(ev.type == VSHM_HUB_EV_JOIN, "peer 1 got the join");
		ev = next_event(&c[0], T_MS);
		ok(ev.type == VSHM_HUB_EV_LEAVE, "peer 1 got the leave");
	}
	is(vshm_hub_connect(&c[2], path, T_MS, err, sizeof(err)), 0, "after a leave there is room again");
	vshm_hub_client_close(&c[0]);
	vshm_hub_client_close(&c[2]);
	hub_halt(&ht);
	vshm_hub_get_stats(ht.h, &st);
	is(st.refused, 1, "stats: 1 refused");
	hub_stop(&ht);
}

/*
 * A client that does not read must not slow the hub down: the others keep
 * joining.  Later it reads and finds everything, in order.  One that never
 * reads while peers come and go is dropped once its queue is full.
 */
static void test_slow_reader(void)
{
	enum { N = 64, NPEERS = 6 };
	char path[128], err[256];
	struct hub_thr ht;
	struct vshm_hub_client c[NPEERS];
	struct vshm_hub_stats st;
	int64_t v;
	int slow, fd, rc, good = 1, got = 0, cycles = 0;

	diag("slow reader, N = 64");
	sock_path(path, sizeof(path), "slow.sock");
	if (hub_start(&ht, path, N, NPEERS + 2, 1 << 20)) {
		ok(0, "start a hub");
		return;
	}
	slow = raw_connect(path);
	ok(slow >= 0, "a client connects and does not read");
	for (int i = 0; i < NPEERS; i++) {
		rc = vshm_hub_connect(&c[i], path, T_MS, err, sizeof(err));
		if (rc) {
			diag("peer %d: %s", i, err);
			good = 0;
		}
	}
	ok(good, "%d more peers with 64 vectors join meanwhile", NPEERS);

	/* Now read the backlog: 3 + N own, then N per later peer. */
	for (int i = 0; i < 3 + N + NPEERS * N; i++) {
		int64_t want;
		int want_fd;

		if (i == 0) { want = 0; want_fd = 0; }
		else if (i == 1) { want = 0; want_fd = 0; }
		else if (i == 2) { want = -1; want_fd = 1; }
		else if (i < 3 + N) { want = 0; want_fd = 1; }
		else { want = 1 + (i - 3 - N) / N; want_fd = 1; }
		rc = raw_recv(slow, &v, &fd, T_MS);
		if (rc != 1 || v != want || (fd >= 0) != want_fd) {
			diag("message %d: rc %d value %lld fd %d, want %lld", i, rc,
			     (long long)v, fd, (long long)want);
			good = 0;
			if (fd >= 0)
				close(fd);
			break;
		}
		if (fd >= 0)
			close(fd);
		got++;
	}
	is(got, 3 + N + NPEERS * N, "the slow client finds every message, in order");
	for (int i = 0; i < NPEERS; i++)
		vshm_hub_client_close(&c[i]);
	{
		/* Leaves noticed in one batch may come in any order. */
		unsigned seen = 0;

		for (int i = 0; i < NPEERS; i++) {
			rc = raw_recv(slow, &v, &fd, T_MS);
			if (fd >= 0)
				close(fd);
			if (rc != 1 || v < 1 || v > NPEERS || fd >= 0)
				good = 0;
			else
				seen |= 1u << v;
		}
		ok(good && seen == ((1u << (NPEERS + 1)) - 2), "and the leaves");
	}

	/* Never read again; peers churn until the hub gives up on it. */
	for (cycles = 0; cycles < 200; cycles++) {
		struct vshm_hub_client t;
		struct pollfd pfd = { .fd = slow, .events = POLLRDHUP };

		if (vshm_hub_connect(&t, path, T_MS, err, sizeof(err)))
			break;
		vshm_hub_client_close(&t);
		if (poll(&pfd, 1, 0) == 1)
			break;
	}
	{
		/* Drain until EOF: the hub closed it. */
		int eof = 0;

		for (int i = 0; i < 100000; i++) {
			rc = raw_recv(slow, &v, &fd, T_MS);
			if (fd >= 0)
				close(fd);
			if (rc != 1) {
				eof = rc == -1;
				break;
			}
		}
		ok(eof, "a client that never reads is dropped (after %d join/leave cycles)", cycles);
	}
	close(slow);
	hub_halt(&ht);
	vshm_hub_get_stats(ht.h, &st);
	is(st.dropped, 1, "stats: 1 dropped");
	ok(st.stalls > 0, "its socket was full %llu times: the hub queued instead of blocking",
	   (unsigned long long)st.stalls);
	ok(log_has("not reading"), "the hub logs why");
	hub_stop(&ht);
}

/* ------------------------------------------------------------------------ */
/* 5. Socket paths                                                           */

static void test_paths(void)
{
	char path[128], other[128], err[256];
	struct vshm_hub_opts o = { .size = 1 << 20 };
	struct hub_thr ht;
	struct vshm_hub *h2;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int s, rc;

	diag("socket paths");
	sock_path(path, sizeof(path), "paths.sock");
	if (hub_start(&ht, path, 1, 4, 1 << 20)) {
		ok(0, "start a hub");
		return;
	}
	ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "socket mode is 0600 by default");
	o.socket_path = path;
	rc = vshm_hub_create(&h2, &o, err, sizeof(err));
	ok(rc == -EADDRINUSE && strstr(err, "is in use by a running hub; stop it or pick another --socket"),
	   "a second hub on the same path is refused: %s", err);
	ok(h2 == NULL, "and gets no hub");
	hub_stop(&ht);

	/* A stale socket file: bound, never listened, closed. */
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	set_sun(&sa, path);
	ok(s >= 0 && bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0, "leave a stale socket file");
	close(s);
	log_clear();
	o.log = test_log;
	o.mode = 0660;
	rc = vshm_hub_create(&h2, &o, err, sizeof(err));
	is(rc, 0, "a stale socket is replaced");
	ok(log_has("removed stale socket"), "and the hub says so");
	ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0660, "--mode 0660 applied");
	ok(st.st_gid == getegid(), "a zeroed opts leaves the group alone");
	if (!rc)
		vshm_hub_destroy(h2);
	o.mode = 0;
	if (geteuid() == 0) {
		o.set_group = 1;
		o.gid = 12345;
		rc = vshm_hub_create(&h2, &o, err, sizeof(err));
		ok(rc == 0 && stat(path, &st) == 0 && st.st_gid == 12345, "--group 12345 applied");
		if (!rc)
			vshm_hub_destroy(h2);
		o.set_group = 0;
	} else {
		ok(1, "# SKIP --group needs root to pick an arbitrary group");
	}

	/* A file that is not a socket is never removed. */
	sock_path(other, sizeof(other), "plain-file");
	s = open(other, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	close(s);
	o.socket_path = other;
	rc = vshm_hub_create(&h2, &o, err, sizeof(err));
	ok(rc == -EEXIST && strstr(err, "is not a socket"), "a regular file is refused: %s", err);
	ok(access(other, F_OK) == 0, "and left alone");
	unlink(other);

	snprintf(other, sizeof(other), "%s/no-such-dir/hub.sock", tmpdir);
	o.socket_path = other;
	rc = vshm_hub_create(&h2, &o, err, sizeof(err));
	ok(rc == -ENOENT && strstr(err, "does not exist; create it or pick another path"),
	   "missing directory: %s", err);

	o.socket_path = "/tmp/this/path/is/much/longer/than/one/hundred/and/seven/bytes/"
			"which/is/the/limit/of/sun_path/for/unix/sockets/hub.sock";
	rc = vshm_hub_create(&h2, &o, err, sizeof(err));
	ok(rc == -ENAMETOOLONG && strstr(err, "too long"), "too long a path: %s", err);

	o.socket_path = path;
	o.size = 3 << 20;
	rc = vshm_hub_create(&h2, &o, err, sizeof(err));
	ok(rc == -EINVAL && strstr(err, "power of two"), "a bad size is refused: %s", err);
	o.size = 1 << 20;
	o.vectors = 65;
	rc = vshm_hub_create(&h2, &o, err, sizeof(err));
	ok(rc == -EINVAL && strstr(err, "vector"), "65 vectors are refused: %s", err);
	o.vectors = 0;
	ok(access(path, F_OK) < 0, "failed creates leave no socket behind");

	if (geteuid() != 0) {
		snprintf(other, sizeof(other), "%s/ro", tmpdir);
		mkdir(other, 0500);
		snprintf(other, sizeof(other), "%s/ro/hub.sock", tmpdir);
		o.socket_path = other;
		rc = vshm_hub_create(&h2, &o, err, sizeof(err));
		ok(rc == -EACCES && strstr(err, "permission denied"), "read-only directory: %s", err);
		snprintf(other, sizeof(other), "%s/ro", tmpdir);
		rmdir(other);
	} else {
		ok(1, "# SKIP permission test needs a non-root user");
	}

	/* Connect timeout: a server that accepts but says nothing. */
	{
		struct vshm_hub_client c;
		int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		sock_path(other, sizeof(other), "mute.sock");
		set_sun(&sa, other);
		ok(l >= 0 && bind(l, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(l, 4) == 0,
		   "a mute server listens");
		rc = vshm_hub_connect(&c, other, 200, err, sizeof(err));
		ok(rc == -ETIMEDOUT && strstr(err, "timed out"), "connect gives up after 200 ms: %s", err);
		close(l);
		rc = vshm_hub_connect(&c, other, 200, err, sizeof(err));
		ok(rc == -ECONNREFUSED && strstr(err, "stale"), "then nobody listens: %s", err);
		unlink(other);
	}
}

/* ------------------------------------------------------------------------ */
/* 6. The state machine on hostile sequences                                 */

struct msg { int64_t v; int fd; };

/* Feed @n messages (fd 1 = a fresh eventfd); return the first error or 0. */
static int feed_all(struct vshm_hub_client *c, const struct msg *m, int n)
{
	struct vshm_hub_event ev;

	for (int i = 0; i < n; i++) {
		int fd = m[i].fd ? eventfd(0, EFD_CLOEXEC) : -1;
		int rc = vshm_hub_client_feed(c, m[i].v, fd, &ev);

		if (rc)
			return rc;
	}
	return 0;
}

static void test_feed(void)
{
	static const struct { const char *what; struct msg m[8]; int n; } bad[] = {
		{ "version 1", { { 1, 0 } }, 1 },
		{ "an fd on the version", { { 0, 1 } }, 1 },
		{ "id 70000", { { 0, 0 }, { 70000, 0 } }, 2 },
		{ "id -1", { { 0, 0 }, { -1, 0 } }, 2 },
		{ "an fd on the id", { { 0, 0 }, { 3, 1 } }, 2 },
		{ "window without an fd", { { 0, 0 }, { 3, 0 }, { -1, 0 } }, 3 },
		{ "a peer before the window", { { 0, 0 }, { 3, 0 }, { 4, 1 } }, 3 },
		{ "a second window", { { 0, 0 }, { 3, 0 }, { -1, 1 }, { -1, 1 } }, 4 },
		{ "value -2", { { 0, 0 }, { 3, 0 }, { -1, 1 }, { -2, 0 } }, 4 },
		{ "peer 65536", { { 0, 0 }, { 3, 0 }, { -1, 1 }, { 65536, 1 } }, 4 },
		{ "our own leave", { { 0, 0 }, { 3, 0 }, { -1, 1 }, { 3, 1 }, { 3, 0 } }, 5 },
		{ "INT64_MIN", { { 0, 0 }, { 3, 0 }, { -1, 1 }, { INT64_MIN, 0 } }, 4 },
	};
	struct vshm_hub_client c;
	struct vshm_hub_event ev;
	int fds0 = count_fds(), rc;

	diag("state machine");
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		vshm_hub_client_init(&c, 0);
		rc = feed_all(&c, bad[i].m, bad[i].n);
		ok(rc == -EPROTO && vshm_hub_client_error(&c), "%s: -EPROTO (%s)", bad[i].what,
		   vshm_hub_client_error(&c) ? vshm_hub_client_error(&c) : "no reason");
		rc = vshm_hub_client_feed(&c, 5, eventfd(0, EFD_CLOEXEC), &ev);
		vshm_hub_client_close(&c);
		ok(rc == -EPROTO && count_fds() == fds0, "%s: sticky, no fd leaked", bad[i].what);
	}

	/* 65 own vectors with N unknown. */
	{
		struct msg head[3] = { { 0, 0 }, { 9, 0 }, { -1, 1 } }, own = { 9, 1 };

		vshm_hub_client_init(&c, 0);
		rc = feed_all(&c, head, 3);
		for (int k = 0; k < 64 && !rc; k++)
			rc = feed_all(&c, &own, 1);
		is(rc, 0, "64 own vectors are fine");
		is(feed_all(&c, &own, 1), -EPROTO, "the 65th is a protocol error");
		vshm_hub_client_close(&c);
		is(count_fds(), fds0, "no fd leaked");

		/* 65 for another peer. */
		vshm_hub_client_init(&c, 0);
		rc = feed_all(&c, head, 3);
		own.v = 4;
		for (int k = 0; k < 64 && !rc; k++)
			rc = feed_all(&c, &own, 1);
		is(rc, 0, "64 vectors of a peer are fine");
		is(feed_all(&c, &own, 1), -EPROTO, "the 65th is a protocol error");
		vshm_hub_client_close(&c);
		is(count_fds(), fds0, "no fd leaked");
	}

	/* A good sequence with N = 2 known, and a peer exceeding it. */
	{
		struct msg m[] = {
			{ 0, 0 }, { 5, 0 }, { -1, 1 }, { 3, 1 }, { 3, 1 }, { 5, 1 }, { 5, 1 },
		};
		struct msg seven = { 7, 1 }, leave7 = { 7, 0 }, leave9 = { 9, 0 };

		vshm_hub_client_init(&c, 2);
		is(feed_all(&c, m, 7), 0, "version, id, window, peer 3 x2, own x2");
		ok(c.ready && c.vectors == 2 && c.id == 5, "ready with N = 2, id 5");
		is(vshm_hub_client_process(&c, &ev), 1, "a pending event");
		ok(ev.type == VSHM_HUB_EV_JOIN && ev.id == 3, "JOIN 3 (announced before us)");
		is(vshm_hub_client_process(&c, &ev), 0, "nothing more");
		is(vshm_hub_client_feed(&c, 7, eventfd(0, EFD_CLOEXEC), &ev), 0, "peer 7 vector 0");
		is(ev.type, VSHM_HUB_EV_NONE, "no event yet");
		vshm_hub_client_feed(&c, 7, eventfd(0, EFD_CLOEXEC), &ev);
		ok(ev.type == VSHM_HUB_EV_JOIN && ev.id == 7, "JOIN 7 with its second vector");
		is(feed_all(&c, &leave9, 1), 0, "a leave of an unknown peer is ignored");
		vshm_hub_client_feed(&c, 7, -1, &ev);
		ok(ev.type == VSHM_HUB_EV_LEAVE && ev.id == 7, "LEAVE 7");
		is(feed_all(&c, &seven, 1), 0, "peer 7 again (ids come back)");
		is(feed_all(&c, &seven, 1), 0, "peer 7 vector 1");
		is(feed_all(&c, &seven, 1), -EPROTO, "a third vector for N = 2 is an error");
		vshm_hub_client_close(&c);
		is(count_fds(), fds0, "no fd leaked");
		(void)leave7;
	}
}

/* The socket layer: split messages, several fds on one message. */
static void test_stream(void)
{
	struct vshm_hub_client c;
	struct vshm_hub_event ev;
	int sp[2], fds0 = count_fds(), rc;
	unsigned char b[8];

	diag("socket layer");
	ok(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0, "socketpair");
	vshm_hub_client_init(&c, 1);
	c.sock = sp[0];
	fcntl(sp[0], F_SETFL, O_NONBLOCK);

	/* version 0 in two pieces */
	memset(b, 0, sizeof(b));
	ok(write(sp[1], b, 3) == 3, "3 bytes of the version");
	is(vshm_hub_client_process(&c, &ev), 0, "a partial message waits");
	is(c.state, 0, "still waiting for the version");
	ok(write(sp[1], b + 3, 5) == 5, "the other 5");
	is(vshm_hub_client_process(&c, &ev), 0, "consumed");
	is(c.state, 1, "version accepted");

	/* id 0x0102 little-endian */
	b[0] = 2; b[1] = 1;
	ok(write(sp[1], b, 8) == 8, "id 258");
	vshm_hub_client_process(&c, &ev);
	is(c.id, 258, "id decoded little-endian");

	/* the window: its fd on the first 2 bytes, then 6 more */
	{
		union { struct cmsghdr a; char buf[CMSG_SPACE(2 * sizeof(int))]; } cb;
		struct iovec iov;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		struct cmsghdr *cm;
		int efd = eventfd(0, EFD_CLOEXEC), two[2];

		memset(b, 0xff, sizeof(b));
		iov.iov_base = b;
		iov.iov_len = 2;
		memset(&cb, 0, sizeof(cb));
		mh.msg_control = cb.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &efd, sizeof(int));
		ok(sendmsg(sp[1], &mh, 0) == 2, "2 bytes of -1 with an fd");
		is(vshm_hub_client_process(&c, &ev), 0, "waits for the rest");
		ok(write(sp[1], b + 2, 6) == 6, "the other 6");
		is(vshm_hub_client_process(&c, &ev), 0, "consumed");
		ok(c.shm_fd >= 0 && c.state == 3, "the window fd arrived with the split message");
		close(efd);

		/* own vector: ready (N = 1) */
		b[0] = 2; b[1] = 1; memset(b + 2, 0, 6);
		efd = eventfd(0, EFD_CLOEXEC);
		iov.iov_len = 8;
		memcpy(CMSG_DATA(cm), &efd, sizeof(int));
		ok(sendmsg(sp[1], &mh, 0) == 8, "own vector");
		vshm_hub_client_process(&c, &ev);
		ok(c.ready && c.vectors == 1, "ready");
		close(efd);

		/* two fds on one message */
		two[0] = eventfd(0, EFD_CLOEXEC);
		two[1] = eventfd(0, EFD_CLOEXEC);
		b[0] = 4; b[1] = 0;
		mh.msg_controllen = CMSG_SPACE(2 * sizeof(int));
		cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
		memcpy(CMSG_DATA(cm), two, sizeof(two));
		ok(sendmsg(sp[1], &mh, 0) == 8, "a message with two fds");
		close(two[0]);
		close(two[1]);
		rc = vshm_hub_client_process(&c, &ev);
		ok(rc == -EPROTO && strstr(vshm_hub_client_error(&c), "more than one fd"),
		   "two fds on one message: -EPROTO (%s)", vshm_hub_client_error(&c));
	}
	vshm_hub_client_close(&c);
	close(sp[1]);
	is(count_fds(), fds0, "no fd leaked");

	/* EOF is -EPIPE */
	ok(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0, "socketpair");
	vshm_hub_client_init(&c, 1);
	c.sock = sp[0];
	close(sp[1]);
	is(vshm_hub_client_process(&c, &ev), -EPIPE, "EOF: -EPIPE");
	vshm_hub_client_close(&c);
	is(count_fds(), fds0, "no fd leaked");
}

/* ------------------------------------------------------------------------ */
/* 7. `vshm hub`                                                             */

/* Run the command with stdout and stderr captured into @out. */
static int run_cmd(char *out, size_t outlen, char **argv)
{
	int argc = 0, cap, save1, save2, rc;
	ssize_t n;

	while (argv[argc])
		argc++;
	fflush(stdout);
	fflush(stderr);
	cap = memfd_create("capture", MFD_CLOEXEC);
	save1 = dup(1);
	save2 = dup(2);
	dup2(cap, 1);
	dup2(cap, 2);
	rc = vshm_cmd_hub(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(save1, 1);
	dup2(save2, 2);
	close(save1);
	close(save2);
	n = pread(cap, out, outlen - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(cap);
	return rc;
}

static int one_line(const char *s)
{
	const char *nl = strchr(s, '\n');

	return nl && nl[1] == '\0';
}

struct cmd_thr {
	char **argv;
	int rc;
};

static void *cmd_main(void *arg)
{
	struct cmd_thr *ct = arg;
	int argc = 0;

	while (ct->argv[argc])
		argc++;
	ct->rc = vshm_cmd_hub(argc, ct->argv);
	return NULL;
}

static void test_cmd(void)
{
	char out[4096], path[128], dirpath[160];
	char *bad_size[] = { "hub", "--size", "xyz", NULL };
	char *bad_size2[] = { "hub", "--size", "3M", NULL };
	char *bad_vec[] = { "hub", "--vectors", "65", NULL };
	char *bad_opt[] = { "hub", "--frobnicate", NULL };
	char *extra[] = { "hub", "extra", NULL };
	char *bad_group[] = { "hub", "--group", "no-such-group-here", NULL };
	char *bad_mode[] = { "hub", "--mode", "0999", NULL };
	char *help[] = { "hub", "--help", NULL };
	char *version[] = { "hub", "--version", NULL };
	char *nodir[] = { "hub", "--socket", dirpath, NULL };
	char *run[] = { "hub", "--socket", path, "--size", "1M", "--vectors", "2", NULL };
	struct cmd_thr ct = { .argv = run };
	struct vshm_hub_client c;
	struct vshm_hub_event ev;
	char err[256];
	pthread_t t;
	int rc, up = 0;

	diag("vshm hub");
	is(run_cmd(out, sizeof(out), bad_size), 2, "bad --size: exit 2");
	ok(!strcmp(out, "vshm hub: bad --size 'xyz': expected a power of two between 64K and 64G, e.g. 64M\n"),
	   "with the clear one-line message");
	is(run_cmd(out, sizeof(out), bad_size2), 2, "--size 3M: exit 2");
	ok(strstr(out, "bad --size '3M'") != NULL, "same message");
	is(run_cmd(out, sizeof(out), bad_vec), 2, "--vectors 65: exit 2");
	ok(!strncmp(out, "vshm hub: bad --vectors '65'", 28), "%.60s", out);
	is(run_cmd(out, sizeof(out), bad_opt), 2, "unknown option: exit 2");
	ok(!strncmp(out, "vshm hub: unknown option '--frobnicate'", 39), "%.60s", out);
	is(run_cmd(out, sizeof(out), extra), 2, "stray argument: exit 2");
	is(run_cmd(out, sizeof(out), bad_group), 2, "unknown --group: exit 2");
	ok(!strcmp(out, "vshm hub: bad --group 'no-such-group-here': no such group\n"), "%.80s", out);
	is(run_cmd(out, sizeof(out), bad_mode), 2, "--mode 0999: exit 2");
	is(run_cmd(out, sizeof(out), help), 0, "--help: exit 0");
	ok(strstr(out, "--max-peers") && strstr(out, "ivshmem-doorbell"), "help lists options and the QEMU line");
	is(run_cmd(out, sizeof(out), version), 0, "--version: exit 0");
	ok(!strncmp(out, "vshm hub ", 9), "version line");
	snprintf(dirpath, sizeof(dirpath), "%s/missing/hub.sock", tmpdir);
	is(run_cmd(out, sizeof(out), nodir), 1, "missing directory: exit 1");
	ok(strstr(out, "does not exist; create it or pick another path") && one_line(out),
	   "one line: %.100s", out);

	/* A real run, stopped by SIGTERM. */
	sock_path(path, sizeof(path), "cmd.sock");
	ok(pthread_create(&t, NULL, cmd_main, &ct) == 0, "vshm hub runs");
	for (int i = 0; i < T_MS / 10 && !up; i++) {
		if (access(path, F_OK) == 0 && !vshm_hub_connect(&c, path, T_MS, err, sizeof(err)))
			up = 1;
		else
			usleep(10000);
	}
	ok(up, "a client connects to it");
	if (up) {
		ok(c.vectors == 2, "with the 2 vectors asked for");
		{
			char *again[] = { "hub", "--socket", path, NULL };

			is(run_cmd(out, sizeof(out), again), 1, "a second vshm hub on the socket: exit 1");
			ok(!strcmp(out + strlen("vshm hub: socket ") + strlen(path),
				   " is in use by a running hub; stop it or pick another --socket\n"),
			   "%s", out);
		}
	}
	pthread_kill(t, SIGTERM);
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 5;
		rc = pthread_timedjoin_np(t, NULL, &ts);
		is(rc, 0, "SIGTERM ends it");
		if (rc)
			return;	/* cannot clean up a running thread; the fd check will fail */
	}
	is(ct.rc, 0, "exit 0");
	ok(access(path, F_OK) < 0, "the socket is gone");
	if (up) {
		/* First the join and leave of the second hub's probe, then EOF. */
		for (int i = 0; i < 10; i++) {
			rc = vshm_hub_client_process(&c, &ev);
			if (rc < 0)
				break;
			if (rc == 0)
				readable(vshm_hub_client_fd(&c), T_MS);
		}
		is(rc, -EPIPE, "the client sees the hub leave");
		vshm_hub_client_close(&c);
	}
}

/* ------------------------------------------------------------------------ */
/* 8. A real QEMU ivshmem-doorbell as a peer (skipped without QEMU)          */

extern char **environ;

static int find_in_path(const char *name, char *out, size_t len)
{
	const char *env = getenv("VSHM_QEMU");
	char *path, *save = NULL, *dir;
	int found = 0;

	if (env && *env) {
		snprintf(out, len, "%s", env);
		return access(out, X_OK) == 0;
	}
	path = strdup(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
	for (dir = strtok_r(path, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
		snprintf(out, len, "%s/%s", dir, name);
		found = access(out, X_OK) == 0;
	}
	free(path);
	return found;
}

/* Wait for @pid to exit within @ms; SIGKILL it after that.  Its status or -1. */
static int reap_child(pid_t pid, int ms)
{
	int st;

	for (int i = 0; i < ms / 10; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

static void test_qemu(void)
{
	char qemu[256], path[128], logpath[160], chardev[200], out[4096] = "";
	char *argv[] = {
		qemu, "-M", "q35", "-accel", "tcg", "-display", "none", "-S", "-nodefaults",
		"-chardev", chardev, "-device", "ivshmem-doorbell,chardev=ivsh0,vectors=2", NULL,
	};
	posix_spawn_file_actions_t fa;
	struct vshm_hub_client a, b;
	struct vshm_hub_event ev;
	struct hub_thr ht;
	char err[256];
	int64_t qid = -1;
	const int *fds;
	unsigned n;
	pid_t pid;
	int st, fd;

	diag("QEMU ivshmem-doorbell");
	if (!find_in_path("qemu-system-x86_64", qemu, sizeof(qemu))) {
		ok(1, "# SKIP qemu-system-x86_64 not installed");
		return;
	}
	sock_path(path, sizeof(path), "qemu.sock");
	sock_path(logpath, sizeof(logpath), "qemu.log");
	snprintf(chardev, sizeof(chardev), "socket,path=%s,id=ivsh0", path);
	if (hub_start(&ht, path, 2, 4, 1 << 20)) {
		ok(0, "start a hub");
		return;
	}
	if (vshm_hub_connect(&a, path, T_MS, err, sizeof(err))) {
		ok(0, "peer A connects: %s", err);
		hub_stop(&ht);
		return;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	st = posix_spawn(&pid, qemu, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (!ok(st == 0, "start %s with an ivshmem-doorbell on the hub", qemu)) {
		vshm_hub_client_close(&a);
		hub_stop(&ht);
		return;
	}

	/* QEMU reads version, id and window during realize, its vectors later. */
	ev = next_event(&a, 30000);
	ok(ev.type == VSHM_HUB_EV_JOIN && ev.id == 1, "QEMU joins as peer 1 (event %d, id %lld)",
	   ev.type, (long long)ev.id);
	qid = ev.id;
	fds = vshm_hub_peer_fds(&a, qid, &n);
	ok(fds && n == 2, "with 2 eventfds");
	if (fds && n == 2)
		ok(ring(fds[0]) && ring(fds[1]), "we can ring QEMU's vectors");

	/* A peer that arrives after QEMU learns of it from the hub. */
	if (!vshm_hub_connect(&b, path, T_MS, err, sizeof(err))) {
		unsigned seen = 0;

		for (int i = 0; i < 2; i++) {
			ev = next_event(&b, T_MS);
			if (ev.type == VSHM_HUB_EV_JOIN && (ev.id == 0 || ev.id == qid))
				seen |= 1u << (ev.id ? 1 : 0);
		}
		ok(seen == 3, "a later peer hears of peer 0 and of QEMU");
		vshm_hub_client_close(&b);
	} else {
		ok(0, "peer B connects: %s", err);
	}
	ev = next_event(&a, T_MS);
	ok(ev.type == VSHM_HUB_EV_JOIN && ev.id == 2, "peer A hears peer 2 join");
	ev = next_event(&a, T_MS);
	ok(ev.type == VSHM_HUB_EV_LEAVE && ev.id == 2, "and leave");
	usleep(200000);	/* let QEMU process that join and leave too */
	ok(waitpid(pid, &st, WNOHANG) == 0, "QEMU took all of it and is still running");

	kill(pid, SIGTERM);
	st = reap_child(pid, 10000);
	ok(st != -1, "QEMU exits on SIGTERM");
	ev = next_event(&a, T_MS);
	ok(ev.type == VSHM_HUB_EV_LEAVE && ev.id == qid, "peer A hears QEMU leave");

	fd = open(logpath, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t r = read(fd, out, sizeof(out) - 1);

		out[r > 0 ? r : 0] = '\0';
		close(fd);
	}
	ok(!strstr(out, "ivshmem") && !strstr(out, "rror"), "QEMU reported no error%s%.300s",
	   out[0] ? ": " : "", out);
	unlink(logpath);
	vshm_hub_client_close(&a);
	hub_stop(&ht);
}

int main(void)
{
	int fds0;

	signal(SIGPIPE, SIG_IGN);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/vshm-test-hub.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		printf("not ok 1 - mkdtemp\n");
		return 1;
	}
	fds0 = count_fds();

	test_wire();
	test_client();
	test_roles();
	test_max_peers();
	test_slow_reader();
	test_paths();
	test_feed();
	test_stream();
	test_cmd();
	test_qemu();

	is(count_fds(), fds0, "no fd leaked over the whole run");
	if (rmdir(tmpdir))
		diag("%s not empty", tmpdir);
	return tap_done();
}
