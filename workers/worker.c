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
#include <openssl/crypto.h>

#include "engine/captoken.h"
#include "runtime/fault.h"
#include "runtime/util.h"
#include "protocols/jsonrpc.h"
#include "protocols/mcp_client.h"
#include "runtime/bridge.h"
#include "runtime/chan.h"
#include "runtime/sandbox.h"
#include "runtime/wire.h"
#include "workers/worker.h"

struct worker;

/* Verified tokens kept, so a token's signature is checked once. */
#define WORKER_TOKEN_CACHE	32

/* One outstanding request to the coordinator. */
/* One nng REQ context (runtime/chan.h): one request in flight at a time. */
struct wreq {
	struct chan	 ch;
	struct worker	*w;
	int		 busy;
	void		(*done)(struct worker *, json_t *result, json_t *err);
};

struct wtask {
	struct worker		*w;
	int64_t			 id;
	int			 attempt;
	char			*kind;
	json_t			*list;		/* mcp.list: tools so far */
	struct mcpc		*session;
	struct wsession		*ws;
	int64_t			 handle;	/* mcp.call: mcpc request */
	struct event		*timer;		/* mcp.call: timeout */
	double			 timeout;	/* seconds */
	double			 task_timeout;	/* the attempt's, or 0 */
	char			*idem;		/* idempotency key, or NULL */
	unsigned		 gen;		/* mcp.list: list generation */
	json_t			*progress;	/* not yet reported */
	TAILQ_ENTRY(wtask)	 entry;
};
TAILQ_HEAD(wtask_list, wtask);

/*
 * One MCP server session per (run, server name): a sandboxed server gets
 * a scratch dir of its own for the run, removed with the session.
 */
struct wsession {
	struct worker		*w;
	struct mcpc		*mcpc;
	json_t			*tools;		/* cached tools/list, or NULL */
	unsigned		 gen;		/* list_changed count */
	int			 changed;	/* list_changed not yet told */
	char			*name;
	char			*run;
	char			*scratch;	/* NULL: none */
	int			 nactive;	/* tasks using it */
	unsigned		 reported;	/* starts already reported */
	int			 warned;
	LIST_ENTRY(wsession)	 entry;
};

struct worker {
	int			 id;
	int			 slots;
	int			 verbose;
	int			 no_seccomp;	/* --no-seccomp */
	struct sandbox_report	 self;		/* its own confinement */
	struct event_base	*base;
	struct bridge		*bridge;
	nng_socket		 sock;
	struct wreq		 poll, hb, out;
	struct event		*hb_ev, *chld_ev, *term_ev;
	struct wtask_list	 running;
	int			 nrunning;
	json_t			*results;	/* outcomes not yet sent */
	json_t			*failures;
	int			 heartbeat_ms;
	int			 stopping;
	LIST_HEAD(, wsession)	 sessions;
	struct captoken_keys	*keys;		/* public keys only */
	struct captoken_uses	*uses;		/* calls per token */
	struct captoken		*tokc[WORKER_TOKEN_CACHE]; /* verified */
	unsigned		 tokc_next;
	char			 scratch_root[PATH_MAX];
	int			 scratch_own;	/* remove the root at exit */
	char			 url[PATH_MAX + 16]; /* the coordinator */
	char			*secret;	/* of its enrolment, until
						   hello; NULL: none */
};

static void	worker_pump(struct worker *);

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
	if (nng_msg_alloc(&m, 0) != 0 || nng_msg_append(m, buf, len) != 0)
		fatalx(1, "out of memory");
	free(buf);
	q->busy = 1;
	chan_send(&q->ch, m);
	return 0;
}

/* Free a task's own state (not its place in the running list). */
static void
worker_task_free(struct wtask *t)
{
	if (t->timer != NULL)
		event_free(t->timer);
	json_decref(t->progress);
	json_decref(t->list);
	free(t->idem);
	free(t->kind);
	free(t);
}

/*
 * Record a task's outcome for the next complete/fail message, with the
 * progress notifications not yet sent in a heartbeat.
 */
