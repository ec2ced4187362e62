/*
 * llm.h: codecs for the two LLM wire formats weft speaks.
 *
 * OpenAI-compatible Chat Completions (OpenAI, Ollama, vLLM, llama.cpp
 * server ...) and Anthropic Messages.  Pure: no I/O.  The gateway
 * (engine/gateway.c) builds an HTTP body from weft's normalized request,
 * sends it, and turns the answer -- a JSON body, an SSE stream fed in
 * pieces, or an HTTP error -- back into weft's normalized response or a
 * classified error.
 *
 * Normalized request (a jansson object, weft's own form):
 *  { "model": "gpt-4o-mini",
 *    "messages": [
 *      {"role":"system","content":"..."},
 *      {"role":"user","content":"..."},
 *      {"role":"assistant","content":"text, or absent/null",
 *       "tool_calls":[{"id":"..","name":"..","args":{...}}]},
 *      {"role":"tool","tool_call_id":"..","name":"..","content":"text",
 *       "is_error":false} ],
 *    "tools": [ {"name":"..","description":"..","input_schema":{...}} ],
 *    "max_tokens": 1024, "temperature": 0.2,
 *    "max_tokens_field": "max_completion_tokens" }
 * tools, max_tokens, temperature and max_tokens_field are optional; a
 * tool's description and input_schema and a call's args may be left out.
 *
 * Normalized response:
 *  { "text": "..." ("" if none),
 *    "tool_calls": [{"id":"..","name":"..","args":{...}}] (absent if none),
 *    "stop_reason": "final" | "tool_use" | "max_tokens" | "other",
 *    "raw_stop": the provider's own value ("stop", "end_turn", ...; ""
 *                if it gave none),
 *    "model": the model the provider says answered ("" if not said),
 *    "id": the provider's response id ("" if not said),
 *    "usage": {"input_tokens":N, "output_tokens":N,
 *              "cache_read_tokens":N, "cache_write_tokens":N} }
 * input_tokens never includes cached tokens.  "usage" is absent when the
 * provider reported none (an OpenAI-compatible server that ignores
 * stream_options, say).  stop_reason is "tool_use" whenever tool_calls is
 * present and the model stopped normally (some servers say "stop" there),
 * and never "tool_use" without tool_calls.
 */
#ifndef WEFT_LLM_H
#define WEFT_LLM_H

#include <stddef.h>
#include <jansson.h>

enum llm_api { LLM_OPENAI, LLM_ANTHROPIC };

/*
 * The HTTP body for req (malloc'd, NUL-terminated; the caller frees it), or
 * NULL with err naming the first problem in req ("messages[2].tool_calls[0]
 * .name: must be a non-empty string").  req is only read.  With stream,
 * asks for an SSE answer.
 *
 * OpenAI: system messages stay messages of role system; assistant
 * tool_calls become [{id, type:"function", function:{name, arguments}}]
 * with the args as a JSON string; tool messages become role tool with
 * tool_call_id (a tool result with is_error gets "Error: " put before its
 * content, the format having no flag for it); tools become
 * [{type:"function", function:{name, description, parameters}}].
 * max_tokens is sent as "max_completion_tokens", the name OpenAI's current
 * models require (its reasoning models refuse "max_tokens").  Older
 * compatible servers (Ollama, llama.cpp) only know "max_tokens": a request
 * with "max_tokens_field":"max_tokens" sends that name instead.  Streaming
 * adds "stream_options":{"include_usage":true} so usage is reported.
 *
 * Anthropic: system messages are joined with a blank line into the
 * top-level "system"; consecutive messages of one role are merged into one
 * message of content blocks, as the API requires alternation, with
 * tool_result blocks first in a merged user message; tool messages become
 * tool_result blocks (tool_use_id, content, is_error) of a user message;
 * assistant messages become text and tool_use (id, name, input) blocks;
 * empty text is left out (the API refuses empty text blocks); max_tokens
 * defaults to 4096; a tool without input_schema gets an empty object
 * schema.
 */
char *llm_build_request(enum llm_api, const json_t *req, int stream,
    char *err, size_t errlen);

