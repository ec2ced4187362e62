/* task.c: a worker's tasks: token checks, tool calls, lists, timeouts. */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nng/nng.h>
#include <openssl/crypto.h>

#include "engine/captoken.h"
#include "protocols/jsonrpc.h"
#include "protocols/mcp_client.h"
#include "runtime/fault.h"
#include "runtime/sandbox.h"
#include "runtime/util.h"
#include "runtime/wire.h"
#include "workers/worker_int.h"

/* Free a task's own state (not its place in the running list). */
void
worker_task_free(struct wtask *t)
{
	if (t->timer != NULL)
		event_free(t->timer);
	json_decref(t->progress);
	json_decref(t->list);
	free(t->idem);
	free(t->kind);
	free(t);
}

/*
 * Record a task's outcome for the next complete/fail message, with the
 * progress notifications not yet sent in a heartbeat.
 */
void
worker_outcome(struct wtask *t, json_t *result, json_t *error)
{
	struct worker *w = t->w;
	json_t *item;

	if (result != NULL && json_dumpb(result, NULL, 0, JSON_COMPACT) >
	    WIRE_MAX_MSG - 4096) {
		/* Refused, never truncated: the task fails for good. */
		json_array_append_new(w->failures, item = json_pack(
		    "{s:I, s:i, s:{s:s, s:o}}", "id", (json_int_t)t->id,
		    "attempt", t->attempt, "error", "kind", FAIL_TOO_LARGE,
		    "message", json_sprintf("the tool result (%zu bytes) "
		    "exceeds the %d-byte message limit", json_dumpb(result,
		    NULL, 0, JSON_COMPACT), WIRE_MAX_MSG)));
	} else if (result != NULL)
		json_array_append_new(w->results, item = json_pack(
		    "{s:I, s:i, s:O}", "id", (json_int_t)t->id, "attempt",
		    t->attempt, "result", result));
	else
		json_array_append_new(w->failures, item = json_pack(
		    "{s:I, s:i, s:O}", "id", (json_int_t)t->id, "attempt",
		    t->attempt, "error", error));
	if (json_array_size(t->progress) > 0)
		json_object_set(item, "progress", t->progress);
	TAILQ_REMOVE(&w->running, t, entry);
	w->nrunning--;
	if (t->ws != NULL)
		t->ws->nactive--;
	worker_task_free(t);
	worker_pump(w);
}

/* Fail a task with kind and message. */
void
worker_task_fail(struct wtask *t, const char *kind, const char *msg)
{
	json_t *e = json_pack("{s:s, s:s}", "kind", kind, "message", msg);

	worker_outcome(t, NULL, e);
	json_decref(e);
}

/*
 * Put the sandbox of the task's server in the result's _meta, as
 * "weft/sandbox": always for tools/list, and for the first tools/call
 * answered after each start of the server (every one in debug mode, with
 * the calls denied so far).  A server's own "weft/sandbox"
 * is removed: it cannot vouch for its confinement.  A layer missing is
 * also a warning on stderr, once per session.
 */
static void
worker_sandbox_meta(struct wtask *t, json_t *result, int always)
{
	const struct sandbox_report *rep;
	const struct sandbox_profile *p;
	json_t *meta, *sb;
	unsigned starts;
	char miss[1024];

	if (t->ws == NULL || !json_is_object(result))
		return;
	meta = json_object_get(result, "_meta");
	if (json_is_object(meta))
		json_object_del(meta, "weft/sandbox");
	rep = mcpc_sandbox(t->ws->mcpc, &p, &starts);
	if (!always && starts == t->ws->reported && (p == NULL || !p->debug))
		return;
	t->ws->reported = starts;
	if (!json_is_object(meta)) {
		meta = json_object();
		json_object_set_new(result, "_meta", meta);
	}
	if (p == NULL) {
		json_object_set_new(meta, "weft/sandbox", json_pack("{s:b}",
		    "disabled", 1));
		return;
	}
	if (rep == NULL)
		return;
	json_object_set_new(meta, "weft/sandbox", sb = sandbox_report_json(
	    rep, p));
	if (p->debug)
		json_object_set(sb, "denied", mcpc_denied(t->ws->mcpc));
	if (!t->ws->warned && sandbox_report_missing(rep, miss,
	    sizeof miss) > 0) {
		t->ws->warned = 1;
		fprintf(stderr, "weft: warning: MCP server '%s' runs without "
		    "these sandbox layers: %s (weft doctor shows what this "
		    "kernel provides)\n", t->ws->name, miss);
	}
}

