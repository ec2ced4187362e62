/*
 * coord.c: the coordinator's loop, task queue, workers and flush step.
 *
 * Threads: nng runs aio callbacks on its own threads.  Those callbacks only
 * re-arm a receive or post the received message to the loop through the
 * bridge; every struct below is touched by the loop thread alone.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "engine/captoken.h"
#include "engine/coord.h"
#include "runtime/fault.h"
#include "engine/grant.h"
#include "engine/record.h"
#include "engine/replay.h"
#include "engine/store.h"
#include "runtime/util.h"
#include "protocols/jsonrpc.h"
#include "runtime/bridge.h"
#include "runtime/chan.h"
#include "runtime/jread.h"
#include "runtime/proc.h"
#include "runtime/queue.h"
#include "runtime/supervise.h"
#include "runtime/wire.h"

#define COORD_MAX_RESTARTS	32
/* Most items (results, failures, task ids) one wire request may carry. */
#define COORD_MAX_ITEMS		65536
/* Refused wire requests recorded (worker.refused); later ones counted. */
#define COORD_MAX_REFUSALS	64


/* What the coordinator knows of a worker's work (its process: sup). */
struct worker {
	int			 id;
	int			 nleased;
	json_t			*cancel;	/* task ids to abandon */
	char			**servers;	/* MCP servers it holds */
	size_t			 nservers;
};

/* One nng REP context (runtime/chan.h): one request in flight at a time. */
struct rctx {
	struct chan		 ch;
	struct coord		*c;
	json_t			*id;		/* request id while parked */
	int			 worker;	/* poller, while parked */
	int			 slots;
	TAILQ_ENTRY(rctx)	 entry;		/* parked polls */
};
TAILQ_HEAD(rctx_list, rctx);

struct delivery {
	int64_t		 ticket;
	json_t		*result;
	json_t		*error;
};

struct coord {
	struct coord_opts	 opts;
	struct store		*st;
	struct event_base	*base;
	struct bridge		*bridge;
	struct event		*flush_ev;
	struct event		*tick_ev;
	struct event		*int_ev;
	struct event		*term_ev;
	struct supervisor	*sup;		/* the worker processes */
	int			 nrefused;	/* wire refusals recorded */
	nng_socket		 sock;
	int			 sock_open;
	struct rctx		*rctxs;
	size_t			 nrctx;
	struct rctx_list	 parked;
	struct worker		*workers;
	int			 nworkers;
	int			 restarts;
	int			 stopping;

	struct qtask		**tasks;	/* by id; NULL once done */
	size_t			 ntasks, tasks_cap;
	struct queue		 q;		/* tasks, leases, backoff */

	struct delivery		*dl;
	size_t			 ndl, dl_cap;

	const char		*run_id;	/* record_run(c->rec) */
	struct record		*rec;		/* events, recorded answers */
	struct captoken_keys	*keys;		/* signing keys */
	struct grants		*grants;	/* the run's grants */
	struct coord_sink	 sink;
	int			 run_ended;
	int			 cancelled;
	int			 failed;
	char			 ferr[1536];
};

static void	coord_rctx_loop_cb(struct chan *, nng_msg *);
static void	coord_reply(struct rctx *, json_t *);
static void	coord_reply_text(struct rctx *, const char *, size_t);
static int	has_ctl(const char *);
static void	coord_task_end(struct coord *, struct qtask *, json_t *,
		    json_t *);

struct event_base *
coord_base(struct coord *c)
{
	return c->base;
}

int
coord_worker_restarts(struct coord *c)
{
	return c->restarts;
}

int
coord_cancelled(struct coord *c)
{
	return c->cancelled;
}

/* Record a fatal coordinator error; the loop ends at the next flush. */
static void
coord_fail(struct coord *c, const char *fmt, ...)
{
	va_list ap;

	if (c->failed)
		return;
	c->failed = 1;
	va_start(ap, fmt);
	vsnprintf(c->ferr, sizeof c->ferr, fmt, ap);
	va_end(ap);
	event_base_loopbreak(c->base);
}

void
coord_store_message(struct coord *c, char *buf, size_t len)
{
	const char *id = c->run_id != NULL ? c->run_id : "?";
	char what[1100];
	int kind;

	if ((kind = store_broken(c->st, what, sizeof what)) == 0) {
		errf(buf, len, "store: %s", store_error(c->st));
		return;
	}
	errf(buf, len, "%s while recording event %lld of run %s; the run is "
	    "left as recorded so far (%lld events) and can be resumed with "
	    "`weft resume %s` once %s", what, (long long)record_seq(c->rec), id,
	    (long long)store_event_count(c->st, id), id,
	    kind == STORE_BROKEN_FULL ? "space is freed" :
	    "the storage is fixed");
}

/* The store refused a write: stop dispatching and end the loop. */
static void
coord_store_fail(struct coord *c)
{
	char msg[1536];

	coord_store_message(c, msg, sizeof msg);
	coord_fail(c, "%s", msg);
}

/* A task came back from its backoff: dispatch it. */
static void
coord_ready_cb(void *arg)
{
	coord_kick(arg);
}

void
coord_kick(struct coord *c)
{
	if (!event_pending(c->flush_ev, EV_TIMEOUT, NULL))
		event_active(c->flush_ev, EV_TIMEOUT, 0);
}

/* The record could not write to the store. */
static void
coord_store_fail_cb(void *arg)
{
	coord_store_fail(arg);
}

int64_t
coord_event_text(struct coord *c, const char *kind, int64_t span,
    int64_t parent_span, const char *path, int attempt, const char *text,
    int64_t tokens, double cost)
{
	return record_event_text(c->rec, kind, span, parent_span, path,
	    attempt, text, tokens, cost);
}

int64_t
coord_event(struct coord *c, const char *kind, int64_t span,
    int64_t parent_span, const char *path, int attempt, json_t *payload,
    int64_t tokens, double cost)
{
	char *text = NULL;
	int64_t seq;

	if (payload != NULL)
		text = json_dumps(payload, JSON_COMPACT);
	seq = coord_event_text(c, kind, span, parent_span, path, attempt, text,
	    tokens, cost);
	free(text);
	return seq;
}

/* Record a task's lease row. */
static void
coord_task_row(struct coord *c, struct qtask *t, const char *state)
{
	struct store_task row;
	char id[32], key[128];

	snprintf(id, sizeof id, "%lld", (long long)t->id);
	snprintf(key, sizeof key, "%s:%lld", c->run_id, (long long)t->id);
	memset(&row, 0, sizeof row);
	row.run_id = c->run_id;
	row.task_id = id;
	row.node_path = t->path;
	row.kind = t->kind;
	row.state = state;
	row.attempt = t->attempt;
	row.worker = t->worker;
	row.lease_until = t->state == QT_LEASED ?
	    now_wall() + (t->lease_until - now_mono()) : 0;
	row.idem_key = key;
	if (store_task_put(c->st, &row) != 0)
		coord_store_fail(c);
}

/* Record a token minted for grant id: its id and claims, never itself. */
static void
coord_on_mint(void *arg, int id, const struct captoken *tok)
{
	struct coord *c = arg;
	const json_t *cl = captoken_claims(tok);
	json_t *p;

	p = json_pack("{s:i, s:s, s:s, s:s, s:O, s:I, s:I}", "grant", id,
	    "jti", captoken_jti(tok), "kid", captoken_kid(tok), "node",
	    captoken_node(tok), "tools", json_object_get(cl, "tools"),
	    "max_calls", (json_int_t)captoken_max_calls(tok), "exp",
	    (json_int_t)captoken_exp_ms(tok));
	if (captoken_parent(tok) != NULL)
		json_object_set_new(p, "parent", json_string(
		    captoken_parent(tok)));
	if (json_object_get(cl, "args") != NULL)
		json_object_set(p, "args", json_object_get(cl, "args"));
	coord_event(c, "token.mint", 0, 0, captoken_node(tok), 0, p, 0, 0);
	json_decref(p);
}

