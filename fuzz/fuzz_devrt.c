// SPDX-License-Identifier: MIT
/*
 * The device-side control plane against a hostile driver.
 *
 * A device runtime serving an rng and a console is put in a session, then
 * the input is played as a driver: each record is either a message framed
 * into the driver-to-device mailbox (any bytes; the mailbox framing is made
 * valid so the codec and the transport see them), or a write of arbitrary
 * bytes into the driver area (where queues may be pointed with SET_VQUEUE),
 * each followed by a runtime step.  Responses are consumed.  The runtime
 * must never crash or leak, must keep the device role, and must touch
 * nothing outside the window (guard pages on both sides make that fatal).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <vshm/devrt.h>
#include <vshm/mbox.h>
#include <vshm/session.h>
#include "barrier.h"
#include "mbox_ring.h"

#define WIN (1u << 20)

static struct vshm_window w;

static long sink(void *ctx, const void *buf, size_t len)
{
	(void)ctx;
	(void)buf;
	return (long)len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vshm_window_opts o = { .size = WIN, .vectors = 4 };
	struct vshm_devmodel rng, con;
	struct vshm_console_io io = { .ctx = NULL, .out = sink };
	struct vshm_dev_rt *rt;
	struct vshm_win_hdr *h;
	uint32_t prod = 0;
	size_t i = 0;

	if (!w.base && vshm_window_create(&w, &o))
		abort();
	h = vshm_window_hdr(&w);
	memset(&h->driver, 0, sizeof(h->driver));
	memset(&h->device, 0, sizeof(h->device));
	vshm_mbox_format(&w);
	memset(w.base + w.drv_lo, 0, 65536);

	if (vshm_dev_rt_create(&rt, &w, 1))
		abort();
	memset(&rng, 0, sizeof(rng));
	memset(&con, 0, sizeof(con));
	if (vshm_rng_create(&rng, vshm_dev_rt_next_host(rt)) || vshm_dev_rt_add(rt, &rng) != 0)
		abort();
	if (vshm_console_create(&con, vshm_dev_rt_next_host(rt), &io) || vshm_dev_rt_add(rt, &con) != 1)
		abort();

	/* A driver (peer 2) claims and goes through the handshake. */
	{
		uint64_t epoch;

		if (vshm_role_claim(&w, VSHM_ROLE_DRIVER, 2, &epoch, NULL))
			abort();
		vshm_dev_rt_step(rt);
		vshm_role_set_status(&w, VSHM_ROLE_DRIVER, VSHM_ROLE_READY);
		vshm_dev_rt_step(rt);
		if (vshm_dev_rt_state(rt) != VSHM_RT_ACTIVE)
			__builtin_trap();
	}

	while (i + 2 <= size) {
		uint8_t kind = data[i], len = data[i + 1];

		i += 2;
		if (kind & 0x80) {
			/* Driver-area write: 2 offset bytes, then len bytes. */
			uint32_t off;

			if (i + 2 > size)
				break;
			off = ((uint32_t)data[i] | (uint32_t)data[i + 1] << 8) * 16u %
			      (uint32_t)(w.drv_hi - w.drv_lo - 256);
			i += 2;
			if (len > size - i)
				len = (uint8_t)(size - i);
			memcpy(w.base + w.drv_lo + off, data + i, len);
			i += len;
		} else {
			/* A message of len bytes (8..255), framed correctly. */
			struct vshm_mbox_slot *s;
			uint32_t cons = vshm_load_acquire(&fuzz_mbox_ring(&w, VSHM_MBOX_D2V)->cons);

			if (len < 8)
				len = 8;
			if (len > size - i)
				break;
			if (prod - cons >= VSHM_MBOX_SLOTS)
				break;	/* the device stopped reading: fine */
			s = fuzz_mbox_slot(&w, VSHM_MBOX_D2V, prod);
			memset(s, 0, sizeof(*s));
			memcpy(s->msg, data + i, len);
			s->msg[6] = len;	/* msg_size must match the framing */
			s->msg[7] = 0;
			s->len = len;
			i += len;
			vshm_store_release(&fuzz_mbox_ring(&w, VSHM_MBOX_D2V)->prod, ++prod);
		}
		if (vshm_dev_rt_step(rt) < 0)
			__builtin_trap();	/* we still own the device role */
		/* Consume every response so the device never blocks. */
		vshm_store_release(&fuzz_mbox_ring(&w, VSHM_MBOX_V2D)->cons,
				   vshm_load_acquire(&fuzz_mbox_ring(&w, VSHM_MBOX_V2D)->prod));
	}
	for (int k = 0; k < 4; k++)
		vshm_dev_rt_step(rt);
	vshm_dev_rt_destroy(rt);
	rng.ops->destroy(&rng);
	con.ops->destroy(&con);
	vshm_role_release(&w, VSHM_ROLE_DRIVER, 2);
	return 0;
}
