/*
 * gateway.c: model calls over HTTP, with retries, fallback, circuit
 * breakers and concurrency limits.  See gateway.h.
 *
 * A call walks its chain of providers.  On each provider it makes up to
 * retry.max_attempts attempts; a transient failure (429, 5xx, 529, a
 * reset, a stall, a timeout, a truncated stream) waits a full-jitter
 * backoff (or what Retry-After says) and tries again; a permanent one
 * (400, 401, 403, 404, a malformed answer) moves on at once.  When a
 * provider is exhausted the next one in the chain answers.  An over-long
 * prompt goes straight back to the agent loop, which compacts and asks
 * again.  Each provider has a circuit breaker: after breaker.failures
 * failed attempts in a row it is skipped for breaker.open_s seconds, then
 * one call probes it.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <time.h>

#include <event2/event.h>

#include "engine/coord.h"
#include "engine/gateway.h"
#include "engine/replay.h"
#include "engine/store.h"
#include "runtime/util.h"
#include "protocols/llm.h"
#include "runtime/http.h"

#define GW_MAX_CHAIN		8
#define GW_MAX_RETRY_AFTER_MS	120000L

const struct gateway_price gateway_prices[] = {
	/* OpenAI, USD per million tokens (input, output, cached input). */
	{ "gpt-5-nano*",	0.05,	0.40,	0.005,	0 },
	{ "gpt-5-mini*",	0.25,	2.00,	0.025,	0 },
	{ "gpt-5*",		1.25,	10.00,	0.125,	0 },
	{ "gpt-4.1-nano*",	0.10,	0.40,	0.025,	0 },
	{ "gpt-4.1-mini*",	0.40,	1.60,	0.10,	0 },
	{ "gpt-4.1*",		2.00,	8.00,	0.50,	0 },
	{ "gpt-4o-mini*",	0.15,	0.60,	0.075,	0 },
	{ "gpt-4o*",		2.50,	10.00,	1.25,	0 },
	{ "o4-mini*",		1.10,	4.40,	0.275,	0 },
	{ "o3-mini*",		1.10,	4.40,	0.55,	0 },
	{ "o3*",		2.00,	8.00,	0.50,	0 },
	/* Anthropic (input, output, cache read, cache write 5 min). */
	{ "claude-opus-4-5*",	5.00,	25.00,	0.50,	6.25 },
	{ "claude-opus-4*",	15.00,	75.00,	1.50,	18.75 },
	{ "claude-sonnet-4*",	3.00,	15.00,	0.30,	3.75 },
	{ "claude-3-7-sonnet*",	3.00,	15.00,	0.30,	3.75 },
	{ "claude-haiku-4-5*",	1.00,	5.00,	0.10,	1.25 },
	{ "claude-3-5-haiku*",	0.80,	4.00,	0.08,	1.00 },
	{ NULL, 0, 0, 0, 0 }
};

struct gw_provider {
	char			*name;
	enum llm_api		 api;
	char			*base_url;	/* NULL: from the environment */
	char			*key_env;
	int			 max_concurrency;
	int			 stream;	/* -1: the call decides */
	json_t			*headers;	/* extra "Name": "value" */
	json_t			*prices;	/* model -> {input, ...} */
	char			*max_tokens_field; /* OpenAI: NULL or name */
	int			 breaker_failures;
	double			 breaker_open_s;
	/* state */
	int			 inflight;
	int			 failures;	/* failed attempts in a row */
	double			 open_until;	/* circuit open until (mono) */
	int			 probing;	/* half-open probe in flight */
	TAILQ_HEAD(, gw_call)	 waiting;
	LIST_ENTRY(gw_provider)	 entry;
};

