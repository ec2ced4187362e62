/*
 * cmd_serve.c: `weft serve WORKFLOW...`: MCP Streamable HTTP at /mcp.
 *
 * One evhttp server on the loop that also watches the runs.  Every POST
 * is checked in this order: path, Host, Origin, bearer token, method,
 * content type, size (evhttp refuses bodies over --max-body with 413),
 * JSON-RPC envelope, MCP-Protocol-Version, session.  A request's answer is
 * application/json, or text/event-stream once the request has something to
 * say before its answer (progress, log messages).  GET opens the session's
 * stream for messages not tied to a request; DELETE ends the session.
 *
 * Connections are held to limits (runtime/httpd.c): how many, how long a
 * request may take to arrive, how much output may wait for a client that
 * does not read.  Each bearer token has an identity (a fingerprint) and a
 * role: a session belongs to the token that made it, and a client's
 * token sees only the runs its sessions started (docs/security.md).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "engine/cmd.h"
#include "engine/mcp_server.h"
#include "runtime/util.h"
#include "runtime/httpd.h"

#define SERVE_MAX_HOSTS		16
#define SERVE_SWEEP_S		30
#define SERVE_MAX_TOKENS	1024
#define SERVE_MAX_OUTPUT	(4u * 1024 * 1024)
#define SERVE_ANONYMOUS		"anonymous"
#define SERVE_TOKEN_ENV		"WEFT_SERVE_TOKEN"

struct serve_pending;
struct serve_sess;

/* A bearer token: the secret, and who presents it. */
struct serve_tok {
	char			*secret;
	char			*name;		/* or NULL */
	char			 id[17];	/* sha256 prefix: run owner */
	int			 operator;
};

struct serve {
	struct event_base	*base;
	struct evhttp		*http;
	struct httpd		*guard;
	struct mcps		*srv;
	struct serve_tok	*toks;		/* none: no token required */
	int			 ntoks;
	size_t			 max_output;
	const char		*hosts[SERVE_MAX_HOSTS];
	int			 nhosts;
	const char		*origins[SERVE_MAX_HOSTS];
	int			 norigins;
	int			 check_host;
	int			 max_sessions;
	int			 nsessions;
	double			 idle_s;
	TAILQ_HEAD(, serve_sess) sessions;
};

struct serve_pending {
	TAILQ_ENTRY(serve_pending) entry;
	json_t			*req_id;
	struct evhttp_request	*req;
	int			 sse_ok;
	int			 streaming;
};

struct serve_sess {
	TAILQ_ENTRY(serve_sess)	 entry;
	struct serve		*sv;
	char			 id[65];
	const struct serve_tok	*tok;		/* its maker; NULL: none */
	struct mcps_conn	*conn;
	TAILQ_HEAD(, serve_pending) pending;
	struct evhttp_request	*stream;	/* GET stream or NULL */
	double			 used;
};

struct serve_cli {
	const char		*listen;
	const char		*token_file;
	size_t			 max_body;
	struct httpd_limits	 lim;
	int			 conns_given;
	struct serve		*sv;
};

static void
serve_usage(FILE *f)
{
	fprintf(f,
"usage: weft serve WORKFLOW.lua|DIR... [options]\n"
"\n"
"Serve workflows as MCP tools over Streamable HTTP (MCP revision\n"
"2025-11-25) at http://HOST:PORT/mcp.  Each workflow file (or each *.lua\n"
"file of a directory) is one tool; tools/call runs it as a recorded run.\n"
"Run trajectories are resources weft://runs/{id}.  See docs/mcp.md.\n"
"\n"
"options:\n"
"  --listen HOST:PORT    address (default 127.0.0.1:8765; port 0 picks\n"
"                        one, printed on stderr)\n"
"  --token-file FILE     bearer tokens, one a line: TOKEN [client|operator\n"
"                        [NAME]] (mode 600); also $WEFT_SERVE_TOKEN (one\n"
"                        client token).  Required when HOST is not a\n"
"                        loopback address.  A client sees only the runs\n"
"                        its own sessions started; an operator sees all\n"
"  --allow-host NAME     also accept this Host header (repeatable)\n"
"  --allow-origin URL    also accept this Origin (repeatable)\n"
"  --max-sessions N      sessions at once (default 64)\n"
"  --session-timeout S   end sessions idle for S seconds (default 3600)\n"
"  --max-body BYTES      largest request body (default 4194304)\n"
"  --max-connections N   connections at once, more are answered 503\n"
"                        (default 256, lowered to fit ulimit -n)\n"
"  --idle-timeout S      close a connection with no request for S\n"
"                        seconds (default 60)\n"
"  --header-timeout S    cut a request whose headers take longer than S\n"
"                        seconds from its first byte (default 10)\n"
"  --body-timeout S      cut a request whose body takes longer than S\n"
"                        seconds after its headers (default 60)\n"
"  --write-timeout S     close a connection whose client takes none of\n"
"                        the waiting output for S seconds (default 30)\n"
"  --max-output BYTES    output that may wait for one connection's\n"
"                        client; past it the connection is closed, and a\n"
"                        larger answer is an error (default 4194304)\n"
"  --db PATH             trajectory store (default $WEFT_DB or ./weft.db)\n"
"  --run-workers N       worker processes of each run (default 1)\n"
"  --max-runs N          runs at once; more calls are refused (default 8)\n"
"  -v, --verbose         log calls and closed connections to stderr\n"
"\n"
"Requests whose Host is not the bound loopback name (localhost,\n"
"127.0.0.1, [::1]) or an --allow-host, or whose Origin is present and not\n"
"one of those hosts or an --allow-origin, are refused with 403.\n");
}

