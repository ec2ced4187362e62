/* test_captoken.c: minting, narrowing and verifying capability tokens. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "engine/captoken.h"

#define NOW	1763890000000LL		/* 2025-11-23T09:26:40Z */
#define MIN	60000LL

static const unsigned char seed_a[32] = { 1, 2, 3, 4, 5, 6, 7, 8 };
static const unsigned char seed_b[32] = { 9, 9, 9 };

static struct captoken_keys *
keys_seeded(const unsigned char *seed)
{
	struct captoken_keys *k;
	char err[256];

	if (captoken_keys_from_seed(seed, &k, err, sizeof err) != 0)
		fail_msg("keys: %s", err);
	return k;
}

static json_t *
parse(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);

	if (j == NULL)
		fail_msg("bad test JSON %s: %s", text, je.text);
	return j;
}

/* A grant for run r1, node root, expiring 10 minutes after NOW. */
static json_t *
grant(const char *tools, const char *args, int max_calls)
{
	char buf[4096];

	snprintf(buf, sizeof buf, "{\"run\":\"r1\",\"node\":\"root\","
	    "\"tools\":%s,%s%s%s\"max_calls\":%d,\"exp\":%lld}", tools,
	    args ? "\"args\":" : "", args ? args : "", args ? "," : "",
	    max_calls, NOW + 10 * MIN);
	return parse(buf);
}

static struct captoken *
mint_ok(struct captoken_keys *k, json_t *g, const struct captoken *parent)
{
	struct captoken *t = NULL;
	char err[512] = "";

	if (captoken_mint(k, g, parent, NOW, &t, err, sizeof err) != 0)
		fail_msg("mint: %s", err);
	json_decref(g);
	return t;
}

static void
mint_fails(struct captoken_keys *k, json_t *g, const struct captoken *parent,
    int reason, const char *want)
{
	struct captoken *t = NULL;
	char err[512] = "";
	int r = captoken_mint(k, g, parent, NOW, &t, err, sizeof err);

	if (r != -reason || strstr(err, want) == NULL)
		fail_msg("mint gave %d '%s'; wanted %d '%s'", r, err, -reason,
		    want);
	assert_null(t);
	json_decref(g);
}

static int
verify(struct captoken_keys *k, const char *tok, const char *tool,
    const char *args, int64_t now, struct captoken_uses *u, char *err,
    size_t errlen)
{
	struct captoken_call call = { "r1", NULL, tool, NULL };
	json_t *a = args != NULL ? parse(args) : NULL;
	int r;

	call.args = a;
	err[0] = '\0';
	r = captoken_verify(k, tok, strlen(tok), &call, now, u, NULL, err,
	    errlen);
	json_decref(a);
	return r;
}

static void
ok(struct captoken_keys *k, const struct captoken *t, const char *tool,
    const char *args)
{
	char err[512];

	if (verify(k, captoken_string(t), tool, args, NOW, NULL, err,
	    sizeof err) != 0)
		fail_msg("%s %s refused: %s", tool, args ? args : "", err);
}

static void
refused(struct captoken_keys *k, const struct captoken *t, const char *tool,
    const char *args, int reason, const char *want)
{
	char err[512];
	int r = verify(k, captoken_string(t), tool, args, NOW, NULL, err,
	    sizeof err);

	if (r != -reason || strstr(err, want) == NULL)
		fail_msg("%s %s gave %d '%s'; wanted %d '%s'", tool,
		    args ? args : "", r, err, -reason, want);
}

