/*
 * serve_runs.c: an MCP tools/call as a recorded weft run in the server's
 * coordinator (engine/exec.h, exec_start).
 *
 * Every run of the server shares one coordinator: its loop (the server's),
 * its store, its task queue and its warm workers; each run has its own Lua
 * state.  At most opts.max_runs run at once; calls past that wait, in the
 * order they came, in an admission queue of opts.max_queued (the client is
 * told by a progress notification), and are refused only when it is full.
 * While a run goes, each commit of the coordinator that recorded events of
 * it (coord_opts.committed) has its new events read from the store and
 * sent as progress notifications and log messages, in words ("writer:
 * calling search/query"); a 100 ms timer also reads them (and weft
 * cancel's requests); the last read happens when it ended, so a fast run
 * still reports every step before its answer.  A run whose client left goes on to its end and stays readable
 * by id; notifications/cancelled ends it as cancelled.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "engine/coord.h"
#include "engine/exec.h"
#include "engine/serve_int.h"
#include "engine/otlp.h"
#include "engine/schema.h"
#include "engine/store.h"
#include "runtime/util.h"

#define RUN_POLL_MS	100

struct serve_run {
	TAILQ_ENTRY(serve_run) entry;
	struct serve	*srv;
	struct mcps_call *call;		/* the tools/call it answers */
	struct serve_tool *tool;
	char		 id[17];
	char		 secret[65];	/* its key to serve_client.c */
	char		*input;		/* JSON text, while it waits */
	struct exec	*x;		/* while it runs */
	int		 waiting;	/* in the admission queue */
	/* Or an A2A task waiting for a slot (serve_admit): told instead. */
	void		(*admit)(void *, int);
	void		*admit_arg;
	int		 cancelled, done;
	int		 cancel_asked;	/* by weft cancel (store request) */
	double		 t0;		/* the call came (now_mono) */
	char		 status[24];	/* how its run ended */
	int64_t		 seen;
	int		 sent;		/* notifications sent by the last poll */
	json_t		*answer;	/* its tool result, once it ended */
	struct event	*answer_ev;
};

static void	run_admit(struct serve *);

/* The session of r's call, NULL if it left (or r has no call: resumed). */
static struct mcps_conn *
run_conn(struct serve_run *r)
{
	return r->call != NULL ? mcps_call_conn(r->call) : NULL;
}

/* The tool name of r, for messages. */
static const char *
run_name(struct serve_run *r)
{
	return r->tool != NULL ? r->tool->name : "(resumed)";
}

/* The string member k of object o, or def. */
static const char *
jstr_or(const json_t *o, const char *k, const char *def)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s != NULL ? s : def;
}

/*
 * What event e says, as a person would write it: "writer: calling
 * search/query", "writer: search/query 3/10: fetching" (the tool's own
 * progress), "writer: done"; a heap string.
 */
static char *
run_event_text(struct serve_run *r, const struct store_event *e)
{
	const char *path = e->node_path != NULL ? e->node_path : "";
	const char *node = strrchr(path, '/'), *k = e->kind, *m;
	json_t *p = e->payload != NULL ? json_loads(e->payload, 0, NULL) :
	    NULL;
	char *text, tail[64] = "";

	node = node != NULL ? node + 1 : *path ? path : run_name(r);
	if (strcmp(k, "run.start") == 0)
		text = xasprintf("%s: run started", run_name(r));
	else if (strcmp(k, "run.end") == 0)
		text = xasprintf("%s: run %s", run_name(r),
		    jstr_or(p, "status", "ended"));
	else if (strcmp(k, "node.start") == 0)
		text = xasprintf("%s: started", node);
	else if (strcmp(k, "node.end") == 0)
		text = xasprintf("%s: %s", node, strcmp(jstr_or(p, "status",
		    ""), "succeeded") == 0 ? "done" : jstr_or(p, "status",
		    "ended"));
	else if (strcmp(k, "tool.call") == 0)
		text = xasprintf("%s: calling %s/%s", node, jstr_or(p,
		    "server", "?"), jstr_or(p, "name", "?"));
	else if (strcmp(k, "tool.list") == 0)
		text = xasprintf("%s: listing the tools of %s", node,
		    jstr_or(p, "server", "?"));
	else if (strcmp(k, "tool.list.result") == 0)
		text = xasprintf("%s: tools listed", node);
	else if (strcmp(k, "token.mint") == 0)
		text = xasprintf("%s: capability token issued", node);
	else if (strcmp(k, "tool.result") == 0)
		text = xasprintf("%s: tool call answered", node);
	else if (strcmp(k, "tool.error") == 0)
		text = xasprintf("%s: tool call failed", node);
	else if (strcmp(k, "tool.progress") == 0) {
		if (json_is_number(json_object_get(p, "total")))
			snprintf(tail, sizeof tail, " %g/%g",
			    json_number_value(json_object_get(p, "progress")),
			    json_number_value(json_object_get(p, "total")));
		else if (json_is_number(json_object_get(p, "progress")))
			snprintf(tail, sizeof tail, " %g",
			    json_number_value(json_object_get(p, "progress")));
		m = jstr_or(p, "message", NULL);
		text = xasprintf("%s: tool progress%s%s%s", node, tail,
		    m != NULL ? ": " : "", m != NULL ? m : "");
	} else if (strcmp(k, "model.call") == 0 ||
	    strcmp(k, "model.response") == 0)
		text = xasprintf("%s: the model answered", node);
	else if (strcmp(k, "model.request") == 0)
		text = xasprintf("%s: asking the model", node);
	else if (strcmp(k, "approval.wait") == 0)
		text = xasprintf("%s: waiting for an approval", node);
	else
		text = xasprintf("%s: %s", node, k);
	json_decref(p);
	return text;
}