int
coord_grant(struct coord *c, int parent, const char *path,
    const json_t *grant, int eager, char *err, size_t errlen)
{
	return grants_add(c->grants, parent, path, grant, eager, NULL, err,
	    errlen);
}

/* Record a refused token and fail its task (a permanent error). */
static void
coord_token_refused(struct coord *c, struct qtask *t, int reason,
    const char *msg)
{
	json_t *p;

	p = json_pack("{s:s, s:s, s:s}", "kind", FAIL_TOKEN, "reason",
	    captoken_reason_name(reason), "message", msg);
	coord_task_end(c, t, NULL, p);
	json_decref(p);
}

/*
 * The token of task t's grant; if count, the call is counted first.
 * When that is refused the task fails (count) or NULL is returned.
 */
static const char *
coord_task_token(struct coord *c, struct qtask *t, int count)
{
	const char *tok;
	char err[512];
	int reason;

	if (fault_hit("token.nocount"))
		count = 0;
	tok = grants_token(c->grants, t->grant, count &&
	    strcmp(t->kind, TASK_MCP_CALL) == 0, captoken_now_ms(), &reason,
	    err, sizeof err);
	if (tok == NULL && count)
		coord_token_refused(c, t, reason, err);
	else if (tok != NULL && count)
		t->size += strlen(tok);
	return tok;
}

/* A token like grant id's, minted for another run or already expired. */
static char *
coord_fault_mint(struct coord *c, int id, int expired)
{
	const json_t *cl = grants_claims(c->grants, id);
	struct captoken *tok;
	int64_t now = captoken_now_ms();
	json_t *g;
	char err[256], *s;

	if (cl == NULL)
		return xstrdup("");
	g = json_deep_copy(cl);
	json_object_del(g, "v");
	json_object_del(g, "iat");
	json_object_del(g, "jti");
	json_object_del(g, "parent");
	if (expired) {
		json_object_set_new(g, "exp", json_integer(now - 3600000));
		now -= 7200000;
	} else
		json_object_set_new(g, "run", json_string("another-run"));
	s = captoken_mint(c->keys, g, NULL, now, &tok, err, sizeof err) == 0 ?
	    xstrdup(captoken_string(tok)) : xstrdup("");
	if (*s != '\0')
		captoken_free(tok);
	json_decref(g);
	return s;
}

/*
 * The token as sent, a copy: altered when a WEFT_FAULT token point asks
 * for it (the tests of the workers' checks, docs/security.md).
 */
static char *
coord_fault_token(struct coord *c, struct qtask *t, const char *tok)
{
	char *s;
	size_t n;

	if (tok == NULL)
		return xstrdup("");
	if (fault_hit("token.foreign_run"))
		return coord_fault_mint(c, t->grant, 0);
	if (fault_hit("token.expired"))
		return coord_fault_mint(c, t->grant, 1);
	if (fault_hit("token.garbage"))
		return xstrdup("wct1.garbage.!!!.???");
	s = xstrdup(tok);
	n = strlen(s);
	if (fault_hit("token.tamper") && n > 10)
		s[n - 5] = s[n - 5] == 'A' ? 'B' : 'A';
	if (fault_hit("token.truncate"))
		s[n / 2] = '\0';
	return s;
}

/*
 * Task t's execution policy (qpolicy_parse) from its params, and the tool
 * it calls.
 */
static void
coord_policy(struct coord *c, struct qtask *t, const char *params)
{
	json_t *js = json_loads(params, 0, NULL);

	qpolicy_parse(&t->pol, js, c->opts.lease_s, c->opts.heartbeat_s,
	    c->opts.max_attempts);
	if (json_is_string(json_object_get(js, "name")))
		t->tool = xstrdup(json_string_value(json_object_get(js,
		    "name")));
	json_decref(js);
}

/*
 * A tool task's replay key (docs/durability.md): its call index in the
 * node, its step name (kind:server/tool) and the hash of its summary
 * (server, tool, arguments with sorted keys), as JSON members for the
 * tool.call event, a heap string.  A server's tool list belongs to the
 * run, not to the node that happens to ask for it first (which depends on
 * scheduling): it is keyed "(tools)/SERVER", a path no node can have,
 * also in the members.  *ticket is set when the run's record answers the
 * call (its outcome is delivered from there), -1 on an offline replay's
 * divergence, else 0.
 */
static char *
coord_task_key(struct coord *c, const char *kind, const char *path,
    int64_t span, const char *srv, const char *tool, const char *summary,
    int64_t *ticket)
{
	json_t *q;
	char hash[65], *obj, *step, *meta, *key = NULL;
	int call;

	if (strcmp(kind, TASK_MCP_LIST) == 0 && !record_legacy_lists(c->rec))
		path = key = xasprintf("(tools)/%s", srv);
	call = coord_call_index(c, path);
	step = xasprintf("%s:%s%s%s", kind, srv, tool ? "/" : "",
	    tool ? tool : "");
	replay_hash(summary, NULL, hash);
	/* Only a record can be diverged from: a live run needs no text. */
	obj = record_replay(c->rec) != NULL ? xasprintf("{%s}", summary) :
	    NULL;
	*ticket = coord_recorded(c, path, span, call, step, hash, obj);
	free(obj);
	if (*ticket != 0) {		/* answered: nothing to record */
		free(step);
		free(key);
		return NULL;
	}
	q = json_pack("{s:i, s:s, s:s}", "call", call, "hash", hash, "step",
	    step);
	if (key != NULL)
		json_object_set_new(q, "key", json_string(key));
	meta = json_dumps(q, JSON_COMPACT);
	meta[strlen(meta) - 1] = '\0';		/* the members, no braces */
	memmove(meta, meta + 1, strlen(meta));
	json_decref(q);
	free(step);
	free(key);
	return meta;
}

int64_t
coord_submit(struct coord *c, const char *kind, const char *path,
    int64_t span, const char *server, const char *tool, const char *params,
    const char *summary, int grant)
{
	struct qtask *t;
	int64_t t_id;
	json_t *p;
	char *text, *meta;

	meta = coord_task_key(c, kind, path, span, server, tool, summary,
	    &t_id);
	if (t_id != 0)
		return t_id > 0 ? t_id : coord_ticket(c);
	t = xcalloc(1, sizeof *t);
	t->id = coord_ticket(c);
	c->tasks[t->id] = t;
	t->attempt = 1;
	t->kind = xstrdup(kind);
	t->path = xstrdup(path);
	t->span = span;
	t->params = xstrdup(params);
	t->server = xstrdup(server);
	t->grant = grant;
	t->size = strlen(params) + strlen(path) + 512;
	coord_policy(c, t, params);
	queue_add(&c->q, t);
	text = xasprintf("{\"task\":%lld,\"kind\":\"%s\",%s,%s}",
	    (long long)t->id, kind, meta, summary);
	free(meta);
	coord_event_text(c, strcmp(kind, TASK_MCP_LIST) == 0 ? "tool.list" :
	    "tool.call", span, 0, path, 1, text, 0, 0);
	free(text);
	if (t->size > WIRE_MAX_MSG - 4096) {
		/* Refused, never truncated or sent. */
		t_id = t->id;
		p = json_pack("{s:s, s:o}", "kind", FAIL_TOO_LARGE, "message",
		    json_sprintf("the task's arguments (%zu bytes) exceed the "
		    "%d-byte message limit", t->size, WIRE_MAX_MSG));
		coord_task_end(c, t, NULL, p);
		json_decref(p);
		return t_id;
	}
	t_id = t->id;		/* a refused token frees t */
	if (coord_task_token(c, t, 1) == NULL)
		return t_id;
	coord_kick(c);
	return t_id;
}

