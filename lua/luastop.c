/*
 * luastop.c: stopping workflow code that runs too long or while the run
 * is cancelled (the signals, the hook they arm, the watchdog), and
 * core.resume, which tracks the thread running so the hook finds it.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>

#include <lua.h>
#include <lauxlib.h>

#include "lua/luaeng_int.h"

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
void
luaeng_poll(lua_State *L)
{
	if (luaeng_stopping(luaeng_of(L)))
		luaeng_raise_stop(L, 1);
}

void
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
void
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
void
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

static const luaL_Reg stop_funcs[] = {
	{ "resume", l_resume },
	{ NULL, NULL }
};

/* Open the library: core.resume. */
int
lcore_open_stop(lua_State *L)
{
	luaL_setfuncs(L, stop_funcs, 0);
	return 0;
}
