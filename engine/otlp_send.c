/*
 * otlp_send.c: spans to an OTLP/HTTP collector: at once for weft export,
 * live for weft run and weft serve (docs/observability.md).
 *
 * The live export is a thread of its own, which shares nothing with the
 * engine: like weft run's watcher it reads what has committed through a
 * read-only connection of its own, a few times a second, builds the
 * spans (engine/otlp.c) and queues those that ended.  The queue is
 * bounded; a batch the collector refuses or cannot take is retried with
 * exponential backoff and, when the collector stays down, dropped with a
 * warning on stderr.  Nothing here can block or fail a run.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "engine/otlp.h"
#include "engine/store.h"
#include "runtime/http.h"
#include "runtime/util.h"

#define OTLP_POST_ATTEMPTS	4	/* weft export */
#define OTLP_LIVE_ATTEMPTS	10	/* a live batch: 0.25 .. 5 s apart */
#define OTLP_LIVE_LOOK		0.25	/* seconds between looks */
#define OTLP_LIVE_BATCH		512	/* spans in one request */
#define OTLP_LIVE_QUEUE		64	/* batches waiting */
#define OTLP_LIVE_FLUSH		5.0	/* seconds to send the rest at stop */

/* An environment variable, the _TRACES_ one first; NULL if unset/empty. */
static const char *
otlp_env(const char *name)
{
	char buf[128];
	const char *v;

	snprintf(buf, sizeof buf, "OTEL_EXPORTER_OTLP_TRACES_%s", name);
	if ((v = getenv(buf)) != NULL && *v != '\0')
		return v;
	snprintf(buf, sizeof buf, "OTEL_EXPORTER_OTLP_%s", name);
	if ((v = getenv(buf)) != NULL && *v != '\0')
		return v;
	return NULL;
}

/* Add the headers of "k=v,k=v" (values %-decoded), later keys win. */
static void
otlp_conf_headers(struct otlp_conf *c, size_t *n, const char *text)
{
	char *copy, *tok, *save = NULL, *eq, *v, *o, *k;
	size_t i, kl;
	unsigned int ch;

	if (text == NULL)
		return;
	copy = xstrdup(text);
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if ((eq = strchr(tok, '=')) == NULL)
			continue;
		*eq = '\0';
		for (k = tok; *k == ' '; k++)
			;
		for (v = o = eq + 1; *v != '\0'; v++) {
			if (v[0] == '%' && v[1] != '\0' && v[2] != '\0' &&
			    sscanf(v + 1, "%2x", &ch) == 1) {
				*o++ = (char)ch;
				v += 2;
			} else
				*o++ = *v;
		}
		*o = '\0';
		kl = strlen(k);
		for (i = 1; i < *n; i++)
			if (strncasecmp(c->headers[i], k, kl) == 0 &&
			    c->headers[i][kl] == ':') {
				free(c->headers[i]);
				c->headers[i] = xasprintf("%s: %s", k, eq + 1);
				break;
			}
		if (i == *n) {
			c->headers = xrealloc(c->headers, (*n + 2) *
			    sizeof *c->headers);
			c->headers[(*n)++] = xasprintf("%s: %s", k, eq + 1);
			c->headers[*n] = NULL;
		}
	}
	free(copy);
}

