/* captoken.c: capability tokens: keys, minting, narrowing, verifying. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "engine/captoken.h"
#include "runtime/util.h"

#define CK_PREFIX	"wct1."
#define CK_SIG_LEN	64
#define CK_SIG_B64	86		/* base64url of 64 bytes, unpadded */
#define CK_DUMP		(JSON_COMPACT | JSON_SORT_KEYS)

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
#define CK_USES_DEFAULT	65536

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

struct captoken {
	char		*str;
	char		 kid[CAPTOKEN_KID_LEN + 1];
	json_t		*claims;
	const char	*run, *node, *jti, *parent;
	int64_t		 max_calls, iat, exp;
};

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

/* Messages. */

/* Copy n bytes of untrusted s into b for a message: escaped and cut. */
static const char *
quote(char *b, size_t cap, const char *s, size_t n)
{
	size_t i, o = 0;
	int c;

	for (i = 0; i < n && o + 8 < cap; i++) {
		if (i == CK_QUOTE) {
			memcpy(b + o, "...", 3);
			o += 3;
			break;
		}
		c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\')
			b[o++] = c;
		else
			o += snprintf(b + o, cap - o, "\\x%02x", c);
	}
	b[o] = '\0';
	return b;
}

/* Quote a NUL-terminated string; qs() for values, which may contain NUL. */
#define QBUF (4 * CK_QUOTE + 8)
#define QS(b, s) quote(b, sizeof b, s, strlen(s))
#define QJ(b, j) \
	quote(b, sizeof b, json_string_value(j), json_string_length(j))

/* Join an array's values into b: strings quoted, others as JSON. */
static const char *
join(char *b, size_t cap, const json_t *a, int as_json)
{
	char q[QBUF], *d;
	const char *t;
	const json_t *v;
	size_t i, o = 0;

	b[0] = '\0';
	json_array_foreach(a, i, v) {
		d = NULL;
		if (json_is_string(v) && !as_json)
			t = QJ(q, v);
		else if ((d = json_dumps(v, JSON_ENCODE_ANY)) != NULL)
			t = quote(q, sizeof q, d, strlen(d));
		else
			t = "?";
		if (o + strlen(t) + 2 + 5 > cap) {
			snprintf(b + o, cap - o, "%s...", i ? ", " : "");
			free(d);
			break;
		}
		o += (size_t)snprintf(b + o, cap - o, "%s%s", i ? ", " : "",
		    t);
		free(d);
	}
	return b;
}

/* Format epoch milliseconds as an ISO 8601 UTC time. */
static const char *
fmt_ms(char *b, size_t cap, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	size_t n;

	if (ms < 0 || gmtime_r(&t, &tm) == NULL) {
		snprintf(b, cap, "%" PRId64 " ms", ms);
		return b;
	}
	n = strftime(b, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(b + n, cap - n, ".%03dZ", (int)(ms % 1000));
	return b;
}

/* Encodings. */

static const char b64u_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int
b64u_val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Base64url without padding into out (4 * (n + 2) / 3 + 1 bytes). */
static size_t
b64u_encode(const unsigned char *in, size_t n, char *out)
{
	size_t i, o = 0;
	uint32_t v;

	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];
		out[o++] = b64u_chars[v >> 18];
		out[o++] = b64u_chars[(v >> 12) & 63];
		out[o++] = b64u_chars[(v >> 6) & 63];
		out[o++] = b64u_chars[v & 63];
	}
	if (n - i == 1) {
		v = (uint32_t)in[i] << 16;
		out[o++] = b64u_chars[v >> 18];
		out[o++] = b64u_chars[(v >> 12) & 63];
	} else if (n - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64u_chars[v >> 18];
		out[o++] = b64u_chars[(v >> 12) & 63];
		out[o++] = b64u_chars[(v >> 6) & 63];
	}
	out[o] = '\0';
	return o;
}

/*
 * Strict base64url: no padding, no other bytes, unused low bits zero, so
 * every byte string has one encoding.  out needs 3 * n / 4 bytes.
 */
static int
b64u_decode(const char *in, size_t n, unsigned char *out, size_t *outlen)
{
	size_t i, o = 0;
	uint32_t v = 0;
	int bits = 0, d;

	if (n % 4 == 1)
		return -1;
	for (i = 0; i < n; i++) {
		if ((d = b64u_val((unsigned char)in[i])) < 0)
			return -1;
		v = (v << 6) | (uint32_t)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (v >> bits) & 0xff;
		}
	}
	if ((v & ((1u << bits) - 1)) != 0)
		return -1;
	*outlen = o;
	return 0;
}