/* Base64url, unpadded, for hand-made tokens. */
static void
b64u(const unsigned char *in, size_t n, char *out)
{
	static const char c[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t i, o = 0;
	uint32_t v;

	for (i = 0; i < n; i += 3) {
		v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = c[v >> 18];
		out[o++] = c[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = c[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = c[v & 63];
	}
	out[o] = '\0';
}

/* A token with any claims text, signed by the key of seed. */
static char *
forge(const unsigned char *seed, const char *kid, const char *claims)
{
	EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL,
	    seed, 32);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char sig[64];
	size_t siglen = 64, n;
	char *s = malloc(strlen(claims) * 2 + 200);

	n = (size_t)sprintf(s, "wct1.%s.", kid);
	b64u((const unsigned char *)claims, strlen(claims), s + n);
	n = strlen(s);
	assert_int_equal(EVP_DigestSignInit(ctx, NULL, NULL, NULL, pk), 1);
	assert_int_equal(EVP_DigestSign(ctx, sig, &siglen,
	    (unsigned char *)s, n), 1);
	s[n++] = '.';
	b64u(sig, 64, s + n);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return s;
}

/* Claims text of a valid token, with extra fields in front. */
static char *
claims_text(const char *extra)
{
	char *s;

	if (asprintf(&s, "{%s\"exp\":%lld,\"iat\":%lld,\"jti\":"
	    "\"0123456789abcdef0123456789abcdef\",\"max_calls\":1,"
	    "\"node\":\"root\",\"run\":\"r1\",\"tools\":[\"fs.read\"],"
	    "\"v\":1}", extra, NOW + MIN, NOW) < 0)
		abort();
	return s;
}

static void
test_captoken_round_trip(void **state)
{
	struct captoken_keys *k = keys_seeded(seed_a);
	struct captoken *t, *v = NULL;
	struct captoken_call call = { "r1", "root", "fs.read",
	    NULL };
	const char *s;
	char err[512] = "", pub[CAPTOKEN_PUBKEY_LEN + 1];
	json_t *args = parse("{\"path\":\"/work/a\"}");

	t = mint_ok(k, grant("[\"fs.read\",\"web.*\"]",
	    "{\"fs.*\":{\"path\":{\"prefix\":[\"/work\"]}}}", 3), NULL);
	s = captoken_string(t);
	assert_int_equal(strncmp(s, "wct1.", 5), 0);
	assert_int_equal(strncmp(s + 5, captoken_keys_current(k), 16), 0);
	assert_int_equal(s[21], '.');
	assert_true(strlen(s) < CAPTOKEN_MAX_LEN);
	assert_int_equal(strlen(captoken_jti(t)), CAPTOKEN_JTI_LEN);
	assert_null(captoken_parent(t));
	assert_int_equal(captoken_iat_ms(t), NOW);
	assert_int_equal(captoken_exp_ms(t), NOW + 10 * MIN);
	assert_int_equal(captoken_max_calls(t), 3);

	call.args = args;
	assert_int_equal(captoken_verify(k, s, strlen(s), &call, NOW + MIN,
	    NULL, &v, err, sizeof err), 0);
	assert_string_equal(err, "");
	assert_non_null(v);
	assert_string_equal(captoken_string(v), s);
	assert_string_equal(captoken_jti(v), captoken_jti(t));
	assert_string_equal(captoken_kid(v), captoken_keys_current(k));
	assert_string_equal(captoken_run(v), "r1");
	assert_string_equal(captoken_node(v), "root");
	assert_true(json_equal((json_t *)captoken_claims(v),
	    (json_t *)captoken_claims(t)));

	/* A worker holding only the public key verifies it too. */
	struct captoken_keys *w = captoken_keys_new();
	char kid[CAPTOKEN_KID_LEN + 1];

	assert_int_equal(captoken_pubkey_export(k, NULL, pub, err,
	    sizeof err), 0);
	assert_int_equal(strlen(pub), 64);
	assert_int_equal(captoken_pubkey_import(w, pub, kid, err,
	    sizeof err), 0);
	assert_string_equal(kid, captoken_keys_current(k));
	assert_null(captoken_keys_current(w));
	assert_int_equal(captoken_verify(w, s, strlen(s), &call, NOW, NULL,
	    NULL, err, sizeof err), 0);
	/* ... and cannot mint. */
	mint_fails(w, grant("[\"fs.read\"]", NULL, 1), NULL, CAPTOKEN_EKEY,
	    "no private key");

	captoken_keys_free(w);
	captoken_free(v);
	captoken_free(t);
	json_decref(args);
	captoken_keys_free(k);
}

static void
test_captoken_forged_signature(void **state)
{
	struct captoken_keys *k = keys_seeded(seed_a);
	struct captoken *t = mint_ok(k, grant("[\"fs.read\"]", NULL, 5), NULL);
	char err[512], *s = strdup(captoken_string(t)), *f, *cl;
	size_t n = strlen(s), i, dot = strrchr(s, '.') - s;
	char c;
	int r;

	/* One character of the signature, then of the claims. */
	c = s[dot + 10];
	s[dot + 10] = c == 'A' ? 'B' : 'A';
	assert_int_equal(verify(k, s, "fs.read", NULL, NOW, NULL, err,
	    sizeof err), -CAPTOKEN_ESIG);
	assert_non_null(strstr(err, "signature does not verify"));
	s[dot + 10] = c;
	c = s[30];
	s[30] = c == 'A' ? 'B' : 'A';
	assert_int_equal(verify(k, s, "fs.read", NULL, NOW, NULL, err,
	    sizeof err), -CAPTOKEN_ESIG);
	s[30] = c;
	assert_int_equal(verify(k, s, "fs.read", NULL, NOW, NULL, err,
	    sizeof err), 0);

	/* Any change anywhere is refused. */
	for (i = 0; i < n; i++) {
		c = s[i];
		s[i] = c == 'A' ? 'B' : (c == '.' ? 'A' : 'A');
		if (s[i] == c)
			s[i] = 'C';
		r = verify(k, s, "fs.read", NULL, NOW, NULL, err, sizeof err);
		if (r == 0)
			fail_msg("changing byte %zu of %s verifies", i, s);
		s[i] = c;
	}

	/* Claims signed by another key but naming this key's id. */
	cl = claims_text("");
	f = forge(seed_b, captoken_keys_current(k), cl);
	assert_int_equal(verify(k, f, "fs.read", NULL, NOW, NULL, err,
	    sizeof err), -CAPTOKEN_ESIG);
	free(f);
	/* The same claims, signed by this key, are fine. */
	f = forge(seed_a, captoken_keys_current(k), cl);
	assert_int_equal(verify(k, f, "fs.read", NULL, NOW, NULL, err,
	    sizeof err), 0);
	free(f);
	free(cl);

	free(s);
	captoken_free(t);
	captoken_keys_free(k);
}

static void
test_captoken_other_run_and_node(void **state)
{
	struct captoken_keys *k = keys_seeded(seed_a);
	struct captoken *t = mint_ok(k, grant("[\"fs.read\"]", NULL, 5), NULL);
	struct captoken_call call = { "r2", NULL, "fs.read", NULL };
	const char *s = captoken_string(t);
	char err[512];

	assert_int_equal(captoken_verify(k, s, strlen(s), &call, NOW, NULL,
	    NULL, err, sizeof err), -CAPTOKEN_ERUN);
	assert_non_null(strstr(err, "is for run 'r1', not run 'r2'"));
	call.run = "r1";
	call.node = "rootx/other";
	assert_int_equal(captoken_verify(k, s, strlen(s), &call, NOW, NULL,
	    NULL, err, sizeof err), -CAPTOKEN_ENODE);
	assert_non_null(strstr(err, "is for node 'root' and below, not node "
	    "'rootx/other'"));
	call.node = "roo";
	assert_int_equal(captoken_verify(k, s, strlen(s), &call, NOW, NULL,
	    NULL, err, sizeof err), -CAPTOKEN_ENODE);
	call.node = "root/other/deeper";
	assert_int_equal(captoken_verify(k, s, strlen(s), &call, NOW, NULL,
	    NULL, err, sizeof err), 0);
	call.node = "root";
	assert_int_equal(captoken_verify(k, s, strlen(s), &call, NOW, NULL,
	    NULL, err, sizeof err), 0);
	call.node = NULL;
	assert_int_equal(captoken_verify(k, s, strlen(s), &call, NOW, NULL,
	    NULL, err, sizeof err), 0);
	call.run = NULL;
	assert_int_equal(captoken_verify(k, s, strlen(s), &call, NOW, NULL,
	    NULL, err, sizeof err), -CAPTOKEN_ERUN);
	captoken_free(t);
	captoken_keys_free(k);
}

static void
test_captoken_expired(void **state)
{
	struct captoken_keys *k = keys_seeded(seed_a);
	struct captoken *t = mint_ok(k, grant("[\"fs.read\"]", NULL, 5), NULL);
	const char *s = captoken_string(t);
	int64_t exp = NOW + 10 * MIN;
	char err[512];

	assert_int_equal(verify(k, s, "fs.read", NULL, exp, NULL, err,
	    sizeof err), 0);
	assert_int_equal(verify(k, s, "fs.read", NULL,
	    exp + CAPTOKEN_SKEW_MS, NULL, err, sizeof err), 0);
	assert_int_equal(verify(k, s, "fs.read", NULL,
	    exp + CAPTOKEN_SKEW_MS + 1, NULL, err, sizeof err),
	    -CAPTOKEN_EEXPIRED);
	assert_non_null(strstr(err, "expired at 2025-11-23T09:36:40.000Z "
	    "(now 2025-11-23T09:37:10.001Z)"));
	assert_int_equal(verify(k, s, "fs.read", NULL, INT64_MAX, NULL, err,
	    sizeof err), -CAPTOKEN_EEXPIRED);
	/* Issued in the future, beyond the skew allowed. */
	assert_int_equal(verify(k, s, "fs.read", NULL,
	    NOW - CAPTOKEN_SKEW_MS, NULL, err, sizeof err), 0);
	assert_int_equal(verify(k, s, "fs.read", NULL,
	    NOW - CAPTOKEN_SKEW_MS - 1, NULL, err, sizeof err),
	    -CAPTOKEN_ENOTYET);
	assert_int_equal(verify(k, s, "fs.read", NULL, INT64_MIN, NULL, err,
	    sizeof err), -CAPTOKEN_ENOTYET);
	captoken_free(t);
	captoken_keys_free(k);
}

static void
test_captoken_tool_outside_grant(void **state)
{
	struct captoken_keys *k = keys_seeded(seed_a);
	struct captoken *t = mint_ok(k,
	    grant("[\"fs.read_file\",\"web.*\"]", NULL, 5), NULL);
	char err[512];

	ok(k, t, "fs.read_file", NULL);
	refused(k, t, "fs.write_file", NULL, CAPTOKEN_ETOOL,
	    "tool 'fs.write_file' is not granted (granted: fs.read_file, "
	    "web.*)");
	refused(k, t, "fs.read_file2", NULL, CAPTOKEN_ETOOL, "not granted");
	refused(k, t, "fs.read_fil", NULL, CAPTOKEN_ETOOL, "not granted");
	refused(k, t, "fs.*", NULL, CAPTOKEN_ETOOL, "is not server.tool");
	refused(k, t, "web.", NULL, CAPTOKEN_ETOOL, "is not server.tool");
	refused(k, t, "read_file", NULL, CAPTOKEN_ETOOL, "is not server.tool");
	/* Without a tool only the token itself is checked. */
	assert_int_equal(verify(k, captoken_string(t), NULL, NULL, NOW, NULL,
	    err, sizeof err), 0);
	captoken_free(t);
	captoken_keys_free(k);
}

static void
test_captoken_wildcard_is_whole_server(void **state)
{
	struct captoken_keys *k = keys_seeded(seed_a);
	struct captoken *t = mint_ok(k, grant("[\"fs.*\"]", NULL, 5), NULL);

	ok(k, t, "fs.read", NULL);
	ok(k, t, "fs.write_file", NULL);
	ok(k, t, "fs.a.b", NULL);
	refused(k, t, "fsx.read", NULL, CAPTOKEN_ETOOL,
	    "tool 'fsx.read' is not granted (granted: fs.*)");
	refused(k, t, "f.read", NULL, CAPTOKEN_ETOOL, "not granted");
	refused(k, t, "xfs.read", NULL, CAPTOKEN_ETOOL, "not granted");
	refused(k, t, "fs", NULL, CAPTOKEN_ETOOL, "is not server.tool");
	captoken_free(t);

	/* Only whole-server wildcards exist. */
	mint_fails(k, grant("[\"fs*\"]", NULL, 1), NULL, CAPTOKEN_EMALFORMED,
	    "tools[0] is not a tool pattern");
	mint_fails(k, grant("[\"fs.r*\"]", NULL, 1), NULL,
	    CAPTOKEN_EMALFORMED, "not a tool pattern");
	mint_fails(k, grant("[\"*.read\"]", NULL, 1), NULL,
	    CAPTOKEN_EMALFORMED, "not a tool pattern");
	mint_fails(k, grant("[\"*\"]", NULL, 1), NULL, CAPTOKEN_EMALFORMED,
	    "not a tool pattern");
	mint_fails(k, grant("[\"a.b\",\"a.b\"]", NULL, 1), NULL,
	    CAPTOKEN_EMALFORMED, "tools lists 'a.b' twice");
	captoken_keys_free(k);
}

static void
test_captoken_path_prefix(void **state)
{
	struct captoken_keys *k = keys_seeded(seed_a);
	struct captoken *t = mint_ok(k, grant("[\"fs.*\"]",
	    "{\"fs.*\":{\"path\":{\"prefix\":[\"/work/scratch\","
	    "\"/data/x\"]}}}", 50), NULL);
	struct captoken *d = mint_ok(k, grant("[\"fs.*\"]",
	    "{\"fs.*\":{\"path\":{\"prefix\":[\"/data\"]}}}", 50), NULL);

	ok(k, t, "fs.read", "{\"path\":\"/work/scratch\"}");
	ok(k, t, "fs.read", "{\"path\":\"/work/scratch/a.txt\"}");
	ok(k, t, "fs.read", "{\"path\":\"/work/scratch/\"}");
	ok(k, t, "fs.read", "{\"path\":\"/work//scratch/./a//b\"}");
	ok(k, t, "fs.read", "{\"path\":\"/work/scratch/s/../a\"}");
	ok(k, t, "fs.read", "{\"path\":\"/data/x/y\",\"other\":\"/etc\"}");
	ok(k, t, "fs.read", "{\"path\":[\"/data/x/y\",\"/work/scratch/z\"]}");
	refused(k, t, "fs.read", "{\"path\":\"/etc/passwd\"}", CAPTOKEN_EARG,
	    "argument 'path' = '/etc/passwd' is outside the allowed prefixes "
	    "/work/scratch, /data/x");
	refused(k, t, "fs.read", "{\"path\":\"/data/xyz\"}", CAPTOKEN_EARG,
	    "outside the allowed prefixes");
	refused(k, t, "fs.read", "{\"path\":\"/data/x/../xyz\"}",
	    CAPTOKEN_EARG, "outside the allowed prefixes");
	refused(k, t, "fs.read", "{\"path\":\"/work/scratch/../../etc/"
	    "passwd\"}", CAPTOKEN_EARG, "outside the allowed prefixes");
	refused(k, t, "fs.read", "{\"path\":\"/work/scratch/..\"}",
	    CAPTOKEN_EARG, "outside the allowed prefixes");
	refused(k, t, "fs.read", "{\"path\":\"/work/scratch2\"}",
	    CAPTOKEN_EARG, "outside the allowed prefixes");
	refused(k, t, "fs.read", "{\"path\":\"/work\"}", CAPTOKEN_EARG,
	    "outside the allowed prefixes");
	refused(k, t, "fs.read", "{\"path\":\"/../work/scratch\"}",
	    CAPTOKEN_EARG, "it goes above the root");
	refused(k, t, "fs.read", "{\"path\":\"work/scratch/a\"}",
	    CAPTOKEN_EARG, "it is not an absolute path");
	refused(k, t, "fs.read", "{\"path\":\"\"}", CAPTOKEN_EARG,
	    "it is not an absolute path");
	refused(k, t, "fs.read", "{\"path\":\"/work/scratch/a\\u0000b\"}",
	    CAPTOKEN_EARG, "it contains a NUL byte");
	refused(k, t, "fs.read", "{\"path\":5}", CAPTOKEN_EARG,
	    "argument 'path' must be a string (a path)");
	refused(k, t, "fs.read", "{\"file\":\"/work/scratch/a\"}",
	    CAPTOKEN_EARG, "argument 'path' is missing; the grant "
	    "constrains it");
	refused(k, t, "fs.read", NULL, CAPTOKEN_EARG, "is missing");
	refused(k, t, "fs.read", "[]", CAPTOKEN_EARG,
	    "arguments are not an object");
	refused(k, t, "fs.read", "{\"path\":[\"/data/x/y\",\"/etc\"]}",
	    CAPTOKEN_EARG, "argument 'path'[1] = '/etc' is outside");
	refused(k, t, "fs.read", "{\"path\":[]}", CAPTOKEN_EARG,
	    "is an array of 0 elements");
	refused(k, t, "fs.read", "{\"path\":[[\"/data/x\"]]}", CAPTOKEN_EARG,
	    "must be a string");
	/* The component boundary and traversal examples of the design. */
	ok(k, d, "fs.read", "{\"path\":\"/data/x\"}");
	refused(k, d, "fs.read", "{\"path\":\"/data/../etc\"}", CAPTOKEN_EARG,
	    "argument 'path' = '/data/../etc' is outside the allowed "
	    "prefixes /data");
	refused(k, d, "fs.read", "{\"path\":\"/datax\"}", CAPTOKEN_EARG,
	    "outside");
	/* Prefixes themselves must be normalised absolute paths. */
	mint_fails(k, grant("[\"fs.*\"]",
	    "{\"fs.*\":{\"path\":{\"prefix\":[\"/data/../etc\"]}}}", 1), NULL,
	    CAPTOKEN_EMALFORMED, "args['fs.*']['path'].prefix[0] is not a "
	    "normalised path");
	mint_fails(k, grant("[\"fs.*\"]",
	    "{\"fs.*\":{\"path\":{\"prefix\":[\"/data/\"]}}}", 1), NULL,
	    CAPTOKEN_EMALFORMED, "not a normalised path");
	mint_fails(k, grant("[\"fs.*\"]",
	    "{\"fs.*\":{\"path\":{\"prefix\":[\"data\"]}}}", 1), NULL,
	    CAPTOKEN_EMALFORMED, "is not an absolute path");
	captoken_free(d);
	captoken_free(t);
	captoken_keys_free(k);
}

static void
test_captoken_url_hosts(void **state)
{
	struct captoken_keys *k = keys_seeded(seed_a);
	struct captoken *t = mint_ok(k, grant("[\"web.fetch\"]",
	    "{\"web.fetch\":{\"url\":{\"hosts\":[\"example.com\","
	    "\"api.example.org\",\"[::1]\"]}}}", 50), NULL);
	static const char *const good[] = {
		"https://example.com/", "http://EXAMPLE.com:8080/x?y#z",
		"https://example.com", "https://example.com./",
		"HTTPS://api.example.org/v1?q=@x", "http://[::1]:8000/",
		"https://example.com/a@b", "https://example.com#@evil.com",
		"https://example.com?@evil.com",
	};
	static const char *const bad[][2] = {
		{ "https://evil.com/", "has host 'evil.com', which is not "
		    "among the allowed hosts example.com, api.example.org, "
		    "[::1]" },
		{ "http://example.com@evil.com/", "has userinfo" },
		{ "http://user:pw@example.com/", "has userinfo" },
		{ "http://example.com:80@evil.com/", "has userinfo" },
		{ "http://evil.com\\\\@example.com/", "contains a backslash" },
		{ "http://example.com\\\\@evil.com/", "contains a backslash" },
		{ "https://example.com.evil.com/", "not among" },
		{ "https://evil.com/example.com", "not among" },
		{ "https://evil.com?example.com", "not among" },
		{ "https://notexample.com/", "not among" },
		{ "ftp://example.com/", "is not an http or https URL" },
		{ "file:///etc/passwd", "is not an http or https URL" },
		{ "javascript:alert(1)", "is not an http or https URL" },
		{ "//example.com/", "is not an http or https URL" },
		{ "example.com", "is not an http or https URL" },
		{ "http:example.com", "has no '//' after its scheme" },
		{ "http:/example.com", "has no '//' after its scheme" },
		{ "http:///example.com", "has an empty host" },
		{ "http://exa mple.com/", "contains a space" },
		{ "http://example.com\\t/", "contains a space, control" },
		{ "http://ex\\u00e4mple.com/", "non-ASCII" },
		{ "http://example.com%2e/", "percent sign" },
		{ "http://%65xample.com/", "percent sign" },
		{ "http://example.com:0/", "port out of range" },
		{ "http://example.com:99999/", "port out of range" },
		{ "http://example.com:/", "malformed port" },
		{ "http://example.com:8o/", "malformed port" },
		{ "http://example.com:80:80/", "malformed port" },
		{ "http://[::1/", "malformed IPv6" },
		{ "http://[::1]x/", "malformed port" },
		{ "http://example..com/", "empty label" },
		{ "http://.example.com/", "empty label" },
		{ "http://example.com../", "empty label" },
	};
	char args[256], want[256];
	size_t i;

	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		snprintf(args, sizeof args, "{\"url\":\"%s\"}", good[i]);
		ok(k, t, "web.fetch", args);
	}
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(args, sizeof args, "{\"url\":\"%s\"}", bad[i][0]);
		snprintf(want, sizeof want, "%s", bad[i][1]);
		refused(k, t, "web.fetch", args, CAPTOKEN_EARG, want);
	}
	refused(k, t, "web.fetch", "{\"url\":[\"https://example.com/\","
	    "\"https://evil.com/\"]}", CAPTOKEN_EARG, "argument 'url'[1]");
	/* Hosts must be given normalised. */
	mint_fails(k, grant("[\"web.*\"]",
	    "{\"web.*\":{\"u\":{\"hosts\":[\"Example.com\"]}}}", 1), NULL,
	    CAPTOKEN_EMALFORMED, "is not in lowercase");
	mint_fails(k, grant("[\"web.*\"]",
	    "{\"web.*\":{\"u\":{\"hosts\":[\"example.com.\"]}}}", 1), NULL,
	    CAPTOKEN_EMALFORMED, "empty label");
	mint_fails(k, grant("[\"web.*\"]",
	    "{\"web.*\":{\"u\":{\"hosts\":[\"http://example.com\"]}}}", 1),
	    NULL, CAPTOKEN_EMALFORMED, "not allowed in a host name");
	captoken_free(t);
	captoken_keys_free(k);
}

