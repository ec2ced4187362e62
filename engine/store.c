/*
 * store.c: the trajectory store on SQLite (WAL, synchronous=NORMAL).
 *
 * Appends go to a batch in memory (struct store_pend, their strings in an
 * arena of chunks that never move) and store_commit() writes the batch in
 * one short transaction.  So the write lock is held only while rows are
 * written, never while the engine computes: a coordinator whose Lua runs
 * for seconds, or that waits on the network, holds up no other process
 * of the store.  An append that the file would refuse for its content (a
 * duplicate event or run id) is refused when it is made, from what the
 * file and the batch hold, so the commit of a batch has no such failure
 * to expect; any failure there breaks the store (store.h).
 *
 * Statements are prepared on first use with SQLITE_PREPARE_PERSISTENT
 * and reused: bind, step, reset, clear bindings.  If a statement is still
 * running when it is needed again (a callback re-entering the store), a
 * one-off copy is prepared instead.
 *
 * The connection is opened with SQLITE_OPEN_NOMUTEX: the store belongs to
 * the one thread that owns engine state.  engine/store_open.c opens it;
 * the appends and reads of run rows are in store_run.c, of events in
 * store_event.c, of blobs in store_blob.c; engine/store_gc.c holds weft
 * gc's retention and vacuum.  This file keeps the statements, errors, the
 * batch and its commit.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "runtime/fault.h"
#include "engine/store.h"
#include "engine/store_int.h"
#include "runtime/util.h"

/* A string arena chunk (a string over a quarter of it gets a chunk of
   its own). */
#define STORE_CHUNK	(64 * 1024)
/*
 * A batch holding more than this is committed as soon as it does, so
 * that a round that appends without end (a loop of w.now() calls) does
 * not hold it all in memory; committing early is always allowed.
 */
#define STORE_BATCH_MAX	(64 * 1024 * 1024)

static const char *store_sql[ST__COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_RUN_INSERT] = "INSERT INTO runs (id, workflow, workflow_hash, "
	    "input, status, budget, spend, output, error, parent_run, "
	    "started, ended, steps, tokens, cost, input_blob) VALUES "
	    "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
	    "?15, ?16)",
	[ST_RUN_FINISH] = "UPDATE runs SET status = ?2, output = ?3, "
	    "error = ?4, ended = ?5, steps = ?6, tokens = ?7, cost = ?8, "
	    "spend = ?9 WHERE id = ?1",
	[ST_RUN_GET] = "SELECT " RUN_COLUMNS_V2 " FROM runs WHERE id = ?1",
	[ST_RUN_PREFIX] = "SELECT id FROM runs WHERE id >= ?1 AND id < ?2 "
	    "ORDER BY id LIMIT 2",
	[ST_RUNS_LIST] = "SELECT " RUN_COLUMNS_V2 " FROM runs "
	    "ORDER BY started DESC, rowid DESC LIMIT ?1",
	[ST_RUN_EXISTS] = "SELECT 1 FROM runs WHERE id = ?1",
	[ST_EVENT_INSERT] = "INSERT INTO events (run_id, seq, span_id, "
	    "parent_span, node_path, kind, attempt, time, payload, tokens, "
	    "cost) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[ST_EVENTS] = "SELECT run_id, seq, span_id, parent_span, node_path, "
	    "kind, attempt, time, payload, tokens, cost FROM events "
	    "WHERE run_id = ?1 AND seq > ?2 ORDER BY seq",
	[ST_EVENT_COUNT] = "SELECT count(*) FROM events WHERE run_id = ?1",
	[ST_EVENT_EXISTS] = "SELECT 1 FROM events WHERE run_id = ?1 AND "
	    "seq = ?2",
	[ST_EVENT_MAXSEQ] = "SELECT max(seq) FROM events WHERE run_id = ?1",
	[ST_TASK_PUT] = "INSERT OR REPLACE INTO tasks (run_id, task_id, "
	    "node_path, kind, state, attempt, worker, lease_until, idem_key) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[ST_BLOB_PUT] = "INSERT OR IGNORE INTO blobs (hash, size, data) "
	    "VALUES (?1, ?2, zeroblob(?2))",
	[ST_BLOB_GET] = "SELECT data FROM blobs WHERE hash = ?1",
	[ST_GC_ACTIVE] = "SELECT EXISTS (SELECT 1 FROM gc_state)",
	[ST_GC_TOUCH] = "INSERT OR IGNORE INTO gc_touched (hash) VALUES (?1)",
};

