#!/bin/sh
# w.escalate (fail upward: no loop consumes it, no map collects it, no
# retry retries it) from a fn and as an agent's tool; retry and timeout
# policies on sequential, parallel, loop, map and fn nodes: a transient
# failure retried, a node timeout cutting the tool call under it, what is
# refused at load; each run replays identically.
. "$(dirname "$0")/lib.sh"

decl() {
	echo 'local w = require "weft"'
	printf 'w.mcp_server{ name = "test", command = { "%s", "--log", "%s/calls.log" }, sandbox = { write = { "%s" } } }\n' \
	    "$WEFT_TESTSERVER" "$T" "$T"
	printf 'local T = "%s"\n' "$T"
}
replay_ok() {
	run_weft "$T/rout" "$T/rerr" replay "$1"
	[ "$RC" -eq 0 ] || { cat "$T/rout" "$T/rerr" >&2; fail "$2: replay exit $RC"; }
	expect_grep "$T/rout" "^identical:" "$2: replay identical"
}

# --- w.escalate from a fn, through a loop and a collecting map -------------------
{
	decl
	cat <<'EOF2'
return w.sequential{ name = "wf",
  w.loop{ name = "l", max_iterations = 3,
    w.map{ name = "m", over = function() return { 1, 2, 3 } end, on_error = "collect", concurrency = 1,
      w.fn{ name = "f", function(ctx)
        if ctx.state.item == 2 then return w.escalate("item two is hopeless") end
        return ctx.state.item
      end } } },
  w.fn{ name = "after", function() return "not reached" end },
}
EOF2
} > "$T/esc.lua"
run_weft "$T/out" "$T/err" run "$T/esc.lua"
expect_rc 1 "escalate fails the run"
expect_grep "$T/err" "escalated: item two is hopeless" "the reason"
id=$(last_run)
[ "$(sql "SELECT json_extract(payload, '\$.by') FROM events WHERE run_id='$id' AND kind='escalate'")" = "wf/l/m/2/f" ] ||
    fail "escalate event names the node"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='node.start' AND node_path IN ('wf/l/m/3/f', 'wf/after')")" = 0 ] ||
    fail "nodes ran after the escalation"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='loop.iteration'")" = 1 ] ||
    fail "the loop went on"
replay_ok "$id" "escalate"
ok "w.escalate() from a fn fails upward through a collecting map and a loop, recorded, replay identical"

# --- w.escalate as an agent's tool ---------------------------------------------
cat > "$T/esc2.lua" <<'EOF2'
local w = require "weft"
return w.sequential{ name = "wf",
  w.agent{ name = "a", model = "scripted", tools = { w.escalate },
    script = { { tool_calls = { { name = "escalate", args = { reason = "no data on {topic}" } } } },
               { text = "unreachable" } } } }
EOF2
run_weft "$T/out" "$T/err" run "$T/esc2.lua"
expect_rc 1 "escalate tool"
expect_grep "$T/err" "agent 'wf/a': escalated: no data on \{topic\}" "the model's reason"
replay_ok "$(last_run)" "escalate tool"
ok "w.escalate offered to an agent: the model's call fails the run with its reason"

# --- retry on a sequential: a tool timeout, then success ------------------------
{
	decl
	cat <<'EOF2'
return w.sequential{ name = "wf", retry = { max_attempts = 3 },
  w.tool{ name = "slow", server = "test", tool = "sleep", timeout = 0.5, retry = { max_attempts = 1 },
          args = { ms = 600000, once = T .. "/once", text = "woke" } } }
EOF2
} > "$T/retry.lua"
: > "$T/calls.log"
run_weft "$T/out" "$T/err" run "$T/retry.lua" --json
expect_rc 0 "sequential retried"
id=$(last_run)
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='node.retry' AND json_extract(payload, '\$.failure')='timeout'")" = 1 ] ||
    fail "one node.retry after a timeout"
[ "$(grep -c '^sleep ' "$T/calls.log")" = 2 ] || fail "two sleep calls"
replay_ok "$id" "retry"
ok "retry on a sequential: a tool call that timed out, the node run again, replay identical"

# --- a fn's own error is not transient: not retried ------------------------------
cat > "$T/fnerr.lua" <<'EOF2'
local w = require "weft"
return w.fn{ name = "f", retry = { max_attempts = 3 }, function() error("bad input") end }
EOF2
run_weft "$T/out" "$T/err" run "$T/fnerr.lua"
expect_rc 1 "fn error"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$(last_run)' AND kind='node.retry'")" = 0 ] ||
    fail "a permanent error was retried"
ok "retry: an error of the workflow's own code is not retried"

# --- timeout on a parallel cuts the tool call under it ----------------------------
{
	decl
	cat <<'EOF2'
return w.parallel{ name = "wf", timeout = 1,
  w.tool{ name = "slow", server = "test", tool = "sleep", args = { ms = 600000 } },
  w.tool{ name = "fast", server = "test", tool = "echo", args = { message = "hi" } } }
EOF2
} > "$T/tmo.lua"
run_weft "$T/out" "$T/err" run "$T/tmo.lua"
expect_rc 1 "parallel timeout"
expect_grep "$T/err" "tool 'sleep': .*(timeout|timed out)" "the call cut at the node's timeout"
replay_ok "$(last_run)" "timeout"
ok "timeout on a parallel: the tool call under it ends at the node's deadline, replay identical"

# --- load-time errors --------------------------------------------------------------
bad() {
	printf 'local w = require "weft"\nreturn w.%s\n' "$1" > "$T/bad.lua"
	run_weft "$T/out" "$T/err" validate "$T/bad.lua"
	expect_rc 2 "bad: $1"
	expect_grep "$T/err" "bad.lua:2: $2" "bad: $1"
}
bad 'sequential{ name = "s", retry = { max_attempts = 2, backoff = 1 }, w.fn{ function() end } }' \
    "sequential 's': retry.backoff applies to tool calls; a node's attempts start at once"
bad 'loop{ name = "l", max_iterations = 2, timeout = { queue = 3 }, w.fn{ function() end } }' \
    "loop 'l': timeout.queue applies to tool calls; a node takes attempt and total"
bad 'fn{ name = "f", retry = { max_attempts = 0 }, function() end }' \
    "fn 'f': retry.max_attempts must be an integer from 1 to 100"
bad 'map{ name = "m", over = "xs", timeout = -1, w.fn{ function() end } }' \
    "map 'm': timeout must be a number of seconds"
bad 'agent{ name = "a", model = "scripted", script = {}, tools = { 3 } }' \
    "agent 'a': tools\[1\] must be w.mcp\(\"server\"\), w.agent_tool\(agent\), w.exit_loop or w.escalate"
ok "node policies: what only tool calls take is refused at load, naming the node"
