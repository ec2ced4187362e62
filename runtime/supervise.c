/* supervise.c: the local worker processes of a coordinator (supervise.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <event2/event.h>
#include <jansson.h>
#include <nng/nng.h>
#include <openssl/crypto.h>

#include "runtime/bridge.h"
#include "runtime/util.h"
#include "runtime/proc.h"
#include "runtime/supervise.h"
#include "runtime/wire.h"

/*
 * The private directories are $TMPDIR/weft-XXXXXX, each with an "owner"
 * file naming the coordinator's pid and start time, so that what a
 * coordinator killed with -9 left can be told from what a live one uses.
 */
#define SUP_OWNER	"owner"

/*
 * A worker slot's life (supervise.h), as tmux's job.c: STARTING and READY
 * are running; a worker is finished (CLOSED, and its slot free for a new
 * start) only once it is both reaped and its channel closed.
 */
enum sup_state {
	SUP_CLOSED,	/* no process, no channel: never started, or finished */
	SUP_STARTING,	/* running: started or enrolled, no hello yet */
	SUP_READY,	/* running: its hello accepted, bound to its pipe */
	SUP_DEAD	/* reaped, its channel not closed yet */
};

/* The states each state may go to (bit 1 << state). */
static const unsigned sup_next[] = {
	[SUP_CLOSED] = 1u << SUP_STARTING,
	/* STARTING -> STARTING: an external worker enrolled again */
	[SUP_STARTING] = 1u << SUP_STARTING | 1u << SUP_READY |
	    1u << SUP_DEAD,
	[SUP_READY] = 1u << SUP_STARTING | 1u << SUP_DEAD,
	[SUP_DEAD] = 1u << SUP_CLOSED
};

struct sup_worker {
	pid_t			 pid;
	enum sup_state		 state;
	char			 secret_hash[65]; /* SHA-256 of its secret */
	uint32_t		 pipe;		/* its hello's, 0 before */
};

struct supervisor {
	struct sup_opts		 opts;
	struct sup_worker	*w;
	sup_exit_cb		 exit_cb;
	void			*arg;
	struct event		*chld_ev;
	char			 self[PATH_MAX];
	char			 dir[PATH_MAX];	/* the socket's, 0700 */
	char			 scratch[PATH_MAX]; /* workers' scratch root */
	char			 url[PATH_MAX + 16];
	char			**env;		/* the allowlisted environment */
	int			 stopped;
	int			 spawned;	/* worker processes started */
	int			 n;		/* slots: local and remote */
	/* Pipes nng removed, handed from its threads (sup_watch). */
	pthread_mutex_t		 gmtx;
	uint32_t		*gone;
	size_t			 ngone, gone_cap;
	int			 posted;	/* a drain is queued */
	struct bridge		*bridge;
	sup_gone_cb		 gone_cb;
};

/* Move worker w to state to; a transition not in sup_next is a bug. */
static void
sup_set_state(struct sup_worker *w, enum sup_state to)
{
	if (ALWAYS(sup_next[w->state] & 1u << to))
		w->state = to;
}

/* Whether worker w is running (started or enrolled, not yet reaped). */
static int
sup_running(const struct sup_worker *w)
{
	return w->state == SUP_STARTING || w->state == SUP_READY;
}

/*
 * Worker w was reaped: DEAD; then its channel is closed (a message its
 * process left in flight is not taken any more: the pipe is unbound) and
 * the slot is CLOSED, free for a new start.
 */
static void
sup_reaped(struct sup_worker *w)
{
	nng_pipe p;

	sup_set_state(w, SUP_DEAD);
	if (w->pipe != 0) {
		p.id = w->pipe;
		nng_pipe_close(p);	/* NNG_ECLOSED if nng saw it go */
		w->pipe = 0;
	}
	sup_set_state(w, SUP_CLOSED);
}

/*
 * The environment workers (and so tool servers) get: an allowlist, so
 * secrets in the coordinator's environment (API keys) never leave it.  A
 * server that needs a variable declares it in its env = { ... }.
 */
