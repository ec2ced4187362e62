/*
 * fakemodel.c: a fake LLM API server for integration tests.
 *
 * Speaks the wire formats of the OpenAI Chat Completions API and the
 * Anthropic Messages API over HTTP/1.1 on 127.0.0.1, plain and streamed
 * (SSE), and answers each request with the next "turn" of a JSON script
 * keyed by model name.  A turn can also fail the way the real services
 * fail: an error status with its error body, a stall, a stream cut short,
 * broken JSON, an error event in the middle of a stream.  The script
 * format is in tests/helpers/fakemodel.md.
 *
 * One thread around a libevent loop.  A request becomes an exchange whose
 * delayed parts (a stall, the spacing of stream events, the close of a
 * truncated answer) are timers, so any number of requests are in flight
 * at once.  Every request is logged to --log as one JSON line before its
 * answer goes out, so a test that saw the answer finds the line.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <jansson.h>

#include "runtime/util.h"

#define FM_NAME		"fakemodel"
#define FM_MAX_BODY	(32 * 1024 * 1024)
#define FM_MAX_MS	3600000
#define FM_PIECE	8	/* bytes of text or arguments per delta */
#define FM_FINGERPRINT	"fp_fakemodel"
#define FM_IDLE_TIMEOUT	3600	/* seconds an idle connection is kept */

enum fm_api {
	FM_OPENAI,
	FM_ANTHROPIC
};

/* The turns scripted for one model, consumed in order. */
struct fm_queue {
	const char	*model;		/* a key of fm.script */
	json_t		*turns;		/* borrowed from fm.script */
	unsigned char	*used;
	size_t		 n;
};

/* A turn of the script, read into C values. */
struct fm_turn {
	const char	*text;		/* NULL: none */
	size_t		 textlen;
	json_t		*tool_calls;	/* borrowed; NULL: none */
	json_int_t	 input;
	json_int_t	 output;
	json_int_t	 cache_read;
	json_int_t	 cache_write;
	int		 max_tokens;	/* "stop": "max_tokens" */
	int		 status;	/* 0: a normal answer */
	const char	*message;
	double		 retry_after;	/* < 0: no Retry-After */
	int		 context_length;
	const char	*stream_error;	/* NULL, "overloaded", "api_error" */
	int		 stall_ms;
	int		 chunk_ms;
	int		 truncate;
	int		 invalid_json;
};

/* A tool call as answered: ids assigned, arguments encoded. */
struct fm_call {
	char		*id;
	const char	*name;
	json_t		*input;
	char		*args;		/* input as compact JSON text */
};

/* One server-sent event of a streamed answer. */
struct fm_event {
	const char	*name;		/* "event:" line; NULL: none */
	char		*data;
	int		 delta;		/* carries text or arguments */
};

enum fm_state {
	FM_WAITING,		/* a plain answer waits for its stall */
	FM_STREAMING,		/* events go out one per timer tick */
	FM_CUTTING		/* close the connection once flushed */
};

/*
 * A request being answered.  The exchange owns nothing of libevent's but
 * its timer; req belongs to the connection until the connection goes away
 * under us, then to us (fm_close_cb).
 */
struct fm_exchange {
	TAILQ_ENTRY(fm_exchange) entry;
	struct evhttp_request	*req;
	struct event		*timer;
	struct event		*hup;		/* --closes: watches a stall */
	int			 hup_noted;
	enum fm_api		 api;
	enum fm_state		 state;
	char			*model;
	char			 msg_id[64];
	json_int_t		 created;
	int			 include_usage;

	int			 status;
	struct evbuffer		*body;		/* plain answers */
	int			 truncate;
	int			 stall_ms;

	struct fm_event		*events;	/* streamed answers */
	size_t			 nevents;
	size_t			 capevents;
	size_t			 next;
	size_t			 stall_at;	/* stall after this many */
	size_t			 cut_at;	/* close after this many */
	int			 chunk_ms;
};

static struct {
	struct event_base	*base;
	struct evhttp		*http;
	struct event		*sigterm;
	struct event		*sigint;
	json_t			*script;
	struct fm_queue		*queues;
	size_t			 nqueues;
	int			 log_fd;
	int			 closes_fd;	/* --closes: client hang-ups */
	const char		*key;
	json_int_t		 seq;
	unsigned long		 ids;
	TAILQ_HEAD(, fm_exchange) exchanges;
} fm = { .log_fd = -1, .closes_fd = -1 };

static void	fm_timer_cb(evutil_socket_t, short, void *);
static void	fm_close_cb(struct evhttp_connection *, void *);

/* Print "fakemodel: message" and exit with code. */
static void __attribute__((format(printf, 2, 3), noreturn))
fm_die(int code, const char *fmt, ...)
{
	va_list ap;

	fputs(FM_NAME ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

/* Encode a value as compact JSON; our own values always encode. */
static char *
fm_dump(json_t *v)
{
	char *s;

	s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (s == NULL)
		fm_die(1, "cannot encode an answer");
	return s;
}

/* Levenshtein distance of two short words; SIZE_MAX if too long. */
static size_t
fm_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), d[32], i, j, prev, t, m;

	if (la >= nitems(d) || lb >= nitems(d))
		return SIZE_MAX;
	for (j = 0; j <= lb; j++)
		d[j] = j;
	for (i = 1; i <= la; i++) {
		prev = d[0];
		d[0] = i;
		for (j = 1; j <= lb; j++) {
			t = d[j];
			m = prev + (a[i - 1] != b[j - 1]);
			if (d[j] + 1 < m)
				m = d[j] + 1;
			if (d[j - 1] + 1 < m)
				m = d[j - 1] + 1;
			d[j] = m;
			prev = t;
		}
	}
	return d[lb];
}

/* The closest of names to word, or NULL if none is close. */
static const char *
fm_suggest(const char *word, const char *const *names, size_t n)
{
	const char *best = NULL;
	size_t i, d, bestd = 3;

	for (i = 0; i < n; i++) {
		d = fm_distance(word, names[i]);
		if (d < bestd && d < strlen(names[i])) {
			bestd = d;
			best = names[i];
		}
	}
	return best;
}

/* Report an unknown field at ptr of the script and exit. */
static void __attribute__((noreturn))
fm_unknown_field(const char *file, const char *ptr, const char *key,
    const char *const *names, size_t n)
{
	const char *s = fm_suggest(key, names, n);

	if (s != NULL)
		fm_die(2, "%s: %s: unknown field '%s' (did you mean '%s'?)",
		    file, ptr, key, s);
	fm_die(2, "%s: %s: unknown field '%s'", file, ptr, key);
}

/* A JSON pointer token for key: '~' and '/' escaped. */
static char *
fm_ptr_token(const char *key)
{
	char *s = xmalloc(2 * strlen(key) + 1), *p = s;

	for (; *key != '\0'; key++) {
		if (*key == '~' || *key == '/') {
			*p++ = '~';
			*p++ = *key == '~' ? '0' : '1';
		} else
			*p++ = *key;
	}
	*p = '\0';
	return s;
}

/* Check an integer field of the script: from 0 to max. */
static void
fm_check_int(const char *file, const char *ptr, const char *key, json_t *v,
    json_int_t max)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > max)
		fm_die(2, "%s: %s/%s: must be an integer from 0 to %"
		    JSON_INTEGER_FORMAT, file, ptr, key, max);
}

static const char *const fm_usage_fields[] = {
	"input", "output", "cache_read", "cache_write"
};

/* Check the usage object of a turn. */
static void
fm_check_usage(const char *file, const char *ptr, json_t *usage)
{
	const char *k;
	json_t *v;
	size_t i;
	char *p;

	p = xasprintf("%s/usage", ptr);
	if (!json_is_object(usage))
		fm_die(2, "%s: %s: must be an object", file, p);
	json_object_foreach(usage, k, v) {
		for (i = 0; i < nitems(fm_usage_fields); i++)
			if (strcmp(k, fm_usage_fields[i]) == 0)
				break;
		if (i == nitems(fm_usage_fields))
			fm_unknown_field(file, p, k, fm_usage_fields,
			    nitems(fm_usage_fields));
		fm_check_int(file, p, k, v, (json_int_t)1 << 40);
	}
	free(p);
}

