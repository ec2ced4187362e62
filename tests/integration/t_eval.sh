#!/bin/sh
# weft eval, weft diff and weft gc on real runs: scripted agents calling
# the in-tree MCP test server through workers, and agents on the fake
# model server (tests/fakemodel) whose messages are stored as blobs.
. "$(dirname "$0")/lib.sh"
: "${WEFT_FAKEMODEL:?run through make check}"

# py FILE EXPR...: evaluate Python assertions on a JSON document d.
py() {
	_f=$1
	shift
	python3 - "$_f" "$@" <<'PY'
import json, os, sys
d = json.load(open(sys.argv[1]))
for expr in sys.argv[2:]:
    if not eval(expr):
        print("assertion failed: %s\n%s" % (expr, json.dumps(d, indent=1)[:3000]), file=sys.stderr)
        sys.exit(1)
PY
}

# --- runs to evaluate -------------------------------------------------------
# One agent; its first model turn depends on the input's variant.
{
	echo 'local w = require "weft"'
	testserver_decl
	cat <<'EOF'
local helper = w.agent{ name = "helper", model = "scripted",
  instruction = "Help with {topic}.", output_key = "answer",
  tools = { w.mcp("test", { only = { "echo", "add", "fail" } }) },
  script = function(req, turn)
    local v = req.state.variant
    if turn > 1 then return { text = "done " .. v } end
    if v == "good" or v == "boom" then
      return { tool_calls = { { name = "echo", args = { message = "hi" } },
                              { name = "add", args = { a = 2, b = 3 } } } }
    elseif v == "argdiff" then
      return { tool_calls = { { name = "echo", args = { message = "bye" } },
                              { name = "add", args = { a = 2, b = 3 } } } }
    elseif v == "reversed" then
      return { tool_calls = { { name = "add", args = { a = 2, b = 3 } },
                              { name = "echo", args = { message = "hi" } } } }
    elseif v == "fail" then
      return { tool_calls = { { name = "fail", args = { message = "boom" } } } }
    end
    return { text = "no tools" }
  end }
return w.sequential{ name = "flow", helper,
  w.fn{ name = "finish", function(ctx)
    if ctx.state.variant == "boom" then error("finish refused") end
    return ctx.state.answer
  end } }
EOF
} > "$T/wf.lua"

for v in good argdiff fail none good reversed boom; do
	run_weft "$T/out" "$T/err" run "$T/wf.lua" --workers 1 -q \
	    --input "{\"topic\":\"t\",\"variant\":\"$v\"}"
	if [ $v = boom ]; then expect_rc 1 "run $v"; else expect_rc 0 "run $v"; fi
done
# The two good runs, in order.
R_good=$(sql "SELECT id FROM runs WHERE input LIKE '%\"good\"%' ORDER BY started")
G1=$(echo "$R_good" | sed -n 1p)
G2=$(echo "$R_good" | sed -n 2p)
[ -n "$G1" ] && [ -n "$G2" ] && [ "$G1" != "$G2" ] || fail "two good runs"
run_of() {
	sql "SELECT id FROM runs WHERE input LIKE '%\"$1\"%' ORDER BY started LIMIT 1"
}
ARG=$(run_of argdiff) FAILR=$(run_of fail) NONE=$(run_of none)
REV=$(run_of reversed) BOOM=$(run_of boom)
[ "$(sql "SELECT status FROM runs WHERE id='$BOOM'")" = failed ] || fail "the boom run failed"
ok "seven runs recorded"

# --- make-golden -------------------------------------------------------------
run_weft "$T/golden.json" "$T/err" eval --make-golden "$G1"
expect_rc 0 "make-golden"
py "$T/golden.json" 'd["format"] == 1 and d["match"] == "in_order" and d["args"] == "compare"' \
    'd["success"] is True and "output" not in d' \
    'd["calls"] == [{"tool": "test.echo", "args": {"message": "hi"}}, {"tool": "test.add", "args": {"a": 2, "b": 3}}]' ||
    fail "make-golden content"