int
otlp_conf_get(const char *url, struct otlp_conf *c, char *err,
    size_t errlen)
{
	const char *ep, *proto, *t;
	size_t n;

	memset(c, 0, sizeof c[0]);
	if (url != NULL) {
		n = strlen(url);
		if (n >= 10 && strcmp(url + n - 10, "/v1/traces") == 0)
			c->url = xstrdup(url);
		else
			c->url = xasprintf("%s%sv1/traces", url,
			    n && url[n - 1] == '/' ? "" : "/");
	} else if ((ep = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) !=
	    NULL && *ep != '\0')
		c->url = xstrdup(ep);
	else if ((ep = getenv("OTEL_EXPORTER_OTLP_ENDPOINT")) != NULL &&
	    *ep != '\0') {
		n = strlen(ep);
		c->url = xasprintf("%s%sv1/traces", ep, ep[n - 1] == '/' ?
		    "" : "/");
	} else
		return 0;
	if (strncmp(c->url, "http://", 7) != 0 &&
	    strncmp(c->url, "https://", 8) != 0) {
		errf(err, errlen, "OTLP endpoint '%s': not an http:// or "
		    "https:// URL", c->url);
		goto fail;
	}
	proto = otlp_env("PROTOCOL");
	if (proto == NULL || strcmp(proto, "http/protobuf") == 0)
		c->json = 0;
	else if (strcmp(proto, "http/json") == 0)
		c->json = 1;
	else {
		errf(err, errlen, "OTEL_EXPORTER_OTLP_PROTOCOL=%s is not "
		    "supported (http/protobuf or http/json)", proto);
		goto fail;
	}
	c->timeout_ms = 10000;
	if ((t = otlp_env("TIMEOUT")) != NULL) {
		c->timeout_ms = atol(t);
		if (c->timeout_ms <= 0) {
			errf(err, errlen, "OTEL_EXPORTER_OTLP_TIMEOUT=%s is "
			    "not a number of milliseconds", t);
			goto fail;
		}
	}
	n = 1;
	c->headers = xcalloc(2, sizeof *c->headers);
	c->headers[0] = xstrdup(c->json ? "Content-Type: application/json" :
	    "Content-Type: application/x-protobuf");
	otlp_conf_headers(c, &n, getenv("OTEL_EXPORTER_OTLP_HEADERS"));
	otlp_conf_headers(c, &n, getenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS"));
	return 1;
fail:
	otlp_conf_clear(c);
	return -1;
}

void
otlp_conf_clear(struct otlp_conf *c)
{
	strv_free(c->headers);
	free(c->url);
	memset(c, 0, sizeof c[0]);
}

/* The body of req as the conf says (malloc'd), or NULL. */
static char *
otlp_body(const struct otlp_conf *c, const json_t *req, size_t *len)
{
	unsigned char *pb;
	char *text;

	if (c->json) {
		if ((text = json_dumps(req, JSON_COMPACT)) != NULL)
			*len = strlen(text);
		return text;
	}
	if (otlp_protobuf(req, &pb, len) != 0)
		return NULL;
	return (char *)pb;
}

struct otlp_http {
	struct event_base	*base;
	struct http		*h;
	int			 done;
	int			 err;
	long			 status;
	char			 msg[256];
};

static void
otlp_done_cb(void *arg, const struct http_result *r)
{
	struct otlp_http *oh = arg;

	oh->done = 1;
	oh->err = r->err;
	oh->status = r->status;
	snprintf(oh->msg, sizeof oh->msg, "%s", r->errmsg);
	event_base_loopbreak(oh->base);
}

static int
otlp_http_init(struct otlp_http *oh, char *err, size_t errlen)
{
	memset(oh, 0, sizeof oh[0]);
	oh->base = event_base_new();
	if ((oh->h = http_new(oh->base, err, errlen)) == NULL) {
		event_base_free(oh->base);
		return -1;
	}
	return 0;
}

static void
otlp_http_clear(struct otlp_http *oh)
{
	http_free(oh->h);
	event_base_free(oh->base);
}

/*
 * One POST of body: 0 taken, 1 worth retrying (a transport error, 429,
 * 5xx), -1 refused for good; err says why.
 */
static int
otlp_post_once(struct otlp_http *oh, const struct otlp_conf *c,
    const char *body, size_t len, long total_ms, char *err, size_t errlen)
{
	struct http_opts o;

	memset(&o, 0, sizeof o);
	o.url = c->url;
	o.headers = (const char *const *)c->headers;
	o.body = body;
	o.bodylen = len;
	o.total_ms = total_ms;
	o.connect_ms = total_ms < 10000 ? total_ms : 10000;
	o.on_done = otlp_done_cb;
	o.arg = oh;
	oh->done = 0;
	if (http_start(oh->h, &o, err, errlen) == NULL)
		return -1;
	while (!oh->done)
		event_base_dispatch(oh->base);
	if (oh->err == HTTP_OK && oh->status >= 200 && oh->status < 300)
		return 0;
	if (oh->err == HTTP_OK)
		errf(err, errlen, "%s answered HTTP %ld", c->url, oh->status);
	else
		errf(err, errlen, "%s: %s", c->url, oh->msg);
	if (oh->err == HTTP_OK && oh->status != 429 && oh->status < 500)
		return -1;
	return 1;
}

int
otlp_post(const struct otlp_conf *c, const json_t *req, char *err,
    size_t errlen)
{
	struct otlp_http oh;
	struct timespec ts;
	char *body;
	size_t len;
	int i, rc = -1;

	if ((body = otlp_body(c, req, &len)) == NULL) {
		errf(err, errlen, "cannot encode the spans");
		return -1;
	}
	if (otlp_http_init(&oh, err, errlen) != 0) {
		free(body);
		return -1;
	}
	for (i = 0; i < OTLP_POST_ATTEMPTS; i++) {
		if (i > 0) {
			ts.tv_sec = 0;
			ts.tv_nsec = 250000000L << (i - 1);
			while (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			nanosleep(&ts, NULL);
		}
		if ((rc = otlp_post_once(&oh, c, body, len, c->timeout_ms, err,
		    errlen)) <= 0)
			break;
		rc = -1;
	}
	otlp_http_clear(&oh);
	free(body);
	return rc == 0 ? 0 : -1;
}

/* ---- the live export --------------------------------------------------- */

struct otlp_run {
	char		 id[17];
	struct otlp	*x;
	char		*status;	/* once it ended */
	char		*error;
	double		 end;
};

struct otlp_batch {
	json_t		*spans;
	int		 attempts;
	double		 next;		/* monotonic: the next attempt */
};

struct otlp_live {
	pthread_t	 th;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	int		 stop;
	char		**follow;	/* runs given, not yet taken (mu) */
	size_t		 nfollow;
	char		*db;
	struct store	*st;
	struct otlp_conf conf;
	struct otlp_http oh;
	struct otlp_run	*runs;		/* the thread's alone from here */
	size_t		 nruns;
	struct otlp_batch q[OTLP_LIVE_QUEUE];
	size_t		 qn;
	int		 down;		/* said so on stderr */
};

static struct otlp_live *otlp_live_proc;

/* Drop the oldest batch, saying why. */
static void
otlp_live_drop(struct otlp_live *l, const char *why)
{
	fprintf(stderr, "weft: otlp: dropped %zu span(s): %s\n",
	    json_array_size(l->q[0].spans), why);
	json_decref(l->q[0].spans);
	l->qn--;
	memmove(&l->q[0], &l->q[1], l->qn * sizeof l->q[0]);
}

/* Queue spans (a reference is taken) in batches of OTLP_LIVE_BATCH. */
static void
otlp_live_queue(struct otlp_live *l, json_t *spans)
{
	struct otlp_batch *b;
	json_t *sp;
	size_t i;
	char why[512];

	json_array_foreach(spans, i, sp) {
		b = l->qn > 0 ? &l->q[l->qn - 1] : NULL;
		if (b == NULL || b->attempts > 0 ||
		    json_array_size(b->spans) >= OTLP_LIVE_BATCH) {
			if (l->qn == OTLP_LIVE_QUEUE) {
				snprintf(why, sizeof why, "the queue is full "
				    "(the collector at %s is slow or down)",
				    l->conf.url);
				otlp_live_drop(l, why);
			}
			b = &l->q[l->qn++];
			b->spans = json_array();
			b->attempts = 0;
			b->next = 0;
		}
		json_array_append(b->spans, sp);
	}
}

/* The run's row: its spans begin; whether and how it ended. */
static int
otlp_live_row_cb(void *arg, const struct store_run *r)
{
	struct otlp_run *or = arg;

	/* Followed by a prefix (weft resume RUN takes one): the id. */
	snprintf(or->id, sizeof or->id, "%s", r->id);
	if (or->x == NULL)
		or->x = otlp_new(r->id, r->workflow, r->started);
	if (r->ended > 0 && or->status == NULL) {
		or->status = xstrdup(r->status);
		or->error = r->error ? xstrdup(r->error) : NULL;
		or->end = r->ended;
	}
	return 0;
}

static int
otlp_live_event_cb(void *arg, const struct store_event *ev)
{
	otlp_event(arg, ev);
	return 0;
}

/*
 * Look at one run: 1 when it has ended (or weft stops) and all its spans
 * are queued.  The row is read before the events, so that every event of
 * a run that ended is seen.
 */
static int
otlp_live_look_run(struct otlp_live *l, struct otlp_run *or, int stop)
{
	json_t *spans;
	int ended;

	store_run_find(l->st, or->id, otlp_live_row_cb, or);
	if (or->x == NULL)
		return stop;
	ended = or->status != NULL || stop;
	store_events_after(l->st, or->id, otlp_seq(or->x), otlp_live_event_cb,
	    or->x);
	if (ended)
		otlp_finish(or->x, or->status ? or->status : "running",
		    or->error, or->end);
	spans = otlp_take(or->x);
	if (json_array_size(spans) > 0)
		otlp_live_queue(l, spans);
	json_decref(spans);
	return ended;
}

static void
otlp_run_clear(struct otlp_run *or)
{
	otlp_free(or->x);
	free(or->status);
	free(or->error);
}

/* Look at every run followed. */
static void
otlp_live_look(struct otlp_live *l, int stop)
{
	char err[512];
	size_t i;

	if (l->st == NULL && (access(l->db, F_OK) != 0 ||
	    store_open_read(l->db, &l->st, err, sizeof err) != 0))
		return;
	for (i = 0; i < l->nruns; ) {
		if (otlp_live_look_run(l, &l->runs[i], stop)) {
			otlp_run_clear(&l->runs[i]);
			l->runs[i] = l->runs[--l->nruns];
		} else
			i++;
	}
}

/* Send the first batch if it is due; deadline > 0 bounds the wait. */
static void
otlp_live_send(struct otlp_live *l, double deadline)
{
	struct otlp_batch *b = &l->q[0];
	json_t *req;
	char *body, err[512], why[700];
	size_t len;
	long ms = l->conf.timeout_ms;
	double now = now_mono();
	int rc;

	if (l->qn == 0 || b->next > now)
		return;
	if (deadline > 0 && (deadline - now) * 1000 < ms)
		ms = (long)((deadline - now) * 1000) + 1;
	req = otlp_request(b->spans);
	body = otlp_body(&l->conf, req, &len);
	json_decref(req);
	if (body == NULL) {
		otlp_live_drop(l, "cannot encode them");
		return;
	}
	rc = otlp_post_once(&l->oh, &l->conf, body, len, ms, err,
	    sizeof err);
	free(body);
	if (rc == 0) {
		if (l->down)
			fprintf(stderr, "weft: otlp: %s takes spans again\n",
			    l->conf.url);
		l->down = 0;
		json_decref(b->spans);
		l->qn--;
		memmove(&l->q[0], &l->q[1], l->qn * sizeof l->q[0]);
		return;
	}
	b->attempts++;
	if (rc < 0 || b->attempts >= OTLP_LIVE_ATTEMPTS) {
		snprintf(why, sizeof why, "%s (tried %d time(s))", err,
		    b->attempts);
		otlp_live_drop(l, why);
		return;
	}
	if (!l->down)
		fprintf(stderr, "weft: otlp: cannot export: %s; retrying "
		    "with backoff\n", err);
	l->down = 1;
	b->next = now_mono() + (b->attempts < 6 ? 0.25 * (1 << (b->attempts -
	    1)) : 5.0);
}

static void *
otlp_live_main(void *arg)
{
	struct otlp_live *l = arg;
	struct timespec ts;
	double wait, deadline = 0;
	size_t i;
	int stop;

	pthread_mutex_lock(&l->mu);
	for (;;) {
		for (i = 0; i < l->nfollow; i++) {
			l->runs = xrealloc(l->runs, (l->nruns + 1) *
			    sizeof *l->runs);
			snprintf(l->runs[l->nruns].id, sizeof l->runs[0].id,
			    "%s", l->follow[i]);
			l->runs[l->nruns].x = NULL;
			l->runs[l->nruns].status = NULL;
			l->runs[l->nruns++].error = NULL;
			free(l->follow[i]);
		}
		l->nfollow = 0;
		stop = l->stop;
		pthread_mutex_unlock(&l->mu);
		if (stop && deadline == 0)
			deadline = now_mono() + OTLP_LIVE_FLUSH;
		otlp_live_look(l, stop);
		otlp_live_send(l, deadline);
		if (stop && (l->nruns == 0 || l->st == NULL) &&
		    (l->qn == 0 || now_mono() >= deadline))
			break;
		wait = OTLP_LIVE_LOOK;
		if (l->qn > 0 && l->q[0].next - now_mono() < wait)
			wait = l->q[0].next - now_mono();
		if (stop && l->qn > 0 && deadline - now_mono() < wait)
			wait = deadline - now_mono();
		pthread_mutex_lock(&l->mu);
		if (wait <= 0 || (l->nfollow > 0) || (l->stop && !stop))
			continue;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)wait;
		ts.tv_nsec += (long)((wait - (time_t)wait) * 1e9);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&l->cv, &l->mu, &ts);
	}
	while (l->qn > 0)
		otlp_live_drop(l, "the collector did not take them before "
		    "weft stopped");
	return NULL;
}

