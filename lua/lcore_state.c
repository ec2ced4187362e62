/*
 * lcore_state.c: state handles (userdata holding a struct state *,
 * engine/state.h): new, fork, get, set, snapshot, merge with reducers,
 * and rendering a template against a state (engine/template.h).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include "engine/state.h"
#include "engine/template.h"
#include "runtime/util.h"
#include "lua/luaeng_int.h"
#include "lua/luajson.h"

static const char STATE_MT[] = "weft.state";

/* State handles: full userdata holding a struct state *. */
static struct state **
check_state(lua_State *L, int idx)
{
	struct state **sp = luaL_checkudata(L, idx, STATE_MT);

	if (*sp == NULL)
		luaL_error(L, "state handle already freed");
	return sp;
}

static int
l_state_gc(lua_State *L)
{
	struct state **sp = luaL_checkudata(L, 1, STATE_MT);

	state_free(*sp);
	*sp = NULL;
	return 0;
}

/* Push a new handle for st; parent_idx keeps the parent alive. */
static void
push_state(lua_State *L, struct state *st, int parent_idx)
{
	struct state **sp = lua_newuserdatauv(L, sizeof *sp, 1);

	*sp = st;
	luaL_setmetatable(L, STATE_MT);
	if (parent_idx != 0) {
		lua_pushvalue(L, parent_idx);
		lua_setiuservalue(L, -2, 1);
	}
}

static int
l_state_new(lua_State *L)
{
	json_t *init = lua_isnoneornil(L, 1) ? json_object() :
	    luaeng_check_json(L, 1, "initial state");

	if (!json_is_object(init)) {
		json_decref(init);
		return luaL_error(L, "the run input must be a JSON object");
	}
	push_state(L, state_new(init), 0);
	json_decref(init);
	return 1;
}

static int
l_state_fork(lua_State *L)
{
	struct state **sp = check_state(L, 1);

	push_state(L, state_fork(*sp), 1);
	return 1;
}

static int
l_state_get(lua_State *L)
{
	struct state **sp = check_state(L, 1);
	json_t *v = state_get(*sp, luaL_checkstring(L, 2));

	if (v == NULL)
		lua_pushnil(L);
	else
		luajson_push(L, v);
	return 1;
}

/* core.state_set(st, key, value) -> true | nil, why value is not JSON */
static int
l_state_set(lua_State *L)
{
	struct state **sp = check_state(L, 1);
	const char *key = luaL_checkstring(L, 2);
	char err[256];
	json_t *v = luajson_tree(L, 3, err, sizeof err);

	if (v == NULL)
		return luaeng_ok_or_err(L, -1, err);
	state_set(*sp, key, v);
	lua_pushboolean(L, 1);
	return 1;
}

static int
l_state_snapshot(lua_State *L)
{
	struct state **sp = check_state(L, 1);
	json_t *j = state_snapshot(*sp);

	luajson_push(L, j);
	json_decref(j);
	return 1;
}

/*
 * core.state_delta(st) -> the keys this view wrote and their values, or
 * nil when it wrote none (a map keeps only the writes of its ended items,
 * not their views).
 */
static int
l_state_delta(lua_State *L)
{
	struct state **sp = check_state(L, 1);
	json_t *d = state_delta(*sp);

	if (json_object_size(d) == 0)
		lua_pushnil(L);
	else
		luajson_push(L, d);
	return 1;
}

/* Reducers for state_merge: a Lua table key -> name or function. */
struct lua_reducers {
	lua_State	*L;
	int		 idx;
};

static enum state_reducer
lua_reducer_kind_cb(void *arg, const char *key)
{
	struct lua_reducers *r = arg;
	lua_State *L = r->L;
	enum state_reducer k = STATE_REDUCE_NONE;
	const char *s;

	lua_getfield(L, r->idx, key);
	if (lua_isfunction(L, -1))
		k = STATE_REDUCE_CUSTOM;
	else if ((s = lua_tostring(L, -1)) != NULL) {
		if (strcmp(s, "append") == 0)
			k = STATE_REDUCE_APPEND;
		else if (strcmp(s, "merge") == 0)
			k = STATE_REDUCE_MERGE;
		else if (strcmp(s, "sum") == 0)
			k = STATE_REDUCE_SUM;
	}
	lua_pop(L, 1);
	return k;
}

static int
lua_reducer_custom_cb(void *arg, const char *key, json_t *acc, json_t *val,
    json_t **out, char *err, size_t errlen)
{
	struct lua_reducers *r = arg;
	lua_State *L = r->L;
	json_t *j;

	lua_getfield(L, r->idx, key);
	if (acc != NULL)
		luajson_push(L, acc);
	else
		lua_pushnil(L);
	luajson_push(L, val);
	if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
		errf(err, errlen, "reducer for '%s': %s", key,
		    lua_tostring(L, -1));
		lua_pop(L, 1);
		return -1;
	}
	j = luajson_tree(L, -1, err, errlen);
	lua_pop(L, 1);
	if (j == NULL)
		return -1;
	*out = j;
	return 0;
}

/* core.state_merge(parent, name, names, states, reducers) -> true | nil, err */
static int
l_state_merge(lua_State *L)
{
	struct state **parent = check_state(L, 1);
	const char *name = luaL_checkstring(L, 2);
	struct state_reducers sr;
	struct lua_reducers lr;
	struct state_branch *br;
	char err[512];
	lua_Integer n, i;
	int rv;

	luaL_checktype(L, 3, LUA_TTABLE);
	luaL_checktype(L, 4, LUA_TTABLE);
	luaL_checktype(L, 5, LUA_TTABLE);
	n = (lua_Integer)lua_rawlen(L, 3);
	br = xcalloc((size_t)n + 1, sizeof *br);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, 3, i);
		br[i - 1].name = lua_tostring(L, -1);
		lua_pop(L, 1);	/* the names table keeps the string alive */
		lua_rawgeti(L, 4, i);
		br[i - 1].st = *check_state(L, -1);
		lua_pop(L, 1);
	}
	lr.L = L;
	lr.idx = 5;
	sr.kind = lua_reducer_kind_cb;
	sr.custom = lua_reducer_custom_cb;
	sr.arg = &lr;
	rv = state_merge(*parent, name, br, (size_t)n, &sr, err, sizeof err);
	free(br);
	return luaeng_ok_or_err(L, rv, err);
}

/* core.render(template, state) -> string | nil, err */
static int
l_render(lua_State *L)
{
	const char *tmpl = luaL_checkstring(L, 1);
	struct state **sp = check_state(L, 2);
	char *out = NULL, err[256];

	if (template_render(tmpl, *sp, &out, NULL, err, sizeof err) != 0) {
		lua_pushnil(L);
		lua_pushstring(L, err);
		return 2;
	}
	lua_pushstring(L, out);
	free(out);
	return 1;
}

static const luaL_Reg state_funcs[] = {
	{ "state_new", l_state_new },
	{ "state_fork", l_state_fork },
	{ "state_get", l_state_get },
	{ "state_set", l_state_set },
	{ "state_snapshot", l_state_snapshot },
	{ "state_merge", l_state_merge },
	{ "state_delta", l_state_delta },
	{ "render", l_render },
	{ NULL, NULL }
};

/* Open the library: the handles' metatable and the state functions. */
int
lcore_open_state(lua_State *L)
{
	luaL_newmetatable(L, STATE_MT);
	lua_pushcfunction(L, l_state_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
	luaL_setfuncs(L, state_funcs, 0);
	return 0;
}