static int
is_lhex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static void
hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hx[in[i] >> 4];
		out[2 * i + 1] = hx[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* Exactly 2 * n hex digits (either case) into n bytes. */
static int
hex_decode(const char *s, size_t slen, unsigned char *out, size_t n)
{
	size_t i;
	int hi, lo;

	if (slen != 2 * n)
		return -1;
	for (i = 0; i < n; i++) {
		hi = OPENSSL_hexchar2int((unsigned char)s[2 * i]);
		lo = OPENSSL_hexchar2int((unsigned char)s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/* Keys. */

/* Key id: the first 16 hex digits of SHA-256 of the raw public key. */
static void
kid_of(const unsigned char pub[32], char kid[CAPTOKEN_KID_LEN + 1])
{
	char h[65];

	sha256_hex(pub, 32, h);
	memcpy(kid, h, CAPTOKEN_KID_LEN);
	kid[CAPTOKEN_KID_LEN] = '\0';
}

static int
keys_find(const struct captoken_keys *k, const char *kid)
{
	size_t i;

	for (i = 0; i < k->n; i++)
		if (strcmp(k->key[i].kid, kid) == 0)
			return (int)i;
	return -1;
}

/* Add a key (taking pkey); a private key becomes the current one. */
static int
keys_add(struct captoken_keys *k, EVP_PKEY *pkey, int priv, char *err,
    size_t errlen)
{
	struct ck_key *e;
	unsigned char pub[32];
	size_t len = sizeof pub;
	char kid[CAPTOKEN_KID_LEN + 1];
	int i;

	if (EVP_PKEY_get_raw_public_key(pkey, pub, &len) != 1 || len != 32) {
		EVP_PKEY_free(pkey);
		errf(err, errlen, "cannot read an Ed25519 public key");
		return -1;
	}
	kid_of(pub, kid);
	if ((i = keys_find(k, kid)) >= 0) {
		e = &k->key[i];
		if (!priv) {
			EVP_PKEY_free(pkey);
			return 0;
		}
		EVP_PKEY_free(e->pkey);
	} else {
		if (k->n == CAPTOKEN_MAX_KEYS) {
			EVP_PKEY_free(pkey);
			errf(err, errlen, "too many keys (at most %d)",
			    CAPTOKEN_MAX_KEYS);
			return -1;
		}
		i = (int)k->n++;
		e = &k->key[i];
		memcpy(e->kid, kid, sizeof kid);
		memcpy(e->pub, pub, 32);
	}
	e->pkey = pkey;
	if (priv)
		k->cur = i;
	return 0;
}

/* An Ed25519 key from a seed, or from a new random seed if seed is NULL. */
static EVP_PKEY *
key_from_seed(const unsigned char *seed, unsigned char out[32])
{
	unsigned char s[32];
	EVP_PKEY *pkey;

	if (seed != NULL)
		memcpy(s, seed, 32);
	else if (RAND_priv_bytes(s, sizeof s) != 1)
		return NULL;
	pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, s, 32);
	if (out != NULL)
		memcpy(out, s, 32);
	OPENSSL_cleanse(s, sizeof s);
	return pkey;
}

struct captoken_keys *
captoken_keys_new(void)
{
	struct captoken_keys *k = xcalloc(1, sizeof *k);

	k->cur = -1;
	return k;
}

void
captoken_keys_free(struct captoken_keys *k)
{
	size_t i;

	if (k == NULL)
		return;
	for (i = 0; i < k->n; i++)
		EVP_PKEY_free(k->key[i].pkey);
	free(k->dir);
	free(k);
}

int
captoken_keys_from_seed(const unsigned char *seed,
    struct captoken_keys **keysp, char *err, size_t errlen)
{
	struct captoken_keys *k = captoken_keys_new();
	EVP_PKEY *pkey;

	if ((pkey = key_from_seed(seed, NULL)) == NULL) {
		errf(err, errlen, "cannot make an Ed25519 key");
		captoken_keys_free(k);
		return -1;
	}
	if (keys_add(k, pkey, 1, err, errlen) != 0) {
		captoken_keys_free(k);
		return -1;
	}
	*keysp = k;
	return 0;
}

const char *
captoken_keys_current(const struct captoken_keys *k)
{
	return k->cur >= 0 ? k->key[k->cur].kid : NULL;
}

int
captoken_pubkey_export(const struct captoken_keys *k, const char *kid,
    char out[CAPTOKEN_PUBKEY_LEN + 1], char *err, size_t errlen)
{
	char q[QBUF];
	int i;

	i = kid != NULL ? keys_find(k, kid) : k->cur;
	if (i < 0) {
		if (kid != NULL)
			errf(err, errlen, "no key '%s'", QS(q, kid));
		else
			errf(err, errlen, "no current key");
		return -1;
	}
	hex_encode(k->key[i].pub, 32, out);
	return 0;
}

int
captoken_pubkey_import(struct captoken_keys *k, const char *hex,
    char kid[CAPTOKEN_KID_LEN + 1], char *err, size_t errlen)
{
	unsigned char pub[32];
	EVP_PKEY *pkey;
	char q[QBUF];

	if (hex_decode(hex, strlen(hex), pub, 32) != 0) {
		errf(err, errlen, "public key '%s' is not 64 hex digits",
		    QS(q, hex));
		return -1;
	}
	pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
	if (pkey == NULL) {
		errf(err, errlen, "public key '%s' is not an Ed25519 key",
		    QS(q, hex));
		return -1;
	}
	if (keys_add(k, pkey, 0, err, errlen) != 0)
		return -1;
	if (kid != NULL)
		kid_of(pub, kid);
	return 0;
}

json_t *
captoken_keys_public(const struct captoken_keys *k)
{
	json_t *a = json_array();
	char hex[CAPTOKEN_PUBKEY_LEN + 1];
	size_t i;

	if (k->cur >= 0) {
		hex_encode(k->key[k->cur].pub, 32, hex);
		json_array_append_new(a, json_string(hex));
	}
	for (i = 0; i < k->n; i++) {
		if ((int)i == k->cur)
			continue;
		hex_encode(k->key[i].pub, 32, hex);
		json_array_append_new(a, json_string(hex));
	}
	return a;
}

/* Key files. */

/*
 * Open (making it if missing) state_dir/keys and check that only this
 * user can use it.  All file operations go through the descriptor, so the
 * directory cannot be swapped for a symlink under us.
 */
static int
keydir_open(const char *dir, char *err, size_t errlen)
{
	struct stat st;
	int fd;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		errf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		errf(err, errlen, "%s: %s", dir, strerror(errno));
		close(fd);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		errf(err, errlen, "key directory %s is owned by uid %u, not "
		    "by this user (uid %u)", dir, (unsigned)st.st_uid,
		    (unsigned)geteuid());
		close(fd);
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		errf(err, errlen, "key directory %s has mode %04o; group and "
		    "others must have no access (chmod 700)", dir,
		    (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Read a key file of at most len - 1 bytes into buf, checking that it is
 * a regular file of ours, private ones unreadable by others and public
 * ones unwritable by others.  1 if it does not exist.
 */
static int
keyfile_read(int dfd, const char *dir, const char *name, int priv,
    char *buf, size_t len, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	size_t off = 0;
	int fd;

	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ENOENT)
			return 1;
		errf(err, errlen, "%s/%s: %s", dir, name, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		errf(err, errlen, "%s/%s is not a regular file", dir, name);
		goto fail;
	}
	if (st.st_uid != geteuid()) {
		errf(err, errlen, "%s/%s is owned by uid %u, not by this user "
		    "(uid %u)", dir, name, (unsigned)st.st_uid,
		    (unsigned)geteuid());
		goto fail;
	}
	if (priv && (st.st_mode & 077) != 0) {
		errf(err, errlen, "private key %s/%s has mode %04o; it must "
		    "not be accessible by group or others (chmod 600)", dir,
		    name, (unsigned)(st.st_mode & 07777));
		goto fail;
	}
	if (!priv && (st.st_mode & 022) != 0) {
		errf(err, errlen, "%s/%s has mode %04o; it must not be "
		    "writable by group or others (chmod 644)", dir, name,
		    (unsigned)(st.st_mode & 07777));
		goto fail;
	}
	while (off < len - 1) {
		n = read(fd, buf + off, len - 1 - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			errf(err, errlen, "%s/%s: %s", dir, name,
			    strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	buf[off] = '\0';
	if (off > 0 && buf[off - 1] == '\n')
		buf[--off] = '\0';
	return 0;
fail:
	close(fd);
	return -1;
}

/*
 * Write a key file atomically: a temporary file of the final mode, synced,
 * then renamed over name, or if noclobber linked to name (1 if it exists).
 */
static int
keyfile_write(int dfd, const char *dir, const char *name, mode_t mode,
    const char *data, int noclobber, char *err, size_t errlen)
{
	char tmp[64], rnd[17];
	size_t len = strlen(data), off = 0;
	ssize_t n;
	int fd, rc = -1;

	random_hex(rnd, 8);
	snprintf(tmp, sizeof tmp, ".tmp-%s", rnd);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, mode);
	if (fd == -1) {
		errf(err, errlen, "%s/%s: %s", dir, tmp, strerror(errno));
		return -1;
	}
	if (fchmod(fd, mode) != 0)
		goto fail;
	while (off < len) {
		n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		off += (size_t)n;
	}
	if (fsync(fd) != 0)
		goto fail;
	close(fd);
	fd = -1;
	if (noclobber) {
		if (linkat(dfd, tmp, dfd, name, 0) != 0) {
			if (errno != EEXIST)
				goto fail;
			rc = 1;
		} else
			rc = 0;
		unlinkat(dfd, tmp, 0);
	} else {
		if (renameat(dfd, tmp, dfd, name) != 0)
			goto fail;
		rc = 0;
	}
	fsync(dfd);
	return rc;
fail:
	errf(err, errlen, "%s/%s: %s", dir, name, strerror(errno));
	if (fd != -1)
		close(fd);
	unlinkat(dfd, tmp, 0);
	return -1;
}

/* Load one private key file; its name must match its public key. */
static int
keys_load_private(struct captoken_keys *k, int dfd, const char *kid,
    char *err, size_t errlen)
{
	char name[64], buf[160], got[CAPTOKEN_KID_LEN + 1];
	unsigned char seed[32], pub[32];
	EVP_PKEY *pkey;
	int r;

	snprintf(name, sizeof name, "%s.key", kid);
	r = keyfile_read(dfd, k->dir, name, 1, buf, sizeof buf, err, errlen);
	if (r == 1)
		errf(err, errlen, "%s/%s is missing (named by %s/current)",
		    k->dir, name, k->dir);
	if (r != 0)
		return -1;
	r = hex_decode(buf, strlen(buf), seed, 32);
	OPENSSL_cleanse(buf, sizeof buf);
	if (r != 0) {
		errf(err, errlen, "%s/%s is not 64 hex digits", k->dir, name);
		return -1;
	}
	pkey = key_from_seed(seed, NULL);
	OPENSSL_cleanse(seed, sizeof seed);
	if (pkey == NULL) {
		errf(err, errlen, "%s/%s: not an Ed25519 key", k->dir, name);
		return -1;
	}
	r = EVP_PKEY_get_raw_public_key(pkey, pub, &(size_t){ 32 });
	kid_of(pub, got);
	if (r != 1 || strcmp(got, kid) != 0) {
		EVP_PKEY_free(pkey);
		errf(err, errlen, "%s/%s holds key %s, not %s", k->dir, name,
		    got, kid);
		return -1;
	}
	return keys_add(k, pkey, 1, err, errlen);
}

/* Load every <kid>.pub of the directory. */
static int
keys_load_public(struct captoken_keys *k, int dfd, char *err, size_t errlen)
{
	char buf[160], got[CAPTOKEN_KID_LEN + 1], kid[CAPTOKEN_KID_LEN + 1];
	unsigned char pub[32];
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	if ((fd = dup(dfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		errf(err, errlen, "%s: %s", k->dir, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	rewinddir(d);
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (strlen(de->d_name) != CAPTOKEN_KID_LEN + 4 ||
		    strcmp(de->d_name + CAPTOKEN_KID_LEN, ".pub") != 0 ||
		    !is_lhex(de->d_name, CAPTOKEN_KID_LEN))
			continue;
		memcpy(kid, de->d_name, CAPTOKEN_KID_LEN);
		kid[CAPTOKEN_KID_LEN] = '\0';
		r = keyfile_read(dfd, k->dir, de->d_name, 0, buf, sizeof buf,
		    err, errlen);
		if (r == 1) {
			r = 0;
			continue;
		}
		if (r != 0)
			break;
		if (hex_decode(buf, strlen(buf), pub, 32) != 0) {
			errf(err, errlen, "%s/%s is not 64 hex digits", k->dir,
			    de->d_name);
			r = -1;
			break;
		}
		kid_of(pub, got);
		if (strcmp(got, kid) != 0) {
			errf(err, errlen, "%s/%s holds key %s, not %s", k->dir,
			    de->d_name, got, kid);
			r = -1;
			break;
		}
		r = captoken_pubkey_import(k, buf, NULL, err, errlen);
	}
	closedir(d);
	return r;
}

/* Load the current key and all public keys; 1 if there is no current. */
static int
keys_load(struct captoken_keys *k, int dfd, char *err, size_t errlen)
{
	char buf[64];
	int r;

	r = keyfile_read(dfd, k->dir, "current", 0, buf, sizeof buf, err,
	    errlen);
	if (r != 0)
		return r;
	if (strlen(buf) != CAPTOKEN_KID_LEN || !is_lhex(buf, strlen(buf))) {
		errf(err, errlen, "%s/current does not name a key id", k->dir);
		return -1;
	}
	if (keys_load_private(k, dfd, buf, err, errlen) != 0)
		return -1;
	return keys_load_public(k, dfd, err, errlen);
}

/*
 * Make a new key pair in the directory and make it current.  first: the
 * directory had no current key; if another process made one meanwhile,
 * remove ours and return 1.  Otherwise the old private key is removed.
 */
static int
keys_create(struct captoken_keys *k, int dfd, int first, char *err,
    size_t errlen)
{
	unsigned char seed[32], pub[32];
	char kid[CAPTOKEN_KID_LEN + 1], hex[CAPTOKEN_PUBKEY_LEN + 2];
	char pubname[32], keyname[32], oldname[32] = "";
	EVP_PKEY *pkey, *old;
	int r;

	if (k->n >= CAPTOKEN_MAX_KEYS) {
		errf(err, errlen, "%s holds %d keys already; retire old ones "
		    "first", k->dir, CAPTOKEN_MAX_KEYS);
		return -1;
	}
	if ((pkey = key_from_seed(NULL, seed)) == NULL ||
	    EVP_PKEY_get_raw_public_key(pkey, pub, &(size_t){ 32 }) != 1) {
		EVP_PKEY_free(pkey);
		OPENSSL_cleanse(seed, sizeof seed);
		errf(err, errlen, "cannot make an Ed25519 key");
		return -1;
	}
	kid_of(pub, kid);
	snprintf(pubname, sizeof pubname, "%s.pub", kid);
	snprintf(keyname, sizeof keyname, "%s.key", kid);
	hex_encode(pub, 32, hex);
	strcat(hex, "\n");
	r = keyfile_write(dfd, k->dir, pubname, 0644, hex, 0, err, errlen);
	hex_encode(seed, 32, hex);
	strcat(hex, "\n");
	OPENSSL_cleanse(seed, sizeof seed);
	if (r == 0)
		r = keyfile_write(dfd, k->dir, keyname, 0600, hex, 0, err,
		    errlen);
	OPENSSL_cleanse(hex, sizeof hex);
	snprintf(hex, sizeof hex, "%s\n", kid);
	if (r == 0)
		r = keyfile_write(dfd, k->dir, "current", 0644, hex, first,
		    err, errlen);
	if (r != 0) {
		unlinkat(dfd, keyname, 0);
		unlinkat(dfd, pubname, 0);
		EVP_PKEY_free(pkey);
		return r;
	}
	if (k->cur >= 0) {
		/* Keep the old key for verifying only. */
		snprintf(oldname, sizeof oldname, "%s.key",
		    k->key[k->cur].kid);
		old = k->key[k->cur].pkey;
		k->key[k->cur].pkey = EVP_PKEY_new_raw_public_key(
		    EVP_PKEY_ED25519, NULL, k->key[k->cur].pub, 32);
		if (k->key[k->cur].pkey == NULL)
			fatalx(1, "cannot copy an Ed25519 public key");
		EVP_PKEY_free(old);
		k->cur = -1;
	}
	if (keys_add(k, pkey, 1, err, errlen) != 0)
		return -1;
	if (oldname[0] != '\0' && unlinkat(dfd, oldname, 0) != 0 &&
	    errno != ENOENT) {
		errf(err, errlen, "new key %s is current, but the old private "
		    "key %s/%s could not be removed: %s", kid, k->dir,
		    oldname, strerror(errno));
		return -1;
	}
	fsync(dfd);
	return 0;
}

int
captoken_keys_load_or_create(const char *state_dir,
    struct captoken_keys **keysp, char *err, size_t errlen)
{
	struct captoken_keys *k;
	int dfd, r;

	if (mkdir(state_dir, 0700) != 0 && errno != EEXIST) {
		errf(err, errlen, "%s: %s", state_dir, strerror(errno));
		return -1;
	}
	k = captoken_keys_new();
	k->dir = xasprintf("%s/keys", state_dir);
	if (mkdir(k->dir, 0700) != 0 && errno != EEXIST) {
		errf(err, errlen, "%s: %s", k->dir, strerror(errno));
		captoken_keys_free(k);
		return -1;
	}
	if ((dfd = keydir_open(k->dir, err, errlen)) == -1) {
		captoken_keys_free(k);
		return -1;
	}
	r = keys_load(k, dfd, err, errlen);
	if (r == 1)
		r = keys_create(k, dfd, 1, err, errlen);
	if (r == 1)
		r = keys_load(k, dfd, err, errlen); /* lost a race: theirs */
	if (r == 0 && k->cur < 0) {
		errf(err, errlen, "%s: no current key", k->dir);
		r = -1;
	}
	close(dfd);
	if (r != 0) {
		captoken_keys_free(k);
		return -1;
	}
	*keysp = k;
	return 0;
}

int
captoken_keys_rotate(struct captoken_keys *k, char kid[CAPTOKEN_KID_LEN + 1],
    char *err, size_t errlen)
{
	int dfd, r;

	if (k->dir == NULL) {
		errf(err, errlen, "this keyring has no key directory");
		return -1;
	}
	if ((dfd = keydir_open(k->dir, err, errlen)) == -1)
		return -1;
	r = keys_create(k, dfd, 0, err, errlen);
	close(dfd);
	if (r == 0 && kid != NULL)
		memcpy(kid, k->key[k->cur].kid, CAPTOKEN_KID_LEN + 1);
	return r == 0 ? 0 : -1;
}

int
captoken_keys_retire(struct captoken_keys *k, const char *kid, char *err,
    size_t errlen)
{
	char name[32], q[QBUF];
	int i, dfd;

	if ((i = keys_find(k, kid)) < 0) {
		errf(err, errlen, "no key '%s'", QS(q, kid));
		return -1;
	}
	if (i == k->cur) {
		errf(err, errlen, "key %s is the current key; rotate first",
		    kid);
		return -1;
	}
	if (k->dir != NULL) {
		if ((dfd = keydir_open(k->dir, err, errlen)) == -1)
			return -1;
		snprintf(name, sizeof name, "%s.pub", kid);
		if (unlinkat(dfd, name, 0) != 0 && errno != ENOENT) {
			errf(err, errlen, "%s/%s: %s", k->dir, name,
			    strerror(errno));
			close(dfd);
			return -1;
		}
		snprintf(name, sizeof name, "%s.key", kid);
		unlinkat(dfd, name, 0);
		fsync(dfd);
		close(dfd);
	}
	EVP_PKEY_free(k->key[i].pkey);
	memmove(&k->key[i], &k->key[i + 1],
	    (k->n - (size_t)i - 1) * sizeof k->key[0]);
	k->n--;
	if (k->cur > i)
		k->cur--;
	return 0;
}

/* Tool names and patterns. */

static int
server_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static int
tool_char(int c)
{
	return server_char(c) || c == '.' || c == '/';
}

/*
 * "server.tool", or with wild "server.*": a server of letters, digits,
 * '_' and '-' (as w.mcp_server allows), a dot, and a tool name of 1 to 128
 * letters, digits, '_', '-', '.' and '/' (MCP's recommended set), or '*'.
 */
static int
name_valid(const char *s, size_t n, int wild)
{
	size_t i = 0, t;

	while (i < n && i <= 64 && server_char((unsigned char)s[i]))
		i++;
	if (i == 0 || i > 64 || i >= n || s[i] != '.')
		return 0;
	t = ++i;
	if (wild && n - t == 1 && s[t] == '*')
		return 1;
	if (n - t < 1 || n - t > 128)
		return 0;
	for (; i < n; i++)
		if (!tool_char((unsigned char)s[i]))
			return 0;
	return 1;
}

static int
pat_wild(const char *p)
{
	size_t n = strlen(p);

	return n >= 2 && p[n - 1] == '*';
}

/* Does pattern p match the exact tool name t?  "fs.*" is not "fsx.x". */
static int
pat_match(const char *p, const char *t)
{
	size_t n = strlen(p);

	if (pat_wild(p))
		return strncmp(p, t, n - 1) == 0;
	return strcmp(p, t) == 0;
}

/* Does pattern p match every tool pattern q matches? */
static int
pat_covers(const char *p, const char *q)
{
	return pat_wild(q) ? strcmp(p, q) == 0 : pat_match(p, q);
}

/* Is some tool matched by both patterns?  Then the narrower one is it. */
static const char *
pat_overlap(const char *a, const char *b)
{
	size_t sa = strcspn(a, "."), sb = strcspn(b, ".");

	if (sa != sb || strncmp(a, b, sa) != 0)
		return NULL;
	if (!pat_wild(a))
		return pat_wild(b) || strcmp(a, b) == 0 ? a : NULL;
	return b;
}

/* Paths and URLs. */

/*
 * Normalise an absolute path of n bytes into out (n + 2 bytes): empty and
 * "." segments dropped, ".." resolved.  NULL, or why it is refused.
 */
static const char *
path_norm(const char *s, size_t n, char *out)
{
	size_t i = 0, j, o = 0;

	if (n == 0 || s[0] != '/')
		return "is not an absolute path";
	if (memchr(s, '\0', n) != NULL)
		return "contains a NUL byte";
	if (n > CK_MAX_PATH)
		return "is too long";
	while (i < n) {
		while (i < n && s[i] == '/')
			i++;
		for (j = i; j < n && s[j] != '/'; j++)
			;
		if (j == i || (j - i == 1 && s[i] == '.')) {
			/* nothing */
		} else if (j - i == 2 && s[i] == '.' && s[i + 1] == '.') {
			if (o == 0)
				return "goes above the root";
			while (out[--o] != '/')
				;
		} else {
			out[o++] = '/';
			memcpy(out + o, s + i, j - i);
			o += j - i;
		}
		i = j;
	}
	if (o == 0)
		out[o++] = '/';
	out[o] = '\0';
	return NULL;
}

/* Is normalised path p at or below prefix, on a component boundary? */
static int
path_under(const char *p, const char *prefix)
{
	size_t n = strlen(prefix);

	if (strcmp(prefix, "/") == 0)
		return 1;
	return strncmp(p, prefix, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

/*
 * Check a host name (labels of letters, digits, '-' and '_') or a
 * bracketed IPv6 literal, n bytes, and write it lowercased into out
 * (n + 1 bytes).  A URL's host may end in one dot, which is dropped.
 */
static const char *
host_norm(const char *s, size_t n, int url, char *out)
{
	size_t i, label = 0;
	int c;

	if (url && n > 1 && s[n - 1] == '.' && s[0] != '[')
		n--;
	if (n == 0)
		return "has an empty host";
	if (n > 253)
		return "has a host name that is too long";
	if (s[0] == '[') {
		if (n < 4 || s[n - 1] != ']')
			return "has a malformed IPv6 host";
		for (i = 1; i < n - 1; i++) {
			c = (unsigned char)s[i];
			if (!((c >= '0' && c <= '9') || (c >= 'a' &&
			    c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
			    c == '.'))
				return "has a malformed IPv6 host";
		}
	} else {
		for (i = 0; i < n; i++) {
			c = (unsigned char)s[i];
			if (c == '.') {
				if (label == 0)
					return "has an empty label in its "
					    "host";
				label = 0;
				continue;
			}
			if (c == '%')
				return "has a percent sign in its host";
			if (!server_char(c))
				return "has a character not allowed in a "
				    "host name";
			if (++label > 63)
				return "has a host label over 63 bytes";
		}
		if (label == 0)
			return "has an empty label in its host";
	}
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		out[i] = (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
	}
	out[n] = '\0';
	return NULL;
}

/*
 * The host of an http or https URL of n bytes, lowercased, into host
 * (n + 1 bytes).  Strict on purpose: parsers disagree about userinfo,
 * backslashes, whitespace and percent signs (WHATWG and RFC 3986 find
 * different hosts in "http://a.com\@b.com"), so all of those are refused.
 */
static const char *
url_host(const char *s, size_t n, char *host)
{
	size_t i, a, e, h;
	int c;

	if (n > CK_MAX_URL)
		return "is too long";
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f)
			return "contains a space, control or non-ASCII byte";
		if (c == '\\')
			return "contains a backslash";
	}
	for (i = 0; i < n && s[i] != ':'; i++)
		;
	if (!((i == 4 && strncasecmp(s, "http", 4) == 0) ||
	    (i == 5 && strncasecmp(s, "https", 5) == 0)))
		return "is not an http or https URL";
	if (n - i < 3 || s[i + 1] != '/' || s[i + 2] != '/')
		return "has no '//' after its scheme";
	a = i + 3;
	for (e = a; e < n && s[e] != '/' && s[e] != '?' && s[e] != '#'; e++)
		if (s[e] == '@')
			return "has userinfo ('@' before the path)";
	if (a < e && s[a] == '[') {
		for (h = a; h < e && s[h] != ']'; h++)
			;
		if (h == e)
			return "has a malformed IPv6 host";
		h++;
	} else {
		for (h = a; h < e && s[h] != ':'; h++)
			;
	}
	if (h < e) {
		if (s[h] != ':' || e - h < 2 || e - h > 6)
			return "has a malformed port";
		for (i = h + 1, c = 0; i < e; i++) {
			if (s[i] < '0' || s[i] > '9')
				return "has a malformed port";
			c = c * 10 + (s[i] - '0');
		}
		if (c < 1 || c > 65535)
			return "has a port out of range";
	}
	return host_norm(s + a, h - a, 1, host);
}

/* Claims. */

static const char *const ck_claims[] = {
	"v", "run", "node", "tools", "args", "max_calls", "iat", "exp",
	"jti", "parent"
};
static const char *const ck_grant[] = {
	"run", "node", "tools", "args", "max_calls", "exp"
};
static const char *const ck_kinds[] = { "prefix", "hosts", "enum" };

static int
in_list(const char *s, const char *const *l, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(s, l[i]) == 0)
			return 1;
	return 0;
}

/* A string of 1 to max bytes with no control characters. */
static int
text_valid(const json_t *j, size_t max)
{
	const char *s = json_string_value(j);
	size_t i, n = json_string_length(j);

	if (s == NULL || n == 0 || n > max)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

static int
int_in(const json_t *j, json_int_t lo, json_int_t hi)
{
	return json_is_integer(j) && json_integer_value(j) >= lo &&
	    json_integer_value(j) <= hi;
}

/* Check one constraint {"prefix": [...], "hosts": [...], "enum": [...]}. */
static int
cons_valid(const json_t *c, const char *pat, const char *arg, char *err,
    size_t errlen)
{
	const char *kind, *why;
	const json_t *l, *v;
	char q[QBUF], q2[QBUF], *buf;
	size_t i;

	if (!json_is_object(c) || json_object_size(c) == 0) {
		errf(err, errlen, "args['%s']['%s'] must be an object with "
		    "prefix, hosts or enum", pat, QS(q, arg));
		return -1;
	}
	json_object_foreach((json_t *)c, kind, l) {
		if (!in_list(kind, ck_kinds, nitems(ck_kinds))) {
			errf(err, errlen, "args['%s']['%s']: unknown "
			    "constraint '%s' (expected prefix, hosts or enum)",
			    pat, QS(q, arg), QS(q2, kind));
			return -1;
		}
		if (!json_is_array(l) || json_array_size(l) == 0 ||
		    json_array_size(l) > CK_MAX_ITEMS) {
			errf(err, errlen, "args['%s']['%s'].%s must list 1 to "
			    "%d values", pat, QS(q, arg), kind, CK_MAX_ITEMS);
			return -1;
		}
		json_array_foreach(l, i, v) {
			why = NULL;
			if (strcmp(kind, "enum") == 0) {
				if (!json_is_string(v) &&
				    !json_is_integer(v) && !json_is_boolean(v))
					why = "is not a string, integer or "
					    "boolean";
				else
					continue;
			} else if (!json_is_string(v)) {
				why = "is not a string";
			} else if (strcmp(kind, "prefix") == 0) {
				buf = xmalloc(json_string_length(v) + 2);
				why = path_norm(json_string_value(v),
				    json_string_length(v), buf);
				if (why == NULL && strcmp(buf,
				    json_string_value(v)) != 0)
					why = "is not a normalised path";
				free(buf);
			} else {
				buf = xmalloc(json_string_length(v) + 1);
				why = host_norm(json_string_value(v),
				    json_string_length(v), 0, buf);
				if (why == NULL && strcmp(buf,
				    json_string_value(v)) != 0)
					why = "is not in lowercase";
				free(buf);
			}
			if (why != NULL) {
				errf(err, errlen, "args['%s']['%s'].%s[%zu] "
				    "%s", pat, QS(q, arg), kind, i, why);
				return -1;
			}
		}
	}
	return 0;
}

static int
args_valid(const json_t *args, char *err, size_t errlen)
{
	const char *pat, *arg;
	const json_t *a, *c;
	char q[QBUF];

	if (!json_is_object(args) ||
	    json_object_size(args) > CK_MAX_PATTERNS) {
		errf(err, errlen, "'args' must be an object of at most %d "
		    "tool patterns", CK_MAX_PATTERNS);
		return -1;
	}
	json_object_foreach((json_t *)args, pat, a) {
		if (!name_valid(pat, strlen(pat), 1)) {
			errf(err, errlen, "args: '%s' is not a tool pattern "
			    "(server.tool or server.*)", QS(q, pat));
			return -1;
		}
		if (!json_is_object(a) || json_object_size(a) == 0 ||
		    json_object_size(a) > CK_MAX_ARGS) {
			errf(err, errlen, "args['%s'] must be an object of 1 "
			    "to %d arguments", pat, CK_MAX_ARGS);
			return -1;
		}
		json_object_foreach((json_t *)a, arg, c) {
			if (arg[0] == '\0' || strlen(arg) > CK_MAX_ID) {
				errf(err, errlen, "args['%s'] has a bad "
				    "argument name", pat);
				return -1;
			}
			if (cons_valid(c, pat, arg, err, errlen) != 0)
				return -1;
		}
	}
	return 0;
}

/* Check a claim set (a decoded token's, or one about to be minted). */
static int
claims_valid(const json_t *c, char *err, size_t errlen)
{
	const char *k, *id;
	const json_t *v, *t, *u;
	char q[QBUF];
	size_t i, j;

	if (!json_is_object(c)) {
		errf(err, errlen, "claims are not a JSON object");
		return -1;
	}
	json_object_foreach((json_t *)c, k, v) {
		if (!in_list(k, ck_claims, nitems(ck_claims))) {
			errf(err, errlen, "unknown claim '%s'", QS(q, k));
			return -1;
		}
	}
	for (i = 0; i < nitems(ck_claims); i++) {
		k = ck_claims[i];
		if (json_object_get(c, k) == NULL && strcmp(k, "args") != 0 &&
		    strcmp(k, "parent") != 0) {
			errf(err, errlen, "claim '%s' is missing", k);
			return -1;
		}
	}
	if (!int_in(json_object_get(c, "v"), 1, 1)) {
		errf(err, errlen, "claim 'v' must be 1");
		return -1;
	}
	if (!text_valid(json_object_get(c, "run"), CK_MAX_ID)) {
		errf(err, errlen, "claim 'run' must be a string of 1 to %d "
		    "bytes without control characters", CK_MAX_ID);
		return -1;
	}
	if (!text_valid(json_object_get(c, "node"), CK_MAX_NODE)) {
		errf(err, errlen, "claim 'node' must be a string of 1 to %d "
		    "bytes without control characters", CK_MAX_NODE);
		return -1;
	}
	v = json_object_get(c, "tools");
	if (!json_is_array(v) || json_array_size(v) == 0 ||
	    json_array_size(v) > CK_MAX_TOOLS) {
		errf(err, errlen, "claim 'tools' must list 1 to %d tool "
		    "patterns", CK_MAX_TOOLS);
		return -1;
	}
	json_array_foreach(v, i, t) {
		if (!json_is_string(t) || !name_valid(json_string_value(t),
		    json_string_length(t), 1)) {
			errf(err, errlen, "tools[%zu] is not a tool pattern "
			    "(server.tool or server.*)", i);
			return -1;
		}
		for (j = 0; j < i; j++) {
			u = json_array_get(v, j);
			if (strcmp(json_string_value(u),
			    json_string_value(t)) == 0) {
				errf(err, errlen, "tools lists '%s' twice",
				    json_string_value(t));
				return -1;
			}
		}
	}
	if ((v = json_object_get(c, "args")) != NULL &&
	    args_valid(v, err, errlen) != 0)
		return -1;
	if (!int_in(json_object_get(c, "max_calls"), 1, CAPTOKEN_MAX_CALLS)) {
		errf(err, errlen, "claim 'max_calls' must be an integer "
		    "from 1 to %d", CAPTOKEN_MAX_CALLS);
		return -1;
	}
	if (!int_in(json_object_get(c, "iat"), 0, CK_MAX_TIME)) {
		errf(err, errlen, "claim 'iat' must be an integer time in "
		    "milliseconds");
		return -1;
	}
	v = json_object_get(c, "exp");
	t = json_object_get(c, "iat");
	if (!json_is_integer(v) ||
	    json_integer_value(v) <= json_integer_value(t) ||
	    json_integer_value(v) - json_integer_value(t) >
	    CAPTOKEN_MAX_LIFETIME_MS) {
		errf(err, errlen, "claim 'exp' must be an integer time in "
		    "milliseconds after 'iat', by at most %lld",
		    (long long)CAPTOKEN_MAX_LIFETIME_MS);
		return -1;
	}
	for (i = 0; i < 2; i++) {
		k = i ? "parent" : "jti";
		v = json_object_get(c, k);
		if (v == NULL && i == 1)
			break;
		id = json_string_value(v);
		if (id == NULL || json_string_length(v) != CAPTOKEN_JTI_LEN ||
		    !is_lhex(id, CAPTOKEN_JTI_LEN)) {
			errf(err, errlen, "claim '%s' must be %d lowercase "
			    "hex digits", k, CAPTOKEN_JTI_LEN);
			return -1;
		}
	}
	return 0;
}

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

/* Is every value constraint c allows also allowed by parent constraint p? */
static int
cons_within(const json_t *c, const json_t *p, char *why, size_t whylen)
{
	const char *kind;
	const json_t *pl, *cl, *cv, *pv;
	char q[QBUF], list[512], *s;
	size_t i, j;
	int ok;

	json_object_foreach((json_t *)p, kind, pl) {
		if ((cl = json_object_get(c, kind)) == NULL) {
			errf(why, whylen, "the parent requires '%s' (%s)",
			    kind, join(list, sizeof list, pl,
			    strcmp(kind, "enum") == 0));
			return 0;
		}
		json_array_foreach(cl, i, cv) {
			ok = 0;
			json_array_foreach(pl, j, pv) {
				if (strcmp(kind, "prefix") == 0)
					ok = path_under(json_string_value(cv),
					    json_string_value(pv));
				else
					ok = json_equal((json_t *)cv,
					    (json_t *)pv);
				if (ok)
					break;
			}
			if (ok)
				continue;
			if (strcmp(kind, "enum") == 0) {
				s = json_dumps(cv, JSON_ENCODE_ANY);
				errf(why, whylen, "enum value %s is not among "
				    "the parent's %s", s ? QS(q, s) : "?",
				    join(list, sizeof list, pl, 1));
				free(s);
			} else
				errf(why, whylen, "%s '%s' is outside the "
				    "parent's %s %s", strcmp(kind, "prefix") ?
				    "host" : "prefix", QJ(q, cv), kind,
				    join(list, sizeof list, pl, 0));
			return 0;
		}
	}
	return 1;
}

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
		    fmt_ms(t1, sizeof t1, json_integer_value(
		    json_object_get(c, "exp"))),
		    fmt_ms(t2, sizeof t2, p->exp));
	json_array_foreach(ct, i, v) {
		ok = 0;
		json_array_foreach(pt, j, w)
			if ((ok = pat_covers(json_string_value(w),
			    json_string_value(v))))
				break;
		if (!ok)
			WIDER("tool '%s' is not granted by the parent (parent "
			    "grants: %s)", json_string_value(v),
			    join(list, sizeof list, pt, 0));
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
				in = pat_overlap(json_string_value(v), ppat);
				if (in == NULL)
					continue;
				ok = 0;
				why[0] = '\0';
				json_object_foreach((json_t *)cargs, cpat,
				    ca) {
					cc = json_object_get(ca, arg);
					if (cc == NULL ||
					    !pat_covers(cpat, in))
						continue;
					if ((ok = cons_within(cc, pc, why,
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
		if (!in_list(k, ck_grant, nitems(ck_grant))) {
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
	if (claims_valid(c, m, sizeof m) != 0) {
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
	n += b64u_encode((unsigned char *)payload, plen, str + n);
	free(payload);
	if (ed_sign(key->pkey, str, n, sig) != 0)
		fatalx(1, "Ed25519 signing failed");
	str[n++] = '.';
	b64u_encode(sig, sizeof sig, str + n);
	*tokp = tok_new(c, key->kid, str);
	return 0;
}

/* Verifying. */

/* Check one argument value against constraint c; message on failure. */
static int
arg_within(const char *arg, const char *idx, const json_t *c,
    const json_t *v, char *err, size_t errlen)
{
	const char *kind, *why, *s;
	const json_t *l, *e;
	char q[QBUF], qa[QBUF], list[512], *buf, *d;
	size_t i, n;
	int ok;

	json_object_foreach((json_t *)c, kind, l) {
		if (strcmp(kind, "enum") == 0) {
			json_array_foreach(l, i, e)
				if (json_equal((json_t *)v, (json_t *)e))
					break;
			if (i < json_array_size(l))
				continue;
			d = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
			errf(err, errlen, "argument '%s'%s = %s is not one of "
			    "%s", QS(qa, arg), idx, d != NULL ? QS(q, d) : "?",
			    join(list, sizeof list, l, 1));
			free(d);
			return -1;
		}
		if (!json_is_string(v)) {
			errf(err, errlen, "argument '%s'%s must be a string "
			    "(a %s)", QS(qa, arg), idx, strcmp(kind, "prefix")
			    ? "URL" : "path");
			return -1;
		}
		s = json_string_value(v);
		n = json_string_length(v);
		buf = xmalloc(n + 2);
		if (strcmp(kind, "prefix") == 0)
			why = path_norm(s, n, buf);
		else
			why = url_host(s, n, buf);
		ok = 0;
		if (why == NULL) {
			json_array_foreach(l, i, e) {
				if (strcmp(kind, "prefix") == 0)
					ok = path_under(buf,
					    json_string_value(e));
				else
					ok = strcmp(buf,
					    json_string_value(e)) == 0;
				if (ok)
					break;
			}
		}
		if (why != NULL)
			errf(err, errlen, "argument '%s'%s = '%s' is refused: "
			    "it %s", QS(qa, arg), idx, quote(q, sizeof q, s,
			    n), why);
		else if (!ok && strcmp(kind, "prefix") == 0)
			errf(err, errlen, "argument '%s'%s = '%s' is outside "
			    "the allowed prefixes %s", QS(qa, arg), idx,
			    quote(q, sizeof q, s, n), join(list, sizeof list,
			    l, 0));
		else if (!ok)
			errf(err, errlen, "argument '%s'%s = '%s' has host "
			    "'%s', which is not among the allowed hosts %s",
			    QS(qa, arg), idx, quote(q, sizeof q, s, n),
			    buf, join(list, sizeof list, l, 0));
		free(buf);
		if (!ok)
			return -1;
	}
	return 0;
}

/* Check the call's arguments against every constraint for its tool. */
static int
args_within(const json_t *claims, const char *tool, const json_t *args,
    char *err, size_t errlen)
{
	const json_t *pa, *c, *v, *e;
	const char *pat, *arg;
	char q[QBUF], idx[32];
	size_t i;

	if (args != NULL && !json_is_object(args)) {
		errf(err, errlen, "the call's arguments are not an object");
		return -1;
	}
	json_object_foreach(json_object_get(claims, "args"), pat, pa) {
		if (!pat_match(pat, tool))
			continue;
		json_object_foreach((json_t *)pa, arg, c) {
			v = args != NULL ? json_object_get(args, arg) : NULL;
			if (v == NULL) {
				errf(err, errlen, "argument '%s' is missing; "
				    "the grant constrains it", QS(q, arg));
				return -1;
			}
			if (!json_is_array(v)) {
				if (arg_within(arg, "", c, v, err, errlen))
					return -1;
				continue;
			}
			if (json_array_size(v) == 0 ||
			    json_array_size(v) > CK_ARRAY_MAX) {
				errf(err, errlen, "argument '%s' is an array "
				    "of %zu elements; the grant constrains "
				    "it, so it must have 1 to %d", QS(q, arg),
				    json_array_size(v), CK_ARRAY_MAX);
				return -1;
			}
			/* An array (of paths, say): check every element. */
			json_array_foreach(v, i, e) {
				snprintf(idx, sizeof idx, "[%zu]", i);
				if (arg_within(arg, idx, c, e, err, errlen))
					return -1;
			}
		}
	}
	return 0;
}

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
	    !is_lhex(s + n, CAPTOKEN_KID_LEN) ||
	    s[n + CAPTOKEN_KID_LEN] != '.')
		MALFORMED("no key id after '%s'", CK_PREFIX);
	memcpy(kid, s + n, CAPTOKEN_KID_LEN);
	kid[CAPTOKEN_KID_LEN] = '\0';
	payload = s + n + CAPTOKEN_KID_LEN + 1;
	for (plen = 0; payload + plen < s + len &&
	    b64u_val((unsigned char)payload[plen]) >= 0; plen++)
		;
	if (plen == 0 || payload + plen == s + len || payload[plen] != '.')
		MALFORMED("no claims part");
	sig = payload + plen + 1;
	if ((size_t)(s + len - sig) != CK_SIG_B64)
		MALFORMED("the signature part is not %d characters",
		    CK_SIG_B64);
	if (b64u_decode(sig, CK_SIG_B64, sigb, &o) != 0 || o != CK_SIG_LEN)
		MALFORMED("the signature part is not base64url");
	if ((ki = keys_find(keys, kid)) < 0) {
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
	if (b64u_decode(payload, plen, pb, &n) != 0) {
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
	if (claims_valid(c, list, sizeof list) != 0) {
		json_decref(c);
		MALFORMED("%s", list);
	}
#undef MALFORMED
	*claimsp = c;
	return 0;
}

static struct ck_use *uses_slot(struct captoken_uses *, const char *);
static int uses_insert(struct captoken_uses *, const struct captoken *);

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
	struct ck_use *u = NULL;
	char q[QBUF], q2[QBUF], list[512];
	char t1[40], t2[40];
	const json_t *c = t->claims;
	int r;

	if (uses != NULL) {
		if (now_ms < uses->clock)
			now_ms = uses->clock;
		uses->clock = now_ms;
	}
	r = -1;
	if (now_ms > t->exp + CAPTOKEN_SKEW_MS) {
		errf(err, errlen, "token %s expired at %s (now %s)", t->jti,
		    fmt_ms(t1, sizeof t1, t->exp),
		    fmt_ms(t2, sizeof t2, now_ms));
		r = -CAPTOKEN_EEXPIRED;
	} else if (t->iat - CAPTOKEN_SKEW_MS > now_ms) {
		errf(err, errlen, "token %s is issued at %s, in the future "
		    "(now %s)", t->jti, fmt_ms(t1, sizeof t1, t->iat),
		    fmt_ms(t2, sizeof t2, now_ms));
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
	} else if (!name_valid(call->tool, strlen(call->tool), 0)) {
		errf(err, errlen, "tool name '%s' is not server.tool",
		    QS(q, call->tool));
		r = -CAPTOKEN_ETOOL;
	} else {
		const json_t *tools = json_object_get(c, "tools"), *p;
		size_t i;

		json_array_foreach(tools, i, p)
			if (pat_match(json_string_value(p), call->tool))
				break;
		if (i == json_array_size(tools)) {
			errf(err, errlen, "tool '%s' is not granted (granted: "
			    "%s)", call->tool, join(list, sizeof list, tools,
			    0));
			r = -CAPTOKEN_ETOOL;
		} else if (args_within(c, call->tool, call->args, err,
		    errlen) != 0) {
			r = -CAPTOKEN_EARG;
		} else if (uses == NULL) {
			r = 0;
		} else if ((u = uses_slot(uses, t->jti)) != NULL &&
		    u->count >= t->max_calls) {
			if (t->max_calls == 1)
				errf(err, errlen, "token %s is single-use and "
				    "was used already", t->jti);
			else
				errf(err, errlen, "token %s allows %lld calls "
				    "and all were made", t->jti,
				    (long long)t->max_calls);
			r = t->max_calls == 1 ? -CAPTOKEN_EREPLAY :
			    -CAPTOKEN_ECALLS;
		} else if (u != NULL) {
			u->count++;
			r = 0;
		} else if (uses_insert(uses, t) != 0) {
			errf(err, errlen, "too many live tokens to track "
			    "(%zu)", uses->max);
			r = -CAPTOKEN_ECAPACITY;
		} else
			r = 0;
	}
	return r;
}

/* Use table: open addressing with linear probing, keyed by jti. */

static size_t
uses_hash(const char *jti)
{
	uint64_t h = 1469598103934665603ULL;

	while (*jti != '\0')
		h = (h ^ (unsigned char)*jti++) * 1099511628211ULL;
	return (size_t)h;
}

static struct ck_use *
uses_probe(struct ck_use *slot, size_t cap, const char *jti)
{
	size_t i = uses_hash(jti) & (cap - 1);

	while (slot[i].jti[0] != '\0' && strcmp(slot[i].jti, jti) != 0)
		i = (i + 1) & (cap - 1);
	return &slot[i];
}

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

static int
uses_insert(struct captoken_uses *u, const struct captoken *t)
{
	struct ck_use *e;

	if (u->n >= u->max || 2 * (u->n + 1) > u->cap) {
		uses_rebuild(u, u->cap);
		if (u->n >= u->max)
			return -1;
		if (2 * (u->n + 1) > u->cap)
			uses_rebuild(u, 2 * u->cap);
	}
	e = uses_probe(u->slot, u->cap, t->jti);
	memcpy(e->jti, t->jti, CAPTOKEN_JTI_LEN + 1);
	e->exp = t->exp;
	e->count = 1;
	u->n++;
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
