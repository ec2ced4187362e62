/*
 * store_run.c: run rows in the store: a run created and finished through
 * the batch (a large input kept as a blob), and read back by id, by a
 * unique prefix of it, or as the list of recent runs.  See store.h.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "engine/store.h"
#include "engine/store_int.h"
#include "runtime/util.h"

/* Whether a run row with this id is recorded or pending: 1, 0, -1. */
static int
store_run_known(struct store *s, const char *id)
{
	sqlite3_stmt *st;
	size_t i;

	for (i = 0; i < s->npend; i++)
		if (s->pend[i].type == PEND_RUN_CREATE &&
		    strcmp(s->pend[i].u.run.r.id, id) == 0)
			return 1;
	if ((st = store_stmt(s, ST_RUN_EXISTS)) == NULL)
		return -1;
	store_bind_str(st, 1, id);
	return store_step_row(s, ST_RUN_EXISTS, st, NULL, "cannot look up "
	    "run");
}

/* A run entry of the batch holding a copy of r. */
static struct store_pend *
store_pend_run(struct store *s, int type, const struct store_run *r)
{
	struct store_pend *p;
	struct store_run *c;

	p = store_pend_new(s, type);
	c = &p->u.run.r;
	*c = *r;
	c->id = store_keep(s, r->id);
	c->status = store_keep(s, r->status);
	c->spend = store_keep(s, r->spend);
	c->output = store_keep(s, r->output);
	c->error = store_keep(s, r->error);
	if (type == PEND_RUN_FINISH) {
		/* Only the columns a finish sets: the rest may be gone. */
		c->workflow = c->workflow_hash = c->input = NULL;
		c->budget = c->parent_run = NULL;
		return p;
	}
	c->workflow = store_keep(s, r->workflow);
	c->workflow_hash = store_keep(s, r->workflow_hash);
	c->input = store_keep(s, r->input);
	c->budget = store_keep(s, r->budget);
	c->parent_run = store_keep(s, r->parent_run);
	return p;
}

int
store_run_create(struct store *s, const struct store_run *r)
{
	struct store_run row = *r;
	struct store_pend *p;
	char hash[65] = "";
	int now, known;

	if (store_refuse(s) != 0)
		return -1;
	if (r->id == NULL) {
		errf(s->err, sizeof s->err, "cannot create run: no id");
		return -1;
	}
	if ((known = store_run_known(s, r->id)) != 0) {
		if (known > 0)
			errf(s->err, sizeof s->err, "cannot create run '%s': "
			    "UNIQUE constraint failed: runs.id (a run with "
			    "this id exists)", r->id);
		return -1;
	}
	now = s->npend == 0 && !s->in_txn;
	if (r->input != NULL && strlen(r->input) > STORE_INPUT_INLINE_MAX) {
		if (store_blob_put(s, r->input, strlen(r->input), hash) != 0)
			return -1;
		row.input = NULL;
	}
	p = store_pend_run(s, PEND_RUN_CREATE, &row);
	memcpy(p->u.run.input_blob, hash, sizeof hash);
	return now ? store_flush(s, 0) : 0;
}

int
store_run_finish(struct store *s, const struct store_run *r)
{
	int now, known;

	if (store_refuse(s) != 0)
		return -1;
	if ((known = store_run_known(s, r->id != NULL ? r->id : "")) <= 0) {
		if (known == 0)
			errf(s->err, sizeof s->err, "no run '%s'",
			    r->id != NULL ? r->id : "");
		return -1;
	}
	now = s->npend == 0 && !s->in_txn;
	store_pend_run(s, PEND_RUN_FINISH, r);
	return now ? store_flush(s, 0) : 0;
}

const char *
store_run_columns(const struct store *s)
{
	return s->version < 2 ? RUN_COLUMNS_V1 : RUN_COLUMNS_V2;
}

void
store_run_row(sqlite3_stmt *st, struct store_run *r)
{
	r->id = store_col_str(st, 0);
	r->workflow = store_col_str(st, 1);
	r->workflow_hash = store_col_str(st, 2);
	r->input = store_col_str(st, 3);
	r->status = store_col_str(st, 4);
	r->budget = store_col_str(st, 5);
	r->spend = store_col_str(st, 6);
	r->output = store_col_str(st, 7);
	r->error = store_col_str(st, 8);
	r->parent_run = store_col_str(st, 9);
	r->started = sqlite3_column_double(st, 10);
	r->ended = sqlite3_column_double(st, 11);
	r->steps = sqlite3_column_int64(st, 12);
	r->tokens = sqlite3_column_int64(st, 13);
	r->cost = sqlite3_column_double(st, 14);
}

