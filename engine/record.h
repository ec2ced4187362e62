/*
 * record.h: the recording hub of a run and its replay adapter.
 *
 * Every event of the run being executed goes through here into the
 * store's batch (durable at the coordinator's next flush), numbered by seq.
 * For resume, replay and fork it holds the record of the earlier run
 * (engine/replay.h) and answers a call from it when the record has the
 * call: by node path, call index, name and arguments hash.  An offline
 * replay (record_discard) numbers events but stores none.
 *
 * The coordinator owns one and exposes it through coord_event(),
 * coord_recorded() and the other coord_* calls of coord.h.
 */
#ifndef WEFT_RECORD_H
#define WEFT_RECORD_H

#include <stdint.h>
#include <jansson.h>

struct record;
struct replay;
struct store;

/* Recording into st (borrowed); store_failed(arg) when a write fails. */
struct record *record_new(struct store *st, void (*store_failed)(void *),
    void *arg);
void record_free(struct record *);

/* Start numbering events of run_id from 1; call indexes start again. */
void record_begin(struct record *, const char *run_id);
/* The run being recorded, or NULL before record_begin. */
const char *record_run(const struct record *);
/* The last seq given. */
int64_t record_seq(const struct record *);

/* Append an event with its payload as JSON text (or NULL); its seq. */
int64_t record_event_text(struct record *, const char *kind, int64_t span,
    int64_t parent_span, const char *path, int attempt, const char *text,
    int64_t tokens, double cost);

/* The next call index of node path (0, 1, ...). */
int record_call_index(struct record *, const char *path);

/*
 * Answer from rec (borrowed; NULL: live) from now on; a resume or fork
 * (last_seq > 0) numbers its events after last_seq and its spans after
 * the record's last.
 */
void record_set_replay(struct record *, struct replay *rec,
    int64_t last_seq);
struct replay *record_replay(const struct record *);
int record_legacy_lists(const struct record *);
int64_t record_span_base(const struct record *);
void record_discard(struct record *);
int record_discarding(const struct record *);
/* Bounded parallel branches in an offline replay: coord.h. */
int record_may_bound(struct record *);
void record_all_at_once(struct record *);
int record_went_bounded(const struct record *);

/*
 * The recorded outcome of call number call of node path (name, args hash
 * hash): 1 with *res xor *err (borrowed, valid as long as the record)
 * and *from (the seq it was
 * recorded at), 0 when the record has no answer (go live), -1 when the
 * script diverged from the record (the divergence is described with
 * desc_json, the call's description, and replay_divergence() says it).
 */
int record_answer(struct record *, const char *path, int call,
    const char *name, const char *hash, const char *desc_json, json_t **res,
    json_t **err, int64_t *from);

#endif