static const char *const fm_call_fields[] = { "id", "name", "args" };

/* Check the tool_calls array of a turn. */
static void
fm_check_calls(const char *file, const char *ptr, json_t *calls)
{
	const char *k;
	json_t *c, *v;
	size_t i, j;
	char *p;

	if (!json_is_array(calls) || json_array_size(calls) == 0)
		fm_die(2, "%s: %s/tool_calls: must be a non-empty array",
		    file, ptr);
	json_array_foreach(calls, i, c) {
		p = xasprintf("%s/tool_calls/%zu", ptr, i);
		if (!json_is_object(c))
			fm_die(2, "%s: %s: must be an object", file, p);
		json_object_foreach(c, k, v) {
			for (j = 0; j < nitems(fm_call_fields); j++)
				if (strcmp(k, fm_call_fields[j]) == 0)
					break;
			if (j == nitems(fm_call_fields))
				fm_unknown_field(file, p, k, fm_call_fields,
				    nitems(fm_call_fields));
		}
		v = json_object_get(c, "name");
		if (!json_is_string(v) || json_string_length(v) == 0)
			fm_die(2, "%s: %s/name: must be a non-empty string",
			    file, p);
		v = json_object_get(c, "id");
		if (v != NULL &&
		    (!json_is_string(v) || json_string_length(v) == 0))
			fm_die(2, "%s: %s/id: must be a non-empty string",
			    file, p);
		v = json_object_get(c, "args");
		if (v != NULL && !json_is_object(v))
			fm_die(2, "%s: %s/args: must be an object", file, p);
		free(p);
	}
}

static const char *const fm_turn_fields[] = {
	"text", "tool_calls", "usage", "stop", "status", "message",
	"retry_after", "error", "stream_error", "stall_ms", "chunk_ms",
	"truncate", "invalid_json", "match"
};

/* Fields that make no sense in a turn answering with an error status. */
static const char *const fm_answer_fields[] = {
	"text", "tool_calls", "usage", "stop", "invalid_json", "chunk_ms",
	"stream_error"
};

/* Check one turn; ptr is its JSON pointer in the script. */
static void
fm_check_turn(const char *file, const char *ptr, json_t *turn)
{
	const char *k, *s, *err;
	json_t *v;
	size_t i;

	if (!json_is_object(turn))
		fm_die(2, "%s: %s: must be an object", file, ptr);
	json_object_foreach(turn, k, v) {
		for (i = 0; i < nitems(fm_turn_fields); i++)
			if (strcmp(k, fm_turn_fields[i]) == 0)
				break;
		if (i == nitems(fm_turn_fields))
			fm_unknown_field(file, ptr, k, fm_turn_fields,
			    nitems(fm_turn_fields));
		if ((strcmp(k, "text") == 0 || strcmp(k, "message") == 0 ||
		    strcmp(k, "match") == 0) && !json_is_string(v))
			fm_die(2, "%s: %s/%s: must be a string", file, ptr, k);
		if ((strcmp(k, "truncate") == 0 ||
		    strcmp(k, "invalid_json") == 0) && !json_is_boolean(v))
			fm_die(2, "%s: %s/%s: must be true or false", file,
			    ptr, k);
		if (strcmp(k, "stall_ms") == 0 || strcmp(k, "chunk_ms") == 0)
			fm_check_int(file, ptr, k, v, FM_MAX_MS);
	}
	if ((v = json_object_get(turn, "tool_calls")) != NULL)
		fm_check_calls(file, ptr, v);
	if ((v = json_object_get(turn, "usage")) != NULL)
		fm_check_usage(file, ptr, v);
	v = json_object_get(turn, "stop");
	if (v != NULL && (!json_is_string(v) ||
	    strcmp(json_string_value(v), "max_tokens") != 0))
		fm_die(2, "%s: %s/stop: must be \"max_tokens\"", file, ptr);
	v = json_object_get(turn, "status");
	if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 400 ||
	    json_integer_value(v) > 599))
		fm_die(2, "%s: %s/status: must be an integer from 400 to 599",
		    file, ptr);
	v = json_object_get(turn, "retry_after");
	if (v != NULL && (!json_is_number(v) || json_number_value(v) < 0 ||
	    json_number_value(v) > 86400))
		fm_die(2, "%s: %s/retry_after: must be a number of seconds "
		    "from 0 to 86400", file, ptr);
	v = json_object_get(turn, "error");
	if (v != NULL && (!json_is_string(v) ||
	    strcmp(json_string_value(v), "context_length") != 0))
		fm_die(2, "%s: %s/error: must be \"context_length\"", file,
		    ptr);
	v = json_object_get(turn, "stream_error");
	s = json_string_value(v);
	if (v != NULL && (s == NULL || (strcmp(s, "overloaded") != 0 &&
	    strcmp(s, "api_error") != 0)))
		fm_die(2, "%s: %s/stream_error: must be \"overloaded\" or "
		    "\"api_error\"", file, ptr);

	err = json_object_get(turn, "status") != NULL ? "status" :
	    json_object_get(turn, "error") != NULL ? "error" : NULL;
	if (err != NULL) {
		if (strcmp(err, "status") == 0 &&
		    json_object_get(turn, "error") != NULL)
			fm_die(2, "%s: %s: 'status' cannot be combined with "
			    "'error'", file, ptr);
		for (i = 0; i < nitems(fm_answer_fields); i++)
			if (json_object_get(turn, fm_answer_fields[i]) != NULL)
				fm_die(2, "%s: %s: '%s' cannot be combined "
				    "with '%s'", file, ptr,
				    fm_answer_fields[i], err);
	}
	if (json_object_get(turn, "status") == NULL) {
		if (json_object_get(turn, "message") != NULL)
			fm_die(2, "%s: %s: 'message' needs 'status'", file,
			    ptr);
		if (json_object_get(turn, "retry_after") != NULL)
			fm_die(2, "%s: %s: 'retry_after' needs 'status'", file,
			    ptr);
	}
	if (json_object_get(turn, "stream_error") != NULL &&
	    json_object_get(turn, "truncate") != NULL)
		fm_die(2, "%s: %s: 'stream_error' cannot be combined with "
		    "'truncate'", file, ptr);
}

/* Load and check the script; exit with a message naming the spot if bad. */
static void
fm_load_script(const char *file)
{
	json_error_t je;
	const char *model;
	json_t *turns, *turn;
	struct fm_queue *q;
	char *tok, *ptr;
	size_t i;

	fm.script = json_load_file(file, JSON_REJECT_DUPLICATES, &je);
	if (fm.script == NULL) {
		if (je.line > 0)
			fm_die(2, "%s:%d:%d: %s", file, je.line, je.column,
			    je.text);
		fm_die(2, "%s: %s", file, je.text);
	}
	if (!json_is_object(fm.script))
		fm_die(2, "%s: must be a JSON object mapping model names to "
		    "arrays of turns", file);
	fm.queues = xcalloc(json_object_size(fm.script), sizeof *fm.queues);
	json_object_foreach(fm.script, model, turns) {
		tok = fm_ptr_token(model);
		if (!json_is_array(turns))
			fm_die(2, "%s: /%s: must be an array of turns", file,
			    tok);
		json_array_foreach(turns, i, turn) {
			ptr = xasprintf("/%s/%zu", tok, i);
			fm_check_turn(file, ptr, turn);
			free(ptr);
		}
		free(tok);
		q = &fm.queues[fm.nqueues++];
		q->model = model;
		q->turns = turns;
		q->n = json_array_size(turns);
		q->used = xcalloc(q->n, 1);
	}
}

