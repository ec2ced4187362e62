/* luaeng.c: Lua embedding, sandbox, JSON conversion and runner glue. */
#include "config.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/time.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "engine/coord.h"
#include "engine/gateway.h"
#include "engine/replay.h"
#include "engine/schema.h"
#include "engine/state.h"
#include "engine/template.h"
#include "runtime/util.h"
#include "lua/luaeng.h"
#include "lua/luajson.h"
#include "lua/luapat.h"

/* Seconds workflow code may run without waiting for a tool or model. */
#define LUAENG_MAX_SECONDS	10

#define POOL_STEP	16
#define POOL_MAX	512
#define POOL_SLAB	(64 * 1024)

struct pool_block {
	struct pool_block	*next;
};

struct pool {
	struct pool_block	*free[POOL_MAX / POOL_STEP + 1];
	void			**slabs;
	size_t			 nslabs, cap;
	char			*cur;		/* carving point in the last slab */
	size_t			 left;
};

struct luaeng {
	struct pool	 pool;		/* small blocks of the Lua state */
	lua_State	*L;
	size_t		 mem_used;
	size_t		 mem_limit;
	volatile sig_atomic_t expired;	/* the watchdog fired */
	int		 cancel_raised;	/* a cancel stopped workflow code */
	int		 chained;	/* holds the signal chain */
	int		 max_seconds;	/* $WEFT_LUA_MAX_SECONDS or default */
	lua_State	*volatile running;	/* thread executing now */
	int		 weft_ref;	/* the weft module */
	int		 runner_ref;	/* the runner module */
	int		 root_ref;	/* the validated graph */
	char		 script_dir[PATH_MAX];
	char		 script_file[PATH_MAX];
	int		 load_line;	/* while loading: the line of the
					   workflow's main chunk that ran
					   last, else 0 */
	int		 chunk_ref;	/* that chunk, while it runs */
	int		 trace_lines;	/* load with the line hook on */
	struct coord	*coord;
	struct gateway	*gw;		/* model calls, NULL offline */
	uint64_t	 rng;
	int		 internal_error;
	char		*internal_msg;
	struct jbuf	 jb;		/* reused encode buffer */
	struct jbuf	 jbs[5];	/* for l_submit */
};

static const char STATE_MT[] = "weft.state";

/* The engine stored in the registry's extra space. */
static struct luaeng *
luaeng_of(lua_State *L)
{
	return *(struct luaeng **)lua_getextraspace(L);
}

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

/*
 * Stopping workflow code: when it has run too long without waiting for a
 * tool or model (the time limit), or when the run is cancelled (SIGINT,
 * SIGTERM: `weft cancel`) while it computes.
 *
 * A count hook on all the time would slow every instruction (the VM
 * traces each one while a count hook is set), so, as lua.c does for ^C,
 * a signal arms the hook only when it is needed: SIGALRM from a timer set
 * around each stretch of Lua work, or SIGINT/SIGTERM.  The hook fires
 * between VM instructions only, never inside a C function: the library
 * functions that can run long (the pattern functions, string.rep) are
 * weft's own (lua/luapat.c) and poll luaeng_poll every few thousand
 * steps.  Other library functions are bounded by the memory limit.
 *
 * Once stopping, the hook stays set for the rest of that stretch and
 * raises again in every workflow function that runs, so a pcall in
 * workflow code cannot swallow the stop and go on, and a second branch
 * run in the same stretch is stopped too.  It raises only in workflow
 * code (functions of the workflow file): the runner's own code around it
 * must run on to record the failure.
 *
 * A cancel is sticky (luaeng_cancel_sig): the hook raises, the runner
 * records the node's failure, and the pump returns to the event loop as
 * if waiting (luaeng_pump_cb), where the coordinator's signal event ends
 * the run as cancelled (coord_int_cb).  For that the SIGINT and SIGTERM
 * handlers are chained: ours arms the hook, then calls the one it
 * replaced (libevent's, which wakes the loop).
 */
static struct luaeng *luaeng_watched;
static volatile sig_atomic_t luaeng_cancel_sig;	/* SIGINT, SIGTERM */
static struct sigaction luaeng_prev_int, luaeng_prev_term;
static int luaeng_chained;		/* engines holding the chain */

#define STOP_MASK	(LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT)

/* Whether workflow code must stop now. */
static int
luaeng_stopping(struct luaeng *e)
{
	return e->expired || luaeng_cancel_sig;
}

