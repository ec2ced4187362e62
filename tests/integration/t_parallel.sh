#!/bin/sh
# Parallel branches really run at the same time: eight agents whose tool
# call takes 200 ms; the recorded intervals of the calls must overlap.
# Also: reducers merge branch writes, and exit_loop ends only its own loop.
. "$(dirname "$0")/lib.sh"

{
	echo 'local w = require "weft"'
	testserver_decl
	cat <<'EOF2'
local branches = {}
for i = 1, 8 do
  branches[i] = w.agent{ name = "a" .. i, model = "scripted",
    tools = { w.mcp("test", { only = { "sleep" } }) }, output_key = "r" .. i,
    script = { { tool_calls = { { name = "sleep", args = { ms = 200, text = "done " .. i } } } },
               { text = "agent " .. i .. " finished" } } }
end
branches.name = "fan"
return w.parallel(branches)
EOF2
} > "$T/fan.lua"

run_weft "$T/out" "$T/err" run "$T/fan.lua" --workers 2
expect_rc 0 "fan-out run"
id=$(last_run)
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='tool.result'")" = 8 ] || fail "8 tool results"
# Each call's interval on the coordinator: [end - duration, end].
sql "SELECT time - json_extract(payload,'\$.duration'), time FROM events WHERE run_id='$id' AND kind='tool.result'" > "$T/iv"
python3 - "$T/iv" <<'PY' || fail "the 8 tool calls did not overlap"
import sys
iv = [tuple(map(float, l.split("|"))) for l in open(sys.argv[1]) if l.strip()]
assert len(iv) == 8, iv
latest_start = max(s for s, e in iv)
earliest_end = min(e for s, e in iv)
# All eight were in flight at one moment: the last started before the first ended.
assert latest_start < earliest_end, (latest_start, earliest_end)
for s, e in iv:
    assert e - s >= 0.19, "a sleep of 200 ms took %.3fs" % (e - s)
PY
ok "8 parallel tool calls overlapped"
for i in 1 2 3 4 5 6 7 8; do
	expect_grep "$T/out" "\"a$i\": \"agent $i finished\"" "branch $i output"
done
ok "parallel outputs merged"

# Reducers: append and sum merge branch writes in branch order.
cat > "$T/reduce.lua" <<'EOF2'
local w = require "weft"
return w.sequential{ name = "s",
  w.fn{ name = "init", function(ctx) ctx.state.items = w.array{ "start" }; ctx.state.count = 10 end },
  w.parallel{ name = "p", reducers = { items = "append", count = "sum" },
    w.fn{ name = "x", function(ctx)
      local t = ctx.state.items; t[#t + 1] = "x"; ctx.state.items = t
      ctx.state.count = ctx.state.count + 1 end },
    w.fn{ name = "y", function(ctx)
      local t = ctx.state.items; t[#t + 1] = "y1"; t[#t + 1] = "y2"; ctx.state.items = t
      ctx.state.count = ctx.state.count + 5 end } },
  w.fn{ name = "out", function(ctx)
    return table.concat(ctx.state.items, ",") .. " " .. ctx.state.count end },
}
EOF2
run_weft "$T/out" "$T/err" run "$T/reduce.lua" --workers 1 -q
expect_rc 0 "reducers"
[ "$(cat "$T/out")" = "start,x,y1,y2 16" ] || fail "reducers gave '$(cat "$T/out")'"
ok "append and sum reducers"

# exit_loop is scoped: it ends the inner loop only.
cat > "$T/loops.lua" <<'EOF2'
local w = require "weft"
return w.sequential{ name = "s",
  w.loop{ name = "outer", max_iterations = 3,
    w.loop{ name = "inner", max_iterations = 5,
      w.fn{ name = "tick", function(ctx)
        ctx.state.ticks = (ctx.state.ticks or 0) + 1
        return w.exit_loop() end } },
    w.fn{ name = "after", function(ctx) ctx.state.outer = (ctx.state.outer or 0) + 1 end } },
  w.fn{ name = "out", function(ctx) return ctx.state.ticks .. "/" .. ctx.state.outer end },
}
EOF2
run_weft "$T/out" "$T/err" run "$T/loops.lua" --workers 1 -q
expect_rc 0 "nested loops"
[ "$(cat "$T/out")" = "3/3" ] || fail "nested loops gave '$(cat "$T/out")', expected 3/3"
id=$(last_run)
[ "$(sql "SELECT group_concat(DISTINCT json_extract(payload,'\$.consumed_by')) FROM events WHERE run_id='$id' AND kind='loop.exit'")" = s/outer/inner ] || fail "exit consumed by the inner loop"
ok "exit_loop ends only the nearest loop"

# A tool list that changes while an agent is resolving its tools (it waits
# for a second server's list): that agent's resolution is not kept for
# agents with the same tool sets that start later.  Ordered by the test
# server's call log, never by time: the server "slow" starts only once G's
# grow made 'late' appear (so A's resolution, begun before, is stale); A
# then calls noop; the server "gate" starts only once A's noop was called,
# and C, after S's call on gate, must be offered 'late'.
waitlog() {	# waitlog NAME: a server that starts once NAME is in the log
	# (it gives up after 2 minutes: the run then fails, saying so)
	printf '"/bin/sh", "-c", "n=0; until grep -q ^%s %s/test.log 2>/dev/null; do n=$((n+1)); [ $n -lt 12000 ] || exit 1; sleep 0.01; done; exec %s"' \
	    "$1" "$T" "$WEFT_TESTSERVER"
}
cat > "$T/stale.lua" <<EOF2
local w = require "weft"
w.mcp_server{ name = "test", command = { "$WEFT_TESTSERVER", "--log", "$T/test.log" },
  sandbox = { write = { "$T" } } }
w.mcp_server{ name = "slow", command = { $(waitlog grow) }, sandbox = false }
w.mcp_server{ name = "gate", command = { $(waitlog noop) }, sandbox = false }
local function tools() return { w.mcp("test"), w.mcp("slow", { prefix = "s_" }) } end
return w.parallel{ name = "p",
  w.agent{ name = "A", model = "scripted", tools = tools(),
    script = { { tool_calls = { { name = "noop" } } }, { text = "a" } } },
  w.agent{ name = "G", model = "scripted", tools = { w.mcp("test") },
    script = { { tool_calls = { { name = "grow" } } }, { text = "grown" } } },
  w.sequential{ name = "S",
    w.tool{ name = "wait", server = "gate", tool = "noop" },
    w.agent{ name = "C", model = "scripted", tools = tools(),
      script = { { tool_calls = { { name = "late" } } }, { text = "c" } } } } }
EOF2
# One worker: the test server keeps its tool list per process, so grow and
# the lists after it must reach the same server process.
run_weft "$T/out" "$T/err" run "$T/stale.lua" --workers 1 -q
expect_rc 0 "tool list changed during a resolution"
id=$(last_run)
[ "$(sql "SELECT json_extract(payload,'\$.result.content[0].text') FROM events WHERE run_id='$id' AND kind='tool.result' AND node_path='p/S/C'")" = "late tool here" ] ||
    fail "C was offered a stale tool list (no 'late')"
ok "a tool list that changes during an agent's resolution is not served stale to later agents"
expect_no_orphans
