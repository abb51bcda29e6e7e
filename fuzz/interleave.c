// SPDX-License-Identifier: MIT
/*
 * The interleaving harness (interleave.h says what it does).  Fuzz targets
 * #include this file; tests/test_double_fetch.c does too, with VSHM_FUZZ
 * defined for its own translation unit only.
 *
 * Per byte of the watched range we keep the request that last loaded it
 * (a generation number, so starting a request is O(1)) and the load that
 * did (offset and size, for the report).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "barrier.h"
#include "interleave.h"

#ifndef VSHM_FUZZ
#error "interleave.c needs the load hook: build with -DVSHM_FUZZ"
#endif

static struct {
	uint8_t *base;		/* watched range */
	size_t size;
	size_t cap;		/* bytes the per-byte arrays hold */
	uint32_t *gen;		/* per byte: request that loaded it */
	uint32_t *from;		/* per byte: offset of that load */
	uint8_t *from_size;	/*           and its size */
	uint32_t cur;		/* current request; 0 = none running */
	uint32_t next;		/* last generation handed out */
	const char *what;	/* current request's name */

	const uint8_t *script;
	size_t script_len;
	size_t pos;		/* next record */
	bool armed;		/* a record is loaded: */
	unsigned skip;		/*   loads still to let pass */
	uint8_t mode;
	uint8_t value[8];

	interleave_report_fn report;
	void *report_ctx;
	struct interleave_stats st;
} il;

static void default_report(const struct interleave_report *r, void *ctx)
{
	(void)ctx;
	fprintf(stderr, "interleave: double fetch in %s: %zu bytes at offset %#zx, "
		"already loaded as %zu bytes at offset %#zx in this request\n",
		r->what, r->size, r->off, r->first_size, r->first_off);
	__builtin_trap();
}

/* Load the next script record, if any. */
static void next_record(void)
{
	const uint8_t *r;

	il.armed = false;
	if (!il.script || il.script_len - il.pos < INTERLEAVE_REC)
		return;
	r = il.script + il.pos;
	il.pos += INTERLEAVE_REC;
	il.skip = r[0];
	il.mode = r[1];
	memcpy(il.value, r + 2, sizeof(il.value));
	il.armed = true;
}

/* The peer writes, just before the load at [off, off + size) reads. */
static void rewrite(size_t off, size_t size)
{
	uint8_t *p = il.base + off;
	unsigned carry = 0;
	size_t k;

	switch (il.mode & 3) {
	case 0:
		for (k = 0; k < size; k++)
			p[k] = k < 8 ? il.value[k] : 0;
		break;
	case 1:
		for (k = 0; k < size && k < 8; k++)
			p[k] ^= il.value[k];
		break;
	case 2:
		for (k = 0; k < size; k++) {
			carry += p[k] + (k < 8 ? il.value[k] : 0);
			p[k] = (uint8_t)carry;
			carry >>= 8;
		}
		break;
	case 3: {
		uint32_t at;

		if (il.size < 4)
			break;
		memcpy(&at, il.value, 4);
		at = (uint32_t)((at % (il.size - 3)) & ~3u);
		memcpy(il.base + at, il.value + 4, 4);
		break;
	}
	}
	il.st.rewrites++;
}

/* noinline: the return address is the load's call site. */
static __attribute__((noinline)) void hook(const void *addr, size_t size)
{
	const uint8_t *p = addr;
	size_t off, k;

	if (!il.cur || p < il.base || size > il.size || (size_t)(p - il.base) > il.size - size)
		return;
	off = (size_t)(p - il.base);
	il.st.loads++;
	for (k = off; k < off + size; k++) {
		if (il.gen[k] == il.cur) {
			struct interleave_report r = {
				.what = il.what, .off = off, .size = size,
				.first_off = il.from[k], .first_size = il.from_size[k],
				.site = __builtin_return_address(0),
			};

			il.st.double_fetches++;
			il.report(&r, il.report_ctx);
			break;
		}
	}
	for (k = off; k < off + size; k++) {
		il.gen[k] = il.cur;
		il.from[k] = (uint32_t)off;
		il.from_size[k] = (uint8_t)size;
	}
	if (il.armed) {
		if (il.skip) {
			il.skip--;
		} else {
			rewrite(off, size);
			next_record();
		}
	}
}

int interleave_window(void *base, size_t size)
{
	if (size > UINT32_MAX)
		return -EINVAL;
	if (size > il.cap) {
		/* Generations keep counting: stale stamps never match. */
		free(il.gen);
		free(il.from);
		free(il.from_size);
		il.gen = calloc(size, sizeof(*il.gen));
		il.from = calloc(size, sizeof(*il.from));
		il.from_size = calloc(size, 1);
		if (!il.gen || !il.from || !il.from_size) {
			interleave_teardown();
			return -ENOMEM;
		}
		il.cap = size;
	}
	il.base = base;
	il.size = size;
	if (!il.report)
		il.report = default_report;
	__vshm_fuzz_load_hook = hook;
	return 0;
}

void interleave_teardown(void)
{
	__vshm_fuzz_load_hook = NULL;
	free(il.gen);
	free(il.from);
	free(il.from_size);
	il.gen = il.from = NULL;
	il.from_size = NULL;
	il.base = NULL;
	il.size = il.cap = 0;
	il.cur = il.next = 0;
	il.what = NULL;
	memset(&il.st, 0, sizeof(il.st));
}

void interleave_script(const uint8_t *script, size_t len)
{
	il.script = script;
	il.script_len = script ? len : 0;
	il.pos = 0;
	next_record();
}

void interleave_set_report(interleave_report_fn fn, void *ctx)
{
	il.report = fn ? fn : default_report;
	il.report_ctx = ctx;
}

void interleave_begin(const char *what)
{
	if (++il.next == 0) {
		/* 2^32 requests: start the generations over. */
		if (il.gen)
			memset(il.gen, 0, il.cap * sizeof(*il.gen));
		il.next = 1;
	}
	il.cur = il.next;
	il.what = what;
}

void interleave_end(void)
{
	il.cur = 0;
	il.what = NULL;
}

void interleave_get_stats(struct interleave_stats *st)
{
	*st = il.st;
}
