/*
 * store_open.c: opening the trajectory store: creating a new file (mode
 * 0600, auto_vacuum=incremental), switching it to WAL, migrating its
 * schema forward, and the read-only open of a store this user cannot
 * write.  Many processes may open one store at once, a new one too: no
 * lock is taken unless the schema must change, and the one step SQLite
 * does not wait for (the switch to WAL) is tried again.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "engine/store.h"
#include "engine/store_int.h"
#include "runtime/util.h"

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
	/* 1 -> 2: a large input as a blob; weft gc's bookkeeping
	   (engine/store_gc.c). */
	"ALTER TABLE runs ADD COLUMN input_blob TEXT;"
	"CREATE INDEX runs_parent ON runs (parent_run);"
	"CREATE TABLE gc_state ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  pid INTEGER,"
	"  owner TEXT,"
	"  started REAL"
	");"
	"CREATE TABLE gc_touched (hash TEXT PRIMARY KEY) WITHOUT ROWID;"
	"CREATE TABLE gc_pending (run_id TEXT PRIMARY KEY) WITHOUT ROWID;",
	/* 2 -> 3: approvals (engine/store_approval.c) */
	"CREATE TABLE approvals ("
	"  run_id TEXT NOT NULL,"
	"  path TEXT NOT NULL,"
	"  call INTEGER NOT NULL,"
	"  prompt TEXT,"
	"  schema TEXT,"
	"  on_timeout TEXT,"
	"  deadline REAL,"
	"  waited REAL,"
	"  status TEXT NOT NULL,"
	"  answer TEXT,"
	"  answered REAL,"
	"  PRIMARY KEY (run_id, path, call)"
	") WITHOUT ROWID;",
	/* 3 -> 4: weft cancel's requests to the server of a served run
	   (engine/store_cancel.c). */
	"CREATE TABLE cancel_requests ("
	"  run_id TEXT PRIMARY KEY NOT NULL,"
	"  reason TEXT,"
	"  requested REAL"
	") WITHOUT ROWID;",
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

int
store_fail(struct store *s, const char *what)
{
	char reason[512];

	s->code = sqlite3_extended_errcode(s->db);
	store_db_reason(s->db, s->path, reason, sizeof reason);
	errf(s->err, sizeof s->err, "%s: %s", what, reason);
	return -1;
}

/* Run a statement that returns no rows, or the first row's column 0. */
static int
store_exec_text(struct store *s, const char *sql, char *out, size_t outlen)
{
	sqlite3_stmt *st;
	const unsigned char *t;
	int rc;

	if (out != NULL && outlen > 0)
		out[0] = '\0';
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		s->code = sqlite3_extended_errcode(s->db);
		return -1;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && out != NULL) {
		t = sqlite3_column_text(st, 0);
		snprintf(out, outlen, "%s", t != NULL ? (const char *)t : "");
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		s->code = sqlite3_extended_errcode(s->db);
		sqlite3_finalize(st);
		return -1;
	}
	return sqlite3_finalize(st) == SQLITE_OK ? 0 : -1;
}

/* Read PRAGMA user_version. */
static int
store_user_version(struct store *s, int *version)
{
	char buf[32];

	if (store_exec_text(s, "PRAGMA user_version", buf, sizeof buf) != 0)
		return -1;
	*version = atoi(buf);
	return 0;
}

/*
 * Wait for another connection's lock: short sleeps, so that a waiter
 * takes a lock soon after it is given up (SQLite's own handler sleeps
 * up to 100 ms between tries), until STORE_BUSY_SECONDS have passed.
 */
static int
store_busy_cb(void *arg, int count)
{
	struct store *s = arg;
	struct timespec ts;
	double now = now_mono();

	if (count == 0)
		s->busy_start = now;
	if (now - s->busy_start >= STORE_BUSY_SECONDS)
		return 0;
	ts.tv_sec = 0;
	ts.tv_nsec = count < 20 ? 500 * 1000 : 2 * 1000 * 1000;
	nanosleep(&ts, NULL);
	return 1;
}

/*
 * Bring the schema to STORE_SCHEMA_VERSION inside one write transaction,
 * after reading the version again under the lock: of many processes
 * opening a new file at once, one migrates and the others find it done.
 */