run_weft "$T/g2.json" "$T/err" eval --make-golden "$G1" --with-output --match any_order --args subset
py "$T/g2.json" 'd["output"] == "done good" and d["match"] == "any_order" and d["args"] == "subset"' ||
    fail "make-golden --with-output --match --args"
run_weft "$T/g3.json" "$T/err" eval --make-golden "$BOOM"
expect_rc 0 "make-golden from a failed run"
expect_grep "$T/err" "warning: run $BOOM is failed" "make-golden warns about a failed run"
py "$T/g3.json" '"success" not in d' || fail "no success expectation from a failed run"
ok "make-golden writes the run's calls"

# --- eval figures ------------------------------------------------------------
run_weft "$T/out" "$T/err" eval "$G1" "$G2" --golden "$T/golden.json" --min-f1 1
expect_rc 0 "eval of the golden's own runs"
expect_grep "$T/out" "^$G1 +succeeded +2/2 +2 +1\\.000 +1\\.000 +1\\.000 " "table row"
expect_grep "$T/out" '^PASS$' "PASS"
ok "a run scores 1.0 against its own golden file"

run_weft "$T/e.json" "$T/err" eval "$G1" "$ARG" "$FAILR" "$NONE" "$REV" \
    --golden "$T/golden.json" --json
expect_rc 0 "eval --json without --min-f1"
IDS="$G1 $ARG $FAILR $NONE $REV" py "$T/e.json" \
    '[r["run"] for r in d["runs"]] == os.environ["IDS"].split()' \
    '[(r["matched"], r["calls"], r["expected"]) for r in d["runs"]] == [(2,2,2), (1,2,2), (0,1,2), (0,0,2), (1,2,2)]' \
    '[round(r["precision"], 6) for r in d["runs"]] == [1, 0.5, 0, 1, 0.5]' \
    '[round(r["recall"], 6) for r in d["runs"]] == [1, 0.5, 0, 0, 0.5]' \
    '[round(r["f1"], 6) for r in d["runs"]] == [1, 0.5, 0, 0, 0.5]' \
    'round(d["mean"]["f1"], 6) == 0.4 and round(d["mean"]["precision"], 6) == 0.6 and round(d["mean"]["recall"], 6) == 0.4' \
    'd["runs"][1]["missing"] == [{"index": 0, "tool": "test.echo", "args": {"message": "hi"}}]' \
    'd["runs"][1]["extra"] == [{"index": 0, "tool": "test.echo", "path": "flow/helper", "args": {"message": "bye"}}]' \
    'd["runs"][2]["extra"][0]["tool"] == "test.fail"' \
    'd["mean"]["succeeded"] == 5 and d["per_success"]["successes"] == 5 and d["pass"] is True' \
    'd["runs"][0]["steps"] == 4 and d["runs"][0]["tokens"] > 0' ||
    fail "eval figures"
ok "precision, recall and F1 per run and their mean"

# Mean F1 0.4: --min-f1 gates.
run_weft "$T/out" "$T/err" eval "$G1" "$ARG" "$FAILR" "$NONE" "$REV" --golden "$T/golden.json" --min-f1 0.41
expect_rc 1 "mean F1 below --min-f1"
expect_grep "$T/out" '^mean F1 0\.400 < --min-f1 0\.410$' "says why"
expect_grep "$T/out" '^FAIL$' "FAIL"
run_weft "$T/out" "$T/err" eval "$G1" "$ARG" "$FAILR" "$NONE" "$REV" --golden "$T/golden.json" --min-f1 0.4
expect_rc 0 "mean F1 at --min-f1"
ok "--min-f1 sets the exit status"

