#!/bin/sh
# The viewer in a real browser: Debian's chromium driven by puppeteer-core
# (pinned in package.json) against a real `weft view` on a real store
# (tests/viewer/browser.mjs).  Screenshots go to viewer-screens/ in the
# directory the test runs in (the build directory under make check).
. "$WEFT_SRCDIR/tests/integration/lib.sh"
# A run left in the background by a failing check is stopped too.
NAP= VIEW_PID= VIEW= SPID=
trap '_rc=$?; for p in $NAP $VIEW_PID $VIEW $SPID; do kill "$p" 2>/dev/null; done; (exit $_rc); cleanup' EXIT

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
	echo "SKIP: no chromium at $CHROMIUM: the viewer's browser tests" \
	    "did NOT run (apt-get install chromium; scripts/install-deps.sh)" >&2
	exit 77
fi
if ! command -v node >/dev/null 2>&1 ||
    [ ! -d "$WEFT_SRCDIR/node_modules/puppeteer-core" ]; then
	echo "SKIP: node or $WEFT_SRCDIR/node_modules/puppeteer-core missing:" \
	    "the viewer's browser tests did NOT run (npm ci)" >&2
	exit 77
fi
export CHROMIUM WEFT

. "$WEFT_SRCDIR/tests/viewer/lib_view.sh"
view_flow_run
SEQ=$(sql "SELECT min(seq) FROM events WHERE run_id='$RUN' AND kind='state.write'")

# The same workflow, its second call changed: weft replay of the first run
# now diverges at that call, weft diff shows the two side by side, and
# weft eval scores them against a golden file.
sed -i 's/message = "two"/message = "three"/' "$T/flow.lua"
run_weft "$T/out" "$T/err" run "$T/flow.lua" --input '{"topic":"x"}'
[ "$RC" -eq 0 ] || { cat "$T/err" >&2; fail "the second run failed"; }
RUN2=$(last_run)
DIVSEQ=$(sql "SELECT seq FROM events WHERE run_id='$RUN' AND kind='tool.call' AND node_path='flow/second'")
cat > "$T/golden.json" <<'JSON'
{ "calls": [ { "tool": "test.echo", "args": { "message": "<img src=x onerror=alert(1)>" } },
             { "tool": "test.echo", "args": { "message": "two" } } ] }
JSON

# A run with what a run page shows beyond turns and calls: a model turn
# that falls back from one provider to another, a budget, capability
# tokens, one refused (an argument outside the grant).
export OPENAI_API_KEY=test-key ANTHROPIC_API_KEY=test-key
start_fake '{"claude-test": [{"status":529},{"status":529},{"status":529},{"status":529}], "gpt-test": [{"text":"<i>from the fallback</i>"}]}'
{
	echo 'local w = require "weft"'
	testserver_decl
	cat <<'LUA'
return w.sequential{ name = "rich", budget = { tool_calls = 10, tokens = 100000 },
  grant = { tools = { "test.echo" },
            args = { ["test.echo"] = { message = { enum = { "hello" } } } } },
  w.agent{ name = "asker", model = { "anthropic:claude-test", "openai:gpt-test" },
    stream = false, instruction = "Say.", output_key = "said",
    retry = { initial_interval = 0.01, max_interval = 0.05 } },
  w.tool{ name = "ok", server = "test", tool = "echo", args = { message = "hello" } },
  w.tool{ name = "bad", server = "test", tool = "echo", args = { message = "<b>rm</b>" } } }
LUA
} > "$T/rich.lua"
run_weft "$T/out" "$T/err" run "$T/rich.lua" --workers 1
[ "$RC" -eq 1 ] || { cat "$T/err" >&2; fail "the rich run: exit $RC, want 1"; }
stop_fake
RICH=$(last_run)

# A run waiting for an approval, its prompt hostile.
cat > "$T/approve.lua" <<'LUA'
local w = require "weft"
return w.sequential{ name = "release",
  w.approval{ name = "go", prompt = "Deploy <script>window.__pwned = 2</script>?",
    schema = { type = "object", required = { "env" },
               properties = { env = { type = "string" } } },
    output_key = "decision" } }
LUA
run_weft "$T/out" "$T/err" run "$T/approve.lua" </dev/null
[ "$RC" -eq 6 ] || { cat "$T/err" >&2; fail "the approval run: exit $RC, want 6"; }
ARUN=$(last_run)
export RUN2 DIVSEQ RICH ARUN

{
	echo 'local w = require "weft"'
	testserver_decl
	echo 'return w.sequential{ name = "s", w.tool{ name = "nap", server = "test", tool = "sleep", args = { ms = 600000 } } }'
} > "$T/nap.lua"
"$WEFT" run "$T/nap.lua" >"$T/nap.out" 2>"$T/nap.err" &
NAP=$!
wait_for_grep "$T/nap.err" '^weft: run [0-9a-f]+' "weft run prints its run id"
NRUN=$(sed -n 's/^weft: run \([0-9a-f]*\).*/\1/p' "$T/nap.err" | head -1)

"$WEFT" view --golden "$T/golden.json" >"$T/view.out" 2>"$T/view.err" &
VIEW=$!
wait_for_grep "$T/view.out" '^http://' "weft view prints its URL"
URL=$(head -1 "$T/view.out" | sed 's|/$||')

SHOTS="$PWD/viewer-screens"
mkdir -p "$SHOTS"
RC=0
node "$WEFT_SRCDIR/tests/viewer/browser.mjs" "$URL" "$RUN" "$SEQ" "$NRUN" \
    "$SHOTS" || RC=$?
kill "$NAP" 2>/dev/null
wait "$NAP"
NAP=
kill "$VIEW"
VRC=0
wait "$VIEW" || VRC=$?
VIEW=
[ "$VRC" -eq 0 ] || fail "weft view exit $VRC (see $T/view.err)"
[ "$RC" -eq 0 ] || fail "the browser test failed"
ok "screenshots in $SHOTS"
expect_no_orphans
