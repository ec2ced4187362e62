/*
 * otlp.c: a run as OpenTelemetry spans, OTLP/JSON and protobuf
 * (docs/observability.md).
 *
 * Spans: the run (invoke_workflow NAME) > each node (invoke_agent NAME for
 * agents, else KIND NAME) > its model calls (chat MODEL) and tool calls
 * (execute_tool TOOL), with the GenAI semantic conventions' attributes.
 * The trace id is derived from the run id and each span id from what it
 * stands for, so exporting a run twice gives the same trace.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "engine/otlp.h"
#include "engine/store.h"
#include "runtime/util.h"

struct otlp_node {
	int64_t		 span;
	char		 id[17];
	json_t		*otlp;		/* the span object (a reference) */
};

struct otlp {
	char		*run;
	char		 trace[33];
	char		 root[17];
	json_t		*rootsp;	/* the run's span (a reference) */
	json_t		*spans;		/* started, not yet taken, in order */
	json_t		*tools;		/* "task:N" -> open tool span */
	struct otlp_node *nodes;
	size_t		 n, cap;
	long long	 seq;
	double		 last;		/* the time of the last event */
};

/*
 * A stable id: hex of sha256(run ":" what), len hex digits (the workers
 * derive a call's traceparent the same way: worker_traceparent()).
 */
static void
otlp_id(const char *run, const char *what, char *out, size_t len)
{
	char *s = xasprintf("%s:%s", run, what), hex[65];

	sha256_hex(s, strlen(s), hex);
	free(s);
	memcpy(out, hex, len);
	out[len] = '\0';
}

static char *
otlp_nanos(double t)
{
	return xasprintf("%lld", (long long)(t * 1e9 + 0.5));
}

static void
otlp_attr_str(json_t *span, const char *key, const char *val)
{
	if (val != NULL)
		json_array_append_new(json_object_get(span, "attributes"),
		    json_pack("{s:s, s:{s:s}}", "key", key, "value",
		    "stringValue", val));
}

static void
otlp_attr_int(json_t *span, const char *key, json_int_t val)
{
	json_array_append_new(json_object_get(span, "attributes"),
	    json_pack("{s:s, s:{s:I}}", "key", key, "value", "intValue", val));
}

/* A new span (kind: 1 internal, 3 client), appended to the list. */
static json_t *
otlp_span(struct otlp *x, const char *id, const char *parent,
    const char *name, int kind, double start, double end)
{
	json_t *sp;
	char *s = otlp_nanos(start), *e = otlp_nanos(end);

	sp = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:[], s:i, s:[], s:i, "
	    "s:{s:i}, s:[], s:i, s:i}", "traceId", x->trace, "spanId", id,
	    "name", name, "kind", kind, "startTimeUnixNano", s,
	    "endTimeUnixNano", e, "attributes", "droppedAttributesCount", 0,
	    "events", "droppedEventsCount", 0, "status", "code", 0, "links",
	    "droppedLinksCount", 0, "flags", 0x101);
	if (parent != NULL)
		json_object_set_new(sp, "parentSpanId", json_string(parent));
	otlp_attr_str(sp, "gen_ai.conversation.id", x->run);
	json_array_append_new(x->spans, sp);
	free(s);
	free(e);
	return sp;
}

/* End a span at t. */
static void
otlp_end(json_t *sp, double t)
{
	char *e = otlp_nanos(t);

	json_object_set_new(sp, "endTimeUnixNano", json_string(e));
	json_object_set_new(sp, "weft_done", json_true());
	free(e);
}

static void
otlp_error(json_t *sp, const char *msg)
{
	json_object_set_new(sp, "status", json_pack("{s:i, s:s}", "code", 2,
	    "message", msg ? msg : "error"));
}

static const char *
jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static struct otlp_node *
otlp_node_find(struct otlp *x, int64_t span)
{
	size_t i;

	for (i = x->n; i > 0; i--)
		if (x->nodes[i - 1].span == span)
			return &x->nodes[i - 1];
	return NULL;
}

/* The node span an event belongs to: its own id, else the run's. */
static const char *
otlp_parent(struct otlp *x, int64_t span)
{
	struct otlp_node *nd = otlp_node_find(x, span);

	return nd != NULL ? nd->id : x->root;
}

