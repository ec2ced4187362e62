/*
 * mcp_server_catalog.c: what the tools of an MCP server declare besides
 * themselves: resources (static, or from templates with {name} variables),
 * resource subscriptions, prompts with {argument} substitution, and
 * completion of prompt arguments.  The backend adds its own resources.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "protocols/mcp_server_int.h"
#include "runtime/util.h"

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
		json_array_foreach(json_object_get(s->tools[i].decl,
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

void
mcps_resources_list(struct mcps_conn *cn, const json_t *id,
    const json_t *params, int templates)
{
	struct mcps_collect c = { json_array(), templates };
	size_t off;

	mcps_each_resource(cn->srv, mcps_collect_cb, &c);
	cn->srv->be->resources(cn->srv->arg, cn, templates, c.out);
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

void
mcps_resources_read(struct mcps_conn *cn, const json_t *id,
    const json_t *params)
{
	struct mcps_find f;

	memset(&f, 0, sizeof f);
	if ((f.uri = json_string_value(json_object_get(params, "uri"))) ==
	    NULL) {
		mcps_reply_error(cn, id, JRPC_INVALID_PARAMS,
		    "/params/uri: required, a string");
		return;
	}
	if (!cn->srv->be->read(cn->srv->arg, cn, f.uri, &f.contents))
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

void
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
		json_array_foreach(json_object_get(s->tools[i].decl,
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

void
mcps_prompts_list(struct mcps_conn *cn, const json_t *id,
    const json_t *params)
{
	struct mcps *s = cn->srv;
	json_t *all = json_array(), *p;
	size_t j, off;
	int i;

	for (i = 0; i < s->ntools; i++)
		json_array_foreach(json_object_get(s->tools[i].decl,
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

void
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
void
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
