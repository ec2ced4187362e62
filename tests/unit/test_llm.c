/* test_llm.c: OpenAI and Anthropic codecs, streams and error classes. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "protocols/llm_int.h"
#include "runtime/util.h"

/*
 * JSON in the tests is written with ' for " and ` for \" (a quote inside a
 * JSON string), to keep it readable.  q() returns the real text; the last
 * few results stay valid.
 */
#define NQ	32
static char	*qring[NQ];
static int	 qnext;

static const char *
q(const char *s)
{
	char *p = xmalloc(2 * strlen(s) + 1), *o = p;

	for (; *s != '\0'; s++) {
		if (*s == '\'')
			*o++ = '"';
		else if (*s == '`') {
			*o++ = '\\';
			*o++ = '"';
		} else
			*o++ = *s;
	}
	*o = '\0';
	free(qring[qnext]);
	qring[qnext] = p;
	qnext = (qnext + 1) % NQ;
	return p;
}

/* Parse test JSON written with q() conventions. */
static json_t *
js(const char *s)
{
	json_error_t jerr;
	json_t *v = json_loads(q(s), 0, &jerr);

	if (v == NULL)
		fail_msg("bad test JSON: %s: %s", jerr.text, s);
	return v;
}

/* Assert that got equals the JSON want (q() conventions). */
static void
assert_json(const json_t *got, const char *want)
{
	json_t *w = js(want);
	char *g, *ws;

	if (got == NULL || !json_equal(got, w)) {
		g = got != NULL ? json_dumps(got, JSON_SORT_KEYS |
		    JSON_INDENT(1)) : NULL;
		ws = json_dumps(w, JSON_SORT_KEYS | JSON_INDENT(1));
		print_error("got:\n%s\nwant:\n%s\n", g != NULL ? g : "NULL",
		    ws);
		free(g);
		free(ws);
		json_decref(w);
		fail();
	}
	json_decref(w);
}

/* Assert that s contains sub. */
static void
assert_contains(const char *s, const char *sub)
{
	if (strstr(s, sub) == NULL)
		fail_msg("'%s' does not contain '%s'", s, sub);
}

/* Build a request body and parse it back. */
static json_t *
build(enum llm_api api, const char *req, int stream)
{
	json_t *r = js(req), *out;
	char err[256] = "", *body;

	body = llm_build_request(api, r, stream, err, sizeof err);
	json_decref(r);
	if (body == NULL)
		fail_msg("build failed: %s", err);
	out = json_loads(body, 0, NULL);
	assert_non_null(out);
	free(body);
	return out;
}

/* Assert that building req fails with an error containing want. */
static void
build_bad(enum llm_api api, const char *req, const char *want)
{
	json_t *r = js(req);
	char err[256] = "", *body;

	body = llm_build_request(api, r, 0, err, sizeof err);
	json_decref(r);
	if (body != NULL)
		fail_msg("build of %s succeeded: %s", req, body);
	assert_contains(err, want);
}

/* Parse a non-streaming answer and compare it with want. */
static void
parse_ok(enum llm_api api, const char *body, const char *want)
{
	const char *b = q(body);
	char err[256] = "";
	json_t *r;

	r = llm_parse_response(api, b, strlen(b), err, sizeof err);
	if (r == NULL)
		fail_msg("parse failed: %s", err);
	assert_json(r, want);
	json_decref(r);
}

/* Assert that parsing body fails with an error containing want. */
static void
parse_bad(enum llm_api api, const char *body, const char *want)
{
	const char *b = q(body);
	char err[256] = "";
	json_t *r;

	r = llm_parse_response(api, b, strlen(b), err, sizeof err);
	if (r != NULL)
		fail_msg("parse of %s succeeded", body);
	assert_contains(err, want);
}

/* Feed text cut at the given offsets; the response, or NULL + err. */
static json_t *
stream_cuts(enum llm_api api, const char *text, size_t len,
    const size_t *cuts, size_t ncuts, char *err, size_t errlen)
{
	struct llm_stream *s = llm_stream_new(api);
	size_t at = 0, i, to;
	json_t *r = NULL;

	for (i = 0; i <= ncuts; i++) {
		to = i < ncuts ? cuts[i] : len;
		if (llm_stream_feed(s, text + at, to - at, err, errlen) != 0)
			goto out;
		at = to;
	}
	r = llm_stream_finish(s, err, errlen);
out:
	llm_stream_free(s);
	return r;
}

/*
 * Feed the stream whole, split in two at every offset, and one byte at a
 * time: each way must give want.
 */
static void
stream_all_ways(enum llm_api api, const char *text, const char *want)
{
	char *t = xstrdup(q(text)), err[256] = "";
	size_t len = strlen(t), cut, i, *cuts;
	json_t *r;

	for (cut = 0; cut <= len; cut++) {
		r = stream_cuts(api, t, len, &cut, 1, err, sizeof err);
		if (r == NULL)
			fail_msg("split at %zu: %s", cut, err);
		assert_json(r, want);
		json_decref(r);
	}
	cuts = xcalloc(len, sizeof *cuts);
	for (i = 0; i < len; i++)
		cuts[i] = i;
	r = stream_cuts(api, t, len, cuts, len, err, sizeof err);
	if (r == NULL)
		fail_msg("1-byte pieces: %s", err);
	assert_json(r, want);
	json_decref(r);
	free(cuts);
	free(t);
}

/* Feed a whole stream; the response, or NULL with err. */
static json_t *
stream_whole(enum llm_api api, const char *text, char *err, size_t errlen)
{
	const char *t = q(text);

	return stream_cuts(api, t, strlen(t), NULL, 0, err, errlen);
}

/* The same text with every "\n" made "\r\n". */
static char *
crlf(const char *s)
{
	char *p = xmalloc(2 * strlen(s) + 1), *o = p;

	for (; *s != '\0'; s++) {
		if (*s == '\n')
			*o++ = '\r';
		*o++ = *s;
	}
	*o = '\0';
	return p;
}

/* ---- building requests ---- */

/* A conversation with every kind of message, and two tools. */
static const char conversation[] =
    "{'model':'m1','max_tokens':1024,'temperature':0.2,"
    "'messages':["
    "{'role':'system','content':'Be brief.'},"
    "{'role':'user','content':'Weather in Paris, and the time?'},"
    "{'role':'assistant','content':null,'tool_calls':["
    "{'id':'call_1','name':'get_weather','args':{'city':'Paris'}},"
    "{'id':'call_2','name':'get_time'}]},"
    "{'role':'tool','tool_call_id':'call_1','name':'get_weather',"
    "'content':'18C, sunny'},"
    "{'role':'tool','tool_call_id':'call_2','name':'get_time',"
    "'content':'no clock','is_error':true},"
    "{'role':'assistant','content':'It is 18C.'},"
    "{'role':'user','content':'Thanks'}],"
    "'tools':["
    "{'name':'get_weather','description':'Weather for a city',"
    "'input_schema':{'type':'object','properties':{'city':"
    "{'type':'string'}},'required':['city']}},"
    "{'name':'get_time'}]}";

static void
test_openai_build_conversation_with_tools(void **state)
{
	json_t *b = build(LLM_OPENAI, conversation, 1);

	assert_json(b,
	    "{'model':'m1','max_completion_tokens':1024,'temperature':0.2,"
	    "'stream':true,'stream_options':{'include_usage':true},"
	    "'messages':["
	    "{'role':'system','content':'Be brief.'},"
	    "{'role':'user','content':'Weather in Paris, and the time?'},"
	    "{'role':'assistant','content':null,'tool_calls':["
	    "{'id':'call_1','type':'function','function':{'name':"
	    "'get_weather','arguments':'{`city`:`Paris`}'}},"
	    "{'id':'call_2','type':'function','function':{'name':"
	    "'get_time','arguments':'{}'}}]},"
	    "{'role':'tool','tool_call_id':'call_1','content':'18C, sunny'},"
	    "{'role':'tool','tool_call_id':'call_2',"
	    "'content':'Error: no clock'},"
	    "{'role':'assistant','content':'It is 18C.'},"
	    "{'role':'user','content':'Thanks'}],"
	    "'tools':["
	    "{'type':'function','function':{'name':'get_weather',"
	    "'description':'Weather for a city','parameters':{'type':"
	    "'object','properties':{'city':{'type':'string'}},"
	    "'required':['city']}}},"
	    "{'type':'function','function':{'name':'get_time',"
	    "'parameters':{'type':'object','properties':{}}}}]}");
	json_decref(b);
}

