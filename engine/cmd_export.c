/*
 * cmd_export.c: `weft export --otlp FILE|URL RUN`: a recorded run as
 * OpenTelemetry spans, OTLP/JSON (docs/viewer.md, "OpenTelemetry").
 *
 * Spans: the run (invoke_workflow NAME) > each node (invoke_agent NAME for
 * agents, else KIND NAME) > its model calls (chat MODEL) and tool calls
 * (execute_tool TOOL), with the GenAI semantic conventions' attributes.
 * The trace id is derived from the run id and each span id from what it
 * stands for, so exporting a run twice gives the same trace.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "engine/cmd.h"
#include "engine/store.h"
#include "runtime/http.h"
#include "runtime/util.h"

#define EXPORT_ATTEMPTS	4

struct export_node {
	int64_t		 span;
	char		 id[17];
	json_t		*otlp;		/* the span object being built */
};

struct export {
	const char	*run;
	char		 trace[33];
	char		 root[17];
	json_t		*spans;		/* OTLP span objects */
	json_t		*tools;		/* task id -> OTLP span (borrowed) */
	struct export_node *nodes;
	size_t		 n, cap;
	double		 start, end;
	char		*workflow;
	char		*status;
	char		*error;
};

/* A stable id: hex of sha256(run ":" what), len hex digits. */
static void
export_id(const char *run, const char *what, char *out, size_t len)
{
	char *s = xasprintf("%s:%s", run, what), hex[65];

	sha256_hex(s, strlen(s), hex);
	free(s);
	memcpy(out, hex, len);
	out[len] = '\0';
}

static char *
export_nanos(double t)
{
	return xasprintf("%lld", (long long)(t * 1e9 + 0.5));
}

static void
export_attr_str(json_t *span, const char *key, const char *val)
{
	if (val != NULL)
		json_array_append_new(json_object_get(span, "attributes"),
		    json_pack("{s:s, s:{s:s}}", "key", key, "value",
		    "stringValue", val));
}

static void
export_attr_int(json_t *span, const char *key, json_int_t val)
{
	json_array_append_new(json_object_get(span, "attributes"),
	    json_pack("{s:s, s:{s:I}}", "key", key, "value", "intValue", val));
}

/* A new span (kind: 1 internal, 3 client), appended to the list. */
static json_t *
export_span(struct export *x, const char *id, const char *parent,
    const char *name, int kind, double start, double end)
{
	json_t *sp;
	char *s = export_nanos(start), *e = export_nanos(end);

	sp = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:[], s:i, s:[], s:i, "
	    "s:{s:i}, s:[], s:i, s:i}", "traceId", x->trace, "spanId", id,
	    "name", name, "kind", kind, "startTimeUnixNano", s,
	    "endTimeUnixNano", e, "attributes", "droppedAttributesCount", 0,
	    "events", "droppedEventsCount", 0, "status", "code", 0, "links",
	    "droppedLinksCount", 0, "flags", 0x101);
	if (parent != NULL)
		json_object_set_new(sp, "parentSpanId", json_string(parent));
	export_attr_str(sp, "gen_ai.conversation.id", x->run);
	json_array_append_new(x->spans, sp);
	free(s);
	free(e);
	return sp;
}

static void
export_end(json_t *sp, double end)
{
	char *e = export_nanos(end);

	json_object_set_new(sp, "endTimeUnixNano", json_string(e));
	free(e);
}

static void
export_error(json_t *sp, const char *msg)
{
	json_object_set_new(sp, "status", json_pack("{s:i, s:s}", "code", 2,
	    "message", msg ? msg : "error"));
}

static const char *
jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* The node span an event belongs to: its own id, else the run's. */
static const char *
export_parent(struct export *x, int64_t span)
{
	size_t i;

	for (i = 0; i < x->n; i++)
		if (x->nodes[i].span == span)
			return x->nodes[i].id;
	return x->root;
}

static json_t *
export_node_span(struct export *x, int64_t span)
{
	size_t i;

	for (i = 0; i < x->n; i++)
		if (x->nodes[i].span == span)
			return x->nodes[i].otlp;
	return NULL;
}

