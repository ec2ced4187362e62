/*
 * cmd_gc.c: `weft gc --older-than 30d | --keep 50`: delete old runs with
 * their events, tasks and the blobs no remaining run refers to.  A run
 * that has not finished (running, paused, waiting) is never deleted
 * (store_gc()).  The work goes in small transactions, so the runs going
 * on in the store go on.  --vacuum gives the space back; on a store from
 * before incremental vacuum that takes the whole store for a while, and
 * is refused while a run's coordinator is alive.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "engine/cmd.h"
#include "engine/replay.h"
#include "engine/store.h"
#include "runtime/proc.h"
#include "runtime/util.h"

struct gc_walk {
	int	 json, dry_run;
	json_t	*ids;
};

/* Parse "30d", "12h", "90m", "45s", "2w" into seconds; -1 if bad. */
static double
gc_duration(const char *s)
{
	static const struct {
		char	unit;
		double	secs;
	} units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
		{ 'w', 7 * 86400 },
	};
	char *end;
	double v;
	size_t i;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || !(v >= 0) || end[0] == '\0' ||
	    end[1] != '\0')
		return -1;
	for (i = 0; i < nitems(units); i++)
		if (*end == units[i].unit)
			return v * units[i].secs;
	return -1;
}

/* Note and print one deleted (or, dry, deletable) run. */
static int
gc_run_cb(void *arg, const struct store_run *r)
{
	struct gc_walk *w = arg;
	struct tm tm;
	time_t t = (time_t)r->started;
	char when[32];

	json_array_append_new(w->ids, json_string(r->id));
	if (w->json)
		return 0;
	localtime_r(&t, &tm);
	strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
	printf("%s run %s  %-10s  %s  %s\n", w->dry_run ? "would delete" :
	    "deleted", r->id, r->status != NULL ? r->status : "?", when,
	    r->workflow != NULL ? r->workflow : "");
	fflush(stdout);	/* progress, as runs go */
	return 0;
}

/* Whether the process pid with identity owner (proc_identity)
   still runs. */
static int
gc_alive(long pid, const char *owner)
{
	char now[128];

	if (pid <= 0 || owner == NULL ||
	    proc_identity(pid, now, sizeof now) != 0)
		return 0;
	return strcmp(now, owner) == 0;
}

struct gc_owner {
	long	 pid;
	char	*owner;
};

/* Note the coordinator a run.start or run.resume names (the last wins). */
static int
gc_owner_cb(void *arg, const struct store_event *ev)
{
	struct gc_owner *o = arg;
	json_t *p;

	if ((strcmp(ev->kind, "run.start") != 0 &&
	    strcmp(ev->kind, "run.resume") != 0) || ev->payload == NULL ||
	    (p = json_loads(ev->payload, 0, NULL)) == NULL)
		return 0;
	o->pid = (long)json_integer_value(json_object_get(p, "pid"));
	free(o->owner);
	o->owner = json_string_value(json_object_get(p, "owner")) != NULL ?
	    xstrdup(json_string_value(json_object_get(p, "owner"))) : NULL;
	json_decref(p);
	return 0;
}

struct gc_live {
	struct store	*st;
	json_t		*ids;
};

/* Collect a run whose coordinator is alive. */
static int
gc_live_cb(void *arg, const struct store_run *r)
{
	static const char *const ended[] = { "succeeded", "failed",
		"cancelled", "budget_exceeded" };
	struct gc_live *l = arg;
	struct gc_owner o = { 0, NULL };
	size_t i;

	for (i = 0; r->status != NULL && i < nitems(ended); i++)
		if (strcmp(r->status, ended[i]) == 0)
			return 0;
	if (store_events_foreach(l->st, r->id, gc_owner_cb, &o) == 0 &&
	    gc_alive(o.pid, o.owner))
		json_array_append_new(l->ids, json_string(r->id));
	free(o.owner);
	return 0;
}

/*
 * A full VACUUM holds the write lock until it is done: refuse it while a
 * run's coordinator is alive, naming the runs.  0 to go ahead.
 */
