/* test_sandbox_explain.c: refusals named from a dead server's stderr. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/sandbox.h"
#include "runtime/util.h"

/* A directory with pkg/package.json, pkg/dist/index.js and data/. */
static char dir[64];

/* Make the tree the tests name. */
static int
setup(void **state)
{
	char p[256];
	FILE *f;

	snprintf(dir, sizeof dir, "/tmp/weft-explain-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(p, sizeof p, "%s/pkg", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof p, "%s/pkg/dist", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof p, "%s/data", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof p, "%s/pkg/package.json", dir);
	if ((f = fopen(p, "w")) == NULL)
		return -1;
	fclose(f);
	snprintf(p, sizeof p, "%s/pkg/dist/index.js", dir);
	if ((f = fopen(p, "w")) == NULL)
		return -1;
	fclose(f);
	return 0;
}

/* Remove the tree. */
static int
teardown(void **state)
{
	rmtree(dir);
	return 0;
}

/* The rules: /usr readable, data/ readable, nothing of ours writable. */
static json_t *
paths(int data_writable)
{
	char d[128];

	snprintf(d, sizeof d, "%s/data", dir);
	return json_pack("{s:[s, s], s:[s]}", "read", "/usr",
	    d, "write", data_writable ? d : "/dev/null");
}

/* Explain text with the given rules; the sentence, or "" for none. */
static const char *
explain(const char *text, int data_writable)
{
	static char buf[1024];
	json_t *p = paths(data_writable);

	if (sandbox_explain(p, text, strlen(text), buf, sizeof buf) == 0)
		buf[0] = '\0';
	json_decref(p);
	return buf;
}

static void
test_explain_node_read_names_the_package_root(void **state)
{
	char text[512], want[512];

	snprintf(text, sizeof text, "node:fs:448\n\nError: EACCES: "
	    "permission denied, open '%s/pkg/dist/index.js'\n    at x\n"
	    "Node.js v20.20.2\n", dir);
	snprintf(want, sizeof want, "the sandbox does not let it read "
	    "%s/pkg/dist/index.js: add sandbox = { read = { \"%s/pkg\" } }",
	    dir, dir);
	assert_string_equal(explain(text, 0), want);
}

static void
test_explain_python_write_of_a_new_file(void **state)
{
	char text[512], want[512];

	snprintf(text, sizeof text, "Traceback (most recent call last):\n"
	    "PermissionError: [Errno 13] Permission denied: "
	    "'%s/data/out.txt'\n", dir);
	snprintf(want, sizeof want, "the sandbox does not let it write "
	    "%s/data/out.txt: add sandbox = { write = { \"%s/data\" } }",
	    dir, dir);
	assert_true(strncmp(explain(text, 0), want, strlen(want)) == 0);
}

static void
test_explain_shell_names_the_path_before_the_marker(void **state)
{
	char text[512], want[512];

	snprintf(text, sizeof text, "/usr/bin/sh: 12: %s/pkg/dist/index.js: "
	    "Permission denied\n", dir);
	snprintf(want, sizeof want, "the sandbox does not let it read "
	    "%s/pkg/dist/index.js:", dir);
	assert_true(strncmp(explain(text, 0), want, strlen(want)) == 0);
}

static void
test_explain_allowed_path_is_not_blamed(void **state)
{
	char text[512];

	snprintf(text, sizeof text, "PermissionError: [Errno 13] Permission "
	    "denied: '%s/data/out.txt'\n", dir);
	assert_string_equal(explain(text, 1), "");
}

static void
test_explain_no_refusal_no_sentence(void **state)
{
	assert_string_equal(explain("Error: Cannot find module 'x'\n", 0),
	    "");
	assert_string_equal(explain("", 0), "");
}

static void
test_explain_refusal_without_path_points_to_debug(void **state)
{
	assert_true(strstr(explain("fatal: Operation not permitted\n", 0),
	    "sandbox = { debug = true }") != NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_explain_node_read_names_the_package_root),
		cmocka_unit_test(test_explain_python_write_of_a_new_file),
		cmocka_unit_test(
		    test_explain_shell_names_the_path_before_the_marker),
		cmocka_unit_test(test_explain_allowed_path_is_not_blamed),
		cmocka_unit_test(test_explain_no_refusal_no_sentence),
		cmocka_unit_test(
		    test_explain_refusal_without_path_points_to_debug),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
