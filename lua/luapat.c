/* luapat.c: Lua 5.4 pattern matching that can be interrupted. */
#include "config.h"

#include <ctype.h>
#include <limits.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include "lua/luapat.h"

/*
 * The manual's limits: 32 captures (LUA_MAXCAPTURES), and a pattern nests
 * at most 200 matches inside each other (each quantified item and each
 * capture is one; the stock library's MAXCCALLS), so the C stack holds.
 * A string made by rep is at most INT_MAX bytes, as the stock library's.
 */
#define PM_CAPTURES	32
#define PM_NESTING	200
#define PM_POLL		4096		/* steps between two polls */
#define REP_CHUNK	(1 << 20)	/* bytes copied between two polls */

#define CAP_OPEN	(-1)		/* a capture not closed yet */
#define CAP_POS		(-2)		/* a position capture: () */

void (*luapat_poll)(lua_State *);

/* One match of a pattern against a subject. */
struct pm {
	lua_State	*L;
	const char	*src, *src_end;	/* the subject */
	const char	*pat_end;	/* the pattern's end */
	int		 nesting;	/* matches that may still nest */
	int		 ncap;
	int		 ticks;		/* steps left before the next poll */
	struct {
		const char	*at;
		ptrdiff_t	 len;	/* or CAP_OPEN, CAP_POS */
	} cap[PM_CAPTURES];
};

#define UC(c)	((unsigned char)(c))

static const char *pm_match(struct pm *, const char *, const char *);

/* Count one step; poll now and then. */
static void
pm_step(struct pm *m)
{
	if (--m->ticks > 0)
		return;
	m->ticks = PM_POLL;
	if (luapat_poll != NULL)
		luapat_poll(m->L);
}

static void
pm_init(struct pm *m, lua_State *L, const char *s, size_t ls, const char *p,
    size_t lp)
{
	m->L = L;
	m->src = s;
	m->src_end = s + ls;
	m->pat_end = p + lp;
	m->ticks = PM_POLL;
}

/* Before each attempt: no captures, full nesting allowance. */
static void
pm_reset(struct pm *m)
{
	m->ncap = 0;
	m->nesting = PM_NESTING;
}

/* Whether c is in class %cl (cl a letter), or is cl (anything else). */
static int
class_has(int c, int cl)
{
	int in;

	switch (tolower(cl)) {
	case 'a': in = isalpha(c); break;
	case 'c': in = iscntrl(c); break;
	case 'd': in = isdigit(c); break;
	case 'g': in = isgraph(c); break;
	case 'l': in = islower(c); break;
	case 'p': in = ispunct(c); break;
	case 's': in = isspace(c); break;
	case 'u': in = isupper(c); break;
	case 'w': in = isalnum(c); break;
	case 'x': in = isxdigit(c); break;
	case 'z': in = c == 0; break;	/* not in the manual, but in Lua */
	default:
		return cl == c;
	}
	if (isupper(cl))
		return !in;
	return in != 0;
}

/*
 * Whether c is in the set [...] that starts at p (its '[') and ends at
 * close (its ']').  A '-' between two characters makes a range; %x is a
 * class or an escaped character; a leading '^' complements.
 */
static int
set_has(int c, const char *p, const char *close)
{
	int want = 1;

	p++;
	if (*p == '^') {
		want = 0;
		p++;
	}
	for (; p < close; p++) {
		if (*p == '%') {
			p++;
			if (class_has(c, UC(*p)))
				return want;
		} else if (p[1] == '-' && p + 2 < close) {
			if (UC(p[0]) <= c && c <= UC(p[2]))
				return want;
			p += 2;
		} else if (UC(*p) == c)
			return want;
	}
	return !want;
}

/*
 * The end of the single-character class at p: past "x", "%x" or the
 * "[...]" (the first character of a set, after an optional '^', is part
 * of it even when it is ']').
 */
static const char *
class_end(struct pm *m, const char *p)
{
	char c = *p++;

	if (c == '%') {
		if (p == m->pat_end)
			luaL_error(m->L, "malformed pattern (ends with '%%')");
		return p + 1;
	}
	if (c != '[')
		return p;
	if (*p == '^')
		p++;
	do {
		if (p == m->pat_end)
			luaL_error(m->L, "malformed pattern (missing ']')");
		c = *p++;
		if (c == '%' && p < m->pat_end)
			p++;
	} while (*p != ']');
	return p + 1;
}

