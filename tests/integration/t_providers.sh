#!/bin/sh
# Real model providers over HTTP, against the fake model server
# (tests/fakemodel): both wire formats, streaming and not, tool calls,
# retries (429 with Retry-After, 500, stalls, truncated streams),
# fallback, permanent errors, usage and cost, and that the API key never
# reaches the store, the output or the logs.
. "$(dirname "$0")/lib.sh"
: "${WEFT_FAKEMODEL:?run through make check}"

KEY="sk-test-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
export OPENAI_API_KEY="$KEY" ANTHROPIC_API_KEY="$KEY"

# The number of requests the fake server answered (optionally for a model).
fake_count() {
	python3 - "$T/fake.log" "${1:-}" <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if not sys.argv[2] or r.get("model") == sys.argv[2]:
        n += 1
print(n)
PY
}

# wf FILE MODEL [EXTRA_AGENT_FIELDS]: an agent that calls echo once.
wf() {
	{
		echo 'local w = require "weft"'
		testserver_decl
		cat <<EOF2
w.provider{ name = "openai", prices = { ["gpt-test"] = { input = 1, output = 2, cache_read = 0.5, cache_write = 4 } } }
w.provider{ name = "anthropic", prices = { ["claude-test"] = { input = 3, output = 5, cache_read = 0.25, cache_write = 6 } } }
return w.agent{ name = "helper", model = $2,
  instruction = "Answer about {topic}.", output_key = "answer",
  tools = { w.mcp("test", { only = { "echo", "fail" } }) },
  retry = { initial_interval = 0.01, max_interval = 0.05 }, $3 }
EOF2
	} > "$1"
}

TOOL_THEN_TEXT='[{"tool_calls":[{"name":"echo","args":{"message":"ping"}}],"usage":{"input":1000,"output":100}},{"text":"the answer is 42","usage":{"input":2000,"output":300,"cache_read":400,"cache_write":100}}]'

# --- OpenAI and Anthropic, streaming and not -------------------------------
for api in openai anthropic; do
	if [ $api = openai ]; then model=gpt-test; else model=claude-test; fi
	for stream in true false; do
		start_fake "{\"$model\": $TOOL_THEN_TEXT}"
		wf "$T/a.lua" "\"$api:$model\"" "stream = $stream"
		run_weft "$T/out" "$T/err" run "$T/a.lua" --input '{"topic":"tides"}' --json
		expect_rc 0 "$api stream=$stream run"
		expect_grep "$T/out" '"output": "the answer is 42"' "$api stream=$stream answer"
		id=$(last_run)
		[ "$(fake_count)" = 2 ] || fail "$api stream=$stream: expected 2 model requests, got $(fake_count)"
		# The tool result went back to the model, delimited as data.
		python3 - "$T/fake.log" "$api" "$stream" "$KEY" <<'PY' || fail "$api stream=$stream: requests"
import json, sys
log, api, stream, key = sys.argv[1], sys.argv[2], sys.argv[3] == "true", sys.argv[4]
reqs = [json.loads(l) for l in open(log)]
for r in reqs:
    h = r["headers"]
    if api == "openai":
        assert h.get("authorization") == "Bearer " + key, h
    else:
        assert h.get("x-api-key") == key, h
        assert "anthropic-version" in h, h
    assert bool(r["body"].get("stream")) == stream, r["body"]
    tools = r["body"]["tools"]
    names = [t["function"]["name"] if api == "openai" else t["name"] for t in tools]
    assert sorted(names) == ["echo", "fail"], names
