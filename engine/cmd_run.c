/* cmd_run.c: `weft run WORKFLOW.lua`: run a workflow, record, summarise. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "engine/cmd.h"
#include "engine/coord.h"
#include "engine/gateway.h"
#include "engine/store.h"
#include "runtime/util.h"
#include "lua/luaeng.h"

#define RUN_LUA_MEM	(512u * 1024 * 1024)
#define RUN_EXIT_STORE	4	/* the store refused a write */

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
"130 cancelled (SIGINT or SIGTERM; the run is recorded as cancelled)\n");
}

/*
 * The store refused a write (store_broken): nothing more can be recorded,
 * so the run row is left as it is, as after a crash, and resumable.
 */
static int
run_store_failed(struct coord *c)
{
	char msg[1536];

	coord_store_message(c, msg, sizeof msg);
	fprintf(stderr, "weft: %s\n", msg);
	return RUN_EXIT_STORE;
}

int
cmd_start_input(json_t *payload, json_t *input, const char *text)
{
	char hash[65];
	size_t n = strlen(text);

	if (n <= STORE_INPUT_INLINE_MAX) {
		json_object_set(payload, "input", input);
		return 0;
	}
	sha256_hex(text, n, hash);
	json_object_set_new(payload, "input_blob", json_string(hash));
	return 1;
}

void
cmd_end_state(json_t *payload, json_t *state, json_t *input, int big_input)
{
	json_t *slim, *from, *v;
	const char *k;

	if (state == NULL)
		return;
	if (!big_input || !json_is_object(state) || !json_is_object(input)) {
		json_object_set(payload, "state", state);
		return;
	}
	slim = json_object();
	from = json_array();
	json_object_foreach(state, k, v) {
		if (json_equal(v, json_object_get(input, k)))
			json_array_append_new(from, json_string(k));
		else
			json_object_set(slim, k, v);
	}
	json_object_set_new(payload, "state", slim);
	json_object_set_new(payload, "state_from_input", from);
}

