#!/bin/sh
# Capability tokens end to end: the coordinator mints one per grant, every
# task carries its grant's token, workers verify it before running the
# task, and a refusal is a permanent error recorded with its reason.  The
# WEFT_FAULT token points alter the token the coordinator sends, so the
# workers' own checks are what refuses (docs/security.md).
. "$(dirname "$0")/lib.sh"

wf() {	# wf NAME: the workflow from stdin, after the test server's declaration
	{ echo 'local w = require "weft"'; testserver_decl; cat; } > "$T/$1.lua"
}

# The reason of the newest run's token.reject event, and who refused.
reject_of() {
	sql "SELECT json_extract(payload, '\$.by') || ' ' ||
	    json_extract(payload, '\$.reason') FROM events
	    WHERE run_id = '$(last_run)' AND kind = 'token.reject' LIMIT 1"
}

# A run with one allowed call and its store.
wf echo <<'EOF'
return w.sequential{ name = "s",
  w.tool{ name = "e", server = "test", tool = "echo", args = { message = "hi" } } }
EOF
run_weft "$T/out" "$T/err" run "$T/echo.lua" --workers 1
expect_rc 0 "echo run"
expect_grep "$T/out" "Echo: hi" "echo answer"
run=$(last_run)
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$run' AND kind='token.mint'
    AND json_extract(payload,'\$.node')='s'
    AND json_extract(payload,'\$.tools[0]')='test.*'
    AND length(json_extract(payload,'\$.jti'))=32")" = 1 ] ||
	fail "the run's token is recorded once, by its id"
sqlite3 "$WEFT_DB" .dump > "$T/dump"
expect_no_grep "$T/dump" "wct1\." "no token text in the store"
[ "$(stat -c %a "$T/state/keys")" = 700 ] || fail "keys dir mode"
[ "$(stat -c %a "$T/state/keys/$(cat "$T/state/keys/current").key")" = 600 ] ||
	fail "private key mode"
ok "a run mints its token, records its id only; keys are 0700/0600"

# A tool outside the node's grant: refused by the worker.
wf outside <<'EOF'
return w.sequential{ name = "s", grant = { tools = { "test.echo" } },
  w.tool{ name = "a", server = "test", tool = "add", args = { a = 1, b = 2 } } }
EOF
run_weft "$T/out" "$T/err" run "$T/outside.lua" --workers 1
expect_rc 1 "tool outside grant"
expect_grep "$T/err" "tool 'test.add' is not granted \(granted: test.echo\)" "outside message"
[ "$(reject_of)" = "worker tool" ] || fail "outside: recorded as '$(reject_of)'"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$(last_run)' AND kind='worker.exit'")" = 0 ] ||
	fail "the worker survives a refusal"
ok "tool outside the grant refused by the worker, recorded"

# Argument constraints: an enum on echo's message.
wf args <<'EOF'
return w.sequential{ name = "s",
  grant = { tools = { "test.echo" }, args = { ["test.echo"] = { message = { enum = { "hello" } } } } },
  w.tool{ name = "ok", server = "test", tool = "echo", args = { message = "hello" } },
  w.tool{ name = "bad", server = "test", tool = "echo", args = { message = "rm -rf" } } }
EOF
run_weft "$T/out" "$T/err" run "$T/args.lua" --workers 1
expect_rc 1 "argument outside constraint"
expect_grep "$T/err" "argument 'message' = \"rm -rf\" is not one of \"hello\"" "argument message"
[ "$(reject_of)" = "worker argument" ] || fail "args: recorded as '$(reject_of)'"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$(last_run)' AND kind='tool.result'")" -ge 1 ] ||
	fail "the allowed call ran"
ok "argument outside its constraint refused"

# A child wider than its parent: refused when minted, naming both.
wf wider <<'EOF'
return w.sequential{ name = "s", grant = { tools = { "test.echo" } },
  w.sequential{ name = "inner", grant = { tools = { "test.*" } },
    w.tool{ name = "e", server = "test", tool = "echo", args = { message = "x" } } } }
EOF
run_weft "$T/out" "$T/err" run "$T/wider.lua" --workers 1
expect_rc 1 "widened child grant"
expect_grep "$T/err" "wider.lua:4: grant refused: .*'test\.\*' is not granted by the parent" "wider message"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$(last_run)' AND kind='tool.call'")" = 0 ] ||
	fail "nothing ran under the wider grant"
ok "a child grant wider than its parent is refused"

# An agent's tools are its grant: narrower than the run's, minted lazily.
wf agent <<'EOF'
return w.agent{ name = "a", model = "scripted", tools = { w.mcp("test", { only = { "echo" } }) },
  script = { { tool_calls = { { name = "echo", args = { message = "yo" } } } }, { text = "done" } } }
EOF
run_weft "$T/out" "$T/err" run "$T/agent.lua" --workers 1
expect_rc 0 "agent run"
[ "$(sql "SELECT json_extract(payload,'\$.tools[0]') || ' ' || (json_extract(payload,'\$.parent') IS NOT NULL)
    FROM events WHERE run_id='$(last_run)' AND kind='token.mint' AND json_extract(payload,'\$.node')='a'
    AND json_extract(payload,'\$.grant') > 1")" = "test.echo 1" ] ||
	fail "the agent's token grants its tools only, narrowed from the run's"
