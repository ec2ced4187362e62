/*
 * serve_ops.c: what an operator of `weft serve` watches and does
 * (docs/mcp.md, "Operations"): GET /healthz, GET /metrics in the
 * Prometheus text exposition format (version 0.0.4), and the graceful
 * stop.  Both routes sit behind the listener's checks (Host, Origin,
 * bearer token: runtime/httpd_routes.h) like /mcp.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "engine/coord.h"
#include "engine/serve_int.h"
#include "runtime/httpd_routes.h"
#include "runtime/util.h"

/* Upper bounds of the latency buckets, in seconds; the last is +Inf. */
static const double ops_le[SERVE_NBUCKETS - 1] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300
};

void
serve_stats_call(struct serve *s, double secs, const char *status)
{
	struct serve_stats *st = &s->stats;
	int i;

	for (i = 0; i < SERVE_NBUCKETS - 1 && secs > ops_le[i]; i++)
		;
	st->hist[i]++;
	st->sum += secs;
	st->count++;
	if (status == NULL)
		status = "not_started";
	for (i = 0; i < SERVE_NSTATUS; i++) {
		if (st->status[i][0] == '\0')
			snprintf(st->status[i], sizeof st->status[i], "%s",
			    status);
		if (strcmp(st->status[i], status) == 0) {
			st->nstatus[i]++;
			return;
		}
	}
}

void
serve_stats_refused(struct serve *s)
{
	s->stats.refused++;
}

/* Answer req with status and a text body. */
static void
ops_reply(struct evhttp_request *req, int code, const char *reason,
    const char *ctype, struct evbuffer *b)
{
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", ctype);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Cache-Control", "no-store");
	evhttp_send_reply(req, code, reason, b);
}

/* Only GET (and HEAD) are served here; 0 when req is one. */
static int
ops_method(struct evhttp_request *req)
{
	struct evbuffer *b;
	enum evhttp_cmd_type c = evhttp_request_get_command(req);

	if (c == EVHTTP_REQ_GET || c == EVHTTP_REQ_HEAD)
		return 0;
	b = evbuffer_new();
	evbuffer_add_printf(b, "only GET is served here\n");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
	    "GET, HEAD");
	ops_reply(req, 405, "Method Not Allowed", "text/plain", b);
	evbuffer_free(b);
	return -1;
}

void
serve_healthz_cb(struct evhttp_request *req, const struct httpd_client *who,
    void *arg)
{
	struct serve *s = arg;
	struct evbuffer *b;
	char err[512];

	(void)who;
	if (ops_method(req) != 0)
		return;
	b = evbuffer_new();
	if (coord_error(s->coord, err, sizeof err)) {
		evbuffer_add_printf(b, "failing: %s\n", err);
		ops_reply(req, 503, "Service Unavailable", "text/plain", b);
	} else if (s->drained != NULL || s->stopping) {
		evbuffer_add_printf(b, "stopping\n");
		ops_reply(req, 503, "Service Unavailable", "text/plain", b);
	} else {
		evbuffer_add_printf(b, "ok\n");
		ops_reply(req, 200, "OK", "text/plain", b);
	}
	evbuffer_free(b);
}

/* One gauge or counter with its help and type lines. */
static void
ops_metric(struct evbuffer *b, const char *name, const char *type,
    const char *help, double v)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name,
	    help, name, type, name, v);
}

/* Count one connected worker under label (coord_workers_connected). */
static void
ops_worker_cb(void *arg, const char *label)
{
	json_t *by = arg;

	json_object_set_new(by, label, json_integer(json_integer_value(
	    json_object_get(by, label)) + 1));
}

/* weft_workers_connected{label="..."}: the workers whose hello was
   accepted, by label ("" for none). */
static void
ops_workers(struct evbuffer *b, struct serve *s)
{
	json_t *by = json_object(), *n;
	const char *label;

	coord_workers_connected(s->coord, ops_worker_cb, by);
	evbuffer_add_printf(b, "# HELP weft_workers_connected Workers "
	    "connected now (hello accepted), by label\n"
	    "# TYPE weft_workers_connected gauge\n");
	json_object_foreach(by, label, n)
		evbuffer_add_printf(b, "weft_workers_connected{label=\"%s\"} "
		    "%lld\n", label, (long long)json_integer_value(n));
	json_decref(by);
}

