/*
 * gateway.h: the model gateway.  Calls LLM APIs from the coordinator.
 *
 * One gateway per run.  A call names a chain of providers
 * ("anthropic:claude-sonnet-4-5", then "openai:gpt-4o", ...); the gateway
 * sends the request to the first one whose circuit is closed, within that
 * provider's concurrency limit, retries transient failures with full-
 * jitter exponential backoff (honouring Retry-After and rate-limit
 * headers), falls back along the chain, and delivers one normalized
 * answer (or error) to the graph through crun_deliver().  Every attempt
 * is recorded; the messages are stored once each, by content hash.  API
 * keys are read from the environment here and never leave this module:
 * not in events, errors or logs.  See docs/providers.md.
 */
#ifndef WEFT_GATEWAY_H
#define WEFT_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct crun;
struct store;
struct gateway;

/* The gateway of a run, on its coordinator's loop (a workflow declares
   its own providers); NULL with err if libcurl fails. */
struct gateway	*gateway_new(struct crun *, struct store *, char *err,
		    size_t errlen);

/* Model calls not yet answered (in flight, waiting for a slot or a
   retry). */
int		 gateway_calls(const struct gateway *);
/* Cancel every call in flight (no delivery) and free. */
void		 gateway_free(struct gateway *);
/*
 * The run was cancelled: abort every model call in flight or waiting (its
 * HTTP transfer is closed) and record each as a model.error of kind
 * cancelled with message why.
 */
void		 gateway_cancel(struct gateway *, const char *why);

/*
 * Declare or override a provider: {name, api ("openai"|"anthropic"),
 * base_url, api_key_env, max_concurrency, stream, headers, prices,
 * breaker}.  Returns 0, or -1 with err naming the bad field.
 */
int		 gateway_provider(struct gateway *, const json_t *decl,
		    char *err, size_t errlen);


/*
 * Start a model call for the node at path/span.  opts is the agent's
 * call options as JSON text: {chain: ["prov:model", ...], max_tokens,
 * temperature, stream, retry: {max_attempts, initial_ms, max_ms},
 * stall_ms, timeout_ms}; request is the normalized request (messages,
 * tools) as JSON text.  Returns a ticket (> 0) whose outcome arrives
 * through the coordinator's sink, or -1 with err for a bad call (unknown
 * provider, no API key, malformed options).
 */
int64_t		 gateway_call(struct gateway *, const char *path, int64_t span,
		    int64_t parent_span, const char *opts, const char *request,
		    char *err, size_t errlen);

/* USD per million tokens, built in; exported for tests and docs. */
struct gateway_price {
	const char	*model;		/* exact name, or prefix ending in '*' */
	double		 input, output, cache_read, cache_write;
};
extern const struct gateway_price gateway_prices[];

/*
 * The price of "provider:model" into out: 1 if known (the provider's
 * table, then the built-in one), 0 if not.  Budgets use it to reserve a
 * call's worst case and to refuse a USD limit over an unpriced model.
 */
int		 gateway_price(struct gateway *, const char *spec,
		    struct gateway_price *out);

/*
 * Keep bytes a run received (a remote agent's file, w.remote) as a blob of
 * the run's store, as the gateway keeps model messages; hash gets their
 * sha256 hex.  0, or -1 when the store refused them.
 */
int		 gateway_blob(struct gateway *, const void *, size_t,
		    char hash[65]);

#endif
