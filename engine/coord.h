/*
 * coord.h: the coordinator.  One libevent loop owns all engine state: the
 * run being executed, its task queue, the workers and the store.
 *
 * The coordinator listens with an nng REP socket on an ipc:// path in a
 * private 0700 directory, starts N `weft worker` children that dial it,
 * supervises them (a dead worker's leased tasks go back to the queue and
 * the worker is restarted) and hands them tasks when they poll.  With
 * opts.listen it listens on the network too, for remote workers: enrolled
 * by files, labelled (a task of a server declared with on = "gpu" goes
 * only to a worker labelled gpu), and a remote worker whose connection
 * goes loses its leases as a dead local one does.  The graph
 * runner (lua/luaeng.c) submits tasks and records events through this
 * module and is told of results through the sink.
 *
 * Durable before visible: events go into the store's batch transaction;
 * the flush step commits it before any task is dispatched to a worker and
 * before any result is delivered to the graph.
 */
#ifndef WEFT_COORD_H
#define WEFT_COORD_H

#include <stdint.h>
#include <jansson.h>
#include <event2/event.h>

struct store;
struct coord;
struct crun;

struct coord_opts {
	int		 workers;	/* worker processes, >= 1 */
	int		 slots;		/* concurrent tasks per worker */
	double		 lease_s;	/* lease length without a heartbeat */
	double		 heartbeat_s;	/* worker heartbeat interval */
	int		 max_attempts;	/* attempts per task (lost worker) */
	int		 verbose;
	const char	*state_dir;	/* signing keys; NULL: the default */
	int		 worker_no_seccomp; /* workers confine themselves
					   without seccomp (sandbox_self) */
	int		 external;	/* start no worker: each joins with
					   coord_enrolment() (tests) */
	int		 lazy;		/* fork the local workers at the first
					   queued task, not in coord_new: a
					   graph without tasks forks none */
	int		 run_cap;	/* most tasks one run holds leased
					   while others wait; 0: no cap */
	struct event_base *base;	/* the loop to run on (the caller's,
					   not freed); NULL: a new one */
	/* Called after a commit for each run that recorded events since
	   the last call (weft serve: live progress to MCP clients). */
	void		(*committed)(void *arg, const char *run_id);
	void		*committed_arg;
	int		 no_signals;	/* the caller handles SIGINT and
					   SIGTERM (weft serve); else they
					   cancel every run (weft run) */
	/*
	 * Remote workers (docs/PROTOCOL.md, "Remote enrolment"): listen also
	 * on listen (tls+tcp://ADDR:PORT with tls_cert and tls_key, PEM
	 * files; tcp:// only on loopback; port 0: any free one) for remote
	 * slots, ids workers .. workers+remote-1, whose enrolment files are
	 * written to enroll_dir.  Only read by coord_new.
	 */
	const char	*listen;
	const char	*tls_cert;
	const char	*tls_key;
	int		 remote;
	const char	*enroll_dir;
};

/* What the graph runner gives the coordinator to be told of results. */
struct coord_sink {
	/* A task ended: result (borrowed) xor error {kind, message}
	   (borrowed).  Called on the loop thread after the outcome is
	   committed. */
	void	(*deliver)(void *arg, int64_t ticket, json_t *result,
		    json_t *error);
	/* Run ready graph work.  Returns 0 when blocked on tasks, 1 when
	   more work became ready (another flush round), 2 when the run has
	   ended. */
	int	(*pump)(void *arg);
	void	 *arg;
	/* The run ended (its pump said so, it failed or was cancelled),
	   and what it recorded is committed: called once, on the loop,
	   after a flush.  NULL: coord_loop returns once every run ended. */
	void	(*ended)(void *arg, struct crun *);
	void	 *ended_arg;
};

/*
 * Create the coordinator: signing keys (loaded from, or created in, the
 * state directory: state_dir_path in engine/captoken.h), event base, private
 * ipc directory, nng listener, and the worker processes.  Returns NULL
 * with a message in err.
 */
struct coord *coord_new(const struct coord_opts *, struct store *,
    char *err, size_t errlen);
/* Stop workers (asking, then SIGTERM, then SIGKILL), remove the ipc
   directory and free everything (runs still open too). */
void coord_free(struct coord *);
struct event_base *coord_base(struct coord *);

/*
 * The address remote workers dial (opts.listen, with the port bound when
 * it asked for 0), or NULL without a listener.
 */
const char *coord_listen_url(struct coord *);

/*
 * With opts.external: a new enrolment for worker wid (JSON text with the
 * address, the id and a secret, as `weft worker --enroll-fd` reads it; the
 * caller frees it).  NULL otherwise.
 */
char *coord_enrolment(struct coord *, int wid);

/* Schedule a flush round (commit, deliver, pump, dispatch). */
void coord_kick(struct coord *);
/*
 * Run the loop until every run has ended and its owner was told,
 * coord_stop, a signal (unless coord_opts.no_signals) or a fatal error of
 * the coordinator.  Returns 0, or -1 with a message in err.
 */
int coord_loop(struct coord *, char *err, size_t errlen);
/* Whether the coordinator failed (the store, workers that keep dying)
   and why, in err; its loop was broken then. */
int coord_error(struct coord *, char *err, size_t errlen);
/* Make coord_loop return at its next turn. */
void coord_stop(struct coord *);
/* Whether a signal cancelled every run (SIGINT, SIGTERM; weft run). */
int coord_cancelled(struct coord *);
/* Worker facts for the summary and /metrics. */
int coord_worker_restarts(struct coord *);
/* Runs open, and tasks queued and leased over all of them. */
void coord_counts(struct coord *, int *runs, int *queued, int *leased);
/*
 * The workers connected now (their hello accepted), told to cb once per
 * label they carry ("" for a worker with none): a worker with two labels
 * counts under each.
 */
