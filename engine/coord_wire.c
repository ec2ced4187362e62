/*
 * coord_wire.c: the coordinator's end of the worker wire (docs/PROTOCOL.md):
 * one reply function per form with one ownership rule, the typed checks of
 * every request, hello with its enrolment proof, poll, heartbeat, complete
 * and fail; and the listener and enrolment files of remote workers.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/tls/tls.h>
#include <openssl/crypto.h>

#include "engine/captoken.h"
#include "engine/coord.h"
#include "runtime/fault.h"
#include "engine/grant.h"
#include "engine/record.h"
#include "engine/replay.h"
#include "engine/store.h"
#include "runtime/util.h"
#include "protocols/jsonrpc.h"
#include "runtime/bridge.h"
#include "runtime/chan.h"
#include "runtime/jread.h"
#include "runtime/proc.h"
#include "runtime/queue.h"
#include "runtime/supervise.h"
#include "runtime/wire.h"

#include "engine/coord_int.h"

static void	coord_peer(uint32_t pipe, char *buf, size_t len);

/*
 * The answers to a request.  One ownership rule for all three: the answer
 * consumes r->id, the reference the context took on the request's id (NULL
 * when the request had none), and leaves r->id NULL.
 */

/* Send the answer m on r; the send callback re-arms the context. */
static void
coord_send(struct rctx *r, nng_msg *m)
{
	chan_send(&r->ch, m);
}

/* Send the JSON-RPC object msg (stolen). */
static void
coord_send_json(struct rctx *r, json_t *msg)
{
	nng_msg *m;
	char *buf;
	size_t len;

	buf = jrpc_dump(msg, &len, 0);
	json_decref(msg);
	m = chan_msg(buf, len);
	free(buf);
	coord_send(r, m);
}

/* Answer with result (stolen). */
void
coord_reply(struct rctx *r, json_t *result)
{
	json_t *msg = jrpc_result(r->id, result);

	r->id = NULL;
	coord_send_json(r, msg);
}

/* Answer with a result that is the JSON text res. */
void
coord_reply_text(struct rctx *r, const char *res, size_t reslen)
{
	static const char pre[] = "{\"jsonrpc\":\"2.0\",\"id\":";
	static const char mid[] = ",\"result\":";
	nng_msg *m;
	char *id;

	id = json_dumps(r->id != NULL ? r->id : json_null(),
	    JSON_ENCODE_ANY | JSON_COMPACT);
	json_decref(r->id);
	r->id = NULL;
	if (nng_msg_alloc(&m, 0) != 0 ||
	    nng_msg_append(m, pre, sizeof pre - 1) != 0 ||
	    nng_msg_append(m, id, strlen(id)) != 0 ||
	    nng_msg_append(m, mid, sizeof mid - 1) != 0 ||
	    nng_msg_append(m, res, reslen) != 0 ||
	    nng_msg_append(m, "}", 1) != 0)
		fatalx(1, "out of memory");
	free(id);
	coord_send(r, m);
}

/* Answer with a JSON-RPC error. */
static void
coord_reply_error(struct rctx *r, int code, const char *text)
{
	json_t *msg = jrpc_error(r->id, code, text, NULL);

	r->id = NULL;
	coord_send_json(r, msg);
}

/* A worker's id from params, checked against the table. */
static int
coord_worker_of(struct coord *c, json_t *params)
{
	json_t *w = json_object_get(params, "worker");
	json_int_t id;

	if (!json_is_integer(w))
		return -1;
	id = json_integer_value(w);
	if (id < 0 || id >= c->nworkers)
		return -1;
	return (int)id;
}

/*
 * An a2a.send's remote task, once its worker learns the id (item's
 * "remote": {task, protocol}): kept in the tool.progress payload p, where
 * a resume finds it (replay_remote) and asks for the task rather than
 * sending the message again (docs/a2a.md, Durability).  Returns 1 when
 * it is there, else 0.
 */
