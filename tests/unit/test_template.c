/* test_template.c: "{key}" rendering of instructions from the state. */
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

#include "engine/state.h"
#include "engine/template.h"

#define STATE_JSON \
	"{\"topic\":\"owls\",\"n\":3,\"pi\":2.5,\"ok\":true,\"nil\":null," \
	"\"list\":[1,\"two\"],\"obj\":{\"z\":1,\"a\":{\"deep\":\"x\"}}," \
	"\"empty\":\"\"}"

/* The test's state, set up per test. */
static int
setup(void **statep)
{
	json_error_t je;
	json_t *j = json_loads(STATE_JSON, 0, &je);

	if (j == NULL)
		return -1;
	*statep = state_new(j);
	json_decref(j);
	return 0;
}

static int
teardown(void **statep)
{
	state_free(*statep);
	return 0;
}

/* Render tmpl and check it gives want. */
static void
assert_renders(struct state *st, const char *tmpl, const char *want)
{
	char *out = NULL, err[256] = "";

	if (template_render(tmpl, st, &out, NULL, err, sizeof err) != 0)
		fail_msg("render of \"%s\" failed: %s", tmpl, err);
	assert_non_null(out);
	assert_string_equal(out, want);
	free(out);
}

/* Render tmpl and check that it fails on the missing key want. */
static void
assert_missing(struct state *st, const char *tmpl, const char *want)
{
	char *out = (char *)"untouched", *missing = NULL, err[256] = "";
	char msg[256];

	assert_int_equal(template_render(tmpl, st, &out, &missing, err,
	    sizeof err), -1);
	snprintf(msg, sizeof msg, "missing state key '%s'", want);
	assert_string_equal(err, msg);
	assert_non_null(missing);
	assert_string_equal(missing, want);
	assert_string_equal(out, "untouched");
	free(missing);
}

static void
test_template_plain_text_unchanged(void **statep)
{
	assert_renders(*statep, "", "");
	assert_renders(*statep, "no references here.", "no references here.");
}

static void
test_template_substitutes_strings_raw(void **statep)
{
	assert_renders(*statep, "Find facts on {topic}.",
	    "Find facts on owls.");
	assert_renders(*statep, "{topic}{topic}", "owlsowls");
	assert_renders(*statep, "[{empty}]", "[]");
}

static void
test_template_missing_key_is_error(void **statep)
{
	assert_missing(*statep, "Review {draft} now", "draft");
	/* A NULL missing pointer is allowed. */
	{
		char *out = NULL, err[64];

		assert_int_equal(template_render("{draft}", *statep, &out,
		    NULL, err, sizeof err), -1);
		assert_null(out);
		assert_string_equal(err, "missing state key 'draft'");
	}
}

static void
test_template_missing_dotted_names_whole_path(void **statep)
{
	assert_missing(*statep, "{obj.nope}", "obj.nope");
	assert_missing(*statep, "{topic.len}", "topic.len");
	assert_missing(*statep, "{nope.a.b}", "nope.a.b");
}

static void
test_template_optional_missing_is_empty(void **statep)
{
	assert_renders(*statep, "a{draft?}b", "ab");
	assert_renders(*statep, "{obj.nope?}", "");
}

static void
test_template_optional_present_renders(void **statep)
{
	assert_renders(*statep, "on {topic?}", "on owls");
	assert_renders(*statep, "{n?}", "3");
}

static void
test_template_literal_json_braces(void **statep)
{
	assert_renders(*statep, "Answer as {\"a\": 1} please",
	    "Answer as {\"a\": 1} please");
	assert_renders(*statep, "{ topic }", "{ topic }");
	assert_renders(*statep, "{topic", "{topic");
	assert_renders(*statep, "trailing {", "trailing {");
	assert_renders(*statep, "a } b", "a } b");
	assert_renders(*statep, "{1abc}", "{1abc}");
	assert_renders(*statep, "{topic.}", "{topic.}");
	assert_renders(*statep, "{.topic}", "{.topic}");
	assert_renders(*statep, "{to-pic}", "{to-pic}");
	assert_renders(*statep, "{topic??}", "{topic??}");
	assert_renders(*statep, "{}", "{}");
	/* A literal brace right before a reference. */
	assert_renders(*statep, "{ {topic}", "{ owls");
}

static void
test_template_dotted_path(void **statep)
{
	assert_renders(*statep, "{obj.a.deep}", "x");
	assert_renders(*statep, "{obj.z}", "1");
	assert_renders(*statep, "{obj.a}", "{\"deep\":\"x\"}");
}

static void
test_template_escaped_braces(void **statep)
{
	assert_renders(*statep, "{{topic}}", "{topic}");
	assert_renders(*statep, "{{{topic}}}", "{owls}");
	assert_renders(*statep, "a {{ b }} c", "a { b } c");
	/* An escaped missing key is not a reference. */
	assert_renders(*statep, "{{draft}}", "{draft}");
}

static void
test_template_non_string_values_as_json(void **statep)
{
	assert_renders(*statep, "{n} {pi} {ok} {nil}", "3 2.5 true null");
	assert_renders(*statep, "{list}", "[1,\"two\"]");
	/* Compact, with sorted keys. */
	assert_renders(*statep, "{obj}", "{\"a\":{\"deep\":\"x\"},\"z\":1}");
}

static void
test_template_reads_through_forks(void **statep)
{
	struct state *f = state_fork(*statep);

	state_set(f, "draft", json_string("v2"));
	state_set(f, "topic", json_string("bats"));
	assert_renders(f, "{draft} on {topic}", "v2 on bats");
	assert_renders(*statep, "{topic}", "owls");
	state_free(f);
}

static void
test_template_long_output_grows_buffer(void **statep)
{
	struct state *f = state_fork(*statep);
	size_t big = 100000, i, n;
	char *s = malloc(big + 1), *tmpl, *out = NULL, err[64];

	memset(s, 'q', big);
	s[big] = '\0';
	state_set(f, "big", json_string(s));
	n = 50;
	tmpl = malloc(n * 6 + 1);
	for (i = 0; i < n; i++)
		memcpy(tmpl + i * 5, "{big}", 5);
	tmpl[n * 5] = '\0';
	assert_int_equal(template_render(tmpl, f, &out, NULL, err,
	    sizeof err), 0);
	assert_int_equal(strlen(out), n * big);
	assert_true(out[0] == 'q' && out[n * big - 1] == 'q');
	free(out);
	free(tmpl);
	free(s);
	state_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_template_plain_text_unchanged),
		T(test_template_substitutes_strings_raw),
		T(test_template_missing_key_is_error),
		T(test_template_missing_dotted_names_whole_path),
		T(test_template_optional_missing_is_empty),
		T(test_template_optional_present_renders),
		T(test_template_literal_json_braces),
		T(test_template_dotted_path),
		T(test_template_escaped_braces),
		T(test_template_non_string_values_as_json),
		T(test_template_reads_through_forks),
		T(test_template_long_output_grows_buffer),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
