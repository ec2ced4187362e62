/*
 * mcp_client_int.h: the private half of mcp_client.h, shared by the
 * session core (mcp_client.c) and its transports (mcp_stdio.c,
 * mcp_http.c) only.
 *
 * As nng's transports fill a struct nni_sp_tran, each MCP transport
 * fills a struct mcpc_transport: the core knows JSON-RPC and the MCP
 * session (initialize, ids, cancellation, pings), the transport knows
 * how messages reach the server and come back.  Calls go both ways, on
 * the session's loop only: the core calls the ops below; a transport
 * hands each received message to mcpc_recv and reports a lost server
 * with mcpc_stop.
 */
#ifndef WEFT_MCP_CLIENT_INT_H
#define WEFT_MCP_CLIENT_INT_H

#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>
#include <event2/event.h>

#include "protocols/mcp_client.h"

/* What an outgoing message is, for transports that treat them apart. */
enum mcpc_msg {
	MCPC_MSG_INIT,		/* the initialize request */
	MCPC_MSG_REQ,		/* a request: an answer comes back */
	MCPC_MSG_NOTE		/* a notification or an answer to the server */
};

/*
 * A transport.  The core owns the struct mcpc and calls these on its
 * loop; the transport owns the state init returns (freed by fini) and
 * everything it opens.  Optional ops may be NULL.
 */
struct mcpc_transport {
	const char	*name;		/* "stdio", "Streamable HTTP" */
	/* The oldest protocol revision the transport carries, and how a
	   message says "over this transport" ("" or " over ..."). */
	const char	*min_version;
	const char	*over;
	/*
	 * Check the transport's fields of the server spec (borrowed): 0,
	 * or -1 with a message naming a JSON pointer in err.  sb is the
	 * sandbox profile given to mcpc_new (NULL for none).
	 */
	int		 (*check)(json_t *spec,
			    const struct sandbox_profile *sb, char *err,
			    size_t errlen);
	/*
	 * The transport state for checked spec (borrowed; what is needed
	 * is copied).  It takes sb (NULL for none) and frees it in fini.
	 * Nothing starts yet; s is kept to call the core back.
	 */
	void		*(*init)(struct mcpc *s, struct event_base *,
			    json_t *spec, struct sandbox_profile *sb);
	/* Free the state; the session is stopped already. */
	void		 (*fini)(void *);
	/*
	 * Reach the server (stdio: spawn it, under its sandbox; HTTP: load
	 * libcurl): 0, or -1 with a message in err.  The core sends
	 * initialize next.  Each start is ended by one stop.
	 */
	int		 (*start)(void *, char *err, size_t errlen);
	/*
	 * Send msg (borrowed; the transport keeps its own copy of the
	 * bytes).  id is the JSON-RPC id of an INIT or REQ message.  A
	 * failure is not returned: the transport calls mcpc_stop from the
	 * loop, or fails request id with mcpc_fail_id.
	 */
	void		 (*send)(void *, json_t *msg, enum mcpc_msg kind,
			    int64_t id);
	/* The session is initialised (HTTP: open the server's stream). */
	void		 (*ready)(void *);
	/* Request id was cancelled and the server told (HTTP: drop the
	   exchange that would carry its answer). */
	void		 (*abandon)(void *, int64_t id);
	/*
	 * The session is freed while the server runs: if flush, deliver
	 * now what is queued (the core just queued notifications/cancelled
	 * for the calls in flight), then ask the server to end (stdio:
	 * write stdin once, close it).  NULL: the transport cannot deliver
	 * anything now (HTTP: stop abandons every POST), and the core
	 * queues no notices.
	 */
	void		 (*shutdown)(void *, int flush);
	/*
	 * End what start began: close the connection, stop the server
	 * (stdio: close its stdin, SIGTERM, SIGKILL, reap), forget
	 * session state; then write in msg the sentence that fails the
	 * pending requests, from why (NULL: the server went away on its
	 * own; say how).  Called by mcpc_stop only; must not call the core.
	 */
	void		 (*stop)(void *, const char *why, char *msg,
			    size_t msglen);
	/* The server's pid after a start (stdio only). */
	pid_t		 (*pid)(void *);
	/* The server process was reaped with status (stdio only). */
	void		 (*reaped)(void *, int status);
	/* See mcpc_sandbox and mcpc_denied (stdio only). */
	const struct sandbox_report *(*sandbox)(void *,
			    const struct sandbox_profile **, unsigned *starts);
	json_t		*(*denied)(void *);
	/* See mcpc_explain (stdio only). */
	int		 (*explain)(void *, const char *text, char *buf,
			    size_t len);
};

extern const struct mcpc_transport mcpc_stdio_transport;
extern const struct mcpc_transport mcpc_http_transport;
extern const struct mcpc_transport mcpc_sse_transport;

/*
 * mcp_npm.c, for the stdio transport: npm packages run from weft's cache.
 * mcpn_lookup: the program of package spec ("name[@version]") installed
 * in cache, the one named bin (may be NULL) or the package's own, into
 * out: 0; 1 when it is not installed; -1 with err.
 * mcpn_install_argv: the npm command that installs spec into a new
 * directory of cache (*tmp, to free): NULL-terminated, free with
 * strv_free; NULL with err.
 * mcpn_install_done: npm has ended: move *tmp into the cache as
 * NAME@VERSION and pin spec to VERSION: 0, or -1 with err.
 */
int	 mcpn_lookup(const char *cache, const char *spec, const char *bin,
	    char *out, size_t len, char *err, size_t errlen);
char	**mcpn_install_argv(const char *cache, const char *spec, char **tmp,
	    char *err, size_t errlen);
int	 mcpn_install_done(const char *cache, const char *spec,
	    const char *tmp, char *err, size_t errlen);

/*
 * The core, for transports.  All run on the session's loop, never from
 * inside a libcurl callback (request callbacks run from them).
 */

/*
 * One message received (len bytes, not NUL-terminated): an answer, a
 * notification or a server request.  Returns -1 when the session has
 * stopped (a malformed message stops it): read no further.
 */
int	mcpc_recv(struct mcpc *, const char *msg, size_t len);
/*
 * Stop the session (the transport's stop runs) and fail every pending
 * request with kind and a message built from why (NULL: the server went
 * away on its own).  Nothing happens when the session is not running.
 */
void	mcpc_stop(struct mcpc *, const char *kind, const char *why);
/* Whether the session is stopped (no start, or stopped since). */
int	mcpc_idle(const struct mcpc *);
/* Whether id is the initialize request the session waits on. */
int	mcpc_init_pending(const struct mcpc *, int64_t id);
/* Fail request id with {kind, message: msg} if it awaits its answer. */
void	mcpc_fail_id(struct mcpc *, int64_t id, const char *kind,
	    const char *msg);
/*
 * The server refused request id because it forgot the session: queue
 * it to be sent again.  Returns 1 when the transport should forget its
 * session and call mcpc_send_init; 0 when it should not (already
 * initialising, or refused too often: the session is then stopped).
 */
int	mcpc_requeue(struct mcpc *, int64_t id);
/* Send initialize: a new session on the running transport. */
void	mcpc_send_init(struct mcpc *);

#endif
