// SPDX-License-Identifier: MIT
/*
 * vshm io: attach to a hub as the driver and use its devices from the
 * command line.  Everything goes through the user-space drivers in
 * drivers/, so this is also what the end-to-end tests and the demo drive.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <vshm/attach.h>
#include <vshm/devmodel.h>
#include <vshm/drivers.h>
#include <vshm/vshm.h>
#include "cmd.h"

#define CHUNK (256u << 10)

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vshm io [--hub PATH] [--dev N] COMMAND [ARGS]\n"
		"\n"
		"Attach to a hub as the driver and use the devices served there.\n"
		"\n"
		"commands:\n"
		"  info                         list the devices on the bus\n"
		"  write FILE [OFFSET]          copy FILE onto the disk at byte OFFSET (default 0)\n"
		"  read LENGTH OUT [OFFSET]     copy LENGTH bytes of the disk into OUT ('-' = stdout)\n"
		"  verify FILE [OFFSET]         compare the disk with FILE; exit 1 on a difference\n"
		"  flush                        make everything written so far durable\n"
		"  discard OFFSET LENGTH        discard a range (it reads back as zeroes)\n"
		"  stress BYTES [QD [SEED]]     random writes and reads against an in-memory copy\n"
		"                               of the disk, queue depth QD (default 32), verified\n"
		"  rng LENGTH [OUT]             LENGTH random bytes from the rng (hex to stdout)\n"
		"  console [TEXT]               send TEXT (if given) and print what arrives until\n"
		"                               --timeout passes with nothing new\n"
		"\n"
		"options:\n"
		"  --hub PATH       the hub's socket (default: the hub's default path)\n"
		"  --dev N          device number to use (default: the first of the right type)\n"
		"  --ring LAYOUT    split (default), packed or fifo: the virtqueue layout to ask for\n"
		"  --timeout MS     console: quiet time before exiting (default 1000)\n"
		"  --req-timeout MS give up on a device that does not complete a request\n"
		"                   (default: 30000 for blk, 10000 for rng and console)\n"
		"  --progress       print progress of long transfers on stderr\n"
		"  -h, --help       this text\n"
		"\n"
		"sizes take K, M, G suffixes (powers of 1024).\n");
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

struct io_ctx {
	struct vshm_drv *d;
	int dev;
	int progress;
	int timeout_ms;
	int req_timeout_ms;	/* 0: the drivers' default */
};

static void show_progress(const struct io_ctx *c, const char *what, uint64_t done, uint64_t total, double t0)
{
	double dt = now_s() - t0;

	if (!c->progress)
		return;
	fprintf(stderr, "\r%s %3.0f%%  %llu/%llu MiB  %.1f MiB/s", what,
		total ? 100.0 * (double)done / (double)total : 100.0,
		(unsigned long long)(done >> 20), (unsigned long long)(total >> 20),
		dt > 0 ? (double)done / dt / 1048576.0 : 0.0);
	if (done >= total)
		fputc('\n', stderr);
}

/* Why vshm_drv_find() found no @kind device, in one line. */
static void no_device(int err, const char *kind, const char *spec)
{
	if (err == -ENODEV)
		fprintf(stderr, "vshm io: no %s device on this bus (serve one: vshm serve ... %s)\n", kind, spec);
	else
		fprintf(stderr, "vshm io: cannot look for a %s device: the device side failed to answer (%s)\n",
			kind, strerror(-err));
}

static int open_blk(struct io_ctx *c, struct vshm_blkdrv **b, uint32_t depth)
{
	int dev = c->dev >= 0 ? c->dev : vshm_drv_find(c->d, VSHM_VIRTIO_ID_BLOCK);
	int rc;

	if (dev < 0) {
		no_device(dev, "blk", "blk:IMAGE");
		return 1;
	}
	rc = vshm_blkdrv_open(c->d, (uint16_t)dev, depth, b);
	if (rc) {
		fprintf(stderr, "vshm io: cannot open blk device %d: %s\n", dev, strerror(-rc));
		return 1;
	}
	if (c->req_timeout_ms)
		vshm_blkdrv_set_timeout(*b, (int64_t)c->req_timeout_ms * 1000000);
	return 0;
}

static int parse_u64(const char *s, uint64_t *v)
{
	return vshm_parse_size(s, v);
}

