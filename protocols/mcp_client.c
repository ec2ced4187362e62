/* mcp_client.c: MCP over stdio, newline-delimited JSON-RPC. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "engine/util.h"
#include "protocols/jsonrpc.h"
#include "protocols/mcp_client.h"
#include "runtime/proc.h"
#include "runtime/sandbox.h"
#include "runtime/wire.h"

#define MCPC_MAX_LINE	(64 * 1024 * 1024)
#define MCPC_ERR_TAIL	1024

extern char **environ;

struct mcpc_req {
	int64_t			 id;
	char			*method;
	json_t			*params;	/* until sent */
	mcpc_cb			 cb;
	void			*arg;
	TAILQ_ENTRY(mcpc_req)	 entry;
};
TAILQ_HEAD(mcpc_req_list, mcpc_req);

enum mcpc_state { MCPC_IDLE, MCPC_INIT, MCPC_READY };

struct mcpc {
	struct event_base	*base;
	char			*name;
	char			**argv;
	char			**envp;		/* NULL: inherit */
	char			*cwd;
	struct sandbox_profile	*sb;		/* NULL: no sandbox */
	struct sandbox_report	 sbrep;		/* of the last start */
	unsigned		 starts;
	int			 notify_fd;	/* debug sandbox: listener */
	struct event		*notify_ev;
	json_t			*denied;	/* names of denied calls */
	enum mcpc_state		 state;
	pid_t			 pid;
	int			 status;	/* wait status once reaped */
	int			 reaped;
	int			 in_fd, out_fd, err_fd;
	struct event		*out_ev, *in_ev, *err_ev;
	struct evbuffer		*outbuf;
	struct linebuf		*lb;
	char			 errtail[MCPC_ERR_TAIL];
	size_t			 errlen;
	int64_t			 next_id;
	int64_t			 init_id;
	struct mcpc_req_list	 waiting;	/* until initialized */
	struct mcpc_req_list	 sent;		/* awaiting answers */
};

static void	mcpc_stop(struct mcpc *, const char *kind, const char *msg);

const char *
mcpc_name(const struct mcpc *s)
{
	return s->name;
}

pid_t
mcpc_pid(const struct mcpc *s)
{
	return s->state == MCPC_IDLE ? -1 : s->pid;
}

/* Fail one request with {kind, message}. */
static void
mcpc_req_fail(struct mcpc_req *r, const char *kind, const char *msg)
{
	json_t *e = json_pack("{s:s, s:s}", "kind", kind, "message", msg);

	r->cb(r->arg, NULL, e);
	json_decref(e);
}

static void
mcpc_req_free(struct mcpc_req *r)
{
	free(r->method);
	json_decref(r->params);
	free(r);
}

/* Queue a JSON-RPC message on the server's stdin. */
static void
mcpc_write(struct mcpc *s, json_t *msg)
{
	char *buf;
	size_t len;

	buf = jrpc_dump(msg, &len, 1);
	evbuffer_add(s->outbuf, buf, len);
	free(buf);
	if (s->in_ev != NULL)
		event_add(s->in_ev, NULL);
}

/* Send a queued request to the running server. */
static void
mcpc_send(struct mcpc *s, struct mcpc_req *r)
{
	json_t *msg;

	r->id = ++s->next_id;
	msg = jrpc_request(json_integer(r->id), r->method, r->params);
	r->params = NULL;
	mcpc_write(s, msg);
	json_decref(msg);
	TAILQ_INSERT_TAIL(&s->sent, r, entry);
}

/* stdin of the server is writable: drain the buffer. */
static void
mcpc_in_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mcpc *s = arg;
	int n;

	n = evbuffer_write(s->outbuf, fd);
	if (n < 0 && errno != EAGAIN && errno != EINTR) {
		mcpc_stop(s, FAIL_SERVER_EXITED, "its stdin was closed");
		return;
	}
	if (evbuffer_get_length(s->outbuf) == 0)
		event_del(s->in_ev);
}