struct otlp_live *
otlp_live_start(const char *db, const char *url, char *err, size_t errlen)
{
	struct otlp_live *l;
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (otlp_live_proc != NULL) {
		errf(err, errlen, "the OTLP export is running already");
		return NULL;
	}
	l = xcalloc(1, sizeof *l);
	if ((rc = otlp_conf_get(url, &l->conf, err, errlen)) != 1) {
		free(l);
		return NULL;
	}
	/* libcurl is set up here, on the caller's thread. */
	if (otlp_http_init(&l->oh, err, errlen) != 0) {
		otlp_conf_clear(&l->conf);
		free(l);
		return NULL;
	}
	l->db = xstrdup(db);
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	otlp_live_proc = l;
	if ((errno = pthread_create(&l->th, NULL, otlp_live_main, l)) != 0)
		fatal("pthread_create");
	return l;
}

void
otlp_live_follow(const char *run)
{
	struct otlp_live *l = otlp_live_proc;

	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	l->follow = xrealloc(l->follow, (l->nfollow + 1) * sizeof *l->follow);
	l->follow[l->nfollow++] = xstrdup(run);
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

void
otlp_live_stop(struct otlp_live *l)
{
	size_t i;

	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	l->stop = 1;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
	pthread_join(l->th, NULL);
	otlp_live_proc = NULL;
	for (i = 0; i < l->nruns; i++)
		otlp_run_clear(&l->runs[i]);
	for (i = 0; i < l->nfollow; i++)
		free(l->follow[i]);
	free(l->follow);
	free(l->runs);
	if (l->st != NULL)
		store_close(l->st);
	otlp_http_clear(&l->oh);
	otlp_conf_clear(&l->conf);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
	free(l->db);
	free(l);
}
