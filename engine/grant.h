/*
 * grant.h: the coordinator's capability grants for one run (DESIGN.md
 * section 6, docs/security.md "Capability tokens").
 *
 * A grant says which tools the tasks of a node and of the nodes below it
 * may call, with which arguments and how many times.  Grants form a tree
 * that mirrors the graph: the run's grant (every declared MCP server) at
 * the root, then a grant for each node that declares `grant = {...}` and
 * for each agent with tools.  Each grant is carried by a capability token
 * (engine/captoken.h) minted from its parent's token, so a child can only
 * narrow its parent; a wider one is refused when it is minted.
 *
 * Tokens are minted when first needed (an agent that never calls a tool
 * costs no signature) and again before they expire.  Every task carries
 * the token of its node's nearest grant; workers verify it.  Calls are
 * also counted here against the grant and all its ancestors, so a
 * max_calls limit holds across workers (each worker only sees its own).
 */
#ifndef WEFT_GRANT_H
#define WEFT_GRANT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct captoken;
struct captoken_keys;
struct grants;

/* Lifetime of a minted token; re-minted when less than half is left. */
#define GRANT_TTL_MS	(3600 * 1000LL)

/* Told of every token minted (to record it): grant id and the token. */
typedef void (*grant_mint_cb)(void *arg, int id, const struct captoken *);

/* A grant table signing with keys (borrowed; they must outlive it). */
struct grants *grants_new(const struct captoken_keys *keys,
    grant_mint_cb on_mint, void *arg);
void grants_free(struct grants *);

/*
 * Tokens are minted for run_id from now on (grants added before are
 * kept: the graph registers its run's grant before the run is begun).
 */
void grants_set_run(struct grants *, const char *run_id);

/*
 * Add a grant for node under grant parent (0: none, this is the root).
 * grant is {tools: [...], args?: {...}, max_calls?: n} as in a token's
 * claims (captoken.h); args and max_calls left out are the parent's.  If
 * eager, the token is minted now, so a malformed or wider grant is
 * refused here.  Returns the grant id (>= 1), or -1 with err, and then
 * *reason (if not NULL) gets the captoken reason.
 */
int grants_add(struct grants *, int parent, const char *node,
    const json_t *grant, int eager, int *reason, char *err, size_t errlen);

/*
 * The token to send with a task of grant id, minted or re-minted as
 * needed.  If count, the task is a tool call and is counted against the
 * grant and its ancestors first: over any max_calls it is refused.
 * Returns the token (valid until the grant is re-minted or reset), or
 * NULL with err and *reason.
 */
const char *grants_token(struct grants *, int id, int count, int64_t now_ms,
    int *reason, char *err, size_t errlen);

/* The claims of grant id's current token (borrowed), or NULL. */
const json_t *grants_claims(const struct grants *, int id);

#endif