second = json.dumps(reqs[1]["body"])
assert "ping" in second and "tool_result" in second, second
PY
		# Usage and cost, exactly.  Turn 1: 1000 in, 100 out; turn 2:
		# 2000 in, 300 out, 400 cache read, 100 cache write (OpenAI has
		# no cache writes).  Prices per million: openai 1/2/0.5/4,
		# anthropic 3/5/0.25/6.
		#   openai:    3000*1 + 400*2 + 400*0.5           = 4000  -> 0.004
		#   anthropic: 3000*3 + 400*5 + 400*0.25 + 100*6  = 11700 -> 0.0117
		if [ $api = openai ]; then want=0.004000 wtok=3800; else want=0.011700 wtok=3900; fi
		got=$(python3 -c "import json,sys; print('%.6f' % json.load(open(sys.argv[1]))['cost_usd'])" "$T/out")
		[ "$got" = "$want" ] || fail "$api stream=$stream: cost $got, expected $want"
		tokens=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['tokens'])" "$T/out")
		[ "$tokens" = $wtok ] || fail "$api stream=$stream: tokens $tokens, expected $wtok"
		[ "$(sql "SELECT printf('%.6f', cost) FROM runs WHERE id='$id'")" = "$want" ] ||
		    fail "$api stream=$stream: the run row's cost"
		[ "$(sql "SELECT printf('%.6f', sum(cost)) FROM events WHERE run_id='$id' AND kind='model.response'")" = "$want" ] ||
		    fail "$api stream=$stream: the events' costs do not add up"
		[ "$(sql "SELECT json_extract(payload,'\$.provider') FROM events WHERE run_id='$id' AND kind='model.response' LIMIT 1")" = $api ] ||
		    fail "$api stream=$stream: provider not recorded"
		ok "$api stream=$stream: tool call, answer, usage and cost"
	done
done

# The trajectory shows the model calls.
run_weft "$T/show" "$T/err" show "$id"
expect_rc 0 "show"
expect_grep "$T/show" 'model anthropic:claude-test -> tool_use' "show: model line"
expect_grep "$T/show" '\$0\.0117' "show: cost"
ok "weft show lists model calls with cost"

# Messages are stored once each, by content: the second request does
# not store the system and user messages again.
n_req=$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='model.request'")
[ "$n_req" = 2 ] || fail "model.request events: $n_req"
python3 - "$WEFT_DB" "$id" <<'PY' || fail "message blobs"
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
reqs = [json.loads(p) for (p,) in db.execute(
    "SELECT payload FROM events WHERE run_id=? AND kind='model.request' ORDER BY seq", (sys.argv[2],))]
a, b = reqs[0]["messages"], reqs[1]["messages"]
assert len(a) == 2 and len(b) == 4 and b[:2] == a, (a, b)
for h in b:
    (data,) = db.execute("SELECT data FROM blobs WHERE hash=?", (h,)).fetchone()
    json.loads(data)
PY
ok "conversation stored once per message (content-addressed)"

# --- retries ----------------------------------------------------------------
start_fake '{"gpt-test": [{"status":429,"retry_after":0.2,"message":"slow down"},{"status":500},{"text":"third time lucky"}]}'
wf "$T/r.lua" '"openai:gpt-test"' 'stream = false'
run_weft "$T/out" "$T/err" run "$T/r.lua" --input '{"topic":"x"}'
expect_rc 0 "429 then 500 then success"
expect_grep "$T/out" 'third time lucky' "answer after retries"
id=$(last_run)
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='model.retry'")" = 2 ] || fail "2 retries recorded"
[ "$(sql "SELECT json_extract(payload,'\$.delay_ms') FROM events WHERE run_id='$id' AND kind='model.retry' ORDER BY seq LIMIT 1")" = 200 ] ||
    fail "Retry-After (0.2 s) not honoured"
[ "$(sql "SELECT json_extract(payload,'\$.status') FROM events WHERE run_id='$id' AND kind='model.retry' ORDER BY seq LIMIT 1 OFFSET 1")" = 500 ] ||
    fail "500 retry not recorded"
[ "$(fake_count)" = 3 ] || fail "3 requests expected"
ok "429 (Retry-After honoured) and 500 retried, recorded"

# A stalled stream and a truncated stream are retried.
start_fake '{"gpt-test": [{"text":"slow","stall_ms":3000},{"text":"cut short","truncate":true},{"text":"whole answer"}]}'
wf "$T/s.lua" '"openai:gpt-test"' 'stream = true, stall_timeout = 0.3'
run_weft "$T/out" "$T/err" run "$T/s.lua" --input '{"topic":"x"}'
expect_rc 0 "stall and truncation"
expect_grep "$T/out" 'whole answer' "answer after a stall and a truncated stream"
id=$(last_run)
sql "SELECT json_extract(payload,'\$.kind') FROM events WHERE run_id='$id' AND kind='model.retry' ORDER BY seq" > "$T/kinds"
expect_grep "$T/kinds" '^stall$' "stall retry"
expect_grep "$T/kinds" '^truncated$' "truncated-stream retry"
ok "stalled and truncated streams retried"

