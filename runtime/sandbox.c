/* sandbox.c: rlimits, no_new_privs, Landlock, seccomp and namespaces. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>

#include "runtime/util.h"
#include "runtime/sandbox.h"

/*
 * Landlock, defined here rather than taken from <linux/landlock.h>:
 * Debian 12's headers stop at ABI 2, and weft uses what the running kernel
 * reports (up to ABI 6), whatever it was built against.
 */
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset	444
#endif
#ifndef SYS_landlock_add_rule
#define SYS_landlock_add_rule		445
#endif
#ifndef SYS_landlock_restrict_self
#define SYS_landlock_restrict_self	446
#endif
#define LL_CREATE_RULESET_VERSION	(1U << 0)
#define LL_RULE_PATH_BENEATH		1
#define LL_RULE_NET_PORT		2

#define LL_FS_EXECUTE		(1ULL << 0)
#define LL_FS_WRITE_FILE	(1ULL << 1)
#define LL_FS_READ_FILE		(1ULL << 2)
#define LL_FS_READ_DIR		(1ULL << 3)
#define LL_FS_REFER		(1ULL << 13)	/* ABI 2 */
#define LL_FS_TRUNCATE		(1ULL << 14)	/* ABI 3 */
#define LL_FS_IOCTL_DEV		(1ULL << 15)	/* ABI 5 */
#define LL_NET_BIND_TCP		(1ULL << 0)	/* ABI 4 */
#define LL_NET_CONNECT_TCP	(1ULL << 1)	/* ABI 4 */
#define LL_SCOPE_ABSTRACT_UNIX	(1ULL << 0)	/* ABI 6 */
#define LL_SCOPE_SIGNAL		(1ULL << 1)	/* ABI 6 */

/* Rights that apply to a file (not a directory) in a path rule. */
#define LL_FS_FILE_RIGHTS	(LL_FS_EXECUTE | LL_FS_WRITE_FILE | \
    LL_FS_READ_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV)
#define LL_FS_READ_RIGHTS	(LL_FS_EXECUTE | LL_FS_READ_FILE | \
    LL_FS_READ_DIR)

struct ll_ruleset_attr {
	uint64_t	handled_access_fs;
	uint64_t	handled_access_net;	/* ABI 4 */
	uint64_t	scoped;			/* ABI 6 */
};

struct ll_path_beneath_attr {
	uint64_t	allowed_access;
	int32_t		parent_fd;
} __attribute__((packed));

#ifndef CLONE_NEWUSER
#define CLONE_NEWUSER	0x10000000
#endif
#ifndef CLONE_NEWNET
#define CLONE_NEWNET	0x40000000
#endif

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
};

static const char *const sb_layer_names[SB_NLAYERS] = {
	"rlimits", "no_new_privs", "landlock", "landlock_net",
	"landlock_scope", "seccomp", "userns", "netns"
};

/*
 * Readable by default: what a dynamically linked program, a node or a
 * python interpreter reads to start.  Paths that do not exist are skipped.
 * /etc is not readable as a whole: /etc/shadow and friends stay closed
 * even to a server running as root.
 */
static const char *const sb_sys_read[] = {
	"/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin",
	"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
	"/etc/localtime", "/etc/timezone", "/etc/passwd", "/etc/group",
	"/etc/nsswitch.conf", "/etc/hosts", "/etc/host.conf",
	"/etc/resolv.conf", "/etc/gai.conf", "/etc/services",
	"/etc/protocols", "/etc/ssl", "/etc/ca-certificates",
	"/etc/pki", "/etc/crypto-policies", "/etc/mime.types",
	"/etc/os-release", "/etc/alternatives", "/etc/locale.alias",
	"/etc/nodejs", "/etc/npmrc", "/etc/python3",
	"/proc/meminfo", "/proc/stat", "/proc/cpuinfo", "/proc/loadavg",
	"/proc/uptime", "/proc/version", "/proc/filesystems",
	"/proc/sys/vm/overcommit_memory", "/proc/sys/kernel/random",
	"/sys/devices/system/cpu", "/sys/fs/cgroup",
	"/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
	NULL
};

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

const char *
sandbox_layer_name(unsigned layer)
{
	int i;

	for (i = 0; i < SB_NLAYERS; i++)
		if (layer == (1U << i))
			return sb_layer_names[i];
	return "?";
}

