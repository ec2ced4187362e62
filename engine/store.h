/*
 * store.h: the trajectory store, SQLite in WAL mode.
 *
 * Schema (DESIGN.md section 8), versioned by PRAGMA user_version and
 * migrated forward at open: runs, events, tasks, blobs (and the
 * bookkeeping of weft gc).  Writes are batched in memory: every append
 * (event, task row, blob, run row) is kept, in order, in the store's
 * pending batch, and store_commit() writes the whole batch in one short
 * write transaction (BEGIN IMMEDIATE ... COMMIT); an append that grows
 * the batch past 64 MB commits it at once.  The write lock is
 * never held while the engine computes (Lua, network), so many
 * processes (weft run, resume, serve, cancel, gc) share one store.  The
 * engine commits before it acts on any event it appended (dispatching a
 * task, resuming a node, answering a client), so a crash never loses an
 * event that had an effect.
 *
 * All functions return 0 on success or -1 with a message in the store's
 * error buffer (store_error()).  Strings passed in are copied; strings
 * handed to callbacks are valid only during the callback.
 */
#ifndef WEFT_STORE_H
#define WEFT_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 4

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
 * synchronous=NORMAL, create or migrate the schema.  A new store file is
 * created mode 0600 (its -wal and -shm files take the same mode), with
 * auto_vacuum=incremental.  Many processes may open one new store at
 * once.  On failure writes "cannot open database 'PATH': REASON" to err
 * and returns -1 (the path, its permissions or its contents are wrong,
 * or its schema is newer than this build) or STORE_OPEN_STORAGE when the
 * storage failed (no space left, an I/O error, the lock held past the
 * busy timeout): weft run and resume exit 4 for it, as for a store that
 * fails during a run.
 */
#define STORE_OPEN_STORAGE	(-2)
int store_open(const char *path, struct store **out, char *err, size_t errlen);
/*
 * Open the store at path for reading (weft runs, show, replay, diff,
 * eval): as store_open() when this process may write the store (or it
 * does not exist yet); else read-only, creating no file: a file or
 * directory the user cannot write is read as it is (SQLite's immutable
 * mode when no write-ahead log holds data, else through the existing
 * -wal and -shm files).  Every write to a read-only store fails with
 * "the store 'PATH' is open read-only".  Returns as store_open().
 */
int store_open_read(const char *path, struct store **out, char *err,
    size_t errlen);
/* Commit any open transaction and close. */
void store_close(struct store *);
/* The last error message. */
const char *store_error(const struct store *);

/*
 * The store after a write failed in the file system or in SQLite itself
 * (no space, an I/O error, corruption, memory, a lock held too long), or
 * after any failure of store_commit().  (An append refused for its
 * content, such as a duplicate key, fails alone and leaves the batch as
 * it was.)  The batch is rolled back and dropped as a whole (nothing is
 * half-written: the file holds exactly what the last commit made
 * durable) and every later write is refused with the first failure's
 * message until the store is closed and opened again, since what the
 * engine believes recorded no longer matches the file.  Reads still
 * work.  store_broken() returns 0 while no such write has failed, else
 * STORE_BROKEN_FULL (no space left: SQLITE_FULL) or STORE_BROKEN_IO
 * (anything else), and writes to buf a phrase for the user: "the store
 * 'PATH' is full (disk full: SQLITE_FULL)", "the store 'PATH' cannot be
 * written (I/O error: SQLITE_IOERR_WRITE, disk I/O error)".
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

/*
 * Take the store's write lock now (BEGIN IMMEDIATE), unless this store
 * holds it already, for a check and a write that must not be separated
 * (weft resume's claim on a run).  Reads see the file under the lock;
 * appends still collect in the batch.  Hold it briefly: store_commit()
 * releases it.
 */
int store_begin(struct store *);
/*
 * Write the pending batch in one transaction and commit it (fault
 * points store.before_commit, store.after_commit), releasing the lock
 * of store_begin().  Nothing pending and no lock held: nothing to do.
 * Waits for the write lock as long as the busy timeout (5 s); a failure
 * here breaks the store (store_broken) and the batch is lost as a whole.
 */
int store_commit(struct store *);

/*
 * Insert a run row.  An input over STORE_INPUT_INLINE_MAX bytes is kept
 * once, as a blob (the row's input_blob names it; reads give the input
 * back in struct store_run.input).  With nothing pending it is written
 * at once, else it joins the batch.  A run id that exists fails alone.
 */
#define STORE_INPUT_INLINE_MAX	(16 * 1024)
int store_run_create(struct store *, const struct store_run *);
/* Set status, output, error, ended, steps, tokens, cost, spend of a run:
   at once with nothing pending, else in the batch.  "no run 'ID'" if
   there is no such run. */
int store_run_finish(struct store *, const struct store_run *);
/*
 * Append one event to the batch.  A (run, seq) that is recorded or
 * pending already fails alone ("UNIQUE constraint failed").
 */
int store_event_append(struct store *, const struct store_event *);
/* Insert or replace a task's lease row. */
int store_task_put(struct store *, const struct store_task *);
/*
 * Store a payload by content; hash_out gets its sha256 hex.  Storing the
 * same bytes twice keeps one copy.  The bytes are copied into the batch;
 * at commit the row is inserted as zeros and its bytes written in two
 * halves, inside the transaction, so a crash mid-write (fault point
 * blob.mid_write) leaves no partial blob.  At most STORE_BLOB_MAX bytes.
 * A blob must be put in the batch of the first event that names its
 * hash (or earlier, by the same run): weft gc relies on it.
 */
