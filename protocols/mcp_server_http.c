/*
 * mcp_server_http.c: the MCP Streamable HTTP transport of the server.
 *
 * Every POST is checked after the listener's checks (runtime/
 * httpd_routes.c: Host, Origin, bearer token) in this order: method,
 * content type, size (evhttp refuses bodies over the limit with 413),
 * JSON-RPC envelope, MCP-Protocol-Version, session.  A request's answer is
 * application/json, or text/event-stream once the request has something to
 * say before its answer (progress, log messages).  GET opens the session's
 * stream for messages not tied to a request; DELETE ends the session.  A
 * session belongs to the bearer token that made it.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "protocols/mcp_server.h"
#include "runtime/httpd_routes.h"
#include "runtime/util.h"

#define MCPS_HTTP_SWEEP_S	30
#define MCPS_HTTP_ANONYMOUS	"anonymous"

struct mcps_http_sess;

struct mcps_http {
	struct mcps		*srv;
	struct httpd		*guard;
	size_t			 max_output;
	int			 max_sessions;
	int			 nsessions;
	double			 idle_s;
	struct event		*sweep;
	TAILQ_HEAD(, mcps_http_sess) sessions;
};

struct mcps_http_pending {
	TAILQ_ENTRY(mcps_http_pending) entry;
	json_t			*req_id;
	struct evhttp_request	*req;
	int			 sse_ok;
	int			 streaming;
};

struct mcps_http_sess {
	TAILQ_ENTRY(mcps_http_sess) entry;
	struct mcps_http	*sv;
	char			 id[65];
	const struct httpd_client *tok;		/* its maker; NULL: none */
	struct mcps_conn	*conn;
	TAILQ_HEAD(, mcps_http_pending) pending;
	struct evhttp_request	*stream;	/* GET stream or NULL */
	double			 used;
};


/* An HTTP error carrying a JSON-RPC error object. */
static void
mcps_http_error(struct evhttp_request *req, int http, const char *reason,
    int code, const char *msg)
{
	json_t *e = jrpc_error(json_null(), code, msg, NULL);
	size_t dlen;
	char *s = jrpc_dump(e, &dlen, 0);

	httpd_reply_text(req, http, reason, "application/json", s);
	free(s);
	json_decref(e);
}

/*
 * May n more bytes wait for req's client?  1: yes (or the client is gone
 * and nothing will wait).  0: the output already waiting plus n is over
 * --max-output: the client does not read, and its connection is being
 * closed.  -1: nothing waits, but n alone is over the limit.
 */
static int
mcps_http_room(struct mcps_http *sv, struct evhttp_request *req, size_t n)
{
	size_t q = httpd_queued(req);
	char why[128];

	if (q == HTTPD_GONE || (q <= sv->max_output &&
	    n <= sv->max_output - q))
		return 1;
	if (q == 0)
		return -1;
	snprintf(why, sizeof why, "its client does not read (%zu bytes "
	    "waiting, --max-output %zu)", q, sv->max_output);
	httpd_drop(sv->guard, req, why);
	return 0;
}

/* One SSE event if there is room for it; mcps_http_room()'s answer. */
static int
mcps_http_sse_event(struct mcps_http *sv, struct evhttp_request *req,
    json_t *msg)
{
	struct evbuffer *b = evbuffer_new();
	size_t dlen;
	char *s = jrpc_dump(msg, &dlen, 0);
	int room;

	evbuffer_add_printf(b, "event: message\ndata: %s\n\n", s ? s : "{}");
	if ((room = mcps_http_room(sv, req, evbuffer_get_length(b))) == 1)
		evhttp_send_reply_chunk(req, b);
	evbuffer_free(b);
	free(s);
	return room;
}

/* An event that is not an answer: too large for the limit, it ends the
   stream's connection. */
static void
mcps_http_sse_notify(struct mcps_http *sv, struct evhttp_request *req,
    json_t *msg)
{
	if (mcps_http_sse_event(sv, req, msg) < 0)
		httpd_drop(sv->guard, req, "a message larger than "
		    "--max-output");
}

