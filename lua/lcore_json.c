/*
 * lcore_json.c: JSON for the runner: checking, encoding, decoding and
 * copying values, marking arrays, and JSON Schema checks
 * (engine/schema.h).
 */
#include "config.h"

#include <lua.h>
#include <lauxlib.h>

#include "engine/schema.h"
#include "lua/luaeng_int.h"
#include "lua/luajson.h"

/* core.json_check(v) -> true | nil, why v cannot be JSON (with its path) */
static int
l_json_check(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);
	char err[256];

	e->jb.len = 0;
	if (luajson_append(L, 1, &e->jb, err, sizeof err) != 0)
		return luaeng_ok_or_err(L, -1, err);
	lua_pushboolean(L, 1);
	return 1;
}

static int
l_json_encode(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);

	luaeng_check_json_text(L, 1, "json_encode", &e->jb);
	lua_pushlstring(L, e->jb.p, e->jb.len);
	return 1;
}

/* core.json_copy(v): a deep copy through JSON (nil stays nil). */
static int
l_json_copy(lua_State *L)
{
	json_t *j;

	if (lua_isnoneornil(L, 1)) {
		lua_pushnil(L);
		return 1;
	}
	j = luaeng_check_json(L, 1, "json_copy");
	luajson_push(L, j);
	json_decref(j);
	return 1;
}

static int
l_array(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	luajson_push_array_mt(L);
	lua_setmetatable(L, 1);
	return 1;
}

/* core.schema_check(schema, where) -> true | nil, err */
static int
l_schema_check(lua_State *L)
{
	const char *where = luaL_checkstring(L, 2);
	char err[512];
	json_t *j = luajson_tree(L, 1, err, sizeof err);
	int rv;

	if (j == NULL) {
		lua_pushnil(L);
		lua_pushfstring(L, "%s: %s", where, err);
		return 2;
	}
	rv = schema_check(j, where, err, sizeof err);
	json_decref(j);
	return luaeng_ok_or_err(L, rv, err);
}

/* core.schema_validate(schema, value) -> true | nil, err */
static int
l_schema_validate(lua_State *L)
{
	char err[512];
	json_t *s = luaeng_check_json(L, 1, "schema");
	json_t *v = luaeng_check_json(L, 2, "value");
	int rv = schema_validate(s, v, err, sizeof err);

	json_decref(s);
	json_decref(v);
	return luaeng_ok_or_err(L, rv, err);
}

/* core.json_decode(text) -> value | nil, err */
static int
l_json_decode(lua_State *L)
{
	size_t len;
	const char *text = luaL_checklstring(L, 1, &len);
	json_error_t je;
	json_t *j = json_loadb(text, len, JSON_DECODE_ANY, &je);

	if (j == NULL) {
		lua_pushnil(L);
		lua_pushfstring(L, "line %d, column %d: %s", je.line,
		    je.column, je.text);
		return 2;
	}
	luajson_push(L, j);
	json_decref(j);
	return 1;
}

static const luaL_Reg json_funcs[] = {
	{ "json_check", l_json_check },
	{ "json_encode", l_json_encode },
	{ "json_copy", l_json_copy },
	{ "json_decode", l_json_decode },
	{ "array", l_array },
	{ "schema_check", l_schema_check },
	{ "schema_validate", l_schema_validate },
	{ NULL, NULL }
};

/* Open the library: JSON values and schemas. */
int
lcore_open_json(lua_State *L)
{
	luaL_setfuncs(L, json_funcs, 0);
	return 0;
}
