/*
 * eval.c: trajectories as step lists, tool-call metrics and the LCS
 * alignment behind weft eval and weft diff (docs/eval.md).
 *
 * A run's events are turned into steps in recording order, then put in
 * tree order: each node step is followed by what its span recorded and by
 * its children's subtrees, in the order they were recorded.  This undoes
 * the interleaving of parallel branches, which varies between runs of the
 * same workflow, so two such runs compare step for step.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "engine/eval.h"
#include "engine/schema.h"
#include "engine/store.h"
#include "runtime/util.h"

/* Steps in recording order, with what the tree order needs. */
struct eval_load {
	struct eval_run	*r;
	int64_t		*span;		/* node steps: own span, else 0 */
	int64_t		*owner;		/* span the step belongs under */
	size_t		 cap;
	json_t		*heads;		/* span id -> node step index */
	json_t		*tasks;		/* task id -> tool step index */
};

/* A string member of an object, or NULL. */
static const char *
jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* Append a step; returns its index. */
static size_t
eval_add(struct eval_load *l, const struct store_event *ev, const char *kind,
    const char *name, int64_t span, int64_t owner)
{
	struct eval_run *r = l->r;
	struct eval_step *s;

	if (r->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		r->steps = xrealloc(r->steps, l->cap * sizeof *r->steps);
		l->span = xrealloc(l->span, l->cap * sizeof *l->span);
		l->owner = xrealloc(l->owner, l->cap * sizeof *l->owner);
	}
	s = &r->steps[r->n];
	memset(s, 0, sizeof *s);
	s->seq = ev != NULL ? ev->seq : 0;
	s->path = xstrdup(ev != NULL && ev->node_path != NULL ?
	    ev->node_path : "");
	s->kind = kind;
	s->name = xstrdup(name != NULL ? name : "?");
	l->span[r->n] = span;
	l->owner[r->n] = owner;
	return r->n++;
}

/* The step index stored under key in map, or -1. */
static long
eval_lookup(json_t *map, int64_t id)
{
	char key[32];
	json_t *v;

	snprintf(key, sizeof key, "%lld", (long long)id);
	v = json_object_get(map, key);
	return v != NULL ? (long)json_integer_value(v) : -1;
}

/* Remember step index idx under id in map. */
static void
eval_remember(json_t *map, int64_t id, size_t idx)
{
	char key[32];

	snprintf(key, sizeof key, "%lld", (long long)id);
	json_object_set_new(map, key, json_integer((json_int_t)idx));
}

/* Replace a step's detail. */
static void
eval_detail(struct eval_step *s, char *detail)
{
	free(s->detail);
	s->detail = detail;
}

/* A model answer's outcome: its stop reason and the tools it asked for. */
static char *
eval_model_detail(const json_t *resp)
{
	const json_t *calls = json_object_get(resp, "tool_calls"), *c;
	const char *stop = jstr(resp, "stop_reason");
	char *d, *t;
	size_t i;

	d = xstrdup(stop != NULL ? stop : "answer");
	json_array_foreach(calls, i, c) {
		t = xasprintf("%s%s%s", d, i == 0 ? ": " : ", ",
		    jstr(c, "name") != NULL ? jstr(c, "name") : "?");
		free(d);
		d = t;
	}
	return d;
}

/* A tool call: "server.tool", arguments, pending until its result. */
static void
eval_tool_call(struct eval_load *l, const struct store_event *ev, json_t *p)
{
	struct eval_step *s;
	const char *server = jstr(p, "server"), *name = jstr(p, "name");
	char *full;
	size_t i, off;

	if (name != NULL)
		full = xasprintf("%s.%s", server ? server : "?", name);
	else
		full = xstrdup(server ? server : "?");
	i = eval_add(l, ev, "tool", full, 0, ev->span_id);
	off = name != NULL ? strlen(full) - strlen(name) : 0;
	s = &l->r->steps[i];
	s->tool = s->name + off;
	s->args = json_incref(json_object_get(p, "arguments"));
	s->detail = xstrdup("pending");
	free(full);
	eval_remember(l->tasks, json_integer_value(json_object_get(p,
	    "task")), i);
}