static char **
sup_env(void)
{
	static const char *const keep[] = { "PATH", "HOME", "USER", "LOGNAME",
	    "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "SHELL", "ASAN_OPTIONS",
	    "UBSAN_OPTIONS", "LSAN_OPTIONS", "WEFT_FAULT", "WEFT_STATE_DIR",
	    "XDG_STATE_HOME", NULL };
	extern char **environ;
	char **env;
	size_t n = 0, i, k, len;

	for (i = 0; environ[i] != NULL; i++)
		n++;
	env = xcalloc(n + 1, sizeof *env);
	n = 0;
	for (i = 0; environ[i] != NULL; i++) {
		if (strncmp(environ[i], "LC_", 3) == 0) {
			env[n++] = xstrdup(environ[i]);
			continue;
		}
		for (k = 0; keep[k] != NULL; k++) {
			len = strlen(keep[k]);
			if (strncmp(environ[i], keep[k], len) == 0 &&
			    environ[i][len] == '=') {
				env[n++] = xstrdup(environ[i]);
				break;
			}
		}
	}
	return env;
}

/* Whether dir (beneath dfd) belongs to a coordinator that is gone. */
static int
sup_orphaned(int dfd, const char *dir)
{
	char path[NAME_MAX + 16], buf[64];
	unsigned long long start;
	struct stat st;
	long pid;

	if (fstatat(dfd, dir, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
	    !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
		return 0;
	snprintf(path, sizeof path, "%s/" SUP_OWNER, dir);
	if (read_small_at(dfd, path, buf, sizeof buf) <= 0)
		return 0;
	if (sscanf(buf, "%ld %llu", &pid, &start) != 2 || pid <= 0)
		return 0;
	return proc_start_time((pid_t)pid) != start;
}

/* Remove what coordinators that died left in tmp (their directories). */
static void
sup_sweep(const char *tmp)
{
	struct dirent *de;
	DIR *d;

	if ((d = opendir(tmp)) == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, "weft-", 5) == 0 &&
		    strlen(de->d_name) == 11 &&
		    sup_orphaned(dirfd(d), de->d_name))
			rmtree_at(dirfd(d), de->d_name);
	closedir(d);
}

/* Make a private 0700 directory in tmp, owned (SUP_OWNER) by us. */
static int
sup_mkdtemp(const char *tmp, char *dir, size_t len, char *err,
    size_t errlen)
{
	char path[PATH_MAX + 16];
	FILE *f;

	snprintf(dir, len, "%s/weft-XXXXXX", tmp);
	if (mkdtemp(dir) == NULL) {
		errf(err, errlen, "cannot create a private directory in %s: "
		    "%s", tmp, strerror(errno));
		dir[0] = '\0';
		return -1;
	}
	chmod(dir, 0700);
	snprintf(path, sizeof path, "%s/" SUP_OWNER, dir);
	if ((f = fopen(path, "wx")) == NULL) {
		errf(err, errlen, "cannot write %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (fprintf(f, "%d %llu\n", (int)getpid(),
	    proc_start_time(getpid())) < 0 || fclose(f) != 0) {
		errf(err, errlen, "cannot write %s", path);
		return -1;
	}
	return 0;
}

/* Wait up to secs for every worker to exit; 0 if all did. */
static int
sup_reap(struct supervisor *s, double secs)
{
	double until = now_mono() + secs;
	int i, alive, status;
	pid_t pid;

	for (;;) {
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			for (i = 0; i < s->opts.workers; i++)
				if (s->w[i].pid == pid && sup_running(&s->w[i]))
					sup_reaped(&s->w[i]);
		alive = 0;
		for (i = 0; i < s->opts.workers; i++)
			alive += s->w[i].pid > 0 && sup_running(&s->w[i]);
		if (alive == 0 || now_mono() > until)
			return alive;
		usleep(5000);
	}
}

/* Signal every live worker. */
static void
sup_signal(struct supervisor *s, int sig)
{
	int i;

	for (i = 0; i < s->opts.workers; i++)
		if (s->w[i].pid > 0 && sup_running(&s->w[i]))
			kill(s->w[i].pid, sig);
}

/* SIGCHLD: reap workers and tell the owner. */
static void
sup_chld_cb(evutil_socket_t sig, short what, void *arg)
{
	struct supervisor *s = arg;
	pid_t pid;
	int status, i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < s->opts.workers; i++) {
			if (s->w[i].pid != pid || !sup_running(&s->w[i]))
				continue;
			sup_reaped(&s->w[i]);
			if (!s->stopped)
				s->exit_cb(s->arg, i, pid, status);
			break;
		}
	}
}

