/*
 * worker.c: `weft worker`, the process that executes tasks.
 *
 * A worker dials the coordinator with an nng REQ socket and keeps three
 * request contexts: one long-polls for tasks, one sends heartbeats for the
 * tasks it holds, one sends their outcomes (batched: every outcome ready
 * when the context is free goes in one message).  Tasks run on the
 * worker's own libevent loop; MCP server sessions live across tasks, so a
 * server is started once per worker and many calls to it are in flight at
 * the same time.
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <openssl/crypto.h>

#include "engine/captoken.h"
#include "runtime/fault.h"
#include "runtime/util.h"
#include "protocols/jsonrpc.h"
#include "protocols/mcp_client.h"
#include "runtime/bridge.h"
#include "runtime/chan.h"
#include "runtime/sandbox.h"
#include "runtime/supervise.h"
#include "runtime/http.h"
#include "runtime/wire.h"
#include "workers/worker.h"
#include "workers/worker_int.h"

/* A remote worker's labels (--label), sent at hello; NULL: none. */
static json_t *worker_labels;
/* A remote worker lost its connection to the coordinator. */
static int worker_lost;

/* Loop thread: an answer (or a transport error) for q. */
static void
worker_wreq_done(struct chan *ch, nng_msg *reply)
{
	struct wreq *q = ch->arg;
	struct jrpc_msg m;
	struct worker *w = q->w;
	char err[256];
	int code;
	json_t *e;

	q->busy = 0;
	if (reply == NULL) {
		/* The coordinator is gone: nothing left to work for. */
		if (!w->stopping && w->verbose)
			fprintf(stderr, "weft worker %d: lost the coordinator\n",
			    w->id);
		w->stopping = 1;
		event_base_loopbreak(w->base);
		return;
	}
	if (jrpc_parse(nng_msg_body(reply), nng_msg_len(reply), &m, &code,
	    err, sizeof err) != 0) {
		nng_msg_free(reply);
		fprintf(stderr, "weft worker %d: bad answer from coordinator: "
		    "%s\n", w->id, err);
		w->stopping = 1;
		event_base_loopbreak(w->base);
		return;
	}
	nng_msg_free(reply);
	if (m.kind == JRPC_ERROR_RESPONSE) {
		e = m.error;
		q->done(w, NULL, e);
	} else
		q->done(w, m.result, NULL);
	jrpc_msg_clear(&m);
}

/* Send method(params) on q; params stolen. */
static int
worker_send(struct worker *w, struct wreq *q, const char *method,
    json_t *params)
{
	static int64_t next_id;
	json_t *msg = jrpc_request(json_integer(++next_id), method, params);
	nng_msg *m;
	char *buf;
	size_t len;

	buf = jrpc_dump(msg, &len, 0);
	json_decref(msg);
	if (len > WIRE_MAX_MSG) {
		free(buf);
		return -1;
	}
	m = chan_msg(buf, len);
	free(buf);
	q->busy = 1;
	chan_send(&q->ch, m);
	return 0;
}

/*
 * Read the enrolment the coordinator wrote to descriptor fd (coord_enrol):
 * {version, url, worker, secret, scratch}.  Sets *scratch (owned by the
 * returned object, which the caller frees); -1 with a message on stderr.
 */
static json_t *
worker_enrolment(struct worker *w, int fd, const char *from,
    const char **scratch)
{
	char buf[8192];
	json_error_t je;
	const char *url, *secret;
	json_t *e;
	size_t off = 0;
	ssize_t n;

	while (off < sizeof buf - 1 &&
	    (n = read(fd, buf + off, sizeof buf - 1 - off)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "weft worker: %s: %s\n", from,
			    strerror(errno));
			return NULL;
		}
		off += (size_t)n;
	}
	close(fd);
	e = json_loadb(buf, off, 0, &je);
	OPENSSL_cleanse(buf, sizeof buf);
	if (e == NULL) {
		fprintf(stderr, "weft worker: %s: not an enrolment: %s\n",
		    from, je.text);
		return NULL;
	}
	url = json_string_value(json_object_get(e, "url"));
	secret = json_string_value(json_object_get(e, "secret"));
	if (url == NULL || secret == NULL || strlen(url) >= sizeof w->url ||
	    !json_is_integer(json_object_get(e, "worker"))) {
		fprintf(stderr, "weft worker: %s: the enrolment lacks %s\n",
		    from, url == NULL ? "/url" : secret == NULL ?
		    "/secret" : "/worker");
		json_decref(e);
		return NULL;
	}
	snprintf(w->url, sizeof w->url, "%s", url);
	w->id = (int)json_integer_value(json_object_get(e, "worker"));
	w->secret = xstrdup(secret);
	*scratch = json_string_value(json_object_get(e, "scratch"));
	return e;
}

