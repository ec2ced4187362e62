/*
 * captoken_match.c: capability tokens: tool name patterns, path prefixes
 * and URL hosts, and checking arguments against the constraints on them.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "engine/captoken_int.h"
#include "runtime/util.h"

/* Tool names and patterns. */

/* A letter, digit, '_' or '-': what server names and host labels hold. */
static int
server_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* What a tool name may hold: that and '.' and '/'. */
static int
tool_char(int c)
{
	return server_char(c) || c == '.' || c == '/';
}

/*
 * "server.tool", or with wild "server.*": a server of letters, digits,
 * '_' and '-' (as w.mcp_server allows), a dot, and a tool name of 1 to 128
 * letters, digits, '_', '-', '.' and '/' (MCP's recommended set), or '*'.
 */
int
ck_name_valid(const char *s, size_t n, int wild)
{
	size_t i = 0, t;

	while (i < n && i <= 64 && server_char((unsigned char)s[i]))
		i++;
	if (i == 0 || i > 64 || i >= n || s[i] != '.')
		return 0;
	t = ++i;
	if (wild && n - t == 1 && s[t] == '*')
		return 1;
	if (n - t < 1 || n - t > 128)
		return 0;
	for (; i < n; i++)
		if (!tool_char((unsigned char)s[i]))
			return 0;
	return 1;
}

/* Whether p is a pattern "server.*" rather than a tool name. */
static int
pat_wild(const char *p)
{
	size_t n = strlen(p);

	return n >= 2 && p[n - 1] == '*';
}

/* Does pattern p match the exact tool name t?  "fs.*" is not "fsx.x". */
int
ck_pat_match(const char *p, const char *t)
{
	size_t n = strlen(p);

	if (pat_wild(p))
		return strncmp(p, t, n - 1) == 0;
	return strcmp(p, t) == 0;
}

/* Does pattern p match every tool pattern q matches? */
int
ck_pat_covers(const char *p, const char *q)
{
	return pat_wild(q) ? strcmp(p, q) == 0 : ck_pat_match(p, q);
}

/* Is some tool matched by both patterns?  Then the narrower one is it. */
const char *
ck_pat_overlap(const char *a, const char *b)
{
	size_t sa = strcspn(a, "."), sb = strcspn(b, ".");

	if (sa != sb || strncmp(a, b, sa) != 0)
		return NULL;
	if (!pat_wild(a))
		return pat_wild(b) || strcmp(a, b) == 0 ? a : NULL;
	return b;
}

/* Paths and URLs. */

/*
 * Normalise an absolute path of n bytes into out (n + 2 bytes): empty and
 * "." segments dropped, ".." resolved.  NULL, or why it is refused.
 */
const char *
ck_path_norm(const char *s, size_t n, char *out)
{
	size_t i = 0, j, o = 0;

	if (n == 0 || s[0] != '/')
		return "is not an absolute path";
	if (memchr(s, '\0', n) != NULL)
		return "contains a NUL byte";
	if (n > CK_MAX_PATH)
		return "is too long";
	while (i < n) {
		while (i < n && s[i] == '/')
			i++;
		for (j = i; j < n && s[j] != '/'; j++)
			;
		if (j == i || (j - i == 1 && s[i] == '.')) {
			/* nothing */
		} else if (j - i == 2 && s[i] == '.' && s[i + 1] == '.') {
			if (o == 0)
				return "goes above the root";
			while (out[--o] != '/')
				;
		} else {
			out[o++] = '/';
			memcpy(out + o, s + i, j - i);
			o += j - i;
		}
		i = j;
	}
	if (o == 0)
		out[o++] = '/';
	out[o] = '\0';
	return NULL;
}

