// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the hub client: everything a hub can send.
 *
 * The first byte picks a mode:
 *   bit 0 = 0  the state machine: records of (op, value bytes) are fed to
 *              vshm_hub_client_feed, each with a fresh eventfd when op
 *              says so; N (expect_vectors) = (byte0 >> 1) % 65;
 *   bit 0 = 1  the socket layer: records of (op, payload) are written into
 *              a socketpair as chunks of 1..16 bytes with 0, 1 or 2 fds
 *              attached, and vshm_hub_client_process reads them back
 *              (split messages, several fds on one message, EOF).
 *
 * Whatever the input: no crash, only the documented return codes, every
 * JOIN names a peer with exactly N eventfds, a LEAVE names one that is
 * gone, errors are sticky, and after vshm_hub_client_close the number of
 * open fds is what it was before the run (counted in /proc/self/fd).
 * Any violation traps.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vshm/hub.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT 4096

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		__builtin_trap();
	while ((e = readdir(d)))
		n++;
	closedir(d);
	return n;
}

/* An event must agree with the client's tables. */
static void check_event(const struct vshm_hub_client *c, const struct vshm_hub_event *ev)
{
	const int *fds;
	unsigned n;

	switch (ev->type) {
	case VSHM_HUB_EV_NONE:
		return;
	case VSHM_HUB_EV_JOIN:
		fds = vshm_hub_peer_fds(c, ev->id, &n);
		if (!c->ready || !fds || n != c->vectors || ev->id == c->id ||
		    ev->id < 0 || ev->id > VSHM_HUB_MAX_ID)
			__builtin_trap();
		for (unsigned k = 0; k < n; k++)
			if (fds[k] < 0)
				__builtin_trap();
		return;
	case VSHM_HUB_EV_LEAVE:
		if (vshm_hub_peer_fds(c, ev->id, &n) || ev->id == c->id)
			__builtin_trap();
		return;
	default:
		__builtin_trap();
	}
}

static void check_invariants(const struct vshm_hub_client *c)
{
	if (c->vectors > VSHM_HUB_MAX_VECTORS || c->npeers > VSHM_HUB_MAX_PEERS)
		__builtin_trap();
	if (c->ready && c->vectors == 0)
		__builtin_trap();
	for (unsigned i = 0; i < c->npeers; i++) {
		if (c->peers[i].nfds > VSHM_HUB_MAX_VECTORS ||
		    (c->ready && c->peers[i].nfds > c->vectors))
			__builtin_trap();
		if (i && c->peers[i - 1].id >= c->peers[i].id)
			__builtin_trap();
	}
}

/* Drain what process() has to say; returns its last code. */
static int pump(struct vshm_hub_client *c)
{
	struct vshm_hub_event ev;
	int rc;

	for (int i = 0; i < 100000; i++) {
		rc = vshm_hub_client_process(c, &ev);
		if (rc == 1) {
			check_event(c, &ev);
			continue;
		}
		if (rc != 0 && rc != -EPIPE && rc != -EPROTO && rc != -ENOMEM)
			__builtin_trap();
		if (rc == 0 && ev.type != VSHM_HUB_EV_NONE)
			__builtin_trap();
		return rc;
	}
	__builtin_trap();	/* process() must not report events forever */
}

static void run_feed(const uint8_t *d, size_t n, unsigned expect)
{
	struct vshm_hub_client c;
	struct vshm_hub_event ev;
	size_t i = 0;
	int broken = 0;

	vshm_hub_client_init(&c, expect);
	while (i < n) {
		uint8_t op = d[i++];
		int64_t value;
		int fd = -1, rc;

		switch ((op >> 1) & 3) {
		case 0:		/* a small peer id, so ids collide */
			if (i >= n)
				goto out;
			value = d[i++] % 8;
			break;
		case 1: {	/* any 64-bit value */
			uint64_t u = 0;

			if (n - i < 8)
				goto out;
			for (int k = 0; k < 8; k++)
				u |= (uint64_t)d[i + k] << (8 * k);
			i += 8;
			value = (int64_t)u;
			break;
		}
		case 2:		/* our own id */
			value = c.id >= 0 ? c.id : 0;
			break;
		default:	/* -128..127: -1, -2, 0 ... */
			if (i >= n)
				goto out;
			value = (int8_t)d[i++];
			break;
		}
		if (op & 1) {
			fd = eventfd(0, EFD_CLOEXEC);
			if (fd < 0)
				__builtin_trap();
		}
		rc = vshm_hub_client_feed(&c, value, fd, &ev);
		if (rc != 0 && rc != -EPROTO && rc != -ENOMEM)
			__builtin_trap();
		if (broken && rc != -EPROTO)
			__builtin_trap();	/* broken is sticky */
		if (rc == -EPROTO) {
			broken = 1;
			if (!vshm_hub_client_error(&c) || ev.type != VSHM_HUB_EV_NONE)
				__builtin_trap();
		}
		if (rc == 0)
			check_event(&c, &ev);
		check_invariants(&c);
		if (op & 0x80)
			pump(&c);
	}
out:
	pump(&c);
	check_invariants(&c);
	vshm_hub_client_close(&c);
}

static int send_chunk(int s, const uint8_t *buf, size_t len, unsigned nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} cb;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int fds[2] = { -1, -1 };
	ssize_t rc;

	if (nfds) {
		struct cmsghdr *cm;

		for (unsigned k = 0; k < nfds; k++) {
			fds[k] = eventfd(0, EFD_CLOEXEC);
			if (fds[k] < 0)
				__builtin_trap();
		}
		memset(&cb, 0, sizeof(cb));
		mh.msg_control = cb.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	rc = sendmsg(s, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	for (unsigned k = 0; k < nfds; k++)
		close(fds[k]);	/* the kernel holds its own reference in flight */
	return rc == (ssize_t)len ? 0 : -1;
}

static void run_stream(const uint8_t *d, size_t n, unsigned expect)
{
	struct vshm_hub_client c;
	int sp[2], rc = 0, eof = 0;
	size_t i = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp))
		__builtin_trap();
	vshm_hub_client_init(&c, expect);
	c.sock = sp[0];
	while (i < n) {
		uint8_t op = d[i++];
		size_t len = 1 + ((op >> 2) & 15);
		unsigned nfds = op & 3;

		if (op == 0xff) {		/* the hub hangs up */
			eof = 1;
			break;
		}
		if (nfds == 3)
			nfds = 2;
		if (len > n - i)
			len = n - i;
		if (!len)
			break;
		/* A full socket (the client stopped reading): stop writing. */
		if (send_chunk(sp[1], d + i, len, nfds))
			break;
		i += len;
		rc = pump(&c);
		if (rc < 0)
			break;
		check_invariants(&c);
	}
	if (eof) {
		close(sp[1]);
		sp[1] = -1;
		rc = pump(&c);
		if (rc == 0)
			__builtin_trap();	/* EOF must be reported */
	}
	check_invariants(&c);
	vshm_hub_client_close(&c);	/* closes sp[0] */
	if (sp[1] >= 0)
		close(sp[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int before, after;
	unsigned expect;

	if (size < 1 || size > FUZZ_MAX_INPUT)
		return 0;
	expect = (data[0] >> 1) % (VSHM_HUB_MAX_VECTORS + 1);
	before = count_fds();
	if (data[0] & 1)
		run_stream(data + 1, size - 1, expect);
	else
		run_feed(data + 1, size - 1, expect);
	after = count_fds();
	if (before != after)
		__builtin_trap();	/* an fd leaked (or was closed twice) */
	return 0;
}
