#!/bin/sh
# Remote workers (issue 13, item 4): a `weft worker --connect` process
# joins `weft run --workers-listen tls+tcp://127.0.0.1:0` with its own
# enrolment file, checks the coordinator's certificate against a CA made
# here, and serves a server declared on = "gpu"; a wrong secret, a
# certificate of another CA and plain tcp off loopback are refused with
# messages; a remote worker killed mid-task loses its lease, the task is
# retried on another remote worker, and the killed slot enrols again.
. "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null 2>&1 || { echo "skip: no openssl"; exit 77; }

# A CA, a coordinator certificate it signs (for 127.0.0.1), another CA.
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout "$T/ca.key" -out "$T/ca.crt" \
    -subj /CN=weft-test-ca -days 2 2>"$T/ssl.err" &&
openssl req -x509 $ec -keyout "$T/other.key" -out "$T/other.crt" \
    -subj /CN=other-ca -days 2 2>>"$T/ssl.err" &&
openssl req $ec -keyout "$T/coord.key" -out "$T/coord.csr" \
    -subj /CN=localhost 2>>"$T/ssl.err" &&
printf 'subjectAltName=DNS:localhost,DNS:127.0.0.1,IP:127.0.0.1\n' > "$T/ext" &&
openssl x509 -req -in "$T/coord.csr" -CA "$T/ca.crt" -CAkey "$T/ca.key" \
    -CAcreateserial -out "$T/coord.crt" -days 2 -extfile "$T/ext" \
    2>>"$T/ssl.err" || { cat "$T/ssl.err" >&2; fail "openssl"; }
TLS="--tls-cert $T/coord.crt --tls-key $T/coord.key"

# wait_for WHAT CMD...: run CMD until it succeeds, at most 20 s.
wait_for() {
	_what=$1
	shift
	_i=0
	until "$@"; do
		_i=$((_i + 1))
		[ $_i -lt 400 ] || fail "timed out waiting for $_what"
		sleep 0.05
	done
}
port() { sed -n 's/.*join at tls+tcp:\/\/127\.0\.0\.1:\([0-9][0-9]*\) (worker ids.*/\1/p' "$T/err" 2>/dev/null; }
# The listener is up once its line, with the port bound, is whole.
joined() { [ -n "$(port)" ]; }
has_event() {
	[ "$(sql "SELECT count(*) FROM events WHERE kind='$1'" 2>/dev/null)" -ge "${2:-1}" ] 2>/dev/null
}

# 1. A labelled server: its task waits (task.waiting) until a worker
#    labelled gpu joins from "another machine", which then serves it.
{
	echo 'local w = require "weft"'
	printf 'w.mcp_server{ name = "gpu", command = { "%s" }, on = "gpu" }\n' "$WEFT_TESTSERVER"
	cat <<'EOF'
return w.sequential{ name = "s",
  w.tool{ name = "t", server = "gpu", tool = "echo", args = { message = "on gpu" }, output_key = "r" },
  w.fn{ name = "out", function(ctx) return ctx.state.r end } }
EOF
} > "$T/gpu.lua"
# A new file: the last run's port line must not be read for this one's.
rm -f "$T/err"
"$WEFT" run "$T/gpu.lua" -q --workers 1 --workers-listen tls+tcp://127.0.0.1:0 \
    $TLS --remote-workers 2 --enroll-dir "$T/enroll" > "$T/out" 2> "$T/err" &
pid=$!
wait_for "the listener" joined
P=$(port)
[ -n "$P" ] || fail "no port in: $(cat "$T/err")"
[ "$(stat -c %a "$T/enroll/worker-1.enroll")" = 600 ] || fail "enrolment file mode"
[ "$(stat -c %a "$T/enroll")" = 700 ] || fail "enrolment dir mode"
wait_for "task.waiting" has_event task.waiting
"$WEFT" worker --connect "tls+tcp://127.0.0.1:$P" --ca "$T/ca.crt" \
    --enroll-file "$T/enroll/worker-1.enroll" --label gpu 2> "$T/w1.err" &
