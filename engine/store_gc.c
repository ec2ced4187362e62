/*
 * store_gc.c: retention (weft gc) and vacuum of the trajectory store.
 *
 * Runs go on in the store while gc works, so gc never holds the write
 * lock for long: it reads outside write transactions (SQLite's WAL lets
 * them overlap other processes' commits), writes in transactions of at
 * most GC_BATCH rows, and after each one pauses about as long as it held
 * the lock, so that a process waiting for it gets its turn.
 *
 * Deleting runs: each selected tree is checked again under the lock (a
 * run may have been resumed or forked since it was selected), then its
 * run rows are deleted and its ids listed in gc_pending, in the same
 * transaction; its events and tasks go in later batches, and an id
 * leaves gc_pending with its last row.  A gc that dies part way leaves
 * no run half-deleted in sight (the rows are gone) and the next gc ends
 * the work.
 *
 * Deleting blobs: a blob is kept if a remaining event's payload holds its
 * hash as a string value, or a run's input is that blob.  Reading every
 * payload takes long, so it is done outside write transactions, and
 * meanwhile runs store blobs and events that name blobs.  So gc first
 * writes a gc_state row; every commit that sees it lists the blobs of
 * its batch in gc_touched (store.c, store_gc_touch), and the sweep
 * spares them.  A blob is put in the batch of the first event naming it
 * (store.h), so an event newer than the state row names only blobs that
 * were either named by an older event (which gc reads) or touched.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "engine/store.h"
#include "engine/store_int.h"
#include "runtime/util.h"

/* Rows deleted (or blob bytes freed, over GC_BATCH_BYTES) per write
   transaction, and events read per read of the blob scan. */
#define GC_BATCH	2000
#define GC_BATCH_BYTES	(16 * 1024 * 1024)
#define GC_SCAN		20000

/* Only a finished run may go: running, paused, waiting and any status
   this build does not know keep their tree. */
#define GC_LIVE	"(r.status IS NULL OR r.status NOT IN ('succeeded', " \
	"'failed', 'cancelled', 'budget_exceeded'))"

/* The selection: temp.gc_runs (root, id), the trees beyond keep/before. */
static const char *gc_select[] = {
	"DROP TABLE IF EXISTS temp.gc_runs",
	"CREATE TEMP TABLE gc_runs (root TEXT NOT NULL, "
	"id TEXT PRIMARY KEY NOT NULL)",
	/* ?1 keep, ?2 before: roots (runs with no parent in the store)
	   beyond the newest ?1 and started before ?2, with their trees. */
	"WITH RECURSIVE roots(id) AS (SELECT id FROM (SELECT id, started, "
	"row_number() OVER (ORDER BY started DESC, rowid DESC) AS n "
	"FROM runs WHERE parent_run IS NULL OR parent_run NOT IN "
	"(SELECT id FROM runs)) WHERE (?1 < 0 OR n > ?1) AND "
	"(?2 <= 0 OR started < ?2)), "
	"tree(root, id) AS (SELECT id, id FROM roots UNION "
	"SELECT tree.root, runs.id FROM runs JOIN tree "
	"ON runs.parent_run = tree.id) "
	"INSERT OR IGNORE INTO temp.gc_runs (root, id) "
	"SELECT root, id FROM tree",
	"DROP TABLE IF EXISTS temp.gc_tree",
	"CREATE TEMP TABLE gc_tree (root TEXT NOT NULL, "
	"id TEXT PRIMARY KEY NOT NULL)",
	"DROP TABLE IF EXISTS temp.gc_keep",
	"CREATE TEMP TABLE gc_keep (hash TEXT PRIMARY KEY) WITHOUT ROWID",
};
static const char gc_live[] = "SELECT count(DISTINCT g.root) "
	"FROM temp.gc_runs g JOIN runs r ON r.id = g.id WHERE " GC_LIVE;
static const char gc_unlive[] = "DELETE FROM temp.gc_runs WHERE root "
	"IN (SELECT g.root FROM temp.gc_runs g JOIN runs r ON r.id = g.id "
	"WHERE " GC_LIVE ")";

