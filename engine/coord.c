/*
 * coord.c: the coordinator's loop, its runs, the dispatch of their tasks to
 * the workers, the flush step and the wire dispatch.
 *
 * Threads: nng runs aio callbacks on its own threads.  Those callbacks only
 * re-arm a receive or post the received message to the loop through the
 * bridge; every struct below is touched by the loop thread alone.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/tls/tls.h>
#include <openssl/crypto.h>

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
/* A task's wire id: its slot in the table, and a generation above. */
#define COORD_SLOT_BITS		24
#define COORD_SLOT_MASK		((1 << COORD_SLOT_BITS) - 1)
/* Labels a worker may give at hello, and their longest. */
#define COORD_MAX_LABELS	16
#define COORD_LABEL_MAX		64


/* What the coordinator knows of a worker's work (its process: sup). */
struct worker {
	int			 id;
	int			 nleased;
	json_t			*cancel;	/* task ids to abandon */
	char			**servers;	/* MCP servers it holds */
	size_t			 nservers;
	char			**labels;	/* its hello's (--label) */
	size_t			 nlabels;
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

/* A run in the coordinator (coord.h). */
struct crun {
	struct coord		*c;
	const char		*run_id;	/* record_run(rec) */
	struct record		*rec;		/* events, recorded answers */
	struct grants		*grants;	/* the run's grants */
	struct coord_sink	 sink;
	int			 begun;		/* crun_begin */
	struct queue		 q;		/* its tasks */
	int			 nleased;	/* of its tasks, leased now */
	int			 ntasks;	/* not ended */
	int64_t			 tickets;	/* issued: the last task id */
	struct delivery		*dl;
	size_t			 ndl, dl_cap;
	int			 dirty;		/* the pump has work */
	int			 ended;		/* the graph ended */
	int			 told;		/* sink.ended called */
	int			 cancelled;
	int			 failed;
	char			 ferr[1536];
	TAILQ_ENTRY(crun)	 entry;
};
TAILQ_HEAD(crun_list, crun);

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
	nng_listener		 rl;		/* remote workers' listener */
	int			 rl_open;
	nng_tls_config		*tls;
	char			 rurl[320];	/* its address, port bound */
	int			 on_tasks;	/* live tasks with a label */
	struct rctx		*rctxs;
	size_t			 nrctx;
	struct rctx_list	 parked;
	struct worker		*workers;
	int			 nworkers;
	int			 restarts;
	int			 stopping;

	/* Tasks of every run by wire id (slot | generation); free slots
	   are reused under a new generation. */
	struct qtask		**tasks;
	size_t			 nslots, slots_cap;
	uint32_t		*free;
	size_t			 nfree;
	int64_t			 gen;

	struct crun_list	 runs;		/* dispatch turns through
						   them in order */
	int			 nruns;
	struct captoken_keys	*keys;		/* signing keys */
	int			 cancelled;	/* by a signal */
	int			 stop;		/* coord_stop */
	int			 in_loop;	/* coord_loop runs */
	int			 failed;
	char			 ferr[1536];
};

static void	coord_rctx_loop_cb(struct chan *, nng_msg *);
static void	coord_reply(struct rctx *, json_t *);
static void	coord_reply_text(struct rctx *, const char *, size_t);
static int	has_ctl(const char *);
static void	coord_peer(uint32_t, char *, size_t);
static void	coord_task_end(struct crun *, struct qtask *, json_t *,
		    json_t *);
