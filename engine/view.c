/*
 * view.c: the trajectory viewer's routes: the embedded pages and the
 * read-only JSON API on a store (docs/viewer.md).
 *
 * Every answer is read from the store when asked; live streams (server-
 * sent events) look at the store a few times a second for events that
 * committed since the last look, so a run recorded by any process on the
 * same store (weft run, weft serve) is seen as it goes.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "engine/store.h"
#include "engine/view.h"
#include "engine/view_int.h"
#include "runtime/httpd_routes.h"
#include "runtime/util.h"

#define VIEW_PAGE_MAX		20000	/* events or runs in one answer */
#define VIEW_PAGE_DEFAULT	1000
#define VIEW_TICK_MS		250
#define VIEW_CSP "default-src 'none'; script-src 'self'; style-src 'self'; " \
	"img-src 'self' data:; connect-src 'self'; base-uri 'none'; " \
	"form-action 'none'; frame-ancestors 'none'"

struct view_live {
	struct view		*v;
	struct evhttp_request	*req;
	struct event		*tick;
	char			*run;		/* NULL: the runs list */
	int64_t			 after;		/* last seq sent */
	char			*last;		/* runs page last sent */
	struct view_live	*next;
};


/* Headers every answer carries. */
void
view_headers(struct evhttp_request *req, const char *type)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Content-Security-Policy", VIEW_CSP);
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_add_header(h, "Cache-Control", "no-store");
}

/* Answer with a JSON value (taken). */
void
view_json(struct evhttp_request *req, int code, json_t *v)
{
	struct evbuffer *b = evbuffer_new();
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

	view_headers(req, "application/json");
	evbuffer_add(b, s, strlen(s));
	evhttp_send_reply(req, code, code == 200 ? "OK" : code == 404 ?
	    "Not Found" : code == 403 ? "Forbidden" : code == 405 ?
	    "Method Not Allowed" : code == 503 ? "Service Unavailable" :
	    code >= 500 ? "Internal Server Error" : "Bad Request", b);
	evbuffer_free(b);
	free(s);
	json_decref(v);
}

/* Answer {"error": message} with code. */
void
view_error(struct evhttp_request *req, int code, const char *msg)
{
	view_json(req, code, json_pack("{s:s}", "error", msg));
}

/* A GET (or HEAD) from a token allowed to see every run: 0, else answered. */
int
view_check(struct view *v, struct evhttp_request *req,
    const struct httpd_client *who)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);

	if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
		view_error(req, 405, "the viewer is read-only: GET only");
		return -1;
	}
	if (v->operator_only && who != NULL && !who->operator) {
		view_error(req, 403, "the viewer shows every run: it needs a "
		    "token of role operator (docs/security.md)");
		return -1;
	}
	return 0;
}

/* A query parameter (copied into buf), or NULL when absent. */
const char *
view_param(struct evhttp_request *req, const char *name, char *buf,
    size_t len)
{
	const char *q;
	struct evkeyvalq kv;
	const char *val;

	q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	if (q == NULL)
		return NULL;
	TAILQ_INIT(&kv);
	if (evhttp_parse_query_str(q, &kv) != 0)
		return NULL;
	if ((val = evhttp_find_header(&kv, name)) != NULL)
		snprintf(buf, len, "%s", val);
	evhttp_clear_headers(&kv);
	return val != NULL ? buf : NULL;
}

/* A non-negative integer parameter, def when absent; -1 when malformed. */
static long long
view_num(struct evhttp_request *req, const char *name, long long def,
    long long max)
{
	char buf[32], *end;
	long long n;

	if (view_param(req, name, buf, sizeof buf) == NULL)
		return def;
	n = strtoll(buf, &end, 10);
	if (end == buf || *end != '\0' || n < 0)
		return -1;
	return n > max ? max : n;
}

/* Parse a JSON text of the store; NULL stays NULL. */
static json_t *
view_load(const char *s)
{
	json_error_t je;

	return s != NULL ? json_loads(s, JSON_DECODE_ANY, &je) : NULL;
}

