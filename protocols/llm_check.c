/*
 * llm_check.c: validation of a normalized request (messages, tool calls
 * and results, tools, options) before a codec builds its body, each
 * error naming the path of the bad field.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "protocols/llm_int.h"
#include "runtime/util.h"

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