/* Record a refused token: the task, who refused, why; its id, not it. */
static void
coord_token_event(struct coord *c, struct qtask *t, json_t *error)
{
	const json_t *cl = grants_claims(c->grants, t->grant);
	json_t *p;

	p = json_pack("{s:I, s:s, s:O, s:O}", "task", (json_int_t)t->id,
	    "by", t->state == QT_LEASED ? "worker" : "coordinator",
	    "reason", json_object_get(error, "reason"), "message",
	    json_object_get(error, "message"));
	if (p == NULL)
		return;
	if (cl != NULL)
		json_object_set(p, "jti", json_object_get(cl, "jti"));
	coord_event(c, "token.reject", t->span, 0, t->path, t->attempt, p, 0,
	    0);
	json_decref(p);
}

/* Take a task out of the queue, the leased list or its backoff wait. */
static void
coord_task_unlink(struct coord *c, struct qtask *t)
{
	int w = queue_unlink(&c->q, t);

	if (w >= 0 && ALWAYS(w < c->nworkers))
		c->workers[w].nleased--;
}

/* Finish a task: record its outcome and queue the delivery. */
static void
coord_task_end(struct coord *c, struct qtask *t, json_t *result, json_t *error)
{
	const char *kind;
	char *body, *text;

	if (error != NULL && json_is_string(json_object_get(error, "kind")) &&
	    strcmp(json_string_value(json_object_get(error, "kind")),
	    FAIL_TOKEN) == 0)
		coord_token_event(c, t, error);
	coord_task_unlink(c, t);
	t->state = QT_DONE;
	if (strcmp(t->kind, TASK_MCP_LIST) == 0)
		kind = result != NULL ? "tool.list.result" : "tool.list.error";
	else
		kind = result != NULL ? "tool.result" : "tool.error";
	body = json_dumps(result != NULL ? result : error, JSON_COMPACT |
	    JSON_ENCODE_ANY);
	text = xasprintf("{\"task\":%lld,\"attempt\":%d,\"worker\":%d,"
	    "\"duration\":%.6f,\"%s\":%s}", (long long)t->id, t->attempt,
	    t->worker, t->started > 0 ? now_mono() - t->started : 0.0,
	    result != NULL ? "result" : "error", body);
	coord_event_text(c, kind, t->span, 0, t->path, t->attempt, text, 0, 0);
	free(body);
	free(text);
	coord_task_row(c, t, result != NULL ? "done" : "failed");
	coord_deliver(c, t->id, result, error);
	c->tasks[t->id] = NULL;
	qtask_free(t);
}

int64_t
coord_ticket(struct coord *c)
{
	if (c->ntasks + 1 >= c->tasks_cap) {
		c->tasks_cap = c->tasks_cap ? c->tasks_cap * 2 : 256;
		c->tasks = xrealloc(c->tasks, c->tasks_cap * sizeof *c->tasks);
	}
	c->ntasks++;
	c->tasks[c->ntasks] = NULL;
	return (int64_t)c->ntasks;
}

void
coord_deliver(struct coord *c, int64_t ticket, json_t *result, json_t *error)
{
	struct delivery *d;

	if (c->ndl == c->dl_cap) {
		c->dl_cap = c->dl_cap ? c->dl_cap * 2 : 64;
		c->dl = xrealloc(c->dl, c->dl_cap * sizeof *c->dl);
	}
	d = &c->dl[c->ndl++];
	d->ticket = ticket;
	d->result = result != NULL ? json_incref(result) : NULL;
	d->error = error != NULL ? json_incref(error) : NULL;
	coord_kick(c);
}

/* End a task with error {kind, message}. */
static void
coord_task_fail(struct coord *c, struct qtask *t, const char *kind,
    json_t *msg)
{
	json_t *err = json_pack("{s:s, s:o}", "kind", kind, "message", msg);

	coord_task_end(c, t, NULL, err);
	json_decref(err);
}

/* Ask the worker holding task t's attempt to abandon it (heartbeat). */
static void
coord_cancel_on_worker(struct coord *c, struct qtask *t)
{
	struct worker *w;

	if (t->state != QT_LEASED || t->worker < 0 ||
	    t->worker >= c->nworkers)
		return;
	w = &c->workers[t->worker];
	if (w->cancel == NULL)
		w->cancel = json_array();
	json_array_append_new(w->cancel, json_integer(t->id));
}

/*
 * An idempotent = false call was in flight when its worker was lost: it
 * may or may not have happened, so it is not run again.  The task fails
 * with not_idempotent_lost (the run stops) and task.lost records which
 * call, where, and what to do.
 */
static void
coord_task_lost(struct coord *c, struct qtask *t, const char *why)
{
	json_t *p, *msg;

	msg = json_sprintf("tool call %s.%s (node %s, task %lld, attempt %d) "
	    "was in flight when %s; the tool is idempotent = false, so it was "
	    "not run again: it may or may not have taken effect.  Check the "
	    "server's side, then `weft resume %s --rerun-lost` calls it "
	    "again", t->server,
	    t->tool != NULL ? t->tool : "?", t->path, (long long)t->id,
	    t->attempt, why, c->run_id);
	p = json_pack("{s:I, s:i, s:s, s:s, s:s, s:O}", "task",
	    (json_int_t)t->id, "attempt", t->attempt, "server", t->server,
	    "tool", t->tool != NULL ? t->tool : "", "reason", why, "message",
	    msg);
	coord_event(c, "task.lost", t->span, 0, t->path, t->attempt, p, 0, 0);
	json_decref(p);
	coord_task_fail(c, t, FAIL_NOT_IDEMPOTENT, msg);
}

/*
 * Task t's attempt failed with kind (why says how): run it again after
 * the policy's backoff, or end it when the policy does not retry kind,
 * the attempts are used up, or the total timeout leaves no room.  A lost
 * idempotent = false call is never re-run (coord_task_lost).
 */
static void
coord_task_retry(struct coord *c, struct qtask *t, const char *kind,
    const char *why)
{
	json_t *p;
	double delay;
	int call = strcmp(t->kind, TASK_MCP_CALL) == 0;

	if (call && !t->pol.idempotent &&
	    strcmp(kind, FAIL_LOST_WORKER) == 0) {
		coord_task_lost(c, t, why);
		return;
	}
	if (call && !t->pol.idempotent) {
		coord_task_fail(c, t, kind, json_sprintf("%s (not retried: "
		    "the tool is idempotent = false)", why));
		return;
	}
	if (!qpolicy_retries(&t->pol, kind)) {
		coord_task_fail(c, t, kind, json_string(why));
		return;
	}
	if (t->attempt >= t->pol.max_attempts) {
		coord_task_fail(c, t, kind, json_sprintf("%s; gave up after "
		    "%d attempts", why, t->attempt));
		return;
	}
	delay = qpolicy_delay(&t->pol, t->attempt);
	/* An attempt needs some time to be worth starting: a worker's timer
	   can fire a hair before the deadline the coordinator keeps. */
	if (now_mono() + delay + QPOLICY_MIN_ATTEMPT_S >= t->deadline) {
		coord_task_fail(c, t, FAIL_TIMEOUT, json_sprintf("%s; no time "
		    "left for attempt %d within the total timeout of %gs", why,
		    t->attempt + 1, t->pol.total_s));
		return;
	}
	coord_task_unlink(c, t);
	p = json_pack("{s:I, s:i, s:i, s:s, s:s, s:f}", "task",
	    (json_int_t)t->id, "attempt", t->attempt, "next_attempt",
	    t->attempt + 1, "kind", kind, "reason", why, "delay", delay);
	coord_event(c, "task.retry", t->span, 0, t->path, t->attempt, p, 0, 0);
	json_decref(p);
	t->attempt++;
	t->worker = -1;
	coord_task_row(c, t, "queued");
	queue_delay(&c->q, t, delay);
}

