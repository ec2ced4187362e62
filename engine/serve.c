/*
 * serve.c: workflows served as MCP tools (engine/serve.h): loading them,
 * the MCP backend (a call starts a run, cancel stops it), and the run
 * trajectories published as resources weft://runs/{id}.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "engine/coord.h"
#include "engine/exec.h"
#include "engine/otlp.h"
#include "engine/serve_int.h"
#include "engine/schema.h"
#include "engine/store.h"
#include "runtime/util.h"

#define SERVE_RUNS_LISTED	100
#define SERVE_MAX_TOOLS		1024
#define SERVE_TRAJ_EVENTS	10000	/* events in a trajectory resource */

/* ---- loading workflows ------------------------------------------------ */

/* The tool name of a workflow: w.workflow's name, else the file's base. */
static char *
serve_tool_name_of(const char *path, json_t *meta)
{
	const char *base, *n = json_string_value(json_object_get(meta, "name"));
	size_t len;

	if (n != NULL)
		return xstrdup(n);
	base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	len = strlen(base);
	if (len > 4 && strcmp(base + len - 4, ".lua") == 0)
		len -= 4;
	return xstrndup(base, len);
}

/* Load one workflow file as a tool. */
static int
serve_load_tool(struct serve *s, const char *path, char *err, size_t errlen)
{
	struct serve_tool *t;
	json_t *meta, *in;
	char e2[512];
	int i;

	if (s->ntools >= SERVE_MAX_TOOLS) {
		errf(err, errlen, "more than %d workflows", SERVE_MAX_TOOLS);
		return -1;
	}
	if ((meta = s->opts.load_meta(path, err, errlen)) == NULL)
		return -1;
	in = json_object_get(meta, "input_schema");
	if (in != NULL && !(json_is_object(in) && json_is_string(
	    json_object_get(in, "type")) && strcmp(json_string_value(
	    json_object_get(in, "type")), "object") == 0)) {
		errf(err, errlen, "%s: input_schema must describe an object "
		    "(type = \"object\"): MCP passes arguments as one object",
		    path);
		json_decref(meta);
		return -1;
	}
	s->tools = xrealloc(s->tools, (s->ntools + 1) * sizeof s->tools[0]);
	t = &s->tools[s->ntools];
	memset(t, 0, sizeof *t);
	t->path = xstrdup(path);
	t->meta = meta;
	t->name = serve_tool_name_of(path, meta);
	if (json_object_get(meta, "description") == NULL)
		json_object_set_new(meta, "description", json_sprintf(
		    "Run the weft workflow %s", path));
	if (in != NULL && schema_check(in, "input_schema", e2, sizeof e2) == 0)
		t->checked_input = json_incref(in);
	else if (in != NULL)
		fprintf(stderr, "weft: %s: tool '%s': arguments are passed "
		    "unchecked: %s\n", path, t->name, e2);
	for (i = 0; i < s->ntools; i++)
		if (strcmp(s->tools[i].name, t->name) == 0) {
			errf(err, errlen, "%s and %s both define tool '%s'",
			    s->tools[i].path, path, t->name);
			s->ntools++;
			return -1;
		}
	s->ntools++;
	mcps_tool_add(s->mcps, t->name, t->meta);
	return 0;
}

