/*
 * cmd_serve.c: `weft serve WORKFLOW...`: MCP Streamable HTTP at /mcp.
 *
 * Options and wiring: the workflows (engine/serve.c) behind the MCP server
 * (protocols/mcp_server.c), its Streamable HTTP transport
 * (protocols/mcp_server_http.c) as the route /mcp of one listener
 * (runtime/httpd_routes.c: Host, Origin and bearer token checks, limits).
 * Each bearer token has an identity (a fingerprint) and a role: a session
 * belongs to the token that made it, and a client's token sees only the
 * runs its sessions started (docs/security.md).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "engine/cmd.h"
#include "engine/otlp.h"
#include "engine/coord.h"
#include "engine/serve.h"
#include "engine/view.h"
#include "protocols/mcp_server.h"
#include "runtime/util.h"
#include "runtime/httpd_routes.h"

#define SERVE_MAX_HOSTS		16
#define SERVE_MAX_OUTPUT	(4u * 1024 * 1024)
#define SERVE_TOKEN_ENV		"WEFT_SERVE_TOKEN"

struct cmd_serve_cli {
	const char		*listen;
	const char		*token_file;
	size_t			 max_body;
	struct httpd_limits	 lim;
	int			 conns_given;
	struct mcps_http_opts	 http;
	const char		*hosts[SERVE_MAX_HOSTS];
	int			 nhosts;
	const char		*origins[SERVE_MAX_HOSTS];
	int			 norigins;
	struct coord_opts	 remote;	/* remote workers' options */
	double			 drain_s;	/* --drain-timeout */
	const char		*otlp;		/* --otlp URL */
};

/* The graceful stop: the first SIGTERM or SIGINT drains, the next one
   stops at once. */
struct cmd_serve_stop {
	struct event_base	*base;
	struct serve		*srv;
	double			 drain_s;
	int			 signals;
	struct event		*timer;
};

static void
cmd_serve_usage(FILE *f)
{
	fprintf(f,
"usage: weft serve WORKFLOW.lua|DIR... [options]\n"
"\n"
"Serve workflows as MCP tools over Streamable HTTP (MCP revision\n"
"2025-11-25) at http://HOST:PORT/mcp.  Each workflow file (or each *.lua\n"
"file of a directory) is one tool; tools/call runs it as a recorded run.\n"
"Run trajectories are resources weft://runs/{id}.  See docs/mcp.md.\n"
"Each workflow is also an A2A agent (v1.0 and v0.3): JSON-RPC at\n"
"/a2a/NAME, its card at /a2a/NAME/.well-known/agent-card.json, the first\n"
"one's at /.well-known/agent-card.json.  See docs/a2a.md.\n"
"\n"
"options:\n"
"  --listen HOST:PORT    address (default 127.0.0.1:8765; port 0 picks\n"
"                        one, printed on stderr)\n"
"  --token-file FILE     bearer tokens, one a line: TOKEN [client|operator\n"
"                        [NAME]] (mode 600); also $WEFT_SERVE_TOKEN (one\n"
"                        client token).  Required when HOST is not a\n"
"                        loopback address.  A client sees only the runs\n"
"                        its own sessions started; an operator sees all\n"
"  --allow-host NAME     also accept this Host header (repeatable)\n"
"  --allow-origin URL    also accept this Origin (repeatable)\n"
"  --max-sessions N      sessions at once (default 64)\n"
"  --session-timeout S   end sessions idle for S seconds (default 3600)\n"
"  --max-body BYTES      largest request body (default 4194304)\n"
"  --max-connections N   connections at once, more are answered 503\n"
"                        (default 256, lowered to fit ulimit -n)\n"
"  --idle-timeout S      close a connection with no request for S\n"
"                        seconds (default 60)\n"
"  --header-timeout S    cut a request whose headers take longer than S\n"
"                        seconds from its first byte (default 10)\n"
"  --body-timeout S      cut a request whose body takes longer than S\n"
"                        seconds after its headers (default 60)\n"
"  --write-timeout S     close a connection whose client takes none of\n"
"                        the waiting output for S seconds (default 30)\n"
"  --max-output BYTES    output that may wait for one connection's\n"
"                        client; past it the connection is closed, and a\n"
"                        larger answer is an error (default 4194304)\n"
"  --drain-timeout S     on SIGTERM, how long runs going may take to end\n"
"                        before the server exits anyway (default 10; 0:\n"
"                        exit at once)\n"
"  --otlp URL            export every run's spans live to an OTLP/HTTP\n"
"                        collector (also $OTEL_EXPORTER_OTLP_ENDPOINT;\n"
"                        docs/observability.md)\n"
"%s"
"\n"
"One coordinator serves the server's life: every call is a recorded run\n"
"in it, with a Lua state of its own, on the same warm workers (an MCP\n"
"server process serves one run, unless its workflow declares it keep =\n"
"\"workflow\": docs/mcp.md).  SIGTERM or SIGINT stops the server gracefully:\n"
"no call is admitted any more (new and waiting calls get an error, and\n"
"/healthz answers 503), the runs going may end and answer for up to\n"
"--drain-timeout seconds, then the server exits; a second signal exits at\n"
"once.  Runs still going are left as recorded so far; started again on\n"
"the same store, the server resumes them (so does one killed with -9),\n"
"without repeating a recorded call.\n"
"\n"
"GET /healthz (200 \"ok\" while the coordinator works) and GET /metrics\n"
"(Prometheus text format) are served on the same listener, behind the\n"
"same token as /mcp.\n"
"\n"
"Requests whose Host is not the bound loopback name (localhost,\n"
"127.0.0.1, [::1]) or an --allow-host, or whose Origin is present and not\n"
"one of those hosts or an --allow-origin, are refused with 403.\n"
"\n"
"remote workers (docs/PROTOCOL.md, \"Remote enrolment\"):\n"
"%s",
	    CMD_SERVE_OPTS_HELP, cmd_remote_help);
}