/* A dry run's counts. */
static const char gc_dry_runs[] = "SELECT count(*) FROM temp.gc_runs";
static const char gc_dry_events[] = "SELECT count(*) FROM events "
	"WHERE run_id IN (SELECT id FROM temp.gc_runs)";
static const char gc_dry_tasks[] = "SELECT count(*) FROM tasks "
	"WHERE run_id IN (SELECT id FROM temp.gc_runs)";

/* One chunk of roots (after ?1, in id order), their trees as they are
   now, under the lock. */
static const char *gc_chunk[] = {
	"DELETE FROM temp.gc_tree",
	"WITH RECURSIVE chunk(root) AS (SELECT DISTINCT root FROM "
	"temp.gc_runs WHERE root > ?1 ORDER BY root LIMIT 100), "
	"tree(root, id) AS (SELECT c.root, r.id FROM chunk c JOIN runs r "
	"ON r.id = c.root UNION SELECT tree.root, runs.id FROM runs JOIN "
	"tree ON runs.parent_run = tree.id) "
	"INSERT OR IGNORE INTO temp.gc_tree (root, id) SELECT root, id "
	"FROM tree",
};
static const char gc_chunk_end[] = "SELECT max(root) FROM (SELECT DISTINCT "
	"root FROM temp.gc_runs WHERE root > ?1 ORDER BY root LIMIT 100)";
static const char gc_chunk_live[] = "SELECT count(DISTINCT t.root) FROM "
	"temp.gc_tree t JOIN runs r ON r.id = t.id WHERE " GC_LIVE;
static const char *gc_chunk_unlive[] = {
	"DELETE FROM temp.gc_runs WHERE root IN (SELECT t.root FROM "
	"temp.gc_tree t JOIN runs r ON r.id = t.id WHERE " GC_LIVE ")",
	"DELETE FROM temp.gc_tree WHERE root NOT IN (SELECT root FROM "
	"temp.gc_runs)",
};
static const char gc_chunk_pend[] = "INSERT OR IGNORE INTO gc_pending "
	"(run_id) SELECT id FROM temp.gc_tree";
static const char gc_chunk_delete[] = "DELETE FROM runs WHERE id IN "
	"(SELECT id FROM temp.gc_tree)";

/* The rows of the runs in gc_pending, a batch at a time. */
static const char gc_pending_ids[] = "SELECT run_id FROM gc_pending";
static const char gc_pending_events[] = "DELETE FROM events WHERE rowid IN "
	"(SELECT rowid FROM events WHERE run_id = ?1 LIMIT ?2)";
static const char gc_pending_tasks[] = "DELETE FROM tasks WHERE "
	"(run_id, task_id) IN (SELECT run_id, task_id FROM tasks "
	"WHERE run_id = ?1 LIMIT ?2)";
static const char gc_pending_approvals[] = "DELETE FROM approvals WHERE "
	"run_id = ?1";
static const char gc_pending_done[] = "DELETE FROM gc_pending "
	"WHERE run_id = ?1";

/*
 * The blobs to keep: hashes in payloads (any string value of 64
 * lowercase hex digits, whatever the event kind, so a new kind of
 * reference is safe by default) and run inputs.  ?1, ?2: a rowid range;
 * ?3: 1 to leave out the selected runs (a dry run, whose runs are
 * still there).
 */
static const char gc_keep_events[] = "INSERT OR IGNORE INTO temp.gc_keep "
	"SELECT j.value FROM events, json_tree(CASE WHEN "
	"json_valid(events.payload) THEN events.payload ELSE '[]' END) AS j "
	"WHERE events.rowid > ?1 AND events.rowid <= ?2 AND (?3 = 0 OR "
	"events.run_id NOT IN (SELECT id FROM temp.gc_runs)) AND "
	"j.type = 'text' AND length(j.value) = 64 AND "
	"j.value NOT GLOB '*[^0-9a-f]*'";
static const char gc_keep_inputs[] = "INSERT OR IGNORE INTO temp.gc_keep "
	"SELECT input_blob FROM runs WHERE input_blob IS NOT NULL AND "
	"(?1 = 0 OR id NOT IN (SELECT id FROM temp.gc_runs))";
static const char gc_max_rowid[] = "SELECT coalesce(max(rowid), 0) "
	"FROM events";
