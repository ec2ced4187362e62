#!/bin/sh
# Storage faults (docs/durability.md, "Storage faults"), during a run with
# tool calls (tests/mcp_testserver) and model calls (tests/fakemodel):
# SQLite write errors, a full disk and fsync errors injected by the fault
# VFS (engine/store_vfs.c), a real full disk (a tiny tmpfs in a user+mount
# namespace, skipped loudly where the kernel refuses one), and the store's
# crash points.  After each: the exit status and the message; PRAGMA
# integrity_check; every blob whole (its bytes hash to its key) or absent;
# every event whole and the run's events a prefix of an unfaulted run's;
# the run row not claiming success; no process left behind.  A run stopped
# by a full store resumes to the same answer.
. "$(dirname "$0")/lib.sh"
: "${WEFT_FAKEMODEL:?run through make check}"
export OPENAI_API_KEY=sk-test-storage
unset WEFT_FAULT
# The coordinator's ipc directory (in the workers' argv) and the tool
# server's path hold $T, so expect_no_orphans sees every process of a run.
export TMPDIR="$T"
ln -s "$WEFT_TESTSERVER" "$T/mcp-testserver"

SCRIPT='{"gpt-test":[{"tool_calls":[{"name":"echo","args":{"message":"ping"}}]},{"tool_calls":[{"name":"echo","args":{"message":"pong"}}]},{"text":"the answer is 42"}]}'
cat > "$T/a.lua" <<EOF
local w = require "weft"
w.mcp_server{ name = "test", command = { "$T/mcp-testserver" } }
w.provider{ name = "openai", prices = { ["gpt-test"] = { input = 1, output = 2 } } }
return w.agent{ name = "helper", model = "openai:gpt-test",
  instruction = "Answer about {topic}.", output_key = "answer",
  tools = { w.mcp("test", { only = { "echo" } }) } }
EOF
# A 20 kB topic: the first model request's message blob is a large one.
python3 -c 'import json; print(json.dumps({"topic": "tides " * 4000}))' \
    > "$T/input.json"
cat > "$T/b.lua" <<'EOF'
local w = require "weft"
return w.fn{ name = "hello", function(ctx) return "hello" end }
EOF

# The store every case starts from: one finished run in it already.
run_weft "$T/out" "$T/err" run "$T/b.lua" --db "$T/base.db"
expect_rc 0 "base store"

# run_case DB FAULT [WEFT ARGS...]: the fake model restarted with SCRIPT
# (or $CASE_SCRIPT), DB a fresh copy of the base store, one run under
# WEFT_FAULT=FAULT; sets RC and ID (the newest run).
run_case() {
	_db=$1 _fault=$2
	shift 2
	start_fake "${CASE_SCRIPT:-$SCRIPT}"
	rm -f "$_db" "$_db-wal" "$_db-shm"
	cp "$T/base.db" "$_db"
	RC=0
	WEFT_FAULT="$_fault" "$WEFT" run "$T/a.lua" --db "$_db" \
	    --input-file "$T/input.json" "$@" >"$T/out" 2>"$T/err" || RC=$?
	stop_fake
	ID=$(sqlite3 -batch -noheader "$_db" \
	    "SELECT id FROM runs ORDER BY started DESC LIMIT 1")
}

