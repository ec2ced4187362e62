/*
 * llm.c: the parts of the LLM codecs both wire formats share: dispatch,
 * request validation, the normalized response, stream bookkeeping and
 * error classification.
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

/* Append n bytes, keeping the buffer NUL-terminated. */
void
llm_buf_add(struct llm_buf *b, const char *p, size_t n)
{
	size_t cap;

	if (b->p == NULL || b->len + n >= b->cap) {
		cap = b->cap != 0 ? b->cap : 64;
		while (cap <= b->len + n)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Free a buffer's bytes. */
void
llm_buf_free(struct llm_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* Replace *dst with a copy of src if *dst is NULL or empty. */
void
llm_set_once(char **dst, const char *src)
{
	if (src == NULL || *src == '\0')
		return;
	if (*dst != NULL && **dst != '\0')
		return;
	free(*dst);
	*dst = xstrdup(src);
}

/*
 * Length of the valid UTF-8 sequence at p (n bytes available), or 0 if it
 * is not one: no overlong forms, no surrogates, nothing past U+10FFFF.
 */
static size_t
llm_utf8_len(const unsigned char *p, size_t n)
{
	size_t need, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		need = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		need = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		need = 4;
	else
		return 0;
	if (n < need)
		return 0;
	for (i = 1; i < need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	}
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
	    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
		return 0;
	return need;
}

/* Copy s into dst[size] whole UTF-8 characters at a time. */
void
llm_copy_utf8(char *dst, size_t size, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), o = 0, k;

	if (size == 0)
		return;
	while (n > 0) {
		if ((k = llm_utf8_len(p, n)) == 0) {
			if (o + 1 >= size)
				break;
			dst[o++] = '?';
			p++;
			n--;
			continue;
		}
		if (o + k >= size)
			break;
		memcpy(dst + o, p, k);
		o += k;
		p += k;
		n -= k;
	}
	dst[o] = '\0';
}

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

/* True if a and b are both set and equal. */
static int
llm_eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
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

/* A string member, or NULL. */
static const char *
llm_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* A code member as text (OpenAI gives strings, some servers numbers). */
static const char *
llm_code(const json_t *o, char *buf, size_t size)
{
	json_t *v = json_object_get(o, "code");

	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v)) {
		snprintf(buf, size, "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		return buf;
	}
	return NULL;
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

/* Parse a tool call's argument text into a new object. */
int
llm_args_parse(const char *name, const char *p, size_t n, int cut,
    json_t **out, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *v;
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' &&
		    p[i] != '\n')
			break;
	}
	if (i == n) {
		*out = json_object();
		return 0;
	}
	if ((v = json_loadb(p, n, JSON_DECODE_ANY, &jerr)) == NULL) {
		errf(err, errlen, "tool call '%s': arguments are not JSON: %s "
		    "(column %d)%s", name, jerr.text, jerr.column,
		    cut ? " (the answer was cut at max_tokens)" : "");
		return -1;
	}
	if (!json_is_object(v)) {
		json_decref(v);
		errf(err, errlen, "tool call '%s': arguments are not a JSON "
		    "object", name);
		return -1;
	}
	*out = v;
	return 0;
}

static const struct llm_codec *const llm_codecs[] = {
	[LLM_OPENAI] = &llm_openai_codec,
	[LLM_ANTHROPIC] = &llm_anthropic_codec,
};

const struct llm_codec *
llm_codec(enum llm_api api)
{
	if ((size_t)api >= sizeof llm_codecs / sizeof llm_codecs[0])
		fatalx(1, "llm: no codec for api %d", (int)api);
	return llm_codecs[api];
}

