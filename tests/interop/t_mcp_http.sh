#!/bin/sh
# `weft serve`: the official TypeScript SDK client over Streamable HTTP,
# then the transport's rules and security checks with raw requests:
# sessions, Origin/Host (DNS rebinding), bearer token, sizes, methods.
. "$WEFT_SRCDIR/tests/integration/lib.sh"
. "$WEFT_SRCDIR/tests/interop/lib_interop.sh"
command -v curl >/dev/null 2>&1 || { echo "SKIP: curl missing"; exit 77; }
trap '_rc=$?; stop_serve; (exit $_rc); cleanup' EXIT

start_serve "$CONF" "$T/wf/slow.lua" --db "$WEFT_DB" --max-sessions 4 --max-body 65536 -v
BRIDGE=$(sed -n 's/.*reach their MCP client at \(http[^ ]*\)$/\1/p' "$T/serve.err" | head -1)
node "$INTEROP/sdk_client.mjs" http "$URL" >"$T/out" 2>"$T/err" || RC=$?
cat "$T/out"
[ "${RC:-0}" -eq 0 ] || { cat "$T/err" "$T/serve.err" >&2; fail "SDK client over HTTP"; }
[ "$(sql "SELECT count(*) FROM runs WHERE status = 'cancelled' AND input LIKE '%cancel-me%'")" = 1 ] ||
	fail "the aborted call's run is recorded as cancelled"
ok "the aborted call's run is recorded as cancelled"

INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'
# post BODY [CURL ARGS...]: POST to /mcp; status in $T/code, headers in $T/h, body in $T/b.
post() {
	_body=$1
	shift
	curl -s -o "$T/b" -D "$T/h" -w '%{http_code}' -X POST \
	    -H "Content-Type: ${CT:-application/json}" \
	    -H 'Accept: application/json, text/event-stream' "$@" \
	    --data-binary "$_body" "$URL" >"$T/code" || true
}
code() { cat "$T/code"; }
expect_code() {
	[ "$(code)" = "$1" ] || { cat "$T/h" "$T/b" >&2; fail "$2: HTTP $(code), expected $1"; }
	ok "$2"
}

