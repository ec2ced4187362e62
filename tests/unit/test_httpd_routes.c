/*
 * test_httpd_routes.c: one listener, several routes (runtime/
 * httpd_routes.c): each path reaches its handler with the token's holder,
 * and the Host, Origin and bearer token checks run before any handler.
 * Requests are made over a real loopback socket by an evhttp client on
 * the same loop.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "runtime/httpd_routes.h"
#include "runtime/util.h"

#define TOKEN	"0123456789abcdef-test-token"

struct fx {
	struct event_base	*base;
	struct httpd_routes	*routes;
	int			 port;
	char			 who[32];	/* last handler's caller */
	int			 code;		/* last answer */
	char			 body[256];
	char			 auth_hdr[64];
};

/* A route's handler: answer its name and the caller's role. */
static void
route_cb(struct evhttp_request *req, const struct httpd_client *who,
    void *arg)
{
	struct evbuffer *b = evbuffer_new();

	evbuffer_add_printf(b, "%s %s", (const char *)arg, who == NULL ?
	    "nobody" : who->operator ? "operator" : "client");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* The client's side: keep the answer, end the loop. */
static void
answer_cb(struct evhttp_request *req, void *arg)
{
	struct fx *fx = arg;
	struct evbuffer *in;
	const char *h;
	size_t n;

	fx->code = req != NULL ? evhttp_request_get_response_code(req) : -1;
	fx->body[0] = fx->auth_hdr[0] = '\0';
	if (req != NULL) {
		in = evhttp_request_get_input_buffer(req);
		n = evbuffer_get_length(in);
		if (n >= sizeof fx->body)
			n = sizeof fx->body - 1;
		evbuffer_remove(in, fx->body, n);
		fx->body[n] = '\0';
		if ((h = evhttp_find_header(evhttp_request_get_input_headers(
		    req), "WWW-Authenticate")) != NULL)
			snprintf(fx->auth_hdr, sizeof fx->auth_hdr, "%s", h);
	}
	event_base_loopbreak(fx->base);
}

/* GET path with the given Host and Authorization (NULL: none). */
static void
get(struct fx *fx, const char *path, const char *host, const char *auth)
{
	struct evhttp_connection *c;
	struct evhttp_request *req;
	struct evkeyvalq *h;

	c = evhttp_connection_base_new(fx->base, NULL, "127.0.0.1", fx->port);
	req = evhttp_request_new(answer_cb, fx);
	h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", host);
	if (auth != NULL)
		evhttp_add_header(h, "Authorization", auth);
	assert_int_equal(evhttp_make_request(c, req, EVHTTP_REQ_GET, path), 0);
	event_base_dispatch(fx->base);
	evhttp_connection_free(c);
}

static int
setup(void **state)
{
	struct httpd_routes_opts o;
	struct fx *fx = xcalloc(1, sizeof *fx);
	char err[256], *host;

	memset(&o, 0, sizeof o);
	o.lim.name = "test";
	o.lim.max_conns = 16;
	o.lim.idle_s = o.lim.header_s = o.lim.body_s = o.lim.write_s = 30;
	o.lim.max_input = HTTPD_MAX_INPUT;
	o.max_body = 4096;
	o.not_found = "no such service\n";
	fx->base = event_base_new();
	fx->routes = httpd_routes_new(fx->base, &o);
	httpd_routes_add(fx->routes, "/a", route_cb, "a");
	httpd_routes_add(fx->routes, "/b", route_cb, "b");
	assert_int_equal(httpd_routes_token(fx->routes, "test", TOKEN,
	    "operator", "op", err, sizeof err), 0);
	assert_int_equal(httpd_routes_bind(fx->routes, "127.0.0.1:0", &host,
	    &fx->port, err, sizeof err), 0);
	free(host);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	httpd_routes_free(fx->routes);
	event_base_free(fx->base);
	free(fx);
	return 0;
}

static void
test_httpd_routes_each_path_reaches_its_handler(void **state)
{
	struct fx *fx = *state;

	get(fx, "/a", "127.0.0.1", "Bearer " TOKEN);
	assert_int_equal(fx->code, 200);
	assert_string_equal(fx->body, "a operator");
	get(fx, "/b", "localhost", "Bearer " TOKEN);
	assert_int_equal(fx->code, 200);
	assert_string_equal(fx->body, "b operator");
	get(fx, "/c", "localhost", "Bearer " TOKEN);
	assert_int_equal(fx->code, 404);
	assert_string_equal(fx->body, "no such service\n");
}

static void
test_httpd_routes_refuse_a_missing_or_wrong_token(void **state)
{
	struct fx *fx = *state;

	get(fx, "/a", "127.0.0.1", NULL);
	assert_int_equal(fx->code, 401);
	assert_string_equal(fx->auth_hdr, "Bearer realm=\"weft\"");
	get(fx, "/a", "127.0.0.1", "Bearer " TOKEN "x");
	assert_int_equal(fx->code, 401);
	get(fx, "/c", "127.0.0.1", "Bearer wrong-token-of-length");
	assert_int_equal(fx->code, 401);
}

static void
test_httpd_routes_refuse_a_foreign_host_on_loopback(void **state)
{
	struct fx *fx = *state;

	get(fx, "/a", "evil.example", "Bearer " TOKEN);
	assert_int_equal(fx->code, 403);
	assert_non_null(strstr(fx->body, "Host not allowed"));
}

static void
test_httpd_routes_token_checks_name_where(void **state)
{
	struct fx *fx = *state;
	char err[256];

	assert_int_equal(httpd_routes_token(fx->routes, "f:3", "short",
	    "client", NULL, err, sizeof err), -1);
	assert_string_equal(err, "f:3: a bearer token must be at least 16 "
	    "characters");
	assert_int_equal(httpd_routes_token(fx->routes, "f:4", TOKEN,
	    "client", NULL, err, sizeof err), -1);
	assert_string_equal(err, "f:4: the same token as an earlier line");
	assert_int_equal(httpd_routes_token(fx->routes, "f:5",
	    "another-token-16chars", "admin", NULL, err, sizeof err), -1);
	assert_string_equal(err, "f:5: role 'admin': 'client' or 'operator'");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_httpd_routes_each_path_reaches_its_handler, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_httpd_routes_refuse_a_missing_or_wrong_token, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_httpd_routes_refuse_a_foreign_host_on_loopback, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_httpd_routes_token_checks_name_where, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
