#!/bin/sh
# serve.sh: served-call latency and throughput of `weft serve`, and its
# memory with 1,000 runs waiting on a slow tool (bench/README.md, "serve").
#
#   sh bench/serve.sh            concurrency 1, 10, 100; then the RSS
#   sh bench/serve.sh 1 10       only these concurrencies, no RSS
#   RSS_RUNS=1000 sh bench/serve.sh rss   only the RSS measurement
#
# Environment: BUILDDIR (default ./build), WEFT, TESTSERVER, CALLS (calls
# per concurrency level, default 20 x concurrency, at least 200), WORKERS
# (--workers, default the number of CPUs), RSS_RUNS (default 1000),
# KEEP=1 keeps the scratch directory, WORKFLOWS (default: fn tool toolkeep
# everything).
#
# The client is tests/helpers/mcp_call.py (python3, http.client): each of
# C threads opens its own MCP session (initialize, notifications/
# initialized) and makes tools/call requests one after another over a
# kept-alive connection, reading the SSE answer to its end.  Latency is
# per call, request to answer; calls/s is calls over the wall time of the
# whole level (session set-up included).
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILDDIR=${BUILDDIR:-$SRC/build}
WEFT=${WEFT:-$BUILDDIR/weft}
TESTSERVER=${TESTSERVER:-$BUILDDIR/tests/mcp-testserver}
CLIENT=$SRC/tests/helpers/mcp_call.py
WORKERS=${WORKERS:-$(nproc)}
RSS_RUNS=${RSS_RUNS:-1000}
[ -x "$WEFT" ] || { echo "no weft at $WEFT (BUILDDIR?)" >&2; exit 1; }
[ -x "$TESTSERVER" ] || { echo "no test server at $TESTSERVER (make check builds it)" >&2; exit 1; }
D=$(mktemp -d "${TMPDIR:-/tmp}/weft-bench-serve.XXXXXX")
export WEFT_DB="$D/weft.db" WEFT_STATE_DIR="$D/state"
SERVE_PID=
finish() {
	[ -z "$SERVE_PID" ] || { kill -TERM "$SERVE_PID" 2>/dev/null
		wait "$SERVE_PID" 2>/dev/null || true; }
	[ "${KEEP:-}" = 1 ] && echo "kept $D" >&2 || rm -rf "$D"
}
trap finish EXIT

cat > "$D/fn.lua" <<'LUA'
local w = require "weft"
return w.workflow{ name = "fn",
  input_schema = { type = "object", properties = { text = { type = "string" } } },
  w.fn{ name = "answer", function(ctx) return ctx.input.text or "none" end } }
LUA
cat > "$D/tool.lua" <<LUA
local w = require "weft"
w.mcp_server{ name = "t", command = { "$TESTSERVER" } }
return w.workflow{ name = "tool",
  w.tool{ name = "call", server = "t", tool = "echo", args = { message = "hi" } } }
LUA
# The same call on a server kept warm for the workflow's runs, and on
# node's server-everything kept warm (keep = "workflow", docs/mcp.md).
cat > "$D/toolkeep.lua" <<LUA
local w = require "weft"
w.mcp_server{ name = "t", command = { "$TESTSERVER" }, keep = "workflow" }
return w.workflow{ name = "toolkeep",
  w.tool{ name = "call", server = "t", tool = "echo", args = { message = "hi" } } }
LUA
EVERYTHING=$SRC/node_modules/.bin/mcp-server-everything
cat > "$D/everything.lua" <<LUA
local w = require "weft"
w.mcp_server{ name = "e", command = { "$EVERYTHING", "stdio" }, keep = "workflow" }
return w.workflow{ name = "everything",
  w.tool{ name = "call", server = "e", tool = "echo", args = { message = "hi" } } }
LUA
cat > "$D/slow.lua" <<LUA
local w = require "weft"
w.mcp_server{ name = "t", command = { "$TESTSERVER" } }
return w.workflow{ name = "slow",
  w.tool{ name = "call", server = "t", tool = "sleep", args = { ms = 600000 } } }
LUA

