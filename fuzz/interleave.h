/* SPDX-License-Identifier: MIT */
/*
 * The interleaving harness: double-fetch detection and a peer that writes
 * between any two loads.
 *
 * In fuzz builds (-DVSHM_FUZZ) every vshm_load_once / vshm_load_acquire
 * calls __vshm_fuzz_load_hook first (src/barrier.h).  interleave_window()
 * installs this harness as that hook, for one byte range of the window.
 * The code under test runs in requests (one pop, one harvest, one mailbox
 * receive ...), each between interleave_begin() and interleave_end().
 * Inside a request, for every hooked load that falls in the range:
 *
 *   1. if any of its bytes was already loaded in this request, that is a
 *      double fetch: the report function is called (by default it prints
 *      the request, the offset in the range and both loads, then traps);
 *   2. otherwise its bytes are recorded;
 *   3. the interleave script may rewrite bytes before the load reads them:
 *      the loaded bytes themselves, or four bytes anywhere in the range,
 *      as a peer writing concurrently would.
 *
 * Loads outside a request or outside the range are neither checked nor
 * rewritten.  Payload bytes copied with memcpy are not hooked (they are
 * data, docs/memory-model.md).
 *
 * Script: 10-byte records { skip, mode, value[8] }.  A record waits for
 * `skip` further in-range loads, then applies to the next one:
 *   mode & 3 == 0   replace the loaded bytes with value (little-endian)
 *   mode & 3 == 1   xor them with value
 *   mode & 3 == 2   add value to them (as a little-endian integer)
 *   mode & 3 == 3   write value[4..8) at offset le32(value[0..4)) in the
 *                   range (4-aligned, modulo its size), then load
 * Records are consumed in order, across requests; an exhausted script
 * rewrites nothing.
 *
 * Single-threaded: the harness state is global and unlocked.
 */
#ifndef VSHM_FUZZ_INTERLEAVE_H
#define VSHM_FUZZ_INTERLEAVE_H

#include <stddef.h>
#include <stdint.h>

#define INTERLEAVE_REC	10u	/* bytes per script record */

/*
 * Called on a double fetch: @off/@size the second load (offsets in the
 * range), @first_off/@first_size the earlier load it overlaps, @what the
 * request's name, @site the code address of the second load.  The default
 * prints and calls __builtin_trap().
 */
struct interleave_report {
	const char *what;
	size_t off, size;
	size_t first_off, first_size;
	const void *site;
};

typedef void (*interleave_report_fn)(const struct interleave_report *r, void *ctx);

/*
 * Watch [base, base + size) (writable memory; the harness may rewrite it)
 * and install the hook.  May be called again to move or resize the range
 * (memory is kept and only grows).  0, -EINVAL or -ENOMEM.
 */
int interleave_window(void *base, size_t size);

/* Remove the hook and free the harness's memory. */
void interleave_teardown(void);

/* The script for what follows (not copied: keep it alive); NULL, 0 for none. */
void interleave_script(const uint8_t *script, size_t len);

/* Replace the report function; NULL restores print-and-trap. */
void interleave_set_report(interleave_report_fn fn, void *ctx);

/* Start a request named @what (a static string): forget earlier loads. */
void interleave_begin(const char *what);

/* End it: loads from here on are not watched until the next begin. */
void interleave_end(void);

/* Counters since interleave_window(): in-range loads seen in requests,
 * script records applied, double fetches reported. */
struct interleave_stats {
	uint64_t loads;
	uint64_t rewrites;
	uint64_t double_fetches;
};

void interleave_get_stats(struct interleave_stats *st);

#endif
