/* luajson.c: Lua values <-> JSON, with cycles and depth caught. */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include "runtime/util.h"
#include "lua/luajson.h"

static char ARRAY_MT_KEY;	/* registry key of the array metatable */

/* Text buffers ----------------------------------------------------------- */

static void
jbuf_reserve(struct jbuf *b, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		while (b->len + n + 1 > b->cap)
			b->cap = b->cap ? b->cap * 2 : 256;
		b->p = xrealloc(b->p, b->cap);
	}
}

void
jbuf_put(struct jbuf *b, const char *s, size_t n)
{
	jbuf_reserve(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len, i;

	if (c < 0xc2 || c > 0xf4)
		return 0;
	len = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0) ||
	    (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
		return 0;
	return len;
}

int
jbuf_string(struct jbuf *b, const char *str, size_t n, char *err,
    size_t errlen)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run, k;
	char esc[7];

	jbuf_reserve(b, n + 2);
	b->p[b->len++] = '"';
	while (i < n) {
		for (run = i; run < n && s[run] >= 0x20 && s[run] < 0x80 &&
		    s[run] != '"' && s[run] != '\\'; run++)
			;
		if (run > i) {
			jbuf_put(b, str + i, run - i);
			i = run;
			continue;
		}
		if (s[i] >= 0x80) {
			if ((k = utf8_seq(s + i, n - i)) == 0) {
				errf(err, errlen, "string is not valid UTF-8");
				return -1;
			}
			jbuf_put(b, str + i, k);
			i += k;
			continue;
		}
		switch (s[i]) {
		case '"': jbuf_put(b, "\\\"", 2); break;
		case '\\': jbuf_put(b, "\\\\", 2); break;
		case '\n': jbuf_put(b, "\\n", 2); break;
		case '\r': jbuf_put(b, "\\r", 2); break;
		case '\t': jbuf_put(b, "\\t", 2); break;
		case '\b': jbuf_put(b, "\\b", 2); break;
		case '\f': jbuf_put(b, "\\f", 2); break;
		default:
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[s[i] >> 4];
			esc[5] = hex[s[i] & 15];
			jbuf_put(b, esc, 6);
		}
		i++;
	}
	jbuf_put(b, "\"", 1);
	return 0;
}

/* Where a conversion is -------------------------------------------------- */

/*
 * The tables a conversion is inside, outermost first (a table met again
 * among them is a cycle), and the key or index taken in each: the path
 * that an error names.  Only the path is kept, not every table seen, so a
 * table reached twice by different paths is fine.
 */
struct jwalk {
	const void	*tab[LUAJSON_DEPTH];
	struct {
		const char	*key;	/* NULL: index idx */
		size_t		 len;
		lua_Integer	 idx;
	} seg[LUAJSON_DEPTH];
	int		 depth;
	char		*err;
	size_t		 errlen;
};

#define PATH_SHOWN	100	/* characters of a path before "..." */
#define KEY_SHOWN	32	/* characters of a quoted key */

/* Whether the key is a plain name (written .key), not ["key"]. */
static int
plain_key(const char *k, size_t len)
{
	size_t i;

	if (len == 0 || len > KEY_SHOWN || (k[0] >= '0' && k[0] <= '9'))
		return 0;
	for (i = 0; i < len; i++)
		if (!(k[i] == '_' || (k[i] >= 'a' && k[i] <= 'z') ||
		    (k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= '0' &&
		    k[i] <= '9')))
			return 0;
	return 1;
}

/* Append the path of the first n segments to b, shortened when long. */
static void
jpath(const struct jwalk *w, int n, struct jbuf *b)
{
	char tmp[32];
	size_t i, shown;
	int d;

	for (d = 0; d < n; d++) {
		if (b->len > PATH_SHOWN) {
			jbuf_put(b, "...", 3);
			return;
		}
		if (w->seg[d].key == NULL) {
			snprintf(tmp, sizeof tmp, "[%lld]",
			    (long long)w->seg[d].idx);
			jbuf_put(b, tmp, strlen(tmp));
			continue;
		}
		if (plain_key(w->seg[d].key, w->seg[d].len)) {
			jbuf_put(b, ".", 1);
			jbuf_put(b, w->seg[d].key, w->seg[d].len);
			continue;
		}
		jbuf_put(b, "[\"", 2);
		shown = w->seg[d].len < KEY_SHOWN ? w->seg[d].len : KEY_SHOWN;
		for (i = 0; i < shown; i++) {
			unsigned char c = (unsigned char)w->seg[d].key[i];

			if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
				jbuf_put(b, (const char *)&c, 1);
			else {
				snprintf(tmp, sizeof tmp, "\\%u", c);
				jbuf_put(b, tmp, strlen(tmp));
			}
		}
		if (shown < w->seg[d].len)
			jbuf_put(b, "...", 3);
		jbuf_put(b, "\"]", 2);
	}
}

