// SPDX-License-Identifier: MIT
/*
 * virtio-msg revision 1 codec.
 *
 * Shape: every (bus?, msg_id, response?) triple maps to one body "kind";
 * each kind has a fixed part, an optional variable part whose length a fixed
 * field names, and a set of rules.  Decode and encode share the kind table,
 * the variable-length computation and the rule checker, so the encoder
 * cannot produce what the decoder rejects; only the byte layout is written
 * twice, once in parse_body() and once in write_body(), offset for offset.
 *
 * Trust: the input of vshm_msg_decode() may sit in the shared window while
 * the peer rewrites it.  It is copied once into a stack buffer before any
 * byte is examined, and everything afterwards works on that copy.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <vshm/msg.h>

/* ------------------------------------------------------------------------ */
/* Little-endian accessors (byte-wise: the fields are not all aligned)       */

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static inline void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

/* ------------------------------------------------------------------------ */
/* Limits                                                                    */

int vshm_msg_max_size_ok(size_t max_size)
{
	if (max_size < VSHM_MSG_PROTO_MIN_SIZE || max_size > VSHM_MSG_PROTO_MAX_SIZE)
		return -EINVAL;
	return 0;
}

/* The effective ceiling: the advertised maximum, capped at what we carry. */
static size_t codec_limit(size_t max_size)
{
	return max_size < VSHM_MSG_CODEC_MAX_SIZE ? max_size : VSHM_MSG_CODEC_MAX_SIZE;
}

int vshm_msg_max_feature_blocks(size_t max_size)
{
	if (vshm_msg_max_size_ok(max_size))
		return -EINVAL;
	return (int)((codec_limit(max_size) - 16) / 4);
}

int vshm_msg_max_config_bytes(size_t max_size)
{
	if (vshm_msg_max_size_ok(max_size))
		return -EINVAL;
	return (int)(codec_limit(max_size) - 20);
}

int vshm_msg_max_event_config_bytes(size_t max_size)
{
	if (vshm_msg_max_size_ok(max_size))
		return -EINVAL;
	return (int)(codec_limit(max_size) - 24);
}

int vshm_msg_max_devices_window(size_t max_size)
{
	if (vshm_msg_max_size_ok(max_size))
		return -EINVAL;
	return (int)((codec_limit(max_size) - 14) * 8);
}

/* ------------------------------------------------------------------------ */
/* Kinds                                                                     */

enum kind {
	K_EMPTY,		/* no payload */
	K_DEV_INFO,		/* GET_DEVICE_INFO resp */
	K_FEAT_REQ,		/* GET_DEVICE_FEATURES req */
	K_FEAT,			/* GET_DEVICE_FEATURES resp, SET_DRIVER_FEATURES req */
	K_CFG_REQ,		/* GET_CONFIG req */
	K_CFG,			/* GET_CONFIG resp, SET_CONFIG req and resp */
	K_STATUS,		/* GET_DEVICE_STATUS resp, SET_DEVICE_STATUS */
	K_VQ_INDEX,		/* GET_VQUEUE req */
	K_GET_VQ,		/* GET_VQUEUE resp */
	K_SET_VQ,		/* SET_VQUEUE req */
	K_RESET_VQ,		/* RESET_VQUEUE req */
	K_SHM_REQ,		/* GET_SHM req */
	K_SHM,			/* GET_SHM resp */
	K_EVENT_CONFIG,
	K_EVENT_AVAIL,
	K_EVENT_USED,
	K_DEVICES_REQ,		/* bus GET_DEVICES req */
	K_DEVICES,		/* bus GET_DEVICES resp */
	K_PING,			/* bus PING req and resp */
	K_EVENT_DEVICE,		/* bus EVENT_DEVICE */
	K_COUNT
};