/* A worker reported task t's attempt failed: retry or end it. */
static void
coord_task_failed(struct coord *c, struct qtask *t, json_t *error)
{
	const char *kind = json_string_value(json_object_get(error, "kind"));
	const char *msg = json_string_value(json_object_get(error,
	    "message"));

	if (kind == NULL || !qpolicy_retries(&t->pol, kind)) {
		coord_task_end(c, t, NULL, error);
		return;
	}
	coord_task_retry(c, t, kind, msg != NULL ? msg : kind);
}

/* Append the task as sent to a worker, JSON text, to buf. */
static void
coord_task_text(struct coord *c, struct qtask *t, struct evbuffer *buf)
{
	double left;
	json_t *js;
	char *q, *token;

	token = coord_fault_token(c, t, coord_task_token(c, t, 0));

	evbuffer_add_printf(buf, "{\"id\":%lld,\"run\":\"%s\",\"path\":",
	    (long long)t->id, c->run_id);
	/* Node names are plain; quote through jansson only if needed. */
	if (strpbrk(t->path, "\"\\") == NULL && !has_ctl(t->path))
		evbuffer_add_printf(buf, "\"%s\"", t->path);
	else {
		js = json_string(t->path);
		q = json_dumps(js, JSON_ENCODE_ANY);
		evbuffer_add(buf, q, strlen(q));
		free(q);
		json_decref(js);
	}
	/* The attempt's time: its own timeout, within the total deadline. */
	left = t->deadline - now_mono();
	if (left > t->pol.attempt_s)
		left = t->pol.attempt_s;
	if (left < 0.001)
		left = 0.001;
	evbuffer_add_printf(buf, ",\"attempt\":%d,\"idem\":\"%s:%lld\","
	    "\"deadline\":%.3f,\"timeout\":%.3f,\"kind\":\"%s\","
	    "\"token\":\"%s\",\"params\":%s}", t->attempt, c->run_id,
	    (long long)t->id, now_wall() + left, left, t->kind, token,
	    t->params);
	free(token);
}

/* Whether s holds a control character. */
static int
has_ctl(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20)
			return 1;
	return 0;
}

/* Whether worker w already runs a session of server. */
static int
coord_holds(struct worker *w, const char *server)
{
	size_t i;

	for (i = 0; i < w->nservers; i++)
		if (strcmp(w->servers[i], server) == 0)
			return 1;
	return 0;
}

/* Note that worker w now holds a session of server. */
static void
coord_hold(struct worker *w, const char *server)
{
	if (coord_holds(w, server))
		return;
	w->servers = xrealloc(w->servers, (w->nservers + 1) *
	    sizeof *w->servers);
	w->servers[w->nservers++] = xstrdup(server);
}

/* Forget the sessions of a worker (it died). */
static void
coord_forget(struct worker *w)
{
	size_t i;

	for (i = 0; i < w->nservers; i++)
		free(w->servers[i]);
	free(w->servers);
	w->servers = NULL;
	w->nservers = 0;
}

/* Whether a parked poll other than r comes from a holder of server. */
static int
coord_other_holder(struct coord *c, struct rctx *r, const char *server)
{
	struct rctx *o;

	TAILQ_FOREACH(o, &c->parked, entry)
		if (o != r && coord_holds(&c->workers[o->worker], server))
			return 1;
	return 0;
}

/*
 * Hand queued tasks to parked polls.  The queue prefers a worker that
 * already holds the task's MCP server (no second server process, no
 * second initialize); a task whose server no waiting worker holds goes to
 * the first poll with room.
 */
static void
coord_dispatch(struct coord *c)
{
	struct rctx *r;
	struct qtask *t, *next;
	struct worker *w;
	struct evbuffer *buf;
	size_t bytes;
	int n, rounds = 0;

	while (c->q.nqueued > 0 && (r = TAILQ_FIRST(&c->parked)) != NULL &&
	    rounds++ < 2 * (int)c->nrctx) {
		TAILQ_REMOVE(&c->parked, r, entry);
		w = &c->workers[r->worker];
		buf = evbuffer_new();
		evbuffer_add(buf, "{\"tasks\":[", 10);
		bytes = 0;
		n = 0;
		TAILQ_FOREACH_SAFE(t, &c->q.queued, entry, next) {
			if (n >= r->slots)
				break;
			if (!coord_holds(w, t->server) &&
			    coord_other_holder(c, r, t->server))
				continue;
			/* A reply must fit the worker's message limit. */
			if (n > 0 && bytes + t->size > WIRE_MAX_MSG - 4096)
				break;
			bytes += t->size;
			queue_lease(&c->q, t, r->worker);
			w->nleased++;
			coord_hold(w, t->server);
			if (n++ > 0)
				evbuffer_add(buf, ",", 1);
			coord_task_text(c, t, buf);
		}
		if (n == 0) {
			/* Everything queued waits for another worker. */
			evbuffer_free(buf);
			TAILQ_INSERT_TAIL(&c->parked, r, entry);
			continue;
		}
		evbuffer_add(buf, "]}", 2);
		coord_reply_text(r, (const char *)evbuffer_pullup(buf, -1),
		    evbuffer_get_length(buf));
		evbuffer_free(buf);
		fault_crash("coord.after_dispatch");
	}
}

/* Commit, deliver results to the graph, pump it, and dispatch. */
static void
coord_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct coord *c = arg;
	struct delivery *dl;
	size_t i, n;
	int rc;

	for (;;) {
		if (store_commit(c->st) != 0) {
			coord_store_fail(c);
			return;
		}
		if (c->failed || c->run_ended)
			break;
		dl = c->dl;
		n = c->ndl;
		c->dl = NULL;
		c->ndl = c->dl_cap = 0;
		for (i = 0; i < n; i++) {
			c->sink.deliver(c->sink.arg, dl[i].ticket,
			    dl[i].result, dl[i].error);
			json_decref(dl[i].result);
			json_decref(dl[i].error);
		}
		free(dl);
		rc = c->sink.pump(c->sink.arg);
		if (rc == 2)
			c->run_ended = 1;
		else if (rc == 1) {
			/* More graph work is ready: commit and dispatch what
			   this round made, then yield to the loop so worker
			   traffic and signals are served between rounds. */
			if (store_commit(c->st) != 0) {
				coord_store_fail(c);
				return;
			}
			coord_dispatch(c);
			coord_kick(c);
			return;
		} else if (rc == 0 && c->ndl == 0) {
			if (store_commit(c->st) != 0) {
				coord_store_fail(c);
				return;
			}
			/* Offline, every answer comes from the record at
			   once: a graph that waits would wait for ever. */
			if (record_discarding(c->rec))
				coord_fail(c, "replay: the graph waits for an "
				    "answer that cannot come offline (a bug in "
				    "weft's runner)");
			break;
		}
	}
	if (c->run_ended || c->failed) {
		event_base_loopbreak(c->base);
		return;
	}
	coord_dispatch(c);
}

/*
 * The answers to a request.  One ownership rule for all three: the answer
 * consumes r->id, the reference the context took on the request's id (NULL
 * when the request had none), and leaves r->id NULL.
 */

/* Send the answer m on r; the send callback re-arms the context. */
static void
coord_send(struct rctx *r, nng_msg *m)
{
	chan_send(&r->ch, m);
}

