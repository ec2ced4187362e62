/* llm_anthropic.c: the Anthropic Messages wire format. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "protocols/llm_int.h"
#include "runtime/util.h"

/* max_tokens is required by the API; this is sent when weft gives none. */
#define ANTHROPIC_DEFAULT_MAX_TOKENS	4096

/* A string member, or NULL. */
static const char *
anthropic_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* Append a text block unless text is empty (the API refuses those). */
static void
anthropic_text_block(json_t *blocks, const char *text)
{
	if (text != NULL && *text != '\0')
		json_array_append_new(blocks, json_pack("{s:s, s:s}", "type",
		    "text", "text", text));
}

/* The content blocks of one normalized message (not system). */
static json_t *
anthropic_blocks(const json_t *m, const char *role)
{
	json_t *blocks = json_array(), *c, *args, *b;
	const char *text = anthropic_str(m, "content");
	size_t i;

	if (strcmp(role, "tool") == 0) {
		b = json_pack("{s:s, s:s}", "type", "tool_result",
		    "tool_use_id", anthropic_str(m, "tool_call_id"));
		if (text != NULL && *text != '\0')
			json_object_set_new(b, "content", json_string(text));
		if (json_is_true(json_object_get(m, "is_error")))
			json_object_set_new(b, "is_error", json_true());
		json_array_append_new(blocks, b);
		return blocks;
	}
	anthropic_text_block(blocks, text);
	if (strcmp(role, "assistant") != 0)
		return blocks;
	json_array_foreach(json_object_get(m, "tool_calls"), i, c) {
		args = json_object_get(c, "args");
		json_array_append_new(blocks, json_pack("{s:s, s:s, s:s, s:o}",
		    "type", "tool_use", "id", anthropic_str(c, "id"), "name",
		    anthropic_str(c, "name"), "input", json_is_object(args) ?
		    json_deep_copy(args) : json_object()));
	}
	return blocks;
}

/*
 * Put the tool_result blocks of a user message first, keeping the order
 * within each kind: the API wants the results right after the tool_use
 * turn, before any text.
 */
static void
anthropic_results_first(json_t *blocks)
{
	json_t *sorted = json_array(), *b;
	size_t i;
	int pass;

	for (pass = 0; pass < 2; pass++) {
		json_array_foreach(blocks, i, b) {
			if ((strcmp(anthropic_str(b, "type"), "tool_result") ==
			    0) == (pass == 0))
				json_array_append(sorted, b);
		}
	}
	json_array_clear(blocks);
	json_array_extend(blocks, sorted);
	json_decref(sorted);
}

/* The request body; req was checked by llm_check_request. */
static char *
llm_anthropic_build(const json_t *req, int stream, char *err,
    size_t errlen)
{
	json_t *body = json_object(), *msgs = json_array(), *m, *blocks;
	json_t *last = NULL, *tools, *t, *v;
	struct llm_buf sys = { 0 };
	const char *role, *wire, *text;
	char *out;
	size_t i;

	json_object_set_new(body, "model",
	    json_string(anthropic_str(req, "model")));
	v = json_object_get(req, "max_tokens");
	json_object_set_new(body, "max_tokens", json_integer(json_is_integer(v)
	    ? json_integer_value(v) : ANTHROPIC_DEFAULT_MAX_TOKENS));

	json_array_foreach(json_object_get(req, "messages"), i, m) {
		role = anthropic_str(m, "role");
		if (strcmp(role, "system") == 0) {
			text = anthropic_str(m, "content");
			if (*text == '\0')
				continue;
			if (sys.len > 0)
				llm_buf_add(&sys, "\n\n", 2);
			llm_buf_add(&sys, text, strlen(text));
			continue;
		}
		blocks = anthropic_blocks(m, role);
		if (json_array_size(blocks) == 0) {
			json_decref(blocks);
			continue;
		}
		/* The API wants user and assistant turns to alternate. */
		wire = strcmp(role, "assistant") == 0 ? "assistant" : "user";
		if (last != NULL &&
		    strcmp(anthropic_str(last, "role"), wire) == 0) {
			json_array_extend(json_object_get(last, "content"),
			    blocks);
			json_decref(blocks);
			continue;
		}
		last = json_pack("{s:s, s:o}", "role", wire, "content",
		    blocks);
		json_array_append_new(msgs, last);
	}
	json_array_foreach(msgs, i, m) {
		if (strcmp(anthropic_str(m, "role"), "user") == 0)
			anthropic_results_first(json_object_get(m, "content"));
	}
	if (sys.len > 0)
		json_object_set_new(body, "system", json_stringn(sys.p,
		    sys.len));
	llm_buf_free(&sys);
	json_object_set_new(body, "messages", msgs);

	tools = json_object_get(req, "tools");
	if (json_array_size(tools) > 0) {
		v = json_array();
		json_array_foreach(tools, i, t)
			json_array_append_new(v, llm_tool_def(t,
			    "input_schema"));
		json_object_set_new(body, "tools", v);
	}
	if (json_is_number(v = json_object_get(req, "temperature")))
		json_object_set(body, "temperature", v);
	if (stream)
		json_object_set_new(body, "stream", json_true());
	out = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (out == NULL)
		errf(err, errlen, "request could not be encoded as JSON");
	return out;
}

