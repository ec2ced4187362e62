/*
 * cmd.h: the weft subcommands, one file each (tmux cmd-*.c style).
 * Each takes argc/argv after the command name (argv[0] is the command)
 * and returns the process exit code: 0 success, 1 the run or lookup
 * failed, 2 bad usage or input.
 */
#ifndef WEFT_CMD_H
#define WEFT_CMD_H

#include <jansson.h>

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

/* The exit status of a run that ended with status (weft run --help). */
int cmd_exit_status(const char *status);
/* Say on stderr that run id paused (why) and how to continue it. */
void cmd_paused_hint(const char *id, const char *why);

/*
 * Load the workflow file path in a scratch Lua state and return its
 * metadata {name?, description?, input_schema?} (a new object), or NULL
 * with "FILE:LINE: ..." in err (weft mcp and weft serve offer it as a
 * tool: mcps_opts.load_meta).
 */
json_t *cmd_workflow_meta(const char *path, char *err, size_t errlen);

/* The database path: --db, else $WEFT_DB, else ./weft.db. */
const char *cmd_db_path(const char *opt);

/*
 * Parse --budget "usd=0.5,tokens=200000" into a new JSON object; NULL
 * with a message on stderr naming the bad part.
 */
json_t *cmd_parse_budget(const char *text);
/* Add this coordinator's pid and identity (boot id and start time) to a
   run.start or run.resume payload: weft resume refuses a live owner. */
void cmd_run_owner(json_t *payload);
/*
 * The input as run.start records it: "input", or for an input whose JSON
 * text is over STORE_INPUT_INLINE_MAX bytes "input_blob", the hash of the
 * blob the run row keeps it in (store_run_create), so that it is stored
 * once.  Returns 1 for such a large input, else 0.
 */
int cmd_start_input(json_t *payload, json_t *input, const char *text);
/*
 * The final state as run.end records it ("state"): for a large input, the
 * keys that still hold the input's value are left out and listed in
 * "state_from_input" instead.
 */
void cmd_end_state(json_t *payload, json_t *state, json_t *input,
    int big_input);

#endif