/* The poll was answered. */
static void
worker_poll_answer(struct worker *w, json_t *result, json_t *error)
{
	json_t *tasks, *t;
	size_t i;

	if (error != NULL) {
		fprintf(stderr, "weft worker %d: poll refused: %s\n", w->id,
		    json_string_value(json_object_get(error, "message")));
		w->stopping = 1;
		event_base_loopbreak(w->base);
		return;
	}
	if (json_is_true(json_object_get(result, "shutdown"))) {
		w->stopping = 1;
		event_base_loopbreak(w->base);
		return;
	}
	tasks = json_object_get(result, "tasks");
	json_array_foreach(tasks, i, t)
		worker_start_task(w, t);
	worker_pump(w);
}

/* An outcome message was acknowledged. */
static void
worker_out_answer(struct worker *w, json_t *result, json_t *error)
{
	if (error != NULL)
		fprintf(stderr, "weft worker %d: outcomes refused: %s\n", w->id,
		    json_string_value(json_object_get(error, "message")));
	worker_pump(w);
}

/* A heartbeat was answered. */
static void
worker_hb_answer(struct worker *w, json_t *result, json_t *error)
{
	json_t *it;
	struct wtask *t, *next;
	size_t i;

	/* Progress that came while this beat was in flight goes now. */
	TAILQ_FOREACH(t, &w->running, entry)
		if (json_array_size(t->progress) > 0) {
			event_active(w->hb_ev, EV_TIMEOUT, 0);
			break;
		}
	/* Steps the coordinator cancelled: tell their servers. */
	json_array_foreach(json_object_get(result, "cancel"), i, it) {
		TAILQ_FOREACH_SAFE(t, &w->running, entry, next) {
			if (t->id == json_integer_value(it) &&
			    t->a2a != NULL) {
				worker_a2a_cancel(t);
				break;
			}
			if (t->id != json_integer_value(it) ||
			    t->handle == 0)
				continue;
			mcpc_cancel(t->session, t->handle, "cancelled",
			    "the step was cancelled");
			break;
		}
	}
}

/*
 * Send the outcomes in *list as one message, or as many as fit under the
 * message limit (each outcome alone fits: worker_outcome sees to that);
 * the rest wait for the next free turn of the output context.
 */
static void
worker_send_batch(struct worker *w, const char *method, const char *key,
    json_t **list)
{
	json_t *send = json_array(), *rest = json_array(), *it;
	size_t i, total = 0, sz;

	json_array_foreach(*list, i, it) {
		sz = json_dumpb(it, NULL, 0, JSON_COMPACT) + 1;
		if (json_array_size(send) > 0 && total + sz > WIRE_MAX_MSG - 4096)
			json_array_append(rest, it);
		else {
			json_array_append(send, it);
			total += sz;
		}
	}
	json_decref(*list);
	*list = rest;
	worker_send(w, &w->out, method, json_pack("{s:i, s:o}", "worker",
	    w->id, key, send));
}

/* Send what can be sent: outcomes, then a new poll if slots are free. */
void
worker_pump(struct worker *w)
{
	if (w->stopping)
		return;
	if (!w->out.busy && json_array_size(w->results) > 0)
		worker_send_batch(w, WIRE_COMPLETE, "results", &w->results);
	else if (!w->out.busy && json_array_size(w->failures) > 0)
		worker_send_batch(w, WIRE_FAIL, "failures", &w->failures);
	if (!w->poll.busy && w->nrunning < w->slots)
		worker_send(w, &w->poll, WIRE_POLL, json_pack("{s:i, s:i}",
		    "worker", w->id, "slots", w->slots - w->nrunning));
}