# Match and argument modes, from the command line and from the file.
f1_of() {	# f1_of RUN ARGS...: the run's F1 against the golden file
	_r=$1
	shift
	"$WEFT" eval "$_r" --json "$@" | python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["runs"][0]["f1"])'
}
[ "$(f1_of "$REV" --golden "$T/golden.json")" = 0.500 ] || fail "in_order on reversed calls"
[ "$(f1_of "$REV" --golden "$T/golden.json" --match any_order)" = 1.000 ] || fail "any_order on reversed calls"
[ "$(f1_of "$REV" --golden "$T/golden.json" --match exact)" = 0.000 ] || fail "exact on reversed calls"
[ "$(f1_of "$ARG" --golden "$T/golden.json" --args ignore)" = 1.000 ] || fail "args ignore"
cat > "$T/bare.json" <<'EOF'
{ "match": "any_order", "args": "subset",
  "calls": [ { "tool": "echo" }, { "tool": "test.add", "args": { "a": 2 } } ] }
EOF
[ "$(f1_of "$ARG" --golden "$T/bare.json")" = 1.000 ] || fail "bare tool name and subset args"
[ "$(f1_of "$FAILR" --golden "$T/bare.json")" = 0.000 ] || fail "bare golden against the fail run"
ok "exact, in_order, any_order; compare, subset, ignore"

# Outcome expectations: success and output.
cat > "$T/outcome.json" <<'EOF'
{ "calls": [ { "tool": "test.echo" }, { "tool": "test.add" } ],
  "success": true, "output_contains": "done good" }
EOF
run_weft "$T/out" "$T/err" eval "$G1" "$BOOM" --golden "$T/outcome.json"
expect_rc 1 "a failed run when the golden file says success"
expect_grep "$T/out" "^$BOOM +failed +2/2 .*FAIL: run did not succeed" "the failed run is named"
run_weft "$T/out" "$T/err" eval "$ARG" --golden "$T/outcome.json"
expect_rc 1 "output_contains not met"
expect_grep "$T/out" 'FAIL: output lacks output_contains' "output check named"
run_weft "$T/out" "$T/err" eval "$G1" "$G2" --golden "$T/g2.json"
expect_rc 0 "exact output expectation met"
ok "success and output expectations"

# Bad usage and bad golden files: exit 2 with the JSON pointer.
bad_golden() {	# bad_golden JSON REGEX WHAT
	printf '%s\n' "$1" > "$T/bad.json"
	run_weft "$T/out" "$T/err" eval "$G1" --golden "$T/bad.json"
	expect_rc 2 "$3"
	expect_grep "$T/err" "$2" "$3: message"
}
bad_golden '{"calls":[{"tool":"a.b"},{"tool":"a.c"},{"tool":7}]}' \
    "bad\\.json: /calls/2/tool: expected string, got number" "tool not a string"
bad_golden '{"calls":[], "mach":"exact"}' "bad\\.json: .*'mach' is not allowed" "unknown field"
bad_golden '{"calls":[], "match":"fuzzy"}' "bad\\.json: /match: .*not one of" "unknown match mode"
bad_golden '{"calls":[{"tool":"a.b","args":[1]}]}' "bad\\.json: /calls/0/args: expected object" "args not an object"
bad_golden '{"match":"exact"}' "bad\\.json: /: missing required property 'calls'" "no calls"
bad_golden '{"calls": [' "bad\\.json:2:0: " "syntax error with line and column"
bad_golden '{"calls": [], "calls": []}' "bad\\.json:.*duplicate" "duplicate key"
run_weft "$T/out" "$T/err" eval "$G1" --golden "$T/nonexistent.json"
expect_rc 2 "missing golden file"
expect_grep "$T/err" "nonexistent\\.json: No such file" "missing file named"
run_weft "$T/out" "$T/err" eval nosuchrun --golden "$T/golden.json"
expect_rc 2 "unknown run"
expect_grep "$T/err" "no run 'nosuchrun'" "unknown run named"
run_weft "$T/out" "$T/err" eval "$G1"
expect_rc 2 "no --golden"
run_weft "$T/out" "$T/err" eval "$G1" --golden "$T/golden.json" --min-f1 1.5
expect_rc 2 "--min-f1 out of range"
run_weft "$T/out" "$T/err" eval "$G1" --golden "$T/golden.json" --match fuzzy
expect_rc 2 "bad --match"
run_weft "$T/out" "$T/err" eval --help
expect_rc 0 "eval --help"
expect_grep "$T/out" 'make-golden' "help text"
ok "bad golden files and bad usage exit 2 with a JSON pointer"

