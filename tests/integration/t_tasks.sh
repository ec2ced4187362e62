#!/bin/sh
# Task execution semantics (docs/durability.md, "Task execution"): attempt
# timeouts and retries, retries used up, queue timeout, a hung worker's
# lease (heartbeat) and its late answer, idempotent = false after a lost
# worker, idempotency keys, and weft cancel of a run with a tool call and
# a model call in flight.
. "$(dirname "$0")/lib.sh"

# The test server logs its calls (and their idempotency keys) to $T/calls;
# its sleep tool writes markers and the `once` file in $T.
decl() {
	printf 'w.mcp_server{ name = "test", command = { "%s", "--log", "%s", "--log-meta" }, sandbox = { write = { "%s" } }%s }\n' \
	    "$WEFT_TESTSERVER" "$T/calls" "$T" "${1:-}"
}

# wait_for FILE WHAT: until FILE is not empty (10 s).
wait_for() {
	i=0
	while [ ! -s "$1" ]; do
		i=$((i + 1))
		[ $i -lt 200 ] || fail "$2"
		sleep 0.05
	done
}

# wait_sql QUERY WHAT: until QUERY answers something other than 0 (15 s).
wait_sql() {
	i=0
	while [ "$(sql "$1" 2>/dev/null)" = 0 ] || [ -z "$(sql "$1" 2>/dev/null)" ]; do
		i=$((i + 1))
		[ $i -lt 300 ] || fail "$2"
		sleep 0.05
	done
}

# --- An attempt that outlives its timeout is cancelled and retried.
{
	echo 'local w = require "weft"'
	decl
	cat <<EOF2
return w.sequential{ name = "s",
  w.tool{ name = "slow", server = "test", tool = "sleep", output_key = "r",
          args = { ms = 20000, once = "$T/once", text = "second try" },
          timeout = { attempt = 1 }, retry = { backoff = 0.1 } },
  w.fn{ name = "out", function(ctx) return ctx.state.r end } }
EOF2
} > "$T/a.lua"
rm -f "$T/calls" "$T/once"
run_weft "$T/out" "$T/err" run "$T/a.lua" --workers 2 -q
expect_rc 0 "attempt timeout then retry"
[ "$(cat "$T/out")" = "second try" ] || fail "output '$(cat "$T/out")'"
id=$(last_run)
[ "$(sql "SELECT json_extract(payload,'\$.kind') || ':' || attempt FROM events WHERE run_id='$id' AND kind='task.retry'")" = timeout:1 ] ||
    fail "one task.retry of kind timeout after attempt 1"
sql "SELECT json_extract(payload,'\$.delay') FROM events WHERE run_id='$id' AND kind='task.retry'" > "$T/delay"
awk '$1 < 0 || $1 > 0.1 { exit 1 }' "$T/delay" || fail "retry delay $(cat "$T/delay") outside [0, 0.1]"
[ "$(sql "SELECT attempt FROM events WHERE run_id='$id' AND kind='tool.result'")" = 2 ] || fail "result from attempt 2"
expect_grep "$T/calls" '^notifications/cancelled ' "the timed-out attempt was cancelled on the server"
[ "$(grep -c '^sleep ' "$T/calls")" = 2 ] || fail "the server saw two calls"
# Both attempts carried the task's idempotency key: RUN:TASK, the same.
grep '^meta ' "$T/calls" | sort -u > "$T/keys"
[ "$(wc -l < "$T/keys")" = 1 ] || fail "attempts carried different idempotency keys: $(cat "$T/keys")"
expect_grep "$T/keys" "^meta \"$id:[0-9]+\"\$" "idempotency key in _meta"
[ "$(sql "SELECT count(*) FROM tasks WHERE run_id='$id' AND idem_key LIKE '$id:%'")" -ge 1 ] || fail "tasks.idem_key"
ok "attempt timeout: cancelled (notifications/cancelled), retried, same idempotency key"

