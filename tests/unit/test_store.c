/* test_store.c: unit tests for the trajectory store (engine/store*.c). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "engine/store.h"
#include "runtime/util.h"

struct fixture {
	char		 dir[64];
	char		 path[128];
	struct store	*st;
};

/* Make a private directory and a database path inside it. */
static int
setup(void **state)
{
	struct fixture *f;

	f = xcalloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/weft-test-store-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof f->path, "%s/weft.db", f->dir);
	*state = f;
	return 0;
}

/* Remove a directory tree (files and one level of subdirectories). */
static void
rm_tree(const char *dir)
{
	struct dirent *de;
	struct stat sb;
	char path[512];
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
			chmod(path, 0700);
			rm_tree(path);
		} else
			unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

/* Close the store if a test left it open and remove the directory. */
static int
teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->st);
	rm_tree(f->dir);
	free(f);
	return 0;
}

/* Open the fixture's store, failing the test on error. */
static struct store *
open_store(struct fixture *f)
{
	char err[1024];

	err[0] = '\0';
	if (store_open(f->path, &f->st, err, sizeof err) != 0)
		fail_msg("store_open: %s", err);
	return f->st;
}

/* Close and reopen the fixture's store. */
static struct store *
reopen_store(struct fixture *f)
{
	store_close(f->st);
	f->st = NULL;
	return open_store(f);
}

/* Run sql on a separate raw connection and return column 0 of row 1. */
static int64_t
raw_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t v = -1;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* Run statements on a separate raw connection. */
static void
raw_exec(const char *path, const char *sql)
{
	sqlite3 *db;
	char *msg = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
	sqlite3_close(db);
}

/* A run row with the given id and start time. */
static struct store_run
mk_run(const char *id, double started)
{
	struct store_run r;

	memset(&r, 0, sizeof r);
	r.id = id;
	r.workflow = "essay.lua";
	r.workflow_hash = "abcd";
	r.input = "{\"topic\":\"x\"}";
	r.status = "running";
	r.started = started;
	return r;
}

/* An event of run_id with the given seq. */
static struct store_event
mk_event(const char *run_id, int64_t seq, const char *payload)
{
	struct store_event ev;

	memset(&ev, 0, sizeof ev);
	ev.run_id = run_id;
	ev.seq = seq;
	ev.span_id = seq * 10;
	ev.parent_span = 1;
	ev.node_path = "essay/research";
	ev.kind = "tool.call";
	ev.attempt = 1;
	ev.time = 1700000000.5;
	ev.payload = payload;
	ev.tokens = 7;
	ev.cost = 0.25;
	return ev;
}

struct seen {
	int	 n;
	int64_t	 seq[16];
	char	 ids[16][32];
	char	 payload[16][64];
	int	 null_payload[16];
	int	 stop_after;
	struct store *st;
	int	 nested;
};

/* Record an event's seq and payload. */
static int
event_cb(void *arg, const struct store_event *ev)
{
	struct seen *s = arg;

	assert_true(s->n < 16);
	s->seq[s->n] = ev->seq;
	s->null_payload[s->n] = ev->payload == NULL;
	snprintf(s->payload[s->n], sizeof s->payload[0], "%s",
	    ev->payload != NULL ? ev->payload : "");
	assert_string_equal(ev->kind, "tool.call");
	assert_string_equal(ev->node_path, "essay/research");
	assert_int_equal(ev->span_id, ev->seq * 10);
	assert_int_equal(ev->tokens, 7);
	s->n++;
	return 0;
}

/* Record a run's id; stop after stop_after runs when it is set. */
static int
run_cb(void *arg, const struct store_run *r)
{
	struct seen *s = arg;

	assert_true(s->n < 16);
	snprintf(s->ids[s->n], sizeof s->ids[0], "%s", r->id);
	s->n++;
	if (s->stop_after > 0 && s->n >= s->stop_after)
		return 42;
	return 0;
}

static void
test_store_open_creates_schema_in_wal_mode(void **state)
{
	struct fixture *f = *state;

	open_store(f);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"),
	    STORE_SCHEMA_VERSION);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM "
	    "sqlite_master WHERE type = 'table' AND name IN ('runs', "
	    "'events', 'tasks', 'blobs')"), 4);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM "
	    "sqlite_master WHERE type = 'index' AND tbl_name = 'runs' AND "
	    "sql LIKE '%started%'"), 1);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM "
	    "pragma_journal_mode WHERE journal_mode = 'wal'"), 1);
}