struct otlp *
otlp_new(const char *run, const char *workflow, double start)
{
	struct otlp *x = xcalloc(1, sizeof *x);
	char *wf, *base, *name;
	size_t n;

	x->run = xstrdup(run);
	otlp_id(run, "trace", x->trace, 32);
	otlp_id(run, "run", x->root, 16);
	x->spans = json_array();
	x->tools = json_object();
	wf = xstrdup(workflow ? workflow : "?");
	base = strrchr(wf, '/') ? strrchr(wf, '/') + 1 : wf;
	n = strlen(base);
	if (n > 4 && strcmp(base + n - 4, ".lua") == 0)
		base[n - 4] = '\0';
	name = xasprintf("invoke_workflow %s", base);
	x->rootsp = json_incref(otlp_span(x, x->root, NULL, name, 1, start,
	    start));
	otlp_attr_str(x->rootsp, "gen_ai.operation.name", "invoke_workflow");
	otlp_attr_str(x->rootsp, "weft.run.id", run);
	otlp_attr_str(x->rootsp, "weft.workflow", workflow);
	free(name);
	free(wf);
	x->last = start;
	return x;
}

void
otlp_free(struct otlp *x)
{
	size_t i;

	if (x == NULL)
		return;
	for (i = 0; i < x->n; i++)
		json_decref(x->nodes[i].otlp);
	free(x->nodes);
	json_decref(x->rootsp);
	json_decref(x->spans);
	json_decref(x->tools);
	free(x->run);
	free(x);
}

long long
otlp_seq(const struct otlp *x)
{
	return x->seq;
}

static void
otlp_model(struct otlp *x, const struct store_event *ev, json_t *p)
{
	json_t *sp, *resp = json_object_get(p, "response"), *u;
	const char *model = jstr(p, "model");
	char id[17], what[32], *name;
	double dur = json_number_value(json_object_get(p, "duration"));

	snprintf(what, sizeof what, "ev:%lld", (long long)ev->seq);
	otlp_id(x->run, what, id, 16);
	name = xasprintf("chat %s", model ? model : "?");
	sp = otlp_span(x, id, otlp_parent(x, ev->span_id), name, 3,
	    ev->time - dur, ev->time);
	free(name);
	json_object_set_new(sp, "weft_done", json_true());
	otlp_attr_str(sp, "gen_ai.operation.name", "chat");
	otlp_attr_str(sp, "gen_ai.provider.name", jstr(p, "provider"));
	otlp_attr_str(sp, "gen_ai.request.model", model);
	if ((u = json_object_get(p, "usage")) == NULL)
		u = json_object_get(resp, "usage");
	if (json_is_integer(json_object_get(u, "input_tokens")))
		otlp_attr_int(sp, "gen_ai.usage.input_tokens",
		    json_integer_value(json_object_get(u, "input_tokens")));
	if (json_is_integer(json_object_get(u, "output_tokens")))
		otlp_attr_int(sp, "gen_ai.usage.output_tokens",
		    json_integer_value(json_object_get(u, "output_tokens")));
	if (jstr(resp, "stop_reason") != NULL)
		json_array_append_new(json_object_get(sp, "attributes"),
		    json_pack("{s:s, s:{s:{s:[{s:s}]}}}", "key",
		    "gen_ai.response.finish_reasons", "value", "arrayValue",
		    "values", "stringValue", jstr(resp, "stop_reason")));
}

static void
otlp_node_start(struct otlp *x, const struct store_event *ev, json_t *p)
{
	struct otlp_node *nd;
	const char *nm = jstr(p, "name") ? jstr(p, "name") : "?";
	const char *kind = jstr(p, "kind");
	int agent = kind != NULL && strcmp(kind, "agent") == 0;
	char what[48], *name;
	json_t *sp;

	if (x->n == x->cap) {
		x->cap = x->cap ? x->cap * 2 : 32;
		x->nodes = xrealloc(x->nodes, x->cap * sizeof *x->nodes);
	}
	nd = &x->nodes[x->n];
	nd->span = ev->span_id;
	snprintf(what, sizeof what, "node:%lld", (long long)ev->span_id);
	otlp_id(x->run, what, nd->id, 16);
	if (agent)
		name = xasprintf("invoke_agent %s", nm);
	else
		name = xasprintf("%s %s", kind ? kind : "node", nm);
	sp = otlp_span(x, nd->id, otlp_parent(x, ev->parent_span), name, 1,
	    ev->time, ev->time);
	nd->otlp = json_incref(sp);
	x->n++;
	free(name);
	if (agent) {
		otlp_attr_str(sp, "gen_ai.operation.name", "invoke_agent");
		otlp_attr_str(sp, "gen_ai.agent.name", nm);
	}
	otlp_attr_str(sp, "weft.node.path", ev->node_path);
	otlp_attr_str(sp, "weft.node.kind", kind);
}

