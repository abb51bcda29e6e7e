// SPDX-License-Identifier: MIT
/*
 * virtio-console (virtio 1.x section 5.3), single port: no
 * VIRTIO_CONSOLE_F_MULTIPORT, so queue 0 is port 0's receiveq (the driver
 * posts writable buffers we fill with host input) and queue 1 its
 * transmitq (the driver's output).  There are no control queues, hence no
 * control messages to parse.
 *
 * Who owns what:
 *  - host input is copied into a bounded private ring (vshm_console_input)
 *    and from there into receive buffers as they are posted; the runtime's
 *    buffer is never kept;
 *  - driver output is handed to io->out() straight from the window, never
 *    interpreted; a transmit request is held (not completed) until all of
 *    its bytes were taken, so a slow sink throttles the driver through its
 *    own queue and our memory stays bounded by the queue size;
 *  - held requests are linked through vshm_req.model_priv (no allocation).
 *
 * Threading: none; the runtime serialises every call into the model,
 * vshm_console_input included.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <vshm/devmodel.h>
#include "iov_copy.h"

/* virtio-console numbers (linux/virtio_console.h) */
#define CON_F_EMERG_WRITE	2
#define CON_CFG_COLS		0	/* le16 */
#define CON_CFG_ROWS		2	/* le16 */
#define CON_CFG_MAX_NR_PORTS	4	/* le32 */
#define CON_CFG_EMERG_WR	8	/* le32 */
#define CON_CFG_SIZE		12

#define CON_RXQ			0
#define CON_TXQ			1
#define CON_QUEUE_MAX		256u
#define CON_SEG_MAX		64u		/* buffers per chain */
#define CON_IN_MAX		65536u		/* buffered host input, bytes */
#define CON_EMERG_MAX		256u		/* buffered emergency output, bytes */

/* A FIFO of held requests, linked through model_priv. */
struct con_fifo {
	struct vshm_req *head;
	struct vshm_req *tail;
	unsigned n;
};

struct con {
	struct vshm_devmodel *m;
	struct vshm_console_io io;	/* the runtime's sink */
	uint64_t features;		/* negotiated */
	uint64_t completed;		/* requests completed (poll's count) */
	/* Host input, a ring of CON_IN_MAX bytes. */
	uint8_t *in;
	size_t in_head;			/* oldest byte */
	size_t in_len;			/* bytes buffered */
	struct con_fifo rx;		/* receive buffers waiting for input */
	struct con_fifo tx;		/* output waiting for the sink */
	unsigned tx_iov;		/* head of tx: next buffer to send */
	uint32_t tx_off;		/* ... and the offset in it */
	uint8_t emerg[CON_EMERG_MAX];	/* emergency output not yet taken */
	size_t emerg_len;
	uint64_t emerg_dropped;		/* emergency bytes lost to a full buffer */
};

static void fifo_push(struct con_fifo *f, struct vshm_req *r)
{
	r->model_priv = NULL;
	if (f->tail)
		f->tail->model_priv = r;
	else
		f->head = r;
	f->tail = r;
	f->n++;
}

static struct vshm_req *fifo_pop(struct con_fifo *f)
{
	struct vshm_req *r = f->head;

	if (r) {
		f->head = r->model_priv;
		if (!f->head)
			f->tail = NULL;
		r->model_priv = NULL;
		f->n--;
	}
	return r;
}

static void con_complete(struct con *k, struct vshm_req *r, uint32_t written)
{
	k->completed++;
	k->m->host->complete(k->m->host->ctx, r, written);
}

/* ------------------------------------------------------------------------ */
/* Output                                                                    */

/*
 * Offer @len bytes to the sink.  Returns the bytes taken; *blocked is set
 * when the sink is full (-EAGAIN, nothing or less than offered taken).  A
 * sink error other than -EAGAIN drops the bytes: the console must not wedge
 * the driver because the terminal went away.
 */
static size_t con_out(struct con *k, const void *p, size_t len, int *blocked)
{
	long n;

	if (!k->io.out)
		return len;
	n = k->io.out(k->io.ctx, p, len);
	if (n == -EAGAIN || n == 0) {
		*blocked = 1;
		return 0;
	}
	if (n < 0)
		return len;
	if ((size_t)n >= len)
		return len;
	*blocked = 1;
	return (size_t)n;
}