static void
test_captoken_enum(void **state)
{
	struct captoken_keys *k = keys_seeded(seed_a);
	struct captoken *t = mint_ok(k, grant("[\"db.query\"]",
	    "{\"db.query\":{\"mode\":{\"enum\":[\"read\",\"list\",1,true]}}}",
	    50), NULL);

	ok(k, t, "db.query", "{\"mode\":\"read\"}");
	ok(k, t, "db.query", "{\"mode\":1}");
	ok(k, t, "db.query", "{\"mode\":true}");
	ok(k, t, "db.query", "{\"mode\":[\"read\",\"list\"]}");
	refused(k, t, "db.query", "{\"mode\":\"write\"}", CAPTOKEN_EARG,
	    "argument 'mode' = \"write\" is not one of \"read\", \"list\", "
	    "1, true");
	refused(k, t, "db.query", "{\"mode\":\"READ\"}", CAPTOKEN_EARG,
	    "is not one of");
	refused(k, t, "db.query", "{\"mode\":1.0}", CAPTOKEN_EARG,
	    "is not one of");
	refused(k, t, "db.query", "{\"mode\":2}", CAPTOKEN_EARG,
	    "is not one of");
	refused(k, t, "db.query", "{\"mode\":false}", CAPTOKEN_EARG,
	    "is not one of");
	refused(k, t, "db.query", "{\"mode\":null}", CAPTOKEN_EARG,
	    "is not one of");
	refused(k, t, "db.query", "{\"mode\":{\"a\":1}}", CAPTOKEN_EARG,
	    "is not one of");
	refused(k, t, "db.query", "{\"mode\":[\"read\",\"write\"]}",
	    CAPTOKEN_EARG, "argument 'mode'[1] = \"write\"");
	mint_fails(k, grant("[\"db.query\"]",
	    "{\"db.query\":{\"mode\":{\"enum\":[1.5]}}}", 1), NULL,
	    CAPTOKEN_EMALFORMED, "is not a string, integer or boolean");
	mint_fails(k, grant("[\"db.query\"]",
	    "{\"db.query\":{\"mode\":{\"enum\":[]}}}", 1), NULL,
	    CAPTOKEN_EMALFORMED, "must list 1 to 64 values");
	mint_fails(k, grant("[\"db.query\"]",
	    "{\"db.query\":{\"mode\":{\"regex\":[\"x\"]}}}", 1), NULL,
	    CAPTOKEN_EMALFORMED, "unknown constraint 'regex'");
	captoken_free(t);
	captoken_keys_free(k);
}