static int
gc_vacuum_check(struct store *st, const char *path)
{
	struct gc_live l = { st, json_array() };
	size_t i;
	int rc = 0;

	if (store_runs_list(st, 0, gc_live_cb, &l) != 0) {
		fprintf(stderr, "weft: gc: %s\n", store_error(st));
		rc = -1;
	} else if (json_array_size(l.ids) > 0) {
		fprintf(stderr, "weft: gc --vacuum: the store '%s' predates "
		    "incremental vacuum, so it must be rewritten whole, which "
		    "holds it for every other process until done; %zu run(s) "
		    "are going on in it:", path, json_array_size(l.ids));
		for (i = 0; i < json_array_size(l.ids); i++)
			fprintf(stderr, " %s", json_string_value(
			    json_array_get(l.ids, i)));
		fprintf(stderr, "\nweft: run `weft gc --vacuum` again when "
		    "they have ended (the runs were deleted; only the "
		    "vacuum was not done)\n");
		rc = -1;
	}
	json_decref(l.ids);
	return rc;
}

/* Print what was deleted, as text or JSON. */
static void
gc_report(const struct store_gc *g, struct gc_walk *w, int vacuum,
    const struct store_vacuum *v)
{
	json_t *doc;
	char *text;

	if (w->json) {
		doc = json_pack("{s:b, s:O, s:I, s:I, s:I, s:I, s:I}",
		    "dry_run", g->dry_run, "runs", w->ids, "events",
		    (json_int_t)g->events, "tasks", (json_int_t)g->tasks,
		    "blobs", (json_int_t)g->blobs, "blob_bytes",
		    (json_int_t)g->blob_bytes, "kept_live",
		    (json_int_t)g->kept_live);
		if (vacuum)
			json_object_set_new(doc, "vacuum", json_pack("{s:I, "
			    "s:I, s:{s:I, s:I}, s:{s:I, s:I}, s:b, s:b}",
			    "before", (json_int_t)(v->db_before +
			    v->wal_before), "after", (json_int_t)(v->db_after +
			    v->wal_after), "files_before", "db",
			    (json_int_t)v->db_before, "wal",
			    (json_int_t)v->wal_before, "files_after", "db",
			    (json_int_t)v->db_after, "wal",
			    (json_int_t)v->wal_after, "full", v->full,
			    "wal_busy", v->wal_busy));
		text = json_dumps(doc, JSON_INDENT(2));
		printf("%s\n", text);
		free(text);
		json_decref(doc);
		return;
	}
	printf("%s %lld runs, %lld events, %lld tasks, %lld blobs (%lld "
	    "bytes)\n", g->dry_run ? "would delete" : "deleted",
	    (long long)g->runs, (long long)g->events, (long long)g->tasks,
	    (long long)g->blobs, (long long)g->blob_bytes);
	if (g->kept_live > 0)
		printf("kept %lld selected run(s) that have not finished "
		    "(running, paused or waiting)\n", (long long)g->kept_live);
	if (!vacuum)
		return;
	printf("vacuum: database %lld -> %lld bytes\n",
	    (long long)(v->db_before + v->wal_before),
	    (long long)(v->db_after + v->wal_after));
	printf("vacuum: file %lld -> %lld bytes, WAL %lld -> %lld bytes%s\n",
	    (long long)v->db_before, (long long)v->db_after,
	    (long long)v->wal_before, (long long)v->wal_after,
	    v->full ? " (rewritten whole)" : "");
	if (v->wal_busy)
		printf("vacuum: other processes are reading the store, so its "
		    "WAL could not be truncated yet; the next checkpoint "
		    "does it\n");
}

static void
gc_usage(FILE *f)
{
	fprintf(f,
"usage: weft gc [--older-than AGE] [--keep N] [--dry-run] [--vacuum]\n"
"               [--json] [--db PATH]\n"
"\n"
"Delete old runs with their events and tasks, and the stored payloads\n"
"(blobs) that no remaining run refers to.  A run that has not finished\n"
"(running, paused, waiting) is never deleted, nor its parent or children.\n"
"Child runs go with their top-level run.\n"
"At least one of --older-than and --keep is required; given both, a run\n"
"is deleted only if both select it.\n"
"\n"
"  --older-than AGE  runs started more than AGE ago: N followed by s, m,\n"
"                    h, d or w (30d, 12h, 1.5w)\n"
"  --keep N          keep the N newest top-level runs\n"
"  --dry-run         print what would be deleted, delete nothing\n"
"  --vacuum          then give the space freed back to the file system\n"
"                    (a store made by an older weft is rewritten whole\n"
"                    once, refused while runs are going on in it)\n"
"  --json            print the report as one JSON object\n"
"  --db PATH         trajectory store (default $WEFT_DB or ./weft.db)\n"
"\n"
"Exit status: 0 done, 1 store error, 2 bad usage.\n");
}

