/* SPDX-License-Identifier: MIT */
/*
 * virtio-msg (revision 1) codec: every transport and bus message, encoded
 * to and decoded from the little-endian wire format, with full validation.
 *
 * A decoded struct vshm_msg is self-contained: variable parts (feature
 * blocks, config bytes, the GET_DEVICES bitmap) are copied into fixed arrays
 * sized for the largest message this codec carries, VSHM_MSG_MAX_SIZE (264)
 * bytes, so nothing in it points back into memory the peer can rewrite.
 *
 * The codec never sets errno and never aborts.  docs/virtio-msg.md lists
 * every size rule and every reserved field the decoder enforces, and the
 * choices made where the specification leaves room.
 */
#ifndef VSHM_MSG_H
#define VSHM_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <vshm/abi.h>

/* ------------------------------------------------------------------------ */
/* Wire constants                                                            */

#define VSHM_MSG_HDR_SIZE		8u
/* Protocol bounds on an advertised maximum message size (revision 1). */
#define VSHM_MSG_PROTO_MIN_SIZE		VSHM_MSG_MIN_MAX_SIZE	/* 52 */
#define VSHM_MSG_PROTO_MAX_SIZE		65535u
/*
 * The largest message this codec carries, whatever maximum the bus
 * advertises: the recommended 264 (vshm's mailbox slot).  A larger
 * advertised maximum is accepted but messages above 264 bytes are refused
 * with -EMSGSIZE.
 */
#define VSHM_MSG_CODEC_MAX_SIZE		VSHM_MSG_MAX_SIZE	/* 264 */

/* Header byte 0, `type`.  Bits 2-7 are reserved: sent 0, ignored. */
#define VSHM_MSG_TYPE_RESPONSE		0x01u	/* else request or event */
#define VSHM_MSG_TYPE_BUS		0x02u	/* else transport */
#define VSHM_MSG_TYPE_MASK		0x03u

/* Header byte 1, `msg_id`. */
#define VSHM_MSG_ID_EVENT		0x40u	/* one-way, never answered */
#define VSHM_MSG_ID_IMPL		0x80u	/* implementation-defined */

/* Transport messages (type bit 1 = 0). */
#define VSHM_MSG_GET_DEVICE_INFO	0x02u
#define VSHM_MSG_GET_DEVICE_FEATURES	0x03u
#define VSHM_MSG_SET_DRIVER_FEATURES	0x04u
#define VSHM_MSG_GET_CONFIG		0x05u
#define VSHM_MSG_SET_CONFIG		0x06u
#define VSHM_MSG_GET_DEVICE_STATUS	0x07u
#define VSHM_MSG_SET_DEVICE_STATUS	0x08u
#define VSHM_MSG_GET_VQUEUE		0x09u
#define VSHM_MSG_SET_VQUEUE		0x0Au
#define VSHM_MSG_RESET_VQUEUE		0x0Bu
#define VSHM_MSG_GET_SHM		0x0Cu
#define VSHM_MSG_EVENT_CONFIG		0x40u	/* device -> driver */
#define VSHM_MSG_EVENT_AVAIL		0x41u	/* driver -> device */
#define VSHM_MSG_EVENT_USED		0x42u	/* device -> driver */

/* Bus messages (type bit 1 = 1, dev_num always 0). */
#define VSHM_MSG_BUS_GET_DEVICES	0x02u
#define VSHM_MSG_BUS_PING		0x03u
#define VSHM_MSG_BUS_EVENT_DEVICE	0x40u

/* Device status bits (core virtio), GET/SET_DEVICE_STATUS, EVENT_CONFIG. */
#define VSHM_MSG_STATUS_ACKNOWLEDGE	1u
#define VSHM_MSG_STATUS_DRIVER		2u
#define VSHM_MSG_STATUS_DRIVER_OK	4u
#define VSHM_MSG_STATUS_FEATURES_OK	8u
#define VSHM_MSG_STATUS_SUSPEND		16u
#define VSHM_MSG_STATUS_NEEDS_RESET	64u
#define VSHM_MSG_STATUS_FAILED		128u

