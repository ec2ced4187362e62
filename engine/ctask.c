/*
 * ctask.c: the tasks of the coordinator's runs: the wire-id table,
 * submission with its replay key and token, the end of a task (recorded,
 * delivered), retries by policy, a lost non-idempotent call, tokens as
 * sent, and the tick that expires leases, attempts and queue waits.
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

#include "engine/coord_int.h"


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
coord_policy(struct coord *c, struct qtask *t, const char *srvtext,
    const char *tool)
{
	json_t *js, *on;

	if (tool != NULL)
		t->tool = xstrdup(tool);
	/* Tasks of one server share its spec's text: parse it once. */
	if (c->pol_text == NULL || strcmp(c->pol_text, srvtext) != 0) {
		js = json_pack("{s:o}", "server", json_loads(srvtext, 0,
		    NULL));
		qpolicy_parse(&c->pol, js, c->opts.lease_s,
		    c->opts.heartbeat_s, c->opts.max_attempts);
		free(c->pol_on);
		c->pol_on = NULL;
		/* w.mcp_server{ on = "gpu" }: only workers labelled gpu. */
		on = json_object_get(json_object_get(js, "server"), "on");
		if (json_is_string(on))
			c->pol_on = xstrdup(json_string_value(on));
		json_decref(js);
		free(c->pol_text);
		c->pol_text = xstrdup(srvtext);
	}
	t->pol = c->pol;
	if (c->pol_on != NULL) {
		t->on = xstrdup(c->pol_on);
		c->on_tasks++;
	}
}

/* Whether s can stand in JSON quotes as it is (no escape needed). */
static int
json_plain(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == '"' || *s == '\\')
			return 0;
	return 1;
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
	if (!json_plain(step) || (key != NULL && !json_plain(key))) {
		q = json_pack("{s:i, s:s, s:s}", "call", call, "hash", hash,
		    "step", step);
		if (key != NULL)
			json_object_set_new(q, "key", json_string(key));
		meta = json_dumps(q, JSON_COMPACT);
		meta[strlen(meta) - 1] = '\0';	/* the members, no braces */
		memmove(meta, meta + 1, strlen(meta));
		json_decref(q);
	} else
		meta = xasprintf("\"call\":%d,\"hash\":\"%s\",\"step\":"
		    "\"%s\"%s%s%s", call, hash, step, key != NULL ?
		    ",\"key\":\"" : "", key != NULL ? key : "", key != NULL ?
		    "\"" : "");
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
struct qtask *
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
    const char *srvtext, const char *summary, int grant)
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
	coord_policy(c, t, srvtext, tool);
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
void
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
void
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

/* End a task with error {kind, message}. */
void
coord_task_fail(struct crun *run, struct qtask *t, const char *kind,
    json_t *msg)
{
	json_t *err = json_pack("{s:s, s:o}", "kind", kind, "message", msg);

	coord_task_end(run, t, NULL, err);
	json_decref(err);
}

/* Ask the worker holding task t's attempt to abandon it (heartbeat). */
void
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
void
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
void
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

/* Append a string literal to an evbuffer. */
#define EVB_LIT(b, lit)	evbuffer_add((b), (lit), sizeof(lit) - 1)

/* Append the task as sent to a worker, JSON text, to buf. */
void
coord_task_text(struct qtask *t, struct evbuffer *buf)
{
	struct crun *run = t->owner;
	double left;
	json_t *js;
	char *q, *token, num[160];
	int n;

	token = coord_fault_token(run, t, coord_task_token(run, t, 0));
	n = snprintf(num, sizeof num, "{\"id\":%lld,\"run\":\"%s\",\"path\":",
	    (long long)t->wire, run->run_id);
	evbuffer_add(buf, num, (size_t)n);
	/* Node names are plain; quote through jansson only if needed. */
	if (json_plain(t->path)) {
		EVB_LIT(buf, "\"");
		evbuffer_add(buf, t->path, strlen(t->path));
		EVB_LIT(buf, "\"");
	} else {
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
	/* Pieces, not one printf: token and params are long (text as is). */
	n = snprintf(num, sizeof num, ",\"attempt\":%d,\"idem\":\"%s:%lld\","
	    "\"deadline\":%.3f,\"timeout\":%.3f,\"kind\":\"", t->attempt,
	    run->run_id, (long long)t->id, now_wall() + left, left);
	evbuffer_add(buf, num, (size_t)n);
	evbuffer_add(buf, t->kind, strlen(t->kind));
	EVB_LIT(buf, "\",\"token\":\"");
	evbuffer_add(buf, token, strlen(token));
	EVB_LIT(buf, "\",\"params\":");
	evbuffer_add(buf, t->params, strlen(t->params));
	EVB_LIT(buf, "}");
	free(token);
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
void
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
