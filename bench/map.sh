#!/bin/sh
# bench/map.sh: memory and time of w.map over a long list with a small
# concurrency, against w.parallel of the same agents.  See bench/README.md.
#
#   sh bench/map.sh [N ...]        (default: 1000 10000 100000)
#
# For each N, the run input holds a list of N strings; a map with
# concurrency C (default 16) runs one scripted agent per item (one model
# turn, a conversation of two messages).  The same N agents as a
# w.parallel are measured for N up to PARALLEL_MAX (default 10000): there
# every branch's coroutine and conversation exist at once.  A first row
# per N runs one fn over the same input: what holding the list costs.  Prints the peak
# RSS of the coordinator (GNU time's %M) and the wall time, as Markdown.
#
# Environment: C=16, PARALLEL_MAX=10000, BUILDDIR=DIR (the build tree,
# default the source tree), WEFT=PATH, KEEP=1 (keep the scratch directory).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
build=${BUILDDIR:-$top}
WEFT=${WEFT:-$build/weft}
C=${C:-16}
PARALLEL_MAX=${PARALLEL_MAX:-10000}
[ -x "$WEFT" ] || { echo "map.sh: no weft binary at $WEFT" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "map.sh: needs GNU time (/usr/bin/time)" >&2; exit 1; }
scratch=$(mktemp -d "${TMPDIR:-/tmp}/weft-map.XXXXXX")
[ -n "${KEEP:-}" ] || trap 'rm -rf "$scratch"' EXIT
[ $# -gt 0 ] || set -- 1000 10000 100000

cat > "$scratch/map.lua" <<EOF2
local w = require "weft"
return w.map{ name = "fan", over = "items", concurrency = $C,
  w.agent{ name = "a", model = "scripted", instruction = "Summarise {item}", input = "{item}",
           script = function(req) return { text = "done" } end } }
EOF2

cat > "$scratch/base.lua" <<'EOF2'
local w = require "weft"
return w.fn{ name = "count", function(ctx) return #ctx.state.items end }
EOF2

# gen_parallel N: the same N agents as one w.parallel.
gen_parallel() {
	echo 'local w = require "weft"'
	echo 'local kids = {}'
	echo "for i = 1, $1 do"
	echo '  kids[i] = w.agent{ name = "a" .. i, model = "scripted", instruction = "Summarise {item}", input = "{item}",'
	echo '                     script = function(req) return { text = "done" } end }'
	echo 'end'
	echo 'kids.name = "fan"'
	echo 'return w.parallel(kids)'
}

# measure KIND N FILE: one run; prints "peak_kb wall_s".
measure() {
	python3 -c "import json,sys; n=int(sys.argv[1]); print(json.dumps({'item': 'x', 'items': ['item %d' % i for i in range(n)]}))" \
	    "$2" > "$scratch/input.json"
	WEFT_DB="$scratch/$1-$2.db" /usr/bin/time -f "%M %e" -o "$scratch/time" \
	    "$WEFT" run "$3" --input-file "$scratch/input.json" -q --json > "$scratch/out" ||
	    { echo "map.sh: $1 of $2 failed" >&2; exit 1; }
	cat "$scratch/time"
}

echo "| N | shape | peak RSS (MB) | wall (s) |"
echo "|---|---|---|---|"
for n in "$@"; do
	r=$(measure base "$n" "$scratch/base.lua")
	printf '| %s | the input alone (no agents) | %.1f | %s |\n' "$n" "$(echo "${r% *} / 1024" | bc -l)" "${r#* }"
	r=$(measure map "$n" "$scratch/map.lua")
	printf '| %s | map, concurrency %s | %.1f | %s |\n' "$n" "$C" "$(echo "${r% *} / 1024" | bc -l)" "${r#* }"
	if [ "$n" -le "$PARALLEL_MAX" ]; then
		gen_parallel "$n" > "$scratch/par.lua"
		r=$(measure parallel "$n" "$scratch/par.lua")
		printf '| %s | parallel | %.1f | %s |\n' "$n" "$(echo "${r% *} / 1024" | bc -l)" "${r#* }"
	fi
done