w1=$!
RC=0
wait $pid || RC=$?
expect_rc 0 "run served by a remote worker"
[ "$(cat "$T/out")" = "Echo: on gpu" ] || fail "output '$(cat "$T/out")'"
RC=0
wait $w1 || RC=$?
[ $RC -eq 0 ] || { cat "$T/w1.err" >&2; fail "remote worker exit $RC after the run"; }
id=$(last_run)
sql "SELECT json_extract(payload,'\$.reason') FROM events WHERE run_id='$id' AND kind='task.waiting'" > "$T/why"
expect_grep "$T/why" "^no connected worker is labelled gpu" "task.waiting says why"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='task.waiting'")" = 1 ] || fail "task.waiting once"
[ "$(sql "SELECT group_concat(DISTINCT json_extract(payload,'\$.worker')) FROM events WHERE run_id='$id' AND kind IN ('tool.result','tool.list.result')")" = 1 ] ||
    fail "the gpu tasks ran on remote worker 1"
[ "$(sql "SELECT json_extract(payload,'\$.labels[0]') || ' ' || (json_extract(payload,'\$.remote') LIKE '127.0.0.1:%') FROM events WHERE run_id='$id' AND kind='worker.sandbox' AND json_extract(payload,'\$.worker')=1")" = "gpu 1" ] ||
    fail "worker.sandbox of the remote worker: its address and labels"
[ "$(sql "SELECT json_array_length(json_extract(payload,'\$.sandbox.enforced')) > 0 FROM events WHERE run_id='$id' AND kind='worker.sandbox' AND json_extract(payload,'\$.worker')=1")" = 1 ] ||
    fail "the remote worker confined itself"
ok "a remote worker joins over tls+tcp and serves the server on = gpu; task.waiting said why it waited"

# 2. Refusals: a wrong secret, a certificate of another CA, plain tcp off
#    loopback, an enrolment file others can read.
# A new file: the last run's port line must not be read for this one's.
rm -f "$T/err"
"$WEFT" run "$T/gpu.lua" -q --workers 1 --workers-listen tls+tcp://127.0.0.1:0 \
    $TLS --remote-workers 2 --enroll-dir "$T/enroll" > "$T/out" 2> "$T/err" &
pid=$!
wait_for "the listener" joined
P=$(port)
sed 's/"secret":"[0-9a-f]*"/"secret":"0123456789abcdef"/' "$T/enroll/worker-2.enroll" > "$T/bad.enroll"
chmod 600 "$T/bad.enroll"
RC=0
"$WEFT" worker --connect "tls+tcp://127.0.0.1:$P" --ca "$T/ca.crt" \
    --enroll-file "$T/bad.enroll" --label gpu 2> "$T/bad.err" || RC=$?
[ $RC -ne 0 ] || fail "a worker with a wrong secret was taken"
expect_grep "$T/bad.err" "weft worker 2: the coordinator at tls\+tcp://127.0.0.1:$P refused it: hello refused: wrong enrolment secret" "worker side of a wrong secret"
wait_for "the coordinator's refusal" grep -q "claiming worker 2 was refused: wrong enrolment secret" "$T/err"
expect_grep "$T/err" "a connection \(127\.0\.0\.1:[0-9]+\) claiming worker 2" "the refusal names the peer's address"
RC=0
"$WEFT" worker --connect "tls+tcp://127.0.0.1:$P" --ca "$T/other.crt" \
    --enroll-file "$T/enroll/worker-2.enroll" 2> "$T/ca.err" || RC=$?
[ $RC -ne 0 ] || fail "a coordinator certificate of another CA was accepted"
expect_grep "$T/ca.err" "the coordinator's certificate was refused: it is not signed by the CA in --ca $T/other.crt" "worker side of a wrong CA"
RC=0
"$WEFT" worker --connect "tcp://192.0.2.1:$P" --enroll-file "$T/enroll/worker-2.enroll" 2> "$T/tcp.err" || RC=$?
[ $RC -ne 0 ] || fail "plain tcp to a non-loopback address"
expect_grep "$T/tcp.err" "--connect tcp://192.0.2.1:$P: plain tcp is only allowed on a loopback address" "worker side of plain tcp"
cp "$T/enroll/worker-2.enroll" "$T/open.enroll"
chmod 644 "$T/open.enroll"
RC=0
"$WEFT" worker --connect "tls+tcp://127.0.0.1:$P" --ca "$T/ca.crt" \
    --enroll-file "$T/open.enroll" 2> "$T/open.err" || RC=$?