static int
coord_progress_remote(struct qtask *t, json_t *item, json_t *p)
{
	json_t *r = json_object_get(item, "remote");
	json_t *id = json_object_get(r, "task");
	const char *pv = json_string_value(json_object_get(r, "protocol"));

	if (strcmp(t->kind, TASK_A2A_SEND) != 0 || !json_is_string(id) ||
	    json_string_length(id) == 0 || json_string_length(id) > 256 ||
	    pv == NULL || (strcmp(pv, "1.0") != 0 && strcmp(pv, "0.3") != 0))
		return 0;
	json_object_set_new(p, "remote", json_pack("{s:O, s:s}", "task", id,
	    "protocol", pv));
	return 1;
}

/*
 * MCP progress notifications (and A2A updates) a worker forwarded for
 * task t (in a heartbeat or with the outcome): one tool.progress event
 * each, at most 64 per message, fields checked (a worker is a trust
 * boundary).  Returns 1 when one names a remote task, else 0.
 */
static int
coord_progress(struct qtask *t, json_t *items)
{
	json_t *it, *p, *v;
	size_t i;
	int remote = 0;

	json_array_foreach(items, i, it) {
		if (i >= 64)
			break;
		if (!json_is_number(json_object_get(it, "progress")))
			continue;
		p = json_pack("{s:I, s:O}", "task", (json_int_t)t->id,
		    "progress", json_object_get(it, "progress"));
		if (json_is_number(v = json_object_get(it, "total")))
			json_object_set(p, "total", v);
		if (json_is_string(v = json_object_get(it, "message")) &&
		    json_string_length(v) <= 512)
			json_object_set(p, "message", v);
		remote |= coord_progress_remote(t, it, p);
		crun_event(t->owner, "tool.progress", t->span, 0, t->path,
		    t->attempt, p, 0, 0);
		json_decref(p);
	}
	return remote;
}

/* heartbeat: progress of tasks the worker still holds. */
static void
coord_on_progress(struct coord *c, int wid, json_t *list)
{
	json_t *it;
	struct qtask *t;
	json_int_t id;
	size_t i;

	json_array_foreach(list, i, it) {
		id = json_integer_value(json_object_get(it, "id"));
		t = coord_task_of(c, id);
		if (t != NULL && t->state == QT_LEASED && t->worker == wid &&
		    t->attempt == json_integer_value(json_object_get(it,
		    "attempt")) && coord_progress(t, json_object_get(it,
		    "progress")))
			coord_kick(c);	/* a remote task id: committed now,
					   not with the next other event */
	}
}

/*
 * A late or duplicate outcome (a presumed-dead worker's, for an attempt
 * already retried or ended): ignored, and recorded as task.late with
 * what the coordinator holds for the task now.
 */
static void
coord_late(struct coord *c, struct qtask *t, json_int_t id, int attempt,
    int wid, int failed)
{
	struct crun *run;
	json_t *p;

	p = json_pack("{s:I, s:i, s:i, s:s, s:s}", "task", t != NULL ?
	    (json_int_t)t->id : id, "attempt", attempt, "worker", wid,
	    "outcome", failed ? "fail" : "complete", "now", t == NULL ?
	    "ended" : t->state == QT_LEASED ? "leased" : "queued");
	if (t != NULL) {
		json_object_set_new(p, "current_attempt", json_integer(
		    t->attempt));
		crun_event(t->owner, "task.late", t->span, 0, t->path, attempt,
		    p, 0, 0);
	} else {
		/* Its run is not known any more: every open run is told. */
		json_object_set_new(p, "wire_id", json_integer(id));
		TAILQ_FOREACH(run, &c->runs, entry)
			if (!run->told)
				crun_event(run, "task.late", 0, 0, "",
				    attempt, p, 0, 0);
	}
	json_decref(p);
}

