/*
 * supervise.h: the local worker processes of a coordinator.
 *
 * A supervisor owns the coordinator's private directories in $TMPDIR (the
 * ipc socket's, and apart from it the root of the workers' scratch
 * directories: a tool server is told its scratch path, which must not lead
 * to the socket), the allowlisted environment workers get, and N worker
 * processes `weft worker --enroll-fd 3`.  Every start of a worker gets a
 * fresh enrolment secret (docs/PROTOCOL.md, "Enrolment"); the supervisor
 * keeps its hash, checks the secret a hello presents and binds the worker
 * to the nng pipe it said it on.
 *
 * A worker's life, as tmux's job.c: CLOSED (no process) -> STARTING
 * (spawned, or enrolled to join from elsewhere: sup_enrol_external) ->
 * READY (its hello was accepted, bound to its pipe) -> DEAD (reaped) ->
 * CLOSED (reaped and its pipe closed: finished, then the owner's exit
 * callback runs and may start the slot again).  A transition outside this
 * is a bug (ALWAYS).  A remote slot has no process: it goes STARTING ->
 * READY at hello and back to STARTING when its connection is removed.
 * Workers are reaped on SIGCHLD through the event base given to sup_new;
 * everything runs on the loop thread.
 */
#ifndef WEFT_SUPERVISE_H
#define WEFT_SUPERVISE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <nng/nng.h>

struct event_base;
struct supervisor;

struct sup_opts {
	int		 workers;	/* how many, ids 0 .. workers-1 */
	int		 remote;	/* remote slots, ids workers ..
					   workers+remote-1 (sup_remote) */
	int		 slots;		/* --slots of each */
	int		 no_seccomp;	/* pass --no-seccomp */
};

/* Called on the loop when worker wid (process pid) was reaped. */
typedef void (*sup_exit_cb)(void *arg, int wid, pid_t pid, int status);

/*
 * Make the directories (sweeping those that coordinators killed with -9
 * left) and the worker environment; start no worker yet.  NULL with err.
 */
struct supervisor *sup_new(struct event_base *, const struct sup_opts *,
    sup_exit_cb, void *arg, char *err, size_t errlen);

/* The address workers dial: ipc://DIR/coord.ipc. */
const char *sup_url(const struct supervisor *);

/* Start (or restart, once CLOSED) worker wid, enrolled.  0, or -1 with
   err. */
int sup_start(struct supervisor *, int wid, char *err, size_t errlen);
/* How many worker processes sup_start has started (restarts count). */
int sup_spawned(const struct supervisor *);

/*
 * Enrol worker wid without starting it: it runs elsewhere, started by
 * someone else, and joins with the returned enrolment (JSON text, as a
 * worker reads it from --enroll-fd; the caller clears and frees it).  A
 * new call replaces the secret.  NULL if wid is a started worker.
 */
char *sup_enrol_external(struct supervisor *, int wid);

/*
 * Enrol remote slot wid (an id at or above sup_opts.workers) with the
 * secret whose SHA-256 is hash (64 hex digits): a worker on another
 * machine joins with it over the network listener.  The slot stays
 * enrolled: when its connection goes (sup_watch) it may join again.
 */
void sup_remote(struct supervisor *, int wid, const char *hash);
/* Whether wid is a remote slot. */
int sup_is_remote(const struct supervisor *, int wid);
/* Whether worker wid's hello was accepted and its connection lives. */
int sup_ready(const struct supervisor *, int wid);

/* Called on the loop when remote worker wid's connection (pipe) went. */
typedef void (*sup_gone_cb)(void *arg, int wid, uint32_t pipe);
/*
 * Watch sock's connections: when the pipe a remote worker is bound to is
 * removed, its slot goes back to enrolled (STARTING) and cb runs on the
 * loop (through bridge).  A local worker's end is its reaping, not this.
 */
struct bridge;
int sup_watch(struct supervisor *, nng_socket, struct bridge *,
    sup_gone_cb cb);

/*
 * Check a network address of the coordinator<->worker wire: tls+tcp://
 * (sets *tls) or tcp:// on a loopback host (127.0.0.0/8, ::1, localhost).
 * host gets the host part (the name a certificate is checked against).
 * 0, or -1 with err ("plain tcp is only allowed on loopback ...").
 */
int sup_url_check(const char *url, int *tls, char *host, size_t hostlen,
    char *err, size_t errlen);

/* The process of worker wid (its latest start), and whether it lives. */
pid_t sup_pid(const struct supervisor *, int wid);
int sup_alive(const struct supervisor *, int wid);

/*
 * A hello from pipe claiming worker wid with secret (NULL: none): 0 binds
 * the worker to pipe; -1 refuses, with the reason in why ("wrong enrolment
 * secret", "worker 0 is connected already", ...).
 */
int sup_hello(struct supervisor *, int wid, const char *secret,
    uint32_t pipe, char *why, size_t whylen);

/* Whether pipe is the one worker wid is bound to. */
int sup_bound(const struct supervisor *, int wid, uint32_t pipe);

/* The process at the other end of an ipc pipe, or 0 if unknown. */
int sup_peer_pid(uint32_t pipe);

/*
 * Stop every worker: SIGTERM, up to 2 s for them to exit, then SIGKILL.
 * The exit callback is not called for them.
 */
void sup_stop(struct supervisor *);

/* Stop the workers if need be, remove the directories, free. NULL ok. */
void sup_free(struct supervisor *);

#endif
