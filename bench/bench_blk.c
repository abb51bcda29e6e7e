// SPDX-License-Identifier: MIT
/*
 * blk through the full stack against io_uring on the same file.
 *
 * The subject: this process is the driver (libvshm's user-space blk driver,
 * private buffers bounced through the device's pool), `vshm serve` in a
 * child process is the device, `vshm hub` in another child hands out the
 * window, and the image lives in /dev/shm.  The baseline: the same 4 KiB
 * reads or writes at the same offsets, issued by this process straight to
 * the image with io_uring.  Both use buffered I/O, as the device does (it
 * opens the image without O_DIRECT; tmpfs has none anyway).
 *
 * Pinning: the driver and the baseline run on core 0, the device process
 * (and with it its io_uring workers) on core 1, the hub, idle during the
 * run, anywhere.  The baseline gets one core, the subject two; the ratio
 * says what the full stack costs end to end, not per CPU-second, which is
 * why CPU time per I/O is printed beside it.
 *
 * Trials alternate (baseline, vshm, baseline, ...), each a fixed number of
 * operations at the same offsets from a fixed-seed generator; each figure is
 * the median of its trials.  The device runs its default io_uring engine
 * first (the figures with targets), then its synchronous pread engine (for
 * information, with a baseline of its own interleaved again).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <vshm/attach.h>
#include <vshm/devmodel.h>
#include <vshm/drivers.h>
#include "bench.h"

#define TRIALS		7
#define PREAD_TRIALS	5
/*
 * vshm serve --poll-us per engine (VSHM_BENCH_POLL_US overrides both).  On
 * tmpfs io_uring hands every read and write to an io-wq worker, which runs
 * on the device's core; a device that spins keeps that worker off the CPU,
 * so with io_uring the device sleeps as soon as it is idle.  The pread
 * engine does the copy itself and spins as vshm serve does by default.
 */
#define POLL_US_URING	"0"
#define POLL_US_PREAD	"50"
#define BLOCK		4096u
#define IMAGE_SIZE	(256ull << 20)
#define QD_MAX		32u
#define IO_TIMEOUT_NS	(5ll * 1000 * 1000 * 1000)	/* no progress this long: fail */
#define START_MS	5000				/* hub socket, serve ready */

/* ------------------------------------------------------------------------ */
/* Children and files: everything here is undone at exit, also on a signal. */

static struct {
	pid_t hub, serve;
	char dir[64];		/* private temp dir: sockets and logs */
	char sock[128];
	char hub_log[128];
	char serve_log[128];
	char image[96];
	int image_made;
} env = { .hub = -1, .serve = -1 };

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* SIGTERM, then SIGKILL after 2 s.  Async-signal-safe. */
static void stop_child(pid_t *pid)
{
	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	for (int i = 0; i < 200; i++) {
		if (waitpid(*pid, NULL, WNOHANG) != 0)
			goto done;
		sleep_ms(10);
	}
	kill(*pid, SIGKILL);
	waitpid(*pid, NULL, 0);
done:
	*pid = -1;
}

/* Async-signal-safe: only kill, waitpid, nanosleep, unlink, rmdir. */
static void cleanup(void)
{
	stop_child(&env.serve);
	stop_child(&env.hub);
	if (env.image_made)
		unlink(env.image);
	env.image_made = 0;
	if (env.dir[0]) {
		unlink(env.sock);
		unlink(env.hub_log);
		unlink(env.serve_log);
		rmdir(env.dir);
		env.dir[0] = 0;
	}
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * Start @argv with stdout to /dev/null and stderr to @log, pinned to @cpu
 * (-1: not pinned), dying with us.  Returns the pid or -1.
 */
static pid_t spawn(char *const argv[], const char *log, int cpu)
{
	pid_t parent = getpid(), pid = fork();

	if (pid != 0)
		return pid;
	/* The child: no stdio buffers are flushed from here on (_exit). */
	{
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		int err = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		sigset_t none;

		if (nul < 0 || err < 0 || dup2(nul, STDIN_FILENO) < 0 ||
		    dup2(nul, STDOUT_FILENO) < 0 || dup2(err, STDERR_FILENO) < 0)
			_exit(127);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) || getppid() != parent)
			_exit(127);
		if (cpu >= 0) {
			cpu_set_t set;

			CPU_ZERO(&set);
			CPU_SET(cpu, &set);
			sched_setaffinity(0, sizeof(set), &set);
		}
		execv(argv[0], argv);
		_exit(127);
	}
}

