/*
 * fuzz_protocols.c: fuzz the parsers of protocols/ that read untrusted
 * bytes: JSON-RPC framing (what workers, MCP servers and MCP clients
 * send), server-sent events (model streams, MCP over HTTP) and model
 * answers, whole and streamed, in both model APIs.
 *
 * The mode byte picks the parser: 0 JSON-RPC lines, 1 SSE, 2 an OpenAI
 * answer, 3 an Anthropic answer, 4 an OpenAI stream, 5 an Anthropic stream,
 * 6 a dead tool server's stderr read for a refusal (runtime/sandbox.h).
 * Besides not crashing, each checks what its callers rely on: a parsed
 * message encodes and parses again to the same kind; an SSE event's data is
 * never more than was fed; a decoded answer is an object with a text, a
 * stop reason and a list of calls whose arguments are objects; a failed
 * one says why.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "runtime/util.h"
#include "protocols/jsonrpc.h"
#include "protocols/llm.h"
#include "protocols/sse.h"
#include "runtime/sandbox.h"
#include "tests/fuzz/fuzz_driver.h"

/*
 * A server's stderr, as sandbox_explain reads it for a refusal: the
 * sentence, when there is one, is a whole NUL-terminated string.
 */
static void
fz_explain(const char *p, size_t n)
{
	json_t *paths = json_pack("{s:[s, s], s:[s]}", "read", "/usr", "/tmp",
	    "write", "/dev/null");
	char buf[512];

	if (sandbox_explain(paths, p, n, buf, sizeof buf) != 0 &&
	    strnlen(buf, sizeof buf) == sizeof buf)
		abort();
	json_decref(paths);
}

/* JSON-RPC: each line alone, as the MCP stdio client reads them. */
static void
fz_jsonrpc(const char *p, size_t n)
{
	struct linebuf *lb = linebuf_new(1 << 16);
	struct jrpc_msg m, again;
	const char *line;
	char err[256], *dump;
	size_t len, dlen;
	enum jrpc_kind kind;
	int code;

	linebuf_feed(lb, p, n);
	linebuf_feed(lb, "\n", 1);
	while (linebuf_next(lb, &line, &len) == 1) {
		if (jrpc_parse(line, len, &m, &code, err, sizeof err) != 0) {
			FZ_CHECK(code < 0 && err[0] != '\0', "a failed parse "
			    "gave no code (%d) or no message", code);
			continue;
		}
		kind = m.kind;
		dump = jrpc_dump(m.root, &dlen, 0);
		FZ_CHECK(dump != NULL, "a parsed message does not encode");
		FZ_CHECK(jrpc_parse(dump, dlen, &again, &code, err,
		    sizeof err) == 0 && again.kind == kind, "a parsed "
		    "message does not parse again the same: %s", dump);
		jrpc_msg_clear(&again);
		jrpc_msg_clear(&m);
		free(dump);
	}
	linebuf_free(lb);
}

static size_t fz_fed;

static int
fz_sse_cb(void *arg, const char *event, const char *data, size_t len)
{
	FZ_CHECK(len <= fz_fed, "an event of %zu bytes from %zu fed", len,
	    fz_fed);
	FZ_CHECK(data[len] == '\0', "event data is not terminated");
	(void)arg;
	(void)event;
	return 0;
}

/* SSE: the bytes fed in pieces of varying size. */
static void
fz_sse(const char *p, size_t n)
{
	struct sse *s = sse_new(4096, fz_sse_cb, NULL);
	char err[256];
	size_t off = 0, k;

	fz_fed = n;
	while (off < n) {
		k = 1 + (p[off] & 7);
		if (k > n - off)
			k = n - off;
		if (sse_feed(s, p + off, k, err, sizeof err) != 0) {
			FZ_CHECK(err[0] != '\0', "a failed feed said nothing");
			break;
		}
		off += k;
	}
	sse_free(s);
}

/* What every decoded answer must be. */
static void
fz_answer_ok(json_t *r)
{
	json_t *calls, *c;
	size_t i;

	FZ_CHECK(json_is_object(r), "an answer is not an object");
	FZ_CHECK(json_is_string(json_object_get(r, "stop_reason")),
	    "an answer without a stop_reason");
	calls = json_object_get(r, "tool_calls");
	FZ_CHECK(calls == NULL || json_is_array(calls), "tool_calls is not "
	    "a list");
	json_array_foreach(calls, i, c)
		FZ_CHECK(json_is_string(json_object_get(c, "name")) &&
		    json_is_object(json_object_get(c, "args")), "a tool call "
		    "without a name or with arguments that are not an object");
}