/* Heartbeat timer. */
static void
worker_hb_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct wtask *t;
	json_t *ids, *prog;

	if (w->hb.busy || w->nrunning == 0 || w->stopping)
		return;
	ids = json_array();
	prog = json_array();
	TAILQ_FOREACH(t, &w->running, entry) {
		json_array_append_new(ids, json_integer(t->id));
		if (json_array_size(t->progress) == 0)
			continue;
		json_array_append_new(prog, json_pack("{s:I, s:i, s:o}", "id",
		    (json_int_t)t->id, "attempt", t->attempt, "progress",
		    t->progress));
		t->progress = NULL;
	}
	worker_send(w, &w->hb, WIRE_HEARTBEAT, json_pack("{s:i, s:o, s:o}",
	    "worker", w->id, "tasks", ids, "progress", prog));
}

/* SIGCHLD: tell sessions their server was reaped. */
static void
worker_chld_cb(evutil_socket_t sig, short what, void *arg)
{
	struct worker *w = arg;
	struct wsession *s;
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		LIST_FOREACH(s, &w->sessions, entry)
			if (mcpc_pid(s->mcpc) == pid)
				mcpc_reaped(s->mcpc, status);
}

/* SIGTERM: stop. */
static void
worker_term_cb(evutil_socket_t sig, short what, void *arg)
{
	struct worker *w = arg;

	w->stopping = 1;
	event_base_loopbreak(w->base);
}

/* Open a request context. */
static void
worker_wreq_init(struct worker *w, struct wreq *q,
    void (*done)(struct worker *, json_t *, json_t *))
{
	q->w = w;
	q->done = done;
	if (chan_open(&q->ch, w->sock, 0, w->bridge, worker_wreq_done, NULL,
	    q) != 0)
		fatalx(1, "worker: cannot open nng context");
}

/* Exit: stop the request contexts and free what the loop owned. */
static void
worker_release(struct worker *w)
{
	struct wreq *qs[] = { &w->poll, &w->out, &w->hb };
	struct wtask *t;
	size_t i;

	/* Closing waits for a callback in progress; none runs after. */
	for (i = 0; i < sizeof qs / sizeof qs[0]; i++)
		chan_close(&qs[i]->ch);
	while ((t = TAILQ_FIRST(&w->running)) != NULL) {
		TAILQ_REMOVE(&w->running, t, entry);
		worker_task_free(t);
	}
	json_decref(w->results);
	json_decref(w->failures);
	for (i = 0; i < WORKER_TOKEN_CACHE; i++)
		captoken_free(w->tokc[i]);
	captoken_uses_free(w->uses);
	captoken_keys_free(w->keys);
	event_free(w->hb_ev);
	event_free(w->chld_ev);
	event_free(w->term_ev);
	bridge_free(w->bridge);
	event_base_free(w->base);
}

/* The coordinator's public keys, from its hello answer. */
static int
worker_import_keys(struct worker *w, json_t *keys)
{
	json_t *k;
	size_t i;
	char err[256];

	if (!json_is_array(keys) || json_array_size(keys) == 0) {
		fprintf(stderr, "weft worker %d: hello: the coordinator sent no "
		    "public keys\n", w->id);
		return -1;
	}
	json_array_foreach(keys, i, k)
		if (captoken_pubkey_import(w->keys, json_string_value(k) ?
		    json_string_value(k) : "", NULL, err, sizeof err) != 0) {
			fprintf(stderr, "weft worker %d: hello: key %zu: %s\n",
			    w->id, i, err);
			return -1;
		}
	return 0;
}

/*
 * Confine the worker itself (sandbox_self) once its threads exist (the
 * seccomp filter is synced to all of them), before it takes any task.  A
 * layer the kernel lacks is said loudly; the hello carries the report, and
 * the coordinator records it (worker.sandbox).
 */
static void
worker_confine(struct worker *w)
{
	char missing[512];

	if (sandbox_self(!w->no_seccomp, &w->self) != 0 &&
	    sandbox_report_missing(&w->self, missing, sizeof missing) > 0)
		fprintf(stderr, "weft worker %d: WARNING: the worker runs "
		    "without these layers of its own confinement: %s\n",
		    w->id, missing);
}

