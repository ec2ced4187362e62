/*
 * approval.h: the approvals a run waits for (w.approval,
 * docs/workflows.md).  The graph asks (core.approval -> approvals_ask);
 * the answer comes from the record (resume, replay), from the store's
 * approvals table (weft approve and weft reject write it, from any
 * process), from the terminal (approvals_prompt) or from the deadline
 * (on_timeout).  Every answer is recorded as an approval.answer event that
 * replay reads as the call's value, so a replay answers it the same way.
 *
 * One struct approvals per run, used on the coordinator's loop thread.
 */
#ifndef WEFT_APPROVAL_H
#define WEFT_APPROVAL_H

#include <stdint.h>
#include <stdio.h>
#include <jansson.h>

struct crun;
struct store;
struct approvals;

/* The approvals of run (borrowed) recorded in st (borrowed). */
struct approvals *approvals_new(struct crun *run, struct store *st,
    const char *run_id);
void approvals_free(struct approvals *);

/*
 * The node at path asks for approval; spec is JSON text {prompt, schema,
 * timeout (seconds), on_timeout}.  Returns the ticket its answer is
 * delivered on (at once when the record, the store or the deadline
 * answers it; else once answered), or -1 with a message in err.
 */
int64_t approvals_ask(struct approvals *, const char *path, int64_t span,
    int64_t parent_span, const char *spec, char *err, size_t errlen);

/*
 * Settle the approvals that wait and were answered in the store or whose
 * deadline passed.  Returns how many were settled (their answers are
 * delivered at the next flush: the caller kicks the coordinator).
 */
int approvals_poll(struct approvals *);
/* How many wait. */
int approvals_waiting(const struct approvals *);

/*
 * Ask on the terminal (in, out) for the oldest approval that waits, until
 * it is answered or its deadline passes; the answer goes to the store and
 * is settled.  Returns 0, or -1 when in ended.
 */
int approvals_prompt(struct approvals *, FILE *in, FILE *out);

/*
 * Check an answer against an approval's schema (JSON text or NULL) and
 * build the row's answer (the caller decrefs it): {"approved": true,
 * "answer": ..., "by": ...} or {"approved": false, "reason": ...}.  NULL
 * with a message (a JSON pointer into the answer) in err.
 */
json_t *approval_make_answer(const char *schema, int approved,
    const char *answer_text, const char *reason, const char *by, char *err,
    size_t errlen);

#endif
