#!/bin/sh
# Durable runs (docs/durability.md): the kill sweep (the coordinator killed
# at every pass of every crash point, then `weft resume`), kill -9 from
# outside, resume refusals, resume twice, offline replay (identical,
# divergence, edited script, a parallel wider than the 64 branches an
# offline replay runs at a time) and fork; resume and fork report, stop and
# fail as weft run does (one lifecycle, engine/exec.c).  Agents run on the
# fake model server, tools on the in-tree MCP test server; both log every
# request, so the test checks that no completed call was ever made twice.
. "$(dirname "$0")/lib.sh"
: "${WEFT_FAKEMODEL:?run through make check}"
export OPENAI_API_KEY=sk-test

# Each agent has its own model; a turn is chosen by what the conversation
# holds (match), so a repeated request gets the same answer.  Three copies
# of each turn: a call in flight at a crash may be asked again (twice when
# the resume is killed too).
# STALL: milliseconds each answer waits.
STALL=0
turns() {
	t2="{\"match\": \"Echo: $1-ping\", \"text\": \"$2\", \"stall_ms\": $STALL}"
	t1="{\"match\": \"task-$1\", \"tool_calls\": [{\"name\": \"echo\", \"args\": {\"message\": \"$1-ping\"}}], \"stall_ms\": $STALL}"
	printf '"%s": [%s, %s, %s, %s, %s, %s]' "$1" "$t2" "$t2" "$t2" "$t1" "$t1" "$t1"
}
script() {
	echo "{ $(turns m1 'm1 says alpha'), $(turns m2 'm2 says beta'), $(turns m3 'final: alpha+beta') }"
}

{
	echo 'local w = require "weft"'
	printf 'w.mcp_server{ name = "test", command = { "%s", "--log", "%s/calls.log" }, sandbox = { write = { "%s" } } }\n' \
	    "$WEFT_TESTSERVER" "$T" "$T"
	cat <<'EOF2'
local function agent(name, model, out, instr)
  return w.agent{ name = name, model = "openai:" .. model, instruction = instr, output_key = out,
    tools = { w.mcp("test", { only = { "echo" } }) }, stream = false }
end
return w.sequential{ name = "sweep",
  w.fn{ name = "seed", function(ctx) ctx.state.lucky = w.random(1, 1000000) end },
  w.parallel{ name = "research",
    agent("a1", "m1", "r1", "task-m1: research {topic}"),
    agent("a2", "m2", "r2", "task-m2: research {topic}") },
  agent("a3", "m3", "final", "task-m3: combine {r1} and {r2}"),
  w.fn{ name = "out", function(ctx) return ctx.state.final .. " #" .. ctx.state.lucky end },
}
EOF2
} > "$T/wf.lua"

# fresh: a new fake model server (fresh turn queues) and empty call logs.
fresh() {
	start_fake "$(script)"
	rm -f "$T/calls.log"
	: > "$T/calls.log"
}