/* A tool call's outcome. */
static void
eval_tool_end(struct eval_load *l, const struct store_event *ev, json_t *p)
{
	const json_t *e = json_object_get(p, "error");
	const char *kind;
	long i;

	i = eval_lookup(l->tasks, json_integer_value(
	    json_object_get(p, "task")));
	if (i < 0)
		return;
	if (strcmp(ev->kind, "tool.result") == 0) {
		/* MCP: a tool's own failure is a result with isError. */
		eval_detail(&l->r->steps[i], xstrdup(json_is_true(
		    json_object_get(json_object_get(p, "result"), "isError")) ?
		    "error (isError)" : "ok"));
		return;
	}
	kind = jstr(e, "kind");
	eval_detail(&l->r->steps[i], kind != NULL ?
	    xasprintf("error (%s)", kind) : xstrdup("error"));
}

/* A node's end, a step of its own after the node's children. */
static void
eval_node_end(struct eval_load *l, const struct store_event *ev, json_t *p)
{
	const char *status = jstr(p, "status"), *stop = jstr(p, "stop");
	long head;
	size_t i;

	head = eval_lookup(l->heads, ev->span_id);
	i = eval_add(l, ev, "end", head >= 0 ? l->r->steps[head].name : "?",
	    0, ev->span_id);
	l->r->steps[i].detail = stop != NULL ? xasprintf("%s, stop=%s",
	    status ? status : "?", stop) : xstrdup(status ? status : "?");
}

/* Turn one event into a step, or into the outcome of an earlier one. */
static int
eval_event_cb(void *arg, const struct store_event *ev)
{
	struct eval_load *l = arg;
	json_error_t je;
	json_t *p = NULL;
	char *name;
	size_t i;

	if (ev->payload != NULL)
		p = json_loads(ev->payload, JSON_DECODE_ANY, &je);
	if (strcmp(ev->kind, "node.start") == 0) {
		i = eval_add(l, ev, "node", jstr(p, "kind"), ev->span_id,
		    ev->parent_span);
		eval_remember(l->heads, ev->span_id, i);
	} else if (strcmp(ev->kind, "node.end") == 0)
		eval_node_end(l, ev, p);
	else if (strcmp(ev->kind, "model.call") == 0 ||
	    strcmp(ev->kind, "model.response") == 0) {
		name = xasprintf("%s:%s", jstr(p, "provider") ?
		    jstr(p, "provider") : "?", jstr(p, "model") ?
		    jstr(p, "model") : "?");
		i = eval_add(l, ev, "model", name, 0, ev->span_id);
		l->r->steps[i].detail = eval_model_detail(json_object_get(p,
		    "response"));
		free(name);
	} else if (strcmp(ev->kind, "model.error") == 0) {
		i = eval_add(l, ev, "model", "(failed)", 0, ev->span_id);
		l->r->steps[i].detail = xasprintf("error (%s)", jstr(p,
		    "kind") ? jstr(p, "kind") : "?");
	} else if (strcmp(ev->kind, "tool.call") == 0)
		eval_tool_call(l, ev, p);
	else if (strcmp(ev->kind, "tool.result") == 0 ||
	    strcmp(ev->kind, "tool.error") == 0)
		eval_tool_end(l, ev, p);
	json_decref(p);
	return 0;
}

/* Linked lists of each node's items, in recording order. */
struct eval_tree {
	long	*first, *last, *next;
	char	*done;
};

/* Emit step i and, for a node, its items depth first. */
static void
eval_emit(const struct eval_load *l, struct eval_tree *t, long i,
    size_t *order, size_t *n)
{
	long k;

	if (t->done[i])
		return;
	t->done[i] = 1;
	/* The run's step, holding its outcome, comes last. */
	if (i != 0)
		order[(*n)++] = (size_t)i;
	for (k = t->first[i]; k >= 0; k = t->next[k])
		eval_emit(l, t, k, order, n);
	if (i == 0)
		order[(*n)++] = 0;
}