static void
test_captoken_all_matching_constraints_apply(void **state)
{
	struct captoken_keys *k = keys_seeded(seed_a);
	struct captoken *t = mint_ok(k, grant("[\"fs.*\"]",
	    "{\"fs.*\":{\"path\":{\"prefix\":[\"/a\"]}},"
	    "\"fs.read\":{\"path\":{\"prefix\":[\"/a/b\"]},"
	    "\"mode\":{\"enum\":[\"r\"]}}}", 50), NULL);

	ok(k, t, "fs.write", "{\"path\":\"/a/c\"}");
	ok(k, t, "fs.read", "{\"path\":\"/a/b/c\",\"mode\":\"r\"}");
	refused(k, t, "fs.read", "{\"path\":\"/a/c\",\"mode\":\"r\"}",
	    CAPTOKEN_EARG, "outside the allowed prefixes /a/b");
	refused(k, t, "fs.read", "{\"path\":\"/a/b/c\",\"mode\":\"w\"}",
	    CAPTOKEN_EARG, "is not one of");
	refused(k, t, "fs.write", "{\"path\":\"/b\"}", CAPTOKEN_EARG,
	    "outside the allowed prefixes /a");
	captoken_free(t);
	captoken_keys_free(k);
}

static void
test_captoken_single_use_replay(void **state)
{
	struct captoken_keys *k = keys_seeded(seed_a);
	struct captoken *t = mint_ok(k, grant("[\"fs.read\"]", NULL, 1), NULL);
	struct captoken_uses *u = captoken_uses_new(0);
	const char *s = captoken_string(t);
	char err[512], want[128];

	/* Checking the token alone does not use it. */
	assert_int_equal(verify(k, s, NULL, NULL, NOW, u, err, sizeof err), 0);
	assert_int_equal(captoken_uses_count(u, captoken_jti(t)), 0);
	assert_int_equal(verify(k, s, "fs.read", NULL, NOW, u, err,
	    sizeof err), 0);
	assert_int_equal(captoken_uses_count(u, captoken_jti(t)), 1);
	assert_int_equal(verify(k, s, "fs.read", NULL, NOW + 1, u, err,
	    sizeof err), -CAPTOKEN_EREPLAY);
	snprintf(want, sizeof want, "token %s is single-use and was used "
	    "already", captoken_jti(t));
	assert_string_equal(err, want);
	assert_int_equal(captoken_uses_count(u, captoken_jti(t)), 1);
	/* Another token is not affected. */
	struct captoken *t2 = mint_ok(k, grant("[\"fs.read\"]", NULL, 1),
	    NULL);
	assert_int_equal(verify(k, captoken_string(t2), "fs.read", NULL, NOW,
	    u, err, sizeof err), 0);
	captoken_free(t2);
	captoken_uses_free(u);
	captoken_free(t);
	captoken_keys_free(k);
}

static void
test_captoken_max_calls(void **state)
{
	struct captoken_keys *k = keys_seeded(seed_a);
	struct captoken *t = mint_ok(k, grant("[\"fs.read\"]",
	    "{\"fs.read\":{\"p\":{\"enum\":[1]}}}", 3), NULL);
	struct captoken_uses *u = captoken_uses_new(0);
	const char *s = captoken_string(t);
	char err[512];
	int i;

	for (i = 0; i < 3; i++) {
		/* A refused call is not counted. */
		assert_int_equal(verify(k, s, "fs.read", "{\"p\":2}", NOW, u,
		    err, sizeof err), -CAPTOKEN_EARG);
		assert_int_equal(verify(k, s, "fs.write", "{\"p\":1}", NOW, u,
		    err, sizeof err), -CAPTOKEN_ETOOL);
		assert_int_equal(verify(k, s, "fs.read", "{\"p\":1}", NOW, u,
		    err, sizeof err), 0);
	}
	assert_int_equal(verify(k, s, "fs.read", "{\"p\":1}", NOW, u, err,
	    sizeof err), -CAPTOKEN_ECALLS);
	assert_non_null(strstr(err, "allows 3 calls and all were made"));
	assert_int_equal(captoken_uses_count(u, captoken_jti(t)), 3);
	captoken_uses_free(u);
	captoken_free(t);
	captoken_keys_free(k);
}

