/*
 * sandbox.c: a tool server's sandbox: profiles, rlimits, namespaces, the
 * order of the layers (sandbox_prepare, sandbox_enter), the worker's own
 * confinement and reports.  Landlock is in landlock.c, seccomp in
 * seccomp.c, the probes for `weft doctor` in sandbox_probe.c.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "runtime/sandbox_int.h"
#include "runtime/util.h"

static const char *const sb_layer_names[SB_NLAYERS] = {
	"rlimits", "no_new_privs", "landlock", "landlock_net",
	"landlock_scope", "seccomp", "userns", "netns"
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

/* The index of a layer bit in sb_layer_names and a report's why[]. */
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
void
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
	free(p->state);
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
sandbox_prepare(const struct sandbox_profile *p, char *const *argv,
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
	    sb_prepare_landlock(sb, argv, path, cwd, err, errlen) != 0)
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
	json_decref(sb->paths);
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
	struct rlimit cur, want;
	unsigned missing;
	int i;

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

	sb_landlock_enter(sb, rep);

	sb_seccomp_enter(sb, rep, notify_fd);

	missing = sb->require & ~rep->enforced;
	if (missing != 0) {
		*layer = missing & -missing;
		return -1;
	}
	return 0;
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
		if (p->state != NULL)
			json_object_set_new(o, "state",
			    json_string(p->state));
		if (p->debug)
			json_object_set_new(o, "debug", json_true());
	} else
		json_decref(lim);
	if (geteuid() == 0)
		json_object_set_new(o, "root", json_true());
	return o;
}

/* ---- the worker itself ---- */
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
