/*
 * approval.c: the approvals a run waits for: asked by the graph, answered
 * from the record, the store, the terminal or the deadline, and recorded
 * as approval.answer.  See approval.h.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "engine/approval.h"
#include "engine/coord.h"
#include "engine/replay.h"
#include "engine/schema.h"
#include "engine/store.h"
#include "runtime/util.h"

/* An approval that waits. */
struct pending {
	int64_t		 ticket;
	char		*path;
	int		 call;
	int64_t		 span, parent_span;
	char		 hash[65];
	json_t		*spec;		/* prompt, schema, timeout,
					   on_timeout */
	double		 deadline;	/* 0: none */
};

struct approvals {
	struct crun	*run;
	struct store	*st;
	char		*run_id;
	struct pending	*p;
	size_t		 n, cap;
};

struct approvals *
approvals_new(struct crun *run, struct store *st, const char *run_id)
{
	struct approvals *ap = xcalloc(1, sizeof *ap);

	ap->run = run;
	ap->st = st;
	ap->run_id = xstrdup(run_id);
	return ap;
}

static void
pending_clear(struct pending *p)
{
	free(p->path);
	json_decref(p->spec);
}

void
approvals_free(struct approvals *ap)
{
	size_t i;

	if (ap == NULL)
		return;
	for (i = 0; i < ap->n; i++)
		pending_clear(&ap->p[i]);
	free(ap->p);
	free(ap->run_id);
	free(ap);
}

int
approvals_waiting(const struct approvals *ap)
{
	return ap != NULL ? (int)ap->n : 0;
}

/* Record pending i's answer (value, borrowed), deliver it, drop i. */
static void
approval_settle(struct approvals *ap, size_t i, json_t *value)
{
	struct pending *p = &ap->p[i];
	json_t *ev;

	ev = json_pack("{s:i, s:s, s:s, s:O}", "call", p->call, "hash",
	    p->hash, "step", "approval", "value", value);
	crun_event(ap->run, "approval.answer", p->span, p->parent_span,
	    p->path, 0, ev, 0, 0);
	json_decref(ev);
	crun_deliver(ap->run, p->ticket, value, NULL);
	pending_clear(p);
	memmove(p, p + 1, (ap->n - i - 1) * sizeof *p);
	ap->n--;
}

/* A row's status and answer, copied out of store_approval_get. */
struct row {
	int	 found;
	char	*status;
	json_t	*answer;
	double	 deadline;
};

static int
row_cb(void *arg, const struct store_approval *a)
{
	struct row *r = arg;

	r->found = 1;
	r->status = xstrdup(a->status ? a->status : "");
	r->answer = a->answer ? json_loads(a->answer, 0, NULL) : NULL;
	r->deadline = a->deadline;
	return 1;
}

static void
row_clear(struct row *r)
{
	free(r->status);
	json_decref(r->answer);
	memset(r, 0, sizeof *r);
}

/*
 * Settle pending i if the store answered it or its deadline passed.
 * Returns 1 when settled, 0 when it still waits, -1 on a store failure.
 */
static int
approval_check(struct approvals *ap, size_t i)
{
	struct pending *p = &ap->p[i];
	struct row r;
	const char *on;
	json_t *v;
	int rv = 0;

	memset(&r, 0, sizeof r);
	if (store_approval_get(ap->st, ap->run_id, p->path, p->call, row_cb,
	    &r) < 0)
		return -1;
	if (r.found && strcmp(r.status, "waiting") != 0 &&
	    json_is_object(r.answer)) {
		approval_settle(ap, i, r.answer);
		rv = 1;
	} else if (p->deadline > 0 && now_wall() >= p->deadline) {
		on = json_string_value(json_object_get(p->spec,
		    "on_timeout"));
		if (on == NULL)
			on = "reject";
		v = json_pack("{s:b, s:b, s:s, s:s}", "approved",
		    strcmp(on, "approve") == 0, "timed_out", 1, "on_timeout",
		    on, "by", "timeout");
		if (strcmp(on, "approve") != 0)
			json_object_set_new(v, "reason", json_string(
			    "no answer before the deadline"));
		if (store_approval_answer(ap->st, ap->run_id, p->path,
		    p->call, "timed_out", NULL, now_wall()) < 0)
			rv = -1;
		else {
			approval_settle(ap, i, v);
			rv = 1;
		}
		json_decref(v);
	}
	row_clear(&r);
	return rv;
}

