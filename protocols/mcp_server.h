/*
 * mcp_server.h: the MCP server protocol (revision 2025-11-25, docs/mcp.md).
 *
 * The core (mcp_server.c, mcp_server_catalog.c) speaks MCP to client
 * sessions: lifecycle, tools/list, tools/call, resources, prompts,
 * completion, logging level, progress, cancellation, and requests from
 * the server to the client (sampling, elicitation).  What a tool does is a
 * backend's business (struct mcps_backend, as nng's transports fill a
 * struct nni_sp_tran): weft's is engine/serve.c, which runs workflows.
 *
 * Transports feed a session the client's messages and carry its answers:
 * stdio (mcp_server_stdio.c, `weft mcp`) and Streamable HTTP
 * (mcp_server_http.c, /mcp of `weft serve`).
 *
 * Everything runs on the caller's libevent loop.
 */
#ifndef WEFT_MCP_SERVER_H
#define WEFT_MCP_SERVER_H

#include <stddef.h>
#include <stdio.h>
#include <jansson.h>

#include "protocols/jsonrpc.h"

#define MCPS_MAX_MESSAGE	(4u * 1024 * 1024)
#define MCPS_MAX_RESOURCE	(4u * 1024 * 1024)

/* Log levels of notifications/message, in mcps_levels[] order. */
#define MCPS_LOG_DEBUG		0
#define MCPS_LOG_INFO		1

struct event_base;
struct evhttp_request;
struct httpd;
struct httpd_client;
struct mcps;
struct mcps_conn;
struct mcps_call;

extern const char *const mcps_levels[];

/*
 * What serves the tools.  All callbacks get the arg given to mcps_new.
 */
