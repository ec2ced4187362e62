/*
 * store_cancel.c: requests to cancel a served run (the table
 * cancel_requests, schema version 3).
 *
 * A run served by `weft serve` or `weft mcp` lives in the server's
 * process with many others, so `weft cancel` cannot signal that process:
 * it records a request here, the server reads the table while it polls
 * its runs' events (engine/serve_runs.c) and cancels the run, and weft
 * cancel removes the request once the run has ended.  Requests are
 * written at once, outside the batch.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "engine/store.h"
#include "engine/store_int.h"
#include "runtime/util.h"

/* Run one statement with run_id (and why) bound; 0 or -1. */
static int
store_cancel_exec(struct store *s, const char *sql, const char *run_id,
    const char *why, const char *what)
{
	sqlite3_stmt *st;
	int rc;

	if (s->readonly || s->npend > 0) {
		errf(s->err, sizeof s->err, "%s: the store is read-only or "
		    "has a batch pending", what);
		return -1;
	}
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return store_fail(s, what);
	sqlite3_bind_text(st, 1, run_id, -1, SQLITE_TRANSIENT);
	if (why != NULL) {
		sqlite3_bind_text(st, 2, why, -1, SQLITE_TRANSIENT);
		sqlite3_bind_double(st, 3, now_wall());
	}
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : store_fail(s, what);
}

int
store_cancel_request(struct store *s, const char *run_id, const char *why)
{
	return store_cancel_exec(s, "INSERT OR REPLACE INTO cancel_requests "
	    "(run_id, reason, requested) VALUES (?1, ?2, ?3)", run_id,
	    why != NULL ? why : "", "cannot record the cancel request");
}

int
store_cancel_clear(struct store *s, const char *run_id)
{
	return store_cancel_exec(s, "DELETE FROM cancel_requests WHERE "
	    "run_id = ?1", run_id, NULL, "cannot remove the cancel request");
}

int
store_cancel_requests(struct store *s, int (*cb)(void *, const char *,
    const char *), void *arg)
{
	sqlite3_stmt *st;
	const char *why;
	int rc, stop = 0;

	if (sqlite3_prepare_v2(s->db, "SELECT run_id, reason FROM "
	    "cancel_requests ORDER BY requested", -1, &st, NULL) != SQLITE_OK)
		return store_fail(s, "cannot read cancel requests");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		why = (const char *)sqlite3_column_text(st, 1);
		if ((stop = cb(arg, (const char *)sqlite3_column_text(st, 0),
		    why != NULL ? why : "")) != 0)
			break;
	}
	if (stop == 0 && rc != SQLITE_DONE) {
		store_fail(s, "cannot read cancel requests");
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return stop;
}
