#!/bin/sh
# A worker killed mid-task: the task is retried on another worker and the
# run still succeeds; the trajectory records the retry.
. "$(dirname "$0")/lib.sh"

{
	echo 'local w = require "weft"'
	# The server writes its marker into the test dir: grant it.
	printf 'w.mcp_server{ name = "test", command = { "%s" }, sandbox = { write = { "%s" } } }\n' "$WEFT_TESTSERVER" "$T"
	cat <<EOF2
return w.sequential{ name = "s",
  w.tool{ name = "slow", server = "test", tool = "sleep",
          args = { ms = 1500, marker = "$T/marker", text = "survived" }, output_key = "r" },
  w.fn{ name = "out", function(ctx) return ctx.state.r end } }
EOF2
} > "$T/kill.lua"

"$WEFT" run "$T/kill.lua" --workers 2 -q > "$T/out" 2> "$T/err" &
pid=$!
i=0
while [ ! -s "$T/marker" ]; do
	i=$((i + 1))
	[ $i -lt 200 ] || { kill $pid; fail "the tool call never started"; }
	sleep 0.05
done
victim=$(cat "$T/marker")
rm -f "$T/marker"
# The marker holds the pid of the worker that runs the MCP server.
grep -q "worker" "/proc/$victim/cmdline" 2>/dev/null || fail "pid $victim is not a worker"
kill -9 "$victim"
RC=0
wait $pid || RC=$?
expect_rc 0 "run after the worker was killed"
[ "$(cat "$T/out")" = survived ] || fail "output '$(cat "$T/out")'"
id=$(last_run)
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='worker.exit'")" -ge 1 ] || fail "worker exit recorded"
sql "SELECT json_extract(payload,'\$.reason') FROM events WHERE run_id='$id' AND kind='task.retry'" > "$T/why"
expect_grep "$T/why" "^worker [0-9]+ \(pid $victim\) killed by signal 9" "retry reason names the dead worker"
[ "$(sql "SELECT attempt FROM events WHERE run_id='$id' AND kind='tool.result'")" = 2 ] || fail "result came from attempt 2"
[ "$(sql "SELECT state || ':' || attempt FROM tasks WHERE run_id='$id' AND kind='mcp.call'")" = "done:2" ] || fail "task row done at attempt 2"
ok "worker killed mid-task: retried, run succeeded"
kill -0 "$victim" 2>/dev/null && fail "killed worker still alive"
expect_no_orphans

# Ctrl-C during a tool call: the run ends cancelled, recorded, nothing left.
rm -f "$T/marker"
"$WEFT" run "$T/kill.lua" --workers 2 -q > "$T/out" 2> "$T/err" &
pid=$!
i=0
while [ ! -s "$T/marker" ]; do
	i=$((i + 1))
	[ $i -lt 200 ] || { kill $pid; fail "the tool call never started"; }
	sleep 0.05
done
kill -INT $pid
RC=0
wait $pid || RC=$?
expect_rc 130 "run interrupted"
expect_grep "$T/err" "run [0-9a-f]{16} cancelled; everything so far is recorded" "cancel message"
id=$(last_run)
[ "$(sql "SELECT status FROM runs WHERE id='$id'")" = cancelled ] || fail "run recorded as cancelled"
[ "$(sql "SELECT json_extract(payload,'\$.status') FROM events WHERE run_id='$id' AND kind='run.end'")" = cancelled ] || fail "run.end event"
ok "SIGINT cancels the run and records it"
expect_no_orphans
