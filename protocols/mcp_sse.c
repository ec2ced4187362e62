/*
 * mcp_sse.c: the MCP HTTP+SSE transport of protocol revision 2024-11-05,
 * which many servers and host configs ("type": "sse") still use.  A GET
 * of the server's URL opens an event stream; its first event, "endpoint",
 * names the URL to POST messages to (same origin); every answer and
 * server message comes back as a "message" event on the stream, and the
 * POSTs are only acknowledged (202).  The stream ending ends the session.
 *
 * As in mcp_http.c, bytes arrive inside libcurl's callbacks, where no
 * request may be started or cancelled: events are queued there and
 * handled from the loop (mcpe_drain).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sys/queue.h>

#include "runtime/util.h"
#include "protocols/jsonrpc.h"
#include "protocols/mcp_client_int.h"
#include "protocols/sse.h"
#include "runtime/http.h"
#include "runtime/wire.h"

#define MCPE_MAX_ENDPOINT	2048

struct mcpe;

/* A POST of one message: its answer comes on the stream. */
struct mcpe_post {
	struct mcpe		*e;
	struct http_req		*hr;
	int64_t			 rid;		/* request id, 0: none */
	int			 init;		/* the initialize request */
	TAILQ_ENTRY(mcpe_post)	 entry;
};
TAILQ_HEAD(mcpe_post_list, mcpe_post);

struct mcpe {
	struct mcpc		*s;
	struct event_base	*base;
	const char		*name;		/* the session's */
	char			*url;		/* of the stream */
	char			**hdrs;		/* "Name: value" */
	struct http		*hc;
	struct http_req		*get;		/* the stream, NULL: none */
	struct sse		*sse;
	char			*endpoint;	/* where to POST, once known */
	json_t			*outq;		/* [msg, kind, id] before it */
	struct mcpe_post_list	 posts;
	json_t			*inq;		/* events: [type, data] */
	struct event		*drain_ev;
	char			*broken;	/* a deferred failure */
	int			 ended;		/* the stream ended */
};

static void	mcpe_post(struct mcpe *, json_t *, enum mcpc_msg, int64_t);

/* The origin of url ("http://host:port"), its length in url. */
static size_t
mcpe_origin(const char *url)
{
	const char *p = strstr(url, "://");

	if (p == NULL)
		return 0;
	p += 3;
	return (size_t)(p - url) + strcspn(p, "/?#");
}

/*
 * The URL an endpoint event names, resolved against the stream's URL:
 * absolute (same origin only), absolute path, or relative.  NULL with a
 * reason in why when it is unusable.
 */
static char *
mcpe_resolve(struct mcpe *e, const char *data, size_t len, char *why,
    size_t whylen)
{
	size_t o = mcpe_origin(e->url), i, dir;

	if (len == 0 || len > MCPE_MAX_ENDPOINT) {
		snprintf(why, whylen, "sent an endpoint event of %zu bytes",
		    len);
		return NULL;
	}
	for (i = 0; i < len; i++) {
		if ((unsigned char)data[i] <= 0x20 || data[i] == 0x7f) {
			snprintf(why, whylen, "sent an endpoint with a "
			    "control character or blank");
			return NULL;
		}
	}
	if (strncmp(data, "http://", 7) == 0 ||
	    strncmp(data, "https://", 8) == 0) {
		if (mcpe_origin(data) != o || strncmp(data, e->url, o) != 0) {
			snprintf(why, whylen, "named an endpoint on another "
			    "origin: %.*s", (int)(len > 200 ? 200 : len),
			    data);
			return NULL;
		}
		return xasprintf("%.*s", (int)len, data);
	}
	if (data[0] == '/')
		return xasprintf("%.*s%.*s", (int)o, e->url, (int)len, data);
	/* Relative to the stream URL's directory. */
	dir = o + strcspn(e->url + o, "?#");
	while (dir > o && e->url[dir - 1] != '/')
		dir--;
	if (dir == o)
		return xasprintf("%.*s/%.*s", (int)o, e->url, (int)len, data);
	return xasprintf("%.*s%.*s", (int)dir, e->url, (int)len, data);
}

