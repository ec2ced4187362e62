#!/bin/sh
# weft show as a person debugging a run reads it (issue 15): model turns
# with their text (trimmed; --full whole) and the tools they asked for,
# tool progress, and a cancelled run's nodes shown cancelled, not running.
. "$(dirname "$0")/lib.sh"
# A run left in the background by a failing check is stopped too.
NAP= VIEW_PID= VIEW= SPID=
trap '_rc=$?; for p in $NAP $VIEW_PID $VIEW $SPID; do kill "$p" 2>/dev/null; done; (exit $_rc); cleanup' EXIT

long="first line of a long answer, which goes on and on well past one hundred characters of text, $(printf 'x%.0s' $(seq 1 40))
second line"
{
	echo 'local w = require "weft"'
	testserver_decl
	cat <<LUA
return w.agent{ name = "writer", model = "scripted", output_key = "answer",
  instruction = "Write.", tools = { w.mcp("test", { only = { "echo" } }) },
  script = { { tool_calls = { { name = "echo", args = { message = "hi" } } } },
             { text = [[$long]] } } }
LUA
} > "$T/flow.lua"
run_weft "$T/out" "$T/err" run "$T/flow.lua"
[ "$RC" -eq 0 ] || { cat "$T/err" >&2; fail "the run failed"; }
id=$(last_run)
run_weft "$T/show" "$T/err" show "$id"
expect_rc 0 "weft show"
expect_grep "$T/show" '^    > calls echo \{"message":"hi"\}$' "the tool call a turn asked for"
expect_grep "$T/show" '^    \| first line of a long answer, .*\.\.\.$' "a model's text, trimmed"
expect_no_grep "$T/show" 'second line' "trimmed to one line"
run_weft "$T/show" "$T/err" show "$id" --full
expect_grep "$T/show" '^    \| first line of a long answer, .*xxxx$' "--full: the first line whole"
expect_grep "$T/show" '^    \| second line$' "--full: every line"
ok "model turns with their text"

# A cancelled run: the open nodes ended with it.
{
	echo 'local w = require "weft"'
	testserver_decl
	echo 'return w.sequential{ name = "s", w.tool{ name = "nap", server = "test", tool = "sleep", args = { ms = 600000 } } }'
} > "$T/nap.lua"
"$WEFT" run "$T/nap.lua" >"$T/nap.out" 2>"$T/nap.err" &
NAP=$!
wait_for_grep "$T/nap.err" '^weft: run [0-9a-f]+ started' "weft run says its run id"
nid=$(sed -n 's/^weft: run \([0-9a-f]*\) started.*/\1/p' "$T/nap.err")
[ "$nid" = "$(last_run)" ] || fail "the id said is the run's"
until [ "$(sql "SELECT count(*) FROM events WHERE run_id='$nid' AND kind='tool.call'")" = 1 ]; do
	kill -0 "$NAP" 2>/dev/null || fail "the run ended early"
	sleep 0.05
done
run_weft "$T/o" "$T/e" cancel "$nid"
expect_rc 0 "weft cancel"
RC=0
wait "$NAP" || RC=$?
NAP=
expect_rc 130 "the run is cancelled"
run_weft "$T/show" "$T/err" show "$nid"
expect_grep "$T/show" '^s  +sequential cancelled' "the sequential ended cancelled"
expect_grep "$T/show" '^  nap  +tool +cancelled' "the tool node ended cancelled"
expect_no_grep "$T/show" ' running ' "no node left running"
ok "a cancelled run's nodes are cancelled"

# -q: no run id line; -v: every event as it commits.
run_weft "$T/out" "$T/err" run "$T/flow.lua" -q
expect_no_grep "$T/err" '^weft: run ' "-q says nothing"
run_weft "$T/out" "$T/err" run "$T/flow.lua" -v
expect_grep "$T/err" '^weft: run [0-9a-f]{16} started' "-v: the run id"
expect_grep "$T/err" '^weft: +\+[0-9.]+s #1 +run\.start \(run\)' "-v: run.start"
expect_grep "$T/err" '^weft: +\+[0-9.]+s #[0-9]+ +tool\.result writer ' "-v: the tool result"
expect_grep "$T/err" '^weft: +\+[0-9.]+s #[0-9]+ +run\.end \(run\)' "-v: run.end, before the report"
ok "run id at start, -q, -v"

# Tool progress, from the reference server's long-running operation.
EV="$WEFT_SRCDIR/node_modules/.bin/mcp-server-everything"
if [ -x "$EV" ]; then
	cat > "$T/lr.lua" <<LUA
local w = require "weft"
w.mcp_server{ name = "ev", command = { "$EV", "stdio" } }
return w.tool{ name = "lr", server = "ev", tool = "trigger-long-running-operation",
  args = { duration = 1, steps = 3 } }
LUA
	run_weft "$T/out" "$T/err" run "$T/lr.lua"
	[ "$RC" -eq 0 ] || { cat "$T/err" >&2; fail "the long-running run"; }
	run_weft "$T/show" "$T/err" show "$(last_run)"
	expect_grep "$T/show" '^    ~ progress 1/3' "the first progress"
	expect_grep "$T/show" '^    ~ progress 3/3' "the last progress"
	ok "tool progress"
else
	echo "SKIP (part): $EV missing (npm ci): tool progress NOT checked" >&2
fi
expect_no_orphans
