/* test_replay.c: the recorded-answer source (engine/replay.c). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "engine/replay.h"
#include "engine/store.h"

#define H1 "1111111111111111111111111111111111111111111111111111111111111111"
#define H2 "2222222222222222222222222222222222222222222222222222222222222222"

struct fx {
	struct store	*st;
	int64_t		 seq;
};

/* Append an event of run to the store. */
static void
ev(struct fx *f, const char *run, const char *kind, int64_t span,
    const char *path, const char *payload)
{
	struct store_event e;

	memset(&e, 0, sizeof e);
	e.run_id = run;
	e.seq = ++f->seq;
	e.span_id = span;
	e.node_path = path;
	e.kind = kind;
	e.payload = payload;
	assert_int_equal(store_event_append(f->st, &e), 0);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	char err[256];

	assert_int_equal(store_open(":memory:", &f->st, err, sizeof err), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	store_close(f->st);
	free(f);
	return 0;
}

/*
 * A run that crashed once and was resumed: task 1 (a/0) completed, task 2
 * (a/1) was in flight at the crash, and the resume re-made a/1 as task 3.
 */
static void
crashed_and_resumed(struct fx *f)
{
	ev(f, "r1", "run.start", 0, "", "{}");
	ev(f, "r1", "tool.call", 1, "a", "{\"task\":1,\"call\":0,\"hash\":\""
	    H1 "\",\"step\":\"mcp.call:s/echo\",\"arguments\":{\"m\":1}}");
	ev(f, "r1", "tool.result", 1, "a", "{\"task\":1,\"result\":\"one\"}");
	ev(f, "r1", "random", 1, "a", "{\"call\":2,\"hash\":\"" H2 "\","
	    "\"step\":\"random\",\"args\":[1,6],\"value\":4}");
	ev(f, "r1", "tool.call", 1, "a", "{\"task\":2,\"call\":1,\"hash\":\""
	    H2 "\",\"step\":\"mcp.call:s/echo\",\"arguments\":{\"m\":2}}");
	/* crash; resume: task ids go on, the in-flight call is made again */
	ev(f, "r1", "run.resume", 0, "", "{}");
	ev(f, "r1", "tool.call", 7, "a", "{\"task\":3,\"call\":1,\"hash\":\""
	    H2 "\",\"step\":\"mcp.call:s/echo\",\"arguments\":{\"m\":2}}");
	ev(f, "r1", "tool.result", 7, "a", "{\"task\":3,\"result\":\"two\"}");
	ev(f, "r1", "model.request", 7, "b", "{\"call\":0,\"hash\":\"" H1
	    "\",\"step\":\"model\",\"messages\":[\"x\",\"y\"]}");
	ev(f, "r1", "model.error", 7, "b", "{\"call\":0,\"kind\":\"timeout\"}");
}

static void
test_replay_resume_answers_completed_calls_only(void **state)
{
	struct fx *f = *state;
	struct replay *r;
	json_t *res, *err;
	int64_t from;
	char e[256];

	crashed_and_resumed(f);
	r = replay_load(f->st, "r1", REPLAY_RESUME, 0, e, sizeof e);
	assert_non_null(r);
	assert_int_equal(replay_answer(r, "a", 0, "mcp.call:s/echo", H1, NULL,
	    &res, &err, &from), 1);
	assert_string_equal(json_string_value(res), "one");
	assert_int_equal(from, 3);
	/* the call made again after the crash: its newer outcome */
	assert_int_equal(replay_answer(r, "a", 1, "mcp.call:s/echo", H2, NULL,
	    &res, &err, &from), 1);
	assert_string_equal(json_string_value(res), "two");
	assert_int_equal(replay_answer(r, "a", 2, "random", H2, NULL, &res,
	    &err, &from), 1);
	assert_int_equal(json_integer_value(res), 4);
	/* other arguments, another call, a failed call: live */
	assert_int_equal(replay_answer(r, "a", 0, "mcp.call:s/echo", H2, NULL,
	    &res, &err, &from), 0);
	assert_int_equal(replay_answer(r, "a", 3, "mcp.call:s/echo", H1, NULL,
	    &res, &err, &from), 0);
	assert_int_equal(replay_answer(r, "b", 0, "model", H1, NULL, &res,
	    &err, &from), 0);
	assert_null(replay_divergence(r));
	assert_int_equal(replay_answered(r), 3);
	assert_int_equal(replay_recorded(r), 4);
	assert_int_equal(replay_last_seq(r), 10);
	assert_int_equal(replay_last_task(r), 3);
	assert_int_equal(replay_last_span(r), 7);
	replay_free(r);
}

static void
test_replay_offline_reports_first_divergence(void **state)
{
	struct fx *f = *state;
	struct replay *r;
	json_t *res, *err;
	int64_t from;
	char e[256];

	crashed_and_resumed(f);
	r = replay_load(f->st, "r1", REPLAY_OFFLINE, 0, e, sizeof e);
	assert_non_null(r);
	/* offline, a recorded error is an answer too */
	assert_int_equal(replay_answer(r, "b", 0, "model", H1, NULL, &res,
	    &err, &from), 1);
	assert_null(res);
	assert_string_equal(json_string_value(json_object_get(err, "kind")),
	    "timeout");
	assert_int_equal(replay_answer(r, "a", 0, "mcp.call:s/echo", H2, NULL,
	    &res, &err, &from), -1);
	replay_describe(r, "mcp.call:s/echo {\"m\":9}");
	assert_string_equal(replay_divergence(r),
	    "first divergence at node 'a', call #0:\n"
	    "  record: mcp.call:s/echo {\"m\":1} (seq 2)\n"
	    "  script: mcp.call:s/echo {\"m\":9}");
	/* the first one stays */
	assert_int_equal(replay_answer(r, "z", 0, "now", H1, "now []", &res,
	    &err, &from), -1);
	assert_non_null(strstr(replay_divergence(r), "node 'a'"));
	replay_free(r);
}

static void
test_replay_offline_unmade_call_diverges(void **state)
{
	struct fx *f = *state;
	struct replay *r;
	json_t *res, *err;
	int64_t from;
	char e[256];

	crashed_and_resumed(f);
	r = replay_load(f->st, "r1", REPLAY_OFFLINE, 0, e, sizeof e);
	assert_int_equal(replay_answer(r, "a", 0, "mcp.call:s/echo", H1, NULL,
	    &res, &err, &from), 1);
	assert_int_equal(replay_check_unused(r), -1);
	assert_non_null(strstr(replay_divergence(r), "call #2:\n  record: "
	    "random [1,6] (seq 4)\n  script: no such call (the script no "
	    "longer makes it)"));
	replay_free(r);
}

static void
test_replay_fork_follows_parent_up_to_seq(void **state)
{
	struct fx *f = *state;
	struct replay *r;
	json_t *res, *err;
	int64_t from;
	char e[256];

	crashed_and_resumed(f);
	/* r2 forked from r1 at seq 3 (after a/0's result), then a/1 live */
	f->seq = 0;
	ev(f, "r2", "run.start", 0, "", "{\"forked_from\":{\"run\":\"r1\","
	    "\"seq\":3}}");
	ev(f, "r2", "step.replayed", 1, "a", "{\"call\":0}");
	ev(f, "r2", "tool.call", 1, "a", "{\"task\":1,\"call\":1,\"hash\":\""
	    H1 "\",\"step\":\"mcp.call:s/echo\",\"arguments\":{\"m\":5}}");
	ev(f, "r2", "tool.result", 1, "a", "{\"task\":1,\"result\":\"five\"}");
	r = replay_load(f->st, "r2", REPLAY_OFFLINE, 0, e, sizeof e);
	assert_non_null(r);
	assert_int_equal(replay_answer(r, "a", 0, "mcp.call:s/echo", H1, NULL,
	    &res, &err, &from), 1);
	assert_string_equal(json_string_value(res), "one");
	assert_int_equal(replay_answer(r, "a", 1, "mcp.call:s/echo", H1, NULL,
	    &res, &err, &from), 1);
	assert_string_equal(json_string_value(res), "five");
	/* r1's random at seq 4 is past the fork point */
	assert_int_equal(replay_answer(r, "a", 2, "random", H2, NULL, &res,
	    &err, &from), -1);
	assert_int_equal(replay_last_seq(r), 4);
	replay_free(r);
	/* a fork of r1 at seq 3, as the fork itself loads it */
	r = replay_load(f->st, "r1", REPLAY_RESUME, 3, e, sizeof e);
	assert_int_equal(replay_recorded(r), 1);
	replay_free(r);
}

static void
test_replay_many_steps_one_node(void **state)
{
	struct fx *f = *state;
	struct replay *r;
	json_t *res, *err;
	int64_t from;
	char e[256], *p;
	int i;

	ev(f, "r3", "run.start", 0, "", "{}");
	for (i = 0; i < 5000; i++) {
		if (asprintf(&p, "{\"call\":%d,\"hash\":\"" H1 "\",\"step\":"
		    "\"now\",\"args\":[],\"value\":%d}", i, i) < 0)
			fail();
		ev(f, "r3", "clock", 0, i % 2 ? "x" : "y", p);
		free(p);
	}
	r = replay_load(f->st, "r3", REPLAY_OFFLINE, 0, e, sizeof e);
	for (i = 0; i < 5000; i++) {
		assert_int_equal(replay_answer(r, i % 2 ? "x" : "y", i, "now",
		    H1, NULL, &res, &err, &from), 1);
		assert_int_equal(json_integer_value(res), i);
	}
	assert_int_equal(replay_check_unused(r), 0);
	replay_free(r);
}

/*
 * An a2a.send in flight at a crash whose remote task id a tool.progress
 * event recorded ("remote"): a resume finds it by path and arguments
 * hash, also after a resume that made the call again and crashed before
 * its first update; not once the call has an outcome, not for a fork,
 * not offline.  Progress without "remote" (older records) names none.
 */
static void
test_replay_remote_task_of_call_in_flight(void **state)
{
	struct fx *f = *state;
	struct replay *r;
	char e[256];

	ev(f, "r1", "run.start", 0, "", "{}");
	ev(f, "r1", "tool.call", 1, "n", "{\"task\":1,\"call\":0,\"hash\":\""
	    H1 "\",\"step\":\"a2a.send:p/send\",\"arguments\":{\"n\":1}}");
	ev(f, "r1", "tool.progress", 1, "n", "{\"task\":1,\"progress\":1,"
	    "\"remote\":{\"task\":\"T1\",\"protocol\":\"1.0\"}}");
	ev(f, "r1", "tool.result", 1, "n", "{\"task\":1,\"result\":{}}");
	ev(f, "r1", "tool.call", 2, "m", "{\"task\":2,\"call\":0,\"hash\":\""
	    H2 "\",\"step\":\"a2a.send:p/send\",\"arguments\":{\"n\":1}}");
	ev(f, "r1", "tool.progress", 2, "m", "{\"task\":2,\"progress\":1,"
	    "\"message\":\"working\"}");
	ev(f, "r1", "tool.progress", 2, "m", "{\"task\":2,\"progress\":2,"
	    "\"remote\":{\"task\":\"T2\",\"protocol\":\"0.3\"}}");
	/* crash; resume makes m/0 again (task 3), crash before its update */
	ev(f, "r1", "run.resume", 0, "", "{}");
	ev(f, "r1", "tool.call", 3, "m", "{\"task\":3,\"call\":0,\"hash\":\""
	    H2 "\",\"step\":\"a2a.send:p/send\",\"arguments\":{\"n\":1}}");
	ev(f, "r1", "tool.call", 3, "o", "{\"task\":4,\"call\":0,\"hash\":\""
	    H2 "\",\"step\":\"a2a.send:p/send\",\"arguments\":{\"n\":1}}");
	ev(f, "r1", "tool.progress", 3, "o", "{\"task\":4,\"progress\":1}");
	r = replay_load(f->st, "r1", REPLAY_RESUME, 0, e, sizeof e);
	assert_non_null(r);
	assert_non_null(replay_remote(r, "m", H2));
	assert_string_equal(json_string_value(json_object_get(replay_remote(r,
	    "m", H2), "task")), "T2");
	assert_string_equal(json_string_value(json_object_get(replay_remote(r,
	    "m", H2), "protocol")), "0.3");
	assert_null(replay_remote(r, "m", H1));		/* other arguments */
	assert_null(replay_remote(r, "n", H1));		/* it has a result */
	assert_null(replay_remote(r, "o", H2));		/* none recorded */
	replay_free(r);
	r = replay_load(f->st, "r1", REPLAY_RESUME, 8, e, sizeof e);
	assert_null(replay_remote(r, "m", H2));		/* a fork's source */
	replay_free(r);
	r = replay_load(f->st, "r1", REPLAY_OFFLINE, 0, e, sizeof e);
	assert_null(replay_remote(r, "m", H2));
	replay_free(r);
}

static void
test_replay_hash_separates_its_parts(void **state)
{
	char a[65], b[65];

	(void)state;
	replay_hash("ab", "c", a);
	replay_hash("a", "bc", b);
	assert_string_not_equal(a, b);
	replay_hash("{}", NULL, a);
	assert_int_equal(strlen(a), 64);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_replay_resume_answers_completed_calls_only, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_replay_offline_reports_first_divergence, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_replay_offline_unmade_call_diverges, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_replay_fork_follows_parent_up_to_seq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_many_steps_one_node,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_replay_remote_task_of_call_in_flight, setup,
		    teardown),
		cmocka_unit_test(test_replay_hash_separates_its_parts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