# --- Retries used up: a clear error naming the kind and the attempts.
{
	echo 'local w = require "weft"'
	decl
	cat <<EOF2
return w.tool{ name = "slow", server = "test", tool = "sleep", args = { ms = 20000 },
               timeout = 0.5, retry = { max_attempts = 2, backoff = 0 } }
EOF2
} > "$T/b.lua"
rm -f "$T/calls"
run_weft "$T/out" "$T/err" run "$T/b.lua" --workers 1 -q
expect_rc 1 "retries used up"
expect_grep "$T/err" "within the attempt's timeout of 0.5 s.*gave up after 2 attempts" "error names the timeout and the attempts"
id=$(last_run)
[ "$(sql "SELECT json_extract(payload,'\$.error.kind') FROM events WHERE run_id='$id' AND kind='tool.error'")" = timeout ] ||
    fail "tool.error kind timeout"
[ "$(grep -c '^sleep ' "$T/calls")" = 2 ] || fail "two attempts, got $(grep -c '^sleep ' "$T/calls")"
ok "retries used up: run failed with a clear error"

# The same policy given to the servers of an MCP host config file.
printf '{ "mcpServers": { "test": { "command": "%s", "args": ["--log", "%s"] } } }\n' \
    "$WEFT_TESTSERVER" "$T/calls" > "$T/servers.json"
cat > "$T/cfg.lua" <<EOF2
local w = require "weft"
w.mcp_config("servers.json", { timeout = 0.5, retry = { max_attempts = 2, backoff = 0 },
                               sandbox = { write = { "$T" } } })
return w.tool{ name = "slow", server = "test", tool = "sleep", args = { ms = 20000 } }
EOF2
rm -f "$T/calls"
run_weft "$T/out" "$T/err" run "$T/cfg.lua" --workers 1 -q
expect_rc 1 "retries used up, policy from w.mcp_config"
expect_grep "$T/err" "within the attempt's timeout of 0.5 s.*gave up after 2 attempts" "w.mcp_config: timeout and retry applied"
[ "$(grep -c '^sleep ' "$T/calls")" = 2 ] || fail "w.mcp_config: two attempts, got $(grep -c '^sleep ' "$T/calls")"
sed 's/backoff = 0 }/backoff = 0 }, idempotent = "no"/' "$T/cfg.lua" > "$T/cfg2.lua"
run_weft "$T/out" "$T/err" run "$T/cfg2.lua" -q
expect_rc 2 "w.mcp_config: bad idempotent"
expect_grep "$T/err" "cfg2.lua:2: w.mcp_config: .*/mcpServers/test: .*idempotent must be true or false" "bad idempotent named with file:line and the server"
sed 's/timeout = 0.5,/timeout = 0.5, idempotant = false,/' "$T/cfg.lua" > "$T/cfg3.lua"
run_weft "$T/out" "$T/err" run "$T/cfg3.lua" -q
expect_rc 2 "w.mcp_config: unknown option"
expect_grep "$T/err" "cfg3.lua:2: w.mcp_config: unknown option 'idempotant' .*did you mean 'idempotent'" "unknown option with a suggestion"
ok "w.mcp_config passes timeout, retry and idempotent to its servers"

# retry.on without "timeout": a timed-out attempt is not retried.
sed 's/retry = { max_attempts = 2, backoff = 0 }/retry = { max_attempts = 3, on = { "lost_worker" } }/' "$T/b.lua" > "$T/b2.lua"
grep -q 'on = { "lost_worker" }' "$T/b2.lua" || fail "b2.lua not made"
rm -f "$T/calls"
run_weft "$T/out" "$T/err" run "$T/b2.lua" --workers 1 -q
expect_rc 1 "timeout not in retry.on"
expect_no_grep "$T/err" "gave up after" "no retries"
id=$(last_run)
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='task.retry'")" = 0 ] || fail "no task.retry"
[ "$(grep -c '^sleep ' "$T/calls")" = 1 ] || fail "one attempt, got $(grep -c '^sleep ' "$T/calls")"
ok "retry.on decides which failure kinds are retried"

