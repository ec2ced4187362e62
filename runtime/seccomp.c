/*
 * seccomp.c: the seccomp filters: the deny list of a tool server's
 * sandbox (and its debug mode, where the worker names each denied call)
 * and the worker's own filter.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>

#include "runtime/util.h"
#include "runtime/sandbox_int.h"

/*
 * Denied with EPERM, so that a probe (libc, node, python) fails like an
 * unprivileged call would and the program carries on.  What is not listed
 * is allowed; a call from another architecture (i386 int 0x80 on x86_64)
 * kills the process.
 */
static const char *const sb_deny[] = {
	"ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
	"mount", "umount", "umount2", "pivot_root", "chroot", "move_mount",
	"open_tree", "fsopen", "fsconfig", "fsmount", "fspick",
	"mount_setattr", "kexec_load", "kexec_file_load", "bpf", "keyctl",
	"add_key", "request_key", "perf_event_open", "unshare", "setns",
	"init_module", "finit_module", "delete_module", "reboot", "swapon",
	"swapoff", "userfaultfd", "open_by_handle_at", "iopl", "ioperm",
	"acct", "quotactl", "syslog", "settimeofday", "clock_settime",
	"clock_adjtime", "vhangup", "lookup_dcookie", "nfsservctl",
	"uselib", "io_uring_setup", "io_uring_enter", "io_uring_register",
	"fanotify_init", "name_to_handle_at",
	NULL
};

/* Namespace flags refused in clone(2), once the sandbox is set up. */
static const unsigned long sb_clone_ns[] = {
	CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID,
	CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWCGROUP,
};

/* ---- tool servers ---- */

/* Compile the seccomp filter to BPF; on failure, note why. */
void
sb_prepare_seccomp(struct sandbox *sb)
{
	uint32_t deny = sb->p->debug ? SCMP_ACT_NOTIFY : SCMP_ACT_ERRNO(EPERM);
	scmp_filter_ctx ctx;
	int i, nr, rv, fd = -1, af;
	off_t size;
	ssize_t n;
	char what[56];

	if ((ctx = seccomp_init(SCMP_ACT_ALLOW)) == NULL) {
		sb_why(&sb->rep, SB_SECCOMP, ENOMEM, "seccomp_init");
		return;
	}
	rv = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
	    SCMP_ACT_KILL_PROCESS);
	for (i = 0; rv == 0 && sb_deny[i] != NULL; i++) {
		nr = seccomp_syscall_resolve_name(sb_deny[i]);
		if (nr == __NR_SCMP_ERROR)
			continue;
		rv = seccomp_rule_add(ctx, deny, nr, 0);
	}
	for (i = 0; rv == 0 && i < (int)(sizeof sb_clone_ns /
	    sizeof sb_clone_ns[0]); i++)
		rv = seccomp_rule_add(ctx, deny,
		    SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ,
		    sb_clone_ns[i], sb_clone_ns[i]));
	/* clone3 passes its flags in memory, out of the filter's reach:
	   ENOSYS makes libc fall back to clone. */
	if (rv == 0)
		rv = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS),
		    SCMP_SYS(clone3), 0);
	if (rv == 0 && !sb->p->network) {
		/*
		 * No new sockets but IP ones (socketpair stays allowed):
		 * no pathname or abstract unix sockets (the coordinator's,
		 * docker's, D-Bus), netlink, packet, vsock.  IP sockets are
		 * left to the network namespace and Landlock; when Landlock
		 * cannot restrict TCP, they are denied here too.
		 */
		for (af = 0; rv == 0 && af <= AF_INET6; af++) {
			if ((af == AF_INET || af == AF_INET6) && sb->ll_net)
				continue;
			rv = seccomp_rule_add(ctx, deny,
			    SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, af));
		}
		if (rv == 0)
			rv = seccomp_rule_add(ctx, deny,
			    SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_GT,
			    AF_INET6));
	}
	if (rv != 0) {
		snprintf(what, sizeof what, "building the filter");
		goto fail;
	}
	if ((fd = memfd_create("weft-seccomp", MFD_CLOEXEC)) == -1) {
		rv = -errno;
		snprintf(what, sizeof what, "memfd_create");
		goto fail;
	}
	if ((rv = seccomp_export_bpf(ctx, fd)) != 0) {
		snprintf(what, sizeof what, "seccomp_export_bpf");
		goto fail;
	}
	size = lseek(fd, 0, SEEK_END);
	if (size <= 0 || size % sizeof(struct sock_filter) != 0 ||
	    size / sizeof(struct sock_filter) > BPF_MAXINSNS) {
		rv = -EINVAL;
		snprintf(what, sizeof what, "seccomp_export_bpf");
		goto fail;
	}
	sb->prog.filter = xmalloc(size);
	n = pread(fd, sb->prog.filter, size, 0);
	if (n != size) {
		rv = -EIO;
		free(sb->prog.filter);
		sb->prog.filter = NULL;
		snprintf(what, sizeof what, "reading the exported filter");
		goto fail;
	}
	sb->prog.len = (unsigned short)(size / sizeof(struct sock_filter));
	close(fd);
	seccomp_release(ctx);
	return;
