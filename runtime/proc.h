/*
 * proc.h: starting child processes.
 *
 * Children are started with fork + exec; descriptors other than the ones
 * given are close-on-exec everywhere in weft, so a child inherits only its
 * stdio.  An exec failure is reported to the parent through a CLOEXEC
 * socket pair, so "command not found" is an error at spawn time, not a
 * silent exit 127.
 */
#ifndef WEFT_PROC_H
#define WEFT_PROC_H

#include <stddef.h>
#include <sys/types.h>

struct sandbox;
struct sandbox_report;

struct proc_spec {
	char *const	*argv;		/* argv[0] is looked up in PATH */
	char *const	*envp;		/* NULL: inherit */
	const char	*cwd;		/* NULL: inherit */
	int		 stdin_fd;	/* -1: /dev/null */
	int		 stdout_fd;	/* -1: inherit */
	int		 stderr_fd;	/* -1: inherit */
	int		 pdeathsig;	/* signal sent to the child when the
					   parent dies, 0 for none */
	const struct sandbox *sandbox;	/* NULL: none; else applied between
					   fork and exec (runtime/sandbox.h) */
	struct sandbox_report *report;	/* NULL, or where the layers in
					   force are written on success */
	int		*notify_fd;	/* NULL, or set to the seccomp
					   listener of a debug sandbox (the
					   caller closes it), else -1 */
	int		 pass_fd;	/* > 2: given to the child as its
					   descriptor 3 (the caller keeps
					   and closes its own); else none */
};

/*
 * Start a child.  Returns 0 and sets *pid, or -1 with a message such as
 * "command 'foo' not found", "cannot execute 'foo': Permission denied" or
 * "sandbox: landlock: landlock_restrict_self: Operation not permitted"
 * in err.  Descriptors above 2 are closed at exec, whatever their flags,
 * but for pass_fd, which the child finds as descriptor 3.
 */
int proc_spawn(const struct proc_spec *, pid_t *pid, char *err, size_t errlen);

/*
 * When process pid started (field 22 of /proc/PID/stat, in clock ticks
 * since boot), or 0 if it does not exist.  With its pid, it names one
 * process: a pid reused by another has another start time.
 */
unsigned long long proc_start_time(pid_t pid);

/*
 * A process's identity across pid reuse and reboots, for a run's owner:
 * "BOOTID:STARTTIME" of process pid (0: this one) in out.  Returns 0, or
 * -1 if pid is gone.
 */
int proc_identity(pid_t pid, char *out, size_t outlen);

/* Describe a wait status: "exited with status 3", "killed by signal 9". */
void proc_status_str(int status, char *buf, size_t len);

#endif
