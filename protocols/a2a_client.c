/*
 * a2a_client.c: one exchange with a remote A2A agent, v1.0 or v0.3
 * (a2a_client.h, ../shared/specs/A2A.md).
 *
 * The steps: GET the card, POST the message (a JSON answer, or an SSE
 * stream whose data lines are JSON-RPC answers), GetTask while the task
 * is not terminal (a resume of an exchange whose task was recorded only
 * asks GetTask).  libcurl calls on_data and on_done from inside its own
 * callbacks, where no request may be started: every next step is run
 * from the step event on the loop.
 */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "protocols/a2a_client.h"
#include "protocols/sse.h"
#include "runtime/http.h"
#include "runtime/util.h"
#include "runtime/wire.h"

#define A2AC_MAX_REDIRECTS	5
#define A2AC_MAX_HEADERS	40
#define A2AC_MAX_SKILLS		64	/* kept of a card */
#define A2AC_TASK_NOT_FOUND	-32001	/* TaskNotFoundError, both versions */

enum a2ac_phase { PH_CARD, PH_SEND, PH_POLL, PH_CANCEL, PH_DONE };

struct a2ac {
	struct a2ac_opts	 o;
	struct http_req		*req;
	struct event		*step;
	enum a2ac_phase		 phase;
	char			*agent, *url, *card_url, *rpc_url;
	char			*body;		/* of the request in flight */
	char			*hdrs[A2AC_MAX_HEADERS + 4];
	char			 host[256];
	char			*text, *msgid, *ctxid;
	json_t			*data;
	int			 v1, streaming, sse_mode, redirects;
	int			 stream_end;	/* a terminal event came */
	int			 resuming;	/* asking for a recorded task,
						   not answered yet */
	json_int_t		 rpc_code;	/* of the last error answer */
	char			*told;		/* the task id given to
						   on_task */
	double			 poll_s;
	struct sse		*sse;
	char			*acc;		/* a JSON answer so far */
	size_t			 nacc;
	json_int_t		 rid;
	json_t			*card;		/* normalised */
	json_t			*task;		/* {id, contextId, state,
						   message} */
	json_t			*artifacts;	/* normalised */
	json_t			*message;	/* a direct answer */
	json_t			*err;		/* the end's error */
	char			*cancel_kind, *cancel_msg;
	char			 ferr[1024];	/* a failure seen */
	const char		*fkind;
};

static void a2ac_step_cb(evutil_socket_t, short, void *);

