/*
 * mcp_client.c: an MCP client session over stdio (newline-delimited
 * JSON-RPC to a child process) or Streamable HTTP (a POST per message,
 * answered with JSON or an SSE stream; libcurl multi on the caller's
 * loop, runtime/http.c).
 *
 * Both transports feed received messages to mcpc_line, which matches
 * answers to requests by id, answers server requests and hands
 * notifications to the owner.  Over HTTP, bytes arrive inside libcurl's
 * callbacks, where no request may be started or cancelled: messages are
 * queued there and handled from the loop (mcpc_drain).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "runtime/util.h"
#include "protocols/jsonrpc.h"
#include "protocols/mcp_client.h"
#include "protocols/sse.h"
#include "runtime/http.h"
#include "runtime/proc.h"
#include "runtime/sandbox.h"
#include "runtime/wire.h"

#define MCPC_MAX_LINE	(64 * 1024 * 1024)
#define MCPC_ERR_TAIL	1024
#define MCPC_MAX_SID	256
#define MCPC_MAX_REINIT	3	/* re-initialisations without an answer */

extern char **environ;

/* Protocol revisions this client speaks; HTTP needs 2025-03-26 or later
   (the older HTTP+SSE transport is not supported). */
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

/* What an HTTP exchange carries. */
enum post_kind { POST_INIT, POST_REQ, POST_NOTE, POST_GET };
enum post_type { PT_UNKNOWN, PT_JSON, PT_SSE, PT_OTHER };

struct mcpc_post {
	struct mcpc		*s;
	struct http_req		*hr;
	enum post_kind		 kind;
	enum post_type		 type;
	int64_t			 rid;		/* request id, 0: none */
	int			 had_sid;	/* sent with a session id */
	struct sse		*sse;
	struct evbuffer		*body;		/* a JSON answer */
	TAILQ_ENTRY(mcpc_post)	 entry;
};
TAILQ_HEAD(mcpc_post_list, mcpc_post);

struct mcpc {
	struct event_base	*base;
	char			*name;
	int			 http;		/* transport: 0 stdio */
	/* stdio */
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
	char			 errtail[MCPC_ERR_TAIL];
	size_t			 errlen;
	/* Streamable HTTP */
	char			*url;
	char			**hdrs;		/* "Name: value" */
	struct http		*hc;
	char			*sid;		/* Mcp-Session-Id */
	struct mcpc_post_list	 posts;
	json_t			*inq;		/* received, not handled */
	struct event		*drain_ev;
	char			*broken;	/* a deferred failure */
	int			 reinits;
	/* both */
	enum mcpc_state		 state;
	char			 version[32];	/* negotiated */
	unsigned		 inits;
	int64_t			 next_id;
	int64_t			 next_handle;
	int64_t			 init_id;
	struct mcpc_req_list	 waiting;	/* until initialized */
	struct mcpc_req_list	 sent;		/* awaiting answers */
	mcpc_note_cb		 ncb;
	void			*narg;
	long			 ping_ms;	/* 0: no liveness pings */
	struct event		*ping_ev;
	int64_t			 ping_out;	/* handle of a ping unanswered */
};

static void	mcpc_stop(struct mcpc *, const char *kind, const char *msg);
static void	mcpc_post(struct mcpc *, json_t *, enum post_kind, int64_t);
static void	mcpc_send_init(struct mcpc *);

const char *
mcpc_name(const struct mcpc *s)
{
	return s->name;
}