/* Whether the subject character at s is in the class p..ep. */
static int
item_at(struct pm *m, const char *s, const char *p, const char *ep)
{
	int c;

	if (s >= m->src_end)
		return 0;
	c = UC(*s);
	switch (*p) {
	case '.':
		return 1;
	case '%':
		return class_has(c, UC(p[1]));
	case '[':
		return set_has(c, p, ep - 1);
	default:
		return UC(*p) == c;
	}
}

/* x* and x+: as many as possible, then fewer until the rest matches. */
static const char *
pm_greedy(struct pm *m, const char *s, const char *p, const char *ep)
{
	ptrdiff_t n = 0;
	const char *r;

	while (item_at(m, s + n, p, ep)) {
		pm_step(m);
		n++;
	}
	for (; n >= 0; n--)
		if ((r = pm_match(m, s + n, ep + 1)) != NULL)
			return r;
	return NULL;
}

/* x-: as few as possible, then more until the rest matches. */
static const char *
pm_lazy(struct pm *m, const char *s, const char *p, const char *ep)
{
	const char *r;

	for (;;) {
		if ((r = pm_match(m, s, ep + 1)) != NULL)
			return r;
		if (!item_at(m, s, p, ep))
			return NULL;
		s++;
	}
}

/* "(": open capture `what` at s, then match the rest from p. */
static const char *
pm_open(struct pm *m, const char *s, const char *p, ptrdiff_t what)
{
	const char *r;

	if (m->ncap >= PM_CAPTURES)
		luaL_error(m->L, "too many captures");
	m->cap[m->ncap].at = s;
	m->cap[m->ncap].len = what;
	m->ncap++;
	if ((r = pm_match(m, s, p)) == NULL)
		m->ncap--;
	return r;
}

/* ")": close the innermost open capture at s, then match the rest. */
static const char *
pm_close(struct pm *m, const char *s, const char *p)
{
	const char *r;
	int i;

	for (i = m->ncap - 1; i >= 0; i--)
		if (m->cap[i].len == CAP_OPEN)
			break;
	if (i < 0)
		luaL_error(m->L, "invalid pattern capture");
	m->cap[i].len = s - m->cap[i].at;
	if ((r = pm_match(m, s, p)) == NULL)
		m->cap[i].len = CAP_OPEN;
	return r;
}

/* %bxy at s: from an x to its balancing y; p points at x. */
static const char *
pm_balance(struct pm *m, const char *s, const char *p)
{
	int open, close, depth = 1;

	if (p >= m->pat_end - 1)
		luaL_error(m->L, "malformed pattern (missing arguments to "
		    "'%%b')");
	/* At the end, *s is the string's terminating zero. */
	if (*s != *p)
		return NULL;
	open = *p;
	close = p[1];
	while (++s < m->src_end) {
		pm_step(m);
		if (*s == close) {
			if (--depth == 0)
				return s + 1;
		} else if (*s == open)
			depth++;
	}
	return NULL;
}

/* %1..%9 at s: the text of that capture again. */
static const char *
pm_backref(struct pm *m, const char *s, int digit)
{
	int i = digit - '1';
	ptrdiff_t len;

	if (i < 0 || i >= m->ncap || m->cap[i].len == CAP_OPEN)
		luaL_error(m->L, "invalid capture index %%%d",
		    i + 1);
	len = m->cap[i].len;
	/* A position capture has no text: it never matches again. */
	if (len < 0 || m->src_end - s < len ||
	    memcmp(m->cap[i].at, s, (size_t)len) != 0)
		return NULL;
	return s + len;
}

/*
 * Match the pattern from p against the subject from s: the end of the
 * match, or NULL.  A single character (with no quantifier or a failed
 * optional one) advances in the loop; quantifiers and captures recurse,
 * at most PM_NESTING deep.
 */
