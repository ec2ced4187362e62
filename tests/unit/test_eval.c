/* test_eval.c: tool-call matching, precision/recall/F1 and the LCS. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "engine/eval.h"
#include "engine/store.h"

#define MAXC 16

/* Calls built from "tool" or "tool{json args}" strings. */
struct calls {
	struct eval_call	 c[MAXC];
	json_t			*args[MAXC];
	size_t			 n;
};

/* Parse specs into calls; actual calls ("srv.tool") get their name. */
static void
calls_make(struct calls *cs, int actual, const char *const *specs)
{
	json_error_t je;
	const char *brace, *dot;
	size_t i;

	memset(cs, 0, sizeof *cs);
	for (i = 0; specs[i] != NULL; i++) {
		assert_true(i < MAXC);
		brace = strchr(specs[i], '{');
		cs->c[i].tool = brace != NULL ? strndup(specs[i],
		    (size_t)(brace - specs[i])) : strdup(specs[i]);
		if (brace != NULL) {
			cs->args[i] = json_loads(brace, 0, &je);
			assert_non_null(cs->args[i]);
			cs->c[i].args = cs->args[i];
		}
		dot = strchr(cs->c[i].tool, '.');
		if (actual && dot != NULL)
			cs->c[i].name = dot + 1;
	}
	cs->n = i;
}

static void
calls_free(struct calls *cs)
{
	size_t i;

	for (i = 0; i < cs->n; i++) {
		free((char *)cs->c[i].tool);
		json_decref(cs->args[i]);
	}
}

/* Score specs and check matched, precision, recall and F1. */
static void
assert_score(const char *const *golden, const char *const *actual,
    enum eval_match m, enum eval_args a, size_t matched, double p,
    double r, double f1)
{
	struct calls g, x;
	struct eval_score s;
	long pair[MAXC];
	char err[256];

	calls_make(&g, 0, golden);
	calls_make(&x, 1, actual);
	assert_int_equal(eval_score(g.c, g.n, x.c, x.n, m, a, &s, pair, err,
	    sizeof err), 0);
	assert_int_equal(s.expected, g.n);
	assert_int_equal(s.actual, x.n);
	assert_int_equal(s.matched, matched);
	assert_float_equal(s.precision, p, 1e-9);
	assert_float_equal(s.recall, r, 1e-9);
	assert_float_equal(s.f1, f1, 1e-9);
	calls_free(&g);
	calls_free(&x);
}

#define L(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NONE ((const char *const[]){ NULL })

static void
test_eval_identical_calls_score_one(void **state)
{
	(void)state;
	assert_score(L("t.a", "t.b", "t.c"), L("t.a", "t.b", "t.c"),
	    EVAL_EXACT, EVAL_ARGS_COMPARE, 3, 1, 1, 1);
	assert_score(L("t.a", "t.b", "t.c"), L("t.a", "t.b", "t.c"),
	    EVAL_IN_ORDER, EVAL_ARGS_COMPARE, 3, 1, 1, 1);
	assert_score(L("t.a", "t.b", "t.c"), L("t.a", "t.b", "t.c"),
	    EVAL_ANY_ORDER, EVAL_ARGS_COMPARE, 3, 1, 1, 1);
}

/* One call inserted at the front: exact loses every position after it. */
static void
test_eval_exact_is_position_by_position(void **state)
{
	(void)state;
	/* golden a b c, actual x a b c: positions 0-2 all differ. */
	assert_score(L("t.a", "t.b", "t.c"), L("t.x", "t.a", "t.b", "t.c"),
	    EVAL_EXACT, EVAL_ARGS_IGNORE, 0, 0, 0, 0);
	/* golden a b c, actual a x c: positions 0 and 2 match. */
	assert_score(L("t.a", "t.b", "t.c"), L("t.a", "t.x", "t.c"),
	    EVAL_EXACT, EVAL_ARGS_IGNORE, 2, 2.0 / 3, 2.0 / 3, 2.0 / 3);
}

static void
test_eval_in_order_is_lcs(void **state)
{
	(void)state;
	/* LCS of a b c and x a b c is 3: P 3/4, R 1, F1 6/7. */
	assert_score(L("t.a", "t.b", "t.c"), L("t.x", "t.a", "t.b", "t.c"),
	    EVAL_IN_ORDER, EVAL_ARGS_IGNORE, 3, 0.75, 1, 6.0 / 7);
	/* Reversed order: LCS 1 of 3. */
	assert_score(L("t.a", "t.b", "t.c"), L("t.c", "t.b", "t.a"),
	    EVAL_IN_ORDER, EVAL_ARGS_IGNORE, 1, 1.0 / 3, 1.0 / 3, 1.0 / 3);
	/* a b a b vs b a b a: LCS 3. */
	assert_score(L("t.a", "t.b", "t.a", "t.b"),
	    L("t.b", "t.a", "t.b", "t.a"), EVAL_IN_ORDER, EVAL_ARGS_IGNORE,
	    3, 0.75, 0.75, 0.75);
}