/* Raise the stop error, at the workflow line of the function at level. */
static int
luaeng_raise_stop(lua_State *L, int level)
{
	struct luaeng *e = luaeng_of(L);

	luaL_where(L, level);
	if (luaeng_cancel_sig) {
		e->cancel_raised = 1;
		lua_pushfstring(L, "workflow code was stopped: the run was "
		    "cancelled (%s)", luaeng_cancel_sig == SIGINT ? "SIGINT" :
		    "SIGTERM");
	} else
		lua_pushfstring(L, "workflow code ran for more than %d "
		    "seconds without waiting for a tool or model (an endless "
		    "loop?)", e->max_seconds);
	lua_concat(L, 2);
	return lua_error(L);
}

static void
luaeng_stop_hook(lua_State *L, lua_Debug *ar)
{
	struct luaeng *e = luaeng_of(L);

	if (!luaeng_stopping(e)) {
		lua_sethook(L, NULL, 0, 0);	/* left from an earlier stop */
		return;
	}
	/* Level 0 in a hook is the interrupted function. */
	if (lua_getinfo(L, "S", ar) && ar->source[0] == '@' &&
	    strcmp(ar->source + 1, e->script_file) == 0)
		luaeng_raise_stop(L, 0);
}

/* luapat_poll: a long pattern match or string.rep stops here. */
static void
luaeng_poll(lua_State *L)
{
	if (luaeng_stopping(luaeng_of(L)))
		luaeng_raise_stop(L, 1);
}

static void
luaeng_alarm(int sig)
{
	struct luaeng *e = luaeng_watched;

	if (e == NULL || e->running == NULL)
		return;
	e->expired = 1;
	lua_sethook(e->running, luaeng_stop_hook, STOP_MASK, 1);
}

/* SIGINT, SIGTERM: stop the workflow code, then the previous handler. */
static void
luaeng_signal(int sig, siginfo_t *si, void *uc)
{
	struct sigaction *prev = sig == SIGINT ? &luaeng_prev_int :
	    &luaeng_prev_term;
	struct luaeng *e = luaeng_watched;
	int saved = errno;

	luaeng_cancel_sig = sig;
	if (e != NULL && e->running != NULL)
		lua_sethook(e->running, luaeng_stop_hook, STOP_MASK, 1);
	if (prev->sa_flags & SA_SIGINFO)
		prev->sa_sigaction(sig, si, uc);
	else if (prev->sa_handler == SIG_DFL) {
		signal(sig, SIG_DFL);
		raise(sig);	/* delivered when this handler returns */
	} else if (prev->sa_handler != SIG_IGN)
		prev->sa_handler(sig);
	errno = saved;
}

