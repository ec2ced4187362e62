/*
 * mcp_testserver.c: the in-tree MCP tool server for tests and benchmarks.
 *
 * Speaks MCP over stdio (one JSON-RPC message per line, specs/MCP.md) in a
 * single thread around poll(2).  Its tools exercise the client's paths:
 * answers, tool failures, JSON-RPC errors, overlapping slow calls, garbage
 * on the wire and a server that dies during or between calls.
 *
 * Answers are collected in one output buffer and written once per poll
 * iteration, so a client pipelining many calls gets them back in few
 * writes.  Sleeps are timers in a heap: the poll timeout is the nearest
 * deadline and any number of sleeps overlap.  It is lenient where a test
 * tool can be (requests before initialize, extra tool arguments) and strict
 * about the envelope.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "protocols/jsonrpc.h"
#include "runtime/util.h"

#define TS_NAME		"weft-testserver"
#define TS_VERSION	"1.0"
#define TS_LATEST	"2025-11-25"
#define TS_MAX_LINE	(4 * 1024 * 1024)
#define TS_READ_SIZE	(256 * 1024)
/* Stop reading requests while this much output is unwritten. */
#define TS_OUT_HIGH	(256 * 1024 * 1024)
#define TS_MAX_SLEEP_MS	86400000

static const char *ts_versions[] = {
	"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"
};

typedef void (*ts_tool_fn)(json_t *, json_t *);

static void	ts_echo_cb(json_t *, json_t *);
static void	ts_add_cb(json_t *, json_t *);
static void	ts_sleep_cb(json_t *, json_t *);
static void	ts_fail_cb(json_t *, json_t *);
static void	ts_rpcerror_cb(json_t *, json_t *);
static void	ts_crash_cb(json_t *, json_t *);
static void	ts_malformed_cb(json_t *, json_t *);
static void	ts_noop_cb(json_t *, json_t *);
static void	ts_grow_cb(json_t *, json_t *);
static void	ts_late_cb(json_t *, json_t *);

#define TS_NO_ARGS	"{\"type\":\"object\",\"additionalProperties\":false}"

static struct ts_tool {
	const char	*name;
	const char	*description;
	const char	*schema;
	ts_tool_fn	 fn;
	int		 enabled;
} ts_tools[] = {
	{ "echo", "Answer \"Echo: \" followed by the message.",
	  "{\"type\":\"object\",\"properties\":{\"message\":"
	  "{\"type\":\"string\"}},\"required\":[\"message\"]}",
	  ts_echo_cb, 1 },
	{ "add", "Add two numbers.",
	  "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"number\"},"
	  "\"b\":{\"type\":\"number\"}},\"required\":[\"a\",\"b\"]}",
	  ts_add_cb, 1 },
	{ "sleep", "Answer after ms milliseconds without blocking other "
	  "calls; marker names a file that gets the server's parent pid "
	  "when the call starts; once names a file: when it exists the "
	  "call answers at once, else it is created and the call sleeps; "
	  "until names a file: the call answers only once it exists; "
	  "progress: a progress notification with this message (1 of 2) "
	  "as the call starts, when the caller gave a progressToken.",
	  "{\"type\":\"object\",\"properties\":{\"ms\":{\"type\":\"integer\","
	  "\"minimum\":0,\"maximum\":86400000},\"marker\":{\"type\":"
	  "\"string\"},\"text\":{\"type\":\"string\"},\"once\":{\"type\":"
	  "\"string\"},\"until\":{\"type\":\"string\"},\"progress\":"
	  "{\"type\":\"string\"}},\"required\":[\"ms\"]}",
	  ts_sleep_cb, 1 },
	{ "fail", "Fail with a tool error (isError) carrying the message.",
	  "{\"type\":\"object\",\"properties\":{\"message\":"
	  "{\"type\":\"string\"}}}",
	  ts_fail_cb, 1 },
	{ "rpcerror", "Answer with a JSON-RPC internal error.", TS_NO_ARGS,
	  ts_rpcerror_cb, 1 },
	{ "crash", "Exit with status 3 without answering.", TS_NO_ARGS,
	  ts_crash_cb, 1 },
	{ "malformed", "Answer a line that is not JSON.", TS_NO_ARGS,
	  ts_malformed_cb, 1 },
	{ "noop", "Answer \"ok\" at once.", TS_NO_ARGS, ts_noop_cb, 1 },
	{ "grow", "Offer the tool 'late' from now on, and say so "
	  "(notifications/tools/list_changed).", TS_NO_ARGS, ts_grow_cb, 1 },
	/* Listed only after a call to grow. */
	{ "late", "A tool that appears after grow.", TS_NO_ARGS, ts_late_cb,
	  0 },
};