[ $RC -eq 2 ] || fail "an enrolment file others can read: exit $RC"
expect_grep "$T/open.err" "readable by others \(mode 0644\): it holds a secret; chmod 600" "world-readable enrolment file"
# The real worker 2 still joins after all that, and ends the run.
"$WEFT" worker --connect "tls+tcp://127.0.0.1:$P" --ca "$T/ca.crt" \
    --enroll-file "$T/enroll/worker-2.enroll" --label gpu 2> "$T/w2.err" &
w2=$!
RC=0
wait $pid || RC=$?
expect_rc 0 "run after the refusals"
wait $w2 || fail "worker 2 exit status"
id=$(last_run)
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='worker.refused' AND json_extract(payload,'\$.reason')='wrong enrolment secret'")" -ge 1 ] ||
    fail "worker.refused recorded"
RC=0
"$WEFT" run "$T/gpu.lua" --workers-listen tcp://0.0.0.0:0 --remote-workers 1 \
    --enroll-dir "$T/enroll" > "$T/out" 2> "$T/err" || RC=$?
expect_rc 2 "plain tcp listener on all addresses"
expect_grep "$T/err" "--workers-listen tcp://0.0.0.0:0: plain tcp is only allowed on a loopback address" "coordinator side of plain tcp"
RC=0
"$WEFT" run "$T/gpu.lua" --workers-listen tls+tcp://127.0.0.1:0 --remote-workers 1 \
    --enroll-dir "$T/enroll" > "$T/out" 2> "$T/err" || RC=$?
expect_rc 2 "tls listener without a certificate"
expect_grep "$T/err" "needs --tls-cert FILE and --tls-key FILE" "tls needs a certificate"
ok "wrong secret, another CA's certificate, plain tcp off loopback, an open enrolment file: refused with messages"

# 3. A remote worker killed mid-task: its connection goes, it loses the
#    lease, the task is retried on the other remote worker; the killed
#    slot enrols again with the same file and serves the next step.
{
	echo 'local w = require "weft"'
	printf 'w.mcp_server{ name = "gpu", command = { "%s" }, on = "gpu", sandbox = { write = { "%s" } } }\n' "$WEFT_TESTSERVER" "$T"
	printf 'w.mcp_server{ name = "cpu", command = { "%s" }, on = "again" }\n' "$WEFT_TESTSERVER"
	cat <<EOF
return w.sequential{ name = "s",
  w.tool{ name = "slow", server = "gpu", tool = "sleep",
          args = { ms = 600000, marker = "$T/marker", once = "$T/once", text = "survived" },
          output_key = "r" },
  w.tool{ name = "next", server = "cpu", tool = "echo", args = { message = "rejoined" }, output_key = "r2" },
  w.fn{ name = "out", function(ctx) return ctx.state.r .. " " .. ctx.state.r2 end } }
EOF
} > "$T/kill.lua"
rm -rf "$T/enroll"
# A new file: the last run's port line must not be read for this one's.
rm -f "$T/err"
"$WEFT" run "$T/kill.lua" -q --workers 1 --workers-listen tls+tcp://127.0.0.1:0 \
    $TLS --remote-workers 2 --enroll-dir "$T/enroll" > "$T/out" 2> "$T/err" &
pid=$!
wait_for "the listener" joined
P=$(port)
for n in 1 2; do
	"$WEFT" worker --connect "tls+tcp://127.0.0.1:$P" --ca "$T/ca.crt" \
	    --enroll-file "$T/enroll/worker-$n.enroll" --label gpu 2> "$T/k$n.err" &
	eval "k$n=\$!"
done
wait_for "the tool call to start" test -s "$T/marker"
victim=$(cat "$T/marker")
if [ "$victim" = "$k1" ]; then vid=1 other=$k2; elif [ "$victim" = "$k2" ]; then vid=2 other=$k1; else
	fail "the marker names $victim, not a remote worker ($k1 $k2)"; fi
kill -9 "$victim"
wait "$victim" 2>/dev/null
wait_for "task.retry" has_event task.retry
"$WEFT" worker --connect "tls+tcp://127.0.0.1:$P" --ca "$T/ca.crt" \
    --enroll-file "$T/enroll/worker-$vid.enroll" --label again 2> "$T/again.err" &
