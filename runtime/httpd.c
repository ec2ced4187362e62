/*
 * httpd.c: an evhttp server held to limits (runtime/httpd.h).
 *
 * evhttp has no per-connection hooks before a request is complete, so the
 * guard makes its own from three public ones.  evhttp asks the guard for
 * each new connection's bufferevent (evhttp_set_bevcb): the guard counts
 * the connection there and watches the bufferevent's input buffer, which
 * sees every read.  The connection object itself exists only once that
 * callback returns, so the guard activates an event that runs before the
 * loop next polls, when evhttp has made the connection the bufferevent's
 * callback argument; there it takes the connection and asks to be told
 * when it closes (evhttp_connection_set_closecb).  A bufferevent reference
 * keeps the pointer valid in between.
 *
 * A connection is closed the way evhttp closes one that timed out: by a
 * timeout event on its bufferevent, deferred to the loop.  A request a
 * handler still holds is then detached from its connection, as when the
 * client leaves, and stays the handler's to answer.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "runtime/util.h"
#include "runtime/httpd.h"

#define HTTPD_NOTE_S		60	/* one line of a kind a minute */
#define HTTPD_PAUSE_MIN_MS	250
#define HTTPD_PAUSE_MAX_MS	4000
#define HTTPD_RETRY_AFTER_S	5

enum httpd_state {
	HC_NEW,		/* accepted, not yet attached */
	HC_IDLE,	/* waiting for a request's first byte */
	HC_HEADER,	/* reading a request's headers */
	HC_BODY,	/* reading its body */
	HC_ACTIVE	/* a handler has the request */
};

struct httpd_note {
	double		 last;
	unsigned long	 held;
};

struct httpd_conn {
	TAILQ_ENTRY(httpd_conn)	 entry;
	struct httpd		*h;
	struct bufferevent	*bev;
	struct evhttp_connection *evcon;	/* NULL until attached */
	struct evbuffer_cb_entry *in_cb;
	struct event		*timer;		/* attach, then deadlines */
	enum httpd_state	 state;
	int			 eol;		/* end-of-headers matcher */
	int			 dropped;
};

struct httpd {
	TAILQ_ENTRY(httpd)	 entry;
	struct event_base	*base;
	struct evhttp		*http;
	struct httpd_limits	 lim;
	char			*name;
	TAILQ_HEAD(, httpd_conn) conns;
	int			 nconns;
	struct evconnlistener	*lev;
	struct event		*resume;
	int			 paused;
	int			 pause_ms;
	struct httpd_note	 n_accept, n_full, n_slow, n_drop;
};

/* The error callback of a listener gets evhttp's argument: find ours. */
static TAILQ_HEAD(, httpd) httpd_all = TAILQ_HEAD_INITIALIZER(httpd_all);

static void httpd_set(struct httpd_conn *, enum httpd_state);

/* One line on stderr, unless one of its kind went out under a minute ago. */
static void
httpd_note(struct httpd *h, struct httpd_note *n, const char *fmt, ...)
{
	double now = now_mono();
	va_list ap;

	if (!h->lim.verbose && n->last != 0 && now - n->last < HTTPD_NOTE_S) {
		n->held++;
		return;
	}
	fprintf(stderr, "%s: ", h->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (n->held > 0)
		fprintf(stderr, " (and %lu more since the last such line)",
		    n->held);
	fputc('\n', stderr);
	n->last = now;
	n->held = 0;
}

/* "ADDRESS:PORT" of the client, for log lines. */
static void
httpd_peer(struct evhttp_connection *evcon, char *buf, size_t len)
{
	char *addr = NULL;
	ev_uint16_t port = 0;

	if (evcon != NULL)
		evhttp_connection_get_peer(evcon, &addr, &port);
	snprintf(buf, len, "%s:%u", addr != NULL ? addr : "?", port);
}

long
httpd_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return -1;
	return (long)rl.rlim_cur;
}

/* ---- accepting --------------------------------------------------------- */

/* Accept again after a pause. */
static void
httpd_resume(struct httpd *h)
{
	if (!h->paused)
		return;
	h->paused = 0;
	evtimer_del(h->resume);
	evconnlistener_enable(h->lev);
}

static void
httpd_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	httpd_resume(arg);
}

/*
 * accept() failed with an error that is not transient (out of
 * descriptors, mostly): the pending connection stays in the backlog and
 * the listener would be readable again at once.  Pause it.
 */