static int
serve_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Load every *.lua file of dir, in name order. */
static int
serve_load_dir(struct serve *s, const char *dir, char *err, size_t errlen)
{
	DIR *d;
	struct dirent *de;
	char **names = NULL, *p;
	size_t n = 0, i, len;
	int rv = 0;

	if ((d = opendir(dir)) == NULL) {
		errf(err, errlen, "cannot read directory '%s': %s", dir,
		    strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL && n < SERVE_MAX_TOOLS + 1) {
		len = strlen(de->d_name);
		if (len < 5 || de->d_name[0] == '.' ||
		    strcmp(de->d_name + len - 4, ".lua") != 0)
			continue;
		names = xrealloc(names, (n + 1) * sizeof *names);
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (n == 0) {
		errf(err, errlen, "no *.lua workflow in directory '%s'", dir);
		free(names);
		return -1;
	}
	qsort(names, n, sizeof *names, serve_cmp_str);
	for (i = 0; i < n; i++) {
		p = xasprintf("%s/%s", dir, names[i]);
		if (rv == 0)
			rv = serve_load_tool(s, p, err, errlen);
		free(p);
		free(names[i]);
	}
	free(names);
	return rv;
}

/* ---- run trajectories ------------------------------------------------- */

static int
serve_list_run_cb(void *arg, const struct store_run *r)
{
	json_t *a = arg;

	json_array_append_new(a, json_pack("{s:s+, s:s+, s:s++, s:s}",
	    "uri", SERVE_RUN_PREFIX, r->id, "name", "run ", r->id,
	    "description", r->workflow, ": ", r->status,
	    "mimeType", "application/json"));
	return 0;
}

/* A trajectory being read: its events, and the bytes they take. */
struct serve_traj {
	json_t		*run;
	json_t		*events;
	size_t		 bytes;
	size_t		 max;
};

static int
serve_traj_event_cb(void *arg, const struct store_event *e)
{
	struct serve_traj *t = arg;
	json_t *ev, *p = NULL;
	size_t n = 64 + strlen(e->kind) + (e->node_path ?
	    strlen(e->node_path) : 0) + (e->payload ? strlen(e->payload) : 0);

	if (json_array_size(t->events) >= SERVE_TRAJ_EVENTS ||
	    t->bytes + n > t->max)
		return 1;
	t->bytes += n;
	if (e->payload != NULL)
		p = json_loads(e->payload, JSON_DECODE_ANY, NULL);
	ev = json_pack("{s:I, s:s, s:s, s:f, s:o?}", "seq", (json_int_t)e->seq,
	    "kind", e->kind, "path", e->node_path ? e->node_path : "",
	    "time", e->time, "payload", p);
	json_array_append_new(t->events, ev);
	return 0;
}

static int
serve_traj_run_cb(void *arg, const struct store_run *r)
{
	struct serve_traj *t = arg;
	size_t olen = r->output ? strlen(r->output) : 0;
	json_t *o = NULL;

	/* An output over half the limit leaves no room for the events. */
	if (olen > 0 && olen <= t->max / 2)
		o = json_loads(r->output, JSON_DECODE_ANY, NULL);
	t->run = json_pack("{s:s, s:s, s:s, s:o?, s:s?, s:f, s:f, s:I, s:I, "
	    "s:f}", "id", r->id, "workflow", r->workflow, "status", r->status,
	    "output", o, "error", r->error, "started", r->started,
	    "ended", r->ended, "steps", (json_int_t)r->steps,
	    "tokens", (json_int_t)r->tokens, "cost_usd", r->cost);
	if (olen > t->max / 2)
		json_object_set_new(t->run, "output_truncated", json_sprintf(
		    "the output is %zu bytes, more than this resource holds: "
		    "weft show %s --json has it", olen, r->id));
	t->bytes = 1024 + (o != NULL ? olen : 0);
	return 0;
}

static char *
serve_trajectory(struct serve *s, const char *id)
{
	struct serve_traj t;
	char *text;

	memset(&t, 0, sizeof t);
	t.max = s->opts.max_resource ? s->opts.max_resource :
	    MCPS_MAX_RESOURCE;
	if (strlen(id) != 16 || strspn(id, "0123456789abcdef") != 16 ||
	    store_run_find(s->st, id, serve_traj_run_cb, &t) != 0 ||
	    t.run == NULL) {
		json_decref(t.run);
		return NULL;
	}
	t.events = json_array();
	if (store_events_foreach(s->st, id, serve_traj_event_cb, &t) == 1)
		json_object_set_new(t.run, "truncated", json_sprintf("only the "
		    "first %zu events (a resource holds at most %d events and "
		    "%zu bytes): weft show %s --json has them all",
		    json_array_size(t.events), SERVE_TRAJ_EVENTS, t.max, id));
	json_object_set_new(t.run, "events", t.events);
	text = json_dumps(t.run, JSON_COMPACT);
	json_decref(t.run);
	return text;
}

/* ---- the MCP backend --------------------------------------------------- */

/* tools/call: check the arguments against the input schema, start a run. */
static void
serve_call_op(void *arg, struct mcps_call *c, int i, json_t *args)
{
	struct serve *s = arg;
	struct serve_tool *t = &s->tools[i];
	char err[512];

	if (t->checked_input != NULL && schema_validate(t->checked_input, args,
	    err, sizeof err) != 0) {
		mcps_call_done(c, mcps_tool_error("invalid arguments for "
		    "'%s': %s", t->name, err));
		return;
	}
	serve_run_start(s, c, t, args);
}

static int
serve_cancel_op(void *arg, struct mcps_call *c, int gone)
{
	return serve_run_cancel(arg, c, gone);
}

/* The runs a session may see, or the run template. */
static void
serve_resources_op(void *arg, struct mcps_conn *cn, int templates,
    json_t *out)
{
	struct serve *s = arg;

	if (templates)
		json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s}",
		    "uriTemplate", SERVE_RUN_PREFIX "{id}", "name", "run",
		    "description", "The trajectory of a weft run: the run "
		    "row and every recorded event", "mimeType",
		    "application/json"));
	else if (mcps_conn_operator(cn))
		store_runs_list(s->st, SERVE_RUNS_LISTED, serve_list_run_cb,
		    out);
	else if (mcps_conn_owner(cn) != NULL)
		serve_owner_runs(s, mcps_conn_owner(cn), SERVE_RUNS_LISTED,
		    serve_list_run_cb, out);
}