/*
 * The worker.second_hello fault point (t_worker_auth): say our hello
 * (text, freed) once more on a second connection, as a thief of the
 * secret would, and say on stderr what the coordinator answered.
 */
static void
worker_hello_again(struct worker *w, char *text)
{
	nng_socket sock;
	nng_msg *m;
	size_t len = strlen(text);

	if (nng_req0_open(&sock) != 0 || nng_dial(sock, w->url, NULL, 0) != 0 ||
	    nng_msg_alloc(&m, 0) != 0 || nng_msg_append(m, text, len) != 0 ||
	    nng_sendmsg(sock, m, 0) != 0 || nng_recvmsg(sock, &m, 0) != 0)
		fprintf(stderr, "weft worker %d: second hello: no answer\n",
		    w->id);
	else {
		fprintf(stderr, "weft worker %d: second hello: %.*s\n", w->id,
		    (int)nng_msg_len(m), (char *)nng_msg_body(m));
		nng_msg_free(m);
	}
	OPENSSL_clear_free(text, len);
	nng_close(sock);
}

/* Synchronous hello: check the protocol version. */
static int
worker_hello(struct worker *w)
{
	json_t *msg;
	struct jrpc_msg m;
	nng_msg *nm, *reply;
	char *buf, err[256];
	size_t len;
	int rv, code;
	json_t *self = sandbox_report_json(&w->self, NULL);
	char *again = NULL;

	json_object_del(self, "landlock_abi");	/* not a worker layer */
	msg = jrpc_request(json_integer(0), WIRE_HELLO, json_pack(
	    "{s:i, s:i, s:i, s:i, s:o}", "version", WIRE_VERSION, "worker",
	    w->id, "pid", (int)getpid(), "slots", w->slots, "sandbox",
	    self));
	if (w->secret != NULL)
		json_object_set_new(json_object_get(msg, "params"), "secret",
		    json_string(w->secret));
	if (worker_labels != NULL)
		json_object_set(json_object_get(msg, "params"), "labels",
		    worker_labels);
	buf = jrpc_dump(msg, &len, 0);
	json_decref(msg);
	if (fault_hit("worker.second_hello"))
		again = xstrndup(buf, len);
	/* The secret is spent: nothing of it stays in our memory. */
	if (w->secret != NULL) {
		OPENSSL_clear_free(w->secret, strlen(w->secret));
		w->secret = NULL;
	}
	nm = chan_msg(buf, len);
	OPENSSL_clear_free(buf, len);
	if ((rv = nng_sendmsg(w->sock, nm, 0)) != 0 ||
	    (rv = nng_recvmsg(w->sock, &reply, 0)) != 0) {
		fprintf(stderr, "weft worker %d: hello: %s\n", w->id,
		    nng_strerror(rv));
		return -1;
	}
	rv = jrpc_parse(nng_msg_body(reply), nng_msg_len(reply), &m, &code,
	    err, sizeof err);
	nng_msg_free(reply);
	if (rv != 0) {
		fprintf(stderr, "weft worker %d: hello: %s\n", w->id, err);
		return -1;
	}
	if (m.kind == JRPC_ERROR_RESPONSE) {
		fprintf(stderr, "weft worker %d: the coordinator at %s refused "
		    "it: %s\n", w->id, w->url, m.error_message);
		jrpc_msg_clear(&m);
		return -1;
	}
	if (worker_import_keys(w, json_object_get(m.result, "keys")) != 0) {
		jrpc_msg_clear(&m);
		return -1;
	}
	w->heartbeat_ms = (int)json_integer_value(json_object_get(m.result,
	    "heartbeat_ms"));
	if (w->heartbeat_ms <= 0)
		w->heartbeat_ms = 1000;
	jrpc_msg_clear(&m);
	if (again != NULL)
		worker_hello_again(w, again);
	return 0;
}

static void	worker_lost_cb(void *);

/* nng's thread: our connection to the coordinator was removed. */
static void
worker_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct worker *w = arg;

	bridge_post(w->bridge, worker_lost_cb, w);
}

