/*
 * view_tools.c: the viewer's answers that come from weft's other tools
 * (docs/viewer.md): `weft replay`'s verdict on a run and the step of its
 * first divergence (/api/replay), `weft eval` against the golden file
 * given to weft view (/api/eval), `weft diff`'s alignment of two runs
 * (/api/diff), and the approvals a run waits for (/api/approvals).
 *
 * Replay and eval run as the weft commands themselves, in a child process
 * bounded in time (view_exec.c), at most VIEW_JOBS_MAX at once; requests
 * for the same answer while its command runs share it.  Nothing is kept
 * after: the answer depends on files (the workflow, the golden file) that
 * may change.  A diff is computed here, on the loop, within weft diff's
 * own bound (EVAL_MAX_CELLS).
 */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/http.h>
#include <jansson.h>

#include "engine/cmd.h"
#include "engine/store.h"
#include "engine/view.h"
#include "engine/view_int.h"
#include "runtime/httpd_routes.h"
#include "runtime/util.h"

#define VIEW_JOBS_MAX	2	/* commands running at once */
#define VIEW_JOB_S	30	/* a command's time bound, seconds */
#define VIEW_JOB_ENV	"WEFT_VIEW_COMMAND_SECONDS"

enum view_tool { VIEW_REPLAY, VIEW_EVAL };

struct view_wait {
	struct evhttp_request	*req;
	struct view_wait	*next;
};

struct view_job {
	struct view		*v;
	enum view_tool		 tool;
	char			 run[64];
	int64_t			 events;
	struct view_exec	*x;
	struct view_wait	*waiting;
	struct view_job		*next;
};

struct view_seq {
	const char	*path;
	int64_t		 node_last, last;
};

static int
view_seq_cb(void *arg, const struct store_event *ev)
{
	struct view_seq *w = arg;

	w->last = ev->seq;
	if (w->path != NULL && strcmp(ev->node_path, w->path) == 0)
		w->node_last = ev->seq;
	return 0;
}

/*
 * Where a replay's divergence is shown: the recorded call's seq when the
 * report names it ("(seq N)"), else the last event of the node it names
 * (the record ends before the call), else the run's last event (the run
 * ends differently).  Sets path too (NULL when none is named).
 */
static int64_t
view_divergence_seq(struct view *v, const char *run, const char *div,
    char **path)
{
	static const char at[] = "first divergence at node '";
	struct view_seq w;
	const char *p, *e;

	*path = NULL;
	if ((p = strstr(div, at)) != NULL &&
	    (e = strstr(p + sizeof at - 1, "', call #")) != NULL)
		*path = xstrndup(p + sizeof at - 1, (size_t)(e - p -
		    (ptrdiff_t)sizeof at + 1));
	if ((p = strstr(div, "(seq ")) != NULL)
		return strtoll(p + 5, NULL, 10);
	memset(&w, 0, sizeof w);
	w.path = *path;
	store_events_foreach(v->st, run, view_seq_cb, &w);
	return w.node_last > 0 ? w.node_last : w.last;
}

/* /api/replay's answer from weft replay --json's doc (or its error). */
static json_t *
view_replay_answer(struct view_job *j, json_t *doc, const char *err)
{
	json_t *a = json_pack("{s:s, s:I}", "run", j->run, "events",
	    (json_int_t)j->events);
	const char *div;
	char *path;
	int64_t seq;

	if (doc == NULL) {
		json_object_set_new(a, "verdict", json_string("failed"));
		json_object_set_new(a, "error", json_string(err));
		return a;
	}
	json_object_set(a, "replay", doc);
	div = json_string_value(json_object_get(doc, "divergence"));
	json_object_set_new(a, "verdict", json_string(div == NULL ?
	    "identical" : "diverged"));
	json_object_set_new(a, "divergence", div ? json_string(div) :
	    json_null());
	if (div == NULL)
		return a;
	seq = view_divergence_seq(j->v, j->run, div, &path);
	json_object_set_new(a, "seq", json_integer(seq));
	json_object_set_new(a, "path", path ? json_string(path) :
	    json_null());
	free(path);
	return a;
}

