/* schema.c: check schemas of weft's JSON Schema subset and apply them. */
#include "config.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "engine/schema.h"
#include "runtime/util.h"

/* Longest piece of a value quoted in a message, in bytes. */
#define SCHEMA_QUOTE_MAX 64

/* 2^63 for a 64-bit json_int_t: reals at or beyond it are not integers. */
#define SCHEMA_INT_LIMIT \
	((double)((json_int_t)1 << (sizeof(json_int_t) * CHAR_BIT - 2)) * 2)

static const char *const schema_types[] = {
	"object", "array", "string", "number", "integer", "boolean", "null"
};
#define SCHEMA_TYPE_LIST \
	"object, array, string, number, integer, boolean, null"

static const char *const schema_keywords[] = {
	"type", "properties", "required", "additionalProperties", "items",
	"enum", "const", "minItems", "maxItems", "minLength", "maxLength",
	"minimum", "maximum"
};

/* Annotations: allowed, and ignored when validating. */
static const char *const schema_annotations[] = {
	"title", "description", "$schema", "$comment", "default", "examples",
	"deprecated", "readOnly", "writeOnly"
};

/* Keywords of JSON Schema that weft knowingly leaves out. */
static const char *const schema_unsupported[] = {
	"$id", "$ref", "$anchor", "$dynamicRef", "$dynamicAnchor",
	"$vocabulary", "$defs", "definitions", "$recursiveRef",
	"$recursiveAnchor", "allOf", "anyOf", "oneOf", "not", "if", "then",
	"else", "dependentSchemas", "dependencies", "prefixItems",
	"additionalItems", "contains", "minContains", "maxContains",
	"uniqueItems", "patternProperties", "propertyNames",
	"unevaluatedItems", "unevaluatedProperties", "minProperties",
	"maxProperties", "dependentRequired", "multipleOf",
	"exclusiveMinimum", "exclusiveMaximum", "pattern", "format",
	"contentEncoding", "contentMediaType", "contentSchema"
};

/* One step of a path: a key of klen bytes or, if key is NULL, an index. */
struct schema_seg {
	const char	*key;
	size_t		 klen;
	size_t		 idx;
};

/*
 * Where a check or a validation is.  A check names places in the schema
 * below root; a validation (root NULL) names places in the value.  Each
 * level of nesting pushes at most two steps, and the depth limit stops a
 * walk before segs can overflow; walk_push still guards it.
 */
struct schema_walk {
	const char		*root;
	struct schema_seg	 segs[2 * SCHEMA_MAX_DEPTH + 8];
	size_t			 nsegs;
	char			*err;
	size_t			 errlen;
};

/* A message being written into the caller's buffer; cap 0 drops it. */
struct ebuf {
	char	*p;
	size_t	 cap;
	size_t	 len;
	int	 full;
};

