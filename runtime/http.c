/*
 * http.c: libcurl multi on libevent.
 *
 * curl tells us which sockets to watch (http_sock_cb) and when to wake
 * (http_timer_cb); libevent tells curl when they are ready
 * (curl_multi_socket_action).  Finished transfers are collected after
 * every action and reported from the loop, never from inside a curl
 * callback, so on_done may start or cancel requests freely.
 */
#include "config.h"

#include <ctype.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

/* Calls go through the table below: no type-checking macros. */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <event2/event.h>

#include "runtime/util.h"
#include "runtime/http.h"

#define HTTP_MAX_HEADERS	64

struct http_req {
	struct http		*h;
	CURL			*easy;
	struct curl_slist	*hdrs;
	char			*reqbody;
	struct http_opts	 o;
	char			*body;		/* answer not streamed */
	size_t			 len, cap;
	size_t			 total;		/* bytes received */
	long			 status;	/* once known */
	int			 streaming;	/* 2xx with on_data */
	int			 aborted;
	int			 stalled;
	int			 toobig;
	char			*hnames[HTTP_MAX_HEADERS];
	char			*hvalues[HTTP_MAX_HEADERS];
	int			 nh;
	struct event		*stall_ev;
	double			 started;
	char			 curlerr[CURL_ERROR_SIZE];
	TAILQ_ENTRY(http_req)	 entry;
};

struct http_sock {
	struct event	*ev;
	curl_socket_t	 fd;
};

struct http {
	struct event_base	*base;
	CURLM			*multi;
	struct event		*timer;
	TAILQ_HEAD(, http_req)	 reqs;
	int			 n;
};

static void	http_collect(struct http *);

static int	http_global;

/*
 * libcurl is loaded when the first client is made, not linked: it brings
 * some thirty shared libraries (TLS, HTTP/2, SSH, LDAP, GSSAPI ...), and
 * every worker, which never makes an HTTP call, would map and relocate
 * them at start (about 5 MB of RSS each, and start-up time).
 */