/* Put luaeng_signal before the handler of sig (not over SIG_IGN). */
static void
luaeng_chain_one(int sig, struct sigaction *prev)
{
	struct sigaction sa;

	if (sigaction(sig, NULL, prev) == -1 ||
	    (!(prev->sa_flags & SA_SIGINFO) && prev->sa_handler == SIG_IGN))
		return;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = luaeng_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigfillset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

/* Put back the handler of sig, if ours is still the one. */
static void
luaeng_unchain_one(int sig, struct sigaction *prev)
{
	struct sigaction cur;

	if (sigaction(sig, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
	    cur.sa_sigaction == luaeng_signal)
		sigaction(sig, prev, NULL);
}

/*
 * Hold (on) or release (0) the chained SIGINT/SIGTERM handlers for e:
 * while its workflow loads, and from the start of its run until it is
 * freed (after the coordinator set its own handlers, before it removes
 * them).
 */
static void
luaeng_chain(struct luaeng *e, int on)
{
	if (on && !e->chained) {
		e->chained = 1;
		if (luaeng_chained++ == 0) {
			luaeng_chain_one(SIGINT, &luaeng_prev_int);
			luaeng_chain_one(SIGTERM, &luaeng_prev_term);
		}
	} else if (!on && e->chained) {
		e->chained = 0;
		if (--luaeng_chained == 0) {
			luaeng_unchain_one(SIGINT, &luaeng_prev_int);
			luaeng_unchain_one(SIGTERM, &luaeng_prev_term);
		}
	}
}

/* Start (secs > 0) or stop (0) the watchdog around Lua work. */
static void
luaeng_watch(struct luaeng *e, int secs)
{
	struct itimerval it;

	memset(&it, 0, sizeof it);
	it.it_value.tv_sec = secs;
	e->expired = 0;
	e->running = e->L;
	luaeng_watched = secs > 0 ? e : NULL;
	setitimer(ITIMER_REAL, &it, NULL);
	/* A cancel that came between two stretches stops this one. */
	if (secs > 0 && luaeng_cancel_sig)
		lua_sethook(e->L, luaeng_stop_hook, STOP_MASK, 1);
}

/* core.resume(co, value): coroutine.resume, tracking the running thread. */
static int
l_resume(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);
	lua_State *co = lua_tothread(L, 1), *prev;
	int status, nres;

	luaL_argcheck(L, co != NULL, 1, "coroutine expected");
	lua_settop(L, 2);
	lua_xmove(L, co, 1);
	prev = e->running;
	e->running = co;
	if (luaeng_stopping(e))
		lua_sethook(co, luaeng_stop_hook, STOP_MASK, 1);
	status = lua_resume(co, L, 1, &nres);
	e->running = prev;
	if (status == LUA_OK || status == LUA_YIELD) {
		lua_pushboolean(L, 1);
		lua_pushboolean(L, status == LUA_OK);	/* finished */
		if (nres > 0) {
			/* the first result: what the runner yields/returns */
			lua_pop(co, nres - 1);
			lua_xmove(co, L, 1);
		} else
			lua_pushnil(L);
		return 3;
	}
	lua_pushboolean(L, 0);
	lua_pushboolean(L, 1);
	lua_xmove(co, L, 1);
	return 3;
}

/* Convert the value at idx or raise a Lua error naming what. */
static json_t *
check_json(lua_State *L, int idx, const char *what)
{
	char err[256];
	json_t *j = luajson_tree(L, idx, err, sizeof err);

	if (j == NULL)
		luaL_error(L, "%s: %s", what, err);
	return j;
}

/* Encode the value at idx into b (reset first) or raise naming what. */
static void
check_json_text(lua_State *L, int idx, const char *what, struct jbuf *b)
{
	char err[256];

	b->len = 0;
	jbuf_put(b, "", 0);
	if (luajson_append(L, idx, b, err, sizeof err) != 0)
		luaL_error(L, "%s: %s", what, err);
}

/* core functions ------------------------------------------------------- */

static struct coord *
need_coord(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);

	if (e->coord == NULL)
		luaL_error(L, "no run is in progress");
	return e->coord;
}

/* Return true, or nil and err (when rv != 0): Lua's usual failure shape. */
static int
push_ok_or_err(lua_State *L, int rv, const char *err)
{
	if (rv != 0) {
		lua_pushnil(L);
		lua_pushstring(L, err);
		return 2;
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* core.event(kind, span, parent, path, attempt, payload, tokens, cost) */
static int
l_event(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);
	struct coord *c = need_coord(L);
	int64_t seq;

	if (!lua_isnoneornil(L, 6))
		check_json_text(L, 6, "event payload", &e->jb);
	seq = coord_event_text(c, luaL_checkstring(L, 1),
	    luaL_optinteger(L, 2, 0), luaL_optinteger(L, 3, 0),
	    luaL_optstring(L, 4, ""), (int)luaL_optinteger(L, 5, 0),
	    lua_isnoneornil(L, 6) ? NULL : e->jb.p, luaL_optinteger(L, 7, 0),
	    luaL_optnumber(L, 8, 0));
	lua_pushinteger(L, seq);
	return 1;
}

/* core.event_json(kind, span, parent, path, attempt, json_text, tokens,
   cost): the payload is JSON text the runner built itself. */
static int
l_event_json(lua_State *L)
{
	struct coord *c = need_coord(L);

	lua_pushinteger(L, coord_event_text(c, luaL_checkstring(L, 1),
	    luaL_optinteger(L, 2, 0), luaL_optinteger(L, 3, 0),
	    luaL_optstring(L, 4, ""), (int)luaL_optinteger(L, 5, 0),
	    luaL_checkstring(L, 6), luaL_optinteger(L, 7, 0),
	    luaL_optnumber(L, 8, 0)));
	return 1;
}

/*
 * core.event_kv(kind, span, parent, path, tokens, key1, value1, ...): an
 * event whose payload is the object of the pairs, given with their keys
 * in order (sorted, as every payload is); a nil value leaves its pair
 * out.  The runner's node events: no table to build, no keys to sort.
 */
static int
l_event_kv(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);
	struct coord *c = need_coord(L);
	struct jbuf *b = &e->jb;
	int top = lua_gettop(L), i, first = 1;
	const char *k;
	char err[256];
	size_t klen;

	b->len = 0;
	jbuf_put(b, "{", 1);
	for (i = 6; i + 1 <= top; i += 2) {
		if (lua_isnil(L, i + 1))
			continue;
		k = luaL_checklstring(L, i, &klen);
		if (!first)
			jbuf_put(b, ",", 1);
		first = 0;
		if (jbuf_string(b, k, klen, err, sizeof err) != 0)
			return luaL_error(L, "event payload: %s", err);
		jbuf_put(b, ":", 1);
		if (luajson_append(L, i + 1, b, err, sizeof err) != 0)
			return luaL_error(L, "event payload: %s", err);
	}
	jbuf_put(b, "}", 1);
	lua_pushinteger(L, coord_event_text(c, luaL_checkstring(L, 1),
	    luaL_optinteger(L, 2, 0), luaL_optinteger(L, 3, 0),
	    luaL_optstring(L, 4, ""), 0, b->p, luaL_optinteger(L, 5, 0), 0));
	return 1;
}

