/*
 * serve_runs.c: an MCP tools/call as a recorded weft run in a child process.
 *
 * The child is `weft run FILE --json --run-id ID --input-file /dev/stdin`
 * with the arguments in a memfd as its stdin: its stdout carries the
 * outcome object, its stderr the reason when it could not start.  While it
 * runs, a 100 ms timer reads the run's new events from the store and sends
 * them as progress notifications and log messages; the last read happens
 * after the child exited, so a fast run still reports every step before
 * its answer.
 */
#include "config.h"

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "engine/serve_int.h"
#include "engine/schema.h"
#include "engine/store.h"
#include "runtime/util.h"
#include "runtime/proc.h"

#define RUN_MAX_STDOUT	(16u * 1024 * 1024)
#define RUN_MAX_STDERR	(8u * 1024)
#define RUN_POLL_MS	100

struct serve_run {
	TAILQ_ENTRY(serve_run) entry;
	struct serve	*srv;
	struct mcps_call *call;		/* the tools/call it answers */
	struct serve_tool *tool;
	char		 id[17];
	char		 secret[65];	/* its key to serve_client.c */
	pid_t		 pid;
	int		 fd[2];		/* stdout, stderr of the child */
	struct event	*ev[2];
	char		*buf[2];
	size_t		 len[2];
	int		 reaped, status, cancelled, done;
	int64_t		 seen;
	int		 sent;		/* notifications sent by the last poll */
	struct event	*answer_ev;
};

static void run_finish(struct serve_run *);

/* A new event of the run: progress and a log message for its client. */
static int
run_event_cb(void *arg, const struct store_event *e)
{
	struct serve_run *r = arg;
	int level;
	char *msg;

	if (e->seq <= r->seen)
		return 0;
	r->seen = e->seq;
	if (mcps_call_conn(r->call) == NULL)
		return 0;
	msg = xasprintf("%s %s", e->kind, e->node_path && *e->node_path ?
	    e->node_path : r->tool->name);
	r->sent += mcps_call_progress(r->call, msg);
	level = strncmp(e->kind, "node.", 5) == 0 ||
	    strncmp(e->kind, "run.", 4) == 0 ? MCPS_LOG_INFO : MCPS_LOG_DEBUG;
	r->sent += mcps_call_log(r->call, level, json_pack("{s:s, s:I, s:s, "
	    "s:s, s:s}", "run", r->id, "seq", (json_int_t)e->seq, "kind",
	    e->kind, "path", e->node_path ? e->node_path : "", "message",
	    msg));
	free(msg);
	return 0;
}

static void
run_poll(struct serve_run *r)
{
	store_events_foreach(r->srv->st, r->id, run_event_cb, r);
}

static void
run_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct serve *s = arg;
	struct serve_run *r;

	(void)fd;
	(void)what;
	TAILQ_FOREACH(r, &s->runs, entry)
		if (!r->done)
			run_poll(r);
}

/* Read what the child wrote on stdout (i = 0) or stderr (i = 1). */
static void
run_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct serve_run *r = arg;
	int i = fd == r->fd[0] ? 0 : 1;
	size_t cap = i == 0 ? RUN_MAX_STDOUT : RUN_MAX_STDERR;
	char tmp[65536];
	ssize_t n;

	(void)what;
	n = read(fd, tmp, sizeof tmp);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		/* Past the cap, read on and drop: closing the pipe would
		   kill the child with SIGPIPE. */
		if (r->len[i] + (size_t)n > cap)
			n = (ssize_t)(cap - r->len[i]);
		if (n == 0)
			return;
		r->buf[i] = xrealloc(r->buf[i], r->len[i] + n + 1);
		memcpy(r->buf[i] + r->len[i], tmp, n);
		r->len[i] += n;
		r->buf[i][r->len[i]] = '\0';
		return;
	}
	event_free(r->ev[i]);
	r->ev[i] = NULL;
	close(r->fd[i]);
	r->fd[i] = -1;
	run_finish(r);
}

