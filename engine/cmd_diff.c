/*
 * cmd_diff.c: `weft diff RUN1 RUN2`: the two runs' steps side by side,
 * aligned by a longest common subsequence of (node path, step kind,
 * node kind / model / tool name), with the first divergence marked.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "engine/cmd.h"
#include "engine/eval.h"
#include "engine/schema.h"
#include "engine/store.h"
#include "runtime/util.h"

/* Row kinds, printed in the middle column as `diff -y` does. */
enum { ROW_SAME = ' ', ROW_CHANGED = '|', ROW_LEFT = '<', ROW_RIGHT = '>' };

struct diff_row {
	long	a, b;		/* step indexes, -1 for a gap */
	int	op;
};

struct diff {
	struct eval_run	 ra, rb;
	struct diff_row	*rows;
	size_t		 n;
	long		 first;		/* first non-same row, or -1 */
	size_t		 same, changed, left, right;
};

/* Strings equal, NULL equal only to NULL. */
static int
diff_str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Same alignment key: node path, step kind, name. */
static int
diff_key_eq(void *arg, size_t i, size_t j)
{
	struct diff *d = arg;
	const struct eval_step *a = &d->ra.steps[i], *b = &d->rb.steps[j];

	return strcmp(a->kind, b->kind) == 0 && strcmp(a->path, b->path) ==
	    0 && strcmp(a->name, b->name) == 0;
}

/* Aligned steps differ in what the key leaves out: arguments, outcome. */
static int
diff_changed(const struct eval_step *a, const struct eval_step *b)
{
	return !diff_str_eq(a->detail, b->detail) ||
	    !schema_equal(a->args, b->args);
}

/* Append a row and count it. */
static void
diff_push(struct diff *d, long a, long b, int op)
{
	d->rows[d->n].a = a;
	d->rows[d->n].b = b;
	d->rows[d->n].op = op;
	if (op != ROW_SAME && d->first < 0)
		d->first = (long)d->n;
	d->n++;
	switch (op) {
	case ROW_SAME: d->same++; break;
	case ROW_CHANGED: d->changed++; break;
	case ROW_LEFT: d->left++; break;
	default: d->right++;
	}
}

/* Align the two step lists into rows. */
static int
diff_align(struct diff *d, char *err, size_t errlen)
{
	size_t na = d->ra.n, nb = d->rb.n, i = 0, j = 0;
	long *amatch = xmalloc((na ? na : 1) * sizeof *amatch);

	if (eval_lcs(na, nb, diff_key_eq, d, amatch, err, errlen) < 0) {
		free(amatch);
		return -1;
	}
	d->rows = xmalloc((na + nb + 1) * sizeof *d->rows);
	d->first = -1;
	while (i < na || j < nb) {
		if (i < na && amatch[i] < 0)
			diff_push(d, (long)i++, -1, ROW_LEFT);
		else if (j < nb && (i >= na || (long)j < amatch[i]))
			diff_push(d, -1, (long)j++, ROW_RIGHT);
		else {
			diff_push(d, (long)i, (long)j, diff_changed(
			    &d->ra.steps[i], &d->rb.steps[j]) ? ROW_CHANGED :
			    ROW_SAME);
			i++;
			j++;
		}
	}
	free(amatch);
	return 0;
}

/* The last segment of a node path and its depth. */
static const char *
diff_leaf(const char *path, int *depth)
{
	const char *p, *leaf = path;

	*depth = *path != '\0';
	for (p = path; *p != '\0'; p++)
		if (*p == '/') {
			(*depth)++;
			leaf = p + 1;
		}
	return leaf;
}

/* A step as one line of text (without indentation). */
static char *
diff_label(const struct eval_step *s)
{
	char *args, *out;
	int depth;
	const char *leaf = diff_leaf(s->path, &depth);

	if (strcmp(s->kind, "node") == 0)
		return xasprintf("%s %s", leaf, s->name);
	if (strcmp(s->kind, "end") == 0)
		return xasprintf("end %s: %s", leaf, s->detail);
	if (strcmp(s->kind, "run") == 0)
		return xasprintf("run: %s", s->detail);
	if (strcmp(s->kind, "tool") != 0)
		return xasprintf("%s %s -> %s", s->kind, s->name, s->detail ?
		    s->detail : "");
	args = s->args != NULL ? json_dumps(s->args, JSON_COMPACT |
	    JSON_SORT_KEYS) : xstrdup("");
	out = xasprintf("tool %s %s -> %s", s->name, args, s->detail);
	free(args);
	return out;
}