static int
store_migrate(struct store *s, char *err, size_t errlen)
{
	char reason[512], *sql;
	int v;

	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK)
		goto fail;
	if (store_user_version(s, &v) != 0)
		goto fail;
	if (v > STORE_SCHEMA_VERSION) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		errf(err, errlen, "database '%s' has schema version %d, newer "
		    "than this weft (%d)", s->path, v, STORE_SCHEMA_VERSION);
		s->code = SQLITE_ERROR;
		return -1;
	}
	for (; v < STORE_SCHEMA_VERSION; v++) {
		if (sqlite3_exec(s->db, store_migrations[v], NULL, NULL,
		    NULL) != SQLITE_OK) {
			s->code = sqlite3_extended_errcode(s->db);
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
	s->code = sqlite3_extended_errcode(s->db);
	store_db_reason(s->db, s->path, reason, sizeof reason);
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	errf(err, errlen, "cannot open database '%s': %s", s->path, reason);
	return -1;
}

/*
 * Set the connection's pragmas and switch the file to WAL.  A new file
 * gets auto_vacuum=incremental first (it can only be set before the first
 * page is written), so weft gc --vacuum can shrink it in small steps.
 * The switch to WAL does not wait for a lock through the busy handler:
 * when processes open a new file together it is tried again, as long as
 * the busy timeout.
 */
static int
store_configure(struct store *s, int version, char *err, size_t errlen)
{
	struct timespec ts = { 0, 2 * 1000 * 1000 };
	char reason[512], mode[32];
	double t0 = now_mono();

	/*
	 * A new file is made without fsync (synchronous = OFF until the
	 * schema is in): eight fsyncs of the header, the journal and the
	 * directory cost more than the rest of a short run.  A crash of the
	 * process loses nothing; a power cut before the first checkpoint
	 * can lose the file, as it can lose its WAL's commits under
	 * synchronous = NORMAL anyway (docs/durability.md).
	 */
	if (version == 0 && (store_exec_text(s, "PRAGMA synchronous = OFF",
	    NULL, 0) != 0 || store_exec_text(s, "PRAGMA auto_vacuum = "
	    "INCREMENTAL", NULL, 0) != 0))
		goto fail;
	while (store_exec_text(s, "PRAGMA journal_mode = WAL", mode,
	    sizeof mode) != 0) {
		if ((s->code & 0xff) != SQLITE_BUSY ||
		    now_mono() - t0 >= STORE_BUSY_SECONDS)
			goto fail;
		nanosleep(&ts, NULL);
	}
	/* In-memory databases (tests) have no WAL and answer "memory". */
	if (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0) {
		errf(err, errlen, "cannot open database '%s': cannot switch "
		    "to WAL (journal mode stays '%s')", s->path, mode);
		s->code = SQLITE_ERROR;
		return -1;
	}
	if (version > 0 && store_exec_text(s, "PRAGMA synchronous = NORMAL",
	    NULL, 0) != 0)
		goto fail;
	return 0;

fail:
	store_db_reason(s->db, s->path, reason, sizeof reason);
	errf(err, errlen, "cannot open database '%s': %s", s->path, reason);
	return -1;
}

/*
 * Create the store's file, mode 0600, if it does not exist, so that it
 * and the -wal and -shm files SQLite makes with its mode are private
 * (runs hold prompts, inputs and tool results).  0, or the errno of a
 * failure that SQLite would meet too (it then says why).
 */
static int
store_create_file(const char *path)
{
	int fd;

	if (*path == '\0' || strcmp(path, ":memory:") == 0)
		return 0;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1)
		return errno == EEXIST ? 0 : errno;
	close(fd);
	return 0;
}

/* Whether an open failing with code (or errno e) is the storage's fault:
   no space, I/O, memory, a lock held too long. */
static int
store_open_storage(int code, int e)
{
	if (e == ENOSPC || e == EDQUOT || e == EIO || e == ENOMEM)
		return 1;
	switch (code & 0xff) {
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_NOMEM:
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_PROTOCOL:
		return 1;
	}
	return 0;
}

/*
 * A "file:" URI for path, read-only, immutable if asked: bytes other than
 * unreserved ones are %-escaped; an absolute path gets an empty authority
 * so that "//x" stays a path.
 */
static char *
store_uri(const char *path, int immutable)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;
	char *uri, *o;

	uri = o = xmalloc(strlen(path) * 3 + 64);
	o += sprintf(o, "file:%s", path[0] == '/' ? "//" : "");
	for (p = (const unsigned char *)path; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("/._~-", *p) != NULL)
			*o++ = (char)*p;
		else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	sprintf(o, "?mode=ro%s", immutable ? "&immutable=1" : "");
	return uri;
}

/*
 * Open path: read-write, creating and migrating it, or (ro) read-only
 * through a URI, creating nothing (ro 2: immutable).
 */