/* Map a provider stop value to a normalized stop_reason. */
const char *
llm_stop_reason(const struct llm_codec *codec, const char *raw,
    int have_calls)
{
	const char *r = raw != NULL ? raw : "", *stop = "other";
	const struct llm_stop *st;

	for (st = codec->stops; st->raw != NULL; st++)
		if (strcmp(r, st->raw) == 0) {
			stop = st->norm;
			break;
		}
	if (have_calls && (strcmp(stop, "final") == 0 || *r == '\0'))
		stop = "tool_use";
	if (!have_calls && strcmp(stop, "tool_use") == 0)
		stop = "other";
	return stop;
}

/* The normalized response. */
json_t *
llm_response(const char *text, size_t textlen, json_t *calls,
    const char *stop_reason, const char *raw_stop, const char *model,
    const char *id, const struct llm_usage *u)
{
	json_t *r = json_object(), *t, *usage;

	if ((t = json_stringn(text != NULL ? text : "", textlen)) == NULL)
		t = json_string("");
	json_object_set_new(r, "text", t);
	if (calls != NULL && json_array_size(calls) > 0)
		json_object_set(r, "tool_calls", calls);
	json_decref(calls);
	json_object_set_new(r, "stop_reason", json_string(stop_reason));
	json_object_set_new(r, "raw_stop",
	    json_string(raw_stop != NULL ? raw_stop : ""));
	json_object_set_new(r, "model", json_string(model != NULL ? model :
	    ""));
	json_object_set_new(r, "id", json_string(id != NULL ? id : ""));
	if (u != NULL && u->set) {
		usage = json_object();
		json_object_set_new(usage, "input_tokens",
		    json_integer(u->input));
		json_object_set_new(usage, "output_tokens",
		    json_integer(u->output));
		json_object_set_new(usage, "cache_read_tokens",
		    json_integer(u->cache_read));
		json_object_set_new(usage, "cache_write_tokens",
		    json_integer(u->cache_write));
		json_object_set_new(r, "usage", usage);
	}
	return r;
}

/* Check that key is absent/null or of the wanted kind. */
static int
llm_check_opt(const json_t *o, const char *key, int (*ok)(const json_t *),
    const char *what, const char *path, char *err, size_t errlen)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL || json_is_null(v) || ok(v))
		return 0;
	errf(err, errlen, "%s%s: must be %s", path, key, what);
	return -1;
}

/* Check that key is a non-empty string. */
static int
llm_check_name(const json_t *o, const char *key, const char *path,
    char *err, size_t errlen)
{
	const char *s = llm_str(o, key);

	if (s != NULL && *s != '\0')
		return 0;
	errf(err, errlen, "%s%s: must be a non-empty string", path, key);
	return -1;
}

static int
llm_is_string(const json_t *v)
{
	return json_is_string(v);
}

static int
llm_is_object(const json_t *v)
{
	return json_is_object(v);
}

static int
llm_is_array(const json_t *v)
{
	return json_is_array(v);
}

static int
llm_is_number(const json_t *v)
{
	return json_is_number(v);
}

static int
llm_is_bool(const json_t *v)
{
	return json_is_boolean(v);
}

/* Check one assistant tool call. */
static int
llm_check_call(const json_t *c, const char *path, char *err, size_t errlen)
{
	if (!json_is_object(c)) {
		errf(err, errlen, "%s: must be an object", path);
		return -1;
	}
	if (llm_check_name(c, "id", path, err, errlen) == -1 ||
	    llm_check_name(c, "name", path, err, errlen) == -1 ||
	    llm_check_opt(c, "args", llm_is_object, "an object", path, err,
	    errlen) == -1)
		return -1;
	return 0;
}

