#!/bin/sh
# Many processes on one store (docs/durability.md, "Many processes, one
# store"): a coordinator whose Lua computes for long holds no lock, so
# another run, weft cancel, weft runs and weft gc go on meanwhile; gc
# deletes in small transactions beside a live run; --vacuum; twenty runs
# starting together on a new store; the store's files are 0600; a store
# the user cannot write is still inspected.
. "$(dirname "$0")/lib.sh"
unset WEFT_FAULT
# Process names hold $T, so expect_no_orphans sees every process.
export TMPDIR="$T"
ln -s "$WEFT_TESTSERVER" "$T/mcp-testserver"
# Runs left in the background by a failed check are killed first.
BG=
trap 'rc=$?; for p in $BG; do kill -9 "$p" 2>/dev/null; done; (exit $rc); cleanup' EXIT

# wait_for WHAT CMD...: poll until CMD succeeds (a safety bound of 60 s,
# never an order: CMD checks the state waited for).
wait_for() {
	_what=$1
	shift
	_i=0
	until "$@"; do
		_i=$((_i + 1))
		[ $_i -lt 1200 ] || fail "timed out waiting for $_what"
		sleep 0.05
	done
}

# mode FILE: its permission bits in octal.
mode() {
	stat -c %a "$1"
}

# --- a coordinator computing in Lua holds no lock ---------------------------
# Run A calls a tool (its marker says it started), then a fn computes for
# up to 120 s.  While it computes: run B runs to the end, run C (waiting
# in a tool call) is cancelled, weft runs lists the store, weft gc deletes
# the finished runs.  Then A is still in its fn: nothing after the tool's
# result is recorded, and A is alive.
cat > "$T/busy.lua" <<EOF
local w = require "weft"
w.mcp_server{ name = "test", command = { "$T/mcp-testserver" },
  sandbox = { write = { "$T" } } }
return w.sequential{ name = "a",
  w.tool{ name = "mark", server = "test", tool = "sleep",
    args = { ms = 0, marker = "$T/a.marker" } },
  w.fn{ name = "busy", function(ctx)
    local t0, x = w.now(), 0
    while w.now() < t0 + 120 do
      for i = 1, 300000 do x = x + i % 7 end
    end
    return x
  end } }
EOF
cat > "$T/wait.lua" <<EOF
local w = require "weft"
w.mcp_server{ name = "test", command = { "$T/mcp-testserver" },
  sandbox = { write = { "$T" } } }
return w.tool{ name = "nap", server = "test", tool = "sleep",
  args = { ms = 600000, marker = "$T/c.marker" } }
EOF
cat > "$T/quick.lua" <<'EOF'
local w = require "weft"
return w.fn{ name = "hello", function(ctx) return "hello " .. ctx.input.who end }
EOF
export WEFT_DB="$T/busy.db"
"$WEFT" run "$T/wait.lua" --workers 1 >"$T/c.out" 2>"$T/c.err" &
CPID=$!
BG="$BG $CPID"
wait_for "run C's tool call" test -s "$T/c.marker"
C=$(sql "SELECT id FROM runs WHERE workflow LIKE '%wait.lua'")
WEFT_LUA_MAX_SECONDS=300 "$WEFT" run "$T/busy.lua" --workers 1 \
    >"$T/a.out" 2>"$T/a.err" &
APID=$!
BG="$BG $APID"
wait_for "run A's tool call" test -s "$T/a.marker"
A=$(sql "SELECT id FROM runs WHERE workflow LIKE '%busy.lua'")
# The tool's result is committed before the graph gets it: from then on
# A's Lua runs the fn.
wait_for "run A's tool result" sh -c "[ \"\$(sqlite3 '$WEFT_DB' \"SELECT count(*) FROM events WHERE run_id = '$A' AND kind = 'tool.result'\")\" = 1 ]"
[ "$(mode "$WEFT_DB")" = 600 ] && [ "$(mode "$WEFT_DB-wal")" = 600 ] &&
    [ "$(mode "$WEFT_DB-shm")" = 600 ] ||
    fail "store files are $(stat -c '%n %a' "$WEFT_DB"*), not 0600"
ok "a new store and its -wal and -shm are 0600"

run_weft "$T/out" "$T/err" run "$T/quick.lua" --input '{"who":"b"}' --workers 1
expect_rc 0 "run B while A computes"
expect_grep "$T/out" '^hello b$' "run B's answer"
run_weft "$T/out" "$T/err" cancel "$C"
expect_rc 0 "weft cancel C while A computes"
expect_grep "$T/out" "^run $C cancelled\$" "cancel C says so"
RC=0
wait "$CPID" || RC=$?
expect_rc 130 "run C, cancelled"
run_weft "$T/out" "$T/err" runs
expect_rc 0 "weft runs while A computes"
expect_grep "$T/out" "^$A +running" "weft runs lists A running"
run_weft "$T/out" "$T/err" gc --keep 0
expect_rc 0 "weft gc while A computes"
expect_grep "$T/out" '^deleted 2 runs' "gc deleted B and C"
expect_grep "$T/out" '^kept 1 selected run' "gc kept A"
# A is still in its fn: alive, and nothing recorded after the tool result.
kill -0 "$APID" 2>/dev/null || fail "run A ended: $(cat "$T/a.err")"
last=$(sql "SELECT kind FROM events WHERE run_id = '$A' ORDER BY seq DESC LIMIT 1")
[ "$last" = tool.result ] || fail "run A recorded '$last' after its tool result: its fn is not running"
kill -9 "$APID"
wait "$APID" 2>/dev/null
expect_no_orphans
ok "while a fn computes in Lua: another run, weft cancel, weft runs and weft gc all work"
export WEFT_DB="$T/weft.db"

# --- many processes open a new store together --------------------------------
# together N ARGS...: start N `weft ARGS` back to back and expect every
# one to exit 0.  The race they used to lose (switching a new file to WAL)
# needs no more than that.
together() {
	_n=$1
	shift
	_i=0 _pids=
	while [ $_i -lt "$_n" ]; do
		"$WEFT" "$@" >"$T/tog.$_i.out" 2>"$T/tog.$_i.err" &
		_pids="$_pids $!"
		BG="$BG $!"
		_i=$((_i + 1))
	done
	_i=0 _bad=0
	for _p in $_pids; do
		_rc=0
		wait "$_p" || _rc=$?
		if [ "$_rc" -ne 0 ]; then
			echo "--- process $_i exited $_rc:" >&2
			cat "$T/tog.$_i.err" >&2
			_bad=$((_bad + 1))
		fi
		_i=$((_i + 1))
	done
	BG=
	[ "$_bad" -eq 0 ] || fail "$_bad of $_n processes failed: $*"
}
for round in 1 2 3; do
	together 20 run "$T/quick.lua" --db "$T/new$round.db" --workers 1 -q \
	    --input '{"who":"x"}'
	[ "$(sqlite3 "$T/new$round.db" "SELECT count(*) FROM runs WHERE status = 'succeeded'")" = 20 ] ||
	    fail "round $round: $(sqlite3 "$T/new$round.db" "SELECT count(*) FROM runs WHERE status = 'succeeded'") of 20 runs recorded"
done
ok "20 weft run started together on a new store, 3 times: all succeed"
round=1
while [ $round -le 30 ]; do
	together 40 runs --db "$T/newr$round.db"
	round=$((round + 1))
done
ok "40 weft runs started together on a new store, 30 times: all succeed"
expect_no_orphans
