/* state.c: run state views, forks and the reducer merge of parallel joins. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "engine/state.h"
#include "runtime/util.h"

struct state {
	struct state	*parent;	/* NULL for the root view */
	json_t		*delta;		/* keys written in this view */
};

/* A root view whose initial content is a copy of obj. */
struct state *
state_new(json_t *obj)
{
	struct state *st = xcalloc(1, sizeof *st);

	if (obj != NULL && json_is_object(obj))
		st->delta = json_deep_copy(obj);
	else
		st->delta = json_object();
	return st;
}

/* A branch view over parent with an empty delta. */
struct state *
state_fork(struct state *parent)
{
	struct state *st = xcalloc(1, sizeof *st);

	st->parent = parent;
	st->delta = json_object();
	return st;
}

/* Free a view; its parent is untouched. */
void
state_free(struct state *st)
{
	if (st == NULL)
		return;
	json_decref(st->delta);
	free(st);
}

/* Look key up in this view, then in each parent in turn. */
json_t *
state_get(const struct state *st, const char *key)
{
	return state_getn(st, key, strlen(key));
}

/* Like state_get() for a key of len bytes, not NUL-terminated. */
json_t *
state_getn(const struct state *st, const char *key, size_t len)
{
	json_t *v;

	for (; st != NULL; st = st->parent) {
		if ((v = json_object_getn(st->delta, key, len)) != NULL)
			return v;
	}
	return NULL;
}

/* Follow a dotted path through nested objects. */
json_t *
state_get_path(const struct state *st, const char *path)
{
	const char *seg = path, *dot;
	json_t *v = NULL;

	for (;;) {
		dot = strchr(seg, '.');
		if (dot == NULL)
			dot = seg + strlen(seg);
		if (dot == seg)
			return NULL;
		if (v == NULL)
			v = state_getn(st, seg, (size_t)(dot - seg));
		else if (json_is_object(v))
			v = json_object_getn(v, seg, (size_t)(dot - seg));
		else
			return NULL;
		if (v == NULL || *dot == '\0')
			return v;
		seg = dot + 1;
	}
}

/* Write key in this view's delta, stealing value (NULL means JSON null). */
void
state_set(struct state *st, const char *key, json_t *value)
{
	if (value == NULL)
		value = json_null();
	/* jansson releases value itself if the key is not valid UTF-8. */
	json_object_set_new(st->delta, key, value);
}

/* The keys written in this view (borrowed). */
json_t *
state_delta(const struct state *st)
{
	return st->delta;
}

/* The whole state as this view sees it, as a new deep copy. */
json_t *
state_snapshot(const struct state *st)
{
	const struct state *chain[64], **v = chain, *s;
	size_t n = 0, cap = nitems(chain), i;
	json_t *flat, *out;

	for (s = st; s != NULL; s = s->parent) {
		if (n == cap) {
			cap *= 2;
			if (v == chain) {
				v = xcalloc(cap, sizeof *v);
				memcpy(v, chain, sizeof chain);
			} else
				v = xrealloc(v, cap * sizeof *v);
		}
		v[n++] = s;
	}
	flat = json_object();
	for (i = n; i > 0; i--)
		json_object_update(flat, v[i - 1]->delta);
	if (v != chain)
		free(v);
	out = json_deep_copy(flat);
	json_decref(flat);
	return out;
}

/*
 * The merge.  Every result is computed into a new reference before parent
 * is touched, so an error on any key leaves parent exactly as it was.
 */
struct merge {
	const char		*par;
	struct state		*parent;
	struct state_branch	*br;
	size_t			 n;
	const struct state_reducers *r;
	char			*err;
	size_t			 errlen;
};

static const char *
merge_bname(const struct merge *m, size_t i)
{
	return m->br[i].name != NULL ? m->br[i].name : "?";
}

/* The value branch i wrote for key, or NULL. */
static json_t *
merge_val(const struct merge *m, size_t i, const char *key)
{
	return json_object_get(m->br[i].st->delta, key);
}

