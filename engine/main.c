/* main.c: the weft command line: dispatch to a subcommand. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "engine/cmd.h"
#include "runtime/util.h"
#include "workers/worker.h"

static const struct {
	const char	*name;
	int		(*fn)(int, char **);
	const char	*help;
} cmds[] = {
	{ "run", cmd_run, "run a workflow and record its trajectory" },
	{ "resume", cmd_resume, "resume a crashed, failed or cancelled run" },
	{ "replay", cmd_replay, "replay a run offline, or fork it (--fork SEQ)" },
	{ "cancel", cmd_cancel, "cancel a running run (from another terminal)" },
	{ "approve", cmd_approve, "answer the approval a run waits for" },
	{ "reject", cmd_reject, "reject the approval a run waits for" },
	{ "show", cmd_show, "show a run's trajectory as a tree (or --json)" },
	{ "runs", cmd_runs, "list recent runs" },
	{ "view", cmd_view, "browse runs in a web page: tree, timeline, "
	    "replay, live" },
	{ "export", cmd_export, "a run as OpenTelemetry spans (--otlp "
	    "FILE|URL)" },
	{ "eval", cmd_eval, "score runs' tool calls against a golden file" },
	{ "diff", cmd_diff, "show two runs' steps side by side" },
	{ "gc", cmd_gc, "delete old runs and unreferenced blobs" },
	{ "validate", cmd_validate, "check a workflow without running it" },
	{ "graph", cmd_graph, "print a workflow's graph (text tree or --dot)" },
	{ "doctor", cmd_doctor, "report the sandbox layers this kernel provides" },
	{ "mcp", cmd_mcp, "serve workflows as MCP tools on stdio" },
	{ "serve", cmd_serve, "serve workflows over MCP Streamable HTTP (/mcp) "
	    "and as A2A agents" },
	{ "keys", cmd_keys, "list or rotate the keys that sign capability tokens" },
	{ "worker", worker_main, "run a worker (weft run starts its own; "
	    "--connect joins\n"
	    "             from another machine)" },
};

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f,
"usage: weft COMMAND [ARGS...]\n"
"\n"
"weft runs agent graphs written in Lua: a coordinator dispatches every\n"
"step to worker processes, which call tools over MCP, and records every\n"
"step in SQLite (./weft.db, --db or $WEFT_DB).\n"
"\n"
"commands:\n");
	for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].help);
	fprintf(f,
"\n"
"  weft COMMAND --help   help for one command\n"
"  weft --version        print the version\n"
"\n"
"exit status: 0 success, 1 the run failed, 2 bad usage, input or workflow,\n"
"3 a budget was exceeded, 4 the store could not be opened or written, 5\n"
"paused at a budget limit, 6 waiting for an approval, 130 cancelled (each\n"
"command's --help says which)\n"
"\n"
"example:\n"
"  weft run examples/quickstart.lua --input '{\"topic\":\"tides\"}'\n"
"  weft show RUN_ID\n");
}

int
main(int argc, char **argv)
{
	size_t i;

	xjson_init();
	if (argc < 2) {
		usage(stderr);
		return WEFT_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return WEFT_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0 ||
	    strcmp(argv[1], "version") == 0) {
		printf("weft %s\n", PACKAGE_VERSION);
		return WEFT_EXIT_OK;
	}
	for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "weft: unknown command '%s' (see weft --help)\n",
	    argv[1]);
	return WEFT_EXIT_USAGE;
}