static int cmd_info(struct io_ctx *c)
{
	uint16_t nums[64];
	int n = vshm_drv_get_devices(c->d, nums, 64);
	static const char *names[] = { "?", "net", "blk", "console", "rng" };

	if (n < 0) {
		fprintf(stderr, "vshm io: GET_DEVICES failed: %s\n", strerror(-n));
		return 1;
	}
	for (int i = 0; i < n; i++) {
		struct vshm_msg req, resp;

		vshm_msg_init_req(&req, VSHM_MSG_GET_DEVICE_INFO, nums[i]);
		if (vshm_drv_call(c->d, &req, &resp)) {
			printf("device %u: no answer\n", nums[i]);
			continue;
		}
		printf("device %u: %s (virtio id %u), %u queue%s, %u bytes of config\n", nums[i],
		       resp.u.dev_info.device_id < 5 ? names[resp.u.dev_info.device_id] : "?",
		       resp.u.dev_info.device_id, resp.u.dev_info.max_virtqueues,
		       resp.u.dev_info.max_virtqueues == 1 ? "" : "s", resp.u.dev_info.config_size);
		if (resp.u.dev_info.device_id == VSHM_VIRTIO_ID_BLOCK) {
			struct vshm_blkdrv *b;
			struct vshm_blkdrv_info bi;
			char id[21];

			if (vshm_blkdrv_open(c->d, nums[i], 8, &b) == 0) {
				vshm_blkdrv_info(b, &bi);
				vshm_blkdrv_get_id(b, id);
				printf("  %llu sectors (%llu MiB)%s, serial '%s', seg_max %u, flush %s, discard %s\n",
				       (unsigned long long)bi.capacity, (unsigned long long)(bi.capacity >> 11),
				       bi.read_only ? ", read-only" : "", id, bi.seg_max,
				       bi.flush ? "yes" : "no", bi.discard ? "yes" : "no");
				vshm_blkdrv_close(b);
			}
		}
	}
	return 0;
}

/* Copy a file to (write) or compare it with (verify) the disk. */
static int cmd_file(struct io_ctx *c, const char *path, uint64_t off, int verify)
{
	struct vshm_blkdrv *b;
	struct vshm_blkdrv_info bi;
	struct stat st;
	uint8_t *buf = NULL, *disk = NULL;
	uint64_t done = 0, size;
	double t0 = now_s();
	int fd, rc = 1;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		fprintf(stderr, "vshm io: cannot open %s: %s\n", path, strerror(errno));
		return 1;
	}
	size = (uint64_t)st.st_size;
	if (off % VSHM_BLK_SECTOR) {
		fprintf(stderr, "vshm io: offset %llu is not a multiple of 512\n", (unsigned long long)off);
		close(fd);
		return 2;
	}
	if (open_blk(c, &b, 64)) {
		close(fd);
		return 1;
	}
	t0 = now_s();
	vshm_blkdrv_info(b, &bi);
	if (off + size > bi.capacity * VSHM_BLK_SECTOR) {
		fprintf(stderr, "vshm io: %s (%llu bytes) does not fit on the disk at offset %llu (disk: %llu bytes)\n",
			path, (unsigned long long)size, (unsigned long long)off,
			(unsigned long long)(bi.capacity * VSHM_BLK_SECTOR));
		goto out;
	}
	buf = malloc(CHUNK);
	disk = malloc(CHUNK);
	if (!buf || !disk)
		goto out;
	while (done < size) {
		size_t n = size - done < CHUNK ? (size_t)(size - done) : CHUNK;
		size_t io = (n + VSHM_BLK_SECTOR - 1) / VSHM_BLK_SECTOR * VSHM_BLK_SECTOR;
		ssize_t got = pread(fd, buf, n, (off_t)done);

		if (got != (ssize_t)n) {
			fprintf(stderr, "vshm io: short read from %s\n", path);
			goto out;
		}
		if (io != n) {
			/* A partial last sector: keep what the disk already has. */
			int e = vshm_blkdrv_read(b, (off + done) / VSHM_BLK_SECTOR, disk, io);

			if (e) {
				fprintf(stderr, "vshm io: read failed at %llu: %s\n",
					(unsigned long long)(off + done), strerror(-e));
				goto out;
			}
			memcpy(disk, buf, n);
			memcpy(buf, disk, io);
		}
		if (verify) {
			int e = vshm_blkdrv_read(b, (off + done) / VSHM_BLK_SECTOR, disk, io);

			if (e) {
				fprintf(stderr, "vshm io: read failed at %llu: %s\n",
					(unsigned long long)(off + done), strerror(-e));
				goto out;
			}
			if (memcmp(disk, buf, n)) {
				size_t k = 0;

				while (disk[k] == buf[k])
					k++;
				fprintf(stderr, "vshm io: MISMATCH at byte %llu of %s\n",
					(unsigned long long)(done + k), path);
				goto out;
			}
		} else {
			int e = vshm_blkdrv_write(b, (off + done) / VSHM_BLK_SECTOR, buf, io);

			if (e) {
				fprintf(stderr, "vshm io: write failed at %llu: %s\n",
					(unsigned long long)(off + done), strerror(-e));
				goto out;
			}
		}
		done += n;
		show_progress(c, verify ? "verify" : "write", done, size, t0);
	}
	if (!verify && bi.flush && vshm_blkdrv_flush(b)) {
		fprintf(stderr, "vshm io: flush failed\n");
		goto out;
	}
	printf("%s %llu bytes %s disk at offset %llu: %.1f MiB/s\n", verify ? "verified" : "wrote",
	       (unsigned long long)size, verify ? "against the" : "to the", (unsigned long long)off,
	       (double)size / 1048576.0 / (now_s() - t0 > 0 ? now_s() - t0 : 1e-9));
	rc = 0;
