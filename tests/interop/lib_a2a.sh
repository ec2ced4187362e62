# lib_a2a.sh: what the tests of weft's A2A client share (sourced after
# tests/integration/lib.sh): agents built with @a2a-js/sdk
# (tests/interop/a2a_agent.mjs), killed with the test.
NODE_MODULES="$WEFT_SRCDIR/node_modules"
if ! command -v node >/dev/null 2>&1 || [ ! -d "$NODE_MODULES/@a2a-js/sdk" ]; then
	echo "SKIP: node or $NODE_MODULES/@a2a-js/sdk missing (run npm ci in $WEFT_SRCDIR)"
	exit 77
fi
AGENT="$WEFT_SRCDIR/tests/interop/a2a_agent.mjs"
PIDS=
trap '_rc=$?; for p in $PIDS; do kill "$p" 2>/dev/null; done; (exit $_rc); cleanup' EXIT

# start_agent NAME ARGS...: an SDK agent; sets its port in P_NAME.
start_agent() {
	_n=$1
	shift
	NODE_PATH="$NODE_MODULES" node "$AGENT" "$T/$_n.port" "$T/$_n.log" "$@" \
	    >"$T/$_n.out" 2>&1 &
	PIDS="$PIDS $!"
	_i=0
	while [ ! -s "$T/$_n.port" ]; do
		_i=$((_i + 1))
		[ $_i -lt 600 ] || { cat "$T/$_n.out" >&2; fail "agent $_n did not start"; }
		sleep 0.05
	done
	eval "P_$_n=\$(cat \"\$T/\$_n.port\")"
}
