# lib_interop.sh: shared setup of the interop tests (official MCP SDK and
# conformance suite against `weft mcp` / `weft serve`).  Sourced after
# tests/integration/lib.sh.
NODE_MODULES="$WEFT_SRCDIR/node_modules"
if ! command -v node >/dev/null 2>&1 ||
    [ ! -d "$NODE_MODULES/@modelcontextprotocol/sdk" ]; then
	echo "SKIP: node or $NODE_MODULES/@modelcontextprotocol/sdk missing (run npm ci in $WEFT_SRCDIR)"
	exit 77
fi
INTEROP="$WEFT_SRCDIR/tests/interop"
CONF="$WEFT_SRCDIR/tests/interop/workflows"

# A workflow that sleeps 30 s on the in-tree test server (to cancel).
mkdir -p "$T/wf"
{
	echo 'local w = require "weft"'
	testserver_decl
	cat <<'LUA'
return w.workflow{
  name = "slow",
  description = "Sleeps on the test server",
  input_schema = { type = "object", properties = { label = { type = "string" } }, required = { "label" } },
  w.tool{ name = "nap", server = "test", tool = "sleep", args = { ms = 30000 } },
}
LUA
} > "$T/wf/slow.lua"

# start_serve ARGS...: weft serve on a free port; sets SERVE_PID, URL
# and HOSTPORT (serve_wait, lib.sh).
start_serve() {
	rm -f "$T/serve.err"
	"$WEFT" serve --listen 127.0.0.1:0 "$@" 2>"$T/serve.err" &
	SERVE_PID=$!
	serve_wait
	HOSTPORT=${BASE#http://}
}
# stop_serve: as lib.sh's, without asserting the exit status (these tests
# check what the SDK saw; t_serve_runs checks a clean stop itself).
stop_serve() {
	if [ -n "$SERVE_PID" ]; then
		kill "$SERVE_PID" 2>/dev/null
		wait "$SERVE_PID" 2>/dev/null
		SERVE_PID=
	fi
}