post "$INIT"
expect_code 200 "initialize over raw HTTP"
SID=$(sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: *\([0-9a-f]*\).*/\1/p' "$T/h")
[ ${#SID} -eq 64 ] || fail "a 64-hex-digit session id (got '$SID')"
ok "Mcp-Session-Id is 256 random bits"
S="Mcp-Session-Id: $SID"
post '{"jsonrpc":"2.0","method":"notifications/initialized"}' -H "$S"
expect_code 202 "a notification is 202"
post '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' -H "$S" -H 'MCP-Protocol-Version: 2025-11-25'
expect_code 200 "a request in the session"
expect_grep "$T/b" '"test_simple_text"' "tools/list body"
post '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"test_tool_with_progress","arguments":{},"_meta":{"progressToken":"p"}}}' -H "$S"
expect_code 200 "a call with progress"
expect_grep "$T/h" 'text/event-stream' "progress makes the answer an event stream"
expect_grep "$T/b" '^data: .*"notifications/progress"' "progress events on the stream"
expect_grep "$T/b" '^data: .*"id":3,"result"' "the answer ends the stream"
post '{"jsonrpc":"2.0","id":31,"method":"tools/call","params":{"name":"test_sampling","arguments":{"prompt":"x"}}}' -H "$S"
expect_code 200 "sampling from a client without the capability"
expect_grep "$T/b" '"isError":true' "is an error result"
expect_grep "$T/b" 'did not declare the sampling capability' "naming the missing capability"

# The bridge through which runs reach their client: loopback, per run,
# behind the run's secret.
curl -s -o /dev/null -w '%{http_code}' -X POST --data '{}' "${BRIDGE}0123456789abcdef" >"$T/code"
expect_code 404 "the bridge knows only live runs"
post '{"jsonrpc":"2.0","id":32,"method":"tools/call","params":{"name":"slow","arguments":{"label":"bridge"}}}' -H "$S" --max-time 1
sleep 0.3
LIVE=$(sql "SELECT id FROM runs WHERE status = 'running' AND input LIKE '%bridge%'")
[ -n "$LIVE" ] || fail "a live run to knock at"
curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: Bearer nope' --data '{}' "$BRIDGE$LIVE" >"$T/code"
expect_code 401 "the bridge wants the run's secret"

post '{"jsonrpc":"2.0","id":4,"method":"tools/list"}'
expect_code 400 "no session id is 400"
post '{"jsonrpc":"2.0","id":4,"method":"tools/list"}' -H "Mcp-Session-Id: $(printf '%064d' 0)"
expect_code 404 "an unknown session is 404"
post '{"jsonrpc":"2.0","id":5,"method":"ping"}' -H "$S" -H 'MCP-Protocol-Version: 1999-01-01'
expect_code 400 "an unsupported MCP-Protocol-Version is 400"
post 'not json' -H "$S"
expect_code 400 "malformed JSON is 400"
expect_grep "$T/b" '"code":-32700' "with a parse error"
post '[{"jsonrpc":"2.0","id":6,"method":"ping"}]' -H "$S"
expect_code 400 "a batch is 400"
expect_grep "$T/b" '"code":-32600' "with an invalid request error"
CT=text/plain post '{"jsonrpc":"2.0","id":7,"method":"ping"}' -H "$S"
expect_code 415 "a body that is not JSON by type is 415"
head -c 70000 /dev/zero | tr '\0' ' ' > "$T/big"
post "$(cat "$T/big")" -H "$S"
expect_code 413 "a body over --max-body is 413"
post "$INIT" -H 'Origin: http://evil.example.com'
expect_code 403 "a foreign Origin is 403"
post "$INIT" -H 'Host: evil.example.com'
expect_code 403 "a foreign Host is 403 (DNS rebinding)"
post "$INIT" -H 'Origin: http://localhost:1234'
expect_code 200 "a localhost Origin is accepted"
curl -s -o /dev/null -w '%{http_code}' -X PUT "$URL" >"$T/code"
expect_code 405 "PUT is 405"
curl -s -o /dev/null -w '%{http_code}' "${URL%/mcp}/other" >"$T/code"
expect_code 404 "other paths are 404"

# GET opens the session's stream; a second one is refused.
curl -s -N -H 'Accept: text/event-stream' -H "$S" -o "$T/stream" -D "$T/stream.h" "$URL" &
CURL_PID=$!
sleep 0.3
curl -s -o /dev/null -w '%{http_code}' -H 'Accept: text/event-stream' -H "$S" "$URL" >"$T/code"
expect_code 409 "one GET stream per session"
expect_grep "$T/stream.h" 'text/event-stream' "GET opens an event stream"
# A client that drops its stream may open a new one.
kill "$CURL_PID"
wait "$CURL_PID" 2>/dev/null
sleep 0.2
curl -s -N -H 'Accept: text/event-stream' -H "$S" -o "$T/stream" -D "$T/stream.h" "$URL" &
CURL_PID=$!
sleep 0.3
expect_grep "$T/stream.h" '200 OK' "a new GET stream after the old one was dropped"

# Sessions are bounded: fill them, the next initialize is 503.
for i in 1 2 3 4 5; do post "$INIT"; done
expect_code 503 "sessions over --max-sessions are 503"

curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "$S" "$URL" >"$T/code"
expect_code 200 "DELETE ends the session"
wait "$CURL_PID" 2>/dev/null
ok "the GET stream closed with its session"
post '{"jsonrpc":"2.0","id":8,"method":"ping"}' -H "$S"
expect_code 404 "a deleted session is 404"
kill -0 "$SERVE_PID" || fail "the server died"
ok "the server lives on"
stop_serve

# A non-loopback address needs a token; with one, requests need it too.
RC=0
"$WEFT" serve --listen 0.0.0.0:0 "$CONF" --db "$WEFT_DB" </dev/null >"$T/out" 2>"$T/err" || RC=$?
expect_rc 2 "a public bind without a token"
expect_grep "$T/err" 'not a loopback address: give a bearer token' "says why"
TOKEN=0123456789abcdef0123456789abcdef
printf '%s\n' "$TOKEN" > "$T/token"
chmod 600 "$T/token"
# start_serve waits for the URL in serve.err: not the last server's.
rm -f "$T/serve.err"
start_serve "$CONF" "$T/wf/slow.lua" --db "$WEFT_DB" --token-file "$T/token"
expect_no_grep "$T/serve.err" warning "a token file of mode 600 is not warned about"
post "$INIT"
expect_code 401 "no token is 401"
expect_grep "$T/h" 'WWW-Authenticate: Bearer' "with a Bearer challenge"
post "$INIT" -H "Authorization: Bearer ${TOKEN}x"
expect_code 401 "a wrong token is 401"
post "$INIT" -H "Authorization: Bearer $TOKEN"
expect_code 200 "the token is accepted"
node "$INTEROP/sdk_client.mjs" http "$URL" "$TOKEN" >"$T/out" 2>"$T/err" ||
	{ cat "$T/out" "$T/err" >&2; fail "SDK client with a bearer token"; }
ok "the SDK client with a bearer token"
stop_serve
expect_no_orphans