/* Parse the options into g; 0, 1 for --help, -1 bad usage, -2 a bad
   value (already reported). */
static int
gc_getopt(int argc, char **argv, struct store_gc *g, struct gc_walk *w,
    int *vacuum, const char **db)
{
	static const struct option longopts[] = {
		{ "older-than", required_argument, NULL, 'o' },
		{ "keep", required_argument, NULL, 'k' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "vacuum", no_argument, NULL, 'v' },
		{ "json", no_argument, NULL, 'j' },
		{ "db", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	double age;
	char *end;
	long n;
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'o':
			if ((age = gc_duration(optarg)) < 0) {
				fprintf(stderr, "weft: --older-than '%s': "
				    "expected a number and a unit s, m, h, d "
				    "or w (e.g. 30d)\n", optarg);
				return -2;
			}
			g->before = now_wall() - age;
			break;
		case 'k':
			errno = 0;
			n = strtol(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    n < 0 || n > INT_MAX) {
				fprintf(stderr, "weft: --keep '%s': expected a "
				    "count from 0\n", optarg);
				return -2;
			}
			g->keep = (int)n;
			break;
		case 'n': g->dry_run = w->dry_run = 1; break;
		case 'v': *vacuum = 1; break;
		case 'j': w->json = 1; break;
		case 'd': *db = optarg; break;
		case 'h': return 1;
		default: return -1;
		}
	}
	if (optind != argc || (g->keep < 0 && g->before == 0)) {
		if (optind == argc)
			fprintf(stderr, "weft: gc needs --older-than or "
			    "--keep\n");
		return -1;
	}
	return 0;
}

int
cmd_gc(int argc, char **argv)
{
	struct store_gc g;
	struct store_vacuum v;
	struct gc_walk w;
	struct store *st;
	const char *db = NULL, *path;
	char err[512], owner[128];
	int rc, vacuum = 0;

	memset(&g, 0, sizeof g);
	memset(&v, 0, sizeof v);
	memset(&w, 0, sizeof w);
	g.keep = -1;
	if ((rc = gc_getopt(argc, argv, &g, &w, &vacuum, &db)) != 0) {
		if (rc != -2)
			gc_usage(rc > 0 ? stdout : stderr);
		return rc > 0 ? WEFT_EXIT_OK : WEFT_EXIT_USAGE;
	}
	path = cmd_db_path(db);
	if (store_open(path, &st, err, sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		return WEFT_EXIT_FAILED;
	}
	g.pid = (long)getpid();
	g.owner = proc_identity(0, owner, sizeof owner) == 0 ? owner :
	    NULL;
	g.alive = gc_alive;
	w.ids = json_array();
	rc = WEFT_EXIT_FAILED;
	if (store_gc(st, &g, gc_run_cb, &w) != 0) {
		fprintf(stderr, "weft: gc: %s\n", store_error(st));
		goto out;
	}
	if (vacuum && !g.dry_run) {
		if ((rc = store_vacuum_full(st)) != 0 && (rc < 0 ||
		    gc_vacuum_check(st, path) != 0)) {
			if (rc < 0)
				fprintf(stderr, "weft: gc: %s\n",
				    store_error(st));
			gc_report(&g, &w, 0, &v);
			rc = WEFT_EXIT_FAILED;
			goto out;
		}
		if (store_vacuum(st, &v) != 0) {
			fprintf(stderr, "weft: gc: %s\n", store_error(st));
			rc = WEFT_EXIT_FAILED;
			goto out;
		}
	}
	gc_report(&g, &w, vacuum && !g.dry_run, &v);
	rc = WEFT_EXIT_OK;
out:
	json_decref(w.ids);
	store_close(st);
	return rc;
}
