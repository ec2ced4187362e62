/*
 * httpd_routes.c: one HTTP listener, its routes, its Host, Origin and
 * bearer token checks (runtime/httpd_routes.h).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "runtime/util.h"
#include "runtime/httpd_routes.h"

#define ROUTES_MAX_HEADERS	(64 * 1024)	/* a request's headers */

#define ROUTES_MAX_HOSTS	16
#define ROUTES_MAX_TOKENS	1024

/* A bearer token: the secret, and who presents it. */
struct routes_tok {
	char			*secret;
	char			*name;
	struct httpd_client	 who;
};

struct routes_route {
	struct httpd_routes	*r;
	httpd_route_cb		 cb;
	void			*arg;
};

struct httpd_routes {
	struct evhttp		*http;
	struct httpd		*guard;
	struct httpd_routes_opts opts;
	struct routes_tok	**toks;		/* none: no token required */
	int			 ntoks;
	char			*hosts[ROUTES_MAX_HOSTS];
	int			 nhosts;
	char			*origins[ROUTES_MAX_HOSTS];
	int			 norigins;
	int			 check_host;
	struct routes_route	**routes;
	int			 nroutes;
};

void
httpd_reply_text(struct evhttp_request *req, int code, const char *reason,
    const char *ctype, const char *body)
{
	struct evbuffer *b = evbuffer_new();

	if (ctype != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Type", ctype);
	if (body != NULL)
		evbuffer_add(b, body, strlen(body));
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
}

static void
routes_refuse(struct httpd_routes *r, struct evhttp_request *req, int code,
    const char *reason, const char *msg)
{
	char *line;

	if (r->opts.refuse != NULL) {
		r->opts.refuse(req, code, reason, msg);
		return;
	}
	line = xasprintf("%s\n", msg);
	httpd_reply_text(req, code, reason, "text/plain", line);
	free(line);
}

char *
httpd_host_part(const char *s)
{
	const char *end;

	if (*s == '[') {
		if ((end = strchr(s, ']')) == NULL)
			return NULL;
		return xstrndup(s + 1, end - s - 1);
	}
	end = strchr(s, ':');
	return end ? xstrndup(s, end - s) : xstrdup(s);
}

int
httpd_is_loopback(const char *host)
{
	return strcmp(host, "localhost") == 0 ||
	    strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0;
}

static int
routes_host_allowed(struct httpd_routes *r, const char *host)
{
	char *h;
	int i, ok = 0;

	if (host == NULL || (h = httpd_host_part(host)) == NULL)
		return 0;
	for (i = 0; i < r->nhosts && !ok; i++)
		ok = strcasecmp(h, r->hosts[i]) == 0;
	free(h);
	return ok;
}

static int
routes_origin_allowed(struct httpd_routes *r, const char *origin)
{
	const char *p;
	char *auth, *slash;
	int i, ok;

	for (i = 0; i < r->norigins; i++)
		if (strcasecmp(origin, r->origins[i]) == 0)
			return 1;
	if ((p = strstr(origin, "://")) == NULL)
		return 0;
	auth = xstrdup(p + 3);
	if ((slash = strchr(auth, '/')) != NULL)
		*slash = '\0';
	ok = routes_host_allowed(r, auth);
	free(auth);
	return ok;
}

/* Is s the secret t (in time independent of where they differ)? */
static int
routes_secret_eq(const char *t, const char *s, size_t n)
{
	size_t i, m = strlen(t);
	unsigned char d = 0;

	for (i = 0; i < m; i++)
		d |= (unsigned char)t[i] ^ (unsigned char)(i < n ? s[i] : 0);
	return d == 0 && n == m;
}

/*
 * The token an Authorization header presents: 0 and *whop (NULL when the
 * listener wants none), or -1.  Every token is compared, match or not.
 */
static int
routes_auth(struct httpd_routes *r, const char *auth,
    const struct httpd_client **whop)
{
	const struct httpd_client *found = NULL;
	size_t n;
	int i;

	*whop = NULL;
	if (r->ntoks == 0)
		return 0;
	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
		return -1;
	auth += 7;
	n = strlen(auth);
	for (i = 0; i < r->ntoks; i++)
		if (routes_secret_eq(r->toks[i]->secret, auth, n))
			found = &r->toks[i]->who;
	*whop = found;
	return found != NULL ? 0 : -1;
}

/* Host, Origin, token: 0 if the request may go on, else refused. */
static int
routes_guard(struct httpd_routes *r, struct evhttp_request *req,
    const struct httpd_client **whop)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *origin = evhttp_find_header(h, "Origin");

	httpd_begin(r->guard, req);
	if (r->check_host && !routes_host_allowed(r,
	    evhttp_find_header(h, "Host"))) {
		routes_refuse(r, req, 403, "Forbidden",
		    "Host not allowed (weft serve --allow-host)");
		return -1;
	}
	if (origin != NULL && !routes_origin_allowed(r, origin)) {
		routes_refuse(r, req, 403, "Forbidden",
		    "Origin not allowed (weft serve --allow-origin)");
		return -1;
	}
	if (routes_auth(r, evhttp_find_header(h, "Authorization"), whop) !=
	    0) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "WWW-Authenticate", "Bearer realm=\"weft\"");
		routes_refuse(r, req, 401, "Unauthorized",
		    "a bearer token is required");
		return -1;
	}
	return 0;
}