static void	crun_fail(struct crun *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

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

void
coord_counts(struct coord *c, int *runs, int *queued, int *leased)
{
	struct crun *run;

	*runs = c->nruns;
	*queued = *leased = 0;
	TAILQ_FOREACH(run, &c->runs, entry) {
		*queued += (int)run->q.nqueued;
		*leased += run->nleased;
	}
}

int
coord_error(struct coord *c, char *err, size_t errlen)
{
	if (c->failed)
		errf(err, errlen, "%s", c->ferr);
	return c->failed;
}

void
coord_stop(struct coord *c)
{
	c->stop = 1;
	event_base_loopbreak(c->base);
}

struct coord *
crun_coord(struct crun *run)
{
	return run->c;
}

const char *
crun_id(const struct crun *run)
{
	return run->run_id;
}

int
crun_cancelled(const struct crun *run)
{
	return run->cancelled;
}

int
crun_failed(const struct crun *run, char *err, size_t errlen)
{
	if (run->failed)
		errf(err, errlen, "%s", run->ferr);
	return run->failed;
}

/* The run fails in the coordinator (a replay divergence): it ends. */
static void
crun_fail(struct crun *run, const char *fmt, ...)
{
	va_list ap;

	if (run->failed)
		return;
	run->failed = 1;
	run->ended = 1;
	va_start(ap, fmt);
	vsnprintf(run->ferr, sizeof run->ferr, fmt, ap);
	va_end(ap);
	coord_kick(run->c);
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
crun_store_message(struct crun *run, char *buf, size_t len)
{
	struct coord *c = run->c;
	const char *id = run->run_id;
	char what[1100];
	int kind;

	if ((kind = store_broken(c->st, what, sizeof what)) == 0) {
		errf(buf, len, "store: %s", store_error(c->st));
		return;
	}
	errf(buf, len, "%s while recording event %lld of run %s; the run is "
	    "left as recorded so far (%lld events) and can be resumed with "
	    "`weft resume %s` once %s", what, (long long)record_seq(run->rec),
	    id, (long long)store_event_count(c->st, id), id,
	    kind == STORE_BROKEN_FULL ? "space is freed" :
	    "the storage is fixed");
}

/*
 * The store refused a write: stop dispatching and end the loop.  Every
 * run is left as recorded so far (crun_store_message says how much).
 */
static void
coord_store_fail(struct coord *c)
{
	struct crun *run;

	TAILQ_FOREACH(run, &c->runs, entry)
		if (!run->failed)
			crun_fail(run, "store");
	coord_fail(c, "store: %s", store_error(c->st));
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

/* A run's record could not write to the store. */
static void
coord_store_fail_cb(void *arg)
{
	struct crun *run = arg;

	coord_store_fail(run->c);
}

/* Record ev in every open run (facts of the workers, which all share). */
static void
coord_event_all(struct coord *c, const char *kind, json_t *payload)
{
	struct crun *run;

	TAILQ_FOREACH(run, &c->runs, entry)
		if (!run->told)
			crun_event(run, kind, 0, 0, "", 0, payload, 0, 0);
}

int64_t
crun_event_text(struct crun *run, const char *kind, int64_t span,
    int64_t parent_span, const char *path, int attempt, const char *text,
    int64_t tokens, double cost)
{
	return record_event_text(run->rec, kind, span, parent_span, path,
	    attempt, text, tokens, cost);
}

int64_t
crun_event(struct crun *run, const char *kind, int64_t span,
    int64_t parent_span, const char *path, int attempt, json_t *payload,
    int64_t tokens, double cost)
{
	char *text = NULL;
	int64_t seq;

	if (payload != NULL)
		text = json_dumps(payload, JSON_COMPACT);
	seq = crun_event_text(run, kind, span, parent_span, path, attempt,
	    text, tokens, cost);
	free(text);
	return seq;
}

/* Record a task's lease row. */
static void
coord_task_row(struct crun *run, struct qtask *t, const char *state)
{
	struct coord *c = run->c;
	struct store_task row;
	char id[32], key[128];

	snprintf(id, sizeof id, "%lld", (long long)t->id);
	snprintf(key, sizeof key, "%s:%lld", run->run_id, (long long)t->id);
	memset(&row, 0, sizeof row);
	row.run_id = run->run_id;
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
	struct crun *run = arg;
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
	crun_event(run, "token.mint", 0, 0, captoken_node(tok), 0, p, 0, 0);
	json_decref(p);
}

int
crun_grant(struct crun *run, int parent, const char *path,
    const json_t *grant, int eager, char *err, size_t errlen)
{
	return grants_add(run->grants, parent, path, grant, eager, NULL, err,
	    errlen);
}

/* Record a refused token and fail its task (a permanent error). */
static void
coord_token_refused(struct crun *run, struct qtask *t, int reason,
    const char *msg)
{
	json_t *p;

	p = json_pack("{s:s, s:s, s:s}", "kind", FAIL_TOKEN, "reason",
	    captoken_reason_name(reason), "message", msg);
	coord_task_end(run, t, NULL, p);
	json_decref(p);
}

/*
 * The token of task t's grant; if count, the call is counted first.
 * When that is refused the task fails (count) or NULL is returned.
 */
static const char *
coord_task_token(struct crun *run, struct qtask *t, int count)
{
	const char *tok;
	char err[512];
	int reason;

	if (fault_hit("token.nocount"))
		count = 0;
	tok = grants_token(run->grants, t->grant, count &&
	    strcmp(t->kind, TASK_MCP_CALL) == 0, captoken_now_ms(), &reason,
	    err, sizeof err);
	if (tok == NULL && count)
		coord_token_refused(run, t, reason, err);
	else if (tok != NULL && count)
		t->size += strlen(tok);
	return tok;
}

/* A token like grant id's, minted for another run or already expired. */
static char *
coord_fault_mint(struct crun *run, int id, int expired)
{
	const json_t *cl = grants_claims(run->grants, id);
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
	s = captoken_mint(run->c->keys, g, NULL, now, &tok, err,
	    sizeof err) == 0 ?
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
coord_fault_token(struct crun *run, struct qtask *t, const char *tok)
{
	char *s;
	size_t n;

	if (tok == NULL)
		return xstrdup("");
	if (fault_hit("token.foreign_run"))
		return coord_fault_mint(run, t->grant, 0);
	if (fault_hit("token.expired"))
		return coord_fault_mint(run, t->grant, 1);
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
	/* w.mcp_server{ on = "gpu" }: only workers labelled gpu take it. */
	if (json_is_string(json_object_get(json_object_get(js, "server"),
	    "on"))) {
		t->on = xstrdup(json_string_value(json_object_get(
		    json_object_get(js, "server"), "on")));
		c->on_tasks++;
	}
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
coord_task_key(struct crun *run, const char *kind, const char *path,
    int64_t span, const char *srv, const char *tool, const char *summary,
    int64_t *ticket)
{
	json_t *q;
	char hash[65], *obj, *step, *meta, *key = NULL;
	int call;

	if (strcmp(kind, TASK_MCP_LIST) == 0 &&
	    !record_legacy_lists(run->rec))
		path = key = xasprintf("(tools)/%s", srv);
	call = crun_call_index(run, path);
	step = xasprintf("%s:%s%s%s", kind, srv, tool ? "/" : "",
	    tool ? tool : "");
	replay_hash(summary, NULL, hash);
	/* Only a record can be diverged from: a live run needs no text. */
	obj = record_replay(run->rec) != NULL ? xasprintf("{%s}", summary) :
	    NULL;
	*ticket = crun_recorded(run, path, span, call, step, hash, obj);
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

/* Give t a wire id: a free slot of the table, under a new generation. */
static void
coord_task_slot(struct coord *c, struct qtask *t)
{
	size_t slot;

	if (c->nfree > 0)
		slot = c->free[--c->nfree];
	else {
		if (c->nslots + 1 >= c->slots_cap) {
			c->slots_cap = c->slots_cap ? c->slots_cap * 2 : 256;
			c->tasks = xrealloc(c->tasks, c->slots_cap *
			    sizeof *c->tasks);
			c->free = xrealloc(c->free, c->slots_cap *
			    sizeof *c->free);
		}
		slot = ++c->nslots;	/* 0 is no task */
		if (slot > COORD_SLOT_MASK)
			fatalx(1, "more than %d tasks at once",
			    COORD_SLOT_MASK);
	}
	c->tasks[slot] = t;
	t->wire = (++c->gen << COORD_SLOT_BITS) | (int64_t)slot;
}

/* The task of wire id, or NULL (ended, or never was). */
static struct qtask *
coord_task_of(struct coord *c, json_int_t id)
{
	size_t slot = (size_t)(id & COORD_SLOT_MASK);
	struct qtask *t;

	if (id <= 0 || slot == 0 || slot > c->nslots)
		return NULL;
	t = c->tasks[slot];
	return t != NULL && t->wire == id ? t : NULL;
}

int64_t
crun_submit(struct crun *run, const char *kind, const char *path,
    int64_t span, const char *server, const char *tool, const char *params,
    const char *summary, int grant)
{
	struct coord *c = run->c;
	struct qtask *t;
	int64_t t_id;
	json_t *p;
	char *text, *meta;

	meta = coord_task_key(run, kind, path, span, server, tool, summary,
	    &t_id);
	if (t_id != 0)
		return t_id > 0 ? t_id : crun_ticket(run);
	t = xcalloc(1, sizeof *t);
	t->id = crun_ticket(run);
	t->owner = run;
	coord_task_slot(c, t);
	run->ntasks++;
	t->attempt = 1;
	t->kind = xstrdup(kind);
	t->path = xstrdup(path);
	t->span = span;
	t->params = xstrdup(params);
	t->server = xstrdup(server);
	t->grant = grant;
	t->size = strlen(params) + strlen(path) + 512;
	coord_policy(c, t, params);
	queue_add(&run->q, t);
	text = xasprintf("{\"task\":%lld,\"kind\":\"%s\",%s,%s}",
	    (long long)t->id, kind, meta, summary);
	free(meta);
	crun_event_text(run, strcmp(kind, TASK_MCP_LIST) == 0 ? "tool.list" :
	    "tool.call", span, 0, path, 1, text, 0, 0);
	free(text);
	if (t->size > WIRE_MAX_MSG - 4096) {
		/* Refused, never truncated or sent. */
		t_id = t->id;
		p = json_pack("{s:s, s:o}", "kind", FAIL_TOO_LARGE, "message",
		    json_sprintf("the task's arguments (%zu bytes) exceed the "
		    "%d-byte message limit", t->size, WIRE_MAX_MSG));
		coord_task_end(run, t, NULL, p);
		json_decref(p);
		return t_id;
	}
	t_id = t->id;		/* a refused token frees t */
	if (coord_task_token(run, t, 1) == NULL)
		return t_id;
	coord_kick(c);
	return t_id;
}

/* Record a refused token: the task, who refused, why; its id, not it. */
static void
coord_token_event(struct crun *run, struct qtask *t, json_t *error)
{
	const json_t *cl = grants_claims(run->grants, t->grant);
	json_t *p;

	p = json_pack("{s:I, s:s, s:O, s:O}", "task", (json_int_t)t->id,
	    "by", t->state == QT_LEASED ? "worker" : "coordinator",
	    "reason", json_object_get(error, "reason"), "message",
	    json_object_get(error, "message"));
	if (p == NULL)
		return;
	if (cl != NULL)
		json_object_set(p, "jti", json_object_get(cl, "jti"));
	crun_event(run, "token.reject", t->span, 0, t->path, t->attempt, p, 0,
	    0);
	json_decref(p);
}

/* Take a task out of its queue, the leased list or its backoff wait. */
static void
coord_task_unlink(struct crun *run, struct qtask *t)
{
	struct coord *c = run->c;
	int w = queue_unlink(&run->q, t);

	if (w >= 0 && ALWAYS(w < c->nworkers)) {
		c->workers[w].nleased--;
		run->nleased--;
	}
}

/* Finish a task: record its outcome and queue the delivery. */
static void
coord_task_end(struct crun *run, struct qtask *t, json_t *result,
    json_t *error)
{
	struct coord *c = run->c;
	const char *kind;
	char *body, *text;
	size_t slot = (size_t)(t->wire & COORD_SLOT_MASK);

	if (error != NULL && json_is_string(json_object_get(error, "kind")) &&
	    strcmp(json_string_value(json_object_get(error, "kind")),
	    FAIL_TOKEN) == 0)
		coord_token_event(run, t, error);
	coord_task_unlink(run, t);
	queue_end(&run->q, t);
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
	crun_event_text(run, kind, t->span, 0, t->path, t->attempt, text, 0,
	    0);
	free(body);
	free(text);
	coord_task_row(run, t, result != NULL ? "done" : "failed");
	crun_deliver(run, t->id, result, error);
	if (ALWAYS(c->tasks[slot] == t)) {
		c->tasks[slot] = NULL;
		c->free[c->nfree++] = (uint32_t)slot;
	}
	run->ntasks--;
	if (t->on != NULL)
		c->on_tasks--;
	qtask_free(t);
}

int64_t
crun_ticket(struct crun *run)
{
	return ++run->tickets;
}

void
crun_deliver(struct crun *run, int64_t ticket, json_t *result,
    json_t *error)
{
	struct delivery *d;

	if (run->ndl == run->dl_cap) {
		run->dl_cap = run->dl_cap ? run->dl_cap * 2 : 64;
		run->dl = xrealloc(run->dl, run->dl_cap * sizeof *run->dl);
	}
	d = &run->dl[run->ndl++];
	d->ticket = ticket;
	d->result = result != NULL ? json_incref(result) : NULL;
	d->error = error != NULL ? json_incref(error) : NULL;
	run->dirty = 1;
	coord_kick(run->c);
}

/* End a task with error {kind, message}. */
static void
coord_task_fail(struct crun *run, struct qtask *t, const char *kind,
    json_t *msg)
{
	json_t *err = json_pack("{s:s, s:o}", "kind", kind, "message", msg);

	coord_task_end(run, t, NULL, err);
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
	json_array_append_new(w->cancel, json_integer(t->wire));
}

/*
 * An idempotent = false call was in flight when its worker was lost: it
 * may or may not have happened, so it is not run again.  The task fails
 * with not_idempotent_lost (the run stops) and task.lost records which
 * call, where, and what to do.
 */
static void
coord_task_lost(struct crun *run, struct qtask *t, const char *why)
{
	json_t *p, *msg;

	msg = json_sprintf("tool call %s.%s (node %s, task %lld, attempt %d) "
	    "was in flight when %s; the tool is idempotent = false, so it was "
	    "not run again: it may or may not have taken effect.  Check the "
	    "server's side, then `weft resume %s --rerun-lost` calls it "
	    "again", t->server,
	    t->tool != NULL ? t->tool : "?", t->path, (long long)t->id,
	    t->attempt, why, run->run_id);
	p = json_pack("{s:I, s:i, s:s, s:s, s:s, s:O}", "task",
	    (json_int_t)t->id, "attempt", t->attempt, "server", t->server,
	    "tool", t->tool != NULL ? t->tool : "", "reason", why, "message",
	    msg);
	crun_event(run, "task.lost", t->span, 0, t->path, t->attempt, p, 0, 0);
	json_decref(p);
	coord_task_fail(run, t, FAIL_NOT_IDEMPOTENT, msg);
}

/*
 * Task t's attempt failed with kind (why says how): run it again after
 * the policy's backoff, or end it when the policy does not retry kind,
 * the attempts are used up, or the total timeout leaves no room.  A lost
 * idempotent = false call is never re-run (coord_task_lost).
 */
static void
coord_task_retry(struct qtask *t, const char *kind, const char *why)
{
	struct crun *run = t->owner;
	json_t *p;
	double delay;
	int call = strcmp(t->kind, TASK_MCP_CALL) == 0;

	if (call && !t->pol.idempotent &&
	    strcmp(kind, FAIL_LOST_WORKER) == 0) {
		coord_task_lost(run, t, why);
		return;
	}
	if (call && !t->pol.idempotent) {
		coord_task_fail(run, t, kind, json_sprintf("%s (not retried: "
		    "the tool is idempotent = false)", why));
		return;
	}
	if (!qpolicy_retries(&t->pol, kind)) {
		coord_task_fail(run, t, kind, json_string(why));
		return;
	}
	if (t->attempt >= t->pol.max_attempts) {
		coord_task_fail(run, t, kind, json_sprintf("%s; gave up after "
		    "%d attempts", why, t->attempt));
		return;
	}
	delay = qpolicy_delay(&t->pol, t->attempt);
	/* An attempt needs some time to be worth starting: a worker's timer
	   can fire a hair before the deadline the coordinator keeps. */
	if (now_mono() + delay + QPOLICY_MIN_ATTEMPT_S >= t->deadline) {
		coord_task_fail(run, t, FAIL_TIMEOUT, json_sprintf("%s; no time "
		    "left for attempt %d within the total timeout of %gs", why,
		    t->attempt + 1, t->pol.total_s));
		return;
	}
	coord_task_unlink(run, t);
	p = json_pack("{s:I, s:i, s:i, s:s, s:s, s:f}", "task",
	    (json_int_t)t->id, "attempt", t->attempt, "next_attempt",
	    t->attempt + 1, "kind", kind, "reason", why, "delay", delay);
	crun_event(run, "task.retry", t->span, 0, t->path, t->attempt, p, 0,
	    0);
	json_decref(p);
	t->attempt++;
	t->worker = -1;
	coord_task_row(run, t, "queued");
	queue_delay(&run->q, t, delay);
}

/* A worker reported task t's attempt failed: retry or end it. */
static void
coord_task_failed(struct qtask *t, json_t *error)
{
	const char *kind = json_string_value(json_object_get(error, "kind"));
	const char *msg = json_string_value(json_object_get(error,
	    "message"));

	if (kind == NULL || !qpolicy_retries(&t->pol, kind)) {
		coord_task_end(t->owner, t, NULL, error);
		return;
	}
	coord_task_retry(t, kind, msg != NULL ? msg : kind);
}

/* Append the task as sent to a worker, JSON text, to buf. */
static void
coord_task_text(struct qtask *t, struct evbuffer *buf)
{
	struct crun *run = t->owner;
	double left;
	json_t *js;
	char *q, *token;

	token = coord_fault_token(run, t, coord_task_token(run, t, 0));

	evbuffer_add_printf(buf, "{\"id\":%lld,\"run\":\"%s\",\"path\":",
	    (long long)t->wire, run->run_id);
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
	    "\"token\":\"%s\",\"params\":%s}", t->attempt, run->run_id,
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

/* Whether worker w gave label at its hello. */
static int
coord_labelled(const struct worker *w, const char *label)
{
	size_t i;

	for (i = 0; i < w->nlabels; i++)
		if (strcmp(w->labels[i], label) == 0)
			return 1;
	return 0;
}

/* Forget worker w's labels (it left). */
static void
coord_unlabel(struct worker *w)
{
	size_t i;

	for (i = 0; i < w->nlabels; i++)
		free(w->labels[i]);
	free(w->labels);
	w->labels = NULL;
	w->nlabels = 0;
}

/*
 * Record task.waiting, once per task, for each queued task whose label
 * no connected worker has: it waits (up to its queue timeout) for one to
 * join.  Only looked at while some task has a label.
 */
static void
coord_waiting(struct coord *c)
{
	struct crun *run;
	struct qtask *t;
	json_t *p;
	int wid;

	if (c->on_tasks == 0)
		return;
	TAILQ_FOREACH(run, &c->runs, entry)
		TAILQ_FOREACH(t, &run->q.queued, entry) {
			if (t->on == NULL || t->waited)
				continue;
			for (wid = 0; wid < c->nworkers; wid++)
				if (sup_ready(c->sup, wid) &&
				    coord_labelled(&c->workers[wid], t->on))
					break;
			if (wid < c->nworkers)
				continue;
			t->waited = 1;
			p = json_pack("{s:I, s:s, s:s, s:o}", "task",
			    (json_int_t)t->id, "server", t->server, "on",
			    t->on, "reason", json_sprintf("no connected "
			    "worker is labelled %s (weft worker --label %s); "
			    "the task waits for one up to its queue timeout "
			    "of %gs", t->on, t->on, t->pol.queue_s));
			crun_event(run, "task.waiting", t->span, 0, t->path,
			    t->attempt, p, 0, 0);
			json_decref(p);
			coord_kick(c);
		}
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
 * The next task of run for the parked poll r of worker w, or NULL: the
 * queue prefers a worker that already holds the task's MCP server (no
 * second server process, no second initialize); a task whose server no
 * waiting worker holds goes to the first poll with room.
 */
static struct qtask *
coord_next_task(struct coord *c, struct crun *run, struct rctx *r,
    struct worker *w, size_t bytes, int n)
{
	struct qtask *t;

	if (c->opts.run_cap > 0 && run->nleased >= c->opts.run_cap)
		return NULL;
	TAILQ_FOREACH(t, &run->q.queued, entry) {
		if (t->on != NULL && !coord_labelled(w, t->on))
			continue;
		if (!coord_holds(w, t->server) &&
		    coord_other_holder(c, r, t->server))
			continue;
		/* A reply must fit the worker's message limit. */
		if (n > 0 && bytes + t->size > WIRE_MAX_MSG - 4096)
			return NULL;
		return t;
	}
	return NULL;
}

/*
 * Fill the reply to parked poll r with up to its slots of queued tasks,
 * taking them from the runs in turn: each run with work gets an equal
 * share of the poll per pass, and the run served first moves to the back,
 * so one run's thousands of tasks cannot starve another's one.  Returns
 * the tasks taken.
 */
static int
coord_fill(struct coord *c, struct rctx *r, struct evbuffer *buf)
{
	struct worker *w = &c->workers[r->worker];
	struct crun *run, *first;
	struct qtask *t;
	size_t bytes = 0;
	int n = 0, share, k, nwork, took;

	do {
		nwork = 0;
		TAILQ_FOREACH(run, &c->runs, entry)
			if (run->q.nqueued > 0)
				nwork++;
		if (nwork == 0)
			break;
		share = (r->slots - n) / nwork;
		if (share < 1)
			share = 1;
		took = 0;
		first = NULL;
		TAILQ_FOREACH(run, &c->runs, entry) {
			for (k = 0; k < share && n < r->slots; k++) {
				t = coord_next_task(c, run, r, w, bytes, n);
				if (t == NULL)
					break;
				bytes += t->size;
				queue_lease(&run->q, t, r->worker);
				w->nleased++;
				run->nleased++;
				coord_hold(w, t->server);
				if (n++ > 0)
					evbuffer_add(buf, ",", 1);
				coord_task_text(t, buf);
				took++;
				if (first == NULL)
					first = run;
			}
			if (n >= r->slots)
				break;
		}
		/* The run served first waits behind the others next time. */
		if (first != NULL && c->nruns > 1) {
			TAILQ_REMOVE(&c->runs, first, entry);
			TAILQ_INSERT_TAIL(&c->runs, first, entry);
		}
	} while (took > 0 && n < r->slots);
	return n;
}

/* Whether any run has a task queued. */
static int
coord_any_queued(struct coord *c)
{
	struct crun *run;

	TAILQ_FOREACH(run, &c->runs, entry)
		if (run->q.nqueued > 0)
			return 1;
	return 0;
}

/* Hand queued tasks to parked polls. */
static void
coord_dispatch(struct coord *c)
{
	struct rctx *r;
	struct evbuffer *buf;
	int rounds = 0;

	coord_waiting(c);
	while (coord_any_queued(c) && (r = TAILQ_FIRST(&c->parked)) != NULL &&
	    rounds++ < 2 * (int)c->nrctx) {
		TAILQ_REMOVE(&c->parked, r, entry);
		buf = evbuffer_new();
		evbuffer_add(buf, "{\"tasks\":[", 10);
		if (coord_fill(c, r, buf) == 0) {
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

/*
 * Deliver run's outcomes to its graph and pump it.  Returns the pump's
 * answer (coord_sink), or 0 for a run not begun or already ended.
 */
static int
coord_pump(struct crun *run)
{
	struct delivery *dl;
	size_t i, n;
	int rc;

	run->dirty = 0;
	if (!run->begun || run->ended)
		return 0;
	dl = run->dl;
	n = run->ndl;
	run->dl = NULL;
	run->ndl = run->dl_cap = 0;
	for (i = 0; i < n; i++) {
		run->sink.deliver(run->sink.arg, dl[i].ticket, dl[i].result,
		    dl[i].error);
		json_decref(dl[i].result);
		json_decref(dl[i].error);
	}
	free(dl);
	rc = run->sink.pump(run->sink.arg);
	if (rc == 2)
		run->ended = 1;
	else if (rc == 1 || run->ndl > 0)
		run->dirty = 1;
	else if (record_discarding(run->rec))
		/* Offline, every answer comes from the record at once: a
		   graph that waits would wait for ever. */
		crun_fail(run, "replay: the graph waits for an answer that "
		    "cannot come offline (a bug in weft's runner)");
	return rc;
}

/*
 * Tell the owners of runs that ended (after the commit that made their
 * end durable).  Returns whether every run has ended.
 */
static int
coord_tell_ended(struct coord *c)
{
	struct crun *run, *next;
	int all = 1;

	TAILQ_FOREACH_SAFE(run, &c->runs, entry, next) {
		if (!run->ended) {
			all = 0;
			continue;
		}
		if (run->told || run->sink.ended == NULL)
			continue;
		run->told = 1;
		/* The owner may free the run here. */
		run->sink.ended(run->sink.ended_arg, run);
	}
	return all;
}

/* Commit, deliver results to the graphs, pump them, and dispatch. */
static void
coord_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct coord *c = arg;
	struct crun *run;
	int dirty, more;

	for (;;) {
		if (store_commit(c->st) != 0) {
			coord_store_fail(c);
			return;
		}
		if (c->failed)
			break;
		dirty = more = 0;
		TAILQ_FOREACH(run, &c->runs, entry) {
			if (!run->dirty)
				continue;
			if (coord_pump(run) == 1)
				more = 1;
			if (run->dirty)
				dirty = 1;
		}
		if (more) {
			/* More graph work is ready: commit and dispatch what
			   this round made, then yield to the loop so worker
			   traffic and signals are served between rounds. */
			if (store_commit(c->st) != 0) {
				coord_store_fail(c);
				return;
			}
			coord_dispatch(c);
			coord_kick(c);
			coord_tell_ended(c);
			return;
		}
		if (!dirty)
			break;
	}
	if (c->failed) {
		event_base_loopbreak(c->base);
		return;
	}
	coord_dispatch(c);
	/* coord_loop returns once every run ended; a loop the owner runs
	   itself (weft serve) goes on. */
	if (coord_tell_ended(c) && c->in_loop)
		event_base_loopbreak(c->base);
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
	m = chan_msg(buf, len);
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
	if (nng_msg_alloc(&m, 0) != 0 ||
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
coord_progress(struct qtask *t, json_t *items)
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
		crun_event(t->owner, "tool.progress", t->span, 0, t->path,
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
		t = coord_task_of(c, id);
		if (t != NULL && t->state == QT_LEASED && t->worker == wid &&
		    t->attempt == json_integer_value(json_object_get(it,
		    "attempt")))
			coord_progress(t, json_object_get(it, "progress"));
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
	struct crun *run;
	json_t *p;

	p = json_pack("{s:I, s:i, s:i, s:s, s:s}", "task", t != NULL ?
	    (json_int_t)t->id : id, "attempt", attempt, "worker", wid,
	    "outcome", failed ? "fail" : "complete", "now", t == NULL ?
	    "ended" : t->state == QT_LEASED ? "leased" : "queued");
	if (t != NULL) {
		json_object_set_new(p, "current_attempt", json_integer(
		    t->attempt));
		crun_event(t->owner, "task.late", t->span, 0, t->path, attempt,
		    p, 0, 0);
	} else {
		/* Its run is not known any more: every open run is told. */
		json_object_set_new(p, "wire_id", json_integer(id));
		TAILQ_FOREACH(run, &c->runs, entry)
			if (!run->told)
				crun_event(run, "task.late", 0, 0, "",
				    attempt, p, 0, 0);
	}
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
		t = coord_task_of(c, id);
		if (t == NULL || t->state != QT_LEASED ||
		    t->attempt != attempt || t->worker != wid || val == NULL) {
			coord_late(c, t, id, attempt, wid, failed);
			continue;
		}
		fault_crash("coord.after_result");
		coord_progress(t, json_object_get(it, "progress"));
		if (failed)
			coord_task_failed(t, val);
		else
			coord_task_end(t->owner, t, val, NULL);
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
		t = coord_task_of(c, id);
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
coord_worker_sandbox(struct coord *c, int wid, uint32_t pipe,
    json_t *report)
{
	struct worker *w = &c->workers[wid];
	char peer[80];
	json_t *p, *l;
	size_t i;

	if (!json_is_object(report))
		return;
	p = json_pack("{s:i, s:I, s:O}", "worker", wid, "pid",
	    (json_int_t)sup_pid(c->sup, wid), "sandbox", report);
	if (sup_is_remote(c->sup, wid)) {
		coord_peer(pipe, peer, sizeof peer);
		json_object_set_new(p, "remote", json_string(peer));
		l = json_array();
		for (i = 0; i < w->nlabels; i++)
			json_array_append_new(l, json_string(w->labels[i]));
		json_object_set_new(p, "labels", l);
		if (c->opts.verbose)
			fprintf(stderr, "weft: remote worker %d joined from "
			    "%s\n", wid, peer);
	}
	coord_event_all(c, "worker.sandbox", p);
	json_decref(p);
}

/*
 * The labels of a hello (/params/labels: at most COORD_MAX_LABELS
 * strings of letters, digits, '_', '-', '.'), as a new vector in *out
 * (*n set); -1 with err.
 */
static int
coord_hello_labels(json_t *params, char ***out, size_t *n, char *err,
    size_t errlen)
{
	json_t *list = json_object_get(params, "labels"), *it;
	const char *l;
	size_t i;

	*out = NULL;
	*n = 0;
	if (list == NULL)
		return 0;
	if (!json_is_array(list) || json_array_size(list) >
	    COORD_MAX_LABELS) {
		errf(err, errlen, "/params/labels: must be an array of at "
		    "most %d labels", COORD_MAX_LABELS);
		return -1;
	}
	json_array_foreach(list, i, it) {
		l = json_string_value(it);
		if (l == NULL || *l == '\0' || strlen(l) > COORD_LABEL_MAX ||
		    strspn(l, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
		    "TUVWXYZ0123456789_-.") != strlen(l)) {
			errf(err, errlen, "/params/labels/%zu: a label is 1 to "
			    "%d letters, digits, '_', '-' or '.'", i,
			    COORD_LABEL_MAX);
			return -1;
		}
	}
	*out = xcalloc(json_array_size(list) + 1, sizeof **out);
	json_array_foreach(list, i, it)
		(*out)[(*n)++] = xstrdup(json_string_value(it));
	return 0;
}

/* Whether pipe came through the remote workers' listener. */
static int
coord_pipe_remote(struct coord *c, uint32_t pipe)
{
	nng_pipe p;

	p.id = pipe;
	return c->rl_open && nng_listener_id(nng_pipe_listener(p)) ==
	    nng_listener_id(c->rl);
}

/* Who is at the other end of pipe: "pid N" (ipc) or "HOST:PORT" (tcp). */
static void
coord_peer(uint32_t pipe, char *buf, size_t len)
{
	nng_sockaddr sa;
	nng_pipe p;
	char host[64];
	int pid;

	if ((pid = sup_peer_pid(pipe)) != 0) {
		snprintf(buf, len, "pid %d", pid);
		return;
	}
	p.id = pipe;
	if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) == 0 &&
	    sa.s_family == NNG_AF_INET &&
	    inet_ntop(AF_INET, &sa.s_in.sa_addr, host, sizeof host) != NULL)
		snprintf(buf, len, "%s:%u", host, ntohs(sa.s_in.sa_port));
	else if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) == 0 &&
	    sa.s_family == NNG_AF_INET6 &&
	    inet_ntop(AF_INET6, sa.s_in6.sa_addr, host, sizeof host) != NULL)
		snprintf(buf, len, "[%s]:%u", host, ntohs(sa.s_in6.sa_port));
	else
		snprintf(buf, len, "pipe %u", pipe);
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
	char msg[256], peer[80];
	json_t *p;
	int pid = sup_peer_pid(pipe);

	snprintf(msg, sizeof msg, "%s refused: %s", method, why);
	coord_peer(pipe, peer, sizeof peer);
	if (c->nrefused++ < COORD_MAX_REFUSALS) {
		p = json_pack("{s:i, s:i, s:s, s:s, s:i, s:s}", "worker", wid,
		    "pipe", (int)pipe, "method", method, "reason", why,
		    "peer_pid", pid, "peer", peer);
		coord_event_all(c, "worker.refused", p);
		json_decref(p);
		coord_kick(c);
	}
	if (c->nrefused == 1 || c->opts.verbose)
		fprintf(stderr, "weft: a connection (%s) claiming worker "
		    "%d was refused: %s\n", peer, wid, why);
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
	char err[256], **labels;
	size_t nlabels;
	int remote;

	if (!json_is_integer(v) || json_integer_value(v) != WIRE_VERSION) {
		snprintf(err, sizeof err, "/params/version: protocol version "
		    "mismatch: worker speaks %lld, coordinator %d",
		    (long long)json_integer_value(v), WIRE_VERSION);
		coord_reply_error(r, JRPC_INVALID_PARAMS, err);
		return;
	}
	if (coord_hello_labels(params, &labels, &nlabels, err,
	    sizeof err) != 0) {
		coord_reply_error(r, JRPC_INVALID_PARAMS, err);
		return;
	}
	remote = coord_pipe_remote(c, pipe);
	secret = json_string_value(json_object_get(params, "secret"));
	if (remote != sup_is_remote(c->sup, wid)) {
		snprintf(err, sizeof err, remote ? "worker %d is a local "
		    "worker: it cannot join over the network" : "worker %d is "
		    "a remote worker: it joins over the network listener",
		    wid);
		coord_refuse(c, r, wid, pipe, WIRE_HELLO, err);
		strv_free(labels);
		return;
	}
	if (sup_hello(c->sup, wid, secret, pipe, err, sizeof err) != 0) {
		coord_refuse(c, r, wid, pipe, WIRE_HELLO, err);
		strv_free(labels);
		return;
	}
	coord_unlabel(&c->workers[wid]);
	c->workers[wid].labels = labels;
	c->workers[wid].nlabels = nlabels;
	coord_worker_sandbox(c, wid, pipe, json_object_get(params,
	    "sandbox"));
	coord_kick(c);	/* a label may be what queued tasks wait for */
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

/*
 * Worker wid is gone (why says how): the tasks it held are retried
 * elsewhere by their policy, its parked polls answered, its sessions,
 * cancels and labels forgotten.
 */
static void
coord_worker_lost(struct coord *c, int wid, const char *why)
{
	struct worker *w = &c->workers[wid];
	struct qtask *t, *next;
	struct rctx *r, *rnext;
	struct crun *run;

	coord_forget(w);
	coord_unlabel(w);
	json_decref(w->cancel);
	w->cancel = NULL;
	if (c->stopping)
		return;
	if (c->opts.verbose)
		fprintf(stderr, "weft: %s\n", why);
	TAILQ_FOREACH(run, &c->runs, entry)
		TAILQ_FOREACH_SAFE(t, &run->q.leased, entry, next)
			if (t->worker == wid)
				coord_task_retry(t, FAIL_LOST_WORKER, why);
	/* Polls parked by the dead worker go nowhere; answer and forget. */
	TAILQ_FOREACH_SAFE(r, &c->parked, entry, rnext) {
		if (r->worker == wid) {
			TAILQ_REMOVE(&c->parked, r, entry);
			coord_reply(r, json_pack("{s:[]}", "tasks"));
		}
	}
	coord_kick(c);
}

/*
 * A remote worker's connection was removed (sup_gone_cb): it loses its
 * leases, and its slot may join again with the same enrolment.
 */
static void
coord_worker_gone(void *arg, int wid, uint32_t pipe)
{
	struct coord *c = arg;
	char why[256];
	json_t *p;

	snprintf(why, sizeof why, "remote worker %d disconnected", wid);
	if (!c->stopping) {
		p = json_pack("{s:i, s:i, s:s}", "worker", wid, "pipe",
		    (int)pipe, "status", "disconnected");
		coord_event_all(c, "worker.exit", p);
		json_decref(p);
	}
	coord_worker_lost(c, wid, why);
	c->workers[wid].nleased = 0;
}

/* A worker process ended (sup_exit_cb): retry its tasks elsewhere and
   restart it. */
static void
coord_worker_died(void *arg, int wid, pid_t pid, int status)
{
	struct coord *c = arg;
	struct worker *w = &c->workers[wid];
	char how[128], why[256], err[256];
	json_t *p;

	proc_status_str(status, how, sizeof how);
	snprintf(why, sizeof why, "worker %d (pid %d) %s", wid, (int)pid, how);
	if (!c->stopping) {
		p = json_pack("{s:i, s:i, s:s}", "worker", wid, "pid",
		    (int)pid, "status", how);
		coord_event_all(c, "worker.exit", p);
		json_decref(p);
	}
	coord_worker_lost(c, wid, why);
	if (c->stopping)
		return;
	if (++c->restarts > COORD_MAX_RESTARTS) {
		coord_fail(c, "workers keep dying (%d restarts); last: %s",
		    c->restarts - 1, why);
		return;
	}
	w->nleased = 0;
	if (sup_start(c->sup, wid, err, sizeof err) != 0)
		coord_fail(c, "cannot restart worker %d: %s", wid, err);
}

void
crun_cancel(struct crun *run, const char *why)
{
	struct coord *c = run->c;
	size_t i;
	struct qtask *t;

	if (run->cancelled)
		return;
	for (i = 1; i <= c->nslots && run->ntasks > 0; i++)
		if ((t = c->tasks[i]) != NULL && t->owner == run) {
			coord_cancel_on_worker(c, t);
			coord_task_fail(run, t, FAIL_CANCELLED, json_sprintf(
			    "the run was cancelled (%s) during attempt %d",
			    why, t->attempt));
		}
	run->cancelled = 1;
	run->ended = 1;
	coord_kick(c);
}

/*
 * SIGINT/SIGTERM (Ctrl-C, weft cancel): end every run as cancelled.  Every
 * task not ended is recorded as failed with kind cancelled; the workers,
 * stopped by coord_free, send their servers notifications/cancelled.
 */
static void
coord_int_cb(evutil_socket_t sig, short what, void *arg)
{
	struct coord *c = arg;
	struct crun *run;

	if (!c->cancelled)
		TAILQ_FOREACH(run, &c->runs, entry)
			crun_cancel(run, sig == SIGINT ? "SIGINT" : "SIGTERM");
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
		coord_task_fail(t->owner, t, FAIL_TIMEOUT, json_sprintf(
		    "attempt %d on worker %d outlived the total timeout of %gs "
		    "(all attempts); it was cancelled", t->attempt, t->worker,
		    t->pol.total_s));
	} else if (t->lease_until < now) {
		snprintf(why, sizeof why, "lease of worker %d expired "
		    "(no heartbeat for %.1fs)", t->worker, t->pol.lease_s);
		coord_task_retry(t, FAIL_LOST_WORKER, why);
	} else if (now > t->started + t->pol.attempt_s + 5) {
		coord_cancel_on_worker(c, t);
		snprintf(why, sizeof why, "worker %d did not end attempt %d "
		    "within its timeout of %gs; it was cancelled", t->worker,
		    t->attempt, t->pol.attempt_s);
		coord_task_retry(t, FAIL_TIMEOUT, why);
	}
}

/* Once a second: expire leases, attempts, queue waits and deadlines. */
static void
coord_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct coord *c = arg;
	struct crun *run;
	struct qtask *t, *next;
	double now = now_mono();

	TAILQ_FOREACH(run, &c->runs, entry) {
		TAILQ_FOREACH_SAFE(t, &run->q.leased, entry, next)
			coord_tick_leased(c, t, now);
		TAILQ_FOREACH_SAFE(t, &run->q.queued, entry, next) {
			if (now - t->queued_at > t->pol.queue_s)
				coord_task_fail(run, t, FAIL_QUEUE_TIMEOUT,
				    json_sprintf("no worker took the task "
				    "within its queue timeout of %gs (attempt "
				    "%d)", t->pol.queue_s, t->attempt));
			else if (now > t->deadline)
				coord_task_fail(run, t, FAIL_TIMEOUT,
				    json_sprintf("attempt %d was still queued "
				    "at the total timeout of %gs", t->attempt,
				    t->pol.total_s));
		}
	}
}

/* Load (or create) the signing keys. */
static int
coord_keys(struct coord *c, const char *state_dir, char *err, size_t errlen)
{
	char dir[PATH_MAX];

	if (state_dir == NULL) {
		if (state_dir_path(dir, sizeof dir, err, errlen) != 0)
			return -1;
		state_dir = dir;
	}
	return captoken_keys_load_or_create(state_dir, &c->keys, err,
	    errlen);
}

/*
 * Listen for remote workers on o->listen: tls+tcp:// with the certificate
 * and key of o->tls_cert and o->tls_key, or tcp:// on loopback.  c->rurl
 * gets the address with the port bound.
 */
static int
coord_listen_remote(struct coord *c, const struct coord_opts *o, char *err,
    size_t errlen)
{
	char host[256], why[256], *cert = NULL, *key = NULL;
	size_t klen = 0;
	int tls, rv, port = 0;

	if (sup_url_check(o->listen, &tls, host, sizeof host, why,
	    sizeof why) != 0) {
		errf(err, errlen, "--workers-listen %s", why);
		return -1;
	}
	if (o->remote > 0 && o->enroll_dir == NULL) {
		errf(err, errlen, "--remote-workers needs --enroll-dir DIR "
		    "(where their enrolment files are written)");
		return -1;
	}
	if (tls && (o->tls_cert == NULL || o->tls_key == NULL)) {
		errf(err, errlen, "--workers-listen %s needs --tls-cert FILE "
		    "and --tls-key FILE (the coordinator's certificate and its "
		    "private key, PEM)", o->listen);
		return -1;
	}
	if ((rv = nng_listener_create(&c->rl, c->sock, o->listen)) != 0) {
		errf(err, errlen, "--workers-listen %s: %s", o->listen,
		    nng_strerror(rv));
		return -1;
	}
	c->rl_open = 1;
	if (tls) {
		if ((cert = read_file(o->tls_cert, NULL)) == NULL ||
		    (key = read_file(o->tls_key, &klen)) == NULL) {
			errf(err, errlen, "cannot read %s: %s", cert == NULL ?
			    o->tls_cert : o->tls_key, strerror(errno));
			free(cert);
			return -1;
		}
		if ((rv = nng_tls_config_alloc(&c->tls,
		    NNG_TLS_MODE_SERVER)) == 0 &&
		    (rv = nng_tls_config_auth_mode(c->tls,
		    NNG_TLS_AUTH_MODE_NONE)) == 0 &&
		    (rv = nng_tls_config_own_cert(c->tls, cert, key,
		    NULL)) != 0)
			errf(err, errlen, "--tls-cert %s, --tls-key %s: not a "
			    "PEM certificate and its private key (%s)",
			    o->tls_cert, o->tls_key, nng_strerror(rv));
		else if (rv == 0 && (rv = nng_listener_set_ptr(c->rl,
		    NNG_OPT_TLS_CONFIG, c->tls)) != 0)
			errf(err, errlen, "nng: %s", nng_strerror(rv));
		else if (rv != 0)
			errf(err, errlen, "nng tls: %s", nng_strerror(rv));
		free(cert);
		OPENSSL_clear_free(key, klen);
		if (rv != 0)
			return -1;
	}
	if ((rv = nng_listener_start(c->rl, 0)) != 0) {
		errf(err, errlen, "cannot listen on %s: %s", o->listen,
		    nng_strerror(rv));
		return -1;
	}
	nng_listener_get_int(c->rl, NNG_OPT_TCP_BOUND_PORT, &port);
	snprintf(c->rurl, sizeof c->rurl, "%s://%s%s%s:%d", tls ? "tls+tcp" :
	    "tcp", strchr(host, ':') ? "[" : "", host, strchr(host, ':') ?
	    "]" : "", port);
	return 0;
}

/* Write len bytes of text to path, a new 0600 file (replacing one). */
static int
coord_write_secret_file(const char *path, const char *text, size_t len,
    char *err, size_t errlen)
{
	int fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) == -1 || fchmod(fd, 0600) == -1 ||
	    write(fd, text, len) != (ssize_t)len || close(fd) != 0) {
		errf(err, errlen, "cannot write %s: %s", path,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	return 0;
}

/*
 * Enrol the remote slots, ids first .. first+n-1 (docs/PROTOCOL.md,
 * "Remote enrolment").  DIR/enrolled keeps the SHA-256 of each slot's
 * secret, so a slot keeps its secret across restarts of the coordinator;
 * a slot not listed there gets a new secret, written with the address and
 * its id to DIR/worker-ID.enroll (0600) for its worker to present.
 */
static int
coord_enrol_remote(struct coord *c, const char *dir, int first, int n,
    char *err, size_t errlen)
{
	char path[PATH_MAX], tmp[PATH_MAX], secret[65], line[160];
	char (*hash)[65] = xcalloc((size_t)n, sizeof *hash);
	struct evbuffer *buf;
	char *text;
	FILE *f;
	int i, wid, made = 0, rv = -1;

	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		errf(err, errlen, "--enroll-dir %s: %s", dir, strerror(errno));
		goto out;
	}
	snprintf(path, sizeof path, "%s/enrolled", dir);
	if ((f = fopen(path, "r")) != NULL) {
		while (fgets(line, sizeof line, f) != NULL)
			if (sscanf(line, "%d %64[0-9a-f]", &wid, secret) == 2 &&
			    wid >= first && wid < first + n &&
			    strlen(secret) == 64)
				memcpy(hash[wid - first], secret, 65);
		fclose(f);
	}
	for (i = 0; i < n; i++) {
		if (hash[i][0] == '\0') {
			random_hex(secret, 32);
			sha256_hex(secret, 64, hash[i]);
			text = xasprintf("{\"version\":%d,\"url\":\"%s\","
			    "\"worker\":%d,\"secret\":\"%s\"}\n",
			    WIRE_VERSION, c->rurl, first + i, secret);
			OPENSSL_cleanse(secret, sizeof secret);
			snprintf(tmp, sizeof tmp, "%s/worker-%d.enroll", dir,
			    first + i);
			made++;
			if (coord_write_secret_file(tmp, text, strlen(text),
			    err, errlen) != 0) {
				OPENSSL_clear_free(text, strlen(text));
				goto out;
			}
			OPENSSL_clear_free(text, strlen(text));
		}
		sup_remote(c->sup, first + i, hash[i]);
	}
	if (made > 0) {
		buf = evbuffer_new();
		for (i = 0; i < n; i++)
			evbuffer_add_printf(buf, "%d %s\n", first + i, hash[i]);
		snprintf(tmp, sizeof tmp, "%s/enrolled.tmp", dir);
		i = coord_write_secret_file(tmp, (const char *)
		    evbuffer_pullup(buf, -1), evbuffer_get_length(buf), err,
		    errlen);
		evbuffer_free(buf);
		if (i != 0)
			goto out;
		if (rename(tmp, path) == -1) {
			errf(err, errlen, "cannot write %s: %s", path,
			    strerror(errno));
			goto out;
		}
	}
	rv = 0;
out:
	free(hash);
	return rv;
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
	TAILQ_INIT(&c->runs);
	TAILQ_INIT(&c->parked);
	c->base = o->base != NULL ? o->base : event_base_new();
	if (event_base_priority_init(c->base, 2) != 0) {
		/* The caller's loop has events active already. */
		errf(err, errlen, "cannot set the loop's priorities");
		free(c);
		return NULL;
	}
	c->bridge = bridge_new(c->base);
	c->flush_ev = event_new(c->base, -1, 0, coord_flush_cb, c);
	event_priority_set(c->flush_ev, 1);
	c->tick_ev = event_new(c->base, -1, EV_PERSIST, coord_tick_cb, c);
	event_add(c->tick_ev, &one);
	if (!o->no_signals) {
		c->int_ev = evsignal_new(c->base, SIGINT, coord_int_cb, c);
		event_add(c->int_ev, NULL);
		c->term_ev = evsignal_new(c->base, SIGTERM, coord_int_cb, c);
		event_add(c->term_ev, NULL);
	}
	signal(SIGPIPE, SIG_IGN);

	if (coord_keys(c, o->state_dir, err, errlen) != 0)
		goto fail;
	memset(&so, 0, sizeof so);
	so.workers = o->workers;
	so.remote = o->listen != NULL ? o->remote : 0;
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
	c->nworkers = o->workers + so.remote;
	if (o->listen != NULL && (coord_listen_remote(c, o, err,
	    errlen) != 0 || sup_watch(c->sup, c->sock, c->bridge,
	    coord_worker_gone) != 0 || (so.remote > 0 &&
	    coord_enrol_remote(c, o->enroll_dir, o->workers, so.remote, err,
	    errlen) != 0)))
		goto fail;
	if (o->listen != NULL)
		fprintf(stderr, "weft: remote workers join at %s (worker ids "
		    "%d..%d, enrolments in %s)\n", c->rurl, o->workers,
		    c->nworkers - 1, o->enroll_dir);
	c->opts.listen = c->opts.tls_cert = c->opts.tls_key = NULL;
	c->opts.enroll_dir = NULL;
	/* Each worker has at most poll, heartbeat and complete in flight. */
	c->nrctx = (size_t)c->nworkers * 4 + 4;
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
	c->workers = xcalloc(c->nworkers, sizeof *c->workers);
	for (w = 0; w < c->nworkers; w++) {
		c->workers[w].id = w;
		if (!o->external && w < o->workers &&
		    sup_start(c->sup, w, err, errlen) != 0)
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
	struct crun *run;
	size_t i;

	if (c == NULL)
		return;
	while ((run = TAILQ_FIRST(&c->runs)) != NULL)
		crun_free(run);
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
	if (c->tls != NULL)
		nng_tls_config_free(c->tls);
	for (i = 0; i < c->nrctx; i++) {
		chan_close(&c->rctxs[i].ch);
		json_decref(c->rctxs[i].id);
	}
	free(c->rctxs);
	sup_free(c->sup);
	free(c->tasks);
	free(c->free);
	for (i = 0; c->workers != NULL && i < (size_t)c->nworkers; i++) {
		coord_forget(&c->workers[i]);
		coord_unlabel(&c->workers[i]);
		json_decref(c->workers[i].cancel);
	}
	free(c->workers);
	captoken_keys_free(c->keys);
	if (c->base != NULL) {
		bridge_free(c->bridge);
		event_free(c->flush_ev);
		event_free(c->tick_ev);
		if (c->int_ev != NULL)
			event_free(c->int_ev);
		if (c->term_ev != NULL)
			event_free(c->term_ev);
		if (c->opts.base == NULL)
			event_base_free(c->base);
	}
	free(c);
}

const char *
coord_listen_url(struct coord *c)
{
	return c->rurl[0] != '\0' ? c->rurl : NULL;
}

char *
coord_enrolment(struct coord *c, int wid)
{
	return c->opts.external ? sup_enrol_external(c->sup, wid) : NULL;
}

struct crun *
coord_run_new(struct coord *c, const char *run_id)
{
	struct crun *run = xcalloc(1, sizeof *run);

	run->c = c;
	run->rec = record_new(c->st, coord_store_fail_cb, run);
	record_begin(run->rec, run_id);
	run->run_id = record_run(run->rec);
	run->grants = grants_new(c->keys, coord_on_mint, run);
	grants_set_run(run->grants, run_id);
	queue_init(&run->q, c->base, coord_ready_cb, c);
	TAILQ_INSERT_TAIL(&c->runs, run, entry);
	c->nruns++;
	return run;
}

void
crun_begin(struct crun *run, const struct coord_sink *sink)
{
	run->sink = *sink;
	run->begun = 1;
	run->dirty = 1;
	coord_kick(run->c);
}

/* Drop task t of a run being freed: out of its lists and the table. */
static void
coord_task_drop(struct coord *c, struct qtask *t)
{
	size_t slot = (size_t)(t->wire & COORD_SLOT_MASK);

	coord_cancel_on_worker(c, t);
	coord_task_unlink(t->owner, t);
	c->tasks[slot] = NULL;
	c->free[c->nfree++] = (uint32_t)slot;
	if (t->on != NULL)
		c->on_tasks--;
	qtask_free(t);
}

void
crun_free(struct crun *run)
{
	struct coord *c;
	struct qtask *t;
	size_t i;

	if (run == NULL)
		return;
	c = run->c;
	for (i = 1; i <= c->nslots && run->ntasks > 0; i++)
		if ((t = c->tasks[i]) != NULL && t->owner == run) {
			coord_task_drop(c, t);
			run->ntasks--;
		}
	for (i = 0; i < run->ndl; i++) {
		json_decref(run->dl[i].result);
		json_decref(run->dl[i].error);
	}
	free(run->dl);
	TAILQ_REMOVE(&c->runs, run, entry);
	c->nruns--;
	grants_free(run->grants);
	record_free(run->rec);
	free(run);
}

int
coord_loop(struct coord *c, char *err, size_t errlen)
{
	struct crun *run;
	int open;

	coord_kick(c);
	c->stop = 0;
	c->in_loop = 1;
	for (;;) {
		open = 0;
		TAILQ_FOREACH(run, &c->runs, entry)
			if (!run->ended || (!run->told &&
			    run->sink.ended != NULL))
				open = 1;
		if (c->failed || c->cancelled || c->stop || !open)
			break;
		if (event_base_loop(c->base, EVLOOP_ONCE) == -1) {
			c->in_loop = 0;
			errf(err, errlen, "event loop failed");
			return -1;
		}
	}
	c->in_loop = 0;
	if (c->failed) {
		errf(err, errlen, "%s", c->ferr);
		return -1;
	}
	return 0;
}

int
crun_call_index(struct crun *run, const char *path)
{
	return record_call_index(run->rec, path);
}

void
crun_set_replay(struct crun *run, struct replay *rec, int64_t last_seq)
{
	int64_t n = rec != NULL && last_seq > 0 ? replay_last_task(rec) : 0;

	record_set_replay(run->rec, rec, last_seq);
	/* A resume's tickets go on after the run's last task id. */
	if (n > run->tickets)
		run->tickets = n;
}

int64_t
crun_span_base(struct crun *run)
{
	return record_span_base(run->rec);
}

void
crun_discard_events(struct crun *run)
{
	record_discard(run->rec);
}

int
crun_may_bound(struct crun *run)
{
	return record_may_bound(run->rec);
}

void
crun_all_at_once(struct crun *run)
{
	record_all_at_once(run->rec);
}

int
crun_went_bounded(const struct crun *run)
{
	return record_went_bounded(run->rec);
}

struct replay *
crun_replay(struct crun *run)
{
	return record_replay(run->rec);
}

int64_t
crun_recorded(struct crun *run, const char *path, int64_t span, int call,
    const char *name, const char *hash, const char *desc_json)
{
	json_t *res, *err, *p;
	int64_t from, t;

	switch (record_answer(run->rec, path, call, name, hash, desc_json,
	    &res, &err, &from)) {
	case 0:
		return 0;
	case -1:
		crun_fail(run, "%s", replay_divergence(record_replay(
		    run->rec)));
		return -1;
	}
	t = crun_ticket(run);
	if (!record_discarding(run->rec)) {
		p = json_pack("{s:i, s:s, s:I}", "call", call, "step", name,
		    "from", (json_int_t)from);
		crun_event(run, "step.replayed", span, 0, path, 0, p, 0, 0);
		json_decref(p);
	}
	crun_deliver(run, t, res, err);
	return t;
}
