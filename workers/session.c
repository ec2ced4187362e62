/* session.c: a worker's MCP server sessions and scratch dirs (worker_int.h). */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nng/nng.h>
#include <openssl/crypto.h>

#include "engine/captoken.h"
#include "protocols/jsonrpc.h"
#include "protocols/mcp_client.h"
#include "runtime/fault.h"
#include "runtime/sandbox.h"
#include "runtime/util.h"
#include "runtime/wire.h"
#include "workers/worker_int.h"

/*
 * Where scratch dirs go: the root the coordinator made for them (from the
 * enrolment), else a directory of our own.
 */
int
worker_scratch_root(struct worker *w, const char *given)
{
	const char *tmp = getenv("TMPDIR");

	if (given != NULL && *given == '/' &&
	    strlen(given) < sizeof w->scratch_root) {
		snprintf(w->scratch_root, sizeof w->scratch_root, "%s", given);
		return 0;
	}
	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	snprintf(w->scratch_root, sizeof w->scratch_root,
	    "%s/weft-worker-XXXXXX", tmp);
	if (mkdtemp(w->scratch_root) == NULL) {
		fprintf(stderr, "weft worker %d: cannot create a scratch "
		    "directory in %s: %s\n", w->id, tmp, strerror(errno));
		w->scratch_root[0] = '\0';
		return -1;
	}
	w->scratch_own = 1;
	return 0;
}

/*
 * At exit: remove our scratch dirs, and those of workers that died
 * without removing theirs (named after their pids).
 */
void
worker_scratch_sweep(struct worker *w)
{
	struct dirent *de;
	char *end;
	long pid;
	DIR *d;

	if (w->scratch_root[0] == '\0' ||
	    (d = opendir(w->scratch_root)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		pid = strtol(de->d_name, &end, 10);
		if (end == de->d_name || *end != '-' || pid <= 0)
			continue;
		if (pid == (long)getpid() ||
		    (kill((pid_t)pid, 0) == -1 && errno == ESRCH))
			rmtree_at(dirfd(d), de->d_name);
	}
	closedir(d);
	rmdir(w->scratch_root);
}

/* Close a session: stop its server, remove its scratch dir. */
void
worker_session_free(struct wsession *s)
{
	LIST_REMOVE(s, entry);
	mcpc_free(s->mcpc);
	json_decref(s->tools);
	if (s->scratch != NULL)
		rmtree(s->scratch);
	free(s->scratch);
	free(s->name);
	free(s->run);
	free(s);
}

/* Make the scratch dir of a session: ROOT/PID-RUN-SERVER, mode 0700. */
static char *
worker_scratch(struct worker *w, const char *run, const char *name,
    char *err, size_t errlen)
{
	char *dir;
	size_t i;

	for (i = 0; run[i] != '\0'; i++) {
		if (i >= 64 || !(isalnum((unsigned char)run[i]) ||
		    run[i] == '-' || run[i] == '_')) {
			errf(err, errlen, "/run: not a run id");
			return NULL;
		}
	}
	for (i = 0; name[i] != '\0'; i++) {
		if (i >= 128 || !(isalnum((unsigned char)name[i]) ||
		    name[i] == '-' || name[i] == '_' || name[i] == '.') ||
		    (i == 0 && name[i] == '.')) {
			errf(err, errlen, "/params/server/name: '%s' cannot "
			    "name a scratch directory", name);
			return NULL;
		}
	}
	if (w->scratch_root[0] == '\0') {
		errf(err, errlen, "sandbox: no scratch directory");
		return NULL;
	}
	if (mkdir(w->scratch_root, 0700) == -1 && errno != EEXIST) {
		errf(err, errlen, "sandbox: cannot create %s: %s",
		    w->scratch_root, strerror(errno));
		return NULL;
	}
	dir = xasprintf("%s/%ld-%s-%s", w->scratch_root, (long)getpid(),
	    *run ? run : "run", name);
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		errf(err, errlen, "sandbox: cannot create the scratch "
		    "directory %s: %s", dir, strerror(errno));
		free(dir);
		return NULL;
	}
	return dir;
}

