/*
 * bridge.h: hand work from other threads (nng's callbacks) to the libevent
 * loop thread.
 *
 * nng completes aios on its own threads.  Their callbacks only call
 * bridge_post(), which queues (fn, arg) under a mutex and wakes the loop
 * through an eventfd; the loop thread then runs fn(arg).  Engine state is
 * touched by the loop thread alone, so nothing in engine/ needs a lock.
 */
#ifndef WEFT_BRIDGE_H
#define WEFT_BRIDGE_H

#include <event2/event.h>

struct bridge;
typedef void (*bridge_fn)(void *arg);

/* A bridge whose callbacks run on base's thread. */
struct bridge *bridge_new(struct event_base *base);
/* Free the bridge; callbacks still queued are dropped. */
void bridge_free(struct bridge *);
/* Queue fn(arg) to run on the loop thread.  Safe from any thread. */
void bridge_post(struct bridge *, bridge_fn fn, void *arg);

#endif