/* Read a checked turn into C values, with the defaults filled in. */
static void
fm_turn_read(json_t *j, struct fm_turn *t)
{
	json_t *u = json_object_get(j, "usage"), *v;

	memset(t, 0, sizeof *t);
	if ((v = json_object_get(j, "text")) != NULL) {
		t->text = json_string_value(v);
		t->textlen = json_string_length(v);
	}
	t->tool_calls = json_object_get(j, "tool_calls");
	t->input = 100;
	t->output = 20;
	if ((v = json_object_get(u, "input")) != NULL)
		t->input = json_integer_value(v);
	if ((v = json_object_get(u, "output")) != NULL)
		t->output = json_integer_value(v);
	t->cache_read = json_integer_value(json_object_get(u, "cache_read"));
	t->cache_write = json_integer_value(json_object_get(u,
	    "cache_write"));
	t->max_tokens = json_object_get(j, "stop") != NULL;
	t->status = (int)json_integer_value(json_object_get(j, "status"));
	t->message = json_string_value(json_object_get(j, "message"));
	t->retry_after = -1;
	if ((v = json_object_get(j, "retry_after")) != NULL)
		t->retry_after = json_number_value(v);
	t->context_length = json_object_get(j, "error") != NULL;
	t->stream_error = json_string_value(json_object_get(j,
	    "stream_error"));
	t->stall_ms = (int)json_integer_value(json_object_get(j, "stall_ms"));
	t->chunk_ms = (int)json_integer_value(json_object_get(j, "chunk_ms"));
	t->truncate = json_is_true(json_object_get(j, "truncate"));
	t->invalid_json = json_is_true(json_object_get(j, "invalid_json"));
}

/* Whether a turn with a match field fits the request body. */
static int
fm_turn_matches(json_t *turn, json_t *body, char **msgs, char **system)
{
	const char *m = json_string_value(json_object_get(turn, "match"));
	json_t *sys;

	if (m == NULL)
		return 1;
	if (*msgs == NULL)
		*msgs = fm_dump(json_object_get(body, "messages"));
	if (strstr(*msgs, m) != NULL)
		return 1;
	if ((sys = json_object_get(body, "system")) == NULL)
		return 0;
	if (*system == NULL)
		*system = fm_dump(sys);
	return strstr(*system, m) != NULL;
}

/*
 * Take the first eligible turn for model: from its own queue, else from
 * the "*" queue.  Returns the turn (borrowed) and its queue and index, or
 * NULL.
 */
static json_t *
fm_take_turn(const char *model, json_t *body, struct fm_queue **qp,
    size_t *ip, int *unmatched)
{
	struct fm_queue *q = NULL;
	json_t *turn;
	char *msgs = NULL, *system = NULL;
	size_t i;

	*unmatched = 0;
	for (i = 0; i < fm.nqueues && q == NULL; i++)
		if (strcmp(fm.queues[i].model, model) == 0)
			q = &fm.queues[i];
	for (i = 0; i < fm.nqueues && q == NULL; i++)
		if (strcmp(fm.queues[i].model, "*") == 0)
			q = &fm.queues[i];
	*qp = q;
	turn = NULL;
	for (i = 0; q != NULL && i < q->n; i++) {
		if (q->used[i])
			continue;
		*unmatched = 1;
		if (fm_turn_matches(json_array_get(q->turns, i), body, &msgs,
		    &system)) {
			q->used[i] = 1;
			*ip = i;
			turn = json_array_get(q->turns, i);
			*unmatched = 0;
			break;
		}
	}
	free(msgs);
	free(system);
	return turn;
}

/* Append a line for one request to the log, in one write. */
static void
fm_log(struct fm_exchange *ex, const char *path, json_t *body,
    const char *model, int stream, struct fm_queue *q, json_int_t turn)
{
	struct evkeyvalq *hdrs;
	struct evkeyval *h;
	json_t *line, *headers, *old;
	char *key, *p, *s, *joined;
	size_t len;
	ssize_t n;

	if (fm.log_fd == -1)
		return;
	headers = json_object();
	hdrs = evhttp_request_get_input_headers(ex->req);
	TAILQ_FOREACH(h, hdrs, next) {
		key = xstrdup(h->key);
		for (p = key; *p != '\0'; p++)
			*p = tolower((unsigned char)*p);
		if ((old = json_object_get(headers, key)) != NULL) {
			joined = xasprintf("%s, %s", json_string_value(old),
			    h->value);
			json_object_set_new(headers, key,
			    json_string(joined));
			free(joined);
		} else
			json_object_set_new(headers, key,
			    json_string(h->value));
		free(key);
	}
	line = json_pack("{s:I, s:s, s:s, s:s?, s:b, s:i, s:s?, s:o, s:o, "
	    "s:O}", "seq", fm.seq, "api",
	    ex->api == FM_OPENAI ? "openai" : "anthropic", "path", path,
	    "model", model, "stream", stream, "status", ex->status,
	    "queue", q != NULL ? q->model : NULL,
	    "turn", turn < 0 ? json_null() : json_integer(turn),
	    "headers", headers, "body", body != NULL ? body : json_null());
	if (line == NULL)
		fm_die(1, "cannot build a log line");
	s = fm_dump(line);
	json_decref(line);
	p = xasprintf("%s\n", s);
	free(s);
	len = strlen(p);
	do
		n = write(fm.log_fd, p, len);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)len)
		fprintf(stderr, FM_NAME ": cannot write the log: %s\n",
		    n < 0 ? strerror(errno) : "short write");
	free(p);
}

/* Default error type, code and message for a status, per API. */
static const struct fm_status {
	int		 status;
	const char	*oa_type;
	const char	*oa_code;
	const char	*oa_message;
	const char	*an_type;
	const char	*an_message;
} fm_statuses[] = {
	{ 400, "invalid_request_error", NULL, "Bad request.",
	  "invalid_request_error", "Bad request" },
	{ 401, "invalid_request_error", "invalid_api_key",
	  "Incorrect API key provided. You can find your API key at "
	  "https://platform.openai.com/account/api-keys.",
	  "authentication_error", "invalid x-api-key" },
	{ 403, "invalid_request_error", NULL,
	  "You are not allowed to perform this request.",
	  "permission_error", "Your API key does not have permission to "
	  "use the specified resource." },
	{ 404, "invalid_request_error", NULL,
	  "The model does not exist or you do not have access to it.",
	  "not_found_error", "Not found" },
	{ 413, "invalid_request_error", NULL, "Request too large.",
	  "request_too_large", "Request exceeds the maximum allowed "
	  "number of bytes." },
	{ 429, "requests", "rate_limit_exceeded",
	  "Rate limit reached for requests. Please try again later.",
	  "rate_limit_error", "This request would exceed your "
	  "organization's rate limit. Please try again later." },
	{ 500, "server_error", NULL, "The server had an error while "
	  "processing your request. Sorry about that!",
	  "api_error", "Internal server error" },
	{ 503, "server_error", NULL,
	  "The server is overloaded or not ready yet.",
	  "api_error", "Service unavailable" },
	{ 504, "server_error", NULL, "Gateway timeout.",
	  "timeout_error", "Request timed out" },
	{ 529, "server_error", NULL,
	  "The server is overloaded or not ready yet.",
	  "overloaded_error", "Overloaded" },
};

static const struct fm_status fm_status_4xx = {
	0, "invalid_request_error", NULL, "Request failed.",
	"invalid_request_error", "Request failed"
};

static const struct fm_status fm_status_5xx = {
	0, "server_error", NULL, "The server had an error while processing "
	"your request. Sorry about that!", "api_error",
	"Internal server error"
};

/* The defaults for an error status. */
static const struct fm_status *
fm_status_find(int status)
{
	size_t i;

	for (i = 0; i < nitems(fm_statuses); i++)
		if (fm_statuses[i].status == status)
			return &fm_statuses[i];
	return status < 500 ? &fm_status_4xx : &fm_status_5xx;
}

/* The reason phrase of a status line. */
static const char *
fm_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 408:
		return "Request Timeout";
	case 413:
		return "Payload Too Large";
	case 422:
		return "Unprocessable Entity";
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 529:
		return "Site Overloaded";
	}
	return status < 500 ? "Client Error" : "Server Error";
}

/* Add a response header. */
static void
fm_header(struct fm_exchange *ex, const char *name, const char *value)
{
	evhttp_add_header(evhttp_request_get_output_headers(ex->req), name,
	    value);
}

