/* cmd_doctor.c: `weft doctor`: which sandbox layers this kernel provides. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <jansson.h>
#include <seccomp.h>

#include "engine/cmd.h"
#include "runtime/util.h"
#include "runtime/sandbox.h"

struct doctor_layer {
	const char	*name;
	int		 ok;
	char		 detail[256];
};

/* What each Landlock ABI adds. */
static const char *
doctor_landlock_features(int abi)
{
	static const char *const f[] = { "",
	    "filesystem",
	    "filesystem, rename/link across dirs (refer)",
	    "filesystem, refer, truncate",
	    "filesystem, refer, truncate, TCP bind/connect",
	    "filesystem, refer, truncate, TCP, ioctl on devices",
	    "filesystem, refer, truncate, TCP, ioctl, signal and abstract "
	    "unix socket scoping",
	    "filesystem, refer, truncate, TCP, ioctl, scoping, audit logging"
	};

	if (abi <= 0)
		return "";
	return f[abi < 7 ? abi : 7];
}

/* Fill the table of layers from a probe. */
static int
doctor_layers(const struct sandbox_probe *pr, struct doctor_layer *l)
{
	const struct scmp_version *v = seccomp_version();
	int n = 0;

	l[n].name = "rlimits";
	l[n].ok = 1;
	snprintf(l[n].detail, sizeof l[n].detail, "address space, CPU "
	    "seconds, processes, open files, file size%s",
	    geteuid() == 0 ? "; RLIMIT_NPROC does not bind root" : "");
	n++;
	l[n].name = "no_new_privs";
	l[n].ok = pr->nnp;
	snprintf(l[n].detail, sizeof l[n].detail, "%s", pr->nnp ?
	    "setuid binaries cannot raise privileges" :
	    "prctl(PR_SET_NO_NEW_PRIVS) failed");
	n++;
	l[n].name = "landlock";
	l[n].ok = pr->landlock_abi > 0;
	if (l[n].ok)
		snprintf(l[n].detail, sizeof l[n].detail, "ABI %d: %s",
		    pr->landlock_abi,
		    doctor_landlock_features(pr->landlock_abi));
	else
		snprintf(l[n].detail, sizeof l[n].detail, "%s",
		    pr->landlock_err == EOPNOTSUPP ? "built into the kernel "
		    "but not enabled (add landlock to the lsm= boot "
		    "parameter)" : pr->landlock_err == ENOSYS ? "the "
		    "kernel has no Landlock (Linux 5.13 or later, "
		    "CONFIG_SECURITY_LANDLOCK)" : strerror(pr->landlock_err));
	n++;
	l[n].name = "landlock_net";
	l[n].ok = pr->landlock_abi >= 4;
	snprintf(l[n].detail, sizeof l[n].detail, "%s", l[n].ok ?
	    "TCP bind and connect denied when network = false" :
	    "needs Landlock ABI 4 (Linux 6.7)");
	n++;
	l[n].name = "landlock_scope";
	l[n].ok = pr->landlock_abi >= 6;
	snprintf(l[n].detail, sizeof l[n].detail, "%s", l[n].ok ?
	    "no signals to processes outside the sandbox; no abstract unix "
	    "sockets when network = false" :
	    "needs Landlock ABI 6 (Linux 6.12)");
	n++;
	l[n].name = "seccomp";
	l[n].ok = pr->seccomp;
	if (pr->seccomp)
		snprintf(l[n].detail, sizeof l[n].detail, "filter mode, "
		    "libseccomp %u.%u.%u, API level %u",
		    v->major, v->minor, v->micro, seccomp_api_get());
	else
		snprintf(l[n].detail, sizeof l[n].detail, "filter mode "
		    "unavailable: %s", strerror(pr->seccomp_err));
	n++;
	l[n].name = "userns";
	l[n].ok = pr->userns;
	if (pr->userns)
		snprintf(l[n].detail, sizeof l[n].detail, "user namespaces%s",
		    pr->userns_unpriv == 1 ? ", for unprivileged users too" :
		    pr->userns_unpriv == 0 ? ", but not for unprivileged "
		    "users" : "");
	else
		snprintf(l[n].detail, sizeof l[n].detail, "unshare("
		    "CLONE_NEWUSER): %s (see user.max_user_namespaces, "
		    "kernel.unprivileged_userns_clone)",
		    strerror(pr->userns_err));
	n++;
	l[n].name = "netns";
	l[n].ok = pr->netns;
	snprintf(l[n].detail, sizeof l[n].detail, "%s%s", pr->netns ?
	    "an empty network namespace when network = false" :
	    "unshare(CLONE_NEWNET): ", pr->netns ? "" :
	    strerror(pr->netns_err));
	n++;
	return n;
}

