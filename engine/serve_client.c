/*
 * serve_client.c: the calling MCP client, offered to its runs as a tool
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
 * the tool result.  This server speaks just enough stateless Streamable
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

#include "engine/serve_int.h"
#include "runtime/util.h"
#include "runtime/httpd.h"

#define CLIENT_PREFIX	"/client/"

/* A run's tools/call waiting for the client's answer. */
struct client_wait {
	json_t			*tool_id;	/* id of the run's tools/call */
	struct evhttp_request	*req;
	int			 elicit;
};

static void
client_http(struct evhttp_request *req, int code, const char *reason,
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

/* Answer a run's JSON-RPC request with result (stolen). */
static void
client_result(struct evhttp_request *req, const json_t *id, json_t *result)
{
	json_t *m = jrpc_result(json_deep_copy(id), result);

	client_http(req, 200, "OK", m);
	json_decref(m);
}

static void
client_error(struct evhttp_request *req, int http, const json_t *id,
    int code, const char *text)
{
	json_t *m = jrpc_error(id ? json_deep_copy(id) : json_null(), code,
	    text, NULL);

	client_http(req, http, http == 200 ? "OK" : "Bad Request", m);
	json_decref(m);
}

static json_t *
client_tools(void)
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

/* The request to the client for a run's tools/call, or NULL + err. */
static json_t *
client_request(struct mcps_conn *cn, const char *tool, json_t *args,
    int *elicit, const char **err)
{
	const char *prompt = json_string_value(json_object_get(args, "prompt"));
	json_t *max = json_object_get(args, "max_tokens"), *p;

	*elicit = strcmp(tool, "elicit") == 0;
	if (*elicit) {
		if (!mcps_conn_client_can(cn, "elicitation"))
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
	if (!mcps_conn_client_can(cn, "sampling"))
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

/* The tool result for the client's answer to a forwarded request. */
static json_t *
client_answer(struct client_wait *q, const struct jrpc_msg *m)
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

/* The client answered (m), or its session ended (NULL). */
static void
client_answer_cb(void *arg, const struct jrpc_msg *m)
{
	struct client_wait *q = arg;

	client_result(q->req, q->tool_id, m != NULL ? client_answer(q, m) :
	    mcps_tool_error("the MCP client of this run has gone"));
	json_decref(q->tool_id);
	free(q);
}

/* tools/call from a run: forward to the run's client, answer later. */
static void
client_call(struct serve_run *r, struct evhttp_request *req,
    const struct jrpc_msg *m)
{
	struct mcps_call *c = serve_run_call(r);
	struct mcps_conn *cn = mcps_call_conn(c);
	const char *tool = json_string_value(json_object_get(m->params,
	    "name")), *err = NULL;
	struct client_wait *q;
	json_t *params;
	int elicit;

	if (cn == NULL || tool == NULL) {
		client_result(req, m->id, mcps_tool_error("%s", cn == NULL ?
		    "the MCP client of this run has gone" : "no tool name"));
		return;
	}
	params = client_request(cn, tool, json_object_get(m->params,
	    "arguments"), &elicit, &err);
	if (params == NULL) {
		client_result(req, m->id, mcps_tool_error("%s", err));
		return;
	}
	q = xcalloc(1, sizeof *q);
	q->tool_id = json_deep_copy(m->id);
	q->req = req;
	q->elicit = elicit;
	if (mcps_call_request(c, elicit ? "elicitation/create" :
	    "sampling/createMessage", params, client_answer_cb, q) != 0)
		client_answer_cb(q, NULL);
}

static void
client_dispatch(struct serve_run *r, struct evhttp_request *req,
    const struct jrpc_msg *m)
{
	const char *v;

	if (m->kind != JRPC_REQUEST) {
		client_http(req, 202, "Accepted", NULL);
		return;
	}
	if (strcmp(m->method, "initialize") == 0) {
		v = json_string_value(json_object_get(m->params,
		    "protocolVersion"));
		client_result(req, m->id, json_pack("{s:s, s:{s:{}}, s:{s:s, "
		    "s:s}}", "protocolVersion", mcps_version_ok(v) ? v :
		    "2025-11-25", "capabilities", "tools", "serverInfo",
		    "name", "weft-mcp-client", "version", PACKAGE_VERSION));
	} else if (strcmp(m->method, "ping") == 0)
		client_result(req, m->id, json_object());
	else if (strcmp(m->method, "tools/list") == 0)
		client_result(req, m->id, client_tools());
	else if (strcmp(m->method, "tools/call") == 0)
		client_call(r, req, m);
	else
		client_error(req, 200, m->id, JRPC_METHOD_NOT_FOUND,
		    "method not found");
}

static void
client_cb(struct evhttp_request *req, void *arg)
{
	struct serve *s = arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	const char *path = evhttp_request_get_uri(req), *auth;
	struct serve_run *r;
	struct jrpc_msg m;
	size_t len = evbuffer_get_length(in);
	char err[256], *body;
	int code;

	httpd_begin(s->client_guard, req);
	if (strncmp(path, CLIENT_PREFIX, strlen(CLIENT_PREFIX)) != 0 ||
	    (r = serve_run_find(s, path + strlen(CLIENT_PREFIX))) == NULL) {
		client_http(req, 404, "Not Found", NULL);
		return;
	}
	auth = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");
	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0 ||
	    !serve_run_secret_ok(r, auth + 7)) {
		client_http(req, 401, "Unauthorized", NULL);
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		client_http(req, 405, "Method Not Allowed", NULL);
		return;
	}
	body = xmalloc(len + 1);
	evbuffer_remove(in, body, len);
	if (jrpc_parse(body, len, &m, &code, err, sizeof err) != 0) {
		free(body);
		client_error(req, 400, NULL, code, err);
		return;
	}
	free(body);
	client_dispatch(r, req, &m);
	jrpc_msg_clear(&m);
}

int
serve_client_init(struct serve *s)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;

	struct httpd_limits lim = { "weft: client bridge", 0, HTTPD_IDLE_S,
	    HTTPD_HEADER_S, HTTPD_BODY_S, HTTPD_WRITE_S, HTTPD_MAX_INPUT, 0 };

	if ((s->client = evhttp_new(s->base)) == NULL)
		return -1;
	/* Runs connect here, a few each; any local user could too. */
	lim.max_conns = 16 + 4 * s->opts.max_runs;
	s->client_guard = httpd_new(s->base, s->client, &lim);
	evhttp_set_max_body_size(s->client, MCPS_MAX_MESSAGE);
	evhttp_set_max_headers_size(s->client, 64 * 1024);
	evhttp_set_allowed_methods(s->client, EVHTTP_REQ_GET |
	    EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
	evhttp_set_gencb(s->client, client_cb, s);
	if ((bs = evhttp_bind_socket_with_handle(s->client, "127.0.0.1", 0)) ==
	    NULL)
		return -1;
	httpd_watch(s->client_guard, bs);
	if (getsockname(evhttp_bound_socket_get_fd(bs),
	    (struct sockaddr *)&ss, &sl) != 0)
		return -1;
	s->client_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

void
serve_client_free(struct serve *s)
{
	if (s->client == NULL)
		return;
	evhttp_free(s->client);
	s->client = NULL;
	httpd_free(s->client_guard);
	s->client_guard = NULL;
}
