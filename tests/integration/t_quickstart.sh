#!/bin/sh
# The quickstart end to end: real workers, the real MCP reference server,
# a real SQLite store; then show, show --json and runs on the result.
. "$(dirname "$0")/lib.sh"

if [ ! -x "$WEFT_SRCDIR/node_modules/.bin/mcp-server-everything" ]; then
	echo "SKIP: @modelcontextprotocol/server-everything is not installed" \
	    "(run 'npm ci' in $WEFT_SRCDIR)" >&2
	exit 77
fi

run_weft "$T/out" "$T/err" run "$WEFT_SRCDIR/examples/quickstart.lua" \
    --input '{"topic":"tides"}' --workers 2
expect_rc 0 "quickstart run"
expect_grep "$T/out" '^A note on tides\. Fact: tides rise and fall twice a day\. Tide turns per day: The sum of 2 and 2 is 4\. Conditions \(Chicago\): \{"temperature":' "the answer is built from real tool results"
expect_grep "$T/out" '\(revised after review\)' "the loop ran a second iteration"
expect_grep "$T/out" '^run +[0-9a-f]{16} +succeeded$' "run id printed"
expect_grep "$T/out" '^steps +14 \(11 model turns, 3 tool calls\)$' "steps counted"
expect_grep "$T/out" '^time +[0-9.]+s$' "duration printed"
expect_grep "$T/out" '^model +scripted: offline' "says it ran on the scripted provider"
ok "quickstart prints the answer and summary"

id=$(last_run)
[ "$(sql "SELECT status FROM runs WHERE id='$id'")" = succeeded ] || fail "run row status"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='tool.call'")" = 3 ] || fail "3 tool.call events"
# server-everything announces notifications/tools/list_changed after a
# call; each announcement re-lists once, nothing else lists again.
changed=$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='tool.list_changed'")
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='tool.list'")" = $((1 + changed)) ] || fail "tools listed once per server per run (plus once per list change)"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='model.call'")" = 11 ] || fail "11 model turns recorded"
[ "$(sql "SELECT json_extract(payload,'$.consumed_by') FROM events WHERE run_id='$id' AND kind='loop.exit'")" = essay/refine ] || fail "exit_loop consumed by essay/refine"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='loop.iteration'")" = 2 ] || fail "loop ran 2 iterations"
ok "trajectory recorded in SQLite"

run_weft "$T/show" "$T/err" show "$id"
expect_rc 0 "show"
for n in essay research facts conditions numbers refine writer critic publish; do
	expect_grep "$T/show" "^ *$n( #[0-9]+)? +(sequential|parallel|agent|loop|fn) +succeeded" "show lists $n"
done
expect_grep "$T/show" '^    facts +agent +succeeded +[0-9.]+s +tokens [1-9][0-9]* +tools 1 +stop=final turns=2' "agent line with tokens, tools, stop"
expect_grep "$T/show" '^      - tool echo \{"message":"tides rise and fall twice a day"\} -> Echo: tides rise' "tool call with args and result"
expect_grep "$T/show" '^  refine +loop +succeeded .* stop=exit_loop' "loop stop reason"
expect_grep "$T/show" '^    critic #2 +agent +succeeded .* stop=final turns=2' "loop iterations numbered"
ok "show prints the tree"

prefix=$(printf %s "$id" | cut -c1-6)
run_weft "$T/json" "$T/err" show "$prefix" --json
expect_rc 0 "show --json by prefix"
python3 - "$T/json" "$id" <<'PY' || fail "show --json content"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["format"] == 1
assert d["run"]["id"] == sys.argv[2] and d["run"]["status"] == "succeeded"
kinds = [e["kind"] for e in d["events"]]
assert kinds[0] == "run.start" and kinds[-1] == "run.end", kinds[:3]
assert [e["seq"] for e in d["events"]] == list(range(1, len(kinds) + 1))
assert kinds.count("node.start") == kinds.count("node.end") == 11, kinds.count("node.start")
PY
ok "show --json"

run_weft "$T/runs" "$T/err" runs
expect_rc 0 "runs"
expect_grep "$T/runs" "^$id +succeeded .* +14 +[0-9]+ +\\\$0.0000 +.*quickstart.lua" "runs lists the run"
run_weft "$T/runsj" "$T/err" runs --json
python3 -c "import json,sys; r=json.load(open('$T/runsj')); assert r[0]['id']=='$id' and r[0]['steps']==14" || fail "runs --json"
ok "runs"
# Secrets in weft's environment never reach workers or tool servers.
cat > "$T/env.lua" <<EOF2
local w = require "weft"
w.mcp_server{ name = "everything", command = { "$WEFT_SRCDIR/node_modules/.bin/mcp-server-everything", "stdio" },
              env = { DECLARED = "yes" } }
return w.tool{ name = "env", server = "everything", tool = "get-env" }
EOF2
OPENAI_API_KEY=sk-test-secret-4242 ANTHROPIC_API_KEY=sk-ant-secret-4242 \
    run_weft "$T/out" "$T/err" run "$T/env.lua" --workers 1 -q
expect_rc 0 "get-env run"
expect_grep "$T/out" '"DECLARED": ?"yes"' "declared env reaches the server"
expect_grep "$T/out" '"PATH"' "PATH reaches the server"
expect_no_grep "$T/out" 'secret-4242' "API keys do not reach tool servers"
if grep -a -q 'secret-4242' "$WEFT_DB"*; then fail "API key in the store"; fi
ok "environment allowlist"
expect_no_orphans
