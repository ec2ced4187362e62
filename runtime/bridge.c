/* bridge.c: a mutex-protected queue plus an eventfd that wakes the loop. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "runtime/util.h"
#include "runtime/bridge.h"

struct bridge_item {
	bridge_fn	 fn;
	void		*arg;
};

struct bridge {
	pthread_mutex_t		 mtx;
	struct bridge_item	*items;
	size_t			 n, cap;
	int			 efd;
	int			 armed;		/* eventfd written, not yet read */
	struct event		*ev;
	struct bridge_item	*spare;		/* swapped in while draining */
	size_t			 spare_cap;
};

/* Drain the queue on the loop thread: swap buffers, then run each item. */
static void
bridge_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bridge *b = arg;
	struct bridge_item *run;
	uint64_t v;
	size_t i, n, cap;

	(void)read(b->efd, &v, sizeof v);
	pthread_mutex_lock(&b->mtx);
	run = b->items;
	n = b->n;
	cap = b->cap;
	b->items = b->spare;
	b->cap = b->spare_cap;
	b->n = 0;
	b->armed = 0;
	pthread_mutex_unlock(&b->mtx);
	for (i = 0; i < n; i++)
		run[i].fn(run[i].arg);
	pthread_mutex_lock(&b->mtx);
	b->spare = run;
	b->spare_cap = cap;
	pthread_mutex_unlock(&b->mtx);
}

struct bridge *
bridge_new(struct event_base *base)
{
	struct bridge *b = xcalloc(1, sizeof *b);

	pthread_mutex_init(&b->mtx, NULL);
	if ((b->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1)
		fatal("eventfd");
	b->cap = b->spare_cap = 64;
	b->items = xcalloc(b->cap, sizeof *b->items);
	b->spare = xcalloc(b->spare_cap, sizeof *b->spare);
	b->ev = event_new(base, b->efd, EV_READ | EV_PERSIST, bridge_read_cb, b);
	event_priority_set(b->ev, 0);
	event_add(b->ev, NULL);
	return b;
}

void
bridge_free(struct bridge *b)
{
	if (b == NULL)
		return;
	event_free(b->ev);
	close(b->efd);
	free(b->items);
	free(b->spare);
	pthread_mutex_destroy(&b->mtx);
	free(b);
}

void
bridge_post(struct bridge *b, bridge_fn fn, void *arg)
{
	uint64_t one = 1;
	int wake;

	pthread_mutex_lock(&b->mtx);
	if (b->n == b->cap) {
		b->cap *= 2;
		b->items = xrealloc(b->items, b->cap * sizeof *b->items);
	}
	b->items[b->n].fn = fn;
	b->items[b->n].arg = arg;
	b->n++;
	wake = !b->armed;
	b->armed = 1;
	pthread_mutex_unlock(&b->mtx);
	if (wake)
		while (write(b->efd, &one, sizeof one) == -1 && errno == EINTR)
			;
}