/* ---- replies ----------------------------------------------------------- */

static void
serve_text(struct evhttp_request *req, int code, const char *reason,
    const char *ctype, const char *body)
{
	struct evbuffer *b = evbuffer_new();

	if (ctype != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Type", ctype);
	if (body != NULL)
		evbuffer_add(b, body, strlen(body));
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
}

/* An HTTP error carrying a JSON-RPC error object. */
static void
serve_error(struct evhttp_request *req, int http, const char *reason,
    int code, const char *msg)
{
	json_t *e = jrpc_error(json_null(), code, msg, NULL);
	size_t dlen;
	char *s = jrpc_dump(e, &dlen, 0);

	serve_text(req, http, reason, "application/json", s);
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
serve_room(struct serve *sv, struct evhttp_request *req, size_t n)
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

/* One SSE event if there is room for it; serve_room()'s answer. */
static int
serve_sse_event(struct serve *sv, struct evhttp_request *req, json_t *msg)
{
	struct evbuffer *b = evbuffer_new();
	size_t dlen;
	char *s = jrpc_dump(msg, &dlen, 0);
	int room;

	evbuffer_add_printf(b, "event: message\ndata: %s\n\n", s ? s : "{}");
	if ((room = serve_room(sv, req, evbuffer_get_length(b))) == 1)
		evhttp_send_reply_chunk(req, b);
	evbuffer_free(b);
	free(s);
	return room;
}

/* An event that is not an answer: too large for the limit, it ends the
   stream's connection. */
static void
serve_sse_notify(struct serve *sv, struct evhttp_request *req, json_t *msg)
{
	if (serve_sse_event(sv, req, msg) < 0)
		httpd_drop(sv->guard, req, "a message larger than "
		    "--max-output");
}

static void
serve_sse_start(struct evhttp_request *req, const char *sid)
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
serve_too_big(struct serve *sv, json_t *msg)
{
	return jrpc_error(json_deep_copy(json_object_get(msg, "id")),
	    JRPC_INTERNAL_ERROR, "the answer is larger than weft serve "
	    "--max-output allows", json_pack("{s:I}", "max_output",
	    (json_int_t)sv->max_output));
}

/* Complete a pending request with msg (NULL: no answer). */
static void
serve_pending_done(struct serve_sess *ss, struct serve_pending *p,
    json_t *msg)
{
	struct serve *sv = ss->sv;
	json_t *err = NULL;
	size_t dlen;
	char *s;
	int room;

	TAILQ_REMOVE(&ss->pending, p, entry);
	if (p->streaming) {
		if (msg != NULL && serve_sse_event(sv, p->req, msg) < 0) {
			err = serve_too_big(sv, msg);
			serve_sse_notify(sv, p->req, err);
		}
		evhttp_send_reply_end(p->req);
	} else if (msg != NULL) {
		s = jrpc_dump(msg, &dlen, 0);
		if ((room = serve_room(sv, p->req, dlen)) < 0) {
			free(s);
			err = serve_too_big(sv, msg);
			s = jrpc_dump(err, &dlen, 0);
		}
		evhttp_add_header(evhttp_request_get_output_headers(p->req),
		    "Mcp-Session-Id", ss->id);
		if (room == 0)
			serve_text(p->req, 503, "Service Unavailable", NULL,
			    NULL);
		else
			serve_text(p->req, 200, "OK", "application/json", s);
		free(s);
	} else
		serve_text(p->req, 202, "Accepted", NULL, NULL);
	json_decref(err);
	json_decref(p->req_id);
	free(p);
}

/* The session's messages: to the request they belong to, or the GET stream. */
static void
serve_send_cb(void *arg, json_t *msg, const json_t *req_id, int final)
{
	struct serve_sess *ss = arg;
	struct serve_pending *p;

	ss->used = now_mono();
	if (req_id == NULL) {
		if (ss->stream != NULL && msg != NULL)
			serve_sse_notify(ss->sv, ss->stream, msg);
		return;
	}
	TAILQ_FOREACH(p, &ss->pending, entry)
		if (json_equal(p->req_id, req_id))
			break;
	if (p == NULL)
		return;
	if (final) {
		serve_pending_done(ss, p, msg);
		return;
	}
	if (!p->sse_ok || msg == NULL)
		return;
	if (!p->streaming) {
		serve_sse_start(p->req, ss->id);
		p->streaming = 1;
	}
	serve_sse_notify(ss->sv, p->req, msg);
}

/* ---- sessions ---------------------------------------------------------- */

/* A new session of the client presenting tok (NULL: no token). */
static struct serve_sess *
serve_sess_new(struct serve *sv, const struct serve_tok *tok)
{
	struct serve_sess *ss = xcalloc(1, sizeof *ss);

	ss->sv = sv;
	ss->tok = tok;
	random_hex(ss->id, 32);
	TAILQ_INIT(&ss->pending);
	ss->conn = mcps_conn_new(sv->srv, serve_send_cb, ss);
	mcps_conn_set_owner(ss->conn, tok != NULL ? tok->id : SERVE_ANONYMOUS,
	    tok != NULL && tok->operator);
	ss->used = now_mono();
	TAILQ_INSERT_TAIL(&sv->sessions, ss, entry);
	sv->nsessions++;
	return ss;
}

static void
serve_sess_free(struct serve_sess *ss)
{
	struct serve_pending *p;

	mcps_conn_free(ss->conn);
	while ((p = TAILQ_FIRST(&ss->pending)) != NULL)
		serve_pending_done(ss, p, NULL);
	if (ss->stream != NULL)
		evhttp_send_reply_end(ss->stream);
	TAILQ_REMOVE(&ss->sv->sessions, ss, entry);
	ss->sv->nsessions--;
	free(ss);
}

static struct serve_sess *
serve_sess_find(struct serve *sv, const char *id)
{
	struct serve_sess *ss;

	TAILQ_FOREACH(ss, &sv->sessions, entry)
		if (strlen(id) == 64 && strcmp(ss->id, id) == 0)
			return ss;
	return NULL;
}

/* End sessions idle for longer than the timeout. */
static void
serve_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct serve *sv = arg;
	struct serve_sess *ss, *next;
	double now = now_mono();

	(void)fd;
	(void)what;
	TAILQ_FOREACH_SAFE(ss, &sv->sessions, entry, next)
		if (TAILQ_EMPTY(&ss->pending) && now - ss->used > sv->idle_s)
			serve_sess_free(ss);
}

/* ---- checks ------------------------------------------------------------ */

/* The host part of a Host header or URL authority: "[::1]:80" -> "::1". */
static char *
serve_host_part(const char *s)
{
	const char *end;

	if (*s == '[') {
		if ((end = strchr(s, ']')) == NULL)
			return NULL;
		return xstrndup(s + 1, end - s - 1);
	}
	end = strchr(s, ':');
	return end ? xstrndup(s, end - s) : xstrdup(s);
}

static int
serve_host_allowed(struct serve *sv, const char *host)
{
	char *h;
	int i, ok = 0;

	if (host == NULL || (h = serve_host_part(host)) == NULL)
		return 0;
	for (i = 0; i < sv->nhosts && !ok; i++)
		ok = strcasecmp(h, sv->hosts[i]) == 0;
	free(h);
	return ok;
}

static int
serve_origin_allowed(struct serve *sv, const char *origin)
{
	const char *p;
	char *auth, *slash;
	int i, ok;

	for (i = 0; i < sv->norigins; i++)
		if (strcasecmp(origin, sv->origins[i]) == 0)
			return 1;
	if ((p = strstr(origin, "://")) == NULL)
		return 0;
	auth = xstrdup(p + 3);
	if ((slash = strchr(auth, '/')) != NULL)
		*slash = '\0';
	ok = serve_host_allowed(sv, auth);
	free(auth);
	return ok;
}

/* Is s the secret t (in time independent of where they differ)? */
static int
serve_secret_eq(const char *t, const char *s, size_t n)
{
	size_t i, m = strlen(t);
	unsigned char d = 0;

	for (i = 0; i < m; i++)
		d |= (unsigned char)t[i] ^ (unsigned char)(i < n ? s[i] : 0);
	return d == 0 && n == m;
}

/*
 * The token an Authorization header presents: 0 and *tokp (NULL when the
 * server wants none), or -1.  Every token is compared, match or not.
 */
static int
serve_auth(struct serve *sv, const char *auth, const struct serve_tok **tokp)
{
	const struct serve_tok *found = NULL;
	size_t n;
	int i;

	*tokp = NULL;
	if (sv->ntoks == 0)
		return 0;
	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
		return -1;
	auth += 7;
	n = strlen(auth);
	for (i = 0; i < sv->ntoks; i++)
		if (serve_secret_eq(sv->toks[i].secret, auth, n))
			found = &sv->toks[i];
	*tokp = found;
	return found != NULL ? 0 : -1;
}

/*
 * Host, Origin, token: 0 if the request may go on (*tokp: the token it
 * presents), else answered.
 */
static int
serve_guard(struct serve *sv, struct evhttp_request *req,
    const struct serve_tok **tokp)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *origin = evhttp_find_header(h, "Origin");

	if (sv->check_host && !serve_host_allowed(sv,
	    evhttp_find_header(h, "Host"))) {
		serve_error(req, 403, "Forbidden", JRPC_INVALID_REQUEST,
		    "Host not allowed (weft serve --allow-host)");
		return -1;
	}
	if (origin != NULL && !serve_origin_allowed(sv, origin)) {
		serve_error(req, 403, "Forbidden", JRPC_INVALID_REQUEST,
		    "Origin not allowed (weft serve --allow-origin)");
		return -1;
	}
	if (serve_auth(sv, evhttp_find_header(h, "Authorization"), tokp) != 0) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "WWW-Authenticate", "Bearer realm=\"weft\"");
		serve_error(req, 401, "Unauthorized", JRPC_INVALID_REQUEST,
		    "a bearer token is required");
		return -1;
	}
	return 0;
}