static int
store_open_mode(const char *path, int ro, struct store **out, char *err,
    size_t errlen)
{
	struct store *s;
	char reason[512], *uri = NULL;
	int v, e, rc, flags;

	s = xcalloc(1, sizeof *s);
	s->path = xstrdup(path);
	s->readonly = ro != 0;
	if (!ro && (e = store_create_file(path)) != 0 &&
	    store_open_storage(0, e)) {
		errf(err, errlen, "cannot open database '%s': cannot create "
		    "it (%s)", path, strerror(e));
		store_free(s);
		return STORE_OPEN_STORAGE;
	}
	/*
	 * SQLite opens a file it cannot write read-only instead, and
	 * reading a WAL database makes -wal and -shm files with the file's
	 * mode: a 0400 -shm left behind would refuse every writer after
	 * the file is made writable again.  So refuse before it looks.
	 */
	if (!ro && strcmp(path, ":memory:") != 0 && *path != '\0' &&
	    access(path, F_OK) == 0 && access(path, W_OK) != 0) {
		errf(err, errlen, "cannot open database '%s': %s", path,
		    strerror(errno));
		store_free(s);
		return -1;
	}
	flags = SQLITE_OPEN_NOMUTEX;
	if (ro) {
		uri = store_uri(path, ro == 2);
		flags |= SQLITE_OPEN_READONLY | SQLITE_OPEN_URI;
	} else
		flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	rc = sqlite3_open_v2(ro ? uri : path, &s->db, flags,
	    store_vfs_name());
	free(uri);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_busy_handler(s->db, store_busy_cb, s);

	/* Refuse a newer schema before changing anything in the file. */
	if (store_user_version(s, &v) != 0)
		goto fail;
	if (v > STORE_SCHEMA_VERSION) {
		errf(err, errlen, "database '%s' has schema version %d, newer "
		    "than this weft (%d)", path, v, STORE_SCHEMA_VERSION);
		s->code = SQLITE_ERROR;
		goto out;
	}
	if (ro) {
		if (v == 0) {
			errf(err, errlen, "cannot open database '%s': it "
			    "holds no weft store, and this user cannot write "
			    "it", path);
			s->code = SQLITE_ERROR;
			goto out;
		}
		s->version = v;
		*out = s;
		return 0;
	}
	if (sqlite3_db_readonly(s->db, "main") == 1) {
		if ((e = store_path_errno(path)) == 0)
			e = EACCES;
		errf(err, errlen, "cannot open database '%s': %s", path,
		    strerror(e));
		s->code = SQLITE_READONLY;
		goto out;
	}
	if (store_configure(s, v, err, errlen) != 0 ||
	    (v < STORE_SCHEMA_VERSION && store_migrate(s, err, errlen) != 0))
		goto out;
	if (v == 0 && store_exec_text(s, "PRAGMA synchronous = NORMAL", NULL,
	    0) != 0) {
		store_db_reason(s->db, s->path, reason, sizeof reason);
		errf(err, errlen, "cannot open database '%s': %s", path,
		    reason);
		goto out;
	}
	s->version = STORE_SCHEMA_VERSION;
	*out = s;
	return 0;

fail:
	s->code = s->db != NULL ? sqlite3_extended_errcode(s->db) :
	    SQLITE_NOMEM;
	store_db_reason(s->db, ro ? NULL : s->path, reason, sizeof reason);
	errf(err, errlen, "cannot open database '%s': %s", path, reason);
out:
	rc = store_open_storage(s->code, 0) ? STORE_OPEN_STORAGE : -1;
	store_free(s);
	return rc;
}

int
store_open(const char *path, struct store **out, char *err, size_t errlen)
{
	return store_open_mode(path, 0, out, err, errlen);
}

/* Whether this process may write the file at path, or it can be made. */
static int
store_may_write(const char *path)
{
	const char *sfx[] = { "-wal", "-shm" };
	char *side;
	size_t i;
	int ok = 1;

	if (access(path, F_OK) != 0)
		return 1;
	if (store_path_errno(path) != 0)
		return 0;
	for (i = 0; ok && i < nitems(sfx); i++) {
		side = xasprintf("%s%s", path, sfx[i]);
		if (access(side, F_OK) == 0 && access(side, R_OK | W_OK) != 0)
			ok = 0;
		free(side);
	}
	return ok;
}

int
store_open_read(const char *path, struct store **out, char *err,
    size_t errlen)
{
	char *wal;
	int rc, logged;

	if (*path == '\0' || strcmp(path, ":memory:") == 0 ||
	    store_may_write(path))
		return store_open(path, out, err, errlen);
	/*
	 * A write-ahead log with data in it is part of the store: read it
	 * through the -shm file (which must exist and be readable).
	 * Without one the file alone is the store, read as immutable: no
	 * lock, no -shm, nothing created next to it.
	 */
	wal = xasprintf("%s-wal", path);
	logged = store_file_size(wal) > 0;
	if (logged && access(wal, R_OK) != 0) {
		errf(err, errlen, "cannot open database '%s' read-only: its "
		    "write-ahead log '%s' holds data this user cannot read "
		    "(%s)", path, wal, strerror(errno));
		free(wal);
		return -1;
	}
	rc = store_open_mode(path, logged ? 1 : 2, out, err, errlen);
	if (rc != 0 && logged) {
		size_t n = strlen(err);

		errf(err + n, errlen - n, " (the store cannot be written by "
		    "this user and its write-ahead log '%s' holds data: "
		    "reading it needs '%s-shm')", wal, path);
	}
	free(wal);
	return rc;
}

int64_t
store_file_size(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? (int64_t)sb.st_size : 0;
}
