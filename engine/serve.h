/*
 * serve.h: workflows served as MCP tools (docs/mcp.md): the backend of
 * the MCP server (protocols/mcp_server.h) that `weft mcp` (stdio) and
 * `weft serve` (Streamable HTTP) give their transports.
 *
 * Each workflow file given at start is one tool; w.workflow{} in the file
 * gives its name, description and schemas, and the resources and prompts
 * the server publishes.  Run trajectories are resources weft://runs/{id}.
 *
 * A tools/call runs the workflow as a recorded run in a child process
 * (`weft run --json --run-id ID`, serve_runs.c), so runs of one server are
 * concurrent, isolated from each other and from the server (a run that
 * crashes or is killed is a failed call, never a dead server).  While a
 * run goes, the server reads its new events from the store and turns them
 * into progress notifications and log messages.  notifications/cancelled
 * sends the child SIGTERM: the run ends recorded as cancelled and the
 * request gets no answer.  A run reaches its calling client (sampling,
 * elicitation) through serve_client.c.
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

struct event_base;
struct mcps;
struct serve;

struct serve_opts {
	const char	*db;		/* trajectory store path */
	const char	*exe;		/* the weft binary that runs workflows */
	int		 run_workers;	/* --workers of each run */
	int		 max_runs;	/* runs at once over the whole server */
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
 * Cancel every run, wait for the children and free the server.  The
 * transports' sessions must be gone first.
 */
void serve_free(struct serve *);
/* The MCP server to give transports (owned by the serve). */
struct mcps *serve_mcps(struct serve *);

#endif
