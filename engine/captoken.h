/*
 * captoken.h: capability tokens, the signed grants that say which tools a
 * task may call and with which arguments (DESIGN.md section 6).
 *
 * The coordinator mints a token for every task; the worker verifies it
 * before executing the task.  Tokens are signed with Ed25519 (OpenSSL
 * libcrypto): the coordinator holds the private key, workers hold only
 * public keys, so a compromised worker cannot mint.  docs/security.md
 * describes the encoding and the threat model; in short a token is
 *
 *	wct1.<kid>.<base64url(claims)>.<base64url(signature)>
 *
 * where kid is the 16 lowercase hex digits naming the signing key (the
 * first 16 hex digits of SHA-256 of its raw 32-byte public key), claims is
 * a canonical JSON object (no whitespace, keys sorted bytewise, as jansson
 * writes it with JSON_COMPACT | JSON_SORT_KEYS), base64url has no padding
 * and no stray bits, and the signature covers every byte before the last
 * '.'.  A token longer than CAPTOKEN_MAX_LEN is refused before anything is
 * decoded, and its signature is checked before its claims are parsed.  The
 * claims:
 *
 *	v          1
 *	run        run id
 *	node       node path ("essay/research/web")
 *	tools      ["fs.read_file", "web.*"]: "server.tool" or "server.*"
 *	args       optional: {"fs.*": {"path": {"prefix": ["/work/scratch"]}},
 *	           "web.fetch": {"url": {"hosts": ["example.com"]}},
 *	           "db.query": {"mode": {"enum": ["read", 1, true]}}}
 *	max_calls  1 .. CAPTOKEN_MAX_CALLS; 1 makes the token single-use
 *	iat, exp   issued at and expiry, integer milliseconds since the epoch
 *	jti        token id, 32 lowercase hex digits (random)
 *	parent     optional: the jti of the token this one was narrowed from
 *
 * Unknown claims, unknown constraint kinds, reals, duplicate tools and a
 * non-canonical encoding are refused: there is exactly one valid encoding
 * of a claim set, and anything this build does not understand denies.
 *
 * Every refusal has a reason code (enum captoken_reason) and a message
 * that names what was refused and why; all are permanent errors for the
 * task.  Functions that can refuse a token return 0 or minus its reason.
 * No function keeps a reference to its arguments; this module touches no
 * global state, but a keyring, a use table and a token must each be used
 * by one thread at a time.
 */
#ifndef WEFT_CAPTOKEN_H
#define WEFT_CAPTOKEN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Longest token accepted or minted, in bytes. */
#define CAPTOKEN_MAX_LEN	16384
/* Key ids and token ids in hex digits. */
#define CAPTOKEN_KID_LEN	16
#define CAPTOKEN_JTI_LEN	32
/* A raw Ed25519 public key in hex digits (captoken_pubkey_export). */
#define CAPTOKEN_PUBKEY_LEN	64
/* Clock skew tolerated between minter and verifier, both ways. */
#define CAPTOKEN_SKEW_MS	30000
/* Longest lifetime (exp - iat) of a token: tokens are short-lived. */
#define CAPTOKEN_MAX_LIFETIME_MS (24 * 3600 * 1000LL)
#define CAPTOKEN_MAX_CALLS	1000000
/* Most keys a keyring holds (the current one and kept public keys). */
#define CAPTOKEN_MAX_KEYS	64

/*
 * Why a token was refused.  The numbers are stable (they may be stored);
 * captoken_reason_name gives each a stable short name for the trajectory.
 */
enum captoken_reason {
	CAPTOKEN_OK = 0,
	CAPTOKEN_EMALFORMED = 1,	/* not a token, or bad claims/grant */
	CAPTOKEN_EKID = 2,		/* signing key not in the keyring */
	CAPTOKEN_ESIG = 3,		/* signature does not verify */
	CAPTOKEN_EEXPIRED = 4,		/* past exp (+ skew) */
	CAPTOKEN_ENOTYET = 5,		/* iat in the future (beyond skew) */
	CAPTOKEN_ERUN = 6,		/* minted for another run */
	CAPTOKEN_ENODE = 7,		/* minted for another node */
	CAPTOKEN_ETOOL = 8,		/* tool not granted */
	CAPTOKEN_EARG = 9,		/* argument outside its constraints */
	CAPTOKEN_EREPLAY = 10,		/* single-use token used again */
	CAPTOKEN_ECALLS = 11,		/* max_calls already used */
	CAPTOKEN_ECAPACITY = 12,	/* use table full of live tokens */
	CAPTOKEN_EWIDER = 13,		/* mint: child wider than parent */
	CAPTOKEN_EKEY = 14		/* mint: keyring has no private key */
};

struct captoken_keys;
struct captoken;
struct captoken_uses;