/*
 * Decode the body of a 2xx non-streaming answer into a normalized response
 * (a new reference), or NULL with err naming what was wrong:
 * "choices[0].message missing", "tool call 'x': arguments are not JSON:
 * ...".  Tool-call arguments that are not a JSON object are an error, never
 * replaced by {}; empty arguments ("") mean no arguments and give {}.  A
 * tool call without an id (some local servers) gets "call_<n>".
 *
 * Usage: OpenAI's prompt_tokens includes cached tokens, so input_tokens =
 * prompt_tokens - prompt_tokens_details.cached_tokens, cache_read_tokens =
 * cached_tokens, output_tokens = completion_tokens; Anthropic's
 * input_tokens, output_tokens, cache_read_input_tokens and
 * cache_creation_input_tokens map directly.
 *
 * Stop reasons: OpenAI stop -> final, tool_calls -> tool_use, length ->
 * max_tokens; Anthropic end_turn and stop_sequence -> final, tool_use ->
 * tool_use, max_tokens and model_context_window_exceeded -> max_tokens;
 * anything else (content_filter, refusal, pause_turn ...) -> other.
 * Content the normalized form has no place for (Anthropic thinking blocks)
 * is dropped; an OpenAI refusal becomes the text when there is no other.
 */
json_t *llm_parse_response(enum llm_api, const char *body, size_t len,
    char *err, size_t errlen);

/*
 * A streaming (SSE) answer decoded as it arrives.  Feed it the raw body
 * bytes of a 2xx answer, split anywhere; once the stream has ended, take
 * the normalized response with llm_stream_finish.
 */
struct llm_stream;

/* A decoder for an answer in api's format; free with llm_stream_free. */
struct llm_stream *llm_stream_new(enum llm_api);

/*
 * Decode the next len bytes of the body.  Returns 0, or -1 with err set
 * when an event's data is malformed, an event is over 8 MiB, or the
 * provider sent an error in the stream (Anthropic "event: error", an
 * OpenAI chunk holding "error"): err then says its type and message, and
 * llm_stream_error classifies it.  After -1 the stream is failed and every
 * later call fails the same way.  Bytes after the terminal event are
 * ignored.
 */
int llm_stream_feed(struct llm_stream *, const char *data, size_t len,
    char *err, size_t errlen);

/* 1 once the terminal event was seen ([DONE] / message_stop), else 0. */
int llm_stream_done(const struct llm_stream *);

/*
 * The normalized response assembled from the stream (a new reference), or
 * NULL with err: the failure of an earlier feed, "stream ended before
 * [DONE]" (or "before message_stop") for a truncated stream, or a tool
 * call whose arguments are not a JSON object.  The stream stays the
 * caller's to free.
 */
json_t *llm_stream_finish(struct llm_stream *, char *err, size_t errlen);

/* Free a stream decoder.  NULL is allowed. */
void llm_stream_free(struct llm_stream *);

struct llm_error {
	int	transient;		/* 1: worth retrying */
	int	context_overflow;	/* 1: the prompt is too long */
	char	kind[32];	/* see llm_classify_error */
	char	message[512];	/* the provider's message, verbatim */
	long	retry_after_ms;	/* from the headers, -1 if none */
};

/*
 * Classify an HTTP error answer: status, its body (len bytes, JSON or not)
 * and the values of its Retry-After and retry-after-ms headers (NULL when
 * absent).  Fills *out; never fails.
 *
 * kind: "rate_limited" (429), "server" (408, 5xx), "overloaded" (529, or
 * an overloaded_error of any status), "context_overflow", "auth" (401),
 * "permission" (403), "bad_request" (400, 413, 422), "not_found" (404),
 * "other" (anything else, 409 included).  transient: 408, 409, 429, 5xx,
 * 529 -- except a 429 for an exhausted quota or spend limit (OpenAI
 * insufficient_quota, Anthropic enforced_spend_limit_reached), which stays
 * kind "rate_limited" but is not transient.  context_overflow: OpenAI code
 * context_length_exceeded or a message about the "maximum context length"
 * (vLLM), llama.cpp's exceed_context_size_error, Anthropic
 * invalid_request_error "prompt is too long..." or "... exceed context
 * limit ..."; kind is then "context_overflow" and transient 0.
 *
 * message is the provider's own error message, verbatim but cut to fit (at
 * a UTF-8 character boundary); for a body that is not a JSON error (a
 * proxy's HTML page) it is a short excerpt, the page's title if it has
 * one, with control characters and invalid UTF-8 replaced.  Nothing of the
 * request goes into it.  retry_after_ms: retry-after-ms (milliseconds)
 * wins over Retry-After (seconds, possibly fractional, or an HTTP-date);
 * rounded up, capped at 7 days, -1 if neither is usable.
 */
void llm_classify_error(enum llm_api, long status, const char *body,
    size_t len, const char *retry_after, const char *retry_after_ms,
    struct llm_error *out);

/*
 * After llm_stream_feed failed: classify what failed, as
 * llm_classify_error would (an in-stream overloaded_error is transient,
 * "overloaded"; api_error is transient, "server"), with retry_after_ms -1.
 * A failure that was not an error event (malformed data) is kind
 * "malformed", not transient, with the feed's error as message.
 */
void llm_stream_error(const struct llm_stream *, struct llm_error *out);

#endif