static void
export_model(struct export *x, const struct store_event *ev, json_t *p)
{
	json_t *sp, *resp = json_object_get(p, "response"), *u;
	const char *model = jstr(p, "model");
	char id[17], what[32], *name;
	double dur = json_number_value(json_object_get(p, "duration"));

	snprintf(what, sizeof what, "ev:%lld", (long long)ev->seq);
	export_id(x->run, what, id, 16);
	name = xasprintf("chat %s", model ? model : "?");
	sp = export_span(x, id, export_parent(x, ev->span_id), name, 3,
	    ev->time - dur, ev->time);
	free(name);
	export_attr_str(sp, "gen_ai.operation.name", "chat");
	export_attr_str(sp, "gen_ai.provider.name", jstr(p, "provider"));
	export_attr_str(sp, "gen_ai.request.model", model);
	if ((u = json_object_get(p, "usage")) == NULL)
		u = json_object_get(resp, "usage");
	if (json_is_integer(json_object_get(u, "input_tokens")))
		export_attr_int(sp, "gen_ai.usage.input_tokens",
		    json_integer_value(json_object_get(u, "input_tokens")));
	if (json_is_integer(json_object_get(u, "output_tokens")))
		export_attr_int(sp, "gen_ai.usage.output_tokens",
		    json_integer_value(json_object_get(u, "output_tokens")));
	if (jstr(resp, "stop_reason") != NULL)
		json_array_append_new(json_object_get(sp, "attributes"),
		    json_pack("{s:s, s:{s:{s:[{s:s}]}}}", "key",
		    "gen_ai.response.finish_reasons", "value", "arrayValue",
		    "values", "stringValue", jstr(resp, "stop_reason")));
}

static int
export_event_cb(void *arg, const struct store_event *ev)
{
	struct export *x = arg;
	struct export_node *nd;
	json_t *p = NULL, *sp;
	json_error_t je;
	char what[48], id[17], *name;
	const char *nm;

	if (ev->payload != NULL)
		p = json_loads(ev->payload, JSON_DECODE_ANY, &je);
	if (strcmp(ev->kind, "run.start") == 0)
		x->start = ev->time;
	else if (strcmp(ev->kind, "run.end") == 0)
		x->end = ev->time;
	else if (strcmp(ev->kind, "node.start") == 0) {
		if (x->n == x->cap) {
			x->cap = x->cap ? x->cap * 2 : 32;
			x->nodes = xrealloc(x->nodes, x->cap *
			    sizeof *x->nodes);
		}
		nd = &x->nodes[x->n];
		nd->span = ev->span_id;
		snprintf(what, sizeof what, "node:%lld",
		    (long long)ev->span_id);
		export_id(x->run, what, nd->id, 16);
		nm = jstr(p, "name") ? jstr(p, "name") : "?";
		if (jstr(p, "kind") && strcmp(jstr(p, "kind"), "agent") == 0)
			name = xasprintf("invoke_agent %s", nm);
		else
			name = xasprintf("%s %s", jstr(p, "kind") ?
			    jstr(p, "kind") : "node", nm);
		nd->otlp = export_span(x, nd->id, export_parent(x,
		    ev->parent_span), name, 1, ev->time, ev->time);
		x->n++;
		free(name);
		if (jstr(p, "kind") && strcmp(jstr(p, "kind"), "agent") == 0) {
			export_attr_str(nd->otlp, "gen_ai.operation.name",
			    "invoke_agent");
			export_attr_str(nd->otlp, "gen_ai.agent.name", nm);
		}
		export_attr_str(nd->otlp, "weft.node.path", ev->node_path);
		export_attr_str(nd->otlp, "weft.node.kind", jstr(p, "kind"));
	} else if (strcmp(ev->kind, "node.end") == 0 &&
	    (sp = export_node_span(x, ev->span_id)) != NULL) {
		export_end(sp, ev->time);
		json_object_set_new(sp, "weft_done", json_true());
		if (jstr(p, "status") && strcmp(jstr(p, "status"),
		    "succeeded") != 0)
			export_error(sp, jstr(p, "error") ? jstr(p, "error") :
			    jstr(p, "status"));
	} else if ((strcmp(ev->kind, "model.call") == 0 &&
	    json_object_get(p, "response") != NULL) ||
	    strcmp(ev->kind, "model.response") == 0)
		export_model(x, ev, p);
	else if (strcmp(ev->kind, "tool.call") == 0) {
		snprintf(what, sizeof what, "task:%lld",
		    (long long)json_integer_value(json_object_get(p, "task")));
		export_id(x->run, what, id, 16);
		nm = jstr(p, "name") ? jstr(p, "name") : "?";
		name = xasprintf("execute_tool %s", nm);
		sp = export_span(x, id, export_parent(x, ev->span_id), name, 1,
		    ev->time, ev->time);
		free(name);
		export_attr_str(sp, "gen_ai.operation.name", "execute_tool");
		export_attr_str(sp, "gen_ai.tool.name", nm);
		export_attr_str(sp, "gen_ai.tool.call.id", what + 5);
		export_attr_str(sp, "weft.tool.server", jstr(p, "server"));
		json_object_set(x->tools, what, sp);
	} else if (strcmp(ev->kind, "tool.result") == 0 ||
	    strcmp(ev->kind, "tool.error") == 0) {
		snprintf(what, sizeof what, "task:%lld",
		    (long long)json_integer_value(json_object_get(p, "task")));
		if ((sp = json_object_get(x->tools, what)) != NULL) {
			export_end(sp, ev->time);
			json_object_set_new(sp, "weft_done", json_true());
			if (strcmp(ev->kind, "tool.error") == 0)
				export_error(sp, jstr(json_object_get(p,
				    "error"), "message"));
			else if (json_is_true(json_object_get(
			    json_object_get(p, "result"), "isError")))
				export_error(sp, jstr(json_array_get(
				    json_object_get(json_object_get(p,
				    "result"), "content"), 0), "text"));
		}
	}
	json_decref(p);
	return 0;
}