static void
test_captoken_uses_capacity_and_clock(void **state)
{
	struct captoken_keys *k = keys_seeded(seed_a);
	struct captoken_uses *u = captoken_uses_new(2);
	struct captoken *t[3];
	char err[512];
	int i;

	for (i = 0; i < 3; i++)
		t[i] = mint_ok(k, grant("[\"a.b\"]", NULL, 1), NULL);
	assert_int_equal(verify(k, captoken_string(t[0]), "a.b", NULL, NOW, u,
	    err, sizeof err), 0);
	assert_int_equal(verify(k, captoken_string(t[1]), "a.b", NULL, NOW, u,
	    err, sizeof err), 0);
	assert_int_equal(verify(k, captoken_string(t[2]), "a.b", NULL, NOW, u,
	    err, sizeof err), -CAPTOKEN_ECAPACITY);
	assert_non_null(strstr(err, "too many live tokens"));

	/* Once they expire their entries go, and so can they not return. */
	struct captoken *later;
	json_t *g = grant("[\"a.b\"]", NULL, 1);
	char e2[512] = "";

	json_object_set_new(g, "exp", json_integer(NOW + 30 * MIN));
	assert_int_equal(captoken_mint(k, g, NULL, NOW + 15 * MIN, &later,
	    e2, sizeof e2), 0);
	json_decref(g);
	assert_int_equal(verify(k, captoken_string(later), "a.b", NULL,
	    NOW + 15 * MIN, u, err, sizeof err), 0);
	assert_int_equal(captoken_uses_count(u, captoken_jti(t[0])), 0);
	/* The table's clock does not go back: t[0] stays expired. */
	assert_int_equal(verify(k, captoken_string(t[0]), "a.b", NULL, NOW, u,
	    err, sizeof err), -CAPTOKEN_EEXPIRED);
	for (i = 0; i < 3; i++)
		captoken_free(t[i]);
	captoken_free(later);
	captoken_uses_free(u);

	/* Many tokens: the table grows. */
	u = captoken_uses_new(0);
	for (i = 0; i < 300; i++) {
		struct captoken *x = mint_ok(k, grant("[\"a.b\"]", NULL, 2),
		    NULL);

		assert_int_equal(verify(k, captoken_string(x), "a.b", NULL,
		    NOW, u, err, sizeof err), 0);
		assert_int_equal(verify(k, captoken_string(x), "a.b", NULL,
		    NOW, u, err, sizeof err), 0);
		assert_int_equal(verify(k, captoken_string(x), "a.b", NULL,
		    NOW, u, err, sizeof err), -CAPTOKEN_ECALLS);
		captoken_free(x);
	}
	captoken_uses_free(u);
	captoken_keys_free(k);
}

static struct captoken *
parent_token(struct captoken_keys *k)
{
	return mint_ok(k, grant("[\"fs.*\",\"web.fetch\",\"db.query\"]",
	    "{\"fs.*\":{\"path\":{\"prefix\":[\"/work\"]}},"
	    "\"web.fetch\":{\"url\":{\"hosts\":[\"a.com\",\"b.com\"]}},"
	    "\"db.query\":{\"mode\":{\"enum\":[\"r\",\"l\"]}}}", 10), NULL);
}

/* A child grant of run r1, node root/c. */
static json_t *
child(const char *tools, const char *args, int max_calls, int64_t exp)
{
	json_t *g = grant(tools, args, max_calls);

	json_object_set_new(g, "node", json_string("root/c"));
	json_object_set_new(g, "exp", json_integer(exp));
	return g;
}

static void
test_captoken_child_narrower_ok(void **state)
{
	struct captoken_keys *k = keys_seeded(seed_a);
	struct captoken *p = parent_token(k), *c;
	int64_t exp = NOW + 5 * MIN;

	c = mint_ok(k, child("[\"fs.read\"]",
	    "{\"fs.read\":{\"path\":{\"prefix\":[\"/work/scratch\"]}}}", 5,
	    exp), p);
	assert_string_equal(captoken_parent(c), captoken_jti(p));
	assert_string_equal(captoken_node(c), "root/c");
	ok(k, c, "fs.read", "{\"path\":\"/work/scratch/a\"}");
	captoken_free(c);
	/* The same constraint under a broader pattern is narrower still. */
	captoken_free(mint_ok(k, child("[\"fs.read\",\"fs.list\"]",
	    "{\"fs.*\":{\"path\":{\"prefix\":[\"/work\"]}}}", 10,
	    NOW + 10 * MIN), p));
	/* Constraints of tools the child does not get lapse. */
	captoken_free(mint_ok(k, child("[\"web.fetch\"]",
	    "{\"web.fetch\":{\"url\":{\"hosts\":[\"b.com\"]}}}", 1, exp), p));
	captoken_free(mint_ok(k, child("[\"db.query\"]",
	    "{\"db.*\":{\"mode\":{\"enum\":[\"l\"],\"prefix\":[\"/x\"]}}}", 1,
	    exp), p));
	/* The same node is fine too, and grandchildren narrow children. */
	json_t *g = child("[\"fs.read\"]",
	    "{\"fs.*\":{\"path\":{\"prefix\":[\"/work/a\"]}}}", 2, exp);
	json_object_set_new(g, "node", json_string("root"));
	c = mint_ok(k, g, p);
	struct captoken *gc = mint_ok(k, child("[\"fs.read\"]",
	    "{\"fs.read\":{\"path\":{\"prefix\":[\"/work/a/b\"]}}}", 1, exp),
	    c);
	assert_string_equal(captoken_parent(gc), captoken_jti(c));
	mint_fails(k, child("[\"fs.read\"]",
	    "{\"fs.read\":{\"path\":{\"prefix\":[\"/work/b\"]}}}", 1, exp), c,
	    CAPTOKEN_EWIDER, "prefix '/work/b' is outside the parent's "
	    "prefix /work/a");
	captoken_free(gc);
	captoken_free(c);
	captoken_free(p);
	captoken_keys_free(k);
}

static void
test_captoken_child_wider_refused(void **state)
{
	struct captoken_keys *k = keys_seeded(seed_a);
	struct captoken *p = parent_token(k);
	int64_t exp = NOW + 5 * MIN;
	const char *fsargs = "{\"fs.*\":{\"path\":{\"prefix\":[\"/work\"]}}}";
	json_t *g;

	/* Tools. */
	mint_fails(k, child("[\"fs.read\",\"sh.exec\"]", fsargs, 1, exp), p,
	    CAPTOKEN_EWIDER, "child grant is wider than its parent: tool "
	    "'sh.exec' is not granted by the parent (parent grants: fs.*, "
	    "web.fetch, db.query)");
	mint_fails(k, child("[\"web.*\"]",
	    "{\"web.*\":{\"url\":{\"hosts\":[\"a.com\"]}}}", 1, exp), p,
	    CAPTOKEN_EWIDER, "tool 'web.*' is not granted by the parent");
	/* Constraints: dropped, widened, of another kind. */
	mint_fails(k, child("[\"fs.read\"]", NULL, 1, exp), p,
	    CAPTOKEN_EWIDER, "the parent constrains argument 'path' of "
	    "'fs.*' but the child grants 'fs.read' without that constraint");
	mint_fails(k, child("[\"fs.read\"]",
	    "{\"fs.read\":{\"file\":{\"prefix\":[\"/work\"]}}}", 1, exp), p,
	    CAPTOKEN_EWIDER, "without that constraint");
	mint_fails(k, child("[\"fs.*\"]",
	    "{\"fs.read\":{\"path\":{\"prefix\":[\"/work\"]}}}", 1, exp), p,
	    CAPTOKEN_EWIDER, "the parent constrains argument 'path' of 'fs.*' "
	    "but the child grants 'fs.*'");
	mint_fails(k, child("[\"fs.read\"]",
	    "{\"fs.*\":{\"path\":{\"prefix\":[\"/\"]}}}", 1, exp), p,
	    CAPTOKEN_EWIDER, "argument 'path' of 'fs.read': prefix '/' is "
	    "outside the parent's prefix /work");
	mint_fails(k, child("[\"fs.read\"]",
	    "{\"fs.*\":{\"path\":{\"prefix\":[\"/work/a\",\"/workx\"]}}}", 1,
	    exp), p, CAPTOKEN_EWIDER, "prefix '/workx' is outside");
	mint_fails(k, child("[\"web.fetch\"]",
	    "{\"web.fetch\":{\"url\":{\"hosts\":[\"a.com\",\"c.com\"]}}}", 1,
	    exp), p, CAPTOKEN_EWIDER, "argument 'url' of 'web.fetch': host "
	    "'c.com' is outside the parent's hosts a.com, b.com");
	mint_fails(k, child("[\"db.query\"]",
	    "{\"db.query\":{\"mode\":{\"enum\":[\"r\",\"w\"]}}}", 1, exp), p,
	    CAPTOKEN_EWIDER, "enum value \"w\" is not among the parent's "
	    "\"r\", \"l\"");
	mint_fails(k, child("[\"db.query\"]",
	    "{\"db.query\":{\"mode\":{\"prefix\":[\"/r\"]}}}", 1, exp), p,
	    CAPTOKEN_EWIDER, "the parent requires 'enum' (\"r\", \"l\")");
	/* Limits. */
	mint_fails(k, child("[\"fs.read\"]", fsargs, 11, exp), p,
	    CAPTOKEN_EWIDER, "max_calls 11 exceeds the parent's 10");
	mint_fails(k, child("[\"fs.read\"]", fsargs, 1, NOW + 10 * MIN + 1),
	    p, CAPTOKEN_EWIDER, "it expires at 2025-11-23T09:36:40.001Z, "
	    "after the parent (2025-11-23T09:36:40.000Z)");
	/* Run and node. */
	g = child("[\"fs.read\"]", fsargs, 1, exp);
	json_object_set_new(g, "run", json_string("r2"));
	mint_fails(k, g, p, CAPTOKEN_EWIDER, "run 'r2' is not the parent's "
	    "run 'r1'");
	g = child("[\"fs.read\"]", fsargs, 1, exp);
	json_object_set_new(g, "node", json_string("rootx/c"));
	mint_fails(k, g, p, CAPTOKEN_EWIDER, "node 'rootx/c' is not the "
	    "parent's node 'root' or below it");
	g = child("[\"fs.read\"]", fsargs, 1, exp);
	json_object_set_new(g, "node", json_string("other"));
	mint_fails(k, g, p, CAPTOKEN_EWIDER, "node 'other'");
	captoken_free(p);
	captoken_keys_free(k);
}

