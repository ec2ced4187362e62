/* jsonrpc.c: JSON-RPC 2.0 envelopes and newline-delimited framing. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "protocols/jsonrpc.h"
#include "runtime/util.h"

/*
 * The buffer holds bytes [start, end) not yet returned.  scan is where the
 * search for the next '\n' resumes, so a long line arriving in many small
 * reads is scanned once; tail is the start of the incomplete last line.
 *
 * A line is known to be too long as soon as its incomplete tail passes
 * max_line + 1 bytes (one more for a '\r' that may precede the '\n').  The
 * tail is then cut to max_line + 2 bytes, which keeps its place in the
 * order of lines, and the rest of it is discarded as it arrives (discard)
 * instead of being buffered.  linebuf_next reports the cut tail as -1 once,
 * either when the line ends or when nothing complete precedes it.
 */
struct linebuf {
	char	*buf;
	size_t	 cap;
	size_t	 start;
	size_t	 end;
	size_t	 scan;
	size_t	 tail;
	size_t	 max;
	int	 discard;
};

/* Room for the '\n' and the NUL that linebuf_next writes. */
#define LINEBUF_SLACK	2

/* A framer refusing lines longer than max_line bytes. */
struct linebuf *
linebuf_new(size_t max_line)
{
	struct linebuf *lb = xcalloc(1, sizeof *lb);

	if (max_line > SIZE_MAX / 4)
		max_line = SIZE_MAX / 4;
	lb->max = max_line;
	lb->cap = 4096;
	lb->buf = xmalloc(lb->cap);
	return lb;
}

/* Free a framer and its buffered bytes. */
void
linebuf_free(struct linebuf *lb)
{
	if (lb == NULL)
		return;
	free(lb->buf);
	free(lb);
}

/* Make room for n more bytes, compacting before growing. */
static void
linebuf_reserve(struct linebuf *lb, size_t n)
{
	size_t used = lb->end - lb->start;

	if (lb->start > 0 && (used == 0 || lb->start >= lb->cap / 2 ||
	    lb->end + n + LINEBUF_SLACK > lb->cap)) {
		if (used > 0)
			memmove(lb->buf, lb->buf + lb->start, used);
		lb->scan -= lb->start;
		lb->tail -= lb->start;
		lb->start = 0;
		lb->end = used;
	}
	if (lb->end + n + LINEBUF_SLACK > lb->cap) {
		while (lb->end + n + LINEBUF_SLACK > lb->cap)
			lb->cap *= 2;
		lb->buf = xrealloc(lb->buf, lb->cap);
	}
}

/* Append bytes read from the stream, dropping those of an overlong line. */
void
linebuf_feed(struct linebuf *lb, const char *p, size_t n)
{
	const char *nl;
	size_t head, taillen, keep, at;

	if (lb->discard) {
		if ((nl = memchr(p, '\n', n)) == NULL)
			return;
		if (lb->end > lb->tail) {
			/* The placeholder is still buffered: terminate it. */
			linebuf_reserve(lb, 1);
			lb->buf[lb->end++] = '\n';
			lb->tail = lb->end;
		}
		lb->discard = 0;
		n -= nl - p + 1;
		p = nl + 1;
	}
	if (n == 0)
		return;

	/* head: bytes of p ending complete lines; the rest extends the tail. */
	nl = memrchr(p, '\n', n);
	head = nl != NULL ? (size_t)(nl - p) + 1 : 0;
	taillen = n - head + (head == 0 ? lb->end - lb->tail : 0);
	keep = n;
	if (taillen > lb->max + 1) {
		keep = n - (taillen - (lb->max + 2));
		lb->discard = 1;
	}
	linebuf_reserve(lb, keep);
	at = lb->end;
	memcpy(lb->buf + at, p, keep);
	lb->end += keep;
	if (head > 0)
		lb->tail = at + head;
}