# The total timeout bounds all attempts: the second is cut to what is left.
sed 's/timeout = 0.5, retry = { max_attempts = 2, backoff = 0 }/timeout = { attempt = 1, total = 1.5 }, retry = { max_attempts = 5, backoff = 0 }/' "$T/b.lua" > "$T/b3.lua"
grep -q 'total = 1.5' "$T/b3.lua" || fail "b3.lua not made"
rm -f "$T/calls"
run_weft "$T/out" "$T/err" run "$T/b3.lua" --workers 1 -q
expect_rc 1 "total timeout"
expect_grep "$T/err" "total timeout of 1.5s" "error names the total timeout"
[ "$(grep -c '^sleep ' "$T/calls")" = 2 ] || fail "two attempts, got $(grep -c '^sleep ' "$T/calls")"
ok "total timeout: attempts stop when the task's time is up"

# --- A task no worker takes in time fails with queue_timeout.
{
	echo 'local w = require "weft"'
	decl
	cat <<EOF2
return w.parallel{ name = "p",
  w.tool{ name = "a", server = "test", tool = "sleep", args = { ms = 4000 }, timeout = { queue = 1 } },
  w.tool{ name = "b", server = "test", tool = "sleep", args = { ms = 4000 }, timeout = { queue = 1 } } }
EOF2
} > "$T/q.lua"
run_weft "$T/out" "$T/err" run "$T/q.lua" --workers 1 --slots 1 -q
expect_rc 1 "queue timeout"
expect_grep "$T/err" "no worker took the task within its queue timeout of 1s" "queue timeout message"
id=$(last_run)
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='tool.error' AND json_extract(payload,'\$.error.kind')='queue_timeout'")" = 1 ] ||
    fail "one tool.error of kind queue_timeout"
ok "queue timeout"

# --- A hung worker (SIGSTOP): its lease expires after the heartbeat
# timeout, the task runs elsewhere, and its late answer is ignored.
{
	echo 'local w = require "weft"'
	decl
	cat <<EOF2
return w.sequential{ name = "s",
  w.tool{ name = "slow", server = "test", tool = "sleep", output_key = "r",
          args = { ms = 1500, marker = "$T/marker", text = "from elsewhere" },
          timeout = { heartbeat = 2 } },
  w.tool{ name = "after", server = "test", tool = "sleep", args = { ms = 2500 } },
  w.fn{ name = "out", function(ctx) return ctx.state.r end } }
EOF2
} > "$T/h.lua"
rm -f "$T/marker" "$T/calls"
"$WEFT" run "$T/h.lua" --workers 2 -q > "$T/out" 2> "$T/err" &
pid=$!
wait_for "$T/marker" "the tool call never started"
victim=$(cat "$T/marker")
rm -f "$T/marker"
grep -q "worker" "/proc/$victim/cmdline" 2>/dev/null || fail "pid $victim is not a worker"
kill -STOP "$victim"
id=$(last_run)
wait_sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='task.retry'" "no retry after the lease expired"
# The other worker now runs attempt 2; wake the hung one, whose server
# answered attempt 1 meanwhile.
kill -CONT "$victim"
RC=0
wait $pid || RC=$?
expect_rc 0 "run with a hung worker"
[ "$(cat "$T/out")" = "from elsewhere" ] || fail "output '$(cat "$T/out")'"
sql "SELECT json_extract(payload,'\$.kind') || ' ' || json_extract(payload,'\$.reason') FROM events WHERE run_id='$id' AND kind='task.retry'" > "$T/why"
expect_grep "$T/why" "^lost_worker lease of worker [0-9]+ expired \(no heartbeat for 2.0s\)" "retry reason: lease expired"
[ "$(sql "SELECT attempt FROM events WHERE run_id='$id' AND kind='tool.result' AND node_path='s/slow'")" = 2 ] ||
    fail "result of s/slow from attempt 2"
