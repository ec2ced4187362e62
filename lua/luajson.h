/*
 * luajson.h: Lua values <-> JSON for the embedding (lua/luaeng.c).
 *
 * Lua -> JSON: a table is an array when it has the array metatable
 * (luajson_push_array_mt) or is a non-empty sequence, else an object whose
 * keys must all be strings (written sorted); nil and weft.null are null.
 * A value nests at most LUAJSON_DEPTH tables; a table that contains
 * itself (a cycle, which JSON cannot hold) and one nested deeper are
 * errors that name the key path, as ".a.list[2].back" (Lua indexes,
 * from 1).  The same table reached twice without a cycle is written
 * twice.  The conversion grows the Lua stack as it goes and never raises.
 *
 * JSON -> Lua: arrays get the array metatable, null is weft.null (a light
 * userdata NULL).  Its depth is bounded by the JSON parser (jansson's
 * 2048 levels); it may raise a Lua error (memory).
 */
#ifndef WEFT_LUAJSON_H
#define WEFT_LUAJSON_H

#include <stddef.h>
#include <jansson.h>
#include <lua.h>

#define LUAJSON_DEPTH	64	/* tables inside each other, at most */

/* A growing text buffer, NUL-terminated; free p when done. */
struct jbuf {
	char	*p;
	size_t	 len, cap;
};

/* Append n bytes of s. */
void jbuf_put(struct jbuf *, const char *s, size_t n);
/* Append s as a JSON string; -1 with err if it is not UTF-8. */
int jbuf_string(struct jbuf *, const char *s, size_t n, char *err,
    size_t errlen);

/* Make the array metatable in L's registry (once per state). */
void luajson_init(lua_State *L);
/* Push the array metatable. */
void luajson_push_array_mt(lua_State *L);
/* The value at idx as a new JSON tree, or NULL with err. */
json_t *luajson_tree(lua_State *L, int idx, char *err, size_t errlen);
/* Append the value at idx to b as JSON text (keys sorted); -1 with err
   (b then holds part of it). */
int luajson_append(lua_State *L, int idx, struct jbuf *b, char *err,
    size_t errlen);
/* Push j (borrowed) as a Lua value. */
void luajson_push(lua_State *L, json_t *j);

#endif
