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
#include <limits.h>
#include <poll.h>
#include <stdint.h>
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
#define MCPS_ERR_TAIL	4096	/* bytes of stderr quoted at most */
#define MCPS_ERR_LINES	20	/* and lines */

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
	json_t			*paths;		/* sandbox_paths of a start */
	unsigned		 inits0;	/* mcpc_inits at the start */
	uint64_t		 prev_sig;	/* how the last start failed
						   before initialize; 0: not */
	int			 repeat;	/* this start failed the same
						   way: not started again */
	int			 collected;	/* the ending is collected */
	int			 spawned;	/* a server process runs */
	char			*npm;		/* npm package: run from */
	char			*npm_cache;	/* the cache, after an */
	char			*npm_bin;	/* install if need be */
	char			**npm_args;
	char			*npm_tmp;	/* an install under way */
	pid_t			 npm_pid;	/* -1: none */
	int			 npm_status;	/* -1: not reaped */
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
	if (n < 0 && errno == EPIPE) {
		/* The server is going: its stdout's end says how. */
		evbuffer_drain(t->outbuf, evbuffer_get_length(t->outbuf));
		event_del(t->in_ev);
		return;
	}
	if (n < 0 && errno != EAGAIN && errno != EINTR) {
		mcpc_stop(t->s, FAIL_SERVER_EXITED, "its stdin was closed");
		return;
	}
	if (evbuffer_get_length(t->outbuf) == 0)
		event_del(t->in_ev);
}

/* Read the server's stderr once, keeping its tail; read's result. */
static ssize_t
mcps_err_read(struct mcps *t)
{
	char buf[4096];
	ssize_t n;
	size_t keep;

	n = read(t->err_fd, buf, sizeof buf);
	if (n <= 0)
		return n;
	if ((size_t)n >= MCPS_ERR_TAIL) {
		memcpy(t->errtail, buf + n - MCPS_ERR_TAIL, MCPS_ERR_TAIL);
		t->errlen = MCPS_ERR_TAIL;
		return n;
	}
	keep = MCPS_ERR_TAIL - (size_t)n;
	if (t->errlen > keep) {
		memmove(t->errtail, t->errtail + (t->errlen - keep), keep);
		t->errlen = keep;
	}
	memcpy(t->errtail + t->errlen, buf, n);
	t->errlen += n;
	return n;
}

/* Keep the tail of the server's stderr for error messages. */
static void
mcps_err_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mcps *t = arg;
	ssize_t n;

	n = mcps_err_read(t);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		event_del(t->err_ev);
}

/*
 * Copy n bytes of stderr to out as text a terminal and JSON can carry:
 * valid UTF-8 stays, other bytes and control characters become '?'.
 */
static size_t
mcps_clean(const char *in, size_t n, char *out, size_t len)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i = 0, o = 0, k, seq;

	while (i < n && o + 5 < len) {
		seq = p[i] < 0x80 ? 1 : (p[i] & 0xe0) == 0xc0 ? 2 :
		    (p[i] & 0xf0) == 0xe0 ? 3 : (p[i] & 0xf8) == 0xf0 ? 4 : 0;
		for (k = 1; seq > 1 && k < seq; k++)
			if (i + k >= n || (p[i + k] & 0xc0) != 0x80 ||
			    (seq == 2 && p[i] < 0xc2))
				seq = 0;
		if (seq == 1 && (p[i] < 0x20 || p[i] == 0x7f) &&
		    p[i] != '\t')
			seq = 0;
		if (seq == 0) {
			out[o++] = '?';
			i++;
			continue;
		}
		memcpy(out + o, p + i, seq);
		o += seq;
		i += seq;
	}
	out[o] = '\0';
	return o;
}

/*
 * The last lines the server wrote to stderr (MCPS_ERR_LINES at most),
 * each on a line of its own, indented: "; its stderr ended with:\n  ...".
 */
static void
mcps_tail(struct mcps *t, const char *what, char *out, size_t len)
{
	size_t end = t->errlen, start, o, le;
	int lines = 0;

	out[0] = '\0';
	while (end > 0 && (t->errtail[end - 1] == '\n' ||
	    t->errtail[end - 1] == '\r' || t->errtail[end - 1] == ' '))
		end--;
	if (end == 0)
		return;
	/* The first of the last lines. */
	for (start = end; start > 0; start--)
		if (t->errtail[start - 1] == '\n' &&
		    ++lines == MCPS_ERR_LINES)
			break;
	o = snprintf(out, len, "; %s ended with:", what);
	while (start < end && o + 8 < len) {
		for (le = start; le < end && t->errtail[le] != '\n'; le++)
			;
		o += snprintf(out + o, len - o, "\n  ");
		if (o < len)
			o += mcps_clean(t->errtail + start, le - start,
			    out + o, len - o);
		start = le + 1;
	}
}