static void
otlp_tool(struct otlp *x, const struct store_event *ev, json_t *p)
{
	const char *nm = jstr(p, "name") ? jstr(p, "name") : "?";
	const char *kind = jstr(p, "kind");
	int remote = kind != NULL && strcmp(kind, "a2a.send") == 0;
	char what[48], id[17], *name;
	json_t *sp;

	snprintf(what, sizeof what, "task:%lld",
	    (long long)json_integer_value(json_object_get(p, "task")));
	otlp_id(x->run, what, id, 16);
	if (remote) {
		/* A remote A2A agent: a client span. */
		nm = jstr(p, "server") ? jstr(p, "server") : nm;
		name = xasprintf("invoke_agent %s", nm);
	} else
		name = xasprintf("execute_tool %s", nm);
	sp = otlp_span(x, id, otlp_parent(x, ev->span_id), name, remote ? 3 :
	    1, ev->time, ev->time);
	free(name);
	if (remote) {
		otlp_attr_str(sp, "gen_ai.operation.name", "invoke_agent");
		otlp_attr_str(sp, "gen_ai.agent.name", nm);
	} else {
		otlp_attr_str(sp, "gen_ai.operation.name", "execute_tool");
		otlp_attr_str(sp, "gen_ai.tool.name", nm);
	}
	otlp_attr_str(sp, "gen_ai.tool.call.id", what + 5);
	otlp_attr_str(sp, "weft.tool.server", jstr(p, "server"));
	json_object_set(x->tools, what, sp);
}

static void
otlp_tool_end(struct otlp *x, const struct store_event *ev, json_t *p)
{
	char what[48];
	json_t *sp, *res = json_object_get(p, "result");

	snprintf(what, sizeof what, "task:%lld",
	    (long long)json_integer_value(json_object_get(p, "task")));
	if ((sp = json_object_get(x->tools, what)) == NULL)
		return;
	otlp_end(sp, ev->time);
	if (strcmp(ev->kind, "tool.error") == 0)
		otlp_error(sp, jstr(json_object_get(p, "error"), "message"));
	else if (json_is_true(json_object_get(res, "isError")))
		otlp_error(sp, jstr(json_array_get(json_object_get(res,
		    "content"), 0), "text"));
	json_object_del(x->tools, what);
}

void
otlp_event(struct otlp *x, const struct store_event *ev)
{
	struct otlp_node *nd;
	json_t *p = NULL;
	json_error_t je;

	if (ev->seq <= x->seq)
		return;
	x->seq = ev->seq;
	x->last = ev->time;
	if (ev->payload != NULL)
		p = json_loads(ev->payload, JSON_DECODE_ANY, &je);
	if (strcmp(ev->kind, "node.start") == 0)
		otlp_node_start(x, ev, p);
	else if (strcmp(ev->kind, "node.end") == 0 &&
	    (nd = otlp_node_find(x, ev->span_id)) != NULL &&
	    json_object_get(nd->otlp, "weft_done") == NULL) {
		otlp_end(nd->otlp, ev->time);
		if (jstr(p, "status") && strcmp(jstr(p, "status"),
		    "succeeded") != 0)
			otlp_error(nd->otlp, jstr(p, "error") ?
			    jstr(p, "error") : jstr(p, "status"));
	} else if ((strcmp(ev->kind, "model.call") == 0 &&
	    json_object_get(p, "response") != NULL) ||
	    strcmp(ev->kind, "model.response") == 0)
		otlp_model(x, ev, p);
	else if (strcmp(ev->kind, "tool.call") == 0)
		otlp_tool(x, ev, p);
	else if (strcmp(ev->kind, "tool.result") == 0 ||
	    strcmp(ev->kind, "tool.error") == 0)
		otlp_tool_end(x, ev, p);
	json_decref(p);
}

