#!/bin/sh
# weft view: the viewer's JSON API through real HTTP on a real store
# (docs/viewer.md): runs with filters and pages, a run, its events in
# pages, the state at an event, blobs, weft replay's verdict, weft diff,
# weft eval with --golden, approvals, live events over SSE of a running
# run until it is cancelled, the pages with their CSP, the read-only and
# loopback rules; weft serve serves the same at / for operator tokens.
. "$(dirname "$0")/lib.sh"
# A run left in the background by a failing check is stopped too.
NAP= VIEW_PID= VIEW= SPID=
trap '_rc=$?; for p in $NAP $VIEW_PID $VIEW $SPID; do kill "$p" 2>/dev/null; done; (exit $_rc); cleanup' EXIT

command -v curl >/dev/null || { echo "SKIP: curl missing"; exit 77; }

# The run the viewer looks at (tests/viewer/lib_view.sh).
. "$WEFT_SRCDIR/tests/viewer/lib_view.sh"
view_flow_run

# start_view ARGS...: weft view in the background; sets VIEW_PID and URL.
start_view() {
	rm -f "$T/view.out"
	"$WEFT" view "$@" >"$T/view.out" 2>"$T/view.err" &
	VIEW_PID=$!
	wait_for_grep "$T/view.out" '^http://' "weft view prints its URL"
	URL=$(head -1 "$T/view.out" | sed 's|/#.*||; s|/$||')
}
start_view "${RUN%????????}"
expect_grep "$T/view.out" "^http://127\.0\.0\.1:[0-9]+/#/run/$RUN\$" \
    "the URL opens the run named by its prefix"

# get PATH: body in $T/body, status in CODE.
get() {
	CODE=$(curl -s -o "$T/body" -w '%{http_code}' "$URL$1")
}
# jq_py EXPR: evaluate a Python expression on the body's JSON as d.
jq_py() {
	python3 -c "import json,sys; d=json.load(open('$T/body')); print($1)"
}

get /api/runs
[ "$CODE" = 200 ] || fail "/api/runs: $CODE"
[ "$(jq_py "d['runs'][0]['id']")" = "$RUN" ] || fail "/api/runs lists the run"
[ "$(jq_py "d['total']")" = 1 ] || fail "/api/runs total"
get "/api/runs?status=failed"
[ "$(jq_py "len(d['runs'])")" = 0 ] || fail "status filter"
get "/api/runs?status=succeeded&workflow=flow.lua&q=${RUN%??????}"
[ "$(jq_py "len(d['runs'])")" = 1 ] || fail "workflow and search filters"
get "/api/runs?limit=x"
[ "$CODE" = 400 ] || fail "a bad limit is 400 ($CODE)"
ok "runs list, filters, bad parameters"

get "/api/run?id=${RUN%????}"
[ "$CODE" = 200 ] || fail "/api/run: $CODE"
[ "$(jq_py "d['run']['status']")" = succeeded ] || fail "/api/run status"
N=$(jq_py "d['events']")
[ "$N" -eq "$(sql "SELECT count(*) FROM events WHERE run_id='$RUN'")" ] ||
    fail "/api/run counts the events"
get "/api/run?id=nosuchrun"
[ "$CODE" = 404 ] || fail "an unknown run is 404 ($CODE)"
grep -q "no run 'nosuchrun'" "$T/body" || fail "404 names the run"
get "/api/run"
[ "$CODE" = 400 ] || fail "no id is 400"
ok "one run, unknown run, missing id"

# Events in pages of 5, reassembled, equal the store's.
after=0 seen=""
while :; do
	get "/api/events?id=$RUN&after=$after&limit=5"
	[ "$CODE" = 200 ] || fail "/api/events: $CODE"
	seen="$seen $(jq_py "' '.join(str(e['seq']) for e in d['events'])")"
	nxt=$(jq_py "d.get('next_after', '')")
	[ -n "$nxt" ] || break
	after=$nxt