# --- diff ----------------------------------------------------------------------
run_weft "$T/out" "$T/err" diff "$G1" "$G2"
expect_rc 0 "diff of two identical runs"
expect_grep "$T/out" '^identical: 11 steps$' "identical"
expect_no_grep "$T/out" '^=>' "no divergence marked"

run_weft "$T/out" "$T/err" diff "$G1" "$ARG"
expect_rc 1 "diff of runs with different arguments"
expect_grep "$T/out" '^=> +4 +tool test\.echo \{"message":"hi"\} -> ok +\| +tool test\.echo \{"message":"bye"\} -> ok$' "changed row marked"
expect_grep "$T/out" '^first divergence at row 4; 10 same, 1 changed, 0 only in a, 0 only in b$' "summary"
run_weft "$T/out" "$T/err" diff "$G1" "$ARG" --context 1
expect_rc 1 "diff --context"
[ "$(grep -Ec '^(=>|  ) +[0-9]+ ' "$T/out")" = 3 ] || fail "--context 1 shows 3 rows"
expect_grep "$T/out" '^ +\.\.\. 2 same rows$' "rows before elided"
expect_grep "$T/out" '^ +\.\.\. 6 same rows$' "rows after elided"

run_weft "$T/d.json" "$T/err" diff "$G1" "$FAILR" --json
expect_rc 1 "diff --json"
py "$T/d.json" 'd["identical"] is False and d["first_divergence"] == 3' \
    'd["rows"][2]["op"] == "changed" and d["rows"][2]["a"]["detail"] == "tool_use: echo, add" and d["rows"][2]["b"]["detail"] == "tool_use: fail"' \
    '[r["op"] for r in d["rows"][3:6]] == ["only_a", "only_a", "only_b"]' \
    'd["rows"][5]["b"]["name"] == "test.fail" and d["rows"][5]["b"]["detail"] == "error (isError)" and d["rows"][5]["a"] is None' \
    'd["counts"] == {"same": 8, "changed": 1, "only_a": 2, "only_b": 1}' \
    'd["rows"][-1]["a"]["kind"] == "run"' || fail "diff --json content"

run_weft "$T/out" "$T/err" diff "$G1" "$BOOM"
expect_rc 1 "diff against a failed run"
expect_grep "$T/out" '^=> +9 +end finish: succeeded +\| +end finish: failed' "first divergence is where the run failed"
run_weft "$T/out" "$T/err" diff "$G1"
expect_rc 2 "diff needs two runs"
run_weft "$T/out" "$T/err" diff "$G1" nosuchrun
expect_rc 2 "diff with an unknown run"
expect_grep "$T/err" "no run 'nosuchrun'" "unknown run named"
ok "diff: side by side, first divergence, exit status"

