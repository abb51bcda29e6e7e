// SPDX-License-Identifier: MIT
/*
 * vshm serve: a device process.  It attaches to a hub, claims the device
 * role, and serves its devices to whichever driver enters a session, one
 * after another.  It holds the window fd, its eventfds and what its
 * devices need (an image file, stdio or a console socket) — nothing else.
 *
 * The loop: do all ready work; when idle, keep polling for --poll-us, then
 * arm every notification and sleep in epoll on the doorbells, the hub
 * socket, the devices' own fds and the signals.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <vshm/attach.h>
#include <vshm/devmodel.h>
#include <vshm/devrt.h>
#include <vshm/session.h>
#include <vshm/vshm.h>
#include "cmd.h"

#define MAX_DEVS 8

enum { CON_STDIO, CON_UNIX, CON_PTY };

struct console_port {
	int mode;
	int in_fd;		/* stdin, or the connected client */
	int out_fd;		/* stdout, or the connected client */
	int listen_fd;		/* CON_UNIX */
	char path[108];
	struct vshm_devmodel *m;
};

struct serve {
	struct vshm_peer peer;
	struct vshm_dev_rt *rt;
	struct vshm_devmodel models[MAX_DEVS];
	const char *names[MAX_DEVS];
	int nmodels;
	struct console_port con;
	int have_con;
	int verbose;
	int epfd, sigfd;
	int64_t poll_ns;
	int64_t driver;		/* peer we ring, -1 */
	struct vshm_dev_rt_faults faults;	/* --hostile: testing only */
};

static const struct {
	const char *name;
	uint32_t bit;
} hostile_classes[] = {
	{ "used-id", VSHM_RT_FAULT_USED_ID },
	{ "used-len", VSHM_RT_FAULT_USED_LEN },
	{ "config", VSHM_RT_FAULT_CONFIG },
	{ "mute", VSHM_RT_FAULT_MUTE },
	{ "storm", VSHM_RT_FAULT_STORM },
	{ "stall", VSHM_RT_FAULT_STALL },
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vshm serve [--hub PATH] [options] DEVICE...\n"
		"\n"
		"Serve virtio devices over a hub's window.  Devices, in device-number order:\n"
		"  blk:IMAGE[,ro][,serial=ID][,pread]   a raw disk image (io_uring, or pread)\n"
		"  rng                                  random bytes from getrandom()\n"
		"  console[:stdio|:pty|:unix=PATH]      a console on stdio (default), on a new pty\n"
		"                                       (its path is printed), or on a Unix socket\n"
		"                                       that one client at a time uses\n"
		"\n"
		"options:\n"
		"  --hub PATH      the hub's socket (default: the hub's default path)\n"
		"  --poll-us N     keep polling N microseconds after the last work (default 50)\n"
		"  -v, --verbose   log sessions and errors to stderr\n"
		"  -h, --help      this text\n"
		"      --version   print the version\n"
		"\n"
		"testing a driver against a hostile device (never in service):\n"
		"  --hostile CLASS       misbehave on purpose; repeatable.  CLASS is one of\n"
		"                        used-id   every Nth completion names a buffer the driver\n"
		"                                  does not hold (an id past the ring, or a repeat)\n"
		"                        used-len  every completion claims 4 GiB - 1 bytes written\n"
		"                        config    config reads return random bytes and generations\n"
		"                        mute      stop answering control messages after N\n"
		"                        storm     ring the driver's doorbells without end\n"
		"                        stall     after N completions on a queue, complete no more\n"
		"  --hostile-after N     the N of used-id, mute and stall (default 32)\n"
		"\n"
		"example: vshm serve --hub /run/vshm/vm1.sock blk:disk.img console rng\n");
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* ---- console bridging --------------------------------------------------- */

static long con_out(void *ctx, const void *buf, size_t len)
{
	struct console_port *c = ctx;
	ssize_t n;

	if (c->out_fd < 0)
		return (long)len;	/* nobody listening: output is dropped */
	n = c->mode == CON_UNIX ? send(c->out_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL)
				: write(c->out_fd, buf, len);
	if (n < 0)
		/* A full pipe or socket pushes back; a pty nobody has open, or a
		 * client gone, drops the output rather than stalling the driver. */
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : (long)len;
	return (long)n;
}

