#!/bin/sh
# w.map (docs/workflows.md): a fan-out over a list known only at run time,
# at most `concurrency` items at once, outputs in item order; {item} and
# {index} in each branch; on_error fail and collect; the items' writes
# merged by reducers; load-time errors; a coordinator killed with -9 in the
# middle of a map resumes without making any recorded call again, and the
# resumed run replays identically.
. "$(dirname "$0")/lib.sh"

# --- outputs in item order, the concurrency limit --------------------------
{
	echo 'local w = require "weft"'
	printf 'w.mcp_server{ name = "test", command = { "%s", "--log", "%s/calls.log" }, sandbox = { write = { "%s" } } }\n' \
	    "$WEFT_TESTSERVER" "$T" "$T"
	cat <<'EOF2'
return w.sequential{ name = "wf",
  w.fn{ name = "seed", function(ctx)
    local l = {}
    for i = 1, 12 do l[i] = { n = i } end
    ctx.state.things = l
  end },
  w.map{ name = "fan", over = "things", concurrency = 3, output_key = "out",
    w.sequential{ name = "one",
      w.tool{ name = "ping", server = "test", tool = "echo", args = { message = "n{item.n}-i{index}" } } } },
}
EOF2
} > "$T/order.lua"
run_weft "$T/out" "$T/err" run "$T/order.lua" --json
expect_rc 0 "map run"
python3 - "$T/out" <<'PY' || fail "map output"
import json, sys
r = json.load(open(sys.argv[1]))
want = ["Echo: n%d-i%d" % (i, i) for i in range(1, 13)]
assert r["output"] == want, r["output"]
PY
id=$(last_run)
# At most 3 items between their node.start and node.end at any moment,
# and 3 reached (12 items, each waiting on a worker).
python3 - "$WEFT_DB" "$id" <<'PY' || fail "concurrency limit"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
cur, peak, paths = 0, 0, set()
for kind, path in con.execute("SELECT kind, node_path FROM events WHERE run_id=? "
        "AND kind IN ('node.start','node.end') ORDER BY seq", (sys.argv[2],)):
    seg = path.split("/")
    if len(seg) == 4 and seg[1] == "fan":
        paths.add(path)
        cur += 1 if kind == "node.start" else -1
        peak = max(peak, cur)
assert peak == 3, "peak %d" % peak
assert paths == {"wf/fan/%d/one" % i for i in range(1, 13)}, sorted(paths)
PY
[ "$(grep -c '^echo ' "$T/calls.log")" = 12 ] || fail "12 calls made"
run_weft "$T/out" "$T/err" replay "$id"
expect_rc 0 "replay of the map"
expect_grep "$T/out" "^identical: 13 recorded steps" "replay identical"
ok "map: outputs in item order, {item} and {index}, at most 3 at once, replay identical"

# --- over = function, as, on_error, reducers -------------------------------
cat > "$T/errs.lua" <<'EOF2'
local w = require "weft"
return w.sequential{ name = "wf",
  w.map{ name = "m", over = function(state) return { 1, 2, 3, 4 } end, as = "x",
    on_error = "collect", output_key = "res", reducers = { seen = "append" },
    w.fn{ name = "f", function(ctx)
      ctx.state.seen = { ctx.state.x * 10 }
      if ctx.state.x == 3 then error("three is bad") end
      return ctx.state.x + ctx.state.index
    end } },
  w.fn{ name = "out", function(ctx)
    local r = ctx.state.res
    return { r[1], r[2], r[3].error ~= nil, r[4], ctx.state.seen }
  end },
}
EOF2
run_weft "$T/out" "$T/err" run "$T/errs.lua" --json
expect_rc 0 "on_error collect"
python3 - "$T/out" <<'PY' || fail "collect output"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["output"] == [2, 4, True, 8, [10, 20, 40]], r["output"]
PY
sed -e 's/on_error = "collect"/concurrency = 1/' "$T/errs.lua" > "$T/fail.lua"
run_weft "$T/out" "$T/err" run "$T/fail.lua"
expect_rc 1 "on_error fail"
expect_grep "$T/err" "three is bad" "the item's error"
id=$(last_run)
# concurrency 1: the item after the failed one never started
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='node.start' AND node_path='wf/m/4/f'")" = 0 ] ||
    fail "an item started after a failure"
