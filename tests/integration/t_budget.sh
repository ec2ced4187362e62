#!/bin/sh
# Budgets: hierarchical envelopes, reservations before dispatch, the
# budget_exceeded terminal state, and the recorded reserve/settle trail.
. "$(dirname "$0")/lib.sh"

# Fifty parallel children with generous caps of their own can never spend
# more than their parent's cap.
{
	echo 'local w = require "weft"'
	cat <<'EOF2'
local kids = {}
for i = 1, 50 do
  kids[i] = w.agent{ name = "k" .. i, model = "scripted", max_tokens = 100,
    budget = { tokens = 1000000 }, instruction = "Say something.",
    script = { { text = "answer " .. i } } }
end
kids.name = "fan"
kids.budget = { tokens = 2000 }
return w.parallel(kids)
EOF2
} > "$T/fifty.lua"
run_weft "$T/out" "$T/err" run "$T/fifty.lua" --input '{}'
expect_rc 3 "fifty children over the parent's cap"
expect_grep "$T/err" 'budget exceeded: tokens of fan(/k[0-9]+)?: limit [0-9]+( \(what fan had left when it started\))?' "the limit is named"
id=$(last_run)
[ "$(sql "SELECT status FROM runs WHERE id='$id'")" = budget_exceeded ] || fail "run status"
spent=$(sql "SELECT coalesce(sum(tokens),0) FROM events WHERE run_id='$id' AND kind='model.call'")
reserved_ok=$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='budget.reserve'")
refused=$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='budget.exceeded'")
[ "$spent" -le 2000 ] || fail "50 children spent $spent tokens under a 2000-token parent"
[ "$reserved_ok" -ge 1 ] && [ "$refused" -ge 1 ] || fail "reservations $reserved_ok, refusals $refused"
[ $((reserved_ok + refused)) -eq 50 ] || fail "every child either reserved or was refused ($reserved_ok + $refused)"
ok "50 parallel children: $spent tokens spent under a cap of 2000 ($reserved_ok reserved, $refused refused)"

# Tool calls: the third call of an agent allowed two is refused before
# it reaches a worker; the node ends budget_exceeded with the figures.
{
	echo 'local w = require "weft"'
	testserver_decl
	cat <<'EOF2'
local a = w.agent{ name = "a", model = "scripted", tools = { w.mcp("test", { only = { "echo" } }) },
  budget = { tool_calls = 2 },
  script = { { tool_calls = { { name = "echo", args = { message = "1" } } } },
             { tool_calls = { { name = "echo", args = { message = "2" } } } },
             { tool_calls = { { name = "echo", args = { message = "3" } } } },
             { text = "never" } } }
return a
EOF2
} > "$T/tools.lua"
run_weft "$T/out" "$T/err" run "$T/tools.lua" --input '{}'
expect_rc 3 "tool_calls"
id=$(last_run)
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='tool.call'")" = 2 ] || fail "a refused call was dispatched"
sql "SELECT payload FROM events WHERE run_id='$id' AND kind='node.end'" > "$T/end"
expect_grep "$T/end" '"status":"budget_exceeded"' "node status"
expect_grep "$T/end" '"dimension":"tool_calls"' "dimension recorded"
expect_grep "$T/end" '"limit":2' "limit recorded"
expect_grep "$T/end" '"spent":2' "spent recorded"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='budget.settle'")" -ge 2 ] || fail "settlements not recorded"
ok "tool_calls: third call refused before dispatch; node budget_exceeded with dimension, limit, spent"

# --budget on the command line: the run's own envelope, kept in the runs row.
run_weft "$T/out" "$T/err" run "$T/tools.lua" --input '{}' --budget model_calls=1
expect_rc 3 "--budget model_calls=1"
expect_grep "$T/err" 'budget exceeded: model_calls of a: limit 1 \(what the run had left when it started\)' "run envelope named"
id=$(last_run)
[ "$(sql "SELECT json_extract(budget,'\$.model_calls') FROM runs WHERE id='$id'")" = 1.0 ] ||
    [ "$(sql "SELECT json_extract(budget,'\$.model_calls') FROM runs WHERE id='$id'")" = 1 ] || fail "budget not in the runs row"
ok "--budget: run envelope enforced and recorded"

run_weft "$T/out" "$T/err" run "$T/tools.lua" --budget dollars=1
expect_rc 2 "bad --budget"
expect_grep "$T/err" "unknown dimension 'dollars'" "bad dimension named"
run_weft "$T/out" "$T/err" run "$T/tools.lua" --budget usd=-1
expect_rc 2 "negative --budget"
expect_grep "$T/err" 'usd=-1 is not a non-negative number' "bad value named"
ok "--budget errors name what is wrong"

# A bad budget field in the script is a file:line error.
cat > "$T/bad.lua" <<'EOF2'
local w = require "weft"
local a = w.agent{ name = "a", model = "scripted", script = { { text = "x" } }, budget = { tokns = 5 } }
return a
EOF2
run_weft "$T/out" "$T/err" validate "$T/bad.lua"
expect_rc 2 "bad budget field"
expect_grep "$T/err" "bad.lua:2: agent 'a': unknown budget dimension 'tokns' \(did you mean 'tokens'\?\)" "budget field error"
ok "budget fields checked at load, with file:line"

