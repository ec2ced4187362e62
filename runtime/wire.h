/*
 * wire.h: the coordinator <-> worker protocol (docs/PROTOCOL.md).
 *
 * One JSON-RPC 2.0 object per nng message.  Workers hold a REQ socket and
 * send requests; the coordinator's REP socket answers.  Bump WIRE_VERSION on
 * any incompatible change; both sides check it at "hello".  Method names are
 * never reused for another meaning; a retired one stays listed, unused.
 */
#ifndef WEFT_WIRE_H
#define WEFT_WIRE_H

#define WIRE_VERSION		2
/* Messages larger than this are refused with an error, never truncated. */
#define WIRE_MAX_MSG		(16 * 1024 * 1024)

#define WIRE_HELLO		"hello"		/* {version, worker, secret, pid,
						   slots, sandbox}
						   -> {..., keys: [hex]} */
#define WIRE_POLL		"poll"		/* {worker, slots} -> {tasks:[...]} */
#define WIRE_HEARTBEAT		"heartbeat"	/* {worker, tasks:[id]} -> {cancel:[id]} */
#define WIRE_COMPLETE		"complete"	/* {worker, results:[{id, attempt, result}]} */
#define WIRE_FAIL		"fail"		/* {worker, failures:[{id, attempt, error}]} */

/*
 * JSON-RPC error code of a request refused because its connection has not
 * proved to be the worker it names (no or a wrong enrolment secret, a
 * second connection for one worker, a request before hello).
 */
#define WIRE_E_REFUSED		(-32001)

/* Task kinds. */
#define TASK_MCP_CALL		"mcp.call"	/* params: {server, name, arguments} */
#define TASK_MCP_LIST		"mcp.list"	/* params: {server} */
#define TASK_A2A_SEND		"a2a.send"	/* params: {server, name, arguments}
					   (docs/PROTOCOL.md) */

/* Failure kinds in a "fail" error object {kind, message}. */
#define FAIL_SERVER_START	"server_start"	/* command not found, exec failed */
#define FAIL_SERVER_EXITED	"server_exited"	/* the MCP server died mid-call */
#define FAIL_PROTOCOL		"protocol"	/* malformed JSON or JSON-RPC */
#define FAIL_RPC		"rpc_error"	/* JSON-RPC error answer */
#define FAIL_BAD_TASK		"bad_task"	/* the task itself is malformed */
#define FAIL_TIMEOUT		"timeout"
#define FAIL_TOO_LARGE		"too_large"	/* over WIRE_MAX_MSG */
#define FAIL_TOKEN		"token_rejected" /* capability token refused */
#define FAIL_CANCELLED		"cancelled"	/* the step or run was cancelled */
#define FAIL_TRANSPORT		"transport"	/* connection to the server failed */
#define FAIL_RATE_LIMITED	"rate_limited"	/* the server said 429 */
/* Set by the coordinator, never by a worker: */
#define FAIL_LOST_WORKER	"lost_worker"	/* worker died or lease expired */
#define FAIL_QUEUE_TIMEOUT	"queue_timeout"	/* no worker took it in time */
#define FAIL_NOT_IDEMPOTENT	"not_idempotent_lost" /* idempotent=false call
						   lost in flight: not re-run */

#endif