static const char *
pm_match(struct pm *m, const char *s, const char *p)
{
	const char *ep, *r;
	int prev;

	if (m->nesting-- == 0)
		luaL_error(m->L, "pattern too complex");
	for (;;) {
		pm_step(m);
		if (p == m->pat_end)
			break;
		switch (*p) {
		case '(':
			if (p[1] == ')')
				s = pm_open(m, s, p + 2, CAP_POS);
			else
				s = pm_open(m, s, p + 1, CAP_OPEN);
			goto out;
		case ')':
			s = pm_close(m, s, p + 1);
			goto out;
		case '$':
			if (p + 1 == m->pat_end) {
				if (s != m->src_end)
					s = NULL;
				goto out;
			}
			break;
		case '%':
			if (p[1] == 'b') {
				if ((s = pm_balance(m, s, p + 2)) == NULL)
					goto out;
				p += 4;
				continue;
			}
			if (p[1] == 'f') {
				p += 2;
				if (*p != '[')
					luaL_error(m->L, "missing '[' after "
					    "'%%f' in pattern");
				ep = class_end(m, p);
				prev = s == m->src ? '\0' : UC(s[-1]);
				/* *s: the terminating zero at the end */
				if (set_has(prev, p, ep - 1) ||
				    !set_has(UC(*s), p, ep - 1)) {
					s = NULL;
					goto out;
				}
				p = ep;
				continue;
			}
			if (isdigit(UC(p[1]))) {
				if ((s = pm_backref(m, s, UC(p[1]))) == NULL)
					goto out;
				p += 2;
				continue;
			}
			break;
		}
		ep = class_end(m, p);
		if (!item_at(m, s, p, ep)) {
			if (*ep == '*' || *ep == '?' || *ep == '-') {
				p = ep + 1;
				continue;
			}
			s = NULL;
			goto out;
		}
		switch (*ep) {
		case '?':
			if ((r = pm_match(m, s + 1, ep + 1)) != NULL) {
				s = r;
				goto out;
			}
			p = ep + 1;
			continue;
		case '+':
			s = pm_greedy(m, s + 1, p, ep);
			goto out;
		case '*':
			s = pm_greedy(m, s, p, ep);
			goto out;
		case '-':
			s = pm_lazy(m, s, p, ep);
			goto out;
		default:
			s++;
			p = ep;
			continue;
		}
	}
out:
	m->nesting++;
	return s;
}

/* The text (or position) of capture i of the match s..e; *len its length
   or CAP_POS, when the position was pushed instead. */
static const char *
pm_capture(struct pm *m, int i, const char *s, const char *e,
    ptrdiff_t *len)
{
	if (i >= m->ncap) {
		if (i != 0)
			luaL_error(m->L, "invalid capture index %%%d", i + 1);
		*len = e - s;
		return s;
	}
	*len = m->cap[i].len;
	if (*len == CAP_OPEN)
		luaL_error(m->L, "unfinished capture");
	if (*len == CAP_POS)
		lua_pushinteger(m->L, m->cap[i].at - m->src + 1);
	return m->cap[i].at;
}

/* Push capture i (the whole match when there is none). */
static void
pm_push_capture(struct pm *m, int i, const char *s, const char *e)
{
	ptrdiff_t len;
	const char *c = pm_capture(m, i, s, e, &len);

	if (len != CAP_POS)
		lua_pushlstring(m->L, c, (size_t)len);
}

/* Push every capture, or the whole match s..e (when s is not NULL and
   there are none); returns how many. */
static int
pm_push_captures(struct pm *m, const char *s, const char *e)
{
	int i, n = m->ncap == 0 && s != NULL ? 1 : m->ncap;

	luaL_checkstack(m->L, n, "too many captures");
	for (i = 0; i < n; i++)
		pm_push_capture(m, i, s, e);
	return n;
}

/* The 1-based start position i of a string of length len, clamped. */
static size_t
start_at(lua_Integer i, size_t len)
{
	if (i > 0)
		return (size_t)i;
	if (i == 0 || i < -(lua_Integer)len)
		return 1;
	return len + (size_t)i + 1;
}

/* Whether the pattern has none of the magic characters. */
static int
is_plain(const char *p, size_t lp)
{
	size_t i;

	for (i = 0; i < lp; i++)
		if (p[i] != '\0' && strchr("^$*+?.([%-", p[i]) != NULL)
			return 0;
	return 1;
}

