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
 *
 * This file holds a call's life: its start, the walk along the chain,
 * retries and fallback, the breakers' state, the outcome and what is
 * recorded.  gateway_provider.c holds the providers (declarations,
 * endpoints, keys, prices); gateway_http.c one attempt on the wire.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <time.h>

#include <event2/event.h>

#include "engine/coord.h"
#include "engine/gateway.h"
#include "engine/gateway_int.h"
#include "engine/replay.h"
#include "engine/store.h"
#include "runtime/util.h"
#include "protocols/llm.h"
#include "runtime/http.h"

static void	gw_try(struct gw_call *);
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
void
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

int
gateway_calls(const struct gateway *g)
{
	const struct gw_call *k;
	int n = 0;

	LIST_FOREACH(k, &g->calls, entry)
		n++;
	return n;
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
	while ((p = LIST_FIRST(&g->providers)) != NULL)
		gw_provider_free(p);
	if (g->http != NULL)
		http_free(g->http);
	free(g);
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
void
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

/*
 * An attempt failed.  transient: worth retrying here; retry_after_ms
 * from the answer (-1 none).  Retries, falls back, or gives up.
 */
void
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

int
gateway_blob(struct gateway *g, const void *data, size_t len, char hash[65])
{
	return store_blob_put(g->st, data, len, hash);
}
