/* test_jsonrpc.c: line framing and JSON-RPC envelopes. */
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

#include "protocols/jsonrpc.h"
#include "runtime/util.h"

/* Feed a C string. */
static void
feed(struct linebuf *lb, const char *s)
{
	linebuf_feed(lb, s, strlen(s));
}

/* Assert that the next line is want. */
static void
expect_line(struct linebuf *lb, const char *want)
{
	const char *line = NULL;
	size_t len = 0;
	int rv;

	rv = linebuf_next(lb, &line, &len);
	if (rv != 1)
		fail_msg("linebuf_next returned %d, want line '%s'", rv, want);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(line, want, len);
	assert_int_equal(line[len], '\0');
}

/* Assert that linebuf_next returns rv (0 or -1). */
static void
expect_rv(struct linebuf *lb, int want)
{
	const char *line;
	size_t len;

	assert_int_equal(linebuf_next(lb, &line, &len), want);
}

static void
test_linebuf_joins_line_split_across_feeds(void **state)
{
	struct linebuf *lb = linebuf_new(100);

	feed(lb, "{\"a\":");
	expect_rv(lb, 0);
	feed(lb, "1");
	expect_rv(lb, 0);
	feed(lb, "}\n{\"b\"");
	expect_line(lb, "{\"a\":1}");
	expect_rv(lb, 0);
	feed(lb, ":2}\n");
	expect_line(lb, "{\"b\":2}");
	expect_rv(lb, 0);
	assert_int_equal(linebuf_pending(lb), 0);
	linebuf_free(lb);
}

static void
test_linebuf_strips_crlf(void **state)
{
	struct linebuf *lb = linebuf_new(100);

	feed(lb, "one\r\ntwo\r");
	expect_line(lb, "one");
	expect_rv(lb, 0);
	feed(lb, "\nthree\r\r\n");
	expect_line(lb, "two");
	/* Only one '\r' belongs to the line ending. */
	expect_line(lb, "three\r");
	linebuf_free(lb);
}

static void
test_linebuf_skips_empty_lines(void **state)
{
	struct linebuf *lb = linebuf_new(100);

	feed(lb, "\n\r\n\nx\n\n\ny\n\n");
	expect_line(lb, "x");
	expect_line(lb, "y");
	expect_rv(lb, 0);
	assert_int_equal(linebuf_pending(lb), 0);
	linebuf_free(lb);
}

static void
test_linebuf_many_lines_in_one_feed(void **state)
{
	struct linebuf *lb = linebuf_new(100);
	char buf[10000], want[16];
	size_t off = 0;
	int i;

	for (i = 0; i < 1000; i++)
		off += snprintf(buf + off, sizeof buf - off, "l%d\n", i);
	linebuf_feed(lb, buf, off);
	for (i = 0; i < 1000; i++) {
		snprintf(want, sizeof want, "l%d", i);
		expect_line(lb, want);
	}
	expect_rv(lb, 0);
	linebuf_free(lb);
}

static void
test_linebuf_partial_line_stays_pending(void **state)
{
	struct linebuf *lb = linebuf_new(100);

	feed(lb, "done\npart");
	expect_line(lb, "done");
	expect_rv(lb, 0);
	expect_rv(lb, 0);
	assert_int_equal(linebuf_pending(lb), 4);
	feed(lb, "ial");
	expect_rv(lb, 0);
	assert_int_equal(linebuf_pending(lb), 7);
	feed(lb, "\n");
	expect_line(lb, "partial");
	assert_int_equal(linebuf_pending(lb), 0);
	linebuf_free(lb);
}

static void
test_linebuf_line_of_exactly_max_is_accepted(void **state)
{
	struct linebuf *lb = linebuf_new(8);

	feed(lb, "12345678\n");
	expect_line(lb, "12345678");
	feed(lb, "abcdefgh\r");
	expect_rv(lb, 0);
	feed(lb, "\n");
	expect_line(lb, "abcdefgh");
	feed(lb, "123456789\n");
	expect_rv(lb, -1);
	expect_rv(lb, 0);
	linebuf_free(lb);
}

static void
test_linebuf_overlong_line_rejected_once_then_next_line_ok(void **state)
{
	struct linebuf *lb = linebuf_new(16);

	feed(lb, "before\n0123456789abcdefghij\nafter\n");
	expect_line(lb, "before");
	expect_rv(lb, -1);
	expect_line(lb, "after");
	expect_rv(lb, 0);
	linebuf_free(lb);
}

