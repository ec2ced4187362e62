/* test_luajson.c: Lua values <-> JSON (lua/luajson.c). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "lua/luajson.h"

static int
setup(void **statep)
{
	lua_State *L = luaL_newstate();

	if (L == NULL)
		return -1;
	luaL_openlibs(L);
	luajson_init(L);
	*statep = L;
	return 0;
}

static int
teardown(void **statep)
{
	lua_close(*statep);
	return 0;
}

/* Push the value chunk returns. */
static void
push_value(lua_State *L, const char *chunk)
{
	if (luaL_loadstring(L, chunk) != LUA_OK ||
	    lua_pcall(L, 0, 1, 0) != LUA_OK)
		fail_msg("%s: %s", chunk, lua_tostring(L, -1));
}

/* The value of chunk converts (as a tree and as text) to want. */
static void
assert_json(lua_State *L, const char *chunk, const char *want)
{
	struct jbuf b = { NULL, 0, 0 };
	char err[256] = "", *text;
	json_t *j;
	int top = lua_gettop(L);

	push_value(L, chunk);
	if ((j = luajson_tree(L, -1, err, sizeof err)) == NULL)
		fail_msg("%s: %s", chunk, err);
	text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	assert_string_equal(text, want);
	free(text);
	json_decref(j);
	if (luajson_append(L, -1, &b, err, sizeof err) != 0)
		fail_msg("%s: text: %s", chunk, err);
	assert_string_equal(b.p, want);
	free(b.p);
	lua_pop(L, 1);
	assert_int_equal(lua_gettop(L), top);
}

/* The value of chunk fails to convert, both ways, with error want. */
static void
assert_not_json(lua_State *L, const char *chunk, const char *want)
{
	struct jbuf b = { NULL, 0, 0 };
	char err[256] = "";
	int top = lua_gettop(L);

	push_value(L, chunk);
	assert_null(luajson_tree(L, -1, err, sizeof err));
	assert_string_equal(err, want);
	err[0] = '\0';
	assert_int_equal(luajson_append(L, -1, &b, err, sizeof err), -1);
	assert_string_equal(err, want);
	free(b.p);
	lua_pop(L, 1);
	assert_int_equal(lua_gettop(L), top);
}

static void
test_luajson_values(void **statep)
{
	lua_State *L = *statep;

	assert_json(L, "return { b = 1, a = { 1, 2.5, 'x' }, c = true }",
	    "{\"a\":[1,2.5,\"x\"],\"b\":1,\"c\":true}");
	assert_json(L, "return {}", "{}");
	assert_json(L, "return 'text'", "\"text\"");
	assert_json(L, "return nil", "null");
}

static void
test_luajson_cycle_names_the_path(void **statep)
{
	lua_State *L = *statep;

	assert_not_json(L, "local t = {} t.self = t return t",
	    "a table that contains itself at .self");
	assert_not_json(L, "local t = { a = { list = { {}, {} } } } "
	    "t.a.list[2].back = t return t",
	    "a table that contains itself at .a.list[2].back");
	assert_not_json(L, "local t = { x = {} } t.x['odd key\\n'] = t.x "
	    "return t", "a table that contains itself at .x[\"odd key\\10\"]");
	assert_not_json(L, "local t = {} t[1] = t return t",
	    "a table that contains itself at [1]");
}

static void
test_luajson_shared_table_is_not_a_cycle(void **statep)
{
	lua_State *L = *statep;

	assert_json(L, "local s = { v = 1 } return { x = s, y = s, "
	    "z = { s, s } }",
	    "{\"x\":{\"v\":1},\"y\":{\"v\":1},\"z\":[{\"v\":1},{\"v\":1}]}");
}

static void
test_luajson_depth_limit(void **statep)
{
	lua_State *L = *statep;
	json_t *j;

	/* 64 tables inside each other are fine; 65 are not. */
	push_value(L, "local t = {} local c = t for i = 2, 64 do c.a = {} "
	    "c = c.a end return t");
	j = luajson_tree(L, -1, NULL, 0);
	assert_non_null(j);
	json_decref(j);
	lua_pop(L, 1);
	assert_not_json(L, "local t = {} local c = t for i = 2, 65 do c.a = {} "
	    "c = c.a end return t", "nested more than 64 levels at "
	    ".a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a"
	    ".a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a...");
	assert_not_json(L, "local t = {} local c = t for i = 1, 100000 do "
	    "c[1] = {} c = c[1] end return t", "nested more than 64 levels "
	    "at [1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1]"
	    "[1][1][1][1][1][1][1][1][1][1][1][1][1][1]...");
}

static void
test_luajson_errors_name_the_path(void **statep)
{
	lua_State *L = *statep;

	assert_not_json(L, "return { f = print }",
	    "a function cannot be JSON at .f");
	assert_not_json(L, "return { a = { [true] = 1 } }",
	    "a table with non-string keys cannot be JSON at .a");
	assert_not_json(L, "return { n = { 1, 1/0 } }",
	    "inf cannot be JSON at .n[2]");
	assert_not_json(L, "return { s = '\\255' }",
	    "string is not valid UTF-8 at .s");
	assert_not_json(L, "return print", "a function cannot be JSON");
}

/* JSON -> Lua takes what the parser takes (jansson: 2048 levels). */
static void
test_luajson_push_deep_json(void **statep)
{
	lua_State *L = *statep;
	char *text = malloc(2 * 2000 + 1);
	json_error_t je;
	json_t *j;
	int i;

	for (i = 0; i < 2000; i++) {
		text[i] = '[';
		text[2000 + i] = ']';
	}
	text[4000] = '\0';
	j = json_loads(text, 0, &je);
	assert_non_null(j);
	luajson_push(L, j);
	json_decref(j);
	free(text);
	lua_setglobal(L, "deep");
	push_value(L, "local n, t = 0, deep while t do n = n + 1 t = t[1] end "
	    "return n");
	assert_int_equal(lua_tointeger(L, -1), 2000);
	lua_pop(L, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_luajson_values, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_luajson_cycle_names_the_path, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_luajson_shared_table_is_not_a_cycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_luajson_depth_limit,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_luajson_errors_name_the_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_luajson_push_deep_json,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