static void
test_openai_build_minimal_and_max_tokens_field(void **state)
{
	json_t *b;

	b = build(LLM_OPENAI, "{'model':'llama3','max_tokens':50,"
	    "'max_tokens_field':'max_tokens','messages':["
	    "{'role':'user','content':'hi'},"
	    "{'role':'assistant'},"
	    "{'role':'assistant','content':'x','tool_calls':[]}]}", 0);
	assert_json(b, "{'model':'llama3','max_tokens':50,'messages':["
	    "{'role':'user','content':'hi'},"
	    "{'role':'assistant','content':''},"
	    "{'role':'assistant','content':'x'}]}");
	json_decref(b);
}

static void
test_anthropic_build_conversation_with_tools(void **state)
{
	json_t *b = build(LLM_ANTHROPIC, conversation, 1);

	assert_json(b,
	    "{'model':'m1','max_tokens':1024,'temperature':0.2,"
	    "'stream':true,'system':'Be brief.',"
	    "'messages':["
	    "{'role':'user','content':[{'type':'text','text':"
	    "'Weather in Paris, and the time?'}]},"
	    "{'role':'assistant','content':["
	    "{'type':'tool_use','id':'call_1','name':'get_weather',"
	    "'input':{'city':'Paris'}},"
	    "{'type':'tool_use','id':'call_2','name':'get_time',"
	    "'input':{}}]},"
	    "{'role':'user','content':["
	    "{'type':'tool_result','tool_use_id':'call_1',"
	    "'content':'18C, sunny'},"
	    "{'type':'tool_result','tool_use_id':'call_2',"
	    "'content':'no clock','is_error':true}]},"
	    "{'role':'assistant','content':[{'type':'text','text':"
	    "'It is 18C.'}]},"
	    "{'role':'user','content':[{'type':'text','text':'Thanks'}]}],"
	    "'tools':["
	    "{'name':'get_weather','description':'Weather for a city',"
	    "'input_schema':{'type':'object','properties':{'city':"
	    "{'type':'string'}},'required':['city']}},"
	    "{'name':'get_time','input_schema':{'type':'object',"
	    "'properties':{}}}]}");
	json_decref(b);
}

static void
test_anthropic_build_merges_roles_and_joins_system(void **state)
{
	json_t *b;

	b = build(LLM_ANTHROPIC, "{'model':'claude-x','messages':["
	    "{'role':'system','content':'A'},"
	    "{'role':'user','content':'one'},"
	    "{'role':'user','content':'two'},"
	    "{'role':'assistant','content':'',"
	    "'tool_calls':[{'id':'t1','name':'f'}]},"
	    "{'role':'user','content':'by the way'},"
	    "{'role':'tool','tool_call_id':'t1','content':''},"
	    "{'role':'system','content':'B'},"
	    "{'role':'assistant','content':''},"
	    "{'role':'user','content':'three'}]}", 0);
	/*
	 * Default max_tokens; systems joined; consecutive users merged; the
	 * empty assistant turn dropped, so its neighbours merge; the tool
	 * result moved before the text of its user message.
	 */
	assert_json(b, "{'model':'claude-x','max_tokens':4096,"
	    "'system':'A\\n\\nB','messages':["
	    "{'role':'user','content':[{'type':'text','text':'one'},"
	    "{'type':'text','text':'two'}]},"
	    "{'role':'assistant','content':[{'type':'tool_use','id':'t1',"
	    "'name':'f','input':{}}]},"
	    "{'role':'user','content':["
	    "{'type':'tool_result','tool_use_id':'t1'},"
	    "{'type':'text','text':'by the way'},"
	    "{'type':'text','text':'three'}]}]}");
	json_decref(b);
}

static void
test_anthropic_build_groups_consecutive_tool_results(void **state)
{
	json_t *b, *msgs;

	b = build(LLM_ANTHROPIC, "{'model':'c','max_tokens':10,'messages':["
	    "{'role':'user','content':'go'},"
	    "{'role':'assistant','content':'Calling three.','tool_calls':["
	    "{'id':'a','name':'f','args':{'n':1}},"
	    "{'id':'b','name':'f','args':{'n':2}},"
	    "{'id':'c','name':'f','args':{'n':3}}]},"
	    "{'role':'tool','tool_call_id':'a','content':'1'},"
	    "{'role':'tool','tool_call_id':'b','content':'2'},"
	    "{'role':'tool','tool_call_id':'c','content':'3'}]}", 0);
	msgs = json_object_get(b, "messages");
	assert_int_equal(json_array_size(msgs), 3);
	assert_json(json_array_get(msgs, 1), "{'role':'assistant','content':["
	    "{'type':'text','text':'Calling three.'},"
	    "{'type':'tool_use','id':'a','name':'f','input':{'n':1}},"
	    "{'type':'tool_use','id':'b','name':'f','input':{'n':2}},"
	    "{'type':'tool_use','id':'c','name':'f','input':{'n':3}}]}");
	assert_json(json_array_get(msgs, 2), "{'role':'user','content':["
	    "{'type':'tool_result','tool_use_id':'a','content':'1'},"
	    "{'type':'tool_result','tool_use_id':'b','content':'2'},"
	    "{'type':'tool_result','tool_use_id':'c','content':'3'}]}");
	json_decref(b);
}

static void
test_build_rejects_malformed_requests(void **state)
{
	static const struct {
		const char	*req;
		const char	*err;
	} bad[] = {
		{ "[]", "request: must be an object" },
		{ "{'messages':[{'role':'user','content':'x'}]}",
		    "model: must be a non-empty string" },
		{ "{'model':'m','messages':[]}",
		    "messages: must be a non-empty array" },
		{ "{'model':'m','messages':[{'role':'bot','content':'x'}]}",
		    "messages[0].role: must be system, user, assistant or "
		    "tool" },
		{ "{'model':'m','messages':[{'role':'user','content':3}]}",
		    "messages[0].content: must be a string" },
		{ "{'model':'m','messages':[{'role':'user','content':'x'},"
		    "{'role':'tool','content':'r'}]}",
		    "messages[1].tool_call_id: must be a non-empty string" },
		{ "{'model':'m','messages':[{'role':'assistant',"
		    "'tool_calls':[{'id':'1','name':''}]}]}",
		    "messages[0].tool_calls[0].name: must be a non-empty "
		    "string" },
		{ "{'model':'m','messages':[{'role':'assistant',"
		    "'tool_calls':[{'id':'1','name':'f','args':'{}'}]}]}",
		    "messages[0].tool_calls[0].args: must be an object" },
		{ "{'model':'m','max_tokens':0,'messages':[{'role':'user',"
		    "'content':'x'}]}", "max_tokens: must be a positive" },
		{ "{'model':'m','temperature':'hot','messages':[{'role':"
		    "'user','content':'x'}]}",
		    "temperature: must be a number" },
		{ "{'model':'m','tools':[{'description':'d'}],'messages':"
		    "[{'role':'user','content':'x'}]}",
		    "tools[0].name: must be a non-empty string" },
		{ "{'model':'m','max_tokens_field':'n_predict','messages':"
		    "[{'role':'user','content':'x'}]}", "max_tokens_field" },
	};
	size_t i;

	for (i = 0; i < nitems(bad); i++) {
		build_bad(LLM_OPENAI, bad[i].req, bad[i].err);
		build_bad(LLM_ANTHROPIC, bad[i].req, bad[i].err);
	}
}

/* ---- non-streaming answers ---- */

static void
test_openai_parse_text_answer(void **state)
{
	parse_ok(LLM_OPENAI,
	    "{'id':'chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT','object':"
	    "'chat.completion','created':1741569952,'model':"
	    "'gpt-4.1-2025-04-14','choices':[{'index':0,'message':{'role':"
	    "'assistant','content':'Hello! How can I help?','refusal':null,"
	    "'annotations':[]},'logprobs':null,'finish_reason':'stop'}],"
	    "'usage':{'prompt_tokens':2006,'completion_tokens':300,"
	    "'total_tokens':2306,'prompt_tokens_details':{'cached_tokens':"
	    "1920,'audio_tokens':0},'completion_tokens_details':"
	    "{'reasoning_tokens':0,'audio_tokens':0,"
	    "'accepted_prediction_tokens':0,'rejected_prediction_tokens':0}},"
	    "'service_tier':'default'}",
	    "{'text':'Hello! How can I help?','stop_reason':'final',"
	    "'raw_stop':'stop','model':'gpt-4.1-2025-04-14','id':"
	    "'chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT','usage':{"
	    "'input_tokens':86,'output_tokens':300,'cache_read_tokens':1920,"
	    "'cache_write_tokens':0}}");
}