out:
	free(buf);
	free(disk);
	close(fd);
	vshm_blkdrv_close(b);
	return rc;
}

static int cmd_read(struct io_ctx *c, uint64_t len, const char *out, uint64_t off)
{
	struct vshm_blkdrv *b;
	uint8_t *buf;
	uint64_t done = 0;
	double t0 = now_s();
	int fd, rc = 1;

	if (off % VSHM_BLK_SECTOR || len % VSHM_BLK_SECTOR) {
		fprintf(stderr, "vshm io: offset and length must be multiples of 512\n");
		return 2;
	}
	fd = strcmp(out, "-") ? open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : STDOUT_FILENO;
	if (fd < 0) {
		fprintf(stderr, "vshm io: cannot create %s: %s\n", out, strerror(errno));
		return 1;
	}
	if (open_blk(c, &b, 64))
		goto out_fd;
	t0 = now_s();
	buf = malloc(CHUNK);
	while (buf && done < len) {
		size_t n = len - done < CHUNK ? (size_t)(len - done) : CHUNK;
		int e = vshm_blkdrv_read(b, (off + done) / VSHM_BLK_SECTOR, buf, n);

		if (e) {
			fprintf(stderr, "vshm io: read failed at %llu: %s\n",
				(unsigned long long)(off + done), strerror(-e));
			goto out;
		}
		if (write(fd, buf, n) != (ssize_t)n) {
			fprintf(stderr, "vshm io: cannot write %s: %s\n", out, strerror(errno));
			goto out;
		}
		done += n;
		show_progress(c, "read", done, len, t0);
	}
	rc = buf ? 0 : 1;
out:
	free(buf);
	vshm_blkdrv_close(b);
out_fd:
	if (fd != STDOUT_FILENO)
		close(fd);
	return rc;
}

/* ---- stress: random async I/O checked against an in-memory model -------- */

struct st_req {
	int busy;
	int write;
	uint64_t sector;
	size_t len;
	uint8_t *buf;
	struct stress *s;
};

struct stress {
	uint8_t *model;		/* what the disk must contain */
	uint8_t *pending;	/* 1 per sector with any I/O in flight */
	uint64_t bytes_done, mismatches, errors, ops;
};

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void stress_cb(void *arg, int status)
{
	struct st_req *r = arg;
	struct stress *s = r->s;

	r->busy = 0;
	s->ops++;
	memset(s->pending + r->sector, 0, r->len / VSHM_BLK_SECTOR);
	if (status) {
		s->errors++;
		return;
	}
	if (!r->write && memcmp(r->buf, s->model + r->sector * VSHM_BLK_SECTOR, r->len))
		s->mismatches++;
	s->bytes_done += r->len;
}

