/*
 * cmd_export.c: `weft export --otlp FILE|URL RUN`: a recorded run as
 * OpenTelemetry spans (built by engine/otlp.c, sent by engine/otlp_send.c;
 * docs/observability.md).
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

static void
export_usage(FILE *f)
{
	fprintf(f,
"usage: weft export --otlp FILE|URL RUN [--db PATH]\n"
"\n"
"Export a recorded run as OpenTelemetry spans in OTLP/JSON: the run\n"
"(invoke_workflow NAME) > each node (invoke_agent NAME for agents) > its\n"
"model calls (chat MODEL) and tool calls (execute_tool TOOL), with the\n"
"GenAI semantic conventions' attributes (gen_ai.operation.name,\n"
"gen_ai.provider.name, gen_ai.request.model, gen_ai.usage.input_tokens,\n"
"gen_ai.usage.output_tokens, gen_ai.tool.name, gen_ai.agent.name,\n"
"gen_ai.conversation.id).  The trace id is derived from the run id.\n"
"See docs/viewer.md (\"OpenTelemetry\").\n"
"\n"
"  --otlp FILE   write the export request to FILE (- for stdout)\n"
"  --otlp URL    POST it to an OTLP/HTTP collector (http:// or https://;\n"
"                /v1/traces is added unless the URL ends with it),\n"
"                with the headers of $OTEL_EXPORTER_OTLP_HEADERS\n"
"                (k=v,k=v); retried 3 times with backoff\n"
"  --db PATH     trajectory store (default $WEFT_DB or ./weft.db)\n"
"\n"
"$OTEL_SERVICE_NAME names the service (default weft).\n"
"exit status: 0 exported, 1 no such run, the file or the collector\n"
"failed, 2 bad usage.\n");
}

int
cmd_export(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "otlp", required_argument, NULL, 'o' },
		{ "db", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct store *st;
	const char *db = NULL, *otlp = NULL;
	struct otlp_conf conf;
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
	if (otlp == NULL || optind != argc - 1) {
		fprintf(stderr, "weft export: %s\n", otlp == NULL ?
		    "where to? (--otlp FILE|URL)" : "which run? (weft export "
		    "--otlp FILE|URL RUN)");
		return WEFT_EXIT_USAGE;
	}
	if (store_open_read(cmd_db_path(db), &st, err, sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		return WEFT_EXIT_FAILED;
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