static void
httpd_accept_error_cb(struct evconnlistener *lev, void *arg)
{
	int e = EVUTIL_SOCKET_ERROR();
	struct timeval tv;
	struct httpd *h;

	evconnlistener_disable(lev);
	TAILQ_FOREACH(h, &httpd_all, entry)
		if (h->http == arg && h->lev == lev)
			break;
	if (h == NULL)
		return;
	h->paused = 1;
	httpd_note(h, &h->n_accept, "cannot accept connections: %s "
	    "(%d open, open files limit %ld): not accepting until one "
	    "closes or for %d ms", strerror(e), h->nconns, httpd_nofile(),
	    h->pause_ms);
	tv.tv_sec = h->pause_ms / 1000;
	tv.tv_usec = (h->pause_ms % 1000) * 1000;
	evtimer_add(h->resume, &tv);
	h->pause_ms = h->pause_ms * 2 > HTTPD_PAUSE_MAX_MS ?
	    HTTPD_PAUSE_MAX_MS : h->pause_ms * 2;
}

void
httpd_watch(struct httpd *h, struct evhttp_bound_socket *bs)
{
	h->lev = evhttp_bound_socket_get_listener(bs);
	evconnlistener_set_error_cb(h->lev, httpd_accept_error_cb);
}

/* ---- connections ------------------------------------------------------- */

/* Forget c: its connection is closing, or was never made. */
static void
httpd_conn_free(struct httpd_conn *c)
{
	struct httpd *h = c->h;

	TAILQ_REMOVE(&h->conns, c, entry);
	h->nconns--;
	event_free(c->timer);
	evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->in_cb);
	if (c->evcon == NULL)
		bufferevent_decref(c->bev);
	free(c);
	httpd_resume(h);
}

/* evhttp is freeing the connection: forget it, accept again if paused. */
static void
httpd_close_cb(struct evhttp_connection *evcon, void *arg)
{
	evhttp_connection_set_closecb(evcon, NULL, NULL);
	httpd_conn_free(arg);
}

/* Close c's connection from the loop, as evhttp closes a timed-out one. */
static void
httpd_conn_drop(struct httpd_conn *c)
{
	c->dropped = 1;
	evtimer_del(c->timer);
	bufferevent_trigger_event(c->bev, BEV_EVENT_WRITING |
	    BEV_EVENT_TIMEOUT, BEV_TRIG_DEFER_CALLBACKS);
}

/*
 * Over --max-connections: a 503 written straight to the socket, and the
 * connection closed.  What the client sent is read first, so that the
 * close is a FIN, not a reset that could discard the answer.
 */
static void
httpd_refuse(struct httpd_conn *c)
{
	static const char body[] = "too many connections: try again later\n";
	char msg[256], junk[4096];
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	int i, n;

	n = snprintf(msg, sizeof msg, "HTTP/1.1 503 Service Unavailable\r\n"
	    "Retry-After: %d\r\nConnection: close\r\nContent-Type: "
	    "text/plain\r\nContent-Length: %zu\r\n\r\n%s",
	    HTTPD_RETRY_AFTER_S, sizeof body - 1, body);
	for (i = 0; i < 16 && recv(fd, junk, sizeof junk, MSG_DONTWAIT) > 0;
	    i++)
		;
	/* A client already gone gets nothing: no error to report. */
	(void)send(fd, msg, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	httpd_note(c->h, &c->h->n_full, "%d connections open, the limit "
	    "(--max-connections): answering more with 503",
	    c->h->lim.max_conns);
	evhttp_connection_free(c->evcon);
}

/*
 * The loop's first turn after the accept: evhttp has made its connection
 * object the bufferevent's callback argument.  Take it, or refuse.
 */
static void
httpd_attach(struct httpd_conn *c)
{
	bufferevent_event_cb ecb = NULL;
	void *arg = NULL;

	bufferevent_getcb(c->bev, NULL, NULL, &ecb, &arg);
	if (ecb == NULL || arg == NULL) {
		/* evhttp let go of it already (it could not set up). */
		httpd_conn_free(c);
		return;
	}
	c->evcon = arg;
	bufferevent_decref(c->bev);
	evhttp_connection_set_closecb(c->evcon, httpd_close_cb, c);
	if (c->h->nconns > c->h->lim.max_conns) {
		httpd_refuse(c);
		return;
	}
	httpd_set(c, HC_IDLE);
}

/* How long state s may last, and what to say when it lasts longer. */
static double
httpd_late(const struct httpd_conn *c, char *why, size_t len)
{
	const struct httpd_limits *l = &c->h->lim;

	switch (c->state) {
	case HC_HEADER:
		snprintf(why, len, "request headers not complete %g s after "
		    "their first byte (--header-timeout)", l->header_s);
		return l->header_s;
	case HC_BODY:
		snprintf(why, len, "request body not complete %g s after its "
		    "headers (--body-timeout)", l->body_s);
		return l->body_s;
	default:
		snprintf(why, len, "no request within %g s (--idle-timeout)",
		    l->idle_s);
		return l->idle_s;
	}
}

/* The first turn after the accept (attach), or a deadline passed. */
static void
httpd_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct httpd_conn *c = arg;
	char peer[96], why[160];

	(void)fd;
	(void)what;
	if (c->evcon == NULL) {
		httpd_attach(c);
		return;
	}
	(void)httpd_late(c, why, sizeof why);
	httpd_peer(c->evcon, peer, sizeof peer);
	/* Idle keep-alive connections end quietly; slow requests do not. */
	if (c->state == HC_HEADER || c->state == HC_BODY)
		httpd_note(c->h, &c->h->n_slow, "closed the connection from "
		    "%s: %s", peer, why);
	else if (c->h->lim.verbose)
		fprintf(stderr, "%s: closed the connection from %s: %s\n",
		    c->h->name, peer, why);
	httpd_conn_drop(c);
}

