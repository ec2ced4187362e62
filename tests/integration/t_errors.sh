#!/bin/sh
# Every mistake a user can make gets a one-line message naming it, a
# non-zero exit status, and (for runs) a failed run in the store.
. "$(dirname "$0")/lib.sh"

wf() {	# wf NAME: write the workflow from stdin to $T/NAME.lua
	cat > "$T/$1.lua"
}

# Lua syntax error: file:line.
wf syntax <<'EOF2'
local w = require "weft"
return w.sequential{
  w.agent{ name = "a" model = "scripted" },
}
EOF2
run_weft "$T/out" "$T/err" run "$T/syntax.lua"
expect_rc 2 "syntax error"
expect_grep "$T/err" "^weft: $T/syntax.lua:3: '}' expected .*near 'model'" "syntax error has file:line"
[ "$(wc -l < "$T/err")" -eq 1 ] || fail "syntax error is one line"
run_weft "$T/out" "$T/err" validate "$T/syntax.lua"
expect_rc 2 "validate syntax error"
ok "Lua syntax error"

# Unknown node field, with a suggestion.
wf field <<'EOF2'
local w = require "weft"
local critic = w.agent{ name = "critic", model = "scripted", script = { { text = "x" } },
  ouput_key = "review" }
return w.sequential{ critic }
EOF2
run_weft "$T/out" "$T/err" run "$T/field.lua"
expect_rc 2 "unknown field"
expect_grep "$T/err" "^weft: $T/field.lua:2: unknown field 'ouput_key' in agent 'critic' \(did you mean 'output_key'\?\)$" "unknown field message"
ok "unknown node field"

# Missing {key} in an instruction.
wf missing <<'EOF2'
local w = require "weft"
return w.sequential{ name = "s",
  w.agent{ name = "a", model = "scripted", instruction = "Write about {topik}.",
           script = { { text = "x" } } } }
EOF2
run_weft "$T/out" "$T/err" run "$T/missing.lua" --input '{"topic":"tides"}'
expect_rc 1 "missing key"
expect_grep "$T/err" "failed: agent 's/a': instruction: missing state key 'topik'$" "missing key named"
[ "$(sql "SELECT status FROM runs ORDER BY started DESC LIMIT 1")" = failed ] || fail "run recorded as failed"
[ "$(sql "SELECT error FROM runs ORDER BY started DESC LIMIT 1")" = "agent 's/a': instruction: missing state key 'topik'" ] || fail "error recorded"
ok "missing state key"

# Tool not offered by the server.
{ echo 'local w = require "weft"'; testserver_decl; cat <<'EOF2'
return w.sequential{ name = "s",
  w.agent{ name = "a", model = "scripted", tools = { w.mcp("test", { only = { "nosuch" } }) },
           script = { { text = "x" } } } }
EOF2
} | wf notool
run_weft "$T/out" "$T/err" run "$T/notool.lua" --workers 1
expect_rc 1 "tool not offered"
expect_grep "$T/err" "agent 's/a': tool 'nosuch' not offered by server 'test' \(it offers: add, crash, echo, fail," "tool not offered message"
{ echo 'local w = require "weft"'; testserver_decl; cat <<'EOF2'
return w.tool{ name = "t", server = "test", tool = "nosuch" }
EOF2
} | wf notool2
run_weft "$T/out" "$T/err" run "$T/notool2.lua" --workers 1
expect_rc 1 "tool node: tool not offered"
expect_grep "$T/err" "tool 't': tool 'nosuch' not offered by server 'test'" "tool node message"
ok "tool not offered by the server"

# MCP server command not found.
wf nocmd <<'EOF2'
local w = require "weft"
w.mcp_server{ name = "ghost", command = { "/nonexistent/mcp-ghost" } }
return w.tool{ name = "t", server = "ghost", tool = "echo" }
EOF2
run_weft "$T/out" "$T/err" run "$T/nocmd.lua" --workers 1
expect_rc 1 "command not found"
expect_grep "$T/err" "tool 't': MCP server 'ghost': command '/nonexistent/mcp-ghost' not found$" "command not found message"
ok "MCP server command not found"