/* Cut n bytes of s back to a UTF-8 character boundary. */
static size_t
utf8_cut(const char *s, size_t n)
{
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

/* Append n bytes; once the buffer is full, nothing more. */
static void
ebuf_add(struct ebuf *b, const char *s, size_t n)
{
	size_t room;

	if (b->cap == 0 || b->full)
		return;
	room = b->cap - 1 - b->len;
	if (n > room) {
		n = utf8_cut(s, room);
		b->full = 1;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
ebuf_str(struct ebuf *b, const char *s)
{
	ebuf_add(b, s, strlen(s));
}

static void ebuf_fmt(struct ebuf *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
ebuf_fmt(struct ebuf *b, const char *fmt, ...)
{
	char tmp[256], *s;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof tmp) {
		ebuf_add(b, tmp, (size_t)n);
		return;
	}
	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	ebuf_add(b, s, (size_t)n);
	free(s);
}

/*
 * Append a name: control characters as \uXXXX and, in a JSON pointer
 * step, '~' and '/' as "~0" and "~1".
 */
static void
ebuf_name(struct ebuf *b, const char *s, size_t n, int pointer)
{
	size_t i, run = 0;
	unsigned char c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c >= 0x20 && !(pointer && (c == '~' || c == '/')))
			continue;
		ebuf_add(b, s + run, i - run);
		run = i + 1;
		if (c == '~')
			ebuf_str(b, "~0");
		else if (c == '/')
			ebuf_str(b, "~1");
		else
			ebuf_fmt(b, "\\u%04x", c);
	}
	ebuf_add(b, s + run, n - run);
}

/* Append a number the way a person writes it: 3, 2.5, 1e+300. */
static void
ebuf_number(struct ebuf *b, const json_t *n)
{
	char tmp[40];
	double d;

	if (json_is_integer(n)) {
		ebuf_fmt(b, "%" JSON_INTEGER_FORMAT, json_integer_value(n));
		return;
	}
	d = json_real_value(n);
	snprintf(tmp, sizeof tmp, "%.15g", d);
	if (strtod(tmp, NULL) != d)
		snprintf(tmp, sizeof tmp, "%.17g", d);
	ebuf_str(b, tmp);
}

/* JSON text going into a message, at most room more bytes of it. */
struct schema_dump {
	struct ebuf	*b;
	size_t		 room;
	int		 cut;
};

static int
schema_dump_cb(const char *s, size_t n, void *arg)
{
	struct schema_dump *d = arg;

	if (n > d->room) {
		n = utf8_cut(s, d->room);
		d->cut = 1;
	}
	ebuf_add(d->b, s, n);
	d->room -= n;
	return d->cut ? -1 : 0;
}

/* Append v as compact JSON, cut to SCHEMA_QUOTE_MAX bytes. */
static void
ebuf_json(struct ebuf *b, const json_t *v)
{
	struct schema_dump d = { b, SCHEMA_QUOTE_MAX, 0 };

	if (json_is_number(v)) {
		ebuf_number(b, v);
		return;
	}
	json_dump_callback(v, schema_dump_cb, &d,
	    JSON_ENCODE_ANY | JSON_COMPACT);
	if (d.cut)
		ebuf_str(b, "...");
}

/* Append a value from an answer: a string in single quotes, else JSON. */
static void
ebuf_value(struct ebuf *b, const json_t *v)
{
	const char *s;
	size_t n;

	if (!json_is_string(v)) {
		ebuf_json(b, v);
		return;
	}
	s = json_string_value(v);
	n = json_string_length(v);
	ebuf_str(b, "'");
	if (n > SCHEMA_QUOTE_MAX) {
		ebuf_name(b, s, utf8_cut(s, SCHEMA_QUOTE_MAX), 0);
		ebuf_str(b, "...");
	} else
		ebuf_name(b, s, n, 0);
	ebuf_str(b, "'");
}

/* The name of v's type as a model would say it: 3 and 2.5 are numbers. */
static const char *
json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	default:
		return "null";
	}
}

static void
walk_push_key(struct schema_walk *w, const char *key, size_t klen)
{
	if (ALWAYS(w->nsegs < nitems(w->segs))) {
		w->segs[w->nsegs].key = key;
		w->segs[w->nsegs].klen = klen;
	}
	w->nsegs++;
}

static void
walk_push_idx(struct schema_walk *w, size_t idx)
{
	if (ALWAYS(w->nsegs < nitems(w->segs))) {
		w->segs[w->nsegs].key = NULL;
		w->segs[w->nsegs].idx = idx;
	}
	w->nsegs++;
}

static void
walk_pop(struct schema_walk *w)
{
	w->nsegs--;
}

/* Start an error message in b with the walk's path and ": ". */
static void
walk_begin(struct schema_walk *w, struct ebuf *b)
{
	struct schema_seg *sg;
	size_t i;

	b->p = w->err;
	b->cap = (w->err == NULL) ? 0 : w->errlen;
	b->len = 0;
	b->full = 0;
	if (b->cap > 0)
		b->p[0] = '\0';
	if (w->root != NULL)
		ebuf_str(b, w->root);
	else if (w->nsegs == 0)
		ebuf_str(b, "/");
	for (i = 0; i < w->nsegs && i < nitems(w->segs); i++) {
		sg = &w->segs[i];
		ebuf_str(b, "/");
		if (sg->key != NULL)
			ebuf_name(b, sg->key, sg->klen, 1);
		else
			ebuf_fmt(b, "%zu", sg->idx);
	}
	ebuf_str(b, ": ");
}