# serve ARGS...: start weft serve on a free port; SERVE_PID, URL, BASE.
serve() {
	rm -f "$D/serve.err"
	"$WEFT" serve --listen 127.0.0.1:0 --workers "$WORKERS" \
	    --drain-timeout 0 "$@" 2>"$D/serve.err" &
	SERVE_PID=$!
	i=0
	until grep -q 'serving .* at http' "$D/serve.err" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 600 ] && kill -0 "$SERVE_PID" 2>/dev/null ||
		    { cat "$D/serve.err" >&2; exit 1; }
		sleep 0.05
	done
	URL=$(sed -n 's/.*serving .* at \(http[^ ]*\)$/\1/p' "$D/serve.err")
	BASE=${URL%/mcp}
}
stop() {
	kill -TERM "$SERVE_PID"
	wait "$SERVE_PID" || true
	SERVE_PID=
}
metric() {
	curl -s "$BASE/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}

ARGS="$*"
levels=${ARGS:-1 10 100}
[ "$levels" = rss ] && levels=
if [ -n "$levels" ]; then
	echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), workers $WORKERS"
	printf '%-10s %5s %7s %9s %9s %8s %6s\n' workflow conc calls p50_ms \
	    p99_ms calls/s errors
	wfs="fn tool toolkeep"
	[ -x "$EVERYTHING" ] && wfs="$wfs everything" ||
	    echo "no $EVERYTHING (npm ci): server-everything not measured" >&2
	for wf in ${WORKFLOWS:-$wfs}; do
		serve "$D/$wf.lua" --max-runs 256 --max-queued 1024 \
		    --max-sessions 1000
		# Warm up: the workers' MCP server sessions start.
		python3 "$CLIENT" bench "$URL" "$wf" '{"text":"hi"}' 4 20 >/dev/null
		for c in $levels; do
			n=${CALLS:-$((c * 20 < 200 ? 200 : c * 20))}
			set -- $(python3 "$CLIENT" bench "$URL" "$wf" \
			    '{"text":"hi"}' "$c" "$n")
			printf '%-10s %5s %7s %9s %9s %8s %6s\n' "$wf" "$c" "$n" \
			    "$1" "$2" "$3" "$4"
		done
		stop
	done
fi
if [ -z "$ARGS" ] || [ "$ARGS" = rss ]; then
	# RSS with RSS_RUNS runs each waiting on a 10-minute tool call.
	ulimit -n $((RSS_RUNS * 4 + 256)) 2>/dev/null || true
	serve "$D/slow.lua" --max-runs "$RSS_RUNS" --max-queued 0 \
	    --max-sessions 16 --max-connections $((RSS_RUNS + 64))
	idle=$(awk '/^VmRSS/ { print $2 }' "/proc/$SERVE_PID/status")
	rm -f "$D/ready"
	python3 "$CLIENT" flood "$URL" slow '{}' "$RSS_RUNS" "$D/ready" \
	    >/dev/null 2>&1 &
	FLOOD=$!
	i=0
	until [ "$(metric weft_runs_running)" = "$RSS_RUNS" ]; do
		i=$((i + 1))
		[ $i -lt 1200 ] || { echo "never reached $RSS_RUNS runs" >&2
			curl -s "$BASE/metrics" | grep -v "^#" >&2; tail "$D/serve.err" >&2; exit 1; }
		sleep 0.1
	done
	rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$SERVE_PID/status")
	hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$SERVE_PID/status")
	wrss=0 srss=0 nsrv=0
	for p in $(pgrep -P "$SERVE_PID"); do
		wrss=$((wrss + $(awk '/^VmRSS/ { print $2 }' "/proc/$p/status")))
		for q in $(pgrep -P "$p"); do
			nsrv=$((nsrv + 1))
			srss=$((srss + $(awk '/^VmRSS/ { print $2 }' \
			    "/proc/$q/status" 2>/dev/null || echo 0)))
		done
	done
	echo "serve with $RSS_RUNS runs waiting on a slow tool: RSS $((rss / 1024)) MiB" \
	    "(idle $((idle / 1024)) MiB, peak $((hwm / 1024)) MiB;" \
	    "$(metric weft_tasks_leased) calls leased, $(metric weft_tasks_queued) queued);" \
	    "its workers: $((wrss / 1024)) MiB; $nsrv MCP server processes:" \
	    "$((srss / 1024)) MiB"
	stop
	kill "$FLOOD" 2>/dev/null || true
	wait "$FLOOD" 2>/dev/null || true
fi