static void
a2ac_ferr(struct a2ac *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A failure's message into ferr, after "A2A agent AGENT: ". */
static void
a2ac_ferr(struct a2ac *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(c->ferr, sizeof c->ferr, "A2A agent %.200s: ", c->agent);
	va_start(ap, fmt);
	vsnprintf(c->ferr + n, sizeof c->ferr - (size_t)n, fmt, ap);
	va_end(ap);
}

int
a2a_url_host(const char *url, char *host, size_t hostlen)
{
	const char *p, *e;
	size_t n, i;

	if (strncasecmp(url, "http://", 7) == 0)
		p = url + 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		p = url + 8;
	else
		return -1;
	if (*p == '[') {
		e = strchr(p, ']');
		if (e == NULL)
			return -1;
		e++;
	} else
		e = p + strcspn(p, ":/?#");
	n = (size_t)(e - p);
	if (n == 0 || n >= hostlen || memchr(p, '@', strcspn(p, "/?#")))
		return -1;
	for (i = 0; i < n; i++)
		host[i] = (char)tolower((unsigned char)p[i]);
	host[n] = '\0';
	return 0;
}

const char *
a2a_state_norm(const char *s)
{
	static const char *const names[] = { "submitted", "working",
	    "input-required", "completed", "canceled", "failed", "rejected",
	    "auth-required" };
	char buf[40];
	size_t i, n;

	if (s == NULL)
		return "unknown";
	if (strncmp(s, "TASK_STATE_", 11) == 0)
		s += 11;
	n = strlen(s);
	if (n >= sizeof buf)
		return "unknown";
	for (i = 0; i <= n; i++)
		buf[i] = s[i] == '_' ? '-' :
		    (char)tolower((unsigned char)s[i]);
	if (strcmp(buf, "cancelled") == 0)
		return "canceled";
	for (i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(buf, names[i]) == 0)
			return names[i];
	return "unknown";
}

int
a2a_state_terminal(const char *s)
{
	return strcmp(s, "completed") == 0 || strcmp(s, "canceled") == 0 ||
	    strcmp(s, "failed") == 0 || strcmp(s, "rejected") == 0;
}

/* Whether the state stops the exchange: terminal, or the agent asks. */
static int
a2ac_state_final(const char *s)
{
	return a2a_state_terminal(s) || strcmp(s, "input-required") == 0 ||
	    strcmp(s, "auth-required") == 0;
}

/* A part of either version, normalised; NULL when it is unknown. */
static json_t *
a2ac_part(json_t *p)
{
	json_t *f, *out;
	const char *k = json_string_value(json_object_get(p, "kind"));

	if (json_is_string(json_object_get(p, "text")))
		return json_pack("{s:O}", "text", json_object_get(p, "text"));
	if (json_object_get(p, "data") != NULL)
		return json_pack("{s:O}", "data", json_object_get(p, "data"));
	f = k != NULL && strcmp(k, "file") == 0 ? json_object_get(p, "file") :
	    p;
	if (!json_is_object(f))
		return NULL;
	out = json_object();
	if (json_is_string(json_object_get(f, "raw")))
		json_object_set(out, "bytes", json_object_get(f, "raw"));
	else if (json_is_string(json_object_get(f, "bytes")))
		json_object_set(out, "bytes", json_object_get(f, "bytes"));
	else if (json_is_string(json_object_get(f, "url")))
		json_object_set(out, "uri", json_object_get(f, "url"));
	else if (json_is_string(json_object_get(f, "uri")))
		json_object_set(out, "uri", json_object_get(f, "uri"));
	else {
		json_decref(out);
		return NULL;
	}
	json_object_set(out, "name", json_object_get(f, json_object_get(f,
	    "filename") ? "filename" : "name"));
	json_object_set(out, "mediaType", json_object_get(f, json_object_get(
	    f, "mediaType") ? "mediaType" : "mimeType"));
	if (json_is_null(json_object_get(out, "name")))
		json_object_del(out, "name");
	if (json_is_null(json_object_get(out, "mediaType")))
		json_object_del(out, "mediaType");
	return json_pack("{s:o}", "file", out);
}

json_t *
a2a_parts(json_t *obj)
{
	json_t *out = json_array(), *p, *n;
	size_t i;

	json_array_foreach(json_object_get(obj, "parts"), i, p)
		if ((n = a2ac_part(p)) != NULL)
			json_array_append_new(out, n);
	return out;
}

/* The text parts of parts joined with newlines, a heap string. */
static char *
a2ac_parts_text(json_t *parts)
{
	json_t *p;
	size_t i, n = 0;
	char *s = xstrdup("");
	const char *t;

	json_array_foreach(parts, i, p) {
		if ((t = json_string_value(json_object_get(p, "text"))) ==
		    NULL)
			continue;
		s = xrealloc(s, n + strlen(t) + 2);
		if (n > 0)
			s[n++] = '\n';
		memcpy(s + n, t, strlen(t) + 1);
		n += strlen(t);
	}
	return s;
}

/* Fold an artifact (or an artifact update) into the list. */
static void
a2ac_artifact(struct a2ac *c, json_t *a, int append)
{
	json_t *id = json_object_get(a, "artifactId"), *old, *parts;
	size_t i;

	if (!json_is_object(a))
		return;
	parts = a2a_parts(a);
	json_array_foreach(c->artifacts, i, old) {
		if (!json_is_string(id) || !json_equal(json_object_get(old,
		    "artifactId"), id))
			continue;
		if (append)
			json_array_extend(json_object_get(old, "parts"),
			    parts);
		else
			json_object_set(old, "parts", parts);
		json_decref(parts);
		return;
	}
	json_array_append_new(c->artifacts, json_pack("{s:O, s:O?, s:o}",
	    "artifactId", id ? id : json_null(), "name", json_object_get(a,
	    "name"), "parts", parts));
}

/* Take a task's status (and id, context) into c->task. */
static void
a2ac_status(struct a2ac *c, json_t *status, json_t *id, json_t *ctx)
{
	json_t *m;
	char *txt;

	if (json_is_string(id))
		json_object_set(c->task, "id", id);
	if (json_is_string(ctx))
		json_object_set(c->task, "contextId", ctx);
	if (!json_is_object(status))
		return;
	json_object_set_new(c->task, "state", json_string(a2a_state_norm(
	    json_string_value(json_object_get(status, "state")))));
	m = json_object_get(status, "message");
	json_object_del(c->task, "message");
	if (json_is_object(m)) {
		json_t *parts = a2a_parts(m);

		txt = a2ac_parts_text(parts);
		json_object_set_new(c->task, "message", json_string(txt));
		free(txt);
		json_decref(parts);
	}
}

/* Take a whole Task object of either version. */
static void
a2ac_task(struct a2ac *c, json_t *t)
{
	json_t *a;
	size_t i;

	a2ac_status(c, json_object_get(t, "status"), json_object_get(t, "id"),
	    json_object_get(t, "contextId"));
	if (json_is_array(json_object_get(t, "artifacts"))) {
		json_array_clear(c->artifacts);
		json_array_foreach(json_object_get(t, "artifacts"), i, a)
			a2ac_artifact(c, a, 0);
	}
}

/*
 * One result of SendMessage, GetTask or a stream event, of either
 * version, folded in.  Returns 1 when it ends the exchange's waiting (a
 * direct message, or a final state), 0 to go on, -1 when it is not an
 * A2A object (ferr set).
 */
static int
a2ac_take(struct a2ac *c, json_t *r)
{
	const char *kind = json_string_value(json_object_get(r, "kind"));
	const char *st, *id;
	json_t *v;

	if (!json_is_object(r))
		goto bad;
	if ((v = json_object_get(r, "task")) != NULL ||
	    (kind != NULL && strcmp(kind, "task") == 0) || (kind == NULL &&
	    json_is_string(json_object_get(r, "id")) &&
	    json_is_object(json_object_get(r, "status")))) {
		/* A Task: wrapped (v1.0 answers and events), tagged
		   (v0.3), or bare (v1.0 GetTask). */
		a2ac_task(c, v != NULL ? v : r);
	} else if ((v = json_object_get(r, "message")) != NULL &&
	    json_object_get(v, "parts") != NULL) {
		json_decref(c->message);
		c->message = json_pack("{s:o}", "parts", a2a_parts(v));
		return 1;
	} else if (kind != NULL && strcmp(kind, "message") == 0) {
		json_decref(c->message);
		c->message = json_pack("{s:o}", "parts", a2a_parts(r));
		return 1;
	} else if ((v = json_object_get(r, "statusUpdate")) != NULL ||
	    (kind != NULL && strcmp(kind, "status-update") == 0)) {
		v = v != NULL ? v : r;
		a2ac_status(c, json_object_get(v, "status"), json_object_get(v,
		    "taskId"), json_object_get(v, "contextId"));
		if (c->o.on_progress != NULL)
			c->o.on_progress(c->o.arg, json_pack("{s:s, s:O?}",
			    "state", json_string_value(json_object_get(c->task,
			    "state")), "message", json_object_get(c->task,
			    "message")));
	} else if ((v = json_object_get(r, "artifactUpdate")) != NULL ||
	    (kind != NULL && strcmp(kind, "artifact-update") == 0)) {
		v = v != NULL ? v : r;
		a2ac_status(c, NULL, json_object_get(v, "taskId"),
		    json_object_get(v, "contextId"));
		a2ac_artifact(c, json_object_get(v, "artifact"),
		    json_is_true(json_object_get(v, "append")));
		if (c->o.on_progress != NULL)
			c->o.on_progress(c->o.arg, json_pack("{s:s, s:O?}",
			    "artifact", "update", "artifactId",
			    json_object_get(json_object_get(v, "artifact"),
			    "artifactId")));
	} else
		goto bad;
	st = json_string_value(json_object_get(c->task, "state"));
	if (a2ac_state_final(st != NULL ? st : "unknown"))
		return 1;
	/* A task that goes on: its id, once, for the run to record. */
	id = json_string_value(json_object_get(c->task, "id"));
	if (id != NULL && c->o.on_task != NULL && (c->told == NULL ||
	    strcmp(c->told, id) != 0)) {
		free(c->told);
		c->told = xstrdup(id);
		c->o.on_task(c->o.arg, id, st != NULL ? st : "unknown",
		    c->v1 ? "1.0" : "0.3");
	}
	return 0;
bad:
	c->fkind = FAIL_PROTOCOL;
	a2ac_ferr(c, "the answer is not a task, a message or a task update");
	return -1;
}

/*
 * A JSON-RPC answer's result folded in (a2ac_take); an error answer sets
 * ferr.  Returns as a2ac_take does.
 */
static int
a2ac_rpc(struct a2ac *c, const char *p, size_t n)
{
	json_error_t je;
	json_t *m = json_loadb(p, n, 0, &je), *e;
	int r;

	if (m == NULL) {
		c->fkind = FAIL_PROTOCOL;
		a2ac_ferr(c, "the answer is not JSON: %s", je.text);
		return -1;
	}
	if (json_is_object(e = json_object_get(m, "error"))) {
		c->fkind = FAIL_RPC;
		c->rpc_code = json_integer_value(json_object_get(e, "code"));
		a2ac_ferr(c, "error %lld: %s", (long long)json_integer_value(
		    json_object_get(e, "code")), json_string_value(
		    json_object_get(e, "message")) ? json_string_value(
		    json_object_get(e, "message")) : "(no message)");
		json_decref(m);
		return -1;
	}
	r = a2ac_take(c, json_object_get(m, "result"));
	json_decref(m);
	return r;
}

/* Run the next step from the loop, after delay seconds. */
static void
a2ac_later(struct a2ac *c, double delay)
{
	struct timeval tv;

	tv.tv_sec = (time_t)delay;
	tv.tv_usec = (suseconds_t)((delay - (double)tv.tv_sec) * 1e6);
	evtimer_add(c->step, &tv);
}

/* Fail the exchange from the loop with kind and the message in ferr. */
static void
a2ac_fail_later(struct a2ac *c, const char *kind)
{
	json_decref(c->err);
	c->err = json_pack("{s:s, s:s}", "kind", kind, "message", c->ferr);
	c->phase = PH_DONE;
	a2ac_later(c, 0);
}

/* The SSE stream: every data line is one JSON-RPC answer. */
static int
a2ac_sse_cb(void *arg, const char *event, const char *data, size_t len)
{
	struct a2ac *c = arg;
	int r;

	if (c->stream_end)
		return 0;
	r = a2ac_rpc(c, data, len);
	if (r != 0)
		c->stream_end = r;
	return r < 0 ? -1 : 0;
}

/* Bytes of a 2xx answer; a stream goes through the SSE parser. */
static int
a2ac_data_cb(void *arg, const char *p, size_t n)
{
	struct a2ac *c = arg;
	const char *ct;
	char err[256];

	ct = c->sse_mode ? NULL : http_header(c->req, "Content-Type");
	if (!c->sse_mode && (ct == NULL || strncasecmp(ct,
	    "text/event-stream", 17) != 0)) {
		/* A JSON answer: kept whole (http.c caps its size). */
		c->acc = xrealloc(c->acc, c->nacc + n + 1);
		memcpy(c->acc + c->nacc, p, n);
		c->nacc += n;
		c->acc[c->nacc] = '\0';
		return 0;
	}
	c->sse_mode = 1;
	if (c->sse == NULL)
		c->sse = sse_new(c->o.max_response, a2ac_sse_cb, c);
	if (sse_feed(c->sse, p, n, err, sizeof err) != 0) {
		if (c->stream_end == 0) {
			c->stream_end = -1;
			c->fkind = FAIL_PROTOCOL;
			a2ac_ferr(c, "stream: %s", err);
		}
		return -1;
	}
	return c->stream_end > 0 ? -1 : 0;
}

static void a2ac_http_done_cb(void *, const struct http_result *);

/* POST (body) or GET url with the exchange's headers. */
static int
a2ac_request(struct a2ac *c, const char *url, int stream)
{
	struct http_opts ho;
	char err[256];
	double s = c->o.max_stream_s > 0 ? c->o.max_stream_s :
	    A2AC_MAX_STREAM_S;

	memset(&ho, 0, sizeof ho);
	ho.url = url;
	ho.headers = (const char *const *)c->hdrs;
	ho.body = c->body;
	ho.bodylen = c->body != NULL ? strlen(c->body) : 0;
	ho.total_ms = (long)(s * 1000);
	ho.max_response = c->o.max_response ? c->o.max_response :
	    A2AC_MAX_RESPONSE;
	ho.on_data = stream ? a2ac_data_cb : NULL;
	ho.on_done = a2ac_http_done_cb;
	ho.arg = c;
	c->sse_mode = 0;
	c->stream_end = 0;
	free(c->acc);
	c->acc = NULL;
	c->nacc = 0;
	sse_free(c->sse);
	c->sse = NULL;
	free(c->url);
	c->url = xstrdup(url);
	c->req = http_start(c->o.hc, &ho, err, sizeof err);
	if (c->req == NULL) {
		c->fkind = FAIL_TRANSPORT;
		a2ac_ferr(c, "%s", err);
		return -1;
	}
	return 0;
}

/* The JSON-RPC request body of method, params stolen. */
static void
a2ac_body(struct a2ac *c, const char *method, json_t *params)
{
	json_t *m = json_pack("{s:s, s:I, s:s, s:o}", "jsonrpc", "2.0", "id",
	    ++c->rid, "method", method, "params", params);

	free(c->body);
	c->body = json_dumps(m, JSON_COMPACT);
	json_decref(m);
}

/* The message to send, in the exchange's protocol version. */
static json_t *
a2ac_message(struct a2ac *c)
{
	json_t *parts = json_array(), *m;

	if (c->text != NULL && *c->text != '\0')
		json_array_append_new(parts, c->v1 ? json_pack("{s:s}",
		    "text", c->text) : json_pack("{s:s, s:s}", "kind", "text",
		    "text", c->text));
	if (c->data != NULL)
		json_array_append_new(parts, c->v1 ? json_pack("{s:O}",
		    "data", c->data) : json_pack("{s:s, s:O}", "kind", "data",
		    "data", c->data));
	if (c->v1)
		m = json_pack("{s:s, s:s, s:o}", "messageId", c->msgid, "role",
		    "ROLE_USER", "parts", parts);
	else
		m = json_pack("{s:s, s:s, s:s, s:o}", "kind", "message",
		    "messageId", c->msgid, "role", "user", "parts", parts);
	if (c->ctxid != NULL)
		json_object_set_new(m, "contextId", json_string(c->ctxid));
	return m;
}

/* The headers of every request: ours, then the caller's. */
static void
a2ac_headers(struct a2ac *c, int stream)
{
	size_t i = 0, j;

	for (j = 0; c->hdrs[j] != NULL; j++)
		free(c->hdrs[j]);
	if (c->phase != PH_CARD)
		c->hdrs[i++] = xstrdup("Content-Type: application/json");
	c->hdrs[i++] = xstrdup(stream ? "Accept: text/event-stream" :
	    "Accept: application/json");
	if (c->v1)
		c->hdrs[i++] = xstrdup("A2A-Version: 1.0");
	for (j = 0; c->o.headers != NULL && c->o.headers[j] != NULL &&
	    j < A2AC_MAX_HEADERS; j++)
		c->hdrs[i++] = xstrdup(c->o.headers[j]);
	c->hdrs[i] = NULL;
}

/* Send the message: streamed when the agent streams. */
static int
a2ac_send(struct a2ac *c)
{
	json_t *params = json_pack("{s:o}", "message", a2ac_message(c));

	c->phase = PH_SEND;
	c->redirects = 0;
	if (c->v1)
		json_object_set_new(params, "configuration", json_pack(
		    "{s:[s,s]}", "acceptedOutputModes", "text/plain",
		    "application/json"));
	else
		json_object_set_new(params, "configuration", json_pack(
		    "{s:[s,s], s:b}", "acceptedOutputModes", "text/plain",
		    "application/json", "blocking", 1));
	a2ac_body(c, c->streaming ? (c->v1 ? "SendStreamingMessage" :
	    "message/stream") : (c->v1 ? "SendMessage" : "message/send"),
	    params);
	a2ac_headers(c, c->streaming);
	return a2ac_request(c, c->rpc_url, 1);
}

/* Ask for the task again (GetTask / tasks/get). */
static int
a2ac_poll(struct a2ac *c)
{
	c->phase = PH_POLL;
	c->redirects = 0;
	a2ac_body(c, c->v1 ? "GetTask" : "tasks/get", json_pack("{s:O}",
	    "id", json_object_get(c->task, "id")));
	a2ac_headers(c, 0);
	return a2ac_request(c, c->rpc_url, 0);
}

/*
 * Take a normalised card (stolen): its endpoint must be on the agent's
 * host, whether it was just read or recorded earlier in the run.
 */
static int
a2ac_card_take(struct a2ac *c, json_t *card)
{
	const char *url = json_string_value(json_object_get(card, "url"));
	const char *pv = json_string_value(json_object_get(card, "protocol"));
	char host[256];

	if (url == NULL || pv == NULL || (strcmp(pv, "1.0") != 0 &&
	    strcmp(pv, "0.3") != 0)) {
		c->fkind = FAIL_BAD_TASK;
		a2ac_ferr(c, "the agent card given has no url or no protocol "
		    "\"1.0\" or \"0.3\"");
		json_decref(card);
		return -1;
	}
	if (a2a_url_host(url, host, sizeof host) != 0 ||
	    strcmp(host, c->host) != 0) {
		c->fkind = FAIL_BAD_TASK;
		a2ac_ferr(c, "the card's endpoint %.200s is not on the "
		    "agent's host '%.100s' (refused: the task may reach that "
		    "host only)", url, c->host);
		json_decref(card);
		return -1;
	}
	c->v1 = strcmp(pv, "1.0") == 0;
	free(c->rpc_url);
	c->rpc_url = xstrdup(url);
	c->streaming = json_is_true(json_object_get(card, "streaming"));
	json_decref(c->card);
	c->card = card;
	return 0;
}

/* A string member of o, at most max bytes, or NULL. */
static json_t *
a2ac_str(json_t *o, const char *k, int max)
{
	const char *v = json_string_value(json_object_get(o, k));

	return v != NULL ? json_sprintf("%.*s", max, v) : NULL;
}

/*
 * The card read: pick the JSON-RPC interface of v1.0, else of v0.3,
 * on the agent's host; keep what a run records of it.
 */
static int
a2ac_card(struct a2ac *c, const char *p, size_t n)
{
	json_t *card = json_loadb(p, n, 0, NULL), *ifs, *it, *pick = NULL;
	json_t *norm, *skills, *sk;
	const char *url = NULL, *ver, *bind;
	int v1 = 0;
	size_t i;

	if (!json_is_object(card)) {
		c->fkind = FAIL_PROTOCOL;
		a2ac_ferr(c, "the agent card at %s is not a JSON object",
		    c->card_url);
		json_decref(card);
		return -1;
	}
	ifs = json_object_get(card, "supportedInterfaces");
	for (v1 = 1; v1 >= 0 && pick == NULL; v1--)
		json_array_foreach(ifs, i, it) {
			ver = json_string_value(json_object_get(it,
			    "protocolVersion"));
			bind = json_string_value(json_object_get(it,
			    "protocolBinding"));
			if (bind == NULL || strcasecmp(bind, "JSONRPC") != 0 ||
			    ver == NULL || strncmp(ver, v1 ? "1." : "0.", 2) !=
			    0 || !json_is_string(json_object_get(it, "url")))
				continue;
			pick = it;
			c->v1 = v1;
			break;
		}
	if (pick != NULL)
		url = json_string_value(json_object_get(pick, "url"));
	else if (json_is_string(json_object_get(card, "url"))) {
		/* A v0.3 card: its url speaks preferredTransport. */
		bind = json_string_value(json_object_get(card,
		    "preferredTransport"));
		if (bind == NULL || strcasecmp(bind, "JSONRPC") == 0)
			url = json_string_value(json_object_get(card, "url"));
		c->v1 = 0;
	}
	if (url == NULL) {
		c->fkind = FAIL_PROTOCOL;
		a2ac_ferr(c, "the agent card offers no JSON-RPC interface of "
		    "v1.0 or v0.3");
		json_decref(card);
		return -1;
	}
	skills = json_array();
	json_array_foreach(json_object_get(card, "skills"), i, it) {
		if (i >= A2AC_MAX_SKILLS || !json_is_object(it))
			break;
		sk = json_object();
		json_object_set_new(sk, "id", a2ac_str(it, "id", 200));
		json_object_set_new(sk, "name", a2ac_str(it, "name", 200));
		json_object_set_new(sk, "description", a2ac_str(it,
		    "description", 2000));
		json_array_append_new(skills, sk);
	}
	norm = json_pack("{s:s, s:s, s:b, s:o?, s:o?, s:o?, s:o}",
	    "protocol", c->v1 ? "1.0" : "0.3", "url", url, "streaming",
	    json_is_true(json_object_get(json_object_get(card,
	    "capabilities"), "streaming")), "name", a2ac_str(card, "name",
	    200), "description", a2ac_str(card, "description", 2000),
	    "version", a2ac_str(card, "version", 100), "skills", skills);
	json_decref(card);
	return a2ac_card_take(c, norm);
}

/* A 3xx answer: the next URL when it is on the agent's host. */
static int
a2ac_redirect(struct a2ac *c, const struct http_result *res)
{
	const char *loc = http_header(res->req, "Location");
	char host[256], *next;
	size_t n;

	if (loc == NULL || ++c->redirects > A2AC_MAX_REDIRECTS) {
		c->fkind = FAIL_PROTOCOL;
		a2ac_ferr(c, "HTTP %ld %s", res->status, loc == NULL ?
		    "without a Location" : "after too many redirects");
		return -1;
	}
	if (loc[0] == '/' && loc[1] != '/') {
		/* Same host: keep the scheme and authority of c->url. */
		n = strcspn(strstr(c->url, "://") + 3, "/?#") +
		    (size_t)(strstr(c->url, "://") + 3 - c->url);
		next = xasprintf("%.*s%s", (int)n, c->url, loc);
	} else if (a2a_url_host(loc, host, sizeof host) == 0 &&
	    strcmp(host, c->host) == 0)
		next = xstrdup(loc);
	else {
		c->fkind = FAIL_BAD_TASK;
		a2ac_ferr(c, "a redirect to %.200s was refused: it leaves the "
		    "agent's host '%.100s'", loc, c->host);
		return -1;
	}
	if (a2ac_request(c, next, c->phase != PH_CARD) != 0) {
		free(next);
		return -1;
	}
	free(next);
	return 0;
}

/* The end of an HTTP request (inside libcurl: no new request here). */
static void
a2ac_http_done_cb(void *arg, const struct http_result *res)
{
	struct a2ac *c = arg;
	int r = 0;

	c->req = NULL;
	if (c->phase == PH_CANCEL) {
		a2ac_later(c, 0);
		return;
	}
	if (c->stream_end < 0) {
		a2ac_fail_later(c, c->fkind);
		return;
	}
	if (c->stream_end > 0 || (c->sse_mode && res->err == HTTP_OK)) {
		/* A stream that ended: done, or ask for the task. */
		c->phase = c->stream_end > 0 ? PH_DONE : PH_POLL;
		if (c->phase == PH_POLL && !json_is_string(json_object_get(
		    c->task, "id"))) {
			a2ac_ferr(c, "the stream ended before the task had "
			    "an id");
			a2ac_fail_later(c, FAIL_PROTOCOL);
			return;
		}
		a2ac_later(c, 0);
		return;
	}
	if (res->err != HTTP_OK) {
		a2ac_ferr(c, "%.200s: %.200s", c->url, res->errmsg);
		a2ac_fail_later(c, res->err == HTTP_ETIMEOUT ? FAIL_TIMEOUT :
		    res->err == HTTP_ETOOBIG ? FAIL_TOO_LARGE :
		    FAIL_TRANSPORT);
		return;
	}
	if (res->status >= 300 && res->status < 400) {
		if (a2ac_redirect(c, res) != 0)
			a2ac_fail_later(c, c->fkind);
		return;
	}
	if (res->status != 200) {
		a2ac_ferr(c, "%s answered HTTP %ld%s%.200s", c->url,
		    res->status,
		    res->len > 0 ? ": " : "", res->len > 0 ? res->body : "");
		a2ac_fail_later(c, res->status == 429 ? FAIL_RATE_LIMITED :
		    res->status >= 500 ? FAIL_TRANSPORT : FAIL_RPC);
		return;
	}
	if (c->phase == PH_CARD)
		r = a2ac_card(c, res->body, res->len);
	else {
		r = a2ac_rpc(c, c->acc != NULL ? c->acc : res->body,
		    c->acc != NULL ? c->nacc : res->len);
		if (r < 0 && c->resuming && c->rpc_code ==
		    A2AC_TASK_NOT_FOUND) {
			/* The agent does not know the recorded task (it
			   lost it): the message is sent after all, with
			   the same messageId. */
			c->resuming = 0;
			json_object_clear(c->task);
			c->phase = PH_SEND;
			a2ac_later(c, 0);
			return;
		}
		c->resuming = 0;
		if (r == 0 && !json_is_string(json_object_get(c->task,
		    "id"))) {
			c->fkind = FAIL_PROTOCOL;
			a2ac_ferr(c, "a task without an id");
			r = -1;
		}
	}
	if (r < 0) {
		a2ac_fail_later(c, c->fkind);
		return;
	}
	if (c->phase == PH_CARD) {
		c->phase = c->o.card_only ? PH_DONE : c->resuming ? PH_POLL :
		    PH_SEND;
		a2ac_later(c, 0);
	} else if (r > 0) {
		c->phase = PH_DONE;
		a2ac_later(c, 0);
	} else {
		c->phase = PH_POLL;
		a2ac_later(c, c->poll_s);
		c->poll_s = c->poll_s * 2 > 2.0 ? 2.0 : c->poll_s * 2;
	}
}

/* The normalised answer, or the error it is. */
static void
a2ac_finish(struct a2ac *c)
{
	const char *st = json_string_value(json_object_get(c->task, "state"));
	const char *said = json_string_value(json_object_get(c->task,
	    "message"));
	json_t *res = NULL, *err = c->err, *a;
	char *text = NULL, *t;
	size_t i;

	c->err = NULL;
	if (err == NULL && c->message == NULL && st != NULL &&
	    strcmp(st, "completed") != 0) {
		err = json_pack("{s:s, s:o}", "kind", strcmp(st,
		    "input-required") == 0 ? A2A_FAIL_INPUT : strcmp(st,
		    "auth-required") == 0 ? A2A_FAIL_AUTH : strcmp(st,
		    "canceled") == 0 ? FAIL_CANCELLED : A2A_FAIL_REMOTE,
		    "message", json_sprintf("A2A agent %.200s: task %s %s%s%s",
		    c->agent, json_string_value(json_object_get(c->task,
		    "id")), strcmp(st, "input-required") == 0 ? "needs input"
		    : st, said != NULL && *said ? ": " : "", said ? said :
		    ""));
		json_object_set_new(err, "task", json_deep_copy(c->task));
		json_object_set_new(err, "protocol", json_string(c->v1 ?
		    "1.0" : "0.3"));
	}
	if (err == NULL && c->o.card_only)
		res = json_deep_copy(c->card);
	else if (err == NULL) {
		res = json_pack("{s:s, s:{s:O?, s:O?, s:O, s:O}, s:s, s:O, "
		    "s:O}", "protocol", c->v1 ? "1.0" : "0.3", "agent", "name",
		    json_object_get(c->card, "name"), "version",
		    json_object_get(c->card, "version"), "url",
		    json_object_get(c->card, "url"), "streaming",
		    json_object_get(c->card, "streaming"), "messageId",
		    c->msgid, "task", c->task, "artifacts", c->artifacts);
		if (c->message != NULL) {
			json_object_set(res, "message", c->message);
			text = a2ac_parts_text(json_object_get(c->message,
			    "parts"));
		} else {
			text = xstrdup("");
			json_array_foreach(c->artifacts, i, a) {
				t = a2ac_parts_text(json_object_get(a,
				    "parts"));
				if (*t != '\0') {
					char *j = xasprintf("%s%s%s", text,
					    *text ? "\n" : "", t);
					free(text);
					text = j;
				}
				free(t);
			}
		}
		json_object_set_new(res, "text", json_string(text));
		free(text);
	}
	c->phase = PH_DONE;
	c->o.on_done(c->o.arg, res, err);
	json_decref(res);
	json_decref(err);
}

/* Free an exchange. */
static void
a2ac_free(struct a2ac *c)
{
	size_t j;

	if (c->req != NULL)
		http_cancel(c->req);
	event_free(c->step);
	sse_free(c->sse);
	for (j = 0; c->hdrs[j] != NULL; j++)
		free(c->hdrs[j]);
	free(c->agent);
	free(c->url);
	free(c->card_url);
	free(c->rpc_url);
	free(c->body);
	free(c->acc);
	for (j = 0; c->o.headers != NULL && c->o.headers[j] != NULL; j++)
		free((char *)c->o.headers[j]);
	free((void *)c->o.headers);
	free(c->text);
	free(c->msgid);
	free(c->ctxid);
	free(c->cancel_kind);
	free(c->cancel_msg);
	free(c->told);
	json_decref(c->data);
	json_decref(c->card);
	json_decref(c->task);
	json_decref(c->artifacts);
	json_decref(c->message);
	json_decref(c->err);
	free(c);
}

/* The step event: start what comes next, or end. */
static void
a2ac_step_cb(evutil_socket_t fd, short what, void *arg)
{
	struct a2ac *c = arg;
	int r = 0;

	switch (c->phase) {
	case PH_CARD:
		free(c->body);
		c->body = NULL;
		a2ac_headers(c, 0);
		r = a2ac_request(c, c->card_url, 0);
		break;
	case PH_SEND:
		r = a2ac_send(c);
		break;
	case PH_POLL:
		r = a2ac_poll(c);
		break;
	case PH_CANCEL:
		c->err = json_pack("{s:s, s:s}", "kind", c->cancel_kind,
		    "message", c->cancel_msg);
		/* FALLTHROUGH */
	case PH_DONE:
		a2ac_finish(c);
		a2ac_free(c);
		return;
	}
	if (r != 0) {
		a2ac_finish(c);
		a2ac_free(c);
	}
}

struct a2ac *
a2ac_start(const struct a2ac_opts *o, char *err, size_t errlen)
{
	struct a2ac *c;
	size_t n;

	c = xcalloc(1, sizeof *c);
	if (a2a_url_host(o->agent, c->host, sizeof c->host) != 0) {
		errf(err, errlen, "agent '%.200s' is not an http or https URL",
		    o->agent);
		free(c);
		return NULL;
	}
	c->o = *o;
	c->o.headers = NULL;
	c->agent = xstrdup(o->agent);
	n = strlen(c->agent);
	if (n > 5 && strcmp(c->agent + n - 5, ".json") == 0)
		c->card_url = xstrdup(c->agent);
	else
		c->card_url = xasprintf("%s%s.well-known/agent-card.json",
		    c->agent, c->agent[n - 1] == '/' ? "" : "/");
	/* Headers are copied: the caller's may go once this returns. */
	c->text = o->text != NULL ? xstrdup(o->text) : NULL;
	c->msgid = xstrdup(o->message_id);
	c->ctxid = o->context_id != NULL ? xstrdup(o->context_id) : NULL;
	c->data = o->data != NULL ? json_deep_copy(o->data) : NULL;
	c->task = json_object();
	c->artifacts = json_array();
	c->poll_s = 0.1;
	c->v1 = 1;		/* the card is asked for as 1.0 */
	c->step = evtimer_new(o->base, a2ac_step_cb, c);
	c->phase = PH_CARD;
	c->o.card = NULL;
	c->o.resume_task = NULL;
	if (o->resume_task != NULL && !o->card_only && json_object_set_new(
	    c->task, "id", json_string(o->resume_task)) == 0)
		c->resuming = 1;	/* in flight when the run stopped:
					   asked for, not sent */
	if (o->card != NULL && !o->card_only) {
		/* Recorded earlier in the run: not asked for again. */
		if (a2ac_card_take(c, json_deep_copy(o->card)) != 0) {
			errf(err, errlen, "%s", c->ferr);
			a2ac_free(c);
			return NULL;
		}
		c->phase = c->resuming ? PH_POLL : PH_SEND;
	}
	for (n = 0; o->headers != NULL && o->headers[n] != NULL &&
	    n < A2AC_MAX_HEADERS; n++)
		;
	if (n > 0) {
		char **h = xcalloc(n + 1, sizeof *h);
		size_t i;

		for (i = 0; i < n; i++)
			h[i] = xstrdup(o->headers[i]);
		c->o.headers = (const char *const *)h;
	}
	a2ac_later(c, 0);
	return c;
}

void
a2ac_cancel(struct a2ac *c, const char *kind, const char *msg)
{
	json_t *id = json_object_get(c->task, "id");

	if (c->phase == PH_CANCEL || c->phase == PH_DONE)
		return;
	free(c->cancel_kind);
	free(c->cancel_msg);
	c->cancel_kind = xstrdup(kind);
	c->cancel_msg = xstrdup(msg);
	if (c->req != NULL) {
		http_cancel(c->req);
		c->req = NULL;
	}
	evtimer_del(c->step);
	c->phase = PH_CANCEL;
	if (json_is_string(id) && c->rpc_url != NULL) {
		a2ac_body(c, c->v1 ? "CancelTask" : "tasks/cancel", json_pack(
		    "{s:O}", "id", id));
		a2ac_headers(c, 0);
		if (a2ac_request(c, c->rpc_url, 0) == 0) {
			c->phase = PH_CANCEL;
			return;
		}
	}
	a2ac_later(c, 0);
}