/* Is normalised path p at or below prefix, on a component boundary? */
static int
path_under(const char *p, const char *prefix)
{
	size_t n = strlen(prefix);

	if (strcmp(prefix, "/") == 0)
		return 1;
	return strncmp(p, prefix, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

/*
 * Check a host name (labels of letters, digits, '-' and '_') or a
 * bracketed IPv6 literal, n bytes, and write it lowercased into out
 * (n + 1 bytes).  A URL's host may end in one dot, which is dropped.
 */
const char *
ck_host_norm(const char *s, size_t n, int url, char *out)
{
	size_t i, label = 0;
	int c;

	if (url && n > 1 && s[n - 1] == '.' && s[0] != '[')
		n--;
	if (n == 0)
		return "has an empty host";
	if (n > 253)
		return "has a host name that is too long";
	if (s[0] == '[') {
		if (n < 4 || s[n - 1] != ']')
			return "has a malformed IPv6 host";
		for (i = 1; i < n - 1; i++) {
			c = (unsigned char)s[i];
			if (!((c >= '0' && c <= '9') || (c >= 'a' &&
			    c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
			    c == '.'))
				return "has a malformed IPv6 host";
		}
	} else {
		for (i = 0; i < n; i++) {
			c = (unsigned char)s[i];
			if (c == '.') {
				if (label == 0)
					return "has an empty label in its "
					    "host";
				label = 0;
				continue;
			}
			if (c == '%')
				return "has a percent sign in its host";
			if (!server_char(c))
				return "has a character not allowed in a "
				    "host name";
			if (++label > 63)
				return "has a host label over 63 bytes";
		}
		if (label == 0)
			return "has an empty label in its host";
	}
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		out[i] = (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
	}
	out[n] = '\0';
	return NULL;
}

/*
 * The host of an http or https URL of n bytes, lowercased, into host
 * (n + 1 bytes).  Strict on purpose: parsers disagree about userinfo,
 * backslashes, whitespace and percent signs (WHATWG and RFC 3986 find
 * different hosts in "http://a.com\@b.com"), so all of those are refused.
 */
static const char *
url_host(const char *s, size_t n, char *host)
{
	size_t i, a, e, h;
	int c;

	if (n > CK_MAX_URL)
		return "is too long";
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f)
			return "contains a space, control or non-ASCII byte";
		if (c == '\\')
			return "contains a backslash";
	}
	for (i = 0; i < n && s[i] != ':'; i++)
		;
	if (!((i == 4 && strncasecmp(s, "http", 4) == 0) ||
	    (i == 5 && strncasecmp(s, "https", 5) == 0)))
		return "is not an http or https URL";
	if (n - i < 3 || s[i + 1] != '/' || s[i + 2] != '/')
		return "has no '//' after its scheme";
	a = i + 3;
	for (e = a; e < n && s[e] != '/' && s[e] != '?' && s[e] != '#'; e++)
		if (s[e] == '@')
			return "has userinfo ('@' before the path)";
	if (a < e && s[a] == '[') {
		for (h = a; h < e && s[h] != ']'; h++)
			;
		if (h == e)
			return "has a malformed IPv6 host";
		h++;
	} else {
		for (h = a; h < e && s[h] != ':'; h++)
			;
	}
	if (h < e) {
		if (s[h] != ':' || e - h < 2 || e - h > 6)
			return "has a malformed port";
		for (i = h + 1, c = 0; i < e; i++) {
			if (s[i] < '0' || s[i] > '9')
				return "has a malformed port";
			c = c * 10 + (s[i] - '0');
		}
		if (c < 1 || c > 65535)
			return "has a port out of range";
	}
	return ck_host_norm(s + a, h - a, 1, host);
}

/* Constraints. */

/* Is every value constraint c allows also allowed by parent constraint p? */
int
ck_cons_within(const json_t *c, const json_t *p, char *why, size_t whylen)
{
	const char *kind;
	const json_t *pl, *cl, *cv, *pv;
	char q[QBUF], list[512], *s;
	size_t i, j;
	int ok;

	json_object_foreach((json_t *)p, kind, pl) {
		if ((cl = json_object_get(c, kind)) == NULL) {
			errf(why, whylen, "the parent requires '%s' (%s)",
			    kind, ck_join(list, sizeof list, pl,
			    strcmp(kind, "enum") == 0));
			return 0;
		}
		json_array_foreach(cl, i, cv) {
			ok = 0;
			json_array_foreach(pl, j, pv) {
				if (strcmp(kind, "prefix") == 0)
					ok = path_under(json_string_value(cv),
					    json_string_value(pv));
				else
					ok = json_equal((json_t *)cv,
					    (json_t *)pv);
				if (ok)
					break;
			}
			if (ok)
				continue;
			if (strcmp(kind, "enum") == 0) {
				s = json_dumps(cv, JSON_ENCODE_ANY);
				errf(why, whylen, "enum value %s is not among "
				    "the parent's %s", s ? QS(q, s) : "?",
				    ck_join(list, sizeof list, pl, 1));
				free(s);
			} else
				errf(why, whylen, "%s '%s' is outside the "
				    "parent's %s %s", strcmp(kind, "prefix") ?
				    "host" : "prefix", QJ(q, cv), kind,
				    ck_join(list, sizeof list, pl, 0));
			return 0;
		}
	}
	return 1;
}

/* Check one argument value against constraint c; message on failure. */
static int
arg_within(const char *arg, const char *idx, const json_t *c,
    const json_t *v, char *err, size_t errlen)
{
	const char *kind, *why, *s;
	const json_t *l, *e;
	char q[QBUF], qa[QBUF], list[512], *buf, *d;
	size_t i, n;
	int ok;

	json_object_foreach((json_t *)c, kind, l) {
		if (strcmp(kind, "enum") == 0) {
			json_array_foreach(l, i, e)
				if (json_equal((json_t *)v, (json_t *)e))
					break;
			if (i < json_array_size(l))
				continue;
			d = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
			errf(err, errlen, "argument '%s'%s = %s is not one of "
			    "%s", QS(qa, arg), idx, d != NULL ? QS(q, d) : "?",
			    ck_join(list, sizeof list, l, 1));
			free(d);
			return -1;
		}
		if (!json_is_string(v)) {
			errf(err, errlen, "argument '%s'%s must be a string "
			    "(a %s)", QS(qa, arg), idx, strcmp(kind, "prefix")
			    ? "URL" : "path");
			return -1;
		}
		s = json_string_value(v);
		n = json_string_length(v);
		buf = xmalloc(n + 2);
		if (strcmp(kind, "prefix") == 0)
			why = ck_path_norm(s, n, buf);
		else
			why = url_host(s, n, buf);
		ok = 0;
		if (why == NULL) {
			json_array_foreach(l, i, e) {
				if (strcmp(kind, "prefix") == 0)
					ok = path_under(buf,
					    json_string_value(e));
				else
					ok = strcmp(buf,
					    json_string_value(e)) == 0;
				if (ok)
					break;
			}
		}
		if (why != NULL)
			errf(err, errlen, "argument '%s'%s = '%s' is refused: "
			    "it %s", QS(qa, arg), idx, ck_quote(q, sizeof q, s,
			    n), why);
		else if (!ok && strcmp(kind, "prefix") == 0)
			errf(err, errlen, "argument '%s'%s = '%s' is outside "
			    "the allowed prefixes %s", QS(qa, arg), idx,
			    ck_quote(q, sizeof q, s, n), ck_join(list,
			    sizeof list, l, 0));
		else if (!ok)
			errf(err, errlen, "argument '%s'%s = '%s' has host "
			    "'%s', which is not among the allowed hosts %s",
			    QS(qa, arg), idx, ck_quote(q, sizeof q, s, n),
			    buf, ck_join(list, sizeof list, l, 0));
		free(buf);
		if (!ok)
			return -1;
	}
	return 0;
}

/* Check the call's arguments against every constraint for its tool. */
int
ck_args_within(const json_t *claims, const char *tool, const json_t *args,
    char *err, size_t errlen)
{
	const json_t *pa, *c, *v, *e;
	const char *pat, *arg;
	char q[QBUF], idx[32];
	size_t i;

	if (args != NULL && !json_is_object(args)) {
		errf(err, errlen, "the call's arguments are not an object");
		return -1;
	}
	json_object_foreach(json_object_get(claims, "args"), pat, pa) {
		if (!ck_pat_match(pat, tool))
			continue;
		json_object_foreach((json_t *)pa, arg, c) {
			v = args != NULL ? json_object_get(args, arg) : NULL;
			if (v == NULL) {
				errf(err, errlen, "argument '%s' is missing; "
				    "the grant constrains it", QS(q, arg));
				return -1;
			}
			if (!json_is_array(v)) {
				if (arg_within(arg, "", c, v, err, errlen))
					return -1;
				continue;
			}
			if (json_array_size(v) == 0 ||
			    json_array_size(v) > CK_ARRAY_MAX) {
				errf(err, errlen, "argument '%s' is an array "
				    "of %zu elements; the grant constrains "
				    "it, so it must have 1 to %d", QS(q, arg),
				    json_array_size(v), CK_ARRAY_MAX);
				return -1;
			}
			/* An array (of paths, say): check every element. */
			json_array_foreach(v, i, e) {
				snprintf(idx, sizeof idx, "[%zu]", i);
				if (arg_within(arg, idx, c, e, err, errlen))
					return -1;
			}
		}
	}
	return 0;
}