# MCP server exiting mid-call.
{ echo 'local w = require "weft"'; testserver_decl; cat <<'EOF2'
return w.tool{ name = "t", server = "test", tool = "crash" }
EOF2
} | wf crash
run_weft "$T/out" "$T/err" run "$T/crash.lua" --workers 1
expect_rc 1 "server crash"
expect_grep "$T/err" "tool 't': tool 'crash': MCP server 'test' exited with status 3 during the call" "server exit message"
ok "MCP server exiting mid-call"

# Malformed JSON from a server.
{ echo 'local w = require "weft"'; testserver_decl; cat <<'EOF2'
return w.tool{ name = "t", server = "test", tool = "malformed" }
EOF2
} | wf malformed
run_weft "$T/out" "$T/err" run "$T/malformed.lua" --workers 1
expect_rc 1 "malformed JSON"
expect_grep "$T/err" "tool 'malformed': MCP server 'test' sent malformed JSON-RPC: invalid JSON" "malformed JSON message"
ok "malformed JSON from a server"

# Two parallel branches writing one key without a reducer.
wf conflict <<'EOF2'
local w = require "weft"
return w.parallel{ name = "p",
  w.fn{ name = "left", output_key = "k", function() return 1 end },
  w.fn{ name = "right", output_key = "k", function() return 2 end } }
EOF2
run_weft "$T/out" "$T/err" run "$T/conflict.lua" --workers 1
expect_rc 1 "merge conflict"
expect_grep "$T/err" "branches 'left' and 'right' both wrote 'k', which has no reducer" "conflict names both branches"
ok "parallel write conflict"

# Errors in workflow code carry file:line.
wf fnerr <<'EOF2'
local w = require "weft"
return w.fn{ name = "boom", function(ctx)
  local t = nil
  return t.field
end }
EOF2
run_weft "$T/out" "$T/err" run "$T/fnerr.lua" --workers 1
expect_rc 1 "fn error"
expect_grep "$T/err" "fn 'boom': $T/fnerr.lua:4: attempt to index a nil value" "fn error has file:line"
ok "workflow code error"

# The sandbox: no os, io, or require of other modules.
wf sandbox <<'EOF2'
local w = require "weft"
return w.fn{ name = "f", function() return os.time() end }
EOF2
run_weft "$T/out" "$T/err" run "$T/sandbox.lua" --workers 1
expect_rc 1 "os is not reachable"
expect_grep "$T/err" "sandbox.lua:2: 'os' is not available to workflow code: use w.now\(\)" "os refused at file:line, naming w.now()"
wf sandbox2 <<'EOF2'
local io = require "io"
EOF2
run_weft "$T/out" "$T/err" validate "$T/sandbox2.lua"
expect_rc 2 "require io"
expect_grep "$T/err" "module 'io' is not available to workflows" "require io refused"
ok "sandbox"

# Fields the design has but this build does not: refused, not ignored.
wf later <<'EOF2'
local w = require "weft"
local f = w.fn{ name = "f", sandbox = {}, function() end }
return f
EOF2
run_weft "$T/out" "$T/err" validate "$T/later.lua"
expect_rc 2 "unsupported field"
expect_grep "$T/err" "later.lua:2: fn 'f': 'sandbox' \(sandbox profiles\) is not supported yet" "unsupported field named"
ok "unsupported fields refused"

# Children given to a node that takes none, and a misspelt field next to a
# parallel of many children: both named at file:line.
wf kids <<'EOF2'
local w = require "weft"
local t = w.tool{ name = "x", server = "s", tool = "t", w.fn{ name = "f", function() end } }
return t
EOF2
run_weft "$T/out" "$T/err" validate "$T/kids.lua"
expect_rc 2 "children of a tool"
expect_grep "$T/err" "kids.lua:2: tool 'x' takes no positional children" "positional children refused"
wf many <<'EOF2'
local w = require "weft"
local kids = {}
for i = 1, 2000 do kids[i] = w.fn{ name = "f" .. i, function() end } end
kids.name, kids.reduce = "p", "x"
local p = w.parallel(kids)
return p
EOF2
run_weft "$T/out" "$T/err" validate "$T/many.lua"
expect_rc 2 "misspelt field among many children"
expect_grep "$T/err" "many.lua:5: unknown field 'reduce' in parallel 'p'" "the field is named"
ok "positional children and fields checked"

