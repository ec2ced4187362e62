/*
 * store.c: the trajectory store on SQLite (WAL, synchronous=NORMAL).
 *
 * Every statement is prepared once at open with SQLITE_PREPARE_PERSISTENT
 * and reused: bind, step, reset, clear bindings.  Strings are bound with
 * SQLITE_STATIC since the caller's memory outlives the step and bindings
 * are cleared right after it, so appending an event costs no allocation
 * of ours.  If a statement is still running when it is needed again (a
 * callback re-entering the store), a one-off copy is prepared instead.
 *
 * The connection is opened with SQLITE_OPEN_NOMUTEX: the store belongs to
 * the one thread that owns engine state.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "runtime/fault.h"
#include "engine/store.h"
#include "runtime/util.h"

enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_RUN_INSERT,
	ST_RUN_FINISH,
	ST_RUN_GET,
	ST_RUN_PREFIX,
	ST_RUNS_LIST,
	ST_EVENT_INSERT,
	ST_EVENTS,
	ST_EVENT_COUNT,
	ST_TASK_PUT,
	ST_BLOB_PUT,
	ST_BLOB_GET,
	ST__COUNT
};

/* Columns read into a struct store_run, in store_run_row() order. */
#define RUN_COLUMNS \
	"id, workflow, workflow_hash, input, status, budget, spend, " \
	"output, error, parent_run, started, ended, steps, tokens, cost"

static const char *store_sql[ST__COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_RUN_INSERT] = "INSERT INTO runs (" RUN_COLUMNS ") VALUES "
	    "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
	    "?15)",
	[ST_RUN_FINISH] = "UPDATE runs SET status = ?2, output = ?3, "
	    "error = ?4, ended = ?5, steps = ?6, tokens = ?7, cost = ?8, "
	    "spend = ?9 WHERE id = ?1",
	[ST_RUN_GET] = "SELECT " RUN_COLUMNS " FROM runs WHERE id = ?1",
	[ST_RUN_PREFIX] = "SELECT id FROM runs WHERE id >= ?1 AND id < ?2 "
	    "ORDER BY id LIMIT 2",
	[ST_RUNS_LIST] = "SELECT " RUN_COLUMNS " FROM runs "
	    "ORDER BY started DESC, rowid DESC LIMIT ?1",
	[ST_EVENT_INSERT] = "INSERT INTO events (run_id, seq, span_id, "
	    "parent_span, node_path, kind, attempt, time, payload, tokens, "
	    "cost) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[ST_EVENTS] = "SELECT run_id, seq, span_id, parent_span, node_path, "
	    "kind, attempt, time, payload, tokens, cost FROM events "
	    "WHERE run_id = ?1 ORDER BY seq",
	[ST_EVENT_COUNT] = "SELECT count(*) FROM events WHERE run_id = ?1",
	[ST_TASK_PUT] = "INSERT OR REPLACE INTO tasks (run_id, task_id, "
	    "node_path, kind, state, attempt, worker, lease_until, idem_key) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[ST_BLOB_PUT] = "INSERT OR IGNORE INTO blobs (hash, size, data) "
	    "VALUES (?1, ?2, zeroblob(?2))",
	[ST_BLOB_GET] = "SELECT data FROM blobs WHERE hash = ?1",
};

/*
 * Schema migrations: store_migrations[v] takes a database from version v
 * to v + 1.  Steps are only ever appended; a released step never changes.
 * Version 0 is an empty database.
 */
