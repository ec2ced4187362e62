/*
 * serve_a2a.c: every workflow of `weft serve` as an A2A agent, v1.0 and
 * v0.3 (docs/a2a.md, ../shared/specs/A2A.md).
 *
 * Routes on the server's one listener, behind its Host, Origin and token
 * checks: /a2a/NAME (JSON-RPC) and /a2a/NAME/.well-known/agent-card.json
 * per workflow, and /.well-known/agent-card.json for the first one.  A
 * task is a run begun with exec_start in the server's coordinator, as
 * serve_runs.c begins a tools/call; its id is the run id.  The protocol
 * version is the request's A2A-Version header (1.x: v1.0; absent: v0.3).
 * Streams and blocking sends are answered from the run's end; while it
 * goes, a 100 ms timer reads its node events from the store and sends
 * them as status updates.  A client sees only the tasks it started (its
 * token); an operator token sees all.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "engine/approval.h"
#include "engine/coord.h"
#include "engine/exec.h"
#include "engine/schema.h"
#include "engine/serve_int.h"
#include "engine/store.h"
#include "protocols/a2a_client.h"
#include "protocols/jsonrpc.h"
#include "runtime/httpd_routes.h"
#include "runtime/util.h"

#define A2AS_POLL_MS	100
#define A2AS_MAX_TASKS	4096	/* kept in memory; older ones from the
				   store */
#define A2AS_MAX_BODY	(8 * 1024 * 1024)
#define A2AS_MAX_FILES	16	/* file parts of a message */
/* Their bytes, decoded: base64 of this fits a request body of weft
   serve (MCPS_MAX_MESSAGE, 4 MiB) with room to spare. */
#define A2AS_MAX_FILE_BYTES (1024 * 1024)

struct a2as_waiter {
	TAILQ_ENTRY(a2as_waiter) entry;
	struct evhttp_request	*req;
	json_t			*rpc_id;
	int			 v1;
	int			 stream;	/* SSE; else one answer */
};
TAILQ_HEAD(a2as_waiters, a2as_waiter);

struct a2as_task {
	TAILQ_ENTRY(a2as_task)	 entry;
	struct a2as		*a;
	struct serve_tool	*tool;
	char			 id[17];
	char			 ctx[65];
	char			 owner[24];	/* client id, "" if no token */
	char			*input;		/* until it starts */
	json_t			*message;	/* the user's, normalised */
	struct exec		*x;
	struct serve_run	*q;		/* waiting for a run slot */
	const char		*state;		/* v0.3 spelling */
	json_t			*output;	/* once completed */
	char			*error;
	/* The approval the run waits for (input-required): its question,
	   node path, call number and answer schema (or NULL). */
	char			*question, *ask_path, *ask_schema;
	int			 ask_call;
	double			 updated;
	int64_t			 seen;		/* events read */
	struct a2as_waiters	 waiters;
};
TAILQ_HEAD(a2as_tasks, a2as_task);

struct a2as_route {
	struct a2as		*a;
	struct serve_tool	*tool;
};

struct a2as {
	struct serve		*s;
	struct a2as_tasks	 tasks;
	int			 ntasks, nrunning;
	struct event		*poll_ev;
	struct a2as_route	*routes;	/* one per workflow */
	int			 nroutes;
};

/* ---- answers ------------------------------------------------------------ */

/* A whole answer of type ctype (NULL: none). */
static void
a2as_reply(struct evhttp_request *req, int code, const char *ctype,
    const char *body)
{
	httpd_reply_text(req, code, code == 200 ? "OK" : "Error", ctype, body);
}

/* A JSON-RPC message as the whole answer; msg stolen. */
static void
a2as_send(struct evhttp_request *req, json_t *msg)
{
	size_t n;
	char *s = jrpc_dump(msg, &n, 0);

	a2as_reply(req, 200, "application/json", s);
	free(s);
	json_decref(msg);
}

static void
a2as_error(struct evhttp_request *req, json_t *id, int code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A JSON-RPC error answer (id borrowed). */
static void
a2as_error(struct evhttp_request *req, json_t *id, int code,
    const char *fmt, ...)
{
	va_list ap;
	char msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	a2as_send(req, jrpc_error(id != NULL ? json_incref(id) : json_null(),
	    code, msg, NULL));
}

/* One SSE event carrying a JSON-RPC result (id borrowed, res stolen). */
static void
a2as_sse(struct a2as_waiter *wt, json_t *res)
{
	struct evbuffer *b = evbuffer_new();
	json_t *m = jrpc_result(json_incref(wt->rpc_id), res);
	size_t n;
	char *s = jrpc_dump(m, &n, 0);

	evbuffer_add_printf(b, "data: %s\n\n", s ? s : "{}");
	if (httpd_queued(wt->req) != HTTPD_GONE)
		evhttp_send_reply_chunk(wt->req, b);
	evbuffer_free(b);
	free(s);
	json_decref(m);
}

/* ---- tasks as JSON ------------------------------------------------------ */

/* A state in a version's spelling. */
static json_t *
a2as_state(const char *st, int v1)
{
	char buf[64], *p;

	if (!v1)
		return json_string(st);
	snprintf(buf, sizeof buf, "TASK_STATE_%s", st);
	for (p = buf + 11; *p != '\0'; p++)
		*p = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ?
		    *p - 32 : *p);
	return json_string(buf);
}

/* A normalised part ({text}|{data}|{file}) in a version's shape. */
static json_t *
a2as_part(json_t *p, int v1)
{
	json_t *f = json_object_get(p, "file"), *o;

	if (json_object_get(p, "text") != NULL)
		return v1 ? json_pack("{s:O}", "text", json_object_get(p,
		    "text")) : json_pack("{s:s, s:O}", "kind", "text", "text",
		    json_object_get(p, "text"));
	if (json_object_get(p, "data") != NULL)
		return v1 ? json_pack("{s:O}", "data", json_object_get(p,
		    "data")) : json_pack("{s:s, s:O}", "kind", "data", "data",
		    json_object_get(p, "data"));
	if (json_object_get(f, "blob") != NULL)
		/* A file the server stored (its bytes are a blob). */
		return v1 ? json_pack("{s:{s:O}}", "data", "file", f) :
		    json_pack("{s:s, s:{s:O}}", "kind", "data", "data", "file",
		    f);
	if (v1) {
		o = json_object();
		if (json_object_get(f, "bytes"))
			json_object_set(o, "raw", json_object_get(f, "bytes"));
		if (json_object_get(f, "uri"))
			json_object_set(o, "url", json_object_get(f, "uri"));
		return o;
	}
	return json_pack("{s:s, s:O}", "kind", "file", "file", f);
}

/* A message (normalised parts) in a version's shape. */
static json_t *
a2as_message(json_t *parts, const char *role, const char *mid,
    struct a2as_task *t, int v1)
{
	json_t *out = json_array(), *p, *m;
	size_t i;