/* A new event of the run: progress and a log message for its client. */
static int
run_event_cb(void *arg, const struct store_event *e)
{
	struct serve_run *r = arg;
	int level;
	char *msg;

	if (e->seq <= r->seen)
		return 0;
	r->seen = e->seq;
	if (run_conn(r) == NULL)
		return 0;
	if (strcmp(e->kind, "approval.wait") == 0)
		serve_approval_ask(r->srv->st, r->id, r->call, e);
	msg = run_event_text(r, e);
	r->sent += mcps_call_progress(r->call, msg);
	level = strncmp(e->kind, "node.", 5) == 0 ||
	    strncmp(e->kind, "run.", 4) == 0 ? MCPS_LOG_INFO : MCPS_LOG_DEBUG;
	r->sent += mcps_call_log(r->call, level, json_pack("{s:s, s:I, s:s, "
	    "s:s, s:s}", "run", r->id, "seq", (json_int_t)e->seq, "kind",
	    e->kind, "path", e->node_path ? e->node_path : "", "message",
	    msg));
	free(msg);
	return 0;
}

static void
run_poll(struct serve_run *r)
{
	store_events_after(r->srv->st, r->id, r->seen, run_event_cb, r);
}

/* The coordinator committed events of run id (coord_opts.committed):
   its client hears of them now, not at the next poll. */
void
serve_runs_committed(void *arg, const char *id)
{
	struct serve_run *r = serve_run_find(arg, id);

	if (r != NULL && r->x != NULL && !r->done)
		run_poll(r);
}

/* A request of weft cancel (engine/store_cancel.c): cancel that run if it
   is one of ours, once; its client gets the run's end as the answer. */
static int
run_cancel_request_cb(void *arg, const char *id, const char *why)
{
	struct serve *s = arg;
	struct serve_run *r;
	char *msg;

	if ((r = serve_run_find(s, id)) == NULL || r->cancel_asked ||
	    r->cancelled)
		return 0;
	r->cancel_asked = 1;
	msg = xasprintf("cancelled by weft cancel%s%s", *why ? ": " : "",
	    why);
	exec_cancel(r->x, msg);
	free(msg);
	if (s->opts.verbose)
		fprintf(stderr, "weft: run %s cancelled by weft cancel\n",
		    r->id);
	return 0;
}

/* Act on weft cancel's requests for the runs going. */
static void
run_cancel_requests(struct serve *s)
{
	store_cancel_requests(s->st, run_cancel_request_cb, s);
}

static void
run_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct serve *s = arg;
	struct serve_run *r;

	(void)fd;
	(void)what;
	run_cancel_requests(s);
	TAILQ_FOREACH(r, &s->runs, entry)
		if (r->x != NULL && !r->done) {
			run_poll(r);
			/* A run waiting for approval: weft approve's answer
			   in the store, or its deadline (engine/approval.h). */
			exec_poll(r->x);
		}
}