/* Loop: a remote worker lost the coordinator: it stops. */
static void
worker_lost_cb(void *arg)
{
	struct worker *w = arg;

	if (w->stopping)
		return;
	fprintf(stderr, "weft worker %d: lost the coordinator at %s; start "
	    "the worker again to rejoin\n", w->id, w->url);
	worker_lost = 1;
	w->stopping = 1;
	event_base_loopbreak(w->base);
}

/*
 * Dial a coordinator on the network (--connect): tls+tcp:// checks the
 * coordinator's certificate against the CA in ca and the host name; plain
 * tcp:// only on loopback.  0, or -1 with a message on stderr.
 */
static int
worker_dial_remote(struct worker *w, const char *ca)
{
	nng_tls_config *cfg = NULL;
	nng_dialer d;
	char host[256], err[512];
	int tls, rv;

	if (sup_url_check(w->url, &tls, host, sizeof host, err,
	    sizeof err) != 0) {
		fprintf(stderr, "weft worker: --connect %s\n", err);
		return -1;
	}
	if (tls && ca == NULL) {
		fprintf(stderr, "weft worker: --connect %s needs --ca FILE: "
		    "the certificate of the CA that signed the coordinator's\n",
		    w->url);
		return -1;
	}
	if ((rv = nng_dialer_create(&d, w->sock, w->url)) != 0) {
		fprintf(stderr, "weft worker: --connect %s: %s\n", w->url,
		    nng_strerror(rv));
		return -1;
	}
	if (tls) {
		if ((rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT)) != 0 ||
		    (rv = nng_tls_config_auth_mode(cfg,
		    NNG_TLS_AUTH_MODE_REQUIRED)) != 0 ||
		    (rv = nng_tls_config_server_name(cfg, host)) != 0) {
			fprintf(stderr, "weft worker: tls: %s\n",
			    nng_strerror(rv));
			if (cfg != NULL)
				nng_tls_config_free(cfg);
			return -1;
		}
		if ((rv = nng_tls_config_ca_file(cfg, ca)) != 0) {
			fprintf(stderr, "weft worker: --ca %s: not a readable "
			    "PEM certificate (%s)\n", ca, nng_strerror(rv));
			nng_tls_config_free(cfg);
			return -1;
		}
		rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg);
		nng_tls_config_free(cfg);	/* the dialer holds it */
		if (rv != 0) {
			fprintf(stderr, "weft worker: tls: %s\n",
			    nng_strerror(rv));
			return -1;
		}
	}
	if ((rv = nng_dialer_start(d, 0)) == 0)
		return 0;
	if (rv == NNG_EPEERAUTH || rv == NNG_ECRYPTO)
		fprintf(stderr, "weft worker: cannot connect to %s: the "
		    "coordinator's certificate was refused: it is not signed by "
		    "the CA in --ca %s, or not made for the host %s (%s)\n",
		    w->url, ca, host, nng_strerror(rv));
	else
		fprintf(stderr, "weft worker: cannot connect to %s: %s\n",
		    w->url, nng_strerror(rv));
	return -1;
}