	json_array_foreach(parts, i, p)
		json_array_append_new(out, a2as_part(p, v1));
	m = json_pack("{s:s, s:s, s:o, s:s, s:s}", "messageId", mid, "role",
	    v1 ? (strcmp(role, "user") == 0 ? "ROLE_USER" : "ROLE_AGENT") :
	    role, "parts", out, "taskId", t->id, "contextId", t->ctx);
	if (!v1)
		json_object_set_new(m, "kind", json_string("message"));
	return m;
}

/* The task's output as an artifact. */
static json_t *
a2as_artifact(struct a2as_task *t, int v1)
{
	json_t *parts = json_array(), *a;
	char *s;

	if (json_is_string(t->output))
		json_array_append_new(parts, json_pack("{s:O}", "text",
		    t->output));
	else if (json_is_object(t->output))
		json_array_append_new(parts, json_pack("{s:O}", "data",
		    t->output));
	else {
		s = json_dumps(t->output, JSON_COMPACT | JSON_ENCODE_ANY);
		json_array_append_new(parts, json_pack("{s:s}", "text",
		    s ? s : "null"));
		free(s);
	}
	a = json_pack("{s:s, s:s}", "artifactId", "output", "name", "output");
	json_object_set_new(a, "parts", json_array());
	{
		json_t *p;
		size_t i;

		json_array_foreach(parts, i, p)
			json_array_append_new(json_object_get(a, "parts"),
			    a2as_part(p, v1));
	}
	json_decref(parts);
	return a;
}

/* The status object of a task. */
static json_t *
a2as_status(struct a2as_task *t, int v1, const char *say)
{
	const char *msg = say != NULL ? say : t->question != NULL ?
	    t->question : t->error;
	char mid[40], ts[40];
	time_t sec = (time_t)t->updated;
	struct tm tm;
	json_t *st;

	gmtime_r(&sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	st = json_pack("{s:o, s:o}", "state", a2as_state(t->state, v1),
	    "timestamp", json_sprintf("%s.%03dZ", ts, (int)((t->updated -
	    (double)sec) * 1000)));

	if (msg != NULL) {
		json_t *parts = json_pack("[{s:s}]", "text", msg);

		snprintf(mid, sizeof mid, "%s-status", t->id);
		json_object_set_new(st, "message", a2as_message(parts, "agent",
		    mid, t, v1));
		json_decref(parts);
	}
	return st;
}

/* A task object; history up to hist messages (-1: all). */
static json_t *
a2as_task_json(struct a2as_task *t, int v1, int hist)
{
	json_t *o = json_pack("{s:s, s:s, s:o, s:[]}", "id", t->id,
	    "contextId", t->ctx, "status", a2as_status(t, v1, NULL),
	    "artifacts");
	char mid[40];

	if (!v1)
		json_object_set_new(o, "kind", json_string("task"));
	if (t->output != NULL)
		json_array_append_new(json_object_get(o, "artifacts"),
		    a2as_artifact(t, v1));
	if (hist != 0 && t->message != NULL) {
		snprintf(mid, sizeof mid, "%s-in", t->id);
		json_object_set_new(o, "history", json_pack("[o]",
		    a2as_message(json_object_get(t->message, "parts"), "user",
		    json_string_value(json_object_get(t->message,
		    "messageId")) ? json_string_value(json_object_get(
		    t->message, "messageId")) : mid, t, v1)));
	}
	json_object_set_new(o, "metadata", json_pack("{s:s}", "weft/run",
	    t->id));
	return o;
}

/* A status update event (final when the state is terminal). */
static json_t *
a2as_status_event(struct a2as_task *t, int v1, const char *say)
{
	json_t *e = json_pack("{s:s, s:s, s:o}", "taskId", t->id, "contextId",
	    t->ctx, "status", a2as_status(t, v1, say));

	if (v1)
		return json_pack("{s:o}", "statusUpdate", e);
	json_object_set_new(e, "kind", json_string("status-update"));
	json_object_set_new(e, "final", json_boolean(a2a_state_terminal(
	    t->state) || strcmp(t->state, "input-required") == 0));
	return e;
}

static json_t *
a2as_artifact_event(struct a2as_task *t, int v1)
{
	json_t *e = json_pack("{s:s, s:s, s:o, s:b, s:b}", "taskId", t->id,
	    "contextId", t->ctx, "artifact", a2as_artifact(t, v1), "append", 0,
	    "lastChunk", 1);

	if (v1)
		return json_pack("{s:o}", "artifactUpdate", e);
	json_object_set_new(e, "kind", json_string("artifact-update"));
	return e;
}

/* ---- runs --------------------------------------------------------------- */

/* A status update (say: its message) to every stream of the task. */
static void
a2as_broadcast(struct a2as_task *t, const char *say)
{
	struct a2as_waiter *wt;

	TAILQ_FOREACH(wt, &t->waiters, entry)
		if (wt->stream)
			a2as_sse(wt, a2as_status_event(t, wt->v1, say));
}

static void a2as_finish_waiters(struct a2as_task *);

/* Forget the approval the task waited for. */
static void
a2as_ask_clear(struct a2as_task *t)
{
	free(t->question);
	free(t->ask_path);
	free(t->ask_schema);
	t->question = t->ask_path = t->ask_schema = NULL;
}

/*
 * The run waits for an approval (its approval.wait event e): the task is
 * input-required with the approval's prompt as its status message, and
 * its streams and blocking sends are answered (the client answers with a
 * message on the task, a2as_answer).
 */
static void
a2as_ask(struct a2as_task *t, const struct store_event *e)
{
	json_t *p = e->payload != NULL ? json_loads(e->payload, 0, NULL) :
	    NULL;
	const char *q = json_string_value(json_object_get(p, "prompt"));

	a2as_ask_clear(t);
	t->question = xstrdup(q != NULL && *q != '\0' ? q : "approve?");
	t->ask_path = xstrdup(e->node_path != NULL ? e->node_path : "");
	t->ask_call = (int)json_integer_value(json_object_get(p, "call"));
	if (json_object_get(p, "schema") != NULL)
		t->ask_schema = json_dumps(json_object_get(p, "schema"),
		    JSON_COMPACT);
	json_decref(p);
	t->state = "input-required";
	t->updated = now_wall();
	a2as_finish_waiters(t);
}

/* A node event of a running task: a status update for its streams. */
static int
a2as_event_cb(void *arg, const struct store_event *e)
{
	struct a2as_task *t = arg;
	char *say;

	if (e->seq <= t->seen)
		return 0;
	t->seen = e->seq;
	if (strcmp(e->kind, "approval.wait") == 0) {
		a2as_ask(t, e);
		return 0;
	}
	if (strcmp(e->kind, "approval.answer") == 0 && t->ask_path != NULL) {
		a2as_ask_clear(t);
		t->state = "working";
		t->updated = now_wall();
		a2as_broadcast(t, "the approval was answered");
		return 0;
	}
	if (strcmp(e->kind, "node.start") != 0 &&
	    strcmp(e->kind, "node.end") != 0)
		return 0;
	say = xasprintf("%s %s", e->node_path ? e->node_path : "",
	    strcmp(e->kind, "node.start") == 0 ? "started" : "finished");
	a2as_broadcast(t, say);
	free(say);
	return 0;
}

static void
a2as_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct a2as *a = arg;
	struct a2as_task *t;

	/* Every running task: its updates, and an approval it waits for
	   (asked, or answered in the store: exec_poll takes the answer). */
	TAILQ_FOREACH(t, &a->tasks, entry)
		if (t->x != NULL) {
			store_events_foreach(a->s->st, t->id, a2as_event_cb,
			    t);
			if (t->x != NULL)
				exec_poll(t->x);
		}
}

