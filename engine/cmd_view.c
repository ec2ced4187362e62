/*
 * cmd_view.c: `weft view [RUN]`: the trajectory viewer (engine/view.c) on
 * a store, served read-only on a loopback address (docs/viewer.md).
 */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "engine/cmd.h"
#include "engine/store.h"
#include "engine/view.h"
#include "runtime/httpd_routes.h"
#include "runtime/util.h"

static void
cmd_view_usage(FILE *f)
{
	fprintf(f,
"usage: weft view [RUN] [--db PATH] [--listen HOST:PORT] [--golden FILE]\n"
"\n"
"Serve the trajectory viewer on the store, read-only, and print its URL\n"
"on stdout: the runs list, a run as a tree beside a timeline with every\n"
"model turn and tool call, a replay scrubber showing the state at each\n"
"event, weft replay's verdict, two runs side by side as weft diff aligns\n"
"them, approvals, and live updates of running runs.  With RUN (an id or\n"
"a unique prefix) the URL printed opens that run.  Everything the page\n"
"needs is in the weft binary: it works offline.  See docs/viewer.md.\n"
"\n"
"  --db PATH           trajectory store (default $WEFT_DB or ./weft.db)\n"
"  --listen HOST:PORT  address (default 127.0.0.1:0: a free port); only\n"
"                      loopback addresses (the viewer has no token)\n"
"  --golden FILE       show weft eval's scores of a run against FILE\n"
"                      (a golden file, docs/eval.md)\n"
"\n"
"Stop it with Ctrl-C.  exit status: 0 stopped, 1 no such run or the\n"
"store cannot be read, 2 bad usage.\n");
}

static int
cmd_view_find_cb(void *arg, const struct store_run *r)
{
	snprintf(arg, 64, "%s", r->id);
	return 0;
}

static void
cmd_view_term_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

int
cmd_view(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "listen", required_argument, NULL, 'L' },
		{ "golden", required_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	static const struct httpd_limits lim = { "weft view", 64,
	    HTTPD_IDLE_S, HTTPD_HEADER_S, HTTPD_BODY_S, HTTPD_WRITE_S,
	    HTTPD_MAX_INPUT, 0 };
	struct httpd_routes_opts ro;
	struct httpd_routes *routes = NULL;
	struct view *v = NULL;
	struct store *st;
	struct event_base *base = NULL;
	struct event *term = NULL, *intr = NULL;
	const char *db = NULL, *listen = "127.0.0.1:0", *golden = NULL;
	char err[1024], run[64] = "", *host = NULL;
	int ch, port, rc = WEFT_EXIT_FAILED;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			db = optarg;
			break;
		case 'L':
			listen = optarg;
			break;
		case 'g':
			golden = optarg;
			break;
		case 'h':
			cmd_view_usage(stdout);
			return WEFT_EXIT_OK;
		default:
			cmd_view_usage(stderr);
			return WEFT_EXIT_USAGE;
		}
	}
	if (argc - optind > 1) {
		cmd_view_usage(stderr);
		return WEFT_EXIT_USAGE;
	}
	if ((host = httpd_host_part(listen)) == NULL ||
	    !httpd_is_loopback(host)) {
		fprintf(stderr, "weft view: --listen '%s' is not a loopback "
		    "HOST:PORT (the viewer has no token: use weft serve to "
		    "share it)\n", listen);
		free(host);
		return WEFT_EXIT_USAGE;
	}
	free(host);
	host = NULL;
	if (store_open_read(cmd_db_path(db), &st, err, sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		return WEFT_EXIT_FAILED;
	}
	if (optind < argc && store_run_find(st, argv[optind],
	    cmd_view_find_cb, run) != 0) {
		fprintf(stderr, "weft: %s\n", store_error(st));
		store_close(st);
		return WEFT_EXIT_FAILED;
	}
	store_close(st);
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	memset(&ro, 0, sizeof ro);
	ro.lim = lim;
	ro.max_body = 64 * 1024;
	ro.not_found = "not found (the viewer is at /)\n";
	httpd_quiet_libevent();
	routes = httpd_routes_new(base, &ro);
	if ((v = view_new(base, routes, cmd_db_path(db), 0, err,
	    sizeof err)) == NULL) {
		fprintf(stderr, "weft: %s\n", err);
		goto out;
	}
	if (golden != NULL && view_set_golden(v, golden, err,
	    sizeof err) != 0) {
		fprintf(stderr, "weft view: %s\n", err);
		rc = WEFT_EXIT_USAGE;
		goto out;
	}
	if (httpd_routes_bind(routes, listen, &host, &port, err,
	    sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		goto out;
	}
	printf("http://%s%s%s:%d/%s%s\n", strchr(host, ':') ? "[" : "", host,
	    strchr(host, ':') ? "]" : "", port, *run ? "#/run/" : "", run);
	fflush(stdout);
	fprintf(stderr, "weft view: serving %s read-only; Ctrl-C stops\n",
	    cmd_db_path(db));
	term = evsignal_new(base, SIGTERM, cmd_view_term_cb, base);
	intr = evsignal_new(base, SIGINT, cmd_view_term_cb, base);
	event_add(term, NULL);
	event_add(intr, NULL);
	event_base_dispatch(base);
	rc = WEFT_EXIT_OK;
out:
	view_free(v);
	httpd_routes_free(routes);
	if (term != NULL)
		event_free(term);
	if (intr != NULL)
		event_free(intr);
	if (base != NULL)
		event_base_free(base);
	free(host);
	return rc;
}
