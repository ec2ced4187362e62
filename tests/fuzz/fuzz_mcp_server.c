/*
 * fuzz_mcp_server.c: fuzz the MCP server's message handling
 * (protocols/mcp_server.c, behind engine/serve.c) with the workflows of
 * tests/interop/workflows.
 *
 * The first byte of an input says whether the session is initialized
 * first (odd) or not (even); the rest is one client message.  Invariants:
 * nothing crashes; every message the server sends is one JSON-RPC object
 * that jrpc_parse accepts; a request (or an unparsable message) gets
 * exactly one answer, a notification none.  The server is built with
 * max_runs 0, so tools/call is answered at once ("busy") and no process is
 * started.
 *
 * The driver is fuzz_driver.h (20000 mutations by default).  It needs
 * WEFT_SRCDIR.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "engine/cmd.h"
#include "engine/serve.h"
#include "protocols/mcp_server.h"
#include "runtime/util.h"
#include "tests/fuzz/fuzz_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct event_base *fz_base;
static struct serve *fz_srv;
static char fz_dir[] = "/tmp/weft-fuzz-mcp.XXXXXX";
static int fz_finals;

static void
fz_send_cb(void *arg, json_t *msg, const json_t *req_id, int final)
{
	struct jrpc_msg m;
	char err[256], *s;
	size_t len;
	int code;

	(void)arg;
	(void)req_id;
	if (final)
		fz_finals++;
	if (msg == NULL)
		return;
	if ((s = jrpc_dump(msg, &len, 0)) == NULL || memchr(s, '\n', len) ||
	    jrpc_parse(s, len, &m, &code, err, sizeof err) != 0) {
		fprintf(stderr, "server sent an invalid message: %s\n",
		    s ? s : "(unencodable)");
		abort();
	}
	jrpc_msg_clear(&m);
	free(s);
}

static void
fz_cleanup(void)
{
	char *p;

	serve_free(fz_srv);
	event_base_free(fz_base);
	p = xasprintf("%s/fuzz.db", fz_dir);
	unlink(p);
	free(p);
	p = xasprintf("%s/fuzz.db-wal", fz_dir);
	unlink(p);
	free(p);
	p = xasprintf("%s/fuzz.db-shm", fz_dir);
	unlink(p);
	free(p);
	rmdir(fz_dir);
}

static void
fz_init(void)
{
	const char *src = getenv("WEFT_SRCDIR");
	struct serve_opts o;
	char err[1024], *dir, *paths[1];

	if (fz_srv != NULL)
		return;
	if (src == NULL) {
		fprintf(stderr, "fuzz_mcp_server: set WEFT_SRCDIR\n");
		exit(77);
	}
	if (mkdtemp(fz_dir) == NULL)
		abort();
	memset(&o, 0, sizeof o);
	o.load_meta = cmd_workflow_meta;
	o.db = xasprintf("%s/fuzz.db", fz_dir);
	o.exe = "/nonexistent";
	o.workers = 1;
	o.no_workers = 1;	/* this binary is no weft worker */
	o.max_runs = 0;
	dir = xasprintf("%s/tests/interop/workflows", src);
	paths[0] = dir;
	fz_base = event_base_new();
	if (serve_new(fz_base, &o, paths, 1, &fz_srv, err, sizeof err) != 0) {
		fprintf(stderr, "fuzz_mcp_server: %s\n", err);
		exit(1);
	}
	free(dir);
	free((char *)o.db);
	atexit(fz_cleanup);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char init[] = "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":"
	    "\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\","
	    "\"capabilities\":{},\"clientInfo\":{\"name\":\"f\",\"version\":"
	    "\"1\"}}}";
	struct mcps_conn *cn;
	struct jrpc_msg m;
	char err[256];
	int code, want;

	fz_init();
	if (size < 1)
		return 0;
	cn = mcps_conn_new(serve_mcps(fz_srv), fz_send_cb, NULL);
	if (data[0] & 1)
		mcps_conn_input(cn, init, strlen(init));
	fz_finals = 0;
	want = 1;
	if (jrpc_parse((const char *)data + 1, size - 1, &m, &code, err,
	    sizeof err) == 0) {
		want = m.kind == JRPC_REQUEST ? 1 : 0;
		jrpc_msg_clear(&m);
	}
	mcps_conn_input(cn, (const char *)data + 1, size - 1);
	if (fz_finals != want) {
		fprintf(stderr, "%d answers to one message, expected %d: %.*s\n",
		    fz_finals, want, (int)size - 1, (const char *)data + 1);
		abort();
	}
	mcps_conn_free(cn);
	return 0;
}

#ifndef WEFT_LIBFUZZER
static const char *const fz_corpus[] = {
	"\1{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}",
	"\1{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{\"cursor\":\"1\"}}",
	"\1{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"tools/call\",\"params\":{\"name\":\"test_simple_text\",\"arguments\":{},\"_meta\":{\"progressToken\":1}}}",
	"\1{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"json_schema_2020_12_tool\",\"arguments\":{\"name\":1}}}",
	"\1{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"resources/list\"}",
	"\1{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/templates/list\"}",
	"\1{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"resources/read\",\"params\":{\"uri\":\"test://template/1/data\"}}",
	"\1{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"resources/read\",\"params\":{\"uri\":\"weft://runs/0123456789abcdef\"}}",
	"\1{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"resources/subscribe\",\"params\":{\"uri\":\"test://static-text\"}}",
	"\1{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"prompts/list\"}",
	"\1{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"prompts/get\",\"params\":{\"name\":\"test_prompt_with_arguments\",\"arguments\":{\"arg1\":\"{arg2}\",\"arg2\":\"}{\"}}}",
	"\1{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"completion/complete\",\"params\":{\"ref\":{\"type\":\"ref/prompt\",\"name\":\"test_prompt_with_arguments\"},\"argument\":{\"name\":\"arg1\",\"value\":\"pa\"}}}",
	"\1{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"logging/setLevel\",\"params\":{\"level\":\"debug\"}}",
	"\1{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":1}}",
	"\0{\"jsonrpc\":\"2.0\",\"id\":13,\"method\":\"ping\"}",
	"\0{\"jsonrpc\":\"2.0\",\"id\":14,\"method\":\"tools/list\"}",
	"\1{\"jsonrpc\":\"2.0\",\"id\":15,\"result\":{}}",
	"\1[{\"jsonrpc\":\"2.0\",\"id\":16,\"method\":\"ping\"}]",
};

int
main(int argc, char **argv)
{
	fz_init();
	return fz_main(argc, argv, "fuzz_mcp_server", fz_corpus,
	    nitems(fz_corpus), 20000, "{}[]\":,\\0123456789-.eEtfn ");
}
#endif
