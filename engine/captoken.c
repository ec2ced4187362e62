/*
 * captoken.c: capability tokens: the token core: minting, narrowing,
 * signing, decoding and verifying.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "engine/captoken.h"
#include "engine/captoken_int.h"
#include "runtime/util.h"

#define CK_PREFIX	"wct1."
#define CK_SIG_LEN	64
#define CK_SIG_B64	86		/* base64url of 64 bytes, unpadded */
#define CK_DUMP		(JSON_COMPACT | JSON_SORT_KEYS)

struct captoken {
	char		*str;
	char		 kid[CAPTOKEN_KID_LEN + 1];
	json_t		*claims;
	const char	*run, *node, *jti, *parent;
	int64_t		 max_calls, iat, exp;
};

static const char *const ck_reasons[] = {
	"ok", "malformed", "unknown_key", "signature", "expired",
	"not_yet_valid", "run", "node", "tool", "argument", "replay",
	"max_calls", "capacity", "wider", "key"
};

const char *
captoken_reason_name(int reason)
{
	if (reason < 0)
		reason = -reason;
	if ((size_t)reason >= nitems(ck_reasons))
		return "unknown";
	return ck_reasons[reason];
}

int64_t
captoken_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Tokens. */

/* A token object for checked claims (taken) and its encoding (taken). */
static struct captoken *
tok_new(json_t *claims, const char *kid, char *str)
{
	struct captoken *t = xcalloc(1, sizeof *t);

	t->str = str;
	memcpy(t->kid, kid, CAPTOKEN_KID_LEN + 1);
	t->claims = claims;
	t->run = json_string_value(json_object_get(claims, "run"));
	t->node = json_string_value(json_object_get(claims, "node"));
	t->jti = json_string_value(json_object_get(claims, "jti"));
	t->parent = json_string_value(json_object_get(claims, "parent"));
	t->max_calls = json_integer_value(json_object_get(claims,
	    "max_calls"));
	t->iat = json_integer_value(json_object_get(claims, "iat"));
	t->exp = json_integer_value(json_object_get(claims, "exp"));
	return t;
}

void
captoken_free(struct captoken *t)
{
	if (t == NULL)
		return;
	json_decref(t->claims);
	free(t->str);
	free(t);
}

const char *
captoken_string(const struct captoken *t)
{
	return t->str;
}

const char *
captoken_kid(const struct captoken *t)
{
	return t->kid;
}

const char *
captoken_jti(const struct captoken *t)
{
	return t->jti;
}

const char *
captoken_parent(const struct captoken *t)
{
	return t->parent;
}

const char *
captoken_run(const struct captoken *t)
{
	return t->run;
}

const char *
captoken_node(const struct captoken *t)
{
	return t->node;
}

int64_t
captoken_max_calls(const struct captoken *t)
{
	return t->max_calls;
}

int64_t
captoken_iat_ms(const struct captoken *t)
{
	return t->iat;
}

int64_t
captoken_exp_ms(const struct captoken *t)
{
	return t->exp;
}

const json_t *
captoken_claims(const struct captoken *t)
{
	return t->claims;
}

/* Narrowing. */