/* complete: results of leased tasks. */
static void
coord_on_complete(struct coord *c, int wid, json_t *items, int failed)
{
	json_t *it, *val;
	struct qtask *t;
	json_int_t id;
	size_t i;
	int attempt;

	json_array_foreach(items, i, it) {
		id = json_integer_value(json_object_get(it, "id"));
		attempt = (int)json_integer_value(json_object_get(it,
		    "attempt"));
		val = json_object_get(it, failed ? "error" : "result");
		t = coord_task_of(c, id);
		if (t == NULL || t->state != QT_LEASED ||
		    t->attempt != attempt || t->worker != wid || val == NULL) {
			coord_late(c, t, id, attempt, wid, failed);
			continue;
		}
		fault_crash("coord.after_result");
		coord_progress(t, json_object_get(it, "progress"));
		if (failed)
			coord_task_failed(t, val);
		else
			coord_task_end(t->owner, t, val, NULL);
	}
}

/* heartbeat: extend the leases a worker still holds. */
static json_t *
coord_on_heartbeat(struct coord *c, int wid, json_t *ids)
{
	json_t *it, *list;
	struct qtask *t;
	json_int_t id;
	size_t i;

	json_array_foreach(ids, i, it) {
		id = json_integer_value(it);
		t = coord_task_of(c, id);
		if (t != NULL && t->state == QT_LEASED && t->worker == wid)
			t->lease_until = now_mono() + t->pol.lease_s;
	}
	list = c->workers[wid].cancel;
	c->workers[wid].cancel = NULL;
	return json_pack("{s:o}", "cancel", list != NULL ? list :
	    json_array());
}

/* Record how worker wid confined itself (its hello's report). */
static void
coord_worker_sandbox(struct coord *c, int wid, uint32_t pipe,
    json_t *report)
{
	struct worker *w = &c->workers[wid];
	char peer[80];
	json_t *p, *l;
	size_t i;

	if (!json_is_object(report))
		return;
	p = json_pack("{s:i, s:I, s:O}", "worker", wid, "pid",
	    (json_int_t)sup_pid(c->sup, wid), "sandbox", report);
	if (sup_is_remote(c->sup, wid)) {
		coord_peer(pipe, peer, sizeof peer);
		json_object_set_new(p, "remote", json_string(peer));
		l = json_array();
		for (i = 0; i < w->nlabels; i++)
			json_array_append_new(l, json_string(w->labels[i]));
		json_object_set_new(p, "labels", l);
		if (c->opts.verbose)
			fprintf(stderr, "weft: remote worker %d joined from "
			    "%s\n", wid, peer);
	}
	coord_event_all(c, "worker.sandbox", p);
	json_decref(p);
}

/*
 * The labels of a hello (/params/labels: at most COORD_MAX_LABELS
 * strings of letters, digits, '_', '-', '.'), as a new vector in *out
 * (*n set); -1 with err.
 */
static int
coord_hello_labels(json_t *params, char ***out, size_t *n, char *err,
    size_t errlen)
{
	json_t *list = json_object_get(params, "labels"), *it;
	const char *l;
	size_t i;

	*out = NULL;
	*n = 0;
	if (list == NULL)
		return 0;
	if (!json_is_array(list) || json_array_size(list) >
	    COORD_MAX_LABELS) {
		errf(err, errlen, "/params/labels: must be an array of at "
		    "most %d labels", COORD_MAX_LABELS);
		return -1;
	}
	json_array_foreach(list, i, it) {
		l = json_string_value(it);
		if (l == NULL || *l == '\0' || strlen(l) > COORD_LABEL_MAX ||
		    strspn(l, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
		    "TUVWXYZ0123456789_-.") != strlen(l)) {
			errf(err, errlen, "/params/labels/%zu: a label is 1 to "
			    "%d letters, digits, '_', '-' or '.'", i,
			    COORD_LABEL_MAX);
			return -1;
		}
	}
	*out = xcalloc(json_array_size(list) + 1, sizeof **out);
	json_array_foreach(list, i, it)
		(*out)[(*n)++] = xstrdup(json_string_value(it));
	return 0;
}

