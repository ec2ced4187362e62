/*
 * cmd_eval.c: `weft eval RUN... --golden FILE`: tool-call precision,
 * recall and F1 of runs against a golden trajectory, and
 * `weft eval --make-golden RUN` to write one from a good run.
 * The golden file format and the metrics: docs/eval.md.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "engine/cmd.h"
#include "engine/eval.h"
#include "engine/schema.h"
#include "engine/store.h"
#include "runtime/util.h"

/* Golden files are small; this bounds what a bad path can make us read. */
#define GOLDEN_MAX_BYTES	(16 * 1024 * 1024)

/* The golden file's shape, checked with the engine's JSON Schema subset. */
static const char golden_schema[] =
    "{\"type\":\"object\",\"required\":[\"calls\"],"
    "\"additionalProperties\":false,\"properties\":{"
    "\"format\":{\"const\":1},"
    "\"description\":{\"type\":\"string\"},"
    "\"match\":{\"enum\":[\"exact\",\"in_order\",\"any_order\"]},"
    "\"args\":{\"enum\":[\"compare\",\"subset\",\"ignore\"]},"
    "\"success\":{\"type\":\"boolean\"},"
    "\"output\":true,"
    "\"output_contains\":{\"type\":\"string\"},"
    "\"calls\":{\"type\":\"array\",\"maxItems\":10000,\"items\":{"
    "\"type\":\"object\",\"required\":[\"tool\"],"
    "\"additionalProperties\":false,\"properties\":{"
    "\"tool\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":512},"
    "\"path\":{\"type\":\"string\"},"
    "\"args\":{\"type\":\"object\"}}}}}}";

struct golden {
	json_t			*doc;
	enum eval_match		 match;
	enum eval_args		 args;
	struct eval_call	*calls;
	size_t			 n;
	int			 has_success, success;
	json_t			*output;	/* borrowed from doc */
	const char		*contains;	/* borrowed from doc */
};

/* One evaluated run. */
struct eval_row {
	struct eval_run		 run;
	struct eval_call	*calls;
	size_t			 n;
	struct eval_score	 score;
	long			*gpair;
	const char		*check;		/* NULL if it passed */
};

/* Read and check a golden file: 0, or -1 with "FILE: /ptr: what". */
static int
golden_load(const char *path, struct golden *g, char *err, size_t errlen)
{
	struct stat sb;
	json_error_t je;
	json_t *schema, *c;
	char msg[512], *text;
	size_t i, len;
	int rc;

	memset(g, 0, sizeof *g);
	if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) &&
	    sb.st_size > GOLDEN_MAX_BYTES) {
		errf(err, errlen, "%s: larger than %d bytes", path,
		    GOLDEN_MAX_BYTES);
		return -1;
	}
	if ((text = read_file(path, &len)) == NULL) {
		errf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (len > GOLDEN_MAX_BYTES) {
		errf(err, errlen, "%s: larger than %d bytes", path,
		    GOLDEN_MAX_BYTES);
		free(text);
		return -1;
	}
	g->doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	free(text);
	if (g->doc == NULL) {
		errf(err, errlen, "%s:%d:%d: %s", path, je.line, je.column,
		    je.text);
		return -1;
	}
	schema = json_loads(golden_schema, 0, &je);
	if (ALWAYS(schema != NULL))
		rc = schema_validate(schema, g->doc, msg, sizeof msg);
	else
		rc = -1;
	json_decref(schema);
	if (rc != 0) {
		errf(err, errlen, "%s: %s", path, msg);
		return -1;
	}
	g->match = EVAL_IN_ORDER;
	if (json_object_get(g->doc, "match") != NULL)
		g->match = eval_match_parse(json_string_value(
		    json_object_get(g->doc, "match")));
	g->args = EVAL_ARGS_COMPARE;
	if (json_object_get(g->doc, "args") != NULL)
		g->args = eval_args_parse(json_string_value(
		    json_object_get(g->doc, "args")));
	g->has_success = json_object_get(g->doc, "success") != NULL;
	g->success = json_is_true(json_object_get(g->doc, "success"));
	g->output = json_object_get(g->doc, "output");
	g->contains = json_string_value(json_object_get(g->doc,
	    "output_contains"));
	g->n = json_array_size(json_object_get(g->doc, "calls"));
	g->calls = xcalloc(g->n ? g->n : 1, sizeof *g->calls);
	json_array_foreach(json_object_get(g->doc, "calls"), i, c) {
		g->calls[i].tool = json_string_value(json_object_get(c,
		    "tool"));
		g->calls[i].path = json_string_value(json_object_get(c,
		    "path"));
		g->calls[i].args = json_object_get(c, "args");
	}
	return 0;
}

