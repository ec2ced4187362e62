/*
 * llm.c: the parts of the LLM codecs both wire formats share: the codec
 * table and dispatch, the normalized response, stop reasons, tool-call
 * arguments and small helpers (buffers, UTF-8).  Request validation is in
 * llm_check.c, the stream decoder in llm_stream.c, error classification
 * in llm_error.c; one codec per API in llm_openai.c, llm_anthropic.c.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "protocols/llm_int.h"
#include "runtime/util.h"

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
size_t
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

/* True if a and b are both set and equal. */
int
llm_eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* A string member, or NULL. */
const char *
llm_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* A code member as text (OpenAI gives strings, some servers numbers). */
const char *
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
