/*
 * serve_int.h: what engine/serve.c (workflows as tools, the MCP backend),
 * serve_runs.c (a tools/call as a child run), serve_owners.c (who started
 * which run) and serve_client.c (the calling client offered to its runs)
 * share.  Not a public surface: use engine/serve.h.
 */
#ifndef WEFT_SERVE_INT_H
#define WEFT_SERVE_INT_H

#include <sys/types.h>
#include <stdint.h>
#include <sys/queue.h>

#include "engine/exec.h"
#include "engine/serve.h"
#include "protocols/mcp_server.h"

#define SERVE_RUN_PREFIX	"weft://runs/"

struct store;
struct store_run;
struct evhttp;
struct httpd;
struct httpd_routes;
struct a2as;
struct sqlite3;
struct sqlite3_stmt;

struct serve_tool {
	char		*name;
	char		*path;		/* the workflow file */
	json_t		*meta;		/* luaeng_meta(): w.workflow fields */
	json_t		*checked_input;	/* input_schema weft validates, or NULL */
};

struct serve_run;
TAILQ_HEAD(serve_runs, serve_run);

/* Served calls, for /metrics (serve_ops.c). */
#define SERVE_NBUCKETS		15	/* latency buckets, +Inf included */
#define SERVE_NSTATUS		8	/* distinct run end statuses kept */
struct serve_stats {
	uint64_t	 hist[SERVE_NBUCKETS];	/* calls answered, by bucket */
	double		 sum;			/* their seconds */
	uint64_t	 count;
	char		 status[SERVE_NSTATUS][24];	/* how runs ended */
	uint64_t	 nstatus[SERVE_NSTATUS];
	uint64_t	 refused;	/* calls refused at admission */
};

struct serve {
	struct event_base	*base;
	struct serve_opts	 opts;
	char			*db;
	char			*exe;
	struct mcps		*mcps;
	struct store		*st;
	struct coord		*coord;		/* of every run */
	struct serve_tool	*tools;
	int			 ntools;
	struct serve_runs	 runs;		/* running and waiting */
	int			 nruns;		/* running */
	int			 nwaiting;	/* in the admission queue */
	int			 nother;	/* running A2A tasks */
	int			 stopping;
	struct event		*poll_ev;	/* reads events of live runs */
	struct event		*admit_ev;	/* starts waiting calls */
	struct evhttp		*client;	/* serve_client.c */
	struct httpd		*client_guard;
	int			 client_port;
	struct a2as		*a2a;		/* serve_a2a.c */
	struct httpd_routes	*routes;	/* its listener */
	struct sqlite3		*odb;		/* serve_owners.c */
	struct sqlite3_stmt	*o_put, *o_get, *o_mine;
	/* serve_ops.c: metrics, and the graceful stop (serve_drain) */
	struct serve_stats	 stats;
	int			 nworkers;	/* local + remote slots */
	void			(*drained)(void *);
	void			*drained_arg;
};

/*
 * Begin a new run of tool t in the server's coordinator (exec_start): its
 * id, its input (JSON text), the core.var values vars (may be NULL); done
 * is told when it ended.  NULL with *cause (the caller frees it).
 */
struct exec *serve_exec(struct serve *, struct serve_tool *t,
    const char *id, const char *input, const json_t *vars, exec_done_fn done,
    void *arg, char **cause);

/* serve_runs.c: run tool t for call with arguments (borrowed), or queue
   it for a slot. */
void serve_run_start(struct serve *, struct mcps_call *, struct serve_tool *,
    json_t *args);
/*
 * serve_runs.c: an A2A task (serve_a2a.c) asks for a run slot through the
 * calls' admission queue.  0: a slot is free, the caller begins its run
 * now and counts it in nother; 1: it waits in *q, and admit(arg, 1) is
 * called when its turn comes (the caller then begins and counts it), or
 * admit(arg, 0) when the server stops first; -1: the queue is full or
 * the server is stopping.  cancel takes a waiting *q out of the queue;
 * release gives back the slot of a run that ended.
 */
