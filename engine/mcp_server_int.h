/*
 * mcp_server_int.h: what engine/mcp_server.c (sessions, tools, resources,
 * prompts) and engine/mcp_runs.c (a tools/call as a child run) share.
 * Not a public surface: use engine/mcp_server.h.
 */
#ifndef WEFT_MCP_SERVER_INT_H
#define WEFT_MCP_SERVER_INT_H

#include <sys/types.h>
#include <sys/queue.h>

#include "engine/mcp_server.h"

struct store;

struct mcps_tool {
	char		*name;
	char		*path;		/* the workflow file */
	json_t		*meta;		/* luaeng_meta(): w.workflow fields */
	json_t		*checked_input;	/* input_schema weft validates, or NULL */
};

struct mcps_run;
TAILQ_HEAD(mcps_runs, mcps_run);
struct mcps_bq;
struct evhttp;
struct httpd;
struct sqlite3;
struct sqlite3_stmt;

struct mcps {
	struct event_base	*base;
	struct mcps_opts	 opts;
	char			*db;
	char			*exe;
	struct store		*st;
	struct mcps_tool	*tools;
	int			 ntools;
	struct mcps_runs	 runs;
	int			 nruns;
	struct event		*poll_ev;	/* reads events of live runs */
	struct event		*chld_ev;
	struct evhttp		*bridge;	/* mcp_bridge.c */
	struct httpd		*bridge_guard;
	int			 bridge_port;
	unsigned long long	 bridge_seq;
	TAILQ_HEAD(, mcps_bq)	 bridge_q;	/* requests to clients */
	struct sqlite3		*odb;		/* mcp_owners.c */
	struct sqlite3_stmt	*o_put, *o_get, *o_mine;
};

struct mcps_conn {
	struct mcps	*srv;
	mcps_send_cb	 send;
	void		*arg;
	int		 initialized;
	int		 log_level;	/* index in mcps_levels, -1: no logs */
	int		 can_sample;	/* client capabilities */
	int		 can_elicit;
	json_t		*subs;		/* subscribed URIs: { uri: true } */
	char		*owner;		/* recorded with its runs, or NULL */
	int		 operator;	/* sees every run */
};

extern const char *const mcps_levels[];

/* Answer req_id with result or error (both stolen). */
void mcps_reply(struct mcps_conn *, const json_t *req_id, json_t *result);
void mcps_reply_error(struct mcps_conn *, const json_t *req_id, int code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A tool result with one text block and isError (for refusals). */
json_t *mcps_tool_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* mcp_runs.c: start tools/call of tool with arguments (borrowed). */
void mcps_run_start(struct mcps_conn *, struct mcps_tool *,
    const json_t *req_id, json_t *args, json_t *progress_token);
/* notifications/cancelled for req_id of this session. */
void mcps_run_cancel(struct mcps_conn *, const json_t *req_id);
/* The session is going away: cancel its runs, forget it. */
void mcps_runs_detach(struct mcps *, struct mcps_conn *);
/* Start the SIGCHLD watch and the event poll timer. */
int mcps_runs_init(struct mcps *);
/* Kill and reap every run (server shutdown). */
void mcps_runs_free(struct mcps *);

/* The live run with this id, or NULL; its session (NULL once gone), the
   id of the tools/call it answers, and a check of its bridge secret. */
struct mcps_run *mcps_run_find(struct mcps *, const char *id);
struct mcps_conn *mcps_run_conn(struct mcps_run *);
const json_t *mcps_run_req_id(struct mcps_run *);
int mcps_run_secret_ok(struct mcps_run *, const char *secret);

/* mcp_bridge.c: the loopback tool server through which runs reach their
   client (sampling, elicitation).  init listens on 127.0.0.1:0. */
int mcps_bridge_init(struct mcps *);
void mcps_bridge_free(struct mcps *);
/* A response from the client: 1 if it answered a bridged request. */
int mcps_bridge_response(struct mcps_conn *, const struct jrpc_msg *);
/* Fail the bridged requests of a session (all with NULL). */
void mcps_bridge_detach(struct mcps *, struct mcps_conn *);

/* mcp_server.c: the trajectory of run id as JSON text, or NULL. */
char *mcps_run_trajectory(struct mcps *, const char *id);

/*
 * mcp_owners.c: who started each run (the table mcp_run_owners in the
 * store's file).  open prepares it at server start; put records owner as
 * the owner of run before the run starts (0, or -1 with a message);
 * visible says whether cn may see run id; mine calls cb for the newest
 * limit runs of owner found in the store.
 */
int mcps_owners_open(struct mcps *, char *err, size_t errlen);
void mcps_owners_close(struct mcps *);
int mcps_owner_put(struct mcps *, const char *run, const char *owner,
    char *err, size_t errlen);
int mcps_run_visible(struct mcps_conn *, const char *id);
struct store_run;
int mcps_owner_runs(struct mcps *, const char *owner, int limit,
    int (*cb)(void *, const struct store_run *), void *arg);

#endif