static void
test_store_open_unwritable_path_fails_with_path_in_message(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	char path[256], sub[192], err[1024];

	/* The directory does not exist. */
	snprintf(path, sizeof path, "%s/missing/weft.db", f->dir);
	assert_int_equal(store_open(path, &st, err, sizeof err), -1);
	assert_null(st);
	assert_non_null(strstr(err, "cannot open database '"));
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "No such file or directory"));

	/* The path is a directory. */
	assert_int_equal(store_open(f->dir, &st, err, sizeof err), -1);
	assert_null(st);
	assert_non_null(strstr(err, "cannot open database '"));
	assert_non_null(strstr(err, f->dir));
	assert_non_null(strstr(err, "Is a directory"));

	/* A read-only directory: root ignores modes, so only as a user. */
	if (geteuid() == 0)
		return;
	snprintf(sub, sizeof sub, "%s/ro", f->dir);
	assert_int_equal(mkdir(sub, 0500), 0);
	snprintf(path, sizeof path, "%s/weft.db", sub);
	assert_int_equal(store_open(path, &st, err, sizeof err), -1);
	assert_null(st);
	assert_non_null(strstr(err, "cannot open database '"));
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "Permission denied"));
}

static void
test_store_open_read_only_file_fails(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	char err[1024];

	if (geteuid() == 0)
		skip();
	open_store(f);
	store_close(f->st);
	f->st = NULL;
	assert_int_equal(chmod(f->path, 0400), 0);
	assert_int_equal(store_open(f->path, &st, err, sizeof err), -1);
	assert_null(st);
	assert_non_null(strstr(err, "cannot open database '"));
	assert_non_null(strstr(err, f->path));
	assert_non_null(strstr(err, "Permission denied"));
}

static void
test_store_open_garbage_file_fails(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	char err[1024];
	FILE *fp;
	int i;

	assert_non_null(fp = fopen(f->path, "w"));
	for (i = 0; i < 512; i++)
		fputs("this is not a database ", fp);
	fclose(fp);
	assert_int_equal(store_open(f->path, &st, err, sizeof err), -1);
	assert_null(st);
	assert_non_null(strstr(err, "cannot open database '"));
	assert_non_null(strstr(err, "not a database"));
}

static void
test_store_refuses_newer_schema(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	char err[1024], want[512];

	raw_exec(f->path, "CREATE TABLE future (x); "
	    "PRAGMA user_version = 99;");
	assert_int_equal(store_open(f->path, &st, err, sizeof err), -1);
	assert_null(st);
	snprintf(want, sizeof want, "database '%s' has schema version 99, "
	    "newer than this weft (%d)", f->path, STORE_SCHEMA_VERSION);
	assert_string_equal(err, want);
	/* Nothing was changed in the file. */
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 99);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM "
	    "sqlite_master WHERE name = 'runs'"), 0);
}

static void
test_store_migrates_v0_db(void **state)
{
	struct fixture *f = *state;
	struct store_event ev;
	struct store *st;

	/* A version 0 file: unversioned, with a table of someone else's. */
	raw_exec(f->path, "CREATE TABLE notes (t TEXT); "
	    "INSERT INTO notes VALUES ('keep me');");
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 0);
	st = open_store(f);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"),
	    STORE_SCHEMA_VERSION);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM notes"), 1);
	ev = mk_event("r1", 1, NULL);
	assert_int_equal(store_event_append(st, &ev), 0);
	assert_int_equal(store_commit(st), 0);
	/* Reopening a current database migrates nothing and keeps data. */
	st = reopen_store(f);
	assert_int_equal(store_event_count(st, "r1"), 1);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"),
	    STORE_SCHEMA_VERSION);
}

