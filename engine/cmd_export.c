/*
 * cmd_export.c: `weft export --otlp FILE|URL RUN`: a recorded run as
 * OpenTelemetry spans (built by engine/otlp.c, sent by engine/otlp_send.c);
 * `weft export --jsonl FILE RUN`: its model turns as JSON lines, for
 * fine-tuning and evaluation datasets (docs/observability.md).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "engine/cmd.h"
#include "engine/otlp.h"
#include "engine/store.h"
#include "runtime/util.h"

/*
 * --jsonl: one line per model turn, the conversation as the model saw it.
 * A model.call event records the messages new since the node's last turn
 * (the last answer first), so each node's conversation is put together
 * here.
 */
struct export_jsonl {
	FILE		*f;
	const char	*run;
	json_t		*convs;		/* node span -> messages so far */
	int		 err;
};

static int
export_jsonl_cb(void *arg, const struct store_event *ev)
{
	struct export_jsonl *x = arg;
	json_t *p, *conv, *resp, *ans, *line;
	json_error_t je;
	char key[32], *text;

	if (strcmp(ev->kind, "model.call") != 0 || ev->payload == NULL)
		return 0;
	if ((p = json_loads(ev->payload, 0, &je)) == NULL)
		return 0;
	snprintf(key, sizeof key, "%lld", (long long)ev->span_id);
	if ((conv = json_object_get(x->convs, key)) == NULL) {
		conv = json_array();
		json_object_set_new(x->convs, key, conv);
	}
	if (json_is_array(json_object_get(p, "messages")))
		json_array_extend(conv, json_object_get(p, "messages"));
	resp = json_object_get(p, "response");
	ans = json_pack("{s:s}", "role", "assistant");
	if (json_object_get(resp, "text") != NULL)
		json_object_set(ans, "content", json_object_get(resp, "text"));
	if (json_object_get(resp, "tool_calls") != NULL)
		json_object_set(ans, "tool_calls", json_object_get(resp,
		    "tool_calls"));
	line = json_pack("{s:s, s:s, s:I, s:O?, s:O?, s:O?, s:O, s:O?, s:o, "
	    "s:O?, s:O?}", "run", x->run, "node", ev->node_path, "seq",
	    (json_int_t)ev->seq, "turn", json_object_get(p, "turn"),
	    "provider", json_object_get(p, "provider"), "model",
	    json_object_get(p, "model"), "messages", conv, "tools",
	    json_object_get(p, "tools"), "answer", ans, "stop_reason",
	    json_object_get(resp, "stop_reason"), "usage",
	    json_object_get(p, "usage"));
	if (resp != NULL && json_object_get(resp, "text") == NULL &&
	    json_object_get(resp, "tool_calls") == NULL)
		json_object_set(line, "response", resp);
	text = json_dumps(line, JSON_COMPACT);
	if (text == NULL || fprintf(x->f, "%s\n", text) < 0)
		x->err = 1;
	free(text);
	json_decref(line);
	json_decref(p);
	return x->err;
}

static int
export_jsonl_run_cb(void *arg, const struct store_run *r)
{
	struct export_jsonl *x = arg;

	x->run = xstrdup(r->id);
	return 0;
}

/* The model turns of run as JSON lines to path (- for stdout). */
static int
export_jsonl(struct store *st, const char *run, const char *path)
{
	struct export_jsonl x;
	int rc = WEFT_EXIT_FAILED;

	memset(&x, 0, sizeof x);
	if (store_run_find(st, run, export_jsonl_run_cb, &x) != 0) {
		fprintf(stderr, "weft: %s\n", store_error(st));
		return WEFT_EXIT_FAILED;
	}
	x.f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
	if (x.f == NULL) {
		fprintf(stderr, "weft: cannot write '%s': %s\n", path,
		    strerror(errno));
		free((char *)x.run);
		return WEFT_EXIT_FAILED;
	}
	x.convs = json_object();
	if (store_events_foreach(st, x.run, export_jsonl_cb, &x) != 0 &&
	    !x.err)
		fprintf(stderr, "weft: %s\n", store_error(st));
	else if (x.err || fflush(x.f) != 0)
		fprintf(stderr, "weft: cannot write '%s': %s\n", path,
		    strerror(errno));
	else
		rc = WEFT_EXIT_OK;
	if (x.f != stdout && fclose(x.f) != 0 && rc == WEFT_EXIT_OK) {
		fprintf(stderr, "weft: cannot write '%s': %s\n", path,
		    strerror(errno));
		rc = WEFT_EXIT_FAILED;
	}
	json_decref(x.convs);
	free((char *)x.run);
	return rc;
}

