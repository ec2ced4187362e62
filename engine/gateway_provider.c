/*
 * gateway_provider.c: the gateway's providers: the two built in,
 * w.provider{} declarations checked field by field, endpoints and API
 * keys from the environment, and model prices (a provider's own table,
 * then the built-in one).  See gateway.h.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "engine/gateway.h"
#include "engine/gateway_int.h"
#include "runtime/util.h"
#include "protocols/llm.h"


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

/* The provider named by name[0..len), or NULL. */
struct gw_provider *
gw_provider_find(struct gateway *g, const char *name, size_t len)
{
	struct gw_provider *p;

	LIST_FOREACH(p, &g->providers, entry)
		if (strlen(p->name) == len && strncmp(p->name, name, len) == 0)
			return p;
	return NULL;
}

/* A new provider with the defaults, first in the list. */
struct gw_provider *
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
struct gw_provider *
gw_resolve(struct gateway *g, const char *spec, const char **model)
{
	const char *colon = strchr(spec, ':');

	if (colon == NULL || colon[1] == '\0')
		return NULL;
	*model = colon + 1;
	return gw_provider_find(g, spec, colon - spec);
}

/* A price for model: the provider's own table, then the built-in one. */
int
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

/* The provider's own base URL, else the environment's, else the API's. */
const char *
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

/* A provider at its default endpoint with no key cannot answer. */
int
gw_keyless(const struct gw_provider *p)
{
	const char *key = getenv(p->key_env);

	return (key == NULL || *key == '\0') && p->base_url == NULL &&
	    strcmp(gw_base_url(p), p->api == LLM_OPENAI ?
	    "https://api.openai.com/v1" : "https://api.anthropic.com") == 0;
}

/* Unlink a provider from its gateway and free it. */
void
gw_provider_free(struct gw_provider *p)
{
	LIST_REMOVE(p, entry);
	free(p->name);
	free(p->base_url);
	free(p->key_env);
	free(p->max_tokens_field);
	json_decref(p->headers);
	json_decref(p->prices);
	free(p);
}