/* A sleep call waiting for its deadline. */
struct ts_sleep {
	int64_t	 deadline;	/* CLOCK_MONOTONIC, ns */
	uint64_t seq;		/* equal deadlines answer in call order */
	json_t	*id;
	json_t	*result;
	char	*until;		/* answer once this file exists */
};

static struct {
	struct linebuf	 *lb;
	int		  eof;

	char		 *out;
	size_t		  out_off;
	size_t		  out_len;
	size_t		  out_cap;
	int		  out_flags;	/* stdout's flags before O_NONBLOCK */

	struct ts_sleep	**heap;
	size_t		  nheap;
	size_t		  heap_cap;
	uint64_t	  seq;

	int		  log_fd;
	int		  log_meta;	/* log _meta idempotency keys */
	long long	  exit_after;	/* 0: never */
	long long	  ncalls;
	int		  initialized;

	json_t		 *list_result;
	json_t		 *noop_result;
	size_t		  page_size;	/* tools/list page, 0: all */
	json_t		 *progress_token; /* of the call being started */
} ts = { .log_fd = -1, .out_flags = -1 };

/* Monotonic time in nanoseconds. */
static int64_t
ts_now(void)
{
	struct timespec tv;

	clock_gettime(CLOCK_MONOTONIC, &tv);
	return (int64_t)tv.tv_sec * 1000000000 + tv.tv_nsec;
}

/* Put stdout back as we found it. */
static void
ts_restore_stdout(void)
{
	if (ts.out_flags != -1)
		fcntl(STDOUT_FILENO, F_SETFL, ts.out_flags);
}

/* Append bytes to the output buffer. */
static void
ts_out_raw(const char *p, size_t n)
{
	if (ts.out_off > 0 && ts.out_off == ts.out_len)
		ts.out_off = ts.out_len = 0;
	if (ts.out_len + n > ts.out_cap) {
		if (ts.out_cap == 0)
			ts.out_cap = 1024 * 1024;
		while (ts.out_len + n > ts.out_cap)
			ts.out_cap *= 2;
		ts.out = xrealloc(ts.out, ts.out_cap);
	}
	memcpy(ts.out + ts.out_len, p, n);
	ts.out_len += n;
}

/* json_dump_callback sink writing into the output buffer. */
static int
ts_out_cb(const char *p, size_t n, void *arg)
{
	ts_out_raw(p, n);
	return 0;
}

/* Queue one message (a reference is stolen) as a line. */
static void
ts_send(json_t *msg)
{
	size_t mark = ts.out_len;

	if (json_dump_callback(msg, ts_out_cb, NULL, JSON_COMPACT) != 0) {
		ts.out_len = mark;
		fprintf(stderr, TS_NAME ": cannot encode an answer\n");
	} else
		ts_out_raw("\n", 1);
	json_decref(msg);
}

/*
 * Write buffered output.  Without block, stop when the pipe is full; with
 * block, wait until all is written.  A reader that went away ends us.
 */
static void
ts_flush(int block)
{
	struct pollfd pfd;
	ssize_t n;

	while (ts.out_off < ts.out_len) {
		n = write(STDOUT_FILENO, ts.out + ts.out_off,
		    ts.out_len - ts.out_off);
		if (n > 0) {
			ts.out_off += n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (!block)
				return;
			pfd.fd = STDOUT_FILENO;
			pfd.events = POLLOUT;
			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				fatal("poll");
			continue;
		}
		if (n < 0 && errno == EPIPE)
			exit(0);
		fatal("write to stdout");
	}
	ts.out_off = ts.out_len = 0;
}