struct gw_call {
	struct gateway		*g;
	int64_t			 ticket;
	char			*path;
	int64_t			 span, parent_span;
	json_t			*request;	/* normalized */
	char			*chain[GW_MAX_CHAIN];
	int			 nchain;
	int			 idx;		/* provider in use */
	int			 attempt;	/* on this provider */
	int			 attempts;	/* in all */
	int			 stream;	/* asked for */
	int			 stream_now;	/* this attempt */
	int			 max_attempts;
	long			 initial_ms, max_ms, stall_ms, timeout_ms;
	struct gw_provider	*prov;		/* of the attempt */
	char			*model;		/* of the attempt */
	char			*key;		/* of the attempt */
	struct http_req		*hr;
	struct llm_stream	*st;
	int			 sse;		/* answer is an event stream */
	char			*raw;		/* streamed answer, for the record */
	size_t			 rawlen, rawcap;
	struct event		*backoff;
	double			 started;
	double			 attempt_at;	/* wall clock, this attempt */
	json_t			*tried;		/* [{provider, error}] */
	TAILQ_ENTRY(gw_call)	 wentry;	/* on a provider's queue */
	LIST_ENTRY(gw_call)	 entry;
	int			 queued;
	int			 probe;		/* the half-open probe */
	int			 call;		/* index in the node */
};

struct gateway {
	struct crun		*run;	/* the run it calls models for */
	struct store		*st;
	struct http		*http;
	struct event_base	*base;
	LIST_HEAD(, gw_provider) providers;
	LIST_HEAD(, gw_call)	 calls;
};

static void	gw_try(struct gw_call *);
static void	gw_attempt(struct gw_call *);
static void	gw_release(struct gw_call *);
static void	gw_fail(struct gw_call *, const char *, const char *, int);

/* Uniform in [0, 1). */
static double
gw_random(void)
{
	uint64_t r;

	if (getrandom(&r, sizeof r, 0) != sizeof r)
		r = (uint64_t)time(NULL) * 2654435761u;
	return (double)(r >> 11) / (double)(1ULL << 53);
}

/* Replace every occurrence of the call's key in s (in place). */
static void
gw_redact(const struct gw_call *k, char *s)
{
	static const char mark[] = "[redacted]";
	size_t klen, mlen = sizeof mark - 1, n;
	char *p;

	if (k->key == NULL || (klen = strlen(k->key)) < 4)
		return;
	while ((p = strstr(s, k->key)) != NULL) {
		if (klen >= mlen) {
			memcpy(p, mark, mlen);
			memmove(p + mlen, p + klen, strlen(p + klen) + 1);
		} else
			memset(p, '*', klen);
	}
	/* A message cut short may end with the start of the key. */
	for (n = klen - 1; n >= 4; n--) {
		size_t slen = strlen(s);

		if (slen >= n && strncmp(s + slen - n, k->key, n) == 0) {
			memset(s + slen - n, '*', n);
			break;
		}
	}
}

static struct gw_provider *
gw_provider_find(struct gateway *g, const char *name, size_t len)
{
	struct gw_provider *p;

	LIST_FOREACH(p, &g->providers, entry)
		if (strlen(p->name) == len && strncmp(p->name, name, len) == 0)
			return p;
	return NULL;
}

static struct gw_provider *
gw_provider_add(struct gateway *g, const char *name, enum llm_api api,
    const char *key_env)
{
	struct gw_provider *p = xcalloc(1, sizeof *p);

	p->name = xstrdup(name);
	p->api = api;
	p->key_env = xstrdup(key_env);
	p->max_concurrency = 64;
	p->stream = -1;
	p->breaker_failures = 5;
	p->breaker_open_s = 30;
	TAILQ_INIT(&p->waiting);
	LIST_INSERT_HEAD(&g->providers, p, entry);
	return p;
}

struct gateway *
gateway_new(struct crun *run, struct store *st, char *err, size_t errlen)
{
	struct gateway *g = xcalloc(1, sizeof *g);

	g->run = run;
	g->st = st;
	g->base = coord_base(crun_coord(run));
	(void)err;
	(void)errlen;
	LIST_INIT(&g->providers);
	LIST_INIT(&g->calls);
	gw_provider_add(g, "openai", LLM_OPENAI, "OPENAI_API_KEY");
	gw_provider_add(g, "anthropic", LLM_ANTHROPIC, "ANTHROPIC_API_KEY");
	return g;
}