/* Put the steps (step 0 is the run, moved to the end) in tree order. */
static void
eval_tree_order(struct eval_load *l)
{
	struct eval_run *r = l->r;
	struct eval_step *sorted;
	struct eval_tree t;
	size_t *order, n = 0, i;
	long up;

	t.first = xmalloc(r->n * sizeof *t.first);
	t.last = xmalloc(r->n * sizeof *t.last);
	t.next = xmalloc(r->n * sizeof *t.next);
	t.done = xcalloc(r->n, 1);
	order = xmalloc(r->n * sizeof *order);
	for (i = 0; i < r->n; i++)
		t.first[i] = t.last[i] = t.next[i] = -1;
	for (i = 1; i < r->n; i++) {
		up = l->owner[i] != 0 ? eval_lookup(l->heads,
		    l->owner[i]) : 0;
		if (up < 0 || (size_t)up == i)
			up = 0;
		if (t.last[up] < 0)
			t.first[up] = (long)i;
		else
			t.next[t.last[up]] = (long)i;
		t.last[up] = (long)i;
	}
	eval_emit(l, &t, 0, order, &n);
	/* Steps cut off by a cycle in corrupt spans go last, in order. */
	for (i = 0; i < r->n; i++)
		if (!t.done[i])
			order[n++] = i;
	sorted = xmalloc((r->n ? r->n : 1) * sizeof *sorted);
	for (i = 0; i < r->n; i++)
		sorted[i] = r->steps[order[i]];
	free(r->steps);
	r->steps = sorted;
	free(t.first);
	free(t.last);
	free(t.next);
	free(t.done);
	free(order);
}

/* Copy the run row's figures. */
static int
eval_run_cb(void *arg, const struct store_run *row)
{
	struct eval_run *r = arg;
	json_error_t je;

	r->id = xstrdup(row->id);
	r->status = xstrdup(row->status != NULL ? row->status : "?");
	r->output = row->output != NULL ? json_loads(row->output,
	    JSON_DECODE_ANY, &je) : NULL;
	r->nsteps = row->steps;
	r->tokens = row->tokens;
	r->cost = row->cost;
	return 0;
}

int
eval_run_load(struct store *st, const char *run, struct eval_run *r,
    char *err, size_t errlen)
{
	struct eval_load l;
	size_t i;
	int rc;

	memset(r, 0, sizeof *r);
	memset(&l, 0, sizeof l);
	if (store_run_find(st, run, eval_run_cb, r) != 0) {
		errf(err, errlen, "%s", store_error(st));
		return -1;
	}
	l.r = r;
	l.heads = json_object();
	l.tasks = json_object();
	i = eval_add(&l, NULL, "run", "", 0, 0);
	r->steps[i].detail = xstrdup(r->status);
	rc = store_events_foreach(st, r->id, eval_event_cb, &l);
	if (rc != 0)
		errf(err, errlen, "%s", store_error(st));
	else
		eval_tree_order(&l);
	json_decref(l.heads);
	json_decref(l.tasks);
	free(l.span);
	free(l.owner);
	if (rc != 0) {
		eval_run_free(r);
		return -1;
	}
	return 0;
}

void
eval_run_free(struct eval_run *r)
{
	size_t i;

	for (i = 0; i < r->n; i++) {
		free(r->steps[i].path);
		free(r->steps[i].name);
		free(r->steps[i].detail);
		json_decref(r->steps[i].args);
	}
	free(r->steps);
	free(r->id);
	free(r->status);
	json_decref(r->output);
	memset(r, 0, sizeof *r);
}

/* Golden arguments against actual ones (NULL actual counts as {}). */
static int
eval_args_match(const json_t *want, const json_t *got, enum eval_args mode)
{
	json_t *empty = NULL, *v;
	const char *k;
	int ok = 1;

	if (mode == EVAL_ARGS_IGNORE || want == NULL)
		return 1;
	if (got == NULL)
		got = empty = json_object();
	if (mode == EVAL_ARGS_COMPARE || !json_is_object(want) ||
	    !json_is_object(got))
		ok = schema_equal(want, got);
	else
		json_object_foreach((json_t *)want, k, v)
			if (!schema_equal(v, json_object_get(got, k))) {
				ok = 0;
				break;
			}
	json_decref(empty);
	return ok;
}

int
eval_call_matches(const struct eval_call *g, const struct eval_call *a,
    enum eval_args mode)
{
	const char *name;

	/* A golden tool without a server names the tool on any server. */
	if (strchr(g->tool, '.') == NULL && a->name != NULL)
		name = a->name;
	else
		name = a->tool;
	if (name == NULL || strcmp(g->tool, name) != 0)
		return 0;
	if (g->path != NULL && (a->path == NULL ||
	    strcmp(g->path, a->path) != 0))
		return 0;
	return eval_args_match(g->args, a->args, mode);
}