static void
test_linebuf_overlong_line_is_discarded_while_it_arrives(void **state)
{
	struct linebuf *lb = linebuf_new(16);
	char chunk[4096];
	int i;

	memset(chunk, 'x', sizeof chunk);
	feed(lb, "first\n");
	for (i = 0; i < 256; i++) {
		linebuf_feed(lb, chunk, sizeof chunk);
		/* Never more than the limit plus a little is kept. */
		assert_true(linebuf_pending(lb) <= 6 + 16 + 2);
	}
	expect_line(lb, "first");
	expect_rv(lb, -1);
	expect_rv(lb, 0);
	for (i = 0; i < 16; i++)
		linebuf_feed(lb, chunk, sizeof chunk);
	expect_rv(lb, 0);
	assert_int_equal(linebuf_pending(lb), 0);
	feed(lb, "xxx\nnext\n");
	/* The end of the dropped line is not reported a second time. */
	expect_line(lb, "next");
	expect_rv(lb, 0);
	linebuf_free(lb);
}

static void
test_linebuf_overlong_line_reported_when_it_ends(void **state)
{
	struct linebuf *lb = linebuf_new(4);

	/* Not asked for lines until the overlong one has ended. */
	feed(lb, "a\n0123456789");
	feed(lb, "0123456789");
	feed(lb, "tail\nb\n");
	expect_line(lb, "a");
	expect_rv(lb, -1);
	expect_line(lb, "b");
	expect_rv(lb, 0);
	linebuf_free(lb);
}

static void
test_linebuf_any_chunking_gives_same_lines(void **state)
{
	const char *stream = "alpha\nbe\r\nlonglonglonglong\n\n"
	    "gamma\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\nd\nlast\n";
	const char *want[] = { "alpha", "be", NULL, "gamma", NULL, "d",
	    "last" };
	const char *line;
	size_t len, n = strlen(stream), off, k, got;
	unsigned seed;
	int rv;

	for (seed = 1; seed <= 500; seed++) {
		struct linebuf *lb = linebuf_new(8);

		srand(seed);
		got = 0;
		for (off = 0; off < n; off += k) {
			k = 1 + rand() % 7;
			if (k > n - off)
				k = n - off;
			linebuf_feed(lb, stream + off, k);
			if (rand() % 2)
				continue;
			while ((rv = linebuf_next(lb, &line, &len)) != 0) {
				assert_true(got < nitems(want));
				if (want[got] == NULL)
					assert_int_equal(rv, -1);
				else {
					assert_int_equal(rv, 1);
					assert_string_equal(line, want[got]);
				}
				got++;
			}
		}
		while ((rv = linebuf_next(lb, &line, &len)) != 0) {
			assert_true(got < nitems(want));
			if (want[got] == NULL)
				assert_int_equal(rv, -1);
			else
				assert_string_equal(line, want[got]);
			got++;
		}
		assert_int_equal(got, nitems(want));
		linebuf_free(lb);
	}
}

static void
test_linebuf_long_stream_stays_small(void **state)
{
	struct linebuf *lb = linebuf_new(64);
	char want[32];
	int i;

	/* One line at a time, interleaved with partial lines. */
	for (i = 0; i < 100000; i++) {
		snprintf(want, sizeof want, "line %d", i);
		feed(lb, want);
		feed(lb, "\n");
		expect_line(lb, want);
		assert_int_equal(linebuf_pending(lb), 0);
	}
	linebuf_free(lb);
}

/* Parse a message that must be valid. */
static void
parse_ok(const char *text, struct jrpc_msg *m)
{
	char err[256] = "";
	int code = 0;

	if (jrpc_parse(text, strlen(text), m, &code, err, sizeof err) != 0)
		fail_msg("parse of %s failed (%d): %s", text, code, err);
}

/* Parse a message that must be refused with code and error err. */
static void
parse_bad(const char *text, int want_code, const char *want_err)
{
	struct jrpc_msg m;
	char err[256] = "";
	int code = 0;

	if (jrpc_parse(text, strlen(text), &m, &code, err, sizeof err) == 0)
		fail_msg("parse of %s succeeded", text);
	assert_int_equal(code, want_code);
	if (strstr(err, want_err) == NULL)
		fail_msg("error for %s is '%s', want '%s'", text, err,
		    want_err);
}