fail:
	if (fd != -1)
		close(fd);
	seccomp_release(ctx);
	sb_why(&sb->rep, SB_SECCOMP, rv < 0 ? -rv : EINVAL, what);
}

/* In the child: load the filter, in debug mode with a listener. */
void
sb_seccomp_enter(const struct sandbox *sb, struct sandbox_report *rep,
    int *notify_fd)
{
	long rv;

	if (sb->prog.len > 0 && sb->p->debug) {
		/* The listener comes back as the call's result. */
		rv = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
		    SECCOMP_FILTER_FLAG_NEW_LISTENER, &sb->prog);
		if (rv >= 0) {
			*notify_fd = (int)rv;
			rep->enforced |= SB_SECCOMP;
		} else
			sb_why(rep, SB_SECCOMP, errno,
			    "seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER)");
	} else if (sb->prog.len > 0) {
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0,
		    &sb->prog) == 0 || prctl(PR_SET_SECCOMP,
		    SECCOMP_MODE_FILTER, &sb->prog, 0, 0) == 0)
			rep->enforced |= SB_SECCOMP;
		else
			sb_why(rep, SB_SECCOMP, errno, "seccomp");
	}
}

/* ---- debug mode: denied calls reported to the worker ---- */

/* A socket family's name, for debug reports. */
static const char *
sb_family_name(uint64_t af)
{
	static char buf[24];

	switch (af) {
	case AF_UNIX: return "AF_UNIX";
	case AF_INET: return "AF_INET";
	case AF_INET6: return "AF_INET6";
	case AF_NETLINK: return "AF_NETLINK";
	case AF_PACKET: return "AF_PACKET";
	case AF_VSOCK: return "AF_VSOCK";
	default:
		snprintf(buf, sizeof buf, "%llu", (unsigned long long)af);
		return buf;
	}
}

int
sandbox_notify_answer(int fd, pid_t *pid, char *name, size_t len)
{
	struct seccomp_notif *req = NULL;
	struct seccomp_notif_resp *resp = NULL;
	char *s;
	int rv = -1, e;

	if (seccomp_notify_alloc(&req, &resp) != 0)
		return -1;
	if (seccomp_notify_receive(fd, req) != 0)
		goto out;
	*pid = (pid_t)req->pid;
	if ((s = seccomp_syscall_resolve_num_arch(req->data.arch,
	    req->data.nr)) != NULL) {
		if (strcmp(s, "socket") == 0)
			snprintf(name, len, "socket(%s)", sb_family_name(
			    req->data.args[0]));
		else if (strcmp(s, "clone") == 0)
			snprintf(name, len, "clone(0x%llx)",
			    (unsigned long long)req->data.args[0]);
		else
			snprintf(name, len, "%s", s);
		free(s);
	} else
		snprintf(name, len, "syscall %d", req->data.nr);
	resp->id = req->id;
	resp->val = 0;
	resp->error = -EPERM;
	resp->flags = 0;
	/* ENOENT: the caller died meanwhile; nothing to answer. */
	if ((e = seccomp_notify_respond(fd, resp)) != 0 && e != -ENOENT)
		goto out;
	rv = 0;
out:
	seccomp_notify_free(req, resp);
	return rv;
}

/* ---- the worker itself ---- */

/* Whether the worker keeps syscall name: it needs unshare for its
   servers, and LeakSanitizer needs ptrace. */
static int
sb_self_keeps(const char *name)
{
	if (strcmp(name, "unshare") == 0)
		return 1;
#ifdef SB_SELF_ASAN
	if (strcmp(name, "ptrace") == 0)
		return 1;
#endif
	return 0;
}

/* Load the worker's filter on all its threads. */
int
sb_self_seccomp(struct sandbox_report *rep)
{
	scmp_filter_ctx ctx;
	int i, nr, rv;

	if ((ctx = seccomp_init(SCMP_ACT_ALLOW)) == NULL) {
		sb_why(rep, SB_SECCOMP, ENOMEM, "seccomp_init");
		return -1;
	}
	rv = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (rv == 0)
		rv = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
		    SCMP_ACT_KILL_PROCESS);
	/* Every syscall of the worker runs the filter: a binary tree of the
	   denied numbers, not a list (an optimisation only: no error). */
	if (rv == 0)
		(void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	for (i = 0; rv == 0 && sb_deny[i] != NULL; i++) {
		if (sb_self_keeps(sb_deny[i]))
			continue;
		nr = seccomp_syscall_resolve_name(sb_deny[i]);
		if (nr != __NR_SCMP_ERROR)
			rv = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
	}
	if (rv == 0)
		rv = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rv != 0) {
		sb_why(rep, SB_SECCOMP, -rv, "seccomp_load (TSYNC)");
		return -1;
	}
	rep->enforced |= SB_SECCOMP;
	return 0;
}
