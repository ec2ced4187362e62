/*
 * luasandbox.c: the environment workflow code runs in: the safe base
 * functions, copies of string, table, utf8 and math (without its
 * generator), require of "weft" only, print to stderr, setmetatable
 * without __gc, and errors naming the recorded alternative for os, io
 * and math.random.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include "runtime/util.h"
#include "lua/luaeng_int.h"

/* require() for workflows: only "weft". */
static int
l_sandbox_require(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);

	if (strcmp(name, "weft") != 0)
		return luaL_error(L, "module '%s' is not available to workflows "
		    "(only \"weft\")", name);
	lua_rawgeti(L, LUA_REGISTRYINDEX, luaeng_of(L)->weft_ref);
	return 1;
}

/* print() for workflows: to stderr, so stdout keeps the run's answer. */
static int
l_sandbox_print(lua_State *L)
{
	int i, n = lua_gettop(L);

	for (i = 1; i <= n; i++) {
		if (i > 1)
			fputc('\t', stderr);
		fputs(luaL_tolstring(L, i, NULL), stderr);
		lua_pop(L, 1);
	}
	fputc('\n', stderr);
	return 0;
}

/*
 * __index of the workflow environment and of its math table: the names
 * that would make a run nondeterministic (docs/durability.md) raise an
 * error at the caller's file:line naming the recorded alternative; other
 * missing names are nil as usual.
 */
static int
l_sandbox_index(lua_State *L)
{
	static const struct {
		const char	*name, *why;
	} hidden[] = {
		{ "os", "'os' is not available to workflow code: use w.now() "
		    "for the time (os.time, os.clock, os.date), recorded so "
		    "that resume and replay see the same value; pass "
		    "settings in the run's input" },
		{ "io", "'io' is not available to workflow code: pass data in "
		    "the run's input, or read files through an MCP tool "
		    "(w.mcp)" },
		{ "random", "math.random is not available to workflow code: "
		    "use w.random([m [, n]]), recorded so that resume and "
		    "replay see the same numbers" },
		{ "randomseed", "math.randomseed is not available to workflow "
		    "code: w.random() needs no seed, and replay answers it "
		    "from the record" },
	};
	const char *k = lua_tostring(L, 2);
	size_t i;

	if (k == NULL || lua_type(L, 2) != LUA_TSTRING)
		return 0;
	for (i = 0; i < nitems(hidden); i++) {
		/* os and io at the top level, the rest in math. */
		if (strcmp(k, hidden[i].name) != 0 || (i < 2) !=
		    lua_toboolean(L, lua_upvalueindex(1)))
			continue;
		return luaL_error(L, "%s", hidden[i].why);
	}
	return 0;
}

/*
 * setmetatable() for workflows: as Lua's, without __gc.  Lua runs a
 * finalizer with hooks off (during a collection, or when the state
 * closes), so no time limit could stop one that loops.
 */
static int
l_sandbox_setmetatable(lua_State *L)
{
	int t = lua_type(L, 2);

	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2,
	    "nil or table");
	if (t == LUA_TTABLE) {
		lua_pushliteral(L, "__gc");
		if (lua_rawget(L, 2) != LUA_TNIL)
			return luaL_error(L, "__gc metamethods are not "
			    "available to workflow code (a finalizer runs "
			    "where the time limit cannot stop it)");
		lua_pop(L, 1);
	}
	if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
		return luaL_error(L, "cannot change a protected metatable");
	lua_settop(L, 2);
	lua_setmetatable(L, 1);
	return 1;
}

/* Give the table on top of the stack the guarding __index. */
static void
sandbox_guard(lua_State *L, int top)
{
	lua_newtable(L);
	lua_pushboolean(L, top);
	lua_pushcclosure(L, l_sandbox_index, 1);
	lua_setfield(L, -2, "__index");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
}

/* Push the environment workflow code runs in. */
void
luaeng_push_sandbox(lua_State *L)
{
	static const char *const base[] = { "assert", "error", "ipairs", "next",
	    "pairs", "pcall", "rawequal", "rawget", "rawlen", "rawset",
	    "select", "getmetatable", "tonumber", "tostring",
	    "type", "xpcall", "_VERSION", NULL };
	static const char *const libs[] = { "string", "table", "utf8", NULL };
	int i;

	lua_newtable(L);
	for (i = 0; base[i] != NULL; i++) {
		lua_getglobal(L, base[i]);
		lua_setfield(L, -2, base[i]);
	}
	/* Copies, so workflow code cannot change what the library uses. */
	for (i = 0; libs[i] != NULL; i++) {
		lua_newtable(L);
		lua_getglobal(L, libs[i]);
		lua_pushnil(L);
		while (lua_next(L, -2) != 0) {
			lua_pushvalue(L, -2);
			lua_insert(L, -2);
			lua_settable(L, -5);
		}
		lua_pop(L, 1);
		lua_setfield(L, -2, libs[i]);
	}
	/* math without its generator: w.random() is the recorded one. */
	lua_newtable(L);
	lua_getglobal(L, "math");
	lua_pushnil(L);
	while (lua_next(L, -2) != 0) {
		const char *k = lua_tostring(L, -2);

		if (strcmp(k, "random") != 0 && strcmp(k, "randomseed") != 0) {
			lua_pushvalue(L, -2);
			lua_insert(L, -2);
			lua_settable(L, -5);
		} else
			lua_pop(L, 1);
	}
	lua_pop(L, 1);
	sandbox_guard(L, 0);
	lua_setfield(L, -2, "math");
	lua_pushcfunction(L, l_sandbox_require);
	lua_setfield(L, -2, "require");
	lua_pushcfunction(L, l_sandbox_print);
	lua_setfield(L, -2, "print");
	lua_pushcfunction(L, l_sandbox_setmetatable);
	lua_setfield(L, -2, "setmetatable");
	lua_pushvalue(L, -1);
	lua_setfield(L, -2, "_G");
	sandbox_guard(L, 1);
}
