/*
 * mcp_server.c: MCP server sessions: lifecycle, tools/list, resources,
 * prompts, completion, logging level.  tools/call is in mcp_runs.c.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/mcp_server_int.h"
#include "engine/schema.h"
#include "engine/store.h"
#include "runtime/util.h"

#define MCPS_PAGE	100
#define MCPS_RUNS_LISTED 100
#define MCPS_MAX_TOOLS	1024
#define MCPS_RUN_PREFIX	"weft://runs/"
#define MCPS_TRAJ_EVENTS 10000	/* events in a trajectory resource */

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

/* ---- loading workflows ------------------------------------------------ */

/* The tool name of a workflow: w.workflow's name, else the file's base. */
static char *
mcps_tool_name_of(const char *path, json_t *meta)
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
mcps_load_tool(struct mcps *s, const char *path, char *err, size_t errlen)
{
	struct mcps_tool *t;
	json_t *meta, *in;
	char e2[512];
	int i;

	if (s->ntools >= MCPS_MAX_TOOLS) {
		errf(err, errlen, "more than %d workflows", MCPS_MAX_TOOLS);
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
	t->name = mcps_tool_name_of(path, meta);
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
	return 0;
}

static int
mcps_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Load every *.lua file of dir, in name order. */
static int
mcps_load_dir(struct mcps *s, const char *dir, char *err, size_t errlen)
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
	while ((de = readdir(d)) != NULL && n < MCPS_MAX_TOOLS + 1) {
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
	qsort(names, n, sizeof *names, mcps_cmp_str);
	for (i = 0; i < n; i++) {
		p = xasprintf("%s/%s", dir, names[i]);
		if (rv == 0)
			rv = mcps_load_tool(s, p, err, errlen);
		free(p);
		free(names[i]);
	}
	free(names);
	return rv;
}

int
mcps_new(struct event_base *base, const struct mcps_opts *o,
    char *const *paths, int npaths, struct mcps **out, char *err,
    size_t errlen)
{
	struct mcps *s = xcalloc(1, sizeof *s);
	struct stat sb;
	int i;

	s->base = base;
	s->opts = *o;
	s->db = xstrdup(o->db);
	s->exe = xstrdup(o->exe);
	s->opts.db = s->db;
	s->opts.exe = s->exe;
	TAILQ_INIT(&s->runs);
	for (i = 0; i < npaths; i++) {
		if (stat(paths[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
			if (mcps_load_dir(s, paths[i], err, errlen) != 0)
				goto fail;
		} else if (mcps_load_tool(s, paths[i], err, errlen) != 0)
			goto fail;
	}
	if (s->ntools == 0) {
		errf(err, errlen, "no workflow to serve");
		goto fail;
	}
	if (store_open(s->db, &s->st, err, errlen) != 0 ||
	    mcps_owners_open(s, err, errlen) != 0)
		goto fail;
	if (mcps_runs_init(s) != 0) {
		errf(err, errlen, "cannot watch child processes");
		goto fail;
	}
	if (mcps_bridge_init(s) != 0) {
		errf(err, errlen, "cannot listen on 127.0.0.1 for runs");
		goto fail;
	}
	if (s->opts.verbose)
		fprintf(stderr, "weft: runs reach their MCP client at "
		    "http://127.0.0.1:%d/client/\n", s->bridge_port);
	*out = s;
	return 0;
fail:
	mcps_free(s);
	return -1;
}

void
mcps_free(struct mcps *s)
{
	int i;

	if (s == NULL)
		return;
	mcps_bridge_free(s);
	mcps_runs_free(s);
	for (i = 0; i < s->ntools; i++) {
		free(s->tools[i].name);
		free(s->tools[i].path);
		json_decref(s->tools[i].meta);
		json_decref(s->tools[i].checked_input);
	}
	free(s->tools);
	mcps_owners_close(s);
	store_close(s->st);
	free(s->db);
	free(s->exe);
	free(s);
}

int
mcps_busy(const struct mcps *s)
{
	return s->nruns;
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
	return cn;
}

void
mcps_conn_set_owner(struct mcps_conn *cn, const char *owner, int operator)
{
	free(cn->owner);
	cn->owner = owner != NULL ? xstrdup(owner) : NULL;
	cn->operator = operator;
}

void
mcps_conn_free(struct mcps_conn *cn)
{
	if (cn == NULL)
		return;
	mcps_runs_detach(cn->srv, cn);
	mcps_bridge_detach(cn->srv, cn);
	json_decref(cn->subs);
	free(cn->owner);
	free(cn);
}

int
mcps_conn_initialized(const struct mcps_conn *cn)
{
	return cn->initialized;
}

/* Parse a pagination cursor (a decimal offset we gave out). */
static int
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
static json_t *
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
	if ((v = json_object_get(t->meta, "title")) != NULL)
		json_object_set(e, "title", v);
	if ((v = json_object_get(t->meta, "description")) != NULL)
		json_object_set(e, "description", v);
	else
		json_object_set_new(e, "description", json_sprintf(
		    "Run the weft workflow %s", t->path));
	if ((v = json_object_get(t->meta, "input_schema")) != NULL)
		json_object_set(e, "inputSchema", v);
	else
		json_object_set_new(e, "inputSchema", json_pack("{s:s}",
		    "type", "object"));
	if ((v = json_object_get(t->meta, "output_schema")) != NULL)
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
	char err[512];
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
	if (s->tools[i].checked_input != NULL &&
	    schema_validate(s->tools[i].checked_input, args, err,
	    sizeof err) != 0) {
		mcps_reply(cn, id, mcps_tool_error("invalid arguments for "
		    "'%s': %s", name, err));
		json_decref(args);
		return;
	}
	mcps_run_start(cn, &s->tools[i], id, args, tok);
	json_decref(args);
}

/* ---- resources --------------------------------------------------------- */

static int
mcps_list_run_cb(void *arg, const struct store_run *r)
{
	json_t *a = arg;

	json_array_append_new(a, json_pack("{s:s+, s:s+, s:s++, s:s}",
	    "uri", MCPS_RUN_PREFIX, r->id, "name", "run ", r->id,
	    "description", r->workflow, ": ", r->status,
	    "mimeType", "application/json"));
	return 0;
}

/* Resource fields of a w.workflow entry in MCP form. */
static json_t *
mcps_resource_entry(const json_t *r, const char *urikey, const char *mcpkey)
{
	json_t *e = json_object(), *v;

	json_object_set(e, mcpkey, json_object_get(r, urikey));
	json_object_set(e, "name", json_object_get(r, "name"));
	if ((v = json_object_get(r, "title")) != NULL)
		json_object_set(e, "title", v);
	if ((v = json_object_get(r, "description")) != NULL)
		json_object_set(e, "description", v);
	if ((v = json_object_get(r, "mime_type")) != NULL)
		json_object_set(e, "mimeType", v);
	return e;
}

/* Call fn for every declared resource of every tool. */
static void
mcps_each_resource(struct mcps *s, void (*fn)(void *, json_t *), void *arg)
{
	json_t *r;
	size_t j;
	int i;

	for (i = 0; i < s->ntools; i++)
		json_array_foreach(json_object_get(s->tools[i].meta,
		    "resources"), j, r)
			fn(arg, r);
}

struct mcps_collect {
	json_t		*out;
	int		 templates;
};

static void
mcps_collect_cb(void *arg, json_t *r)
{
	struct mcps_collect *c = arg;

	if (c->templates && json_object_get(r, "uri_template") != NULL)
		json_array_append_new(c->out, mcps_resource_entry(r,
		    "uri_template", "uriTemplate"));
	else if (!c->templates && json_object_get(r, "uri") != NULL)
		json_array_append_new(c->out, mcps_resource_entry(r, "uri",
		    "uri"));
}

static void
mcps_resources_list(struct mcps_conn *cn, const json_t *id,
    const json_t *params, int templates)
{
	struct mcps_collect c = { json_array(), templates };
	size_t off;

	mcps_each_resource(cn->srv, mcps_collect_cb, &c);
	if (templates)
		json_array_append_new(c.out, json_pack("{s:s, s:s, s:s, s:s}",
		    "uriTemplate", MCPS_RUN_PREFIX "{id}", "name", "run",
		    "description", "The trajectory of a weft run: the run "
		    "row and every recorded event", "mimeType",
		    "application/json"));
	else if (cn->operator)
		store_runs_list(cn->srv->st, MCPS_RUNS_LISTED,
		    mcps_list_run_cb, c.out);
	else if (cn->owner != NULL)
		mcps_owner_runs(cn->srv, cn->owner, MCPS_RUNS_LISTED,
		    mcps_list_run_cb, c.out);
	if (mcps_cursor(params, json_array_size(c.out), &off) != 0) {
		json_decref(c.out);
		mcps_reply_error(cn, id, JRPC_INVALID_PARAMS,
		    "/params/cursor: not a cursor this server gave");
		return;
	}
	mcps_reply(cn, id, mcps_page(c.out, off, templates ?
	    "resourceTemplates" : "resources"));
}

/*
 * Match uri against a template of literal text and {name} variables (a
 * variable matches one or more characters other than '/').  Fills vars.
 */
static int
mcps_template_match(const char *tpl, const char *uri, json_t *vars)
{
	const char *close, *end;
	char *name;

	while (*tpl != '\0') {
		if (*tpl != '{') {
			if (*tpl++ != *uri++)
				return 0;
			continue;
		}
		if ((close = strchr(tpl, '}')) == NULL)
			return 0;
		for (end = uri; *end != '\0' && *end != '/' &&
		    (close[1] == '\0' || *end != close[1]); end++)
			;
		if (end == uri)
			return 0;
		name = xstrndup(tpl + 1, close - tpl - 1);
		json_object_set_new(vars, name, json_stringn(uri, end - uri));
		free(name);
		tpl = close + 1;
		uri = end;
	}
	return *uri == '\0';
}

/*
 * Replace {name} in text by vars[name] (strings only; other braces stay).
 * With json_escape the value is escaped as inside a JSON string.
 */
static char *
mcps_subst(const char *text, const json_t *vars, int json_escape)
{
	size_t cap = strlen(text) + 64, len = 0, n;
	char *out = xmalloc(cap), *name, *esc = NULL;
	const char *close, *v;
	json_t *j;

	while (*text != '\0') {
		v = NULL;
		if (*text == '{' && (close = strchr(text, '}')) != NULL) {
			name = xstrndup(text + 1, close - text - 1);
			v = json_string_value(json_object_get(vars, name));
			free(name);
		}
		if (v != NULL && json_escape) {
			j = json_string(v);
			esc = json_dumps(j, JSON_ENCODE_ANY);
			json_decref(j);
			esc[strlen(esc) - 1] = '\0';
			v = esc + 1;
		}
		n = v != NULL ? strlen(v) : 1;
		if (len + n + 1 > cap) {
			cap = (len + n + 1) * 2;
			out = xrealloc(out, cap);
		}
		memcpy(out + len, v != NULL ? v : text, n);
		len += n;
		text = v != NULL ? close + 1 : text + 1;
		free(esc);
		esc = NULL;
	}
	out[len] = '\0';
	return out;
}

struct mcps_find {
	const char	*uri;
	json_t		*contents;
};

static void
mcps_find_cb(void *arg, json_t *r)
{
	struct mcps_find *f = arg;
	const char *u = json_string_value(json_object_get(r, "uri"));
	const char *tpl = json_string_value(json_object_get(r, "uri_template"));
	const char *mime = json_string_value(json_object_get(r, "mime_type"));
	json_t *vars = json_object(), *c;
	char *text;

	if (f->contents != NULL || !(u != NULL ? strcmp(u, f->uri) == 0 :
	    mcps_template_match(tpl, f->uri, vars))) {
		json_decref(vars);
		return;
	}
	c = json_pack("{s:s}", "uri", f->uri);
	if (mime != NULL)
		json_object_set_new(c, "mimeType", json_string(mime));
	if (json_object_get(r, "blob") != NULL)
		json_object_set(c, "blob", json_object_get(r, "blob"));
	else {
		text = mcps_subst(json_string_value(json_object_get(r, "text")),
		    vars, mime != NULL && strstr(mime, "json") != NULL);
		json_object_set_new(c, "text", json_string(text));
		free(text);
	}
	f->contents = json_pack("[o]", c);
	json_decref(vars);
}

/* A trajectory being read: its events, and the bytes they take. */
struct mcps_traj {
	json_t		*run;
	json_t		*events;
	size_t		 bytes;
	size_t		 max;
};

static int
mcps_traj_event_cb(void *arg, const struct store_event *e)
{
	struct mcps_traj *t = arg;
	json_t *ev, *p = NULL;
	size_t n = 64 + strlen(e->kind) + (e->node_path ?
	    strlen(e->node_path) : 0) + (e->payload ? strlen(e->payload) : 0);

	if (json_array_size(t->events) >= MCPS_TRAJ_EVENTS ||
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
mcps_traj_run_cb(void *arg, const struct store_run *r)
{
	struct mcps_traj *t = arg;
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

char *
mcps_run_trajectory(struct mcps *s, const char *id)
{
	struct mcps_traj t;
	char *text;

	memset(&t, 0, sizeof t);
	t.max = s->opts.max_resource ? s->opts.max_resource :
	    MCPS_MAX_RESOURCE;
	if (strlen(id) != 16 || strspn(id, "0123456789abcdef") != 16 ||
	    store_run_find(s->st, id, mcps_traj_run_cb, &t) != 0 ||
	    t.run == NULL) {
		json_decref(t.run);
		return NULL;
	}
	t.events = json_array();
	if (store_events_foreach(s->st, id, mcps_traj_event_cb, &t) == 1)
		json_object_set_new(t.run, "truncated", json_sprintf("only the "
		    "first %zu events (a resource holds at most %d events and "
		    "%zu bytes): weft show %s --json has them all",
		    json_array_size(t.events), MCPS_TRAJ_EVENTS, t.max, id));
	json_object_set_new(t.run, "events", t.events);
	text = json_dumps(t.run, JSON_COMPACT);
	json_decref(t.run);
	return text;
}

static void
mcps_resources_read(struct mcps_conn *cn, const json_t *id,
    const json_t *params)
{
	struct mcps_find f;
	char *text;

	memset(&f, 0, sizeof f);
	if ((f.uri = json_string_value(json_object_get(params, "uri"))) ==
	    NULL) {
		mcps_reply_error(cn, id, JRPC_INVALID_PARAMS,
		    "/params/uri: required, a string");
		return;
	}
	if (strncmp(f.uri, MCPS_RUN_PREFIX, strlen(MCPS_RUN_PREFIX)) == 0) {
		/* Another client's run is as absent as a run never made. */
		text = mcps_run_visible(cn, f.uri + strlen(MCPS_RUN_PREFIX)) ?
		    mcps_run_trajectory(cn->srv, f.uri +
		    strlen(MCPS_RUN_PREFIX)) : NULL;
		if (text != NULL)
			f.contents = json_pack("[{s:s, s:s, s:s}]", "uri",
			    f.uri, "mimeType", "application/json", "text",
			    text);
		free(text);
	} else
		mcps_each_resource(cn->srv, mcps_find_cb, &f);
	if (f.contents == NULL) {
		json_t *msg = jrpc_error(json_deep_copy(id), -32002,
		    "resource not found", json_pack("{s:s}", "uri", f.uri));

		cn->send(cn->arg, msg, id, 1);
		json_decref(msg);
		return;
	}
	mcps_reply(cn, id, json_pack("{s:o}", "contents", f.contents));
}

static void
mcps_subscribe(struct mcps_conn *cn, const json_t *id, const json_t *params,
    int on)
{
	const char *uri = json_string_value(json_object_get(params, "uri"));

	if (uri == NULL) {
		mcps_reply_error(cn, id, JRPC_INVALID_PARAMS,
		    "/params/uri: required, a string");
		return;
	}
	if (on && json_object_size(cn->subs) < 1024)
		json_object_set_new(cn->subs, uri, json_true());
	else if (!on)
		json_object_del(cn->subs, uri);
	mcps_reply(cn, id, json_object());
}

/* ---- prompts ----------------------------------------------------------- */

/* The declared prompt named name, or NULL. */
static json_t *
mcps_prompt(struct mcps *s, const char *name)
{
	json_t *p;
	size_t j;
	int i;

	for (i = 0; name != NULL && i < s->ntools; i++)
		json_array_foreach(json_object_get(s->tools[i].meta,
		    "prompts"), j, p)
			if (strcmp(json_string_value(json_object_get(p,
			    "name")), name) == 0)
				return p;
	return NULL;
}

static json_t *
mcps_prompt_entry(const json_t *p)
{
	json_t *e = json_object(), *args, *a, *v;
	size_t i;

	json_object_set(e, "name", json_object_get(p, "name"));
	if ((v = json_object_get(p, "title")) != NULL)
		json_object_set(e, "title", v);
	if ((v = json_object_get(p, "description")) != NULL)
		json_object_set(e, "description", v);
	if ((args = json_object_get(p, "arguments")) != NULL) {
		v = json_array();
		json_array_foreach(args, i, a)
			json_array_append_new(v, json_pack("{s:O, s:O?, s:b}",
			    "name", json_object_get(a, "name"), "description",
			    json_object_get(a, "description"), "required",
			    json_is_true(json_object_get(a, "required"))));
		json_object_set_new(e, "arguments", v);
	}
	return e;
}

static void
mcps_prompts_list(struct mcps_conn *cn, const json_t *id,
    const json_t *params)
{
	struct mcps *s = cn->srv;
	json_t *all = json_array(), *p;
	size_t j, off;
	int i;

	for (i = 0; i < s->ntools; i++)
		json_array_foreach(json_object_get(s->tools[i].meta,
		    "prompts"), j, p)
			json_array_append_new(all, mcps_prompt_entry(p));
	if (mcps_cursor(params, json_array_size(all), &off) != 0) {
		json_decref(all);
		mcps_reply_error(cn, id, JRPC_INVALID_PARAMS,
		    "/params/cursor: not a cursor this server gave");
		return;
	}
	mcps_reply(cn, id, mcps_page(all, off, "prompts"));
}

/* A deep copy of v with {arg} replaced in every string. */
static json_t *
mcps_subst_json(const json_t *v, const json_t *args)
{
	json_t *out, *x;
	const char *k;
	size_t i;
	char *s;

	if (json_is_string(v)) {
		s = mcps_subst(json_string_value(v), args, 0);
		out = json_string(s);
		free(s);
		return out;
	}
	if (json_is_object(v)) {
		out = json_object();
		json_object_foreach((json_t *)v, k, x)
			json_object_set_new(out, k, mcps_subst_json(x, args));
		return out;
	}
	if (json_is_array(v)) {
		out = json_array();
		json_array_foreach(v, i, x)
			json_array_append_new(out, mcps_subst_json(x, args));
		return out;
	}
	return json_deep_copy(v);
}

static void
mcps_prompts_get(struct mcps_conn *cn, const json_t *id, const json_t *params)
{
	const char *name = json_string_value(json_object_get(params, "name"));
	json_t *p = mcps_prompt(cn->srv, name), *args, *a, *r;
	size_t i;

	if (p == NULL) {
		mcps_reply_error(cn, id, JRPC_INVALID_PARAMS,
		    "unknown prompt '%s'", name ? name : "(no name)");
		return;
	}
	args = json_object_get(params, "arguments");
	if (args != NULL && !json_is_object(args)) {
		mcps_reply_error(cn, id, JRPC_INVALID_PARAMS,
		    "/params/arguments: must be an object of strings");
		return;
	}
	json_array_foreach(json_object_get(p, "arguments"), i, a)
		if (json_is_true(json_object_get(a, "required")) &&
		    !json_is_string(json_object_get(args, json_string_value(
		    json_object_get(a, "name"))))) {
			mcps_reply_error(cn, id, JRPC_INVALID_PARAMS,
			    "prompt '%s' needs argument '%s'", name,
			    json_string_value(json_object_get(a, "name")));
			return;
		}
	r = json_pack("{s:o}", "messages", mcps_subst_json(json_object_get(p,
	    "messages"), args));
	if (json_object_get(p, "description") != NULL)
		json_object_set(r, "description", json_object_get(p,
		    "description"));
	mcps_reply(cn, id, r);
}

/* completion/complete: the declared `complete` values with the prefix. */
static void
mcps_complete(struct mcps_conn *cn, const json_t *id, const json_t *params)
{
	const json_t *ref = json_object_get(params, "ref");
	const char *type = json_string_value(json_object_get(ref, "type"));
	const char *arg = json_string_value(json_object_get(json_object_get(
	    params, "argument"), "name"));
	const char *val = json_string_value(json_object_get(json_object_get(
	    params, "argument"), "value"));
	json_t *p, *a, *v, *values = json_array();
	size_t i, j;

	if (type == NULL || arg == NULL || val == NULL) {
		json_decref(values);
		mcps_reply_error(cn, id, JRPC_INVALID_PARAMS, "/params: needs "
		    "ref {type, ...} and argument {name, value}");
		return;
	}
	if (strcmp(type, "ref/prompt") == 0) {
		if ((p = mcps_prompt(cn->srv, json_string_value(
		    json_object_get(ref, "name")))) == NULL) {
			json_decref(values);
			mcps_reply_error(cn, id, JRPC_INVALID_PARAMS,
			    "/params/ref/name: no such prompt");
			return;
		}
		json_array_foreach(json_object_get(p, "arguments"), i, a) {
			if (!json_equal(json_object_get(a, "name"),
			    json_object_get(json_object_get(params, "argument"),
			    "name")))
				continue;
			json_array_foreach(json_object_get(a, "complete"), j, v)
				if (json_is_string(v) && strncmp(
				    json_string_value(v), val, strlen(val)) == 0
				    && json_array_size(values) < 100)
					json_array_append(values, v);
		}
	}
	mcps_reply(cn, id, json_pack("{s:{s:o, s:I, s:b}}", "completion",
	    "values", values, "total", (json_int_t)json_array_size(values),
	    "hasMore", 0));
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
			mcps_run_cancel(cn, json_object_get(msg->params,
			    "requestId"));
		break;
	default:
		/* The answer to a request of ours (mcp_bridge.c); one to
		   nothing we asked is dropped. */
		mcps_bridge_response(cn, msg);
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
