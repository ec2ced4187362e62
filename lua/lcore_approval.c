/*
 * lcore_approval.c: core.approval, the runner's side of w.approval: the
 * request handed to the run's approvals (engine/approval.h), whose answer
 * comes back on a ticket like a model call's.
 */
#include "config.h"

#include <lua.h>
#include <lauxlib.h>

#include "engine/approval.h"
#include "lua/luaeng.h"
#include "lua/luaeng_int.h"

/* core.approval(path, span, parent_span, spec_json) -> ticket */
static int
l_approval(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);
	char err[512];
	int64_t t;

	luaeng_need_run(L);
	if (e->ap == NULL)
		return luaL_error(L, "approvals are not available here");
	t = approvals_ask(e->ap, luaL_checkstring(L, 1),
	    luaL_checkinteger(L, 2), luaL_optinteger(L, 3, 0),
	    luaL_checkstring(L, 4), err, sizeof err);
	if (t < 0)
		return luaL_error(L, "%s", err);
	lua_pushinteger(L, t);
	return 1;
}

static const luaL_Reg approval_funcs[] = {
	{ "approval", l_approval },
	{ NULL, NULL }
};

/* Open the library: approvals. */
int
lcore_open_approval(lua_State *L)
{
	luaL_setfuncs(L, approval_funcs, 0);
	return 0;
}