/* Send the JSON-RPC object msg (stolen). */
static void
coord_send_json(struct rctx *r, json_t *msg)
{
	nng_msg *m;
	char *buf;
	size_t len;

	buf = jrpc_dump(msg, &len, 0);
	json_decref(msg);
	if (nng_msg_alloc(&m, 0) != 0 || nng_msg_append(m, buf, len) != 0)
		fatalx(1, "out of memory");
	free(buf);
	coord_send(r, m);
}

/* Answer with result (stolen). */
static void
coord_reply(struct rctx *r, json_t *result)
{
	json_t *msg = jrpc_result(r->id, result);

	r->id = NULL;
	coord_send_json(r, msg);
}

/* Answer with a result that is the JSON text res. */
static void
coord_reply_text(struct rctx *r, const char *res, size_t reslen)
{
	static const char pre[] = "{\"jsonrpc\":\"2.0\",\"id\":";
	static const char mid[] = ",\"result\":";
	nng_msg *m;
	char *id;

	id = json_dumps(r->id != NULL ? r->id : json_null(),
	    JSON_ENCODE_ANY | JSON_COMPACT);
	json_decref(r->id);
	r->id = NULL;
	if (id == NULL || nng_msg_alloc(&m, 0) != 0 ||
	    nng_msg_append(m, pre, sizeof pre - 1) != 0 ||
	    nng_msg_append(m, id, strlen(id)) != 0 ||
	    nng_msg_append(m, mid, sizeof mid - 1) != 0 ||
	    nng_msg_append(m, res, reslen) != 0 ||
	    nng_msg_append(m, "}", 1) != 0)
		fatalx(1, "out of memory");
	free(id);
	coord_send(r, m);
}

/* Answer with a JSON-RPC error. */
static void
coord_reply_error(struct rctx *r, int code, const char *text)
{
	json_t *msg = jrpc_error(r->id, code, text, NULL);

	r->id = NULL;
	coord_send_json(r, msg);
}

/* A worker's id from params, checked against the table. */
static int
coord_worker_of(struct coord *c, json_t *params)
{
	json_t *w = json_object_get(params, "worker");
	json_int_t id;

	if (!json_is_integer(w))
		return -1;
	id = json_integer_value(w);
	if (id < 0 || id >= c->nworkers)
		return -1;
	return (int)id;
}

/*
 * MCP progress notifications a worker forwarded for task t (in a
 * heartbeat or with the outcome): one tool.progress event each, at most
 * 64 per message, fields checked (a worker is a trust boundary).
 */
static void
coord_progress(struct coord *c, struct qtask *t, json_t *items)
{
	json_t *it, *p, *v;
	size_t i;

	json_array_foreach(items, i, it) {
		if (i >= 64)
			break;
		if (!json_is_number(json_object_get(it, "progress")))
			continue;
		p = json_pack("{s:I, s:O}", "task", (json_int_t)t->id,
		    "progress", json_object_get(it, "progress"));
		if (json_is_number(v = json_object_get(it, "total")))
			json_object_set(p, "total", v);
		if (json_is_string(v = json_object_get(it, "message")) &&
		    json_string_length(v) <= 512)
			json_object_set(p, "message", v);
		coord_event(c, "tool.progress", t->span, 0, t->path,
		    t->attempt, p, 0, 0);
		json_decref(p);
	}
}

/* heartbeat: progress of tasks the worker still holds. */
static void
coord_on_progress(struct coord *c, int wid, json_t *list)
{
	json_t *it;
	struct qtask *t;
	json_int_t id;
	size_t i;

	json_array_foreach(list, i, it) {
		id = json_integer_value(json_object_get(it, "id"));
		t = (id > 0 && (size_t)id <= c->ntasks) ? c->tasks[id] : NULL;
		if (t != NULL && t->state == QT_LEASED && t->worker == wid &&
		    t->attempt == json_integer_value(json_object_get(it,
		    "attempt")))
			coord_progress(c, t, json_object_get(it, "progress"));
	}
}

/*
 * A late or duplicate outcome (a presumed-dead worker's, for an attempt
 * already retried or ended): ignored, and recorded as task.late with
 * what the coordinator holds for the task now.
 */
static void
coord_late(struct coord *c, struct qtask *t, json_int_t id, int attempt,
    int wid, int failed)
{
	json_t *p;

	p = json_pack("{s:I, s:i, s:i, s:s, s:s}", "task", id, "attempt",
	    attempt, "worker", wid, "outcome", failed ? "fail" : "complete",
	    "now", t == NULL ? "ended" : t->state == QT_LEASED ?
	    "leased" : "queued");
	if (t != NULL)
		json_object_set_new(p, "current_attempt", json_integer(
		    t->attempt));
	coord_event(c, "task.late", t != NULL ? t->span : 0, 0, t != NULL ?
	    t->path : "", attempt, p, 0, 0);
	json_decref(p);
}

/* complete: results of leased tasks. */
static void
coord_on_complete(struct coord *c, int wid, json_t *items, int failed)
{
	json_t *it, *val;
	struct qtask *t;
	json_int_t id;
	size_t i;
	int attempt;

	json_array_foreach(items, i, it) {
		id = json_integer_value(json_object_get(it, "id"));
		attempt = (int)json_integer_value(json_object_get(it,
		    "attempt"));
		val = json_object_get(it, failed ? "error" : "result");
		t = (id > 0 && (size_t)id <= c->ntasks) ? c->tasks[id] : NULL;
		if (t == NULL || t->state != QT_LEASED ||
		    t->attempt != attempt || t->worker != wid || val == NULL) {
			coord_late(c, t, id, attempt, wid, failed);
			continue;
		}
		fault_crash("coord.after_result");
		coord_progress(c, t, json_object_get(it, "progress"));
		if (failed)
			coord_task_failed(c, t, val);
		else
			coord_task_end(c, t, val, NULL);
	}
}

/* heartbeat: extend the leases a worker still holds. */
static json_t *
coord_on_heartbeat(struct coord *c, int wid, json_t *ids)
{
	json_t *it, *list;
	struct qtask *t;
	json_int_t id;
	size_t i;

	json_array_foreach(ids, i, it) {
		id = json_integer_value(it);
		t = (id > 0 && (size_t)id <= c->ntasks) ? c->tasks[id] : NULL;
		if (t != NULL && t->state == QT_LEASED && t->worker == wid)
			t->lease_until = now_mono() + t->pol.lease_s;
	}
	list = c->workers[wid].cancel;
	c->workers[wid].cancel = NULL;
	return json_pack("{s:o}", "cancel", list != NULL ? list :
	    json_array());
}

/* Record how worker wid confined itself (its hello's report). */
static void
coord_worker_sandbox(struct coord *c, int wid, json_t *report)
{
	json_t *p;

	if (!json_is_object(report))
		return;
	p = json_pack("{s:i, s:I, s:O}", "worker", wid, "pid",
	    (json_int_t)sup_pid(c->sup, wid), "sandbox", report);
	coord_event(c, "worker.sandbox", 0, 0, "", 0, p, 0, 0);
	json_decref(p);
}

/*
 * Refuse a request from a peer that is not the enrolled worker it claims
 * to be, and record it (worker.refused): the first COORD_MAX_REFUSALS of
 * a coordinator, so that a peer that keeps trying cannot fill the store.
 */
