// SPDX-License-Identifier: MIT
/*
 * Window creation and mapping.
 *
 * The window is always mapped between two PROT_NONE guard pages, so a stray
 * access just past either end faults instead of touching a neighbouring
 * mapping.  The cost is two pages of address space per mapping.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <vshm/window.h>
#include "barrier.h"

#define GUARD VSHM_PAGE_SIZE

int vshm_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (*end == 'i' && shift)	/* accept KiB/MiB/GiB spellings */
		end++;
	if (*end == 'B' && shift)
		end++;
	if (*end)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

int vshm_window_size_ok(uint64_t size)
{
	if (size < VSHM_WIN_MIN_SIZE || size > VSHM_WIN_MAX_SIZE)
		return -EINVAL;
	if (size & (size - 1))
		return -EINVAL;
	return 0;
}

/* Map @len bytes of @fd between two guard pages. */
static int map_guarded(struct vshm_window *w, int fd, uint64_t len)
{
	size_t total = (size_t)len + 2 * GUARD;
	void *res, *win;

	res = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		return -errno;
	win = mmap((uint8_t *)res + GUARD, (size_t)len, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_FIXED, fd, 0);
	if (win == MAP_FAILED) {
		int err = -errno;
		munmap(res, total);
		return err;
	}
	w->map = res;
	w->map_len = total;
	w->base = win;
	w->size = len;
	return 0;
}

static uint64_t nonce64(void)
{
	struct timespec ts;
	uint64_t x;

	clock_gettime(CLOCK_REALTIME, &ts);
	x = ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^
	    ((uint64_t)getpid() << 32);
	/* splitmix64 finaliser: spread the bits */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void format_header(struct vshm_window *w, const struct vshm_window_opts *o)
{
	struct vshm_win_hdr *h = vshm_window_hdr(w);

	memset(w->base, 0, VSHM_DRV_AREA_OFF);
	h->abi_major = VSHM_ABI_MAJOR;
	h->abi_minor = VSHM_ABI_MINOR;
	h->hdr_size = VSHM_HDR_SIZE;
	h->win_size = w->size;
	h->mbox_off = VSHM_MBOX_OFF;
	h->mbox_size = VSHM_MBOX_SIZE;
	h->drv_off = VSHM_DRV_AREA_OFF;
	h->drv_size = w->size - VSHM_DRV_AREA_OFF;
	h->mbox_slot_size = VSHM_MBOX_SLOT_SIZE;
	h->mbox_slots = VSHM_MBOX_SLOTS;
	h->msg_revision = VSHM_MSG_REVISION;
	h->msg_max_size = VSHM_MSG_MAX_SIZE;
	h->transport_features = o->transport_features;
	h->vectors = o->vectors;
	h->hub_nonce = nonce64();
	/*
	 * W0: the magic is published last (release), pairing with the acquire
	 * on the magic in vshm_window_map (W1): a peer that sees the magic
	 * sees a fully formatted header.
	 */
	vshm_store_release(&h->magic, VSHM_MAGIC);
}

static void set_geometry(struct vshm_window *w, uint32_t vectors, uint32_t tf)
{
	w->drv_lo = VSHM_DRV_AREA_OFF;
	w->drv_hi = w->size;
	w->vectors = vectors;
	w->transport_features = tf;
}

int vshm_window_create(struct vshm_window *w, const struct vshm_window_opts *o)
{
	int fd, err;

	memset(w, 0, sizeof(*w));
	w->fd = -1;
	if (vshm_window_size_ok(o->size))
		return -EINVAL;
	if (o->vectors < 1 || o->vectors > 64)
		return -EINVAL;
	fd = memfd_create(o->name ? o->name : "vshm-window", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)o->size) < 0)
		goto fail_errno;
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		goto fail_errno;
	err = map_guarded(w, fd, o->size);
	if (err)
		goto fail;
	w->fd = fd;
	set_geometry(w, o->vectors, o->transport_features);
	format_header(w, o);
	return 0;

fail_errno:
	err = -errno;
fail:
	close(fd);
	return err;
}

int vshm_window_map(struct vshm_window *w, int fd)
{
	const struct vshm_win_hdr *h;
	struct stat st;
	uint64_t size, win_size;
	uint32_t vectors, tf;
	int dupfd, err;

	memset(w, 0, sizeof(*w));
	w->fd = -1;
	if (fstat(fd, &st) < 0)
		return -errno;
	size = (uint64_t)st.st_size;
	if (vshm_window_size_ok(size))
		return -EPROTO;
	dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dupfd < 0)
		return -errno;
	err = map_guarded(w, dupfd, size);
	if (err) {
		close(dupfd);
		return err;
	}
	w->fd = dupfd;
	h = vshm_window_hdr(w);

	/* W1: pairs with W0; the header is complete once the magic is seen. */
	if (vshm_load_acquire(&h->magic) != VSHM_MAGIC) {
		err = -EPROTO;
		goto fail;
	}
	if (vshm_load_once(&h->abi_major) != VSHM_ABI_MAJOR) {
		err = -EPROTONOSUPPORT;
		goto fail;
	}
	/* Each geometry word is loaded once and compared with the fixed ABI. */
	win_size = vshm_load_once(&h->win_size);
	vectors = vshm_load_once(&h->vectors);
	tf = vshm_load_once(&h->transport_features);
	if (vshm_load_once(&h->hdr_size) != VSHM_HDR_SIZE ||
	    win_size != size ||
	    vshm_load_once(&h->mbox_off) != VSHM_MBOX_OFF ||
	    vshm_load_once(&h->mbox_size) != VSHM_MBOX_SIZE ||
	    vshm_load_once(&h->drv_off) != VSHM_DRV_AREA_OFF ||
	    vshm_load_once(&h->drv_size) != size - VSHM_DRV_AREA_OFF ||
	    vshm_load_once(&h->mbox_slot_size) != VSHM_MBOX_SLOT_SIZE ||
	    vshm_load_once(&h->mbox_slots) != VSHM_MBOX_SLOTS ||
	    vshm_load_once(&h->msg_revision) != VSHM_MSG_REVISION ||
	    vshm_load_once(&h->msg_max_size) != VSHM_MSG_MAX_SIZE ||
	    vectors < 1 || vectors > 64) {
		err = -EPROTO;
		goto fail;
	}
	set_geometry(w, vectors, tf);
	return 0;
fail:
	vshm_window_unmap(w);
	return err;
}

void vshm_window_unmap(struct vshm_window *w)
{
	if (w->map)
		munmap(w->map, w->map_len);
	if (w->fd >= 0)
		close(w->fd);
	memset(w, 0, sizeof(*w));
	w->fd = -1;
}

int vshm_window_protect_ctrl(struct vshm_window *w, int prot)
{
	if (mprotect(w->base, VSHM_DRV_AREA_OFF, prot) < 0)
		return -errno;
	return 0;
}