int
approvals_poll(struct approvals *ap)
{
	size_t i = 0;
	int n = 0, rv;

	while (ap != NULL && i < ap->n) {
		if ((rv = approval_check(ap, i)) == 1)
			n++;
		else
			i++;
	}
	return n;
}

/* Register a live approval: its store row (made now, or left by the run
   before a resume: its deadline kept), its approval.wait event. */
static int
approval_wait(struct approvals *ap, struct pending *p, char *err,
    size_t errlen)
{
	struct store_approval a;
	struct row r;
	json_t *ev, *t;
	char *schema = NULL;
	int rv = 0;

	memset(&r, 0, sizeof r);
	if (store_approval_get(ap->st, ap->run_id, p->path, p->call, row_cb,
	    &r) < 0) {
		errf(err, errlen, "%s", store_error(ap->st));
		return -1;
	}
	if (r.found) {
		p->deadline = r.deadline;
		row_clear(&r);
		return 0;
	}
	memset(&a, 0, sizeof a);
	a.run_id = ap->run_id;
	a.path = p->path;
	a.call = p->call;
	a.prompt = json_string_value(json_object_get(p->spec, "prompt"));
	if ((t = json_object_get(p->spec, "schema")) != NULL)
		schema = json_dumps(t, JSON_COMPACT);
	a.schema = schema;
	a.on_timeout = json_string_value(json_object_get(p->spec,
	    "on_timeout"));
	a.waited = now_wall();
	if (json_is_number(t = json_object_get(p->spec, "timeout")))
		a.deadline = a.waited + json_number_value(t);
	p->deadline = a.deadline;
	if (store_approval_wait(ap->st, &a) != 0) {
		errf(err, errlen, "%s", store_error(ap->st));
		rv = -1;
	} else {
		ev = json_deep_copy(p->spec);
		json_object_set_new(ev, "call", json_integer(p->call));
		if (a.deadline > 0)
			json_object_set_new(ev, "deadline",
			    json_real(a.deadline));
		crun_event(ap->run, "approval.wait", p->span, p->parent_span,
		    p->path, 0, ev, 0, 0);
		json_decref(ev);
	}
	free(schema);
	return rv;
}

int64_t
approvals_ask(struct approvals *ap, const char *path, int64_t span,
    int64_t parent_span, const char *spec, char *err, size_t errlen)
{
	struct pending *p;
	json_t *js;
	char *desc;
	int64_t t;
	int call;

	if ((js = json_loads(spec, 0, NULL)) == NULL) {
		errf(err, errlen, "approval: the spec is not JSON");
		return -1;
	}
	call = crun_call_index(ap->run, path);
	if (ap->n == ap->cap) {
		ap->cap = ap->cap ? ap->cap * 2 : 4;
		ap->p = xrealloc(ap->p, ap->cap * sizeof *ap->p);
	}
	p = &ap->p[ap->n];
	memset(p, 0, sizeof *p);
	replay_hash(spec, NULL, p->hash);
	desc = xasprintf("approval %s", json_string_value(json_object_get(js,
	    "prompt")));
	t = crun_recorded(ap->run, path, span, call, "approval", p->hash,
	    desc);
	free(desc);
	if (t != 0) {
		json_decref(js);
		if (t < 0)
			errf(err, errlen, "replay diverged at the approval");
		return t;
	}
	p->ticket = crun_ticket(ap->run);
	p->path = xstrdup(path);
	p->call = call;
	p->span = span;
	p->parent_span = parent_span;
	p->spec = js;
	if (approval_wait(ap, p, err, errlen) != 0) {
		pending_clear(p);
		return -1;
	}
	t = p->ticket;
	ap->n++;
	if (approval_check(ap, ap->n - 1) < 0) {
		errf(err, errlen, "%s", store_error(ap->st));
		return -1;
	}
	return t;
}

