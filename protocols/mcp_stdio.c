/*
 * mcp_stdio.c: the MCP stdio transport.  The server is a child process
 * (runtime/proc.h), confined by its sandbox profile when it has one;
 * messages are newline-delimited JSON-RPC on its stdin and stdout, and
 * the tail of its stderr is kept to say why it failed.  It is stopped
 * as MCP stdio says: close its stdin, then SIGTERM, then SIGKILL.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "runtime/util.h"
#include "protocols/jsonrpc.h"
#include "protocols/mcp_client_int.h"
#include "runtime/proc.h"
#include "runtime/sandbox.h"
#include "runtime/wire.h"

#define MCPS_MAX_LINE	(64 * 1024 * 1024)
#define MCPS_ERR_TAIL	1024

extern char **environ;

struct mcps {
	struct mcpc		*s;
	struct event_base	*base;
	const char		*name;		/* the session's */
	char			**argv;
	char			**envp;		/* NULL: inherit */
	char			*cwd;
	struct sandbox_profile	*sb;		/* NULL: no sandbox */
	struct sandbox_report	 sbrep;		/* of the last start */
	unsigned		 starts;
	int			 notify_fd;	/* debug sandbox: listener */
	struct event		*notify_ev;
	json_t			*denied;	/* names of denied calls */
	pid_t			 pid;
	int			 status;	/* wait status once reaped */
	int			 reaped;
	int			 in_fd, out_fd, err_fd;
	struct event		*out_ev, *in_ev, *err_ev;
	struct evbuffer		*outbuf;
	struct linebuf		*lb;
	char			 errtail[MCPS_ERR_TAIL];
	size_t			 errlen;
};

/* Queue a message as a line on the server's stdin. */
static void
mcps_send(void *arg, json_t *msg, enum mcpc_msg kind, int64_t id)
{
	struct mcps *t = arg;
	char *buf;
	size_t len;

	buf = jrpc_dump(msg, &len, 1);
	evbuffer_add(t->outbuf, buf, len);
	free(buf);
	if (t->in_ev != NULL)
		event_add(t->in_ev, NULL);
}

/* stdin of the server is writable: drain the buffer. */
static void
mcps_in_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mcps *t = arg;
	int n;

	n = evbuffer_write(t->outbuf, fd);
	if (n < 0 && errno != EAGAIN && errno != EINTR) {
		mcpc_stop(t->s, FAIL_SERVER_EXITED, "its stdin was closed");
		return;
	}
	if (evbuffer_get_length(t->outbuf) == 0)
		event_del(t->in_ev);
}

/* Keep the tail of the server's stderr for error messages. */
static void
mcps_err_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mcps *t = arg;
	char buf[4096];
	ssize_t n;
	size_t keep;

	n = read(fd, buf, sizeof buf);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			event_del(t->err_ev);
		return;
	}
	if ((size_t)n >= MCPS_ERR_TAIL) {
		memcpy(t->errtail, buf + n - MCPS_ERR_TAIL, MCPS_ERR_TAIL);
		t->errlen = MCPS_ERR_TAIL;
		return;
	}
	keep = MCPS_ERR_TAIL - (size_t)n;
	if (t->errlen > keep) {
		memmove(t->errtail, t->errtail + (t->errlen - keep), keep);
		t->errlen = keep;
	}
	memcpy(t->errtail + t->errlen, buf, n);
	t->errlen += n;
}

/* The last line the server wrote to stderr, for messages. */
static void
mcps_last_err(struct mcps *t, char *out, size_t len)
{
	size_t end = t->errlen, start;

	while (end > 0 && (t->errtail[end - 1] == '\n' ||
	    t->errtail[end - 1] == '\r' || t->errtail[end - 1] == ' '))
		end--;
	start = end;
	while (start > 0 && t->errtail[start - 1] != '\n')
		start--;
	if (end == start) {
		out[0] = '\0';
		return;
	}
	snprintf(out, len, "; its stderr said: %.*s", (int)(end - start),
	    t->errtail + start);
}