unsigned
sandbox_layer_bit(const char *name)
{
	int i;

	for (i = 0; i < SB_NLAYERS; i++)
		if (strcmp(name, sb_layer_names[i]) == 0)
			return 1U << i;
	return 0;
}

static int
sb_index(unsigned layer)
{
	int i;

	for (i = 0; i < SB_NLAYERS; i++)
		if (layer == (1U << i))
			return i;
	return 0;
}

/* Copy src into dst without libc formatting (safe in the child). */
static void
sb_copy(char *dst, size_t n, const char *src)
{
	size_t i;

	for (i = 0; i + 1 < n && src[i] != '\0'; i++)
		dst[i] = src[i];
	dst[i] = '\0';
}

/* Note why layer is not in force. */
static void
sb_why(struct sandbox_report *rep, unsigned layer, int err, const char *what)
{
	int i = sb_index(layer);

	rep->why[i].err = err;
	sb_copy(rep->why[i].what, sizeof rep->why[i].what, what);
}

/* ---- profiles ---- */

void
sandbox_profile_free(struct sandbox_profile *p)
{
	if (p == NULL)
		return;
	strv_free(p->read);
	strv_free(p->write);
	strv_free(p->env_allow);
	free(p->scratch);
	free(p);
}

/* An array of strings at /server/sandbox/key; paths must be absolute. */
static int
sb_parse_strv(json_t *v, const char *key, int paths, char ***out,
    char *err, size_t errlen)
{
	char **s;
	size_t i;
	const char *str;

	if (json_is_object(v) && json_object_size(v) == 0) {
		/* An empty Lua table arrives as {}. */
		*out = xcalloc(1, sizeof **out);
		return 0;
	}
	if (!json_is_array(v)) {
		errf(err, errlen, "/server/sandbox/%s: must be an array of "
		    "strings", key);
		return -1;
	}
	for (i = 0; i < json_array_size(v); i++) {
		str = json_string_value(json_array_get(v, i));
		if (str == NULL || *str == '\0') {
			errf(err, errlen, "/server/sandbox/%s/%zu: must be a "
			    "non-empty string", key, i);
			return -1;
		}
		if (paths && str[0] != '/') {
			errf(err, errlen, "/server/sandbox/%s/%zu: '%s' is not "
			    "an absolute path", key, i, str);
			return -1;
		}
	}
	s = xcalloc(json_array_size(v) + 1, sizeof *s);
	for (i = 0; i < json_array_size(v); i++)
		s[i] = xstrdup(json_string_value(json_array_get(v, i)));
	*out = s;
	return 0;
}

/* A limit: a positive integer, or false for none. */
static int
sb_parse_limit(json_t *v, const char *key, long long *out, char *err,
    size_t errlen)
{
	if (json_is_false(v)) {
		*out = -1;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) <= 0) {
		errf(err, errlen, "/server/sandbox/%s: must be a positive "
		    "integer or false", key);
		return -1;
	}
	*out = json_integer_value(v);
	return 0;
}

/* A list of layer names into a mask. */
static int
sb_parse_layers(json_t *v, const char *key, unsigned allowed, unsigned *out,
    char *err, size_t errlen)
{
	char **names;
	unsigned bit;
	size_t i;

	if (sb_parse_strv(v, key, 0, &names, err, errlen) != 0)
		return -1;
	*out = 0;
	for (i = 0; names[i] != NULL; i++) {
		bit = sandbox_layer_bit(names[i]);
		if (bit == 0 || (bit & allowed) == 0) {
			errf(err, errlen, "/server/sandbox/%s/%zu: '%s' is not "
			    "a layer that can be %s", key, i, names[i],
			    strcmp(key, "require") == 0 ? "required" :
			    "disabled");
			strv_free(names);
			return -1;
		}
		*out |= bit;
	}
	strv_free(names);
	return 0;
}