json_t *
approval_make_answer(const char *schema, int approved,
    const char *answer_text, const char *reason, const char *by, char *err,
    size_t errlen)
{
	json_error_t je;
	json_t *sc = NULL, *ans = NULL, *v;
	char why[512];

	if (!approved) {
		v = json_pack("{s:b, s:s, s:s}", "approved", 0, "reason",
		    reason != NULL ? reason : "", "by", by);
		return v;
	}
	if (answer_text != NULL && (ans = json_loads(answer_text,
	    JSON_DECODE_ANY, &je)) == NULL) {
		errf(err, errlen, "--answer is not JSON: %s (at character "
		    "%d)", je.text, je.position);
		return NULL;
	}
	if (schema != NULL && (sc = json_loads(schema, 0, NULL)) != NULL) {
		if (ans == NULL) {
			errf(err, errlen, "this approval asks for an answer "
			    "matching its schema %s: give it with --answer "
			    "JSON", schema);
			json_decref(sc);
			return NULL;
		}
		if (schema_validate(sc, ans, why, sizeof why) != 0) {
			errf(err, errlen, "--answer does not match the "
			    "approval's schema: %s", why);
			json_decref(sc);
			json_decref(ans);
			return NULL;
		}
		json_decref(sc);
	}
	v = json_pack("{s:b, s:s}", "approved", 1, "by", by);
	if (ans != NULL)
		json_object_set_new(v, "answer", ans);
	return v;
}

/* Read a line from in within the deadline (0: none): 1, 0 at the
   deadline, -1 at the end of in. */
static int
prompt_line(FILE *in, double deadline, char *buf, size_t len)
{
	struct pollfd pfd;
	double left;
	int ms, rv;

	for (;;) {
		ms = -1;
		if (deadline > 0) {
			left = deadline - now_wall();
			if (left <= 0)
				return 0;
			ms = left > 3600 ? 3600000 : (int)(left * 1000) + 1;
		}
		pfd.fd = fileno(in);
		pfd.events = POLLIN;
		rv = poll(&pfd, 1, ms);
		if (rv < 0 && errno == EINTR)
			return -1;	/* a signal: the run is cancelled */
		if (rv > 0)
			break;
	}
	if (fgets(buf, (int)len, in) == NULL)
		return -1;
	buf[strcspn(buf, "\r\n")] = '\0';
	return 1;
}

int
approvals_prompt(struct approvals *ap, FILE *in, FILE *out)
{
	struct pending *p;
	const char *prompt;
	char line[4096], err[1024], *schema = NULL, *text, *reason;
	json_t *v, *sc;
	int rv;

	if (ap->n == 0)
		return 0;
	p = &ap->p[0];
	prompt = json_string_value(json_object_get(p->spec, "prompt"));
	if ((sc = json_object_get(p->spec, "schema")) != NULL)
		schema = json_dumps(sc, JSON_COMPACT);
	for (;;) {
		fprintf(out, "weft: approval at '%s': %s\n", p->path,
		    prompt ? prompt : "");
		if (schema != NULL)
			fprintf(out, "weft: answer with JSON matching %s, or "
			    "'no REASON' to reject: ", schema);
		else
			fprintf(out, "weft: approve? [yes / no REASON]: ");
		fflush(out);
		if ((rv = prompt_line(in, p->deadline, line, sizeof line))
		    <= 0) {
			fprintf(out, "\n");
			free(schema);
			if (rv == 0)
				return approvals_poll(ap) >= 0 ? 0 : -1;
			return -1;
		}
		text = line + strspn(line, " \t");
		reason = NULL;
		v = NULL;
		if (strncmp(text, "no", 2) == 0 && (text[2] == '\0' ||
		    text[2] == ' ')) {
			reason = text + 2 + strspn(text + 2, " ");
			v = approval_make_answer(schema, 0, NULL, *reason ?
			    reason : "rejected on the terminal", "terminal",
			    err, sizeof err);
		} else if (schema == NULL && (strcmp(text, "yes") == 0 ||
		    strcmp(text, "y") == 0))
			v = approval_make_answer(NULL, 1, NULL, NULL,
			    "terminal", err, sizeof err);
		else if (schema != NULL && *text != '\0')
			v = approval_make_answer(schema, 1, text, NULL,
			    "terminal", err, sizeof err);
		else
			snprintf(err, sizeof err, "answer %s",
			    schema ? "with JSON or 'no REASON'" :
			    "'yes' or 'no REASON'");
		if (v != NULL)
			break;
		fprintf(out, "weft: %s\n", err);
	}
	free(schema);
	text = json_dumps(v, JSON_COMPACT);
	rv = store_approval_answer(ap->st, ap->run_id, p->path, p->call,
	    json_is_true(json_object_get(v, "approved")) ? "approved" :
	    "rejected", text, now_wall());
	free(text);
	json_decref(v);
	if (rv < 0)
		return -1;
	return approvals_poll(ap) >= 0 ? 0 : -1;
}
