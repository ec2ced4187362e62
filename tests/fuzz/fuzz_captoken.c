/*
 * fuzz_captoken.c: fuzz the capability token parser and argument checks.
 *
 * The first byte of an input picks what the rest is:
 *   0  a token, verified as a worker would
 *   1  claims text, signed here with the fuzzing key so that it gets past
 *      the signature into the claims parser; a token that verifies must
 *      also mint a child identical to itself (a grant is its own subset)
 *   2  "tool\nargs-json", checked against a token with every kind of
 *      constraint
 *   3  "grant-json\ntool\nargs-json": a child grant minted under that
 *      token; if the child allows the call, the parent must allow it too
 *
 * Built with -DWEFT_LIBFUZZER and -fsanitize=fuzzer it is a libFuzzer
 * target.  Otherwise main() runs the files or directories named on the
 * command line, or with no arguments a built-in corpus and seeded random
 * mutations of it (WEFT_FUZZ_ITERS, default 10000; WEFT_FUZZ_SEED for
 * other ones): that is what make check runs.  --write-corpus DIR writes
 * the built-in corpus for libFuzzer.
 */
#include "config.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "engine/captoken.h"
#define FZ_OWN_DRIVER		/* its mutations know token syntax */
#include "tests/fuzz/fuzz_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FZ_NOW	1763890000000LL

static const unsigned char fz_seed[32] = { 'w', 'e', 'f', 't', 'f', 'u', 'z' };
static struct captoken_keys *fz_keys;
static struct captoken *fz_tok;		/* every kind of constraint */

static void
fz_init(void)
{
	json_t *g;
	char err[512];

	if (fz_keys != NULL)
		return;
	if (captoken_keys_from_seed(fz_seed, &fz_keys, err, sizeof err) != 0)
		abort();
	g = json_loads("{\"run\":\"r1\",\"node\":\"root\",\"tools\":[\"fs.*\","
	    "\"web.fetch\",\"db.query\"],\"args\":{\"fs.*\":{\"path\":"
	    "{\"prefix\":[\"/work/scratch\",\"/data\"]}},\"web.fetch\":"
	    "{\"url\":{\"hosts\":[\"example.com\",\"[::1]\"]}},\"db.query\":"
	    "{\"mode\":{\"enum\":[\"read\",1,true]}}},\"max_calls\":3,"
	    "\"exp\":1763890600000}", 0, NULL);
	if (g == NULL || captoken_mint(fz_keys, g, NULL, FZ_NOW, &fz_tok, err,
	    sizeof err) != 0)
		abort();
	json_decref(g);
}

static void
fz_b64u(const unsigned char *in, size_t n, char *out)
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

/* A token carrying claims bytes, signed with the fuzzing key. */
static char *
fz_sign(const uint8_t *claims, size_t n)
{
	EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL,
	    fz_seed, 32);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char sig[64];
	size_t siglen = sizeof sig, len;
	char *s = malloc(n * 4 / 3 + 200);

	if (pk == NULL || ctx == NULL || s == NULL)
		abort();
	len = (size_t)sprintf(s, "wct1.%s.", captoken_keys_current(fz_keys));
	fz_b64u(claims, n, s + len);
	len = strlen(s);
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, pk) != 1 ||
	    EVP_DigestSign(ctx, sig, &siglen, (unsigned char *)s, len) != 1)
		abort();
	s[len++] = '.';
	fz_b64u(sig, sizeof sig, s + len);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return s;
}

/* Split "a\nb" at the first newline; NULL if there is none. */
static const uint8_t *
fz_line(const uint8_t *p, size_t n, size_t *len)
{
	const uint8_t *nl = memchr(p, '\n', n);

	if (nl == NULL)
		return NULL;
	*len = (size_t)(nl - p);
	return nl + 1;
}

