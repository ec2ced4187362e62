/* replay.c: recorded answers for resume, replay and fork. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "engine/replay.h"
#include "engine/store.h"
#include "runtime/util.h"

#define REPLAY_DESC_MAX	240

struct rstep {
	char		*path;
	int		 call;
	char		*name;
	char		 hash[65];
	json_t		*args;		/* its arguments (or "args"), reports */
	const char	*args_key;	/* "arguments", "args" or NULL */
	int		 nmsg;		/* a model call's messages */
	uint64_t	 h;		/* of (path, call) */
	int64_t		 seq;		/* of the call event */
	int64_t		 from;		/* of the outcome event, 0: none */
	json_t		*result;
	json_t		*error;
	json_t		*remote;	/* a2a.send: its remote task, from
					   tool.progress (replay_remote) */
	int		 used;
};

struct replay {
	enum replay_mode mode;
	int64_t		 upto;
	int32_t		*index;		/* open addressing: step number + 1 */
	size_t		 index_cap;	/* a power of two, > 2 * nsteps */
	json_t		*tasks;		/* task id -> step number, per
					   coordinator (run.start, run.resume) */
	struct rstep	*steps;
	size_t		 nsteps, cap;
	int64_t		 last_seq;
	int64_t		 last_task;	/* highest task id of the run */
	int64_t		 last_span;	/* highest span id of the run */
	int64_t		 answered;
	char		*diverge;
	int		 undescribed;	/* the script side is to come */
	int		 legacy_lists;	/* tool lists keyed by node path */
	int		 own;		/* loading the run being resumed,
					   not one forked from */
};

static const char *const call_kinds[] = { "tool.call", "tool.list",
    "model.request", NULL };
static const char *const outcome_kinds[] = { "tool.result", "tool.error",
    "tool.list.result", "tool.list.error", "model.response",
    "model.error", NULL };

static int
kind_in(const char *kind, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(kind, *list) == 0)
			return 1;
	return 0;
}

/* The hash of (path, call): FNV-1a over the path, then the index. */
static uint64_t
replay_key(const char *path, int call)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *path != '\0'; path++)
		h = (h ^ (unsigned char)*path) * 0x100000001b3ULL;
	h ^= (uint64_t)(unsigned)call;
	h = (h ^ (h >> 31)) * 0xbf58476d1ce4e5b9ULL;	/* splitmix64's mix */
	h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
	return h ^ (h >> 31);
}

/* The index slot of (path, call): its step's, or the empty one. */
static size_t
replay_slot(const struct replay *r, uint64_t h, const char *path, int call)
{
	size_t i = (size_t)h & (r->index_cap - 1);
	const struct rstep *s;

	while (r->index[i] != 0) {
		s = &r->steps[r->index[i] - 1];
		if (s->h == h && s->call == call && strcmp(s->path, path) == 0)
			break;
		i = (i + 1) & (r->index_cap - 1);
	}
	return i;
}

static struct rstep *
replay_find(struct replay *r, const char *path, int call)
{
	size_t i;

	if (r->index_cap == 0)
		return NULL;
	i = replay_slot(r, replay_key(path, call), path, call);
	return r->index[i] != 0 ? &r->steps[r->index[i] - 1] : NULL;
}

/* Make room in the index for one more step. */
static void
replay_grow(struct replay *r)
{
	size_t i;

	if (2 * (r->nsteps + 1) < r->index_cap)
		return;
	free(r->index);
	r->index_cap = r->index_cap ? 2 * r->index_cap : 1024;
	r->index = xcalloc(r->index_cap, sizeof *r->index);
	for (i = 0; i < r->nsteps; i++)
		r->index[replay_slot(r, r->steps[i].h, r->steps[i].path,
		    r->steps[i].call)] = (int32_t)i + 1;
}

char *
replay_desc(const char *name, json_t *p)
{
	json_t *args = json_object_get(p, "arguments");
	char *a = NULL, *d;

	if (args != NULL)
		a = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS |
		    JSON_ENCODE_ANY);
	else if (json_object_get(p, "messages") != NULL)
		a = xasprintf("(%zu messages)", json_array_size(
		    json_object_get(p, "messages")));
	else if (json_is_integer(json_object_get(p, "nmessages")))
		a = xasprintf("(%lld messages)", (long long)json_integer_value(
		    json_object_get(p, "nmessages")));
	else if (json_object_get(p, "args") != NULL)
		a = json_dumps(json_object_get(p, "args"), JSON_COMPACT |
		    JSON_ENCODE_ANY);
	d = xasprintf("%s %s", name, a != NULL ? a : "");
	free(a);
	if (strlen(d) > REPLAY_DESC_MAX)
		strcpy(d + REPLAY_DESC_MAX - 3, "...");
	return d;
}

