/*
 * worker_int.h: what the parts of `weft worker` share: the worker, its
 * tasks, its server sessions and its request contexts.  worker.c speaks
 * the wire (enrolment, hello, poll, heartbeat, outcomes) and runs the
 * loop; task.c runs tasks (token checks, tool calls and lists, timeouts);
 * session.c keeps the MCP server sessions and their scratch directories.
 */
#ifndef WEFT_WORKER_INT_H
#define WEFT_WORKER_INT_H

#include <limits.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <jansson.h>
#include <nng/nng.h>

#include "runtime/chan.h"
#include "runtime/sandbox.h"

struct worker;

/* Most progress notifications a task keeps between two reports. */
#define WORKER_MAX_PROGRESS	64

/* Verified tokens kept, so a token's signature is checked once. */
#define WORKER_TOKEN_CACHE	32

/* One nng REQ context (runtime/chan.h): one request in flight at a time. */
struct wreq {
	struct chan	 ch;
	struct worker	*w;
	int		 busy;
	void		(*done)(struct worker *, json_t *result, json_t *err);
};

struct wtask {
	struct worker		*w;
	int64_t			 id;
	int			 attempt;
	char			*kind;
	json_t			*list;		/* mcp.list: tools so far */
	struct mcpc		*session;
	struct wsession		*ws;
	int64_t			 handle;	/* mcp.call: mcpc request */
	struct event		*timer;		/* mcp.call: timeout */
	double			 timeout;	/* seconds */
	double			 task_timeout;	/* the attempt's, or 0 */
	char			*idem;		/* idempotency key, or NULL */
	unsigned		 gen;		/* mcp.list: list generation */
	json_t			*progress;	/* not yet reported */
	struct a2ac		*a2a;		/* a2a.send: the exchange */
	int			 nupdates;	/* a2a.send: updates seen */
	TAILQ_ENTRY(wtask)	 entry;
};
TAILQ_HEAD(wtask_list, wtask);

/*
 * One MCP server session per (run, server name): a sandboxed server gets
 * a scratch dir of its own for the run, removed with the session.
 */
struct wsession {
	struct worker		*w;
	struct mcpc		*mcpc;
	json_t			*tools;		/* cached tools/list, or NULL */
	unsigned		 gen;		/* list_changed count */
	int			 changed;	/* list_changed not yet told */
	char			*name;
	char			*run;
	char			*scratch;	/* NULL: none */
	int			 nactive;	/* tasks using it */
	int			 kept;		/* keep = "workflow": outlives
						   runs */
	unsigned		 reported;	/* starts already reported */
	int			 warned;
	LIST_ENTRY(wsession)	 entry;
};

struct worker {
	int			 id;
	int			 slots;
	int			 verbose;
	int			 no_seccomp;	/* --no-seccomp */
	struct sandbox_report	 self;		/* its own confinement */
	struct event_base	*base;
	struct bridge		*bridge;
	nng_socket		 sock;
	struct wreq		 poll, hb, out;
	struct event		*hb_ev, *chld_ev, *term_ev;
	struct wtask_list	 running;
	int			 nrunning;
	json_t			*results;	/* outcomes not yet sent */
	json_t			*failures;
	int			 heartbeat_ms;
	int			 stopping;
	LIST_HEAD(, wsession)	 sessions;
	struct http		*hc;		/* a2a.send's client */
	struct captoken_keys	*keys;		/* public keys only */
	struct captoken_uses	*uses;		/* calls per token */
	struct captoken		*tokc[WORKER_TOKEN_CACHE]; /* verified */
	unsigned		 tokc_next;
	char			 scratch_root[PATH_MAX];
	int			 scratch_own;	/* remove the root at exit */
	char			 url[PATH_MAX + 16]; /* the coordinator */
	char			*secret;	/* of its enrolment, until
						   hello; NULL: none */
};

/* worker.c: send what is ready (outcomes, the next poll). */
void worker_pump(struct worker *w);

/* task.c: start a task the coordinator gave; end and free tasks. */
void worker_task_free(struct wtask *t);
void worker_start_task(struct worker *w, json_t *task);
void worker_outcome(struct wtask *t, json_t *result, json_t *error);
void worker_task_fail(struct wtask *t, const char *kind, const char *msg);

/* task_a2a.c: an a2a.send task, and its cancel by the coordinator. */
void worker_a2a_start(struct wtask *t, json_t *task, json_t *params);
/*
 * The W3C traceparent of a task's outgoing call (MCP over HTTP, A2A) from
 * its idempotency key "RUN:N": the run's trace, the call's own span as
 * parent, with the ids of engine/otlp.c (sha256 of "RUN:trace" and
 * "RUN:task:N").  0, or -1 for a key not of that form.
 */
int worker_traceparent(const char *idem, char out[56]);
void worker_a2a_cancel(struct wtask *t);

/* session.c: the scratch root, and the MCP server session of (run,
   server) for a task, started on first use. */
int worker_scratch_root(struct worker *w, const char *given);
void worker_scratch_sweep(struct worker *w);
void worker_session_free(struct wsession *s);
struct wsession *worker_session(struct worker *w, json_t *spec,
    const char *run, char *err, size_t errlen);
/* Add a progress item (stolen) to what task t reports next, the newest
   WORKER_MAX_PROGRESS kept. */
void worker_task_progress(struct wtask *t, json_t *item);

#endif
