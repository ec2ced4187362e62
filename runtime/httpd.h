/*
 * httpd.h: an evhttp server held to limits (docs/mcp.md, "Limits").
 *
 * evhttp (libevent 2.1) accepts every connection it can, waits on each for
 * as long as the peer likes and, out of descriptors, retries accept() in a
 * busy loop that logs every failure.  A guard puts one evhttp server under
 * limits:
 *
 * - at most max_conns connections; one more is answered 503 with
 *   Retry-After at once and closed;
 * - a connection waiting for a request's first byte is closed after
 *   idle_s; a request whose headers are not complete header_s after its
 *   first byte, or whose body is not complete body_s after its headers, is
 *   cut, however the bytes trickle in;
 * - output waiting for a client that takes none of it for write_s closes
 *   the connection; at most max_input bytes are read ahead of the parser;
 * - accept() failing (out of descriptors: EMFILE, ENFILE) pauses the
 *   listener and resumes it when a connection closes or after a back-off
 *   (250 ms doubling to 4 s), with one line on stderr.
 *
 * Every kind of event is logged at most once a minute, with a count of the
 * ones held back.  Time from a handler receiving a request to its answer
 * being sent is the server's own: no deadline runs then.
 *
 * All on the loop thread of the server's event base.
 */
#ifndef WEFT_HTTPD_H
#define WEFT_HTTPD_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evhttp;
struct evhttp_bound_socket;
struct evhttp_request;
struct httpd;

struct httpd_limits {
	const char	*name;		/* log prefix: "weft serve" */
	int		 max_conns;
	double		 idle_s;
	double		 header_s;
	double		 body_s;
	double		 write_s;
	size_t		 max_input;
	int		 verbose;	/* log every connection closed */
};

#define HTTPD_MAX_CONNS		256
#define HTTPD_IDLE_S		60
#define HTTPD_HEADER_S		10
#define HTTPD_BODY_S		60
#define HTTPD_WRITE_S		30
#define HTTPD_MAX_INPUT		(128u * 1024)
#define HTTPD_GONE		SIZE_MAX

/*
 * Guard http, whose connections must all start after this call; lim is
 * copied.  Returns the guard (never NULL: allocation failure aborts).
 */
struct httpd *httpd_new(struct event_base *, struct evhttp *,
    const struct httpd_limits *lim);
/* Watch the listener of bs: accept errors pause it (see above). */
void httpd_watch(struct httpd *, struct evhttp_bound_socket *bs);
/* Free the guard: call after evhttp_free() of its server. */
void httpd_free(struct httpd *);

/* A handler has taken req: the server's turn until its answer is sent. */
void httpd_begin(struct httpd *, struct evhttp_request *req);
/* Bytes waiting to be sent on req's connection, HTTPD_GONE if none. */
size_t httpd_queued(struct evhttp_request *req);
/*
 * Close req's connection from the loop, soon after this returns (why is
 * logged).  req stays the caller's, detached from its connection as when
 * a client leaves: answer it as usual to free it.
 */
void httpd_drop(struct httpd *, struct evhttp_request *req, const char *why);
/* Connections open now. */
int httpd_conns(const struct httpd *);

/*
 * The open-files limit (RLIMIT_NOFILE, soft), or -1 if unknown: for
 * fitting max_conns under it.
 */
long httpd_nofile(void);
/* Send libevent's own log lines to stderr, one of a kind a minute. */
void httpd_quiet_libevent(void);

#endif