static void
gw_call_free(struct gw_call *k)
{
	int i;

	if (k->hr != NULL)
		http_cancel(k->hr);
	if (k->queued)
		TAILQ_REMOVE(&k->prov->waiting, k, wentry);
	if (k->st != NULL)
		llm_stream_free(k->st);
	if (k->backoff != NULL)
		event_free(k->backoff);
	LIST_REMOVE(k, entry);
	for (i = 0; i < k->nchain; i++)
		free(k->chain[i]);
	json_decref(k->request);
	json_decref(k->tried);
	free(k->raw);
	free(k->model);
	if (k->key != NULL) {
		explicit_bzero(k->key, strlen(k->key));
		free(k->key);
	}
	free(k->path);
	free(k);
}

void
gateway_cancel(struct gateway *g, const char *why)
{
	struct gw_call *k;

	while ((k = LIST_FIRST(&g->calls)) != NULL)
		gw_fail(k, "cancelled", why, 0);
}

void
gateway_free(struct gateway *g)
{
	struct gw_provider *p;
	struct gw_call *k;

	if (g == NULL)
		return;
	while ((k = LIST_FIRST(&g->calls)) != NULL)
		gw_call_free(k);
	while ((p = LIST_FIRST(&g->providers)) != NULL) {
		LIST_REMOVE(p, entry);
		free(p->name);
		free(p->base_url);
		free(p->key_env);
		free(p->max_tokens_field);
		json_decref(p->headers);
		json_decref(p->prices);
		free(p);
	}
	if (g->http != NULL)
		http_free(g->http);
	free(g);
}

int
gateway_provider(struct gateway *g, const json_t *decl, char *err,
    size_t errlen)
{
	struct gw_provider *p;
	const char *name, *api, *key;
	json_t *v, *b;
	enum llm_api a;

	if (!json_is_object(decl) ||
	    (name = json_string_value(json_object_get(decl, "name"))) ==
	    NULL || *name == '\0' || strchr(name, ':') != NULL) {
		snprintf(err, errlen, "provider: 'name' must be a non-empty "
		    "string without ':'");
		return -1;
	}
	p = gw_provider_find(g, name, strlen(name));
	api = json_string_value(json_object_get(decl, "api"));
	if (api == NULL && p == NULL) {
		snprintf(err, errlen, "provider '%s': 'api' must be \"openai\" "
		    "or \"anthropic\"", name);
		return -1;
	}
	a = p != NULL ? p->api : LLM_OPENAI;
	if (api != NULL) {
		if (strcmp(api, "openai") == 0)
			a = LLM_OPENAI;
		else if (strcmp(api, "anthropic") == 0)
			a = LLM_ANTHROPIC;
		else {
			snprintf(err, errlen, "provider '%s': unknown api '%s' "
			    "(expected \"openai\" or \"anthropic\")", name, api);
			return -1;
		}
	}
	if (p == NULL)
		p = gw_provider_add(g, name, a, a == LLM_OPENAI ?
		    "OPENAI_API_KEY" : "ANTHROPIC_API_KEY");
	p->api = a;
	if ((v = json_object_get(decl, "base_url")) != NULL) {
		if (!json_is_string(v) || (strncmp(json_string_value(v),
		    "http://", 7) != 0 && strncmp(json_string_value(v),
		    "https://", 8) != 0)) {
			snprintf(err, errlen, "provider '%s': base_url must be "
			    "an http:// or https:// URL", name);
			return -1;
		}
		free(p->base_url);
		p->base_url = xstrdup(json_string_value(v));
	}
	if ((key = json_string_value(json_object_get(decl, "api_key_env"))) !=
	    NULL) {
		free(p->key_env);
		p->key_env = xstrdup(key);
	}
	if ((v = json_object_get(decl, "max_concurrency")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 1) {
			snprintf(err, errlen, "provider '%s': max_concurrency "
			    "must be a positive integer", name);
			return -1;
		}
		p->max_concurrency = (int)json_integer_value(v);
	}
	if ((v = json_object_get(decl, "stream")) != NULL)
		p->stream = json_is_true(v);
	if ((v = json_object_get(decl, "headers")) != NULL) {
		json_decref(p->headers);
		p->headers = json_incref(v);
	}
	if ((v = json_object_get(decl, "max_tokens_field")) != NULL) {
		if (!json_is_string(v) || (strcmp(json_string_value(v),
		    "max_tokens") != 0 && strcmp(json_string_value(v),
		    "max_completion_tokens") != 0)) {
			snprintf(err, errlen, "provider '%s': max_tokens_field "
			    "must be \"max_tokens\" or \"max_completion_tokens\"",
			    name);
			return -1;
		}
		free(p->max_tokens_field);
		p->max_tokens_field = xstrdup(json_string_value(v));
	}
	if ((v = json_object_get(decl, "prices")) != NULL) {
		json_decref(p->prices);
		p->prices = json_incref(v);
	}
	if ((b = json_object_get(decl, "breaker")) != NULL) {
		if ((v = json_object_get(b, "failures")) != NULL &&
		    json_is_integer(v) && json_integer_value(v) >= 1)
			p->breaker_failures = (int)json_integer_value(v);
		if ((v = json_object_get(b, "open_s")) != NULL &&
		    json_is_number(v) && json_number_value(v) > 0)
			p->breaker_open_s = json_number_value(v);
	}
	return 0;
}