/* Has child *@pid exited?  Then it is reaped and *@pid becomes -1. */
static int child_gone(pid_t *pid)
{
	if (waitpid(*pid, NULL, WNOHANG) == 0)
		return 0;
	*pid = -1;
	return 1;
}

/* Wait up to @ms for @log to contain @needle; 0, or -1 if *@pid exited or time ran out. */
static int wait_log(pid_t *pid, const char *log, const char *needle, int ms)
{
	char buf[4096];

	for (int t = 0; t < ms; t += 10) {
		int fd = open(log, O_RDONLY | O_CLOEXEC);

		if (fd >= 0) {
			ssize_t n = read(fd, buf, sizeof(buf) - 1);

			close(fd);
			if (n > 0) {
				buf[n] = 0;
				if (strstr(buf, needle))
					return 0;
			}
		}
		if (child_gone(pid))
			return -1;
		sleep_ms(10);
	}
	return -1;
}

static int wait_path(pid_t *pid, const char *path, int ms)
{
	struct stat st;

	for (int t = 0; t < ms; t += 10) {
		if (stat(path, &st) == 0)
			return 0;
		if (child_gone(pid))
			return -1;
		sleep_ms(10);
	}
	return -1;
}

static void show_log(const char *what, const char *log)
{
	char buf[2048];
	int fd = open(log, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (n > 0) {
		buf[n] = 0;
		fprintf(stderr, "bench: %s said:\n%s", what, buf);
	}
}

/* What a process spent: CPU time and sleeps (voluntary context switches). */
struct usage {
	double cpu_s;
	uint64_t sleeps;
};

/*
 * @pid's CPU time, all threads (its io_uring workers too), from
 * /proc/PID/stat in clock ticks; this process's from the process CPU clock.
 * Sleeps of the main thread, which is the one that polls.
 */
static struct usage usage_of(pid_t pid)
{
	struct usage u = { 0, 0 };
	char path[64], line[1024];
	FILE *f;

	if (pid) {
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
		f = fopen(path, "r");
		if (f) {
			char *p = fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL;
			unsigned long long ut, st;

			/* After "(comm)": state and fields 4..13, then utime, stime. */
			if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
					&ut, &st) == 2)
				u.cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
			fclose(f);
		}
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	} else {
		struct timespec ts;

		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
		u.cpu_s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
		snprintf(path, sizeof(path), "/proc/self/status");
	}
	f = fopen(path, "r");
	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "voluntary_ctxt_switches: %llu",
				   (unsigned long long *)&u.sleeps) == 1)
				break;
		fclose(f);
	}
	return u;
}

/* ------------------------------------------------------------------------ */
/* The workload                                                               */

struct work {
	const uint64_t *blocks;	/* block numbers, one per operation */
	uint64_t nops;
	unsigned qd;
	int write;
	uint8_t *bufs;		/* QD_MAX private buffers of BLOCK bytes */
};

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* ---- baseline: io_uring on the image ------------------------------------- */

/*
 * IOPS, or a negative errno.  Keeps @w->qd operations in flight: each round
 * refills the free slots and submits them with the wait for the next
 * completion in one io_uring_enter, the cheapest way liburing offers.
 */