/* Keep the tail of the server's stderr for error messages. */
static void
mcpc_err_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mcpc *s = arg;
	char buf[4096];
	ssize_t n;
	size_t keep;

	n = read(fd, buf, sizeof buf);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			event_del(s->err_ev);
		return;
	}
	if ((size_t)n >= MCPC_ERR_TAIL) {
		memcpy(s->errtail, buf + n - MCPC_ERR_TAIL, MCPC_ERR_TAIL);
		s->errlen = MCPC_ERR_TAIL;
		return;
	}
	keep = MCPC_ERR_TAIL - (size_t)n;
	if (s->errlen > keep) {
		memmove(s->errtail, s->errtail + (s->errlen - keep), keep);
		s->errlen = keep;
	}
	memcpy(s->errtail + s->errlen, buf, n);
	s->errlen += n;
}

/* The last line the server wrote to stderr, for messages. */
static void
mcpc_last_err(struct mcpc *s, char *out, size_t len)
{
	size_t end = s->errlen, start;

	while (end > 0 && (s->errtail[end - 1] == '\n' ||
	    s->errtail[end - 1] == '\r' || s->errtail[end - 1] == ' '))
		end--;
	start = end;
	while (start > 0 && s->errtail[start - 1] != '\n')
		start--;
	if (end == start) {
		out[0] = '\0';
		return;
	}
	snprintf(out, len, "; its stderr said: %.*s", (int)(end - start),
	    s->errtail + start);
}

/* Debug sandbox: the server made a denied call; name it, answer EPERM. */
static void
mcpc_notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mcpc *s = arg;
	char name[96];
	size_t i;
	pid_t pid;

	if (sandbox_notify_answer(fd, &pid, name, sizeof name) != 0) {
		event_free(s->notify_ev);
		s->notify_ev = NULL;
		close(s->notify_fd);
		s->notify_fd = -1;
		return;
	}
	fprintf(stderr, "weft: sandbox debug: MCP server '%s' (pid %ld) "
	    "called %s: denied with EPERM\n", s->name, (long)pid, name);
	for (i = 0; i < json_array_size(s->denied); i++)
		if (strcmp(json_string_value(json_array_get(s->denied, i)),
		    name) == 0)
			return;
	if (json_array_size(s->denied) < 64)
		json_array_append_new(s->denied, json_string(name));
}

/* Answer every notification already queued on the listener. */
static void
mcpc_notify_drain(struct mcpc *s)
{
	struct pollfd p;

	while (s->notify_fd >= 0) {
		p.fd = s->notify_fd;
		p.events = POLLIN;
		if (poll(&p, 1, 0) != 1 || !(p.revents & POLLIN))
			break;
		mcpc_notify_cb(s->notify_fd, EV_READ, s);
	}
}

/* The initialize answer arrived: finish the handshake, send the queue. */
static void
mcpc_initialized(struct mcpc *s, struct jrpc_msg *m)
{
	struct mcpc_req *r;
	json_t *n;
	char msg[512];

	if (m->kind == JRPC_ERROR_RESPONSE) {
		snprintf(msg, sizeof msg, "initialize failed: %s (%d)",
		    m->error_message, m->error_code);
		mcpc_stop(s, FAIL_PROTOCOL, msg);
		return;
	}
	if (!json_is_string(json_object_get(m->result, "protocolVersion"))) {
		mcpc_stop(s, FAIL_PROTOCOL,
		    "initialize answer lacks /result/protocolVersion");
		return;
	}
	n = jrpc_notification("notifications/initialized", NULL);
	mcpc_write(s, n);
	json_decref(n);
	s->state = MCPC_READY;
	while ((r = TAILQ_FIRST(&s->waiting)) != NULL) {
		TAILQ_REMOVE(&s->waiting, r, entry);
		mcpc_send(s, r);
	}
}

/* Answer a server->client request: we offer no client features yet. */
static void
mcpc_server_request(struct mcpc *s, struct jrpc_msg *m)
{
	json_t *a;

	if (strcmp(m->method, "ping") == 0)
		a = jrpc_result(json_incref(m->id), json_object());
	else
		a = jrpc_error(json_incref(m->id), JRPC_METHOD_NOT_FOUND,
		    "method not supported by this client", NULL);
	mcpc_write(s, a);
	json_decref(a);
}