/* Debug sandbox: the server made a denied call; name it, answer EPERM. */
static void
mcps_notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mcps *t = arg;
	char name[96];
	size_t i;
	pid_t pid;

	if (sandbox_notify_answer(fd, &pid, name, sizeof name) != 0) {
		event_free(t->notify_ev);
		t->notify_ev = NULL;
		close(t->notify_fd);
		t->notify_fd = -1;
		return;
	}
	fprintf(stderr, "weft: sandbox debug: MCP server '%s' (pid %ld) "
	    "called %s: denied with EPERM\n", t->name, (long)pid, name);
	for (i = 0; i < json_array_size(t->denied); i++)
		if (strcmp(json_string_value(json_array_get(t->denied, i)),
		    name) == 0)
			return;
	if (json_array_size(t->denied) < 64)
		json_array_append_new(t->denied, json_string(name));
}

/* Answer every notification already queued on the listener. */
static void
mcps_notify_drain(struct mcps *t)
{
	struct pollfd p;

	while (t->notify_fd >= 0) {
		p.fd = t->notify_fd;
		p.events = POLLIN;
		if (poll(&p, 1, 0) != 1 || !(p.revents & POLLIN))
			break;
		mcps_notify_cb(t->notify_fd, EV_READ, t);
	}
}

/* The server's stdout is readable: hand each line to the session. */
static void
mcps_out_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mcps *t = arg;
	char buf[65536];
	const char *line;
	size_t len;
	ssize_t n;
	int rv;

	n = read(fd, buf, sizeof buf);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		mcpc_stop(t->s, FAIL_SERVER_EXITED, strerror(errno));
		return;
	}
	if (n == 0) {
		mcpc_stop(t->s, FAIL_SERVER_EXITED, NULL);
		return;
	}
	linebuf_feed(t->lb, buf, n);
	while (t->lb != NULL &&
	    (rv = linebuf_next(t->lb, &line, &len)) != 0) {
		if (rv < 0) {
			mcpc_stop(t->s, FAIL_PROTOCOL,
			    "sent a line over 64 MiB");
			return;
		}
		if (mcpc_recv(t->s, line, len) != 0)
			return;
	}
}

