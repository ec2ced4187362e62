/* landlock.c: the Landlock ruleset of a tool server's sandbox. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/util.h"
#include "runtime/sandbox_int.h"

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

/* The Landlock ABI version of the kernel, or 0 with errno. */
int
sb_landlock_abi(void)
{
	long v = syscall(SYS_landlock_create_ruleset, NULL, 0,
	    LL_CREATE_RULESET_VERSION);

	return v < 0 ? 0 : (int)v;
}

/* The filesystem rights Landlock ABI abi handles. */
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

/* Note a rule's path, resolved, in sb->paths (to explain denials). */
static void
sb_ll_note(struct sandbox *sb, const char *path, int write)
{
	char real[PATH_MAX];

	if (sb->paths == NULL)
		sb->paths = json_pack("{s:[], s:[]}", "read", "write");
	if (realpath(path, real) == NULL)
		snprintf(real, sizeof real, "%s", path);
	json_array_append_new(json_object_get(sb->paths, write ? "write" :
	    "read"), json_string(real));
}

/*
 * Whether dir is a directory no argument opens as a whole: / and the
 * system's own (/etc would bring /etc/shadow), and any directory right
 * under /, which is never a package's root.
 */
static int
sb_is_system(const char *dir)
{
	static const char *const sys[] = { "/", "/etc", "/proc", "/sys",
	    "/dev", "/boot", "/run", NULL };
	int i;

	for (i = 0; sys[i] != NULL; i++)
		if (strcmp(dir, sys[i]) == 0 || (i > 0 && strncmp(dir, sys[i],
		    strlen(sys[i])) == 0 && dir[strlen(sys[i])] == '/'))
			return 1;
	return 0;
}

/* Whether dir is a home directory: $HOME, /root, or /home/NAME. */
static int
sb_is_home(const char *dir)
{
	const char *home = getenv("HOME");
	char real[PATH_MAX];

	if (strcmp(dir, "/root") == 0 || (strncmp(dir, "/home/", 6) == 0 &&
	    strchr(dir + 6, '/') == NULL))
		return 1;
	return home != NULL && *home == '/' && realpath(home, real) != NULL &&
	    strcmp(real, dir) == 0;
}

void
sb_package_root(const char *file, char *out, size_t len)
{
	static const char *const marks[] = { "package.json",
	    "pyproject.toml", "setup.py", ".git", NULL };
	char dir[PATH_MAX], probe[PATH_MAX + 32], *slash;
	int i;

	snprintf(dir, sizeof dir, "%s", file);
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir) {
		snprintf(out, len, "%s", file);
		return;
	}
	*slash = '\0';
	/* Never a home directory, a system one or one right under /:
	   then the file alone. */
	snprintf(out, len, "%s", sb_is_home(dir) || sb_is_system(dir) ||
	    strchr(dir + 1, '/') == NULL ? file : dir);
	while (dir[0] == '/' && strchr(dir + 1, '/') != NULL &&
	    !sb_is_home(dir) && !sb_is_system(dir)) {
		for (i = 0; marks[i] != NULL; i++) {
			snprintf(probe, sizeof probe, "%s/%s", dir, marks[i]);
			if (access(probe, F_OK) == 0) {
				snprintf(out, len, "%s", dir);
				return;
			}
		}
		if ((slash = strrchr(dir, '/')) == NULL)
			break;
		if (slash == dir)
			break;
		*slash = '\0';
	}
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
	sb_ll_note(sb, path, (rights & LL_FS_WRITE_FILE) != 0);
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

/*
 * A version manager's shim (pyenv, rbenv, nodenv, asdf and mise keep them
 * in ROOT/shims, volta in ~/.volta/bin) runs the manager, which picks the
 * real interpreter under ROOT: make ROOT readable, and the version files
 * the managers read from the home directory.  Never a home directory or /
 * as ROOT.
 */
