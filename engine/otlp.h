/*
 * otlp.h: a run as OpenTelemetry spans (engine/otlp.c) and their export
 * over OTLP/HTTP (engine/otlp_send.c): docs/observability.md.
 *
 * One code path builds the spans of weft export (a recorded run, at once)
 * and of the live export of weft run and weft serve (the events of a run
 * as they commit): struct otlp is fed the run's events in order and hands
 * out the spans that have ended since it was last asked.
 */
#ifndef WEFT_OTLP_H
#define WEFT_OTLP_H

#include <stddef.h>

#include <jansson.h>

struct store;
struct store_event;

/* The GenAI semantic conventions followed (docs/observability.md). */
#define OTLP_SCHEMA_URL	"https://opentelemetry.io/schemas/1.41.0"

struct otlp;

/* The spans of run (its workflow path, its start in epoch seconds). */
struct otlp	*otlp_new(const char *run, const char *workflow, double start);
void		 otlp_free(struct otlp *);
/* Feed the run's next event (in seq order; an older one is ignored). */
void		 otlp_event(struct otlp *, const struct store_event *);
/*
 * The run ended (status, error or NULL, end time; end <= 0: now): the
 * run's span ends, and so does every span still open, with the run.
 */
void		 otlp_finish(struct otlp *, const char *status,
		    const char *error, double end);
/* The spans (OTLP/JSON objects, a new array) that ended since the last
   call, in the order they started. */
json_t		*otlp_take(struct otlp *);
/* The last event seq fed. */
long long	 otlp_seq(const struct otlp *);

/*
 * An ExportTraceServiceRequest (OTLP/JSON) holding spans (a reference is
 * taken), with the resource of $OTEL_SERVICE_NAME and
 * $OTEL_RESOURCE_ATTRIBUTES.
 */
json_t		*otlp_request(json_t *spans);
/* The spans of a recorded run as a request, or NULL with err. */
json_t		*otlp_build(struct store *, const char *run, char *err,
		    size_t errlen);
/*
 * The request (OTLP/JSON, as otlp_request() makes it) encoded as the
 * protobuf ExportTraceServiceRequest; *out is malloc'd.  0, or -1 for a
 * request not of that form.
 */
int		 otlp_protobuf(const json_t *req, unsigned char **out,
		    size_t *len);

/*
 * Where and how to send (otlp_send.c).  From --otlp URL (url != NULL:
 * /v1/traces is added unless it ends so), else
 * $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (as is), else
 * $OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/traces); the headers of
 * $OTEL_EXPORTER_OTLP_HEADERS and _TRACES_HEADERS; the protocol of
 * $OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL (http/protobuf, the default, or
 * http/json); the timeout of $OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT (ms).
 */
struct otlp_conf {
	char		*url;
	int		 json;		/* else protobuf */
	char		**headers;	/* "Name: value", NULL-terminated */
	long		 timeout_ms;
};
/* 1 configured, 0 no endpoint set, -1 a bad setting (err names it). */
int		 otlp_conf_get(const char *url, struct otlp_conf *, char *err,
		    size_t errlen);
void		 otlp_conf_clear(struct otlp_conf *);
/*
 * POST req (OTLP/JSON) as the conf says, retried with backoff (0.25, 0.5,
 * 1 s) on a transport error, 429 or 5xx: weft export.  0, or -1 with err.
 */
int		 otlp_post(const struct otlp_conf *, const json_t *req,
		    char *err, size_t errlen);

/*
 * The live export: a thread with its own read-only connection to the
 * store at db follows the runs it is given, reads their events as they
 * commit, and sends the spans that ended (a bounded queue; retries with
 * exponential backoff; a batch the collector never took is dropped with
 * a warning on stderr).  It never blocks the engine.  One per process;
 * start returns NULL when no endpoint is configured (err "") or on a bad
 * setting (err says which).
 */
struct otlp_live;
struct otlp_live *otlp_live_start(const char *db, const char *url,
		    char *err, size_t errlen);
/* Follow run (its spans are sent until its row says it ended). */
void		 otlp_live_follow(const char *run);
/* Export what the followed runs have left (within a few seconds), stop
   the thread, free. */
void		 otlp_live_stop(struct otlp_live *);

#endif
