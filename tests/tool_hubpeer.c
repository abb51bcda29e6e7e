// SPDX-License-Identifier: MIT
/*
 * A plain hub peer driven line by line on stdin, for the guest tests: the
 * process on the other side of a QEMU guest's ivshmem-doorbell.
 *
 *   tool_hubpeer HUB_SOCKET
 *
 * Connects, maps the window and prints "id ID size BYTES vectors N".  Then
 * reads one command per line and answers each with one line, "ok ..." or
 * "error ..." (a wait that runs out answers "timeout"):
 *
 *   peers               ok ID...        the peers that joined and are here
 *   ring ID VEC         ok              ring vector VEC of peer ID (may be us)
 *   wait VEC MS         ok COUNT        wait up to MS ms for our vector VEC,
 *                                       read its eventfd (COUNT doorbells)
 *   count VEC           ok COUNT        the same without waiting (COUNT may be 0)
 *   peek OFF            ok 0xVALUE      64-bit little-endian load at window offset OFF
 *   poke OFF VALUE      ok              64-bit store (OFF 8-aligned, inside the window)
 *   quit                                exit 0 (so does end of input)
 *
 * Numbers are C literals (decimal, 0x hex).  The hub's messages are handled
 * between commands, so joins and leaves are tracked while it idles.  Exits 1
 * if the hub cannot be joined or goes away.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vshm/hub.h>

#define MAX_PEERS 64

static struct vshm_hub_client hc;
static uint64_t *win;
static uint64_t win_size;
static int64_t peers[MAX_PEERS];
static unsigned npeers;

static void forget(int64_t id)
{
	for (unsigned i = 0; i < npeers; i++) {
		if (peers[i] == id) {
			peers[i] = peers[--npeers];
			return;
		}
	}
}

/* Drain the hub's socket; 0, or -1 when the hub is gone or broke the protocol. */
static int hub_events(void)
{
	struct vshm_hub_event ev;
	int rc;

	while ((rc = vshm_hub_client_process(&hc, &ev)) == 1) {
		if (ev.type == VSHM_HUB_EV_JOIN) {
			forget(ev.id);
			if (npeers < MAX_PEERS)
				peers[npeers++] = ev.id;
			fprintf(stderr, "tool_hubpeer: peer %lld joined\n", (long long)ev.id);
		} else if (ev.type == VSHM_HUB_EV_LEAVE) {
			forget(ev.id);
			fprintf(stderr, "tool_hubpeer: peer %lld left\n", (long long)ev.id);
		}
	}
	if (rc < 0) {
		const char *why = vshm_hub_client_error(&hc);

		fprintf(stderr, "tool_hubpeer: hub %s\n", rc == -EPIPE ? "went away" : why ? why : "failed");
		return -1;
	}
	return 0;
}

static int num(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;

	if (!s)
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-' || *out > max)
		return -1;
	return 0;
}

/* Read our vector's eventfd; waits up to @ms (0: not at all). */
static void cmd_wait(unsigned long long vec, unsigned long long ms)
{
	struct pollfd p = { .fd = hc.own[vec], .events = POLLIN };
	uint64_t count = 0;
	int rc;

	do
		rc = poll(&p, 1, (int)ms);
	while (rc < 0 && errno == EINTR);
	if (rc < 0) {
		printf("error poll: %s\n", strerror(errno));
		return;
	}
	if (rc == 0) {
		printf(ms ? "timeout\n" : "ok 0\n");
		return;
	}
	if (read(hc.own[vec], &count, sizeof(count)) != (ssize_t)sizeof(count)) {
		printf("error read vector %llu: %s\n", vec, strerror(errno));
		return;
	}
	printf("ok %llu\n", (unsigned long long)count);
}

static void cmd_ring(unsigned long long id, unsigned long long vec)
{
	const int *fds;
	uint64_t one = 1;
	unsigned n = 0;

	if ((int64_t)id == hc.id) {	/* ourselves: our own receive eventfds */
		fds = hc.own;
		n = hc.vectors;
	} else {
		fds = vshm_hub_peer_fds(&hc, (int64_t)id, &n);
	}
	if (!fds || vec >= n) {
		printf("error peer %llu vector %llu is not known (%u vectors)\n", id, vec, n);
		return;
	}
	if (write(fds[vec], &one, sizeof(one)) != (ssize_t)sizeof(one)) {
		printf("error ring: %s\n", strerror(errno));
		return;
	}
	printf("ok\n");
}

