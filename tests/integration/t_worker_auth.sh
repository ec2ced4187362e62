#!/bin/sh
# Workers prove who they are (docs/security.md, "Workers prove who they
# are"): a tool server that finds the coordinator's socket and says hello
# as worker 0 is refused and recorded, cannot take other servers' calls,
# and is not told where the socket is.  A peer speaking the wire badly
# (wrong version, unknown worker, unknown method, garbage) gets an error
# and the coordinator goes on (it once released a request id twice).
. "$WEFT_SRCDIR/tests/integration/lib.sh"

mkdir -p "$T/tmp"
# The attacker at its strongest: network granted, and allowed to list the
# directory that holds the coordinator's socket.
cat > "$T/wf.lua" <<EOF2
local w = require "weft"
w.mcp_server{ name = "h", command = { "$WEFT_HOSTILE" },
  sandbox = { network = true, read = { "$T/tmp" } } }
$(testserver_decl)
local calls = { name = "calls" }
for i = 1, 8 do
  calls[#calls + 1] = w.tool{ name = "e" .. i, server = "test", tool = "echo",
    args = { message = "m" .. i }, output_key = "e" .. i }
end
return w.sequential{ name = "s",
  w.tool{ name = "pose", server = "h", tool = "pose_as_worker",
    args = { dir = "$T/tmp", worker = 0 }, output_key = "pose" },
  w.tool{ name = "bad", server = "h", tool = "bad_wire",
    args = { dir = "$T/tmp" }, output_key = "bad" },
  w.parallel(calls),
  w.fn{ name = "out", function(ctx)
    local r = { pose = ctx.state.pose, bad = ctx.state.bad }
    for i = 1, 8 do r["e" .. i] = ctx.state["e" .. i] end
    return r
  end } }
EOF2
(cd "$T" && TMPDIR="$T/tmp" "$WEFT" run wf.lua --workers 2 -q \
    > "$T/out" 2> "$T/err") || { cat "$T/err" >&2; fail "the run failed"; }
python3 - "$T/out" <<'PY' || fail "a server posed as a worker"
import json, sys
out = json.load(open(sys.argv[1]))
pose = out["pose"]
tries = pose["tries"]
assert tries, "the hostile server found no socket to attack: %s" % pose
assert not pose["ok"], "the coordinator let the impostor in: %s" % pose
for t in tries:
    assert "refused" in t["hello"], t
    assert "enrolment secret" in t["hello"]["refused"], t
    assert "refused" in t["heartbeat"], t
    assert "not enrolled" in t["heartbeat"]["refused"], t
for i in range(1, 9):
    want = "Echo: m%d" % i
    got = json.dumps(out["e%d" % i])
    assert want in got and "forged" not in got, (i, got)
print("  refused: %s" % tries[0]["hello"]["refused"])
PY
ok "a tool server posing as worker 0 is refused; every call answered by its real server"

# The bad peer: every message answered with an error naming what was wrong,
# the id echoed where there was one; the run went on (the echoes above).
python3 - "$T/out" <<'PY' || fail "a bad peer on the wire"
import json, sys
bad = json.load(open(sys.argv[1]))["bad"]
assert bad["ok"], bad
a = [json.loads(x) for x in bad["answers"]]
want = [(7, "protocol version mismatch"), ("a", "/params/worker: unknown worker id"),
        (None, "/id: must be"), (3, "unknown method 'frobnicate'"),
        (4, "/params/worker"),
        (None, "expected a request"), (10, "not enrolled"), (None, "invalid JSON"),
        (None, "")]
for got, (wid, text) in zip(a, want):
    print("  ", json.dumps(got))
    assert "error" in got, got
    assert got.get("id") == wid, (got, wid)
    assert text.lower() in got["error"]["message"].lower(), (got, text)
assert len(a) == len(want), a
print("  %d bad messages answered" % len(a))
PY
ok "a peer speaking the wire badly gets errors; the coordinator goes on"

