#!/bin/sh
# weft serve as one long-lived coordinator (issue 13; docs/mcp.md, "How
# weft serve runs calls"), driven by the official MCP SDK client over
# Streamable HTTP: 100 concurrent calls of a fan-out workflow; a run of one
# call is not held behind a run of 1,000; keep = "workflow" keeps one warm
# server process for a workflow's runs, the default starts one per run; a
# server killed with -9 and started again finishes its run without
# repeating a recorded call.  Ordered by files and store rows, never by
# time: the bounds of the waits are safety nets.
. "$WEFT_SRCDIR/tests/integration/lib.sh"
. "$WEFT_SRCDIR/tests/interop/lib_interop.sh"
trap '_rc=$?; stop_serve; (exit $_rc); cleanup' EXIT

CALLS="$INTEROP/serve_calls.mjs"

# wait_sql QUERY VALUE WHAT: wait until QUERY gives VALUE.
wait_sql() {
	_i=0
	until [ "$(sql "$1")" = "$2" ]; do
		_i=$((_i + 1))
		[ $_i -lt 1200 ] || fail "$3: $(sql "$1")"
		sleep 0.1
	done
}

mkdir -p "$T/sv"
# fanout: ten tool calls at once.
{
	echo 'local w = require "weft"'
	testserver_decl
	echo 'local t = { name = "ten" }'
	echo 'for i = 1, 10 do'
	echo '  t[#t + 1] = w.tool{ name = "e" .. i, server = "test", tool = "echo", args = { message = "m" .. i } }'
	echo 'end'
	echo 'return w.workflow{ name = "fanout", description = "ten echo calls at once", w.parallel(t) }'
} > "$T/sv/fanout.lua"
# big: 1,000 calls, each held until $T/release exists.
{
	echo 'local w = require "weft"'
	testserver_decl
	echo 'local t = { name = "many" }'
	echo 'for i = 1, 1000 do'
	echo "  t[#t + 1] = w.tool{ name = \"h\" .. i, server = \"test\", tool = \"sleep\", args = { ms = 0, [\"until\"] = \"$T/release\" } }"
	echo 'end'
	echo 'return w.workflow{ name = "big", description = "1,000 held calls", w.parallel(t) }'
} > "$T/sv/big.lua"
# small: one call.
{
	echo 'local w = require "weft"'
	testserver_decl
	echo 'return w.workflow{ name = "small", description = "one call",'
	echo '  w.tool{ name = "one", server = "test", tool = "echo", args = { message = "alone" }, output_key = "r" } }'
} > "$T/sv/small.lua"
# steps: a recorded call, then one held until $T/go (killed between).
{
	echo 'local w = require "weft"'
	echo "w.mcp_server{ name = \"test\", command = { \"$WEFT_TESTSERVER\" }, sandbox = { write = { \"$T\" } } }"
	echo 'return w.workflow{ name = "steps", description = "two steps",'
	echo "  w.tool{ name = \"first\", server = \"test\", tool = \"sleep\", args = { ms = 0, marker = \"$T/first\" } },"
	echo "  w.tool{ name = \"second\", server = \"test\", tool = \"sleep\", args = { ms = 0, marker = \"$T/second\", [\"until\"] = \"$T/go\", text = \"done\" }, output_key = \"r\" } }"
} > "$T/sv/steps.lua"
# keep_workflow, keep_run: a server that notes each start of its process.
printf '#!/bin/sh\necho start >> "$COUNT_FILE"\nexec "%s"\n' "$WEFT_TESTSERVER" > "$T/counted"
chmod +x "$T/counted"
for k in workflow run; do
	{
		echo 'local w = require "weft"'
		echo "w.mcp_server{ name = \"c\", command = { \"$T/counted\" }, env = { COUNT_FILE = \"$T/starts.$k\" }, sandbox = false, keep = \"$k\" }"
		echo "return w.workflow{ name = \"keep_$k\", description = \"keep = $k\","
		echo '  w.tool{ name = "e", server = "c", tool = "echo", args = { message = "x" } } }'
	} > "$T/sv/$k.lua"
done

start_serve "$T/sv" --db "$WEFT_DB" --workers 2 --max-runs 200

# --- 100 calls at once, ten tool calls each -------------------------------
node "$CALLS" "$URL" fanout '{}' 100 > "$T/fan.out" 2> "$T/fan.err" ||
	{ cat "$T/fan.out" "$T/fan.err" >&2; fail "100 concurrent calls"; }
[ "$(grep -c '^ok [0-9a-f]* succeeded' "$T/fan.out")" = 100 ] ||
	fail "100 answers, got $(grep -c '^ok' "$T/fan.out")"
[ "$(sql "SELECT count(*) FROM runs WHERE workflow LIKE '%/fanout.lua' AND status = 'succeeded'")" = 100 ] ||
	fail "100 succeeded runs in the store"