static void
worker_outcome(struct wtask *t, json_t *result, json_t *error)
{
	struct worker *w = t->w;
	json_t *item;

	if (result != NULL && json_dumpb(result, NULL, 0, JSON_COMPACT) >
	    WIRE_MAX_MSG - 4096) {
		/* Refused, never truncated: the task fails for good. */
		json_array_append_new(w->failures, item = json_pack(
		    "{s:I, s:i, s:{s:s, s:o}}", "id", (json_int_t)t->id,
		    "attempt", t->attempt, "error", "kind", FAIL_TOO_LARGE,
		    "message", json_sprintf("the tool result (%zu bytes) "
		    "exceeds the %d-byte message limit", json_dumpb(result,
		    NULL, 0, JSON_COMPACT), WIRE_MAX_MSG)));
	} else if (result != NULL)
		json_array_append_new(w->results, item = json_pack(
		    "{s:I, s:i, s:O}", "id", (json_int_t)t->id, "attempt",
		    t->attempt, "result", result));
	else
		json_array_append_new(w->failures, item = json_pack(
		    "{s:I, s:i, s:O}", "id", (json_int_t)t->id, "attempt",
		    t->attempt, "error", error));
	if (json_array_size(t->progress) > 0)
		json_object_set(item, "progress", t->progress);
	TAILQ_REMOVE(&w->running, t, entry);
	w->nrunning--;
	if (t->ws != NULL)
		t->ws->nactive--;
	worker_task_free(t);
	worker_pump(w);
}

/* Fail a task with kind and message. */
static void
worker_task_fail(struct wtask *t, const char *kind, const char *msg)
{
	json_t *e = json_pack("{s:s, s:s}", "kind", kind, "message", msg);

	worker_outcome(t, NULL, e);
	json_decref(e);
}


/*
 * Where scratch dirs go: the root the coordinator made for them (from the
 * enrolment), else a directory of our own.
 */
static int
worker_scratch_root(struct worker *w, const char *given)
{
	const char *tmp = getenv("TMPDIR");

	if (given != NULL && *given == '/' &&
	    strlen(given) < sizeof w->scratch_root) {
		snprintf(w->scratch_root, sizeof w->scratch_root, "%s", given);
		return 0;
	}
	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	snprintf(w->scratch_root, sizeof w->scratch_root,
	    "%s/weft-worker-XXXXXX", tmp);
	if (mkdtemp(w->scratch_root) == NULL) {
		fprintf(stderr, "weft worker %d: cannot create a scratch "
		    "directory in %s: %s\n", w->id, tmp, strerror(errno));
		w->scratch_root[0] = '\0';
		return -1;
	}
	w->scratch_own = 1;
	return 0;
}

/*
 * Read the enrolment the coordinator wrote to descriptor fd (coord_enrol):
 * {version, url, worker, secret, scratch}.  Sets *scratch (owned by the
 * returned object, which the caller frees); -1 with a message on stderr.
 */