static void
rstep_clear(struct rstep *s)
{
	free(s->name);
	json_decref(s->args);
	json_decref(s->result);
	json_decref(s->error);
	json_decref(s->remote);
	s->name = NULL;
	s->args = s->result = s->error = s->remote = NULL;
	s->args_key = NULL;
	s->nmsg = 0;
	s->from = 0;
}

/* Keep what a report shows of a recorded call. */
static void
replay_keep_args(struct rstep *s, json_t *p)
{
	static const char *const keys[] = { "arguments", "args" };
	size_t i;

	for (i = 0; i < nitems(keys); i++)
		if ((s->args = json_object_get(p, keys[i])) != NULL) {
			json_incref(s->args);
			s->args_key = keys[i];
			return;
		}
	s->nmsg = (int)json_array_size(json_object_get(p, "messages"));
}

/* A call event: (re)place the step at its key; a later one wins. */
static struct rstep *
replay_on_call(struct replay *r, const struct store_event *ev, json_t *p)
{
	const char *name = json_string_value(json_object_get(p, "step"));
	const char *hash = json_string_value(json_object_get(p, "hash"));
	const char *path = json_string_value(json_object_get(p, "key"));
	int call = (int)json_integer_value(json_object_get(p, "call"));
	struct rstep *s;
	json_t *remote = NULL;
	char *key;

	if (name == NULL || hash == NULL || strlen(hash) != 64)
		return NULL;
	if (path == NULL) {
		/* Before tool lists had a key of their own, a list was
		   keyed by the node that asked for it first. */
		if (strcmp(ev->kind, "tool.list") == 0)
			r->legacy_lists = 1;
		path = ev->node_path;
	}
	if ((s = replay_find(r, path, call)) == NULL) {
		if (r->nsteps == r->cap) {
			r->cap = r->cap ? r->cap * 2 : 256;
			r->steps = xrealloc(r->steps, r->cap * sizeof *r->steps);
		}
		replay_grow(r);
		s = &r->steps[r->nsteps];
		memset(s, 0, sizeof *s);
		s->path = xstrdup(path);
		s->call = call;
		s->h = replay_key(s->path, call);
		r->index[replay_slot(r, s->h, s->path, call)] =
		    (int32_t)++r->nsteps;
	} else {
		/* The same exchange again (a resume's attempt) keeps the
		   remote task recorded for it until it reports its own. */
		if (s->remote != NULL && strcmp(s->name, name) == 0 &&
		    strcmp(s->hash, hash) == 0)
			remote = json_incref(s->remote);
		rstep_clear(s);
	}
	s->remote = remote;
	s->name = xstrdup(name);
	memcpy(s->hash, hash, 65);
	replay_keep_args(s, p);
	s->seq = ev->seq;
	if (json_is_integer(json_object_get(p, "task"))) {
		if (json_integer_value(json_object_get(p, "task")) >
		    r->last_task)
			r->last_task = json_integer_value(json_object_get(p,
			    "task"));
		key = xasprintf("%lld", (long long)json_integer_value(
		    json_object_get(p, "task")));
		json_object_set_new(r->tasks, key, json_integer(s - r->steps));
		free(key);
	}
	return s;
}

/* An outcome event: attach it to its call. */
static void
replay_on_outcome(struct replay *r, const struct store_event *ev, json_t *p)
{
	struct rstep *s = NULL;
	json_t *v;
	char *key;

	if (json_is_integer(json_object_get(p, "call")))
		s = replay_find(r, ev->node_path, (int)json_integer_value(
		    json_object_get(p, "call")));
	else if (json_is_integer(json_object_get(p, "task"))) {
		/* A tool's outcome names its task: this coordinator's. */
		key = xasprintf("%lld", (long long)json_integer_value(
		    json_object_get(p, "task")));
		if ((v = json_object_get(r->tasks, key)) != NULL)
			s = &r->steps[json_integer_value(v)];
		free(key);
	}
	if (s == NULL || s->name == NULL)
		return;
	json_decref(s->result);
	json_decref(s->error);
	s->result = s->error = NULL;
	if ((v = json_object_get(p, "response")) != NULL ||
	    (v = json_object_get(p, "result")) != NULL)
		s->result = json_incref(v);
	else if ((v = json_object_get(p, "error")) != NULL)
		s->error = json_incref(v);
	else
		s->error = json_incref(p);	/* model.error: the payload */
	s->from = ev->seq;
}

/*
 * A tool.progress event naming a remote task (an a2a.send's, recorded by
 * engine/coord_wire.c): kept on its call, for the run being resumed
 * only (a fork sends its own messages, with its own messageIds).
 */
