/*
 * sandbox_int.h: what the files of the sandbox share: runtime/sandbox.c
 * (profiles, rlimits, namespaces, sandbox_prepare/enter/self, reports),
 * landlock.c (the Landlock ruleset), seccomp.c (the filters for tool
 * servers and for the worker, the debug notification mode) and
 * sandbox_probe.c (what `weft doctor` reports).  Not a public surface:
 * use runtime/sandbox.h.
 */
#ifndef WEFT_SANDBOX_INT_H
#define WEFT_SANDBOX_INT_H

#include <sched.h>
#include <stdint.h>
#include <sys/resource.h>

#include <linux/filter.h>

#include "runtime/sandbox.h"

#ifndef CLONE_NEWUSER
#define CLONE_NEWUSER	0x10000000
#endif
#ifndef CLONE_NEWNET
#define CLONE_NEWNET	0x40000000
#endif

/* A build with AddressSanitizer, whose LeakSanitizer needs ptrace. */
#if defined(__SANITIZE_ADDRESS__)
#define SB_SELF_ASAN	1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SB_SELF_ASAN	1
#endif
#endif

/*
 * What sandbox_prepare made in the parent for one server, read by
 * sandbox_enter in the child: the layers wanted and required, the
 * Landlock ruleset (landlock.c), the seccomp program (seccomp.c), the
 * rlimits and id maps, and what the parent found missing already.
 */
struct sandbox {
	const struct sandbox_profile	*p;
	unsigned			 want;
	unsigned			 require;
	int				 ruleset_fd;	/* -1: no Landlock */
	uint64_t			 proc_rights;	/* for /proc/self */
	int				 ll_net;	/* TCP rules handled */
	int				 ll_scope;	/* scoping handled */
	struct sock_fprog		 prog;		/* len 0: none */
	int				 nrl;
	int				 rl_res[8];
	struct rlimit			 rl[8];
	char				 uid_map[32];
	char				 gid_map[32];
	struct sandbox_report		 rep;	/* what the parent found */
	json_t				*paths;	/* {"read":[], "write":[]}:
						   the rules, resolved */
};

/*
 * sandbox.c: note in rep why layer is not in force: err is the errno of
 * the failed call (0 for none) and what names the call or reason (cut to
 * fit).  Makes no allocation and no libc formatting, so the child may
 * call it between fork and exec.
 */
void sb_why(struct sandbox_report *rep, unsigned layer, int err,
    const char *what);

/*
 * landlock.c: the Landlock ABI version the kernel reports, or 0 with
 * errno set when it has none.
 */
int sb_landlock_abi(void);

/*
 * In the parent: build sb's Landlock ruleset (sb->ruleset_fd) for the
 * command argv (argv[0] looked up in path) run in cwd: the system paths a
 * program needs to start, the command and its interpreter (through
 * version managers' shims), the files and directories its arguments name,
 * the profile's read, write and scratch paths, TCP and scoping by the
 * ABI.  A kernel
 * without Landlock, or too old for a part, is noted in sb->rep and is not
 * an error; 0, or -1 with err for a profile path that does not exist.
 */
int sb_prepare_landlock(struct sandbox *sb, char *const *argv,
    const char *path, const char *cwd, char *err, size_t errlen);

/*
 * The root of the package that holds file, into out: the nearest
 * directory above it, up to and including one with package.json,
 * pyproject.toml, setup.py or .git, never / or a home directory; without
 * one, the file's own directory.
 */
void sb_package_root(const char *file, char *out, size_t len);

/*
 * In the child, system calls only: add our own /proc entry to the
 * ruleset, restrict ourselves with it and close it, recording in rep
 * which Landlock layers are in force or why not.  Nothing if sb has no
 * ruleset.
 */
void sb_landlock_enter(const struct sandbox *sb, struct sandbox_report *rep);

/*
 * seccomp.c: in the parent, compile the servers' deny list to a BPF
 * program in sb->prog (errno EPERM, or user notification in debug mode;
 * namespaces refused in clone, clone3 ENOSYS, and without network no new
 * sockets but IP ones).  On failure sb->prog stays empty and sb->rep says
 * why.
 */
void sb_prepare_seccomp(struct sandbox *sb);

/*
 * In the child, system calls only: load sb->prog if there is one,
 * recording in rep whether seccomp is in force.  In debug mode *notify_fd
 * gets the listener for the parent; it is left alone otherwise.
 */
void sb_seccomp_enter(const struct sandbox *sb, struct sandbox_report *rep,
    int *notify_fd);

/*
 * Load the worker's own filter on every thread (TSYNC): the servers' deny
 * list less what the worker needs (unshare, and ptrace under ASan).  0
 * with SB_SECCOMP in rep->enforced, or -1 with why in rep.
 */
int sb_self_seccomp(struct sandbox_report *rep);

#endif
