/* llm_openai.c: the OpenAI Chat Completions wire format. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "protocols/llm_int.h"
#include "runtime/util.h"

/* A string member, or NULL. */
static const char *
openai_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* An assistant message: text and/or tool_calls. */
static json_t *
openai_assistant(const json_t *m)
{
	json_t *o = json_object(), *calls, *c, *wire, *fn, *args;
	const char *text = openai_str(m, "content");
	char *argtext;
	size_t i;

	json_object_set_new(o, "role", json_string("assistant"));
	calls = json_object_get(m, "tool_calls");
	if (json_array_size(calls) == 0) {
		json_object_set_new(o, "content", json_string(text != NULL ?
		    text : ""));
		return o;
	}
	/* With tool calls and no text, the API expects content null. */
	json_object_set_new(o, "content", text != NULL && *text != '\0' ?
	    json_string(text) : json_null());
	wire = json_array();
	json_array_foreach(calls, i, c) {
		args = json_object_get(c, "args");
		argtext = json_is_object(args) ?
		    json_dumps(args, JSON_COMPACT) : NULL;
		fn = json_object();
		json_object_set_new(fn, "name",
		    json_string(openai_str(c, "name")));
		json_object_set_new(fn, "arguments",
		    json_string(argtext != NULL ? argtext : "{}"));
		free(argtext);
		json_array_append_new(wire, json_pack("{s:s, s:s, s:o}", "id",
		    openai_str(c, "id"), "type", "function", "function", fn));
	}
	json_object_set_new(o, "tool_calls", wire);
	return o;
}

/* A tool result: role tool, with is_error folded into the text. */
static json_t *
openai_tool_result(const json_t *m)
{
	const char *text = openai_str(m, "content");
	json_t *o;
	char *s;

	if (text == NULL)
		text = "";
	if (json_is_true(json_object_get(m, "is_error"))) {
		s = xasprintf("Error: %s", text);
		o = json_pack("{s:s, s:s, s:s}", "role", "tool",
		    "tool_call_id", openai_str(m, "tool_call_id"), "content",
		    s);
		free(s);
		return o;
	}
	return json_pack("{s:s, s:s, s:s}", "role", "tool", "tool_call_id",
	    openai_str(m, "tool_call_id"), "content", text);
}

/* The request body; req was checked by llm_check_request. */
static char *
llm_openai_build(const json_t *req, int stream, char *err, size_t errlen)
{
	json_t *body = json_object(), *msgs = json_array(), *tools, *t, *m;
	json_t *v;
	const char *role, *field;
	char *out;
	size_t i;

	json_object_set_new(body, "model",
	    json_string(openai_str(req, "model")));
	json_array_foreach(json_object_get(req, "messages"), i, m) {
		role = openai_str(m, "role");
		if (strcmp(role, "assistant") == 0)
			json_array_append_new(msgs, openai_assistant(m));
		else if (strcmp(role, "tool") == 0)
			json_array_append_new(msgs, openai_tool_result(m));
		else
			json_array_append_new(msgs, json_pack("{s:s, s:s}",
			    "role", role, "content",
			    openai_str(m, "content")));
	}
	json_object_set_new(body, "messages", msgs);

	tools = json_object_get(req, "tools");
	if (json_array_size(tools) > 0) {
		v = json_array();
		json_array_foreach(tools, i, t)
			json_array_append_new(v, json_pack("{s:s, s:o}",
			    "type", "function", "function",
			    llm_tool_def(t, "parameters")));
		json_object_set_new(body, "tools", v);
	}

	if (json_is_integer(v = json_object_get(req, "max_tokens"))) {
		if ((field = openai_str(req, "max_tokens_field")) == NULL)
			field = "max_completion_tokens";
		json_object_set(body, field, v);
	}
	if (json_is_number(v = json_object_get(req, "temperature")))
		json_object_set(body, "temperature", v);
	if (stream) {
		json_object_set_new(body, "stream", json_true());
		json_object_set_new(body, "stream_options",
		    json_pack("{s:b}", "include_usage", 1));
	}
	out = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (out == NULL)
		errf(err, errlen, "request could not be encoded as JSON");
	return out;
}

/* A non-negative integer member, or 0. */
static json_int_t
openai_count(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return 0;
	return json_integer_value(v);
}

/* Usage: prompt_tokens counts the cached tokens too; take them out. */
static void
openai_usage(const json_t *usage, struct llm_usage *u)
{
	json_int_t prompt, cached;

	if (!json_is_object(usage))
		return;
	prompt = openai_count(usage, "prompt_tokens");
	cached = openai_count(json_object_get(usage, "prompt_tokens_details"),
	    "cached_tokens");
	if (cached > prompt)
		cached = prompt;
	u->input = prompt - cached;
	u->cache_read = cached;
	u->cache_write = 0;
	u->output = openai_count(usage, "completion_tokens");
	u->set = 1;
}