# check_store DB WHAT [REF]: integrity_check ok, every blob whole, every
# event of the newest run whole, numbered 1..K, and (given REF) the first
# K of the reference run's; prints K.
check_store() {
	python3 - "$1" "${3:-}" <<'PY' || fail "$2: the store after the fault"
import hashlib, json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
ok = db.execute("PRAGMA integrity_check").fetchall()
assert ok == [("ok",)], ok
for h, size, data in db.execute("SELECT hash, size, data FROM blobs"):
    assert len(data) == size, (h, size, len(data))
    assert hashlib.sha256(data).hexdigest() == h, h
(run,) = db.execute("SELECT id FROM runs ORDER BY started DESC LIMIT 1").fetchone()
rows = db.execute("SELECT seq, kind, node_path, payload FROM events "
                  "WHERE run_id = ? ORDER BY seq", (run,)).fetchall()
# worker.* events (a worker's hello, its exit) come when the processes do,
# not at a fixed place in the graph: compared apart from the rest.
ref = [l.rstrip("\n").split("\t") for l in open(sys.argv[2])] if sys.argv[2] else None
if ref is not None:
    ref = [r for r in ref if not r[0].startswith("worker.")]
j = 0
for i, (seq, kind, path, payload) in enumerate(rows):
    assert seq == i + 1, ("seq", seq, i + 1)
    if payload is not None:
        json.loads(payload)
    if ref is not None and not kind.startswith("worker."):
        assert j < len(ref) and [kind, path] == ref[j], (j, kind, path, ref[j] if j < len(ref) else None)
        j += 1
print(len(rows))
PY
}

# The reference: the same run with no fault.
run_case "$T/ref.db" ""
expect_rc 0 "unfaulted run"
expect_grep "$T/out" 'the answer is 42' "unfaulted run: answer"
sqlite3 -batch -noheader -separator "$(printf '\t')" "$T/ref.db" \
    "SELECT kind, node_path FROM events WHERE run_id = '$ID' ORDER BY seq" \
    > "$T/ref.txt"
NREF=$(wc -l < "$T/ref.txt")
grep -q '^tool.result' "$T/ref.txt" && grep -q '^model.response' "$T/ref.txt" ||
    fail "the reference run has no tool or model calls"
ok "reference run: $NREF events"

# expect_stopped FAULT KIND: exit 4 and the message of KIND (full, io) for
# a run the store stopped part way; the run row still says running.
expect_stopped() {
	expect_rc 4 "$1"
	case $2 in
	full) re="the store '$T/c.db' is full \\(disk full: SQLITE_FULL\\)"
	      then_="once space is freed" ;;
	*)    re="the store '$T/c.db' cannot be written \\(I/O error: $2, disk I/O error\\)"
	      then_="once the storage is fixed" ;;
	esac
	expect_grep "$T/err" "^weft: $re while recording event [0-9]+ of run $ID; the run is left as recorded so far \\([0-9]+ events\\) and can be resumed with \`weft resume $ID\` $then_\$" "$1: message"
	[ "$(sqlite3 "$T/c.db" "SELECT status FROM runs WHERE id = '$ID'")" = running ] ||
	    fail "$1: the run row says $(sqlite3 "$T/c.db" "SELECT status FROM runs WHERE id = '$ID'")"
	k=$(check_store "$T/c.db" "$1" "$T/ref.txt")
	[ "$k" -lt "$NREF" ] || fail "$1: $k events, as many as the whole run"
	expect_no_orphans
	ok "$1: exit 4, clear message, store intact, $k of $NREF events recorded"
}

# --- write errors and a full store, from the VFS ---------------------------
for n in 45 80 120; do
	run_case "$T/c.db" "sqlite.write_error:$n"
	expect_stopped "sqlite.write_error:$n" SQLITE_IOERR_WRITE
done
for n in 45 80 120; do
	run_case "$T/c.db" "sqlite.full:$n"
	expect_stopped "sqlite.full:$n" full
done

# A failure at the first write: the run row itself cannot be stored.
before=$(sqlite3 "$T/base.db" "SELECT count(*) FROM runs")
for f in sqlite.write_error:1 sqlite.full:1 sqlite.fsync_error:1; do
	run_case "$T/c.db" "$f"
	expect_rc 4 "$f"
	expect_grep "$T/err" "^weft: the store '$T/c.db' (is full|cannot be written).*: run [0-9a-f]{16} was not started$" "$f: message"
	[ "$(sqlite3 "$T/c.db" "SELECT count(*) FROM runs")" = "$before" ] ||
	    fail "$f: a run row was stored"
	check_store "$T/c.db" "$f" >/dev/null
	expect_no_orphans