enum {
	OPT_CONNS = 256,
	OPT_IDLE,
	OPT_HEADER,
	OPT_BODY,
	OPT_WRITE,
	OPT_OUTPUT,
	OPT_DRAIN,
	OPT_OTLP
};

/* A number of seconds in (0, one week], or -1 after saying what is wrong. */
static int
cmd_serve_secs(const char *arg, const char *opt, double *out)
{
	char *end;
	double v = strtod(arg, &end);

	if (end == arg || *end != '\0' || !(v > 0 && v <= 7 * 86400)) {
		fprintf(stderr, "weft: %s wants seconds, more than 0 and at "
		    "most 604800 (got '%s')\n", opt, arg);
		return -1;
	}
	*out = v;
	return 0;
}

static int
cmd_serve_opt_cb(int ch, const char *arg, void *cbarg)
{
	struct cmd_serve_cli *cl = cbarg;
	unsigned long long v;
	char *end;
	int rv;

	if ((rv = cmd_remote_opt(ch, arg, &cl->remote)) != 0)
		return rv > 0 ? 0 : -1;
	switch (ch) {
	case 'L':
		cl->listen = arg;
		return 0;
	case 'T':
		cl->token_file = arg;
		return 0;
	case 'H':
	case 'O':
		if ((ch == 'H' ? cl->nhosts : cl->norigins) >=
		    SERVE_MAX_HOSTS - 4) {
			fprintf(stderr, "weft: too many --allow-host or "
			    "--allow-origin\n");
			return -1;
		}
		if (ch == 'H')
			cl->hosts[cl->nhosts++] = arg;
		else
			cl->origins[cl->norigins++] = arg;
		return 0;
	case 'S':
		cl->http.max_sessions = atoi(arg);
		return cl->http.max_sessions >= 1 &&
		    cl->http.max_sessions <= 100000 ? 0 : (fprintf(stderr, "weft: --max-sessions must be "
		    "1..100000\n"), -1);
	case 'I':
		cl->http.idle_s = atof(arg);
		return cl->http.idle_s >= 1 ? 0 : (fprintf(stderr, "weft: "
		    "--session-timeout must be at least 1\n"), -1);
	case 'B':
		cl->max_body = strtoul(arg, NULL, 10);
		return cl->max_body >= 1024 ? 0 : (fprintf(stderr, "weft: "
		    "--max-body must be at least 1024\n"), -1);
	case OPT_CONNS:
		cl->lim.max_conns = atoi(arg);
		cl->conns_given = 1;
		return cl->lim.max_conns >= 1 && cl->lim.max_conns <= 1000000 ?
		    0 : (fprintf(stderr, "weft: --max-connections must be "
		    "1..1000000\n"), -1);
	case OPT_IDLE:
		return cmd_serve_secs(arg, "--idle-timeout", &cl->lim.idle_s);
	case OPT_HEADER:
		return cmd_serve_secs(arg, "--header-timeout",
		    &cl->lim.header_s);
	case OPT_BODY:
		return cmd_serve_secs(arg, "--body-timeout", &cl->lim.body_s);
	case OPT_WRITE:
		return cmd_serve_secs(arg, "--write-timeout",
		    &cl->lim.write_s);
	case OPT_OUTPUT:
		v = strtoull(arg, &end, 10);
		if (end == arg || *end != '\0' || v < 65536 ||
		    v > (1ull << 32)) {
			fprintf(stderr, "weft: --max-output must be "
			    "65536..%llu bytes\n", 1ull << 32);
			return -1;
		}
		cl->http.max_output = (size_t)v;
		return 0;
	case OPT_DRAIN:
		cl->drain_s = strtod(arg, &end);
		if (end == arg || *end != '\0' || !(cl->drain_s >= 0 &&
		    cl->drain_s <= 86400)) {
			fprintf(stderr, "weft: --drain-timeout wants seconds "
			    "from 0 to 86400 (got '%s')\n", arg);
			return -1;
		}
		return 0;
	case OPT_OTLP:
		cl->otlp = arg;
		return 0;
	}
	return -1;
}