[ "$(sql "SELECT count(*) FROM events e JOIN runs r ON r.id = e.run_id WHERE r.workflow LIKE '%/fanout.lua' AND e.kind = 'tool.result'")" = 1000 ] ||
	fail "1,000 recorded tool results"
ok "100 concurrent calls of a fan-out workflow all succeed, each a recorded run"

# --- a one-call run is not held behind a 1,000-call run -------------------
rm -f "$T/release"
node "$CALLS" "$URL" big '{}' 1 "$T/big.sent" > "$T/big.out" 2> "$T/big.err" &
BIG=$!
wait_for_grep "$T/big.sent" sent "the big call sent"
wait_sql "SELECT count(*) FROM events e JOIN runs r ON r.id = e.run_id WHERE r.workflow LIKE '%/big.lua' AND e.kind = 'tool.call'" 1000 \
    "the big run queues its 1,000 calls"
# (Were the small run's call queued behind the big run's, it would wait
# for the release: the bound turns that into a failure.)
timeout 120 node "$CALLS" "$URL" small '{}' 1 > "$T/small.out" 2> "$T/small.err" ||
	{ cat "$T/small.out" "$T/small.err" >&2; fail "the small call was held behind the big run"; }
expect_grep "$T/small.out" '^ok [0-9a-f]+ succeeded Echo: alone' "the small call's answer"
[ ! -e "$T/release" ] && [ "$(sql "SELECT status FROM runs WHERE workflow LIKE '%/big.lua'")" = running ] ||
	fail "the big run was still running, held, while the small one finished"
touch "$T/release"
wait "$BIG" || { cat "$T/big.out" "$T/big.err" >&2; fail "the big call"; }
expect_grep "$T/big.out" '^ok [0-9a-f]+ succeeded' "the big call's answer"
ok "a one-call run finishes while a 1,000-call run holds the workers (fair dispatch)"

# --- keep = "workflow": one warm server process; the default: one per run --
for i in 1 2 3 4 5 6; do
	node "$CALLS" "$URL" keep_workflow '{}' 1 >> "$T/keep.out" 2>&1 || fail "keep_workflow call $i"
	node "$CALLS" "$URL" keep_run '{}' 1 >> "$T/keep.out" 2>&1 || fail "keep_run call $i"
done
# A run's tool list and call may go to either worker: at least one start a
# run (never one process for two runs).
[ "$(wc -l < "$T/starts.run")" -ge 6 ] || fail "keep = run: a server start per run (6), got $(wc -l < "$T/starts.run")"
[ "$(wc -l < "$T/starts.workflow")" -le 2 ] ||
	fail "keep = workflow: at most one start per worker (2), got $(wc -l < "$T/starts.workflow")"
ok "keep = \"workflow\" keeps a warm server for the workflow's runs; the default starts one per run"

# --- kill -9 mid-run, start again: the run finishes, nothing repeated ------
node "$CALLS" "$URL" steps '{}' 1 > "$T/steps.out" 2>&1 &
STEPS=$!
wait_for_grep "$T/second" . "the second step started"
ID=$(sql "SELECT id FROM runs WHERE workflow LIKE '%/steps.lua'")
kill -9 "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null
SERVE_PID=
wait "$STEPS" 2>/dev/null
rm -f "$T/first" "$T/second"
[ "$(sql "SELECT status FROM runs WHERE id = '$ID'")" = running ] || fail "the killed server's run is left running"
touch "$T/go"
mv "$T/serve.err" "$T/serve1.err"
start_serve "$T/sv" --db "$WEFT_DB" --workers 2
wait_sql "SELECT status FROM runs WHERE id = '$ID'" succeeded "the resumed run finishes"
expect_grep "$T/serve.err" "resuming run $ID" "the server says it resumes the run"
[ ! -e "$T/first" ] || fail "the recorded first step was called again"
[ -e "$T/second" ] || fail "the step in flight was not called again"
[ "$(sql "SELECT count(*) FROM events WHERE run_id = '$ID' AND kind = 'run.resume'")" = 1 ] || fail "one run.resume"
[ "$(sql "SELECT output FROM runs WHERE id = '$ID'")" = '"done"' ] || fail "output: $(sql "SELECT output FROM runs WHERE id = '$ID'")"
ok "a server killed with -9 and started again finishes its run without repeating a recorded call"
# A clean stop: exit 0 (under the sanitizers, also no leak).
kill "$SERVE_PID"
RC=0
wait "$SERVE_PID" || RC=$?
SERVE_PID=
[ "$RC" -eq 0 ] || { tail -30 "$T/serve.err" >&2; fail "weft serve stopped with status $RC"; }
ok "weft serve stops cleanly on SIGTERM"