struct eval_cmp {
	const struct eval_call	*g, *a;
	enum eval_args		 mode;
};

/* Golden call i against actual call j, for eval_lcs. */
static int
eval_cmp_cb(void *arg, size_t i, size_t j)
{
	struct eval_cmp *c = arg;

	return eval_call_matches(&c->g[i], &c->a[j], c->mode);
}

/* Direction bits of the LCS table. */
enum { LCS_DIAG = 1, LCS_DOWN = 2, LCS_RIGHT = 3 };

static void
lcs_set(uint8_t *dir, size_t cell, int d)
{
	dir[cell / 4] |= (uint8_t)(d << ((cell % 4) * 2));
}

static int
lcs_get(const uint8_t *dir, size_t cell)
{
	return (dir[cell / 4] >> ((cell % 4) * 2)) & 3;
}

/*
 * LCS of a[off..off+m) and b[off..off+n) by dynamic programming from the
 * end, two rows of lengths and two bits of direction per cell, then one
 * walk from the start.
 */
static void
lcs_table(size_t off, size_t m, size_t n, int (*eq)(void *, size_t,
    size_t), void *arg, long *amatch)
{
	uint32_t *next, *cur, *tmp;
	uint8_t *dir;
	size_t i, j;

	dir = xcalloc((m * n + 3) / 4, 1);
	next = xcalloc(n + 1, sizeof *next);
	cur = xcalloc(n + 1, sizeof *cur);
	for (i = m; i-- > 0;) {
		cur[n] = 0;
		for (j = n; j-- > 0;) {
			if (eq(arg, off + i, off + j)) {
				cur[j] = next[j + 1] + 1;
				lcs_set(dir, i * n + j, LCS_DIAG);
			} else if (next[j] >= cur[j + 1]) {
				cur[j] = next[j];
				lcs_set(dir, i * n + j, LCS_DOWN);
			} else {
				cur[j] = cur[j + 1];
				lcs_set(dir, i * n + j, LCS_RIGHT);
			}
		}
		tmp = next;
		next = cur;
		cur = tmp;
	}
	for (i = 0, j = 0; i < m && j < n;) {
		switch (lcs_get(dir, i * n + j)) {
		case LCS_DIAG:
			amatch[off + i++] = (long)(off + j++);
			break;
		case LCS_DOWN:
			i++;
			break;
		default:
			j++;
		}
	}
	free(dir);
	free(next);
	free(cur);
}

long
eval_lcs(size_t na, size_t nb, int (*eq)(void *, size_t, size_t),
    void *arg, long *amatch, char *err, size_t errlen)
{
	size_t pre = 0, suf = 0, m, n, i;
	long len = 0;

	for (i = 0; i < na; i++)
		amatch[i] = -1;
	/* A matching first (or last) pair is in some longest subsequence. */
	while (pre < na && pre < nb && eq(arg, pre, pre)) {
		amatch[pre] = (long)pre;
		pre++;
	}
	while (suf < na - pre && suf < nb - pre &&
	    eq(arg, na - 1 - suf, nb - 1 - suf)) {
		amatch[na - 1 - suf] = (long)(nb - 1 - suf);
		suf++;
	}
	m = na - pre - suf;
	n = nb - pre - suf;
	if (m > 0 && n > 0) {
		if (m > EVAL_MAX_CELLS / n) {
			errf(err, errlen, "too large to align: %zu x %zu "
			    "steps differ (limit %zu cells)", m, n,
			    EVAL_MAX_CELLS);
			return -1;
		}
		lcs_table(pre, m, n, eq, arg, amatch);
	}
	for (i = 0; i < na; i++)
		len += amatch[i] >= 0;
	return len;
}

/* Kuhn's augmenting path from golden call g; 1 if g got a partner. */
static int
eval_augment(const uint8_t *adj, size_t na, size_t g, long *gpair,
    long *apair, char *seen)
{
	size_t j;

	for (j = 0; j < na; j++) {
		if (!(adj[(g * na + j) / 8] & (1u << ((g * na + j) % 8))) ||
		    seen[j])
			continue;
		seen[j] = 1;
		if (apair[j] < 0 || eval_augment(adj, na, (size_t)apair[j],
		    gpair, apair, seen)) {
			gpair[g] = (long)j;
			apair[j] = (long)g;
			return 1;
		}
	}
	return 0;
}

