/* record.c: the recording hub of a run and its replay adapter (record.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "engine/record.h"
#include "engine/replay.h"
#include "engine/store.h"
#include "runtime/util.h"

struct record {
	struct store	*st;
	void		(*store_failed)(void *);
	void		*arg;
	char		*run_id;
	int64_t		 seq;
	json_t		*calls;		/* node path -> calls made */
	struct replay	*rec;		/* recorded answers, or NULL */
	int		 discard;	/* events are not stored */
	int		 legacy_lists;	/* the record keys tool lists by
					   node (replay_legacy_lists) */
	int		 bounded;	/* record_may_bound: 1 said yes,
					   -1 record_all_at_once */
	int64_t		 span_base;	/* a resume's first span - 1 */
};

struct record *
record_new(struct store *st, void (*store_failed)(void *), void *arg)
{
	struct record *r = xcalloc(1, sizeof *r);

	r->st = st;
	r->store_failed = store_failed;
	r->arg = arg;
	r->calls = json_object();
	return r;
}

void
record_free(struct record *r)
{
	if (r == NULL)
		return;
	json_decref(r->calls);
	free(r->run_id);
	free(r);
}

void
record_begin(struct record *r, const char *run_id)
{
	free(r->run_id);
	r->run_id = xstrdup(run_id);
	r->seq = 0;
	json_decref(r->calls);
	r->calls = json_object();
}

const char *
record_run(const struct record *r)
{
	return r->run_id;
}

int64_t
record_seq(const struct record *r)
{
	return r->seq;
}

int64_t
record_event_text(struct record *r, const char *kind, int64_t span,
    int64_t parent_span, const char *path, int attempt, const char *text,
    int64_t tokens, double cost)
{
	struct store_event ev;

	if (r->discard)
		return ++r->seq;	/* an offline replay records nothing */
	memset(&ev, 0, sizeof ev);
	ev.run_id = r->run_id;
	ev.seq = ++r->seq;
	ev.span_id = span;
	ev.parent_span = parent_span;
	ev.node_path = path != NULL ? path : "";
	ev.kind = kind;
	ev.attempt = attempt;
	ev.time = now_wall();
	ev.payload = text;
	ev.tokens = tokens;
	ev.cost = cost;
	if (store_event_append(r->st, &ev) != 0)
		r->store_failed(r->arg);
	return ev.seq;
}

int
record_call_index(struct record *r, const char *path)
{
	json_t *v = json_object_get(r->calls, path);
	json_int_t n = v != NULL ? json_integer_value(v) : 0;

	json_object_set_new(r->calls, path, json_integer(n + 1));
	return (int)n;
}

void
record_set_replay(struct record *r, struct replay *rec, int64_t last_seq)
{
	r->rec = rec;
	r->legacy_lists = rec != NULL && replay_legacy_lists(rec);
	if (last_seq > r->seq)
		r->seq = last_seq;
	r->span_base = rec != NULL && last_seq > 0 ? replay_last_span(rec) : 0;
}

struct replay *
record_replay(const struct record *r)
{
	return r->rec;
}

int
record_legacy_lists(const struct record *r)
{
	return r->legacy_lists;
}

int64_t
record_span_base(const struct record *r)
{
	return r->span_base;
}

void
record_discard(struct record *r)
{
	r->discard = 1;
}

int
record_discarding(const struct record *r)
{
	return r->discard;
}

int
record_may_bound(struct record *r)
{
	if (!r->discard || r->legacy_lists || r->bounded < 0)
		return 0;
	r->bounded = 1;
	return 1;
}

void
record_all_at_once(struct record *r)
{
	r->bounded = -1;
}

int
record_went_bounded(const struct record *r)
{
	return r->bounded > 0;
}

int
record_answer(struct record *r, const char *path, int call,
    const char *name, const char *hash, const char *desc_json, json_t **res,
    json_t **err, int64_t *from)
{
	json_t *p;
	char *desc;

	*res = *err = NULL;
	*from = 0;
	if (r->rec == NULL)
		return 0;
	switch (replay_answer(r->rec, path, call, name, hash, NULL, res, err,
	    from)) {
	case 0:
		return 0;
	case -1:
		p = desc_json != NULL ? json_loads(desc_json, 0, NULL) : NULL;
		desc = replay_desc(name, p);
		replay_describe(r->rec, desc);
		free(desc);
		json_decref(p);
		return -1;
	}
	return 1;
}