/* Write everything queued, then exit with code. */
static void __attribute__((noreturn))
ts_exit(int code)
{
	ts_flush(1);
	exit(code);
}

/* Queue a result for request id. */
static void
ts_result(json_t *id, json_t *result)
{
	ts_send(jrpc_result(json_incref(id), result));
}

/* Queue an error for request id (NULL: null). */
static void
ts_error(json_t *id, int code, const char *message)
{
	ts_send(jrpc_error(json_incref(id), code, message, NULL));
}

/* Count an answered tools/call; the Nth with --exit-after ends us. */
static void
ts_call_done(void)
{
	if (ts.exit_after > 0 && ++ts.ncalls >= ts.exit_after)
		ts_exit(0);
}

/* A tools/call result with one text block. */
static json_t *
ts_text(const char *text, int is_error)
{
	json_t *r, *t;

	if ((t = json_string(text)) == NULL)
		t = json_string("(text is not valid UTF-8)");
	r = json_pack("{s:[{s:s, s:o}]}", "content", "type", "text",
	    "text", t);
	if (is_error)
		json_object_set_new(r, "isError", json_true());
	return r;
}

/* Answer a tools/call with a result (stolen). */
static void
ts_tool_result(json_t *id, json_t *result)
{
	ts_result(id, result);
	ts_call_done();
}

/* Answer a tools/call with a JSON-RPC error. */
static void
ts_tool_error(json_t *id, int code, const char *message)
{
	ts_error(id, code, message);
	ts_call_done();
}

/* Answer a tools/call whose arguments are wrong: a tool error. */
static void
ts_bad_args(json_t *id, const char *why)
{
	char buf[256];

	snprintf(buf, sizeof buf, "invalid arguments: %s", why);
	ts_tool_result(id, ts_text(buf, 1));
}

/* echo {message} */
static void
ts_echo_cb(json_t *id, json_t *args)
{
	const char *m = json_string_value(json_object_get(args, "message"));
	char *s;

	if (m == NULL) {
		ts_bad_args(id, "'message' must be a string");
		return;
	}
	s = xasprintf("Echo: %s", m);
	ts_tool_result(id, ts_text(s, 0));
	free(s);
}

/* Format a double in the shortest form that reads back the same. */
static void
ts_fmt_real(char *buf, size_t len, double d)
{
	int prec;

	for (prec = 15; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			return;
	}
}

/* add {a, b} */
static void
ts_add_cb(json_t *id, json_t *args)
{
	json_t *a = json_object_get(args, "a"), *b = json_object_get(args, "b");
	json_int_t sum;
	char buf[64];

	if (!json_is_number(a) || !json_is_number(b)) {
		ts_bad_args(id, "'a' and 'b' must be numbers");
		return;
	}
	if (json_is_integer(a) && json_is_integer(b) &&
	    !__builtin_add_overflow(json_integer_value(a),
	    json_integer_value(b), &sum))
		snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, sum);
	else
		ts_fmt_real(buf, sizeof buf, json_number_value(a) +
		    json_number_value(b));
	ts_tool_result(id, ts_text(buf, 0));
}

/* Order of the sleep heap: deadline, then call order. */
static int
ts_heap_less(size_t i, size_t j)
{
	struct ts_sleep *a = ts.heap[i], *b = ts.heap[j];

	return a->deadline < b->deadline ||
	    (a->deadline == b->deadline && a->seq < b->seq);
}

/* Swap two heap slots. */
static void
ts_heap_swap(size_t i, size_t j)
{
	struct ts_sleep *t = ts.heap[i];

	ts.heap[i] = ts.heap[j];
	ts.heap[j] = t;
}