sed -e 's/reducers = { seen = "append" },//' "$T/errs.lua" > "$T/conflict.lua"
run_weft "$T/out" "$T/err" run "$T/conflict.lua"
expect_rc 1 "writes without a reducer"
expect_grep "$T/err" "'f/1' and 'f/2' both wrote 'seen'" "conflict names both items"
ok "map: over = function, as, on_error collect and fail, reducers, conflicts named"

# --- load-time errors ---------------------------------------------------------
bad() {
	printf 'local w = require "weft"\nreturn w.map{ name = "m", %s }\n' "$1" > "$T/bad.lua"
	run_weft "$T/out" "$T/err" validate "$T/bad.lua"
	expect_rc 2 "bad map: $1"
	expect_grep "$T/err" "bad.lua:2: $2" "bad map: $1"
}
bad 'w.fn{ function() end }' "map 'm' needs over"
bad 'over = "xs", on_error = "skip", w.fn{ function() end }' "map 'm': on_error must be \"fail\" or \"collect\", got 'skip'"
bad 'over = "xs", concurrency = 0, w.fn{ function() end }' "map 'm': concurrency must be a positive integer"
bad 'over = "xs"' "map 'm' needs exactly one node"
bad 'over = "xs", concurrenc = 2, w.fn{ function() end }' "unknown field 'concurrenc' in map 'm' \(did you mean 'concurrency'\?\)"
printf 'local w = require "weft"\nreturn w.map{ name = "m", over = "xs", w.fn{ function() end } }\n' > "$T/bad.lua"
run_weft "$T/out" "$T/err" run "$T/bad.lua" --input '{"xs": {"a": 1}}'
expect_rc 1 "over an object"
expect_grep "$T/err" "map 'm': over: the value is an object, not a list" "over an object"
run_weft "$T/out" "$T/err" run "$T/bad.lua"
expect_grep "$T/err" "over: state key 'xs' is missing" "over a missing key"
ok "map: load-time and run-time errors name the map"