pid_t
mcpc_pid(const struct mcpc *s)
{
	return s->state == MCPC_IDLE || s->http ? -1 : s->pid;
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

/*
 * Hand a message to the server: a line on its stdin, or a POST of kind
 * (carrying request rid, 0 for none) to its endpoint.
 */
static void
mcpc_emit(struct mcpc *s, json_t *msg, enum post_kind kind, int64_t rid)
{
	char *buf;
	size_t len;

	if (s->http) {
		mcpc_post(s, msg, kind, rid);
		return;
	}
	buf = jrpc_dump(msg, &len, 1);
	evbuffer_add(s->outbuf, buf, len);
	free(buf);
	if (s->in_ev != NULL)
		event_add(s->in_ev, NULL);
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
	mcpc_emit(s, msg, POST_REQ, r->id);
	json_decref(msg);
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

/* Whether the server's revision v is one we speak (over this transport). */
static int
mcpc_version_ok(struct mcpc *s, const char *v)
{
	size_t i;

	for (i = 0; mcpc_versions[i] != NULL; i++)
		if (strcmp(v, mcpc_versions[i]) == 0)
			return !s->http || strcmp(v, "2025-03-26") >= 0;
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
		    "(it speaks 2025-11-25 back to %s)", v, s->http ?
		    " over Streamable HTTP" : "", s->http ? "2025-03-26" :
		    "2024-11-05");
		mcpc_stop(s, FAIL_PROTOCOL, msg);
		return;
	}
	snprintf(s->version, sizeof s->version, "%s", v);
	s->inits++;
	n = jrpc_notification("notifications/initialized", NULL);
	s->state = MCPC_READY;
	mcpc_emit(s, n, POST_NOTE, 0);
	json_decref(n);
	if (s->http) {
		/* The stream for messages unrelated to a request (list
		   changes, server pings); 405 means the server has none. */
		mcpc_post(s, NULL, POST_GET, 0);
	}
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
	mcpc_emit(s, a, POST_NOTE, 0);
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

/* One message from the server.  Returns -1 when the session stopped. */
static int
mcpc_line(struct mcpc *s, const char *line, size_t len)
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

/* Send initialize (a new session). */
static void
mcpc_send_init(struct mcpc *s)
{
	json_t *params, *msg;

	s->state = MCPC_INIT;
	s->init_id = ++s->next_id;
	params = json_pack("{s:s, s:{}, s:{s:s, s:s}}", "protocolVersion",
	    MCP_PROTOCOL_VERSION, "capabilities", "clientInfo", "name", "weft",
	    "version", PACKAGE_VERSION);
	msg = jrpc_request(json_integer(s->init_id), "initialize", params);
	mcpc_emit(s, msg, POST_INIT, s->init_id);
	json_decref(msg);
}

/* Start the server process and send initialize. */
static int
mcpc_start_stdio(struct mcpc *s, char *err, size_t errlen)
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
	mcpc_send_init(s);
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

/* Close the pipes of a stdio server and reap it; describe how it ended. */
static void
mcpc_stop_stdio(struct mcpc *s, const char *why, char *msg, size_t msglen)
{
	char how[128], tail[300];
	int i, status;

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
		snprintf(msg, msglen, "MCP server '%s' %s%s", s->name, why,
		    tail);
	} else {
		if (s->reaped)
			proc_status_str(s->status, how, sizeof how);
		else
			snprintf(how, sizeof how, "closed its stdout");
		snprintf(msg, msglen, "MCP server '%s' %s during the "
		    "call%s", s->name, how, tail);
	}
	linebuf_free(s->lb);
	s->lb = NULL;
	evbuffer_free(s->outbuf);
	s->outbuf = NULL;
}

static void
mcpc_post_free(struct mcpc_post *p)
{
	if (p->hr != NULL)
		http_cancel(p->hr);
	sse_free(p->sse);
	if (p->body != NULL)
		evbuffer_free(p->body);
	free(p);
}

/* Abandon the HTTP exchanges of the session (its GET stream too). */
static void
mcpc_stop_http(struct mcpc *s, const char *why, char *msg, size_t msglen)
{
	struct mcpc_post *p;

	while ((p = TAILQ_FIRST(&s->posts)) != NULL) {
		TAILQ_REMOVE(&s->posts, p, entry);
		mcpc_post_free(p);
	}
	json_array_clear(s->inq);
	free(s->sid);
	s->sid = NULL;
	free(s->broken);
	s->broken = NULL;
	snprintf(msg, msglen, "MCP server '%s' (%s) %s", s->name, s->url,
	    why != NULL ? why : "closed the connection");
}

/*
 * Stop the session and fail every pending request.  kind/msg describe why;
 * for an exit, msg is NULL and the exit status is reported.
 */
