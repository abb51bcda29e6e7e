// SPDX-License-Identifier: MIT
/*
 * virtio-rng (entropy device, virtio 1.x section 5.4): one request queue,
 * each request a set of device-writable buffers to fill with random bytes.
 *
 * The bytes come from getrandom(2) straight into the window buffers: we
 * never read them back, so a driver rewriting them concurrently changes
 * nothing for us.  Requests complete synchronously.
 *
 * Threading: none; the runtime serialises every call into the model.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include <vshm/devmodel.h>
#include "iov_copy.h"

#define RNG_QUEUE_MAX		256u
#define RNG_SEG_MAX		16u		/* buffers per chain */
#define RNG_REQ_MAX		65536u		/* bytes filled per request */
#define RNG_MAX_RETRIES		16u		/* EINTR/EAGAIN per request */

struct rng {
	uint64_t requests;		/* completed, for poll-free accounting */
	uint64_t bytes;			/* random bytes handed out */
};

/* Fill @len bytes at @p; returns the bytes filled (short only on failure). */
static size_t rng_fill(uint8_t *p, size_t len)
{
	size_t done = 0;
	unsigned retries = 0;

	while (done < len) {
		ssize_t n = getrandom(p + done, len - done, 0);

		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EINTR || errno == EAGAIN) && ++retries < RNG_MAX_RETRIES)
			continue;
		break;		/* ENOSYS, EFAULT ...: hand out what we have */
	}
	return done;
}

static int rng_request(struct vshm_devmodel *m, struct vshm_req *r)
{
	struct rng *g = m->priv;
	const struct vshm_chain *c = &r->chain;
	const struct vshm_iov *wr = c->iov + c->nout;
	uint32_t written = 0;

	/* Requests are device-writable only (5.4.6). */
	if (vshm_iov_bytes(c->iov, c->nout) || !vshm_iov_bytes(wr, c->nin))
		return -EINVAL;
	for (unsigned i = 0; i < c->nin && written < RNG_REQ_MAX; i++) {
		size_t want = wr[i].len;
		size_t got;

		if (want > RNG_REQ_MAX - written)
			want = RNG_REQ_MAX - written;
		got = rng_fill(wr[i].base, want);
		written += (uint32_t)got;
		if (got < want)
			break;
	}
	g->requests++;
	g->bytes += written;
	m->host->complete(m->host->ctx, r, written);
	return 0;
}

static uint32_t rng_num_queues(struct vshm_devmodel *m)
{
	return 1;
}

static uint32_t rng_queue_max(struct vshm_devmodel *m, unsigned queue)
{
	return queue == 0 ? RNG_QUEUE_MAX : 0;
}

static uint32_t rng_seg_max(struct vshm_devmodel *m)
{
	return RNG_SEG_MAX;
}

static uint64_t rng_features(struct vshm_devmodel *m)
{
	return 0;
}

static int rng_set_features(struct vshm_devmodel *m, uint64_t f)
{
	return f ? -EINVAL : 0;
}

static uint32_t rng_config_size(struct vshm_devmodel *m)
{
	return 0;
}

static void rng_config_read(struct vshm_devmodel *m, uint32_t off, void *buf, uint32_t len)
{
	uint8_t *p = buf;

	for (uint32_t i = 0; i < len; i++)
		p[i] = 0;
}

static int rng_config_write(struct vshm_devmodel *m, uint32_t off, const void *buf,
			    uint32_t len)
{
	return -EPERM;
}

static int rng_start(struct vshm_devmodel *m)
{
	return 0;
}

static void rng_reset(struct vshm_devmodel *m)
{
	/* Every request completed inside request(): nothing is held. */
}

static void rng_destroy(struct vshm_devmodel *m)
{
	free(m->priv);
	m->priv = NULL;
}

static const struct vshm_devmodel_ops vshm_rng_ops = {
	.name = "rng",
	.device_id = VSHM_VIRTIO_ID_RNG,
	.num_queues = rng_num_queues,
	.queue_max = rng_queue_max,
	.seg_max = rng_seg_max,
	.features = rng_features,
	.set_features = rng_set_features,
	.config_size = rng_config_size,
	.config_read = rng_config_read,
	.config_write = rng_config_write,
	.start = rng_start,
	.reset = rng_reset,
	.request = rng_request,
	.event_fd = NULL,
	.poll = NULL,
	.destroy = rng_destroy,
};

int vshm_rng_create(struct vshm_devmodel *m, const struct vshm_devmodel_host *host)
{
	struct rng *g;

	if (!m || !host || !host->complete)
		return -EINVAL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	m->ops = &vshm_rng_ops;
	m->host = host;
	m->priv = g;
	return 0;
}