static void
mcps_http_sse_start(struct evhttp_request *req, const char *sid)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", "text/event-stream");
	evhttp_add_header(h, "Cache-Control", "no-cache");
	if (sid != NULL)
		evhttp_add_header(h, "Mcp-Session-Id", sid);
	evhttp_send_reply_start(req, 200, "OK");
}

/* An answer over --max-output: an error in its place. */
static json_t *
mcps_http_too_big(struct mcps_http *sv, json_t *msg)
{
	return jrpc_error(json_deep_copy(json_object_get(msg, "id")),
	    JRPC_INTERNAL_ERROR, "the answer is larger than weft serve "
	    "--max-output allows", json_pack("{s:I}", "max_output",
	    (json_int_t)sv->max_output));
}

/* Complete a pending request with msg (NULL: no answer). */
static void
mcps_http_pending_done(struct mcps_http_sess *ss, struct mcps_http_pending *p,
    json_t *msg)
{
	struct mcps_http *sv = ss->sv;
	json_t *err = NULL;
	size_t dlen;
	char *s;
	int room;

	TAILQ_REMOVE(&ss->pending, p, entry);
	if (p->streaming) {
		if (msg != NULL && mcps_http_sse_event(sv, p->req, msg) < 0) {
			err = mcps_http_too_big(sv, msg);
			mcps_http_sse_notify(sv, p->req, err);
		}
		evhttp_send_reply_end(p->req);
	} else if (msg != NULL) {
		s = jrpc_dump(msg, &dlen, 0);
		if ((room = mcps_http_room(sv, p->req, dlen)) < 0) {
			free(s);
			err = mcps_http_too_big(sv, msg);
			s = jrpc_dump(err, &dlen, 0);
		}
		evhttp_add_header(evhttp_request_get_output_headers(p->req),
		    "Mcp-Session-Id", ss->id);
		if (room == 0)
			httpd_reply_text(p->req, 503, "Service Unavailable",
			    NULL, NULL);
		else
			httpd_reply_text(p->req, 200, "OK", "application/json",
			    s);
		free(s);
	} else
		httpd_reply_text(p->req, 202, "Accepted", NULL, NULL);
	json_decref(err);
	json_decref(p->req_id);
	free(p);
}

/* The session's messages: to the request they belong to, or the GET stream. */
static void
mcps_http_send_cb(void *arg, json_t *msg, const json_t *req_id, int final)
{
	struct mcps_http_sess *ss = arg;
	struct mcps_http_pending *p;

	ss->used = now_mono();
	if (req_id == NULL) {
		if (ss->stream != NULL && msg != NULL)
			mcps_http_sse_notify(ss->sv, ss->stream, msg);
		return;
	}
	TAILQ_FOREACH(p, &ss->pending, entry)
		if (json_equal(p->req_id, req_id))
			break;
	if (p == NULL)
		return;
	if (final) {
		mcps_http_pending_done(ss, p, msg);
		return;
	}
	if (!p->sse_ok || msg == NULL)
		return;
	if (!p->streaming) {
		mcps_http_sse_start(p->req, ss->id);
		p->streaming = 1;
	}
	mcps_http_sse_notify(ss->sv, p->req, msg);
}

/* ---- sessions ---------------------------------------------------------- */

/* A new session of the client presenting tok (NULL: no token). */
static struct mcps_http_sess *
mcps_http_sess_new(struct mcps_http *sv, const struct httpd_client *tok)
{
	struct mcps_http_sess *ss = xcalloc(1, sizeof *ss);

	ss->sv = sv;
	ss->tok = tok;
	random_hex(ss->id, 32);
	TAILQ_INIT(&ss->pending);
	ss->conn = mcps_conn_new(sv->srv, mcps_http_send_cb, ss);
	mcps_conn_set_owner(ss->conn, tok != NULL ? tok->id :
	    MCPS_HTTP_ANONYMOUS, tok != NULL && tok->operator);
	ss->used = now_mono();
	TAILQ_INSERT_TAIL(&sv->sessions, ss, entry);
	sv->nsessions++;
	return ss;
}

static void
mcps_http_sess_free(struct mcps_http_sess *ss)
{
	struct mcps_http_pending *p;

	mcps_conn_free(ss->conn);
	while ((p = TAILQ_FIRST(&ss->pending)) != NULL)
		mcps_http_pending_done(ss, p, NULL);
	if (ss->stream != NULL)
		evhttp_send_reply_end(ss->stream);
	TAILQ_REMOVE(&ss->sv->sessions, ss, entry);
	ss->sv->nsessions--;
	free(ss);
}