/*
 * Make v (stolen) the JSON body of a plain answer; with broken, only its
 * first half, which never parses.
 */
static void
fm_set_body(struct fm_exchange *ex, int status, json_t *v, int broken)
{
	char *s = fm_dump(v);
	size_t len = strlen(s);

	json_decref(v);
	ex->status = status;
	ex->body = evbuffer_new();
	evbuffer_add(ex->body, s, broken ? len / 2 : len);
	free(s);
	fm_header(ex, "Content-Type", "application/json");
}

/*
 * Answer with an error in the shape of the exchange's API.  NULL message,
 * param or code: the defaults for the status.
 */
static void
fm_fail(struct fm_exchange *ex, int status, const char *message,
    const char *param, const char *code)
{
	const struct fm_status *d = fm_status_find(status);
	json_t *v;

	if (ex->api == FM_OPENAI)
		v = json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error",
		    "message", message != NULL ? message : d->oa_message,
		    "type", d->oa_type, "param", param,
		    "code", code != NULL ? code : d->oa_code);
	else
		v = json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error",
		    "type", d->an_type,
		    "message", message != NULL ? message : d->an_message);
	if (v == NULL)
		fm_die(1, "cannot build an error answer");
	fm_set_body(ex, status, v, 0);
}

/* Answer a scripted error turn. */
static void
fm_fail_turn(struct fm_exchange *ex, const struct fm_turn *t)
{
	char buf[64], *msg = NULL;
	long long secs;

	if (t->context_length) {
		if (ex->api == FM_OPENAI)
			fm_fail(ex, 400, "This model's maximum context "
			    "length is 128000 tokens. However, your messages "
			    "resulted in 130000 tokens. Please reduce the "
			    "length of the messages.", "messages",
			    "context_length_exceeded");
		else
			fm_fail(ex, 400, "prompt is too long: 210000 tokens "
			    "> 200000 maximum", NULL, NULL);
		return;
	}
	if (t->status == 404 && t->message == NULL) {
		if (ex->api == FM_OPENAI)
			msg = xasprintf("The model `%s` does not exist or "
			    "you do not have access to it.", ex->model);
		else
			msg = xasprintf("model: %s", ex->model);
	}
	fm_fail(ex, t->status, msg != NULL ? msg : t->message, NULL,
	    t->status == 404 ? "model_not_found" : NULL);
	free(msg);
	if (t->retry_after >= 0) {
		secs = (long long)t->retry_after;
		if ((double)secs < t->retry_after)
			secs++;
		snprintf(buf, sizeof buf, "%lld", secs);
		fm_header(ex, "Retry-After", buf);
		if ((double)(long long)t->retry_after != t->retry_after) {
			snprintf(buf, sizeof buf, "%lld",
			    (long long)(t->retry_after * 1000 + 0.5));
			fm_header(ex, "retry-after-ms", buf);
		}
	}
}

/* The length of the next piece of s: up to FM_PIECE bytes, whole UTF-8. */
static size_t
fm_piece(const char *s, size_t len)
{
	size_t n;

	if (len <= FM_PIECE)
		return len;
	n = FM_PIECE;
	while (n > 1 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

/* Give the turn's tool calls their ids and encoded arguments. */
static struct fm_call *
fm_calls_new(struct fm_exchange *ex, const struct fm_turn *t, size_t *np)
{
	struct fm_call *calls;
	json_t *c, *args;
	const char *id;
	size_t i, n = json_array_size(t->tool_calls);

	calls = xcalloc(n, sizeof *calls);
	json_array_foreach(t->tool_calls, i, c) {
		id = json_string_value(json_object_get(c, "id"));
		if (id != NULL)
			calls[i].id = xstrdup(id);
		else
			calls[i].id = xasprintf("%s_%lu",
			    ex->api == FM_OPENAI ? "call" : "toolu",
			    ++fm.ids);
		calls[i].name = json_string_value(json_object_get(c, "name"));
		args = json_object_get(c, "args");
		calls[i].input = args != NULL ? json_incref(args) :
		    json_object();
		calls[i].args = fm_dump(calls[i].input);
	}
	*np = n;
	return calls;
}

/* Free what fm_calls_new made. */
static void
fm_calls_free(struct fm_call *calls, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(calls[i].id);
		json_decref(calls[i].input);
		free(calls[i].args);
	}
	free(calls);
}

/* The finish or stop reason of a normal answer. */
static const char *
fm_stop_reason(struct fm_exchange *ex, const struct fm_turn *t)
{
	if (ex->api == FM_OPENAI)
		return t->max_tokens ? "length" :
		    t->tool_calls != NULL ? "tool_calls" : "stop";
	return t->max_tokens ? "max_tokens" :
	    t->tool_calls != NULL ? "tool_use" : "end_turn";
}

/* OpenAI usage: cached tokens are counted inside prompt_tokens. */
static json_t *
fm_openai_usage(const struct fm_turn *t)
{
	json_int_t prompt = t->input + t->cache_read;

	return json_pack("{s:I, s:I, s:I, s:{s:I, s:i}, s:{s:i, s:i, s:i, "
	    "s:i}}", "prompt_tokens", prompt, "completion_tokens", t->output,
	    "total_tokens", prompt + t->output,
	    "prompt_tokens_details", "cached_tokens", t->cache_read,
	    "audio_tokens", 0, "completion_tokens_details",
	    "reasoning_tokens", 0, "audio_tokens", 0,
	    "accepted_prediction_tokens", 0, "rejected_prediction_tokens", 0);
}

/* Anthropic usage: input_tokens excludes the cached tokens. */
static json_t *
fm_anthropic_usage(const struct fm_turn *t, json_int_t output)
{
	return json_pack("{s:I, s:I, s:I, s:I}", "input_tokens", t->input,
	    "cache_creation_input_tokens", t->cache_write,
	    "cache_read_input_tokens", t->cache_read, "output_tokens", output);
}

/* A plain (not streamed) answer to a normal turn. */
static void
fm_answer_plain(struct fm_exchange *ex, const struct fm_turn *t)
{
	struct fm_call *calls;
	json_t *v, *msg, *tcs, *content;
	size_t i, n;

	calls = fm_calls_new(ex, t, &n);
	if (ex->api == FM_OPENAI) {
		msg = json_pack("{s:s, s:o, s:n}", "role", "assistant",
		    "content", t->text != NULL || n == 0 ?
		    json_stringn(t->text != NULL ? t->text : "", t->textlen) :
		    json_null(), "refusal");
		if (n > 0) {
			tcs = json_array();
			for (i = 0; i < n; i++)
				json_array_append_new(tcs, json_pack("{s:s, "
				    "s:s, s:{s:s, s:s}}", "id", calls[i].id,
				    "type", "function", "function", "name",
				    calls[i].name, "arguments",
				    calls[i].args));
			json_object_set_new(msg, "tool_calls", tcs);
		}
		v = json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:n, s:s}], "
		    "s:o, s:s}", "id", ex->msg_id, "object", "chat.completion",
		    "created", ex->created, "model", ex->model, "choices",
		    "index", 0, "message", msg, "logprobs",
		    "finish_reason", fm_stop_reason(ex, t),
		    "usage", fm_openai_usage(t),
		    "system_fingerprint", FM_FINGERPRINT);
	} else {
		content = json_array();
		if (t->textlen > 0)
			json_array_append_new(content, json_pack("{s:s, "
			    "s:s%}", "type", "text", "text", t->text,
			    t->textlen));
		for (i = 0; i < n; i++)
			json_array_append_new(content, json_pack("{s:s, s:s, "
			    "s:s, s:O}", "type", "tool_use", "id", calls[i].id,
			    "name", calls[i].name, "input", calls[i].input));
		v = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:n, s:o}",
		    "id", ex->msg_id, "type", "message", "role", "assistant",
		    "model", ex->model, "content", content,
		    "stop_reason", fm_stop_reason(ex, t), "stop_sequence",
		    "usage", fm_anthropic_usage(t, t->output));
	}
	fm_calls_free(calls, n);
	if (v == NULL)
		fm_die(1, "cannot build an answer");
	fm_set_body(ex, 200, v, t->invalid_json);
}