/* Whether pipe came through the remote workers' listener. */
static int
coord_pipe_remote(struct coord *c, uint32_t pipe)
{
	nng_pipe p;

	p.id = pipe;
	return c->rl_open && nng_listener_id(nng_pipe_listener(p)) ==
	    nng_listener_id(c->rl);
}

/* Who is at the other end of pipe: "pid N" (ipc) or "HOST:PORT" (tcp). */
static void
coord_peer(uint32_t pipe, char *buf, size_t len)
{
	nng_sockaddr sa;
	nng_pipe p;
	char host[64];
	int pid;

	if ((pid = sup_peer_pid(pipe)) != 0) {
		snprintf(buf, len, "pid %d", pid);
		return;
	}
	p.id = pipe;
	if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) == 0 &&
	    sa.s_family == NNG_AF_INET &&
	    inet_ntop(AF_INET, &sa.s_in.sa_addr, host, sizeof host) != NULL)
		snprintf(buf, len, "%s:%u", host, ntohs(sa.s_in.sa_port));
	else if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) == 0 &&
	    sa.s_family == NNG_AF_INET6 &&
	    inet_ntop(AF_INET6, sa.s_in6.sa_addr, host, sizeof host) != NULL)
		snprintf(buf, len, "[%s]:%u", host, ntohs(sa.s_in6.sa_port));
	else
		snprintf(buf, len, "pipe %u", pipe);
}

/*
 * Refuse a request from a peer that is not the enrolled worker it claims
 * to be, and record it (worker.refused): the first COORD_MAX_REFUSALS of
 * a coordinator, so that a peer that keeps trying cannot fill the store.
 */
static void
coord_refuse(struct coord *c, struct rctx *r, int wid, uint32_t pipe,
    const char *method, const char *why)
{
	char msg[256], peer[80];
	json_t *p;
	int pid = sup_peer_pid(pipe);

	snprintf(msg, sizeof msg, "%s refused: %s", method, why);
	coord_peer(pipe, peer, sizeof peer);
	if (c->nrefused++ < COORD_MAX_REFUSALS) {
		p = json_pack("{s:i, s:i, s:s, s:s, s:i, s:s}", "worker", wid,
		    "pipe", (int)pipe, "method", method, "reason", why,
		    "peer_pid", pid, "peer", peer);
		coord_event_all(c, "worker.refused", p);
		json_decref(p);
		coord_kick(c);
	}
	if (c->nrefused == 1 || c->opts.verbose)
		fprintf(stderr, "weft: a connection (%s) claiming worker "
		    "%d was refused: %s\n", peer, wid, why);
	coord_reply_error(r, WIRE_E_REFUSED, msg);
}

/*
 * hello: a worker proves who it is with the secret of its enrolment
 * (docs/security.md, "Workers prove who they are"), and is bound to the
 * pipe it said it on; every later request must come on that pipe.
 */