/* Send what waited for the endpoint. */
static void
mcpe_flush(struct mcpe *e)
{
	json_t *q = e->outq, *item;
	size_t i;

	e->outq = json_array();
	json_array_foreach(q, i, item)
		mcpe_post(e, json_array_get(item, 0),
		    (enum mcpc_msg)json_integer_value(json_array_get(item, 1)),
		    json_integer_value(json_array_get(item, 2)));
	json_decref(q);
}

/* Handle the events received, in order (on the loop). */
static void
mcpe_drain(struct mcpe *e)
{
	json_t *ev;
	const char *type, *data;
	char why[300];
	size_t len;

	while (!mcpc_idle(e->s) && json_array_size(e->inq) > 0) {
		ev = json_incref(json_array_get(e->inq, 0));
		json_array_remove(e->inq, 0);
		type = json_string_value(json_array_get(ev, 0));
		data = json_string_value(json_array_get(ev, 1));
		len = json_string_length(json_array_get(ev, 1));
		if (strcmp(type, "endpoint") == 0 && e->endpoint == NULL) {
			if ((e->endpoint = mcpe_resolve(e, data, len, why,
			    sizeof why)) == NULL) {
				json_decref(ev);
				mcpc_stop(e->s, FAIL_PROTOCOL, why);
				return;
			}
			mcpe_flush(e);
		} else if (strcmp(type, "message") == 0 && len > 0) {
			if (mcpc_recv(e->s, data, len) != 0) {
				json_decref(ev);
				return;
			}
		}
		json_decref(ev);
	}
	if (mcpc_idle(e->s))
		return;
	if (e->broken != NULL) {
		snprintf(why, sizeof why, "%s", e->broken);
		mcpc_stop(e->s, e->endpoint == NULL ? FAIL_SERVER_START :
		    FAIL_SERVER_EXITED, why);
	} else if (e->ended)
		mcpc_stop(e->s, e->endpoint == NULL ? FAIL_SERVER_START :
		    FAIL_SERVER_EXITED, "closed its event stream");
}

/* The loop's turn: handle what the libcurl callbacks queued. */
static void
mcpe_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	mcpe_drain(arg);
}

/* An event of the stream (inside libcurl's callback): queue it. */
static int
mcpe_sse_cb(void *arg, const char *event, const char *data, size_t len)
{
	struct mcpe *e = arg;
	json_t *d = json_stringn(data, len);

	if (d == NULL)
		return 0;	/* not UTF-8: not a message of ours */
	json_array_append_new(e->inq, json_pack("[s, o]", event, d));
	event_active(e->drain_ev, EV_TIMEOUT, 0);
	return 0;
}

/* libcurl: bytes of the stream. */
static int
mcpe_data_cb(void *arg, const char *buf, size_t n)
{
	struct mcpe *e = arg;
	char err[256];

	if (sse_feed(e->sse, buf, n, err, sizeof err) != 0) {
		if (e->broken == NULL)
			e->broken = xasprintf("sent a malformed event "
			    "stream: %s", err);
		event_active(e->drain_ev, EV_TIMEOUT, 0);
		return -1;
	}
	return 0;
}

/* libcurl: the stream ended (on the loop). */
static void
mcpe_get_done_cb(void *arg, const struct http_result *res)
{
	struct mcpe *e = arg;
	size_t n = res->len;

	e->get = NULL;		/* freed by http.c after we return */
	if (e->broken == NULL && res->err != HTTP_OK)
		e->broken = xasprintf("%s: %s", e->endpoint == NULL ?
		    "cannot be reached" : "lost its event stream",
		    res->errmsg);
	else if (e->broken == NULL && (res->status < 200 ||
	    res->status >= 300)) {
		while (n > 0 && (res->body[n - 1] == '\n' ||
		    res->body[n - 1] == '\r'))
			n--;
		e->broken = xasprintf("answered HTTP %ld to the event "
		    "stream's GET%s%.*s", res->status, n > 0 ? ": " : "",
		    n > 200 ? 200 : (int)n, res->body);
	}
	e->ended = 1;
	mcpe_drain(e);
}