sql "SELECT json_extract(payload,'\$.attempt') || ' ' || json_extract(payload,'\$.outcome') || ' ' || json_extract(payload,'\$.now') FROM events WHERE run_id='$id' AND kind='task.late'" > "$T/late"
expect_grep "$T/late" "^1 complete (leased|ended)$" "the hung worker's late complete is recorded, ignored"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='tool.result' AND node_path='s/slow'")" = 1 ] ||
    fail "one result recorded for s/slow"
ok "hung worker: lease expired after the heartbeat timeout, retried elsewhere, late complete ignored and recorded"
expect_no_orphans

# --- idempotent = false: a call lost in flight is not re-run; the run
# stops and says why.
{
	echo 'local w = require "weft"'
	decl ', idempotent = false'
	cat <<EOF2
return w.sequential{ name = "s",
  w.tool{ name = "pay", server = "test", tool = "sleep", output_key = "r",
          args = { ms = 3000, marker = "$T/marker", text = "paid" } } }
EOF2
} > "$T/i.lua"
rm -f "$T/marker" "$T/calls"
"$WEFT" run "$T/i.lua" --workers 2 -q > "$T/out" 2> "$T/err" &
pid=$!
wait_for "$T/marker" "the tool call never started"
victim=$(cat "$T/marker")
kill -9 "$victim"
RC=0
wait $pid || RC=$?
expect_rc 1 "non-idempotent call lost"
expect_grep "$T/err" "tool call test.sleep \(node s/pay, task [0-9]+, attempt 1\) was in flight when worker [0-9]+ \(pid $victim\) killed by signal 9 \(Killed\); the tool is idempotent = false, so it was not run again" "error names the call and why"
expect_grep "$T/err" "weft resume [0-9a-f]{16}" "error says what to do"
id=$(last_run)
[ "$(sql "SELECT status FROM runs WHERE id='$id'")" = failed ] || fail "run failed"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='task.lost'")" = 1 ] || fail "task.lost recorded"
[ "$(sql "SELECT json_extract(payload,'\$.error.kind') FROM events WHERE run_id='$id' AND kind='tool.error'")" = not_idempotent_lost ] ||
    fail "tool.error kind not_idempotent_lost"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='task.retry'")" = 0 ] || fail "no retry"
[ "$(grep -c '^sleep ' "$T/calls")" = 1 ] || fail "the tool saw the call $(grep -c '^sleep ' "$T/calls") times"
ok "idempotent = false + worker killed: not re-run, run failed with a clear, recorded state"

# A resume does not call it again unless told to.
run_weft "$T/out" "$T/err" resume "$id" --workers 1 -q
expect_rc 1 "resume of a run with a lost non-idempotent call"
expect_grep "$T/err" "call\(s\) of a tool marked idempotent = false were lost in flight" "resume says why it refuses"
expect_grep "$T/err" "^  - tool call test.sleep \(node s/pay" "resume lists the lost call"
expect_grep "$T/err" "weft resume $id --rerun-lost" "resume says how to go on"
[ "$(grep -c '^sleep ' "$T/calls")" = 1 ] || fail "a refused resume made no call"
run_weft "$T/out" "$T/err" resume "$id" --workers 1 -q --rerun-lost
expect_rc 0 "resume --rerun-lost"
expect_grep "$T/out" "paid" "the re-made call's answer"
[ "$(grep -c '^sleep ' "$T/calls")" = 2 ] || fail "--rerun-lost called the tool once more"
run_weft "$T/out" "$T/err" resume "$id" -q
expect_rc 1 "a succeeded run is not resumed"
ok "resume refuses to re-make a lost non-idempotent call unless --rerun-lost"
expect_no_orphans

