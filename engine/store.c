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
 * the one thread that owns engine state.  engine/store_open.c opens it,
 * engine/store_gc.c holds weft gc's retention and vacuum.
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

/*
 * Columns read into a struct store_run, in store_run_row() order.  From
 * version 2 a large input is a blob that the row names (input_blob).
 */
#define RUN_COLUMNS(input) \
	"id, workflow, workflow_hash, " input ", status, budget, spend, " \
	"output, error, parent_run, started, ended, steps, tokens, cost"
#define RUN_COLUMNS_V1	RUN_COLUMNS("input")
#define RUN_COLUMNS_V2	RUN_COLUMNS("coalesce(input, (SELECT " \
	"CAST(b.data AS TEXT) FROM blobs b WHERE b.hash = runs.input_blob))")

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
	    "WHERE run_id = ?1 ORDER BY seq",
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
static int
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
static sqlite3_stmt *
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
static void
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
static int
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
static int
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

/* Bind a string that lives until the statement is reset; NULL binds NULL. */
static void
store_bind_str(sqlite3_stmt *st, int i, const char *v)
{
	sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
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
static const char *
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
static struct store_pend *
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

/* The slot of hash in the batch's blob index (free or holding it). */
static size_t
store_blob_slot(const struct store *s, const char *hash)
{
	uint64_t h = 0;
	size_t i, mask = s->blobix_cap - 1;
	int k;

	for (k = 0; k < 16; k++)
		h = h << 4 | (uint64_t)(hash[k] <= '9' ? hash[k] - '0' :
		    (hash[k] | 0x20) - 'a' + 10);
	for (i = (size_t)h & mask;; i = (i + 1) & mask) {
		if (s->blobix[i] == 0 || strcmp(s->pend[s->blobix[i] -
		    1].u.blob.hash, hash) == 0)
			return i;
	}
}

/* The batch entry of the blob with this hash, or NULL. */
static struct store_pend *
store_blob_pending(const struct store *s, const char *hash)
{
	size_t i;

	if (s->nblobs == 0 || strlen(hash) != 64)
		return NULL;
	i = store_blob_slot(s, hash);
	return s->blobix[i] != 0 ? &s->pend[s->blobix[i] - 1] : NULL;
}

/* Index batch entry ix (a blob) by its hash, growing the index. */
static void
store_blob_index(struct store *s, size_t ix)
{
	size_t i;

	if ((s->nblobs + 1) * 2 > s->blobix_cap) {
		s->blobix_cap = s->blobix_cap ? s->blobix_cap * 2 : 64;
		free(s->blobix);
		s->blobix = xcalloc(s->blobix_cap, sizeof *s->blobix);
		for (i = 0; i < s->npend; i++)
			if (i != ix && s->pend[i].type == PEND_BLOB)
				s->blobix[store_blob_slot(s,
				    s->pend[i].u.blob.hash)] = (uint32_t)i + 1;
	}
	s->blobix[store_blob_slot(s, s->pend[ix].u.blob.hash)] =
	    (uint32_t)ix + 1;
	s->nblobs++;
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
	snprintf(what, sizeof what, "cannot record task '%s' of run '%s'",
	    t->task_id != NULL ? t->task_id : "",
	    t->run_id != NULL ? t->run_id : "");
	return store_step_done(s, ST_TASK_PUT, st, what);
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
static int
store_pend_check(struct store *s)
{
	if (s->in_txn || s->pend_bytes <= STORE_BATCH_MAX)
		return 0;
	return store_flush(s, 1);
}

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

int
store_blob_put(struct store *s, const void *data, size_t len,
    char hash_out[65])
{
	struct store_pend *p;
	char hash[65];

	if (len > STORE_BLOB_MAX) {
		errf(s->err, sizeof s->err, "cannot store blob: %zu bytes, "
		    "more than the limit of %d", len, STORE_BLOB_MAX);
		return -1;
	}
	if (store_refuse(s) != 0)
		return -1;
	if (data == NULL)
		data = "";
	sha256_hex(data, len, hash);
	if (store_blob_pending(s, hash) == NULL) {
		p = store_pend_new(s, PEND_BLOB);
		memcpy(p->u.blob.hash, hash, sizeof hash);
		p->u.blob.data = xmalloc(len > 0 ? len : 1);
		memcpy(p->u.blob.data, data, len);
		p->u.blob.len = len;
		s->pend_bytes += len;
		store_blob_index(s, (size_t)(p - s->pend));
	}
	memcpy(hash_out, hash, sizeof hash);
	return store_pend_check(s);
}

int
store_blob_get(struct store *s, const char *hash, void **data, size_t *len)
{
	struct store_pend *p;
	sqlite3_stmt *st;
	const void *b;
	size_t n;
	void *copy;
	int rc;

	if ((p = store_blob_pending(s, hash)) != NULL) {
		copy = xmalloc(p->u.blob.len > 0 ? p->u.blob.len : 1);
		memcpy(copy, p->u.blob.data, p->u.blob.len);
		*data = copy;
		*len = p->u.blob.len;
		return 0;
	}
	if ((st = store_stmt(s, ST_BLOB_GET)) == NULL)
		return -1;
	store_bind_str(st, 1, hash);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		if (rc == SQLITE_DONE)
			errf(s->err, sizeof s->err, "no blob '%s'", hash);
		else
			store_fail(s, "cannot read blob");
		store_stmt_done(s, ST_BLOB_GET, st);
		return -1;
	}
	b = sqlite3_column_blob(st, 0);
	n = (size_t)sqlite3_column_bytes(st, 0);
	copy = xmalloc(n > 0 ? n : 1);
	if (n > 0)
		memcpy(copy, b, n);
	store_stmt_done(s, ST_BLOB_GET, st);
	*data = copy;
	*len = n;
	return 0;
}

/* A text column, or NULL for SQL NULL. */
static const char *
store_col_str(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
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

/*
 * Step a row-returning statement to the end, handing each row to row_cb.
 * A non-zero return from row_cb stops the walk and is returned.
 */
static int
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
