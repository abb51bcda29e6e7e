/* SPDX-License-Identifier: MIT */
/*
 * Benchmark helpers: pinned threads, a monotonic clock, medians, and one
 * way to report a figure (a table row on stdout, a "key": value line for
 * the JSON object that scripts/run-bench.sh assembles).
 *
 * Every ratio is computed from a baseline measured in the same process
 * run, interleaved with the subject, because these machines are shared.
 */
#ifndef VSHM_BENCH_H
#define VSHM_BENCH_H

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t bench_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline int bench_pin(int cpu)
{
	cpu_set_t set;
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		n = 1;
	CPU_ZERO(&set);
	CPU_SET(cpu % n, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static inline double bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static FILE *bench_json_fp;

static inline void bench_json_open(void)
{
	const char *p = getenv("BENCH_JSON_PART");

	if (p && *p)
		bench_json_fp = fopen(p, "a");
}

/* A figure: printed as a row, and written as "key": value for the JSON. */
static inline void bench_report(const char *key, double value, const char *unit,
				const char *what)
{
	printf("  %-34s %14.3f %-8s %s\n", key, value, unit, what);
	fflush(stdout);
	if (bench_json_fp) {
		fprintf(bench_json_fp, "\"%s\": %.6g\n", key, value);
		fflush(bench_json_fp);
	}
}

static inline void bench_target(const char *key, double value, const char *op, double target)
{
	int met = op[0] == '<' ? value <= target : value >= target;

	printf("  %-34s %14.3f %-8s target %s %.2f: %s\n", key, value, "ratio", op, target,
	       met ? "met" : "NOT MET");
	fflush(stdout);
	if (bench_json_fp) {
		fprintf(bench_json_fp, "\"%s\": %.6g\n", key, value);
		fflush(bench_json_fp);
	}
}

#endif