/* The command of a job ended: answer whoever waits, keep the answer. */
static void
view_job_done_cb(void *arg, json_t *doc, const char *err)
{
	struct view_job *j = arg, **pp;
	struct view *v = j->v;
	struct view_wait *w;
	json_t *a;

	if (j->tool == VIEW_REPLAY)
		a = view_replay_answer(j, doc, err);
	else {
		a = json_pack("{s:s, s:I, s:s?}", "run", j->run, "events",
		    (json_int_t)j->events, "golden", v->golden);
		if (doc != NULL)
			json_object_set(a, "eval", doc);
		else
			json_object_set_new(a, "error", json_string(err));
	}
	while ((w = j->waiting) != NULL) {
		j->waiting = w->next;
		view_json(w->req, 200, json_incref(a));
		free(w);
	}
	json_decref(a);
	for (pp = &v->jobs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	free(j);
}

/* A command's time bound: $WEFT_VIEW_COMMAND_SECONDS (1 to 3600), else
   VIEW_JOB_S. */
static int
view_job_bound(void)
{
	const char *s = getenv(VIEW_JOB_ENV);
	char *end;
	long n;

	if (s == NULL || *s == '\0')
		return VIEW_JOB_S;
	n = strtol(s, &end, 10);
	return *end == '\0' && n >= 1 && n <= 3600 ? (int)n : VIEW_JOB_S;
}

/* Answer req with tool's verdict on run: coming, or started now. */
static void
view_tool_run(struct view *v, struct evhttp_request *req, enum view_tool tool,
    const char *run)
{
	struct view_job *j;
	struct view_wait *w;
	char *self, err[512];
	int64_t events = store_event_count(v->st, run);
	int n = 0;

	for (j = v->jobs; j != NULL; j = j->next, n++)
		if (j->tool == tool && j->events == events &&
		    strcmp(j->run, run) == 0)
			break;
	if (j == NULL && n >= VIEW_JOBS_MAX) {
		view_error(req, 503, "the viewer already runs its most "
		    "commands at once (weft replay, weft eval); ask again "
		    "shortly");
		return;
	}
	if (j == NULL) {
		char *argv[10];

		if ((self = cmd_self_exe()) == NULL) {
			view_error(req, 500, "cannot find the weft binary");
			return;
		}
		j = xcalloc(1, sizeof *j);
		j->v = v;
		j->tool = tool;
		snprintf(j->run, sizeof j->run, "%s", run);
		j->events = events;
		n = 0;
		argv[n++] = self;
		argv[n++] = tool == VIEW_REPLAY ? "replay" : "eval";
		argv[n++] = j->run;
		if (tool == VIEW_EVAL) {
			argv[n++] = "--golden";
			argv[n++] = v->golden;
		}
		argv[n++] = "--json";
		argv[n++] = "--db";
		argv[n++] = v->db;
		argv[n] = NULL;
		j->x = view_exec_start(v->base, argv, view_job_bound(),
		    view_job_done_cb, j, err, sizeof err);
		free(self);
		if (j->x == NULL) {
			free(j);
			view_error(req, 500, err);
			return;
		}
		j->next = v->jobs;
		v->jobs = j;
	}
	w = xcalloc(1, sizeof *w);
	w->req = req;
	w->next = j->waiting;
	j->waiting = w;
}

/*
 * GET /api/replay?id=RUN: weft replay RUN's verdict, offline: identical,
 * or the first divergence and the seq it is shown at.
 */
static void
view_replay_route_cb(struct evhttp_request *req,
    const struct httpd_client *who, void *arg)
{
	struct view *v = arg;
	json_t *run;

	if (view_check(v, req, who) != 0 || (run = view_find(v, req)) == NULL)
		return;
	view_tool_run(v, req, VIEW_REPLAY, json_string_value(json_object_get(
	    run, "id")));
	json_decref(run);
}

/* GET /api/eval?id=RUN: weft eval RUN --golden FILE (weft view --golden),
   or {golden: null} without one. */
static void
view_eval_route_cb(struct evhttp_request *req,
    const struct httpd_client *who, void *arg)
{
	struct view *v = arg;
	json_t *run;

	if (view_check(v, req, who) != 0 || (run = view_find(v, req)) == NULL)
		return;
	if (v->golden == NULL)
		view_json(req, 200, json_pack("{s:O, s:n}", "run",
		    json_object_get(run, "id"), "golden"));
	else
		view_tool_run(v, req, VIEW_EVAL, json_string_value(
		    json_object_get(run, "id")));
	json_decref(run);
}

/* GET /api/diff?a=RUN&b=RUN: weft diff A B --json. */
static void
view_diff_route_cb(struct evhttp_request *req,
    const struct httpd_client *who, void *arg)
{
	struct view *v = arg;
	char a[128], b[128], err[512];
	json_t *doc;

	if (view_check(v, req, who) != 0)
		return;
	if (view_param(req, "a", a, sizeof a) == NULL || *a == '\0' ||
	    view_param(req, "b", b, sizeof b) == NULL || *b == '\0') {
		view_error(req, 400, "which runs? (?a=RUN&b=RUN)");
		return;
	}
	if ((doc = cmd_diff_json(v->st, a, b, err, sizeof err)) == NULL)
		view_error(req, strncmp(err, "no run", 6) == 0 ? 404 : 400,
		    err);
	else
		view_json(req, 200, doc);
}

static int
view_approval_cb(void *arg, const struct store_approval *a)
{
	json_error_t je;
	json_t *answer = a->answer ? json_loads(a->answer, 0, &je) : NULL;
	json_t *schema = a->schema ? json_loads(a->schema, 0, &je) : NULL;

	json_array_append_new(arg, json_pack("{s:s, s:i, s:s, s:o?, s:s, "
	    "s:f, s:f, s:s, s:o?, s:f}", "path", a->path, "call", a->call,
	    "prompt", a->prompt ? a->prompt : "", "schema", schema,
	    "on_timeout", a->on_timeout ? a->on_timeout : "reject",
	    "deadline", a->deadline, "waited", a->waited, "status",
	    a->status, "answer", answer, "answered", a->answered));
	return 0;
}

/* GET /api/approvals?id=RUN: the run's approvals (w.approval). */
static void
view_approvals_route_cb(struct evhttp_request *req,
    const struct httpd_client *who, void *arg)
{
	struct view *v = arg;
	json_t *run, *list;

	if (view_check(v, req, who) != 0 || (run = view_find(v, req)) == NULL)
		return;
	list = json_array();
	if (store_approvals_list(v->st, json_string_value(json_object_get(
	    run, "id")), view_approval_cb, list) < 0) {
		json_decref(run);
		json_decref(list);
		view_error(req, 500, store_error(v->st));
		return;
	}
	view_json(req, 200, json_pack("{s:O, s:o}", "run", json_object_get(run,
	    "id"), "approvals", list));
	json_decref(run);
}

int
view_set_golden(struct view *v, const char *path, char *err, size_t errlen)
{
	char *abs;

	if (access(path, R_OK) != 0) {
		errf(err, errlen, "--golden '%s': cannot be read", path);
		return -1;
	}
	/* The command runs in this directory, but say it whole. */
	abs = realpath(path, NULL);
	free(v->golden);
	v->golden = abs != NULL ? abs : xstrdup(path);
	return 0;
}

void
view_tools_add(struct view *v, struct httpd_routes *routes)
{
	httpd_routes_add(routes, "/api/replay", view_replay_route_cb, v);
	httpd_routes_add(routes, "/api/eval", view_eval_route_cb, v);
	httpd_routes_add(routes, "/api/diff", view_diff_route_cb, v);
	httpd_routes_add(routes, "/api/approvals", view_approvals_route_cb, v);
}

void
view_tools_free(struct view *v)
{
	struct view_job *j;
	struct view_wait *w;

	while ((j = v->jobs) != NULL) {
		v->jobs = j->next;
		view_exec_cancel(j->x);
		while ((w = j->waiting) != NULL) {
			j->waiting = w->next;
			view_error(w->req, 503, "the viewer is stopping");
			free(w);
		}
		free(j);
	}
}
