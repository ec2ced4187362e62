#!/bin/sh
# bench/replay.sh: recorded events replayed per second by `weft replay`.
#
#   sh bench/replay.sh [SHAPE...]     (default: agents long values)
#
# Records one large run per shape with `weft run`, then replays it offline
# REPS times with `weft replay RUN --json` and reports, as medians:
#
#   events/s (wall)  = events of the recorded run / wall time of the whole
#                      `weft replay` command (process start, workflow load,
#                      reading the record from SQLite, re-executing the
#                      script with every call answered from the record,
#                      the verdict, exit)
#   events/s (graph) = events / the re-execution alone (`seconds` in the
#                      --json verdict)
#   load s           = reading the record from the store (`load_seconds`)
#   live graph s     = the recorded run's own graph time (`duration` of
#                      `weft run --json`), for comparison
#
# Shapes (the scripted provider answers model turns; tool calls go to the
# in-tree bench MCP server, so the recorded run is a real one):
#   agents  N_AGENTS parallel agents, each: a model turn asking for a tool,
#           the tool call, a final model turn (7 events per agent)
#   long    N_LONG parallel agents of TURNS tool-using turns each (the
#           conversation, re-encoded at each turn, grows)
#   values  one fn node making N_VALUES w.random() calls (one event each)
#
# Environment: REPS=5, N_AGENTS=10000, N_LONG=500, TURNS=30,
# N_VALUES=200000, BUILDDIR (default: the source tree), WEFT, TESTSERVER.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
build=${BUILDDIR:-$top}
WEFT=${WEFT:-$build/weft}
TESTSERVER=${TESTSERVER:-$build/tests/mcp-testserver-bench}
REPS=${REPS:-5}
N_AGENTS=${N_AGENTS:-10000}
N_LONG=${N_LONG:-500}
TURNS=${TURNS:-30}
N_VALUES=${N_VALUES:-200000}

[ -x "$WEFT" ] || { echo "replay.sh: no weft at $WEFT (make first)" >&2; exit 1; }
[ -x "$TESTSERVER" ] || { echo "replay.sh: no bench MCP server at $TESTSERVER (make tests/mcp-testserver-bench)" >&2; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/weft-replay.XXXXXX")
trap 'rm -rf "$T"' EXIT
export WEFT_DB="$T/weft.db" WEFT_STATE_DIR="$T/state"

# workflow SHAPE: the Lua file of a shape, on stdout.
workflow() {
	echo 'local w = require "weft"'
	printf 'w.mcp_server{ name = "t", command = { "%s" } }\n' "$TESTSERVER"
	case $1 in
	agents)
		cat <<EOF
local a = {}
for i = 1, $N_AGENTS do
  a[i] = w.agent{ name = "a" .. i, model = "scripted", tools = { w.mcp("t", { only = { "noop" } }) },
    script = { { tool_calls = { { name = "noop" } } }, { text = "done" } } }
end
return w.parallel{ name = "fan", table.unpack(a) }
EOF
		;;
	long)
		cat <<EOF
local a = {}
for i = 1, $N_LONG do
  a[i] = w.agent{ name = "a" .. i, model = "scripted", max_turns = $TURNS + 1,
    tools = { w.mcp("t", { only = { "noop" } }) },
    script = function(req, turn)
      if turn <= $TURNS then return { tool_calls = { { name = "noop" } } } end
      return { text = "done" }
    end }
end
return w.parallel{ name = "fan", table.unpack(a) }
EOF
		;;
	values)
		cat <<EOF
return w.fn{ name = "dice", function(ctx)
  local s = 0
  for i = 1, $N_VALUES do s = s + w.random(1, 6) end
  return s
end }
EOF
		;;
	*)
		echo "replay.sh: unknown shape '$1' (agents, long, values)" >&2
		exit 2
		;;
	esac
}

median() {
	sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

printf '| shape | events | recorded steps | live graph s | replay wall s | events/s (wall) | load s | replay graph s | events/s (graph) |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
for shape in ${*:-agents long values}; do
	workflow "$shape" > "$T/$shape.lua"
	rm -f "$WEFT_DB" "$WEFT_DB-wal" "$WEFT_DB-shm"
	"$WEFT" run "$T/$shape.lua" --workers 2 --json > "$T/run.json"
	id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run"])' "$T/run.json")
	live=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["duration"])' "$T/run.json")
	events=$(sqlite3 "$WEFT_DB" "SELECT count(*) FROM events WHERE run_id = '$id'")
	: > "$T/wall"
	: > "$T/graph"
	: > "$T/load"
	i=0
	while [ $i -lt "$REPS" ]; do
		a=$(date +%s.%N)
		"$WEFT" replay "$id" --json > "$T/replay.json"
		b=$(date +%s.%N)
		echo "$b - $a" | bc -l >> "$T/wall"
		python3 - "$T/replay.json" "$T/load" >> "$T/graph" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
assert v["identical"], v
print(v["seconds"])
print(v["load_seconds"], file=open(sys.argv[2], "a"))
PY
		steps=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["steps"])' "$T/replay.json")
		i=$((i + 1))
	done
	wall=$(median < "$T/wall")
	graph=$(median < "$T/graph")
	load=$(median < "$T/load")
	printf '| %s | %s | %s | %.3f | %.3f | %.0f | %.3f | %.3f | %.0f |\n' \
	    "$shape" "$events" "$steps" "$live" "$wall" \
	    "$(echo "$events / $wall" | bc -l)" "$load" "$graph" \
	    "$(echo "$events / $graph" | bc -l)"
done