/* Copy the usage counts present in u (message_delta may repeat some). */
static void
anthropic_usage(const json_t *u, struct llm_usage *out)
{
	static const struct {
		const char	*key;
		size_t		 off;
	} map[] = {
		{ "input_tokens", offsetof(struct llm_usage, input) },
		{ "output_tokens", offsetof(struct llm_usage, output) },
		{ "cache_read_input_tokens",
		    offsetof(struct llm_usage, cache_read) },
		{ "cache_creation_input_tokens",
		    offsetof(struct llm_usage, cache_write) },
	};
	json_t *v;
	size_t i;

	if (!json_is_object(u))
		return;
	for (i = 0; i < nitems(map); i++) {
		v = json_object_get(u, map[i].key);
		if (json_is_integer(v) && json_integer_value(v) >= 0)
			*(json_int_t *)((char *)out + map[i].off) =
			    json_integer_value(v);
	}
	out->set = 1;
}

/* One tool_use block of a non-streaming answer, as {id, name, args}. */
static json_t *
anthropic_call(const json_t *b, size_t j, int cut, char *err,
    size_t errlen)
{
	const char *name = anthropic_str(b, "name"), *id;
	json_t *in = json_object_get(b, "input"), *args;
	char idbuf[32];

	if (name == NULL || *name == '\0') {
		errf(err, errlen, "content[%zu].name missing", j);
		return NULL;
	}
	if (json_is_object(in))
		args = json_deep_copy(in);
	else if (in == NULL || json_is_null(in))
		args = json_object();
	else if (json_is_string(in)) {
		if (llm_args_parse(name, json_string_value(in),
		    json_string_length(in), cut, &args, err, errlen) == -1)
			return NULL;
	} else {
		errf(err, errlen, "tool call '%s': input is not a JSON object",
		    name);
		return NULL;
	}
	snprintf(idbuf, sizeof idbuf, "call_%zu", j);
	id = anthropic_str(b, "id");
	return json_pack("{s:s, s:s, s:o}", "id", id != NULL && *id != '\0' ?
	    id : idbuf, "name", name, "args", args);
}