/* Verify a call with tool and args (n bytes of JSON) against token t. */
static int
fz_call(const struct captoken *t, const char *tool, const json_t *args)
{
	struct captoken_call call = { "r1", NULL, tool, args };
	const char *ts = captoken_string(t);
	char err[512];

	return captoken_verify(fz_keys, ts, strlen(ts), &call, FZ_NOW, NULL,
	    NULL, err, sizeof err);
}

/* A child that allows a call its parent refuses is a narrowing bug. */
static void
fz_child(const uint8_t *p, size_t n)
{
	const uint8_t *q, *r;
	size_t glen, tlen;
	struct captoken *c = NULL;
	json_t *g, *args;
	char err[512], *tool;

	if ((q = fz_line(p, n, &glen)) == NULL ||
	    (r = fz_line(q, n - (size_t)(q - p), &tlen)) == NULL)
		return;
	if ((g = json_loadb((const char *)p, glen, 0, NULL)) == NULL)
		return;
	if (captoken_mint(fz_keys, g, fz_tok, FZ_NOW, &c, err,
	    sizeof err) == 0) {
		tool = strndup((const char *)q, tlen);
		args = json_loadb((const char *)r, n - (size_t)(r - p),
		    JSON_DECODE_ANY, NULL);
		if (fz_call(c, tool, args) == 0 &&
		    fz_call(fz_tok, tool, args) != 0) {
			fprintf(stderr, "child %s allows %s, parent does "
			    "not\n", captoken_string(c), tool);
			abort();
		}
		free(tool);
		json_decref(args);
		captoken_free(c);
	}
	json_decref(g);
}

/* A verified token is a subset of itself: minting its twin must work. */
static void
fz_self_narrow(const struct captoken *t)
{
	json_t *g = json_deep_copy(captoken_claims(t));
	struct captoken *c = NULL;
	char err[512];
	int r;

	json_object_del(g, "v");
	json_object_del(g, "iat");
	json_object_del(g, "jti");
	json_object_del(g, "parent");
	r = captoken_mint(fz_keys, g, t, captoken_iat_ms(t), &c, err,
	    sizeof err);
	if (r != 0) {
		fprintf(stderr, "self-narrowing refused: %s\n", err);
		abort();
	}
	captoken_free(c);
	json_decref(g);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct captoken_call call = { "r1", "root", "fs.read", NULL };
	struct captoken_uses *u;
	struct captoken *t = NULL;
	const uint8_t *nl;
	json_t *args;
	char err[512], *tool, *s;
	const char *ts;

	fz_init();
	if (size == 0 || size > 32768)
		return 0;
	args = json_pack("{s:s}", "path", "/work/scratch/a");
	call.args = args;
	switch (data[0] % 4) {
	case 0:
		captoken_verify(fz_keys, (const char *)data + 1, size - 1,
		    &call, FZ_NOW, NULL, NULL, err, sizeof err);
		break;
	case 1:
		s = fz_sign(data + 1, size - 1);
		u = captoken_uses_new(4);
		call.tool = NULL;
		if (captoken_verify(fz_keys, s, strlen(s), &call, FZ_NOW, u,
		    &t, err, sizeof err) == 0) {
			fz_self_narrow(t);
			captoken_free(t);
			call.tool = "fs.read";
			captoken_verify(fz_keys, s, strlen(s), &call, FZ_NOW,
			    u, NULL, err, sizeof err);
		}
		captoken_uses_free(u);
		free(s);
		break;
	case 3:
		fz_child(data + 1, size - 1);
		break;
	default:
		nl = memchr(data + 1, '\n', size - 1);
		if (nl == NULL)
			break;
		tool = strndup((const char *)data + 1,
		    (size_t)(nl - data - 1));
		json_decref(args);
		args = json_loadb((const char *)nl + 1,
		    size - (size_t)(nl - data) - 1, JSON_DECODE_ANY, NULL);
		call.tool = tool;
		call.args = args;
		ts = captoken_string(fz_tok);
		captoken_verify(fz_keys, ts, strlen(ts), &call, FZ_NOW, NULL,
		    NULL, err, sizeof err);
		free(tool);
		break;
	}
	json_decref(args);
	return 0;
}

