/*
 * mcp_client.c: the MCP client session core: initialize and version
 * negotiation, requests matched to answers by JSON-RPC id, server
 * requests and notifications, cancellation, liveness pings.
 *
 * How messages travel is a transport's job (mcp_client_int.h): stdio
 * (mcp_stdio.c, a child process) or Streamable HTTP (mcp_http.c).  The
 * transport hands each received message to mcpc_recv, which matches
 * answers to requests, answers server requests and hands notifications
 * to the owner.  Requests (tools/list, tools/call and their paging
 * cursors, pings) are opaque here: method and params come from the
 * caller.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sys/queue.h>

#include "runtime/util.h"
#include "protocols/jsonrpc.h"
#include "protocols/mcp_client.h"
#include "protocols/mcp_client_int.h"
#include "runtime/wire.h"

#define MCPC_MAX_REINIT	3	/* re-initialisations without an answer */

/* Protocol revisions this client speaks, newest first; a transport may
   carry only the newer ones (mcpc_transport.min_version). */
static const char *const mcpc_versions[] = {
	"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05", NULL
};

struct mcpc_req {
	int64_t			 id;		/* JSON-RPC id once sent */
	int64_t			 handle;
	char			*method;
	json_t			*params;	/* kept: HTTP may resend */
	mcpc_cb			 cb;
	void			*arg;
	TAILQ_ENTRY(mcpc_req)	 entry;
};
TAILQ_HEAD(mcpc_req_list, mcpc_req);

enum mcpc_state { MCPC_IDLE, MCPC_INIT, MCPC_READY };

struct mcpc {
	struct event_base		*base;
	char				*name;
	const struct mcpc_transport	*ops;
	void				*t;		/* the transport's */
	enum mcpc_state			 state;
	char				 version[32];	/* negotiated */
	unsigned			 inits;
	int				 reinits;
	int64_t				 next_id;
	int64_t				 next_handle;
	int64_t				 init_id;
	struct mcpc_req_list		 waiting;	/* until initialized */
	struct mcpc_req_list		 sent;		/* awaiting answers */
	mcpc_note_cb			 ncb;
	void				*narg;
	long				 ping_ms;	/* 0: no pings */
	struct event			*ping_ev;
	int64_t				 ping_out;	/* ping unanswered */
};

const char *
mcpc_name(const struct mcpc *s)
{
	return s->name;
}

pid_t
mcpc_pid(const struct mcpc *s)
{
	if (s->state == MCPC_IDLE || s->ops->pid == NULL)
		return -1;
	return s->ops->pid(s->t);
}

void
mcpc_reaped(struct mcpc *s, int status)
{
	if (s->ops->reaped != NULL)
		s->ops->reaped(s->t, status);
}

const struct sandbox_report *
mcpc_sandbox(const struct mcpc *s, const struct sandbox_profile **profile,
    unsigned *starts)
{
	if (s->ops->sandbox != NULL)
		return s->ops->sandbox(s->t, profile, starts);
	*starts = 0;
	if (profile != NULL)
		*profile = NULL;
	return NULL;
}

json_t *
mcpc_denied(const struct mcpc *s)
{
	return s->ops->denied != NULL ? s->ops->denied(s->t) : NULL;
}

int
mcpc_explain(const struct mcpc *s, const char *text, char *buf, size_t len)
{
	return s->ops->explain != NULL ? s->ops->explain(s->t, text, buf,
	    len) : 0;
}

const char *
mcpc_version(const struct mcpc *s)
{
	return s->version[0] != '\0' ? s->version : NULL;
}

unsigned
mcpc_inits(const struct mcpc *s)
{
	return s->inits;
}

void
mcpc_set_notify(struct mcpc *s, mcpc_note_cb cb, void *arg)
{
	s->ncb = cb;
	s->narg = arg;
}

int
mcpc_idle(const struct mcpc *s)
{
	return s->state == MCPC_IDLE;
}

int
mcpc_init_pending(const struct mcpc *s, int64_t id)
{
	return s->state == MCPC_INIT && s->init_id == id;
}

/* Fail one request with {kind, message}. */
static void
mcpc_req_fail(struct mcpc_req *r, const char *kind, const char *msg)
{
	json_t *e = json_pack("{s:s, s:s}", "kind", kind, "message", msg);

	r->cb(r->arg, NULL, e);
	json_decref(e);
}

/* Free a request whose callback has run. */
static void
mcpc_req_free(struct mcpc_req *r)
{
	free(r->method);
	json_decref(r->params);
	free(r);
}

/* A sent request by JSON-RPC id, or NULL. */
static struct mcpc_req *
mcpc_find(struct mcpc *s, int64_t id)
{
	struct mcpc_req *r;

	TAILQ_FOREACH(r, &s->sent, entry)
		if (r->id == id)
			return r;
	return NULL;
}