# --- Bad policies are refused with file:line.
printf 'local w = require "weft"\n%s\nlocal t = w.tool{ server = "test", tool = "echo", retry = { on = { "rpc_error" } } }\nreturn t\n' "$(decl)" > "$T/bad.lua"
run_weft "$T/out" "$T/err" validate "$T/bad.lua"
[ "$RC" -ne 0 ] || fail "retry.on rpc_error accepted"
expect_grep "$T/err" "bad.lua:3: .*retry.on\[1\]: 'rpc_error' is not a retryable failure kind" "bad retry kind"
printf 'local w = require "weft"\n%s\nlocal t = w.tool{ server = "test", tool = "echo", timeout = { atempt = 1 } }\nreturn t\n' "$(decl)" > "$T/bad.lua"
run_weft "$T/out" "$T/err" validate "$T/bad.lua"
expect_grep "$T/err" "bad.lua:3: .*unknown field 'atempt' in timeout .*did you mean 'attempt'" "bad timeout field"
ok "bad policies refused with file:line"

# --- weft cancel from another terminal, with a tool call and a model call
# in flight: the run ends cancelled, the tool server is told
# (notifications/cancelled), the model connection is closed.
printf '%s\n' '{"gpt-test": [{"text":"never seen","stall_ms":30000}]}' > "$T/script.json"
rm -f "$T/port" "$T/fake.log" "$T/closes"
"$WEFT_FAKEMODEL" --port-file "$T/port" --script "$T/script.json" --log "$T/fake.log" \
    --closes "$T/closes" >/dev/null 2>"$T/fake.err" &
FAKE_PID=$!
wait_for "$T/port" "fakemodel did not start"
export OPENAI_BASE_URL="http://127.0.0.1:$(cat "$T/port")/v1" OPENAI_API_KEY=sk-test
{
	echo 'local w = require "weft"'
	decl
	cat <<EOF2
w.provider{ name = "openai", prices = { ["gpt-test"] = { input = 1, output = 2 } } }
return w.parallel{ name = "p",
  w.tool{ name = "slow", server = "test", tool = "sleep", args = { ms = 30000, marker = "$T/marker" } },
  w.agent{ name = "think", model = "openai:gpt-test", instruction = "Think.", stream = false } }
EOF2
} > "$T/c.lua"
rm -f "$T/marker" "$T/calls"
"$WEFT" run "$T/c.lua" --workers 2 -q > "$T/out" 2> "$T/err" &
pid=$!
wait_for "$T/marker" "the tool call never started"
wait_for "$T/fake.log" "the model call never started"
id=$(last_run)
run_weft "$T/cout" "$T/cerr" cancel "${id%????}"
[ "$RC" -eq 0 ] || { cat "$T/cerr" >&2; fail "weft cancel: exit $RC"; }
expect_grep "$T/cout" "^run $id cancelled\$" "weft cancel says the run ended cancelled"
RC=0
wait $pid || RC=$?
expect_rc 130 "cancelled run"
[ "$(sql "SELECT status FROM runs WHERE id='$id'")" = cancelled ] || fail "run recorded as cancelled"
[ "$(sql "SELECT json_extract(payload,'\$.status') FROM events WHERE run_id='$id' AND kind='run.end'")" = cancelled ] ||
    fail "run.end cancelled"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='tool.error' AND json_extract(payload,'\$.error.kind')='cancelled'")" = 1 ] ||
    fail "the in-flight tool call recorded as cancelled"
expect_grep "$T/calls" '^notifications/cancelled ' "the tool server got notifications/cancelled"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='model.error' AND json_extract(payload,'\$.kind')='cancelled'")" = 1 ] ||
    fail "the in-flight model call recorded as cancelled"
[ "$(sql "SELECT max(seq) FROM events WHERE run_id='$id'")" = "$(sql "SELECT seq FROM events WHERE run_id='$id' AND kind='run.end'")" ] ||
    fail "run.end is the last event"
i=0
while ! grep -q '^closed gpt-test' "$T/closes" 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "the model connection was not closed"
	sleep 0.05
done
ok "weft cancel: run cancelled, tool told (notifications/cancelled), model connection closed"
stop_fake
expect_no_orphans