/* Is claim set c (checked) no wider than token p?  Message if not. */
static int
narrower(const json_t *c, const struct captoken *p, char *err, size_t errlen)
{
	const json_t *ct = json_object_get(c, "tools");
	const json_t *pt = json_object_get(p->claims, "tools");
	const json_t *pargs = json_object_get(p->claims, "args");
	const json_t *cargs = json_object_get(c, "args");
	const json_t *v, *w, *pa, *pc, *ca, *cc;
	const char *node, *ppat, *cpat, *arg, *in;
	char q[QBUF], t1[40], t2[40], list[512], why[768];
	size_t i, j, n;
	int ok;

#define WIDER(...) do {							\
	char m_[1024];							\
	snprintf(m_, sizeof m_, __VA_ARGS__);				\
	errf(err, errlen, "child grant is wider than its parent: %s", m_); \
	return -1;							\
} while (0)
	if (strcmp(json_string_value(json_object_get(c, "run")), p->run) != 0)
		WIDER("run '%s' is not the parent's run '%s'",
		    QS(q, json_string_value(json_object_get(c, "run"))),
		    p->run);
	node = json_string_value(json_object_get(c, "node"));
	n = strlen(p->node);
	if (strncmp(node, p->node, n) != 0 ||
	    (node[n] != '\0' && node[n] != '/'))
		WIDER("node '%s' is not the parent's node '%s' or below it",
		    QS(q, node), p->node);
	if (json_integer_value(json_object_get(c, "max_calls")) > p->max_calls)
		WIDER("max_calls %lld exceeds the parent's %lld",
		    (long long)json_integer_value(json_object_get(c,
		    "max_calls")), (long long)p->max_calls);
	if (json_integer_value(json_object_get(c, "exp")) > p->exp)
		WIDER("it expires at %s, after the parent (%s)",
		    ck_fmt_ms(t1, sizeof t1, json_integer_value(
		    json_object_get(c, "exp"))),
		    ck_fmt_ms(t2, sizeof t2, p->exp));
	json_array_foreach(ct, i, v) {
		ok = 0;
		json_array_foreach(pt, j, w)
			if ((ok = ck_pat_covers(json_string_value(w),
			    json_string_value(v))))
				break;
		if (!ok)
			WIDER("tool '%s' is not granted by the parent (parent "
			    "grants: %s)", json_string_value(v),
			    ck_join(list, sizeof list, pt, 0));
	}
	/*
	 * Every parent constraint that applies to a tool the child grants
	 * must be matched by a child constraint on the same argument that
	 * applies to at least the tools both patterns match, and allows
	 * no more.  Constraints for tools the child does not grant lapse.
	 */
	json_object_foreach((json_t *)pargs, ppat, pa) {
		json_object_foreach((json_t *)pa, arg, pc) {
			json_array_foreach(ct, i, v) {
				in = ck_pat_overlap(json_string_value(v),
				    ppat);
				if (in == NULL)
					continue;
				ok = 0;
				why[0] = '\0';
				json_object_foreach((json_t *)cargs, cpat,
				    ca) {
					cc = json_object_get(ca, arg);
					if (cc == NULL ||
					    !ck_pat_covers(cpat, in))
						continue;
					if ((ok = ck_cons_within(cc, pc, why,
					    sizeof why)))
						break;
				}
				if (ok)
					continue;
				if (why[0] != '\0')
					WIDER("argument '%s' of '%s': %s",
					    QS(q, arg), in, why);
				WIDER("the parent constrains argument '%s' of "
				    "'%s' but the child grants '%s' without "
				    "that constraint", QS(q, arg), ppat,
				    json_string_value(v));
			}
		}
	}
#undef WIDER
	return 0;
}

/* Minting. */

/* Ed25519 signature of n bytes into sig[64]. */
static int
ed_sign(EVP_PKEY *pkey, const void *m, size_t n, unsigned char *sig)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t len = CK_SIG_LEN;
	int ok;

	if (ctx == NULL)
		return -1;
	ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
	    EVP_DigestSign(ctx, sig, &len, m, n) == 1 && len == CK_SIG_LEN;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* Whether sig[64] is a signature by pkey of n bytes: 0, or -1. */
static int
ed_verify(EVP_PKEY *pkey, const void *m, size_t n, const unsigned char *sig)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	if (ctx == NULL)
		return -1;
	ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
	    EVP_DigestVerify(ctx, sig, CK_SIG_LEN, m, n) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

int
captoken_mint(const struct captoken_keys *keys, const json_t *grant,
    const struct captoken *parent, int64_t now_ms, struct captoken **tokp,
    char *err, size_t errlen)
{
	const struct ck_key *key;
	const char *k;
	const json_t *v;
	json_t *c;
	char jti[CAPTOKEN_JTI_LEN + 1], q[QBUF], m[512], *payload, *str;
	unsigned char sig[CK_SIG_LEN];
	size_t plen, n;

	if (keys->cur < 0) {
		errf(err, errlen, "cannot mint: this keyring holds no private "
		    "key");
		return -CAPTOKEN_EKEY;
	}
	key = &keys->key[keys->cur];
	if (!json_is_object(grant)) {
		errf(err, errlen, "bad grant: not a JSON object");
		return -CAPTOKEN_EMALFORMED;
	}
	c = json_object();
	json_object_foreach((json_t *)grant, k, v) {
		if (!ck_grant_field(k)) {
			errf(err, errlen, "bad grant: unknown field '%s' "
			    "(expected run, node, tools, args, max_calls, "
			    "exp)", QS(q, k));
			json_decref(c);
			return -CAPTOKEN_EMALFORMED;
		}
		json_object_set_new(c, k, json_deep_copy(v));
	}
	random_hex(jti, CAPTOKEN_JTI_LEN / 2);
	jti[CAPTOKEN_JTI_LEN] = '\0';
	json_object_set_new(c, "v", json_integer(1));
	json_object_set_new(c, "iat", json_integer(now_ms));
	json_object_set_new(c, "jti", json_string(jti));
	if (parent != NULL)
		json_object_set_new(c, "parent", json_string(parent->jti));
	if (ck_claims_valid(c, m, sizeof m) != 0) {
		errf(err, errlen, "bad grant: %s", m);
		json_decref(c);
		return -CAPTOKEN_EMALFORMED;
	}
	if (parent != NULL && narrower(c, parent, err, errlen) != 0) {
		json_decref(c);
		return -CAPTOKEN_EWIDER;
	}
	if ((payload = json_dumps(c, CK_DUMP)) == NULL)
		fatalx(1, "cannot encode token claims");
	plen = strlen(payload);
	n = sizeof CK_PREFIX - 1 + CAPTOKEN_KID_LEN + 1 + (plen * 4 + 2) / 3 +
	    1 + CK_SIG_B64;
	if (n > CAPTOKEN_MAX_LEN) {
		errf(err, errlen, "bad grant: the token would be %zu bytes, "
		    "over the limit of %d", n, CAPTOKEN_MAX_LEN);
		free(payload);
		json_decref(c);
		return -CAPTOKEN_EMALFORMED;
	}
	str = xmalloc(n + 1);
	n = (size_t)snprintf(str, n + 1, "%s%s.", CK_PREFIX, key->kid);
	n += ck_b64u_encode((unsigned char *)payload, plen, str + n);
	free(payload);
	if (ed_sign(key->pkey, str, n, sig) != 0)
		fatalx(1, "Ed25519 signing failed");
	str[n++] = '.';
	ck_b64u_encode(sig, sizeof sig, str + n);
	*tokp = tok_new(c, key->kid, str);
	return 0;
}

