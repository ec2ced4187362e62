/*
 * luaeng_int.h: what the files of the Lua embedding share (not for
 * callers outside lua/: they use luaeng.h).
 *
 * lua/luaeng.c holds the state (allocator, loading, the runner glue, the
 * public API) and opens the core libraries, each a luaL_Reg table of one
 * job filled into the `core` table that the modules of lua/weft/
 * (init.lua, runner.lua and the modules they load) receive:
 *   lua/luastop.c     the time limit and cancellation; core.resume
 *   lua/lcore_run.c   events, task submission, grants, where
 *   lua/lcore_time.c  time and randomness, recorded for replay
 *   lua/lcore_json.c  JSON and schema checks
 *   lua/lcore_state.c state handles, merges, templates
 *   lua/lcore_model.c model calls, providers and prices (the gateway)
 * lua/luasandbox.c builds the environment workflow code runs in.
 */
#ifndef WEFT_LUAENG_INT_H
#define WEFT_LUAENG_INT_H

#include <limits.h>
#include <signal.h>
#include <stdint.h>

#include <jansson.h>
#include <lua.h>
#include <lauxlib.h>

#include "lua/luajson.h"

struct crun;
struct gateway;
struct approvals;

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
	struct crun	*run;
	json_t		*vars;		/* core.var: name -> string */
	struct gateway	*gw;		/* model calls, NULL offline */
	struct approvals *ap;		/* w.approval, NULL: none */
	uint64_t	 rng;
	int		 internal_error;
	char		*internal_msg;
	struct jbuf	 jb;		/* reused encode buffer */
	struct jbuf	 jbs[5];	/* for l_submit */
};

/* The engine stored in the registry's extra space. */
static inline struct luaeng *
luaeng_of(lua_State *L)
{
	return *(struct luaeng **)lua_getextraspace(L);
}

/* Helpers of the core functions (lua/luaeng.c). */
/* The run in the coordinator, or raise "no run is in progress". */
struct crun *luaeng_need_run(lua_State *);
/* Return true, or nil and err (when rv != 0): Lua's usual failure shape. */
int luaeng_ok_or_err(lua_State *, int rv, const char *err);
/* The value at idx as a new JSON reference, or raise naming what. */
json_t *luaeng_check_json(lua_State *, int idx, const char *what);
/* Encode the value at idx into b (reset first) or raise naming what. */
void luaeng_check_json_text(lua_State *, int idx, const char *what,
    struct jbuf *b);

/*
 * Stopping workflow code (lua/luastop.c).  luaeng_watch arms (secs > 0)
 * or disarms (0) the time limit around a stretch of Lua work;
 * luaeng_chain holds (1) or releases (0) the chained SIGINT and SIGTERM
 * handlers; luaeng_alarm is the SIGALRM handler and luaeng_poll the
 * luapat_poll of lua/luapat.c.
 */
void luaeng_watch(struct luaeng *, int secs);
void luaeng_chain(struct luaeng *, int on);
void luaeng_alarm(int sig);
void luaeng_poll(lua_State *);

/* Push the environment workflow code runs in (lua/luasandbox.c). */
void luaeng_push_sandbox(lua_State *);

/* The core libraries: each fills its functions into the table on top. */
int lcore_open_stop(lua_State *);
int lcore_open_run(lua_State *);
int lcore_open_time(lua_State *);
int lcore_open_json(lua_State *);
int lcore_open_state(lua_State *);
int lcore_open_model(lua_State *);
int lcore_open_approval(lua_State *);

#endif