done
expect_grep "$T/err" "SQLITE_IOERR_FSYNC" "fsync error named"
ok "a failure at the run's first write: exit 4, no run row, store intact"

# An fsync error at the checkpoint on close: the commits are in the WAL,
# the checkpoint is given up and done at the next open; nothing is lost.
run_case "$T/c.db" "sqlite.fsync_error:2"
expect_rc 0 "sqlite.fsync_error:2"
k=$(check_store "$T/c.db" "sqlite.fsync_error:2" "$T/ref.txt")
[ "$k" -eq "$NREF" ] || fail "sqlite.fsync_error:2: $k events of $NREF"
[ "$(sqlite3 "$T/c.db" "SELECT status FROM runs WHERE id = '$ID'")" = succeeded ] ||
    fail "sqlite.fsync_error:2: run not succeeded"
expect_no_orphans
ok "an fsync error at the closing checkpoint loses nothing"

# --- resume after a full store ---------------------------------------------
run_case "$T/c.db" "sqlite.full:120"
expect_stopped "sqlite.full:120 (then resumed)" full
k=$(sqlite3 "$T/c.db" "SELECT count(*) FROM events WHERE run_id = '$ID' AND kind = 'model.response'")
rest=$(python3 -c 'import json, sys; s = json.loads(sys.argv[1]); s["gpt-test"] = s["gpt-test"][int(sys.argv[2]):]; print(json.dumps(s))' "$SCRIPT" "$k")
start_fake "$rest"
run_weft "$T/out" "$T/err" resume "$ID" --db "$T/c.db"
expect_rc 0 "resume after a full store"
expect_grep "$T/out" 'the answer is 42' "resume: answer"
live=$(wc -l < "$T/fake.log")
[ "$live" -eq $((3 - k)) ] || fail "resume: $live live model calls, expected $((3 - k))"
stop_fake
[ "$(sqlite3 "$T/c.db" "SELECT status FROM runs WHERE id = '$ID'")" = succeeded ] ||
    fail "resume: the run is not succeeded"
check_store "$T/c.db" "resume" >/dev/null
expect_no_orphans
ok "a run stopped by a full store resumes to the same answer ($k recorded model answers reused)"

# --- the store's crash points ----------------------------------------------
for f in store.before_commit:2 store.before_commit:5 store.after_commit:2 \
    store.after_commit:5 blob.mid_write:1 blob.mid_write:4; do
	run_case "$T/c.db" "$f"
	expect_rc 137 "$f"
	expect_grep "$T/err" "^weft: WEFT_FAULT: crash at ${f%:*}\$" "$f: crash line"
	[ "$(sqlite3 "$T/c.db" "SELECT status FROM runs WHERE id = '$ID'")" = running ] ||
	    fail "$f: the run row is not left running"
	k=$(check_store "$T/c.db" "$f" "$T/ref.txt")
	expect_no_orphans
	ok "$f: killed, store intact, $k of $NREF events, no partial blob"
done
# After a crash mid-write, the blob being written is absent, not partial:
# the first message (the 20 kB topic) is not in the store.  (The run's
# input, over 16 kB, is a blob too, written with the run row.)
run_case "$T/c.db" "blob.mid_write:1"
[ "$(sqlite3 "$T/c.db" "SELECT count(*) FROM blobs WHERE size > 20000 AND hash NOT IN (SELECT input_blob FROM runs WHERE input_blob IS NOT NULL)")" = 0 ] ||
    fail "blob.mid_write:1: the half-written blob is visible"
ok "blob.mid_write: the half-written blob never appears"

