/* captoken_text.c: capability tokens: base64url, hex, quoted values. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "engine/captoken_int.h"

/* Messages. */

/* Copy n bytes of untrusted s into b for a message: escaped and cut. */
const char *
ck_quote(char *b, size_t cap, const char *s, size_t n)
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

/* Join an array's values into b: strings quoted, others as JSON. */
const char *
ck_join(char *b, size_t cap, const json_t *a, int as_json)
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
			t = ck_quote(q, sizeof q, d, strlen(d));
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
const char *
ck_fmt_ms(char *b, size_t cap, int64_t ms)
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

/* The value of base64url digit c, or -1. */
int
ck_b64u_val(int c)
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
size_t
ck_b64u_encode(const unsigned char *in, size_t n, char *out)
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
int
ck_b64u_decode(const char *in, size_t n, unsigned char *out,
    size_t *outlen)
{
	size_t i, o = 0;
	uint32_t v = 0;
	int bits = 0, d;

	if (n % 4 == 1)
		return -1;
	for (i = 0; i < n; i++) {
		if ((d = ck_b64u_val((unsigned char)in[i])) < 0)
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

/* Whether n bytes are lowercase hex digits. */
int
ck_is_lhex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* n bytes as 2 * n lowercase hex digits. */
void
ck_hex_encode(const unsigned char *in, size_t n, char *out)
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
int
ck_hex_decode(const char *s, size_t slen, unsigned char *out, size_t n)
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