struct store_run_walk {
	store_run_cb	 cb;
	void		*arg;
	int		 found;
};

/* Hand one run row to the caller's callback. */
static int
store_run_row_cb(sqlite3_stmt *st, void *arg)
{
	struct store_run_walk *w = arg;
	struct store_run r;

	store_run_row(st, &r);
	w->found++;
	return w->cb(w->arg, &r);
}

int
store_runs_list(struct store *s, int limit, store_run_cb cb, void *arg)
{
	struct store_run_walk w = { cb, arg, 0 };
	sqlite3_stmt *st;

	if ((st = store_stmt(s, ST_RUNS_LIST)) == NULL)
		return -1;
	sqlite3_bind_int(st, 1, limit > 0 ? limit : -1);
	return store_walk(s, ST_RUNS_LIST, st, store_run_row_cb, &w,
	    "cannot list runs");
}

/* Call cb for the run whose id is exactly id; *found says if there was one. */
static int
store_run_get(struct store *s, const char *id, store_run_cb cb, void *arg,
    int *found)
{
	struct store_run_walk w = { cb, arg, 0 };
	sqlite3_stmt *st;
	int rc;

	if ((st = store_stmt(s, ST_RUN_GET)) == NULL)
		return -1;
	store_bind_str(st, 1, id);
	rc = store_walk(s, ST_RUN_GET, st, store_run_row_cb, &w,
	    "cannot read run");
	*found = w.found;
	return rc;
}

/*
 * The smallest string above every string that starts with prefix, for a
 * range scan on the id index: the prefix with its last byte below 0xff
 * incremented.  NULL when there is none (every byte is 0xff).
 */
static char *
store_prefix_end(const char *prefix)
{
	char *end;
	size_t n;

	end = xstrdup(prefix);
	n = strlen(end);
	while (n > 0 && (unsigned char)end[n - 1] == 0xff)
		n--;
	if (n == 0) {
		free(end);
		return NULL;
	}
	end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
	end[n] = '\0';
	return end;
}

/* Find the one id starting with prefix: 0 and *id, or -1 with the error. */
static int
store_run_prefix(struct store *s, const char *prefix, char **id)
{
	sqlite3_stmt *st;
	char *end, *match = NULL;
	int rc, n = 0;

	if ((st = store_stmt(s, ST_RUN_PREFIX)) == NULL)
		return -1;
	end = store_prefix_end(prefix);
	store_bind_str(st, 1, prefix);
	if (end != NULL)
		store_bind_str(st, 2, end);
	else	/* Any text sorts below a blob. */
		sqlite3_bind_zeroblob(st, 2, 0);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n++ == 0)
			match = xstrdup(store_col_str(st, 0));
	}
	if (rc != SQLITE_DONE)
		store_fail(s, "cannot look up run");
	store_stmt_done(s, ST_RUN_PREFIX, st);
	free(end);
	if (rc != SQLITE_DONE) {
		free(match);
		return -1;
	}
	if (n != 1) {
		free(match);
		if (n == 0)
			errf(s->err, sizeof s->err, "no run '%s'", prefix);
		else
			errf(s->err, sizeof s->err, "run prefix '%s' is "
			    "ambiguous", prefix);
		return -1;
	}
	*id = match;
	return 0;
}

int
store_run_find(struct store *s, const char *id_or_prefix, store_run_cb cb,
    void *arg)
{
	char *id;
	int rc, found;

	if (*id_or_prefix == '\0') {
		errf(s->err, sizeof s->err, "no run ''");
		return -1;
	}
	rc = store_run_get(s, id_or_prefix, cb, arg, &found);
	if (rc != 0 || found)
		return rc;
	if (store_run_prefix(s, id_or_prefix, &id) != 0)
		return -1;
	rc = store_run_get(s, id, cb, arg, &found);
	if (rc == 0 && !found) {
		/* A gc deleted it between the two reads. */
		errf(s->err, sizeof s->err, "no run '%s'", id_or_prefix);
		rc = -1;
	}
	free(id);
	return rc;
}
