/*
 * fuzz_coord_wire.c: fuzz the coordinator's side of the worker wire
 * (docs/PROTOCOL.md) through the real path: a coordinator with a store in
 * a temporary directory, its nng listener and its loop, and this program
 * as its worker 0, enrolled (coord_enrolment) and connected over ipc.
 *
 * Each input is a mode byte and one message.  Mode bit 0: send it on the
 * enrolled connection (1) or on a connection that never said hello (0);
 * bit 1: first queue two more tasks, so that a poll has work to take.
 * Whatever the message, the coordinator must answer it (a poll finds work
 * queued), with the request's id when it had a valid one, and a stranger
 * must get nothing but errors.  The coordinator must not crash, leak or
 * stop answering: the last input is a heartbeat that must succeed.
 */
#include "config.h"

#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "engine/coord.h"
#include "engine/store.h"
#include "runtime/util.h"
#include "protocols/jsonrpc.h"
#include "tests/fuzz/fuzz_driver.h"

static char fz_dir[] = "/tmp/weft-fuzz-wire.XXXXXX";
static struct store *fz_st;
static struct coord *fz_c;
static struct crun *fz_run;
static nng_socket fz_me, fz_stranger;
static int fz_grant;

static void
fz_deliver(void *arg, int64_t ticket, json_t *result, json_t *error)
{
}

static int
fz_pump(void *arg)
{
	return 0;
}

/* Send text on sock and run the coordinator's loop until it answers. */
static json_t *
fz_ask(nng_socket sock, const char *text, size_t len)
{
	struct pollfd pfd;
	json_t *ans;
	nng_msg *m;
	int rv, rounds;

	if (nng_msg_alloc(&m, 0) != 0 || nng_msg_append(m, text, len) != 0)
		abort();
	FZ_CHECK(nng_sendmsg(sock, m, 0) == 0, "cannot send");
	/* The loop, then a short wait for the answer on nng's threads. */
	if (nng_socket_get_int(sock, NNG_OPT_RECVFD, &pfd.fd) != 0)
		abort();
	pfd.events = POLLIN;
	for (rounds = 0;; rounds++) {
		FZ_CHECK(rounds < 20000, "the coordinator did not answer: %.*s",
		    (int)len, text);
		event_base_loop(coord_base(fz_c), EVLOOP_ONCE |
		    EVLOOP_NONBLOCK);
		(void)poll(&pfd, 1, 1);
		if ((rv = nng_recvmsg(sock, &m, NNG_FLAG_NONBLOCK)) == 0)
			break;
		FZ_CHECK(rv == NNG_EAGAIN, "recv: %s", nng_strerror(rv));
	}
	ans = json_loadb(nng_msg_body(m), nng_msg_len(m), 0, NULL);
	FZ_CHECK(ans != NULL, "the answer is not JSON: %.*s",
	    (int)nng_msg_len(m), (char *)nng_msg_body(m));
	nng_msg_free(m);
	return ans;
}

/* Queue a task of each kind for worker 0 to take. */
static void
fz_queue(void)
{
	crun_submit(fz_run, "mcp.list", "fz/l", 0, "srv", NULL,
	    "{\"server\":\"srv\"}", "\"srv\"", "\"server\":\"srv\"",
	    fz_grant);
	crun_submit(fz_run, "mcp.call", "fz/c", 0, "srv", "echo",
	    "{\"server\":\"srv\",\"name\":\"echo\",\"arguments\":{}}",
	    "\"srv\"", "\"server\":\"srv\",\"name\":\"echo\"", fz_grant);
}

static void
fz_cleanup(void)
{
	char *p;

	nng_close(fz_me);
	nng_close(fz_stranger);
	coord_free(fz_c);
	store_close(fz_st);
	p = xasprintf("rm -rf '%s'", fz_dir);
	if (system(p) != 0)
		fprintf(stderr, "fuzz_coord_wire: cannot remove %s\n", fz_dir);
	free(p);
}