# Depth: an envelope with depth = 1 refuses a node two levels below it.
cat > "$T/depth.lua" <<'EOF2'
local w = require "weft"
return w.sequential{ name = "top", budget = { depth = 1 },
  w.sequential{ name = "mid",
    w.agent{ name = "deep", model = "scripted", script = { { text = "x" } } } } }
EOF2
run_weft "$T/out" "$T/err" run "$T/depth.lua"
expect_rc 3 "depth"
expect_grep "$T/err" 'budget exceeded: depth of top: limit 1' "depth message"
ok "depth limit"

# Seconds: the second call of a node past its time limit is refused.
{
	echo 'local w = require "weft"'
	testserver_decl
	cat <<'EOF2'
return w.agent{ name = "slow", model = "scripted", budget = { seconds = 0.2 },
  tools = { w.mcp("test", { only = { "sleep" } }) },
  script = { { tool_calls = { { name = "sleep", args = { ms = 400 } } } }, { text = "late" } } }
EOF2
} > "$T/secs.lua"
run_weft "$T/out" "$T/err" run "$T/secs.lua"
expect_rc 3 "seconds"
expect_grep "$T/err" 'budget exceeded: seconds of slow: limit 0.2' "seconds message"
ok "seconds limit checked before each step"

# USD on a real provider: each call reserves its worst case at the
# provider's price before it is sent; the call that cannot fit is never
# sent.  Prices: input 1000, output 1000 USD per million tokens (so a
# token costs $0.001); each answer uses 10 + 10 tokens = $0.02.
: "${WEFT_FAKEMODEL:?run through make check}"
export OPENAI_API_KEY=sk-budget-test
start_fake '{"gpt-b": [{"tool_calls":[{"name":"echo","args":{"message":"1"}}],"usage":{"input":10,"output":10}},{"tool_calls":[{"name":"echo","args":{"message":"2"}}],"usage":{"input":10,"output":10}},{"text":"done","usage":{"input":10,"output":10}}]}'
{
	echo 'local w = require "weft"'
	testserver_decl
	cat <<'EOF2'
w.provider{ name = "openai", prices = { ["gpt-b"] = { input = 1000, output = 1000 } } }
return w.agent{ name = "spender", model = "openai:gpt-b", stream = false, max_tokens = 50,
  tools = { w.mcp("test", { only = { "echo" } }) } }
EOF2
} > "$T/usd.lua"
# The worst case of the first call is every byte of its request a token
# plus 50 output tokens, at $0.001 each: well over $0.3 for this request
# (instruction, tools and their schemas).  So usd=0.3 refuses it before
# anything is sent, although the real answer would have cost $0.02.
run_weft "$T/out" "$T/err" run "$T/usd.lua" --input '{}' --budget usd=0.3
expect_rc 3 "usd=0.3"
expect_grep "$T/err" 'budget exceeded: usd of \(run\): limit 0.3, spent 0, this step needs up to 0\.[0-9]+' "usd message"
[ "$(grep -c '"model":"gpt-b"' "$T/fake.log")" = 0 ] || fail "a refused call was sent"
ok "usd: a call whose worst case does not fit is refused before it is sent"

# The same run with room for everything succeeds, and spends exactly the
# answers' cost.
start_fake '{"gpt-b": [{"text":"done","usage":{"input":10,"output":10}}]}'
run_weft "$T/out" "$T/err" run "$T/usd.lua" --input '{}' --budget usd=100 --json
expect_rc 0 "usd=100"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert abs(r['cost_usd'] - 0.02) < 1e-9, r" "$T/out" || fail "cost"
id=$(last_run)
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='budget.settle'")" = 1 ] || fail "settle not recorded"
ok "usd: a run within its budget spends exactly the answers' cost (\$0.02)"

# A USD budget over a model with no known price is an error at start.
cat > "$T/noprice.lua" <<'EOF2'
local w = require "weft"
local a = w.agent{ name = "free", model = "openai:mystery-model" }
return a
EOF2
run_weft "$T/out" "$T/err" run "$T/noprice.lua" --budget usd=1
expect_rc 1 "unpriced model under a USD budget"
expect_grep "$T/err" "noprice.lua:2: agent 'free': model 'openai:mystery-model' has no known price" "unpriced message"
[ "$(grep -c mystery "$T/fake.log" || true)" = 0 ] || fail "the unpriced model was called"
ok "USD budget over an unpriced model: refused at start"

# budget_in_prompt: the agent is told what is left, every turn.
cat > "$T/told.lua" <<'EOF2'
local w = require "weft"
return w.agent{ name = "told", model = "scripted", budget_in_prompt = true,
  budget = { model_calls = 5, tokens = 100000 },
  script = function(req, n)
    local sys = req.messages[1].content
    if n == 1 then
      assert(sys:find("Remaining budget for this task: 100000 tokens, 5 model calls", 1, true), sys)
      return { tool_calls = { { name = "nothing" } } }
    end
    assert(sys:find("4 model calls", 1, true), sys)
    return { text = "ok" }
  end }