static int walk_fail(struct schema_walk *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* Write the path and a short message; return -1. */
static int
walk_fail(struct schema_walk *w, const char *fmt, ...)
{
	struct ebuf b;
	char tmp[256];
	va_list ap;

	walk_begin(w, &b);
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	ebuf_str(&b, tmp);
	return -1;
}

/* Compare an integer with a real exactly: <0, 0 or >0. */
static int
int_real_cmp(json_int_t i, double d)
{
	json_int_t t;

	if (d >= SCHEMA_INT_LIMIT)
		return -1;
	if (d < -SCHEMA_INT_LIMIT)
		return 1;
	t = (json_int_t)d;		/* truncates toward zero, exactly */
	if (i != t)
		return i < t ? -1 : 1;
	return ((double)t > d) - ((double)t < d);
}

/* Compare two JSON numbers by value: <0, 0 or >0. */
static int
num_cmp(const json_t *a, const json_t *b)
{
	json_int_t x, y;
	double p, q;

	if (json_is_integer(a) && json_is_integer(b)) {
		x = json_integer_value(a);
		y = json_integer_value(b);
		return (x > y) - (x < y);
	}
	if (json_is_integer(a))
		return int_real_cmp(json_integer_value(a), json_real_value(b));
	if (json_is_integer(b))
		return -int_real_cmp(json_integer_value(b),
		    json_real_value(a));
	p = json_real_value(a);
	q = json_real_value(b);
	return (p > q) - (p < q);
}

/* Compare a count with a JSON number: <0, 0 or >0. */
static int
count_cmp(size_t n, const json_t *lim)
{
	json_int_t x = (n > (size_t)LLONG_MAX) ? LLONG_MAX : (json_int_t)n;
	json_int_t y;

	if (json_is_real(lim))
		return int_real_cmp(x, json_real_value(lim));
	y = json_integer_value(lim);
	return (x > y) - (x < y);
}

/* Whether a JSON number is an integer in the 2020-12 sense. */
static int
num_is_integer(const json_t *v)
{
	double d;

	if (json_is_integer(v))
		return 1;
	d = json_real_value(v);
	if (d >= SCHEMA_INT_LIMIT || d < -SCHEMA_INT_LIMIT)
		return 1;	/* reals this large have no fraction */
	return (double)(json_int_t)d == d;
}

/*
 * Whether a and b are the same JSON value, numbers compared by value
 * (exactly: an integer beyond 2^53 is not equal to the nearest real).
 * Deeper than max levels counts as different (a bound on the recursion
 * for values no schema or parser has bounded).
 */
static int
value_equal_max(const json_t *a, const json_t *b, int depth, int max)
{
	const char *key;
	size_t klen, i;
	json_t *va;

	if (depth > max)
		return 0;
	if (json_is_number(a) && json_is_number(b))
		return num_cmp(a, b) == 0;
	if (json_typeof(a) != json_typeof(b))
		return 0;
	switch (json_typeof(a)) {
	case JSON_STRING:
		return json_string_length(a) == json_string_length(b) &&
		    memcmp(json_string_value(a), json_string_value(b),
		    json_string_length(a)) == 0;
	case JSON_ARRAY:
		if (json_array_size(a) != json_array_size(b))
			return 0;
		for (i = 0; i < json_array_size(a); i++)
			if (!value_equal_max(json_array_get(a, i),
			    json_array_get(b, i), depth + 1, max))
				return 0;
		return 1;
	case JSON_OBJECT:
		if (json_object_size(a) != json_object_size(b))
			return 0;
		json_object_keylen_foreach((json_t *)a, key, klen, va) {
			json_t *vb = json_object_getn(b, key, klen);

			if (vb == NULL ||
			    !value_equal_max(va, vb, depth + 1, max))
				return 0;
		}
		return 1;
	default:
		return 1;	/* true, false, null */
	}
}

/* value_equal_max within the depth a checked schema allows. */
static int
value_equal(const json_t *a, const json_t *b, int depth)
{
	return value_equal_max(a, b, depth, SCHEMA_MAX_DEPTH + 1);
}

int
schema_equal(const json_t *a, const json_t *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return value_equal_max(a, b, 0, SCHEMA_EQUAL_MAX_DEPTH);
}

/* Whether v nests no more than left levels of arrays and objects. */
static int
value_shallow(const json_t *v, int left)
{
	const char *key;
	json_t *c;
	size_t i;

	if (!json_is_array(v) && !json_is_object(v))
		return 1;
	if (left == 0)
		return 0;
	if (json_is_array(v)) {
		json_array_foreach(v, i, c)
			if (!value_shallow(c, left - 1))
				return 0;
		return 1;
	}
	json_object_foreach((json_t *)v, key, c)
		if (!value_shallow(c, left - 1))
			return 0;
	return 1;
}

/* The index of a keyword of klen bytes in a table, or -1. */
static int
keyword_find(const char *const *tab, size_t n, const char *key, size_t klen)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strlen(tab[i]) == klen && memcmp(tab[i], key, klen) == 0)
			return (int)i;
	return -1;
}