/* Does the Accept header admit type (absent or star admits all)? */
static int
serve_accepts(struct evhttp_request *req, const char *type)
{
	const char *a = evhttp_find_header(evhttp_request_get_input_headers(
	    req), "Accept");

	return a == NULL || strstr(a, type) != NULL || strstr(a, "*/*") != NULL;
}

/*
 * The session named by the request, or NULL after answering 400/404.  A
 * session made with another token is as unknown as one never made.
 */
static struct serve_sess *
serve_session_of(struct serve *sv, struct evhttp_request *req,
    const struct serve_tok *tok)
{
	const char *id = evhttp_find_header(evhttp_request_get_input_headers(
	    req), "Mcp-Session-Id");
	struct serve_sess *ss;

	if (id == NULL) {
		serve_error(req, 400, "Bad Request", JRPC_INVALID_REQUEST,
		    "Mcp-Session-Id header required (initialize first)");
		return NULL;
	}
	if ((ss = serve_sess_find(sv, id)) == NULL || ss->tok != tok) {
		serve_error(req, 404, "Not Found", JRPC_INVALID_REQUEST,
		    "unknown or expired session");
		return NULL;
	}
	ss->used = now_mono();
	return ss;
}

/* ---- methods ----------------------------------------------------------- */

static void
serve_post_msg(struct serve *sv, struct evhttp_request *req,
    struct jrpc_msg *m, const struct serve_tok *tok)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *ver = evhttp_find_header(h, "MCP-Protocol-Version");
	struct serve_sess *ss;
	struct serve_pending *p;

	if (ver != NULL && !mcps_version_ok(ver)) {
		serve_error(req, 400, "Bad Request", JRPC_INVALID_REQUEST,
		    "unsupported MCP-Protocol-Version");
		return;
	}
	if (m->kind == JRPC_REQUEST && strcmp(m->method, "initialize") == 0 &&
	    evhttp_find_header(h, "Mcp-Session-Id") == NULL) {
		if (sv->nsessions >= sv->max_sessions) {
			serve_error(req, 503, "Service Unavailable",
			    JRPC_INTERNAL_ERROR, "too many sessions "
			    "(weft serve --max-sessions)");
			return;
		}
		ss = serve_sess_new(sv, tok);
	} else if ((ss = serve_session_of(sv, req, tok)) == NULL)
		return;
	if (m->kind != JRPC_REQUEST) {
		mcps_conn_handle(ss->conn, m);
		serve_text(req, 202, "Accepted", NULL, NULL);
		return;
	}
	p = xcalloc(1, sizeof *p);
	p->req_id = json_deep_copy(m->id);
	p->req = req;
	p->sse_ok = serve_accepts(req, "text/event-stream");
	TAILQ_INSERT_TAIL(&ss->pending, p, entry);
	mcps_conn_handle(ss->conn, m);
	if (strcmp(m->method, "initialize") == 0 &&
	    !mcps_conn_initialized(ss->conn))
		serve_sess_free(ss);
}