static void
mcpc_stop(struct mcpc *s, const char *kind, const char *why)
{
	struct mcpc_req_list reqs;
	struct mcpc_req *r;
	char msg[1024];

	if (s->state == MCPC_IDLE)
		return;
	if (s->http)
		mcpc_stop_http(s, why, msg, sizeof msg);
	else
		mcpc_stop_stdio(s, why, msg, sizeof msg);
	s->state = MCPC_IDLE;
	s->version[0] = '\0';
	s->ping_out = 0;
	if (s->ping_ev != NULL)
		event_del(s->ping_ev);
	TAILQ_INIT(&reqs);
	TAILQ_CONCAT(&reqs, &s->sent, entry);
	TAILQ_CONCAT(&reqs, &s->waiting, entry);
	while ((r = TAILQ_FIRST(&reqs)) != NULL) {
		TAILQ_REMOVE(&reqs, r, entry);
		mcpc_req_fail(r, kind, msg);
		mcpc_req_free(r);
	}
}

/* Handle the messages received over HTTP, in order. */
static void
mcpc_drain(struct mcpc *s)
{
	json_t *m;
	char why[300];

	if (s->broken != NULL) {
		snprintf(why, sizeof why, "%s", s->broken);
		mcpc_stop(s, FAIL_SERVER_EXITED, why);
		return;
	}
	while (s->state != MCPC_IDLE && json_array_size(s->inq) > 0) {
		m = json_incref(json_array_get(s->inq, 0));
		json_array_remove(s->inq, 0);
		if (mcpc_line(s, json_string_value(m),
		    json_string_length(m)) != 0) {
			json_decref(m);
			return;
		}
		json_decref(m);
	}
}

static void
mcpc_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	mcpc_drain(arg);
}

/* Queue a message received inside a libcurl callback. */
static void
mcpc_queue(struct mcpc *s, const char *data, size_t len)
{
	json_array_append_new(s->inq, json_stringn(data, len));
	event_active(s->drain_ev, EV_TIMEOUT, 0);
}

/* An SSE event of an answer stream: one JSON-RPC message. */
static int
mcpc_sse_cb(void *arg, const char *event, const char *data, size_t len)
{
	struct mcpc_post *p = arg;

	/* Empty events prime resumable streams; other types are not ours. */
	if (len == 0 || strcmp(event, "message") != 0)
		return 0;
	mcpc_queue(p->s, data, len);
	return 0;
}

/* Keep the session id the initialize answer carries. */
static void
mcpc_take_sid(struct mcpc_post *p)
{
	struct mcpc *s = p->s;
	const char *v;
	size_t i;

	if (p->kind != POST_INIT || s->sid != NULL ||
	    (v = http_header(p->hr, "mcp-session-id")) == NULL)
		return;
	for (i = 0; v[i] != '\0'; i++)
		if ((unsigned char)v[i] < 0x21 || (unsigned char)v[i] > 0x7e)
			return;
	if (i > 0 && i <= MCPC_MAX_SID)
		s->sid = xstrdup(v);
}

/* libcurl: bytes of a 2xx answer. */
static int
mcpc_data_cb(void *arg, const char *buf, size_t n)
{
	struct mcpc_post *p = arg;
	const char *ct;
	char err[256];

	if (p->type == PT_UNKNOWN) {
		mcpc_take_sid(p);
		ct = http_header(p->hr, "content-type");
		if (ct != NULL && strncasecmp(ct, "text/event-stream", 17) == 0) {
			p->type = PT_SSE;
			p->sse = sse_new(0, mcpc_sse_cb, p);
		} else
			p->type = ct != NULL && strncasecmp(ct,
			    "application/json", 16) == 0 ? PT_JSON : PT_OTHER;
	}
	if (p->type == PT_SSE) {
		if (sse_feed(p->sse, buf, n, err, sizeof err) != 0) {
			if (p->s->broken == NULL)
				p->s->broken = xasprintf("sent a malformed "
				    "event stream: %s", err);
			event_active(p->s->drain_ev, EV_TIMEOUT, 0);
			return -1;
		}
		return 0;
	}
	if (p->body == NULL)
		p->body = evbuffer_new();
	evbuffer_add(p->body, buf, n);
	return 0;
}

/* Fail the request a POST carried, if it still waits for its answer. */
static void
mcpc_post_fail(struct mcpc *s, struct mcpc_post *p, const char *kind,
    const char *why)
{
	struct mcpc_req *r;
	char msg[700];

	snprintf(msg, sizeof msg, "MCP server '%s' (%s) %s", s->name, s->url,
	    why);
	if (p->kind == POST_INIT) {
		if (s->state == MCPC_INIT && s->init_id == p->rid)
			mcpc_stop(s, kind, why);
		return;
	}
	if ((r = mcpc_find(s, p->rid)) == NULL)
		return;
	TAILQ_REMOVE(&s->sent, r, entry);
	mcpc_req_fail(r, kind, msg);
	mcpc_req_free(r);
}