/* One line from the server's stdout. */
static int
mcpc_line(struct mcpc *s, const char *line, size_t len)
{
	struct jrpc_msg m;
	struct mcpc_req *r;
	char err[256], msg[512];
	json_t *e;
	int code;
	int64_t id;

	if (jrpc_parse(line, len, &m, &code, err, sizeof err) != 0) {
		snprintf(msg, sizeof msg, "sent malformed JSON-RPC: %s", err);
		mcpc_stop(s, FAIL_PROTOCOL, msg);
		return -1;
	}
	switch (m.kind) {
	case JRPC_NOTIFICATION:
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
		TAILQ_FOREACH(r, &s->sent, entry)
			if (r->id == id)
				break;
		if (r == NULL)
			break;
		TAILQ_REMOVE(&s->sent, r, entry);
		if (m.kind == JRPC_RESPONSE) {
			r->cb(r->arg, m.result, NULL);
		} else {
			e = json_pack("{s:s, s:o, s:i}", "kind", FAIL_RPC,
			    "message", json_sprintf("MCP server '%s' answered "
			    "error %d: %s", s->name, m.error_code,
			    m.error_message), "code", m.error_code);
			r->cb(r->arg, NULL, e);
			json_decref(e);
		}
		mcpc_req_free(r);
		break;
	}
	jrpc_msg_clear(&m);
	return 0;
}

/* The server's stdout is readable. */
static void
mcpc_out_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mcpc *s = arg;
	char buf[65536];
	const char *line;
	size_t len;
	ssize_t n;
	int rv;

	n = read(fd, buf, sizeof buf);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		mcpc_stop(s, FAIL_SERVER_EXITED, strerror(errno));
		return;
	}
	if (n == 0) {
		mcpc_stop(s, FAIL_SERVER_EXITED, NULL);
		return;
	}
	linebuf_feed(s->lb, buf, n);
	while (s->lb != NULL &&
	    (rv = linebuf_next(s->lb, &line, &len)) != 0) {
		if (rv < 0) {
			mcpc_stop(s, FAIL_PROTOCOL, "sent a line over 64 MiB");
			return;
		}
		if (mcpc_line(s, line, len) != 0)
			return;
	}
}

/* Start the server process and send initialize. */
static int
mcpc_start(struct mcpc *s, char *err, size_t errlen)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, ep[2] = { -1, -1 };
	struct proc_spec ps;
	struct sandbox *sb = NULL;
	json_t *params, *msg;
	const char *path = NULL;
	size_t i;

	if (pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1 ||
	    pipe2(ep, O_CLOEXEC) == -1) {
		errf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	memset(&ps, 0, sizeof ps);
	ps.argv = s->argv;
	ps.envp = s->envp;
	ps.cwd = s->cwd;
	ps.stdin_fd = in[0];
	ps.stdout_fd = out[1];
	ps.stderr_fd = ep[1];
	ps.pdeathsig = SIGKILL;
	if (s->sb != NULL) {
		for (i = 0; s->envp != NULL && s->envp[i] != NULL; i++)
			if (strncmp(s->envp[i], "PATH=", 5) == 0)
				path = s->envp[i] + 5;
		if (sandbox_prepare(s->sb, s->argv[0], path, s->cwd, &sb, err,
		    errlen) != 0)
			goto fail;
		memset(&s->sbrep, 0, sizeof s->sbrep);
		ps.sandbox = sb;
		ps.report = &s->sbrep;
		ps.notify_fd = &s->notify_fd;
	}
	if (proc_spawn(&ps, &s->pid, err, errlen) != 0) {
		sandbox_free(sb);
		goto fail;
	}
	sandbox_free(sb);
	s->starts++;
	if (s->notify_fd >= 0) {
		s->notify_ev = event_new(s->base, s->notify_fd,
		    EV_READ | EV_PERSIST, mcpc_notify_cb, s);
		event_add(s->notify_ev, NULL);
	}
	close(in[0]);
	close(out[1]);
	close(ep[1]);
	s->in_fd = in[1];
	s->out_fd = out[0];
	s->err_fd = ep[0];
	fcntl(s->in_fd, F_SETFL, O_NONBLOCK);
	fcntl(s->out_fd, F_SETFL, O_NONBLOCK);
	fcntl(s->err_fd, F_SETFL, O_NONBLOCK);
	s->reaped = 0;
	s->errlen = 0;
	s->lb = linebuf_new(MCPC_MAX_LINE);
	s->outbuf = evbuffer_new();
	s->in_ev = event_new(s->base, s->in_fd, EV_WRITE | EV_PERSIST,
	    mcpc_in_cb, s);
	s->out_ev = event_new(s->base, s->out_fd, EV_READ | EV_PERSIST,
	    mcpc_out_cb, s);
	s->err_ev = event_new(s->base, s->err_fd, EV_READ | EV_PERSIST,
	    mcpc_err_cb, s);
	event_add(s->out_ev, NULL);
	event_add(s->err_ev, NULL);
	s->state = MCPC_INIT;
	s->init_id = ++s->next_id;
	params = json_pack("{s:s, s:{}, s:{s:s, s:s}}", "protocolVersion",
	    MCP_PROTOCOL_VERSION, "capabilities", "clientInfo", "name", "weft",
	    "version", PACKAGE_VERSION);
	msg = jrpc_request(json_integer(s->init_id), "initialize", params);
	mcpc_write(s, msg);
	json_decref(msg);
	return 0;
fail:
	if (in[0] >= 0) { close(in[0]); close(in[1]); }
	if (out[0] >= 0) { close(out[0]); close(out[1]); }
	if (ep[0] >= 0) { close(ep[0]); close(ep[1]); }
	return -1;
}