static void
test_openai_parse_multiple_tool_calls(void **state)
{
	parse_ok(LLM_OPENAI,
	    "{'id':'chatcmpl-1','object':'chat.completion','model':'gpt-4o',"
	    "'choices':[{'index':0,'message':{'role':'assistant','content':"
	    "null,'tool_calls':["
	    "{'id':'call_a','type':'function','function':{'name':"
	    "'get_weather','arguments':'{`city`: `Paris`, `days`: [1, 2]}'}},"
	    "{'id':'call_b','type':'function','function':{'name':"
	    "'get_time','arguments':'{}'}},"
	    "{'id':'call_c','type':'function','function':{'name':"
	    "'ping','arguments':''}}]},"
	    "'finish_reason':'tool_calls'}],"
	    "'usage':{'prompt_tokens':82,'completion_tokens':17}}",
	    "{'text':'','tool_calls':["
	    "{'id':'call_a','name':'get_weather','args':{'city':'Paris',"
	    "'days':[1,2]}},"
	    "{'id':'call_b','name':'get_time','args':{}},"
	    "{'id':'call_c','name':'ping','args':{}}],"
	    "'stop_reason':'tool_use','raw_stop':'tool_calls','model':"
	    "'gpt-4o','id':'chatcmpl-1','usage':{'input_tokens':82,"
	    "'output_tokens':17,'cache_read_tokens':0,"
	    "'cache_write_tokens':0}}");
}

/* An OpenAI answer with the given finish_reason and message. */
static const char *
openai_answer(const char *finish, const char *message)
{
	static char buf[1024];

	snprintf(buf, sizeof buf, "{'id':'x','model':'m','choices':["
	    "{'index':0,'message':%s,'finish_reason':%s}]}", message, finish);
	return buf;
}

static void
test_openai_parse_stop_reasons(void **state)
{
	const char *text = "{'role':'assistant','content':'t'}";
	const char *call = "{'role':'assistant','content':null,"
	    "'tool_calls':[{'id':'c','type':'function','function':"
	    "{'name':'f','arguments':'{}'}}]}";

	parse_ok(LLM_OPENAI, openai_answer("'stop'", text),
	    "{'text':'t','stop_reason':'final','raw_stop':'stop','model':'m',"
	    "'id':'x'}");
	parse_ok(LLM_OPENAI, openai_answer("'length'", text),
	    "{'text':'t','stop_reason':'max_tokens','raw_stop':'length',"
	    "'model':'m','id':'x'}");
	parse_ok(LLM_OPENAI, openai_answer("'content_filter'", text),
	    "{'text':'t','stop_reason':'other','raw_stop':'content_filter',"
	    "'model':'m','id':'x'}");
	parse_ok(LLM_OPENAI, openai_answer("null", text),
	    "{'text':'t','stop_reason':'other','raw_stop':'','model':'m',"
	    "'id':'x'}");
	/* Some servers say "stop" with tool calls. */
	parse_ok(LLM_OPENAI, openai_answer("'stop'", call),
	    "{'text':'','tool_calls':[{'id':'c','name':'f','args':{}}],"
	    "'stop_reason':'tool_use','raw_stop':'stop','model':'m',"
	    "'id':'x'}");
	/* tool_calls without any call is not a tool_use. */
	parse_ok(LLM_OPENAI, openai_answer("'tool_calls'", text),
	    "{'text':'t','stop_reason':'other','raw_stop':'tool_calls',"
	    "'model':'m','id':'x'}");
	/* A refusal is the text when there is no other. */
	parse_ok(LLM_OPENAI, openai_answer("'stop'", "{'role':'assistant',"
	    "'content':null,'refusal':'I can\\u0027t help with that.'}"),
	    "{'text':'I can\\u0027t help with that.','stop_reason':'final',"
	    "'raw_stop':'stop','model':'m','id':'x'}");
}

static void
test_openai_parse_malformed_arguments_is_an_error(void **state)
{
	parse_bad(LLM_OPENAI, openai_answer("'tool_calls'",
	    "{'role':'assistant','tool_calls':[{'id':'c','type':'function',"
	    "'function':{'name':'get_weather','arguments':"
	    "'{`city`: `Par'}}]}"),
	    "tool call 'get_weather': arguments are not JSON:");
	parse_bad(LLM_OPENAI, openai_answer("'tool_calls'",
	    "{'role':'assistant','tool_calls':[{'id':'c','type':'function',"
	    "'function':{'name':'f','arguments':'[1, 2]'}}]}"),
	    "tool call 'f': arguments are not a JSON object");
	parse_bad(LLM_OPENAI, openai_answer("'tool_calls'",
	    "{'role':'assistant','tool_calls':[{'id':'c','type':'function',"
	    "'function':{'name':'f','arguments':'{} trailing'}}]}"),
	    "tool call 'f': arguments are not JSON:");
	/* Cut off by max_tokens: the error says so. */
	parse_bad(LLM_OPENAI, openai_answer("'length'",
	    "{'role':'assistant','tool_calls':[{'id':'c','type':'function',"
	    "'function':{'name':'f','arguments':'{`a`: 1, `b'}}]}"),
	    "cut at max_tokens");
}

static void
test_openai_parse_missing_fields_are_errors(void **state)
{
	parse_bad(LLM_OPENAI, "not json", "answer is not JSON");
	parse_bad(LLM_OPENAI, "[1]", "answer is not a JSON object");
	parse_bad(LLM_OPENAI, "{'id':'x'}", "choices missing");
	parse_bad(LLM_OPENAI, "{'choices':[]}", "choices is empty");
	parse_bad(LLM_OPENAI, "{'choices':[{'index':0}]}",
	    "choices[0].message missing");
	parse_bad(LLM_OPENAI, openai_answer("'stop'", "{'content':5}"),
	    "choices[0].message.content: must be a string or null");
	parse_bad(LLM_OPENAI, openai_answer("'tool_calls'",
	    "{'tool_calls':[{'id':'c','type':'function'}]}"),
	    "choices[0].message.tool_calls[0].function missing");
	parse_bad(LLM_OPENAI, openai_answer("'tool_calls'",
	    "{'tool_calls':[{'id':'c','function':{'arguments':'{}'}}]}"),
	    "choices[0].message.tool_calls[0].function.name missing");
	parse_bad(LLM_OPENAI, "{'error':{'message':'quota','type':'x'}}",
	    "answer holds an error: quota");
}

static void
test_openai_parse_tool_call_without_id_gets_one(void **state)
{
	parse_ok(LLM_OPENAI, openai_answer("'tool_calls'",
	    "{'role':'assistant','content':'','tool_calls':["
	    "{'function':{'name':'f','arguments':{'x':1}}},"
	    "{'function':{'name':'g','arguments':'{}'}}]}"),
	    "{'text':'','tool_calls':[{'id':'call_0','name':'f','args':"
	    "{'x':1}},{'id':'call_1','name':'g','args':{}}],"
	    "'stop_reason':'tool_use','raw_stop':'tool_calls','model':'m',"
	    "'id':'x'}");
}

static void
test_anthropic_parse_text_and_tool_uses(void **state)
{
	parse_ok(LLM_ANTHROPIC,
	    "{'id':'msg_01Aq9w938a90dw8q','type':'message','role':"
	    "'assistant','model':'claude-sonnet-4-5-20250929','content':["
	    "{'type':'thinking','thinking':'Let me see.','signature':'abc'},"
	    "{'type':'text','text':'I\\u0027ll check.'},"
	    "{'type':'tool_use','id':'toolu_01A09q90qw90lq917835lq9','name':"
	    "'get_weather','input':{'location':'San Francisco, CA'}},"
	    "{'type':'tool_use','id':'toolu_02','name':'get_time','input':"
	    "{}}],'stop_reason':'tool_use','stop_sequence':null,'usage':{"
	    "'input_tokens':2095,'output_tokens':503,"
	    "'cache_creation_input_tokens':2051,'cache_read_input_tokens':7,"
	    "'service_tier':'standard'}}",
	    "{'text':'I\\u0027ll check.','tool_calls':["
	    "{'id':'toolu_01A09q90qw90lq917835lq9','name':'get_weather',"
	    "'args':{'location':'San Francisco, CA'}},"
	    "{'id':'toolu_02','name':'get_time','args':{}}],"
	    "'stop_reason':'tool_use','raw_stop':'tool_use','model':"
	    "'claude-sonnet-4-5-20250929','id':'msg_01Aq9w938a90dw8q',"
	    "'usage':{'input_tokens':2095,'output_tokens':503,"
	    "'cache_read_tokens':7,'cache_write_tokens':2051}}");
}

