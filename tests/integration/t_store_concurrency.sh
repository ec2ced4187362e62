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
# A is still in its fn: alive, and nothing recorded after the tool result
# but the start of the fn node (the runner commits it before the function
# runs, so that the node shows as running and can be cancelled).
kill -0 "$APID" 2>/dev/null || fail "run A ended: $(cat "$T/a.err")"
last=$(sql "SELECT kind FROM events WHERE run_id = '$A' ORDER BY seq DESC LIMIT 1")
case "$last" in tool.result|node.start) ;;
*) fail "run A recorded '$last' after its tool result: its fn is not running" ;;
esac
kill -9 "$APID"
wait "$APID" 2>/dev/null
expect_no_orphans
ok "while a fn computes in Lua: another run, weft cancel, weft runs and weft gc all work"
export WEFT_DB="$T/weft.db"

# --- weft gc beside live runs ------------------------------------------------
# 2000 finished runs of 1970 (50 events each, every event naming a blob
# of its run) and one recent run naming the first of those blobs.  gc's
# report goes to a fifo that the test stops reading after the first line:
# gc then waits on its output, which it writes outside any transaction,
# while run D is cancelled and run E runs from start to end.
export WEFT_DB="$T/gc.db"
run_weft "$T/out" "$T/err" run "$T/quick.lua" --input '{"who":"x"}' --workers 1
expect_rc 0 "the gc store's first run"
sqlite3 "$WEFT_DB" "
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
INSERT INTO runs (id, workflow, workflow_hash, input, status, started, ended,
    steps, tokens, cost)
SELECT printf('%016x', i), 'old.lua', 'h', '{}', 'succeeded', 1000000 + i,
    1000001 + i, 0, 0, 0 FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000),
    m(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM m WHERE j < 50)
INSERT INTO events (run_id, seq, span_id, parent_span, node_path, kind,
    attempt, time, payload, tokens, cost)
SELECT printf('%016x', i), j, 0, 0, 'old', 'model.request', 0, 1000000 + i,
    json_object('messages', json_array(printf('%064x', i))), 0, 0 FROM n, m;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
INSERT INTO blobs (hash, size, data)
SELECT printf('%064x', i), 100, randomblob(100) FROM n;
INSERT INTO runs (id, workflow, status, started) VALUES ('keeper', 'k.lua',
    'succeeded', strftime('%s', 'now'));
INSERT INTO events (run_id, seq, kind, payload) VALUES ('keeper', 1,
    'model.request', json_object('messages', json_array(printf('%064x', 1))));
" || fail "cannot fill the gc store"
run_weft "$T/out" "$T/err" gc --older-than 1d --dry-run
expect_rc 0 "gc --dry-run"
expect_grep "$T/out" '^would delete 2000 runs, 100000 events, 0 tasks, 1999 blobs \(199900 bytes\)$' "gc --dry-run counts"
"$WEFT" run "$T/wait.lua" --workers 1 >"$T/d.out" 2>"$T/d.err" &
DPID=$!
BG="$BG $DPID"
rm -f "$T/c.marker"
wait_for "run D's tool call" test -s "$T/c.marker"
D=$(sql "SELECT id FROM runs WHERE workflow LIKE '%wait.lua'")
mkfifo "$T/gc.fifo"
"$WEFT" gc --older-than 1d >"$T/gc.fifo" 2>"$T/gc.err" &
GPID=$!
BG="$BG $GPID"
exec 4<"$T/gc.fifo"
read -r first <&4 || fail "gc said nothing"
case $first in
"deleted run "*) ;;
*) fail "gc's first line: $first" ;;
esac
run_weft "$T/out" "$T/err" cancel "$D"
expect_rc 0 "weft cancel D during gc"
RC=0
wait "$DPID" || RC=$?
expect_rc 130 "run D, cancelled during gc"
run_weft "$T/out" "$T/err" run "$T/quick.lua" --input '{"who":"e"}' --workers 1
expect_rc 0 "run E during gc"
cat <&4 > "$T/gc.rest"
exec 4<&-
RC=0
wait "$GPID" || RC=$?
[ "$RC" = 0 ] || { cat "$T/gc.err" >&2; fail "gc exited $RC"; }
expect_grep "$T/gc.rest" '^deleted 2000 runs, 100000 events, 0 tasks, 1999 blobs \(199900 bytes\)$' "gc counts"
[ "$(sql "SELECT count(*) FROM runs")" = 4 ] &&
    [ "$(sql "SELECT count(*) FROM events WHERE run_id NOT IN (SELECT id FROM runs)")" = 0 ] &&
    [ "$(sql "SELECT hash FROM blobs")" = "$(printf '%064x' 1)" ] &&
    [ "$(sql "SELECT count(*) FROM gc_pending") $(sql "SELECT count(*) FROM gc_state")" = "0 0" ] ||
    fail "after gc: $(sql "SELECT count(*) FROM runs") runs, $(sql "SELECT count(*) FROM blobs") blobs"
[ "$(sql "SELECT status FROM runs WHERE id = '$D'")" = cancelled ] ||
    fail "run D is not recorded cancelled"
