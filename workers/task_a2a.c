/*
 * task_a2a.c: a2a.send tasks: one message to a remote A2A agent
 * (protocols/a2a_client.h), its updates as progress, its timeout and
 * its cancel (CancelTask).
 *
 * params: {server: {name, agent, headers?, timeout?, max_response?,
 * stream_seconds?, card?}, name: "send", arguments: {text?, data?,
 * contextId?, n}, resume?: {task, protocol}}: a message, sent with the
 * card the run recorded (card) or after reading it.  With resume (the
 * remote task an earlier attempt reported, in flight when the run
 * stopped) the message is not sent again: that task is asked for.
 * With name "card" the task only reads the agent card: the run records
 * it once and gives it to its sends.
 * The headers carry credentials the coordinator read from its
 * environment; they are never part of what the run records.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "protocols/a2a_client.h"
#include "runtime/http.h"
#include "runtime/util.h"
#include "runtime/wire.h"
#include "workers/worker_int.h"

/* The exchange ended: the task's outcome. */
static void
worker_a2a_done_cb(void *arg, json_t *result, json_t *error)
{
	struct wtask *t = arg;

	t->a2a = NULL;
	worker_outcome(t, result, error);
}

/* A status or artifact update: progress for the next heartbeat. */
static void
worker_a2a_progress_cb(void *arg, json_t *u)
{
	struct wtask *t = arg;
	const char *st = json_string_value(json_object_get(u, "state"));
	const char *m = json_string_value(json_object_get(u, "message"));
	const char *a = json_string_value(json_object_get(u, "artifactId"));
	json_t *item;

	t->nupdates++;
	item = json_pack("{s:i, s:o}", "progress", t->nupdates, "message",
	    st != NULL ? json_sprintf("%s%s%.400s", st, m != NULL && *m ?
	    ": " : "", m != NULL ? m : "") : json_sprintf("artifact %.200s",
	    a != NULL ? a : "(unnamed)"));
	json_decref(u);
	worker_task_progress(t, item);
}

/*
 * The remote task's id, first known while it goes on: progress that
 * carries it ("remote"), which the coordinator records for a resume.
 */
static void
worker_a2a_task_cb(void *arg, const char *id, const char *state,
    const char *protocol)
{
	struct wtask *t = arg;
	json_t *msg = json_sprintf("task %.200s %s", id, state), *item;

	if (msg == NULL)	/* the cut split a character */
		msg = json_sprintf("task %s", state);
	item = json_pack("{s:i, s:o, s:{s:s, s:s}}", "progress",
	    t->nupdates + 1, "message", msg, "remote", "task", id,
	    "protocol", protocol);
	if (item == NULL)
		return;
	t->nupdates++;
	worker_task_progress(t, item);
}

/* The attempt's timeout passed: cancel the remote task. */
static void
worker_a2a_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wtask *t = arg;
	char msg[300];

	snprintf(msg, sizeof msg, "the A2A agent did not finish within the "
	    "attempt's timeout of %.3g s; its task was cancelled "
	    "(CancelTask)", t->timeout);
	if (t->a2a != NULL)
		a2ac_cancel(t->a2a, FAIL_TIMEOUT, msg);
}

/* The headers of the spec as "Name: value" lines into h (max n). */
static int
worker_a2a_headers(json_t *hdrs, char **h, size_t n, char *err,
    size_t errlen)
{
	const char *k;
	json_t *v;
	size_t i = 0;

	if (hdrs != NULL && !json_is_object(hdrs)) {
		errf(err, errlen, "/params/server/headers: must be an object");
		return -1;
	}
	json_object_foreach(hdrs, k, v) {
		if (!json_is_string(v) || i + 1 >= n || strpbrk(k,
		    ":\r\n") != NULL || strpbrk(json_string_value(v), "\r\n")
		    != NULL) {
			errf(err, errlen, "/params/server/headers/%.100s: "
			    "must be a one-line string (at most %zu headers)",
			    k, n - 1);
			return -1;
		}
		h[i++] = xasprintf("%s: %s", k, json_string_value(v));
	}
	h[i] = NULL;
	return 0;
}