static struct mcps_http_sess *
mcps_http_sess_find(struct mcps_http *sv, const char *id)
{
	struct mcps_http_sess *ss;

	TAILQ_FOREACH(ss, &sv->sessions, entry)
		if (strlen(id) == 64 && strcmp(ss->id, id) == 0)
			return ss;
	return NULL;
}

/* End sessions idle for longer than the timeout. */
static void
mcps_http_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mcps_http *sv = arg;
	struct mcps_http_sess *ss, *next;
	double now = now_mono();

	(void)fd;
	(void)what;
	TAILQ_FOREACH_SAFE(ss, &sv->sessions, entry, next)
		if (TAILQ_EMPTY(&ss->pending) && now - ss->used > sv->idle_s)
			mcps_http_sess_free(ss);
}

/* Does the Accept header admit type (absent or star admits all)? */
static int
mcps_http_accepts(struct evhttp_request *req, const char *type)
{
	const char *a = evhttp_find_header(evhttp_request_get_input_headers(
	    req), "Accept");

	return a == NULL || strstr(a, type) != NULL || strstr(a, "*/*") != NULL;
}

/*
 * The session named by the request, or NULL after answering 400/404.  A
 * session made with another token is as unknown as one never made.
 */
static struct mcps_http_sess *
mcps_http_session_of(struct mcps_http *sv, struct evhttp_request *req,
    const struct httpd_client *tok)
{
	const char *id = evhttp_find_header(evhttp_request_get_input_headers(
	    req), "Mcp-Session-Id");
	struct mcps_http_sess *ss;

	if (id == NULL) {
		mcps_http_error(req, 400, "Bad Request", JRPC_INVALID_REQUEST,
		    "Mcp-Session-Id header required (initialize first)");
		return NULL;
	}
	if ((ss = mcps_http_sess_find(sv, id)) == NULL || ss->tok != tok) {
		mcps_http_error(req, 404, "Not Found", JRPC_INVALID_REQUEST,
		    "unknown or expired session");
		return NULL;
	}
	ss->used = now_mono();
	return ss;
}

/* ---- methods ----------------------------------------------------------- */

static void
mcps_http_post_msg(struct mcps_http *sv, struct evhttp_request *req,
    struct jrpc_msg *m, const struct httpd_client *tok)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *ver = evhttp_find_header(h, "MCP-Protocol-Version");
	struct mcps_http_sess *ss;
	struct mcps_http_pending *p;

	if (ver != NULL && !mcps_version_ok(ver)) {
		mcps_http_error(req, 400, "Bad Request", JRPC_INVALID_REQUEST,
		    "unsupported MCP-Protocol-Version");
		return;
	}
	if (m->kind == JRPC_REQUEST && strcmp(m->method, "initialize") == 0 &&
	    evhttp_find_header(h, "Mcp-Session-Id") == NULL) {
		if (sv->nsessions >= sv->max_sessions) {
			mcps_http_error(req, 503, "Service Unavailable",
			    JRPC_INTERNAL_ERROR, "too many sessions "
			    "(weft serve --max-sessions)");
			return;
		}
		ss = mcps_http_sess_new(sv, tok);
	} else if ((ss = mcps_http_session_of(sv, req, tok)) == NULL)
		return;
	if (m->kind != JRPC_REQUEST) {
		mcps_conn_handle(ss->conn, m);
		httpd_reply_text(req, 202, "Accepted", NULL, NULL);
		return;
	}
	p = xcalloc(1, sizeof *p);
	p->req_id = json_deep_copy(m->id);
	p->req = req;
	p->sse_ok = mcps_http_accepts(req, "text/event-stream");
	TAILQ_INSERT_TAIL(&ss->pending, p, entry);
	mcps_conn_handle(ss->conn, m);
	if (strcmp(m->method, "initialize") == 0 &&
	    !mcps_conn_initialized(ss->conn))
		mcps_http_sess_free(ss);
}