/* Parse --input text; errors name the position. */
static json_t *
run_parse_input(const char *text, const char *what)
{
	json_error_t je;
	json_t *j;

	j = json_loads(text, JSON_DECODE_ANY, &je);
	if (j == NULL) {
		fprintf(stderr, "weft: %s is not valid JSON: %s (line %d, "
		    "column %d)\n", what, je.text, je.line, je.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		fprintf(stderr, "weft: %s must be a JSON object, like "
		    "'{\"topic\":\"tides\"}'\n", what);
		json_decref(j);
		return NULL;
	}
	return j;
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
cmd_exit_status(const char *status)
{
	if (strcmp(status, "succeeded") == 0)
		return 0;
	if (strcmp(status, "budget_exceeded") == 0)
		return 3;
	if (strcmp(status, "paused") == 0)
		return 5;
	if (strcmp(status, "cancelled") == 0)
		return 130;
	return 1;
}

void
cmd_paused_hint(const char *id, const char *why)
{
	fprintf(stderr, "weft: run %s paused: %s\n"
	    "weft: nothing is lost; continue it with a larger envelope: "
	    "weft resume %s --budget DIM=LIMIT,...\n", id,
	    why ? why : "a budget limit was reached", id);
}

/* Print an output value: strings raw, the rest as JSON. */
static void
run_print_output(json_t *out)
{
	char *s;

	if (out == NULL)
		return;
	if (json_is_string(out)) {
		fputs(json_string_value(out), stdout);
		if (json_string_length(out) == 0 ||
		    json_string_value(out)[json_string_length(out) - 1] != '\n')
			fputc('\n', stdout);
		return;
	}
	s = json_dumps(out, JSON_INDENT(2) | JSON_ENCODE_ANY);
	printf("%s\n", s);
	free(s);
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
		{ NULL, 0, NULL, 0 }
	};
	struct coord_opts co;
	struct coord_sink sink;
	struct luaeng_outcome oc;
	struct store_run run;
	struct store *st = NULL;
	struct coord *c = NULL;
	struct gateway *gw = NULL;
	struct luaeng *le = NULL;
	const char *input_text = NULL, *input_file = NULL, *db = NULL, *path;
	const char *run_id = NULL;
	json_t *input = NULL, *budget = NULL, *p;
	char err[1024], hash[65], id[17], *script = NULL, *text;
	char *spend = NULL, *outtext = NULL, *btext = NULL;
	size_t slen;
	double t0, elapsed;
	int ch, json_out = 0, quiet = 0, rc = 2, loopfail = 0, big_input;
	long nproc;

	memset(&co, 0, sizeof co);
	memset(&oc, 0, sizeof oc);
	nproc = sysconf(_SC_NPROCESSORS_ONLN);
	co.workers = nproc > 0 ? (int)nproc : 2;
	co.slots = 256;
	co.lease_s = 30;
	co.heartbeat_s = 1;
	co.max_attempts = 3;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "qvh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'i':
			input_text = optarg;
			break;
		case 'I':
			input_file = optarg;
			break;
		case 'd':
			db = optarg;
			break;
		case 'w':
			co.workers = atoi(optarg);
			if (co.workers < 1 || co.workers > 256) {
				fprintf(stderr, "weft: --workers must be 1..256\n");
				return 2;
			}
			break;
		case 's':
			co.slots = atoi(optarg);
			if (co.slots < 1 || co.slots > 4096) {
				fprintf(stderr, "weft: --slots must be 1..4096\n");
				return 2;
			}
			break;
		case 'l':
			co.lease_s = atof(optarg);
			if (co.lease_s < 0.1) {
				fprintf(stderr, "weft: --lease must be at least "
				    "0.1 seconds\n");
				return 2;
			}
			if (co.heartbeat_s > co.lease_s / 3)
				co.heartbeat_s = co.lease_s / 3;
			break;
		case 'm':
			co.max_attempts = atoi(optarg);
			if (co.max_attempts < 1) {
				fprintf(stderr, "weft: --max-attempts must be "
				    "at least 1\n");
				return 2;
			}
			break;
		case 'j':
			json_out = 1;
			break;
		case 'R':
			if (strlen(optarg) != 16 ||
			    strspn(optarg, "0123456789abcdef") != 16) {
				fprintf(stderr, "weft: --run-id must be 16 "
				    "lowercase hex digits\n");
				return 2;
			}
			run_id = optarg;
			break;
		case 'b':
			json_decref(budget);
			if ((budget = cmd_parse_budget(optarg)) == NULL)
				return 2;
			break;
		case 'S':
			co.state_dir = optarg;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'v':
			co.verbose = 1;
			break;
		case 'h':
			run_usage(stdout);
			return 0;
		default:
			run_usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		if (optind >= argc)
			fprintf(stderr, "weft run: which workflow? "
			    "(weft run FILE.lua)\n");
		else
			fprintf(stderr, "weft run: unexpected argument '%s'\n",
			    argv[optind + 1]);
		return 2;
	}
	path = argv[optind];
	if (input_text != NULL && input_file != NULL) {
		fprintf(stderr, "weft: give --input or --input-file, not both\n");
		return 2;
	}
	if (input_file != NULL) {
		if ((text = read_file(input_file, NULL)) == NULL) {
			fprintf(stderr, "weft: cannot read --input-file '%s': "
			    "%s\n", input_file, strerror(errno));
			return 2;
		}
		input = run_parse_input(text, input_file);
		free(text);
	} else
		input = run_parse_input(input_text ? input_text : "{}",
		    "--input");
	if (input == NULL)
		return 2;
	if ((script = read_file(path, &slen)) == NULL) {
		fprintf(stderr, "weft: cannot read workflow '%s': %s\n", path,
		    strerror(errno));
		goto out;
	}
	sha256_hex(script, slen, hash);
	le = luaeng_new(RUN_LUA_MEM);
	if (luaeng_load(le, path, err, sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		goto out;
	}
	if ((rc = store_open(cmd_db_path(db), &st, err, sizeof err)) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		/* The storage failed (full, I/O): as during a run. */
		rc = rc == STORE_OPEN_STORAGE ? RUN_EXIT_STORE : 1;
		goto out;
	}
	rc = 1;
	co.worker_no_seccomp = luaeng_servers_unconfined(le);
	if ((c = coord_new(&co, st, err, sizeof err)) == NULL) {
		fprintf(stderr, "weft: cannot start the coordinator: %s\n", err);
		goto out;
	}
	if ((gw = gateway_new(c, st, err, sizeof err)) == NULL) {
		fprintf(stderr, "weft: %s\n", err);
		goto out;
	}
	luaeng_set_gateway(le, gw);
	if (run_id != NULL)
		memcpy(id, run_id, sizeof id);
	else
		random_hex(id, 8);
	memset(&run, 0, sizeof run);
	run.id = id;
	run.workflow = path;
	run.workflow_hash = hash;
	run.input = text = json_dumps(input, JSON_COMPACT);
	run.budget = btext = budget ? json_dumps(budget, JSON_COMPACT) : NULL;
	run.status = "running";
	run.started = now_wall();
	if (store_run_create(st, &run) != 0 || store_commit(st) != 0) {
		free(text);
		if (store_broken(st, err, sizeof err) != 0) {
			fprintf(stderr, "weft: %s: run %s was not started\n",
			    err, id);
			rc = RUN_EXIT_STORE;
		} else
			fprintf(stderr, "weft: %s\n", store_error(st));
		goto out;
	}
	t0 = now_mono();
	/* From here on the run is in the store: every way out records how
	   it ended. */
	memset(&sink, 0, sizeof sink);
	if (luaeng_start(le, c, input, budget, &sink, err, sizeof err) != 0)
		loopfail = 1;
	coord_begin_run(c, id, &sink);
	p = json_pack("{s:s, s:s}", "workflow", path, "hash", hash);
	big_input = cmd_start_input(p, input, text);
	free(text);
	run.input = NULL;
	cmd_run_owner(p);
	coord_event(c, "run.start", 0, 0, "", 0, p, 0, 0);
	json_decref(p);
	if (!loopfail && coord_loop(c, err, sizeof err) != 0)
		loopfail = 1;
	elapsed = now_mono() - t0;
	if (store_broken(st, NULL, 0) != 0) {
		rc = run_store_failed(c);
		goto out;
	}
	if (loopfail) {
		oc.status = "failed";
		oc.error = xstrdup(err);
	} else
		luaeng_outcome(le, &oc);
	if (coord_cancelled(c))
		gateway_cancel(gw, "the run was cancelled");
	if (coord_cancelled(c))
		oc.status = "cancelled";
	if (strcmp(oc.status, "cancelled") == 0 && oc.error == NULL)
		oc.error = xstrdup("cancelled by signal");
	p = json_pack("{s:s, s:O?, s:s?, s:I, s:I, s:I, s:I, s:f}",
	    "status", oc.status, "output", oc.output, "error", oc.error,
	    "steps", (json_int_t)oc.steps, "tokens", (json_int_t)oc.tokens,
	    "model_calls", (json_int_t)oc.model_calls,
	    "tool_calls", (json_int_t)oc.tool_calls, "duration", elapsed);
	cmd_end_state(p, oc.state, input, big_input);
	coord_event(c, "run.end", 0, 0, "", 0, p, oc.tokens, oc.cost);
	json_decref(p);
	outtext = oc.output ? json_dumps(oc.output, JSON_COMPACT |
	    JSON_ENCODE_ANY) : NULL;
	spend = xasprintf("{\"tokens\":%lld,\"usd\":%.6f,\"model_calls\":%lld,"
	    "\"tool_calls\":%lld}", (long long)oc.tokens, oc.cost,
	    (long long)oc.model_calls, (long long)oc.tool_calls);
	run.status = oc.status;
	run.output = outtext;
	run.error = oc.error;
	run.ended = now_wall();
	run.steps = oc.steps;
	run.tokens = oc.tokens;
	run.cost = oc.cost;
	run.spend = spend;
	if (store_run_finish(st, &run) != 0 || store_commit(st) != 0) {
		if (store_broken(st, NULL, 0) != 0)
			rc = run_store_failed(c);
		else
			fprintf(stderr, "weft: %s\n", store_error(st));
		goto out;
	}
	if (json_out) {
		struct rusage ru;

		getrusage(RUSAGE_SELF, &ru);
		p = json_pack("{s:s, s:s, s:O?, s:s?, s:I, s:I, s:I, s:I, "
		    "s:f, s:f, s:b, s:{s:f, s:f}}", "run", id, "status", oc.status,
		    "output", oc.output, "error", oc.error,
		    "steps", (json_int_t)oc.steps,
		    "model_calls", (json_int_t)oc.model_calls,
		    "tool_calls", (json_int_t)oc.tool_calls,
		    "tokens", (json_int_t)oc.tokens, "cost_usd", oc.cost,
		    "duration", elapsed, "scripted", oc.scripted,
		    "coordinator_cpu", "user", ru.ru_utime.tv_sec +
		    ru.ru_utime.tv_usec / 1e6, "system", ru.ru_stime.tv_sec +
		    ru.ru_stime.tv_usec / 1e6);
		text = json_dumps(p, JSON_INDENT(2));
		printf("%s\n", text);
		free(text);
		json_decref(p);
	} else {
		if (strcmp(oc.status, "succeeded") == 0)
			run_print_output(oc.output);
		if (!quiet) {
			printf("\nrun      %s  %s\n", id, oc.status);
			printf("steps    %lld (%lld model turns, %lld tool "
			    "calls)\n", (long long)oc.steps,
			    (long long)oc.model_calls,
			    (long long)oc.tool_calls);
			printf("tokens   %lld\n", (long long)oc.tokens);
			printf("cost     $%.4f\n", oc.cost);
			printf("time     %.3fs\n", elapsed);
			if (oc.scripted)
				printf("model    scripted: offline, answers "
				    "come from the workflow's script, not a "
				    "real LLM\n");
			printf("inspect  weft show %s\n", id);
		}
	}
	fflush(stdout);
	if (strcmp(oc.status, "succeeded") == 0)
		rc = 0;
	else if (strcmp(oc.status, "budget_exceeded") == 0) {
		fprintf(stderr, "weft: run %s stopped: %s\n", id,
		    oc.error ? oc.error : "budget exceeded");
		rc = 3;
	} else if (strcmp(oc.status, "paused") == 0) {
		cmd_paused_hint(id, oc.error);
		rc = cmd_exit_status(oc.status);
	}
	else if (strcmp(oc.status, "cancelled") == 0) {
		fprintf(stderr, "weft: run %s cancelled; everything so far is "
		    "recorded (weft show %s)\n", id, id);
		rc = 130;
	} else {
		fprintf(stderr, "weft: run %s %s: %s\n", id, oc.status,
		    oc.error ? oc.error : "unknown error");
		rc = 1;
	}
out:
	/* Lua first: finalizers of the workflow must not reach a freed
	   coordinator. */
	luaeng_outcome_clear(&oc);
	luaeng_free(le);
	gateway_free(gw);
	coord_free(c);
	store_close(st);
	json_decref(input);
	json_decref(budget);
	free(btext);
	free(script);
	free(spend);
	free(outtext);
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
