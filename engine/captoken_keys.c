/* captoken_keys.c: capability tokens: keyrings and the key directory. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "engine/captoken_int.h"
#include "runtime/util.h"

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

/* The index of key kid in the keyring, or -1. */
int
ck_keys_find(const struct captoken_keys *k, const char *kid)
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
	if ((i = ck_keys_find(k, kid)) >= 0) {
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

	i = kid != NULL ? ck_keys_find(k, kid) : k->cur;
	if (i < 0) {
		if (kid != NULL)
			errf(err, errlen, "no key '%s'", QS(q, kid));
		else
			errf(err, errlen, "no current key");
		return -1;
	}
	ck_hex_encode(k->key[i].pub, 32, out);
	return 0;
}

int
captoken_pubkey_import(struct captoken_keys *k, const char *hex,
    char kid[CAPTOKEN_KID_LEN + 1], char *err, size_t errlen)
{
	unsigned char pub[32];
	EVP_PKEY *pkey;
	char q[QBUF];

	if (ck_hex_decode(hex, strlen(hex), pub, 32) != 0) {
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
		ck_hex_encode(k->key[k->cur].pub, 32, hex);
		json_array_append_new(a, json_string(hex));
	}
	for (i = 0; i < k->n; i++) {
		if ((int)i == k->cur)
			continue;
		ck_hex_encode(k->key[i].pub, 32, hex);
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
	r = ck_hex_decode(buf, strlen(buf), seed, 32);
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
		    !ck_is_lhex(de->d_name, CAPTOKEN_KID_LEN))
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
		if (ck_hex_decode(buf, strlen(buf), pub, 32) != 0) {
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
	if (strlen(buf) != CAPTOKEN_KID_LEN || !ck_is_lhex(buf, strlen(buf))) {
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
	ck_hex_encode(pub, 32, hex);
	strcat(hex, "\n");
	r = keyfile_write(dfd, k->dir, pubname, 0644, hex, 0, err, errlen);
	ck_hex_encode(seed, 32, hex);
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

/* The default state directory, its parents made (captoken.h). */
int
state_dir_path(char *out, size_t outlen, char *err, size_t errlen)
{
	const char *env, *base;
	char *p;
	int n;

	if ((env = getenv("WEFT_STATE_DIR")) != NULL && *env != '\0') {
		n = snprintf(out, outlen, "%s", env);
		base = NULL;
	} else if ((env = getenv("XDG_STATE_HOME")) != NULL && *env == '/') {
		n = snprintf(out, outlen, "%s/weft", env);
		base = env;
	} else if ((env = getenv("HOME")) != NULL && *env == '/') {
		n = snprintf(out, outlen, "%s/.local/state/weft", env);
		base = env;
	} else {
		errf(err, errlen, "no state directory: set WEFT_STATE_DIR "
		    "(or HOME) or pass --state-dir");
		return -1;
	}
	if (n < 0 || (size_t)n >= outlen) {
		errf(err, errlen, "state directory path too long");
		return -1;
	}
	if (base == NULL)
		return 0;
	/* Make the parents below the base, not the directory itself. */
	for (p = out + strlen(base) + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(out, 0700) != 0 && errno != EEXIST) {
			errf(err, errlen, "%s: %s", out, strerror(errno));
			*p = '/';
			return -1;
		}
		*p = '/';
	}
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

	if ((i = ck_keys_find(k, kid)) < 0) {
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