int
sandbox_profile_parse(json_t *spec, struct sandbox_profile **out, char *err,
    size_t errlen)
{
	struct sandbox_profile *p;
	const char *k;
	json_t *v;
	int rv = 0;

	if (json_is_false(spec)) {
		*out = NULL;
		return 0;
	}
	if (spec != NULL && !json_is_null(spec) && !json_is_true(spec) &&
	    !json_is_object(spec)) {
		errf(err, errlen, "/server/sandbox: must be an object or "
		    "false");
		return -1;
	}
	p = xcalloc(1, sizeof *p);
	p->memory = SB_DEF_MEMORY;
	p->cpu = SB_DEF_CPU;
	p->processes = SB_DEF_PROCESSES;
	p->files = SB_DEF_FILES;
	p->file_size = SB_DEF_FILE_SIZE;
	if (json_is_object(spec)) {
		json_object_foreach(spec, k, v) {
			if (strcmp(k, "read") == 0)
				rv = sb_parse_strv(v, k, 1, &p->read, err,
				    errlen);
			else if (strcmp(k, "write") == 0)
				rv = sb_parse_strv(v, k, 1, &p->write, err,
				    errlen);
			else if (strcmp(k, "env_allow") == 0)
				rv = sb_parse_strv(v, k, 0, &p->env_allow, err,
				    errlen);
			else if (strcmp(k, "debug") == 0) {
				if (!json_is_boolean(v)) {
					errf(err, errlen, "/server/sandbox/"
					    "debug: must be true or false");
					rv = -1;
				}
				p->debug = json_is_true(v);
			} else if (strcmp(k, "network") == 0) {
				if (!json_is_boolean(v)) {
					errf(err, errlen, "/server/sandbox/"
					    "network: must be true or false");
					rv = -1;
				}
				p->network = json_is_true(v);
			} else if (strcmp(k, "memory") == 0)
				rv = sb_parse_limit(v, k, &p->memory, err,
				    errlen);
			else if (strcmp(k, "cpu") == 0)
				rv = sb_parse_limit(v, k, &p->cpu, err, errlen);
			else if (strcmp(k, "processes") == 0)
				rv = sb_parse_limit(v, k, &p->processes, err,
				    errlen);
			else if (strcmp(k, "files") == 0)
				rv = sb_parse_limit(v, k, &p->files, err,
				    errlen);
			else if (strcmp(k, "file_size") == 0)
				rv = sb_parse_limit(v, k, &p->file_size, err,
				    errlen);
			else if (strcmp(k, "require") == 0)
				rv = sb_parse_layers(v, k, ~0U, &p->require,
				    err, errlen);
			else if (strcmp(k, "disable") == 0)
				rv = sb_parse_layers(v, k, SB_LANDLOCK |
				    SB_LANDLOCK_NET | SB_LANDLOCK_SCOPE |
				    SB_SECCOMP | SB_USERNS | SB_NETNS,
				    &p->disable, err, errlen);
			else {
				errf(err, errlen, "/server/sandbox/%s: unknown "
				    "field", k);
				rv = -1;
			}
			if (rv != 0)
				break;
		}
	}
	if (rv == 0 && (p->require & p->disable) != 0) {
		errf(err, errlen, "/server/sandbox: a layer is both required "
		    "and disabled");
		rv = -1;
	}
	if (rv != 0) {
		sandbox_profile_free(p);
		return -1;
	}
	*out = p;
	return 0;
}

/* ---- preparation, in the parent ---- */

/* The Landlock ABI version of the kernel, or 0 with errno. */
static int
sb_landlock_abi(void)
{
	long v = syscall(SYS_landlock_create_ruleset, NULL, 0,
	    LL_CREATE_RULESET_VERSION);

	return v < 0 ? 0 : (int)v;
}

static uint64_t
sb_fs_rights(int abi)
{
	uint64_t r = (1ULL << 13) - 1;	/* ABI 1 */

	if (abi >= 2)
		r |= LL_FS_REFER;
	if (abi >= 3)
		r |= LL_FS_TRUNCATE;
	if (abi >= 5)
		r |= LL_FS_IOCTL_DEV;
	return r;
}

/*
 * Allow rights beneath path.  A path that does not exist is skipped when
 * optional, an error otherwise.
 */