static void
coord_refuse(struct coord *c, struct rctx *r, int wid, uint32_t pipe,
    const char *method, const char *why)
{
	char msg[256];
	json_t *p;
	int pid = sup_peer_pid(pipe);

	snprintf(msg, sizeof msg, "%s refused: %s", method, why);
	if (c->nrefused++ < COORD_MAX_REFUSALS && c->run_id != NULL) {
		p = json_pack("{s:i, s:i, s:s, s:s, s:i}", "worker", wid,
		    "pipe", (int)pipe, "method", method, "reason", why,
		    "peer_pid", pid);
		coord_event(c, "worker.refused", 0, 0, "", 0, p, 0, 0);
		json_decref(p);
		coord_kick(c);
	}
	if (c->nrefused == 1 || c->opts.verbose)
		fprintf(stderr, "weft: a connection (pid %d) claiming worker "
		    "%d was refused: %s\n", pid, wid, why);
	coord_reply_error(r, WIRE_E_REFUSED, msg);
}

/*
 * hello: a worker proves who it is with the secret of its enrolment
 * (docs/security.md, "Workers prove who they are"), and is bound to the
 * pipe it said it on; every later request must come on that pipe.
 */
static void
coord_on_hello(struct coord *c, struct rctx *r, int wid, uint32_t pipe,
    json_t *params)
{
	json_t *v = json_object_get(params, "version");
	const char *secret;
	char err[256];

	if (!json_is_integer(v) || json_integer_value(v) != WIRE_VERSION) {
		snprintf(err, sizeof err, "/params/version: protocol version "
		    "mismatch: worker speaks %lld, coordinator %d",
		    (long long)json_integer_value(v), WIRE_VERSION);
		coord_reply_error(r, JRPC_INVALID_PARAMS, err);
		return;
	}
	secret = json_string_value(json_object_get(params, "secret"));
	if (sup_hello(c->sup, wid, secret, pipe, err, sizeof err) != 0) {
		coord_refuse(c, r, wid, pipe, WIRE_HELLO, err);
		return;
	}
	coord_worker_sandbox(c, wid, json_object_get(params, "sandbox"));
	coord_reply(r, json_pack("{s:i, s:i, s:i, s:o}", "version",
	    WIRE_VERSION, "heartbeat_ms", (int)(c->opts.heartbeat_s * 1000),
	    "lease_ms", (int)(c->opts.lease_s * 1000), "keys",
	    captoken_keys_public(c->keys)));
}

/* poll: park the request until there is work (coord_dispatch). */
static void
coord_on_poll(struct coord *c, struct rctx *r, int wid, json_t *params)
{
	if (c->stopping) {
		coord_reply(r, json_pack("{s:b, s:[]}", "shutdown", 1,
		    "tasks"));
		return;
	}
	r->worker = wid;
	r->slots = (int)json_integer_value(json_object_get(params, "slots"));
	if (r->slots < 1)
		r->slots = 1;
	TAILQ_INSERT_TAIL(&c->parked, r, entry);
	coord_kick(c);
}

static void
coord_on_heartbeat_req(struct coord *c, struct rctx *r, int wid,
    json_t *params)
{
	coord_on_progress(c, wid, json_object_get(params, "progress"));
	coord_reply(r, coord_on_heartbeat(c, wid, json_object_get(params,
	    "tasks")));
}

static void
coord_on_complete_req(struct coord *c, struct rctx *r, int wid,
    json_t *params)
{
	coord_on_complete(c, wid, json_object_get(params, "results"), 0);
	coord_reply(r, json_object());
}

static void
coord_on_fail_req(struct coord *c, struct rctx *r, int wid, json_t *params)
{
	coord_on_complete(c, wid, json_object_get(params, "failures"), 1);
	coord_reply(r, json_object());
}

/*
 * Checks of a request's params before any of it is acted on: a field
 * missing or of the wrong type refuses the whole request, with its JSON
 * pointer, instead of reading as 0 (runtime/jread.h).
 */

/* A list of per-task items under key: {id, attempt} and, by what, a
   result, an error {kind, message} or neither; progress optional. */
static int
coord_check_items(json_t *params, const char *key, const char *what,
    char *err, size_t errlen)
{
	json_t *list, *it, *v;
	const char *str;
	json_int_t n;
	char at[96];
	size_t i;

	if (jr_array(params, key, "/params", 1, COORD_MAX_ITEMS, &list, err,
	    errlen) != 0)
		return -1;
	json_array_foreach(list, i, it) {
		snprintf(at, sizeof at, "/params/%s/%zu", key, i);
		if (!json_is_object(it)) {
			errf(err, errlen, "%s: must be an object", at);
			return -1;
		}
		if (jr_int(it, "id", at, 1, 1, INT64_MAX, &n, err,
		    errlen) != 0 || jr_int(it, "attempt", at, 1, 1, INT_MAX,
		    &n, err, errlen) != 0 || jr_array(it, "progress", at, 0,
		    COORD_MAX_ITEMS, &v, err, errlen) != 0)
			return -1;
		if (strcmp(what, "result") == 0 && jr_any(it, "result", at, 1,
		    &v, err, errlen) != 0)
			return -1;
		if (strcmp(what, "error") == 0) {
			if (jr_object(it, "error", at, 1, &v, err,
			    errlen) != 0)
				return -1;
			snprintf(at, sizeof at, "/params/%s/%zu/error", key,
			    i);
			if (jr_str(v, "kind", at, 1, &str, err, errlen) != 0 ||
			    jr_str(v, "message", at, 1, &str, err,
			    errlen) != 0)
				return -1;
		}
	}
	return 0;
}

static int
coord_check_poll(json_t *params, char *err, size_t errlen)
{
	json_int_t n;

	return jr_int(params, "slots", "/params", 0, 0, 1 << 20, &n, err,
	    errlen);
}

static int
coord_check_heartbeat(json_t *params, char *err, size_t errlen)
{
	json_t *list, *it;
	size_t i;

	if (jr_array(params, "tasks", "/params", 1, COORD_MAX_ITEMS, &list,
	    err, errlen) != 0)
		return -1;
	json_array_foreach(list, i, it)
		if (!json_is_integer(it)) {
			errf(err, errlen, "/params/tasks/%zu: must be an "
			    "integer", i);
			return -1;
		}
	if (json_object_get(params, "progress") == NULL)
		return 0;
	return coord_check_items(params, "progress", "progress", err, errlen);
}

static int
coord_check_complete(json_t *params, char *err, size_t errlen)
{
	return coord_check_items(params, "results", "result", err, errlen);
}

static int
coord_check_fail(json_t *params, char *err, size_t errlen)
{
	return coord_check_items(params, "failures", "error", err, errlen);
}

/* The methods of an enrolled worker (hello is apart: it enrols). */
static const struct coord_method {
	const char	*name;
	int		(*check)(json_t *, char *, size_t);
	void		(*fn)(struct coord *, struct rctx *, int, json_t *);
} coord_methods[] = {
	{ WIRE_POLL, coord_check_poll, coord_on_poll },
	{ WIRE_HEARTBEAT, coord_check_heartbeat, coord_on_heartbeat_req },
	{ WIRE_COMPLETE, coord_check_complete, coord_on_complete_req },
	{ WIRE_FAIL, coord_check_fail, coord_on_fail_req },
};

/*
 * Loop thread: handle one request from a peer.  Every path answers once
 * (coord_reply*, which consume r->id) or parks the request (poll).
 */
