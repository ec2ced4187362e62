/*
 * cmd_cancel.c: `weft cancel RUN`, from another terminal.
 *
 * The run's coordinator is found through the store: the last run.start or
 * run.resume event names its pid and identity (boot id and start time:
 * exec_owner in engine/exec.c), so a pid reused by another process is
 * never signalled.
 * SIGTERM makes that coordinator end the run as `cancelled` exactly as
 * Ctrl-C does: in-flight tasks are recorded as cancelled, workers send
 * their MCP servers notifications/cancelled, model transfers are aborted,
 * and the run row is finished.  This command waits for that row.
 *
 * A served run (run.start says "served": begun by `weft serve` or `weft
 * mcp`) shares its coordinator with the server's other runs: signalling it
 * would stop them all.  When the run's coordinator is such a server, the
 * request is recorded in the store instead (engine/store_cancel.c); the
 * server reads it within its next poll of its runs and cancels that run
 * alone.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "engine/cmd.h"
#include "engine/replay.h"
#include "engine/store.h"
#include "runtime/proc.h"
#include "runtime/util.h"

/* What the store says of the run. */
struct cancel_target {
	char	 id[64];
	char	 status[32];
	long	 pid;		/* its last coordinator */
	char	 owner[128];	/* that coordinator's identity */
	int	 served;	/* run.start says a server began it */
};

static int
cancel_row_cb(void *arg, const struct store_run *sr)
{
	struct cancel_target *r = arg;

	snprintf(r->id, sizeof r->id, "%s", sr->id);
	snprintf(r->status, sizeof r->status, "%s", sr->status);
	return 0;
}

/* The coordinator named by the last run.start or run.resume event. */
static int
cancel_owner_cb(void *arg, const struct store_event *ev)
{
	struct cancel_target *r = arg;
	json_t *p;

	if ((strcmp(ev->kind, "run.start") != 0 &&
	    strcmp(ev->kind, "run.resume") != 0) || ev->payload == NULL ||
	    (p = json_loads(ev->payload, 0, NULL)) == NULL)
		return 0;
	if (strcmp(ev->kind, "run.start") == 0)
		r->served = json_is_true(json_object_get(p, "served"));
	r->pid = (long)json_integer_value(json_object_get(p, "pid"));
	snprintf(r->owner, sizeof r->owner, "%s", json_string_value(
	    json_object_get(p, "owner")) ? json_string_value(json_object_get(
	    p, "owner")) : "");
	json_decref(p);
	return 0;
}

/* Read the run's row (and, with owner, its coordinator); -1 printed. */
static int
cancel_find(struct store *st, const char *ref, struct cancel_target *r, int owner)
{
	r->status[0] = '\0';
	if (store_run_find(st, ref, cancel_row_cb, r) != 0) {
		fprintf(stderr, "weft: cancel: %s\n", store_error(st));
		return -1;
	}
	if (owner && store_events_foreach(st, r->id, cancel_owner_cb,
	    r) != 0) {
		fprintf(stderr, "weft: cancel: %s\n", store_error(st));
		return -1;
	}
	return 0;
}

/* Whether the recorded coordinator is this very process still. */
static int
cancel_owner_alive(const struct cancel_target *r)
{
	char now[128];

	if (r->pid <= 0 || r->owner[0] == '\0')
		return 0;
	if (proc_identity(r->pid, now, sizeof now) != 0)
		return 0;
	return strcmp(now, r->owner) == 0;
}

/* Whether process pid is a weft server (its command is serve or mcp):
   then it holds other runs too. */
static int
cancel_is_server(long pid)
{
	char path[64], buf[4096], *p, *end;
	FILE *f;
	size_t n;

	snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	end = buf + n;
	/* The first argument after the program that is not an option. */
	for (p = buf + strlen(buf) + 1; p < end; p += strlen(p) + 1)
		if (*p != '-')
			return strcmp(p, "serve") == 0 ||
			    strcmp(p, "mcp") == 0;
	return 0;
}

/* Wait up to secs for the run to leave `running`; 0 when it did. */
static int
cancel_wait(struct store *st, struct cancel_target *r, double secs)
{
	double until = now_mono() + secs;

	for (;;) {
		if (cancel_find(st, r->id, r, 0) != 0)
			return -1;
		if (strcmp(r->status, "running") != 0)
			return 0;
		if (now_mono() > until)
			return 1;
		usleep(50000);
	}
}