/*
 * any_order: a maximum matching between the two multisets (a golden call
 * without arguments can match calls that a more specific one needs, so a
 * greedy pass is not enough; it only seeds the augmenting paths).
 */
static void
eval_any_order(struct eval_cmp *c, size_t ng, size_t na, long *gpair)
{
	uint8_t *adj = xcalloc((ng * na + 7) / 8, 1);
	long *apair = xmalloc(na * sizeof *apair);
	char *seen = xmalloc(na);
	size_t g, j;

	for (j = 0; j < na; j++)
		apair[j] = -1;
	for (g = 0; g < ng; g++)
		for (j = 0; j < na; j++)
			if (eval_cmp_cb(c, g, j))
				adj[(g * na + j) / 8] |= 1u << ((g * na + j) %
				    8);
	for (g = 0; g < ng; g++)
		for (j = 0; j < na && gpair[g] < 0; j++)
			if (apair[j] < 0 && (adj[(g * na + j) / 8] &
			    (1u << ((g * na + j) % 8)))) {
				gpair[g] = (long)j;
				apair[j] = (long)g;
			}
	for (g = 0; g < ng; g++) {
		if (gpair[g] >= 0)
			continue;
		memset(seen, 0, na);
		eval_augment(adj, na, g, gpair, apair, seen);
	}
	free(adj);
	free(apair);
	free(seen);
}

/*
 * Precision, recall and F1 from the counts.  An empty denominator gives 1
 * (no call was wrong / none was due); F1 is 0 when both are 0.
 */
static void
eval_figures(struct eval_score *s)
{
	s->precision = s->actual > 0 ? (double)s->matched /
	    (double)s->actual : 1.0;
	s->recall = s->expected > 0 ? (double)s->matched /
	    (double)s->expected : 1.0;
	if (s->precision + s->recall > 0)
		s->f1 = 2 * s->precision * s->recall / (s->precision +
		    s->recall);
	else
		s->f1 = 0;
}

int
eval_score(const struct eval_call *golden, size_t ng,
    const struct eval_call *actual, size_t na, enum eval_match match,
    enum eval_args args, struct eval_score *out, long *gpair, char *err,
    size_t errlen)
{
	struct eval_cmp c = { golden, actual, args };
	long *pair = xmalloc((ng ? ng : 1) * sizeof *pair);
	size_t i;
	int rc = 0;

	for (i = 0; i < ng; i++)
		pair[i] = -1;
	if (match == EVAL_EXACT) {
		for (i = 0; i < ng && i < na; i++)
			if (eval_cmp_cb(&c, i, i))
				pair[i] = (long)i;
	} else if (ng > 0 && na > 0 && na > EVAL_MAX_CELLS / ng) {
		errf(err, errlen, "too many calls to compare: %zu golden x "
		    "%zu actual", ng, na);
		rc = -1;
	} else if (match == EVAL_IN_ORDER) {
		if (eval_lcs(ng, na, eval_cmp_cb, &c, pair, err, errlen) < 0)
			rc = -1;
	} else if (ng > 0 && na > 0)
		eval_any_order(&c, ng, na, pair);
	if (rc == 0) {
		memset(out, 0, sizeof *out);
		out->expected = ng;
		out->actual = na;
		for (i = 0; i < ng; i++)
			out->matched += pair[i] >= 0;
		eval_figures(out);
		if (gpair != NULL)
			memcpy(gpair, pair, ng * sizeof *pair);
	}
	free(pair);
	return rc;
}

static const char *eval_match_names[] = { "exact", "in_order", "any_order" };
static const char *eval_args_names[] = { "compare", "subset", "ignore" };

int
eval_match_parse(const char *s)
{
	size_t i;

	for (i = 0; i < nitems(eval_match_names); i++)
		if (strcmp(s, eval_match_names[i]) == 0)
			return (int)i;
	return -1;
}

int
eval_args_parse(const char *s)
{
	size_t i;

	for (i = 0; i < nitems(eval_args_names); i++)
		if (strcmp(s, eval_args_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *
eval_match_name(enum eval_match m)
{
	return eval_match_names[m];
}

const char *
eval_args_name(enum eval_args a)
{
	return eval_args_names[a];
}
