/* proc.c: fork + exec with exec errors reported back to the parent. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/util.h"
#include "runtime/proc.h"
#include "runtime/sandbox.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC	(1U << 2)
#endif

/*
 * What the child tells the parent through a CLOEXEC socket pair (a
 * datagram each): the sandbox report just before exec, with the seccomp
 * listener in debug mode, then an error if a step fails.
 */
enum { PROC_MSG_REPORT, PROC_MSG_EXEC, PROC_MSG_CHDIR, PROC_MSG_SANDBOX };
struct proc_msg {
	int			kind;
	int			err;
	unsigned		layer;
	struct sandbox_report	rep;
};

/* Send m, and fd if it is not -1, to the parent. */
static void
proc_send(int ep, struct proc_msg *m, int fd)
{
	union {
		char		buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr	align;
	} u;
	struct iovec iov = { m, sizeof *m };
	struct cmsghdr *c;
	struct msghdr mh;

	memset(&mh, 0, sizeof mh);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (fd >= 0) {
		memset(&u, 0, sizeof u);
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof u.buf;
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof fd);
	}
	(void)sendmsg(ep, &mh, MSG_NOSIGNAL);
}

/* In the child: set up stdio, the sandbox, and exec; report to ep. */
static void __attribute__((noreturn))
proc_child(const struct proc_spec *ps, int ep, pid_t ppid)
{
	struct proc_msg m;
	int nullfd, nfd = -1;
	sigset_t all;

	memset(&m, 0, sizeof m);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (ps->pdeathsig) {
		prctl(PR_SET_PDEATHSIG, ps->pdeathsig);
		if (getppid() != ppid)
			_exit(1);
	}
	/* A worker is not dumpable (sandbox_self); its child must be, to
	   set up its own user namespace (/proc/self/uid_map is the
	   process's own).  The exec resets it anyway. */
	prctl(PR_SET_DUMPABLE, 1);
	nullfd = open("/dev/null", O_RDWR);
	/* Descriptor 3 is pass_fd's: move the error channel out of its way. */
	if (ps->pass_fd > 2 && ep == 3 &&
	    (ep = fcntl(ep, F_DUPFD_CLOEXEC, 4)) == -1)
		_exit(127);
	if (dup2(ps->stdin_fd >= 0 ? ps->stdin_fd : nullfd, 0) == -1)
		goto fail;
	if (ps->stdout_fd >= 0 && dup2(ps->stdout_fd, 1) == -1)
		goto fail;
	if (ps->stderr_fd >= 0 && dup2(ps->stderr_fd, 2) == -1)
		goto fail;
	if (nullfd > 2)
		close(nullfd);
	if (ps->cwd != NULL && chdir(ps->cwd) == -1) {
		m.kind = PROC_MSG_CHDIR;
		goto fail;
	}
	if (ps->pass_fd > 2 && ps->pass_fd != 3 && dup2(ps->pass_fd, 3) == -1)
		goto fail;
	if (ps->pass_fd == 3 && fcntl(3, F_SETFD, 0) == -1)
		goto fail;
	/* Nothing but stdio (and pass_fd) survives the exec (close_range:
	   Linux 5.11). */
	syscall(SYS_close_range, ps->pass_fd > 2 ? 4U : 3U, ~0U,
	    CLOSE_RANGE_CLOEXEC);
	if (ps->sandbox != NULL) {
		if (sandbox_enter(ps->sandbox, &m.rep, &m.layer,
		    &nfd) != 0) {
			m.kind = PROC_MSG_SANDBOX;
			proc_send(ep, &m, -1);
			_exit(127);
		}
		/* Changing credentials may clear the death signal. */
		if (ps->pdeathsig) {
			prctl(PR_SET_PDEATHSIG, ps->pdeathsig);
			if (getppid() != ppid)
				_exit(1);
		}
		m.kind = PROC_MSG_REPORT;
		proc_send(ep, &m, nfd);
	}
	m.kind = PROC_MSG_EXEC;
	if (ps->envp != NULL)
		execvpe(ps->argv[0], ps->argv, ps->envp);
	else
		execvp(ps->argv[0], ps->argv);
fail:
	m.err = errno;
	proc_send(ep, &m, -1);
	_exit(127);
}

/* Receive one message from the child, and a descriptor if it sent one. */
static ssize_t
proc_recv(int ep, struct proc_msg *m, int *fd)
{
	union {
		char		buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr	align;
	} u;
	struct iovec iov = { m, sizeof *m };
	struct cmsghdr *c;
	struct msghdr mh;
	ssize_t n;

	*fd = -1;
	memset(&mh, 0, sizeof mh);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = u.buf;
	mh.msg_controllen = sizeof u.buf;
	if ((n = recvmsg(ep, &mh, MSG_CMSG_CLOEXEC)) < 0)
		return n;
	for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(fd, CMSG_DATA(c), sizeof *fd);
	return n;
}

int
proc_spawn(const struct proc_spec *ps, pid_t *pidp, char *err, size_t errlen)
{
	int ep[2], e, fd;
	pid_t pid, ppid = getpid();
	struct proc_msg m;
	char why[200];
	ssize_t n;

	if (ps->notify_fd != NULL)
		*ps->notify_fd = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ep) == -1) {
		errf(err, errlen, "socketpair: %s", strerror(errno));
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
		n = proc_recv(ep[0], &m, &fd);
		if (n == -1 && errno == EINTR)
			continue;
		if (fd >= 0 && (ps->notify_fd == NULL || n != (ssize_t)sizeof m ||
		    m.kind != PROC_MSG_REPORT || *ps->notify_fd >= 0))
			close(fd);
		else if (fd >= 0)
			*ps->notify_fd = fd;
		if (n != (ssize_t)sizeof m || m.kind != PROC_MSG_REPORT)
			break;
		if (ps->report != NULL)
			*ps->report = m.rep;
	}
	close(ep[0]);
	if (n == (ssize_t)sizeof m) {
		if (ps->notify_fd != NULL && *ps->notify_fd >= 0) {
			close(*ps->notify_fd);
			*ps->notify_fd = -1;
		}
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

unsigned long long
proc_start_time(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long t = 0;
	int field;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (read_small_at(AT_FDCWD, path, buf, sizeof buf) <= 0)
		return 0;
	/* The command name (field 2) may hold spaces and parentheses. */
	if ((p = strrchr(buf, ')')) == NULL)
		return 0;
	for (field = 2; *p != '\0' && field < 22; p++)
		if (*p == ' ')
			field++;
	if (field == 22)
		t = strtoull(p, NULL, 10);
	return t;
}

int
proc_identity(pid_t pid, char *out, size_t outlen)
{
	char boot[64];
	unsigned long long start;

	if (read_small_at(AT_FDCWD, "/proc/sys/kernel/random/boot_id", boot,
	    sizeof boot) < 0)
		boot[0] = '\0';
	boot[strcspn(boot, "\n")] = '\0';
	if ((start = proc_start_time(pid > 0 ? pid : getpid())) == 0)
		return -1;
	snprintf(out, outlen, "%s:%llu", boot, start);
	return 0;
}