/* Decode a non-streaming answer. */
static json_t *
llm_anthropic_parse(const char *body, size_t len, char *err, size_t errlen)
{
	json_t *root, *content, *b, *call, *list = NULL, *out = NULL, *e;
	const char *type, *stop, *t;
	struct llm_buf text = { 0 };
	struct llm_usage u = { 0 };
	size_t j;
	int cut;

	if ((root = llm_load_object(body, len, err, errlen)) == NULL)
		return NULL;
	e = json_object_get(root, "error");
	if ((t = anthropic_str(root, "type")) != NULL &&
	    strcmp(t, "error") == 0) {
		errf(err, errlen, "answer holds an error: %s",
		    anthropic_str(e, "message") != NULL ?
		    anthropic_str(e, "message") : "no message");
		goto out;
	}
	content = json_object_get(root, "content");
	if (!json_is_array(content)) {
		errf(err, errlen, "content missing");
		goto out;
	}
	stop = anthropic_str(root, "stop_reason");
	cut = stop != NULL && strcmp(stop, "max_tokens") == 0;
	list = json_array();
	json_array_foreach(content, j, b) {
		if ((type = anthropic_str(b, "type")) == NULL) {
			errf(err, errlen, "content[%zu].type missing", j);
			goto out;
		}
		if (strcmp(type, "text") == 0) {
			if ((t = anthropic_str(b, "text")) == NULL) {
				errf(err, errlen, "content[%zu].text: must be "
				    "a string", j);
				goto out;
			}
			llm_buf_add(&text, t, strlen(t));
		} else if (strcmp(type, "tool_use") == 0) {
			if ((call = anthropic_call(b, j, cut, err, errlen)) ==
			    NULL)
				goto out;
			json_array_append_new(list, call);
		}
		/* thinking, redacted_thinking, server tools: not carried. */
	}
	anthropic_usage(json_object_get(root, "usage"), &u);
	out = llm_response(text.p, text.len, list,
	    llm_stop_reason(&llm_anthropic_codec, stop, json_array_size(list) > 0),
	    stop, anthropic_str(root, "model"), anthropic_str(root, "id"), &u);
	list = NULL;
out:
	llm_buf_free(&text);
	json_decref(list);
	json_decref(root);
	return out;
}

/* The block an event names by its index, or NULL. */
static struct llm_call *
anthropic_block(struct llm_stream *s, const json_t *root, long *index)
{
	json_t *ix = json_object_get(root, "index");
	size_t i;

	if (!json_is_integer(ix))
		return NULL;
	*index = (long)json_integer_value(ix);
	for (i = 0; i < s->ncalls; i++) {
		if (s->calls[i].index == *index)
			return &s->calls[i];
	}
	return NULL;
}

/* content_block_start: a text or tool_use block (others are ignored). */
static int
anthropic_block_start(struct llm_stream *s, const json_t *root)
{
	json_t *cb = json_object_get(root, "content_block"), *ix, *in;
	struct llm_call *c;
	const char *type, *t;

	ix = json_object_get(root, "index");
	type = anthropic_str(cb, "type");
	if (!json_is_integer(ix) || json_integer_value(ix) < 0 ||
	    json_integer_value(ix) >= LLM_MAX_CALLS || type == NULL)
		return llm_stream_fail(s, "event %ld: content_block_start "
		    "without a valid index and content_block.type",
		    s->nevents);
	if ((c = llm_stream_call(s, (long)json_integer_value(ix))) == NULL)
		return llm_stream_fail(s, "event %ld: more than %d content "
		    "blocks", s->nevents, LLM_MAX_CALLS);
	if (strcmp(type, "text") == 0) {
		if ((t = anthropic_str(cb, "text")) != NULL)
			llm_buf_add(&s->text, t, strlen(t));
	} else if (strcmp(type, "tool_use") == 0) {
		c->is_tool = 1;
		llm_set_once(&c->id, anthropic_str(cb, "id"));
		llm_set_once(&c->name, anthropic_str(cb, "name"));
		in = json_object_get(cb, "input");
		if (json_is_object(in) && c->input == NULL)
			c->input = json_deep_copy(in);
	}
	return 0;
}