/* Answer and free every waiter of an ended task. */
static void
a2as_finish_waiters(struct a2as_task *t)
{
	struct a2as_waiter *wt;

	while ((wt = TAILQ_FIRST(&t->waiters)) != NULL) {
		TAILQ_REMOVE(&t->waiters, wt, entry);
		if (wt->stream) {
			if (t->output != NULL)
				a2as_sse(wt, a2as_artifact_event(t, wt->v1));
			a2as_sse(wt, a2as_status_event(t, wt->v1, NULL));
			evhttp_send_reply_end(wt->req);
		} else
			a2as_send(wt->req, jrpc_result(json_incref(wt->rpc_id),
			    wt->v1 ? json_pack("{s:o}", "task",
			    a2as_task_json(t, 1, -1)) : a2as_task_json(t, 0,
			    -1)));
		json_decref(wt->rpc_id);
		free(wt);
	}
}

/* The run ended (exec_done_fn): the task's final state. */
static void
a2as_run_done(void *arg, struct exec *x, const struct exec_result *res,
    int rc, const char *cause)
{
	struct a2as_task *t = arg;
	const char *st = rc == 0 ? res->oc.status : NULL;

	t->x = NULL;
	if (--t->a->nrunning == 0)
		evtimer_del(t->a->poll_ev);
	serve_admit_release(t->a->s);
	a2as_ask_clear(t);
	store_events_foreach(t->a->s->st, t->id, a2as_event_cb, t);
	t->updated = now_wall();
	if (st != NULL && strcmp(st, "succeeded") == 0) {
		t->state = "completed";
		t->output = res->oc.output != NULL ? json_incref(
		    res->oc.output) : json_null();
	} else {
		t->state = st != NULL && strcmp(st, "cancelled") == 0 ?
		    "canceled" : "failed";
		free(t->error);
		t->error = xstrdup(st == NULL ? (cause ? cause :
		    "the run did not start") : res->oc.error ? res->oc.error :
		    st);
	}
	a2as_finish_waiters(t);
}

/* Begin the task's run, as serve_runs.c begins a tools/call. */
static int
a2as_begin(struct a2as_task *t, char *err, size_t errlen)
{
	struct a2as *a = t->a;
	struct timeval tv = { 0, A2AS_POLL_MS * 1000 };
	json_t *vars;
	char *cause = NULL;

	vars = json_pack("{s:s}", "WEFT_A2A_CONTEXT_ID", t->ctx);
	t->x = serve_exec(a->s, t->tool, t->id, t->input, vars, a2as_run_done,
	    t, &cause);
	json_decref(vars);
	free(t->input);
	t->input = NULL;
	if (t->x == NULL) {
		errf(err, errlen, "cannot start workflow '%s': %s",
		    t->tool->name, cause ? cause : "no message");
		free(cause);
		return -1;
	}
	t->state = "working";
	t->updated = now_wall();
	a->s->nother++;
	if (a->nrunning++ == 0)
		evtimer_add(a->poll_ev, &tv);
	return 0;
}

/* The task's turn in the admission queue came (ok), or the server stops. */
static void
a2as_admit_cb(void *arg, int ok)
{
	struct a2as_task *t = arg;
	char err[1024];

	t->q = NULL;
	t->updated = now_wall();
	if (ok && a2as_begin(t, err, sizeof err) == 0) {
		a2as_broadcast(t, "the run started");
		return;
	}
	t->state = ok ? "failed" : "rejected";
	free(t->error);
	t->error = xstrdup(ok ? err : "the server stopped before the task "
	    "had a run slot");
	a2as_finish_waiters(t);
}

/* ---- finding tasks ------------------------------------------------------ */

static void
a2as_task_free(struct a2as_task *t)
{
	json_decref(t->message);
	json_decref(t->output);
	free(t->input);
	free(t->error);
	a2as_ask_clear(t);
	free(t);
}

/* Forget the oldest ended tasks past the cap (the store keeps them). */
static void
a2as_trim(struct a2as *a)
{
	struct a2as_task *t, *next;

	TAILQ_FOREACH_SAFE(t, &a->tasks, entry, next) {
		if (a->ntasks <= A2AS_MAX_TASKS)
			break;
		if (t->x != NULL || t->q != NULL ||
		    !TAILQ_EMPTY(&t->waiters))
			continue;
		TAILQ_REMOVE(&a->tasks, t, entry);
		a->ntasks--;
		a2as_task_free(t);
	}
}

/* A stored run as a task (no longer in memory). */
static int
a2as_stored_cb(void *arg, const struct store_run *r)
{
	struct a2as_task *t = arg;

	snprintf(t->id, sizeof t->id, "%s", r->id);
	t->state = strcmp(r->status, "succeeded") == 0 ? "completed" :
	    strcmp(r->status, "running") == 0 ? "working" :
	    strcmp(r->status, "cancelled") == 0 ? "canceled" :
	    strcmp(r->status, "waiting") == 0 ? "input-required" : "failed";
	if (r->output != NULL)
		t->output = json_loads(r->output, JSON_DECODE_ANY, NULL);
	if (r->error != NULL)
		t->error = xstrdup(r->error);
	t->updated = r->ended > 0 ? r->ended : r->started;
	return 0;
}

/* Whether who may see task t. */
static int
a2as_visible(struct a2as_task *t, const struct httpd_client *who)
{
	return who == NULL || who->operator || strcmp(t->owner, who->id) == 0;
}

/* The task of id that who may see, or NULL (then *tmp, freed by the
   caller, may hold one read from the store: a task of before a restart,
   whose owner and context the server recorded, serve_owners.c). */
