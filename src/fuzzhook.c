// SPDX-License-Identifier: MIT
/*
 * The load hook of fuzz builds (src/barrier.h): NULL, so vshm_load_once and
 * vshm_load_acquire only load, until a harness such as fuzz/interleave.c
 * installs a function.  Without -DVSHM_FUZZ this file defines nothing and
 * the library is unchanged.
 */
#include "barrier.h"

#ifdef VSHM_FUZZ
void (*__vshm_fuzz_load_hook)(const void *p, size_t size);
#endif
