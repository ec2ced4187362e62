/*
 * mcp_server.h: weft as an MCP server (revision 2025-11-25, docs/mcp.md).
 *
 * Transport-independent: `weft mcp` (engine/cmd_mcp.c) feeds it lines from
 * stdin, `weft serve` (engine/cmd_serve.c) the bodies of POST /mcp.  Each
 * workflow file given at start is one tool; w.workflow{} in the file gives
 * its name, description and schemas, and the resources and prompts the
 * server publishes.  Run trajectories are resources weft://runs/{id}.
 *
 * A tools/call runs the workflow as a recorded run in a child process
 * (`weft run --json --run-id ID`), so runs of one server are concurrent,
 * isolated from each other and from the server (a run that crashes or is
 * killed is a failed call, never a dead server).  While a run goes, the
 * server reads its new events from the store and turns them into progress
 * notifications (if the request carried a progressToken) and log messages
 * (if the client set a level with logging/setLevel).  notifications/
 * cancelled sends the child SIGTERM: the run ends recorded as cancelled and
 * the request gets no answer.
 *
 * Who may see a run: a session has an owner (a fingerprint of its
 * client's credentials, set by the transport) recorded with every run it
 * starts; a session that is not an operator's lists and reads only the
 * runs of its owner (docs/security.md).
 *
 * Everything runs on the caller's libevent base; nothing here blocks except
 * short reads of the store.
 */
#ifndef WEFT_MCP_SERVER_H
#define WEFT_MCP_SERVER_H

#include <stddef.h>
#include <stdio.h>
#include <jansson.h>
#include <event2/event.h>

#include "protocols/jsonrpc.h"

#define MCPS_MAX_MESSAGE	(4u * 1024 * 1024)
#define MCPS_MAX_RESOURCE	(4u * 1024 * 1024)

struct mcps;
struct mcps_conn;

struct mcps_opts {
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
 * Send one message to a session's client.  msg is borrowed.  req_id
 * (borrowed) is the client request the message belongs to, or NULL for a
 * message unrelated to any request.  final is 1 for the answer to req_id;
 * then msg may be NULL: the request was cancelled and gets no answer (an
 * HTTP transport just closes its stream).
 */
typedef void (*mcps_send_cb)(void *arg, json_t *msg, const json_t *req_id,
    int final);

/*
 * Load the workflows named by paths (files, or directories whose *.lua
 * files are taken in name order), open the store and prepare to serve on
 * base.  Returns 0, or -1 with "FILE:LINE: ..." or another message in err.
 */
int mcps_new(struct event_base *base, const struct mcps_opts *,
    char *const *paths, int npaths, struct mcps **out, char *err,
    size_t errlen);
/* Cancel every run, wait for the children and free the server. */
void mcps_free(struct mcps *);
/* Runs still going (for a clean shutdown). */
int mcps_busy(const struct mcps *);
/* Tools served, and the name of tool i (for the startup banner). */
int mcps_tool_count(const struct mcps *);
const char *mcps_tool_name(const struct mcps *, int i);

/* A client session; messages for it go through send. */
struct mcps_conn *mcps_conn_new(struct mcps *, mcps_send_cb send, void *arg);
/* End a session: its runs are cancelled and their answers dropped. */
void mcps_conn_free(struct mcps_conn *);
/* The session has answered an initialize request. */
int mcps_conn_initialized(const struct mcps_conn *);
/*
 * Who the session's client is.  owner (copied; a token's fingerprint,
 * never a secret) is recorded as the owner of every run the session
 * starts; unless operator is set, the session lists and reads only the
 * runs of that owner and their child runs.  A new session is an
 * operator's with no owner: the user who started `weft mcp`.
 */
void mcps_conn_set_owner(struct mcps_conn *, const char *owner,
    int operator);

/*
 * Handle one message from the client, as bytes (parse errors are answered
 * with a JSON-RPC error) or already parsed (the caller keeps ownership of
 * msg).  Answers and notifications go out through the session's send
 * callback, at once or later (tools/call).
 */
void mcps_conn_input(struct mcps_conn *, const char *buf, size_t len);
void mcps_conn_handle(struct mcps_conn *, const struct jrpc_msg *msg);

/* Is version a protocol revision this server speaks? */
int mcps_version_ok(const char *version);

#endif