/* The message of an error member, for an error text. */
static const char *
openai_error_text(const json_t *e)
{
	const char *s;

	if (json_is_string(e))
		return json_string_value(e);
	if ((s = openai_str(e, "message")) != NULL)
		return s;
	if ((s = openai_str(e, "type")) != NULL)
		return s;
	return "no message";
}

/* One tool call of a non-streaming message, as {id, name, args}. */
static json_t *
openai_call(const json_t *tc, size_t j, int cut, char *err, size_t errlen)
{
	json_t *fn, *a, *args;
	const char *name, *id;
	char idbuf[32];

	if (!json_is_object(tc)) {
		errf(err, errlen, "choices[0].message.tool_calls[%zu]: not an "
		    "object", j);
		return NULL;
	}
	fn = json_object_get(tc, "function");
	if (!json_is_object(fn)) {
		errf(err, errlen, "choices[0].message.tool_calls[%zu]."
		    "function missing", j);
		return NULL;
	}
	name = openai_str(fn, "name");
	if (name == NULL || *name == '\0') {
		errf(err, errlen, "choices[0].message.tool_calls[%zu].function"
		    ".name missing", j);
		return NULL;
	}
	a = json_object_get(fn, "arguments");
	if (json_is_string(a)) {
		if (llm_args_parse(name, json_string_value(a),
		    json_string_length(a), cut, &args, err, errlen) == -1)
			return NULL;
	} else if (json_is_object(a))
		args = json_deep_copy(a);
	else if (a == NULL || json_is_null(a))
		args = json_object();
	else {
		errf(err, errlen, "tool call '%s': arguments are not a JSON "
		    "object", name);
		return NULL;
	}
	snprintf(idbuf, sizeof idbuf, "call_%zu", j);
	id = openai_str(tc, "id");
	return json_pack("{s:s, s:s, s:o}", "id", id != NULL && *id != '\0' ?
	    id : idbuf, "name", name, "args", args);
}

/* Decode a non-streaming answer. */
static json_t *
llm_openai_parse(const char *body, size_t len, char *err, size_t errlen)
{
	json_t *root, *choices, *c0, *msg, *content, *calls, *tc, *call;
	json_t *out = NULL, *list = NULL, *e;
	const char *text = "", *finish, *refusal;
	struct llm_usage u = { 0 };
	size_t j;
	int cut;

	if ((root = llm_load_object(body, len, err, errlen)) == NULL)
		return NULL;
	e = json_object_get(root, "error");
	if (e != NULL && !json_is_null(e)) {
		errf(err, errlen, "answer holds an error: %s",
		    openai_error_text(e));
		goto out;
	}
	choices = json_object_get(root, "choices");
	if (!json_is_array(choices)) {
		errf(err, errlen, "choices missing");
		goto out;
	}
	if (json_array_size(choices) == 0) {
		errf(err, errlen, "choices is empty");
		goto out;
	}
	c0 = json_array_get(choices, 0);
	msg = json_object_get(c0, "message");
	if (!json_is_object(msg)) {
		errf(err, errlen, "choices[0].message missing");
		goto out;
	}
	content = json_object_get(msg, "content");
	if (json_is_string(content))
		text = json_string_value(content);
	else if (content != NULL && !json_is_null(content)) {
		errf(err, errlen, "choices[0].message.content: must be a "
		    "string or null");
		goto out;
	}
	refusal = openai_str(msg, "refusal");
	if (*text == '\0' && refusal != NULL)
		text = refusal;
	finish = openai_str(c0, "finish_reason");
	cut = finish != NULL && strcmp(finish, "length") == 0;

	list = json_array();
	calls = json_object_get(msg, "tool_calls");
	if (calls != NULL && !json_is_null(calls) && !json_is_array(calls)) {
		errf(err, errlen, "choices[0].message.tool_calls: must be an "
		    "array");
		goto out;
	}
	json_array_foreach(calls, j, tc) {
		if ((call = openai_call(tc, j, cut, err, errlen)) == NULL)
			goto out;
		json_array_append_new(list, call);
	}
	openai_usage(json_object_get(root, "usage"), &u);
	out = llm_response(text, strlen(text), list,
	    llm_stop_reason(&llm_openai_codec, finish, json_array_size(list) > 0),
	    finish, openai_str(root, "model"), openai_str(root, "id"), &u);
	list = NULL;
out:
	json_decref(list);
	json_decref(root);
	return out;
}