static void
coord_rctx_loop_cb(struct chan *ch, nng_msg *msg)
{
	struct rctx *r = ch->arg;
	struct coord *c = r->c;
	const struct coord_method *cm = NULL;
	struct jrpc_msg m;
	char err[256];
	uint32_t pipe;
	int code, wid;
	size_t i;

	pipe = (uint32_t)nng_pipe_id(nng_msg_get_pipe(msg));
	if (jrpc_parse(nng_msg_body(msg), nng_msg_len(msg), &m, &code, err,
	    sizeof err) != 0) {
		nng_msg_free(msg);
		coord_reply_error(r, code, err);
		return;
	}
	nng_msg_free(msg);
	if (m.kind != JRPC_REQUEST) {
		coord_reply_error(r, JRPC_INVALID_REQUEST,
		    "expected a request");
		jrpc_msg_clear(&m);
		return;
	}
	r->id = json_incref(m.id);
	for (i = 0; i < sizeof coord_methods / sizeof coord_methods[0]; i++)
		if (strcmp(m.method, coord_methods[i].name) == 0)
			cm = &coord_methods[i];
	if (cm == NULL && strcmp(m.method, WIRE_HELLO) != 0) {
		snprintf(err, sizeof err, "unknown method '%.64s'", m.method);
		coord_reply_error(r, JRPC_METHOD_NOT_FOUND, err);
	} else if ((wid = coord_worker_of(c, m.params)) < 0) {
		coord_reply_error(r, JRPC_INVALID_PARAMS,
		    "/params/worker: unknown worker id");
	} else if (cm == NULL) {
		coord_on_hello(c, r, wid, pipe, m.params);
	} else if (!sup_bound(c->sup, wid, pipe)) {
		coord_refuse(c, r, wid, pipe, m.method, "this connection has "
		    "not enrolled as that worker (hello)");
	} else if (cm->check(m.params, err, sizeof err) != 0) {
		if (c->opts.verbose)
			fprintf(stderr, "weft: worker %d: %s refused: %s\n",
			    wid, m.method, err);
		coord_reply_error(r, JRPC_INVALID_PARAMS, err);
	} else {
		cm->fn(c, r, wid, m.params);
	}
	jrpc_msg_clear(&m);
}

/* A worker process ended (sup_exit_cb): retry its tasks elsewhere and
   restart it. */
static void
coord_worker_died(void *arg, int wid, pid_t pid, int status)
{
	struct coord *c = arg;
	struct worker *w = &c->workers[wid];
	struct qtask *t, *next;
	struct rctx *r, *rnext;
	char how[128], why[256], err[256];
	json_t *p;

	proc_status_str(status, how, sizeof how);
	coord_forget(w);
	json_decref(w->cancel);
	w->cancel = NULL;
	if (c->stopping)
		return;
	snprintf(why, sizeof why, "worker %d (pid %d) %s", wid, (int)pid, how);
	if (c->run_id != NULL) {
		p = json_pack("{s:i, s:i, s:s}", "worker", wid, "pid",
		    (int)pid, "status", how);
		coord_event(c, "worker.exit", 0, 0, "", 0, p, 0, 0);
		json_decref(p);
	}
	if (c->opts.verbose)
		fprintf(stderr, "weft: %s\n", why);
	TAILQ_FOREACH_SAFE(t, &c->q.leased, entry, next)
		if (t->worker == wid)
			coord_task_retry(c, t, FAIL_LOST_WORKER, why);
	/* Polls parked by the dead worker go nowhere; answer and forget. */
	TAILQ_FOREACH_SAFE(r, &c->parked, entry, rnext) {
		if (r->worker == wid) {
			TAILQ_REMOVE(&c->parked, r, entry);
			coord_reply(r, json_pack("{s:[]}", "tasks"));
		}
	}
	if (++c->restarts > COORD_MAX_RESTARTS) {
		coord_fail(c, "workers keep dying (%d restarts); last: %s",
		    c->restarts - 1, why);
		return;
	}
	w->nleased = 0;
	if (sup_start(c->sup, wid, err, sizeof err) != 0)
		coord_fail(c, "cannot restart worker %d: %s", wid, err);
}

/*
 * SIGINT/SIGTERM (Ctrl-C, weft cancel): end the run as cancelled.  Every
 * task not ended is recorded as failed with kind cancelled; the workers,
 * stopped by coord_free, send their servers notifications/cancelled.
 */
static void
coord_int_cb(evutil_socket_t sig, short what, void *arg)
{
	struct coord *c = arg;
	size_t i;

	if (!c->cancelled && c->run_id != NULL)
		for (i = 1; i <= c->ntasks; i++)
			if (c->tasks[i] != NULL)
				coord_task_fail(c, c->tasks[i], FAIL_CANCELLED,
				    json_sprintf("the run was cancelled (%s) "
				    "during attempt %d", sig == SIGINT ?
				    "SIGINT" : "SIGTERM",
				    c->tasks[i]->attempt));
	c->cancelled = 1;
	event_base_loopbreak(c->base);
}

/*
 * A leased task past its deadlines: all attempts (ends it), the lease (no
 * heartbeat: lost worker) or one attempt that the worker did not report
 * failed (a backstop: workers time attempts out themselves).
 */
static void
coord_tick_leased(struct coord *c, struct qtask *t, double now)
{
	char why[256];

	if (now > t->deadline) {
		coord_cancel_on_worker(c, t);
		coord_task_fail(c, t, FAIL_TIMEOUT, json_sprintf("attempt %d "
		    "on worker %d outlived the total timeout of %gs (all "
		    "attempts); it was cancelled", t->attempt, t->worker,
		    t->pol.total_s));
	} else if (t->lease_until < now) {
		snprintf(why, sizeof why, "lease of worker %d expired "
		    "(no heartbeat for %.1fs)", t->worker, t->pol.lease_s);
		coord_task_retry(c, t, FAIL_LOST_WORKER, why);
	} else if (now > t->started + t->pol.attempt_s + 5) {
		coord_cancel_on_worker(c, t);
		snprintf(why, sizeof why, "worker %d did not end attempt %d "
		    "within its timeout of %gs; it was cancelled", t->worker,
		    t->attempt, t->pol.attempt_s);
		coord_task_retry(c, t, FAIL_TIMEOUT, why);
	}
}

/* Once a second: expire leases, attempts, queue waits and deadlines. */
static void
coord_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct coord *c = arg;
	struct qtask *t, *next;
	double now = now_mono();

	TAILQ_FOREACH_SAFE(t, &c->q.leased, entry, next)
		coord_tick_leased(c, t, now);
	TAILQ_FOREACH_SAFE(t, &c->q.queued, entry, next) {
		if (now - t->queued_at > t->pol.queue_s)
			coord_task_fail(c, t, FAIL_QUEUE_TIMEOUT, json_sprintf(
			    "no worker took the task within its queue timeout "
			    "of %gs (attempt %d)", t->pol.queue_s,
			    t->attempt));
		else if (now > t->deadline)
			coord_task_fail(c, t, FAIL_TIMEOUT, json_sprintf(
			    "attempt %d was still queued at the total timeout "
			    "of %gs", t->attempt, t->pol.total_s));
	}
}

/* Load (or create) the signing keys and the grant table. */
static int
coord_keys(struct coord *c, const char *state_dir, char *err, size_t errlen)
{
	char dir[PATH_MAX];

	if (state_dir == NULL) {
		if (state_dir_path(dir, sizeof dir, err, errlen) != 0)
			return -1;
		state_dir = dir;
	}
	if (captoken_keys_load_or_create(state_dir, &c->keys, err,
	    errlen) != 0)
		return -1;
	c->grants = grants_new(c->keys, coord_on_mint, c);
	return 0;
}