void
otlp_finish(struct otlp *x, const char *status, const char *error,
    double end)
{
	json_t *sp;
	size_t i;
	int failed = status != NULL && strcmp(status, "succeeded") != 0 &&
	    strcmp(status, "running") != 0;

	if (end <= 0)
		end = now_wall();
	if (end < x->last)
		end = x->last;
	otlp_attr_str(x->rootsp, "weft.run.status", status);
	if (failed)
		otlp_error(x->rootsp, error ? error : status);
	/* Spans that never recorded an end ended with the run. */
	json_array_foreach(x->spans, i, sp) {
		if (json_object_get(sp, "weft_done") != NULL)
			continue;
		otlp_end(sp, end);
		if (failed && sp != x->rootsp && json_integer_value(
		    json_object_get(json_object_get(sp, "status"), "code")) ==
		    0)
			otlp_error(sp, status);
	}
	json_object_clear(x->tools);
}

json_t *
otlp_take(struct otlp *x)
{
	json_t *out = json_array(), *keep = json_array(), *sp, *c;
	size_t i;

	json_array_foreach(x->spans, i, sp) {
		if (json_object_get(sp, "weft_done") == NULL) {
			json_array_append(keep, sp);
			continue;
		}
		c = json_deep_copy(sp);
		json_object_del(c, "weft_done");
		json_array_append_new(out, c);
	}
	json_decref(x->spans);
	x->spans = keep;
	return out;
}

/* Append the attributes of "k=v,k=v" (values %-decoded) to list. */
static void
otlp_resource_attrs(json_t *list, const char *text, char **svc)
{
	char *copy = xstrdup(text), *tok, *save = NULL, *eq, *v, *o;

	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if ((eq = strchr(tok, '=')) == NULL)
			continue;
		*eq = '\0';
		for (v = o = eq + 1; *v != '\0'; v++) {
			unsigned int c;

			if (v[0] == '%' && sscanf(v + 1, "%2x", &c) == 1 &&
			    v[1] != '\0' && v[2] != '\0') {
				*o++ = (char)c;
				v += 2;
			} else
				*o++ = *v;
		}
		*o = '\0';
		while (*tok == ' ')
			tok++;
		if (strcmp(tok, "service.name") == 0) {
			free(*svc);
			*svc = xstrdup(eq + 1);
			continue;
		}
		json_array_append_new(list, json_pack("{s:s, s:{s:s}}",
		    "key", tok, "value", "stringValue", eq + 1));
	}
	free(copy);
}

json_t *
otlp_request(json_t *spans)
{
	const char *env = getenv("OTEL_SERVICE_NAME");
	const char *ra = getenv("OTEL_RESOURCE_ATTRIBUTES");
	char *svc = NULL;
	json_t *attrs = json_array(), *more = json_array(), *req;

	if (ra != NULL)
		otlp_resource_attrs(more, ra, &svc);
	if (env != NULL && *env != '\0') {
		free(svc);
		svc = xstrdup(env);
	}
	json_array_append_new(attrs, json_pack("{s:s, s:{s:s}}", "key",
	    "service.name", "value", "stringValue", svc ? svc : "weft"));
	json_array_append_new(attrs, json_pack("{s:s, s:{s:s}}", "key",
	    "telemetry.sdk.name", "value", "stringValue", "weft"));
	json_array_extend(attrs, more);
	json_decref(more);
	free(svc);
	req = json_pack("{s:[{s:{s:o, s:i}, s:[{s:{s:s, s:s}, s:O, s:s}]}]}",
	    "resourceSpans", "resource", "attributes", attrs,
	    "droppedAttributesCount", 0, "scopeSpans", "scope", "name",
	    "weft", "version", PACKAGE_VERSION, "spans", spans, "schemaUrl",
	    OTLP_SCHEMA_URL);
	return req;
}

struct otlp_build {
	struct otlp	*x;
	char		*status;
	char		*error;
	double		 end;
};

static int
otlp_build_run_cb(void *arg, const struct store_run *r)
{
	struct otlp_build *b = arg;

	b->x = otlp_new(r->id, r->workflow, r->started);
	b->status = xstrdup(r->status);
	b->error = r->error ? xstrdup(r->error) : NULL;
	b->end = r->ended;
	return 0;
}

static int
otlp_build_event_cb(void *arg, const struct store_event *ev)
{
	otlp_event(arg, ev);
	return 0;
}

json_t *
otlp_build(struct store *st, const char *run, char *err, size_t errlen)
{
	struct otlp_build b;
	json_t *req = NULL, *spans;

	memset(&b, 0, sizeof b);
	if (store_run_find(st, run, otlp_build_run_cb, &b) != 0 ||
	    store_events_foreach(st, b.x->run, otlp_build_event_cb, b.x) !=
	    0) {
		errf(err, errlen, "%s", store_error(st));
		goto out;
	}
	otlp_finish(b.x, b.status, b.error, b.end);
	spans = otlp_take(b.x);
	req = otlp_request(spans);
	json_decref(spans);
out:
	otlp_free(b.x);
	free(b.status);
	free(b.error);
	return req;
}