/* Say which sandbox limit a death by signal points to. */
static void
mcpc_limit_hint(struct mcpc *s, char *out, size_t len)
{
	int sig;

	if (s->sb == NULL || !WIFSIGNALED(s->status))
		return;
	sig = WTERMSIG(s->status);
	if (sig == SIGXCPU)
		snprintf(out, len, " (the sandbox's CPU limit is %lld s; the "
		    "next call starts a fresh server)", s->sb->cpu);
	else if (sig == SIGXFSZ)
		snprintf(out, len, " (the sandbox's file size limit is %lld "
		    "bytes)", s->sb->file_size);
	else if (sig == SIGSYS)
		snprintf(out, len, " (a system call from another "
		    "architecture: the sandbox's seccomp filter kills it)");
}

/*
 * Stop the server and fail every pending request.  kind/msg describe why;
 * for an exit, msg is NULL and the exit status is reported.
 */
static void
mcpc_stop(struct mcpc *s, const char *kind, const char *why)
{
	struct mcpc_req_list reqs;
	struct mcpc_req *r;
	char how[128], tail[300], msg[1024];
	int i, status;

	if (s->state == MCPC_IDLE)
		return;
	event_free(s->in_ev);
	event_free(s->out_ev);
	mcpc_err_cb(s->err_fd, EV_READ, s);
	event_free(s->err_ev);
	s->in_ev = s->out_ev = s->err_ev = NULL;
	if (s->notify_ev != NULL) {
		/* Answer what is pending, so the server is not stuck. */
		mcpc_notify_drain(s);
		if (s->notify_ev != NULL)
			event_free(s->notify_ev);
		s->notify_ev = NULL;
	}
	if (s->notify_fd >= 0) {
		close(s->notify_fd);
		s->notify_fd = -1;
	}
	close(s->in_fd);
	close(s->out_fd);
	close(s->err_fd);
	/* stdin is closed: give the server a moment to exit, then TERM and
	   KILL it; reaping it here lets the message say how it died. */
	for (i = 0; i < 100 && !s->reaped; i++) {
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			s->reaped = 1;
			s->status = status;
			break;
		}
		if (i == 25)
			kill(s->pid, SIGTERM);
		if (i == 75)
			kill(s->pid, SIGKILL);
		usleep(2000);
	}
	mcpc_last_err(s, tail, sizeof tail);
	if (why == NULL && s->reaped)
		mcpc_limit_hint(s, tail + strlen(tail),
		    sizeof tail - strlen(tail));
	if (why != NULL) {
		snprintf(msg, sizeof msg, "MCP server '%s' %s%s", s->name, why,
		    tail);
	} else {
		if (s->reaped)
			proc_status_str(s->status, how, sizeof how);
		else
			snprintf(how, sizeof how, "closed its stdout");
		snprintf(msg, sizeof msg, "MCP server '%s' %s during the "
		    "call%s", s->name, how, tail);
	}
	linebuf_free(s->lb);
	s->lb = NULL;
	evbuffer_free(s->outbuf);
	s->outbuf = NULL;
	s->state = MCPC_IDLE;
	TAILQ_INIT(&reqs);
	TAILQ_CONCAT(&reqs, &s->sent, entry);
	TAILQ_CONCAT(&reqs, &s->waiting, entry);
	while ((r = TAILQ_FIRST(&reqs)) != NULL) {
		TAILQ_REMOVE(&reqs, r, entry);
		mcpc_req_fail(r, kind, msg);
		mcpc_req_free(r);
	}
}