/* Split "prov:model" and find the provider. */
static struct gw_provider *
gw_resolve(struct gateway *g, const char *spec, const char **model)
{
	const char *colon = strchr(spec, ':');

	if (colon == NULL || colon[1] == '\0')
		return NULL;
	*model = colon + 1;
	return gw_provider_find(g, spec, colon - spec);
}

/* A price for model: the provider's own table, then the built-in one. */
static int
gw_price(const struct gw_provider *p, const char *model,
    struct gateway_price *out)
{
	const struct gateway_price *gp, *best = NULL;
	size_t n, bestn = 0;
	json_t *o;

	if (p != NULL && p->prices != NULL &&
	    (o = json_object_get(p->prices, model)) != NULL) {
		memset(out, 0, sizeof *out);
		out->model = model;
		out->input = json_number_value(json_object_get(o, "input"));
		out->output = json_number_value(json_object_get(o, "output"));
		out->cache_read = json_number_value(json_object_get(o,
		    "cache_read"));
		out->cache_write = json_number_value(json_object_get(o,
		    "cache_write"));
		return 1;
	}
	for (gp = gateway_prices; gp->model != NULL; gp++) {
		n = strlen(gp->model);
		if (gp->model[n - 1] == '*') {
			if (strncmp(model, gp->model, n - 1) == 0 &&
			    n - 1 > bestn) {
				best = gp;
				bestn = n - 1;
			}
		} else if (strcmp(model, gp->model) == 0) {
			best = gp;
			break;
		}
	}
	if (best == NULL)
		return 0;
	*out = *best;
	return 1;
}

int
gateway_price(struct gateway *g, const char *spec, struct gateway_price *out)
{
	const char *model;
	struct gw_provider *p = gw_resolve(g, spec, &model);

	return p != NULL && gw_price(p, model, out);
}

static const char *
gw_base_url(const struct gw_provider *p)
{
	const char *u;

	if (p->base_url != NULL)
		return p->base_url;
	if (p->api == LLM_OPENAI)
		return (u = getenv("OPENAI_BASE_URL")) != NULL && *u != '\0' ?
		    u : "https://api.openai.com/v1";
	return (u = getenv("ANTHROPIC_BASE_URL")) != NULL && *u != '\0' ? u :
	    "https://api.anthropic.com";
}

