#!/bin/sh
# bench/profile.sh: where the fan-out benchmark spends its time.
#
#   sh bench/profile.sh [N [RUNS]]      (default: N=1000, RUNS=3)
#
# Debian's shared libraries keep no symbols for their internal functions
# (luaV_execute, propagatemark, sqlite3VdbeExec ... would show as bare
# addresses), so this links a copy of weft in a scratch directory against
# the static Lua, jansson, SQLite, libevent and nng archives, from the
# objects of the current build (nothing in the tree changes).  It runs the
# bench/fanout.sh workflow RUNS times under `perf record --call-graph
# dwarf` (event cpu-clock, which also works in a VM without hardware
# counters), and prints for the coordinator (samples inside coord_loop, the
# graph's execution) and for the workers (samples inside worker_main, their
# loop thread) the top functions by self and inclusive time, and a
# breakdown of the coordinator by activity.
#
# Environment: WORKERS (nproc), FREQ (sampling Hz, 2000), BUILDDIR (the
# build tree, default the source tree), KEEP=1 keeps the scratch directory
# (perf.data, the binary) for `perf report -i`.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
build=${BUILDDIR:-$top}
N=${1:-1000}
RUNS=${2:-3}
WORKERS=${WORKERS:-$(nproc)}
FREQ=${FREQ:-2000}

die() {
	echo "profile.sh: $*" >&2
	exit 1
}

command -v perf > /dev/null || die "needs perf (apt-get install linux-perf)"
if [ ! -f "$build/engine/main.o" ] || [ ! -f "$build/libweft.a" ]; then
	die "build weft first (make)"
fi
perf stat -e cpu-clock true > /dev/null 2>&1 ||
    die "perf cannot sample here (see /proc/sys/kernel/perf_event_paranoid)"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/weft-profile.XXXXXX")