void
mcpc_reaped(struct mcpc *s, int status)
{
	s->reaped = 1;
	s->status = status;
}

/* Copy the string array at key, or NULL. */
static char **
mcpc_strv(json_t *arr)
{
	char **v;
	size_t i;

	v = xcalloc(json_array_size(arr) + 1, sizeof *v);
	for (i = 0; i < json_array_size(arr); i++)
		v[i] = xstrdup(json_string_value(json_array_get(arr, i)));
	return v;
}

/*
 * Apply the spec's variables to e, which holds n "NAME=value" strings and
 * has room for one more per variable: replace a name e has, append the
 * others.
 */
static void
mcpc_env_set(char **e, size_t n, json_t *env)
{
	const char *k;
	json_t *v;
	size_t j, len;

	json_object_foreach(env, k, v) {
		len = strlen(k);
		for (j = 0; j < n; j++)
			if (strncmp(e[j], k, len) == 0 && e[j][len] == '=')
				break;
		if (j < n)
			free(e[j]);
		else
			n++;
		e[j] = xasprintf("%s=%s", k, json_string_value(v));
	}
}

/*
 * The environment of a sandboxed server: the allowed names from ours, the
 * scratch dir, then the spec's own variables.
 */
static char **
mcpc_sandbox_env(const struct sandbox_profile *sb, json_t *env)
{
	static const char *const keep[] = { "PATH", "HOME", "LANG", "TERM",
	    NULL };
	char **e;
	size_t n = 0, cap, i, j, len;

	for (cap = 0; environ[cap] != NULL; cap++)
		;
	cap += 3 + json_object_size(env);
	e = xcalloc(cap, sizeof *e);
	for (i = 0; environ[i] != NULL; i++) {
		for (j = 0; keep[j] != NULL; j++) {
			len = strlen(keep[j]);
			if (strncmp(environ[i], keep[j], len) == 0 &&
			    environ[i][len] == '=')
				break;
		}
		if (keep[j] == NULL) {
			for (j = 0; sb->env_allow != NULL &&
			    sb->env_allow[j] != NULL; j++) {
				len = strlen(sb->env_allow[j]);
				if (strncmp(environ[i], sb->env_allow[j],
				    len) == 0 && environ[i][len] == '=')
					break;
			}
			if (sb->env_allow == NULL || sb->env_allow[j] == NULL)
				continue;
		}
		e[n++] = xstrdup(environ[i]);
	}
	if (sb->scratch != NULL) {
		e[n++] = xasprintf("WEFT_SCRATCH=%s", sb->scratch);
		e[n++] = xasprintf("TMPDIR=%s", sb->scratch);
	}
	mcpc_env_set(e, n, env);
	return e;
}

/* The environment: ours plus the spec's overrides. */
static char **
mcpc_env(json_t *env)
{
	char **e;
	size_t n = 0, i;

	while (environ[n] != NULL)
		n++;
	e = xcalloc(n + json_object_size(env) + 1, sizeof *e);
	for (i = 0; i < n; i++)
		e[i] = xstrdup(environ[i]);
	mcpc_env_set(e, n, env);
	return e;
}