/* Queue a server-sent event; data is stolen (NULL: "[DONE]"). */
static void
fm_emit(struct fm_exchange *ex, const char *name, json_t *data, int delta)
{
	struct fm_event *e;

	if (ex->nevents == ex->capevents) {
		ex->capevents = ex->capevents ? 2 * ex->capevents : 16;
		ex->events = xrealloc(ex->events,
		    ex->capevents * sizeof *ex->events);
	}
	e = &ex->events[ex->nevents++];
	e->name = name;
	e->delta = delta;
	if (data == NULL) {
		e->data = xstrdup("[DONE]");
		return;
	}
	e->data = fm_dump(data);
	json_decref(data);
}

/* An OpenAI chunk with one choice; delta is stolen. */
static json_t *
fm_openai_chunk(struct fm_exchange *ex, json_t *delta, const char *finish)
{
	json_t *c;

	c = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[{s:i, s:o, s:n, s:s?}]}",
	    "id", ex->msg_id, "object", "chat.completion.chunk",
	    "created", ex->created, "model", ex->model,
	    "system_fingerprint", FM_FINGERPRINT, "choices", "index", 0,
	    "delta", delta, "logprobs", "finish_reason", finish);
	if (c == NULL)
		fm_die(1, "cannot build a chunk");
	if (ex->include_usage)
		json_object_set_new(c, "usage", json_null());
	return c;
}

/* The events of an OpenAI stream. */
static void
fm_stream_openai(struct fm_exchange *ex, const struct fm_turn *t,
    struct fm_call *calls, size_t ncalls)
{
	json_t *c, *tc;
	size_t i, off, len, n;

	fm_emit(ex, NULL, fm_openai_chunk(ex, json_pack("{s:s, s:o, s:n}",
	    "role", "assistant", "content", t->text != NULL || ncalls == 0 ?
	    json_string("") : json_null(), "refusal"), NULL), 0);
	for (off = 0; off < t->textlen; off += n) {
		n = fm_piece(t->text + off, t->textlen - off);
		fm_emit(ex, NULL, fm_openai_chunk(ex, json_pack("{s:s%}",
		    "content", t->text + off, n), NULL), 1);
	}
	for (i = 0; i < ncalls; i++) {
		tc = json_pack("{s:i, s:s, s:s, s:{s:s, s:s}}", "index",
		    (int)i, "id", calls[i].id, "type", "function", "function",
		    "name", calls[i].name, "arguments", "");
		fm_emit(ex, NULL, fm_openai_chunk(ex, json_pack("{s:[o]}",
		    "tool_calls", tc), NULL), 0);
		len = strlen(calls[i].args);
		for (off = 0; off < len; off += n) {
			n = fm_piece(calls[i].args + off, len - off);
			tc = json_pack("{s:i, s:{s:s%}}", "index", (int)i,
			    "function", "arguments", calls[i].args + off, n);
			fm_emit(ex, NULL, fm_openai_chunk(ex,
			    json_pack("{s:[o]}", "tool_calls", tc), NULL), 1);
		}
	}
	fm_emit(ex, NULL, fm_openai_chunk(ex, json_object(),
	    fm_stop_reason(ex, t)), 0);
	if (ex->include_usage) {
		c = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[], s:o}",
		    "id", ex->msg_id, "object", "chat.completion.chunk",
		    "created", ex->created, "model", ex->model,
		    "system_fingerprint", FM_FINGERPRINT, "choices",
		    "usage", fm_openai_usage(t));
		fm_emit(ex, NULL, c, 0);
	}
	fm_emit(ex, NULL, NULL, 0);
}

/* The events of an Anthropic stream. */
static void
fm_stream_anthropic(struct fm_exchange *ex, const struct fm_turn *t,
    struct fm_call *calls, size_t ncalls)
{
	size_t i, off, len, n;
	int block = 0;

	fm_emit(ex, "message_start", json_pack("{s:s, s:{s:s, s:s, s:s, s:s, "
	    "s:[], s:n, s:n, s:o}}", "type", "message_start", "message",
	    "id", ex->msg_id, "type", "message", "role", "assistant",
	    "model", ex->model, "content", "stop_reason", "stop_sequence",
	    "usage", fm_anthropic_usage(t, 1)), 0);
	fm_emit(ex, "ping", json_pack("{s:s}", "type", "ping"), 0);
	if (t->textlen > 0) {
		fm_emit(ex, "content_block_start", json_pack("{s:s, s:i, "
		    "s:{s:s, s:s}}", "type", "content_block_start", "index",
		    block, "content_block", "type", "text", "text", ""), 0);
		for (off = 0; off < t->textlen; off += n) {
			n = fm_piece(t->text + off, t->textlen - off);
			fm_emit(ex, "content_block_delta", json_pack("{s:s, "
			    "s:i, s:{s:s, s:s%}}", "type",
			    "content_block_delta", "index", block, "delta",
			    "type", "text_delta", "text", t->text + off, n),
			    1);
		}
		fm_emit(ex, "content_block_stop", json_pack("{s:s, s:i}",
		    "type", "content_block_stop", "index", block), 0);
		block++;
	}
	for (i = 0; i < ncalls; i++, block++) {
		fm_emit(ex, "content_block_start", json_pack("{s:s, s:i, "
		    "s:{s:s, s:s, s:s, s:{}}}", "type", "content_block_start",
		    "index", block, "content_block", "type", "tool_use",
		    "id", calls[i].id, "name", calls[i].name, "input"), 0);
		/* The real API opens with an empty fragment. */
		fm_emit(ex, "content_block_delta", json_pack("{s:s, s:i, "
		    "s:{s:s, s:s}}", "type", "content_block_delta",
		    "index", block, "delta", "type", "input_json_delta",
		    "partial_json", ""), 0);
		len = strlen(calls[i].args);
		for (off = 0; off < len; off += n) {
			n = fm_piece(calls[i].args + off, len - off);
			fm_emit(ex, "content_block_delta", json_pack("{s:s, "
			    "s:i, s:{s:s, s:s%}}", "type",
			    "content_block_delta", "index", block, "delta",
			    "type", "input_json_delta", "partial_json",
			    calls[i].args + off, n), 1);
		}
		fm_emit(ex, "content_block_stop", json_pack("{s:s, s:i}",
		    "type", "content_block_stop", "index", block), 0);
	}
	fm_emit(ex, "message_delta", json_pack("{s:s, s:{s:s, s:n}, s:{s:I}}",
	    "type", "message_delta", "delta", "stop_reason",
	    fm_stop_reason(ex, t), "stop_sequence", "usage", "output_tokens",
	    t->output), 0);
	fm_emit(ex, "message_stop", json_pack("{s:s}", "type",
	    "message_stop"), 0);
}

/* Drop the events from index from on. */
static void
fm_events_cut(struct fm_exchange *ex, size_t from)
{
	while (ex->nevents > from)
		free(ex->events[--ex->nevents].data);
}

/*
 * A streamed answer to a normal turn.  The stall comes after the first
 * delta, a cut (truncate, stream_error) after half of the deltas, so the
 * client has seen some content either way; both are before the events
 * that end the stream.
 */