static void
sb_ll_shim(struct sandbox *sb, const char *file, uint64_t rr)
{
	static const char *const vfiles[] = { ".tool-versions",
	    ".python-version", ".node-version", ".nvmrc", ".config/mise",
	    NULL };
	const char *home = getenv("HOME");
	char root[PATH_MAX], sub[PATH_MAX + 32], *slash, err[16];
	size_t n;
	int i;

	snprintf(root, sizeof root, "%s", file);
	if ((slash = strrchr(root, '/')) == NULL || slash == root)
		return;
	*slash = '\0';
	n = strlen(root);
	if (n > 6 && strcmp(root + n - 6, "/shims") == 0)
		root[n - 6] = '\0';
	else if (n > 10 && strcmp(root + n - 10, "/.volta/bin") == 0)
		root[n - 4] = '\0';
	else
		return;
	if (root[0] == '\0' || sb_is_home(root))
		return;
	sb_ll_allow(sb, root, rr, 1, err, sizeof err);
	for (i = 0; home != NULL && *home == '/' && vfiles[i] != NULL; i++) {
		snprintf(sub, sizeof sub, "%s/%s", home, vfiles[i]);
		sb_ll_allow(sb, sub, LL_FS_READ_FILE | LL_FS_READ_DIR, 1, err,
		    sizeof err);
	}
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
		sb_ll_shim(sb, file, rr);
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

/*
 * An argument of the command that names an existing file (a script, its
 * package's entry point) makes its package readable: sb_package_root,
 * and the node_modules directories above it, where node looks for the
 * package's dependencies.  One that names a directory (the server's data)
 * makes it readable, not executable; never / itself.  "--opt=/p" names
 * /p; a relative name is taken from cwd.
 */
static void
sb_ll_arg(struct sandbox *sb, const char *arg, const char *cwd, uint64_t rr)
{
	char path[PATH_MAX], real[PATH_MAX], root[PATH_MAX];
	char nm[PATH_MAX + 16], *slash;
	const char *eq;
	struct stat st;
	char err[16];

	if (arg[0] == '-' && (eq = strchr(arg, '=')) != NULL)
		arg = eq + 1;
	if (arg[0] == '\0' || arg[0] == '-')
		return;
	if (arg[0] == '/')
		snprintf(path, sizeof path, "%s", arg);
	else if (cwd != NULL && snprintf(path, sizeof path, "%s/%s", cwd,
	    arg) >= (int)sizeof path)
		return;
	else if (cwd == NULL)
		return;
	if (realpath(path, real) == NULL || stat(real, &st) != 0 ||
	    (S_ISDIR(st.st_mode) && sb_is_system(real)))
		return;
	if (S_ISDIR(st.st_mode)) {
		sb_ll_allow(sb, real, LL_FS_READ_FILE | LL_FS_READ_DIR, 1,
		    err, sizeof err);
		return;
	}
	if (!S_ISREG(st.st_mode))
		return;
	sb_package_root(real, root, sizeof root);
	sb_ll_allow(sb, root, rr, 1, err, sizeof err);
	/* In a node_modules tree: the outermost, with its dependencies. */
	if ((slash = strstr(real, "/node_modules/")) != NULL) {
		snprintf(nm, sizeof nm, "%.*s/node_modules", (int)(slash -
		    real), real);
		sb_ll_allow(sb, nm, rr, 1, err, sizeof err);
	}
	snprintf(path, sizeof path, "%s", root);
	while ((slash = strrchr(path, '/')) != NULL && slash != path) {
		*slash = '\0';
		if (sb_is_home(path))
			break;
		snprintf(nm, sizeof nm, "%s/node_modules", path);
		sb_ll_allow(sb, nm, rr, 1, err, sizeof err);
	}
}

/* Build the Landlock ruleset; on an old or Landlock-less kernel, note it. */
int
sb_prepare_landlock(struct sandbox *sb, char *const *argv, const char *path,
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
	sb_ll_command(sb, argv[0], path, rr);
	for (i = 1; argv[i] != NULL; i++)
		sb_ll_arg(sb, argv[i], cwd, rr);
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
	if (p->state != NULL &&
	    sb_ll_allow(sb, p->state, rw, 0, err, errlen) != 0)
		return -1;
	for (i = 0; p->write != NULL && p->write[i] != NULL; i++)
		if (sb_ll_allow(sb, p->write[i], rw, 0, err, errlen) != 0)
			return -1;
	sb->proc_rights = LL_FS_READ_FILE | LL_FS_READ_DIR;
	return 0;
}

/* In the child: our own /proc entry, then restrict ourselves. */
void
sb_landlock_enter(const struct sandbox *sb, struct sandbox_report *rep)
{
	struct ll_path_beneath_attr pb;
	int fd;

	if (sb->ruleset_fd < 0)
		return;
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
	if (syscall(SYS_landlock_restrict_self, sb->ruleset_fd, 0) == 0)
		rep->enforced |= SB_LANDLOCK |
		    (sb->ll_net ? SB_LANDLOCK_NET : 0) |
		    (sb->ll_scope ? SB_LANDLOCK_SCOPE : 0);
	else {
		sb_why(rep, SB_LANDLOCK, errno, "landlock_restrict_self");
		sb_why(rep, SB_LANDLOCK_NET, errno, "landlock_restrict_self");
		sb_why(rep, SB_LANDLOCK_SCOPE, errno,
		    "landlock_restrict_self");
	}
	close(sb->ruleset_fd);
}

json_t *
sandbox_paths(const struct sandbox *sb)
{
	return sb->paths != NULL ? json_incref(sb->paths) : NULL;
}
