/*
 * chan.h: one nng context of the coordinator <-> worker wire, as one state
 * machine for both ends (docs/PROTOCOL.md).
 *
 * A REP channel (the coordinator) receives a request, hands it to the
 * loop, and, once the loop answers with chan_send, sends the answer and
 * receives the next request.  A REQ channel (a worker) sends a request
 * with chan_send and hands the answer to the loop.  nng completes the
 * operations on its own threads; there the channel only re-arms itself or
 * posts to the loop through the bridge, so the loop callback runs on the
 * loop thread, with the received message (the callback owns it) or NULL
 * when the operation failed (a REQ channel's peer is gone).
 *
 * States: CHAN_RECV (a receive is pending), CHAN_BUSY (the loop holds a
 * request or is told of an answer), CHAN_SEND (a send is pending), CHAN_IDLE
 * (a REQ channel with nothing in flight).  The owner may keep its own state
 * for a BUSY channel (a parked poll).  Once *stopping is set (read
 * atomically), a REP channel no longer re-arms: a receive started on a
 * closing context kept nng_close() waiting for ever.
 */
#ifndef WEFT_CHAN_H
#define WEFT_CHAN_H

#include <nng/nng.h>

struct bridge;
struct chan;

enum chan_state { CHAN_IDLE, CHAN_RECV, CHAN_BUSY, CHAN_SEND };

/* On the loop: msg received (owned by the callback), or NULL. */
typedef void (*chan_cb)(struct chan *, nng_msg *msg);

struct chan {
	nng_ctx			 ctx;
	nng_aio			*aio;
	enum chan_state		 state;
	int			 rep;		/* 1: the REP end */
	struct bridge		*bridge;
	chan_cb			 cb;
	const int		*stopping;	/* the owner's, or NULL */
	nng_msg			*msg;		/* for the loop callback */
	void			*arg;		/* the owner's */
};

/*
 * Open a channel on sock (REP end if rep) whose loop callback is cb; a
 * REP channel starts receiving.  Returns 0, or an nng error.
 */
int chan_open(struct chan *, nng_socket sock, int rep, struct bridge *,
    chan_cb cb, const int *stopping, void *arg);
/* A new message holding len bytes of buf; aborts if out of memory. */
nng_msg *chan_msg(const void *buf, size_t len);
/* Send m (taken): a REP channel's answer, or a REQ channel's request. */
void chan_send(struct chan *, nng_msg *m);
/* Wait for the operation in flight to end (no callback runs after). */
void chan_stop(struct chan *);
/* Free the channel, stopped, and any message it still holds. */
void chan_close(struct chan *);

#endif
