/*
 * exec.h: one run lifecycle for `weft run`, `weft resume`, `weft replay`
 * and `weft replay --fork` (tmux spawn.c: the commands fill a context and
 * one function does the work).
 *
 * A command parses its options into a struct exec_spec and calls
 * exec_run(), which opens the store, creates or claims the run row, loads
 * the workflow into a Lua state, starts the coordinator, answers calls
 * from the record (resume, replay, fork), runs the loop and records how
 * the run ended (run.end, the run row).  exec_report() then prints the
 * outcome, the same way for every mode that runs live, and gives the exit
 * status.  Served runs (weft mcp, weft serve) are `weft run --run-id`
 * child processes, and so go through here too.
 *
 * Only the CLI commands use this module (it includes lua/, as they do).
 */
#ifndef WEFT_EXEC_H
#define WEFT_EXEC_H

#include <stdint.h>
#include <jansson.h>

#include "engine/coord.h"
#include "lua/luaeng.h"

enum exec_mode {
	EXEC_RUN,	/* a new run of a workflow file */
	EXEC_RESUME,	/* a recorded run again, in its own id, answered
			   from its record (docs/durability.md) */
	EXEC_REPLAY,	/* a recorded run offline, into a store in memory:
			   identical, or where it diverges */
	EXEC_FORK	/* a new run answered from a recorded one up to an
			   event seq, live after */
};

/* What to execute and how to report it; exec_spec_init gives defaults. */
struct exec_spec {
	enum exec_mode	 mode;
	const char	*db;		/* NULL: $WEFT_DB or ./weft.db */
	/* EXEC_RUN: the workflow file, and the id to record it under (16
	   hex digits; NULL: a new one) */
	const char	*workflow;
	const char	*run_id;
	/* the others: the recorded run (id or prefix) */
	const char	*run;
	int64_t		 fork_seq;	/* EXEC_FORK: the seq */
	int		 rerun_lost;	/* EXEC_RESUME: call lost calls
					   of non-idempotent tools again */
	/* --input or --input-file (not both); neither: {} for a new run,
	   else the recorded run's input */
	const char	*input_text;
	const char	*input_file;
	/* --budget, borrowed; NULL: none for a new run, else the recorded
	   run's */
	json_t		*budget;
	struct coord_opts co;		/* workers, slots, lease ... */
	int		 served;	/* begun by weft serve (run.start
					   says so: a restart resumes it) */
	int		 json;		/* report one JSON object */
	int		 quiet;		/* report only the answer */
};

/* How an execution went, for exec_report. */
struct exec_result {
	char		 id[17];	/* the run executed */
	struct luaeng_outcome oc;	/* how it ended */
	double		 elapsed;	/* seconds it ran (a replay:
					   both attempts) */
	/* calls the record answered, and calls it holds */
	int64_t		 answered;
	int64_t		 recorded;
	char		*prior_status;	/* resume: its status then */
	char		 parent[17];	/* fork: the run forked */
	/* EXEC_REPLAY: the verdict */
	char		*divergence;	/* NULL: identical */
	char		*workflow;	/* the recorded workflow path */
	char		*recorded_hash;	/* its sha256 then */
	char		 hash[65];	/* its sha256 now */
	int		 script_changed;
	/* the verdict is from a replay with every branch of a parallel at
	   once */
	int		 all_at_once;
	int64_t		 events;	/* of the recorded run */
	int		 workers_spawned; /* worker processes started */
	double		 load_s;	/* reading the record */
};

/* Defaults of a spec for mode: workers = cores, 256 slots, a 30 s lease,
   a 1 s heartbeat, 3 attempts. */
void exec_spec_init(struct exec_spec *, enum exec_mode);

/*
 * Execute spec.  Returns 0 when the run ran and how it ended is recorded
 * (for EXEC_REPLAY: when the verdict is in res); otherwise the exit
 * status (1 refused or failed, 2 bad input or workflow, 4 the store could
 * not be opened or written) with a message in *cause (the caller prints
 * it after "weft: " and frees it).  A message that does not stop the run
 * (an edited workflow) is said on stderr as it goes.  res is filled in
 * either way; release it with exec_result_clear.
 */
int exec_run(const struct exec_spec *, struct exec_result *res,
    char **cause);

/*
 * Print the outcome of a run (the answer, then unless quiet the summary;
 * or one JSON object) and, if it did not succeed, why on stderr, as weft
 * run does; resume and fork add what the record answered.  For
 * EXEC_REPLAY the verdict.  Returns the exit status (weft run --help).
 */
int exec_report(const struct exec_spec *, const struct exec_result *);
void exec_result_clear(struct exec_result *);

/*
 * Runs begun in a coordinator that outlives them (weft serve, weft mcp):
 * exec_start prepares spec (EXEC_RUN or EXEC_RESUME; input as text, no
 * input file) as exec_run does, in store st (borrowed, open), loads its
 * workflow with the core.var values vars (an object of strings; may be
 * NULL), creates or claims its run row and begins it in c.  When the run
 * has ended and how is recorded, done(arg, x, res, rc, cause) is called on
 * the loop (res and cause are freed after it returns; rc and cause as
 * exec_run's) and x is freed.  Returns x, or NULL with the exit status in
 * *rc and the reason in *cause (the caller frees it) when it could not
 * begin.
 */
struct exec;
typedef void (*exec_done_fn)(void *arg, struct exec *x,
    const struct exec_result *res, int rc, const char *cause);
struct exec *exec_start(const struct exec_spec *, struct coord *,
    struct store *st, const json_t *vars, exec_done_fn done, void *arg,
    int *rc, char **cause);
/*
 * Settle the started run's approvals answered in the store (weft approve,
 * from any process) or past their deadline; weft serve calls it on its
 * poll.  Returns how many were settled.
 */
int exec_poll(struct exec *);
/* End the run as cancelled, why recorded in its tasks; done follows. */
void exec_cancel(struct exec *, const char *why);
/* Free x without recording an end: the run stays as recorded so far,
   resumable (a server stopping).  done is not called. */
void exec_abandon(struct exec *);
const char *exec_id(const struct exec *);
/* Model calls of the run not yet answered (gateway_calls). */
int exec_model_calls(const struct exec *);

/* The exit status of a run that ended with status (weft run --help). */
int exec_exit_status(const char *status);

#endif
