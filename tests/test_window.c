// SPDX-License-Identifier: MIT
/* Window: creation, sealing, header validation, the bounds-checked accessor. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vshm/window.h>
#include "barrier.h"
#include "tap.h"

static sigjmp_buf fault_jmp;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(fault_jmp, 1);
}

/* Returns 1 if reading *p faults. */
static int faults(volatile uint8_t *p)
{
	struct sigaction sa = { .sa_handler = on_segv }, old;
	int faulted = 0;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old);
	if (sigsetjmp(fault_jmp, 1) == 0)
		(void)*p;
	else
		faulted = 1;
	sigaction(SIGSEGV, &old, NULL);
	return faulted;
}

static void test_parse_size(void)
{
	static const struct { const char *s; int rc; uint64_t v; } cases[] = {
		{ "65536", 0, 65536 }, { "64K", 0, 65536 }, { "64KiB", 0, 65536 },
		{ "1M", 0, 1 << 20 }, { "2g", 0, 2ull << 30 }, { "1T", 0, 1ull << 40 },
		{ "", -EINVAL, 0 }, { "-1", -EINVAL, 0 }, { "12Q", -EINVAL, 0 },
		{ "M", -EINVAL, 0 }, { "99999999999999999999", -EINVAL, 0 },
		{ "20000000000000T", -EINVAL, 0 }, { "1Mx", -EINVAL, 0 },
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 0;
		int rc = vshm_parse_size(cases[i].s, &v);
		ok(rc == cases[i].rc && (rc || v == cases[i].v),
		   "parse_size case %u \"%s\" -> %d", i + 1, cases[i].s, rc);
	}
}

int main(void)
{
	struct vshm_window_opts o = { .size = 1 << 20, .vectors = 4, .name = "test" };
	struct vshm_window w, m;
	int rc;

	test_parse_size();

	is(vshm_window_size_ok(3 << 20), -EINVAL, "non power of two size refused");
	is(vshm_window_size_ok(32 << 10), -EINVAL, "size below 64 KiB refused");
	is(vshm_window_size_ok(128ull << 30), -EINVAL, "size above 64 GiB refused");
	o.size = 100000;
	is(vshm_window_create(&w, &o), -EINVAL, "create refuses a bad size");
	o.size = 1 << 20;
	o.vectors = 0;
	is(vshm_window_create(&w, &o), -EINVAL, "create refuses 0 vectors");
	o.vectors = 4;

	rc = vshm_window_create(&w, &o);
	is(rc, 0, "create 1 MiB window");
	if (rc)
		return tap_done();
	ok(vshm_window_hdr(&w)->magic == VSHM_MAGIC, "header has the magic");
	ok(w.drv_lo == VSHM_DRV_AREA_OFF && w.drv_hi == (1 << 20), "driver area geometry");

	/* Size is sealed. */
	ok(ftruncate(w.fd, 2 << 20) < 0 && errno == EPERM, "growing a sealed window fails");
	ok(ftruncate(w.fd, 1 << 16) < 0 && errno == EPERM, "shrinking a sealed window fails");

	/* Guard pages on both sides. */
	ok(faults(w.base - 1), "byte before the window faults (guard page)");
	ok(faults(w.base + w.size), "byte after the window faults (guard page)");
	ok(!faults(w.base + w.size - 1), "last byte of the window is readable");

	/* Accessor. */
	ok(vshm_win_ptr(&w, 0, 8) == NULL, "header is not reachable through the accessor");
	ok(vshm_win_ptr(&w, VSHM_MBOX_OFF, 16) == NULL, "mailbox is not reachable");
	ok(vshm_win_ptr(&w, VSHM_DRV_AREA_OFF - 1, 2) == NULL, "range straddling the driver area start refused");
	ok(vshm_win_ptr(&w, VSHM_DRV_AREA_OFF, 16) == w.base + VSHM_DRV_AREA_OFF, "driver area start ok");
	ok(vshm_win_ptr(&w, w.size - 16, 16) != NULL, "last 16 bytes ok");
	ok(vshm_win_ptr(&w, w.size - 16, 17) == NULL, "one byte past the end refused");
	ok(vshm_win_ptr(&w, w.size, 0) != NULL, "empty range at the end ok");
	ok(vshm_win_ptr(&w, w.size + 1, 0) == NULL, "empty range past the end refused");
	ok(vshm_win_ptr(&w, UINT64_MAX - 4, 16) == NULL, "offset near 2^64 refused");
	ok(vshm_win_ptr(&w, VSHM_DRV_AREA_OFF, UINT64_MAX) == NULL, "length 2^64-1 refused (no wrap)");
	ok(vshm_win_ptr(&w, w.size - 8, UINT64_MAX - w.size + 16) == NULL, "off+len wrapping past 2^64 refused");

	/* Map it again, as a peer would. */
	rc = vshm_window_map(&m, w.fd);
	is(rc, 0, "peer maps the window");
	if (!rc) {
		strcpy((char *)m.base + VSHM_DRV_AREA_OFF, "hello");
		ok(strcmp((char *)w.base + VSHM_DRV_AREA_OFF, "hello") == 0, "both mappings share memory");
		ok(m.vectors == 4, "vectors read from the header");
		vshm_window_unmap(&m);
	}

	/* Header corruption is refused. */
	vshm_window_hdr(&w)->abi_major = 2;
	is(vshm_window_map(&m, w.fd), -EPROTONOSUPPORT, "foreign ABI major refused");
	vshm_window_hdr(&w)->abi_major = VSHM_ABI_MAJOR;
	vshm_window_hdr(&w)->drv_size = 12345;
	is(vshm_window_map(&m, w.fd), -EPROTO, "inconsistent geometry refused");
	vshm_window_hdr(&w)->drv_size = w.size - VSHM_DRV_AREA_OFF;
	vshm_window_hdr(&w)->magic = 0;
	is(vshm_window_map(&m, w.fd), -EPROTO, "bad magic refused");
	vshm_window_hdr(&w)->magic = VSHM_MAGIC;

	{
		int fd = memfd_create("small", 0);
		ok(fd >= 0 && ftruncate(fd, 4096) == 0, "make a 4 KiB memfd");
		is(vshm_window_map(&m, fd), -EPROTO, "a too-small fd is refused");
		close(fd);
	}

	/* protect_ctrl makes the header fault in this mapping only. */
	is(vshm_window_protect_ctrl(&w, PROT_NONE), 0, "protect header+mailbox");
	ok(faults(w.base) && faults(w.base + VSHM_MBOX_OFF), "header and mailbox fault when protected");
	ok(!faults(w.base + VSHM_DRV_AREA_OFF), "driver area still readable");
	vshm_window_protect_ctrl(&w, PROT_READ | PROT_WRITE);

	vshm_window_unmap(&w);
	vshm_window_unmap(&w);
	ok(1, "double unmap is harmless");
	return tap_done();
}
