/* test_luapat.c: weft's pattern functions (lua/luapat.c) against Lua's. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "lua/luapat.h"

static int polls;		/* calls of the poll function */
static int polls_to_stop;	/* raise at this call; 0: never */

static void
count_poll(lua_State *L)
{
	if (++polls == polls_to_stop)
		luaL_error(L, "stopped at poll %d", polls);
}

/* budget(n): the n-th poll from now on raises; 0: none does. */
static int
l_budget(lua_State *L)
{
	polls = 0;
	polls_to_stop = (int)luaL_checkinteger(L, 1);
	return 0;
}

/* A state with the stock libraries and weft's functions as global W. */
static int
setup(void **statep)
{
	lua_State *L = luaL_newstate();

	if (L == NULL)
		return -1;
	luaL_openlibs(L);
	lua_newtable(L);
	luapat_register(L, -1);
	lua_setglobal(L, "W");
	luapat_poll = count_poll;
	polls = polls_to_stop = 0;
	*statep = L;
	return 0;
}

static int
teardown(void **statep)
{
	lua_close(*statep);
	luapat_poll = NULL;
	return 0;
}

/* Run chunk; its first result as an integer (fails on an error). */
static lua_Integer
run(lua_State *L, const char *chunk)
{
	lua_Integer n;

	if (luaL_loadstring(L, chunk) != LUA_OK ||
	    lua_pcall(L, 0, 1, 0) != LUA_OK)
		fail_msg("%s: %s", chunk, lua_tostring(L, -1));
	n = lua_tointeger(L, -1);
	lua_pop(L, 1);
	return n;
}

/* Run chunk, which must raise an error containing want. */
static void
run_fails(lua_State *L, const char *chunk, const char *want)
{
	if (luaL_loadstring(L, chunk) != LUA_OK)
		fail_msg("%s: %s", chunk, lua_tostring(L, -1));
	if (lua_pcall(L, 0, 0, 0) == LUA_OK)
		fail_msg("%s: no error", chunk);
	if (strstr(lua_tostring(L, -1), want) == NULL)
		fail_msg("%s: error '%s', expected '%s'", chunk,
		    lua_tostring(L, -1), want);
	lua_pop(L, 1);
}

/*
 * The differential test: tests/unit/luapat_diff.lua generates patterns
 * (well-formed and not) and subjects, and compares every result and
 * error of find, match, gmatch, gsub and rep with the stock library's.
 */
static void
test_luapat_same_as_stock_library(void **statep)
{
	lua_State *L = *statep;
	const char *src = getenv("WEFT_SRCDIR");
	char path[4096];
	lua_Integer seed, total = 0, skipped = 0;

	snprintf(path, sizeof path, "%s/tests/unit/luapat_diff.lua",
	    src != NULL ? src : ".");
	for (seed = 1; seed <= 8; seed++) {
		if (luaL_loadfile(L, path) != LUA_OK)
			fail_msg("%s", lua_tostring(L, -1));
		lua_getglobal(L, "W");
		lua_pushinteger(L, seed);
		lua_pushinteger(L, 5000);
		lua_pushcfunction(L, l_budget);
		if (lua_pcall(L, 4, 2, 0) != LUA_OK)
			fail_msg("seed %lld: %s", (long long)seed,
			    lua_tostring(L, -1));
		total += lua_tointeger(L, -2);
		skipped += lua_tointeger(L, -1);
		lua_pop(L, 2);
	}
	print_message("%lld calls compared, %lld skipped (too long)\n",
	    (long long)total, (long long)skipped);
	assert_true(total > 400000);
	assert_true(skipped < total / 100);
}

/* A backtracking match polls, and the poll can stop it. */
static void
test_luapat_backtracking_match_is_polled(void **statep)
{
	lua_State *L = *statep;

	polls_to_stop = 3;
	run_fails(L, "W.find(string.rep('a', 3000), '.-.-.-.-b')",
	    "stopped at poll 3");
	polls = 0;
	run_fails(L, "W.match(string.rep('a', 3000), '(.-)(.-)(.-)b')",
	    "stopped at poll 3");
	polls = 0;
	run_fails(L, "for x in W.gmatch(string.rep('a', 3000), "
	    "'a*a*a*b') do end", "stopped at poll 3");
	polls = 0;
	run_fails(L, "W.gsub(string.rep('(', 3000), '%b()', 'x')",
	    "stopped at poll 3");
	/* A short match does not poll at all. */
	polls = 0;
	assert_int_equal(run(L, "return W.find('hello', 'l+')"), 3);
	assert_int_equal(polls, 0);
}

/* A long string.rep polls between its copies, and gives the string. */
static void
test_luapat_rep_polls(void **statep)
{
	lua_State *L = *statep;

	assert_int_equal(run(L, "local s = W.rep('ab', 20000000, '-') "
	    "assert(s == string.rep('ab', 20000000, '-')) return #s"),
	    20000000 * 3 - 1);
	assert_true(polls > 10);
	polls = 0;
	polls_to_stop = 2;
	run_fails(L, "W.rep('x', 100000000)", "stopped at poll 2");
	/* The stock one loops math.maxinteger times copying nothing. */
	assert_int_equal(run(L, "return #W.rep('', math.maxinteger) + "
	    "#W.rep('', math.maxinteger, '')"), 0);
}

/* A plain find is linear in the subject (memmem), so it needs no poll. */
static void
test_luapat_plain_find_is_linear(void **statep)
{
	lua_State *L = *statep;

	/* The stock search compares again at every 'a': n * m. */
	assert_int_equal(run(L, "return W.find(string.rep('a', 4000000), "
	    "string.rep('a', 2000000) .. 'b', 1, true) == nil and 1 or 0"),
	    1);
	assert_int_equal(polls, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_luapat_same_as_stock_library, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_luapat_backtracking_match_is_polled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_luapat_rep_polls, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_luapat_plain_find_is_linear, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