static void
test_captoken_bad_grants(void **state)
{
	struct captoken_keys *k = keys_seeded(seed_a);
	json_t *g;

	g = grant("[\"a.b\"]", NULL, 1);
	json_object_set_new(g, "jti", json_string("x"));
	mint_fails(k, g, NULL, CAPTOKEN_EMALFORMED, "bad grant: unknown field "
	    "'jti' (expected run, node, tools, args, max_calls, exp)");
	g = grant("[\"a.b\"]", NULL, 1);
	json_object_del(g, "exp");
	mint_fails(k, g, NULL, CAPTOKEN_EMALFORMED, "claim 'exp' is missing");
	g = grant("[\"a.b\"]", NULL, 1);
	json_object_set_new(g, "exp", json_integer(NOW));
	mint_fails(k, g, NULL, CAPTOKEN_EMALFORMED, "after 'iat'");
	g = grant("[\"a.b\"]", NULL, 1);
	json_object_set_new(g, "exp", json_integer(NOW +
	    CAPTOKEN_MAX_LIFETIME_MS + 1));
	mint_fails(k, g, NULL, CAPTOKEN_EMALFORMED, "by at most");
	g = grant("[\"a.b\"]", NULL, 1);
	json_object_set_new(g, "exp", json_real(NOW + 1000.0));
	mint_fails(k, g, NULL, CAPTOKEN_EMALFORMED, "claim 'exp'");
	mint_fails(k, grant("[]", NULL, 1), NULL, CAPTOKEN_EMALFORMED,
	    "claim 'tools' must list 1 to 64");
	mint_fails(k, grant("[\"a.b\"]", NULL, 0), NULL, CAPTOKEN_EMALFORMED,
	    "claim 'max_calls' must be an integer from 1 to 1000000");
	mint_fails(k, grant("[\"a.b\"]", NULL, CAPTOKEN_MAX_CALLS + 1), NULL,
	    CAPTOKEN_EMALFORMED, "max_calls");
	mint_fails(k, grant("[\"a.b\"]", "{\"a.b\":{}}", 1), NULL,
	    CAPTOKEN_EMALFORMED, "args['a.b'] must be an object of 1");
	mint_fails(k, grant("[\"a.b\"]", "{\"a b\":{\"x\":{\"enum\":[1]}}}",
	    1), NULL, CAPTOKEN_EMALFORMED, "'a b' is not a tool pattern");
	g = grant("[\"a.b\"]", NULL, 1);
	json_object_set_new(g, "run", json_string(""));
	mint_fails(k, g, NULL, CAPTOKEN_EMALFORMED, "claim 'run'");
	g = grant("[\"a.b\"]", NULL, 1);
	json_object_set_new(g, "node", json_string("a\nb"));
	mint_fails(k, g, NULL, CAPTOKEN_EMALFORMED, "claim 'node'");
	g = json_array();
	mint_fails(k, g, NULL, CAPTOKEN_EMALFORMED, "not a JSON object");

	/* A grant too large to fit a token. */
	json_t *pre = json_array();
	char p[300];
	int i;

	for (i = 0; i < 60; i++) {
		snprintf(p, sizeof p, "/%0250d", i);
		json_array_append_new(pre, json_string(p));
	}
	g = grant("[\"a.b\"]", NULL, 1);
	json_object_set_new(g, "args", json_pack("{s:{s:{s:o}}}", "a.b", "p",
	    "prefix", pre));
	mint_fails(k, g, NULL, CAPTOKEN_EMALFORMED, "over the limit of 16384");
	captoken_keys_free(k);
}

static void
test_captoken_truncated_and_garbage(void **state)
{
	struct captoken_keys *k = keys_seeded(seed_a);
	struct captoken *t = mint_ok(k, grant("[\"fs.read\"]", NULL, 1), NULL);
	struct captoken_call call = { "r1", NULL, "fs.read", NULL };
	const char *s = captoken_string(t);
	size_t n = strlen(s), i, j, len;
	char err[512], *buf = malloc(CAPTOKEN_MAX_LEN + 2);
	unsigned int seed = 12345;
	int r;

	for (i = 0; i < n; i++) {
		r = captoken_verify(k, s, i, &call, NOW, NULL, NULL, err,
		    sizeof err);
		if (r == 0)
			fail_msg("prefix of %zu bytes verifies", i);
		assert_true(r == -CAPTOKEN_EMALFORMED || r == -CAPTOKEN_ESIG);
	}
	assert_int_equal(captoken_verify(k, s, n, &call, NOW, NULL, NULL, err,
	    sizeof err), 0);
	/* Trailing bytes, a padded signature, stray bits. */
	snprintf(buf, CAPTOKEN_MAX_LEN, "%s=", s);
	assert_int_equal(verify(k, buf, "fs.read", NULL, NOW, NULL, err,
	    sizeof err), -CAPTOKEN_EMALFORMED);
	snprintf(buf, CAPTOKEN_MAX_LEN, "%s.", s);
	assert_int_equal(verify(k, buf, "fs.read", NULL, NOW, NULL, err,
	    sizeof err), -CAPTOKEN_EMALFORMED);
	snprintf(buf, CAPTOKEN_MAX_LEN, "%s", s);
	buf[n - 1] = 'B';	/* the last 4 bits must be zero */
	assert_int_equal(verify(k, buf, "fs.read", NULL, NOW, NULL, err,
	    sizeof err), -CAPTOKEN_EMALFORMED);
	snprintf(buf, CAPTOKEN_MAX_LEN, "WCT1%s", s + 4);
	assert_int_equal(verify(k, buf, "fs.read", NULL, NOW, NULL, err,
	    sizeof err), -CAPTOKEN_EMALFORMED);
	assert_non_null(strstr(err, "does not start with 'wct1.'"));
	/* A NUL inside. */
	memcpy(buf, s, n);
	buf[40] = '\0';
	assert_int_not_equal(captoken_verify(k, buf, n, &call, NOW, NULL,
	    NULL, err, sizeof err), 0);
	/* Too long, before anything is decoded. */
	memset(buf, 'A', CAPTOKEN_MAX_LEN + 1);
	memcpy(buf, s, n);
	assert_int_equal(captoken_verify(k, buf, CAPTOKEN_MAX_LEN + 1, &call,
	    NOW, NULL, NULL, err, sizeof err), -CAPTOKEN_EMALFORMED);
	assert_non_null(strstr(err, "over the limit of 16384"));
	/* Random bytes, and random base64url after a real header. */
	for (i = 0; i < 2000; i++) {
		len = (size_t)rand_r(&seed) % 300;
		for (j = 0; j < len; j++)
			buf[j] = (char)rand_r(&seed);
		if (i % 2 == 1 && len > 22) {
			memcpy(buf, s, 22);
			for (j = 22; j < len; j++)
				buf[j] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghi"
				    "jklmnopqrstuvwxyz0123456789-_."[
				    rand_r(&seed) % 65];
		}
		assert_int_not_equal(captoken_verify(k, buf, len, &call, NOW,
		    NULL, NULL, err, sizeof err), 0);
	}
	free(buf);
	captoken_free(t);
	captoken_keys_free(k);
}