/* GET_VQUEUE response `flags`: bits 31:1 must be zero. */
#define VSHM_MSG_VQ_ENABLED		(1u << 0)

/* SET_VQUEUE request `flags`. */
#define VSHM_MSG_SETVQ_OP_MASK		0x3u	/* bits 1:0, state operation */
#define VSHM_MSG_SETVQ_OP_DISABLED	0x0u	/* keep (or leave) disabled */
#define VSHM_MSG_SETVQ_OP_ENABLE	0x1u
#define VSHM_MSG_SETVQ_OP_KEEP		0x2u	/* keep the current state */
#define VSHM_MSG_SETVQ_OP_RESERVED	0x3u
#define VSHM_MSG_SETVQ_SIZE_IGNORE	(1u << 2)
#define VSHM_MSG_SETVQ_DESC_IGNORE	(1u << 3)
#define VSHM_MSG_SETVQ_DRIVER_IGNORE	(1u << 4)
#define VSHM_MSG_SETVQ_DEVICE_IGNORE	(1u << 5)
#define VSHM_MSG_SETVQ_FLAGS_MASK	0x3Fu	/* bits 31:6 reserved */

/* EVENT_AVAIL `next_offset`. */
#define VSHM_MSG_NEXT_WRAP		(1u << 31)
#define VSHM_MSG_NEXT_OFF_MASK		0x7FFFFFFFu

/* EVENT_DEVICE `state`: 0x0003-0x7FFF reserved, 0x8000+ impl-defined. */
#define VSHM_MSG_DEV_ADDED		0x0001u
#define VSHM_MSG_DEV_REMOVED		0x0002u
#define VSHM_MSG_DEV_STATE_IMPL		0x8000u

/* Capacities of the variable parts at the codec's largest message. */
#define VSHM_MSG_MAX_FEATURE_BLOCKS	((VSHM_MSG_CODEC_MAX_SIZE - 16u) / 4u)	/* 62 */
#define VSHM_MSG_MAX_CONFIG_DATA	(VSHM_MSG_CODEC_MAX_SIZE - 20u)		/* 244 */
#define VSHM_MSG_MAX_EVENT_DATA		(VSHM_MSG_CODEC_MAX_SIZE - 24u)		/* 240 */
#define VSHM_MSG_MAX_BITMAP		(VSHM_MSG_CODEC_MAX_SIZE - 14u)		/* 250 */

/* ------------------------------------------------------------------------ */
/* Decoded form                                                              */

/* GET_DEVICE_INFO response. */
struct vshm_msg_dev_info {
	uint32_t device_id;		/* virtio device type */
	uint32_t vendor_id;
	uint8_t  uuid[16];		/* RFC 4122; all-zero = none */
	uint32_t num_feature_blocks;
	uint32_t config_size;
	uint32_t max_virtqueues;	/* <= 65536, includes admin queues */
	uint32_t admin_vq_start;	/* 0 when admin_vq_count is 0 */
	uint32_t admin_vq_count;
};

/*
 * GET_DEVICE_FEATURES request (no features[]) and response, and
 * SET_DRIVER_FEATURES request.  Where features[] is carried, it holds
 * exactly num_blocks entries.
 */
struct vshm_msg_features {
	uint32_t block_index;		/* block 0 = feature bits 0..31 */
	uint32_t num_blocks;
	uint32_t features[VSHM_MSG_MAX_FEATURE_BLOCKS];
};

/*
 * GET_CONFIG request (offset, length only) and response; SET_CONFIG request
 * and response.  Where data[] is carried, it holds exactly `length` bytes;
 * a SET_CONFIG response with length 0 means "not applied" and has no data.
 */
struct vshm_msg_config {
	uint32_t generation;		/* not in a GET_CONFIG request */
	uint32_t offset;
	uint32_t length;
	uint8_t  data[VSHM_MSG_MAX_CONFIG_DATA];
};

