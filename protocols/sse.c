/* sse.c: incremental Server-Sent Events parser (WHATWG rules). */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "protocols/sse.h"
#include "runtime/util.h"

/* A growable byte buffer, always NUL-terminated when allocated. */
struct sse_buf {
	char	*p;
	size_t	 len;
	size_t	 cap;
};

/*
 * A line is complete once its terminator is seen.  Most lines arrive whole
 * inside one feed and are parsed in place; only a line split across feeds
 * is gathered in line.  crlf remembers a '\r' that ended the last feed, so
 * a '\n' starting the next one is not taken for a second, empty line.
 */
struct sse {
	sse_event_cb	 cb;
	void		*arg;
	size_t		 max;
	struct sse_buf	 line;
	struct sse_buf	 data;
	struct sse_buf	 event;
	struct sse_buf	 id;
	long		 retry;
	int		 crlf;
	int		 started;
	int		 failed;
};

/* Make room for n more bytes and a NUL. */
static void
sse_buf_reserve(struct sse_buf *b, size_t n)
{
	size_t cap;

	if (b->p != NULL && b->len + n < b->cap)
		return;
	cap = b->cap != 0 ? b->cap : 64;
	while (cap <= b->len + n)
		cap *= 2;
	b->p = xrealloc(b->p, cap);
	b->cap = cap;
}

/* Append n bytes, keeping the buffer NUL-terminated. */
static void
sse_buf_add(struct sse_buf *b, const char *p, size_t n)
{
	sse_buf_reserve(b, n);
	if (n > 0)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Replace the contents. */
static void
sse_buf_set(struct sse_buf *b, const char *p, size_t n)
{
	b->len = 0;
	sse_buf_add(b, p, n);
}

/* A parser calling cb for every event. */
struct sse *
sse_new(size_t max, sse_event_cb cb, void *arg)
{
	struct sse *s = xcalloc(1, sizeof *s);

	s->max = max != 0 ? max : SSE_DEFAULT_MAX;
	if (s->max > SIZE_MAX / 4)
		s->max = SIZE_MAX / 4;
	s->cb = cb;
	s->arg = arg;
	s->retry = -1;
	sse_buf_set(&s->id, "", 0);
	return s;
}

/* Free a parser and its buffers. */
void
sse_free(struct sse *s)
{
	if (s == NULL)
		return;
	free(s->line.p);
	free(s->data.p);
	free(s->event.p);
	free(s->id.p);
	free(s);
}

/* Mark the parser failed and say why. */
static int
sse_fail(struct sse *s, char *err, size_t errlen, const char *what)
{
	s->failed = 1;
	errf(err, errlen, "%s", what);
	return -1;
}

/* Dispatch the event gathered so far (a blank line was seen). */
static int
sse_dispatch(struct sse *s, char *err, size_t errlen)
{
	const char *type;
	int rv;

	if (s->data.len == 0) {
		s->event.len = 0;
		return 0;
	}
	/* Every data line added a '\n'; the last one is not part of it. */
	s->data.p[--s->data.len] = '\0';
	type = s->event.len > 0 ? s->event.p : "message";
	rv = s->cb(s->arg, type, s->data.p, s->data.len);
	s->data.len = 0;
	s->event.len = 0;
	if (rv != 0)
		return sse_fail(s, err, errlen, "event handler failed");
	return 0;
}

/* True if the n bytes at p spell the NUL-terminated name. */
static int
sse_field_is(const char *p, size_t n, const char *name)
{
	return strlen(name) == n && memcmp(p, name, n) == 0;
}

/* Set the reconnection time if v is made of ASCII digits only. */
static void
sse_set_retry(struct sse *s, const char *v, size_t n)
{
	long ms = 0;
	size_t i;

	if (n == 0)
		return;
	for (i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return;
		if (ms <= (LONG_MAX - 9) / 10)
			ms = ms * 10 + (v[i] - '0');
		else
			ms = LONG_MAX;
	}
	s->retry = ms;
}

/* Interpret one complete line of n bytes (no terminator). */
static int
sse_line(struct sse *s, const char *p, size_t n, char *err, size_t errlen)
{
	const char *colon, *v;
	size_t fn, vn;

	if (!s->started) {
		s->started = 1;
		if (n >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
			p += 3;
			n -= 3;
		}
	}
	if (n == 0)
		return sse_dispatch(s, err, errlen);
	if (p[0] == ':')
		return 0;
	if ((colon = memchr(p, ':', n)) != NULL) {
		fn = colon - p;
		v = colon + 1;
		vn = n - fn - 1;
		if (vn > 0 && v[0] == ' ') {
			v++;
			vn--;
		}
	} else {
		fn = n;
		v = p + n;
		vn = 0;
	}

	if (sse_field_is(p, fn, "data")) {
		if (s->data.len + vn > s->max)
			return sse_fail(s, err, errlen,
			    "event data over the size limit");
		sse_buf_add(&s->data, v, vn);
		sse_buf_add(&s->data, "\n", 1);
	} else if (sse_field_is(p, fn, "event"))
		sse_buf_set(&s->event, v, vn);
	else if (sse_field_is(p, fn, "id")) {
		if (memchr(v, '\0', vn) == NULL)
			sse_buf_set(&s->id, v, vn);
	} else if (sse_field_is(p, fn, "retry"))
		sse_set_retry(s, v, vn);
	return 0;
}

/* First '\r' or '\n' in [p, end), or NULL. */
static const char *
sse_eol(const char *p, const char *end)
{
	for (; p < end; p++) {
		if (*p == '\n' || *p == '\r')
			return p;
	}
	return NULL;
}

/* Parse the next n bytes of the stream. */
int
sse_feed(struct sse *s, const char *p, size_t n, char *err, size_t errlen)
{
	const char *end = p + n, *eol;
	size_t len;
	int rv;

	if (s->failed) {
		errf(err, errlen, "event stream already failed");
		return -1;
	}
	if (s->crlf && p < end) {
		s->crlf = 0;
		if (*p == '\n')
			p++;
	}
	while (p < end) {
		if ((eol = sse_eol(p, end)) == NULL) {
			if (s->line.len + (end - p) > s->max)
				return sse_fail(s, err, errlen,
				    "line over the size limit");
			sse_buf_add(&s->line, p, end - p);
			break;
		}
		len = eol - p;
		if (s->line.len > 0) {
			if (s->line.len + len > s->max)
				return sse_fail(s, err, errlen,
				    "line over the size limit");
			sse_buf_add(&s->line, p, len);
			rv = sse_line(s, s->line.p, s->line.len, err, errlen);
			s->line.len = 0;
		} else {
			if (len > s->max)
				return sse_fail(s, err, errlen,
				    "line over the size limit");
			rv = sse_line(s, p, len, err, errlen);
		}
		if (rv != 0)
			return -1;
		p = eol + 1;
		if (*eol == '\r') {
			if (p == end)
				s->crlf = 1;
			else if (*p == '\n')
				p++;
		}
	}
	return 0;
}

/* Bytes of an event not dispatched yet. */
size_t
sse_pending(const struct sse *s)
{
	return s->line.len + s->data.len + s->event.len;
}

/* The last event ID seen. */
const char *
sse_last_id(const struct sse *s)
{
	return s->id.p;
}

/* The reconnection time from the last valid retry field. */
long
sse_retry_ms(const struct sse *s)
{
	return s->retry;
}
