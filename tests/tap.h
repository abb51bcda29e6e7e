/* SPDX-License-Identifier: MIT */
/*
 * A tiny TAP producer.  Each test program prints "ok N - what" or
 * "not ok N - what" per check and "1..N" at the end; exit status is 0 when
 * every check passed, 1 otherwise, 77 when the whole program is skipped.
 */
#ifndef VSHM_TAP_H
#define VSHM_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static unsigned tap_n, tap_fail;

__attribute__((format(printf, 2, 3)))
static inline int tap_ok(int cond, const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	if (!cond)
		tap_fail++;
	printf("%sok %u - ", cond ? "" : "not ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	return cond;
}

#define ok(cond, ...) tap_ok(!!(cond), __VA_ARGS__)

/* Compare two integers and print both on failure. */
#define is(got, want, ...) do {						\
	long long _g = (long long)(got), _w = (long long)(want);		\
	if (!ok(_g == _w, __VA_ARGS__))					\
		printf("#   got %lld, want %lld\n", _g, _w);		\
} while (0)

__attribute__((format(printf, 1, 2)))
static inline void diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static inline int tap_done(void)
{
	printf("1..%u\n", tap_n);
	fflush(stdout);
	return tap_fail ? 1 : 0;
}

static inline void tap_skip_all(const char *why)
{
	printf("1..0 # SKIP %s\n", why);
	fflush(stdout);
	exit(77);
}

/* Scale a loop count down under sanitizers that slow code by 10x or more. */
static inline unsigned long tap_scale(unsigned long n)
{
	const char *s = getenv("VSHM_TEST_SCALE");

	if (s && *s)
		return n * strtoul(s, NULL, 10) / 100 ? n * strtoul(s, NULL, 10) / 100 : 1;
	return n;
}

#endif
