/*
 * luapat.h: weft's own string.find, string.match, string.gmatch,
 * string.gsub and string.rep for workflow code.
 *
 * Written from the Lua 5.4 reference manual (section 6.4.1, "Patterns")
 * to give the same results as the stock functions, with one difference:
 * a match that backtracks for a long time, or a string.rep that copies a
 * lot, stops every few thousand steps to call luapat_poll, which may raise
 * a Lua error (the time limit, a cancelled run).  The stock functions run
 * inside one C call that no hook can interrupt: ".-.-.-.-b" on 3000
 * characters takes minutes there.  A plain find (no magic characters, or
 * plain = true) uses memmem, linear in the subject.
 */
#ifndef WEFT_LUAPAT_H
#define WEFT_LUAPAT_H

#include <lua.h>

/*
 * Called every few thousand steps of work with the calling function's
 * lua_State; may raise a Lua error (it must not return to stop).  NULL:
 * nothing is polled.  Set once by the embedding (lua/luaeng.c).
 */
extern void (*luapat_poll)(lua_State *);

/* Set find, match, gmatch, gsub and rep in the table at idx. */
void luapat_register(lua_State *L, int idx);

#endif