static void
serve_post(struct serve *sv, struct evhttp_request *req,
    const struct serve_tok *tok)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(
	    req), "Content-Type");
	struct jrpc_msg m;
	size_t len = evbuffer_get_length(in);
	char err[256], *body;
	int code;

	if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0) {
		serve_error(req, 415, "Unsupported Media Type",
		    JRPC_INVALID_REQUEST, "Content-Type must be "
		    "application/json");
		return;
	}
	if (!serve_accepts(req, "application/json") &&
	    !serve_accepts(req, "text/event-stream")) {
		serve_error(req, 406, "Not Acceptable", JRPC_INVALID_REQUEST,
		    "Accept must allow application/json and "
		    "text/event-stream");
		return;
	}
	body = xmalloc(len + 1);
	evbuffer_remove(in, body, len);
	body[len] = '\0';
	if (jrpc_parse(body, len, &m, &code, err, sizeof err) != 0) {
		free(body);
		serve_error(req, 400, "Bad Request", code, err);
		return;
	}
	free(body);
	serve_post_msg(sv, req, &m, tok);
	jrpc_msg_clear(&m);
}

static void
serve_get(struct serve *sv, struct evhttp_request *req,
    const struct serve_tok *tok)
{
	struct serve_sess *ss;

	if (!serve_accepts(req, "text/event-stream")) {
		serve_error(req, 406, "Not Acceptable", JRPC_INVALID_REQUEST,
		    "GET /mcp opens an event stream: Accept text/event-stream");
		return;
	}
	if ((ss = serve_session_of(sv, req, tok)) == NULL)
		return;
	/* A stream whose client left was detached from its connection by
	   libevent: end it (that frees it) and take the new one. */
	if (ss->stream != NULL &&
	    evhttp_request_get_connection(ss->stream) == NULL) {
		evhttp_send_reply_end(ss->stream);
		ss->stream = NULL;
	}
	if (ss->stream != NULL) {
		serve_error(req, 409, "Conflict", JRPC_INVALID_REQUEST,
		    "this session already has a stream open");
		return;
	}
	ss->stream = req;
	serve_sse_start(req, ss->id);
}