/* Decoding and verifying. */

/* Split, look up and check the signature of a token; decode its claims. */
static int
tok_decode(const struct captoken_keys *keys, const char *s, size_t len,
    json_t **claimsp, char *kid, char *err, size_t errlen)
{
	const char *payload, *sig;
	unsigned char sigb[CK_SIG_LEN + 3], *pb;
	char q[QBUF], list[512], *canon;
	size_t plen, n, i, o;
	json_error_t je;
	json_t *c;
	int ki;

#define MALFORMED(...) do {						\
	char m_[512];							\
	snprintf(m_, sizeof m_, __VA_ARGS__);				\
	errf(err, errlen, "malformed token: %s", m_);			\
	return -CAPTOKEN_EMALFORMED;					\
} while (0)
	if (len > CAPTOKEN_MAX_LEN)
		MALFORMED("%zu bytes, over the limit of %d", len,
		    CAPTOKEN_MAX_LEN);
	n = sizeof CK_PREFIX - 1;
	if (len < n || memcmp(s, CK_PREFIX, n) != 0)
		MALFORMED("it does not start with '%s'", CK_PREFIX);
	if (len < n + CAPTOKEN_KID_LEN + 1 ||
	    !ck_is_lhex(s + n, CAPTOKEN_KID_LEN) ||
	    s[n + CAPTOKEN_KID_LEN] != '.')
		MALFORMED("no key id after '%s'", CK_PREFIX);
	memcpy(kid, s + n, CAPTOKEN_KID_LEN);
	kid[CAPTOKEN_KID_LEN] = '\0';
	payload = s + n + CAPTOKEN_KID_LEN + 1;
	for (plen = 0; payload + plen < s + len &&
	    ck_b64u_val((unsigned char)payload[plen]) >= 0; plen++)
		;
	if (plen == 0 || payload + plen == s + len || payload[plen] != '.')
		MALFORMED("no claims part");
	sig = payload + plen + 1;
	if ((size_t)(s + len - sig) != CK_SIG_B64)
		MALFORMED("the signature part is not %d characters",
		    CK_SIG_B64);
	if (ck_b64u_decode(sig, CK_SIG_B64, sigb, &o) != 0 || o != CK_SIG_LEN)
		MALFORMED("the signature part is not base64url");
	if ((ki = ck_keys_find(keys, kid)) < 0) {
		list[0] = '\0';
		for (i = 0, o = 0; i < keys->n && o + 20 < sizeof list; i++)
			o += snprintf(list + o, sizeof list - o, "%s%s",
			    i ? ", " : "", keys->key[i].kid);
		errf(err, errlen, "token signed by unknown key %s (known: %s)",
		    kid, keys->n ? list : "none");
		return -CAPTOKEN_EKID;
	}
	if (ed_verify(keys->key[ki].pkey, s, (size_t)(sig - 1 - s), sigb)) {
		errf(err, errlen, "signature does not verify (key %s)", kid);
		return -CAPTOKEN_ESIG;
	}
	pb = xmalloc(plen);
	if (ck_b64u_decode(payload, plen, pb, &n) != 0) {
		free(pb);
		MALFORMED("the claims part is not base64url");
	}
	c = json_loadb((char *)pb, n, JSON_REJECT_DUPLICATES, &je);
	if (c == NULL) {
		free(pb);
		MALFORMED("claims are not JSON: %s", QS(q, je.text));
	}
	canon = json_dumps(c, CK_DUMP);
	if (canon == NULL || strlen(canon) != n || memcmp(canon, pb, n) != 0) {
		free(canon);
		free(pb);
		json_decref(c);
		MALFORMED("claims are not in canonical form");
	}
	free(canon);
	free(pb);
	if (ck_claims_valid(c, list, sizeof list) != 0) {
		json_decref(c);
		MALFORMED("%s", list);
	}