static int cmd_stress(struct io_ctx *c, uint64_t total, unsigned qd, uint64_t seed)
{
	struct vshm_blkdrv *b;
	struct vshm_blkdrv_info bi;
	struct stress s = { 0 };
	struct st_req *reqs;
	uint64_t cap, submitted = 0, x = seed ? seed : 0x9e3779b97f4a7c15ull;
	double t0;
	int rc = 1;

	if (open_blk(c, &b, qd))
		return 1;
	vshm_blkdrv_info(b, &bi);
	cap = bi.capacity * VSHM_BLK_SECTOR;
	s.model = malloc(cap);
	s.pending = calloc(bi.capacity, 1);
	reqs = calloc(qd, sizeof(*reqs));
	if (!s.model || !s.pending || !reqs) {
		fprintf(stderr, "vshm io: stress needs %llu MiB of memory for its model of the disk\n",
			(unsigned long long)(cap >> 20));
		goto out;
	}
	/* The model starts as the disk is. */
	for (uint64_t o = 0; o < cap; o += CHUNK) {
		size_t n = cap - o < CHUNK ? (size_t)(cap - o) : CHUNK;

		int e = vshm_blkdrv_read(b, o / VSHM_BLK_SECTOR, s.model + o, n);

		if (e) {
			fprintf(stderr, "vshm io: initial read failed: %s\n", strerror(-e));
			goto out;
		}
	}
	for (unsigned i = 0; i < qd; i++) {
		reqs[i].s = &s;
		reqs[i].buf = aligned_alloc(4096, 256u << 10);
		if (!reqs[i].buf)
			goto out;
	}
	t0 = now_s();
	while (s.bytes_done < total || vshm_blkdrv_inflight(b)) {
		for (unsigned i = 0; i < qd && submitted < total; i++) {
			struct st_req *r = &reqs[i];
			uint64_t nsec, sec, k;
			int e, clash = 0;

			if (r->busy)
				continue;
			nsec = 1 + xorshift(&x) % ((xorshift(&x) & 3) ? 8 : 512);
			if (nsec > bi.capacity)
				nsec = bi.capacity;
			sec = xorshift(&x) % (bi.capacity - nsec + 1);
			/* Keep overlapping I/O out: the model has one truth per sector. */
			for (k = 0; k < nsec; k++)
				if (s.pending[sec + k]) {
					clash = 1;
					break;
				}
			if (clash)
				continue;
			r->write = (int)(xorshift(&x) & 1);
			r->sector = sec;
			r->len = nsec * VSHM_BLK_SECTOR;
			if (r->write)
				for (size_t j = 0; j < r->len; j += 8) {
					uint64_t v = xorshift(&x);
					memcpy(r->buf + j, &v, 8);
				}
			e = vshm_blkdrv_submit(b, r->write ? VSHM_BLK_OP_WRITE : VSHM_BLK_OP_READ,
					       sec, r->buf, r->len, stress_cb, r);
			if (e == -EAGAIN)
				break;
			if (e) {
				fprintf(stderr, "vshm io: submit failed: %s\n", strerror(-e));
				goto out;
			}
			/* Callbacks run only from wait/poll: updating the model now is safe. */
			if (r->write)
				memcpy(s.model + sec * VSHM_BLK_SECTOR, r->buf, r->len);
			memset(s.pending + sec, 1, nsec);
			r->busy = 1;
			submitted += r->len;
		}
		int w = vshm_blkdrv_wait(b, 2000000000ll);

		if (w < 0) {
			fprintf(stderr, "vshm io: %s\n", w == -ETIMEDOUT ?
				"the device kept a request past --req-timeout; giving up on it" :
				"the device went away");
			goto out;
		}
		show_progress(c, "stress", s.bytes_done < total ? s.bytes_done : total, total, t0);
	}
	if (bi.flush)
		vshm_blkdrv_flush(b);
	/* Finally the whole disk must equal the model. */
	{
		uint8_t *chunk = malloc(CHUNK);

		for (uint64_t o = 0; chunk && o < cap; o += CHUNK) {
			size_t n = cap - o < CHUNK ? (size_t)(cap - o) : CHUNK;

			if (vshm_blkdrv_read(b, o / VSHM_BLK_SECTOR, chunk, n) ||
			    memcmp(chunk, s.model + o, n))
				s.mismatches++;
		}
		free(chunk);
	}
	printf("stress: %llu ops, %llu MiB at queue depth %u in %.2f s (%.0f IOPS, %.1f MiB/s); "
	       "%llu errors, %llu mismatches\n",
	       (unsigned long long)s.ops, (unsigned long long)(s.bytes_done >> 20), qd, now_s() - t0,
	       (double)s.ops / (now_s() - t0), (double)s.bytes_done / 1048576.0 / (now_s() - t0),
	       (unsigned long long)s.errors, (unsigned long long)s.mismatches);
	rc = s.errors || s.mismatches;
out:
	if (reqs)
		for (unsigned i = 0; i < qd; i++)
			free(reqs[i].buf);
	free(reqs);
	free(s.model);
	free(s.pending);
	vshm_blkdrv_close(b);
	return rc;
}

