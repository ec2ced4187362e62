/*
 * gateway_http.c: one attempt of a model call on the wire: the request
 * built by the provider's codec with its URL and headers (the API key
 * only here), the answer streamed or whole, and what went wrong
 * classified for gw_failed() (engine/gateway.c) to retry, fall back or
 * give up.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "engine/gateway.h"
#include "engine/gateway_int.h"
#include "runtime/util.h"
#include "protocols/llm.h"
#include "runtime/http.h"

/* Parse OpenAI's "1s", "6m0s", "250ms" reset durations. */
static long
gw_duration_ms(const char *s)
{
	double total = 0, v;
	char *end;

	if (s == NULL || *s == '\0')
		return -1;
	while (*s != '\0') {
		errno = 0;
		v = strtod(s, &end);
		if (end == s || errno != 0)
			return -1;
		if (strncmp(end, "ms", 2) == 0) {
			total += v;
			end += 2;
		} else if (*end == 's') {
			total += v * 1000;
			end++;
		} else if (*end == 'm') {
			total += v * 60000;
			end++;
		} else if (*end == 'h') {
			total += v * 3600000;
			end++;
		} else if (*end == '\0') {
			total += v * 1000;
		} else
			return -1;
		s = end;
	}
	if (!(total >= 0 && total <= (double)GW_MAX_RETRY_AFTER_MS * 1000))
		return -1;
	return (long)total;
}

/* Body bytes of a streamed answer: kept for the record, fed to the
   stream decoder once the content type says it is an event stream. */
static int
gw_data_cb(void *arg, const char *p, size_t n)
{
	struct gw_call *k = arg;
	const char *ct;
	char err[256];

	if (k->rawlen + n + 1 > k->rawcap) {
		k->rawcap = (k->rawlen + n + 1) * 2;
		k->raw = xrealloc(k->raw, k->rawcap);
	}
	memcpy(k->raw + k->rawlen, p, n);
	k->rawlen += n;
	k->raw[k->rawlen] = '\0';
	if (k->sse < 0) {
		ct = http_header(k->hr, "content-type");
		k->sse = ct != NULL && strncasecmp(ct, "text/event-stream",
		    17) == 0;
	}
	if (!k->sse)
		return 0;	/* a plain JSON answer: parsed at the end */
	if (llm_stream_feed(k->st, p, n, err, sizeof err) != 0)
		return -1;	/* the error is read back in gw_done_cb */
	return 0;
}

/* The transfer ended: classify a failure, or decode and deliver. */
static void
gw_done_cb(void *arg, const struct http_result *res)
{
	struct gw_call *k = arg;
	struct llm_error le;
	json_t *resp;
	char err[1024], *copy;
	const char *body;
	size_t len;
	long ra;

	k->hr = NULL;
	if (res->err == HTTP_EABORT && k->st != NULL) {
		/* The stream said something we could not take. */
		llm_stream_error(k->st, &le);
		gw_failed(k, le.transient, le.context_overflow, le.kind,
		    res->status, le.message, le.retry_after_ms);
		return;
	}
	if (res->err != HTTP_OK) {
		snprintf(err, sizeof err, "%s %s: %s", k->prov->name,
		    res->err == HTTP_ESTALL ? "stalled" :
		    res->err == HTTP_ETIMEOUT ? "timed out" :
		    res->err == HTTP_ECONNECT ? "unreachable" :
		    res->err == HTTP_ERESET ? "connection lost" : "failed",
		    res->errmsg);
		gw_failed(k, res->err != HTTP_ETOOBIG, 0,
		    res->err == HTTP_ESTALL ? "stall" :
		    res->err == HTTP_ETIMEOUT ? "timeout" :
		    res->err == HTTP_ECONNECT ? "connect" :
		    res->err == HTTP_ERESET && k->sse == 1 ? "truncated" :
		    "network", res->status, err, -1);
		return;
	}
	if (res->status < 200 || res->status >= 300) {
		/* Redact before the message is cut to size: a cut key
		   would no longer match. */
		copy = xmalloc(res->len + 1);
		memcpy(copy, res->body, res->len);
		copy[res->len] = '\0';
		gw_redact(k, copy);
		llm_classify_error(k->prov->api, res->status, copy,
		    strlen(copy), http_header(res->req, "retry-after"),
		    http_header(res->req, "retry-after-ms"), &le);
		free(copy);
		ra = le.retry_after_ms;
		if (ra < 0 && res->status == 429)
			ra = gw_duration_ms(http_header(res->req,
			    "x-ratelimit-reset-requests"));
		snprintf(err, sizeof err, "%s: HTTP %ld: %s", k->prov->name,
		    res->status, le.message);
		if (k->stream_now && k->prov->stream != 1 &&
		    res->status == 400 && k->stream &&
		    strstr(le.message, "stream") != NULL &&
		    strstr(le.message, "upstream") == NULL) {
			/* The server cannot stream: ask again without. */
			k->stream = 0;
			gw_failed(k, 1, 0, "stream_unsupported", res->status,
			    err, 0);
			return;
		}
		gw_failed(k, le.transient, le.context_overflow, le.kind,
		    res->status, err, ra);
		return;
	}
	if (k->stream_now && k->sse == 1) {
		resp = llm_stream_finish(k->st, err, sizeof err);
		if (resp == NULL) {
			/* Cut before its end: the connection, retried; a
			   complete stream that makes no sense: the model. */
			if (llm_stream_done(k->st))
				gw_failed(k, 0, 0, "malformed", res->status, err,
				    -1);
			else
				gw_failed(k, 1, 0, "truncated", res->status, err,
				    -1);
			return;
		}
		gw_answer(k, resp, k->raw, k->rawlen);
		return;
	}
	body = k->stream_now ? (k->raw != NULL ? k->raw : "") : res->body;
	len = k->stream_now ? k->rawlen : res->len;
	if ((resp = llm_parse_response(k->prov->api, body, len, err,
	    sizeof err)) == NULL) {
		char *m = xasprintf("%s: malformed answer: %s",
		    k->prov->name, err);

		gw_failed(k, 0, 0, "malformed", res->status, m, -1);
		free(m);
		return;
	}
	gw_answer(k, resp, body, len);
}