/*
 * What a worker is about to do with a token: the task's run id and node
 * path, and the tool call.  A token for node "a/b" serves tasks of "a/b"
 * and of the nodes below it ("a/b/c"), not "a/bc"; node may be NULL not
 * to check it.  tool may be
 * NULL to check only the token itself (signature, expiry, run, node), as
 * for a tools/list task; then arguments and calls are not checked or
 * counted.  args is the call's arguments object; NULL means none.
 */
struct captoken_call {
	const char	*run;
	const char	*node;
	const char	*tool;
	const json_t	*args;
};

/* A stable short name for a reason ("signature", "expired", ...). */
const char *captoken_reason_name(int reason);

/* Milliseconds since the epoch by the wall clock. */
int64_t captoken_now_ms(void);

/*
 * The state directory (signing keys): $WEFT_STATE_DIR, else
 * $XDG_STATE_HOME/weft, else $HOME/.local/state/weft; the parents of the
 * default ones are made (0700) if missing.  0, or -1 with err.
 */
int state_dir_path(char *out, size_t outlen, char *err, size_t errlen);

/*
 * Load the signing keys kept in state_dir/keys, creating them on first
 * use: state_dir (if missing) and keys/ are made mode 0700, a new Ed25519
 * key pair is written as keys/<kid>.key (the 32-byte seed in hex, 0600)
 * and keys/<kid>.pub (the raw public key in hex, 0644), and keys/current
 * names it; every file is written to a temporary name and renamed.  Every
 * keys/<kid>.pub present is loaded too, so tokens signed by rotated keys
 * still verify until the key is retired.  Refuses (-1, message in err) a
 * keys directory or key file that is not owned by this user, a keys
 * directory or private key that group or others can access, a public key
 * or current file that they can write, symlinks, and files whose content
 * does not match their name.  On success *keysp gets a keyring the caller
 * frees with captoken_keys_free.
 */
int captoken_keys_load_or_create(const char *state_dir,
    struct captoken_keys **keysp, char *err, size_t errlen);

/*
 * Make a new current key for a keyring loaded from a state directory: the
 * new pair is written, keys/current is switched to it atomically, and the
 * old private key file is removed (its public key stays, in the directory
 * and the keyring, so tokens it signed keep verifying until they expire).
 * If kid is not NULL it gets the new key id.  0, or -1 with err; a keyring
 * holding CAPTOKEN_MAX_KEYS keys must retire one first.
 */
int captoken_keys_rotate(struct captoken_keys *keys,
    char kid[CAPTOKEN_KID_LEN + 1], char *err, size_t errlen);

/*
 * Forget the public key kid: tokens it signed stop verifying.  For a
 * keyring loaded from a state directory its files are removed too.  The
 * current key cannot be retired.  0, or -1 with err.
 */
int captoken_keys_retire(struct captoken_keys *keys, const char *kid,
    char *err, size_t errlen);

/*
 * A new keyring with no keys: a worker's, filled by captoken_pubkey_import.
 * Never NULL.
 */
struct captoken_keys *captoken_keys_new(void);

/*
 * A keyring holding one signing key made from a 32-byte Ed25519 seed, or
 * a random one if seed is NULL, kept in memory only: for tests, fuzzing
 * and tools that mint without a state directory.  0 and *keysp, or -1.
 */
int captoken_keys_from_seed(const unsigned char *seed,
    struct captoken_keys **keysp, char *err, size_t errlen);

/* Free a keyring and wipe its private key; NULL is allowed. */
void captoken_keys_free(struct captoken_keys *keys);

/* The current (signing) key id, or NULL if the keyring cannot sign. */
const char *captoken_keys_current(const struct captoken_keys *keys);

/*
 * Write the raw public key of kid (the current key if kid is NULL) as 64
 * lowercase hex digits into out.  This is what workers receive.  0, or -1
 * with err if the keyring has no such key.
 */
int captoken_pubkey_export(const struct captoken_keys *keys, const char *kid,
    char out[CAPTOKEN_PUBKEY_LEN + 1], char *err, size_t errlen);

/*
 * Add a public key given as 64 hex digits to a keyring (adding one it
 * holds already is not an error).  If kid is not NULL it gets the key id.
 * 0, or -1 with err for a malformed key or a full keyring.
 */
int captoken_pubkey_import(struct captoken_keys *keys, const char *hex,
    char kid[CAPTOKEN_KID_LEN + 1], char *err, size_t errlen);

/*
 * Every public key of the keyring as a new JSON array of hex strings, the
 * current key first: what the coordinator sends workers at hello.  The
 * caller owns the reference.
 */
json_t *captoken_keys_public(const struct captoken_keys *keys);