void
worker_a2a_start(struct wtask *t, json_t *task, json_t *params)
{
	struct worker *w = t->w;
	json_t *srv = json_object_get(params, "server");
	json_t *args = json_object_get(params, "arguments"), *v;
	json_t *rs = json_object_get(params, "resume");
	struct a2ac_opts o;
	struct timeval tv;
	char *hdrs[33], err[512], tp[56], *idem = NULL;
	size_t i;

	memset(&o, 0, sizeof o);
	memset(hdrs, 0, sizeof hdrs);
	o.agent = json_string_value(json_object_get(srv, "agent"));
	if (o.agent == NULL) {
		worker_task_fail(t, FAIL_BAD_TASK,
		    "/params/server/agent: must be a URL");
		return;
	}
	if (w->hc == NULL && (w->hc = http_new(w->base, err, sizeof err)) ==
	    NULL) {
		worker_task_fail(t, FAIL_TRANSPORT, err);
		return;
	}
	if (worker_a2a_headers(json_object_get(srv, "headers"), hdrs, 33, err,
	    sizeof err) != 0) {
		worker_task_fail(t, FAIL_BAD_TASK, err);
		goto out;
	}
	/* W3C trace context, parented on this call's span. */
	for (i = 0; hdrs[i] != NULL; i++)
		;
	if (i < 32 && worker_traceparent(t->idem, tp) == 0)
		hdrs[i] = xasprintf("traceparent: %s", tp);
	/* run/path#n: the same for every attempt and after a resume. */
	idem = xasprintf("%s/%s#%lld", json_string_value(json_object_get(task,
	    "run")) ? json_string_value(json_object_get(task, "run")) : "",
	    json_string_value(json_object_get(task, "path")) ?
	    json_string_value(json_object_get(task, "path")) : "",
	    (long long)json_integer_value(json_object_get(args, "n")));
	o.base = w->base;
	o.hc = w->hc;
	o.headers = (const char *const *)hdrs;
	o.message_id = idem;
	o.context_id = json_string_value(json_object_get(args, "contextId"));
	o.text = json_string_value(json_object_get(args, "text"));
	o.data = json_object_get(args, "data");
	o.card_only = json_string_value(json_object_get(params, "name")) !=
	    NULL && strcmp(json_string_value(json_object_get(params, "name")),
	    "card") == 0;
	if (json_is_object(v = json_object_get(srv, "card")))
		o.card = v;
	/* A recorded task of the card's protocol is asked for (GetTask). */
	if (o.card != NULL && !o.card_only && json_is_string(json_object_get(
	    rs, "task")) && json_equal(json_object_get(rs, "protocol"),
	    json_object_get(o.card, "protocol")))
		o.resume_task = json_string_value(json_object_get(rs, "task"));
	if (json_is_integer(v = json_object_get(srv, "max_response")) &&
	    json_integer_value(v) > 0)
		o.max_response = (size_t)json_integer_value(v);
	if (json_is_number(v = json_object_get(srv, "stream_seconds")) &&
	    json_number_value(v) > 0)
		o.max_stream_s = json_number_value(v);
	o.on_progress = worker_a2a_progress_cb;
	o.on_task = worker_a2a_task_cb;
	o.on_done = worker_a2a_done_cb;
	o.arg = t;
	t->timeout = t->task_timeout;
	if (json_is_number(v = json_object_get(srv, "timeout")) &&
	    json_number_value(v) > 0 && (t->timeout <= 0 ||
	    json_number_value(v) < t->timeout))
		t->timeout = json_number_value(v);
	t->a2a = a2ac_start(&o, err, sizeof err);
	if (t->a2a == NULL) {
		worker_task_fail(t, FAIL_BAD_TASK, err);
		goto out;
	}
	if (t->timeout > 0) {
		tv.tv_sec = (time_t)t->timeout;
		tv.tv_usec = (suseconds_t)((t->timeout - tv.tv_sec) * 1e6);
		t->timer = evtimer_new(w->base, worker_a2a_timeout_cb, t);
		evtimer_add(t->timer, &tv);
	}
out:
	free(idem);
	for (i = 0; hdrs[i] != NULL; i++)
		free(hdrs[i]);
}

void
worker_a2a_cancel(struct wtask *t)
{
	if (t->a2a != NULL)
		a2ac_cancel(t->a2a, FAIL_CANCELLED, "the step was cancelled");
}