static int cmd_rng(struct io_ctx *c, uint64_t len, const char *out)
{
	struct vshm_rngdrv *r;
	int dev = c->dev >= 0 ? c->dev : vshm_drv_find(c->d, VSHM_VIRTIO_ID_RNG);
	uint8_t *buf;
	int rc;

	if (dev < 0) {
		no_device(dev, "rng", "rng");
		return 1;
	}
	if ((rc = vshm_rngdrv_open(c->d, (uint16_t)dev, &r))) {
		fprintf(stderr, "vshm io: cannot open rng device %d: %s\n", dev, strerror(-rc));
		return 1;
	}
	if (c->req_timeout_ms)
		vshm_rngdrv_set_timeout(r, (int64_t)c->req_timeout_ms * 1000000);
	buf = malloc(len ? len : 1);
	rc = buf ? vshm_rngdrv_read(r, buf, len) : -ENOMEM;
	if (rc) {
		fprintf(stderr, "vshm io: rng read failed: %s\n", strerror(-rc));
	} else if (out) {
		FILE *f = fopen(out, "wb");

		if (!f || fwrite(buf, 1, len, f) != len) {
			fprintf(stderr, "vshm io: cannot write %s\n", out);
			rc = 1;
		}
		if (f)
			fclose(f);
	} else {
		for (uint64_t i = 0; i < len; i++)
			printf("%02x%s", buf[i], (i + 1) % 32 == 0 || i + 1 == len ? "\n" : "");
	}
	free(buf);
	vshm_rngdrv_close(r);
	return rc ? 1 : 0;
}

static int cmd_console(struct io_ctx *c, const char *text)
{
	struct vshm_condrv *con;
	int dev = c->dev >= 0 ? c->dev : vshm_drv_find(c->d, VSHM_VIRTIO_ID_CONSOLE);
	char buf[4096];
	long n;
	int rc;

	if (dev < 0) {
		no_device(dev, "console", "console");
		return 1;
	}
	if ((rc = vshm_condrv_open(c->d, (uint16_t)dev, &con))) {
		fprintf(stderr, "vshm io: cannot open console device %d: %s\n", dev, strerror(-rc));
		return 1;
	}
	if (c->req_timeout_ms)
		vshm_condrv_set_timeout(con, (int64_t)c->req_timeout_ms * 1000000);
	if (text) {
		rc = vshm_condrv_write(con, text, strlen(text));
		if (!rc)
			rc = vshm_condrv_write(con, "\n", 1);
		if (rc) {
			fprintf(stderr, "vshm io: console write failed: %s\n", strerror(-rc));
			vshm_condrv_close(con);
			return 1;
		}
	}
	while ((n = vshm_condrv_read(con, buf, sizeof(buf), (int64_t)c->timeout_ms * 1000000)) > 0) {
		fwrite(buf, 1, (size_t)n, stdout);
		fflush(stdout);
	}
	vshm_condrv_close(con);
	if (n < 0) {
		fprintf(stderr, "vshm io: the console went away\n");
		return 1;
	}
	return 0;
}

