/*
 * llm_error.c: what went wrong with a model call, classified the same
 * way for both APIs: an HTTP error answer (JSON of OpenAI, Anthropic,
 * vLLM, Ollama or FastAPI shape, else an excerpt of the body), an error
 * inside a stream, the kind, whether it is worth retrying, a prompt over
 * the context, and how long Retry-After asks to wait.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "protocols/llm_int.h"
#include "runtime/util.h"

/* Longest wait a Retry-After can ask for: 7 days. */
#define LLM_RETRY_MAX_MS	(7L * 24 * 3600 * 1000)
/* Bytes of a non-JSON error body kept as its message. */
#define LLM_EXCERPT		200

/* First case-insensitive occurrence of needle in [p, end), or NULL. */
static const char *
llm_memcasemem(const char *p, const char *end, const char *needle)
{
	size_t n = strlen(needle);

	for (; p + n <= end; p++) {
		if (strncasecmp(p, needle, n) == 0)
			return p;
	}
	return NULL;
}

/*
 * A short, printable excerpt of a body that is not a JSON error: its
 * <title> if it is an HTML page with one, else its text without tags;
 * whitespace and control characters collapse to one space, invalid UTF-8
 * becomes '?'.
 */
static void
llm_excerpt(const char *body, size_t len, char *dst, size_t size)
{
	const char *p = body, *end = body + len, *t, *gt, *close;
	size_t o = 0, k, max = size - 1;
	int html = 0, intag = 0, space = 0;
	unsigned char c;

	if (max > LLM_EXCERPT)
		max = LLM_EXCERPT;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' ||
	    *p == '\n'))
		p++;
	if (p < end && *p == '<') {
		html = 1;
		if ((t = llm_memcasemem(p, end, "<title")) != NULL &&
		    (gt = memchr(t, '>', end - t)) != NULL &&
		    (close = llm_memcasemem(gt, end, "</title")) != NULL &&
		    close > gt + 1) {
			p = gt + 1;
			end = close;
		}
	}
	while (p < end && o < max) {
		c = (unsigned char)*p;
		if (html && intag) {
			if (c == '>')
				intag = 0;
			p++;
			continue;
		}
		if (html && c == '<') {
			intag = 1;
			space = 1;
			p++;
			continue;
		}
		if (c <= 0x20 || c == 0x7f) {
			space = 1;
			p++;
			continue;
		}
		if (space && o > 0) {
			if (o + 1 >= max)
				break;
			dst[o++] = ' ';
		}
		space = 0;
		if ((k = llm_utf8_len((const unsigned char *)p, end - p)) ==
		    0) {
			dst[o++] = '?';
			p++;
			continue;
		}
		if (o + k > max)
			break;
		memcpy(dst + o, p, k);
		o += k;
		p += k;
	}
	dst[o] = '\0';
}

/*
 * Parse "12", "1.5", ".25" as a non-negative decimal number; 0 or -1.
 * Written out rather than strtod, which follows the locale's decimal point.
 */
static int
llm_parse_decimal(const char *s, double *out)
{
	double v = 0, scale = 1;
	int digits = 0;

	for (; *s >= '0' && *s <= '9'; s++, digits++) {
		if (v < 1e15)
			v = v * 10 + (*s - '0');
		else
			v = 1e15;
	}
	if (*s == '.') {
		for (s++; *s >= '0' && *s <= '9'; s++, digits++) {
			scale /= 10;
			v += (*s - '0') * scale;
		}
	}
	if (digits == 0 || *s != '\0')
		return -1;
	*out = v;
	return 0;
}