void
mcpc_fail_id(struct mcpc *s, int64_t id, const char *kind, const char *msg)
{
	struct mcpc_req *r;

	if ((r = mcpc_find(s, id)) == NULL)
		return;
	TAILQ_REMOVE(&s->sent, r, entry);
	mcpc_req_fail(r, kind, msg);
	mcpc_req_free(r);
}

int
mcpc_requeue(struct mcpc *s, int64_t id)
{
	struct mcpc_req *r;

	if ((r = mcpc_find(s, id)) == NULL)
		return 0;
	TAILQ_REMOVE(&s->sent, r, entry);
	r->id = 0;
	TAILQ_INSERT_HEAD(&s->waiting, r, entry);
	if (s->state != MCPC_READY)
		return 0;
	if (++s->reinits > MCPC_MAX_REINIT) {
		mcpc_stop(s, FAIL_PROTOCOL, "keeps refusing new sessions "
		    "(HTTP 404)");
		return 0;
	}
	return 1;
}

/* Hand a message to the transport. */
static void
mcpc_emit(struct mcpc *s, json_t *msg, enum mcpc_msg kind, int64_t id)
{
	s->ops->send(s->t, msg, kind, id);
}

/* Send a queued request to the ready server. */
static void
mcpc_send(struct mcpc *s, struct mcpc_req *r)
{
	json_t *msg;

	r->id = ++s->next_id;
	msg = jrpc_request(json_integer(r->id), r->method,
	    r->params != NULL ? json_incref(r->params) : NULL);
	TAILQ_INSERT_TAIL(&s->sent, r, entry);
	mcpc_emit(s, msg, MCPC_MSG_REQ, r->id);
	json_decref(msg);
}

/* Whether the server's revision v is one we speak over this transport. */
static int
mcpc_version_ok(struct mcpc *s, const char *v)
{
	size_t i;

	for (i = 0; mcpc_versions[i] != NULL; i++)
		if (strcmp(v, mcpc_versions[i]) == 0)
			return strcmp(v, s->ops->min_version) >= 0;
	return 0;
}

/* The initialize answer arrived: finish the handshake, send the queue. */
static void
mcpc_initialized(struct mcpc *s, struct jrpc_msg *m)
{
	struct mcpc_req *r;
	const char *v;
	json_t *n;
	char msg[512];

	if (m->kind == JRPC_ERROR_RESPONSE) {
		snprintf(msg, sizeof msg, "initialize failed: %s (%d)",
		    m->error_message, m->error_code);
		mcpc_stop(s, FAIL_PROTOCOL, msg);
		return;
	}
	v = json_string_value(json_object_get(m->result, "protocolVersion"));
	if (v == NULL) {
		mcpc_stop(s, FAIL_PROTOCOL,
		    "initialize answer lacks /result/protocolVersion");
		return;
	}
	if (!mcpc_version_ok(s, v)) {
		snprintf(msg, sizeof msg, "answered initialize with protocol "
		    "revision '%.40s', which this client does not speak%s "
		    "(it speaks 2025-11-25 back to %s)", v, s->ops->over,
		    s->ops->min_version);
		mcpc_stop(s, FAIL_PROTOCOL, msg);
		return;
	}
	snprintf(s->version, sizeof s->version, "%s", v);
	s->inits++;
	n = jrpc_notification("notifications/initialized", NULL);
	s->state = MCPC_READY;
	mcpc_emit(s, n, MCPC_MSG_NOTE, 0);
	json_decref(n);
	if (s->ops->ready != NULL)
		s->ops->ready(s->t);
	while (s->state == MCPC_READY && (r = TAILQ_FIRST(&s->waiting)) !=
	    NULL) {
		TAILQ_REMOVE(&s->waiting, r, entry);
		mcpc_send(s, r);
	}
}

/* Answer a server->client request: ping; we offer no client features. */
static void
mcpc_server_request(struct mcpc *s, struct jrpc_msg *m)
{
	json_t *a;

	if (strcmp(m->method, "ping") == 0)
		a = jrpc_result(json_incref(m->id), json_object());
	else
		a = jrpc_error(json_incref(m->id), JRPC_METHOD_NOT_FOUND,
		    "method not supported by this client", NULL);
	mcpc_emit(s, a, MCPC_MSG_NOTE, 0);
	json_decref(a);
}

/* An answer to request r (removed from the sent list by the caller). */
static void
mcpc_answer(struct mcpc *s, struct mcpc_req *r, struct jrpc_msg *m)
{
	json_t *e;

	s->reinits = 0;
	if (m->kind == JRPC_RESPONSE) {
		r->cb(r->arg, m->result, NULL);
	} else {
		e = json_pack("{s:s, s:o, s:i}", "kind", FAIL_RPC,
		    "message", json_sprintf("MCP server '%s' answered "
		    "error %d: %s", s->name, m->error_code,
		    m->error_message), "code", m->error_code);
		r->cb(r->arg, NULL, e);
		json_decref(e);
	}
	mcpc_req_free(r);
}