static const char gc_unkept[] = "SELECT hash, size FROM blobs WHERE hash "
	"NOT IN (SELECT hash FROM temp.gc_keep)";
static const char gc_unblob[] = "DELETE FROM blobs WHERE hash = ?1 AND "
	"hash NOT IN (SELECT hash FROM gc_touched)";

static const char gc_state_get[] = "SELECT pid, owner FROM gc_state";
static const char *gc_state_take[] = {
	"DELETE FROM gc_state",
	"INSERT INTO gc_state (id, pid, owner, started) VALUES (1, ?1, ?2, "
	"?3)",
	"DELETE FROM gc_touched",
};
static const char *gc_state_drop[] = {
	"DELETE FROM gc_state",
	"DELETE FROM gc_touched",
};
static const char *gc_cleanup[] = {
	"DROP TABLE IF EXISTS temp.gc_keep",
	"DROP TABLE IF EXISTS temp.gc_tree",
	"DROP TABLE IF EXISTS temp.gc_runs",
};

/* Parameters of one gc statement: "i" int64, "d" double, "s" text. */
struct gc_arg {
	char		 type;
	int64_t		 i;
	double		 d;
	const char	*s;
};

/*
 * Run one statement with args; *changes gets the rows it changed, c0
 * and c1 the first row's first two columns (when not NULL).
 */
static int
gc_step(struct store *s, const char *sql, const struct gc_arg *args,
    int nargs, int64_t *changes, int64_t *c0, int64_t *c1)
{
	sqlite3_stmt *st;
	int i, rc, first = 1;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return store_fail(s, "gc");
	for (i = 0; i < nargs && i < sqlite3_bind_parameter_count(st); i++) {
		if (args[i].type == 'i')
			sqlite3_bind_int64(st, i + 1, args[i].i);
		else if (args[i].type == 'd')
			sqlite3_bind_double(st, i + 1, args[i].d);
		else
			sqlite3_bind_text(st, i + 1, args[i].s, -1,
			    SQLITE_STATIC);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (first && c0 != NULL)
			*c0 = sqlite3_column_int64(st, 0);
		if (first && c1 != NULL)
			*c1 = sqlite3_column_int64(st, 1);
		first = 0;
	}
	if (rc != SQLITE_DONE) {
		store_fail(s, "gc");
		sqlite3_finalize(st);
		return -1;
	}
	if (changes != NULL)
		*changes = sqlite3_changes64(s->db);
	sqlite3_finalize(st);
	return 0;
}

/* Run a list of statements without parameters. */
static int
gc_steps(struct store *s, const char **sql, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (gc_step(s, sql[i], NULL, 0, NULL, NULL, NULL) != 0)
			return -1;
	return 0;
}

/* Take the write lock for a batch; *t0 notes when. */
static int
gc_lock(struct store *s, double *t0)
{
	*t0 = now_mono();
	return store_lock(s);
}

/*
 * Commit a batch, then pause as long as it held the lock (2 ms to
 * 200 ms), so that a process that waited for it takes it first.
 */
static int
gc_unlock(struct store *s, double t0)
{
	struct timespec ts;
	double held;

	if (store_unlock(s) != 0) {
		store_rollback(s);
		return -1;
	}
	held = now_mono() - t0;
	if (held < 0.002)
		held = 0.002;
	if (held > 0.2)
		held = 0.2;
	ts.tv_sec = 0;
	ts.tv_nsec = (long)(held * 1e9);
	nanosleep(&ts, NULL);
	return 0;
}

/* Fail a batch: roll back, -1. */
static int
gc_abort(struct store *s)
{
	store_rollback(s);
	return -1;
}

/*
 * Say that this gc runs (gc_state), unless another one does: its row
 * names a process that alive() finds running.  A row left by a gc that
 * died is taken over.
 */