/* Move slot i towards the root while it is earlier than its parent. */
static void
ts_heap_up(size_t i)
{
	while (i > 0 && ts_heap_less(i, (i - 1) / 2)) {
		ts_heap_swap(i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

/* Move slot i towards the leaves while a child is earlier. */
static void
ts_heap_down(size_t i)
{
	size_t l, m;

	for (;;) {
		l = 2 * i + 1;
		m = i;
		if (l < ts.nheap && ts_heap_less(l, m))
			m = l;
		if (l + 1 < ts.nheap && ts_heap_less(l + 1, m))
			m = l + 1;
		if (m == i)
			return;
		ts_heap_swap(i, m);
		i = m;
	}
}

/* Add a sleep to the heap. */
static void
ts_heap_push(struct ts_sleep *s)
{
	if (ts.nheap == ts.heap_cap) {
		ts.heap_cap = ts.heap_cap ? 2 * ts.heap_cap : 64;
		ts.heap = xrealloc(ts.heap, ts.heap_cap * sizeof *ts.heap);
	}
	ts.heap[ts.nheap++] = s;
	ts_heap_up(ts.nheap - 1);
}

/* Take slot i out of the heap and return it. */
static struct ts_sleep *
ts_heap_remove(size_t i)
{
	struct ts_sleep *s = ts.heap[i];

	if (i != --ts.nheap) {
		ts.heap[i] = ts.heap[ts.nheap];
		ts_heap_up(i);
		ts_heap_down(i);
	}
	return s;
}

/* Free a sleep that will not be answered. */
static void
ts_sleep_free(struct ts_sleep *s)
{
	json_decref(s->id);
	json_decref(s->result);
	free(s->until);
	free(s);
}

/* Answer every sleep whose deadline has passed. */
static void
ts_fire_timers(void)
{
	struct ts_sleep *s;
	int64_t now;

	if (ts.nheap == 0)
		return;
	now = ts_now();
	while (ts.nheap > 0 && ts.heap[0]->deadline <= now) {
		s = ts_heap_remove(0);
		if (s->until != NULL && access(s->until, F_OK) != 0) {
			/* Not released yet: look again in 10 ms. */
			s->deadline = now + 10000000;
			ts_heap_push(s);
			continue;
		}
		ts_result(s->id, s->result);
		s->result = NULL;
		ts_sleep_free(s);
		ts_call_done();
	}
}

/* Write our parent's pid into path; 0 or -1 with errno set. */
static int
ts_write_marker(const char *path)
{
	char buf[32];
	int fd, n, e;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1)
		return -1;
	n = snprintf(buf, sizeof buf, "%ld\n", (long)getppid());
	if (write(fd, buf, n) != n) {
		e = errno;
		close(fd);
		errno = e ? e : EIO;
		return -1;
	}
	return close(fd);
}

/* sleep {ms, marker?, text?} */
static void
ts_sleep_cb(json_t *id, json_t *args)
{
	json_t *ms = json_object_get(args, "ms");
	json_t *marker = json_object_get(args, "marker");
	json_t *text = json_object_get(args, "text");
	json_t *once = json_object_get(args, "once");
	json_t *until = json_object_get(args, "until");
	json_t *progress = json_object_get(args, "progress");
	struct ts_sleep *s;
	char buf[PATH_MAX + 128];
	json_int_t v;

	if (!json_is_integer(ms) || (v = json_integer_value(ms)) < 0 ||
	    v > TS_MAX_SLEEP_MS) {
		ts_bad_args(id, "'ms' must be an integer from 0 to 86400000");
		return;
	}
	if ((marker != NULL && !json_is_string(marker)) ||
	    (text != NULL && !json_is_string(text)) ||
	    (once != NULL && !json_is_string(once)) ||
	    (until != NULL && !json_is_string(until)) ||
	    (progress != NULL && !json_is_string(progress))) {
		ts_bad_args(id, "'marker', 'text', 'once', 'until' and "
		    "'progress' must be strings");
		return;
	}
	if (progress != NULL && ts.progress_token != NULL)
		ts_send(json_pack("{s:s, s:s, s:{s:O, s:i, s:i, s:O}}",
		    "jsonrpc", "2.0", "method", "notifications/progress",
		    "params", "progressToken", ts.progress_token, "progress", 1,
		    "total", 2, "message", progress));
	/* once: only the first call (of any server process) sleeps. */
	if (once != NULL && access(json_string_value(once), F_OK) == 0)
		v = 0;
	else if (once != NULL && ts_write_marker(json_string_value(once)))
		v = 0;
	if (marker != NULL && ts_write_marker(json_string_value(marker))) {
		snprintf(buf, sizeof buf, "cannot write marker %s: %s",
		    json_string_value(marker), strerror(errno));
		ts_tool_result(id, ts_text(buf, 1));
		return;
	}
	s = xcalloc(1, sizeof *s);
	s->deadline = ts_now() + (int64_t)v * 1000000;
	s->seq = ts.seq++;
	s->id = json_incref(id);
	if (until != NULL)
		s->until = xstrdup(json_string_value(until));
	if (text != NULL)
		s->result = ts_text(json_string_value(text), 0);
	else {
		snprintf(buf, sizeof buf, "slept %" JSON_INTEGER_FORMAT, v);
		s->result = ts_text(buf, 0);
	}
	ts_heap_push(s);
}

/* fail {message?} */
static void
ts_fail_cb(json_t *id, json_t *args)
{
	const char *m = json_string_value(json_object_get(args, "message"));

	ts_tool_result(id, ts_text(m != NULL ? m : "tool failed", 1));
}

/* rpcerror: a JSON-RPC error instead of a result. */
static void
ts_rpcerror_cb(json_t *id, json_t *args)
{
	ts_tool_error(id, JRPC_INTERNAL_ERROR, "tool exploded");
}

/* crash: die during the call; earlier answers still go out. */
static void
ts_crash_cb(json_t *id, json_t *args)
{
	ts_exit(3);
}

/* malformed: a line that is not JSON instead of an answer. */
static void
ts_malformed_cb(json_t *id, json_t *args)
{
	static const char junk[] = "{this is not json\n";

	ts_out_raw(junk, sizeof junk - 1);
	ts_call_done();
}

static void	ts_build_results(void);

/* grow: enable 'late' and tell the client its tool list changed. */
static void
ts_grow_cb(json_t *id, json_t *args)
{
	size_t i;

	for (i = 0; i < nitems(ts_tools); i++)
		if (strcmp(ts_tools[i].name, "late") == 0)
			ts_tools[i].enabled = 1;
	json_decref(ts.list_result);
	json_decref(ts.noop_result);
	ts_build_results();
	ts_send(jrpc_notification("notifications/tools/list_changed", NULL));
	ts_tool_result(id, ts_text("grown: 'late' is offered now", 0));
}

/* late: only there after grow. */
static void
ts_late_cb(json_t *id, json_t *args)
{
	ts_tool_result(id, ts_text("late tool here", 0));
}

/* noop: the cheapest call, for benchmarks. */
static void
ts_noop_cb(json_t *id, json_t *args)
{
	ts_tool_result(id, json_incref(ts.noop_result));
}

/* Append "NAME ARGS\n" to the call log in one write. */
static void
ts_log_call(const char *name, json_t *args)
{
	char *a, *line;
	size_t len;
	ssize_t n;

	if (ts.log_fd == -1)
		return;
	a = json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY);
	line = xasprintf("%s %s\n", name, a != NULL ? a : "{}");
	free(a);
	len = strlen(line);
	do
		n = write(ts.log_fd, line, len);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)len)
		fprintf(stderr, TS_NAME ": cannot write the call log: %s\n",
		    n < 0 ? strerror(errno) : "short write");
	free(line);
}

