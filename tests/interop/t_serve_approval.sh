#!/bin/sh
# w.approval in `weft serve`: the MCP call's run waits in place (its row
# says waiting) and goes on when answered: by `weft approve` from another
# process while the call waits (the server polls the store), or by the
# client's user through elicitation/create when the client can elicit
# (accept answers, decline rejects).  The official SDK client calls.
. "$WEFT_SRCDIR/tests/integration/lib.sh"
. "$WEFT_SRCDIR/tests/interop/lib_interop.sh"
trap '_rc=$?; stop_serve; (exit $_rc); cleanup' EXIT

cat > "$T/wf/release.lua" <<'LUA'
local w = require "weft"
return w.workflow{ name = "release", description = "Deploy after approval",
  input_schema = { type = "object", properties = { service = { type = "string" } }, required = { "service" } },
  w.approval{ name = "go", prompt = "Deploy {service}?",
    schema = { type = "object", required = { "env" },
               properties = { env = { type = "string", enum = { "staging", "prod" } } } },
    output_key = "decision" },
  w.fn{ name = "deploy", function(ctx)
    local d = ctx.state.decision
    if not d.approved then return "not deployed: " .. d.reason end
    return "deployed " .. ctx.state.service .. " to " .. d.answer.env .. " (" .. d.by .. ")"
  end },
}
LUA
start_serve "$T/wf/release.lua" --db "$WEFT_DB"

# wait_status SERVICE STATUS: until the run of that input has the status
# (polling the store; the bound is a safety net, never an ordering).
wait_status() {
	_n=0
	until [ "$(sql "SELECT status FROM runs WHERE input LIKE '%\"$1\"%'")" = "$2" ]; do
		_n=$((_n + 1))
		[ "$_n" -lt 1200 ] || fail "the run of $1 never became $2"
		sleep 0.1
	done
}

# 1. A client that cannot elicit: weft approve answers while it waits.
node "$INTEROP/approval_client.mjs" "$URL" plain billing >"$T/plain.out" 2>"$T/plain.err" &
NODE_PID=$!
wait_status billing waiting
R=$(sql "SELECT id FROM runs WHERE input LIKE '%\"billing\"%'")
[ "$(sql "SELECT status FROM approvals WHERE run_id = '$R'")" = waiting ] || fail "the approval waits"
kill -0 "$NODE_PID" || fail "the MCP call ended while the run waits"
ok "a served run waits in place; its row says waiting"
run_weft "$T/out" "$T/err" approve "$R" --answer '{"env":"bogus"}' --db "$WEFT_DB"
expect_rc 2 "a bad answer to a served run"
expect_grep "$T/err" "/env: 'bogus' is not one of" "the JSON pointer"
run_weft "$T/out" "$T/err" approve "$R" --answer '{"env":"staging"}' --db "$WEFT_DB"
expect_rc 0 "weft approve of a served run"
wait "$NODE_PID" || { cat "$T/plain.err" "$T/serve.err" >&2; fail "the SDK client failed"; }
expect_grep "$T/plain.out" '"text":"deployed billing to staging \(weft approve\)"' "the call answers with the approved run's output"
[ "$(sql "SELECT status FROM runs WHERE id = '$R'")" = succeeded ] || fail "the served run succeeded"
ok "weft approve reaches the run waiting in weft serve; the MCP call answers"

# 2. A client that can elicit is asked; accept answers, decline rejects.
node "$INTEROP/approval_client.mjs" "$URL" accept ledger >"$T/acc.out" 2>"$T/acc.err" ||
	{ cat "$T/acc.err" "$T/serve.err" >&2; fail "the SDK client (accept) failed"; }
expect_grep "$T/acc.out" '"elicited":\{"message":"Deploy ledger\?","requestedSchema":' "the client's user is asked the prompt"
expect_grep "$T/acc.out" '"text":"deployed ledger to prod \(mcp elicitation\)"' "an accepted elicitation approves"
node "$INTEROP/approval_client.mjs" "$URL" decline search >"$T/dec.out" 2>"$T/dec.err" ||
	{ cat "$T/dec.err" "$T/serve.err" >&2; fail "the SDK client (decline) failed"; }
expect_grep "$T/dec.out" '"text":"not deployed: declined by the MCP client' "a declined elicitation rejects"
ok "an MCP client that can elicit is asked: accept approves, decline rejects"

# The answers are recorded: each served run replays identically.
for id in $(sql "SELECT id FROM runs"); do
	run_weft "$T/out" "$T/err" replay "$id" --db "$WEFT_DB"
	expect_rc 0 "replay of served run $id"
done
ok "served runs with approvals replay identically"
kill -0 "$SERVE_PID" || fail "the server died"