/* core.submit(kind, path, span, params, grant) -> ticket */
static int
l_submit(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);
	struct coord *c = need_coord(L);
	const char *sname;
	struct jbuf *sv = &e->jbs[0], *nm = &e->jbs[1], *ar = &e->jbs[2];
	struct jbuf *pa = &e->jbs[3], *su = &e->jbs[4];
	char err[128];
	int has_name, has_args, grant;

	luaL_checktype(L, 4, LUA_TTABLE);
	grant = (int)luaL_optinteger(L, 5, 0);
	lua_settop(L, 4);
	lua_getfield(L, 4, "server");			/* 5 */
	luaL_argcheck(L, lua_istable(L, 5), 4, "params.server missing");
	lua_getfield(L, 5, "name");			/* 6 */
	sname = lua_tostring(L, 6);
	luaL_argcheck(L, sname != NULL, 4, "params.server.name missing");
	lua_getfield(L, 4, "name");			/* 7 */
	lua_getfield(L, 4, "arguments");		/* 8 */
	has_name = !lua_isnil(L, 7);
	has_args = !lua_isnil(L, 8);
	check_json_text(L, 5, "task server", sv);
	if (has_name)
		check_json_text(L, 7, "tool name", nm);
	if (has_args)
		check_json_text(L, 8, "tool arguments", ar);
	/* params, keys sorted as everywhere: arguments, name, server */
	pa->len = 0;
	jbuf_put(pa, "{", 1);
	if (has_args) {
		jbuf_put(pa, "\"arguments\":", 12);
		jbuf_put(pa, ar->p, ar->len);
		jbuf_put(pa, ",", 1);
	}
	if (has_name) {
		jbuf_put(pa, "\"name\":", 7);
		jbuf_put(pa, nm->p, nm->len);
		jbuf_put(pa, ",", 1);
	}
	jbuf_put(pa, "\"server\":", 9);
	jbuf_put(pa, sv->p, sv->len);
	jbuf_put(pa, "}", 1);
	su->len = 0;
	jbuf_put(su, "\"server\":", 9);
	if (jbuf_string(su, sname, strlen(sname), err, sizeof err) != 0)
		return luaL_error(L, "server name: %s", err);
	if (has_name) {
		jbuf_put(su, ",\"name\":", 8);
		jbuf_put(su, nm->p, nm->len);
	}
	if (has_args) {
		jbuf_put(su, ",\"arguments\":", 13);
		jbuf_put(su, ar->p, ar->len);
	}
	lua_pushinteger(L, coord_submit(c, luaL_checkstring(L, 1),
	    luaL_checkstring(L, 2), luaL_optinteger(L, 3, 0), sname,
	    has_name ? lua_tostring(L, 7) : NULL, pa->p, su->p, grant));
	return 1;
}

/*
 * core.grant(parent, path, grant, eager) -> id | nil, message: a
 * capability grant for the node at path (engine/grant.h).
 */
