// SPDX-License-Identifier: MIT
/*
 * A driver for the crash tests.
 *
 *   tool_ackwriter write HUB LOG [QD [RUN]]  write 4 KiB blocks 0, 1, 2 ... (each
 *        per pass, with a pattern naming the block and the pass), QD at a
 *        time, with a flush every 64 blocks, appending "block pass\n" to LOG
 *        as soon as a write is acknowledged.  Runs until killed or failed.
 *   tool_ackwriter survive HUB LOG [QD] the same with recovery on: when the
 *        device process dies, wait for the next one, re-attach and resubmit;
 *        on SIGTERM drain, flush, print "stats: ..." and exit 0 if no request
 *        failed.
 *   tool_ackwriter check HUB LOG        every block in LOG must hold the
 *        pattern of its last logged run, or of a later run (a write in
 *        flight when its writer died; run numbers only grow): prints "checked N
 *        acknowledged blocks, M lost" and exits 1 if any is lost.
 *   tool_ackwriter poke-abi HUB MAJOR   overwrite the window's ABI major
 *        (to test that peers refuse a foreign window).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <vshm/vshm.h>

#define BLK 4096u

static void pattern(uint8_t *buf, uint64_t block, uint64_t run)
{
	for (unsigned i = 0; i < BLK; i += 16) {
		memcpy(buf + i, &block, 8);
		memcpy(buf + i + 8, &run, 8);
	}
}

static int logfd = -1;
static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

struct slot {
	int busy;
	uint64_t run;
	uint64_t block;
	uint8_t *buf;
	int *acked;
	int *failed;
};

static void done_cb(void *arg, int status)
{
	struct slot *s = arg;

	s->busy = 0;
	if (status) {
		(*s->failed)++;
	} else {
		char line[64];
		int n = snprintf(line, sizeof(line), "%llu %llu\n",
				 (unsigned long long)s->block, (unsigned long long)s->run);

		(*s->acked)++;
		if (write(logfd, line, (size_t)n) != n)
			(*s->failed)++;
	}
}

static void free_slots(struct slot *slots, unsigned qd)
{
	for (unsigned i = 0; slots && i < qd; i++)
		free(slots[i].buf);
	free(slots);
}

static int do_write(struct vshm_drv *d, const char *logpath, unsigned qd, int survive,
		    uint64_t run0)
{
	struct vshm_blkdrv *b;
	struct vshm_blkdrv_info bi;
	struct slot *slots = calloc(qd, sizeof(*slots));
	uint64_t next = 0, run = run0, nblocks, since_flush = 0;
	int acked = 0, failed = 0, rc = 0;
	int dev = vshm_drv_find(d, VSHM_VIRTIO_ID_BLOCK);

	if (dev < 0 || vshm_blkdrv_open(d, (uint16_t)dev, qd, &b)) {
		fprintf(stderr, "ackwriter: no blk device\n");
		return 1;
	}
	logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (logfd < 0 || !slots)
		return 1;
	vshm_blkdrv_info(b, &bi);
	nblocks = bi.capacity * 512 / BLK;
	if (survive) {
		vshm_blkdrv_set_recovery(b, 20000000000ll);
		signal(SIGTERM, on_term);
	}
	for (unsigned i = 0; i < qd; i++) {
		slots[i].buf = aligned_alloc(4096, BLK);
		slots[i].acked = &acked;
		slots[i].failed = &failed;
	}
	while (!stop) {
		for (unsigned i = 0; i < qd && next < nblocks && !stop; i++) {
			if (slots[i].busy)
				continue;
			pattern(slots[i].buf, next, run);
			slots[i].block = next;
			slots[i].run = run;
			rc = vshm_blkdrv_submit(b, VSHM_BLK_OP_WRITE, next * (BLK / 512), slots[i].buf,
						BLK, done_cb, &slots[i]);
			if (rc == -EAGAIN) {
				rc = 0;
				break;
			}
			if (rc)
				goto out;
			slots[i].busy = 1;
			next++;
			since_flush++;
		}
		if ((rc = vshm_blkdrv_wait(b, 1000000000ll)) < 0 || failed)
			goto out;
		if (since_flush >= 64 && (rc = vshm_blkdrv_flush(b)))
			goto out;
		if (since_flush >= 64)
			since_flush = 0;
		if (next >= nblocks && vshm_blkdrv_inflight(b) == 0) {
			next = 0;	/* a new pass over the disk */
			run++;
		}
	}
	/* SIGTERM: drain what is in flight, make it durable, report. */
	while (vshm_blkdrv_inflight(b))
		if ((rc = vshm_blkdrv_wait(b, 1000000000ll)) < 0)
			goto out;
	rc = vshm_blkdrv_flush(b);
	{
		struct vshm_blkdrv_stats st;

		vshm_blkdrv_get_stats(b, &st);
		printf("stats: %d acknowledged, %llu submitted, %llu retried, %llu failed, %llu recoveries, "
		       "%llu sessions, flush %s\n", acked, (unsigned long long)st.submitted,
		       (unsigned long long)st.retried, (unsigned long long)st.failed,
		       (unsigned long long)st.recoveries, (unsigned long long)vshm_drv_sessions(d),
		       rc ? "failed" : "ok");
		vshm_blkdrv_close(b);
		close(logfd);
		free_slots(slots, qd);
		return rc || failed || st.failed;
	}
