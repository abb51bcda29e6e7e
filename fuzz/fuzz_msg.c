// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the virtio-msg decoder.
 *
 * Arbitrary bytes are decoded at the recommended maximum (264) and at the
 * protocol ceiling (65535).  Whatever decodes must re-encode, the encoding
 * must be the input itself (the codec is canonical apart from the type bits
 * 2-7 it ignores), and decoding that again must give the same struct.  The
 * one decodable message the encoder refuses by design is a SET_VQUEUE
 * flagged invalid.  Any other outcome traps.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <vshm/msg.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *data, size_t size, size_t max_size)
{
	struct vshm_msg m, m2;
	uint8_t out[VSHM_MSG_CODEC_MAX_SIZE];
	int rc, n;

	rc = vshm_msg_decode(data, size, max_size, &m);
	if (rc == -ENOTSUP) {
		/* Well framed, unknown transport id: the header is usable. */
		if (m.size != size || (m.type & VSHM_MSG_TYPE_BUS))
			__builtin_trap();
		return;
	}
	if (rc) {
		if (rc != -EBADMSG && rc != -EMSGSIZE)
			__builtin_trap();
		return;
	}
	if (m.size != size)
		__builtin_trap();

	n = vshm_msg_encoded_size(&m, max_size);
	rc = vshm_msg_encode(&m, out, sizeof(out), max_size);
	if (rc != n)
		__builtin_trap();
	if (rc == -EINVAL && !(m.type & VSHM_MSG_TYPE_BUS) &&
	    m.id == VSHM_MSG_SET_VQUEUE && !(m.type & VSHM_MSG_TYPE_RESPONSE) &&
	    m.u.set_vq.invalid)
		return;
	if (rc < 0 || (size_t)rc != size)
		__builtin_trap();
	if (out[0] != (data[0] & VSHM_MSG_TYPE_MASK) || memcmp(out + 1, data + 1, size - 1))
		__builtin_trap();

	memset(&m2, 0xa5, sizeof(m2));
	if (vshm_msg_decode(out, (size_t)rc, max_size, &m2) || memcmp(&m, &m2, sizeof(m)))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check(data, size, VSHM_MSG_MAX_SIZE);
	check(data, size, VSHM_MSG_PROTO_MAX_SIZE);
	return 0;
}