int
mcpc_recv(struct mcpc *s, const char *line, size_t len)
{
	struct jrpc_msg m;
	struct mcpc_req *r;
	char err[256], msg[512];
	int code;
	int64_t id;

	if (jrpc_parse(line, len, &m, &code, err, sizeof err) != 0) {
		snprintf(msg, sizeof msg, "sent malformed JSON-RPC: %s", err);
		mcpc_stop(s, FAIL_PROTOCOL, msg);
		return -1;
	}
	switch (m.kind) {
	case JRPC_NOTIFICATION:
		if (s->ncb != NULL)
			s->ncb(s->narg, m.method, m.params);
		break;
	case JRPC_REQUEST:
		mcpc_server_request(s, &m);
		break;
	case JRPC_RESPONSE:
	case JRPC_ERROR_RESPONSE:
		if (!json_is_integer(m.id))
			break;
		id = json_integer_value(m.id);
		if (s->state == MCPC_INIT && id == s->init_id) {
			mcpc_initialized(s, &m);
			if (s->state == MCPC_IDLE) {
				/* initialize failed: the session is gone */
				jrpc_msg_clear(&m);
				return -1;
			}
			break;
		}
		if ((r = mcpc_find(s, id)) == NULL)
			break;
		TAILQ_REMOVE(&s->sent, r, entry);
		mcpc_answer(s, r, &m);
		break;
	}
	jrpc_msg_clear(&m);
	return s->state == MCPC_IDLE ? -1 : 0;
}

void
mcpc_send_init(struct mcpc *s)
{
	json_t *params, *msg;

	s->state = MCPC_INIT;
	s->init_id = ++s->next_id;
	params = json_pack("{s:s, s:{}, s:{s:s, s:s}}", "protocolVersion",
	    MCP_PROTOCOL_VERSION, "capabilities", "clientInfo", "name", "weft",
	    "version", PACKAGE_VERSION);
	msg = jrpc_request(json_integer(s->init_id), "initialize", params);
	mcpc_emit(s, msg, MCPC_MSG_INIT, s->init_id);
	json_decref(msg);
}

void
mcpc_stop(struct mcpc *s, const char *kind, const char *why)
{
	struct mcpc_req_list reqs;
	struct mcpc_req *r;
	char msg[8192];

	if (s->state == MCPC_IDLE)
		return;
	s->ops->stop(s->t, why, msg, sizeof msg);
	s->state = MCPC_IDLE;
	s->version[0] = '\0';
	s->ping_out = 0;
	if (s->ping_ev != NULL)
		event_del(s->ping_ev);
	/* Callbacks may start the next session: fail a detached list. */
	TAILQ_INIT(&reqs);
	TAILQ_CONCAT(&reqs, &s->sent, entry);
	TAILQ_CONCAT(&reqs, &s->waiting, entry);
	while ((r = TAILQ_FIRST(&reqs)) != NULL) {
		TAILQ_REMOVE(&reqs, r, entry);
		mcpc_req_fail(r, kind, msg);
		mcpc_req_free(r);
	}
}

/* A ping answered (or failed with the session). */
static void
mcpc_ping_done(void *arg, json_t *result, json_t *error)
{
	struct mcpc *s = arg;

	s->ping_out = 0;
}

/*
 * Liveness: while calls are in flight, ping the server every ping_ms; a
 * ping still unanswered one interval later means the server is hung, and
 * the session is stopped so its calls fail instead of waiting forever.
 */
static void
mcpc_ping_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mcpc *s = arg;
	char why[128];

	if (s->state != MCPC_READY)
		return;
	if (s->ping_out != 0) {
		snprintf(why, sizeof why, "did not answer a ping within "
		    "%ld ms (hung?)", s->ping_ms);
		mcpc_stop(s, FAIL_TIMEOUT, why);
		return;
	}
	if (TAILQ_EMPTY(&s->sent))
		return;
	s->ping_out = mcpc_request(s, "ping", NULL, mcpc_ping_done, s);
}

/* Arm the ping timer if the session pings and it is not armed. */
static void
mcpc_ping_arm(struct mcpc *s)
{
	struct timeval tv;

	if (s->ping_ev == NULL || event_pending(s->ping_ev, EV_TIMEOUT, NULL))
		return;
	tv.tv_sec = s->ping_ms / 1000;
	tv.tv_usec = (s->ping_ms % 1000) * 1000;
	event_add(s->ping_ev, &tv);
}