/* A run row as the API gives it. */
static json_t *
view_run_json(const struct store_run *r)
{
	return json_pack("{s:s, s:s, s:s?, s:o?, s:s, s:o?, s:s?, s:f, s:f, "
	    "s:I, s:I, s:f, s:o?, s:o?, s:s?}", "id", r->id, "workflow",
	    r->workflow, "workflow_hash", r->workflow_hash, "input",
	    view_load(r->input), "status", r->status, "output",
	    view_load(r->output), "error", r->error, "started", r->started,
	    "ended", r->ended, "steps", (json_int_t)r->steps, "tokens",
	    (json_int_t)r->tokens, "cost_usd", r->cost, "budget",
	    view_load(r->budget), "spend", view_load(r->spend),
	    "parent_run", r->parent_run);
}

/* An event as the API gives it. */
static json_t *
view_event_json(const struct store_event *ev)
{
	return json_pack("{s:I, s:I, s:I, s:s, s:s, s:i, s:f, s:I, s:f, "
	    "s:o?}", "seq", (json_int_t)ev->seq, "span",
	    (json_int_t)ev->span_id, "parent_span",
	    (json_int_t)ev->parent_span, "path", ev->node_path, "kind",
	    ev->kind, "attempt", ev->attempt, "time", ev->time, "tokens",
	    (json_int_t)ev->tokens, "cost", ev->cost, "payload",
	    view_load(ev->payload));
}

/* Add a JSON string of s (NULL: null) to b. */
static void
view_add_str(struct evbuffer *b, const char *s)
{
	json_t *j;
	char *t;

	if (s == NULL) {
		evbuffer_add(b, "null", 4);
		return;
	}
	j = json_string(s);
	t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
	evbuffer_add_printf(b, "%s", t ? t : "\"\"");
	free(t);
	json_decref(j);
}

/* A finite number for JSON. */
static double
view_finite(double v)
{
	return v == v && v < 1e300 && v > -1e300 ? v : 0;
}

/*
 * An event as view_event_json() gives it, written as text into b: the
 * payload is the store's JSON text as it is (weft wrote it), not parsed
 * and written again, so a page of thousands of events costs little.
 */
static void
view_event_text(struct evbuffer *b, const struct store_event *ev)
{
	evbuffer_add_printf(b, "{\"seq\":%lld,\"span\":%lld,"
	    "\"parent_span\":%lld,\"path\":", (long long)ev->seq,
	    (long long)ev->span_id, (long long)ev->parent_span);
	view_add_str(b, ev->node_path);
	evbuffer_add(b, ",\"kind\":", 8);
	view_add_str(b, ev->kind);
	evbuffer_add_printf(b, ",\"attempt\":%d,\"time\":%.17g,"
	    "\"tokens\":%lld,\"cost\":%.17g,\"payload\":", ev->attempt,
	    view_finite(ev->time), (long long)ev->tokens,
	    view_finite(ev->cost));
	if (ev->payload != NULL && *ev->payload != '\0')
		evbuffer_add(b, ev->payload, strlen(ev->payload));
	else
		evbuffer_add(b, "null", 4);
	evbuffer_add(b, "}", 1);
}

struct view_runs {
	const char	*status, *workflow, *q;
	long long	 offset, limit, seen;
	json_t		*list;
};

static int
view_has(const char *hay, const char *needle)
{
	return hay != NULL && strstr(hay, needle) != NULL;
}

static int
view_runs_cb(void *arg, const struct store_run *r)
{
	struct view_runs *w = arg;

	if (w->status != NULL && strcmp(r->status, w->status) != 0)
		return 0;
	if (w->workflow != NULL && !view_has(r->workflow, w->workflow))
		return 0;
	if (w->q != NULL && !view_has(r->id, w->q) && !view_has(r->workflow,
	    w->q) && !view_has(r->error, w->q) && !view_has(r->status, w->q))
		return 0;
	if (w->seen++ < w->offset)
		return 0;
	if ((long long)json_array_size(w->list) < w->limit)
		json_array_append_new(w->list, view_run_json(r));
	return 0;
}