cleanup() {
	if [ "${KEEP:-0}" = 1 ]; then
		echo "kept $scratch" >&2
	else
		rm -rf "$scratch"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Workers are started from /proc/self/exe, so they run this copy too.
${CC:-cc} -g -O2 -o "$scratch/weft" "$build/engine/main.o" "$build/libweft.a" \
    -Wl,-Bstatic -levent_pthreads -levent -llua5.4 -ljansson -lsqlite3 \
    -lnng -lmbedtls -lmbedx509 -lmbedcrypto -Wl,-Bdynamic \
    -lcurl -lcrypto -lseccomp -lpthread -lm -ldl ||
    die "cannot link a static-archive copy of weft (are the -dev packages" \
	"with their .a files installed, e.g. libmbedtls-dev for nng?)"
BUILDDIR=$build sh "$here/fanout.sh" --workflow "$N" > "$scratch/fanout.lua"

i=1
: > "$scratch/runs.sh"
while [ "$i" -le "$RUNS" ]; do
	echo "rm -f '$scratch/p.db'*;" \
	    "'$scratch/weft' run '$scratch/fanout.lua' --workers $WORKERS" \
	    "--db '$scratch/p.db' --json | grep duration" >> "$scratch/runs.sh"
	i=$((i + 1))
done
echo "profiling N=$N, $RUNS runs, $WORKERS workers ..." >&2
perf record -q -e cpu-clock -F "$FREQ" --call-graph dwarf,16384 \
    -o "$scratch/perf.data" -- sh "$scratch/runs.sh" >&2
perf script -i "$scratch/perf.data" -F comm,pid,tid,ip,sym 2> /dev/null \
    > "$scratch/samples"

# report FRAME TITLE: self and inclusive top functions of the samples that
# have FRAME on their stack.
report() {
	awk -v frame="$1" -v title="$2" '
	BEGIN { RS = ""; FS = "\n" }
	{
		n = 0; found = 0
		for (i = 2; i <= NF; i++) {
			s = $i
			sub(/^[ \t]*[0-9a-f]+ /, "", s)
			sub(/\+0x[0-9a-f]+$/, "", s)
			sub(/ \(inlined\)$/, "", s)
			f[++n] = s
			if (s == frame) found = 1
		}
		if (!found || n == 0) next
		total++
		self[f[1]]++
		split("", seen)
		for (i = 1; i <= n; i++)
			if (!(f[i] in seen)) { seen[f[i]] = 1; incl[f[i]]++ }
	}
	END {
		printf "\n## %s: %d samples inside %s\n\n", title, total, frame
		print "self %   function"
		for (s in self) printf "%6.1f   %s\n", 100 * self[s] / total, s \
		    | "sort -rn | head -25"
		close("sort -rn | head -25")
		print "\ninclusive %   function"
		for (s in incl) printf "%6.1f   %s\n", 100 * incl[s] / total, s \
		    | "sort -rn | head -40"
		close("sort -rn | head -40")
	}' "$scratch/samples"
}

# The coordinator by activity: each sample goes to the first rule with a
# frame on its stack (so GC inside l_event counts as GC).
breakdown() {
	awk -v freq="$FREQ" -v runs="$RUNS" -v steps="$((3 * N * RUNS))" '
	BEGIN {
		RS = ""; FS = "\n"
		nr = split("lua_gc|luaC_step luaC_fullgc|" \
		    "store_event_append store_task_put|store_commit|" \
		    "l_event coord_event coord_task_row|l_json_encode|" \
		    "coord_rctx_loop_cb coord_dispatch coord_reply bridge_read_cb|" \
		    "l_submit|luaeng_deliver_cb|" \
		    "luaG_traceexec rethook luaeng_hook|" \
		    "luaV_execute lua_pcallk lua_resume", rule, "|")
		split("Lua GC: explicit lua_gc(LUA_GCSTEP) after each pump|" \
		    "Lua GC: allocation-driven steps|" \
		    "record: SQLite insert (events, task rows)|" \
		    "record: SQLite commit|" \
		    "record: payload Lua->jansson->text (l_event, coord_event)|" \
		    "token estimate: core.json_encode of the messages|" \
		    "wire: worker requests, dispatch, replies|" \
		    "submit: task params Lua->jansson (l_submit)|" \
		    "deliver: results jansson->Lua (push_json)|" \
		    "Lua count hook (luaG_traceexec, rethook)|" \
		    "runner Lua: interpreter, tables, coroutines", name, "|")
	}
	{
		split("", on); found = 0
		for (i = 2; i <= NF; i++) {
			s = $i
			sub(/^[ \t]*[0-9a-f]+ /, "", s)
			sub(/\+0x[0-9a-f]+$/, "", s)
			sub(/ \(inlined\)$/, "", s)
			on[s] = 1
			if (s == "coord_loop") found = 1
		}
		if (!found) next
		total++
		for (r = 1; r <= nr; r++) {
			k = split(rule[r], fr, " ")
			for (j = 1; j <= k; j++)
				if (fr[j] in on) { cnt[r]++; next }
		}
		other++
	}
	END {
		printf "\n## coordinator by activity, inside coord_loop: " \
		    "%.1f ms per run, %.1f us per step\n\n",
		    1000 * total / freq / runs, 1e6 * total / freq / steps
		for (r = 1; r <= nr; r++)
			if (cnt[r]) printf "%6.1f%%  %s\n", 100 * cnt[r] / total,
			    name[r] | "sort -rn"
		close("sort -rn")
		printf "%6.1f%%  other (event loop, kernel)\n", 100 * other / total
	}' "$scratch/samples"
}

# CPU time by process type, from the samples, all threads counted.  A pid
# is the coordinator if coord_loop is on one of its stacks (and proc_spawn
# is not: that is a child between fork and exec), an MCP server by its
# name; any other weft process (threads named weft or nng:*) is a worker.
cpu_by_process() {
	awk -v freq="$FREQ" -v runs="$RUNS" -v steps="$((3 * N * RUNS))" '
	BEGIN { RS = ""; FS = "\n" }
	{
		split($1, h, " ")
		comm = h[1]; pid = h[2]; sub(/\/.*/, "", pid)
		samples[pid]++
		if (comm ~ /^mcp-testserver/)
			kind[pid] = "MCP servers"
		else if ($0 ~ /\n[ \t]*[0-9a-f]+ coord_loop/ &&
		    $0 !~ /\n[ \t]*[0-9a-f]+ proc_spawn/)
			coord[pid] = 1
		else if (comm == "weft" || comm ~ /^nng:/)
			weft[pid] = 1
	}
	END {
		print "\n## CPU time per run by process (all threads)\n"
		for (p in samples)
			if (p in coord)
				kind[p] = "coordinator"
			else if (p in weft && !(p in kind))
				kind[p] = "workers"
		for (p in samples)
			t[p in kind ? kind[p] : "other (sh, rm, grep)"] += samples[p]
		for (k in t)
			printf "%8.1f ms  %5.1f us/step  %s\n",
			    1000 * t[k] / freq / runs, 1e6 * t[k] / freq / steps, k
	}' "$scratch/samples"
}

echo "# weft profile: fan-out N=$N, $RUNS runs, $WORKERS workers," \
    "perf cpu-clock at $FREQ Hz"
cpu_by_process
breakdown
report coord_loop "coordinator"
report worker_main "workers (loop thread)"