/* Enter state s and arm its deadline. */
static void
httpd_set(struct httpd_conn *c, enum httpd_state s)
{
	struct timeval tv;
	char why[160];
	double secs;

	c->state = s;
	evtimer_del(c->timer);
	if (s == HC_ACTIVE || c->dropped)
		return;
	if (s == HC_HEADER)
		c->eol = 0;
	secs = httpd_late(c, why, sizeof why);
	tv.tv_sec = (time_t)secs;
	tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
	evtimer_add(c->timer, &tv);
}

/*
 * Feed len bytes of buf from off to the end-of-headers matcher: 1 once an
 * empty line ("\n\n" or "\n\r\n") ends them.
 */
static int
httpd_scan(struct httpd_conn *c, struct evbuffer *buf, size_t off,
    size_t len)
{
	struct evbuffer_ptr p;
	unsigned char tmp[4096];
	ev_ssize_t n, i;

	if (evbuffer_ptr_set(buf, &p, off, EVBUFFER_PTR_SET) != 0)
		return 0;
	while (len > 0) {
		n = evbuffer_copyout_from(buf, &p, tmp, len < sizeof tmp ?
		    len : sizeof tmp);
		if (n <= 0)
			return 0;
		for (i = 0; i < n; i++) {
			if (tmp[i] == '\n') {
				if (c->eol != 0)
					return 1;
				c->eol = 1;
			} else
				c->eol = tmp[i] == '\r' && c->eol == 1 ? 2 : 0;
		}
		len -= (size_t)n;
		if (evbuffer_ptr_set(buf, &p, (size_t)n,
		    EVBUFFER_PTR_ADD) != 0)
			return 0;
	}
	return 0;
}

/* Bytes read on c: a request's first byte starts its header deadline. */
static void
httpd_input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct httpd_conn *c = arg;

	if (info->n_added == 0 || info->n_deleted != 0 || c->evcon == NULL ||
	    c->dropped)
		return;
	if (c->state == HC_IDLE)
		httpd_set(c, HC_HEADER);
	if (c->state == HC_HEADER && httpd_scan(c, buf, info->orig_size,
	    info->n_added))
		httpd_set(c, HC_BODY);
}

/* The answer is sent: wait for the next request, or read on one begun. */
static void
httpd_done_cb(struct evhttp_request *req, void *arg)
{
	struct httpd_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(c->bev);

	(void)req;
	if (c->dropped)
		return;
	if (evbuffer_get_length(in) == 0) {
		httpd_set(c, HC_IDLE);
		return;
	}
	httpd_set(c, HC_HEADER);
	if (httpd_scan(c, in, 0, evbuffer_get_length(in)))
		httpd_set(c, HC_BODY);
}