#ifndef WEFT_LIBFUZZER

struct fz_buf {
	uint8_t	*p;
	size_t	 n;
};

static struct fz_buf fz_corpus[32];
static size_t fz_ncorpus;

static void
fz_add(int mode, const char *body, size_t n)
{
	struct fz_buf *b = &fz_corpus[fz_ncorpus++];

	b->p = malloc(n + 1);
	b->p[0] = (uint8_t)mode;
	memcpy(b->p + 1, body, n);
	b->n = n + 1;
}

static void
fz_build_corpus(void)
{
	static const char *const calls[] = {
		"fs.read\n{\"path\":\"/work/scratch/a/../b\"}",
		"fs.read\n{\"path\":[\"/data/x\",\"/data/../etc\"]}",
		"fs.write\n{\"path\":\"/work//scratch/./x\"}",
		"web.fetch\n{\"url\":\"http://EXAMPLE.com:80/x?y#z\"}",
		"web.fetch\n{\"url\":\"http://example.com@evil.com/\"}",
		"web.fetch\n{\"url\":\"https://[::1]:8443/\"}",
		"db.query\n{\"mode\":\"read\"}",
		"db.query\n{\"mode\":[1,true]}",
	};
	static const char *const children[] = {
		"{\"run\":\"r1\",\"node\":\"root/c\",\"tools\":[\"fs.read\"],"
		"\"args\":{\"fs.read\":{\"path\":{\"prefix\":[\"/data/x\"]}}},"
		"\"max_calls\":1,\"exp\":1763890300000}\nfs.read\n"
		"{\"path\":\"/data/x/y\"}",
		"{\"run\":\"r1\",\"node\":\"root\",\"tools\":[\"fs.*\"],"
		"\"args\":{\"fs.*\":{\"path\":{\"prefix\":[\"/work/scratch/a\","
		"\"/data\"]}}},\"max_calls\":3,\"exp\":1763890600000}\n"
		"fs.write\n{\"path\":[\"/data/1\",\"/work/scratch/a/2\"]}",
		"{\"run\":\"r1\",\"node\":\"root/c/d\",\"tools\":"
		"[\"web.fetch\"],\"args\":{\"web.*\":{\"url\":{\"hosts\":"
		"[\"example.com\"]}}},\"max_calls\":2,\"exp\":1763890100000}\n"
		"web.fetch\n{\"url\":\"https://example.com/x\"}",
		"{\"run\":\"r1\",\"node\":\"root/c\",\"tools\":[\"db.query\"],"
		"\"args\":{\"db.query\":{\"mode\":{\"enum\":[true]}}},"
		"\"max_calls\":1,\"exp\":1763890300000}\ndb.query\n"
		"{\"mode\":true}",
	};
	static const char child[] = "{\"exp\":1763890060000,\"iat\":"
	    "1763890000000,\"jti\":\"0123456789abcdef0123456789abcdef\","
	    "\"max_calls\":1,\"node\":\"root\",\"parent\":"
	    "\"00000000000000000000000000000000\",\"run\":\"r1\","
	    "\"tools\":[\"fs.read\"],\"v\":1}";
	const char *ts = captoken_string(fz_tok);
	char *claims = json_dumps(captoken_claims(fz_tok),
	    JSON_COMPACT | JSON_SORT_KEYS);
	size_t i;

	fz_add(0, ts, strlen(ts));
	fz_add(0, ts, strlen(ts) / 2);
	fz_add(1, claims, strlen(claims));
	free(claims);
	fz_add(1, child, strlen(child));
	for (i = 0; i < sizeof calls / sizeof calls[0]; i++)
		fz_add(2, calls[i], strlen(calls[i]));
	for (i = 0; i < sizeof children / sizeof children[0]; i++)
		fz_add(3, children[i], strlen(children[i]));
}

