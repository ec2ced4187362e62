/*
 * eval.h: trajectories as step lists, tool-call metrics against a golden
 * list, and the alignment of two step lists (weft eval, weft diff).
 *
 * A run's steps come in tree order: each node, then its own model turns
 * and tool calls and its children's subtrees, merged by the order they
 * were recorded, then the node's end; the run's own step (its outcome)
 * comes last.  Parallel branches whose events
 * interleave differently from one run to the next therefore give the
 * same list.  Metric definitions: docs/eval.md.
 */
#ifndef WEFT_EVAL_H
#define WEFT_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct store;

/* Bounds: golden calls in a file, and DP cells of one alignment. */
#define EVAL_MAX_CALLS		10000
#define EVAL_MAX_CELLS		((size_t)256 * 1024 * 1024)

enum eval_match { EVAL_EXACT, EVAL_IN_ORDER, EVAL_ANY_ORDER };
enum eval_args { EVAL_ARGS_COMPARE, EVAL_ARGS_SUBSET, EVAL_ARGS_IGNORE };

/* One step of a run, as weft diff shows it. */
struct eval_step {
	int64_t		 seq;	/* the event that made it */
	char		*path;	/* node path */
	const char	*kind;	/* "node", "model", "tool", "end", "run" */
	char		*name;	/* node kind, provider:model, server.tool */
	const char	*tool;	/* tool steps: the name after the server */
	json_t		*args;	/* tool steps: arguments, or NULL */
	char		*detail; /* status, "ok", "error (kind)"; NULL for
				    node steps */
};

/* A run read back for evaluation. */
struct eval_run {
	char		*id;
	char		*status;
	json_t		*output;	/* NULL if none */
	int64_t		 nsteps;	/* the run row's steps */
	int64_t		 tokens;
	double		 cost;
	struct eval_step *steps;
	size_t		 n;
};

/* A tool call to compare: tool is "server.tool" (or a bare tool name in
   a golden call, which then matches that tool on any server). */
struct eval_call {
	const char	*tool;
	const char	*name;		/* actual calls: the tool's own name */
	const char	*path;		/* NULL: any node */
	json_t		*args;		/* NULL: any arguments (golden) */
};

struct eval_score {
	size_t		 expected;	/* golden calls */
	size_t		 actual;	/* the run's calls */
	size_t		 matched;
	double		 precision, recall, f1;
};

/*
 * Read run (an id or unique prefix) and its steps from the store into r.
 * Returns 0, or -1 with a message in err ("no run 'X'", a store error).
 * Free with eval_run_free.
 */
int eval_run_load(struct store *, const char *run, struct eval_run *r,
    char *err, size_t errlen);
/* Free what eval_run_load filled in (not r itself). */
void eval_run_free(struct eval_run *r);

/* Whether an actual call matches a golden one under the arguments mode. */
int eval_call_matches(const struct eval_call *golden,
    const struct eval_call *actual, enum eval_args mode);

/*
 * Score actual calls against golden ones.  gpair, if not NULL, gets for
 * each golden call the index of the actual call it matched, or -1.
 * Returns 0, or -1 with a message in err when the comparison is larger
 * than EVAL_MAX_CELLS.
 */
int eval_score(const struct eval_call *golden, size_t ng,
    const struct eval_call *actual, size_t na, enum eval_match match,
    enum eval_args args, struct eval_score *out, long *gpair, char *err,
    size_t errlen);

/*
 * A longest common subsequence of a[0..na) and b[0..nb) under eq(arg,
 * i, j).  amatch[i] gets the j matched with a[i], or -1.  Returns the
 * length, or -1 with a message in err when na x nb (after trimming a
 * common prefix and suffix) exceeds EVAL_MAX_CELLS.
 */
long eval_lcs(size_t na, size_t nb, int (*eq)(void *, size_t, size_t),
    void *arg, long *amatch, char *err, size_t errlen);

/* Parse a match or args mode name; -1 if unknown. */
int eval_match_parse(const char *);
int eval_args_parse(const char *);
const char *eval_match_name(enum eval_match);
const char *eval_args_name(enum eval_args);

#endif