/* mkdir -p path, mode 0700; 0, or -1 with errno. */
static int
worker_mkdirs(char *path)
{
	char *p;

	for (p = path + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(path, 0700) == -1 && errno != EEXIST) {
			*p = '/';
			return -1;
		}
		*p = '/';
	}
	return mkdir(path, 0700) == -1 && errno != EEXIST ? -1 : 0;
}

/*
 * The state directory of server name for the workflow file key (state =
 * true): STATE/servers/STEM-HASH/NAME, made 0700, where STATE is the
 * state directory (state_dir_path), STEM the file's name without .lua and
 * HASH 16 hex digits of its path.  Kept between runs: never removed here.
 */
static char *
worker_state(const char *key, const char *name, char *err, size_t errlen)
{
	char root[PATH_MAX], stem[65], why[256], *dir;
	const char *base = strrchr(key, '/');
	uint64_t h = 1469598103934665603ULL;
	size_t i, n;

	if (state_dir_path(root, sizeof root, why, sizeof why) != 0) {
		errf(err, errlen, "/params/server/state: %s", why);
		return NULL;
	}
	for (i = 0; key[i] != '\0'; i++)
		h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
	base = base != NULL ? base + 1 : key;
	n = strlen(base);
	if (n > 4 && strcmp(base + n - 4, ".lua") == 0)
		n -= 4;
	for (i = 0; i < n && i + 1 < sizeof stem; i++)
		stem[i] = isalnum((unsigned char)base[i]) || base[i] == '-' ||
		    base[i] == '_' ? base[i] : '_';
	stem[i] = '\0';
	dir = xasprintf("%s/servers/%s-%016llx/%s", root, stem,
	    (unsigned long long)h, name);
	if (worker_mkdirs(dir) != 0) {
		errf(err, errlen, "MCP server '%s': cannot create its state "
		    "directory %s: %s", name, dir, strerror(errno));
		free(dir);
		return NULL;
	}
	return dir;
}

/* s with each ${WEFT_STATE} and ${WEFT_SCRATCH} replaced (new string). */
static json_t *
worker_expand(const char *s, const char *state, const char *scratch)
{
	static const char *const names[] = { "${WEFT_STATE}",
	    "${WEFT_SCRATCH}" };
	const char *vals[2], *p = s;
	char *out;
	size_t n = 0, cap, len, k;
	json_t *r;

	vals[0] = state;
	vals[1] = scratch;
	cap = strlen(s) + 1;
	out = xmalloc(cap);
	while (*p != '\0') {
		for (k = 0; k < 2; k++)
			if (vals[k] != NULL && strncmp(p, names[k],
			    strlen(names[k])) == 0)
				break;
		len = k < 2 ? strlen(vals[k]) : 1;
		if (n + len + 1 > cap) {
			cap = (n + len + 1) * 2;
			out = xrealloc(out, cap);
		}
		memcpy(out + n, k < 2 ? vals[k] : p, len);
		n += len;
		p += k < 2 ? strlen(names[k]) : 1;
	}
	out[n] = '\0';
	r = json_string(out);
	free(out);
	return r;
}

/*
 * An npm server: spec's npm_cache is STATE/npm, where the package is
 * installed once (made 0700 here).  Without a state directory it stays
 * unset, and the server fails to start saying so.
 */
static void
worker_npm_cache(json_t *spec)
{
	char root[PATH_MAX], why[256], *dir;

	if (state_dir_path(root, sizeof root, why, sizeof why) != 0)
		return;
	dir = xasprintf("%s/npm", root);
	if (worker_mkdirs(dir) == 0)
		json_object_set_new(spec, "npm_cache", json_string(dir));
	free(dir);
}

