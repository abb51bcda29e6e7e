// SPDX-License-Identifier: MIT
/*
 * virtio-msg codec: every message form round-trips and matches golden bytes;
 * every truncation, extension, size mismatch, reserved bit and broken rule
 * is refused; the SET_VQUEUE "answer but apply nothing" case is flagged.
 *
 * With VSHM_CORPUS_DIR set, each valid encoding is also written there as
 * <name>.bin (the seed corpus of fuzz/fuzz_msg.c).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vshm/msg.h>
#include "tap.h"

#define MAX VSHM_MSG_MAX_SIZE
#define TOK 0xBEEF
#define DEV 0x0102
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------------ */
/* The valid cases                                                           */

enum fill { F_NONE, F_FEAT, F_CFG, F_EVT, F_BITMAP };

struct vcase {
	const char *name;
	struct vshm_msg m;	/* size is ignored; see .size */
	enum fill fill;		/* pattern-fill the variable part */
	uint16_t size;		/* expected msg_size */
	const char *hex;	/* expected bytes (a prefix when .fill) */
};

#define T_REQ(i)  .type = 0, .id = (i), .dev_num = DEV, .token = TOK
#define T_RESP(i) .type = VSHM_MSG_TYPE_RESPONSE, .id = (i), .dev_num = DEV, .token = TOK
#define B_REQ(i)  .type = VSHM_MSG_TYPE_BUS, .id = (i), .token = TOK
#define B_RESP(i) .type = VSHM_MSG_TYPE_BUS | VSHM_MSG_TYPE_RESPONSE, .id = (i), .token = TOK

/* Header of a transport message to/from device 0x0102 with token 0xbeef. */
#define H(t, i, sz) t " " i " 02 01 ef be " sz " "
#define HB(t, i, sz) t " " i " 00 00 ef be " sz " "