static const char *store_migrations[STORE_SCHEMA_VERSION] = {
	/* 0 -> 1 */
	"CREATE TABLE runs ("
	"  id TEXT PRIMARY KEY NOT NULL,"
	"  workflow TEXT,"
	"  workflow_hash TEXT,"
	"  input TEXT,"
	"  status TEXT,"
	"  budget TEXT,"
	"  spend TEXT,"
	"  output TEXT,"
	"  error TEXT,"
	"  parent_run TEXT,"
	"  started REAL,"
	"  ended REAL,"
	"  steps INTEGER,"
	"  tokens INTEGER,"
	"  cost REAL"
	");"
	"CREATE INDEX runs_started ON runs (started);"
	"CREATE TABLE events ("
	"  run_id TEXT NOT NULL,"
	"  seq INTEGER NOT NULL,"
	"  span_id INTEGER,"
	"  parent_span INTEGER,"
	"  node_path TEXT,"
	"  kind TEXT NOT NULL,"
	"  attempt INTEGER,"
	"  time REAL,"
	"  payload TEXT,"
	"  tokens INTEGER,"
	"  cost REAL,"
	"  PRIMARY KEY (run_id, seq)"
	");"
	"CREATE TABLE tasks ("
	"  run_id TEXT NOT NULL,"
	"  task_id TEXT NOT NULL,"
	"  node_path TEXT,"
	"  kind TEXT,"
	"  state TEXT,"
	"  attempt INTEGER,"
	"  worker INTEGER,"
	"  lease_until REAL,"
	"  idem_key TEXT,"
	"  PRIMARY KEY (run_id, task_id)"
	") WITHOUT ROWID;"
	"CREATE TABLE blobs ("
	"  hash TEXT PRIMARY KEY NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  data BLOB NOT NULL"
	");",
};

struct store {
	sqlite3		*db;
	char		*path;
	sqlite3_stmt	*stmt[ST__COUNT];
	char		 err[1024];
	int		 broken;	/* result code of a failed write */
	char		 broken_err[1024];
};

/*
 * Why the file at path cannot be opened for writing, as an errno value, or
 * 0 if nothing is visibly wrong.  SQLite retries a failed read-write open
 * read-only, so the errno it keeps is often the retry's (ENOENT) instead of
 * the cause (EACCES on the directory); asking the file system is clearer.
 * WAL also needs to create PATH-wal and PATH-shm, hence the directory test.
 */
static int
store_path_errno(const char *path)
{
	struct stat sb;
	char *dir, *slash;
	int e = 0;

	if (stat(path, &sb) == 0) {
		if (S_ISDIR(sb.st_mode))
			return EISDIR;
		if (access(path, R_OK | W_OK) != 0)
			return errno;
	} else if (errno != ENOENT)
		return errno;
	if ((slash = strrchr(path, '/')) == NULL)
		dir = xstrdup(".");
	else if (slash == path)
		dir = xstrdup("/");
	else
		dir = xstrndup(path, slash - path);
	if (access(dir, W_OK | X_OK) != 0)
		e = errno;
	free(dir);
	return e;
}

/*
 * Format the connection's last error, with the errno behind it if a file
 * operation failed.  path, when given, is examined for a clearer errno.
 */
static void
store_db_reason(sqlite3 *db, const char *path, char *buf, size_t len)
{
	int syserr = 0;

	if (db == NULL) {
		errf(buf, len, "out of memory");
		return;
	}
	switch (sqlite3_errcode(db)) {
	case SQLITE_CANTOPEN:
	case SQLITE_IOERR:
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_FULL:
		if (path != NULL)
			syserr = store_path_errno(path);
		if (syserr == 0)
			syserr = sqlite3_system_errno(db);
		break;
	}
	if (syserr != 0)
		errf(buf, len, "%s (%s)", sqlite3_errmsg(db),
		    strerror(syserr));
	else
		errf(buf, len, "%s", sqlite3_errmsg(db));
}

/* Run a statement that returns no rows, or the first row's column 0. */
static int
store_exec_text(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
	sqlite3_stmt *st;
	const unsigned char *t;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && out != NULL) {
		t = sqlite3_column_text(st, 0);
		snprintf(out, outlen, "%s", t != NULL ? (const char *)t : "");
	} else if (out != NULL && outlen > 0)
		out[0] = '\0';
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sqlite3_finalize(st);
		return -1;
	}
	return sqlite3_finalize(st) == SQLITE_OK ? 0 : -1;
}

/* Read PRAGMA user_version. */
static int
store_user_version(sqlite3 *db, int *version)
{
	char buf[32];

	if (store_exec_text(db, "PRAGMA user_version", buf, sizeof buf) != 0)
		return -1;
	*version = atoi(buf);
	return 0;
}