#define STORE_BLOB_MAX	(512 * 1024 * 1024)
int store_blob_put(struct store *, const void *, size_t, char hash_out[65]);
/* Fetch a blob, pending or stored: *data is a heap copy (free it), *len
   its size.  -1 if absent. */
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
/* Call cb for each event of a run in seq order, the pending ones
   included (run rows are seen once committed). */
int store_events_foreach(struct store *, const char *run_id, store_event_cb cb,
    void *arg);
/* The same for the events after seq after only (a reader that follows a
   run as it goes). */
int store_events_after(struct store *, const char *run_id, int64_t after,
    store_event_cb cb, void *arg);
/* Number of events of a run, pending ones included. */
int64_t store_event_count(struct store *, const char *run_id);

/*
 * Approvals (w.approval): one row per approval a run waits for, keyed by
 * (run_id, path, call), written at once (not in the batch) so another
 * process sees it.  status: waiting, approved, rejected or timed_out;
 * answer: the answer as JSON text ({"approved":..., ...}); deadline and
 * answered are wall-clock seconds (deadline 0: none).  The strings a
 * callback sees are valid during the call only.
 */
struct store_approval {
	const char	*run_id;
	const char	*path;
	int		 call;
	const char	*prompt;
	const char	*schema;	/* JSON text or NULL */
	const char	*on_timeout;	/* reject, approve, fail */
	double		 deadline;
	double		 waited;
	const char	*status;
	const char	*answer;
	double		 answered;
};
typedef int (*store_approval_cb)(void *arg, const struct store_approval *);
/* Record that a run waits (a row that exists already is kept). */
int store_approval_wait(struct store *, const struct store_approval *);
/* The row of one approval to cb: 1 when there is one, 0 none, -1. */
int store_approval_get(struct store *, const char *run_id, const char *path,
    int call, store_approval_cb cb, void *arg);
/* Every approval of a run, oldest first, to cb (non-zero stops): how
   many, or -1. */
int store_approvals_list(struct store *, const char *run_id,
    store_approval_cb cb, void *arg);
/* Answer an approval that still waits: 1, 0 when it waits no more (or
   there is none), -1 on failure. */
int store_approval_answer(struct store *, const char *run_id,
    const char *path, int call, const char *status, const char *answer,
    double when);
/*
 * Requests to cancel a run held by a long-lived server (weft cancel of a
 * served run: engine/store_cancel.c).  request records one for run_id
 * with why (replacing an earlier one) and clear removes it, both at once
 * (nothing may be pending in the batch); requests calls cb for each
 * request recorded (a non-zero return stops the walk and is returned).
 * 0, or -1 with the error.
 */
int store_cancel_request(struct store *, const char *run_id,
    const char *why);
int store_cancel_clear(struct store *, const char *run_id);
int store_cancel_requests(struct store *, int (*cb)(void *arg,
    const char *run_id, const char *why), void *arg);

/*
 * Retention (weft gc).  The unit is a top-level run with all its child
 * runs.  Selected: the runs beyond the `keep` newest (keep < 0: no such
 * limit) that also started before `before` (0: no such limit); of those,
 * a tree holding a run that has not finished (a status other than
 * succeeded, failed, cancelled, budget_exceeded: running, paused,
 * waiting ...) is kept and counted in kept_live.  The selected runs are
 * deleted with their events and tasks, then every blob that no remaining
 * event's payload (as a string value) or run input names.
 *
 * It works in short write transactions (a few thousand rows each) with
 * pauses between them, and reads outside them, so runs going on in the
 * same store are never held up for long.  Each tree is checked again
 * under the lock before it goes (a run resumed meanwhile is kept).  Its
 * run rows go first, their events and tasks after (listed in the
 * gc_pending table, so an interrupted gc is finished by the next one).
 * While it runs, a gc_state row says so and every commit that puts
 * blobs lists them in gc_touched, which the blob sweep spares.  One gc
 * at a time: pid and owner identify this one, alive(pid, owner) tells
 * whether the one named by an existing gc_state row still runs (if not,
 * its row is taken over).  A dry run deletes nothing and counts what a
 * real one would delete.  cb, if not NULL, sees each deleted run.
 */
struct store_gc {
	int		 keep;
	double		 before;
	int		 dry_run;
	long		 pid;
	const char	*owner;
	int		(*alive)(long pid, const char *owner);
	int64_t		 runs, events, tasks, blobs, blob_bytes;
	int64_t		 kept_live;
};
int store_gc(struct store *, struct store_gc *, store_run_cb cb, void *arg);

/*
 * Give free space back to the file system (weft gc --vacuum).  A store
 * made with auto_vacuum=incremental (every store created by this weft)
 * is shrunk in short transactions; an older one needs a full VACUUM,
 * which rewrites the file under the write lock for its whole length
 * (store_vacuum_full() says so: the caller makes sure no run uses the
 * store) and turns on incremental mode for next time.  Then the WAL is
 * checkpointed and truncated.  Sizes are the files' real sizes, before
 * and after; wal_busy says that readers kept the WAL from being
 * truncated.
 */
struct store_vacuum {
	int		 full;
	int		 wal_busy;
	int64_t		 db_before, wal_before, db_after, wal_after;
};
int store_vacuum_full(struct store *);
int store_vacuum(struct store *, struct store_vacuum *);

#endif