static void
coord_on_hello(struct coord *c, struct rctx *r, int wid, uint32_t pipe,
    json_t *params)
{
	json_t *v = json_object_get(params, "version");
	const char *secret;
	char err[256], **labels;
	size_t nlabels;
	int remote;

	if (!json_is_integer(v) || json_integer_value(v) != WIRE_VERSION) {
		snprintf(err, sizeof err, "/params/version: protocol version "
		    "mismatch: worker speaks %lld, coordinator %d",
		    (long long)json_integer_value(v), WIRE_VERSION);
		coord_reply_error(r, JRPC_INVALID_PARAMS, err);
		return;
	}
	if (coord_hello_labels(params, &labels, &nlabels, err,
	    sizeof err) != 0) {
		coord_reply_error(r, JRPC_INVALID_PARAMS, err);
		return;
	}
	remote = coord_pipe_remote(c, pipe);
	secret = json_string_value(json_object_get(params, "secret"));
	if (remote != sup_is_remote(c->sup, wid)) {
		snprintf(err, sizeof err, remote ? "worker %d is a local "
		    "worker: it cannot join over the network" : "worker %d is "
		    "a remote worker: it joins over the network listener",
		    wid);
		coord_refuse(c, r, wid, pipe, WIRE_HELLO, err);
		strv_free(labels);
		return;
	}
	if (sup_hello(c->sup, wid, secret, pipe, err, sizeof err) != 0) {
		coord_refuse(c, r, wid, pipe, WIRE_HELLO, err);
		strv_free(labels);
		return;
	}
	coord_unlabel(&c->workers[wid]);
	c->workers[wid].labels = labels;
	c->workers[wid].nlabels = nlabels;
	coord_worker_sandbox(c, wid, pipe, json_object_get(params,
	    "sandbox"));
	coord_kick(c);	/* a label may be what queued tasks wait for */
	coord_reply(r, json_pack("{s:i, s:i, s:i, s:o}", "version",
	    WIRE_VERSION, "heartbeat_ms", (int)(c->opts.heartbeat_s * 1000),
	    "lease_ms", (int)(c->opts.lease_s * 1000), "keys",
	    captoken_keys_public(c->keys)));
}

/* poll: park the request until there is work (coord_dispatch). */
static void
coord_on_poll(struct coord *c, struct rctx *r, int wid, json_t *params)
{
	if (c->stopping) {
		coord_reply(r, json_pack("{s:b, s:[]}", "shutdown", 1,
		    "tasks"));
		return;
	}
	r->worker = wid;
	r->slots = (int)json_integer_value(json_object_get(params, "slots"));
	if (r->slots < 1)
		r->slots = 1;
	TAILQ_INSERT_TAIL(&c->parked, r, entry);
	coord_kick(c);
}

static void
coord_on_heartbeat_req(struct coord *c, struct rctx *r, int wid,
    json_t *params)
{
	coord_on_progress(c, wid, json_object_get(params, "progress"));
	coord_reply(r, coord_on_heartbeat(c, wid, json_object_get(params,
	    "tasks")));
}

static void
coord_on_complete_req(struct coord *c, struct rctx *r, int wid,
    json_t *params)
{
	coord_on_complete(c, wid, json_object_get(params, "results"), 0);
	coord_reply(r, json_object());
}

static void
coord_on_fail_req(struct coord *c, struct rctx *r, int wid, json_t *params)
{
	coord_on_complete(c, wid, json_object_get(params, "failures"), 1);
	coord_reply(r, json_object());
}

/*
 * Checks of a request's params before any of it is acted on: a field
 * missing or of the wrong type refuses the whole request, with its JSON
 * pointer, instead of reading as 0 (runtime/jread.h).
 */

/* A list of per-task items under key: {id, attempt} and, by what, a
   result, an error {kind, message} or neither; progress optional. */
static int
coord_check_items(json_t *params, const char *key, const char *what,
    char *err, size_t errlen)
{
	json_t *list, *it, *v;
	const char *str;
	json_int_t n;
	char at[96];
	size_t i;

	if (jr_array(params, key, "/params", 1, COORD_MAX_ITEMS, &list, err,
	    errlen) != 0)
		return -1;
	json_array_foreach(list, i, it) {
		snprintf(at, sizeof at, "/params/%s/%zu", key, i);
		if (!json_is_object(it)) {
			errf(err, errlen, "%s: must be an object", at);
			return -1;
		}
		if (jr_int(it, "id", at, 1, 1, INT64_MAX, &n, err,
		    errlen) != 0 || jr_int(it, "attempt", at, 1, 1, INT_MAX,
		    &n, err, errlen) != 0 || jr_array(it, "progress", at, 0,
		    COORD_MAX_ITEMS, &v, err, errlen) != 0)
			return -1;
		if (strcmp(what, "result") == 0 && jr_any(it, "result", at, 1,
		    &v, err, errlen) != 0)
			return -1;
		if (strcmp(what, "error") == 0) {
			if (jr_object(it, "error", at, 1, &v, err,
			    errlen) != 0)
				return -1;
			snprintf(at, sizeof at, "/params/%s/%zu/error", key,
			    i);
			if (jr_str(v, "kind", at, 1, &str, err, errlen) != 0 ||
			    jr_str(v, "message", at, 1, &str, err,
			    errlen) != 0)
				return -1;
		}
	}
	return 0;
}