/*
 * Bring the schema to STORE_SCHEMA_VERSION inside one write transaction.
 * BEGIN IMMEDIATE takes the write lock even when there is nothing to
 * migrate, so an unwritable database fails here, at open, and two
 * processes opening a fresh file cannot both create the tables.
 */
static int
store_migrate(struct store *s, char *err, size_t errlen)
{
	char reason[512], *sql;
	int v;

	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		store_db_reason(s->db, s->path, reason, sizeof reason);
		errf(err, errlen, "cannot open database '%s': %s", s->path,
		    reason);
		return -1;
	}
	if (store_user_version(s->db, &v) != 0)
		goto fail;
	if (v > STORE_SCHEMA_VERSION) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		errf(err, errlen, "database '%s' has schema version %d, newer "
		    "than this weft (%d)", s->path, v, STORE_SCHEMA_VERSION);
		return -1;
	}
	for (; v < STORE_SCHEMA_VERSION; v++) {
		if (sqlite3_exec(s->db, store_migrations[v], NULL, NULL,
		    NULL) != SQLITE_OK) {
			store_db_reason(s->db, s->path, reason, sizeof reason);
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			errf(err, errlen, "cannot open database '%s': "
			    "migrating schema to version %d: %s", s->path,
			    v + 1, reason);
			return -1;
		}
		sql = xasprintf("PRAGMA user_version = %d", v + 1);
		if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
			free(sql);
			goto fail;
		}
		free(sql);
	}
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	return 0;

fail:
	store_db_reason(s->db, s->path, reason, sizeof reason);
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	errf(err, errlen, "cannot open database '%s': %s", s->path, reason);
	return -1;
}

/* Set the connection's pragmas and switch the file to WAL. */
static int
store_configure(struct store *s, char *err, size_t errlen)
{
	char reason[512], mode[32];

	if (store_exec_text(s->db, "PRAGMA journal_mode = WAL", mode,
	    sizeof mode) != 0)
		goto fail;
	/* In-memory databases (tests) have no WAL and answer "memory". */
	if (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0) {
		errf(err, errlen, "cannot open database '%s': cannot switch "
		    "to WAL (journal mode stays '%s')", s->path, mode);
		return -1;
	}
	if (store_exec_text(s->db, "PRAGMA synchronous = NORMAL", NULL,
	    0) != 0)
		goto fail;
	return 0;

fail:
	store_db_reason(s->db, s->path, reason, sizeof reason);
	errf(err, errlen, "cannot open database '%s': %s", s->path, reason);
	return -1;
}

/* Free a store and everything it holds, without committing. */
static void
store_free(struct store *s)
{
	size_t i;

	for (i = 0; i < nitems(s->stmt); i++)
		sqlite3_finalize(s->stmt[i]);
	sqlite3_close_v2(s->db);
	free(s->path);
	free(s);
}

int
store_open(const char *path, struct store **out, char *err, size_t errlen)
{
	struct store *s;
	char reason[512];
	size_t i;
	int v, e, rc;

	s = xcalloc(1, sizeof *s);
	s->path = xstrdup(path);
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, store_vfs_name());
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(s->db, 5000);

	/* Refuse a newer schema before changing anything in the file. */
	if (store_user_version(s->db, &v) != 0)
		goto fail;
	if (v > STORE_SCHEMA_VERSION) {
		errf(err, errlen, "database '%s' has schema version %d, newer "
		    "than this weft (%d)", path, v, STORE_SCHEMA_VERSION);
		goto out;
	}
	if (sqlite3_db_readonly(s->db, "main") == 1) {
		if ((e = store_path_errno(path)) == 0)
			e = EACCES;
		errf(err, errlen, "cannot open database '%s': %s", path,
		    strerror(e));
		goto out;
	}
	if (store_configure(s, err, errlen) != 0 ||
	    store_migrate(s, err, errlen) != 0)
		goto out;

	for (i = 0; i < nitems(s->stmt); i++) {
		if (sqlite3_prepare_v3(s->db, store_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &s->stmt[i], NULL) != SQLITE_OK)
			goto fail;
	}
	*out = s;
	return 0;