static const struct vcase cases[] = {
	{ "get_device_info_req", { T_REQ(VSHM_MSG_GET_DEVICE_INFO) }, 0, 8,
	  H("00", "02", "08 00") },
	{ "get_device_info_resp", { T_RESP(VSHM_MSG_GET_DEVICE_INFO), .u.dev_info = {
		.device_id = 0x11223344, .vendor_id = 0x55667788,
		.uuid = { 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
			  0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf },
		.num_feature_blocks = 2, .config_size = 0x100,
		.max_virtqueues = 16, .admin_vq_start = 14, .admin_vq_count = 2 } },
	  0, 52, H("01", "02", "34 00") "44 33 22 11 88 77 66 55"
	  " a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 aa ab ac ad ae af"
	  " 02 00 00 00 00 01 00 00 10 00 00 00 0e 00 00 00 02 00 00 00" },
	{ "get_device_features_req", { T_REQ(VSHM_MSG_GET_DEVICE_FEATURES),
		.u.feat = { .block_index = 1, .num_blocks = 2 } },
	  0, 16, H("00", "03", "10 00") "01 00 00 00 02 00 00 00" },
	{ "get_device_features_resp_0", { T_RESP(VSHM_MSG_GET_DEVICE_FEATURES),
		.u.feat = { .block_index = 5, .num_blocks = 0 } },
	  0, 16, H("01", "03", "10 00") "05 00 00 00 00 00 00 00" },
	{ "get_device_features_resp_1", { T_RESP(VSHM_MSG_GET_DEVICE_FEATURES),
		.u.feat = { .block_index = 0, .num_blocks = 1, .features = { 0x30000001 } } },
	  0, 20, H("01", "03", "14 00") "00 00 00 00 01 00 00 00 01 00 00 30" },
	{ "get_device_features_resp_max", { T_RESP(VSHM_MSG_GET_DEVICE_FEATURES),
		.u.feat = { .block_index = 0, .num_blocks = 62 } },
	  F_FEAT, 264, H("01", "03", "08 01") "00 00 00 00 3e 00 00 00 d0 c0 b0 a0 d1 c0 b0 a0" },
	{ "set_driver_features_req_0", { T_REQ(VSHM_MSG_SET_DRIVER_FEATURES),
		.u.feat = { .block_index = 0, .num_blocks = 0 } },
	  0, 16, H("00", "04", "10 00") "00 00 00 00 00 00 00 00" },
	{ "set_driver_features_req_2", { T_REQ(VSHM_MSG_SET_DRIVER_FEATURES),
		.u.feat = { .block_index = 0, .num_blocks = 2,
			    .features = { 0x30000000, 0x00000001 } } },
	  0, 24, H("00", "04", "18 00") "00 00 00 00 02 00 00 00 00 00 00 30 01 00 00 00" },
	{ "set_driver_features_req_max", { T_REQ(VSHM_MSG_SET_DRIVER_FEATURES),
		.u.feat = { .block_index = 7, .num_blocks = 62 } },
	  F_FEAT, 264, H("00", "04", "08 01") "07 00 00 00 3e 00 00 00 d0 c0 b0 a0" },
	{ "set_driver_features_resp", { T_RESP(VSHM_MSG_SET_DRIVER_FEATURES) },
	  0, 8, H("01", "04", "08 00") },
	{ "get_config_req", { T_REQ(VSHM_MSG_GET_CONFIG),
		.u.cfg = { .offset = 0x10, .length = 8 } },
	  0, 16, H("00", "05", "10 00") "10 00 00 00 08 00 00 00" },
	{ "get_config_resp_0", { T_RESP(VSHM_MSG_GET_CONFIG),
		.u.cfg = { .generation = 7, .offset = 0x20, .length = 0 } },
	  0, 20, H("01", "05", "14 00") "07 00 00 00 20 00 00 00 00 00 00 00" },
	{ "get_config_resp_1", { T_RESP(VSHM_MSG_GET_CONFIG),
		.u.cfg = { .generation = 0x01020304, .offset = 3, .length = 1, .data = { 0x5a } } },
	  0, 21, H("01", "05", "15 00") "04 03 02 01 03 00 00 00 01 00 00 00 5a" },
	{ "get_config_resp_max", { T_RESP(VSHM_MSG_GET_CONFIG),
		.u.cfg = { .generation = 9, .offset = 0, .length = 244 } },
	  F_CFG, 264, H("01", "05", "08 01") "09 00 00 00 00 00 00 00 f4 00 00 00 03 0a 11 18" },
	{ "set_config_req_0", { T_REQ(VSHM_MSG_SET_CONFIG),
		.u.cfg = { .generation = 0, .offset = 4, .length = 0 } },
	  0, 20, H("00", "06", "14 00") "00 00 00 00 04 00 00 00 00 00 00 00" },
	{ "set_config_req_5", { T_REQ(VSHM_MSG_SET_CONFIG),
		.u.cfg = { .generation = 2, .offset = 8, .length = 5, .data = { 1, 2, 3, 4, 5 } } },
	  0, 25, H("00", "06", "19 00") "02 00 00 00 08 00 00 00 05 00 00 00 01 02 03 04 05" },
	{ "set_config_req_max", { T_REQ(VSHM_MSG_SET_CONFIG),
		.u.cfg = { .generation = 0x55, .offset = 0x1000, .length = 244 } },
	  F_CFG, 264, H("00", "06", "08 01") "55 00 00 00 00 10 00 00 f4 00 00 00 03 0a" },
	{ "set_config_resp_rejected", { T_RESP(VSHM_MSG_SET_CONFIG),
		.u.cfg = { .generation = 3, .offset = 8, .length = 0 } },
	  0, 20, H("01", "06", "14 00") "03 00 00 00 08 00 00 00 00 00 00 00" },
	{ "set_config_resp_applied", { T_RESP(VSHM_MSG_SET_CONFIG),
		.u.cfg = { .generation = 3, .offset = 8, .length = 5, .data = { 1, 2, 3, 4, 5 } } },
	  0, 25, H("01", "06", "19 00") "03 00 00 00 08 00 00 00 05 00 00 00 01 02 03 04 05" },
	{ "get_device_status_req", { T_REQ(VSHM_MSG_GET_DEVICE_STATUS) },
	  0, 8, H("00", "07", "08 00") },
	{ "get_device_status_resp", { T_RESP(VSHM_MSG_GET_DEVICE_STATUS),
		.u.status = { 0x0f } },
	  0, 12, H("01", "07", "0c 00") "0f 00 00 00" },
	{ "set_device_status_req", { T_REQ(VSHM_MSG_SET_DEVICE_STATUS),
		.u.status = { 0x03 } },
	  0, 12, H("00", "08", "0c 00") "03 00 00 00" },
	{ "set_device_status_resp", { T_RESP(VSHM_MSG_SET_DEVICE_STATUS),
		.u.status = { 0x83 } },
	  0, 12, H("01", "08", "0c 00") "83 00 00 00" },
	{ "get_vqueue_req", { T_REQ(VSHM_MSG_GET_VQUEUE), .u.get_vq = { .index = 3 } },
	  0, 12, H("00", "09", "0c 00") "03 00 00 00" },
	{ "get_vqueue_resp", { T_RESP(VSHM_MSG_GET_VQUEUE), .u.get_vq = {
		.index = 3, .max_size = 256, .cur_size = 128, .flags = VSHM_MSG_VQ_ENABLED,
		.desc_addr = 0x1122334455667788ull, .driver_addr = 0x0102030405060708ull,
		.device_addr = 0x8070605040302010ull } },
	  0, 48, H("01", "09", "30 00") "03 00 00 00 00 01 00 00 80 00 00 00 01 00 00 00"
	  " 88 77 66 55 44 33 22 11 08 07 06 05 04 03 02 01 10 20 30 40 50 60 70 80" },
	{ "get_vqueue_resp_sentinel", { T_RESP(VSHM_MSG_GET_VQUEUE), .u.get_vq = { .index = 99 } },
	  0, 48, H("01", "09", "30 00") "63 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
	  " 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00" },
	{ "set_vqueue_req", { T_REQ(VSHM_MSG_SET_VQUEUE), .u.set_vq = {
		.index = 2, .flags = VSHM_MSG_SETVQ_OP_ENABLE, .size = 64,
		.desc_addr = 0x10000, .driver_addr = 0x10400, .device_addr = 0x200011000ull } },
	  0, 48, H("00", "0a", "30 00") "02 00 00 00 01 00 00 00 40 00 00 00 00 00 00 00"
	  " 00 00 01 00 00 00 00 00 00 04 01 00 00 00 00 00 00 10 01 00 02 00 00 00" },
	{ "set_vqueue_req_keep", { T_REQ(VSHM_MSG_SET_VQUEUE), .u.set_vq = {
		.index = 0x10, .flags = 0x3D } },
	  0, 48, H("00", "0a", "30 00") "10 00 00 00 3d 00 00 00 00 00 00 00 00 00 00 00"
	  " 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00" },
	{ "set_vqueue_resp", { T_RESP(VSHM_MSG_SET_VQUEUE) },
	  0, 8, H("01", "0a", "08 00") },
	{ "reset_vqueue_req", { T_REQ(VSHM_MSG_RESET_VQUEUE), .u.reset_vq = { 5 } },
	  0, 12, H("00", "0b", "0c 00") "05 00 00 00" },
	{ "reset_vqueue_resp", { T_RESP(VSHM_MSG_RESET_VQUEUE) },
	  0, 8, H("01", "0b", "08 00") },
	{ "get_shm_req", { T_REQ(VSHM_MSG_GET_SHM), .u.shm = { .shmid = 1 } },
	  0, 12, H("00", "0c", "0c 00") "01 00 00 00" },
	{ "get_shm_resp", { T_RESP(VSHM_MSG_GET_SHM), .u.shm = {
		.shmid = 1, .length = 0x200000, .address = 0x4000000000ull } },
	  0, 32, H("01", "0c", "20 00") "01 00 00 00 00 00 00 00 00 00 20 00 00 00 00 00"
	  " 00 00 00 00 40 00 00 00" },
	{ "event_config_status", { T_REQ(VSHM_MSG_EVENT_CONFIG), .u.event_config = {
		.status = 0x47, .generation = 5 } },
	  0, 24, H("00", "40", "18 00") "47 00 00 00 05 00 00 00 00 00 00 00 00 00 00 00" },
	/* Range without data: length must not be 1 or 4 (see test_oversized). */
	{ "event_config_range", { T_REQ(VSHM_MSG_EVENT_CONFIG), .u.event_config = {
		.status = 0x0f, .generation = 6, .offset = 0x10, .length = 32 } },
	  0, 24, H("00", "40", "18 00") "0f 00 00 00 06 00 00 00 10 00 00 00 20 00 00 00" },
	{ "event_config_data_3", { T_REQ(VSHM_MSG_EVENT_CONFIG), .u.event_config = {
		.status = 0x0f, .generation = 7, .offset = 2, .length = 3, .has_data = true,
		.data = { 0xaa, 0xbb, 0xcc } } },
	  0, 27, H("00", "40", "1b 00") "0f 00 00 00 07 00 00 00 02 00 00 00 03 00 00 00"
	  " aa bb cc" },
	{ "event_config_data_max", { T_REQ(VSHM_MSG_EVENT_CONFIG), .u.event_config = {
		.status = 0x0f, .generation = 8, .offset = 0, .length = 240, .has_data = true } },
	  F_EVT, 264, H("00", "40", "08 01") "0f 00 00 00 08 00 00 00 00 00 00 00 f0 00 00 00"
	  " 05 10 1b" },
	{ "event_avail", { T_REQ(VSHM_MSG_EVENT_AVAIL), .u.event_avail = {
		.vq_index = 1, .next_offset = 0x80000005 } },
	  0, 16, H("00", "41", "10 00") "01 00 00 00 05 00 00 80" },
	/* Device number 0 is a valid transport target. */
	{ "event_used", { .id = VSHM_MSG_EVENT_USED, .dev_num = 0, .token = TOK,
		.u.event_used = { 1 } },
	  0, 12, "00 42 00 00 ef be 0c 00 01 00 00 00" },
	{ "bus_get_devices_req", { B_REQ(VSHM_MSG_BUS_GET_DEVICES),
		.u.get_devices = { .offset = 0, .count = 16 } },
	  0, 12, HB("02", "02", "0c 00") "00 00 10 00" },
	{ "bus_get_devices_resp_0", { B_RESP(VSHM_MSG_BUS_GET_DEVICES),
		.u.get_devices = { .offset = 0x20, .next_offset = 0, .count = 0 } },
	  0, 14, HB("03", "02", "0e 00") "20 00 00 00 00 00" },
	/* The spec's example: devices 0, 2 and 5 of a 16-slot window. */
	{ "bus_get_devices_resp_16", { B_RESP(VSHM_MSG_BUS_GET_DEVICES),
		.u.get_devices = { .offset = 0, .next_offset = 16, .count = 16,
				   .bitmap = { 0x25, 0x00 } } },
	  0, 16, HB("03", "02", "10 00") "00 00 10 00 10 00 25 00" },
	{ "bus_get_devices_resp_13", { B_RESP(VSHM_MSG_BUS_GET_DEVICES),
		.u.get_devices = { .offset = 0x100, .next_offset = 0, .count = 13,
				   .bitmap = { 0xff, 0x1f } } },
	  0, 16, HB("03", "02", "10 00") "00 01 00 00 0d 00 ff 1f" },
	{ "bus_get_devices_resp_max", { B_RESP(VSHM_MSG_BUS_GET_DEVICES),
		.u.get_devices = { .offset = 0x100, .next_offset = 0x8d0, .count = 2000 } },
	  F_BITMAP, 264, HB("03", "02", "08 01") "00 01 d0 08 d0 07 01 0e 1b" },
	{ "bus_ping_req", { B_REQ(VSHM_MSG_BUS_PING), .u.ping = { 0xdeadbeef } },
	  0, 12, HB("02", "03", "0c 00") "ef be ad de" },
	{ "bus_ping_resp", { B_RESP(VSHM_MSG_BUS_PING), .u.ping = { 0xdeadbeef } },
	  0, 12, HB("03", "03", "0c 00") "ef be ad de" },
	{ "bus_event_device_added", { B_REQ(VSHM_MSG_BUS_EVENT_DEVICE),
		.u.event_device = { .dev_num = 7, .state = VSHM_MSG_DEV_ADDED } },
	  0, 12, HB("02", "40", "0c 00") "07 00 01 00" },
	{ "bus_event_device_removed", { B_REQ(VSHM_MSG_BUS_EVENT_DEVICE),
		.u.event_device = { .dev_num = 0xfffe, .state = VSHM_MSG_DEV_REMOVED } },
	  0, 12, HB("02", "40", "0c 00") "fe ff 02 00" },
};