/* The tool result for a succeeded run's output. */
static json_t *
run_output_result(struct serve_run *r, json_t *out)
{
	json_t *meta = r->tool->meta, *osch = json_object_get(meta,
	    "output_schema"), *c, *b, *res;
	const char *fmt = json_string_value(json_object_get(meta,
	    "output_format"));
	char err[512], *text;
	size_t i;

	if (fmt != NULL && strcmp(fmt, "mcp") == 0) {
		c = json_object_get(out, "content");
		json_array_foreach(c, i, b)
			if (!json_is_string(json_object_get(b, "type")))
				break;
		if (!json_is_array(c) || i != json_array_size(c))
			return mcps_tool_error("workflow '%s' has output_format "
			    "\"mcp\" but its output is not { content = { { type "
			    "= ..., ... }, ... } }", r->tool->name);
		res = json_pack("{s:O}", "content", c);
		if (json_is_true(json_object_get(out, "isError")))
			json_object_set_new(res, "isError", json_true());
		if ((c = json_object_get(out, "structuredContent")) != NULL)
			json_object_set(res, "structuredContent", c);
		return res;
	}
	if (osch != NULL && (!json_is_object(out) ||
	    schema_validate(osch, out, err, sizeof err) != 0))
		return mcps_tool_error("workflow '%s': output does not match "
		    "its output_schema: %s", r->tool->name, json_is_object(out) ?
		    err : "not an object");
	text = json_is_string(out) ? xstrdup(json_string_value(out)) :
	    json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);
	res = json_pack("{s:[{s:s, s:s}]}", "content", "type", "text", "text",
	    text ? text : "");
	free(text);
	if (osch != NULL)
		json_object_set(res, "structuredContent", out);
	return res;
}

/* The tool result for a finished child. */
static json_t *
run_result(struct serve_run *r)
{
	json_t *o = NULL, *res;
	const char *status, *error;
	char how[64];

	if (r->buf[0] != NULL)
		o = json_loads(r->buf[0], 0, NULL);
	status = json_string_value(json_object_get(o, "status"));
	if (status == NULL) {
		proc_status_str(r->status, how, sizeof how);
		res = mcps_tool_error("workflow '%s' did not run (%s): %s",
		    r->tool->name, how, r->buf[1] ? r->buf[1] : "no message");
	} else if (strcmp(status, "succeeded") == 0)
		res = run_output_result(r, json_object_get(o, "output"));
	else {
		error = json_string_value(json_object_get(o, "error"));
		res = mcps_tool_error("run %s %s: %s", r->id, status,
		    error ? error : "no message");
	}
	json_object_set_new(res, "_meta", json_pack("{s:s, s:s}", "weft/run",
	    r->id, "weft/status", status ? status : "not started"));
	json_decref(o);
	return res;
}

static void
run_free(struct serve_run *r)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (r->ev[i] != NULL)
			event_free(r->ev[i]);
		if (r->fd[i] >= 0)
			close(r->fd[i]);
		free(r->buf[i]);
	}
	if (r->answer_ev != NULL)
		event_free(r->answer_ev);
	free(r);
}

/* Send the call's answer and forget the run. */
static void
run_answer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct serve_run *r = arg;
	struct serve *s = r->srv;
	struct mcps_conn *cn = mcps_call_conn(r->call);
	char *uri;

	(void)fd;
	(void)what;
	TAILQ_REMOVE(&s->runs, r, entry);
	if (--s->nruns == 0)
		evtimer_del(s->poll_ev);
	mcps_call_done(r->call, cn != NULL ? run_result(r) : NULL);
	if (cn != NULL) {
		uri = xasprintf(SERVE_RUN_PREFIX "%s", r->id);
		mcps_conn_updated(cn, uri);
		free(uri);
	}
	run_free(r);
}

/*
 * The child has exited and closed its pipes: report its last steps, then
 * answer.  The TypeScript SDK handles notifications a microtask later but
 * responses at once, so an answer read together with progress
 * notifications would overtake them and the client would drop them as
 * "unknown token": when the last poll sent any, the answer waits 20 ms.
 */
static void
run_finish(struct serve_run *r)
{
	struct timeval tv = { 0, 20 * 1000 };

	if (!r->reaped || r->fd[0] >= 0 || r->fd[1] >= 0 || r->done)
		return;
	r->done = 1;
	r->sent = 0;
	run_poll(r);
	if (r->srv->opts.verbose)
		fprintf(stderr, "weft: tool %s: run %s ended\n", r->tool->name,
		    r->id);
	if (r->sent == 0) {
		run_answer_cb(-1, 0, r);
		return;
	}
	r->answer_ev = evtimer_new(r->srv->base, run_answer_cb, r);
	evtimer_add(r->answer_ev, &tv);
}

