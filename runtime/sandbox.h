/*
 * sandbox.h: confining the MCP server processes a worker starts.
 *
 * A profile (struct sandbox_profile) says what one tool server may touch:
 * readable and writable paths, network or not, resource limits, the
 * environment names it inherits, and which layers must be in force.  The
 * worker parses it from the task's server spec (sandbox_profile_parse).
 *
 * Starting a server takes three steps.  In the parent, sandbox_prepare
 * does everything that allocates: it resolves the paths, builds the
 * Landlock ruleset and compiles the seccomp filter to BPF.  In the child,
 * between fork and exec, sandbox_enter applies the layers with system
 * calls only (the worker has threads, so the child must not allocate), in
 * this order: user and network namespaces (so that unshare can still be
 * called, and so that RLIMIT_NPROC counts the namespace's processes),
 * rlimits, PR_SET_NO_NEW_PRIVS, Landlock, seccomp.  The child sends back a
 * struct sandbox_report saying which layers are actually in force; the
 * parent records it (sandbox_report_json) and warns about what is missing.
 *
 * Every layer is best effort unless the profile requires it: a kernel
 * without Landlock, or a container that forbids user namespaces, leaves
 * that layer out and says why; a required layer that cannot be enforced
 * makes the server fail to start with a message naming the layer.
 * docs/security.md describes what each layer stops.
 */
#ifndef WEFT_SANDBOX_H
#define WEFT_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>
#include <jansson.h>

/* Layers, as bits in want/enforced/require/disable masks. */
#define SB_RLIMITS		0x001	/* setrlimit: memory, CPU, ... */
#define SB_NNP			0x002	/* PR_SET_NO_NEW_PRIVS */
#define SB_LANDLOCK		0x004	/* Landlock filesystem rules */
#define SB_LANDLOCK_NET		0x008	/* Landlock TCP bind/connect (ABI 4) */
#define SB_LANDLOCK_SCOPE	0x010	/* Landlock signal/abstract-socket
					   scoping (ABI 6) */
#define SB_SECCOMP		0x020	/* seccomp-bpf deny list */
#define SB_USERNS		0x040	/* a user namespace of its own */
#define SB_NETNS		0x080	/* a network namespace of its own */
#define SB_NLAYERS		8

/* Defaults of a profile's limits. */
#define SB_DEF_MEMORY		(4LL << 30)	/* RLIMIT_AS, bytes */
#define SB_DEF_CPU		600		/* RLIMIT_CPU, seconds */
#define SB_DEF_PROCESSES	256		/* RLIMIT_NPROC */
#define SB_DEF_FILES		1024		/* RLIMIT_NOFILE */
#define SB_DEF_FILE_SIZE	(1LL << 30)	/* RLIMIT_FSIZE, bytes */

struct sandbox_profile {
	char		**read;		/* extra readable paths, absolute */
	char		**write;	/* extra writable paths, absolute */
	char		 *scratch;	/* the per-run writable dir, set by
					   the worker; NULL for none */
	char		 *state;	/* the writable dir kept between
					   runs (state = true), set by the
					   worker; NULL for none */
	int		  network;	/* 1: network allowed */
	long long	  memory;	/* limits; -1: no limit */
	long long	  cpu;
	long long	  processes;
	long long	  files;
	long long	  file_size;
	char		**env_allow;	/* extra names taken from the worker's
					   environment */
	unsigned	  require;	/* SB_* layers that must be in force */
	unsigned	  disable;	/* SB_* layers turned off */
	int		  debug;	/* denied calls go to the worker,
					   which names them (user notification)
					   and answers EPERM */
};

/* What the child found, sent back to the parent before exec. */
struct sandbox_report {
	unsigned	 want;		/* layers the profile asked for */
	unsigned	 enforced;	/* layers in force at exec */
	int		 landlock_abi;	/* 0: none */
	struct {
		int	 err;		/* errno of the failed call */
		char	 what[56];	/* the call or reason */
	}		 why[SB_NLAYERS];	/* for layers wanted, not in force */
};

struct sandbox;

/*
 * Parse the profile at /server/sandbox: spec is the JSON value (NULL or
 * null for the defaults; false means no sandbox, and then *out is set to
 * NULL).  Returns 0 and sets *out (free with sandbox_profile_free), or -1
 * with a message naming the field, such as
 * "/server/sandbox/memory: must be a positive integer or false", in err.
 */
int sandbox_profile_parse(json_t *spec, struct sandbox_profile **out,
    char *err, size_t errlen);
void sandbox_profile_free(struct sandbox_profile *);

