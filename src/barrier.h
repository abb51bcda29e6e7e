/* SPDX-License-Identifier: MIT */
/*
 * The only place libvshm spells memory ordering.  Every shared-memory access
 * that synchronises with the peer goes through one of these, and every call
 * site carries a label (R1, A1, ...) naming its partner; docs/memory-model.md
 * has the table of pairs.
 *
 * Plain shared fields that are not synchronising (payload bytes, descriptor
 * bodies) are read with vshm_load_once so that the compiler emits exactly one
 * load: a value the peer can rewrite must never be fetched twice.
 */
#ifndef VSHM_BARRIER_H
#define VSHM_BARRIER_H

#ifndef VSHM_FUZZ
/* One load the compiler may not repeat, merge or tear (relaxed). */
#define vshm_load_once(p)	__atomic_load_n((p), __ATOMIC_RELAXED)
/* Acquire: later loads see everything the releasing side wrote before. */
#define vshm_load_acquire(p)	__atomic_load_n((p), __ATOMIC_ACQUIRE)
#else
/*
 * Fuzz builds only (-DVSHM_FUZZ): every load first reports its address and
 * size to __vshm_fuzz_load_hook (src/fuzzhook.c; NULL unless a harness
 * installs one), then performs the same atomic load.  The interleaving
 * harness (fuzz/interleave.c) uses it to flag a field loaded twice within
 * one request and to rewrite window bytes between two loads, as a peer
 * writing concurrently would.  The pointer is evaluated once.
 */
#include <stddef.h>

extern void (*__vshm_fuzz_load_hook)(const void *p, size_t size);

static inline __attribute__((always_inline))
void __vshm_fuzz_load(const void *p, size_t size)
{
	void (*hook)(const void *, size_t) = __vshm_fuzz_load_hook;

	if (hook)
		hook(p, size);
}

#define vshm_load_once(p) __extension__ ({				\
	__typeof__(p) __vshm_lo_p = (p);				\
	__vshm_fuzz_load((const void *)__vshm_lo_p, sizeof(*__vshm_lo_p));	\
	__atomic_load_n(__vshm_lo_p, __ATOMIC_RELAXED);			\
})
#define vshm_load_acquire(p) __extension__ ({				\
	__typeof__(p) __vshm_la_p = (p);				\
	__vshm_fuzz_load((const void *)__vshm_la_p, sizeof(*__vshm_la_p));	\
	__atomic_load_n(__vshm_la_p, __ATOMIC_ACQUIRE);			\
})
#endif

#define vshm_store_once(p, v)	__atomic_store_n((p), (v), __ATOMIC_RELAXED)
/* Release: earlier stores are visible before this one. */
#define vshm_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

/*
 * Full fence (store-load ordering), only for event-index suppression and the
 * "I am going to sleep" handshakes, where a store must be ordered before a
 * later load of a different location.
 */
#define vshm_mb()		__atomic_thread_fence(__ATOMIC_SEQ_CST)

static inline void vshm_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

#endif /* VSHM_BARRIER_H */