int vshm_cmd_io(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "hub", required_argument, NULL, 'H' },
		{ "dev", required_argument, NULL, 'd' },
		{ "timeout", required_argument, NULL, 't' },
		{ "req-timeout", required_argument, NULL, 'T' },
		{ "progress", no_argument, NULL, 'P' },
		{ "ring", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct io_ctx c = { .dev = -1, .timeout_ms = 1000 };
	struct vshm_drv_opts dopts = { 0 };
	char hubpath[256], err[512];
	const char *hub = NULL, *cmd;
	uint64_t a = 0, b = 0, s = 0;
	int opt, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (opt) {
		case 'H':
			hub = optarg;
			break;
		case 'd':
			c.dev = atoi(optarg);
			break;
		case 't':
			c.timeout_ms = atoi(optarg);
			break;
		case 'T': {
			long v;

			if (cmd_number("io", "req-timeout", optarg, 1, 3600000, &v))
				return 2;
			c.req_timeout_ms = (int)v;
			break;
		}
		case 'P':
			c.progress = 1;
			break;
		case 'R':
			dopts.ring = vshm_ring_parse(optarg);
			if (dopts.ring < 0) {
				fprintf(stderr, "vshm io: bad --ring '%s': expected split, packed or fifo\n", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind++];
	argc -= optind;
	argv += optind;
#define NEED(n) do { if (argc < (n)) { fprintf(stderr, "vshm io %s: missing arguments (see vshm io --help)\n", cmd); return 2; } } while (0)
#define SIZE(str, var) do { if (parse_u64((str), &(var))) { fprintf(stderr, "vshm io: bad size '%s' (e.g. 4096, 64K, 1M)\n", (str)); return 2; } } while (0)
	if (!strcmp(cmd, "write") || !strcmp(cmd, "verify")) {
		NEED(1);
		if (argc > 1)
			SIZE(argv[1], a);
	} else if (!strcmp(cmd, "read")) {
		NEED(2);
		SIZE(argv[0], a);
		if (argc > 2)
			SIZE(argv[2], b);
	} else if (!strcmp(cmd, "discard")) {
		NEED(2);
		SIZE(argv[0], a);
		SIZE(argv[1], b);
	} else if (!strcmp(cmd, "stress")) {
		NEED(1);
		SIZE(argv[0], a);
		b = argc > 1 ? strtoull(argv[1], NULL, 10) : 32;
		s = argc > 2 ? strtoull(argv[2], NULL, 0) : 0;
		if (b < 1 || b > 1024) {
			fprintf(stderr, "vshm io: queue depth must be 1..1024\n");
			return 2;
		}
	} else if (!strcmp(cmd, "rng")) {
		NEED(1);
		SIZE(argv[0], a);
	} else if (strcmp(cmd, "info") && strcmp(cmd, "flush") && strcmp(cmd, "console")) {
		fprintf(stderr, "vshm io: unknown command '%s' (see vshm io --help)\n", cmd);
		return 2;
	}
	if (!hub) {
		if (vshm_hub_default_path(hubpath, sizeof(hubpath)) < 0) {
			fprintf(stderr, "vshm io: no --hub given and no default path\n");
			return 2;
		}
		hub = hubpath;
	}
	rc = vshm_drv_attach(hub, &dopts, &c.d, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "vshm io: %s\n", err);
		return 1;
	}
	if (!strcmp(cmd, "info"))
		rc = cmd_info(&c);
	else if (!strcmp(cmd, "write"))
		rc = cmd_file(&c, argv[0], a, 0);
	else if (!strcmp(cmd, "verify"))
		rc = cmd_file(&c, argv[0], a, 1);
	else if (!strcmp(cmd, "read"))
		rc = cmd_read(&c, a, argv[1], b);
	else if (!strcmp(cmd, "stress"))
		rc = cmd_stress(&c, a, (unsigned)b, s);
	else if (!strcmp(cmd, "rng"))
		rc = cmd_rng(&c, a, argc > 1 ? argv[1] : NULL);
	else if (!strcmp(cmd, "console"))
		rc = cmd_console(&c, argc > 0 ? argv[0] : NULL);
	else {
		struct vshm_blkdrv *bd;

		rc = open_blk(&c, &bd, 8);
		if (!rc) {
			int e = !strcmp(cmd, "flush") ? vshm_blkdrv_flush(bd)
				: (a % 512 || b % 512) ? -EINVAL
				: vshm_blkdrv_discard(bd, a / 512, (uint32_t)(b / 512));

			if (e)
				fprintf(stderr, "vshm io: %s failed: %s\n", cmd, strerror(-e));
			rc = e ? 1 : 0;
			vshm_blkdrv_close(bd);
		}
	}
	vshm_drv_destroy(c.d);
	return rc;
}
