/*
 * captoken_uses.c: capability tokens: a verifier's count of the calls made
 * with each token, for max_calls and single-use tokens.  An open
 * addressing table with linear probing, keyed by token id; entries of
 * expired tokens are dropped when it is rebuilt.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/captoken_int.h"
#include "runtime/util.h"

#define CK_USES_DEFAULT	65536

struct ck_use {
	char		 jti[CAPTOKEN_JTI_LEN + 1];	/* "" when free */
	int64_t		 exp;
	int64_t		 count;
};

struct captoken_uses {
	struct ck_use	*slot;
	size_t		 cap;		/* a power of two */
	size_t		 n;
	size_t		 max;
	int64_t		 clock;		/* latest now_ms seen */
};

/* FNV-1a of a token id. */
static size_t
uses_hash(const char *jti)
{
	uint64_t h = 1469598103934665603ULL;

	while (*jti != '\0')
		h = (h ^ (unsigned char)*jti++) * 1099511628211ULL;
	return (size_t)h;
}

/* The slot of jti in slot[cap]: its entry, or the free slot for it. */
static struct ck_use *
uses_probe(struct ck_use *slot, size_t cap, const char *jti)
{
	size_t i = uses_hash(jti) & (cap - 1);

	while (slot[i].jti[0] != '\0' && strcmp(slot[i].jti, jti) != 0)
		i = (i + 1) & (cap - 1);
	return &slot[i];
}

/* The entry of jti, or NULL. */
static struct ck_use *
uses_slot(struct captoken_uses *u, const char *jti)
{
	struct ck_use *e = uses_probe(u->slot, u->cap, jti);

	return e->jti[0] != '\0' ? e : NULL;
}

/* Rebuild into cap slots, dropping tokens that can no longer verify. */
static void
uses_rebuild(struct captoken_uses *u, size_t cap)
{
	struct ck_use *old = u->slot, *e;
	size_t i, oldcap = u->cap;

	u->slot = xcalloc(cap, sizeof *u->slot);
	u->cap = cap;
	u->n = 0;
	for (i = 0; i < oldcap; i++) {
		if (old[i].jti[0] == '\0' ||
		    old[i].exp + CAPTOKEN_SKEW_MS < u->clock)
			continue;
		e = uses_probe(u->slot, cap, old[i].jti);
		*e = old[i];
		u->n++;
	}
	free(old);
}

/* Enter a new token with one call made; -1 if the table is full. */
static int
uses_insert(struct captoken_uses *u, const char *jti, int64_t exp)
{
	struct ck_use *e;

	if (u->n >= u->max || 2 * (u->n + 1) > u->cap) {
		uses_rebuild(u, u->cap);
		if (u->n >= u->max)
			return -1;
		if (2 * (u->n + 1) > u->cap)
			uses_rebuild(u, 2 * u->cap);
	}
	e = uses_probe(u->slot, u->cap, jti);
	memcpy(e->jti, jti, CAPTOKEN_JTI_LEN + 1);
	e->exp = exp;
	e->count = 1;
	u->n++;
	return 0;
}

/* The time to judge a call at: time never goes backwards for a table. */
int64_t
ck_uses_clock(struct captoken_uses *u, int64_t now_ms)
{
	if (now_ms < u->clock)
		now_ms = u->clock;
	u->clock = now_ms;
	return now_ms;
}

/* Count a call with token jti, or refuse it: used up, or table full. */
int
ck_uses_charge(struct captoken_uses *u, const char *jti, int64_t exp,
    int64_t max_calls, char *err, size_t errlen)
{
	struct ck_use *e;

	if ((e = uses_slot(u, jti)) != NULL && e->count >= max_calls) {
		if (max_calls == 1)
			errf(err, errlen, "token %s is single-use and was "
			    "used already", jti);
		else
			errf(err, errlen, "token %s allows %lld calls and all "
			    "were made", jti, (long long)max_calls);
		return max_calls == 1 ? -CAPTOKEN_EREPLAY : -CAPTOKEN_ECALLS;
	}
	if (e != NULL) {
		e->count++;
		return 0;
	}
	if (uses_insert(u, jti, exp) != 0) {
		errf(err, errlen, "too many live tokens to track (%zu)",
		    u->max);
		return -CAPTOKEN_ECAPACITY;
	}
	return 0;
}

struct captoken_uses *
captoken_uses_new(size_t max_tokens)
{
	struct captoken_uses *u = xcalloc(1, sizeof *u);

	u->max = max_tokens ? max_tokens : CK_USES_DEFAULT;
	u->cap = 64;
	u->slot = xcalloc(u->cap, sizeof *u->slot);
	return u;
}

void
captoken_uses_free(struct captoken_uses *u)
{
	if (u == NULL)
		return;
	free(u->slot);
	free(u);
}

int64_t
captoken_uses_count(const struct captoken_uses *u, const char *jti)
{
	struct ck_use *e;

	if (strlen(jti) != CAPTOKEN_JTI_LEN)
		return 0;
	e = uses_probe(u->slot, u->cap, jti);
	return e->jti[0] != '\0' ? e->count : 0;
}
