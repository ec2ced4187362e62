/*
 * exec.c: one run lifecycle for weft run, resume, replay and replay
 * --fork (engine/exec.h, docs/durability.md).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>

#include "engine/approval.h"
#include "engine/cmd.h"
#include "engine/exec.h"
#include "engine/gateway.h"
#include "engine/replay.h"
#include "engine/store.h"
#include "runtime/proc.h"
#include "runtime/util.h"
#include "lua/luaeng.h"

#define EXEC_LUA_MEM	(512u * 1024 * 1024)

/* A recorded run's row, copied out of the store. */
struct exec_prior {
	char		*id, *workflow, *hash, *input, *budget, *status;
	char		*output, *error;
	/* the coordinator that last ran it (run.start, run.resume) */
	long		 pid;
	char		*owner;
	char		*cwd;		/* of the first coordinator */
	/* messages of task.lost events since that coordinator started */
	json_t		*lost;
};

/* One execution of a workflow: a run, or one attempt of a replay. */
struct exec {
	const struct exec_spec *spec;
	struct store	*st;		/* where its events go */
	const char	*id;
	char		 idbuf[17];	/* a new run's id */
	const char	*path;		/* the workflow file */
	char		 hash[65];	/* its sha256 now */
	json_t		*input, *budget;
	char		*input_text;	/* as the run row keeps it */
	int		 big_input;	/* over STORE_INPUT_INLINE_MAX */
	struct replay	*rec;		/* NULL: nothing answered */
	int64_t		 last_seq;	/* seqs go on after it */
	const char	*start_kind;	/* run.start, run.resume */
	json_t		*start;		/* its payload */
	struct coord_opts co;
	struct luaeng_outcome oc;
	double		 elapsed;
	int		 spawned;	/* worker processes started */
	double		 load_s;	/* reading the record */
	/*
	 * An offline replay reads the record on a thread of its own while
	 * the workflow loads (exec_await_record): from rec_st, run id.
	 */
	pthread_t	 loader;
	int		 loading;
	struct store	*rec_st;
	char		 rec_err[512];
	int		 offline;
	int		 all_at_once;	/* crun_all_at_once */
	int		 went_bounded;	/* crun_went_bounded */
	/* While it runs: its Lua state, model gateway and run in the
	   coordinator, and when it started */
	struct luaeng	*le;
	struct gateway	*gw;
	struct crun	*run;
	double		 t0;
	/* Its approvals, and the graph's own sink under exec_pump_cb */
	struct approvals *ap;
	struct coord_sink gsink;
	int		 marked_waiting;	/* the row says waiting */
	int		 loopfail;	/* the loop or the start failed: */
	char		 loop_err[1024];	/* why */
	/* Begun in a coordinator that outlives it (exec_start): the spec's
	   copy, the recorded run resumed, core.var values, the store
	   borrowed, and whom to tell when it ended */
	struct exec_spec own;
	struct exec_prior prior;
	json_t		*vars;
	int		 st_borrowed;
	exec_done_fn	 done;
	void		*done_arg;
	struct event	*fail_ev;	/* the graph failed to start */
	/* The run row: created here (a run, a fork of parent) ... */
	int		 create;
	const char	*parent;
	/* ... or claimed by weft resume (exec_claim): what the check saw
	   unlocked */
	int		 claim;
	int64_t		 claim_events;
	long		 claim_pid;
	const char	*claim_owner;
};

static void	exec_release(struct exec *);
static void	exec_result_of(struct exec *, struct exec_result *);

