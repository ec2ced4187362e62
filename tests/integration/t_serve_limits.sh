#!/bin/sh
# `weft serve` under attack, through real connections: descriptors run
# out, idle and slow connections, the connection cap, clients that never
# read, the token in /proc/PID/environ, token files open to others, and
# which runs and sessions each token reaches (docs/mcp.md "Limits",
# docs/security.md "Who sees which runs").
. "$WEFT_SRCDIR/tests/integration/lib.sh"
command -v curl >/dev/null 2>&1 || { echo "SKIP: curl missing"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: python3 missing"; exit 77; }
PROBE="$WEFT_SRCDIR/tests/helpers/serve_probe.py"
HOLD_PID=
trap 'trap_rc=$?; release; stop_serve; (exit $trap_rc); cleanup' EXIT

cat > "$T/echo.lua" <<'LUA'
local w = require "weft"
return w.workflow{
  name = "echo",
  description = "Answers its text",
  input_schema = { type = "object", properties = { text = { type = "string" } } },
  w.fn{ name = "answer", function(ctx) return ctx.input.text or "none" end },
}
LUA

# serve NOFILE ARGS...: weft serve on a free port under ulimit -n NOFILE
# (or none: -); sets SERVE_PID, PORT, URL (serve_wait, lib.sh).
serve() {
	_nofile=$1
	shift
	rm -f "$T/serve.err"
	if [ "$_nofile" = - ]; then
		"$WEFT" serve --listen 127.0.0.1:0 "$@" 2>"$T/serve.err" &
	else
		(ulimit -n "$_nofile" && exec "$WEFT" serve --listen \
		    127.0.0.1:0 "$@") 2>"$T/serve.err" &
	fi
	SERVE_PID=$!
	serve_wait
}
# wait_for FILE REGEX WHAT: a line in FILE (bounded: 30 s).
wait_for() {
	_w=0
	until grep -Eq -- "$2" "$1" 2>/dev/null; do
		_w=$((_w + 1))
		[ $_w -lt 600 ] || { cat "$1" >&2; fail "$3: never came"; }
		sleep 0.05
	done
}
# hold N: N idle connections held by the probe until release.
hold() {
	rm -f "$T/ready" "$T/release"
	mkfifo "$T/release"
	python3 "$PROBE" hold 127.0.0.1 "$PORT" "$1" "$T/ready" "$T/release" &
	HOLD_PID=$!
	wait_for "$T/ready" . "the probe's $1 connections"
}
release() {
	if [ -n "$HOLD_PID" ]; then
		echo go > "$T/release"
		wait "$HOLD_PID"
		HOLD_PID=
	fi
}
# cpu: the server's user + system time, in clock ticks.
cpu() {
	awk '{ print $14 + $15 }' "/proc/$SERVE_PID/stat"
}
INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'
# post BODY [CURL ARGS...]: POST to /mcp; status in $T/code, headers $T/h,
# body $T/b.
post() {
	_body=$1
	shift
	curl -s -m 60 -o "$T/b" -D "$T/h" -w '%{http_code}' -X POST \
	    -H 'Content-Type: application/json' \
	    -H 'Accept: application/json, text/event-stream' "$@" \
	    --data-binary "$_body" "$URL" >"$T/code" || true
}
expect_code() {
	[ "$(cat "$T/code")" = "$1" ] || { cat "$T/h" "$T/b" >&2
		fail "$2: HTTP $(cat "$T/code"), expected $1"; }
	ok "$2"
}
sid() {
	sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: *\([0-9a-f]*\).*/\1/p' "$T/h"
}

# ---- 6: out of descriptors --------------------------------------------
# 80 idle connections under a 64-descriptor limit: accept() fails with
# EMFILE.  The server must pause accepting (no busy loop), say so once,
# and serve again once the connections are gone.
serve 64 "$T/echo.lua" --max-connections 1000 --idle-timeout 600
hold 80
wait_for "$T/serve.err" 'cannot accept connections: Too many open files' \
    "the accept error on stderr"
TCK=$(getconf CLK_TCK)
C0=$(cpu)
W0=$(date +%s%N)
# The control request waits in the backlog: nothing can be accepted.
curl -s -m 3 -o /dev/null "${URL%/mcp}/other" || true
W1=$(date +%s%N)
C1=$(cpu)
# A spinning accept loop burns the whole interval; allow a third of it.
[ $(( (C1 - C0) * 1000 / TCK * 3 )) -lt $(( (W1 - W0) / 1000000 )) ] || {
	head -c 2000 "$T/serve.err" >&2
	fail "out of descriptors the server burned $((C1 - C0)) ticks of CPU in $(( (W1 - W0) / 1000000 )) ms"
}
ok "out of descriptors the server does not spin ($((C1 - C0)) ticks in $(( (W1 - W0) / 1000000 )) ms)"
release
post "$INIT"
expect_code 200 "a request succeeds once the idle connections are gone"
[ "$(grep -c 'cannot accept connections' "$T/serve.err")" = 1 ] || {
	head -c 2000 "$T/serve.err" >&2; fail "the accept error is said once"; }
ok "the accept error is said once"
expect_no_grep "$T/serve.err" 'Error from accept' "libevent's own accept message stays out"
stop_serve

# Idle connections, and requests that trickle in, are closed: the
# probe waits for the server's close (at most 30 s; the limits are 1-2 s).
serve - "$T/echo.lua" --idle-timeout 1 --header-timeout 2 --body-timeout 2
python3 "$PROBE" closed 127.0.0.1 "$PORT" idle 30 >"$T/out" ||
	fail "an idle connection is closed after --idle-timeout: $(cat "$T/out")"
ok "an idle connection is closed after --idle-timeout ($(cat "$T/out"))"
python3 "$PROBE" closed 127.0.0.1 "$PORT" keepalive 30 >"$T/out" ||
	fail "a kept-alive connection is closed when idle: $(cat "$T/out")"
ok "a kept-alive connection is closed after its answer when idle"
python3 "$PROBE" closed 127.0.0.1 "$PORT" header 30 >"$T/out" ||
	fail "a slowloris is cut: $(cat "$T/out")"
ok "headers sent a byte at a time are cut at --header-timeout ($(cat "$T/out"))"
expect_grep "$T/serve.err" 'request headers not complete 2 s after their first byte' \
    "the cut is logged"
ok "the cut is logged"
python3 "$PROBE" closed 127.0.0.1 "$PORT" body 30 >"$T/out" ||
	fail "a slow body is cut: $(cat "$T/out")"
ok "a body sent a byte at a time is cut at --body-timeout ($(cat "$T/out"))"
post "$INIT"
expect_code 200 "the server serves on"
# A body larger than what is read ahead (128 KiB), sent at once: evhttp
# keeps it whole until it came, so it must not stall into the cut.
S=$(sid)
python3 -c 'import json; print(json.dumps({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"*1000000}}}))' > "$T/big.json"
post "@$T/big.json" -H "Mcp-Session-Id: $S"
expect_code 200 "a 1 MB request body is read whole"
python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); sys.exit(len(r["result"]["content"][0]["text"]) != 1000000)' "$T/b" ||
	fail "its answer does not echo the 1 MB text"