/* Find an enabled tool. */
static struct ts_tool *
ts_find_tool(const char *name)
{
	size_t i;

	for (i = 0; i < nitems(ts_tools); i++)
		if (ts_tools[i].enabled && strcmp(ts_tools[i].name, name) == 0)
			return &ts_tools[i];
	return NULL;
}

/* tools/call {name, arguments} */
static void
ts_call(json_t *id, json_t *params)
{
	json_t *name = json_object_get(params, "name");
	json_t *args = json_object_get(params, "arguments");
	struct ts_tool *t;
	json_t *empty = NULL;
	char *msg;

	if (!json_is_string(name)) {
		ts_tool_error(id, JRPC_INVALID_PARAMS,
		    "/params/name: must be a string");
		return;
	}
	if (args == NULL || json_is_null(args))
		args = empty = json_object();
	ts_log_call(json_string_value(name), args);
	if (ts.log_meta)
		ts_log_call("meta", json_object_get(json_object_get(params,
		    "_meta"), "weft/idempotency_key"));
	if (!json_is_object(args)) {
		ts_tool_error(id, JRPC_INVALID_PARAMS,
		    "/params/arguments: must be an object");
		return;
	}
	if ((t = ts_find_tool(json_string_value(name))) == NULL) {
		msg = xasprintf("Unknown tool: %s", json_string_value(name));
		ts_tool_error(id, JRPC_INVALID_PARAMS, msg);
		free(msg);
	} else {
		ts.progress_token = json_object_get(json_object_get(params,
		    "_meta"), "progressToken");
		t->fn(id, args);
		ts.progress_token = NULL;
	}
	json_decref(empty);
}