static void
export_usage(FILE *f)
{
	fprintf(f,
"usage: weft export (--otlp FILE|URL | --jsonl FILE) RUN [--db PATH]\n"
"\n"
"--otlp: export a recorded run as OpenTelemetry spans: the run\n"
"(invoke_workflow NAME) > each node (invoke_agent NAME for agents) > its\n"
"model calls (chat MODEL), tool calls (execute_tool TOOL) and remote\n"
"agent calls (invoke_agent AGENT), with the GenAI semantic conventions'\n"
"attributes (gen_ai.operation.name, gen_ai.provider.name,\n"
"gen_ai.request.model, gen_ai.usage.input_tokens,\n"
"gen_ai.usage.output_tokens, gen_ai.tool.name, gen_ai.agent.name,\n"
"gen_ai.conversation.id).  The trace id is derived from the run id.\n"
"--jsonl: the run's model turns, one JSON object a line: run, node, seq,\n"
"turn, provider, model, messages (the conversation the model was sent),\n"
"tools (offered), answer (the assistant's message), stop_reason, usage.\n"
"See docs/observability.md.\n"
"\n"
"  --otlp FILE   write the export request (OTLP/JSON) to FILE (- for\n"
"                stdout)\n"
"  --otlp URL    POST it to an OTLP/HTTP collector (http:// or https://;\n"
"                /v1/traces is added unless the URL ends with it):\n"
"                protobuf, or JSON with OTEL_EXPORTER_OTLP_PROTOCOL=\n"
"                http/json; the headers of $OTEL_EXPORTER_OTLP_HEADERS\n"
"                (k=v,k=v); retried 3 times with backoff\n"
"  --jsonl FILE  write the model turns to FILE (- for stdout)\n"
"  --db PATH     trajectory store (default $WEFT_DB or ./weft.db)\n"
"\n"
"$OTEL_SERVICE_NAME (or service.name in $OTEL_RESOURCE_ATTRIBUTES) names\n"
"the service (default weft).\n"
"exit status: 0 exported, 1 no such run, the file or the collector\n"
"failed, 2 bad usage.\n");
}

int
cmd_export(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "otlp", required_argument, NULL, 'o' },
		{ "jsonl", required_argument, NULL, 'j' },
		{ "db", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct otlp_conf conf;
	struct store *st;
	const char *db = NULL, *otlp = NULL, *jsonl = NULL;
	char err[1024], *text;
	json_t *req;
	FILE *f;
	int ch, rc = WEFT_EXIT_FAILED;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'o':
			otlp = optarg;
			break;
		case 'j':
			jsonl = optarg;
			break;
		case 'd':
			db = optarg;
			break;
		case 'h':
			export_usage(stdout);
			return WEFT_EXIT_OK;
		default:
			export_usage(stderr);
			return WEFT_EXIT_USAGE;
		}
	}
	if ((otlp == NULL) == (jsonl == NULL) || optind != argc - 1) {
		fprintf(stderr, "weft export: %s\n", otlp == NULL &&
		    jsonl == NULL ? "where to? (--otlp FILE|URL or --jsonl "
		    "FILE)" : otlp != NULL && jsonl != NULL ? "one of --otlp "
		    "and --jsonl" : "which run? (weft export --otlp FILE|URL "
		    "RUN)");
		return WEFT_EXIT_USAGE;
	}
	if (store_open_read(cmd_db_path(db), &st, err, sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		return WEFT_EXIT_FAILED;
	}
	if (jsonl != NULL) {
		rc = export_jsonl(st, argv[optind], jsonl);
		store_close(st);
		return rc;
	}
	req = otlp_build(st, argv[optind], err, sizeof err);
	store_close(st);
	if (req == NULL) {
		fprintf(stderr, "weft: %s\n", err);
		return WEFT_EXIT_FAILED;
	}
	text = json_dumps(req, JSON_COMPACT);
	if (strncmp(otlp, "http://", 7) == 0 ||
	    strncmp(otlp, "https://", 8) == 0) {
		if (otlp_conf_get(otlp, &conf, err, sizeof err) != 1)
			fprintf(stderr, "weft: %s\n", err);
		else if (otlp_post(&conf, req, err, sizeof err) != 0)
			fprintf(stderr, "weft: export failed: %s\n", err);
		else
			rc = WEFT_EXIT_OK;
		otlp_conf_clear(&conf);
	} else if (strcmp(otlp, "-") == 0) {
		printf("%s\n", text);
		rc = WEFT_EXIT_OK;
	} else if ((f = fopen(otlp, "w")) == NULL ||
	    fprintf(f, "%s\n", text) < 0 || fclose(f) != 0) {
		fprintf(stderr, "weft: cannot write '%s': %s\n", otlp,
		    strerror(errno));
	} else
		rc = WEFT_EXIT_OK;
	free(text);
	json_decref(req);
	return rc;
}
