/*
 * lcore_model.c: model calls through the gateway (engine/gateway.h):
 * starting a call, declaring a provider, and looking up a model's price;
 * and core.blob, bytes a run received kept as a blob (as model messages).
 */
#include "config.h"

#include <limits.h>
#include <stdlib.h>

#include <lua.h>
#include <lauxlib.h>
#include <openssl/evp.h>

#include "engine/gateway.h"
#include "runtime/util.h"
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

/*
 * core.blob(base64) -> sha256, size: bytes a run received (a remote
 * agent's file part, lua/weft/remote.lua) kept as a blob of the store;
 * nil and a message when they are not base64.  The hash is the bytes'
 * whether or not the store took them (a replay's may not), so a replay
 * computes the same output.
 */
static int
l_blob(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);
	size_t n, i, pad = 0;
	const char *in = luaL_checklstring(L, 1, &n);
	unsigned char *b64, *out;
	char hash[65], stored[65];
	int len;

	if (n > (size_t)INT_MAX / 2)
		return luaeng_ok_or_err(L, -1, "the file is too large");
	/* Standard or URL-safe, padding optional: made standard, padded. */
	b64 = malloc(n + 4);
	out = malloc(n / 4 * 3 + 4);
	if (b64 == NULL || out == NULL) {
		free(b64);
		free(out);
		return luaL_error(L, "out of memory");
	}
	for (i = 0; i < n; i++)
		b64[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' :
		    (unsigned char)in[i];
	while (n % 4 != 0)
		b64[n++] = '=';
	for (i = n; i > 0 && b64[i - 1] == '='; i--)
		pad++;
	len = n > 0 ? EVP_DecodeBlock(out, b64, (int)n) : 0;
	free(b64);
	if (len < 0 || pad > 2) {
		free(out);
		return luaeng_ok_or_err(L, -1, "its bytes are not base64");
	}
	len -= (int)pad;
	sha256_hex(out, (size_t)len, hash);
	if (e->gw != NULL)
		(void)gateway_blob(e->gw, out, (size_t)len, stored);
	free(out);
	lua_pushstring(L, hash);
	lua_pushinteger(L, len);
	return 2;
}

static const luaL_Reg model_funcs[] = {
	{ "blob", l_blob },
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