int serve_admit(struct serve *, void (*admit)(void *, int), void *arg,
    struct serve_run **q);
void serve_admit_cancel(struct serve *, struct serve_run *q);
void serve_admit_release(struct serve *);
/* Stop the run of call (mcps_backend.cancel). */
int serve_run_cancel(struct serve *, struct mcps_call *, int gone);
/* Make the event poll timer and the admission event. */
int serve_runs_init(struct serve *);
/* Admit no more calls; drop the waiting ones; with cancel, cancel the
   runs going and run the loop until their end is recorded. */
void serve_runs_stop(struct serve *, int cancel);
/* Free every run: those still going are left resumable. */
void serve_runs_free(struct serve *);
/* Resume the runs a killed server started (opts.resume). */
void serve_runs_resume(struct serve *);
/* Model calls in flight over every run going (/metrics). */
int serve_runs_model_calls(struct serve *);
/* The live run with this id, or NULL; its call, and a check of its
   client secret. */
struct serve_run *serve_run_find(struct serve *, const char *id);
void serve_runs_committed(void *serve, const char *run_id);
struct mcps_call *serve_run_call(struct serve_run *);
int serve_run_secret_ok(struct serve_run *, const char *secret);

/* serve_ops.c: a served call answered after secs, its run ended with
   status (NULL: it did not start); a call refused at admission. */
void serve_stats_call(struct serve *, double secs, const char *status);
void serve_stats_refused(struct serve *);
/* serve_ops.c: after a run was answered, end a drain with none left. */
void serve_drain_check(struct serve *);
/* serve_runs.c: answer the calls waiting for a slot with an error (the
   server is stopping). */
void serve_runs_refuse_waiting(struct serve *);
/* serve_runs.c: whether no run is going or waiting to be answered. */
int serve_runs_idle(struct serve *);

/* serve_client.c: the loopback tool server through which runs reach
   their client (sampling, elicitation).  init listens on 127.0.0.1:0. */
int serve_client_init(struct serve *);
/* serve_approval.c: a served run's approval.wait event e: ask the user of
   call's client (elicitation/create) if it can; the answer goes to st. */
struct store_event;
void serve_approval_ask(struct store *st, const char *run_id,
    struct mcps_call *call, const struct store_event *e);
void serve_client_free(struct serve *);

/*
 * serve_owners.c: who started each run (the table mcp_run_owners in the
 * store's file).  open prepares it at server start; put records owner as
 * the owner of run before the run starts (0, or -1 with a message);
 * visible says whether cn may see run id; runs calls cb for the newest
 * limit runs of owner found in the store.
 */
int serve_owners_open(struct serve *, char *err, size_t errlen);
void serve_owners_close(struct serve *);
int serve_owner_put(struct serve *, const char *run, const char *owner,
    char *err, size_t errlen);
int serve_run_visible(struct serve *, struct mcps_conn *, const char *id);
/* Whether a client of owner id mine (NULL: none) started run id, or its
   root run. */
int serve_owner_sees(struct serve *, const char *mine, const char *id);
/* serve_owners.c: the A2A tasks (table a2a_tasks): put records a new
   task (0, or -1 with a message); get reads its context id and message
   (JSON text, freed by the caller), -1 when it is not one of workflow's;
   tasks calls cb with the ids of workflow's newest tasks of owner (NULL:
   anyone's) in context ctx (NULL: any), up to limit, until cb says 1. */
int serve_a2a_task_put(struct serve *, const char *run, const char *workflow,
    const char *ctx, const char *message, char *err, size_t errlen);
int serve_a2a_task_get(struct serve *, const char *run, const char *workflow,
    char *ctx, size_t ctxlen, char **message);
int serve_a2a_tasks(struct serve *, const char *workflow, const char *owner,
    const char *ctx, int limit, int (*cb)(void *, const char *), void *arg);
int serve_owner_runs(struct serve *, const char *owner, int limit,
    int (*cb)(void *, const struct store_run *), void *arg);

#endif