/* Worker processes this coordinator has started (opts.lazy: maybe 0). */
int coord_workers_spawned(const struct coord *);
void coord_workers_connected(struct coord *, void (*cb)(void *arg,
    const char *label), void *arg);

/*
 * The runs.  Each has its own record (events, seqs, call indexes), its
 * grants, its tickets (task ids) and its task queue; all share the loop,
 * the store's batch, the workers and the dispatch, which takes tasks from
 * the runs in turn so that one run's fan-out cannot starve another's
 * single call (coord_opts.run_cap bounds what one run holds leased).
 */

/* Open run run_id (its row must exist) in the coordinator.  Events go to
   it from now on; work starts at crun_begin. */
struct crun *coord_run_new(struct coord *, const char *run_id);
/* Give the run its graph (sink copied) and schedule its first pump. */
void crun_begin(struct crun *, const struct coord_sink *);
/* Take the run out of the coordinator (its tasks are dropped). */
void crun_free(struct crun *);
struct coord *crun_coord(struct crun *);
const char *crun_id(const struct crun *);
/*
 * Whether the run failed in the coordinator (a replay divergence, the
 * store) and why, in err; the graph's own outcome is the runner's.
 */
int crun_failed(const struct crun *, char *err, size_t errlen);
/* Whether the run was cancelled (coord_cancelled or crun_cancel). */
int crun_cancelled(const struct crun *);
/* Cancel the run: every task not ended fails with kind cancelled and why;
   the run ends. */
void crun_cancel(struct crun *, const char *why);
/*
 * After the store refused a write (store_broken): the message for the
 * user, naming the store, why, the event being recorded, the run, how
 * much of it is recorded and how to resume it.  Otherwise "store: ERROR".
 */
void crun_store_message(struct crun *, char *buf, size_t len);

/*
 * Append an event of the run and return its seq.  payload is borrowed
 * (may be NULL).  The event is durable at the next flush.
 */
int64_t crun_event(struct crun *, const char *kind, int64_t span,
    int64_t parent_span, const char *path, int attempt, json_t *payload,
    int64_t tokens, double cost);
/* The same with the payload already encoded as JSON text (or NULL). */
int64_t crun_event_text(struct crun *, const char *kind, int64_t span,
    int64_t parent_span, const char *path, int attempt, const char *text,
    int64_t tokens, double cost);
/*
 * Queue a task of kind for node path (span is the node's span) on the
 * MCP server named server (tool: the tool called, NULL for a tools/list)
 * and return its ticket.  params is the task's params as JSON text
 * (copied; sent to the worker as is), srvtext the text of its "server"
 * member (the spec the task policy is read from); summary is the JSON
 * members the
 * tool.call event records besides task and kind
 * ("\"server\":\"s\",\"name\":...").  grant is the id of the node's
 * nearest grant (crun_grant): the task carries its token, and a tool
 * call is counted against it; a refused count fails the task at once.
 * The call is recorded now and dispatched after the next commit.
 */
int64_t crun_submit(struct crun *, const char *kind, const char *path,
    int64_t span, const char *server, const char *tool, const char *params,
    const char *srvtext, const char *summary, int grant);
/*
 * Add a capability grant for node path under grant parent (0 for the
 * run's own); see engine/grant.h.  Returns its id (>= 1), or -1 with a
 * message in err (a malformed grant, or one wider than its parent's when
 * eager).
 */
int crun_grant(struct crun *, int parent, const char *path,
    const json_t *grant, int eager, char *err, size_t errlen);
/*
 * A ticket for work done outside the task queue (a model call): its outcome
 * comes back through crun_deliver() and the sink's deliver callback, like
 * a task's.
 */
int64_t crun_ticket(struct crun *);
/*
 * Queue an outcome for the graph: result xor error (both borrowed; the
 * coordinator takes its own references).  Delivered on the next flush,
 * after everything recorded so far is committed.
 */
void crun_deliver(struct crun *, int64_t ticket, json_t *result,
    json_t *error);

struct replay;
/*
 * The call index of the next outside call (tool, model, w.now(),
 * w.random()) made by the node at path: 0, 1, ...  Part of a call's
 * replay key (engine/replay.h).
 */
int crun_call_index(struct crun *, const char *path);
/*
 * Answer calls from rec (borrowed; NULL: none) from now on, and continue
 * the run's event seq after last_seq (resume appends to the same run);
 * with last_seq > 0 task ids go on after the record's last one too.
 */
void crun_set_replay(struct crun *, struct replay *rec, int64_t last_seq);
struct replay *crun_replay(struct crun *);
/* Where the graph's span ids start (after a resumed run's last one). */
int64_t crun_span_base(struct crun *);
/* Keep no event from now on (seqs still count): an offline replay. */
void crun_discard_events(struct crun *);
/*
 * Whether a wide parallel may run its branches a few at a time: yes in an
 * offline replay (crun_discard_events), where every call is answered at
 * once, unless the record keys tool lists by the node that asked first
 * (replay_legacy_lists: that node must ask first again) or
 * crun_all_at_once was called.  A yes is remembered: crun_went_bounded.
 */
int crun_may_bound(struct crun *);
void crun_all_at_once(struct crun *);
int crun_went_bounded(const struct crun *);
/*
 * If the record answers the call (path, call, name, hash), record a
 * step.replayed event, queue its recorded outcome for delivery and return
 * its ticket; 0 if the call goes live (or there is no record); -1 on an
 * offline replay's divergence (the run fails with the report, which
 * describes the call from desc_json: its payload as JSON text).
 */
int64_t crun_recorded(struct crun *, const char *path, int64_t span,
    int call, const char *name, const char *hash, const char *desc_json);

#endif