static void
cancel_usage(FILE *f)
{
	fprintf(f,
"usage: weft cancel RUN [--db PATH] [--wait SECONDS]\n"
"\n"
"Cancel a running run from another terminal, as Ctrl-C on its `weft run`\n"
"would: its coordinator (found through the store, by pid and process\n"
"identity) is sent SIGTERM; tool calls in flight are cancelled on their\n"
"MCP servers (notifications/cancelled), model calls in flight are aborted,\n"
"and the run ends `cancelled` with everything so far recorded.  It can be\n"
"resumed later with `weft resume RUN`.  RUN may be an id prefix.\n"
"A run served by `weft serve` or `weft mcp` is cancelled alone: the\n"
"request goes to its server through the store, and the server goes on\n"
"serving (its client gets the run's end as the call's answer).\n"
"\n"
"options:\n"
"  --db PATH           trajectory store (default $WEFT_DB or ./weft.db)\n"
"  --wait SECONDS      how long to wait for the run to end (default 30)\n"
"\n"
"exit status: 0 the run ended cancelled, 1 no such run, the run is not\n"
"running (finished, or its coordinator is gone), or it did not end in\n"
"time, 2 bad usage\n");
}

/* Ask the server holding served run r to cancel it, through the store,
   and wait for the run to end. */
static int
cancel_served(struct store *st, struct cancel_target *r, double wait)
{
	int rc;

	if (store_cancel_request(st, r->id, NULL) != 0) {
		fprintf(stderr, "weft: cancel: run %s: %s\n", r->id,
		    store_error(st));
		return WEFT_EXIT_FAILED;
	}
	rc = cancel_wait(st, r, wait);
	if (store_cancel_clear(st, r->id) != 0)
		fprintf(stderr, "weft: cancel: run %s: %s\n", r->id,
		    store_error(st));
	if (rc < 0)
		return WEFT_EXIT_FAILED;
	if (rc > 0) {
		fprintf(stderr, "weft: cancel: run %s was asked to stop (its "
		    "server, pid %ld, reads the request within a second) but "
		    "is still running after %gs\n", r->id, r->pid, wait);
		return WEFT_EXIT_FAILED;
	}
	printf("run %s %s\n", r->id, r->status);
	return strcmp(r->status, "cancelled") == 0 ? WEFT_EXIT_OK :
	    WEFT_EXIT_FAILED;
}

/* Signal the run's coordinator and wait for the run to end. */
static int
cancel_run(struct store *st, struct cancel_target *r, double wait)
{
	int rc;

	if (strcmp(r->status, "running") != 0) {
		fprintf(stderr, "weft: cancel: run %s is not running (status: "
		    "%s); nothing to cancel\n", r->id, r->status);
		return WEFT_EXIT_FAILED;
	}
	if (!cancel_owner_alive(r)) {
		fprintf(stderr, "weft: cancel: run %s is recorded as running "
		    "but its coordinator (pid %ld) is gone; `weft resume %s` "
		    "continues it\n", r->id, r->pid, r->id);
		return WEFT_EXIT_FAILED;
	}
	if (r->served && cancel_is_server(r->pid))
		return cancel_served(st, r, wait);
	if (kill((pid_t)r->pid, SIGTERM) == -1) {
		fprintf(stderr, "weft: cancel: cannot signal the coordinator "
		    "of run %s (pid %ld): %s\n", r->id, r->pid,
		    strerror(errno));
		return WEFT_EXIT_FAILED;
	}
	if ((rc = cancel_wait(st, r, wait)) < 0)
		return WEFT_EXIT_FAILED;
	if (rc > 0) {
		fprintf(stderr, "weft: cancel: run %s was asked to stop (pid "
		    "%ld) but is still running after %gs\n", r->id, r->pid,
		    wait);
		return WEFT_EXIT_FAILED;
	}
	printf("run %s %s\n", r->id, r->status);
	return strcmp(r->status, "cancelled") == 0 ? WEFT_EXIT_OK :
	    WEFT_EXIT_FAILED;
}

int
cmd_cancel(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "wait", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *db = NULL;
	struct store *st;
	struct cancel_target r;
	double wait = 30;
	char err[512], *end;
	int ch, rc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			db = optarg;
			break;
		case 'w':
			wait = strtod(optarg, &end);
			if (*optarg == '\0' || *end != '\0' || !(wait >= 0 &&
			    wait <= 86400)) {
				fprintf(stderr, "weft: cancel: --wait: not a "
				    "number of seconds from 0 to 86400: %s\n",
				    optarg);
				return WEFT_EXIT_USAGE;
			}
			break;
		case 'h':
			cancel_usage(stdout);
			return WEFT_EXIT_OK;
		default:
			cancel_usage(stderr);
			return WEFT_EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		cancel_usage(stderr);
		return WEFT_EXIT_USAGE;
	}
	if (store_open(cmd_db_path(db), &st, err, sizeof err) != 0) {
		fprintf(stderr, "weft: cancel: %s\n", err);
		return WEFT_EXIT_FAILED;
	}
	memset(&r, 0, sizeof r);
	rc = cancel_find(st, argv[optind], &r, 1) != 0 ? 1 :
	    cancel_run(st, &r, wait);
	store_close(st);
	return rc;
}