/* Fail with a message, naming the path of the value at hand. */
static int __attribute__((format(printf, 2, 3)))
jfail(struct jwalk *w, const char *fmt, ...)
{
	struct jbuf path = { NULL, 0, 0 };
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (w->depth == 0) {
		errf(w->err, w->errlen, "%s", msg);
		return -1;
	}
	jpath(w, w->depth, &path);
	errf(w->err, w->errlen, "%s at %s", msg, path.p);
	free(path.p);
	return -1;
}

/* Go into the table at idx: not one we are inside, not too deep. */
static int
jenter(lua_State *L, int idx, struct jwalk *w)
{
	const void *t = lua_topointer(L, idx);
	int d;

	for (d = 0; d < w->depth; d++)
		if (w->tab[d] == t)
			return jfail(w, "a table that contains itself");
	if (w->depth == LUAJSON_DEPTH)
		return jfail(w, "nested more than %d levels", LUAJSON_DEPTH);
	if (!lua_checkstack(L, 8))
		return jfail(w, "Lua stack exhausted");
	w->tab[w->depth++] = t;
	return 0;
}

/* The next values are under key k (NULL: index i) of the table at hand. */
static void
jstep(struct jwalk *w, const char *k, size_t len, lua_Integer i)
{
	w->seg[w->depth - 1].key = k;
	w->seg[w->depth - 1].len = len;
	w->seg[w->depth - 1].idx = i;
}

/* A table's shape: an array of n, or an object of sorted string keys. */
struct jkey {
	const char	*s;
	size_t		 len;
	int		 slot;		/* stack index of the key */
};

struct jtab {
	int		 is_array;
	lua_Integer	 n;
	struct jkey	*keys, small[16];
	size_t		 nk;
};

static int
jkey_cmp(const void *a, const void *b)
{
	const struct jkey *x = a, *y = b;
	int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);

	return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/* Fail about the table at hand itself: its path, not a key's in it. */
static int
jfail_table(struct jwalk *w, const char *msg)
{
	w->depth--;
	jfail(w, "%s", msg);
	w->depth++;
	return -1;
}

/*
 * Look at the table at idx.  Its string keys are left on the stack (so
 * values are fetched with lua_rawget on the key itself, never interning
 * a C string again) and sorted; free t->keys if not t->small.
 */
static int
jscan(lua_State *L, int idx, struct jwalk *w, struct jtab *t)
{
	size_t cap = nitems(t->small);
	lua_Integer nonstr = 0;

	t->keys = t->small;
	t->nk = 0;
	t->is_array = 0;
	if (lua_getmetatable(L, idx)) {
		luajson_push_array_mt(L);
		t->is_array = lua_rawequal(L, -1, -2);
		lua_pop(L, 2);
	}
	t->n = (lua_Integer)lua_rawlen(L, idx);
	if (t->is_array)
		return 0;
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		lua_pop(L, 1);
		if (lua_type(L, -1) != LUA_TSTRING) {
			nonstr++;
			continue;
		}
		if (t->nk == cap) {
			cap *= 2;
			t->keys = t->keys == t->small ? memcpy(xcalloc(cap,
			    sizeof *t->keys), t->small, sizeof t->small) :
			    xrealloc(t->keys, cap * sizeof *t->keys);
		}
		if (!lua_checkstack(L, 3)) {
			lua_pop(L, 1);
			return jfail_table(w, "a table with too many keys");
		}
		lua_pushvalue(L, -1);		/* keep a copy */
		lua_insert(L, -2);
		t->keys[t->nk].slot = lua_gettop(L) - 1;
		t->keys[t->nk].s = lua_tolstring(L, -2, &t->keys[t->nk].len);
		t->nk++;
	}
	if (nonstr > 0 && !(t->nk == 0 && nonstr == t->n))
		return jfail_table(w, "a table with non-string keys cannot "
		    "be JSON");
	t->is_array = t->n > 0 && t->nk == 0;
	qsort(t->keys, t->nk, sizeof *t->keys, jkey_cmp);
	return 0;
}