/* The tool result for a succeeded run's output. */
static json_t *
run_output_result(struct serve_run *r, json_t *out)
{
	json_t *meta = r->tool->meta, *osch = json_object_get(meta,
	    "output_schema"), *c, *b, *res;
	const char *fmt = json_string_value(json_object_get(meta,
	    "output_format"));
	char err[512], *text;
	size_t i;

	if (fmt != NULL && strcmp(fmt, "mcp") == 0) {
		c = json_object_get(out, "content");
		json_array_foreach(c, i, b)
			if (!json_is_string(json_object_get(b, "type")))
				break;
		if (!json_is_array(c) || i != json_array_size(c))
			return mcps_tool_error("workflow '%s' has output_format "
			    "\"mcp\" but its output is not { content = { { type "
			    "= ..., ... }, ... } }", r->tool->name);
		res = json_pack("{s:O}", "content", c);
		if (json_is_true(json_object_get(out, "isError")))
			json_object_set_new(res, "isError", json_true());
		if ((c = json_object_get(out, "structuredContent")) != NULL)
			json_object_set(res, "structuredContent", c);
		return res;
	}
	if (osch != NULL && (!json_is_object(out) ||
	    schema_validate(osch, out, err, sizeof err) != 0))
		return mcps_tool_error("workflow '%s': output does not match "
		    "its output_schema: %s", r->tool->name, json_is_object(out) ?
		    err : "not an object");
	text = json_is_string(out) ? xstrdup(json_string_value(out)) :
	    json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);
	res = json_pack("{s:[{s:s, s:s}]}", "content", "type", "text", "text",
	    text ? text : "");
	free(text);
	if (osch != NULL)
		json_object_set(res, "structuredContent", out);
	return res;
}

/* The tool result for a run that ended (rc, cause: as exec_run's). */
static json_t *
run_result(struct serve_run *r, const struct exec_result *res, int rc,
    const char *cause)
{
	const char *status = rc == 0 ? res->oc.status : NULL;
	json_t *out;

	if (status == NULL)
		out = mcps_tool_error("workflow '%s' did not run: %s",
		    r->tool->name, cause != NULL ? cause : "no message");
	else if (strcmp(status, "succeeded") == 0)
		out = run_output_result(r, res->oc.output);
	else
		out = mcps_tool_error("run %s %s: %s", r->id, status,
		    res->oc.error != NULL ? res->oc.error : "no message");
	json_object_set_new(out, "_meta", json_pack("{s:s, s:s}", "weft/run",
	    r->id, "weft/status", status ? status : "not started"));
	return out;
}

static void
run_free(struct serve_run *r)
{
	if (r->answer_ev != NULL)
		event_free(r->answer_ev);
	json_decref(r->answer);
	free(r->input);
	free(r);
}

/* Send the call's answer and forget the run. */
static void
run_answer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct serve_run *r = arg;
	struct serve *s = r->srv;
	struct mcps_conn *cn = run_conn(r);
	char *uri;

	(void)fd;
	(void)what;
	TAILQ_REMOVE(&s->runs, r, entry);
	if (r->call != NULL) {
		serve_stats_call(s, now_mono() - r->t0, r->status);
		mcps_call_done(r->call, cn != NULL && !r->cancelled ?
		    json_incref(r->answer) : NULL);
	}
	if (cn != NULL) {
		uri = xasprintf(SERVE_RUN_PREFIX "%s", r->id);
		mcps_conn_updated(cn, uri);
		free(uri);
	}
	run_free(r);
	serve_drain_check(s);
}

/*
 * The run ended and how is recorded (exec_done_fn): report its last steps,
 * then answer.  The TypeScript SDK handles notifications a microtask later
 * but responses at once, so an answer sent right after progress
 * notifications would overtake them and the client would drop them as
 * "unknown token": when the last poll sent any, the answer waits 50 ms
 * (20 ms was seen to be too short on a loaded machine).
 */