static void
test_parse_request(void **state)
{
	struct jrpc_msg m;

	parse_ok("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\","
	    "\"params\":{\"name\":\"echo\"}}", &m);
	assert_int_equal(m.kind, JRPC_REQUEST);
	assert_int_equal(json_integer_value(m.id), 7);
	assert_string_equal(m.method, "tools/call");
	assert_string_equal(json_string_value(json_object_get(m.params,
	    "name")), "echo");
	assert_null(m.result);
	assert_null(m.error);
	jrpc_msg_clear(&m);

	parse_ok("{\"method\":\"ping\",\"id\":\"abc\",\"jsonrpc\":\"2.0\"}", &m);
	assert_int_equal(m.kind, JRPC_REQUEST);
	assert_string_equal(json_string_value(m.id), "abc");
	assert_null(m.params);
	jrpc_msg_clear(&m);
}

static void
test_parse_notification(void **state)
{
	struct jrpc_msg m;

	parse_ok("{\"jsonrpc\":\"2.0\","
	    "\"method\":\"notifications/initialized\"}", &m);
	assert_int_equal(m.kind, JRPC_NOTIFICATION);
	assert_null(m.id);
	assert_string_equal(m.method, "notifications/initialized");
	jrpc_msg_clear(&m);
}

static void
test_parse_response(void **state)
{
	struct jrpc_msg m;

	parse_ok("{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"x\":[1,2]}}", &m);
	assert_int_equal(m.kind, JRPC_RESPONSE);
	assert_int_equal(json_integer_value(m.id), 3);
	assert_true(json_is_array(json_object_get(m.result, "x")));
	assert_null(m.method);
	jrpc_msg_clear(&m);

	/* Any JSON value is a result, null included. */
	parse_ok("{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"result\":null}", &m);
	assert_int_equal(m.kind, JRPC_RESPONSE);
	assert_true(json_is_null(m.result));
	jrpc_msg_clear(&m);
}

static void
test_parse_error_response(void **state)
{
	struct jrpc_msg m;

	parse_ok("{\"jsonrpc\":\"2.0\",\"id\":4,\"error\":{\"code\":-32601,"
	    "\"message\":\"Method not found\",\"data\":{\"m\":\"x\"}}}", &m);
	assert_int_equal(m.kind, JRPC_ERROR_RESPONSE);
	assert_int_equal(json_integer_value(m.id), 4);
	assert_int_equal(m.error_code, JRPC_METHOD_NOT_FOUND);
	assert_string_equal(m.error_message, "Method not found");
	jrpc_msg_clear(&m);
}

static void
test_parse_error_response_may_have_null_id(void **state)
{
	struct jrpc_msg m;

	parse_ok("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,"
	    "\"message\":\"Parse error\"}}", &m);
	assert_int_equal(m.kind, JRPC_ERROR_RESPONSE);
	assert_false(json_is_integer(m.id));
	assert_false(json_is_string(m.id));
	assert_int_equal(m.error_code, JRPC_PARSE_ERROR);
	jrpc_msg_clear(&m);
}

static void
test_parse_rejects_invalid_version(void **state)
{
	parse_bad("{\"id\":1,\"method\":\"ping\"}", JRPC_INVALID_REQUEST,
	    "/jsonrpc: must be \"2.0\"");
	parse_bad("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}",
	    JRPC_INVALID_REQUEST, "/jsonrpc: must be \"2.0\"");
	parse_bad("{\"jsonrpc\":2.0,\"id\":1,\"method\":\"ping\"}",
	    JRPC_INVALID_REQUEST, "/jsonrpc: must be \"2.0\"");
}

static void
test_parse_rejects_bad_id_types(void **state)
{
	const char *ids[] = { "null", "1.5", "true", "{}", "[1]" };
	char buf[128];
	size_t i;

	for (i = 0; i < nitems(ids); i++) {
		snprintf(buf, sizeof buf, "{\"jsonrpc\":\"2.0\",\"id\":%s,"
		    "\"method\":\"ping\"}", ids[i]);
		parse_bad(buf, JRPC_INVALID_REQUEST,
		    "/id: must be a string or an integer");
		snprintf(buf, sizeof buf, "{\"jsonrpc\":\"2.0\",\"id\":%s,"
		    "\"result\":{}}", ids[i]);
		parse_bad(buf, JRPC_INVALID_REQUEST,
		    "/id: must be a string or an integer");
	}
	parse_bad("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"error\":{\"code\":1,"
	    "\"message\":\"m\"}}", JRPC_INVALID_REQUEST, "/id: must be");
	parse_bad("{\"jsonrpc\":\"2.0\",\"result\":{}}", JRPC_INVALID_REQUEST,
	    "/id: required");
}

