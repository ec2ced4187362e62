/*
 * lcore_run.c: the core functions through which the runner records a
 * run and hands work to the coordinator: events, task submission,
 * capability grants, span ids, and where a node was declared.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include "engine/coord.h"
#include "engine/replay.h"
#include "lua/luaeng_int.h"
#include "lua/luajson.h"

/* core.event(kind, span, parent, path, attempt, payload, tokens, cost) */
static int
l_event(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);
	struct crun *c = luaeng_need_run(L);
	int64_t seq;

	if (!lua_isnoneornil(L, 6))
		luaeng_check_json_text(L, 6, "event payload", &e->jb);
	seq = crun_event_text(c, luaL_checkstring(L, 1),
	    luaL_optinteger(L, 2, 0), luaL_optinteger(L, 3, 0),
	    luaL_optstring(L, 4, ""), (int)luaL_optinteger(L, 5, 0),
	    lua_isnoneornil(L, 6) ? NULL : e->jb.p, luaL_optinteger(L, 7, 0),
	    luaL_optnumber(L, 8, 0));
	lua_pushinteger(L, seq);
	return 1;
}

/* core.event_json(kind, span, parent, path, attempt, json_text, tokens,
   cost): the payload is JSON text the runner built itself. */
static int
l_event_json(lua_State *L)
{
	struct crun *c = luaeng_need_run(L);

	lua_pushinteger(L, crun_event_text(c, luaL_checkstring(L, 1),
	    luaL_optinteger(L, 2, 0), luaL_optinteger(L, 3, 0),
	    luaL_optstring(L, 4, ""), (int)luaL_optinteger(L, 5, 0),
	    luaL_checkstring(L, 6), luaL_optinteger(L, 7, 0),
	    luaL_optnumber(L, 8, 0)));
	return 1;
}

/*
 * core.event_kv(kind, span, parent, path, tokens, key1, value1, ...): an
 * event whose payload is the object of the pairs, given with their keys
 * in order (sorted, as every payload is); a nil value leaves its pair
 * out.  The runner's node events: no table to build, no keys to sort.
 */
static int
l_event_kv(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);
	struct crun *c = luaeng_need_run(L);
	struct jbuf *b = &e->jb;
	int top = lua_gettop(L), i, first = 1;
	const char *k;
	char err[256];
	size_t klen;

	b->len = 0;
	jbuf_put(b, "{", 1);
	for (i = 6; i + 1 <= top; i += 2) {
		if (lua_isnil(L, i + 1))
			continue;
		k = luaL_checklstring(L, i, &klen);
		if (!first)
			jbuf_put(b, ",", 1);
		first = 0;
		if (jbuf_string(b, k, klen, err, sizeof err) != 0)
			return luaL_error(L, "event payload: %s", err);
		jbuf_put(b, ":", 1);
		if (luajson_append(L, i + 1, b, err, sizeof err) != 0)
			return luaL_error(L, "event payload: %s", err);
	}
	jbuf_put(b, "}", 1);
	lua_pushinteger(L, crun_event_text(c, luaL_checkstring(L, 1),
	    luaL_optinteger(L, 2, 0), luaL_optinteger(L, 3, 0),
	    luaL_optstring(L, 4, ""), 0, b->p, luaL_optinteger(L, 5, 0), 0));
	return 1;
}

/*
 * An a2a.send's server.bearer_env (table at 5): the coordinator's
 * variable of that name as its Authorization header.  The task carries
 * the value to the worker; the run records neither (only the summary).
 */
static void
l_submit_secret(lua_State *L, const char *sname)
{
	const char *var, *val;

	lua_getfield(L, 5, "bearer_env");
	var = lua_tostring(L, -1);
	if (var == NULL) {
		lua_pop(L, 1);
		return;
	}
	if ((val = getenv(var)) == NULL || *val == '\0' ||
	    strpbrk(val, "\r\n") != NULL)
		luaL_error(L, "remote '%s': auth.bearer_env: the environment "
		    "variable %s is %s", sname, var, val == NULL || *val ==
		    '\0' ? "not set" : "not one line");
	lua_getfield(L, 5, "headers");
	if (!lua_istable(L, -1)) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_pushvalue(L, -1);
		lua_setfield(L, 5, "headers");
	}
	lua_pushfstring(L, "Bearer %s", val);
	lua_setfield(L, -2, "Authorization");
	lua_pop(L, 2);
	lua_pushnil(L);
	lua_setfield(L, 5, "bearer_env");
}

