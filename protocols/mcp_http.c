/*
 * mcp_http.c: the MCP Streamable HTTP transport.  Every message is a
 * POST to the server's endpoint (libcurl multi on the session's loop,
 * runtime/http.h), answered with JSON or an SSE stream (protocols/sse.h);
 * a GET opens the server's own stream once the session is initialised.
 * The session id (Mcp-Session-Id) and protocol version travel in
 * headers; a session the server has forgotten (404) is initialised again
 * and the refused request resent.  HTTP 429 and 5xx fail a call as the
 * server's passing state, other statuses as a wrong request.
 *
 * Bytes arrive inside libcurl's callbacks, where no request may be
 * started or cancelled: messages are queued there and handed to the
 * session from the loop (mcph_drain).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/buffer.h>

#include "runtime/util.h"
#include "protocols/jsonrpc.h"
#include "protocols/mcp_client_int.h"
#include "protocols/sse.h"
#include "runtime/http.h"
#include "runtime/wire.h"

#define MCPH_MAX_SID	256

/* What an exchange carries: a message of the session, or the GET. */
enum post_kind {
	POST_INIT = MCPC_MSG_INIT,
	POST_REQ = MCPC_MSG_REQ,
	POST_NOTE = MCPC_MSG_NOTE,
	POST_GET
};
enum post_type { PT_UNKNOWN, PT_JSON, PT_SSE, PT_OTHER };

struct mcph_post {
	struct mcph		*h;
	struct http_req		*hr;
	enum post_kind		 kind;
	enum post_type		 type;
	int64_t			 rid;		/* request id, 0: none */
	int			 had_sid;	/* sent with a session id */
	struct sse		*sse;
	struct evbuffer		*body;		/* a JSON answer */
	TAILQ_ENTRY(mcph_post)	 entry;
};
TAILQ_HEAD(mcph_post_list, mcph_post);

struct mcph {
	struct mcpc		*s;
	struct event_base	*base;
	const char		*name;		/* the session's */
	char			*url;
	char			**hdrs;		/* "Name: value" */
	struct http		*hc;
	char			*sid;		/* Mcp-Session-Id */
	struct mcph_post_list	 posts;
	json_t			*inq;		/* received, not handled */
	struct event		*drain_ev;
	char			*broken;	/* a deferred failure */
};

static void	mcph_post(struct mcph *, json_t *, enum post_kind, int64_t);

/* Free an exchange, abandoning it if it runs. */
static void
mcph_post_free(struct mcph_post *p)
{
	if (p->hr != NULL)
		http_cancel(p->hr);
	sse_free(p->sse);
	if (p->body != NULL)
		evbuffer_free(p->body);
	free(p);
}

/* Abandon the exchanges of the session (its GET stream too). */
static void
mcph_stop(void *arg, const char *why, char *msg, size_t msglen)
{
	struct mcph *h = arg;
	struct mcph_post *p;

	while ((p = TAILQ_FIRST(&h->posts)) != NULL) {
		TAILQ_REMOVE(&h->posts, p, entry);
		mcph_post_free(p);
	}
	json_array_clear(h->inq);
	free(h->sid);
	h->sid = NULL;
	free(h->broken);
	h->broken = NULL;
	snprintf(msg, msglen, "MCP server '%s' (%s) %s", h->name, h->url,
	    why != NULL ? why : "closed the connection");
}

/* Handle the messages received, in order. */
static void
mcph_drain(struct mcph *h)
{
	json_t *m;
	char why[300];

	if (h->broken != NULL) {
		snprintf(why, sizeof why, "%s", h->broken);
		mcpc_stop(h->s, FAIL_SERVER_EXITED, why);
		return;
	}
	while (!mcpc_idle(h->s) && json_array_size(h->inq) > 0) {
		m = json_incref(json_array_get(h->inq, 0));
		json_array_remove(h->inq, 0);
		if (mcpc_recv(h->s, json_string_value(m),
		    json_string_length(m)) != 0) {
			json_decref(m);
			return;
		}
		json_decref(m);
	}
}

/* The loop's turn: handle what the libcurl callbacks queued. */
static void
mcph_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	mcph_drain(arg);
}

/* Queue a message received inside a libcurl callback. */
static void
mcph_queue(struct mcph *h, const char *data, size_t len)
{
	json_array_append_new(h->inq, json_stringn(data, len));
	event_active(h->drain_ev, EV_TIMEOUT, 0);
}

/* An SSE event of an answer stream: one JSON-RPC message. */
static int
mcph_sse_cb(void *arg, const char *event, const char *data, size_t len)
{
	struct mcph_post *p = arg;

	/* Empty events prime resumable streams; other types are not ours. */
	if (len == 0 || strcmp(event, "message") != 0)
		return 0;
	mcph_queue(p->h, data, len);
	return 0;
}

