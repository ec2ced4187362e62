/*
 * view_exec.c: a weft command run by the viewer on demand (weft replay
 * RUN --json, weft eval RUN --golden FILE --json), its JSON read from its
 * stdout on the event loop, bounded in time: past the bound the child is
 * killed.  The viewer so shows the very verdict the command gives, and
 * what the command does (re-executing a workflow offline) never runs on
 * the loop thread of the server.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "engine/view_int.h"
#include "runtime/proc.h"
#include "runtime/util.h"

#define VIEW_EXEC_OUT_MAX	(16u * 1024 * 1024)
#define VIEW_EXEC_ERR_MAX	(16u * 1024)
#define VIEW_EXEC_REAP_MS	20

struct view_exec {
	struct event_base	*base;
	pid_t			 pid;
	int			 fd[2];		/* out, err (-1: EOF) */
	struct event		*rd[2];
	struct evbuffer		*buf[2];
	struct event		*timer;		/* bound, reap */
	double			 deadline;
	int			 timeout_s;
	int			 reaped;
	view_exec_cb		 cb;
	void			*arg;
};

/* Close one of the child's pipes. */
static void
view_exec_close(struct view_exec *x, int i)
{
	if (x->fd[i] < 0)
		return;
	event_free(x->rd[i]);
	x->rd[i] = NULL;
	close(x->fd[i]);
	x->fd[i] = -1;
}

/* Free x (the child reaped or killed). */
static void
view_exec_free(struct view_exec *x)
{
	view_exec_close(x, 0);
	view_exec_close(x, 1);
	evbuffer_free(x->buf[0]);
	evbuffer_free(x->buf[1]);
	event_free(x->timer);
	free(x);
}

/* Kill the child and wait for it (a killed child is gone at once; a
   SIGCHLD handler of the process may have reaped it already). */
static void
view_exec_kill(struct view_exec *x)
{
	if (x->reaped)
		return;
	kill(x->pid, SIGKILL);
	while (waitpid(x->pid, NULL, 0) == -1 && errno == EINTR)
		;
	x->reaped = 1;
}

/* The child's stderr, trimmed, or a note of how it ended. */
static char *
view_exec_stderr(struct view_exec *x)
{
	size_t n = evbuffer_get_length(x->buf[1]);
	char *s = xmalloc(n + 1);

	evbuffer_copyout(x->buf[1], s, n);
	s[n] = '\0';
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
	if (n == 0) {
		free(s);
		return xstrdup("the command printed nothing");
	}
	return s;
}

/* Call back with the JSON object the child printed, or why there is none;
   then free x. */
static void
view_exec_finish(struct view_exec *x, const char *why)
{
	json_error_t je;
	json_t *doc = NULL;
	char *err = NULL;
	size_t n;

	if (why == NULL) {
		n = evbuffer_get_length(x->buf[0]);
		doc = json_loadb((const char *)evbuffer_pullup(x->buf[0], -1),
		    n, 0, &je);
		if (!json_is_object(doc)) {
			json_decref(doc);
			doc = NULL;
			err = view_exec_stderr(x);
		}
	}
	x->cb(x->arg, doc, why != NULL ? why : err);
	json_decref(doc);
	free(err);
	view_exec_free(x);
}

/* Both pipes at EOF: reap the child (or look again shortly). */
static void
view_exec_reap(struct view_exec *x)
{
	struct timeval tv = { 0, VIEW_EXEC_REAP_MS * 1000 };
	pid_t p;

	p = waitpid(x->pid, NULL, WNOHANG);
	if (p == x->pid || (p == -1 && errno == ECHILD)) {
		x->reaped = 1;
		view_exec_finish(x, NULL);
		return;
	}
	evtimer_add(x->timer, &tv);
}

/* The bound passed (child still there), or time to look again. */
static void
view_exec_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct view_exec *x = arg;
	char why[128];

	(void)fd;
	(void)what;
	if (now_mono() < x->deadline && x->fd[0] < 0 && x->fd[1] < 0) {
		view_exec_reap(x);
		return;
	}
	view_exec_kill(x);
	snprintf(why, sizeof why, "gave up after %d s (the viewer's bound; "
	    "run the command in a terminal)", x->timeout_s);
	view_exec_finish(x, why);
}

/* Output from the child. */
static void
view_exec_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct view_exec *x = arg;
	int i = fd == x->fd[0] ? 0 : 1;
	size_t cap = i == 0 ? VIEW_EXEC_OUT_MAX : VIEW_EXEC_ERR_MAX;
	char chunk[16384];
	ssize_t n;

	(void)what;
	n = read(fd, chunk, sizeof chunk);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		view_exec_close(x, i);
		if (x->fd[0] < 0 && x->fd[1] < 0) {
			evtimer_del(x->timer);
			view_exec_reap(x);
		}
		return;
	}
	if (evbuffer_get_length(x->buf[i]) + (size_t)n > cap) {
		if (i == 1)
			return;		/* stderr: keep the start */
		view_exec_kill(x);
		view_exec_finish(x, "the command's answer is too large");
		return;
	}
	evbuffer_add(x->buf[i], chunk, (size_t)n);
}

struct view_exec *
view_exec_start(struct event_base *base, char *const argv[], int timeout_s,
    view_exec_cb cb, void *arg, char *err, size_t errlen)
{
	struct proc_spec ps;
	struct view_exec *x;
	struct timeval tv = { timeout_s, 0 };
	int out[2], ep[2], i;

	if (pipe2(out, O_CLOEXEC) != 0) {
		errf(err, errlen, "pipe: %s", strerror(errno));
		return NULL;
	}
	if (pipe2(ep, O_CLOEXEC) != 0) {
		errf(err, errlen, "pipe: %s", strerror(errno));
		close(out[0]);
		close(out[1]);
		return NULL;
	}
	memset(&ps, 0, sizeof ps);
	ps.argv = argv;
	ps.stdin_fd = -1;
	ps.stdout_fd = out[1];
	ps.stderr_fd = ep[1];
	ps.pdeathsig = SIGKILL;
	x = xcalloc(1, sizeof *x);
	if (proc_spawn(&ps, &x->pid, err, errlen) != 0) {
		close(out[0]);
		close(out[1]);
		close(ep[0]);
		close(ep[1]);
		free(x);
		return NULL;
	}
	close(out[1]);
	close(ep[1]);
	x->base = base;
	x->fd[0] = out[0];
	x->fd[1] = ep[0];
	x->timeout_s = timeout_s;
	x->deadline = now_mono() + timeout_s;
	x->cb = cb;
	x->arg = arg;
	for (i = 0; i < 2; i++) {
		fcntl(x->fd[i], F_SETFL, O_NONBLOCK);
		x->buf[i] = evbuffer_new();
		x->rd[i] = event_new(base, x->fd[i], EV_READ | EV_PERSIST,
		    view_exec_read_cb, x);
		event_add(x->rd[i], NULL);
	}
	x->timer = evtimer_new(base, view_exec_timer_cb, x);
	evtimer_add(x->timer, &tv);
	return x;
}

void
view_exec_cancel(struct view_exec *x)
{
	if (x == NULL)
		return;
	view_exec_kill(x);
	view_exec_free(x);
}