/* GET_VQUEUE request (index only) and response. */
struct vshm_msg_get_vq {
	uint32_t index;
	uint32_t max_size;		/* 0 = unavailable: all else 0 too */
	uint32_t cur_size;		/* <= max_size, 0 if unconfigured */
	uint32_t flags;			/* VSHM_MSG_VQ_ENABLED only */
	uint64_t desc_addr;
	uint64_t driver_addr;
	uint64_t device_addr;
};

/*
 * SET_VQUEUE request.  A request with reserved != 0, flags bits 31:6 set or
 * state operation 3 still decodes: the device must change nothing and still
 * send the normal empty response, so the decoder sets @invalid instead of
 * failing.  The encoder refuses such a request.
 */
struct vshm_msg_set_vq {
	uint32_t index;
	uint32_t flags;			/* VSHM_MSG_SETVQ_* */
	uint32_t size;
	uint32_t reserved;		/* must be 0; kept for logging */
	uint64_t desc_addr;
	uint64_t driver_addr;
	uint64_t device_addr;
	bool     invalid;		/* decode: answer, but apply nothing */
};

/* GET_SHM request (shmid only) and response. */
struct vshm_msg_shm {
	uint32_t shmid;
	uint64_t length;		/* 0 = shmid not supported */
	uint64_t address;
};

/*
 * EVENT_CONFIG.  With @has_data, data[] holds exactly `length` bytes (and
 * length > 0).  Without it the event is status-only or generic (offset =
 * length = 0) or names a changed range whose bytes did not fit.
 */
struct vshm_msg_event_config {
	uint32_t status;
	uint32_t generation;
	uint32_t offset;
	uint32_t length;
	bool     has_data;
	uint8_t  data[VSHM_MSG_MAX_EVENT_DATA];
};

/* Bus GET_DEVICES request (offset, count only) and response. */
struct vshm_msg_get_devices {
	uint16_t offset;		/* first device number of the window */
	uint16_t next_offset;		/* response: 0 = done, else > offset */
	uint16_t count;			/* slots in the window */
	uint8_t  bitmap[VSHM_MSG_MAX_BITMAP];	/* ceil(count/8), LSB first */
};

struct vshm_msg {
	uint8_t  type;		/* VSHM_MSG_TYPE_* (bits 2-7 always 0 here) */
	uint8_t  id;		/* msg_id */
	uint16_t dev_num;	/* transport: target/own number; bus: 0 */
	uint16_t token;		/* bus-owned; copied into the response */
	uint16_t size;		/* decode: msg_size; ignored by encode */
	union {
		struct vshm_msg_dev_info dev_info;	/* GET_DEVICE_INFO resp */
		struct vshm_msg_features feat;		/* GET_DEVICE_FEATURES, SET_DRIVER_FEATURES */
		struct vshm_msg_config cfg;		/* GET_CONFIG, SET_CONFIG */
		struct { uint32_t status; } status;	/* GET/SET_DEVICE_STATUS */
		struct vshm_msg_get_vq get_vq;		/* GET_VQUEUE */
		struct vshm_msg_set_vq set_vq;		/* SET_VQUEUE req */
		struct { uint32_t index; } reset_vq;	/* RESET_VQUEUE req */
		struct vshm_msg_shm shm;		/* GET_SHM */
		struct vshm_msg_event_config event_config;
		struct { uint32_t vq_index; uint32_t next_offset; } event_avail;
		struct { uint32_t vq_index; } event_used;
		struct vshm_msg_get_devices get_devices;	/* bus */
		struct { uint32_t data; } ping;			/* bus */
		struct { uint16_t dev_num; uint16_t state; } event_device; /* bus */
	} u;
};

/* ------------------------------------------------------------------------ */
/* Codec                                                                     */

