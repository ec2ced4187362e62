/* grant.c: a run's capability grants and their tokens (grant.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "engine/captoken.h"
#include "engine/grant.h"
#include "runtime/util.h"

struct grant {
	int		 parent;	/* 0: the root */
	char		*node;
	json_t		*grant;		/* as given */
	struct captoken	*tok;		/* NULL until minted */
	int64_t		 max_calls;	/* of the token, once minted */
	int64_t		 calls;		/* counted here and below */
};

struct grants {
	const struct captoken_keys *keys;
	grant_mint_cb	 on_mint;
	void		*arg;
	char		*run;
	struct grant	*g;		/* g[0] unused: ids start at 1 */
	size_t		 n, cap;
};

struct grants *
grants_new(const struct captoken_keys *keys, grant_mint_cb on_mint,
    void *arg)
{
	struct grants *gs = xcalloc(1, sizeof *gs);

	gs->keys = keys;
	gs->on_mint = on_mint;
	gs->arg = arg;
	gs->run = xstrdup("");
	gs->n = 1;
	return gs;
}

void
grants_set_run(struct grants *gs, const char *run_id)
{
	size_t i;

	for (i = 1; i < gs->n; i++) {
		captoken_free(gs->g[i].tok);
		gs->g[i].tok = NULL;
		gs->g[i].calls = 0;
	}
	free(gs->run);
	gs->run = xstrdup(run_id);
}

void
grants_free(struct grants *gs)
{
	size_t i;

	if (gs == NULL)
		return;
	for (i = 1; i < gs->n; i++) {
		free(gs->g[i].node);
		json_decref(gs->g[i].grant);
		captoken_free(gs->g[i].tok);
	}
	free(gs->g);
	free(gs->run);
	free(gs);
}

/* Whether grant id's token is missing or past half its life. */
static int
grants_stale(const struct grant *g, int64_t now_ms)
{
	return g->tok == NULL ||
	    captoken_exp_ms(g->tok) - now_ms < GRANT_TTL_MS / 2;
}

/*
 * Mint grant id's token (and its ancestors' first if they are stale):
 * the claims given, completed with the run, the node, and the parent's
 * args and max_calls where left out; the expiry is the parent's at most.
 */
static int
grants_mint(struct grants *gs, int id, int64_t now_ms, char *err,
    size_t errlen)
{
	struct grant *g = &gs->g[id];
	const struct captoken *ptok = NULL;
	struct captoken *tok;
	const json_t *pc;
	int64_t exp = now_ms + GRANT_TTL_MS;
	json_t *claims;
	int r;

	if (g->parent > 0) {
		if (grants_stale(&gs->g[g->parent], now_ms) &&
		    (r = grants_mint(gs, g->parent, now_ms, err, errlen)) != 0)
			return r;
		ptok = gs->g[g->parent].tok;
		if (captoken_exp_ms(ptok) < exp)
			exp = captoken_exp_ms(ptok);
	}
	claims = json_deep_copy(g->grant);
	json_object_set_new(claims, "run", json_string(gs->run));
	json_object_set_new(claims, "node", json_string(g->node));
	json_object_set_new(claims, "exp", json_integer(exp));
	if (ptok != NULL) {
		pc = captoken_claims(ptok);
		if (json_object_get(claims, "args") == NULL &&
		    json_object_get(pc, "args") != NULL)
			json_object_set(claims, "args",
			    json_object_get(pc, "args"));
		if (json_object_get(claims, "max_calls") == NULL)
			json_object_set(claims, "max_calls",
			    json_object_get(pc, "max_calls"));
	} else if (json_object_get(claims, "max_calls") == NULL)
		json_object_set_new(claims, "max_calls",
		    json_integer(CAPTOKEN_MAX_CALLS));
	r = captoken_mint(gs->keys, claims, ptok, now_ms, &tok, err, errlen);
	json_decref(claims);
	if (r != 0)
		return r;
	captoken_free(g->tok);
	g->tok = tok;
	g->max_calls = captoken_max_calls(tok);
	if (gs->on_mint != NULL)
		gs->on_mint(gs->arg, id, tok);
	return 0;
}

int
grants_add(struct grants *gs, int parent, const char *node,
    const json_t *grant, int eager, int *reason, char *err, size_t errlen)
{
	struct grant *g;
	int id, r;

	if (parent < 0 || (size_t)parent >= gs->n) {
		errf(err, errlen, "no grant %d", parent);
		if (reason != NULL)
			*reason = CAPTOKEN_EMALFORMED;
		return -1;
	}
	if (!json_is_object(grant)) {
		errf(err, errlen, "a grant must be an object");
		if (reason != NULL)
			*reason = CAPTOKEN_EMALFORMED;
		return -1;
	}
	if (gs->n >= gs->cap) {
		gs->cap = gs->cap ? gs->cap * 2 : 16;
		gs->g = xrealloc(gs->g, gs->cap * sizeof *gs->g);
	}
	id = (int)gs->n++;
	g = &gs->g[id];
	memset(g, 0, sizeof *g);
	g->parent = parent;
	g->node = xstrdup(node);
	g->grant = json_deep_copy(grant);
	if (eager && (r = grants_mint(gs, id, captoken_now_ms(), err,
	    errlen)) != 0) {
		free(g->node);
		json_decref(g->grant);
		gs->n--;
		if (reason != NULL)
			*reason = -r;
		return -1;
	}
	return id;
}

const char *
grants_token(struct grants *gs, int id, int count, int64_t now_ms,
    int *reason, char *err, size_t errlen)
{
	struct grant *g;
	int a, r;

	if (id < 1 || (size_t)id >= gs->n) {
		errf(err, errlen, "the task names no grant (%d)", id);
		*reason = CAPTOKEN_EMALFORMED;
		return NULL;
	}
	g = &gs->g[id];
	if (grants_stale(g, now_ms) &&
	    (r = grants_mint(gs, id, now_ms, err, errlen)) != 0) {
		*reason = -r;
		return NULL;
	}
	if (!count)
		return captoken_string(g->tok);
	for (a = id; a > 0; a = gs->g[a].parent)
		if (gs->g[a].tok != NULL &&
		    gs->g[a].calls >= gs->g[a].max_calls) {
			errf(err, errlen, "the grant of '%s' allows %lld "
			    "tool calls and all were made",
			    gs->g[a].node, (long long)gs->g[a].max_calls);
			*reason = CAPTOKEN_ECALLS;
			return NULL;
		}
	for (a = id; a > 0; a = gs->g[a].parent)
		gs->g[a].calls++;
	return captoken_string(g->tok);
}

const json_t *
grants_claims(const struct grants *gs, int id)
{
	if (id < 1 || (size_t)id >= gs->n || gs->g[id].tok == NULL)
		return NULL;
	return captoken_claims(gs->g[id].tok);
}
