/*
 * store_int.h: the store's inside, shared by engine/store.c (statements,
 * the batch and its commit), store_open.c (opening), store_run.c (run
 * rows), store_event.c (events), store_blob.c (blobs) and store_gc.c
 * (retention and vacuum).  Nothing else includes it.
 */
#ifndef WEFT_STORE_INT_H
#define WEFT_STORE_INT_H

#include <sqlite3.h>

#include "engine/store.h"

/* Seconds a process waits for another's lock before it gives up. */
#define STORE_BUSY_SECONDS	5.0

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

enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_RUN_INSERT,
	ST_RUN_FINISH,
	ST_RUN_GET,
	ST_RUN_PREFIX,
	ST_RUNS_LIST,
	ST_RUN_EXISTS,
	ST_EVENT_INSERT,
	ST_EVENTS,
	ST_EVENT_COUNT,
	ST_EVENT_EXISTS,
	ST_EVENT_MAXSEQ,
	ST_TASK_PUT,
	ST_BLOB_PUT,
	ST_BLOB_GET,
	ST_GC_ACTIVE,
	ST_GC_TOUCH,
	ST__COUNT
};

/* One append waiting in the batch; its strings live in the arena. */
enum { PEND_EVENT, PEND_TASK, PEND_BLOB, PEND_RUN_CREATE, PEND_RUN_FINISH };
struct store_pend {
	int	 type;
	union {
		struct store_event	 ev;
		struct store_task	 task;
		struct {
			struct store_run r;
			char		 input_blob[65]; /* "": inline */
		} run;
		struct {
			char		 hash[65];
			unsigned char	*data;
			size_t		 len;
		} blob;
	} u;
};

/* Chunks of the batch's string arena: strings never move until cleared. */
struct store_chunk {
	struct store_chunk	*next;
	size_t			 used, cap;
	char			 data[];
};

/* The highest seq known (recorded or pending) of a run. */
#define STORE_SEQ_SLOTS	16
struct store_seq {
	char	*run_id;
	int64_t	 max;
};

struct store {
	sqlite3			*db;
	char			*path;
	int			 readonly;
	int			 version;	/* of the file's schema */
	int			 in_txn;	/* the write lock is held */
	sqlite3_stmt		*stmt[ST__COUNT];
	char			 err[1024];
	int			 code;	/* of the last failure */
	int			 broken;	/* code of a failed write */
	char			 broken_err[1024];
	double			 busy_start;

	struct store_pend	*pend;
	size_t			 npend, pend_cap;
	size_t			 pend_bytes;	/* strings and blobs held */
	struct store_chunk	*arena;
	uint32_t		*blobix;	/* by hash: pend index + 1 */
	size_t			 blobix_cap, nblobs;
	struct store_seq	 seq[STORE_SEQ_SLOTS];
	uint64_t		 gen;		/* batches cleared */
};

/* Free a store and everything it holds, without committing (store.c). */
void store_free(struct store *);
/* Record the connection's last error as "WHAT: REASON"; returns -1
   (store_open.c). */
int store_fail(struct store *, const char *what);
/* Write the batch and commit: store_commit() with faults, or without
   the fault points (blob.mid_write, store.before_commit, after_commit)
   for a run row written at once; every failure breaks the store. */
int store_flush(struct store *, int faults);
/* Begin (BEGIN IMMEDIATE) unless the lock is held; -1 on failure. */
int store_lock(struct store *);
/* Commit what the lock holds, without the batch; -1 on failure. */
int store_unlock(struct store *);
/* Roll back what the lock holds. */
void store_rollback(struct store *);
/* The columns of a run row, in store_run_row() order, for this file. */
const char *store_run_columns(const struct store *);
/* Fill r from a row selected with store_run_columns(). */
void store_run_row(sqlite3_stmt *, struct store_run *);
/* The size in bytes of the file at path, 0 if there is none. */
int64_t store_file_size(const char *path);

/* Refuse a write on a broken or read-only store: -1 with s->err, else 0. */
int store_refuse(struct store *);
/* Take statement `which` (ST_*) for use, prepared on first use; NULL
   with s->err on failure.  Give it back with store_stmt_done(). */
sqlite3_stmt *store_stmt(struct store *, int which);
/* Give back a statement from store_stmt(), dropping its bindings. */
void store_stmt_done(struct store *, int which, sqlite3_stmt *);
/* Step a statement that returns no rows and give it back; 0, or -1 with
   s->err saying what failed. */
int store_step_done(struct store *, int which, sqlite3_stmt *,
    const char *what);
/* Step a one-row lookup and give it back: 1 for a row (*v, if not NULL,
   its column 0), 0 for none, -1 with s->err. */
int store_step_row(struct store *, int which, sqlite3_stmt *, int64_t *v,
    const char *what);
/* Step a row-returning statement to the end, handing each row to row_cb;
   a non-zero return from row_cb stops the walk and is returned. */
int store_walk(struct store *, int which, sqlite3_stmt *,
    int (*row_cb)(sqlite3_stmt *, void *), void *arg, const char *what);
/* A copy of str in the batch's arena, kept until the batch is cleared
   (NULL stays NULL). */
const char *store_keep(struct store *, const char *str);
/* A new zeroed entry of this PEND_* type at the end of the batch. */
struct store_pend *store_pend_new(struct store *, int type);
/* Commit a batch grown past its limit, unless a lock is held; 0 or -1. */
int store_pend_check(struct store *);

/* Bind a string that lives until the statement is reset; NULL binds NULL. */
static inline void
store_bind_str(sqlite3_stmt *st, int i, const char *v)
{
	sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

/* A text column, or NULL for SQL NULL. */
static inline const char *
store_col_str(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

#endif