/* resources/read of weft://runs/{id}. */
static int
serve_read_op(void *arg, struct mcps_conn *cn, const char *uri,
    json_t **contents)
{
	struct serve *s = arg;
	const char *id = uri + strlen(SERVE_RUN_PREFIX);
	char *text;

	if (strncmp(uri, SERVE_RUN_PREFIX, strlen(SERVE_RUN_PREFIX)) != 0)
		return 0;
	/* Another client's run is as absent as a run never made. */
	text = serve_run_visible(s, cn, id) ? serve_trajectory(s, id) : NULL;
	*contents = text != NULL ? json_pack("[{s:s, s:s, s:s}]", "uri", uri,
	    "mimeType", "application/json", "text", text) : NULL;
	free(text);
	return 1;
}

static const struct mcps_backend serve_backend = {
	serve_call_op,
	serve_cancel_op,
	serve_resources_op,
	serve_read_op,
};

/* ---- the server -------------------------------------------------------- */

/*
 * The coordinator of every run, on the server's loop: weft run's defaults
 * (exec_spec_init), opts.workers, and workers without seccomp when a
 * served workflow's servers need it (as weft run decides for one).
 */
static int
serve_coord_new(struct serve *s, char *err, size_t errlen)
{
	struct exec_spec sp;
	char e2[900];
	int i;

	exec_spec_init(&sp, EXEC_RUN);
	if (s->opts.workers > 0)
		sp.co.workers = s->opts.workers;
	sp.co.verbose = s->opts.verbose;
	sp.co.base = s->base;
	sp.co.no_signals = 1;
	sp.co.committed = serve_runs_committed;
	sp.co.committed_arg = s;
	sp.co.external = s->opts.no_workers;
	if (s->opts.remote != NULL) {
		sp.co.listen = s->opts.remote->listen;
		sp.co.tls_cert = s->opts.remote->tls_cert;
		sp.co.tls_key = s->opts.remote->tls_key;
		sp.co.remote = s->opts.remote->remote;
		sp.co.enroll_dir = s->opts.remote->enroll_dir;
	}
	/* One run's fan-out leaves room for the others' calls. */
	sp.co.run_cap = sp.co.workers * sp.co.slots * 3 / 4;
	for (i = 0; i < s->ntools; i++)
		if (json_is_true(json_object_get(s->tools[i].meta,
		    "unconfined")))
			sp.co.worker_no_seccomp = 1;
	s->nworkers = sp.co.workers + (sp.co.listen != NULL ?
	    sp.co.remote : 0);
	if ((s->coord = coord_new(&sp.co, s->st, e2, sizeof e2)) == NULL) {
		errf(err, errlen, "cannot start the coordinator: %s", e2);
		return -1;
	}
	return 0;
}

