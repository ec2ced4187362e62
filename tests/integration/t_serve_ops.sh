#!/bin/sh
# Operating `weft serve` through real processes (docs/mcp.md, "Operations"):
# `weft cancel` of one served run leaves the server serving; /healthz and
# /metrics behind the token; SIGTERM stops gracefully; a server killed
# with -9 mid-call resumes its run at restart without repeating a
# completed tool call.
. "$WEFT_SRCDIR/tests/integration/lib.sh"
command -v curl >/dev/null 2>&1 || { echo "SKIP: curl missing"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: python3 missing"; exit 77; }
CLIENT="$WEFT_SRCDIR/tests/helpers/mcp_call.py"
trap 'trc=$?; stop_serve; (exit $trc); cleanup' EXIT

cat > "$T/echo.lua" <<'LUA'
local w = require "weft"
return w.workflow{
  name = "echo",
  description = "Answers its text",
  input_schema = { type = "object", properties = { text = { type = "string" } } },
  w.fn{ name = "answer", function(ctx) return ctx.input.text or "none" end },
}
LUA
{
	echo 'local w = require "weft"'
	printf 'w.mcp_server{ name = "test", command = { "%s", "--log", "%s/calls.log" }, sandbox = { write = { "%s" } } }\n' \
	    "$WEFT_TESTSERVER" "$T" "$T"
	cat <<LUA
return w.workflow{
  name = "slow",
  description = "One echo call, then a call held until it is cancelled",
  w.sequential{ name = "slow",
    w.tool{ name = "first", server = "test", tool = "echo", args = { message = "one" } },
    w.tool{ name = "held", server = "test", tool = "sleep",
      args = { ms = 600000, marker = "$T/held.mark", once = "$T/held.once" } },
    w.fn{ name = "out", function(ctx) return "done" end } },
}
LUA
} > "$T/slow.lua"

# serve ARGS...: weft serve on a free port; sets SERVE_PID, URL, BASE
# (serve_wait, lib.sh; stop_serve there wants exit status 0).
serve() {
	rm -f "$T/serve.err"
	"$WEFT" serve --listen 127.0.0.1:0 "$@" 2>"$T/serve.err" &
	SERVE_PID=$!
	serve_wait
}
# wait_file FILE WHAT: until FILE exists and is not empty (bound 60 s).
wait_file() {
	_w=0
	until [ -s "$1" ]; do
		_w=$((_w + 1))
		[ $_w -lt 1200 ] || { cat "$T/serve.err" >&2; fail "$2: never came"; }
		sleep 0.05
	done
}
# metric NAME: its value in /metrics (with the token, if any).
metric() {
	curl -s -m 30 ${TOKEN:+-H "Authorization: Bearer $TOKEN"} \
	    "$BASE/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}
# wait_metric NAME VALUE: until /metrics says so (bound 60 s).
wait_metric() {
	_w=0
	until [ "$(metric "$1")" = "$2" ]; do
		_w=$((_w + 1))
		[ $_w -lt 600 ] || fail "metric $1 never became $2 (is $(metric "$1"))"
		sleep 0.1
	done
}
# wait_status RUN STATUS: until the run's row says so (bound 60 s).
wait_status() {
	_w=0
	until [ "$(sql "SELECT status FROM runs WHERE id = '$1'")" = "$2" ]; do
		_w=$((_w + 1))
		[ $_w -lt 600 ] || { cat "$T/serve.err" >&2
			fail "run $1 never became $2"; }
		sleep 0.1
	done
}
# held_reset: no marker, no once file, an empty call log.
held_reset() {
	rm -f "$T/held.mark" "$T/held.once"
	: > "$T/calls.log"
}
# calls TOOL: how many times the test server was called with TOOL.
calls() {
	grep -c "^$1 " "$T/calls.log"
}
# call TOOL ARGS OUT: one tools/call in the background; CALL_PID.
call() {
	python3 "$CLIENT" call "$URL" "$1" "$2" >"$3" 2>"$3.err" &
	CALL_PID=$!
}

# ---- weft cancel of a served run ---------------------------------------
# Before the fix, weft cancel sent SIGTERM to the run's recorded pid: the
# server itself, which then stopped serving every run.
: > "$T/calls.log"
serve "$T/slow.lua" "$T/echo.lua"
call slow '{}' "$T/call1"
wait_file "$T/held.mark" "the held tool call"
run=$(sql "SELECT id FROM runs WHERE status = 'running' LIMIT 1")
[ -n "$run" ] || fail "no running run in the store"
run_weft "$T/out" "$T/err" cancel "$run" --wait 20
expect_rc 0 "weft cancel of a served run"
expect_grep "$T/out" "^run $run cancelled$" "weft cancel says the run ended cancelled"
[ "$(sql "SELECT status FROM runs WHERE id = '$run'")" = cancelled ] ||
	fail "the served run is not recorded cancelled"
wait "$CALL_PID" || { cat "$T/call1.err" >&2; fail "the cancelled call got no answer"; }
expect_grep "$T/call1" '"isError": true' "the cancelled call's answer is an error"
expect_grep "$T/call1" "cancelled" "the cancelled call's answer says cancelled"
kill -0 "$SERVE_PID" 2>/dev/null || fail "the server stopped with the run"
ok "weft cancel ended the served run alone (cancelled)"
call echo '{"text":"still here"}' "$T/call2"
wait "$CALL_PID" || { cat "$T/call2.err" "$T/serve.err" >&2; fail "a second call after the cancel failed"; }
expect_grep "$T/call2" 'still here' "the server still serves after weft cancel"
ok "the server keeps serving after weft cancel"
[ "$(sql "SELECT count(*) FROM cancel_requests")" = 0 ] ||
	fail "weft cancel left its request in the store"
ok "weft cancel removed its request"
stop_serve

# ---- /healthz and /metrics, behind the token ----------------------------
TOKEN=ops-token-0123456789abcdef
export WEFT_TOKEN="$TOKEN"
held_reset
WEFT_SERVE_TOKEN="$TOKEN" serve "$T/slow.lua" "$T/echo.lua" --max-runs 1 \
    --drain-timeout 120
code=$(curl -s -m 30 -o /dev/null -w '%{http_code}' "$BASE/healthz")
[ "$code" = 401 ] || fail "/healthz without the token: HTTP $code, expected 401"
code=$(curl -s -m 30 -o /dev/null -w '%{http_code}' "$BASE/metrics")
[ "$code" = 401 ] || fail "/metrics without the token: HTTP $code, expected 401"
ok "/healthz and /metrics want the token"
curl -s -m 30 -D "$T/h" -o "$T/b" -H "Authorization: Bearer $TOKEN" "$BASE/healthz"
expect_grep "$T/h" '^HTTP/1.1 200' "/healthz with the token"
[ "$(cat "$T/b")" = ok ] || fail "/healthz body: $(cat "$T/b")"
ok "/healthz answers 200 ok"
curl -s -m 30 -D "$T/h" -o "$T/metrics" -H "Authorization: Bearer $TOKEN" "$BASE/metrics"
expect_grep "$T/h" '^Content-Type: text/plain; version=0.0.4' "/metrics is Prometheus text"
for m in weft_up weft_runs_running weft_calls_waiting weft_tasks_queued \
    weft_tasks_leased weft_workers weft_call_duration_seconds; do
	expect_grep "$T/metrics" "^# TYPE $m (gauge|counter|histogram)$" "/metrics has $m"
done
ok "/metrics has the gauges and the latency histogram"
call echo '{"text":"hi"}' "$T/call3"
wait "$CALL_PID" || { cat "$T/call3.err" >&2; fail "an echo call failed"; }
[ "$(metric 'weft_calls_total{status="succeeded"}')" = 1 ] ||
	fail "/metrics: one call succeeded, says $(metric 'weft_calls_total{status="succeeded"}')"
[ "$(metric weft_call_duration_seconds_count)" = 1 ] ||
	fail "/metrics: one call timed"
[ "$(metric 'weft_call_duration_seconds_bucket{le="+Inf"}')" = 1 ] ||
	fail "/metrics: the +Inf bucket holds the call"
ok "/metrics counts and times a served call"
# The workers of the coordinator (--workers 2 above unless the default):
# connected, without labels; no model call in flight.
n=$(metric weft_workers)
wait_metric 'weft_workers_connected{label=""}' "$n"
[ "$(metric weft_model_calls_in_flight)" = 0 ] || fail "/metrics: no model call in flight"
ok "/metrics: workers connected by label, model calls in flight"
call slow '{}' "$T/call4"
SLOW_PID=$CALL_PID
wait_file "$T/held.mark" "the held tool call"
held=$(sql "SELECT id FROM runs WHERE status = 'running' LIMIT 1")
[ "$(metric weft_runs_running)" = 1 ] || fail "/metrics: one run going"
wait_metric weft_tasks_leased 1
ok "/metrics: a run going, its tool call leased"
call echo '{"text":"later"}' "$T/call5"
WAIT_PID=$CALL_PID
wait_metric weft_calls_waiting 1
ok "/metrics: a call waiting for admission (--max-runs 1)"

# ---- graceful stop: SIGTERM drains, a second SIGTERM stops ---------------
kill -TERM "$SERVE_PID"
wait_for_grep "$T/serve.err" '^weft: stopping: no new calls' "the drain's message"
wait "$WAIT_PID" || { cat "$T/call5.err" >&2; fail "the waiting call got no answer"; }
expect_grep "$T/call5" '"isError": true' "the waiting call is refused"
expect_grep "$T/call5" 'stopping' "the waiting call is told the server stops"
ok "SIGTERM: a call waiting for admission is answered: the server stops"
curl -s -m 30 -D "$T/h" -o "$T/b" -H "Authorization: Bearer $TOKEN" "$BASE/healthz"
expect_grep "$T/h" '^HTTP/1.1 503' "/healthz while stopping"
ok "SIGTERM: /healthz answers 503 stopping"
call echo '{"text":"new"}' "$T/call6"
wait "$CALL_PID" || { cat "$T/call6.err" >&2; fail "a new call got no answer while stopping"; }
expect_grep "$T/call6" 'stopping' "a new call while stopping is refused"
ok "SIGTERM: no new call is admitted"
kill -0 "$SERVE_PID" 2>/dev/null || fail "the server did not wait for its run"
[ "$(sql "SELECT status FROM runs WHERE id = '$held'")" = running ] ||
	fail "the held run ended at the first SIGTERM"
kill -TERM "$SERVE_PID"
_rc=0
wait "$SERVE_PID" || _rc=$?
SERVE_PID=
[ "$_rc" = 0 ] || { cat "$T/serve.err" >&2; fail "second SIGTERM: exit status $_rc"; }
expect_grep "$T/serve.err" '^weft: stopping now' "the second SIGTERM's message"
[ "$(sql "SELECT status FROM runs WHERE id = '$held'")" = running ] ||
	fail "the held run is not left resumable"
ok "a second SIGTERM stops at once, the held run left resumable"
wait "$SLOW_PID" || true
# Restarted on the same store: resumed; the held call answers at once now
# (its once file exists), the echo call before it is not repeated.
WEFT_SERVE_TOKEN="$TOKEN" serve "$T/slow.lua" "$T/echo.lua"
wait_status "$held" succeeded
[ "$(calls echo)" = 1 ] || { cat "$T/calls.log" >&2; fail "after a restart the completed echo call was repeated"; }
[ "$(calls sleep)" = 2 ] || { cat "$T/calls.log" >&2; fail "the interrupted call ran $(calls sleep) times, expected 2"; }
ok "restarted after SIGTERM: the run finishes, its completed call not repeated"
stop_serve

# A drain lets a call in flight end, record and answer before the exit.
cat > "$T/short.lua" <<LUA
local w = require "weft"
w.mcp_server{ name = "test", command = { "$WEFT_TESTSERVER", "--log", "$T/calls.log" }, sandbox = { write = { "$T" } } }
return w.workflow{ name = "short",
  w.tool{ name = "nap", server = "test", tool = "sleep",
    args = { ms = 1000, marker = "$T/held.mark", text = "rested" } } }
LUA
held_reset
WEFT_SERVE_TOKEN="$TOKEN" serve "$T/short.lua" --drain-timeout 120
call short '{}' "$T/call7"
wait_file "$T/held.mark" "the short tool call"
kill -TERM "$SERVE_PID"
wait "$CALL_PID" || { cat "$T/call7.err" >&2; fail "the draining call got no answer"; }
expect_grep "$T/call7" 'rested' "the call in flight at SIGTERM answers"
_rc=0
wait "$SERVE_PID" || _rc=$?
SERVE_PID=
[ "$_rc" = 0 ] || { cat "$T/serve.err" >&2; fail "drained server: exit status $_rc"; }
expect_grep "$T/serve.err" '^weft: stopped: every run ended' "the drain's end"
ok "SIGTERM: a call in flight ends and answers, then the server exits 0"
unset WEFT_TOKEN TOKEN

# ---- kill -9 mid-call, restart: resumed, no completed call repeated ------
held_reset
serve "$T/slow.lua"
call slow '{}' "$T/call8"
wait_file "$T/held.mark" "the held tool call"
run=$(sql "SELECT id FROM runs WHERE status = 'running' LIMIT 1")
[ "$(calls echo)" = 1 ] || fail "the echo call before the held one"
kill -9 "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null || true
SERVE_PID=
wait "$CALL_PID" || true
serve "$T/slow.lua"
expect_grep "$T/serve.err" "resuming run $run" "the restarted server resumes the run"
wait_status "$run" succeeded
[ "$(calls echo)" = 1 ] || { cat "$T/calls.log" >&2; fail "after kill -9 the completed echo call was repeated"; }
[ "$(calls sleep)" = 2 ] || { cat "$T/calls.log" >&2; fail "the interrupted call ran $(calls sleep) times, expected 2"; }
ok "killed with -9 mid-call and restarted: the run finishes, no completed call repeated"
stop_serve
expect_no_orphans
ok "no process left behind"