/*
 * tools/list {cursor?}: everything, or pages of --page-size tools whose
 * cursor is "p" and the offset of the next page.
 */
static void
ts_list(json_t *id, json_t *cursor)
{
	json_t *tools = json_object_get(ts.list_result, "tools"), *page, *r;
	const char *c = json_string_value(cursor);
	char *end, next[32];
	size_t off = 0, i;

	if (cursor != NULL) {
		if (ts.page_size == 0 || c == NULL || c[0] != 'p' ||
		    (off = strtoul(c + 1, &end, 10), *end != '\0') ||
		    off == 0 || off >= json_array_size(tools)) {
			ts_error(id, JRPC_INVALID_PARAMS, "Invalid cursor");
			return;
		}
	}
	if (ts.page_size == 0) {
		ts_result(id, json_incref(ts.list_result));
		return;
	}
	page = json_array();
	for (i = off; i < off + ts.page_size && i < json_array_size(tools);
	    i++)
		json_array_append(page, json_array_get(tools, i));
	r = json_pack("{s:o}", "tools", page);
	if (i < json_array_size(tools)) {
		snprintf(next, sizeof next, "p%zu", i);
		json_object_set_new(r, "nextCursor", json_string(next));
	}
	ts_result(id, r);
}

/* initialize {protocolVersion, capabilities, clientInfo} */
static void
ts_initialize(json_t *id, json_t *params)
{
	const char *want, *version = TS_LATEST;
	size_t i;

	want = json_string_value(json_object_get(params, "protocolVersion"));
	for (i = 0; want != NULL && i < nitems(ts_versions); i++)
		if (strcmp(want, ts_versions[i]) == 0)
			version = ts_versions[i];
	ts_result(id, json_pack("{s:s, s:{s:{s:b}}, s:{s:s, s:s}}",
	    "protocolVersion", version, "capabilities", "tools", "listChanged", 1,
	    "serverInfo", "name", TS_NAME, "version", TS_VERSION));
}

/* One request from the client. */
static void
ts_request(struct jrpc_msg *m)
{
	json_t *params = m->params;
	char *msg;

	if (params != NULL && !json_is_object(params)) {
		ts_error(m->id, JRPC_INVALID_PARAMS,
		    "/params: must be an object");
		return;
	}
	if (strcmp(m->method, "tools/call") == 0)
		ts_call(m->id, params);
	else if (strcmp(m->method, "tools/list") == 0)
		ts_list(m->id, json_object_get(params, "cursor"));
	else if (strcmp(m->method, "ping") == 0)
		ts_result(m->id, json_object());
	else if (strcmp(m->method, "initialize") == 0)
		ts_initialize(m->id, params);
	else {
		msg = xasprintf("Method not found: %s", m->method);
		ts_error(m->id, JRPC_METHOD_NOT_FOUND, msg);
		free(msg);
	}
}