ok "its answer echoes the 1 MB text"
stop_serve

# The connection cap: one more connection is answered 503 at once.
serve - "$T/echo.lua" --max-connections 3 --idle-timeout 600
hold 3
python3 "$PROBE" closed 127.0.0.1 "$PORT" read 30 >"$T/out" ||
	fail "a connection over the cap is closed at once"
expect_grep "$T/out" '^HTTP/1.1 503' "a connection over --max-connections gets 503"
expect_grep "$T/out" '^Retry-After: [0-9]' "with Retry-After"
ok "a connection over --max-connections gets 503 with Retry-After"
python3 "$PROBE" closed 127.0.0.1 "$PORT" read 30 >"$T/out" ||
	fail "a second connection over the cap is closed at once"
[ "$(grep -c 'answering more with 503' "$T/serve.err")" = 1 ] || {
	cat "$T/serve.err" >&2; fail "the cap is logged once"; }
ok "the cap is logged once"
release
post "$INIT"
expect_code 200 "under the cap again, requests are served"
stop_serve

# ---- 9, 11: the token in /proc, token files open to others ------------
TOKEN=0123456789abcdef-env-token
WEFT_SERVE_TOKEN=$TOKEN serve - "$T/echo.lua"
tr '\0' '\n' < "/proc/$SERVE_PID/environ" > "$T/environ"
expect_grep "$T/environ" '^HOME=|^PATH=' "the server's environment is readable"
expect_no_grep "$T/environ" "$TOKEN" "the token is not in /proc/PID/environ"
ok "the token is not in /proc/PID/environ"
post "$INIT"
expect_code 401 "the token from the environment is required"
post "$INIT" -H "Authorization: Bearer $TOKEN"
expect_code 200 "and accepted"
stop_serve

