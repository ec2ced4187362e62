/* queue.c: a coordinator's task queue, policies and leases (queue.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "runtime/queue.h"
#include "runtime/util.h"
#include "runtime/wire.h"

/*
 * Defaults of a task's execution policy (docs/workflows.md, "Timeouts and
 * retries"); a node or server sets its own in params.server.policy.
 */
#define QPOLICY_ATTEMPT_S	600.0
#define QPOLICY_TOTAL_S		1800.0
#define QPOLICY_QUEUE_S		300.0
#define QPOLICY_BACKOFF_S	0.5
#define QPOLICY_MAX_BACKOFF_S	10.0
#define QPOLICY_MULTIPLIER	2.0

/* Failure kinds a policy may retry: bit i is qpolicy_kinds[i]. */
static const char *const qpolicy_kinds[] = { FAIL_TIMEOUT, FAIL_LOST_WORKER,
    FAIL_SERVER_EXITED, FAIL_SERVER_START, FAIL_TRANSPORT, FAIL_PROTOCOL,
    FAIL_RATE_LIMITED, NULL };
/* Retried unless a policy says otherwise: timeout, lost worker, a server
   that died mid-call, transport errors, rate limits. */
#define QPOLICY_ON_DEFAULT	(1u << 0 | 1u << 1 | 1u << 2 | 1u << 4 | \
				 1u << 6)

/* Set *out to member name of o if it is a number in [lo, hi]. */
static void
qpolicy_num(const json_t *o, const char *name, double lo, double hi,
    double *out)
{
	json_t *v = json_object_get(o, name);

	if (json_is_number(v) && json_number_value(v) >= lo &&
	    json_number_value(v) <= hi)
		*out = json_number_value(v);
}

/* The retryable kinds of a retry.on list, as qpolicy_kinds bits. */
static unsigned
qpolicy_on(const json_t *list)
{
	json_t *v;
	unsigned on = 0;
	size_t i, k;

	json_array_foreach(list, i, v)
		for (k = 0; qpolicy_kinds[k] != NULL; k++)
			if (json_is_string(v) && strcmp(json_string_value(v),
			    qpolicy_kinds[k]) == 0)
				on |= 1u << k;
	return on;
}

void
qpolicy_parse(struct qpolicy *p, const json_t *params, double lease_s,
    double heartbeat_s, int max_attempts)
{
	json_t *srv, *pol, *tm, *rt;
	double n;

	p->attempt_s = QPOLICY_ATTEMPT_S;
	p->total_s = QPOLICY_TOTAL_S;
	p->queue_s = QPOLICY_QUEUE_S;
	p->lease_s = lease_s;
	p->max_attempts = max_attempts;
	p->backoff_s = QPOLICY_BACKOFF_S;
	p->max_backoff_s = QPOLICY_MAX_BACKOFF_S;
	p->multiplier = QPOLICY_MULTIPLIER;
	p->on = QPOLICY_ON_DEFAULT;
	p->idempotent = 1;
	if (params == NULL)
		return;
	srv = json_object_get(params, "server");
	qpolicy_num(srv, "timeout", 0.001, 86400, &p->attempt_s);
	pol = json_object_get(srv, "policy");
	tm = json_object_get(pol, "timeout");
	qpolicy_num(tm, "attempt", 0.001, 86400, &p->attempt_s);
	qpolicy_num(tm, "total", 0.001, 86400, &p->total_s);
	qpolicy_num(tm, "queue", 0.001, 86400, &p->queue_s);
	qpolicy_num(tm, "heartbeat", 0.001, 86400, &p->lease_s);
	/* A lease outlives at least two heartbeat intervals. */
	if (p->lease_s < 2 * heartbeat_s)
		p->lease_s = 2 * heartbeat_s;
	rt = json_object_get(pol, "retry");
	n = p->max_attempts;
	qpolicy_num(rt, "max_attempts", 1, 100, &n);
	p->max_attempts = (int)n;
	qpolicy_num(rt, "backoff", 0, 3600, &p->backoff_s);
	qpolicy_num(rt, "max_backoff", 0, 3600, &p->max_backoff_s);
	qpolicy_num(rt, "multiplier", 1, 3600, &p->multiplier);
	if (json_is_array(json_object_get(rt, "on")))
		p->on = qpolicy_on(json_object_get(rt, "on"));
	if (json_is_false(json_object_get(pol, "idempotent")))
		p->idempotent = 0;
}