/* notifications/cancelled {requestId}: drop a pending sleep. */
static void
ts_cancel(json_t *params)
{
	json_t *rid = json_object_get(params, "requestId");
	size_t i;

	if (rid == NULL)
		return;
	ts_log_call("notifications/cancelled", params);
	for (i = 0; i < ts.nheap; i++) {
		if (json_equal(ts.heap[i]->id, rid)) {
			ts_sleep_free(ts_heap_remove(i));
			return;
		}
	}
}

/* One notification from the client. */
static void
ts_notification(struct jrpc_msg *m)
{
	if (strcmp(m->method, "notifications/initialized") == 0)
		ts.initialized = 1;
	else if (strcmp(m->method, "notifications/cancelled") == 0)
		ts_cancel(m->params);
}

/* The id of a message refused as invalid, if it has a usable one. */
static json_t *
ts_guess_id(const char *line, size_t len)
{
	json_t *root, *id = NULL;

	root = json_loadb(line, len, 0, NULL);
	if (json_is_object(root)) {
		id = json_object_get(root, "id");
		if (json_is_string(id) || json_is_integer(id))
			json_incref(id);
		else
			id = NULL;
	}
	json_decref(root);
	return id;
}

/* One line from stdin. */
static void
ts_line(const char *line, size_t len)
{
	struct jrpc_msg m;
	char err[256];
	json_t *id;
	int code;

	if (jrpc_parse(line, len, &m, &code, err, sizeof err) != 0) {
		id = code == JRPC_PARSE_ERROR ? NULL : ts_guess_id(line, len);
		ts_error(id, code, err);
		json_decref(id);
		return;
	}
	switch (m.kind) {
	case JRPC_REQUEST:
		ts_request(&m);
		break;
	case JRPC_NOTIFICATION:
		ts_notification(&m);
		break;
	case JRPC_RESPONSE:
	case JRPC_ERROR_RESPONSE:
		/* We send no requests: nothing to match. */
		break;
	}
	jrpc_msg_clear(&m);
}

/* Read what stdin has and handle every complete line. */
static void
ts_read(void)
{
	static char buf[TS_READ_SIZE];
	const char *line;
	size_t len;
	ssize_t n;
	int rv;

	n = read(STDIN_FILENO, buf, sizeof buf);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return;
		fatal("read from stdin");
	}
	if (n == 0) {
		ts.eof = 1;
		return;
	}
	linebuf_feed(ts.lb, buf, n);
	while ((rv = linebuf_next(ts.lb, &line, &len)) != 0) {
		if (rv < 0)
			ts_error(NULL, JRPC_PARSE_ERROR,
			    "line longer than 4194304 bytes");
		else
			ts_line(line, len);
	}
}

/* Build the tools/list answer and the shared noop result. */
static void
ts_build_results(void)
{
	json_t *tools = json_array(), *schema, *t;
	json_error_t je;
	size_t i;

	for (i = 0; i < nitems(ts_tools); i++) {
		if (!ts_tools[i].enabled)
			continue;
		schema = json_loads(ts_tools[i].schema, 0, &je);
		if (schema == NULL)
			fatalx(1, "schema of %s: %s", ts_tools[i].name,
			    je.text);
		t = json_pack("{s:s, s:s, s:o}", "name", ts_tools[i].name,
		    "description", ts_tools[i].description,
		    "inputSchema", schema);
		json_array_append_new(tools, t);
	}
	ts.list_result = json_pack("{s:o}", "tools", tools);
	ts.noop_result = ts_text("ok", 0);
}

/* Restrict the tool set to a comma-separated list of names. */
static void
ts_restrict_tools(const char *list)
{
	char *copy = xstrdup(list), *p = copy, *name;
	size_t i;

	for (i = 0; i < nitems(ts_tools); i++)
		ts_tools[i].enabled = 0;
	while ((name = strsep(&p, ",")) != NULL) {
		if (*name == '\0')
			continue;
		for (i = 0; i < nitems(ts_tools); i++)
			if (strcmp(ts_tools[i].name, name) == 0)
				break;
		if (i == nitems(ts_tools))
			fatalx(2, "--tools: unknown tool '%s'", name);
		ts_tools[i].enabled = 1;
	}
	free(copy);
}