static void
test_store_events_survive_reopen(void **state)
{
	struct fixture *f = *state;
	struct store_event ev;
	struct store *st;
	struct seen s;
	char payload[64];
	int i;

	st = open_store(f);
	assert_int_equal(store_begin(st), 0);
	for (i = 1; i <= 10; i++) {
		snprintf(payload, sizeof payload, "{\"i\":%d}", i);
		ev = mk_event("run-a", i, i == 5 ? NULL : payload);
		assert_int_equal(store_event_append(st, &ev), 0);
	}
	assert_int_equal(store_commit(st), 0);
	st = reopen_store(f);
	assert_int_equal(store_event_count(st, "run-a"), 10);
	assert_int_equal(store_event_count(st, "run-b"), 0);
	memset(&s, 0, sizeof s);
	assert_int_equal(store_events_foreach(st, "run-a", event_cb, &s), 0);
	assert_int_equal(s.n, 10);
	for (i = 0; i < 10; i++) {
		assert_int_equal(s.seq[i], i + 1);
		if (i + 1 == 5) {
			assert_true(s.null_payload[i]);
			continue;
		}
		snprintf(payload, sizeof payload, "{\"i\":%d}", i + 1);
		assert_string_equal(s.payload[i], payload);
	}
}

static void
test_store_events_foreach_in_seq_order(void **state)
{
	struct fixture *f = *state;
	struct store_event ev;
	struct store *st;
	struct seen s;
	int64_t order[] = { 3, 1, 4, 2 };
	size_t i;

	st = open_store(f);
	for (i = 0; i < nitems(order); i++) {
		ev = mk_event("r", order[i], "{}");
		assert_int_equal(store_event_append(st, &ev), 0);
	}
	ev = mk_event("other", 1, "{}");
	assert_int_equal(store_event_append(st, &ev), 0);
	memset(&s, 0, sizeof s);
	assert_int_equal(store_events_foreach(st, "r", event_cb, &s), 0);
	assert_int_equal(s.n, 4);
	for (i = 0; i < 4; i++)
		assert_int_equal(s.seq[i], (int64_t)i + 1);
}

static void
test_store_event_duplicate_seq_fails(void **state)
{
	struct fixture *f = *state;
	struct store_event ev;
	struct store *st;

	st = open_store(f);
	ev = mk_event("dup", 1, "{}");
	assert_int_equal(store_event_append(st, &ev), 0);
	assert_int_equal(store_event_append(st, &ev), -1);
	assert_non_null(strstr(store_error(st), "cannot append event 1 of "
	    "run 'dup'"));
	assert_non_null(strstr(store_error(st), "UNIQUE"));
	/* The batch survives the failed statement. */
	ev.seq = 2;
	assert_int_equal(store_event_append(st, &ev), 0);
	assert_int_equal(store_commit(st), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events"), 2);
}

static void
test_store_batch_commit_visible_to_second_connection(void **state)
{
	struct fixture *f = *state;
	struct store_event ev;
	struct store_task t;
	struct store *st;
	char hash[65];
	int i;

	st = open_store(f);
	assert_int_equal(store_begin(st), 0);
	for (i = 1; i <= 100; i++) {
		ev = mk_event("batch", i, "{\"k\":1}");
		assert_int_equal(store_event_append(st, &ev), 0);
	}
	memset(&t, 0, sizeof t);
	t.run_id = "batch";
	t.task_id = "1";
	t.kind = "mcp.call";
	t.state = "queued";
	t.worker = -1;
	assert_int_equal(store_task_put(st, &t), 0);
	assert_int_equal(store_blob_put(st, "bytes", 5, hash), 0);

	/* The store's own reads see the open batch; others do not. */
	assert_int_equal(store_event_count(st, "batch"), 100);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events"), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tasks"), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM blobs"), 0);

	assert_int_equal(store_commit(st), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events"), 100);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tasks"), 1);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM blobs"), 1);
	/* Committing with nothing open is a no-op. */
	assert_int_equal(store_commit(st), 0);
}