# Without streaming a slow answer is not a stall; only `timeout` cuts it.
start_fake '{"gpt-test": [{"text":"slow but fine","stall_ms":600},{"text":"too slow","stall_ms":3000},{"text":"in time"}]}'
wf "$T/s2.lua" '"openai:gpt-test"' 'stream = false, stall_timeout = 0.2'
run_weft "$T/out" "$T/err" run "$T/s2.lua" --input '{"topic":"x"}'
expect_rc 0 "slow non-streaming answer"
expect_grep "$T/out" 'slow but fine' "a slow non-streaming answer is waited for"
wf "$T/s3.lua" '"openai:gpt-test"' 'stream = false, timeout = 0.5'
run_weft "$T/out" "$T/err" run "$T/s3.lua" --input '{"topic":"x"}'
expect_rc 0 "timeout"
expect_grep "$T/out" 'in time' "answer after a timed-out attempt"
id=$(last_run)
[ "$(sql "SELECT json_extract(payload,'\$.kind') FROM events WHERE run_id='$id' AND kind='model.retry'")" = timeout ] ||
    fail "the timed-out attempt is not recorded as a timeout"
ok "non-streaming: slow answers waited for; timeout retried"

# Permanent errors are not retried; the provider's own message is shown.
start_fake '{"gpt-test": [{"status":400,"message":"Invalid value for temperature"},{"text":"never"}]}'
wf "$T/p.lua" '"openai:gpt-test"' 'stream = false'
run_weft "$T/out" "$T/err" run "$T/p.lua" --input '{"topic":"x"}'
expect_rc 1 "400"
expect_grep "$T/err" 'HTTP 400: Invalid value for temperature' "400 message"
[ "$(fake_count)" = 1 ] || fail "a 400 was retried"
id=$(last_run)
[ "$(sql "SELECT json_extract(payload,'\$.stop') FROM events WHERE run_id='$id' AND kind='node.end'")" = model_error ] ||
    fail "stop reason model_error not recorded"
ok "400: not retried, provider message, stop=model_error"

start_fake '{"gpt-test": [{"invalid_json":true},{"text":"never"}]}'
run_weft "$T/out" "$T/err" run "$T/p.lua" --input '{"topic":"x"}'
expect_rc 1 "malformed answer"
expect_grep "$T/err" 'malformed answer' "malformed answer message"
[ "$(fake_count)" = 1 ] || fail "a malformed answer was retried"
ok "malformed answer: not retried, clear error"

# A wrong key: 401, the provider's message, and the key is not echoed.
start_fake '{"gpt-test": [{"text":"never"}]}'
OPENAI_API_KEY="sk-wrong-$KEY" run_weft "$T/out" "$T/err" run "$T/p.lua" --input '{"topic":"x"}'
expect_rc 1 "wrong key"
expect_grep "$T/err" 'HTTP 401' "401 reported"
ok "401 reported"

# A provider message quoting the key, long enough to be cut mid-key:
# neither the whole key nor its start reaches the store or the output.
start_fake "{\"gpt-test\": [{\"status\":401,\"message\":\"$(printf '%0480d' 0) Invalid key $KEY\"}]}"
run_weft "$T/out" "$T/err" run "$T/p.lua" --input '{"topic":"x"}'
expect_rc 1 "401 quoting the key"
keystart=$(printf '%s' "$KEY" | cut -c1-14)
expect_no_grep "$T/err" "$keystart" "the start of the key in the error"
sqlite3 "$WEFT_DB" .dump > "$T/dump.sql"
expect_no_grep "$T/dump.sql" "$keystart" "the start of the key in the store"
ok "a provider message quoting the key, cut mid-key: redacted"