static int
sb_ll_allow(struct sandbox *sb, const char *path, uint64_t rights,
    int optional, char *err, size_t errlen)
{
	struct ll_path_beneath_attr pb;
	struct stat st;
	int fd, e;

	if ((fd = open(path, O_PATH | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		e = errno;
		if (fd != -1)
			close(fd);
		if (optional)
			return 0;
		errf(err, errlen, "sandbox: path '%s': %s", path,
		    strerror(e));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		rights &= LL_FS_FILE_RIGHTS;
	memset(&pb, 0, sizeof pb);
	pb.allowed_access = rights;
	pb.parent_fd = fd;
	if (syscall(SYS_landlock_add_rule, sb->ruleset_fd,
	    LL_RULE_PATH_BENEATH, &pb, 0) != 0) {
		e = errno;
		close(fd);
		errf(err, errlen, "sandbox: landlock_add_rule '%s': %s", path,
		    strerror(e));
		return -1;
	}
	close(fd);
	return 0;
}

/*
 * Allow reading the directory of file, and what a program there needs
 * beside it: the outermost node_modules above it, or for x/bin/prog, x/lib
 * and x/pyvenv.cfg (a venv or an install prefix; not x itself, which may
 * be a home directory).
 */
static int
sb_ll_allow_prefix(struct sandbox *sb, const char *file, uint64_t rr)
{
	char dir[PATH_MAX], sub[PATH_MAX + 16], *slash, *nm;
	char err[16];

	snprintf(dir, sizeof dir, "%s", file);
	if ((slash = strrchr(dir, '/')) == NULL)
		return 0;
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	sb_ll_allow(sb, dir, rr, 1, err, sizeof err);
	/* node_modules/.bin/x or node_modules/pkg/dist/x: the outermost
	   node_modules holds the package and its dependencies. */
	if ((nm = strstr(dir, "/node_modules/")) != NULL ||
	    ((nm = strstr(dir, "/node_modules")) != NULL &&
	    nm[strlen("/node_modules")] == '\0')) {
		nm[strlen("/node_modules")] = '\0';
		sb_ll_allow(sb, dir, rr, 1, err, sizeof err);
		return 0;
	}
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir &&
	    strcmp(slash, "/bin") == 0) {
		*slash = '\0';
		snprintf(sub, sizeof sub, "%s/lib", dir);
		sb_ll_allow(sb, sub, rr, 1, err, sizeof err);
		snprintf(sub, sizeof sub, "%s/pyvenv.cfg", dir);
		sb_ll_allow(sb, sub, rr, 1, err, sizeof err);
	}
	return 0;
}

/* Look prog up in path as execvp would; into out. */
static int
sb_which(const char *prog, const char *path, char *out, size_t len)
{
	const char *p = path, *e;
	size_t n;

	if (strchr(prog, '/') != NULL) {
		snprintf(out, len, "%s", prog);
		return 0;
	}
	if (p == NULL || *p == '\0')
		p = "/usr/local/bin:/usr/bin:/bin";
	while (*p != '\0') {
		e = strchr(p, ':');
		n = e != NULL ? (size_t)(e - p) : strlen(p);
		if (n > 0) {
			snprintf(out, len, "%.*s/%s", (int)n, p, prog);
			if (access(out, X_OK) == 0)
				return 0;
		}
		p += n;
		if (*p == ':')
			p++;
	}
	return -1;
}

/*
 * Make the command readable and executable: its directory (as named and
 * as resolved), and for a script, its interpreter's, with `#!/usr/bin/env
 * prog` looked up in path.
 */
static void
sb_ll_command(struct sandbox *sb, const char *argv0, const char *path,
    uint64_t rr)
{
	char file[PATH_MAX], real[PATH_MAX], line[256], *s, *e;
	int fd, depth;
	ssize_t n;

	if (sb_which(argv0, path, file, sizeof file) != 0)
		return;
	for (depth = 0; depth < 3; depth++) {
		sb_ll_allow_prefix(sb, file, rr);
		if (realpath(file, real) == NULL)
			return;
		sb_ll_allow_prefix(sb, real, rr);
		if ((fd = open(real, O_RDONLY | O_CLOEXEC)) == -1)
			return;
		n = read(fd, line, sizeof line - 1);
		close(fd);
		if (n < 3 || line[0] != '#' || line[1] != '!')
			return;
		line[n] = '\0';
		if ((e = strchr(line, '\n')) != NULL)
			*e = '\0';
		for (s = line + 2; *s == ' ' || *s == '\t'; s++)
			;
		e = s + strcspn(s, " \t");
		if (strncmp(s, "/usr/bin/env", e - s) == 0 && *e != '\0') {
			for (s = e; *s == ' ' || *s == '\t'; s++)
				;
			if (strncmp(s, "-S", 2) == 0)
				for (s += 2; *s == ' ' || *s == '\t'; s++)
					;
			e = s + strcspn(s, " \t");
		}
		*e = '\0';
		if (*s == '\0' || sb_which(s, path, file, sizeof file) != 0)
			return;
	}
}

/* Build the Landlock ruleset; on an old or Landlock-less kernel, note it. */
static int
sb_prepare_landlock(struct sandbox *sb, const char *argv0, const char *path,
    const char *cwd, char *err, size_t errlen)
{
	const struct sandbox_profile *p = sb->p;
	struct ll_ruleset_attr attr;
	uint64_t fs, rw, rr = LL_FS_READ_RIGHTS;
	size_t size, i;
	int abi, e;
	char why[64];

	if ((abi = sb_landlock_abi()) == 0) {
		e = errno;
		sb_why(&sb->rep, SB_LANDLOCK, e, "landlock_create_ruleset");
		sb_why(&sb->rep, SB_LANDLOCK_NET, e,
		    "landlock_create_ruleset");
		sb_why(&sb->rep, SB_LANDLOCK_SCOPE, e,
		    "landlock_create_ruleset");
		return 0;
	}
	sb->rep.landlock_abi = abi;
	fs = sb_fs_rights(abi);
	rw = fs & ~LL_FS_EXECUTE;
	memset(&attr, 0, sizeof attr);
	attr.handled_access_fs = fs;
	size = sizeof attr.handled_access_fs;
	if (abi >= 4 && (sb->want & SB_LANDLOCK_NET)) {
		attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
		size = offsetof(struct ll_ruleset_attr, scoped);
	} else if (sb->want & SB_LANDLOCK_NET) {
		snprintf(why, sizeof why, "needs Landlock ABI 4, the kernel "
		    "has %d", abi);
		sb_why(&sb->rep, SB_LANDLOCK_NET, 0, why);
	}
	if (abi >= 6 && (sb->want & SB_LANDLOCK_SCOPE)) {
		attr.scoped = LL_SCOPE_SIGNAL;
		if (!p->network)
			attr.scoped |= LL_SCOPE_ABSTRACT_UNIX;
		size = sizeof attr;
	} else if (sb->want & SB_LANDLOCK_SCOPE) {
		snprintf(why, sizeof why, "needs Landlock ABI 6, the kernel "
		    "has %d", abi);
		sb_why(&sb->rep, SB_LANDLOCK_SCOPE, 0, why);
	}
	sb->ruleset_fd = (int)syscall(SYS_landlock_create_ruleset, &attr,
	    size, 0);
	if (sb->ruleset_fd < 0) {
		sb->ruleset_fd = -1;
		e = errno;
		sb_why(&sb->rep, SB_LANDLOCK, e, "landlock_create_ruleset");
		sb_why(&sb->rep, SB_LANDLOCK_NET, e, "landlock_create_ruleset");
		sb_why(&sb->rep, SB_LANDLOCK_SCOPE, e,
		    "landlock_create_ruleset");
		return 0;
	}
	fcntl(sb->ruleset_fd, F_SETFD, FD_CLOEXEC);
	sb->ll_net = attr.handled_access_net != 0;
	sb->ll_scope = attr.scoped != 0;
	for (i = 0; sb_sys_read[i] != NULL; i++)
		sb_ll_allow(sb, sb_sys_read[i], rr, 1, err, errlen);
	sb_ll_allow(sb, "/dev/null", LL_FS_READ_FILE | LL_FS_WRITE_FILE |
	    LL_FS_TRUNCATE | (fs & LL_FS_IOCTL_DEV), 1, err, errlen);
	if (p->network) {
		/* resolv.conf often points here (systemd-resolved). */
		sb_ll_allow(sb, "/run/systemd/resolve", rr, 1, err, errlen);
	}
	sb_ll_command(sb, argv0, path, rr);
	/* The working directory is readable (not executable). */
	if (cwd != NULL)
		sb_ll_allow(sb, cwd, LL_FS_READ_FILE | LL_FS_READ_DIR, 1, err,
		    errlen);
	for (i = 0; p->read != NULL && p->read[i] != NULL; i++)
		if (sb_ll_allow(sb, p->read[i], rr, 0, err, errlen) != 0)
			return -1;
	if (p->scratch != NULL &&
	    sb_ll_allow(sb, p->scratch, rw, 0, err, errlen) != 0)
		return -1;
	for (i = 0; p->write != NULL && p->write[i] != NULL; i++)
		if (sb_ll_allow(sb, p->write[i], rw, 0, err, errlen) != 0)
			return -1;
	sb->proc_rights = LL_FS_READ_FILE | LL_FS_READ_DIR;
	return 0;
}

/* Compile the seccomp filter to BPF; on failure, note why. */
static void
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

/* One rlimit to set in the child. */
static void
sb_rlimit(struct sandbox *sb, int res, long long soft, long long hard)
{
	sb->rl_res[sb->nrl] = res;
	sb->rl[sb->nrl].rlim_cur = soft < 0 ? RLIM_INFINITY : (rlim_t)soft;
	sb->rl[sb->nrl].rlim_max = hard < 0 ? RLIM_INFINITY : (rlim_t)hard;
	sb->nrl++;
}

int
sandbox_prepare(const struct sandbox_profile *p, const char *argv0,
    const char *path, const char *cwd, struct sandbox **out, char *err,
    size_t errlen)
{
	struct sandbox *sb = xcalloc(1, sizeof *sb);
	unsigned missing;
	char why[200];
	int i;

	sb->p = p;
	sb->ruleset_fd = -1;
	sb->want = SB_RLIMITS | SB_NNP | SB_LANDLOCK | SB_LANDLOCK_SCOPE |
	    SB_SECCOMP | SB_USERNS;
	if (!p->network)
		sb->want |= SB_LANDLOCK_NET | SB_NETNS;
	if (p->disable & SB_LANDLOCK)
		sb->want &= ~(SB_LANDLOCK | SB_LANDLOCK_NET |
		    SB_LANDLOCK_SCOPE);
	sb->want &= ~p->disable;
	sb->require = p->require;
	sb->rep.want = sb->want;

	sb_rlimit(sb, RLIMIT_AS, p->memory, p->memory);
	sb_rlimit(sb, RLIMIT_CPU, p->cpu, p->cpu < 0 ? -1 : p->cpu + 1);
	sb_rlimit(sb, RLIMIT_NPROC, p->processes, p->processes);
	sb_rlimit(sb, RLIMIT_NOFILE, p->files, p->files);
	sb_rlimit(sb, RLIMIT_FSIZE, p->file_size, p->file_size);
	sb_rlimit(sb, RLIMIT_CORE, 0, 0);
	snprintf(sb->uid_map, sizeof sb->uid_map, "%u %u 1\n",
	    (unsigned)geteuid(), (unsigned)geteuid());
	snprintf(sb->gid_map, sizeof sb->gid_map, "%u %u 1\n",
	    (unsigned)getegid(), (unsigned)getegid());

	if ((sb->want & SB_LANDLOCK) &&
	    sb_prepare_landlock(sb, argv0, path, cwd, err, errlen) != 0)
		goto fail;
	if (sb->want & SB_SECCOMP)
		sb_prepare_seccomp(sb);

	/* A required layer the parent already knows is missing. */
	missing = sb->require & ~sb->want;
	if (missing != 0) {
		errf(err, errlen, "sandbox: '%s' is required but the profile "
		    "turns it off",
		    sandbox_layer_name(missing & -missing));
		goto fail;
	}
	for (i = 0; i < SB_NLAYERS; i++) {
		if ((sb->require & (1U << i)) && sb->rep.why[i].what[0]) {
			sandbox_report_why(&sb->rep, 1U << i, why,
			    sizeof why);
			errf(err, errlen, "sandbox: '%s' is required but not "
			    "available: %s", sb_layer_names[i], why);
			goto fail;
		}
	}
	*out = sb;
	return 0;
fail:
	sandbox_free(sb);
	return -1;
}

void
sandbox_free(struct sandbox *sb)
{
	if (sb == NULL)
		return;
	if (sb->ruleset_fd >= 0)
		close(sb->ruleset_fd);
	free(sb->prog.filter);
	free(sb);
}

/* ---- in the child: system calls only ---- */

/* Write a short string to a file. */
static int
sb_write_file(const char *path, const char *s)
{
	int fd, rv = 0;
	size_t n = strlen(s);

	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1)
		return -1;
	if (write(fd, s, n) != (ssize_t)n)
		rv = -1;
	close(fd);
	return rv;
}

/* User namespace (and network namespace): map our own ids only. */
static int
sb_enter_ns(const struct sandbox *sb, struct sandbox_report *rep,
    unsigned *layer)
{
	int flags = 0;

	if (sb->want & SB_USERNS) {
		flags = CLONE_NEWUSER | ((sb->want & SB_NETNS) ?
		    CLONE_NEWNET : 0);
		if (unshare(flags) == 0) {
			if (sb_write_file("/proc/self/setgroups", "deny") != 0 &&
			    errno != ENOENT) {
				sb_why(rep, SB_USERNS, errno,
				    "writing /proc/self/setgroups");
				*layer = SB_USERNS;
				return -1;
			}
			if (sb_write_file("/proc/self/uid_map",
			    sb->uid_map) != 0) {
				sb_why(rep, SB_USERNS, errno,
				    "writing /proc/self/uid_map");
				*layer = SB_USERNS;
				return -1;
			}
			if (sb_write_file("/proc/self/gid_map",
			    sb->gid_map) != 0) {
				sb_why(rep, SB_USERNS, errno,
				    "writing /proc/self/gid_map");
				*layer = SB_USERNS;
				return -1;
			}
			rep->enforced |= SB_USERNS;
			if (flags & CLONE_NEWNET)
				rep->enforced |= SB_NETNS;
			return 0;
		}
		sb_why(rep, SB_USERNS, errno, "unshare(CLONE_NEWUSER)");
	}
	if (sb->want & SB_NETNS) {
		/* Without a user namespace, only root may do this. */
		if (unshare(CLONE_NEWNET) == 0)
			rep->enforced |= SB_NETNS;
		else
			sb_why(rep, SB_NETNS, errno, flags ?
			    "unshare(CLONE_NEWUSER|CLONE_NEWNET)" :
			    "unshare(CLONE_NEWNET)");
	}
	return 0;
}

int
sandbox_enter(const struct sandbox *sb, struct sandbox_report *rep,
    unsigned *layer, int *notify_fd)
{
	struct ll_path_beneath_attr pb;
	struct rlimit cur, want;
	unsigned missing;
	long rv;
	int i, fd;

	*notify_fd = -1;
	*rep = sb->rep;
	rep->enforced = 0;
	*layer = 0;
	if (sb_enter_ns(sb, rep, layer) != 0)
		return -1;

	for (i = 0; i < sb->nrl; i++) {
		want = sb->rl[i];
		if (getrlimit(sb->rl_res[i], &cur) == 0 &&
		    cur.rlim_max != RLIM_INFINITY) {
			/* Never above what we have: that would fail. */
			if (want.rlim_max > cur.rlim_max)
				want.rlim_max = cur.rlim_max;
			if (want.rlim_cur > want.rlim_max)
				want.rlim_cur = want.rlim_max;
		}
		if (setrlimit(sb->rl_res[i], &want) != 0) {
			sb_why(rep, SB_RLIMITS, errno, "setrlimit");
			*layer = SB_RLIMITS;
			return -1;
		}
	}
	rep->enforced |= SB_RLIMITS;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0)
		rep->enforced |= SB_NNP;
	else
		sb_why(rep, SB_NNP, errno, "prctl(PR_SET_NO_NEW_PRIVS)");

	if (sb->ruleset_fd >= 0) {
		/* Our own /proc entry only: not the worker's environ. */
		if ((fd = open("/proc/self", O_PATH | O_DIRECTORY |
		    O_CLOEXEC)) != -1) {
			memset(&pb, 0, sizeof pb);
			pb.allowed_access = sb->proc_rights;
			pb.parent_fd = fd;
			syscall(SYS_landlock_add_rule, sb->ruleset_fd,
			    LL_RULE_PATH_BENEATH, &pb, 0);
			close(fd);
		}
		if (syscall(SYS_landlock_restrict_self, sb->ruleset_fd,
		    0) == 0)
			rep->enforced |= SB_LANDLOCK |
			    (sb->ll_net ? SB_LANDLOCK_NET : 0) |
			    (sb->ll_scope ? SB_LANDLOCK_SCOPE : 0);
		else {
			sb_why(rep, SB_LANDLOCK, errno,
			    "landlock_restrict_self");
			sb_why(rep, SB_LANDLOCK_NET, errno,
			    "landlock_restrict_self");
			sb_why(rep, SB_LANDLOCK_SCOPE, errno,
			    "landlock_restrict_self");
		}
		close(sb->ruleset_fd);
	}

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

	missing = sb->require & ~rep->enforced;
	if (missing != 0) {
		*layer = missing & -missing;
		return -1;
	}
	return 0;
}

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