/* A mutation of a corpus entry into buf (room for n + 64 bytes). */
static size_t
fz_mutate(const struct fz_buf *in, uint8_t *buf)
{
	static const char *const bits[] = {
		"..", "/", "@", "\\", "%", ":", "[", "]", "\"", "{", "}", "*",
		".", "0", "-1", "1e9", "\\u0000", "A", "_", "=", "//", "?#"
	};
	size_t n = in->n, k, i, j, len;
	const char *b;

	memcpy(buf, in->p, n);
	for (k = 1 + fz_rand() % 4; k > 0; k--) {
		i = n > 1 ? 1 + fz_rand() % (n - 1) : 1;
		switch (fz_rand() % 6) {
		case 0:
			if (i < n)
				buf[i] ^= (uint8_t)(1u << (fz_rand() % 8));
			break;
		case 1:
			if (i < n)
				buf[i] = (uint8_t)fz_rand();
			break;
		case 2:
			if (i < n) {
				memmove(buf + i, buf + i + 1, n - i - 1);
				n--;
			}
			break;
		case 3:
			b = bits[fz_rand() % (sizeof bits / sizeof bits[0])];
			len = strlen(b);
			if (n + len > in->n + 64)
				break;
			memmove(buf + i + len, buf + i, n - i);
			memcpy(buf + i, b, len);
			n += len;
			break;
		case 4:
			n = i;
			break;
		default:
			j = n > 1 ? 1 + fz_rand() % (n - 1) : 1;
			if (i < n && j < n)
				buf[i] = buf[j];
			break;
		}
	}
	return n;
}

static int
fz_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = malloc(65536);
	size_t n;

	if (f == NULL || buf == NULL) {
		perror(path);
		free(buf);
		return -1;
	}
	n = fread(buf, 1, 65536, f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

static int
fz_path(const char *path, size_t *count)
{
	struct stat st;
	struct dirent *de;
	char sub[4096];
	DIR *d;
	int r = 0;

	if (stat(path, &st) != 0) {
		perror(path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		(*count)++;
		return fz_file(path);
	}
	if ((d = opendir(path)) == NULL) {
		perror(path);
		return -1;
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
		r = fz_path(sub, count);
	}
	closedir(d);
	return r;
}

static int
fz_write_corpus(const char *dir)
{
	char p[4096];
	FILE *f;
	size_t i;

	mkdir(dir, 0755);
	for (i = 0; i < fz_ncorpus; i++) {
		snprintf(p, sizeof p, "%s/seed-%02zu", dir, i);
		if ((f = fopen(p, "wb")) == NULL) {
			perror(p);
			return 1;
		}
		fwrite(fz_corpus[i].p, 1, fz_corpus[i].n, f);
		fclose(f);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	const char *e = getenv("WEFT_FUZZ_ITERS");
	long iters = e != NULL ? atol(e) : 10000, i;
	size_t count = 0, n, c;
	uint8_t *buf;
	int a;

	fz_init();
	fz_seed_rng();
	fz_build_corpus();
	if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0)
		return fz_write_corpus(argv[2]);
	if (argc > 1) {
		for (a = 1; a < argc; a++)
			if (fz_path(argv[a], &count) != 0)
				return 1;
		printf("fuzz_captoken: %zu inputs, no crash\n", count);
		return 0;
	}
	for (c = 0; c < fz_ncorpus; c++)
		LLVMFuzzerTestOneInput(fz_corpus[c].p, fz_corpus[c].n);
	for (i = 0; i < iters; i++) {
		c = fz_rand() % fz_ncorpus;
		buf = malloc(fz_corpus[c].n + 64);
		n = fz_mutate(&fz_corpus[c], buf);
		LLVMFuzzerTestOneInput(buf, n);
		free(buf);
	}
	printf("fuzz_captoken: %zu corpus inputs and %ld mutations, no "
	    "crash\n", fz_ncorpus, iters);
	for (c = 0; c < fz_ncorpus; c++)
		free(fz_corpus[c].p);
	captoken_free(fz_tok);
	captoken_keys_free(fz_keys);
	return 0;
}

#endif