struct supervisor *
sup_new(struct event_base *base, const struct sup_opts *o, sup_exit_cb cb,
    void *arg, char *err, size_t errlen)
{
	struct supervisor *s = xcalloc(1, sizeof *s);
	const char *tmp = getenv("TMPDIR");
	ssize_t n;

	s->opts = *o;
	s->exit_cb = cb;
	s->arg = arg;
	s->n = o->workers + (o->remote > 0 ? o->remote : 0);
	s->w = xcalloc(s->n > 0 ? (size_t)s->n : 1, sizeof *s->w);
	pthread_mutex_init(&s->gmtx, NULL);
	if ((n = readlink("/proc/self/exe", s->self, sizeof s->self - 1)) < 0)
		fatal("readlink /proc/self/exe");
	s->self[n] = '\0';
	s->env = sup_env();
	s->chld_ev = evsignal_new(base, SIGCHLD, sup_chld_cb, s);
	event_add(s->chld_ev, NULL);
	if (tmp == NULL || *tmp == '\0' || strlen(tmp) > 60)
		tmp = "/tmp";
	sup_sweep(tmp);
	if (sup_mkdtemp(tmp, s->dir, sizeof s->dir, err, errlen) != 0 ||
	    sup_mkdtemp(tmp, s->scratch, sizeof s->scratch, err,
	    errlen) != 0) {
		sup_free(s);
		return NULL;
	}
	snprintf(s->url, sizeof s->url, "ipc://%s/coord.ipc", s->dir);
	return s;
}

const char *
sup_url(const struct supervisor *s)
{
	return s->url;
}

/*
 * A new enrolment for worker wid, as JSON text (the caller clears and
 * frees it): the coordinator's address, the worker's id, a fresh secret
 * and the scratch root.  Only the secret's hash is kept.
 */
static char *
sup_enrolment_text(struct supervisor *s, int wid)
{
	char secret[65], *text;
	json_t *e;

	random_hex(secret, 32);
	sha256_hex(secret, 64, s->w[wid].secret_hash);
	e = json_pack("{s:i, s:s, s:i, s:s, s:s}", "version", WIRE_VERSION,
	    "url", s->url, "worker", wid, "secret", secret, "scratch",
	    s->scratch);
	OPENSSL_cleanse(secret, sizeof secret);
	/* NULL only for a path that is not UTF-8 (xjson_init). */
	if (e == NULL)
		fatalx(1, "worker %d: the coordinator's address or scratch "
		    "directory is not UTF-8: %s, %s", wid, s->url, s->scratch);
	text = json_dumps(e, JSON_COMPACT);
	json_decref(e);
	return text;
}

/*
 * Write worker wid's enrolment: the coordinator's address, the worker's
 * id, a fresh secret and the scratch root, to a pipe whose read end the
 * worker gets as descriptor 3.  Neither the secret nor the address is in
 * its argv or environment, which tool servers could read; we keep only the
 * secret's hash.  Returns the read end, or -1 with err.
 */
static int
sup_enrol(struct supervisor *s, int wid, char *err, size_t errlen)
{
	char *text = sup_enrolment_text(s, wid);
	size_t len = strlen(text);
	int fds[2], fd;
	ssize_t n;

	if (pipe2(fds, O_CLOEXEC) == -1) {
		errf(err, errlen, "cannot enrol worker %d: pipe: %s", wid,
		    strerror(errno));
		OPENSSL_clear_free(text, len);
		return -1;
	}
	if (fds[0] <= 2) {	/* stdio closed: keep clear of 0-2 */
		fd = fcntl(fds[0], F_DUPFD_CLOEXEC, 3);
		close(fds[0]);
		fds[0] = fd;
	}
	/* Far below a pipe's buffer: the write cannot block. */
	n = write(fds[1], text, len);
	OPENSSL_clear_free(text, len);
	close(fds[1]);
	if (n != (ssize_t)len || fds[0] == -1) {
		errf(err, errlen, "cannot enrol worker %d: %s", wid,
		    strerror(errno));
		if (fds[0] != -1)
			close(fds[0]);
		return -1;
	}
	return fds[0];
}