static int
export_run_cb(void *arg, const struct store_run *r)
{
	struct export *x = arg;

	x->run = xstrdup(r->id);
	x->workflow = xstrdup(r->workflow);
	x->status = xstrdup(r->status);
	x->error = r->error ? xstrdup(r->error) : NULL;
	x->start = r->started;
	x->end = r->ended;
	return 0;
}

/* The export request of run (a new object), or NULL with err. */
static json_t *
export_build(struct store *st, const char *run, char *err, size_t errlen)
{
	struct export x;
	json_t *root, *sp, *res, *req;
	const char *svc = getenv("OTEL_SERVICE_NAME"), *base;
	char *name, *wf;
	size_t i;

	memset(&x, 0, sizeof x);
	if (store_run_find(st, run, export_run_cb, &x) != 0) {
		errf(err, errlen, "%s", store_error(st));
		return NULL;
	}
	export_id(x.run, "trace", x.trace, 32);
	export_id(x.run, "run", x.root, 16);
	x.spans = json_array();
	x.tools = json_object();
	wf = xstrdup(x.workflow);
	base = strrchr(wf, '/') ? strrchr(wf, '/') + 1 : wf;
	if (strlen(base) > 4 && strcmp(base + strlen(base) - 4, ".lua") == 0)
		((char *)base)[strlen(base) - 4] = '\0';
	name = xasprintf("invoke_workflow %s", base);
	root = export_span(&x, x.root, NULL, name, 1, x.start, x.end);
	export_attr_str(root, "gen_ai.operation.name", "invoke_workflow");
	export_attr_str(root, "weft.run.id", x.run);
	export_attr_str(root, "weft.run.status", x.status);
	export_attr_str(root, "weft.workflow", x.workflow);
	free(name);
	free(wf);
	if (strcmp(x.status, "succeeded") != 0 && strcmp(x.status,
	    "running") != 0)
		export_error(root, x.error ? x.error : x.status);
	if (store_events_foreach(st, x.run, export_event_cb, &x) != 0) {
		errf(err, errlen, "%s", store_error(st));
		req = NULL;
		goto out;
	}
	/* Spans that never recorded an end ended with the run. */
	json_array_foreach(x.spans, i, sp) {
		if (sp == root)
			continue;
		if (json_object_get(sp, "weft_done") == NULL && x.end > 0) {
			export_end(sp, x.end);
			if (json_integer_value(json_object_get(json_object_get(
			    sp, "status"), "code")) == 0 && strcmp(x.status,
			    "succeeded") != 0)
				export_error(sp, x.status);
		}
		json_object_del(sp, "weft_done");
	}
	if (x.end <= 0)
		export_end(root, now_wall());
	res = json_pack("{s:[{s:s, s:{s:s}}, {s:s, s:{s:s}}], s:i}",
	    "attributes", "key", "service.name", "value", "stringValue",
	    svc && *svc ? svc : "weft", "key", "telemetry.sdk.name", "value",
	    "stringValue", "weft", "droppedAttributesCount", 0);
	req = json_pack("{s:[{s:o, s:[{s:{s:s, s:s}, s:O}]}]}",
	    "resourceSpans", "resource", res, "scopeSpans", "scope", "name",
	    "weft", "version", PACKAGE_VERSION, "spans", x.spans);
out:
	json_decref(x.spans);
	json_decref(x.tools);
	free(x.nodes);
	free((char *)x.run);
	free(x.workflow);
	free(x.status);
	free(x.error);
	return req;
}