/* Print usage and exit. */
static void __attribute__((noreturn))
ts_usage(int code)
{
	fprintf(code ? stderr : stdout, "usage: mcp-testserver [--log FILE] "
	    "[--log-meta] [--tools a,b,c] [--exit-after N] [--page-size N] "
	    "[--version]\n");
	exit(code);
}

/* Poll timeout in ms until the nearest sleep deadline, or -1. */
static int
ts_timeout(void)
{
	int64_t left;

	if (ts.nheap == 0)
		return -1;
	left = ts.heap[0]->deadline - ts_now();
	if (left <= 0)
		return 0;
	left = (left + 999999) / 1000000;
	return left > INT_MAX ? INT_MAX : (int)left;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "log", required_argument, NULL, 'l' },
		{ "log-meta", no_argument, NULL, 'm' },
		{ "tools", required_argument, NULL, 't' },
		{ "exit-after", required_argument, NULL, 'x' },
		{ "page-size", required_argument, NULL, 'p' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct pollfd pfd[2];
	nfds_t nfd;
	char *end;
	int ch, in, out;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			ts.log_fd = open(optarg, O_WRONLY | O_APPEND |
			    O_CREAT | O_CLOEXEC, 0644);
			if (ts.log_fd == -1)
				fatal("%s", optarg);
			break;
		case 'm':
			ts.log_meta = 1;
			break;
		case 't':
			ts_restrict_tools(optarg);
			break;
		case 'x':
			errno = 0;
			ts.exit_after = strtoll(optarg, &end, 10);
			if (errno || *optarg == '\0' || *end != '\0' ||
			    ts.exit_after < 1)
				fatalx(2, "--exit-after: not a positive "
				    "integer: %s", optarg);
			break;
		case 'p':
			errno = 0;
			ts.page_size = strtoul(optarg, &end, 10);
			if (errno || *optarg == '\0' || *end != '\0' ||
			    ts.page_size < 1 || ts.page_size > 1000)
				fatalx(2, "--page-size: not an integer from 1 "
				    "to 1000: %s", optarg);
			break;
		case 'V':
			printf(TS_NAME " " TS_VERSION "\n");
			return 0;
		case 'h':
			ts_usage(0);
		default:
			ts_usage(2);
		}
	}
	if (optind != argc)
		ts_usage(2);

	signal(SIGPIPE, SIG_IGN);
	/* A full pipe must not stop us from reading or timing sleeps. */
	if (!isatty(STDOUT_FILENO) &&
	    (ts.out_flags = fcntl(STDOUT_FILENO, F_GETFL)) != -1) {
		atexit(ts_restore_stdout);
		fcntl(STDOUT_FILENO, F_SETFL, ts.out_flags | O_NONBLOCK);
	}
	ts_build_results();
	ts.lb = linebuf_new(TS_MAX_LINE);

	for (;;) {
		ts_fire_timers();
		if (ts.eof && ts.nheap == 0)
			ts_exit(0);
		ts_flush(0);

		nfd = 0;
		in = out = -1;
		if (!ts.eof && ts.out_len - ts.out_off < TS_OUT_HIGH) {
			pfd[nfd].fd = STDIN_FILENO;
			pfd[nfd].events = POLLIN;
			in = nfd++;
		}
		if (ts.out_off < ts.out_len) {
			pfd[nfd].fd = STDOUT_FILENO;
			pfd[nfd].events = POLLOUT;
			out = nfd++;
		}
		if (poll(pfd, nfd, ts_timeout()) < 0) {
			if (errno == EINTR)
				continue;
			fatal("poll");
		}
		if (out != -1 && (pfd[out].revents & (POLLERR | POLLHUP)))
			exit(0);
		if (in != -1 && pfd[in].revents != 0)
			ts_read();
	}
}