static void
serve_mcp_cb(struct evhttp_request *req, void *arg)
{
	struct serve *sv = arg;
	const struct serve_tok *tok;
	struct serve_sess *ss;

	httpd_begin(sv->guard, req);
	if (serve_guard(sv, req, &tok) != 0)
		return;
	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_POST:
		serve_post(sv, req, tok);
		break;
	case EVHTTP_REQ_GET:
		serve_get(sv, req, tok);
		break;
	case EVHTTP_REQ_DELETE:
		if ((ss = serve_session_of(sv, req, tok)) != NULL) {
			serve_sess_free(ss);
			serve_text(req, 200, "OK", NULL, NULL);
		}
		break;
	default:
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "GET, POST, DELETE");
		serve_error(req, 405, "Method Not Allowed",
		    JRPC_INVALID_REQUEST, "use POST, GET or DELETE");
	}
}

static void
serve_other_cb(struct evhttp_request *req, void *arg)
{
	struct serve *sv = arg;
	const struct serve_tok *tok;

	httpd_begin(sv->guard, req);
	if (serve_guard(sv, req, &tok) != 0)
		return;
	serve_text(req, 404, "Not Found", "text/plain", "weft serves MCP at "
	    "/mcp\n");
}

/* ---- setup ------------------------------------------------------------- */

enum {
	OPT_CONNS = 256,
	OPT_IDLE,
	OPT_HEADER,
	OPT_BODY,
	OPT_WRITE,
	OPT_OUTPUT
};

/* A number of seconds in (0, one week], or -1 after saying what is wrong. */
static int
serve_secs(const char *arg, const char *opt, double *out)
{
	char *end;
	double v = strtod(arg, &end);

	if (end == arg || *end != '\0' || !(v > 0 && v <= 7 * 86400)) {
		fprintf(stderr, "weft: %s wants seconds, more than 0 and at "
		    "most 604800 (got '%s')\n", opt, arg);
		return -1;
	}
	*out = v;
	return 0;
}

static int
serve_opt_cb(int ch, const char *arg, void *cbarg)
{
	struct serve_cli *cl = cbarg;
	struct serve *sv = cl->sv;
	unsigned long long v;
	char *end;

	switch (ch) {
	case 'L':
		cl->listen = arg;
		return 0;
	case 'T':
		cl->token_file = arg;
		return 0;
	case 'H':
	case 'O':
		if ((ch == 'H' ? sv->nhosts : sv->norigins) >=
		    SERVE_MAX_HOSTS - 4) {
			fprintf(stderr, "weft: too many --allow-host or "
			    "--allow-origin\n");
			return -1;
		}
		if (ch == 'H')
			sv->hosts[sv->nhosts++] = arg;
		else
			sv->origins[sv->norigins++] = arg;
		return 0;
	case 'S':
		sv->max_sessions = atoi(arg);
		return sv->max_sessions >= 1 && sv->max_sessions <= 100000 ?
		    0 : (fprintf(stderr, "weft: --max-sessions must be "
		    "1..100000\n"), -1);
	case 'I':
		sv->idle_s = atof(arg);
		return sv->idle_s >= 1 ? 0 : (fprintf(stderr, "weft: "
		    "--session-timeout must be at least 1\n"), -1);
	case 'B':
		cl->max_body = strtoul(arg, NULL, 10);
		return cl->max_body >= 1024 ? 0 : (fprintf(stderr, "weft: "
		    "--max-body must be at least 1024\n"), -1);
	case OPT_CONNS:
		cl->lim.max_conns = atoi(arg);
		cl->conns_given = 1;
		return cl->lim.max_conns >= 1 && cl->lim.max_conns <= 1000000 ?
		    0 : (fprintf(stderr, "weft: --max-connections must be "
		    "1..1000000\n"), -1);
	case OPT_IDLE:
		return serve_secs(arg, "--idle-timeout", &cl->lim.idle_s);
	case OPT_HEADER:
		return serve_secs(arg, "--header-timeout", &cl->lim.header_s);
	case OPT_BODY:
		return serve_secs(arg, "--body-timeout", &cl->lim.body_s);
	case OPT_WRITE:
		return serve_secs(arg, "--write-timeout", &cl->lim.write_s);
	case OPT_OUTPUT:
		v = strtoull(arg, &end, 10);
		if (end == arg || *end != '\0' || v < 65536 ||
		    v > (1ull << 32)) {
			fprintf(stderr, "weft: --max-output must be "
			    "65536..%llu bytes\n", 1ull << 32);
			return -1;
		}
		sv->max_output = (size_t)v;
		return 0;
	}
	return -1;
}