static int
gc_state_claim(struct store *s, const struct store_gc *g)
{
	struct gc_arg a[3] = { { 'i', g->pid, 0, NULL },
	    { 's', 0, 0, g->owner }, { 'd', 0, now_wall(), NULL } };
	sqlite3_stmt *st;
	long pid = 0;
	char *owner = NULL;
	double t0;
	int rc, busy = 0;

	if (gc_lock(s, &t0) != 0)
		return -1;
	if (sqlite3_prepare_v2(s->db, gc_state_get, -1, &st, NULL) !=
	    SQLITE_OK) {
		store_fail(s, "gc");
		return gc_abort(s);
	}
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		pid = (long)sqlite3_column_int64(st, 0);
		if (sqlite3_column_text(st, 1) != NULL)
			owner = xstrdup((const char *)sqlite3_column_text(st,
			    1));
		busy = g->alive != NULL && g->alive(pid, owner);
	} else if (rc != SQLITE_DONE)
		store_fail(s, "gc");
	sqlite3_finalize(st);
	free(owner);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return gc_abort(s);
	if (busy) {
		errf(s->err, sizeof s->err, "another weft gc (pid %ld) is "
		    "working on this store: wait until it ends", pid);
		return gc_abort(s);
	}
	if (gc_step(s, gc_state_take[0], NULL, 0, NULL, NULL, NULL) != 0 ||
	    gc_step(s, gc_state_take[1], a, 3, NULL, NULL, NULL) != 0 ||
	    gc_step(s, gc_state_take[2], NULL, 0, NULL, NULL, NULL) != 0)
		return gc_abort(s);
	return gc_unlock(s, t0);
}

/* This gc is over: drop gc_state and gc_touched. */
static int
gc_state_release(struct store *s)
{
	double t0;

	if (gc_lock(s, &t0) != 0)
		return -1;
	if (gc_steps(s, gc_state_drop, nitems(gc_state_drop)) != 0)
		return gc_abort(s);
	return store_unlock(s) != 0 ? gc_abort(s) : 0;
}

/* Runs read under the lock, handed to the caller's callback after it. */
struct gc_rows {
	struct store_run	*r;
	size_t			 n;
};

/* A heap copy of a string column, or NULL. */
static const char *
gc_dup(const char *v)
{
	return v != NULL ? xstrdup(v) : NULL;
}

/* Read the runs of temp.gc_tree (or, dry, temp.gc_runs) into rows. */
static int
gc_read_rows(struct store *s, const char *table, struct gc_rows *rows)
{
	struct store_run r, *c;
	sqlite3_stmt *st;
	char *sql;
	int rc;

	sql = xasprintf("SELECT %s FROM runs WHERE id IN (SELECT id FROM "
	    "temp.%s) ORDER BY started, id", store_run_columns(s), table);
	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	free(sql);
	if (rc != SQLITE_OK)
		return store_fail(s, "gc");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		store_run_row(st, &r);
		if (rows->n % 64 == 0)
			rows->r = xrealloc(rows->r, (rows->n + 64) *
			    sizeof *rows->r);
		c = &rows->r[rows->n++];
		*c = r;
		c->id = gc_dup(r.id);
		c->workflow = gc_dup(r.workflow);
		c->status = gc_dup(r.status);
		c->parent_run = gc_dup(r.parent_run);
		/* The rest is not needed to say which run went. */
		c->workflow_hash = c->input = c->budget = c->spend = NULL;
		c->output = c->error = NULL;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : store_fail(s, "gc");
}

/* Hand rows to cb (if any), then free them; cb's first non-zero return. */
static int
gc_give_rows(struct gc_rows *rows, store_run_cb cb, void *arg)
{
	size_t i;
	int stop = 0;

	for (i = 0; i < rows->n; i++) {
		if (stop == 0 && cb != NULL)
			stop = cb(arg, &rows->r[i]);
		free((char *)rows->r[i].id);
		free((char *)rows->r[i].workflow);
		free((char *)rows->r[i].status);
		free((char *)rows->r[i].parent_run);
	}
	free(rows->r);
	rows->r = NULL;
	rows->n = 0;
	return stop;
}

/*
 * Delete the selected trees' run rows, 100 roots a transaction, each
 * tree as it is now: one holding a live run is kept (counted in
 * kept_live).  Their ids go to gc_pending.
 */
