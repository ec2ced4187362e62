/*
 * luaeng.c: the Lua state of a workflow: its counting allocator,
 * loading the workflow, the glue that opens the core libraries
 * (lua/luaeng_int.h lists them) and runs lua/weft/init.lua and
 * runner.lua (which load the other lua/weft modules through
 * core.module), and the public API of luaeng.h.
 */
#include "config.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/random.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "engine/coord.h"
#include "runtime/util.h"
#include "lua/luaeng.h"
#include "lua/luaeng_int.h"
#include "lua/luajson.h"
#include "lua/luapat.h"

/* Seconds workflow code may run without waiting for a tool or model. */
#define LUAENG_MAX_SECONDS	10

/* Room in the core table: its functions and core.null. */
#define LUAENG_CORE_SIZE	32

/*
 * The core libraries, opened in turn into the `core` table, as linit.c
 * opens Lua's own: each a luaL_Reg table of one job.
 */
static const luaL_Reg core_libs[] = {
	{ "stop", lcore_open_stop },
	{ "run", lcore_open_run },
	{ "time", lcore_open_time },
	{ "json", lcore_open_json },
	{ "state", lcore_open_state },
	{ "model", lcore_open_model },
	{ "approval", lcore_open_approval },
	{ NULL, NULL }
};

/*
 * The Lua allocator: a cap, so a workflow cannot eat the process, and
 * size-class free lists for small blocks.  The runner makes and drops many
 * small tables and strings per step; recycling them here costs a few
 * instructions instead of a trip through malloc and free.  Lua always
 * passes a block's true size as osize, which is what makes this possible.
 * Small blocks are carved from 64 KiB slabs, freed with the state.
 */
/* A block of class cls (size cls * POOL_STEP). */
static void *
pool_get(struct pool *pl, size_t cls)
{
	struct pool_block *b = pl->free[cls];
	size_t sz = cls * POOL_STEP;
	void *p;

	if (b != NULL) {
		pl->free[cls] = b->next;
		return b;
	}
	if (pl->left < sz) {
		if (pl->nslabs == pl->cap) {
			pl->cap = pl->cap ? pl->cap * 2 : 16;
			pl->slabs = realloc(pl->slabs, pl->cap * sizeof *pl->slabs);
			if (pl->slabs == NULL)
				fatalx(1, "out of memory");
		}
		if ((pl->cur = malloc(POOL_SLAB)) == NULL)
			return NULL;
		pl->slabs[pl->nslabs++] = pl->cur;
		pl->left = POOL_SLAB;
	}
	p = pl->cur;
	pl->cur += sz;
	pl->left -= sz;
	return p;
}

static void
pool_put(struct pool *pl, void *p, size_t cls)
{
	struct pool_block *b = p;

	b->next = pl->free[cls];
	pl->free[cls] = b;
}

static void
pool_free_all(struct pool *pl)
{
	size_t i;

	for (i = 0; i < pl->nslabs; i++)
		free(pl->slabs[i]);
	free(pl->slabs);
	memset(pl, 0, sizeof *pl);
}

#define POOL_CLASS(n)	(((n) + POOL_STEP - 1) / POOL_STEP)

static void *
luaeng_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct luaeng *e = ud;
	size_t old = ptr != NULL ? osize : 0, ocls, ncls;
	void *p;

	ocls = old > 0 && old <= POOL_MAX ? POOL_CLASS(old) : 0;
	if (nsize == 0) {
		if (ocls)
			pool_put(&e->pool, ptr, ocls);
		else
			free(ptr);
		e->mem_used -= old;
		return NULL;
	}
	if (nsize > old && e->mem_used + (nsize - old) > e->mem_limit)
		return NULL;
	ncls = nsize <= POOL_MAX ? POOL_CLASS(nsize) : 0;
	if (ptr != NULL && ocls == ncls && ocls != 0)
		p = ptr;
	else if (ptr != NULL && ocls == 0 && ncls == 0)
		p = realloc(ptr, nsize);
	else {
		p = ncls ? pool_get(&e->pool, ncls) : malloc(nsize);
		if (p == NULL)
			return NULL;
		if (ptr != NULL) {
			memcpy(p, ptr, old < nsize ? old : nsize);
			if (ocls)
				pool_put(&e->pool, ptr, ocls);
			else
				free(ptr);
		}
	}
	if (p == NULL)
		return NULL;
	e->mem_used = e->mem_used - old + nsize;
	return p;
}