/* The same statements for a version 1 file opened read-only. */
static const char *store_sql_v1[ST__COUNT] = {
	[ST_RUN_GET] = "SELECT " RUN_COLUMNS_V1 " FROM runs WHERE id = ?1",
	[ST_RUNS_LIST] = "SELECT " RUN_COLUMNS_V1 " FROM runs "
	    "ORDER BY started DESC, rowid DESC LIMIT ?1",
};

/* Drop the batch: its strings, blobs and index. */
static void
store_pend_clear(struct store *s)
{
	struct store_chunk *c, *next;
	size_t i;

	for (i = 0; i < s->npend; i++)
		if (s->pend[i].type == PEND_BLOB)
			free(s->pend[i].u.blob.data);
	s->npend = 0;
	/* Keep one ordinary chunk for the next batch. */
	for (c = s->arena; c != NULL; c = next) {
		next = c->next;
		if (next == NULL && c->cap == STORE_CHUNK) {
			c->used = 0;
			s->arena = c;
			break;
		}
		free(c);
		if (next == NULL)
			s->arena = NULL;
	}
	if (s->nblobs > 0)
		memset(s->blobix, 0, s->blobix_cap * sizeof *s->blobix);
	s->nblobs = 0;
	s->pend_bytes = 0;
	s->gen++;
}

void
store_free(struct store *s)
{
	size_t i;

	store_pend_clear(s);
	free(s->arena);
	free(s->pend);
	free(s->blobix);
	for (i = 0; i < nitems(s->seq); i++)
		free(s->seq[i].run_id);
	for (i = 0; i < nitems(s->stmt); i++)
		sqlite3_finalize(s->stmt[i]);
	sqlite3_close_v2(s->db);
	free(s->path);
	free(s);
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	if (!s->broken && !s->readonly && store_commit(s) != 0)
		fprintf(stderr, "weft: store: %s\n", s->err);
	store_free(s);
}

const char *
store_error(const struct store *s)
{
	if (s == NULL)
		return "no store";
	return s->err;
}

/*
 * A write failed after s->err and s->code were set: roll back what the
 * lock holds, drop the batch and refuse every later write (store.h).
 */
static int
store_break(struct store *s)
{
	store_rollback(s);
	store_pend_clear(s);
	if (s->broken == 0) {
		s->broken = s->code != SQLITE_OK ? s->code : SQLITE_ERROR;
		memcpy(s->broken_err, s->err, sizeof s->err);
	}
	return -1;
}

/* Refuse a write on a broken or read-only store. */
int
store_refuse(struct store *s)
{
	if (s->broken) {
		memcpy(s->err, s->broken_err, sizeof s->err);
		return -1;
	}
	if (s->readonly) {
		errf(s->err, sizeof s->err, "the store '%s' is open "
		    "read-only", s->path);
		return -1;
	}
	return 0;
}