# --- kill -9 in the middle of a map, resume, replay ----------------------------
# Six items, two at a time.  Items 3 and 4 call `sleep` for ten minutes;
# the test waits for both to have started (their marker files), so items 1
# and 2 have ended and 5 and 6 cannot have started, then kills the
# coordinator.  The resume answers items 1-4's recorded calls from the
# store and makes only the sleeps that were in flight (their `once` file
# now makes them answer at once) and the calls of items 5 and 6.
{
	echo 'local w = require "weft"'
	printf 'w.mcp_server{ name = "test", command = { "%s", "--log", "%s/kill.log" }, sandbox = { write = { "%s" } } }\n' \
	    "$WEFT_TESTSERVER" "$T" "$T"
	printf 'local T = "%s"\n' "$T"
	cat <<'EOF2'
local function turn(req)
  local last = req.messages[#req.messages]
  if last.role == "tool" then return { text = "done " .. req.state.item } end
  local i = req.state.index
  local ms = (i == 3 or i == 4) and 600000 or 0
  return { tool_calls = {
    { name = "echo", args = { message = req.state.item } },
    { name = "sleep", args = { ms = ms, marker = T .. "/marker" .. i, once = T .. "/once" .. i } } } }
end
return w.sequential{ name = "wf",
  w.map{ name = "fan", over = "items", concurrency = 2, output_key = "out",
    w.agent{ name = "worker", model = "scripted", script = turn,
             instruction = "Work on {item} ({index})", tools = { w.mcp("test") } } },
  w.fn{ name = "join", function(ctx) return table.concat(ctx.state.out, ",") end },
}
EOF2
} > "$T/kill.lua"
: > "$T/kill.log"
"$WEFT" run "$T/kill.lua" --input '{"items":["a","b","c","d","e","f"]}' --workers 2 -q \
    >"$T/out" 2>"$T/err" &
pid=$!
i=0
until [ -s "$T/marker3" ] && [ -s "$T/marker4" ]; do
	i=$((i + 1))
	[ $i -lt 600 ] || { kill -9 "$pid"; fail "items 3 and 4 never started"; }
	sleep 0.05
done
kill -9 "$pid"
wait "$pid" 2>/dev/null
id=$(last_run)
[ "$(sql "SELECT status FROM runs WHERE id='$id'")" = running ] || fail "killed run not left running"
for k in 5 6; do
	[ ! -e "$T/marker$k" ] || fail "item $k started before the kill"
done
run_weft "$T/out" "$T/err" resume "$id" --workers 2 -q
expect_rc 0 "resume after kill -9 mid-map"
[ "$(sql "SELECT json_extract(output, '\$') FROM runs WHERE id='$id'")" = \
    "done a,done b,done c,done d,done e,done f" ] || fail "resumed output"
for m in a b c d e f; do
	[ "$(grep -c "^echo {\"message\":\"$m\"}" "$T/kill.log")" = 1 ] ||
	    { cat "$T/kill.log" >&2; fail "echo $m made $(grep -c "\"$m\"" "$T/kill.log") times"; }
done
# the two sleeps in flight at the kill were made again, no other one
[ "$(grep -c '^sleep ' "$T/kill.log")" = 8 ] || { cat "$T/kill.log" >&2; fail "sleep calls"; }
run_weft "$T/out" "$T/err" replay "$id"
expect_rc 0 "replay of the resumed map"
expect_grep "$T/out" "^identical:" "replay of the resumed map identical"
expect_no_orphans
ok "map: kill -9 with items 3 and 4 in flight, resumed without repeating a recorded call, replay identical"

# --- examples/mapreduce.lua, scripted turns from a JSON file -------------------
run_weft "$T/out" "$T/err" run "$WEFT_SRCDIR/examples/mapreduce.lua" --input '{"topic":"tides"}' --json
expect_rc 0 "examples/mapreduce.lua"
python3 - "$T/out" <<'PY' || fail "mapreduce output"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["output"] == "Report: three questions researched, three notes combined.", r["output"]
PY
id=$(last_run)
notes=$(sql "SELECT json_extract(payload, '\$.value') FROM events WHERE run_id='$id' AND kind='state.write' AND json_extract(payload, '\$.key')='notes'")
[ "$notes" = '["Note 1: about '"'"'What causes tides?'"'"'.","Note 2: about '"'"'How are tides measured?'"'"'.","Note 3: about '"'"'Where are tides largest?'"'"'."]' ] ||
    fail "notes in question order: $notes"
run_weft "$T/out" "$T/err" replay "$id"
expect_rc 0 "replay of the example"
ok "examples/mapreduce.lua runs offline, notes in question order, replay identical"

script_file() {
	printf 'local w = require "weft"\nreturn w.agent{ name = "a", model = "scripted",\n  script = "%s" }\n' "$1" > "$T/sf.lua"
}
script_file turns.json
printf '[{"text": "from the file"}, {"tool_calls": [{"name": "x"}]}]' > "$T/turns.json"
run_weft "$T/out" "$T/err" run "$T/sf.lua"
expect_rc 0 "script file"
expect_grep "$T/out" "^from the file$" "turn from the file"
printf '[{"text": "a"}, {"tool_calls": [{"args": {}}]}]' > "$T/turns.json"
run_weft "$T/out" "$T/err" validate "$T/sf.lua"
expect_rc 2 "script file: a call without a name"
expect_grep "$T/err" "sf.lua:2: agent 'a': script turn 2, tool call 1 needs a name" "bad turn named"
printf '[{"text": "a"},' > "$T/turns.json"
run_weft "$T/out" "$T/err" validate "$T/sf.lua"
expect_rc 2 "script file: not JSON"
expect_grep "$T/err" "sf.lua:2: agent 'a': script file turns.json is not JSON: line 1" "bad JSON named"
script_file nowhere.json
run_weft "$T/out" "$T/err" validate "$T/sf.lua"
expect_rc 2 "script file: missing"
expect_grep "$T/err" "sf.lua:2: agent 'a': script file: .*nowhere.json: No such file" "missing file named"
ok "script = \"turns.json\": turns from a JSON file, its errors named"
