/*
 * llm_stream.c: the decoder of a streamed answer, common to both APIs:
 * SSE in, each event handed to the codec's decoder, text and tool calls
 * assembled by index, the normalized response at the end, and the
 * failure of a stream remembered for llm_stream_error().
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "protocols/llm_int.h"
#include "protocols/sse.h"
#include "runtime/util.h"

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