/* Bytes of each kind's fixed payload (the spec's tables, section 5). */
static const uint8_t fixed_size[K_COUNT] = {
	[K_EMPTY] = 0,		[K_DEV_INFO] = 44,	[K_FEAT_REQ] = 8,
	[K_FEAT] = 8,		[K_CFG_REQ] = 8,	[K_CFG] = 12,
	[K_STATUS] = 4,		[K_VQ_INDEX] = 4,	[K_GET_VQ] = 40,
	[K_SET_VQ] = 40,	[K_RESET_VQ] = 4,	[K_SHM_REQ] = 4,
	[K_SHM] = 24,		[K_EVENT_CONFIG] = 16,	[K_EVENT_AVAIL] = 8,
	[K_EVENT_USED] = 4,	[K_DEVICES_REQ] = 4,	[K_DEVICES] = 6,
	[K_PING] = 4,		[K_EVENT_DEVICE] = 4,
};

/*
 * Map a header to a body kind.  -EBADMSG for an event flagged as a response
 * and for any bus msg_id we do not define (the bus discards those);
 * -ENOTSUP for an undefined transport msg_id (the transport drops those; a
 * bus must not judge them).
 */
static int classify(uint8_t type, uint8_t id, enum kind *k)
{
	int resp = type & VSHM_MSG_TYPE_RESPONSE;

	if ((id & VSHM_MSG_ID_EVENT) && resp)
		return -EBADMSG;
	if (type & VSHM_MSG_TYPE_BUS) {
		switch (id) {
		case VSHM_MSG_BUS_GET_DEVICES:
			*k = resp ? K_DEVICES : K_DEVICES_REQ;
			return 0;
		case VSHM_MSG_BUS_PING:
			*k = K_PING;
			return 0;
		case VSHM_MSG_BUS_EVENT_DEVICE:
			*k = K_EVENT_DEVICE;
			return 0;
		default:
			return -EBADMSG;
		}
	}
	switch (id) {
	case VSHM_MSG_GET_DEVICE_INFO:	*k = resp ? K_DEV_INFO : K_EMPTY; break;
	case VSHM_MSG_GET_DEVICE_FEATURES: *k = resp ? K_FEAT : K_FEAT_REQ; break;
	case VSHM_MSG_SET_DRIVER_FEATURES: *k = resp ? K_EMPTY : K_FEAT; break;
	case VSHM_MSG_GET_CONFIG:	*k = resp ? K_CFG : K_CFG_REQ; break;
	case VSHM_MSG_SET_CONFIG:	*k = K_CFG; break;
	case VSHM_MSG_GET_DEVICE_STATUS: *k = resp ? K_STATUS : K_EMPTY; break;
	case VSHM_MSG_SET_DEVICE_STATUS: *k = K_STATUS; break;
	case VSHM_MSG_GET_VQUEUE:	*k = resp ? K_GET_VQ : K_VQ_INDEX; break;
	case VSHM_MSG_SET_VQUEUE:	*k = resp ? K_EMPTY : K_SET_VQ; break;
	case VSHM_MSG_RESET_VQUEUE:	*k = resp ? K_EMPTY : K_RESET_VQ; break;
	case VSHM_MSG_GET_SHM:		*k = resp ? K_SHM : K_SHM_REQ; break;
	case VSHM_MSG_EVENT_CONFIG:	*k = K_EVENT_CONFIG; break;
	case VSHM_MSG_EVENT_AVAIL:	*k = K_EVENT_AVAIL; break;
	case VSHM_MSG_EVENT_USED:	*k = K_EVENT_USED; break;
	default:
		return -ENOTSUP;
	}
	return 0;
}

/*
 * Bytes of the variable part that the fixed fields of @m call for.  64-bit:
 * a peer-supplied num_blocks of 0xffffffff must not wrap.
 */
static uint64_t var_size(enum kind k, const struct vshm_msg *m)
{
	switch (k) {
	case K_FEAT:
		return 4ull * m->u.feat.num_blocks;
	case K_CFG:
		return m->u.cfg.length;
	case K_EVENT_CONFIG:
		return m->u.event_config.has_data ? m->u.event_config.length : 0;
	case K_DEVICES:
		return ((uint64_t)m->u.get_devices.count + 7) / 8;
	default:
		return 0;
	}
}

/* offset + length must name a range inside a 32-bit config space. */
static int range_wraps(uint32_t offset, uint32_t length)
{
	return (uint64_t)offset + length > UINT32_MAX;
}