/* An Anthropic answer with the given stop_reason and one text block. */
static const char *
anthropic_answer(const char *stop)
{
	static char buf[512];

	snprintf(buf, sizeof buf, "{'id':'msg_1','type':'message','role':"
	    "'assistant','model':'c','content':[{'type':'text','text':'a'},"
	    "{'type':'text','text':'b'}],'stop_reason':%s,'usage':"
	    "{'input_tokens':5,'output_tokens':6}}", stop);
	return buf;
}

static void
test_anthropic_parse_stop_reasons(void **state)
{
	static const struct {
		const char	*raw;
		const char	*want;
	} map[] = {
		{ "end_turn", "final" },
		{ "stop_sequence", "final" },
		{ "max_tokens", "max_tokens" },
		{ "model_context_window_exceeded", "max_tokens" },
		{ "tool_use", "other" },	/* no tool_use block */
		{ "refusal", "other" },
		{ "pause_turn", "other" },
	};
	char raw[64], want[512];
	size_t i;

	for (i = 0; i < nitems(map); i++) {
		snprintf(raw, sizeof raw, "'%s'", map[i].raw);
		snprintf(want, sizeof want, "{'text':'ab','stop_reason':'%s',"
		    "'raw_stop':'%s','model':'c','id':'msg_1','usage':"
		    "{'input_tokens':5,'output_tokens':6,"
		    "'cache_read_tokens':0,'cache_write_tokens':0}}",
		    map[i].want, map[i].raw);
		parse_ok(LLM_ANTHROPIC, anthropic_answer(raw), want);
	}
}

static void
test_anthropic_parse_errors(void **state)
{
	parse_bad(LLM_ANTHROPIC, "{'id':'msg_1','type':'message'}",
	    "content missing");
	parse_bad(LLM_ANTHROPIC, "{'type':'error','error':{'type':"
	    "'overloaded_error','message':'Overloaded'}}",
	    "answer holds an error: Overloaded");
	parse_bad(LLM_ANTHROPIC, "{'content':[{'type':'tool_use','id':'t',"
	    "'name':'f','input':5}]}", "tool call 'f': input is not a JSON "
	    "object");
	parse_bad(LLM_ANTHROPIC, "{'content':[{'type':'tool_use','id':'t',"
	    "'input':{}}]}", "content[0].name missing");
	parse_bad(LLM_ANTHROPIC, "{'content':[{'text':'x'}]}",
	    "content[0].type missing");
	parse_bad(LLM_ANTHROPIC, "{'content':", "answer is not JSON");
}

/* ---- streams ---- */

#define OA_CHUNK							\
	"data: {'id':'chatcmpl-1','object':'chat.completion.chunk',"	\
	"'created':1741570283,'model':'gpt-4o-mini-2024-07-18',"	\
	"'system_fingerprint':'fp_06737a9306','choices':"

#define OA_USAGE							\
	OA_CHUNK "[],'usage':{'prompt_tokens':2006,'completion_tokens':"\
	"300,'total_tokens':2306,'prompt_tokens_details':"		\
	"{'cached_tokens':1920,'audio_tokens':0},"			\
	"'completion_tokens_details':{'reasoning_tokens':0}}}\n\n"

static const char openai_text_stream[] =
    OA_CHUNK "[{'index':0,'delta':{'role':'assistant','content':'',"
    "'refusal':null},'logprobs':null,'finish_reason':null}],"
    "'usage':null}\n\n"
    OA_CHUNK "[{'index':0,'delta':{'content':'H\xc3\xa9'},"
    "'logprobs':null,'finish_reason':null}],'usage':null}\n\n"
    OA_CHUNK "[{'index':0,'delta':{'content':'llo \xe2\x9c\x93'},"
    "'logprobs':null,'finish_reason':null}],'usage':null}\n\n"
    OA_CHUNK "[{'index':0,'delta':{'content':' \\u00e9\\n'},"
    "'logprobs':null,'finish_reason':null}],'usage':null}\n\n"
    OA_CHUNK "[{'index':0,'delta':{},'logprobs':null,"
    "'finish_reason':'stop'}],'usage':null}\n\n"
    OA_USAGE
    "data: [DONE]\n\n";

static const char openai_text_want[] =
    "{'text':'H\xc3\xa9llo \xe2\x9c\x93 \xc3\xa9\\n','stop_reason':'final',"
    "'raw_stop':'stop','model':'gpt-4o-mini-2024-07-18','id':"
    "'chatcmpl-1','usage':{'input_tokens':86,'output_tokens':300,"
    "'cache_read_tokens':1920,'cache_write_tokens':0}}";

static void
test_openai_stream_text_any_split(void **state)
{
	stream_all_ways(LLM_OPENAI, openai_text_stream, openai_text_want);
}

static void
test_openai_stream_crlf_line_ends(void **state)
{
	char *t = crlf(q(openai_text_stream)), err[256] = "";
	struct llm_stream *s = llm_stream_new(LLM_OPENAI);
	json_t *r;

	assert_int_equal(llm_stream_feed(s, t, strlen(t), err, sizeof err),
	    0);
	assert_int_equal(llm_stream_done(s), 1);
	r = llm_stream_finish(s, err, sizeof err);
	assert_json(r, openai_text_want);
	json_decref(r);
	llm_stream_free(s);
	free(t);
}

/* Two tool calls whose argument fragments interleave. */
static const char openai_tools_stream[] =
    OA_CHUNK "[{'index':0,'delta':{'role':'assistant','content':null,"
    "'tool_calls':[{'index':0,'id':'call_DdmO9pD3xa9XTPNJ32zg2hcA',"
    "'type':'function','function':{'name':'get_weather','arguments':"
    "''}}]},'logprobs':null,'finish_reason':null}],'usage':null}\n\n"
    OA_CHUNK "[{'index':0,'delta':{'tool_calls':[{'index':0,'function':"
    "{'arguments':'{`ci'}}]},'logprobs':null,'finish_reason':null}],"
    "'usage':null}\n\n"
    OA_CHUNK "[{'index':0,'delta':{'tool_calls':[{'index':1,'id':"
    "'call_ABC','type':'function','function':{'name':'get_time',"
    "'arguments':''}}]},'logprobs':null,'finish_reason':null}],"
    "'usage':null}\n\n"
    OA_CHUNK "[{'index':0,'delta':{'tool_calls':[{'index':1,'function':"
    "{'arguments':'{`tz`'}}]},'logprobs':null,'finish_reason':null}],"
    "'usage':null}\n\n"
    OA_CHUNK "[{'index':0,'delta':{'tool_calls':[{'index':0,'function':"
    "{'arguments':'ty`: `Par'}},{'index':1,'function':{'arguments':"
    "': `UTC`}'}}]},'logprobs':null,'finish_reason':null}],"
    "'usage':null}\n\n"
    OA_CHUNK "[{'index':0,'delta':{'tool_calls':[{'index':0,'function':"
    "{'arguments':'is`}'}}]},'logprobs':null,'finish_reason':null}],"
    "'usage':null}\n\n"
    OA_CHUNK "[{'index':0,'delta':{},'logprobs':null,'finish_reason':"
    "'tool_calls'}],'usage':null}\n\n"
    OA_USAGE
    "data: [DONE]\n\n";

static void
test_openai_stream_interleaved_tool_calls_any_split(void **state)
{
	stream_all_ways(LLM_OPENAI, openai_tools_stream,
	    "{'text':'','tool_calls':["
	    "{'id':'call_DdmO9pD3xa9XTPNJ32zg2hcA','name':'get_weather',"
	    "'args':{'city':'Paris'}},"
	    "{'id':'call_ABC','name':'get_time','args':{'tz':'UTC'}}],"
	    "'stop_reason':'tool_use','raw_stop':'tool_calls','model':"
	    "'gpt-4o-mini-2024-07-18','id':'chatcmpl-1','usage':{"
	    "'input_tokens':86,'output_tokens':300,'cache_read_tokens':1920,"
	    "'cache_write_tokens':0}}");
}

static void
test_openai_stream_without_usage_chunk(void **state)
{
	char err[256] = "";
	json_t *r;

	r = stream_whole(LLM_OPENAI,
	    OA_CHUNK "[{'index':0,'delta':{'content':'ok'},"
	    "'finish_reason':'length'}]}\n\n"
	    OA_CHUNK "[{'index':1,'delta':{'content':'other choice'},"
	    "'finish_reason':'stop'}]}\n\n"
	    "data: [DONE]\n\n"
	    "data: {'ignored':'after the end'}\n\n", err, sizeof err);
	assert_json(r, "{'text':'ok','stop_reason':'max_tokens','raw_stop':"
	    "'length','model':'gpt-4o-mini-2024-07-18','id':'chatcmpl-1'}");
	json_decref(r);
}