/* ---- reports ---- */

void
sandbox_report_why(const struct sandbox_report *rep, unsigned layer,
    char *buf, size_t len)
{
	int i = sb_index(layer);

	if (rep->why[i].what[0] == '\0')
		snprintf(buf, len, "not in force");
	else if (rep->why[i].err != 0)
		snprintf(buf, len, "%s: %s", rep->why[i].what,
		    strerror(rep->why[i].err));
	else
		snprintf(buf, len, "%s", rep->why[i].what);
}

int
sandbox_report_missing(const struct sandbox_report *rep, char *buf,
    size_t len)
{
	unsigned missing = rep->want & ~rep->enforced;
	char why[160];
	size_t off = 0;
	int i, n = 0;

	buf[0] = '\0';
	for (i = 0; i < SB_NLAYERS; i++) {
		if (!(missing & (1U << i)))
			continue;
		sandbox_report_why(rep, 1U << i, why, sizeof why);
		if (off < len)
			off += snprintf(buf + off, len - off, "%s%s (%s)",
			    n ? ", " : "", sb_layer_names[i], why);
		n++;
	}
	return n;
}

json_t *
sandbox_report_json(const struct sandbox_report *rep,
    const struct sandbox_profile *p)
{
	json_t *o = json_object(), *en = json_array(), *mi = json_object();
	json_t *lim = json_object();
	char why[160];
	int i;

	for (i = 0; i < SB_NLAYERS; i++) {
		if (rep->enforced & (1U << i))
			json_array_append_new(en,
			    json_string(sb_layer_names[i]));
		else if (rep->want & (1U << i)) {
			sandbox_report_why(rep, 1U << i, why, sizeof why);
			json_object_set_new(mi, sb_layer_names[i],
			    json_string(why));
		}
	}
	json_object_set_new(o, "enforced", en);
	json_object_set_new(o, "missing", mi);
	json_object_set_new(o, "landlock_abi",
	    json_integer(rep->landlock_abi));
	if (p != NULL) {
		json_object_set_new(o, "network", json_boolean(p->network));
#define SB_LIM(k, v) json_object_set_new(lim, k, (v) < 0 ? json_false() : \
    json_integer(v))
		SB_LIM("memory", p->memory);
		SB_LIM("cpu", p->cpu);
		SB_LIM("processes", p->processes);
		SB_LIM("files", p->files);
		SB_LIM("file_size", p->file_size);
#undef SB_LIM
		json_object_set_new(o, "limits", lim);
		if (p->scratch != NULL)
			json_object_set_new(o, "scratch",
			    json_string(p->scratch));
		if (p->debug)
			json_object_set_new(o, "debug", json_true());
	} else
		json_decref(lim);
	if (geteuid() == 0)
		json_object_set_new(o, "root", json_true());
	return o;
}

