/* test_grant.c: a run's grant tree, its lazy tokens and its call counts. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "engine/captoken.h"
#include "engine/grant.h"

static const unsigned char seed[32] = { 7, 7, 7, 1 };

struct fixture {
	struct captoken_keys	*keys;
	struct grants		*gs;
	int			 mints;		/* tokens minted so far */
	int			 last_id;	/* grant of the last mint */
};

static void
on_mint(void *arg, int id, const struct captoken *tok)
{
	struct fixture *f = arg;

	assert_non_null(captoken_string(tok));
	f->mints++;
	f->last_id = id;
}

static int
setup(void **state)
{
	static struct fixture f;
	char err[256];

	memset(&f, 0, sizeof f);
	if (captoken_keys_from_seed(seed, &f.keys, err, sizeof err) != 0)
		fail_msg("keys: %s", err);
	f.gs = grants_new(f.keys, on_mint, &f);
	*state = &f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	grants_free(f->gs);
	captoken_keys_free(f->keys);
	return 0;
}

static json_t *
parse(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);

	if (j == NULL)
		fail_msg("bad test JSON %s: %s", text, je.text);
	return j;
}

/* Add a grant from JSON text; the id, or -1 with *reason and err. */
static int
add(struct fixture *f, int parent, const char *node, const char *text,
    int eager, int *reason, char *err, size_t errlen)
{
	json_t *g = parse(text);
	int id = grants_add(f->gs, parent, node, g, eager, reason, err,
	    errlen);

	json_decref(g);
	return id;
}

static int
add_ok(struct fixture *f, int parent, const char *node, const char *text,
    int eager)
{
	char err[256];
	int reason = 0, id;

	id = add(f, parent, node, text, eager, &reason, err, sizeof err);
	if (id < 0)
		fail_msg("grant for %s refused: %s", node, err);
	return id;
}

static const char *
token_ok(struct fixture *f, int id, int count, int64_t now)
{
	char err[256];
	int reason = 0;
	const char *tok;

	tok = grants_token(f->gs, id, count, now, &reason, err, sizeof err);
	if (tok == NULL)
		fail_msg("token of grant %d refused: %s", id, err);
	return tok;
}

/* A lazy grant costs no signature until its first task; the token is then
   the run's, the node's, with what the grant says. */
static void
test_lazy_mint_claims(void **state)
{
	struct fixture *f = *state;
	const json_t *cl;
	int64_t now = captoken_now_ms();
	int id;

	id = add_ok(f, 0, "wf", "{\"tools\":[\"fs.*\"]}", 0);
	assert_int_equal(f->mints, 0);
	assert_null(grants_claims(f->gs, id));
	grants_set_run(f->gs, "0123456789abcdef");
	token_ok(f, id, 0, now);
	assert_int_equal(f->mints, 1);
	cl = grants_claims(f->gs, id);
	assert_string_equal(json_string_value(json_object_get(cl, "run")),
	    "0123456789abcdef");
	assert_string_equal(json_string_value(json_object_get(cl, "node")),
	    "wf");
	assert_string_equal(json_string_value(json_array_get(
	    json_object_get(cl, "tools"), 0)), "fs.*");
	assert_int_equal(json_integer_value(json_object_get(cl, "max_calls")),
	    CAPTOKEN_MAX_CALLS);
	/* Asked again while fresh: the same token, no new signature. */
	token_ok(f, id, 0, now + 1000);
	assert_int_equal(f->mints, 1);
}

/* A child narrows its parent; a wider child is refused when minted:
   at once if eager, at its first task if lazy. */
static void
test_wider_child_refused(void **state)
{
	struct fixture *f = *state;
	char err[256];
	int reason = 0, root, id;

	grants_set_run(f->gs, "r1");
	root = add_ok(f, 0, "wf", "{\"tools\":[\"fs.read\",\"web.*\"]}", 1);
	add_ok(f, root, "wf/a", "{\"tools\":[\"web.get\"]}", 1);
	id = add(f, root, "wf/b", "{\"tools\":[\"fs.*\"]}", 1, &reason, err,
	    sizeof err);
	assert_int_equal(id, -1);
	assert_int_equal(reason, CAPTOKEN_EWIDER);
	assert_non_null(strstr(err, "fs.*"));
	id = add_ok(f, root, "wf/c", "{\"tools\":[\"shell.run\"]}", 0);
	assert_null(grants_token(f->gs, id, 1, captoken_now_ms(), &reason,
	    err, sizeof err));
	assert_int_equal(reason, CAPTOKEN_EWIDER);
}

/* Calls count against the grant and every ancestor: siblings share the
   parent's max_calls whatever their own say. */