/* Free a golden file loaded (or half loaded) by golden_load. */
static void
golden_free(struct golden *g)
{
	free(g->calls);
	json_decref(g->doc);
}

/* The run's tool calls, in tree order, as calls to compare. */
static void
row_calls(struct eval_row *w)
{
	struct eval_step *s;
	size_t i;

	w->calls = xcalloc(w->run.n ? w->run.n : 1, sizeof *w->calls);
	for (i = 0; i < w->run.n; i++) {
		s = &w->run.steps[i];
		if (strcmp(s->kind, "tool") != 0)
			continue;
		w->calls[w->n].tool = s->name;
		w->calls[w->n].name = s->tool;
		w->calls[w->n].path = s->path;
		w->calls[w->n].args = s->args;
		w->n++;
	}
}

/* Whether the run's output contains the text (a non-string as JSON). */
static int
output_contains(const json_t *out, const char *text)
{
	char *s;
	int found;

	if (out == NULL)
		return 0;
	if (json_is_string(out))
		return strstr(json_string_value(out), text) != NULL;
	s = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);
	found = s != NULL && strstr(s, text) != NULL;
	free(s);
	return found;
}

/* The golden file's expectations on the outcome; NULL if all hold. */
static const char *
row_check(const struct golden *g, const struct eval_run *r)
{
	int ok = strcmp(r->status, "succeeded") == 0;

	if (g->has_success && ok != g->success)
		return g->success ? "run did not succeed" :
		    "run succeeded, golden expects failure";
	if (g->output != NULL && !schema_equal(g->output, r->output))
		return "output differs";
	if (g->contains != NULL && !output_contains(r->output, g->contains))
		return "output lacks output_contains";
	return NULL;
}

/* Load and score one run. */
static int
row_eval(struct store *st, const char *id, const struct golden *g,
    struct eval_row *w, char *err, size_t errlen)
{
	memset(w, 0, sizeof *w);
	if (eval_run_load(st, id, &w->run, err, errlen) != 0)
		return -1;
	row_calls(w);
	w->gpair = xmalloc((g->n ? g->n : 1) * sizeof *w->gpair);
	if (eval_score(g->calls, g->n, w->calls, w->n, g->match, g->args,
	    &w->score, w->gpair, err, errlen) != 0)
		return -1;
	w->check = row_check(g, &w->run);
	return 0;
}

/* Free what row_eval filled in. */
static void
row_free(struct eval_row *w)
{
	eval_run_free(&w->run);
	free(w->calls);
	free(w->gpair);
}

/* A call as JSON: {index, tool, path?, args?}. */
static json_t *
call_json(size_t i, const struct eval_call *c)
{
	return json_pack("{s:I, s:s, s:s*, s:O*}", "index", (json_int_t)i,
	    "tool", c->tool, "path", c->path, "args", c->args);
}

/* Golden calls the run missed and run calls the golden does not have. */
static void
row_misses(const struct golden *g, const struct eval_row *w,
    json_t **missing, json_t **extra)
{
	char *used = xcalloc(w->n ? w->n : 1, 1);
	size_t i;

	*missing = json_array();
	*extra = json_array();
	for (i = 0; i < g->n; i++) {
		if (w->gpair[i] >= 0)
			used[w->gpair[i]] = 1;
		else
			json_array_append_new(*missing, call_json(i,
			    &g->calls[i]));
	}
	for (i = 0; i < w->n; i++)
		if (!used[i])
			json_array_append_new(*extra, call_json(i,
			    &w->calls[i]));
	free(used);
}

/* One run's figures and mismatches as JSON. */
static json_t *
row_json(const struct golden *g, const struct eval_row *w)
{
	json_t *missing, *extra;

	row_misses(g, w, &missing, &extra);
	return json_pack("{s:s, s:s, s:b, s:s?, s:I, s:I, s:I, s:f, s:f, "
	    "s:f, s:I, s:I, s:f, s:o, s:o}", "run", w->run.id, "status",
	    w->run.status, "pass", w->check == NULL, "check", w->check,
	    "calls", (json_int_t)w->score.actual, "expected",
	    (json_int_t)w->score.expected, "matched",
	    (json_int_t)w->score.matched, "precision", w->score.precision,
	    "recall", w->score.recall, "f1", w->score.f1, "steps",
	    (json_int_t)w->run.nsteps, "tokens", (json_int_t)w->run.tokens,
	    "cost_usd", w->run.cost, "missing", missing, "extra", extra);
}