static void
test_captoken_signed_but_bad_claims(void **state)
{
	struct captoken_keys *k = keys_seeded(seed_a);
	const char *kid = captoken_keys_current(k);
	static const char *const bad[][2] = {
		{ "{ \"v\":1}", "claims are not in canonical form" },
		{ "{\"v\":1,\"run\":\"r1\"}", "not in canonical form" },
		{ "{\"v\":1,\"v\":1}", "claims are not JSON" },
		{ "[1]", "claims are not a JSON object" },
		{ "nul", "claims are not JSON" },
		{ "{\"run\":\"\\u0072\"}", "canonical" },
	};
	char err[512], *c, *f;
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		f = forge(seed_a, kid, bad[i][0]);
		assert_int_equal(verify(k, f, "fs.read", NULL, NOW, NULL, err,
		    sizeof err), -CAPTOKEN_EMALFORMED);
		if (strstr(err, bad[i][1]) == NULL)
			fail_msg("%s: %s", bad[i][0], err);
		free(f);
	}
	/* Well-formed and signed, but with claims this build refuses. */
	static const char *const extra[][2] = {
		{ "\"aud\":\"x\",", "unknown claim 'aud'" },
		{ "\"args\":{\"fs.read\":{\"p\":{\"glob\":[\"*\"]}}},",
		    "unknown constraint 'glob'" },
		{ "\"parent\":\"xyz\",", "claim 'parent' must be 32" },
		{ "\"max_calls\":1.5,", "claim 'max_calls'" },
		{ "\"v\":2,", "claim 'v' must be 1" },
		{ "\"tools\":[\"fs.read\",5],", "tools[1]" },
		{ "\"exp\":1,", "claim 'exp'" },
	};
	json_t *base, *j;
	char *ex;

	for (i = 0; i < sizeof extra / sizeof extra[0]; i++) {
		/* Valid claims with one field added or replaced, canonical. */
		c = claims_text("");
		base = json_loads(c, 0, NULL);
		free(c);
		if (asprintf(&ex, "{%.*s}", (int)strlen(extra[i][0]) - 1,
		    extra[i][0]) < 0)
			abort();
		j = json_loads(ex, 0, NULL);
		free(ex);
		assert_non_null(base);
		assert_non_null(j);
		json_object_update(base, j);
		json_decref(j);
		c = json_dumps(base, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(base);
		f = forge(seed_a, kid, c);
		assert_int_equal(verify(k, f, "fs.read", NULL, NOW, NULL, err,
		    sizeof err), -CAPTOKEN_EMALFORMED);
		if (strstr(err, extra[i][1]) == NULL)
			fail_msg("%s: %s", c, err);
		free(f);
		free(c);
	}
	c = claims_text("");
	f = forge(seed_a, kid, c);
	assert_int_equal(verify(k, f, "fs.read", NULL, NOW, NULL, err,
	    sizeof err), 0);
	free(f);
	free(c);
	captoken_keys_free(k);
}

/* Key files. */

static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static char *
tmpdir(void)
{
	char *d = strdup("/tmp/test_captoken.XXXXXX");

	if (mkdtemp(d) == NULL)
		fail_msg("mkdtemp: %s", strerror(errno));
	return d;
}

