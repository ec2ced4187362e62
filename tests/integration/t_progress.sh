#!/bin/sh
# weft run's progress on stderr (--progress, engine/progress.c): on a
# terminal (a pty from script(1)) a status line redrawn in place with the
# nodes running and done, the tool calls in flight, tokens, cost and time;
# one line per event with --progress=plain; a start and an end line when
# stderr is not a terminal; nothing with -q or --progress=none.
. "$(dirname "$0")/lib.sh"
PIDS=
trap '_rc=$?; for p in $PIDS; do kill "$p" 2>/dev/null; done; (exit $_rc); cleanup' EXIT

{
	echo 'local w = require "weft"'
	testserver_decl
	cat <<LUA
return w.sequential{ name = "flow",
  w.agent{ name = "writer", model = "scripted", output_key = "answer",
    instruction = "Write.", tools = { w.mcp("test", { only = { "echo", "fail" } }) },
    script = { { tool_calls = { { name = "echo", args = { message = "hi" } },
                                { name = "fail", args = { message = "no" } } } },
               { text = "done" } } },
  w.tool{ name = "wait", server = "test", tool = "sleep",
    args = { ms = 0, ["until"] = "$T/go" } },
}
LUA
} > "$T/flow.lua"
: > "$T/go"

# Not a terminal (the default, auto): the start line and the end line.
run_weft "$T/out" "$T/err" run "$T/flow.lua"
expect_rc 0 "a run"
id=$(last_run)
[ "$(wc -l < "$T/err")" -eq 2 ] || { cat "$T/err" >&2; fail "two lines on stderr"; }
expect_grep "$T/err" "^weft: run $id started \(weft cancel $id stops it" "the start line"
expect_grep "$T/err" "^weft: run $id succeeded in [0-9.]+s: 5 steps, [1-9][0-9]* tokens, \\\$0\\.0000$" "the end line"
ok "not a terminal: a start and an end line"

# --progress=plain: one line per event, as a person would write it.
run_weft "$T/out" "$T/err" run --progress=plain "$T/flow.lua"
expect_rc 0 "a run, plain"
for l in 'flow: started \(sequential\)' 'writer: started \(agent\)' \
    'writer: scripted answered \([0-9]+ tokens\)' 'writer: calling echo' \
    'writer: calling fail' 'writer: echo done' 'writer: fail failed' \
    'writer: succeeded' 'wait: calling sleep' 'wait: sleep done' \
    'flow: succeeded' 'run succeeded'; do
	expect_grep "$T/err" "^weft: +\+[0-9]+\.[0-9]{3}s $l$" "plain: $l"
done
expect_grep "$T/err" "^weft: run [0-9a-f]{16} succeeded in " "plain: the end line"
ok "--progress=plain: a line per event"

# -q and --progress=none: nothing on stderr; a bad mode is named.
run_weft "$T/out" "$T/err" run -q "$T/flow.lua"
expect_rc 0 "a quiet run"
[ ! -s "$T/err" ] || { cat "$T/err" >&2; fail "-q printed on stderr"; }
run_weft "$T/out" "$T/err" run --progress=none "$T/flow.lua"
expect_rc 0 "a run without progress"
[ ! -s "$T/err" ] || { cat "$T/err" >&2; fail "--progress=none printed on stderr"; }
expect_grep "$T/out" '^run +[0-9a-f]{16} +succeeded' "the summary stays on stdout"
run_weft "$T/out" "$T/err" run --progress=fancy "$T/flow.lua"
expect_rc 2 "an unknown mode"
expect_grep "$T/err" '^weft: --progress=fancy: must be auto, live, plain, brief or none$' "names the mode"
ok "-q and --progress=none print nothing; a bad mode is named"

# On a terminal: the status line, redrawn in place, while the run waits
# in the tool node for $T/go.
if ! command -v script >/dev/null 2>&1; then
	echo "SKIP (part): script(1) missing: the terminal display was NOT tested" >&2
	exit 0
fi
rm -f "$T/go"
script -qfec "stty cols 250; exec '$WEFT' run '$T/flow.lua'" "$T/tty" \
    </dev/null >/dev/null 2>&1 &
PIDS="$PIDS $!"
TTYPID=$!
wait_for_grep "$T/tty" 'weft: [0-9a-f]{16} [0-9]+\.[0-9]s \| nodes 2 running, 1 done \| tools 1 in flight: wait: sleep \| [1-9][0-9]* tokens \| \$0\.0000 \| wait: calling sleep' "the status line with the tool in flight"
grep -q "$(printf '\r')weft: " "$T/tty" || fail "the line is not redrawn in place"
grep -q "$(printf '\033')\[K" "$T/tty" || fail "the line is not cleared"
: > "$T/go"
wait "$TTYPID" || fail "script(1) or the run failed"
expect_grep "$T/tty" "weft: run [0-9a-f]{16} succeeded in [0-9.]+s: 5 steps" "the end line on the terminal"
expect_grep "$T/tty" "weft: run [0-9a-f]{16} started \(weft cancel" "the run id at once"
ok "on a terminal: a status line redrawn in place (nodes, tools in flight, tokens, cost, time)"