static void
test_eval_any_order_is_multiset(void **state)
{
	(void)state;
	assert_score(L("t.a", "t.b", "t.c"), L("t.c", "t.b", "t.a"),
	    EVAL_ANY_ORDER, EVAL_ARGS_IGNORE, 3, 1, 1, 1);
	/* Multiplicity counts: two a expected, three made, one b missing. */
	assert_score(L("t.a", "t.a", "t.b"), L("t.a", "t.a", "t.a"),
	    EVAL_ANY_ORDER, EVAL_ARGS_IGNORE, 2, 2.0 / 3, 2.0 / 3, 2.0 / 3);
}

/* A greedy pass would give the argument-less golden call the only call
   with {"p":1}, leaving the specific one unmatched. */
static void
test_eval_any_order_finds_maximum_matching(void **state)
{
	(void)state;
	assert_score(L("t.a", "t.a{\"p\":1}"),
	    L("t.a{\"p\":1}", "t.a{\"p\":2}"), EVAL_ANY_ORDER,
	    EVAL_ARGS_COMPARE, 2, 1, 1, 1);
}

static void
test_eval_args_modes(void **state)
{
	(void)state;
	/* compare: whole arguments, numbers by value. */
	assert_score(L("t.a{\"n\":1}"), L("t.a{\"n\":1.0}"), EVAL_EXACT,
	    EVAL_ARGS_COMPARE, 1, 1, 1, 1);
	/* Exactly: 2^53 + 1 is not the real 2^53 (as in output_schema). */
	assert_score(L("t.a{\"n\":9007199254740993}"),
	    L("t.a{\"n\":9007199254740992.0}"), EVAL_EXACT,
	    EVAL_ARGS_COMPARE, 0, 0, 0, 0);
	assert_score(L("t.a{\"n\":1}"), L("t.a{\"n\":1,\"x\":2}"), EVAL_EXACT,
	    EVAL_ARGS_COMPARE, 0, 0, 0, 0);
	/* subset: the golden keys only. */
	assert_score(L("t.a{\"n\":1}"), L("t.a{\"n\":1,\"x\":2}"), EVAL_EXACT,
	    EVAL_ARGS_SUBSET, 1, 1, 1, 1);
	assert_score(L("t.a{\"n\":1}"), L("t.a{\"n\":2,\"x\":2}"), EVAL_EXACT,
	    EVAL_ARGS_SUBSET, 0, 0, 0, 0);
	/* ignore: names only. */
	assert_score(L("t.a{\"n\":1}"), L("t.a{\"n\":2}"), EVAL_EXACT,
	    EVAL_ARGS_IGNORE, 1, 1, 1, 1);
	/* A golden call without args matches any arguments. */
	assert_score(L("t.a"), L("t.a{\"n\":2}"), EVAL_EXACT,
	    EVAL_ARGS_COMPARE, 1, 1, 1, 1);
	/* Missing actual arguments count as {}. */
	assert_score(L("t.a{}"), L("t.a"), EVAL_EXACT, EVAL_ARGS_COMPARE, 1,
	    1, 1, 1);
}

static void
test_eval_tool_names(void **state)
{
	(void)state;
	/* A bare golden name matches that tool on any server. */
	assert_score(L("echo"), L("srv.echo"), EVAL_EXACT, EVAL_ARGS_IGNORE,
	    1, 1, 1, 1);
	/* A qualified name needs the same server. */
	assert_score(L("other.echo"), L("srv.echo"), EVAL_EXACT,
	    EVAL_ARGS_IGNORE, 0, 0, 0, 0);
}

static void
test_eval_empty_lists(void **state)
{
	(void)state;
	assert_score(NONE, NONE, EVAL_IN_ORDER, EVAL_ARGS_COMPARE, 0, 1, 1,
	    1);
	/* Calls made when none were expected: nothing right, nothing due. */
	assert_score(NONE, L("t.a"), EVAL_IN_ORDER, EVAL_ARGS_COMPARE, 0, 0,
	    1, 0);
	/* No call made when some were expected: none wrong, none made. */
	assert_score(L("t.a"), NONE, EVAL_ANY_ORDER, EVAL_ARGS_COMPARE, 0, 1,
	    0, 0);
}