# --- fallback ---------------------------------------------------------------
start_fake '{"claude-test": [{"status":529},{"status":529},{"status":529},{"status":529}], "gpt-test": [{"text":"from the fallback"}]}'
wf "$T/f.lua" '{ "anthropic:claude-test", "openai:gpt-test" }' 'stream = false'
run_weft "$T/out" "$T/err" run "$T/f.lua" --input '{"topic":"x"}'
expect_rc 0 "fallback"
expect_grep "$T/out" 'from the fallback' "fallback answered"
id=$(last_run)
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='model.fallback'")" = 1 ] || fail "fallback not recorded"
[ "$(sql "SELECT json_extract(payload,'\$.provider') FROM events WHERE run_id='$id' AND kind='model.response'")" = openai ] ||
    fail "the answering provider is not recorded"
[ "$(fake_count claude-test)" = 4 ] || fail "anthropic should have had 4 attempts"
ok "fallback after 4 overloaded attempts; the answering provider recorded"

# --- concurrency ------------------------------------------------------------------
# Six parallel agents whose calls each take 300 ms at the server: all six
# are in flight at once, unless the provider's max_concurrency says 2.
conc() {
	{
		echo 'local w = require "weft"'
		echo "w.provider{ name = \"openai\"$1 }"
		echo 'local a = {}'
		echo 'for i = 1, 6 do a[i] = w.agent{ name = "c" .. i, model = "openai:gpt-test", stream = false, output_key = "c" .. i } end'
		echo 'a.name = "fan"'
		echo 'return w.parallel(a)'
	} > "$T/conc.lua"
	start_fake '{"gpt-test": [{"text":"1","stall_ms":300},{"text":"2","stall_ms":300},{"text":"3","stall_ms":300},{"text":"4","stall_ms":300},{"text":"5","stall_ms":300},{"text":"6","stall_ms":300}]}'
	run_weft "$T/out" "$T/err" run "$T/conc.lua" --input '{}'
	expect_rc 0 "concurrency run ($1)"
	id=$(last_run)
	sql "SELECT json_extract(payload,'\$.sent_at'), time FROM events WHERE run_id='$id' AND kind='model.response'" > "$T/iv"
	python3 - "$T/iv" > "$T/inflight" <<'PY'
import sys
iv = [tuple(map(float, l.split("|"))) for l in open(sys.argv[1]) if l.strip()]
assert len(iv) == 6, iv
# The most calls in flight at one moment.
print(max(sum(1 for s, e in iv if s <= t < e) for t, _ in iv))
PY
}
conc ""
[ "$(cat "$T/inflight")" = 6 ] || fail "6 parallel model calls were not all in flight at once ($(cat "$T/inflight"))"
ok "parallel branches: 6 model calls in flight at once"
conc ", max_concurrency = 2"
[ "$(cat "$T/inflight")" = 2 ] || fail "max_concurrency = 2 not respected ($(cat "$T/inflight") in flight)"
ok "max_concurrency = 2: at most 2 calls in flight"

# The circuit breaker: after 2 failed attempts the provider is skipped.
start_fake '{"claude-test": [{"status":500},{"status":500},{"text":"never"}], "gpt-test": [{"text":"one"},{"text":"two"}]}'
{
	echo 'local w = require "weft"'
	cat <<'EOF2'
w.provider{ name = "anthropic", breaker = { failures = 2, open_s = 60 } }
local chain = { "anthropic:claude-test", "openai:gpt-test" }
return w.sequential{ name = "s",
  w.agent{ name = "first", model = chain, stream = false, retry = { max_attempts = 5, initial_interval = 0.01 } },
  w.agent{ name = "second", model = chain, stream = false } }
EOF2
} > "$T/cb.lua"
run_weft "$T/out" "$T/err" run "$T/cb.lua" --input '{}'
expect_rc 0 "circuit breaker run"
id=$(last_run)
[ "$(fake_count claude-test)" = 2 ] || fail "the open circuit was not skipped ($(fake_count claude-test) anthropic calls)"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='model.circuit_open'")" = 1 ] || fail "circuit_open not recorded"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='model.fallback' AND json_extract(payload,'\$.kind')='circuit_open'")" = 1 ] ||
    fail "the skip of the open circuit is not recorded"
