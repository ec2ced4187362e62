/*
 * mcp_client.h: an MCP client session with one server, over stdio or
 * Streamable HTTP.
 *
 * The session starts its server (stdio: a child process; HTTP: nothing to
 * start) on the first request, performs the initialize handshake
 * (protocol revision 2025-11-25, see ../shared/specs/MCP.md, accepting
 * the older revisions the server may answer with), then sends queued
 * requests; answers are matched by JSON-RPC id, so many calls can be in
 * flight at once.  The transport is hidden from the caller: over HTTP
 * every message is a POST to the server's endpoint, answered with JSON or
 * an SSE stream, the session id and protocol version travel in headers,
 * and a session the server has forgotten (404) is initialised again and
 * the refused request resent.  If the server dies or writes something
 * that is not JSON-RPC, every pending request fails with a message naming
 * the server, and the next request starts afresh.
 */
#ifndef WEFT_MCP_CLIENT_H
#define WEFT_MCP_CLIENT_H

#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>
#include <event2/event.h>

#define MCP_PROTOCOL_VERSION	"2025-11-25"

struct mcpc;

/*
 * Called once per request with the result (borrowed) or an error object
 * {kind, message} (borrowed; kind is one of the FAIL_* names of
 * runtime/wire.h, or "cancelled").
 */
typedef void (*mcpc_cb)(void *arg, json_t *result, json_t *error);

/*
 * Called for each notification from the server that the session does not
 * handle itself (notifications/progress, notifications/tools/list_changed,
 * notifications/message ...); params borrowed, may be NULL.
 */
typedef void (*mcpc_note_cb)(void *arg, const char *method,
    json_t *params);

struct sandbox_profile;
struct sandbox_report;

/*
 * A session for the server declared by spec (borrowed; copied): either
 * {name, command:[argv...], env:{}, cwd} for stdio or {name, url,
 * headers:{Name:value}} for Streamable HTTP; optional ping (seconds
 * between liveness pings while calls are in flight, 0 for none).
 * Nothing starts until the first request.  With a sandbox profile sb
 * (runtime/sandbox.h; taken on success, NULL for none; stdio only) every
 * start of the server is confined by it: the server gets only the allowed
 * environment plus $WEFT_SCRATCH and $TMPDIR naming the profile's scratch
 * dir, which is also its working directory unless spec has a cwd.
 * Returns NULL with a message (a JSON pointer into spec) in err when spec
 * is malformed.
 */
struct mcpc *mcpc_new(struct event_base *, json_t *spec,
    struct sandbox_profile *sb, char *err, size_t errlen);
/*
 * The layers in force for the last start of the server (borrowed), or
 * NULL when it has no sandbox or never started; *starts counts starts.
 */
const struct sandbox_report *mcpc_sandbox(const struct mcpc *,
    const struct sandbox_profile **profile, unsigned *starts);
/*
 * With a debug sandbox: the system calls the server was denied, as an
 * array of names (borrowed; each is also reported on stderr); NULL over
 * HTTP.
 */
json_t *mcpc_denied(const struct mcpc *);
/*
 * When text (a failed call's message from the server) names a path the
 * server's sandbox refused, write in buf "the sandbox does not let it
 * read /p: add ..." and return 1; else 0 (and always 0 over HTTP).
 */
int mcpc_explain(const struct mcpc *, const char *text, char *buf,
    size_t len);
/*
 * End the session: requests in flight are cancelled at the server
 * (notifications/cancelled), a stdio server is stopped (close stdin,
 * SIGTERM, then SIGKILL), and pending requests fail with "cancelled".
 */
void mcpc_free(struct mcpc *);
/*
 * Send method with params (stolen, may be NULL); cb runs exactly once,
 * possibly before this returns (a server that cannot start).  Returns a
 * handle for mcpc_cancel, or 0 when cb has already run.
 */
int64_t mcpc_request(struct mcpc *, const char *method, json_t *params,
    mcpc_cb cb, void *arg);
/*
 * Give up on request handle: the server is sent notifications/cancelled
 * (with reason msg) if the request reached it, and its cb runs now with
 * the error {kind, message: msg}.  A handle already answered is ignored.
 */
void mcpc_cancel(struct mcpc *, int64_t handle, const char *kind,
    const char *msg);
/* Where notifications go (see mcpc_note_cb); cb NULL to drop them. */
void mcpc_set_notify(struct mcpc *, mcpc_note_cb cb, void *arg);
/* The protocol revision the server agreed to, NULL before initialize. */
const char *mcpc_version(const struct mcpc *);
/* Times the session was initialised (1 + re-initialisations). */
unsigned mcpc_inits(const struct mcpc *);
/* The server's pid while it runs, else -1 (always -1 over HTTP). */
pid_t mcpc_pid(const struct mcpc *);
/* Tell the session its server process was reaped with status. */
void mcpc_reaped(struct mcpc *, int status);
/* The server name. */
const char *mcpc_name(const struct mcpc *);

#endif