static int epoll_add(int epfd, int fd, uint64_t tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

#define TAG_HUB		1
#define TAG_SIG		2
#define TAG_DB		3
#define TAG_MODEL	4
#define TAG_CON_IN	5
#define TAG_CON_LISTEN	6

static int console_setup(struct serve *s, const char *spec, char *err, size_t errlen)
{
	struct console_port *c = &s->con;

	c->in_fd = c->out_fd = c->listen_fd = -1;
	if (!spec || !strcmp(spec, "stdio")) {
		c->mode = CON_STDIO;
		c->in_fd = STDIN_FILENO;
		c->out_fd = STDOUT_FILENO;
		return 0;
	}
	if (!strncmp(spec, "unix=", 5)) {
		struct sockaddr_un a = { .sun_family = AF_UNIX };

		c->mode = CON_UNIX;
		if (strlen(spec + 5) >= sizeof(a.sun_path)) {
			snprintf(err, errlen, "console socket path too long: %s", spec + 5);
			return -ENAMETOOLONG;
		}
		strcpy(a.sun_path, spec + 5);
		strcpy(c->path, spec + 5);
		c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		unlink(a.sun_path);
		if (c->listen_fd < 0 || bind(c->listen_fd, (struct sockaddr *)&a, sizeof(a)) ||
		    listen(c->listen_fd, 1)) {
			snprintf(err, errlen, "cannot listen on console socket %s: %s", spec + 5, strerror(errno));
			return -errno;
		}
		return 0;
	}
	if (!strcmp(spec, "pty")) {
		int fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
		const char *name;

		if (fd < 0 || grantpt(fd) || unlockpt(fd) || !(name = ptsname(fd))) {
			snprintf(err, errlen, "cannot create a pty for the console: %s", strerror(errno));
			if (fd >= 0)
				close(fd);
			return -errno;
		}
		/* Raw, like a serial line: no echo of the driver's output back
		 * into its input, no line editing, no CR/LF translation. */
		{
			struct termios t;

			if (tcgetattr(fd, &t) == 0) {
				cfmakeraw(&t);
				tcsetattr(fd, TCSANOW, &t);
			}
		}
		c->mode = CON_PTY;
		c->in_fd = c->out_fd = fd;
		snprintf(c->path, sizeof(c->path), "%s", name);
		return 0;
	}
	snprintf(err, errlen, "bad console option '%s': expected stdio, pty or unix=PATH", spec);
	return -EINVAL;
}

/* ---- devices ------------------------------------------------------------ */

static int add_device(struct serve *s, const char *spec, char *err, size_t errlen)
{
	const struct vshm_devmodel_host *host = vshm_dev_rt_next_host(s->rt);
	struct vshm_devmodel *m = &s->models[s->nmodels];
	int rc;

	if (!host || s->nmodels >= MAX_DEVS) {
		snprintf(err, errlen, "too many devices (at most %d)", MAX_DEVS);
		return -ENOSPC;
	}
	memset(m, 0, sizeof(*m));
	if (!strncmp(spec, "blk:", 4)) {
		struct vshm_blk_opts o = { 0 };
		char *dup = strdup(spec + 4), *opt, *save = NULL;

		if (!dup)
			return -ENOMEM;
		o.path = strtok_r(dup, ",", &save);
		while ((opt = strtok_r(NULL, ",", &save))) {
			if (!strcmp(opt, "ro"))
				o.read_only = 1;
			else if (!strcmp(opt, "pread"))
				o.force_pread = 1;
			else if (!strncmp(opt, "serial=", 7))
				o.serial = opt + 7;
			else {
				snprintf(err, errlen, "unknown blk option '%s' (expected ro, pread, serial=ID)", opt);
				free(dup);
				return -EINVAL;
			}
		}
		if (!o.path || !*o.path) {
			snprintf(err, errlen, "blk needs an image: blk:PATH");
			free(dup);
			return -EINVAL;
		}
		rc = vshm_blk_create(m, host, &o, err, errlen);
		free(dup);
	} else if (!strcmp(spec, "rng")) {
		rc = vshm_rng_create(m, host);
		if (rc)
			snprintf(err, errlen, "cannot create rng: %s", strerror(-rc));
	} else if (!strcmp(spec, "console") || !strncmp(spec, "console:", 8)) {
		struct vshm_console_io io = { .ctx = &s->con, .out = con_out };

		if (s->have_con) {
			snprintf(err, errlen, "only one console per serve process");
			return -EINVAL;
		}
		rc = console_setup(s, spec[7] == ':' ? spec + 8 : NULL, err, errlen);
		if (rc)
			return rc;
		rc = vshm_console_create(m, host, &io);
		if (rc)
			snprintf(err, errlen, "cannot create console: %s", strerror(-rc));
		else {
			s->have_con = 1;
			s->con.m = m;
		}
	} else {
		snprintf(err, errlen, "unknown device '%s' (expected blk:IMAGE, rng or console)", spec);
		return -EINVAL;
	}
	if (rc)
		return rc;
	rc = vshm_dev_rt_add(s->rt, m);
	if (rc < 0) {
		snprintf(err, errlen, "cannot add device '%s': %s", spec, strerror(-rc));
		return rc;
	}
	s->names[s->nmodels++] = spec;
	return 0;
}

/* ---- the loop ----------------------------------------------------------- */

static void follow_driver(struct serve *s)
{
	int64_t want = vshm_dev_rt_state(s->rt) == VSHM_RT_NO_DRIVER ? -1 : vshm_dev_rt_driver_peer(s->rt);

	if (want == s->driver)
		return;
	if (vshm_peer_set_remote(&s->peer, want, 1000) == 0) {
		s->driver = want;
		if (s->verbose && want >= 0)
			fprintf(stderr, "vshm serve: driver peer %lld attached\n", (long long)want);
		else if (s->verbose)
			fprintf(stderr, "vshm serve: driver gone; devices reset\n");
	}
}

static void drain_fd(int fd)
{
	uint64_t v;

	while (read(fd, &v, sizeof(v)) == sizeof(v))
		;
}

static int handle_event(struct serve *s, uint64_t tag, int fd)
{
	struct vshm_hub_event ev;
	char buf[4096];
	ssize_t n;

	switch (tag) {
	case TAG_SIG:
		return 1;
	case TAG_HUB:
		for (;;) {
			int rc = vshm_peer_pump(&s->peer, &ev);

			if (rc < 0) {
				fprintf(stderr, "vshm serve: the hub went away; exiting\n");
				return 1;
			}
			if (rc == 0)
				break;
			if (ev.type == VSHM_HUB_EV_LEAVE && ev.id == s->driver)
				vshm_dev_rt_driver_gone(s->rt);
		}
		return 0;
	case TAG_DB:
		drain_fd(fd);
		return 0;
	case TAG_CON_LISTEN: {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (c < 0)
			return 0;
		if (s->con.in_fd >= 0) {
			close(c);	/* one client at a time */
			return 0;
		}
		s->con.in_fd = s->con.out_fd = c;
		epoll_add(s->epfd, c, ((uint64_t)c << 8) | TAG_CON_IN);
		return 0;
	}
	case TAG_CON_IN:
		n = read(fd, buf, sizeof(buf));
		if (n > 0) {
			/* Bounded by the model; what does not fit is dropped. */
			vshm_console_input(s->con.m, buf, (size_t)n);
		} else if (s->con.mode == CON_PTY) {
			/* No terminal on the other side (EIO): wait for one, gently. */
			if (n < 0 && errno == EIO) {
				struct timespec ts = { 0, 20 * 1000 * 1000 };

				nanosleep(&ts, NULL);
			}
		} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
			if (s->con.mode == CON_UNIX) {
				close(fd);
				s->con.in_fd = s->con.out_fd = -1;
			} else {
				s->con.in_fd = -1;
			}
		}
		return 0;
	default:
		return 0;
	}
}