/* Take the next complete line, or report an overlong one. */
int
linebuf_next(struct linebuf *lb, const char **line, size_t *len)
{
	char *nl;
	size_t from, n;

	for (;;) {
		from = lb->scan > lb->start ? lb->scan : lb->start;
		nl = NULL;
		if (from < lb->end)
			nl = memchr(lb->buf + from, '\n', lb->end - from);
		if (nl == NULL) {
			lb->scan = lb->end;
			if (lb->discard && lb->end > lb->start) {
				/* Only the cut tail is left: report it now. */
				lb->start = lb->end = lb->scan = lb->tail = 0;
				return -1;
			}
			if (lb->start == lb->end)
				lb->start = lb->end = lb->scan = lb->tail = 0;
			return 0;
		}
		n = nl - (lb->buf + lb->start);
		*nl = '\0';
		if (n > 0 && lb->buf[lb->start + n - 1] == '\r')
			lb->buf[lb->start + --n] = '\0';
		*line = lb->buf + lb->start;
		lb->start = nl - lb->buf + 1;
		lb->scan = lb->start;
		if (n > lb->max)
			return -1;
		if (n == 0)
			continue;
		*len = n;
		return 1;
	}
}

/* Bytes buffered but not yet returned as a line. */
size_t
linebuf_pending(const struct linebuf *lb)
{
	return lb->end - lb->start;
}

/* True for an id a request may carry: a string or an integer. */
static int
jrpc_id_ok(const json_t *id)
{
	return json_is_string(id) || json_is_integer(id);
}

/* Check the error member of an error response. */
static int
jrpc_parse_error_member(struct jrpc_msg *m, char *err, size_t errlen)
{
	json_t *code, *message;

	if (!json_is_object(m->error)) {
		errf(err, errlen, "/error: must be an object");
		return -1;
	}
	code = json_object_get(m->error, "code");
	if (!json_is_integer(code)) {
		errf(err, errlen, "/error/code: must be an integer");
		return -1;
	}
	if (json_integer_value(code) < INT32_MIN ||
	    json_integer_value(code) > INT32_MAX) {
		errf(err, errlen, "/error/code: out of range");
		return -1;
	}
	message = json_object_get(m->error, "message");
	if (!json_is_string(message)) {
		errf(err, errlen, "/error/message: must be a string");
		return -1;
	}
	m->error_code = (int)json_integer_value(code);
	m->error_message = json_string_value(message);
	return 0;
}

/* Classify a parsed object; 0 or -1 with err set (invalid request). */
static int
jrpc_classify(struct jrpc_msg *m, char *err, size_t errlen)
{
	json_t *root = m->root, *v, *method;
	int has_id;

	v = json_object_get(root, "jsonrpc");
	if (!json_is_string(v) || strcmp(json_string_value(v), "2.0") != 0) {
		errf(err, errlen, "/jsonrpc: must be \"2.0\"");
		return -1;
	}
	m->id = json_object_get(root, "id");
	has_id = m->id != NULL;
	method = json_object_get(root, "method");
	m->result = json_object_get(root, "result");
	m->error = json_object_get(root, "error");

	if (method != NULL) {
		if (!json_is_string(method)) {
			errf(err, errlen, "/method: must be a string");
			return -1;
		}
		if (m->result != NULL || m->error != NULL) {
			errf(err, errlen, "/%s: not allowed in a request",
			    m->result != NULL ? "result" : "error");
			return -1;
		}
		if (has_id && !jrpc_id_ok(m->id)) {
			errf(err, errlen, "/id: must be a string or an integer");
			return -1;
		}
		m->params = json_object_get(root, "params");
		if (json_is_null(m->params))
			m->params = NULL;
		if (m->params != NULL && !json_is_object(m->params) &&
		    !json_is_array(m->params)) {
			errf(err, errlen,
			    "/params: must be an object or an array");
			return -1;
		}
		m->method = json_string_value(method);
		m->kind = has_id ? JRPC_REQUEST : JRPC_NOTIFICATION;
		return 0;
	}
	if (m->result != NULL && m->error != NULL) {
		errf(err, errlen, "/error: not allowed together with result");
		return -1;
	}
	if (m->result != NULL) {
		if (!has_id) {
			errf(err, errlen, "/id: required in a response");
			return -1;
		}
		if (!jrpc_id_ok(m->id)) {
			errf(err, errlen, "/id: must be a string or an integer");
			return -1;
		}
		m->kind = JRPC_RESPONSE;
		return 0;
	}
	if (m->error != NULL) {
		/* An error about an unreadable request may carry id null. */
		if (has_id && !json_is_null(m->id) && !jrpc_id_ok(m->id)) {
			errf(err, errlen,
			    "/id: must be a string, an integer or null");
			return -1;
		}
		if (jrpc_parse_error_member(m, err, errlen) != 0)
			return -1;
		m->kind = JRPC_ERROR_RESPONSE;
		return 0;
	}
	errf(err, errlen, "/method: missing (and no result or error)");
	return -1;
}