static void
test_openai_stream_truncated_is_an_error(void **state)
{
	char err[256] = "";
	const char *t = q(openai_text_stream);
	size_t full = strlen(t), cut;
	struct llm_stream *s;

	/* Every prefix short of "[DONE]" is a truncated stream. */
	for (cut = 0; cut < full - 2; cut += 7) {
		s = llm_stream_new(LLM_OPENAI);
		assert_int_equal(llm_stream_feed(s, t, cut, err, sizeof err),
		    0);
		assert_int_equal(llm_stream_done(s), 0);
		assert_null(llm_stream_finish(s, err, sizeof err));
		assert_contains(err, "stream ended before [DONE]");
		llm_stream_free(s);
	}
}

static void
test_openai_stream_error_chunk(void **state)
{
	struct llm_stream *s = llm_stream_new(LLM_OPENAI);
	const char *t = q(OA_CHUNK "[{'index':0,'delta':{'content':'a'}}]}\n\n"
	    "data: {'error':{'message':'The server had an error while "
	    "processing your request.','type':'server_error','param':null,"
	    "'code':null}}\n\n");
	struct llm_error e;
	char err[256] = "";

	assert_int_equal(llm_stream_feed(s, t, strlen(t), err, sizeof err),
	    -1);
	assert_contains(err, "server_error: The server had an error");
	llm_stream_error(s, &e);
	assert_string_equal(e.kind, "server");
	assert_int_equal(e.transient, 1);
	assert_int_equal(e.retry_after_ms, -1);
	assert_string_equal(e.message,
	    "The server had an error while processing your request.");
	assert_null(llm_stream_finish(s, err, sizeof err));
	llm_stream_free(s);
}

static void
test_openai_stream_malformed_data_is_an_error(void **state)
{
	struct llm_stream *s = llm_stream_new(LLM_OPENAI);
	const char *t = q(OA_CHUNK "[{'index':0,'delta':{'content':'a'\n\n");
	struct llm_error e;
	char err[256] = "";

	assert_int_equal(llm_stream_feed(s, t, strlen(t), err, sizeof err),
	    -1);
	assert_contains(err, "event 1: data is not JSON");
	/* Failed for good. */
	assert_int_equal(llm_stream_feed(s, "data: [DONE]\n\n", 14, err,
	    sizeof err), -1);
	assert_contains(err, "event 1: data is not JSON");
	llm_stream_error(s, &e);
	assert_string_equal(e.kind, "malformed");
	assert_int_equal(e.transient, 0);
	assert_null(llm_stream_finish(s, err, sizeof err));
	llm_stream_free(s);
}

static void
test_openai_stream_malformed_arguments_fail_finish(void **state)
{
	char err[256] = "";
	json_t *r;

	r = stream_whole(LLM_OPENAI,
	    OA_CHUNK "[{'index':0,'delta':{'tool_calls':[{'index':0,'id':'c',"
	    "'function':{'name':'f','arguments':'{`a`: tru'}}]}}]}\n\n"
	    OA_CHUNK "[{'index':0,'delta':{},'finish_reason':'tool_calls'}]}"
	    "\n\ndata: [DONE]\n\n", err, sizeof err);
	assert_null(r);
	assert_contains(err, "tool call 'f': arguments are not JSON");
}

static void
test_openai_stream_tool_calls_ordered_by_index(void **state)
{
	char err[256] = "";
	json_t *r;

	/* Index 1 shows up first; the answer still lists index 0 first. */
	r = stream_whole(LLM_OPENAI,
	    OA_CHUNK "[{'index':0,'delta':{'tool_calls':[{'index':1,'id':"
	    "'b','function':{'name':'g','arguments':'{}'}}]}}]}\n\n"
	    OA_CHUNK "[{'index':0,'delta':{'tool_calls':[{'index':0,'id':"
	    "'a','function':{'name':'f','arguments':'{}'}}]}}]}\n\n"
	    OA_CHUNK "[{'index':0,'delta':{},'finish_reason':'tool_calls'}]}"
	    "\n\ndata: [DONE]\n\n", err, sizeof err);
	assert_json(r, "{'text':'','tool_calls':[{'id':'a','name':'f','args':"
	    "{}},{'id':'b','name':'g','args':{}}],'stop_reason':'tool_use',"
	    "'raw_stop':'tool_calls','model':'gpt-4o-mini-2024-07-18','id':"
	    "'chatcmpl-1'}");
	json_decref(r);
}

#define AN_EVENT(name, data) "event: " name "\ndata: " data "\n\n"

static const char anthropic_stream[] =
    AN_EVENT("message_start", "{'type':'message_start','message':{'id':"
	"'msg_014p7gG3wDgGV9EUtLvnow3U','type':'message','role':"
	"'assistant','model':'claude-sonnet-4-5-20250929','stop_sequence':"
	"null,'usage':{'input_tokens':472,'cache_creation_input_tokens':50,"
	"'cache_read_input_tokens':100,'output_tokens':2},'content':[],"
	"'stop_reason':null}}")
    AN_EVENT("content_block_start", "{'type':'content_block_start',"
	"'index':0,'content_block':{'type':'text','text':''}}")
    AN_EVENT("ping", "{'type': 'ping'}")
    AN_EVENT("content_block_delta", "{'type':'content_block_delta',"
	"'index':0,'delta':{'type':'text_delta','text':'Okay, let\\u0027s'}}")
    AN_EVENT("content_block_delta", "{'type':'content_block_delta',"
	"'index':0,'delta':{'type':'text_delta','text':' check \xc3\xa9t\xc3"
	"\xa9.'}}")
    AN_EVENT("content_block_stop", "{'type':'content_block_stop',"
	"'index':0}")
    AN_EVENT("content_block_start", "{'type':'content_block_start',"
	"'index':1,'content_block':{'type':'tool_use','id':"
	"'toolu_01T1x1fJ34qAmk2tNTrN7Up6','name':'get_weather','input':{}}}")
    AN_EVENT("content_block_delta", "{'type':'content_block_delta',"
	"'index':1,'delta':{'type':'input_json_delta','partial_json':''}}")
    AN_EVENT("content_block_delta", "{'type':'content_block_delta',"
	"'index':1,'delta':{'type':'input_json_delta','partial_json':"
	"'{`location`:'}}")
    AN_EVENT("content_block_delta", "{'type':'content_block_delta',"
	"'index':1,'delta':{'type':'input_json_delta','partial_json':"
	"' `San Fra'}}")
    AN_EVENT("content_block_delta", "{'type':'content_block_delta',"
	"'index':1,'delta':{'type':'input_json_delta','partial_json':"
	"'ncisco, CA`, `unit`: `fah'}}")
    AN_EVENT("content_block_delta", "{'type':'content_block_delta',"
	"'index':1,'delta':{'type':'input_json_delta','partial_json':"
	"'renheit`}'}}")
    AN_EVENT("content_block_stop", "{'type':'content_block_stop',"
	"'index':1}")
    AN_EVENT("content_block_start", "{'type':'content_block_start',"
	"'index':2,'content_block':{'type':'tool_use','id':'toolu_02',"
	"'name':'get_time','input':{}}}")
    AN_EVENT("content_block_stop", "{'type':'content_block_stop',"
	"'index':2}")
    AN_EVENT("message_delta", "{'type':'message_delta','delta':"
	"{'stop_reason':'tool_use','stop_sequence':null},'usage':"
	"{'output_tokens':89}}")
    AN_EVENT("message_stop", "{'type':'message_stop'}");

static const char anthropic_want[] =
    "{'text':'Okay, let\\u0027s check \xc3\xa9t\xc3\xa9.','tool_calls':["
    "{'id':'toolu_01T1x1fJ34qAmk2tNTrN7Up6','name':'get_weather','args':"
    "{'location':'San Francisco, CA','unit':'fahrenheit'}},"
    "{'id':'toolu_02','name':'get_time','args':{}}],"
    "'stop_reason':'tool_use','raw_stop':'tool_use','model':"
    "'claude-sonnet-4-5-20250929','id':'msg_014p7gG3wDgGV9EUtLvnow3U',"
    "'usage':{'input_tokens':472,'output_tokens':89,"
    "'cache_read_tokens':100,'cache_write_tokens':50}}";