/* The runs page that the filters of req select, or NULL with err. */
static json_t *
view_runs_page(struct view *v, struct evhttp_request *req, const char **err)
{
	struct view_runs w;
	char st[64], wf[512], q[512];
	json_t *out;

	memset(&w, 0, sizeof w);
	w.status = view_param(req, "status", st, sizeof st);
	w.workflow = view_param(req, "workflow", wf, sizeof wf);
	w.q = view_param(req, "q", q, sizeof q);
	w.offset = view_num(req, "offset", 0, 1LL << 40);
	w.limit = view_num(req, "limit", 100, VIEW_PAGE_MAX);
	if (w.offset < 0 || w.limit < 0) {
		*err = "offset and limit want non-negative integers";
		return NULL;
	}
	if (w.status != NULL && *w.status == '\0')
		w.status = NULL;
	if (w.workflow != NULL && *w.workflow == '\0')
		w.workflow = NULL;
	if (w.q != NULL && *w.q == '\0')
		w.q = NULL;
	w.list = json_array();
	if (store_runs_list(v->st, 0, view_runs_cb, &w) != 0) {
		json_decref(w.list);
		*err = store_error(v->st);
		return NULL;
	}
	out = json_pack("{s:o, s:I, s:I}", "runs", w.list, "total",
	    (json_int_t)w.seen, "offset", (json_int_t)w.offset);
	if (w.offset + (long long)json_array_size(w.list) < w.seen)
		json_object_set_new(out, "next_offset", json_integer(w.offset +
		    (json_int_t)json_array_size(w.list)));
	return out;
}

/* GET /api/runs?status=&workflow=&q=&offset=&limit= */
static void
view_runs_route_cb(struct evhttp_request *req,
    const struct httpd_client *who, void *arg)
{
	struct view *v = arg;
	const char *err = NULL;
	json_t *page;

	if (view_check(v, req, who) != 0)
		return;
	if ((page = view_runs_page(v, req, &err)) == NULL)
		view_error(req, 400, err);
	else
		view_json(req, 200, page);
}

static int
view_found_cb(void *arg, const struct store_run *r)
{
	*(json_t **)arg = view_run_json(r);
	return 0;
}

/* The run named by ?id= (found by id or prefix), or NULL after a 4xx. */
json_t *
view_find(struct view *v, struct evhttp_request *req)
{
	char id[128];
	json_t *run = NULL;

	if (view_param(req, "id", id, sizeof id) == NULL || *id == '\0') {
		view_error(req, 400, "which run? (?id=RUN)");
		return NULL;
	}
	if (store_run_find(v->st, id, view_found_cb, &run) != 0) {
		view_error(req, 404, store_error(v->st));
		return NULL;
	}
	return run;
}

struct view_events {
	int64_t		 after, limit, n, last;
	struct evbuffer	*b;
};

static int
view_events_cb(void *arg, const struct store_event *ev)
{
	struct view_events *w = arg;

	if (ev->seq <= w->after)
		return 0;
	if (w->n >= w->limit)
		return 1;
	if (w->n++ > 0)
		evbuffer_add(w->b, ",", 1);
	view_event_text(w->b, ev);
	w->last = ev->seq;
	return 0;
}

/* GET /api/run?id=RUN: the run row and its event count. */
static void
view_run_route_cb(struct evhttp_request *req, const struct httpd_client *who,
    void *arg)
{
	struct view *v = arg;
	json_t *run;

	if (view_check(v, req, who) != 0 || (run = view_find(v, req)) == NULL)
		return;
	view_json(req, 200, json_pack("{s:o, s:I}", "run", run, "events",
	    (json_int_t)store_event_count(v->st, json_string_value(
	    json_object_get(run, "id")))));
}