/* ---- protobuf (opentelemetry-proto, trace/v1 and common/v1) ---------- */

struct pb {
	unsigned char	*p;
	size_t		 len, cap;
};

static void
pb_put(struct pb *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void
pb_varint(struct pb *b, uint64_t v)
{
	unsigned char c[10];
	size_t n = 0;

	do {
		c[n] = v & 0x7f;
		v >>= 7;
		if (v != 0)
			c[n] |= 0x80;
		n++;
	} while (v != 0);
	pb_put(b, c, n);
}

static void
pb_tag(struct pb *b, int field, int wire)
{
	pb_varint(b, ((uint64_t)field << 3) | (unsigned)wire);
}

static void
pb_bytes(struct pb *b, int field, const void *p, size_t n)
{
	pb_tag(b, field, 2);
	pb_varint(b, n);
	pb_put(b, p, n);
}

static void
pb_str(struct pb *b, int field, const char *s)
{
	pb_bytes(b, field, s, strlen(s));
}

/* A nested message: child's bytes under field; child is freed. */
static void
pb_msg(struct pb *b, int field, struct pb *child)
{
	pb_bytes(b, field, child->p, child->len);
	free(child->p);
	memset(child, 0, sizeof *child);
}

static void
pb_fixed(struct pb *b, int field, uint64_t v, int bytes)
{
	unsigned char c[8];
	int i;

	pb_tag(b, field, bytes == 8 ? 1 : 5);
	for (i = 0; i < bytes; i++)
		c[i] = (v >> (8 * i)) & 0xff;
	pb_put(b, c, bytes);
}

/* Hex digits as bytes under field; -1 if not hex. */
static int
pb_hex(struct pb *b, int field, const char *hex)
{
	unsigned char raw[32];
	size_t n = hex ? strlen(hex) : 0, i;
	unsigned int c;

	if (n == 0 || n % 2 != 0 || n / 2 > sizeof raw)
		return -1;
	for (i = 0; i < n / 2; i++) {
		if (sscanf(hex + 2 * i, "%2x", &c) != 1)
			return -1;
		raw[i] = c;
	}
	pb_bytes(b, field, raw, n / 2);
	return 0;
}

static int pb_keyvalues(struct pb *, int, const json_t *);

/* AnyValue. */
static int
pb_anyvalue(struct pb *b, const json_t *v)
{
	struct pb arr = { 0 }, item = { 0 };
	const json_t *x;
	double d;
	uint64_t u;
	size_t i;

	if ((x = json_object_get(v, "stringValue")) != NULL)
		pb_str(b, 1, json_string_value(x) ? json_string_value(x) : "");
	else if ((x = json_object_get(v, "boolValue")) != NULL) {
		pb_tag(b, 2, 0);
		pb_varint(b, json_is_true(x));
	} else if ((x = json_object_get(v, "intValue")) != NULL) {
		pb_tag(b, 3, 0);
		pb_varint(b, (uint64_t)(json_is_string(x) ?
		    strtoll(json_string_value(x), NULL, 10) :
		    json_integer_value(x)));
	} else if ((x = json_object_get(v, "doubleValue")) != NULL) {
		d = json_number_value(x);
		memcpy(&u, &d, sizeof u);
		pb_fixed(b, 4, u, 8);
	} else if ((x = json_object_get(v, "arrayValue")) != NULL) {
		json_array_foreach(json_object_get(x, "values"), i, v) {
			if (pb_anyvalue(&item, v) != 0) {
				free(item.p);
				free(arr.p);
				return -1;
			}
			pb_msg(&arr, 1, &item);
		}
		pb_msg(b, 5, &arr);
	} else
		return -1;
	return 0;
}

/* Repeated KeyValue under field. */
static int
pb_keyvalues(struct pb *b, int field, const json_t *list)
{
	struct pb kv = { 0 }, val = { 0 };
	const json_t *a;
	size_t i;

	json_array_foreach(list, i, a) {
		if (!json_is_string(json_object_get(a, "key")) ||
		    pb_anyvalue(&val, json_object_get(a, "value")) != 0) {
			free(val.p);
			return -1;
		}
		pb_str(&kv, 1, json_string_value(json_object_get(a, "key")));
		pb_msg(&kv, 2, &val);
		pb_msg(b, field, &kv);
	}
	return 0;
}

static uint64_t
pb_u64(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);

	if (json_is_string(v))
		return strtoull(json_string_value(v), NULL, 10);
	return (uint64_t)json_integer_value(v);
}

