/* sandbox_probe.c: what this kernel's sandbox layers allow, for doctor. */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/seccomp.h>

#include "runtime/sandbox_int.h"

/* Run fn in a child; its exit status is 0 or an errno. */
static int
sb_probe_child(int (*fn)(void))
{
	pid_t pid;
	int status;

	if ((pid = fork()) == -1)
		return errno;
	if (pid == 0)
		_exit(fn());
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return errno;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return EFAULT;
}

/* PR_SET_NO_NEW_PRIVS: 0 if it works, else errno. */
static int
sb_probe_nnp(void)
{
	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 ? 0 : errno;
}

/* A seccomp filter that allows everything: 0 if it loads, else errno. */
static int
sb_probe_seccomp(void)
{
	struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K,
	    SECCOMP_RET_ALLOW);
	struct sock_fprog prog = { 1, &allow };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0 &&
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0)
		return errno;
	return 0;
}

/* A user namespace: 0 if one can be made, else errno. */
static int
sb_probe_userns(void)
{
	return unshare(CLONE_NEWUSER) == 0 ? 0 : errno;
}

/* A network namespace, in a user namespace or not: 0 or errno. */
static int
sb_probe_netns(void)
{
	if (unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0)
		return 0;
	return unshare(CLONE_NEWNET) == 0 ? 0 : errno;
}

/* A user namespace made by uid and gid 65534: 0 or errno. */
static int
sb_probe_userns_unpriv(void)
{
	if (setgroups(0, NULL) != 0 || setresgid(65534, 65534, 65534) != 0 ||
	    setresuid(65534, 65534, 65534) != 0)
		return errno;
	return unshare(CLONE_NEWUSER) == 0 ? 0 : errno;
}

void
sandbox_probe(struct sandbox_probe *pr)
{
	memset(pr, 0, sizeof *pr);
	if ((pr->landlock_abi = sb_landlock_abi()) == 0)
		pr->landlock_err = errno;
	pr->nnp = sb_probe_child(sb_probe_nnp) == 0;
	pr->seccomp_err = sb_probe_child(sb_probe_seccomp);
	pr->seccomp = pr->seccomp_err == 0;
	pr->userns_err = sb_probe_child(sb_probe_userns);
	pr->userns = pr->userns_err == 0;
	pr->netns_err = sb_probe_child(sb_probe_netns);
	pr->netns = pr->netns_err == 0;
	pr->userns_unpriv = -1;
	if (geteuid() == 0)
		pr->userns_unpriv = sb_probe_child(sb_probe_userns_unpriv) ==
		    0;
}