ok "circuit breaker: opens after 2 failures, later calls skip the provider"

# A chain with nothing but an open circuit fails at once, clearly.
start_fake '{"claude-test": [{"status":500},{"status":500},{"text":"never"}]}'
{
	echo 'local w = require "weft"'
	cat <<'EOF2'
w.provider{ name = "anthropic", breaker = { failures = 2, open_s = 60 } }
return w.sequential{ name = "s",
  w.agent{ name = "first", model = "anthropic:claude-test", stream = false, retry = { max_attempts = 2, initial_interval = 0.01 } },
  w.agent{ name = "second", model = "anthropic:claude-test", stream = false } }
EOF2
} > "$T/cb2.lua"
run_weft "$T/out" "$T/err" run "$T/cb2.lua" --input '{}'
expect_rc 1 "first agent fails"
expect_grep "$T/err" "agent 's/first'" "the first agent fails (its circuit opened)"
ok "single-provider chain: circuit opens, failure reported"

# --- agent loop -------------------------------------------------------------
# Context overflow: compacted once, then the call goes through.
start_fake '{"gpt-test": [{"tool_calls":[{"name":"echo","args":{"message":"a"}}]},{"tool_calls":[{"name":"echo","args":{"message":"b"}}]},{"error":"context_length"},{"text":"fits now"}]}'
wf "$T/c.lua" '"openai:gpt-test"' 'stream = false'
run_weft "$T/out" "$T/err" run "$T/c.lua" --input '{"topic":"x"}'
expect_rc 0 "context overflow"
expect_grep "$T/out" 'fits now' "answer after compaction"
id=$(last_run)
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='context.compacted'")" = 1 ] || fail "compaction not recorded"
python3 - "$T/fake.log" <<'PY' || fail "compacted request"
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
assert len(reqs) == 4
full, compacted = reqs[2]["body"]["messages"], reqs[3]["body"]["messages"]
assert len(compacted) < len(full), (len(full), len(compacted))
assert "removed to fit" in json.dumps(compacted)
assert '"b"' in json.dumps(compacted[-2:]) or "b" in json.dumps(compacted[-3:])
PY
ok "context overflow: compacted once, continued"

# Output cut at max_tokens: asked again with a larger limit.
start_fake '{"gpt-test": [{"text":"partial","stop":"max_tokens"},{"text":"complete answer"}]}'
wf "$T/m.lua" '"openai:gpt-test"' 'stream = false, max_tokens = 100'
run_weft "$T/out" "$T/err" run "$T/m.lua" --input '{"topic":"x"}'
expect_rc 0 "max_tokens"
expect_grep "$T/out" 'complete answer' "answer after truncation"
python3 - "$T/fake.log" <<'PY' || fail "max_tokens doubled"
import json, sys
reqs = [json.loads(l)["body"] for l in open(sys.argv[1])]
limits = [r.get("max_completion_tokens", r.get("max_tokens")) for r in reqs]
assert limits == [100, 200], limits
PY
ok "truncated answer: asked again with max_tokens doubled"

start_fake '{"gpt-test": [{"text":"a","stop":"max_tokens"},{"text":"ab","stop":"max_tokens"},{"text":"abc","stop":"max_tokens"}]}'
run_weft "$T/out" "$T/err" run "$T/m.lua" --input '{"topic":"x"}'
expect_rc 1 "truncated three times"
expect_grep "$T/err" 'cut off at the output limit \(max_tokens = 400\) 3 times' "truncation message"
id=$(last_run)
[ "$(sql "SELECT json_extract(payload,'\$.stop') FROM events WHERE run_id='$id' AND kind='node.end'")" = max_tokens ] ||
    fail "stop=max_tokens not recorded"
ok "cut three times: the agent fails with stop=max_tokens, no partial answer"