# Parallel branches finish in a different order in the two runs; in tree
# order only the sleep arguments differ, nothing is out of place.
{
	echo 'local w = require "weft"'
	testserver_decl
	cat <<'EOF'
local function sleeper(name, slow)
  return w.agent{ name = name, model = "scripted", instruction = "Wait.",
    tools = { w.mcp("test", { only = { "sleep" } }) },
    script = function(req, turn)
      if turn == 1 then
        return { tool_calls = { { name = "sleep",
          args = { ms = (req.state.slow == slow) and 600 or 10 } } } }
      end
      return { text = name .. " woke" }
    end }
end
return w.parallel{ name = "both", sleeper("a", "a"), sleeper("b", "b") }
EOF
} > "$T/par.lua"
run_weft "$T/out" "$T/err" run "$T/par.lua" --workers 2 -q --input '{"slow":"a"}'
expect_rc 0 "parallel run, a slow"
PA=$(last_run)
run_weft "$T/out" "$T/err" run "$T/par.lua" --workers 2 -q --input '{"slow":"b"}'
expect_rc 0 "parallel run, b slow"
PB=$(last_run)
# The recording order really differs: which agent answered last.
last_agent() {
	sql "SELECT node_path FROM events WHERE run_id='$1' AND kind='model.call' ORDER BY seq DESC LIMIT 1"
}
[ "$(last_agent "$PA")" = both/a ] && [ "$(last_agent "$PB")" = both/b ] ||
    fail "the branches did not finish in opposite orders"
run_weft "$T/d.json" "$T/err" diff "$PA" "$PB" --json
expect_rc 1 "parallel runs differ in arguments"
py "$T/d.json" 'd["counts"]["only_a"] == 0 and d["counts"]["only_b"] == 0' \
    'd["counts"]["changed"] == 2' \
    '[r["a"]["name"] for r in d["rows"] if r["op"] == "changed"] == ["test.sleep", "test.sleep"]' ||
    fail "parallel branches aligned in tree order"
ok "diff aligns parallel branches whatever order they finished in"

# --- gc --------------------------------------------------------------------------
# A fresh store: four runs on the fake model.  Their system message is the
# same (one shared blob); user messages and raw answers are their own.
export WEFT_DB="$T/gc.db"
export OPENAI_API_KEY=sk-test-gc
start_fake '{"gpt-test": [{"text":"one"},{"text":"two"},{"text":"three"},{"text":"four"}]}'
cat > "$T/m.lua" <<'EOF'
local w = require "weft"
return w.agent{ name = "helper", model = "openai:gpt-test", instruction = "Answer.", output_key = "answer" }
EOF
for t in one two three four; do
	run_weft "$T/out" "$T/err" run "$T/m.lua" -q --input "{\"topic\":\"$t\"}"
	expect_rc 0 "model run $t"
done
stop_fake
M1=$(sql "SELECT id FROM runs WHERE input LIKE '%one%'")
M2=$(sql "SELECT id FROM runs WHERE input LIKE '%two%'")
M3=$(sql "SELECT id FROM runs WHERE input LIKE '%three%'")
M4=$(sql "SELECT id FROM runs WHERE input LIKE '%four%'")
# Age the first two by 40 days and the third by 10 (started is what gc reads).
sql "UPDATE runs SET started = started - 40*86400 WHERE id IN ('$M1', '$M2');
     UPDATE runs SET started = started - 10*86400 WHERE id = '$M3'"
# A run that is still running, older than all of them.
sql "INSERT INTO runs (id, workflow, status, started, ended, steps, tokens, cost)
     VALUES ('feedfacefeedface', 'live.lua', 'running', $(date +%s) - 90*86400, 0, 0, 0, 0)"
[ "$(sql "SELECT count(*) FROM blobs")" = 9 ] || fail "9 blobs: 1 shared system message, 4 user messages, 4 raw answers"

# blobs_check WHAT: the blobs left are exactly those the remaining events name.
blobs_check() {
	python3 - "$WEFT_DB" <<'PY' || fail "$1: blobs are not exactly the referenced ones"
import json, re, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
refs, named = set(), set()
def walk(v):
    if isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v): refs.add(v)
    elif isinstance(v, list): [walk(x) for x in v]
    elif isinstance(v, dict): [walk(x) for x in v.values()]