/*
 * Erase $WEFT_SERVE_TOKEN from this process.  unsetenv() only drops the
 * pointer: the bytes stay in the environment block the kernel set up,
 * which /proc/PID/environ shows to anyone who may read the process's
 * memory.  So the value is zeroed where it lies, then the variable goes.
 */
static void
serve_scrub_env(void)
{
	extern char **environ;
	size_t n = strlen(SERVE_TOKEN_ENV "=");
	char **e;

	for (e = environ; e != NULL && *e != NULL; e++)
		if (strncmp(*e, SERVE_TOKEN_ENV "=", n) == 0)
			explicit_bzero(*e + n, strlen(*e + n));
	/* Runs are children: they need not know the server's secret. */
	unsetenv(SERVE_TOKEN_ENV);
}

/* Add a token; -1 after saying why not (the secret is never shown). */
static int
serve_add_token(struct serve *sv, const char *where, const char *secret,
    const char *role, const char *name)
{
	struct serve_tok *t;
	char hex[65];
	const char *c;
	int i;

	if (strlen(secret) < 16) {
		fprintf(stderr, "weft: %s: a bearer token must be at least 16 "
		    "characters\n", where);
		return -1;
	}
	for (c = secret; *c != '\0'; c++)
		if (*c < 0x21 || *c > 0x7e) {
			fprintf(stderr, "weft: %s: a bearer token is printable "
			    "ASCII without spaces\n", where);
			return -1;
		}
	if (strcmp(role, "client") != 0 && strcmp(role, "operator") != 0) {
		fprintf(stderr, "weft: %s: role '%s': 'client' or "
		    "'operator'\n", where, role);
		return -1;
	}
	if (name != NULL && strlen(name) > 64) {
		fprintf(stderr, "weft: %s: a name is at most 64 characters\n",
		    where);
		return -1;
	}
	for (i = 0; i < sv->ntoks; i++)
		if (strcmp(sv->toks[i].secret, secret) == 0) {
			fprintf(stderr, "weft: %s: the same token as an "
			    "earlier line\n", where);
			return -1;
		}
	if (sv->ntoks >= SERVE_MAX_TOKENS) {
		fprintf(stderr, "weft: %s: more than %d tokens\n", where,
		    SERVE_MAX_TOKENS);
		return -1;
	}
	sv->toks = xrealloc(sv->toks, (sv->ntoks + 1) * sizeof *sv->toks);
	t = &sv->toks[sv->ntoks++];
	memset(t, 0, sizeof *t);
	t->secret = xstrdup(secret);
	t->name = name != NULL ? xstrdup(name) : NULL;
	t->operator = strcmp(role, "operator") == 0;
	sha256_hex(secret, strlen(secret), hex);
	memcpy(t->id, hex, 16);
	return 0;
}

/* A token file: TOKEN [client|operator [NAME]] a line, # comments. */
static int
serve_parse_tokens(struct serve *sv, const char *file, char *text)
{
	char *line, *next, *f[4], *save, *w, where[PATH_MAX + 32];
	int lineno = 0, nf;

	for (line = text; line != NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		lineno++;
		line[strcspn(line, "\r")] = '\0';
		snprintf(where, sizeof where, "%s:%d", file, lineno);
		nf = 0;
		for (w = strtok_r(line, " \t", &save); w != NULL && nf < 4;
		    w = strtok_r(NULL, " \t", &save))
			f[nf++] = w;
		if (nf == 0 || f[0][0] == '#')
			continue;
		if (nf > 3) {
			fprintf(stderr, "weft: %s: too many fields (TOKEN "
			    "[client|operator [NAME]])\n", where);
			return -1;
		}
		if (serve_add_token(sv, where, f[0], nf > 1 ? f[1] : "client",
		    nf > 2 ? f[2] : NULL) != 0)
			return -1;
	}
	if (sv->ntoks == 0) {
		fprintf(stderr, "weft: --token-file '%s' holds no token\n",
		    file);
		return -1;
	}
	return 0;
}

