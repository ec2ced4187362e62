/*
 * store_blob.c: blobs in the store, kept once by SHA-256 of their bytes:
 * the batch's index of the blobs it holds, a blob put into the batch, a
 * blob read from the batch or the file.  The batch writes them
 * (store.c, store_write_blob).  See store.h.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "engine/store.h"
#include "engine/store_int.h"
#include "runtime/util.h"

/* The slot of hash in the batch's blob index (free or holding it). */
static size_t
store_blob_slot(const struct store *s, const char *hash)
{
	uint64_t h = 0;
	size_t i, mask = s->blobix_cap - 1;
	int k;

	for (k = 0; k < 16; k++)
		h = h << 4 | (uint64_t)(hash[k] <= '9' ? hash[k] - '0' :
		    (hash[k] | 0x20) - 'a' + 10);
	for (i = (size_t)h & mask;; i = (i + 1) & mask) {
		if (s->blobix[i] == 0 || strcmp(s->pend[s->blobix[i] -
		    1].u.blob.hash, hash) == 0)
			return i;
	}
}

/* The batch entry of the blob with this hash, or NULL. */
static struct store_pend *
store_blob_pending(const struct store *s, const char *hash)
{
	size_t i;

	if (s->nblobs == 0 || strlen(hash) != 64)
		return NULL;
	i = store_blob_slot(s, hash);
	return s->blobix[i] != 0 ? &s->pend[s->blobix[i] - 1] : NULL;
}

/* Index batch entry ix (a blob) by its hash, growing the index. */
static void
store_blob_index(struct store *s, size_t ix)
{
	size_t i;

	if ((s->nblobs + 1) * 2 > s->blobix_cap) {
		s->blobix_cap = s->blobix_cap ? s->blobix_cap * 2 : 64;
		free(s->blobix);
		s->blobix = xcalloc(s->blobix_cap, sizeof *s->blobix);
		for (i = 0; i < s->npend; i++)
			if (i != ix && s->pend[i].type == PEND_BLOB)
				s->blobix[store_blob_slot(s,
				    s->pend[i].u.blob.hash)] = (uint32_t)i + 1;
	}
	s->blobix[store_blob_slot(s, s->pend[ix].u.blob.hash)] =
	    (uint32_t)ix + 1;
	s->nblobs++;
}

int
store_blob_put(struct store *s, const void *data, size_t len,
    char hash_out[65])
{
	struct store_pend *p;
	char hash[65];

	if (len > STORE_BLOB_MAX) {
		errf(s->err, sizeof s->err, "cannot store blob: %zu bytes, "
		    "more than the limit of %d", len, STORE_BLOB_MAX);
		return -1;
	}
	if (store_refuse(s) != 0)
		return -1;
	if (data == NULL)
		data = "";
	sha256_hex(data, len, hash);
	if (store_blob_pending(s, hash) == NULL) {
		p = store_pend_new(s, PEND_BLOB);
		memcpy(p->u.blob.hash, hash, sizeof hash);
		p->u.blob.data = xmalloc(len > 0 ? len : 1);
		memcpy(p->u.blob.data, data, len);
		p->u.blob.len = len;
		s->pend_bytes += len;
		store_blob_index(s, (size_t)(p - s->pend));
	}
	memcpy(hash_out, hash, sizeof hash);
	return store_pend_check(s);
}

int
store_blob_get(struct store *s, const char *hash, void **data, size_t *len)
{
	struct store_pend *p;
	sqlite3_stmt *st;
	const void *b;
	size_t n;
	void *copy;
	int rc;

	if ((p = store_blob_pending(s, hash)) != NULL) {
		copy = xmalloc(p->u.blob.len > 0 ? p->u.blob.len : 1);
		memcpy(copy, p->u.blob.data, p->u.blob.len);
		*data = copy;
		*len = p->u.blob.len;
		return 0;
	}
	if ((st = store_stmt(s, ST_BLOB_GET)) == NULL)
		return -1;
	store_bind_str(st, 1, hash);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		if (rc == SQLITE_DONE)
			errf(s->err, sizeof s->err, "no blob '%s'", hash);
		else
			store_fail(s, "cannot read blob");
		store_stmt_done(s, ST_BLOB_GET, st);
		return -1;
	}
	b = sqlite3_column_blob(st, 0);
	n = (size_t)sqlite3_column_bytes(st, 0);
	copy = xmalloc(n > 0 ? n : 1);
	if (n > 0)
		memcpy(copy, b, n);
	store_stmt_done(s, ST_BLOB_GET, st);
	*data = copy;
	*len = n;
	return 0;
}