struct coord *
coord_new(const struct coord_opts *o, struct store *st, char *err,
    size_t errlen)
{
	struct coord *c = xcalloc(1, sizeof *c);
	struct timeval one = { 1, 0 };
	struct sup_opts so;
	size_t i;
	int rv, w;

	c->opts = *o;
	c->opts.state_dir = NULL;
	c->st = st;
	c->rec = record_new(st, coord_store_fail_cb, c);
	TAILQ_INIT(&c->parked);
	c->base = event_base_new();
	event_base_priority_init(c->base, 2);
	c->bridge = bridge_new(c->base);
	queue_init(&c->q, c->base, coord_ready_cb, c);
	c->flush_ev = event_new(c->base, -1, 0, coord_flush_cb, c);
	event_priority_set(c->flush_ev, 1);
	c->tick_ev = event_new(c->base, -1, EV_PERSIST, coord_tick_cb, c);
	event_add(c->tick_ev, &one);
	c->int_ev = evsignal_new(c->base, SIGINT, coord_int_cb, c);
	event_add(c->int_ev, NULL);
	c->term_ev = evsignal_new(c->base, SIGTERM, coord_int_cb, c);
	event_add(c->term_ev, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (coord_keys(c, o->state_dir, err, errlen) != 0)
		goto fail;
	memset(&so, 0, sizeof so);
	so.workers = o->workers;
	so.slots = o->slots;
	so.no_seccomp = o->worker_no_seccomp;
	if ((c->sup = sup_new(c->base, &so, coord_worker_died, c, err,
	    errlen)) == NULL)
		goto fail;
	if ((rv = nng_rep0_open(&c->sock)) != 0) {
		errf(err, errlen, "nng: %s", nng_strerror(rv));
		goto fail;
	}
	c->sock_open = 1;
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, WIRE_MAX_MSG);
	if ((rv = nng_listen(c->sock, sup_url(c->sup), NULL, 0)) != 0) {
		errf(err, errlen, "cannot listen on %s: %s", sup_url(c->sup),
		    nng_strerror(rv));
		goto fail;
	}
	/* Each worker has at most poll, heartbeat and complete in flight. */
	c->nrctx = (size_t)o->workers * 4 + 4;
	c->rctxs = xcalloc(c->nrctx, sizeof *c->rctxs);
	for (i = 0; i < c->nrctx; i++) {
		struct rctx *r = &c->rctxs[i];

		r->c = c;
		if (chan_open(&r->ch, c->sock, 1, c->bridge,
		    coord_rctx_loop_cb, &c->stopping, r) != 0) {
			errf(err, errlen, "nng: cannot open contexts");
			goto fail;
		}
	}
	c->nworkers = o->workers;
	c->workers = xcalloc(c->nworkers, sizeof *c->workers);
	for (w = 0; w < c->nworkers; w++) {
		c->workers[w].id = w;
		if (!o->external && sup_start(c->sup, w, err, errlen) != 0)
			goto fail;
	}
	return c;
fail:
	coord_free(c);
	return NULL;
}

void
coord_free(struct coord *c)
{
	struct rctx *r;
	struct qtask *t;
	size_t i;

	if (c == NULL)
		return;
	__atomic_store_n(&c->stopping, 1, __ATOMIC_RELEASE);
	/* Parked polls learn of the shutdown; workers exit on it. */
	while ((r = TAILQ_FIRST(&c->parked)) != NULL) {
		TAILQ_REMOVE(&c->parked, r, entry);
		coord_reply(r, json_pack("{s:b, s:[]}", "shutdown", 1, "tasks"));
	}
	if (c->sup != NULL)
		sup_stop(c->sup);
	/*
	 * Stop every context's operation first (waiting for its callback,
	 * which starts no other now), then close the socket: nng_close()
	 * then has nothing in flight to wait for.  No nng_fini(): it could
	 * tear nng down under a pipe still being reaped (an abort, seen one
	 * run in a few hundred under load); what nng has not freed at exit is
	 * its own (tests/lsan.supp).
	 */
	for (i = 0; i < c->nrctx; i++)
		chan_stop(&c->rctxs[i].ch);
	if (c->sock_open)
		nng_close(c->sock);
	for (i = 0; i < c->nrctx; i++) {
		chan_close(&c->rctxs[i].ch);
		json_decref(c->rctxs[i].id);
	}
	free(c->rctxs);
	sup_free(c->sup);
	for (i = 1; i <= c->ntasks; i++) {
		if ((t = c->tasks[i]) != NULL)
			qtask_free(t);
	}
	free(c->tasks);
	for (i = 0; i < c->ndl; i++) {
		json_decref(c->dl[i].result);
		json_decref(c->dl[i].error);
	}
	free(c->dl);
	for (i = 0; c->workers != NULL && i < (size_t)c->nworkers; i++) {
		coord_forget(&c->workers[i]);
		json_decref(c->workers[i].cancel);
	}
	free(c->workers);
	record_free(c->rec);
	grants_free(c->grants);
	captoken_keys_free(c->keys);
	if (c->base != NULL) {
		bridge_free(c->bridge);
		event_free(c->flush_ev);
		event_free(c->tick_ev);
		event_free(c->int_ev);
		event_free(c->term_ev);
		event_base_free(c->base);
	}
	free(c);
}

char *
coord_enrolment(struct coord *c, int wid)
{
	return c->opts.external ? sup_enrol_external(c->sup, wid) : NULL;
}

void
coord_begin_run(struct coord *c, const char *run_id,
    const struct coord_sink *sink)
{
	record_begin(c->rec, run_id);
	c->run_id = record_run(c->rec);
	grants_set_run(c->grants, run_id);
	c->sink = *sink;
	c->run_ended = 0;
}

int
coord_loop(struct coord *c, char *err, size_t errlen)
{
	coord_kick(c);
	while (!c->run_ended && !c->failed && !c->cancelled) {
		if (event_base_loop(c->base, EVLOOP_ONCE) == -1) {
			errf(err, errlen, "event loop failed");
			return -1;
		}
	}
	if (c->failed) {
		errf(err, errlen, "%s", c->ferr);
		return -1;
	}
	return 0;
}

int
coord_call_index(struct coord *c, const char *path)
{
	return record_call_index(c->rec, path);
}

void
coord_set_replay(struct coord *c, struct replay *rec, int64_t last_seq)
{
	int64_t n = rec != NULL && last_seq > 0 ? replay_last_task(rec) : 0;

	record_set_replay(c->rec, rec, last_seq);
	/* A resume's tickets go on after the run's last task id. */
	if (n > (int64_t)c->ntasks && n < INT32_MAX) {
		c->tasks = xrealloc(c->tasks, ((size_t)n + 256) *
		    sizeof *c->tasks);
		memset(c->tasks + c->ntasks, 0, ((size_t)n + 256 -
		    c->ntasks) * sizeof *c->tasks);
		c->tasks_cap = (size_t)n + 256;
		c->ntasks = (size_t)n;
	}
}

int64_t
coord_span_base(struct coord *c)
{
	return record_span_base(c->rec);
}

void
coord_discard_events(struct coord *c)
{
	record_discard(c->rec);
}

int
coord_may_bound(struct coord *c)
{
	return record_may_bound(c->rec);
}

void
coord_all_at_once(struct coord *c)
{
	record_all_at_once(c->rec);
}

int
coord_went_bounded(const struct coord *c)
{
	return record_went_bounded(c->rec);
}

struct replay *
coord_replay(struct coord *c)
{
	return record_replay(c->rec);
}

int64_t
coord_recorded(struct coord *c, const char *path, int64_t span, int call,
    const char *name, const char *hash, const char *desc_json)
{
	json_t *res, *err, *p;
	int64_t from, t;

	switch (record_answer(c->rec, path, call, name, hash, desc_json, &res,
	    &err, &from)) {
	case 0:
		return 0;
	case -1:
		coord_fail(c, "%s", replay_divergence(record_replay(c->rec)));
		return -1;
	}
	t = coord_ticket(c);
	if (!record_discarding(c->rec)) {
		p = json_pack("{s:i, s:s, s:I}", "call", call, "step", name,
		    "from", (json_int_t)from);
		coord_event(c, "step.replayed", span, 0, path, 0, p, 0, 0);
		json_decref(p);
	}
	coord_deliver(c, t, res, err);
	return t;
}
