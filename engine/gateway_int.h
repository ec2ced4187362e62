/*
 * gateway_int.h: the model gateway's inside, shared by engine/gateway.c
 * (a call's life: chain, retries, fallback, breakers, outcome, record),
 * engine/gateway_provider.c (providers, endpoints, keys, prices) and
 * engine/gateway_http.c (one attempt on the wire).  Nothing else
 * includes it.
 */
#ifndef WEFT_GATEWAY_INT_H
#define WEFT_GATEWAY_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <jansson.h>

#include "engine/gateway.h"
#include "protocols/llm.h"

#define GW_MAX_CHAIN		8
#define GW_MAX_RETRY_AFTER_MS	120000L

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

/* The provider named by name[0..len), or NULL (gateway_provider.c). */
struct gw_provider *gw_provider_find(struct gateway *, const char *name,
		    size_t len);
/* A new provider with the defaults, first in the gateway's list. */
struct gw_provider *gw_provider_add(struct gateway *, const char *name,
		    enum llm_api, const char *key_env);
/* Unlink a provider from its gateway and free it. */
void		 gw_provider_free(struct gw_provider *);
/* Split "prov:model": the provider (NULL if unknown) and *model. */
struct gw_provider *gw_resolve(struct gateway *, const char *spec,
		    const char **model);
/* The price of model on p into out: 1 if known, 0 if not. */
int		 gw_price(const struct gw_provider *, const char *model,
		    struct gateway_price *out);
/* The provider's base URL: its own, else the environment's, else the
   API's default. */
const char	*gw_base_url(const struct gw_provider *);
/* 1 if the provider is at its default endpoint with no API key. */
int		 gw_keyless(const struct gw_provider *);

/* Replace every occurrence of the call's key in s, in place (gateway.c). */
void		 gw_redact(const struct gw_call *, char *s);
/* The provider answered resp (raw: the body, for the record): account,
   record, deliver and free the call. */
void		 gw_answer(struct gw_call *, json_t *resp, const char *raw,
		    size_t rawlen);
/* An attempt failed: retry, fall back or give up (gateway.c). */
void		 gw_failed(struct gw_call *, int transient, int overflow,
		    const char *kind, long status, const char *msg,
		    long retry_after_ms);
/* Make an attempt on k->prov, or queue for a slot (gateway_http.c). */
void		 gw_attempt(struct gw_call *);

#endif