static void
run_chld_cb(evutil_socket_t fd, short what, void *arg)
{
	struct serve *s = arg;
	struct serve_run *r, *next;
	pid_t pid;
	int st;

	(void)fd;
	(void)what;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		TAILQ_FOREACH_SAFE(r, &s->runs, entry, next)
			if (r->pid == pid) {
				r->reaped = 1;
				r->status = st;
				run_finish(r);
				break;
			}
}

/* A memfd holding the run's input, positioned at its start. */
static int
run_input_fd(json_t *args)
{
	char *text = json_dumps(args, JSON_COMPACT);
	size_t len = strlen(text), off = 0;
	ssize_t n;
	int fd;

	if ((fd = memfd_create("weft-input", MFD_CLOEXEC)) < 0) {
		free(text);
		return -1;
	}
	while (off < len) {
		if ((n = write(fd, text + off, len - off)) < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			free(text);
			return -1;
		}
		off += n;
	}
	free(text);
	lseek(fd, 0, SEEK_SET);
	return fd;
}

/*
 * The child's environment: ours, without the variables of a server we may
 * run under, plus the run's URL and secret for reaching its client
 * (serve_client.c, w.mcp_client()).
 */
static char **
run_env(struct serve_run *r)
{
	extern char **environ;
	char **env;
	size_t n = 0, i;

	for (i = 0; environ[i] != NULL; i++)
		;
	env = xcalloc(i + 3, sizeof *env);
	for (i = 0; environ[i] != NULL; i++)
		if (strncmp(environ[i], "WEFT_MCP_CLIENT_", 16) != 0)
			env[n++] = xstrdup(environ[i]);
	env[n++] = xasprintf("WEFT_MCP_CLIENT_URL=http://127.0.0.1:%d/client/%s",
	    r->srv->client_port, r->id);
	env[n++] = xasprintf("WEFT_MCP_CLIENT_TOKEN=%s", r->secret);
	return env;
}

/* Start the child; 0, or -1 with a message in err. */
static int
run_spawn(struct serve_run *r, json_t *args, char *err, size_t errlen)
{
	struct serve *s = r->srv;
	struct proc_spec ps;
	char workers[16];
	char *argv[] = { s->exe, "run", r->tool->path, "--json", "--run-id",
	    r->id, "--db", s->db, "--workers", workers, "--input-file",
	    "/dev/stdin", NULL };
	int out[2] = { -1, -1 }, errp[2] = { -1, -1 }, in, rv = -1;
	char **envp = NULL;

	snprintf(workers, sizeof workers, "%d", s->opts.run_workers);
	if ((in = run_input_fd(args)) < 0 || pipe2(out, O_CLOEXEC) != 0 ||
	    pipe2(errp, O_CLOEXEC) != 0) {
		errf(err, errlen, "cannot set up the run: %s", strerror(errno));
		goto out;
	}
	memset(&ps, 0, sizeof ps);
	ps.envp = envp = run_env(r);
	ps.argv = argv;
	ps.stdin_fd = in;
	ps.stdout_fd = out[1];
	ps.stderr_fd = errp[1];
	ps.pdeathsig = SIGTERM;
	if (proc_spawn(&ps, &r->pid, err, errlen) != 0)
		goto out;
	r->fd[0] = out[0];
	r->fd[1] = errp[0];
	out[0] = errp[0] = -1;
	rv = 0;
out:
	strv_free(envp);
	if (in >= 0)
		close(in);
	if (out[0] >= 0)
		close(out[0]);
	if (errp[0] >= 0)
		close(errp[0]);
	if (out[1] >= 0)
		close(out[1]);
	if (errp[1] >= 0)
		close(errp[1]);
	return rv;
}