static void
fm_answer_stream(struct fm_exchange *ex, const struct fm_turn *t)
{
	struct fm_call *calls;
	size_t i, n, ndelta = 0, seen, first = SIZE_MAX, half = 1;
	const char *msg;
	json_t *v;

	calls = fm_calls_new(ex, t, &n);
	if (ex->api == FM_OPENAI)
		fm_stream_openai(ex, t, calls, n);
	else
		fm_stream_anthropic(ex, t, calls, n);
	fm_calls_free(calls, n);

	for (i = 0; i < ex->nevents; i++)
		if (ex->events[i].delta && ndelta++ == 0)
			first = i;
	for (i = 0, seen = 0; i < ex->nevents && ndelta > 0; i++)
		if (ex->events[i].delta && ++seen == (ndelta + 1) / 2) {
			half = i + 1;
			break;
		}
	ex->status = 200;
	ex->chunk_ms = t->chunk_ms;
	ex->stall_ms = t->stall_ms;
	ex->stall_at = t->stall_ms > 0 ? (ndelta > 0 ? first + 1 : 1) :
	    SIZE_MAX;
	ex->cut_at = t->truncate ? half : SIZE_MAX;
	if (t->invalid_json) {
		i = ndelta > 0 ? first : 0;
		ex->events[i].data[strlen(ex->events[i].data) / 2] = '\0';
	}
	if (t->stream_error != NULL) {
		fm_events_cut(ex, half);
		if (ex->api == FM_ANTHROPIC) {
			msg = strcmp(t->stream_error, "overloaded") == 0 ?
			    "Overloaded" : "Internal server error";
			v = json_pack("{s:s, s:{s:s, s:s}}", "type", "error",
			    "error", "type", strcmp(t->stream_error,
			    "overloaded") == 0 ? "overloaded_error" :
			    "api_error", "message", msg);
			fm_emit(ex, "error", v, 0);
		} else {
			msg = strcmp(t->stream_error, "overloaded") == 0 ?
			    "The server is overloaded or not ready yet." :
			    "The server had an error while processing your "
			    "request. Sorry about that!";
			v = json_pack("{s:{s:s, s:s, s:n, s:n}}", "error",
			    "message", msg, "type", "server_error", "param",
			    "code");
			fm_emit(ex, NULL, v, 0);
		}
	}
	fm_header(ex, "Content-Type", "text/event-stream; charset=utf-8");
	fm_header(ex, "Cache-Control", "no-cache");
}

/* Answer a scripted turn. */
static void
fm_answer_turn(struct fm_exchange *ex, json_t *turn, int stream)
{
	struct fm_turn t;

	fm_turn_read(turn, &t);
	ex->stall_ms = t.stall_ms;
	ex->truncate = t.truncate;
	if (t.status != 0 || t.context_length)
		fm_fail_turn(ex, &t);
	else if (!stream && t.stream_error != NULL) {
		/* Not streaming: the same trouble as an error status. */
		t.status = strcmp(t.stream_error, "overloaded") != 0 ? 500 :
		    ex->api == FM_ANTHROPIC ? 529 : 503;
		fm_fail_turn(ex, &t);
	} else if (stream)
		fm_answer_stream(ex, &t);
	else
		fm_answer_plain(ex, &t);
}

/* Free an exchange (not its request). */
static void
fm_exchange_free(struct fm_exchange *ex)
{
	TAILQ_REMOVE(&fm.exchanges, ex, entry);
	event_free(ex->timer);
	if (ex->hup != NULL)
		event_free(ex->hup);
	if (ex->body != NULL)
		evbuffer_free(ex->body);
	fm_events_cut(ex, 0);
	free(ex->events);
	free(ex->model);
	free(ex);
}

/* Stop watching the connection: the answer is about to complete. */
static void
fm_release(struct fm_exchange *ex)
{
	struct evhttp_connection *evcon;

	evcon = evhttp_request_get_connection(ex->req);
	if (evcon != NULL)
		evhttp_connection_set_closecb(evcon, NULL, NULL);
}

/* If the client went away, drop the request and the exchange. */
static int
fm_gone(struct fm_exchange *ex)
{
	if (evhttp_request_get_connection(ex->req) != NULL)
		return 0;
	evhttp_request_free(ex->req);
	fm_exchange_free(ex);
	return 1;
}

/* Run the timer in ms milliseconds. */
static void
fm_arm(struct fm_exchange *ex, int ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(ex->timer, &tv);
}

/* --closes: note once that the client hung up on the exchange. */
static void
fm_note_close(struct fm_exchange *ex)
{
	char *line;

	if (fm.closes_fd == -1 || ex->hup_noted)
		return;
	ex->hup_noted = 1;
	line = xasprintf("closed %s\n", ex->model != NULL ? ex->model : "-");
	if (write(fm.closes_fd, line, strlen(line)) < 0)
		fprintf(stderr, FM_NAME ": cannot write --closes\n");
	free(line);
}

/* The socket of a stalled answer became readable: a hang-up, or more
   bytes from the client (not watched further). */
static void
fm_hup_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fm_exchange *ex = arg;
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		fm_note_close(ex);
	else if (n < 0)
		event_add(ex->hup, NULL);
}

/* The connection went away (the client closed it) while we answered. */
static void
fm_close_cb(struct evhttp_connection *evcon, void *arg)
{
	struct fm_exchange *ex = arg;

	fm_note_close(ex);
	/* Detached from its connection, the request is ours to free. */
	if (evhttp_request_get_connection(ex->req) == NULL)
		evhttp_request_free(ex->req);
	fm_exchange_free(ex);
}

/* Everything of a cut answer is written: close on the next tick. */
static void
fm_flushed_cb(struct evhttp_connection *evcon, void *arg)
{
	struct fm_exchange *ex = arg;

	fm_arm(ex, 0);
}

/* Close the connection in the middle of the answer. */
static void
fm_cut(struct fm_exchange *ex)
{
	struct evhttp_connection *evcon;

	evcon = evhttp_request_get_connection(ex->req);
	if (evcon != NULL) {
		/* Frees the request too. */
		evhttp_connection_set_closecb(evcon, NULL, NULL);
		evhttp_connection_free(evcon);
	} else
		evhttp_request_free(ex->req);
	fm_exchange_free(ex);
}

/* Send a plain answer; a truncated one promises more than it sends. */
static void
fm_plain_send(struct fm_exchange *ex)
{
	struct evbuffer *b;
	char buf[32];
	size_t len;

	if (fm_gone(ex))
		return;
	if (ex->truncate) {
		len = evbuffer_get_length(ex->body);
		snprintf(buf, sizeof buf, "%zu", len);
		fm_header(ex, "Content-Length", buf);
		evhttp_send_reply_start(ex->req, ex->status,
		    fm_reason(ex->status));
		b = evbuffer_new();
		evbuffer_remove_buffer(ex->body, b, len / 2 > 0 ? len / 2 : 1);
		ex->state = FM_CUTTING;
		evhttp_send_reply_chunk_with_cb(ex->req, b, fm_flushed_cb, ex);
		evbuffer_free(b);
		return;
	}
	fm_release(ex);
	evhttp_send_reply(ex->req, ex->status, fm_reason(ex->status),
	    ex->body);
	fm_exchange_free(ex);
}

/* Send the next event of a stream and plan the one after. */
static void
fm_stream_step(struct fm_exchange *ex)
{
	struct fm_event *e;
	struct evbuffer *b;

	if (fm_gone(ex))
		return;
	e = &ex->events[ex->next++];
	b = evbuffer_new();
	if (e->name != NULL)
		evbuffer_add_printf(b, "event: %s\n", e->name);
	evbuffer_add(b, "data: ", 6);
	evbuffer_add(b, e->data, strlen(e->data));
	evbuffer_add(b, "\n\n", 2);
	if (ex->next == ex->cut_at) {
		ex->state = FM_CUTTING;
		evhttp_send_reply_chunk_with_cb(ex->req, b, fm_flushed_cb, ex);
		evbuffer_free(b);
		return;
	}
	evhttp_send_reply_chunk(ex->req, b);
	evbuffer_free(b);
	if (ex->next == ex->nevents) {
		fm_release(ex);
		evhttp_send_reply_end(ex->req);
		fm_exchange_free(ex);
	} else
		fm_arm(ex, ex->next == ex->stall_at ? ex->stall_ms :
		    ex->chunk_ms);
}

/* A timer of an exchange fired. */
static void
fm_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fm_exchange *ex = arg;

	switch (ex->state) {
	case FM_WAITING:
		fm_plain_send(ex);
		break;
	case FM_STREAMING:
		fm_stream_step(ex);
		break;
	case FM_CUTTING:
		fm_cut(ex);
		break;
	}
}

static void	fm_note_close(struct fm_exchange *);
static void	fm_hup_cb(evutil_socket_t, short, void *);