/*
 * The server no longer knows our session: initialise a new one and send
 * the refused request again (it never ran).  Calls of the old session
 * still streaming go on; they end on their own.
 */
static void
mcpc_reinit(struct mcpc *s, struct mcpc_post *p)
{
	struct mcpc_req *r;
	struct mcpc_post *g, *next;

	if ((r = mcpc_find(s, p->rid)) == NULL)
		return;
	TAILQ_REMOVE(&s->sent, r, entry);
	r->id = 0;
	TAILQ_INSERT_HEAD(&s->waiting, r, entry);
	if (s->state != MCPC_READY)
		return;
	if (++s->reinits > MCPC_MAX_REINIT) {
		mcpc_stop(s, FAIL_PROTOCOL, "keeps refusing new sessions "
		    "(HTTP 404)");
		return;
	}
	TAILQ_FOREACH_SAFE(g, &s->posts, entry, next) {
		if (g->kind == POST_GET) {
			TAILQ_REMOVE(&s->posts, g, entry);
			mcpc_post_free(g);
		}
	}
	free(s->sid);
	s->sid = NULL;
	mcpc_send_init(s);
}

/*
 * Whether an answer says our session is unknown: 404 per the spec; the
 * reference servers answer 400 "No valid session ID provided" instead.
 */
static int
mcpc_session_gone(const struct mcpc_post *p, const struct http_result *res)
{
	if (!p->had_sid)
		return 0;
	if (res->status == 404)
		return 1;
	return res->status == 400 && res->body != NULL &&
	    strcasestr(res->body, "session") != NULL;
}

/* Whether body is a JSON-RPC answer to the POST's request. */
static int
mcpc_is_answer(const char *body, size_t len, int64_t rid)
{
	json_t *j, *id;
	int yes;

	if ((j = json_loadb(body, len, 0, NULL)) == NULL)
		return 0;
	id = json_object_get(j, "id");
	yes = json_is_integer(id) && json_integer_value(id) == rid &&
	    (json_object_get(j, "error") != NULL ||
	    json_object_get(j, "result") != NULL);
	json_decref(j);
	return yes;
}

/* An HTTP error status: a JSON-RPC error in the body, or a failure. */
static void
mcpc_post_status(struct mcpc *s, struct mcpc_post *p,
    const struct http_result *res)
{
	char why[400];
	size_t n = res->len;

	if (n > 0 && mcpc_is_answer(res->body, n, p->rid)) {
		mcpc_queue(s, res->body, n);
		mcpc_drain(s);
		if (s->state == MCPC_IDLE)
			return;
	}
	while (n > 0 && (res->body[n - 1] == '\n' || res->body[n - 1] == '\r'))
		n--;
	snprintf(why, sizeof why, "answered HTTP %ld%s%.*s", res->status,
	    n > 0 ? ": " : "", n > 200 ? 200 : (int)n, res->body);
	/* 429 and 5xx are the server's passing state (retried by default,
	   docs/durability.md); other statuses say the request is wrong. */
	mcpc_post_fail(s, p, p->kind == POST_INIT ? FAIL_SERVER_START :
	    res->status == 429 ? FAIL_RATE_LIMITED : res->status >= 500 ?
	    FAIL_TRANSPORT : FAIL_PROTOCOL, why);
}