/* Push what we can to the sink; stop at the first sign of back-pressure. */
static void con_pump_out(struct con *k)
{
	struct vshm_req *r;
	int blocked = 0;

	if (k->emerg_len) {
		size_t n = con_out(k, k->emerg, k->emerg_len, &blocked);

		memmove(k->emerg, k->emerg + n, k->emerg_len - n);
		k->emerg_len -= n;
		if (blocked)
			return;
	}
	while ((r = k->tx.head)) {
		const struct vshm_chain *c = &r->chain;

		while (k->tx_iov < c->nout) {
			const struct vshm_iov *v = &c->iov[k->tx_iov];
			size_t left = v->len - k->tx_off, n;

			if (left) {
				n = con_out(k, (const uint8_t *)v->base + k->tx_off, left, &blocked);
				k->tx_off += (uint32_t)n;
				if (blocked)
					return;
			}
			k->tx_iov++;
			k->tx_off = 0;
		}
		fifo_pop(&k->tx);
		k->tx_iov = 0;
		k->tx_off = 0;
		con_complete(k, r, 0);
	}
}

/* ------------------------------------------------------------------------ */
/* Input                                                                     */

/* Fill held receive buffers from the input ring, oldest first. */
static void con_pump_in(struct con *k)
{
	while (k->rx.head && k->in_len) {
		struct vshm_req *r = fifo_pop(&k->rx);
		const struct vshm_chain *c = &r->chain;
		const struct vshm_iov *wr = c->iov + c->nout;
		uint64_t room = vshm_iov_bytes(wr, c->nin);
		size_t n = k->in_len < room ? k->in_len : (size_t)room;
		size_t first = CON_IN_MAX - k->in_head;

		if (first > n)
			first = n;
		vshm_iov_scatter(wr, c->nin, 0, k->in + k->in_head, first);
		vshm_iov_scatter(wr, c->nin, first, k->in, n - first);
		k->in_head = (k->in_head + n) % CON_IN_MAX;
		k->in_len -= n;
		if (!k->in_len)
			k->in_head = 0;
		con_complete(k, r, (uint32_t)n);
	}
}

long vshm_console_input(struct vshm_devmodel *m, const void *buf, size_t len)
{
	struct con *k;
	size_t n, tail, first;

	if (!m || !m->priv || (!buf && len))
		return -EINVAL;
	k = m->priv;
	n = CON_IN_MAX - k->in_len;
	if (n > len)
		n = len;
	tail = (k->in_head + k->in_len) % CON_IN_MAX;
	first = CON_IN_MAX - tail;
	if (first > n)
		first = n;
	memcpy(k->in + tail, buf, first);
	memcpy(k->in, (const uint8_t *)buf + first, n - first);
	k->in_len += n;
	con_pump_in(k);
	/* Input waits for buffers: tell the runtime the receive queue has work. */
	if (k->in_len && !k->rx.head && m->host->kick_queue)
		m->host->kick_queue(m->host->ctx, CON_RXQ);
	return (long)n;
}

/* ------------------------------------------------------------------------ */
/* Device ops                                                                */

static int con_request(struct vshm_devmodel *m, struct vshm_req *r)
{
	struct con *k = m->priv;
	const struct vshm_chain *c = &r->chain;
	uint64_t out_bytes = vshm_iov_bytes(c->iov, c->nout);
	uint64_t in_bytes = vshm_iov_bytes(c->iov + c->nout, c->nin);

	switch (r->queue) {
	case CON_RXQ:
		/* Receive buffers are device-writable only (5.3.6). */
		if (out_bytes || !in_bytes || k->rx.n >= CON_QUEUE_MAX)
			return -EINVAL;
		fifo_push(&k->rx, r);
		con_pump_in(k);
		return 0;
	case CON_TXQ:
		/* Writable buffers on a transmit chain are ignored (written 0). */
		if (k->tx.n >= CON_QUEUE_MAX)
			return -EINVAL;
		fifo_push(&k->tx, r);
		con_pump_out(k);
		return 0;
	default:
		return -EINVAL;
	}
}

