/*
 * fuzz_mcp_client.c: fuzz the MCP client (protocols/mcp_client.c) with
 * what a stdio server writes: answers, errors, notifications and requests
 * of the server, in any order, split anywhere, malformed.  A worker reads
 * this from servers it does not trust.
 *
 * The server is /bin/cat, so the input is exactly what the client reads.
 * The first byte of an input says how the server behaves: bit 0 clear,
 * `cat FILE` writes the rest of the input and exits; set, `cat FILE -`
 * writes it, then echoes the client's own messages back until the session
 * ends.  The client numbers its messages from 1 (initialize), so an
 * input answers tools/list as id 2 and tools/call as id 3.
 *
 * Invariants: each request's callback runs exactly once (an answer, an
 * error, or the end of the session), with exactly one of result and
 * error, an error being {kind: string, message: string}; a server that
 * has exited leaves no request waiting; nothing crashes or leaks (make
 * check's sanitizer build runs this under ASan, UBSan and LSan).  The
 * driver is fuzz_driver.h (1000 mutations by default: each input starts
 * a process).
 */
#include "config.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "runtime/util.h"
#include "protocols/mcp_client.h"
#include "tests/fuzz/fuzz_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct event_base *fz_base;
static char fz_dir[] = "/tmp/weft-fuzz-mcpc.XXXXXX";
static char *fz_file;

struct fz_req {
	int	calls;
	int	bad;		/* an invariant of the callback broke */
};

static void
fz_cb(void *arg, json_t *result, json_t *error)
{
	struct fz_req *r = arg;

	r->calls++;
	if ((result == NULL) == (error == NULL))
		r->bad = 1;
	if (error != NULL &&
	    (!json_is_string(json_object_get(error, "kind")) ||
	    !json_is_string(json_object_get(error, "message"))))
		r->bad = 1;
}

static void
fz_note(void *arg, const char *method, json_t *params)
{
	(void)arg;
	(void)params;
	if (method == NULL)
		abort();
}

static void
fz_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(int *)arg = 1;
}

static void
fz_cleanup(void)
{
	unlink(fz_file);
	free(fz_file);
	rmdir(fz_dir);
	event_base_free(fz_base);
}

static void
fz_init(void)
{
	if (fz_base != NULL)
		return;
	/* A server that has exited makes writes to its stdin fail. */
	signal(SIGPIPE, SIG_IGN);
	if (mkdtemp(fz_dir) == NULL)
		abort();
	fz_file = xasprintf("%s/out", fz_dir);
	fz_base = event_base_new();
	atexit(fz_cleanup);
}

static void
fz_fail(const char *what, const uint8_t *data, size_t size)
{
	fprintf(stderr, "fuzz_mcp_client: %s; server (mode %d) wrote:\n%.*s\n",
	    what, data[0] & 1, (int)(size - 1), (const char *)data + 1);
	abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_req req[2];
	struct timeval tv;
	struct event *dl;
	struct mcpc *s;
	json_t *spec;
	char err[256];
	FILE *f;
	int echo, expired = 0, i;

	fz_init();
	if (size < 1)
		return 0;
	echo = data[0] & 1;
	if ((f = fopen(fz_file, "wb")) == NULL ||
	    fwrite(data + 1, 1, size - 1, f) != size - 1 || fclose(f) != 0)
		abort();
	spec = echo ? json_pack("{s:s, s:[s, s, s]}", "name", "fz", "command",
	    "/bin/cat", fz_file, "-") : json_pack("{s:s, s:[s, s]}", "name",
	    "fz", "command", "/bin/cat", fz_file);
	if ((s = mcpc_new(fz_base, spec, NULL, err, sizeof err)) == NULL) {
		fprintf(stderr, "fuzz_mcp_client: %s\n", err);
		abort();
	}
	json_decref(spec);
	mcpc_set_notify(s, fz_note, NULL);
	memset(req, 0, sizeof req);
	mcpc_request(s, "tools/list", NULL, fz_cb, &req[0]);
	mcpc_request(s, "tools/call", json_pack("{s:s, s:{s:s}}", "name",
	    "echo", "arguments", "message", "hi"), fz_cb, &req[1]);
	/* An exited server fails what waits at once; an echoing one may
	   leave a request unanswered, which the end of the session fails. */
	dl = evtimer_new(fz_base, fz_deadline_cb, &expired);
	tv.tv_sec = echo ? 0 : 10;
	tv.tv_usec = echo ? 20000 : 0;
	evtimer_add(dl, &tv);
	while (!expired && (req[0].calls == 0 || req[1].calls == 0))
		event_base_loop(fz_base, EVLOOP_ONCE);
	event_free(dl);
	if (!echo && expired)
		fz_fail("a request still waits 10 s after the server exited",
		    data, size);
	mcpc_free(s);
	for (i = 0; i < 2; i++) {
		if (req[i].calls != 1)
			fz_fail(req[i].calls == 0 ? "a callback never ran" :
			    "a callback ran twice", data, size);
		if (req[i].bad)
			fz_fail("a callback got a malformed outcome", data,
			    size);
	}
	return 0;
}

