/*
 * treemem.c: run a command and record the peak memory and the CPU time of
 * every process in its tree (a benchmark helper, not part of weft).
 *
 *	treemem [-i MS] OUT -- COMMAND [ARG...]
 *
 * Starts COMMAND and, every MS milliseconds (default 5), reads VmHWM (the
 * kernel's peak resident set size) and RssAnon from /proc/PID/status and
 * the CPU time used so far from /proc/PID/stat, for every process of the
 * tree below it.  VmHWM only grows until exec, where treemem starts over
 * (so that a child is not charged for its parent's pages between fork and
 * exec), so the last value read before a process exits is its peak, up to
 * what it gained in its last MS milliseconds.
 *
 * The tree is found through /proc/PID/task/TID/children: at every tick
 * for the main thread of each process (weft forks its workers, and they
 * their tool servers, from their main threads), and at every 20th tick
 * for all threads, since reading the children of every thread costs more
 * than all the status reads.
 *
 * When COMMAND exits, OUT gets one line per process seen:
 *
 *	pid ppid depth comm vmhwm_kb max_rssanon_kb cpu_s samples
 *
 * (depth 0 is COMMAND itself; cpu_s misses what a process used after its
 * last sample), then "wall SECONDS", the time from fork to exit, and
 * "cpu SECONDS", the CPU time treemem itself used: its cost to the
 * measurement.  treemem exits with COMMAND's status.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TM_MAXPROC	4096
#define TM_RESCAN	20	/* every 20th walk looks at every thread */

struct tm_proc {
	pid_t	pid;
	pid_t	ppid;
	int	depth;
	int	gone;
	char	comm[32];
	long	hwm_kb;		/* of the current program image */
	long	last_hwm_kb;	/* VmHWM at the previous sample */
	long	anon_kb;
	long	cpu_ticks;	/* utime + stime, all threads */
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

/* Read a small /proc file into buf; its length, or -1. */
static ssize_t
tm_read(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

/* The number after "key" in a /proc status text, or -1. */
static long
tm_field(const char *text, const char *key)
{
	const char *s = strstr(text, key);

	return s != NULL ? strtol(s + strlen(key), NULL, 10) : -1;
}

/* utime + stime of a process from /proc/PID/stat, in clock ticks, or -1. */
static long
tm_cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *s;
	long v = 0;
	int field;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (tm_read(path, buf, sizeof buf) <= 0 ||
	    (s = strrchr(buf, ')')) == NULL)
		return -1;
	/* After "pid (comm)" comes field 3, state; utime and stime are 14
	   and 15. */
	for (field = 3; field <= 15; field++) {
		s += strspn(s, ") ");
		if (field >= 14)
			v += strtol(s, NULL, 10);
		s += strcspn(s, " ");
	}
	return v;
}

/* Sample one process: its name, VmHWM, RssAnon and CPU time. */
static void
tm_sample(struct tm_proc *p)
{
	char path[64], buf[4096];
	const char *s;
	long v;
	size_t i;

	snprintf(path, sizeof path, "/proc/%d/status", (int)p->pid);
	if (tm_read(path, buf, sizeof buf) <= 0 ||
	    (v = tm_field(buf, "\nVmHWM:")) < 0) {
		p->gone = 1;	/* exited, or a zombie without memory */
		return;
	}
	/*
	 * VmHWM belongs to an address space: it only drops when exec gives
	 * the process a new one.  Then the peaks start over, so that a child
	 * sampled between fork and exec (still sharing its parent's pages)
	 * is charged for its own program only.
	 */
	if (v < p->last_hwm_kb)
		p->hwm_kb = p->anon_kb = 0;
	p->last_hwm_kb = v;
	if (v > p->hwm_kb)
		p->hwm_kb = v;
	if ((v = tm_field(buf, "\nRssAnon:")) > p->anon_kb)
		p->anon_kb = v;
	if ((v = tm_cpu_ticks(p->pid)) > p->cpu_ticks)
		p->cpu_ticks = v;
	/* The name changes at exec; spaces would break the columns. */
	s = buf + (strncmp(buf, "Name:", 5) == 0 ? 5 : 0);
	s += strspn(s, " \t");
	for (i = 0; i < sizeof p->comm - 1 && s[i] != '\n' && s[i] != '\0';
	    i++)
		p->comm[i] = s[i] == ' ' || s[i] == '\t' ? '_' : s[i];
	p->comm[i] = '\0';
	p->samples++;
}

/* The record of pid, created on first sight. */
static struct tm_proc *
tm_proc_get(pid_t pid, pid_t ppid, int depth)
{
	struct tm_proc *p;
	int i;

	for (i = 0; i < tm_nprocs; i++)
		if (tm_procs[i].pid == pid)
			return &tm_procs[i];
	if (tm_nprocs == TM_MAXPROC)
		return NULL;
	p = &tm_procs[tm_nprocs++];
	memset(p, 0, sizeof *p);
	p->pid = pid;
	p->ppid = ppid;
	p->depth = depth;
	return p;
}

/* Record the pids listed in a /proc .../children file as children of p. */
static void tm_walk(pid_t, pid_t, int, int);

static void
tm_children(const char *path, pid_t pid, int depth, int all)
{
	char buf[4096], *s, *end;
	long child;

	if (tm_read(path, buf, sizeof buf) <= 0)
		return;
	for (s = buf; *s != '\0'; s = end) {
		child = strtol(s, &end, 10);
		if (end == s)
			break;
		tm_walk((pid_t)child, pid, depth + 1, all);
	}
}

/*
 * Record pid and, recursively, its children: those of its main thread, or
 * with all, those of each of its threads.
 */
static void
tm_walk(pid_t pid, pid_t ppid, int depth, int all)
{
	char path[96];
	struct dirent *de;
	DIR *d;

	if (tm_proc_get(pid, ppid, depth) == NULL)
		return;
	if (!all) {
		snprintf(path, sizeof path, "/proc/%d/task/%d/children",
		    (int)pid, (int)pid);
		tm_children(path, pid, depth, all);
		return;
	}
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	if ((d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || strlen(de->d_name) > 20)
			continue;
		snprintf(path, sizeof path, "/proc/%d/task/%s/children",
		    (int)pid, de->d_name);
		tm_children(path, pid, depth, all);
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
	double t0, wall, hz;
	long tick;
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
	for (tick = 0;; tick++) {
		tm_walk(pid, getpid(), 0, tick % TM_RESCAN == 0);
		for (i = 0; i < tm_nprocs; i++)
			if (!tm_procs[i].gone)
				tm_sample(&tm_procs[i]);
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
	getrusage(RUSAGE_SELF, &ru);

	if ((hz = sysconf(_SC_CLK_TCK)) <= 0)
		hz = 100;
	if ((f = fopen(out, "w")) == NULL) {
		fprintf(stderr, "treemem: %s: %s\n", out, strerror(errno));
		return 1;
	}
	for (i = 0; i < tm_nprocs; i++)
		fprintf(f, "%d %d %d %s %ld %ld %.3f %ld\n",
		    (int)tm_procs[i].pid, (int)tm_procs[i].ppid,
		    tm_procs[i].depth,
		    tm_procs[i].comm[0] ? tm_procs[i].comm : "?",
		    tm_procs[i].hwm_kb, tm_procs[i].anon_kb,
		    (double)tm_procs[i].cpu_ticks / hz, tm_procs[i].samples);
	fprintf(f, "wall %.6f\n", wall);
	fprintf(f, "cpu %.6f\n", ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	fclose(f);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}
