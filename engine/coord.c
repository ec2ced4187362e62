/*
 * coord.c: the coordinator's loop: the flush step (commit, deliver, pump
 * the runs, dispatch), the dispatch of the runs' tasks to parked polls in
 * turn, the workers' lives and deaths, and the coordinator's making and
 * freeing.  The runs are engine/crun.c, their tasks engine/ctask.c, the
 * wire engine/coord_wire.c; what they share is engine/coord_int.h.
 *
 * Threads: nng runs aio callbacks on its own threads.  Those callbacks only
 * re-arm a receive or post the received message to the loop through the
 * bridge; every struct of coord_int.h is touched by the loop thread alone.
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

int
coord_workers_spawned(const struct coord *c)
{
	return c->sup != NULL ? sup_spawned(c->sup) : 0;
}

void
coord_workers_connected(struct coord *c, void (*cb)(void *, const char *),
    void *arg)
{
	size_t j;
	int w;

	for (w = 0; w < c->nworkers; w++) {
		if (!sup_ready(c->sup, w))
			continue;
		if (c->workers[w].nlabels == 0)
			cb(arg, "");
		for (j = 0; j < c->workers[w].nlabels; j++)
			cb(arg, c->workers[w].labels[j]);
	}
}

void
coord_stop(struct coord *c)
{
	c->stop = 1;
	event_base_loopbreak(c->base);
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

/*
 * The store refused a write: stop dispatching and end the loop.  Every
 * run is left as recorded so far (crun_store_message says how much).
 */
void
coord_store_fail(struct coord *c)
{
	struct crun *run;

	TAILQ_FOREACH(run, &c->runs, entry)
		if (!run->failed)
			crun_fail(run, "store");
	coord_fail(c, "store: %s", store_error(c->st));
}

/* A task came back from its backoff: dispatch it. */
void
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

/* Record ev in every open run (facts of the workers, which all share). */
void
coord_event_all(struct coord *c, const char *kind, json_t *payload)
{
	struct crun *run;

	TAILQ_FOREACH(run, &c->runs, entry)
		if (!run->told)
			crun_event(run, kind, 0, 0, "", 0, payload, 0, 0);
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
void
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

/* opts.lazy: the first task is queued, start the local workers. */
static void
coord_fork_workers(struct coord *c)
{
	char err[256];
	int w;

	c->forked = 1;
	for (w = 0; !c->opts.external && w < c->opts.workers; w++)
		if (sup_start(c->sup, w, err, sizeof err) != 0) {
			coord_fail(c, "cannot start worker %d: %s", w, err);
			return;
		}
}

/* Hand queued tasks to parked polls. */
void
coord_dispatch(struct coord *c)
{
	struct rctx *r;
	struct evbuffer *buf;
	int rounds = 0;

	coord_waiting(c);
	if (!c->forked && coord_any_queued(c))
		coord_fork_workers(c);
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

/* Commit what is pending, then tell opts.committed of the runs it had
   events of.  0, or -1 when the store failed (coord_store_fail). */
static int
coord_commit(struct coord *c)
{
	struct crun *run, *next;

	if (store_commit(c->st) != 0) {
		coord_store_fail(c);
		return -1;
	}
	if (c->opts.committed == NULL)
		return 0;
	TAILQ_FOREACH_SAFE(run, &c->runs, entry, next)
		if (run->recorded) {
			run->recorded = 0;
			c->opts.committed(c->opts.committed_arg, run->run_id);
		}
	return 0;
}

/* Commit, deliver results to the graphs, pump them, and dispatch. */
static void
coord_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct coord *c = arg;
	struct crun *run;
	int dirty, more;

	for (;;) {
		if (coord_commit(c) != 0)
			return;
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
			if (coord_commit(c) != 0)
				return;
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
		if (!o->external && !o->lazy && w < o->workers &&
		    sup_start(c->sup, w, err, errlen) != 0)
			goto fail;
	}
	c->forked = !o->lazy;
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
	free(c->pol_text);
	free(c->pol_on);
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