/*
 * SET_VQUEUE requests the device must answer but not apply (device rule
 * 57): reserved != 0, flags bits 31:6, state operation 3.
 */
static int set_vq_invalid(const struct vshm_msg_set_vq *s)
{
	return s->reserved != 0 || (s->flags & ~VSHM_MSG_SETVQ_FLAGS_MASK) ||
	       (s->flags & VSHM_MSG_SETVQ_OP_MASK) == VSHM_MSG_SETVQ_OP_RESERVED;
}

/*
 * The rules a well-formed body obeys beyond its size.  Shared by decode
 * (-EBADMSG / -EMSGSIZE as returned) and encode (-EBADMSG becomes -EINVAL).
 * @limit is the effective maximum message size.  Each rule is one row of the
 * table in docs/virtio-msg.md.
 */
static int check_rules(enum kind k, const struct vshm_msg *m, size_t limit)
{
	switch (k) {
	case K_DEV_INFO: {
		const struct vshm_msg_dev_info *d = &m->u.dev_info;

		if (d->max_virtqueues > 65536)
			return -EBADMSG;
		if (d->admin_vq_count == 0)
			return d->admin_vq_start == 0 ? 0 : -EBADMSG;
		if ((uint64_t)d->admin_vq_start + d->admin_vq_count > d->max_virtqueues)
			return -EBADMSG;
		return 0;
	}
	case K_FEAT_REQ:
		/* Its answer carries num_blocks blocks and must fit. */
		if ((uint64_t)16 + 4ull * m->u.feat.num_blocks > limit)
			return -EMSGSIZE;
		return 0;
	case K_CFG_REQ:
		if (range_wraps(m->u.cfg.offset, m->u.cfg.length))
			return -EBADMSG;
		/* Its answer carries `length` bytes and must fit. */
		if ((uint64_t)20 + m->u.cfg.length > limit)
			return -EMSGSIZE;
		return 0;
	case K_CFG:
		return range_wraps(m->u.cfg.offset, m->u.cfg.length) ? -EBADMSG : 0;
	case K_GET_VQ: {
		const struct vshm_msg_get_vq *q = &m->u.get_vq;

		if (q->flags & ~VSHM_MSG_VQ_ENABLED)
			return -EBADMSG;
		if (q->cur_size > q->max_size)
			return -EBADMSG;
		/* max_size 0 is the "unavailable" sentinel: all else zero. */
		if (q->max_size == 0 && (q->flags || q->desc_addr ||
					 q->driver_addr || q->device_addr))
			return -EBADMSG;
		return 0;
	}
	case K_EVENT_CONFIG: {
		const struct vshm_msg_event_config *e = &m->u.event_config;

		if (e->has_data && e->length == 0)
			return -EBADMSG;
		return range_wraps(e->offset, e->length) ? -EBADMSG : 0;
	}
	case K_DEVICES: {
		const struct vshm_msg_get_devices *g = &m->u.get_devices;
		uint32_t first_bad = 65536u - g->offset;	/* slot of dev 65536 */

		if (g->next_offset != 0 && g->next_offset <= g->offset)
			return -EBADMSG;
		if ((g->count & 7) && (g->bitmap[g->count / 8] >> (g->count & 7)))
			return -EBADMSG;
		/* A window running past 65535 may not claim devices there. */
		for (uint32_t i = first_bad; i < g->count; i++)
			if (g->bitmap[i / 8] & (1u << (i & 7)))
				return -EBADMSG;
		return 0;
	}
	case K_EVENT_DEVICE: {
		uint16_t s = m->u.event_device.state;

		if (s == 0 || (s > VSHM_MSG_DEV_REMOVED && s < VSHM_MSG_DEV_STATE_IMPL))
			return -EBADMSG;
		return 0;
	}
	default:
		return 0;
	}
}

/* ------------------------------------------------------------------------ */
/* Byte layout (payload offsets, the spec's section 5)                       */

/*
 * Read a body whose length @n has already been matched against the fixed
 * part.  The variable part is read only by parse_var(), after its length is
 * known to match too.  Returns -EBADMSG for a reserved field that is set.
 */