static void
replay_on_remote(struct replay *r, const struct store_event *ev)
{
	json_t *p, *v, *rt;
	char *key;

	if (!r->own || ev->payload == NULL || strstr(ev->payload,
	    "\"remote\"") == NULL || (p = json_loads(ev->payload, 0,
	    NULL)) == NULL)
		return;
	rt = json_object_get(p, "remote");
	key = xasprintf("%lld", (long long)json_integer_value(
	    json_object_get(p, "task")));
	if (json_is_string(json_object_get(rt, "task")) &&
	    json_is_integer(json_object_get(p, "task")) &&
	    (v = json_object_get(r->tasks, key)) != NULL) {
		json_decref(r->steps[json_integer_value(v)].remote);
		r->steps[json_integer_value(v)].remote = json_incref(rt);
	}
	free(key);
	json_decref(p);
}

static int
replay_event_cb(void *arg, const struct store_event *ev)
{
	struct replay *r = arg;
	struct rstep *s;
	json_t *p;
	int is_call, is_value;

	if (ev->seq > r->last_seq)
		r->last_seq = ev->seq;
	if (ev->span_id > r->last_span)
		r->last_span = ev->span_id;
	if (r->upto > 0 && ev->seq > r->upto)
		return 0;
	if (strcmp(ev->kind, "run.start") == 0 ||
	    strcmp(ev->kind, "run.resume") == 0)
		json_object_clear(r->tasks);
	if (strcmp(ev->kind, "tool.progress") == 0) {
		replay_on_remote(r, ev);
		return 0;
	}
	is_call = kind_in(ev->kind, call_kinds);
	is_value = strcmp(ev->kind, "clock") == 0 ||
	    strcmp(ev->kind, "random") == 0 ||
	    strcmp(ev->kind, "approval.answer") == 0;
	if (!is_call && !is_value && !kind_in(ev->kind, outcome_kinds))
		return 0;
	if (ev->payload == NULL || (p = json_loads(ev->payload, 0, NULL)) ==
	    NULL)
		return 0;
	if (!json_is_integer(json_object_get(p, "call")) &&
	    (is_call || is_value))
		;	/* recorded before calls were numbered: not usable */
	else if (is_call)
		replay_on_call(r, ev, p);
	else if (is_value) {
		if ((s = replay_on_call(r, ev, p)) != NULL) {
			s->result = json_incref(json_object_get(p, "value"));
			s->from = ev->seq;
		}
	} else
		replay_on_outcome(r, ev, p);
	json_decref(p);
	return 0;
}

/* The first event of a fork: forked_from {run, seq}.  Stops the walk. */
static int
replay_fork_cb(void *arg, const struct store_event *ev)
{
	json_t **from = arg, *p;

	if (strcmp(ev->kind, "run.start") == 0 && ev->payload != NULL &&
	    (p = json_loads(ev->payload, 0, NULL)) != NULL) {
		if (json_is_object(json_object_get(p, "forked_from")))
			*from = json_incref(json_object_get(p, "forked_from"));
		json_decref(p);
	}
	return 1;
}

/*
 * Load run_id's calls into r: for a fork, its parent's up to the fork
 * point first (the fork's own answered calls are only step.replayed
 * there).  depth bounds a chain of forks.
 */
static int
replay_load_run(struct replay *r, struct store *st, const char *run_id,
    int64_t upto, int depth)
{
	json_t *from = NULL;
	const char *parent;
	int rv = 0;

	if (store_events_foreach(st, run_id, replay_fork_cb, &from) < 0)
		return -1;
	parent = json_string_value(json_object_get(from, "run"));
	if (parent != NULL && depth < 64 && strcmp(parent, run_id) != 0)
		rv = replay_load_run(r, st, parent, json_integer_value(
		    json_object_get(from, "seq")), depth + 1);
	json_decref(from);
	if (rv != 0)
		return rv;
	json_object_clear(r->tasks);
	r->own = depth == 0 && upto <= 0;	/* resumed, not forked from */
	r->upto = upto;
	r->last_seq = 0;
	r->last_task = 0;
	r->last_span = 0;
	return store_events_foreach(st, run_id, replay_event_cb, r) < 0 ?
	    -1 : 0;
}

struct replay *
replay_load(struct store *st, const char *run_id, enum replay_mode mode,
    int64_t upto, char *err, size_t errlen)
{
	struct replay *r = xcalloc(1, sizeof *r);

	r->mode = mode;

	r->tasks = json_object();
	if (replay_load_run(r, st, run_id, upto, 0) != 0) {
		errf(err, errlen, "%s", store_error(st));
		replay_free(r);
		return NULL;
	}
	return r;
}

void
replay_free(struct replay *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->nsteps; i++) {
		rstep_clear(&r->steps[i]);
		free(r->steps[i].path);
	}
	free(r->steps);
	free(r->index);
	json_decref(r->tasks);
	free(r->diverge);
	free(r);
}