static void
test_anthropic_stream_text_and_tool_use_any_split(void **state)
{
	stream_all_ways(LLM_ANTHROPIC, anthropic_stream, anthropic_want);
}

static void
test_anthropic_stream_crlf_line_ends(void **state)
{
	char *t = crlf(q(anthropic_stream)), err[256] = "";
	struct llm_stream *s = llm_stream_new(LLM_ANTHROPIC);
	json_t *r;
	size_t i;

	/* In 5-byte pieces, so some "\r\n" fall across two feeds. */
	for (i = 0; i < strlen(t); i += 5)
		assert_int_equal(llm_stream_feed(s, t + i, strlen(t + i) < 5 ?
		    strlen(t + i) : 5, err, sizeof err), 0);
	r = llm_stream_finish(s, err, sizeof err);
	assert_json(r, anthropic_want);
	json_decref(r);
	llm_stream_free(s);
	free(t);
}

static void
test_anthropic_stream_usage_from_message_delta_wins(void **state)
{
	char err[256] = "";
	json_t *r;

	/* Newer servers repeat input and cache counts in message_delta. */
	r = stream_whole(LLM_ANTHROPIC,
	    AN_EVENT("message_start", "{'type':'message_start','message':"
		"{'id':'m','model':'c','usage':{'input_tokens':5,"
		"'output_tokens':1}}}")
	    AN_EVENT("content_block_start", "{'type':'content_block_start',"
		"'index':0,'content_block':{'type':'text','text':'hi'}}")
	    AN_EVENT("message_delta", "{'type':'message_delta','delta':"
		"{'stop_reason':'end_turn'},'usage':{'input_tokens':6,"
		"'cache_read_input_tokens':41203,"
		"'cache_creation_input_tokens':0,'output_tokens':21}}")
	    AN_EVENT("message_stop", "{'type':'message_stop'}"),
	    err, sizeof err);
	assert_json(r, "{'text':'hi','stop_reason':'final','raw_stop':"
	    "'end_turn','model':'c','id':'m','usage':{'input_tokens':6,"
	    "'output_tokens':21,'cache_read_tokens':41203,"
	    "'cache_write_tokens':0}}");
	json_decref(r);
}

static void
test_anthropic_stream_tool_input_whole_at_block_start(void **state)
{
	char err[256] = "";
	json_t *r;

	r = stream_whole(LLM_ANTHROPIC,
	    AN_EVENT("message_start", "{'type':'message_start','message':"
		"{'id':'m','model':'c','usage':{'input_tokens':5}}}")
	    AN_EVENT("content_block_start", "{'type':'content_block_start',"
		"'index':0,'content_block':{'type':'tool_use','id':'t',"
		"'name':'f','input':{'q':'x'}}}")
	    AN_EVENT("content_block_stop", "{'type':'content_block_stop',"
		"'index':0}")
	    AN_EVENT("message_delta", "{'type':'message_delta','delta':"
		"{'stop_reason':'tool_use'},'usage':{'output_tokens':9}}")
	    AN_EVENT("message_stop", "{'type':'message_stop'}"),
	    err, sizeof err);
	assert_json(r, "{'text':'','tool_calls':[{'id':'t','name':'f',"
	    "'args':{'q':'x'}}],'stop_reason':'tool_use','raw_stop':"
	    "'tool_use','model':'c','id':'m','usage':{'input_tokens':5,"
	    "'output_tokens':9,'cache_read_tokens':0,"
	    "'cache_write_tokens':0}}");
	json_decref(r);
}

static void
test_anthropic_stream_truncated_is_an_error(void **state)
{
	char err[256] = "";
	const char *t = q(anthropic_stream);
	const char *stop = strstr(t, "event: message_stop");
	struct llm_stream *s = llm_stream_new(LLM_ANTHROPIC);

	assert_non_null(stop);
	assert_int_equal(llm_stream_feed(s, t, stop - t, err, sizeof err), 0);
	assert_int_equal(llm_stream_done(s), 0);
	assert_null(llm_stream_finish(s, err, sizeof err));
	assert_contains(err, "stream ended before message_stop");
	llm_stream_free(s);
}

static void
test_anthropic_stream_error_event(void **state)
{
	struct llm_stream *s = llm_stream_new(LLM_ANTHROPIC);
	const char *t = q(
	    AN_EVENT("message_start", "{'type':'message_start','message':"
		"{'id':'m','model':'c','usage':{'input_tokens':5}}}")
	    AN_EVENT("content_block_start", "{'type':'content_block_start',"
		"'index':0,'content_block':{'type':'text','text':''}}")
	    AN_EVENT("error", "{'type': 'error', 'error': {'type': "
		"'overloaded_error', 'message': 'Overloaded'}}"));
	struct llm_error e;
	char err[256] = "";

	assert_int_equal(llm_stream_feed(s, t, strlen(t), err, sizeof err),
	    -1);
	assert_contains(err, "overloaded_error: Overloaded");
	llm_stream_error(s, &e);
	assert_string_equal(e.kind, "overloaded");
	assert_int_equal(e.transient, 1);
	assert_int_equal(e.context_overflow, 0);
	assert_string_equal(e.message, "Overloaded");
	assert_int_equal(e.retry_after_ms, -1);
	assert_int_equal(llm_stream_feed(s, "x", 1, err, sizeof err), -1);
	assert_null(llm_stream_finish(s, err, sizeof err));
	assert_contains(err, "overloaded_error");
	llm_stream_free(s);
}

static void
test_anthropic_stream_bad_events_are_errors(void **state)
{
	char err[256] = "";

	assert_null(stream_whole(LLM_ANTHROPIC,
	    AN_EVENT("content_block_delta", "{'type':'content_block_delta',"
		"'index':3,'delta':{'type':'input_json_delta',"
		"'partial_json':'{'}}"), err, sizeof err));
	assert_contains(err, "block 3, which is not a started tool_use");
	assert_null(stream_whole(LLM_ANTHROPIC,
	    AN_EVENT("message_start", "{'type':'message_start'}"), err,
	    sizeof err));
	assert_contains(err, "message_start without message");
	assert_null(stream_whole(LLM_ANTHROPIC,
	    AN_EVENT("ping", "{'type':"), err, sizeof err));
	assert_contains(err, "event 1 (ping): data is not JSON");
}

static void
test_anthropic_stream_cut_tool_input_at_max_tokens(void **state)
{
	char err[256] = "";

	assert_null(stream_whole(LLM_ANTHROPIC,
	    AN_EVENT("message_start", "{'type':'message_start','message':"
		"{'id':'m','model':'c','usage':{'input_tokens':5}}}")
	    AN_EVENT("content_block_start", "{'type':'content_block_start',"
		"'index':0,'content_block':{'type':'tool_use','id':'t',"
		"'name':'write','input':{}}}")
	    AN_EVENT("content_block_delta", "{'type':'content_block_delta',"
		"'index':0,'delta':{'type':'input_json_delta',"
		"'partial_json':'{`text`: `a long'}}")
	    AN_EVENT("message_delta", "{'type':'message_delta','delta':"
		"{'stop_reason':'max_tokens'},'usage':{'output_tokens':9}}")
	    AN_EVENT("message_stop", "{'type':'message_stop'}"),
	    err, sizeof err));
	assert_contains(err, "tool call 'write': arguments are not JSON");
	assert_contains(err, "cut at max_tokens");
}

static void
test_stream_event_over_8_mib_is_an_error(void **state)
{
	struct llm_stream *s = llm_stream_new(LLM_OPENAI);
	size_t n = ((size_t)8 << 20) + 100;
	char *big = xmalloc(n), err[256] = "";

	memcpy(big, "data: ", 6);
	memset(big + 6, 'a', n - 6);
	assert_int_equal(llm_stream_feed(s, big, n, err, sizeof err), -1);
	assert_contains(err, "over the size limit");
	free(big);
	llm_stream_free(s);
}

/* ---- errors ---- */

/* Classify an error answer whose body is written with q() conventions. */
static void
classify(enum llm_api api, long status, const char *body, const char *ra,
    const char *ra_ms, struct llm_error *e)
{
	const char *b = q(body);

	memset(e, 0x5a, sizeof *e);
	llm_classify_error(api, status, b, strlen(b), ra, ra_ms, e);
}

