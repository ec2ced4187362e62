/*
 * mcp_server_stdio.c: the MCP stdio transport of the server: one JSON-RPC
 * message a line on stdin and stdout, one session, logs on stderr.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "protocols/mcp_server.h"
#include "runtime/util.h"

struct mcps_stdio {
	struct event_base	*base;
	struct mcps		*srv;
	struct mcps_conn	*conn;
	struct linebuf		*lb;
	struct event		*in_ev;
	int			 eof;
};

/* One message per line on stdout. */
static void
mcps_stdio_send_cb(void *arg, json_t *msg, const json_t *req_id, int final)
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

/* After stdin closed: end once no call is left. */
static void
mcps_stdio_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mcps_stdio *ss = arg;
	struct timeval tv = { 0, 100 * 1000 };

	(void)fd;
	(void)what;
	if (mcps_busy(ss->srv) == 0)
		event_base_loopbreak(ss->base);
	else
		event_base_once(ss->base, -1, EV_TIMEOUT, mcps_stdio_idle_cb,
		    ss, &tv);
}

/* Read what stdin has; hand each complete line to the session. */
static void
mcps_stdio_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mcps_stdio *ss = arg;
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
		mcps_stdio_idle_cb(-1, 0, ss);
		return;
	}
	linebuf_feed(ss->lb, buf, n);
	while ((rv = linebuf_next(ss->lb, &line, &len)) != 0) {
		if (rv < 0) {
			json_t *e = jrpc_error(json_null(),
			    JRPC_INVALID_REQUEST, "message longer than the "
			    "limit (4 MiB)", NULL);

			mcps_stdio_send_cb(ss, e, NULL, 1);
			json_decref(e);
			continue;
		}
		mcps_conn_input(ss->conn, line, len);
	}
}

struct mcps_stdio *
mcps_stdio_new(struct mcps *srv, struct event_base *base, int in_fd)
{
	struct mcps_stdio *ss = xcalloc(1, sizeof *ss);

	ss->base = base;
	ss->srv = srv;
	ss->lb = linebuf_new(MCPS_MAX_MESSAGE);
	ss->conn = mcps_conn_new(srv, mcps_stdio_send_cb, ss);
	/* stdin stays blocking: it may share its file description with
	   stdout (a socket), which must not turn non-blocking under
	   fwrite.  The read callback only runs when data is ready. */
	ss->in_ev = event_new(base, in_fd, EV_READ | EV_PERSIST,
	    mcps_stdio_read_cb, ss);
	event_add(ss->in_ev, NULL);
	return ss;
}

void
mcps_stdio_free(struct mcps_stdio *ss)
{
	if (ss == NULL)
		return;
	mcps_conn_free(ss->conn);
	event_free(ss->in_ev);
	linebuf_free(ss->lb);
	free(ss);
}