/* 0-11 for an English month abbreviation, -1 otherwise. */
static int
llm_month(const char *m)
{
	static const char *months[] = { "Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	size_t i;

	for (i = 0; i < nitems(months); i++) {
		if (strcasecmp(m, months[i]) == 0)
			return (int)i;
	}
	return -1;
}

/*
 * Parse an HTTP-date (RFC 9110: IMF-fixdate, and the obsolete RFC 850 and
 * asctime forms) into seconds since the epoch; 0 or -1.
 */
static int
llm_parse_http_date(const char *s, double *out)
{
	char mon[4];
	int d, y, hh, mm, ss, n = -1;
	struct tm tm;
	time_t t;

	if (sscanf(s, "%*3[A-Za-z], %d %3[A-Za-z] %d %d:%d:%d GMT%n", &d, mon,
	    &y, &hh, &mm, &ss, &n) == 6 && n > 0 && s[n] == '\0')
		;
	else if (n = -1, sscanf(s, "%*[A-Za-z], %d-%3[A-Za-z]-%d %d:%d:%d "
	    "GMT%n", &d, mon, &y, &hh, &mm, &ss, &n) == 6 && n > 0 &&
	    s[n] == '\0')
		y += y < 70 ? 2000 : (y < 100 ? 1900 : 0);
	else if (n = -1, sscanf(s, "%*3[A-Za-z] %3[A-Za-z] %d %d:%d:%d %d%n",
	    mon, &d, &hh, &mm, &ss, &y, &n) == 6 && n > 0 && s[n] == '\0')
		;
	else
		return -1;
	memset(&tm, 0, sizeof tm);
	if ((tm.tm_mon = llm_month(mon)) < 0 || d < 1 || d > 31 ||
	    y < 1970 || y > 9999 || hh > 23 || mm > 59 || ss > 60 ||
	    hh < 0 || mm < 0 || ss < 0)
		return -1;
	tm.tm_mday = d;
	tm.tm_year = y - 1900;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	if ((t = timegm(&tm)) == (time_t)-1)
		return -1;
	*out = (double)t;
	return 0;
}

/* Whole milliseconds, rounded up, within [0, LLM_RETRY_MAX_MS]. */
static long
llm_ms(double ms)
{
	long v;

	if (ms <= 0)
		return 0;
	if (ms >= (double)LLM_RETRY_MAX_MS)
		return LLM_RETRY_MAX_MS;
	v = (long)ms;
	if ((double)v < ms)
		v++;
	return v;
}

/* A header value without surrounding white space into buf; 0 or -1. */
static int
llm_trim(const char *s, char *buf, size_t size)
{
	size_t n;

	if (s == NULL)
		return -1;
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' ||
	    s[n - 1] == '\r' || s[n - 1] == '\n'))
		n--;
	if (n >= size)
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return 0;
}

/* Milliseconds to wait from the two headers at time now, or -1. */
long
llm_retry_after_ms(const char *retry_after, const char *ms, double now)
{
	char buf[128];
	double v;

	if (llm_trim(ms, buf, sizeof buf) == 0 &&
	    llm_parse_decimal(buf, &v) == 0)
		return llm_ms(v);
	if (llm_trim(retry_after, buf, sizeof buf) == -1)
		return -1;
	if (llm_parse_decimal(buf, &v) == 0)
		return llm_ms(v * 1000);
	if (llm_parse_http_date(buf, &v) == 0)
		return llm_ms((v - now) * 1000);
	return -1;
}

/* True if s contains needle, ignoring case. */
static int
llm_contains(const char *s, const char *needle)
{
	return s != NULL && llm_memcasemem(s, s + strlen(s), needle) != NULL;
}

/* True if an error's parts say the prompt did not fit the context. */
static int
llm_is_overflow(const char *type, const char *code, const char *message)
{
	return llm_eq(code, "context_length_exceeded") ||
	    llm_eq(type, "exceed_context_size_error") ||
	    llm_contains(message, "maximum context length") ||
	    (message != NULL &&
	    strncasecmp(message, "prompt is too long", 18) == 0) ||
	    llm_contains(message, "exceed context limit") ||
	    llm_contains(message, "exceeds the available context size");
}

/* kind and transience from an error type alone (in-stream errors). */
static const char *
llm_kind_of_type(const char *type, int *transient)
{
	static const struct {
		const char	*type;
		const char	*kind;
		int		 transient;
	} map[] = {
		{ "invalid_request_error", "bad_request", 0 },
		{ "authentication_error", "auth", 0 },
		{ "permission_error", "permission", 0 },
		{ "not_found_error", "not_found", 0 },
		{ "request_too_large", "bad_request", 0 },
		{ "rate_limit_error", "rate_limited", 1 },
		{ "rate_limit_exceeded", "rate_limited", 1 },
		{ "insufficient_quota", "rate_limited", 0 },
		{ "api_error", "server", 1 },
		{ "server_error", "server", 1 },
		{ "timeout_error", "server", 1 },
		{ "overloaded_error", "overloaded", 1 },
	};
	size_t i;

	*transient = 0;
	for (i = 0; type != NULL && i < nitems(map); i++) {
		if (strcmp(type, map[i].type) == 0) {
			*transient = map[i].transient;
			return map[i].kind;
		}
	}
	return "other";
}