/* libcurl: an exchange ended (on the loop, outside curl's callbacks). */
static void
mcpc_done_cb(void *arg, const struct http_result *res)
{
	struct mcpc_post *p = arg;
	struct mcpc *s = p->s;
	char why[400];
	size_t len;

	TAILQ_REMOVE(&s->posts, p, entry);
	if (res->status >= 200 && res->status < 300) {
		mcpc_take_sid(p);
		if (p->body != NULL && (len = evbuffer_get_length(p->body)) > 0)
			mcpc_queue(s, (const char *)evbuffer_pullup(p->body,
			    -1), len);
	}
	p->hr = NULL;		/* freed by http.c after we return */
	mcpc_drain(s);
	if (s->state == MCPC_IDLE || p->kind == POST_NOTE ||
	    p->kind == POST_GET)
		goto out;
	if (res->err != HTTP_OK) {
		snprintf(why, sizeof why, "%s: %s", p->kind == POST_INIT ?
		    "cannot be reached" : "failed during the call",
		    res->errmsg);
		mcpc_post_fail(s, p, p->kind == POST_INIT ? FAIL_SERVER_START :
		    FAIL_TRANSPORT, why);
	} else if (mcpc_session_gone(p, res))
		mcpc_reinit(s, p);
	else if (res->status < 200 || res->status >= 300)
		mcpc_post_status(s, p, res);
	else if (p->type == PT_SSE)
		mcpc_post_fail(s, p, FAIL_SERVER_EXITED, "closed the answer "
		    "stream before answering");
	else
		mcpc_post_fail(s, p, FAIL_PROTOCOL, p->type == PT_OTHER ?
		    "answered neither JSON nor an event stream" :
		    "answered without a JSON-RPC response");
out:
	mcpc_post_free(p);
}

/*
 * POST msg (NULL with POST_GET: open the server's stream) with the
 * session's headers.  A failure to start is reported from the loop.
 */
static void
mcpc_post(struct mcpc *s, json_t *msg, enum post_kind kind, int64_t rid)
{
	const char *hdrs[80];
	struct http_opts o;
	struct mcpc_post *p;
	char sid[300], ver[64], err[256], *body = NULL;
	size_t n = 0, i, len = 0;

	p = xcalloc(1, sizeof *p);
	p->s = s;
	p->kind = kind;
	p->rid = rid;
	hdrs[n++] = kind == POST_GET ? "Accept: text/event-stream" :
	    "Accept: application/json, text/event-stream";
	if (kind != POST_GET)
		hdrs[n++] = "Content-Type: application/json";
	if (s->sid != NULL && kind != POST_INIT) {
		snprintf(sid, sizeof sid, "Mcp-Session-Id: %s", s->sid);
		hdrs[n++] = sid;
		p->had_sid = 1;
	}
	if (s->version[0] != '\0' && kind != POST_INIT) {
		snprintf(ver, sizeof ver, "MCP-Protocol-Version: %s",
		    s->version);
		hdrs[n++] = ver;
	}
	for (i = 0; s->hdrs[i] != NULL && n < nitems(hdrs) - 1; i++)
		hdrs[n++] = s->hdrs[i];
	hdrs[n] = NULL;
	memset(&o, 0, sizeof o);
	o.url = s->url;
	o.headers = hdrs;
	if (msg != NULL) {
		body = jrpc_dump(msg, &len, 0);
		o.body = body;
		o.bodylen = len;
	}
	o.on_data = mcpc_data_cb;
	o.on_done = mcpc_done_cb;
	o.arg = p;
	TAILQ_INSERT_TAIL(&s->posts, p, entry);
	p->hr = http_start(s->hc, &o, err, sizeof err);
	free(body);
	if (p->hr == NULL) {
		TAILQ_REMOVE(&s->posts, p, entry);
		mcpc_post_free(p);
		if (s->broken == NULL)
			s->broken = xasprintf("cannot be reached: %s", err);
		event_active(s->drain_ev, EV_TIMEOUT, 0);
	}
}

/* Start an HTTP session: load libcurl if need be, send initialize. */
static int
mcpc_start_http(struct mcpc *s, char *err, size_t errlen)
{
	if (s->hc == NULL && (s->hc = http_new(s->base, err, errlen)) == NULL)
		return -1;
	s->reinits = 0;
	mcpc_send_init(s);
	return 0;
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

void
mcpc_cancel(struct mcpc *s, int64_t handle, const char *kind,
    const char *msg)
{
	struct mcpc_req *r;
	struct mcpc_post *p;
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
	mcpc_emit(s, n, POST_NOTE, 0);
	json_decref(n);
	if (s->http) {
		/* The notice is what cancels; the stream is no use now. */
		TAILQ_FOREACH(p, &s->posts, entry) {
			if (p->kind == POST_REQ && p->rid == r->id) {
				TAILQ_REMOVE(&s->posts, p, entry);
				mcpc_post_free(p);
				break;
			}
		}
	}
fail:
	mcpc_req_fail(r, kind, msg);
	mcpc_req_free(r);
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

void
mcpc_reaped(struct mcpc *s, int status)
{
	s->reaped = 1;
	s->status = status;
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

/* Check the stdio fields of spec: command, env, cwd. */
static int
mcpc_check_stdio(json_t *spec, char *err, size_t errlen)
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
			errf(err, errlen, "/server/env/%s: must be a string", k);
			return -1;
		}
	}
	if (cwd != NULL && !json_is_string(cwd)) {
		errf(err, errlen, "/server/cwd: must be a string");
		return -1;
	}
	return 0;
}