# check_run ID WHAT: the run succeeded with the uncrashed answer, its
# random number is the one recorded before the crash, and every call was
# made at most once per coordinator that ran before its result was
# recorded (exactly once if the first one recorded it).
check_run() {
	out=$(sql "SELECT json_extract(output, '\$') FROM runs WHERE id='$1'")
	st=$(sql "SELECT status FROM runs WHERE id='$1'")
	[ "$st" = succeeded ] || fail "$2: run $1 is $st"
	lucky=$(sql "SELECT json_extract(payload, '\$.value') FROM events WHERE run_id='$1' AND kind='random' ORDER BY seq LIMIT 1")
	[ "$out" = "final: alpha+beta #$lucky" ] || fail "$2: answer '$out' (random $lucky)"
	# Calls answered from the record count as the original did.
	totals="SELECT tokens || ' ' || steps || ' ' || spend FROM runs WHERE id"
	[ -z "${base:-}" ] || [ "$(sql "$totals='$1'")" = "$(sql "$totals='$base'")" ] ||
	    fail "$2: totals '$(sql "$totals='$1'")', uncrashed '$(sql "$totals='$base'")'"
	python3 - "$WEFT_DB" "$1" "$T/fake.log" "$T/calls.log" "$2" <<'PY' || fail "$2: calls repeated"
import json, sqlite3, sys
db, run, fakelog, calllog, what = sys.argv[1:]
con = sqlite3.connect(db)
ev = con.execute("SELECT seq, kind, node_path, payload FROM events WHERE run_id=? ORDER BY seq", (run,)).fetchall()
seg, first_done = 0, {}
for seq, kind, path, payload in ev:
    if kind in ("run.start", "run.resume"):
        seg += 1
        continue
    agent = path.rsplit("/", 1)[-1]
    p = json.loads(payload) if payload else {}
    if kind == "model.response":
        # turn 1 asks for the tool, turn 2 answers
        key = ("model", "m" + agent[1:], 1 if p["response"].get("tool_calls") else 2)
    elif kind == "tool.result":
        key = ("tool", "m" + agent[1:])
    else:
        continue
    first_done.setdefault(key, seg)
seen = {}
for line in open(fakelog):
    r = json.loads(line)
    body = json.dumps(r["body"])
    key = ("model", r["model"], 2 if "Echo: %s-ping" % r["model"] in body else 1)
    seen[key] = seen.get(key, 0) + 1
for line in open(calllog):
    name, args = line.split(" ", 1)
    if name == "echo":
        key = ("tool", json.loads(args)["message"].split("-")[0])
        seen[key] = seen.get(key, 0) + 1
bad = []
for key, k in first_done.items():
    n = seen.get(key, 0)
    if n < 1 or n > k:
        bad.append("%s: made %d times, first recorded by coordinator %d" % (key, n, k))
for key in seen:
    if key not in first_done:
        bad.append("%s: made but never recorded" % (key,))
if len(first_done) != 9:
    bad.append("%d calls recorded, expected 9" % len(first_done))
if bad:
    print(what + ":\n  " + "\n  ".join(bad), file=sys.stderr)
    sys.exit(1)
PY
}

# --- an uncrashed run -----------------------------------------------------
fresh
run_weft "$T/out" "$T/err" run "$T/wf.lua" --input '{"topic":"tides"}' --workers 2 -q
expect_rc 0 "uncrashed run"
base=$(last_run)
check_run "$base" "uncrashed run"
ok "uncrashed run: 6 model calls, 3 tool calls, each once"

# --- the kill sweep -------------------------------------------------------
sweeps=0
for point in coord.after_dispatch coord.after_result store.before_commit \
    store.after_commit blob.mid_write; do
	n=1
	while :; do
		fresh
		WEFT_FAULT=$point:$n run_weft "$T/out" "$T/err" run "$T/wf.lua" \
		    --input '{"topic":"tides"}' --workers 2 -q
		if [ "$RC" -eq 0 ]; then
			# Fewer than n passes: the run finished uncrashed.
			break
		fi
		[ "$RC" -eq 137 ] || { cat "$T/err" >&2; fail "$point:$n: exit $RC, expected SIGKILL"; }
		expect_grep "$T/err" "crash at $point" "$point:$n crashed there"
		id=$(last_run)
		st=$(sql "SELECT status FROM runs WHERE id='$id'")
		if [ "$st" = running ]; then
			run_weft "$T/out" "$T/err" resume "$id" --workers 2 -q
			expect_rc 0 "$point:$n: resume"
		else
			# Killed after the commit of its end: nothing to do.
			[ "$st" = succeeded ] || fail "$point:$n: a killed run is $st"
			run_weft "$T/out" "$T/err" resume "$id"
			expect_rc 1 "$point:$n: resume of the ended run"
		fi
		check_run "$id" "$point:$n"
		sweeps=$((sweeps + 1))
		n=$((n + 1))
		[ $n -le 60 ] || fail "$point: still crashing after 60 passes"
	done
	[ $n -gt 1 ] || fail "$point: never reached"
	ok "$point: killed at passes 1..$((n - 1)), each resumed to the same answer, no completed call repeated"
done
ok "kill sweep: $sweeps crashes resumed"

# --- kill -9 from outside, at random moments ------------------------------
killed=0
STALL=60	# a run takes about 0.25 s
delays=
for k in 1 2 3 4 5; do
	# a random moment in the run's first 0.3 s (printed, to reproduce)
	ms=$((10 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 290))
	delay=$(printf '0.%03d' "$ms")
	delays="$delays $delay"
	fresh
	before=$(last_run)
	"$WEFT" run "$T/wf.lua" --input '{"topic":"tides"}' --workers 2 -q \
	    >"$T/out" 2>"$T/err" &
	pid=$!
	sleep "$delay"
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	id=$(last_run)
	# Killed before its run row existed: nothing was recorded or made.
	[ "$id" != "$before" ] || continue
	st=$(sql "SELECT status FROM runs WHERE id='$id'")
	if [ "$st" = running ]; then
		killed=$((killed + 1))
		run_weft "$T/out" "$T/err" resume "$id" --workers 2 -q
		expect_rc 0 "kill -9 after ${delay}s: resume"
	fi
	check_run "$id" "kill -9 after ${delay}s"
