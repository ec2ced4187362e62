#!/bin/sh
# bench/modelcall.sh: coordinator CPU per model call over HTTP.
#
#   sh bench/modelcall.sh [N_SMALL N_LARGE]     (default: 200 2000)
#
# Runs a workflow of N parallel agents, each making one model call to the
# fake model server (tests/fakemodel, on 127.0.0.1) and answering, for
# two values of N, with the OpenAI and the Anthropic wire formats,
# streaming and not.  The coordinator's CPU time (getrusage of the
# `weft run` process: its loop, libcurl, SQLite, nng threads) comes from
# `weft run --json`.  The cost of one model call is the slope
#
#     (cpu(N_LARGE) - cpu(N_SMALL)) / (N_LARGE - N_SMALL)
#
# which cancels start-up, workflow loading and shutdown.  It includes
# everything the coordinator does per agent: the agent node (start, end,
# events), building the request, the HTTP exchange, parsing the answer,
# and recording the events and blobs.  The same workflow on the scripted
# provider (no HTTP) gives the cost of the agent node alone; the
# difference is what the model-call path adds.  Medians of REPS runs.
#
# Environment: REPS=5, BUILDDIR (default: the source tree), WEFT,
# FAKEMODEL.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
build=${BUILDDIR:-$top}
WEFT=${WEFT:-$build/weft}
FAKEMODEL=${FAKEMODEL:-$build/tests/fakemodel}
REPS=${REPS:-5}
small=${1:-200}
large=${2:-2000}

[ -x "$WEFT" ] || { echo "modelcall.sh: no weft at $WEFT (make first)" >&2; exit 1; }
[ -x "$FAKEMODEL" ] || { echo "modelcall.sh: no fakemodel at $FAKEMODEL (make check builds it: make tests/fakemodel)" >&2; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/weft-modelcall.XXXXXX")
FAKE_PID=
cleanup() {
	[ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

export OPENAI_API_KEY=sk-bench ANTHROPIC_API_KEY=sk-bench

# Enough scripted answers for every run.
python3 - "$T/script.json" $((4 * (small + REPS * (small + large)) + 64)) <<'PY'
import json, sys
n = int(sys.argv[2])
json.dump({"*": [{"text": "ok", "usage": {"input": 50, "output": 5}}] * n},
          open(sys.argv[1], "w"))
PY

start_fake() {
	[ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null && wait "$FAKE_PID" 2>/dev/null || true
	rm -f "$T/port"
	"$FAKEMODEL" --port-file "$T/port" --script "$T/script.json" 2>"$T/fake.err" &
	FAKE_PID=$!
	while [ ! -s "$T/port" ]; do sleep 0.05; done
	port=$(cat "$T/port")
	export OPENAI_BASE_URL="http://127.0.0.1:$port/v1"
	export ANTHROPIC_BASE_URL="http://127.0.0.1:$port"
}

# workflow FILE N MODEL STREAM
workflow() {
	{
		echo 'local w = require "weft"'
		echo 'local a = {}'
		if [ "$3" = scripted ]; then
			echo "for i = 1, $2 do a[i] = w.agent{ name = 'a' .. i, model = 'scripted', script = { { text = 'ok' } }, instruction = 'Say ok.' } end"
		else
			echo "for i = 1, $2 do a[i] = w.agent{ name = 'a' .. i, model = '$3', stream = $4, max_tokens = 64, instruction = 'Say ok.' } end"
		fi
		echo 'a.name = "fan"'
		echo 'return w.parallel(a)'
	} > "$1"
}

# cpu FILE: coordinator user+system seconds of one run.
cpu() {
	rm -f "$T/db" "$T/db-wal" "$T/db-shm"
	"$WEFT" run "$1" --db "$T/db" --json > "$T/out"
	python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["status"]=="succeeded", r; c=r["coordinator_cpu"]; print("%.6f" % (c["user"]+c["system"]))' "$T/out"
}

median() {
	sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'
}

echo "# weft model-call benchmark"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; N = $small and $large parallel agents, one model call each; $REPS runs, medians"
echo
echo "| format | stream | cpu ms (N=$small) | cpu ms (N=$large) | coordinator CPU per agent (µs) | added by the model call (µs) |"
echo "|---|---|---|---|---|---|"
start_fake
base=
for model in scripted openai:bench anthropic:bench; do
	for stream in false true; do
		[ "$model" = scripted ] && [ "$stream" = true ] && continue
		workflow "$T/small.lua" "$small" "$model" "$stream"
		workflow "$T/large.lua" "$large" "$model" "$stream"
		cpu "$T/small.lua" >/dev/null	# warm-up
		: > "$T/s"; : > "$T/l"
		i=0
		while [ $i -lt "$REPS" ]; do
			cpu "$T/small.lua" >> "$T/s"
			cpu "$T/large.lua" >> "$T/l"
			i=$((i + 1))
		done
		s=$(median < "$T/s")
		l=$(median < "$T/l")
		per=$(python3 -c "print('%.1f' % ((float('$l') - float('$s')) / ($large - $small) * 1e6))")
		if [ "$model" = scripted ]; then
			base=$per
			added="(baseline)"
			stream="-"
		else
			added=$(python3 -c "print('%.1f' % (float('$per') - float('$base')))")
		fi
		echo "| ${model%%:*} | $stream | $(python3 -c "print('%.1f' % (float('$s')*1000))") | $(python3 -c "print('%.1f' % (float('$l')*1000))") | $per | $added |"
	done
done