printf '%s\n' "0123456789abcdef-file-token" > "$T/tokens"
chmod 644 "$T/tokens"
serve - "$T/echo.lua" --token-file "$T/tokens"
expect_grep "$T/serve.err" "warning: token file '$T/tokens' is readable by group or others \\(mode 0644\\)" \
    "a token file readable by others is named"
expect_grep "$T/serve.err" "chmod 600 '$T/tokens'" "with the chmod that fixes it"
ok "a token file readable by others is named, with the chmod that fixes it"
stop_serve
chmod 600 "$T/tokens"
serve - "$T/echo.lua" --token-file "$T/tokens"
expect_no_grep "$T/serve.err" "warning" "a token file of mode 600 is not warned about"
ok "a token file of mode 600 is not warned about"
stop_serve
printf 'short\n' > "$T/bad"
chmod 600 "$T/bad"
run_weft "$T/out" "$T/err" serve --listen 127.0.0.1:0 "$T/echo.lua" --token-file "$T/bad"
expect_rc 2 "a short token is refused"
expect_grep "$T/err" "$T/bad:1: a bearer token must be at least 16 characters" "naming file and line"
expect_no_grep "$T/err" short "without showing the token"
ok "a short token is refused, naming file and line, not the token"
# The signing keys of weft keys are refused, not only warned about.
"$WEFT" keys list >/dev/null 2>&1 || fail "weft keys makes its keys"
chmod 644 "$WEFT_STATE_DIR"/keys/*.key
run_weft "$T/out" "$T/err" keys list
expect_rc 1 "a private key readable by others is refused"
expect_grep "$T/err" 'accessible by group or others \(chmod 600\)' "with the chmod"
ok "a private key readable by others is refused, with the chmod"
chmod 600 "$WEFT_STATE_DIR"/keys/*.key

# ---- 14: who sees which runs and sessions -----------------------------
ALICE=alice-0123456789abcdef
BOB=bob-0123456789abcdef00
OPS=ops-0123456789abcdef00
cat > "$T/tokens" <<EOF
# TOKEN ROLE NAME
$ALICE client alice
$BOB client bob
$OPS operator ops
EOF
chmod 600 "$T/tokens"
"$WEFT" run "$T/echo.lua" --input '{"text":"cli-secret"}' >/dev/null 2>&1 ||
	fail "a run from the CLI"
CLI_RUN=$(sql "SELECT id FROM runs WHERE input LIKE '%cli-secret%'")
serve - "$T/echo.lua" --token-file "$T/tokens"
# session TOKEN: a new session of TOKEN in $SID.
session() {
	post "$INIT" -H "Authorization: Bearer $1"
	expect_code 200 "a session for ${1%%-*}"
	SID=$(sid)
	post '{"jsonrpc":"2.0","method":"notifications/initialized"}' \
	    -H "Authorization: Bearer $1" -H "Mcp-Session-Id: $SID"
}
# call TOKEN SID TEXT: tools/call echo; the run's id in $RUN.
call() {
	post "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":\"$3\"}}}" \
	    -H "Authorization: Bearer $1" -H "Mcp-Session-Id: $2"
	expect_code 200 "${1%%-*} calls the tool"
	RUN=$(sed -n 's/.*"weft\/run":"\([0-9a-f]*\)".*/\1/p' "$T/b")
	[ ${#RUN} -eq 16 ] || { cat "$T/b" >&2; fail "the answer names its run"; }
}
# list TOKEN SID: resources/list into $T/b.
list() {
	post '{"jsonrpc":"2.0","id":3,"method":"resources/list"}' \
	    -H "Authorization: Bearer $1" -H "Mcp-Session-Id: $2"
	expect_code 200 "${1%%-*} lists resources"
}
# read TOKEN SID RUN: resources/read of a run into $T/b.
read_run() {
	post "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"resources/read\",\"params\":{\"uri\":\"weft://runs/$3\"}}" \
	    -H "Authorization: Bearer $1" -H "Mcp-Session-Id: $2"
}
session "$ALICE"
SA=$SID
call "$ALICE" "$SA" alice-secret
RA=$RUN
session "$BOB"
SB=$SID
call "$BOB" "$SB" bob-secret
RB=$RUN
session "$OPS"
SO=$SID

list "$ALICE" "$SA"
expect_grep "$T/b" "weft://runs/$RA" "alice lists her run"
expect_no_grep "$T/b" "weft://runs/$RB" "alice does not list bob's run"
expect_no_grep "$T/b" "weft://runs/$CLI_RUN" "alice does not list the CLI's run"
read_run "$ALICE" "$SA" "$RA"
expect_grep "$T/b" 'alice-secret' "alice reads her run"
read_run "$ALICE" "$SA" "$RB"
expect_grep "$T/b" '"code":-32002' "bob's run is not found for alice"
expect_no_grep "$T/b" 'bob-secret' "and none of its input shows"
read_run "$ALICE" "$SA" "$CLI_RUN"
expect_grep "$T/b" '"code":-32002' "the CLI's run is not found for alice"
list "$BOB" "$SB"
expect_grep "$T/b" "weft://runs/$RB" "bob lists his run"
expect_no_grep "$T/b" "weft://runs/$RA" "bob does not list alice's run"
list "$OPS" "$SO"
for r in "$RA" "$RB" "$CLI_RUN"; do
	expect_grep "$T/b" "weft://runs/$r" "the operator lists run $r"
done
read_run "$OPS" "$SO" "$RB"
expect_grep "$T/b" 'bob-secret' "the operator reads bob's run"

# Sessions belong to the token that made them.
post '{"jsonrpc":"2.0","id":5,"method":"ping"}' -H "Authorization: Bearer $BOB" -H "Mcp-Session-Id: $SA"
expect_code 404 "bob cannot use alice's session"
curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "Authorization: Bearer $BOB" \
    -H "Mcp-Session-Id: $SA" "$URL" >"$T/code"
expect_code 404 "bob cannot end alice's session"
curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "Authorization: Bearer $OPS" \
    -H "Mcp-Session-Id: $SA" "$URL" >"$T/code"
expect_code 404 "nor can the operator"
curl -s -o /dev/null -w '%{http_code}' -m 5 -H 'Accept: text/event-stream' \
    -H "Authorization: Bearer $BOB" -H "Mcp-Session-Id: $SA" "$URL" >"$T/code"
expect_code 404 "bob cannot open alice's stream"
post '{"jsonrpc":"2.0","id":6,"method":"ping"}' -H "Authorization: Bearer $ALICE" -H "Mcp-Session-Id: $SA"
expect_code 200 "alice's session lives on"
curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "Authorization: Bearer $ALICE" \
    -H "Mcp-Session-Id: $SA" "$URL" >"$T/code"
expect_code 200 "alice ends her own session"
stop_serve
# The store records who started a run by fingerprint, never the token.
sqlite3 "$WEFT_DB" .dump > "$T/dump"
for t in "$ALICE" "$BOB" "$OPS"; do
	expect_no_grep "$T/dump" "$t" "no token in the store"
done
FA=$(printf '%s' "$ALICE" | sha256sum | cut -c1-16)
[ "$(sql "SELECT owner FROM mcp_run_owners WHERE run_id = '$RA'")" = "$FA" ] ||
	fail "alice's run is recorded as hers"
ok "a run's owner is its token's fingerprint"

# ---- 8: clients that never read ---------------------------------------
# A run with a large trajectory (40000 events of 1 KiB), read by 30
# connections that never take their answers.
python3 - "$WEFT_DB" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("INSERT INTO runs (id, workflow, status, input, started, ended,"
           " steps, tokens, cost) VALUES ('00000000000000aa', 'big.lua',"
           " 'succeeded', '{}', 1, 2, 0, 0, 0)")
pad = "x" * 1000
db.executemany("INSERT INTO events (run_id, seq, kind, node_path, time, payload)"
               " VALUES ('00000000000000aa', ?, 'tool.result', 'big', 1, ?)",
               [(i, '{"n":%d,"pad":"%s"}' % (i, pad)) for i in range(1, 40001)])
db.commit()
PY
serve - "$T/echo.lua" --token-file "$T/tokens" --max-output 1048576
session "$OPS"
BODY='{"jsonrpc":"2.0","id":7,"method":"resources/read","params":{"uri":"weft://runs/00000000000000aa"}}'
printf 'POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAccept: application/json\r\nAuthorization: Bearer %s\r\nMcp-Session-Id: %s\r\nContent-Length: %d\r\n\r\n%s' \
    "$OPS" "$SID" "${#BODY}" "$BODY" > "$T/req"
rss() {
	awk '$1 == "VmRSS:" { print $2 }' "/proc/$SERVE_PID/status"
}
R0=$(rss)
rm -f "$T/noread.fifo"
mkfifo "$T/noread.fifo"
i=0
NOREAD=
while [ $i -lt 10 ]; do
	python3 "$PROBE" noread 127.0.0.1 "$PORT" 3 "$T/req" \
	    <"$T/noread.fifo" >"$T/noread.$i" &
	NOREAD="$NOREAD $!"
	i=$((i + 1))
done
exec 9>"$T/noread.fifo"
i=0
while [ $i -lt 10 ]; do
	wait_for "$T/noread.$i" '^(ready|no answer)' "client $i's answers"
	expect_grep "$T/noread.$i" '^ready' "client $i was answered"
	i=$((i + 1))
done
R1=$(rss)
# A build with AddressSanitizer keeps freed memory in quarantine.
if nm "$WEFT" 2>/dev/null | grep -q __asan_init || ldd "$WEFT" 2>/dev/null | grep -q asan; then
	ok "RSS from $R0 kB to $R1 kB with 30 unread answers (not bounded under ASan)"
else
	[ $((R1 - R0)) -lt 65536 ] ||
		fail "30 connections that never read grew the server from $R0 kB to $R1 kB"
	ok "30 connections that never read: RSS from $R0 kB to $R1 kB"
fi
read_run "$OPS" "$SID" 00000000000000aa
expect_code 200 "a client that reads is served meanwhile"
expect_grep "$T/b" 'only the first [0-9]+ events' "the trajectory says it is cut"
[ "$(stat -c %s "$T/b")" -le 1048576 ] || fail "the answer fits --max-output"
ok "the answer fits --max-output ($(stat -c %s "$T/b") bytes)"
exec 9>&-
for p in $NOREAD; do
	wait "$p"
done
stop_serve
# Output a client takes none of is dropped after --write-timeout (the
# answer, about 8 MB, is more than the socket buffers hold).
serve - "$T/echo.lua" --token-file "$T/tokens" --max-output 16777216 \
    --write-timeout 1
session "$OPS"
printf 'POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAccept: application/json\r\nAuthorization: Bearer %s\r\nMcp-Session-Id: %s\r\nContent-Length: %d\r\n\r\n%s' \
    "$OPS" "$SID" "${#BODY}" "$BODY" > "$T/req"
PROBE_REQUEST="$T/req" python3 "$PROBE" closed 127.0.0.1 "$PORT" unread 30 \
    >"$T/out" || fail "a client that never reads is cut: $(cat "$T/out")"
ok "a client that never reads its answer is cut after --write-timeout"
post '{"jsonrpc":"2.0","id":8,"method":"ping"}' -H "Authorization: Bearer $OPS" -H "Mcp-Session-Id: $SID"
expect_code 200 "the session lives on"
stop_serve
expect_no_orphans