static void
test_parse_rejects_batch(void **state)
{
	parse_bad("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]",
	    JRPC_INVALID_REQUEST, "message is not a JSON object");
	parse_bad("[]", JRPC_INVALID_REQUEST, "message is not a JSON object");
}

static void
test_parse_rejects_non_object(void **state)
{
	parse_bad("\"ping\"", JRPC_INVALID_REQUEST,
	    "message is not a JSON object");
	parse_bad("42", JRPC_INVALID_REQUEST, "message is not a JSON object");
	parse_bad("null", JRPC_INVALID_REQUEST,
	    "message is not a JSON object");
}

static void
test_parse_rejects_bad_method_and_params(void **state)
{
	parse_bad("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}",
	    JRPC_INVALID_REQUEST, "/method: must be a string");
	parse_bad("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\","
	    "\"params\":\"x\"}", JRPC_INVALID_REQUEST,
	    "/params: must be an object or an array");
	parse_bad("{\"jsonrpc\":\"2.0\",\"id\":1}", JRPC_INVALID_REQUEST,
	    "/method: missing");
	parse_bad("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\","
	    "\"result\":1}", JRPC_INVALID_REQUEST, "/result: not allowed");
}

static void
test_parse_rejects_result_and_error_together(void **state)
{
	parse_bad("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},"
	    "\"error\":{\"code\":1,\"message\":\"m\"}}", JRPC_INVALID_REQUEST,
	    "/error: not allowed together with result");
}

static void
test_parse_rejects_malformed_error_member(void **state)
{
	parse_bad("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":\"boom\"}",
	    JRPC_INVALID_REQUEST, "/error: must be an object");
	parse_bad("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":\"1\","
	    "\"message\":\"m\"}}", JRPC_INVALID_REQUEST,
	    "/error/code: must be an integer");
	parse_bad("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1.5,"
	    "\"message\":\"m\"}}", JRPC_INVALID_REQUEST,
	    "/error/code: must be an integer");
	parse_bad("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1}}",
	    JRPC_INVALID_REQUEST, "/error/message: must be a string");
}

static void
test_parse_error_message_has_line_and_column(void **state)
{
	parse_bad("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":}",
	    JRPC_PARSE_ERROR, "invalid JSON at line 1 column 34: "
	    "unexpected token near '}'");
	parse_bad("{\"jsonrpc\":\"2.0\",\n\"id\":1,\n\"method\":]}",
	    JRPC_PARSE_ERROR, "invalid JSON at line 3 column 10: ");
	parse_bad("{this is not json", JRPC_PARSE_ERROR,
	    "invalid JSON at line 1 column 5: ");
	/* Trailing bytes after the object are not accepted. */
	parse_bad("{\"jsonrpc\":\"2.0\",\"method\":\"m\"} x", JRPC_PARSE_ERROR,
	    "invalid JSON at line 1 column");
}

static void
test_parse_uses_only_len_bytes(void **state)
{
	const char *text = "{\"jsonrpc\":\"2.0\",\"method\":\"m\"}GARBAGE";
	struct jrpc_msg m;
	char err[128];
	int code;

	assert_int_equal(jrpc_parse(text, strlen(text) - 7, &m, &code, err,
	    sizeof err), 0);
	assert_int_equal(m.kind, JRPC_NOTIFICATION);
	jrpc_msg_clear(&m);
}

static void
test_dump_has_no_raw_newline_even_with_newlines_in_strings(void **state)
{
	json_t *msg;
	char *buf;
	size_t len;

	msg = jrpc_result(json_integer(1), json_pack("{s:s, s:[s]}",
	    "text", "line one\nline two\r\n", "more", "a\nb"));
	buf = jrpc_dump(msg, &len, 0);
	assert_non_null(buf);
	assert_int_equal(len, strlen(buf));
	assert_null(memchr(buf, '\n', len));
	assert_null(memchr(buf, '\r', len));
	free(buf);

	buf = jrpc_dump(msg, &len, 1);
	assert_non_null(buf);
	assert_int_equal(buf[len - 1], '\n');
	assert_ptr_equal(memchr(buf, '\n', len), buf + len - 1);
	free(buf);
	json_decref(msg);
}