# A server that only knows max_tokens (older Ollama, llama.cpp).
start_fake '{"gpt-test": [{"text":"ok"}]}'
sed 's/w.provider{ name = "openai", /w.provider{ name = "openai", max_tokens_field = "max_tokens", /' "$T/m.lua" > "$T/m2.lua"
run_weft "$T/out" "$T/err" run "$T/m2.lua" --input '{"topic":"x"}'
expect_rc 0 "max_tokens_field"
python3 - "$T/fake.log" <<'PY' || fail "max_tokens_field"
import json, sys
body = json.loads(open(sys.argv[1]).readline())["body"]
assert body.get("max_tokens") == 100 and "max_completion_tokens" not in body, body
PY
ok "max_tokens_field = \"max_tokens\" for older OpenAI-compatible servers"

# output_schema: an invalid answer is fed back, the valid one is the output.
start_fake '{"gpt-test": [{"text":"{\"title\": 5}"},{"text":"```json\n{\"title\": \"Tides\", \"score\": 3}\n```"}]}'
wf "$T/o.lua" '"openai:gpt-test"' 'stream = false, output_schema = { type = "object", required = { "title" }, properties = { title = { type = "string" }, score = { type = "integer" } } }'
run_weft "$T/out" "$T/err" run "$T/o.lua" --input '{"topic":"x"}' --json
expect_rc 0 "output_schema"
python3 - "$T/out" "$T/fake.log" <<'PY' || fail "output_schema"
import json, sys
out = json.load(open(sys.argv[1]))["output"]
assert out == {"title": "Tides", "score": 3}, out
reqs = [json.loads(l)["body"] for l in open(sys.argv[2])]
fb = json.dumps(reqs[1]["messages"][-1])
assert "/title" in fb and "string" in fb, fb
PY
ok "output_schema: invalid answer fed back with the error; output is the JSON value"

# The same failing call three times: the model is told, then the agent stops.
start_fake '{"gpt-test": [{"tool_calls":[{"name":"fail","args":{"message":"x"}}]},{"tool_calls":[{"name":"fail","args":{"message":"x"}}]},{"tool_calls":[{"name":"fail","args":{"message":"x"}}]},{"text":"never"}]}'
wf "$T/rep.lua" '"openai:gpt-test"' 'stream = false'
run_weft "$T/out" "$T/err" run "$T/rep.lua" --input '{"topic":"x"}'
expect_rc 1 "repeated failing call"
expect_grep "$T/err" "tool 'fail' failed 3 times with the same arguments" "repeated failure message"
python3 - "$T/fake.log" <<'PY' || fail "the model was not told about the repeat"
import json, sys
reqs = [json.loads(l)["body"] for l in open(sys.argv[1])]
assert len(reqs) == 3, len(reqs)
assert "has now failed 2 times" in json.dumps(reqs[2]["messages"])
PY
ok "repeated identical failing call: model told, agent stopped"

# Hooks: a before_tool guardrail blocks a call; after_model rewrites.
start_fake '{"gpt-test": [{"tool_calls":[{"name":"echo","args":{"message":"secret"}}]},{"text":"draft"}]}'
{
	echo 'local w = require "weft"'
	testserver_decl
	cat <<'EOF2'
w.hooks{ before_tool = function(call)
  if call.args.message == "secret" then return { block = "no secrets" } end
end }
return w.agent{ name = "h", model = "openai:gpt-test", stream = false,
  tools = { w.mcp("test", { only = { "echo" } }) }, output_key = "answer",
  hooks = { after_model = function(resp)
    if resp.text == "draft" then return { text = "final (rewritten)" } end
  end } }
EOF2
} > "$T/h.lua"
run_weft "$T/out" "$T/err" run "$T/h.lua" --input '{"topic":"x"}'
expect_rc 0 "hooks"
expect_grep "$T/out" 'final \(rewritten\)' "after_model rewrite"
id=$(last_run)
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='tool.call'")" = 0 ] || fail "a blocked call reached a worker"
[ "$(sql "SELECT json_extract(payload,'\$.reason') FROM events WHERE run_id='$id' AND kind='hook' AND json_extract(payload,'\$.action')='block'")" = "no secrets" ] ||
    fail "block reason not recorded"
python3 - "$T/fake.log" <<'PY' || fail "blocked call result"
import json, sys
reqs = [json.loads(l)["body"] for l in open(sys.argv[1])]
assert "blocked by a guardrail: no secrets" in json.dumps(reqs[1]["messages"])
PY
ok "hooks: before_tool blocks (recorded), after_model rewrites"