/* Check the HTTP fields of spec: url, headers (no line breaks). */
static int
mcpc_check_http(json_t *spec, struct sandbox_profile *sb, char *err,
    size_t errlen)
{
	const char *url = json_string_value(json_object_get(spec, "url"));
	json_t *hdrs = json_object_get(spec, "headers"), *v;
	const char *k;

	if (json_object_get(spec, "command") != NULL) {
		errf(err, errlen, "/server/url: give command or url, not both");
		return -1;
	}
	if (sb != NULL) {
		errf(err, errlen, "/server/sandbox: an HTTP server is remote; "
		    "the sandbox applies to command servers only");
		return -1;
	}
	if (url == NULL || (strncmp(url, "http://", 7) != 0 &&
	    strncmp(url, "https://", 8) != 0) || strpbrk(url, " \r\n") !=
	    NULL) {
		errf(err, errlen, "/server/url: must be an http:// or "
		    "https:// URL");
		return -1;
	}
	if (hdrs != NULL && !json_is_object(hdrs)) {
		errf(err, errlen, "/server/headers: must be an object");
		return -1;
	}
	if (json_object_size(hdrs) > 32) {
		errf(err, errlen, "/server/headers: at most 32 headers");
		return -1;
	}
	json_object_foreach(hdrs, k, v) {
		if (!json_is_string(v) || strpbrk(json_string_value(v),
		    "\r\n") != NULL || *k == '\0' || strpbrk(k,
		    ": \t\r\n") != NULL) {
			errf(err, errlen, "/server/headers/%s: must be a "
			    "header name with a one-line string value", k);
			return -1;
		}
	}
	return 0;
}

/* The HTTP side of a new session. */
static void
mcpc_init_http(struct mcpc *s, json_t *spec)
{
	json_t *hdrs = json_object_get(spec, "headers"), *v;
	const char *k;
	size_t n = 0;

	s->http = 1;
	s->url = xstrdup(json_string_value(json_object_get(spec, "url")));
	s->hdrs = xcalloc(json_object_size(hdrs) + 1, sizeof *s->hdrs);
	json_object_foreach(hdrs, k, v)
		s->hdrs[n++] = xasprintf("%s: %s", k, json_string_value(v));
	s->inq = json_array();
	s->drain_ev = event_new(s->base, -1, 0, mcpc_drain_cb, s);
}

/* The stdio side of a new session. */
static void
mcpc_init_stdio(struct mcpc *s, json_t *spec, struct sandbox_profile *sb)
{
	json_t *env = json_object_get(spec, "env");
	json_t *cwd = json_object_get(spec, "cwd");

	s->argv = mcpc_strv(json_object_get(spec, "command"));
	if (sb != NULL)
		s->envp = mcpc_sandbox_env(sb, env);
	else
		s->envp = json_object_size(env) > 0 ? mcpc_env(env) : NULL;
	if (cwd != NULL)
		s->cwd = xstrdup(json_string_value(cwd));
	else if (sb != NULL && sb->scratch != NULL)
		s->cwd = xstrdup(sb->scratch);
	s->sb = sb;
}