void
serve_metrics_cb(struct evhttp_request *req, const struct httpd_client *who,
    void *arg)
{
	struct serve *s = arg;
	struct serve_stats *st = &s->stats;
	struct evbuffer *b;
	uint64_t cum = 0;
	int runs, queued, leased, i;
	char err[8];

	(void)who;
	if (ops_method(req) != 0)
		return;
	coord_counts(s->coord, &runs, &queued, &leased);
	b = evbuffer_new();
	ops_metric(b, "weft_up", "gauge", "1 while the coordinator works, "
	    "0 once it failed", !coord_error(s->coord, err, sizeof err));
	ops_metric(b, "weft_stopping", "gauge", "1 once the server stops "
	    "admitting calls (SIGTERM)", s->drained != NULL || s->stopping);
	ops_metric(b, "weft_runs_running", "gauge", "Served runs going "
	    "(--max-runs bounds them)", s->nruns);
	ops_metric(b, "weft_runs_open", "gauge", "Runs open in the "
	    "coordinator (served and resumed)", runs);
	ops_metric(b, "weft_calls_waiting", "gauge", "Tool calls waiting in "
	    "the admission queue (--max-queued bounds them)", s->nwaiting);
	ops_metric(b, "weft_tasks_queued", "gauge", "Tasks (tool and remote "
	    "calls) queued for a worker", queued);
	ops_metric(b, "weft_tasks_leased", "gauge", "Tasks leased to a "
	    "worker: calls in flight", leased);
	ops_metric(b, "weft_workers", "gauge", "Worker slots of the "
	    "coordinator (local processes and remote enrolments)",
	    s->nworkers);
	ops_metric(b, "weft_model_calls_in_flight", "gauge", "Model calls "
	    "of the runs going not yet answered", serve_runs_model_calls(s));
	ops_workers(b, s);
	ops_metric(b, "weft_worker_restarts_total", "counter", "Local "
	    "workers restarted after they died",
	    coord_worker_restarts(s->coord));
	ops_metric(b, "weft_calls_refused_total", "counter", "Tool calls "
	    "refused: admission queue full, or the server stopping",
	    (double)st->refused);
	evbuffer_add_printf(b, "# HELP weft_calls_total Served tool calls "
	    "answered, by how their run ended\n"
	    "# TYPE weft_calls_total counter\n");
	for (i = 0; i < SERVE_NSTATUS && st->status[i][0] != '\0'; i++)
		evbuffer_add_printf(b, "weft_calls_total{status=\"%s\"} "
		    "%llu\n", st->status[i],
		    (unsigned long long)st->nstatus[i]);
	evbuffer_add_printf(b, "# HELP weft_call_duration_seconds Served "
	    "tool calls, from the request to the answer (admission wait "
	    "included)\n# TYPE weft_call_duration_seconds histogram\n");
	for (i = 0; i < SERVE_NBUCKETS; i++) {
		cum += st->hist[i];
		if (i < SERVE_NBUCKETS - 1)
			evbuffer_add_printf(b, "weft_call_duration_seconds_"
			    "bucket{le=\"%g\"} %llu\n", ops_le[i],
			    (unsigned long long)cum);
		else
			evbuffer_add_printf(b, "weft_call_duration_seconds_"
			    "bucket{le=\"+Inf\"} %llu\n",
			    (unsigned long long)cum);
	}
	evbuffer_add_printf(b, "weft_call_duration_seconds_sum %.9g\n"
	    "weft_call_duration_seconds_count %llu\n", st->sum,
	    (unsigned long long)st->count);
	ops_reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
	    b);
	evbuffer_free(b);
}

/* The drain's end, on the loop. */
static void
ops_drained_cb(evutil_socket_t fd, short what, void *arg)
{
	struct serve *s = arg;
	void (*done)(void *) = s->drained;

	(void)fd;
	(void)what;
	if (done != NULL && serve_runs_idle(s)) {
		s->drained = NULL;
		s->stopping = 1;
		done(s->drained_arg);
	}
}

void
serve_drain(struct serve *s, void (*done)(void *), void *arg)
{
	s->stopping = 1;
	s->drained = done;
	s->drained_arg = arg;
	serve_runs_refuse_waiting(s);
	serve_drain_check(s);
}

void
serve_drain_check(struct serve *s)
{
	if (s->drained != NULL && serve_runs_idle(s))
		event_base_once(s->base, -1, EV_TIMEOUT, ops_drained_cb, s,
		    NULL);
}