/* A request for a route: checked, then its handler. */
static void
routes_route_cb(struct evhttp_request *req, void *arg)
{
	struct routes_route *rt = arg;
	const struct httpd_client *who;

	if (routes_guard(rt->r, req, &who) == 0)
		rt->cb(req, who, rt->arg);
}

/* A request for no route: checked, then 404. */
static void
routes_other_cb(struct evhttp_request *req, void *arg)
{
	struct httpd_routes *r = arg;
	const struct httpd_client *who;

	if (routes_guard(r, req, &who) == 0)
		httpd_reply_text(req, 404, "Not Found", "text/plain",
		    r->opts.not_found ? r->opts.not_found : "not found\n");
}

struct httpd_routes *
httpd_routes_new(struct event_base *base, const struct httpd_routes_opts *o)
{
	struct httpd_routes *r = xcalloc(1, sizeof *r);

	r->opts = *o;
	if ((r->http = evhttp_new(base)) == NULL)
		fatalx(1, "cannot make an HTTP server: out of memory");
	/*
	 * evhttp keeps a body of known length in the connection's input
	 * until all of it came: reading ahead less than a whole request
	 * would stall any body past the bound until --body-timeout.
	 */
	if (r->opts.lim.max_input < o->max_body + ROUTES_MAX_HEADERS)
		r->opts.lim.max_input = o->max_body + ROUTES_MAX_HEADERS;
	r->guard = httpd_new(base, r->http, &r->opts.lim);
	evhttp_set_max_body_size(r->http, o->max_body);
	evhttp_set_max_headers_size(r->http, ROUTES_MAX_HEADERS);
	evhttp_set_allowed_methods(r->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_DELETE | EVHTTP_REQ_PUT | EVHTTP_REQ_OPTIONS |
	    EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD);
	evhttp_set_gencb(r->http, routes_other_cb, r);
	return r;
}

void
httpd_routes_free(struct httpd_routes *r)
{
	int i;

	if (r == NULL)
		return;
	evhttp_free(r->http);
	httpd_free(r->guard);
	for (i = 0; i < r->ntoks; i++) {
		explicit_bzero(r->toks[i]->secret, strlen(r->toks[i]->secret));
		free(r->toks[i]->secret);
		free(r->toks[i]->name);
		free(r->toks[i]);
	}
	free(r->toks);
	for (i = 0; i < r->nhosts; i++)
		free(r->hosts[i]);
	for (i = 0; i < r->norigins; i++)
		free(r->origins[i]);
	for (i = 0; i < r->nroutes; i++)
		free(r->routes[i]);
	free(r->routes);
	free(r);
}

