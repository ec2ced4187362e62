/*
 * sse.h: incremental Server-Sent Events parser.
 *
 * Follows the WHATWG "event stream interpretation" rules: lines end in
 * "\n", "\r\n" or "\r" (also when the "\r" and the "\n" arrive in
 * different feeds); "field: value" with one optional space after the colon
 * removed; "data" lines joined with "\n"; lines starting with ":" are
 * comments; a blank line dispatches the event; an event with no data line
 * is not dispatched; a leading UTF-8 byte order mark is skipped.  An event
 * still open when the stream ends is never dispatched (see sse_pending).
 *
 * Bytes may arrive split anywhere, including inside a line or a UTF-8
 * sequence: the parser works on bytes and hands out whole events.  Memory
 * is bounded: a line or an event's data longer than the parser's maximum
 * is an error, not unbounded growth.  Pure: no I/O.
 */
#ifndef WEFT_SSE_H
#define WEFT_SSE_H

#include <stddef.h>

/* Maximum line and event data length when sse_new is given 0. */
#define SSE_DEFAULT_MAX	((size_t)8 << 20)

/*
 * Called once per dispatched event.  event is the event type ("message"
 * when the event had no "event" field); data is the event's data lines
 * joined with '\n', len bytes plus a terminating NUL (data may itself hold
 * NUL bytes).  Both are owned by the parser and valid only during the call.
 * Return 0 to go on or -1 to abort: sse_feed then fails.
 */
typedef int (*sse_event_cb)(void *arg, const char *event, const char *data,
    size_t len);

struct sse;

/*
 * A parser calling cb(arg, ...) for every event, refusing lines and event
 * data longer than max bytes (0: SSE_DEFAULT_MAX).  Free with sse_free.
 */
struct sse *sse_new(size_t max, sse_event_cb cb, void *arg);

/* Free a parser and whatever it has buffered.  NULL is allowed. */
void sse_free(struct sse *);

/*
 * Parse the next n bytes of the stream, calling the callback for each
 * event they complete.  Returns 0, or -1 with err set when a line or an
 * event is over the maximum or the callback returned -1.  After -1 the
 * parser is failed: every later call returns -1 at once.
 */
int sse_feed(struct sse *, const char *p, size_t n, char *err,
    size_t errlen);

/*
 * Bytes of an event that has not been dispatched yet: a partial line, or
 * fields waiting for their blank line.  Non-zero when the stream ends means
 * the last event was cut off.
 */
size_t sse_pending(const struct sse *);

/* The last event ID seen ("" if none); owned by the parser. */
const char *sse_last_id(const struct sse *);

/* The reconnection time from the last valid "retry" field, -1 if none. */
long sse_retry_ms(const struct sse *);

#endif