/* Start sending the answer the exchange holds. */
static void
fm_start(struct fm_exchange *ex)
{
	evhttp_connection_set_closecb(evhttp_request_get_connection(ex->req),
	    fm_close_cb, ex);
	if (ex->events != NULL) {
		ex->state = FM_STREAMING;
		evhttp_send_reply_start(ex->req, 200, "OK");
		fm_stream_step(ex);
	} else if (ex->stall_ms > 0) {
		ex->state = FM_WAITING;
		fm_arm(ex, ex->stall_ms);
		if (fm.closes_fd != -1) {
			ex->hup = event_new(fm.base, bufferevent_getfd(
			    evhttp_connection_get_bufferevent(
			    evhttp_request_get_connection(ex->req))), EV_READ,
			    fm_hup_cb, ex);
			event_add(ex->hup, NULL);
		}
	} else
		fm_plain_send(ex);
}

/* A request header, or NULL. */
static const char *
fm_get_header(struct evhttp_request *req, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(req),
	    name);
}

/* Check the credentials the request carries; 0 if they are good. */
static int
fm_check_auth(struct fm_exchange *ex)
{
	const char *h;

	if (fm.key == NULL)
		return 0;
	if (ex->api == FM_OPENAI) {
		h = fm_get_header(ex->req, "Authorization");
		if (h == NULL || strncmp(h, "Bearer ", 7) != 0 ||
		    strcmp(h + 7, fm.key) != 0) {
			fm_fail(ex, 401, NULL, NULL, "invalid_api_key");
			return -1;
		}
		return 0;
	}
	h = fm_get_header(ex->req, "x-api-key");
	if (h == NULL || strcmp(h, fm.key) != 0) {
		fm_fail(ex, 401, "invalid x-api-key", NULL, NULL);
		return -1;
	}
	if (fm_get_header(ex->req, "anthropic-version") == NULL) {
		fm_fail(ex, 400, "anthropic-version: header is required",
		    NULL, NULL);
		return -1;
	}
	return 0;
}

/* Check the shape of an OpenAI request body; 0 if good. */
static int
fm_check_openai(struct fm_exchange *ex, json_t *body)
{
	json_t *msgs = json_object_get(body, "messages");
	json_t *stream = json_object_get(body, "stream");
	json_t *opts = json_object_get(body, "stream_options");

	if (!json_is_string(json_object_get(body, "model")))
		fm_fail(ex, 400, "you must provide a model parameter", NULL,
		    NULL);
	else if (msgs == NULL)
		fm_fail(ex, 400, "Missing required parameter: 'messages'.",
		    "messages", "missing_required_parameter");
	else if (!json_is_array(msgs))
		fm_fail(ex, 400, "Invalid type for 'messages': expected an "
		    "array of objects.", "messages", "invalid_type");
	else if (json_array_size(msgs) == 0)
		fm_fail(ex, 400, "Invalid 'messages': empty array. Expected "
		    "an array with minimum length 1, but got an empty array "
		    "instead.", "messages", "empty_array");
	else if (stream != NULL && !json_is_boolean(stream) &&
	    !json_is_null(stream))
		fm_fail(ex, 400, "Invalid type for 'stream': expected a "
		    "boolean.", "stream", "invalid_type");
	else if (opts != NULL && !json_is_null(opts) && !json_is_true(stream))
		fm_fail(ex, 400, "The 'stream_options' parameter is only "
		    "allowed when 'stream' is enabled.", "stream_options",
		    "invalid_value");
	else
		return 0;
	return -1;
}

/* Check the shape of an Anthropic request body; 0 if good. */
static int
fm_check_anthropic(struct fm_exchange *ex, json_t *body)
{
	json_t *msgs = json_object_get(body, "messages");
	json_t *max = json_object_get(body, "max_tokens");
	json_t *stream = json_object_get(body, "stream");

	if (json_object_get(body, "model") == NULL)
		fm_fail(ex, 400, "model: Field required", NULL, NULL);
	else if (!json_is_string(json_object_get(body, "model")))
		fm_fail(ex, 400, "model: Input should be a valid string",
		    NULL, NULL);
	else if (msgs == NULL)
		fm_fail(ex, 400, "messages: Field required", NULL, NULL);
	else if (!json_is_array(msgs))
		fm_fail(ex, 400, "messages: Input should be a valid list",
		    NULL, NULL);
	else if (json_array_size(msgs) == 0)
		fm_fail(ex, 400, "messages: at least one message is required",
		    NULL, NULL);
	else if (max == NULL)
		fm_fail(ex, 400, "max_tokens: Field required", NULL, NULL);
	else if (!json_is_integer(max))
		fm_fail(ex, 400, "max_tokens: Input should be a valid integer",
		    NULL, NULL);
	else if (stream != NULL && !json_is_boolean(stream))
		fm_fail(ex, 400, "stream: Input should be a valid boolean",
		    NULL, NULL);
	else
		return 0;
	return -1;
}

/* The name of a request method. */
static const char *
fm_method(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	default:
		return "OTHER";
	}
}

/* The API a request to an unknown path was meant for. */
static enum fm_api
fm_guess_api(struct evhttp_request *req, const char *path)
{
	if (fm_get_header(req, "anthropic-version") != NULL ||
	    fm_get_header(req, "x-api-key") != NULL)
		return FM_ANTHROPIC;
	if (strstr(path, "/messages") != NULL ||
	    strstr(path, "/complete") != NULL ||
	    strstr(path, "anthropic") != NULL)
		return FM_ANTHROPIC;
	return FM_OPENAI;
}

/*
 * Decide the answer to a request for a known endpoint; the queue and the
 * index of the turn taken, if any, go to *qp and *turnp for the log.
 */
static void
fm_decide(struct fm_exchange *ex, json_t *body, int stream,
    struct fm_queue **qp, json_int_t *turnp)
{
	const char *model;
	json_t *turn;
	size_t idx;
	char *msg;
	int unmatched;

	if (fm_check_auth(ex) != 0)
		return;
	if (body == NULL) {
		if (ex->api == FM_OPENAI)
			fm_fail(ex, 400, "We could not parse the JSON body of "
			    "your request. (HINT: This likely means you "
			    "aren't using your HTTP library correctly. The "
			    "OpenAI API expects a JSON payload, but what was "
			    "sent was not valid JSON.)", NULL, NULL);
		else
			fm_fail(ex, 400, "There was an error parsing the body "
			    "of your request: invalid JSON", NULL, NULL);
		return;
	}
	if (!json_is_object(body)) {
		fm_fail(ex, 400, ex->api == FM_OPENAI ? "Invalid type for "
		    "the request body: expected an object." :
		    "Input should be a valid dictionary", NULL, NULL);
		return;
	}
	if ((ex->api == FM_OPENAI ? fm_check_openai(ex, body) :
	    fm_check_anthropic(ex, body)) != 0)
		return;
	model = ex->model;
	ex->include_usage = json_is_true(json_object_get(json_object_get(body,
	    "stream_options"), "include_usage"));
	turn = fm_take_turn(model, body, qp, &idx, &unmatched);
	if (turn == NULL) {
		msg = xasprintf(FM_NAME ": no scripted turn left for model "
		    "%s%s", model, unmatched ? " that matches the request" :
		    "");
		fm_fail(ex, 500, msg, NULL, NULL);
		free(msg);
		return;
	}
	*turnp = (json_int_t)idx;
	fm_answer_turn(ex, turn, stream);
}