/* Check one message of a normalized request. */
static int
llm_check_message(const json_t *m, size_t i, char *err, size_t errlen)
{
	char path[64], cpath[128];
	const char *role;
	json_t *calls, *c;
	size_t j;

	snprintf(path, sizeof path, "messages[%zu].", i);
	if (!json_is_object(m)) {
		errf(err, errlen, "messages[%zu]: must be an object", i);
		return -1;
	}
	role = llm_str(m, "role");
	if (role == NULL || (strcmp(role, "system") != 0 &&
	    strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0 &&
	    strcmp(role, "tool") != 0)) {
		errf(err, errlen, "%srole: must be system, user, assistant "
		    "or tool", path);
		return -1;
	}
	if (strcmp(role, "system") == 0 || strcmp(role, "user") == 0) {
		if (!json_is_string(json_object_get(m, "content"))) {
			errf(err, errlen, "%scontent: must be a string", path);
			return -1;
		}
		return 0;
	}
	if (llm_check_opt(m, "content", llm_is_string, "a string", path, err,
	    errlen) == -1)
		return -1;
	if (strcmp(role, "tool") == 0) {
		if (llm_check_name(m, "tool_call_id", path, err, errlen) ==
		    -1 || llm_check_opt(m, "name", llm_is_string, "a string",
		    path, err, errlen) == -1 || llm_check_opt(m, "is_error",
		    llm_is_bool, "a boolean", path, err, errlen) == -1)
			return -1;
		return 0;
	}
	if (llm_check_opt(m, "tool_calls", llm_is_array, "an array", path, err,
	    errlen) == -1)
		return -1;
	calls = json_object_get(m, "tool_calls");
	json_array_foreach(calls, j, c) {
		snprintf(cpath, sizeof cpath, "%stool_calls[%zu].", path, j);
		if (llm_check_call(c, cpath, err, errlen) == -1)
			return -1;
	}
	return 0;
}

/* Validate a normalized request. */
int
llm_check_request(const json_t *req, char *err, size_t errlen)
{
	json_t *msgs, *tools, *m, *t, *mt;
	char path[64];
	size_t i;

	if (!json_is_object(req)) {
		errf(err, errlen, "request: must be an object");
		return -1;
	}
	if (llm_check_name(req, "model", "", err, errlen) == -1)
		return -1;
	msgs = json_object_get(req, "messages");
	if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
		errf(err, errlen, "messages: must be a non-empty array");
		return -1;
	}
	json_array_foreach(msgs, i, m) {
		if (llm_check_message(m, i, err, errlen) == -1)
			return -1;
	}
	if (llm_check_opt(req, "tools", llm_is_array, "an array", "", err,
	    errlen) == -1)
		return -1;
	tools = json_object_get(req, "tools");
	json_array_foreach(tools, i, t) {
		snprintf(path, sizeof path, "tools[%zu].", i);
		if (!json_is_object(t)) {
			errf(err, errlen, "tools[%zu]: must be an object", i);
			return -1;
		}
		if (llm_check_name(t, "name", path, err, errlen) == -1 ||
		    llm_check_opt(t, "description", llm_is_string,
		    "a string", path, err, errlen) == -1 ||
		    llm_check_opt(t, "input_schema", llm_is_object,
		    "an object", path, err, errlen) == -1)
			return -1;
	}
	m = json_object_get(req, "max_tokens");
	if (m != NULL && !json_is_null(m) &&
	    (!json_is_integer(m) || json_integer_value(m) < 1)) {
		errf(err, errlen, "max_tokens: must be a positive integer");
		return -1;
	}
	if (llm_check_opt(req, "temperature", llm_is_number, "a number", "",
	    err, errlen) == -1)
		return -1;
	mt = json_object_get(req, "max_tokens_field");
	if (mt != NULL && !json_is_null(mt) &&
	    !llm_eq(json_string_value(mt), "max_tokens") &&
	    !llm_eq(json_string_value(mt), "max_completion_tokens")) {
		errf(err, errlen, "max_tokens_field: must be "
		    "\"max_tokens\" or \"max_completion_tokens\"");
		return -1;
	}
	return 0;
}

/* The HTTP body for a normalized request. */
char *
llm_build_request(enum llm_api api, const json_t *req, int stream,
    char *err, size_t errlen)
{
	if (llm_check_request(req, err, errlen) == -1)
		return NULL;
	return llm_codec(api)->build(req, stream, err, errlen);
}

