/*
 * mcp_server_int.h: what the MCP server core (mcp_server.c: sessions,
 * dispatch, tools, calls) and its catalog (mcp_server_catalog.c:
 * resources, prompts, completion) share.  Not a public surface: use
 * protocols/mcp_server.h.
 */
#ifndef WEFT_MCP_SERVER_INT_H
#define WEFT_MCP_SERVER_INT_H

#include <sys/queue.h>

#include "protocols/mcp_server.h"

struct mcps_tool {
	char		*name;
	json_t		*decl;		/* w.workflow fields */
};

struct mcps_call {
	TAILQ_ENTRY(mcps_call)	 entry;
	struct mcps		*srv;
	struct mcps_conn	*conn;		/* NULL once the session left */
	json_t			*req_id;
	json_t			*token;		/* progressToken or NULL */
	json_int_t		 progress;
	int			 cancelled;
};

/* A request of the server to a client, waiting for its answer. */
struct mcps_out {
	TAILQ_ENTRY(mcps_out)	 entry;
	json_t			*id;
	mcps_answer_cb		 cb;
	void			*arg;
};

struct mcps {
	const struct mcps_backend *be;
	void			*arg;
	struct mcps_tool	*tools;
	int			 ntools;
	TAILQ_HEAD(, mcps_call)	 calls;
	int			 ncalls;
	unsigned long long	 seq;		/* ids of requests to clients */
};

struct mcps_conn {
	struct mcps		*srv;
	mcps_send_cb		 send;
	void			*arg;
	int			 initialized;
	int			 log_level;	/* in mcps_levels, -1: none */
	int			 can_sample;	/* client capabilities */
	int			 can_elicit;
	json_t			*subs;		/* subscribed URIs */
	char			*owner;
	int			 operator;
	TAILQ_HEAD(, mcps_out)	 out;
};

/* Answer req_id with result or error (result stolen). */
void mcps_reply(struct mcps_conn *, const json_t *req_id, json_t *result);
void mcps_reply_error(struct mcps_conn *, const json_t *req_id, int code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Parse a pagination cursor; put items[off...] (stolen) in a page. */
int mcps_cursor(const json_t *params, size_t total, size_t *off);
json_t *mcps_page(json_t *items, size_t off, const char *key);

/* mcp_server_catalog.c: the methods on declared resources and prompts. */
void mcps_resources_list(struct mcps_conn *, const json_t *id,
    const json_t *params, int templates);
void mcps_resources_read(struct mcps_conn *, const json_t *id,
    const json_t *params);
void mcps_subscribe(struct mcps_conn *, const json_t *id,
    const json_t *params, int on);
void mcps_prompts_list(struct mcps_conn *, const json_t *id,
    const json_t *params);
void mcps_prompts_get(struct mcps_conn *, const json_t *id,
    const json_t *params);
void mcps_complete(struct mcps_conn *, const json_t *id,
    const json_t *params);

#endif