/* Totals over the runs, for the mean and per-success figures. */
struct eval_sums {
	double	p, r, f1, steps, tokens, cost;
	size_t	n, ok, failed_checks;
};

/* Add up the rows. */
static void
sums_of(const struct eval_row *rows, size_t n, struct eval_sums *s)
{
	size_t i;

	memset(s, 0, sizeof *s);
	s->n = n;
	for (i = 0; i < n; i++) {
		s->p += rows[i].score.precision;
		s->r += rows[i].score.recall;
		s->f1 += rows[i].score.f1;
		s->steps += (double)rows[i].run.nsteps;
		s->tokens += (double)rows[i].run.tokens;
		s->cost += rows[i].run.cost;
		s->ok += strcmp(rows[i].run.status, "succeeded") == 0;
		s->failed_checks += rows[i].check != NULL;
	}
}

/* The whole evaluation as one JSON object (docs/eval.md). */
static void
print_json(const char *file, const struct golden *g,
    const struct eval_row *rows, const struct eval_sums *s, double min_f1,
    int pass)
{
	json_t *doc, *list = json_array(), *per = json_null();
	double n = (double)s->n;
	size_t i;
	char *text;

	for (i = 0; i < s->n; i++)
		json_array_append_new(list, row_json(g, &rows[i]));
	if (s->ok > 0)
		per = json_pack("{s:I, s:f, s:f, s:f}", "successes",
		    (json_int_t)s->ok, "steps", s->steps / (double)s->ok,
		    "tokens", s->tokens / (double)s->ok, "cost_usd",
		    s->cost / (double)s->ok);
	doc = json_pack("{s:i, s:{s:s, s:s, s:s, s:I}, s:o, s:{s:I, s:I, "
	    "s:f, s:f, s:f, s:f, s:f, s:f}, s:o, s:o, s:b}", "format", 1,
	    "golden", "file", file, "match", eval_match_name(g->match),
	    "args", eval_args_name(g->args), "calls", (json_int_t)g->n,
	    "runs", list, "mean", "runs", (json_int_t)s->n, "succeeded",
	    (json_int_t)s->ok, "precision", s->p / n, "recall", s->r / n,
	    "f1", s->f1 / n, "steps", s->steps / n, "tokens", s->tokens / n,
	    "cost_usd", s->cost / n, "per_success", per, "min_f1",
	    min_f1 >= 0 ? json_real(min_f1) : json_null(), "pass", pass);
	text = json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
	printf("%s\n", text);
	free(text);
	json_decref(doc);
}

/* Print "label: #i tool args" for each call in list. */
static void
print_calls(const char *label, json_t *list)
{
	json_t *c;
	size_t i;
	char *args;

	json_array_foreach(list, i, c) {
		args = json_object_get(c, "args") != NULL ? json_dumps(
		    json_object_get(c, "args"), JSON_COMPACT | JSON_SORT_KEYS) :
		    xstrdup("");
		if (strlen(args) > 60)
			strcpy(args + 57, "...");
		printf("    %s #%lld %s %s\n", label,
		    (long long)json_integer_value(json_object_get(c, "index")) +
		    1, json_string_value(json_object_get(c, "tool")), args);
		free(args);
	}
}

/* One run's row of the table and its mismatched calls. */
static void
print_row(const struct golden *g, const struct eval_row *w)
{
	json_t *missing, *extra;
	char calls[48];

	snprintf(calls, sizeof calls, "%zu/%zu", w->score.matched,
	    w->score.expected);
	printf("%-16s  %-15s  %7s  %5zu  %9.3f  %6.3f  %5.3f  %5lld  %7lld  "
	    "$%.4f%s%s\n", w->run.id, w->run.status, calls, w->score.actual,
	    w->score.precision, w->score.recall, w->score.f1,
	    (long long)w->run.nsteps, (long long)w->run.tokens, w->run.cost,
	    w->check != NULL ? "  FAIL: " : "", w->check != NULL ? w->check :
	    "");
	row_misses(g, w, &missing, &extra);
	print_calls("missing", missing);
	print_calls("extra  ", extra);
	json_decref(missing);
	json_decref(extra);
}

