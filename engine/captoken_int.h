/*
 * captoken_int.h: what the files of the capability token module share:
 * engine/captoken.c (the token core: minting, narrowing, decoding,
 * verifying), captoken_keys.c (keyrings and the key directory),
 * captoken_claims.c (what a valid claim set is), captoken_match.c (tool
 * patterns, paths, URL hosts, arguments against constraints),
 * captoken_uses.c (calls counted per token) and captoken_text.c
 * (base64url, hex, quoted values in messages).  Not a public surface: use
 * engine/captoken.h, which must stay free of other engine headers (the
 * workers include it).
 */
#ifndef WEFT_CAPTOKEN_INT_H
#define WEFT_CAPTOKEN_INT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "engine/captoken.h"

/* Limits of a claim set, beyond the overall size limit. */
#define CK_MAX_TOOLS	64
#define CK_MAX_PATTERNS	64
#define CK_MAX_ARGS	32
#define CK_MAX_ITEMS	64
#define CK_MAX_ID	256		/* run id, argument name */
#define CK_MAX_NODE	1024
#define CK_MAX_PATH	4096
#define CK_MAX_URL	8192
#define CK_MAX_TIME	(1LL << 53)

/* Longest piece of an untrusted value quoted in a message, in bytes. */
#define CK_QUOTE	64

#define CK_ARRAY_MAX	1024		/* elements of an array argument */

/* One key of a keyring: pkey is private for the current key only. */
struct ck_key {
	char		 kid[CAPTOKEN_KID_LEN + 1];
	unsigned char	 pub[32];
	EVP_PKEY	*pkey;		/* private for the current key */
};

struct captoken_keys {
	struct ck_key	 key[CAPTOKEN_MAX_KEYS];
	size_t		 n;
	int		 cur;		/* signing key's index, or -1 */
	char		*dir;		/* state_dir/keys, or NULL */
};

/*
 * captoken_keys.c: the index of key kid in keyring k, or -1 if it holds
 * no such key.  The core looks up the key a token names with it.
 */
int ck_keys_find(const struct captoken_keys *k, const char *kid);

/*
 * captoken_text.c: copy n bytes of the untrusted s into b (cap bytes) for
 * a message: bytes outside printable ASCII, quotes and backslashes as
 * \xNN, cut after CK_QUOTE bytes with "...".  Returns b.  QS quotes a
 * NUL-terminated string, QJ a JSON string (which may hold NUL), each into
 * a char array of QBUF bytes.
 */
const char *ck_quote(char *b, size_t cap, const char *s, size_t n);
#define QBUF (4 * CK_QUOTE + 8)
#define QS(b, s) ck_quote(b, sizeof b, s, strlen(s))
#define QJ(b, j) \
	ck_quote(b, sizeof b, json_string_value(j), json_string_length(j))

/*
 * Join the values of JSON array a into b (cap bytes), separated by ", ":
 * strings quoted as by ck_quote unless as_json, other values as JSON; a
 * list that does not fit ends in "...".  Returns b.
 */
const char *ck_join(char *b, size_t cap, const json_t *a, int as_json);

/*
 * Format ms, milliseconds since the epoch, as an ISO 8601 UTC time with
 * milliseconds into b (cap bytes; 40 are enough), or as "N ms" if it is
 * not a time.  Returns b.
 */
const char *ck_fmt_ms(char *b, size_t cap, int64_t ms);

/*
 * The value of base64url digit c, or -1 if c is not one.  The core uses
 * it to find where a token's claims part ends.
 */
int ck_b64u_val(int c);

/*
 * Encode n bytes as base64url without padding into out, which needs
 * 4 * (n + 2) / 3 + 1 bytes; NUL-terminated.  Returns the length.
 */
size_t ck_b64u_encode(const unsigned char *in, size_t n, char *out);

/*
 * Decode n bytes of strict base64url into out (3 * n / 4 bytes) and set
 * *outlen: no padding, no other bytes and unused low bits zero, so that
 * every byte string has one encoding.  0, or -1 (out is then garbage).
 */