/*
 * A failed call (isError) whose text names a path the sandbox refused:
 * add a text block that says so and names the profile line to add.
 */
static void
worker_call_explain(struct wtask *t, json_t *result)
{
	json_t *content = json_object_get(result, "content"), *b;
	const char *text;
	char why[PATH_MAX * 2 + 200];
	size_t i;

	if (t->ws == NULL || !json_is_true(json_object_get(result,
	    "isError")) || !json_is_array(content))
		return;
	json_array_foreach(content, i, b) {
		text = json_string_value(json_object_get(b, "text"));
		if (text == NULL || mcpc_explain(t->ws->mcpc, text, why,
		    sizeof why) == 0)
			continue;
		json_array_append_new(content, json_pack("{s:s, s:o}",
		    "type", "text", "text", json_sprintf("weft: MCP server "
		    "'%s': %s", t->ws->name, why)));
		return;
	}
}

/*
 * tools/call answered.  After the server said its tool list changed, the
 * next result carries _meta["weft/tools_changed"], so the graph lists the
 * tools again before an agent's next turn.
 */
static void
worker_call_cb(void *arg, json_t *result, json_t *error)
{
	struct wtask *t = arg;
	json_t *meta;

	if (result != NULL && json_is_object(result)) {
		worker_sandbox_meta(t, result, 0);
		worker_call_explain(t, result);
		meta = json_object_get(result, "_meta");
		if (json_is_object(meta))
			json_object_del(meta, "weft/tools_changed");
		if (t->ws != NULL && t->ws->changed) {
			t->ws->changed = 0;
			if (!json_is_object(meta))
				json_object_set_new(result, "_meta",
				    meta = json_object());
			json_object_set_new(meta, "weft/tools_changed",
			    json_true());
		}
	}
	worker_outcome(t, result, error);
}

/* A tools/call outlived its attempt's timeout: cancel it. */
static void
worker_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wtask *t = arg;
	char msg[300];

	snprintf(msg, sizeof msg, "MCP server '%s' did not answer %s "
	    "within the attempt's timeout of %.3g s; the request was "
	    "cancelled "
	    "(notifications/cancelled)", t->ws->name, t->list != NULL ?
	    "tools/list" : "tools/call", t->timeout);
	mcpc_cancel(t->session, t->handle, FAIL_TIMEOUT, msg);
}

/*
 * The server's timeout (server spec "timeout", seconds) into t->timeout;
 * -1, with the task failed, when it is not a positive number.
 */
static int
worker_timeout_of(struct wtask *t, json_t *params)
{
	json_t *tmo = json_object_get(json_object_get(params, "server"),
	    "timeout");

	t->timeout = t->task_timeout;
	if (tmo == NULL)
		return 0;
	if (!json_is_number(tmo) || json_number_value(tmo) <= 0 ||
	    json_number_value(tmo) > 86400) {
		worker_task_fail(t, FAIL_BAD_TASK, "/params/server/timeout: "
		    "must be seconds, more than 0 and at most 86400");
		return -1;
	}
	if (t->timeout <= 0 || json_number_value(tmo) < t->timeout)
		t->timeout = json_number_value(tmo);
	return 0;
}

/* Arm the task's timeout, if its server has one. */
static void
worker_timeout_arm(struct wtask *t)
{
	struct timeval tv;

	if (t->timeout <= 0)
		return;
	tv.tv_sec = (time_t)t->timeout;
	tv.tv_usec = (suseconds_t)((t->timeout - tv.tv_sec) * 1e6);
	t->timer = evtimer_new(t->w->base, worker_timeout_cb, t);
	evtimer_add(t->timer, &tv);
}

/*
 * Send a tools/call, with the task id as its progress token and the
 * task's idempotency key (the same for every attempt) in
 * _meta["weft/idempotency_key"], so a server can recognise a repeat.
 */
static void
worker_call(struct wtask *t, json_t *params)
{
	json_t *name = json_object_get(params, "name");
	json_t *args = json_object_get(params, "arguments");
	char tp[56];
	int64_t h;

	if (!json_is_string(name)) {
		worker_task_fail(t, FAIL_BAD_TASK,
		    "/params/name: must be a string");
		return;
	}
	if (worker_timeout_of(t, params) != 0)
		return;
	/* W3C trace context: mcp_http.c sends it as the traceparent header. */
	h = mcpc_request(t->session, "tools/call", json_pack(
	    "{s:O, s:o, s:{s:I, s:s?, s:s?}}", "name", name, "arguments",
	    args ? json_incref(args) : json_object(), "_meta", "progressToken",
	    (json_int_t)t->id, "weft/idempotency_key", t->idem, "traceparent",
	    worker_traceparent(t->idem, tp) == 0 ? tp : NULL),
	    worker_call_cb, t);
	if (h == 0)
		return;		/* answered already: t is gone */
	t->handle = h;
	worker_timeout_arm(t);
}