int
sup_start(struct supervisor *s, int wid, char *err, size_t errlen)
{
	char slots[16];
	char *argv[] = { s->self, "worker", "--enroll-fd", "3", "--slots",
	    slots, s->opts.no_seccomp ? "--no-seccomp" : NULL, NULL };
	struct proc_spec ps;
	int fd, rv;

	if (wid < 0 || wid >= s->opts.workers ||
	    s->w[wid].state != SUP_CLOSED) {
		errf(err, errlen, "worker %d: no such worker, or it lives",
		    wid);
		return -1;
	}
	snprintf(slots, sizeof slots, "%d", s->opts.slots);
	if ((fd = sup_enrol(s, wid, err, errlen)) == -1)
		return -1;
	memset(&ps, 0, sizeof ps);
	ps.argv = argv;
	ps.envp = s->env;
	ps.stdin_fd = -1;
	ps.stdout_fd = 2;
	ps.stderr_fd = -1;
	ps.pdeathsig = SIGKILL;
	ps.pass_fd = fd;
	rv = proc_spawn(&ps, &s->w[wid].pid, err, errlen);
	close(fd);
	if (rv != 0)
		return -1;
	s->spawned++;
	sup_set_state(&s->w[wid], SUP_STARTING);
	return 0;
}

int
sup_spawned(const struct supervisor *s)
{
	return s->spawned;
}

char *
sup_enrol_external(struct supervisor *s, int wid)
{
	if (wid < 0 || wid >= s->opts.workers || s->w[wid].pid > 0)
		return NULL;
	sup_set_state(&s->w[wid], SUP_STARTING);
	s->w[wid].pipe = 0;
	return sup_enrolment_text(s, wid);
}

void
sup_remote(struct supervisor *s, int wid, const char *hash)
{
	struct sup_worker *w;

	if (NEVER(!sup_is_remote(s, wid)))
		return;
	w = &s->w[wid];
	snprintf(w->secret_hash, sizeof w->secret_hash, "%s", hash);
	if (w->state == SUP_CLOSED)
		sup_set_state(w, SUP_STARTING);
}

int
sup_url_check(const char *url, int *tls, char *host, size_t hostlen,
    char *err, size_t errlen)
{
	const char *h, *end;
	struct in_addr a4;
	size_t n;

	if (strncmp(url, "tls+tcp://", 10) == 0) {
		*tls = 1;
		h = url + 10;
	} else if (strncmp(url, "tcp://", 6) == 0) {
		*tls = 0;
		h = url + 6;
	} else {
		errf(err, errlen, "%s: not a tls+tcp://HOST:PORT address",
		    url);
		return -1;
	}
	if (*h == '[') {
		end = strchr(h, ']');
		h++;
	} else
		end = strrchr(h, ':');
	if (end == NULL || (n = (size_t)(end - h)) >= hostlen ||
	    strchr(end, ':') == NULL) {
		errf(err, errlen, "%s: not a tls+tcp://HOST:PORT address",
		    url);
		return -1;
	}
	memcpy(host, h, n);
	host[n] = '\0';
	if (*tls)
		return 0;
	if (strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0 ||
	    (inet_pton(AF_INET, host, &a4) == 1 &&
	    (ntohl(a4.s_addr) >> 24) == 127))
		return 0;
	errf(err, errlen, "%s: plain tcp is only allowed on a loopback "
	    "address (127.0.0.1, ::1, localhost): over a network the wire "
	    "must be tls+tcp://", url);
	return -1;
}

int
sup_is_remote(const struct supervisor *s, int wid)
{
	return wid >= s->opts.workers && wid < s->n;
}

int
sup_ready(const struct supervisor *s, int wid)
{
	return wid >= 0 && wid < s->n && s->w[wid].state == SUP_READY;
}

static void	sup_gone_drain(void *);