int
qpolicy_retries(const struct qpolicy *p, const char *kind)
{
	size_t i;

	for (i = 0; kind != NULL && qpolicy_kinds[i] != NULL; i++)
		if (strcmp(kind, qpolicy_kinds[i]) == 0)
			return (p->on >> i) & 1;
	return 0;
}

/* A uniform number in [0, 1): xorshift64*, seeded once per process. */
static double
qpolicy_random(void)
{
	static uint64_t x;

	if (x == 0)
		x = ((uint64_t)getpid() << 32 ^ (uint64_t)(now_wall() *
		    1e6)) | 1;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	return (double)((x * 2685821657736338717ULL) >> 11) /
	    9007199254740992.0;
}

double
qpolicy_delay(const struct qpolicy *p, int n)
{
	double cap = p->backoff_s;

	while (--n > 0 && cap < p->max_backoff_s)
		cap *= p->multiplier;
	if (cap > p->max_backoff_s)
		cap = p->max_backoff_s;
	return cap * qpolicy_random();
}

void
queue_init(struct queue *q, struct event_base *base, void (*ready)(void *),
    void *arg)
{
	memset(q, 0, sizeof *q);
	TAILQ_INIT(&q->queued);
	TAILQ_INIT(&q->leased);
	q->base = base;
	q->ready = ready;
	q->arg = arg;
}

void
queue_add(struct queue *q, struct qtask *t)
{
	if (NEVER(t->linked))
		return;
	t->linked = 1;
	t->q = q;
	t->state = QT_QUEUED;
	t->worker = -1;
	t->queued_at = now_mono();
	t->deadline = t->queued_at + t->pol.total_s;
	TAILQ_INSERT_TAIL(&q->queued, t, entry);
	q->nqueued++;
}

void
queue_lease(struct queue *q, struct qtask *t, int worker)
{
	if (NEVER(t->state != QT_QUEUED || !t->linked))
		return;
	TAILQ_REMOVE(&q->queued, t, entry);
	q->nqueued--;
	t->state = QT_LEASED;
	t->worker = worker;
	t->started = now_mono();
	t->lease_until = t->started + t->pol.lease_s;
	TAILQ_INSERT_TAIL(&q->leased, t, entry);
}

int
queue_unlink(struct queue *q, struct qtask *t)
{
	int holder = -1;

	/* Out of a list twice would corrupt it: the caller lost track. */
	if (NEVER(!t->linked))
		return -1;
	t->linked = 0;
	switch (t->state) {
	case QT_LEASED:
		TAILQ_REMOVE(&q->leased, t, entry);
		holder = t->worker;
		break;
	case QT_QUEUED:
		TAILQ_REMOVE(&q->queued, t, entry);
		q->nqueued--;
		break;
	case QT_DELAYED:
		evtimer_del(t->retry_ev);
		break;
	case QT_DONE:
		/* A task ends once: it is in no list to leave. */
		(void)NEVER(1);
		break;
	}
	return holder;
}

/* Backoff over: queue the task for its next attempt, first in line. */
static void
queue_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qtask *t = arg;
	struct queue *q = t->q;

	if (NEVER(t->state != QT_DELAYED))
		return;
	t->state = QT_QUEUED;
	t->queued_at = now_mono();
	TAILQ_INSERT_HEAD(&q->queued, t, entry);
	q->nqueued++;
	q->ready(q->arg);
}

void
queue_delay(struct queue *q, struct qtask *t, double delay)
{
	struct timeval tv;

	if (NEVER(t->linked || t->state == QT_DONE))
		return;
	t->linked = 1;
	t->worker = -1;
	t->state = QT_DELAYED;
	if (delay < 0.001) {
		queue_retry_cb(-1, 0, t);
		return;
	}
	if (t->retry_ev == NULL)
		t->retry_ev = evtimer_new(q->base, queue_retry_cb, t);
	tv.tv_sec = (time_t)delay;
	tv.tv_usec = (suseconds_t)((delay - (double)tv.tv_sec) * 1e6);
	evtimer_add(t->retry_ev, &tv);
}

void
queue_end(struct queue *q, struct qtask *t)
{
	if (NEVER(t->linked))
		return;
	t->state = QT_DONE;
}

void
qtask_free(struct qtask *t)
{
	if (t->retry_ev != NULL)
		event_free(t->retry_ev);
	free(t->params);
	free(t->server);
	free(t->tool);
	free(t->on);
	free(t->kind);
	free(t->path);
	free(t);
}
