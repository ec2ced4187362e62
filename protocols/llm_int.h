/*
 * llm_int.h: the private half of llm.h, shared by protocols/llm*.c (the
 * common parts: llm.c, llm_check.c, llm_stream.c, llm_error.c; one codec
 * per model API) and their unit test only.
 */
#ifndef WEFT_LLM_INT_H
#define WEFT_LLM_INT_H

#include <jansson.h>

#include "protocols/llm.h"
#include "protocols/sse.h"

/* Most tool calls one answer may carry. */
#define LLM_MAX_CALLS	1024

/* A growable byte buffer. */
struct llm_buf {
	char	*p;
	size_t	 len;
	size_t	 cap;
};

/* Append n bytes. */
void llm_buf_add(struct llm_buf *, const char *, size_t);

/*
 * A tool declaration in a provider's shape: {name, description?,
 * <schema_key>: the input schema, or an empty object schema}.  New
 * reference.
 */
json_t *llm_tool_def(const json_t *tool, const char *schema_key);

/*
 * Parse an answer body that must be a JSON object: a new reference, or
 * NULL with err ("answer is not JSON: ... (line L, column C)").
 */
json_t *llm_load_object(const char *body, size_t len, char *err,
    size_t errlen);
void llm_buf_free(struct llm_buf *);

struct llm_usage {
	json_int_t	input;
	json_int_t	output;
	json_int_t	cache_read;
	json_int_t	cache_write;
	int		set;
};

/* A tool call being assembled from a stream. */
struct llm_call {
	long		 index;		/* OpenAI index / Anthropic block */
	int		 is_tool;	/* Anthropic: a tool_use block */
	char		*id;
	char		*name;
	struct llm_buf	 args;		/* argument JSON text so far */
	json_t		*input;		/* Anthropic: input at block start */
};

/*
 * A model API's wire format, as nng's transports fill a struct nni_sp_tran:
 * one per API (llm_openai.c, llm_anthropic.c), found by llm_codec().
 */
struct llm_codec {
	const char	*name;		/* "openai", "anthropic" */
	const char	*end_event;	/* what ends a complete stream */
	/* The API's stop values and their normalized stop_reason; NULL
	   ends the table.  A value not listed is "other". */
	const struct llm_stop {
		const char	*raw;
		const char	*norm;
	}		*stops;
	/* The HTTP body of a checked, normalized request. */
	char		*(*build)(const json_t *req, int stream, char *err,
			    size_t errlen);
	/* A non-streaming answer, normalized (llm_response). */
	json_t		*(*parse)(const char *body, size_t len, char *err,
			    size_t errlen);
	/* One server-sent event of a streaming answer. */
	int		 (*event)(struct llm_stream *, const char *event,
			    const char *data, size_t len);
};

extern const struct llm_codec llm_openai_codec;
extern const struct llm_codec llm_anthropic_codec;

/* The codec of api. */
const struct llm_codec *llm_codec(enum llm_api);

struct llm_stream {
	const struct llm_codec *codec;
	struct sse	*sse;
	struct llm_buf	 text;
	struct llm_buf	 refusal;
	struct llm_call	*calls;
	size_t		 ncalls;
	char		*id;
	char		*model;
	char		*raw_stop;
	struct llm_usage usage;
	long		 nevents;
	int		 done;
	int		 failed;
	int		 errevent;	/* failed on a provider error event */
	char		 errtype[64];
	char		 errcode[64];
	char		 errmsg[512];
	char		 err[512];
};

/* Fail the stream with a message in s->err; returns -1. */
int llm_stream_fail(struct llm_stream *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
/* Fail the stream on a provider's error object {type, message, code}. */
int llm_stream_fail_event(struct llm_stream *, const json_t *error);

/* The call with this index, created if new; NULL past LLM_MAX_CALLS. */
struct llm_call *llm_stream_call(struct llm_stream *, long index);
/* Replace *dst with a copy of src if *dst is NULL or empty. */
void llm_set_once(char **dst, const char *src);

/*
 * Parse a tool call's argument text into a new object in *out, or return
 * -1 with err "tool call 'name': arguments are not JSON: ...".  cut adds
 * a note that the answer was cut at max_tokens.
 */
int llm_args_parse(const char *name, const char *p, size_t n, int cut,
    json_t **out, char *err, size_t errlen);

/*
 * The normalized response.  calls (stolen, may be NULL or empty) holds
 * {id, name, args} objects; raw_stop, model and id may be NULL.
 */
json_t *llm_response(const char *text, size_t textlen, json_t *calls,
    const char *stop_reason, const char *raw_stop, const char *model,
    const char *id, const struct llm_usage *);

/* Map a provider stop value to a normalized stop_reason. */
const char *llm_stop_reason(const struct llm_codec *, const char *raw,
    int have_calls);

/* Validate a normalized request; 0, or -1 with err naming the problem. */
int llm_check_request(const json_t *req, char *err, size_t errlen);

/* Build the stream's tool calls as normalized objects, in index order. */
json_t *llm_stream_calls(struct llm_stream *, int cut, char *err,
    size_t errlen);

/*
 * Fill *out from an error's parts (any may be NULL); status 0 for an error
 * that came inside a stream.
 */
void llm_classify(long status, const char *type, const char *code,
    const char *message, struct llm_error *out);

/* Milliseconds to wait from the two headers at time now, or -1. */
long llm_retry_after_ms(const char *retry_after, const char *ms,
    double now);

/* Copy s into dst[size] whole UTF-8 characters at a time. */
void llm_copy_utf8(char *dst, size_t size, const char *s);
/* Length of the valid UTF-8 sequence at p (n bytes available), or 0. */
size_t llm_utf8_len(const unsigned char *p, size_t n);
/* True if a and b are both set and equal. */
int llm_eq(const char *a, const char *b);
/* A string member of o, or NULL. */
const char *llm_str(const json_t *o, const char *key);
/* The "code" member of o as text (a string, or an integer written into
   buf), or NULL. */
const char *llm_code(const json_t *o, char *buf, size_t size);

#endif