out:
	{
		struct vshm_blkdrv_stats st;

		vshm_blkdrv_get_stats(b, &st);
		fprintf(stderr, "ackwriter: stopped by %s after %d acknowledged writes; %d failed explicitly"
			" (%llu recoveries, last recovery error: %s)\n",
			rc < 0 ? strerror(-rc) : "a failed write", acked, failed,
			(unsigned long long)st.recoveries, st.last_error ? strerror(-st.last_error) : "none");
	}
	vshm_blkdrv_close(b);
	close(logfd);
	free_slots(slots, qd);
	return 1;
}

static int do_check(struct vshm_drv *d, const char *logpath)
{
	struct vshm_blkdrv *b;
	uint8_t buf[BLK], want[BLK];
	unsigned long long block, run;
	unsigned long checked = 0, lost = 0;
	int dev = vshm_drv_find(d, VSHM_VIRTIO_ID_BLOCK);
	FILE *f;

	if (dev < 0 || vshm_blkdrv_open(d, (uint16_t)dev, 8, &b)) {
		fprintf(stderr, "ackwriter: no blk device\n");
		return 1;
	}
	f = fopen(logpath, "r");
	if (!f) {
		fprintf(stderr, "ackwriter: no log %s\n", logpath);
		return 1;
	}
	/* Later runs overwrite earlier ones: only the last run of a block counts. */
	{
		struct vshm_blkdrv_info bi;
		uint64_t n, *last;

		vshm_blkdrv_info(b, &bi);
		n = bi.capacity * 512 / BLK;
		last = calloc(n, sizeof(*last));
		while (fscanf(f, "%llu %llu", &block, &run) == 2)
			if (block < n)
				last[block] = run;
		for (uint64_t k = 0; k < n; k++) {
			if (!last[k])
				continue;
			if (vshm_blkdrv_read(b, k * (BLK / 512), buf, BLK)) {
				lost++;
				continue;
			}
			/*
			 * The block must hold a whole pattern for this block from the
			 * last acknowledged run, or from a later run whose write was in
			 * flight when its writer died (runs only grow).
			 */
			{
				uint64_t got_block, got_run;

				memcpy(&got_block, buf, 8);
				memcpy(&got_run, buf + 8, 8);
				pattern(want, k, got_run);
				if (got_block != k || got_run < last[k] || memcmp(buf, want, BLK))
					lost++;
			}
			checked++;
		}
		free(last);
	}
	fclose(f);
	printf("checked %lu acknowledged blocks, %lu lost\n", checked, lost);
	vshm_blkdrv_close(b);
	return lost || !checked;
}

static int do_poke(const char *hub, int major)
{
	struct vshm_hub_client c;
	char err[256];
	void *p;

	if (vshm_hub_connect(&c, hub, 2000, err, sizeof(err))) {
		fprintf(stderr, "ackwriter: %s\n", err);
		return 1;
	}
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, c.shm_fd, 0);
	if (p == MAP_FAILED)
		return 1;
	((struct vshm_win_hdr *)p)->abi_major = (uint16_t)major;
	munmap(p, 4096);
	vshm_hub_client_close(&c);
	return 0;
}

int main(int argc, char **argv)
{
	struct vshm_drv *d;
	struct vshm_drv_opts o = { .call_timeout_ns = 2000000000ll };
	char err[512];
	int rc;

	if (argc < 4) {
		fprintf(stderr, "usage: tool_ackwriter write|survive|check|poke-abi HUB ARG [QD]\n");
		return 2;
	}
	if (!strcmp(argv[1], "poke-abi"))
		return do_poke(argv[2], atoi(argv[3]));
	rc = vshm_drv_attach(argv[2], &o, &d, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "ackwriter: %s\n", err);
		return 1;
	}
	if (!strcmp(argv[1], "write") || !strcmp(argv[1], "survive"))
		rc = do_write(d, argv[3], argc > 4 ? (unsigned)atoi(argv[4]) : 32,
			      !strcmp(argv[1], "survive"), argc > 5 ? strtoull(argv[5], NULL, 10) : 1);
	else
		rc = do_check(d, argv[3]);
	vshm_drv_destroy(d);
	return rc;
}