static int parse_fixed(enum kind k, const uint8_t *p, size_t n, struct vshm_msg *m)
{
	switch (k) {
	case K_EMPTY:
		break;
	case K_DEV_INFO:
		m->u.dev_info.device_id = get32(p + 0);
		m->u.dev_info.vendor_id = get32(p + 4);
		memcpy(m->u.dev_info.uuid, p + 8, 16);
		m->u.dev_info.num_feature_blocks = get32(p + 24);
		m->u.dev_info.config_size = get32(p + 28);
		m->u.dev_info.max_virtqueues = get32(p + 32);
		m->u.dev_info.admin_vq_start = get32(p + 36);
		m->u.dev_info.admin_vq_count = get32(p + 40);
		break;
	case K_FEAT_REQ:
	case K_FEAT:
		m->u.feat.block_index = get32(p + 0);
		m->u.feat.num_blocks = get32(p + 4);
		break;
	case K_CFG_REQ:
		m->u.cfg.offset = get32(p + 0);
		m->u.cfg.length = get32(p + 4);
		break;
	case K_CFG:
		m->u.cfg.generation = get32(p + 0);
		m->u.cfg.offset = get32(p + 4);
		m->u.cfg.length = get32(p + 8);
		break;
	case K_STATUS:
		m->u.status.status = get32(p + 0);
		break;
	case K_VQ_INDEX:
		m->u.get_vq.index = get32(p + 0);
		break;
	case K_GET_VQ:
		m->u.get_vq.index = get32(p + 0);
		m->u.get_vq.max_size = get32(p + 4);
		m->u.get_vq.cur_size = get32(p + 8);
		m->u.get_vq.flags = get32(p + 12);
		m->u.get_vq.desc_addr = get64(p + 16);
		m->u.get_vq.driver_addr = get64(p + 24);
		m->u.get_vq.device_addr = get64(p + 32);
		break;
	case K_SET_VQ:
		m->u.set_vq.index = get32(p + 0);
		m->u.set_vq.flags = get32(p + 4);
		m->u.set_vq.size = get32(p + 8);
		m->u.set_vq.reserved = get32(p + 12);
		m->u.set_vq.desc_addr = get64(p + 16);
		m->u.set_vq.driver_addr = get64(p + 24);
		m->u.set_vq.device_addr = get64(p + 32);
		m->u.set_vq.invalid = set_vq_invalid(&m->u.set_vq);
		break;
	case K_RESET_VQ:
		m->u.reset_vq.index = get32(p + 0);
		break;
	case K_SHM_REQ:
		m->u.shm.shmid = get32(p + 0);
		break;
	case K_SHM:
		m->u.shm.shmid = get32(p + 0);
		if (get32(p + 4) != 0)		/* reserved */
			return -EBADMSG;
		m->u.shm.length = get64(p + 8);
		m->u.shm.address = get64(p + 16);
		break;
	case K_EVENT_CONFIG:
		m->u.event_config.status = get32(p + 0);
		m->u.event_config.generation = get32(p + 4);
		m->u.event_config.offset = get32(p + 8);
		m->u.event_config.length = get32(p + 12);
		/* Data is optional; its presence is told by the size alone. */
		m->u.event_config.has_data = n > 16;
		break;
	case K_EVENT_AVAIL:
		m->u.event_avail.vq_index = get32(p + 0);
		m->u.event_avail.next_offset = get32(p + 4);
		break;
	case K_EVENT_USED:
		m->u.event_used.vq_index = get32(p + 0);
		break;
	case K_DEVICES_REQ:
		m->u.get_devices.offset = get16(p + 0);
		m->u.get_devices.count = get16(p + 2);
		break;
	case K_DEVICES:
		m->u.get_devices.offset = get16(p + 0);
		m->u.get_devices.next_offset = get16(p + 2);
		m->u.get_devices.count = get16(p + 4);
		break;
	case K_PING:
		m->u.ping.data = get32(p + 0);
		break;
	case K_EVENT_DEVICE:
		m->u.event_device.dev_num = get16(p + 0);
		m->u.event_device.state = get16(p + 2);
		break;
	case K_COUNT:
		return -EBADMSG;
	}
	return 0;
}

