/*
 * cmd_run.c: `weft run WORKFLOW.lua`: run a workflow, record, summarise
 * (the run itself: engine/exec.c).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/cmd.h"
#include "engine/exec.h"
#include "engine/otlp.h"
#include "engine/progress.h"
#include "engine/store.h"
#include "runtime/util.h"

/*
 * The terminal's view of a run as it goes: a thread with a read-only
 * connection of its own to the store (it shares nothing with the engine,
 * which runs on the main thread) looks a few times a second at what has
 * committed.  Once the run row exists it says the run id on stderr (so
 * that weft cancel and weft view can be used at once) and hands each
 * event that commits to the progress display (engine/progress.c); with
 * -v it prints each event as it commits.  Nothing is printed for a run
 * that never started (bad input, a workflow that does not load).
 */
struct run_watch {
	pthread_t	 th;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	int		 stop;
	const char	*db;
	char		 id[17];
	int		 verbose;
	int		 announced;
	int64_t		 after;
	double		 t0;
	struct store	*st;
	struct progress	*pg;
};

static int
run_watch_row_cb(void *arg, const struct store_run *r)
{
	struct run_watch *w = arg;

	w->t0 = r->started;
	progress_start(w->pg, r);
	return 0;
}

static int
run_watch_end_cb(void *arg, const struct store_run *r)
{
	struct run_watch *w = arg;

	progress_end(w->pg, r);
	return 0;
}

/* One line for an event: time since the start, node, kind, payload. */
static int
run_watch_event_cb(void *arg, const struct store_event *ev)
{
	struct run_watch *w = arg;
	char brief[121];
	size_t i, n;

	if (ev->seq <= w->after)
		return 0;
	w->after = ev->seq;
	progress_event(w->pg, ev);
	if (!w->verbose)
		return 0;
	progress_clear(w->pg);
	n = ev->payload ? strlen(ev->payload) : 0;
	snprintf(brief, sizeof brief, "%s", ev->payload ? ev->payload : "");
	for (i = 0; brief[i] != '\0'; i++)
		if (brief[i] == '\n' || brief[i] == '\t')
			brief[i] = ' ';
	if (n >= sizeof brief)
		memcpy(brief + sizeof brief - 4, "...", 4);
	fprintf(stderr, "weft: %+8.3fs #%-4lld %s %s%s%s\n",
	    ev->time - w->t0, (long long)ev->seq, ev->kind,
	    *ev->node_path ? ev->node_path : "(run)", *brief ? " " : "",
	    brief);
	return 0;
}

/* Look at the store once. */
static void
run_watch_look(struct run_watch *w)
{
	char err[512];

	if (w->st == NULL) {
		if (access(w->db, F_OK) != 0 || store_open_read(w->db, &w->st,
		    err, sizeof err) != 0)
			return;
	}
	if (!w->announced) {
		if (store_run_find(w->st, w->id, run_watch_row_cb, w) != 0)
			return;
		w->announced = 1;
	}
	store_events_after(w->st, w->id, w->after, run_watch_event_cb, w);
	progress_tick(w->pg);
}