/*
 * The connection limit: as given, else the default lowered to what the
 * open-files limit leaves after the store, serve_client.c and the runs.
 */
static void
cmd_serve_fit_conns(struct cmd_serve_cli *cl, int max_runs)
{
	long nofile = httpd_nofile(), room;

	if (cl->conns_given || nofile < 0)
		return;
	room = nofile - 24 - 5L * max_runs;
	if (room >= cl->lim.max_conns)
		return;
	cl->lim.max_conns = room > 4 ? (int)room : 4;
	fprintf(stderr, "weft: --max-connections %d: the open files limit is "
	    "%ld (ulimit -n)\n", cl->lim.max_conns, nofile);
}

/* Every run ended and answered: exit once the answers are written. */
static void
cmd_serve_drained(void *arg)
{
	struct cmd_serve_stop *st = arg;
	struct timeval tv = { 0, 50 * 1000 };

	fprintf(stderr, "weft: stopped: every run ended\n");
	event_base_loopexit(st->base, &tv);
}

/* The drain took too long: exit, leaving the runs going resumable. */
static void
cmd_serve_drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cmd_serve_stop *st = arg;

	(void)fd;
	(void)what;
	fprintf(stderr, "weft: stopped after --drain-timeout %g: the runs "
	    "going are left resumable (a restart on this store resumes "
	    "them)\n", st->drain_s);
	event_base_loopbreak(st->base);
}

/* SIGTERM or SIGINT: drain first, stop at once the second time. */
static void
cmd_serve_term_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cmd_serve_stop *st = arg;
	struct timeval tv;

	(void)fd;
	(void)what;
	if (st->signals++ > 0 || st->drain_s <= 0) {
		fprintf(stderr, "weft: stopping now: the runs going are left "
		    "resumable\n");
		event_base_loopbreak(st->base);
		return;
	}
	fprintf(stderr, "weft: stopping: no new calls; runs going have %gs "
	    "to end (signal again to stop now)\n", st->drain_s);
	tv.tv_sec = (time_t)st->drain_s;
	tv.tv_usec = (suseconds_t)((st->drain_s - (double)tv.tv_sec) * 1e6);
	st->timer = evtimer_new(st->base, cmd_serve_drain_timeout_cb, st);
	evtimer_add(st->timer, &tv);
	serve_drain(st->srv, cmd_serve_drained, st);
}

