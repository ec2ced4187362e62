/*
 * mcp_server.c: MCP server sessions: lifecycle, dispatch, tools/list,
 * tools/call and its progress, cancellation, requests to the client,
 * logging level.  Resources, prompts and completion are in
 * mcp_server_catalog.c; what a tool does is the backend's.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "protocols/mcp_server_int.h"
#include "runtime/util.h"

#define MCPS_PAGE	100

const char *const mcps_levels[] = { "debug", "info", "notice", "warning",
    "error", "critical", "alert", "emergency", NULL };

static const char *const mcps_versions[] = { "2025-11-25", "2025-06-18",
    "2025-03-26", "2024-11-05", NULL };

int
mcps_version_ok(const char *v)
{
	int i;

	for (i = 0; v != NULL && mcps_versions[i] != NULL; i++)
		if (strcmp(v, mcps_versions[i]) == 0)
			return 1;
	return 0;
}

void
mcps_reply(struct mcps_conn *cn, const json_t *req_id, json_t *result)
{
	json_t *msg = jrpc_result(json_deep_copy(req_id), result);

	cn->send(cn->arg, msg, req_id, 1);
	json_decref(msg);
}

void
mcps_reply_error(struct mcps_conn *cn, const json_t *req_id, int code,
    const char *fmt, ...)
{
	va_list ap;
	char *text;
	json_t *msg;

	va_start(ap, fmt);
	text = xvasprintf(fmt, ap);
	va_end(ap);
	msg = jrpc_error(req_id ? json_deep_copy(req_id) : json_null(), code,
	    text, NULL);
	free(text);
	cn->send(cn->arg, msg, req_id, 1);
	json_decref(msg);
}

json_t *
mcps_tool_error(const char *fmt, ...)
{
	va_list ap;
	char *text;
	json_t *r;

	va_start(ap, fmt);
	text = xvasprintf(fmt, ap);
	va_end(ap);
	r = json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text",
	    "text", text, "isError", 1);
	free(text);
	return r;
}

/* ---- the server -------------------------------------------------------- */

struct mcps *
mcps_new(const struct mcps_backend *be, void *arg)
{
	struct mcps *s = xcalloc(1, sizeof *s);

	s->be = be;
	s->arg = arg;
	TAILQ_INIT(&s->calls);
	return s;
}

void
mcps_free(struct mcps *s)
{
	int i;

	if (s == NULL)
		return;
	for (i = 0; i < s->ntools; i++) {
		free(s->tools[i].name);
		json_decref(s->tools[i].decl);
	}
	free(s->tools);
	free(s);
}

int
mcps_tool_add(struct mcps *s, const char *name, json_t *decl)
{
	s->tools = xrealloc(s->tools, (s->ntools + 1) * sizeof s->tools[0]);
	s->tools[s->ntools].name = xstrdup(name);
	s->tools[s->ntools].decl = json_incref(decl);
	return s->ntools++;
}

int
mcps_busy(const struct mcps *s)
{
	return s->ncalls;
}

int
mcps_tool_count(const struct mcps *s)
{
	return s->ntools;
}

const char *
mcps_tool_name(const struct mcps *s, int i)
{
	return i >= 0 && i < s->ntools ? s->tools[i].name : NULL;
}

/* ---- sessions ---------------------------------------------------------- */

struct mcps_conn *
mcps_conn_new(struct mcps *s, mcps_send_cb send, void *arg)
{
	struct mcps_conn *cn = xcalloc(1, sizeof *cn);

	cn->srv = s;
	cn->send = send;
	cn->arg = arg;
	cn->log_level = -1;
	cn->subs = json_object();
	cn->operator = 1;
	TAILQ_INIT(&cn->out);
	return cn;
}

void
mcps_conn_set_owner(struct mcps_conn *cn, const char *owner, int operator)
{
	free(cn->owner);
	cn->owner = owner != NULL ? xstrdup(owner) : NULL;
	cn->operator = operator;
}

const char *
mcps_conn_owner(const struct mcps_conn *cn)
{
	return cn->owner;
}

int
mcps_conn_operator(const struct mcps_conn *cn)
{
	return cn->operator;
}

int
mcps_conn_client_can(const struct mcps_conn *cn, const char *cap)
{
	if (strcmp(cap, "sampling") == 0)
		return cn->can_sample;
	if (strcmp(cap, "elicitation") == 0)
		return cn->can_elicit;
	return 0;
}

void
mcps_conn_updated(struct mcps_conn *cn, const char *uri)
{
	json_t *msg;

	if (json_object_get(cn->subs, uri) == NULL)
		return;
	msg = jrpc_notification("notifications/resources/updated",
	    json_pack("{s:s}", "uri", uri));
	cn->send(cn->arg, msg, NULL, 0);
	json_decref(msg);
}