/* A whole answer of api. */
static void
fz_answer(enum llm_api api, const char *p, size_t n)
{
	char err[512] = "";
	json_t *r;

	if ((r = llm_parse_response(api, p, n, err, sizeof err)) == NULL) {
		FZ_CHECK(err[0] != '\0', "a refused answer said nothing");
		return;
	}
	fz_answer_ok(r);
	json_decref(r);
}

/* A streamed answer of api, fed in pieces. */
static void
fz_stream(enum llm_api api, const char *p, size_t n)
{
	struct llm_stream *s = llm_stream_new(api);
	struct llm_error e;
	char err[512] = "";
	size_t off = 0, k;
	json_t *r;

	while (off < n) {
		k = 1 + (p[off] & 15);
		if (k > n - off)
			k = n - off;
		if (llm_stream_feed(s, p + off, k, err, sizeof err) != 0) {
			FZ_CHECK(err[0] != '\0', "a failed feed said nothing");
			llm_stream_error(s, &e);
			FZ_CHECK(e.kind[0] != '\0', "a failed stream has no "
			    "error kind");
			llm_stream_free(s);
			return;
		}
		off += k;
	}
	if ((r = llm_stream_finish(s, err, sizeof err)) != NULL) {
		fz_answer_ok(r);
		json_decref(r);
	} else
		FZ_CHECK(err[0] != '\0', "an unfinished stream said nothing");
	llm_stream_free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 1;
	size_t n;

	if (size < 1)
		return 0;
	n = size - 1;
	switch (data[0] % 7) {
	case 0:
		fz_jsonrpc(p, n);
		break;
	case 1:
		fz_sse(p, n);
		break;
	case 2:
		fz_answer(LLM_OPENAI, p, n);
		break;
	case 3:
		fz_answer(LLM_ANTHROPIC, p, n);
		break;
	case 4:
		fz_stream(LLM_OPENAI, p, n);
		break;
	case 5:
		fz_stream(LLM_ANTHROPIC, p, n);
		break;
	default:
		fz_explain(p, n);
		break;
	}
	return 0;
}

#ifndef WEFT_LIBFUZZER
static const char *const fz_corpus[] = {
	"\0{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"hi\"}}}\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[]}}",
	"\0{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"error\":{\"code\":-32601,\"message\":\"no\"}}\n{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}",
	"\1event: message\ndata: {\"a\":1}\nid: 7\nretry: 100\n\n: comment\ndata: line1\ndata: line2\n\n",
	"\1data: x\r\n\r\ndata:y\r\rdata: z\n\n",
	"\2{\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"hi\",\"tool_calls\":[{\"id\":\"t1\",\"type\":\"function\",\"function\":{\"name\":\"echo\",\"arguments\":\"{\\\"message\\\":\\\"x\\\"}\"}}]},\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}",
	"\2{\"error\":{\"message\":\"bad\",\"type\":\"invalid_request_error\"}}",
	"\3{\"id\":\"m1\",\"model\":\"c\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"},{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"echo\",\"input\":{\"message\":\"x\"}}],\"stop_reason\":\"tool_use\",\"usage\":{\"input_tokens\":3,\"output_tokens\":4}}",
	"\4data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"he\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"t\",\"function\":{\"name\":\"echo\",\"arguments\":\"{\\\"m\\\":\"}}]}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n",
	"\5event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":2}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"echo\",\"input\":{}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"m\\\":1}\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":5}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
	"\5event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n",
	"\6node:fs:448\n\nError: EACCES: permission denied, open '/etc/x/index.js'\n    at y\nNode.js v20\n",
	"\6PermissionError: [Errno 13] Permission denied: '/tmp/out.txt'\n",
	"\6/bin/sh: 1: /opt/x/bin/y: Permission denied\n~/z: Operation not permitted\nEPERM\n",
};

int
main(int argc, char **argv)
{
	return fz_main(argc, argv, "fuzz_protocols", fz_corpus,
	    nitems(fz_corpus), 30000, "{}[]\":,\\0123456789-.eEtfn :\n\r");
}
#endif