/* Edit distance between two short words; large for long ones. */
static size_t
edit_distance(const char *a, size_t na, const char *b)
{
	size_t row[33], i, j, nb = strlen(b), diag, up;

	if (na > 32 || nb > 32)
		return SIZE_MAX;
	for (j = 0; j <= nb; j++)
		row[j] = j;
	for (i = 1; i <= na; i++) {
		diag = row[0];
		row[0] = i;
		for (j = 1; j <= nb; j++) {
			up = row[j];
			row[j] = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < row[j])
				row[j] = up + 1;
			if (row[j - 1] + 1 < row[j])
				row[j] = row[j - 1] + 1;
			diag = up;
		}
	}
	return row[nb];
}

/* Refuse a keyword outside the subset, suggesting one for a typo. */
static int
check_unknown(struct schema_walk *w, const char *key, size_t klen)
{
	struct ebuf b;
	const char *best = NULL;
	size_t i, d, bestd = 3;

	if (keyword_find(schema_unsupported, nitems(schema_unsupported), key,
	    klen) < 0) {
		for (i = 0; i < nitems(schema_keywords); i++) {
			d = edit_distance(key, klen, schema_keywords[i]);
			if (d < bestd) {
				bestd = d;
				best = schema_keywords[i];
			}
		}
	}
	walk_begin(w, &b);
	ebuf_str(&b, "keyword '");
	ebuf_name(&b, key, klen, 0);
	ebuf_str(&b, "' is not supported");
	if (best != NULL)
		ebuf_fmt(&b, " (did you mean '%s'?)", best);
	return -1;
}

/* Check one type name, already pushed onto the path if in an array. */
static int
check_type_name(struct schema_walk *w, const json_t *t)
{
	struct ebuf b;

	if (!json_is_string(t))
		return walk_fail(w, "must be a type name (a string), got %s",
		    json_type_name(t));
	if (keyword_find(schema_types, nitems(schema_types),
	    json_string_value(t), json_string_length(t)) >= 0)
		return 0;
	walk_begin(w, &b);
	ebuf_str(&b, "unknown type ");
	ebuf_value(&b, t);
	ebuf_str(&b, " (expected one of " SCHEMA_TYPE_LIST ")");
	return -1;
}