/* Note the first divergence. */
static void
replay_diverged(struct replay *r, const char *path, int call,
    const char *record, int64_t seq, const char *now)
{
	char at[40] = "";

	if (r->diverge != NULL)
		return;
	if (seq > 0)
		snprintf(at, sizeof at, " (seq %lld)", (long long)seq);
	r->diverge = xasprintf("first divergence at node '%s', call #%d:\n"
	    "  record: %s%s\n  script: %s", path, call, record, at,
	    now != NULL ? now : "");
	r->undescribed = now == NULL;
}

void
replay_describe(struct replay *r, const char *now)
{
	char *d;

	if (r->diverge == NULL || !r->undescribed)
		return;
	d = xasprintf("%s%s", r->diverge, now);
	free(r->diverge);
	r->diverge = d;
	r->undescribed = 0;
}

/* A divergence at a recorded step s: its description against now. */
static void
replay_step_diverged(struct replay *r, struct rstep *s, const char *now)
{
	json_t *p = s->args_key != NULL ? json_pack("{s:O}", s->args_key,
	    s->args) : json_pack("{s:i}", "nmessages", s->nmsg);
	char *desc = replay_desc(s->name, p);

	replay_diverged(r, s->path, s->call, desc, s->seq, now);
	free(desc);
	json_decref(p);
}

int
replay_answer(struct replay *r, const char *path, int call,
    const char *name, const char *hash, const char *desc, json_t **result,
    json_t **error, int64_t *from)
{
	struct rstep *s = replay_find(r, path, call);
	int offline = r->mode == REPLAY_OFFLINE;

	if (s == NULL || s->from == 0) {
		if (offline)
			replay_diverged(r, path, call, s == NULL ? "no such "
			    "call (the record ends before it)" : "the call, "
			    "with no outcome (in flight when the run stopped)",
			    s != NULL ? s->seq : 0, desc);
		return offline ? -1 : 0;
	}
	if (strcmp(s->name, name) != 0 || strcmp(s->hash, hash) != 0) {
		if (offline)
			replay_step_diverged(r, s, desc);
		return offline ? -1 : 0;
	}
	if (s->result == NULL && !offline)
		return 0;	/* a failed call is tried again on resume */
	s->used = 1;
	r->answered++;
	*result = s->result;
	*error = s->result == NULL ? s->error : NULL;
	*from = s->from;
	return 1;
}

json_t *
replay_remote(struct replay *r, const char *path, const char *hash)
{
	size_t i;

	if (r->mode != REPLAY_RESUME)
		return NULL;
	for (i = 0; i < r->nsteps; i++) {
		struct rstep *s = &r->steps[i];

		if (s->remote != NULL && s->from == 0 && strcmp(s->path,
		    path) == 0 && strcmp(s->hash, hash) == 0)
			return s->remote;
	}
	return NULL;
}

const char *
replay_divergence(const struct replay *r)
{
	return r->diverge;
}

int64_t
replay_answered(const struct replay *r)
{
	return r->answered;
}

int64_t
replay_recorded(const struct replay *r)
{
	size_t i;
	int64_t n = 0;

	for (i = 0; i < r->nsteps; i++)
		n += r->steps[i].from > 0;
	return n;
}

int64_t
replay_last_seq(const struct replay *r)
{
	return r->last_seq;
}

int64_t
replay_last_task(const struct replay *r)
{
	return r->last_task;
}

int
replay_legacy_lists(const struct replay *r)
{
	return r->legacy_lists;
}

int64_t
replay_last_span(const struct replay *r)
{
	return r->last_span;
}

int
replay_check_unused(struct replay *r)
{
	struct rstep *first = NULL;
	size_t i;

	for (i = 0; i < r->nsteps; i++) {
		struct rstep *s = &r->steps[i];

		if (s->from > 0 && !s->used && (first == NULL ||
		    s->seq < first->seq))
			first = s;
	}
	if (first == NULL)
		return 0;
	replay_step_diverged(r, first, "no such call (the script no longer "
	    "makes it)");
	return -1;
}

void
replay_hash(const char *a, const char *b, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	static EVP_MD *sha256;		/* fetched once, not per call */
	unsigned char md[32];
	unsigned int n = 0, i;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (sha256 == NULL && (sha256 = EVP_MD_fetch(NULL, "SHA256",
	    NULL)) == NULL)
		fatalx(1, "sha256: no implementation");
	EVP_DigestInit_ex(ctx, sha256, NULL);
	if (a != NULL)
		EVP_DigestUpdate(ctx, a, strlen(a));
	EVP_DigestUpdate(ctx, "", 1);
	if (b != NULL)
		EVP_DigestUpdate(ctx, b, strlen(b));
	EVP_DigestFinal_ex(ctx, md, &n);
	EVP_MD_CTX_free(ctx);
	for (i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

