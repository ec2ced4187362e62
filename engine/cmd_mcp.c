/* cmd_mcp.c: `weft mcp WORKFLOW...`: serve workflows as MCP tools on stdio. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine/cmd.h"
#include "engine/mcp_server.h"
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
"described by its w.workflow{}; tools/call runs it as a recorded run.\n"
"Run trajectories are resources weft://runs/{id}.  See docs/mcp.md.\n"
"\n"
"options:\n"
"  --db PATH           trajectory store (default $WEFT_DB or ./weft.db)\n"
"  --run-workers N     worker processes of each run (default 1)\n"
"  --max-runs N        runs at once; more calls are refused (default 8)\n"
"  -v, --verbose       log calls to stderr\n"
"\n"
"The server ends when stdin closes or on SIGTERM; runs still going are\n"
"cancelled (recorded as cancelled).\n");
}

int
cmd_serve_opts(int argc, char **argv, struct mcps_opts *o, const char *extra,
    const struct option *more, int (*more_cb)(int, const char *, void *),
    void *arg, void (*usage)(FILE *))
{
	struct option longopts[32];
	const char *db = NULL;
	int ch, n = 0, i;

	static const struct option base[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "run-workers", required_argument, NULL, 'W' },
		{ "max-runs", required_argument, NULL, 'M' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
	};
	for (i = 0; i < (int)nitems(base); i++)
		longopts[n++] = base[i];
	for (i = 0; more != NULL && more[i].name != NULL && n < 31; i++)
		longopts[n++] = more[i];
	memset(&longopts[n], 0, sizeof longopts[n]);
	(void)extra;
	o->run_workers = 1;
	o->max_runs = 8;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			db = optarg;
			break;
		case 'W':
			o->run_workers = atoi(optarg);
			if (o->run_workers < 1 || o->run_workers > 64) {
				fprintf(stderr, "weft: --run-workers must be "
				    "1..64\n");
				return -2;
			}
			break;
		case 'M':
			o->max_runs = atoi(optarg);
			if (o->max_runs < 1 || o->max_runs > 1024) {
				fprintf(stderr, "weft: --max-runs must be "
				    "1..1024\n");
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

struct stdio_srv {
	struct event_base	*base;
	struct mcps		*srv;
	struct mcps_conn	*conn;
	struct linebuf		*lb;
	struct event		*in_ev, *term_ev, *int_ev;
	int			 eof;
};

/* One message per line on stdout. */
static void
stdio_send_cb(void *arg, json_t *msg, const json_t *req_id, int final)
{
	char *line;
	size_t len;

	(void)arg;
	(void)req_id;
	(void)final;
	if (msg == NULL || (line = jrpc_dump(msg, &len, 1)) == NULL)
		return;
	if (fwrite(line, 1, len, stdout) != len || fflush(stdout) != 0)
		fprintf(stderr, "weft: cannot write to stdout: %s\n",
		    strerror(errno));
	free(line);
}

/* After stdin closed: end once no run is left. */
static void
stdio_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stdio_srv *ss = arg;
	struct timeval tv = { 0, 100 * 1000 };

	(void)fd;
	(void)what;
	if (mcps_busy(ss->srv) == 0)
		event_base_loopbreak(ss->base);
	else
		event_base_once(ss->base, -1, EV_TIMEOUT, stdio_idle_cb, ss,
		    &tv);
}

static void
stdio_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stdio_srv *ss = arg;
	char buf[65536];
	const char *line;
	size_t len;
	ssize_t n;
	int rv;

	(void)what;
	n = read(fd, buf, sizeof buf);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* stdin closed: answer the calls still running, then end. */
		ss->eof = 1;
		event_del(ss->in_ev);
		stdio_idle_cb(-1, 0, ss);
		return;
	}
	linebuf_feed(ss->lb, buf, n);
	while ((rv = linebuf_next(ss->lb, &line, &len)) != 0) {
		if (rv < 0) {
			json_t *e = jrpc_error(json_null(),
			    JRPC_INVALID_REQUEST, "message longer than the "
			    "limit (4 MiB)", NULL);

			stdio_send_cb(ss, e, NULL, 1);
			json_decref(e);
			continue;
		}
		mcps_conn_input(ss->conn, line, len);
	}
}

static void
stdio_term_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stdio_srv *ss = arg;

	(void)fd;
	(void)what;
	event_base_loopbreak(ss->base);
}

int
cmd_mcp(int argc, char **argv)
{
	struct mcps_opts o;
	struct mcps *srv = NULL;
	struct stdio_srv ss;
	char err[1024], *exe;
	int first, rc = WEFT_EXIT_FAILED;

	memset(&o, 0, sizeof o);
	o.load_meta = cmd_workflow_meta;
	memset(&ss, 0, sizeof ss);
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
	ss.base = event_base_new();
	if (mcps_new(ss.base, &o, argv + first, argc - first, &srv, err,
	    sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		rc = WEFT_EXIT_USAGE;
		goto out;
	}
	ss.srv = srv;
	ss.lb = linebuf_new(MCPS_MAX_MESSAGE);
	ss.conn = mcps_conn_new(srv, stdio_send_cb, &ss);
	/* stdin stays blocking: it may share its file description with
	   stdout (a socket), which must not turn non-blocking under
	   fwrite.  The read callback only runs when data is ready. */
	ss.in_ev = event_new(ss.base, 0, EV_READ | EV_PERSIST, stdio_read_cb,
	    &ss);
	ss.term_ev = evsignal_new(ss.base, SIGTERM, stdio_term_cb, &ss);
	ss.int_ev = evsignal_new(ss.base, SIGINT, stdio_term_cb, &ss);
	event_add(ss.in_ev, NULL);
	event_add(ss.term_ev, NULL);
	event_add(ss.int_ev, NULL);
	if (o.verbose)
		fprintf(stderr, "weft: serving %d workflow(s) on stdio\n",
		    mcps_tool_count(srv));
	event_base_dispatch(ss.base);
	rc = WEFT_EXIT_OK;
out:
	if (ss.conn != NULL)
		mcps_conn_free(ss.conn);
	mcps_free(srv);
	if (ss.in_ev != NULL)
		event_free(ss.in_ev);
	if (ss.term_ev != NULL)
		event_free(ss.term_ev);
	if (ss.int_ev != NULL)
		event_free(ss.int_ev);
	linebuf_free(ss.lb);
	event_base_free(ss.base);
	free(exe);
	return rc;
}
