/*
 * treemem.c: run a command and record the peak memory of every process in
 * its tree (benchmark helper, not part of weft).
 *
 *	treemem [-i MS] OUT -- COMMAND [ARG...]
 *
 * Starts COMMAND, and every MS milliseconds (default 5) walks the process
 * tree below it through /proc/PID/task/TID/children and reads VmHWM (the
 * kernel's peak resident set size) and RssAnon from /proc/PID/status.
 * VmHWM only grows, so the last value read before a process exits is its
 * peak up to the last MS milliseconds of its life.  When COMMAND exits,
 * OUT gets one line per process ever seen:
 *
 *	pid ppid depth comm vmhwm_kb max_rssanon_kb samples
 *
 * (depth 0 is COMMAND itself), then "wall SECONDS", the time from fork to
 * exit, and "cpu SECONDS", the CPU time treemem itself used (its cost to
 * the measurement).  treemem exits with COMMAND's status.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TM_MAXPROC	4096

struct tm_proc {
	pid_t	pid;
	pid_t	ppid;
	int	depth;
	char	comm[32];
	long	hwm_kb;
	long	anon_kb;
	long	samples;
};

static struct tm_proc	tm_procs[TM_MAXPROC];
static int		tm_nprocs;

static double
tm_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The record of pid, created on first sight. */
static struct tm_proc *
tm_proc_get(pid_t pid, pid_t ppid, int depth)
{
	int i;

	for (i = 0; i < tm_nprocs; i++)
		if (tm_procs[i].pid == pid)
			return &tm_procs[i];
	if (tm_nprocs == TM_MAXPROC)
		return NULL;
	memset(&tm_procs[tm_nprocs], 0, sizeof tm_procs[0]);
	tm_procs[tm_nprocs].pid = pid;
	tm_procs[tm_nprocs].ppid = ppid;
	tm_procs[tm_nprocs].depth = depth;
	return &tm_procs[tm_nprocs++];
}

/* Read Name, VmHWM and RssAnon of one process into p. */
static void
tm_read_status(struct tm_proc *p)
{
	char path[64], line[256], *s;
	long v;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)p->pid);
	if ((f = fopen(path, "r")) == NULL)
		return;		/* gone (or a zombie without memory) */
	while (fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, "Name:", 5) == 0) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(p->comm, sizeof p->comm, "%s",
			    line + 5 + strspn(line + 5, " \t"));
			for (s = p->comm; *s != '\0'; s++)
				if (*s == ' ' || *s == '\t')
					*s = '_';
		} else if (sscanf(line, "VmHWM: %ld", &v) == 1) {
			if (v > p->hwm_kb)
				p->hwm_kb = v;
		} else if (sscanf(line, "RssAnon: %ld", &v) == 1) {
			if (v > p->anon_kb)
				p->anon_kb = v;
			break;	/* RssAnon comes after VmHWM */
		}
	}
	fclose(f);
	p->samples++;
}

/* Sample pid and, recursively, the children of each of its threads. */
static void
tm_walk(pid_t pid, pid_t ppid, int depth)
{
	char path[64], buf[4096];
	struct dirent *de;
	struct tm_proc *p;
	DIR *d;
	FILE *f;
	char *s, *end;
	long child;
	size_t n;

	if ((p = tm_proc_get(pid, ppid, depth)) == NULL)
		return;
	tm_read_status(p);
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	if ((d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/%d/task/%s/children",
		    (int)pid, de->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = '\0';
		for (s = buf; *s != '\0'; s = end) {
			child = strtol(s, &end, 10);
			if (end == s)
				break;
			tm_walk((pid_t)child, pid, depth + 1);
		}
	}
	closedir(d);
}

static void
tm_usage(void)
{
	fprintf(stderr, "usage: treemem [-i MS] OUT -- COMMAND [ARG...]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct timespec pause;
	struct rusage ru;
	const char *out;
	double t0, wall;
	int ch, i, status, interval_ms = 5;
	pid_t pid, r;
	FILE *f;

	while ((ch = getopt(argc, argv, "+i:")) != -1) {
		switch (ch) {
		case 'i':
			interval_ms = atoi(optarg);
			if (interval_ms < 1)
				tm_usage();
			break;
		default:
			tm_usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 3 || strcmp(argv[1], "--") != 0)
		tm_usage();
	out = argv[0];
	pause.tv_sec = interval_ms / 1000;
	pause.tv_nsec = (interval_ms % 1000) * 1000000L;

	t0 = tm_now();
	if ((pid = fork()) == -1) {
		perror("treemem: fork");
		return 1;
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		fprintf(stderr, "treemem: %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	for (;;) {
		tm_walk(pid, getpid(), 0);
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r == -1 && errno != EINTR) {
			perror("treemem: waitpid");
			return 1;
		}
		nanosleep(&pause, NULL);
	}
	wall = tm_now() - t0;

	if ((f = fopen(out, "w")) == NULL) {
		fprintf(stderr, "treemem: %s: %s\n", out, strerror(errno));
		return 1;
	}
	for (i = 0; i < tm_nprocs; i++)
		fprintf(f, "%d %d %d %s %ld %ld %ld\n", (int)tm_procs[i].pid,
		    (int)tm_procs[i].ppid, tm_procs[i].depth,
		    tm_procs[i].comm[0] ? tm_procs[i].comm : "?",
		    tm_procs[i].hwm_kb, tm_procs[i].anon_kb,
		    tm_procs[i].samples);
	getrusage(RUSAGE_SELF, &ru);
	fprintf(f, "wall %.6f\n", wall);
	fprintf(f, "cpu %.6f\n", ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
	fclose(f);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}