/* GET /api/events?id=RUN&after=SEQ&limit=N: events after SEQ, in order. */
static void
view_events_route_cb(struct evhttp_request *req,
    const struct httpd_client *who, void *arg)
{
	struct view *v = arg;
	struct view_events w;
	json_t *run;
	int rc;

	if (view_check(v, req, who) != 0 || (run = view_find(v, req)) == NULL)
		return;
	memset(&w, 0, sizeof w);
	w.after = view_num(req, "after", 0, INT64_MAX);
	w.limit = view_num(req, "limit", VIEW_PAGE_DEFAULT, VIEW_PAGE_MAX);
	if (w.after < 0 || w.limit < 0) {
		json_decref(run);
		view_error(req, 400, "after and limit want non-negative "
		    "integers");
		return;
	}
	w.b = evbuffer_new();
	evbuffer_add(w.b, "{\"run\":", 7);
	view_add_str(w.b, json_string_value(json_object_get(run, "id")));
	evbuffer_add(w.b, ",\"events\":[", 11);
	rc = store_events_foreach(v->st, json_string_value(json_object_get(run,
	    "id")), view_events_cb, &w);
	json_decref(run);
	if (rc < 0) {
		evbuffer_free(w.b);
		view_error(req, 500, store_error(v->st));
		return;
	}
	evbuffer_add(w.b, "]", 1);
	if (rc == 1)
		evbuffer_add_printf(w.b, ",\"next_after\":%lld",
		    (long long)w.last);
	evbuffer_add(w.b, "}", 1);
	view_headers(req, "application/json");
	evhttp_send_reply(req, 200, "OK", w.b);
	evbuffer_free(w.b);
}

struct view_state {
	int64_t		 seq;
	json_t		*state;
	json_t		*event;
	json_t		*writes;	/* [{seq, path, key}] */
};

static int
view_state_cb(void *arg, const struct store_event *ev)
{
	struct view_state *w = arg;
	json_t *p, *key, *st;

	if (ev->seq > w->seq)
		return 1;
	json_decref(w->event);
	w->event = view_event_json(ev);
	p = json_object_get(w->event, "payload");
	if (strcmp(ev->kind, "state.write") == 0 &&
	    json_is_string(key = json_object_get(p, "key"))) {
		json_object_set(w->state, json_string_value(key),
		    json_object_get(p, "value") ? json_object_get(p, "value") :
		    json_null());
		json_array_append_new(w->writes, json_pack("{s:I, s:s, s:O}",
		    "seq", (json_int_t)ev->seq, "path", ev->node_path, "key",
		    key));
	} else if (strcmp(ev->kind, "run.end") == 0 &&
	    json_is_object(st = json_object_get(p, "state"))) {
		json_decref(w->state);
		w->state = json_deep_copy(st);
	}
	return 0;
}

/*
 * GET /api/state?id=RUN&seq=N: the state as it stood after event N: the
 * run's input, then each state.write up to N in order (a parallel
 * branch's writes show when they happen; the merged state is recorded at
 * run.end).
 */
static void
view_state_route_cb(struct evhttp_request *req,
    const struct httpd_client *who, void *arg)
{
	struct view *v = arg;
	struct view_state w;
	json_t *run;

	if (view_check(v, req, who) != 0 || (run = view_find(v, req)) == NULL)
		return;
	memset(&w, 0, sizeof w);
	w.seq = view_num(req, "seq", INT64_MAX, INT64_MAX);
	if (w.seq < 0) {
		json_decref(run);
		view_error(req, 400, "seq wants a non-negative integer");
		return;
	}
	w.state = json_is_object(json_object_get(run, "input")) ?
	    json_deep_copy(json_object_get(run, "input")) : json_object();
	w.writes = json_array();
	if (store_events_foreach(v->st, json_string_value(json_object_get(run,
	    "id")), view_state_cb, &w) < 0) {
		json_decref(run);
		json_decref(w.state);
		json_decref(w.writes);
		json_decref(w.event);
		view_error(req, 500, store_error(v->st));
		return;
	}
	view_json(req, 200, json_pack("{s:O, s:I, s:o, s:o, s:o?}", "run",
	    json_object_get(run, "id"), "seq", w.event ? (json_int_t)
	    json_integer_value(json_object_get(w.event, "seq")) : 0, "state",
	    w.state, "writes", w.writes, "event", w.event));
	json_decref(run);
}

