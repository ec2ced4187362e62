/* jread.c: typed reads of the JSON a peer sent (jread.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "runtime/jread.h"

/* The member key of o, or NULL with err when missing but required. */
static json_t *
jr_get(json_t *o, const char *key, const char *at, int required, int *rv,
    char *err, size_t errlen)
{
	json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;

	*rv = 0;
	if (v == NULL && required) {
		snprintf(err, errlen, "%s/%s: is missing", at, key);
		*rv = -1;
	}
	return v;
}

/* Fail with "AT/KEY: must be WHAT". */
static int
jr_bad(const char *key, const char *at, const char *what, char *err,
    size_t errlen)
{
	snprintf(err, errlen, "%s/%s: must be %s", at, key, what);
	return -1;
}

int
jr_int(json_t *o, const char *key, const char *at, int required,
    json_int_t lo, json_int_t hi, json_int_t *out, char *err, size_t errlen)
{
	char what[96];
	json_t *v;
	int rv;

	if ((v = jr_get(o, key, at, required, &rv, err, errlen)) == NULL)
		return rv;
	if (!json_is_integer(v) || json_integer_value(v) < lo ||
	    json_integer_value(v) > hi) {
		snprintf(what, sizeof what, "an integer from %lld to %lld",
		    (long long)lo, (long long)hi);
		return jr_bad(key, at, what, err, errlen);
	}
	*out = json_integer_value(v);
	return 0;
}

int
jr_str(json_t *o, const char *key, const char *at, int required,
    const char **out, char *err, size_t errlen)
{
	json_t *v;
	int rv;

	if ((v = jr_get(o, key, at, required, &rv, err, errlen)) == NULL)
		return rv;
	if (!json_is_string(v))
		return jr_bad(key, at, "a string", err, errlen);
	*out = json_string_value(v);
	return 0;
}

int
jr_array(json_t *o, const char *key, const char *at, int required,
    size_t max, json_t **out, char *err, size_t errlen)
{
	char what[64];
	json_t *v;
	int rv;

	if ((v = jr_get(o, key, at, required, &rv, err, errlen)) == NULL)
		return rv;
	if (!json_is_array(v) || json_array_size(v) > max) {
		snprintf(what, sizeof what, "an array of at most %zu", max);
		return jr_bad(key, at, what, err, errlen);
	}
	*out = v;
	return 0;
}

int
jr_object(json_t *o, const char *key, const char *at, int required,
    json_t **out, char *err, size_t errlen)
{
	json_t *v;
	int rv;

	if ((v = jr_get(o, key, at, required, &rv, err, errlen)) == NULL)
		return rv;
	if (!json_is_object(v))
		return jr_bad(key, at, "an object", err, errlen);
	*out = v;
	return 0;
}

int
jr_any(json_t *o, const char *key, const char *at, int required,
    json_t **out, char *err, size_t errlen)
{
	json_t *v;
	int rv;

	if ((v = jr_get(o, key, at, required, &rv, err, errlen)) == NULL)
		return rv;
	if (json_is_null(v))
		return jr_bad(key, at, "a value, not null", err, errlen);
	*out = v;
	return 0;
}