/* Check "type": a name or a non-empty array of distinct names. */
static int
check_type(struct schema_walk *w, const json_t *v)
{
	size_t i, j;
	int rc;

	if (json_is_string(v))
		return check_type_name(w, v);
	if (!json_is_array(v))
		return walk_fail(w, "must be a type name or an array of type "
		    "names, got %s", json_type_name(v));
	if (json_array_size(v) == 0)
		return walk_fail(w, "must name at least one type");
	for (i = 0; i < json_array_size(v); i++) {
		walk_push_idx(w, i);
		rc = check_type_name(w, json_array_get(v, i));
		for (j = 0; rc == 0 && j < i; j++)
			if (json_equal(json_array_get(v, i),
			    json_array_get(v, j)))
				rc = walk_fail(w, "type '%s' is listed twice",
				    json_string_value(json_array_get(v, i)));
		walk_pop(w);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* Check "required": an array of distinct property names. */
static int
check_required(struct schema_walk *w, const json_t *v)
{
	struct ebuf b;
	json_t *seen, *name;
	size_t i;
	int rc = 0;

	if (!json_is_array(v))
		return walk_fail(w, "must be an array of property names, "
		    "got %s", json_type_name(v));
	seen = json_object();
	json_array_foreach(v, i, name) {
		walk_push_idx(w, i);
		if (!json_is_string(name))
			rc = walk_fail(w, "must be a property name "
			    "(a string), got %s", json_type_name(name));
		else if (json_object_getn(seen, json_string_value(name),
		    json_string_length(name)) != NULL) {
			walk_begin(w, &b);
			ebuf_str(&b, "property ");
			ebuf_value(&b, name);
			ebuf_str(&b, " is listed twice");
			rc = -1;
		} else
			json_object_setn_new(seen, json_string_value(name),
			    json_string_length(name), json_null());
		walk_pop(w);
		if (rc != 0)
			break;
	}
	json_decref(seen);
	return rc;
}

/* Check a count keyword such as minItems: a non-negative integer. */
static int
check_count(struct schema_walk *w, const json_t *v)
{
	if (!json_is_number(v) || !num_is_integer(v) ||
	    (json_is_integer(v) && json_integer_value(v) < 0) ||
	    (json_is_real(v) && json_real_value(v) < 0))
		return walk_fail(w, "must be a non-negative integer");
	return 0;
}

/* Check an enum or const value: no deeper than the limit. */
static int
check_value(struct schema_walk *w, const json_t *v)
{
	if (!value_shallow(v, SCHEMA_MAX_DEPTH))
		return walk_fail(w, "value nested deeper than %d levels",
		    SCHEMA_MAX_DEPTH);
	return 0;
}

static int check_schema(struct schema_walk *, const json_t *, int);

/* Check the value of one keyword, already pushed onto the path. */
static int
check_keyword(struct schema_walk *w, const char *key, const json_t *v,
    int depth)
{
	const char *name;
	size_t nlen, i;
	json_t *sub;
	int rc;

	if (strcmp(key, "type") == 0)
		return check_type(w, v);
	if (strcmp(key, "properties") == 0) {
		if (!json_is_object(v))
			return walk_fail(w, "must be an object of schemas, "
			    "got %s", json_type_name(v));
		json_object_keylen_foreach((json_t *)v, name, nlen, sub) {
			walk_push_key(w, name, nlen);
			rc = check_schema(w, sub, depth + 1);
			walk_pop(w);
			if (rc != 0)
				return -1;
		}
		return 0;
	}
	if (strcmp(key, "required") == 0)
		return check_required(w, v);
	if (strcmp(key, "additionalProperties") == 0)
		return check_schema(w, v, depth + 1);
	if (strcmp(key, "items") == 0) {
		if (json_is_array(v))
			return walk_fail(w, "must be one schema for every "
			    "element; the array (tuple) form is not "
			    "supported");
		return check_schema(w, v, depth + 1);
	}
	if (strcmp(key, "enum") == 0) {
		if (!json_is_array(v) || json_array_size(v) == 0)
			return walk_fail(w, "must be a non-empty array of "
			    "values");
		json_array_foreach(v, i, sub) {
			walk_push_idx(w, i);
			rc = check_value(w, sub);
			walk_pop(w);
			if (rc != 0)
				return -1;
		}
		return 0;
	}
	if (strcmp(key, "const") == 0)
		return check_value(w, v);
	if (strcmp(key, "minItems") == 0 || strcmp(key, "maxItems") == 0 ||
	    strcmp(key, "minLength") == 0 || strcmp(key, "maxLength") == 0)
		return check_count(w, v);
	if (strcmp(key, "minimum") == 0 || strcmp(key, "maximum") == 0) {
		if (!json_is_number(v))
			return walk_fail(w, "must be a number, got %s",
			    json_type_name(v));
		return 0;
	}
	/* Annotations. */
	if (strcmp(key, "examples") == 0 && !json_is_array(v))
		return walk_fail(w, "must be an array, got %s",
		    json_type_name(v));
	if ((strcmp(key, "deprecated") == 0 || strcmp(key, "readOnly") == 0 ||
	    strcmp(key, "writeOnly") == 0) && !json_is_boolean(v))
		return walk_fail(w, "must be a boolean, got %s",
		    json_type_name(v));
	if ((strcmp(key, "title") == 0 || strcmp(key, "description") == 0 ||
	    strcmp(key, "$schema") == 0 || strcmp(key, "$comment") == 0) &&
	    !json_is_string(v))
		return walk_fail(w, "must be a string, got %s",
		    json_type_name(v));
	return 0;
}

/* Refuse a lower bound above its upper bound, e.g. minItems > maxItems. */
static int
check_order(struct schema_walk *w, const json_t *s, const char *lo,
    const char *hi)
{
	const json_t *a = json_object_get(s, lo), *b = json_object_get(s, hi);
	struct ebuf eb;

	if (a == NULL || b == NULL || num_cmp(a, b) <= 0)
		return 0;
	walk_begin(w, &eb);
	ebuf_fmt(&eb, "%s ", lo);
	ebuf_number(&eb, a);
	ebuf_fmt(&eb, " is greater than %s ", hi);
	ebuf_number(&eb, b);
	return -1;
}

/* Refuse a required property that additionalProperties: false forbids. */
static int
check_reachable(struct schema_walk *w, const json_t *s)
{
	const json_t *req = json_object_get(s, "required");
	const json_t *props = json_object_get(s, "properties"), *name;
	struct ebuf b;
	size_t i;

	if (!json_is_false(json_object_get(s, "additionalProperties")))
		return 0;
	json_array_foreach(req, i, name) {
		if (json_object_getn(props, json_string_value(name),
		    json_string_length(name)) != NULL)
			continue;
		walk_push_key(w, "required", strlen("required"));
		walk_push_idx(w, i);
		walk_begin(w, &b);
		walk_pop(w);
		walk_pop(w);
		ebuf_str(&b, "property ");
		ebuf_value(&b, name);
		ebuf_str(&b, " can never be present: it is not in properties "
		    "and additionalProperties is false");
		return -1;
	}
	return 0;
}

/* Check one schema (true, false or an object) at the given depth. */
static int
check_schema(struct schema_walk *w, const json_t *s, int depth)
{
	const char *key;
	size_t klen;
	json_t *v;
	int rc;

	if (depth > SCHEMA_MAX_DEPTH)
		return walk_fail(w, "schema nested deeper than %d levels",
		    SCHEMA_MAX_DEPTH);
	if (json_is_boolean(s))
		return 0;
	if (!json_is_object(s))
		return walk_fail(w, "a schema must be an object or a boolean, "
		    "got %s", json_type_name(s));
	json_object_keylen_foreach((json_t *)s, key, klen, v) {
		if (keyword_find(schema_keywords, nitems(schema_keywords),
		    key, klen) < 0 && keyword_find(schema_annotations,
		    nitems(schema_annotations), key, klen) < 0)
			return check_unknown(w, key, klen);
		walk_push_key(w, key, klen);
		rc = check_keyword(w, key, v, depth);
		walk_pop(w);
		if (rc != 0)
			return -1;
	}
	if (check_order(w, s, "minItems", "maxItems") != 0 ||
	    check_order(w, s, "minLength", "maxLength") != 0 ||
	    check_order(w, s, "minimum", "maximum") != 0)
		return -1;
	return check_reachable(w, s);
}

/* Check a schema; see schema.h. */
int
schema_check(const json_t *schema, const char *where, char *err,
    size_t errlen)
{
	struct schema_walk w;

	w.root = (where != NULL) ? where : "schema";
	w.nsegs = 0;
	w.err = err;
	w.errlen = errlen;
	if (schema == NULL)
		return walk_fail(&w, "no schema");
	return check_schema(&w, schema, 0);
}

/* Whether v is of the named type. */
static int
type_match(const json_t *t, const json_t *v)
{
	const char *name;

	if (!json_is_string(t))
		return 0;
	name = json_string_value(t);
	if (strcmp(name, "number") == 0)
		return json_is_number(v);
	if (strcmp(name, "integer") == 0)
		return json_is_number(v) && num_is_integer(v);
	if (strcmp(name, "boolean") == 0)
		return json_is_boolean(v);
	return strcmp(name, json_type_name(v)) == 0;
}

/* Apply "type"; a malformed one accepts everything. */
static int
validate_type(struct schema_walk *w, const json_t *t, const json_t *v)
{
	const json_t *name;
	struct ebuf b;
	size_t i, n;
	int fraction = 0;

	if (json_is_string(t)) {
		if (type_match(t, v))
			return 0;
		n = 1;
	} else if (json_is_array(t) && json_array_size(t) > 0) {
		n = json_array_size(t);
		for (i = 0; i < n; i++)
			if (type_match(json_array_get(t, i), v))
				return 0;
	} else
		return 0;
	walk_begin(w, &b);
	ebuf_str(&b, "expected ");
	for (i = 0; i < n; i++) {
		name = json_is_string(t) ? t : json_array_get(t, i);
		if (i > 0)
			ebuf_str(&b, i + 1 < n ? ", " : " or ");
		if (json_is_string(name))
			ebuf_str(&b, json_string_value(name));
		if (json_is_string(name) &&
		    strcmp(json_string_value(name), "integer") == 0)
			fraction = json_is_number(v);
	}
	ebuf_fmt(&b, ", got %s", json_type_name(v));
	if (fraction) {		/* say why 2.5 is not an integer */
		ebuf_str(&b, " ");
		ebuf_json(&b, v);
	}
	return -1;
}

/* Apply "enum". */
static int
validate_enum(struct schema_walk *w, const json_t *e, const json_t *v)
{
	struct ebuf b;
	json_t *c;
	size_t i;

	if (!json_is_array(e))
		return 0;
	json_array_foreach(e, i, c)
		if (value_equal(c, v, 0))
			return 0;
	walk_begin(w, &b);
	ebuf_value(&b, v);
	ebuf_str(&b, " is not one of ");
	json_array_foreach(e, i, c) {
		if (i > 0)
			ebuf_str(&b, ", ");
		ebuf_json(&b, c);
	}
	return -1;
}

/* "1 item", "2 items". */
static void
ebuf_count(struct ebuf *b, const json_t *n, const char *unit)
{
	ebuf_number(b, n);
	ebuf_fmt(b, " %s%s", unit, count_cmp(1, n) == 0 ? "" : "s");
}

/* Apply a lower or upper bound on a count, named by unit. */
static int
validate_count(struct schema_walk *w, const json_t *s, const char *lo,
    const char *hi, size_t n, const char *unit)
{
	const json_t *lim;
	struct ebuf b;

	if (json_is_number(lim = json_object_get(s, lo)) &&
	    count_cmp(n, lim) < 0) {
		walk_begin(w, &b);
		ebuf_str(&b, "expected at least ");
		ebuf_count(&b, lim, unit);
		ebuf_fmt(&b, ", got %zu", n);
		return -1;
	}
	if (json_is_number(lim = json_object_get(s, hi)) &&
	    count_cmp(n, lim) > 0) {
		walk_begin(w, &b);
		ebuf_str(&b, "expected at most ");
		ebuf_count(&b, lim, unit);
		ebuf_fmt(&b, ", got %zu", n);
		return -1;
	}
	return 0;
}

static int validate_value(struct schema_walk *, const json_t *,
    const json_t *, int);

/* Apply the object keywords to an object. */
static int
validate_object(struct schema_walk *w, const json_t *s, const json_t *v,
    int depth)
{
	const json_t *req = json_object_get(s, "required");
	const json_t *props = json_object_get(s, "properties");
	const json_t *extra = json_object_get(s, "additionalProperties");
	const char *key;
	json_t *sub, *pv, *name;
	struct ebuf b;
	size_t klen, i;
	int rc, first;

	json_array_foreach(req, i, name) {
		if (!json_is_string(name) || json_object_getn(v,
		    json_string_value(name), json_string_length(name)) != NULL)
			continue;
		walk_begin(w, &b);
		ebuf_str(&b, "missing required property ");
		ebuf_value(&b, name);
		return -1;
	}
	if (!json_is_object(props))
		props = NULL;
	if (props != NULL) {
		json_object_keylen_foreach((json_t *)props, key, klen, sub) {
			if ((pv = json_object_getn(v, key, klen)) == NULL)
				continue;
			walk_push_key(w, key, klen);
			rc = validate_value(w, sub, pv, depth + 1);
			walk_pop(w);
			if (rc != 0)
				return -1;
		}
	}
	if (extra == NULL || json_is_true(extra))
		return 0;
	json_object_keylen_foreach((json_t *)v, key, klen, pv) {
		if (props != NULL &&
		    json_object_getn(props, key, klen) != NULL)
			continue;
		if (!json_is_false(extra)) {
			walk_push_key(w, key, klen);
			rc = validate_value(w, extra, pv, depth + 1);
			walk_pop(w);
			if (rc != 0)
				return -1;
			continue;
		}
		walk_begin(w, &b);
		ebuf_str(&b, "property '");
		ebuf_name(&b, key, klen, 0);
		ebuf_str(&b, "' is not allowed");
		if (props == NULL || json_object_size(props) == 0) {
			ebuf_str(&b, " (no properties are allowed)");
			return -1;
		}
		ebuf_str(&b, " (allowed: ");
		first = 1;
		json_object_keylen_foreach((json_t *)props, key, klen, sub) {
			if (!first)
				ebuf_str(&b, ", ");
			ebuf_name(&b, key, klen, 0);
			first = 0;
		}
		ebuf_str(&b, ")");
		return -1;
	}
	return 0;
}

/* Apply the array keywords to an array. */
static int
validate_array(struct schema_walk *w, const json_t *s, const json_t *v,
    int depth)
{
	const json_t *items = json_object_get(s, "items");
	size_t i, n = json_array_size(v);
	int rc;

	if (validate_count(w, s, "minItems", "maxItems", n, "item") != 0)
		return -1;
	if (items == NULL)
		return 0;
	for (i = 0; i < n; i++) {
		walk_push_idx(w, i);
		rc = validate_value(w, items, json_array_get(v, i), depth + 1);
		walk_pop(w);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* Apply minLength and maxLength, counting code points. */
static int
validate_string(struct schema_walk *w, const json_t *s, const json_t *v)
{
	const char *p = json_string_value(v);
	size_t i, n = 0, len = json_string_length(v);

	for (i = 0; i < len; i++)
		if (((unsigned char)p[i] & 0xc0) != 0x80)
			n++;
	return validate_count(w, s, "minLength", "maxLength", n,
	    "character");
}

/* Apply minimum and maximum. */
static int
validate_number(struct schema_walk *w, const json_t *s, const json_t *v)
{
	const json_t *lim;
	struct ebuf b;

	if (json_is_number(lim = json_object_get(s, "minimum")) &&
	    num_cmp(v, lim) < 0) {
		walk_begin(w, &b);
		ebuf_str(&b, "expected at least ");
		ebuf_number(&b, lim);
		ebuf_str(&b, ", got ");
		ebuf_number(&b, v);
		return -1;
	}
	if (json_is_number(lim = json_object_get(s, "maximum")) &&
	    num_cmp(v, lim) > 0) {
		walk_begin(w, &b);
		ebuf_str(&b, "expected at most ");
		ebuf_number(&b, lim);
		ebuf_str(&b, ", got ");
		ebuf_number(&b, v);
		return -1;
	}
	return 0;
}

/* Validate v against schema s at the given depth. */
static int
validate_value(struct schema_walk *w, const json_t *s, const json_t *v,
    int depth)
{
	const json_t *k;
	struct ebuf b;

	if (depth > SCHEMA_MAX_DEPTH)
		return walk_fail(w, "value nested deeper than %d levels",
		    SCHEMA_MAX_DEPTH);
	if (json_is_true(s))
		return 0;
	if (!json_is_object(s))
		return walk_fail(w, "no value is allowed here");
	if ((k = json_object_get(s, "type")) != NULL &&
	    validate_type(w, k, v) != 0)
		return -1;
	if ((k = json_object_get(s, "const")) != NULL &&
	    !value_equal(k, v, 0)) {
		walk_begin(w, &b);
		ebuf_str(&b, "expected ");
		ebuf_json(&b, k);
		ebuf_str(&b, ", got ");
		ebuf_value(&b, v);
		return -1;
	}
	if ((k = json_object_get(s, "enum")) != NULL &&
	    validate_enum(w, k, v) != 0)
		return -1;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return validate_object(w, s, v, depth);
	case JSON_ARRAY:
		return validate_array(w, s, v, depth);
	case JSON_STRING:
		return validate_string(w, s, v);
	case JSON_INTEGER:
	case JSON_REAL:
		return validate_number(w, s, v);
	default:
		return 0;
	}
}

/* Validate a value; see schema.h. */
int
schema_validate(const json_t *schema, const json_t *value, char *err,
    size_t errlen)
{
	struct schema_walk w;

	w.root = NULL;
	w.nsegs = 0;
	w.err = err;
	w.errlen = errlen;
	if (schema == NULL || value == NULL)
		return walk_fail(&w, "no value");
	return validate_value(&w, schema, value, 0);
}