void
mcps_conn_free(struct mcps_conn *cn)
{
	struct mcps_call *c, *next;
	struct mcps_out *o;

	if (cn == NULL)
		return;
	/* Calls first: a backend stopping one may still ask its client. */
	TAILQ_FOREACH_SAFE(c, &cn->srv->calls, entry, next)
		if (c->conn == cn) {
			c->conn = NULL;
			c->cancelled = 1;
			cn->srv->be->cancel(cn->srv->arg, c, 1);
		}
	while ((o = TAILQ_FIRST(&cn->out)) != NULL) {
		TAILQ_REMOVE(&cn->out, o, entry);
		o->cb(o->arg, NULL);
		json_decref(o->id);
		free(o);
	}
	json_decref(cn->subs);
	free(cn->owner);
	free(cn);
}

int
mcps_conn_initialized(const struct mcps_conn *cn)
{
	return cn->initialized;
}

/* ---- calls ------------------------------------------------------------- */

struct mcps_conn *
mcps_call_conn(struct mcps_call *c)
{
	return c->cancelled ? NULL : c->conn;
}

const json_t *
mcps_call_id(const struct mcps_call *c)
{
	return c->req_id;
}

/* Send a notification about call c on its request's stream. */
static int
mcps_call_notify(struct mcps_call *c, const char *method, json_t *params)
{
	json_t *msg = jrpc_notification(method, params);
	int sent = 0;

	if (c->conn != NULL && !c->cancelled) {
		c->conn->send(c->conn->arg, msg, c->req_id, 0);
		sent = 1;
	}
	json_decref(msg);
	return sent;
}

int
mcps_call_progress(struct mcps_call *c, const char *message)
{
	if (c->token == NULL || c->conn == NULL || c->cancelled)
		return 0;
	return mcps_call_notify(c, "notifications/progress", json_pack("{s:O, "
	    "s:I, s:s}", "progressToken", c->token, "progress",
	    ++c->progress, "message", message));
}

int
mcps_call_log(struct mcps_call *c, int level, json_t *data)
{
	if (c->conn == NULL || c->cancelled || c->conn->log_level < 0 ||
	    level < c->conn->log_level) {
		json_decref(data);
		return 0;
	}
	return mcps_call_notify(c, "notifications/message", json_pack("{s:s, "
	    "s:s, s:o}", "level", mcps_levels[level], "logger", "weft",
	    "data", data));
}

void
mcps_call_done(struct mcps_call *c, json_t *result)
{
	struct mcps *s = c->srv;

	TAILQ_REMOVE(&s->calls, c, entry);
	s->ncalls--;
	if (c->conn != NULL && (c->cancelled || result == NULL))
		c->conn->send(c->conn->arg, NULL, c->req_id, 1);
	else if (c->conn != NULL)
		mcps_reply(c->conn, c->req_id, json_incref(result));
	json_decref(result);
	json_decref(c->req_id);
	json_decref(c->token);
	free(c);
}

int
mcps_call_request(struct mcps_call *c, const char *method, json_t *params,
    mcps_answer_cb cb, void *arg)
{
	struct mcps_conn *cn = mcps_call_conn(c);
	struct mcps_out *o;
	json_t *msg;

	if (cn == NULL) {
		json_decref(params);
		return -1;
	}
	o = xcalloc(1, sizeof *o);
	o->id = json_sprintf("weft-%llu", ++c->srv->seq);
	o->cb = cb;
	o->arg = arg;
	TAILQ_INSERT_TAIL(&cn->out, o, entry);
	msg = jrpc_request(json_incref(o->id), method, params);
	cn->send(cn->arg, msg, c->req_id, 0);
	json_decref(msg);
	return 0;
}

/* A response from the client: to the request of ours it answers. */
static void
mcps_answer(struct mcps_conn *cn, const struct jrpc_msg *m)
{
	struct mcps_out *o;

	TAILQ_FOREACH(o, &cn->out, entry)
		if (json_equal(o->id, m->id))
			break;
	if (o == NULL)
		return;
	TAILQ_REMOVE(&cn->out, o, entry);
	o->cb(o->arg, m);
	json_decref(o->id);
	free(o);
}

/* notifications/cancelled for req_id of this session. */
static void
mcps_cancel(struct mcps_conn *cn, const json_t *req_id)
{
	struct mcps_call *c, *next;

	if (req_id == NULL)
		return;
	TAILQ_FOREACH_SAFE(c, &cn->srv->calls, entry, next)
		if (c->conn == cn && !c->cancelled &&
		    json_equal(c->req_id, req_id) &&
		    cn->srv->be->cancel(cn->srv->arg, c, 0))
			c->cancelled = 1;
}