# before_model answers in place of the model, with a tool call without an id.
start_fake '{"gpt-test": [{"text":"model answer"}]}'
{
	echo 'local w = require "weft"'
	testserver_decl
	cat <<'EOF2'
return w.agent{ name = "h", model = "openai:gpt-test", stream = false,
  tools = { w.mcp("test", { only = { "echo" } }) },
  hooks = { before_model = function(req)
    if req.turn == 1 then return { answer = { tool_calls = { { name = "echo", args = { message = "from hook" } } } } } end
  end } }
EOF2
} > "$T/h2.lua"
run_weft "$T/out" "$T/err" run "$T/h2.lua" --input '{}'
expect_rc 0 "before_model answer"
expect_grep "$T/out" 'model answer' "the model answered the second turn"
python3 - "$T/fake.log" <<'PY' || fail "the hook's tool call went to the model with an id and its result"
import json, sys
reqs = [json.loads(l)["body"] for l in open(sys.argv[1])]
assert len(reqs) == 1
msgs = json.dumps(reqs[0]["messages"])
assert "from hook" in msgs and "call_h1_1" in msgs, msgs
PY
ok "before_model answers in place of the model (tool call given an id)"

# --- examples/providers.lua on an OpenAI-compatible server -------------------
start_fake '{"gpt-4o-mini": [{"text":"{\"title\": \"Tides\", \"explanation\": \"The Moon pulls the sea.\", \"key_facts\": [\"two a day\", \"the Moon\"]}"}]}'
(unset ANTHROPIC_API_KEY ANTHROPIC_BASE_URL
 run_weft "$T/out" "$T/err" run "$WEFT_SRCDIR/examples/providers.lua" --input '{"topic":"tides"}' --json
 echo "$RC" > "$T/rc")
[ "$(cat "$T/rc")" = 0 ] || { cat "$T/err" >&2; fail "examples/providers.lua: exit $(cat "$T/rc")"; }
python3 - "$T/out" <<'PY' || fail "examples/providers.lua output"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["output"]["title"] == "Tides" and len(r["output"]["key_facts"]) == 2, r
assert r["model_calls"] == 1 and not r["scripted"], r
PY
id=$(last_run)
[ "$(sql "SELECT json_extract(payload,'\$.skipped[0].model') FROM events WHERE run_id='$id' AND kind='model.request'")" = "anthropic:claude-haiku-4-5" ] ||
    fail "the keyless provider was not recorded as skipped"
ok "examples/providers.lua: keyless provider skipped, OpenAI-compatible server answered"

# --- configuration errors -----------------------------------------------------
cat > "$T/u.lua" <<'EOF2'
local w = require "weft"
local a = w.agent{ name = "u", model = "nowhere:some-model" }
return a
EOF2
run_weft "$T/out" "$T/err" validate "$T/u.lua"
expect_rc 2 "unknown provider"
expect_grep "$T/err" "u.lua:2: agent 'u': unknown provider 'nowhere'" "unknown provider message"
ok "unknown provider: file:line"

(unset OPENAI_API_KEY OPENAI_BASE_URL; run_weft "$T/out" "$T/err" run "$T/p.lua" --input '{"topic":"x"}'; echo "$RC" > "$T/rc")
[ "$(cat "$T/rc")" = 1 ] || fail "missing key: exit $(cat "$T/rc")"
expect_grep "$T/err" 'OPENAI_API_KEY is not set' "missing key message"
ok "missing API key: clear error before any request"

# --- the key never leaks ----------------------------------------------------------
stop_fake
for f in "$WEFT_DB" "$WEFT_DB-wal" "$T"/out "$T"/err "$T"/show; do
	[ -f "$f" ] || continue
	if grep -a -q -- "$KEY" "$f"; then fail "the API key appears in $f"; fi
done
sqlite3 "$WEFT_DB" .dump > "$T/dump.sql"
expect_no_grep "$T/dump.sql" "$KEY" "API key in the store"
ok "the API key is in neither the store nor the output"
