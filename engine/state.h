/*
 * state.h: the run state, one JSON object changed only by recorded deltas.
 *
 * A struct state is a view: a delta object over an optional parent view.
 * The root view holds the run input.  A parallel branch gets a fork of its
 * parent's view: reads fall through to the parent as it was when the branch
 * started (the parent is not written while its forks live, because the
 * parallel node waits for them), writes go to the branch's own delta.  When
 * the branches finish, state_merge() folds their deltas into the parent with
 * the reducer declared for each key.
 */
#ifndef WEFT_STATE_H
#define WEFT_STATE_H

#include <stddef.h>
#include <jansson.h>

struct state;

enum state_reducer {
	STATE_REDUCE_NONE = 0,	/* two branches writing the key is an error */
	STATE_REDUCE_APPEND,	/* array: each branch's new items are appended */
	STATE_REDUCE_MERGE,	/* object: shallow merge; a sub-key set to two
				   different values by two branches is an error */
	STATE_REDUCE_SUM,	/* number: base + sum of each branch's change */
	STATE_REDUCE_CUSTOM	/* the caller's custom() callback folds values */
};

struct state_reducers {
	/* The reducer declared for key. */
	enum state_reducer (*kind)(void *arg, const char *key);
	/* For STATE_REDUCE_CUSTOM: fold val into acc (acc may be NULL when the
	   key was unset); on success *out is a new reference.  0 or -1 with a
	   message in err. */
	int (*custom)(void *arg, const char *key, json_t *acc, json_t *val,
	    json_t **out, char *err, size_t errlen);
	void *arg;
};

struct state_branch {
	const char	*name;	/* branch name, used in conflict errors */
	struct state	*st;	/* a fork of the parent */
};

/* A root view whose initial content is a copy of obj (an object or NULL). */
struct state *state_new(json_t *obj);
/* A branch view over parent.  The parent must outlive the fork. */
struct state *state_fork(struct state *parent);
void state_free(struct state *);

/* The value of key as this view sees it (borrowed), or NULL. */
json_t *state_get(const struct state *, const char *key);
/* Like state_get() for a key of len bytes that need not be NUL-terminated
   (a slice of a template or path). */
json_t *state_getn(const struct state *, const char *key, size_t len);
/* The value at a dotted path "a.b.c" (objects only), borrowed, or NULL. */
json_t *state_get_path(const struct state *, const char *path);
/* Write key in this view; steals the reference to value. */
void state_set(struct state *, const char *key, json_t *value);
/* The keys written in this view and their values (borrowed). */
json_t *state_delta(const struct state *);
/* The whole state as this view sees it (new reference). */
json_t *state_snapshot(const struct state *);

/*
 * Fold the deltas of n branches (forks of parent) into parent, keys in
 * sorted order and branches in the given order, so the result never depends
 * on hash order.  On a conflict (a key written by two branches with no
 * reducer, a type mismatch for a reducer) nothing is written to parent and
 * -1 is returned with a message naming the key and both branches, e.g.
 * "branches 'web' and 'notes' both wrote 'facts', which has no reducer".
 * par_name names the parallel node in the message.
 */
int state_merge(struct state *parent, const char *par_name,
    struct state_branch *branches, size_t n, const struct state_reducers *r,
    char *err, size_t errlen);

#endif
