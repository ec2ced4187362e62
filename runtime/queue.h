/*
 * queue.h: a coordinator's task queue: tasks, their execution policy
 * (timeouts, retries with backoff), leases to workers and the backoff
 * wait between attempts.  It knows nothing of runs, tokens, the store or
 * the wire: the coordinator (engine/coord.c) records what happens and
 * talks to workers; this module keeps the tasks in the right list, as
 * OpenSMTPD's scheduler keeps envelopes behind its scheduler_backend.
 *
 * A task's life: QT_QUEUED (queue_add, or back from a backoff) ->
 * QT_LEASED (queue_lease: a worker holds its attempt) -> QT_DONE, or
 * QT_DELAYED (queue_delay: its next attempt waits out the backoff) and
 * back to QT_QUEUED.  Everything runs on the loop thread of the event base.
 * A call out of this order (leasing a task that is not queued, unlinking
 * one twice, delaying one still in a list, ending one in a list) is a bug:
 * NEVER() asserts, and in a build without asserts the call does nothing.
 */
#ifndef WEFT_QUEUE_H
#define WEFT_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <jansson.h>

struct event;
struct event_base;

/* A task's execution policy (docs/workflows.md, "Timeouts and retries"). */
struct qpolicy {
	double		 attempt_s;	/* one attempt */
	double		 total_s;	/* all attempts, from submission */
	double		 queue_s;	/* queued before a worker takes it */
	double		 lease_s;	/* heartbeat: lease without one */
	int		 max_attempts;
	double		 backoff_s, max_backoff_s, multiplier;
	unsigned	 on;		/* retryable failure kinds (bits) */
	int		 idempotent;
};

/* Less time than this left before the total deadline: no new attempt. */
#define QPOLICY_MIN_ATTEMPT_S	0.05

/*
 * The policy of a task whose params (parsed; may be NULL) are p: the
 * defaults, with lease_s and max_attempts from the coordinator's options,
 * then the server's own request timeout (params.server.timeout, one
 * attempt) and params.server.policy (checked by the DSL; a value out of
 * range keeps the default).  A lease outlives two heartbeats.
 */
void qpolicy_parse(struct qpolicy *, const json_t *params, double lease_s,
    double heartbeat_s, int max_attempts);
/* Whether the policy retries a failure of kind (runtime/wire.h FAIL_*). */
int qpolicy_retries(const struct qpolicy *, const char *kind);
/* The wait before the attempt after attempt n: full jitter over
   backoff * multiplier^(n-1), capped at max_backoff. */
double qpolicy_delay(const struct qpolicy *, int n);

enum qtask_state { QT_QUEUED, QT_LEASED, QT_DELAYED, QT_DONE };

struct queue;

struct qtask {
	int64_t			 id;		/* in its run (recorded) */
	int64_t			 wire;		/* on the wire: unique in the
						   coordinator */
	void			*owner;		/* its run */
	int			 attempt;
	enum qtask_state	 state;
	char			*kind;		/* mcp.call, mcp.list */
	char			*path;		/* node path */
	int64_t			 span;
	char			*params;	/* JSON text, sent as is */
	char			*server;	/* MCP server name */
	char			*tool;		/* mcp.call: tool name, or NULL */
	char			*on;		/* worker label it needs, or NULL */
	int			 waited;	/* task.waiting recorded */
	int			 grant;		/* its token's grant id */
	int			 worker;	/* lease holder, -1 */
	double			 lease_until;	/* monotonic */
	double			 started;	/* monotonic, this attempt */
	double			 queued_at;	/* monotonic, last queued */
	double			 deadline;	/* monotonic, all attempts */
	struct qpolicy		 pol;
	size_t			 size;		/* encoded params, bytes */
	struct queue		*q;
	struct event		*retry_ev;	/* QT_DELAYED: the backoff */
	int			 linked;	/* in a list or its backoff */
	TAILQ_ENTRY(qtask)	 entry;		/* queued or leased list */
};
TAILQ_HEAD(qtask_list, qtask);

/*
 * The lists are the owner's to read (dispatch walks queued, the tick
 * walks both); only the queue_* calls change them.
 */
struct queue {
	struct qtask_list	 queued;
	struct qtask_list	 leased;
	size_t			 nqueued;
	struct event_base	*base;
	void			(*ready)(void *);	/* a task came back
							   from its backoff */
	void			*arg;
};

/* An empty queue on base; ready(arg) when a delayed task is queued. */
void queue_init(struct queue *, struct event_base *, void (*ready)(void *),
    void *arg);

/* A new task (the caller fills it): queued at the tail, now; deadline
   from its policy's total. */
void queue_add(struct queue *, struct qtask *);
/* Lease queued task t to worker for this attempt, from now. */
void queue_lease(struct queue *, struct qtask *, int worker);
/*
 * Take t out of its list (or its backoff wait) for good or for another
 * attempt; returns the worker whose lease it was, else -1.  t is then in
 * no list: the caller ends it (QT_DONE) or delays it (queue_delay).
 */
int queue_unlink(struct queue *, struct qtask *);
/* Unlinked t has ended (QT_DONE): it goes in no list again. */
void queue_end(struct queue *, struct qtask *);
/* Queue unlinked t for its next attempt after delay seconds (at the head
   of the queue: it waited already). */
void queue_delay(struct queue *, struct qtask *, double delay);
/* Free a task that is in no list. */
void qtask_free(struct qtask *);

#endif