/* Start the server process, under its sandbox if it has one. */
static int
mcps_start(void *arg, char *err, size_t errlen)
{
	struct mcps *t = arg;
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, ep[2] = { -1, -1 };
	struct proc_spec ps;
	struct sandbox *sb = NULL;
	const char *path = NULL;
	size_t i;

	if (pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1 ||
	    pipe2(ep, O_CLOEXEC) == -1) {
		errf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	memset(&ps, 0, sizeof ps);
	ps.argv = t->argv;
	ps.envp = t->envp;
	ps.cwd = t->cwd;
	ps.stdin_fd = in[0];
	ps.stdout_fd = out[1];
	ps.stderr_fd = ep[1];
	ps.pdeathsig = SIGKILL;
	if (t->sb != NULL) {
		for (i = 0; t->envp != NULL && t->envp[i] != NULL; i++)
			if (strncmp(t->envp[i], "PATH=", 5) == 0)
				path = t->envp[i] + 5;
		if (sandbox_prepare(t->sb, t->argv[0], path, t->cwd, &sb, err,
		    errlen) != 0)
			goto fail;
		memset(&t->sbrep, 0, sizeof t->sbrep);
		ps.sandbox = sb;
		ps.report = &t->sbrep;
		ps.notify_fd = &t->notify_fd;
	}
	if (proc_spawn(&ps, &t->pid, err, errlen) != 0) {
		sandbox_free(sb);
		goto fail;
	}
	sandbox_free(sb);
	t->starts++;
	if (t->notify_fd >= 0) {
		t->notify_ev = event_new(t->base, t->notify_fd,
		    EV_READ | EV_PERSIST, mcps_notify_cb, t);
		event_add(t->notify_ev, NULL);
	}
	close(in[0]);
	close(out[1]);
	close(ep[1]);
	t->in_fd = in[1];
	t->out_fd = out[0];
	t->err_fd = ep[0];
	fcntl(t->in_fd, F_SETFL, O_NONBLOCK);
	fcntl(t->out_fd, F_SETFL, O_NONBLOCK);
	fcntl(t->err_fd, F_SETFL, O_NONBLOCK);
	t->reaped = 0;
	t->errlen = 0;
	t->lb = linebuf_new(MCPS_MAX_LINE);
	t->outbuf = evbuffer_new();
	t->in_ev = event_new(t->base, t->in_fd, EV_WRITE | EV_PERSIST,
	    mcps_in_cb, t);
	t->out_ev = event_new(t->base, t->out_fd, EV_READ | EV_PERSIST,
	    mcps_out_cb, t);
	t->err_ev = event_new(t->base, t->err_fd, EV_READ | EV_PERSIST,
	    mcps_err_cb, t);
	event_add(t->out_ev, NULL);
	event_add(t->err_ev, NULL);
	return 0;
fail:
	if (in[0] >= 0) { close(in[0]); close(in[1]); }
	if (out[0] >= 0) { close(out[0]); close(out[1]); }
	if (ep[0] >= 0) { close(ep[0]); close(ep[1]); }
	return -1;
}

/* Say which sandbox limit a death by signal points to. */
static void
mcps_limit_hint(struct mcps *t, char *out, size_t len)
{
	int sig;

	if (t->sb == NULL || !WIFSIGNALED(t->status))
		return;
	sig = WTERMSIG(t->status);
	if (sig == SIGXCPU)
		snprintf(out, len, " (the sandbox's CPU limit is %lld s; the "
		    "next call starts a fresh server)", t->sb->cpu);
	else if (sig == SIGXFSZ)
		snprintf(out, len, " (the sandbox's file size limit is %lld "
		    "bytes)", t->sb->file_size);
	else if (sig == SIGSYS)
		snprintf(out, len, " (a system call from another "
		    "architecture: the sandbox's seccomp filter kills it)");
}

/* Close the pipes of the server and reap it; describe how it ended. */
static void
mcps_stop(void *arg, const char *why, char *msg, size_t msglen)
{
	struct mcps *t = arg;
	char how[128], tail[300];
	int i, status;

	event_free(t->in_ev);
	event_free(t->out_ev);
	mcps_err_cb(t->err_fd, EV_READ, t);
	event_free(t->err_ev);
	t->in_ev = t->out_ev = t->err_ev = NULL;
	if (t->notify_ev != NULL) {
		/* Answer what is pending, so the server is not stuck. */
		mcps_notify_drain(t);
		if (t->notify_ev != NULL)
			event_free(t->notify_ev);
		t->notify_ev = NULL;
	}
	if (t->notify_fd >= 0) {
		close(t->notify_fd);
		t->notify_fd = -1;
	}
	close(t->in_fd);
	close(t->out_fd);
	close(t->err_fd);
	/* stdin is closed: give the server a moment to exit, then TERM and
	   KILL it; reaping it here lets the message say how it died. */
	for (i = 0; i < 100 && !t->reaped; i++) {
		if (waitpid(t->pid, &status, WNOHANG) == t->pid) {
			t->reaped = 1;
			t->status = status;
			break;
		}
		if (i == 25)
			kill(t->pid, SIGTERM);
		if (i == 75)
			kill(t->pid, SIGKILL);
		usleep(2000);
	}
	mcps_last_err(t, tail, sizeof tail);
	if (why == NULL && t->reaped)
		mcps_limit_hint(t, tail + strlen(tail),
		    sizeof tail - strlen(tail));
	if (why != NULL) {
		snprintf(msg, msglen, "MCP server '%s' %s%s", t->name, why,
		    tail);
	} else {
		if (t->reaped)
			proc_status_str(t->status, how, sizeof how);
		else
			snprintf(how, sizeof how, "closed its stdout");
		snprintf(msg, msglen, "MCP server '%s' %s during the "
		    "call%s", t->name, how, tail);
	}
	linebuf_free(t->lb);
	t->lb = NULL;
	evbuffer_free(t->outbuf);
	t->outbuf = NULL;
}

/*
 * The session is freed: write what is queued once if asked (the
 * cancellation notices), then close stdin, which asks the server to exit
 * (MCP stdio); mcps_stop waits for it.
 */
static void
mcps_shutdown(void *arg, int flush)
{
	struct mcps *t = arg;

	if (flush)
		(void)evbuffer_write(t->outbuf, t->in_fd);
	close(t->in_fd);
	t->in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* The pid of the last start. */
static pid_t
mcps_pid(void *arg)
{
	struct mcps *t = arg;

	return t->pid;
}

/* The owner reaped the server: stop need not wait for it. */
static void
mcps_reaped(void *arg, int status)
{
	struct mcps *t = arg;

	t->reaped = 1;
	t->status = status;
}

/* The sandbox layers of the last start, and how many starts. */
static const struct sandbox_report *
mcps_sandbox(void *arg, const struct sandbox_profile **profile,
    unsigned *starts)
{
	struct mcps *t = arg;

	*starts = t->starts;
	if (profile != NULL)
		*profile = t->sb;
	return t->sb != NULL && t->starts > 0 ? &t->sbrep : NULL;
}

/* Debug sandbox: the calls denied so far. */
static json_t *
mcps_denied(void *arg)
{
	struct mcps *t = arg;

	return t->denied;
}

/* Copy a JSON array of strings into a NULL-terminated vector. */
static char **
mcps_strv(json_t *arr)
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
mcps_env_set(char **e, size_t n, json_t *env)
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
mcps_sandbox_env(const struct sandbox_profile *sb, json_t *env)
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
	mcps_env_set(e, n, env);
	return e;
}

/* The environment: ours plus the spec's overrides. */
static char **
mcps_env(json_t *env)
{
	char **e;
	size_t n = 0, i;

	while (environ[n] != NULL)
		n++;
	e = xcalloc(n + json_object_size(env) + 1, sizeof *e);
	for (i = 0; i < n; i++)
		e[i] = xstrdup(environ[i]);
	mcps_env_set(e, n, env);
	return e;
}

/* Check the stdio fields of spec: command, env, cwd. */
static int
mcps_check(json_t *spec, const struct sandbox_profile *sb, char *err,
    size_t errlen)
{
	json_t *cmd = json_object_get(spec, "command");
	json_t *env = json_object_get(spec, "env");
	json_t *cwd = json_object_get(spec, "cwd");
	json_t *v;
	const char *k;
	size_t i;

	if (!json_is_array(cmd) || json_array_size(cmd) == 0) {
		errf(err, errlen, "/server/command: must be a non-empty array "
		    "(or give url)");
		return -1;
	}
	for (i = 0; i < json_array_size(cmd); i++) {
		if (!json_is_string(json_array_get(cmd, i))) {
			errf(err, errlen, "/server/command/%zu: must be a "
			    "string", i);
			return -1;
		}
	}
	if (env != NULL && !json_is_object(env)) {
		errf(err, errlen, "/server/env: must be an object");
		return -1;
	}
	json_object_foreach(env, k, v) {
		if (!json_is_string(v)) {
			errf(err, errlen, "/server/env/%s: must be a "
			    "string", k);
			return -1;
		}
	}
	if (cwd != NULL && !json_is_string(cwd)) {
		errf(err, errlen, "/server/cwd: must be a string");
		return -1;
	}
	return 0;
}

/* The transport state for a checked spec; takes sb. */
static void *
mcps_init(struct mcpc *s, struct event_base *base, json_t *spec,
    struct sandbox_profile *sb)
{
	json_t *env = json_object_get(spec, "env");
	json_t *cwd = json_object_get(spec, "cwd");
	struct mcps *t = xcalloc(1, sizeof *t);

	t->s = s;
	t->base = base;
	t->name = mcpc_name(s);
	t->argv = mcps_strv(json_object_get(spec, "command"));
	if (sb != NULL)
		t->envp = mcps_sandbox_env(sb, env);
	else
		t->envp = json_object_size(env) > 0 ? mcps_env(env) : NULL;
	if (cwd != NULL)
		t->cwd = xstrdup(json_string_value(cwd));
	else if (sb != NULL && sb->scratch != NULL)
		t->cwd = xstrdup(sb->scratch);
	t->sb = sb;
	t->notify_fd = -1;
	t->denied = json_array();
	t->pid = -1;
	return t;
}

/* Free the transport, its copy of the spec and the sandbox profile. */
static void
mcps_fini(void *arg)
{
	struct mcps *t = arg;

	strv_free(t->argv);
	strv_free(t->envp);
	free(t->cwd);
	sandbox_profile_free(t->sb);
	json_decref(t->denied);
	free(t);
}

const struct mcpc_transport mcpc_stdio_transport = {
	.name = "stdio",
	.min_version = "2024-11-05",
	.over = "",
	.check = mcps_check,
	.init = mcps_init,
	.fini = mcps_fini,
	.start = mcps_start,
	.send = mcps_send,
	.shutdown = mcps_shutdown,
	.stop = mcps_stop,
	.pid = mcps_pid,
	.reaped = mcps_reaped,
	.sandbox = mcps_sandbox,
	.denied = mcps_denied,
};
