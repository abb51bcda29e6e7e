// SPDX-License-Identifier: MIT
/*
 * `vshm hub`: run the hub in the foreground until SIGINT or SIGTERM.
 *
 * This is the only layer that turns the hub's -errno results into words and
 * exit codes: 0 clean shutdown, 1 runtime error, 2 usage error.  Every
 * message is one line on stderr starting "vshm hub: ".
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vshm/hub.h>
#include <vshm/vshm.h>
#include "cmd.h"

#define EXIT_OK		0
#define EXIT_RUNTIME	1
#define EXIT_USAGE	2

static const char hub_usage[] =
"Usage: vshm hub [OPTION]...\n"
"Run the hub: create the shared window and hand it, with doorbell eventfds,\n"
"to every peer that connects (QEMU's ivshmem-server protocol).\n"
"\n"
"  -S, --socket PATH         Unix socket to listen on (default\n"
"                            $XDG_RUNTIME_DIR/vshm/hub.sock, or\n"
"                            /run/vshm/hub.sock as root)\n"
"  -l, --size SIZE           window size, a power of two 64K..64G (default 64M)\n"
"  -n, --vectors N           doorbell vectors per peer, 1..64 (default 4)\n"
"      --max-peers N         peers at once, 1..65536 (default 16)\n"
"      --mode OCTAL          socket file mode (default 0600)\n"
"      --group NAME|GID      socket file group\n"
"      --transport-features N  virtio-msg bus feature bits for the header\n"
"  -F, --foreground          stay in the foreground (always; accepted for\n"
"                            ivshmem-server compatibility)\n"
"  -v, --verbose             log joins, leaves and role releases\n"
"  -h, --help                show this help\n"
"  -V, --version             show the version\n"
"\n"
"QEMU guests connect with\n"
"  -chardev socket,path=PATH,id=ivsh0 -device ivshmem-doorbell,chardev=ivsh0,vectors=N\n"
"\n"
"Exit status: 0 after SIGINT/SIGTERM, 1 on a runtime error, 2 on a usage error.\n";

__attribute__((format(printf, 1, 2)))
static void hub_msg(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "vshm hub: %s\n", line);
}

struct hub_log_ctx {
	int verbose;
};

static void hub_log_line(void *arg, int level, const char *line)
{
	const struct hub_log_ctx *lc = arg;

	if (level == VSHM_HUB_LOG_WARN || lc->verbose)
		hub_msg("%s", line);
}

/* Parse an unsigned number in @base within [lo, hi]; 0 or -EINVAL. */
static int parse_uint(const char *s, int base, unsigned long long lo,
		      unsigned long long hi, unsigned long long *out)
{
	unsigned long long v;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_group(const char *s, gid_t *gid)
{
	unsigned long long v;
	struct group gr, *res = NULL;
	char buf[4096];

	if (!parse_uint(s, 10, 0, (gid_t)-1 - 1, &v)) {
		*gid = (gid_t)v;
		return 0;
	}
	if (getgrnam_r(s, &gr, buf, sizeof(buf), &res) || !res)
		return -ENOENT;
	*gid = res->gr_gid;
	return 0;
}

/* 64M rather than 67108864: the spelling --size accepts. */
static const char *fmt_size(uint64_t v, char *buf, size_t len)
{
	static const char unit[] = "KMGT";
	int u = -1;

	while (u < 3 && v >= 1024 && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%llu", (unsigned long long)v);
	else
		snprintf(buf, len, "%llu%c", (unsigned long long)v, unit[u]);
	return buf;
}

/* Enough descriptors for max_peers x (vectors + 1), plus slack. */
static void raise_nofile(unsigned max_peers, unsigned vectors)
{
	unsigned long long need = (unsigned long long)max_peers * (vectors + 1) + 64;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ?
			      need : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		hub_msg("warning: the fd limit (%llu) is below what %u peers with %u vectors "
			"need (%llu); late peers will be refused",
			(unsigned long long)rl.rlim_cur, max_peers, vectors, need);
}

int vshm_cmd_hub(int argc, char **argv)
{
	enum { OPT_MAX_PEERS = 256, OPT_MODE, OPT_GROUP, OPT_TF };
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "size", required_argument, NULL, 'l' },
		{ "vectors", required_argument, NULL, 'n' },
		{ "max-peers", required_argument, NULL, OPT_MAX_PEERS },
		{ "mode", required_argument, NULL, OPT_MODE },
		{ "group", required_argument, NULL, OPT_GROUP },
		{ "transport-features", required_argument, NULL, OPT_TF },
		{ "foreground", no_argument, NULL, 'F' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct vshm_hub_opts o = { 0 };
	struct hub_log_ctx lc = { 0 };
	char defpath[PATH_MAX], err[512], sizebuf[32];
	struct vshm_hub *h = NULL;
	sigset_t stop_sigs, old_sigs;
	unsigned long long v;
	int c, rc, sfd;

	o.size = VSHM_HUB_DEFAULT_SIZE;
	o.vectors = VSHM_HUB_DEFAULT_VECTORS;
	o.max_peers = VSHM_HUB_DEFAULT_MAX_PEERS;
	o.mode = VSHM_HUB_DEFAULT_MODE;

	optind = 0;	/* a fresh parse, whatever parsed argv before us */
	opterr = 0;	/* our own one-line messages */
	while ((c = getopt_long(argc, argv, "+S:l:n:FvhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'S':
			o.socket_path = optarg;
			break;
		case 'l':
			if (vshm_parse_size(optarg, &o.size) || vshm_window_size_ok(o.size)) {
				hub_msg("bad --size '%s': expected a power of two between "
					"64K and 64G, e.g. 64M", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'n':
			if (parse_uint(optarg, 10, 1, VSHM_HUB_MAX_VECTORS, &v)) {
				hub_msg("bad --vectors '%s': expected 1..%u", optarg,
					VSHM_HUB_MAX_VECTORS);
				return EXIT_USAGE;
			}
			o.vectors = (unsigned)v;
			break;
		case OPT_MAX_PEERS:
			if (parse_uint(optarg, 10, 1, VSHM_HUB_MAX_PEERS, &v)) {
				hub_msg("bad --max-peers '%s': expected 1..%u", optarg,
					VSHM_HUB_MAX_PEERS);
				return EXIT_USAGE;
			}
			o.max_peers = (unsigned)v;
			break;
		case OPT_MODE:
			if (parse_uint(optarg, 8, 1, 0777, &v)) {
				hub_msg("bad --mode '%s': expected an octal mode 1..0777, e.g. 0660",
					optarg);
				return EXIT_USAGE;
			}
			o.mode = (unsigned)v;
			break;
		case OPT_GROUP:
			if (parse_group(optarg, &o.gid)) {
				hub_msg("bad --group '%s': no such group", optarg);
				return EXIT_USAGE;
			}
			o.set_group = 1;
			break;
		case OPT_TF:
			if (parse_uint(optarg, 0, 0, UINT32_MAX, &v)) {
				hub_msg("bad --transport-features '%s': expected a 32-bit number",
					optarg);
				return EXIT_USAGE;
			}
			o.transport_features = (uint32_t)v;
			break;
		case 'F':
			break;
		case 'v':
			lc.verbose++;
			break;
		case 'h':
			fputs(hub_usage, stdout);
			return EXIT_OK;
		case 'V':
			printf("vshm hub %s (ivshmem-server protocol %d)\n", VSHM_VERSION_STRING,
			       VSHM_HUB_PROTOCOL_VERSION);
			return EXIT_OK;
		default:
			/* getopt sets optopt to the option's value when its
			 * argument is missing, to 0 for an unknown long one. */
			if (optopt == 'S' || optopt == 'l' || optopt == 'n' ||
			    optopt >= OPT_MAX_PEERS)
				hub_msg("option '%s' needs an argument; see 'vshm hub --help'",
					argv[optind - 1]);
			else if (optopt)
				hub_msg("unknown option '-%c'; see 'vshm hub --help'", optopt);
			else
				hub_msg("unknown option '%s'; see 'vshm hub --help'",
					argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		hub_msg("unexpected argument '%s'; see 'vshm hub --help'", argv[optind]);
		return EXIT_USAGE;
	}

	if (!o.socket_path) {
		char dir[PATH_MAX], *slash;

		rc = vshm_hub_default_path(defpath, sizeof(defpath));
		if (rc == -ENOENT) {
			hub_msg("no --socket given and XDG_RUNTIME_DIR is not set; "
				"pass --socket PATH");
			return EXIT_USAGE;
		}
		if (rc < 0) {
			hub_msg("the default socket path is too long; pass --socket PATH");
			return EXIT_USAGE;
		}
		o.socket_path = defpath;
		/* Our own default directory is ours to create. */
		snprintf(dir, sizeof(dir), "%s", defpath);
		slash = strrchr(dir, '/');
		if (slash) {
			*slash = '\0';
			if (mkdir(dir, geteuid() == 0 ? 0755 : 0700) < 0 && errno != EEXIST) {
				hub_msg("cannot create directory %s: %s", dir, strerror(errno));
				return EXIT_RUNTIME;
			}
		}
	}

	raise_nofile(o.max_peers, o.vectors);
	o.log = hub_log_line;
	o.log_arg = &lc;

	/*
	 * SIGINT and SIGTERM arrive through a signalfd that the loop watches,
	 * so shutdown happens between events, never inside one.
	 */
	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGINT);
	sigaddset(&stop_sigs, SIGTERM);
	if (pthread_sigmask(SIG_BLOCK, &stop_sigs, &old_sigs)) {
		hub_msg("cannot block SIGINT/SIGTERM");
		return EXIT_RUNTIME;
	}
	sfd = signalfd(-1, &stop_sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		hub_msg("signalfd: %s", strerror(errno));
		pthread_sigmask(SIG_SETMASK, &old_sigs, NULL);
		return EXIT_RUNTIME;
	}

	rc = vshm_hub_create(&h, &o, err, sizeof(err));
	if (rc) {
		hub_msg("%s", err);
		close(sfd);
		pthread_sigmask(SIG_SETMASK, &old_sigs, NULL);
		return rc == -EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
	}
	hub_msg("listening on %s: %s window, %u vectors, at most %u peers",
		o.socket_path, fmt_size(o.size, sizebuf, sizeof(sizebuf)), o.vectors,
		o.max_peers);
	if (lc.verbose)
		hub_msg("QEMU: -chardev socket,path=%s,id=ivsh0 "
			"-device ivshmem-doorbell,chardev=ivsh0,vectors=%u",
			o.socket_path, o.vectors);

	rc = vshm_hub_run(h, sfd);
	if (rc) {
		hub_msg("event loop failed: %s", strerror(-rc));
	} else {
		struct signalfd_siginfo si;

		if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si) && lc.verbose)
			hub_msg("%s: shutting down", strsignal((int)si.ssi_signo));
	}
	vshm_hub_destroy(h);
	close(sfd);
	pthread_sigmask(SIG_SETMASK, &old_sigs, NULL);
	return rc ? EXIT_RUNTIME : EXIT_OK;
}