for (k, p) in db.execute("SELECT kind, payload FROM events WHERE payload IS NOT NULL"):
    p = json.loads(p)
    walk(p)
    if k == "model.request": named.update(p["messages"])
    if k == "model.response": named.add(p["raw"])
have = {h for (h,) in db.execute("SELECT hash FROM blobs")}
# Every blob left is referenced, and every blob a model event names is left.
assert have <= refs, sorted(have - refs)
assert named <= have, sorted(named - have)
PY
}

before=$(sql "SELECT count(*) FROM events")
run_weft "$T/out" "$T/err" gc --older-than 30d --dry-run
expect_rc 0 "gc --dry-run"
expect_grep "$T/out" "^would delete run $M1 " "dry run lists $M1"
expect_grep "$T/out" "^would delete run $M2 " "dry run lists $M2"
expect_no_grep "$T/out" "$M3|$M4|feedface" "dry run spares the rest"
expect_grep "$T/out" '^would delete 2 runs, [1-9][0-9]* events, 0 tasks, 4 blobs \([0-9]+ bytes\)$' "dry run counts"
expect_grep "$T/out" '^kept 1 selected run\(s\) that have not finished \(running, paused or waiting\)$' "the running run is reported kept"
[ "$(sql "SELECT count(*) FROM runs")" = 5 ] && [ "$(sql "SELECT count(*) FROM events")" = "$before" ] &&
    [ "$(sql "SELECT count(*) FROM blobs")" = 9 ] || fail "dry run deleted something"
ok "gc --dry-run reports and deletes nothing"

ev12=$(sql "SELECT count(*) FROM events WHERE run_id IN ('$M1', '$M2')")
run_weft "$T/g.json" "$T/err" gc --older-than 30d --json
expect_rc 0 "gc --older-than 30d"
py "$T/g.json" "sorted(d['runs']) == sorted(['$M1', '$M2'])" "d['events'] == $ev12" \
    'd["blobs"] == 4 and d["blob_bytes"] > 0 and d["kept_live"] == 1 and d["dry_run"] is False' ||
    fail "gc report"
[ "$(sql "SELECT group_concat(id) FROM (SELECT id FROM runs ORDER BY id)")" = \
    "$(printf '%s\n' "$M3" "$M4" feedfacefeedface | sort | paste -sd,)" ] || fail "exactly M1 and M2 deleted"
[ "$(sql "SELECT count(*) FROM events WHERE run_id IN ('$M1', '$M2')")" = 0 ] || fail "their events deleted"
[ "$(sql "SELECT count(*) FROM blobs")" = 5 ] || fail "5 blobs left: the shared one and two per remaining run"
blobs_check "after --older-than"
# The shared system message is still readable by the remaining runs.
sql "SELECT count(*) FROM blobs WHERE CAST(data AS TEXT) LIKE '%\"Answer.\"%'" | grep -qx 1 || fail "shared blob kept"
ok "gc --older-than deletes exactly the old runs and their own blobs"

run_weft "$T/out" "$T/err" gc --keep 1 --vacuum
expect_rc 0 "gc --keep 1"
expect_grep "$T/out" "^deleted run $M3 " "keep 1 deletes the older run"
expect_grep "$T/out" '^deleted 1 runs, [0-9]+ events, 0 tasks, 2 blobs' "counts"
expect_grep "$T/out" '^vacuum: database [0-9]+ -> [0-9]+ bytes$' "vacuum"
[ "$(sql "SELECT group_concat(id) FROM (SELECT id FROM runs ORDER BY id)")" = \
    "$(printf '%s\n' "$M4" feedfacefeedface | sort | paste -sd,)" ] || fail "M4 and the running run left"
blobs_check "after --keep"
[ "$(sql "SELECT count(*) FROM blobs")" = 3 ] || fail "3 blobs left"
run_weft "$T/out" "$T/err" gc --keep 0
expect_rc 0 "gc --keep 0"
[ "$(sql "SELECT id FROM runs")" = feedfacefeedface ] || fail "only the running run survives --keep 0"
[ "$(sql "SELECT count(*) FROM blobs")" = 0 ] || fail "no blob left"
ok "gc --keep, --vacuum, and a running run is never deleted"