int
serve_new(struct event_base *base, const struct serve_opts *o,
    char *const *paths, int npaths, struct serve **out, char *err,
    size_t errlen)
{
	struct serve *s = xcalloc(1, sizeof *s);
	struct stat sb;
	int i;

	s->base = base;
	s->opts = *o;
	s->db = xstrdup(o->db);
	s->exe = xstrdup(o->exe);
	s->opts.db = s->db;
	s->opts.exe = s->exe;
	s->mcps = mcps_new(&serve_backend, s);
	TAILQ_INIT(&s->runs);
	for (i = 0; i < npaths; i++) {
		if (stat(paths[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
			if (serve_load_dir(s, paths[i], err, errlen) != 0)
				goto fail;
		} else if (serve_load_tool(s, paths[i], err, errlen) != 0)
			goto fail;
	}
	if (s->ntools == 0) {
		errf(err, errlen, "no workflow to serve");
		goto fail;
	}
	if (store_open(s->db, &s->st, err, errlen) != 0 ||
	    serve_owners_open(s, err, errlen) != 0)
		goto fail;
	if (serve_runs_init(s) != 0) {
		errf(err, errlen, "cannot make the run events");
		goto fail;
	}
	if (serve_coord_new(s, err, errlen) != 0)
		goto fail;
	if (serve_client_init(s) != 0) {
		errf(err, errlen, "cannot listen on 127.0.0.1 for runs");
		goto fail;
	}
	if (s->opts.verbose)
		fprintf(stderr, "weft: runs reach their MCP client at "
		    "http://127.0.0.1:%d/client/\n", s->client_port);
	if (s->opts.resume)
		serve_runs_resume(s);
	*out = s;
	return 0;
fail:
	serve_free(s);
	return -1;
}

void
serve_free(struct serve *s)
{
	int i;

	if (s == NULL)
		return;
	if (s->coord != NULL)
		serve_runs_stop(s, !s->opts.resume);
	serve_client_free(s);
	serve_runs_free(s);
	coord_free(s->coord);
	mcps_free(s->mcps);
	for (i = 0; i < s->ntools; i++) {
		free(s->tools[i].name);
		free(s->tools[i].path);
		json_decref(s->tools[i].meta);
		json_decref(s->tools[i].checked_input);
	}
	free(s->tools);
	serve_owners_close(s);
	store_close(s->st);
	free(s->db);
	free(s->exe);
	free(s);
}

struct mcps *
serve_mcps(struct serve *s)
{
	return s->mcps;
}

struct coord *
serve_coord(struct serve *s)
{
	return s->coord;
}

struct exec *
serve_exec(struct serve *s, struct serve_tool *t, const char *id,
    const char *input, const json_t *vars, exec_done_fn done, void *arg,
    char **cause)
{
	struct exec_spec sp;
	struct exec *x;
	int rc;

	exec_spec_init(&sp, EXEC_RUN);
	sp.workflow = t->path;
	sp.run_id = id;
	sp.input_text = input;
	sp.served = 1;
	x = exec_start(&sp, s->coord, s->st, vars, done, arg, &rc, cause);
	if (x != NULL)
		otlp_live_follow(exec_id(x));	/* the live OTLP export */
	return x;
}