static int
l_grant(lua_State *L)
{
	struct coord *c = need_coord(L);
	char err[512];
	json_t *g;
	int id;

	luaL_checktype(L, 3, LUA_TTABLE);
	if ((g = luajson_tree(L, 3, err, sizeof err)) == NULL)
		return luaL_error(L, "grant: %s", err);
	id = coord_grant(c, (int)luaL_checkinteger(L, 1), luaL_checkstring(L,
	    2), g, lua_toboolean(L, 4), err, sizeof err);
	json_decref(g);
	if (id < 0) {
		lua_pushnil(L);
		lua_pushstring(L, err);
		return 2;
	}
	lua_pushinteger(L, id);
	return 1;
}

/* core.span_base() -> the span id after which this run's spans go on */
static int
l_span_base(lua_State *L)
{
	lua_pushinteger(L, coord_span_base(need_coord(L)));
	return 1;
}

/* core.may_bound() -> whether a wide parallel may run its branches a few
   at a time (coord_may_bound) */
static int
l_may_bound(lua_State *L)
{
	lua_pushboolean(L, coord_may_bound(need_coord(L)));
	return 1;
}

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
luaeng_value(lua_State *L, struct coord *c, const char *path,
    const char *name, const char *args, json_t **key)
{
	struct replay *rec = coord_replay(c);
	json_t *res = NULL, *err = NULL;
	int64_t from;
	char hash[65], *desc;
	int call = coord_call_index(c, path), rv = 0;

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
	struct coord *c = need_coord(L);
	const char *path = luaL_optstring(L, 1, "");
	json_t *p = NULL;
	double t;

	if (luaeng_value(L, c, path, "now", "[]", &p))
		return 1;
	t = now_wall();
	json_object_set_new(p, "value", json_real(t));
	coord_event(c, "clock", 0, 0, path, 0, p, 0, 0);
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
	struct coord *c = need_coord(L);
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
	coord_event(c, "random", 0, 0, path, 0, p, 0, 0);
	json_decref(p);
	return 1;
}

/* core.json_check(v) -> true | nil, why v cannot be JSON (with its path) */
static int
l_json_check(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);
	char err[256];

	e->jb.len = 0;
	if (luajson_append(L, 1, &e->jb, err, sizeof err) != 0)
		return push_ok_or_err(L, -1, err);
	lua_pushboolean(L, 1);
	return 1;
}

static int
l_json_encode(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);

	check_json_text(L, 1, "json_encode", &e->jb);
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
	j = check_json(L, 1, "json_copy");
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

/*
 * core.where(level) -> "file:line" of the function at level (counted as
 * debug.getinfo counts them), or, when that frame is C or gone (the
 * chunk tail-called a constructor: `return w.sequential{...}`), the
 * workflow file's last line run, else its name.  debug.getinfo would
 * build a table for each node a workflow makes.
 */
static int
l_where(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);
	lua_Debug ar;

	if (lua_getstack(L, (int)luaL_optinteger(L, 1, 3), &ar) &&
	    lua_getinfo(L, "Sl", &ar) && strcmp(ar.what, "C") != 0 &&
	    ar.currentline >= 0) {
		lua_pushfstring(L, "%s:%d", ar.short_src, ar.currentline);
		return 1;
	}
	if (e->load_line > 0)
		lua_pushfstring(L, "%s:%d", e->script_file, e->load_line);
	else
		lua_pushstring(L, e->script_file);
	return 1;
}

static int
l_script_dir(lua_State *L)
{
	lua_pushstring(L, luaeng_of(L)->script_dir);
	return 1;
}

/* State handles: full userdata holding a struct state *. */
static struct state **
check_state(lua_State *L, int idx)
{
	struct state **sp = luaL_checkudata(L, idx, STATE_MT);

	if (*sp == NULL)
		luaL_error(L, "state handle already freed");
	return sp;
}

static int
l_state_gc(lua_State *L)
{
	struct state **sp = luaL_checkudata(L, 1, STATE_MT);

	state_free(*sp);
	*sp = NULL;
	return 0;
}

/* Push a new handle for st; parent_idx keeps the parent alive. */
static void
push_state(lua_State *L, struct state *st, int parent_idx)
{
	struct state **sp = lua_newuserdatauv(L, sizeof *sp, 1);

	*sp = st;
	luaL_setmetatable(L, STATE_MT);
	if (parent_idx != 0) {
		lua_pushvalue(L, parent_idx);
		lua_setiuservalue(L, -2, 1);
	}
}