const struct sandbox_report *
mcpc_sandbox(const struct mcpc *s, const struct sandbox_profile **profile,
    unsigned *starts)
{
	*starts = s->starts;
	if (profile != NULL)
		*profile = s->sb;
	return s->sb != NULL && s->starts > 0 ? &s->sbrep : NULL;
}

json_t *
mcpc_denied(const struct mcpc *s)
{
	return s->denied;
}

struct mcpc *
mcpc_new(struct event_base *base, json_t *spec, struct sandbox_profile *sb,
    char *err, size_t errlen)
{
	json_t *name = json_object_get(spec, "name");
	json_t *cmd = json_object_get(spec, "command");
	json_t *env = json_object_get(spec, "env");
	json_t *cwd = json_object_get(spec, "cwd");
	json_t *v;
	const char *k;
	struct mcpc *s;
	size_t i;

	if (!json_is_string(name)) {
		errf(err, errlen, "/server/name: must be a string");
		return NULL;
	}
	if (!json_is_array(cmd) || json_array_size(cmd) == 0) {
		errf(err, errlen, "/server/command: must be a non-empty array");
		return NULL;
	}
	for (i = 0; i < json_array_size(cmd); i++) {
		if (!json_is_string(json_array_get(cmd, i))) {
			errf(err, errlen, "/server/command/%zu: must be a "
			    "string", i);
			return NULL;
		}
	}
	if (env != NULL && !json_is_object(env)) {
		errf(err, errlen, "/server/env: must be an object");
		return NULL;
	}
	json_object_foreach(env, k, v) {
		if (!json_is_string(v)) {
			errf(err, errlen, "/server/env/%s: must be a string", k);
			return NULL;
		}
	}
	if (cwd != NULL && !json_is_string(cwd)) {
		errf(err, errlen, "/server/cwd: must be a string");
		return NULL;
	}
	s = xcalloc(1, sizeof *s);
	s->base = base;
	s->name = xstrdup(json_string_value(name));
	s->argv = mcpc_strv(cmd);
	if (sb != NULL)
		s->envp = mcpc_sandbox_env(sb, env);
	else
		s->envp = json_object_size(env) > 0 ? mcpc_env(env) : NULL;
	if (cwd != NULL)
		s->cwd = xstrdup(json_string_value(cwd));
	else if (sb != NULL && sb->scratch != NULL)
		s->cwd = xstrdup(sb->scratch);
	s->sb = sb;
	s->notify_fd = -1;
	s->denied = json_array();
	s->pid = -1;
	TAILQ_INIT(&s->waiting);
	TAILQ_INIT(&s->sent);
	return s;
}

void
mcpc_request(struct mcpc *s, const char *method, json_t *params, mcpc_cb cb,
    void *arg)
{
	struct mcpc_req *r = xcalloc(1, sizeof *r);
	char err[512], msg[700];

	r->method = xstrdup(method);
	r->params = params;
	r->cb = cb;
	r->arg = arg;
	if (s->state == MCPC_IDLE && mcpc_start(s, err, sizeof err) != 0) {
		snprintf(msg, sizeof msg, "MCP server '%s': %s", s->name, err);
		mcpc_req_fail(r, FAIL_SERVER_START, msg);
		mcpc_req_free(r);
		return;
	}
	if (s->state == MCPC_READY)
		mcpc_send(s, r);
	else
		TAILQ_INSERT_TAIL(&s->waiting, r, entry);
}

void
mcpc_free(struct mcpc *s)
{
	if (s == NULL)
		return;
	if (s->state != MCPC_IDLE) {
		/* Closing stdin asks the server to exit (MCP stdio rule). */
		close(s->in_fd);
		s->in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		mcpc_stop(s, "cancelled", "was shut down");
	}
	free(s->name);
	strv_free(s->argv);
	strv_free(s->envp);
	free(s->cwd);
	sandbox_profile_free(s->sb);
	json_decref(s->denied);
	free(s);
}