void
mcpc_cancel(struct mcpc *s, int64_t handle, const char *kind,
    const char *msg)
{
	struct mcpc_req *r;
	json_t *n;

	TAILQ_FOREACH(r, &s->waiting, entry) {
		if (r->handle == handle) {
			TAILQ_REMOVE(&s->waiting, r, entry);
			goto fail;
		}
	}
	TAILQ_FOREACH(r, &s->sent, entry)
		if (r->handle == handle)
			break;
	if (r == NULL)
		return;
	TAILQ_REMOVE(&s->sent, r, entry);
	n = jrpc_notification("notifications/cancelled", json_pack(
	    "{s:I, s:s}", "requestId", (json_int_t)r->id, "reason", msg));
	mcpc_emit(s, n, MCPC_MSG_NOTE, 0);
	json_decref(n);
	if (s->ops->abandon != NULL)
		s->ops->abandon(s->t, r->id);
fail:
	mcpc_req_fail(r, kind, msg);
	mcpc_req_free(r);
}

struct mcpc *
mcpc_new(struct event_base *base, json_t *spec, struct sandbox_profile *sb,
    char *err, size_t errlen)
{
	json_t *name = json_object_get(spec, "name");
	json_t *ping = json_object_get(spec, "ping");
	json_t *tr = json_object_get(spec, "transport");
	const struct mcpc_transport *ops;
	struct mcpc *s;

	ops = json_object_get(spec, "url") == NULL ? &mcpc_stdio_transport :
	    json_is_string(tr) && strcmp(json_string_value(tr), "sse") == 0 ?
	    &mcpc_sse_transport :
	    &mcpc_http_transport;
	if (!json_is_string(name)) {
		errf(err, errlen, "/server/name: must be a string");
		return NULL;
	}
	if (ping != NULL && (!json_is_number(ping) ||
	    json_number_value(ping) < 0 || json_number_value(ping) > 86400)) {
		errf(err, errlen, "/server/ping: must be seconds, 0 to 86400");
		return NULL;
	}
	if (ops->check(spec, sb, err, errlen) != 0)
		return NULL;
	s = xcalloc(1, sizeof *s);
	s->base = base;
	s->name = xstrdup(json_string_value(name));
	s->ops = ops;
	s->t = ops->init(s, base, spec, sb);
	TAILQ_INIT(&s->waiting);
	TAILQ_INIT(&s->sent);
	s->ping_ms = ping != NULL ? (long)(json_number_value(ping) * 1000) : 0;
	if (s->ping_ms > 0) {
		s->ping_ev = event_new(base, -1, EV_PERSIST, mcpc_ping_cb, s);
		mcpc_ping_arm(s);
	}
	return s;
}

int64_t
mcpc_request(struct mcpc *s, const char *method, json_t *params, mcpc_cb cb,
    void *arg)
{
	struct mcpc_req *r = xcalloc(1, sizeof *r);
	char err[512], msg[700];

	r->method = xstrdup(method);
	r->params = params;
	r->cb = cb;
	r->arg = arg;
	r->handle = ++s->next_handle;
	if (s->state == MCPC_IDLE) {
		s->reinits = 0;
		if (s->ops->start(s->t, err, sizeof err) != 0) {
			snprintf(msg, sizeof msg, "MCP server '%s': %s",
			    s->name, err);
			mcpc_req_fail(r, FAIL_SERVER_START, msg);
			mcpc_req_free(r);
			return 0;
		}
		mcpc_send_init(s);
		/* A restarted server is pinged again (mcpc_stop
		   disarmed the timer). */
		mcpc_ping_arm(s);
	}
	if (s->state == MCPC_READY)
		mcpc_send(s, r);
	else
		TAILQ_INSERT_TAIL(&s->waiting, r, entry);
	return r->handle;
}

/*
 * Tell the ready server the calls in flight are abandoned (best effort):
 * queue the notices.
 */
static void
mcpc_cancel_all(struct mcpc *s)
{
	struct mcpc_req *r;
	json_t *n;

	TAILQ_FOREACH(r, &s->sent, entry) {
		if (r->handle == s->ping_out)
			continue;
		n = jrpc_notification("notifications/cancelled", json_pack(
		    "{s:I, s:s}", "requestId", (json_int_t)r->id, "reason",
		    "the client is shutting down"));
		mcpc_emit(s, n, MCPC_MSG_NOTE, 0);
		json_decref(n);
	}
}

void
mcpc_free(struct mcpc *s)
{
	if (s == NULL)
		return;
	if (s->state != MCPC_IDLE) {
		if (s->ops->shutdown != NULL) {
			if (s->state == MCPC_READY)
				mcpc_cancel_all(s);
			s->ops->shutdown(s->t, s->state == MCPC_READY);
		}
		mcpc_stop(s, "cancelled", "was shut down");
	}
	if (s->ping_ev != NULL)
		event_free(s->ping_ev);
	s->ops->fini(s->t);
	free(s->name);
	free(s);
}