static json_t *
worker_enrolment(struct worker *w, int fd, const char **scratch)
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
			fprintf(stderr, "weft worker: --enroll-fd %d: %s\n", fd,
			    strerror(errno));
			return NULL;
		}
		off += (size_t)n;
	}
	close(fd);
	e = json_loadb(buf, off, 0, &je);
	OPENSSL_cleanse(buf, sizeof buf);
	if (e == NULL) {
		fprintf(stderr, "weft worker: --enroll-fd %d: not an "
		    "enrolment: %s\n", fd, je.text);
		return NULL;
	}
	url = json_string_value(json_object_get(e, "url"));
	secret = json_string_value(json_object_get(e, "secret"));
	if (url == NULL || secret == NULL || strlen(url) >= sizeof w->url ||
	    !json_is_integer(json_object_get(e, "worker"))) {
		fprintf(stderr, "weft worker: --enroll-fd %d: the enrolment "
		    "lacks %s\n", fd, url == NULL ? "/url" : secret == NULL ?
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

/*
 * At exit: remove our scratch dirs, and those of workers that died
 * without removing theirs (named after their pids).
 */
static void
worker_scratch_sweep(struct worker *w)
{
	struct dirent *de;
	char *end;
	long pid;
	DIR *d;

	if (w->scratch_root[0] == '\0' ||
	    (d = opendir(w->scratch_root)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		pid = strtol(de->d_name, &end, 10);
		if (end == de->d_name || *end != '-' || pid <= 0)
			continue;
		if (pid == (long)getpid() ||
		    (kill((pid_t)pid, 0) == -1 && errno == ESRCH))
			rmtree_at(dirfd(d), de->d_name);
	}
	closedir(d);
	rmdir(w->scratch_root);
}

/* Close a session: stop its server, remove its scratch dir. */
static void
worker_session_free(struct wsession *s)
{
	LIST_REMOVE(s, entry);
	mcpc_free(s->mcpc);
	json_decref(s->tools);
	if (s->scratch != NULL)
		rmtree(s->scratch);
	free(s->scratch);
	free(s->name);
	free(s->run);
	free(s);
}

/* Make the scratch dir of a session: ROOT/PID-RUN-SERVER, mode 0700. */
static char *
worker_scratch(struct worker *w, const char *run, const char *name,
    char *err, size_t errlen)
{
	char *dir;
	size_t i;

	for (i = 0; run[i] != '\0'; i++) {
		if (i >= 64 || !(isalnum((unsigned char)run[i]) ||
		    run[i] == '-' || run[i] == '_')) {
			errf(err, errlen, "/run: not a run id");
			return NULL;
		}
	}
	for (i = 0; name[i] != '\0'; i++) {
		if (i >= 128 || !(isalnum((unsigned char)name[i]) ||
		    name[i] == '-' || name[i] == '_' || name[i] == '.') ||
		    (i == 0 && name[i] == '.')) {
			errf(err, errlen, "/params/server/name: '%s' cannot "
			    "name a scratch directory", name);
			return NULL;
		}
	}
	if (w->scratch_root[0] == '\0') {
		errf(err, errlen, "sandbox: no scratch directory");
		return NULL;
	}
	if (mkdir(w->scratch_root, 0700) == -1 && errno != EEXIST) {
		errf(err, errlen, "sandbox: cannot create %s: %s",
		    w->scratch_root, strerror(errno));
		return NULL;
	}
	dir = xasprintf("%s/%ld-%s-%s", w->scratch_root, (long)getpid(),
	    *run ? run : "run", name);
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		errf(err, errlen, "sandbox: cannot create the scratch "
		    "directory %s: %s", dir, strerror(errno));
		free(dir);
		return NULL;
	}
	return dir;
}

/* Most progress notifications a task keeps between two reports. */
#define WORKER_MAX_PROGRESS	64

/*
 * notifications/progress: queue it on the task whose token it names, for
 * the next heartbeat or the outcome (the coordinator records them as
 * tool.progress events).  Past the limit the oldest are dropped, so the
 * latest always goes through.
 */
static void
worker_progress(struct wsession *s, json_t *params)
{
	json_t *tok = json_object_get(params, "progressToken");
	json_t *p = json_object_get(params, "progress");
	json_t *total = json_object_get(params, "total");
	json_t *msg = json_object_get(params, "message"), *item;
	struct wtask *t;

	if (!json_is_integer(tok) || !json_is_number(p))
		return;
	TAILQ_FOREACH(t, &s->w->running, entry)
		if (t->ws == s && t->id == json_integer_value(tok))
			break;
	if (t == NULL)
		return;
	item = json_pack("{s:O}", "progress", p);
	if (json_is_number(total))
		json_object_set(item, "total", total);
	if (json_is_string(msg))
		json_object_set_new(item, "message", json_stringn(
		    json_string_value(msg), strnlen(json_string_value(msg),
		    512)));
	if (t->progress == NULL)
		t->progress = json_array();
	if (json_array_size(t->progress) >= WORKER_MAX_PROGRESS)
		json_array_remove(t->progress, 0);
	json_array_append_new(t->progress, item);
}

/* A notification from a server: progress, or its tool list changed. */
static void
worker_note_cb(void *arg, const char *method, json_t *params)
{
	struct wsession *s = arg;

	if (strcmp(method, "notifications/progress") == 0)
		worker_progress(s, params);
	else if (strcmp(method, "notifications/tools/list_changed") == 0) {
		json_decref(s->tools);
		s->tools = NULL;
		s->gen++;
		s->changed = 1;
		if (s->w->verbose)
			fprintf(stderr, "weft worker %d: MCP server '%s': "
			    "tool list changed\n", s->w->id, s->name);
	}
}

/*
 * The session for a server spec in a run, created on first use.  Idle
 * sessions of other runs are closed then: a server never carries state,
 * or a scratch dir, from one run into the next.
 */
static struct wsession *
worker_session(struct worker *w, json_t *spec, const char *run, char *err,
    size_t errlen)
{
	const char *name = json_string_value(json_object_get(spec, "name"));
	struct wsession *s, *next;
	struct sandbox_profile *sb;
	struct mcpc *m;
	char *scratch = NULL;

	if (name == NULL) {
		errf(err, errlen, "/params/server/name: must be a string");
		return NULL;
	}
	LIST_FOREACH(s, &w->sessions, entry)
		if (strcmp(s->name, name) == 0 && strcmp(s->run, run) == 0)
			return s;
	for (s = LIST_FIRST(&w->sessions); s != NULL; s = next) {
		next = LIST_NEXT(s, entry);
		if (strcmp(s->run, run) != 0 && s->nactive == 0)
			worker_session_free(s);
	}
	if (json_object_get(spec, "url") != NULL) {
		/* A remote server: there is no process to confine. */
		sb = NULL;
		if (json_is_object(json_object_get(spec, "sandbox"))) {
			errf(err, errlen, "/params/server/sandbox: MCP server "
			    "'%s' is remote (url); the sandbox applies to "
			    "command servers only", name);
			return NULL;
		}
	} else if (sandbox_profile_parse(json_object_get(spec, "sandbox"),
	    &sb, err, errlen) != 0)
		return NULL;
	if (sb != NULL) {
		if ((scratch = worker_scratch(w, run, name, err,
		    errlen)) == NULL) {
			sandbox_profile_free(sb);
			return NULL;
		}
		sb->scratch = xstrdup(scratch);
	}
	if ((m = mcpc_new(w->base, spec, sb, err, errlen)) == NULL) {
		sandbox_profile_free(sb);
		if (scratch != NULL)
			rmtree(scratch);
		free(scratch);
		return NULL;
	}
	s = xcalloc(1, sizeof *s);
	s->w = w;
	s->mcpc = m;
	mcpc_set_notify(m, worker_note_cb, s);
	s->name = xstrdup(name);
	s->run = xstrdup(run);
	s->scratch = scratch;
	LIST_INSERT_HEAD(&w->sessions, s, entry);
	return s;
}

/*
 * Put the sandbox of the task's server in the result's _meta, as
 * "weft/sandbox": always for tools/list, and for the first tools/call
 * answered after each start of the server (every one in debug mode, with
 * the calls denied so far).  A server's own "weft/sandbox"
 * is removed: it cannot vouch for its confinement.  A layer missing is
 * also a warning on stderr, once per session.
 */
static void
worker_sandbox_meta(struct wtask *t, json_t *result, int always)
{
	const struct sandbox_report *rep;
	const struct sandbox_profile *p;
	json_t *meta, *sb;
	unsigned starts;
	char miss[1024];

	if (t->ws == NULL || !json_is_object(result))
		return;
	meta = json_object_get(result, "_meta");
	if (json_is_object(meta))
		json_object_del(meta, "weft/sandbox");
	rep = mcpc_sandbox(t->ws->mcpc, &p, &starts);
	if (!always && starts == t->ws->reported && (p == NULL || !p->debug))
		return;
	t->ws->reported = starts;
	if (!json_is_object(meta)) {
		meta = json_object();
		json_object_set_new(result, "_meta", meta);
	}
	if (p == NULL) {
		json_object_set_new(meta, "weft/sandbox", json_pack("{s:b}",
		    "disabled", 1));
		return;
	}
	if (rep == NULL)
		return;
	json_object_set_new(meta, "weft/sandbox", sb = sandbox_report_json(
	    rep, p));
	if (p->debug)
		json_object_set(sb, "denied", mcpc_denied(t->ws->mcpc));
	if (!t->ws->warned && sandbox_report_missing(rep, miss,
	    sizeof miss) > 0) {
		t->ws->warned = 1;
		fprintf(stderr, "weft: warning: MCP server '%s' runs without "
		    "these sandbox layers: %s (weft doctor shows what this "
		    "kernel provides)\n", t->ws->name, miss);
	}
}

/*
 * tools/call answered.  After the server said its tool list changed, the
 * next result carries _meta["weft/tools_changed"], so the graph lists the
 * tools again before an agent's next turn.
 */
static void
worker_call_cb(void *arg, json_t *result, json_t *error)
{
	struct wtask *t = arg;
	json_t *meta;

	if (result != NULL && json_is_object(result)) {
		worker_sandbox_meta(t, result, 0);
		meta = json_object_get(result, "_meta");
		if (json_is_object(meta))
			json_object_del(meta, "weft/tools_changed");
		if (t->ws != NULL && t->ws->changed) {
			t->ws->changed = 0;
			if (!json_is_object(meta))
				json_object_set_new(result, "_meta",
				    meta = json_object());
			json_object_set_new(meta, "weft/tools_changed",
			    json_true());
		}
	}
	worker_outcome(t, result, error);
}

/* A tools/call outlived its attempt's timeout: cancel it. */
static void
worker_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wtask *t = arg;
	char msg[300];

	snprintf(msg, sizeof msg, "MCP server '%s' did not answer %s "
	    "within the attempt's timeout of %.3g s; the request was "
	    "cancelled "
	    "(notifications/cancelled)", t->ws->name, t->list != NULL ?
	    "tools/list" : "tools/call", t->timeout);
	mcpc_cancel(t->session, t->handle, FAIL_TIMEOUT, msg);
}

/*
 * The server's timeout (server spec "timeout", seconds) into t->timeout;
 * -1, with the task failed, when it is not a positive number.
 */
static int
worker_timeout_of(struct wtask *t, json_t *params)
{
	json_t *tmo = json_object_get(json_object_get(params, "server"),
	    "timeout");

	t->timeout = t->task_timeout;
	if (tmo == NULL)
		return 0;
	if (!json_is_number(tmo) || json_number_value(tmo) <= 0 ||
	    json_number_value(tmo) > 86400) {
		worker_task_fail(t, FAIL_BAD_TASK, "/params/server/timeout: "
		    "must be seconds, more than 0 and at most 86400");
		return -1;
	}
	if (t->timeout <= 0 || json_number_value(tmo) < t->timeout)
		t->timeout = json_number_value(tmo);
	return 0;
}

/* Arm the task's timeout, if its server has one. */
static void
worker_timeout_arm(struct wtask *t)
{
	struct timeval tv;

	if (t->timeout <= 0)
		return;
	tv.tv_sec = (time_t)t->timeout;
	tv.tv_usec = (suseconds_t)((t->timeout - tv.tv_sec) * 1e6);
	t->timer = evtimer_new(t->w->base, worker_timeout_cb, t);
	evtimer_add(t->timer, &tv);
}

/*
 * Send a tools/call, with the task id as its progress token and the
 * task's idempotency key (the same for every attempt) in
 * _meta["weft/idempotency_key"], so a server can recognise a repeat.
 */
static void
worker_call(struct wtask *t, json_t *params)
{
	json_t *name = json_object_get(params, "name");
	json_t *args = json_object_get(params, "arguments");
	int64_t h;

	if (!json_is_string(name)) {
		worker_task_fail(t, FAIL_BAD_TASK,
		    "/params/name: must be a string");
		return;
	}
	if (worker_timeout_of(t, params) != 0)
		return;
	h = mcpc_request(t->session, "tools/call", json_pack(
	    "{s:O, s:o, s:{s:I, s:s?}}", "name", name, "arguments", args ?
	    json_incref(args) : json_object(), "_meta", "progressToken",
	    (json_int_t)t->id, "weft/idempotency_key", t->idem),
	    worker_call_cb, t);
	if (h == 0)
		return;		/* answered already: t is gone */
	t->handle = h;
	worker_timeout_arm(t);
}

/* tools/list answered: follow nextCursor until the list is complete. */
static void
worker_list_cb(void *arg, json_t *result, json_t *error)
{
	struct wtask *t = arg;
	json_t *tools, *cursor, *done;
	int64_t h;

	if (error != NULL) {
		worker_outcome(t, NULL, error);
		return;
	}
	tools = json_object_get(result, "tools");
	if (!json_is_array(tools)) {
		worker_task_fail(t, FAIL_PROTOCOL, "tools/list answer lacks "
		    "/result/tools");
		return;
	}
	json_array_extend(t->list, tools);
	cursor = json_object_get(result, "nextCursor");
	if (json_is_string(cursor) && json_array_size(t->list) < 100000) {
		h = mcpc_request(t->session, "tools/list", json_pack("{s:O}",
		    "cursor", cursor), worker_list_cb, t);
		if (h != 0)
			t->handle = h;
		return;
	}
	if (t->ws->gen == t->gen && t->ws->tools == NULL)
		t->ws->tools = json_incref(t->list);
	done = json_pack("{s:O}", "tools", t->list);
	worker_sandbox_meta(t, done, 1);
	worker_outcome(t, done, NULL);
	json_decref(done);
}

/*
 * mcp.list: the session's cached list while the server has not said it
 * changed (notifications/tools/list_changed), else tools/list.
 */
static void
worker_list(struct wtask *t, json_t *params)
{
	json_t *done;
	int64_t h;

	if (t->ws->tools != NULL) {
		done = json_pack("{s:O}", "tools", t->ws->tools);
		worker_sandbox_meta(t, done, 1);
		worker_outcome(t, done, NULL);
		json_decref(done);
		return;
	}
	if (worker_timeout_of(t, params) != 0)
		return;
	t->list = json_array();
	t->gen = t->ws->gen;
	h = mcpc_request(t->session, "tools/list", NULL, worker_list_cb, t);
	if (h == 0)
		return;		/* answered already: t is gone */
	t->handle = h;
	worker_timeout_arm(t);
}

/* The cached verified token whose text is s, or NULL. */
static struct captoken *
worker_token_cached(struct worker *w, const char *s)
{
	unsigned i;

	for (i = 0; i < WORKER_TOKEN_CACHE; i++)
		if (w->tokc[i] != NULL &&
		    strcmp(captoken_string(w->tokc[i]), s) == 0)
			return w->tokc[i];
	return NULL;
}

/*
 * Verify the task's capability token before anything runs: signature
 * (once per token), expiry, run, node, tool, arguments and call count.
 * On refusal err gets the reason name, a NUL, and the message.
 */
static int
worker_check_token(struct worker *w, json_t *task, const char *run,
    json_t *params, char *err, size_t errlen)
{
	const char *s = json_string_value(json_object_get(task, "token"));
	const char *kind = json_string_value(json_object_get(task, "kind"));
	struct captoken_call call;
	struct captoken *tok;
	char msg[400];
	const char *server;
	char tool[256];
	int r;

	memset(&call, 0, sizeof call);
	call.run = run != NULL ? run : "";
	call.node = json_string_value(json_object_get(task, "path"));
	if (call.node == NULL)
		call.node = "";
	if (kind != NULL && strcmp(kind, TASK_MCP_CALL) == 0) {
		server = json_string_value(json_object_get(json_object_get(
		    params, "server"), "name"));
		snprintf(tool, sizeof tool, "%s.%s", server ? server : "",
		    json_string_value(json_object_get(params, "name")) ?
		    json_string_value(json_object_get(params, "name")) : "");
		call.tool = tool;
		call.args = json_object_get(params, "arguments");
	}
	if (s == NULL) {
		r = -CAPTOKEN_EMALFORMED;
		snprintf(msg, sizeof msg, "the task carries no capability "
		    "token");
	} else if ((tok = worker_token_cached(w, s)) != NULL) {
		r = captoken_check(tok, &call, captoken_now_ms(), w->uses, msg,
		    sizeof msg);
	} else if ((r = captoken_verify(w->keys, s, strlen(s), &call,
	    captoken_now_ms(), w->uses, &tok, msg, sizeof msg)) == 0) {
		captoken_free(w->tokc[w->tokc_next]);
		w->tokc[w->tokc_next] = tok;
		w->tokc_next = (w->tokc_next + 1) % WORKER_TOKEN_CACHE;
	}
	if (r == 0)
		return 0;
	snprintf(err, errlen, "%s%c%s", captoken_reason_name(-r), '\0', msg);
	return -1;
}

/* Start one task from the coordinator. */
static void
worker_start_task(struct worker *w, json_t *task)
{
	struct wtask *t = xcalloc(1, sizeof *t);
	json_t *params = json_object_get(task, "params");
	json_t *refusal;
	const char *run;
	char err[512];

	t->w = w;
	t->id = json_integer_value(json_object_get(task, "id"));
	t->attempt = (int)json_integer_value(json_object_get(task, "attempt"));
	t->kind = xstrdup(json_string_value(json_object_get(task, "kind")) ?
	    json_string_value(json_object_get(task, "kind")) : "");
	if (json_is_string(json_object_get(task, "idem")) &&
	    json_string_length(json_object_get(task, "idem")) <= 200)
		t->idem = xstrdup(json_string_value(json_object_get(task,
		    "idem")));
	if (json_is_number(json_object_get(task, "timeout")) &&
	    json_number_value(json_object_get(task, "timeout")) > 0 &&
	    json_number_value(json_object_get(task, "timeout")) <= 86400)
		t->task_timeout = json_number_value(json_object_get(task,
		    "timeout"));
	TAILQ_INSERT_TAIL(&w->running, t, entry);
	w->nrunning++;
	if (!json_is_object(params)) {
		worker_task_fail(t, FAIL_BAD_TASK, "/params: must be an object");
		return;
	}
	run = json_string_value(json_object_get(task, "run"));
	if (worker_check_token(w, task, run, params, err, sizeof err) != 0) {
		refusal = json_pack("{s:s, s:s, s:s}", "kind", FAIL_TOKEN,
		    "reason", err, "message", strchr(err, '\0') + 1);
		worker_outcome(t, NULL, refusal);
		json_decref(refusal);
		return;
	}
	t->ws = worker_session(w, json_object_get(params, "server"),
	    run != NULL ? run : "", err, sizeof err);
	if (t->ws == NULL) {
		worker_task_fail(t, FAIL_BAD_TASK, err);
		return;
	}
	t->ws->nactive++;
	t->session = t->ws->mcpc;
	if (strcmp(t->kind, TASK_MCP_CALL) == 0) {
		worker_call(t, params);
	} else if (strcmp(t->kind, TASK_MCP_LIST) == 0) {
		worker_list(t, params);
	} else {
		snprintf(err, sizeof err, "/kind: unknown task kind '%s'",
		    t->kind);
		worker_task_fail(t, FAIL_BAD_TASK, err);
	}
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

	/* Steps the coordinator cancelled: tell their servers. */
	json_array_foreach(json_object_get(result, "cancel"), i, it) {
		TAILQ_FOREACH_SAFE(t, &w->running, entry, next) {
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
static void
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
	buf = jrpc_dump(msg, &len, 0);
	json_decref(msg);
	if (fault_hit("worker.second_hello"))
		again = xstrndup(buf, len);
	/* The secret is spent: nothing of it stays in our memory. */
	if (w->secret != NULL) {
		OPENSSL_clear_free(w->secret, strlen(w->secret));
		w->secret = NULL;
	}
	nng_msg_alloc(&nm, 0);
	nng_msg_append(nm, buf, len);
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
		fprintf(stderr, "weft worker %d: %s\n", w->id, m.error_message);
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

static void
worker_usage(FILE *f)
{
	fprintf(f,
"usage: weft worker --enroll-fd N [--slots K] [--no-seccomp] [-v]\n"
"\n"
"Run a worker: dial the coordinator, prove who it is with the secret of\n"
"its enrolment, take tasks (MCP tool calls) and report their outcomes.\n"
"`weft run` starts and enrols its own workers; there is no need to run\n"
"this by hand.  (Workers joining `weft serve` from another machine are\n"
"not supported yet.)\n"
"\n"
"  --enroll-fd N   read the enrolment from descriptor N: the coordinator's\n"
"                  address, the worker id and a one-time secret, written\n"
"                  by the coordinator that started it (docs/PROTOCOL.md)\n"
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
	char *end;
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
			return 2;
		}
	}
	if (fd < 0 || w.slots < 1) {
		worker_usage(stderr);
		return 2;
	}
	if ((enrolment = worker_enrolment(&w, (int)fd, &scratch)) == NULL)
		return 2;
	/* A local worker must not outlive the coordinator that started it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
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
	for (tries = 0; (rv = nng_dial(w.sock, w.url, NULL, 0)) != 0;
	    tries++) {
		if (tries == 50)
			fatalx(1, "worker %d: cannot connect to %s: %s", w.id,
			    w.url, nng_strerror(rv));
		usleep(20000);
	}
	worker_confine(&w);
	if (worker_hello(&w) != 0)
		return 1;
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
	worker_pump(&w);
	event_base_dispatch(w.base);

	while ((s = LIST_FIRST(&w.sessions)) != NULL)
		worker_session_free(s);
	worker_scratch_sweep(&w);
	worker_release(&w);
	/*
	 * No nng_close: closing a REQ socket can wait on its pipe's reaper
	 * for seconds after the coordinator went away; the process exits
	 * now and the kernel closes the connection.
	 */
	return 0;
}