/* Say so when a token file is open to group or others. */
static void
serve_check_mode(const char *file)
{
	struct stat sb;

	if (stat(file, &sb) != 0 || (sb.st_mode & 077) == 0)
		return;
	fprintf(stderr, "weft: warning: token file '%s' is %s by group or "
	    "others (mode %04o): anyone who can read it can call this "
	    "server; run: chmod 600 '%s'\n", file, sb.st_mode &
	    (S_IRGRP | S_IROTH) ? "readable" : "writable",
	    (unsigned)(sb.st_mode & 07777), file);
}

/* Read the bearer tokens: --token-file, else $WEFT_SERVE_TOKEN. */
static int
serve_load_tokens(struct serve *sv, const char *file)
{
	const char *env = getenv(SERVE_TOKEN_ENV);
	char *t, *copy = NULL;
	int rv = 0;

	if (file == NULL && env != NULL && *env != '\0')
		copy = xstrdup(env);
	serve_scrub_env();
	if (file != NULL) {
		if ((t = read_file(file, NULL)) == NULL) {
			fprintf(stderr, "weft: cannot read --token-file '%s': "
			    "%s\n", file, strerror(errno));
			return -1;
		}
		serve_check_mode(file);
		rv = serve_parse_tokens(sv, file, t);
		explicit_bzero(t, strlen(t));
		free(t);
	} else if (copy != NULL) {
		rv = serve_add_token(sv, "$" SERVE_TOKEN_ENV, copy, "client",
		    SERVE_TOKEN_ENV);
		explicit_bzero(copy, strlen(copy));
		free(copy);
	}
	return rv;
}

/*
 * The connection limit: as given, else the default lowered to what the
 * open-files limit leaves after the store, the bridge and the runs.
 */
static void
serve_fit_conns(struct serve_cli *cl, int max_runs)
{
	long nofile = httpd_nofile(), room;

	if (cl->conns_given || nofile < 0)
		return;
	room = nofile - 24 - 5L * max_runs;
	if (room >= cl->lim.max_conns)
		return;
	cl->lim.max_conns = room > 4 ? (int)room : 4;
	fprintf(stderr, "weft: --max-connections %d: the open files limit is "
	    "%ld (ulimit -n)\n", cl->lim.max_conns, nofile);
}

static int
serve_is_loopback(const char *host)
{
	return strcmp(host, "localhost") == 0 ||
	    strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0;
}

/* Bind; prints the URL.  Returns 0 or -1. */
static int
serve_bind(struct serve *sv, const char *listen, char **hostp)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	const char *colon = strrchr(listen, ':');
	char *host;
	int port;

	if (colon == NULL || (port = atoi(colon + 1)) < 0 || port > 65535) {
		fprintf(stderr, "weft: --listen wants HOST:PORT\n");
		return -1;
	}
	host = serve_host_part(listen);
	if (host == NULL || *host == '\0') {
		free(host);
		fprintf(stderr, "weft: --listen wants HOST:PORT\n");
		return -1;
	}
	if ((bs = evhttp_bind_socket_with_handle(sv->http, host, port)) ==
	    NULL) {
		fprintf(stderr, "weft: cannot listen on %s: %s\n", listen,
		    strerror(errno));
		free(host);
		return -1;
	}
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss,
	    &sl);
	port = ntohs(ss.ss_family == AF_INET6 ?
	    ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port);
	httpd_watch(sv->guard, bs);
	fprintf(stderr, "weft: serving %d workflow(s) at http://%s%s%s:%d/mcp\n",
	    mcps_tool_count(sv->srv), strchr(host, ':') ? "[" : "", host,
	    strchr(host, ':') ? "]" : "", port);
	*hostp = host;
	return 0;
}

static void
serve_term_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