/*
 * Decode the @len bytes received at @buf into @m.  @max_size is the bus's
 * advertised maximum (52..65535; vshm passes VSHM_MSG_MAX_SIZE).  Each input
 * byte is read exactly once (the buffer is copied before it is examined), so
 * @buf may be shared memory the peer is still rewriting.
 *
 * Returns 0, or:
 *   -EINVAL    @max_size outside 52..65535 (or NULL @m);
 *   -EMSGSIZE  @len or msg_size above min(@max_size, 264), or a request
 *              whose only valid answer would be;
 *   -EBADMSG   malformed: any rule in docs/virtio-msg.md broken, including
 *              an unknown bus msg_id;
 *   -ENOTSUP   a well-framed transport message with a msg_id this revision
 *              does not define.  The header fields of @m are filled in and
 *              the body is zero, so the caller can log it and drop it.
 * On every other error the contents of @m are unspecified.  Fields that the
 * message does not carry are zero after a successful decode.
 */
int vshm_msg_decode(const void *buf, size_t len, size_t max_size,
		    struct vshm_msg *m);

/*
 * Encode @m into @buf (capacity @cap).  msg_size is computed, type bits 2-7
 * and every reserved field are written as 0, and @m->size is ignored.  The
 * encoder applies the decoder's rules: it never produces bytes that
 * vshm_msg_decode() would reject with the same @max_size.
 *
 * Returns the number of bytes written, or:
 *   -EINVAL    @max_size out of range, or a field value the rules forbid;
 *   -ENOTSUP   a transport msg_id this revision does not define;
 *   -EMSGSIZE  the message (or the answer a request asks for) would exceed
 *              min(@max_size, 264);
 *   -ENOSPC    @cap is too small (nothing is written).
 */
int vshm_msg_encode(const struct vshm_msg *m, void *buf, size_t cap,
		    size_t max_size);

/* Encoded size of @m, with the same validation and errors as encode. */
int vshm_msg_encoded_size(const struct vshm_msg *m, size_t max_size);

/* Name of a message for logs, e.g. "GET_CONFIG" or "BUS_PING"; never NULL. */
const char *vshm_msg_name(uint8_t type, uint8_t id);

/* 0 if @max_size is a valid advertised maximum (52..65535), else -EINVAL. */
int vshm_msg_max_size_ok(size_t max_size);

/*
 * Largest variable parts that fit in one message at @max_size (capped at
 * the codec's 264), or -EINVAL.  At 264: 62 feature blocks, 244 config
 * bytes, 240 EVENT_CONFIG data bytes, a GET_DEVICES window of 2000 slots.
 */
int vshm_msg_max_feature_blocks(size_t max_size);
int vshm_msg_max_config_bytes(size_t max_size);
int vshm_msg_max_event_config_bytes(size_t max_size);
int vshm_msg_max_devices_window(size_t max_size);

/* ------------------------------------------------------------------------ */
/* Constructors                                                              */

/* Zero @m and set its header; the body is all zero. */
void vshm_msg_init(struct vshm_msg *m, uint8_t type, uint8_t id,
		   uint16_t dev_num);

/* A transport request or event for device @dev_num. */
static inline void vshm_msg_init_req(struct vshm_msg *m, uint8_t id,
				     uint16_t dev_num)
{
	vshm_msg_init(m, 0, id, dev_num);
}

/* A bus request or event (dev_num 0). */
static inline void vshm_msg_init_bus(struct vshm_msg *m, uint8_t id)
{
	vshm_msg_init(m, VSHM_MSG_TYPE_BUS, id, 0);
}

/*
 * Start the response to @req: same msg_id, dev_num and token, the response
 * bit set, the body zero.  @resp may be @req.
 */
void vshm_msg_init_resp(struct vshm_msg *resp, const struct vshm_msg *req);

static inline bool vshm_msg_is_resp(const struct vshm_msg *m)
{
	return m->type & VSHM_MSG_TYPE_RESPONSE;
}

static inline bool vshm_msg_is_bus(const struct vshm_msg *m)
{
	return m->type & VSHM_MSG_TYPE_BUS;
}

static inline bool vshm_msg_is_event(const struct vshm_msg *m)
{
	return m->id & VSHM_MSG_ID_EVENT;
}

#endif /* VSHM_MSG_H */
