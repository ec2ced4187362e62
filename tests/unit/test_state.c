/* test_state.c: state views, forks and the parallel-join merge. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "engine/state.h"
#include "runtime/util.h"

/* Parse a JSON text that the test itself wrote. */
static json_t *
J(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &je);

	if (j == NULL)
		fail_msg("bad test JSON %s: %s", text, je.text);
	return j;
}

/* Assert that v equals the JSON text want. */
static void
assert_json(json_t *v, const char *want)
{
	json_t *w = J(want);
	char *got;

	if (v == NULL || !json_equal(v, w)) {
		got = v != NULL ? json_dumps(v, JSON_ENCODE_ANY |
		    JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		json_decref(w);
		fail_msg("got %s, want %s", got != NULL ? got : "(null)",
		    want);
	}
	json_decref(w);
}

/* Reducers given as a JSON object key -> "append" | "sum" | ... */
struct tred {
	json_t	*kinds;
	int	 calls;
	int	 fail_on;	/* fail the custom call with this number */
};

static enum state_reducer
tred_kind_cb(void *arg, const char *key)
{
	struct tred *t = arg;
	const char *s = json_string_value(json_object_get(t->kinds, key));

	if (s == NULL)
		return STATE_REDUCE_NONE;
	if (strcmp(s, "append") == 0)
		return STATE_REDUCE_APPEND;
	if (strcmp(s, "sum") == 0)
		return STATE_REDUCE_SUM;
	if (strcmp(s, "merge") == 0)
		return STATE_REDUCE_MERGE;
	if (strcmp(s, "custom") == 0)
		return STATE_REDUCE_CUSTOM;
	return STATE_REDUCE_NONE;
}

/* A custom reducer recording its calls: acc becomes [acc, val]. */
static int
tred_custom_cb(void *arg, const char *key, json_t *acc, json_t *val,
    json_t **out, char *err, size_t errlen)
{
	struct tred *t = arg;

	if (++t->calls == t->fail_on) {
		errf(err, errlen, "boom at call %d", t->calls);
		return -1;
	}
	*out = json_pack("[OO]", acc != NULL ? acc : json_null(), val);
	return 0;
}

static struct state_reducers
tred_init(struct tred *t, const char *kinds)
{
	struct state_reducers r;

	memset(t, 0, sizeof *t);
	t->kinds = J(kinds);
	r.kind = tred_kind_cb;
	r.custom = tred_custom_cb;
	r.arg = t;
	return r;
}

/* A parent with content init and three forks named a, b, c. */
struct fixture {
	struct state		*parent;
	struct state_branch	 br[3];
	char			 err[512];
};

static void
fx_init(struct fixture *fx, const char *init)
{
	json_t *j = J(init);
	static const char *names[] = { "a", "b", "c" };
	size_t i;

	memset(fx, 0, sizeof *fx);
	fx->parent = state_new(j);
	json_decref(j);
	for (i = 0; i < nitems(fx->br); i++) {
		fx->br[i].name = names[i];
		fx->br[i].st = state_fork(fx->parent);
	}
}

static void
fx_set(struct fixture *fx, size_t i, const char *key, const char *val)
{
	state_set(fx->br[i].st, key, J(val));
}

static void
fx_free(struct fixture *fx)
{
	size_t i;

	for (i = 0; i < nitems(fx->br); i++)
		state_free(fx->br[i].st);
	state_free(fx->parent);
}

static void
test_new_copies_input(void **unused)
{
	json_t *in = J("{\"topic\":\"owls\",\"n\":1}");
	struct state *st = state_new(in);

	json_object_set_new(in, "topic", json_string("changed"));
	assert_json(state_get(st, "topic"), "\"owls\"");
	json_decref(in);
	assert_json(state_get(st, "n"), "1");
	assert_null(state_get(st, "absent"));
	state_free(st);

	st = state_new(NULL);
	assert_json(state_delta(st), "{}");
	state_free(st);
}

static void
test_fork_reads_parent_writes_own_delta(void **unused)
{
	json_t *in = J("{\"topic\":\"owls\",\"x\":1}");
	struct state *root = state_new(in), *f;

	json_decref(in);
	f = state_fork(root);
	assert_json(state_get(f, "topic"), "\"owls\"");
	state_set(f, "x", json_integer(2));
	state_set(f, "y", json_string("new"));
	assert_json(state_get(f, "x"), "2");
	assert_json(state_get(f, "y"), "\"new\"");
	/* The parent never sees the fork's writes. */
	assert_json(state_get(root, "x"), "1");
	assert_null(state_get(root, "y"));
	assert_json(state_delta(f), "{\"x\":2,\"y\":\"new\"}");
	assert_json(state_delta(root), "{\"topic\":\"owls\",\"x\":1}");
	state_free(f);
	state_free(root);
}

static void
test_fork_of_fork_reads_whole_chain(void **unused)
{
	json_t *in = J("{\"a\":1,\"b\":1,\"c\":1}");
	struct state *root = state_new(in), *f1, *f2;

	json_decref(in);
	f1 = state_fork(root);
	state_set(f1, "b", json_integer(2));
	f2 = state_fork(f1);
	state_set(f2, "c", json_integer(3));
	assert_json(state_get(f2, "a"), "1");
	assert_json(state_get(f2, "b"), "2");
	assert_json(state_get(f2, "c"), "3");
	assert_json(state_get(f1, "c"), "1");
	state_free(f2);
	state_free(f1);
	state_free(root);
}

static void
test_null_in_delta_is_a_value(void **unused)
{
	json_t *in = J("{\"k\":\"v\"}"), *snap;
	struct state *root = state_new(in), *f;

	json_decref(in);
	f = state_fork(root);
	state_set(f, "k", json_null());
	assert_non_null(state_get(f, "k"));
	assert_true(json_is_null(state_get(f, "k")));
	snap = state_snapshot(f);
	assert_json(snap, "{\"k\":null}");
	json_decref(snap);
	state_free(f);
	state_free(root);
}

static void
test_snapshot_child_overrides_parent(void **unused)
{
	json_t *in = J("{\"a\":1,\"b\":{\"x\":1}}"), *snap;
	struct state *root = state_new(in), *f;

	json_decref(in);
	f = state_fork(root);
	state_set(f, "a", json_integer(5));
	state_set(f, "c", json_true());
	snap = state_snapshot(f);
	assert_json(snap, "{\"a\":5,\"b\":{\"x\":1},\"c\":true}");
	/* The snapshot is the caller's: changing it leaves the state alone. */
	json_object_set_new(json_object_get(snap, "b"), "x", json_integer(9));
	json_object_set_new(snap, "a", json_integer(0));
	json_decref(snap);
	assert_json(state_get(f, "a"), "5");
	assert_json(state_get(f, "b"), "{\"x\":1}");
	snap = state_snapshot(root);
	assert_json(snap, "{\"a\":1,\"b\":{\"x\":1}}");
	json_decref(snap);
	state_free(f);
	state_free(root);
}

static void
test_get_path_walks_objects(void **unused)
{
	json_t *in = J("{\"a\":{\"b\":{\"c\":7}},\"s\":\"str\"}");
	struct state *root = state_new(in), *f;

	json_decref(in);
	f = state_fork(root);
	assert_json(state_get_path(f, "a.b.c"), "7");
	assert_json(state_get_path(f, "a.b"), "{\"c\":7}");
	assert_json(state_get_path(f, "s"), "\"str\"");
	assert_null(state_get_path(f, "a.x"));
	assert_null(state_get_path(f, "s.len"));
	assert_null(state_get_path(f, "a..b"));
	assert_null(state_get_path(f, "a.b."));
	assert_null(state_get_path(f, ""));
	state_set(f, "a", J("{\"b\":1}"));
	assert_json(state_get_path(f, "a.b"), "1");
	state_free(f);
	state_free(root);
}

static void
test_getn_uses_only_len_bytes(void **unused)
{
	json_t *in = J("{\"topic\":1}");
	struct state *st = state_new(in);

	json_decref(in);
	assert_json(state_getn(st, "topic.more", 5), "1");
	assert_null(state_getn(st, "topic", 4));
	state_free(st);
}

static void
test_merge_single_writer_without_reducer(void **unused)
{
	struct fixture fx;
	struct state_reducers r;
	struct tred t;

	fx_init(&fx, "{\"keep\":1}");
	r = tred_init(&t, "{}");
	fx_set(&fx, 0, "web", "\"facts\"");
	fx_set(&fx, 2, "notes", "[1]");
	assert_int_equal(state_merge(fx.parent, "research", fx.br, 3, &r,
	    fx.err, sizeof fx.err), 0);
	assert_json(state_get(fx.parent, "web"), "\"facts\"");
	assert_json(state_get(fx.parent, "notes"), "[1]");
	assert_json(state_get(fx.parent, "keep"), "1");
	json_decref(t.kinds);
	fx_free(&fx);
}

static void
test_merge_conflict_names_both_branches(void **unused)
{
	struct fixture fx;
	struct state_reducers r;
	struct tred t;

	fx_init(&fx, "{}");
	r = tred_init(&t, "{}");
	fx_set(&fx, 1, "facts", "\"b\"");
	fx_set(&fx, 2, "facts", "\"c\"");
	assert_int_equal(state_merge(fx.parent, "research", fx.br, 3, &r,
	    fx.err, sizeof fx.err), -1);
	assert_string_equal(fx.err, "parallel 'research': branches 'b' and "
	    "'c' both wrote 'facts', which has no reducer");
	assert_null(state_get(fx.parent, "facts"));
	json_decref(t.kinds);
	fx_free(&fx);
}

static void
test_merge_conflict_names_first_two_writers(void **unused)
{
	struct fixture fx;

	fx_init(&fx, "{}");
	fx_set(&fx, 0, "k", "1");
	fx_set(&fx, 1, "k", "2");
	fx_set(&fx, 2, "k", "3");
	/* No reducers at all: every key is STATE_REDUCE_NONE. */
	assert_int_equal(state_merge(fx.parent, "p", fx.br, 3, NULL,
	    fx.err, sizeof fx.err), -1);
	assert_string_equal(fx.err, "parallel 'p': branches 'a' and 'b' "
	    "both wrote 'k', which has no reducer");
	fx_free(&fx);
}

static void
test_merge_conflict_even_when_equal_values(void **unused)
{
	struct fixture fx;

	fx_init(&fx, "{}");
	fx_set(&fx, 0, "k", "{\"same\":true}");
	fx_set(&fx, 1, "k", "{\"same\":true}");
	assert_int_equal(state_merge(fx.parent, "p", fx.br, 3, NULL,
	    fx.err, sizeof fx.err), -1);
	assert_non_null(strstr(fx.err, "'a' and 'b' both wrote 'k'"));
	assert_null(state_get(fx.parent, "k"));
	fx_free(&fx);
}

static void
test_merge_reports_first_key_in_sorted_order(void **unused)
{
	struct fixture fx;

	fx_init(&fx, "{}");
	/* Written in reverse order; the error must name the smallest key. */
	fx_set(&fx, 0, "zeta", "1");
	fx_set(&fx, 0, "alpha", "1");
	fx_set(&fx, 1, "zeta", "2");
	fx_set(&fx, 1, "alpha", "2");
	assert_int_equal(state_merge(fx.parent, "p", fx.br, 2, NULL,
	    fx.err, sizeof fx.err), -1);
	assert_non_null(strstr(fx.err, "both wrote 'alpha'"));
	fx_free(&fx);
}

static void
test_merge_append_suffixes_in_branch_order(void **unused)
{
	struct fixture fx;
	struct state_reducers r;
	struct tred t;

	fx_init(&fx, "{\"log\":[\"start\"]}");
	r = tred_init(&t, "{\"log\":\"append\"}");
	/* Branches see ["start"] and extend it; c writes before b does. */
	fx_set(&fx, 2, "log", "[\"start\",\"c1\",\"c2\"]");
	fx_set(&fx, 0, "log", "[\"start\",\"a1\"]");
	fx_set(&fx, 1, "log", "[\"start\",\"b1\"]");
	assert_int_equal(state_merge(fx.parent, "p", fx.br, 3, &r,
	    fx.err, sizeof fx.err), 0);
	assert_json(state_get(fx.parent, "log"),
	    "[\"start\",\"a1\",\"b1\",\"c1\",\"c2\"]");
	json_decref(t.kinds);
	fx_free(&fx);
}

static void
test_merge_append_non_extension_is_one_element(void **unused)
{
	struct fixture fx;
	struct state_reducers r;
	struct tred t;

	fx_init(&fx, "{\"log\":[1,2]}");
	r = tred_init(&t, "{\"log\":\"append\",\"fresh\":\"append\"}");
	fx_set(&fx, 0, "log", "[9]");		/* does not start with [1,2] */
	fx_set(&fx, 1, "log", "\"x\"");		/* not an array */
	fx_set(&fx, 2, "log", "[1,2,3]");
	fx_set(&fx, 0, "fresh", "[\"a\"]");	/* missing base is [] */
	fx_set(&fx, 1, "fresh", "\"b\"");
	assert_int_equal(state_merge(fx.parent, "p", fx.br, 3, &r,
	    fx.err, sizeof fx.err), 0);
	assert_json(state_get(fx.parent, "log"), "[1,2,[9],\"x\",3]");
	assert_json(state_get(fx.parent, "fresh"), "[\"a\",\"b\"]");
	json_decref(t.kinds);
	fx_free(&fx);
}

static void
test_merge_append_base_not_array_is_error(void **unused)
{
	struct fixture fx;
	struct state_reducers r;
	struct tred t;

	fx_init(&fx, "{\"log\":\"text\"}");
	r = tred_init(&t, "{\"log\":\"append\"}");
	fx_set(&fx, 0, "log", "[1]");
	assert_int_equal(state_merge(fx.parent, "p", fx.br, 3, &r,
	    fx.err, sizeof fx.err), -1);
	assert_non_null(strstr(fx.err, "'log'"));
	assert_non_null(strstr(fx.err, "not an array"));
	assert_json(state_get(fx.parent, "log"), "\"text\"");
	json_decref(t.kinds);
	fx_free(&fx);
}

static void
test_merge_sum_counts_increments(void **unused)
{
	struct fixture fx;
	struct state_reducers r;
	struct tred t;

	fx_init(&fx, "{\"n\":10}");
	r = tred_init(&t, "{\"n\":\"sum\",\"m\":\"sum\"}");
	fx_set(&fx, 0, "n", "11");	/* +1 */
	fx_set(&fx, 1, "n", "15");	/* +5 */
	fx_set(&fx, 2, "n", "8");	/* -2 */
	fx_set(&fx, 0, "m", "3");	/* missing base counts as 0 */
	fx_set(&fx, 1, "m", "4");
	assert_int_equal(state_merge(fx.parent, "p", fx.br, 3, &r,
	    fx.err, sizeof fx.err), 0);
	assert_true(json_is_integer(state_get(fx.parent, "n")));
	assert_int_equal(json_integer_value(state_get(fx.parent, "n")), 14);
	assert_true(json_is_integer(state_get(fx.parent, "m")));
	assert_int_equal(json_integer_value(state_get(fx.parent, "m")), 7);
	json_decref(t.kinds);
	fx_free(&fx);
}

static void
test_merge_sum_with_real_is_real(void **unused)
{
	struct fixture fx;
	struct state_reducers r;
	struct tred t;

	fx_init(&fx, "{\"usd\":1}");
	r = tred_init(&t, "{\"usd\":\"sum\"}");
	fx_set(&fx, 0, "usd", "1.5");
	fx_set(&fx, 1, "usd", "3");
	assert_int_equal(state_merge(fx.parent, "p", fx.br, 3, &r,
	    fx.err, sizeof fx.err), 0);
	assert_true(json_is_real(state_get(fx.parent, "usd")));
	assert_float_equal(json_real_value(state_get(fx.parent, "usd")),
	    3.5, 1e-9);
	json_decref(t.kinds);
	fx_free(&fx);
}

static void
test_merge_sum_non_number_names_key_and_branch(void **unused)
{
	struct fixture fx;
	struct state_reducers r;
	struct tred t;

	fx_init(&fx, "{\"n\":1}");
	r = tred_init(&t, "{\"n\":\"sum\"}");
	fx_set(&fx, 0, "n", "2");
	fx_set(&fx, 1, "n", "\"three\"");
	assert_int_equal(state_merge(fx.parent, "p", fx.br, 3, &r,
	    fx.err, sizeof fx.err), -1);
	assert_non_null(strstr(fx.err, "'n'"));
	assert_non_null(strstr(fx.err, "branch 'b'"));
	assert_json(state_get(fx.parent, "n"), "1");
	json_decref(t.kinds);
	fx_free(&fx);
}

/* Reals that sum past the double range: an error naming the key (json_real
   has no infinity), not an abort as if memory were short. */
static void
test_merge_sum_past_double_range_is_error(void **unused)
{
	struct fixture fx;
	struct state_reducers r;
	struct tred t;

	fx_init(&fx, "{\"usd\":0.5}");
	r = tred_init(&t, "{\"usd\":\"sum\"}");
	fx_set(&fx, 0, "usd", "1e308");
	fx_set(&fx, 1, "usd", "1e308");
	assert_int_equal(state_merge(fx.parent, "p", fx.br, 3, &r,
	    fx.err, sizeof fx.err), -1);
	assert_non_null(strstr(fx.err, "the sum of 'usd' overflows"));
	assert_json(state_get(fx.parent, "usd"), "0.5");
	json_decref(t.kinds);
	fx_free(&fx);
}

static void
test_merge_object_takes_changed_subkeys(void **unused)
{
	struct fixture fx;
	struct state_reducers r;
	struct tred t;

	fx_init(&fx, "{\"o\":{\"x\":1,\"y\":1}}");
	r = tred_init(&t, "{\"o\":\"merge\",\"fresh\":\"merge\"}");
	/* a changes x, b changes y, c keeps x as it was and adds z. */
	fx_set(&fx, 0, "o", "{\"x\":2,\"y\":1}");
	fx_set(&fx, 1, "o", "{\"x\":1,\"y\":3}");
	fx_set(&fx, 2, "o", "{\"x\":1,\"z\":4}");
	fx_set(&fx, 0, "fresh", "{\"k\":1}");
	fx_set(&fx, 1, "fresh", "{\"k\":1,\"l\":2}");	/* same k: fine */
	assert_int_equal(state_merge(fx.parent, "p", fx.br, 3, &r,
	    fx.err, sizeof fx.err), 0);
	assert_json(state_get(fx.parent, "o"),
	    "{\"x\":2,\"y\":3,\"z\":4}");
	assert_json(state_get(fx.parent, "fresh"), "{\"k\":1,\"l\":2}");
	json_decref(t.kinds);
	fx_free(&fx);
}

static void
test_merge_object_conflict_names_subkey_and_branches(void **unused)
{
	struct fixture fx;
	struct state_reducers r;
	struct tred t;

	fx_init(&fx, "{\"o\":{\"x\":1}}");
	r = tred_init(&t, "{\"o\":\"merge\"}");
	fx_set(&fx, 0, "o", "{\"x\":2}");
	fx_set(&fx, 2, "o", "{\"x\":3}");
	assert_int_equal(state_merge(fx.parent, "p", fx.br, 3, &r,
	    fx.err, sizeof fx.err), -1);
	assert_non_null(strstr(fx.err, "'a' and 'c'"));
	assert_non_null(strstr(fx.err, "'x'"));
	assert_non_null(strstr(fx.err, "'o'"));
	assert_json(state_get(fx.parent, "o"), "{\"x\":1}");
	json_decref(t.kinds);
	fx_free(&fx);
}

static void
test_merge_object_non_object_is_error(void **unused)
{
	struct fixture fx;
	struct state_reducers r;
	struct tred t;

	fx_init(&fx, "{}");
	r = tred_init(&t, "{\"o\":\"merge\"}");
	fx_set(&fx, 0, "o", "{\"x\":2}");
	fx_set(&fx, 1, "o", "[1]");
	assert_int_equal(state_merge(fx.parent, "p", fx.br, 3, &r,
	    fx.err, sizeof fx.err), -1);
	assert_non_null(strstr(fx.err, "branch 'b'"));
	assert_non_null(strstr(fx.err, "'o'"));
	assert_null(state_get(fx.parent, "o"));
	json_decref(t.kinds);
	fx_free(&fx);
}

static void
test_merge_custom_reducer(void **unused)
{
	struct fixture fx;
	struct state_reducers r;
	struct tred t;

	fx_init(&fx, "{\"c\":0}");
	r = tred_init(&t, "{\"c\":\"custom\",\"u\":\"custom\"}");
	fx_set(&fx, 2, "c", "\"z\"");
	fx_set(&fx, 0, "c", "\"x\"");
	fx_set(&fx, 1, "u", "1");	/* unset key: acc starts as NULL */
	assert_int_equal(state_merge(fx.parent, "p", fx.br, 3, &r,
	    fx.err, sizeof fx.err), 0);
	/* Folded from the base, in branch order. */
	assert_json(state_get(fx.parent, "c"), "[[0,\"x\"],\"z\"]");
	assert_json(state_get(fx.parent, "u"), "[null,1]");
	assert_int_equal(t.calls, 3);
	json_decref(t.kinds);
	fx_free(&fx);
}

static void
test_merge_custom_error_is_prefixed_with_key(void **unused)
{
	struct fixture fx;
	struct state_reducers r;
	struct tred t;

	fx_init(&fx, "{}");
	r = tred_init(&t, "{\"c\":\"custom\"}");
	t.fail_on = 2;
	fx_set(&fx, 0, "c", "1");
	fx_set(&fx, 1, "c", "2");
	assert_int_equal(state_merge(fx.parent, "p", fx.br, 3, &r,
	    fx.err, sizeof fx.err), -1);
	assert_string_equal(fx.err, "parallel 'p': key 'c': boom at call 2");
	assert_null(state_get(fx.parent, "c"));
	json_decref(t.kinds);
	fx_free(&fx);
}

static void
test_merge_is_atomic_on_error(void **unused)
{
	struct fixture fx;
	struct state_reducers r;
	struct tred t;
	json_t *before, *after;

	fx_init(&fx, "{\"log\":[0],\"n\":1}");
	r = tred_init(&t, "{\"log\":\"append\",\"n\":\"sum\"}");
	/* "a_ok", "log" and "n" merge fine; "zz" (sorted last) conflicts. */
	fx_set(&fx, 0, "a_ok", "true");
	fx_set(&fx, 0, "log", "[0,1]");
	fx_set(&fx, 1, "log", "[0,2]");
	fx_set(&fx, 0, "n", "2");
	fx_set(&fx, 1, "n", "3");
	fx_set(&fx, 0, "zz", "1");
	fx_set(&fx, 1, "zz", "2");
	before = state_snapshot(fx.parent);
	assert_int_equal(state_merge(fx.parent, "p", fx.br, 3, &r,
	    fx.err, sizeof fx.err), -1);
	assert_non_null(strstr(fx.err, "'zz'"));
	after = state_snapshot(fx.parent);
	assert_true(json_equal(before, after));
	assert_null(state_get(fx.parent, "a_ok"));
	json_decref(before);
	json_decref(after);
	json_decref(t.kinds);
	fx_free(&fx);
}

static void
test_merge_into_a_fork_leaves_grandparent(void **unused)
{
	json_t *in = J("{\"n\":1}");
	struct state *root = state_new(in), *mid;
	struct state_branch br[2];
	struct state_reducers r;
	struct tred t;
	char err[256];

	json_decref(in);
	mid = state_fork(root);
	br[0].name = "a";
	br[0].st = state_fork(mid);
	br[1].name = "b";
	br[1].st = state_fork(mid);
	r = tred_init(&t, "{\"n\":\"sum\"}");
	state_set(br[0].st, "n", json_integer(2));
	state_set(br[1].st, "n", json_integer(4));
	assert_int_equal(state_merge(mid, "inner", br, 2, &r, err,
	    sizeof err), 0);
	assert_json(state_get(mid, "n"), "5");
	assert_json(state_delta(mid), "{\"n\":5}");
	assert_json(state_get(root, "n"), "1");
	json_decref(t.kinds);
	state_free(br[0].st);
	state_free(br[1].st);
	state_free(mid);
	state_free(root);
}

static void
test_merge_no_branches_is_noop(void **unused)
{
	json_t *in = J("{\"n\":1}"), *snap;
	struct state *root = state_new(in);
	char err[64];

	json_decref(in);
	assert_int_equal(state_merge(root, "p", NULL, 0, NULL, err,
	    sizeof err), 0);
	snap = state_snapshot(root);
	assert_json(snap, "{\"n\":1}");
	json_decref(snap);
	state_free(root);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_copies_input),
		cmocka_unit_test(test_fork_reads_parent_writes_own_delta),
		cmocka_unit_test(test_fork_of_fork_reads_whole_chain),
		cmocka_unit_test(test_null_in_delta_is_a_value),
		cmocka_unit_test(test_snapshot_child_overrides_parent),
		cmocka_unit_test(test_get_path_walks_objects),
		cmocka_unit_test(test_getn_uses_only_len_bytes),
		cmocka_unit_test(test_merge_single_writer_without_reducer),
		cmocka_unit_test(test_merge_conflict_names_both_branches),
		cmocka_unit_test(test_merge_conflict_names_first_two_writers),
		cmocka_unit_test(test_merge_conflict_even_when_equal_values),
		cmocka_unit_test(test_merge_reports_first_key_in_sorted_order),
		cmocka_unit_test(test_merge_append_suffixes_in_branch_order),
		cmocka_unit_test(
		    test_merge_append_non_extension_is_one_element),
		cmocka_unit_test(test_merge_append_base_not_array_is_error),
		cmocka_unit_test(test_merge_sum_counts_increments),
		cmocka_unit_test(test_merge_sum_with_real_is_real),
		cmocka_unit_test(
		    test_merge_sum_non_number_names_key_and_branch),
		cmocka_unit_test(test_merge_sum_past_double_range_is_error),
		cmocka_unit_test(test_merge_object_takes_changed_subkeys),
		cmocka_unit_test(
		    test_merge_object_conflict_names_subkey_and_branches),
		cmocka_unit_test(test_merge_object_non_object_is_error),
		cmocka_unit_test(test_merge_custom_reducer),
		cmocka_unit_test(test_merge_custom_error_is_prefixed_with_key),
		cmocka_unit_test(test_merge_is_atomic_on_error),
		cmocka_unit_test(test_merge_into_a_fork_leaves_grandparent),
		cmocka_unit_test(test_merge_no_branches_is_noop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