static struct a2as_task *
a2as_find(struct a2as *a, struct serve_tool *tool, const char *id,
    const struct httpd_client *who, struct a2as_task **tmp)
{
	struct a2as_task *t;
	char *msg = NULL;

	*tmp = NULL;
	if (id == NULL)
		return NULL;
	TAILQ_FOREACH(t, &a->tasks, entry)
		if (strcmp(t->id, id) == 0)
			return a2as_visible(t, who) ? t : NULL;
	/* An older task: its run in the store, if who started it. */
	if (strlen(id) != 16 || (who != NULL && !who->operator &&
	    !serve_owner_sees(a->s, who->id, id)))
		return NULL;
	t = xcalloc(1, sizeof *t);
	t->a = a;
	t->tool = tool;
	TAILQ_INIT(&t->waiters);
	if (serve_a2a_task_get(a->s, id, tool->name, t->ctx, sizeof t->ctx,
	    &msg) != 0)
		snprintf(t->ctx, sizeof t->ctx, "%s", id);
	if (msg != NULL)
		t->message = json_loads(msg, 0, NULL);
	free(msg);
	if (store_run_find(a->s->st, id, a2as_stored_cb, t) != 0 ||
	    t->state == NULL) {
		a2as_task_free(t);
		return NULL;
	}
	*tmp = t;
	return t;
}

/* ---- methods ------------------------------------------------------------ */

/* A file part's bytes: decoded base64 (standard or URL-safe, padding
   optional), at most max bytes.  NULL when they are not base64. */