struct httpd *
httpd_routes_guard(struct httpd_routes *r)
{
	return r->guard;
}

void
httpd_routes_add(struct httpd_routes *r, const char *path, httpd_route_cb cb,
    void *arg)
{
	struct routes_route *rt = xcalloc(1, sizeof *rt);

	rt->r = r;
	rt->cb = cb;
	rt->arg = arg;
	r->routes = xrealloc(r->routes, (r->nroutes + 1) * sizeof *r->routes);
	r->routes[r->nroutes++] = rt;
	evhttp_set_cb(r->http, path, routes_route_cb, rt);
}

int
httpd_routes_ntokens(const struct httpd_routes *r)
{
	return r->ntoks;
}

void
httpd_routes_allow_host(struct httpd_routes *r, const char *host)
{
	if (r->nhosts < ROUTES_MAX_HOSTS)
		r->hosts[r->nhosts++] = xstrdup(host);
}

void
httpd_routes_allow_origin(struct httpd_routes *r, const char *origin)
{
	if (r->norigins < ROUTES_MAX_HOSTS)
		r->origins[r->norigins++] = xstrdup(origin);
}

int
httpd_routes_token(struct httpd_routes *r, const char *where,
    const char *secret, const char *role, const char *name, char *err,
    size_t errlen)
{
	struct routes_tok *t;
	char hex[65];
	const char *c;
	int i;

	if (strlen(secret) < 16)
		return errf(err, errlen, "%s: a bearer token must be at least "
		    "16 characters", where), -1;
	for (c = secret; *c != '\0'; c++)
		if (*c < 0x21 || *c > 0x7e)
			return errf(err, errlen, "%s: a bearer token is "
			    "printable ASCII without spaces", where), -1;
	if (strcmp(role, "client") != 0 && strcmp(role, "operator") != 0)
		return errf(err, errlen, "%s: role '%s': 'client' or "
		    "'operator'", where, role), -1;
	if (name != NULL && strlen(name) > 64)
		return errf(err, errlen, "%s: a name is at most 64 characters",
		    where), -1;
	for (i = 0; i < r->ntoks; i++)
		if (strcmp(r->toks[i]->secret, secret) == 0)
			return errf(err, errlen, "%s: the same token as an "
			    "earlier line", where), -1;
	if (r->ntoks >= ROUTES_MAX_TOKENS)
		return errf(err, errlen, "%s: more than %d tokens", where,
		    ROUTES_MAX_TOKENS), -1;
	t = xcalloc(1, sizeof *t);
	t->secret = xstrdup(secret);
	t->name = name != NULL ? xstrdup(name) : NULL;
	t->who.name = t->name;
	t->who.operator = strcmp(role, "operator") == 0;
	sha256_hex(secret, strlen(secret), hex);
	memcpy(t->who.id, hex, 16);
	r->toks = xrealloc(r->toks, (r->ntoks + 1) * sizeof *r->toks);
	r->toks[r->ntoks++] = t;
	return 0;
}

/* A token file: TOKEN [client|operator [NAME]] a line, # comments. */
static int
routes_parse_tokens(struct httpd_routes *r, const char *file, char *text,
    char *err, size_t errlen)
{
	char *line, *next, *f[4], *save, *w, where[PATH_MAX + 32];
	int lineno = 0, nf;

	for (line = text; line != NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		lineno++;
		line[strcspn(line, "\r")] = '\0';
		snprintf(where, sizeof where, "%s:%d", file, lineno);
		nf = 0;
		for (w = strtok_r(line, " \t", &save); w != NULL && nf < 4;
		    w = strtok_r(NULL, " \t", &save))
			f[nf++] = w;
		if (nf == 0 || f[0][0] == '#')
			continue;
		if (nf > 3)
			return errf(err, errlen, "%s: too many fields (TOKEN "
			    "[client|operator [NAME]])", where), -1;
		if (httpd_routes_token(r, where, f[0], nf > 1 ? f[1] :
		    "client", nf > 2 ? f[2] : NULL, err, errlen) != 0)
			return -1;
	}
	if (r->ntoks == 0)
		return errf(err, errlen, "--token-file '%s' holds no token",
		    file), -1;
	return 0;
}