static int
gc_delete_runs(struct store *s, struct store_gc *g, store_run_cb cb,
    void *arg)
{
	struct gc_arg a = { 's', 0, 0, NULL };
	struct gc_rows rows = { NULL, 0 };
	sqlite3_stmt *st;
	char *last = xstrdup("");
	int64_t n, live;
	double t0;
	int rc;

	for (;;) {
		a.s = last;
		if (gc_lock(s, &t0) != 0)
			goto fail;
		if (gc_step(s, gc_chunk[0], NULL, 0, NULL, NULL, NULL) != 0 ||
		    gc_step(s, gc_chunk[1], &a, 1, &n, NULL, NULL) != 0)
			goto abort;
		/* The chunk's last root, read before gc_runs changes. */
		if (sqlite3_prepare_v2(s->db, gc_chunk_end, -1, &st, NULL) !=
		    SQLITE_OK) {
			store_fail(s, "gc");
			goto abort;
		}
		sqlite3_bind_text(st, 1, last, -1, SQLITE_TRANSIENT);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL) {
			free(last);
			last = xstrdup((const char *)sqlite3_column_text(st,
			    0));
		} else
			rc = SQLITE_DONE;
		sqlite3_finalize(st);
		if (rc != SQLITE_ROW) {
			store_rollback(s);
			break;
		}
		live = 0;
		if (gc_step(s, gc_chunk_live, NULL, 0, NULL, &live,
		    NULL) != 0 ||
		    gc_steps(s, gc_chunk_unlive, nitems(gc_chunk_unlive)) != 0)
			goto abort;
		g->kept_live += live;
		if (gc_read_rows(s, "gc_tree", &rows) != 0 ||
		    gc_step(s, gc_chunk_pend, NULL, 0, NULL, NULL,
		    NULL) != 0 ||
		    gc_step(s, gc_chunk_delete, NULL, 0, &n, NULL, NULL) != 0)
			goto abort;
		g->runs += n;
		if (gc_unlock(s, t0) != 0)
			goto fail;
		/* Said outside the lock: a slow reader holds up no one. */
		if (gc_give_rows(&rows, cb, arg) != 0)
			goto fail;
	}
	free(last);
	return 0;
abort:
	store_rollback(s);
fail:
	gc_give_rows(&rows, NULL, NULL);
	free(last);
	return -1;
}

/* The run ids in gc_pending. */
static char **
gc_pending_list(struct store *s, size_t *n)
{
	sqlite3_stmt *st;
	char **ids = NULL;
	int rc;

	*n = 0;
	if (sqlite3_prepare_v2(s->db, gc_pending_ids, -1, &st, NULL) !=
	    SQLITE_OK) {
		store_fail(s, "gc");
		return NULL;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n % 64 == 0)
			ids = xrealloc(ids, (*n + 65) * sizeof *ids);
		ids[(*n)++] = xstrdup((const char *)sqlite3_column_text(st,
		    0));
	}
	if (rc != SQLITE_DONE) {
		store_fail(s, "gc");
		while (*n > 0)
			free(ids[--*n]);
		free(ids);
		ids = NULL;
	}
	sqlite3_finalize(st);
	if (ids == NULL && rc == SQLITE_DONE)
		ids = xcalloc(1, sizeof *ids);
	return ids;
}

/*
 * Delete the events and tasks of the runs in gc_pending (left by a gc
 * that died too), GC_BATCH rows a transaction; a run leaves gc_pending
 * with its last row.
 */
static int
gc_delete_rows(struct store *s, struct store_gc *g)
{
	struct gc_arg a[2] = { { 's', 0, 0, NULL }, { 'i', 0, 0, NULL } };
	char **ids;
	size_t n, i = 0, k;
	int64_t budget, done;
	double t0;
	int rc = 0;

	if ((ids = gc_pending_list(s, &n)) == NULL)
		return -1;
	while (i < n && rc == 0) {
		if ((rc = gc_lock(s, &t0)) != 0)
			break;
		for (budget = GC_BATCH; i < n && budget > 0 && rc == 0;) {
			a[0].s = ids[i];
			a[1].i = budget;
			if ((rc = gc_step(s, gc_pending_events, a, 2, &done,
			    NULL, NULL)) != 0)
				break;
			g->events += done;
			if ((budget -= done) <= 0)
				break;
			a[1].i = budget;
			if ((rc = gc_step(s, gc_pending_tasks, a, 2, &done,
			    NULL, NULL)) != 0)
				break;
			g->tasks += done;
			if ((budget -= done) <= 0)
				break;
			/* A run's approvals are few: in one go. */
			if ((rc = gc_step(s, gc_pending_approvals, a, 1, NULL,
			    NULL, NULL)) != 0)
				break;
			rc = gc_step(s, gc_pending_done, a, 1, NULL, NULL,
			    NULL);
			i++;
		}
		if (rc != 0)
			store_rollback(s);
		else
			rc = gc_unlock(s, t0);
	}
	for (k = 0; k < n; k++)
		free(ids[k]);
	free(ids);
	return rc;
}

