#!/bin/sh
# The official TypeScript SDK client drives `weft mcp` over stdio: tools
# from workflows, calls as recorded runs, progress, logs, errors, resources,
# prompts, cancellation; then raw malformed input must not kill the server.
. "$WEFT_SRCDIR/tests/integration/lib.sh"
. "$WEFT_SRCDIR/tests/interop/lib_interop.sh"

node "$INTEROP/sdk_client.mjs" stdio "$WEFT" mcp "$CONF" "$T/wf/slow.lua" \
    --db "$WEFT_DB" >"$T/out" 2>"$T/err" || RC=$?
cat "$T/out"
[ "${RC:-0}" -eq 0 ] || { cat "$T/err" >&2; fail "SDK client over stdio"; }
[ "$(sql "SELECT count(*) FROM runs WHERE status = 'cancelled' AND input LIKE '%cancel-me%'")" = 1 ] ||
	{ sql "SELECT id, status, input FROM runs" >&2; fail "the aborted call's run is recorded as cancelled"; }
ok "the aborted call's run is recorded as cancelled"
[ "$(sql "SELECT count(*) FROM runs WHERE status = 'succeeded'")" -ge 5 ] || fail "runs recorded"
ok "every call is a recorded run"

# Malformed and out-of-order input: JSON-RPC errors, the server lives on.
printf '%s\n' \
    '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' \
    'not json' \
    '[{"jsonrpc":"2.0","id":2,"method":"ping"}]' \
    '{"jsonrpc":"2.0","id":null,"method":"ping"}' \
    '{"jsonrpc":"2.0","id":3,"method":"initialize","params":{"protocolVersion":"1999-01-01","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}' \
    '{"jsonrpc":"2.0","id":4,"method":"nope"}' \
    '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"missing"}}' \
    '{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"slow","arguments":[1]}}' \
    '{"jsonrpc":"2.0","id":7,"method":"resources/list","params":{"cursor":"zzz"}}' \
    '{"jsonrpc":"2.0","id":8,"method":"logging/setLevel","params":{"level":"loud"}}' \
    '{"jsonrpc":"2.0","id":9,"method":"prompts/get","params":{"name":"test_prompt_with_arguments"}}' \
    '{"jsonrpc":"2.0","id":10,"method":"ping"}' |
    "$WEFT" mcp "$CONF" "$T/wf/slow.lua" --db "$WEFT_DB" >"$T/raw" 2>"$T/raw.err" || fail "weft mcp exited with $?"
expect_grep "$T/raw" '"id":1,"error":\{"code":-32600,"message":"'"'"'tools/list'"'"' before initialize' "requests before initialize are refused"
expect_grep "$T/raw" '"id":null,"error":\{"code":-32700' "parse error"
expect_grep "$T/raw" '"id":null,"error":\{"code":-32600.*batch|"id":null,"error":\{"code":-32600' "batches are invalid requests"
expect_grep "$T/raw" '"id":3,"result":\{"protocolVersion":"2025-11-25"' "an unknown version gets the server's latest"
expect_grep "$T/raw" '"id":4,"error":\{"code":-32601' "unknown method"
expect_grep "$T/raw" '"id":5,"error":\{"code":-32602,"message":"unknown tool' "unknown tool"
expect_grep "$T/raw" '"id":6,"error":\{"code":-32602' "arguments not an object"
expect_grep "$T/raw" '"id":7,"error":\{"code":-32602' "bad cursor"
expect_grep "$T/raw" '"id":8,"error":\{"code":-32602' "bad log level"
expect_grep "$T/raw" '"id":9,"error":\{"code":-32602,"message":"prompt .* needs argument' "missing prompt argument"
expect_grep "$T/raw" '"id":10,"result":\{\}' "still alive after bad input"
ok "malformed input gets JSON-RPC errors; the server lives on"

# --max-runs bounds runs at once: a call over the limit is refused at once;
# a cancelled run frees its place.  Each step waits for what the last one
# did (an answer on stdout, the run's row in the store), not for time.
NCANCELLED=$(sql "SELECT count(*) FROM runs WHERE status = 'cancelled'")
INIT='{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}'
{
	printf '%s\n' "$INIT" \
	    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow","arguments":{"label":"busy"}}}' \
	    '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_simple_text"}}'
	wait_for_grep "$T/raw" '"id":2,' "the call over the limit is answered"
	printf '%s\n' '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}'
	wait_until "the cancelled run's end" sql_is \
	    "SELECT count(*) > $NCANCELLED FROM runs WHERE status = 'cancelled'" 1
	printf '%s\n' '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"test_simple_text"}}'
	wait_for_grep "$T/raw" '"id":3,' "the call after the cancel is answered"
} | "$WEFT" mcp "$CONF" "$T/wf/slow.lua" --db "$WEFT_DB" --max-runs 1 --max-queued 0 >"$T/raw" 2>"$T/raw.err" ||
	fail "weft mcp --max-runs 1 exited with $?"
expect_grep "$T/raw" '"id":2,"result":\{"content":\[\{"type":"text","text":"the server is running 1 workflows and 0 calls wait, its limits' "a call over --max-runs with no room to wait is refused"
expect_no_grep "$T/raw" '"id":1,' "a cancelled call gets no answer"
expect_grep "$T/raw" '"id":3,"result":\{"content":\[\{"type":"text","text":"This is a simple' "a cancelled run frees its place"
ok "--max-runs bounds the runs; cancelling frees a place"

# Over --max-runs, a call waits in the admission queue (told so by a
# progress notification) and runs when a place is free.
{
	printf '%s\n' "$INIT" \
	    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow","arguments":{"label":"busy"}}}' \
	    '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_simple_text","_meta":{"progressToken":"q"}}}'
	wait_for_grep "$T/raw2" '"progressToken":"q".*waiting for a free run slot' "the waiting call is told it waits"
	printf '%s\n' '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}'
	wait_for_grep "$T/raw2" '"id":2,"result"' "the waiting call's answer"
} | "$WEFT" mcp "$CONF" "$T/wf/slow.lua" --db "$WEFT_DB" --max-runs 1 >"$T/raw2" 2>"$T/raw2.err" ||
	fail "weft mcp --max-runs 1 (queue) exited with $?"
expect_grep "$T/raw2" '"id":2,"result":\{"content":\[\{"type":"text","text":"This is a simple' "a waiting call runs once a place is free"
ok "over --max-runs a call waits in order, then runs"

# A workflow that does not load is refused at start with FILE:LINE.
printf 'local w = require "weft"\nlocal wf = w.workflow{ name = "x", input_schema = 3, w.fn{ function() end } }\nreturn wf\n' > "$T/bad.lua"
RC=0
"$WEFT" mcp "$T/bad.lua" </dev/null >"$T/out" 2>"$T/err" || RC=$?
expect_rc 2 "a bad workflow"
expect_grep "$T/err" 'bad.lua:2: workflow .x.: input_schema must be a table' "file:line of the bad field"
ok "a bad workflow is refused with file:line"
expect_no_orphans
