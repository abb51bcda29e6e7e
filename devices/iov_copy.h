/* SPDX-License-Identifier: MIT */
/*
 * Byte-range helpers over a popped chain's iov, shared by the device models.
 *
 * A chain is a list of window buffers the driver may rewrite at any moment.
 * Fields a model interprets are gathered into private memory once with
 * vshm_iov_gather() and only the private copy is looked at; bulk data is
 * described to the kernel with vshm_iov_to_iovec() and never read by us.
 * Every helper treats the buffers as one concatenated byte stream, so a
 * header may be split across entries in any way (VIRTIO_F_VERSION_1 has no
 * layout rules), and zero-length entries are harmless.
 */
#ifndef VSHM_DEV_IOV_COPY_H
#define VSHM_DEV_IOV_COPY_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#include <vshm/vq.h>

/* Total length of @n entries (each at most 4 GiB, so no overflow in 64 bits). */
static inline uint64_t vshm_iov_bytes(const struct vshm_iov *iov, unsigned n)
{
	uint64_t t = 0;

	for (unsigned i = 0; i < n; i++)
		t += iov[i].len;
	return t;
}

/*
 * Copy up to @len bytes starting at byte @off of the stream into @dst.
 * Returns the bytes copied (less than @len when the stream is shorter).
 */
static inline size_t vshm_iov_gather(void *dst, const struct vshm_iov *iov, unsigned n,
				     uint64_t off, size_t len)
{
	uint8_t *d = dst;
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t take;

		if (off >= iov[i].len) {
			off -= iov[i].len;
			continue;
		}
		take = iov[i].len - (size_t)off;
		if (take > len - done)
			take = len - done;
		memcpy(d + done, (const uint8_t *)iov[i].base + off, take);
		done += take;
		off = 0;
	}
	return done;
}

/* The reverse: copy @len bytes of @src into the stream at @off; returns bytes copied. */
static inline size_t vshm_iov_scatter(const struct vshm_iov *iov, unsigned n, uint64_t off,
				      const void *src, size_t len)
{
	const uint8_t *s = src;
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t take;

		if (off >= iov[i].len) {
			off -= iov[i].len;
			continue;
		}
		take = iov[i].len - (size_t)off;
		if (take > len - done)
			take = len - done;
		memcpy((uint8_t *)iov[i].base + off, s + done, take);
		done += take;
		off = 0;
	}
	return done;
}

/*
 * Describe bytes [off, off + len) of the stream as a struct iovec array for
 * the kernel (zero-length pieces are left out).  Needs at most @n entries
 * of @dst.  Returns the entry count, or -1 when the stream is shorter than
 * off + len or @max entries do not suffice.
 */
static inline int vshm_iov_to_iovec(struct iovec *dst, unsigned max,
				    const struct vshm_iov *iov, unsigned n,
				    uint64_t off, uint64_t len)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n && len; i++) {
		uint64_t take;

		if (off >= iov[i].len) {
			off -= iov[i].len;
			continue;
		}
		take = iov[i].len - off;
		if (take > len)
			take = len;
		if (k == max)
			return -1;
		dst[k].iov_base = (uint8_t *)iov[i].base + off;
		dst[k].iov_len = (size_t)take;
		k++;
		len -= take;
		off = 0;
	}
	return len ? -1 : (int)k;
}

#endif