struct mcpc *
mcpc_new(struct event_base *base, json_t *spec, struct sandbox_profile *sb,
    char *err, size_t errlen)
{
	json_t *name = json_object_get(spec, "name");
	json_t *ping = json_object_get(spec, "ping");
	int http = json_object_get(spec, "url") != NULL;
	struct timeval tv;
	struct mcpc *s;

	if (!json_is_string(name)) {
		errf(err, errlen, "/server/name: must be a string");
		return NULL;
	}
	if (ping != NULL && (!json_is_number(ping) ||
	    json_number_value(ping) < 0 || json_number_value(ping) > 86400)) {
		errf(err, errlen, "/server/ping: must be seconds, 0 to 86400");
		return NULL;
	}
	if (http ? mcpc_check_http(spec, sb, err, errlen) :
	    mcpc_check_stdio(spec, err, errlen))
		return NULL;
	s = xcalloc(1, sizeof *s);
	s->base = base;
	s->name = xstrdup(json_string_value(name));
	if (http)
		mcpc_init_http(s, spec);
	else
		mcpc_init_stdio(s, spec, sb);
	s->notify_fd = -1;
	s->denied = json_array();
	s->pid = -1;
	TAILQ_INIT(&s->waiting);
	TAILQ_INIT(&s->sent);
	TAILQ_INIT(&s->posts);
	s->ping_ms = ping != NULL ? (long)(json_number_value(ping) * 1000) : 0;
	if (s->ping_ms > 0) {
		s->ping_ev = event_new(base, -1, EV_PERSIST, mcpc_ping_cb, s);
		tv.tv_sec = s->ping_ms / 1000;
		tv.tv_usec = (s->ping_ms % 1000) * 1000;
		event_add(s->ping_ev, &tv);
	}
	return s;
}

int64_t
mcpc_request(struct mcpc *s, const char *method, json_t *params, mcpc_cb cb,
    void *arg)
{
	struct mcpc_req *r = xcalloc(1, sizeof *r);
	struct timeval tv;
	char err[512], msg[700];
	int rv;

	r->method = xstrdup(method);
	r->params = params;
	r->cb = cb;
	r->arg = arg;
	r->handle = ++s->next_handle;
	if (s->state == MCPC_IDLE) {
		rv = s->http ? mcpc_start_http(s, err, sizeof err) :
		    mcpc_start_stdio(s, err, sizeof err);
		if (rv != 0) {
			snprintf(msg, sizeof msg, "MCP server '%s': %s",
			    s->name, err);
			mcpc_req_fail(r, FAIL_SERVER_START, msg);
			mcpc_req_free(r);
			return 0;
		}
		/* A restarted server is pinged again (mcpc_stop stopped it). */
		if (s->ping_ev != NULL && !event_pending(s->ping_ev,
		    EV_TIMEOUT, NULL)) {
			tv.tv_sec = s->ping_ms / 1000;
			tv.tv_usec = (s->ping_ms % 1000) * 1000;
			event_add(s->ping_ev, &tv);
		}
	}
	if (s->state == MCPC_READY)
		mcpc_send(s, r);
	else
		TAILQ_INSERT_TAIL(&s->waiting, r, entry);
	return r->handle;
}

/* Tell the server the calls in flight are abandoned (best effort). */
static void
mcpc_cancel_all(struct mcpc *s)
{
	struct mcpc_req *r;
	json_t *n;

	if (s->http || s->state != MCPC_READY)
		return;
	TAILQ_FOREACH(r, &s->sent, entry) {
		if (r->handle == s->ping_out)
			continue;
		n = jrpc_notification("notifications/cancelled", json_pack(
		    "{s:I, s:s}", "requestId", (json_int_t)r->id, "reason",
		    "the client is shutting down"));
		mcpc_emit(s, n, POST_NOTE, 0);
		json_decref(n);
	}
	(void)evbuffer_write(s->outbuf, s->in_fd);
}

void
mcpc_free(struct mcpc *s)
{
	if (s == NULL)
		return;
	if (s->state != MCPC_IDLE) {
		mcpc_cancel_all(s);
		if (!s->http) {
			/* Closing stdin asks the server to exit (MCP stdio). */
			close(s->in_fd);
			s->in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		}
		mcpc_stop(s, "cancelled", "was shut down");
	}
	if (s->ping_ev != NULL)
		event_free(s->ping_ev);
	if (s->drain_ev != NULL)
		event_free(s->drain_ev);
	http_free(s->hc);
	json_decref(s->inq);
	free(s->url);
	strv_free(s->hdrs);
	free(s->name);
	strv_free(s->argv);
	strv_free(s->envp);
	free(s->cwd);
	sandbox_profile_free(s->sb);
	json_decref(s->denied);
	free(s);
}