/* Record an event on the call's node. */
static void
gw_event(struct gw_call *k, const char *kind, json_t *payload,
    int64_t tokens, double cost)
{
	char *text;

	json_object_set_new(payload, "call", json_integer(k->call));
	text = json_dumps(payload, JSON_COMPACT);
	gw_redact(k, text);
	crun_event_text(k->g->run, kind, k->span, k->parent_span, k->path,
	    k->attempts, text, tokens, cost);
	free(text);
	json_decref(payload);
}

/* Deliver the outcome and forget the call. */
static void
gw_finish(struct gw_call *k, json_t *result, json_t *error)
{
	crun_deliver(k->g->run, k->ticket, result, error);
	json_decref(result);
	json_decref(error);
	gw_call_free(k);
}

/* Give up: record and deliver an error. */
static void
gw_fail(struct gw_call *k, const char *kind, const char *msg, int overflow)
{
	json_t *e;
	char *m = xstrdup(msg);

	gw_redact(k, m);
	e = json_pack("{s:s, s:s, s:b, s:i, s:O}", "kind", kind, "message", m,
	    "context_overflow", overflow, "attempts", k->attempts, "tried",
	    k->tried);
	gw_event(k, "model.error", json_incref(e), 0, 0);
	free(m);
	gw_finish(k, NULL, e);
}

/* The provider answered: account, record, deliver. */
static void
gw_answer(struct gw_call *k, json_t *resp, const char *raw, size_t rawlen)
{
	struct gateway_price pr;
	json_t *u, *payload;
	json_int_t in, out, cr, cw;
	double cost = 0;
	int priced;
	char hash[65] = "";

	u = json_object_get(resp, "usage");
	in = json_integer_value(json_object_get(u, "input_tokens"));
	out = json_integer_value(json_object_get(u, "output_tokens"));
	cr = json_integer_value(json_object_get(u, "cache_read_tokens"));
	cw = json_integer_value(json_object_get(u, "cache_write_tokens"));
	priced = gw_price(k->prov, k->model, &pr);
	if (priced)
		cost = ((double)in * pr.input + (double)out * pr.output +
		    (double)cr * pr.cache_read + (double)cw * pr.cache_write) /
		    1e6;
	if (raw != NULL && rawlen > 0 && store_blob_put(k->g->st, raw, rawlen,
	    hash) != 0)
		hash[0] = '\0';
	k->prov->failures = 0;
	k->prov->open_until = 0;	/* a probe's success closes it */
	json_object_set_new(resp, "provider", json_string(k->prov->name));
	json_object_set_new(resp, "cost", json_real(cost));
	json_object_set_new(resp, "priced", json_boolean(priced));
	json_object_set_new(resp, "attempts", json_integer(k->attempts));
	payload = json_pack("{s:s, s:s, s:O, s:f, s:b, s:i, s:f, s:f, s:s, "
	    "s:b}", "provider", k->prov->name, "model", k->model, "response",
	    resp, "cost", cost, "priced", priced, "attempts", k->attempts,
	    "duration", now_mono() - k->started, "sent_at", k->attempt_at,
	    "raw", hash, "stream", k->stream_now);
	gw_event(k, "model.response", payload, in + out + cr + cw, cost);
	gw_release(k);
	k->prov = NULL;
	gw_finish(k, resp, NULL);
}

/* Delay before the next attempt, in ms: Retry-After, else full jitter. */
static long
gw_backoff_ms(const struct gw_call *k, long retry_after_ms)
{
	double cap;
	int i;

	if (retry_after_ms >= 0)
		return retry_after_ms;
	cap = (double)k->initial_ms;
	for (i = 1; i < k->attempt && cap < k->max_ms; i++)
		cap *= 2;
	if (cap > k->max_ms)
		cap = k->max_ms;
	return (long)(gw_random() * cap);
}

static void
gw_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_call *k = arg;

	(void)fd;
	(void)what;
	gw_attempt(k);
}