/* How the server ended: its status and its stderr with numbers left out
   (pids, times), hashed; two starts ending alike hash alike. */
static uint64_t
mcps_sig(struct mcps *t)
{
	uint64_t h = 1469598103934665603ULL;
	size_t i;
	int digit = 0;

	h = (h ^ (uint64_t)(t->reaped ? t->status : -1)) * 1099511628211ULL;
	for (i = 0; i < t->errlen; i++) {
		if (t->errtail[i] >= '0' && t->errtail[i] <= '9') {
			if (digit++)
				continue;
			h = (h ^ '#') * 1099511628211ULL;
			continue;
		}
		digit = 0;
		h = (h ^ (unsigned char)t->errtail[i]) * 1099511628211ULL;
	}
	return h | 1;
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

/*
 * Close the pipes of the server and reap it, once per start: stdin is
 * closed, so give the server a moment to exit, then TERM and KILL it;
 * reaping it here lets the message say how it died.
 */
static void
mcps_collect(struct mcps *t)
{
	int i, status;

	if (t->collected)
		return;
	t->collected = 1;
	event_free(t->in_ev);
	event_free(t->out_ev);
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
	/* The rest of its stderr, written as it died (a child it left
	   may hold the pipe: read what is there, do not wait). */
	for (i = 0; i < 64 && mcps_err_read(t) > 0; i++)
		;
	close(t->err_fd);
}

/*
 * The server closed its stdout: it is gone.  A server that ends before
 * initialize the same way as at its previous start (status and stderr)
 * fails with server_start, which is not retried: a third start would
 * end the same way again.
 */
static void
mcps_lost(struct mcps *t)
{
	uint64_t sig;

	mcps_collect(t);
	if (mcpc_inits(t->s) != t->inits0) {
		t->prev_sig = 0;
		mcpc_stop(t->s, FAIL_SERVER_EXITED, NULL);
		return;
	}
	sig = mcps_sig(t);
	t->repeat = sig == t->prev_sig;
	t->prev_sig = sig;
	mcpc_stop(t->s, t->repeat ? FAIL_SERVER_START : FAIL_SERVER_EXITED,
	    NULL);
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
		mcps_lost(t);
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

/* Spawn the server process, under its sandbox if it has one. */
static int
mcps_spawn(struct mcps *t, char *err, size_t errlen)
{
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
		if (sandbox_prepare(t->sb, t->argv, path, t->cwd, &sb, err,
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
	json_decref(t->paths);
	t->paths = sb != NULL ? sandbox_paths(sb) : NULL;
	sandbox_free(sb);
	t->starts++;
	t->inits0 = mcpc_inits(t->s);
	t->collected = 0;
	t->repeat = 0;
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
	t->spawned = 1;
	t->errlen = 0;
	t->in_ev = event_new(t->base, t->in_fd, EV_WRITE | EV_PERSIST,
	    mcps_in_cb, t);
	if (evbuffer_get_length(t->outbuf) > 0)
		event_add(t->in_ev, NULL);	/* queued while installing */
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

/* argv of an npm server: its program, then its arguments. */
static void
mcps_npm_argv(struct mcps *t, const char *prog)
{
	size_t n = 0, i;

	while (t->npm_args[n] != NULL)
		n++;
	strv_free(t->argv);
	t->argv = xcalloc(n + 2, sizeof *t->argv);
	t->argv[0] = xstrdup(prog);
	for (i = 0; i < n; i++)
		t->argv[i + 1] = xstrdup(t->npm_args[i]);
}

/* The npm install is over (its output closed): run the server, or fail. */
static void
mcps_npm_done(struct mcps *t)
{
	char prog[PATH_MAX], why[600], msg[MCPS_ERR_TAIL + 900], how[128];
	char tail[MCPS_ERR_TAIL + 4 * MCPS_ERR_LINES + 64];
	int status, r;

	event_free(t->err_ev);
	t->err_ev = NULL;
	close(t->err_fd);
	t->err_fd = -1;
	/* The worker's SIGCHLD may have reaped it (mcps_reaped). */
	while ((r = waitpid(t->npm_pid, &status, 0)) == -1 && errno == EINTR)
		;
	if (r == t->npm_pid)
		t->npm_status = status;
	else if (t->reaped)
		t->npm_status = t->status;	/* reaped by the worker */
	t->npm_pid = -1;
	r = mcpn_install_done(t->npm_cache, t->npm, t->npm_tmp, why,
	    sizeof why);
	free(t->npm_tmp);
	t->npm_tmp = NULL;
	if (r != 0) {
		/* npm failed: say how, with its own words. */
		how[0] = '\0';
		if (t->npm_status != -1)
			proc_status_str(t->npm_status, how, sizeof how);
		mcps_tail(t, "npm's output", tail, sizeof tail);
		snprintf(msg, sizeof msg, "cannot install npm package %s into "
		    "%s: %s%s%s (is the npm registry reachable? weft installs "
		    "a package once, outside the sandbox, then runs it "
		    "offline)%s", t->npm, t->npm_cache, why, how[0] ?
		    ", npm " : "", how, tail);
		t->errlen = 0;
		mcpc_stop(t->s, FAIL_SERVER_START, msg);
		return;
	}
	if ((r = mcpn_lookup(t->npm_cache, t->npm, t->npm_bin, prog,
	    sizeof prog, why, sizeof why)) == 1)
		snprintf(why, sizeof why, "npm installed %s, yet it is not in "
		    "the cache %s", t->npm, t->npm_cache);
	if (r == 0) {
		mcps_npm_argv(t, prog);
		if (mcps_spawn(t, why, sizeof why) == 0)
			return;
	}
	snprintf(msg, sizeof msg, "cannot start after npm installed it: %s",
	    why);
	t->errlen = 0;
	mcpc_stop(t->s, FAIL_SERVER_START, msg);
}

/* npm's output, while it installs; its end is the install's. */
static void
mcps_npm_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mcps *t = arg;
	ssize_t n;

	n = mcps_err_read(t);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		mcps_npm_done(t);
}

/*
 * Install the npm package in the background (outside the sandbox, with
 * the network): npm writes to one pipe, whose end starts the server.
 */
static int
mcps_npm_install(struct mcps *t, char *err, size_t errlen)
{
	struct proc_spec ps;
	int ep[2];
	char **argv;

	if ((argv = mcpn_install_argv(t->npm_cache, t->npm, &t->npm_tmp, err,
	    errlen)) == NULL)
		return -1;
	if (pipe2(ep, O_CLOEXEC) == -1) {
		errf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	memset(&ps, 0, sizeof ps);
	ps.argv = argv;
	ps.cwd = t->npm_tmp;
	ps.stdin_fd = -1;
	ps.stdout_fd = ep[1];
	ps.stderr_fd = ep[1];
	ps.pdeathsig = SIGKILL;
	if (proc_spawn(&ps, &t->npm_pid, err, errlen) != 0) {
		close(ep[0]);
		close(ep[1]);
		goto fail;
	}
	strv_free(argv);
	close(ep[1]);
	t->npm_status = -1;
	t->reaped = 0;
	t->errlen = 0;
	t->err_fd = ep[0];
	fcntl(t->err_fd, F_SETFL, O_NONBLOCK);
	t->err_ev = event_new(t->base, t->err_fd, EV_READ | EV_PERSIST,
	    mcps_npm_cb, t);
	event_add(t->err_ev, NULL);
	return 0;
fail:
	strv_free(argv);
	rmtree(t->npm_tmp);
	free(t->npm_tmp);
	t->npm_tmp = NULL;
	return -1;
}

/*
 * Start the server: an npm server runs from the cache, installed there
 * first when it is not (the messages wait in the buffer meanwhile).
 */
static int
mcps_start(void *arg, char *err, size_t errlen)
{
	struct mcps *t = arg;
	char prog[PATH_MAX];
	int r;

	t->lb = linebuf_new(MCPS_MAX_LINE);
	t->outbuf = evbuffer_new();
	t->collected = 0;
	if (t->npm != NULL) {
		r = mcpn_lookup(t->npm_cache, t->npm, t->npm_bin, prog,
		    sizeof prog, err, errlen);
		if (r == 1)
			r = mcps_npm_install(t, err, errlen);
		else if (r == 0) {
			mcps_npm_argv(t, prog);
			r = mcps_spawn(t, err, errlen);
		}
	} else
		r = mcps_spawn(t, err, errlen);
	if (r != 0) {
		linebuf_free(t->lb);
		t->lb = NULL;
		evbuffer_free(t->outbuf);
		t->outbuf = NULL;
	}
	return r;
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

/* Stop an npm install under way, and close what the session holds. */
static void
mcps_npm_abort(struct mcps *t)
{
	if (t->err_ev != NULL)
		event_free(t->err_ev);
	t->err_ev = NULL;
	if (t->err_fd >= 0)
		close(t->err_fd);
	t->err_fd = -1;
	if (t->npm_pid > 0) {
		kill(t->npm_pid, SIGKILL);
		(void)waitpid(t->npm_pid, NULL, 0);
	}
	t->npm_pid = -1;
	if (t->npm_tmp != NULL)
		rmtree(t->npm_tmp);
	free(t->npm_tmp);
	t->npm_tmp = NULL;
	if (t->in_fd >= 0)
		close(t->in_fd);
	t->in_fd = -1;
}

/* Stop the server and describe how it ended. */
static void
mcps_stop(void *arg, const char *why, char *msg, size_t msglen)
{
	struct mcps *t = arg;
	char how[128], hint[200], tail[MCPS_ERR_TAIL + 4 * MCPS_ERR_LINES +
	    64], cause[PATH_MAX * 2 + 160];
	int early = mcpc_inits(t->s) == t->inits0;

	if (!t->spawned) {
		/* No server yet: an npm install failed or was cut short. */
		mcps_npm_abort(t);
		snprintf(msg, msglen, "MCP server '%s' %s", t->name,
		    why != NULL ? why : "was stopped while npm installed it");
		linebuf_free(t->lb);
		t->lb = NULL;
		evbuffer_free(t->outbuf);
		t->outbuf = NULL;
		return;
	}
	mcps_collect(t);
	t->spawned = 0;
	mcps_tail(t, "its stderr", tail, sizeof tail);
	hint[0] = cause[0] = '\0';
	if (why == NULL && t->reaped)
		mcps_limit_hint(t, hint, sizeof hint);
	/* A path the sandbox refused, named in its stderr. */
	if (t->sb != NULL && (t->sbrep.enforced & SB_LANDLOCK)) {
		cause[0] = ':';
		cause[1] = ' ';
		if (sandbox_explain(t->paths, t->errtail, t->errlen,
		    cause + 2, sizeof cause - 2) == 0)
			cause[0] = '\0';
	}
	if (why != NULL) {
		snprintf(msg, msglen, "MCP server '%s' %s%s%s", t->name, why,
		    cause, tail);
	} else {
		if (t->reaped)
			proc_status_str(t->status, how, sizeof how);
		else
			snprintf(how, sizeof how, "closed its stdout");
		snprintf(msg, msglen, "MCP server '%s' %s %s%s%s%s%s",
		    t->name, how, early ? "before initialize" :
		    "during the call", hint, cause, t->repeat ? "; it "
		    "ended the same way at its previous start, so it is not "
		    "started again" : "", tail);
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

/* The pid of the last start: npm's while it installs the server. */
static pid_t
mcps_pid(void *arg)
{
	struct mcps *t = arg;

	return t->npm_pid > 0 ? t->npm_pid : t->pid;
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

/* A path the sandbox refused, named in text: see mcpc_explain. */
static int
mcps_explain(void *arg, const char *text, char *buf, size_t len)
{
	struct mcps *t = arg;

	if (t->sb == NULL || !(t->sbrep.enforced & SB_LANDLOCK))
		return 0;
	return sandbox_explain(t->paths, text, strlen(text), buf, len);
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

	json_t *npm = json_object_get(spec, "npm");
	json_t *args = json_object_get(spec, "args");

	if (npm != NULL) {
		if (!json_is_string(npm) || !json_is_string(json_object_get(
		    spec, "npm_cache"))) {
			errf(err, errlen, "/server/npm: must be a package "
			    "name, with a cache to install it in");
			return -1;
		}
		if (args != NULL && !(json_is_array(args) ||
		    (json_is_object(args) && json_object_size(args) == 0))) {
			errf(err, errlen, "/server/args: must be an array");
			return -1;
		}
		for (i = 0; i < json_array_size(args); i++)
			if (!json_is_string(json_array_get(args, i))) {
				errf(err, errlen, "/server/args/%zu: must be "
				    "a string", i);
				return -1;
			}
		cmd = NULL;
	} else if (!json_is_array(cmd) || json_array_size(cmd) == 0) {
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
	if (json_is_string(json_object_get(spec, "npm"))) {
		t->npm = xstrdup(json_string_value(json_object_get(spec,
		    "npm")));
		t->npm_cache = xstrdup(json_string_value(json_object_get(spec,
		    "npm_cache")));
		if (json_is_string(json_object_get(spec, "bin")))
			t->npm_bin = xstrdup(json_string_value(
			    json_object_get(spec, "bin")));
		t->npm_args = mcps_strv(json_is_array(json_object_get(spec,
		    "args")) ? json_object_get(spec, "args") : NULL);
	}
	t->in_fd = t->out_fd = t->err_fd = -1;
	t->npm_pid = -1;
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
	free(t->npm);
	free(t->npm_cache);
	free(t->npm_bin);
	strv_free(t->npm_args);
	free(t->cwd);
	sandbox_profile_free(t->sb);
	json_decref(t->denied);
	json_decref(t->paths);
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
	.explain = mcps_explain,
};