static int
coord_check_poll(json_t *params, char *err, size_t errlen)
{
	json_int_t n;

	return jr_int(params, "slots", "/params", 0, 0, 1 << 20, &n, err,
	    errlen);
}

static int
coord_check_heartbeat(json_t *params, char *err, size_t errlen)
{
	json_t *list, *it;
	size_t i;

	if (jr_array(params, "tasks", "/params", 1, COORD_MAX_ITEMS, &list,
	    err, errlen) != 0)
		return -1;
	json_array_foreach(list, i, it)
		if (!json_is_integer(it)) {
			errf(err, errlen, "/params/tasks/%zu: must be an "
			    "integer", i);
			return -1;
		}
	if (json_object_get(params, "progress") == NULL)
		return 0;
	return coord_check_items(params, "progress", "progress", err, errlen);
}

static int
coord_check_complete(json_t *params, char *err, size_t errlen)
{
	return coord_check_items(params, "results", "result", err, errlen);
}

static int
coord_check_fail(json_t *params, char *err, size_t errlen)
{
	return coord_check_items(params, "failures", "error", err, errlen);
}

/* The methods of an enrolled worker (hello is apart: it enrols). */
static const struct coord_method {
	const char	*name;
	int		(*check)(json_t *, char *, size_t);
	void		(*fn)(struct coord *, struct rctx *, int, json_t *);
} coord_methods[] = {
	{ WIRE_POLL, coord_check_poll, coord_on_poll },
	{ WIRE_HEARTBEAT, coord_check_heartbeat, coord_on_heartbeat_req },
	{ WIRE_COMPLETE, coord_check_complete, coord_on_complete_req },
	{ WIRE_FAIL, coord_check_fail, coord_on_fail_req },
};

/*
 * Loop thread: handle one request from a peer.  Every path answers once
 * (coord_reply*, which consume r->id) or parks the request (poll).
 */
void
coord_rctx_loop_cb(struct chan *ch, nng_msg *msg)
{
	struct rctx *r = ch->arg;
	struct coord *c = r->c;
	const struct coord_method *cm = NULL;
	struct jrpc_msg m;
	char err[256];
	uint32_t pipe;
	int code, wid;
	size_t i;

	pipe = (uint32_t)nng_pipe_id(nng_msg_get_pipe(msg));
	if (jrpc_parse(nng_msg_body(msg), nng_msg_len(msg), &m, &code, err,
	    sizeof err) != 0) {
		nng_msg_free(msg);
		coord_reply_error(r, code, err);
		return;
	}
	nng_msg_free(msg);
	if (m.kind != JRPC_REQUEST) {
		coord_reply_error(r, JRPC_INVALID_REQUEST,
		    "expected a request");
		jrpc_msg_clear(&m);
		return;
	}
	r->id = json_incref(m.id);
	for (i = 0; i < sizeof coord_methods / sizeof coord_methods[0]; i++)
		if (strcmp(m.method, coord_methods[i].name) == 0)
			cm = &coord_methods[i];
	if (cm == NULL && strcmp(m.method, WIRE_HELLO) != 0) {
		snprintf(err, sizeof err, "unknown method '%.64s'", m.method);
		coord_reply_error(r, JRPC_METHOD_NOT_FOUND, err);
	} else if ((wid = coord_worker_of(c, m.params)) < 0) {
		coord_reply_error(r, JRPC_INVALID_PARAMS,
		    "/params/worker: unknown worker id");
	} else if (cm == NULL) {
		coord_on_hello(c, r, wid, pipe, m.params);
	} else if (!sup_bound(c->sup, wid, pipe)) {
		coord_refuse(c, r, wid, pipe, m.method, "this connection has "
		    "not enrolled as that worker (hello)");
	} else if (cm->check(m.params, err, sizeof err) != 0) {
		if (c->opts.verbose)
			fprintf(stderr, "weft: worker %d: %s refused: %s\n",
			    wid, m.method, err);
		coord_reply_error(r, JRPC_INVALID_PARAMS, err);
	} else {
		cm->fn(c, r, wid, m.params);
	}
	jrpc_msg_clear(&m);
}