/*
 * While the workflow file runs: note the last line of it that ran.  A
 * constructor called in a tail call (`return w.sequential{...}`, the usual
 * last line) has no caller frame to name its line; this gives it one.
 */
static void
luaeng_line_hook(lua_State *L, lua_Debug *ar)
{
	struct luaeng *e = luaeng_of(L);

	/* "f" pushes the running function: cheaper than "S", which formats
	   the source name at every line. */
	if (!lua_getinfo(L, "f", ar))
		return;
	lua_rawgeti(L, LUA_REGISTRYINDEX, e->chunk_ref);
	if (lua_rawequal(L, -1, -2))
		e->load_line = ar->currentline;
	lua_pop(L, 2);
}

/* Helpers of the core functions ------------------------------------------ */

/* Convert the value at idx or raise a Lua error naming what. */
json_t *
luaeng_check_json(lua_State *L, int idx, const char *what)
{
	char err[256];
	json_t *j = luajson_tree(L, idx, err, sizeof err);

	if (j == NULL)
		luaL_error(L, "%s: %s", what, err);
	return j;
}

/* Encode the value at idx into b (reset first) or raise naming what. */
void
luaeng_check_json_text(lua_State *L, int idx, const char *what, struct jbuf *b)
{
	char err[256];

	b->len = 0;
	jbuf_put(b, "", 0);
	if (luajson_append(L, idx, b, err, sizeof err) != 0)
		luaL_error(L, "%s: %s", what, err);
}

/* The run in the coordinator, or raise "no run is in progress". */
struct crun *
luaeng_need_run(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);

	if (e->run == NULL)
		luaL_error(L, "no run is in progress");
	return e->run;
}