/*
 * The JSON text of the server spec at index 5 into sv.  The runner shares
 * one spec table among a server's tasks and never changes it, so its text
 * is kept beside it (a weak-keyed table) and encoded once.
 */
static void
l_submit_server(lua_State *L, struct jbuf *sv)
{
	static const char key = 0;
	const char *text;
	size_t len;

	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &key) != LUA_TTABLE) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_createtable(L, 0, 1);
		lua_pushliteral(L, "k");
		lua_setfield(L, -2, "__mode");
		lua_setmetatable(L, -2);
		lua_pushvalue(L, -1);
		lua_rawsetp(L, LUA_REGISTRYINDEX, &key);
	}
	lua_pushvalue(L, 5);
	if (lua_rawget(L, -2) == LUA_TSTRING) {
		text = lua_tolstring(L, -1, &len);
		sv->len = 0;
		jbuf_put(sv, text, len);
		lua_pop(L, 2);
		return;
	}
	lua_pop(L, 1);
	luaeng_check_json_text(L, 5, "task server", sv);
	lua_pushvalue(L, 5);
	lua_pushlstring(L, sv->p, sv->len);
	lua_rawset(L, -3);
	lua_pop(L, 1);
}

/*
 * An a2a.send in flight when the run being resumed stopped, whose remote
 * task the record has (replay_remote): "resume": {task, protocol} into
 * its params pa, so the worker asks for that task rather than sending
 * the message again.  The call's summary su (its key) stays the same.
 */
static void
l_submit_resume(struct crun *c, const char *path, struct jbuf *su,
    struct jbuf *pa)
{
	struct replay *rec = crun_replay(c);
	char hash[65], *text;
	json_t *rt;