/* Decode a non-streaming answer. */
json_t *
llm_parse_response(enum llm_api api, const char *body, size_t len,
    char *err, size_t errlen)
{
	return llm_codec(api)->parse(body, len, err, errlen);
}

/* The sse callback: hand one event to the format's decoder. */
static int
llm_stream_event_cb(void *arg, const char *event, const char *data,
    size_t len)
{
	struct llm_stream *s = arg;
	int rv;

	if (s->done)
		return 0;
	s->nevents++;
	if ((rv = s->codec->event(s, event, data, len)) != 0)
		s->failed = 1;
	return rv;
}

/* A decoder for an answer in api's format. */
struct llm_stream *
llm_stream_new(enum llm_api api)
{
	struct llm_stream *s = xcalloc(1, sizeof *s);

	s->codec = llm_codec(api);
	s->sse = sse_new(0, llm_stream_event_cb, s);
	return s;
}

/* Free a stream decoder. */
void
llm_stream_free(struct llm_stream *s)
{
	size_t i;

	if (s == NULL)
		return;
	sse_free(s->sse);
	llm_buf_free(&s->text);
	llm_buf_free(&s->refusal);
	for (i = 0; i < s->ncalls; i++) {
		free(s->calls[i].id);
		free(s->calls[i].name);
		llm_buf_free(&s->calls[i].args);
		json_decref(s->calls[i].input);
	}
	free(s->calls);
	free(s->id);
	free(s->model);
	free(s->raw_stop);
	free(s);
}

/* Decode the next bytes of the body. */
int
llm_stream_feed(struct llm_stream *s, const char *data, size_t len,
    char *err, size_t errlen)
{
	char serr[128];

	if (s->failed) {
		errf(err, errlen, "%s", s->err);
		return -1;
	}
	if (s->done)
		return 0;
	if (sse_feed(s->sse, data, len, serr, sizeof serr) == -1) {
		if (!s->failed) {
			s->failed = 1;
			snprintf(s->err, sizeof s->err, "event stream: %s",
			    serr);
		}
		errf(err, errlen, "%s", s->err);
		return -1;
	}
	return 0;
}

/* 1 once the terminal event was seen. */
int
llm_stream_done(const struct llm_stream *s)
{
	return s->done;
}

/* Fail the stream with a message. */
int
llm_stream_fail(struct llm_stream *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->err, sizeof s->err, fmt, ap);
	va_end(ap);
	s->failed = 1;
	return -1;
}

/* Fail the stream on a provider's error object. */
int
llm_stream_fail_event(struct llm_stream *s, const json_t *e)
{
	const char *type = NULL, *msg = NULL, *code;
	char codebuf[32];

	if (json_is_object(e)) {
		type = llm_str(e, "type");
		msg = llm_str(e, "message");
		if ((code = llm_code(e, codebuf, sizeof codebuf)) != NULL)
			snprintf(s->errcode, sizeof s->errcode, "%s", code);
	} else if (json_is_string(e))
		msg = json_string_value(e);
	s->errevent = 1;
	if (type != NULL)
		snprintf(s->errtype, sizeof s->errtype, "%s", type);
	llm_copy_utf8(s->errmsg, sizeof s->errmsg, msg != NULL ? msg : "");
	return llm_stream_fail(s, "provider error in stream: %s: %s",
	    type != NULL ? s->errtype : "error", s->errmsg);
}

/* The call with this index, created if new. */
struct llm_call *
llm_stream_call(struct llm_stream *s, long index)
{
	struct llm_call *c;
	size_t i;

	for (i = 0; i < s->ncalls; i++) {
		if (s->calls[i].index == index)
			return &s->calls[i];
	}
	if (s->ncalls >= LLM_MAX_CALLS)
		return NULL;
	s->calls = xrealloc(s->calls, (s->ncalls + 1) * sizeof *s->calls);
	c = &s->calls[s->ncalls++];
	memset(c, 0, sizeof *c);
	c->index = index;
	return c;
}