static void
test_calls_counted_up_the_tree(void **state)
{
	struct fixture *f = *state;
	int64_t now = captoken_now_ms();
	char err[256];
	int reason = 0, root, a, b, i;

	grants_set_run(f->gs, "r1");
	root = add_ok(f, 0, "wf", "{\"tools\":[\"t.*\"],\"max_calls\":3}", 1);
	a = add_ok(f, root, "wf/a", "{\"tools\":[\"t.*\"],\"max_calls\":2}",
	    1);
	b = add_ok(f, root, "wf/b", "{\"tools\":[\"t.*\"],\"max_calls\":2}",
	    1);
	for (i = 0; i < 2; i++)
		token_ok(f, a, 1, now);
	assert_null(grants_token(f->gs, a, 1, now, &reason, err, sizeof err));
	assert_int_equal(reason, CAPTOKEN_ECALLS);
	assert_non_null(strstr(err, "'wf/a' allows 2"));
	token_ok(f, b, 1, now);
	assert_null(grants_token(f->gs, b, 1, now, &reason, err, sizeof err));
	assert_int_equal(reason, CAPTOKEN_ECALLS);
	assert_non_null(strstr(err, "'wf' allows 3"));
	/* Not a tool call (a list): not counted, still served. */
	token_ok(f, b, 0, now);
}

/* A child left without args or max_calls inherits its parent's; its
   expiry is never after the parent's. */
static void
test_inherits_and_expiry(void **state)
{
	struct fixture *f = *state;
	const json_t *pc, *cc;
	int64_t now = captoken_now_ms();
	int root, kid;

	grants_set_run(f->gs, "r1");
	root = add_ok(f, 0, "wf", "{\"tools\":[\"fs.*\"],\"max_calls\":9,"
	    "\"args\":{\"fs.*\":{\"path\":{\"prefix\":[\"/srv\"]}}}}", 1);
	kid = add_ok(f, root, "wf/k", "{\"tools\":[\"fs.read\"]}", 1);
	pc = grants_claims(f->gs, root);
	cc = grants_claims(f->gs, kid);
	assert_int_equal(json_integer_value(json_object_get(cc, "max_calls")),
	    9);
	assert_true(json_equal(json_object_get(cc, "args"),
	    json_object_get(pc, "args")));
	assert_true(json_integer_value(json_object_get(cc, "exp")) <=
	    json_integer_value(json_object_get(pc, "exp")));
	assert_true(json_integer_value(json_object_get(pc, "exp")) <=
	    now + GRANT_TTL_MS + 1000);
}

/* Past half its life a token is minted again (parent first), with a new
   id; before that it is reused. */
static void
test_remint_when_half_spent(void **state)
{
	struct fixture *f = *state;
	int64_t now = captoken_now_ms();
	char *jti;
	int root, kid, before;

	grants_set_run(f->gs, "r1");
	root = add_ok(f, 0, "wf", "{\"tools\":[\"fs.*\"]}", 0);
	kid = add_ok(f, root, "wf/k", "{\"tools\":[\"fs.read\"]}", 0);
	token_ok(f, kid, 0, now);
	assert_int_equal(f->mints, 2);
	jti = strdup(json_string_value(json_object_get(grants_claims(f->gs,
	    kid), "jti")));
	token_ok(f, kid, 0, now + GRANT_TTL_MS / 2 - 60000);
	assert_int_equal(f->mints, 2);
	before = f->mints;
	token_ok(f, kid, 0, now + GRANT_TTL_MS / 2 + 60000);
	assert_int_equal(f->mints, before + 2);
	assert_int_equal(f->last_id, kid);
	assert_string_not_equal(json_string_value(json_object_get(
	    grants_claims(f->gs, kid), "jti")), jti);
	free(jti);
}

/* A new run forgets tokens and counts but keeps the grants. */
static void
test_set_run_resets(void **state)
{
	struct fixture *f = *state;
	int64_t now = captoken_now_ms();
	char err[256];
	int reason = 0, id;

	grants_set_run(f->gs, "r1");
	id = add_ok(f, 0, "wf", "{\"tools\":[\"t.*\"],\"max_calls\":1}", 1);
	token_ok(f, id, 1, now);
	assert_null(grants_token(f->gs, id, 1, now, &reason, err, sizeof err));
	grants_set_run(f->gs, "r2");
	assert_null(grants_claims(f->gs, id));
	token_ok(f, id, 1, now);
	assert_string_equal(json_string_value(json_object_get(
	    grants_claims(f->gs, id), "run")), "r2");
}

/* Bad ids and shapes are refused with a reason, never a crash. */
static void
test_bad_input(void **state)
{
	struct fixture *f = *state;
	char err[256];
	int reason = 0;
	json_t *arr = json_array();

	assert_int_equal(grants_add(f->gs, 5, "x", arr, 0, &reason, err,
	    sizeof err), -1);
	assert_non_null(strstr(err, "no grant 5"));
	assert_int_equal(grants_add(f->gs, 0, "x", arr, 0, &reason, err,
	    sizeof err), -1);
	assert_int_equal(reason, CAPTOKEN_EMALFORMED);
	json_decref(arr);
	assert_null(grants_token(f->gs, 0, 0, 0, &reason, err, sizeof err));
	assert_null(grants_token(f->gs, 99, 0, 0, &reason, err, sizeof err));
	assert_int_equal(reason, CAPTOKEN_EMALFORMED);
	assert_null(grants_claims(f->gs, 99));
	/* A malformed tool pattern: refused by the mint, eager. */
	assert_int_equal(add(f, 0, "x", "{\"tools\":[\"no dot\"]}", 1,
	    &reason, err, sizeof err), -1);
	assert_int_equal(reason, CAPTOKEN_EMALFORMED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lazy_mint_claims, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_wider_child_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_calls_counted_up_the_tree,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_inherits_and_expiry,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_remint_when_half_spent,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_run_resets, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