# --- a real full disk -------------------------------------------------------
# A 256 kB tmpfs in a user+mount namespace holds a copy of the base store;
# the model's 300 kB answer cannot fit.
if ! unshare -rm sh -c "mkdir -p '$T/small' && mount -t tmpfs -o size=256k tmpfs '$T/small'" 2>"$T/unshare.err"; then
	echo "SKIP: real full disk: cannot mount a tmpfs in a user+mount namespace ($(cat "$T/unshare.err")); the VFS cases above cover SQLITE_FULL" >&2
else
	python3 -c 'import json; print(json.dumps({"gpt-test": [{"tool_calls": [{"name": "echo", "args": {"message": "ping"}}]}, {"text": "x" * 300000}]}))' > "$T/big.json"
	start_fake "$(cat "$T/big.json")"
	cat > "$T/full.sh" <<'EOF'
T=$1
mount -t tmpfs -o size=256k tmpfs "$T/small" || exit 99
cp "$T/base.db" "$T/small/s.db"
rc=0
"$WEFT" run "$T/a.lua" --db "$T/small/s.db" --input '{"topic":"tides"}' \
    >"$T/out" 2>"$T/err" || rc=$?
echo "$rc" > "$T/full.rc"
for f in "$T"/small/s.db*; do cp "$f" "$T/full${f#"$T"/small/s}"; done
EOF
	unshare -rm sh "$T/full.sh" "$T" || fail "real full disk: the namespace script failed"
	stop_fake
	RC=$(cat "$T/full.rc")
	expect_rc 4 "real full disk"
	expect_grep "$T/err" "^weft: the store '$T/small/s.db' is full \\(disk full: SQLITE_FULL\\) while recording event [0-9]+ of run [0-9a-f]{16}; .* once space is freed\$" "real full disk: message"
	check_store "$T/full.db" "real full disk" >/dev/null
	[ "$(sqlite3 "$T/full.db" "SELECT status FROM runs ORDER BY started DESC LIMIT 1")" = running ] ||
	    fail "real full disk: the run row is not left running"
	expect_no_orphans
	ok "a real full disk (tmpfs): exit 4, clear message, store intact"
fi

# --- the storage fails while the store is opened ----------------------------
# A new store whose first write fails: weft run exits 4, as for a store
# failing during a run (README, "Exit status"), and so does weft resume.
for f in sqlite.full:1 sqlite.write_error:1; do
	rm -f "$T/n.db" "$T/n.db-wal" "$T/n.db-shm"
	RC=0
	WEFT_FAULT="$f" "$WEFT" run "$T/b.lua" --db "$T/n.db" >"$T/out" 2>"$T/err" || RC=$?
	expect_rc 4 "$f at open"
	expect_grep "$T/err" "^weft: cannot open database '$T/n.db': (database or disk is full|disk I/O error)" "$f at open: message"
	expect_no_orphans
done
RC=0
WEFT_FAULT=sqlite.full:1 "$WEFT" resume 0123456789abcdef --db "$T/n2.db" >"$T/out" 2>"$T/err" || RC=$?
expect_rc 4 "weft resume: the store full at open"
ok "a store that cannot be written when it is opened: exit 4"
# The same on a real full disk: a tmpfs filled up before weft starts.
cat > "$T/fullopen.sh" <<'EOF2'
T=$1
mount -t tmpfs -o size=256k tmpfs "$T/small" || exit 99
dd if=/dev/zero of="$T/small/fill" bs=4k 2>/dev/null
rc=0
"$WEFT" run "$T/b.lua" --db "$T/small/new.db" >"$T/out" 2>"$T/err" || rc=$?
echo "$rc" > "$T/fullopen.rc"
EOF2
if unshare -rm sh -c "mount -t tmpfs -o size=256k tmpfs '$T/small'" 2>/dev/null; then
	unshare -rm sh "$T/fullopen.sh" "$T" || fail "full disk at open: the namespace script failed"
	RC=$(cat "$T/fullopen.rc")
	expect_rc 4 "a real full disk at open"
	expect_grep "$T/err" "^weft: cannot open database '$T/small/new.db': database or disk is full" "a real full disk at open: message"
	expect_no_orphans
	ok "a real full disk when the store is created: exit 4"