done
STALL=0
ok "kill -9 of the coordinator from outside after$delays s ($killed of 5 mid-run): resumed to the same answer"

# --- refusals -------------------------------------------------------------
run_weft "$T/out" "$T/err" resume "$base"
expect_rc 1 "resume of a succeeded run"
expect_grep "$T/err" "run $base succeeded: there is nothing to resume" "succeeded run refused"
fresh
start_fake "{ \"m1\": [{\"text\": \"slow\", \"stall_ms\": 3000}], \"*\": [{\"text\": \"x\"}] }"
"$WEFT" run "$T/wf.lua" --input '{"topic":"tides"}' --workers 1 -q >"$T/out" 2>"$T/err" &
pid=$!
i=0
until [ "$(sql "SELECT count(*) FROM events e JOIN runs r ON r.id = e.run_id WHERE r.status='running' AND e.kind='model.request'" 2>/dev/null)" -ge 1 ]; do
	i=$((i + 1)); [ $i -lt 200 ] || fail "the slow run never called its model"; sleep 0.05
done
id=$(last_run)
run_weft "$T/out2" "$T/err2" resume "$id"
[ "$RC" -eq 1 ] || fail "resume of a live run: exit $RC"
expect_grep "$T/err2" "run $id is still running \(its coordinator, pid $pid, is alive\)" "live run refused"
kill -9 "$pid"; wait "$pid" 2>/dev/null
ok "resume refuses a succeeded run and a run whose coordinator is alive"

# --- replay of a crashed run: its record ends at the crash -------------------
fresh
WEFT_FAULT=coord.after_result:3 run_weft "$T/out" "$T/err" run "$T/wf.lua" --input '{"topic":"tides"}' --workers 2 -q
expect_rc 137 "crash for replay"
id=$(last_run)
run_weft "$T/out" "$T/err" replay "$id"
expect_rc 1 "replay of a crashed run"
expect_grep "$T/out" "^run $id diverges from its record" "crashed run diverges"
expect_grep "$T/out" "record: (no such call \(the record ends before it\)|the call, with no outcome \(in flight when the run stopped\))" "where the record ends"
[ "$(sql "SELECT status FROM runs WHERE id='$id'")" = running ] || fail "replay changed the run"
run_weft "$T/out" "$T/err" resume "$id" --workers 2 -q
expect_rc 0 "resume after the replay"
check_run "$id" "replay, then resume"
ok "replay of a crashed run reports where its record ends; resume finishes it"

# --- a run started with a relative path, resumed from elsewhere --------------
fresh
RC=0
(cd "$T" && WEFT_FAULT=coord.after_result:2 "$WEFT" run wf.lua --input '{"topic":"tides"}' --workers 2 -q) >"$T/out" 2>"$T/err" || RC=$?
expect_rc 137 "crash of a relative-path run"
id=$(last_run)
RC=0
(cd / && "$WEFT" resume "$id" --workers 2 -q) >"$T/out" 2>"$T/err" || RC=$?
expect_rc 0 "resume from another directory"
check_run "$id" "relative path"
ok "a relative workflow path is found from the directory the run started in"

# --- resume twice: the resume itself is killed, then resumed ------------------
fresh
WEFT_FAULT=coord.after_result:2 run_weft "$T/out" "$T/err" run "$T/wf.lua" --input '{"topic":"tides"}' --workers 2 -q
expect_rc 137 "first crash"
id=$(last_run)
WEFT_FAULT=coord.after_result:2 run_weft "$T/out" "$T/err" resume "$id" --workers 2 -q
expect_rc 137 "the resume crashed too"
run_weft "$T/out" "$T/err" resume "$id" --workers 2 -q
expect_rc 0 "second resume"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='run.resume'")" = 2 ] || fail "two run.resume events"
sql "SELECT seq FROM events WHERE run_id='$id' ORDER BY seq" > "$T/seqs"
awk 'NR != $1 { exit 1 }' "$T/seqs" || fail "seqs of a twice-resumed run are not 1..N"
check_run "$id" "resume twice"
[ "$(sql "SELECT count(*) = count(DISTINCT json_extract(payload, '\$.task')) FROM events WHERE run_id='$id' AND kind IN ('tool.call', 'tool.list')")" = 1 ] ||
    fail "a resume reused a task id (and so an idempotency key)"
