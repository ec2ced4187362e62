/*
 * a2a_client.h: one exchange with a remote A2A agent (docs/a2a.md).
 *
 * An exchange fetches the agent card, picks protocol v1.0 (or v0.3 when
 * the card offers only that), sends one message with SendMessage, or
 * SendStreamingMessage when the agent streams, and follows a task that is
 * not terminal with GetTask until it ends (or, resuming, only asks
 * GetTask for a task recorded earlier).  Everything runs on the
 * caller's libevent loop through runtime/http.h.  Redirects are followed
 * only to the agent's own host; the card's endpoint must be on that host
 * too.  The answer is normalised across both versions:
 *
 *	{"protocol": "1.0", "agent": {"name", "url"}, "messageId",
 *	 "task": {"id", "contextId", "state", "message"}, "artifacts":
 *	 [{"artifactId", "name", "parts": [{"text"}|{"data"}|{"file"}]}],
 *	 "message": {"parts": [...]}, "text": "..."}
 *
 * where state is the v0.3 spelling (completed, input-required, ...).
 * With card_only the exchange only reads the card, and its answer is the
 * card normalised:
 *
 *	{"protocol": "1.0"|"0.3", "url", "streaming", "name", "description",
 *	 "version", "skills": [{"id", "name", "description"}]}
 *
 * which a later exchange of the same run is given as its card.
 */
#ifndef WEFT_A2A_CLIENT_H
#define WEFT_A2A_CLIENT_H

#include <stddef.h>

#include <jansson.h>

struct event_base;
struct http;
struct a2ac;

/* Failure kinds besides those of runtime/wire.h. */
#define A2A_FAIL_REMOTE		"remote_failed"	 /* failed or rejected */
#define A2A_FAIL_INPUT		"input_required" /* the agent asks */
#define A2A_FAIL_AUTH		"auth_required"

/* Default caps: one answer's bytes, a stream's seconds. */
#define A2AC_MAX_RESPONSE	((size_t)8 << 20)
#define A2AC_MAX_STREAM_S	600.0

struct a2ac_opts {
	struct event_base	*base;
	struct http		*hc;		/* the caller's client */
	const char		*agent;		/* http(s) URL: the agent's
						   base or its card's */
	const char *const	*headers;	/* "Name: value", or NULL */
	const char		*message_id;	/* the same on every attempt */
	const char		*context_id;	/* or NULL */
	const char		*text;		/* the message's text part */
	const json_t		*data;		/* or NULL: a data part */
	/* A card recorded earlier in the run (a2a_card_json's result):
	   the message is sent without asking for the card again. */
	const json_t		*card;
	int			 card_only;	/* only read the card */
	size_t			 max_response;	/* 0: A2AC_MAX_RESPONSE */
	double			 max_stream_s;	/* 0: A2AC_MAX_STREAM_S */
	/* A remote task id an earlier attempt recorded (on_task): the
	   message is not sent again, the task is asked for (GetTask) until
	   it ends; sent after all when the agent does not know it.  Needs
	   card.  NULL: send the message. */
	const char		*resume_task;
	/* A status or artifact update, borrowed: progress of the task. */
	void			(*on_progress)(void *arg, json_t *update);
	/* The remote task's id, once it is first known while the task goes
	   on (a stream's first task event, a non-terminal answer), with
	   its state and the protocol ("1.0", "0.3"): what a resume gives
	   as resume_task.  Borrowed; may be NULL. */
	void			(*on_task)(void *arg, const char *id,
				    const char *state, const char *protocol);
	/* Once: the normalised answer, or an error {kind, message}. */
	void			(*on_done)(void *arg, json_t *result,
				    json_t *error);
	void			*arg;
};

/*
 * Start an exchange; its on_done is called once from the loop (never
 * from inside this call) and the exchange is freed after it returns.
 * NULL with err set when the options are unusable (not an http(s) URL).
 */
struct a2ac	*a2ac_start(const struct a2ac_opts *, char *err,
		    size_t errlen);

/*
 * Stop an exchange: abandon what is in flight, send CancelTask when the
 * remote task is known, then end with the error {kind, message}.
 */
void		 a2ac_cancel(struct a2ac *, const char *kind, const char *msg);

/*
 * The lowercase host of an http(s) URL into host (hostlen bytes); -1
 * when url is not one.
 */
int		 a2a_url_host(const char *url, char *host, size_t hostlen);

/* A task state of either version in its v0.3 spelling, a static string. */
const char	*a2a_state_norm(const char *state);

/*
 * The parts of a message or artifact of either version, normalised to
 * {"text"}, {"data"} or {"file": {bytes|uri, name?, mediaType?}} (parts
 * of no known kind are left out): a new array.
 */
json_t		*a2a_parts(json_t *obj);

/* Whether a (normalised) state is terminal. */
int		 a2a_state_terminal(const char *state);

#endif