/* The traces endpoint for url: as given when it names /v1/traces. */
static char *
export_endpoint(const char *url)
{
	size_t n = strlen(url);

	if (n >= 10 && strcmp(url + n - 10, "/v1/traces") == 0)
		return xstrdup(url);
	return xasprintf("%s%sv1/traces", url, n && url[n - 1] == '/' ?
	    "" : "/");
}

struct export_post {
	struct event_base	*base;
	int			 done;
	int			 err;
	long			 status;
	char			 msg[256];
};

static void
export_done_cb(void *arg, const struct http_result *r)
{
	struct export_post *ep = arg;

	ep->done = 1;
	ep->err = r->err;
	ep->status = r->status;
	snprintf(ep->msg, sizeof ep->msg, "%s", r->errmsg);
	event_base_loopbreak(ep->base);
}

/*
 * POST body to url, with $OTEL_EXPORTER_OTLP_HEADERS (k=v,k=v); retried
 * with backoff (0.25, 0.5, 1 s) on a transport error, 429 or 5xx.  0, or
 * -1 with err.
 */
static int
export_post(const char *url, const char *body, char *err, size_t errlen)
{
	const char *env = getenv("OTEL_EXPORTER_OTLP_HEADERS");
	const char *hdrs[34];
	char *hs = NULL, *tok, *save = NULL, *eq, *lines[32];
	struct export_post ep;
	struct http_opts o;
	struct http *h;
	int i, n = 0, rc = -1;

	hdrs[n++] = "Content-Type: application/json";
	if (env != NULL) {
		hs = xstrdup(env);
		for (tok = strtok_r(hs, ",", &save); tok != NULL && n < 33;
		    tok = strtok_r(NULL, ",", &save)) {
			if ((eq = strchr(tok, '=')) == NULL)
				continue;
			*eq = '\0';
			lines[n - 1] = xasprintf("%s: %s", tok, eq + 1);
			hdrs[n] = lines[n - 1];
			n++;
		}
	}
	hdrs[n] = NULL;
	memset(&ep, 0, sizeof ep);
	ep.base = event_base_new();
	if ((h = http_new(ep.base, err, errlen)) == NULL)
		goto out;
	memset(&o, 0, sizeof o);
	o.url = url;
	o.headers = hdrs;
	o.body = body;
	o.bodylen = strlen(body);
	o.total_ms = 30000;
	o.on_done = export_done_cb;
	o.arg = &ep;
	for (i = 0; i < EXPORT_ATTEMPTS; i++) {
		if (i > 0) {
			struct timespec ts = { 0, 250000000L << (i - 1) };

			while (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			nanosleep(&ts, NULL);
		}
		ep.done = 0;
		if (http_start(h, &o, err, errlen) == NULL)
			break;
		while (!ep.done)
			event_base_dispatch(ep.base);
		if (ep.err == HTTP_OK && ep.status >= 200 && ep.status < 300) {
			rc = 0;
			break;
		}
		if (ep.err == HTTP_OK)
			errf(err, errlen, "%s answered HTTP %ld", url,
			    ep.status);
		else
			errf(err, errlen, "%s: %s", url, ep.msg);
		if (ep.err == HTTP_OK && ep.status != 429 && ep.status < 500)
			break;
	}
	http_free(h);
out:
	for (i = 1; i < n; i++)
		free(lines[i - 1]);
	free(hs);
	event_base_free(ep.base);
	return rc;
}

static void
export_usage(FILE *f)
{
	fprintf(f,
"usage: weft export --otlp FILE|URL RUN [--db PATH]\n"
"\n"
"Export a recorded run as OpenTelemetry spans in OTLP/JSON: the run\n"
"(invoke_workflow NAME) > each node (invoke_agent NAME for agents) > its\n"
"model calls (chat MODEL) and tool calls (execute_tool TOOL), with the\n"
"GenAI semantic conventions' attributes (gen_ai.operation.name,\n"
"gen_ai.provider.name, gen_ai.request.model, gen_ai.usage.input_tokens,\n"
"gen_ai.usage.output_tokens, gen_ai.tool.name, gen_ai.agent.name,\n"
"gen_ai.conversation.id).  The trace id is derived from the run id.\n"
"See docs/viewer.md (\"OpenTelemetry\").\n"
"\n"
"  --otlp FILE   write the export request to FILE (- for stdout)\n"
"  --otlp URL    POST it to an OTLP/HTTP collector (http:// or https://;\n"
"                /v1/traces is added unless the URL ends with it),\n"
"                with the headers of $OTEL_EXPORTER_OTLP_HEADERS\n"
"                (k=v,k=v); retried 3 times with backoff\n"
"  --db PATH     trajectory store (default $WEFT_DB or ./weft.db)\n"
"\n"
"$OTEL_SERVICE_NAME names the service (default weft).\n"
"exit status: 0 exported, 1 no such run, the file or the collector\n"
"failed, 2 bad usage.\n");
}

int
cmd_export(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "otlp", required_argument, NULL, 'o' },
		{ "db", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct store *st;
	const char *db = NULL, *otlp = NULL;
	char err[1024], *text, *url;
	json_t *req;
	FILE *f;
	int ch, rc = WEFT_EXIT_FAILED;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'o':
			otlp = optarg;
			break;
		case 'd':
			db = optarg;
			break;
		case 'h':
			export_usage(stdout);
			return WEFT_EXIT_OK;
		default:
			export_usage(stderr);
			return WEFT_EXIT_USAGE;
		}
	}
	if (otlp == NULL || optind != argc - 1) {
		fprintf(stderr, "weft export: %s\n", otlp == NULL ?
		    "where to? (--otlp FILE|URL)" : "which run? (weft export "
		    "--otlp FILE|URL RUN)");
		return WEFT_EXIT_USAGE;
	}
	if (store_open_read(cmd_db_path(db), &st, err, sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		return WEFT_EXIT_FAILED;
	}
	req = export_build(st, argv[optind], err, sizeof err);
	store_close(st);
	if (req == NULL) {
		fprintf(stderr, "weft: %s\n", err);
		return WEFT_EXIT_FAILED;
	}
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (strncmp(otlp, "http://", 7) == 0 ||
	    strncmp(otlp, "https://", 8) == 0) {
		url = export_endpoint(otlp);
		if (export_post(url, text, err, sizeof err) != 0)
			fprintf(stderr, "weft: export failed: %s\n", err);
		else
			rc = WEFT_EXIT_OK;
		free(url);
	} else if (strcmp(otlp, "-") == 0) {
		printf("%s\n", text);
		rc = WEFT_EXIT_OK;
	} else if ((f = fopen(otlp, "w")) == NULL ||
	    fprintf(f, "%s\n", text) < 0 || fclose(f) != 0) {
		fprintf(stderr, "weft: cannot write '%s': %s\n", otlp,
		    strerror(errno));
	} else
		rc = WEFT_EXIT_OK;
	free(text);
	return rc;
}