/* Keep the session id the initialize answer carries. */
static void
mcph_take_sid(struct mcph_post *p)
{
	struct mcph *h = p->h;
	const char *v;
	size_t i;

	if (p->kind != POST_INIT || h->sid != NULL ||
	    (v = http_header(p->hr, "mcp-session-id")) == NULL)
		return;
	for (i = 0; v[i] != '\0'; i++)
		if ((unsigned char)v[i] < 0x21 || (unsigned char)v[i] > 0x7e)
			return;
	if (i > 0 && i <= MCPH_MAX_SID)
		h->sid = xstrdup(v);
}

/* libcurl: bytes of a 2xx answer. */
static int
mcph_data_cb(void *arg, const char *buf, size_t n)
{
	struct mcph_post *p = arg;
	const char *ct;
	char err[256];

	if (p->type == PT_UNKNOWN) {
		mcph_take_sid(p);
		ct = http_header(p->hr, "content-type");
		if (ct != NULL &&
		    strncasecmp(ct, "text/event-stream", 17) == 0) {
			p->type = PT_SSE;
			p->sse = sse_new(0, mcph_sse_cb, p);
		} else
			p->type = ct != NULL && strncasecmp(ct,
			    "application/json", 16) == 0 ? PT_JSON : PT_OTHER;
	}
	if (p->type == PT_SSE) {
		if (sse_feed(p->sse, buf, n, err, sizeof err) != 0) {
			if (p->h->broken == NULL)
				p->h->broken = xasprintf("sent a malformed "
				    "event stream: %s", err);
			event_active(p->h->drain_ev, EV_TIMEOUT, 0);
			return -1;
		}
		return 0;
	}
	if (p->body == NULL)
		p->body = evbuffer_new();
	evbuffer_add(p->body, buf, n);
	return 0;
}

/* Fail the request a POST carried, if it still waits for its answer. */
static void
mcph_post_fail(struct mcph *h, struct mcph_post *p, const char *kind,
    const char *why)
{
	char msg[700];

	snprintf(msg, sizeof msg, "MCP server '%s' (%s) %s", h->name, h->url,
	    why);
	if (p->kind == POST_INIT) {
		if (mcpc_init_pending(h->s, p->rid))
			mcpc_stop(h->s, kind, why);
		return;
	}
	mcpc_fail_id(h->s, p->rid, kind, msg);
}

/*
 * The server no longer knows our session: initialise a new one and send
 * the refused request again (it never ran).  Calls of the old session
 * still streaming go on; they end on their own.
 */
static void
mcph_reinit(struct mcph *h, struct mcph_post *p)
{
	struct mcph_post *g, *next;

	if (!mcpc_requeue(h->s, p->rid))
		return;
	TAILQ_FOREACH_SAFE(g, &h->posts, entry, next) {
		if (g->kind == POST_GET) {
			TAILQ_REMOVE(&h->posts, g, entry);
			mcph_post_free(g);
		}
	}
	free(h->sid);
	h->sid = NULL;
	mcpc_send_init(h->s);
}

/*
 * Whether an answer says our session is unknown: 404 per the spec; the
 * reference servers answer 400 "No valid session ID provided" instead.
 */
static int
mcph_session_gone(const struct mcph_post *p, const struct http_result *res)
{
	if (!p->had_sid)
		return 0;
	if (res->status == 404)
		return 1;
	return res->status == 400 && res->body != NULL &&
	    strcasestr(res->body, "session") != NULL;
}

/* Whether body is a JSON-RPC answer to the POST's request. */
static int
mcph_is_answer(const char *body, size_t len, int64_t rid)
{
	json_t *j, *id;
	int yes;

	if ((j = json_loadb(body, len, 0, NULL)) == NULL)
		return 0;
	id = json_object_get(j, "id");
	yes = json_is_integer(id) && json_integer_value(id) == rid &&
	    (json_object_get(j, "error") != NULL ||
	    json_object_get(j, "result") != NULL);
	json_decref(j);
	return yes;
}

/* An HTTP error status: a JSON-RPC error in the body, or a failure. */
static void
mcph_post_status(struct mcph *h, struct mcph_post *p,
    const struct http_result *res)
{
	char why[400];
	size_t n = res->len;

	if (n > 0 && mcph_is_answer(res->body, n, p->rid)) {
		mcph_queue(h, res->body, n);
		mcph_drain(h);
		if (mcpc_idle(h->s))
			return;
	}
	while (n > 0 && (res->body[n - 1] == '\n' || res->body[n - 1] == '\r'))
		n--;
	snprintf(why, sizeof why, "answered HTTP %ld%s%.*s", res->status,
	    n > 0 ? ": " : "", n > 200 ? 200 : (int)n, res->body);
	/* 429 and 5xx are the server's passing state (retried by default,
	   docs/durability.md); other statuses say the request is wrong. */
	mcph_post_fail(h, p, p->kind == POST_INIT ? FAIL_SERVER_START :
	    res->status == 429 ? FAIL_RATE_LIMITED : res->status >= 500 ?
	    FAIL_TRANSPORT : FAIL_PROTOCOL, why);
}