static int
l_state_new(lua_State *L)
{
	json_t *init = lua_isnoneornil(L, 1) ? json_object() :
	    check_json(L, 1, "initial state");

	if (!json_is_object(init)) {
		json_decref(init);
		return luaL_error(L, "the run input must be a JSON object");
	}
	push_state(L, state_new(init), 0);
	json_decref(init);
	return 1;
}

static int
l_state_fork(lua_State *L)
{
	struct state **sp = check_state(L, 1);

	push_state(L, state_fork(*sp), 1);
	return 1;
}

static int
l_state_get(lua_State *L)
{
	struct state **sp = check_state(L, 1);
	json_t *v = state_get(*sp, luaL_checkstring(L, 2));

	if (v == NULL)
		lua_pushnil(L);
	else
		luajson_push(L, v);
	return 1;
}

/* core.state_set(st, key, value) -> true | nil, why value is not JSON */
static int
l_state_set(lua_State *L)
{
	struct state **sp = check_state(L, 1);
	const char *key = luaL_checkstring(L, 2);
	char err[256];
	json_t *v = luajson_tree(L, 3, err, sizeof err);

	if (v == NULL)
		return push_ok_or_err(L, -1, err);
	state_set(*sp, key, v);
	lua_pushboolean(L, 1);
	return 1;
}

static int
l_state_snapshot(lua_State *L)
{
	struct state **sp = check_state(L, 1);
	json_t *j = state_snapshot(*sp);

	luajson_push(L, j);
	json_decref(j);
	return 1;
}

/* Reducers for state_merge: a Lua table key -> name or function. */
struct lua_reducers {
	lua_State	*L;
	int		 idx;
};

static enum state_reducer
lua_reducer_kind_cb(void *arg, const char *key)
{
	struct lua_reducers *r = arg;
	lua_State *L = r->L;
	enum state_reducer k = STATE_REDUCE_NONE;
	const char *s;

	lua_getfield(L, r->idx, key);
	if (lua_isfunction(L, -1))
		k = STATE_REDUCE_CUSTOM;
	else if ((s = lua_tostring(L, -1)) != NULL) {
		if (strcmp(s, "append") == 0)
			k = STATE_REDUCE_APPEND;
		else if (strcmp(s, "merge") == 0)
			k = STATE_REDUCE_MERGE;
		else if (strcmp(s, "sum") == 0)
			k = STATE_REDUCE_SUM;
	}
	lua_pop(L, 1);
	return k;
}

static int
lua_reducer_custom_cb(void *arg, const char *key, json_t *acc, json_t *val,
    json_t **out, char *err, size_t errlen)
{
	struct lua_reducers *r = arg;
	lua_State *L = r->L;
	json_t *j;

	lua_getfield(L, r->idx, key);
	if (acc != NULL)
		luajson_push(L, acc);
	else
		lua_pushnil(L);
	luajson_push(L, val);
	if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
		errf(err, errlen, "reducer for '%s': %s", key,
		    lua_tostring(L, -1));
		lua_pop(L, 1);
		return -1;
	}
	j = luajson_tree(L, -1, err, errlen);
	lua_pop(L, 1);
	if (j == NULL)
		return -1;
	*out = j;
	return 0;
}

/* core.state_merge(parent, name, names, states, reducers) -> true | nil, err */
static int
l_state_merge(lua_State *L)
{
	struct state **parent = check_state(L, 1);
	const char *name = luaL_checkstring(L, 2);
	struct state_reducers sr;
	struct lua_reducers lr;
	struct state_branch *br;
	char err[512];
	lua_Integer n, i;
	int rv;

	luaL_checktype(L, 3, LUA_TTABLE);
	luaL_checktype(L, 4, LUA_TTABLE);
	luaL_checktype(L, 5, LUA_TTABLE);
	n = (lua_Integer)lua_rawlen(L, 3);
	br = xcalloc((size_t)n + 1, sizeof *br);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, 3, i);
		br[i - 1].name = lua_tostring(L, -1);
		lua_pop(L, 1);	/* the names table keeps the string alive */
		lua_rawgeti(L, 4, i);
		br[i - 1].st = *check_state(L, -1);
		lua_pop(L, 1);
	}
	lr.L = L;
	lr.idx = 5;
	sr.kind = lua_reducer_kind_cb;
	sr.custom = lua_reducer_custom_cb;
	sr.arg = &lr;
	rv = state_merge(*parent, name, br, (size_t)n, &sr, err, sizeof err);
	free(br);
	return push_ok_or_err(L, rv, err);
}