# The root returned by a tail call (`return w.x{...}`) has no caller frame:
# its errors still carry the line.
wf tail <<'EOF2'
local w = require "weft"
local unused = 1
return w.sequential{ name = "s", budget = { tool_calls = 1, on_exceed = "wait" },
  w.fn{ name = "a", function() end } }
EOF2
run_weft "$T/out" "$T/err" validate "$T/tail.lua"
expect_rc 2 "error in a tail-called root"
expect_grep "$T/err" "tail.lua:3: sequential 's': budget.on_exceed must be" "the tail call's line"
ok "errors of a tail-called root constructor carry file:line"

# Arguments over the 16 MiB message limit: refused, never truncated.
{ echo 'local w = require "weft"'; testserver_decl; cat <<'EOF2'
return w.tool{ name = "t", server = "test", tool = "echo", args = { message = string.rep("x", 17 * 1024 * 1024) } }
EOF2
} | wf huge
run_weft "$T/out" "$T/err" run "$T/huge.lua" --workers 1
expect_rc 1 "oversized arguments"
expect_grep "$T/err" "tool 't': tool 'echo': the task's arguments \([0-9]+ bytes\) exceed the 16777216-byte message limit" "size limit message"
ok "message size limit"

# Endless loops in workflow code are stopped, at load time and in a node.
wf spin <<'EOF2'
local w = require "weft"
return w.sequential{ name = "s", w.fn{ name = "spin", function() while true do end end } }
EOF2
WEFT_LUA_MAX_SECONDS=1 run_weft "$T/out" "$T/err" run "$T/spin.lua" --workers 1
expect_rc 1 "endless loop in a fn"
expect_grep "$T/err" "fn 's/spin': .*workflow code ran for more than 1 seconds without waiting" "fn loop stopped"
printf 'local n = 0\nwhile true do n = n + 1 end\n' > "$T/spin2.lua"
WEFT_LUA_MAX_SECONDS=1 run_weft "$T/out" "$T/err" validate "$T/spin2.lua"
expect_rc 2 "endless loop at load"
expect_grep "$T/err" "spin2.lua:2: workflow code ran for more than 1 seconds" "load loop stopped with file:line"
ok "endless loops stopped"

# --input not JSON, or not an object.
run_weft "$T/out" "$T/err" run "$WEFT_SRCDIR/examples/quickstart.lua" --input '{"topic":'
expect_rc 2 "--input not JSON"
expect_grep "$T/err" "^weft: --input is not valid JSON: .*\(line 1, column [0-9]+\)$" "bad input message"
run_weft "$T/out" "$T/err" run "$WEFT_SRCDIR/examples/quickstart.lua" --input '[1,2]'
expect_rc 2 "--input not an object"
expect_grep "$T/err" "^weft: --input must be a JSON object" "non-object input message"
ok "--input not JSON"

# Unwritable --db.
run_weft "$T/out" "$T/err" run "$T/conflict.lua" --db /nonexistent/dir/weft.db
expect_rc 1 "unwritable db"
expect_grep "$T/err" "^weft: cannot open database '/nonexistent/dir/weft.db': " "unwritable db message"
mkdir "$T/ro"
chmod 0500 "$T/ro"
if [ "$(id -u)" -ne 0 ]; then
	run_weft "$T/out" "$T/err" run "$T/conflict.lua" --db "$T/ro/weft.db"
	expect_rc 1 "read-only dir db"
	expect_grep "$T/err" "cannot open database '$T/ro/weft.db'" "read-only db message"
fi
ok "unwritable --db"
expect_no_orphans