fail:
	store_db_reason(s->db, s->path, reason, sizeof reason);
	errf(err, errlen, "cannot open database '%s': %s", path, reason);
out:
	store_free(s);
	return -1;
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	if (!s->broken && store_commit(s) != 0)
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

/* Record the connection's last error as "WHAT: REASON". */
static int
store_fail(struct store *s, const char *what)
{
	char reason[512];

	store_db_reason(s->db, s->path, reason, sizeof reason);
	errf(s->err, sizeof s->err, "%s: %s", what, reason);
	return -1;
}

/*
 * Whether a write failing with code leaves the store broken: the file or
 * the lock failed (no space, I/O, corruption, memory, a lock held too
 * long), after which SQLite may have rolled the transaction back itself.
 * A statement refused for what it says (a constraint, a size) fails
 * alone; the batch goes on.
 */
static int
store_code_breaks(int code)
{
	switch (code & 0xff) {
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_NOMEM:
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_READONLY:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_CANTOPEN:
	case SQLITE_PROTOCOL:
	case SQLITE_PERM:
	case SQLITE_ABORT:
		return 1;
	}
	return 0;
}

/*
 * A write failed with result code `code` after s->err was set.  If the
 * failure breaks the store, roll the open batch back as a whole and
 * refuse every later write (store.h).
 */
static int
store_write_failed(struct store *s, int code)
{
	if (!store_code_breaks(code))
		return -1;
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	if (s->broken == 0) {
		s->broken = code;
		memcpy(s->broken_err, s->err, sizeof s->err);
	}
	return -1;
}