/* Print a step into a column of width w (padded unless it is the last),
   indented by its depth. */
static void
diff_cell(const struct eval_run *r, long i, int w, int last)
{
	const struct eval_step *s;
	char *label, *cell;
	int depth;

	if (i < 0) {
		if (!last)
			printf("%-*s", w, "");
		return;
	}
	s = &r->steps[i];
	diff_leaf(s->path, &depth);
	if (strcmp(s->kind, "node") != 0 && strcmp(s->kind, "end") != 0)
		depth++;
	if (strcmp(s->kind, "run") == 0)
		depth = 0;
	label = diff_label(s);
	cell = xasprintf("%*s%s", depth * 2, "", label);
	if ((int)strlen(cell) > w && w > 3)
		strcpy(cell + w - 3, "...");
	printf("%-*s", last ? 0 : w, cell);
	free(label);
	free(cell);
}

/* Whether row k is within ctx rows of a row that is not the same. */
static int
diff_near(const struct diff *d, size_t k, long ctx)
{
	size_t lo, hi, i;

	if (ctx < 0)
		return 1;
	lo = k > (size_t)ctx ? k - (size_t)ctx : 0;
	hi = k + (size_t)ctx < d->n - 1 ? k + (size_t)ctx : d->n - 1;
	for (i = lo; i <= hi; i++)
		if (d->rows[i].op != ROW_SAME)
			return 1;
	return 0;
}

/* One row of the side-by-side view. */
static void
diff_print_row(const struct diff *d, size_t k, int w)
{
	printf("%s%5zu ", (long)k == d->first ? "=>" : "  ", k + 1);
	diff_cell(&d->ra, d->rows[k].a, w, 0);
	if (d->rows[k].b >= 0)
		printf(" %c ", d->rows[k].op);
	else
		printf(" %c", d->rows[k].op);
	diff_cell(&d->rb, d->rows[k].b, w, 1);
	printf("\n");
}

/* The two runs side by side (with ctx >= 0, only the rows within ctx of
   a difference), then a summary line. */
static void
diff_print(const struct diff *d, int width, long ctx)
{
	int w = (width - 12) / 2;
	char head[128];
	size_t k, skipped = 0;

	if (w < 20)
		w = 20;
	snprintf(head, sizeof head, "a %s (%s)", d->ra.id, d->ra.status);
	printf("%-8s%-*s   ", "", w, head);
	printf("b %s (%s)\n", d->rb.id, d->rb.status);
	for (k = 0; k <= d->n; k++) {
		if (k < d->n && !diff_near(d, k, ctx)) {
			skipped++;
			continue;
		}
		if (skipped > 0)
			printf("        ... %zu same row%s\n", skipped,
			    skipped == 1 ? "" : "s");
		skipped = 0;
		if (k < d->n)
			diff_print_row(d, k, w);
	}
	printf("\n");
	if (d->first < 0)
		printf("identical: %zu steps\n", d->n);
	else
		printf("first divergence at row %ld; %zu same, %zu changed, "
		    "%zu only in a, %zu only in b\n", d->first + 1, d->same,
		    d->changed, d->left, d->right);
}

/* A step as JSON, or null for a gap. */
static json_t *
diff_step_json(const struct eval_run *r, long i)
{
	const struct eval_step *s;

	if (i < 0)
		return json_null();
	s = &r->steps[i];
	return json_pack("{s:I, s:s, s:s, s:s, s:O?, s:s?}", "seq",
	    (json_int_t)s->seq, "path", s->path, "kind", s->kind, "name",
	    s->name, "args", s->args, "detail", s->detail);
}

/* The alignment as one JSON object (docs/eval.md). */
static json_t *
diff_doc(const struct diff *d)
{
	static const char *ops[] = { "same", "changed", "only_a", "only_b" };
	json_t *rows = json_array();
	const char *op;
	size_t k;

	for (k = 0; k < d->n; k++) {
		op = d->rows[k].op == ROW_SAME ? ops[0] : d->rows[k].op ==
		    ROW_CHANGED ? ops[1] : d->rows[k].op == ROW_LEFT ? ops[2] :
		    ops[3];
		json_array_append_new(rows, json_pack("{s:s, s:o, s:o}", "op",
		    op, "a", diff_step_json(&d->ra, d->rows[k].a), "b",
		    diff_step_json(&d->rb, d->rows[k].b)));
	}
	return json_pack("{s:i, s:{s:s, s:s}, s:{s:s, s:s}, s:b, s:o, "
	    "s:{s:I, s:I, s:I, s:I}, s:o}", "format", 1, "a", "run",
	    d->ra.id, "status", d->ra.status, "b", "run", d->rb.id, "status",
	    d->rb.status, "identical", d->first < 0, "first_divergence",
	    d->first < 0 ? json_null() : json_integer(d->first + 1), "counts",
	    "same", (json_int_t)d->same, "changed", (json_int_t)d->changed,
	    "only_a", (json_int_t)d->left, "only_b", (json_int_t)d->right,
	    "rows", rows);
}