/* Return true, or nil and err (when rv != 0): Lua's usual failure shape. */
int
luaeng_ok_or_err(lua_State *L, int rv, const char *err)
{
	if (rv != 0) {
		lua_pushnil(L);
		lua_pushstring(L, err);
		return 2;
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* The embedded library module of that name, or NULL. */
static const struct luaeng_source *
find_module(const char *module)
{
	const struct luaeng_source *s;

	for (s = luaeng_sources; s->module != NULL; s++)
		if (strcmp(s->module, module) == 0)
			return s;
	return NULL;
}

/* Load embedded module s: stripped, or whole with WEFT_LUA_DEBUG=1. */
static int
luaeng_load_source(lua_State *L, const struct luaeng_source *s)
{
	static int debug = -1;

	if (debug == -1)
		debug = getenv("WEFT_LUA_DEBUG") != NULL &&
		    strcmp(getenv("WEFT_LUA_DEBUG"), "1") == 0;
	return luaL_loadbufferx(L, debug ? s->dbg : s->src, debug ?
	    s->dbglen : s->len, s->chunkname, "b");
}

/* core.module(name, ...): how a library module loads another one. */
static int
l_module(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	const struct luaeng_source *s;

	if ((s = find_module(name)) == NULL)
		return luaL_error(L, "internal: no embedded module %s", name);
	if (luaeng_load_source(L, s) != LUA_OK)
		return lua_error(L);
	lua_replace(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

/* Load an embedded library module, calling it with the given args. */
static int
load_module(struct luaeng *e, const char *module, int nargs, char *err,
    size_t errlen)
{
	lua_State *L = e->L;
	const struct luaeng_source *s;

	if ((s = find_module(module)) == NULL) {
		errf(err, errlen, "internal: no embedded module %s", module);
		return -1;
	}
	if (luaeng_load_source(L, s) != LUA_OK) {
		errf(err, errlen, "internal: %s", lua_tostring(L, -1));
		lua_pop(L, 1 + nargs);
		return -1;
	}
	lua_insert(L, -1 - nargs);
	if (lua_pcall(L, nargs, 1, 0) != LUA_OK) {
		errf(err, errlen, "internal: %s", lua_tostring(L, -1));
		lua_pop(L, 1);
		return -1;
	}
	return 0;
}

struct luaeng *
luaeng_new(size_t mem_limit)
{
	struct luaeng *e = xcalloc(1, sizeof *e);
	const luaL_Reg *lib;
	char err[256];
	lua_State *L;

	e->mem_limit = mem_limit;
	if ((L = lua_newstate(luaeng_alloc, e)) == NULL)
		fatalx(1, "cannot create a Lua state");
	e->L = L;
	*(struct luaeng **)lua_getextraspace(L) = e;
	luaL_openlibs(L);
	/* The pattern functions and string.rep that can be stopped, for
	   string.* and for methods on strings alike. */
	lua_getglobal(L, "string");
	luapat_register(L, -1);
	lua_pop(L, 1);
	luapat_poll = luaeng_poll;
	/*
	 * Incremental, a cycle when the heap reaches 4 times what the last
	 * one left, at twice the default speed.  Generational mode did worse
	 * here: the runner's heap grows during a run (every node's state,
	 * results and coroutines), each major collection then counts as a
	 * bad one and Lua 5.4 falls back to full collections, and a minor
	 * one traverses every live coroutine.  Measured (bench/README.md):
	 * a live run of 10,000 parallel agents 15% faster for 17% more peak
	 * memory, an offline replay of it 25% faster.
	 */
	lua_gc(L, LUA_GCINC, 400, 200, 0);
	signal(SIGALRM, luaeng_alarm);
	e->max_seconds = getenv("WEFT_LUA_MAX_SECONDS") != NULL ?
	    atoi(getenv("WEFT_LUA_MAX_SECONDS")) : 0;
	if (e->max_seconds <= 0)
		e->max_seconds = LUAENG_MAX_SECONDS;
	if (getrandom(&e->rng, sizeof e->rng, 0) != sizeof e->rng ||
	    e->rng == 0)
		e->rng = 0x9e3779b97f4a7c15ULL;
	strcpy(e->script_dir, ".");
	strcpy(e->script_file, "?");

	/* Hide the string metatable: getmetatable("") is false. */
	lua_pushliteral(L, "");
	if (lua_getmetatable(L, -1)) {
		lua_pushboolean(L, 0);
		lua_setfield(L, -2, "__metatable");
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	luajson_init(L);

	/* weft = load(init.lua)(core); runner = load(runner.lua)(core, weft) */
	lua_createtable(L, 0, LUAENG_CORE_SIZE);
	for (lib = core_libs; lib->func != NULL; lib++)
		lib->func(L);
	lua_pushlightuserdata(L, NULL);
	lua_setfield(L, -2, "null");
	lua_pushcfunction(L, l_module);
	lua_setfield(L, -2, "module");
	lua_pushvalue(L, -1);			/* core core */
	if (load_module(e, "weft", 1, err, sizeof err) != 0)
		fatalx(1, "%s", err);
	lua_pushvalue(L, -1);			/* core weft weft */
	e->weft_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	if (load_module(e, "weft.runner", 2, err, sizeof err) != 0)
		fatalx(1, "%s", err);
	e->runner_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	e->root_ref = LUA_NOREF;
	return e;
}

void
luaeng_set_var(struct luaeng *e, const char *name, const char *value)
{
	if (e->vars == NULL)
		e->vars = json_object();
	json_object_set_new(e->vars, name, json_string(value));
}

void
luaeng_detach(struct luaeng *e)
{
	if (e != NULL)
		e->run = NULL;
}

void
luaeng_free(struct luaeng *e)
{
	size_t i;

	if (e == NULL)
		return;
	e->run = NULL;
	lua_close(e->L);
	json_decref(e->vars);
	luaeng_chain(e, 0);
	pool_free_all(&e->pool);
	free(e->jb.p);
	for (i = 0; i < nitems(e->jbs); i++)
		free(e->jbs[i].p);
	free(e->internal_msg);
	free(e);
}

/* Push weft._internal.<name>. */
static void
push_internal(struct luaeng *e, const char *name)
{
	lua_rawgeti(e->L, LUA_REGISTRYINDEX, e->weft_ref);
	lua_getfield(e->L, -1, "_internal");
	lua_getfield(e->L, -1, name);
	lua_replace(e->L, -3);
	lua_pop(e->L, 1);
}

void
luaeng_collect(struct luaeng *e)
{
	lua_gc(e->L, LUA_GCCOLLECT);
}

int
luaeng_needs_workers(struct luaeng *e)
{
	int r;

	push_internal(e, "needs_workers");
	if (lua_pcall(e->L, 0, 1, 0) != LUA_OK) {
		lua_pop(e->L, 1);
		return 1;
	}
	r = lua_toboolean(e->L, -1);
	lua_pop(e->L, 1);
	return r;
}

int
luaeng_servers_unconfined(struct luaeng *e)
{
	int r;

	push_internal(e, "servers_unconfined");
	if (lua_pcall(e->L, 0, 1, 0) != LUA_OK) {
		lua_pop(e->L, 1);
		return 1;	/* unknown: the cautious answer keeps servers
				   working as declared */
	}
	r = lua_toboolean(e->L, -1);
	lua_pop(e->L, 1);
	return r;
}

/*
 * An error raised by a constructor called in a tail call (`return
 * w.sequential{...}`, the usual last line) names the file but no line:
 * the call left no caller frame.  Load the file once more in a scratch
 * engine with a line hook (workflow code cannot touch the world, so it
 * fails the same way) to learn the line.  Only on such an error: the hook
 * would cost every load about 10 us per node.
 */
static void
luaeng_error_line(struct luaeng *e, const char *path, char *err,
    size_t errlen)
{
	size_t n = strlen(e->script_file);
	struct luaeng *t;
	char again[2048];

	if (e->trace_lines || strncmp(err, e->script_file, n) != 0 ||
	    strncmp(err + n, ": ", 2) != 0)
		return;
	t = luaeng_new(e->mem_limit);
	t->trace_lines = 1;
	if (luaeng_load(t, path, again, sizeof again) != 0 &&
	    strncmp(again, e->script_file, n) == 0 && again[n] == ':' &&
	    again[n + 1] >= '0' && again[n + 1] <= '9')
		errf(err, errlen, "%s", again);
	luaeng_free(t);
}

int
luaeng_load(struct luaeng *e, const char *path, char *err, size_t errlen)
{
	lua_State *L = e->L;
	char *buf, *chunk, *dir, *tmp;
	size_t len;
	int rv;

	if ((buf = read_file(path, &len)) == NULL) {
		errf(err, errlen, "cannot read workflow '%s': %s", path,
		    strerror(errno));
		return -1;
	}
	snprintf(e->script_file, sizeof e->script_file, "%s", path);
	tmp = xstrdup(path);
	dir = dirname(tmp);
	if (realpath(dir, e->script_dir) == NULL)
		snprintf(e->script_dir, sizeof e->script_dir, "%s", dir);
	free(tmp);
	chunk = xasprintf("@%s", path);
	rv = luaL_loadbufferx(L, buf, len, chunk, "t");
	free(chunk);
	free(buf);
	if (rv != LUA_OK) {
		errf(err, errlen, "%s", lua_tostring(L, -1));
		lua_pop(L, 1);
		return -1;
	}
	luaeng_push_sandbox(L);
	lua_setupvalue(L, -2, 1);
	if (e->trace_lines) {
		lua_pushvalue(L, -1);
		e->chunk_ref = luaL_ref(L, LUA_REGISTRYINDEX);
		lua_sethook(L, luaeng_line_hook, LUA_MASKLINE, 0);
	}
	luaeng_chain(e, 1);
	luaeng_watch(e, e->max_seconds);
	rv = lua_pcall(L, 0, 1, 0);
	luaeng_watch(e, 0);
	luaeng_chain(e, 0);
	if (e->trace_lines) {
		lua_sethook(L, NULL, 0, 0);
		luaL_unref(L, LUA_REGISTRYINDEX, e->chunk_ref);
	}
	if (rv != LUA_OK) {
		e->load_line = 0;
		errf(err, errlen, "%s", lua_isstring(L, -1) ?
		    lua_tostring(L, -1) : "error object is not a string");
		lua_pop(L, 1);
		luaeng_error_line(e, path, err, errlen);
		return -1;
	}
	push_internal(e, "validate");
	lua_insert(L, -2);
	lua_pushstring(L, path);
	rv = lua_pcall(L, 2, 1, 0);
	e->load_line = 0;
	if (rv != LUA_OK) {
		errf(err, errlen, "%s", lua_tostring(L, -1));
		lua_pop(L, 1);
		return -1;
	}
	e->root_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

char *
luaeng_graph(struct luaeng *e, int dot)
{
	lua_State *L = e->L;
	char *s;

	push_internal(e, "graph");
	lua_rawgeti(L, LUA_REGISTRYINDEX, e->root_ref);
	lua_pushboolean(L, dot);
	if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
		s = xasprintf("error: %s\n", lua_tostring(L, -1));
		lua_pop(L, 1);
		return s;
	}
	s = xstrdup(lua_tostring(L, -1));
	lua_pop(L, 1);
	return s;
}

json_t *
luaeng_meta(struct luaeng *e, char *err, size_t errlen)
{
	lua_State *L = e->L;
	json_t *j = NULL;

	lua_rawgeti(L, LUA_REGISTRYINDEX, e->root_ref);
	if (lua_getfield(L, -1, "workflow") == LUA_TTABLE)
		j = luajson_tree(L, -1, err, errlen);
	else
		j = json_object();
	lua_pop(L, 2);
	return j;
}

/* Call runner.<name> with nargs arguments on the stack, nres results. */
static int
runner_call(struct luaeng *e, const char *name, int nargs, int nres)
{
	lua_State *L = e->L;

	lua_rawgeti(L, LUA_REGISTRYINDEX, e->runner_ref);
	lua_getfield(L, -1, name);
	lua_replace(L, -2);
	lua_insert(L, -1 - nargs);
	if (lua_pcall(L, nargs, nres, 0) != LUA_OK) {
		if (!e->internal_error) {
			e->internal_error = 1;
			e->internal_msg = xstrdup(lua_tostring(L, -1) ?
			    lua_tostring(L, -1) : "?");
		}
		lua_pop(L, 1);
		return -1;
	}
	return 0;
}

/* Protected: convert an outcome and hand it to runner.deliver. */
static int
l_deliver_trampoline(lua_State *L)
{
	json_t *result = lua_touserdata(L, 2);
	json_t *error = lua_touserdata(L, 3);

	lua_rawgeti(L, LUA_REGISTRYINDEX, luaeng_of(L)->runner_ref);
	lua_getfield(L, -1, "deliver");
	lua_pushvalue(L, 1);
	if (result != NULL)
		luajson_push(L, result);
	else
		lua_pushnil(L);
	if (error != NULL)
		luajson_push(L, error);
	else
		lua_pushnil(L);
	lua_call(L, 3, 0);
	return 0;
}

/* Protected: push a JSON value given as light userdata. */
static int
l_push_json_trampoline(lua_State *L)
{
	luajson_push(L, lua_touserdata(L, 1));
	return 1;
}

/*
 * Sink: a task's outcome, handed to runner.deliver.  Everything that may
 * allocate runs under lua_pcall, so a workflow at its memory cap fails the
 * run instead of aborting the coordinator.
 */
static void
luaeng_deliver_cb(void *arg, int64_t ticket, json_t *result, json_t *error)
{
	struct luaeng *e = arg;
	lua_State *L = e->L;

	if (!lua_checkstack(L, 8))
		goto fail;
	lua_pushcfunction(L, l_deliver_trampoline);
	lua_pushinteger(L, ticket);
	lua_pushlightuserdata(L, result);
	lua_pushlightuserdata(L, error);
	if (lua_pcall(L, 3, 0, 0) == LUA_OK)
		return;
	if (!e->internal_error) {
		e->internal_error = 1;
		e->internal_msg = xstrdup(lua_tostring(L, -1) ?
		    lua_tostring(L, -1) : "?");
	}
	lua_pop(L, 1);
	return;
fail:
	if (!e->internal_error) {
		e->internal_error = 1;
		e->internal_msg = xstrdup("Lua stack exhausted");
	}
}

/* Sink: run ready graph work. */
static int
luaeng_pump_cb(void *arg)
{
	struct luaeng *e = arg;
	lua_State *L = e->L;
	int rc, rv;

	if (e->cancel_raised)
		return 0;
	if (e->internal_error)
		return 2;
	luaeng_watch(e, e->max_seconds);
	rv = runner_call(e, "pump", 0, 1);
	luaeng_watch(e, 0);
	/* Stopped by a cancel: wait for the coordinator to take it. */
	if (rv != 0)
		return e->cancel_raised ? 0 : 2;
	rc = (int)lua_tointeger(L, -1);
	lua_pop(L, 1);
	return e->cancel_raised ? 0 : rc;
}

int
luaeng_start(struct luaeng *e, struct crun *c, json_t *input,
    json_t *budget, struct coord_sink *sink, char *err, size_t errlen)
{
	lua_State *L = e->L;

	e->run = c;
	luaeng_chain(e, 1);
	lua_pushcfunction(L, l_push_json_trampoline);
	lua_pushlightuserdata(L, input);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
		errf(err, errlen, "input: %s", lua_tostring(L, -1));
		lua_pop(L, 1);
		return -1;
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, e->root_ref);
	lua_insert(L, -2);
	if (budget != NULL) {
		lua_pushcfunction(L, l_push_json_trampoline);
		lua_pushlightuserdata(L, budget);
		if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
			errf(err, errlen, "budget: %s", lua_tostring(L, -1));
			lua_pop(L, 3);
			return -1;
		}
	} else
		lua_pushnil(L);
	if (runner_call(e, "start", 3, 0) != 0) {
		errf(err, errlen, "%s", e->internal_msg);
		return -1;
	}
	sink->deliver = luaeng_deliver_cb;
	sink->pump = luaeng_pump_cb;
	sink->arg = e;
	return 0;
}

void
luaeng_set_gateway(struct luaeng *e, struct gateway *gw)
{
	e->gw = gw;
}

void
luaeng_set_approvals(struct luaeng *e, struct approvals *ap)
{
	e->ap = ap;
}

void
luaeng_outcome(struct luaeng *e, struct luaeng_outcome *o)
{
	lua_State *L = e->L;
	const char *status;
	char err[256];

	memset(o, 0, sizeof o[0]);
	if (e->internal_error) {
		o->status = "failed";
		o->error = xasprintf("internal error: %s", e->internal_msg);
		return;
	}
	if (runner_call(e, "result", 0, 4) != 0) {
		o->status = "failed";
		o->error = xasprintf("internal error: %s", e->internal_msg);
		return;
	}
	status = lua_tostring(L, -4);
	o->status = status != NULL && strcmp(status, "succeeded") == 0 ?
	    "succeeded" : strcmp(status ? status : "", "running") == 0 ?
	    "cancelled" : strcmp(status ? status : "", "budget_exceeded") == 0 ?
	    "budget_exceeded" : strcmp(status ? status : "", "paused") == 0 ?
	    "paused" : strcmp(status ? status : "", "waiting") == 0 ?
	    "waiting" : "failed";
	if (!lua_isnil(L, -3)) {
		o->output = luajson_tree(L, -3, err, sizeof err);
		if (o->output == NULL)
			o->output = json_string("(output is not JSON)");
	}
	if (lua_isstring(L, -2))
		o->error = xstrdup(lua_tostring(L, -2));
	lua_getfield(L, -1, "steps");
	o->steps = lua_tointeger(L, -1);
	lua_getfield(L, -2, "tokens");
	o->tokens = lua_tointeger(L, -1);
	lua_getfield(L, -3, "model_calls");
	o->model_calls = lua_tointeger(L, -1);
	lua_getfield(L, -4, "tool_calls");
	o->tool_calls = lua_tointeger(L, -1);
	lua_getfield(L, -5, "scripted");
	o->scripted = lua_toboolean(L, -1);
	lua_getfield(L, -6, "cost");
	o->cost = lua_tonumber(L, -1);
	lua_pop(L, 10);
	if (runner_call(e, "final_state", 0, 1) == 0) {
		o->state = luajson_tree(L, -1, err, sizeof err);
		lua_pop(L, 1);
	}
}

void
luaeng_outcome_clear(struct luaeng_outcome *o)
{
	json_decref(o->output);
	json_decref(o->state);
	free(o->error);
	memset(o, 0, sizeof *o);
}