static void
jtab_free(struct jtab *t)
{
	if (t->keys != t->small)
		free(t->keys);
}

/* Lua -> JSON tree -------------------------------------------------------- */

static json_t *jtree_value(lua_State *, int, struct jwalk *);

static json_t *
jtree_table(lua_State *L, int idx, struct jwalk *w)
{
	int base = lua_gettop(L);
	json_t *out = NULL, *v;
	struct jtab t;
	lua_Integer i;
	size_t k;

	if (jenter(L, idx, w) != 0)
		return NULL;
	if (jscan(L, idx, w, &t) != 0)
		goto done;
	out = t.is_array ? json_array() : json_object();
	for (i = 1; t.is_array && i <= t.n; i++) {
		jstep(w, NULL, 0, i);
		lua_rawgeti(L, idx, i);
		v = jtree_value(L, lua_gettop(L), w);
		lua_pop(L, 1);
		if (v == NULL || json_array_append_new(out, v) != 0)
			goto fail;
	}
	for (k = 0; !t.is_array && k < t.nk; k++) {
		jstep(w, t.keys[k].s, t.keys[k].len, 0);
		lua_pushvalue(L, t.keys[k].slot);
		lua_rawget(L, idx);
		v = jtree_value(L, lua_gettop(L), w);
		lua_pop(L, 1);
		if (v == NULL)
			goto fail;
		if (json_object_setn_new(out, t.keys[k].s, t.keys[k].len,
		    v) != 0) {
			jfail(w, "key is not valid UTF-8");
			goto fail;
		}
	}
	goto done;
fail:
	json_decref(out);
	out = NULL;
done:
	jtab_free(&t);
	lua_settop(L, base);
	w->depth--;
	return out;
}

static json_t *
jtree_value(lua_State *L, int idx, struct jwalk *w)
{
	const char *s;
	size_t len;
	lua_Number d;
	json_t *j;

	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		return json_null();
	case LUA_TLIGHTUSERDATA:
		if (lua_touserdata(L, idx) == NULL)
			return json_null();
		break;
	case LUA_TBOOLEAN:
		return json_boolean(lua_toboolean(L, idx));
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx))
			return json_integer(lua_tointeger(L, idx));
		d = lua_tonumber(L, idx);
		if (!isfinite(d)) {
			jfail(w, "%g cannot be JSON", d);
			return NULL;
		}
		return json_real(d);
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &len);
		if ((j = json_stringn(s, len)) == NULL)
			jfail(w, "string is not valid UTF-8");
		return j;
	case LUA_TTABLE:
		return jtree_table(L, idx, w);
	default:
		break;
	}
	jfail(w, "a %s cannot be JSON", luaL_typename(L, idx));
	return NULL;
}

json_t *
luajson_tree(lua_State *L, int idx, char *err, size_t errlen)
{
	struct jwalk w;

	w.depth = 0;
	w.err = err;
	w.errlen = errlen;
	return jtree_value(L, lua_absindex(L, idx), &w);
}

/* Lua -> JSON text -------------------------------------------------------- */

/*
 * The hot path: events and tool arguments are encoded straight to text,
 * with no jansson tree in between.  Same rules as the tree.
 */
static int jtext_value(lua_State *, int, struct jbuf *, struct jwalk *);

static int
jtext_table(lua_State *L, int idx, struct jbuf *b, struct jwalk *w)
{
	int base = lua_gettop(L), rv;
	struct jtab t;
	lua_Integer i;
	size_t k;

	if (jenter(L, idx, w) != 0)
		return -1;
	if ((rv = jscan(L, idx, w, &t)) != 0)
		goto done;
	jbuf_put(b, t.is_array ? "[" : "{", 1);
	for (i = 1; t.is_array && i <= t.n && rv == 0; i++) {
		if (i > 1)
			jbuf_put(b, ",", 1);
		jstep(w, NULL, 0, i);
		lua_rawgeti(L, idx, i);
		rv = jtext_value(L, lua_gettop(L), b, w);
		lua_pop(L, 1);
	}
	for (k = 0; !t.is_array && k < t.nk && rv == 0; k++) {
		if (k > 0)
			jbuf_put(b, ",", 1);
		jstep(w, t.keys[k].s, t.keys[k].len, 0);
		if (jbuf_string(b, t.keys[k].s, t.keys[k].len, w->err,
		    w->errlen) != 0) {
			rv = jfail(w, "key is not valid UTF-8");
			break;
		}
		jbuf_put(b, ":", 1);
		lua_pushvalue(L, t.keys[k].slot);
		lua_rawget(L, idx);
		rv = jtext_value(L, lua_gettop(L), b, w);
		lua_pop(L, 1);
	}
	jbuf_put(b, t.is_array ? "]" : "}", 1);
done:
	jtab_free(&t);
	lua_settop(L, base);
	w->depth--;
	return rv;
}