static void
run_done(void *arg, struct exec *x, const struct exec_result *res, int rc,
    const char *cause)
{
	struct serve_run *r = arg;
	struct serve *s = r->srv;
	struct timeval tv = { 0, 50 * 1000 };

	(void)x;
	r->x = NULL;
	r->done = 1;
	snprintf(r->status, sizeof r->status, "%s", rc == 0 &&
	    res->oc.status != NULL ? res->oc.status : "not_started");
	if (--s->nruns == 0)
		evtimer_del(s->poll_ev);
	if (r->call != NULL)
		r->answer = run_result(r, res, rc, cause);
	r->sent = 0;
	run_poll(r);
	if (s->opts.verbose || (r->call == NULL && rc != 0))
		fprintf(stderr, "weft: tool %s: run %s ended %s%s%s\n",
		    run_name(r), r->id, rc == 0 ? res->oc.status :
		    "unrecorded", cause ? ": " : "", cause ? cause : "");
	/* The next waiting call starts on the loop, not inside the
	   coordinator's flush. */
	if (s->nwaiting > 0)
		event_active(s->admit_ev, EV_TIMEOUT, 0);
	r->answer_ev = evtimer_new(s->base, run_answer_cb, r);
	if (r->sent == 0)
		event_active(r->answer_ev, EV_TIMEOUT, 0);
	else
		evtimer_add(r->answer_ev, &tv);
}

/* Begin run r in the server's coordinator. */
static void
run_begin(struct serve_run *r)
{
	struct serve *s = r->srv;
	struct timeval tv = { 0, RUN_POLL_MS * 1000 };
	json_t *vars;
	char *cause = NULL;

	vars = json_pack("{s:o, s:s}", "WEFT_MCP_CLIENT_URL",
	    json_sprintf("http://127.0.0.1:%d/client/%s", s->client_port,
	    r->id), "WEFT_MCP_CLIENT_TOKEN", r->secret);
	r->x = serve_exec(s, r->tool, r->id, r->input, vars, run_done, r,
	    &cause);
	json_decref(vars);
	free(r->input);
	r->input = NULL;
	if (r->x == NULL) {
		TAILQ_REMOVE(&s->runs, r, entry);
		serve_stats_call(s, now_mono() - r->t0, NULL);
		mcps_call_done(r->call, mcps_tool_error("cannot start workflow "
		    "'%s': %s", run_name(r), cause ? cause : "no message"));
		free(cause);
		run_free(r);
		return;
	}
	if (s->nruns++ == 0)
		evtimer_add(s->poll_ev, &tv);
	if (s->opts.verbose)
		fprintf(stderr, "weft: tool %s: run %s started\n",
		    run_name(r), r->id);
}

/* Start waiting calls while there is room, in the order they came. */
static void
run_admit(struct serve *s)
{
	struct serve_run *r, *next;

	TAILQ_FOREACH_SAFE(r, &s->runs, entry, next) {
		if (s->nruns + s->nother >= s->opts.max_runs ||
		    s->nwaiting == 0)
			break;
		if (!r->waiting)
			continue;
		r->waiting = 0;
		s->nwaiting--;
		if (r->admit != NULL) {
			TAILQ_REMOVE(&s->runs, r, entry);
			r->admit(r->admit_arg, 1);
			run_free(r);
			continue;
		}
		run_begin(r);
	}
}

static void
run_admit_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	run_admit(arg);
}

void
serve_run_start(struct serve *s, struct mcps_call *c, struct serve_tool *t,
    json_t *args)
{
	struct mcps_conn *cn = mcps_call_conn(c);
	const char *owner = cn != NULL ? mcps_conn_owner(cn) : NULL;
	struct serve_run *r;
	char err[512], *msg;

	if (s->stopping) {
		serve_stats_refused(s);
		mcps_call_done(c, mcps_tool_error("the server is stopping; "
		    "try again when it is back"));
		return;
	}
	if (s->nruns + s->nother >= s->opts.max_runs &&
	    s->nwaiting >= s->opts.max_queued) {
		serve_stats_refused(s);
		mcps_call_done(c, mcps_tool_error("the server is running %d "
		    "workflows and %d calls wait, its limits (weft serve "
		    "--max-runs, --max-queued); try again later", s->nruns,
		    s->nwaiting));
		return;
	}
	r = xcalloc(1, sizeof *r);
	r->srv = s;
	r->call = c;
	r->tool = t;
	r->t0 = now_mono();
	random_hex(r->id, 8);
	random_hex(r->secret, 32);
	r->input = json_dumps(args, JSON_COMPACT);
	/* The owner first: a run of a session is never without one. */
	if (owner != NULL && serve_owner_put(s, r->id, owner, err,
	    sizeof err) != 0) {
		mcps_call_done(c, mcps_tool_error("cannot start workflow "
		    "'%s': %s", t->name, err));
		run_free(r);
		return;
	}
	TAILQ_INSERT_TAIL(&s->runs, r, entry);
	if (s->nruns + s->nother < s->opts.max_runs && s->nwaiting == 0) {
		run_begin(r);
		return;
	}
	r->waiting = 1;
	s->nwaiting++;
	msg = xasprintf("waiting for a free run slot (%d running, %d "
	    "waiting)", s->nruns, s->nwaiting);
	mcps_call_progress(c, msg);
	free(msg);
}

