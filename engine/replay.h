/*
 * replay.h: the recorded-answer source of resume, replay and fork
 * (DESIGN.md section 9, docs/durability.md).
 *
 * Every outside call of a run is recorded with its key: the node path,
 * the call index within that node (0, 1, ... in the order the node makes
 * its calls, counted by the coordinator: coord_call_index), the call's
 * name ("mcp.call:srv/echo", "model", "now", "random") and the sha256 of
 * its arguments.  replay_load() reads a run's events and keeps, for each
 * key, the call's outcome; the coordinator, the model gateway and w.now()
 * and w.random() ask replay_answer() before they go to the outside world.
 *
 * Modes: REPLAY_RESUME answers a call whose result is recorded and lets
 * everything else go live (an error outcome is tried again); REPLAY_OFFLINE
 * answers every recorded call, errors included, and turns a call with no
 * record, or with a different name or arguments, into a divergence that
 * stops the run.  A fork is REPLAY_RESUME over the steps recorded up to a
 * seq.  The coordinator's loop thread alone uses a struct replay.
 */
#ifndef WEFT_REPLAY_H
#define WEFT_REPLAY_H

#include <stdint.h>
#include <jansson.h>

struct store;
struct replay;

enum replay_mode { REPLAY_RESUME, REPLAY_OFFLINE };

/*
 * Load the recorded calls of run_id from st: those whose outcome was
 * recorded at a seq <= upto (upto <= 0: all).  Returns NULL with a
 * message in err.
 */
struct replay *replay_load(struct store *st, const char *run_id,
    enum replay_mode mode, int64_t upto, char *err, size_t errlen);
void replay_free(struct replay *);

/*
 * Whether the call (path, call index, name, arguments hash) is answered
 * from the record.  Returns 1 with *result xor *error set (borrowed, valid
 * until replay_free) and *from the seq of the recorded outcome; 0 when the
 * call goes live; -1 (REPLAY_OFFLINE only) on a divergence, whose report
 * replay_divergence() gives.  desc is a short description of the call as
 * the script makes it now, for that report; NULL to give it only on a
 * divergence, with replay_describe().
 */
int replay_answer(struct replay *, const char *path, int call,
    const char *name, const char *hash, const char *desc, json_t **result,
    json_t **error, int64_t *from);

/*
 * A short description of a call for divergence reports: name and the
 * payload's arguments (or its message count); a heap string.
 */
char *replay_desc(const char *name, json_t *payload);

/*
 * REPLAY_RESUME: the remote task recorded for an a2a.send in flight when
 * the run stopped (no outcome) at node path with arguments hash: its
 * {task, protocol} (borrowed, valid until replay_free), else NULL.  The
 * new attempt asks for that task rather than sending the message again.
 */
json_t *replay_remote(struct replay *, const char *path, const char *hash);

/* Complete a divergence found with a NULL desc: the call made now. */
void replay_describe(struct replay *, const char *desc);
/* The first divergence seen, as text (NULL if none). */
const char *replay_divergence(const struct replay *);
/* Calls answered so far, and calls recorded (with an outcome). */
int64_t replay_answered(const struct replay *);
int64_t replay_recorded(const struct replay *);
/* The highest seq of the run's events (resume continues after it). */
int64_t replay_last_seq(const struct replay *);
/* The highest task id the run's tool calls used (ids go on after it, so
   a task's idempotency key RUN:TASK is never reused by a resume). */
int64_t replay_last_task(const struct replay *);
/* The highest span id of the run's events (a resume's nodes go on after
   it, so `weft show` keeps the two parts apart). */
int64_t replay_last_span(const struct replay *);
/*
 * Whether the record keys its tool lists (tool.list) by the node that
 * asked first, as records made before lists had a key of their own
 * ("key": "(tools)/SERVER") did: the calls of that node then count the
 * list, so the same node must ask first again.
 */
int replay_legacy_lists(const struct replay *);
/*
 * REPLAY_OFFLINE, after the run ended: set a divergence if a recorded
 * call was never made by the script (the first such one, by seq).
 * Returns -1 then, else 0.
 */
int replay_check_unused(struct replay *);

/*
 * The sha256 hex of a call's canonical arguments: JSON text with sorted
 * keys (the runner's encoding), or NULL for none.  Two parts are hashed
 * as one (the model gateway's options and request); b may be NULL.
 */
void replay_hash(const char *a, const char *b, char out[65]);


#endif