/* string.find (find) and string.match. */
static int
pat_find(lua_State *L, int find)
{
	size_t ls, lp, init;
	const char *s = luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	const char *at, *e;
	struct pm m;
	int anchor;

	init = start_at(luaL_optinteger(L, 3, 1), ls) - 1;
	if (init > ls) {
		luaL_pushfail(L);
		return 1;
	}
	if (find && (lua_toboolean(L, 4) || is_plain(p, lp))) {
		/* glibc's memmem is linear in the subject */
		at = lp == 0 ? s + init : memmem(s + init, ls - init, p, lp);
		if (at == NULL) {
			luaL_pushfail(L);
			return 1;
		}
		lua_pushinteger(L, at - s + 1);
		lua_pushinteger(L, at - s + (lua_Integer)lp);
		return 2;
	}
	anchor = *p == '^';
	if (anchor) {
		p++;
		lp--;
	}
	pm_init(&m, L, s, ls, p, lp);
	at = s + init;
	do {
		pm_reset(&m);
		if ((e = pm_match(&m, at, p)) != NULL) {
			if (!find)
				return pm_push_captures(&m, at, e);
			lua_pushinteger(L, at - s + 1);
			lua_pushinteger(L, e - s);
			return pm_push_captures(&m, NULL, NULL) + 2;
		}
	} while (at++ < m.src_end && !anchor);
	luaL_pushfail(L);
	return 1;
}

static int
l_find(lua_State *L)
{
	return pat_find(L, 1);
}

static int
l_match(lua_State *L)
{
	return pat_find(L, 0);
}

/* Where a gmatch iteration is. */
struct gm {
	size_t	 pos;		/* next start, 0-based */
	size_t	 last;		/* end of the last match, or SIZE_MAX */
};

/* The iterator of gmatch: upvalues subject, pattern, struct gm. */
static int
gmatch_next(lua_State *L)
{
	size_t ls, lp;
	const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
	const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
	struct gm *g = lua_touserdata(L, lua_upvalueindex(3));
	const char *e;
	struct pm m;
	size_t at;

	pm_init(&m, L, s, ls, p, lp);
	for (at = g->pos; at <= ls; at++) {
		pm_reset(&m);
		e = pm_match(&m, s + at, p);
		if (e != NULL && (size_t)(e - s) != g->last) {
			g->pos = g->last = (size_t)(e - s);
			return pm_push_captures(&m, s + at, e);
		}
	}
	g->pos = at;
	return 0;
}

/* string.gmatch(s, pattern [, init]); '^' is not an anchor here. */
static int
l_gmatch(lua_State *L)
{
	size_t ls, init;
	struct gm *g;

	luaL_checklstring(L, 1, &ls);
	luaL_checkstring(L, 2);
	init = start_at(luaL_optinteger(L, 3, 1), ls) - 1;
	if (init > ls)
		init = ls + 1;
	lua_settop(L, 2);
	g = lua_newuserdatauv(L, sizeof *g, 0);
	g->pos = init;
	g->last = SIZE_MAX;
	lua_pushcclosure(L, gmatch_next, 3);
	return 1;
}

/* A string replacement: %0..%9 are captures, %% is '%'. */
static void
gsub_string(struct pm *m, luaL_Buffer *b, const char *s, const char *e)
{
	size_t l;
	const char *r = lua_tolstring(m->L, 3, &l), *q, *c;
	ptrdiff_t len;

	while ((q = memchr(r, '%', l)) != NULL) {
		luaL_addlstring(b, r, (size_t)(q - r));
		q++;		/* at the end: the terminating zero */
		if (*q == '%')
			luaL_addchar(b, '%');
		else if (*q == '0')
			luaL_addlstring(b, s, (size_t)(e - s));
		else if (isdigit(UC(*q))) {
			c = pm_capture(m, *q - '1', s, e, &len);
			if (len == CAP_POS)
				luaL_addvalue(b);
			else
				luaL_addlstring(b, c, (size_t)len);
		} else
			luaL_error(m->L, "invalid use of '%%' in replacement "
			    "string");
		l -= (size_t)(q + 1 - r);
		r = q + 1;
	}
	luaL_addlstring(b, r, l);
}

