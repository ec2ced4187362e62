/*
 * cmd.h: the weft subcommands, one file each (tmux cmd-*.c style).
 * Each takes argc/argv after the command name (argv[0] is the command)
 * and returns the process exit status, one of enum weft_exit.  run,
 * resume and replay fill a struct exec_spec and leave the run to
 * engine/exec.h.
 */
#ifndef WEFT_CMD_H
#define WEFT_CMD_H

#include <stdio.h>

#include <jansson.h>

/*
 * The exit statuses of every weft command, defined here only.  They are
 * documented in README.md ("Exit status") and `weft run --help`; a
 * command's --help says which of them it can return.
 */
enum weft_exit {
	WEFT_EXIT_OK = 0,		/* succeeded (replay: identical) */
	WEFT_EXIT_FAILED = 1,		/* the run or lookup failed */
	WEFT_EXIT_USAGE = 2,		/* bad usage, input or workflow */
	WEFT_EXIT_BUDGET = 3,		/* a budget was exceeded */
	WEFT_EXIT_STORE = 4,		/* the store cannot be opened/written */
	WEFT_EXIT_PAUSED = 5,		/* paused at a budget limit */
	WEFT_EXIT_WAITING = 6,		/* waiting for an approval */
	WEFT_EXIT_CANCELLED = 130	/* cancelled (SIGINT, SIGTERM) */
};

int cmd_run(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_runs(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_graph(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_mcp(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_keys(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_approve(int argc, char **argv);
int cmd_reject(int argc, char **argv);
int cmd_view(int argc, char **argv);
int cmd_export(int argc, char **argv);

/*
 * Load the workflow file path in a scratch Lua state and return its
 * metadata {name?, description?, input_schema?} (a new object), or NULL
 * with "FILE:LINE: ..." in err (weft mcp and weft serve offer it as a
 * tool: serve_opts.load_meta).
 */
json_t *cmd_workflow_meta(const char *path, char *err, size_t errlen);

/* The database path: --db, else $WEFT_DB, else ./weft.db. */
const char *cmd_db_path(const char *opt);

/*
 * Parse --budget "usd=0.5,tokens=200000" into a new JSON object; NULL
 * with a message on stderr naming the bad part.
 */
json_t *cmd_parse_budget(const char *text);

struct serve_opts;
struct option;

/*
 * CLI helpers shared by `weft mcp` and `weft serve` (engine/cmd_mcp.c).
 * cmd_serve_opts parses the common options (--db, --run-workers,
 * --max-runs, -v, --help) and those in more (handled by more_cb, which
 * returns 0 if it took the option); returns the index of the first
 * workflow argument, -1 after --help, -2 on bad usage (message printed).
 */
/* The help lines of the options cmd_serve_opts parses. */
#define CMD_SERVE_OPTS_HELP \
"  --db PATH           trajectory store (default $WEFT_DB or ./weft.db)\n" \
"  --workers N         worker processes of the server's coordinator, kept\n" \
"                      warm between calls (default: the number of cores;\n" \
"                      --run-workers is the old name)\n" \
"  --max-runs N        runs at once (default 64)\n" \
"  --max-queued N      calls that wait for a run slot, in order, told so\n" \
"                      by a progress notification; more are refused\n" \
"                      (default 256)\n" \
"  -v, --verbose       log calls to stderr\n"
int cmd_serve_opts(int argc, char **argv, struct serve_opts *,
    const char *unused, const struct option *more,
    int (*more_cb)(int opt, const char *arg, void *cbarg), void *cbarg,
    void (*usage)(FILE *));
/*
 * The options of remote workers (engine/cmd_workers.c), shared by weft run
 * and weft serve: put CMD_REMOTE_LONGOPTS in the longopts table, hand
 * each option to cmd_remote_opt (1: taken into the coord_opts, 0: not
 * one of them, -1: bad value, message printed), then call
 * cmd_remote_check once (0, or -1 with a message: they go together).
 * cmd_remote_help is their --help text.
 */
struct coord_opts;
enum {
	CMD_OPT_LISTEN = 0x1100,
	CMD_OPT_TLS_CERT,
	CMD_OPT_TLS_KEY,
	CMD_OPT_REMOTE,
	CMD_OPT_ENROLL_DIR
};
#define CMD_REMOTE_LONGOPTS \
	{ "workers-listen", required_argument, NULL, CMD_OPT_LISTEN }, \
	{ "tls-cert", required_argument, NULL, CMD_OPT_TLS_CERT }, \
	{ "tls-key", required_argument, NULL, CMD_OPT_TLS_KEY }, \
	{ "remote-workers", required_argument, NULL, CMD_OPT_REMOTE }, \
	{ "enroll-dir", required_argument, NULL, CMD_OPT_ENROLL_DIR }
int cmd_remote_opt(int ch, const char *arg, struct coord_opts *);
int cmd_remote_check(const struct coord_opts *);
extern const char cmd_remote_help[];

/*
 * weft diff A B --json as a value (the viewer's /api/diff): the two runs
 * aligned, or NULL with a message in err (an unknown run, too large).
 */
struct store;
json_t *cmd_diff_json(struct store *, const char *a, const char *b,
    char *err, size_t errlen);

/* This binary's path (from /proc/self/exe), heap string, or NULL. */
char *cmd_self_exe(void);

#endif