/* The expected decoded form of case @c, variable parts filled. */
static void expected(const struct vcase *c, struct vshm_msg *m)
{
	memcpy(m, &c->m, sizeof(*m));
	m->size = c->size;
	switch (c->fill) {
	case F_FEAT:
		for (uint32_t i = 0; i < m->u.feat.num_blocks; i++)
			m->u.feat.features[i] = 0xA0B0C0D0u + i;
		break;
	case F_CFG:
		for (uint32_t i = 0; i < m->u.cfg.length; i++)
			m->u.cfg.data[i] = (uint8_t)(i * 7 + 3);
		break;
	case F_EVT:
		for (uint32_t i = 0; i < m->u.event_config.length; i++)
			m->u.event_config.data[i] = (uint8_t)(i * 11 + 5);
		break;
	case F_BITMAP:
		for (uint32_t i = 0; i < (m->u.get_devices.count + 7u) / 8; i++)
			m->u.get_devices.bitmap[i] = (uint8_t)(i * 13 + 1);
		break;
	case F_NONE:
		break;
	}
}

static const struct vcase *find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		if (!strcmp(cases[i].name, name))
			return &cases[i];
	fprintf(stderr, "no case %s\n", name);
	exit(2);
}

/* Encode case @name into @buf; returns its size (a failure is fatal). */
static size_t enc_case(const char *name, uint8_t *buf, size_t cap)
{
	struct vshm_msg m;
	int n;

	expected(find(name), &m);
	n = vshm_msg_encode(&m, buf, cap, MAX);
	if (n <= 0) {
		fprintf(stderr, "encode %s: %d\n", name, n);
		exit(2);
	}
	return (size_t)n;
}

static size_t parse_hex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;

	while (*s) {
		unsigned v;

		if (*s == ' ') {
			s++;
			continue;
		}
		if (n == cap || sscanf(s, "%2x", &v) != 1)
			return SIZE_MAX;
		out[n++] = (uint8_t)v;
		s += 2;
	}
	return n;
}

static void put_le(uint8_t *p, unsigned width, uint64_t v)
{
	for (unsigned i = 0; i < width; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/*
 * Decode @len bytes from an exactly-sized heap copy, so that the sanitizer
 * build catches any read past @len.
 */
static int dec_exact(const uint8_t *buf, size_t len, size_t max_size, struct vshm_msg *m)
{
	uint8_t *p = malloc(len ? len : 1);
	int rc;

	if (!p)
		abort();
	memcpy(p, buf, len);
	rc = vshm_msg_decode(p, len, max_size, m);
	free(p);
	return rc;
}

static void write_corpus(const char *dir, const char *name, const uint8_t *buf, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.bin", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len) {
		diag("cannot write %s", path);
		if (f)
			fclose(f);
		return;
	}
	fclose(f);
}

/* ------------------------------------------------------------------------ */

static void test_roundtrip(void)
{
	const char *corpus = getenv("VSHM_CORPUS_DIR");

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct vcase *c = &cases[i];
		uint8_t buf[MAX + 16], gold[MAX];
		struct vshm_msg want, got;
		size_t ng;
		int n, rc;

		expected(c, &want);
		is(vshm_msg_encoded_size(&want, MAX), c->size, "case %zu %s: encoded size", i + 1, c->name);
		memset(buf, 0xa5, sizeof(buf));
		n = vshm_msg_encode(&want, buf, sizeof(buf), MAX);
		is(n, c->size, "case %zu %s: encode", i + 1, c->name);
		if (n != c->size)
			continue;
		ng = parse_hex(c->hex, gold, sizeof(gold));
		ok(ng <= (size_t)n && (c->fill || ng == (size_t)n) && !memcmp(buf, gold, ng) &&
		   buf[n] == 0xa5,
		   "case %zu %s: golden bytes (%zu) and nothing written past msg_size", i + 1, c->name, ng);
		memset(&got, 0x5a, sizeof(got));
		rc = dec_exact(buf, (size_t)n, MAX, &got);
		is(rc, 0, "case %zu %s: decode", i + 1, c->name);
		ok(!memcmp(&got, &want, sizeof(got)), "case %zu %s: decode(encode(m)) == m", i + 1, c->name);
		rc = dec_exact(buf, (size_t)n, VSHM_MSG_MIN_MAX_SIZE, &got);
		is(rc, n <= 52 ? 0 : -EMSGSIZE, "case %zu %s: decode at max_size 52", i + 1, c->name);
		ok(strcmp(vshm_msg_name(want.type, want.id), "UNKNOWN") != 0 &&
		   strncmp(vshm_msg_name(want.type, want.id), "BUS_UNKNOWN", 11) != 0,
		   "case %zu %s: named %s", i + 1, c->name, vshm_msg_name(want.type, want.id));
		if (corpus && *corpus)
			write_corpus(corpus, c->name, buf, (size_t)n);
	}
}