[ "$(sql "SELECT count(*) = count(DISTINCT span_id) FROM events WHERE run_id='$id' AND kind = 'node.start'")" = 1 ] ||
    fail "a resume reused span ids (weft show would mix its nodes with the crashed ones)"
answered=$(sql "SELECT json_extract(payload, '\$.answered_from_record') FROM events WHERE run_id='$id' AND kind='run.end'")
[ "$answered" -ge 1 ] || fail "run.end counts no answered step"
ok "resume twice: the same answer, seqs continue, run.resume recorded each time"

# --- replay -----------------------------------------------------------------
run_weft "$T/out" "$T/err" replay "$id"
expect_rc 0 "replay of the resumed run"
expect_grep "$T/out" "^identical: 11 recorded steps" "identical (9 calls, the tool list, w.random)"
n=$(sql "SELECT count(*) FROM events")
stop_fake
run_weft "$T/out" "$T/err" replay "$base" --json
expect_rc 0 "replay with the model server gone"
expect_grep "$T/out" '"identical": true' "identical offline"
[ "$(sql "SELECT count(*) FROM events")" = "$n" ] || fail "replay wrote events"
sed 's/task-m3: combine {r1} and {r2}/task-m3: merge {r1} and {r2}/' "$T/wf.lua" > "$T/wf2.lua"
cp "$T/wf.lua" "$T/wf.orig"
cp "$T/wf2.lua" "$T/wf.lua"
run_weft "$T/out" "$T/err" replay "$base"
expect_rc 1 "replay of an edited script"
expect_grep "$T/out" "workflow '.*wf.lua' changed since the run \(sha256 [0-9a-f]{64} at the run, [0-9a-f]{64} now\)" "hash change named"
expect_grep "$T/out" "first divergence at node 'sweep/a3', call #0:" "divergence names the node and call"
expect_grep "$T/out" "record: model \(2 messages\) \(seq [0-9]+\)" "record side"
expect_grep "$T/out" "script: model \(2 messages\)" "script side"
sed 's/w.random(1, 1000000)/w.random(1, 999)/' "$T/wf.orig" > "$T/wf.lua"
run_weft "$T/out" "$T/err" replay "$base"
expect_rc 1 "replay with a changed random range"
expect_grep "$T/out" "first divergence at node 'sweep/seed', call #0:" "w.random divergence node"
expect_grep "$T/out" "record: random \[1,1000000\]" "w.random record side"
expect_grep "$T/out" "script: random \[1,999\]" "w.random script side"
cp "$T/wf.orig" "$T/wf.lua"
ok "replay: identical offline, writes nothing; an edit is reported with node, call and both sides"