/* core.render(template, state) -> string | nil, err */
static int
l_render(lua_State *L)
{
	const char *tmpl = luaL_checkstring(L, 1);
	struct state **sp = check_state(L, 2);
	char *out = NULL, err[256];

	if (template_render(tmpl, *sp, &out, NULL, err, sizeof err) != 0) {
		lua_pushnil(L);
		lua_pushstring(L, err);
		return 2;
	}
	lua_pushstring(L, out);
	free(out);
	return 1;
}

/* core.model(path, span, parent, opts_text, request_text) -> ticket */
static int
l_model(lua_State *L)
{
	struct luaeng *e = luaeng_of(L);
	char err[512];
	int64_t t;

	need_coord(L);
	if (e->gw == NULL)
		return luaL_error(L, "model calls are not available here");
	t = gateway_call(e->gw, luaL_checkstring(L, 1), luaL_checkinteger(L, 2),
	    luaL_optinteger(L, 3, 0), luaL_checkstring(L, 4),
	    luaL_checkstring(L, 5), err, sizeof err);
	if (t < 0)
		return push_ok_or_err(L, -1, err);
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
	return push_ok_or_err(L, rv, err);
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
	return push_ok_or_err(L, rv, err);
}

/* core.schema_validate(schema, value) -> true | nil, err */
static int
l_schema_validate(lua_State *L)
{
	char err[512];
	json_t *s = check_json(L, 1, "schema");
	json_t *v = check_json(L, 2, "value");
	int rv = schema_validate(s, v, err, sizeof err);

	json_decref(s);
	json_decref(v);
	return push_ok_or_err(L, rv, err);
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

static const luaL_Reg core_funcs[] = {
	{ "event", l_event },
	{ "resume", l_resume },
	{ "event_json", l_event_json },
	{ "event_kv", l_event_kv },
	{ "submit", l_submit },
	{ "grant", l_grant },
	{ "model", l_model },
	{ "provider", l_provider },
	{ "price", l_price },
	{ "schema_check", l_schema_check },
	{ "schema_validate", l_schema_validate },
	{ "json_decode", l_json_decode },
	{ "mono", l_mono },
	{ "span_base", l_span_base },
	{ "may_bound", l_may_bound },
	{ "runner_now", l_runner_now },
	{ "runner_random", l_runner_random },
	{ "json_encode", l_json_encode },
	{ "json_check", l_json_check },
	{ "json_copy", l_json_copy },
	{ "array", l_array },
	{ "script_dir", l_script_dir },
	{ "where", l_where },
	{ "state_new", l_state_new },
	{ "state_fork", l_state_fork },
	{ "state_get", l_state_get },
	{ "state_set", l_state_set },
	{ "state_snapshot", l_state_snapshot },
	{ "state_merge", l_state_merge },
	{ "render", l_render },
	{ NULL, NULL }
};

/* Sandbox ---------------------------------------------------------------- */

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
static void
push_sandbox(lua_State *L)
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

/* Load an embedded library module, calling it with the given args. */
static int
load_module(struct luaeng *e, const char *module, int nargs, char *err,
    size_t errlen)
{
	lua_State *L = e->L;
	const struct luaeng_source *s;

	for (s = luaeng_sources; s->module != NULL; s++)
		if (strcmp(s->module, module) == 0)
			break;
	if (s->module == NULL) {
		errf(err, errlen, "internal: no embedded module %s", module);
		return -1;
	}
	if (luaL_loadbufferx(L, s->src, s->len, s->chunkname, "t") != LUA_OK) {
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
	luaL_newmetatable(L, STATE_MT);
	lua_pushcfunction(L, l_state_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);

	/* weft = load(init.lua)(core); runner = load(runner.lua)(core, weft) */
	luaL_newlib(L, core_funcs);
	lua_pushlightuserdata(L, NULL);
	lua_setfield(L, -2, "null");
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
luaeng_detach(struct luaeng *e)
{
	if (e != NULL)
		e->coord = NULL;
}

void
luaeng_free(struct luaeng *e)
{
	size_t i;

	if (e == NULL)
		return;
	e->coord = NULL;
	lua_close(e->L);
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
	push_sandbox(L);
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
luaeng_start(struct luaeng *e, struct coord *c, json_t *input,
    json_t *budget, struct coord_sink *sink, char *err, size_t errlen)
{
	lua_State *L = e->L;

	e->coord = c;
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
	    "paused" : "failed";
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
