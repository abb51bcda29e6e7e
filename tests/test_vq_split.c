// SPDX-License-Identifier: MIT
/*
 * Split ring, functional: single-threaded checks of the API contract, then
 * driver and device as two threads over one window (tests/vq_harness.h: the
 * device on its own mapping of the memfd, as a separate process would
 * have), a million chains of random shapes and sizes, every byte verified
 * both ways, completions out of order, with and without event index and
 * indirect tables, polling and sleeping on doorbells.
 */
#include <errno.h>
#include <stdint.h>

#include <vshm/vq.h>
#include "tap.h"
#include "vq_harness.h"

/* ---- single-threaded contract checks ---------------------------------- */

static void test_api(void)
{
	struct vshm_window_opts o = { .size = 1 << 20, .vectors = 1 };
	struct vshm_window w;
	struct vshm_vq_layout l, bad;
	struct vshm_drv_vq *d;
	struct vshm_dev_vq *v;
	struct vshm_sg sg[4];
	struct vshm_iov iov[8];
	struct vshm_chain c;
	uint64_t feat = (1ull << VSHM_F_EVENT_IDX) | (1ull << VSHM_F_INDIRECT_DESC);
	void *cookie;
	uint32_t len;
	int64_t used;
	int x = 1;

	if (vshm_window_create(&w, &o)) {
		ok(0, "api: window");
		return;
	}
	is(vshm_vq_layout_split(&l, w.drv_lo, 3, 0), -EINVAL, "layout refuses a non-power-of-two size");
	is(vshm_vq_layout_split(&l, w.drv_lo, 65536, 0), -EINVAL, "layout refuses 65536 entries");
	used = vshm_vq_layout_split(&l, w.drv_lo, 4, 4);
	ok(used > 0 && l.desc % 16 == 0 && l.used % 64 == 0 && l.indirect % 16 == 0,
	   "layout of a 4-entry ring is aligned (%lld bytes)", (long long)used);

	bad = l;
	bad.desc = 0;
	is(vshm_dev_vq_create(&v, &w, &bad, feat, NULL), -EINVAL, "device refuses a ring in the header");
	bad = l;
	bad.desc += 8;
	is(vshm_dev_vq_create(&v, &w, &bad, feat, NULL), -EINVAL, "device refuses a misaligned descriptor table");
	bad = l;
	bad.used = w.size - 8;
	is(vshm_dev_vq_create(&v, &w, &bad, feat, NULL), -EINVAL, "device refuses a used ring past the end");
	bad = l;
	bad.num = 6;
	is(vshm_dev_vq_create(&v, &w, &bad, feat, NULL), -EINVAL, "device refuses num 6");

	is(vshm_drv_vq_create(&d, &w, &l, feat, NULL), 0, "driver queue created");
	is(vshm_dev_vq_create(&v, &w, &l, feat, NULL), 0, "device queue created");

	vqh_four_buffers(sg, &w);
	vqh_add_refusals(d, &w, sg, &x);

	is(vshm_dev_vq_pop(v, &c, iov, 8), 0, "device sees nothing before publish");
	is(vshm_drv_vq_add_ex(d, sg, 2, 2, &x, VSHM_ADD_NO_INDIRECT), 0, "add a 4-descriptor chain directly");
	is(vshm_drv_vq_num_free(d), 0, "all four descriptors in use");
	is(vshm_drv_vq_add_ex(d, sg, 1, 0, &x, 0), -ENOSPC, "ring full -> -ENOSPC");
	is(vshm_dev_vq_pop(v, &c, iov, 8), 0, "still nothing before publish");
	is(vshm_drv_vq_publish(d), 1, "first publish asks for a kick (event index 0)");
	is(vshm_dev_vq_pop(v, &c, iov, 8), 1, "device pops the chain");
	ok(c.nout == 2 && c.nin == 2 && c.out_bytes == 200 && c.in_bytes == 200 && !c.indirect,
	   "chain shape 2 out + 2 in, 200/200 bytes");
	ok(iov[0].base == w.base + sg[0].off && iov[3].base == w.base + sg[3].off, "iov points at the buffers");
	is(vshm_dev_vq_pop(v, &c, iov, 8), 0, "ring empty again");
	is(vshm_drv_vq_harvest(d, &cookie, &len), 0, "nothing to harvest yet");
	vshm_dev_vq_push(v, c.head, 150);
	is(vshm_dev_vq_publish(v), 1, "device publish notifies (callbacks on)");
	is(vshm_drv_vq_harvest(d, &cookie, &len), 1, "driver harvests");
	ok(cookie == &x && len == 150, "cookie and length come back");
	is(vshm_drv_vq_num_free(d), 4, "descriptors returned to the free list");

	/* Indirect: one descriptor carries a 4-buffer chain. */
	is(vshm_drv_vq_add_ex(d, sg, 3, 1, &x, VSHM_ADD_INDIRECT), 0, "add through an indirect table");
	is(vshm_drv_vq_num_free(d), 3, "an indirect chain takes one descriptor");
	vshm_drv_vq_publish(d);
	is(vshm_dev_vq_pop(v, &c, iov, 8), 1, "device pops the indirect chain");
	ok(c.indirect && c.nout == 3 && c.nin == 1, "indirect chain shape 3 + 1");
	is(vshm_dev_vq_pop(v, &c, iov, 2), 0, "nothing else pending");

	/* Event index: the device only wants a kick when it asked. */
	vshm_dev_vq_push(v, c.head, 0);
	vshm_dev_vq_publish(v);
	is(vshm_drv_vq_harvest(d, &cookie, &len), 1, "harvest indirect completion");
	vqh_kick_contract(d, v, sg, &c, iov, &x, &x);
	vshm_drv_vq_disable_cb(d);
	vshm_dev_vq_push(v, c.head, 0);
	is(vshm_dev_vq_publish(v), 0, "callbacks disabled: device does not notify");
	is(vshm_drv_vq_enable_cb(d), 1, "enable_cb reports the pending completion");
	is(vshm_drv_vq_harvest(d, &cookie, &len), 1, "harvest it");
	is(vshm_drv_vq_inflight(d), 1, "one chain still in flight");
	ok(vshm_drv_vq_detach_unused(d) == &x, "detach returns the unfinished chain");
	ok(vshm_drv_vq_detach_unused(d) == NULL, "nothing more to detach");
	is(vshm_drv_vq_num_free(d), 4, "detach returned the descriptors");
	is(vshm_drv_vq_reset(d), 0, "reset an idle queue");

	/* Batch pop/push. */
	vshm_dev_vq_destroy(v);
	vshm_dev_vq_create(&v, &w, &l, feat, NULL);
	for (int i = 0; i < 4; i++)
		vshm_drv_vq_add_ex(d, &sg[i], 1, 0, &x, 0);
	vshm_drv_vq_publish(d);
	{
		struct vshm_chain cs[4];
		struct vshm_iov biov[4 * 2];
		void *cks[4];
		uint32_t lens[4];

		is(vshm_dev_vq_pop_batch(v, cs, 4, biov, 2), 4, "pop_batch takes all four");
		for (int i = 0; i < 4; i++)
			vshm_dev_vq_push(v, cs[i].head, 0);
		vshm_dev_vq_publish(v);
		is(vshm_drv_vq_harvest_batch(d, cks, lens, 4), 4, "harvest_batch gets all four");
	}
	vshm_drv_vq_destroy(d);
	vshm_dev_vq_destroy(v);
	vshm_window_unmap(&w);
}

static const struct vqh_cfg split = {
	.layout = vshm_vq_layout_split, .layout_arg = VQH_MAX_SG,
	.max_out = 4, .max_in = 3, .pick_indirect = 1,
};

int main(void)
{
	uint64_t ev = 1ull << VSHM_F_EVENT_IDX, ind = 1ull << VSHM_F_INDIRECT_DESC;
	unsigned long n = tap_scale(250000), s = tap_scale(100000);

	test_api();
	/* Four polling configurations, a million chains in all, then two
	 * sleeping on doorbells. */
	vqh_run_as(&split, "event_idx+indirect", ev | ind, 0, n);
	vqh_run_as(&split, "event_idx", ev, 0, n);
	vqh_run_as(&split, "flags+indirect", ind, 0, n);
	vqh_run_as(&split, "flags", 0, 0, n);
	vqh_run_as(&split, "sleeping, event_idx+indirect", ev | ind, 1, s);
	vqh_run_as(&split, "sleeping, flags", 0, 1, s);
	return tap_done();
}