static int
jtext_value(lua_State *L, int idx, struct jbuf *b, struct jwalk *w)
{
	char num[64];
	const char *s;
	size_t len;
	lua_Number d;
	int n;

	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		jbuf_put(b, "null", 4);
		return 0;
	case LUA_TLIGHTUSERDATA:
		if (lua_touserdata(L, idx) != NULL)
			break;
		jbuf_put(b, "null", 4);
		return 0;
	case LUA_TBOOLEAN:
		if (lua_toboolean(L, idx))
			jbuf_put(b, "true", 4);
		else
			jbuf_put(b, "false", 5);
		return 0;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx)) {
			n = snprintf(num, sizeof num, "%lld",
			    (long long)lua_tointeger(L, idx));
			jbuf_put(b, num, (size_t)n);
			return 0;
		}
		d = lua_tonumber(L, idx);
		if (!isfinite(d))
			return jfail(w, "%g cannot be JSON", d);
		n = snprintf(num, sizeof num, "%.17g", d);
		if (strpbrk(num, ".eE") == NULL)
			n += snprintf(num + n, sizeof num - (size_t)n, ".0");
		jbuf_put(b, num, (size_t)n);
		return 0;
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &len);
		if (jbuf_string(b, s, len, w->err, w->errlen) != 0)
			return jfail(w, "string is not valid UTF-8");
		return 0;
	case LUA_TTABLE:
		return jtext_table(L, idx, b, w);
	default:
		break;
	}
	return jfail(w, "a %s cannot be JSON", luaL_typename(L, idx));
}

int
luajson_append(lua_State *L, int idx, struct jbuf *b, char *err,
    size_t errlen)
{
	struct jwalk w;

	w.depth = 0;
	w.err = err;
	w.errlen = errlen;
	return jtext_value(L, lua_absindex(L, idx), b, &w);
}

/* JSON -> Lua ------------------------------------------------------------- */

void
luajson_init(lua_State *L)
{
	lua_newtable(L);
	lua_pushstring(L, "array");
	lua_setfield(L, -2, "__name");
	lua_rawsetp(L, LUA_REGISTRYINDEX, &ARRAY_MT_KEY);
}

void
luajson_push_array_mt(lua_State *L)
{
	lua_rawgetp(L, LUA_REGISTRYINDEX, &ARRAY_MT_KEY);
}

void
luajson_push(lua_State *L, json_t *j)
{
	const char *k;
	json_t *v;
	size_t i;

	/* Each level holds its table and the value being set. */
	luaL_checkstack(L, 4, "JSON too deep");
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		lua_createtable(L, 0, (int)json_object_size(j));
		json_object_foreach(j, k, v) {
			luajson_push(L, v);
			lua_setfield(L, -2, k);
		}
		break;
	case JSON_ARRAY:
		lua_createtable(L, (int)json_array_size(j), 0);
		json_array_foreach(j, i, v) {
			luajson_push(L, v);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		luajson_push_array_mt(L);
		lua_setmetatable(L, -2);
		break;
	case JSON_STRING:
		lua_pushlstring(L, json_string_value(j), json_string_length(j));
		break;
	case JSON_INTEGER:
		lua_pushinteger(L, json_integer_value(j));
		break;
	case JSON_REAL:
		lua_pushnumber(L, json_real_value(j));
		break;
	case JSON_TRUE:
		lua_pushboolean(L, 1);
		break;
	case JSON_FALSE:
		lua_pushboolean(L, 0);
		break;
	case JSON_NULL:
		lua_pushlightuserdata(L, NULL);
		break;
	}
}
