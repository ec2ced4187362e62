/*
 * mcp_bridge.c: the calling MCP client, offered to its runs as a tool
 * server.
 *
 * A run started by tools/call may need the client that called it: its
 * model (sampling/createMessage) or its user (elicitation/create).  The
 * run is a child process, so the server listens on a loopback port and
 * gives each run a URL and a secret (WEFT_MCP_CLIENT_URL,
 * WEFT_MCP_CLIENT_TOKEN); a workflow declares `w.mcp_client()`, a tool
 * server at that URL with two tools, `sample` and `elicit`.  A call to one
 * becomes a request from the server to the client, sent on the session of
 * the tools/call (on its event stream, over HTTP); the client's answer is
 * the tool result.  The bridge speaks just enough stateless Streamable
 * HTTP for weft's own MCP client: initialize, notifications, tools/list,
 * tools/call, with JSON answers.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "engine/mcp_server_int.h"
#include "runtime/util.h"
#include "runtime/httpd.h"

#define BRIDGE_PREFIX	"/client/"

struct mcps_bq {
	TAILQ_ENTRY(mcps_bq)	 entry;
	struct mcps_conn	*conn;
	json_t			*srv_id;	/* id of our request to the client */
	json_t			*tool_id;	/* id of the run's tools/call */
	struct evhttp_request	*req;
	int			 elicit;
};

static void
bridge_http(struct evhttp_request *req, int code, const char *reason,
    json_t *msg)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *s = msg ? jrpc_dump(msg, &len, 0) : NULL;

	if (s != NULL) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Type", "application/json");
		evbuffer_add(b, s, len);
	}
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
	free(s);
}

/* Answer a bridge JSON-RPC request with result (stolen). */
static void
bridge_result(struct evhttp_request *req, const json_t *id, json_t *result)
{
	json_t *m = jrpc_result(json_deep_copy(id), result);

	bridge_http(req, 200, "OK", m);
	json_decref(m);
}

static void
bridge_error(struct evhttp_request *req, int http, const json_t *id,
    int code, const char *text)
{
	json_t *m = jrpc_error(id ? json_deep_copy(id) : json_null(), code,
	    text, NULL);

	bridge_http(req, http, http == 200 ? "OK" : "Bad Request", m);
	json_decref(m);
}

static json_t *
bridge_tools(void)
{
	return json_pack("{s:[{s:s, s:s, s:{s:s, s:{s:{s:s}, s:{s:s}, "
	    "s:{s:s}}, s:[s]}}, {s:s, s:s, s:{s:s, s:{s:{s:s}, s:{s:s}}, "
	    "s:[s, s]}}]}",
	    "tools",
	    "name", "sample", "description", "Ask the calling MCP client's "
	    "model (sampling/createMessage); the answer is its text",
	    "inputSchema", "type", "object", "properties",
	    "prompt", "type", "string", "system", "type", "string",
	    "max_tokens", "type", "integer", "required", "prompt",
	    "name", "elicit", "description", "Ask the calling MCP client's "
	    "user (elicitation/create); the answer is {action, content}",
	    "inputSchema", "type", "object", "properties",
	    "message", "type", "string", "schema", "type", "object",
	    "required", "message", "schema");
}

/* The request to the client for a bridge tools/call, or NULL + err. */
static json_t *
bridge_client_request(struct mcps_conn *cn, const char *tool, json_t *args,
    int *elicit, const char **err)
{
	const char *prompt = json_string_value(json_object_get(args, "prompt"));
	json_t *max = json_object_get(args, "max_tokens"), *p;

	*elicit = strcmp(tool, "elicit") == 0;
	if (*elicit) {
		if (!cn->can_elicit)
			return *err = "the MCP client did not declare the "
			    "elicitation capability", NULL;
		if (!json_is_string(json_object_get(args, "message")) ||
		    !json_is_object(json_object_get(args, "schema")))
			return *err = "elicit needs message (a string) and "
			    "schema (an object)", NULL;
		return json_pack("{s:O, s:O}", "message", json_object_get(args,
		    "message"), "requestedSchema", json_object_get(args,
		    "schema"));
	}
	if (strcmp(tool, "sample") != 0)
		return *err = "unknown tool (the client offers sample and "
		    "elicit)", NULL;
	if (!cn->can_sample)
		return *err = "the MCP client did not declare the sampling "
		    "capability", NULL;
	if (prompt == NULL)
		return *err = "sample needs prompt, a string", NULL;
	p = json_pack("{s:[{s:s, s:{s:s, s:s}}], s:I}", "messages", "role",
	    "user", "content", "type", "text", "text", prompt, "maxTokens",
	    json_is_integer(max) && json_integer_value(max) > 0 ?
	    json_integer_value(max) : (json_int_t)1000);
	if (json_is_string(json_object_get(args, "system")))
		json_object_set(p, "systemPrompt", json_object_get(args,
		    "system"));
	return p;
}

