/*
 * store_approval.c: the approvals table (w.approval, docs/workflows.md):
 * a row per approval a run waits for, keyed by run, node path and call
 * index, written when the run starts waiting and answered by weft approve
 * or weft reject, possibly from another process.  Rows are written at
 * once, outside the batch: an answer must reach a run that waits in
 * another process (weft serve polls for it).  See store.h.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "engine/store.h"
#include "engine/store_int.h"
#include "runtime/util.h"

#define APPROVAL_COLUMNS "run_id, path, call, prompt, schema, on_timeout, " \
	"deadline, waited, status, answer, answered"

/* Prepare sql on s; NULL with s->err set. */
static sqlite3_stmt *
approval_prepare(struct store *s, const char *sql)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		errf(s->err, sizeof s->err, "%s: approvals: %s", s->path,
		    sqlite3_errmsg(s->db));
		return NULL;
	}
	return st;
}

/* Step st to its end; -1 with s->err on failure.  st is finalized. */
static int
approval_done(struct store *s, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE) {
		errf(s->err, sizeof s->err, "%s: approvals: %s", s->path,
		    sqlite3_errmsg(s->db));
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return 0;
}

static const char *
col_str(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

/* Walk the rows of st with cb; the number seen, or -1. */
static int
approval_walk(struct store *s, sqlite3_stmt *st, store_approval_cb cb,
    void *arg)
{
	struct store_approval a;
	int rc, n = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&a, 0, sizeof a);
		a.run_id = col_str(st, 0);
		a.path = col_str(st, 1);
		a.call = sqlite3_column_int(st, 2);
		a.prompt = col_str(st, 3);
		a.schema = col_str(st, 4);
		a.on_timeout = col_str(st, 5);
		a.deadline = sqlite3_column_double(st, 6);
		a.waited = sqlite3_column_double(st, 7);
		a.status = col_str(st, 8);
		a.answer = col_str(st, 9);
		a.answered = sqlite3_column_double(st, 10);
		n++;
		if (cb != NULL && cb(arg, &a) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		errf(s->err, sizeof s->err, "%s: approvals: %s", s->path,
		    sqlite3_errmsg(s->db));
		n = -1;
	}
	sqlite3_finalize(st);
	return n;
}

int
store_approval_wait(struct store *s, const struct store_approval *a)
{
	sqlite3_stmt *st;

	if (store_refuse(s) != 0)
		return -1;
	if ((st = approval_prepare(s, "INSERT OR IGNORE INTO approvals ("
	    APPROVAL_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
	    "'waiting', NULL, NULL)")) == NULL)
		return -1;
	store_bind_str(st, 1, a->run_id);
	store_bind_str(st, 2, a->path);
	sqlite3_bind_int(st, 3, a->call);
	store_bind_str(st, 4, a->prompt);
	store_bind_str(st, 5, a->schema);
	store_bind_str(st, 6, a->on_timeout);
	if (a->deadline > 0)
		sqlite3_bind_double(st, 7, a->deadline);
	sqlite3_bind_double(st, 8, a->waited);
	return approval_done(s, st);
}

int
store_approval_get(struct store *s, const char *run_id, const char *path,
    int call, store_approval_cb cb, void *arg)
{
	sqlite3_stmt *st;

	if ((st = approval_prepare(s, "SELECT " APPROVAL_COLUMNS
	    " FROM approvals WHERE run_id = ?1 AND path = ?2 AND call = ?3"))
	    == NULL)
		return -1;
	store_bind_str(st, 1, run_id);
	store_bind_str(st, 2, path);
	sqlite3_bind_int(st, 3, call);
	return approval_walk(s, st, cb, arg);
}

int
store_approvals_list(struct store *s, const char *run_id,
    store_approval_cb cb, void *arg)
{
	sqlite3_stmt *st;

	if ((st = approval_prepare(s, "SELECT " APPROVAL_COLUMNS
	    " FROM approvals WHERE run_id = ?1 ORDER BY waited, path, call"))
	    == NULL)
		return -1;
	store_bind_str(st, 1, run_id);
	return approval_walk(s, st, cb, arg);
}

int
store_approval_answer(struct store *s, const char *run_id, const char *path,
    int call, const char *status, const char *answer, double when)
{
	sqlite3_stmt *st;

	if (store_refuse(s) != 0)
		return -1;
	if ((st = approval_prepare(s, "UPDATE approvals SET status = ?4, "
	    "answer = ?5, answered = ?6 WHERE run_id = ?1 AND path = ?2 AND "
	    "call = ?3 AND status = 'waiting'")) == NULL)
		return -1;
	store_bind_str(st, 1, run_id);
	store_bind_str(st, 2, path);
	sqlite3_bind_int(st, 3, call);
	store_bind_str(st, 4, status);
	store_bind_str(st, 5, answer);
	sqlite3_bind_double(st, 6, when);
	if (approval_done(s, st) != 0)
		return -1;
	return sqlite3_changes(s->db) > 0 ? 1 : 0;
}