/* Release the provider slot of an attempt, waking a waiting call. */
static void
gw_release(struct gw_call *k)
{
	struct gw_provider *p = k->prov;
	struct gw_call *w;

	if (p == NULL)
		return;
	p->inflight--;
	if (k->probe) {
		p->probing = 0;
		k->probe = 0;
	}
	if ((w = TAILQ_FIRST(&p->waiting)) != NULL) {
		TAILQ_REMOVE(&p->waiting, w, wentry);
		w->queued = 0;
		gw_attempt(w);
	}
}

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

/*
 * An attempt failed.  transient: worth retrying here; retry_after_ms
 * from the answer (-1 none).  Retries, falls back, or gives up.
 */
static void
gw_failed(struct gw_call *k, int transient, int overflow, const char *kind,
    long status, const char *msg, long retry_after_ms)
{
	struct gw_provider *p = k->prov;
	struct timeval tv;
	json_t *ev;
	long delay;
	char *m = xstrdup(msg);

	gw_redact(k, m);
	/* The provider's health: failures of the server or the network,
	   not our own bad requests. */
	if (transient)
		p->failures++;
	if (transient && (k->probe || (p->failures >= p->breaker_failures &&
	    p->open_until == 0))) {
		p->open_until = now_mono() + p->breaker_open_s;
		gw_event(k, "model.circuit_open", json_pack("{s:s, s:i, s:f}",
		    "provider", p->name, "failures", p->failures, "open_s",
		    p->breaker_open_s), 0, 0);
	}
	json_array_append_new(k->tried, json_pack("{s:s, s:s, s:i, s:s, s:I}",
	    "provider", p->name, "model", k->model, "attempt", k->attempt,
	    "error", m, "status", (json_int_t)status));
	if (overflow) {
		free(m);
		gw_release(k);
		k->prov = NULL;
		gw_fail(k, "context_overflow", msg, 1);
		return;
	}
	if (transient && k->attempt < k->max_attempts &&
	    retry_after_ms <= GW_MAX_RETRY_AFTER_MS && p->open_until == 0 &&
	    !k->probe) {
		delay = gw_backoff_ms(k, retry_after_ms);
		ev = json_pack("{s:s, s:s, s:i, s:s, s:I, s:s, s:I, s:b}",
		    "provider", p->name, "model", k->model, "attempt",
		    k->attempt, "kind", kind, "status", (json_int_t)status,
		    "message", m, "delay_ms", (json_int_t)delay,
		    "retry_after", retry_after_ms >= 0);
		gw_event(k, "model.retry", ev, 0, 0);
		free(m);
		gw_release(k);
		k->attempt++;
		if (k->backoff == NULL)
			k->backoff = evtimer_new(k->g->base, gw_backoff_cb, k);
		tv.tv_sec = delay / 1000;
		tv.tv_usec = (delay % 1000) * 1000;
		evtimer_add(k->backoff, &tv);
		return;
	}
	gw_release(k);
	k->prov = NULL;
	if (k->idx + 1 < k->nchain) {
		gw_event(k, "model.fallback", json_pack("{s:s, s:s, s:s, s:s}",
		    "from", k->chain[k->idx], "to", k->chain[k->idx + 1],
		    "kind", kind, "reason", m), 0, 0);
		free(m);
		k->idx++;
		k->attempt = 1;
		gw_try(k);
		return;
	}
	gw_fail(k, kind, m, 0);
	free(m);
}

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
static void
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