int
serve_admit(struct serve *s, void (*admit)(void *, int), void *arg,
    struct serve_run **q)
{
	struct serve_run *r;

	*q = NULL;
	if (s->stopping || (s->nruns + s->nother >= s->opts.max_runs &&
	    s->nwaiting >= s->opts.max_queued)) {
		serve_stats_refused(s);
		return -1;
	}
	if (s->nruns + s->nother < s->opts.max_runs && s->nwaiting == 0)
		return 0;
	r = xcalloc(1, sizeof *r);
	r->srv = s;
	r->admit = admit;
	r->admit_arg = arg;
	r->waiting = 1;
	r->t0 = now_mono();
	TAILQ_INSERT_TAIL(&s->runs, r, entry);
	s->nwaiting++;
	*q = r;
	return 1;
}

void
serve_admit_cancel(struct serve *s, struct serve_run *q)
{
	TAILQ_REMOVE(&s->runs, q, entry);
	s->nwaiting--;
	run_free(q);
}

void
serve_admit_release(struct serve *s)
{
	s->nother--;
	if (s->nwaiting > 0)
		event_active(s->admit_ev, EV_TIMEOUT, 0);
}

struct serve_run *
serve_run_find(struct serve *s, const char *id)
{
	struct serve_run *r;

	TAILQ_FOREACH(r, &s->runs, entry)
		if (r->x != NULL && !r->done && strcmp(r->id, id) == 0)
			return r;
	return NULL;
}

struct mcps_call *
serve_run_call(struct serve_run *r)
{
	return r->call;
}

/* Constant-time comparison with the run's secret. */
int
serve_run_secret_ok(struct serve_run *r, const char *secret)
{
	unsigned char d = 0;
	size_t i;

	if (strlen(secret) != 64)
		return 0;
	for (i = 0; i < 64; i++)
		d |= (unsigned char)(r->secret[i] ^ secret[i]);
	return d == 0;
}

int
serve_run_cancel(struct serve *s, struct mcps_call *c, int gone)
{
	struct serve_run *r;

	TAILQ_FOREACH(r, &s->runs, entry)
		if (r->call == c)
			break;
	if (r == NULL || r->done || r->cancelled)
		return 0;
	if (r->waiting) {
		/* Never started: nothing to record. */
		TAILQ_REMOVE(&s->runs, r, entry);
		s->nwaiting--;
		mcps_call_done(c, NULL);
		run_free(r);
		return 1;
	}
	if (gone)
		/* The session left: the run goes on to its end, readable
		   by id; its answer is dropped. */
		return 1;
	r->cancelled = 1;
	exec_cancel(r->x, "the client cancelled the call");
	if (s->opts.verbose)
		fprintf(stderr, "weft: run %s cancelled by the client\n", r->id);
	return 1;
}

void
serve_runs_refuse_waiting(struct serve *s)
{
	struct serve_run *r, *next;

	TAILQ_FOREACH_SAFE(r, &s->runs, entry, next) {
		if (!r->waiting)
			continue;
		TAILQ_REMOVE(&s->runs, r, entry);
		s->nwaiting--;
		serve_stats_refused(s);
		if (r->admit != NULL)
			r->admit(r->admit_arg, 0);
		else
			mcps_call_done(r->call, mcps_tool_error("the server "
			    "is stopping; try again when it is back"));
		run_free(r);
	}
}

int
serve_runs_idle(struct serve *s)
{
	return TAILQ_EMPTY(&s->runs);
}

int
serve_runs_init(struct serve *s)
{
	s->poll_ev = event_new(s->base, -1, EV_PERSIST, run_poll_cb, s);
	s->admit_ev = event_new(s->base, -1, 0, run_admit_cb, s);
	return s->poll_ev != NULL && s->admit_ev != NULL ? 0 : -1;
}