static double iouring_run(struct io_uring *ring, int fd, const struct work *w)
{
	unsigned free_slots[QD_MAX], nfree = 0;
	uint64_t next = 0, done = 0, t0, t1;

	for (unsigned i = 0; i < w->qd; i++)
		free_slots[nfree++] = i;
	t0 = bench_ns();
	while (done < w->nops) {
		struct __kernel_timespec ts = { IO_TIMEOUT_NS / 1000000000ll, 0 };
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		int rc;

		while (nfree && next < w->nops) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
			unsigned slot = free_slots[nfree - 1];
			uint8_t *buf = w->bufs + (size_t)slot * BLOCK;
			uint64_t off = w->blocks[next] * BLOCK;

			if (!sqe)
				break;
			if (w->write)
				io_uring_prep_write(sqe, fd, buf, BLOCK, off);
			else
				io_uring_prep_read(sqe, fd, buf, BLOCK, off);
			io_uring_sqe_set_data64(sqe, slot);
			nfree--;
			next++;
		}
		rc = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
		if (rc == -ETIME)
			return -ETIMEDOUT;	/* nothing completed in IO_TIMEOUT_NS */
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
			return rc;
		io_uring_for_each_cqe(ring, head, cqe) {
			n++;
			if (cqe->user_data == LIBURING_UDATA_TIMEOUT)
				continue;	/* kernels without EXT_ARG: liburing's timeout */
			if (cqe->res != (int)BLOCK)
				return cqe->res < 0 ? cqe->res : -EIO;
			free_slots[nfree++] = (unsigned)io_uring_cqe_get_data64(cqe);
			done++;
		}
		io_uring_cq_advance(ring, n);
	}
	t1 = bench_ns();
	return (double)w->nops / ((double)(t1 - t0) / 1e9);
}

/* ---- subject: the vshm blk driver --------------------------------------- */

struct vrun {
	unsigned free[QD_MAX];	/* buffer slots not in flight */
	unsigned nfree;
	int err;
	uint64_t done;
};

struct vreq {
	struct vrun *r;
	unsigned slot;
};

static void vshm_cb(void *arg, int status)
{
	struct vreq *q = arg;

	if (status)
		q->r->err = status;
	q->r->free[q->r->nfree++] = q->slot;
	q->r->done++;
}

/* IOPS, or a negative errno. */
static double vshm_run(struct vshm_blkdrv *b, const struct work *w)
{
	struct vrun r = { .nfree = 0 };
	struct vreq reqs[QD_MAX];
	uint64_t next = 0, t0, t1, last = 0, stall = 0;
	int op = w->write ? VSHM_BLK_OP_WRITE : VSHM_BLK_OP_READ;

	for (unsigned i = 0; i < w->qd; i++) {
		reqs[i] = (struct vreq){ &r, i };
		r.free[r.nfree++] = w->qd - 1 - i;
	}
	t0 = bench_ns();
	while (r.done < w->nops) {
		int rc;

		while (r.nfree && next < w->nops) {
			unsigned slot = r.free[r.nfree - 1];

			rc = vshm_blkdrv_submit(b, op, w->blocks[next] * (BLOCK / VSHM_BLK_SECTOR),
						w->bufs + (size_t)slot * BLOCK, BLOCK, vshm_cb, &reqs[slot]);
			if (rc == -EAGAIN)
				break;
			if (rc)
				return rc;
			r.nfree--;
			next++;
		}
		rc = vshm_blkdrv_wait(b, 100 * 1000 * 1000);
		if (rc < 0)
			return rc;
		if (r.err)
			return r.err;
		if (r.done != last) {
			last = r.done;
			stall = 0;
		} else if (!stall) {
			stall = bench_ns();
		} else if (bench_ns() - stall > (uint64_t)IO_TIMEOUT_NS) {
			return -ETIMEDOUT;
		}
	}
	t1 = bench_ns();
	return (double)w->nops / ((double)(t1 - t0) / 1e9);
}

/* ------------------------------------------------------------------------ */

static const char *const rows[] = { "randread_qd1", "randwrite_qd1", "randread_qd32", "randwrite_qd32" };

static void skip_all(const char *why)
{
	for (unsigned i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char key[64];

		snprintf(key, sizeof(key), "blk_%s_over_iouring", rows[i]);
		printf("  %-34s skipped: %s\n", key, why);
	}
	fflush(stdout);
}

static const char *vshm_path(char *buf, size_t len)
{
	const char *v = getenv("VSHM"), *o = getenv("O");

	if (v && *v)
		return v;
	snprintf(buf, len, "%s/vshm", o && *o ? o : "build");
	return buf;
}

