/* cmd_mcp.c: `weft mcp WORKFLOW...`: serve workflows as MCP tools on stdio. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "engine/cmd.h"
#include "engine/serve.h"
#include "protocols/mcp_server.h"
#include "runtime/util.h"

static void
mcp_usage(FILE *f)
{
	fprintf(f,
"usage: weft mcp WORKFLOW.lua|DIR... [options]\n"
"\n"
"Serve workflows as MCP tools over stdio (MCP revision 2025-11-25): one\n"
"JSON-RPC message per line on stdin and stdout, logs on stderr.  Each\n"
"workflow file (or each *.lua file of a directory) is one tool, named and\n"
"described by its w.workflow{}; tools/call runs it as a recorded run in\n"
"the server's coordinator, whose workers (and their MCP servers) stay\n"
"warm between calls.  Run trajectories are resources weft://runs/{id}.\n"
"See docs/mcp.md.\n"
"\n"
"options:\n"
"%s", CMD_SERVE_OPTS_HELP);
	fprintf(f,
"\n"
"The server ends when stdin closes or on SIGTERM; runs still going are\n"
"cancelled (recorded as cancelled).\n");
}

int
cmd_serve_opts(int argc, char **argv, struct serve_opts *o, const char *extra,
    const struct option *more, int (*more_cb)(int, const char *, void *),
    void *arg, void (*usage)(FILE *))
{
	struct option longopts[32];
	const char *db = NULL;
	int ch, n = 0, i;

	static const struct option base[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "workers", required_argument, NULL, 'W' },
		{ "run-workers", required_argument, NULL, 'W' },
		{ "max-runs", required_argument, NULL, 'M' },
		{ "max-queued", required_argument, NULL, 'Q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
	};
	for (i = 0; i < (int)nitems(base); i++)
		longopts[n++] = base[i];
	for (i = 0; more != NULL && more[i].name != NULL && n < 31; i++)
		longopts[n++] = more[i];
	memset(&longopts[n], 0, sizeof longopts[n]);
	(void)extra;
	o->workers = 0;
	o->max_runs = 64;
	o->max_queued = 256;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			db = optarg;
			break;
		case 'W':
			o->workers = atoi(optarg);
			if (o->workers < 1 || o->workers > 64) {
				fprintf(stderr, "weft: --workers must be "
				    "1..64\n");
				return -2;
			}
			break;
		case 'M':
			o->max_runs = atoi(optarg);
			if (o->max_runs < 1 || o->max_runs > 100000) {
				fprintf(stderr, "weft: --max-runs must be "
				    "1..100000\n");
				return -2;
			}
			break;
		case 'Q':
			o->max_queued = atoi(optarg);
			if (o->max_queued < 0 || o->max_queued > 1000000) {
				fprintf(stderr, "weft: --max-queued must be "
				    "0..1000000\n");
				return -2;
			}
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			if (more_cb != NULL && ch != '?' &&
			    more_cb(ch, optarg, arg) == 0)
				break;
			if (ch == '?')
				usage(stderr);
			return -2;
		}
	}
	o->db = cmd_db_path(db);
	return optind;
}

/* The path of this binary, for starting runs. */
char *
cmd_self_exe(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);

	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	return xstrdup(buf);
}

/* SIGTERM, SIGINT: end the loop (runs still going are cancelled). */
static void
mcp_term_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

int
cmd_mcp(int argc, char **argv)
{
	struct serve_opts o;
	struct serve *srv = NULL;
	struct mcps_stdio *io = NULL;
	struct event_base *base;
	struct event *term_ev = NULL, *int_ev = NULL;
	char err[1024], *exe;
	int first, rc = WEFT_EXIT_FAILED;

	memset(&o, 0, sizeof o);
	o.load_meta = cmd_workflow_meta;
	first = cmd_serve_opts(argc, argv, &o, NULL, NULL, NULL, NULL,
	    mcp_usage);
	if (first < 0)
		return first == -1 ? WEFT_EXIT_OK : WEFT_EXIT_USAGE;
	if (first >= argc) {
		fprintf(stderr, "weft mcp: which workflows? (weft mcp "
		    "FILE.lua|DIR...)\n");
		return WEFT_EXIT_USAGE;
	}
	if ((exe = cmd_self_exe()) == NULL) {
		fprintf(stderr, "weft: cannot find my own binary: %s\n",
		    strerror(errno));
		return WEFT_EXIT_FAILED;
	}
	o.exe = exe;
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	if (serve_new(base, &o, argv + first, argc - first, &srv, err,
	    sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		rc = WEFT_EXIT_USAGE;
		goto out;
	}
	io = mcps_stdio_new(serve_mcps(srv), base, 0);
	term_ev = evsignal_new(base, SIGTERM, mcp_term_cb, base);
	int_ev = evsignal_new(base, SIGINT, mcp_term_cb, base);
	event_add(term_ev, NULL);
	event_add(int_ev, NULL);
	if (o.verbose)
		fprintf(stderr, "weft: serving %d workflow(s) on stdio\n",
		    mcps_tool_count(serve_mcps(srv)));
	event_base_dispatch(base);
	rc = WEFT_EXIT_OK;
out:
	mcps_stdio_free(io);
	serve_free(srv);
	if (term_ev != NULL)
		event_free(term_ev);
	if (int_ev != NULL)
		event_free(int_ev);
	event_base_free(base);
	free(exe);
	return rc;
}
