#!/bin/sh
# The official MCP conformance suite (@modelcontextprotocol/conformance,
# server mode over HTTP) against `weft serve tests/interop/workflows`: every
# scenario of the "all" suite runs; known failures, with their reasons,
# would be listed in conformance-baseline.yml (none today), and the suite
# fails on any other failure and on a listed one that starts passing.
. "$WEFT_SRCDIR/tests/integration/lib.sh"
. "$WEFT_SRCDIR/tests/interop/lib_interop.sh"
CONFORMANCE="$NODE_MODULES/.bin/conformance"
[ -x "$CONFORMANCE" ] || { echo "SKIP: $CONFORMANCE missing (npm ci)"; exit 77; }
trap '_rc=$?; stop_serve; (exit $_rc); cleanup' EXIT

start_serve "$CONF" --db "$WEFT_DB"
RC=0
"$CONFORMANCE" server --url "$URL" --suite all \
    --expected-failures "$INTEROP/conformance-baseline.yml" >"$T/conf" 2>&1 || RC=$?
grep -E '^(✓|✗)|^Total|baseline|Unexpected' "$T/conf"
[ "$RC" -eq 0 ] || { cat "$T/conf" "$T/serve.err" >&2; fail "conformance suite: exit $RC"; }
ok "conformance: every scenario of the suite passes"
kill -0 "$SERVE_PID" || fail "the server died"
stop_serve
expect_no_orphans