/* Apply one chunk's tool_calls fragments. */
static int
openai_call_deltas(struct llm_stream *s, const json_t *calls)
{
	struct llm_call *c;
	json_t *tc, *fn, *a, *ix;
	const char *id;
	long index, max;
	size_t j, k;
	char *text;

	json_array_foreach(calls, j, tc) {
		if (!json_is_object(tc))
			return llm_stream_fail(s, "event %ld: tool_calls[%zu] "
			    "is not an object", s->nevents, j);
		id = openai_str(tc, "id");
		ix = json_object_get(tc, "index");
		c = NULL;
		if (json_is_integer(ix)) {
			if (json_integer_value(ix) < 0 ||
			    json_integer_value(ix) >= LLM_MAX_CALLS)
				return llm_stream_fail(s, "event %ld: tool "
				    "call index %" JSON_INTEGER_FORMAT
				    " out of range", s->nevents,
				    json_integer_value(ix));
			index = (long)json_integer_value(ix);
		} else {
			/* No index (some servers send whole calls): by id. */
			max = -1;
			for (k = 0; k < s->ncalls; k++) {
				if (id != NULL && s->calls[k].id != NULL &&
				    strcmp(id, s->calls[k].id) == 0)
					c = &s->calls[k];
				if (s->calls[k].index > max)
					max = s->calls[k].index;
			}
			index = max + 1;
		}
		if (c == NULL && (c = llm_stream_call(s, index)) == NULL)
			return llm_stream_fail(s, "event %ld: more than %d "
			    "tool calls", s->nevents, LLM_MAX_CALLS);
		c->is_tool = 1;
		llm_set_once(&c->id, id);
		fn = json_object_get(tc, "function");
		llm_set_once(&c->name, openai_str(fn, "name"));
		a = json_object_get(fn, "arguments");
		if (json_is_string(a))
			llm_buf_add(&c->args, json_string_value(a),
			    json_string_length(a));
		else if (json_is_object(a)) {
			text = json_dumps(a, JSON_COMPACT);
			if (text != NULL)
				llm_buf_add(&c->args, text, strlen(text));
			free(text);
		}
	}
	return 0;
}

/* One SSE event of a streamed answer. */
static int
llm_openai_event(struct llm_stream *s, const char *event, const char *data,
    size_t len)
{
	json_t *root, *choices, *ch, *delta, *v, *e;
	json_error_t jerr;
	size_t i;
	int rv = 0;

	(void)event;
	if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
		s->done = 1;
		return 0;
	}
	if ((root = json_loadb(data, len, 0, &jerr)) == NULL)
		return llm_stream_fail(s, "event %ld: data is not JSON: %s "
		    "(column %d)", s->nevents, jerr.text, jerr.column);
	if (!json_is_object(root)) {
		rv = llm_stream_fail(s, "event %ld: data is not a JSON object",
		    s->nevents);
		goto out;
	}
	e = json_object_get(root, "error");
	if (e != NULL && !json_is_null(e)) {
		rv = llm_stream_fail_event(s, e);
		goto out;
	}
	llm_set_once(&s->id, openai_str(root, "id"));
	llm_set_once(&s->model, openai_str(root, "model"));
	openai_usage(json_object_get(root, "usage"), &s->usage);

	choices = json_object_get(root, "choices");
	if (choices != NULL && !json_is_null(choices) &&
	    !json_is_array(choices)) {
		rv = llm_stream_fail(s, "event %ld: choices is not an array",
		    s->nevents);
		goto out;
	}
	json_array_foreach(choices, i, ch) {
		v = json_object_get(ch, "index");
		if (json_is_integer(v) && json_integer_value(v) != 0)
			continue;
		if ((v = json_object_get(ch, "finish_reason")) != NULL &&
		    json_is_string(v)) {
			free(s->raw_stop);
			s->raw_stop = xstrdup(json_string_value(v));
		}
		delta = json_object_get(ch, "delta");
		if (!json_is_object(delta))
			continue;
		if (json_is_string(v = json_object_get(delta, "content")))
			llm_buf_add(&s->text, json_string_value(v),
			    json_string_length(v));
		if (json_is_string(v = json_object_get(delta, "refusal")))
			llm_buf_add(&s->refusal, json_string_value(v),
			    json_string_length(v));
		v = json_object_get(delta, "tool_calls");
		if (json_is_array(v) && (rv = openai_call_deltas(s, v)) != 0)
			goto out;
	}
out:
	json_decref(root);
	return rv;
}

static const struct llm_stop llm_openai_stops[] = {
	{ "stop", "final" },
	{ "length", "max_tokens" },
	{ "tool_calls", "tool_use" },
	{ "function_call", "tool_use" },
	{ NULL, NULL }
};

const struct llm_codec llm_openai_codec = {
	.name = "openai",
	.end_event = "[DONE]",
	.stops = llm_openai_stops,
	.build = llm_openai_build,
	.parse = llm_openai_parse,
	.event = llm_openai_event,
};