/*
 * In the parent, before fork: prepare the layers of profile p for the
 * command argv (argv[0] looked up in path, the child's $PATH, when it has
 * no '/') run in cwd (may be NULL).  Its arguments widen the default
 * reads (docs/mcp-servers.md): a file makes its package readable, a
 * directory is readable.  Returns 0 and sets *out, or -1 with a message
 * in err: a required layer the kernel lacks, a read or write path that
 * does not exist.  The profile is borrowed and must outlive *out.
 */
int sandbox_prepare(const struct sandbox_profile *p, char *const *argv,
    const char *path, const char *cwd, struct sandbox **out, char *err,
    size_t errlen);
/*
 * The paths sb's Landlock rules let the server read and write, resolved,
 * as {"read": [...], "write": [...]} (new reference); NULL when Landlock
 * is not in the profile or the kernel.  Kept to explain a later denial.
 */
json_t *sandbox_paths(const struct sandbox *);

/*
 * Say why a sandboxed server failed when text (textlen bytes, the tail of
 * its stderr) shows it was refused a path (EACCES, EPERM, "Permission
 * denied", ...) that paths (from sandbox_paths) does not allow: writes in
 * buf "the sandbox does not let it read /p: add sandbox = { read = {
 * \"/dir\" } }" (or write) and returns 1; 0 when it finds no denial.
 */
int sandbox_explain(json_t *paths, const char *text, size_t textlen,
    char *buf, size_t len);

/* Release what sandbox_prepare made (in the parent, after the fork). */
void sandbox_free(struct sandbox *);

/*
 * In the child, between fork and exec: apply the layers and fill rep.
 * Makes system calls only.  Returns 0, or -1 when a required layer (or a
 * step that cannot be undone) failed: then *layer is its SB_* bit and
 * rep->why says what failed.  In debug mode *notify_fd is the seccomp
 * listener for the parent (close-on-exec), else -1.
 */
int sandbox_enter(const struct sandbox *, struct sandbox_report *rep,
    unsigned *layer, int *notify_fd);

/*
 * In the parent, debug mode: take one notification from the listener fd,
 * answer it with EPERM, and describe the denied call ("ptrace") in name.
 * Returns 0 and sets *pid, or -1 (the server went away: close fd).
 */
int sandbox_notify_answer(int fd, pid_t *pid, char *name, size_t len);

/* The name of one layer bit: "landlock", "seccomp", ... */
const char *sandbox_layer_name(unsigned layer);
/* Parse a layer name; 0 if unknown. */
unsigned sandbox_layer_bit(const char *name);

/*
 * The report as JSON (new reference): {"enforced":[names], "missing":
 * {name: reason}, "landlock_abi":N, "network":bool, "limits":{...}}.
 */
json_t *sandbox_report_json(const struct sandbox_report *,
    const struct sandbox_profile *);
/*
 * Describe the layers wanted but missing, "landlock (landlock_create_
 * ruleset: Function not implemented), ...", into buf; returns the number
 * of missing layers.
 */
int sandbox_report_missing(const struct sandbox_report *, char *buf,
    size_t len);
/* Describe why layer failed, from the report, into buf. */
void sandbox_report_why(const struct sandbox_report *, unsigned layer,
    char *buf, size_t len);

/*
 * Confine the calling process, a worker, for the rest of its life:
 * PR_SET_NO_NEW_PRIVS, no core dumps (RLIMIT_CORE 0: a worker holds
 * tokens), and if seccomp, the tool servers' deny list on every thread
 * (TSYNC), less unshare (the worker puts its servers in namespaces) and,
 * in a build with AddressSanitizer, less ptrace (its leak checker needs
 * it).  The servers it starts inherit this and add their own layers.
 * rep says what is in force (want/enforced/why, as for a server).
 * Returns 0, or -1 when a wanted layer is missing.
 */
int sandbox_self(int seccomp, struct sandbox_report *rep);

/* What this kernel provides, for `weft doctor`. */
struct sandbox_probe {
	int		 landlock_abi;	/* 0: none */
	int		 landlock_err;	/* errno when none */
	int		 seccomp;	/* 1: filter mode available */
	int		 seccomp_err;
	int		 nnp;		/* 1: PR_SET_NO_NEW_PRIVS works */
	int		 userns;	/* 1: unshare(CLONE_NEWUSER) works */
	int		 userns_err;
	int		 userns_unpriv;	/* same for an unprivileged uid; -1:
					   not tried (not root) */
	int		 netns;		/* 1: a net namespace too */
	int		 netns_err;
};
/* Probe in forked children; never changes the calling process. */
void sandbox_probe(struct sandbox_probe *);

#endif
