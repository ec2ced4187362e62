#!/bin/sh
# Lua limits (docs/workflows.md, "The sandbox"): a value that cannot be
# JSON (a table that contains itself, nesting past 64 levels) fails its
# node with an error naming the node and the key path; workflow code stuck
# inside a library function (a backtracking pattern) is stopped by the
# time limit and by SIGINT, SIGTERM and `weft cancel`.  Every such run ends
# recorded, and `weft resume` runs it again without crashing.
. "$(dirname "$0")/lib.sh"

# fnwf NAME BODY [FIELDS]: a workflow whose one node is fn 's/make'
# running BODY, with FIELDS (e.g. output_key = "out",) on the node.
fnwf() {
	cat > "$T/$1.lua" <<EOF2
local w = require "weft"
return w.sequential{ name = "s",
  w.fn{ name = "make", ${3:-} run = function(ctx)
    $2
  end } }
EOF2
}

# runb OUT ERR ARGS...: run_weft under a safety net of 120 s: a hang is
# killed and fails the test instead of stalling it.
runb() {
	_out=$1 _err=$2
	shift 2
	RC=0
	timeout -s KILL 120 "$WEFT" "$@" >"$_out" 2>"$_err" || RC=$?
}

# run_field ID COLUMN: a column of a run's row.
run_field() {
	sql "SELECT $2 FROM runs WHERE id = '$1'"
}

# failed_run WHAT REGEX: the last run failed (exit 1) with an error that
# matches REGEX, recorded in the store (status, error, run.end) and shown
# by weft runs and weft show; weft resume runs it again and fails the
# same way, without crashing.
failed_run() {
	expect_rc 1 "$1"
	expect_grep "$T/err" "$2" "$1: the error names the node and the path"
	id=$(last_run)
	[ "$(run_field "$id" status)" = failed ] || fail "$1: run recorded as failed"
	run_field "$id" error > "$T/rec"
	expect_grep "$T/rec" "$2" "$1: error recorded"
	[ "$(sql "SELECT json_extract(payload, '\$.status') FROM events WHERE run_id = '$id' AND kind = 'run.end'")" = failed ] ||
	    fail "$1: run.end event"
	runb "$T/out2" "$T/err2" runs
	expect_grep "$T/out2" "^$id +failed " "$1: weft runs lists it failed"
	runb "$T/out2" "$T/err2" show "$id"
	[ "$RC" -eq 0 ] || { cat "$T/err2" >&2; fail "$1: weft show: exit $RC"; }
	runb "$T/out2" "$T/err2" resume "$id"
	[ "$RC" -eq 1 ] || { cat "$T/err2" >&2; fail "$1: weft resume: exit $RC, expected 1"; }
	expect_grep "$T/err2" "$2" "$1: the resumed run fails the same way"
	[ "$(run_field "$id" status)" = failed ] || fail "$1: resumed run recorded as failed"
}

# --- Item: values that cannot be JSON.

# A node's output that contains itself, written to the state.
fnwf cyc 'local t = { n = 1 }; t.self = t; return t' 'output_key = "out",'
runb "$T/out" "$T/err" run "$T/cyc.lua"
failed_run "cyclic output" "fn 's/make': .*a table that contains itself at \\.self\$"
ok "a node output that contains itself fails its node, naming .self"

# The run's output (no output_key), the cycle further down.
fnwf cyc2 'local t = { a = { list = { {}, {} } } }; t.a.list[2].back = t; return t'
runb "$T/out" "$T/err" run "$T/cyc2.lua"
failed_run "cyclic run output" "output.*a table that contains itself at \\.a\\.list\\[2\\]\\.back"
ok "a run output that contains itself fails the run, naming .a.list[2].back"

# 60 levels are within the limit; 100000 are not.
fnwf deep60 'local t = {}; local c = t
    for i = 1, 60 do c.a = {}; c = c.a end
    c.leaf = true; return t' 'output_key = "out",'
runb "$T/out" "$T/err" run -q "$T/deep60.lua"
expect_rc 0 "60 levels"
[ "$(grep -o '"a"' "$T/out" | wc -l)" -eq 60 ] || fail "60 levels: output has $(grep -o '"a"' "$T/out" | wc -l) levels"
ok "a value 60 levels deep is written and returned"

fnwf deep 'local t = {}; local c = t
    for i = 1, 100000 do c.a = {}; c = c.a end
    return t' 'output_key = "out",'
runb "$T/out" "$T/err" run "$T/deep.lua"
failed_run "100000 levels" "fn 's/make': .*nested more than 64 levels at \\.a\\.a\\.a"
ok "a value 100000 levels deep fails its node: nested more than 64 levels"