/* Fill *out from an error's parts; status 0 for an in-stream error. */
void
llm_classify(long status, const char *type, const char *code,
    const char *message, struct llm_error *out)
{
	const char *kind = "other";
	int transient = 0;

	memset(out, 0, sizeof *out);
	out->retry_after_ms = -1;
	if (status == 400 || status == 413 || status == 422)
		kind = "bad_request";
	else if (status == 401)
		kind = "auth";
	else if (status == 403)
		kind = "permission";
	else if (status == 404)
		kind = "not_found";
	else if (status == 408) {
		kind = "server";
		transient = 1;
	} else if (status == 409)
		transient = 1;
	else if (status == 429) {
		kind = "rate_limited";
		transient = 1;
	} else if (status == 529) {
		kind = "overloaded";
		transient = 1;
	} else if (status >= 500 && status <= 599) {
		kind = "server";
		transient = 1;
	} else if (status < 400)
		kind = llm_kind_of_type(type, &transient);

	if (llm_eq(type, "overloaded_error")) {
		kind = "overloaded";
		transient = 1;
	}
	/* A spent quota or spend limit comes back as 429 but will not pass. */
	if (llm_eq(type, "insufficient_quota") ||
	    llm_eq(code, "insufficient_quota") ||
	    llm_eq(code, "enforced_spend_limit_reached"))
		transient = 0;
	if (strcmp(kind, "server") != 0 && strcmp(kind, "overloaded") != 0 &&
	    strcmp(kind, "rate_limited") != 0 &&
	    llm_is_overflow(type, code, message)) {
		kind = "context_overflow";
		out->context_overflow = 1;
		transient = 0;
	}
	out->transient = transient;
	snprintf(out->kind, sizeof out->kind, "%s", kind);
	if (message != NULL)
		llm_copy_utf8(out->message, sizeof out->message, message);
}

/* Classify an HTTP error answer. */
void
llm_classify_error(enum llm_api api, long status, const char *body,
    size_t len, const char *retry_after, const char *retry_after_ms,
    struct llm_error *out)
{
	json_t *root = NULL, *e;
	const char *type = NULL, *code = NULL, *msg = NULL;
	char codebuf[32], excerpt[LLM_EXCERPT + 1];

	(void)api;
	if (body != NULL && len > 0)
		root = json_loadb(body, len, 0, NULL);
	if (json_is_object(root)) {
		e = json_object_get(root, "error");
		if (json_is_object(e)) {
			/* OpenAI {error:{message,type,code}}, Anthropic's. */
			type = llm_str(e, "type");
			msg = llm_str(e, "message");
			code = llm_code(e, codebuf, sizeof codebuf);
			if (code == NULL)
				code = llm_str(json_object_get(e, "details"),
				    "error_code");
		} else if (json_is_string(e))
			msg = json_string_value(e);	/* Ollama */
		else {
			/* vLLM {object:"error",message,type,code}; FastAPI. */
			type = llm_str(root, "type");
			code = llm_code(root, codebuf, sizeof codebuf);
			if ((msg = llm_str(root, "message")) == NULL)
				msg = llm_str(root, "detail");
		}
	}
	if (msg == NULL) {
		llm_excerpt(body != NULL ? body : "", body != NULL ? len : 0,
		    excerpt, sizeof excerpt);
		msg = excerpt;
	}
	llm_classify(status, type, code, msg, out);
	if (out->message[0] == '\0')
		snprintf(out->message, sizeof out->message, "HTTP %ld%s",
		    status, body == NULL || len == 0 ? " with an empty body" :
		    "");
	out->retry_after_ms = llm_retry_after_ms(retry_after, retry_after_ms,
	    now_wall());
	json_decref(root);
}

/* Classify what made a stream fail. */
void
llm_stream_error(const struct llm_stream *s, struct llm_error *out)
{
	if (s->errevent) {
		llm_classify(0, s->errtype[0] != '\0' ? s->errtype : NULL,
		    s->errcode[0] != '\0' ? s->errcode : NULL, s->errmsg, out);
		return;
	}
	llm_classify(0, NULL, NULL, s->failed ? s->err : "", out);
	if (s->failed) {
		out->context_overflow = 0;
		snprintf(out->kind, sizeof out->kind, "malformed");
	}
}