/* ---- probing, for weft doctor ---- */

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

static int
sb_probe_nnp(void)
{
	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 ? 0 : errno;
}

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

static int
sb_probe_userns(void)
{
	return unshare(CLONE_NEWUSER) == 0 ? 0 : errno;
}

static int
sb_probe_netns(void)
{
	if (unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0)
		return 0;
	return unshare(CLONE_NEWNET) == 0 ? 0 : errno;
}

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

/* ---- the worker itself ---- */

#if defined(__SANITIZE_ADDRESS__)
#define SB_SELF_ASAN	1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SB_SELF_ASAN	1
#endif
#endif

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

static int
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

int
sandbox_self(int seccomp, struct sandbox_report *rep)
{
	struct rlimit rl = { 0, 0 };

	memset(rep, 0, sizeof *rep);
	rep->want = SB_RLIMITS | SB_NNP | (seccomp ? SB_SECCOMP : 0);
	if (setrlimit(RLIMIT_CORE, &rl) == 0)
		rep->enforced |= SB_RLIMITS;
	else
		sb_why(rep, SB_RLIMITS, errno, "setrlimit(RLIMIT_CORE)");
	/*
	 * Not dumpable: its tool servers (same uid) cannot open its memory,
	 * environment or descriptors under /proc.  Not under ASan, whose
	 * LeakSanitizer attaches to the process with ptrace at exit.
	 */
#ifndef SB_SELF_ASAN
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		sb_why(rep, SB_RLIMITS, errno, "prctl(PR_SET_DUMPABLE)");
#endif
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0)
		rep->enforced |= SB_NNP;
	else
		sb_why(rep, SB_NNP, errno, "prctl(PR_SET_NO_NEW_PRIVS)");
	if (seccomp && (rep->enforced & SB_NNP))
		(void)sb_self_seccomp(rep);
	else if (seccomp)
		sb_why(rep, SB_SECCOMP, EPERM, "needs no_new_privs");
	return (rep->want & ~rep->enforced) != 0 ? -1 : 0;
}
