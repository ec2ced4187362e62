/*
 * test_queue.c: a task's life in runtime/queue.c, and calls out of its
 * order.  queue.c is built into this test with NDEBUG, so that NEVER()
 * returns instead of aborting and the test can see that the call did
 * nothing (in weft itself it aborts: a broken invariant).
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "runtime/queue.h"
#include "runtime/util.h"

struct fixture {
	struct event_base	*base;
	struct queue		 q;
	struct qtask		 t[3];
	int			 ready;
};

static void
ready_cb(void *arg)
{
	((struct fixture *)arg)->ready++;
}

static size_t
count(const struct qtask_list *l)
{
	const struct qtask *t;
	size_t n = 0;

	TAILQ_FOREACH(t, l, entry)
		n++;
	return n;
}

static void
fx_init(struct fixture *fx)
{
	int i;

	memset(fx, 0, sizeof *fx);
	fx->base = event_base_new();
	queue_init(&fx->q, fx->base, ready_cb, fx);
	for (i = 0; i < 3; i++) {
		fx->t[i].id = i + 1;
		fx->t[i].pol.total_s = 60;
		fx->t[i].pol.lease_s = 10;
		queue_add(&fx->q, &fx->t[i]);
	}
}

static void
fx_free(struct fixture *fx)
{
	int i;

	for (i = 0; i < 3; i++)
		if (fx->t[i].retry_ev != NULL)
			event_free(fx->t[i].retry_ev);
	event_base_free(fx->base);
}

static void
test_queue_task_lives_queued_leased_delayed_done(void **unused)
{
	struct fixture fx;

	fx_init(&fx);
	assert_int_equal(fx.q.nqueued, 3);
	queue_lease(&fx.q, &fx.t[0], 7);
	assert_int_equal(fx.t[0].state, QT_LEASED);
	assert_int_equal(count(&fx.q.leased), 1);
	assert_int_equal(queue_unlink(&fx.q, &fx.t[0]), 7);
	assert_int_equal(count(&fx.q.leased), 0);
	/* A retry without backoff is queued again at once, first in line. */
	queue_delay(&fx.q, &fx.t[0], 0);
	assert_int_equal(fx.t[0].state, QT_QUEUED);
	assert_ptr_equal(TAILQ_FIRST(&fx.q.queued), &fx.t[0]);
	assert_int_equal(fx.ready, 1);
	assert_int_equal(queue_unlink(&fx.q, &fx.t[0]), -1);
	queue_end(&fx.q, &fx.t[0]);
	assert_int_equal(fx.t[0].state, QT_DONE);
	assert_int_equal(fx.q.nqueued, 2);
	assert_int_equal(count(&fx.q.queued), 2);
	fx_free(&fx);
}

static void
test_queue_unlink_twice_leaves_the_lists_sound(void **unused)
{
	struct fixture fx;

	fx_init(&fx);
	queue_lease(&fx.q, &fx.t[1], 2);
	queue_lease(&fx.q, &fx.t[2], 3);
	assert_int_equal(queue_unlink(&fx.q, &fx.t[1]), 2);
	/* A second unlink is refused: no holder, the lists untouched. */
	assert_int_equal(queue_unlink(&fx.q, &fx.t[1]), -1);
	assert_int_equal(count(&fx.q.leased), 1);
	assert_ptr_equal(TAILQ_FIRST(&fx.q.leased), &fx.t[2]);
	assert_int_equal(count(&fx.q.queued), 1);
	assert_int_equal(fx.q.nqueued, 1);
	fx_free(&fx);
}

static void
test_queue_out_of_order_calls_do_nothing(void **unused)
{
	struct fixture fx;

	fx_init(&fx);
	/* Delaying a task still queued would put it in the list twice. */
	queue_delay(&fx.q, &fx.t[0], 0);
	assert_int_equal(count(&fx.q.queued), 3);
	assert_int_equal(fx.q.nqueued, 3);
	/* Ending a task still queued would leave it in the list. */
	queue_end(&fx.q, &fx.t[0]);
	assert_int_equal(fx.t[0].state, QT_QUEUED);
	/* Leasing a leased task; adding a task already added. */
	queue_lease(&fx.q, &fx.t[1], 1);
	queue_lease(&fx.q, &fx.t[1], 2);
	assert_int_equal(fx.t[1].worker, 1);
	queue_add(&fx.q, &fx.t[2]);
	assert_int_equal(count(&fx.q.queued), 2);
	assert_int_equal(fx.q.nqueued, 2);
	/* An ended task is never unlinked again. */
	assert_int_equal(queue_unlink(&fx.q, &fx.t[0]), -1);
	queue_end(&fx.q, &fx.t[0]);
	assert_int_equal(queue_unlink(&fx.q, &fx.t[0]), -1);
	queue_delay(&fx.q, &fx.t[0], 0);
	assert_int_equal(fx.t[0].state, QT_DONE);
	assert_int_equal(count(&fx.q.queued), 1);
	fx_free(&fx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_queue_task_lives_queued_leased_delayed_done),
		cmocka_unit_test(
		    test_queue_unlink_twice_leaves_the_lists_sound),
		cmocka_unit_test(test_queue_out_of_order_calls_do_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