static unsigned char *
a2as_unbase64(const char *in, size_t max, size_t *len)
{
	size_t n = strlen(in), i, o = 0;
	unsigned char *out;
	unsigned int acc = 0;
	int bits = 0, v;

	while (n > 0 && in[n - 1] == '=')
		n--;
	if (n / 4 * 3 > max + 3) {
		*len = n / 4 * 3;
		return NULL;
	}
	out = xmalloc(n / 4 * 3 + 3);
	for (i = 0; i < n; i++) {
		char c = in[i];

		v = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ?
		    c - 'a' + 26 : c >= '0' && c <= '9' ? c - '0' + 52 :
		    c == '+' || c == '-' ? 62 : c == '/' || c == '_' ? 63 : -1;
		if (v < 0) {
			free(out);
			*len = 0;
			return NULL;
		}
		acc = acc << 6 | (unsigned int)v;
		if ((bits += 6) >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	*len = o;
	return out;
}

/* The bytes of a message's files, put in the store once it is accepted. */
struct a2as_files {
	unsigned char	*data[A2AS_MAX_FILES];
	size_t		 len[A2AS_MAX_FILES];
	int		 n;
	size_t		 total;
};

static void
a2as_files_clear(struct a2as_files *fs)
{
	int i;

	for (i = 0; i < fs->n; i++)
		free(fs->data[i]);
	fs->n = 0;
}

/*
 * A file part (normalised, at index i) of an incoming message: its bytes
 * decoded into fs and the part made a reference {name, mediaType, size,
 * blob: SHA-256} to the blob they become; a uri is kept as it is.  The
 * reference is appended to files.
 */
static int
a2as_file_in(json_t *p, size_t i, struct a2as_files *fs, json_t *files,
    char *err, size_t errlen)
{
	json_t *f = json_object_get(p, "file"), *ref;
	const char *b = json_string_value(json_object_get(f, "bytes"));
	const char *name = json_string_value(json_object_get(f, "name"));
	unsigned char *d;
	char hash[65];
	size_t len;

	if (fs->n >= A2AS_MAX_FILES) {
		errf(err, errlen, "/params/message/parts/%zu: more than %d "
		    "file parts", i, A2AS_MAX_FILES);
		return -1;
	}
	ref = json_object();
	if (json_is_string(json_object_get(f, "name")))
		json_object_set(ref, "name", json_object_get(f, "name"));
	if (json_is_string(json_object_get(f, "mediaType")))
		json_object_set(ref, "mediaType", json_object_get(f,
		    "mediaType"));
	if (b == NULL) {
		json_object_set(ref, "uri", json_object_get(f, "uri"));
		json_array_append_new(files, ref);
		return 0;
	}
	d = a2as_unbase64(b, A2AS_MAX_FILE_BYTES - fs->total, &len);
	if (d == NULL || fs->total + len > A2AS_MAX_FILE_BYTES) {
		if (d != NULL || len > 0)
			errf(err, errlen, "/params/message/parts/%zu: file "
			    "'%.100s' is about %zu bytes; weft serve takes at "
			    "most %d bytes of files in one message", i,
			    name ? name : "(unnamed)", fs->total + len,
			    A2AS_MAX_FILE_BYTES);
		else
			errf(err, errlen, "/params/message/parts/%zu: the "
			    "bytes of file '%.100s' are not base64", i,
			    name ? name : "(unnamed)");
		free(d);
		json_decref(ref);
		return -1;
	}
	sha256_hex(d, len, hash);
	fs->data[fs->n] = d;
	fs->len[fs->n++] = len;
	fs->total += len;
	json_object_set_new(ref, "size", json_integer((json_int_t)len));
	json_object_set_new(ref, "blob", json_string(hash));
	/* The task keeps the reference, not the bytes. */
	json_object_set(p, "file", ref);
	json_array_append_new(files, ref);
	return 0;
}

/*
 * The run input from a message's (normalised) parts: a data part that is
 * an object is the input; text alone fills the input schema's one string
 * property, or "message" when the workflow has no schema.  File parts
 * become the input's "files" (a list of references; their bytes are in
 * fs, stored as blobs by the caller once the input is accepted).
 */
static json_t *
a2as_input(struct serve_tool *tool, json_t *parts, struct a2as_files *fs,
    char *err, size_t errlen)
{
	json_t *p, *in = NULL, *sch = json_object_get(tool->meta,
	    "input_schema"), *props, *v, *files = json_array();
	const char *k, *key = NULL;
	char *text = NULL, *j, e2[512];
	size_t i;
	int nstr = 0;

	props = json_object_get(sch, "properties");
	json_array_foreach(parts, i, p) {
		if (json_is_object(json_object_get(p, "data")) && in == NULL)
			in = json_deep_copy(json_object_get(p, "data"));
		else if (json_is_string(json_object_get(p, "text"))) {
			j = xasprintf("%s%s%s", text ? text : "", text ? "\n" :
			    "", json_string_value(json_object_get(p, "text")));
			free(text);
			text = j;
		} else if (json_object_get(p, "file") != NULL &&
		    a2as_file_in(p, i, fs, files, err, errlen) != 0)
			goto bad;
	}
	if (json_array_size(files) > 0 && sch != NULL &&
	    json_object_get(props, "files") == NULL) {
		errf(err, errlen, "workflow '%s' takes no files: its "
		    "input_schema has no \"files\" property", tool->name);
		goto bad;
	}
	if (in == NULL && text == NULL && json_array_size(files) == 0) {
		errf(err, errlen, "the message has no text, data or file "
		    "part");
		goto bad;
	}
	if (in == NULL && text == NULL)
		in = json_object();
	if (in == NULL) {
		json_object_foreach(props, k, v)
			if (strcmp(k, "files") != 0 && strcmp(
			    json_string_value(json_object_get(v, "type")) ?
			    json_string_value(json_object_get(v, "type")) : "",
			    "string") == 0) {
				key = k;
				nstr++;
			}
		if (sch == NULL)
			key = "message";
		else if (nstr != 1) {
			errf(err, errlen, "workflow '%s' takes an input of "
			    "more than one field (its input_schema): send it "
			    "as a data part", tool->name);
			goto bad;
		}
		in = json_pack("{s:s}", key, text);
	}
	if (json_array_size(files) > 0) {
		if (json_object_get(in, "files") != NULL) {
			errf(err, errlen, "the data part has \"files\" and "
			    "the message has file parts: send one or the "
			    "other");
			goto bad;
		}
		json_object_set(in, "files", files);
	}
	if (tool->checked_input != NULL && schema_validate(tool->checked_input,
	    in, e2, sizeof e2) != 0) {
		errf(err, errlen, "the input does not match workflow '%s''s "
		    "input_schema: %s", tool->name, e2);
		goto bad;
	}
	free(text);
	json_decref(files);
	return in;
bad:
	free(text);
	json_decref(files);
	json_decref(in);
	a2as_files_clear(fs);
	return NULL;
}

/* Normalised parts of a message of either version. */
static json_t *
a2as_parts_in(json_t *msg)
{
	return a2a_parts(msg);
}

/* A waiter for the task's next stop: a stream (its first events sent) or
   a blocking answer. */
static void
a2as_wait(struct a2as_task *t, struct evhttp_request *req, json_t *id,
    int v1, int stream, const char *say)
{
	struct a2as_waiter *wt = xcalloc(1, sizeof *wt);

	wt->req = req;
	wt->rpc_id = json_incref(id);
	wt->v1 = v1;
	wt->stream = stream;
	TAILQ_INSERT_TAIL(&t->waiters, wt, entry);
	if (!stream)
		return;
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/event-stream");
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Cache-Control", "no-cache");
	evhttp_send_reply_start(req, 200, "OK");
	a2as_sse(wt, v1 ? json_pack("{s:o}", "task", a2as_task_json(t, 1,
	    -1)) : a2as_task_json(t, 0, -1));
	a2as_sse(wt, a2as_status_event(t, v1, say));
}

/*
 * The client's answer to the approval its task waits for: a data part
 * {"approved": true|false, "comment"?, "answer"?} or the text "approve"
 * or "reject" (a comment may follow).  Approved or not, *approved and
 * *comment (borrowed from parts, or NULL) are set; -1 when the message
 * says neither.
 */
static int
a2as_verdict(json_t *parts, int *approved, const char **comment,
    json_t **answer)
{
	json_t *p, *d;
	const char *txt;
	size_t i, n;

	*comment = NULL;
	*answer = NULL;
	json_array_foreach(parts, i, p) {
		d = json_object_get(p, "data");
		if (json_is_object(d) && json_is_boolean(json_object_get(d,
		    "approved"))) {
			*approved = json_is_true(json_object_get(d,
			    "approved"));
			*comment = json_string_value(json_object_get(d,
			    "comment"));
			*answer = json_object_get(d, "answer");
			return 0;
		}
	}
	json_array_foreach(parts, i, p) {
		if ((txt = json_string_value(json_object_get(p, "text"))) ==
		    NULL)
			continue;
		txt += strspn(txt, " \t\r\n");
		if (strncasecmp(txt, "approve", 7) == 0)
			n = 7, *approved = 1;
		else if (strncasecmp(txt, "reject", 6) == 0)
			n = 6, *approved = 0;
		else
			return -1;
		txt += n + strspn(txt + n, ":;,.- \t\r\n");
		*comment = *txt != '\0' ? txt : NULL;
		return 0;
	}
	return -1;
}

/*
 * SendMessage on a task (taskId): the answer to the approval it waits for
 * (input-required), written to the store as weft approve's; the run's
 * poll takes it.  The reply follows the task to its next stop.
 */
/*
 * A send that asked to return at once (v1.0 returnImmediately, v0.3
 * blocking = false): answer with task t as it is now; 1 when answered.
 */
static int
a2as_answer_now(struct evhttp_request *req, json_t *id, struct a2as_task *t,
    json_t *conf, int v1)
{
	int immediate = v1 ? json_is_true(json_object_get(conf,
	    "returnImmediately")) || json_is_true(json_object_get(conf,
	    "return_immediately")) : json_is_false(json_object_get(conf,
	    "blocking"));

	if (!immediate)
		return 0;
	a2as_send(req, jrpc_result(json_incref(id), v1 ? json_pack("{s:o}",
	    "task", a2as_task_json(t, 1, -1)) : a2as_task_json(t, 0, -1)));
	return 1;
}

static void
a2as_answer(struct a2as_route *ro, struct evhttp_request *req, json_t *id,
    json_t *msg, json_t *conf, const struct httpd_client *who, int v1,
    int stream)
{
	struct a2as_task *t, *tmp;
	json_t *parts, *ans, *v = NULL;
	const char *comment;
	char err[1024], *atext = NULL, *vtext;
	int approved = 0;

	t = a2as_find(ro->a, ro->tool, json_string_value(json_object_get(msg,
	    "taskId")), who, &tmp);
	if (t == NULL) {
		a2as_error(req, id, -32001, "task '%s' not found",
		    json_string_value(json_object_get(msg, "taskId")));
		return;
	}
	if (tmp != NULL || t->x == NULL || t->ask_path == NULL) {
		a2as_error(req, id, -32004, "task '%s' is %s: only a task "
		    "that waits for an approval (input-required) takes "
		    "another message; start a new task in the same contextId",
		    t->id, t->state);
		if (tmp != NULL)
			a2as_task_free(tmp);
		return;
	}
	parts = a2as_parts_in(msg);
	if (a2as_verdict(parts, &approved, &comment, &ans) != 0) {
		json_decref(parts);
		a2as_error(req, id, JRPC_INVALID_PARAMS, "task '%s' waits for "
		    "an approval (\"%s\"): answer with a data part "
		    "{\"approved\": true|false, \"comment\": \"...\"} or the "
		    "text \"approve\" or \"reject\"", t->id, t->question);
		return;
	}
	if (ans != NULL)
		atext = json_dumps(ans, JSON_COMPACT | JSON_ENCODE_ANY);
	v = approval_make_answer(t->ask_schema, approved, atext, comment ?
	    comment : "rejected by the A2A client", "a2a client", err,
	    sizeof err);
	free(atext);
	if (v == NULL) {
		json_decref(parts);
		a2as_error(req, id, JRPC_INVALID_PARAMS, "the approval's "
		    "answer (a data part's \"answer\"): %s", err);
		return;
	}
	if (approved && comment != NULL)
		json_object_set_new(v, "comment", json_string(comment));
	json_decref(parts);
	vtext = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	if (store_approval_answer(ro->a->s->st, t->id, t->ask_path,
	    t->ask_call, approved ? "approved" : "rejected", vtext,
	    now_wall()) < 0) {
		free(vtext);
		a2as_error(req, id, JRPC_INTERNAL_ERROR, "cannot answer the "
		    "approval: %s", store_error(ro->a->s->st));
		return;
	}
	free(vtext);
	/* The run takes it at its next poll; the task works meanwhile. */
	a2as_ask_clear(t);
	t->state = "working";
	t->updated = now_wall();
	exec_poll(t->x);
	if (!stream && a2as_answer_now(req, id, t, conf, v1))
		return;
	if (t->x == NULL) {
		/* Ended inside exec_poll: the answer at once. */
		a2as_send(req, jrpc_result(json_incref(id), v1 ? json_pack(
		    "{s:o}", "task", a2as_task_json(t, 1, -1)) :
		    a2as_task_json(t, 0, -1)));
		return;
	}
	a2as_wait(t, req, id, v1, stream, approved ? "approved" :
	    "rejected");
}

/* SendMessage / SendStreamingMessage (message/send, message/stream). */
static void
a2as_send_msg(struct a2as_route *ro, struct evhttp_request *req,
    json_t *id, json_t *params, const struct httpd_client *who, int v1,
    int stream)
{
	struct a2as *a = ro->a;
	struct serve *s = a->s;
	json_t *msg = json_object_get(params, "message"), *parts, *in;
	json_t *conf = json_object_get(params, "configuration");
	struct a2as_task *t;
	struct a2as_waiter *wt;
	const char *cid = json_string_value(json_object_get(msg, "contextId"));
	char err[1024], *msgtext, hash[65];
	int rc, admit, i;
	struct a2as_files fs;

	if (!json_is_object(msg) || !json_is_array(json_object_get(msg,
	    "parts"))) {
		a2as_error(req, id, JRPC_INVALID_PARAMS, "/params/message: "
		    "must be a message with parts");
		return;
	}
	if (json_is_string(json_object_get(msg, "taskId")) &&
	    *json_string_value(json_object_get(msg, "taskId")) != '\0') {
		a2as_answer(ro, req, id, msg, conf, who, v1, stream);
		return;
	}
	parts = a2as_parts_in(msg);
	memset(&fs, 0, sizeof fs);
	in = a2as_input(ro->tool, parts, &fs, err, sizeof err);
	if (in == NULL) {
		json_decref(parts);
		a2as_error(req, id, JRPC_INVALID_PARAMS, "%s", err);
		return;
	}
	/* The files' bytes as blobs, before the run's first event names
	   them (store.h). */
	for (i = 0; i < fs.n; i++)
		if (store_blob_put(s->st, fs.data[i], fs.len[i], hash) != 0) {
			a2as_files_clear(&fs);
			json_decref(parts);
			json_decref(in);
			a2as_error(req, id, JRPC_INTERNAL_ERROR, "cannot "
			    "store the message's files: %s",
			    store_error(s->st));
			return;
		}
	a2as_files_clear(&fs);
	t = xcalloc(1, sizeof *t);
	/* A slot now, or a place in the admission queue (as an MCP call). */
	if ((admit = serve_admit(s, a2as_admit_cb, t, &t->q)) < 0) {
		free(t);
		json_decref(parts);
		json_decref(in);
		a2as_error(req, id, JRPC_INTERNAL_ERROR, "the server is %s; "
		    "try again later", s->stopping ? "stopping" : "running "
		    "its most workflows and its admission queue is full (weft "
		    "serve --max-runs, --max-queued)");
		return;
	}
	t->a = a;
	t->tool = ro->tool;
	TAILQ_INIT(&t->waiters);
	random_hex(t->id, 8);
	if (cid != NULL && strlen(cid) < sizeof t->ctx && *cid != '\0')
		snprintf(t->ctx, sizeof t->ctx, "%s", cid);
	else
		random_hex(t->ctx, 16);
	snprintf(t->owner, sizeof t->owner, "%s", who != NULL ? who->id : "");
	t->message = json_pack("{s:O?, s:o}", "messageId", json_object_get(msg,
	    "messageId"), "parts", parts);
	t->input = json_dumps(in, JSON_COMPACT);
	json_decref(in);
	t->state = "submitted";
	t->updated = now_wall();
	msgtext = json_dumps(t->message, JSON_COMPACT);
	rc = who != NULL ? serve_owner_put(s, t->id, who->id, err,
	    sizeof err) : 0;
	if (rc == 0)
		rc = serve_a2a_task_put(s, t->id, t->tool->name, t->ctx,
		    msgtext, err, sizeof err);
	free(msgtext);
	if (rc == 0 && admit == 0)
		rc = a2as_begin(t, err, sizeof err);
	if (rc != 0) {
		if (t->q != NULL)
			serve_admit_cancel(s, t->q);
		a2as_task_free(t);
		a2as_error(req, id, JRPC_INTERNAL_ERROR, "%s", err);
		return;
	}
	TAILQ_INSERT_TAIL(&a->tasks, t, entry);
	a->ntasks++;
	a2as_trim(a);
	if (!stream && a2as_answer_now(req, id, t, conf, v1))
		return;
	wt = xcalloc(1, sizeof *wt);
	wt->req = req;
	wt->rpc_id = json_incref(id);
	wt->v1 = v1;
	wt->stream = stream;
	TAILQ_INSERT_TAIL(&t->waiters, wt, entry);
	if (stream) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Type", "text/event-stream");
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Cache-Control", "no-cache");
		evhttp_send_reply_start(req, 200, "OK");
		a2as_sse(wt, v1 ? json_pack("{s:o}", "task", a2as_task_json(t,
		    1, -1)) : a2as_task_json(t, 0, -1));
		a2as_sse(wt, a2as_status_event(t, v1, t->q != NULL ?
		    "waiting for a free run slot (weft serve --max-runs)" :
		    "the run started"));
	}
}

/* GetTask / CancelTask / SubscribeToTask of params.id. */
static void
a2as_task_method(struct a2as_route *ro, struct evhttp_request *req,
    json_t *id, json_t *params, const struct httpd_client *who, int v1,
    const char *what)
{
	const char *tid = json_string_value(json_object_get(params, "id"));
	json_t *hl = json_object_get(params, "historyLength");
	struct a2as_task *t, *tmp;
	struct a2as_waiter *wt;

	t = a2as_find(ro->a, ro->tool, tid, who, &tmp);
	if (t == NULL) {
		a2as_error(req, id, -32001, "task '%s' not found",
		    tid ? tid : "");
		return;
	}
	if (strcmp(what, "cancel") == 0 && t->q != NULL) {
		/* Never started: out of the queue, nothing to record. */
		serve_admit_cancel(ro->a->s, t->q);
		t->q = NULL;
		t->state = "canceled";
		t->updated = now_wall();
		a2as_send(req, jrpc_result(json_incref(id), a2as_task_json(t,
		    v1, -1)));
		a2as_finish_waiters(t);
		goto out;
	}
	if (strcmp(what, "cancel") == 0) {
		if (t->x == NULL) {
			a2as_error(req, id, -32002, "task '%s' is %s: it "
			    "cannot be cancelled", t->id, t->state);
			goto out;
		}
		exec_cancel(t->x, "the A2A client cancelled the task");
		/* The end may be recorded later, on the loop: the answer
		   says canceled either way. */
		{
			const char *was = t->state;

			t->state = "canceled";
			a2as_send(req, jrpc_result(json_incref(id),
			    a2as_task_json(t, v1, -1)));
			if (t->x != NULL)
				t->state = was;
		}
		goto out;
	}
	if (strcmp(what, "subscribe") == 0) {
		if ((t->x == NULL && t->q == NULL) || tmp != NULL) {
			a2as_error(req, id, -32004, "task '%s' has ended "
			    "(%s): nothing to subscribe to", t->id, t->state);
			goto out;
		}
		wt = xcalloc(1, sizeof *wt);
		wt->req = req;
		wt->rpc_id = json_incref(id);
		wt->v1 = v1;
		wt->stream = 1;
		TAILQ_INSERT_TAIL(&t->waiters, wt, entry);
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Type", "text/event-stream");
		evhttp_send_reply_start(req, 200, "OK");
		a2as_sse(wt, v1 ? json_pack("{s:o}", "task", a2as_task_json(t,
		    1, -1)) : a2as_task_json(t, 0, -1));
		goto out;
	}
	a2as_send(req, jrpc_result(json_incref(id), a2as_task_json(t, v1,
	    json_is_integer(hl) ? (int)json_integer_value(hl) : -1)));
out:
	if (tmp != NULL)
		a2as_task_free(tmp);
}

struct a2as_listing {
	struct a2as_route		*ro;
	const struct httpd_client	*who;
	json_t				*list;
};

/* One task of a listing, in memory or of before a restart. */
static int
a2as_list_cb(void *arg, const char *id)
{
	struct a2as_listing *l = arg;
	struct a2as_task *t, *tmp;

	if ((t = a2as_find(l->ro->a, l->ro->tool, id, l->who, &tmp)) != NULL)
		json_array_append_new(l->list, a2as_task_json(t, 1, 0));
	if (tmp != NULL)
		a2as_task_free(tmp);
	return 0;
}

/* ListTasks (v1.0): who's tasks of the workflow, newest first, those of
   before a restart too (serve_owners.c keeps them). */
static void
a2as_list(struct a2as_route *ro, struct evhttp_request *req, json_t *id,
    json_t *params, const struct httpd_client *who)
{
	const char *cid = json_string_value(json_object_get(params,
	    "contextId"));
	struct a2as_listing l = { ro, who, json_array() };
	json_int_t max = json_is_integer(json_object_get(params, "pageSize")) ?
	    json_integer_value(json_object_get(params, "pageSize")) : 50;

	if (max < 1 || max > 1000)
		max = max < 1 ? 1 : 1000;
	if (serve_a2a_tasks(ro->a->s, ro->tool->name, who != NULL &&
	    !who->operator ? who->id : NULL, cid, (int)max, a2as_list_cb,
	    &l) != 0) {
		json_decref(l.list);
		a2as_error(req, id, JRPC_INTERNAL_ERROR, "cannot list the "
		    "tasks: the server's database failed");
		return;
	}
	a2as_send(req, jrpc_result(json_incref(id), json_pack("{s:o, s:s, "
	    "s:I, s:I}", "tasks", l.list, "nextPageToken", "", "pageSize", max,
	    "totalSize", (json_int_t)json_array_size(l.list))));
}

/* ---- the card ----------------------------------------------------------- */

/* The agent card of a workflow, in a version's shape. */
static json_t *
a2as_card(struct a2as_route *ro, struct evhttp_request *req, int v1)
{
	struct serve_tool *tool = ro->tool;
	const char *host = evhttp_find_header(evhttp_request_get_input_headers(
	    req), "Host");
	json_t *card, *skill, *sch = json_object_get(tool->meta,
	    "input_schema");
	char *url, *desc;
	const char *d = json_string_value(json_object_get(tool->meta,
	    "description"));

	url = xasprintf("http://%s/a2a/%s", host ? host : "127.0.0.1",
	    tool->name);
	if (sch != NULL) {
		char *js = json_dumps(sch, JSON_COMPACT | JSON_SORT_KEYS);

		desc = xasprintf("%s Input (JSON Schema, as a data part; or "
		    "text for its one string field): %s", d ? d : "", js);
		free(js);
	} else
		desc = xstrdup(d ? d : "");
	skill = json_pack("{s:s, s:s, s:s, s:[s], s:[s,s], s:[s,s]}", "id",
	    tool->name, "name", tool->name, "description", desc, "tags",
	    "weft", "inputModes", "text/plain", "application/json",
	    "outputModes", "text/plain", "application/json");
	free(desc);
	card = json_pack("{s:s, s:s, s:s, s:[s,s], s:[s,s], s:[o]}", "name",
	    tool->name, "description", d ? d : "", "version", PACKAGE_VERSION,
	    "defaultInputModes", "text/plain", "application/json",
	    "defaultOutputModes", "text/plain", "application/json", "skills",
	    skill);
	json_object_set_new(card, "provider", json_pack("{s:s, s:s}",
	    "organization", "weft", "url", "https://github.com/weft"));
	if (httpd_routes_ntokens(ro->a->s->routes) > 0) {
		json_object_set_new(card, "securitySchemes", json_pack(
		    "{s:{s:{s:s, s:s}}}", "bearer", "httpAuthSecurityScheme",
		    "scheme", "Bearer", "description", "weft serve's token"));
		if (!v1) {
			json_object_set_new(card, "securitySchemes", json_pack(
			    "{s:{s:s, s:s}}", "bearer", "type", "http",
			    "scheme", "bearer"));
			json_object_set_new(card, "security", json_pack(
			    "[{s:[]}]", "bearer"));
		} else
			json_object_set_new(card, "securityRequirements",
			    json_pack("[{s:{s:[]}}]", "schemes", "bearer"));
	}
	if (v1) {
		json_object_set_new(card, "supportedInterfaces", json_pack(
		    "[{s:s, s:s, s:s}, {s:s, s:s, s:s}]", "url", url,
		    "protocolBinding", "JSONRPC", "protocolVersion", "1.0",
		    "url", url, "protocolBinding", "JSONRPC",
		    "protocolVersion", "0.3"));
		json_object_set_new(card, "capabilities", json_pack(
		    "{s:b, s:b, s:b}", "streaming", 1, "pushNotifications", 0,
		    "extendedAgentCard", 0));
	} else {
		json_object_set_new(card, "protocolVersion", json_string(
		    "0.3.0"));
		json_object_set_new(card, "url", json_string(url));
		json_object_set_new(card, "preferredTransport", json_string(
		    "JSONRPC"));
		json_object_set_new(card, "capabilities", json_pack(
		    "{s:b, s:b, s:b}", "streaming", 1, "pushNotifications", 0,
		    "stateTransitionHistory", 0));
	}
	free(url);
	return card;
}

/* The request's version: A2A-Version 1.x is v1.0, else v0.3. */
static int
a2as_v1(struct evhttp_request *req)
{
	const char *v = evhttp_find_header(evhttp_request_get_input_headers(
	    req), "A2A-Version");

	return v != NULL && strncmp(v, "1.", 2) == 0;
}

static void
a2as_card_cb(struct evhttp_request *req, const struct httpd_client *who,
    void *arg)
{
	json_t *card;
	char *s;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		a2as_reply(req, 405, "text/plain", "GET the agent card\n");
		return;
	}
	card = a2as_card(arg, req, a2as_v1(req));
	s = json_dumps(card, JSON_COMPACT);
	a2as_reply(req, 200, "application/json", s);
	free(s);
	json_decref(card);
}