run_weft "$T/cout" "$T/cerr" cancel "$id"
expect_rc 1 "cancel of a finished run"
expect_grep "$T/cerr" "run $id is not running \(status: cancelled\); nothing to cancel" "finished run refused"
run_weft "$T/cout" "$T/cerr" cancel 0123456789abcdef
expect_rc 1 "cancel of an unknown run"
expect_grep "$T/cerr" "no run '0123456789abcdef'" "unknown run refused"
run_weft "$T/cout" "$T/cerr" cancel
expect_rc 2 "cancel without a run"
ok "weft cancel of a finished or unknown run: a clear error"

# --- A Streamable HTTP server that answers 429, then 503, then the result:
# rate_limited and transport are retried by default; a 400 is not.
cat > "$T/flaky.py" <<'PYEOF'
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
plan = sys.argv[2].split(",")      # statuses of successive tools/call
calls = open(sys.argv[3], "a")
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def reply(self, code, obj=None):
        body = json.dumps(obj).encode() if obj is not None else b""
        self.send_response(code)
        if obj is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self): self.reply(405)
    def do_DELETE(self): self.reply(405)
    def do_POST(self):
        m = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if "id" not in m: return self.reply(202)
        meth, rid = m["method"], m["id"]
        if meth == "initialize":
            return self.reply(200, {"jsonrpc": "2.0", "id": rid, "result": {
                "protocolVersion": m["params"]["protocolVersion"], "capabilities": {"tools": {}},
                "serverInfo": {"name": "flaky", "version": "1"}}})
        if meth == "tools/list":
            return self.reply(200, {"jsonrpc": "2.0", "id": rid, "result": {"tools": [
                {"name": "hit", "inputSchema": {"type": "object"}}]}})
        if meth == "tools/call":
            code = int(plan.pop(0)) if plan else 200
            calls.write("call %d\n" % code); calls.flush()
            if code != 200:
                return self.reply(code, {"error": "status %d" % code})
            return self.reply(200, {"jsonrpc": "2.0", "id": rid, "result": {
                "content": [{"type": "text", "text": "hit ok"}]}})
        self.reply(200, {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no"}})
srv = HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(srv.server_address[1]))
srv.serve_forever()
PYEOF
flaky() {	# flaky PLAN: start the server, set FPORT
	rm -f "$T/fport" "$T/fcalls"
	python3 "$T/flaky.py" "$T/fport" "$1" "$T/fcalls" &
	FPID=$!
	for _ in $(seq 100); do [ -s "$T/fport" ] && break; sleep 0.05; done
	FPORT=$(cat "$T/fport")
	cat > "$T/f.lua" <<EOF2
local w = require "weft"
w.mcp_server{ name = "web", url = "http://127.0.0.1:$FPORT/mcp", retry = { backoff = 0.01 } }
return w.tool{ name = "t", server = "web", tool = "hit" }
EOF2
}
flaky 429,503
run_weft "$T/out" "$T/err" run "$T/f.lua" --workers 1 -q
kill $FPID 2>/dev/null; wait $FPID 2>/dev/null || true
expect_rc 0 "429 then 503 then a result"
expect_grep "$T/out" "hit ok" "the third attempt's answer"
id=$(last_run)
[ "$(sql "SELECT group_concat(json_extract(payload,'\$.kind'), ',') FROM events WHERE run_id='$id' AND kind='task.retry'")" = rate_limited,transport ] ||
    fail "retries recorded as rate_limited then transport: $(sql "SELECT payload FROM events WHERE run_id='$id' AND kind='task.retry'")"
[ "$(grep -c '^call' "$T/fcalls")" = 3 ] || fail "three calls reached the server"
flaky 400
run_weft "$T/out" "$T/err" run "$T/f.lua" --workers 1 -q
kill $FPID 2>/dev/null; wait $FPID 2>/dev/null || true
expect_rc 1 "a 400 fails the call"
expect_grep "$T/err" "answered HTTP 400" "the status is named"
[ "$(grep -c '^call' "$T/fcalls")" = 1 ] || fail "a 400 is not retried"
ok "HTTP 429 (rate_limited) and 5xx (transport) retried by default, a 400 not"
expect_no_orphans