expect_no_orphans
ok "gc deletes 100000 events in small transactions: a run is cancelled and another runs meanwhile"

# --vacuum on a store made by this weft (incremental): beside a live run.
"$WEFT" run "$T/wait.lua" --workers 1 >"$T/d.out" 2>"$T/d.err" &
DPID=$!
BG="$BG $DPID"
rm -f "$T/c.marker"
wait_for "run F's tool call" test -s "$T/c.marker"
F=$(sql "SELECT id FROM runs WHERE workflow LIKE '%wait.lua' AND status = 'running'")
run_weft "$T/out" "$T/err" gc --keep 100 --vacuum
expect_rc 0 "gc --vacuum beside a live run"
line=$(grep '^vacuum: file ' "$T/out") || fail "no vacuum line: $(cat "$T/out")"
before=$(echo "$line" | sed 's/^vacuum: file \([0-9]*\) -> \([0-9]*\) bytes.*/\1/')
after=$(echo "$line" | sed 's/^vacuum: file \([0-9]*\) -> \([0-9]*\) bytes.*/\2/')
[ "$after" -lt "$before" ] || fail "vacuum did not shrink the file: $line"
[ "$after" = "$(stat -c %s "$WEFT_DB")" ] ||
    fail "vacuum reports $after bytes, the file has $(stat -c %s "$WEFT_DB")"
expect_grep "$T/out" '^vacuum: database [0-9]+ -> [0-9]+ bytes$' "vacuum total"
expect_no_grep "$T/out" 'rewritten whole' "incremental vacuum"
run_weft "$T/out" "$T/err" cancel "$F"
expect_rc 0 "run F still runs after the vacuum"
RC=0
wait "$DPID" || RC=$?
expect_rc 130 "run F, cancelled"
ok "gc --vacuum shrinks a store in small steps beside a live run and reports the real sizes"

# A store from before incremental vacuum needs a full VACUUM: refused
# while a run's coordinator is alive, done once none is.
sqlite3 "$WEFT_DB" "PRAGMA auto_vacuum = NONE; VACUUM;"
[ "$(sql "PRAGMA auto_vacuum")" = 0 ] || fail "cannot make an old-style store"
"$WEFT" run "$T/wait.lua" --workers 1 >"$T/d.out" 2>"$T/d.err" &
DPID=$!
BG="$BG $DPID"
rm -f "$T/c.marker"
wait_for "run G's tool call" test -s "$T/c.marker"
G=$(sql "SELECT id FROM runs WHERE workflow LIKE '%wait.lua' AND status = 'running'")
run_weft "$T/out" "$T/err" gc --keep 100 --vacuum
expect_rc 1 "a full vacuum beside a live run"
expect_grep "$T/err" "^weft: gc --vacuum: the store '$WEFT_DB' predates incremental vacuum.*: $G\$" "refusal names the live run"
kill -0 "$DPID" || fail "run G died"
run_weft "$T/out" "$T/err" cancel "$G"
expect_rc 0 "cancel G"
RC=0
wait "$DPID" || RC=$?
expect_rc 130 "run G, cancelled"
run_weft "$T/out" "$T/err" gc --keep 100 --vacuum
expect_rc 0 "a full vacuum once no run is alive"
expect_grep "$T/out" 'rewritten whole' "full vacuum said"
[ "$(sql "PRAGMA auto_vacuum")" = 2 ] || fail "the store is not incremental after a full vacuum"
BG=
expect_no_orphans
ok "a full vacuum is refused while a run is alive, done after, and makes the store incremental"
export WEFT_DB="$T/weft.db"

# --- two resumes of one run at once -----------------------------------------
# Each checks the run without the lock and claims it under the lock once
# its coordinator has started: exactly one goes on.
export WEFT_DB="$T/resume.db"
RC=0
WEFT_FAULT=store.after_commit:1 "$WEFT" run "$T/quick.lua" \
    --input '{"who":"r"}' --workers 1 -q >"$T/out" 2>"$T/err" || RC=$?
expect_rc 137 "the run to resume crashed"
Q=$(sql "SELECT id FROM runs")
"$WEFT" resume "$Q" --workers 1 -q >"$T/r1.out" 2>"$T/r1.err" &
R1=$!
"$WEFT" resume "$Q" --workers 1 -q >"$T/r2.out" 2>"$T/r2.err" &
R2=$!
BG="$BG $R1 $R2"
rc1=0 rc2=0
wait "$R1" || rc1=$?
wait "$R2" || rc2=$?
BG=
case "$rc1 $rc2" in
"0 1"|"1 0") ;;
*) cat "$T/r1.err" "$T/r2.err" >&2
   fail "two resumes at once exited $rc1 and $rc2, expected one 0 and one 1" ;;
esac
[ "$(sql "SELECT count(*) FROM events WHERE run_id = '$Q' AND kind = 'run.resume'")" = 1 ] &&
    [ "$(sql "SELECT status FROM runs WHERE id = '$Q'")" = succeeded ] ||
    fail "the run after two resumes: $(sql "SELECT status FROM runs")"