static int serve_loop(struct serve *s)
{
	struct epoll_event evs[16];
	int64_t last_work = now_ns();

	for (;;) {
		int work = vshm_dev_rt_step(s->rt), n;

		if (work < 0) {
			fprintf(stderr, "vshm serve: the device role was taken over by another process; exiting\n");
			return 1;
		}
		follow_driver(s);
		if (work > 0) {
			last_work = now_ns();
			continue;
		}
		if (now_ns() - last_work < s->poll_ns) {
			/* Spin a little: a busy driver's next request is near. */
			n = epoll_wait(s->epfd, evs, 16, 0);
		} else {
			if (vshm_dev_rt_arm(s->rt)) {
				vshm_dev_rt_disarm(s->rt);
				continue;
			}
			/* The timeout bounds how late we see a session change. */
			n = epoll_wait(s->epfd, evs, 16, 50);
			vshm_dev_rt_disarm(s->rt);
		}
		for (int i = 0; i < n; i++) {
			int fd = (int)(evs[i].data.u64 >> 8);

			if (handle_event(s, evs[i].data.u64 & 0xff, fd))
				return 0;
		}
		if (n > 0)
			last_work = now_ns();
	}
}

int vshm_cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "hub", required_argument, NULL, 'H' },
		{ "poll-us", required_argument, NULL, 'p' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "hostile", required_argument, NULL, 'X' },
		{ "hostile-after", required_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	static struct serve s;
	char hubpath[256] = "", err[512] = "";
	const char *hub = NULL;
	sigset_t sigs;
	int c, rc, ret = 1, fds[MAX_DEVS];

	s.poll_ns = 50000;
	s.driver = -1;
	s.faults.after = 32;
	s.epfd = s.sigfd = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (c) {
		case 'H':
			hub = optarg;
			break;
		case 'p': {
			long v;

			if (cmd_number("serve", "poll-us", optarg, 0, 10000000, &v))
				return 2;
			s.poll_ns = v * 1000;
			break;
		}
		case 'v':
			s.verbose = 1;
			break;
		case 'X': {
			size_t k;

			for (k = 0; k < sizeof(hostile_classes) / sizeof(hostile_classes[0]); k++)
				if (!strcmp(optarg, hostile_classes[k].name))
					break;
			if (k == sizeof(hostile_classes) / sizeof(hostile_classes[0])) {
				fprintf(stderr, "vshm serve: unknown --hostile class '%s' (expected used-id, used-len, config, mute, storm or stall)\n",
					optarg);
				return 2;
			}
			s.faults.classes |= hostile_classes[k].bit;
			break;
		}
		case 'A': {
			long v;

			if (cmd_number("serve", "hostile-after", optarg, 1, 1000000, &v))
				return 2;
			s.faults.after = (uint32_t)v;
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("vshm serve %s\n", VSHM_VERSION_STRING);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "vshm serve: no devices given (e.g. vshm serve --hub PATH blk:disk.img rng)\n");
		return 2;
	}
	if (!hub) {
		if (vshm_hub_default_path(hubpath, sizeof(hubpath)) < 0) {
			fprintf(stderr, "vshm serve: no --hub given and no default path\n");
			return 2;
		}
		hub = hubpath;
	}
	rc = vshm_peer_attach(&s.peer, hub, 5000, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "vshm serve: %s\n", err);
		return 1;
	}
	rc = vshm_dev_rt_create(&s.rt, &s.peer.w, (uint32_t)s.peer.hc.id);
	/*
	 * A device process that just died may still hold the role until the
	 * hub has processed its departure.  A live device beats its heartbeat
	 * every 100 ms: while the holder's heartbeat stands still, wait (up to
	 * 3 s) for the hub to release the role.
	 */
	if (rc == -EBUSY) {
		struct vshm_role_view v0, v;

		vshm_role_read(&s.peer.w, VSHM_ROLE_DEVICE, &v0);
		for (int tries = 0; rc == -EBUSY && tries < 150; tries++) {
			struct vshm_hub_event ev;

			while (vshm_peer_pump(&s.peer, &ev) == 1)
				;
			usleep(20000);
			vshm_role_read(&s.peer.w, VSHM_ROLE_DEVICE, &v);
			if (v.owner && v.owner == v0.owner && v.epoch == v0.epoch &&
			    v.heartbeat != v0.heartbeat && tries >= 15)
				break;	/* alive for 300 ms: really serving */
			rc = vshm_dev_rt_create(&s.rt, &s.peer.w, (uint32_t)s.peer.hc.id);
		}
	}
	if (rc) {
		if (rc == -EBUSY)
			fprintf(stderr, "vshm serve: another device process already serves %s; stop it first\n", hub);
		else
			fprintf(stderr, "vshm serve: cannot start on %s: %s\n", hub, strerror(-rc));
		goto out_detach;
	}
	for (int i = optind; i < argc; i++) {
		rc = add_device(&s, argv[i], err, sizeof(err));
		if (rc) {
			fprintf(stderr, "vshm serve: %s\n", err);
			ret = rc == -EINVAL ? 2 : 1;
			goto out_rt;
		}
	}
	vshm_dev_rt_set_doorbell(s.rt, &s.peer.db.db);
	if (s.faults.classes) {
		vshm_dev_rt_set_faults(s.rt, &s.faults);
		fprintf(stderr, "vshm serve: HOSTILE:");
		for (size_t k = 0; k < sizeof(hostile_classes) / sizeof(hostile_classes[0]); k++)
			if (s.faults.classes & hostile_classes[k].bit)
				fprintf(stderr, " %s", hostile_classes[k].name);
		fprintf(stderr, " (after %u): this process misbehaves on purpose\n", s.faults.after);
	}

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	s.sigfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	s.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s.sigfd < 0 || s.epfd < 0) {
		fprintf(stderr, "vshm serve: cannot set up the event loop: %s\n", strerror(errno));
		goto out_rt;
	}