static void
test_builders_round_trip_through_parse(void **state)
{
	struct jrpc_msg m;
	json_t *msg;
	char *buf;
	size_t len;
	char err[128];
	int code;

	msg = jrpc_request(json_integer(9), "tools/list", json_object());
	buf = jrpc_dump(msg, &len, 1);
	assert_string_equal(buf, "{\"jsonrpc\":\"2.0\",\"id\":9,"
	    "\"method\":\"tools/list\",\"params\":{}}\n");
	assert_int_equal(jrpc_parse(buf, len - 1, &m, &code, err,
	    sizeof err), 0);
	assert_int_equal(m.kind, JRPC_REQUEST);
	jrpc_msg_clear(&m);
	free(buf);
	json_decref(msg);

	msg = jrpc_notification("notifications/initialized", NULL);
	buf = jrpc_dump(msg, &len, 0);
	assert_string_equal(buf, "{\"jsonrpc\":\"2.0\","
	    "\"method\":\"notifications/initialized\"}");
	free(buf);
	json_decref(msg);

	msg = jrpc_error(NULL, JRPC_PARSE_ERROR, "bad", NULL);
	buf = jrpc_dump(msg, &len, 0);
	assert_string_equal(buf, "{\"jsonrpc\":\"2.0\",\"id\":null,"
	    "\"error\":{\"code\":-32700,\"message\":\"bad\"}}");
	assert_int_equal(jrpc_parse(buf, len, &m, &code, err, sizeof err), 0);
	assert_int_equal(m.kind, JRPC_ERROR_RESPONSE);
	assert_int_equal(m.error_code, JRPC_PARSE_ERROR);
	assert_string_equal(m.error_message, "bad");
	jrpc_msg_clear(&m);
	free(buf);
	json_decref(msg);

	msg = jrpc_result(json_string("x"), NULL);
	buf = jrpc_dump(msg, &len, 0);
	assert_string_equal(buf, "{\"jsonrpc\":\"2.0\",\"id\":\"x\","
	    "\"result\":{}}");
	free(buf);
	json_decref(msg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_linebuf_joins_line_split_across_feeds),
		cmocka_unit_test(test_linebuf_strips_crlf),
		cmocka_unit_test(test_linebuf_skips_empty_lines),
		cmocka_unit_test(test_linebuf_many_lines_in_one_feed),
		cmocka_unit_test(test_linebuf_partial_line_stays_pending),
		cmocka_unit_test(test_linebuf_line_of_exactly_max_is_accepted),
		cmocka_unit_test(
		    test_linebuf_overlong_line_rejected_once_then_next_line_ok),
		cmocka_unit_test(
		    test_linebuf_overlong_line_is_discarded_while_it_arrives),
		cmocka_unit_test(
		    test_linebuf_overlong_line_reported_when_it_ends),
		cmocka_unit_test(test_linebuf_any_chunking_gives_same_lines),
		cmocka_unit_test(test_linebuf_long_stream_stays_small),
		cmocka_unit_test(test_parse_request),
		cmocka_unit_test(test_parse_notification),
		cmocka_unit_test(test_parse_response),
		cmocka_unit_test(test_parse_error_response),
		cmocka_unit_test(test_parse_error_response_may_have_null_id),
		cmocka_unit_test(test_parse_rejects_invalid_version),
		cmocka_unit_test(test_parse_rejects_bad_id_types),
		cmocka_unit_test(test_parse_rejects_batch),
		cmocka_unit_test(test_parse_rejects_non_object),
		cmocka_unit_test(test_parse_rejects_bad_method_and_params),
		cmocka_unit_test(test_parse_rejects_result_and_error_together),
		cmocka_unit_test(test_parse_rejects_malformed_error_member),
		cmocka_unit_test(test_parse_error_message_has_line_and_column),
		cmocka_unit_test(test_parse_uses_only_len_bytes),
		cmocka_unit_test(
		    test_dump_has_no_raw_newline_even_with_newlines_in_strings),
		cmocka_unit_test(test_builders_round_trip_through_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
