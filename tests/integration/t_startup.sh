#!/bin/sh
# Start-up work a run does only when it needs it (bench/README.md,
# "Start-up"): a graph without tool calls forks no worker; the first tool
# call forks them; the Lua library, loaded as bytecode, still names its
# modules and lines; a new store is usable at once and by the next run.
. "$(dirname "$0")/lib.sh"

cat > "$T/fn.lua" <<'EOF'
local w = require "weft"
return w.fn{ name = "one", function(ctx) return { answer = "hi" } end }
EOF
"$WEFT" run "$T/fn.lua" --json > "$T/out" 2> "$T/err" || fail "fn run: $(cat "$T/err")"
grep -q '"answer": "hi"' "$T/out" || fail "fn run: no answer: $(cat "$T/out")"
grep -q '"workers_started": 0,' "$T/out" ||
	fail "a run without tasks started workers: $(cat "$T/out")"

# The same store again (now existing), a tool call: the workers start.
{
	echo 'local w = require "weft"'
	printf 'w.mcp_server{ name = "test", command = { "%s" } }\n' "$WEFT_TESTSERVER"
	cat <<'EOF'
return w.tool{ name = "e", server = "test", tool = "echo", args = { message = "x" }, output_key = "r" }
EOF
} > "$T/tool.lua"
"$WEFT" run "$T/tool.lua" --workers 2 --json > "$T/out" 2> "$T/err" || fail "tool run: $(cat "$T/err")"
grep -q '"workers_started": 2,' "$T/out" || fail "the tool run did not start its 2 workers: $(cat "$T/out")"
id=$(last_run)
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind = 'worker.sandbox'")" -ge 1 ] ||
	fail "the tool run records no worker"
[ "$(sql "SELECT status FROM runs WHERE id='$id'")" = succeeded ] || fail "tool run not succeeded"

# An error raised inside the weft library (bytecode) still names the module
# and line, and the workflow's own line.
cat > "$T/bad.lua" <<'EOF'
local w = require "weft"
return w.sequential{ name = "s",
  w.fn{ name = "f", function(ctx) return { x = 1 } end },
  42 }
EOF
"$WEFT" run "$T/bad.lua" -q > "$T/out" 2> "$T/err" && fail "a bad workflow ran"
grep -q 'bad.lua:2' "$T/err" || fail "the error does not name bad.lua:2: $(cat "$T/err")"

# An error inside the library itself (here a hook's bad answer reaches
# it): the library is loaded without line information, so the message says
# where it came from and how to get the line; WEFT_LUA_DEBUG=1 gives it.
cat > "$T/lib.lua" <<'LUA'
local w = require "weft"
return w.agent{ name = "a", model = "scripted", script = { { text = "x" } },
  hooks = { before_model = function() return { messages = 5 } end } }
LUA
"$WEFT" run "$T/lib.lua" -q > "$T/out" 2> "$T/err" && fail "the hook's bad answer passed"
grep -q "agent 'a': weft library: attempt to get length of a number value .*(WEFT_LUA_DEBUG=1 names the line)" "$T/err" ||
	fail "a library error without its hint: $(cat "$T/err")"
WEFT_LUA_DEBUG=1 "$WEFT" run "$T/lib.lua" -q > "$T/out" 2> "$T/err" && fail "the hook's bad answer passed"
grep -q "agent 'a': weft\.model:[0-9]*: attempt to get length" "$T/err" ||
	fail "WEFT_LUA_DEBUG=1 does not name the library's line: $(cat "$T/err")"
ok "no workers without tasks; workers at the first tool call; errors name the workflow's line, and the library's with WEFT_LUA_DEBUG=1"