done
want=$(sql "SELECT group_concat(seq, ' ') FROM (SELECT seq FROM events WHERE run_id='$RUN' ORDER BY seq)")
[ "$(echo $seen)" = "$want" ] || fail "paged events: got '$seen', want '$want'"
ok "events in pages"

# The state after the first write holds it and not the second.
W1=$(sql "SELECT min(seq) FROM events WHERE run_id='$RUN' AND kind='state.write'")
get "/api/state?id=$RUN&seq=$W1"
[ "$(jq_py "sorted(d['state'])")" = "['answer', 'topic']" ] ||
    fail "state at $W1: $(cat "$T/body")"
[ "$(jq_py "d['state']['answer']")" = "<script>window.__pwned = 1</script>done" ] ||
    fail "state value at $W1"
[ "$(jq_py "d['event']['kind']")" = state.write ] || fail "the event at $W1"
get "/api/state?id=$RUN&seq=$((W1 - 1))"
[ "$(jq_py "sorted(d['state'])")" = "['topic']" ] || fail "state before $W1"
get "/api/state?id=$RUN"
[ "$(jq_py "d['state']['second']")" = "Echo: two" ] || fail "final state"
ok "state at an event"

get "/api/blob?hash=zz"
[ "$CODE" = 400 ] || fail "a bad hash is 400"
get "/api/blob?hash=$(printf %064d 0)"
[ "$CODE" = 404 ] || fail "an unknown blob is 404"
ok "blobs"

# weft replay's verdict, offline, run by the viewer: identical; then the
# workflow's second call changed: the run diverges at that call's step.
get "/api/replay?id=$RUN"
[ "$CODE" = 200 ] || fail "/api/replay: $CODE $(cat "$T/body")"
[ "$(jq_py "d['verdict']")" = identical ] || fail "replay: $(cat "$T/body")"
[ "$(jq_py "d['replay']['events']")" = "$N" ] || fail "replay: its events"
cp "$T/flow.lua" "$T/flow.orig"
sed -i 's/message = "two"/message = "three"/' "$T/flow.lua"
get "/api/replay?id=$RUN"
[ "$(jq_py "d['verdict']")" = diverged ] || fail "replay of the edited workflow: $(cat "$T/body")"
DIVSEQ=$(sql "SELECT seq FROM events WHERE run_id='$RUN' AND kind='tool.call' AND node_path='flow/second'")
[ "$(jq_py "d['seq']")" = "$DIVSEQ" ] || fail "divergence at $(jq_py "d['seq']"), want $DIVSEQ"
[ "$(jq_py "d['path']")" = flow/second ] || fail "divergence path"
jq_py "d['divergence']" | grep -q 'record: mcp.call:test/echo {"message":"two"}' ||
    fail "divergence text: $(cat "$T/body")"
run_weft "$T/out" "$T/err" run "$T/flow.lua" --input '{"topic":"x"}'
[ "$RC" -eq 0 ] || { cat "$T/err" >&2; fail "the second run failed"; }
RUN2=$(last_run)
mv "$T/flow.lua" "$T/flow.gone"
get "/api/replay?id=$RUN2"
[ "$(jq_py "d['verdict']")" = failed ] || fail "replay without its file: $(cat "$T/body")"
jq_py "d['error']" | grep -q "flow.lua" || fail "the error names the file"
mv "$T/flow.gone" "$T/flow.lua"
# A replay that runs past the viewer's bound is killed and says so: the
# recorded fn now spins (the Lua time limit set far beyond the bound).
cat > "$T/spin.lua" <<'LUA'
local w = require "weft"
return w.fn{ name = "f", run = function(ctx) return 1 end }
LUA
run_weft "$T/out" "$T/err" run "$T/spin.lua"
[ "$RC" -eq 0 ] || { cat "$T/err" >&2; fail "the spin run"; }
SRUN=$(last_run)
sed -i 's/return 1 end/while true do end end/' "$T/spin.lua"
kill "$VIEW_PID"
wait "$VIEW_PID"
export WEFT_VIEW_COMMAND_SECONDS=1 WEFT_LUA_MAX_SECONDS=600
start_view
unset WEFT_VIEW_COMMAND_SECONDS WEFT_LUA_MAX_SECONDS
get "/api/replay?id=$SRUN"
[ "$(jq_py "d['verdict']")" = failed ] || fail "replay past the bound: $(cat "$T/body")"
jq_py "d['error']" | grep -q "gave up after 1 s" || fail "the bound is named"
get "/api/replay?id=$RUN2"
[ "$(jq_py "d['verdict']")" = identical ] || fail "a replay after one killed"
ok "a replay past the viewer's time bound is killed"
kill "$VIEW_PID"
wait "$VIEW_PID"
start_view