EOF2
run_weft "$T/out" "$T/err" run "$T/told.lua"
expect_rc 0 "budget_in_prompt"
ok "budget_in_prompt: the remaining budget is in the system prompt each turn"

# on_exceed = "pause": the run stops paused at the limit (exit 5), nothing
# lost; `weft resume --budget` continues it and no recorded call is made
# again.  The same declared in the script on a node.
{
	echo 'local w = require "weft"'
	printf 'w.mcp_server{ name = "test", command = { "%s", "--log", "%s/pause.log" }, sandbox = { write = { "%s" } } }\n' \
	    "$WEFT_TESTSERVER" "$T" "$T"
	cat <<'EOF2'
local root = w.sequential{ name = "s", budget = BUDGET,
  w.tool{ name = "e1", server = "test", tool = "echo", args = { message = "one" }, output_key = "a" },
  w.tool{ name = "e2", server = "test", tool = "echo", args = { message = "two" }, output_key = "b" },
  w.fn{ name = "out", function(ctx) return ctx.state.a .. " / " .. ctx.state.b end } }
return root
EOF2
} > "$T/pause.tmpl"
sed 's/BUDGET/nil/' "$T/pause.tmpl" > "$T/pause.lua"
: > "$T/pause.log"
run_weft "$T/out" "$T/err" run "$T/pause.lua" --budget tool_calls=1,on_exceed=pause
expect_rc 5 "paused at the limit"
id=$(last_run)
expect_grep "$T/err" "run $id paused: .*budget reached, run paused: tool_calls of \(run\): limit 1" "pause names the limit"
expect_grep "$T/err" "weft resume $id --budget" "pause says how to continue"
[ "$(sql "SELECT status FROM runs WHERE id='$id'")" = paused ] || fail "run row paused"
[ "$(sql "SELECT json_extract(payload,'\$.on_exceed') FROM events WHERE run_id='$id' AND kind='budget.exceeded'")" = pause ] ||
	fail "budget.exceeded records on_exceed"
run_weft "$T/out" "$T/err" gc --keep 0 --dry-run
expect_grep "$T/out" "kept 1 selected run" "gc keeps a paused run"
run_weft "$T/out" "$T/err" resume "$id" -q
expect_rc 5 "resumed with the same envelope: paused again"
# A resume whose store fills up stops as weft run does (exit 4), and
# loses nothing: the run is still paused and resumable.
WEFT_FAULT=sqlite.full:3 run_weft "$T/out" "$T/err" resume "$id" --budget tool_calls=2 -q
expect_rc 4 "resume on a full store"
expect_grep "$T/err" "is full \(disk full: SQLITE_FULL\) while recording event [0-9]+ of run $id; .*weft resume $id" "resume names the full store"
[ "$(sql "PRAGMA integrity_check")" = ok ] || fail "store intact after a full disk during resume"
[ "$(sql "SELECT status FROM runs WHERE id='$id'")" = paused ] || fail "still paused after the failed resume"
run_weft "$T/out" "$T/err" resume "$id" --budget tool_calls=2 -q
expect_rc 0 "resumed with a larger envelope"
expect_grep "$T/out" '^Echo: one / Echo: two$' "the resumed run's answer"
[ "$(sql "SELECT status FROM runs WHERE id='$id'")" = succeeded ] || fail "run row succeeded"
[ "$(grep -c '"one"' "$T/pause.log")" = 1 ] && [ "$(grep -c '"two"' "$T/pause.log")" = 1 ] ||
	fail "each tool call made once across pause and resume: $(cat "$T/pause.log")"
ok "on_exceed=pause: paused (exit 5), kept by gc, resumed with --budget without repeating a call"

sed 's/BUDGET/{ tool_calls = 1, on_exceed = "pause" }/' "$T/pause.tmpl" > "$T/pause2.lua"
run_weft "$T/out" "$T/err" run "$T/pause2.lua"
expect_rc 5 "a node's on_exceed"
[ "$(sql "SELECT json_extract(payload,'\$.status') FROM events WHERE run_id='$(last_run)' AND kind='node.end' AND node_path='s'")" = paused ] ||
	fail "the node ends paused"
sed 's/BUDGET/{ tool_calls = 1, on_exceed = "wait" }/' "$T/pause.tmpl" > "$T/pause3.lua"
run_weft "$T/out" "$T/err" run "$T/pause3.lua"
expect_rc 2 "bad on_exceed"
expect_grep "$T/err" "pause3.lua:3: .*budget.on_exceed must be \"fail\" or \"pause\", got 'wait'" "on_exceed error at file:line"
run_weft "$T/out" "$T/err" run "$T/pause.lua" --budget tool_calls=1,on_exceed=later
expect_rc 2 "bad --budget on_exceed"
expect_grep "$T/err" "on_exceed=later: must be fail or pause" "--budget on_exceed error"
ok "on_exceed on a node; bad values named"
