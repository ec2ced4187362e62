/*
 * test_lua_modules.c: runs the unit tests of the Lua runner's modules,
 * tests/unit/lua_modules.lua, in a plain Lua 5.4 state (the full standard
 * library, no weft engine): one cmocka test per group of that file.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static const char *const groups[] = {
	"util",
	"budget_carving_and_reservations",
	"budget_settle_over_and_pause",
	"budget_time_and_model_worst_case",
	"grants_narrowing",
	"fields_errors_name_file_and_line",
	"validate_whole_graph",
	"graph_printing",
};

/* Load lua_modules.lua in a new state and run the group named *state. */
static void
test_group(void **state)
{
	const char *group = *state, *src = getenv("WEFT_SRCDIR");
	char path[4096];
	lua_State *L = luaL_newstate();

	if (src == NULL)
		src = ".";
	luaL_openlibs(L);
	snprintf(path, sizeof path, "%s/tests/unit/lua_modules.lua", src);
	if (luaL_loadfilex(L, path, "t") != LUA_OK)
		fail_msg("%s", lua_tostring(L, -1));
	lua_pushstring(L, src);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK)
		fail_msg("%s", lua_tostring(L, -1));
	if (lua_getfield(L, -1, group) != LUA_TFUNCTION)
		fail_msg("lua_modules.lua has no group '%s'", group);
	if (lua_pcall(L, 0, 0, 0) != LUA_OK)
		fail_msg("%s: %s", group, luaL_tolstring(L, -1, NULL));
	lua_close(L);
}

int
main(void)
{
	struct CMUnitTest tests[sizeof groups / sizeof groups[0]];
	size_t i;

	for (i = 0; i < sizeof groups / sizeof groups[0]; i++) {
		tests[i] = (struct CMUnitTest)cmocka_unit_test(test_group);
		tests[i].name = groups[i];
		tests[i].initial_state = (void *)groups[i];
	}
	return _cmocka_run_group_tests("lua_modules", tests, i, NULL, NULL);
}