static void
mcps_http_post(struct mcps_http *sv, struct evhttp_request *req,
    const struct httpd_client *tok)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(
	    req), "Content-Type");
	struct jrpc_msg m;
	size_t len = evbuffer_get_length(in);
	char err[256], *body;
	int code;

	if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0) {
		mcps_http_error(req, 415, "Unsupported Media Type",
		    JRPC_INVALID_REQUEST, "Content-Type must be "
		    "application/json");
		return;
	}
	if (!mcps_http_accepts(req, "application/json") &&
	    !mcps_http_accepts(req, "text/event-stream")) {
		mcps_http_error(req, 406, "Not Acceptable",
		    JRPC_INVALID_REQUEST,
		    "Accept must allow application/json and "
		    "text/event-stream");
		return;
	}
	body = xmalloc(len + 1);
	evbuffer_remove(in, body, len);
	body[len] = '\0';
	if (jrpc_parse(body, len, &m, &code, err, sizeof err) != 0) {
		free(body);
		mcps_http_error(req, 400, "Bad Request", code, err);
		return;
	}
	free(body);
	mcps_http_post_msg(sv, req, &m, tok);
	jrpc_msg_clear(&m);
}

static void
mcps_http_get(struct mcps_http *sv, struct evhttp_request *req,
    const struct httpd_client *tok)
{
	struct mcps_http_sess *ss;

	if (!mcps_http_accepts(req, "text/event-stream")) {
		mcps_http_error(req, 406, "Not Acceptable",
		    JRPC_INVALID_REQUEST,
		    "GET /mcp opens an event stream: Accept text/event-stream");
		return;
	}
	if ((ss = mcps_http_session_of(sv, req, tok)) == NULL)
		return;
	/* A stream whose client left was detached from its connection by
	   libevent: end it (that frees it) and take the new one. */
	if (ss->stream != NULL &&
	    evhttp_request_get_connection(ss->stream) == NULL) {
		evhttp_send_reply_end(ss->stream);
		ss->stream = NULL;
	}
	if (ss->stream != NULL) {
		mcps_http_error(req, 409, "Conflict", JRPC_INVALID_REQUEST,
		    "this session already has a stream open");
		return;
	}
	ss->stream = req;
	mcps_http_sse_start(req, ss->id);
}

void
mcps_http_cb(struct evhttp_request *req, const struct httpd_client *tok,
    void *arg)
{
	struct mcps_http *sv = arg;
	struct mcps_http_sess *ss;

	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_POST:
		mcps_http_post(sv, req, tok);
		break;
	case EVHTTP_REQ_GET:
		mcps_http_get(sv, req, tok);
		break;
	case EVHTTP_REQ_DELETE:
		if ((ss = mcps_http_session_of(sv, req, tok)) != NULL) {
			mcps_http_sess_free(ss);
			httpd_reply_text(req, 200, "OK", NULL, NULL);
		}
		break;
	default:
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "GET, POST, DELETE");
		mcps_http_error(req, 405, "Method Not Allowed",
		    JRPC_INVALID_REQUEST, "use POST, GET or DELETE");
	}
}

void
mcps_http_refuse(struct evhttp_request *req, int status, const char *reason,
    const char *message)
{
	mcps_http_error(req, status, reason, JRPC_INVALID_REQUEST, message);
}

struct mcps_http *
mcps_http_new(struct mcps *srv, struct event_base *base, struct httpd *guard,
    const struct mcps_http_opts *o)
{
	struct mcps_http *sv = xcalloc(1, sizeof *sv);
	struct timeval tv = { MCPS_HTTP_SWEEP_S, 0 };

	sv->srv = srv;
	sv->guard = guard;
	sv->max_output = o->max_output;
	sv->max_sessions = o->max_sessions;
	sv->idle_s = o->idle_s;
	TAILQ_INIT(&sv->sessions);
	sv->sweep = event_new(base, -1, EV_PERSIST, mcps_http_sweep_cb, sv);
	event_add(sv->sweep, &tv);
	return sv;
}

void
mcps_http_free(struct mcps_http *sv)
{
	struct mcps_http_sess *ss;

	if (sv == NULL)
		return;
	while ((ss = TAILQ_FIRST(&sv->sessions)) != NULL)
		mcps_http_sess_free(ss);
	event_free(sv->sweep);
	free(sv);
}