# A table referenced twice, with no cycle, is fine.
fnwf shared 'local sub = { v = 1 }; return { x = sub, y = sub, z = { sub, sub } }' 'output_key = "out",'
runb "$T/out" "$T/err" run -q "$T/shared.lua"
expect_rc 0 "shared subtable"
tr -d ' \n' < "$T/out" > "$T/flat"
[ "$(cat "$T/flat")" = '{"x":{"v":1},"y":{"v":1},"z":[{"v":1},{"v":1}]}' ] ||
    fail "shared subtable: output $(cat "$T/flat")"
ok "a table referenced twice (no cycle) is written twice"

# A state write, with the script's line.
fnwf statew 'local t = {}; t.me = { t }
    ctx.state.x = t
    return 1'
runb "$T/out" "$T/err" run "$T/statew.lua"
failed_run "state write" "fn 's/make': $T/statew.lua:5: state key 'x': a table that contains itself at \\.me\\[1\\]"
ok "a state write that contains itself names the script line and .me[1]"

# Tool arguments from a scripted model, and from a before_tool hook.
{
	echo 'local w = require "weft"'
	testserver_decl
	cat <<'EOF2'
return w.sequential{ name = "s",
  w.agent{ name = "a", model = "scripted", tools = { w.mcp("test") },
    script = function(req, n)
      local args = { message = "hi" }; args.again = args
      return { tool_calls = { { name = "echo", args = args } } }
    end } }
EOF2
} > "$T/scripted.lua"
runb "$T/out" "$T/err" run "$T/scripted.lua" --workers 1
failed_run "scripted tool args" "agent 's/a': .*a table that contains itself at \\.tool_calls\\[1\\]\\.args\\.again"
ok "scripted tool-call arguments that contain themselves fail the agent"

{
	echo 'local w = require "weft"'
	testserver_decl
	cat <<'EOF2'
return w.sequential{ name = "s",
  w.agent{ name = "a", model = "scripted", tools = { w.mcp("test") },
    script = { { tool_calls = { { name = "echo", args = { message = "hi" } } } }, { text = "done" } },
    hooks = { before_tool = function(call)
      local a = { message = "x" }; a.loop = { a }
      return { args = a }
    end } } }
EOF2
} > "$T/hook.lua"
runb "$T/out" "$T/err" run "$T/hook.lua" --workers 1
failed_run "hook args" "agent 's/a': .*before_tool.*a table that contains itself at \\.loop\\[1\\]"
ok "a before_tool hook's arguments that contain themselves fail the agent"

# --- Item: time limit and cancellation inside library functions.

# A pattern that backtracks for minutes in one C call.
fnwf pat 'return string.find(string.rep("a", 3000), ".-.-.-.-b")'

# (a) The time limit stops it, naming the node; resume stops it again.
WEFT_LUA_MAX_SECONDS=1 runb "$T/out" "$T/err" run "$T/pat.lua"
[ "$RC" -ne 137 ] || fail "the pattern ran until the safety net killed weft"
expect_rc 1 "time limit"
expect_grep "$T/err" "fn 's/make': $T/pat.lua:4: workflow code ran for more than 1 seconds" "time limit error"
id=$(last_run)
[ "$(run_field "$id" status)" = failed ] || fail "time limit: run recorded as failed"
WEFT_LUA_MAX_SECONDS=1 runb "$T/out" "$T/err" resume "$id"
[ "$RC" -ne 137 ] || fail "resume: the pattern ran until the safety net killed weft"
expect_rc 1 "time limit, resumed"
expect_grep "$T/err" "workflow code ran for more than 1 seconds" "time limit error on resume"
ok "a backtracking pattern is stopped by the time limit (run and resume)"

# The same for the other ways out: pcall around the loop, a method call
# on a string, gsub, gmatch.
fnwf pcall 'while true do pcall(function() while true do end end) end'
fnwf method 'local s = ("a"):rep(3000); return s:match("(.-)(.-)(.-)(.-)b")'
fnwf gsub 'return (string.gsub(string.rep("a", 3000), "a-a-a-a-b", "x"))'
fnwf gmatch 'for x in string.gmatch(string.rep("a", 3000), ".-.-.-.-b") do end'
for f in pcall method gsub gmatch; do
	WEFT_LUA_MAX_SECONDS=1 runb "$T/out" "$T/err" run "$T/$f.lua"
	[ "$RC" -ne 137 ] || fail "$f: ran until the safety net killed weft"
	expect_rc 1 "$f"
	expect_grep "$T/err" "fn 's/make': .*workflow code ran for more than 1 seconds" "$f: time limit error"
done
ok "pcall, string methods, gsub and gmatch are held to the time limit"