void
serve_run_start(struct serve *s, struct mcps_call *c, struct serve_tool *t,
    json_t *args)
{
	struct mcps_conn *cn = mcps_call_conn(c);
	const char *owner = cn != NULL ? mcps_conn_owner(cn) : NULL;
	struct serve_run *r;
	struct timeval tv = { 0, RUN_POLL_MS * 1000 };
	char err[512];
	int i;

	if (s->nruns >= s->opts.max_runs) {
		mcps_call_done(c, mcps_tool_error("the server is running %d "
		    "workflows, its limit (weft mcp/serve --max-runs); try "
		    "again later", s->nruns));
		return;
	}
	r = xcalloc(1, sizeof *r);
	r->srv = s;
	r->call = c;
	r->tool = t;
	r->fd[0] = r->fd[1] = -1;
	random_hex(r->id, 8);
	random_hex(r->secret, 32);
	/* The owner first: a run of a session is never without one. */
	if (owner != NULL && serve_owner_put(s, r->id, owner, err,
	    sizeof err) != 0) {
		mcps_call_done(c, mcps_tool_error("cannot start workflow "
		    "'%s': %s", t->name, err));
		run_free(r);
		return;
	}
	if (run_spawn(r, args, err, sizeof err) != 0) {
		mcps_call_done(c, mcps_tool_error("cannot start workflow "
		    "'%s': %s", t->name, err));
		run_free(r);
		return;
	}
	for (i = 0; i < 2; i++) {
		evutil_make_socket_nonblocking(r->fd[i]);
		r->ev[i] = event_new(s->base, r->fd[i], EV_READ | EV_PERSIST,
		    run_read_cb, r);
		event_add(r->ev[i], NULL);
	}
	TAILQ_INSERT_TAIL(&s->runs, r, entry);
	if (s->nruns++ == 0)
		evtimer_add(s->poll_ev, &tv);
	if (s->opts.verbose)
		fprintf(stderr, "weft: tool %s: run %s started (pid %d)\n",
		    t->name, r->id, (int)r->pid);
}

struct serve_run *
serve_run_find(struct serve *s, const char *id)
{
	struct serve_run *r;

	TAILQ_FOREACH(r, &s->runs, entry)
		if (!r->done && strcmp(r->id, id) == 0)
			return r;
	return NULL;
}

struct mcps_call *
serve_run_call(struct serve_run *r)
{
	return r->call;
}

/* Constant-time comparison with the run's secret. */
int
serve_run_secret_ok(struct serve_run *r, const char *secret)
{
	unsigned char d = 0;
	size_t i;

	if (strlen(secret) != 64)
		return 0;
	for (i = 0; i < 64; i++)
		d |= (unsigned char)(r->secret[i] ^ secret[i]);
	return d == 0;
}

int
serve_run_cancel(struct serve *s, struct mcps_call *c, int gone)
{
	struct serve_run *r;

	TAILQ_FOREACH(r, &s->runs, entry)
		if (r->call == c)
			break;
	if (r == NULL)
		return 0;
	if (gone) {
		/* The session left: the run's answer has nowhere to go. */
		if (!r->cancelled && !r->reaped)
			kill(r->pid, SIGTERM);
		r->cancelled = 1;
		return 1;
	}
	if (r->cancelled || r->done)
		return 0;
	r->cancelled = 1;
	kill(r->pid, SIGTERM);
	if (s->opts.verbose)
		fprintf(stderr, "weft: run %s cancelled by the client\n", r->id);
	return 1;
}

int
serve_runs_init(struct serve *s)
{
	s->chld_ev = evsignal_new(s->base, SIGCHLD, run_chld_cb, s);
	s->poll_ev = event_new(s->base, -1, EV_PERSIST, run_poll_cb, s);
	if (s->chld_ev == NULL || s->poll_ev == NULL ||
	    event_add(s->chld_ev, NULL) != 0)
		return -1;
	return 0;
}

void
serve_runs_free(struct serve *s)
{
	struct serve_run *r;
	struct timespec ts = { 0, 50 * 1000 * 1000 };
	int i, st, left;

	if (s->runs.tqh_first == NULL && s->chld_ev == NULL)
		return;
	TAILQ_FOREACH(r, &s->runs, entry)
		if (!r->reaped)
			kill(r->pid, SIGTERM);
	/* The runs record themselves as cancelled; give them 10 s. */
	for (i = 0; i < 200; i++) {
		left = 0;
		TAILQ_FOREACH(r, &s->runs, entry)
			if (!r->reaped && waitpid(r->pid, &st, WNOHANG) == 0)
				left++;
			else
				r->reaped = 1;
		if (left == 0)
			break;
		nanosleep(&ts, NULL);
	}
	while ((r = TAILQ_FIRST(&s->runs)) != NULL) {
		if (!r->reaped) {
			kill(r->pid, SIGKILL);
			waitpid(r->pid, &st, 0);
		}
		TAILQ_REMOVE(&s->runs, r, entry);
		mcps_call_done(r->call, NULL);
		run_free(r);
	}
	s->nruns = 0;
	if (s->chld_ev != NULL)
		event_free(s->chld_ev);
	if (s->poll_ev != NULL)
		event_free(s->poll_ev);
	s->chld_ev = s->poll_ev = NULL;
}
