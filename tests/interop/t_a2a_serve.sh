#!/bin/sh
# `weft serve`: every workflow an A2A agent (docs/a2a.md).  The official
# SDK client (@a2a-js/sdk) drives it in v1.0 and v0.3 (send, stream, get,
# list, cancel, resubscribe, an invalid input, a wrong token); raw
# requests check the cards and who sees which task; and a weft workflow
# calls the served agent with w.remote (weft to weft).
. "$WEFT_SRCDIR/tests/integration/lib.sh"
. "$WEFT_SRCDIR/tests/interop/lib_interop.sh"
[ -d "$NODE_MODULES/@a2a-js/sdk" ] || { echo "SKIP: @a2a-js/sdk missing"; exit 77; }
command -v curl >/dev/null 2>&1 || { echo "SKIP: curl missing"; exit 77; }
trap '_rc=$?; stop_serve; (exit $_rc); cleanup' EXIT

mkdir -p "$T/agents"
cat > "$T/agents/researcher.lua" <<'LUA'
local w = require "weft"
return w.workflow{ name = "researcher", description = "Researches a topic",
  input_schema = { type = "object", properties = { topic = { type = "string" } }, required = { "topic" } },
  w.fn{ name = "answer", output_key = "answer",
        run = function(ctx) return "notes on " .. ctx.input.topic end },
}
LUA
{
	echo 'local w = require "weft"'
	testserver_decl
	cat <<'LUA'
return w.workflow{ name = "slow", description = "Sleeps on the test server",
  w.tool{ name = "nap", server = "test", tool = "sleep", args = { ms = 60000 } },
}
LUA
} > "$T/agents/slow.lua"
cat > "$T/agents/signoff.lua" <<'LUA'
local w = require "weft"
return w.workflow{ name = "signoff", description = "Deploys after approval",
  input_schema = { type = "object", properties = { service = { type = "string" } }, required = { "service" } },
  w.approval{ name = "go", prompt = "Deploy {service}?", output_key = "decision" },
  w.fn{ name = "deploy", run = function(ctx)
    local d = ctx.state.decision
    if not d.approved then return "not deployed: " .. d.reason end
    return "deployed " .. ctx.state.service .. (d.comment and (" (" .. d.comment .. ")") or "")
  end },
}
LUA
cat > "$T/agents/uploads.lua" <<'LUA'
local w = require "weft"
return w.workflow{ name = "uploads", description = "Lists the files it is sent",
  input_schema = { type = "object", properties = { note = { type = "string" }, files = { type = "array" } } },
  w.fn{ name = "list", output_key = "out", run = function(ctx)
    local out = { ctx.input.note or "" }
    for _, f in ipairs(ctx.input.files or {}) do
      out[#out + 1] = table.concat({ f.name or "?", f.mediaType or "?", tostring(f.size or f.uri), f.blob or "-" }, " ")
    end
    return table.concat(out, "|")
  end },
}
LUA
TOK=a2a-client-token-0123456789
OTHER=another-client-token-98765
printf '%s client alice\n%s client bob\n' "$TOK" "$OTHER" > "$T/tokens"
chmod 600 "$T/tokens"
# a2a_base: once weft serve said where its agents are (the line after the
# one start_serve waits for), their base URL in BASE and HOSTPORT.
a2a_base() {
	wait_for_grep "$T/serve.err" 'A2A agents at http://[^ ]*/a2a/NAME ' "the A2A line"
	BASE=$(sed -n 's|.*A2A agents at \(http://[^ ]*\)/a2a/NAME .*|\1|p' "$T/serve.err" | head -1)
	HOSTPORT=${BASE#http://}
}
start_serve "$T/agents" --db "$WEFT_DB" --token-file "$T/tokens"
a2a_base

for v in 1.0 0.3; do
	RC=0
	NODE_PATH="$NODE_MODULES" node "$INTEROP/a2a_sdk_client.mjs" "$BASE" "$TOK" "$v" \
	    >"$T/out" 2>"$T/err" || RC=$?
	cat "$T/out"
	[ "$RC" -eq 0 ] || { cat "$T/err" "$T/serve.err" >&2; fail "SDK client, A2A $v"; }
done

# w.approval: the task is input-required with the question; a message on
# the task (taskId) answers it, and the run goes on.
for v in 1.0 0.3; do
	RC=0
	NODE_PATH="$NODE_MODULES" node "$INTEROP/a2a_approval_client.mjs" "$BASE" "$TOK" "$v" \
	    >"$T/out" 2>"$T/err" || RC=$?
	cat "$T/out"
	[ "$RC" -eq 0 ] || { cat "$T/err" >&2; tail -20 "$T/serve.err" >&2; fail "SDK client and w.approval, A2A $v"; }
done
[ "$(sql "SELECT count(*) FROM approvals WHERE answer LIKE '%a2a client%'")" = 4 ] ||
	fail "the answers are in the store's approvals, by the A2A client"
ok "w.approval over A2A: input-required with the question, answered by a message on the task"

# File parts in: the bytes become blobs in the store, the input's "files"
# references them (name, mediaType, size, blob); a uri is kept; v1.0 raw
# and v0.3 bytes; too large, not base64, and a workflow without "files"
# in its schema are refused (-32602) naming why.
fsend() {	# VERSION_HEADER METHOD WORKFLOW PARTS_JSON
	curl -s -X POST -H "Authorization: Bearer $TOK" -H 'Content-Type: application/json' -H 'Expect:' \
	    ${1:+-H "A2A-Version: $1"} "$BASE/a2a/$3" --data-binary @- <<JSON
{"jsonrpc":"2.0","id":1,"method":"$2","params":{"message":{"kind":"message","messageId":"f-$2","role":"${1:+ROLE_USER}${1:-user}","parts":$4}}}
JSON
}
B64=$(printf 'hello file\n' | base64 | tr -d '\n')
SHA=$(printf 'hello file\n' | sha256sum | cut -d' ' -f1)
fsend 1.0 SendMessage uploads "[{\"text\":\"two files\"},{\"raw\":\"$B64\",\"mediaType\":\"text/plain\",\"filename\":\"a.txt\"},{\"url\":\"https://example.com/b.pdf\",\"mediaType\":\"application/pdf\",\"filename\":\"b.pdf\"}]" >"$T/f"
expect_grep "$T/f" "\"text\":\"two files\\|a.txt text/plain 11 $SHA\\|b.pdf application/pdf https://example.com/b.pdf -\"" "v1.0 file parts: the input's files"
[ "$(sql "SELECT size || ' ' || hex(data) FROM blobs WHERE hash = '$SHA'")" = "11 $(printf 'hello file\n' | od -An -tx1 | tr -d ' \n' | tr a-f A-F)" ] ||
	fail "the file's bytes are a blob in the store"
expect_no_grep "$T/f" "$B64" "the bytes are not echoed back in the task's history"
B64B=$(printf 'second' | base64 | tr -d '\n')
fsend "" message/send uploads "[{\"kind\":\"file\",\"file\":{\"bytes\":\"$B64B\",\"mimeType\":\"text/plain\",\"name\":\"s.txt\"}}]" >"$T/f"
expect_grep "$T/f" "\"text\":\"\\|s.txt text/plain 6 $(printf 'second' | sha256sum | cut -d' ' -f1)\"" "v0.3 file part"
fsend 1.0 SendMessage researcher "[{\"text\":\"x\"},{\"raw\":\"$B64\",\"filename\":\"a.txt\"}]" >"$T/f"
expect_grep "$T/f" '"code":-32602,"message":"workflow .researcher. takes no files: its input_schema has no \\"files\\" property"' "a workflow without files in its schema"
fsend 1.0 SendMessage uploads '[{"raw":"not base64!","filename":"bad.bin"}]' >"$T/f"
expect_grep "$T/f" '"code":-32602,"message":"/params/message/parts/0: the bytes of file .bad.bin. are not base64"' "not base64"
MID=$(head -c 300000 /dev/zero | base64 | tr -d '\n')
fsend 1.0 SendMessage uploads "[{\"raw\":\"$MID\",\"filename\":\"mid.bin\"}]" >"$T/f"
expect_grep "$T/f" '"state":"TASK_STATE_COMPLETED"' "a 300 kB file (a body past the 128 KiB read-ahead)"
[ "$(sql "SELECT count(*) FROM blobs WHERE size = 300000")" = 1 ] || fail "the 300 kB file is a blob"
BIG=$(head -c 1100000 /dev/zero | base64 | tr -d '\n')
fsend 1.0 SendMessage uploads "[{\"raw\":\"$BIG\",\"filename\":\"big.bin\"}]" >"$T/f"
expect_grep "$T/f" '"code":-32602,"message":"/params/message/parts/0: file .big.bin. is about [0-9]* bytes; weft serve takes at most 1048576 bytes' "too large"
ok "file parts in: blobs in the store, referenced by the input's files; bounded; refused where they cannot go"

# Cards: v0.3-shaped without A2A-Version, v1.0 with it; the token scheme.
curl -s -H "Authorization: Bearer $TOK" "$BASE/.well-known/agent-card.json" >"$T/card03"
expect_grep "$T/card03" '"protocolVersion":"0.3.0"' "v0.3 card by default"
expect_grep "$T/card03" "\"url\":\"$BASE/a2a/researcher\"" "the first workflow is the default agent"
curl -s -H "Authorization: Bearer $TOK" -H 'A2A-Version: 1.0' \
    "$BASE/a2a/slow/.well-known/agent-card.json" >"$T/card10"
expect_grep "$T/card10" '"supportedInterfaces":\[\{"url":"[^"]*/a2a/slow","protocolBinding":"JSONRPC","protocolVersion":"1.0"' "v1.0 card"
expect_grep "$T/card10" '"securitySchemes":\{"bearer"' "the bearer scheme"
ok "agent cards: v0.3 by default, v1.0 on A2A-Version: 1.0, per workflow, with the token scheme"

# No token: 401, as for /mcp.
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/.well-known/agent-card.json")
[ "$code" = 401 ] || fail "no token: HTTP $code, expected 401"
ok "no token: 401"

# Another client does not see alice's task; alice does.
ID=$(sql "SELECT id FROM runs WHERE input LIKE '%bees%' LIMIT 1")
[ -n "$ID" ] || fail "the SDK's task is a run in the store"
get() {
	curl -s -X POST -H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
	    -H 'A2A-Version: 1.0' "$BASE/a2a/researcher" \
	    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"GetTask\",\"params\":{\"id\":\"$ID\"}}"
}
get "$OTHER" >"$T/g"
expect_grep "$T/g" '"code":-32001' "another client: TaskNotFound"
get "$TOK" >"$T/g"
expect_grep "$T/g" '"state":"TASK_STATE_COMPLETED"' "the owner sees it"
ok "a client sees only its own tasks (task id = run id $ID)"

# After a restart the tasks of before are still their owner's: GetTask and
# ListTasks (with the contextId the task had) for alice, not for bob.
stop_serve
start_serve "$T/agents" --db "$WEFT_DB" --token-file "$T/tokens"
a2a_base
get "$TOK" >"$T/g"
expect_grep "$T/g" '"state":"TASK_STATE_COMPLETED"' "after a restart, the owner still sees the task"
expect_grep "$T/g" '"contextId":"conv-1"' "with its contextId"
get "$OTHER" >"$T/g"
expect_grep "$T/g" '"code":-32001' "after a restart, another client still does not"
list() {
	curl -s -X POST -H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
	    -H 'A2A-Version: 1.0' "$BASE/a2a/researcher" \
	    -d '{"jsonrpc":"2.0","id":1,"method":"ListTasks","params":{"contextId":"conv-1"}}'
}
list "$TOK" >"$T/g"
expect_grep "$T/g" "\"id\":\"$ID\"" "after a restart, ListTasks has the task of before"
list "$OTHER" >"$T/g"
expect_grep "$T/g" '"tasks":\[\]' "another client lists none of them"
ok "after a restart: GetTask and ListTasks of older tasks for their owner only"

# An unknown method and a v1.0 method name under v0.3.
curl -s -X POST -H "Authorization: Bearer $TOK" -H 'Content-Type: application/json' \
    "$BASE/a2a/researcher" -d '{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"x"}}' >"$T/g"
expect_grep "$T/g" '"code":-32601' "GetTask without A2A-Version is not a v0.3 method"
ok "the version comes from A2A-Version"

# weft calls weft: a w.remote node asks the served researcher.
cat > "$T/caller.lua" <<LUA
local w = require "weft"
return w.sequential{ name = "caller",
  w.remote{ name = "researcher", agent = "$BASE/a2a/researcher", input = "{topic}",
            auth = { bearer_env = "A2A_TOKEN" }, output_key = "notes" },
}
LUA
RC=0
A2A_TOKEN=$TOK WEFT_DB="$T/caller.db" "$WEFT" run "$T/caller.lua" --input '{"topic":"otters"}' \
    >"$T/out" 2>"$T/err" || RC=$?
expect_rc 0 "weft's w.remote against weft serve"
expect_grep "$T/out" '^notes on otters$' "the served workflow's output"
ok "a weft workflow calls a served workflow with w.remote"
stop_serve

# Admission: with --max-runs 1 --max-queued 1 a second task waits in the
# same queue as MCP calls (state submitted), a third is refused; when the
# first is cancelled the second starts; a waiting task can be cancelled.
start_serve "$T/agents" --db "$WEFT_DB" --token-file "$T/tokens" --max-runs 1 --max-queued 1
a2a_base
rpc() {
	curl -s -X POST -H "Authorization: Bearer $TOK" -H 'Content-Type: application/json' \
	    -H 'A2A-Version: 1.0' "$BASE/a2a/$1" -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$2\",\"params\":$3}"
}
send_slow() {
	rpc slow SendMessage "{\"message\":{\"messageId\":\"$1\",\"role\":\"ROLE_USER\",\"parts\":[{\"text\":\"nap\"}]},\"configuration\":{\"returnImmediately\":true}}"
}
send_slow q1 >"$T/q1"
expect_grep "$T/q1" '"state":"TASK_STATE_WORKING"' "the first task runs"
Q1=$(sed -n 's/.*"task":{"id":"\([0-9a-f]*\)".*/\1/p' "$T/q1")
send_slow q2 >"$T/q2"
expect_grep "$T/q2" '"state":"TASK_STATE_SUBMITTED"' "the second task waits (submitted), not refused"
Q2=$(sed -n 's/.*"task":{"id":"\([0-9a-f]*\)".*/\1/p' "$T/q2")
rpc slow GetTask "{\"id\":\"$Q2\"}" >"$T/g"
expect_grep "$T/g" '"state":"TASK_STATE_SUBMITTED"' "GetTask of the waiting task: submitted"
send_slow q3 >"$T/q3"
expect_grep "$T/q3" '"error":\{"code":-32603,"message":"the server is running its most workflows and its admission queue is full' "a third is refused: the queue is full"
rpc slow CancelTask "{\"id\":\"$Q1\"}" >"$T/g"
_n=0
until rpc slow GetTask "{\"id\":\"$Q2\"}" | grep -q '"state":"TASK_STATE_WORKING"'; do
	_n=$((_n + 1)); [ $_n -lt 600 ] || fail "the waiting task never started"; sleep 0.1
done
send_slow q4 >"$T/q4"
expect_grep "$T/q4" '"state":"TASK_STATE_SUBMITTED"' "the fourth waits"
Q4=$(sed -n 's/.*"task":{"id":"\([0-9a-f]*\)".*/\1/p' "$T/q4")
rpc slow CancelTask "{\"id\":\"$Q4\"}" >"$T/g"
expect_grep "$T/g" '"state":"TASK_STATE_CANCELED"' "a waiting task is cancelled"
[ "$(sql "SELECT count(*) FROM runs WHERE id = '$Q4'")" = 0 ] || fail "a task cancelled while waiting never ran"
rpc slow CancelTask "{\"id\":\"$Q2\"}" >"$T/g"
ok "admission: a task past --max-runs waits (submitted) in the queue, starts when a slot frees, refused only when the queue is full"
stop_serve

# examples/a2a as docs/a2a.md runs them (on a free port here).
start_serve "$WEFT_SRCDIR/examples/a2a/researcher.lua" --db "$T/ex.db"
a2a_base
sed "s|http://127.0.0.1:8765|http://$HOSTPORT|" "$WEFT_SRCDIR/examples/a2a/caller.lua" >"$T/ex_caller.lua"
run_weft "$T/out" "$T/err" run "$T/ex_caller.lua" --input '{"topic":"tides"}' --db "$T/ex2.db"
expect_rc 0 "examples/a2a/caller.lua"
expect_grep "$T/out" 'From the node: .*1\. tides are old' "the node's answer"
expect_grep "$T/out" '1\. moons are old' "the tool's answer"
ok "examples/a2a: the served researcher, called as a node and as a tool"
stop_serve
expect_no_orphans