# A finalizer runs with hooks off (in a collection, or as weft exits),
# where no time limit reaches: workflow code cannot make one.
fnwf gc 'setmetatable({}, { __gc = function() while true do end end }); return 1'
WEFT_LUA_MAX_SECONDS=1 runb "$T/out" "$T/err" run -q "$T/gc.lua"
[ "$RC" -ne 137 ] || fail "a looping finalizer kept weft from exiting"
expect_rc 1 "looping finalizer"
expect_grep "$T/err" "fn 's/make': $T/gc.lua:4: __gc metamethods are not available to workflow code" "__gc refused"
fnwf weak 'local cache = setmetatable({}, { __mode = "k" }); cache[{}] = 1; return "ok"'
runb "$T/out" "$T/err" run -q "$T/weak.lua"
expect_rc 0 "weak table"
ok "a __gc metamethod is refused (a weak table is fine)"

# A huge string.rep fails at once on the memory limit.
fnwf rep 'local s = string.rep("ab", 400000000, "-"); return #s'
runb "$T/out" "$T/err" run "$T/rep.lua"
expect_rc 1 "huge string.rep"
expect_grep "$T/err" "fn 's/make': .*not enough memory" "huge string.rep: out of memory"
ok "a huge string.rep fails on the memory limit"

# (b) Cancellation while the pattern runs, with the default time limit.
# A round of the graph ends (and is committed) just before a fn node's
# function runs, so once the node's node.start is in the store, the
# coordinator is about to run the pattern or running it.  (A signal that
# comes before the function starts stops it at its first instruction: a
# cancel stays pending for the rest of the run.)
# start_spin ID: run pat.lua in the background as run ID; wait until its
# fn node has started (safety net: 30 s).
start_spin() {
	"$WEFT" run "$T/pat.lua" --run-id "$1" >"$T/bout" 2>"$T/berr" &
	BG=$!
	i=0
	until [ "$(sql "SELECT count(*) FROM events WHERE run_id = '$1' AND kind = 'node.start' AND node_path = 's/make'" 2>/dev/null)" = 1 ]; do
		i=$((i + 1))
		[ $i -lt 600 ] || { kill -KILL "$BG"; fail "run $1: its fn node did not start"; }
		sleep 0.05
	done
}
# wait_bg WHAT: the background run's exit status in RC (safety net:
# 60 s, then it is killed and the test fails).
wait_bg() {
	i=0
	while kill -0 "$BG" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -ge 1200 ]; then
			kill -KILL "$BG"
			fail "$1: the run did not stop"
		fi
		sleep 0.05
	done
	RC=0
	wait "$BG" || RC=$?
}
# cancelled_run ID WHAT: the run ended cancelled (exit 130), recorded so.
cancelled_run() {
	[ "$RC" -eq 130 ] || { cat "$T/berr" >&2; fail "$2: exit $RC, expected 130"; }
	[ "$(run_field "$1" status)" = cancelled ] || fail "$2: run recorded as cancelled"
	[ "$(sql "SELECT json_extract(payload, '\$.status') FROM events WHERE run_id = '$1' AND kind = 'run.end'")" = cancelled ] ||
	    fail "$2: run.end cancelled"
	run_field "$1" error > "$T/rec"
	expect_grep "$T/rec" "fn 's/make': .*the run was cancelled \\($3\\)" "$2: error names the node"
}

id=00000000000000c1
start_spin $id
runb "$T/cout" "$T/cerr" cancel $id
[ "$RC" -eq 0 ] || { cat "$T/cerr" >&2; kill -KILL "$BG"; fail "weft cancel: exit $RC"; }
expect_grep "$T/cout" "^run $id cancelled\$" "weft cancel says the run ended cancelled"
wait_bg "weft cancel"
cancelled_run $id "weft cancel" SIGTERM
ok "weft cancel stops a backtracking pattern; the run is recorded cancelled"

id=00000000000000c2
start_spin $id
kill -INT "$BG"
wait_bg "SIGINT"
cancelled_run $id "SIGINT" SIGINT
ok "SIGINT stops a backtracking pattern; the run is recorded cancelled"

# The cancelled run resumes (and, still spinning, meets the time limit).
WEFT_LUA_MAX_SECONDS=1 runb "$T/out" "$T/err" resume $id
[ "$RC" -ne 137 ] || fail "resume of the cancelled run ran until the safety net killed weft"
expect_rc 1 "resume of the cancelled run"
expect_grep "$T/err" "workflow code ran for more than 1 seconds" "resume of the cancelled run"
[ "$(run_field $id status)" = failed ] || fail "resumed run recorded as failed"
ok "a cancelled run resumes"

expect_no_orphans