static void *
run_watch_main(void *arg)
{
	struct run_watch *w = arg;
	struct timespec ts;

	pthread_mutex_lock(&w->mu);
	while (!w->stop) {
		pthread_mutex_unlock(&w->mu);
		run_watch_look(w);
		pthread_mutex_lock(&w->mu);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		if (!w->stop)
			pthread_cond_timedwait(&w->cv, &w->mu, &ts);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Stop the watcher, then look once more (what committed last). */
static void
run_watch_end(struct run_watch *w)
{
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->th, NULL);
	run_watch_look(w);
	if (w->announced)
		store_run_find(w->st, w->id, run_watch_end_cb, w);
	if (w->st != NULL)
		store_close(w->st);
	progress_free(w->pg);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
}

static void
run_usage(FILE *f)
{
	fprintf(f,
"usage: weft run WORKFLOW.lua [--input JSON | --input-file FILE] [options]\n"
"\n"
"Run a workflow: start a coordinator and worker processes, execute the\n"
"graph, record every step in the store, and print the answer, the run id,\n"
"steps, tokens, cost and time.  Inspect the run later with `weft show ID`.\n"
"\n"
"options:\n"
"  --input JSON        the run input, a JSON object (default {})\n"
"  --input-file FILE   read the input object from FILE\n"
"  --db PATH           trajectory store (default $WEFT_DB or ./weft.db)\n"
"  --workers N         worker processes (default: number of cores)\n"
"  --slots K           tasks each worker runs at once (default 256)\n"
"  --lease SECONDS     a task's lease without heartbeat (default 30)\n"
"  --max-attempts N    attempts of a tool call (default 3)\n"
"  --budget LIMITS     the run's envelope, e.g. usd=0.5,tokens=200000;\n"
"                      dimensions: usd, tokens, input_tokens, output_tokens,\n"
"                      model_calls, tool_calls, seconds, depth; and\n"
"                      on_exceed=pause to pause the run at a limit instead\n"
"                      of failing it (continue: weft resume RUN --budget)\n"
"  --json              print the outcome as one JSON object (run, status,\n"
"                      output, steps, tokens, cost_usd, duration,\n"
"                      workers_started: 0 when no node needed a worker)\n"
"  --state-dir DIR     signing keys of capability tokens (default\n"
"                      $WEFT_STATE_DIR, $XDG_STATE_HOME/weft or\n"
"                      ~/.local/state/weft; see `weft keys`)\n"
"  --run-id ID         record the run under ID (16 lowercase hex digits, not\n"
"                      yet in the store; weft mcp and weft serve use it)\n"
"  --progress MODE     progress on stderr: auto (the default: live on a\n"
"                      terminal, else a start and an end line), live (a\n"
"                      status line redrawn in place: nodes running and\n"
"                      done, tool calls in flight, tokens, cost, elapsed),\n"
"                      plain (one line per event), brief, none\n"
"  --otlp URL          export the run's spans live to an OTLP/HTTP collector\n"
"                      (also $OTEL_EXPORTER_OTLP_ENDPOINT; see\n"
"                      docs/observability.md)\n"
"  -q, --quiet         print only the answer (--progress=none)\n"
"  -v, --verbose       print each event on stderr as it commits, and log\n"
"                      worker events\n"
"\n"
"remote workers (docs/PROTOCOL.md, \"Remote enrolment\"; README.md):\n"
"%s"
"\n"
"Tool calls' policy defaults (override per server or tool node: timeout =\n"
"{ attempt, total, queue, heartbeat }, retry = {...}, idempotent = false):\n"
"attempt 600 s, total 1800 s, queue 300 s, heartbeat --lease; retries after\n"
"timeout, lost_worker, server_exited, transport, rate_limited, waiting a\n"
"random 0..min(10, 0.5 * 2^(n-1)) s; see docs/durability.md\n"
"\n"
"exit status: 0 succeeded, 1 the run failed, 2 bad usage, input or workflow,\n"
"3 a budget was exceeded, 4 the store could not be opened or written (disk\n"
"full, I/O error: the run is left as recorded so far, resume it with `weft\n"
"resume RUN` once the disk is fixed; see docs/durability.md), 5 paused at a\n"
"budget limit (on_exceed=pause; continue with weft resume RUN --budget ...),\n"
"6 waiting for an approval (w.approval without a terminal to ask on: answer\n"
"with weft approve RUN or weft reject RUN, then weft resume RUN), 130\n"
"cancelled (SIGINT or SIGTERM; the run is recorded as cancelled)\n",
	    cmd_remote_help);
}

/*
 * Parse --budget "usd=0.5,tokens=200000" into a JSON object; NULL with a
 * message naming the bad part.
 */
json_t *
cmd_parse_budget(const char *text)
{
	static const char *const dims[] = { "usd", "tokens", "input_tokens",
	    "output_tokens", "model_calls", "tool_calls", "seconds", "depth",
	    NULL };
	json_t *b = json_object();
	char *copy = xstrdup(text), *item, *save = NULL, *eq, *end;
	double v;
	int i;

	for (item = strtok_r(copy, ",", &save); item != NULL;
	    item = strtok_r(NULL, ",", &save)) {
		if ((eq = strchr(item, '=')) == NULL) {
			fprintf(stderr, "weft: --budget: '%s' is not "
			    "dimension=limit\n", item);
			goto fail;
		}
		*eq = '\0';
		for (i = 0; dims[i] != NULL && strcmp(dims[i], item) != 0; i++)
			;
		if (dims[i] == NULL && strcmp(item, "on_exceed") != 0) {
			fprintf(stderr, "weft: --budget: unknown dimension '%s' "
			    "(usd, tokens, input_tokens, output_tokens, "
			    "model_calls, tool_calls, seconds, depth)\n", item);
			goto fail;
		}
		if (strcmp(item, "on_exceed") == 0) {
			if (strcmp(eq + 1, "fail") != 0 &&
			    strcmp(eq + 1, "pause") != 0) {
				fprintf(stderr, "weft: --budget: on_exceed=%s: "
				    "must be fail or pause\n", eq + 1);
				goto fail;
			}
			json_object_set_new(b, item, json_string(eq + 1));
			continue;
		}
		v = strtod(eq + 1, &end);
		if (end == eq + 1 || *end != '\0' || !(v >= 0) || v > 1e15) {
			fprintf(stderr, "weft: --budget: %s=%s is not a "
			    "non-negative number\n", item, eq + 1);
			goto fail;
		}
		json_object_set_new(b, item, json_real(v));
	}
	if (json_object_size(b) == (json_object_get(b, "on_exceed") ? 1 : 0)) {
		fprintf(stderr, "weft: --budget needs at least one "
		    "dimension=limit\n");
		goto fail;
	}
	free(copy);
	return b;
fail:
	free(copy);
	json_decref(b);
	return NULL;
}

int
cmd_run(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "input", required_argument, NULL, 'i' },
		{ "input-file", required_argument, NULL, 'I' },
		{ "db", required_argument, NULL, 'd' },
		{ "workers", required_argument, NULL, 'w' },
		{ "slots", required_argument, NULL, 's' },
		{ "lease", required_argument, NULL, 'l' },
		{ "max-attempts", required_argument, NULL, 'm' },
		{ "json", no_argument, NULL, 'j' },
		{ "run-id", required_argument, NULL, 'R' },
		{ "budget", required_argument, NULL, 'b' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "progress", required_argument, NULL, 'P' },
		{ "otlp", required_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		CMD_REMOTE_LONGOPTS,
		{ NULL, 0, NULL, 0 }
	};
	struct exec_spec spec;
	struct exec_result res;
	struct run_watch w;
	struct otlp_live *live;
	json_t *budget = NULL;
	const char *otlp = NULL;
	char *cause = NULL, err[512];
	int ch, rc, watching = 0, mode = PROGRESS_AUTO;

	exec_spec_init(&spec, EXEC_RUN);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "qvh", longopts, NULL)) != -1) {
		if ((rc = cmd_remote_opt(ch, optarg, &spec.co)) != 0) {
			if (rc < 0)
				return WEFT_EXIT_USAGE;
			continue;
		}
		switch (ch) {
		case 'i':
			spec.input_text = optarg;
			break;
		case 'I':
			spec.input_file = optarg;
			break;
		case 'd':
			spec.db = optarg;
			break;
		case 'w':
			spec.co.workers = atoi(optarg);
			if (spec.co.workers < 1 || spec.co.workers > 256) {
				fprintf(stderr, "weft: --workers must be "
				    "1..256\n");
				return WEFT_EXIT_USAGE;
			}
			break;
		case 's':
			spec.co.slots = atoi(optarg);
			if (spec.co.slots < 1 || spec.co.slots > 4096) {
				fprintf(stderr, "weft: --slots must be "
				    "1..4096\n");
				return WEFT_EXIT_USAGE;
			}
			break;
		case 'l':
			spec.co.lease_s = atof(optarg);
			if (spec.co.lease_s < 0.1) {
				fprintf(stderr, "weft: --lease must be at "
				    "least 0.1 seconds\n");
				return WEFT_EXIT_USAGE;
			}
			if (spec.co.heartbeat_s > spec.co.lease_s / 3)
				spec.co.heartbeat_s = spec.co.lease_s / 3;
			break;
		case 'm':
			spec.co.max_attempts = atoi(optarg);
			if (spec.co.max_attempts < 1) {
				fprintf(stderr, "weft: --max-attempts must be "
				    "at least 1\n");
				return WEFT_EXIT_USAGE;
			}
			break;
		case 'j':
			spec.json = 1;
			break;
		case 'R':
			if (strlen(optarg) != 16 ||
			    strspn(optarg, "0123456789abcdef") != 16) {
				fprintf(stderr, "weft: --run-id must be 16 "
				    "lowercase hex digits\n");
				return WEFT_EXIT_USAGE;
			}
			spec.run_id = optarg;
			break;
		case 'b':
			json_decref(budget);
			if ((budget = cmd_parse_budget(optarg)) == NULL)
				return WEFT_EXIT_USAGE;
			break;
		case 'S':
			spec.co.state_dir = optarg;
			break;
		case 'q':
			spec.quiet = 1;
			break;
		case 'P':
			if ((mode = progress_mode(optarg)) < 0) {
				fprintf(stderr, "weft: --progress=%s: must be "
				    "auto, live, plain, brief or none\n",
				    optarg);
				return WEFT_EXIT_USAGE;
			}
			break;
		case 'O':
			otlp = optarg;
			break;
		case 'v':
			spec.co.verbose = 1;
			break;
		case 'h':
			run_usage(stdout);
			return WEFT_EXIT_OK;
		default:
			run_usage(stderr);
			return WEFT_EXIT_USAGE;
		}
	}
	if (cmd_remote_check(&spec.co) != 0)
		return WEFT_EXIT_USAGE;
	if (optind != argc - 1) {
		if (optind >= argc)
			fprintf(stderr, "weft run: which workflow? "
			    "(weft run FILE.lua)\n");
		else
			fprintf(stderr, "weft run: unexpected argument '%s'\n",
			    argv[optind + 1]);
		return WEFT_EXIT_USAGE;
	}
	spec.workflow = argv[optind];
	spec.budget = budget;
	memset(&w, 0, sizeof w);
	if (spec.run_id != NULL)
		snprintf(w.id, sizeof w.id, "%s", spec.run_id);
	else {
		random_hex(w.id, 8);
		spec.run_id = w.id;
	}
	if (spec.quiet)
		mode = PROGRESS_NONE;
	if (mode != PROGRESS_NONE || spec.co.verbose) {
		w.db = cmd_db_path(spec.db);
		w.verbose = spec.co.verbose;
		w.pg = progress_new(mode, stderr);
		pthread_mutex_init(&w.mu, NULL);
		pthread_cond_init(&w.cv, NULL);
		if ((errno = pthread_create(&w.th, NULL, run_watch_main,
		    &w)) != 0)
			fatal("pthread_create");
		watching = 1;
	}
	/* The live OTLP export: never a reason for the run to fail. */
	live = otlp_live_start(cmd_db_path(spec.db), otlp, err, sizeof err);
	if (live == NULL && *err != '\0')
		fprintf(stderr, "weft: not exporting spans: %s\n", err);
	otlp_live_follow(spec.run_id);
	rc = exec_run(&spec, &res, &cause);
	if (watching)
		run_watch_end(&w);
	otlp_live_stop(live);
	if (rc != 0) {
		if (cause != NULL)
			fprintf(stderr, "weft: %s\n", cause);
	} else
		rc = exec_report(&spec, &res);
	free(cause);
	exec_result_clear(&res);
	json_decref(budget);
	return rc;
}

const char *
cmd_db_path(const char *opt)
{
	const char *env;

	if (opt != NULL)
		return opt;
	if ((env = getenv("WEFT_DB")) != NULL && *env != '\0')
		return env;
	return "weft.db";
}