/* Make an attempt on the current provider (slot permitting). */
void
gw_attempt(struct gw_call *k)
{
	struct gw_provider *p = k->prov;
	const char *hdrs[40], *kv;
	char *heap[40], *body, err[256], url[2048];
	const char *base, *key;
	json_t *v;
	size_t i, nh = 0, nheap = 0;
	const char *name;

	if (p->inflight >= p->max_concurrency) {
		TAILQ_INSERT_TAIL(&p->waiting, k, wentry);
		k->queued = 1;
		return;
	}
	p->inflight++;
	k->attempts++;
	k->attempt_at = now_wall();
	k->stream_now = p->stream >= 0 ? p->stream : k->stream;
	json_object_set_new(k->request, "model", json_string(k->model));
	if (p->api == LLM_OPENAI && p->max_tokens_field != NULL)
		json_object_set_new(k->request, "max_tokens_field",
		    json_string(p->max_tokens_field));
	else
		json_object_del(k->request, "max_tokens_field");
	body = llm_build_request(p->api, k->request, k->stream_now, err,
	    sizeof err);
	if (body == NULL) {
		gw_failed(k, 0, 0, "bad_request", 0, err, -1);
		return;
	}
	base = gw_base_url(p);
	i = strlen(base);
	while (i > 0 && base[i - 1] == '/')
		i--;
	key = k->key;
	if (p->api == LLM_OPENAI) {
		snprintf(url, sizeof url, "%.*s/chat/completions", (int)i, base);
		if (key != NULL && *key != '\0')
			hdrs[nh++] = heap[nheap++] = xasprintf("Authorization: "
			    "Bearer %s", key);
	} else {
		snprintf(url, sizeof url, "%.*s/v1/messages", (int)i, base);
		if (key != NULL && *key != '\0')
			hdrs[nh++] = heap[nheap++] = xasprintf("x-api-key: %s",
			    key);
		hdrs[nh++] = "anthropic-version: 2023-06-01";
	}
	hdrs[nh++] = "Content-Type: application/json";
	if (k->stream_now)
		hdrs[nh++] = "Accept: text/event-stream";
	json_object_foreach(p->headers, name, v) {
		if (nh + 2 >= sizeof hdrs / sizeof hdrs[0] ||
		    (kv = json_string_value(v)) == NULL)
			continue;
		hdrs[nh++] = heap[nheap++] = xasprintf("%s: %s", name, kv);
	}
	hdrs[nh] = NULL;
	if (k->st != NULL)
		llm_stream_free(k->st);
	k->st = k->stream_now ? llm_stream_new(p->api) : NULL;
	k->sse = -1;
	k->rawlen = 0;
	{
		struct http_opts o = {
			.url = url,
			.headers = hdrs,
			.body = body,
			.bodylen = strlen(body),
			/* Without streaming nothing arrives until the whole
			   answer is written: only the total timeout applies. */
			.stall_ms = k->stream_now ? k->stall_ms : 0,
			.total_ms = k->timeout_ms,
			.on_data = k->stream_now ? gw_data_cb : NULL,
			.on_done = gw_done_cb,
			.max_response = 16u << 20,
			.arg = k,
		};
		k->hr = http_start(k->g->http, &o, err, sizeof err);
	}
	for (i = 0; i < nheap; i++) {
		explicit_bzero(heap[i], strlen(heap[i]));
		free(heap[i]);
	}
	free(body);
	if (k->hr == NULL)
		gw_failed(k, 0, 0, "connect", 0, err, -1);
}
