/*
 * test_store_vfs.c: the fault-injecting SQLite VFS (engine/store_vfs.c)
 * and the store after a failed write (engine/store.c, store_broken).
 *
 * $WEFT_FAULT is read once per process, so every scenario runs in a child
 * process with its own; the parent only looks at the file afterwards,
 * through SQLite's default VFS.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "engine/store.h"
#include "runtime/util.h"

#define ROUNDS		12	/* event + blob + commit, per child */
#define BLOB_LEN	(64 * 1024)	/* 16 pages: many writes a commit */
#define OPEN_FAILED	50	/* child status: the open failed */

/* A blob whose bytes depend on round i. */
static void
fill_blob(unsigned char *b, int i)
{
	size_t k;

	for (k = 0; k < BLOB_LEN; k++)
		b[k] = (unsigned char)(k * 31 + (size_t)i * 7);
}

/*
 * The child's work: open the store at path, then per round append an
 * event, store a blob and commit, until a write fails.  Then the store
 * must say it is broken (want), refuse later writes with the first
 * failure's message, and close.  Returns the rounds committed, or
 * OPEN_FAILED, or 100 + the number of a failed check.
 */
static int
child_rounds(const char *path, int want)
{
	static unsigned char blob[BLOB_LEN];
	struct store_event ev;
	struct store *st;
	char err[512], hash[65], what[1100];
	int i, done = 0;

	if (store_vfs_name() == NULL)
		return 100;
	if (store_open(path, &st, err, sizeof err) != 0)
		return strstr(err, "cannot open database") != NULL ?
		    OPEN_FAILED : 101;
	memset(&ev, 0, sizeof ev);
	ev.run_id = "r";
	ev.kind = "test";
	ev.payload = "{\"round\":true}";
	for (i = 1; i <= ROUNDS; i++) {
		ev.seq = i;
		fill_blob(blob, i);
		if (store_event_append(st, &ev) != 0 ||
		    store_blob_put(st, blob, BLOB_LEN, hash) != 0 ||
		    store_commit(st) != 0)
			break;
		done = i;
	}
	if (done < ROUNDS) {
		if (store_broken(st, what, sizeof what) != want)
			return 102;
		if (strstr(what, want == STORE_BROKEN_FULL ?
		    "is full (disk full: SQLITE_FULL)" : "I/O error: "
		    "SQLITE_IOERR_") == NULL)
			return 103;
		snprintf(err, sizeof err, "%s", store_error(st));
		ev.seq = 1000;
		if (store_event_append(st, &ev) == 0 || store_commit(st) == 0)
			return 104;
		if (strcmp(err, store_error(st)) != 0)
			return 105;
	} else if (store_broken(st, NULL, 0) != 0)
		return 106;
	store_close(st);
	return done;
}

/* Run child_rounds with WEFT_FAULT=fault in a child; its exit status. */
static int
in_child(const char *fault, const char *path, int want)
{
	pid_t pid;
	int status;

	fflush(NULL);
	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		if (fault != NULL)
			setenv("WEFT_FAULT", fault, 1);
		else
			unsetenv("WEFT_FAULT");
		_exit(child_rounds(path, want));
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* One integer from the database at path, through the default VFS. */
static long long
db_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	long long v = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK) {
		sqlite3_close(db);
		return -1;
	}
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* Whether every blob's bytes hash to its key and fill its size. */
static int
blobs_whole(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char hex[65];
	int ok = 1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT hash, size, data FROM blobs", -1,
	    &st, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return 0;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		sha256_hex(sqlite3_column_blob(st, 2),
		    (size_t)sqlite3_column_bytes(st, 2), hex);
		if (sqlite3_column_int64(st, 1) !=
		    sqlite3_column_bytes(st, 2) ||
		    strcmp(hex, (const char *)sqlite3_column_text(st, 0)) != 0)
			ok = 0;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return ok;
}

/* Integrity check through the default VFS: 1 if "ok". */
static int
db_ok(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int ok = 0;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) ==
	    SQLITE_OK && sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1,
	    &st, NULL) == SQLITE_OK) {
		ok = sqlite3_step(st) == SQLITE_ROW && strcmp((const char *)
		    sqlite3_column_text(st, 0), "ok") == 0;
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return ok;
}

/* Remove the database at path and its WAL files. */
static void
rm_db(const char *path)
{
	char p[256];

	unlink(path);
	snprintf(p, sizeof p, "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", path);
	unlink(p);
}

/*
 * Fail the store's writes at the nth pass of point, for n = 1, 1 + step,
 * ... up to last: each time the store is intact afterwards, holds exactly
 * the rounds whose commit returned 0, every blob whole.  Returns how many
 * n stopped the rounds part way.
 */
static int
sweep(const char *point, int step, int last, int want)
{
	char dir[64], path[128], fault[64];
	int n, rc, partial = 0;

	snprintf(dir, sizeof dir, "/tmp/weft-test-vfs-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/weft.db", dir);
	for (n = 1; n <= last; n += step) {
		rm_db(path);
		snprintf(fault, sizeof fault, "%s:%d", point, n);
		rc = in_child(fault, path, want);
		if (rc != OPEN_FAILED && (rc < 0 || rc > ROUNDS))
			fail_msg("%s: child status %d", fault, rc);
		if (rc == OPEN_FAILED)
			continue;
		if (!db_ok(path))
			fail_msg("%s: integrity_check failed", fault);
		if (db_int(path, "SELECT count(*) FROM events") != rc ||
		    db_int(path, "SELECT count(*) FROM blobs") != rc)
			fail_msg("%s: %d rounds committed, the file holds "
			    "%lld events and %lld blobs", fault, rc,
			    db_int(path, "SELECT count(*) FROM events"),
			    db_int(path, "SELECT count(*) FROM blobs"));
		if (!blobs_whole(path))
			fail_msg("%s: a partial blob", fault);
		if (rc > 0 && rc < ROUNDS)
			partial++;
	}
	rm_db(path);
	rmdir(dir);
	return partial;
}

static void
test_store_vfs_write_error_rolls_back_and_breaks_store(void **state)
{
	(void)state;
	assert_true(sweep("sqlite.write_error", 7, 260,
	    STORE_BROKEN_IO) >= 10);
}

static void
test_store_vfs_full_rolls_back_and_breaks_store(void **state)
{
	(void)state;
	assert_true(sweep("sqlite.full", 7, 260, STORE_BROKEN_FULL) >= 10);
}

/* fsync happens when the WAL starts and at checkpoints: a failure either
   stops the rounds, cleanly, or (at the closing checkpoint) loses nothing. */
static void
test_store_vfs_fsync_error_loses_nothing_committed(void **state)
{
	(void)state;
	sweep("sqlite.fsync_error", 1, 6, STORE_BROKEN_IO);
}

/* Without a sqlite point in $WEFT_FAULT the default VFS is used. */
static void
test_store_vfs_not_registered_without_sqlite_point(void **state)
{
	pid_t pid;
	int status;

	(void)state;
	fflush(NULL);
	assert_true((pid = fork()) != -1);
	if (pid == 0) {
		setenv("WEFT_FAULT", "store.after_commit:99", 1);
		_exit(store_vfs_name() == NULL &&
		    sqlite3_vfs_find("weft-fault") == NULL ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_store_vfs_write_error_rolls_back_and_breaks_store),
		cmocka_unit_test(
		    test_store_vfs_full_rolls_back_and_breaks_store),
		cmocka_unit_test(
		    test_store_vfs_fsync_error_loses_nothing_committed),
		cmocka_unit_test(
		    test_store_vfs_not_registered_without_sqlite_point),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