/* ---- JSON-RPC ----------------------------------------------------------- */

static void
a2as_rpc_cb(struct evhttp_request *req, const struct httpd_client *who,
    void *arg)
{
	struct a2as_route *ro = arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct jrpc_msg m;
	size_t n = evbuffer_get_length(in);
	char err[512];
	int code, v1 = a2as_v1(req);
	const char *me;

	if (evhttp_request_get_command(req) == EVHTTP_REQ_GET) {
		a2as_card_cb(req, who, arg);
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		a2as_reply(req, 405, "text/plain", "POST JSON-RPC here\n");
		return;
	}
	if (n > A2AS_MAX_BODY || jrpc_parse((const char *)evbuffer_pullup(in,
	    -1), n, &m, &code, err, sizeof err) != 0) {
		a2as_error(req, NULL, n > A2AS_MAX_BODY ?
		    JRPC_INVALID_REQUEST : code, "%s", n > A2AS_MAX_BODY ?
		    "the request is too large" : err);
		return;
	}
	if (m.kind != JRPC_REQUEST) {
		a2as_error(req, m.id, JRPC_INVALID_REQUEST, "a JSON-RPC "
		    "request with an id is expected");
		jrpc_msg_clear(&m);
		return;
	}
	me = m.method;
	if (m.params != NULL && !json_is_object(m.params)) {
		a2as_error(req, m.id, JRPC_INVALID_PARAMS, "/params: must be "
		    "an object");
	} else if (strcmp(me, v1 ? "SendMessage" : "message/send") == 0)
		a2as_send_msg(ro, req, m.id, m.params, who, v1, 0);
	else if (strcmp(me, v1 ? "SendStreamingMessage" : "message/stream") ==
	    0)
		a2as_send_msg(ro, req, m.id, m.params, who, v1, 1);
	else if (strcmp(me, v1 ? "GetTask" : "tasks/get") == 0)
		a2as_task_method(ro, req, m.id, m.params, who, v1, "get");
	else if (strcmp(me, v1 ? "CancelTask" : "tasks/cancel") == 0)
		a2as_task_method(ro, req, m.id, m.params, who, v1, "cancel");
	else if (strcmp(me, v1 ? "SubscribeToTask" : "tasks/resubscribe") == 0)
		a2as_task_method(ro, req, m.id, m.params, who, v1,
		    "subscribe");
	else if (v1 && strcmp(me, "ListTasks") == 0)
		a2as_list(ro, req, m.id, m.params, who);
	else if (strstr(me, "ushNotification") != NULL)
		a2as_error(req, m.id, -32003, "push notifications are not "
		    "supported");
	else
		a2as_error(req, m.id, JRPC_METHOD_NOT_FOUND, "method '%s' is "
		    "not a%s A2A method (A2A-Version %s)", me, v1 ? "" : "n",
		    v1 ? "1.0" : "0.3: absent or not 1.x");
	jrpc_msg_clear(&m);
}