/* libcurl: a POST ended; a refused one fails its request. */
static void
mcpe_post_done_cb(void *arg, const struct http_result *res)
{
	struct mcpe_post *p = arg;
	struct mcpe *e = p->e;
	char why[400];
	size_t n = res->len;

	TAILQ_REMOVE(&e->posts, p, entry);
	p->hr = NULL;
	if (res->err == HTTP_OK && res->status >= 200 && res->status < 300)
		goto out;
	if (res->err != HTTP_OK)
		snprintf(why, sizeof why, "refused a message: %s",
		    res->errmsg);
	else {
		while (n > 0 && (res->body[n - 1] == '\n' ||
		    res->body[n - 1] == '\r'))
			n--;
		snprintf(why, sizeof why, "answered HTTP %ld to a message%s"
		    "%.*s", res->status, n > 0 ? ": " : "",
		    n > 200 ? 200 : (int)n, res->body);
	}
	if (p->init) {
		if (mcpc_init_pending(e->s, p->rid))
			mcpc_stop(e->s, FAIL_SERVER_START, why);
	} else if (p->rid != 0) {
		char msg[700];

		snprintf(msg, sizeof msg, "MCP server '%s' (%s) %s", e->name,
		    e->url, why);
		mcpc_fail_id(e->s, p->rid, res->status == 429 ?
		    FAIL_RATE_LIMITED : FAIL_TRANSPORT, msg);
	}
out:
	free(p);
}

/* POST msg to the endpoint; before the endpoint is known, queue it. */
static void
mcpe_post(struct mcpe *e, json_t *msg, enum mcpc_msg kind, int64_t id)
{
	const char *hdrs[40];
	struct http_opts o;
	struct mcpe_post *p;
	char err[256], *body;
	size_t n = 0, i, len;

	if (e->endpoint == NULL) {
		json_array_append_new(e->outq, json_pack("[O, i, I]", msg,
		    (int)kind, (json_int_t)id));
		return;
	}
	hdrs[n++] = "Content-Type: application/json";
	for (i = 0; e->hdrs[i] != NULL && n < nitems(hdrs) - 1; i++)
		hdrs[n++] = e->hdrs[i];
	hdrs[n] = NULL;
	p = xcalloc(1, sizeof *p);
	p->e = e;
	p->rid = kind == MCPC_MSG_NOTE ? 0 : id;
	p->init = kind == MCPC_MSG_INIT;
	body = jrpc_dump(msg, &len, 0);
	memset(&o, 0, sizeof o);
	o.url = e->endpoint;
	o.headers = hdrs;
	o.body = body;
	o.bodylen = len;
	o.total_ms = 60000;
	o.on_done = mcpe_post_done_cb;
	o.arg = p;
	TAILQ_INSERT_TAIL(&e->posts, p, entry);
	p->hr = http_start(e->hc, &o, err, sizeof err);
	free(body);
	if (p->hr == NULL) {
		TAILQ_REMOVE(&e->posts, p, entry);
		free(p);
		if (e->broken == NULL)
			e->broken = xasprintf("cannot be reached: %s", err);
		event_active(e->drain_ev, EV_TIMEOUT, 0);
	}
}

/* Send a message of the session. */
static void
mcpe_send(void *arg, json_t *msg, enum mcpc_msg kind, int64_t id)
{
	mcpe_post(arg, msg, kind, id);
}