struct mcps_backend {
	/*
	 * tools/call of tool i with args (an object, borrowed).  The backend
	 * answers now or later with mcps_call_done(), exactly once, also
	 * after a cancel.
	 */
	void	(*call)(void *arg, struct mcps_call *, int tool, json_t *args);
	/*
	 * Stop a call: the client cancelled it (gone 0; return 1 if it was
	 * stopped, 0 if it is past stopping and its answer goes out), or its
	 * session ended (gone 1; the answer will be dropped).
	 */
	int	(*cancel)(void *arg, struct mcps_call *, int gone);
	/* Append the backend's own resources (templates: resource templates)
	   to out, after the declared ones. */
	void	(*resources)(void *arg, struct mcps_conn *, int templates,
		    json_t *out);
	/* resources/read: 0 if uri is not the backend's; else 1 with
	   *contents (a new array) or NULL (not found). */
	int	(*read)(void *arg, struct mcps_conn *, const char *uri,
		    json_t **contents);
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

/* The client's answer to a request of the server, NULL if none came
   before the session ended. */
typedef void (*mcps_answer_cb)(void *arg, const struct jrpc_msg *answer);

/* A server with no tools yet, serving through be (borrowed) with arg. */
struct mcps *mcps_new(const struct mcps_backend *be, void *arg);
/* Free the server: its sessions and calls must be gone. */
void mcps_free(struct mcps *);
/*
 * Serve a tool.  decl (a reference is taken) declares it in weft's
 * w.workflow form: title, description, input_schema, output_schema, and
 * the resources and prompts published with it (docs/mcp.md).  Returns the
 * tool's index, the i of mcps_backend.call.
 */
int mcps_tool_add(struct mcps *, const char *name, json_t *decl);
/* Tools served, and the name of tool i (for a startup banner). */
int mcps_tool_count(const struct mcps *);
const char *mcps_tool_name(const struct mcps *, int i);
/* Calls not yet done (for a clean shutdown). */
int mcps_busy(const struct mcps *);
/* Is version a protocol revision this server speaks? */
int mcps_version_ok(const char *version);

/* A client session; messages for it go through send. */
struct mcps_conn *mcps_conn_new(struct mcps *, mcps_send_cb send, void *arg);
/* End a session: its calls are cancelled, their answers dropped. */
void mcps_conn_free(struct mcps_conn *);
/* The session has answered an initialize request. */
int mcps_conn_initialized(const struct mcps_conn *);
/*
 * Who the session's client is.  owner (copied; a token's fingerprint,
 * never a secret) is for the backend to record with what the session
 * starts; unless operator is set, the session should see only what its
 * owner started.  A new session is an operator's with no owner: the user
 * who started `weft mcp`.
 */
void mcps_conn_set_owner(struct mcps_conn *, const char *owner,
    int operator);
/* The session's owner (NULL: none) and whether it is an operator's. */
const char *mcps_conn_owner(const struct mcps_conn *);
int mcps_conn_operator(const struct mcps_conn *);
/* Did the client declare this capability ("sampling", "elicitation")? */
int mcps_conn_client_can(const struct mcps_conn *, const char *cap);
/* notifications/resources/updated for uri, if the session subscribed. */
void mcps_conn_updated(struct mcps_conn *, const char *uri);
/*
 * Handle one message from the client, as bytes (parse errors are answered
 * with a JSON-RPC error) or already parsed (the caller keeps ownership of
 * msg).  Answers and notifications go out through the session's send
 * callback, at once or later (tools/call).
 */
void mcps_conn_input(struct mcps_conn *, const char *buf, size_t len);
void mcps_conn_handle(struct mcps_conn *, const struct jrpc_msg *msg);

/* The session of a call, NULL once cancelled or its session gone. */
struct mcps_conn *mcps_call_conn(struct mcps_call *);
/* The id of the client's tools/call request (borrowed). */
const json_t *mcps_call_id(const struct mcps_call *);
/*
 * Report on a call: a progress notification (if the request carried a
 * progressToken) and a log message of level (if the session's level lets
 * it through; data is stolen).  Each returns 1 if a message went out.
 */
int mcps_call_progress(struct mcps_call *, const char *message);
int mcps_call_log(struct mcps_call *, int level, json_t *data);
/*
 * Answer a call with result (stolen; a CallToolResult) and free it.  A
 * cancelled call's answer is not sent (its stream just ends).
 */
void mcps_call_done(struct mcps_call *, json_t *result);
/*
 * Ask the call's client (method with params, stolen) on the call's stream.
 * cb gets the answer, or NULL if the session ends first.  Returns -1 (and
 * frees params) if the call has no client any more.
 */
int mcps_call_request(struct mcps_call *, const char *method,
    json_t *params, mcps_answer_cb cb, void *arg);
/* A tool result with one text block and isError (for refusals). */
json_t *mcps_tool_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/*
 * The stdio transport: one JSON-RPC message a line on in_fd and stdout.
 * One session; when in_fd closes and no call is left, the loop of base is
 * broken.
 */
struct mcps_stdio *mcps_stdio_new(struct mcps *, struct event_base *,
    int in_fd);
/* End the session (its calls are cancelled) and free the transport. */
void mcps_stdio_free(struct mcps_stdio *);

/*
 * The Streamable HTTP transport: sessions (Mcp-Session-Id), POST, GET and
 * DELETE on one path.  guard is the listener's (runtime/httpd.h), for
 * holding output to max_output.
 */
struct mcps_http_opts {
	int		 max_sessions;
	double		 idle_s;	/* end sessions idle this long */
	size_t		 max_output;	/* output waiting for one client */
};
struct mcps_http *mcps_http_new(struct mcps *, struct event_base *,
    struct httpd *guard, const struct mcps_http_opts *);
/* End every session and free the transport. */
void mcps_http_free(struct mcps_http *);
/*
 * The handler of the MCP path (an httpd_route_cb, runtime/httpd_routes.h):
 * who is the bearer token the request presents, or NULL; arg is the
 * struct mcps_http.  The listener has checked Host, Origin and the token.
 */
void mcps_http_cb(struct evhttp_request *, const struct httpd_client *who,
    void *arg);
/* Refuse a request with an HTTP status carrying a JSON-RPC error. */
void mcps_http_refuse(struct evhttp_request *, int status,
    const char *reason, const char *message);

#endif
