#!/bin/sh
# viewer.sh: time to first render of a run of N events (default 50,000)
# in the viewer, in Debian's chromium (puppeteer-core): the run page (all
# events fetched and folded into the tree), the replay page (the state at
# step 1) and weft replay's verdict on it, and a frame of scrolling the
# replay's event list.
#   sh bench/viewer.sh [N]
# Environment: BUILDDIR (default build), REPS (default 5), CHROMIUM.
set -eu
cd "$(dirname "$0")/.."
N=${1:-50000}
WEFT=${WEFT:-${BUILDDIR:-build}/weft}
REPS=${REPS:-5}
D=$(mktemp -d "${TMPDIR:-/tmp}/weft-bench-viewer.XXXXXX")
trap 'kill $VIEW 2>/dev/null; rm -rf "$D"' EXIT
# A loop of fn nodes: four events an iteration.
cat > "$D/big.lua" <<LUA
local w = require "weft"
return w.loop{ name = "big", max_iterations = $(( (N - 4) / 4 )),
  w.fn{ name = "step", run = function(ctx) ctx.state.n = (ctx.state.n or 0) + 1 end } }
LUA
"$WEFT" run "$D/big.lua" --db "$D/w.db" -q >/dev/null
RUN=$(sqlite3 "$D/w.db" "SELECT id FROM runs")
echo "events: $(sqlite3 "$D/w.db" "SELECT count(*) FROM events WHERE run_id='$RUN'")"
"$WEFT" view --db "$D/w.db" >"$D/url" 2>/dev/null &
VIEW=$!
while [ ! -s "$D/url" ]; do sleep 0.05; done
node bench/viewer.mjs "$(head -1 "$D/url" | sed 's|/$||')" "$RUN" "$REPS"