/* evhttp's new connection: its bufferevent, counted and watched. */
static struct bufferevent *
httpd_bev_cb(struct event_base *base, void *arg)
{
	struct httpd *h = arg;
	struct httpd_conn *c;
	struct bufferevent *bev;
	struct timeval wtv;

	if ((bev = bufferevent_socket_new(base, -1, 0)) == NULL)
		return NULL;
	c = xcalloc(1, sizeof *c);
	c->h = h;
	c->bev = bev;
	c->state = HC_NEW;
	bufferevent_incref(bev);
	c->in_cb = evbuffer_add_cb(bufferevent_get_input(bev), httpd_input_cb,
	    c);
	wtv.tv_sec = (time_t)h->lim.write_s;
	wtv.tv_usec = (suseconds_t)((h->lim.write_s - (double)wtv.tv_sec) *
	    1e6);
	bufferevent_set_timeouts(bev, NULL, &wtv);
	bufferevent_setwatermark(bev, EV_READ, 0, h->lim.max_input);
	c->timer = evtimer_new(base, httpd_timer_cb, c);
	event_active(c->timer, EV_TIMEOUT, 1);
	TAILQ_INSERT_TAIL(&h->conns, c, entry);
	h->nconns++;
	h->pause_ms = HTTPD_PAUSE_MIN_MS;
	return bev;
}

/* ---- the guard --------------------------------------------------------- */

struct httpd *
httpd_new(struct event_base *base, struct evhttp *http,
    const struct httpd_limits *lim)
{
	struct httpd *h = xcalloc(1, sizeof *h);

	h->base = base;
	h->http = http;
	h->lim = *lim;
	h->name = xstrdup(lim->name != NULL ? lim->name : "weft");
	h->lim.name = h->name;
	h->pause_ms = HTTPD_PAUSE_MIN_MS;
	TAILQ_INIT(&h->conns);
	if ((h->resume = evtimer_new(base, httpd_resume_cb, h)) == NULL)
		fatalx(1, "cannot make a timer");
	evhttp_set_bevcb(http, httpd_bev_cb, h);
	TAILQ_INSERT_TAIL(&httpd_all, h, entry);
	return h;
}

void
httpd_free(struct httpd *h)
{
	struct httpd_conn *c;

	if (h == NULL)
		return;
	/* Only connections not yet attached are left after evhttp_free(). */
	h->paused = 0;
	while ((c = TAILQ_FIRST(&h->conns)) != NULL)
		httpd_conn_free(c);
	event_free(h->resume);
	TAILQ_REMOVE(&httpd_all, h, entry);
	free(h->name);
	free(h);
}

/* The guard's record of req's connection, or NULL. */
static struct httpd_conn *
httpd_find(struct httpd *h, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct httpd_conn *c;

	if (evcon == NULL)
		return NULL;
	TAILQ_FOREACH(c, &h->conns, entry)
		if (c->evcon == evcon)
			return c;
	return NULL;
}

void
httpd_begin(struct httpd *h, struct evhttp_request *req)
{
	struct httpd_conn *c = httpd_find(h, req);

	if (c == NULL || c->dropped)
		return;
	httpd_set(c, HC_ACTIVE);
	evhttp_request_set_on_complete_cb(req, httpd_done_cb, c);
}

size_t
httpd_queued(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);

	if (evcon == NULL)
		return HTTPD_GONE;
	return evbuffer_get_length(bufferevent_get_output(
	    evhttp_connection_get_bufferevent(evcon)));
}

void
httpd_drop(struct httpd *h, struct evhttp_request *req, const char *why)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct httpd_conn *c = httpd_find(h, req);
	char peer[96];

	if (evcon == NULL || (c != NULL && c->dropped))
		return;
	httpd_peer(evcon, peer, sizeof peer);
	httpd_note(h, &h->n_drop, "closed the connection from %s: %s", peer,
	    why);
	if (c != NULL)
		httpd_conn_drop(c);
	else
		bufferevent_trigger_event(evhttp_connection_get_bufferevent(
		    evcon), BEV_EVENT_WRITING | BEV_EVENT_TIMEOUT,
		    BEV_TRIG_DEFER_CALLBACKS);
}

int
httpd_conns(const struct httpd *h)
{
	return h->nconns;
}

/* libevent's log: warnings and errors, one of a kind a minute. */
static void
httpd_log_cb(int severity, const char *msg)
{
	static char last[256];
	static double when;
	static unsigned long held;
	double now = now_mono();

	if (severity < EVENT_LOG_WARN)
		return;
	if (strncmp(last, msg, sizeof last - 1) == 0 &&
	    now - when < HTTPD_NOTE_S) {
		held++;
		return;
	}
	if (held > 0)
		fprintf(stderr, "weft: libevent: %s (and %lu more like the "
		    "last since)\n", msg, held);
	else
		fprintf(stderr, "weft: libevent: %s\n", msg);
	snprintf(last, sizeof last, "%s", msg);
	when = now;
	held = 0;
}

void
httpd_quiet_libevent(void)
{
	event_set_log_callback(httpd_log_cb);
}