static int make_image(const char *path)
{
	uint8_t *chunk = malloc(1u << 20);
	uint64_t x = 0x243f6a8885a308d3ull;
	int fd, rc = -1;

	if (!chunk)
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		free(chunk);
		return -1;
	}
	env.image_made = 1;
	for (uint64_t off = 0; off < IMAGE_SIZE; off += 1u << 20) {
		for (size_t i = 0; i < (1u << 20) / 8; i++) {
			uint64_t v = xorshift(&x);

			memcpy(chunk + i * 8, &v, 8);
		}
		if (pwrite(fd, chunk, 1u << 20, (off_t)off) != 1 << 20)
			goto out;
	}
	rc = 0;
out:
	close(fd);
	free(chunk);
	return rc;
}

/* One 4 KiB block each way, checked against the file: the subject moves real data. */
static int sanity(struct vshm_blkdrv *b, int fd, uint8_t *a, uint8_t *c)
{
	memset(a, 0xa5, BLOCK);
	if (vshm_blkdrv_write(b, 8, a, BLOCK) || pread(fd, c, BLOCK, 8 * 512) != BLOCK ||
	    memcmp(a, c, BLOCK))
		return -1;
	memset(c, 0x3c, BLOCK);
	if (pwrite(fd, c, BLOCK, 16 * 512) != BLOCK || vshm_blkdrv_read(b, 16, a, BLOCK) ||
	    memcmp(a, c, BLOCK))
		return -1;
	return 0;
}

struct phase {
	const char *vshm;	/* the binary */
	const char *engine;	/* "" (io_uring, the default) or ",pread" */
	const char *prefix;	/* of the vshm keys: "blk" or "blk_pread" */
	int full;		/* report baselines and targets */
	int trials;
	const char *poll_us;
	const uint64_t *blocks;
	uint64_t nops_qd1, nops_qd32;
	uint8_t *bufs;
	struct io_uring *ring;
	int fd;			/* the image, for the baseline and the check */
};

/*
 * Start `vshm serve` with @p's engine, attach as its driver, run every case
 * with baseline and subject trials interleaved, report, and take it all
 * down again (the hub stays).  0, or -1 after saying why on stderr.
 */
