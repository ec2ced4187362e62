/*
 * progress.c: weft run's progress display on stderr (progress.h).
 *
 * It sees only what has committed to the store (weft run's watcher hands
 * it each new event), so what it shows is what weft show would show: nodes
 * running and done, tool calls in flight, tokens, cost, elapsed time.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <jansson.h>

#include "engine/progress.h"
#include "engine/store.h"
#include "runtime/util.h"

struct progress {
	FILE		*f;
	int		 mode;
	char		 id[17];
	double		 t0;		/* the run's start, wall clock */
	int		 started;
	int		 drawn;		/* a status line is on the terminal */
	int		 running, done, failed;
	json_t		*tools;		/* task -> "node: tool" in flight */
	char		 last[160];	/* what happened last */
	long long	 tokens;
	double		 cost;
};

int
progress_mode(const char *name)
{
	static const char *const names[] = { "none", "auto", "live",
	    "plain", "brief", NULL };
	int i;

	for (i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

struct progress *
progress_new(int mode, FILE *f)
{
	struct progress *p = xcalloc(1, sizeof *p);

	if (mode == PROGRESS_AUTO)
		mode = isatty(fileno(f)) ? PROGRESS_LIVE : PROGRESS_BRIEF;
	p->mode = mode;
	p->f = f;
	p->tools = json_object();
	return p;
}

void
progress_free(struct progress *p)
{
	if (p == NULL)
		return;
	json_decref(p->tools);
	free(p);
}

void
progress_start(struct progress *p, const struct store_run *r)
{
	snprintf(p->id, sizeof p->id, "%s", r->id);
	p->t0 = r->started;
	p->started = 1;
	if (p->mode == PROGRESS_NONE)
		return;
	fprintf(p->f, "weft: run %s started (weft cancel %s stops it; weft "
	    "view %s shows it)\n", r->id, r->id, r->id);
	fflush(p->f);
}

static const char *
jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* The node's name: the last part of its path. */
static const char *
progress_node(const struct store_event *ev)
{
	const char *s = strrchr(ev->node_path, '/');

	if (*ev->node_path == '\0')
		return "run";
	return s != NULL ? s + 1 : ev->node_path;
}

/* Say what happened, as a person would (plain: a line; live: kept). */
static void __attribute__((format(printf, 3, 4)))
progress_say(struct progress *p, const struct store_event *ev,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->last, sizeof p->last, fmt, ap);
	va_end(ap);
	if (p->mode == PROGRESS_PLAIN) {
		fprintf(p->f, "weft: %+8.3fs %s\n", ev->time - p->t0, p->last);
		fflush(p->f);
	}
}

void
progress_event(struct progress *p, const struct store_event *ev)
{
	json_t *pl = NULL, *v;
	json_error_t je;
	const char *nd = progress_node(ev), *nm;
	char key[32];

	if (strncmp(ev->kind, "model.", 6) == 0) {
		p->tokens += ev->tokens;
		p->cost += ev->cost;
	}
	if (ev->payload != NULL)
		pl = json_loads(ev->payload, JSON_DECODE_ANY, &je);
	snprintf(key, sizeof key, "%lld",
	    (long long)json_integer_value(json_object_get(pl, "task")));
	if (strcmp(ev->kind, "node.start") == 0) {
		p->running++;
		progress_say(p, ev, "%s: started (%s)", nd,
		    jstr(pl, "kind") ? jstr(pl, "kind") : "node");
	} else if (strcmp(ev->kind, "node.end") == 0) {
		p->running--;
		p->done++;
		nm = jstr(pl, "status") ? jstr(pl, "status") : "ended";
		if (strcmp(nm, "succeeded") != 0)
			p->failed++;
		if (jstr(pl, "error") != NULL)
			progress_say(p, ev, "%s: %s: %s", nd, nm,
			    jstr(pl, "error"));
		else
			progress_say(p, ev, "%s: %s", nd, nm);
	} else if (strcmp(ev->kind, "model.call") == 0 &&
	    json_object_get(pl, "response") != NULL) {
		v = json_object_get(pl, "usage");
		progress_say(p, ev, "%s: %s answered (%lld tokens)", nd,
		    jstr(pl, "model") ? jstr(pl, "model") : "the model",
		    (long long)ev->tokens);
	} else if (strcmp(ev->kind, "tool.call") == 0) {
		nm = jstr(pl, "name") ? jstr(pl, "name") : "a tool";
		json_object_set_new(p->tools, key, json_sprintf("%s: %s", nd,
		    nm));
		progress_say(p, ev, "%s: calling %s", nd, nm);
	} else if (strcmp(ev->kind, "tool.progress") == 0) {
		if ((v = json_object_get(p->tools, key)) != NULL &&
		    jstr(pl, "message") != NULL)
			progress_say(p, ev, "%s: %s", json_string_value(v),
			    jstr(pl, "message"));
	} else if (strcmp(ev->kind, "tool.result") == 0 ||
	    strcmp(ev->kind, "tool.error") == 0) {
		if ((v = json_object_get(p->tools, key)) != NULL) {
			if (strcmp(ev->kind, "tool.error") == 0 ||
			    json_is_true(json_object_get(json_object_get(pl,
			    "result"), "isError")))
				progress_say(p, ev, "%s failed",
				    json_string_value(v));
			else
				progress_say(p, ev, "%s done",
				    json_string_value(v));
			json_object_del(p->tools, key);
		}
	} else if (strcmp(ev->kind, "run.end") == 0)
		progress_say(p, ev, "run %s", jstr(pl, "status") ?
		    jstr(pl, "status") : "ended");
	json_decref(pl);
}

void
progress_clear(struct progress *p)
{
	if (p->drawn) {
		fputs("\r\033[K", p->f);
		fflush(p->f);
		p->drawn = 0;
	}
}

void
progress_tick(struct progress *p)
{
	struct winsize ws;
	char line[512];
	size_t cols = 80, n;
	const char *first = NULL;
	void *it;

	if (p->mode != PROGRESS_LIVE || !p->started)
		return;
	if (ioctl(fileno(p->f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10)
		cols = ws.ws_col;
	if ((it = json_object_iter(p->tools)) != NULL)
		first = json_string_value(json_object_iter_value(it));
	n = snprintf(line, sizeof line, "weft: %s %.1fs | nodes %d running, "
	    "%d done%s | tools %zu in flight%s%s | %lld tokens | $%.4f%s%s",
	    p->id, now_wall() - p->t0, p->running, p->done, p->failed ?
	    " (some failed)" : "", json_object_size(p->tools), first ?
	    ": " : "", first ? first : "", p->tokens, p->cost,
	    *p->last ? " | " : "", p->last);
	if (n >= sizeof line)
		n = sizeof line - 1;
	if (n > cols - 1)
		line[cols - 1] = '\0';
	fprintf(p->f, "\r%s\033[K", line);
	fflush(p->f);
	p->drawn = 1;
}

void
progress_end(struct progress *p, const struct store_run *r)
{
	if (p->mode == PROGRESS_NONE || !p->started)
		return;
	progress_clear(p);
	fprintf(p->f, "weft: run %s %s in %.3fs: %lld steps, %lld tokens, "
	    "$%.4f\n", r->id, r->status, (r->ended > 0 ? r->ended :
	    now_wall()) - r->started, (long long)r->steps,
	    (long long)r->tokens, r->cost);
	fflush(p->f);
}