static void
test_eval_node_path(void **state)
{
	struct eval_call g = { "t.a", NULL, "flow/x", NULL };
	struct eval_call a = { "t.a", "a", "flow/x", NULL };
	struct eval_call b = { "t.a", "a", "flow/y", NULL };

	(void)state;
	assert_true(eval_call_matches(&g, &a, EVAL_ARGS_COMPARE));
	assert_false(eval_call_matches(&g, &b, EVAL_ARGS_COMPARE));
}

static int
chr_eq(void *arg, size_t i, size_t j)
{
	const char **s = arg;

	return s[0][i] == s[1][j];
}

/* The alignment itself: which element pairs with which. */
static void
test_eval_lcs_alignment(void **state)
{
	const char *s[2] = { "ABCBDAB", "BDCABA" };
	long m[7];
	char err[128];
	size_t i, len = 0;

	(void)state;
	assert_int_equal(eval_lcs(7, 6, chr_eq, s, m, err, sizeof err), 4);
	for (i = 0; i < 7; i++) {
		if (m[i] < 0)
			continue;
		assert_int_equal(s[0][i], s[1][m[i]]);
		if (len > 0) {
			size_t k = i;

			while (k-- > 0 && m[k] < 0)
				;
			assert_true(m[i] > m[k]);
		}
		len++;
	}
	assert_int_equal(len, 4);
	/* Common prefix and suffix are matched in place. */
	s[0] = "XYZ";
	s[1] = "XQZ";
	assert_int_equal(eval_lcs(3, 3, chr_eq, s, m, err, sizeof err), 2);
	assert_int_equal(m[0], 0);
	assert_int_equal(m[1], -1);
	assert_int_equal(m[2], 2);
}

/* A store in a private directory with one run "r1". */
struct tstore {
	char		 dir[64], path[96];
	struct store	*st;
	int64_t		 seq;
};