int
cmd_serve(int argc, char **argv)
{
	static const struct option more[] = {
		{ "listen", required_argument, NULL, 'L' },
		{ "token-file", required_argument, NULL, 'T' },
		{ "allow-host", required_argument, NULL, 'H' },
		{ "allow-origin", required_argument, NULL, 'O' },
		{ "max-sessions", required_argument, NULL, 'S' },
		{ "session-timeout", required_argument, NULL, 'I' },
		{ "max-body", required_argument, NULL, 'B' },
		{ "max-connections", required_argument, NULL, OPT_CONNS },
		{ "idle-timeout", required_argument, NULL, OPT_IDLE },
		{ "header-timeout", required_argument, NULL, OPT_HEADER },
		{ "body-timeout", required_argument, NULL, OPT_BODY },
		{ "write-timeout", required_argument, NULL, OPT_WRITE },
		{ "max-output", required_argument, NULL, OPT_OUTPUT },
		{ "drain-timeout", required_argument, NULL, OPT_DRAIN },
		{ "otlp", required_argument, NULL, OPT_OTLP },
		CMD_REMOTE_LONGOPTS,
		{ NULL, 0, NULL, 0 }
	};
	static const struct httpd_limits lim = { "weft", HTTPD_MAX_CONNS,
	    HTTPD_IDLE_S, HTTPD_HEADER_S, HTTPD_BODY_S, HTTPD_WRITE_S,
	    HTTPD_MAX_INPUT, 0 };
	struct cmd_serve_cli cl;
	struct serve_opts o;
	struct httpd_routes_opts ro;
	struct httpd_routes *routes = NULL;
	struct mcps_http *mh = NULL;
	struct serve *srv = NULL;
	struct view *view = NULL;
	struct otlp_live *live = NULL;
	struct event_base *base = NULL;
	struct event *term = NULL, *intr = NULL;
	struct cmd_serve_stop stop;
	char err[1024], *exe = NULL, *host = NULL;
	int first, i, port, rc = WEFT_EXIT_USAGE;

	memset(&cl, 0, sizeof cl);
	memset(&stop, 0, sizeof stop);
	cl.drain_s = 10;
	memset(&o, 0, sizeof o);
	o.load_meta = cmd_workflow_meta;
	cl.http.max_sessions = 64;
	cl.http.idle_s = 3600;
	cl.http.max_output = SERVE_MAX_OUTPUT;
	cl.listen = "127.0.0.1:8765";
	cl.max_body = MCPS_MAX_MESSAGE;
	cl.lim = lim;
	first = cmd_serve_opts(argc, argv, &o, NULL, more, cmd_serve_opt_cb,
	    &cl, cmd_serve_usage);
	if (first < 0)
		return first == -1 ? WEFT_EXIT_OK : WEFT_EXIT_USAGE;
	if (cmd_remote_check(&cl.remote) != 0)
		return WEFT_EXIT_USAGE;
	o.remote = &cl.remote;
	if (first >= argc) {
		fprintf(stderr, "weft serve: which workflows? (weft serve "
		    "FILE.lua|DIR...)\n");
		return WEFT_EXIT_USAGE;
	}
	cl.lim.verbose = o.verbose;
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	memset(&ro, 0, sizeof ro);
	ro.max_body = cl.max_body;
	ro.not_found = "weft serves MCP at /mcp, A2A agents at /a2a/NAME and "
	    "the viewer at /\n";
	ro.refuse = mcps_http_refuse;
	cmd_serve_fit_conns(&cl, o.workers > 0 ? o.workers : 4);
	ro.lim = cl.lim;
	routes = httpd_routes_new(base, &ro);
	if (httpd_routes_tokens_load(routes, cl.token_file, SERVE_TOKEN_ENV,
	    err, sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		goto out;
	}
	/* A run's trajectory, escaped inside an answer, fits the output. */
	o.max_resource = cl.http.max_output / 2 - 4096;
	httpd_quiet_libevent();
	if ((exe = cmd_self_exe()) == NULL) {
		fprintf(stderr, "weft: cannot find my own binary\n");
		goto out;
	}
	o.exe = exe;
	o.resume = 1;
	/* The live OTLP export of every run served (engine/otlp_send.c). */
	live = otlp_live_start(cmd_db_path(o.db), cl.otlp, err, sizeof err);
	if (live == NULL && *err != '\0')
		fprintf(stderr, "weft: not exporting spans: %s\n", err);
	if (serve_new(base, &o, argv + first, argc - first, &srv, err,
	    sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		goto out;
	}
	mh = mcps_http_new(serve_mcps(srv), base, httpd_routes_guard(routes),
	    &cl.http);
	httpd_routes_add(routes, "/mcp", mcps_http_cb, mh);
	serve_a2a_init(srv, routes);
	/* Operations (engine/serve_ops.c), behind the same checks. */
	httpd_routes_add(routes, "/healthz", serve_healthz_cb, srv);
	httpd_routes_add(routes, "/metrics", serve_metrics_cb, srv);
	/* The trajectory viewer at / and /api/ (docs/viewer.md). */
	if ((view = view_new(base, routes, cmd_db_path(o.db), 1, err,
	    sizeof err)) == NULL) {
		fprintf(stderr, "weft: %s\n", err);
		goto out;
	}
	for (i = 0; i < cl.nhosts; i++)
		httpd_routes_allow_host(routes, cl.hosts[i]);
	for (i = 0; i < cl.norigins; i++)
		httpd_routes_allow_origin(routes, cl.origins[i]);
	if ((host = httpd_host_part(cl.listen)) != NULL &&
	    !httpd_is_loopback(host) && httpd_routes_ntokens(routes) == 0) {
		fprintf(stderr, "weft: %s is not a loopback address: give a "
		    "bearer token (--token-file or $WEFT_SERVE_TOKEN)\n", host);
		goto out;
	}
	free(host);
	host = NULL;
	if (httpd_routes_bind(routes, cl.listen, &host, &port, err,
	    sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		goto out;
	}
	fprintf(stderr, "weft: serving %d workflow(s) at http://%s%s%s:%d/mcp\n",
	    mcps_tool_count(serve_mcps(srv)), strchr(host, ':') ? "[" : "",
	    host, strchr(host, ':') ? "]" : "", port);
	fprintf(stderr, "weft: A2A agents at http://%s%s%s:%d/a2a/NAME "
	    "(card: /.well-known/agent-card.json)\n", strchr(host, ':') ?
	    "[" : "", host, strchr(host, ':') ? "]" : "", port);
	fprintf(stderr, "weft: viewer at http://%s%s%s:%d/\n",
	    strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
	    port);
	stop.base = base;
	stop.srv = srv;
	stop.drain_s = cl.drain_s;
	term = evsignal_new(base, SIGTERM, cmd_serve_term_cb, &stop);
	intr = evsignal_new(base, SIGINT, cmd_serve_term_cb, &stop);
	event_add(term, NULL);
	event_add(intr, NULL);
	event_base_dispatch(base);
	rc = WEFT_EXIT_OK;
out:
	otlp_live_stop(live);
	view_free(view);
	mcps_http_free(mh);
	serve_a2a_free(srv);
	httpd_routes_free(routes);
	serve_free(srv);
	if (term != NULL)
		event_free(term);
	if (intr != NULL)
		event_free(intr);
	if (stop.timer != NULL)
		event_free(stop.timer);
	if (base != NULL)
		event_base_free(base);
	free(host);
	free(exe);
	return rc;
}
