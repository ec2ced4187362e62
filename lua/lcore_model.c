/*
 * lcore_model.c: model calls through the gateway (engine/gateway.h):
 * starting a call, declaring a provider, and looking up a model's price.
 */
#include "config.h"

#include <lua.h>
#include <lauxlib.h>

#include "engine/gateway.h"
#include "lua/luaeng_int.h"
#include "lua/luajson.h"

/* core.model(path, span, parent, opts_text, request_text) -> ticket */
static int
l_model(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);
	char err[512];
	int64_t t;

	luaeng_need_run(L);
	if (e->gw == NULL)
		return luaL_error(L, "model calls are not available here");
	t = gateway_call(e->gw, luaL_checkstring(L, 1), luaL_checkinteger(L, 2),
	    luaL_optinteger(L, 3, 0), luaL_checkstring(L, 4),
	    luaL_checkstring(L, 5), err, sizeof err);
	if (t < 0)
		return luaeng_ok_or_err(L, -1, err);
	lua_pushinteger(L, t);
	return 1;
}

/* core.provider(decl) -> true | nil, err */
static int
l_provider(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);
	char err[256];
	json_t *d;
	int rv;

	if (e->gw == NULL) {
		lua_pushboolean(L, 1);
		return 1;
	}
	if ((d = luajson_tree(L, 1, err, sizeof err)) == NULL) {
		lua_pushnil(L);
		lua_pushfstring(L, "provider: %s", err);
		return 2;
	}
	rv = gateway_provider(e->gw, d, err, sizeof err);
	json_decref(d);
	return luaeng_ok_or_err(L, rv, err);
}

/* core.price("provider:model") -> { input, output, cache_read,
   cache_write } (USD per million tokens) | nil */
static int
l_price(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);
	struct gateway_price pr;
	const char *spec = luaL_checkstring(L, 1);

	if (e->gw == NULL || !gateway_price(e->gw, spec, &pr)) {
		lua_pushnil(L);
		return 1;
	}
	lua_createtable(L, 0, 4);
	lua_pushnumber(L, pr.input);
	lua_setfield(L, -2, "input");
	lua_pushnumber(L, pr.output);
	lua_setfield(L, -2, "output");
	lua_pushnumber(L, pr.cache_read);
	lua_setfield(L, -2, "cache_read");
	lua_pushnumber(L, pr.cache_write);
	lua_setfield(L, -2, "cache_write");
	return 1;
}

static const luaL_Reg model_funcs[] = {
	{ "model", l_model },
	{ "provider", l_provider },
	{ "price", l_price },
	{ NULL, NULL }
};

/* Open the library: model calls, providers and prices. */
int
lcore_open_model(lua_State *L)
{
	luaL_setfuncs(L, model_funcs, 0);
	return 0;
}