static void
fz_init(void)
{
	static const char bad[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
	    "\"complete\",\"params\":{\"worker\":0,\"results\":[{\"id\":1,"
	    "\"attempt\":\"1\",\"result\":{}}]}}";
	struct coord_opts o;
	struct coord_sink sink = { fz_deliver, fz_pump, NULL, NULL, NULL };
	struct store_run run;
	char err[1024], *path, *enrol, *hello;
	json_t *e, *ans, *g;

	if (fz_c != NULL)
		return;
	if (mkdtemp(fz_dir) == NULL)
		abort();
	path = xasprintf("%s/wire.db", fz_dir);
	if (store_open(path, &fz_st, err, sizeof err) != 0) {
		fprintf(stderr, "fuzz_coord_wire: %s\n", err);
		exit(1);
	}
	free(path);
	memset(&run, 0, sizeof run);
	run.id = "0123456789abcdef";
	run.workflow = "fuzz";
	run.workflow_hash = "0";
	run.input = "{}";
	run.status = "running";
	run.started = now_wall();
	if (store_run_create(fz_st, &run) != 0 || store_commit(fz_st) != 0)
		abort();
	memset(&o, 0, sizeof o);
	o.workers = 1;
	o.slots = 4;
	o.lease_s = 30;
	o.heartbeat_s = 1;
	o.max_attempts = 3;
	o.external = 1;
	o.state_dir = fz_dir;
	if ((fz_c = coord_new(&o, fz_st, err, sizeof err)) == NULL) {
		fprintf(stderr, "fuzz_coord_wire: %s\n", err);
		exit(1);
	}
	fz_run = coord_run_new(fz_c, run.id);
	crun_begin(fz_run, &sink);
	g = json_pack("{s:[s]}", "tools", "srv.*");
	fz_grant = crun_grant(fz_run, 0, "fz", g, 1, err, sizeof err);
	json_decref(g);
	FZ_CHECK(fz_grant > 0, "grant: %s", err);
	enrol = coord_enrolment(fz_c, 0);
	FZ_CHECK(enrol != NULL, "no enrolment");
	e = json_loads(enrol, 0, NULL);
	free(enrol);
	if (nng_req0_open(&fz_me) != 0 || nng_req0_open(&fz_stranger) != 0 ||
	    nng_dial(fz_me, json_string_value(json_object_get(e, "url")),
	    NULL, 0) != 0 || nng_dial(fz_stranger, json_string_value(
	    json_object_get(e, "url")), NULL, 0) != 0)
		abort();
	hello = xasprintf("{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"hello\","
	    "\"params\":{\"version\":2,\"worker\":0,\"secret\":\"%s\","
	    "\"slots\":4}}", json_string_value(json_object_get(e, "secret")));
	json_decref(e);
	ans = fz_ask(fz_me, hello, strlen(hello));
	free(hello);
	FZ_CHECK(json_object_get(ans, "result") != NULL, "hello refused");
	json_decref(ans);
	atexit(fz_cleanup);
	/* A mistyped field refuses the request, naming its JSON pointer. */
	ans = fz_ask(fz_me, bad, sizeof bad - 1);
	e = json_object_get(json_object_get(ans, "error"), "message");
	FZ_CHECK(json_is_string(e) && strcmp(json_string_value(e),
	    "/params/results/0/attempt: must be an integer from 1 to "
	    "2147483647") == 0, "a mistyped attempt was not refused by name");
	json_decref(ans);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data + 1;
	struct jrpc_msg m;
	json_t *ans, *id = NULL, *e;
	char err[256];
	int code, asked;

	fz_init();
	if (size < 1)
		return 0;
	if (data[0] & 2)
		fz_queue();
	asked = 0;
	if (jrpc_parse(text, size - 1, &m, &code, err, sizeof err) == 0) {
		if ((asked = m.kind == JRPC_REQUEST)) {
			id = json_incref(m.id);
			/* A poll waits for work: have some queued. */
			if (strcmp(m.method, "poll") == 0)
				fz_queue();
		}
		jrpc_msg_clear(&m);
	}
	ans = fz_ask(data[0] & 1 ? fz_me : fz_stranger, text, size - 1);
	if (asked)
		FZ_CHECK(json_equal(json_object_get(ans, "id"), id),
		    "the answer does not carry the request's id: %.*s",
		    (int)size - 1, text);
	e = json_object_get(ans, "error");
	if (!(data[0] & 1) && asked)
		FZ_CHECK(e != NULL, "a stranger was answered without an error: "
		    "%.*s", (int)size - 1, text);
	json_decref(id);
	json_decref(ans);
	return 0;
}

#ifndef WEFT_LIBFUZZER
static const char *const fz_corpus[] = {
	"\3{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"poll\",\"params\":{\"worker\":0,\"slots\":4}}",
	"\1{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"heartbeat\",\"params\":{\"worker\":0,\"tasks\":[1,2,3],\"progress\":[{\"id\":2,\"progress\":1,\"total\":3,\"message\":\"m\"}]}}",
	"\1{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"complete\",\"params\":{\"worker\":0,\"results\":[{\"id\":1,\"attempt\":1,\"result\":{\"tools\":[{\"name\":\"echo\",\"inputSchema\":{\"type\":\"object\"}}]}},{\"id\":2,\"attempt\":1,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]},\"progress\":[{\"progress\":1}]}]}}",
	"\1{\"jsonrpc\":\"2.0\",\"id\":\"f\",\"method\":\"fail\",\"params\":{\"worker\":0,\"failures\":[{\"id\":3,\"attempt\":1,\"error\":{\"kind\":\"timeout\",\"message\":\"slow\"}},{\"id\":4,\"attempt\":1,\"error\":{\"kind\":\"server_exited\",\"message\":\"x\"}}]}}",
	"\1{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"hello\",\"params\":{\"version\":2,\"worker\":0,\"secret\":\"00\"}}",
	"\0{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"hello\",\"params\":{\"version\":2,\"worker\":0}}",
	"\2{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"poll\",\"params\":{\"worker\":0,\"slots\":1}}",
	"\1{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"frob\",\"params\":{\"worker\":0}}",
	"\1{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{}}",
	"\1[{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"poll\"}]",
};

int
main(int argc, char **argv)
{
	static const char hb[] = "{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":"
	    "\"heartbeat\",\"params\":{\"worker\":0,\"tasks\":[]}}";
	json_t *ans;
	int rv;

	fz_init();
	rv = fz_main(argc, argv, "fuzz_coord_wire", fz_corpus,
	    nitems(fz_corpus), 3000, "{}[]\":,\\0123456789-.eEtfn ");
	ans = fz_ask(fz_me, hb, sizeof hb - 1);
	FZ_CHECK(json_object_get(ans, "result") != NULL, "the enrolled worker "
	    "is no longer answered after the fuzzing");
	json_decref(ans);
	return rv;
}
#endif
