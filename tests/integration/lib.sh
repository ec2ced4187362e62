# lib.sh: helpers for integration tests.  Each test is a shell script run by
# `make check` with WEFT (the binary), WEFT_TESTSERVER (the in-tree MCP
# server) and WEFT_SRCDIR set.  Exit 0 = pass, 77 = skip, else fail.
set -u
: "${WEFT:?run through make check}"
: "${WEFT_SRCDIR:?run through make check}"
T=$(mktemp -d "${TMPDIR:-/tmp}/weft-test.XXXXXX")
export WEFT_DB="$T/weft.db"
# Signing keys of capability tokens: one state directory per test.
export WEFT_STATE_DIR="$T/state"
export WEFT_TESTSERVER
trap 'cleanup' EXIT
cleanup() {
	rc=$?
	stop_fake
	if [ "$rc" -ne 0 ] && [ -d "$T" ]; then
		echo "--- test dir $T kept for inspection" >&2
	else
		rm -rf "$T"
	fi
	exit "$rc"
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

ok() {
	echo "ok - $*"
}

# run_weft OUT ERR ARGS...: run weft, capture stdout/stderr, set RC.
run_weft() {
	_out=$1 _err=$2
	shift 2
	RC=0
	"$WEFT" "$@" >"$_out" 2>"$_err" || RC=$?
}

expect_rc() {
	[ "$RC" -eq "$1" ] || {
		echo "--- stdout:" >&2; cat "$T/out" >&2 2>/dev/null
		echo "--- stderr:" >&2; cat "$T/err" >&2 2>/dev/null
		fail "$2: exit status $RC, expected $1"
	}
}

# expect_grep FILE REGEX WHAT
expect_grep() {
	grep -Eq -- "$2" "$1" || {
		echo "--- $1:" >&2; cat "$1" >&2
		fail "$3: no match for /$2/"
	}
}

expect_no_grep() {
	if grep -Eq -- "$2" "$1"; then
		echo "--- $1:" >&2; cat "$1" >&2
		fail "$3: unexpected match for /$2/"
	fi
}

# sql QUERY: run a query on the test's store.
sql() {
	sqlite3 -batch -noheader "$WEFT_DB" "$1"
}

# The id of the newest run.
last_run() {
	sql "SELECT id FROM runs ORDER BY started DESC LIMIT 1"
}

# No process of ours may outlive its test: nothing left with T in argv.
expect_no_orphans() {
	# Processes the run stopped may take a moment to be gone: wait for
	# them (5 s at most, a safety net), then fail on any left.
	_o=0
	while pgrep -f -- "$T" >/dev/null 2>&1 && [ $_o -lt 100 ]; do
		_o=$((_o + 1))
		sleep 0.05
	done
	if pgrep -f -- "$T" >/dev/null 2>&1; then
		pgrep -af -- "$T" >&2
		fail "processes left behind after the run"
	fi
	if pgrep -f "weft worker --enroll-fd" >/dev/null 2>&1 &&
	    [ -n "${WEFT_STRICT_ORPHANS:-}" ]; then
		fail "weft workers left behind"
	fi
}

# A workflow file in the test dir that uses the in-tree test server.
testserver_decl() {
	printf 'w.mcp_server{ name = "test", command = { "%s"%s } }\n' \
	    "$WEFT_TESTSERVER" "${1:-}"
}

# The fake model server (tests/fakemodel): start_fake SCRIPT_JSON runs it
# on a free port with that script, logging to $T/fake.log, and points
# OPENAI_BASE_URL / ANTHROPIC_BASE_URL at it; $KEY, if set, is required.
# start_fake SCRIPT_JSON: (re)start the fake server with a script.
FAKE_PID=
start_fake() {
	stop_fake
	printf '%s\n' "$1" > "$T/script.json"
	rm -f "$T/port" "$T/fake.log"
	"$WEFT_FAKEMODEL" --port-file "$T/port" --script "$T/script.json" \
	    --log "$T/fake.log" ${KEY:+--key "$KEY"} >/dev/null 2>"$T/fake.err" &
	FAKE_PID=$!
	i=0
	while [ ! -s "$T/port" ]; do
		i=$((i + 1))
		[ $i -lt 200 ] || { cat "$T/fake.err" >&2; fail "fakemodel did not start"; }
		sleep 0.05
	done
	PORT=$(cat "$T/port")
	export OPENAI_BASE_URL="http://127.0.0.1:$PORT/v1"
	export ANTHROPIC_BASE_URL="http://127.0.0.1:$PORT"
}
stop_fake() {
	if [ -n "$FAKE_PID" ]; then
		kill "$FAKE_PID" 2>/dev/null
		wait "$FAKE_PID" 2>/dev/null
		FAKE_PID=
	fi
}


# wait_until WHAT CMD...: wait until CMD succeeds (polling; the bound of
# 120 s is only a safety net, never an ordering).  Its variables are its
# own (_wu_*): CMD may read the caller's.
wait_until() {
	_wu_what=$1
	shift
	_wu_n=0
	until "$@"; do
		_wu_n=$((_wu_n + 1))
		[ "$_wu_n" -lt 1200 ] || fail "$_wu_what: not after 120 s"
		sleep 0.1
	done
}

# sql_is QUERY VALUE: the store answers QUERY with VALUE (for wait_until).
sql_is() {
	[ "$(sql "$1" 2>/dev/null)" = "$2" ]
}

# wait_for_grep FILE ERE WHAT: wait until FILE has a line matching ERE.
wait_for_grep() {
	wait_until "$3: no line /$2/ in $1" grep -Eqs -- "$2" "$1"
}

# serve_wait: after starting `weft serve --listen 127.0.0.1:0 ...` in the
# background with its stderr in $T/serve.err (removed first) and its pid in
# SERVE_PID, wait for its "serving" line (bound: 30 s, or the server's
# exit); sets URL (.../mcp), BASE (without /mcp) and PORT.
serve_wait() {
	_w=0
	until grep -q 'serving .* at http' "$T/serve.err" 2>/dev/null; do
		_w=$((_w + 1))
		if [ $_w -ge 600 ] || ! kill -0 "$SERVE_PID" 2>/dev/null; then
			cat "$T/serve.err" >&2
			fail "weft serve did not start"
		fi
		sleep 0.05
	done
	URL=$(sed -n 's/.*serving .* at \(http[^ ]*\)$/\1/p' "$T/serve.err" |
	    head -n 1)
	BASE=${URL%/mcp}
	PORT=${BASE##*:}
}
# stop_serve: SIGTERM to SERVE_PID; the server must exit 0 (a sanitizer's
# report, a leak included, would make it fail).
SERVE_PID=
stop_serve() {
	if [ -n "$SERVE_PID" ]; then
		kill "$SERVE_PID" 2>/dev/null
		_rc=0
		wait "$SERVE_PID" 2>/dev/null || _rc=$?
		SERVE_PID=
		[ "$_rc" -eq 0 ] || { tail -n 40 "$T/serve.err" >&2
			fail "weft serve exited with status $_rc"; }
	fi
}