get "/api/replay?id=nosuchrun"
[ "$CODE" = 404 ] || fail "replay of an unknown run: $CODE"
ok "weft replay's verdict: identical, the first divergence at its seq, a missing file"

# weft diff's alignment of the two runs.
get "/api/diff?a=$RUN&b=${RUN2%????}"
[ "$CODE" = 200 ] || fail "/api/diff: $CODE $(cat "$T/body")"
[ "$(jq_py "d['identical'], d['counts']['changed'], d['counts']['only_a']")" = "False 1 0" ] ||
    fail "diff counts: $(cat "$T/body")"
F=$(jq_py "d['first_divergence']")
[ "$(jq_py "d['rows'][$F - 1]['a']['args']['message'], d['rows'][$F - 1]['b']['args']['message']")" = "two three" ] ||
    fail "diff: the first divergence is the changed call"
"$WEFT" diff "$RUN" "$RUN2" --json > "$T/cli.json"
python3 -c "import json,sys; sys.exit(json.load(open('$T/cli.json')) != json.load(open('$T/body')))" ||
    fail "/api/diff differs from weft diff --json"
get "/api/diff?a=$RUN&b=nosuchrun"
[ "$CODE" = 404 ] || fail "diff with an unknown run: $CODE"
get "/api/diff?a=$RUN"
[ "$CODE" = 400 ] || fail "diff with one run: $CODE"
ok "weft diff's alignment, as weft diff --json gives it"

# Without --golden, /api/eval says there is no golden file.
get "/api/eval?id=$RUN"
[ "$CODE" = 200 ] && [ "$(jq_py "d['golden']")" = None ] || fail "eval without golden: $(cat "$T/body")"
ok "no golden file, no eval"

# The pages: embedded, with a CSP that allows nothing external.
curl -s -D "$T/hdr" -o "$T/index" "$URL/"
grep -qi '^content-security-policy: default-src .none.' "$T/hdr" ||
    fail "no strict CSP on /"
grep -q '<script src="/app.js"' "$T/index" || fail "/ is the page"
get /app.js
[ "$CODE" = 200 ] || fail "/app.js"
get /app.css
[ "$CODE" = 200 ] || fail "/app.css"
get /nothing
[ "$CODE" = 404 ] || fail "/nothing is 404"
CODE=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/api/runs")
[ "$CODE" = 405 ] || fail "POST is refused: $CODE"
ok "pages, CSP, read-only"

# A finished run's live stream: its events, then end, and it closes.
curl -s -N --max-time 60 "$URL/api/live?id=$RUN&after=0" > "$T/sse"
[ "$(grep -c '^event: event' "$T/sse")" -eq "$N" ] || fail "SSE replays the events"
grep -q '^event: end' "$T/sse" || fail "SSE ends for a finished run"
ok "live stream of a finished run"