/* Start on chain[idx], skipping providers whose circuit is open. */
static void
gw_try(struct gw_call *k)
{
	struct gw_provider *p;
	const char *model, *key;
	double now = now_mono();

	for (; k->idx < k->nchain; k->idx++) {
		p = gw_resolve(k->g, k->chain[k->idx], &model);
		if (p->open_until > 0) {
			if (now >= p->open_until && !p->probing) {
				/* Half-open: this call probes; others still
				   skip the provider until it answers. */
				p->probing = 1;
				k->probe = 1;
			} else {
				json_array_append_new(k->tried, json_pack(
				    "{s:s, s:s}", "provider", p->name, "error",
				    "circuit open"));
				if (k->idx + 1 < k->nchain)
					gw_event(k, "model.fallback", json_pack(
					    "{s:s, s:s, s:s, s:s}", "from",
					    k->chain[k->idx], "to",
					    k->chain[k->idx + 1], "kind",
					    "circuit_open", "reason",
					    "circuit open"), 0, 0);
				continue;
			}
		}
		free(k->model);
		k->model = xstrdup(model);
		if (k->key != NULL) {
			explicit_bzero(k->key, strlen(k->key));
			free(k->key);
		}
		key = getenv(p->key_env);
		k->key = key != NULL ? xstrdup(key) : NULL;
		k->prov = p;
		gw_attempt(k);
		return;
	}
	gw_fail(k, "unavailable", "every provider of the chain has its "
	    "circuit open", 0);
}

/* Store each message once, by content; the request lists their hashes. */
static json_t *
gw_request_record(struct gw_call *k)
{
	json_t *hashes = json_array(), *m, *tools;
	char *text, hash[65];
	size_t i;

	json_array_foreach(json_object_get(k->request, "messages"), i, m) {
		text = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
		if (store_blob_put(k->g->st, text, strlen(text), hash) != 0)
			hash[0] = '\0';
		json_array_append_new(hashes, json_string(hash));
		free(text);
	}
	tools = json_object_get(k->request, "tools");
	hash[0] = '\0';
	if (tools != NULL) {
		text = json_dumps(tools, JSON_COMPACT | JSON_SORT_KEYS);
		if (store_blob_put(k->g->st, text, strlen(text), hash) != 0)
			hash[0] = '\0';
		free(text);
	}
	return json_pack("{s:o, s:s, s:O*, s:O*, s:b}", "messages", hashes,
	    "tools", hash, "max_tokens", json_object_get(k->request,
	    "max_tokens"), "temperature", json_object_get(k->request,
	    "temperature"), "stream", k->stream);
}

/* A provider at its default endpoint with no key cannot answer. */
static int
gw_keyless(const struct gw_provider *p)
{
	const char *key = getenv(p->key_env);

	return (key == NULL || *key == '\0') && p->base_url == NULL &&
	    strcmp(gw_base_url(p), p->api == LLM_OPENAI ?
	    "https://api.openai.com/v1" : "https://api.anthropic.com") == 0;
}

static long
gw_opt_ms(const json_t *o, const char *name, long def)
{
	json_t *v = json_object_get(o, name);

	return json_is_integer(v) && json_integer_value(v) >= 0 ?
	    (long)json_integer_value(v) : def;
}

/*
 * Answer a model call from the run's record (resume, replay, fork): its
 * ticket, -1 on an offline replay's divergence, 0 to call live.
 */
static int64_t
gw_recorded(struct gateway *g, const char *path, int64_t span, int call,
    const char *hash, const char *request)
{
	if (crun_replay(g->run) == NULL)
		return 0;
	return crun_recorded(g->run, path, span, call, "model", hash, request);
}

