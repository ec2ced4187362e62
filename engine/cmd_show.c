/* cmd_show.c: `weft show RUN` and `weft runs`: read trajectories back. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "engine/cmd.h"
#include "engine/store.h"
#include "runtime/util.h"

/* A node span rebuilt from node.start / node.end events. */
struct span {
	int64_t		 id;
	int64_t		 parent;
	char		*path;
	char		*name;
	char		*kind;
	char		*status;
	char		*stop;
	char		*error;
	double		 start, end;
	int64_t		 tokens;	/* own model tokens */
	int64_t		 tools;		/* own tool calls */
	int64_t		 turns;		/* own model turns */
	int64_t		 sub_tokens, sub_tools;
	double		 cost, sub_cost;	/* USD of model calls */
	json_t		*calls;		/* [{name, args, result, error, ms}] */
};

struct show {
	struct span	*spans;
	size_t		 n, cap;
	json_t		*events;	/* for --json */
	json_t		*tasks;		/* task id -> call object */
	int		 want_json;
	int		 full;		/* model text whole, not trimmed */
};

static struct span *
show_span(struct show *s, int64_t id)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->spans[i].id == id)
			return &s->spans[i];
	return NULL;
}

static const char *
jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* A short one-line rendering of a value, at most max bytes. */
static char *
show_brief(json_t *v, size_t max)
{
	char *s, *p;

	if (v == NULL)
		return xstrdup("");
	if (json_is_string(v))
		s = xstrdup(json_string_value(v));
	else
		s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	for (p = s; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	if (strlen(s) > max) {
		s[max - 3] = '.';
		s[max - 2] = '.';
		s[max - 1] = '.';
		s[max] = '\0';
	}
	return s;
}

/* The text of an MCP tool result, or of an A2A exchange's (its version). */
static char *
show_result_text(json_t *r)
{
	json_t *content = json_object_get(r, "content"), *b;
	json_t *task = json_object_get(r, "task");
	size_t i;
	char *out = xstrdup(""), *t;

	if (jstr(r, "protocol") != NULL) {
		free(out);
		if (jstr(r, "messageId") == NULL)
			return xasprintf("A2A v%s card: %s at %s",
			    jstr(r, "protocol"), jstr(r, "name") ?
			    jstr(r, "name") : "(unnamed)", jstr(r, "url") ?
			    jstr(r, "url") : "?");
		return xasprintf("A2A v%s task %s %s: %s", jstr(r, "protocol"),
		    jstr(task, "id") ? jstr(task, "id") : "-",
		    jstr(task, "state") ? jstr(task, "state") : "(message)",
		    jstr(r, "text") ? jstr(r, "text") : "");
	}

	json_array_foreach(content, i, b) {
		if (json_is_string(json_object_get(b, "text"))) {
			t = xasprintf("%s%s%s", out, *out ? " " : "",
			    jstr(b, "text"));
			free(out);
			out = t;
		}
	}
	return out;
}

static int
show_event_cb(void *arg, const struct store_event *ev)
{
	struct show *s = arg;
	struct span *sp;
	json_t *p = NULL, *call;
	json_error_t je;
	char key[32];

	if (ev->payload != NULL)
		p = json_loads(ev->payload, JSON_DECODE_ANY, &je);
	if (s->want_json) {
		json_array_append_new(s->events, json_pack(
		    "{s:I, s:I, s:I, s:s, s:s, s:i, s:f, s:I, s:f, s:O?}",
		    "seq", (json_int_t)ev->seq, "span", (json_int_t)ev->span_id,
		    "parent_span", (json_int_t)ev->parent_span,
		    "path", ev->node_path, "kind", ev->kind,
		    "attempt", ev->attempt, "time", ev->time,
		    "tokens", (json_int_t)ev->tokens, "cost", ev->cost,
		    "payload", p));
		json_decref(p);
		return 0;
	}
	if (strcmp(ev->kind, "node.start") == 0) {
		if (s->n == s->cap) {
			s->cap = s->cap ? s->cap * 2 : 64;
			s->spans = xrealloc(s->spans, s->cap * sizeof *s->spans);
		}
		sp = &s->spans[s->n++];
		memset(sp, 0, sizeof *sp);
		sp->id = ev->span_id;
		sp->parent = ev->parent_span;
		sp->path = xstrdup(ev->node_path);
		if (json_integer_value(json_object_get(p, "iteration")) > 0)
			sp->name = xasprintf("%s #%lld", jstr(p, "name") ?
			    jstr(p, "name") : "?", (long long)json_integer_value(
			    json_object_get(p, "iteration")));
		else
			sp->name = xstrdup(jstr(p, "name") ? jstr(p, "name") :
			    "?");
		sp->kind = xstrdup(jstr(p, "kind") ? jstr(p, "kind") : "?");
		sp->status = xstrdup("running");
		sp->start = ev->time;
		sp->calls = json_array();
	} else if ((sp = show_span(s, ev->span_id)) == NULL) {
		/* run-level events: nothing to attach */
	} else if (strcmp(ev->kind, "node.end") == 0) {
		free(sp->status);
		sp->status = xstrdup(jstr(p, "status") ? jstr(p, "status") :
		    "?");
		sp->end = ev->time;
		if (jstr(p, "stop"))
			sp->stop = xstrdup(jstr(p, "stop"));
		if (jstr(p, "error"))
			sp->error = xstrdup(jstr(p, "error"));
	} else if (strcmp(ev->kind, "model.call") == 0 ||
	    strcmp(ev->kind, "model.response") == 0) {
		sp->tokens += ev->tokens;
		sp->cost += ev->cost;
		sp->turns++;
		/* The scripted provider records request and answer as one
		   model.call; the gateway its answer as model.response. */
		if (json_object_get(p, "response") != NULL)
			json_array_append_new(sp->calls, json_pack(
			    "{s:s, s:s?, s:s?, s:s?, s:I, s:f, s:O?, s:O?, "
			    "s:O?, s:O?}",
			    "model", "response", "provider", jstr(p,
			    "provider"), "name", jstr(p, "model"), "stop",
			    jstr(json_object_get(p, "response"),
			    "stop_reason"), "tokens", (json_int_t)ev->tokens,
			    "cost", ev->cost, "attempts", json_object_get(p,
			    "attempts"), "duration", json_object_get(p,
			    "duration"), "text", json_object_get(
			    json_object_get(p, "response"), "text"), "asked",
			    json_object_get(json_object_get(p, "response"),
			    "tool_calls")));
	} else if (strcmp(ev->kind, "model.retry") == 0 ||
	    strcmp(ev->kind, "model.fallback") == 0 ||
	    strcmp(ev->kind, "model.error") == 0 ||
	    strcmp(ev->kind, "context.compacted") == 0 ||
	    strcmp(ev->kind, "model.truncated") == 0 ||
	    strcmp(ev->kind, "output.invalid") == 0 ||
	    strcmp(ev->kind, "hook") == 0) {
		json_array_append_new(sp->calls, json_pack("{s:s, s:O?}",
		    "model", ev->kind, "payload", p));
	} else if (strcmp(ev->kind, "tool.call") == 0) {
		sp->tools++;
		call = json_pack("{s:O?, s:O?}", "name", json_object_get(p,
		    "name"), "args", json_object_get(p, "arguments"));
		if (jstr(p, "kind") != NULL && strcmp(jstr(p, "kind"),
		    "a2a.send") == 0)
			json_object_set_new(call, "name", json_sprintf(
			    "a2a %s.%s", jstr(p, "server") ? jstr(p,
			    "server") : "?", jstr(p, "name") ? jstr(p,
			    "name") : "send"));
		json_array_append(sp->calls, call);
		snprintf(key, sizeof key, "%lld", (long long)json_integer_value(
		    json_object_get(p, "task")));
		json_object_set_new(s->tasks, key, call);
	} else if (strcmp(ev->kind, "tool.progress") == 0) {
		snprintf(key, sizeof key, "%lld",
		    (long long)json_integer_value(json_object_get(p, "task")));
		if ((call = json_object_get(s->tasks, key)) != NULL) {
			if (json_object_get(call, "progress") == NULL)
				json_object_set_new(call, "progress",
				    json_array());
			json_array_append(json_object_get(call, "progress"),
			    p);
		}
	} else if (strcmp(ev->kind, "tool.result") == 0 ||
	    strcmp(ev->kind, "tool.error") == 0 ||
	    strcmp(ev->kind, "task.retry") == 0) {
		snprintf(key, sizeof key, "%lld", (long long)json_integer_value(
		    json_object_get(p, "task")));
		if ((call = json_object_get(s->tasks, key)) != NULL) {
			if (strcmp(ev->kind, "task.retry") == 0)
				json_object_set_new(call, "retries",
				    json_integer(json_integer_value(
				    json_object_get(call, "retries")) + 1));
			else {
				json_object_set(call, "result",
				    json_object_get(p, "result"));
				json_object_set(call, "error",
				    json_object_get(p, "error"));
				json_object_set(call, "duration",
				    json_object_get(p, "duration"));
			}
		}
	}
	json_decref(p);
	return 0;
}

/* Add each span's own figures to all its ancestors. */
static void
show_sum(struct show *s)
{
	struct span *sp, *up;
	size_t i;

	for (i = 0; i < s->n; i++) {
		sp = &s->spans[i];
		for (up = sp; up != NULL; up = up->parent ?
		    show_span(s, up->parent) : NULL) {
			up->sub_tokens += sp->tokens;
			up->sub_tools += sp->tools;
			up->sub_cost += sp->cost;
		}
	}
}

/* A model's text under its line: trimmed to one line, or whole. */
static void
show_model_text(json_t *call, int depth, int full)
{
	json_t *text = json_object_get(call, "text"), *c;
	char *b, *line, *save = NULL;
	size_t i;

	if (json_is_string(text) && full) {
		b = xstrdup(json_string_value(text));
		for (line = strtok_r(b, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save))
			printf("%*s    | %s\n", depth * 2, "", line);
		free(b);
	} else if (json_is_string(text)) {
		b = show_brief(text, 100);
		printf("%*s    | %s\n", depth * 2, "", b);
		free(b);
	}
	json_array_foreach(json_object_get(call, "asked"), i, c) {
		b = show_brief(json_object_get(c, "args"), full ? 100000 : 70);
		printf("%*s    > calls %s %s\n", depth * 2, "",
		    jstr(c, "name") ? jstr(c, "name") : "?", b);
		free(b);
	}
}

/* One line for a model event under its node. */
static void
show_model_line(json_t *call, int depth)
{
	const char *what = jstr(call, "model");
	json_t *p = json_object_get(call, "payload");
	char *brief;

	if (strcmp(what, "response") == 0) {
		printf("%*s  - model %s:%s -> %s (%lld tokens, $%.4f, %.0fms",
		    depth * 2, "", jstr(call, "provider") ? jstr(call,
		    "provider") : "?", jstr(call, "name") ? jstr(call, "name") :
		    "?", jstr(call, "stop") ? jstr(call, "stop") : "?",
		    (long long)json_integer_value(json_object_get(call,
		    "tokens")), json_number_value(json_object_get(call, "cost")),
		    json_number_value(json_object_get(call, "duration")) * 1000);
		if (json_integer_value(json_object_get(call, "attempts")) > 1)
			printf(", %lld attempts", (long long)json_integer_value(
			    json_object_get(call, "attempts")));
		printf(")\n");
	} else if (strcmp(what, "model.retry") == 0)
		printf("%*s  ~ retry %s after %s: %s (waited %lldms)\n",
		    depth * 2, "", jstr(p, "provider") ? jstr(p, "provider") :
		    "?", jstr(p, "kind") ? jstr(p, "kind") : "?",
		    jstr(p, "message") ? jstr(p, "message") : "",
		    (long long)json_integer_value(json_object_get(p,
		    "delay_ms")));
	else if (strcmp(what, "model.fallback") == 0)
		printf("%*s  ~ fallback %s -> %s: %s\n", depth * 2, "",
		    jstr(p, "from") ? jstr(p, "from") : "?", jstr(p, "to") ?
		    jstr(p, "to") : "?", jstr(p, "reason") ? jstr(p, "reason") :
		    "");
	else if (strcmp(what, "model.error") == 0)
		printf("%*s  ! model error (%s): %s\n", depth * 2, "",
		    jstr(p, "kind") ? jstr(p, "kind") : "?",
		    jstr(p, "message") ? jstr(p, "message") : "");
	else {
		brief = show_brief(p, 90);
		printf("%*s  ~ %s %s\n", depth * 2, "", what, brief);
		free(brief);
	}
}

/* A tool call's progress notifications, one line each. */
static void
show_progress(json_t *list, int depth)
{
	json_t *p;
	size_t i;

	json_array_foreach(list, i, p) {
		printf("%*s    ~ progress %g", depth * 2, "",
		    json_number_value(json_object_get(p, "progress")));
		if (json_is_number(json_object_get(p, "total")))
			printf("/%g", json_number_value(json_object_get(p,
			    "total")));
		if (jstr(p, "message") != NULL)
			printf(" %s", jstr(p, "message"));
		printf("\n");
	}
}

/*
 * Nodes still open when the run ended (cancelled, failed, a budget) never
 * recorded their end: they ended with the run, in its status.
 */
static void
show_close(struct show *s, const char *status, double ended)
{
	size_t i;

	if (ended <= 0)
		return;
	for (i = 0; i < s->n; i++)
		if (strcmp(s->spans[i].status, "running") == 0) {
			free(s->spans[i].status);
			s->spans[i].status = xstrdup(status);
			s->spans[i].end = ended;
		}
}

static void
show_tree(struct show *s, int64_t parent, int depth, double now)
{
	struct span *sp;
	json_t *call;
	size_t i, k;
	char label[160], *args, *res;
	double dur;

	for (i = 0; i < s->n; i++) {
		sp = &s->spans[i];
		if (sp->parent != parent)
			continue;
		dur = (sp->end > 0 ? sp->end : now) - sp->start;
		snprintf(label, sizeof label, "%*s%s", depth * 2, "", sp->name);
		printf("%-34s %-10s %-9s %7.3fs  tokens %-6lld tools %-4lld",
		    label, sp->kind, sp->status, dur,
		    (long long)sp->sub_tokens, (long long)sp->sub_tools);
		if (sp->stop != NULL)
			printf(" stop=%s", sp->stop);
		if (sp->turns > 0)
			printf(" turns=%lld", (long long)sp->turns);
		if (sp->sub_cost > 0)
			printf(" $%.4f", sp->sub_cost);
		printf("\n");
		if (sp->error != NULL && strcmp(sp->status, "failed") == 0)
			printf("%*s  ! %s\n", depth * 2, "", sp->error);
		json_array_foreach(sp->calls, k, call) {
			if (jstr(call, "model") != NULL) {
				show_model_line(call, depth);
				show_model_text(call, depth, s->full);
				continue;
			}
			args = show_brief(json_object_get(call, "args"), 60);
			if (json_object_get(call, "error") != NULL &&
			    !json_is_null(json_object_get(call, "error")))
				res = xasprintf("ERROR %s", jstr(json_object_get(
				    call, "error"), "message"));
			else {
				char *t = show_result_text(json_object_get(
				    call, "result"));
				json_t *js = json_string(t);

				res = show_brief(js, 70);
				json_decref(js);
				free(t);
			}
			printf("%*s  - tool %s %s -> %s (%.0fms%s)\n",
			    depth * 2, "", jstr(call, "name") ?
			    jstr(call, "name") : "?", args, res,
			    json_number_value(json_object_get(call,
			    "duration")) * 1000,
			    json_object_get(call, "retries") ? ", retried" : "");
			free(args);
			free(res);
			show_progress(json_object_get(call, "progress"),
			    depth);
		}
		show_tree(s, sp->id, depth + 1, now);
	}
}

static const char *
show_time(double t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	localtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
	return buf;
}

/* The run row as JSON. */
static json_t *
run_json(const struct store_run *r)
{
	json_error_t je;
	json_t *in = r->input ? json_loads(r->input, 0, &je) : NULL;
	json_t *out = r->output ? json_loads(r->output, JSON_DECODE_ANY, &je) :
	    NULL;
	json_t *spend = r->spend ? json_loads(r->spend, 0, &je) : NULL;

	return json_pack("{s:s, s:s, s:s?, s:o?, s:s, s:o?, s:s?, s:f, "
	    "s:f, s:I, s:I, s:f, s:o?, s:s?}", "id", r->id,
	    "workflow", r->workflow, "workflow_hash", r->workflow_hash,
	    "input", in, "status", r->status, "output", out,
	    "error", r->error, "started", r->started,
	    "ended", r->ended, "steps", (json_int_t)r->steps,
	    "tokens", (json_int_t)r->tokens, "cost_usd", r->cost,
	    "spend", spend, "parent_run", r->parent_run);
}

struct found {
	char	*id;
	json_t	*row;
	double	 started, ended;
	char	*status, *workflow, *error;
	int64_t	 steps, tokens;
	double	 cost;
};

static int
show_found_cb(void *arg, const struct store_run *r)
{
	struct found *f = arg;

	f->id = xstrdup(r->id);
	f->row = run_json(r);
	f->started = r->started;
	f->ended = r->ended;
	f->status = xstrdup(r->status);
	f->workflow = xstrdup(r->workflow);
	f->error = r->error ? xstrdup(r->error) : NULL;
	f->steps = r->steps;
	f->tokens = r->tokens;
	f->cost = r->cost;
	return 0;
}

static void
show_usage(FILE *f)
{
	fprintf(f,
"usage: weft show RUN [--full] [--json] [--db PATH]\n"
"\n"
"Show a run's trajectory as an indented tree: each node with its kind,\n"
"status, duration, tokens and tool calls (totals include children); each\n"
"model turn with its text (| ...) and the tools it asked for (> calls);\n"
"each tool call with its arguments, result and progress (~ progress).\n"
"Nodes still open when a run was cancelled or failed show the run's\n"
"status.  RUN is a run id or a unique prefix of one (see `weft runs`).\n"
"To browse it in a web page: weft view RUN.\n"
"\n"
"  --full      model text whole (default: trimmed to one line)\n"
"  --json      print the run and all its events as one JSON object\n"
"              (format: docs/trajectory-json.md)\n"
"  --db PATH   trajectory store (default $WEFT_DB or ./weft.db)\n");
}

int
cmd_show(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "full", no_argument, NULL, 'f' },
		{ "db", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct store *st = NULL;
	struct show s;
	struct found f;
	const char *db = NULL;
	char err[512], when[32], *text;
	json_t *doc;
	size_t i;
	int ch, rc = WEFT_EXIT_FAILED;

	memset(&s, 0, sizeof s);
	memset(&f, 0, sizeof f);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			s.want_json = 1;
			break;
		case 'f':
			s.full = 1;
			break;
		case 'd':
			db = optarg;
			break;
		case 'h':
			show_usage(stdout);
			return WEFT_EXIT_OK;
		default:
			show_usage(stderr);
			return WEFT_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		show_usage(stderr);
		return WEFT_EXIT_USAGE;
	}
	if (store_open_read(cmd_db_path(db), &st, err, sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		return WEFT_EXIT_FAILED;
	}
	if (store_run_find(st, argv[optind], show_found_cb, &f) != 0) {
		fprintf(stderr, "weft: %s\n", store_error(st));
		goto out;
	}
	s.events = json_array();
	s.tasks = json_object();
	if (store_events_foreach(st, f.id, show_event_cb, &s) != 0) {
		fprintf(stderr, "weft: %s\n", store_error(st));
		goto out;
	}
	if (s.want_json) {
		doc = json_pack("{s:i, s:O, s:O}", "format", 1, "run", f.row,
		    "events", s.events);
		text = json_dumps(doc, JSON_INDENT(2));
		printf("%s\n", text);
		free(text);
		json_decref(doc);
	} else {
		show_sum(&s);
		show_close(&s, f.status, f.ended);
		printf("run %s  %s  %s\n", f.id, f.status, f.workflow);
		printf("started %s  duration %.3fs  steps %lld  tokens %lld  "
		    "cost $%.4f\n", show_time(f.started, when, sizeof when),
		    (f.ended > 0 ? f.ended : now_wall()) - f.started,
		    (long long)f.steps, (long long)f.tokens, f.cost);
		if (f.error != NULL)
			printf("error: %s\n", f.error);
		printf("\n");
		show_tree(&s, 0, 0, f.ended > 0 ? f.ended : now_wall());
	}
	rc = WEFT_EXIT_OK;
out:
	for (i = 0; i < s.n; i++) {
		free(s.spans[i].path);
		free(s.spans[i].name);
		free(s.spans[i].kind);
		free(s.spans[i].status);
		free(s.spans[i].stop);
		free(s.spans[i].error);
		json_decref(s.spans[i].calls);
	}
	free(s.spans);
	json_decref(s.events);
	json_decref(s.tasks);
	json_decref(f.row);
	free(f.id);
	free(f.status);
	free(f.workflow);
	free(f.error);
	store_close(st);
	return rc;
}

struct runs_walk {
	int	 want_json;
	json_t	*list;
};

static int
runs_cb(void *arg, const struct store_run *r)
{
	struct runs_walk *w = arg;
	char when[32];

	if (w->want_json) {
		json_array_append_new(w->list, run_json(r));
		return 0;
	}
	printf("%-16s  %-10s  %s  %8.3fs  %6lld  %8lld  $%-8.4f %s\n", r->id,
	    r->status, show_time(r->started, when, sizeof when),
	    (r->ended > 0 ? r->ended : now_wall()) - r->started,
	    (long long)r->steps, (long long)r->tokens, r->cost, r->workflow);
	return 0;
}

static void
runs_usage(FILE *f)
{
	fprintf(f,
"usage: weft runs [--limit N] [--json] [--db PATH]\n"
"\n"
"List recent runs, newest first: id, status, start time, duration, steps,\n"
"tokens, cost and workflow.\n"
"\n"
"  --limit N   how many (default 20; 0 for all)\n"
"  --json      print a JSON array of run objects\n"
"  --db PATH   trajectory store (default $WEFT_DB or ./weft.db)\n");
}

int
cmd_runs(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "limit", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "db", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct runs_walk w;
	struct store *st;
	const char *db = NULL;
	char err[512], *text;
	int ch, limit = 20, rc = WEFT_EXIT_OK;

	memset(&w, 0, sizeof w);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "n:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			limit = atoi(optarg);
			break;
		case 'j':
			w.want_json = 1;
			break;
		case 'd':
			db = optarg;
			break;
		case 'h':
			runs_usage(stdout);
			return WEFT_EXIT_OK;
		default:
			runs_usage(stderr);
			return WEFT_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		runs_usage(stderr);
		return WEFT_EXIT_USAGE;
	}
	if (store_open_read(cmd_db_path(db), &st, err, sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		return WEFT_EXIT_FAILED;
	}
	w.list = json_array();
	if (!w.want_json)
		printf("%-16s  %-10s  %-19s  %9s  %6s  %8s  %-9s %s\n", "RUN",
		    "STATUS", "STARTED", "DURATION", "STEPS", "TOKENS", "COST",
		    "WORKFLOW");
	if (store_runs_list(st, limit, runs_cb, &w) != 0) {
		fprintf(stderr, "weft: %s\n", store_error(st));
		rc = WEFT_EXIT_FAILED;
	} else if (w.want_json) {
		text = json_dumps(w.list, JSON_INDENT(2));
		printf("%s\n", text);
		free(text);
	}
	json_decref(w.list);
	store_close(st);
	return rc;
}
