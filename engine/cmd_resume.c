/*
 * cmd_resume.c: `weft resume RUN` and `weft replay RUN [--fork SEQ]`:
 * re-execute a recorded run's script with its calls answered from the
 * store (engine/replay.h, docs/durability.md); the execution itself is
 * engine/exec.c's.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cmd.h"
#include "engine/exec.h"
#include "engine/otlp.h"
#include "runtime/util.h"

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

/*
 * Parse options into s (its budget is the caller's to release); returns
 * the index of RUN, or -1 (exit 2), -2 (help).
 */
static int
ropts_parse(int argc, char **argv, struct exec_spec *s, const char *allowed)
{
	char *end;
	int ch;

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
			s->db = optarg;
			break;
		case 'w':
			s->co.workers = atoi(optarg);
			if (s->co.workers < 1 || s->co.workers > 256) {
				fprintf(stderr, "weft: --workers must be "
				    "1..256\n");
				return -1;
			}
			break;
		case 'b':
			json_decref(s->budget);
			if ((s->budget = cmd_parse_budget(optarg)) == NULL)
				return -1;
			break;
		case 'f':
			s->fork_seq = strtoll(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' ||
			    s->fork_seq < 1) {
				fprintf(stderr, "weft: --fork takes an event "
				    "seq (a positive integer, see weft show "
				    "--json)\n");
				return -1;
			}
			break;
		case 'i':
			s->input_text = optarg;
			break;
		case 'I':
			s->input_file = optarg;
			break;
		case 'S':
			s->co.state_dir = optarg;
			break;
		case 'j':
			s->json = 1;
			break;
		case 'L':
			s->rerun_lost = 1;
			break;
		case 'q':
			s->quiet = 1;
			break;
		case 'v':
			s->co.verbose = 1;
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
"With $OTEL_EXPORTER_OTLP_ENDPOINT set, the run's spans are exported live\n"
"as by weft run (docs/observability.md).\n"
"\n"
"exit status: as weft run (0 succeeded, 1 failed or refused, 2 bad usage,\n"
"3 budget exceeded, 4 the store could not be opened or written, 5 paused\n"
"again at a budget limit, 6 waiting for an approval, 130 cancelled)\n");
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
"2 bad usage; a fork also as weft run: 3 budget exceeded, 4 the store could\n"
"not be written, 5 paused at a budget limit, 6 waiting for an approval,\n"
"130 cancelled\n");
}

/* Execute s and report: the exit status. */
static int
resume_exec(const struct exec_spec *s)
{
	struct exec_result res;
	struct otlp_live *live = NULL;
	char *cause = NULL, err[512];
	int rc;

	/* A resumed run's spans go live as weft run's do (all of them: what
	   the stopped process exported may not have reached the collector;
	   the span ids are the same). */
	if (s->mode == EXEC_RESUME) {
		live = otlp_live_start(cmd_db_path(s->db), NULL, err,
		    sizeof err);
		if (live == NULL && *err != '\0')
			fprintf(stderr, "weft: not exporting spans: %s\n", err);
		otlp_live_follow(s->run);
	}
	rc = exec_run(s, &res, &cause);
	otlp_live_stop(live);
	if (rc != 0) {
		if (cause != NULL)
			fprintf(stderr, "weft: %s\n", cause);
	} else
		rc = exec_report(s, &res);
	free(cause);
	exec_result_clear(&res);
	return rc;
}

int
cmd_resume(int argc, char **argv)
{
	struct exec_spec s;
	int ai, rc;

	exec_spec_init(&s, EXEC_RESUME);
	if ((ai = ropts_parse(argc, argv, &s, "dwbSjLqv")) < 0) {
		if (ai == -2)
			resume_usage(stdout);
		else
			resume_usage(stderr);
		json_decref(s.budget);
		return ai == -2 ? WEFT_EXIT_OK : WEFT_EXIT_USAGE;
	}
	s.run = argv[ai];
	rc = resume_exec(&s);
	json_decref(s.budget);
	return rc;
}

int
cmd_replay(int argc, char **argv)
{
	struct exec_spec s;
	int ai, rc;

	exec_spec_init(&s, EXEC_REPLAY);
	if ((ai = ropts_parse(argc, argv, &s, "dwbfiISjqv")) < 0) {
		if (ai == -2)
			replay_usage(stdout);
		else
			replay_usage(stderr);
		json_decref(s.budget);
		return ai == -2 ? WEFT_EXIT_OK : WEFT_EXIT_USAGE;
	}
	if (s.fork_seq == 0 && (s.input_text || s.input_file || s.budget)) {
		fprintf(stderr, "weft replay: --input, --input-file and "
		    "--budget apply to --fork only\n");
		json_decref(s.budget);
		return WEFT_EXIT_USAGE;
	}
	s.mode = s.fork_seq > 0 ? EXEC_FORK : EXEC_REPLAY;
	s.run = argv[ai];
	rc = resume_exec(&s);
	json_decref(s.budget);
	return rc;
}
