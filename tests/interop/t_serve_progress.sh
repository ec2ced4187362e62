#!/bin/sh
# Live progress of a served call (issue 15, item 6): while a tool step is
# still running, the MCP client already hears, in words, that the node
# started, which tool it calls, and the tool's own progress notification
# with its message and total; only then is the tool let finish.  The
# official SDK client calls; the order is made by files, never by time.
. "$WEFT_SRCDIR/tests/integration/lib.sh"
. "$WEFT_SRCDIR/tests/interop/lib_interop.sh"
trap '_rc=$?; stop_serve; (exit $_rc); cleanup' EXIT

cat > "$T/wf/fetch.lua" <<LUA
local w = require "weft"
w.mcp_server{ name = "web", command = { "$WEFT_TESTSERVER" }, sandbox = { read = { "$T" } } }
return w.workflow{ name = "fetch", description = "Fetch a page",
  w.tool{ name = "fetcher", server = "web", tool = "sleep",
          args = { ms = 0, ["until"] = "$T/release", progress = "fetching page 1",
                   text = "the page" },
          output_key = "page" } }
LUA
start_serve "$T/wf/fetch.lua" --db "$WEFT_DB"

: > "$T/seen"
node "$INTEROP/progress_client.mjs" "$URL" fetch "$T/seen" >"$T/out" 2>"$T/err" &
client=$!
# The tool's own progress reaches the client while the tool still waits
# for $T/release: it is not held back until the call ends.
wait_for_grep "$T/seen" 'fetcher: tool progress 1/2: fetching page 1' \
    "the tool's progress reaches the client while it runs"
[ ! -e "$T/release" ] || fail "released before the progress was seen"
expect_grep "$T/seen" '^fetcher: started$' "the node's start, in words"
expect_grep "$T/seen" '^fetcher: calling web/sleep$' "the tool call, in words"
touch "$T/release"
wait "$client" || fail "the client failed: $(cat "$T/err")"
expect_grep "$T/out" '"text":"the page"' "the call's answer"
expect_grep "$T/seen" '^fetcher: done$' "the node's end, before the answer"
if grep -q 'node\.start\|tool\.call ' "$T/seen"; then
	fail "progress still reads as internal event names: $(cat "$T/seen")"
fi
ok "a served call's progress comes live, in words, with the tool's own message and total"