/* GET /api/blob?hash=H: a stored payload (model messages), as JSON when
   it is JSON, else as a string. */
static void
view_blob_route_cb(struct evhttp_request *req,
    const struct httpd_client *who, void *arg)
{
	struct view *v = arg;
	char hash[80], *text;
	void *data;
	size_t len, i;
	json_t *val;

	if (view_check(v, req, who) != 0)
		return;
	if (view_param(req, "hash", hash, sizeof hash) == NULL ||
	    strlen(hash) != 64 || strspn(hash, "0123456789abcdef") != 64) {
		view_error(req, 400, "?hash= wants a sha256 in hex");
		return;
	}
	if (store_blob_get(v->st, hash, &data, &len) != 0) {
		view_error(req, 404, "no such blob");
		return;
	}
	text = xmalloc(len + 1);
	memcpy(text, data, len);
	text[len] = '\0';
	free(data);
	for (i = 0; i < len && text[i] != '\0'; i++)
		;
	val = i == len ? view_load(text) : NULL;
	if (val == NULL && (val = json_stringn(text, i)) == NULL)
		val = json_string("(binary data)");
	free(text);
	view_json(req, 200, json_pack("{s:s, s:o}", "hash", hash, "value",
	    val));
}

/* Unlink and free a live stream (its request answered or gone). */
static void
view_live_free(struct view_live *l)
{
	struct view_live **pp;

	for (pp = &l->v->live; *pp != NULL; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	event_free(l->tick);
	free(l->run);
	free(l->last);
	free(l);
}

/* One server-sent event of name with data (a JSON value, taken). */
static void
view_sse(struct view_live *l, const char *name, int64_t id, json_t *data)
{
	struct evbuffer *b = evbuffer_new();
	char *s = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);

	if (id > 0)
		evbuffer_add_printf(b, "id: %lld\n", (long long)id);
	evbuffer_add_printf(b, "event: %s\ndata: %s\n\n", name, s);
	evhttp_send_reply_chunk(l->req, b);
	evbuffer_free(b);
	free(s);
	json_decref(data);
}

static int
view_live_ev_cb(void *arg, const struct store_event *ev)
{
	struct view_live *l = arg;
	struct evbuffer *b;

	if (ev->seq <= l->after)
		return 0;
	b = evbuffer_new();
	evbuffer_add_printf(b, "id: %lld\nevent: event\ndata: ",
	    (long long)ev->seq);
	view_event_text(b, ev);
	evbuffer_add(b, "\n\n", 2);
	evhttp_send_reply_chunk(l->req, b);
	evbuffer_free(b);
	l->after = ev->seq;
	return 0;
}

static int
view_live_status_cb(void *arg, const struct store_run *r)
{
	json_t **run = arg;

	*run = view_run_json(r);
	return 0;
}

/*
 * A live stream's look at the store: a run's new events (then "end" once
 * the run has finished, and the stream closes), or the runs list's first
 * page when it changed.
 */
static void
view_live_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct view_live *l = arg;
	struct timeval tv = { 0, VIEW_TICK_MS * 1000 };
	json_t *run = NULL, *page;
	const char *err;
	char *text;
	int done = 0;

	(void)fd;
	(void)what;
	if (httpd_queued(l->req) == HTTPD_GONE ||
	    httpd_queued(l->req) > 4u * 1024 * 1024) {
		evhttp_send_reply_end(l->req);
		view_live_free(l);
		return;
	}
	if (l->run != NULL) {
		if (store_run_find(l->v->st, l->run, view_live_status_cb,
		    &run) != 0)
			done = 1;
		store_events_foreach(l->v->st, l->run, view_live_ev_cb, l);
		if (run != NULL && strcmp(json_string_value(json_object_get(
		    run, "status")), "running") != 0) {
			view_sse(l, "end", 0, run);
			run = NULL;
			done = 1;
		}
		json_decref(run);
	} else if ((page = view_runs_page(l->v, l->req, &err)) != NULL) {
		text = json_dumps(page, JSON_COMPACT);
		if (l->last == NULL || strcmp(text, l->last) != 0) {
			view_sse(l, "runs", 0, page);
			free(l->last);
			l->last = text;
		} else {
			json_decref(page);
			free(text);
		}
	}
	if (done) {
		evhttp_send_reply_end(l->req);
		view_live_free(l);
		return;
	}
	evtimer_add(l->tick, &tv);
}