/* content_block_delta: text, or a piece of a tool's input JSON. */
static int
anthropic_block_delta(struct llm_stream *s, const json_t *root)
{
	json_t *delta = json_object_get(root, "delta"), *v;
	struct llm_call *c;
	const char *type = anthropic_str(delta, "type");
	long index = -1;

	if (type == NULL)
		return llm_stream_fail(s, "event %ld: content_block_delta "
		    "without delta.type", s->nevents);
	if (strcmp(type, "text_delta") == 0) {
		if (!json_is_string(v = json_object_get(delta, "text")))
			return llm_stream_fail(s, "event %ld: text_delta "
			    "without text", s->nevents);
		llm_buf_add(&s->text, json_string_value(v),
		    json_string_length(v));
	} else if (strcmp(type, "input_json_delta") == 0) {
		c = anthropic_block(s, root, &index);
		if (c == NULL || !c->is_tool)
			return llm_stream_fail(s, "event %ld: "
			    "input_json_delta for block %ld, which is not a "
			    "started tool_use", s->nevents, index);
		if (!json_is_string(v = json_object_get(delta,
		    "partial_json")))
			return llm_stream_fail(s, "event %ld: "
			    "input_json_delta without partial_json",
			    s->nevents);
		llm_buf_add(&c->args, json_string_value(v),
		    json_string_length(v));
	}
	/* thinking_delta, signature_delta, citations_delta: not carried. */
	return 0;
}

/* One SSE event of a streamed answer. */
static int
llm_anthropic_event(struct llm_stream *s, const char *event,
    const char *data, size_t len)
{
	json_t *root, *msg, *delta;
	json_error_t jerr;
	const char *type, *stop;
	int rv = 0;

	if ((root = json_loadb(data, len, 0, &jerr)) == NULL)
		return llm_stream_fail(s, "event %ld (%s): data is not JSON: "
		    "%s (column %d)", s->nevents, event, jerr.text,
		    jerr.column);
	if (!json_is_object(root)) {
		rv = llm_stream_fail(s, "event %ld (%s): data is not a JSON "
		    "object", s->nevents, event);
		goto out;
	}
	/* The data's type always repeats the event name; trust the data. */
	if ((type = anthropic_str(root, "type")) == NULL)
		type = event;
	if (strcmp(type, "message_start") == 0) {
		msg = json_object_get(root, "message");
		if (!json_is_object(msg)) {
			rv = llm_stream_fail(s, "event %ld: message_start "
			    "without message", s->nevents);
			goto out;
		}
		llm_set_once(&s->id, anthropic_str(msg, "id"));
		llm_set_once(&s->model, anthropic_str(msg, "model"));
		anthropic_usage(json_object_get(msg, "usage"), &s->usage);
	} else if (strcmp(type, "content_block_start") == 0)
		rv = anthropic_block_start(s, root);
	else if (strcmp(type, "content_block_delta") == 0)
		rv = anthropic_block_delta(s, root);
	else if (strcmp(type, "message_delta") == 0) {
		delta = json_object_get(root, "delta");
		if ((stop = anthropic_str(delta, "stop_reason")) != NULL) {
			free(s->raw_stop);
			s->raw_stop = xstrdup(stop);
		}
		anthropic_usage(json_object_get(root, "usage"), &s->usage);
	} else if (strcmp(type, "message_stop") == 0)
		s->done = 1;
	else if (strcmp(type, "error") == 0)
		rv = llm_stream_fail_event(s, json_object_get(root, "error"));
	/* ping, content_block_stop and types added later: nothing to do. */
out:
	json_decref(root);
	return rv;
}

static const struct llm_stop llm_anthropic_stops[] = {
	{ "end_turn", "final" },
	{ "stop_sequence", "final" },
	{ "tool_use", "tool_use" },
	{ "max_tokens", "max_tokens" },
	{ "model_context_window_exceeded", "max_tokens" },
	{ NULL, NULL }
};

const struct llm_codec llm_anthropic_codec = {
	.name = "anthropic",
	.end_event = "message_stop",
	.stops = llm_anthropic_stops,
	.build = llm_anthropic_build,
	.parse = llm_anthropic_parse,
	.event = llm_anthropic_event,
};
