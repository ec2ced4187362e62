/*
 * lcore_time.c: time and randomness for the runner and workflow code:
 * the monotonic clock, and w.now() and w.random(), whose values are
 * recorded so that resume and replay see the same ones.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <lua.h>
#include <lauxlib.h>

#include "engine/coord.h"
#include "engine/replay.h"
#include "runtime/util.h"
#include "lua/luaeng_int.h"

static int
l_mono(lua_State *L)
{
	lua_pushnumber(L, now_mono());
	return 1;
}

/*
 * A recorded value of w.now() or w.random() (name) with args (JSON text)
 * at the node path: pushes it and returns 1 when the run's record answers
 * the call, else 0 (the caller computes it live and records it with the
 * call's key in *key, the event's members).  An offline replay that
 * diverges raises the divergence as a Lua error.
 */
static int
luaeng_value(lua_State *L, struct crun *c, const char *path,
    const char *name, const char *args, json_t **key)
{
	struct replay *rec = crun_replay(c);
	json_t *res = NULL, *err = NULL;
	int64_t from;
	char hash[65], *desc;
	int call = crun_call_index(c, path), rv = 0;

	replay_hash(args, NULL, hash);
	if (rec != NULL) {
		rv = replay_answer(rec, path, call, name, hash, NULL, &res,
		    &err, &from);
		if (rv < 0) {
			desc = xasprintf("%s %s", name, args);
			replay_describe(rec, desc);
			free(desc);
			return luaL_error(L, "%s", replay_divergence(rec));
		}
		if (rv == 1 && json_is_integer(res))
			lua_pushinteger(L, json_integer_value(res));
		else if (rv == 1 && json_is_number(res))
			lua_pushnumber(L, json_number_value(res));
		else
			rv = 0;
	}
	if (rv == 0)
		*key = json_pack("{s:i, s:s, s:s, s:o}", "call", call, "hash",
		    hash, "step", name, "args", json_loads(args, 0, NULL));
	return rv;
}

/* w.now(): wall clock, recorded so replay sees the same value.
   core.runner_now(path) */
static int
l_runner_now(lua_State *L)
{
	struct crun *c = luaeng_need_run(L);
	const char *path = luaL_optstring(L, 1, "");
	json_t *p = NULL;
	double t;

	if (luaeng_value(L, c, path, "now", "[]", &p))
		return 1;
	t = now_wall();
	json_object_set_new(p, "value", json_real(t));
	crun_event(c, "clock", 0, 0, path, 0, p, 0, 0);
	json_decref(p);
	lua_pushnumber(L, t);
	return 1;
}

/* w.random([m [, n]]): like math.random, recorded.
   core.runner_random(path, m, n) */
static int
l_runner_random(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);
	struct crun *c = luaeng_need_run(L);
	const char *path = luaL_optstring(L, 1, "");
	lua_Integer lo, hi;
	uint64_t x, span;
	json_t *p = NULL;
	char args[64];

	if (lua_isnoneornil(L, 2))
		snprintf(args, sizeof args, "[]");
	else if (lua_isnoneornil(L, 3))
		snprintf(args, sizeof args, "[%lld]",
		    (long long)luaL_checkinteger(L, 2));
	else
		snprintf(args, sizeof args, "[%lld,%lld]",
		    (long long)luaL_checkinteger(L, 2),
		    (long long)luaL_checkinteger(L, 3));
	if (luaeng_value(L, c, path, "random", args, &p))
		return 1;
	e->rng ^= e->rng << 13;
	e->rng ^= e->rng >> 7;
	e->rng ^= e->rng << 17;
	x = e->rng;
	if (lua_isnoneornil(L, 2)) {
		double d = (double)(x >> 11) / (double)(1ULL << 53);

		json_object_set_new(p, "value", json_real(d));
		lua_pushnumber(L, d);
	} else {
		lo = lua_isnoneornil(L, 3) ? 1 : luaL_checkinteger(L, 2);
		hi = lua_isnoneornil(L, 3) ? luaL_checkinteger(L, 2) :
		    luaL_checkinteger(L, 3);
		if (lo > hi) {
			json_decref(p);
			return luaL_argerror(L, 1, "interval is empty");
		}
		span = (uint64_t)hi - (uint64_t)lo;
		lo = (lua_Integer)((uint64_t)lo + (span == UINT64_MAX ? x :
		    x % (span + 1)));
		json_object_set_new(p, "value", json_integer((json_int_t)lo));
		lua_pushinteger(L, lo);
	}
	crun_event(c, "random", 0, 0, path, 0, p, 0, 0);
	json_decref(p);
	return 1;
}

static const luaL_Reg time_funcs[] = {
	{ "mono", l_mono },
	{ "runner_now", l_runner_now },
	{ "runner_random", l_runner_random },
	{ NULL, NULL }
};

/* Open the library: clocks and the recorded random numbers. */
int
lcore_open_time(lua_State *L)
{
	luaL_setfuncs(L, time_funcs, 0);
	return 0;
}
