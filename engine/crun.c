/*
 * crun.c: a run in the coordinator (engine/coord.h, "The runs"): its
 * record and events, grants, tickets and deliveries, its cancel, and the
 * replay adapter that answers its calls from a record.
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
void
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

/* A run's record could not write to the store. */
static void
coord_store_fail_cb(void *arg)
{
	struct crun *run = arg;

	coord_store_fail(run->c);
}

int64_t
crun_event_text(struct crun *run, const char *kind, int64_t span,
    int64_t parent_span, const char *path, int attempt, const char *text,
    int64_t tokens, double cost)
{
	run->recorded = 1;
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