/* libcurl: an exchange ended (on the loop, outside curl's callbacks). */
static void
mcph_done_cb(void *arg, const struct http_result *res)
{
	struct mcph_post *p = arg;
	struct mcph *h = p->h;
	char why[400];
	size_t len;

	TAILQ_REMOVE(&h->posts, p, entry);
	if (res->status >= 200 && res->status < 300) {
		mcph_take_sid(p);
		if (p->body != NULL &&
		    (len = evbuffer_get_length(p->body)) > 0)
			mcph_queue(h, (const char *)evbuffer_pullup(p->body,
			    -1), len);
	}
	p->hr = NULL;		/* freed by http.c after we return */
	mcph_drain(h);
	if (mcpc_idle(h->s) || p->kind == POST_NOTE || p->kind == POST_GET)
		goto out;
	if (res->err != HTTP_OK) {
		snprintf(why, sizeof why, "%s: %s", p->kind == POST_INIT ?
		    "cannot be reached" : "failed during the call",
		    res->errmsg);
		mcph_post_fail(h, p, p->kind == POST_INIT ? FAIL_SERVER_START :
		    FAIL_TRANSPORT, why);
	} else if (mcph_session_gone(p, res))
		mcph_reinit(h, p);
	else if (res->status < 200 || res->status >= 300)
		mcph_post_status(h, p, res);
	else if (p->type == PT_SSE)
		mcph_post_fail(h, p, FAIL_SERVER_EXITED, "closed the answer "
		    "stream before answering");
	else
		mcph_post_fail(h, p, FAIL_PROTOCOL, p->type == PT_OTHER ?
		    "answered neither JSON nor an event stream" :
		    "answered without a JSON-RPC response");
out:
	mcph_post_free(p);
}

/*
 * POST msg (NULL with POST_GET: open the server's stream) with the
 * session's headers.  A failure to start is reported from the loop.
 */
static void
mcph_post(struct mcph *h, json_t *msg, enum post_kind kind, int64_t rid)
{
	const char *hdrs[80], *version = mcpc_version(h->s), *tp;
	struct http_opts o;
	struct mcph_post *p;
	char sid[300], ver[64], err[256], trace[72], *body = NULL;
	size_t n = 0, i, len = 0;

	p = xcalloc(1, sizeof *p);
	p->h = h;
	p->kind = kind;
	p->rid = rid;
	hdrs[n++] = kind == POST_GET ? "Accept: text/event-stream" :
	    "Accept: application/json, text/event-stream";
	if (kind != POST_GET)
		hdrs[n++] = "Content-Type: application/json";
	if (h->sid != NULL && kind != POST_INIT) {
		snprintf(sid, sizeof sid, "Mcp-Session-Id: %s", h->sid);
		hdrs[n++] = sid;
		p->had_sid = 1;
	}
	if (version != NULL && kind != POST_INIT) {
		snprintf(ver, sizeof ver, "MCP-Protocol-Version: %s", version);
		hdrs[n++] = ver;
	}
	/* The W3C trace context the caller put in the request's _meta. */
	tp = json_string_value(json_object_get(json_object_get(
	    json_object_get(msg, "params"), "_meta"), "traceparent"));
	if (tp != NULL && strlen(tp) == 55 && strspn(tp,
	    "0123456789abcdef-") == 55) {
		snprintf(trace, sizeof trace, "traceparent: %s", tp);
		hdrs[n++] = trace;
	}
	for (i = 0; h->hdrs[i] != NULL && n < nitems(hdrs) - 1; i++)
		hdrs[n++] = h->hdrs[i];
	hdrs[n] = NULL;
	memset(&o, 0, sizeof o);
	o.url = h->url;
	o.headers = hdrs;
	if (msg != NULL) {
		body = jrpc_dump(msg, &len, 0);
		o.body = body;
		o.bodylen = len;
	}
	o.on_data = mcph_data_cb;
	o.on_done = mcph_done_cb;
	o.arg = p;
	TAILQ_INSERT_TAIL(&h->posts, p, entry);
	p->hr = http_start(h->hc, &o, err, sizeof err);
	free(body);
	if (p->hr == NULL) {
		TAILQ_REMOVE(&h->posts, p, entry);
		mcph_post_free(p);
		if (h->broken == NULL)
			h->broken = xasprintf("cannot be reached: %s", err);
		event_active(h->drain_ev, EV_TIMEOUT, 0);
	}
}