static int run_phase(const struct phase *p)
{
	static const unsigned qds[] = { 1, 32 };
	struct vshm_drv_opts dopts = { 0 };
	struct vshm_drv *d = NULL;
	struct vshm_blkdrv *b = NULL;
	char img_arg[128], poll_arg[32], err[512];
	char *serve_argv[] = { (char *)p->vshm, "serve", "--hub", env.sock, "--poll-us", poll_arg,
			       img_arg, NULL };
	int dev, rc, ret = -1;

	snprintf(img_arg, sizeof(img_arg), "blk:%s%s", env.image, p->engine);
	snprintf(poll_arg, sizeof(poll_arg), "%s", p->poll_us);
	env.serve = spawn(serve_argv, env.serve_log, 1);
	if (env.serve < 0 || wait_log(&env.serve, env.serve_log, " serving ", START_MS)) {
		fprintf(stderr, "bench: vshm serve exited or was not serving after %d ms\n", START_MS);
		show_log("vshm serve", env.serve_log);
		goto out;
	}
	dopts.attach_timeout_ns = (int64_t)START_MS * 1000000;
	rc = vshm_drv_attach(env.sock, &dopts, &d, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "bench: %s\n", err);
		goto out;
	}
	dev = vshm_drv_find(d, VSHM_VIRTIO_ID_BLOCK);
	rc = dev < 0 ? dev : vshm_blkdrv_open(d, (uint16_t)dev, QD_MAX, &b);
	if (rc) {
		fprintf(stderr, "bench: cannot open the blk device: %s\n", strerror(-rc));
		goto out;
	}
	if (sanity(b, p->fd, p->bufs, p->bufs + BLOCK)) {
		fprintf(stderr, "bench: data through vshm does not match the image\n");
		goto out;
	}
	for (unsigned q = 0; q < sizeof(qds) / sizeof(qds[0]); q++) {
		for (int wr = 0; wr <= 1; wr++) {
			struct work w = {
				.blocks = p->blocks, .qd = qds[q], .write = wr, .bufs = p->bufs,
				.nops = qds[q] == 1 ? p->nops_qd1 : p->nops_qd32,
			};
			double base[TRIALS], sub[TRIALS], bm, sm, ops;
			double base_cpu = 0, drv_cpu = 0, dev_cpu = 0;
			uint64_t drv_sl = 0, dev_sl = 0;
			const char *name = wr ? "randwrite" : "randread";
			char key[64], what[128];

			for (int t = 0; t < p->trials; t++) {
				struct usage s0, s1, e0, e1;

				s0 = usage_of(0);
				base[t] = iouring_run(p->ring, p->fd, &w);
				e0 = usage_of(0);
				if (base[t] < 0) {
					fprintf(stderr, "bench: io_uring %s failed: %s\n", name,
						strerror((int)-base[t]));
					goto out;
				}
				base_cpu += e0.cpu_s - s0.cpu_s;
				s0 = usage_of(0);
				s1 = usage_of(env.serve);
				sub[t] = vshm_run(b, &w);
				e0 = usage_of(0);
				e1 = usage_of(env.serve);
				if (sub[t] < 0) {
					fprintf(stderr, "bench: vshm %s failed: %s\n", name,
						strerror((int)-sub[t]));
					show_log("vshm serve", env.serve_log);
					goto out;
				}
				drv_cpu += e0.cpu_s - s0.cpu_s;
				dev_cpu += e1.cpu_s - s1.cpu_s;
				drv_sl += e0.sleeps - s0.sleeps;
				dev_sl += e1.sleeps - s1.sleeps;
			}
			bm = bench_median(base, p->trials);
			sm = bench_median(sub, p->trials);
			ops = (double)w.nops * p->trials;
			if (p->full) {
				snprintf(key, sizeof(key), "iouring_%s_qd%u_iops", name, qds[q]);
				snprintf(what, sizeof(what), "io_uring on the image, one process (baseline)");
				bench_report(key, bm, "IOPS", what);
			}
			snprintf(key, sizeof(key), "%s_%s_qd%u_iops", p->prefix, name, qds[q]);
			snprintf(what, sizeof(what), "driver -> vshm serve%s -> image%s", p->engine,
				 p->full ? "" : " (information)");
			bench_report(key, sm, "IOPS", what);
			snprintf(key, sizeof(key), "%s_%s_qd%u_over_iouring", p->prefix, name, qds[q]);
			if (p->full && qds[q] == 32)
				bench_target(key, sm / bm, ">=", 0.7);
			else
				bench_report(key, sm / bm, "ratio", "(information)");
			printf("  %-34s cpu us/IO: io_uring %.2f | vshm driver %.2f, device %.2f;"
			       " sleeps/kIO: driver %.0f, device %.0f\n", "",
			       base_cpu * 1e6 / ops, drv_cpu * 1e6 / ops, dev_cpu * 1e6 / ops,
			       (double)drv_sl * 1000 / ops, (double)dev_sl * 1000 / ops);
		}
	}
	ret = 0;
out:
	if (b)
		vshm_blkdrv_close(b);
	if (d)
		vshm_drv_destroy(d);
	stop_child(&env.serve);
	return ret;
}

