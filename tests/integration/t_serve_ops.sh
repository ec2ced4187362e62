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

# serve ARGS...: weft serve on a free port; sets SERVE_PID, URL, BASE.
SERVE_PID=
serve() {
	rm -f "$T/serve.err"
	"$WEFT" serve --listen 127.0.0.1:0 "$@" 2>"$T/serve.err" &
	SERVE_PID=$!
	_w=0
	while ! grep -q 'serving .* at http' "$T/serve.err" 2>/dev/null; do
		_w=$((_w + 1))
		if [ $_w -ge 600 ] || ! kill -0 "$SERVE_PID" 2>/dev/null; then
			cat "$T/serve.err" >&2
			fail "weft serve did not start"
		fi
		sleep 0.05
	done
	URL=$(sed -n 's/.*serving .* at \(http[^ ]*\)$/\1/p' "$T/serve.err")
	BASE=${URL%/mcp}
}
# stop_serve: SIGTERM; the server must exit 0.
stop_serve() {
	if [ -n "$SERVE_PID" ]; then
		kill "$SERVE_PID" 2>/dev/null
		_rc=0
		wait "$SERVE_PID" 2>/dev/null || _rc=$?
		SERVE_PID=
		[ "$_rc" -eq 0 ] || { tail -n 40 "$T/serve.err" >&2
			fail "weft serve exited with status $_rc"; }
	fi
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