static void test_truncated(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct vcase *c = &cases[i];
		uint8_t buf[MAX];
		struct vshm_msg m;
		size_t n = enc_case(c->name, buf, sizeof(buf)), bad = SIZE_MAX, accepted = 0;
		int is_evt_data = c->m.id == VSHM_MSG_EVENT_CONFIG && c->m.u.event_config.has_data;

		/* msg_size left at the full size: every shorter len mismatches. */
		for (size_t len = 0; len < n && bad == SIZE_MAX; len++)
			if (dec_exact(buf, len, MAX, &m) != -EBADMSG)
				bad = len;
		ok(bad == SIZE_MAX, "case %zu %s: all %zu truncations refused (msg_size %zu)",
		   i + 1, c->name, n, n);
		if (bad != SIZE_MAX)
			diag("accepted or wrong error at len %zu", bad);

		/*
		 * msg_size rewritten to the truncated length: the body itself is
		 * short.  The one legal truncation is an EVENT_CONFIG cut right
		 * after its fixed part: that is a data-less event naming the range.
		 */
		bad = SIZE_MAX;
		for (size_t len = 8; len < n && bad == SIZE_MAX; len++) {
			uint8_t t[MAX];
			int rc;

			memcpy(t, buf, len);
			put_le(t + 6, 2, len);
			rc = dec_exact(t, len, MAX, &m);
			if (is_evt_data && len == 24 && rc == 0 && !m.u.event_config.has_data &&
			    m.u.event_config.length == c->m.u.event_config.length)
				accepted++;
			else if (rc != -EBADMSG)
				bad = len;
		}
		ok(bad == SIZE_MAX && accepted == (size_t)is_evt_data,
		   "case %zu %s: all truncations with matching msg_size refused%s", i + 1, c->name,
		   is_evt_data ? " (except the data-less event at 24)" : "");
		if (bad != SIZE_MAX)
			diag("accepted or wrong error at len %zu", bad);
	}
}

static void test_oversized(void)
{
	static const unsigned extra[] = { 1, 4 };

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct vcase *c = &cases[i];
		uint8_t buf[MAX + 8];
		struct vshm_msg m;
		size_t n = enc_case(c->name, buf, sizeof(buf));

		for (size_t e = 0; e < ARRAY_SIZE(extra); e++) {
			size_t len = n + extra[e];
			int want = len > MAX ? -EMSGSIZE : -EBADMSG;

			memset(buf + n, 0, extra[e]);
			put_le(buf + 6, 2, n);
			is(dec_exact(buf, len, MAX, &m), want,
			   "case %zu %s: +%u bytes, msg_size %zu refused", i + 1, c->name, extra[e], n);
			put_le(buf + 6, 2, len);
			is(dec_exact(buf, len, MAX, &m), want,
			   "case %zu %s: +%u bytes, msg_size %zu refused", i + 1, c->name, extra[e], len);
		}
	}
}

static void test_header(void)
{
	uint8_t buf[MAX + 8], t[MAX + 8];
	struct vshm_msg m, want;
	size_t n;
	int rc;

	/* msg_size disagreeing with len. */
	n = enc_case("get_vqueue_resp", buf, sizeof(buf));
	{
		static const unsigned sizes[] = { 0, 7, 8, 47, 49, 264, 265, 0xffff };

		for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
			memcpy(t, buf, n);
			put_le(t + 6, 2, sizes[i]);
			is(dec_exact(t, n, MAX, &m), sizes[i] > MAX ? -EMSGSIZE : -EBADMSG,
			   "msg_size %u with len %zu refused", sizes[i], n);
		}
	}
	n = enc_case("event_used", buf, sizeof(buf));
	ok(vshm_msg_decode(buf, n, 65535, &m) == 0 && m.size == n, "max_size 65535 accepted");
	memset(t, 0, sizeof(t));
	memcpy(t, buf, n);
	put_le(t + 6, 2, MAX + 1);
	is(vshm_msg_decode(t, MAX + 1, 65535, &m), -EMSGSIZE, "265 bytes refused even at max_size 65535");

	/* Type bits 2-7: ignored on receive, never sent. */
	{
		static const char *const names[] = { "get_config_resp_1", "set_vqueue_req",
						     "event_avail", "bus_ping_resp" };

		for (size_t k = 0; k < ARRAY_SIZE(names); k++) {
			n = enc_case(names[k], buf, sizeof(buf));
			expected(find(names[k]), &want);
			for (unsigned bit = 2; bit < 8; bit++) {
				uint8_t out[MAX];

				memcpy(t, buf, n);
				t[0] |= (uint8_t)(1u << bit);
				rc = dec_exact(t, n, MAX, &m);
				ok(rc == 0 && !memcmp(&m, &want, sizeof(m)) &&
				   vshm_msg_encode(&m, out, sizeof(out), MAX) == (int)n &&
				   !memcmp(out, buf, n),
				   "%s: type bit %u ignored on receive, cleared on send", names[k], bit);
			}
		}
		expected(find("event_used"), &want);
		want.type |= 0xfc;
		rc = vshm_msg_encode(&want, t, sizeof(t), MAX);
		ok(rc == 12 && t[0] == 0x00, "encode clears type bits 2-7 given in m->type");
	}

	/* An event is never a response. */
	{
		static const char *const names[] = { "event_config_status", "event_config_data_3",
						     "event_avail", "event_used", "bus_event_device_added" };

		for (size_t k = 0; k < ARRAY_SIZE(names); k++) {
			n = enc_case(names[k], buf, sizeof(buf));
			buf[0] |= VSHM_MSG_TYPE_RESPONSE;
			is(dec_exact(buf, n, MAX, &m), -EBADMSG, "%s flagged as a response refused", names[k]);
			expected(find(names[k]), &want);
			want.type |= VSHM_MSG_TYPE_RESPONSE;
			is(vshm_msg_encode(&want, t, sizeof(t), MAX), -EINVAL,
			   "%s as a response not encoded", names[k]);
		}
		n = enc_case("event_used", buf, sizeof(buf));
		buf[1] = 0xc1;		/* implementation-defined event */
		buf[0] = VSHM_MSG_TYPE_RESPONSE;
		is(dec_exact(buf, n, MAX, &m), -EBADMSG, "implementation-defined event as response refused");
		buf[0] = 0;
		is(dec_exact(buf, n, MAX, &m), -ENOTSUP, "implementation-defined event: -ENOTSUP");
	}

	/* Bus messages carry dev_num 0. */
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		static const unsigned devs[] = { 1, 0x8000, 0xffff };

		if (!(cases[i].m.type & VSHM_MSG_TYPE_BUS))
			continue;
		n = enc_case(cases[i].name, buf, sizeof(buf));
		for (size_t d = 0; d < ARRAY_SIZE(devs); d++) {
			memcpy(t, buf, n);
			put_le(t + 2, 2, devs[d]);
			is(dec_exact(t, n, MAX, &m), -EBADMSG, "%s with dev_num %#x refused",
			   cases[i].name, devs[d]);
		}
		expected(&cases[i], &want);
		want.dev_num = 1;
		is(vshm_msg_encode(&want, t, sizeof(t), MAX), -EINVAL, "%s with dev_num 1 not encoded",
		   cases[i].name);
	}

	/* Unknown bus msg_ids: malformed.  Unknown transport ids: -ENOTSUP. */
	{
		static const uint8_t bus_ids[] = { 0x00, 0x01, 0x04, 0x3f, 0x41, 0x7f, 0x80, 0x82, 0xc0 };
		static const uint8_t tr_ids[] = { 0x00, 0x01, 0x0d, 0x3f, 0x43, 0x7f, 0x80, 0x82, 0xbf, 0xc2 };

		n = enc_case("bus_ping_req", buf, sizeof(buf));
		for (size_t k = 0; k < ARRAY_SIZE(bus_ids); k++) {
			memcpy(t, buf, n);
			t[1] = bus_ids[k];
			t[0] = VSHM_MSG_TYPE_BUS;
			is(dec_exact(t, n, MAX, &m), -EBADMSG, "bus msg_id %#04x refused", bus_ids[k]);
			vshm_msg_init_bus(&want, bus_ids[k]);
			is(vshm_msg_encode(&want, t, sizeof(t), MAX), -EINVAL,
			   "bus msg_id %#04x not encoded", bus_ids[k]);
		}
		n = enc_case("get_vqueue_req", buf, sizeof(buf));
		for (size_t k = 0; k < ARRAY_SIZE(tr_ids); k++) {
			memcpy(t, buf, n);
			t[1] = tr_ids[k];
			t[0] = tr_ids[k] & VSHM_MSG_ID_EVENT ? 0 : VSHM_MSG_TYPE_RESPONSE;
			memset(&m, 0x5a, sizeof(m));
			rc = dec_exact(t, n, MAX, &m);
			vshm_msg_init(&want, t[0], tr_ids[k], DEV);
			want.token = TOK;
			want.size = (uint16_t)n;
			ok(rc == -ENOTSUP && !memcmp(&m, &want, sizeof(m)),
			   "transport msg_id %#04x: -ENOTSUP with the header filled in", tr_ids[k]);
			is(vshm_msg_encode(&want, t, sizeof(t), MAX), -ENOTSUP,
			   "transport msg_id %#04x not encoded", tr_ids[k]);
		}
		/* Framing still comes first for an unknown id. */
		memcpy(t, buf, n);
		t[1] = 0x0d;
		put_le(t + 6, 2, n + 1);
		is(dec_exact(t, n, MAX, &m), -EBADMSG, "unknown transport id with a bad msg_size: -EBADMSG");
	}

	/* max_size and argument checks. */
	{
		static const size_t bad_max[] = { 0, 8, 44, 51, 65536, SIZE_MAX };

		n = enc_case("get_device_info_resp", buf, sizeof(buf));
		for (size_t k = 0; k < ARRAY_SIZE(bad_max); k++) {
			is(vshm_msg_decode(buf, n, bad_max[k], &m), -EINVAL, "decode refuses max_size %zu", bad_max[k]);
			expected(find("get_device_info_resp"), &want);
			is(vshm_msg_encode(&want, t, sizeof(t), bad_max[k]), -EINVAL,
			   "encode refuses max_size %zu", bad_max[k]);
		}
		is(vshm_msg_decode(buf, n, 52, &m), 0, "a 52-byte GET_DEVICE_INFO response fits max_size 52");
		is(vshm_msg_decode(buf, n, MAX, NULL), -EINVAL, "decode refuses a NULL message");
		is(vshm_msg_decode(NULL, 0, MAX, &m), -EBADMSG, "decode of nothing: -EBADMSG");
		is(vshm_msg_encode(NULL, t, sizeof(t), MAX), -EINVAL, "encode refuses a NULL message");
	}
}