static struct {
	CURLcode	(*global_init)(long);
	CURLM		*(*multi_init)(void);
	CURLMcode	(*multi_setopt)(CURLM *, CURLMoption, ...);
	CURLMcode	(*multi_assign)(CURLM *, curl_socket_t, void *);
	CURLMcode	(*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
	CURLMsg		*(*multi_info_read)(CURLM *, int *);
	CURLMcode	(*multi_add_handle)(CURLM *, CURL *);
	CURLMcode	(*multi_remove_handle)(CURLM *, CURL *);
	CURLMcode	(*multi_cleanup)(CURLM *);
	const char	*(*multi_strerror)(CURLMcode);
	CURL		*(*easy_init)(void);
	CURLcode	(*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode	(*easy_getinfo)(CURL *, CURLINFO, ...);
	void		(*easy_cleanup)(CURL *);
	const char	*(*easy_strerror)(CURLcode);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void		(*slist_free_all)(struct curl_slist *);
} cu;

#undef curl_multi_setopt
#undef curl_easy_setopt
#undef curl_easy_getinfo
#define curl_global_init	cu.global_init
#define curl_multi_init		cu.multi_init
#define curl_multi_setopt	cu.multi_setopt
#define curl_multi_assign	cu.multi_assign
#define curl_multi_socket_action cu.multi_socket_action
#define curl_multi_info_read	cu.multi_info_read
#define curl_multi_add_handle	cu.multi_add_handle
#define curl_multi_remove_handle cu.multi_remove_handle
#define curl_multi_cleanup	cu.multi_cleanup
#define curl_multi_strerror	cu.multi_strerror
#define curl_easy_init		cu.easy_init
#define curl_easy_setopt	cu.easy_setopt
#define curl_easy_getinfo	cu.easy_getinfo
#define curl_easy_cleanup	cu.easy_cleanup
#define curl_easy_strerror	cu.easy_strerror
#define curl_slist_append	cu.slist_append
#define curl_slist_free_all	cu.slist_free_all

/* Load libcurl once; 0, or -1 with a message in err. */
static int
http_load(char *err, size_t errlen)
{
	static const char *const names[] = {
	    "curl_global_init", "curl_multi_init", "curl_multi_setopt",
	    "curl_multi_assign", "curl_multi_socket_action",
	    "curl_multi_info_read", "curl_multi_add_handle",
	    "curl_multi_remove_handle", "curl_multi_cleanup",
	    "curl_multi_strerror", "curl_easy_init", "curl_easy_setopt",
	    "curl_easy_getinfo", "curl_easy_cleanup", "curl_easy_strerror",
	    "curl_slist_append", "curl_slist_free_all", NULL };
	static void *lib;
	void **slot = (void **)&cu;
	const char *e;
	size_t i;

	if (lib != NULL)
		return 0;
	if ((lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL)) == NULL) {
		e = dlerror();
		snprintf(err, errlen, "cannot load libcurl (Debian package "
		    "libcurl4): %s", e != NULL ? e : "?");
		return -1;
	}
	for (i = 0; names[i] != NULL; i++) {
		if ((slot[i] = dlsym(lib, names[i])) == NULL) {
			snprintf(err, errlen, "libcurl.so.4 has no %s",
			    names[i]);
			dlclose(lib);
			lib = NULL;
			return -1;
		}
	}
	return 0;
}

static void
http_stall_arm(struct http_req *r)
{
	struct timeval tv;

	if (r->stall_ev == NULL)
		return;
	tv.tv_sec = r->o.stall_ms / 1000;
	tv.tv_usec = (r->o.stall_ms % 1000) * 1000;
	evtimer_add(r->stall_ev, &tv);
}

/* libevent: a socket curl watches is ready. */
static void
http_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http *h = arg;
	int action = 0, running;

	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	curl_multi_socket_action(h->multi, fd, action, &running);
	http_collect(h);
}

/* libevent: curl's timeout expired. */
static void
http_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http *h = arg;
	int running;

	(void)fd;
	(void)what;
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	http_collect(h);
}

/* curl: watch (or stop watching) a socket. */
static int
http_sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
    void *sockp)
{
	struct http *h = userp;
	struct http_sock *s = sockp;
	short kind;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			event_free(s->ev);
			free(s);
			curl_multi_assign(h->multi, fd, NULL);
		}
		return 0;
	}
	kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
	    ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
	if (s == NULL) {
		s = xcalloc(1, sizeof *s);
		s->fd = fd;
		curl_multi_assign(h->multi, fd, s);
	} else {
		event_del(s->ev);
		event_free(s->ev);
	}
	s->ev = event_new(h->base, fd, kind, http_event_cb, h);
	event_add(s->ev, NULL);
	return 0;
}

/* curl: wake in timeout_ms (-1: no timer). */
static int
http_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct http *h = userp;
	struct timeval tv;

	(void)multi;
	if (timeout_ms < 0) {
		evtimer_del(h->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(h->timer, &tv);
	return 0;
}

/* libevent: no byte arrived for stall_ms. */
static void
http_stall_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_req *r = arg;
	struct http *h = r->h;
	struct http_result res;

	(void)fd;
	(void)what;
	r->stalled = 1;
	memset(&res, 0, sizeof res);
	res.err = HTTP_ESTALL;
	res.status = r->status;
	res.body = r->body;
	res.len = r->len;
	res.seconds = now_mono() - r->started;
	res.req = r;
	snprintf(res.errmsg, sizeof res.errmsg,
	    "no data for %ld ms (stalled)", r->o.stall_ms);
	curl_multi_remove_handle(h->multi, r->easy);
	if (r->o.on_done != NULL)
		r->o.on_done(r->o.arg, &res);
	http_cancel(r);
}