/* Parse a pagination cursor (a decimal offset we gave out). */
int
mcps_cursor(const json_t *params, size_t total, size_t *off)
{
	const json_t *c = json_object_get(params, "cursor");
	const char *s;
	char *end;
	unsigned long v;

	*off = 0;
	if (c == NULL || json_is_null(c))
		return 0;
	if ((s = json_string_value(c)) == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0 || v >= total)
		return -1;
	*off = v;
	return 0;
}

/* Put items[off, off+page) into result[key], with nextCursor if more. */
json_t *
mcps_page(json_t *items, size_t off, const char *key)
{
	json_t *r = json_object(), *page = json_array();
	size_t i;

	for (i = off; i < json_array_size(items) && i < off + MCPS_PAGE; i++)
		json_array_append(page, json_array_get(items, i));
	json_object_set_new(r, key, page);
	if (i < json_array_size(items)) {
		char buf[32];

		snprintf(buf, sizeof buf, "%zu", i);
		json_object_set_new(r, "nextCursor", json_string(buf));
	}
	json_decref(items);
	return r;
}

static void
mcps_initialize(struct mcps_conn *cn, const json_t *id, const json_t *params)
{
	const char *v = json_string_value(json_object_get(params,
	    "protocolVersion"));
	json_t *caps;

	if (!json_is_object(params) || v == NULL) {
		mcps_reply_error(cn, id, JRPC_INVALID_PARAMS,
		    "/params/protocolVersion: required, a string");
		return;
	}
	cn->initialized = 1;
	caps = json_object_get(params, "capabilities");
	cn->can_sample = json_is_object(json_object_get(caps, "sampling"));
	cn->can_elicit = json_is_object(json_object_get(caps, "elicitation"));
	mcps_reply(cn, id, json_pack("{s:s, s:{s:{s:b}, s:{s:b, s:b}, "
	    "s:{s:b}, s:{}, s:{}}, s:{s:s, s:s, s:s}, s:s}",
	    "protocolVersion", mcps_version_ok(v) ? v : mcps_versions[0],
	    "capabilities", "tools", "listChanged", 0, "resources", "subscribe",
	    1, "listChanged", 0, "prompts", "listChanged", 0, "logging",
	    "completions", "serverInfo", "name", "weft", "title",
	    "weft workflows", "version", PACKAGE_VERSION, "instructions",
	    "Each tool runs a weft workflow as a recorded run; the answer's "
	    "_meta names the run, readable as the resource weft://runs/{id}."));
}

static json_t *
mcps_tool_entry(const struct mcps_tool *t)
{
	json_t *e, *v;

	e = json_pack("{s:s}", "name", t->name);
	if ((v = json_object_get(t->decl, "title")) != NULL)
		json_object_set(e, "title", v);
	if ((v = json_object_get(t->decl, "description")) != NULL)
		json_object_set(e, "description", v);
	if ((v = json_object_get(t->decl, "input_schema")) != NULL)
		json_object_set(e, "inputSchema", v);
	else
		json_object_set_new(e, "inputSchema", json_pack("{s:s}",
		    "type", "object"));
	if ((v = json_object_get(t->decl, "output_schema")) != NULL)
		json_object_set(e, "outputSchema", v);
	return e;
}

static void
mcps_tools_list(struct mcps_conn *cn, const json_t *id, const json_t *params)
{
	struct mcps *s = cn->srv;
	json_t *all = json_array();
	size_t off;
	int i;

	for (i = 0; i < s->ntools; i++)
		json_array_append_new(all, mcps_tool_entry(&s->tools[i]));
	if (mcps_cursor(params, json_array_size(all), &off) != 0) {
		json_decref(all);
		mcps_reply_error(cn, id, JRPC_INVALID_PARAMS,
		    "/params/cursor: not a cursor this server gave");
		return;
	}
	mcps_reply(cn, id, mcps_page(all, off, "tools"));
}

