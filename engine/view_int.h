/*
 * view_int.h: what the viewer's files share (engine/view*.c).
 */
#ifndef WEFT_VIEW_INT_H
#define WEFT_VIEW_INT_H

#include <jansson.h>

#include <stdint.h>

struct event_base;
struct evhttp_request;
struct httpd;
struct httpd_client;
struct httpd_routes;
struct store;
struct view_exec;
struct view_job;
struct view_live;

struct view {
	struct store		*st;
	struct event_base	*base;
	struct httpd		*guard;
	int			 operator_only;
	struct view_live	*live;
	char			*db;		/* the store's path */
	char			*golden;	/* --golden, or NULL */
	struct view_job		*jobs;		/* running */
};

/* Headers every answer carries (the CSP among them). */
void view_headers(struct evhttp_request *, const char *type);
/* Answer with a JSON value (taken). */
void view_json(struct evhttp_request *, int code, json_t *);
/* Answer {"error": msg} with code. */
void view_error(struct evhttp_request *, int code, const char *msg);
/* A GET from a token allowed to see every run: 0, else answered. */
int view_check(struct view *, struct evhttp_request *,
    const struct httpd_client *);
/* A query parameter copied into buf, or NULL when absent. */
const char *view_param(struct evhttp_request *, const char *name,
    char *buf, size_t len);
/* The run of ?id= as the API gives it, or NULL after a 4xx. */
json_t *view_find(struct view *, struct evhttp_request *);

/* Add /api/replay, /api/eval, /api/diff, /api/approvals (view_tools.c). */
void view_tools_add(struct view *, struct httpd_routes *);
/* Kill the commands running and answer their requests. */
void view_tools_free(struct view *);

/*
 * The end of a command: doc is the JSON object it printed on stdout
 * (borrowed), or NULL and err says why (its stderr, the time bound).
 */
typedef void (*view_exec_cb)(void *arg, json_t *doc, const char *err);

/*
 * Run argv (argv[0] a path) with no input, reading its stdout and stderr
 * on base; past timeout_s seconds it is killed.  cb is called once, from
 * the loop, unless the command is cancelled first.  NULL with err when it
 * cannot start.
 */
struct view_exec *view_exec_start(struct event_base *, char *const argv[],
    int timeout_s, view_exec_cb cb, void *arg, char *err, size_t errlen);
/* Kill the command and forget it (cb is not called). */
void view_exec_cancel(struct view_exec *);

#endif