/*
 * The spec the server starts from (new reference): with state, $WEFT_STATE
 * in its environment and the state directory as its working directory
 * unless it has one; ${WEFT_STATE} and ${WEFT_SCRATCH} expanded in its
 * command (or an npm server's args) and environment.
 */
static json_t *
worker_spec(json_t *spec, const char *state, const char *scratch)
{
	json_t *s = json_deep_copy(spec), *cmd, *env, *args, *v;
	const char *k;
	size_t i;

	cmd = json_object_get(s, "command");
	env = json_object_get(s, "env");
	if (state != NULL) {
		if (!json_is_object(env)) {
			env = json_object();
			json_object_set_new(s, "env", env);
		}
		json_object_set_new(env, "WEFT_STATE", json_string(state));
		if (json_object_get(s, "cwd") == NULL)
			json_object_set_new(s, "cwd", json_string(state));
	}
	if (json_object_get(s, "npm") != NULL)
		worker_npm_cache(s);
	json_array_foreach(cmd, i, v)
		if (json_is_string(v))
			json_array_set_new(cmd, i, worker_expand(
			    json_string_value(v), state, scratch));
	args = json_object_get(s, "args");	/* an npm server's */
	json_array_foreach(args, i, v)
		if (json_is_string(v))
			json_array_set_new(args, i, worker_expand(
			    json_string_value(v), state, scratch));
	json_object_foreach(env, k, v)
		if (json_is_string(v))
			json_object_set_new(env, k, worker_expand(
			    json_string_value(v), state, scratch));
	return s;
}

/*
 * notifications/progress: queue it on the task whose token it names, for
 * the next heartbeat or the outcome (the coordinator records them as
 * tool.progress events).  Past the limit the oldest are dropped, so the
 * latest always goes through.
 */
static void
worker_progress(struct wsession *s, json_t *params)
{
	json_t *tok = json_object_get(params, "progressToken");
	json_t *p = json_object_get(params, "progress");
	json_t *total = json_object_get(params, "total");
	json_t *msg = json_object_get(params, "message"), *item;
	struct wtask *t;

	if (!json_is_integer(tok) || !json_is_number(p))
		return;
	TAILQ_FOREACH(t, &s->w->running, entry)
		if (t->ws == s && t->id == json_integer_value(tok))
			break;
	if (t == NULL)
		return;
	item = json_pack("{s:O}", "progress", p);
	if (json_is_number(total))
		json_object_set(item, "total", total);
	if (json_is_string(msg))
		json_object_set_new(item, "message", json_stringn(
		    json_string_value(msg), strnlen(json_string_value(msg),
		    512)));
	worker_task_progress(t, item);
}

void
worker_task_progress(struct wtask *t, json_t *item)
{
	json_t *old, *next;

	if (t->progress == NULL)
		t->progress = json_array();
	if (json_array_size(t->progress) >= WORKER_MAX_PROGRESS) {
		/* An a2a.send's remote task id (task_a2a.c) is not dropped:
		   the next item carries it. */
		old = json_object_get(json_array_get(t->progress, 0),
		    "remote");
		next = json_array_get(t->progress, 1);
		if (old != NULL && json_object_get(next, "remote") == NULL)
			json_object_set(next, "remote", old);
		json_array_remove(t->progress, 0);
	}
	json_array_append_new(t->progress, item);
	/* Reported now, not at the next beat: one heartbeat in flight at a
	   time, and its answer sends what came meanwhile. */
	if (!t->w->hb.busy && t->w->hb_ev != NULL)
		event_active(t->w->hb_ev, EV_TIMEOUT, 0);
}

/* A notification from a server: progress, or its tool list changed. */
static void
worker_note_cb(void *arg, const char *method, json_t *params)
{
	struct wsession *s = arg;

	if (strcmp(method, "notifications/progress") == 0)
		worker_progress(s, params);
	else if (strcmp(method, "notifications/tools/list_changed") == 0) {
		json_decref(s->tools);
		s->tools = NULL;
		s->gen++;
		s->changed = 1;
		if (s->w->verbose)
			fprintf(stderr, "weft worker %d: MCP server '%s': "
			    "tool list changed\n", s->w->id, s->name);
	}
}