/* Every HTTP request comes here. */
static void
fm_request_cb(struct evhttp_request *req, void *arg)
{
	struct fm_exchange *ex;
	const struct evhttp_uri *uri;
	struct evbuffer *in;
	struct fm_queue *q = NULL;
	json_int_t turn = -1;
	json_t *body = NULL;
	const char *path;
	char rid[64], hex[25];
	size_t len;
	int stream = 0, known;

	TAILQ_FOREACH(ex, &fm.exchanges, entry)
		if (ex->req == req)
			return;	/* libevent reports a broken request again */
	uri = evhttp_request_get_evhttp_uri(req);
	path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	if (path == NULL || evhttp_request_get_connection(req) == NULL) {
		evhttp_send_error(req, 400, NULL);
		return;
	}
	/* The path goes into JSON (log, 404 message): it must be UTF-8. */
	if ((body = json_string(path)) == NULL)
		path = "/(not UTF-8)";
	json_decref(body);
	body = NULL;

	ex = xcalloc(1, sizeof *ex);
	ex->req = req;
	ex->timer = evtimer_new(fm.base, fm_timer_cb, ex);
	ex->stall_at = ex->cut_at = SIZE_MAX;
	ex->created = (json_int_t)time(NULL);
	TAILQ_INSERT_TAIL(&fm.exchanges, ex, entry);
	fm.seq++;

	known = evhttp_request_get_command(req) == EVHTTP_REQ_POST;
	if (strcmp(path, "/v1/chat/completions") == 0 ||
	    strcmp(path, "/chat/completions") == 0)
		ex->api = FM_OPENAI;
	else if (strcmp(path, "/v1/messages") == 0)
		ex->api = FM_ANTHROPIC;
	else {
		ex->api = fm_guess_api(req, path);
		known = 0;
	}
	random_hex(hex, 12);
	hex[24] = '\0';
	snprintf(ex->msg_id, sizeof ex->msg_id, "%s%s",
	    ex->api == FM_OPENAI ? "chatcmpl-" : "msg_", hex);
	random_hex(hex, 12);
	snprintf(rid, sizeof rid, "req_%s", hex);
	fm_header(ex, ex->api == FM_OPENAI ? "x-request-id" : "request-id",
	    rid);

	in = evhttp_request_get_input_buffer(req);
	len = evbuffer_get_length(in);
	if (len > 0)
		body = json_loadb((const char *)evbuffer_pullup(in, -1), len,
		    JSON_ALLOW_NUL, NULL);
	stream = json_is_true(json_object_get(body, "stream"));
	if (json_is_string(json_object_get(body, "model")))
		ex->model = xstrdup(json_string_value(json_object_get(body,
		    "model")));
	if (!known) {
		char *msg = NULL;

		if (ex->api == FM_OPENAI)
			msg = xasprintf("Invalid URL (%s %s)",
			    fm_method(evhttp_request_get_command(req)), path);
		fm_fail(ex, 404, msg != NULL ? msg : "Not Found", NULL, NULL);
		free(msg);
	} else
		fm_decide(ex, body, stream, &q, &turn);
	fm_log(ex, path, body, ex->model, stream, q, turn);
	json_decref(body);
	fm_start(ex);
}

/* SIGTERM or SIGINT: leave the loop. */
static void
fm_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopbreak(fm.base);
}

/* Write the port number to path atomically: a temporary, then rename. */
static void
fm_write_port(const char *path, int port)
{
	char *tmp, buf[32];
	int fd, n;

	tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1)
		fm_die(1, "%s: %s", tmp, strerror(errno));
	n = snprintf(buf, sizeof buf, "%d\n", port);
	if (write(fd, buf, n) != n || close(fd) != 0)
		fm_die(1, "%s: %s", tmp, strerror(errno ? errno : EIO));
	if (rename(tmp, path) != 0)
		fm_die(1, "rename %s to %s: %s", tmp, path, strerror(errno));
	free(tmp);
}

/* Free everything, answered or not. */
static void
fm_shutdown(void)
{
	struct fm_exchange *ex;
	struct evhttp_connection *evcon;
	size_t i;

	while ((ex = TAILQ_FIRST(&fm.exchanges)) != NULL) {
		evcon = evhttp_request_get_connection(ex->req);
		if (evcon != NULL)
			evhttp_connection_set_closecb(evcon, NULL, NULL);
		else
			evhttp_request_free(ex->req);
		fm_exchange_free(ex);
	}
	evhttp_free(fm.http);
	event_free(fm.sigterm);
	event_free(fm.sigint);
	event_base_free(fm.base);
	libevent_global_shutdown();
	for (i = 0; i < fm.nqueues; i++)
		free(fm.queues[i].used);
	free(fm.queues);
	json_decref(fm.script);
	if (fm.log_fd != -1)
		close(fm.log_fd);
}

/* Print usage and exit. */
static void __attribute__((noreturn))
fm_usage(int code)
{
	fprintf(code ? stderr : stdout,
	    "usage: fakemodel --port-file FILE [--port N] [--script FILE.json]"
	    "\n                 [--log FILE.jsonl] [--key KEY]"
	    " [--closes FILE]\n"
	    "A fake OpenAI (POST /v1/chat/completions) and Anthropic "
	    "(POST /v1/messages)\nserver on 127.0.0.1 answering from a "
	    "script; see tests/helpers/fakemodel.md.\n");
	exit(code);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port-file", required_argument, NULL, 'f' },
		{ "port", required_argument, NULL, 'p' },
		{ "script", required_argument, NULL, 's' },
		{ "log", required_argument, NULL, 'l' },
		{ "closes", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct evhttp_bound_socket *bound;
	struct sockaddr_in sin;
	socklen_t slen = sizeof sin;
	const char *port_file = NULL, *script = NULL;
	char *end;
	long port = 0;
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			port_file = optarg;
			break;
		case 'p':
			errno = 0;
			port = strtol(optarg, &end, 10);
			if (errno || *optarg == '\0' || *end != '\0' ||
			    port < 0 || port > 65535)
				fm_die(2, "--port: not a port number: %s",
				    optarg);
			break;
		case 's':
			script = optarg;
			break;
		case 'l':
			if (fm.log_fd != -1)
				close(fm.log_fd);
			fm.log_fd = open(optarg, O_WRONLY | O_APPEND |
			    O_CREAT | O_CLOEXEC, 0644);
			if (fm.log_fd == -1)
				fm_die(1, "%s: %s", optarg, strerror(errno));
			break;
		case 'c':
			fm.closes_fd = open(optarg, O_WRONLY | O_APPEND |
			    O_CREAT | O_CLOEXEC, 0644);
			if (fm.closes_fd == -1)
				fm_die(1, "%s: %s", optarg, strerror(errno));
			break;
		case 'k':
			if (*optarg == '\0')
				fm_die(2, "--key: must not be empty");
			fm.key = optarg;
			break;
		case 'h':
			fm_usage(0);
		default:
			fm_usage(2);
		}
	}
	if (optind != argc || (port_file == NULL && port == 0))
		fm_usage(2);

	TAILQ_INIT(&fm.exchanges);
	if (script != NULL)
		fm_load_script(script);
	signal(SIGPIPE, SIG_IGN);

	if ((fm.base = event_base_new()) == NULL)
		fm_die(1, "cannot make an event base");
	if ((fm.http = evhttp_new(fm.base)) == NULL)
		fm_die(1, "cannot make an HTTP server");
	evhttp_set_max_body_size(fm.http, FM_MAX_BODY);
	evhttp_set_timeout(fm.http, FM_IDLE_TIMEOUT);
	evhttp_set_allowed_methods(fm.http, EVHTTP_REQ_GET |
	    EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
	    EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(fm.http, fm_request_cb, NULL);
	bound = evhttp_bind_socket_with_handle(fm.http, "127.0.0.1",
	    (ev_uint16_t)port);
	if (bound == NULL)
		fm_die(1, "cannot listen on 127.0.0.1:%ld: %s", port,
		    strerror(errno));
	if (getsockname(evhttp_bound_socket_get_fd(bound),
	    (struct sockaddr *)&sin, &slen) != 0)
		fm_die(1, "getsockname: %s", strerror(errno));
	fm.sigterm = evsignal_new(fm.base, SIGTERM, fm_signal_cb, NULL);
	fm.sigint = evsignal_new(fm.base, SIGINT, fm_signal_cb, NULL);
	evsignal_add(fm.sigterm, NULL);
	evsignal_add(fm.sigint, NULL);
	if (port_file != NULL)
		fm_write_port(port_file, ntohs(sin.sin_port));

	event_base_dispatch(fm.base);
	fm_shutdown();
	return 0;
}