/*
 * GET /api/live?id=RUN&after=SEQ: the run's events after SEQ as
 * server-sent events ("event"), as they commit, then "end" with the run
 * row.  Without id: "runs" with the runs page (same filters as
 * /api/runs) each time it changes.
 */
static void
view_live_route_cb(struct evhttp_request *req,
    const struct httpd_client *who, void *arg)
{
	struct view *v = arg;
	struct view_live *l;
	struct evkeyvalq *h;
	json_t *run = NULL;
	long long after;
	char idb[128];

	if (view_check(v, req, who) != 0)
		return;
	after = view_num(req, "after", 0, INT64_MAX);
	if (after < 0) {
		view_error(req, 400, "after wants a non-negative integer");
		return;
	}
	if (view_param(req, "id", idb, sizeof idb) != NULL &&
	    (run = view_find(v, req)) == NULL)
		return;
	l = xcalloc(1, sizeof *l);
	l->v = v;
	l->req = req;
	l->after = after;
	if (run != NULL)
		l->run = xstrdup(json_string_value(json_object_get(run,
		    "id")));
	json_decref(run);
	l->tick = evtimer_new(v->base, view_live_tick_cb, l);
	l->next = v->live;
	v->live = l;
	h = evhttp_request_get_output_headers(req);
	view_headers(req, "text/event-stream");
	evhttp_add_header(h, "X-Accel-Buffering", "no");
	evhttp_send_reply_start(req, 200, "OK");
	view_live_tick_cb(-1, 0, l);
}

/* GET / and the embedded files. */
static void
view_asset_route_cb(struct evhttp_request *req,
    const struct httpd_client *who, void *arg)
{
	const struct view_asset *a = arg;
	struct evbuffer *b;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
	    evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
		view_error(req, 405, "the viewer is read-only: GET only");
		return;
	}
	(void)who;
	b = evbuffer_new();
	view_headers(req, a->type);
	evbuffer_add_reference(b, a->data, a->len, NULL, NULL);
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

struct view *
view_new(struct event_base *base, struct httpd_routes *routes,
    const char *db, int operator_only, char *err, size_t errlen)
{
	struct view *v;
	const struct view_asset *a;

	v = xcalloc(1, sizeof *v);
	if (store_open_read(db, &v->st, err, errlen) != 0) {
		free(v);
		return NULL;
	}
	v->base = base;
	v->guard = httpd_routes_guard(routes);
	v->operator_only = operator_only;
	for (a = view_assets; a->path != NULL; a++) {
		httpd_routes_add(routes, a->path, view_asset_route_cb,
		    (void *)a);
		if (strcmp(a->path, "/index.html") == 0)
			httpd_routes_add(routes, "/", view_asset_route_cb,
			    (void *)a);
	}
	httpd_routes_add(routes, "/api/runs", view_runs_route_cb, v);
	httpd_routes_add(routes, "/api/run", view_run_route_cb, v);
	httpd_routes_add(routes, "/api/events", view_events_route_cb, v);
	httpd_routes_add(routes, "/api/state", view_state_route_cb, v);
	httpd_routes_add(routes, "/api/blob", view_blob_route_cb, v);
	httpd_routes_add(routes, "/api/live", view_live_route_cb, v);
	v->db = xstrdup(db);
	view_tools_add(v, routes);
	return v;
}

void
view_free(struct view *v)
{
	if (v == NULL)
		return;
	while (v->live != NULL) {
		evhttp_send_reply_end(v->live->req);
		view_live_free(v->live);
	}
	view_tools_free(v);
	store_close(v->st);
	free(v->db);
	free(v->golden);
	free(v);
}