/*
 * The session for a server spec in a run, created on first use.  Idle
 * sessions of other runs are closed then: a server never carries state,
 * or a scratch dir, from one run into the next.
 */
struct wsession *
worker_session(struct worker *w, json_t *spec, const char *run, char *err,
    size_t errlen)
{
	const char *name = json_string_value(json_object_get(spec, "name"));
	struct wsession *s, *next;
	struct sandbox_profile *sb;
	struct mcpc *m;
	char *scratch = NULL, *state = NULL, owner[80], hash[65];
	json_t *key = json_object_get(spec, "state"), *run_spec;
	json_t *keep = json_object_get(spec, "keep");
	int kept = 0;

	if (name == NULL) {
		errf(err, errlen, "/params/server/name: must be a string");
		return NULL;
	}
	if (keep != NULL && !json_is_string(keep)) {
		errf(err, errlen, "/params/server/keep: must be the "
		    "workflow's path");
		return NULL;
	}
	/* Whose session: the run's (isolation, the default), or with
	   keep the workflow's, shared by its runs and kept warm. */
	if (keep != NULL) {
		sha256_hex(json_string_value(keep), json_string_length(keep),
		    hash);
		snprintf(owner, sizeof owner, "keep%.16s", hash);
		run = owner;
		kept = 1;
	}
	LIST_FOREACH(s, &w->sessions, entry)
		if (strcmp(s->name, name) == 0 && strcmp(s->run, run) == 0)
			return s;
	for (s = LIST_FIRST(&w->sessions); s != NULL; s = next) {
		next = LIST_NEXT(s, entry);
		if (strcmp(s->run, run) != 0 && s->nactive == 0 && !s->kept)
			worker_session_free(s);
	}
	if (json_object_get(spec, "url") != NULL) {
		/* A remote server: there is no process to confine. */
		sb = NULL;
		if (json_is_object(json_object_get(spec, "sandbox"))) {
			errf(err, errlen, "/params/server/sandbox: MCP server "
			    "'%s' is remote (url); the sandbox applies to "
			    "command servers only", name);
			return NULL;
		}
	} else if (sandbox_profile_parse(json_object_get(spec, "sandbox"),
	    &sb, err, errlen) != 0)
		return NULL;
	if (sb != NULL) {
		if ((scratch = worker_scratch(w, run, name, err,
		    errlen)) == NULL) {
			sandbox_profile_free(sb);
			return NULL;
		}
		sb->scratch = xstrdup(scratch);
	}
	if (key != NULL && (!json_is_string(key) || json_object_get(spec,
	    "url") != NULL)) {
		errf(err, errlen, "/params/server/state: must be the "
		    "workflow's path, for a command server");
		goto fail;
	}
	if (key != NULL && (state = worker_state(json_string_value(key),
	    name, err, errlen)) == NULL)
		goto fail;
	if (sb != NULL && state != NULL)
		sb->state = xstrdup(state);
	run_spec = worker_spec(spec, state, scratch);
	m = mcpc_new(w->base, run_spec, sb, err, errlen);
	json_decref(run_spec);
	free(state);
	if (m == NULL)
		goto fail;	/* sb is still ours */
	s = xcalloc(1, sizeof *s);
	s->w = w;
	s->mcpc = m;
	mcpc_set_notify(m, worker_note_cb, s);
	s->name = xstrdup(name);
	s->run = xstrdup(run);
	s->kept = kept;
	s->scratch = scratch;
	LIST_INSERT_HEAD(&w->sessions, s, entry);
	return s;
fail:
	sandbox_profile_free(sb);
	if (scratch != NULL)
		rmtree(scratch);
	free(scratch);
	return NULL;
}