/*
 * Mint a token for grant, a JSON object with the claims the caller
 * chooses: run, node, tools, max_calls, exp and optionally args, with the
 * meaning and limits given above.  v, iat (now_ms), jti (random) and
 * parent are filled in here.  If parent is not NULL the new token must be
 * a subset of it: the same run; its node the parent's or below it; every
 * tool pattern covered by one of the parent's; no more max_calls; no
 * later exp; and for every argument constraint of the parent that applies
 * to a tool the child grants, a constraint of the child on that argument,
 * applying to at least the same tools, of every kind the parent's has,
 * allowing no more values (prefixes inside the parent's, hosts and enum
 * values among the parent's).  Returns 0 with *tokp (the caller frees it
 * with captoken_free), -CAPTOKEN_EMALFORMED for a bad grant,
 * -CAPTOKEN_EWIDER naming what is wider ("tool 'web.*' is not granted by
 * the parent (parent grants: fs.read_file)"), or -CAPTOKEN_EKEY if keys
 * cannot sign; err gets the message.  The grant is not modified.
 */
int captoken_mint(const struct captoken_keys *keys, const json_t *grant,
    const struct captoken *parent, int64_t now_ms, struct captoken **tokp,
    char *err, size_t errlen);

/*
 * Verify the token of len bytes for call at time now_ms, in this order:
 * form and size, key id among keys, signature, claims, expiry and issue
 * time (CAPTOKEN_SKEW_MS allowed), run, node, tool, arguments, and, if
 * uses is not NULL and call->tool is set, the count of calls made with it.
 * A call is counted only when everything else passed.  Returns 0, with
 * *tokp if tokp is not NULL (the caller frees it with captoken_free), or
 * minus a reason with a message in err, e.g. "tool 'fs.write_file' is not
 * granted (granted: fs.read_file, web.*)" or "argument 'path' =
 * '/etc/passwd' is outside the allowed prefixes /work/scratch".  Messages
 * quote at most a short, escaped part of any value and never the token.
 *
 * Arguments: a constrained argument must be present.  "prefix": a string
 * (or an array of strings, each checked) that is an absolute path which,
 * after removing "." and empty segments and resolving "..", lies at or
 * below one of the prefixes on a component boundary ("/data/x" allows
 * "/data/x/y", not "/data/xyz"; ".." above the root is refused).  The
 * check is lexical: symlinks are the sandbox's business.  "hosts": a
 * string (or array of strings) that is an http or https URL whose host
 * equals one of the hosts, ignoring case and one trailing dot; URLs with
 * userinfo ('@' before the path), backslashes, spaces, control or
 * non-ASCII bytes, percent signs in the host or a bad port are refused.
 * "enum": the value equals (json_equal) one of the listed strings,
 * integers or booleans.  Constraints under every pattern that matches the
 * tool apply.
 */
int captoken_verify(const struct captoken_keys *keys, const char *token,
    size_t len, const struct captoken_call *call, int64_t now_ms,
    struct captoken_uses *uses, struct captoken **tokp, char *err,
    size_t errlen);

/*
 * The checks of captoken_verify after the signature, for a token that
 * verified already (a verifier may keep verified tokens and check each
 * later call with this alone): expiry and issue time, run, node, tool,
 * arguments and call count.  Same results and messages as
 * captoken_verify.
 */
int captoken_check(const struct captoken *tok,
    const struct captoken_call *call, int64_t now_ms,
    struct captoken_uses *uses, char *err, size_t errlen);

/* Free a token; NULL is allowed. */
void captoken_free(struct captoken *tok);

/*
 * A token's parts, valid while the token lives: its encoded form (to put
 * in a task), key id, jti (what the trajectory records), parent jti (NULL
 * if none), run id, node path, limits, and the claims as JSON (borrowed).
 */
const char *captoken_string(const struct captoken *tok);
const char *captoken_kid(const struct captoken *tok);
const char *captoken_jti(const struct captoken *tok);
const char *captoken_parent(const struct captoken *tok);
const char *captoken_run(const struct captoken *tok);
const char *captoken_node(const struct captoken *tok);
int64_t captoken_max_calls(const struct captoken *tok);
int64_t captoken_iat_ms(const struct captoken *tok);
int64_t captoken_exp_ms(const struct captoken *tok);
const json_t *captoken_claims(const struct captoken *tok);

/*
 * A verifier's record of calls made per token id, for max_calls and
 * single-use tokens: a worker keeps one for its lifetime.  A token's entry
 * is dropped once the token has expired, and the table never lets time go
 * backwards (a verify with an earlier now_ms than one seen before is
 * judged at the later time), so a dropped token cannot come back.  It
 * holds at most max_tokens live tokens (0: 65536); beyond that verify
 * refuses with CAPTOKEN_ECAPACITY.  Never NULL.
 */
struct captoken_uses *captoken_uses_new(size_t max_tokens);

/* Free a use table; NULL is allowed. */
void captoken_uses_free(struct captoken_uses *uses);

/* Calls counted so far for token id jti (0 if none). */
int64_t captoken_uses_count(const struct captoken_uses *uses,
    const char *jti);

#endif