static void
doctor_usage(FILE *f)
{
	fprintf(f,
"usage: weft doctor [--json]\n"
"\n"
"Report which sandbox layers this kernel provides to the MCP servers\n"
"that workers start: rlimits, no_new_privs, Landlock (filesystem, TCP,\n"
"scoping), seccomp, user and network namespaces.  A layer the kernel\n"
"lacks is left out with a warning when a server starts; a server whose\n"
"profile has require = { \"landlock\", ... } fails to start instead.\n"
"See docs/security.md.  Exit status 0.\n"
"\n"
"  --json   print the report as one JSON object\n");
}

int
cmd_doctor(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct doctor_layer l[SB_NLAYERS];
	struct sandbox_probe pr;
	struct utsname u;
	json_t *o, *layers, *miss;
	char *s;
	int ch, json = 0, n, i, missing = 0;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			json = 1;
			break;
		case 'h':
			doctor_usage(stdout);
			return WEFT_EXIT_OK;
		default:
			doctor_usage(stderr);
			return WEFT_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		doctor_usage(stderr);
		return WEFT_EXIT_USAGE;
	}
	if (uname(&u) != 0)
		memset(&u, 0, sizeof u);
	sandbox_probe(&pr);
	n = doctor_layers(&pr, l);
	for (i = 0; i < n; i++)
		missing += !l[i].ok;
	if (json) {
		o = json_pack("{s:s, s:s, s:s, s:i, s:b}", "kernel", u.sysname,
		    "release", u.release, "machine", u.machine, "landlock_abi",
		    pr.landlock_abi, "root", geteuid() == 0);
		layers = json_object();
		miss = json_array();
		for (i = 0; i < n; i++) {
			json_object_set_new(layers, l[i].name, json_pack(
			    "{s:b, s:s}", "available", l[i].ok, "detail",
			    l[i].detail));
			if (!l[i].ok)
				json_array_append_new(miss,
				    json_string(l[i].name));
		}
		json_object_set_new(o, "layers", layers);
		json_object_set_new(o, "missing", miss);
		json_object_set_new(o, "defaults", json_pack("{s:b, s:I, s:I, "
		    "s:I, s:I, s:I}", "network", 0, "memory",
		    (json_int_t)SB_DEF_MEMORY, "cpu", (json_int_t)SB_DEF_CPU,
		    "processes", (json_int_t)SB_DEF_PROCESSES, "files",
		    (json_int_t)SB_DEF_FILES, "file_size",
		    (json_int_t)SB_DEF_FILE_SIZE));
		s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", s);
		free(s);
		json_decref(o);
		return WEFT_EXIT_OK;
	}
	printf("sandbox layers for MCP servers on %s %s %s%s:\n", u.sysname,
	    u.release, u.machine, geteuid() == 0 ? " (running as root)" : "");
	for (i = 0; i < n; i++)
		printf("  %-15s %-4s %s\n", l[i].name, l[i].ok ? "yes" : "NO",
		    l[i].detail);
	if (missing == 0)
		printf("every layer is available.\n");
	else
		printf("%d layer%s missing: servers run without %s, with a "
		    "warning at each start;\nrequire = { ... } in a server's "
		    "sandbox makes a missing layer an error.\n", missing,
		    missing == 1 ? " is" : "s are", missing == 1 ? "it" :
		    "them");
	printf("defaults: network denied, memory %lld MiB, cpu %d s, "
	    "processes %d, open files %d, file size %lld MiB\n",
	    SB_DEF_MEMORY >> 20, SB_DEF_CPU, SB_DEF_PROCESSES, SB_DEF_FILES,
	    SB_DEF_FILE_SIZE >> 20);
	return WEFT_EXIT_OK;
}