/* Encode case @name, poke @width bytes of @v at message offset @off, decode. */
static int poke(const char *name, size_t off, unsigned width, uint64_t v, struct vshm_msg *m)
{
	uint8_t buf[MAX];
	size_t n = enc_case(name, buf, sizeof(buf));

	put_le(buf + off, width, v);
	return dec_exact(buf, n, MAX, m);
}

/* Set bit @bit of the @width-byte field at @off. */
static int poke_bit(const char *name, size_t off, unsigned bit, struct vshm_msg *m)
{
	uint8_t buf[MAX];
	size_t n = enc_case(name, buf, sizeof(buf));

	buf[off + bit / 8] |= (uint8_t)(1u << (bit & 7));
	return dec_exact(buf, n, MAX, m);
}

static void test_reserved(void)
{
	struct vshm_msg m;
	unsigned bad;

	/* GET_VQUEUE response flags 31:1 (message offset 8 + 12). */
	for (unsigned bit = 1; bit < 32; bit++)
		is(poke_bit("get_vqueue_resp", 20, bit, &m), -EBADMSG,
		   "GET_VQUEUE resp flags bit %u refused", bit);
	/* GET_SHM response reserved (offset 8 + 4). */
	for (unsigned bit = 0; bit < 32; bit++)
		is(poke_bit("get_shm_resp", 12, bit, &m), -EBADMSG,
		   "GET_SHM resp reserved bit %u refused", bit);
	/* GET_DEVICES padding bits: count 13 leaves bits 5-7 of byte 1 unused. */
	for (unsigned bit = 13; bit < 16; bit++)
		is(poke_bit("bus_get_devices_resp_13", 14, bit, &m), -EBADMSG,
		   "GET_DEVICES count 13: padding bit %u refused", bit);
	/* ... and with count rewritten to 1, bits 1-7 of byte 0. */
	bad = 0;
	for (unsigned bit = 1; bit < 8; bit++) {
		uint8_t buf[MAX];
		size_t n = enc_case("bus_get_devices_resp_13", buf, sizeof(buf)) - 1;

		put_le(buf + 6, 2, n);
		put_le(buf + 12, 2, 1);
		buf[14] = (uint8_t)(1u | 1u << bit);
		is(dec_exact(buf, n, MAX, &m), -EBADMSG, "GET_DEVICES count 1: padding bit %u refused", bit);
		buf[14] = 1;
		bad += dec_exact(buf, n, MAX, &m) != 0;
	}
	is(bad, 0, "GET_DEVICES count 1 with only bit 0 accepted");
	for (unsigned bit = 0; bit < 16; bit++)
		ok(poke_bit("bus_get_devices_resp_16", 14, bit, &m) == 0,
		   "GET_DEVICES count 16: bit %u is a device, not padding", bit);
}

/* One rule case: poke one or two fields of a valid encoding, decode. */
struct rcase {
	const char *name;	/* base case */
	size_t off;		/* message offset of the field */
	unsigned width;
	uint64_t v;
	size_t off2;		/* a second field, if width2 != 0 */
	unsigned width2;
	uint64_t v2;
	int rc;			/* expected decode result */
	const char *why;
};

#define P1(o, w, v) (o), (w), (v), 0, 0, 0
#define P2(o, w, v, o2, w2, v2) (o), (w), (v), (o2), (w2), (v2)