/* tools/call on the bridge: forward to the run's client, answer later. */
static void
bridge_call(struct mcps *s, struct mcps_run *r, struct evhttp_request *req,
    const struct jrpc_msg *m)
{
	struct mcps_conn *cn = mcps_run_conn(r);
	const char *tool = json_string_value(json_object_get(m->params,
	    "name")), *err = NULL;
	json_t *params, *msg;
	struct mcps_bq *q;
	int elicit;

	if (cn == NULL || tool == NULL) {
		bridge_result(req, m->id, mcps_tool_error("%s", cn == NULL ?
		    "the MCP client of this run has gone" : "no tool name"));
		return;
	}
	params = bridge_client_request(cn, tool, json_object_get(m->params,
	    "arguments"), &elicit, &err);
	if (params == NULL) {
		bridge_result(req, m->id, mcps_tool_error("%s", err));
		return;
	}
	q = xcalloc(1, sizeof *q);
	q->conn = cn;
	q->srv_id = json_sprintf("weft-%llu", ++s->bridge_seq);
	q->tool_id = json_deep_copy(m->id);
	q->req = req;
	q->elicit = elicit;
	TAILQ_INSERT_TAIL(&s->bridge_q, q, entry);
	msg = jrpc_request(json_incref(q->srv_id), elicit ?
	    "elicitation/create" : "sampling/createMessage", params);
	cn->send(cn->arg, msg, mcps_run_req_id(r), 0);
	json_decref(msg);
}

static void
bridge_dispatch(struct mcps *s, struct mcps_run *r, struct evhttp_request *req,
    const struct jrpc_msg *m)
{
	const char *v;

	if (m->kind != JRPC_REQUEST) {
		bridge_http(req, 202, "Accepted", NULL);
		return;
	}
	if (strcmp(m->method, "initialize") == 0) {
		v = json_string_value(json_object_get(m->params,
		    "protocolVersion"));
		bridge_result(req, m->id, json_pack("{s:s, s:{s:{}}, s:{s:s, "
		    "s:s}}", "protocolVersion", mcps_version_ok(v) ? v :
		    "2025-11-25", "capabilities", "tools", "serverInfo",
		    "name", "weft-mcp-client", "version", PACKAGE_VERSION));
	} else if (strcmp(m->method, "ping") == 0)
		bridge_result(req, m->id, json_object());
	else if (strcmp(m->method, "tools/list") == 0)
		bridge_result(req, m->id, bridge_tools());
	else if (strcmp(m->method, "tools/call") == 0)
		bridge_call(s, r, req, m);
	else
		bridge_error(req, 200, m->id, JRPC_METHOD_NOT_FOUND,
		    "method not found");
}

static void
bridge_cb(struct evhttp_request *req, void *arg)
{
	struct mcps *s = arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	const char *path = evhttp_request_get_uri(req), *auth;
	struct mcps_run *r;
	struct jrpc_msg m;
	size_t len = evbuffer_get_length(in);
	char err[256], *body;
	int code;

	httpd_begin(s->bridge_guard, req);
	if (strncmp(path, BRIDGE_PREFIX, strlen(BRIDGE_PREFIX)) != 0 ||
	    (r = mcps_run_find(s, path + strlen(BRIDGE_PREFIX))) == NULL) {
		bridge_http(req, 404, "Not Found", NULL);
		return;
	}
	auth = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");
	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0 ||
	    !mcps_run_secret_ok(r, auth + 7)) {
		bridge_http(req, 401, "Unauthorized", NULL);
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		bridge_http(req, 405, "Method Not Allowed", NULL);
		return;
	}
	body = xmalloc(len + 1);
	evbuffer_remove(in, body, len);
	if (jrpc_parse(body, len, &m, &code, err, sizeof err) != 0) {
		free(body);
		bridge_error(req, 400, NULL, code, err);
		return;
	}
	free(body);
	bridge_dispatch(s, r, req, &m);
	jrpc_msg_clear(&m);
}

