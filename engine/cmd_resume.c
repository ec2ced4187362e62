/*
 * cmd_resume.c: `weft resume RUN` and `weft replay RUN [--fork SEQ]`:
 * re-execute a recorded run's script with its calls answered from the
 * store (engine/replay.h, docs/durability.md).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine/cmd.h"
#include "engine/coord.h"
#include "engine/gateway.h"
#include "engine/replay.h"
#include "engine/store.h"
#include "runtime/util.h"
#include "lua/luaeng.h"

#define RESUME_LUA_MEM	(512u * 1024 * 1024)

/* A recorded run's row, copied out of the store. */
struct rrun {
	char		*id, *workflow, *hash, *input, *budget, *status;
	char		*output, *error;
	/* the coordinator that last ran it (run.start, run.resume) */
	long		 pid;
	char		*owner;
	char		*cwd;		/* of the first coordinator */
	/* messages of task.lost events since that coordinator started */
	json_t		*lost;
};

/* One execution of a script against a record. */
struct rexec {
	struct store		*st;		/* where its events go */
	const char		*id;
	const char		*path;
	json_t			*input, *budget;
	struct replay		*rec;
	int64_t			 last_seq;
	const char		*start_kind;	/* run.start, run.resume */
	json_t			*start;		/* its payload */
	struct coord_opts	 co;
	struct luaeng_outcome	 oc;
	double			 elapsed;
	double			 load_s;	/* reading the record */
	/*
	 * An offline replay reads the record on a thread of its own while
	 * the workflow loads (rexec_await_record): from st, run id.
	 */
	pthread_t		 loader;
	int			 loading;
	struct store		*rec_st;
	char			 rec_err[512];
	int			 offline;
	int			 all_at_once;	/* coord_all_at_once */
	int			 went_bounded;	/* coord_went_bounded */
	int			 mark_running;	/* set the row's status first */
	/* weft resume's claim (rexec_claim): what the check saw unlocked */
	int64_t			 claim_events;
	long			 claim_pid;
	const char		*claim_owner;
};

