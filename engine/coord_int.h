/*
 * coord_int.h: what the coordinator's files share (engine/coord.c, crun.c,
 * ctask.c, coord_wire.c): its structs and their private functions.  Not a
 * public surface: use engine/coord.h.
 */
#ifndef WEFT_COORD_INT_H
#define WEFT_COORD_INT_H

#include <stdint.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <jansson.h>
#include <nng/nng.h>

#include "engine/coord.h"
#include "runtime/chan.h"
#include "runtime/queue.h"

struct evbuffer;
struct captoken;

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
	int			 recorded;	/* events since the last
						   opts.committed call */
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
	/* the last server spec a task policy was read from, and it */
	char			*pol_text;
	struct qpolicy		 pol;
	char			*pol_on;
	struct rctx		*rctxs;
	size_t			 nrctx;
	struct rctx_list	 parked;
	struct worker		*workers;
	int			 nworkers;
	int			 restarts;
	int			 forked;	/* local workers started (opts.lazy) */
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

/* coord.c */
void	coord_store_fail(struct coord *c);
void	coord_ready_cb(void *arg);
void	coord_event_all(struct coord *c, const char *kind, json_t *payload);
void	coord_unlabel(struct worker *w);
void	coord_dispatch(struct coord *c);

/* crun.c */
void	crun_fail(struct crun *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ctask.c */
struct qtask *	coord_task_of(struct coord *c, json_int_t id);
void	coord_task_unlink(struct crun *run, struct qtask *t);
void	coord_task_end(struct crun *run, struct qtask *t, json_t *result,
    json_t *error);
void	coord_task_fail(struct crun *run, struct qtask *t, const char *kind,
    json_t *msg);
void	coord_cancel_on_worker(struct coord *c, struct qtask *t);
void	coord_task_retry(struct qtask *t, const char *kind, const char *why);
void	coord_task_failed(struct qtask *t, json_t *error);
void	coord_task_text(struct qtask *t, struct evbuffer *buf);
void	coord_tick_cb(evutil_socket_t fd, short what, void *arg);

/* coord_wire.c */
void	coord_reply(struct rctx *r, json_t *result);
void	coord_reply_text(struct rctx *r, const char *res, size_t reslen);
void	coord_rctx_loop_cb(struct chan *ch, nng_msg *msg);
int	coord_listen_remote(struct coord *c, const struct coord_opts *o,
    char *err, size_t errlen);
int	coord_enrol_remote(struct coord *c, const char *dir, int first, int n,
    char *err, size_t errlen);

#endif
