/*
 * cmd_approve.c: `weft approve RUN [--answer JSON]` and `weft reject RUN
 * --reason TEXT`: answer the approval a run waits for (w.approval,
 * docs/workflows.md).
 *
 * The answer goes to the store's approvals table, checked against the
 * approval's schema first.  A run stopped as waiting takes it when it is
 * resumed (weft resume RUN); a run that waits in a live coordinator (weft
 * serve, which polls the table, or weft run asking on its terminal) goes
 * on by itself.  The run records the answer as approval.answer, so a
 * replay answers the approval the same way.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "engine/approval.h"
#include "engine/cmd.h"
#include "engine/store.h"
#include "runtime/util.h"

/* The run, and the approval to answer. */
struct target {
	char	 id[64];
	char	 status[32];
	const char *node;	/* --node, or NULL */
	int	 waiting;	/* approvals that wait */
	char	*list;		/* their paths, for a message */
	char	*path;		/* the one chosen */
	int	 call;
	char	*schema;
	char	*on_timeout;
	double	 deadline;
};

static int
approve_row_cb(void *arg, const struct store_run *sr)
{
	struct target *t = arg;

	snprintf(t->id, sizeof t->id, "%s", sr->id);
	snprintf(t->status, sizeof t->status, "%s", sr->status ? sr->status :
	    "");
	return 0;
}

static int
approve_list_cb(void *arg, const struct store_approval *a)
{
	struct target *t = arg;
	char *s;

	if (strcmp(a->status, "waiting") != 0)
		return 0;
	t->waiting++;
	s = xasprintf("%s\n  %s: %s", t->list ? t->list : "", a->path,
	    a->prompt ? a->prompt : "");
	free(t->list);
	t->list = s;
	if (t->path != NULL || (t->node != NULL && strcmp(t->node, a->path)
	    != 0))
		return 0;
	t->path = xstrdup(a->path);
	t->call = a->call;
	t->schema = a->schema ? xstrdup(a->schema) : NULL;
	t->on_timeout = xstrdup(a->on_timeout ? a->on_timeout : "reject");
	t->deadline = a->deadline;
	return 0;
}

static void
approve_usage(FILE *f, int reject)
{
	if (reject)
		fprintf(f,
"usage: weft reject RUN --reason TEXT [--node PATH] [--db PATH]\n"
"\n"
"Reject the approval (w.approval) run RUN waits for.  The approval node's\n"
"output is then { approved = false, reason = TEXT }, and the workflow goes\n"
"on from there.  A run that stopped waiting (weft run exit status 6)\n"
"continues with `weft resume RUN`; one waiting in `weft serve` or on a\n"
"terminal goes on by itself.  RUN may be an id prefix.\n");
	else
		fprintf(f,
"usage: weft approve RUN [--answer JSON] [--node PATH] [--db PATH]\n"
"\n"
"Approve the approval (w.approval) run RUN waits for.  An approval with a\n"
"schema needs --answer, a JSON value checked against it (a mismatch is\n"
"refused, naming the place in the answer as a JSON pointer); the node's\n"
"output is then { approved = true, answer = ... }.  A run that stopped\n"
"waiting (weft run exit status 6) continues with `weft resume RUN`; one\n"
"waiting in `weft serve` or on a terminal goes on by itself.  RUN may be\n"
"an id prefix.\n");
	fprintf(f,
"\n"
"options:\n"
"%s"
"  --node PATH         the approval's node path, when the run waits for\n"
"                      more than one\n"
"  --db PATH           trajectory store (default $WEFT_DB or ./weft.db)\n"
"\n"
"exit status: 0 answered, 1 no such run, nothing waiting, or the deadline\n"
"passed (on_timeout applies), 2 bad usage or an answer that does not match\n"
"the schema, 4 the store could not be opened or written\n",
	    reject ? "  --reason TEXT       why (required)\n" :
	    "  --answer JSON       the answer (required by a schema)\n");
}

static void
target_clear(struct target *t)
{
	free(t->list);
	free(t->path);
	free(t->schema);
	free(t->on_timeout);
}

