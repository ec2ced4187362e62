/* proc.c: fork + exec with exec errors reported back to the parent. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/util.h"
#include "runtime/proc.h"
#include "runtime/sandbox.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC	(1U << 2)
#endif

/*
 * What the child tells the parent through the CLOEXEC pipe: the sandbox
 * report just before exec, then an error if a step fails.  A message is
 * under PIPE_BUF, so it arrives whole.
 */
enum { PROC_MSG_REPORT, PROC_MSG_EXEC, PROC_MSG_CHDIR, PROC_MSG_SANDBOX };
struct proc_msg {
	int			kind;
	int			err;
	unsigned		layer;
	struct sandbox_report	rep;
};

/* In the child: set up stdio, the sandbox, and exec; report to ep. */
static void __attribute__((noreturn))
proc_child(const struct proc_spec *ps, int ep, pid_t ppid)
{
	struct proc_msg m;
	int nullfd;
	sigset_t all;

	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (ps->pdeathsig) {
		prctl(PR_SET_PDEATHSIG, ps->pdeathsig);
		if (getppid() != ppid)
			_exit(1);
	}
	nullfd = open("/dev/null", O_RDWR);
	if (dup2(ps->stdin_fd >= 0 ? ps->stdin_fd : nullfd, 0) == -1)
		goto fail;
	if (ps->stdout_fd >= 0 && dup2(ps->stdout_fd, 1) == -1)
		goto fail;
	if (ps->stderr_fd >= 0 && dup2(ps->stderr_fd, 2) == -1)
		goto fail;
	if (nullfd > 2)
		close(nullfd);
	memset(&m, 0, sizeof m);
	if (ps->cwd != NULL && chdir(ps->cwd) == -1) {
		m.kind = PROC_MSG_CHDIR;
		goto fail;
	}
	/* Nothing but stdio survives the exec (close_range: Linux 5.11). */
	syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
	if (ps->sandbox != NULL) {
		if (sandbox_enter(ps->sandbox, &m.rep, &m.layer) != 0) {
			m.kind = PROC_MSG_SANDBOX;
			(void)write(ep, &m, sizeof m);
			_exit(127);
		}
		/* Changing credentials may clear the death signal. */
		if (ps->pdeathsig) {
			prctl(PR_SET_PDEATHSIG, ps->pdeathsig);
			if (getppid() != ppid)
				_exit(1);
		}
		m.kind = PROC_MSG_REPORT;
		(void)write(ep, &m, sizeof m);
	}
	m.kind = PROC_MSG_EXEC;
	if (ps->envp != NULL)
		execvpe(ps->argv[0], ps->argv, ps->envp);
	else
		execvp(ps->argv[0], ps->argv);
fail:
	m.err = errno;
	(void)write(ep, &m, sizeof m);
	_exit(127);
}

int
proc_spawn(const struct proc_spec *ps, pid_t *pidp, char *err, size_t errlen)
{
	int ep[2], e;
	pid_t pid, ppid = getpid();
	struct proc_msg m;
	char why[200];
	ssize_t n;

	if (pipe2(ep, O_CLOEXEC) == -1) {
		errf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	if ((pid = fork()) == -1) {
		e = errno;
		close(ep[0]);
		close(ep[1]);
		errf(err, errlen, "fork: %s", strerror(e));
		return -1;
	}
	if (pid == 0) {
		close(ep[0]);
		proc_child(ps, ep[1], ppid);
	}
	close(ep[1]);
	for (;;) {
		n = read(ep[0], &m, sizeof m);
		if (n == -1 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof m || m.kind != PROC_MSG_REPORT)
			break;
		if (ps->report != NULL)
			*ps->report = m.rep;
	}
	close(ep[0]);
	if (n == (ssize_t)sizeof m) {
		waitpid(pid, NULL, 0);
		if (m.kind == PROC_MSG_CHDIR)
			errf(err, errlen, "cannot run '%s' in directory '%s': %s",
			    ps->argv[0], ps->cwd, strerror(m.err));
		else if (m.kind == PROC_MSG_SANDBOX) {
			sandbox_report_why(&m.rep, m.layer, why, sizeof why);
			errf(err, errlen, "sandbox: %s: %s",
			    sandbox_layer_name(m.layer), why);
		} else if (m.err == ENOENT)
			errf(err, errlen, "command '%s' not found", ps->argv[0]);
		else
			errf(err, errlen, "cannot execute '%s': %s%s",
			    ps->argv[0], strerror(m.err), m.err == EACCES &&
			    ps->sandbox != NULL ? " (the sandbox allows "
			    "executing only from readable dirs: add its "
			    "directory to sandbox.read)" : "");
		return -1;
	}
	*pidp = pid;
	return 0;
}

void
proc_status_str(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
		    strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "stopped (status 0x%x)", status);
}