/* Say so when a token file is open to group or others. */
static void
routes_check_mode(const char *file)
{
	struct stat sb;

	if (stat(file, &sb) != 0 || (sb.st_mode & 077) == 0)
		return;
	fprintf(stderr, "weft: warning: token file '%s' is %s by group or "
	    "others (mode %04o): anyone who can read it can call this "
	    "server; run: chmod 600 '%s'\n", file, sb.st_mode &
	    (S_IRGRP | S_IROTH) ? "readable" : "writable",
	    (unsigned)(sb.st_mode & 07777), file);
}

/*
 * Erase the variable env from this process.  unsetenv() only drops the
 * pointer: the bytes stay in the environment block the kernel set up,
 * which /proc/PID/environ shows to anyone who may read the process's
 * memory.  So the value is zeroed where it lies, then the variable goes.
 */
static void
routes_scrub_env(const char *env)
{
	extern char **environ;
	size_t n = strlen(env);
	char **e;

	for (e = environ; e != NULL && *e != NULL; e++)
		if (strncmp(*e, env, n) == 0 && (*e)[n] == '=')
			explicit_bzero(*e + n + 1, strlen(*e + n + 1));
	/* Children need not know the listener's secret. */
	unsetenv(env);
}

int
httpd_routes_tokens_load(struct httpd_routes *r, const char *file,
    const char *env, char *err, size_t errlen)
{
	const char *v = getenv(env);
	char *t, *copy = NULL, *where;
	int rv = 0;

	if (file == NULL && v != NULL && *v != '\0')
		copy = xstrdup(v);
	routes_scrub_env(env);
	if (file != NULL) {
		if ((t = read_file(file, NULL)) == NULL)
			return errf(err, errlen, "cannot read --token-file "
			    "'%s': %s", file, strerror(errno)), -1;
		routes_check_mode(file);
		rv = routes_parse_tokens(r, file, t, err, errlen);
		explicit_bzero(t, strlen(t));
		free(t);
	} else if (copy != NULL) {
		where = xasprintf("$%s", env);
		rv = httpd_routes_token(r, where, copy, "client", env, err,
		    errlen);
		free(where);
		explicit_bzero(copy, strlen(copy));
		free(copy);
	}
	return rv;
}

int
httpd_routes_bind(struct httpd_routes *r, const char *listen, char **hostp,
    int *portp, char *err, size_t errlen)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	const char *colon = strrchr(listen, ':');
	char *host;
	int port, allowed = r->nhosts;

	if (colon == NULL || (port = atoi(colon + 1)) < 0 || port > 65535)
		return errf(err, errlen, "--listen wants HOST:PORT"), -1;
	host = httpd_host_part(listen);
	if (host == NULL || *host == '\0') {
		free(host);
		return errf(err, errlen, "--listen wants HOST:PORT"), -1;
	}
	if ((bs = evhttp_bind_socket_with_handle(r->http, host, port)) ==
	    NULL) {
		errf(err, errlen, "cannot listen on %s: %s", listen,
		    strerror(errno));
		free(host);
		return -1;
	}
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss,
	    &sl);
	port = ntohs(ss.ss_family == AF_INET6 ?
	    ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port);
	httpd_watch(r->guard, bs);
	/* On loopback, only loopback names (DNS rebinding); elsewhere the
	   token guards, and Host is checked if allowed hosts were named. */
	r->check_host = httpd_is_loopback(host) || allowed > 0;
	if (httpd_is_loopback(host)) {
		httpd_routes_allow_host(r, "localhost");
		httpd_routes_allow_host(r, "127.0.0.1");
		httpd_routes_allow_host(r, "::1");
	}
	httpd_routes_allow_host(r, host);
	*hostp = host;
	*portp = port;
	return 0;
}
