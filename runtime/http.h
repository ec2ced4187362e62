/*
 * http.h: HTTP client requests on the coordinator's event loop.
 *
 * libcurl's multi interface driven by libevent: every transfer runs on
 * the loop thread, many at once, without threads or blocking.  Used by
 * the model gateway (engine/gateway.c) for LLM API calls.
 */
#ifndef WEFT_HTTP_H
#define WEFT_HTTP_H

#include <stddef.h>

struct event_base;
struct http;
struct http_req;

/* Transport outcomes (http_result.err); an HTTP status is not an error. */
#define HTTP_OK		0
#define HTTP_ECONNECT	-1	/* could not connect / resolve / TLS */
#define HTTP_ETIMEOUT	-2	/* the whole request took too long */
#define HTTP_ESTALL	-3	/* no byte for stall_ms */
#define HTTP_ERESET	-4	/* connection closed or reset mid-answer */
#define HTTP_ETOOBIG	-5	/* the answer exceeded max_response */
#define HTTP_EABORT	-6	/* on_data asked to stop */
#define HTTP_EOTHER	-7

struct http_result {
	int		 err;		/* HTTP_OK or HTTP_E* */
	long		 status;	/* 0 if no answer */
	const char	*body;		/* the body not given to on_data */
	size_t		 len;
	double		 seconds;	/* from start to end */
	char		 errmsg[256];	/* what went wrong, when err != 0 */
	const struct http_req *req;	/* for http_header() */
};

struct http_opts {
	const char	*method;	/* NULL: POST when body, else GET */
	const char	*url;
	const char *const *headers;	/* "Name: value", NULL-terminated */
	const char	*body;		/* copied */
	size_t		 bodylen;
	long		 connect_ms;	/* 0: 10 s */
	long		 total_ms;	/* 0: no limit */
	long		 stall_ms;	/* 0: no limit */
	size_t		 max_response;	/* 0: 64 MiB */
	/*
	 * Optional: the body of a 2xx answer, as it arrives.  Return 0 to
	 * go on, -1 to abort (the request then ends with HTTP_EABORT).
	 * Non-2xx bodies are never streamed: they end up in result.body.
	 */
	int		(*on_data)(void *arg, const char *p, size_t n);
	/* Called once, on the loop thread, unless the request is cancelled. */
	void		(*on_done)(void *arg, const struct http_result *);
	void		*arg;
};

/*
 * A client on base; NULL with a message in err if libcurl cannot be
 * loaded (it is loaded at the first call, not linked) or initialised.
 */
struct http	*http_new(struct event_base *base, char *err, size_t errlen);

/*
 * Free the client, cancelling every request in flight (their on_done is
 * not called).
 */
void		 http_free(struct http *);

/*
 * Start a request.  Returns the request, or NULL with err set when it
 * cannot be started (on_done is then not called).  The request is freed
 * after on_done returns, or by http_cancel().
 */
struct http_req	*http_start(struct http *, const struct http_opts *,
		    char *err, size_t errlen);

/* Abandon a request: on_done is not called.  Not from inside on_data. */
void		 http_cancel(struct http_req *);

/*
 * A response header's value (name case-insensitive; the last one wins),
 * or NULL.  Valid during on_data and on_done.
 */
const char	*http_header(const struct http_req *, const char *name);

/* Requests in flight. */
int		 http_inflight(const struct http *);

#endif