#define ADD(fd, tag) epoll_add(s.epfd, (fd), ((uint64_t)(fd) << 8) | (tag))
	ADD(s.sigfd, TAG_SIG);
	ADD(vshm_hub_client_fd(&s.peer.hc), TAG_HUB);
	for (unsigned v = 0; v < s.peer.hc.vectors; v++)
		ADD(s.peer.hc.own[v], TAG_DB);
	rc = vshm_dev_rt_model_fds(s.rt, fds, MAX_DEVS);
	for (int i = 0; i < rc; i++)
		ADD(fds[i], TAG_MODEL);
	if (s.have_con && s.con.mode == CON_STDIO && s.con.in_fd >= 0) {
		fcntl(s.con.in_fd, F_SETFL, fcntl(s.con.in_fd, F_GETFL) | O_NONBLOCK);
		if (ADD(s.con.in_fd, TAG_CON_IN))
			s.con.in_fd = -1;	/* stdin is a file or /dev/null: no input */
	}
	if (s.have_con && s.con.mode == CON_UNIX)
		ADD(s.con.listen_fd, TAG_CON_LISTEN);
	if (s.have_con && s.con.mode == CON_PTY) {
		ADD(s.con.in_fd, TAG_CON_IN);
		fprintf(stderr, "vshm serve: console on %s\n", s.con.path);
	}
