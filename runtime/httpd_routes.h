/*
 * httpd_routes.h: one HTTP listener for every service of a process
 * (docs/mcp.md, "Limits" and "Authentication"): routes from a path to a
 * handler, on an evhttp server held to limits (runtime/httpd.h).
 *
 * Before any handler runs, each request is checked in this order: Host
 * (on a loopback listener only loopback names and --allow-host ones,
 * against DNS rebinding), Origin (when present: a host allowed above or an
 * allowed origin), bearer token (when any is configured; every token is
 * compared, in constant time).  A request that fails is refused through
 * the refuse callback (403, 401 with a Bearer challenge); one for no route
 * gets 404 with the not-found text.  Adding a service is one call to
 * httpd_routes_add().
 *
 * All on the loop thread of the listener's event base.
 */
#ifndef WEFT_HTTPD_ROUTES_H
#define WEFT_HTTPD_ROUTES_H

#include <stddef.h>

#include "runtime/httpd.h"

struct event_base;
struct evhttp_request;
struct httpd_routes;

/* Who presents a bearer token. */
struct httpd_client {
	char		 id[17];	/* sha256 prefix of the secret */
	const char	*name;		/* or NULL */
	int		 operator;	/* role operator, else client */
};

/* A route's handler; who is NULL when the listener wants no token. */
typedef void (*httpd_route_cb)(struct evhttp_request *,
    const struct httpd_client *who, void *arg);

struct httpd_routes_opts {
	struct httpd_limits	 lim;
	size_t			 max_body;	/* larger bodies get 413 */
	const char		*not_found;	/* 404 body, text/plain */
	/* Refuse a request (403, 401, ...) with message; NULL: text. */
	void			(*refuse)(struct evhttp_request *, int status,
				    const char *reason, const char *message);
};

/* A listener on base with no route yet; opts is copied. */
struct httpd_routes *httpd_routes_new(struct event_base *,
    const struct httpd_routes_opts *);
/* Close the listener, then free it (after its handlers' state is gone). */
void httpd_routes_free(struct httpd_routes *);
/* The guard of its connections (httpd_queued, httpd_drop). */
struct httpd *httpd_routes_guard(struct httpd_routes *);
/* Serve path (exactly, any method) with cb. */
void httpd_routes_add(struct httpd_routes *, const char *path,
    httpd_route_cb cb, void *arg);

/*
 * Accept a bearer token (copied; at least 16 printable characters, role
 * "client" or "operator", name of at most 64).  where names its origin in
 * err: "FILE:LINE".  Returns 0, or -1 with err.
 */
int httpd_routes_token(struct httpd_routes *, const char *where,
    const char *secret, const char *role, const char *name, char *err,
    size_t errlen);
/*
 * Load tokens from file (TOKEN [client|operator [NAME]] a line, #
 * comments; a warning on stderr when group or others may read it), else
 * one client token from the variable env.  env is erased from this process
 * either way (/proc/PID/environ included).  0, or -1 with err.
 */
int httpd_routes_tokens_load(struct httpd_routes *, const char *file,
    const char *env, char *err, size_t errlen);
/* Tokens accepted: 0 means the listener wants none. */
int httpd_routes_ntokens(const struct httpd_routes *);
/* Also accept this Host name, or this Origin. */
void httpd_routes_allow_host(struct httpd_routes *, const char *host);
void httpd_routes_allow_origin(struct httpd_routes *, const char *origin);
/*
 * Listen on "HOST:PORT" (port 0 picks one).  Sets *hostp (the host part,
 * the caller's to free) and *portp.  On a loopback host only loopback
 * names are accepted in Host; elsewhere Host is checked only if an allowed
 * host was given.  0, or -1 with err.
 */
int httpd_routes_bind(struct httpd_routes *, const char *listen,
    char **hostp, int *portp, char *err, size_t errlen);

/* The host part of "HOST:PORT" or "[V6]:PORT" (new), NULL if malformed. */
char *httpd_host_part(const char *);
/* Is host a loopback name or address? */
int httpd_is_loopback(const char *host);

/* Answer req with code and reason, a Content-Type (NULL: none) and body
   (NULL: empty). */
void httpd_reply_text(struct evhttp_request *, int code, const char *reason,
    const char *ctype, const char *body);

#endif