/* Fill temp.gc_keep from the store as it is now, GC_SCAN events a read. */
static int
gc_keep_scan(struct store *s, int dry)
{
	struct gc_arg a[3] = { { 'i', 0, 0, NULL }, { 'i', 0, 0, NULL },
	    { 'i', dry, 0, NULL } };
	int64_t max = 0, lo;

	if (gc_step(s, gc_max_rowid, NULL, 0, NULL, &max, NULL) != 0)
		return -1;
	for (lo = 0; lo < max; lo += GC_SCAN) {
		a[0].i = lo;
		a[1].i = lo + GC_SCAN;
		if (gc_step(s, gc_keep_events, a, 3, NULL, NULL, NULL) != 0)
			return -1;
	}
	return gc_step(s, gc_keep_inputs, &a[2], 1, NULL, NULL, NULL);
}

struct gc_blob {
	char	*hash;
	int64_t	 size;
};

/*
 * Delete (or, dry, count) every blob not in temp.gc_keep, GC_BATCH
 * blobs or GC_BATCH_BYTES a transaction, sparing those in gc_touched.
 */
static int
gc_sweep_blobs(struct store *s, struct store_gc *g)
{
	struct gc_arg a = { 's', 0, 0, NULL };
	struct gc_blob *b = NULL;
	sqlite3_stmt *st;
	size_t n = 0, i = 0, k;
	int64_t done, bytes;
	double t0;
	int rc;

	if (sqlite3_prepare_v2(s->db, gc_unkept, -1, &st, NULL) != SQLITE_OK)
		return store_fail(s, "gc");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n % 256 == 0)
			b = xrealloc(b, (n + 256) * sizeof *b);
		b[n].hash = xstrdup((const char *)sqlite3_column_text(st, 0));
		b[n++].size = sqlite3_column_int64(st, 1);
	}
	if (rc != SQLITE_DONE)
		store_fail(s, "gc");
	sqlite3_finalize(st);
	rc = rc == SQLITE_DONE ? 0 : -1;
	if (rc == 0 && g->dry_run) {
		g->blobs = (int64_t)n;
		for (k = 0; k < n; k++)
			g->blob_bytes += b[k].size;
		i = n;
	}
	while (i < n && rc == 0) {
		if ((rc = gc_lock(s, &t0)) != 0)
			break;
		for (k = 0, bytes = 0; i < n && k < GC_BATCH &&
		    bytes < GC_BATCH_BYTES; i++, k++) {
			a.s = b[i].hash;
			if ((rc = gc_step(s, gc_unblob, &a, 1, &done, NULL,
			    NULL)) != 0)
				break;
			g->blobs += done;
			g->blob_bytes += done * b[i].size;
			bytes += b[i].size;
		}
		if (rc != 0)
			store_rollback(s);
		else
			rc = gc_unlock(s, t0);
	}
	for (k = 0; k < n; k++)
		free(b[k].hash);
	free(b);
	return rc;
}