/* The evaluation as a table: a row per run, the mean, the verdict. */
static void
print_table(const char *file, const struct golden *g,
    const struct eval_row *rows, const struct eval_sums *s, double min_f1,
    int pass)
{
	double n = (double)s->n;
	char ok[48];
	size_t i;

	printf("golden %s: %zu calls, match %s, args %s\n\n", file, g->n,
	    eval_match_name(g->match), eval_args_name(g->args));
	printf("%-16s  %-15s  %7s  %5s  %9s  %6s  %5s  %5s  %7s  %s\n", "RUN",
	    "STATUS", "MATCHED", "CALLS", "PRECISION", "RECALL", "F1", "STEPS",
	    "TOKENS", "COST");
	for (i = 0; i < s->n; i++)
		print_row(g, &rows[i]);
	snprintf(ok, sizeof ok, "%zu/%zu succeeded", s->ok, s->n);
	printf("%-16s  %-15s  %7s  %5s  %9.3f  %6.3f  %5.3f  %5.1f  %7.1f  "
	    "$%.4f\n", "mean", ok, "", "", s->p / n, s->r / n, s->f1 / n,
	    s->steps / n, s->tokens / n, s->cost / n);
	if (s->ok > 0)
		printf("per successful run: %.1f steps, %.1f tokens, $%.4f "
		    "(all runs' totals / %zu successes)\n", s->steps /
		    (double)s->ok, s->tokens / (double)s->ok, s->cost /
		    (double)s->ok, s->ok);
	else
		printf("per successful run: no run succeeded\n");
	if (min_f1 >= 0)
		printf("mean F1 %.3f %s --min-f1 %.3f\n", s->f1 / n,
		    s->f1 / n >= min_f1 ? ">=" : "<", min_f1);
	if (s->failed_checks > 0)
		printf("%zu run(s) failed the golden file's outcome checks\n",
		    s->failed_checks);
	printf("%s\n", pass ? "PASS" : "FAIL");
}

/* Write a golden file for run to stdout. */
static int
make_golden(struct store *st, const char *id, int match, int args,
    int with_output)
{
	struct eval_run r;
	json_t *doc, *calls = json_array();
	char err[512], *text;
	size_t i;

	if (eval_run_load(st, id, &r, err, sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		json_decref(calls);
		return WEFT_EXIT_USAGE;
	}
	for (i = 0; i < r.n; i++)
		if (strcmp(r.steps[i].kind, "tool") == 0)
			json_array_append_new(calls, json_pack("{s:s, s:O?}",
			    "tool", r.steps[i].name, "args", r.steps[i].args));
	doc = json_pack("{s:i, s:o, s:s, s:s, s:o}", "format", 1,
	    "description", json_sprintf("made from run %s", r.id), "match",
	    eval_match_name(match < 0 ? EVAL_IN_ORDER : match), "args",
	    eval_args_name(args < 0 ? EVAL_ARGS_COMPARE : args), "calls",
	    calls);
	if (strcmp(r.status, "succeeded") == 0)
		json_object_set_new(doc, "success", json_true());
	else
		fprintf(stderr, "weft: warning: run %s is %s; the golden file "
		    "sets no \"success\"\n", r.id, r.status);
	if (with_output && r.output != NULL)
		json_object_set(doc, "output", r.output);
	text = json_dumps(doc, JSON_INDENT(2));
	printf("%s\n", text);
	free(text);
	json_decref(doc);
	eval_run_free(&r);
	return WEFT_EXIT_OK;
}

static void
eval_usage(FILE *f)
{
	fprintf(f,
"usage: weft eval RUN... --golden FILE [--min-f1 X] [--json]\n"
"                 [--match MODE] [--args MODE] [--db PATH]\n"
"       weft eval --make-golden RUN [--match MODE] [--args MODE]\n"
"                 [--with-output] [--db PATH] > golden.json\n"
"\n"
"Score runs' tool calls against a golden trajectory: precision, recall\n"
"and F1, with steps, tokens and cost, one row per run and their mean.\n"
"Calls are named server.tool and taken in tree order (docs/eval.md).\n"
"\n"
"  --golden FILE     the expected calls and outcome (format: docs/eval.md)\n"
"  --min-f1 X        exit 1 if the mean F1 is below X (0..1)\n"
"  --match MODE      exact, in_order or any_order (overrides the file)\n"
"  --args MODE       compare, subset or ignore (overrides the file)\n"
"  --json            print the figures as one JSON object\n"
"  --make-golden RUN print a golden file made from RUN's tool calls\n"
"  --with-output     with --make-golden: also expect RUN's output\n"
"  --db PATH         trajectory store (default $WEFT_DB or ./weft.db)\n"
"\n"
"Exit status: 0 pass; 1 mean F1 below --min-f1, or a run failed the\n"
"golden file's success or output expectation; 2 bad usage, bad golden\n"
"file or unknown run.\n");
}

struct eval_opts {
	const char	*golden, *db, *make;
	double		 min_f1;
	int		 json, match, args, with_output;
};

/* Parse the command line into o; 0, 1 for --help, -1 bad usage, -2 a
   bad value (already reported). */
static int
eval_getopt(int argc, char **argv, struct eval_opts *o)
{
	static const struct option longopts[] = {
		{ "golden", required_argument, NULL, 'g' },
		{ "min-f1", required_argument, NULL, 'f' },
		{ "match", required_argument, NULL, 'm' },
		{ "args", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "make-golden", required_argument, NULL, 'k' },
		{ "with-output", no_argument, NULL, 'o' },
		{ "db", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	char *end;
	int ch;

	memset(o, 0, sizeof *o);
	o->min_f1 = -1;
	o->match = o->args = -1;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'g': o->golden = optarg; break;
		case 'd': o->db = optarg; break;
		case 'k': o->make = optarg; break;
		case 'j': o->json = 1; break;
		case 'o': o->with_output = 1; break;
		case 'f':
			errno = 0;
			o->min_f1 = strtod(optarg, &end);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    !(o->min_f1 >= 0 && o->min_f1 <= 1)) {
				fprintf(stderr, "weft: --min-f1 '%s': expected "
				    "a number from 0 to 1\n", optarg);
				return -2;
			}
			break;
		case 'm':
			if ((o->match = eval_match_parse(optarg)) < 0) {
				fprintf(stderr, "weft: --match '%s': expected "
				    "exact, in_order or any_order\n", optarg);
				return -2;
			}
			break;
		case 'a':
			if ((o->args = eval_args_parse(optarg)) < 0) {
				fprintf(stderr, "weft: --args '%s': expected "
				    "compare, subset or ignore\n", optarg);
				return -2;
			}
			break;
		case 'h':
			return 1;
		default:
			return -1;
		}
	}
	return 0;
}