/* Span, in the field order of the OpenTelemetry JS encoder. */
static int
pb_span(struct pb *b, const json_t *sp)
{
	struct pb st = { 0 };
	const json_t *s = json_object_get(sp, "status");
	const char *msg = json_string_value(json_object_get(s, "message"));

	if (pb_hex(b, 1, json_string_value(json_object_get(sp,
	    "traceId"))) != 0 || pb_hex(b, 2, json_string_value(
	    json_object_get(sp, "spanId"))) != 0)
		return -1;
	if (json_object_get(sp, "parentSpanId") != NULL && pb_hex(b, 4,
	    json_string_value(json_object_get(sp, "parentSpanId"))) != 0)
		return -1;
	if (!json_is_string(json_object_get(sp, "name")))
		return -1;
	pb_str(b, 5, json_string_value(json_object_get(sp, "name")));
	if (pb_u64(sp, "kind") != 0) {
		pb_tag(b, 6, 0);
		pb_varint(b, pb_u64(sp, "kind"));
	}
	pb_fixed(b, 7, pb_u64(sp, "startTimeUnixNano"), 8);
	pb_fixed(b, 8, pb_u64(sp, "endTimeUnixNano"), 8);
	if (pb_keyvalues(b, 9, json_object_get(sp, "attributes")) != 0)
		return -1;
	pb_tag(b, 10, 0);
	pb_varint(b, pb_u64(sp, "droppedAttributesCount"));
	pb_tag(b, 12, 0);
	pb_varint(b, pb_u64(sp, "droppedEventsCount"));
	pb_tag(b, 14, 0);
	pb_varint(b, pb_u64(sp, "droppedLinksCount"));
	if (msg != NULL && *msg != '\0')
		pb_str(&st, 2, msg);
	pb_tag(&st, 3, 0);
	pb_varint(&st, pb_u64(s, "code"));
	pb_msg(b, 15, &st);
	if (pb_u64(sp, "flags") != 0)
		pb_fixed(b, 16, pb_u64(sp, "flags"), 4);
	return 0;
}

int
otlp_protobuf(const json_t *req, unsigned char **out, size_t *len)
{
	struct pb b = { 0 }, rs = { 0 }, res = { 0 }, ss = { 0 }, sc = { 0 },
	    sp = { 0 };
	const json_t *r, *s, *x, *scope;
	const char *url;
	size_t i, j, k;

	json_array_foreach(json_object_get(req, "resourceSpans"), i, r) {
		x = json_object_get(r, "resource");
		if (pb_keyvalues(&res, 1, json_object_get(x, "attributes")) !=
		    0)
			goto fail;
		pb_tag(&res, 2, 0);
		pb_varint(&res, pb_u64(x, "droppedAttributesCount"));
		pb_msg(&rs, 1, &res);
		json_array_foreach(json_object_get(r, "scopeSpans"), j, s) {
			scope = json_object_get(s, "scope");
			if (!json_is_string(json_object_get(scope, "name")))
				goto fail;
			pb_str(&sc, 1, json_string_value(json_object_get(
			    scope, "name")));
			if (json_string_length(json_object_get(scope,
			    "version")) > 0)
				pb_str(&sc, 2, json_string_value(
				    json_object_get(scope, "version")));
			pb_msg(&ss, 1, &sc);
			json_array_foreach(json_object_get(s, "spans"), k, x) {
				if (pb_span(&sp, x) != 0)
					goto fail;
				pb_msg(&ss, 2, &sp);
			}
			if ((url = json_string_value(json_object_get(s,
			    "schemaUrl"))) != NULL && *url != '\0')
				pb_str(&ss, 3, url);
			pb_msg(&rs, 2, &ss);
		}
		if ((url = json_string_value(json_object_get(r,
		    "schemaUrl"))) != NULL && *url != '\0')
			pb_str(&rs, 3, url);
		pb_msg(&b, 1, &rs);
	}
	if (b.p == NULL)
		b.p = xmalloc(1);
	*out = b.p;
	*len = b.len;
	return 0;
fail:
	free(b.p);
	free(rs.p);
	free(res.p);
	free(ss.p);
	free(sc.p);
	free(sp.p);
	return -1;
}
