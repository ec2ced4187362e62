/*
 * store.h: the trajectory store, SQLite in WAL mode.
 *
 * Schema (DESIGN.md section 8), versioned by PRAGMA user_version and
 * migrated forward at open: runs, events, tasks, blobs.  Writes are
 * batched: store_begin() opens a transaction if none is open, every
 * append goes into it, and store_commit() makes it durable.  The engine
 * commits before it acts on any event it appended (dispatching a task,
 * resuming a node, answering a client), so a crash never loses an event
 * that had an effect.
 *
 * All functions return 0 on success or -1 with a message in the store's
 * error buffer (store_error()).  Strings passed in are copied by SQLite;
 * strings handed to callbacks are valid only during the callback.
 */
#ifndef WEFT_STORE_H
#define WEFT_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 1

struct store;

struct store_run {
	const char	*id;
	const char	*workflow;	/* path as given */
	const char	*workflow_hash;	/* sha256 hex of the script */
	const char	*input;		/* JSON text */
	const char	*status;	/* running, succeeded, failed, ... */
	const char	*budget;	/* JSON text or NULL */
	const char	*spend;		/* JSON text or NULL */
	const char	*output;	/* JSON text or NULL */
	const char	*error;		/* message or NULL */
	const char	*parent_run;	/* or NULL */
	double		 started;	/* epoch seconds */
	double		 ended;		/* 0 while running */
	int64_t		 steps;		/* model turns + tool calls */
	int64_t		 tokens;
	double		 cost;		/* USD */
};

struct store_event {
	const char	*run_id;
	int64_t		 seq;		/* 1, 2, ... per run, set by caller */
	int64_t		 span_id;	/* node span, 0 if none */
	int64_t		 parent_span;	/* 0 for the root */
	const char	*node_path;	/* "essay/research/web" */
	const char	*kind;		/* "node.start", "tool.call", ... */
	int		 attempt;
	double		 time;		/* epoch seconds */
	const char	*payload;	/* JSON text or NULL */
	int64_t		 tokens;
	double		 cost;
};

struct store_task {
	const char	*run_id;
	const char	*task_id;
	const char	*node_path;
	const char	*kind;		/* mcp.call, mcp.list, a2a.send */
	const char	*state;		/* queued, leased, done, failed */
	int		 attempt;
	int		 worker;	/* worker id holding the lease, -1 none */
	double		 lease_until;	/* epoch seconds, 0 if none */
	const char	*idem_key;
};

/*
 * Open (creating if needed) the store at path, set WAL and
 * synchronous=NORMAL, create or migrate the schema.  On failure returns -1
 * and writes "cannot open database 'PATH': REASON" to err.  A database
 * whose schema is newer than this build is refused.
 */
int store_open(const char *path, struct store **out, char *err, size_t errlen);
/* Commit any open transaction and close. */
void store_close(struct store *);
/* The last error message. */
const char *store_error(const struct store *);

/*
 * The store after a write failed in the file system or in SQLite itself
 * (no space, an I/O error, corruption, memory, a lock held too long; not
 * a statement refused for its content, such as a duplicate key, which
 * fails alone and leaves the batch as it was).  The open batch
 * transaction is rolled back as a whole (nothing is half-written: the
 * file holds exactly what the last commit made durable) and every later
 * write is refused with the first failure's message until the store is
 * closed and opened again, since what the engine believes recorded no
 * longer matches the file.  Reads still work.  store_broken() returns 0
 * while no such write has failed, else STORE_BROKEN_FULL (no space left:
 * SQLITE_FULL) or STORE_BROKEN_IO (anything else), and writes to buf a
 * phrase for the user: "the store 'PATH' is full (disk full:
 * SQLITE_FULL)", "the store 'PATH' cannot be written (I/O error:
 * SQLITE_IOERR_WRITE, disk I/O error)".
 */
#define STORE_BROKEN_FULL	1
#define STORE_BROKEN_IO		2
int store_broken(const struct store *, char *buf, size_t len);

/*
 * The name of the fault-injecting VFS to open stores with (engine/
 * store_vfs.c, points sqlite.write_error, sqlite.full, sqlite.fsync_error),
 * registered on first use; NULL (the default VFS) unless $WEFT_FAULT
 * names a sqlite point.
 */
const char *store_vfs_name(void);

/* Open a batch transaction unless one is open. */
int store_begin(struct store *);
/* Commit the open transaction, if any. */
int store_commit(struct store *);

/* Insert a run row. */
int store_run_create(struct store *, const struct store_run *);
/* Set status, output, error, ended, steps, tokens, cost, spend of a run. */
int store_run_finish(struct store *, const struct store_run *);
/* Append one event (inside the batch transaction; call store_begin first
   or it opens one). */
int store_event_append(struct store *, const struct store_event *);
/* Insert or replace a task's lease row. */
int store_task_put(struct store *, const struct store_task *);
/*
 * Store a payload by content; hash_out gets its sha256 hex.  Storing the
 * same bytes twice keeps one copy.  The row is inserted as zeros and its
 * bytes written in two halves, all inside the batch transaction, so a
 * crash mid-write (fault point blob.mid_write) leaves no partial blob.
 * At most STORE_BLOB_MAX bytes.
 */
#define STORE_BLOB_MAX	(512 * 1024 * 1024)
int store_blob_put(struct store *, const void *, size_t, char hash_out[65]);
/* Fetch a blob: *data is a heap copy (free it), *len its size.  -1 if absent. */
int store_blob_get(struct store *, const char *hash, void **data, size_t *len);

typedef int (*store_run_cb)(void *arg, const struct store_run *);
typedef int (*store_event_cb)(void *arg, const struct store_event *);

/* Call cb for the most recent runs, newest first (limit <= 0: all).
   A non-zero return from cb stops the walk and is returned. */
int store_runs_list(struct store *, int limit, store_run_cb cb, void *arg);
/*
 * Find one run by id or unique id prefix and call cb with it.  Returns 0,
 * or -1 with "no run 'X'" / "run prefix 'X' is ambiguous" in the error.
 */
int store_run_find(struct store *, const char *id_or_prefix, store_run_cb cb,
    void *arg);
/* Call cb for each event of a run in seq order. */
int store_events_foreach(struct store *, const char *run_id, store_event_cb cb,
    void *arg);
/* Number of events of a run (for tests and summaries). */
int64_t store_event_count(struct store *, const char *run_id);

/*
 * Retention (weft gc).  The unit is a top-level run with all its child
 * runs.  Selected: the runs beyond the `keep` newest (keep < 0: no such
 * limit) that also started before `before` (0: no such limit); of those,
 * a tree holding a run that has not finished (a status other than
 * succeeded, failed, cancelled, budget_exceeded: running, paused,
 * waiting ...) is kept and counted in kept_live.  The selected runs are
 * deleted with their events and tasks, then every blob whose hash no
 * remaining event's payload holds as a string value.  All in one write
 * transaction, rolled back if dry_run, so a dry run counts exactly what
 * a real one would delete.  cb, if not NULL, sees each deleted run.
 */
struct store_gc {
	int		 keep;
	double		 before;
	int		 dry_run;
	int64_t		 runs, events, tasks, blobs, blob_bytes;
	int64_t		 kept_live;
};
int store_gc(struct store *, struct store_gc *, store_run_cb cb, void *arg);
/* VACUUM the database and truncate its WAL. */
int store_vacuum(struct store *);

#endif
