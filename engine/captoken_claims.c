/* captoken_claims.c: capability tokens: what a valid claim set is. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "engine/captoken_int.h"
#include "runtime/util.h"

/* The claims of a token, those a grant sets, the constraint kinds. */
static const char *const ck_claims[] = {
	"v", "run", "node", "tools", "args", "max_calls", "iat", "exp",
	"jti", "parent"
};
static const char *const ck_grant[] = {
	"run", "node", "tools", "args", "max_calls", "exp"
};
static const char *const ck_kinds[] = { "prefix", "hosts", "enum" };

/* Whether s is one of the n strings of l. */
static int
in_list(const char *s, const char *const *l, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(s, l[i]) == 0)
			return 1;
	return 0;
}

/* A string of 1 to max bytes with no control characters. */
static int
text_valid(const json_t *j, size_t max)
{
	const char *s = json_string_value(j);
	size_t i, n = json_string_length(j);

	if (s == NULL || n == 0 || n > max)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

/* An integer from lo to hi. */
static int
int_in(const json_t *j, json_int_t lo, json_int_t hi)
{
	return json_is_integer(j) && json_integer_value(j) >= lo &&
	    json_integer_value(j) <= hi;
}

/* Check one constraint {"prefix": [...], "hosts": [...], "enum": [...]}. */
static int
cons_valid(const json_t *c, const char *pat, const char *arg, char *err,
    size_t errlen)
{
	const char *kind, *why;
	const json_t *l, *v;
	char q[QBUF], q2[QBUF], *buf;
	size_t i;

	if (!json_is_object(c) || json_object_size(c) == 0) {
		errf(err, errlen, "args['%s']['%s'] must be an object with "
		    "prefix, hosts or enum", pat, QS(q, arg));
		return -1;
	}
	json_object_foreach((json_t *)c, kind, l) {
		if (!in_list(kind, ck_kinds, nitems(ck_kinds))) {
			errf(err, errlen, "args['%s']['%s']: unknown "
			    "constraint '%s' (expected prefix, hosts or enum)",
			    pat, QS(q, arg), QS(q2, kind));
			return -1;
		}
		if (!json_is_array(l) || json_array_size(l) == 0 ||
		    json_array_size(l) > CK_MAX_ITEMS) {
			errf(err, errlen, "args['%s']['%s'].%s must list 1 to "
			    "%d values", pat, QS(q, arg), kind, CK_MAX_ITEMS);
			return -1;
		}
		json_array_foreach(l, i, v) {
			why = NULL;
			if (strcmp(kind, "enum") == 0) {
				if (!json_is_string(v) &&
				    !json_is_integer(v) && !json_is_boolean(v))
					why = "is not a string, integer or "
					    "boolean";
				else
					continue;
			} else if (!json_is_string(v)) {
				why = "is not a string";
			} else if (strcmp(kind, "prefix") == 0) {
				buf = xmalloc(json_string_length(v) + 2);
				why = ck_path_norm(json_string_value(v),
				    json_string_length(v), buf);
				if (why == NULL && strcmp(buf,
				    json_string_value(v)) != 0)
					why = "is not a normalised path";
				free(buf);
			} else {
				buf = xmalloc(json_string_length(v) + 1);
				why = ck_host_norm(json_string_value(v),
				    json_string_length(v), 0, buf);
				if (why == NULL && strcmp(buf,
				    json_string_value(v)) != 0)
					why = "is not in lowercase";
				free(buf);
			}
			if (why != NULL) {
				errf(err, errlen, "args['%s']['%s'].%s[%zu] "
				    "%s", pat, QS(q, arg), kind, i, why);
				return -1;
			}
		}
	}
	return 0;
}

/* Check the 'args' claim: tool patterns to argument constraints. */
static int
args_valid(const json_t *args, char *err, size_t errlen)
{
	const char *pat, *arg;
	const json_t *a, *c;
	char q[QBUF];

	if (!json_is_object(args) ||
	    json_object_size(args) > CK_MAX_PATTERNS) {
		errf(err, errlen, "'args' must be an object of at most %d "
		    "tool patterns", CK_MAX_PATTERNS);
		return -1;
	}
	json_object_foreach((json_t *)args, pat, a) {
		if (!ck_name_valid(pat, strlen(pat), 1)) {
			errf(err, errlen, "args: '%s' is not a tool pattern "
			    "(server.tool or server.*)", QS(q, pat));
			return -1;
		}
		if (!json_is_object(a) || json_object_size(a) == 0 ||
		    json_object_size(a) > CK_MAX_ARGS) {
			errf(err, errlen, "args['%s'] must be an object of 1 "
			    "to %d arguments", pat, CK_MAX_ARGS);
			return -1;
		}
		json_object_foreach((json_t *)a, arg, c) {
			if (arg[0] == '\0' || strlen(arg) > CK_MAX_ID) {
				errf(err, errlen, "args['%s'] has a bad "
				    "argument name", pat);
				return -1;
			}
			if (cons_valid(c, pat, arg, err, errlen) != 0)
				return -1;
		}
	}
	return 0;
}

/* Check a claim set (a decoded token's, or one about to be minted). */
int
ck_claims_valid(const json_t *c, char *err, size_t errlen)
{
	const char *k, *id;
	const json_t *v, *t, *u;
	char q[QBUF];
	size_t i, j;

	if (!json_is_object(c)) {
		errf(err, errlen, "claims are not a JSON object");
		return -1;
	}
	json_object_foreach((json_t *)c, k, v) {
		if (!in_list(k, ck_claims, nitems(ck_claims))) {
			errf(err, errlen, "unknown claim '%s'", QS(q, k));
			return -1;
		}
	}
	for (i = 0; i < nitems(ck_claims); i++) {
		k = ck_claims[i];
		if (json_object_get(c, k) == NULL && strcmp(k, "args") != 0 &&
		    strcmp(k, "parent") != 0) {
			errf(err, errlen, "claim '%s' is missing", k);
			return -1;
		}
	}
	if (!int_in(json_object_get(c, "v"), 1, 1)) {
		errf(err, errlen, "claim 'v' must be 1");
		return -1;
	}
	if (!text_valid(json_object_get(c, "run"), CK_MAX_ID)) {
		errf(err, errlen, "claim 'run' must be a string of 1 to %d "
		    "bytes without control characters", CK_MAX_ID);
		return -1;
	}
	if (!text_valid(json_object_get(c, "node"), CK_MAX_NODE)) {
		errf(err, errlen, "claim 'node' must be a string of 1 to %d "
		    "bytes without control characters", CK_MAX_NODE);
		return -1;
	}
	v = json_object_get(c, "tools");
	if (!json_is_array(v) || json_array_size(v) == 0 ||
	    json_array_size(v) > CK_MAX_TOOLS) {
		errf(err, errlen, "claim 'tools' must list 1 to %d tool "
		    "patterns", CK_MAX_TOOLS);
		return -1;
	}
	json_array_foreach(v, i, t) {
		if (!json_is_string(t) || !ck_name_valid(json_string_value(t),
		    json_string_length(t), 1)) {
			errf(err, errlen, "tools[%zu] is not a tool pattern "
			    "(server.tool or server.*)", i);
			return -1;
		}
		for (j = 0; j < i; j++) {
			u = json_array_get(v, j);
			if (strcmp(json_string_value(u),
			    json_string_value(t)) == 0) {
				errf(err, errlen, "tools lists '%s' twice",
				    json_string_value(t));
				return -1;
			}
		}
	}
	if ((v = json_object_get(c, "args")) != NULL &&
	    args_valid(v, err, errlen) != 0)
		return -1;
	if (!int_in(json_object_get(c, "max_calls"), 1, CAPTOKEN_MAX_CALLS)) {
		errf(err, errlen, "claim 'max_calls' must be an integer "
		    "from 1 to %d", CAPTOKEN_MAX_CALLS);
		return -1;
	}
	if (!int_in(json_object_get(c, "iat"), 0, CK_MAX_TIME)) {
		errf(err, errlen, "claim 'iat' must be an integer time in "
		    "milliseconds");
		return -1;
	}
	v = json_object_get(c, "exp");
	t = json_object_get(c, "iat");
	if (!json_is_integer(v) ||
	    json_integer_value(v) <= json_integer_value(t) ||
	    json_integer_value(v) - json_integer_value(t) >
	    CAPTOKEN_MAX_LIFETIME_MS) {
		errf(err, errlen, "claim 'exp' must be an integer time in "
		    "milliseconds after 'iat', by at most %lld",
		    (long long)CAPTOKEN_MAX_LIFETIME_MS);
		return -1;
	}
	for (i = 0; i < 2; i++) {
		k = i ? "parent" : "jti";
		v = json_object_get(c, k);
		if (v == NULL && i == 1)
			break;
		id = json_string_value(v);
		if (id == NULL || json_string_length(v) != CAPTOKEN_JTI_LEN ||
		    !ck_is_lhex(id, CAPTOKEN_JTI_LEN)) {
			errf(err, errlen, "claim '%s' must be %d lowercase "
			    "hex digits", k, CAPTOKEN_JTI_LEN);
			return -1;
		}
	}
	return 0;
}

/* Whether name is a claim a grant may set (the others are filled in). */
int
ck_grant_field(const char *name)
{
	return in_list(name, ck_grant, nitems(ck_grant));
}