/* Parse and validate one JSON-RPC message. */
int
jrpc_parse(const char *buf, size_t len, struct jrpc_msg *out, int *code,
    char *err, size_t errlen)
{
	struct jrpc_msg m;
	json_error_t je;

	memset(&m, 0, sizeof m);
	m.error_message = "";
	m.root = json_loadb(buf, len, JSON_DECODE_ANY, &je);
	if (m.root == NULL) {
		*code = JRPC_PARSE_ERROR;
		errf(err, errlen, "invalid JSON at line %d column %d: %s",
		    je.line, je.column, je.text);
		return -1;
	}
	*code = JRPC_INVALID_REQUEST;
	if (json_is_array(m.root)) {
		errf(err, errlen, "message is not a JSON object "
		    "(batches are not supported)");
		json_decref(m.root);
		return -1;
	}
	if (!json_is_object(m.root)) {
		errf(err, errlen, "message is not a JSON object");
		json_decref(m.root);
		return -1;
	}
	if (jrpc_classify(&m, err, errlen) != 0) {
		json_decref(m.root);
		return -1;
	}
	*out = m;
	return 0;
}

/* Release a parsed message. */
void
jrpc_msg_clear(struct jrpc_msg *m)
{
	json_decref(m->root);
	memset(m, 0, sizeof *m);
	m->error_message = "";
}

/* A new envelope {"jsonrpc":"2.0"} with id (stolen) if not NULL. */
static json_t *
jrpc_envelope(json_t *id)
{
	json_t *o = json_object();

	json_object_set_new(o, "jsonrpc", json_string("2.0"));
	if (id != NULL)
		json_object_set_new(o, "id", id);
	return o;
}

/* Build a request; a NULL id makes it a notification. */
json_t *
jrpc_request(json_t *id, const char *method, json_t *params)
{
	json_t *o = jrpc_envelope(id);

	json_object_set_new(o, "method", json_string(method));
	if (params != NULL)
		json_object_set_new(o, "params", params);
	return o;
}

/* Build a notification. */
json_t *
jrpc_notification(const char *method, json_t *params)
{
	return jrpc_request(NULL, method, params);
}

/* Build a successful response. */
json_t *
jrpc_result(json_t *id, json_t *result)
{
	json_t *o = jrpc_envelope(id != NULL ? id : json_null());

	json_object_set_new(o, "result",
	    result != NULL ? result : json_object());
	return o;
}

/* Build an error response; a NULL id becomes null. */
json_t *
jrpc_error(json_t *id, int code, const char *message, json_t *data)
{
	json_t *o = jrpc_envelope(id != NULL ? id : json_null());
	json_t *e = json_object(), *v;

	json_object_set_new(e, "code", json_integer(code));
	if ((v = json_string(message != NULL ? message : "")) == NULL)
		v = json_string("(error message is not valid UTF-8)");
	json_object_set_new(e, "message", v);
	if (data != NULL)
		json_object_set_new(e, "data", data);
	json_object_set_new(o, "error", e);
	return o;
}

struct jrpc_out {
	char	*buf;
	size_t	 len;
	size_t	 cap;
};

/* json_dump_callback sink appending to a growable buffer. */
static int
jrpc_dump_cb(const char *p, size_t n, void *arg)
{
	struct jrpc_out *o = arg;

	if (o->len + n + 2 > o->cap) {
		while (o->len + n + 2 > o->cap)
			o->cap *= 2;
		o->buf = xrealloc(o->buf, o->cap);
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
	return 0;
}

/* Serialise a message on one line, optionally newline-terminated. */
char *
jrpc_dump(const json_t *msg, size_t *len, int nl)
{
	struct jrpc_out o;

	o.cap = 256;
	o.len = 0;
	o.buf = xmalloc(o.cap);
	if (json_dump_callback(msg, jrpc_dump_cb, &o,
	    JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
		free(o.buf);
		return NULL;
	}
	if (nl)
		o.buf[o.len++] = '\n';
	o.buf[o.len] = '\0';
	*len = o.len;
	return o.buf;
}