export WEFT_DB="$T/weft.db"
expect_no_orphans
ok "of two resumes of one run at once, one goes on and the other is refused"

# --- a store this user cannot write -----------------------------------------
# The store of a run made by nobody (root could write any file), then
# read-only: the file 0400; the directory 0555; a crashed run's WAL still
# holding data.  weft runs, show, replay, diff and eval read it; weft run
# says why it cannot write; nothing is created beside the store; once
# writable again it is written as before.
if ! command -v setpriv >/dev/null 2>&1; then
	echo "SKIP: setpriv (util-linux) missing: a read-only store is not tested" >&2
	U=
elif [ "$(id -u)" != 0 ]; then
	U="$T/ro"
	mkdir -p "$U" "$U.tmp"
	NOBODY=""
else
	U="$T/ro"
	mkdir -p "$U" "$U.tmp"
	chown nobody "$U" "$U.tmp"
	chmod 755 "$T"
	NOBODY="setpriv --reuid=nobody --regid=nogroup --clear-groups"
	if ! $NOBODY test -x "$WEFT"; then
		echo "SKIP: nobody cannot execute $WEFT: a read-only store is not tested" >&2
		U=
	fi
fi
# as_user ARGS...: weft as nobody on the read-only test's store.
as_user() {
	RC=0
	$NOBODY env HOME="$U" TMPDIR="$U.tmp" WEFT_STATE_DIR="$U.tmp/state" \
	    WEFT_DB="$U/ro.db" "$WEFT" "$@" >"$T/out" 2>"$T/err" || RC=$?
}
# inspect WHAT: every read-only command works, and no file appears.
inspect() {
	ls "$U" > "$T/ls.before"
	as_user runs
	expect_rc 0 "$1: weft runs"
	expect_grep "$T/out" "^$R +succeeded" "$1: weft runs lists the run"
	as_user show "$R"
	expect_rc 0 "$1: weft show"
	as_user show "$R" --json
	expect_rc 0 "$1: weft show --json"
	expect_grep "$T/out" '"who": "ro"' "$1: the input"
	as_user replay "$R"
	expect_rc 0 "$1: weft replay"
	expect_grep "$T/out" '^identical' "$1: replay identical"
	as_user diff "$R" "$R"
	expect_rc 0 "$1: weft diff"
	as_user eval --make-golden "$R"
	expect_rc 0 "$1: weft eval --make-golden"
	ls "$U" > "$T/ls.after"
	cmp -s "$T/ls.before" "$T/ls.after" ||
	    fail "$1: files appeared beside the store: $(diff "$T/ls.before" "$T/ls.after")"
}
if [ -n "$U" ]; then
	cp "$T/quick.lua" "$U/quick.lua"
	as_user run "$U/quick.lua" --input '{"who":"ro"}' --workers 1 -q
	expect_rc 0 "nobody's run"
	R=$(sqlite3 "$U/ro.db" "SELECT id FROM runs")
	[ ! -e "$U/ro.db-wal" ] || fail "a WAL is left after the run"
	chmod 400 "$U/ro.db"
	inspect "a 0400 store"
	as_user run "$U/quick.lua" --input '{"who":"w"}' --workers 1 -q
	expect_rc 1 "weft run on a 0400 store"
	expect_grep "$T/err" "^weft: cannot open database '$U/ro.db': Permission denied\$" "weft run says why"
	chmod 600 "$U/ro.db"
	chmod 555 "$U"
	inspect "a store in a 0555 directory"
	chmod 755 "$U"
	as_user run "$U/quick.lua" --input '{"who":"w"}' --workers 1 -q
	expect_rc 0 "weft run once the store is writable again"
	ok "a store nobody cannot write (0400 file, 0555 directory) is inspected, and written again after"

	# A run that crashed after its commits: its WAL holds them.
	RC=0
	$NOBODY env HOME="$U" TMPDIR="$U.tmp" WEFT_STATE_DIR="$U.tmp/state" \
	    WEFT_DB="$U/ro.db" WEFT_FAULT=store.after_commit:1 "$WEFT" run \
	    "$U/quick.lua" --input '{"who":"x"}' --workers 1 -q \
	    >"$T/out" 2>"$T/err" || RC=$?
	expect_rc 137 "the crashed run"
	[ -s "$U/ro.db-wal" ] || fail "the crashed run left no WAL"
	# (Read-only here too: a writer closing the store would checkpoint.)
	X=$(sqlite3 "file:$U/ro.db?mode=ro" "SELECT id FROM runs WHERE input LIKE '%\"x\"%'")
	[ -n "$X" ] || fail "the crashed run is not in its WAL"
	chmod 400 "$U/ro.db"
	as_user show "$X"
	expect_rc 0 "weft show of a run in the WAL of a 0400 store"
	expect_grep "$T/out" "^run $X +running" "the crashed run shows as running"
	[ -s "$U/ro.db-wal" ] || fail "the WAL was not read as it is"
	chmod 600 "$U/ro.db"
	ok "a 0400 store whose WAL holds data is read through it"
fi

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