/* Set *cause to the message, or add it as a line of its own. */
static void __attribute__((format(printf, 2, 3)))
exec_cause(char **cause, const char *fmt, ...)
{
	va_list ap;
	char *s, *t;

	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	if (*cause == NULL) {
		*cause = s;
		return;
	}
	t = xasprintf("%s\nweft: %s", *cause, s);
	free(*cause);
	free(s);
	*cause = t;
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static void
prior_clear(struct exec_prior *r)
{
	free(r->id);
	free(r->workflow);
	free(r->hash);
	free(r->input);
	free(r->budget);
	free(r->status);
	free(r->output);
	free(r->error);
	free(r->owner);
	json_decref(r->lost);
	free(r->cwd);
	memset(r, 0, sizeof *r);
}

static int
prior_row_cb(void *arg, const struct store_run *sr)
{
	struct exec_prior *r = arg;

	r->id = xstrdup(sr->id);
	r->workflow = xstrdup(sr->workflow);
	r->hash = dup_or_null(sr->workflow_hash);
	r->input = dup_or_null(sr->input);
	r->budget = dup_or_null(sr->budget);
	r->status = xstrdup(sr->status);
	r->output = dup_or_null(sr->output);
	r->error = dup_or_null(sr->error);
	return 0;
}

/* The owner of the last run.start or run.resume event, and the calls
   lost since (task.lost: a tool with idempotent = false). */
static int
prior_owner_cb(void *arg, const struct store_event *ev)
{
	struct exec_prior *r = arg;
	json_t *p;
	int lost = strcmp(ev->kind, "task.lost") == 0;

	if (!lost && strcmp(ev->kind, "run.start") != 0 &&
	    strcmp(ev->kind, "run.resume") != 0)
		return 0;
	if (ev->payload == NULL || (p = json_loads(ev->payload, 0, NULL)) ==
	    NULL)
		return 0;
	if (lost) {
		if (r->lost != NULL)
			json_array_append(r->lost, json_object_get(p,
			    "message"));
		json_decref(p);
		return 0;
	}
	json_array_clear(r->lost);
	free(r->owner);
	r->owner = dup_or_null(json_string_value(json_object_get(p,
	    "owner")));
	r->pid = (long)json_integer_value(json_object_get(p, "pid"));
	json_decref(p);
	return 0;
}

/* The directory the run started in, from run.start (the first event). */
static int
prior_cwd_cb(void *arg, const struct store_event *ev)
{
	struct exec_prior *r = arg;
	json_t *p;

	if (strcmp(ev->kind, "run.start") == 0 && ev->payload != NULL &&
	    (p = json_loads(ev->payload, 0, NULL)) != NULL) {
		r->cwd = dup_or_null(json_string_value(json_object_get(p,
		    "cwd")));
		json_decref(p);
	}
	return 1;
}

/*
 * Find the run by id or prefix; 0, or -1 with *cause.  A relative
 * workflow path that does not resolve from here is taken from the
 * directory the run started in.
 */
static int
prior_find(struct store *st, const char *ref, struct exec_prior *r,
    char **cause)
{
	char *abs;

	if (store_run_find(st, ref, prior_row_cb, r) != 0) {
		exec_cause(cause, "%s", store_error(st));
		return -1;
	}
	if (r->workflow[0] != '/' && access(r->workflow, R_OK) != 0 &&
	    store_events_foreach(st, r->id, prior_cwd_cb, r) >= 0 &&
	    r->cwd != NULL) {
		abs = xasprintf("%s/%s", r->cwd, r->workflow);
		free(r->workflow);
		r->workflow = abs;
	}
	return 0;
}

/* Whether the coordinator that owns the run is alive. */
static int
prior_owner_alive(const struct exec_prior *r)
{
	char now[128];

	if (r->pid <= 0 || r->owner == NULL)
		return 0;
	if (proc_identity(r->pid, now, sizeof now) != 0)
		return 0;
	return strcmp(now, r->owner) == 0;
}

/*
 * Read the recorded run's script and compare its hash with the run's: 1
 * if changed, 0 if not, -1 if it cannot be read (errno).
 */
static int
prior_changed(const struct exec_prior *r, char now[65])
{
	char *text;
	size_t len;

	if ((text = read_file(r->workflow, &len)) == NULL) {
		now[0] = '\0';
		return -1;
	}
	sha256_hex(text, len, now);
	free(text);
	return r->hash == NULL || strcmp(r->hash, now) != 0;
}

/* Refuse a run that cannot be resumed; 0 if it can. */
static int
prior_check(struct store *st, struct exec_prior *r, int rerun_lost,
    char **cause)
{
	char *list, *t;
	size_t i;

	if (strcmp(r->status, "succeeded") == 0) {
		exec_cause(cause, "run %s succeeded: there is nothing to "
		    "resume (weft replay %s --fork SEQ starts a new run from "
		    "any point of it)", r->id, r->id);
		return -1;
	}
	r->lost = json_array();
	if (store_events_foreach(st, r->id, prior_owner_cb, r) != 0) {
		exec_cause(cause, "%s", store_error(st));
		return -1;
	}
	if (json_array_size(r->lost) > 0 && !rerun_lost) {
		list = xstrdup("");
		for (i = 0; i < json_array_size(r->lost); i++) {
			t = xasprintf("%s  - %s\n", list, json_string_value(
			    json_array_get(r->lost, i)));
			free(list);
			list = t;
		}
		exec_cause(cause, "run %s stopped because %zu call(s) of a "
		    "tool marked idempotent = false were lost in flight; a "
		    "resume would call them again:\n%sweft: check the "
		    "server's side; to call them again: weft resume %s "
		    "--rerun-lost", r->id, json_array_size(r->lost), list,
		    r->id);
		free(list);
		return -1;
	}
	if (prior_owner_alive(r)) {
		exec_cause(cause, "run %s is still running (its coordinator, "
		    "pid %ld, is alive): stop it first (weft resume takes "
		    "over a run whose coordinator died)", r->id, r->pid);
		return -1;
	}
	return 0;
}

/* Add this coordinator's pid and identity (boot id and start time) to a
   run.start or run.resume payload: weft resume refuses a live owner. */
static void
exec_owner(json_t *payload)
{
	char id[128], cwd[PATH_MAX];

	json_object_set_new(payload, "pid", json_integer(getpid()));
	if (getcwd(cwd, sizeof cwd) != NULL)
		json_object_set_new(payload, "cwd", json_string(cwd));
	if (proc_identity(0, id, sizeof id) == 0)
		json_object_set_new(payload, "owner", json_string(id));
}

/*
 * The input as run.start records it: "input", or for an input whose JSON
 * text is over STORE_INPUT_INLINE_MAX bytes "input_blob", the hash of the
 * blob the run row keeps it in (store_run_create), so that it is stored
 * once.
 */
static void
exec_start_input(const struct exec *x, json_t *payload)
{
	char hash[65];

	if (!x->big_input) {
		json_object_set(payload, "input", x->input);
		return;
	}
	sha256_hex(x->input_text, strlen(x->input_text), hash);
	json_object_set_new(payload, "input_blob", json_string(hash));
}

/*
 * The final state as run.end records it ("state"): for a large input, the
 * keys that still hold the input's value are left out and listed in
 * "state_from_input" instead.
 */
static void
exec_end_state(const struct exec *x, json_t *payload, json_t *state)
{
	json_t *slim, *from, *v;
	const char *k;

	if (state == NULL)
		return;
	if (!x->big_input || !json_is_object(state) ||
	    !json_is_object(x->input)) {
		json_object_set(payload, "state", state);
		return;
	}
	slim = json_object();
	from = json_array();
	json_object_foreach(state, k, v) {
		if (json_equal(v, json_object_get(x->input, k)))
			json_array_append_new(from, json_string(k));
		else
			json_object_set(slim, k, v);
	}
	json_object_set_new(payload, "state", slim);
	json_object_set_new(payload, "state_from_input", from);
}

/* A JSON object from text, or NULL with *cause naming what and where. */
static json_t *
exec_object(const char *text, const char *what, char **cause)
{
	json_error_t je;
	json_t *j;

	if ((j = json_loads(text, JSON_DECODE_ANY, &je)) == NULL) {
		exec_cause(cause, "%s is not valid JSON: %s (line %d, column "
		    "%d)", what, je.text, je.line, je.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		exec_cause(cause, "%s must be a JSON object, like "
		    "'{\"topic\":\"tides\"}'", what);
		json_decref(j);
		return NULL;
	}
	return j;
}

/*
 * The input and budget of the execution: --input or --input-file and
 * --budget, else the recorded run's (r; NULL for a new run).  0, or -1 on
 * bad input.
 */
static int
exec_inputs(struct exec *x, const struct exec_prior *r, char **cause)
{
	const struct exec_spec *s = x->spec;
	char *text;

	if (s->input_text != NULL && s->input_file != NULL) {
		exec_cause(cause, "give --input or --input-file, not both");
		return -1;
	}
	if (s->input_file != NULL) {
		if ((text = read_file(s->input_file, NULL)) == NULL) {
			exec_cause(cause, "cannot read --input-file '%s': %s",
			    s->input_file, strerror(errno));
			return -1;
		}
		x->input = exec_object(text, s->input_file, cause);
		free(text);
	} else if (s->input_text != NULL || r == NULL)
		x->input = exec_object(s->input_text ? s->input_text : "{}",
		    "--input", cause);
	else
		x->input = exec_object(r->input ? r->input : "{}",
		    "the run's input", cause);
	if (x->input == NULL)
		return -1;
	x->input_text = json_dumps(x->input, JSON_COMPACT);
	x->big_input = strlen(x->input_text) > STORE_INPUT_INLINE_MAX;
	if (s->budget != NULL)
		x->budget = json_incref(s->budget);
	else if (r != NULL && r->budget != NULL && (x->budget =
	    exec_object(r->budget, "the run's budget", cause)) == NULL)
		return -1;
	return 0;
}

/* Open the store; 0, or the exit status with *cause. */
static int
exec_open(const struct exec_spec *s, int readonly, struct store **st,
    char **cause)
{
	char err[1024];
	int rc;

	rc = (readonly ? store_open_read : store_open)(cmd_db_path(s->db), st,
	    err, sizeof err);
	if (rc == 0)
		return 0;
	exec_cause(cause, "%s", err);
	/* The storage failed (full, I/O): as during a run.  A read-only
	   open (an offline replay) writes nothing. */
	return rc == STORE_OPEN_STORAGE && !readonly ? WEFT_EXIT_STORE :
	    WEFT_EXIT_FAILED;
}

/*
 * The store refused a write (store_broken): nothing more can be recorded,
 * so the run row is left as it is, as after a crash, and resumable.
 */
static int
exec_store_failed(struct crun *run, char **cause)
{
	char msg[1536];

	crun_store_message(run, msg, sizeof msg);
	exec_cause(cause, "%s", msg);
	return WEFT_EXIT_STORE;
}

/* Create the run row of a new run (a run, a fork); 0 or the status. */
static int
exec_create(struct exec *x, char **cause)
{
	struct store_run row;
	char err[1024], *btext;
	int rc = 0;

	btext = x->budget ? json_dumps(x->budget, JSON_COMPACT) : NULL;
	memset(&row, 0, sizeof row);
	row.id = x->id;
	row.workflow = x->path;
	row.workflow_hash = x->hash;
	row.input = x->input_text;
	row.budget = btext;
	row.status = "running";
	row.parent_run = x->parent;
	row.started = now_wall();
	if (store_run_create(x->st, &row) != 0 || store_commit(x->st) != 0) {
		if (store_broken(x->st, err, sizeof err) != 0) {
			exec_cause(cause, "%s: run %s was not started", err,
			    x->id);
			rc = WEFT_EXIT_STORE;
		} else {
			exec_cause(cause, "%s", store_error(x->st));
			rc = WEFT_EXIT_FAILED;
		}
	}
	free(btext);
	return rc;
}

/*
 * Claim run x->id for this resume, under the store's write lock, once the
 * workflow has loaded and the coordinator started (so the lock is not
 * held for that): the run is still as the check before saw it (no event
 * appended since, so no other resume started it), its coordinator is
 * still gone, and it is marked running.  The caller appends run.resume
 * and commits, which releases the lock: two resumes of one run cannot
 * both pass.
 */
static int
exec_claim(struct exec *x, char **cause)
{
	struct store_run row;
	struct exec_prior now;
	char id[128];
	int64_t n;
	int rc = -1;

	memset(&now, 0, sizeof now);
	if (store_begin(x->st) != 0) {
		exec_cause(cause, "%s", store_error(x->st));
		return -1;
	}
	if (store_run_find(x->st, x->id, prior_row_cb, &now) != 0)
		exec_cause(cause, "%s", store_error(x->st));
	else if (strcmp(now.status, "succeeded") == 0 ||
	    (n = store_event_count(x->st, x->id)) != x->claim_events)
		exec_cause(cause, "run %s changed while this resume was "
		    "starting (another weft resume?): look at it again with "
		    "weft show %s", x->id, x->id);
	else if (x->claim_pid > 0 && x->claim_owner != NULL &&
	    proc_identity(x->claim_pid, id, sizeof id) == 0 &&
	    strcmp(id, x->claim_owner) == 0)
		exec_cause(cause, "run %s is still running (its "
		    "coordinator, pid %ld, is alive)", x->id, x->claim_pid);
	else {
		memset(&row, 0, sizeof row);
		row.id = x->id;
		row.status = "running";
		if ((rc = store_run_finish(x->st, &row)) != 0)
			exec_cause(cause, "%s", store_error(x->st));
	}
	if (rc != 0 && store_commit(x->st) != 0)
		exec_cause(cause, "%s", store_error(x->st));
	prior_clear(&now);
	return rc;
}

/* Record how the run ended: the run.end event and the run row's final
   columns.  0, or the exit status with *cause. */
static int
exec_finish(struct exec *x, struct crun *c, char **cause)
{
	struct luaeng_outcome *oc = &x->oc;
	struct store_run run;
	char *out, *spend;
	json_t *p;
	int rc = 0;

	p = json_pack("{s:s, s:O?, s:s?, s:I, s:I, s:I, s:I, s:f}",
	    "status", oc->status, "output", oc->output, "error", oc->error,
	    "steps", (json_int_t)oc->steps, "tokens", (json_int_t)oc->tokens,
	    "model_calls", (json_int_t)oc->model_calls, "tool_calls",
	    (json_int_t)oc->tool_calls, "duration", x->elapsed);
	if (x->rec != NULL)
		json_object_set_new(p, "answered_from_record",
		    json_integer(replay_answered(x->rec)));
	exec_end_state(x, p, oc->state);
	crun_event(c, "run.end", 0, 0, "", 0, p, oc->tokens, oc->cost);
	json_decref(p);
	out = oc->output ? json_dumps(oc->output, JSON_COMPACT |
	    JSON_ENCODE_ANY) : NULL;
	spend = xasprintf("{\"tokens\":%lld,\"usd\":%.6f,\"model_calls\":%lld,"
	    "\"tool_calls\":%lld}", (long long)oc->tokens, oc->cost,
	    (long long)oc->model_calls, (long long)oc->tool_calls);
	memset(&run, 0, sizeof run);
	run.id = x->id;
	run.status = oc->status;
	run.output = out;
	run.error = oc->error;
	run.ended = now_wall();
	run.steps = oc->steps;
	run.tokens = oc->tokens;
	run.cost = oc->cost;
	run.spend = spend;
	if (store_run_finish(x->st, &run) != 0 || store_commit(x->st) != 0) {
		if (store_broken(x->st, NULL, 0) != 0)
			rc = exec_store_failed(c, cause);
		else {
			exec_cause(cause, "%s", store_error(x->st));
			rc = WEFT_EXIT_FAILED;
		}
	}
	free(out);
	free(spend);
	return rc;
}

static void *
exec_load_record(void *arg)
{
	struct exec *x = arg;
	double t0 = now_mono();

	x->rec = replay_load(x->rec_st, x->id, REPLAY_OFFLINE, 0, x->rec_err,
	    sizeof x->rec_err);
	x->load_s = now_mono() - t0;
	return NULL;
}

/* Start reading the record of run x->id from st on the loader thread. */
static void
exec_start_record(struct exec *x, struct store *st)
{
	sigset_t all, old;
	int e;

	x->rec_st = st;
	/* Signals (the Lua watchdog's SIGALRM, ^C) are for the main thread:
	   the loader is made with all of them blocked. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(&x->loader, NULL, exec_load_record, x);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0)
		fatalx(1, "cannot start a thread: %s", strerror(e));
	x->loading = 1;
}

/* Wait for the loader thread; -1 with *cause if the read failed. */
static int
exec_await_record(struct exec *x, char **cause)
{
	if (!x->loading)
		return 0;
	pthread_join(x->loader, NULL);
	x->loading = 0;
	if (x->rec == NULL) {
		exec_cause(cause, "%s", x->rec_err);
		return -1;
	}
	return 0;
}

/* Set the run row's status while the run goes on (waiting, running). */
static void
exec_mark(struct exec *x, const char *status)
{
	struct store_run row;

	memset(&row, 0, sizeof row);
	row.id = x->id;
	row.status = status;
	store_run_finish(x->st, &row);
	x->marked_waiting = strcmp(status, "waiting") == 0;
	/* Another flush round commits it (and the approval.wait event)
	   while the run waits. */
	coord_kick(crun_coord(x->run));
}

static void
exec_deliver_cb(void *arg, int64_t ticket, json_t *result, json_t *error)
{
	struct exec *x = arg;

	x->gsink.deliver(x->gsink.arg, ticket, result, error);
}

/*
 * Sink: the graph's pump, and what to do when all it waits for are
 * approvals (its pump says 3): settle those answered meanwhile; a served
 * run waits in place (weft serve polls, exec_poll); weft run on a terminal
 * asks there; otherwise the run stops as waiting (exit status 6) and a
 * resume goes on once it is answered (docs/workflows.md, w.approval).
 */
static int
exec_pump_cb(void *arg)
{
	struct exec *x = arg;
	int rc = x->gsink.pump(x->gsink.arg);

	if (rc != 3) {
		if (x->marked_waiting && rc != 2)
			exec_mark(x, "running");
		return rc;
	}
	/* Answered meanwhile, or at once (its answer is on its way). */
	if (approvals_poll(x->ap) > 0 || approvals_waiting(x->ap) == 0)
		return 0;
	if (x->done != NULL) {
		if (!x->marked_waiting)
			exec_mark(x, "waiting");
		return 0;
	}
	/* Durable before visible: the wait is committed before it is
	   asked on the terminal. */
	if (!x->offline && isatty(STDIN_FILENO) && isatty(STDERR_FILENO) &&
	    store_commit(x->st) == 0 &&
	    approvals_prompt(x->ap, stdin, stderr) == 0)
		return 0;
	return 2;
}

int
exec_poll(struct exec *x)
{
	if (x->ap == NULL || approvals_waiting(x->ap) == 0)
		return 0;
	return approvals_poll(x->ap);
}

/*
 * Start the run x on coordinator c (its workflow loaded in x->le, its
 * store open): the model gateway, the run row created or claimed, the run
 * in the coordinator answered from x->rec, x->start_kind recorded and
 * committed, the graph begun with sink (ended: NULL, or the owner's).
 * Returns 0, or the exit status with *cause: 1 when the run cannot be
 * claimed or the coordinator refuses it, 4 when the store fails.
 */
static int
exec_begin(struct exec *x, struct coord *c, void (*ended)(void *,
    struct crun *), void *ended_arg, char **cause)
{
	struct coord_sink sink;
	char err[1024];
	int rc;

	if (x->create && (rc = exec_create(x, cause)) != 0)
		return rc;
	/* From here on the run is in the store: every way out records how
	   it ended, or leaves it resumable. */
	x->t0 = now_mono();
	x->run = coord_run_new(c, x->id);
	if ((x->gw = gateway_new(x->run, x->st, err, sizeof err)) == NULL) {
		exec_cause(cause, "%s", err);
		return WEFT_EXIT_FAILED;
	}
	luaeng_set_gateway(x->le, x->gw);
	x->ap = approvals_new(x->run, x->st, x->id);
	luaeng_set_approvals(x->le, x->ap);
	if (x->rec != NULL)
		crun_set_replay(x->run, x->rec, x->last_seq);
	if (x->offline)
		crun_discard_events(x->run);
	if (x->all_at_once)
		crun_all_at_once(x->run);
	memset(&sink, 0, sizeof sink);
	x->loopfail = luaeng_start(x->le, x->run, x->input, x->budget, &sink,
	    x->loop_err, sizeof x->loop_err) != 0;
	if (x->claim && exec_claim(x, cause) != 0)
		return WEFT_EXIT_FAILED;
	exec_owner(x->start);
	crun_event(x->run, x->start_kind, 0, 0, "", 0, x->start, 0, 0);
	if (x->claim && store_commit(x->st) != 0)
		/* The claim is not recorded: nothing ran. */
		return exec_store_failed(x->run, cause);
	sink.ended = ended;
	sink.ended_arg = ended_arg;
	x->gsink = sink;
	sink.deliver = exec_deliver_cb;
	sink.pump = exec_pump_cb;
	sink.arg = x;
	if (!x->loopfail)
		crun_begin(x->run, &sink);
	return 0;
}

/*
 * The run x ended in its coordinator (or the loop failed with
 * x->loop_err): take its outcome and record how it ended (exec_finish).
 * Returns 0, or the exit status with *cause.  The run, its gateway and
 * its Lua state are freed either way.
 */
static int
exec_end(struct exec *x, char **cause)
{
	int rc;

	x->elapsed = now_mono() - x->t0;
	if (store_broken(x->st, NULL, 0) != 0) {
		rc = exec_store_failed(x->run, cause);
		goto out;
	}
	if (!x->loopfail && crun_failed(x->run, x->loop_err,
	    sizeof x->loop_err))
		x->loopfail = 1;
	if (x->loopfail) {
		x->oc.status = "failed";
		x->oc.error = xstrdup(x->loop_err);
	} else
		luaeng_outcome(x->le, &x->oc);
	if (crun_cancelled(x->run)) {
		gateway_cancel(x->gw, "the run was cancelled");
		x->oc.status = "cancelled";
	}
	if (strcmp(x->oc.status, "cancelled") == 0 && x->oc.error == NULL)
		x->oc.error = xstrdup("cancelled by signal");
	rc = exec_finish(x, x->run, cause);
out:
	exec_release(x);
	return rc;
}

/* Free what a run held while it ran (exec_begin). */
static void
exec_release(struct exec *x)
{
	if (x->run != NULL)
		x->went_bounded = crun_went_bounded(x->run);
	/* Lua first: finalizers of the workflow must not reach a freed
	   run. */
	luaeng_free(x->le);
	approvals_free(x->ap);
	x->ap = NULL;
	gateway_free(x->gw);
	crun_free(x->run);
	x->le = NULL;
	x->gw = NULL;
	x->run = NULL;
}

/*
 * Load the workflow at x->path into x->le and open the store if it is not
 * open yet (weft run: after the workflow loaded).  0, or the exit status
 * with *cause: 2 when the workflow does not load, 1 when the record
 * cannot be read, 4 when the store cannot be opened.
 */
static int
exec_load(struct exec *x, char **cause)
{
	char err[1024];
	int loadfail;

	const char *k;
	json_t *v;

	x->le = luaeng_new(EXEC_LUA_MEM);
	json_object_foreach(x->vars, k, v)
		luaeng_set_var(x->le, k, json_string_value(v));
	loadfail = luaeng_load(x->le, x->path, err, sizeof err);
	/* An unreadable record is said first, as when it was read first. */
	if (exec_await_record(x, cause) != 0)
		return WEFT_EXIT_FAILED;
	if (loadfail) {
		exec_cause(cause, "%s", err);
		return WEFT_EXIT_USAGE;
	}
	if (x->st == NULL)
		return exec_open(x->spec, 0, &x->st, cause);
	return 0;
}

/*
 * The lifecycle of weft run, resume, replay and fork: load the workflow,
 * start a coordinator of its own, begin the run in it (exec_begin), run
 * the loop and record how the run ended (exec_end, x->oc).  Returns 0 when
 * the run ran and its end is recorded, else the exit status with *cause
 * (exec_load, exec_begin; 1 when the coordinator cannot start).
 */
static int
exec_once(struct exec *x, char **cause)
{
	struct coord *c = NULL;
	char err[1024];
	int rc;

	if ((rc = exec_load(x, cause)) != 0)
		goto out;
	x->co.worker_no_seccomp = luaeng_servers_unconfined(x->le);
	/* A graph that can make no task forks its workers only if it
	   does after all; one with servers starts them with the
	   coordinator, so they start while the graph begins. */
	x->co.lazy = !luaeng_needs_workers(x->le);
	if ((c = coord_new(&x->co, x->st, err, sizeof err)) == NULL) {
		exec_cause(cause, "cannot start the coordinator: %s", err);
		rc = WEFT_EXIT_FAILED;
		goto out;
	}
	if ((rc = exec_begin(x, c, NULL, NULL, cause)) != 0)
		goto out;
	if (!x->loopfail && coord_loop(c, x->loop_err,
	    sizeof x->loop_err) != 0)
		x->loopfail = 1;
	rc = exec_end(x, cause);
	x->spawned = coord_workers_spawned(c);
out:
	exec_release(x);
	coord_free(c);
	return rc;
}

static void
exec_init(struct exec *x, const struct exec_spec *s)
{
	memset(x, 0, sizeof *x);
	x->spec = s;
	x->co = s->co;
}

/* Release an execution (its record read first, if it still is). */
static void
exec_clear(struct exec *x)
{
	char *cause = NULL;

	exec_await_record(x, &cause);
	free(cause);
	luaeng_outcome_clear(&x->oc);
	json_decref(x->input);
	json_decref(x->budget);
	json_decref(x->start);
	free(x->input_text);
	replay_free(x->rec);
	if (!x->st_borrowed)
		store_close(x->st);
	memset(x, 0, sizeof *x);
}

/* weft run WORKFLOW: a new run. */
static int
exec_prepare_run(struct exec *x, char **cause)
{
	const struct exec_spec *s = x->spec;
	char *script;
	size_t slen;

	if (exec_inputs(x, NULL, cause) != 0)
		return WEFT_EXIT_USAGE;
	if ((script = read_file(s->workflow, &slen)) == NULL) {
		exec_cause(cause, "cannot read workflow '%s': %s",
		    s->workflow, strerror(errno));
		return WEFT_EXIT_USAGE;
	}
	sha256_hex(script, slen, x->hash);
	free(script);
	if (s->run_id != NULL)
		snprintf(x->idbuf, sizeof x->idbuf, "%s", s->run_id);
	else
		random_hex(x->idbuf, 8);
	x->id = x->idbuf;
	x->path = s->workflow;
	x->create = 1;
	x->start_kind = "run.start";
	x->start = json_pack("{s:s, s:s}", "workflow", x->path, "hash",
	    x->hash);
	if (s->served)
		json_object_set_new(x->start, "served", json_true());
	exec_start_input(x, x->start);
	return 0;
}

/* Hash the recorded run's workflow file as it is now (x->hash; *changed:
   edited since the run); 0, or 1 if it cannot be read. */
static int
exec_prior_script(struct exec *x, const struct exec_prior *r, int *changed,
    char **cause)
{
	if ((*changed = prior_changed(r, x->hash)) < 0) {
		exec_cause(cause, "cannot read workflow '%s': %s",
		    r->workflow, strerror(errno));
		return WEFT_EXIT_FAILED;
	}
	x->path = r->workflow;
	return 0;
}

/*
 * weft resume RUN: check the run (unlocked; exec_claim checks again under
 * the lock), read its record, and go on in its id.
 */
static int
exec_prepare_resume(struct exec *x, struct exec_prior *r, char **cause)
{
	const struct exec_spec *s = x->spec;
	char err[512];
	int rc, changed;

	if (x->st == NULL && (rc = exec_open(s, 0, &x->st, cause)) != 0)
		return rc;
	if (prior_find(x->st, s->run, r, cause) != 0)
		return WEFT_EXIT_FAILED;
	if ((x->claim_events = store_event_count(x->st, r->id)) < 0) {
		exec_cause(cause, "%s", store_error(x->st));
		return WEFT_EXIT_FAILED;
	}
	if (prior_check(x->st, r, s->rerun_lost, cause) != 0 ||
	    exec_prior_script(x, r, &changed, cause) != 0)
		return WEFT_EXIT_FAILED;
	if (changed)
		fprintf(stderr, "weft: note: workflow '%s' changed since the "
		    "run (sha256 %.12s... then, %.12s... now): calls that "
		    "differ from the record run live\n", r->workflow,
		    r->hash ? r->hash : "?", x->hash);
	if (exec_inputs(x, r, cause) != 0)
		return WEFT_EXIT_USAGE;
	if ((x->rec = replay_load(x->st, r->id, REPLAY_RESUME, 0, err,
	    sizeof err)) == NULL) {
		exec_cause(cause, "%s", err);
		return WEFT_EXIT_FAILED;
	}
	x->claim = 1;
	x->claim_pid = r->pid;
	x->claim_owner = r->owner;
	x->id = r->id;
	x->last_seq = replay_last_seq(x->rec);
	x->start_kind = "run.resume";
	x->start = json_pack("{s:s, s:s, s:I, s:s, s:b}", "previous_status",
	    r->status, "workflow", r->workflow, "recorded",
	    (json_int_t)replay_recorded(x->rec), "hash", x->hash,
	    "script_changed", changed);
	return 0;
}

/* weft replay RUN --fork SEQ: a new run, answered from RUN up to SEQ. */
static int
exec_prepare_fork(struct exec *x, struct exec_prior *r, char **cause)
{
	const struct exec_spec *s = x->spec;
	char err[512];
	int64_t events;
	int rc, changed;

	if ((rc = exec_open(s, 0, &x->st, cause)) != 0)
		return rc;
	if (prior_find(x->st, s->run, r, cause) != 0 ||
	    exec_prior_script(x, r, &changed, cause) != 0)
		return WEFT_EXIT_FAILED;
	if (s->fork_seq > (events = store_event_count(x->st, r->id))) {
		exec_cause(cause, "run %s has %lld events: --fork %lld is "
		    "past its end", r->id, (long long)events,
		    (long long)s->fork_seq);
		return WEFT_EXIT_USAGE;
	}
	if (exec_inputs(x, r, cause) != 0)
		return WEFT_EXIT_USAGE;
	if ((x->rec = replay_load(x->st, r->id, REPLAY_RESUME, s->fork_seq,
	    err, sizeof err)) == NULL) {
		exec_cause(cause, "%s", err);
		return WEFT_EXIT_FAILED;
	}
	random_hex(x->idbuf, 8);
	x->id = x->idbuf;
	x->create = 1;
	x->parent = r->id;
	x->start_kind = "run.start";
	x->start = json_pack("{s:s, s:s, s:{s:s, s:I}, s:b}", "workflow",
	    r->workflow, "hash", x->hash, "forked_from", "run", r->id, "seq",
	    (json_int_t)s->fork_seq, "script_changed", changed);
	exec_start_input(x, x->start);
	return 0;
}

/*
 * One offline execution of run r (x->hash: its script now) into a store
 * in memory, with a wide parallel's branches a few at a time or,
 * all_at_once, all at once.  Returns 0 when it ran (x says how), else the
 * exit status; release x with exec_clear either way.
 */
static int
replay_attempt(struct exec *x, struct store *st, struct exec_prior *r,
    int all_at_once, char **cause)
{
	struct store_run row;
	char err[512];

	if (exec_inputs(x, r, cause) != 0)
		return WEFT_EXIT_USAGE;
	/* The record is read while the workflow loads; st is the loader's
	   until exec_await_record. */
	x->id = r->id;
	exec_start_record(x, st);
	if (store_open(":memory:", &x->st, err, sizeof err) != 0) {
		exec_cause(cause, "%s", err);
		return WEFT_EXIT_FAILED;
	}
	memset(&row, 0, sizeof row);
	row.id = r->id;
	row.workflow = r->workflow;
	row.workflow_hash = x->hash;
	row.input = r->input;
	row.status = "running";
	row.started = now_wall();
	if (store_run_create(x->st, &row) != 0) {
		exec_cause(cause, "%s", store_error(x->st));
		return WEFT_EXIT_FAILED;
	}
	x->path = r->workflow;
	x->start_kind = "run.start";
	x->start = json_object();
	x->co.workers = 0;	/* offline: no call is ever made */
	x->offline = 1;
	x->all_at_once = all_at_once;
	return exec_once(x, cause);
}

/*
 * An offline replay's verdict: the first divergence of x from the record
 * of r, or NULL when identical (a heap string).
 */
static char *
replay_judge(struct exec *x, const struct exec_prior *r)
{
	const char *div = replay_divergence(x->rec);
	char *out, *msg = NULL;

	if (div == NULL && replay_check_unused(x->rec) != 0)
		div = replay_divergence(x->rec);
	if (div == NULL && strcmp(r->status, "running") != 0) {
		out = x->oc.output ? json_dumps(x->oc.output, JSON_COMPACT |
		    JSON_ENCODE_ANY) : NULL;
		if (strcmp(x->oc.status, r->status) != 0 || ((out == NULL) !=
		    (r->output == NULL)) || (out && strcmp(out, r->output)))
			msg = xasprintf("every call matches the record, "
			    "but the run now ends differently:\n  record: %s "
			    "%s\n  script: %s %s", r->status, r->output ?
			    r->output : (r->error ? r->error : ""),
			    x->oc.status, out ? out : (x->oc.error ?
			    x->oc.error : ""));
		free(out);
	}
	return msg != NULL ? msg : dup_or_null(div);
}

/*
 * weft replay RUN: offline, into a store in memory.  A wide parallel runs
 * a few branches at a time (runner.lua); if the replay then diverges, it
 * is run again with every branch at once, as live, and that verdict
 * counts: what branches share (a changed tool list, a hook's counter) may
 * depend on how many run together.
 */
static int
exec_replay(const struct exec_spec *s, struct exec_result *res,
    char **cause)
{
	struct exec x;
	struct exec_prior r;
	struct store *st = NULL;
	char *div = NULL;
	int rc;

	memset(&r, 0, sizeof r);
	exec_init(&x, s);
	/* An offline replay writes nothing: a read-only store will do. */
	if ((rc = exec_open(s, 1, &st, cause)) != 0)
		return rc;
	if (prior_find(st, s->run, &r, cause) != 0 ||
	    exec_prior_script(&x, &r, &res->script_changed, cause) != 0) {
		rc = WEFT_EXIT_FAILED;
		goto out;
	}
	memcpy(res->hash, x.hash, sizeof res->hash);
	res->events = store_event_count(st, r.id);
	rc = replay_attempt(&x, st, &r, 0, cause);
	res->elapsed = x.elapsed;
	if (rc == 0 && (div = replay_judge(&x, &r)) != NULL &&
	    x.went_bounded) {
		free(div);
		div = NULL;
		exec_clear(&x);
		exec_init(&x, s);
		memcpy(x.hash, res->hash, sizeof x.hash);
		rc = replay_attempt(&x, st, &r, 1, cause);
		res->elapsed += x.elapsed;
		if (rc == 0)
			div = replay_judge(&x, &r);
	}
	if (rc == 0) {
		snprintf(res->id, sizeof res->id, "%s", r.id);
		res->divergence = div;
		div = NULL;
		res->workflow = xstrdup(r.workflow);
		res->recorded_hash = dup_or_null(r.hash);
		res->answered = replay_answered(x.rec);
		res->load_s = x.load_s;
		res->all_at_once = x.all_at_once;
	}
	free(div);
out:
	/* A record that could not be read is said too (as exec_once does). */
	if (exec_await_record(&x, cause) != 0 && rc == 0)
		rc = WEFT_EXIT_FAILED;
	exec_clear(&x);
	prior_clear(&r);
	store_close(st);
	return rc;
}

void
exec_spec_init(struct exec_spec *s, enum exec_mode mode)
{
	long nproc = sysconf(_SC_NPROCESSORS_ONLN);

	memset(s, 0, sizeof *s);
	s->mode = mode;
	s->co.workers = nproc > 0 ? (int)nproc : 2;
	s->co.slots = 256;
	s->co.lease_s = 30;
	s->co.heartbeat_s = 1;
	s->co.max_attempts = 3;
}

int
exec_run(const struct exec_spec *s, struct exec_result *res, char **cause)
{
	struct exec x;
	struct exec_prior r;
	int rc;

	memset(res, 0, sizeof *res);
	*cause = NULL;
	if (s->mode == EXEC_REPLAY)
		return exec_replay(s, res, cause);
	exec_init(&x, s);
	memset(&r, 0, sizeof r);
	switch (s->mode) {
	case EXEC_RUN:
		rc = exec_prepare_run(&x, cause);
		break;
	case EXEC_RESUME:
		rc = exec_prepare_resume(&x, &r, cause);
		break;
	default:
		rc = exec_prepare_fork(&x, &r, cause);
		break;
	}
	if (rc == 0)
		rc = exec_once(&x, cause);
	if (rc == 0) {
		exec_result_of(&x, res);
		if (s->mode == EXEC_RESUME)
			res->prior_status = xstrdup(r.status);
		if (s->mode == EXEC_FORK)
			snprintf(res->parent, sizeof res->parent, "%s", r.id);
	}
	exec_clear(&x);
	prior_clear(&r);
	return rc;
}

/* The result of execution x that ran, for its caller. */
static void
exec_result_of(struct exec *x, struct exec_result *res)
{
	memset(res, 0, sizeof *res);
	snprintf(res->id, sizeof res->id, "%s", x->id);
	res->oc = x->oc;
	memset(&x->oc, 0, sizeof x->oc);
	res->elapsed = x->elapsed;
	res->workers_spawned = x->spawned;
	if (x->rec != NULL) {
		res->answered = replay_answered(x->rec);
		res->recorded = replay_recorded(x->rec);
	}
}

/* Free an execution begun by exec_start. */
static void
exec_free(struct exec *x)
{
	/* Copied out: exec_clear clears all of x. */
	struct exec_spec ownc = x->own, *own = &ownc;
	struct exec_prior prior = x->prior;
	json_t *vars = x->vars;

	if (x->fail_ev != NULL)
		event_free(x->fail_ev);
	exec_release(x);
	exec_clear(x);
	prior_clear(&prior);
	json_decref(vars);
	free((char *)own->workflow);
	free((char *)own->run_id);
	free((char *)own->run);
	free((char *)own->input_text);
	json_decref(own->budget);
	free(x);
}

/* A started run ended (the coordinator's sink): record it, tell, free. */
static void
exec_ended_cb(void *arg, struct crun *run)
{
	struct exec *x = arg;
	struct exec_result res;
	char *cause = NULL;
	int rc;

	(void)run;
	rc = exec_end(x, &cause);
	exec_result_of(x, &res);
	x->done(x->done_arg, x, &res, rc, cause);
	free(cause);
	exec_result_clear(&res);
	exec_free(x);
}

/* The graph failed as it started (x->loop_err): end it on the loop. */
static void
exec_fail_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	exec_ended_cb(arg, NULL);
}

struct exec *
exec_start(const struct exec_spec *s, struct coord *c, struct store *st,
    const json_t *vars, exec_done_fn done, void *arg, int *rc,
    char **cause)
{
	struct exec *x = xcalloc(1, sizeof *x);

	*cause = NULL;
	exec_init(x, &x->own);
	x->own = *s;
	x->own.workflow = s->workflow ? xstrdup(s->workflow) : NULL;
	x->own.run_id = s->run_id ? xstrdup(s->run_id) : NULL;
	x->own.run = s->run ? xstrdup(s->run) : NULL;
	x->own.input_text = s->input_text ? xstrdup(s->input_text) : NULL;
	x->own.input_file = NULL;
	x->co = s->co;
	if (s->budget != NULL)
		json_incref(s->budget);
	x->st = st;
	x->st_borrowed = 1;
	x->vars = vars != NULL ? json_deep_copy(vars) : NULL;
	x->done = done;
	x->done_arg = arg;
	switch (s->mode) {
	case EXEC_RUN:
		*rc = exec_prepare_run(x, cause);
		break;
	case EXEC_RESUME:
		*rc = exec_prepare_resume(x, &x->prior, cause);
		break;
	default:
		exec_cause(cause, "a served run is a run or a resume");
		*rc = WEFT_EXIT_USAGE;
		break;
	}
	if (*rc == 0)
		*rc = exec_load(x, cause);
	/* A server holds many runs: what loading left behind goes now,
	   not at the collector's next cycle (about 40 KB a run). */
	if (*rc == 0)
		luaeng_collect(x->le);
	if (*rc == 0)
		*rc = exec_begin(x, c, exec_ended_cb, x, cause);
	if (*rc != 0) {
		exec_free(x);
		return NULL;
	}
	if (x->loopfail) {
		/* Recorded as begun; it ends on the loop, as any run. */
		x->fail_ev = event_new(coord_base(c), -1, 0, exec_fail_cb, x);
		event_active(x->fail_ev, EV_TIMEOUT, 0);
	}
	return x;
}

void
exec_cancel(struct exec *x, const char *why)
{
	if (x->run != NULL)
		crun_cancel(x->run, why);
}

void
exec_abandon(struct exec *x)
{
	exec_free(x);
}

const char *
exec_id(const struct exec *x)
{
	return x->id;
}

int
exec_model_calls(const struct exec *x)
{
	return x->gw != NULL ? gateway_calls(x->gw) : 0;
}

void
exec_result_clear(struct exec_result *res)
{
	luaeng_outcome_clear(&res->oc);
	free(res->prior_status);
	free(res->divergence);
	free(res->workflow);
	free(res->recorded_hash);
	memset(res, 0, sizeof *res);
}

int
exec_exit_status(const char *status)
{
	if (strcmp(status, "succeeded") == 0)
		return WEFT_EXIT_OK;
	if (strcmp(status, "budget_exceeded") == 0)
		return WEFT_EXIT_BUDGET;
	if (strcmp(status, "paused") == 0)
		return WEFT_EXIT_PAUSED;
	if (strcmp(status, "waiting") == 0)
		return WEFT_EXIT_WAITING;
	if (strcmp(status, "cancelled") == 0)
		return WEFT_EXIT_CANCELLED;
	return WEFT_EXIT_FAILED;
}

/* Print an output value: strings raw, the rest as JSON. */
static void
exec_print_output(json_t *out)
{
	size_t n;
	char *s;

	if (out == NULL)
		return;
	if (json_is_string(out)) {
		fputs(json_string_value(out), stdout);
		n = json_string_length(out);
		if (n == 0 || json_string_value(out)[n - 1] != '\n')
			fputc('\n', stdout);
		return;
	}
	s = json_dumps(out, JSON_INDENT(2) | JSON_ENCODE_ANY);
	printf("%s\n", s);
	free(s);
}

/* The outcome as one JSON object. */
static void
exec_report_json(const struct exec_spec *s, const struct exec_result *res)
{
	const struct luaeng_outcome *oc = &res->oc;
	struct rusage ru;
	json_t *p;
	char *text;

	getrusage(RUSAGE_SELF, &ru);
	p = json_pack("{s:s, s:s, s:O?, s:s?, s:I, s:I, s:I, s:I, s:f, s:f, "
	    "s:b, s:i, s:{s:f, s:f}}", "run", res->id, "status", oc->status,
	    "output", oc->output, "error", oc->error,
	    "steps", (json_int_t)oc->steps,
	    "model_calls", (json_int_t)oc->model_calls,
	    "tool_calls", (json_int_t)oc->tool_calls,
	    "tokens", (json_int_t)oc->tokens, "cost_usd", oc->cost,
	    "duration", res->elapsed, "scripted", oc->scripted,
	    "workers_started", res->workers_spawned,
	    "coordinator_cpu", "user", ru.ru_utime.tv_sec +
	    ru.ru_utime.tv_usec / 1e6, "system", ru.ru_stime.tv_sec +
	    ru.ru_stime.tv_usec / 1e6);
	if (s->mode != EXEC_RUN)
		json_object_set_new(p, "answered_from_record",
		    json_integer(res->answered));
	text = json_dumps(p, JSON_INDENT(2));
	printf("%s\n", text);
	free(text);
	json_decref(p);
}

/* The answer, then unless quiet the summary. */
static void
exec_report_text(const struct exec_spec *s, const struct exec_result *res)
{
	const struct luaeng_outcome *oc = &res->oc;

	if (strcmp(oc->status, "succeeded") == 0)
		exec_print_output(oc->output);
	if (s->quiet)
		return;
	printf("\nrun      %s  %s\n", res->id, oc->status);
	if (s->mode == EXEC_RESUME)
		printf("resumed  %lld of %lld recorded steps answered from "
		    "the store (was %s)\n", (long long)res->answered,
		    (long long)res->recorded, res->prior_status);
	else if (s->mode == EXEC_FORK)
		printf("forked   from %s at seq %lld: %lld steps answered "
		    "from its record\n", res->parent, (long long)s->fork_seq,
		    (long long)res->answered);
	printf("steps    %lld (%lld model turns, %lld tool calls)\n",
	    (long long)oc->steps, (long long)oc->model_calls,
	    (long long)oc->tool_calls);
	printf("tokens   %lld\n", (long long)oc->tokens);
	printf("cost     $%.4f\n", oc->cost);
	printf("time     %.3fs\n", res->elapsed);
	if (oc->scripted)
		printf("model    scripted: offline, answers come from the "
		    "workflow's script, not a real LLM\n");
	printf("inspect  weft show %s\n", res->id);
}

/* An offline replay's verdict; the exit status. */
static int
exec_report_verdict(const struct exec_spec *s, const struct exec_result *res)
{
	const char *div = res->divergence;
	char *out;
	json_t *p;

	if (s->json) {
		p = json_pack("{s:s, s:b, s:s?, s:s, s:b, s:s?, s:s, s:I, "
		    "s:I, s:f, s:f, s:b}", "run", res->id, "identical",
		    div == NULL, "divergence", div, "workflow", res->workflow,
		    "script_changed", res->script_changed, "recorded_hash",
		    res->recorded_hash, "hash", res->hash,
		    "steps", (json_int_t)res->answered,
		    "events", (json_int_t)res->events, "seconds", res->elapsed,
		    "load_seconds", res->load_s, "all_at_once",
		    res->all_at_once);
		out = json_dumps(p, JSON_INDENT(2));
		printf("%s\n", out);
		free(out);
		json_decref(p);
	} else {
		if (res->script_changed)
			printf("workflow '%s' changed since the run (sha256 "
			    "%s at the run, %s now)\n", res->workflow,
			    res->recorded_hash ? res->recorded_hash : "?",
			    res->hash);
		if (div == NULL)
			printf("identical: %lld recorded steps of %lld events "
			    "replayed in %.3fs%s\n", (long long)res->answered,
			    (long long)res->events, res->elapsed,
			    res->all_at_once ? " (the second time with every "
			    "branch of a parallel at once)" : "");
		else
			printf("run %s diverges from its record\n%s\n",
			    res->id, div);
	}
	return div == NULL ? WEFT_EXIT_OK : WEFT_EXIT_FAILED;
}

int
exec_report(const struct exec_spec *s, const struct exec_result *res)
{
	const struct luaeng_outcome *oc = &res->oc;
	const char *id = res->id;

	if (s->mode == EXEC_REPLAY)
		return exec_report_verdict(s, res);
	if (s->json)
		exec_report_json(s, res);
	else
		exec_report_text(s, res);
	fflush(stdout);
	if (strcmp(oc->status, "succeeded") == 0)
		return 0;
	if (strcmp(oc->status, "budget_exceeded") == 0)
		fprintf(stderr, "weft: run %s stopped: %s\n", id,
		    oc->error ? oc->error : "budget exceeded");
	else if (strcmp(oc->status, "paused") == 0)
		fprintf(stderr, "weft: run %s paused: %s\n"
		    "weft: nothing is lost; continue it with a larger "
		    "envelope: weft resume %s --budget DIM=LIMIT,...\n", id,
		    oc->error ? oc->error : "a budget limit was reached", id);
	else if (strcmp(oc->status, "waiting") == 0)
		fprintf(stderr, "weft: run %s is %s\n"
		    "weft: nothing is lost; answer it with: weft approve %s "
		    "[--answer JSON]  or  weft reject %s --reason TEXT\n"
		    "weft: then continue it with: weft resume %s\n", id,
		    oc->error ? oc->error : "waiting for approval", id, id,
		    id);
	else if (strcmp(oc->status, "cancelled") == 0)
		fprintf(stderr, "weft: run %s cancelled; everything so far is "
		    "recorded (weft show %s)\n", id, id);
	else
		fprintf(stderr, "weft: run %s %s: %s\n", id, oc->status,
		    oc->error ? oc->error : "unknown error");
	return exec_exit_status(oc->status);
}