/* Print the alignment as JSON. */
static void
diff_print_json(const struct diff *d)
{
	json_t *doc = diff_doc(d);
	char *text;

	text = json_dumps(doc, JSON_INDENT(2));
	printf("%s\n", text);
	free(text);
	json_decref(doc);
}

json_t *
cmd_diff_json(struct store *st, const char *a, const char *b, char *err,
    size_t errlen)
{
	struct diff d;
	json_t *doc = NULL;

	memset(&d, 0, sizeof d);
	if (eval_run_load(st, a, &d.ra, err, errlen) == 0 &&
	    eval_run_load(st, b, &d.rb, err, errlen) == 0 &&
	    diff_align(&d, err, errlen) == 0)
		doc = diff_doc(&d);
	eval_run_free(&d.ra);
	eval_run_free(&d.rb);
	free(d.rows);
	return doc;
}

static void
diff_usage(FILE *f)
{
	fprintf(f,
"usage: weft diff RUN1 RUN2 [--json] [--context N] [--width N] [--db PATH]\n"
"\n"
"Show two runs' steps side by side (nodes, node ends, model turns, tool\n"
"calls, in tree order), aligned on node path, step kind and node kind,\n"
"model or tool name.  The middle column says: ' ' same, '|' aligned but\n"
"different (tool arguments, outcome, the tools a model asked for), '<'\n"
"only in RUN1, '>' only in RUN2.  The first divergence is marked =>.\n"
"\n"
"  --json       print the alignment as one JSON object\n"
"  --context N  show only the rows within N rows of a difference\n"
"  --width N    line width of the side-by-side view (default 140)\n"
"  --db PATH    trajectory store (default $WEFT_DB or ./weft.db)\n"
"\n"
"Exit status: 0 identical, 1 different, 2 bad usage or unknown run.\n");
}

/* Parse --NAME's value, lo to hi; -1 with a message if it is not one. */
static int
diff_number(const char *name, const char *arg, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "weft: --%s '%s': expected %ld to %ld\n", name,
		    arg, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

int
cmd_diff(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "width", required_argument, NULL, 'w' },
		{ "context", required_argument, NULL, 'c' },
		{ "db", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct store *st = NULL;
	struct diff d;
	const char *db = NULL;
	char err[512];
	long width = 140, ctx = -1;
	int ch, json = 0, rc = WEFT_EXIT_USAGE;

	memset(&d, 0, sizeof d);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			json = 1;
			break;
		case 'w':
			if (diff_number("width", optarg, 40, 1000, &width))
				return WEFT_EXIT_USAGE;
			break;
		case 'c':
			if (diff_number("context", optarg, 0, 1000000, &ctx))
				return WEFT_EXIT_USAGE;
			break;
		case 'd':
			db = optarg;
			break;
		case 'h':
			diff_usage(stdout);
			return WEFT_EXIT_OK;
		default:
			diff_usage(stderr);
			return WEFT_EXIT_USAGE;
		}
	}
	if (optind != argc - 2) {
		diff_usage(stderr);
		return WEFT_EXIT_USAGE;
	}
	if (store_open_read(cmd_db_path(db), &st, err, sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		return WEFT_EXIT_USAGE;
	}
	if (eval_run_load(st, argv[optind], &d.ra, err, sizeof err) != 0 ||
	    eval_run_load(st, argv[optind + 1], &d.rb, err, sizeof err) != 0 ||
	    diff_align(&d, err, sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		goto out;
	}
	if (json)
		diff_print_json(&d);
	else
		diff_print(&d, (int)width, ctx);
	rc = d.first < 0 ? WEFT_EXIT_OK : WEFT_EXIT_FAILED;
out:
	eval_run_free(&d.ra);
	eval_run_free(&d.rb);
	free(d.rows);
	store_close(st);
	return rc;
}