ok "an agent's token is narrowed to its tools"

# Sibling agents with the same tools share one token (one signature, one
# verification per worker); an agent with other tools gets its own.
wf siblings <<'EOF'
local function ag(name, tools)
  return w.agent{ name = name, model = "scripted", tools = { w.mcp("test", { only = tools }) },
    script = { { tool_calls = { { name = tools[1], args = { message = name } } } }, { text = "done" } } }
end
return w.parallel{ name = "p", ag("a1", { "echo" }), ag("a2", { "echo" }), ag("a3", { "echo" }),
  ag("b", { "echo", "add" }) }
EOF
run_weft "$T/out" "$T/err" run "$T/siblings.lua" --workers 2
expect_rc 0 "siblings run"
[ "$(sql "SELECT group_concat(json_extract(payload,'\$.node') || ':' || json_extract(payload,'\$.tools'), ' ')
    FROM (SELECT payload FROM events WHERE run_id='$(last_run)' AND kind='token.mint' AND json_extract(payload,'\$.grant') > 1
          ORDER BY json_extract(payload,'\$.tools'))")" = 'p:["test.add","test.echo"] p:["test.echo"]' ] ||
	fail "one shared token for a1..a3, one for b: $(sql "SELECT payload FROM events WHERE run_id='$(last_run)' AND kind='token.mint'")"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$(last_run)' AND kind='tool.result'")" = 4 ] || fail "four calls made"
ok "sibling agents with the same tools share one token"

# max_calls across the grant, counted by the coordinator.
wf calls <<'EOF'
return w.sequential{ name = "s", grant = { tools = { "test.echo" }, max_calls = 2 },
  w.tool{ name = "e1", server = "test", tool = "echo", args = { message = "1" } },
  w.tool{ name = "e2", server = "test", tool = "echo", args = { message = "2" } },
  w.tool{ name = "e3", server = "test", tool = "echo", args = { message = "3" } } }
EOF
run_weft "$T/out" "$T/err" run "$T/calls.lua" --workers 1
expect_rc 1 "over max_calls"
expect_grep "$T/err" "the grant of 's' allows 2 tool calls and all were made" "calls message"
[ "$(reject_of)" = "coordinator max_calls" ] || fail "calls: recorded as '$(reject_of)'"
ok "max_calls enforced across the grant"

# The same, with the coordinator's count switched off: the worker's own
# use table refuses the replayed single-use token.
wf replay <<'EOF'
return w.sequential{ name = "s", grant = { tools = { "test.echo" }, max_calls = 1 },
  w.tool{ name = "e1", server = "test", tool = "echo", args = { message = "1" } },
  w.tool{ name = "e2", server = "test", tool = "echo", args = { message = "2" } } }
EOF
WEFT_FAULT=token.nocount run_weft "$T/out" "$T/err" run "$T/replay.lua" --workers 1
expect_rc 1 "replayed single-use token"
expect_grep "$T/err" "is single-use and was used already" "replay message"
[ "$(reject_of)" = "worker replay" ] || fail "replay: recorded as '$(reject_of)'"
ok "a replayed single-use token is refused by the worker"

# Tokens altered on the way: each refused by the worker with its reason.
for f in tamper:signature foreign_run:run expired:expired truncate:malformed garbage:malformed; do
	point=${f%%:*} reason=${f#*:}
	WEFT_FAULT=token.$point run_weft "$T/out" "$T/err" run "$T/echo.lua" --workers 1
	expect_rc 1 "token.$point"
	[ "$(reject_of)" = "worker $reason" ] || fail "token.$point: recorded as '$(reject_of)'"
	expect_no_grep "$T/out" "Echo:" "token.$point: the tool never ran"
	ok "token.$point refused: $reason"
done
expect_grep "$T/err" "token_rejected|malformed|not a token" "a clear message"

# Rotation: new runs sign with the new key; the old public key is kept.
run_weft "$T/out" "$T/err" keys list
expect_rc 0 "keys list"
old=$(cat "$T/state/keys/current")
expect_grep "$T/out" "^$old  current " "list shows the current key"
run_weft "$T/out" "$T/err" keys rotate
expect_rc 0 "keys rotate"
new=$(cat "$T/state/keys/current")
[ "$new" != "$old" ] || fail "rotate made a new key"
[ ! -e "$T/state/keys/$old.key" ] || fail "the old private key is deleted"
run_weft "$T/out" "$T/err" keys list
expect_grep "$T/out" "^$old  kept " "the old public key is kept"
run_weft "$T/out" "$T/err" run "$T/echo.lua" --workers 1
expect_rc 0 "run after rotation"
[ "$(sql "SELECT json_extract(payload,'\$.kid') FROM events WHERE run_id='$(last_run)' AND kind='token.mint'")" = "$new" ] ||
	fail "tokens are signed by the new key"
run_weft "$T/out" "$T/err" keys retire "$new"
expect_rc 1 "the current key cannot be retired"
run_weft "$T/out" "$T/err" keys retire "$old"
expect_rc 0 "retire the old key"
run_weft "$T/out" "$T/err" keys frobnicate
expect_rc 2 "unknown keys action"
expect_grep "$T/err" "unknown action 'frobnicate'" "keys usage error"
ok "keys rotate, list and retire"

expect_no_orphans