static void
test_classify_openai_errors(void **state)
{
	struct llm_error e;

	classify(LLM_OPENAI, 400, "{'error':{'message':'Invalid value for "
	    "\\u0027temperature\\u0027.','type':'invalid_request_error',"
	    "'param':'temperature','code':null}}", NULL, NULL, &e);
	assert_string_equal(e.kind, "bad_request");
	assert_int_equal(e.transient, 0);
	assert_int_equal(e.context_overflow, 0);
	assert_int_equal(e.retry_after_ms, -1);
	assert_string_equal(e.message, "Invalid value for 'temperature'.");

	classify(LLM_OPENAI, 401, "{'error':{'message':'Incorrect API key "
	    "provided: sk-abc***xyz.','type':'invalid_request_error','param':"
	    "null,'code':'invalid_api_key'}}", NULL, NULL, &e);
	assert_string_equal(e.kind, "auth");
	assert_int_equal(e.transient, 0);
	assert_string_equal(e.message, "Incorrect API key provided: "
	    "sk-abc***xyz.");

	classify(LLM_OPENAI, 403, "{'error':{'message':'Project does not "
	    "have access to model','type':'invalid_request_error'}}", NULL,
	    NULL, &e);
	assert_string_equal(e.kind, "permission");

	classify(LLM_OPENAI, 404, "{'error':{'message':'The model `x` does "
	    "not exist','type':'invalid_request_error','code':"
	    "'model_not_found'}}", NULL, NULL, &e);
	assert_string_equal(e.kind, "not_found");
	assert_int_equal(e.transient, 0);

	classify(LLM_OPENAI, 429, "{'error':{'message':'Rate limit reached "
	    "for gpt-4o','type':'requests','code':'rate_limit_exceeded'}}",
	    "20", NULL, &e);
	assert_string_equal(e.kind, "rate_limited");
	assert_int_equal(e.transient, 1);
	assert_int_equal(e.retry_after_ms, 20000);

	classify(LLM_OPENAI, 429, "{'error':{'message':'You exceeded your "
	    "current quota','type':'insufficient_quota','param':null,'code':"
	    "'insufficient_quota'}}", NULL, NULL, &e);
	assert_string_equal(e.kind, "rate_limited");
	assert_int_equal(e.transient, 0);

	classify(LLM_OPENAI, 500, "{'error':{'message':'The server had an "
	    "error','type':'server_error'}}", NULL, NULL, &e);
	assert_string_equal(e.kind, "server");
	assert_int_equal(e.transient, 1);

	classify(LLM_OPENAI, 408, "", NULL, NULL, &e);
	assert_int_equal(e.transient, 1);
	classify(LLM_OPENAI, 409, "", NULL, NULL, &e);
	assert_int_equal(e.transient, 1);
	classify(LLM_OPENAI, 402, "", NULL, NULL, &e);
	assert_string_equal(e.kind, "other");
	assert_int_equal(e.transient, 0);
}

static void
test_classify_anthropic_errors(void **state)
{
	static const struct {
		long		 status;
		const char	*type;
		const char	*kind;
		int		 transient;
	} map[] = {
		{ 400, "invalid_request_error", "bad_request", 0 },
		{ 401, "authentication_error", "auth", 0 },
		{ 403, "permission_error", "permission", 0 },
		{ 404, "not_found_error", "not_found", 0 },
		{ 413, "request_too_large", "bad_request", 0 },
		{ 429, "rate_limit_error", "rate_limited", 1 },
		{ 500, "api_error", "server", 1 },
		{ 503, "api_error", "server", 1 },
		{ 529, "overloaded_error", "overloaded", 1 },
	};
	struct llm_error e;
	char body[256];
	size_t i;

	for (i = 0; i < nitems(map); i++) {
		snprintf(body, sizeof body, "{'type':'error','error':{'type':"
		    "'%s','message':'msg %zu'},'request_id':"
		    "'req_011CSHoEeqs5C35K2UUqR7Fy'}", map[i].type, i);
		classify(LLM_ANTHROPIC, map[i].status, body, NULL, NULL, &e);
		assert_string_equal(e.kind, map[i].kind);
		assert_int_equal(e.transient, map[i].transient);
		assert_int_equal(e.context_overflow, 0);
		snprintf(body, sizeof body, "msg %zu", i);
		assert_string_equal(e.message, body);
	}
	/* overloaded_error means overloaded whatever the status. */
	classify(LLM_ANTHROPIC, 503, "{'type':'error','error':{'type':"
	    "'overloaded_error','message':'Overloaded'}}", NULL, NULL, &e);
	assert_string_equal(e.kind, "overloaded");
	assert_int_equal(e.transient, 1);
	/* A spend limit is a 429 that waiting will not fix. */
	classify(LLM_ANTHROPIC, 429, "{'type':'error','error':{'type':"
	    "'rate_limit_error','message':'spend limit reached','details':"
	    "{'error_code':'enforced_spend_limit_reached'}}}", NULL, NULL, &e);
	assert_string_equal(e.kind, "rate_limited");
	assert_int_equal(e.transient, 0);
}

static void
test_classify_context_overflow(void **state)
{
	struct llm_error e;

	classify(LLM_OPENAI, 400, "{'error':{'message':'This model\\u0027s "
	    "maximum context length is 128000 tokens. However, your messages "
	    "resulted in 130567 tokens.','type':'invalid_request_error',"
	    "'param':'messages','code':'context_length_exceeded'}}", NULL,
	    NULL, &e);
	assert_string_equal(e.kind, "context_overflow");
	assert_int_equal(e.context_overflow, 1);
	assert_int_equal(e.transient, 0);

	/* vLLM: no code, only the message. */
	classify(LLM_OPENAI, 400, "{'object':'error','message':'This "
	    "model\\u0027s maximum context length is 4096 tokens. However, "
	    "you requested 5000 tokens.','type':'BadRequestError','param':"
	    "null,'code':400}", NULL, NULL, &e);
	assert_int_equal(e.context_overflow, 1);
	assert_string_equal(e.kind, "context_overflow");

	/* llama.cpp server. */
	classify(LLM_OPENAI, 400, "{'error':{'code':400,'message':'the "
	    "request exceeds the available context size, try increasing it',"
	    "'type':'exceed_context_size_error','n_prompt_tokens':9000,"
	    "'n_ctx':8192}}", NULL, NULL, &e);
	assert_int_equal(e.context_overflow, 1);

	classify(LLM_ANTHROPIC, 400, "{'type':'error','error':{'type':"
	    "'invalid_request_error','message':'prompt is too long: 208310 "
	    "tokens > 200000 maximum'}}", NULL, NULL, &e);
	assert_string_equal(e.kind, "context_overflow");
	assert_int_equal(e.context_overflow, 1);
	assert_int_equal(e.transient, 0);
	assert_string_equal(e.message,
	    "prompt is too long: 208310 tokens > 200000 maximum");

	classify(LLM_ANTHROPIC, 400, "{'type':'error','error':{'type':"
	    "'invalid_request_error','message':'input length and "
	    "`max_tokens` exceed context limit: 197000 + 8192 > 200000'}}",
	    NULL, NULL, &e);
	assert_int_equal(e.context_overflow, 1);

	/* An ordinary bad request is not an overflow. */
	classify(LLM_ANTHROPIC, 400, "{'type':'error','error':{'type':"
	    "'invalid_request_error','message':'max_tokens: Field required'}}",
	    NULL, NULL, &e);
	assert_int_equal(e.context_overflow, 0);
	assert_string_equal(e.kind, "bad_request");
}