# A running run: the stream shows its tool call as it commits, then its
# end once it is cancelled.
{
	echo 'local w = require "weft"'
	testserver_decl
	cat <<LUA
return w.tool{ name = "nap", server = "test", tool = "sleep",
  args = { ms = 600000 } }
LUA
} > "$T/nap.lua"
"$WEFT" run "$T/nap.lua" >"$T/nap.out" 2>"$T/nap.err" &
NAP=$!
wait_for_grep "$T/nap.err" '^weft: run [0-9a-f]+' "weft run prints its run id"
NRUN=$(sed -n 's/^weft: run \([0-9a-f]*\).*/\1/p' "$T/nap.err" | head -1)
curl -s -N --max-time 120 "$URL/api/live?id=$NRUN" > "$T/live" &
CURL=$!
wait_for_grep "$T/live" '"kind":"tool.call"' "the live stream shows the tool call"
grep -q '^event: end' "$T/live" && fail "ended while the run runs"
run_weft "$T/cout" "$T/cerr" cancel "$NRUN"
[ "$RC" -eq 0 ] || { cat "$T/cerr" >&2; fail "weft cancel"; }
wait "$NAP"
NAP=
wait "$CURL"
grep -q '^event: end' "$T/live" || fail "the stream ends with the run"
grep '^data:' "$T/live" | tail -1 | grep -q '"status":"cancelled"' ||
    fail "end carries the cancelled run"
ok "live stream of a running run, to its end"

# The runs list stream sends the first page.
python3 - "$URL/api/live?status=cancelled" > "$T/runs" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=60) as r:
    for line in r:
        line = line.decode()
        sys.stdout.write(line)
        if line.startswith("data:"):
            break
PY
grep -q "^event: runs" "$T/runs" && grep -q "$NRUN" "$T/runs" ||
    fail "runs stream"
ok "runs list stream"

kill "$VIEW_PID"
RC=0
wait "$VIEW_PID" || RC=$?
VIEW_PID=
expect_rc 0 "weft view stops cleanly on SIGTERM"
run_weft "$T/o" "$T/e" view --listen 0.0.0.0:0
[ "$RC" -eq 2 ] || fail "a non-loopback --listen is refused ($RC)"
expect_grep "$T/e" "not a loopback" "the refusal says why"
run_weft "$T/o" "$T/e" view nosuchrun
[ "$RC" -eq 1 ] || fail "an unknown run is exit 1 ($RC)"
run_weft "$T/o" "$T/e" view --golden "$T/nosuchfile"
[ "$RC" -eq 2 ] || fail "a missing golden file is exit 2 ($RC)"
expect_grep "$T/e" "nosuchfile" "the refusal names the file"
ok "loopback only, unknown run, missing golden file"

# weft view --golden: weft eval's scores of a run.
cat > "$T/golden.json" <<'JSON'
{ "calls": [ { "tool": "test.echo", "args": { "message": "<img src=x onerror=alert(1)>" } },
             { "tool": "test.echo", "args": { "message": "two" } } ],
  "success": true }
JSON
start_view --golden "$T/golden.json"
get "/api/eval?id=$RUN"
[ "$CODE" = 200 ] || fail "/api/eval: $CODE"
[ "$(jq_py "d['eval']['runs'][0]['f1'], d['eval']['runs'][0]['pass']")" = "1.0 True" ] ||
    fail "eval of the run: $(cat "$T/body")"
"$WEFT" eval "$RUN2" --golden "$T/golden.json" --json > "$T/cli.json"
get "/api/eval?id=$RUN2"
[ "$(jq_py "d['eval']['runs'][0]['f1'], d['eval']['runs'][0]['extra'][0]['args']['message']")" = "0.5 three" ] ||
    fail "eval of the second run: $(cat "$T/body")"
python3 -c "import json,sys; a=json.load(open('$T/cli.json')); b=json.load(open('$T/body'))['eval']; sys.exit(a['runs'] != b['runs'])" ||
    fail "/api/eval differs from weft eval --json"
echo '{"calls": 3}' > "$T/golden.json"
get "/api/eval?id=$RUN"
jq_py "d['error']" | grep -q "/calls: expected array" || fail "a bad golden file: $(cat "$T/body")"
ok "weft eval against the golden file of weft view"