/* Send a message of the session: one POST. */
static void
mcph_send(void *arg, json_t *msg, enum mcpc_msg kind, int64_t id)
{
	mcph_post(arg, msg, (enum post_kind)kind, id);
}

/*
 * The session is initialised: open the stream for messages unrelated to
 * a request (list changes, server pings); 405 means the server has none.
 */
static void
mcph_ready(void *arg)
{
	mcph_post(arg, NULL, POST_GET, 0);
}

/* A cancelled request: the notice is what cancels; its stream is no use. */
static void
mcph_abandon(void *arg, int64_t id)
{
	struct mcph *h = arg;
	struct mcph_post *p;

	TAILQ_FOREACH(p, &h->posts, entry) {
		if (p->kind == POST_REQ && p->rid == id) {
			TAILQ_REMOVE(&h->posts, p, entry);
			mcph_post_free(p);
			break;
		}
	}
}

/* Start a session: load libcurl the first time. */
static int
mcph_start(void *arg, char *err, size_t errlen)
{
	struct mcph *h = arg;

	if (h->hc == NULL && (h->hc = http_new(h->base, err, errlen)) == NULL)
		return -1;
	return 0;
}

/* Check the HTTP fields of spec: url, headers (no line breaks). */
static int
mcph_check(json_t *spec, const struct sandbox_profile *sb, char *err,
    size_t errlen)
{
	const char *url = json_string_value(json_object_get(spec, "url"));
	json_t *hdrs = json_object_get(spec, "headers"), *v;
	const char *k;

	if (json_object_get(spec, "command") != NULL) {
		errf(err, errlen, "/server/url: give command or url, not "
		    "both");
		return -1;
	}
	if (sb != NULL) {
		errf(err, errlen, "/server/sandbox: an HTTP server is remote; "
		    "the sandbox applies to command servers only");
		return -1;
	}
	if (url == NULL || (strncmp(url, "http://", 7) != 0 &&
	    strncmp(url, "https://", 8) != 0) || strpbrk(url, " \r\n") !=
	    NULL) {
		errf(err, errlen, "/server/url: must be an http:// or "
		    "https:// URL");
		return -1;
	}
	if (hdrs != NULL && !json_is_object(hdrs)) {
		errf(err, errlen, "/server/headers: must be an object");
		return -1;
	}
	if (json_object_size(hdrs) > 32) {
		errf(err, errlen, "/server/headers: at most 32 headers");
		return -1;
	}
	json_object_foreach(hdrs, k, v) {
		if (!json_is_string(v) || strpbrk(json_string_value(v),
		    "\r\n") != NULL || *k == '\0' || strpbrk(k,
		    ": \t\r\n") != NULL) {
			errf(err, errlen, "/server/headers/%s: must be a "
			    "header name with a one-line string value", k);
			return -1;
		}
	}
	return 0;
}

/* The transport state for a checked spec (sb is NULL: see mcph_check). */
static void *
mcph_init(struct mcpc *s, struct event_base *base, json_t *spec,
    struct sandbox_profile *sb)
{
	json_t *hdrs = json_object_get(spec, "headers"), *v;
	struct mcph *h = xcalloc(1, sizeof *h);
	const char *k;
	size_t n = 0;

	h->s = s;
	h->base = base;
	h->name = mcpc_name(s);
	h->url = xstrdup(json_string_value(json_object_get(spec, "url")));
	h->hdrs = xcalloc(json_object_size(hdrs) + 1, sizeof *h->hdrs);
	json_object_foreach(hdrs, k, v)
		h->hdrs[n++] = xasprintf("%s: %s", k, json_string_value(v));
	TAILQ_INIT(&h->posts);
	h->inq = json_array();
	h->drain_ev = event_new(base, -1, 0, mcph_drain_cb, h);
	return h;
}

/* Free the transport and the libcurl client. */
static void
mcph_fini(void *arg)
{
	struct mcph *h = arg;

	event_free(h->drain_ev);
	http_free(h->hc);
	json_decref(h->inq);
	free(h->url);
	strv_free(h->hdrs);
	free(h);
}

const struct mcpc_transport mcpc_http_transport = {
	.name = "Streamable HTTP",
	/* The older HTTP+SSE transport (2024-11-05) is not supported. */
	.min_version = "2025-03-26",
	.over = " over Streamable HTTP",
	.check = mcph_check,
	.init = mcph_init,
	.fini = mcph_fini,
	.start = mcph_start,
	.send = mcph_send,
	.ready = mcph_ready,
	.abandon = mcph_abandon,
	.stop = mcph_stop,
};