/* Copy @len variable bytes at @p; @len fits the arrays (size <= 264). */
static void parse_var(enum kind k, const uint8_t *p, size_t len, struct vshm_msg *m)
{
	switch (k) {
	case K_FEAT:
		for (size_t i = 0; i < len / 4; i++)
			m->u.feat.features[i] = get32(p + 4 * i);
		break;
	case K_CFG:
		memcpy(m->u.cfg.data, p, len);
		break;
	case K_EVENT_CONFIG:
		memcpy(m->u.event_config.data, p, len);
		break;
	case K_DEVICES:
		memcpy(m->u.get_devices.bitmap, p, len);
		break;
	default:
		break;
	}
}

/* Write the body of @m at @p, which is zeroed and large enough. */
static void write_body(enum kind k, const struct vshm_msg *m, uint8_t *p)
{
	switch (k) {
	case K_EMPTY:
	case K_COUNT:
		break;
	case K_DEV_INFO:
		put32(p + 0, m->u.dev_info.device_id);
		put32(p + 4, m->u.dev_info.vendor_id);
		memcpy(p + 8, m->u.dev_info.uuid, 16);
		put32(p + 24, m->u.dev_info.num_feature_blocks);
		put32(p + 28, m->u.dev_info.config_size);
		put32(p + 32, m->u.dev_info.max_virtqueues);
		put32(p + 36, m->u.dev_info.admin_vq_start);
		put32(p + 40, m->u.dev_info.admin_vq_count);
		break;
	case K_FEAT_REQ:
		put32(p + 0, m->u.feat.block_index);
		put32(p + 4, m->u.feat.num_blocks);
		break;
	case K_FEAT:
		put32(p + 0, m->u.feat.block_index);
		put32(p + 4, m->u.feat.num_blocks);
		for (uint32_t i = 0; i < m->u.feat.num_blocks; i++)
			put32(p + 8 + 4 * i, m->u.feat.features[i]);
		break;
	case K_CFG_REQ:
		put32(p + 0, m->u.cfg.offset);
		put32(p + 4, m->u.cfg.length);
		break;
	case K_CFG:
		put32(p + 0, m->u.cfg.generation);
		put32(p + 4, m->u.cfg.offset);
		put32(p + 8, m->u.cfg.length);
		memcpy(p + 12, m->u.cfg.data, m->u.cfg.length);
		break;
	case K_STATUS:
		put32(p + 0, m->u.status.status);
		break;
	case K_VQ_INDEX:
		put32(p + 0, m->u.get_vq.index);
		break;
	case K_GET_VQ:
		put32(p + 0, m->u.get_vq.index);
		put32(p + 4, m->u.get_vq.max_size);
		put32(p + 8, m->u.get_vq.cur_size);
		put32(p + 12, m->u.get_vq.flags);
		put64(p + 16, m->u.get_vq.desc_addr);
		put64(p + 24, m->u.get_vq.driver_addr);
		put64(p + 32, m->u.get_vq.device_addr);
		break;
	case K_SET_VQ:
		put32(p + 0, m->u.set_vq.index);
		put32(p + 4, m->u.set_vq.flags);
		put32(p + 8, m->u.set_vq.size);
		/* p + 12: reserved, left zero (the encoder refused non-zero) */
		put64(p + 16, m->u.set_vq.desc_addr);
		put64(p + 24, m->u.set_vq.driver_addr);
		put64(p + 32, m->u.set_vq.device_addr);
		break;
	case K_RESET_VQ:
		put32(p + 0, m->u.reset_vq.index);
		break;
	case K_SHM_REQ:
		put32(p + 0, m->u.shm.shmid);
		break;
	case K_SHM:
		put32(p + 0, m->u.shm.shmid);
		/* p + 4: reserved, left zero */
		put64(p + 8, m->u.shm.length);
		put64(p + 16, m->u.shm.address);
		break;
	case K_EVENT_CONFIG:
		put32(p + 0, m->u.event_config.status);
		put32(p + 4, m->u.event_config.generation);
		put32(p + 8, m->u.event_config.offset);
		put32(p + 12, m->u.event_config.length);
		if (m->u.event_config.has_data)
			memcpy(p + 16, m->u.event_config.data, m->u.event_config.length);
		break;
	case K_EVENT_AVAIL:
		put32(p + 0, m->u.event_avail.vq_index);
		put32(p + 4, m->u.event_avail.next_offset);
		break;
	case K_EVENT_USED:
		put32(p + 0, m->u.event_used.vq_index);
		break;
	case K_DEVICES_REQ:
		put16(p + 0, m->u.get_devices.offset);
		put16(p + 2, m->u.get_devices.count);
		break;
	case K_DEVICES:
		put16(p + 0, m->u.get_devices.offset);
		put16(p + 2, m->u.get_devices.next_offset);
		put16(p + 4, m->u.get_devices.count);
		memcpy(p + 6, m->u.get_devices.bitmap, (m->u.get_devices.count + 7u) / 8);
		break;
	case K_PING:
		put32(p + 0, m->u.ping.data);
		break;
	case K_EVENT_DEVICE:
		put16(p + 0, m->u.event_device.dev_num);
		put16(p + 2, m->u.event_device.state);
		break;
	}
}