else
	echo "SKIP: a real full disk at open: no tmpfs in a user+mount namespace" >&2
fi

# --- a large input is stored once -------------------------------------------
# A 10 MB input: the run row keeps it as one blob, run.start names that
# blob, run.end's state leaves out what is the input's: the store grows by
# about 10 MB, not 40.  weft show gives the input back; a run that crashed
# resumes, and replays.
cat > "$T/big.lua" <<'EOF2'
local w = require "weft"
return w.sequential{ name = "s",
  w.fn{ name = "size", output_key = "size", function(ctx) return #ctx.input.big end },
  w.fn{ name = "echo", output_key = "tail", function(ctx) return ctx.input.big:sub(-5) end } }
EOF2
python3 -c 'import json; print(json.dumps({"big": "x" * (10 * 1024 * 1024 - 5) + "abcde", "small": 1}))' > "$T/bigin.json"
rm -f "$T/big.db"*
cp "$T/base.db" "$T/big.db"
size0=$(stat -c %s "$T/big.db")
run_weft "$T/out" "$T/err" run "$T/big.lua" --db "$T/big.db" --input-file "$T/bigin.json" -q
expect_rc 0 "a run with a 10 MB input"
grow=$(( $(stat -c %s "$T/big.db") + $(stat -c %s "$T/big.db-wal" 2>/dev/null || echo 0) - size0 ))
[ "$grow" -gt 10485760 ] && [ "$grow" -lt 11534336 ] ||
    fail "a 10 MB input grew the store by $grow bytes"
B=$(sqlite3 "$T/big.db" "SELECT id FROM runs ORDER BY started DESC LIMIT 1")
[ "$(sqlite3 "$T/big.db" "SELECT count(*) FROM blobs WHERE size > 10000000")" = 1 ] ||
    fail "the input is not one blob"
run_weft "$T/out" "$T/err" show "$B" --db "$T/big.db" --json
expect_rc 0 "weft show of the big run"
python3 - "$T/out" <<'PY' || fail "weft show: the input or the events"
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["run"]["input"]["big"]) == 10 * 1024 * 1024 and d["run"]["input"]["small"] == 1
ev = {e["kind"]: e["payload"] for e in d["events"]}
assert "input" not in ev["run.start"] and len(ev["run.start"]["input_blob"]) == 64, ev["run.start"]
assert ev["run.end"]["state"] == {"size": 10 * 1024 * 1024, "tail": "abcde"}, ev["run.end"]["state"]
assert sorted(ev["run.end"]["state_from_input"]) == ["big", "small"], ev["run.end"]
PY
run_weft "$T/out" "$T/err" replay "$B" --db "$T/big.db"
expect_rc 0 "replay of the big run"
expect_grep "$T/out" '^identical' "replay of the big run: identical"
ok "a 10 MB input grows the store by $grow bytes; weft show and replay read it"
RC=0
WEFT_FAULT=store.after_commit:2 "$WEFT" run "$T/big.lua" --db "$T/big.db" \
    --input-file "$T/bigin.json" -q >"$T/out" 2>"$T/err" || RC=$?
expect_rc 137 "the big run crashed"
B=$(sqlite3 "$T/big.db" "SELECT id FROM runs ORDER BY started DESC LIMIT 1")
run_weft "$T/out" "$T/err" resume "$B" --db "$T/big.db"
expect_rc 0 "resume of the big run"
expect_grep "$T/out" '^abcde$' "resume: the answer"
[ "$(sqlite3 "$T/big.db" "SELECT count(*) FROM blobs WHERE size > 10000000")" = 1 ] ||
    fail "the same input twice is not one blob"
expect_no_orphans
ok "a run with a 10 MB input resumes after a crash; the input is still one blob"
