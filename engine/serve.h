/*
 * serve.h: workflows served as MCP tools (docs/mcp.md): the backend of
 * the MCP server (protocols/mcp_server.h) that `weft mcp` (stdio) and
 * `weft serve` (Streamable HTTP) give their transports.
 *
 * Each workflow file given at start is one tool; w.workflow{} in the file
 * gives its name, description and schemas, and the resources and prompts
 * the server publishes.  Run trajectories are resources weft://runs/{id}.
 *
 * One coordinator serves the server's life (engine/coord.h): a tools/call
 * runs the workflow as a recorded run in it (serve_runs.c), with a Lua
 * state of its own, on the shared workers, whose MCP server sessions stay
 * warm between calls.  Runs past opts.max_runs wait in an admission queue
 * of opts.max_queued.  While a run goes, the server reads its new events
 * from the store and turns them into progress notifications and log
 * messages.  notifications/cancelled ends the run recorded as cancelled
 * and the request gets no answer; a run whose client left goes on.  A run
 * reaches its calling client (sampling, elicitation) through
 * serve_client.c.  With opts.resume (weft serve), runs a server started
 * and did not finish (it was killed) are resumed when it starts again,
 * and a stopping server leaves the runs still going resumable; without
 * it (weft mcp) they are cancelled.
 *
 * Who may see a run: a session has an owner (a fingerprint of its
 * client's credentials, set by the transport) recorded with every run it
 * starts (serve_owners.c); a session that is not an operator's lists and
 * reads only the runs of its owner (docs/security.md).
 *
 * Everything runs on the caller's libevent base; nothing here blocks except
 * short reads of the store.
 */
#ifndef WEFT_SERVE_H
#define WEFT_SERVE_H

#include <stddef.h>
#include <jansson.h>

struct coord;
struct coord_opts;
struct event_base;
struct mcps;
struct serve;

struct serve_opts {
	const char	*db;		/* trajectory store path */
	const char	*exe;		/* the weft binary (its workers) */
	int		 workers;	/* worker processes; 0: cores */
	int		 max_runs;	/* runs at once over the whole server */
	int		 max_queued;	/* calls waiting for a run slot */
	int		 resume;	/* resume a killed server's runs */
	int		 no_workers;	/* start none (coord_opts.external:
					   tests) */
	/* remote workers: listen, tls_cert, tls_key, remote, enroll_dir
	   of the coordinator (NULL: none) */
	const struct coord_opts *remote;
	int		 verbose;	/* log calls to stderr */
	size_t		 max_resource;	/* text of a run resource; 0: default */
	/* A workflow file's name, description and input_schema (a new
	   object), or NULL with "FILE:LINE: ..." in err: the CLI's
	   cmd_workflow_meta, which loads it in a Lua state. */
	json_t		*(*load_meta)(const char *path, char *err,
			    size_t errlen);
};

/*
 * Load the workflows named by paths (files, or directories whose *.lua
 * files are taken in name order), open the store and prepare to serve on
 * base.  Returns 0, or -1 with "FILE:LINE: ..." or another message in err.
 */
int serve_new(struct event_base *base, const struct serve_opts *,
    char *const *paths, int npaths, struct serve **out, char *err,
    size_t errlen);
/*
 * Stop the server: no call is admitted from now on; calls waiting for a
 * slot get no answer; without opts.resume the runs still going are
 * cancelled (this runs the loop until their end is recorded).  Then free
 * it: runs still going are left resumable.  The transports' sessions must
 * be gone first.
 */
void serve_free(struct serve *);
/*
 * Stop gracefully (weft serve's first SIGTERM): admit no call from now
 * on (new and waiting calls get an error answer: the server is
 * stopping), let the runs going go on, and call done(arg) once, on the
 * loop, when none is left (at once if none is going).  What they record
 * meanwhile stays recorded; serve_free() leaves the rest resumable.
 */
void serve_drain(struct serve *, void (*done)(void *), void *arg);
/*
 * Handlers for httpd_routes_add() (arg: the serve), docs/mcp.md
 * "Operations": GET /healthz answers 200 "ok" while the coordinator works
 * (503 and why when it failed or the server is stopping); GET /metrics
 * the server's gauges and counters in the Prometheus text format.
 */
struct evhttp_request;
struct httpd_client;
void serve_healthz_cb(struct evhttp_request *, const struct httpd_client *,
    void *);
void serve_metrics_cb(struct evhttp_request *, const struct httpd_client *,
    void *);
/* The coordinator of the server's runs. */
struct coord *serve_coord(struct serve *);

/*
 * Serve every workflow as an A2A agent on routes (engine/serve_a2a.c,
 * docs/a2a.md): its card and JSON-RPC endpoint under /a2a/NAME, the first
 * one's card at /.well-known/agent-card.json.  serve_a2a_free ends what
 * it holds (running tasks stay resumable): call it before the listener
 * and the server are freed.  NULL is allowed.
 */
struct httpd_routes;
int serve_a2a_init(struct serve *, struct httpd_routes *);
void serve_a2a_free(struct serve *);
/* The MCP server to give transports (owned by the serve). */
struct mcps *serve_mcps(struct serve *);

#endif