static size_t
http_header_cb(char *p, size_t size, size_t n, void *arg)
{
	struct http_req *r = arg;
	size_t len = size * n, k, e;
	char *name, *colon;
	int i;

	r->total += len;
	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		/* A new response (after 100 Continue, say): forget the last. */
		for (i = 0; i < r->nh; i++) {
			free(r->hnames[i]);
			free(r->hvalues[i]);
		}
		r->nh = 0;
		return len;
	}
	if ((colon = memchr(p, ':', len)) == NULL || r->nh == HTTP_MAX_HEADERS)
		return len;
	k = colon - p;
	name = xmalloc(k + 1);
	for (e = 0; e < k; e++)
		name[e] = tolower((unsigned char)p[e]);
	name[k] = '\0';
	k++;
	while (k < len && (p[k] == ' ' || p[k] == '\t'))
		k++;
	e = len;
	while (e > k && (p[e - 1] == '\r' || p[e - 1] == '\n' ||
	    p[e - 1] == ' '))
		e--;
	r->hnames[r->nh] = name;
	r->hvalues[r->nh] = xstrndup(p + k, e - k);
	r->nh++;
	return len;
}

static size_t
http_write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct http_req *r = arg;
	size_t len = size * n;

	http_stall_arm(r);
	if (r->status == 0) {
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
		r->streaming = r->o.on_data != NULL && r->status >= 200 &&
		    r->status < 300;
	}
	r->total += len;
	if (r->total > r->o.max_response) {
		r->toobig = 1;
		return 0;
	}
	if (r->streaming) {
		if (r->o.on_data(r->o.arg, p, len) != 0) {
			r->aborted = 1;
			return 0;
		}
		return len;
	}
	if (r->len + len + 1 > r->cap) {
		r->cap = (r->len + len + 1) * 2;
		r->body = xrealloc(r->body, r->cap);
	}
	memcpy(r->body + r->len, p, len);
	r->len += len;
	r->body[r->len] = '\0';
	return len;
}

/* Report the transfers curl finished. */
static void
http_collect(struct http *h)
{
	struct http_result res;
	struct http_req *r;
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		curl_multi_remove_handle(h->multi, r->easy);
		memset(&res, 0, sizeof res);
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
		res.body = r->body != NULL ? r->body : "";
		res.len = r->len;
		res.seconds = now_mono() - r->started;
		res.req = r;
		switch (m->data.result) {
		case CURLE_OK:
			break;
		case CURLE_WRITE_ERROR:
			if (r->toobig) {
				res.err = HTTP_ETOOBIG;
				snprintf(res.errmsg, sizeof res.errmsg,
				    "the answer exceeds %zu bytes",
				    r->o.max_response);
			} else {
				res.err = HTTP_EABORT;
				snprintf(res.errmsg, sizeof res.errmsg,
				    "stopped reading the answer");
			}
			break;
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_RESOLVE_PROXY:
		case CURLE_COULDNT_CONNECT:
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_PEER_FAILED_VERIFICATION:
			res.err = HTTP_ECONNECT;
			break;
		case CURLE_OPERATION_TIMEDOUT:
			res.err = HTTP_ETIMEOUT;
			break;
		case CURLE_PARTIAL_FILE:
		case CURLE_RECV_ERROR:
		case CURLE_SEND_ERROR:
		case CURLE_GOT_NOTHING:
			res.err = HTTP_ERESET;
			break;
		default:
			res.err = HTTP_EOTHER;
			break;
		}
		if (res.err != HTTP_OK && res.errmsg[0] == '\0')
			snprintf(res.errmsg, sizeof res.errmsg, "%s",
			    r->curlerr[0] != '\0' ? r->curlerr :
			    curl_easy_strerror(m->data.result));
		if (r->o.on_done != NULL)
			r->o.on_done(r->o.arg, &res);
		http_cancel(r);
	}
}