/* Score runs ids[0..n) against g and print; returns the exit code. */
static int
eval_runs(struct store *st, const struct eval_opts *o, struct golden *g,
    char **ids, size_t n)
{
	struct eval_row *rows = xcalloc(n, sizeof *rows);
	struct eval_sums s;
	char err[512];
	size_t i, done = 0;
	int rc = WEFT_EXIT_USAGE, pass;

	for (i = 0; i < n; i++, done++)
		if (row_eval(st, ids[i], g, &rows[i], err, sizeof err) != 0) {
			fprintf(stderr, "weft: %s\n", err);
			done++;
			goto out;
		}
	sums_of(rows, n, &s);
	pass = s.failed_checks == 0 && (o->min_f1 < 0 ||
	    s.f1 / (double)n >= o->min_f1);
	if (o->json)
		print_json(o->golden, g, rows, &s, o->min_f1, pass);
	else
		print_table(o->golden, g, rows, &s, o->min_f1, pass);
	rc = pass ? WEFT_EXIT_OK : WEFT_EXIT_FAILED;
out:
	for (i = 0; i < done; i++)
		row_free(&rows[i]);
	free(rows);
	return rc;
}

int
cmd_eval(int argc, char **argv)
{
	struct eval_opts o;
	struct golden g;
	struct store *st = NULL;
	char err[1024];
	int rc;

	if ((rc = eval_getopt(argc, argv, &o)) != 0) {
		if (rc != -2)
			eval_usage(rc > 0 ? stdout : stderr);
		return rc > 0 ? WEFT_EXIT_OK : WEFT_EXIT_USAGE;
	}
	if (o.make != NULL ? (o.golden != NULL || optind != argc) :
	    (o.golden == NULL || optind == argc)) {
		eval_usage(stderr);
		return WEFT_EXIT_USAGE;
	}
	if (o.golden != NULL && golden_load(o.golden, &g, err,
	    sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		golden_free(&g);
		return WEFT_EXIT_USAGE;
	}
	if (store_open_read(cmd_db_path(o.db), &st, err, sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		if (o.golden != NULL)
			golden_free(&g);
		return WEFT_EXIT_USAGE;
	}
	if (o.make != NULL)
		rc = make_golden(st, o.make, o.match, o.args, o.with_output);
	else {
		if (o.match >= 0)
			g.match = o.match;
		if (o.args >= 0)
			g.args = o.args;
		rc = eval_runs(st, &o, &g, argv + optind,
		    (size_t)(argc - optind));
		golden_free(&g);
	}
	store_close(st);
	return rc;
}
