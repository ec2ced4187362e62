/* test_sse.c: the incremental Server-Sent Events parser. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocols/sse.h"
#include "runtime/util.h"

/* Events seen, written as "type|data\n" with '\n' in data shown as "\\n". */
struct log {
	char	*p;
	size_t	 len;
	int	 n;
	int	 abort_at;	/* return -1 on this event (1-based), or 0 */
};

/* Append to the log. */
static void
log_add(struct log *l, const char *p, size_t n)
{
	l->p = xrealloc(l->p, l->len + n + 1);
	memcpy(l->p + l->len, p, n);
	l->len += n;
	l->p[l->len] = '\0';
}

/* The callback: record the event. */
static int
log_cb(void *arg, const char *event, const char *data, size_t len)
{
	struct log *l = arg;
	size_t i;

	assert_int_equal(data[len], '\0');
	l->n++;
	log_add(l, event, strlen(event));
	log_add(l, "|", 1);
	for (i = 0; i < len; i++) {
		if (data[i] == '\n')
			log_add(l, "\\n", 2);
		else if (data[i] == '\0')
			log_add(l, "\\0", 2);
		else
			log_add(l, data + i, 1);
	}
	log_add(l, "\n", 1);
	return l->n == l->abort_at ? -1 : 0;
}

/* Parse s split at the given offsets; the log of what came out. */
static char *
parse_split(const char *s, size_t len, const size_t *cuts, size_t ncuts)
{
	struct log l = { 0 };
	struct sse *p = sse_new(0, log_cb, &l);
	char err[128];
	size_t at = 0, i, to;

	for (i = 0; i <= ncuts; i++) {
		to = i < ncuts ? cuts[i] : len;
		assert_int_equal(sse_feed(p, s + at, to - at, err, sizeof err),
		    0);
		at = to;
	}
	sse_free(p);
	log_add(&l, "", 0);
	return l.p;
}

/* Parse s in one piece. */
static char *
parse_whole(const char *s)
{
	return parse_split(s, strlen(s), NULL, 0);
}

/* Assert that s, fed whole, gives the log want. */
static void
expect_events(const char *s, const char *want)
{
	char *got = parse_whole(s);

	assert_string_equal(got, want);
	free(got);
}

/*
 * A stream with every feature: a BOM, all three line ends, comments,
 * multi-line and empty data, event names, ids, a field without a colon,
 * unknown fields, an event without data, and multi-byte UTF-8.
 */
static const char rich[] =
    "\xef\xbb\xbf: comment at the start\r\n"
    "event: message_start\r\n"
    "data: {\"a\":1}\r\n"
    "\r\n"
    "data:first\rdata: second\r\r"
    ":keepalive\n"
    "id: 42\n"
    "event: delta\n"
    "data: h\xc3\xa9llo \xe2\x9c\x93\n"
    "data\n"
    "data:  two spaces\n"
    "unknown: x\n"
    "\n"
    "event: nodata\n"
    "retry: 1500\n"
    "\n"
    "data: after\r\n\r\n"
    "data: cut off at the end";

static const char rich_events[] =
    "message_start|{\"a\":1}\n"
    "message|first\\nsecond\n"
    "delta|h\xc3\xa9llo \xe2\x9c\x93\\n\\n two spaces\n"
    "message|after\n";

static void
test_sse_rich_stream_gives_expected_events(void **state)
{
	expect_events(rich, rich_events);
}

static void
test_sse_every_two_part_split_gives_same_events(void **state)
{
	size_t len = strlen(rich), cut;
	char *got;

	for (cut = 0; cut <= len; cut++) {
		got = parse_split(rich, len, &cut, 1);
		if (strcmp(got, rich_events) != 0)
			fail_msg("split at %zu: got\n%s", cut, got);
		free(got);
	}
}

static void
test_sse_one_byte_pieces_give_same_events(void **state)
{
	size_t len = strlen(rich), i;
	size_t *cuts = xcalloc(len, sizeof *cuts);
	char *got;

	for (i = 0; i < len; i++)
		cuts[i] = i;
	got = parse_split(rich, len, cuts, len);
	assert_string_equal(got, rich_events);
	free(got);
	free(cuts);
}

static void
test_sse_every_three_part_split_gives_same_events(void **state)
{
	size_t len = strlen(rich), cuts[2];
	char *got;

	for (cuts[0] = 0; cuts[0] <= len; cuts[0]++) {
		for (cuts[1] = cuts[0]; cuts[1] <= len; cuts[1]++) {
			got = parse_split(rich, len, cuts, 2);
			if (strcmp(got, rich_events) != 0)
				fail_msg("split at %zu,%zu: got\n%s", cuts[0],
				    cuts[1], got);
			free(got);
		}
	}
}