# Child runs go with their top-level run; a live child keeps its tree; a
# child whose parent is gone counts as top-level; a status gc does not know
# as finished is kept.
old=$(($(date +%s) - 5 * 86400))
sql "INSERT INTO runs (id, status, parent_run, started) VALUES
       ('aaaa000000000001', 'succeeded', NULL, $old),
       ('aaaa000000000002', 'running', 'aaaa000000000001', $old),
       ('bbbb000000000001', 'failed', NULL, $old),
       ('bbbb000000000002', 'succeeded', 'bbbb000000000001', $(date +%s)),
       ('cccc000000000001', 'succeeded', 'gone000000000000', $old),
       ('dddd000000000001', 'some_future_status', NULL, $old);
     INSERT INTO events (run_id, seq, kind) VALUES ('bbbb000000000002', 1, 'run.start'),
       ('aaaa000000000002', 1, 'run.start')"
run_weft "$T/g.json" "$T/err" gc --older-than 1d --json
expect_rc 0 "gc of run trees"
py "$T/g.json" 'sorted(d["runs"]) == ["bbbb000000000001", "bbbb000000000002", "cccc000000000001"]' \
    'd["events"] == 1 and d["kept_live"] == 3' || fail "gc of run trees: report"
[ "$(sql "SELECT group_concat(id) FROM (SELECT id FROM runs ORDER BY id)")" = \
    aaaa000000000001,aaaa000000000002,dddd000000000001,feedfacefeedface ] ||
    fail "the tree with a running child, and a run of unknown status, are kept"
ok "gc deletes child runs with their parent; keeps a tree with a live run and unknown statuses"

# A real run in progress is not touched either: a tool that waits for
# $T/nap.go, made only after gc ran.
export WEFT_DB="$T/live.db"
{
	echo 'local w = require "weft"'
	printf 'w.mcp_server{ name = "test", command = { "%s" }, sandbox = { read = { "%s" } } }\n' \
	    "$WEFT_TESTSERVER" "$T"
	printf 'return w.tool{ name = "nap", server = "test", tool = "sleep", args = { ms = 0, ["until"] = "%s" } }\n' "$T/nap.go"
} > "$T/nap.lua"
"$WEFT" run "$T/nap.lua" --workers 1 -q > "$T/nap.out" 2>&1 &
NAP=$!
wait_until "the nap run's tool call" sql_is "SELECT count(*) FROM events WHERE kind='tool.call'" 1
run_weft "$T/out" "$T/err" gc --keep 0
expect_rc 0 "gc while a run is in progress"
expect_grep "$T/out" '^deleted 0 runs' "nothing deleted"
expect_grep "$T/out" '^kept 1 selected' "the live run kept"
: > "$T/nap.go"
wait $NAP || fail "the nap run failed after gc"
[ "$(sql "SELECT status FROM runs")" = succeeded ] || fail "the nap run finished"
run_weft "$T/out" "$T/err" gc --keep 0
expect_rc 0 "gc after it finished"
[ "$(sql "SELECT count(*) FROM runs")" = 0 ] || fail "finished run deleted"
ok "gc leaves a run in progress alone"

run_weft "$T/out" "$T/err" gc
expect_rc 2 "gc with no criterion"
expect_grep "$T/err" 'needs --older-than or --keep' "says what is missing"
run_weft "$T/out" "$T/err" gc --older-than 30
expect_rc 2 "age without a unit"
run_weft "$T/out" "$T/err" gc --keep -1
expect_rc 2 "negative keep"
run_weft "$T/out" "$T/err" gc --help
expect_rc 0 "gc --help"
ok "gc usage errors"
expect_no_orphans