static void
mcps_tools_call(struct mcps_conn *cn, const json_t *id, const json_t *params)
{
	struct mcps *s = cn->srv;
	const char *name = json_string_value(json_object_get(params, "name"));
	json_t *args = json_object_get(params, "arguments");
	json_t *tok = json_object_get(json_object_get(params, "_meta"),
	    "progressToken");
	struct mcps_call *c;
	int i;

	if (name == NULL) {
		mcps_reply_error(cn, id, JRPC_INVALID_PARAMS,
		    "/params/name: required, a string");
		return;
	}
	for (i = 0; i < s->ntools && strcmp(s->tools[i].name, name) != 0; i++)
		;
	if (i == s->ntools) {
		mcps_reply_error(cn, id, JRPC_INVALID_PARAMS,
		    "unknown tool '%s'", name);
		return;
	}
	if (args != NULL && !json_is_object(args) && !json_is_null(args)) {
		mcps_reply_error(cn, id, JRPC_INVALID_PARAMS,
		    "/params/arguments: must be an object");
		return;
	}
	if (tok != NULL && !json_is_string(tok) && !json_is_integer(tok))
		tok = NULL;
	args = args && json_is_object(args) ? json_incref(args) :
	    json_object();
	c = xcalloc(1, sizeof *c);
	c->srv = s;
	c->conn = cn;
	c->req_id = json_deep_copy(id);
	c->token = tok ? json_deep_copy(tok) : NULL;
	TAILQ_INSERT_TAIL(&s->calls, c, entry);
	s->ncalls++;
	s->be->call(s->arg, c, i, args);
	json_decref(args);
}

static void
mcps_set_level(struct mcps_conn *cn, const json_t *id, const json_t *params)
{
	const char *l = json_string_value(json_object_get(params, "level"));
	int i;

	for (i = 0; l != NULL && mcps_levels[i] != NULL; i++)
		if (strcmp(mcps_levels[i], l) == 0) {
			cn->log_level = i;
			mcps_reply(cn, id, json_object());
			return;
		}
	mcps_reply_error(cn, id, JRPC_INVALID_PARAMS, "/params/level: one of "
	    "debug, info, notice, warning, error, critical, alert, emergency");
}

/* ---- dispatch ---------------------------------------------------------- */

static void
mcps_request(struct mcps_conn *cn, const char *m, const json_t *id,
    const json_t *params)
{
	if (params != NULL && !json_is_object(params)) {
		mcps_reply_error(cn, id, JRPC_INVALID_PARAMS,
		    "/params: must be an object");
		return;
	}
	if (strcmp(m, "ping") == 0)
		mcps_reply(cn, id, json_object());
	else if (strcmp(m, "initialize") == 0)
		mcps_initialize(cn, id, params);
	else if (!cn->initialized)
		mcps_reply_error(cn, id, JRPC_INVALID_REQUEST, "'%s' before "
		    "initialize: only ping is allowed", m);
	else if (strcmp(m, "tools/list") == 0)
		mcps_tools_list(cn, id, params);
	else if (strcmp(m, "tools/call") == 0)
		mcps_tools_call(cn, id, params);
	else if (strcmp(m, "resources/list") == 0)
		mcps_resources_list(cn, id, params, 0);
	else if (strcmp(m, "resources/templates/list") == 0)
		mcps_resources_list(cn, id, params, 1);
	else if (strcmp(m, "resources/read") == 0)
		mcps_resources_read(cn, id, params);
	else if (strcmp(m, "resources/subscribe") == 0)
		mcps_subscribe(cn, id, params, 1);
	else if (strcmp(m, "resources/unsubscribe") == 0)
		mcps_subscribe(cn, id, params, 0);
	else if (strcmp(m, "prompts/list") == 0)
		mcps_prompts_list(cn, id, params);
	else if (strcmp(m, "prompts/get") == 0)
		mcps_prompts_get(cn, id, params);
	else if (strcmp(m, "completion/complete") == 0)
		mcps_complete(cn, id, params);
	else if (strcmp(m, "logging/setLevel") == 0)
		mcps_set_level(cn, id, params);
	else
		mcps_reply_error(cn, id, JRPC_METHOD_NOT_FOUND,
		    "method '%s' not found", m);
}

void
mcps_conn_handle(struct mcps_conn *cn, const struct jrpc_msg *msg)
{
	switch (msg->kind) {
	case JRPC_REQUEST:
		mcps_request(cn, msg->method, msg->id, msg->params);
		break;
	case JRPC_NOTIFICATION:
		if (strcmp(msg->method, "notifications/cancelled") == 0)
			mcps_cancel(cn, json_object_get(msg->params,
			    "requestId"));
		break;
	default:
		/* The answer to a request of ours; one to nothing we asked
		   is dropped. */
		mcps_answer(cn, msg);
		break;
	}
}

void
mcps_conn_input(struct mcps_conn *cn, const char *buf, size_t len)
{
	struct jrpc_msg msg;
	char err[256];
	int code;

	if (jrpc_parse(buf, len, &msg, &code, err, sizeof err) != 0) {
		mcps_reply_error(cn, NULL, code, "%s", err);
		return;
	}
	mcps_conn_handle(cn, &msg);
	jrpc_msg_clear(&msg);
}