#ifndef WEFT_LIBFUZZER
#define INIT(v)	"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":" \
		"\"" v "\",\"capabilities\":{\"tools\":{}},\"serverInfo\":" \
		"{\"name\":\"f\",\"version\":\"1\"}}}\n"
#define LIST	"{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[{\"name\":" \
		"\"echo\",\"inputSchema\":{\"type\":\"object\"}}]}}\n"
#define CALL	"{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"content\":[{\"type\":" \
		"\"text\",\"text\":\"hi\"}]}}\n"

static const char *const fz_corpus[] = {
	"\0" INIT("2025-11-25") LIST CALL,
	"\1" INIT("2025-11-25") LIST CALL,
	"\0" INIT("2024-11-05") CALL LIST,
	"\1" INIT("2025-06-18"),
	"\0" INIT("1999-01-01") LIST CALL,
	"\0{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n" LIST,
	"\0{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32603,\"message\":\"no\"}}\n",
	"\1" INIT("2025-11-25")
	"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":0.5}}\n"
	"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n"
	"{\"jsonrpc\":\"2.0\",\"id\":\"p1\",\"method\":\"ping\"}\n"
	"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"sampling/createMessage\",\"params\":{}}\n"
	LIST CALL,
	"\0" INIT("2025-11-25")
	"{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32601,\"message\":\"Method not found\",\"data\":[1,2]}}\n"
	"{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":1.5,\"message\":7}}\n",
	"\0" INIT("2025-11-25")
	"{\"jsonrpc\":\"2.0\",\"id\":\"2\",\"result\":{}}\n"
	"{\"jsonrpc\":\"2.0\",\"id\":null,\"result\":{}}\n"
	"{\"jsonrpc\":\"2.0\",\"id\":3.0,\"result\":{}}\n"
	"{\"jsonrpc\":\"2.0\",\"id\":9223372036854775807,\"result\":{}}\n"
	"{\"jsonrpc\":\"2.0\",\"id\":-1,\"result\":{}}\n",
	"\0" INIT("2025-11-25") "[" "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}},"
	"{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}]\n",
	"\0" INIT("2025-11-25") CALL CALL LIST LIST,
	"\0" LIST INIT("2025-11-25") CALL,
	"\1{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":\"2025-11-25\"}}\r\n\r\n  \n"
	"{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[]}}\r\n",
	"\0" INIT("2025-11-25")
	"{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[{\"name\":\"\xff\xfe\"}]}}\n"
	"{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"a\\u0000b\\ud800\"}]}}\n",
	"\0" INIT("2025-11-25") "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n",
	"\0" INIT("2025-11-25") "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[",
	"\1hello, this is not JSON\n" INIT("2025-11-25"),
	"\0" INIT("2025-11-25")
	"{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{},\"error\":{\"code\":1,\"message\":\"both\"}}\n"
	"{\"jsonrpc\":\"1.0\",\"id\":3,\"result\":{}}\n",
	"\1" INIT("2025-11-25") "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\","
	"\"params\":{\"level\":\"error\",\"data\":{\"x\":[true,false,null]}}}\n",
	"\0",
	"\1",
};

int
main(int argc, char **argv)
{
	return fz_main(argc, argv, "fuzz_mcp_client", fz_corpus,
	    nitems(fz_corpus), 1000, "{}[]\":,\\0123456789-.eEtfn \n\r");
}
#endif