/* tools/list answered: follow nextCursor until the list is complete. */
static void
worker_list_cb(void *arg, json_t *result, json_t *error)
{
	struct wtask *t = arg;
	json_t *tools, *cursor, *done;
	int64_t h;

	if (error != NULL) {
		worker_outcome(t, NULL, error);
		return;
	}
	tools = json_object_get(result, "tools");
	if (!json_is_array(tools)) {
		worker_task_fail(t, FAIL_PROTOCOL, "tools/list answer lacks "
		    "/result/tools");
		return;
	}
	json_array_extend(t->list, tools);
	cursor = json_object_get(result, "nextCursor");
	if (json_is_string(cursor) && json_array_size(t->list) < 100000) {
		h = mcpc_request(t->session, "tools/list", json_pack("{s:O}",
		    "cursor", cursor), worker_list_cb, t);
		if (h != 0)
			t->handle = h;
		return;
	}
	if (t->ws->gen == t->gen && t->ws->tools == NULL)
		t->ws->tools = json_incref(t->list);
	done = json_pack("{s:O}", "tools", t->list);
	worker_sandbox_meta(t, done, 1);
	worker_outcome(t, done, NULL);
	json_decref(done);
}

/*
 * mcp.list: the session's cached list while the server has not said it
 * changed (notifications/tools/list_changed), else tools/list.
 */
static void
worker_list(struct wtask *t, json_t *params)
{
	json_t *done;
	int64_t h;

	if (t->ws->tools != NULL) {
		done = json_pack("{s:O}", "tools", t->ws->tools);
		worker_sandbox_meta(t, done, 1);
		worker_outcome(t, done, NULL);
		json_decref(done);
		return;
	}
	if (worker_timeout_of(t, params) != 0)
		return;
	t->list = json_array();
	t->gen = t->ws->gen;
	h = mcpc_request(t->session, "tools/list", NULL, worker_list_cb, t);
	if (h == 0)
		return;		/* answered already: t is gone */
	t->handle = h;
	worker_timeout_arm(t);
}

/* The cached verified token whose text is s, or NULL. */
static struct captoken *
worker_token_cached(struct worker *w, const char *s)
{
	unsigned i;

	for (i = 0; i < WORKER_TOKEN_CACHE; i++)
		if (w->tokc[i] != NULL &&
		    strcmp(captoken_string(w->tokc[i]), s) == 0)
			return w->tokc[i];
	return NULL;
}

/*
 * Verify the task's capability token before anything runs: signature
 * (once per token), expiry, run, node, tool, arguments and call count.
 * On refusal err gets the reason name, a NUL, and the message.
 */
static int
worker_check_token(struct worker *w, json_t *task, const char *run,
    json_t *params, char *err, size_t errlen)
{
	const char *s = json_string_value(json_object_get(task, "token"));
	const char *kind = json_string_value(json_object_get(task, "kind"));
	struct captoken_call call;
	struct captoken *tok;
	char msg[400];
	const char *server;
	char tool[256];
	json_t *a2a_args = NULL;
	int r;

	memset(&call, 0, sizeof call);
	call.run = run != NULL ? run : "";
	call.node = json_string_value(json_object_get(task, "path"));
	if (call.node == NULL)
		call.node = "";
	if (kind != NULL && strcmp(kind, TASK_MCP_CALL) == 0) {
		server = json_string_value(json_object_get(json_object_get(
		    params, "server"), "name"));
		snprintf(tool, sizeof tool, "%s.%s", server ? server : "",
		    json_string_value(json_object_get(params, "name")) ?
		    json_string_value(json_object_get(params, "name")) : "");
		call.tool = tool;
		call.args = json_object_get(params, "arguments");
	} else if (kind != NULL && strcmp(kind, TASK_A2A_SEND) == 0) {
		/* The grant names "REMOTE.send" with the agent's host. */
		json_t *srv = json_object_get(params, "server");

		snprintf(tool, sizeof tool, "%s.send", json_string_value(
		    json_object_get(srv, "name")) ? json_string_value(
		    json_object_get(srv, "name")) : "");
		call.tool = tool;
		call.args = a2a_args = json_pack("{s:O?}", "agent",
		    json_object_get(srv, "agent"));
	}
	if (s == NULL) {
		r = -CAPTOKEN_EMALFORMED;
		snprintf(msg, sizeof msg, "the task carries no capability "
		    "token");
	} else if ((tok = worker_token_cached(w, s)) != NULL) {
		r = captoken_check(tok, &call, captoken_now_ms(), w->uses, msg,
		    sizeof msg);
	} else if ((r = captoken_verify(w->keys, s, strlen(s), &call,
	    captoken_now_ms(), w->uses, &tok, msg, sizeof msg)) == 0) {
		captoken_free(w->tokc[w->tokc_next]);
		w->tokc[w->tokc_next] = tok;
		w->tokc_next = (w->tokc_next + 1) % WORKER_TOKEN_CACHE;
	}
	json_decref(a2a_args);
	if (r == 0)
		return 0;
	snprintf(err, errlen, "%s%c%s", captoken_reason_name(-r), '\0', msg);
	return -1;
}