static void
rmtree(char *d)
{
	nftw(d, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(d);
}

static mode_t
mode_of(const char *dir, const char *kid, const char *ext)
{
	char p[512];
	struct stat st;

	snprintf(p, sizeof p, "%s/state/keys/%s%s", dir, kid, ext);
	if (stat(p, &st) != 0)
		return (mode_t)-1;
	return st.st_mode & 07777;
}

static void
test_captoken_key_files(void **state)
{
	char *d = tmpdir(), sd[256], p[512], err[512] = "";
	char kid[CAPTOKEN_KID_LEN + 1];
	struct captoken_keys *k, *k2;
	struct stat st;

	snprintf(sd, sizeof sd, "%s/state", d);
	assert_int_equal(captoken_keys_load_or_create(sd, &k, err,
	    sizeof err), 0);
	snprintf(kid, sizeof kid, "%s", captoken_keys_current(k));
	assert_int_equal(mode_of(d, "", "") & 0777, 0700);
	assert_int_equal(mode_of(d, kid, ".key"), 0600);
	assert_int_equal(mode_of(d, kid, ".pub"), 0644);
	assert_int_equal(mode_of(d, "current", ""), 0644);
	/* The key id is the first 16 hex digits of SHA-256(public key). */
	char pub[CAPTOKEN_PUBKEY_LEN + 1];
	unsigned char raw[32], md[32];
	unsigned int mdlen = 32, i;

	assert_int_equal(captoken_pubkey_export(k, kid, pub, err, sizeof err),
	    0);
	for (i = 0; i < 32; i++)
		sscanf(pub + 2 * i, "%2hhx", &raw[i]);
	EVP_Digest(raw, 32, md, &mdlen, EVP_sha256(), NULL);
	for (i = 0; i < 8; i++) {
		snprintf(p, 3, "%02x", md[i]);
		assert_memory_equal(p, kid + 2 * i, 2);
	}

	/* Loading again finds the same key. */
	assert_int_equal(captoken_keys_load_or_create(sd, &k2, err,
	    sizeof err), 0);
	assert_string_equal(captoken_keys_current(k2), kid);
	captoken_keys_free(k2);

	/* A private key others can read is refused, and so is the dir. */
	snprintf(p, sizeof p, "%s/keys/%s.key", sd, kid);
	assert_int_equal(chmod(p, 0644), 0);
	k2 = NULL;
	assert_int_equal(captoken_keys_load_or_create(sd, &k2, err,
	    sizeof err), -1);
	assert_null(k2);
	assert_non_null(strstr(err, ".key has mode 0644; it must not be "
	    "accessible by group or others (chmod 600)"));
	assert_int_equal(chmod(p, 0640), 0);
	assert_int_equal(captoken_keys_load_or_create(sd, &k2, err,
	    sizeof err), -1);
	assert_int_equal(chmod(p, 0600), 0);
	snprintf(p, sizeof p, "%s/keys", sd);
	assert_int_equal(chmod(p, 0755), 0);
	assert_int_equal(captoken_keys_load_or_create(sd, &k2, err,
	    sizeof err), -1);
	assert_non_null(strstr(err, "has mode 0755; group and others must "
	    "have no access"));
	assert_int_equal(chmod(p, 0700), 0);
	/* A public key or current file others can write is refused. */
	snprintf(p, sizeof p, "%s/keys/current", sd);
	assert_int_equal(chmod(p, 0666), 0);
	assert_int_equal(captoken_keys_load_or_create(sd, &k2, err,
	    sizeof err), -1);
	assert_non_null(strstr(err, "must not be writable by group or "
	    "others"));
	assert_int_equal(chmod(p, 0644), 0);
	assert_int_equal(captoken_keys_load_or_create(sd, &k2, err,
	    sizeof err), 0);
	captoken_keys_free(k2);

	/* A symlinked key file is refused. */
	char q[512];

	snprintf(p, sizeof p, "%s/keys/%s.key", sd, kid);
	snprintf(q, sizeof q, "%s/keys/%s.real", sd, kid);
	assert_int_equal(rename(p, q), 0);
	assert_int_equal(symlink(q, p), 0);
	assert_int_equal(captoken_keys_load_or_create(sd, &k2, err,
	    sizeof err), -1);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(rename(q, p), 0);

	/* A key file owned by someone else (only root can make one). */
	if (geteuid() == 0) {
		assert_int_equal(chown(p, 65534, 65534), 0);
		assert_int_equal(captoken_keys_load_or_create(sd, &k2, err,
		    sizeof err), -1);
		assert_non_null(strstr(err, "is owned by uid 65534, not by "
		    "this user"));
		assert_int_equal(chown(p, 0, 0), 0);
	}
	/* A key file whose content does not match its name. */
	snprintf(q, sizeof q, "%s/keys/%s.pub", sd, kid);
	FILE *fp = fopen(q, "w");
	fputs("00112233445566778899aabbccddeeff"
	    "00112233445566778899aabbccddeeff\n", fp);
	fclose(fp);
	assert_int_equal(captoken_keys_load_or_create(sd, &k2, err,
	    sizeof err), -1);
	assert_non_null(strstr(err, ".pub holds key"));
	fp = fopen(q, "w");
	fprintf(fp, "%s\n", pub);
	fclose(fp);
	assert_int_equal(captoken_keys_load_or_create(sd, &k2, err,
	    sizeof err), 0);
	captoken_keys_free(k2);
	assert_int_equal(stat(q, &st), 0);

	captoken_keys_free(k);
	rmtree(d);
}

static void
test_captoken_key_rotation(void **state)
{
	char *d = tmpdir(), sd[256], err[512] = "";
	char old[CAPTOKEN_KID_LEN + 1], cur[CAPTOKEN_KID_LEN + 1];
	struct captoken_keys *k, *k2, *w;
	struct captoken *t1, *t2;
	json_t *pubs, *v;
	size_t i;

	snprintf(sd, sizeof sd, "%s/state", d);
	assert_int_equal(captoken_keys_load_or_create(sd, &k, err,
	    sizeof err), 0);
	snprintf(old, sizeof old, "%s", captoken_keys_current(k));
	t1 = mint_ok(k, grant("[\"fs.read\"]", NULL, 5), NULL);
	assert_int_equal(captoken_keys_rotate(k, cur, err, sizeof err), 0);
	assert_string_not_equal(cur, old);
	assert_string_equal(captoken_keys_current(k), cur);
	t2 = mint_ok(k, grant("[\"fs.read\"]", NULL, 5), NULL);
	assert_string_equal(captoken_kid(t2), cur);
	ok(k, t1, "fs.read", NULL);
	ok(k, t2, "fs.read", NULL);
	/* The old private key is gone; its public key is kept. */
	assert_int_equal(mode_of(d, old, ".key"), (mode_t)-1);
	assert_int_equal(mode_of(d, old, ".pub"), 0644);
	assert_int_equal(mode_of(d, cur, ".key"), 0600);

	/* A fresh load and a worker with the public keys verify both. */
	assert_int_equal(captoken_keys_load_or_create(sd, &k2, err,
	    sizeof err), 0);
	assert_string_equal(captoken_keys_current(k2), cur);
	ok(k2, t1, "fs.read", NULL);
	ok(k2, t2, "fs.read", NULL);
	pubs = captoken_keys_public(k2);
	assert_int_equal(json_array_size(pubs), 2);
	w = captoken_keys_new();
	json_array_foreach(pubs, i, v)
		assert_int_equal(captoken_pubkey_import(w,
		    json_string_value(v), NULL, err, sizeof err), 0);
	json_decref(pubs);
	ok(w, t1, "fs.read", NULL);
	ok(w, t2, "fs.read", NULL);

	/* Retired, the old key's tokens are refused as unknown. */
	assert_int_equal(captoken_keys_retire(k, cur, err, sizeof err), -1);
	assert_non_null(strstr(err, "is the current key"));
	assert_int_equal(captoken_keys_retire(k, old, err, sizeof err), 0);
	assert_int_equal(mode_of(d, old, ".pub"), (mode_t)-1);
	refused(k, t1, "fs.read", NULL, CAPTOKEN_EKID, "token signed by "
	    "unknown key");
	ok(k, t2, "fs.read", NULL);
	captoken_keys_free(k2);
	assert_int_equal(captoken_keys_load_or_create(sd, &k2, err,
	    sizeof err), 0);
	refused(k2, t1, "fs.read", NULL, CAPTOKEN_EKID, "unknown key");
	ok(k2, t2, "fs.read", NULL);
	assert_int_equal(captoken_keys_retire(w, old, err, sizeof err), 0);
	refused(w, t1, "fs.read", NULL, CAPTOKEN_EKID, "unknown key");

	/* A key directory holds a bounded number of keys. */
	int n;

	for (n = 0; captoken_keys_rotate(k, NULL, err, sizeof err) == 0; n++)
		assert_true(n < CAPTOKEN_MAX_KEYS);
	assert_int_equal(n, CAPTOKEN_MAX_KEYS - 1);	/* one key left */
	assert_non_null(strstr(err, "holds 64 keys already; retire old ones "
	    "first"));
	assert_int_equal(captoken_keys_retire(k, cur, err, sizeof err), 0);
	assert_int_equal(captoken_keys_rotate(k, NULL, err, sizeof err), 0);
	captoken_keys_free(k2);
	assert_int_equal(captoken_keys_load_or_create(sd, &k2, err,
	    sizeof err), 0);
	assert_string_equal(captoken_keys_current(k2),
	    captoken_keys_current(k));
	refused(k2, t2, "fs.read", NULL, CAPTOKEN_EKID, "unknown key");

	/* A keyring with no directory cannot rotate. */
	struct captoken_keys *m = keys_seeded(seed_b);

	assert_int_equal(captoken_keys_rotate(m, NULL, err, sizeof err), -1);
	refused(m, t2, "fs.read", NULL, CAPTOKEN_EKID, "unknown key");
	captoken_keys_free(m);

	captoken_keys_free(w);
	captoken_keys_free(k2);
	captoken_free(t1);
	captoken_free(t2);
	captoken_keys_free(k);
	rmtree(d);
}

static void
test_captoken_pubkey_import_checks(void **state)
{
	struct captoken_keys *w = captoken_keys_new();
	char err[512], pub[CAPTOKEN_PUBKEY_LEN + 1];
	char hex[80];
	int i;

	assert_int_equal(captoken_pubkey_import(w, "abcd", NULL, err,
	    sizeof err), -1);
	assert_non_null(strstr(err, "is not 64 hex digits"));
	assert_int_equal(captoken_pubkey_import(w, "zz23456789abcdef0123456789"
	    "abcdef0123456789abcdef0123456789abcdef", NULL, err, sizeof err),
	    -1);
	assert_int_equal(captoken_pubkey_export(w, NULL, pub, err,
	    sizeof err), -1);
	assert_int_equal(captoken_pubkey_export(w, "0000000000000000", pub,
	    err, sizeof err), -1);
	/* A keyring holds a bounded number of keys. */
	for (i = 0; i < CAPTOKEN_MAX_KEYS + 1; i++) {
		struct captoken_keys *k;

		captoken_keys_from_seed(NULL, &k, err, sizeof err);
		captoken_pubkey_export(k, NULL, hex, err, sizeof err);
		captoken_keys_free(k);
		if (i < CAPTOKEN_MAX_KEYS)
			assert_int_equal(captoken_pubkey_import(w, hex, NULL,
			    err, sizeof err), 0);
		else
			assert_int_equal(captoken_pubkey_import(w, hex, NULL,
			    err, sizeof err), -1);
	}
	captoken_keys_free(w);
}

static void
test_captoken_reason_names(void **state)
{
	int i, j;

	for (i = 0; i <= CAPTOKEN_EKEY; i++)
		for (j = 0; j < i; j++)
			assert_string_not_equal(captoken_reason_name(i),
			    captoken_reason_name(j));
	assert_string_equal(captoken_reason_name(-CAPTOKEN_ESIG),
	    "signature");
	assert_string_equal(captoken_reason_name(99), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test(f)
		T(test_captoken_round_trip),
		T(test_captoken_forged_signature),
		T(test_captoken_other_run_and_node),
		T(test_captoken_expired),
		T(test_captoken_tool_outside_grant),
		T(test_captoken_wildcard_is_whole_server),
		T(test_captoken_path_prefix),
		T(test_captoken_url_hosts),
		T(test_captoken_enum),
		T(test_captoken_all_matching_constraints_apply),
		T(test_captoken_single_use_replay),
		T(test_captoken_max_calls),
		T(test_captoken_uses_capacity_and_clock),
		T(test_captoken_child_narrower_ok),
		T(test_captoken_child_wider_refused),
		T(test_captoken_bad_grants),
		T(test_captoken_truncated_and_garbage),
		T(test_captoken_signed_but_bad_claims),
		T(test_captoken_key_files),
		T(test_captoken_key_rotation),
		T(test_captoken_pubkey_import_checks),
		T(test_captoken_reason_names),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