int main(int argc, char **argv)
{
	char vbuf[PATH_MAX];
	const char *poll_us = getenv("VSHM_BENCH_POLL_US");
	struct io_uring ring;
	struct sigaction sa;
	struct phase p = { .trials = TRIALS, .nops_qd1 = 30000, .nops_qd32 = 150000, .fd = -1 };
	uint64_t *blocks = NULL, x = 0x9e3779b97f4a7c15ull, nmax;
	uint8_t *bufs = NULL;
	int rc, ret = 1;

	(void)argc;
	(void)argv;
	bench_json_open();
	if (getenv("VSHM_BENCH_QUICK")) {
		p.nops_qd1 = 5000;
		p.nops_qd32 = 20000;
	}
	nmax = p.nops_qd32 > p.nops_qd1 ? p.nops_qd32 : p.nops_qd1;

	/* io_uring first: without it there is no baseline, and nothing to compare. */
	rc = io_uring_queue_init(64, &ring, 0);
	if (rc < 0) {
		char why[128];

		snprintf(why, sizeof(why), "io_uring unavailable (%s)", strerror(-rc));
		skip_all(why);
		return 0;
	}
	p.ring = &ring;
	p.vshm = vshm_path(vbuf, sizeof(vbuf));
	if (access(p.vshm, X_OK)) {
		char why[PATH_MAX + 64];

		snprintf(why, sizeof(why), "no vshm binary at %s (set VSHM or O)", p.vshm);
		skip_all(why);
		io_uring_queue_exit(&ring);
		return 0;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	atexit(cleanup);

	snprintf(env.dir, sizeof(env.dir), "/tmp/vshm-bench-blk.XXXXXX");
	if (!mkdtemp(env.dir)) {
		env.dir[0] = 0;
		fprintf(stderr, "bench: cannot create a temporary directory: %s\n", strerror(errno));
		goto out;
	}
	snprintf(env.sock, sizeof(env.sock), "%s/hub.sock", env.dir);
	snprintf(env.hub_log, sizeof(env.hub_log), "%s/hub.log", env.dir);
	snprintf(env.serve_log, sizeof(env.serve_log), "%s/serve.log", env.dir);
	snprintf(env.image, sizeof(env.image), "/dev/shm/vshm-bench-blk-%d.img", (int)getpid());
	if (make_image(env.image)) {
		fprintf(stderr, "bench: cannot create a %llu MiB image at %s: %s\n",
			(unsigned long long)(IMAGE_SIZE >> 20), env.image, strerror(errno));
		goto out;
	}
	p.fd = open(env.image, O_RDWR | O_CLOEXEC);
	if (p.fd < 0) {
		fprintf(stderr, "bench: cannot open %s: %s\n", env.image, strerror(errno));
		goto out;
	}

	/* Offsets: the same for every trial, subject and baseline alike. */
	blocks = malloc(nmax * sizeof(*blocks));
	bufs = aligned_alloc(4096, (size_t)QD_MAX * BLOCK);
	if (!blocks || !bufs)
		goto out;
	for (uint64_t i = 0; i < nmax; i++)
		blocks[i] = xorshift(&x) % (IMAGE_SIZE / BLOCK);
	for (size_t i = 0; i < (size_t)QD_MAX * BLOCK; i++)
		bufs[i] = (uint8_t)(i * 7 + 1);
	p.blocks = blocks;
	p.bufs = bufs;

	{
		char *hub_argv[] = { (char *)p.vshm, "hub", "--socket", env.sock, "--size", "64M", NULL };

		env.hub = spawn(hub_argv, env.hub_log, -1);
		if (env.hub < 0 || wait_path(&env.hub, env.sock, START_MS)) {
			fprintf(stderr, "bench: vshm hub exited or had no socket after %d ms\n", START_MS);
			show_log("vshm hub", env.hub_log);
			goto out;
		}
	}
	/* The driver and the baseline (and its io_uring workers, created later) on core 0. */
	bench_pin(0);
	p.poll_us = poll_us && *poll_us ? poll_us : POLL_US_URING;

	printf("4 KiB random I/O, %llu MiB image in /dev/shm, buffered: vshm (driver core 0, vshm serve"
	       " core 1, io_uring engine, --poll-us %s) vs io_uring (core 0); %u (QD1) or %u (QD32) ops"
	       " per trial, %d trials\n",
	       (unsigned long long)(IMAGE_SIZE >> 20), p.poll_us, (unsigned)p.nops_qd1,
	       (unsigned)p.nops_qd32, p.trials);
	{
		FILE *f = fopen("/proc/loadavg", "r");
		double load;

		/* The subject needs both cores: say when something else wanted them too. */
		if (f && fscanf(f, "%lf", &load) == 1)
			printf("  (load average %.2f at the start)\n", load);
		if (f)
			fclose(f);
	}
	p.engine = "";
	p.prefix = "blk";
	p.full = 1;
	if (run_phase(&p))
		goto out;
	p.poll_us = poll_us && *poll_us ? poll_us : POLL_US_PREAD;
	printf("the same with the device's synchronous engine (blk:IMAGE,pread, --poll-us %s), %d trials\n",
	       p.poll_us, PREAD_TRIALS);
	p.engine = ",pread";
	p.prefix = "blk_pread";
	p.full = 0;
	p.trials = PREAD_TRIALS;
	if (run_phase(&p))
		goto out;
	ret = 0;
out:
	if (p.fd >= 0)
		close(p.fd);
	io_uring_queue_exit(&ring);
	cleanup();
	free(blocks);
	free(bufs);
	return ret;
}