static void
tstore_open(struct tstore *t)
{
	struct store_run run;
	char err[256];

	snprintf(t->dir, sizeof t->dir, "/tmp/test_eval.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof t->path, "%s/weft.db", t->dir);
	assert_int_equal(store_open(t->path, &t->st, err, sizeof err), 0);
	memset(&run, 0, sizeof run);
	run.id = "r1";
	run.status = "succeeded";
	assert_int_equal(store_run_create(t->st, &run), 0);
	t->seq = 0;
}

static void
tstore_close(struct tstore *t)
{
	char p[128];

	store_close(t->st);
	unlink(t->path);
	snprintf(p, sizeof p, "%s-wal", t->path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", t->path);
	unlink(p);
	rmdir(t->dir);
}

/* Append an event of run r1. */
static void
tstore_ev(struct tstore *t, const char *kind, int64_t span, int64_t parent,
    const char *path, const char *payload)
{
	struct store_event ev;

	memset(&ev, 0, sizeof ev);
	ev.run_id = "r1";
	ev.seq = ++t->seq;
	ev.span_id = span;
	ev.parent_span = parent;
	ev.node_path = path;
	ev.kind = kind;
	ev.payload = payload;
	assert_int_equal(store_event_append(t->st, &ev), 0);
}

/* The steps as "kind path name detail" lines joined by '|'. */
static char *
steps_text(const struct eval_run *r)
{
	char *out = calloc(1, 4096);
	size_t i;

	for (i = 0; i < r->n; i++)
		snprintf(out + strlen(out), 4096 - strlen(out), "%s%s %s %s %s",
		    i ? "|" : "", r->steps[i].kind, r->steps[i].path,
		    r->steps[i].name, r->steps[i].detail ?
		    r->steps[i].detail : "-");
	return out;
}

/* Parallel branches recorded interleaved come out one after the other. */
static void
test_eval_steps_in_tree_order(void **state)
{
	struct tstore t;
	struct eval_run r;
	char err[256], *text;

	(void)state;
	tstore_open(&t);
	tstore_ev(&t, "run.start", 0, 0, "", "{}");
	tstore_ev(&t, "node.start", 1, 0, "p", "{\"kind\":\"parallel\"}");
	tstore_ev(&t, "node.start", 2, 1, "p/a", "{\"kind\":\"agent\"}");
	tstore_ev(&t, "node.start", 3, 1, "p/b", "{\"kind\":\"agent\"}");
	tstore_ev(&t, "tool.call", 3, 0, "p/b", "{\"task\":2,\"server\":"
	    "\"s\",\"name\":\"y\",\"arguments\":{\"n\":2}}");
	tstore_ev(&t, "tool.call", 2, 0, "p/a", "{\"task\":1,\"server\":"
	    "\"s\",\"name\":\"x\"}");
	tstore_ev(&t, "tool.result", 2, 0, "p/a", "{\"task\":1,"
	    "\"result\":{\"content\":[]}}");
	tstore_ev(&t, "tool.error", 3, 0, "p/b", "{\"task\":2,\"error\":"
	    "{\"kind\":\"timeout\"}}");
	tstore_ev(&t, "model.call", 3, 1, "p/b", "{\"provider\":\"scripted\","
	    "\"model\":\"m\",\"response\":{\"stop_reason\":\"final\"}}");
	tstore_ev(&t, "node.end", 2, 1, "p/a", "{\"status\":\"succeeded\"}");
	tstore_ev(&t, "node.end", 3, 1, "p/b", "{\"status\":\"failed\"}");
	tstore_ev(&t, "node.end", 1, 0, "p", "{\"status\":\"failed\"}");
	tstore_ev(&t, "run.end", 0, 0, "", "{}");
	assert_int_equal(store_commit(t.st), 0);
	assert_int_equal(eval_run_load(t.st, "r1", &r, err, sizeof err), 0);
	text = steps_text(&r);
	assert_string_equal(text,
	    "node p parallel -|node p/a agent -|tool p/a s.x ok|"
	    "end p/a agent succeeded|node p/b agent -|"
	    "tool p/b s.y error (timeout)|model p/b scripted:m final|"
	    "end p/b agent failed|end p parallel failed|run   succeeded");
	assert_string_equal(r.steps[5].tool, "y");
	assert_int_equal(json_integer_value(json_object_get(r.steps[5].args,
	    "n")), 2);
	free(text);
	eval_run_free(&r);
	tstore_close(&t);
}

/* Spans whose parents form a cycle lose no step: they come last. */
static void
test_eval_steps_survive_corrupt_spans(void **state)
{
	struct tstore t;
	struct eval_run r;
	char err[256], *text;

	(void)state;
	tstore_open(&t);
	tstore_ev(&t, "node.start", 5, 6, "x", "{\"kind\":\"fn\"}");
	tstore_ev(&t, "node.start", 6, 5, "y", "{\"kind\":\"fn\"}");
	tstore_ev(&t, "node.start", 7, 7, "z", "not json");
	tstore_ev(&t, "tool.result", 7, 0, "z", "{\"task\":99}");
	assert_int_equal(store_commit(t.st), 0);
	assert_int_equal(eval_run_load(t.st, "r1", &r, err, sizeof err), 0);
	text = steps_text(&r);
	assert_string_equal(text, "node z ? -|run   succeeded|node x fn -|"
	    "node y fn -");
	free(text);
	eval_run_free(&r);
	assert_int_equal(eval_run_load(t.st, "nope", &r, err, sizeof err), -1);
	assert_string_equal(err, "no run 'nope'");
	tstore_close(&t);
}

static void
test_eval_mode_names(void **state)
{
	(void)state;
	assert_int_equal(eval_match_parse("any_order"), EVAL_ANY_ORDER);
	assert_int_equal(eval_match_parse("in-order"), -1);
	assert_int_equal(eval_args_parse("subset"), EVAL_ARGS_SUBSET);
	assert_string_equal(eval_match_name(EVAL_IN_ORDER), "in_order");
	assert_string_equal(eval_args_name(EVAL_ARGS_IGNORE), "ignore");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_eval_identical_calls_score_one),
		cmocka_unit_test(test_eval_exact_is_position_by_position),
		cmocka_unit_test(test_eval_in_order_is_lcs),
		cmocka_unit_test(test_eval_any_order_is_multiset),
		cmocka_unit_test(test_eval_any_order_finds_maximum_matching),
		cmocka_unit_test(test_eval_args_modes),
		cmocka_unit_test(test_eval_tool_names),
		cmocka_unit_test(test_eval_empty_lists),
		cmocka_unit_test(test_eval_node_path),
		cmocka_unit_test(test_eval_lcs_alignment),
		cmocka_unit_test(test_eval_steps_in_tree_order),
		cmocka_unit_test(test_eval_steps_survive_corrupt_spans),
		cmocka_unit_test(test_eval_mode_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