static void command(char *line)
{
	char *cmd = strtok(line, " \t\n");
	char *a = strtok(NULL, " \t\n"), *b = strtok(NULL, " \t\n");
	unsigned long long x, y;

	if (!cmd)
		return;
	if (!strcmp(cmd, "peers")) {
		printf("ok");
		for (unsigned i = 0; i < npeers; i++)
			printf(" %lld", (long long)peers[i]);
		printf("\n");
	} else if (!strcmp(cmd, "ring")) {
		if (num(a, VSHM_HUB_MAX_ID, &x) || num(b, VSHM_HUB_MAX_VECTORS - 1, &y))
			printf("error usage: ring ID VEC\n");
		else
			cmd_ring(x, y);
	} else if (!strcmp(cmd, "wait") || !strcmp(cmd, "count")) {
		int wait = cmd[0] == 'w';

		if (num(a, hc.vectors - 1, &x) || (wait && num(b, 60000, &y)))
			printf("error usage: wait VEC MS | count VEC (VEC < %u, MS <= 60000)\n",
			       hc.vectors);
		else
			cmd_wait(x, wait ? y : 0);
	} else if (!strcmp(cmd, "peek")) {
		if (num(a, win_size - 8, &x) || x % 8)
			printf("error usage: peek OFF (8-aligned, below %llu)\n",
			       (unsigned long long)win_size);
		else
			printf("ok 0x%016llx\n", (unsigned long long)
			       __atomic_load_n(&win[x / 8], __ATOMIC_ACQUIRE));
	} else if (!strcmp(cmd, "poke")) {
		if (num(a, win_size - 8, &x) || x % 8 || num(b, UINT64_MAX, &y)) {
			printf("error usage: poke OFF VALUE (OFF 8-aligned, below %llu)\n",
			       (unsigned long long)win_size);
		} else {
			__atomic_store_n(&win[x / 8], (uint64_t)y, __ATOMIC_RELEASE);
			printf("ok\n");
		}
	} else if (!strcmp(cmd, "quit")) {
		exit(0);
	} else {
		printf("error unknown command '%s'\n", cmd);
	}
}

int main(int argc, char **argv)
{
	char err[256], line[256];
	struct stat st;
	void *p;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: tool_hubpeer HUB_SOCKET  (then commands on stdin)\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* Lines are taken one at a time between polls: no stdio read-ahead. */
	setvbuf(stdin, NULL, _IONBF, 0);
	rc = vshm_hub_connect(&hc, argv[1], 5000, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "tool_hubpeer: %s\n", err);
		return 1;
	}
	if (fstat(hc.shm_fd, &st) || st.st_size < 8) {
		fprintf(stderr, "tool_hubpeer: the window fd has no usable size\n");
		return 1;
	}
	win_size = (uint64_t)st.st_size;
	p = mmap(NULL, win_size, PROT_READ | PROT_WRITE, MAP_SHARED, hc.shm_fd, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "tool_hubpeer: mmap window: %s\n", strerror(errno));
		return 1;
	}
	win = p;
	if (hub_events())
		return 1;
	printf("id %lld size %llu vectors %u\n", (long long)hc.id,
	       (unsigned long long)win_size, hc.vectors);

	for (;;) {
		struct pollfd pf[2] = {
			{ .fd = STDIN_FILENO, .events = POLLIN },
			{ .fd = vshm_hub_client_fd(&hc), .events = POLLIN },
		};

		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "tool_hubpeer: poll: %s\n", strerror(errno));
			return 1;
		}
		if (pf[1].revents && hub_events())
			return 1;
		if (pf[0].revents) {
			if (!fgets(line, sizeof(line), stdin))
				break;
			if (hub_events())
				return 1;
			command(line);
		}
	}
	vshm_hub_client_close(&hc);
	return 0;
}