static void
test_store_begin_is_idempotent(void **state)
{
	struct fixture *f = *state;
	struct store_event ev;
	struct store *st;

	st = open_store(f);
	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_begin(st), 0);
	ev = mk_event("r", 1, NULL);
	assert_int_equal(store_event_append(st, &ev), 0);
	assert_int_equal(store_begin(st), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events"), 0);
	assert_int_equal(store_commit(st), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events"), 1);
}

static void
test_store_close_commits_open_batch(void **state)
{
	struct fixture *f = *state;
	struct store_event ev;
	struct store *st;

	st = open_store(f);
	ev = mk_event("r", 1, NULL);
	assert_int_equal(store_event_append(st, &ev), 0);
	store_close(st);
	f->st = NULL;
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events"), 1);
}

static void
test_store_run_create_autocommits_outside_batch(void **state)
{
	struct fixture *f = *state;
	struct store_run r;
	struct store_event ev;
	struct store *st;

	st = open_store(f);
	r = mk_run("solo", 1.0);
	assert_int_equal(store_run_create(st, &r), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM runs"), 1);

	/* With a batch open, it joins the batch. */
	ev = mk_event("solo", 1, NULL);
	assert_int_equal(store_event_append(st, &ev), 0);
	r = mk_run("batched", 2.0);
	assert_int_equal(store_run_create(st, &r), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM runs"), 1);
	assert_int_equal(store_commit(st), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM runs"), 2);

	/* A duplicate id fails and says which run. */
	assert_int_equal(store_run_create(st, &r), -1);
	assert_non_null(strstr(store_error(st), "cannot create run "
	    "'batched'"));
}

struct run_copy {
	char	 status[32];
	char	 output[64];
	char	 error[64];
	char	 spend[64];
	int	 null_budget;
	int	 null_parent;
	double	 started;
	double	 ended;
	int64_t	 steps;
	int64_t	 tokens;
	double	 cost;
	int	 calls;
};

/* Copy the fields run_finish sets. */
static int
run_copy_cb(void *arg, const struct store_run *r)
{
	struct run_copy *c = arg;

	snprintf(c->status, sizeof c->status, "%s", r->status);
	snprintf(c->output, sizeof c->output, "%s",
	    r->output ? r->output : "(null)");
	snprintf(c->error, sizeof c->error, "%s",
	    r->error ? r->error : "(null)");
	snprintf(c->spend, sizeof c->spend, "%s",
	    r->spend ? r->spend : "(null)");
	c->null_budget = r->budget == NULL;
	c->null_parent = r->parent_run == NULL;
	c->started = r->started;
	c->ended = r->ended;
	c->steps = r->steps;
	c->tokens = r->tokens;
	c->cost = r->cost;
	c->calls++;
	return 0;
}

struct input_tail {
	size_t	 len;
	char	 tail[8];
};

/* Note the length and the last 6 bytes of a run's input. */
static int
input_copy_cb(void *arg, const struct store_run *r)
{
	struct input_tail *c = arg;

	c->len = strlen(r->input);
	snprintf(c->tail, sizeof c->tail, "%s", r->input + c->len - 6);
	return 0;
}

static void
test_store_run_finish_updates_run(void **state)
{
	struct fixture *f = *state;
	struct run_copy c;
	struct store_run r;
	struct store *st;

	st = open_store(f);
	r = mk_run("fin", 5.0);
	assert_int_equal(store_run_create(st, &r), 0);
	memset(&c, 0, sizeof c);
	assert_int_equal(store_run_find(st, "fin", run_copy_cb, &c), 0);
	assert_string_equal(c.status, "running");
	assert_string_equal(c.output, "(null)");
	assert_true(c.null_budget);
	assert_true(c.null_parent);

	r.status = "succeeded";
	r.output = "\"done\"";
	r.spend = "{\"tokens\":12}";
	r.ended = 9.5;
	r.steps = 3;
	r.tokens = 12;
	r.cost = 0.125;
	assert_int_equal(store_run_finish(st, &r), 0);
	st = reopen_store(f);
	memset(&c, 0, sizeof c);
	assert_int_equal(store_run_find(st, "fin", run_copy_cb, &c), 0);
	assert_int_equal(c.calls, 1);
	assert_string_equal(c.status, "succeeded");
	assert_string_equal(c.output, "\"done\"");
	assert_string_equal(c.error, "(null)");
	assert_string_equal(c.spend, "{\"tokens\":12}");
	assert_true(c.started == 5.0);
	assert_true(c.ended == 9.5);
	assert_int_equal(c.steps, 3);
	assert_int_equal(c.tokens, 12);
	assert_true(c.cost == 0.125);

	r.id = "nope";
	assert_int_equal(store_run_finish(st, &r), -1);
	assert_string_equal(store_error(st), "no run 'nope'");
}

/* Create runs with the given ids, started 1, 2, 3 ... in order. */
static void
create_runs(struct store *st, const char **ids, size_t n)
{
	struct store_run r;
	size_t i;

	for (i = 0; i < n; i++) {
		r = mk_run(ids[i], (double)(i + 1));
		assert_int_equal(store_run_create(st, &r), 0);
	}
}

static void
test_store_run_find_by_unique_prefix(void **state)
{
	struct fixture *f = *state;
	const char *ids[] = { "a1b2c3", "a1ffee", "b00000", "b0" };
	struct store *st;
	struct seen s;

	st = open_store(f);
	create_runs(st, ids, nitems(ids));
	memset(&s, 0, sizeof s);
	assert_int_equal(store_run_find(st, "a1b", run_cb, &s), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.ids[0], "a1b2c3");

	/* An exact id wins over the longer ids it prefixes. */
	memset(&s, 0, sizeof s);
	assert_int_equal(store_run_find(st, "b0", run_cb, &s), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.ids[0], "b0");

	memset(&s, 0, sizeof s);
	assert_int_equal(store_run_find(st, "b000", run_cb, &s), 0);
	assert_string_equal(s.ids[0], "b00000");

	/* The callback's return comes back. */
	memset(&s, 0, sizeof s);
	s.stop_after = 1;
	assert_int_equal(store_run_find(st, "a1f", run_cb, &s), 42);
}

static void
test_store_run_prefix_ambiguous(void **state)
{
	struct fixture *f = *state;
	const char *ids[] = { "a1b2c3", "a1ffee", "a2" };
	struct store *st;
	struct seen s;

	st = open_store(f);
	create_runs(st, ids, nitems(ids));
	memset(&s, 0, sizeof s);
	assert_int_equal(store_run_find(st, "a1", run_cb, &s), -1);
	assert_int_equal(s.n, 0);
	assert_string_equal(store_error(st), "run prefix 'a1' is ambiguous");
}

static void
test_store_run_find_missing(void **state)
{
	struct fixture *f = *state;
	const char *ids[] = { "a1b2c3", "zz" };
	struct store *st;
	struct seen s;

	st = open_store(f);
	create_runs(st, ids, nitems(ids));
	memset(&s, 0, sizeof s);
	assert_int_equal(store_run_find(st, "a1c", run_cb, &s), -1);
	assert_string_equal(store_error(st), "no run 'a1c'");
	/* LIKE wildcards are not wildcards here. */
	assert_int_equal(store_run_find(st, "a1%", run_cb, &s), -1);
	assert_string_equal(store_error(st), "no run 'a1%'");
	assert_int_equal(store_run_find(st, "a_", run_cb, &s), -1);
	assert_int_equal(store_run_find(st, "", run_cb, &s), -1);
	assert_string_equal(store_error(st), "no run ''");
	/* A prefix past 'z' has an upper bound; "\xff" has none. */
	assert_int_equal(store_run_find(st, "z", run_cb, &s), 0);
	assert_int_equal(store_run_find(st, "\xff", run_cb, &s), -1);
	assert_int_equal(s.n, 1);
}

static void
test_store_runs_list_newest_first(void **state)
{
	struct fixture *f = *state;
	const char *ids[] = { "old", "mid", "new" };
	struct store *st;
	struct seen s;

	st = open_store(f);
	create_runs(st, ids, nitems(ids));
	memset(&s, 0, sizeof s);
	assert_int_equal(store_runs_list(st, 0, run_cb, &s), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.ids[0], "new");
	assert_string_equal(s.ids[1], "mid");
	assert_string_equal(s.ids[2], "old");

	memset(&s, 0, sizeof s);
	assert_int_equal(store_runs_list(st, 2, run_cb, &s), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.ids[1], "mid");

	memset(&s, 0, sizeof s);
	s.stop_after = 1;
	assert_int_equal(store_runs_list(st, -1, run_cb, &s), 42);
	assert_int_equal(s.n, 1);
}

static void
test_store_task_put_replaces_row(void **state)
{
	struct fixture *f = *state;
	struct store_task t;
	struct store *st;

	st = open_store(f);
	memset(&t, 0, sizeof t);
	t.run_id = "r";
	t.task_id = "7";
	t.node_path = "a/b";
	t.kind = "mcp.call";
	t.state = "queued";
	t.worker = -1;
	t.idem_key = "r:7";
	assert_int_equal(store_task_put(st, &t), 0);
	t.state = "leased";
	t.worker = 3;
	t.attempt = 2;
	t.lease_until = 1234.5;
	assert_int_equal(store_task_put(st, &t), 0);
	t.task_id = "8";
	assert_int_equal(store_task_put(st, &t), 0);
	assert_int_equal(store_commit(st), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tasks"), 2);
	assert_int_equal(raw_int(f->path, "SELECT worker FROM tasks WHERE "
	    "task_id = '7' AND state = 'leased' AND attempt = 2 AND "
	    "lease_until = 1234.5 AND idem_key = 'r:7'"), 3);
}

static void
test_store_blob_dedup(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	char h1[65], h2[65], h3[65], want[65];
	const char *text = "a long conversation";
	void *data;
	size_t len;

	st = open_store(f);
	assert_int_equal(store_blob_put(st, text, strlen(text), h1), 0);
	assert_int_equal(store_blob_put(st, text, strlen(text), h2), 0);
	sha256_hex(text, strlen(text), want);
	assert_string_equal(h1, want);
	assert_string_equal(h1, h2);
	assert_int_equal(store_blob_put(st, "other", 5, h3), 0);
	assert_string_not_equal(h1, h3);
	assert_int_equal(store_commit(st), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM blobs"), 2);

	st = reopen_store(f);
	assert_int_equal(store_blob_get(st, h1, &data, &len), 0);
	assert_int_equal(len, strlen(text));
	assert_memory_equal(data, text, len);
	free(data);
}

static void
test_store_blob_empty_and_binary(void **state)
{
	struct fixture *f = *state;
	unsigned char bin[300];
	struct store *st;
	char h[65], missing[65];
	void *data;
	size_t i, len;

	st = open_store(f);
	assert_int_equal(store_blob_put(st, NULL, 0, h), 0);
	assert_int_equal(store_blob_get(st, h, &data, &len), 0);
	assert_int_equal(len, 0);
	free(data);

	for (i = 0; i < sizeof bin; i++)
		bin[i] = (unsigned char)(i * 7);
	assert_int_equal(store_blob_put(st, bin, sizeof bin, h), 0);
	assert_int_equal(store_blob_get(st, h, &data, &len), 0);
	assert_int_equal(len, sizeof bin);
	assert_memory_equal(data, bin, sizeof bin);
	free(data);

	memset(missing, '0', 64);
	missing[64] = '\0';
	data = NULL;
	assert_int_equal(store_blob_get(st, missing, &data, &len), -1);
	assert_null(data);
	assert_non_null(strstr(store_error(st), "no blob"));
}

/* From inside a walk, run the same walk and a lookup again. */
static int
reenter_cb(void *arg, const struct store_event *ev)
{
	struct seen *s = arg;
	struct seen inner;
	struct store_event more;

	s->n++;
	if (s->nested)
		return 0;
	memset(&inner, 0, sizeof inner);
	inner.nested = 1;
	assert_int_equal(store_events_foreach(s->st, "re", reenter_cb,
	    &inner), 0);
	assert_int_equal(inner.n, 2);
	assert_int_equal(store_event_count(s->st, "re"), 2);
	more = mk_event("elsewhere", ev->seq, NULL);
	assert_int_equal(store_event_append(s->st, &more), 0);
	return 0;
}

static void
test_store_callbacks_may_reenter_store(void **state)
{
	struct fixture *f = *state;
	struct store_event ev;
	struct store *st;
	struct seen s;
	int i;

	st = open_store(f);
	for (i = 1; i <= 2; i++) {
		ev = mk_event("re", i, NULL);
		assert_int_equal(store_event_append(st, &ev), 0);
	}
	assert_int_equal(store_commit(st), 0);
	memset(&s, 0, sizeof s);
	s.st = st;
	assert_int_equal(store_events_foreach(st, "re", reenter_cb, &s), 0);
	assert_int_equal(s.n, 2);
	assert_int_equal(store_commit(st), 0);
	assert_int_equal(store_event_count(st, "elsewhere"), 2);
}

static void
test_store_many_events_in_batches(void **state)
{
	struct fixture *f = *state;
	struct store_event ev;
	struct store *st;
	int i;

	st = open_store(f);
	for (i = 1; i <= 20000; i++) {
		ev = mk_event("big", i, "{\"role\":\"assistant\"}");
		assert_int_equal(store_event_append(st, &ev), 0);
		if (i % 1000 == 0)
			assert_int_equal(store_commit(st), 0);
	}
	st = reopen_store(f);
	assert_int_equal(store_event_count(st, "big"), 20000);
}


/* Whether a second connection can take the write lock now (no wait). */
static int
raw_can_write(const char *path)
{
	sqlite3 *db;
	int rc;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE,
	    NULL), SQLITE_OK);
	rc = sqlite3_exec(db, "BEGIN IMMEDIATE; INSERT INTO events (run_id, "
	    "seq, kind) VALUES ('raw', (SELECT count(*) FROM events WHERE "
	    "run_id = 'raw') + 1, 'x'); COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	return rc == SQLITE_OK;
}

static void
test_store_appends_hold_no_lock(void **state)
{
	struct fixture *f = *state;
	struct store_event ev;
	struct store_task t;
	struct store *st;
	char hash[65];

	st = open_store(f);
	ev = mk_event("r", 1, "{}");
	assert_int_equal(store_event_append(st, &ev), 0);
	memset(&t, 0, sizeof t);
	t.run_id = "r";
	t.task_id = "1";
	assert_int_equal(store_task_put(st, &t), 0);
	assert_int_equal(store_blob_put(st, "b", 1, hash), 0);
	/* The batch waits in memory: another process writes meanwhile. */
	assert_true(raw_can_write(f->path));
	assert_int_equal(store_commit(st), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events"), 2);
	/* store_begin takes the lock until the commit. */
	assert_int_equal(store_begin(st), 0);
	assert_false(raw_can_write(f->path));
	assert_int_equal(store_commit(st), 0);
	assert_true(raw_can_write(f->path));
}

static void
test_store_pending_reads(void **state)
{
	struct fixture *f = *state;
	struct store_event ev;
	struct store *st;
	struct seen s;
	char hash[65];
	void *data;
	size_t len;

	st = open_store(f);
	ev = mk_event("p", 1, "{\"n\":1}");
	assert_int_equal(store_event_append(st, &ev), 0);
	assert_int_equal(store_commit(st), 0);
	ev = mk_event("p", 2, "{\"n\":2}");
	assert_int_equal(store_event_append(st, &ev), 0);
	assert_int_equal(store_blob_put(st, "pending bytes", 13, hash), 0);
	/* Recorded and pending events come in seq order; blobs read back. */
	memset(&s, 0, sizeof s);
	assert_int_equal(store_events_foreach(st, "p", event_cb, &s), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.payload[1], "{\"n\":2}");
	assert_int_equal(store_event_count(st, "p"), 2);
	assert_int_equal(store_blob_get(st, hash, &data, &len), 0);
	assert_int_equal(len, 13);
	assert_memory_equal(data, "pending bytes", 13);
	free(data);
	/* A seq already recorded is refused at once. */
	ev = mk_event("p", 1, "{}");
	assert_int_equal(store_event_append(st, &ev), -1);
	assert_non_null(strstr(store_error(st), "UNIQUE"));
	assert_int_equal(store_commit(st), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events"), 2);
}

static void
test_store_new_file_is_private_and_incremental(void **state)
{
	struct fixture *f = *state;
	struct stat sb;

	umask(022);
	open_store(f);
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(raw_int(f->path, "PRAGMA auto_vacuum"), 2);
}

static void
test_store_large_input_is_one_blob(void **state)
{
	struct fixture *f = *state;
	struct input_tail c;
	struct store_run r;
	struct store *st;
	char *input;
	size_t n = STORE_INPUT_INLINE_MAX * 4;

	st = open_store(f);
	input = xmalloc(n + 1);
	memset(input, 'a', n);
	memcpy(input, "{\"k\":\"", 6);
	memcpy(input + n - 6, "zzzz\"}", 6);
	input[n] = '\0';
	r = mk_run("big", 1.0);
	r.input = input;
	assert_int_equal(store_run_create(st, &r), 0);
	r = mk_run("small", 2.0);
	assert_int_equal(store_run_create(st, &r), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM runs WHERE "
	    "input IS NULL AND input_blob IS NOT NULL"), 1);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM blobs"), 1);
	st = reopen_store(f);
	memset(&c, 0, sizeof c);
	assert_int_equal(store_run_find(st, "big", input_copy_cb, &c), 0);
	assert_int_equal(c.len, n);
	assert_string_equal(c.tail, "zzzz\"}");
	free(input);
}

static void
test_store_open_read_of_read_only_file(void **state)
{
	struct fixture *f = *state;
	struct store_event ev;
	struct store *st = NULL;
	char err[1024], side[160];

	if (geteuid() == 0)
		skip();
	open_store(f);
	ev = mk_event("ro", 1, "{}");
	assert_int_equal(store_event_append(f->st, &ev), 0);
	store_close(f->st);
	f->st = NULL;
	assert_int_equal(chmod(f->path, 0400), 0);
	assert_int_equal(store_open_read(f->path, &st, err, sizeof err), 0);
	assert_int_equal(store_event_count(st, "ro"), 1);
	ev = mk_event("ro", 2, "{}");
	assert_int_equal(store_event_append(st, &ev), -1);
	assert_non_null(strstr(store_error(st), "open read-only"));
	store_close(st);
	/* Nothing was made beside it. */
	snprintf(side, sizeof side, "%s-shm", f->path);
	assert_int_not_equal(access(side, F_OK), 0);
	chmod(f->path, 0600);
}

static void
test_store_gc_touch_while_gc_runs(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	char hash[65];

	st = open_store(f);
	raw_exec(f->path, "INSERT INTO gc_state (id, pid, owner, started) "
	    "VALUES (1, 1, 'x', 0)");
	assert_int_equal(store_blob_put(st, "touched", 7, hash), 0);
	assert_int_equal(store_commit(st), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM gc_touched"),
	    1);
	raw_exec(f->path, "DELETE FROM gc_state; DELETE FROM gc_touched");
	assert_int_equal(store_blob_put(st, "not touched", 11, hash), 0);
	assert_int_equal(store_commit(st), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM gc_touched"),
	    0);
}

static void
test_store_big_batch_commits_itself(void **state)
{
	struct fixture *f = *state;
	struct store_event ev;
	struct store *st;
	char *payload;
	size_t n = 1024 * 1024;
	int i;

	st = open_store(f);
	payload = xmalloc(n + 1);
	memset(payload, ' ', n);
	payload[0] = '[';
	payload[n - 1] = ']';
	payload[n] = '\0';
	/* 70 MB of events: past 64 MB the batch is committed at once. */
	for (i = 1; i <= 70; i++) {
		ev = mk_event("huge", i, payload);
		assert_int_equal(store_event_append(st, &ev), 0);
	}
	assert_true(raw_int(f->path, "SELECT count(*) FROM events") >= 64);
	assert_int_equal(store_commit(st), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events"), 70);
	free(payload);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(test_store_open_creates_schema_in_wal_mode),
		T(test_store_open_unwritable_path_fails_with_path_in_message),
		T(test_store_open_read_only_file_fails),
		T(test_store_open_garbage_file_fails),
		T(test_store_refuses_newer_schema),
		T(test_store_migrates_v0_db),
		T(test_store_events_survive_reopen),
		T(test_store_events_foreach_in_seq_order),
		T(test_store_event_duplicate_seq_fails),
		T(test_store_batch_commit_visible_to_second_connection),
		T(test_store_begin_is_idempotent),
		T(test_store_close_commits_open_batch),
		T(test_store_run_create_autocommits_outside_batch),
		T(test_store_run_finish_updates_run),
		T(test_store_run_find_by_unique_prefix),
		T(test_store_run_prefix_ambiguous),
		T(test_store_run_find_missing),
		T(test_store_runs_list_newest_first),
		T(test_store_task_put_replaces_row),
		T(test_store_blob_dedup),
		T(test_store_blob_empty_and_binary),
		T(test_store_callbacks_may_reenter_store),
		T(test_store_many_events_in_batches),
		T(test_store_appends_hold_no_lock),
		T(test_store_pending_reads),
		T(test_store_new_file_is_private_and_incremental),
		T(test_store_large_input_is_one_blob),
		T(test_store_open_read_of_read_only_file),
		T(test_store_gc_touch_while_gc_runs),
		T(test_store_big_batch_commits_itself),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