/* The selection and, dry, its counts; then the deletions. */
static int
gc_work(struct store *s, struct store_gc *g, store_run_cb cb, void *arg)
{
	struct gc_arg sel[2] = { { 'i', g->keep, 0, NULL },
	    { 'd', 0, g->before, NULL } };
	struct gc_rows rows = { NULL, 0 };
	size_t i;

	for (i = 0; i < nitems(gc_select); i++)
		if (gc_step(s, gc_select[i], sel, 2, NULL, NULL, NULL) != 0)
			return -1;
	if (gc_step(s, gc_live, NULL, 0, NULL, &g->kept_live, NULL) != 0 ||
	    gc_step(s, gc_unlive, NULL, 0, NULL, NULL, NULL) != 0)
		return -1;
	if (g->dry_run) {
		if (gc_step(s, gc_dry_runs, NULL, 0, NULL, &g->runs,
		    NULL) != 0 ||
		    gc_step(s, gc_dry_events, NULL, 0, NULL, &g->events,
		    NULL) != 0 ||
		    gc_step(s, gc_dry_tasks, NULL, 0, NULL, &g->tasks,
		    NULL) != 0 || gc_read_rows(s, "gc_runs", &rows) != 0 ||
		    gc_give_rows(&rows, cb, arg) != 0) {
			gc_give_rows(&rows, NULL, NULL);
			return -1;
		}
	} else if (gc_delete_runs(s, g, cb, arg) != 0 ||
	    gc_delete_rows(s, g) != 0)
		return -1;
	if (gc_keep_scan(s, g->dry_run) != 0)
		return -1;
	return gc_sweep_blobs(s, g);
}

int
store_gc(struct store *s, struct store_gc *g, store_run_cb cb, void *arg)
{
	char saved[sizeof s->err];
	int rc;

	g->runs = g->events = g->tasks = g->blobs = g->blob_bytes = 0;
	g->kept_live = 0;
	if (store_commit(s) != 0)
		return -1;
	if (s->readonly) {
		errf(s->err, sizeof s->err, "the store '%s' is open "
		    "read-only", s->path);
		return -1;
	}
	if (!g->dry_run && gc_state_claim(s, g) != 0)
		return -1;
	rc = gc_work(s, g, cb, arg);
	memcpy(saved, s->err, sizeof saved);
	if (!g->dry_run && gc_state_release(s) != 0 && rc == 0)
		rc = -1;
	else if (rc != 0)
		memcpy(s->err, saved, sizeof saved);
	gc_steps(s, gc_cleanup, nitems(gc_cleanup));
	return rc;
}

int
store_vacuum_full(struct store *s)
{
	int64_t mode = 0;

	if (gc_step(s, "PRAGMA auto_vacuum", NULL, 0, NULL, &mode, NULL) != 0)
		return -1;
	return mode != 2;
}

/*
 * Sizes of the store's file and its WAL.
 */
static void
gc_sizes(struct store *s, int64_t *db, int64_t *wal)
{
	char *w = xasprintf("%s-wal", s->path);

	*db = store_file_size(s->path);
	*wal = store_file_size(w);
	free(w);
}

int
store_vacuum(struct store *s, struct store_vacuum *v)
{
	int64_t free_pages = 1;
	double t0;
	int full, rc, logn, ckpt;

	memset(v, 0, sizeof *v);
	if (store_commit(s) != 0 || (full = store_vacuum_full(s)) < 0)
		return -1;
	gc_sizes(s, &v->db_before, &v->wal_before);
	v->full = full;
	if (full) {
		/* Rewrites the file: incremental from now on. */
		if (gc_step(s, "PRAGMA auto_vacuum = INCREMENTAL", NULL, 0,
		    NULL, NULL, NULL) != 0 ||
		    sqlite3_exec(s->db, "VACUUM", NULL, NULL, NULL) !=
		    SQLITE_OK)
			return store_fail(s, "cannot vacuum");
	}
	while (!full && free_pages > 0) {
		if (gc_lock(s, &t0) != 0)
			return store_fail(s, "cannot vacuum");
		if (sqlite3_exec(s->db, "PRAGMA incremental_vacuum(2048)",
		    NULL, NULL, NULL) != SQLITE_OK ||
		    gc_step(s, "PRAGMA freelist_count", NULL, 0, NULL,
		    &free_pages, NULL) != 0) {
			store_fail(s, "cannot vacuum");
			return gc_abort(s);
		}
		if (gc_unlock(s, t0) != 0)
			return -1;
	}
	rc = sqlite3_wal_checkpoint_v2(s->db, "main",
	    SQLITE_CHECKPOINT_TRUNCATE, &logn, &ckpt);
	if (rc == SQLITE_BUSY)
		v->wal_busy = 1;
	else if (rc != SQLITE_OK)
		return store_fail(s, "cannot checkpoint");
	gc_sizes(s, &v->db_after, &v->wal_after);
	return 0;
}