static void test_rules(void)
{
	static const struct rcase rules[] = {
		/* GET_DEVICE_INFO (start 14, count 2, max 16): admin range, queues. */
		{ "get_device_info_resp", P1(48, 4, 0), -EBADMSG, "admin_vq_start 14 without admin queues" },
		{ "get_device_info_resp", P2(48, 4, 0, 44, 4, 0), 0, "no admin queues" },
		{ "get_device_info_resp", P2(48, 4, 0, 40, 4, 0), -EBADMSG, "start 14, count 0, no queues" },
		{ "get_device_info_resp", P1(40, 4, 65536), 0, "max_virtqueues 65536" },
		{ "get_device_info_resp", P1(40, 4, 65537), -EBADMSG, "max_virtqueues 65537" },
		{ "get_device_info_resp", P1(40, 4, 0xffffffff), -EBADMSG, "max_virtqueues 2^32-1" },
		{ "get_device_info_resp", P1(40, 4, 15), -EBADMSG, "admin range end 16 > 15 queues" },
		{ "get_device_info_resp", P1(44, 4, 15), -EBADMSG, "admin range end 17 > 16 queues" },
		{ "get_device_info_resp", P1(44, 4, 0xffffffff), -EBADMSG, "admin range wrapping 32 bits" },
		{ "get_device_info_resp", P1(48, 4, 0xffffffff), -EBADMSG, "admin_vq_count 2^32-1" },
		{ "get_device_info_resp", P1(44, 4, 0), 0, "admin range at the start" },
		{ "get_device_info_resp", P2(48, 4, 16, 44, 4, 0), 0, "every queue an admin queue" },
		{ "get_device_info_resp", P2(48, 4, 0, 44, 4, 0), 0, "no admin queues, start 0" },
		{ "get_device_info_resp", P1(32, 4, 0xffffffff), 0, "num_feature_blocks: any value" },
		/* GET_VQUEUE response: sentinel and sizes. */
		{ "get_vqueue_resp", P1(16, 4, 257), -EBADMSG, "cur_size > max_size" },
		{ "get_vqueue_resp", P1(16, 4, 256), 0, "cur_size == max_size" },
		{ "get_vqueue_resp", P1(20, 4, 0), 0, "disabled queue" },
		{ "get_vqueue_resp", P2(12, 4, 0, 16, 4, 0), -EBADMSG, "max_size 0 with addresses" },
		{ "get_vqueue_resp_sentinel", P1(16, 4, 1), -EBADMSG, "sentinel with cur_size" },
		{ "get_vqueue_resp_sentinel", P1(20, 4, 1), -EBADMSG, "sentinel flagged enabled" },
		{ "get_vqueue_resp_sentinel", P1(24, 8, 0x1000), -EBADMSG, "sentinel with desc_addr" },
		{ "get_vqueue_resp_sentinel", P1(32, 8, 0x1000), -EBADMSG, "sentinel with driver_addr" },
		{ "get_vqueue_resp_sentinel", P1(40, 8, 1ull << 63), -EBADMSG, "sentinel with device_addr" },
		{ "get_vqueue_resp_sentinel", P1(8, 4, 0xffffffff), 0, "sentinel: index is echoed, any value" },
		/* Config ranges [offset, offset+length) inside a 32-bit space. */
		{ "get_config_req", P1(8, 4, 0xfffffff7), 0, "GET_CONFIG range ending at 2^32-1" },
		{ "get_config_req", P1(8, 4, 0xfffffff8), -EBADMSG, "GET_CONFIG range past 2^32-1" },
		{ "get_config_resp_1", P1(12, 4, 0xffffffff), -EBADMSG, "GET_CONFIG resp range wrapping" },
		{ "get_config_resp_1", P1(12, 4, 0xfffffffe), 0, "GET_CONFIG resp last byte" },
		{ "get_config_resp_0", P1(12, 4, 0xffffffff), 0, "GET_CONFIG resp empty range at 2^32-1" },
		{ "set_config_req_5", P1(12, 4, 0xfffffffc), -EBADMSG, "SET_CONFIG range wrapping" },
		{ "set_config_req_5", P1(12, 4, 0xfffffffa), 0, "SET_CONFIG range ending at 2^32-1" },
		{ "set_config_resp_applied", P1(12, 4, 0xfffffffb), -EBADMSG, "SET_CONFIG resp range past 2^32-1" },
		{ "set_config_resp_rejected", P1(12, 4, 0xffffffff), 0, "SET_CONFIG resp not applied, any offset" },
		{ "event_config_range", P1(16, 4, 0xffffffe0), -EBADMSG, "EVENT_CONFIG range past 2^32-1" },
		{ "event_config_range", P1(16, 4, 0xffffffdf), 0, "EVENT_CONFIG range ending at 2^32-1" },
		{ "event_config_range", P1(20, 4, 0xffffffff), -EBADMSG, "EVENT_CONFIG length 2^32-1 at 0x10" },
		{ "event_config_range", P2(16, 4, 0, 20, 4, 0xffffffff), 0, "EVENT_CONFIG whole space, no data" },
		{ "event_config_status", P1(16, 4, 5), 0, "EVENT_CONFIG offset with length 0" },
		/* Requests whose only valid answer cannot fit. */
		{ "get_device_features_req", P1(12, 4, 62), 0, "GET_DEVICE_FEATURES 62 blocks" },
		{ "get_device_features_req", P1(12, 4, 63), -EMSGSIZE, "GET_DEVICE_FEATURES 63 blocks" },
		{ "get_device_features_req", P1(12, 4, 0xffffffff), -EMSGSIZE, "GET_DEVICE_FEATURES 2^32-1 blocks" },
		{ "get_config_req", P1(12, 4, 244), 0, "GET_CONFIG 244 bytes" },
		{ "get_config_req", P1(12, 4, 245), -EMSGSIZE, "GET_CONFIG 245 bytes" },
		/* GET_DEVICES paging and the 16-bit device space. */
		{ "bus_get_devices_resp_16", P1(10, 2, 0), 0, "next_offset 0 (done)" },
		{ "bus_get_devices_resp_16", P1(10, 2, 1), 0, "next_offset just past offset 0" },
		{ "bus_get_devices_resp_13", P1(10, 2, 0x100), -EBADMSG, "next_offset == offset" },
		{ "bus_get_devices_resp_13", P1(10, 2, 0xff), -EBADMSG, "next_offset < offset" },
		{ "bus_get_devices_resp_13", P1(10, 2, 0x101), 0, "next_offset > offset" },
		{ "bus_get_devices_resp_13", P1(8, 2, 0xfff3), 0, "13 slots ending at device 65535" },
		{ "bus_get_devices_resp_13", P1(8, 2, 0xfff4), -EBADMSG, "a present device 65536" },
		{ "bus_get_devices_resp_13", P1(8, 2, 0xffff), -EBADMSG, "present devices past 65535" },
		{ "bus_get_devices_resp_16", P2(8, 2, 0xfff8, 10, 2, 0), 0, "window past 65535, those bits 0" },
		{ "bus_get_devices_resp_16", P2(8, 2, 0xfff8, 10, 2, 0xfff9), 0, "next_offset 0xfff9 > 0xfff8" },
		/* EVENT_DEVICE state values. */
		{ "bus_event_device_added", P1(10, 2, 0), -EBADMSG, "state 0" },
		{ "bus_event_device_added", P1(10, 2, 3), -EBADMSG, "state 3 (reserved)" },
		{ "bus_event_device_added", P1(10, 2, 0x7fff), -EBADMSG, "state 0x7fff (reserved)" },
		{ "bus_event_device_added", P1(10, 2, 0x8000), 0, "state 0x8000 (impl-defined)" },
		{ "bus_event_device_added", P1(10, 2, 0xffff), 0, "state 0xffff (impl-defined)" },
		{ "bus_event_device_added", P1(8, 2, 0xffff), 0, "device number 0xffff" },
		/* Fields of which any value is fine here. */
		{ "event_avail", P1(12, 4, 0xffffffff), 0, "EVENT_AVAIL next_offset is judged by the device" },
		{ "get_shm_resp", P1(16, 8, 0), 0, "GET_SHM length 0 (unsupported shmid)" },
		{ "get_vqueue_resp", P1(12, 4, 0xffffffff), 0, "GET_VQUEUE max_size is not bounded here" },
		{ "set_device_status_req", P1(8, 4, 0xffffffff), 0, "status: any bits" },
		{ "get_config_req", P2(8, 4, 0, 12, 4, 0), 0, "GET_CONFIG of 0 bytes" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(rules); i++) {
		const struct rcase *r = &rules[i];
		uint8_t buf[MAX], out[MAX];
		struct vshm_msg m;
		size_t n = enc_case(r->name, buf, sizeof(buf));
		int rc;

		put_le(buf + r->off, r->width, r->v);
		if (r->width2)
			put_le(buf + r->off2, r->width2, r->v2);
		rc = dec_exact(buf, n, MAX, &m);
		is(rc, r->rc, "rule %zu: %s: decode", i + 1, r->why);
		if (rc == 0 && r->rc == 0)
			ok(vshm_msg_encode(&m, out, sizeof(out), MAX) == (int)n && !memcmp(out, buf, n),
			   "rule %zu: %s: re-encodes to the same bytes", i + 1, r->why);
	}

	/* The encoder's side of the same rules, from structs. */
	{
		struct vshm_msg m;
		uint8_t out[MAX];

		expected(find("get_device_info_resp"), &m);
		m.u.dev_info.admin_vq_count = 0;
		is(vshm_msg_encode(&m, out, sizeof(out), MAX), -EINVAL, "encode: admin_vq_start without admin queues");
		m.u.dev_info.admin_vq_start = 0;
		m.u.dev_info.max_virtqueues = 65537;
		is(vshm_msg_encode(&m, out, sizeof(out), MAX), -EINVAL, "encode: max_virtqueues 65537");
		expected(find("get_vqueue_resp"), &m);
		m.u.get_vq.flags = 2;
		is(vshm_msg_encode(&m, out, sizeof(out), MAX), -EINVAL, "encode: GET_VQUEUE flags bit 1");
		expected(find("get_vqueue_resp_sentinel"), &m);
		m.u.get_vq.device_addr = 8;
		is(vshm_msg_encode(&m, out, sizeof(out), MAX), -EINVAL, "encode: sentinel with an address");
		expected(find("bus_get_devices_resp_13"), &m);
		m.u.get_devices.bitmap[1] = 0x3f;
		is(vshm_msg_encode(&m, out, sizeof(out), MAX), -EINVAL, "encode: GET_DEVICES padding bit");
		expected(find("bus_get_devices_resp_13"), &m);
		m.u.get_devices.next_offset = 0x100;
		is(vshm_msg_encode(&m, out, sizeof(out), MAX), -EINVAL, "encode: next_offset == offset");
		expected(find("bus_get_devices_resp_16"), &m);
		m.u.get_devices.offset = 0xfff8;
		m.u.get_devices.next_offset = 0;
		m.u.get_devices.bitmap[1] = 0x01;
		is(vshm_msg_encode(&m, out, sizeof(out), MAX), -EINVAL, "encode: device 65536 in the bitmap");
		expected(find("bus_event_device_added"), &m);
		m.u.event_device.state = 3;
		is(vshm_msg_encode(&m, out, sizeof(out), MAX), -EINVAL, "encode: EVENT_DEVICE state 3");
		expected(find("set_config_req_5"), &m);
		m.u.cfg.offset = 0xfffffffc;
		is(vshm_msg_encode(&m, out, sizeof(out), MAX), -EINVAL, "encode: SET_CONFIG range wrapping");
		expected(find("event_config_status"), &m);
		m.u.event_config.has_data = true;
		is(vshm_msg_encode(&m, out, sizeof(out), MAX), -EINVAL, "encode: EVENT_CONFIG data of length 0");
		expected(find("get_device_features_req"), &m);
		m.u.feat.num_blocks = 63;
		is(vshm_msg_encode(&m, out, sizeof(out), MAX), -EMSGSIZE, "encode: GET_DEVICE_FEATURES for 63 blocks");
		m.u.feat.num_blocks = 9;
		is(vshm_msg_encode(&m, out, sizeof(out), 52), 16, "encode: 9 blocks fit at max_size 52");
		m.u.feat.num_blocks = 10;
		is(vshm_msg_encode(&m, out, sizeof(out), 52), -EMSGSIZE, "encode: 10 blocks do not fit at 52");
		expected(find("get_config_req"), &m);
		m.u.cfg.length = 32;
		is(vshm_msg_encode(&m, out, sizeof(out), 52), 16, "encode: GET_CONFIG of 32 bytes at max_size 52");
		m.u.cfg.length = 33;
		is(vshm_msg_encode(&m, out, sizeof(out), 52), -EMSGSIZE, "encode: GET_CONFIG of 33 bytes at 52");
	}
}

static void test_set_vq_invalid(void)
{
	struct vshm_msg m, want;
	uint8_t buf[MAX], out[MAX];
	unsigned bad;
	size_t n;

	/* reserved (offset 8 + 12): each bit alone. */
	for (unsigned bit = 0; bit < 32; bit++)
		ok(poke_bit("set_vqueue_req", 20, bit, &m) == 0 && m.u.set_vq.invalid &&
		   m.u.set_vq.reserved == 1u << bit && m.u.set_vq.index == 2,
		   "SET_VQUEUE reserved bit %u: decoded, flagged invalid", bit);
	/* flags (offset 8 + 4) bits 31:6. */
	for (unsigned bit = 6; bit < 32; bit++)
		ok(poke_bit("set_vqueue_req", 12, bit, &m) == 0 && m.u.set_vq.invalid &&
		   m.u.set_vq.flags == (VSHM_MSG_SETVQ_OP_ENABLE | 1u << bit),
		   "SET_VQUEUE flags bit %u: decoded, flagged invalid", bit);
	ok(poke("set_vqueue_req", 12, 4, VSHM_MSG_SETVQ_OP_RESERVED, &m) == 0 && m.u.set_vq.invalid,
	   "SET_VQUEUE state op 3: decoded, flagged invalid");
	ok(poke("set_vqueue_req", 12, 4, 0x3f, &m) == 0 && m.u.set_vq.invalid,
	   "SET_VQUEUE flags 0x3f (op 3, all ignore bits): flagged invalid");

	/* Every other flags value is valid and re-encodes to the same bytes. */
	bad = 0;
	n = enc_case("set_vqueue_req", buf, sizeof(buf));
	for (uint32_t f = 0; f <= VSHM_MSG_SETVQ_FLAGS_MASK; f++) {
		if ((f & VSHM_MSG_SETVQ_OP_MASK) == VSHM_MSG_SETVQ_OP_RESERVED)
			continue;
		put_le(buf + 12, 4, f);
		if (dec_exact(buf, n, MAX, &m) || m.u.set_vq.invalid ||
		    vshm_msg_encode(&m, out, sizeof(out), MAX) != (int)n || memcmp(out, buf, n))
			bad++;
	}
	is(bad, 0, "SET_VQUEUE: all 48 valid flags values decode clean and round-trip");

	/* The empty answer to an invalid request is an ordinary response. */
	poke("set_vqueue_req", 20, 4, 7, &m);
	vshm_msg_init_resp(&want, &m);
	ok(vshm_msg_encode(&want, out, sizeof(out), MAX) == 8 && out[0] == 1 && out[1] == 0x0a,
	   "SET_VQUEUE: the normal empty response is encodable for an invalid request");

	/* The encoder never sends one. */
	is(vshm_msg_encode(&m, out, sizeof(out), MAX), -EINVAL, "encode refuses SET_VQUEUE reserved != 0");
	expected(find("set_vqueue_req"), &m);
	m.u.set_vq.flags = 0x40 | VSHM_MSG_SETVQ_OP_ENABLE;
	is(vshm_msg_encode(&m, out, sizeof(out), MAX), -EINVAL, "encode refuses SET_VQUEUE flags bit 6");
	m.u.set_vq.flags = VSHM_MSG_SETVQ_OP_RESERVED;
	is(vshm_msg_encode(&m, out, sizeof(out), MAX), -EINVAL, "encode refuses SET_VQUEUE state op 3");
	m.u.set_vq.flags = VSHM_MSG_SETVQ_OP_ENABLE;
	m.u.set_vq.invalid = true;
	is(vshm_msg_encode(&m, out, sizeof(out), MAX), -EINVAL, "encode refuses a SET_VQUEUE marked invalid");
}

static void test_encode_limits(void)
{
	struct vshm_msg m;
	uint8_t out[MAX + 8];
	int rc;

	expected(find("set_config_req_max"), &m);
	m.u.cfg.length = 245;
	is(vshm_msg_encode(&m, out, sizeof(out), MAX), -EMSGSIZE, "SET_CONFIG of 245 bytes refused at 264");
	m.u.cfg.length = 32;
	is(vshm_msg_encode(&m, out, sizeof(out), 52), 52, "SET_CONFIG of 32 bytes fits max_size 52");
	m.u.cfg.length = 33;
	is(vshm_msg_encode(&m, out, sizeof(out), 52), -EMSGSIZE, "SET_CONFIG of 33 bytes refused at 52");
	m.u.cfg.length = 0xffffffff;
	is(vshm_msg_encode(&m, out, sizeof(out), 65535), -EMSGSIZE, "SET_CONFIG of 2^32-1 bytes refused");
	expected(find("get_config_resp_max"), &m);
	m.u.cfg.length = 245;
	is(vshm_msg_encode(&m, out, sizeof(out), 65535), -EMSGSIZE, "GET_CONFIG resp of 245 bytes refused at 65535");
	expected(find("set_driver_features_req_max"), &m);
	m.u.feat.num_blocks = 63;
	is(vshm_msg_encode(&m, out, sizeof(out), MAX), -EMSGSIZE, "SET_DRIVER_FEATURES of 63 blocks refused");
	m.u.feat.num_blocks = 0xffffffff;
	is(vshm_msg_encode(&m, out, sizeof(out), MAX), -EMSGSIZE, "SET_DRIVER_FEATURES of 2^32-1 blocks refused");
	expected(find("event_config_data_max"), &m);
	m.u.event_config.length = 241;
	is(vshm_msg_encode(&m, out, sizeof(out), MAX), -EMSGSIZE, "EVENT_CONFIG with 241 data bytes refused");
	m.u.event_config.has_data = false;
	is(vshm_msg_encode(&m, out, sizeof(out), MAX), 24, "EVENT_CONFIG naming 241 bytes without data is fine");
	expected(find("bus_get_devices_resp_max"), &m);
	m.u.get_devices.count = 2001;
	is(vshm_msg_encode(&m, out, sizeof(out), MAX), -EMSGSIZE, "GET_DEVICES window of 2001 refused");
	expected(find("bus_get_devices_req"), &m);
	m.u.get_devices.count = 0xffff;
	is(vshm_msg_encode(&m, out, sizeof(out), 52), 12, "GET_DEVICES request for 65535 slots is fine");

	/* Capacity. */
	expected(find("get_vqueue_resp"), &m);
	memset(out, 0xa5, sizeof(out));
	is(vshm_msg_encode(&m, out, 47, MAX), -ENOSPC, "encode into 47 bytes: -ENOSPC");
	ok(out[0] == 0xa5 && out[46] == 0xa5, "nothing written on -ENOSPC");
	is(vshm_msg_encode(&m, NULL, 0, MAX), -ENOSPC, "encode into NULL: -ENOSPC");
	is(vshm_msg_encode(&m, out, 48, MAX), 48, "encode into exactly 48 bytes");
	m.size = 1234;
	rc = vshm_msg_encode(&m, out, sizeof(out), MAX);
	ok(rc == 48 && out[6] == 48 && out[7] == 0, "encode ignores m->size");
}

static void test_helpers(void)
{
	struct vshm_msg req, resp;

	is(vshm_msg_max_feature_blocks(264), 62, "62 feature blocks at 264");
	is(vshm_msg_max_feature_blocks(52), 9, "9 feature blocks at 52");
	is(vshm_msg_max_feature_blocks(65535), 62, "62 feature blocks at 65535 (codec cap)");
	is(vshm_msg_max_feature_blocks(51), -EINVAL, "feature blocks: max_size 51 refused");
	is(vshm_msg_max_config_bytes(264), 244, "244 config bytes at 264");
	is(vshm_msg_max_config_bytes(52), 32, "32 config bytes at 52");
	is(vshm_msg_max_config_bytes(65536), -EINVAL, "config bytes: max_size 65536 refused");
	is(vshm_msg_max_event_config_bytes(264), 240, "240 EVENT_CONFIG bytes at 264");
	is(vshm_msg_max_event_config_bytes(52), 28, "28 EVENT_CONFIG bytes at 52");
	is(vshm_msg_max_devices_window(264), 2000, "GET_DEVICES window of 2000 at 264");
	is(vshm_msg_max_devices_window(52), 304, "GET_DEVICES window of 304 at 52");
	is(vshm_msg_max_devices_window(0), -EINVAL, "devices window: max_size 0 refused");
	is(vshm_msg_max_size_ok(52), 0, "max_size 52 ok");
	is(vshm_msg_max_size_ok(65535), 0, "max_size 65535 ok");

	vshm_msg_init_req(&req, VSHM_MSG_GET_CONFIG, 9);
	req.token = 0x4242;
	req.u.cfg.length = 4;
	vshm_msg_init_resp(&resp, &req);
	ok(resp.type == VSHM_MSG_TYPE_RESPONSE && resp.id == VSHM_MSG_GET_CONFIG &&
	   resp.dev_num == 9 && resp.token == 0x4242 && resp.u.cfg.length == 0,
	   "init_resp copies id, dev_num and token, sets the response bit, zeroes the body");
	vshm_msg_init_bus(&req, VSHM_MSG_BUS_PING);
	req.token = 7;
	vshm_msg_init_resp(&req, &req);
	ok(req.type == (VSHM_MSG_TYPE_BUS | VSHM_MSG_TYPE_RESPONSE) && req.id == VSHM_MSG_BUS_PING &&
	   req.token == 7 && req.dev_num == 0 && vshm_msg_is_resp(&req) && vshm_msg_is_bus(&req),
	   "init_resp in place on a bus request");
	vshm_msg_init_req(&req, VSHM_MSG_EVENT_USED, 1);
	ok(vshm_msg_is_event(&req) && !vshm_msg_is_resp(&req) && !vshm_msg_is_bus(&req),
	   "event predicates");

	ok(!strcmp(vshm_msg_name(0, VSHM_MSG_GET_SHM), "GET_SHM"), "name GET_SHM");
	ok(!strcmp(vshm_msg_name(1, VSHM_MSG_EVENT_USED), "EVENT_USED"), "name EVENT_USED");
	ok(!strcmp(vshm_msg_name(2, VSHM_MSG_BUS_PING), "BUS_PING"), "name BUS_PING");
	ok(!strcmp(vshm_msg_name(3, VSHM_MSG_BUS_GET_DEVICES), "BUS_GET_DEVICES"), "name BUS_GET_DEVICES");
	ok(!strcmp(vshm_msg_name(0, 0x0d), "UNKNOWN"), "name of 0x0d");
	ok(!strcmp(vshm_msg_name(0, 0xff), "IMPL_DEFINED"), "name of 0xff");
	ok(!strcmp(vshm_msg_name(2, 0x05), "BUS_UNKNOWN"), "name of bus 0x05");
	ok(!strcmp(vshm_msg_name(0, VSHM_MSG_BUS_EVENT_DEVICE), "EVENT_CONFIG"),
	   "transport 0x40 is EVENT_CONFIG, not the bus event");
}

int main(void)
{
	test_roundtrip();
	test_truncated();
	test_oversized();
	test_header();
	test_reserved();
	test_rules();
	test_set_vq_invalid();
	test_encode_limits();
	test_helpers();
	return tap_done();
}