/* Refuse a write on a broken store, with the first failure's message. */
static int
store_refuse(struct store *s)
{
	memcpy(s->err, s->broken_err, sizeof s->err);
	return -1;
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
 * Take statement `which` for use: the persistent one unless it is still
 * stepping (a callback re-entered the store), then a one-off copy.
 */
static sqlite3_stmt *
store_stmt(struct store *s, int which)
{
	sqlite3_stmt *st;

	if (!sqlite3_stmt_busy(s->stmt[which]))
		return s->stmt[which];
	if (sqlite3_prepare_v2(s->db, store_sql[which], -1, &st, NULL) !=
	    SQLITE_OK) {
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

/*
 * Step a statement that writes and returns no rows; on failure say what
 * failed and break the store (store_write_failed).
 */
static int
store_step_done(struct store *s, int which, sqlite3_stmt *st,
    const char *what)
{
	int rc, code = SQLITE_OK;

	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		store_fail(s, what);
		code = sqlite3_extended_errcode(s->db);
	}
	store_stmt_done(s, which, st);
	return rc == SQLITE_DONE ? 0 : store_write_failed(s, code);
}

/* Bind a string that lives until the statement is reset; NULL binds NULL. */
static void
store_bind_str(sqlite3_stmt *st, int i, const char *v)
{
	sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

int
store_begin(struct store *s)
{
	sqlite3_stmt *st;

	if (s->broken)
		return store_refuse(s);
	if (!sqlite3_get_autocommit(s->db))
		return 0;
	if ((st = store_stmt(s, ST_BEGIN)) == NULL)
		return -1;
	return store_step_done(s, ST_BEGIN, st, "cannot begin transaction");
}

int
store_commit(struct store *s)
{
	sqlite3_stmt *st;

	if (s->broken)
		return store_refuse(s);
	if (sqlite3_get_autocommit(s->db))
		return 0;
	if ((st = store_stmt(s, ST_COMMIT)) == NULL)
		return -1;
	fault_crash("store.before_commit");
	if (store_step_done(s, ST_COMMIT, st, "cannot commit") != 0)
		return -1;
	fault_crash("store.after_commit");
	return 0;
}

int
store_run_create(struct store *s, const struct store_run *r)
{
	sqlite3_stmt *st;
	char what[256];

	if (s->broken)
		return store_refuse(s);
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
	snprintf(what, sizeof what, "cannot create run '%s'",
	    r->id != NULL ? r->id : "");
	return store_step_done(s, ST_RUN_INSERT, st, what);
}

int
store_run_finish(struct store *s, const struct store_run *r)
{
	sqlite3_stmt *st;
	char what[256];

	if (s->broken)
		return store_refuse(s);
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
	snprintf(what, sizeof what, "cannot finish run '%s'",
	    r->id != NULL ? r->id : "");
	if (store_step_done(s, ST_RUN_FINISH, st, what) != 0)
		return -1;
	if (sqlite3_changes(s->db) == 0) {
		errf(s->err, sizeof s->err, "no run '%s'",
		    r->id != NULL ? r->id : "");
		return -1;
	}
	return 0;
}

int
store_event_append(struct store *s, const struct store_event *ev)
{
	sqlite3_stmt *st;
	char what[256];
	int rc, code = SQLITE_OK;

	if (store_begin(s) != 0)
		return -1;
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
		    "'%s'", (long long)ev->seq,
		    ev->run_id != NULL ? ev->run_id : "");
		store_fail(s, what);
		code = sqlite3_extended_errcode(s->db);
	}
	store_stmt_done(s, ST_EVENT_INSERT, st);
	return rc == SQLITE_DONE ? 0 : store_write_failed(s, code);
}

int
store_task_put(struct store *s, const struct store_task *t)
{
	sqlite3_stmt *st;
	char what[256];

	if (store_begin(s) != 0)
		return -1;
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

/*
 * Write the bytes of the blob row rowid, inserted as zeros in the open
 * transaction, in two halves by incremental blob I/O.  Until the
 * transaction commits nothing of the row is visible, so a crash between
 * the halves (the blob.mid_write point) leaves no partial blob behind.
 */
static int
store_blob_fill(struct store *s, sqlite3_int64 rowid, const void *data,
    size_t len)
{
	sqlite3_blob *b;
	int half = (int)(len / 2), rc;

	if (sqlite3_blob_open(s->db, "main", "blobs", "data", rowid, 1,
	    &b) != SQLITE_OK) {
		store_fail(s, "cannot store blob");
		return store_write_failed(s, sqlite3_extended_errcode(s->db));
	}
	rc = sqlite3_blob_write(b, data, half, 0);
	if (rc == SQLITE_OK) {
		fault_crash("blob.mid_write");
		rc = sqlite3_blob_write(b, (const char *)data + half,
		    (int)len - half, half);
	}
	if (rc != SQLITE_OK) {
		store_fail(s, "cannot store blob");
		rc = sqlite3_extended_errcode(s->db);
		sqlite3_blob_close(b);
		return store_write_failed(s, rc);
	}
	if ((rc = sqlite3_blob_close(b)) != SQLITE_OK) {
		store_fail(s, "cannot store blob");
		return store_write_failed(s, rc);
	}
	return 0;
}

int
store_blob_put(struct store *s, const void *data, size_t len,
    char hash_out[65])
{
	sqlite3_stmt *st;
	char hash[65];

	if (len > STORE_BLOB_MAX) {
		errf(s->err, sizeof s->err, "cannot store blob: %zu bytes, "
		    "more than the limit of %d", len, STORE_BLOB_MAX);
		return -1;
	}
	if (data == NULL)
		data = "";
	sha256_hex(data, len, hash);
	if (store_begin(s) != 0)
		return -1;
	if ((st = store_stmt(s, ST_BLOB_PUT)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, hash, 64, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)len);
	if (store_step_done(s, ST_BLOB_PUT, st, "cannot store blob") != 0)
		return -1;
	/* Stored already (same bytes, same hash): one copy is kept. */
	if (sqlite3_changes(s->db) == 1 && len > 0 &&
	    store_blob_fill(s, sqlite3_last_insert_rowid(s->db), data,
	    len) != 0)
		return -1;
	memcpy(hash_out, hash, sizeof hash);
	return 0;
}

int
store_blob_get(struct store *s, const char *hash, void **data, size_t *len)
{
	sqlite3_stmt *st;
	const void *p;
	size_t n;
	void *copy;
	int rc;

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
	p = sqlite3_column_blob(st, 0);
	n = (size_t)sqlite3_column_bytes(st, 0);
	copy = xmalloc(n);
	if (n > 0)
		memcpy(copy, p, n);
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

/* Fill r from a row selected with RUN_COLUMNS. */
static void
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
		/* Cannot happen: one connection, the row was just seen. */
		errf(s->err, sizeof s->err, "no run '%s'", id_or_prefix);
		rc = -1;
	}
	free(id);
	return rc;
}

struct store_event_walk {
	store_event_cb	 cb;
	void		*arg;
};

/* Hand one event row to the caller's callback. */
static int
store_event_row_cb(sqlite3_stmt *st, void *arg)
{
	struct store_event_walk *w = arg;
	struct store_event ev;

	ev.run_id = store_col_str(st, 0);
	ev.seq = sqlite3_column_int64(st, 1);
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
	struct store_event_walk w = { cb, arg };
	sqlite3_stmt *st;

	if ((st = store_stmt(s, ST_EVENTS)) == NULL)
		return -1;
	store_bind_str(st, 1, run_id);
	return store_walk(s, ST_EVENTS, st, store_event_row_cb, &w,
	    "cannot read events");
}

int64_t
store_event_count(struct store *s, const char *run_id)
{
	sqlite3_stmt *st;
	int64_t n = -1;

	if ((st = store_stmt(s, ST_EVENT_COUNT)) == NULL)
		return -1;
	store_bind_str(st, 1, run_id);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	else
		store_fail(s, "cannot count events");
	store_stmt_done(s, ST_EVENT_COUNT, st);
	return n;
}

/* Retention (weft gc): the statements, in order, of store_gc(). */
/* Only a finished run may go: running, paused, waiting and any status
   this build does not know keep their tree. */
#define GC_LIVE	"(r.status IS NULL OR r.status NOT IN ('succeeded', " \
	"'failed', 'cancelled', 'budget_exceeded'))"
static const char *store_gc_select[] = {
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
};
static const char store_gc_live[] = "SELECT count(DISTINCT g.root) "
	"FROM temp.gc_runs g JOIN runs r ON r.id = g.id WHERE " GC_LIVE;
static const char store_gc_unlive[] = "DELETE FROM temp.gc_runs WHERE root "
	"IN (SELECT g.root FROM temp.gc_runs g JOIN runs r ON r.id = g.id "
	"WHERE " GC_LIVE ")";
static const char store_gc_list[] = "SELECT " RUN_COLUMNS " FROM runs "
	"WHERE id IN (SELECT id FROM temp.gc_runs) ORDER BY started, id";
static const char *store_gc_delete[] = {
	"DELETE FROM events WHERE run_id IN (SELECT id FROM temp.gc_runs)",
	"DELETE FROM tasks WHERE run_id IN (SELECT id FROM temp.gc_runs)",
	"DELETE FROM runs WHERE id IN (SELECT id FROM temp.gc_runs)",
};
/*
 * Blobs are referenced by hash from event payloads (model.request lists
 * its messages' hashes, model.response its raw answer's).  Any string
 * value of 64 lowercase hex digits in a remaining payload keeps the blob
 * of that hash, whatever the event kind, so a new kind of reference is
 * safe by default.  A blob and the event naming it are written in one
 * transaction, so a run in progress never has a blob without its event.
 */
static const char *store_gc_keep[] = {
	"DROP TABLE IF EXISTS temp.gc_keep",
	"CREATE TEMP TABLE gc_keep (hash TEXT PRIMARY KEY) WITHOUT ROWID",
	"INSERT OR IGNORE INTO temp.gc_keep SELECT j.value FROM events, "
	"json_tree(CASE WHEN json_valid(events.payload) THEN events.payload "
	"ELSE '[]' END) AS j WHERE j.type = 'text' AND length(j.value) = 64 "
	"AND j.value NOT GLOB '*[^0-9a-f]*'",
};
static const char store_gc_blobs[] = "SELECT count(*), "
	"coalesce(sum(size), 0) FROM blobs WHERE hash NOT IN "
	"(SELECT hash FROM temp.gc_keep)";
static const char store_gc_unblob[] = "DELETE FROM blobs WHERE hash NOT IN "
	"(SELECT hash FROM temp.gc_keep)";
static const char *store_gc_cleanup[] = {
	"DROP TABLE temp.gc_keep",
	"DROP TABLE temp.gc_runs",
};

/*
 * Run one gc statement, binding ?1 keep and ?2 before if it has them.
 * *changes gets the rows it changed; c0 and c1, if not NULL, the first
 * row's first two columns.
 */
static int
store_gc_step(struct store *s, const char *sql, const struct store_gc *g,
    int64_t *changes, int64_t *c0, int64_t *c1)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return store_fail(s, "gc");
	if (sqlite3_bind_parameter_count(st) >= 2) {
		sqlite3_bind_int(st, 1, g->keep);
		sqlite3_bind_double(st, 2, g->before);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (c0 != NULL)
			*c0 = sqlite3_column_int64(st, 0);
		if (c1 != NULL)
			*c1 = sqlite3_column_int64(st, 1);
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

/* Run a list of gc statements. */
static int
store_gc_steps(struct store *s, const char **sql, size_t n,
    const struct store_gc *g)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (store_gc_step(s, sql[i], g, NULL, NULL, NULL) != 0)
			return -1;
	return 0;
}

/* Hand each selected run to cb. */
static int
store_gc_walk(struct store *s, store_run_cb cb, void *arg)
{
	struct store_run r;
	sqlite3_stmt *st;
	int rc, stop = 0;

	if (sqlite3_prepare_v2(s->db, store_gc_list, -1, &st, NULL) !=
	    SQLITE_OK)
		return store_fail(s, "gc");
	while (stop == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		store_run_row(st, &r);
		stop = cb(arg, &r);
	}
	if (stop == 0 && rc != SQLITE_DONE)
		stop = store_fail(s, "gc");
	sqlite3_finalize(st);
	return stop;
}

/* The deletions of store_gc(), inside its transaction. */
static int
store_gc_run(struct store *s, struct store_gc *g, store_run_cb cb,
    void *arg)
{
	int64_t *counts[] = { &g->events, &g->tasks, &g->runs };
	size_t i;

	if (store_gc_steps(s, store_gc_select, nitems(store_gc_select),
	    g) != 0 ||
	    store_gc_step(s, store_gc_live, g, NULL, &g->kept_live,
	    NULL) != 0 ||
	    store_gc_step(s, store_gc_unlive, g, NULL, NULL, NULL) != 0)
		return -1;
	if (cb != NULL && store_gc_walk(s, cb, arg) != 0)
		return -1;
	for (i = 0; i < nitems(store_gc_delete); i++)
		if (store_gc_step(s, store_gc_delete[i], g, counts[i], NULL,
		    NULL) != 0)
			return -1;
	if (store_gc_steps(s, store_gc_keep, nitems(store_gc_keep), g) != 0 ||
	    store_gc_step(s, store_gc_blobs, g, NULL, &g->blobs,
	    &g->blob_bytes) != 0 ||
	    store_gc_step(s, store_gc_unblob, g, NULL, NULL, NULL) != 0)
		return -1;
	return store_gc_steps(s, store_gc_cleanup, nitems(store_gc_cleanup),
	    g);
}

int
store_gc(struct store *s, struct store_gc *g, store_run_cb cb, void *arg)
{
	int failed;

	g->runs = g->events = g->tasks = g->blobs = g->blob_bytes = 0;
	g->kept_live = 0;
	if (store_commit(s) != 0 || store_begin(s) != 0)
		return -1;
	failed = store_gc_run(s, g, cb, arg) != 0;
	if (!failed && !g->dry_run)
		return store_commit(s);
	if (sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK &&
	    !failed)
		return store_fail(s, "cannot roll back");
	return failed ? -1 : 0;
}

int
store_vacuum(struct store *s)
{
	if (store_commit(s) != 0)
		return -1;
	if (sqlite3_exec(s->db, "VACUUM", NULL, NULL, NULL) != SQLITE_OK)
		return store_fail(s, "cannot vacuum");
	if (sqlite3_exec(s->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL,
	    NULL) != SQLITE_OK)
		return store_fail(s, "cannot checkpoint");
	return 0;
}