/* Answer the chosen approval of t; the exit status. */
static int
approve_write(struct store *st, struct target *t, int reject,
    const char *answer, const char *reason)
{
	char err[1024], *text;
	json_t *v;
	int rv;

	if (t->deadline > 0 && now_wall() >= t->deadline) {
		fprintf(stderr, "weft: %s: the approval at '%s' of run %s is "
		    "past its deadline: on_timeout = \"%s\" applies when the "
		    "run goes on (weft resume %s)\n", reject ? "reject" :
		    "approve", t->path, t->id, t->on_timeout, t->id);
		return WEFT_EXIT_FAILED;
	}
	if ((v = approval_make_answer(t->schema, !reject, answer, reason,
	    reject ? "weft reject" : "weft approve", err, sizeof err)) ==
	    NULL) {
		fprintf(stderr, "weft: approve: run %s, approval at '%s': %s\n",
		    t->id, t->path, err);
		return WEFT_EXIT_USAGE;
	}
	text = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	rv = store_approval_answer(st, t->id, t->path, t->call, reject ?
	    "rejected" : "approved", text, now_wall());
	free(text);
	if (rv < 0) {
		fprintf(stderr, "weft: %s\n", store_error(st));
		return WEFT_EXIT_STORE;
	}
	if (rv == 0) {
		fprintf(stderr, "weft: the approval at '%s' of run %s was "
		    "answered meanwhile\n", t->path, t->id);
		return WEFT_EXIT_FAILED;
	}
	printf("run %s: approval at '%s' %s\n", t->id, t->path, reject ?
	    "rejected" : "approved");
	if (strcmp(t->status, "running") == 0)
		printf("a run waiting in a live coordinator (weft serve, a "
		    "terminal) goes on by itself; if its coordinator is "
		    "gone: weft resume %s\n", t->id);
	else
		printf("continue the run with: weft resume %s\n", t->id);
	return WEFT_EXIT_OK;
}

/* weft approve and weft reject. */
static int
approve_main(int argc, char **argv, int reject)
{
	static const struct option longopts[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "answer", required_argument, NULL, 'a' },
		{ "reason", required_argument, NULL, 'r' },
		{ "node", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *db = NULL, *answer = NULL, *reason = NULL, *cmd;
	struct target t;
	struct store *st;
	char err[512];
	int ch, rc;

	cmd = reject ? "reject" : "approve";
	memset(&t, 0, sizeof t);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			db = optarg;
			break;
		case 'a':
			answer = optarg;
			break;
		case 'r':
			reason = optarg;
			break;
		case 'n':
			t.node = optarg;
			break;
		case 'h':
			approve_usage(stdout, reject);
			return WEFT_EXIT_OK;
		default:
			approve_usage(stderr, reject);
			return WEFT_EXIT_USAGE;
		}
	}
	if (argc - optind != 1 || (reject && answer != NULL) ||
	    (!reject && reason != NULL)) {
		approve_usage(stderr, reject);
		return WEFT_EXIT_USAGE;
	}
	if (reject && (reason == NULL || *reason == '\0')) {
		fprintf(stderr, "weft: reject: --reason TEXT is required (it "
		    "is recorded, and the workflow sees it)\n");
		return WEFT_EXIT_USAGE;
	}
	if (store_open(cmd_db_path(db), &st, err, sizeof err) != 0) {
		fprintf(stderr, "weft: %s: %s\n", cmd, err);
		return WEFT_EXIT_STORE;
	}
	rc = WEFT_EXIT_FAILED;
	if (store_run_find(st, argv[optind], approve_row_cb, &t) != 0)
		fprintf(stderr, "weft: %s: %s\n", cmd, store_error(st));
	else if (store_approvals_list(st, t.id, approve_list_cb, &t) < 0)
		fprintf(stderr, "weft: %s: %s\n", cmd, store_error(st));
	else if (t.waiting == 0)
		fprintf(stderr, "weft: %s: run %s waits for no approval "
		    "(status: %s)\n", cmd, t.id, t.status);
	else if (t.path == NULL && t.node != NULL)
		fprintf(stderr, "weft: %s: run %s waits for no approval at "
		    "'%s'; it waits at:%s\n", cmd, t.id, t.node, t.list);
	else if (t.waiting > 1 && t.node == NULL) {
		fprintf(stderr, "weft: %s: run %s waits for %d approvals; "
		    "name one with --node PATH:%s\n", cmd, t.id, t.waiting,
		    t.list);
		rc = WEFT_EXIT_USAGE;
	} else
		rc = approve_write(st, &t, reject, answer, reason);
	target_clear(&t);
	store_close(st);
	return rc;
}

int
cmd_approve(int argc, char **argv)
{
	return approve_main(argc, argv, 0);
}

int
cmd_reject(int argc, char **argv)
{
	return approve_main(argc, argv, 1);
}