int
cmd_serve(int argc, char **argv)
{
	static const struct option more[] = {
		{ "listen", required_argument, NULL, 'L' },
		{ "token-file", required_argument, NULL, 'T' },
		{ "allow-host", required_argument, NULL, 'H' },
		{ "allow-origin", required_argument, NULL, 'O' },
		{ "max-sessions", required_argument, NULL, 'S' },
		{ "session-timeout", required_argument, NULL, 'I' },
		{ "max-body", required_argument, NULL, 'B' },
		{ "max-connections", required_argument, NULL, OPT_CONNS },
		{ "idle-timeout", required_argument, NULL, OPT_IDLE },
		{ "header-timeout", required_argument, NULL, OPT_HEADER },
		{ "body-timeout", required_argument, NULL, OPT_BODY },
		{ "write-timeout", required_argument, NULL, OPT_WRITE },
		{ "max-output", required_argument, NULL, OPT_OUTPUT },
		{ NULL, 0, NULL, 0 }
	};
	static const struct httpd_limits lim = { "weft", HTTPD_MAX_CONNS,
	    HTTPD_IDLE_S, HTTPD_HEADER_S, HTTPD_BODY_S, HTTPD_WRITE_S,
	    HTTPD_MAX_INPUT, 0 };
	struct serve sv;
	struct serve_cli cl;
	struct mcps_opts o;
	struct serve_sess *ss;
	struct event *sweep = NULL, *term = NULL, *intr = NULL;
	struct timeval tv = { SERVE_SWEEP_S, 0 };
	char err[1024], *exe = NULL, *host = NULL;
	int first, i, rc = WEFT_EXIT_USAGE;

	memset(&sv, 0, sizeof sv);
	memset(&cl, 0, sizeof cl);
	memset(&o, 0, sizeof o);
	o.load_meta = cmd_workflow_meta;
	TAILQ_INIT(&sv.sessions);
	sv.max_sessions = 64;
	sv.idle_s = 3600;
	cl.sv = &sv;
	cl.listen = "127.0.0.1:8765";
	cl.max_body = MCPS_MAX_MESSAGE;
	cl.lim = lim;
	sv.max_output = SERVE_MAX_OUTPUT;
	first = cmd_serve_opts(argc, argv, &o, NULL, more, serve_opt_cb, &cl,
	    serve_usage);
	if (first < 0)
		return first == -1 ? WEFT_EXIT_OK : WEFT_EXIT_USAGE;
	if (first >= argc) {
		fprintf(stderr, "weft serve: which workflows? (weft serve "
		    "FILE.lua|DIR...)\n");
		return WEFT_EXIT_USAGE;
	}
	if (serve_load_tokens(&sv, cl.token_file) != 0)
		goto out;
	cl.lim.verbose = o.verbose;
	serve_fit_conns(&cl, o.max_runs);
	/* A run's trajectory, escaped inside an answer, fits the output. */
	o.max_resource = sv.max_output / 2 - 4096;
	httpd_quiet_libevent();
	if ((exe = cmd_self_exe()) == NULL) {
		fprintf(stderr, "weft: cannot find my own binary\n");
		goto out;
	}
	o.exe = exe;
	signal(SIGPIPE, SIG_IGN);
	sv.base = event_base_new();
	if (mcps_new(sv.base, &o, argv + first, argc - first, &sv.srv, err,
	    sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		goto out;
	}
	sv.http = evhttp_new(sv.base);
	sv.guard = httpd_new(sv.base, sv.http, &cl.lim);
	evhttp_set_max_body_size(sv.http, cl.max_body);
	evhttp_set_max_headers_size(sv.http, 64 * 1024);
	evhttp_set_allowed_methods(sv.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_DELETE | EVHTTP_REQ_PUT | EVHTTP_REQ_OPTIONS |
	    EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD);
	evhttp_set_cb(sv.http, "/mcp", serve_mcp_cb, &sv);
	evhttp_set_gencb(sv.http, serve_other_cb, &sv);
	if ((host = serve_host_part(cl.listen)) != NULL &&
	    !serve_is_loopback(host) && sv.ntoks == 0) {
		fprintf(stderr, "weft: %s is not a loopback address: give a "
		    "bearer token (--token-file or $WEFT_SERVE_TOKEN)\n", host);
		goto out;
	}
	free(host);
	host = NULL;
	if (serve_bind(&sv, cl.listen, &host) != 0)
		goto out;
	/* On loopback, only loopback names (DNS rebinding); elsewhere the
	   token guards, and Host is checked if --allow-host names any. */
	sv.check_host = serve_is_loopback(host) || sv.nhosts > 0;
	if (serve_is_loopback(host)) {
		sv.hosts[sv.nhosts++] = "localhost";
		sv.hosts[sv.nhosts++] = "127.0.0.1";
		sv.hosts[sv.nhosts++] = "::1";
	}
	sv.hosts[sv.nhosts++] = host;
	sweep = event_new(sv.base, -1, EV_PERSIST, serve_sweep_cb, &sv);
	event_add(sweep, &tv);
	term = evsignal_new(sv.base, SIGTERM, serve_term_cb, sv.base);
	intr = evsignal_new(sv.base, SIGINT, serve_term_cb, sv.base);
	event_add(term, NULL);
	event_add(intr, NULL);
	event_base_dispatch(sv.base);
	rc = WEFT_EXIT_OK;
out:
	while ((ss = TAILQ_FIRST(&sv.sessions)) != NULL)
		serve_sess_free(ss);
	if (sv.http != NULL)
		evhttp_free(sv.http);
	httpd_free(sv.guard);
	mcps_free(sv.srv);
	if (sweep != NULL)
		event_free(sweep);
	if (term != NULL)
		event_free(term);
	if (intr != NULL)
		event_free(intr);
	if (sv.base != NULL)
		event_base_free(sv.base);
	free(host);
	for (i = 0; i < sv.ntoks; i++) {
		explicit_bzero(sv.toks[i].secret, strlen(sv.toks[i].secret));
		free(sv.toks[i].secret);
		free(sv.toks[i].name);
	}
	free(sv.toks);
	free(exe);
	return rc;
}
