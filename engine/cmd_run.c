/*
 * cmd_run.c: `weft run WORKFLOW.lua`: run a workflow, record, summarise
 * (the run itself: engine/exec.c).
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cmd.h"
#include "engine/exec.h"
#include "runtime/util.h"

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
"  --json              print the outcome as one JSON object\n"
"  --state-dir DIR     signing keys of capability tokens (default\n"
"                      $WEFT_STATE_DIR, $XDG_STATE_HOME/weft or\n"
"                      ~/.local/state/weft; see `weft keys`)\n"
"  --run-id ID         record the run under ID (16 lowercase hex digits, not\n"
"                      yet in the store; weft mcp and weft serve use it)\n"
"  -q, --quiet         print only the answer\n"
"  -v, --verbose       log worker events to stderr\n"
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
		{ "help", no_argument, NULL, 'h' },
		CMD_REMOTE_LONGOPTS,
		{ NULL, 0, NULL, 0 }
	};
	struct exec_spec spec;
	struct exec_result res;
	json_t *budget = NULL;
	char *cause = NULL;
	int ch, rc;

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
	if ((rc = exec_run(&spec, &res, &cause)) != 0) {
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