/* Order calls by index (insertion sort: there are few). */
static void
llm_sort_calls(struct llm_stream *s)
{
	struct llm_call tmp;
	size_t i, j;

	for (i = 1; i < s->ncalls; i++) {
		tmp = s->calls[i];
		for (j = i; j > 0 && s->calls[j - 1].index > tmp.index; j--)
			s->calls[j] = s->calls[j - 1];
		s->calls[j] = tmp;
	}
}

/* Build the stream's tool calls as normalized objects, in index order. */
json_t *
llm_stream_calls(struct llm_stream *s, int cut, char *err, size_t errlen)
{
	json_t *calls = json_array(), *args, *o;
	struct llm_call *c;
	char idbuf[32];
	size_t i;

	llm_sort_calls(s);
	for (i = 0; i < s->ncalls; i++) {
		c = &s->calls[i];
		if (!c->is_tool)
			continue;
		if (c->name == NULL || *c->name == '\0') {
			errf(err, errlen, "tool call %ld: no function name",
			    c->index);
			json_decref(calls);
			return NULL;
		}
		if (c->args.len == 0 && json_is_object(c->input))
			args = json_deep_copy(c->input);
		else if (llm_args_parse(c->name, c->args.p, c->args.len, cut,
		    &args, err, errlen) == -1) {
			json_decref(calls);
			return NULL;
		}
		snprintf(idbuf, sizeof idbuf, "call_%zu",
		    json_array_size(calls));
		o = json_object();
		json_object_set_new(o, "id", json_string(c->id != NULL &&
		    *c->id != '\0' ? c->id : idbuf));
		json_object_set_new(o, "name", json_string(c->name));
		json_object_set_new(o, "args", args);
		json_array_append_new(calls, o);
	}
	return calls;
}

/* The normalized response assembled from the stream. */
json_t *
llm_stream_finish(struct llm_stream *s, char *err, size_t errlen)
{
	const char *stop, *text = s->text.p;
	size_t textlen = s->text.len;
	json_t *calls;
	int cut;

	if (s->failed) {
		errf(err, errlen, "%s", s->err);
		return NULL;
	}
	if (!s->done) {
		errf(err, errlen, "stream ended before %s (after %ld events)",
		    s->codec->end_event,
		    s->nevents);
		return NULL;
	}
	cut = strcmp(llm_stop_reason(s->codec, s->raw_stop, 0),
	    "max_tokens") == 0;
	if ((calls = llm_stream_calls(s, cut, err, errlen)) == NULL)
		return NULL;
	if (textlen == 0 && s->refusal.len > 0) {
		text = s->refusal.p;
		textlen = s->refusal.len;
	}
	stop = llm_stop_reason(s->codec, s->raw_stop,
	    json_array_size(calls) > 0);
	return llm_response(text, textlen, calls, stop, s->raw_stop,
	    s->model, s->id, &s->usage);
}

json_t *
llm_tool_def(const json_t *t, const char *schema_key)
{
	json_t *def = json_object(), *schema;

	json_object_set_new(def, "name", json_string(json_string_value(
	    json_object_get(t, "name"))));
	if (json_is_string(json_object_get(t, "description")))
		json_object_set(def, "description", json_object_get(t,
		    "description"));
	schema = json_object_get(t, "input_schema");
	if (json_is_object(schema))
		json_object_set(def, schema_key, schema);
	else
		json_object_set_new(def, schema_key, json_pack("{s:s, s:{}}",
		    "type", "object", "properties"));
	return def;
}

json_t *
llm_load_object(const char *body, size_t len, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root;

	if ((root = json_loadb(body, len, 0, &jerr)) == NULL) {
		errf(err, errlen, "answer is not JSON: %s (line %d, "
		    "column %d)", jerr.text, jerr.line, jerr.column);
		return NULL;
	}
	if (!json_is_object(root)) {
		errf(err, errlen, "answer is not a JSON object");
		json_decref(root);
		return NULL;
	}
	return root;
}