expect_grep "$T/err" "claiming worker 0 was refused" "the refusal is said on stderr"
RUN=$(last_run)
n=$(sql "SELECT count(*) FROM events WHERE run_id='$RUN' AND kind='worker.refused'")
[ "$n" -ge 2 ] || fail "worker.refused events: $n, expected the hello and the heartbeat"
sql "SELECT payload FROM events WHERE run_id='$RUN' AND kind='worker.refused'" > "$T/refused"
expect_grep "$T/refused" '"method":"hello".*"reason":"no enrolment secret"' "the hello refusal is recorded"
expect_grep "$T/refused" '"peer_pid":[1-9]' "the refusal names the peer's pid"
# One worker.sandbox per worker that said hello (a worker still starting
# when the run ended has none): the impostor's hello added none.
n=$(sql "SELECT count(DISTINCT json_extract(payload,'\$.worker')) || '/' || count(*) FROM events WHERE run_id='$RUN' AND kind='worker.sandbox'")
case "$n" in 1/1|2/2) ;; *) fail "worker.sandbox events (workers/events): $n, expected one per worker" ;; esac
ok "the refusals are recorded (worker.refused), one worker.sandbox per worker"

# The server was not handed the socket: its scratch dir does not lead there.
python3 - "$T/out" <<'PY' || fail "the scratch dir leads to the socket"
import json, sys
found = json.load(open(sys.argv[1]))["pose"]["found"]
assert all("/weft-" in f for f in found), found
PY
[ -z "$(ls "$T/tmp")" ] || { ls -la "$T/tmp" >&2; fail "the run left files in TMPDIR"; }
ok "the socket is not beside the scratch dirs; nothing left in TMPDIR"

# A coordinator killed with -9 leaves its directories (socket, scratch);
# the next coordinator removes them, and leaves a live one's alone.
mkdir -p "$T/tmp2"
cat > "$T/slow.lua" <<EOF2
local w = require "weft"
$(testserver_decl)
return w.tool{ name = "slow", server = "test", tool = "sleep",
  args = { ms = 600000 } }
EOF2
(cd "$T" && TMPDIR="$T/tmp2" exec "$WEFT" run slow.lua --workers 1 -q \
    > "$T/out2" 2> "$T/err2") &
PID=$!
i=0
until [ "$(sql "SELECT count(*) FROM events e JOIN runs r ON r.id = e.run_id
    WHERE r.workflow LIKE '%slow.lua' AND e.kind = 'tool.call'" 2>/dev/null)" = 1 ]; do
	i=$((i + 1)); [ $i -lt 2400 ] || fail "the slow call did not start in 2 minutes"
	sleep 0.05
done
kill -9 "$PID"
wait "$PID" 2>/dev/null
left=$(ls "$T/tmp2" | grep -c '^weft-')
[ "$left" -ge 2 ] || { ls -la "$T/tmp2" >&2; fail "the killed run left $left directories, expected its socket and scratch dirs"; }
mkdir "$T/tmp2/weft-live00"
echo "$$ $(awk '{ sub(/.*\) /, ""); split($0, f, " "); print f[20] }' /proc/$$/stat)" \
    > "$T/tmp2/weft-live00/owner"
cat > "$T/quick.lua" <<'EOF2'
local w = require "weft"
return w.fn{ name = "f", function() return "done" end }
EOF2
(cd "$T" && TMPDIR="$T/tmp2" "$WEFT" run quick.lua -q > "$T/out3" 2> "$T/err3") ||
    { cat "$T/err3" >&2; fail "the run after the crash"; }
[ "$(ls "$T/tmp2")" = "weft-live00" ] ||
    { ls -la "$T/tmp2" >&2; fail "what the killed coordinator left was not removed (or a live one's was)"; }
ok "what a coordinator killed with -9 left is removed by the next run; a live one's is kept"

# A second connection for a worker that is connected, even with the right
# secret (as if it had been stolen), is refused and recorded.
cat > "$T/echo.lua" <<EOF2
local w = require "weft"
$(testserver_decl)
return w.tool{ name = "e", server = "test", tool = "echo", args = { message = "hi" } }
EOF2
(cd "$T" && WEFT_FAULT=worker.second_hello:1 "$WEFT" run echo.lua --workers 1 -q \
    > "$T/out4" 2> "$T/err4") || { cat "$T/err4" >&2; fail "the run with a second hello"; }
expect_grep "$T/err4" 'second hello: .*"code":-32001.*worker 0 is connected already' \
    "the second connection is refused"
RUN=$(last_run)
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$RUN' AND kind='worker.refused' AND payload LIKE '%connected already%'")" = 1 ] ||
    fail "the second hello is not recorded"
ok "a second connection claiming a connected worker is refused and recorded"