/* ------------------------------------------------------------------------ */
/* Decode                                                                    */

int vshm_msg_decode(const void *buf, size_t len, size_t max_size,
		    struct vshm_msg *m)
{
	uint8_t b[VSHM_MSG_CODEC_MAX_SIZE];
	size_t limit, n;
	enum kind k;
	int rc;

	if (!m || vshm_msg_max_size_ok(max_size))
		return -EINVAL;
	limit = codec_limit(max_size);
	if (len > limit)
		return -EMSGSIZE;
	if (len < VSHM_MSG_HDR_SIZE || !buf)
		return -EBADMSG;
	/* The one read of @buf: from here on only the private copy is used. */
	memcpy(b, buf, len);

	memset(m, 0, sizeof(*m));
	m->type = b[0] & VSHM_MSG_TYPE_MASK;	/* bits 2-7: ignored on receive */
	m->id = b[1];
	m->dev_num = get16(b + 2);
	m->token = get16(b + 4);
	m->size = get16(b + 6);
	if (m->size > limit)
		return -EMSGSIZE;
	if (m->size != len)
		return -EBADMSG;

	rc = classify(m->type, m->id, &k);
	if (rc)
		return rc;	/* -ENOTSUP leaves the header for the caller */
	if ((m->type & VSHM_MSG_TYPE_BUS) && m->dev_num != 0)
		return -EBADMSG;

	n = len - VSHM_MSG_HDR_SIZE;
	if (n < fixed_size[k])
		return -EBADMSG;
	rc = parse_fixed(k, b + VSHM_MSG_HDR_SIZE, n, m);
	if (rc)
		return rc;
	/* Exact size: the fixed part plus what its own fields announce. */
	if (fixed_size[k] + var_size(k, m) != n)
		return -EBADMSG;
	parse_var(k, b + VSHM_MSG_HDR_SIZE + fixed_size[k], n - fixed_size[k], m);
	return check_rules(k, m, limit);
}

/* ------------------------------------------------------------------------ */
/* Encode                                                                    */

/* Validate @m for encoding; returns its total size and its kind. */
static int prepare(const struct vshm_msg *m, size_t max_size, enum kind *k)
{
	size_t limit;
	uint64_t total;
	int rc;

	if (!m || vshm_msg_max_size_ok(max_size))
		return -EINVAL;
	limit = codec_limit(max_size);
	rc = classify(m->type & VSHM_MSG_TYPE_MASK, m->id, k);
	if (rc)
		return rc == -ENOTSUP ? rc : -EINVAL;
	if ((m->type & VSHM_MSG_TYPE_BUS) && m->dev_num != 0)
		return -EINVAL;

	/* Arrays hold exactly a 264-byte message: past them is past 264. */
	total = VSHM_MSG_HDR_SIZE + fixed_size[*k] + var_size(*k, m);
	if (total > limit)
		return -EMSGSIZE;

	rc = check_rules(*k, m, limit);
	if (rc)
		return rc == -EBADMSG ? -EINVAL : rc;
	if (*k == K_SET_VQ && (m->u.set_vq.invalid || set_vq_invalid(&m->u.set_vq)))
		return -EINVAL;
	return (int)total;
}

