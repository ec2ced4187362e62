#!/bin/sh
# Agents as tools (w.agent_tool): the child runs nested under the calling
# agent, in its own envelope carved from the caller's, and its answer is
# the tool result; sub_agents: the model hands the conversation over with
# transfer_to_NAME, recorded, and a chain of transfers is bounded.  Every
# run replays identically.
. "$(dirname "$0")/lib.sh"

replay_ok() {
	run_weft "$T/rout" "$T/rerr" replay "$1"
	[ "$RC" -eq 0 ] || { cat "$T/rout" "$T/rerr" >&2; fail "$2: replay exit $RC"; }
	expect_grep "$T/rout" "^identical:" "$2: replay identical"
}

# --- w.agent_tool ----------------------------------------------------------------
cat > "$T/tool.lua" <<'EOF2'
local w = require "weft"
local function last(req) return req.messages[#req.messages].content end
local researcher = w.agent{ name = "researcher", model = "scripted",
  description = "Finds facts.", instruction = "Find facts.",
  script = function(req) return { text = "facts about " .. last(req) } end }
return w.sequential{ name = "wf",
  w.agent{ name = "caller", model = "scripted", tools = { w.agent_tool(researcher) },
    script = function(req, turn)
      if turn == 1 then
        return { tool_calls = { { name = "researcher", args = { request = "tides" } } } }
      end
      return { text = "caller got: " .. last(req):match("\n(.*)\n") }
    end } }
EOF2
run_weft "$T/out" "$T/err" run "$T/tool.lua" --json
expect_rc 0 "agent tool"
python3 - "$T/out" <<'PY' || fail "agent tool output"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["output"] == "caller got: facts about tides", r["output"]
PY
id=$(last_run)
python3 - "$WEFT_DB" "$id" <<'PY' || fail "agent tool trajectory"
import json, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
ev = con.execute("SELECT kind, span_id, parent_span, node_path, payload FROM events WHERE run_id=? ORDER BY seq",
                 (sys.argv[2],)).fetchall()
spans = {p: s for k, s, ps, p, _ in ev if k == "node.start"}
child = [(s, ps) for k, s, ps, p, _ in ev if k == "node.start" and p == "wf/caller/researcher"]
assert child and child[0][1] == spans["wf/caller"], (child, spans)
call = [json.loads(pl) for k, s, ps, p, pl in ev if k == "agent_tool.call"]
assert call and call[0]["node"] == "wf/caller/researcher" and call[0]["tool"] == "researcher", call
tools = [json.loads(pl)["tools"] for k, s, ps, p, pl in ev if k == "model.call" and p == "wf/caller"]
assert tools[0] == ["researcher"], tools
PY
replay_ok "$id" "agent tool"
ok "w.agent_tool: the model calls an agent, nested under its caller, its answer the tool result; replay identical"

# Its envelope is carved from the caller's: two model calls do not fit in one.
sed -e 's/w.agent_tool(researcher)/w.agent_tool(researcher, { budget = { model_calls = 1 } })/' \
    -e 's/return { text = "facts about " .. last(req) }/if #req.messages < 3 then return { tool_calls = { { name = "nothing" } } } end return { text = "x" }/' \
    "$T/tool.lua" > "$T/budget.lua"
run_weft "$T/out" "$T/err" run "$T/budget.lua"
[ "$RC" -ne 0 ] || fail "agent tool over its budget succeeded"
id=$(last_run)
[ "$(sql "SELECT status FROM runs WHERE id='$id'")" = budget_exceeded ] || fail "status $(sql "SELECT status FROM runs WHERE id='$id'")"
expect_grep "$T/err" "wf/caller/researcher" "the child named"
replay_ok "$id" "agent tool budget"
ok "w.agent_tool with budget: the child's envelope stops it, the run ends budget_exceeded"

# --- sub_agents --------------------------------------------------------------------
cat > "$T/sub.lua" <<'EOF2'
local w = require "weft"
local billing = w.agent{ name = "billing", model = "scripted", description = "Invoices and refunds.",
  instruction = "You handle billing.",
  script = function(req)
    return { text = string.format("billing here (%s; %d messages before me)", req.messages[1].content,
                                  #req.messages - 1) }
  end }
return w.agent{ name = "triage", model = "scripted", sub_agents = { billing },
  instruction = "Route the customer.",
  script = { { tool_calls = { { name = "transfer_to_billing" } } }, { text = "triage kept it" } } }
EOF2
run_weft "$T/out" "$T/err" run "$T/sub.lua" --input '{"q":"refund please"}' --json
expect_rc 0 "transfer"
python3 - "$T/out" <<'PY' || fail "transfer output"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["output"] == "billing here (You handle billing.; 3 messages before me)", r["output"]
PY
id=$(last_run)
[ "$(sql "SELECT json_extract(payload, '\$.from') || '>' || json_extract(payload, '\$.to') FROM events WHERE run_id='$id' AND kind='agent.transfer'")" = "triage>billing" ] ||
    fail "transfer recorded"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='node.start' AND node_path='triage/billing'")" = 1 ] ||
    fail "billing runs under triage"
replay_ok "$id" "transfer"
ok "sub_agents: transfer_to_billing hands the conversation over, recorded; replay identical"

# Ping-pong is bounded: a and b hand the conversation to each other.
cat > "$T/pingpong.lua" <<'EOF2'
local w = require "weft"
local function bounce(to) return function() return { tool_calls = { { name = "transfer_to_" .. to } } } end end
local b = w.agent{ name = "b", model = "scripted", script = bounce("a") }
local a = w.agent{ name = "a", model = "scripted", sub_agents = { b }, max_transfers = 3, script = bounce("b") }
b.sub_agents = { a }
return w.sequential{ name = "wf", a }
EOF2
run_weft "$T/out" "$T/err" run "$T/pingpong.lua"
expect_rc 1 "ping-pong"
expect_grep "$T/err" "transfer to '.' refused: 4 transfers in one conversation \(max_transfers = 3\)" "bounded"
id=$(last_run)
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='agent.transfer'")" = 4 ] || fail "4 transfers recorded"
replay_ok "$id" "ping-pong"
ok "sub_agents: transfers back and forth stop at max_transfers, recorded"

# --- load-time errors ---------------------------------------------------------------
bad() {
	printf 'local w = require "weft"\n%s\n' "$1" > "$T/bad.lua"
	run_weft "$T/out" "$T/err" validate "$T/bad.lua"
	expect_rc 2 "bad: $1"
	expect_grep "$T/err" "bad.lua:2: $2" "bad: $1"
}
bad 'return w.agent{ name = "a", model = "scripted", script = {}, tools = { w.agent_tool(w.fn{ function() end }) } }' \
    "w.agent_tool needs an agent \(w.agent\{...\}\), got fn"
bad 'return w.agent{ name = "a", model = "scripted", script = {}, sub_agents = { 3 } }' \
    "agent 'a': sub_agents\[1\] must be an agent"
bad 'return w.agent{ name = "a", model = "scripted", script = {}, max_transfers = 0 }' \
    "agent 'a': max_transfers must be a positive integer"
bad 'return w.agent_tool(w.agent{ name = "a", model = "scripted", script = {} }, { budgt = {} })' \
    "unknown field 'budgt' in agent_tool"
ok "agent tools and sub_agents: load-time errors name the agent"