static uint32_t con_num_queues(struct vshm_devmodel *m)
{
	return 2;
}

static uint32_t con_queue_max(struct vshm_devmodel *m, unsigned queue)
{
	return queue <= CON_TXQ ? CON_QUEUE_MAX : 0;
}

static uint32_t con_seg_max(struct vshm_devmodel *m)
{
	return CON_SEG_MAX;
}

static uint64_t con_features(struct vshm_devmodel *m)
{
	return 1ull << CON_F_EMERG_WRITE;
}

static int con_set_features(struct vshm_devmodel *m, uint64_t f)
{
	struct con *k = m->priv;

	if (f & ~con_features(m))
		return -EINVAL;
	k->features = f;
	return 0;
}

static uint32_t con_config_size(struct vshm_devmodel *m)
{
	return CON_CFG_SIZE;
}

static void con_config_read(struct vshm_devmodel *m, uint32_t off, void *buf, uint32_t len)
{
	/* cols = rows = 0 (no F_SIZE), max_nr_ports = 1, emerg_wr reads 0. */
	uint8_t cfg[CON_CFG_SIZE] = { [CON_CFG_MAX_NR_PORTS] = 1 };

	memset(buf, 0, len);
	if (off < sizeof(cfg))
		memcpy(buf, cfg + off, len < sizeof(cfg) - off ? len : sizeof(cfg) - off);
}

static int con_config_write(struct vshm_devmodel *m, uint32_t off, const void *buf,
			    uint32_t len)
{
	struct con *k = m->priv;

	/*
	 * emerg_wr: one character out, usable even before feature
	 * negotiation (5.3.4).  Only its low byte is used (a 32-bit write
	 * from Linux, a byte from others).
	 */
	if (off != CON_CFG_EMERG_WR || len == 0 || len > 4)
		return -EPERM;
	if (k->emerg_len < CON_EMERG_MAX)
		k->emerg[k->emerg_len++] = *(const uint8_t *)buf;
	else
		k->emerg_dropped++;
	con_pump_out(k);
	return 0;
}

static int con_start(struct vshm_devmodel *m)
{
	return 0;
}

static void con_reset(struct vshm_devmodel *m)
{
	struct con *k = m->priv;
	struct vshm_req *r;

	while ((r = fifo_pop(&k->rx)))
		con_complete(k, r, 0);
	while ((r = fifo_pop(&k->tx)))
		con_complete(k, r, 0);
	k->tx_iov = 0;
	k->tx_off = 0;
	k->in_head = k->in_len = 0;
	k->emerg_len = 0;
	k->features = 0;
}

static int con_poll(struct vshm_devmodel *m)
{
	struct con *k = m->priv;
	uint64_t before = k->completed;

	con_pump_out(k);
	con_pump_in(k);
	return (int)(k->completed - before);
}

static void con_destroy(struct vshm_devmodel *m)
{
	struct con *k = m->priv;

	if (!k)
		return;
	con_reset(m);
	free(k->in);
	free(k);
	m->priv = NULL;
}

static const struct vshm_devmodel_ops vshm_console_ops = {
	.name = "console",
	.device_id = VSHM_VIRTIO_ID_CONSOLE,
	.num_queues = con_num_queues,
	.queue_max = con_queue_max,
	.seg_max = con_seg_max,
	.features = con_features,
	.set_features = con_set_features,
	.config_size = con_config_size,
	.config_read = con_config_read,
	.config_write = con_config_write,
	.start = con_start,
	.reset = con_reset,
	.request = con_request,
	.event_fd = NULL,
	.poll = con_poll,
	.destroy = con_destroy,
};

int vshm_console_create(struct vshm_devmodel *m, const struct vshm_devmodel_host *host,
			const struct vshm_console_io *io)
{
	struct con *k;

	if (!m || !host || !host->complete || !io)
		return -EINVAL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->in = malloc(CON_IN_MAX);
	if (!k->in) {
		free(k);
		return -ENOMEM;
	}
	k->m = m;
	k->io = *io;
	m->ops = &vshm_console_ops;
	m->host = host;
	m->priv = k;
	return 0;
}