int64_t
gateway_call(struct gateway *g, const char *path, int64_t span,
    int64_t parent_span, const char *opts, const char *request, char *err,
    size_t errlen)
{
	struct gw_call *k;
	struct gw_provider *p;
	json_error_t je;
	json_t *o, *req, *chain, *v, *rec, *retry, *skipped;
	const char *model;
	size_t i;
	int usable, call;
	int64_t t;
	char hash[65];

	call = crun_call_index(g->run, path);
	replay_hash(opts, request, hash);
	if ((t = gw_recorded(g, path, span, call, hash, request)) != 0)
		return t > 0 ? t : crun_ticket(g->run);
	/* The HTTP client (and libcurl) only once a model is called. */
	if (g->http == NULL && (g->http = http_new(g->base, err, errlen)) ==
	    NULL)
		return -1;
	if ((o = json_loads(opts, 0, &je)) == NULL) {
		snprintf(err, errlen, "model options: %s", je.text);
		return -1;
	}
	chain = json_object_get(o, "chain");
	if (!json_is_array(chain) || json_array_size(chain) == 0 ||
	    json_array_size(chain) > GW_MAX_CHAIN) {
		snprintf(err, errlen, "model: expected \"provider:model\" or a "
		    "list of 1 to %d of them", GW_MAX_CHAIN);
		json_decref(o);
		return -1;
	}
	skipped = json_array();
	usable = 0;
	json_array_foreach(chain, i, v) {
		if (!json_is_string(v) || (p = gw_resolve(g,
		    json_string_value(v), &model)) == NULL) {
			snprintf(err, errlen, "model '%s': unknown provider "
			    "(built in: openai, anthropic; others need "
			    "w.provider{})", json_is_string(v) ?
			    json_string_value(v) : "?");
			json_decref(skipped);
			json_decref(o);
			return -1;
		}
		if (gw_keyless(p)) {
			/* The default endpoint without a key: skip it. */
			json_array_append_new(skipped, json_pack("{s:s, s:s}",
			    "model", json_string_value(v), "reason",
			    p->key_env));
			continue;
		}
		usable++;
	}
	if (usable == 0) {
		if (json_array_size(chain) == 1)
			snprintf(err, errlen, "model '%s': $%s is not set",
			    json_string_value(json_array_get(chain, 0)),
			    json_string_value(json_object_get(json_array_get(
			    skipped, 0), "reason")));
		else {
			char vars[256] = "";
			json_t *sk;
			size_t j;

			json_array_foreach(skipped, j, sk)
				snprintf(vars + strlen(vars), sizeof vars -
				    strlen(vars), "%s$%s", j > 0 ? " or " : "",
				    json_string_value(json_object_get(sk,
				    "reason")));
			snprintf(err, errlen, "model: no provider of the "
			    "chain has an API key (set %s)", vars);
		}
		json_decref(skipped);
		json_decref(o);
		return -1;
	}
	if ((req = json_loads(request, 0, &je)) == NULL) {
		snprintf(err, errlen, "model request: %s", je.text);
		json_decref(o);
		return -1;
	}
	k = xcalloc(1, sizeof *k);
	k->g = g;
	k->ticket = crun_ticket(g->run);
	k->path = xstrdup(path);
	k->span = span;
	k->parent_span = parent_span;
	k->call = call;
	k->request = req;
	k->tried = json_array();
	json_array_foreach(chain, i, v) {
		p = gw_resolve(g, json_string_value(v), &model);
		if (!gw_keyless(p))
			k->chain[k->nchain++] = xstrdup(json_string_value(v));
	}
	if ((v = json_object_get(o, "max_tokens")) != NULL)
		json_object_set(req, "max_tokens", v);
	if ((v = json_object_get(o, "temperature")) != NULL)
		json_object_set(req, "temperature", v);
	v = json_object_get(o, "stream");
	k->stream = v == NULL || json_is_true(v);
	retry = json_object_get(o, "retry");
	k->max_attempts = (int)gw_opt_ms(retry, "max_attempts", 4);
	if (k->max_attempts < 1)
		k->max_attempts = 1;
	k->initial_ms = gw_opt_ms(retry, "initial_ms", 500);
	k->max_ms = gw_opt_ms(retry, "max_ms", 30000);
	k->stall_ms = gw_opt_ms(o, "stall_ms", 60000);
	k->timeout_ms = gw_opt_ms(o, "timeout_ms", 600000);
	k->attempt = 1;
	k->started = now_mono();
	LIST_INSERT_HEAD(&g->calls, k, entry);
	rec = gw_request_record(k);
	json_object_set(rec, "chain", chain);
	json_object_set_new(rec, "step", json_string("model"));
	json_object_set_new(rec, "hash", json_string(hash));
	if (json_array_size(skipped) > 0)
		json_object_set(rec, "skipped", skipped);
	json_decref(skipped);
	gw_event(k, "model.request", rec, 0, 0);
	json_decref(o);
	t = k->ticket;
	gw_try(k);		/* may deliver a failure and free k */
	return t;
}