again=$!
RC=0
wait $pid || RC=$?
expect_rc 0 "run after a remote worker was killed"
[ "$(cat "$T/out")" = "survived Echo: rejoined" ] || fail "output '$(cat "$T/out")'"
wait $other || fail "the other remote worker's exit"
wait $again || { cat "$T/again.err" >&2; fail "the re-enrolled worker's exit"; }
id=$(last_run)
sql "SELECT json_extract(payload,'\$.reason') FROM events WHERE run_id='$id' AND kind='task.retry'" > "$T/why"
expect_grep "$T/why" "^remote worker $vid disconnected$" "the retry names the lost remote worker"
[ "$(sql "SELECT json_extract(payload,'\$.attempt') || ':' || json_extract(payload,'\$.worker') FROM events WHERE run_id='$id' AND kind='tool.result' AND node_path='s/slow'")" = "2:$((3 - vid))" ] ||
    fail "attempt 2 ran on the other remote worker"
[ "$(sql "SELECT json_extract(payload,'\$.worker') FROM events WHERE run_id='$id' AND kind='tool.result' AND node_path='s/next'")" = "$vid" ] ||
    fail "the killed slot enrolled again and served the next step"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='worker.exit' AND json_extract(payload,'\$.status')='disconnected'")" -ge 1 ] ||
    fail "worker.exit of the lost connection"
ok "a remote worker killed mid-task: retried on the other one; its slot enrolled again"

# 4. weft serve takes remote workers as weft run does: a served call's
#    labelled server runs on a remote worker (the MCP SDK client calls it).
if command -v node >/dev/null 2>&1 &&
    [ -d "$WEFT_SRCDIR/node_modules/@modelcontextprotocol/sdk" ]; then
	mkdir -p "$T/sv"
	cp "$T/gpu.lua" "$T/sv/gpu.lua"
	# A new file: the last run's port line must not be read for this one's.
	rm -f "$T/err"
	"$WEFT" serve "$T/sv" --listen 127.0.0.1:0 --db "$T/serve.db" --workers 1 \
	    --workers-listen tls+tcp://127.0.0.1:0 $TLS --remote-workers 1 \
	    --enroll-dir "$T/senroll" 2> "$T/err" &
	spid=$!
	wait_for "the listener" joined
	wait_for "the server" grep -q 'serving .* at http' "$T/err"
	P=$(port)
	url=$(sed -n 's/.*serving .* at \(http[^ ]*\)$/\1/p' "$T/err")
	"$WEFT" worker --connect "tls+tcp://127.0.0.1:$P" --ca "$T/ca.crt" \
	    --enroll-file "$T/senroll/worker-1.enroll" --label gpu 2> "$T/sw.err" &
	sw=$!
	node "$WEFT_SRCDIR/tests/interop/serve_calls.mjs" "$url" gpu '{}' 1 > "$T/call.out" 2>&1 ||
		{ cat "$T/call.out" "$T/err" >&2; fail "the served call"; }
	expect_grep "$T/call.out" '^ok [0-9a-f]+ succeeded Echo: on gpu' "the served call's answer"
	curl -s -m 30 "${url%/mcp}/metrics" > "$T/metrics"
	expect_grep "$T/metrics" '^weft_workers_connected\{label="gpu"\} 1$' "/metrics counts the remote worker by its label"
	expect_grep "$T/metrics" '^weft_workers_connected\{label=""\} 1$' "/metrics counts the local worker, unlabelled"
	[ "$(sqlite3 -batch -noheader "$T/serve.db" "SELECT json_extract(payload,'\$.worker') FROM events WHERE kind='tool.result'")" = 1 ] ||
		fail "the served call's tool ran on remote worker 1"
	kill "$spid"
	wait "$spid" 2>/dev/null
	wait "$sw" || { cat "$T/sw.err" >&2; fail "the remote worker's exit when the server stopped"; }
	ok "weft serve: a remote worker joins and serves a served call's labelled server"
else
	echo "SKIP (section 4): node or the MCP SDK is missing; weft serve with a remote worker is not tested"
fi
expect_no_orphans