#undef ADD
	fprintf(stderr, "vshm serve: peer %lld serving %d device%s on %s (window %llu MiB, %u vectors)\n",
		(long long)s.peer.hc.id, s.nmodels, s.nmodels == 1 ? "" : "s", hub,
		(unsigned long long)(s.peer.w.size >> 20), s.peer.hc.vectors);
	for (int i = 0; i < s.nmodels; i++)
		fprintf(stderr, "  device %d: %s%s%s\n", i, s.names[i],
			s.models[i].ops->device_id == VSHM_VIRTIO_ID_BLOCK ? " via " : "",
			s.models[i].ops->device_id == VSHM_VIRTIO_ID_BLOCK ? vshm_blk_engine(&s.models[i]) : "");
	ret = serve_loop(&s);
	if (s.verbose) {
		struct vshm_dev_rt_stats st;

		vshm_dev_rt_stats(s.rt, &st);
		fprintf(stderr, "vshm serve: %llu sessions, %llu requests, %llu messages, %llu dropped\n",
			(unsigned long long)st.sessions, (unsigned long long)st.chains,
			(unsigned long long)st.messages, (unsigned long long)st.dropped);
	}
out_rt:
	vshm_dev_rt_destroy(s.rt);
	for (int i = 0; i < s.nmodels; i++)
		if (s.models[i].ops && s.models[i].ops->destroy)
			s.models[i].ops->destroy(&s.models[i]);
	if (s.con.mode == CON_UNIX && s.con.listen_fd >= 0) {
		close(s.con.listen_fd);
		unlink(s.con.path);
	}
	if (s.epfd >= 0)
		close(s.epfd);
	if (s.sigfd >= 0)
		close(s.sigfd);
out_detach:
	vshm_peer_detach(&s.peer);
	return ret;
}