/* Add the replacement of the match s..e; 0 if it kept the match. */
static int
gsub_one(struct pm *m, luaL_Buffer *b, const char *s, const char *e, int tr)
{
	lua_State *L = m->L;
	int n;

	if (tr == LUA_TFUNCTION) {
		lua_pushvalue(L, 3);
		n = pm_push_captures(m, s, e);
		lua_call(L, n, 1);
	} else if (tr == LUA_TTABLE) {
		pm_push_capture(m, 0, s, e);
		lua_gettable(L, 3);
	} else {
		gsub_string(m, b, s, e);
		return 1;
	}
	if (!lua_toboolean(L, -1)) {
		lua_pop(L, 1);
		luaL_addlstring(b, s, (size_t)(e - s));
		return 0;
	}
	if (!lua_isstring(L, -1))
		return luaL_error(L, "invalid replacement value (a %s)",
		    luaL_typename(L, -1));
	luaL_addvalue(b);
	return 1;
}

/* string.gsub(s, pattern, repl [, n]) */
static int
l_gsub(lua_State *L)
{
	size_t ls, lp;
	const char *s = luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	const char *at = s, *last = NULL, *e;
	int tr = lua_type(L, 3), anchor = *p == '^', changed = 0;
	lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1), n = 0;
	luaL_Buffer b;
	struct pm m;

	luaL_argexpected(L, tr == LUA_TNUMBER || tr == LUA_TSTRING ||
	    tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
	    "string/function/table");
	luaL_buffinit(L, &b);
	if (anchor) {
		p++;
		lp--;
	}
	pm_init(&m, L, s, ls, p, lp);
	while (n < max) {
		pm_reset(&m);
		e = pm_match(&m, at, p);
		if (e != NULL && e != last) {
			n++;
			changed |= gsub_one(&m, &b, at, e, tr);
			at = last = e;
		} else if (at < m.src_end) {
			pm_step(&m);
			luaL_addchar(&b, *at++);
		} else
			break;
		if (anchor)
			break;
	}
	if (!changed)
		lua_pushvalue(L, 1);
	else {
		luaL_addlstring(&b, at, (size_t)(m.src_end - at));
		luaL_pushresult(&b);
	}
	lua_pushinteger(L, n);
	return 2;
}

/*
 * string.rep(s, n [, sep]): one repetition, then the rest by copying what
 * is already there, doubling, polling between copies.
 */
static int
l_rep(lua_State *L)
{
	size_t l, lsep, total, unit, have, part, want;
	const char *s = luaL_checklstring(L, 1, &l);
	lua_Integer n = luaL_checkinteger(L, 2);
	const char *sep = luaL_optlstring(L, 3, "", &lsep);
	luaL_Buffer b;
	char *d, *rest;

	if (n <= 0 || l + lsep == 0) {
		lua_pushliteral(L, "");
		return 1;
	}
	if (l + lsep < l || l + lsep > (size_t)INT_MAX / (size_t)n)
		return luaL_error(L, "resulting string too large");
	total = (size_t)n * l + ((size_t)n - 1) * lsep;
	d = luaL_buffinitsize(L, &b, total);
	memcpy(d, s, l);
	/* after the first: n - 1 units of sep .. s */
	unit = lsep + l;
	rest = d + l;
	want = total - l;
	if (want > 0) {
		memcpy(rest, sep, lsep);
		memcpy(rest + lsep, s, l);
	}
	for (have = want > 0 ? unit : 0; have < want; have += part) {
		part = have < want - have ? have : want - have;
		if (part > REP_CHUNK)
			part = REP_CHUNK - REP_CHUNK % unit;
		if (part == 0)
			part = unit;
		memcpy(rest + have, rest, part);
		if (luapat_poll != NULL)
			luapat_poll(L);
	}
	luaL_pushresultsize(&b, total);
	return 1;
}

void
luapat_register(lua_State *L, int idx)
{
	static const luaL_Reg fns[] = {
		{ "find", l_find },
		{ "match", l_match },
		{ "gmatch", l_gmatch },
		{ "gsub", l_gsub },
		{ "rep", l_rep },
		{ NULL, NULL }
	};

	idx = lua_absindex(L, idx);
	lua_pushvalue(L, idx);
	luaL_setfuncs(L, fns, 0);
	lua_pop(L, 1);
}