/* ---- lifetime ----------------------------------------------------------- */

int
serve_a2a_init(struct serve *s, struct httpd_routes *routes)
{
	struct a2as *a = xcalloc(1, sizeof *a);
	char *p;
	int i;

	a->s = s;
	TAILQ_INIT(&a->tasks);
	a->poll_ev = event_new(s->base, -1, EV_PERSIST, a2as_poll_cb, a);
	a->routes = xcalloc(s->ntools > 0 ? s->ntools : 1,
	    sizeof *a->routes);
	a->nroutes = s->ntools;
	s->a2a = a;
	s->routes = routes;
	for (i = 0; i < s->ntools; i++) {
		a->routes[i].a = a;
		a->routes[i].tool = &s->tools[i];
		p = xasprintf("/a2a/%s", s->tools[i].name);
		httpd_routes_add(routes, p, a2as_rpc_cb, &a->routes[i]);
		free(p);
		p = xasprintf("/a2a/%s/.well-known/agent-card.json",
		    s->tools[i].name);
		httpd_routes_add(routes, p, a2as_card_cb, &a->routes[i]);
		free(p);
	}
	if (s->ntools > 0)
		httpd_routes_add(routes, "/.well-known/agent-card.json",
		    a2as_card_cb, &a->routes[0]);
	return 0;
}

void
serve_a2a_free(struct serve *s)
{
	struct a2as *a = s != NULL ? s->a2a : NULL;
	struct a2as_task *t;
	struct a2as_waiter *wt;

	if (a == NULL)
		return;
	while ((t = TAILQ_FIRST(&a->tasks)) != NULL) {
		TAILQ_REMOVE(&a->tasks, t, entry);
		if (t->x != NULL)
			exec_abandon(t->x);	/* resumable */
		if (t->q != NULL)
			serve_admit_cancel(s, t->q);	/* never started */
		while ((wt = TAILQ_FIRST(&t->waiters)) != NULL) {
			TAILQ_REMOVE(&t->waiters, wt, entry);
			if (wt->stream)
				evhttp_send_reply_end(wt->req);
			else
				a2as_error(wt->req, wt->rpc_id,
				    JRPC_INTERNAL_ERROR, "the server stopped");
			json_decref(wt->rpc_id);
			free(wt);
		}
		a2as_task_free(t);
	}
	event_free(a->poll_ev);
	free(a->routes);
	free(a);
	s->a2a = NULL;
}
