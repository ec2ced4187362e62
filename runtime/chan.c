/* chan.c: one nng context of the wire, for either end (chan.h). */
#include "config.h"

#include "runtime/bridge.h"
#include "runtime/chan.h"
#include "runtime/util.h"

/* Loop thread: trampoline from the bridge. */
static void
chan_loop_cb(void *arg)
{
	struct chan *ch = arg;
	nng_msg *m = ch->msg;

	ch->msg = NULL;
	ch->cb(ch, m);
}

/* Whether the owner is going: no new receive then. */
static int
chan_stopping(const struct chan *ch)
{
	return ch->stopping != NULL &&
	    __atomic_load_n(ch->stopping, __ATOMIC_ACQUIRE);
}

/* nng thread: the operation in flight ended. */
static void
chan_aio_cb(void *arg)
{
	struct chan *ch = arg;
	int rv = nng_aio_result(ch->aio);

	if (ch->state == CHAN_SEND) {
		if (rv != 0)
			nng_msg_free(nng_aio_get_msg(ch->aio));
		if (rv == 0 && !ch->rep) {
			/* A request went: now its answer. */
			ch->state = CHAN_RECV;
			nng_ctx_recv(ch->ctx, ch->aio);
			return;
		}
		if (!ch->rep) {
			ch->state = CHAN_BUSY;
			ch->msg = NULL;
			bridge_post(ch->bridge, chan_loop_cb, ch);
			return;
		}
		ch->state = CHAN_RECV;
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED ||
		    chan_stopping(ch))
			return;
		nng_ctx_recv(ch->ctx, ch->aio);
		return;
	}
	if (ch->rep && (rv == NNG_ECLOSED || rv == NNG_ECANCELED))
		return;
	if (ch->rep && rv != 0) {
		if (!chan_stopping(ch))
			nng_ctx_recv(ch->ctx, ch->aio);
		return;
	}
	ch->msg = rv == 0 ? nng_aio_get_msg(ch->aio) : NULL;
	ch->state = CHAN_BUSY;
	bridge_post(ch->bridge, chan_loop_cb, ch);
}

int
chan_open(struct chan *ch, nng_socket sock, int rep, struct bridge *b,
    chan_cb cb, const int *stopping, void *arg)
{
	int rv;

	ch->rep = rep;
	ch->bridge = b;
	ch->cb = cb;
	ch->stopping = stopping;
	ch->arg = arg;
	ch->msg = NULL;
	ch->state = CHAN_IDLE;
	if ((rv = nng_ctx_open(&ch->ctx, sock)) != 0)
		return rv;
	if ((rv = nng_aio_alloc(&ch->aio, chan_aio_cb, ch)) != 0) {
		nng_ctx_close(ch->ctx);
		ch->aio = NULL;
		return rv;
	}
	if (rep) {
		ch->state = CHAN_RECV;
		nng_ctx_recv(ch->ctx, ch->aio);
	}
	return 0;
}

nng_msg *
chan_msg(const void *buf, size_t len)
{
	nng_msg *m;

	if (nng_msg_alloc(&m, 0) != 0 || nng_msg_append(m, buf, len) != 0)
		fatalx(1, "out of memory");
	return m;
}

void
chan_send(struct chan *ch, nng_msg *m)
{
	ch->state = CHAN_SEND;
	nng_aio_set_msg(ch->aio, m);
	nng_ctx_send(ch->ctx, ch->aio);
}

void
chan_stop(struct chan *ch)
{
	if (ch->aio != NULL)
		nng_aio_stop(ch->aio);
}

void
chan_close(struct chan *ch)
{
	if (ch->aio == NULL)
		return;
	nng_aio_free(ch->aio);
	ch->aio = NULL;
	nng_ctx_close(ch->ctx);
	if (ch->msg != NULL)
		nng_msg_free(ch->msg);
	ch->msg = NULL;
}