static int
merge_cmp_cb(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The sorted, unique keys written by any branch (borrowed strings). */
static const char **
merge_keys(const struct merge *m, size_t *np)
{
	const char **keys, *k;
	size_t total = 0, n = 0, i, j;
	json_t *v;

	for (i = 0; i < m->n; i++)
		total += json_object_size(m->br[i].st->delta);
	keys = xcalloc(total + 1, sizeof *keys);
	for (i = 0; i < m->n; i++) {
		json_object_foreach(m->br[i].st->delta, k, v)
			keys[n++] = k;
	}
	qsort(keys, n, sizeof *keys, merge_cmp_cb);
	for (i = j = 0; i < n; i++) {
		if (j == 0 || strcmp(keys[j - 1], keys[i]) != 0)
			keys[j++] = keys[i];
	}
	*np = j;
	return keys;
}

/* No reducer: only one branch may write the key. */
static json_t *
merge_none(struct merge *m, const char *key)
{
	size_t i, first = m->n;

	for (i = 0; i < m->n; i++) {
		if (merge_val(m, i, key) == NULL)
			continue;
		if (first != m->n) {
			errf(m->err, m->errlen, "parallel '%s': branches '%s' "
			    "and '%s' both wrote '%s', which has no reducer",
			    m->par, merge_bname(m, first), merge_bname(m, i),
			    key);
			return NULL;
		}
		first = i;
	}
	return json_incref(merge_val(m, first, key));
}

/* Does array v start with every element of base? */
static int
merge_has_prefix(json_t *v, json_t *base)
{
	size_t i, n = json_array_size(base);

	if (!json_is_array(v) || json_array_size(v) < n)
		return 0;
	for (i = 0; i < n; i++) {
		if (!json_equal(json_array_get(v, i), json_array_get(base, i)))
			return 0;
	}
	return 1;
}

/* Append: base followed by each branch's new items, in branch order. */
static json_t *
merge_append(struct merge *m, const char *key, json_t *base)
{
	json_t *out, *v;
	size_t i, j, blen;

	if (base != NULL && !json_is_array(base)) {
		errf(m->err, m->errlen, "parallel '%s': '%s' has the append "
		    "reducer but its value is not an array", m->par, key);
		return NULL;
	}
	out = json_array();
	if (base != NULL)
		json_array_extend(out, base);
	blen = json_array_size(base);
	for (i = 0; i < m->n; i++) {
		if ((v = merge_val(m, i, key)) == NULL)
			continue;
		if (merge_has_prefix(v, base)) {
			for (j = blen; j < json_array_size(v); j++)
				json_array_append(out, json_array_get(v, j));
		} else
			json_array_append(out, v);
	}
	return out;
}

/* Sum: base plus each branch's change from base. */
static json_t *
merge_sum(struct merge *m, const char *key, json_t *base)
{
	json_int_t ib = 0, isum = 0, iv;
	double rb = 0, rsum = 0;
	int ints = 1;
	size_t i;
	json_t *v;

	if (base != NULL) {
		if (!json_is_number(base)) {
			errf(m->err, m->errlen, "parallel '%s': '%s' has the "
			    "sum reducer but its value is not a number",
			    m->par, key);
			return NULL;
		}
		ints = json_is_integer(base);
		ib = ints ? json_integer_value(base) : 0;
		rb = json_number_value(base);
	}
	isum = ib;
	rsum = rb;
	for (i = 0; i < m->n; i++) {
		if ((v = merge_val(m, i, key)) == NULL)
			continue;
		if (!json_is_number(v)) {
			errf(m->err, m->errlen, "parallel '%s': branch '%s' "
			    "wrote a non-number to '%s', which has the sum "
			    "reducer", m->par, merge_bname(m, i), key);
			return NULL;
		}
		rsum += json_number_value(v) - rb;
		if (!ints || !json_is_integer(v)) {
			ints = 0;
			continue;
		}
		if (__builtin_sub_overflow(json_integer_value(v), ib, &iv) ||
		    __builtin_add_overflow(isum, iv, &isum)) {
			errf(m->err, m->errlen, "parallel '%s': the sum of "
			    "'%s' overflows", m->par, key);
			return NULL;
		}
	}
	/* json_real refuses an infinity: say so rather than lose the key. */
	if (!ints && !isfinite(rsum)) {
		errf(m->err, m->errlen, "parallel '%s': the sum of '%s' "
		    "overflows", m->par, key);
		return NULL;
	}
	return ints ? json_integer(isum) : json_real(rsum);
}

/* The keys of object o, sorted (borrowed strings). */
static const char **
merge_subkeys(json_t *o, size_t *np)
{
	const char **keys, *k;
	size_t n = 0;
	json_t *v;

	keys = xcalloc(json_object_size(o) + 1, sizeof *keys);
	json_object_foreach(o, k, v)
		keys[n++] = k;
	qsort(keys, n, sizeof *keys, merge_cmp_cb);
	*np = n;
	return keys;
}

/* Merge: base with each sub-key a branch changed; disagreements fail. */
static json_t *
merge_object(struct merge *m, const char *key, json_t *base)
{
	json_t *out, *setter, *v, *bv, *s;
	const char **sub;
	size_t i, j, nsub;

	if (base != NULL && !json_is_object(base)) {
		errf(m->err, m->errlen, "parallel '%s': '%s' has the merge "
		    "reducer but its value is not an object", m->par, key);
		return NULL;
	}
	for (i = 0; i < m->n; i++) {
		v = merge_val(m, i, key);
		if (v != NULL && !json_is_object(v)) {
			errf(m->err, m->errlen, "parallel '%s': branch '%s' "
			    "wrote a non-object to '%s', which has the merge "
			    "reducer", m->par, merge_bname(m, i), key);
			return NULL;
		}
	}
	out = base != NULL ? json_copy(base) : json_object();
	setter = json_object();	/* sub-key -> index of its branch */
	for (i = 0; i < m->n; i++) {
		if ((v = merge_val(m, i, key)) == NULL)
			continue;
		sub = merge_subkeys(v, &nsub);
		for (j = 0; j < nsub; j++) {
			bv = json_object_get(v, sub[j]);
			if (json_equal(bv, json_object_get(base, sub[j])))
				continue;
			s = json_object_get(setter, sub[j]);
			if (s == NULL) {
				json_object_set(out, sub[j], bv);
				json_object_set_new(setter, sub[j],
				    json_integer((json_int_t)i));
				continue;
			}
			if (json_equal(bv, json_object_get(out, sub[j])))
				continue;
			errf(m->err, m->errlen, "parallel '%s': branches '%s' "
			    "and '%s' set '%s' in '%s' to different values",
			    m->par, merge_bname(m,
			    (size_t)json_integer_value(s)), merge_bname(m, i),
			    sub[j], key);
			free(sub);
			json_decref(setter);
			json_decref(out);
			return NULL;
		}
		free(sub);
	}
	json_decref(setter);
	return out;
}

/* Custom: fold each branch's value into the base with the callback. */
static json_t *
merge_custom(struct merge *m, const char *key, json_t *base)
{
	json_t *acc = base, *next, *v;
	char cerr[512];
	size_t i;

	if (m->r == NULL || m->r->custom == NULL) {
		errf(m->err, m->errlen, "parallel '%s': '%s' has a custom "
		    "reducer but no function to call", m->par, key);
		return NULL;
	}
	json_incref(acc);
	for (i = 0; i < m->n; i++) {
		if ((v = merge_val(m, i, key)) == NULL)
			continue;
		next = NULL;
		cerr[0] = '\0';
		if (m->r->custom(m->r->arg, key, acc, v, &next, cerr,
		    sizeof cerr) != 0 || next == NULL) {
			errf(m->err, m->errlen, "parallel '%s': key '%s': %s",
			    m->par, key, cerr[0] != '\0' ? cerr :
			    "custom reducer failed");
			json_decref(next);
			json_decref(acc);
			return NULL;
		}
		json_decref(acc);
		acc = next;
	}
	return acc;
}

/* Fold the branches' deltas into parent with each key's reducer. */
int
state_merge(struct state *parent, const char *par_name,
    struct state_branch *branches, size_t n, const struct state_reducers *r,
    char *err, size_t errlen)
{
	struct merge m;
	const char **keys;
	json_t **res, *base;
	size_t nkeys, i;
	enum state_reducer kind;
	int rv = 0;

	for (i = 0; i < n; i++) {
		if (NEVER(branches[i].st == NULL ||
		    branches[i].st->parent != parent)) {
			errf(err, errlen, "parallel '%s': branch '%s' is not "
			    "a fork of its state", par_name,
			    branches[i].name != NULL ? branches[i].name : "?");
			return -1;
		}
	}
	m.par = par_name != NULL ? par_name : "?";
	m.parent = parent;
	m.br = branches;
	m.n = n;
	m.r = r;
	m.err = err;
	m.errlen = errlen;

	keys = merge_keys(&m, &nkeys);
	res = xcalloc(nkeys + 1, sizeof *res);
	for (i = 0; i < nkeys; i++) {
		base = state_get(parent, keys[i]);
		kind = (r != NULL && r->kind != NULL) ?
		    r->kind(r->arg, keys[i]) : STATE_REDUCE_NONE;
		switch (kind) {
		case STATE_REDUCE_APPEND:
			res[i] = merge_append(&m, keys[i], base);
			break;
		case STATE_REDUCE_SUM:
			res[i] = merge_sum(&m, keys[i], base);
			break;
		case STATE_REDUCE_MERGE:
			res[i] = merge_object(&m, keys[i], base);
			break;
		case STATE_REDUCE_CUSTOM:
			res[i] = merge_custom(&m, keys[i], base);
			break;
		case STATE_REDUCE_NONE:
		default:
			res[i] = merge_none(&m, keys[i]);
			break;
		}
		if (res[i] == NULL) {
			rv = -1;
			break;
		}
	}
	for (i = 0; i < nkeys; i++) {
		if (res[i] == NULL)
			break;
		if (rv == 0)
			state_set(parent, keys[i], res[i]);
		else
			json_decref(res[i]);
	}
	free(res);
	free(keys);
	return rv;
}
