/*
 * mcp_client.h: an MCP client session with one server over stdio.
 *
 * The session starts its server on the first request, performs the
 * initialize handshake (protocol revision 2025-11-25, see
 * ../shared/specs/MCP.md), then sends queued requests; answers are matched
 * by JSON-RPC id, so many calls can be in flight at once.  If the server
 * dies or writes something that is not JSON-RPC, every pending request
 * fails with a message naming the server, and the next request starts a
 * fresh server process.
 */
#ifndef WEFT_MCP_CLIENT_H
#define WEFT_MCP_CLIENT_H

#include <sys/types.h>
#include <jansson.h>
#include <event2/event.h>

#define MCP_PROTOCOL_VERSION	"2025-11-25"

struct mcpc;

/*
 * Called once per request with the result (borrowed) or an error object
 * {kind, message} (borrowed; kind is one of the FAIL_* names of
 * runtime/wire.h).
 */
typedef void (*mcpc_cb)(void *arg, json_t *result, json_t *error);

struct sandbox_profile;
struct sandbox_report;

/*
 * A session for the server declared by spec {name, command:[argv...],
 * env:{}, cwd} (borrowed; copied).  Nothing starts until the first
 * request.  With a sandbox profile sb (runtime/sandbox.h; taken on
 * success, NULL for none) every start of the server is confined by it:
 * the server gets only the allowed environment plus $WEFT_SCRATCH and
 * $TMPDIR naming the profile's scratch dir, which is also its working
 * directory unless spec has a cwd.  Returns NULL with a message in err
 * when spec is malformed.
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
 * array of names (borrowed; each is also reported on stderr).
 */
json_t *mcpc_denied(const struct mcpc *);
/* Kill the server (close stdin, SIGTERM, then SIGKILL) and fail pending
   requests with "cancelled". */
void mcpc_free(struct mcpc *);
/* Send method with params (stolen, may be NULL); cb runs exactly once. */
void mcpc_request(struct mcpc *, const char *method, json_t *params,
    mcpc_cb cb, void *arg);
/* The server's pid while it runs, else -1. */
pid_t mcpc_pid(const struct mcpc *);
/* Tell the session its server process was reaped with status. */
void mcpc_reaped(struct mcpc *, int status);
/* The server name. */
const char *mcpc_name(const struct mcpc *);

#endif