	if (rec == NULL)
		return;
	replay_hash(su->p, NULL, hash);
	if ((rt = replay_remote(rec, path, hash)) == NULL ||
	    (text = json_dumps(rt, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		return;
	jbuf_put(pa, "\"resume\":", 9);
	jbuf_put(pa, text, strlen(text));
	jbuf_put(pa, ",", 1);
	free(text);
}

/* core.submit(kind, path, span, params, grant) -> ticket */
static int
l_submit(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);
	struct crun *c = luaeng_need_run(L);
	const char *sname;
	struct jbuf *sv = &e->jbs[0], *nm = &e->jbs[1], *ar = &e->jbs[2];
	struct jbuf *pa = &e->jbs[3], *su = &e->jbs[4];
	char err[128];
	int has_name, has_args, grant;

	luaL_checktype(L, 4, LUA_TTABLE);
	grant = (int)luaL_optinteger(L, 5, 0);
	lua_settop(L, 4);
	lua_getfield(L, 4, "server");			/* 5 */
	luaL_argcheck(L, lua_istable(L, 5), 4, "params.server missing");
	lua_getfield(L, 5, "name");			/* 6 */
	sname = lua_tostring(L, 6);
	luaL_argcheck(L, sname != NULL, 4, "params.server.name missing");
	lua_getfield(L, 4, "name");			/* 7 */
	lua_getfield(L, 4, "arguments");		/* 8 */
	has_name = !lua_isnil(L, 7);
	has_args = !lua_isnil(L, 8);
	if (strcmp(luaL_checkstring(L, 1), "a2a.send") == 0) {
		l_submit_secret(L, sname);
		luaeng_check_json_text(L, 5, "task server", sv);
	} else
		l_submit_server(L, sv);
	if (has_name)
		luaeng_check_json_text(L, 7, "tool name", nm);
	if (has_args)
		luaeng_check_json_text(L, 8, "tool arguments", ar);
	su->len = 0;
	jbuf_put(su, "\"server\":", 9);
	if (jbuf_string(su, sname, strlen(sname), err, sizeof err) != 0)
		return luaL_error(L, "server name: %s", err);
	if (has_name) {
		jbuf_put(su, ",\"name\":", 8);
		jbuf_put(su, nm->p, nm->len);
	}
	if (has_args) {
		jbuf_put(su, ",\"arguments\":", 13);
		jbuf_put(su, ar->p, ar->len);
	}
	/* params, keys sorted as everywhere: arguments, name, resume (an
	   a2a.send's), server */
	pa->len = 0;
	jbuf_put(pa, "{", 1);
	if (has_args) {
		jbuf_put(pa, "\"arguments\":", 12);
		jbuf_put(pa, ar->p, ar->len);
		jbuf_put(pa, ",", 1);
	}
	if (has_name) {
		jbuf_put(pa, "\"name\":", 7);
		jbuf_put(pa, nm->p, nm->len);
		jbuf_put(pa, ",", 1);
	}
	if (strcmp(luaL_checkstring(L, 1), "a2a.send") == 0)
		l_submit_resume(c, luaL_checkstring(L, 2), su, pa);
	jbuf_put(pa, "\"server\":", 9);
	jbuf_put(pa, sv->p, sv->len);
	jbuf_put(pa, "}", 1);
	lua_pushinteger(L, crun_submit(c, luaL_checkstring(L, 1),
	    luaL_checkstring(L, 2), luaL_optinteger(L, 3, 0), sname,
	    has_name ? lua_tostring(L, 7) : NULL, pa->p, sv->p, su->p,
	    grant));
	return 1;
}

/*
 * core.grant(parent, path, grant, eager) -> id | nil, message: a
 * capability grant for the node at path (engine/grant.h).
 */
static int
l_grant(lua_State *L)
{
	struct crun *c = luaeng_need_run(L);
	char err[512];
	json_t *g;
	int id;

	luaL_checktype(L, 3, LUA_TTABLE);
	if ((g = luajson_tree(L, 3, err, sizeof err)) == NULL)
		return luaL_error(L, "grant: %s", err);
	id = crun_grant(c, (int)luaL_checkinteger(L, 1), luaL_checkstring(L,
	    2), g, lua_toboolean(L, 4), err, sizeof err);
	json_decref(g);
	if (id < 0) {
		lua_pushnil(L);
		lua_pushstring(L, err);
		return 2;
	}
	lua_pushinteger(L, id);
	return 1;
}

/* core.span_base() -> the span id after which this run's spans go on */
static int
l_span_base(lua_State *L)
{
	lua_pushinteger(L, crun_span_base(luaeng_need_run(L)));
	return 1;
}

/* core.may_bound() -> whether a wide parallel may run its branches a few
   at a time (crun_may_bound) */
static int
l_may_bound(lua_State *L)
{
	lua_pushboolean(L, crun_may_bound(luaeng_need_run(L)));
	return 1;
}

/*
 * core.where(level) -> "file:line" of the function at level (counted as
 * debug.getinfo counts them), or, when that frame is C or gone (the
 * chunk tail-called a constructor: `return w.sequential{...}`), the
 * workflow file's last line run, else its name.  debug.getinfo would
 * build a table for each node a workflow makes.
 */
static int
l_where(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);
	lua_Debug ar;

	if (lua_getstack(L, (int)luaL_optinteger(L, 1, 3), &ar) &&
	    lua_getinfo(L, "Sl", &ar) && strcmp(ar.what, "C") != 0 &&
	    ar.currentline >= 0) {
		lua_pushfstring(L, "%s:%d", ar.short_src, ar.currentline);
		return 1;
	}
	if (e->load_line > 0)
		lua_pushfstring(L, "%s:%d", e->script_file, e->load_line);
	else
		lua_pushstring(L, e->script_file);
	return 1;
}

static int
l_script_dir(lua_State *L)
{
	lua_pushstring(L, luaeng_of(L)->script_dir);
	return 1;
}

/*
 * core.var(name) -> a value the run was given (luaeng_set_var: weft serve
 * gives each run the URL of its MCP client), else the environment's,
 * else nil
 */
static int
l_var(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);
	const char *name = luaL_checkstring(L, 1), *v;
	json_t *j = json_object_get(e->vars, name);

	if (json_is_string(j))
		lua_pushstring(L, json_string_value(j));
	else if ((v = getenv(name)) != NULL)
		lua_pushstring(L, v);
	else
		lua_pushnil(L);
	return 1;
}

static const luaL_Reg run_funcs[] = {
	{ "var", l_var },
	{ "event", l_event },
	{ "event_json", l_event_json },
	{ "event_kv", l_event_kv },
	{ "submit", l_submit },
	{ "grant", l_grant },
	{ "span_base", l_span_base },
	{ "may_bound", l_may_bound },
	{ "where", l_where },
	{ "script_dir", l_script_dir },
	{ NULL, NULL }
};

/* Open the library: events, tasks, grants, spans, source places. */
int
lcore_open_run(lua_State *L)
{
	luaL_setfuncs(L, run_funcs, 0);
	return 0;
}