# --- replay of a wide parallel ------------------------------------------------
# An offline replay runs at most 64 branches of a parallel at a time (the
# next starts as one ends): every one of 150 branches must still run, each
# answered from its own record (a w.random value it passes to its tool).
{
	echo 'local w = require "weft"'
	printf 'w.mcp_server{ name = "test", command = { "%s" } }\n' "$WEFT_TESTSERVER"
	cat <<'EOF2'
local b = {}
for i = 1, 150 do
  b[i] = w.sequential{ name = "b" .. i,
    w.fn{ name = "seed", function(ctx) ctx.state["x" .. i] = w.random(1, 1000000) end },
    w.agent{ name = "a", model = "scripted", tools = { w.mcp("test", { only = { "echo" } }) },
      output_key = "r" .. i,
      script = function(req, turn)
        if turn == 1 then
          return { tool_calls = { { name = "echo", args = { message = "b" .. i .. "-" .. req.state["x" .. i] } } } }
        end
        return { text = req.messages[#req.messages].content }
      end } }
end
return w.parallel{ name = "wide", table.unpack(b) }
EOF2
} > "$T/wide.lua"
run_weft "$T/out" "$T/err" run "$T/wide.lua" --workers 2 -q
expect_rc 0 "wide run"
wide=$(last_run)
run_weft "$T/out" "$T/err" replay "$wide" --json
expect_rc 0 "replay of the wide run"
expect_grep "$T/out" '"identical": true' "identical"
expect_grep "$T/out" '"steps": 301' "150 tool calls, 150 w.random, the tool list"
# The branches share nothing: the pass 64 at a time must already agree.
expect_grep "$T/out" '"all_at_once": false' "identical 64 branches at a time"
sed 's/message = "b" .. i/message = (i == 140 and "B" or "b") .. i/' "$T/wide.lua" > "$T/wide2.lua"
cp "$T/wide2.lua" "$T/wide.lua"
run_weft "$T/out" "$T/err" replay "$wide"
expect_rc 1 "replay of the wide run, branch 140 edited"
expect_grep "$T/out" "first divergence at node 'wide/b140/a', call #[0-9]+:" "divergence in branch 140"
expect_grep "$T/out" "script: .*B140-" "script side of branch 140"
ok "replay of a parallel of 150 branches: identical; an edit in branch 140 is found"

# Under a budget the branches share, each call reserves its worst case while
# it runs: how many run at once decides which reservation crosses the limit
# (here the 71st of 100), so a replay runs them all at once, as live.
sed -e 's/for i = 1, 150 do/for i = 1, 100 do/' -e 's/name = "wide",/name = "wide", budget = { tokens = 300000 },/' \
    -e 's/(i == 140 and "B" or "b")/"b"/' "$T/wide.lua" > "$T/wideb.lua"
grep -q 'budget = { tokens = 300000 }' "$T/wideb.lua" || fail "wideb.lua not made"
run_weft "$T/out" "$T/err" run "$T/wideb.lua" --workers 2 -q
expect_rc 3 "wide run over its budget"
widb=$(last_run)
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$widb' AND kind='tool.call'")" -lt 100 ] ||
    fail "every branch made its call: the budget did not bite"
run_weft "$T/out" "$T/err" replay "$widb"
expect_rc 0 "replay of the wide run over its budget"
expect_grep "$T/out" "^identical: " "identical, the same branches refused"
ok "replay of a parallel under a shared budget runs its branches at once, as live: identical"

# A server's tool list belongs to the run, keyed "(tools)/SERVER", not to
# the node that asked first: here branch 100 asks first live (the others
# think first), branch 1 first in the replay (100 waits for a free slot).
{
	echo 'local w = require "weft"'
	printf 'w.mcp_server{ name = "test", command = { "%s" } }\n' "$WEFT_TESTSERVER"
	cat <<'EOF2'
local function act(name, i)
  return w.agent{ name = name, model = "scripted", tools = { w.mcp("test", { only = { "echo" } }) },
    script = { { tool_calls = { { name = "echo", args = { message = "m" .. i } } } }, { text = "done" } } }
end
local b = {}
for i = 1, 99 do
  b[i] = w.sequential{ name = "b" .. i,
    w.agent{ name = "think", model = "scripted", script = { { text = "hm" } } }, act("act", i) }
end
b[100] = act("b100", 100)
return w.parallel{ name = "lead", table.unpack(b) }
EOF2
} > "$T/lead.lua"
run_weft "$T/out" "$T/err" run "$T/lead.lua" --workers 2 -q
expect_rc 0 "list leader run"
lead=$(last_run)
[ "$(sql "SELECT node_path || ' ' || json_extract(payload, '\$.key') FROM events WHERE run_id='$lead' AND kind='tool.list'")" = "lead/b100 (tools)/test" ] ||
    fail "the tool list: asked by lead/b100, keyed (tools)/test"
run_weft "$T/out" "$T/err" replay "$lead"
expect_rc 0 "replay, another node asking for the tool list first"
expect_grep "$T/out" "^identical: 101 recorded steps" "identical (100 calls and the tool list)"
ok "a tool list is the run's, whichever node asks first: replay identical"

# What branches share can depend on how many run at once: a tool list one
# branch changes ('grow' makes 'late' appear; live, the other 99 branches
# had resolved their tools before, and 'late' did not exist for them), a
# run hook counting calls across branches. A replay that diverges with a
# few branches at a time is run again with all of them at once.
{
	echo 'local w = require "weft"'
	printf 'w.mcp_server{ name = "test", command = { "%s" } }\n' "$WEFT_TESTSERVER"
	cat <<'EOF2'
local n = 0
w.hooks{ before_tool = function(call) n = n + 1; if n > 150 then return { block = "too many" } end end }
local b = { w.agent{ name = "b1", model = "scripted", tools = { w.mcp("test") },
  script = { { tool_calls = { { name = "grow" } } }, { text = "grown" } } } }
for i = 2, 100 do
  b[i] = w.agent{ name = "b" .. i, model = "scripted", tools = { w.mcp("test") },
    script = { { tool_calls = { { name = "echo", args = { message = "x" .. i } } } },
               { tool_calls = { { name = "late" }, { name = "echo", args = { message = "y" .. i } } } },
               { text = "done" } } }
end
return w.parallel{ name = "shared", table.unpack(b) }
EOF2
} > "$T/shared.lua"
run_weft "$T/out" "$T/err" run "$T/shared.lua" --workers 2 -q
expect_rc 0 "shared-state run"
shared=$(last_run)
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$shared' AND kind='hook' AND json_extract(payload,'\$.action')='block'")" -gt 0 ] ||
    fail "the hook blocked nothing: the test does not test"
run_weft "$T/out" "$T/err" replay "$shared" --json
expect_rc 0 "replay of the shared-state run"
expect_grep "$T/out" '"identical": true' "identical"
expect_grep "$T/out" '"all_at_once": true' "found by running every branch at once"
ok "replay: branches sharing a changed tool list and a hook's counter, identical (run again all at once)"

# --- fork ---------------------------------------------------------------------
fresh
# Fork just after a1's and a2's first model answers are recorded.
seq=$(sql "SELECT max(seq) FROM events WHERE run_id='$base' AND kind='model.response' AND json_extract(payload, '\$.response.tool_calls') IS NOT NULL AND node_path LIKE 'sweep/research/%'")
run_weft "$T/out" "$T/err" replay "$base" --fork "$seq" --workers 2 -q
expect_rc 0 "fork"
fork=$(last_run)
[ "$fork" != "$base" ] || fail "fork made no new run"
[ "$(sql "SELECT parent_run FROM runs WHERE id='$fork'")" = "$base" ] || fail "fork's parent link"
[ "$(sql "SELECT json_extract(payload, '\$.forked_from.run') || ':' || json_extract(payload, '\$.forked_from.seq') FROM events WHERE run_id='$fork' AND kind='run.start'")" = "$base:$seq" ] ||
    fail "forked_from recorded"
python3 - "$WEFT_DB" "$base" "$seq" "$T/fake.log" <<'PY' || fail "fork: model requests"
import json, sqlite3, sys
db, base, seq, log = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
con = sqlite3.connect(db)
seen = {}
for r in map(json.loads, open(log)):
    k = (r["model"], 2 if "Echo: %s-ping" % r["model"] in json.dumps(r["body"]) else 1)
    seen[k] = seen.get(k, 0) + 1
for s, path, p in con.execute("SELECT seq, node_path, payload FROM events WHERE run_id=? AND kind='model.response'", (base,)):
    agent = path.rsplit("/", 1)[-1]
    k = ("m" + agent[1:], 1 if json.loads(p)["response"].get("tool_calls") else 2)
    want = 0 if s <= seq else 1
    assert seen.get(k, 0) == want, (k, s, seq, seen)
PY
[ "$(sql "SELECT json_extract(output, '\$') FROM runs WHERE id='$fork'")" = "$(sql "SELECT json_extract(output, '\$') FROM runs WHERE id='$base'")" ] ||
    fail "fork's answer (same random number, from the record)"
run_weft "$T/out" "$T/err" replay "$fork"
expect_rc 0 "replay of the fork"
ok "fork: a new run with its parent link; steps up to SEQ answered from the record"

# --- the nondeterminism guard --------------------------------------------------
for expr in "os.time()" "io.open('x')" "math.random(3)" "math.randomseed(1)"; do
	printf 'local w = require "weft"\nreturn w.fn{ name = "f", function(ctx)\n  return %s\nend }\n' "$expr" > "$T/nd.lua"
	run_weft "$T/out" "$T/err" run "$T/nd.lua" -q
	expect_rc 1 "$expr refused"
	expect_grep "$T/err" "nd.lua:3: .*not available to workflow code: .*w\.(now|random)|nd.lua:3: .*not available to workflow code" "$expr: file:line and the alternative"
done
expect_grep "$T/err" "w.random" "math.randomseed names w.random"
ok "os, io, math.random, math.randomseed: refused at file:line, naming w.now()/w.random()"
# --- resume and fork report as weft run does ----------------------------------
# weft run, resume and replay --fork share one lifecycle (engine/exec.c):
# the same summary and --json members (resume and fork add what the record
# answered), the same messages and exit statuses when a run stops, fails
# to load, or its store fills up.
cat > "$T/sc.lua" <<'EOF2'
local w = require "weft"
return w.sequential{ name = "sc",
  w.agent{ name = "a", model = "scripted", output_key = "r", script = { { text = "hello" } } },
  w.fn{ name = "out", function(ctx) return ctx.state.r .. " #" .. w.random(1, 1000) end } }
EOF2
# keys FILE: the members of the JSON object in FILE, sorted, one line.
keys() {
	python3 -c 'import json, sys; print(" ".join(sorted(json.load(open(sys.argv[1])))))' "$1"
}
run_weft "$T/out" "$T/err" run "$T/sc.lua" --workers 1 --json
expect_rc 0 "scripted run --json"
runkeys=$(keys "$T/out")
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["scripted"] is True, d' "$T/out" ||
    fail "weft run --json: scripted"
# The run crashes once its row is stored: the resume runs every step.
WEFT_FAULT=store.after_commit:1 run_weft "$T/out" "$T/err" run "$T/sc.lua" --workers 1 -q
expect_rc 137 "scripted run crashed"
sc=$(last_run)
run_weft "$T/out" "$T/err" resume "$sc" --workers 1
expect_rc 0 "resume of the scripted run"
expect_grep "$T/out" "^resumed  0 of 0 recorded steps answered from the store \(was running\)$" "resume: what the record answered"
expect_grep "$T/out" "^model    scripted: offline, answers come from the workflow's script, not a real LLM$" \
    "resume: the scripted provider named, as weft run does"
WEFT_FAULT=store.after_commit:1 run_weft "$T/out" "$T/err" run "$T/sc.lua" --workers 1 -q
expect_rc 137 "scripted run crashed again"
run_weft "$T/out" "$T/err" resume "$(last_run)" --workers 1 --json
expect_rc 0 "resume --json of the scripted run"
[ "$(keys "$T/out")" = "$(echo answered_from_record $runkeys | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')" ] ||
    fail "resume --json: members $(keys "$T/out"), weft run's $runkeys and answered_from_record"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["scripted"] is True and d["status"] == "succeeded", d' "$T/out" ||
    fail "resume --json: scripted"
run_weft "$T/out" "$T/err" replay "$sc" --fork 2 --workers 1
expect_rc 0 "fork of the scripted run"
expect_grep "$T/out" "^forked   from $sc at seq 2: " "fork: what the record answered"
expect_grep "$T/out" "^model    scripted: offline" "fork: the scripted provider named"
run_weft "$T/out" "$T/err" replay "$sc" --fork 2 --workers 1 --json
expect_rc 0 "fork --json"
[ "$(keys "$T/out")" = "$(echo answered_from_record $runkeys | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')" ] ||
    fail "fork --json: members $(keys "$T/out")"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["scripted"] is True, d' "$T/out" ||
    fail "fork --json: scripted"
ok "resume and fork of a scripted run say so as weft run does: the model line, \"scripted\" and the same --json members"

# How a run stops, said as weft run says it: over budget, cancelled.
run_weft "$T/out" "$T/err" run "$T/sc.lua" --workers 1 --budget tokens=1
expect_rc 3 "scripted run over budget"
bx=$(last_run)
expect_grep "$T/err" "^weft: run $bx stopped: .*budget exceeded" "weft run over budget"
run_weft "$T/out" "$T/err" resume "$bx" --workers 1
expect_rc 3 "resume over budget again"
expect_grep "$T/err" "^weft: run $bx stopped: .*budget exceeded" "resume over budget: as weft run says it"
run_weft "$T/out" "$T/err" replay "$bx" --fork 1 --workers 1
expect_rc 3 "fork over budget"
expect_grep "$T/err" "^weft: run [0-9a-f]{16} stopped: .*budget exceeded" "fork over budget: as weft run says it"
{
	echo 'local w = require "weft"'
	printf 'w.mcp_server{ name = "test", command = { "%s" }, sandbox = { write = { "%s" } } }\n' \
	    "$WEFT_TESTSERVER" "$T"
	printf 'return w.tool{ name = "slow", server = "test", tool = "sleep", args = { ms = 600000, marker = "%s/slow.mark" } }\n' "$T"
} > "$T/slow.lua"
WEFT_FAULT=store.after_commit:1 run_weft "$T/out" "$T/err" run "$T/slow.lua" --workers 1 -q
expect_rc 137 "slow run crashed"
slow=$(last_run)
rm -f "$T/slow.mark"
"$WEFT" resume "$slow" --workers 1 -q >"$T/out" 2>"$T/err" &
pid=$!
i=0
until [ -s "$T/slow.mark" ]; do
	i=$((i + 1)); [ $i -lt 400 ] || fail "the resumed slow call never started"; sleep 0.05
done
kill -INT "$pid"
RC=0
wait "$pid" || RC=$?
expect_rc 130 "resume cancelled"
expect_grep "$T/err" "^weft: run $slow cancelled; everything so far is recorded \(weft show $slow\)$" "cancelled resume: as weft run says it"
ok "resume and fork stop over budget, and resume when cancelled, with weft run's words"

# Bad input to a fork is named as for weft run.
for bad in 'x' '[1]'; do
	run_weft "$T/out" "$T/err.run" run "$T/sc.lua" --input "$bad"
	expect_rc 2 "run --input $bad"
	run_weft "$T/out" "$T/err" replay "$sc" --fork 1 --input "$bad"
	expect_rc 2 "fork --input $bad"
	cmp -s "$T/err" "$T/err.run" || { cat "$T/err" "$T/err.run" >&2; fail "fork --input $bad: not weft run's message"; }
done
expect_grep "$T/err" "^weft: --input must be a JSON object, like" "a non-object input"
ok "a fork's bad --input is named as weft run names it"

# A fork whose workflow no longer loads leaves no run behind (weft run
# stores a run once its workflow has loaded; so does a fork).
cp "$T/sc.lua" "$T/sc.orig"
echo 'return 1 +' > "$T/sc.lua"
n=$(sql "SELECT count(*) FROM runs")
run_weft "$T/out" "$T/err" replay "$sc" --fork 1 --workers 1
expect_rc 2 "fork of a workflow that does not load"
expect_grep "$T/err" "sc.lua:[0-9]+: unexpected symbol" "the workflow's error at file:line"
[ "$(sql "SELECT count(*) FROM runs")" = "$n" ] || fail "a fork that did not load left a run: $(sql "SELECT id, status FROM runs WHERE parent_run='$sc'")"
cp "$T/sc.orig" "$T/sc.lua"
ok "a fork whose workflow does not load stores no run"

# A store that fills up at any write of a resume or a fork, the last (its
# end and the run row) too, stops it with exit 4 and the store's message,
# as weft run; the resumed run is left resumable.
WEFT_FAULT=store.after_commit:1 run_weft "$T/out" "$T/err" run "$T/sc.lua" --workers 1 -q --db "$T/full0.db"
expect_rc 137 "a run to resume on a full disk"
F=$(sqlite3 "$T/full0.db" "PRAGMA wal_checkpoint(TRUNCATE); SELECT id FROM runs" | tail -n 1)
full="the store '$T/full.db' is full \\(disk full: SQLITE_FULL\\)"
for what in resume fork; do
	n=1
	while :; do
		rm -f "$T/full.db" "$T/full.db-wal" "$T/full.db-shm"
		cp "$T/full0.db" "$T/full.db"
		case $what in
		resume) set -- resume "$F" ;;
		*) set -- replay "$F" --fork 1 ;;
		esac
		WEFT_FAULT=sqlite.full:$n run_weft "$T/out" "$T/err" "$@" --workers 1 -q --db "$T/full.db"
		[ "$RC" -eq 0 ] && break
		expect_rc 4 "$what, the disk full at write $n"
		expect_grep "$T/err" "^weft: (cannot open database '$T/full.db': database or disk is full|$full)" \
		    "$what, full at write $n: the store's message"
		[ "$what" = fork ] || [ "$(sqlite3 "$T/full.db" "SELECT status FROM runs WHERE id='$F'")" = running ] ||
		    fail "resume, full at write $n: the run is not left resumable"
		n=$((n + 1))
		[ $n -le 200 ] || fail "$what: still failing after 200 writes"
	done
	[ $n -gt 1 ] || fail "$what: the disk never filled"
	ok "$what with the disk full at write 1..$((n - 1)): exit 4 and the store's message each time"
done
stop_fake
expect_no_orphans