/* nng's thread: a pipe was removed; hand its id to the loop. */
static void
sup_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct supervisor *s = arg;
	int post;

	pthread_mutex_lock(&s->gmtx);
	if (s->ngone == s->gone_cap) {
		s->gone_cap = s->gone_cap ? s->gone_cap * 2 : 16;
		s->gone = xrealloc(s->gone, s->gone_cap * sizeof *s->gone);
	}
	s->gone[s->ngone++] = (uint32_t)nng_pipe_id(p);
	post = !s->posted;
	s->posted = 1;
	pthread_mutex_unlock(&s->gmtx);
	if (post)
		bridge_post(s->bridge, sup_gone_drain, s);
}

/* Loop: the remote workers whose pipes were removed lose their binding. */
static void
sup_gone_drain(void *arg)
{
	struct supervisor *s = arg;
	uint32_t *gone;
	size_t n, i;
	int wid;

	pthread_mutex_lock(&s->gmtx);
	gone = s->gone;
	n = s->ngone;
	s->gone = NULL;
	s->ngone = s->gone_cap = 0;
	s->posted = 0;
	pthread_mutex_unlock(&s->gmtx);
	for (i = 0; i < n; i++)
		for (wid = s->opts.workers; wid < s->n; wid++) {
			if (s->w[wid].state != SUP_READY ||
			    s->w[wid].pipe != gone[i])
				continue;
			s->w[wid].pipe = 0;
			sup_set_state(&s->w[wid], SUP_STARTING);
			if (!s->stopped)
				s->gone_cb(s->arg, wid, gone[i]);
		}
	free(gone);
}

int
sup_watch(struct supervisor *s, nng_socket sock, struct bridge *b,
    sup_gone_cb cb)
{
	s->bridge = b;
	s->gone_cb = cb;
	return nng_pipe_notify(sock, NNG_PIPE_EV_REM_POST, sup_pipe_cb, s);
}

pid_t
sup_pid(const struct supervisor *s, int wid)
{
	return s->w[wid].pid;
}

int
sup_alive(const struct supervisor *s, int wid)
{
	return sup_running(&s->w[wid]);
}

int
sup_peer_pid(uint32_t pipe)
{
	uint64_t pid = 0;
	nng_pipe p;

	p.id = pipe;
	if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_PID, &pid) != 0 ||
	    pid > INT_MAX)
		return 0;
	return (int)pid;
}

/*
 * Checked in this order: a secret, the right one (its hash, compared in
 * constant time), no connection yet, and on ipc the process we started.
 */
int
sup_hello(struct supervisor *s, int wid, const char *secret, uint32_t pipe,
    char *why, size_t whylen)
{
	struct sup_worker *w = &s->w[wid];
	char hash[65];
	int pid;

	if (secret == NULL || !sup_running(w)) {
		errf(why, whylen, "no enrolment secret");
		return -1;
	}
	sha256_hex(secret, strlen(secret), hash);
	if (CRYPTO_memcmp(hash, w->secret_hash, 64) != 0) {
		errf(why, whylen, "wrong enrolment secret");
		return -1;
	}
	if (w->pipe != 0) {
		errf(why, whylen, "worker %d is connected already", wid);
		return -1;
	}
	if (w->pid > 0 && (pid = sup_peer_pid(pipe)) != 0 &&
	    pid != (int)w->pid) {
		errf(why, whylen, "worker %d is process %d, not %d", wid,
		    (int)w->pid, pid);
		return -1;
	}
	if (NEVER(w->state != SUP_STARTING))
		return -1;
	w->pipe = pipe;
	sup_set_state(w, SUP_READY);
	return 0;
}

int
sup_bound(const struct supervisor *s, int wid, uint32_t pipe)
{
	return s->w[wid].state == SUP_READY && s->w[wid].pipe == pipe;
}

void
sup_stop(struct supervisor *s)
{
	s->stopped = 1;
	sup_signal(s, SIGTERM);
	if (sup_reap(s, 2.0) != 0) {
		sup_signal(s, SIGKILL);
		sup_reap(s, 2.0);
	}
}

void
sup_free(struct supervisor *s)
{
	if (s == NULL)
		return;
	sup_stop(s);
	if (s->dir[0] != '\0')
		rmtree(s->dir);
	if (s->scratch[0] != '\0')
		rmtree(s->scratch);
	if (s->chld_ev != NULL)
		event_free(s->chld_ev);
	strv_free(s->env);
	free(s->w);
	free(s->gone);
	pthread_mutex_destroy(&s->gmtx);
	free(s);
}