/* The name of an SQLite result code, for messages a user can search. */
static const char *
store_code_name(int code, char *buf, size_t len)
{
	static const struct {
		int		 code;
		const char	*name;
	} names[] = {
		{ SQLITE_FULL, "SQLITE_FULL" },
		{ SQLITE_IOERR, "SQLITE_IOERR" },
		{ SQLITE_IOERR_READ, "SQLITE_IOERR_READ" },
		{ SQLITE_IOERR_SHORT_READ, "SQLITE_IOERR_SHORT_READ" },
		{ SQLITE_IOERR_WRITE, "SQLITE_IOERR_WRITE" },
		{ SQLITE_IOERR_FSYNC, "SQLITE_IOERR_FSYNC" },
		{ SQLITE_IOERR_DIR_FSYNC, "SQLITE_IOERR_DIR_FSYNC" },
		{ SQLITE_IOERR_TRUNCATE, "SQLITE_IOERR_TRUNCATE" },
		{ SQLITE_IOERR_FSTAT, "SQLITE_IOERR_FSTAT" },
		{ SQLITE_IOERR_SHMOPEN, "SQLITE_IOERR_SHMOPEN" },
		{ SQLITE_IOERR_SHMSIZE, "SQLITE_IOERR_SHMSIZE" },
		{ SQLITE_IOERR_SHMMAP, "SQLITE_IOERR_SHMMAP" },
		{ SQLITE_IOERR_NOMEM, "SQLITE_IOERR_NOMEM" },
		{ SQLITE_BUSY, "SQLITE_BUSY" },
		{ SQLITE_LOCKED, "SQLITE_LOCKED" },
		{ SQLITE_READONLY, "SQLITE_READONLY" },
		{ SQLITE_CORRUPT, "SQLITE_CORRUPT" },
		{ SQLITE_NOMEM, "SQLITE_NOMEM" },
		{ SQLITE_CANTOPEN, "SQLITE_CANTOPEN" },
		{ SQLITE_NOTADB, "SQLITE_NOTADB" },
		{ SQLITE_PROTOCOL, "SQLITE_PROTOCOL" },
		{ SQLITE_PERM, "SQLITE_PERM" },
		{ SQLITE_ABORT, "SQLITE_ABORT" },
		{ SQLITE_CONSTRAINT_PRIMARYKEY,
		    "SQLITE_CONSTRAINT_PRIMARYKEY" },
		{ SQLITE_CONSTRAINT_UNIQUE, "SQLITE_CONSTRAINT_UNIQUE" },
	};
	size_t i;

	for (i = 0; i < nitems(names); i++)
		if (names[i].code == code)
			return names[i].name;
	snprintf(buf, len, "SQLite result code %d", code);
	return buf;
}

int
store_broken(const struct store *s, char *buf, size_t len)
{
	char num[48];
	const char *name;

	if (s == NULL || s->broken == 0)
		return 0;
	name = store_code_name(s->broken, num, sizeof num);
	if ((s->broken & 0xff) == SQLITE_FULL) {
		errf(buf, len, "the store '%s' is full (disk full: %s)",
		    s->path, name);
		return STORE_BROKEN_FULL;
	}
	if ((s->broken & 0xff) == SQLITE_IOERR)
		errf(buf, len, "the store '%s' cannot be written (I/O error: "
		    "%s, %s)", s->path, name, sqlite3_errstr(s->broken));
	else
		errf(buf, len, "the store '%s' cannot be written (%s: %s)",
		    s->path, name, sqlite3_errstr(s->broken));
	return STORE_BROKEN_IO;
}

/*
 * Take statement `which` for use, preparing it the first time: the
 * persistent one unless it is still stepping (a callback re-entered the
 * store), then a one-off copy.
 */
sqlite3_stmt *
store_stmt(struct store *s, int which)
{
	const char *sql = store_sql[which];
	sqlite3_stmt *st;

	if (s->version < 2 && store_sql_v1[which] != NULL)
		sql = store_sql_v1[which];
	if (s->stmt[which] == NULL) {
		if (sqlite3_prepare_v3(s->db, sql, -1,
		    SQLITE_PREPARE_PERSISTENT, &s->stmt[which], NULL) !=
		    SQLITE_OK) {
			store_fail(s, "cannot prepare statement");
			return NULL;
		}
		return s->stmt[which];
	}
	if (!sqlite3_stmt_busy(s->stmt[which]))
		return s->stmt[which];
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		store_fail(s, "cannot prepare statement");
		return NULL;
	}
	return st;
}