int vshm_msg_encoded_size(const struct vshm_msg *m, size_t max_size)
{
	enum kind k;

	return prepare(m, max_size, &k);
}

int vshm_msg_encode(const struct vshm_msg *m, void *buf, size_t cap,
		    size_t max_size)
{
	uint8_t b[VSHM_MSG_CODEC_MAX_SIZE];
	enum kind k;
	int size;

	size = prepare(m, max_size, &k);
	if (size < 0)
		return size;
	if (!buf || cap < (size_t)size)
		return -ENOSPC;

	/* Built privately, then written out once: reserved bytes are zero. */
	memset(b, 0, (size_t)size);
	b[0] = m->type & VSHM_MSG_TYPE_MASK;	/* bits 2-7 sent as 0 */
	b[1] = m->id;
	put16(b + 2, m->dev_num);
	put16(b + 4, m->token);
	put16(b + 6, (uint16_t)size);
	write_body(k, m, b + VSHM_MSG_HDR_SIZE);
	memcpy(buf, b, (size_t)size);
	return size;
}

/* ------------------------------------------------------------------------ */
/* Constructors and names                                                    */

void vshm_msg_init(struct vshm_msg *m, uint8_t type, uint8_t id,
		   uint16_t dev_num)
{
	memset(m, 0, sizeof(*m));
	m->type = type & VSHM_MSG_TYPE_MASK;
	m->id = id;
	m->dev_num = dev_num;
}

void vshm_msg_init_resp(struct vshm_msg *resp, const struct vshm_msg *req)
{
	uint8_t type = req->type, id = req->id;
	uint16_t dev_num = req->dev_num, token = req->token;

	vshm_msg_init(resp, type | VSHM_MSG_TYPE_RESPONSE, id, dev_num);
	resp->token = token;
}

static const char *const transport_names[] = {
	[VSHM_MSG_GET_DEVICE_INFO] = "GET_DEVICE_INFO",
	[VSHM_MSG_GET_DEVICE_FEATURES] = "GET_DEVICE_FEATURES",
	[VSHM_MSG_SET_DRIVER_FEATURES] = "SET_DRIVER_FEATURES",
	[VSHM_MSG_GET_CONFIG] = "GET_CONFIG",
	[VSHM_MSG_SET_CONFIG] = "SET_CONFIG",
	[VSHM_MSG_GET_DEVICE_STATUS] = "GET_DEVICE_STATUS",
	[VSHM_MSG_SET_DEVICE_STATUS] = "SET_DEVICE_STATUS",
	[VSHM_MSG_GET_VQUEUE] = "GET_VQUEUE",
	[VSHM_MSG_SET_VQUEUE] = "SET_VQUEUE",
	[VSHM_MSG_RESET_VQUEUE] = "RESET_VQUEUE",
	[VSHM_MSG_GET_SHM] = "GET_SHM",
	[VSHM_MSG_EVENT_CONFIG] = "EVENT_CONFIG",
	[VSHM_MSG_EVENT_AVAIL] = "EVENT_AVAIL",
	[VSHM_MSG_EVENT_USED] = "EVENT_USED",
};

const char *vshm_msg_name(uint8_t type, uint8_t id)
{
	if (id & VSHM_MSG_ID_IMPL)
		return (type & VSHM_MSG_TYPE_BUS) ? "BUS_IMPL_DEFINED" : "IMPL_DEFINED";
	if (type & VSHM_MSG_TYPE_BUS) {
		switch (id) {
		case VSHM_MSG_BUS_GET_DEVICES:	return "BUS_GET_DEVICES";
		case VSHM_MSG_BUS_PING:		return "BUS_PING";
		case VSHM_MSG_BUS_EVENT_DEVICE:	return "BUS_EVENT_DEVICE";
		default:			return "BUS_UNKNOWN";
		}
	}
	if (id < sizeof(transport_names) / sizeof(transport_names[0]) && transport_names[id])
		return transport_names[id];
	return "UNKNOWN";
}
