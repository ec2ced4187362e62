/*
 * store_event.c: a run's events in the store: appended to the batch in
 * seq order (a duplicate refused when it is made, from a small cache of
 * each run's highest seq), walked in seq order with the pending ones
 * merged in, and counted.  See store.h.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "engine/store.h"
#include "engine/store_int.h"
#include "runtime/util.h"

/*
 * The highest seq recorded or pending for run_id, from a small cache kept
 * most recent first; *max is -1 for a run with none.
 */
static int
store_seq_max(struct store *s, const char *run_id, struct store_seq **out)
{
	struct store_seq hit, *q = s->seq;
	sqlite3_stmt *st;
	int64_t max = -1;
	size_t i;
	int rc;

	for (i = 0; i < nitems(s->seq); i++) {
		if (q[i].run_id == NULL || strcmp(q[i].run_id, run_id) != 0)
			continue;
		if (i > 0) {
			hit = q[i];
			memmove(q + 1, q, i * sizeof *q);
			q[0] = hit;
		}
		*out = &q[0];
		return 0;
	}
	if ((st = store_stmt(s, ST_EVENT_MAXSEQ)) == NULL)
		return -1;
	store_bind_str(st, 1, run_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		max = sqlite3_column_int64(st, 0);
	if (rc != SQLITE_ROW)
		store_fail(s, "cannot read events");
	store_stmt_done(s, ST_EVENT_MAXSEQ, st);
	if (rc != SQLITE_ROW)
		return -1;
	for (i = 0; i < s->npend; i++)
		if (s->pend[i].type == PEND_EVENT &&
		    s->pend[i].u.ev.seq > max &&
		    strcmp(s->pend[i].u.ev.run_id, run_id) == 0)
			max = s->pend[i].u.ev.seq;
	free(q[nitems(s->seq) - 1].run_id);
	memmove(q + 1, q, (nitems(s->seq) - 1) * sizeof *q);
	q[0].run_id = xstrdup(run_id);
	q[0].max = max;
	*out = &q[0];
	return 0;
}

/* Whether event (run, seq) is recorded or pending: 1, 0, or -1. */
static int
store_event_known(struct store *s, const struct store_event *ev)
{
	sqlite3_stmt *st;
	size_t i;

	for (i = 0; i < s->npend; i++)
		if (s->pend[i].type == PEND_EVENT &&
		    s->pend[i].u.ev.seq == ev->seq &&
		    strcmp(s->pend[i].u.ev.run_id, ev->run_id) == 0)
			return 1;
	if ((st = store_stmt(s, ST_EVENT_EXISTS)) == NULL)
		return -1;
	store_bind_str(st, 1, ev->run_id);
	sqlite3_bind_int64(st, 2, ev->seq);
	return store_step_row(s, ST_EVENT_EXISTS, st, NULL, "cannot read "
	    "events");
}

int
store_event_append(struct store *s, const struct store_event *ev)
{
	struct store_seq *m;
	struct store_pend *p;
	struct store_event *c;
	int known;

	if (store_refuse(s) != 0)
		return -1;
	if (ev->run_id == NULL || ev->kind == NULL) {
		errf(s->err, sizeof s->err, "cannot append event %lld of run "
		    "'%s': NOT NULL constraint failed: events.%s",
		    (long long)ev->seq, ev->run_id ? ev->run_id : "",
		    ev->run_id == NULL ? "run_id" : "kind");
		return -1;
	}
	if (store_seq_max(s, ev->run_id, &m) != 0)
		return -1;
	if (ev->seq <= m->max) {
		/* Out of order, or a duplicate: look it up. */
		if ((known = store_event_known(s, ev)) != 0) {
			if (known > 0)
				errf(s->err, sizeof s->err, "cannot append "
				    "event %lld of run '%s': UNIQUE "
				    "constraint failed: events.run_id, "
				    "events.seq",
				    (long long)ev->seq, ev->run_id);
			return -1;
		}
	} else
		m->max = ev->seq;
	p = store_pend_new(s, PEND_EVENT);
	c = &p->u.ev;
	*c = *ev;
	c->run_id = store_keep(s, ev->run_id);
	c->node_path = store_keep(s, ev->node_path);
	c->kind = store_keep(s, ev->kind);
	c->payload = store_keep(s, ev->payload);
	return store_pend_check(s);
}

/*
 * The pending events of a run, in seq order, to be merged into a walk of
 * the recorded ones.  gen is the batch they belong to: a callback that
 * commits or drops it ends them.
 */
struct store_event_walk {
	store_event_cb	 cb;
	void		*arg;
	struct store	*s;
	struct store_ix	*ix;
	size_t		 n, next;
	uint64_t	 gen;
};
struct store_ix {
	int64_t	 seq;
	size_t	 i;
};

/* Order pending events by seq. */
static int
store_seq_cmp(const void *a, const void *b)
{
	int64_t x = ((const struct store_ix *)a)->seq;
	int64_t y = ((const struct store_ix *)b)->seq;

	return x < y ? -1 : x > y;
}

/* Hand the pending events below seq (all: every one left) to the caller. */
static int
store_event_pending(struct store_event_walk *w, int64_t seq, int all)
{
	struct store_event ev;
	int rc;

	while (w->next < w->n && w->gen == w->s->gen) {
		ev = w->s->pend[w->ix[w->next].i].u.ev;
		if (!all && ev.seq >= seq)
			break;
		w->next++;
		if ((rc = w->cb(w->arg, &ev)) != 0)
			return rc;
	}
	return 0;
}

/* Hand one recorded event to the caller, after the pending ones before
   it. */
static int
store_event_row_cb(sqlite3_stmt *st, void *arg)
{
	struct store_event_walk *w = arg;
	struct store_event ev;
	int rc;

	ev.seq = sqlite3_column_int64(st, 1);
	if ((rc = store_event_pending(w, ev.seq, 0)) != 0)
		return rc;
	ev.run_id = store_col_str(st, 0);
	ev.span_id = sqlite3_column_int64(st, 2);
	ev.parent_span = sqlite3_column_int64(st, 3);
	ev.node_path = store_col_str(st, 4);
	ev.kind = store_col_str(st, 5);
	ev.attempt = sqlite3_column_int(st, 6);
	ev.time = sqlite3_column_double(st, 7);
	ev.payload = store_col_str(st, 8);
	ev.tokens = sqlite3_column_int64(st, 9);
	ev.cost = sqlite3_column_double(st, 10);
	return w->cb(w->arg, &ev);
}

int
store_events_foreach(struct store *s, const char *run_id, store_event_cb cb,
    void *arg)
{
	return store_events_after(s, run_id, -1, cb, arg);
}

int
store_events_after(struct store *s, const char *run_id, int64_t after,
    store_event_cb cb, void *arg)
{
	struct store_event_walk w;
	sqlite3_stmt *st;
	size_t i;
	int rc;

	memset(&w, 0, sizeof w);
	w.cb = cb;
	w.arg = arg;
	w.s = s;
	w.gen = s->gen;
	for (i = 0; i < s->npend; i++) {
		if (s->pend[i].type != PEND_EVENT ||
		    s->pend[i].u.ev.seq <= after ||
		    strcmp(s->pend[i].u.ev.run_id, run_id) != 0)
			continue;
		if (w.n % 64 == 0)
			w.ix = xrealloc(w.ix, (w.n + 64) * sizeof *w.ix);
		w.ix[w.n].seq = s->pend[i].u.ev.seq;
		w.ix[w.n++].i = i;
	}
	if (w.n > 1)
		qsort(w.ix, w.n, sizeof *w.ix, store_seq_cmp);
	if ((st = store_stmt(s, ST_EVENTS)) == NULL) {
		free(w.ix);
		return -1;
	}
	store_bind_str(st, 1, run_id);
	sqlite3_bind_int64(st, 2, after);
	rc = store_walk(s, ST_EVENTS, st, store_event_row_cb, &w,
	    "cannot read events");
	if (rc == 0)
		rc = store_event_pending(&w, 0, 1);
	free(w.ix);
	return rc;
}

int64_t
store_event_count(struct store *s, const char *run_id)
{
	sqlite3_stmt *st;
	int64_t n = -1;
	size_t i;

	if ((st = store_stmt(s, ST_EVENT_COUNT)) == NULL)
		return -1;
	store_bind_str(st, 1, run_id);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	else
		store_fail(s, "cannot count events");
	store_stmt_done(s, ST_EVENT_COUNT, st);
	for (i = 0; n >= 0 && i < s->npend; i++)
		if (s->pend[i].type == PEND_EVENT &&
		    strcmp(s->pend[i].u.ev.run_id, run_id) == 0)
			n++;
	return n;
}