/* The tool result for the client's answer to a bridged request. */
static json_t *
bridge_answer(struct mcps_bq *q, const struct jrpc_msg *m)
{
	const char *text;
	char *dump;
	json_t *res;

	if (m->kind == JRPC_ERROR_RESPONSE)
		return mcps_tool_error("the MCP client refused: %s (%d)",
		    m->error_message, m->error_code);
	if (q->elicit) {
		dump = json_dumps(m->result, JSON_COMPACT);
		res = json_pack("{s:[{s:s, s:s}], s:O}", "content", "type",
		    "text", "text", dump ? dump : "{}", "structuredContent",
		    m->result);
		free(dump);
		return res;
	}
	text = json_string_value(json_object_get(json_object_get(m->result,
	    "content"), "text"));
	return json_pack("{s:[{s:s, s:s}], s:{s:O?}}", "content", "type",
	    "text", "text", text ? text : "", "_meta", "model",
	    json_object_get(m->result, "model"));
}

int
mcps_bridge_response(struct mcps_conn *cn, const struct jrpc_msg *m)
{
	struct mcps_bq *q;

	TAILQ_FOREACH(q, &cn->srv->bridge_q, entry)
		if (q->conn == cn && json_equal(q->srv_id, m->id))
			break;
	if (q == NULL)
		return 0;
	TAILQ_REMOVE(&cn->srv->bridge_q, q, entry);
	bridge_result(q->req, q->tool_id, bridge_answer(q, m));
	json_decref(q->srv_id);
	json_decref(q->tool_id);
	free(q);
	return 1;
}

void
mcps_bridge_detach(struct mcps *s, struct mcps_conn *cn)
{
	struct mcps_bq *q, *next;

	TAILQ_FOREACH_SAFE(q, &s->bridge_q, entry, next)
		if (cn == NULL || q->conn == cn) {
			TAILQ_REMOVE(&s->bridge_q, q, entry);
			bridge_result(q->req, q->tool_id, mcps_tool_error(
			    "the MCP client of this run has gone"));
			json_decref(q->srv_id);
			json_decref(q->tool_id);
			free(q);
		}
}

int
mcps_bridge_init(struct mcps *s)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;

	struct httpd_limits lim = { "weft: client bridge", 0, HTTPD_IDLE_S,
	    HTTPD_HEADER_S, HTTPD_BODY_S, HTTPD_WRITE_S, HTTPD_MAX_INPUT, 0 };

	TAILQ_INIT(&s->bridge_q);
	if ((s->bridge = evhttp_new(s->base)) == NULL)
		return -1;
	/* Runs connect here, a few each; any local user could too. */
	lim.max_conns = 16 + 4 * s->opts.max_runs;
	s->bridge_guard = httpd_new(s->base, s->bridge, &lim);
	evhttp_set_max_body_size(s->bridge, MCPS_MAX_MESSAGE);
	evhttp_set_max_headers_size(s->bridge, 64 * 1024);
	evhttp_set_allowed_methods(s->bridge, EVHTTP_REQ_GET |
	    EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
	evhttp_set_gencb(s->bridge, bridge_cb, s);
	if ((bs = evhttp_bind_socket_with_handle(s->bridge, "127.0.0.1", 0)) ==
	    NULL)
		return -1;
	httpd_watch(s->bridge_guard, bs);
	if (getsockname(evhttp_bound_socket_get_fd(bs),
	    (struct sockaddr *)&ss, &sl) != 0)
		return -1;
	s->bridge_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

void
mcps_bridge_free(struct mcps *s)
{
	if (s->bridge == NULL)
		return;
	mcps_bridge_detach(s, NULL);
	evhttp_free(s->bridge);
	s->bridge = NULL;
	httpd_free(s->bridge_guard);
	s->bridge_guard = NULL;
}