void
serve_runs_stop(struct serve *s, int cancel)
{
	struct serve_run *r, *next;
	char err[256];

	s->stopping = 1;
	TAILQ_FOREACH_SAFE(r, &s->runs, entry, next) {
		if (r->waiting) {
			TAILQ_REMOVE(&s->runs, r, entry);
			s->nwaiting--;
			if (r->admit != NULL)
				r->admit(r->admit_arg, 0);
			else
				mcps_call_done(r->call, NULL);
			run_free(r);
		} else if (r->x != NULL && !r->done && cancel) {
			r->cancelled = 1;
			exec_cancel(r->x, "the server stopped");
		}
	}
	/* Cancelled runs record their end on the loop. */
	if (cancel && s->nruns > 0 && coord_loop(s->coord, err,
	    sizeof err) != 0)
		fprintf(stderr, "weft: %s\n", err);
}

void
serve_runs_free(struct serve *s)
{
	struct serve_run *r;

	s->stopping = 1;
	while ((r = TAILQ_FIRST(&s->runs)) != NULL) {
		TAILQ_REMOVE(&s->runs, r, entry);
		if (r->x != NULL)
			/* Left as recorded so far: resumable. */
			exec_abandon(r->x);
		if (r->call != NULL)
			mcps_call_done(r->call, NULL);
		run_free(r);
	}
	s->nruns = s->nwaiting = 0;
	if (s->poll_ev != NULL)
		event_free(s->poll_ev);
	if (s->admit_ev != NULL)
		event_free(s->admit_ev);
	s->poll_ev = s->admit_ev = NULL;
}

/* Collect the ids of runs still running (store_runs_list). */
static int
run_running_cb(void *arg, const struct store_run *sr)
{
	if (strcmp(sr->status, "running") == 0)
		json_array_append_new(arg, json_string(sr->id));
	return 0;
}

/* Whether the run's first event says a server started it. */
static int
run_served_cb(void *arg, const struct store_event *e)
{
	json_t *p;

	if (e->seq == 1 && strcmp(e->kind, "run.start") == 0 &&
	    e->payload != NULL && (p = json_loads(e->payload, 0,
	    NULL)) != NULL) {
		*(int *)arg = json_is_true(json_object_get(p, "served"));
		json_decref(p);
	}
	return 1;
}

void
serve_runs_resume(struct serve *s)
{
	struct exec_spec sp;
	struct serve_run *r;
	json_t *ids = json_array(), *v;
	char *cause = NULL;
	size_t i;
	int rc, served;

	store_runs_list(s->st, 0, run_running_cb, ids);
	json_array_foreach(ids, i, v) {
		served = 0;
		store_events_foreach(s->st, json_string_value(v),
		    run_served_cb, &served);
		if (!served)
			continue;
		r = xcalloc(1, sizeof *r);
		r->srv = s;
		snprintf(r->id, sizeof r->id, "%s", json_string_value(v));
		exec_spec_init(&sp, EXEC_RESUME);
		sp.run = r->id;
		r->x = exec_start(&sp, s->coord, s->st, NULL, run_done, r, &rc,
		    &cause);
		if (r->x != NULL)
			otlp_live_follow(r->id);	/* the live OTLP export */
		if (r->x == NULL) {
			/* Its owner lives (another server), or it cannot go
			   on: said once, left as it is. */
			fprintf(stderr, "weft: run %s was not resumed: %s\n",
			    r->id, cause ? cause : "no message");
			free(cause);
			cause = NULL;
			run_free(r);
			continue;
		}
		TAILQ_INSERT_TAIL(&s->runs, r, entry);
		s->nruns++;
		fprintf(stderr, "weft: resuming run %s, which a server "
		    "started and did not finish\n", r->id);
	}
	if (s->nruns > 0) {
		struct timeval tv = { 0, RUN_POLL_MS * 1000 };

		evtimer_add(s->poll_ev, &tv);
	}
	json_decref(ids);
}

int
serve_runs_model_calls(struct serve *s)
{
	struct serve_run *r;
	int n = 0;

	TAILQ_FOREACH(r, &s->runs, entry)
		if (r->x != NULL && !r->done)
			n += exec_model_calls(r->x);
	return n;
}
