/*
 * jsonrpc.h: JSON-RPC 2.0 messages and newline-delimited framing.
 *
 * Used for MCP over stdio (one message per line) and for the coordinator <->
 * worker protocol (one message per nng message).  Parsing validates the
 * envelope only; method-specific params are checked by their handlers.
 */
#ifndef WEFT_JSONRPC_H
#define WEFT_JSONRPC_H

#include <stddef.h>
#include <jansson.h>

#define JRPC_PARSE_ERROR	-32700
#define JRPC_INVALID_REQUEST	-32600
#define JRPC_METHOD_NOT_FOUND	-32601
#define JRPC_INVALID_PARAMS	-32602
#define JRPC_INTERNAL_ERROR	-32603

/* Framing: bytes in, complete lines out. */
struct linebuf;

/* A framer refusing lines longer than max_line bytes. */
struct linebuf *linebuf_new(size_t max_line);
void linebuf_free(struct linebuf *);
/* Append bytes read from the stream. */
void linebuf_feed(struct linebuf *, const char *, size_t);
/*
 * Take the next complete line.  Returns 1 with *line (NUL-terminated, valid
 * until the next call) and *len, without the '\n' or a trailing '\r'; 0 when
 * no complete line is buffered; -1 once for each line that exceeded
 * max_line (its bytes are dropped up to and including its '\n').  Empty
 * lines are skipped.
 */
int linebuf_next(struct linebuf *, const char **line, size_t *len);
/* Bytes buffered but not yet returned as a line. */
size_t linebuf_pending(const struct linebuf *);

enum jrpc_kind {
	JRPC_REQUEST,		/* method + id */
	JRPC_NOTIFICATION,	/* method, no id */
	JRPC_RESPONSE,		/* result + id */
	JRPC_ERROR_RESPONSE	/* error + id (id may be null) */
};

struct jrpc_msg {
	enum jrpc_kind	 kind;
	json_t		*root;		/* owned: the whole message */
	json_t		*id;		/* borrowed from root, or NULL */
	const char	*method;	/* borrowed, requests/notifications */
	json_t		*params;	/* borrowed, may be NULL */
	json_t		*result;	/* borrowed, responses */
	json_t		*error;		/* borrowed, error responses */
	int		 error_code;
	const char	*error_message;	/* borrowed, "" if absent */
};

/*
 * Parse one message of len bytes.  On success fills *out (free with
 * jrpc_msg_clear) and returns 0.  On failure returns -1, sets *code to
 * JRPC_PARSE_ERROR or JRPC_INVALID_REQUEST and writes a message to err
 * naming the problem and its JSON pointer, e.g. "/id: must be a string or
 * an integer".  Batches (arrays) are invalid requests.
 */
int jrpc_parse(const char *buf, size_t len, struct jrpc_msg *out, int *code,
    char *err, size_t errlen);
void jrpc_msg_clear(struct jrpc_msg *);

/* Builders; each returns a new reference and steals params/result/data/id. */
json_t *jrpc_request(json_t *id, const char *method, json_t *params);
json_t *jrpc_notification(const char *method, json_t *params);
json_t *jrpc_result(json_t *id, json_t *result);
json_t *jrpc_error(json_t *id, int code, const char *message, json_t *data);

/*
 * Serialise compactly on one line (no raw newline can appear: JSON strings
 * escape them).  With nl, a '\n' is appended.  Returns a heap buffer
 * (NUL-terminated, the caller frees it) and its length in *len, or NULL if
 * msg cannot be encoded.
 */
char *jrpc_dump(const json_t *msg, size_t *len, int nl);

#endif