# A run waiting for an approval: the question and its state, read-only.
cat > "$T/approve.lua" <<'LUA'
local w = require "weft"
return w.sequential{ name = "release",
  w.approval{ name = "go", prompt = "Deploy <b>now</b>?",
    schema = { type = "object", required = { "env" },
               properties = { env = { type = "string" } } },
    output_key = "decision" } }
LUA
run_weft "$T/out" "$T/err" run "$T/approve.lua" </dev/null
[ "$RC" -eq 6 ] || { cat "$T/err" >&2; fail "the approval run: exit $RC"; }
ARUN=$(last_run)
get "/api/approvals?id=$ARUN"
[ "$(jq_py "[(a['path'], a['status'], a['prompt']) for a in d['approvals']]")" = "[('release/go', 'waiting', 'Deploy <b>now</b>?')]" ] ||
    fail "approvals: $(cat "$T/body")"
[ "$(jq_py "d['approvals'][0]['schema']['required']")" = "['env']" ] || fail "approval schema"
run_weft "$T/out" "$T/err" approve "$ARUN" --answer '{"env":"staging"}'
[ "$RC" -eq 0 ] || { cat "$T/err" >&2; fail "weft approve"; }
get "/api/approvals?id=$ARUN"
[ "$(jq_py "d['approvals'][0]['status'], d['approvals'][0]['answer']['answer']['env']")" = "approved staging" ] ||
    fail "approved: $(cat "$T/body")"
get "/api/approvals?id=$RUN"
[ "$(jq_py "d['approvals']")" = "[]" ] || fail "a run without approvals"
ok "approvals: the question, its state, its answer"
kill "$VIEW_PID"
wait "$VIEW_PID"
VIEW_PID=

# weft serve: the same viewer at /, for operator tokens only.
printf 'client-token-0123456789 client\noperator-token-0123456789 operator\n' > "$T/tokens"
chmod 600 "$T/tokens"
"$WEFT" serve --listen 127.0.0.1:0 --token-file "$T/tokens" "$T/flow.lua" \
    2>"$T/serve.err" &
SPID=$!
wait_for_grep "$T/serve.err" 'viewer at http://' "weft serve names the viewer"
SURL=$(sed -n 's/.*viewer at \(http:[^ ]*\)\/$/\1/p' "$T/serve.err")
CODE=$(curl -s -o /dev/null -w '%{http_code}' "$SURL/api/runs")
[ "$CODE" = 401 ] || fail "serve: no token is 401 ($CODE)"
CODE=$(curl -s -o "$T/body" -w '%{http_code}' -H 'Authorization: Bearer client-token-0123456789' "$SURL/api/runs")
[ "$CODE" = 403 ] || fail "serve: a client token is 403 ($CODE)"
CODE=$(curl -s -o "$T/body" -w '%{http_code}' -H 'Authorization: Bearer operator-token-0123456789' "$SURL/api/runs")
[ "$CODE" = 200 ] || fail "serve: an operator token is 200 ($CODE)"
jq_py "[r['id'] for r in d['runs']]" | grep -q "$RUN" || fail "serve: runs"
CODE=$(curl -s -o "$T/body" -w '%{http_code}' -H 'Authorization: Bearer operator-token-0123456789' "$SURL/api/replay?id=$RUN2")
[ "$CODE" = 200 ] && [ "$(jq_py "d['verdict']")" = identical ] ||
    fail "serve: weft replay's verdict ($CODE): $(cat "$T/body")"
CODE=$(curl -s -o "$T/body" -w '%{http_code}' -H 'Authorization: Bearer operator-token-0123456789' "$SURL/")
[ "$CODE" = 200 ] && grep -q app.js "$T/body" || fail "serve: the page at /"
kill "$SPID"
RC=0
wait "$SPID" || RC=$?
SPID=
[ "$RC" -eq 0 ] || { cat "$T/serve.err" >&2; fail "weft serve exit $RC"; }
ok "weft serve serves the viewer"
expect_no_orphans