/* Start a session: open the event stream (libcurl loaded on first use). */
static int
mcpe_start(void *arg, char *err, size_t errlen)
{
	struct mcpe *e = arg;
	const char *hdrs[40];
	struct http_opts o;
	size_t n = 0, i;

	if (e->hc == NULL && (e->hc = http_new(e->base, err, errlen)) == NULL)
		return -1;
	hdrs[n++] = "Accept: text/event-stream";
	for (i = 0; e->hdrs[i] != NULL && n < nitems(hdrs) - 1; i++)
		hdrs[n++] = e->hdrs[i];
	hdrs[n] = NULL;
	e->sse = sse_new(0, mcpe_sse_cb, e);
	e->ended = 0;
	memset(&o, 0, sizeof o);
	o.method = "GET";
	o.url = e->url;
	o.headers = hdrs;
	o.max_response = (size_t)-1 / 2;	/* the session's life */
	o.on_data = mcpe_data_cb;
	o.on_done = mcpe_get_done_cb;
	o.arg = e;
	if ((e->get = http_start(e->hc, &o, err, errlen)) == NULL) {
		sse_free(e->sse);
		e->sse = NULL;
		return -1;
	}
	return 0;
}

/* End the session: close the stream, abandon the POSTs. */
static void
mcpe_stop(void *arg, const char *why, char *msg, size_t msglen)
{
	struct mcpe *e = arg;
	struct mcpe_post *p;

	if (e->get != NULL)
		http_cancel(e->get);
	e->get = NULL;
	while ((p = TAILQ_FIRST(&e->posts)) != NULL) {
		TAILQ_REMOVE(&e->posts, p, entry);
		http_cancel(p->hr);
		free(p);
	}
	sse_free(e->sse);
	e->sse = NULL;
	json_array_clear(e->inq);
	json_array_clear(e->outq);
	free(e->endpoint);
	e->endpoint = NULL;
	free(e->broken);
	e->broken = NULL;
	snprintf(msg, msglen, "MCP server '%s' (%s, HTTP+SSE) %s", e->name,
	    e->url, why != NULL ? why : "closed the connection");
}

/* Check the fields of spec: the same as Streamable HTTP's. */
static int
mcpe_check(json_t *spec, const struct sandbox_profile *sb, char *err,
    size_t errlen)
{
	return mcpc_http_transport.check(spec, sb, err, errlen);
}

/* The transport state for a checked spec. */
static void *
mcpe_init(struct mcpc *s, struct event_base *base, json_t *spec,
    struct sandbox_profile *sb)
{
	json_t *hdrs = json_object_get(spec, "headers"), *v;
	struct mcpe *e = xcalloc(1, sizeof *e);
	const char *k;
	size_t n = 0;

	e->s = s;
	e->base = base;
	e->name = mcpc_name(s);
	e->url = xstrdup(json_string_value(json_object_get(spec, "url")));
	e->hdrs = xcalloc(json_object_size(hdrs) + 1, sizeof *e->hdrs);
	json_object_foreach(hdrs, k, v)
		e->hdrs[n++] = xasprintf("%s: %s", k, json_string_value(v));
	TAILQ_INIT(&e->posts);
	e->inq = json_array();
	e->outq = json_array();
	e->drain_ev = event_new(base, -1, 0, mcpe_drain_cb, e);
	return e;
}

/* Free the transport and the libcurl client. */
static void
mcpe_fini(void *arg)
{
	struct mcpe *e = arg;

	event_free(e->drain_ev);
	http_free(e->hc);
	json_decref(e->inq);
	json_decref(e->outq);
	free(e->url);
	strv_free(e->hdrs);
	free(e);
}

const struct mcpc_transport mcpc_sse_transport = {
	.name = "HTTP+SSE",
	.min_version = "2024-11-05",
	.over = " over HTTP+SSE",
	.check = mcpe_check,
	.init = mcpe_init,
	.fini = mcpe_fini,
	.start = mcpe_start,
	.send = mcpe_send,
	.stop = mcpe_stop,
};