/*
 * Listen for remote workers on o->listen: tls+tcp:// with the certificate
 * and key of o->tls_cert and o->tls_key, or tcp:// on loopback.  c->rurl
 * gets the address with the port bound.
 */
int
coord_listen_remote(struct coord *c, const struct coord_opts *o, char *err,
    size_t errlen)
{
	char host[256], why[256], *cert = NULL, *key = NULL;
	size_t klen = 0;
	int tls, rv, port = 0;

	if (sup_url_check(o->listen, &tls, host, sizeof host, why,
	    sizeof why) != 0) {
		errf(err, errlen, "--workers-listen %s", why);
		return -1;
	}
	if (o->remote > 0 && o->enroll_dir == NULL) {
		errf(err, errlen, "--remote-workers needs --enroll-dir DIR "
		    "(where their enrolment files are written)");
		return -1;
	}
	if (tls && (o->tls_cert == NULL || o->tls_key == NULL)) {
		errf(err, errlen, "--workers-listen %s needs --tls-cert FILE "
		    "and --tls-key FILE (the coordinator's certificate and its "
		    "private key, PEM)", o->listen);
		return -1;
	}
	if ((rv = nng_listener_create(&c->rl, c->sock, o->listen)) != 0) {
		errf(err, errlen, "--workers-listen %s: %s", o->listen,
		    nng_strerror(rv));
		return -1;
	}
	c->rl_open = 1;
	if (tls) {
		if ((cert = read_file(o->tls_cert, NULL)) == NULL ||
		    (key = read_file(o->tls_key, &klen)) == NULL) {
			errf(err, errlen, "cannot read %s: %s", cert == NULL ?
			    o->tls_cert : o->tls_key, strerror(errno));
			free(cert);
			return -1;
		}
		if ((rv = nng_tls_config_alloc(&c->tls,
		    NNG_TLS_MODE_SERVER)) == 0 &&
		    (rv = nng_tls_config_auth_mode(c->tls,
		    NNG_TLS_AUTH_MODE_NONE)) == 0 &&
		    (rv = nng_tls_config_own_cert(c->tls, cert, key,
		    NULL)) != 0)
			errf(err, errlen, "--tls-cert %s, --tls-key %s: not a "
			    "PEM certificate and its private key (%s)",
			    o->tls_cert, o->tls_key, nng_strerror(rv));
		else if (rv == 0 && (rv = nng_listener_set_ptr(c->rl,
		    NNG_OPT_TLS_CONFIG, c->tls)) != 0)
			errf(err, errlen, "nng: %s", nng_strerror(rv));
		else if (rv != 0)
			errf(err, errlen, "nng tls: %s", nng_strerror(rv));
		free(cert);
		OPENSSL_clear_free(key, klen);
		if (rv != 0)
			return -1;
	}
	if ((rv = nng_listener_start(c->rl, 0)) != 0) {
		errf(err, errlen, "cannot listen on %s: %s", o->listen,
		    nng_strerror(rv));
		return -1;
	}
	nng_listener_get_int(c->rl, NNG_OPT_TCP_BOUND_PORT, &port);
	snprintf(c->rurl, sizeof c->rurl, "%s://%s%s%s:%d", tls ? "tls+tcp" :
	    "tcp", strchr(host, ':') ? "[" : "", host, strchr(host, ':') ?
	    "]" : "", port);
	return 0;
}