/* Give back a statement from store_stmt(), dropping its bindings. */
void
store_stmt_done(struct store *s, int which, sqlite3_stmt *st)
{
	if (st != s->stmt[which]) {
		sqlite3_finalize(st);
		return;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Step a statement that returns no rows; on failure say what failed. */
int
store_step_done(struct store *s, int which, sqlite3_stmt *st,
    const char *what)
{
	int rc;

	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		store_fail(s, what);
	store_stmt_done(s, which, st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Step a one-row lookup: 1 for a row (*v its column 0), 0 for none. */
int
store_step_row(struct store *s, int which, sqlite3_stmt *st, int64_t *v,
    const char *what)
{
	int rc;

	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && v != NULL)
		*v = sqlite3_column_int64(st, 0);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		store_fail(s, what);
	store_stmt_done(s, which, st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int
store_lock(struct store *s)
{
	sqlite3_stmt *st;

	if (s->in_txn)
		return 0;
	if ((st = store_stmt(s, ST_BEGIN)) == NULL ||
	    store_step_done(s, ST_BEGIN, st, "cannot begin transaction") != 0)
		return -1;
	s->in_txn = 1;
	return 0;
}

int
store_unlock(struct store *s)
{
	sqlite3_stmt *st;

	if (!s->in_txn)
		return 0;
	if ((st = store_stmt(s, ST_COMMIT)) == NULL ||
	    store_step_done(s, ST_COMMIT, st, "cannot commit") != 0)
		return -1;
	s->in_txn = 0;
	return 0;
}

void
store_rollback(struct store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	s->in_txn = 0;
}

/* A copy of str in the batch's arena (NULL stays NULL). */
const char *
store_keep(struct store *s, const char *str)
{
	struct store_chunk *c = s->arena, *big;
	size_t n;
	char *p;

	if (str == NULL)
		return NULL;
	n = strlen(str) + 1;
	s->pend_bytes += n;
	if (n > STORE_CHUNK / 4) {
		/* A chunk of its own, behind the one being filled. */
		big = xmalloc(sizeof *big + n);
		big->used = big->cap = n;
		memcpy(big->data, str, n);
		if (c == NULL) {
			big->next = NULL;
			s->arena = big;
		} else {
			big->next = c->next;
			c->next = big;
		}
		return big->data;
	}
	if (c == NULL || c->cap - c->used < n) {
		c = xmalloc(sizeof *c + STORE_CHUNK);
		c->used = 0;
		c->cap = STORE_CHUNK;
		c->next = s->arena;
		s->arena = c;
	}
	p = c->data + c->used;
	memcpy(p, str, n);
	c->used += n;
	return p;
}

/* A new entry at the end of the batch. */
struct store_pend *
store_pend_new(struct store *s, int type)
{
	struct store_pend *p;

	if (s->npend == s->pend_cap) {
		s->pend_cap = s->pend_cap ? s->pend_cap * 2 : 256;
		s->pend = xrealloc(s->pend, s->pend_cap * sizeof *s->pend);
	}
	p = &s->pend[s->npend++];
	memset(p, 0, sizeof *p);
	p->type = type;
	return p;
}

/*
 * Write the bytes of the blob row rowid, inserted as zeros in the open
 * transaction, in two halves by incremental blob I/O.  Until the
 * transaction commits nothing of the row is visible, so a crash between
 * the halves (the blob.mid_write point) leaves no partial blob behind.
 */
static int
store_blob_fill(struct store *s, sqlite3_int64 rowid, const void *data,
    size_t len, int faults)
{
	sqlite3_blob *b;
	int half = (int)(len / 2), rc;

	if (sqlite3_blob_open(s->db, "main", "blobs", "data", rowid, 1,
	    &b) != SQLITE_OK)
		return store_fail(s, "cannot store blob");
	rc = sqlite3_blob_write(b, data, half, 0);
	if (rc == SQLITE_OK) {
		if (faults)
			fault_crash("blob.mid_write");
		rc = sqlite3_blob_write(b, (const char *)data + half,
		    (int)len - half, half);
	}
	if (rc != SQLITE_OK) {
		store_fail(s, "cannot store blob");
		sqlite3_blob_close(b);
		return -1;
	}
	if ((rc = sqlite3_blob_close(b)) != SQLITE_OK)
		return store_fail(s, "cannot store blob");
	return 0;
}

/* Write one event of the batch. */
static int
store_write_event(struct store *s, const struct store_event *ev)
{
	sqlite3_stmt *st;
	char what[256];
	int rc;

	if ((st = store_stmt(s, ST_EVENT_INSERT)) == NULL)
		return -1;
	store_bind_str(st, 1, ev->run_id);
	sqlite3_bind_int64(st, 2, ev->seq);
	sqlite3_bind_int64(st, 3, ev->span_id);
	sqlite3_bind_int64(st, 4, ev->parent_span);
	store_bind_str(st, 5, ev->node_path);
	store_bind_str(st, 6, ev->kind);
	sqlite3_bind_int(st, 7, ev->attempt);
	sqlite3_bind_double(st, 8, ev->time);
	store_bind_str(st, 9, ev->payload);
	sqlite3_bind_int64(st, 10, ev->tokens);
	sqlite3_bind_double(st, 11, ev->cost);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		/* Formatted only on failure: the hot path stays cheap. */
		snprintf(what, sizeof what, "cannot append event %lld of run "
		    "'%s'", (long long)ev->seq, ev->run_id);
		store_fail(s, what);
	}
	store_stmt_done(s, ST_EVENT_INSERT, st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Write one task row of the batch. */
static int
store_write_task(struct store *s, const struct store_task *t)
{
	sqlite3_stmt *st;
	char what[256];
	int rc;

	if ((st = store_stmt(s, ST_TASK_PUT)) == NULL)
		return -1;
	store_bind_str(st, 1, t->run_id);
	store_bind_str(st, 2, t->task_id);
	store_bind_str(st, 3, t->node_path);
	store_bind_str(st, 4, t->kind);
	store_bind_str(st, 5, t->state);
	sqlite3_bind_int(st, 6, t->attempt);
	sqlite3_bind_int(st, 7, t->worker);
	sqlite3_bind_double(st, 8, t->lease_until);
	store_bind_str(st, 9, t->idem_key);
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		/* Formatted only on failure, as for events. */
		snprintf(what, sizeof what, "cannot record task '%s' of run "
		    "'%s'", t->task_id != NULL ? t->task_id : "",
		    t->run_id != NULL ? t->run_id : "");
		store_fail(s, what);
	}
	store_stmt_done(s, ST_TASK_PUT, st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Write one blob of the batch, unless the file has it. */
static int
store_write_blob(struct store *s, const struct store_pend *p, int faults)
{
	sqlite3_stmt *st;

	if ((st = store_stmt(s, ST_BLOB_PUT)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, p->u.blob.hash, 64, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)p->u.blob.len);
	if (store_step_done(s, ST_BLOB_PUT, st, "cannot store blob") != 0)
		return -1;
	/* Stored already (same bytes, same hash): one copy is kept. */
	if (sqlite3_changes(s->db) == 1 && p->u.blob.len > 0)
		return store_blob_fill(s, sqlite3_last_insert_rowid(s->db),
		    p->u.blob.data, p->u.blob.len, faults);
	return 0;
}

/* Write a run row of the batch. */
static int
store_write_run(struct store *s, const struct store_pend *p)
{
	const struct store_run *r = &p->u.run.r;
	sqlite3_stmt *st;
	char what[256];

	if ((st = store_stmt(s, ST_RUN_INSERT)) == NULL)
		return -1;
	store_bind_str(st, 1, r->id);
	store_bind_str(st, 2, r->workflow);
	store_bind_str(st, 3, r->workflow_hash);
	store_bind_str(st, 4, r->input);
	store_bind_str(st, 5, r->status);
	store_bind_str(st, 6, r->budget);
	store_bind_str(st, 7, r->spend);
	store_bind_str(st, 8, r->output);
	store_bind_str(st, 9, r->error);
	store_bind_str(st, 10, r->parent_run);
	sqlite3_bind_double(st, 11, r->started);
	sqlite3_bind_double(st, 12, r->ended);
	sqlite3_bind_int64(st, 13, r->steps);
	sqlite3_bind_int64(st, 14, r->tokens);
	sqlite3_bind_double(st, 15, r->cost);
	if (p->u.run.input_blob[0] != '\0')
		store_bind_str(st, 16, p->u.run.input_blob);
	snprintf(what, sizeof what, "cannot create run '%s'", r->id);
	return store_step_done(s, ST_RUN_INSERT, st, what);
}

/* Write a run's final columns of the batch. */
static int
store_write_finish(struct store *s, const struct store_run *r)
{
	sqlite3_stmt *st;
	char what[256];

	if ((st = store_stmt(s, ST_RUN_FINISH)) == NULL)
		return -1;
	store_bind_str(st, 1, r->id);
	store_bind_str(st, 2, r->status);
	store_bind_str(st, 3, r->output);
	store_bind_str(st, 4, r->error);
	sqlite3_bind_double(st, 5, r->ended);
	sqlite3_bind_int64(st, 6, r->steps);
	sqlite3_bind_int64(st, 7, r->tokens);
	sqlite3_bind_double(st, 8, r->cost);
	store_bind_str(st, 9, r->spend);
	snprintf(what, sizeof what, "cannot finish run '%s'", r->id);
	return store_step_done(s, ST_RUN_FINISH, st, what);
}

/*
 * While a weft gc runs (a gc_state row), list the batch's blobs in
 * gc_touched: its sweep spares them, although the events that name them
 * are newer than what it read (engine/store_gc.c).
 */
static int
store_gc_touch(struct store *s)
{
	sqlite3_stmt *st;
	int64_t active = 0;
	size_t i;

	if (s->nblobs == 0 || s->version < 2)
		return 0;
	if ((st = store_stmt(s, ST_GC_ACTIVE)) == NULL ||
	    store_step_row(s, ST_GC_ACTIVE, st, &active, "cannot read "
	    "gc_state") < 0)
		return -1;
	for (i = 0; active && i < s->npend; i++) {
		if (s->pend[i].type != PEND_BLOB)
			continue;
		if ((st = store_stmt(s, ST_GC_TOUCH)) == NULL)
			return -1;
		sqlite3_bind_text(st, 1, s->pend[i].u.blob.hash, 64,
		    SQLITE_STATIC);
		if (store_step_done(s, ST_GC_TOUCH, st, "cannot record blob "
		    "for gc") != 0)
			return -1;
	}
	return 0;
}

/* Write entry p of the batch (faults: pass the blob.mid_write point). */
static int
store_write(struct store *s, const struct store_pend *p, int faults)
{
	switch (p->type) {
	case PEND_EVENT:
		return store_write_event(s, &p->u.ev);
	case PEND_TASK:
		return store_write_task(s, &p->u.task);
	case PEND_BLOB:
		return store_write_blob(s, p, faults);
	case PEND_RUN_CREATE:
		return store_write_run(s, p);
	case PEND_RUN_FINISH:
		return store_write_finish(s, &p->u.run.r);
	}
	return -1;
}

int
store_flush(struct store *s, int faults)
{
	size_t i;

	if (store_refuse(s) != 0)
		return -1;
	if (s->npend == 0 && !s->in_txn)
		return 0;
	if (store_lock(s) != 0 || store_gc_touch(s) != 0)
		return store_break(s);
	for (i = 0; i < s->npend; i++)
		if (store_write(s, &s->pend[i], faults) != 0)
			return store_break(s);
	if (faults)
		fault_crash("store.before_commit");
	if (store_unlock(s) != 0)
		return store_break(s);
	store_pend_clear(s);
	if (faults)
		fault_crash("store.after_commit");
	return 0;
}

int
store_begin(struct store *s)
{
	if (store_refuse(s) != 0)
		return -1;
	return store_lock(s) != 0 ? store_break(s) : 0;
}

int
store_commit(struct store *s)
{
	return store_flush(s, 1);
}

/* Commit a batch grown past STORE_BATCH_MAX, unless a lock is held. */
int
store_pend_check(struct store *s)
{
	if (s->in_txn || s->pend_bytes <= STORE_BATCH_MAX)
		return 0;
	return store_flush(s, 1);
}

int
store_task_put(struct store *s, const struct store_task *t)
{
	struct store_pend *p;
	struct store_task *c;

	if (store_refuse(s) != 0)
		return -1;
	p = store_pend_new(s, PEND_TASK);
	c = &p->u.task;
	*c = *t;
	c->run_id = store_keep(s, t->run_id);
	c->task_id = store_keep(s, t->task_id);
	c->node_path = store_keep(s, t->node_path);
	c->kind = store_keep(s, t->kind);
	c->state = store_keep(s, t->state);
	c->idem_key = store_keep(s, t->idem_key);
	return store_pend_check(s);
}

/*
 * Step a row-returning statement to the end, handing each row to row_cb.
 * A non-zero return from row_cb stops the walk and is returned.
 */
int
store_walk(struct store *s, int which, sqlite3_stmt *st,
    int (*row_cb)(sqlite3_stmt *, void *), void *arg, const char *what)
{
	int rc, stop = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((stop = row_cb(st, arg)) != 0)
			break;
	}
	if (stop == 0 && rc != SQLITE_DONE) {
		store_fail(s, what);
		stop = -1;
	}
	store_stmt_done(s, which, st);
	return stop;
}