static void
test_sse_crlf_cr_and_lf_all_end_lines(void **state)
{
	expect_events("data: a\r\n\r\ndata: b\r\rdata: c\n\n",
	    "message|a\nmessage|b\nmessage|c\n");
	/* "\r\r\n": a CR line end, then a CRLF one: two line ends. */
	expect_events("data: a\r\r\ndata: b\n\n", "message|a\nmessage|b\n");
	/* "\n\r": LF then CR: two line ends, a blank line between. */
	expect_events("data: a\n\rdata: b\n\n", "message|a\nmessage|b\n");
}

static void
test_sse_cr_at_end_of_feed_then_lf_is_one_line_end(void **state)
{
	struct log l = { 0 };
	struct sse *p = sse_new(0, log_cb, &l);
	char err[128];

	assert_int_equal(sse_feed(p, "data: x\r", 8, err, sizeof err), 0);
	assert_int_equal(sse_feed(p, "\n", 1, err, sizeof err), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(sse_feed(p, "data: y\r", 8, err, sizeof err), 0);
	assert_int_equal(sse_feed(p, "", 0, err, sizeof err), 0);
	assert_int_equal(sse_feed(p, "\n\r", 2, err, sizeof err), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.p, "message|x\\ny\n");
	sse_free(p);
	free(l.p);
}

static void
test_sse_comments_are_ignored(void **state)
{
	expect_events(": hello\n:\ndata: a\n: in the middle\ndata: b\n\n"
	    ":only a comment\n\n",
	    "message|a\\nb\n");
}

static void
test_sse_multi_line_and_empty_data(void **state)
{
	expect_events("data: a\ndata:\ndata: b\n\n", "message|a\\n\\nb\n");
	/* A data line with nothing in it still makes an event. */
	expect_events("data\n\n", "message|\n");
	expect_events("data:\n\n", "message|\n");
	expect_events("data: \n\n", "message|\n");
	/* Only one space is removed. */
	expect_events("data:  x \n\n", "message| x \n");
}

static void
test_sse_event_without_data_is_not_dispatched(void **state)
{
	/* Its event type does not leak into the next event either. */
	expect_events("event: lonely\nid: 3\n\ndata: z\n\n", "message|z\n");
	expect_events("\n\n\n", "");
}

static void
test_sse_event_type_applies_to_one_event(void **state)
{
	expect_events("event: a\nevent: b\ndata: 1\n\ndata: 2\n\n",
	    "b|1\nmessage|2\n");
	/* "event" with no value means the default type. */
	expect_events("event\ndata: 1\n\n", "message|1\n");
}

static void
test_sse_unterminated_event_is_not_dispatched(void **state)
{
	struct log l = { 0 };
	struct sse *p = sse_new(0, log_cb, &l);
	char err[128];

	assert_int_equal(sse_pending(p), 0);
	assert_int_equal(sse_feed(p, "data: x\n", 8, err, sizeof err), 0);
	assert_int_equal(l.n, 0);
	assert_true(sse_pending(p) > 0);
	assert_int_equal(sse_feed(p, "\ndata: y", 8, err, sizeof err), 0);
	assert_int_equal(l.n, 1);
	assert_true(sse_pending(p) > 0);
	sse_free(p);
	free(l.p);
}

static void
test_sse_id_and_retry_fields(void **state)
{
	struct log l = { 0 };
	struct sse *p = sse_new(0, log_cb, &l);
	char err[128];
	const char *s1 = "id: 7\nretry: 2500\ndata: a\n\n";
	const char *s2 = "retry: 12x\nid\n\n";
	const char nul[] = "id: 9\0 0\n\n";

	assert_string_equal(sse_last_id(p), "");
	assert_int_equal(sse_retry_ms(p), -1);
	assert_int_equal(sse_feed(p, s1, strlen(s1), err, sizeof err), 0);
	assert_string_equal(sse_last_id(p), "7");
	assert_int_equal(sse_retry_ms(p), 2500);
	assert_int_equal(l.n, 1);
	/* A non-numeric retry is ignored; "id" alone clears the id. */
	assert_int_equal(sse_feed(p, s2, strlen(s2), err, sizeof err), 0);
	assert_int_equal(sse_retry_ms(p), 2500);
	assert_string_equal(sse_last_id(p), "");
	/* An id holding NUL is ignored. */
	assert_int_equal(sse_feed(p, "id: 8\n", 6, err, sizeof err), 0);
	assert_int_equal(sse_feed(p, nul, sizeof nul - 1, err, sizeof err),
	    0);
	assert_string_equal(sse_last_id(p), "8");
	sse_free(p);
	free(l.p);
}

static void
test_sse_data_may_hold_nul_bytes(void **state)
{
	const char s[] = "data: a\0b\n\n";
	char *got = parse_split(s, sizeof s - 1, NULL, 0);

	assert_string_equal(got, "message|a\\0b\n");
	free(got);
}

static void
test_sse_bom_only_skipped_at_start(void **state)
{
	size_t cut = 2;
	char *got;

	/* A BOM split across feeds is still skipped. */
	got = parse_split("\xef\xbb\xbf" "data: a\n\n", 12, &cut, 1);
	assert_string_equal(got, "message|a\n");
	free(got);
	/* Later on, it is part of the field name (unknown field). */
	expect_events("data: a\n\n\xef\xbb\xbf" "data: b\n\n", "message|a\n");
}

static void
test_sse_line_of_exactly_max_is_accepted(void **state)
{
	struct log l = { 0 };
	struct sse *p = sse_new(16, log_cb, &l);
	char err[128];

	/* 16 bytes: "data: 0123456789". */
	assert_int_equal(sse_feed(p, "data: 01234", 11, err, sizeof err), 0);
	assert_int_equal(sse_feed(p, "56789\n\n", 7, err, sizeof err), 0);
	assert_string_equal(l.p, "message|0123456789\n");
	sse_free(p);
	free(l.p);
}

static void
test_sse_overlong_line_is_an_error(void **state)
{
	struct log l = { 0 };
	struct sse *p = sse_new(16, log_cb, &l);
	char err[128] = "";

	/* 17 bytes, arriving in pieces with no line end yet. */
	assert_int_equal(sse_feed(p, "data: 01234", 11, err, sizeof err), 0);
	assert_int_equal(sse_feed(p, "567890", 6, err, sizeof err), -1);
	assert_non_null(strstr(err, "line over the size limit"));
	/* The parser stays failed. */
	assert_int_equal(sse_feed(p, "\n\n", 2, err, sizeof err), -1);
	assert_int_equal(l.n, 0);
	sse_free(p);

	/* The same line whole in one feed. */
	p = sse_new(16, log_cb, &l);
	assert_int_equal(sse_feed(p, "data: 01234567890\n", 18, err,
	    sizeof err), -1);
	sse_free(p);
	free(l.p);
}

static void
test_sse_overlong_event_is_an_error(void **state)
{
	struct log l = { 0 };
	struct sse *p = sse_new(16, log_cb, &l);
	char err[128] = "";

	/* Short lines, but the data adds up past 16 bytes. */
	assert_int_equal(sse_feed(p, "data: 0123\ndata: 4567\ndata: 89\n",
	    31, err, sizeof err), 0);
	assert_int_equal(sse_feed(p, "data: abcdef\n", 13, err, sizeof err),
	    -1);
	assert_non_null(strstr(err, "event data over the size limit"));
	assert_int_equal(l.n, 0);
	sse_free(p);
	free(l.p);
}

static void
test_sse_long_stream_of_small_events_stays_bounded(void **state)
{
	struct log l = { 0 };
	struct sse *p = sse_new(64, log_cb, &l);
	char err[128];
	int i;

	for (i = 0; i < 10000; i++)
		assert_int_equal(sse_feed(p, "data: 0123456789\n\n", 18, err,
		    sizeof err), 0);
	assert_int_equal(l.n, 10000);
	assert_int_equal(sse_pending(p), 0);
	sse_free(p);
	free(l.p);
}

static void
test_sse_callback_can_abort(void **state)
{
	struct log l = { 0 };
	struct sse *p = sse_new(0, log_cb, &l);
	char err[128] = "";

	l.abort_at = 2;
	assert_int_equal(sse_feed(p, "data: 1\n\ndata: 2\n\ndata: 3\n\n", 27,
	    err, sizeof err), -1);
	assert_int_equal(l.n, 2);
	assert_non_null(strstr(err, "event handler failed"));
	assert_int_equal(sse_feed(p, "data: 4\n\n", 9, err, sizeof err), -1);
	assert_int_equal(l.n, 2);
	sse_free(p);
	free(l.p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sse_rich_stream_gives_expected_events),
		cmocka_unit_test(
		    test_sse_every_two_part_split_gives_same_events),
		cmocka_unit_test(test_sse_one_byte_pieces_give_same_events),
		cmocka_unit_test(
		    test_sse_every_three_part_split_gives_same_events),
		cmocka_unit_test(test_sse_crlf_cr_and_lf_all_end_lines),
		cmocka_unit_test(
		    test_sse_cr_at_end_of_feed_then_lf_is_one_line_end),
		cmocka_unit_test(test_sse_comments_are_ignored),
		cmocka_unit_test(test_sse_multi_line_and_empty_data),
		cmocka_unit_test(
		    test_sse_event_without_data_is_not_dispatched),
		cmocka_unit_test(test_sse_event_type_applies_to_one_event),
		cmocka_unit_test(
		    test_sse_unterminated_event_is_not_dispatched),
		cmocka_unit_test(test_sse_id_and_retry_fields),
		cmocka_unit_test(test_sse_data_may_hold_nul_bytes),
		cmocka_unit_test(test_sse_bom_only_skipped_at_start),
		cmocka_unit_test(test_sse_line_of_exactly_max_is_accepted),
		cmocka_unit_test(test_sse_overlong_line_is_an_error),
		cmocka_unit_test(test_sse_overlong_event_is_an_error),
		cmocka_unit_test(
		    test_sse_long_stream_of_small_events_stays_bounded),
		cmocka_unit_test(test_sse_callback_can_abort),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