static void
test_classify_retry_after_forms(void **state)
{
	struct llm_error e;
	char date[64];
	struct tm tm;
	time_t t;

	classify(LLM_ANTHROPIC, 429, "{}", "20", NULL, &e);
	assert_int_equal(e.retry_after_ms, 20000);
	classify(LLM_ANTHROPIC, 429, "{}", "1.5", NULL, &e);
	assert_int_equal(e.retry_after_ms, 1500);
	classify(LLM_ANTHROPIC, 429, "{}", "0.0001", NULL, &e);
	assert_int_equal(e.retry_after_ms, 1);
	classify(LLM_ANTHROPIC, 429, "{}", " 3 ", NULL, &e);
	assert_int_equal(e.retry_after_ms, 3000);
	/* retry-after-ms wins. */
	classify(LLM_OPENAI, 429, "{}", "20", "250", &e);
	assert_int_equal(e.retry_after_ms, 250);
	classify(LLM_OPENAI, 429, "{}", "20", "12.5", &e);
	assert_int_equal(e.retry_after_ms, 13);
	/* Unusable values. */
	classify(LLM_OPENAI, 429, "{}", "soon", "x", &e);
	assert_int_equal(e.retry_after_ms, -1);
	classify(LLM_OPENAI, 429, "{}", "-5", NULL, &e);
	assert_int_equal(e.retry_after_ms, -1);
	classify(LLM_OPENAI, 429, "{}", "inf", NULL, &e);
	assert_int_equal(e.retry_after_ms, -1);
	classify(LLM_OPENAI, 429, "{}", "", NULL, &e);
	assert_int_equal(e.retry_after_ms, -1);
	/* Huge values are capped at 7 days. */
	classify(LLM_OPENAI, 429, "{}", "99999999999999999999", NULL, &e);
	assert_int_equal(e.retry_after_ms, 7L * 24 * 3600 * 1000);

	/* An HTTP-date two minutes from now. */
	t = time(NULL) + 120;
	gmtime_r(&t, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	classify(LLM_ANTHROPIC, 503, "", date, NULL, &e);
	assert_true(e.retry_after_ms > 115000 && e.retry_after_ms <= 120000);
	/* A date in the past means now. */
	classify(LLM_ANTHROPIC, 503, "", "Sun, 06 Nov 1994 08:49:37 GMT",
	    NULL, &e);
	assert_int_equal(e.retry_after_ms, 0);
}

static void
test_retry_after_http_date_forms(void **state)
{
	/* Sun, 06 Nov 1994 08:49:37 GMT is 784111777 s after the epoch. */
	double now = 784111777 - 30.5;

	assert_int_equal(llm_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT",
	    NULL, now), 30500);
	assert_int_equal(llm_retry_after_ms("Sunday, 06-Nov-94 08:49:37 GMT",
	    NULL, now), 30500);
	assert_int_equal(llm_retry_after_ms("Sun Nov  6 08:49:37 1994", NULL,
	    now), 30500);
	assert_int_equal(llm_retry_after_ms("Sun, 06 Nov 1994 08:49:37 UTC",
	    NULL, now), -1);
	assert_int_equal(llm_retry_after_ms("Sun, 06 Foo 1994 08:49:37 GMT",
	    NULL, now), -1);
	assert_int_equal(llm_retry_after_ms("Sun, 06 Nov 1994 25:49:37 GMT",
	    NULL, now), -1);
	assert_int_equal(llm_retry_after_ms(" Sun, 06 Nov 1994 08:49:37 GMT"
	    "\r\n", NULL, now), 30500);
	assert_int_equal(llm_retry_after_ms(NULL, NULL, now), -1);
}

static void
test_classify_non_json_bodies(void **state)
{
	static const char nginx[] =
	    "<html>\r\n<head><title>503 Service Temporarily Unavailable"
	    "</title></head>\r\n<body>\r\n<center><h1>503 Service "
	    "Temporarily Unavailable</h1></center>\r\n<hr><center>nginx"
	    "</center>\r\n</body>\r\n</html>\r\n";
	static const char notitle[] =
	    "<html><body><h1>Bad\tGateway</h1>\n<p>upstream   said "
	    "no</p></body></html>";
	static const char junk[] = "oops\x01\x02 bad \xff\xfe utf8 \xc3\xa9";
	struct llm_error e;

	llm_classify_error(LLM_OPENAI, 503, nginx, strlen(nginx), "2", NULL,
	    &e);
	assert_string_equal(e.kind, "server");
	assert_int_equal(e.transient, 1);
	assert_int_equal(e.retry_after_ms, 2000);
	assert_string_equal(e.message, "503 Service Temporarily Unavailable");

	llm_classify_error(LLM_ANTHROPIC, 502, notitle, strlen(notitle), NULL,
	    NULL, &e);
	assert_string_equal(e.message, "Bad Gateway upstream said no");
	assert_string_equal(e.kind, "server");

	llm_classify_error(LLM_ANTHROPIC, 500, junk, strlen(junk), NULL, NULL,
	    &e);
	assert_string_equal(e.message, "oops bad ?? utf8 \xc3\xa9");

	llm_classify_error(LLM_ANTHROPIC, 502, "", 0, NULL, NULL, &e);
	assert_string_equal(e.message, "HTTP 502 with an empty body");
	llm_classify_error(LLM_ANTHROPIC, 502, NULL, 0, NULL, NULL, &e);
	assert_string_equal(e.message, "HTTP 502 with an empty body");
	classify(LLM_OPENAI, 500, "{'error':{'message':'','type':"
	    "'server_error'}}", NULL, NULL, &e);
	assert_string_equal(e.message, "HTTP 500");

	/* Ollama: the error is a string. */
	classify(LLM_OPENAI, 404, "{'error':'model \\u0027llama9\\u0027 not "
	    "found, try pulling it first'}", NULL, NULL, &e);
	assert_string_equal(e.kind, "not_found");
	assert_string_equal(e.message,
	    "model 'llama9' not found, try pulling it first");
}

static void
test_classify_long_message_cut_at_character_boundary(void **state)
{
	struct llm_error e;
	char *body = xmalloc(4096), *o = body;
	size_t i;
	json_t *check;

	o += sprintf(o, "{\"error\":{\"type\":\"x\",\"message\":\"");
	for (i = 0; i < 600; i++)
		o += sprintf(o, "\xc3\xa9");	/* 2 bytes each */
	o += sprintf(o, "\"}}");
	llm_classify_error(LLM_OPENAI, 400, body, o - body, NULL, NULL, &e);
	assert_int_equal(strlen(e.message), 510);
	/* Still valid UTF-8: jansson accepts it. */
	check = json_string(e.message);
	assert_non_null(check);
	json_decref(check);
	free(body);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_openai_build_conversation_with_tools),
		cmocka_unit_test(
		    test_openai_build_minimal_and_max_tokens_field),
		cmocka_unit_test(test_anthropic_build_conversation_with_tools),
		cmocka_unit_test(
		    test_anthropic_build_merges_roles_and_joins_system),
		cmocka_unit_test(
		    test_anthropic_build_groups_consecutive_tool_results),
		cmocka_unit_test(test_build_rejects_malformed_requests),
		cmocka_unit_test(test_openai_parse_text_answer),
		cmocka_unit_test(test_openai_parse_multiple_tool_calls),
		cmocka_unit_test(test_openai_parse_stop_reasons),
		cmocka_unit_test(
		    test_openai_parse_malformed_arguments_is_an_error),
		cmocka_unit_test(test_openai_parse_missing_fields_are_errors),
		cmocka_unit_test(
		    test_openai_parse_tool_call_without_id_gets_one),
		cmocka_unit_test(test_anthropic_parse_text_and_tool_uses),
		cmocka_unit_test(test_anthropic_parse_stop_reasons),
		cmocka_unit_test(test_anthropic_parse_errors),
		cmocka_unit_test(test_openai_stream_text_any_split),
		cmocka_unit_test(test_openai_stream_crlf_line_ends),
		cmocka_unit_test(
		    test_openai_stream_interleaved_tool_calls_any_split),
		cmocka_unit_test(test_openai_stream_without_usage_chunk),
		cmocka_unit_test(
		    test_openai_stream_tool_calls_ordered_by_index),
		cmocka_unit_test(test_openai_stream_truncated_is_an_error),
		cmocka_unit_test(test_openai_stream_error_chunk),
		cmocka_unit_test(
		    test_openai_stream_malformed_data_is_an_error),
		cmocka_unit_test(
		    test_openai_stream_malformed_arguments_fail_finish),
		cmocka_unit_test(
		    test_anthropic_stream_text_and_tool_use_any_split),
		cmocka_unit_test(test_anthropic_stream_crlf_line_ends),
		cmocka_unit_test(
		    test_anthropic_stream_usage_from_message_delta_wins),
		cmocka_unit_test(
		    test_anthropic_stream_tool_input_whole_at_block_start),
		cmocka_unit_test(test_anthropic_stream_truncated_is_an_error),
		cmocka_unit_test(test_anthropic_stream_error_event),
		cmocka_unit_test(test_anthropic_stream_bad_events_are_errors),
		cmocka_unit_test(
		    test_anthropic_stream_cut_tool_input_at_max_tokens),
		cmocka_unit_test(test_stream_event_over_8_mib_is_an_error),
		cmocka_unit_test(test_classify_openai_errors),
		cmocka_unit_test(test_classify_anthropic_errors),
		cmocka_unit_test(test_classify_context_overflow),
		cmocka_unit_test(test_classify_retry_after_forms),
		cmocka_unit_test(test_retry_after_http_date_forms),
		cmocka_unit_test(test_classify_non_json_bodies),
		cmocka_unit_test(
		    test_classify_long_message_cut_at_character_boundary),
	};
	int rv, i;

	rv = cmocka_run_group_tests(tests, NULL, NULL);
	for (i = 0; i < NQ; i++)
		free(qring[i]);
	return rv;
}