struct http *
http_new(struct event_base *base, char *err, size_t errlen)
{
	struct http *h;

	if (http_load(err, errlen) != 0)
		return NULL;
	if (!http_global) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
			snprintf(err, errlen, "cannot initialise libcurl");
			return NULL;
		}
		http_global = 1;
	}
	h = xcalloc(1, sizeof *h);
	h->base = base;
	if ((h->multi = curl_multi_init()) == NULL) {
		snprintf(err, errlen, "cannot initialise libcurl");
		free(h);
		return NULL;
	}
	TAILQ_INIT(&h->reqs);
	h->timer = evtimer_new(base, http_timeout_cb, h);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, http_sock_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, http_timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	return h;
}

void
http_free(struct http *h)
{
	struct http_req *r;

	if (h == NULL)
		return;
	while ((r = TAILQ_FIRST(&h->reqs)) != NULL)
		http_cancel(r);
	curl_multi_cleanup(h->multi);
	event_free(h->timer);
	free(h);
}

struct http_req *
http_start(struct http *h, const struct http_opts *o, char *err,
    size_t errlen)
{
	struct http_req *r;
	const char *const *hp;
	CURLMcode mc;

	r = xcalloc(1, sizeof *r);
	r->h = h;
	r->o = *o;
	if (r->o.max_response == 0)
		r->o.max_response = 64u << 20;
	if ((r->easy = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "cannot create an HTTP request");
		free(r);
		return NULL;
	}
	curl_easy_setopt(r->easy, CURLOPT_URL, o->url);
	curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
	curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->curlerr);
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, http_write_cb);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, http_header_cb);
	curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS,
	    o->connect_ms > 0 ? o->connect_ms : 10000L);
	if (o->total_ms > 0)
		curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, o->total_ms);
	curl_easy_setopt(r->easy, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(r->easy, CURLOPT_USERAGENT, "weft/" PACKAGE_VERSION);
	for (hp = o->headers; hp != NULL && *hp != NULL; hp++)
		r->hdrs = curl_slist_append(r->hdrs, *hp);
	/* No "Expect: 100-continue" round trip on large bodies. */
	r->hdrs = curl_slist_append(r->hdrs, "Expect:");
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->hdrs);
	if (o->body != NULL) {
		r->reqbody = xmalloc(o->bodylen + 1);
		memcpy(r->reqbody, o->body, o->bodylen);
		r->reqbody[o->bodylen] = '\0';
		curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)o->bodylen);
		curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->reqbody);
	}
	if (o->method != NULL)
		curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, o->method);
	if (o->stall_ms > 0) {
		r->stall_ev = evtimer_new(h->base, http_stall_cb, r);
		http_stall_arm(r);
	}
	r->started = now_mono();
	TAILQ_INSERT_TAIL(&h->reqs, r, entry);
	h->n++;
	if ((mc = curl_multi_add_handle(h->multi, r->easy)) != CURLM_OK) {
		snprintf(err, errlen, "cannot start an HTTP request: %s",
		    curl_multi_strerror(mc));
		TAILQ_REMOVE(&h->reqs, r, entry);
		h->n--;
		r->h = NULL;
		http_cancel(r);
		return NULL;
	}
	return r;
}

void
http_cancel(struct http_req *r)
{
	int i;

	if (r->h != NULL) {
		curl_multi_remove_handle(r->h->multi, r->easy);
		TAILQ_REMOVE(&r->h->reqs, r, entry);
		r->h->n--;
	}
	if (r->stall_ev != NULL)
		event_free(r->stall_ev);
	curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->hdrs);
	for (i = 0; i < r->nh; i++) {
		free(r->hnames[i]);
		free(r->hvalues[i]);
	}
	free(r->reqbody);
	free(r->body);
	free(r);
}

const char *
http_header(const struct http_req *r, const char *name)
{
	int i;

	for (i = r->nh - 1; i >= 0; i--)
		if (strcasecmp(r->hnames[i], name) == 0)
			return r->hvalues[i];
	return NULL;
}

int
http_inflight(const struct http *h)
{
	return h->n;
}