/* Write len bytes of text to path, a new 0600 file (replacing one). */
static int
coord_write_secret_file(const char *path, const char *text, size_t len,
    char *err, size_t errlen)
{
	int fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) == -1 || fchmod(fd, 0600) == -1 ||
	    write(fd, text, len) != (ssize_t)len || close(fd) != 0) {
		errf(err, errlen, "cannot write %s: %s", path,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	return 0;
}

/*
 * Enrol the remote slots, ids first .. first+n-1 (docs/PROTOCOL.md,
 * "Remote enrolment").  DIR/enrolled keeps the SHA-256 of each slot's
 * secret, so a slot keeps its secret across restarts of the coordinator;
 * a slot not listed there gets a new secret, written with the address and
 * its id to DIR/worker-ID.enroll (0600) for its worker to present.
 */
int
coord_enrol_remote(struct coord *c, const char *dir, int first, int n,
    char *err, size_t errlen)
{
	char path[PATH_MAX], tmp[PATH_MAX], secret[65], line[160];
	char (*hash)[65] = xcalloc((size_t)n, sizeof *hash);
	struct evbuffer *buf;
	char *text;
	FILE *f;
	int i, wid, made = 0, rv = -1;

	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		errf(err, errlen, "--enroll-dir %s: %s", dir, strerror(errno));
		goto out;
	}
	snprintf(path, sizeof path, "%s/enrolled", dir);
	if ((f = fopen(path, "r")) != NULL) {
		while (fgets(line, sizeof line, f) != NULL)
			if (sscanf(line, "%d %64[0-9a-f]", &wid, secret) == 2 &&
			    wid >= first && wid < first + n &&
			    strlen(secret) == 64)
				memcpy(hash[wid - first], secret, 65);
		fclose(f);
	}
	for (i = 0; i < n; i++) {
		if (hash[i][0] == '\0') {
			random_hex(secret, 32);
			sha256_hex(secret, 64, hash[i]);
			text = xasprintf("{\"version\":%d,\"url\":\"%s\","
			    "\"worker\":%d,\"secret\":\"%s\"}\n",
			    WIRE_VERSION, c->rurl, first + i, secret);
			OPENSSL_cleanse(secret, sizeof secret);
			snprintf(tmp, sizeof tmp, "%s/worker-%d.enroll", dir,
			    first + i);
			made++;
			if (coord_write_secret_file(tmp, text, strlen(text),
			    err, errlen) != 0) {
				OPENSSL_clear_free(text, strlen(text));
				goto out;
			}
			OPENSSL_clear_free(text, strlen(text));
		}
		sup_remote(c->sup, first + i, hash[i]);
	}
	if (made > 0) {
		buf = evbuffer_new();
		for (i = 0; i < n; i++)
			evbuffer_add_printf(buf, "%d %s\n", first + i, hash[i]);
		snprintf(tmp, sizeof tmp, "%s/enrolled.tmp", dir);
		i = coord_write_secret_file(tmp, (const char *)
		    evbuffer_pullup(buf, -1), evbuffer_get_length(buf), err,
		    errlen);
		evbuffer_free(buf);
		if (i != 0)
			goto out;
		if (rename(tmp, path) == -1) {
			errf(err, errlen, "cannot write %s: %s", path,
			    strerror(errno));
			goto out;
		}
	}
	rv = 0;
out:
	free(hash);
	return rv;
}