int
worker_traceparent(const char *idem, char out[56])
{
	const char *colon = idem ? strrchr(idem, ':') : NULL;
	char *s, trace[65], span[65];
	size_t n;

	if (colon == NULL || colon == idem || (n = strlen(colon + 1)) == 0 ||
	    n > 20 || strspn(colon + 1, "0123456789") != n)
		return -1;
	s = xasprintf("%.*s:trace", (int)(colon - idem), idem);
	sha256_hex(s, strlen(s), trace);
	free(s);
	s = xasprintf("%.*s:task:%s", (int)(colon - idem), idem, colon + 1);
	sha256_hex(s, strlen(s), span);
	free(s);
	snprintf(out, 56, "00-%.32s-%.16s-01", trace, span);
	return 0;
}

/* Start one task from the coordinator. */
void
worker_start_task(struct worker *w, json_t *task)
{
	struct wtask *t = xcalloc(1, sizeof *t);
	json_t *params = json_object_get(task, "params");
	json_t *refusal;
	const char *run;
	char err[512];

	t->w = w;
	t->id = json_integer_value(json_object_get(task, "id"));
	t->attempt = (int)json_integer_value(json_object_get(task, "attempt"));
	t->kind = xstrdup(json_string_value(json_object_get(task, "kind")) ?
	    json_string_value(json_object_get(task, "kind")) : "");
	if (json_is_string(json_object_get(task, "idem")) &&
	    json_string_length(json_object_get(task, "idem")) <= 200)
		t->idem = xstrdup(json_string_value(json_object_get(task,
		    "idem")));
	if (json_is_number(json_object_get(task, "timeout")) &&
	    json_number_value(json_object_get(task, "timeout")) > 0 &&
	    json_number_value(json_object_get(task, "timeout")) <= 86400)
		t->task_timeout = json_number_value(json_object_get(task,
		    "timeout"));
	TAILQ_INSERT_TAIL(&w->running, t, entry);
	w->nrunning++;
	if (!json_is_object(params)) {
		worker_task_fail(t, FAIL_BAD_TASK, "/params: must be an object");
		return;
	}
	run = json_string_value(json_object_get(task, "run"));
	if (worker_check_token(w, task, run, params, err, sizeof err) != 0) {
		refusal = json_pack("{s:s, s:s, s:s}", "kind", FAIL_TOKEN,
		    "reason", err, "message", strchr(err, '\0') + 1);
		worker_outcome(t, NULL, refusal);
		json_decref(refusal);
		return;
	}
	if (strcmp(t->kind, TASK_A2A_SEND) == 0) {
		worker_a2a_start(t, task, params);
		return;
	}
	t->ws = worker_session(w, json_object_get(params, "server"),
	    run != NULL ? run : "", err, sizeof err);
	if (t->ws == NULL) {
		worker_task_fail(t, FAIL_BAD_TASK, err);
		return;
	}
	t->ws->nactive++;
	t->session = t->ws->mcpc;
	if (strcmp(t->kind, TASK_MCP_CALL) == 0) {
		worker_call(t, params);
	} else if (strcmp(t->kind, TASK_MCP_LIST) == 0) {
		worker_list(t, params);
	} else {
		snprintf(err, sizeof err, "/kind: unknown task kind '%s'",
		    t->kind);
		worker_task_fail(t, FAIL_BAD_TASK, err);
	}
}