#undef MALFORMED
	*claimsp = c;
	return 0;
}

int
captoken_verify(const struct captoken_keys *keys, const char *s, size_t len,
    const struct captoken_call *call, int64_t now_ms,
    struct captoken_uses *uses, struct captoken **tokp, char *err,
    size_t errlen)
{
	struct captoken *t;
	char kid[CAPTOKEN_KID_LEN + 1];
	json_t *c;
	int r;

	if ((r = tok_decode(keys, s, len, &c, kid, err, errlen)) != 0)
		return r;
	t = tok_new(c, kid, NULL);
	r = captoken_check(t, call, now_ms, uses, err, errlen);
	if (r != 0 || tokp == NULL) {
		captoken_free(t);
		return r;
	}
	t->str = xstrndup(s, len);
	*tokp = t;
	return 0;
}

/* Whether node is at or below the token's node, on a '/' boundary. */
static int
node_within(const char *node, const char *tnode)
{
	size_t n = strlen(tnode);

	return strncmp(node, tnode, n) == 0 &&
	    (node[n] == '\0' || node[n] == '/');
}

int
captoken_check(const struct captoken *t, const struct captoken_call *call,
    int64_t now_ms, struct captoken_uses *uses, char *err, size_t errlen)
{
	char q[QBUF], q2[QBUF], list[512];
	char t1[40], t2[40];
	const json_t *c = t->claims;
	int r;

	if (uses != NULL)
		now_ms = ck_uses_clock(uses, now_ms);
	r = -1;
	if (now_ms > t->exp + CAPTOKEN_SKEW_MS) {
		errf(err, errlen, "token %s expired at %s (now %s)", t->jti,
		    ck_fmt_ms(t1, sizeof t1, t->exp),
		    ck_fmt_ms(t2, sizeof t2, now_ms));
		r = -CAPTOKEN_EEXPIRED;
	} else if (t->iat - CAPTOKEN_SKEW_MS > now_ms) {
		errf(err, errlen, "token %s is issued at %s, in the future "
		    "(now %s)", t->jti, ck_fmt_ms(t1, sizeof t1, t->iat),
		    ck_fmt_ms(t2, sizeof t2, now_ms));
		r = -CAPTOKEN_ENOTYET;
	} else if (call->run == NULL || strcmp(call->run, t->run) != 0) {
		errf(err, errlen, "token %s is for run '%s', not run '%s'",
		    t->jti, QS(q, t->run), call->run ? QS(q2, call->run) : "");
		r = -CAPTOKEN_ERUN;
	} else if (call->node != NULL && !node_within(call->node, t->node)) {
		errf(err, errlen, "token %s is for node '%s' and below, not "
		    "node '%s'",
		    t->jti, QS(q, t->node), QS(q2, call->node));
		r = -CAPTOKEN_ENODE;
	} else if (call->tool == NULL) {
		r = 0;
	} else if (!ck_name_valid(call->tool, strlen(call->tool), 0)) {
		errf(err, errlen, "tool name '%s' is not server.tool",
		    QS(q, call->tool));
		r = -CAPTOKEN_ETOOL;
	} else {
		const json_t *tools = json_object_get(c, "tools"), *p;
		size_t i;

		json_array_foreach(tools, i, p)
			if (ck_pat_match(json_string_value(p), call->tool))
				break;
		if (i == json_array_size(tools)) {
			errf(err, errlen, "tool '%s' is not granted (granted: "
			    "%s)", call->tool, ck_join(list, sizeof list,
			    tools, 0));
			r = -CAPTOKEN_ETOOL;
		} else if (ck_args_within(c, call->tool, call->args, err,
		    errlen) != 0) {
			r = -CAPTOKEN_EARG;
		} else if (uses == NULL) {
			r = 0;
		} else
			r = ck_uses_charge(uses, t->jti, t->exp, t->max_calls,
			    err, errlen);
	}
	return r;
}