int ck_b64u_decode(const char *in, size_t n, unsigned char *out,
    size_t *outlen);

/* Whether the n bytes of s are all lowercase hex digits. */
int ck_is_lhex(const char *s, size_t n);

/* Write n bytes as 2 * n lowercase hex digits and a NUL into out. */
void ck_hex_encode(const unsigned char *in, size_t n, char *out);

/*
 * Decode exactly 2 * n hex digits (either case), s of slen bytes, into n
 * bytes of out.  0, or -1 for a wrong length or a bad digit.
 */
int ck_hex_decode(const char *s, size_t slen, unsigned char *out, size_t n);

/*
 * captoken_match.c: whether the n bytes of s are a tool name
 * "server.tool", or if wild also a pattern "server.*": a server of
 * letters, digits, '_' and '-', a dot, and a tool of 1 to 128 letters,
 * digits, '_', '-', '.' and '/'.
 */
int ck_name_valid(const char *s, size_t n, int wild);

/* Whether pattern p matches the exact tool name t ("fs.*" not "fsx.x"). */
int ck_pat_match(const char *p, const char *t);

/* Whether pattern p matches every tool that pattern q matches. */
int ck_pat_covers(const char *p, const char *q);

/*
 * If some tool is matched by both patterns a and b, the narrower of the
 * two (which matches exactly those tools), else NULL.  Returns a or b.
 */
const char *ck_pat_overlap(const char *a, const char *b);

/*
 * Normalise the absolute path s of n bytes into out (n + 2 bytes): empty
 * and "." segments dropped, ".." resolved.  NULL, or a static phrase
 * saying why it is refused ("goes above the root").
 */
const char *ck_path_norm(const char *s, size_t n, char *out);

/*
 * Check the host name (labels of letters, digits, '-' and '_') or
 * bracketed IPv6 literal s of n bytes and write it lowercased into out
 * (n + 1 bytes); if url, one trailing dot is dropped.  NULL, or a static
 * phrase saying why it is refused.
 */
const char *ck_host_norm(const char *s, size_t n, int url, char *out);

/*
 * Whether every value constraint c (one argument's {"prefix": ...,
 * "hosts": ..., "enum": ...}, checked) allows is also allowed by the
 * parent's constraint p: 1, or 0 with why a child grant is wider in why
 * ("prefix '/data' is outside the parent's prefix /data/x").
 */
int ck_cons_within(const json_t *c, const json_t *p, char *why,
    size_t whylen);

/*
 * Check the arguments args (an object, or NULL for none) of a call to
 * tool against every constraint of the checked claims whose pattern
 * matches the tool, as captoken_verify describes.  0, or -1 with a
 * message naming the argument in err.
 */
int ck_args_within(const json_t *claims, const char *tool,
    const json_t *args, char *err, size_t errlen);

/*
 * captoken_claims.c: check a claim set, a decoded token's or one about to
 * be minted, against the format in captoken.h: known claims only, each
 * present and in range, tool patterns without duplicates, argument
 * constraints of known kinds with normalised values.  0, or -1 with a
 * message naming the claim in err.  c is not modified.
 */
int ck_claims_valid(const json_t *c, char *err, size_t errlen);

/* Whether name is a claim the caller of captoken_mint may set. */
int ck_grant_field(const char *name);

/*
 * captoken_uses.c: the time at which a use table judges a call made at
 * now_ms: the latest time it has seen, now_ms included, so that time
 * never goes backwards for it.
 */
int64_t ck_uses_clock(struct captoken_uses *u, int64_t now_ms);

/*
 * Count one call with token jti (expiring at exp, allowing max_calls)
 * in u, once every other check has passed.  0, or -CAPTOKEN_EREPLAY or
 * -CAPTOKEN_ECALLS when its calls are used up, or -CAPTOKEN_ECAPACITY
 * when the table is full of live tokens, with a message in err.
 */
int ck_uses_charge(struct captoken_uses *u, const char *jti, int64_t exp,
    int64_t max_calls, char *err, size_t errlen);

#endif