static void
rrun_clear(struct rrun *r)
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

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static int
rrun_row_cb(void *arg, const struct store_run *sr)
{
	struct rrun *r = arg;

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
rrun_owner_cb(void *arg, const struct store_event *ev)
{
	struct rrun *r = arg;
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
rrun_cwd_cb(void *arg, const struct store_event *ev)
{
	struct rrun *r = arg;
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
 * Find the run by id or prefix; 0, or -1 with a message printed.  A
 * relative workflow path that does not resolve from here is taken from
 * the directory the run started in.
 */
static int
rrun_find(struct store *st, const char *ref, struct rrun *r)
{
	char *abs;

	if (store_run_find(st, ref, rrun_row_cb, r) != 0) {
		fprintf(stderr, "weft: %s\n", store_error(st));
		return -1;
	}
	if (r->workflow[0] != '/' && access(r->workflow, R_OK) != 0 &&
	    store_events_foreach(st, r->id, rrun_cwd_cb, r) >= 0 &&
	    r->cwd != NULL) {
		abs = xasprintf("%s/%s", r->cwd, r->workflow);
		free(r->workflow);
		r->workflow = abs;
	}
	return 0;
}

/* Whether the coordinator that owns the run is alive. */
static int
rrun_owner_alive(const struct rrun *r)
{
	char now[128];

	if (r->pid <= 0 || r->owner == NULL)
		return 0;
	if (replay_proc_identity(r->pid, now, sizeof now) != 0)
		return 0;
	return strcmp(now, r->owner) == 0;
}

void
cmd_run_owner(json_t *payload)
{
	char id[128], cwd[PATH_MAX];

	json_object_set_new(payload, "pid", json_integer(getpid()));
	if (getcwd(cwd, sizeof cwd) != NULL)
		json_object_set_new(payload, "cwd", json_string(cwd));
	if (replay_proc_identity(0, id, sizeof id) == 0)
		json_object_set_new(payload, "owner", json_string(id));
}

/* A JSON object from text, or NULL with a message naming what. */
static json_t *
parse_object(const char *text, const char *what)
{
	json_error_t je;
	json_t *j;

	if ((j = json_loads(text, 0, &je)) == NULL || !json_is_object(j)) {
		fprintf(stderr, "weft: %s is not a JSON object%s%s\n", what,
		    j == NULL ? ": " : "", j == NULL ? je.text : "");
		json_decref(j);
		return NULL;
	}
	return j;
}

/* Read the script and compare its hash with the run's; 1 if changed. */
static int
script_changed(const struct rrun *r, char now[65])
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

/* The run.end event and the run row's final columns. */
static int
rexec_finish(struct rexec *x, struct coord *c)
{
	struct luaeng_outcome *oc = &x->oc;
	struct store_run run;
	char *out, *spend;
	json_t *p;
	int rv;

	p = json_pack("{s:s, s:O?, s:s?, s:I, s:I, s:I, s:I, s:f, s:I}",
	    "status", oc->status, "output", oc->output, "error", oc->error,
	    "steps", (json_int_t)oc->steps, "tokens", (json_int_t)oc->tokens,
	    "model_calls", (json_int_t)oc->model_calls, "tool_calls",
	    (json_int_t)oc->tool_calls, "duration", x->elapsed,
	    "answered_from_record",
	    (json_int_t)(x->rec ? replay_answered(x->rec) : 0));
	out = json_dumps(x->input, JSON_COMPACT);
	cmd_end_state(p, oc->state, x->input, out != NULL &&
	    strlen(out) > STORE_INPUT_INLINE_MAX);
	free(out);
	coord_event(c, "run.end", 0, 0, "", 0, p, oc->tokens, oc->cost);
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
	rv = store_run_finish(x->st, &run) != 0 || store_commit(x->st) != 0;
	if (rv)
		fprintf(stderr, "weft: %s\n", store_error(x->st));
	free(out);
	free(spend);
	return rv ? -1 : 0;
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
rexec_claim(struct rexec *x)
{
	struct store_run row;
	struct rrun now;
	char id[128];
	int64_t n;
	int rc = -1;

	memset(&now, 0, sizeof now);
	if (store_begin(x->st) != 0) {
		fprintf(stderr, "weft: %s\n", store_error(x->st));
		return -1;
	}
	if (store_run_find(x->st, x->id, rrun_row_cb, &now) != 0)
		fprintf(stderr, "weft: %s\n", store_error(x->st));
	else if (strcmp(now.status, "succeeded") == 0 ||
	    (n = store_event_count(x->st, x->id)) != x->claim_events)
		fprintf(stderr, "weft: run %s changed while this resume was "
		    "starting (another weft resume?): look at it again with "
		    "weft show %s\n", x->id, x->id);
	else if (x->claim_pid > 0 && x->claim_owner != NULL &&
	    replay_proc_identity(x->claim_pid, id, sizeof id) == 0 &&
	    strcmp(id, x->claim_owner) == 0)
		fprintf(stderr, "weft: run %s is still running (its "
		    "coordinator, pid %ld, is alive)\n", x->id, x->claim_pid);
	else {
		memset(&row, 0, sizeof row);
		row.id = x->id;
		row.status = "running";
		if ((rc = store_run_finish(x->st, &row)) != 0)
			fprintf(stderr, "weft: %s\n", store_error(x->st));
	}
	if (rc != 0 && store_commit(x->st) != 0)
		fprintf(stderr, "weft: %s\n", store_error(x->st));
	rrun_clear(&now);
	return rc;
}

static void *
rexec_load_record(void *arg)
{
	struct rexec *x = arg;
	double t0 = now_mono();

	x->rec = replay_load(x->rec_st, x->id, REPLAY_OFFLINE, 0, x->rec_err,
	    sizeof x->rec_err);
	x->load_s = now_mono() - t0;
	return NULL;
}

/* Start reading the record of run x->id from st on the loader thread. */
static void
rexec_start_record(struct rexec *x, struct store *st)
{
	int e;

	sigset_t all, old;

	x->rec_st = st;
	/* Signals (the Lua watchdog's SIGALRM, ^C) are for the main thread:
	   the loader is made with all of them blocked. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(&x->loader, NULL, rexec_load_record, x);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0)
		fatalx(1, "cannot start a thread: %s", strerror(e));
	x->loading = 1;
}

/* Wait for the loader thread; -1 (said on stderr) if the read failed. */
static int
rexec_await_record(struct rexec *x)
{
	if (!x->loading)
		return 0;
	pthread_join(x->loader, NULL);
	x->loading = 0;
	if (x->rec == NULL) {
		fprintf(stderr, "weft: %s\n", x->rec_err);
		return -1;
	}
	return 0;
}

/*
 * Run the script at x->path as run x->id with x->rec answering calls.
 * Returns 0 when the run ran (x->oc says how it ended), 2 when the
 * workflow does not load, 1 when the coordinator cannot start.
 */
static int
rexec_run(struct rexec *x)
{
	struct coord_sink sink;
	struct coord *c = NULL;
	struct gateway *gw = NULL;
	struct luaeng *le;
	char err[1024];
	double t0;
	int rc = 2, loopfail = 0;

	le = luaeng_new(RESUME_LUA_MEM);
	loopfail = luaeng_load(le, x->path, err, sizeof err);
	/* An unreadable record is said first, as when it was read first. */
	if (rexec_await_record(x) != 0) {
		rc = 1;
		goto out;
	}
	if (loopfail) {
		fprintf(stderr, "weft: %s\n", err);
		goto out;
	}
	rc = 1;
	x->co.worker_no_seccomp = luaeng_servers_unconfined(le);
	if ((c = coord_new(&x->co, x->st, err, sizeof err)) == NULL) {
		fprintf(stderr, "weft: cannot start the coordinator: %s\n", err);
		goto out;
	}
	if ((gw = gateway_new(c, x->st, err, sizeof err)) == NULL) {
		fprintf(stderr, "weft: %s\n", err);
		goto out;
	}
	luaeng_set_gateway(le, gw);
	t0 = now_mono();
	memset(&sink, 0, sizeof sink);
	coord_set_replay(c, x->rec, x->last_seq);	/* for luaeng_start */
	if (luaeng_start(le, c, x->input, x->budget, &sink, err,
	    sizeof err) != 0)
		loopfail = 1;
	coord_begin_run(c, x->id, &sink);
	coord_set_replay(c, x->rec, x->last_seq);
	if (x->offline)
		coord_discard_events(c);
	if (x->all_at_once)
		coord_all_at_once(c);
	if (x->mark_running && rexec_claim(x) != 0)
		goto out;
	cmd_run_owner(x->start);
	coord_event(c, x->start_kind, 0, 0, "", 0, x->start, 0, 0);
	if (x->mark_running && store_commit(x->st) != 0) {
		/* The claim is not recorded: nothing ran. */
		coord_store_message(c, err, sizeof err);
		fprintf(stderr, "weft: %s\n", err);
		rc = 4;
		goto out;
	}
	if (!loopfail && coord_loop(c, err, sizeof err) != 0)
		loopfail = 1;
	x->elapsed = now_mono() - t0;
	if (store_broken(x->st, NULL, 0) != 0) {
		/* As weft run: nothing more can be recorded; the run stays
		   as recorded so far, resumable once the store is fixed. */
		coord_store_message(c, err, sizeof err);
		fprintf(stderr, "weft: %s\n", err);
		rc = 4;
		goto out;
	}
	if (loopfail) {
		x->oc.status = "failed";
		x->oc.error = xstrdup(err);
	} else
		luaeng_outcome(le, &x->oc);
	if (coord_cancelled(c)) {
		gateway_cancel(gw, "the run was cancelled");
		x->oc.status = "cancelled";
	}
	if (strcmp(x->oc.status, "cancelled") == 0 && x->oc.error == NULL)
		x->oc.error = xstrdup("cancelled by signal");
	rc = rexec_finish(x, c) == 0 ? 0 : 1;
out:
	if (c != NULL)
		x->went_bounded = coord_went_bounded(c);
	luaeng_free(le);
	gateway_free(gw);
	coord_free(c);
	return rc;
}

/* Print a run's outcome as `weft run` does; returns the exit status. */
static int
rexec_report(struct rexec *x, int json_out, int quiet, const char *extra)
{
	struct luaeng_outcome *oc = &x->oc;
	json_t *p;
	char *s;

	if (json_out) {
		p = json_pack("{s:s, s:s, s:O?, s:s?, s:I, s:I, s:I, s:I, s:f, "
		    "s:f, s:I}", "run", x->id, "status", oc->status, "output",
		    oc->output, "error", oc->error, "steps",
		    (json_int_t)oc->steps, "model_calls",
		    (json_int_t)oc->model_calls, "tool_calls",
		    (json_int_t)oc->tool_calls, "tokens",
		    (json_int_t)oc->tokens, "cost_usd", oc->cost, "duration",
		    x->elapsed, "answered_from_record",
		    (json_int_t)replay_answered(x->rec));
		s = json_dumps(p, JSON_INDENT(2));
		printf("%s\n", s);
		free(s);
		json_decref(p);
	} else {
		if (strcmp(oc->status, "succeeded") == 0 && oc->output) {
			s = json_is_string(oc->output) ?
			    xstrdup(json_string_value(oc->output)) :
			    json_dumps(oc->output, JSON_INDENT(2) |
			    JSON_ENCODE_ANY);
			printf("%s%s", s, *s && s[strlen(s) - 1] == '\n' ?
			    "" : "\n");
			free(s);
		}
		if (!quiet) {
			printf("\nrun      %s  %s\n", x->id, oc->status);
			printf("%s\n", extra);
			printf("steps    %lld (%lld model turns, %lld tool "
			    "calls)\n", (long long)oc->steps,
			    (long long)oc->model_calls,
			    (long long)oc->tool_calls);
			printf("tokens   %lld\n", (long long)oc->tokens);
			printf("cost     $%.4f\n", oc->cost);
			printf("time     %.3fs\n", x->elapsed);
			printf("inspect  weft show %s\n", x->id);
		}
	}
	fflush(stdout);
	if (strcmp(oc->status, "succeeded") == 0)
		return 0;
	if (strcmp(oc->status, "paused") == 0)
		cmd_paused_hint(x->id, oc->error);
	else
		fprintf(stderr, "weft: run %s %s: %s\n", x->id, oc->status,
		    oc->error ? oc->error : "unknown error");
	return cmd_exit_status(oc->status);
}

/* Options common to resume and replay. */
struct ropts {
	const char	*db, *input_text, *input_file;
	json_t		*budget;
	int64_t		 fork_seq;
	int		 json_out, quiet, rerun_lost;
	struct coord_opts co;
};

static const struct option resume_longopts[] = {
	{ "db", required_argument, NULL, 'd' },
	{ "workers", required_argument, NULL, 'w' },
	{ "budget", required_argument, NULL, 'b' },
	{ "fork", required_argument, NULL, 'f' },
	{ "input", required_argument, NULL, 'i' },
	{ "input-file", required_argument, NULL, 'I' },
	{ "state-dir", required_argument, NULL, 'S' },
	{ "json", no_argument, NULL, 'j' },
	{ "rerun-lost", no_argument, NULL, 'L' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

/* Parse options; returns the index of RUN, or -1 (exit 2), -2 (help). */
static int
ropts_parse(int argc, char **argv, struct ropts *o, const char *allowed)
{
	long nproc = sysconf(_SC_NPROCESSORS_ONLN);
	char *end;
	int ch;

	o->co.workers = nproc > 0 ? (int)nproc : 2;
	o->co.slots = 256;
	o->co.lease_s = 30;
	o->co.heartbeat_s = 1;
	o->co.max_attempts = 3;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "qvh", resume_longopts, NULL)) !=
	    -1) {
		if (ch != '?' && ch != 'h' && strchr(allowed, ch) == NULL) {
			fprintf(stderr, "weft %s: option '%s' does not apply "
			    "here\n", argv[0], argv[optind - 1]);
			return -1;
		}
		switch (ch) {
		case 'd':
			o->db = optarg;
			break;
		case 'w':
			o->co.workers = atoi(optarg);
			if (o->co.workers < 1 || o->co.workers > 256) {
				fprintf(stderr, "weft: --workers must be "
				    "1..256\n");
				return -1;
			}
			break;
		case 'b':
			json_decref(o->budget);
			if ((o->budget = cmd_parse_budget(optarg)) == NULL)
				return -1;
			break;
		case 'f':
			o->fork_seq = strtoll(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || o->fork_seq < 1) {
				fprintf(stderr, "weft: --fork takes an event "
				    "seq (a positive integer, see weft show "
				    "--json)\n");
				return -1;
			}
			break;
		case 'i':
			o->input_text = optarg;
			break;
		case 'I':
			o->input_file = optarg;
			break;
		case 'S':
			o->co.state_dir = optarg;
			break;
		case 'j':
			o->json_out = 1;
			break;
		case 'L':
			o->rerun_lost = 1;
			break;
		case 'q':
			o->quiet = 1;
			break;
		case 'v':
			o->co.verbose = 1;
			break;
		case 'h':
			return -2;
		default:
			return -1;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "weft %s: %s\n", argv[0], optind >= argc ?
		    "which run? (weft runs lists them)" :
		    "expected one run id");
		return -1;
	}
	return optind;
}

static void
resume_usage(FILE *f)
{
	fprintf(f,
"usage: weft resume RUN [--budget LIMITS] [--workers N] [--db PATH] [--json]\n"
"\n"
"Resume a run that crashed (its coordinator died), failed, was cancelled,\n"
"ran out of budget or paused at a budget limit (on_exceed=pause):\n"
"re-execute its workflow file with the same input and budget (or --budget)\n"
"in the same run id.  Every call whose result is in the store (model\n"
"answers, tool results, w.now(), w.random()) is answered from there and\n"
"never repeated; the rest runs live.  A call that was in flight when the\n"
"run stopped, or that failed, runs again.  Events keep appending to the\n"
"run; a run.resume event opens the new part.  A run whose coordinator is\n"
"still alive, or that succeeded, is refused, and so is a run that stopped\n"
"because a call of a tool marked idempotent = false was lost in flight,\n"
"unless --rerun-lost says to call it again.  See docs/durability.md.\n"
"\n"
"options:\n"
"  --budget LIMITS     a new envelope (e.g. after budget_exceeded), as for\n"
"                      weft run; default: the run's own\n"
"  --rerun-lost        call again the non-idempotent calls lost in flight\n"
"                      (check the server's side first)\n"
"  --workers N         worker processes (default: number of cores)\n"
"  --db PATH           trajectory store (default $WEFT_DB or ./weft.db)\n"
"  --state-dir DIR     signing keys of capability tokens\n"
"  --json              print the outcome as one JSON object\n"
"  -q, --quiet         print only the answer\n"
"  -v, --verbose       log worker events to stderr\n"
"\n"
"exit status: as weft run (0 succeeded, 1 failed or refused, 2 bad usage,\n"
"3 budget exceeded, 4 the store could not be opened or written, 5 paused\n"
"again at a budget limit, 130 cancelled)\n");
}

static void
replay_usage(FILE *f)
{
	fprintf(f,
"usage: weft replay RUN [--db PATH] [--json]\n"
"       weft replay RUN --fork SEQ [--input JSON | --input-file FILE]\n"
"\n"
"Replay a recorded run offline: re-execute its workflow file with every\n"
"call (model, tool, w.now(), w.random()) answered from the store and none\n"
"made.  Prints `identical` (exit 0), or the first step where the script now\n"
"diverges from the record: node path, call number, what the record holds\n"
"and what the script does now (exit 1).  A workflow file edited since the\n"
"run is reported (its sha256 is recorded with the run).  Nothing is written\n"
"to the store.\n"
"\n"
"With --fork SEQ: start a new run (its parent is RUN) whose calls recorded\n"
"in RUN up to event SEQ are answered from the record, and the rest run\n"
"live; --input gives it a different input.\n"
"\n"
"options:\n"
"  --fork SEQ          fork at event SEQ (weft show RUN --json lists seqs)\n"
"  --input JSON        the fork's input (default: RUN's)\n"
"  --input-file FILE   the fork's input from FILE\n"
"  --budget LIMITS     the fork's envelope (default: RUN's)\n"
"  --workers N         the fork's worker processes\n"
"  --db PATH           trajectory store (default $WEFT_DB or ./weft.db)\n"
"  --state-dir DIR     signing keys of capability tokens\n"
"  --json              print the result as one JSON object\n"
"  -q, --quiet         print only the answer (--fork)\n"
"\n"
"exit status: 0 identical (a fork: succeeded), 1 diverged (a fork: failed),\n"
"2 bad usage\n");
}

/* The input and budget of a new execution of r; -1 on bad input. */
static int
rexec_inputs(struct rexec *x, const struct rrun *r, const struct ropts *o)
{
	char *text;

	if (o->input_text != NULL && o->input_file != NULL) {
		fprintf(stderr, "weft: give --input or --input-file, not both\n");
		return -1;
	}
	if (o->input_file != NULL) {
		if ((text = read_file(o->input_file, NULL)) == NULL) {
			fprintf(stderr, "weft: cannot read --input-file '%s': "
			    "%s\n", o->input_file, strerror(errno));
			return -1;
		}
		x->input = parse_object(text, o->input_file);
		free(text);
	} else
		x->input = parse_object(o->input_text ? o->input_text :
		    r->input ? r->input : "{}", o->input_text ? "--input" :
		    "the run's input");
	if (x->input == NULL)
		return -1;
	if (o->budget != NULL)
		x->budget = json_incref(o->budget);
	else if (r->budget != NULL && (x->budget = parse_object(r->budget,
	    "the run's budget")) == NULL)
		return -1;
	return 0;
}

/* Refuse a run that cannot be resumed; 0 if it can. */
static int
resume_check(struct store *st, struct rrun *r, int rerun_lost)
{
	size_t i;

	if (strcmp(r->status, "succeeded") == 0) {
		fprintf(stderr, "weft: run %s succeeded: there is nothing to "
		    "resume (weft replay %s --fork SEQ starts a new run from "
		    "any point of it)\n", r->id, r->id);
		return -1;
	}
	r->lost = json_array();
	if (store_events_foreach(st, r->id, rrun_owner_cb, r) != 0) {
		fprintf(stderr, "weft: %s\n", store_error(st));
		return -1;
	}
	if (json_array_size(r->lost) > 0 && !rerun_lost) {
		fprintf(stderr, "weft: run %s stopped because %zu call(s) of a "
		    "tool marked idempotent = false were lost in flight; a "
		    "resume would call them again:\n", r->id,
		    json_array_size(r->lost));
		for (i = 0; i < json_array_size(r->lost); i++)
			fprintf(stderr, "  - %s\n", json_string_value(
			    json_array_get(r->lost, i)));
		fprintf(stderr, "weft: check the server's side; to call them "
		    "again: weft resume %s --rerun-lost\n", r->id);
		return -1;
	}
	if (rrun_owner_alive(r)) {
		fprintf(stderr, "weft: run %s is still running (its "
		    "coordinator, pid %ld, is alive): stop it first (weft "
		    "resume takes over a run whose coordinator died)\n",
		    r->id, r->pid);
		return -1;
	}
	return 0;
}

int
cmd_resume(int argc, char **argv)
{
	struct ropts o;
	struct rrun r;
	struct rexec x;
	struct store *st = NULL;
	char err[512], now[65], extra[256];
	int ai, rc = 1, changed;

	memset(&o, 0, sizeof o);
	memset(&r, 0, sizeof r);
	memset(&x, 0, sizeof x);
	if ((ai = ropts_parse(argc, argv, &o, "dwbSjLqv")) < 0) {
		if (ai == -2)
			resume_usage(stdout);
		else
			resume_usage(stderr);
		json_decref(o.budget);
		return ai == -2 ? 0 : 2;
	}
	if ((rc = store_open(cmd_db_path(o.db), &st, err, sizeof err)) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		/* The storage failed (full, I/O): as during a run. */
		rc = rc == STORE_OPEN_STORAGE ? 4 : 1;
		goto out;
	}
	rc = 1;
	/* Checked here without the lock, and again under it when the run
	   is claimed (rexec_claim): nothing may be appended in between. */
	if (rrun_find(st, argv[ai], &r) != 0 ||
	    (x.claim_events = store_event_count(st, r.id)) < 0 ||
	    resume_check(st, &r, o.rerun_lost) != 0)
		goto out;
	if ((changed = script_changed(&r, now)) < 0) {
		fprintf(stderr, "weft: cannot read workflow '%s': %s\n",
		    r.workflow, strerror(errno));
		goto out;
	}
	if (changed)
		fprintf(stderr, "weft: note: workflow '%s' changed since the "
		    "run (sha256 %.12s... then, %.12s... now): calls that "
		    "differ from the record run live\n", r.workflow,
		    r.hash ? r.hash : "?", now);
	if (rexec_inputs(&x, &r, &o) != 0) {
		rc = 2;
		goto out;
	}
	if ((x.rec = replay_load(st, r.id, REPLAY_RESUME, 0, err,
	    sizeof err)) == NULL) {
		fprintf(stderr, "weft: %s\n", err);
		goto out;
	}
	x.mark_running = 1;
	x.claim_pid = r.pid;
	x.claim_owner = r.owner;
	x.st = st;
	x.id = r.id;
	x.path = r.workflow;
	x.last_seq = replay_last_seq(x.rec);
	x.start_kind = "run.resume";
	x.start = json_pack("{s:s, s:s, s:I, s:s, s:b}", "previous_status",
	    r.status, "workflow", r.workflow, "recorded",
	    (json_int_t)replay_recorded(x.rec), "hash", now,
	    "script_changed", changed);
	x.co = o.co;
	if ((rc = rexec_run(&x)) != 0)
		goto out;
	snprintf(extra, sizeof extra, "resumed  %lld of %lld recorded steps "
	    "answered from the store (was %s)",
	    (long long)replay_answered(x.rec),
	    (long long)replay_recorded(x.rec), r.status);
	rc = rexec_report(&x, o.json_out, o.quiet, extra);
out:
	luaeng_outcome_clear(&x.oc);
	json_decref(x.input);
	json_decref(x.budget);
	json_decref(x.start);
	json_decref(o.budget);
	replay_free(x.rec);
	rrun_clear(&r);
	store_close(st);
	return rc;
}

/*
 * Offline replay: the first divergence of x from the record of r, or NULL
 * when identical.  *msg is set to what to free.
 */
static const char *
replay_judge(struct rexec *x, const struct rrun *r, char **msg)
{
	const char *div = replay_divergence(x->rec);
	char *out;

	*msg = NULL;
	if (div == NULL && replay_check_unused(x->rec) != 0)
		div = replay_divergence(x->rec);
	if (div == NULL && strcmp(r->status, "running") != 0) {
		out = x->oc.output ? json_dumps(x->oc.output, JSON_COMPACT |
		    JSON_ENCODE_ANY) : NULL;
		if (strcmp(x->oc.status, r->status) != 0 || ((out == NULL) !=
		    (r->output == NULL)) || (out && strcmp(out, r->output)))
			div = *msg = xasprintf("every call matches the record, "
			    "but the run now ends differently:\n  record: %s "
			    "%s\n  script: %s %s", r->status, r->output ?
			    r->output : (r->error ? r->error : ""),
			    x->oc.status, out ? out : (x->oc.error ?
			    x->oc.error : ""));
		free(out);
	}
	return div;
}

/* Offline replay: print the verdict div (NULL: identical); the status. */
static int
replay_print(struct rexec *x, const struct rrun *r, int changed,
    const char *now, int64_t events, double seconds, int json_out,
    const char *div)
{
	char *out;
	json_t *p;

	if (json_out) {
		p = json_pack("{s:s, s:b, s:s?, s:s, s:b, s:s?, s:s, s:I, s:I, "
		    "s:f, s:f, s:b}", "run", r->id, "identical", div == NULL,
		    "divergence", div, "workflow", r->workflow,
		    "script_changed", changed, "recorded_hash", r->hash,
		    "hash", now, "steps", (json_int_t)replay_answered(x->rec),
		    "events", (json_int_t)events, "seconds", seconds,
		    "load_seconds", x->load_s, "all_at_once", x->all_at_once);
		out = json_dumps(p, JSON_INDENT(2));
		printf("%s\n", out);
		free(out);
		json_decref(p);
	} else {
		if (changed)
			printf("workflow '%s' changed since the run (sha256 "
			    "%s at the run, %s now)\n", r->workflow,
			    r->hash ? r->hash : "?", now);
		if (div == NULL)
			printf("identical: %lld recorded steps of %lld events "
			    "replayed in %.3fs%s\n",
			    (long long)replay_answered(x->rec),
			    (long long)events, seconds, x->all_at_once ?
			    " (the second time with every branch of a "
			    "parallel at once)" : "");
		else
			printf("run %s diverges from its record\n%s\n", r->id,
			    div);
	}
	return div == NULL ? 0 : 1;
}

/*
 * One offline execution of run r into an in-memory store (*mem), with a
 * wide parallel's branches a few at a time or, all_at_once, all at once.
 * Returns 0 when it ran (x says how), else the exit status; release with
 * replay_attempt_free either way.
 */
static int
replay_attempt(struct store *st, struct rrun *r, const struct ropts *o,
    const char *now, int all_at_once, struct rexec *x, struct store **mem)
{
	struct store_run row;
	char err[512];

	memset(x, 0, sizeof *x);
	*mem = NULL;
	if (rexec_inputs(x, r, o) != 0)
		return 2;
	/* The record is read while the workflow loads; st is the loader's
	   until rexec_await_record. */
	x->id = r->id;
	rexec_start_record(x, st);
	if (store_open(":memory:", mem, err, sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		return 1;
	}
	memset(&row, 0, sizeof row);
	row.id = r->id;
	row.workflow = r->workflow;
	row.workflow_hash = now;
	row.input = r->input;
	row.status = "running";
	row.started = now_wall();
	if (store_run_create(*mem, &row) != 0) {
		fprintf(stderr, "weft: %s\n", store_error(*mem));
		return 1;
	}
	x->st = *mem;
	x->path = r->workflow;
	x->start_kind = "run.start";
	x->start = json_object();
	x->co = o->co;
	x->co.workers = 0;	/* offline: no call is ever made */
	x->co.state_dir = o->co.state_dir;
	x->offline = 1;
	x->all_at_once = all_at_once;
	return rexec_run(x);
}

/* Release an attempt; 1 if its record could not be read, else 0. */
static int
replay_attempt_free(struct rexec *x, struct store *mem)
{
	int rv = rexec_await_record(x) != 0;

	luaeng_outcome_clear(&x->oc);
	json_decref(x->input);
	json_decref(x->budget);
	json_decref(x->start);
	replay_free(x->rec);
	store_close(mem);
	memset(x, 0, sizeof *x);
	return rv;
}

/*
 * weft replay RUN: offline, into a store in memory.  A wide parallel runs
 * a few branches at a time (runner.lua); if the replay then diverges, it
 * is run again with every branch at once, as live, and that verdict
 * counts: what branches share (a changed tool list, a hook's counter) may
 * depend on how many run together.
 */
static int
replay_offline(struct store *st, struct rrun *r, const struct ropts *o)
{
	struct rexec x;
	struct store *mem;
	const char *div = NULL;
	char now[65], *msg = NULL;
	int rc, changed;
	int64_t events;
	double seconds;

	if ((changed = script_changed(r, now)) < 0) {
		fprintf(stderr, "weft: cannot read workflow '%s': %s\n",
		    r->workflow, strerror(errno));
		return 1;
	}
	events = store_event_count(st, r->id);
	rc = replay_attempt(st, r, o, now, 0, &x, &mem);
	seconds = x.elapsed;
	if (rc == 0 && (div = replay_judge(&x, r, &msg)) != NULL &&
	    x.went_bounded) {
		free(msg);
		msg = NULL;
		div = NULL;
		if (replay_attempt_free(&x, mem) != 0)
			return 1;
		rc = replay_attempt(st, r, o, now, 1, &x, &mem);
		seconds += x.elapsed;
		if (rc == 0)
			div = replay_judge(&x, r, &msg);
	}
	if (rc == 0)
		rc = replay_print(&x, r, changed, now, events, seconds,
		    o->json_out, div);
	free(msg);
	if (replay_attempt_free(&x, mem) != 0 && rc == 0)
		rc = 1;
	return rc;
}

/* weft replay RUN --fork SEQ: a new run, answered from RUN up to SEQ. */
static int
replay_fork(struct store *st, struct rrun *r, const struct ropts *o)
{
	struct rexec x;
	struct store_run row;
	char err[512], now[65], id[17], extra[256], *in = NULL, *bt = NULL;
	int rc = 1, changed;

	memset(&x, 0, sizeof x);
	if ((changed = script_changed(r, now)) < 0) {
		fprintf(stderr, "weft: cannot read workflow '%s': %s\n",
		    r->workflow, strerror(errno));
		return 1;
	}
	if (o->fork_seq > store_event_count(st, r->id)) {
		fprintf(stderr, "weft: run %s has %lld events: --fork %lld is "
		    "past its end\n", r->id, (long long)store_event_count(st,
		    r->id), (long long)o->fork_seq);
		return 2;
	}
	if (rexec_inputs(&x, r, o) != 0)
		return 2;
	if ((x.rec = replay_load(st, r->id, REPLAY_RESUME, o->fork_seq, err,
	    sizeof err)) == NULL) {
		fprintf(stderr, "weft: %s\n", err);
		goto out;
	}
	random_hex(id, 8);
	memset(&row, 0, sizeof row);
	row.id = id;
	row.workflow = r->workflow;
	row.workflow_hash = now;
	row.input = in = json_dumps(x.input, JSON_COMPACT);
	row.budget = bt = x.budget ? json_dumps(x.budget, JSON_COMPACT) : NULL;
	row.status = "running";
	row.parent_run = r->id;
	row.started = now_wall();
	if (store_run_create(st, &row) != 0 || store_commit(st) != 0) {
		fprintf(stderr, "weft: %s\n", store_error(st));
		goto out;
	}
	x.st = st;
	x.id = id;
	x.path = r->workflow;
	x.start_kind = "run.start";
	x.start = json_pack("{s:s, s:s, s:{s:s, s:I}, s:b}", "workflow",
	    r->workflow, "hash", now, "forked_from", "run", r->id, "seq",
	    (json_int_t)o->fork_seq, "script_changed", changed);
	cmd_start_input(x.start, x.input, in);
	x.co = o->co;
	if ((rc = rexec_run(&x)) != 0)
		goto out;
	snprintf(extra, sizeof extra, "forked   from %s at seq %lld: %lld "
	    "steps answered from its record", r->id, (long long)o->fork_seq,
	    (long long)replay_answered(x.rec));
	rc = rexec_report(&x, o->json_out, o->quiet, extra);
out:
	luaeng_outcome_clear(&x.oc);
	json_decref(x.input);
	json_decref(x.budget);
	json_decref(x.start);
	replay_free(x.rec);
	free(in);
	free(bt);
	return rc;
}

int
cmd_replay(int argc, char **argv)
{
	struct ropts o;
	struct rrun r;
	struct store *st = NULL;
	char err[512];
	int ai, rc = 1;

	memset(&o, 0, sizeof o);
	memset(&r, 0, sizeof r);
	if ((ai = ropts_parse(argc, argv, &o, "dwbfiISjqv")) < 0) {
		if (ai == -2)
			replay_usage(stdout);
		else
			replay_usage(stderr);
		json_decref(o.budget);
		return ai == -2 ? 0 : 2;
	}
	if (o.fork_seq == 0 && (o.input_text || o.input_file || o.budget)) {
		fprintf(stderr, "weft replay: --input, --input-file and "
		    "--budget apply to --fork only\n");
		json_decref(o.budget);
		return 2;
	}
	/* An offline replay writes nothing: a read-only store will do. */
	if ((rc = (o.fork_seq > 0 ? store_open : store_open_read)(
	    cmd_db_path(o.db), &st, err, sizeof err)) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		rc = rc == STORE_OPEN_STORAGE && o.fork_seq > 0 ? 4 : 1;
		goto out;
	}
	rc = 1;
	if (rrun_find(st, argv[ai], &r) != 0)
		goto out;
	rc = o.fork_seq > 0 ? replay_fork(st, &r, &o) :
	    replay_offline(st, &r, &o);
out:
	json_decref(o.budget);
	rrun_clear(&r);
	store_close(st);
	return rc;
}
