/* proc.c: fork + exec with exec errors reported back to the parent. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/util.h"
#include "runtime/proc.h"

/* In the child: set up stdio and exec; write errno to ep on failure. */
static void __attribute__((noreturn))
proc_child(const struct proc_spec *ps, int ep, pid_t ppid)
{
	int e[2] = { 0, 0 }, nullfd;
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
	if (ps->cwd != NULL && chdir(ps->cwd) == -1) {
		e[0] = 1;
		goto fail;
	}
	if (ps->envp != NULL)
		execvpe(ps->argv[0], ps->argv, ps->envp);
	else
		execvp(ps->argv[0], ps->argv);
fail:
	e[1] = errno;
	(void)write(ep, e, sizeof e);
	_exit(127);
}

int
proc_spawn(const struct proc_spec *ps, pid_t *pidp, char *err, size_t errlen)
{
	int ep[2], e[2] = { 0, 0 };
	pid_t pid, ppid = getpid();
	ssize_t n;

	if (pipe2(ep, O_CLOEXEC) == -1) {
		errf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	if ((pid = fork()) == -1) {
		e[1] = errno;
		close(ep[0]);
		close(ep[1]);
		errf(err, errlen, "fork: %s", strerror(e[1]));
		return -1;
	}
	if (pid == 0) {
		close(ep[0]);
		proc_child(ps, ep[1], ppid);
	}
	close(ep[1]);
	do
		n = read(ep[0], e, sizeof e);
	while (n == -1 && errno == EINTR);
	close(ep[0]);
	if (n == (ssize_t)sizeof e) {
		waitpid(pid, NULL, 0);
		if (e[0] == 1)
			errf(err, errlen, "cannot run '%s' in directory '%s': %s",
			    ps->argv[0], ps->cwd, strerror(e[1]));
		else if (e[1] == ENOENT)
			errf(err, errlen, "command '%s' not found", ps->argv[0]);
		else
			errf(err, errlen, "cannot execute '%s': %s",
			    ps->argv[0], strerror(e[1]));
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