/* Check and keep one --label; -1 with a message on stderr. */
static int
worker_add_label(const char *l)
{
	if (*l == '\0' || strlen(l) > 64 || strspn(l, "abcdefghijklmnopqrst"
	    "uvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != strlen(l)) {
		fprintf(stderr, "weft worker: --label '%s': a label is 1 to 64 "
		    "letters, digits, '_', '-' or '.'\n", l);
		return -1;
	}
	if (worker_labels == NULL)
		worker_labels = json_array();
	if (json_array_size(worker_labels) == 16) {
		fprintf(stderr, "weft worker: at most 16 --label\n");
		return -1;
	}
	json_array_append_new(worker_labels, json_string(l));
	return 0;
}

/*
 * Open an enrolment file (--enroll-file): it holds a secret, so it must be
 * a regular file that only its owner can read.  The descriptor, or -1
 * with a message on stderr.
 */
static int
worker_enroll_file(const char *path)
{
	struct stat st;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		fprintf(stderr, "weft worker: --enroll-file %s: %s\n", path,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
		fprintf(stderr, "weft worker: --enroll-file %s: %s (mode "
		    "%04o): it holds a secret; chmod 600 %s\n", path,
		    S_ISREG(st.st_mode) ? "readable by others" :
		    "not a regular file", (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return -1;
	}
	return fd;
}

/* Exit before the loop ran: free what was made so far; returns rc. */
static int
worker_early_exit(struct worker *w, int rc)
{
	if (w->secret != NULL)
		OPENSSL_clear_free(w->secret, strlen(w->secret));
	w->secret = NULL;
	json_decref(worker_labels);
	worker_labels = NULL;
	if (w->keys == NULL)
		return rc;
	worker_scratch_sweep(w);
	captoken_keys_free(w->keys);
	captoken_uses_free(w->uses);
	json_decref(w->results);
	json_decref(w->failures);
	return rc;
}

static void
worker_usage(FILE *f)
{
	fprintf(f,
"usage: weft worker --enroll-fd N [--slots K] [--no-seccomp] [-v]\n"
"       weft worker --connect tls+tcp://HOST:PORT --ca FILE\n"
"                   --enroll-file FILE [--label L]... [--slots K] [-v]\n"
"\n"
"Run a worker: dial the coordinator, prove who it is with the secret of\n"
"its enrolment, take tasks (MCP tool calls) and report their outcomes.\n"
"`weft run` and `weft serve` start and enrol their own local workers;\n"
"the second form joins a coordinator from another machine (one started\n"
"with --workers-listen, --remote-workers and --enroll-dir; README.md,\n"
"\"A remote worker joining in three commands\").\n"
"\n"
"  --enroll-fd N   read the enrolment from descriptor N: the coordinator's\n"
"                  address, the worker id and a one-time secret, written\n"
"                  by the coordinator that started it (docs/PROTOCOL.md)\n"
"  --connect URL   the coordinator's tls+tcp://HOST:PORT (tcp:// only on\n"
"                  a loopback address); HOST must be a name in its\n"
"                  certificate.  Default: the url of the enrolment file\n"
"  --ca FILE       the CA certificate (PEM) that signed the coordinator's;\n"
"                  a coordinator whose certificate it did not sign is\n"
"                  refused\n"
"  --enroll-file FILE  the enrolment the coordinator wrote to its\n"
"                  --enroll-dir (worker-ID.enroll, mode 0600)\n"
"  --label L       offer label L (repeatable): tasks of a server declared\n"
"                  with on = \"L\" go only to workers labelled L\n"
"  --slots K       tasks run concurrently (default 256)\n"
"  --no-seccomp    confine itself without its seccomp filter (weft run\n"
"                  passes it when a server has sandbox = false or debug)\n"
"  -v, --verbose   log to stderr\n"
"\n"
"A worker confines itself before it takes a task: no_new_privs, no core\n"
"dumps, not dumpable (its memory and /proc files are closed to its tool\n"
"servers), and a seccomp deny list (docs/security.md).\n");
}

int
worker_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "enroll-fd", required_argument, NULL, 'e' },
		{ "enroll-file", required_argument, NULL, 'E' },
		{ "connect", required_argument, NULL, 'c' },
		{ "ca", required_argument, NULL, 'C' },
		{ "label", required_argument, NULL, 'L' },
		{ "slots", required_argument, NULL, 's' },
		{ "no-seccomp", no_argument, NULL, 'S' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct worker w;
	const char *scratch = NULL;
	json_t *enrolment = NULL;
	struct wsession *s;
	struct timeval tv;
	char *end, from[PATH_MAX + 32];
	const char *connect = NULL, *ca = NULL, *efile = NULL;
	long fd = -1;
	int ch, rv, tries;

	memset(&w, 0, sizeof w);
	w.slots = 256;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "s:vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'e':
			fd = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || fd < 0 ||
			    fd > 1024) {
				fprintf(stderr, "weft worker: --enroll-fd: "
				    "'%s' is not a descriptor\n", optarg);
				return 2;
			}
			break;
		case 'E':
			efile = optarg;
			break;
		case 'c':
			connect = optarg;
			break;
		case 'C':
			ca = optarg;
			break;
		case 'L':
			if (worker_add_label(optarg) != 0)
				return worker_early_exit(&w, 2);
			break;
		case 's':
			w.slots = atoi(optarg);
			break;
		case 'S':
			w.no_seccomp = 1;
			break;
		case 'v':
			w.verbose = 1;
			break;
		case 'h':
			worker_usage(stdout);
			return 0;
		default:
			worker_usage(stderr);
			return worker_early_exit(&w, 2);
		}
	}
	if ((fd < 0) == (efile == NULL) || w.slots < 1 ||
	    (efile == NULL && (connect != NULL || ca != NULL ||
	    worker_labels != NULL))) {
		worker_usage(stderr);
		return worker_early_exit(&w, 2);
	}
	if (efile != NULL) {
		snprintf(from, sizeof from, "--enroll-file %s", efile);
		if ((fd = worker_enroll_file(efile)) == -1)
			return worker_early_exit(&w, 2);
	} else
		snprintf(from, sizeof from, "--enroll-fd %ld", fd);
	if ((enrolment = worker_enrolment(&w, (int)fd, from,
	    &scratch)) == NULL)
		return worker_early_exit(&w, 2);
	if (connect != NULL && strlen(connect) < sizeof w.url)
		snprintf(w.url, sizeof w.url, "%s", connect);
	/* A local worker must not outlive the coordinator that started it. */
	if (efile == NULL)
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	else
		scratch = NULL;		/* its own, on its machine */
	signal(SIGPIPE, SIG_IGN);
	TAILQ_INIT(&w.running);
	LIST_INIT(&w.sessions);
	w.keys = captoken_keys_new();
	w.uses = captoken_uses_new(0);
	w.results = json_array();
	w.failures = json_array();
	worker_scratch_root(&w, scratch);
	json_decref(enrolment);
	if ((rv = nng_req0_open(&w.sock)) != 0)
		fatalx(1, "worker: nng: %s", nng_strerror(rv));
	nng_socket_set_ms(w.sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_size(w.sock, NNG_OPT_RECVMAXSZ, WIRE_MAX_MSG);
	if (efile != NULL && worker_dial_remote(&w, ca) != 0)
		return worker_early_exit(&w, 1);
	for (tries = 0; efile == NULL &&
	    (rv = nng_dial(w.sock, w.url, NULL, 0)) != 0; tries++) {
		if (tries == 50)
			fatalx(1, "worker %d: cannot connect to %s: %s", w.id,
			    w.url, nng_strerror(rv));
		usleep(20000);
	}
	worker_confine(&w);
	if (worker_hello(&w) != 0)
		return worker_early_exit(&w, 1);
	w.base = event_base_new();
	w.bridge = bridge_new(w.base);
	worker_wreq_init(&w, &w.poll, worker_poll_answer);
	worker_wreq_init(&w, &w.out, worker_out_answer);
	worker_wreq_init(&w, &w.hb, worker_hb_answer);
	w.hb_ev = event_new(w.base, -1, EV_PERSIST, worker_hb_cb, &w);
	tv.tv_sec = w.heartbeat_ms / 1000;
	tv.tv_usec = (w.heartbeat_ms % 1000) * 1000;
	event_add(w.hb_ev, &tv);
	w.chld_ev = evsignal_new(w.base, SIGCHLD, worker_chld_cb, &w);
	event_add(w.chld_ev, NULL);
	w.term_ev = evsignal_new(w.base, SIGTERM, worker_term_cb, &w);
	event_add(w.term_ev, NULL);
	if (efile != NULL)
		nng_pipe_notify(w.sock, NNG_PIPE_EV_REM_POST, worker_pipe_cb,
		    &w);
	worker_pump(&w);
	event_base_dispatch(w.base);

	if (efile != NULL)	/* no more posts to the bridge */
		nng_pipe_notify(w.sock, NNG_PIPE_EV_REM_POST, NULL, NULL);
	while ((s = LIST_FIRST(&w.sessions)) != NULL)
		worker_session_free(s);
	if (w.hc != NULL)
		http_free(w.hc);	/* a2a.send's client */
	worker_scratch_sweep(&w);
	worker_release(&w);
	/*
	 * No nng_close: closing a REQ socket can wait on its pipe's reaper
	 * for seconds after the coordinator went away; the process exits
	 * now and the kernel closes the connection.
	 */
	json_decref(worker_labels);
	return worker_lost ? 1 : 0;
}
