#!/bin/sh
# The live OTLP export of weft run and weft serve (docs/observability.md),
# received by a collector on 127.0.0.1 that checks every request against
# the OpenTelemetry project's own encoder (tests/viewer/otlp.mjs collect):
# protobuf (the default) and JSON, the OTEL_* settings, the span tree and
# GenAI attributes; a collector down at the start and back up (spans
# arrive once it is up, while the run still goes); a collector that never
# comes up (the run succeeds, the spans are dropped with a warning).
. "$(dirname "$0")/../integration/lib.sh"
if ! command -v node >/dev/null 2>&1 ||
    [ ! -d "$WEFT_SRCDIR/node_modules/@opentelemetry/otlp-transformer" ]; then
	echo "SKIP: node or @opentelemetry/otlp-transformer missing (npm ci in $WEFT_SRCDIR)"
	exit 77
fi
OTLP="$WEFT_SRCDIR/tests/viewer/otlp.mjs"
PIDS=
trap '_rc=$?; for p in $PIDS; do kill "$p" 2>/dev/null; done; (exit $_rc); cleanup' EXIT
unset OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_TRACES_ENDPOINT \
    OTEL_EXPORTER_OTLP_PROTOCOL OTEL_EXPORTER_OTLP_TRACES_PROTOCOL \
    OTEL_EXPORTER_OTLP_HEADERS OTEL_EXPORTER_OTLP_TRACES_HEADERS \
    OTEL_SERVICE_NAME OTEL_RESOURCE_ATTRIBUTES

# collector NAME: a collector on a free port, its requests in $T/NAME.jsonl;
# sets P.
collector() {
	rm -f "$T/$1.port"
	node "$OTLP" collect "$T/$1.jsonl" --port-file "$T/$1.port" \
	    >"$T/$1.log" 2>&1 &
	PIDS="$PIDS $!"
	wait_for_grep "$T/$1.log" '^listening' "the collector $1"
	P=$(cat "$T/$1.port")
}

# held NAME: a port bound but not listening (connections are refused)
# until "up" is written to $T/NAME.fifo; then that very socket listens
# and the collector serves it.  Sets P.
held() {
	mkfifo "$T/$1.fifo"
	python3 - "$T/$1" "$OTLP" <<'PY' >"$T/$1.log" 2>&1 &
import os, socket, sys
base, otlp = sys.argv[1], sys.argv[2]
s = socket.socket()
s.bind(("127.0.0.1", 0))
with open(base + ".port.tmp", "w") as f:
    f.write(str(s.getsockname()[1]))
os.rename(base + ".port.tmp", base + ".port")
with open(base + ".fifo") as f:
    f.read()
s.listen(64)
os.set_inheritable(s.fileno(), True)
os.execvp("node", ["node", otlp, "collect", base + ".jsonl", "--fd",
    str(s.fileno())])
PY
	PIDS="$PIDS $!"
	wait_for_grep "$T/$1.port" '^[0-9]+$' "the held port"
	P=$(cat "$T/$1.port")
}

# check FILE RUN: every request was what the OpenTelemetry encoder gives,
# and together they hold the run's whole span tree with its attributes.
check() {
	python3 - "$1" "$2" "${3:-weft}" <<'PY' || fail "the spans of run $2 in $1"
import hashlib, json, sys
path, run, svc = sys.argv[1:4]
spans = []
for line in open(path):
    r = json.loads(line)
    assert r["ok"], r.get("error")
    assert r["path"] == "/v1/traces", r["path"]
    for rs in r["request"]["resourceSpans"]:
        res = {a["key"]: a["value"]["stringValue"] for a in rs["resource"]["attributes"]}
        assert res["service.name"] == svc, res
        for ss in rs["scopeSpans"]:
            assert ss["scope"]["name"] == "weft"
            assert ss["schemaUrl"].startswith("https://opentelemetry.io/schemas/"), ss
            spans += [s for s in ss["spans"] if any(
                a["key"] == "gen_ai.conversation.id" and
                a["value"]["stringValue"] == run for a in s["attributes"])]
ids = [s["spanId"] for s in spans]
assert len(ids) == len(set(ids)), "a span sent twice"
by = {s["spanId"]: s for s in spans}
def attrs(s):
    return {a["key"]: list(a["value"].values())[0] for a in s["attributes"]}
trace = hashlib.sha256((run + ":trace").encode()).hexdigest()[:32]
assert all(s["traceId"] == trace for s in spans), "trace id from the run id"
roots = [s for s in spans if "parentSpanId" not in s]
assert [s["name"] for s in roots] == ["invoke_workflow flow"], roots
assert attrs(roots[0])["weft.run.status"] == "succeeded"
def parent(s): return by[s["parentSpanId"]]["name"]
agent = [s for s in spans if s["name"] == "invoke_agent writer"][0]
assert parent(agent) == "sequential flow"
a = attrs(agent)
assert a["gen_ai.agent.name"] == "writer" and a["gen_ai.operation.name"] == "invoke_agent"
chats = [s for s in spans if s["name"] == "chat scripted"]
assert len(chats) == 2 and all(parent(s) == "invoke_agent writer" for s in chats)
for c in chats:
    a = attrs(c)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "scripted"
    assert a["gen_ai.request.model"] == "scripted"
    assert int(a["gen_ai.usage.input_tokens"]) > 0 and int(a["gen_ai.usage.output_tokens"]) > 0
tools = [s for s in spans if s["name"] == "execute_tool echo"]
assert len(tools) == 1 and parent(tools[0]) == "invoke_agent writer"
assert attrs(tools[0])["gen_ai.tool.name"] == "echo"
assert attrs(tools[0])["gen_ai.operation.name"] == "execute_tool"
wait = [s for s in spans if s["name"] == "tool wait"]
assert len(wait) == 1 and parent(wait[0]) == "sequential flow"
for s in spans:
    assert int(s["startTimeUnixNano"]) <= int(s["endTimeUnixNano"]), s["name"]
print(len(spans))
PY
}

# flow.lua: an agent (two model turns, one tool call), then a tool node
# that waits for $T/go (created up front unless a test holds the run).
wf() {
	{
		echo 'local w = require "weft"'
		testserver_decl
		cat <<LUA
return w.sequential{ name = "flow",
  w.agent{ name = "writer", model = "scripted", output_key = "answer",
    instruction = "Write.", tools = { w.mcp("test", { only = { "echo" } }) },
    script = { { tool_calls = { { name = "echo", args = { message = "hi" } } } },
               { text = "done" } } },
  w.tool{ name = "wait", server = "test", tool = "sleep",
    args = { ms = 0, ["until"] = "$T/go" } },
}
LUA
	} > "$T/flow.lua"
}
wf
: > "$T/go"

# 1. Protobuf (the default), OTEL_EXPORTER_OTLP_ENDPOINT, headers (the
# _TRACES_ ones win, values %-decoded), service.name from
# OTEL_RESOURCE_ATTRIBUTES; every span is there when weft run exits.
collector pb
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$P" \
    OTEL_EXPORTER_OTLP_HEADERS="x-team=weft,x-key=old" \
    OTEL_EXPORTER_OTLP_TRACES_HEADERS="x-key=a%20b" \
    OTEL_RESOURCE_ATTRIBUTES="service.name=essays,deployment.environment=test" \
    run_weft "$T/out" "$T/err" run "$T/flow.lua"
expect_rc 0 "a run exporting its spans"
id=$(last_run)
check "$T/pb.jsonl" "$id" essays >/dev/null
python3 - "$T/pb.jsonl" <<'PY' || fail "protobuf, headers and resource"
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    assert r["type"] == "application/x-protobuf", r["type"]
    assert r["headers"]["x-team"] == "weft" and r["headers"]["x-key"] == "a b", r["headers"]
    res = {a["key"]: a["value"]["stringValue"] for a in r["request"]["resourceSpans"][0]["resource"]["attributes"]}
    assert res["deployment.environment"] == "test", res
PY
expect_no_grep "$T/err" 'otlp' "no warning when the collector takes the spans"
ok "weft run: OTLP/protobuf, byte for byte the OpenTelemetry encoder's, span tree and GenAI attributes, OTEL_* headers and resource"

# 2. JSON as OTEL_EXPORTER_OTLP_PROTOCOL says, to --otlp URL; a _TRACES_
# endpoint is used as it is.
collector js
OTEL_EXPORTER_OTLP_PROTOCOL=http/json OTEL_SERVICE_NAME=svc \
    run_weft "$T/out" "$T/err" run --otlp "http://127.0.0.1:$P" "$T/flow.lua"
expect_rc 0 "a run exporting OTLP/JSON"
check "$T/js.jsonl" "$(last_run)" svc >/dev/null
expect_grep "$T/js.jsonl" '"type":"application/json"' "sent as JSON"
: > "$T/js.jsonl"
OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json \
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://127.0.0.1:$P/v1/traces" \
    run_weft "$T/out" "$T/err" run "$T/flow.lua"
expect_rc 0 "a run exporting to a _TRACES_ endpoint"
check "$T/js.jsonl" "$(last_run)" >/dev/null
ok "OTLP/JSON, --otlp URL, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"

# 3. The collector is down when the run starts: the run goes on; the spans
# that ended are retried, and arrive once the collector is up, while the
# run still waits for $T/go; the rest arrive by the run's end.
rm -f "$T/go"
held late
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$P" \
    "$WEFT" run "$T/flow.lua" >"$T/late.out" 2>"$T/late.err" &
RUN=$!
PIDS="$PIDS $RUN"
wait_for_grep "$T/late.err" "^weft: otlp: cannot export: http://127.0.0.1:$P/v1/traces: .*; retrying with backoff" "a failed export, said once"
echo up > "$T/late.fifo"
wait_for_grep "$T/late.log" '^listening' "the collector, late"
wait_for_grep "$T/late.jsonl" '"chat scripted"' "the model calls' spans, once the collector is up"
kill -0 "$RUN" 2>/dev/null || fail "the run ended before it was let go"
[ "$(sql "SELECT status FROM runs ORDER BY started DESC LIMIT 1")" = running ] ||
    fail "the run is not running any more"
: > "$T/go"
RC=0
wait "$RUN" || RC=$?
[ "$RC" -eq 0 ] || { cat "$T/late.err" >&2; fail "the run failed: $RC"; }
check "$T/late.jsonl" "$(last_run)" >/dev/null
expect_grep "$T/late.err" "^weft: otlp: http://127.0.0.1:$P/v1/traces takes spans again" "said when the collector came back"
expect_no_grep "$T/late.err" 'dropped' "nothing dropped"
[ "$(grep -c 'retrying' "$T/late.err")" -eq 1 ] || fail "the outage said more than once"
ok "collector down at the start, back up: the run succeeds, the spans arrive once it is up"

# 4. A collector that never comes up: the run exits 0, the spans are
# dropped with a warning on stderr.
held never
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$P" \
    run_weft "$T/out" "$T/err" run "$T/flow.lua"
expect_rc 0 "a run whose collector never comes up"
expect_grep "$T/err" "^weft: otlp: cannot export: http://127.0.0.1:$P/v1/traces: " "the failure"
expect_grep "$T/err" "^weft: otlp: dropped [0-9]+ span\(s\): " "the dropped spans"
expect_grep "$T/out" '^run +[0-9a-f]+ +succeeded' "the run's summary"
ok "a collector that never comes up: run succeeds, spans dropped with a warning"

# 5. A setting weft cannot follow: a warning, the run still runs.
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$P" \
    OTEL_EXPORTER_OTLP_PROTOCOL=grpc \
    run_weft "$T/out" "$T/err" run "$T/flow.lua"
expect_rc 0 "a run with an unsupported protocol"
expect_grep "$T/err" '^weft: not exporting spans: OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported' "the setting named"
ok "an unsupported OTEL_EXPORTER_OTLP_PROTOCOL: a warning, the run succeeds"

# 6. weft serve exports the runs it serves.
collector sv
mkdir -p "$T/wf"
cp "$T/flow.lua" "$T/wf/flow.lua"
rm -f "$T/serve.err"
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$P" \
    "$WEFT" serve --listen 127.0.0.1:0 "$T/wf/flow.lua" 2>"$T/serve.err" &
SERVE_PID=$!
PIDS="$PIDS $SERVE_PID"
serve_wait
python3 "$WEFT_SRCDIR/tests/helpers/mcp_call.py" call "$URL" flow '{}' \
    >"$T/call.out" 2>"$T/call.err" || { cat "$T/call.err" >&2; fail "the MCP call"; }
sid=$(last_run)
wait_for_grep "$T/sv.jsonl" '"invoke_workflow flow"' "the served run's span"
stop_serve
check "$T/sv.jsonl" "$sid" >/dev/null
ok "weft serve: a served run's spans, live"

# 6b. weft resume exports the resumed run's spans too (given by a prefix):
# a run killed with -9 while its tool waits for $T/go, resumed.
rm -f "$T/go"
"$WEFT" run "$T/flow.lua" >"$T/k.out" 2>"$T/k.err" &
KRUN=$!
PIDS="$PIDS $KRUN"
wait_until "the run at its waiting tool" sql_is "SELECT count(*) FROM events e JOIN runs r ON r.id = e.run_id WHERE r.status = 'running' AND e.kind = 'tool.call' AND e.node_path LIKE '%wait'" 1
kid=$(sql "SELECT id FROM runs WHERE status = 'running'")
kill -9 "$KRUN"
wait "$KRUN" 2>/dev/null || true
collector rs
: > "$T/go"
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$P" \
    run_weft "$T/out" "$T/err" resume "$(echo "$kid" | cut -c1-8)"
expect_rc 0 "the resumed run"
python3 - "$T/rs.jsonl" "$kid" <<'PY' || fail "the resumed run's spans"
import json, sys
path, run = sys.argv[1:3]
names = []
for line in open(path):
    r = json.loads(line)
    for rs in r["request"]["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                a = {x["key"]: list(x["value"].values())[0] for x in s["attributes"]}
                if a.get("gen_ai.conversation.id") == run:
                    names.append((s["name"], a.get("weft.run.status")))
assert ("invoke_workflow flow", "succeeded") in names, names
assert any(n == "tool wait" for n, _ in names), names
PY
ok "weft resume RUN-PREFIX: the resumed run's spans, live"

# 7. W3C traceparent on MCP over Streamable HTTP: the run's trace, the
# tool call's span as parent (itself a child of the agent's node span).
cat > "$T/mcp.py" <<'PY'
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def answer(self, code, obj=None):
        body = json.dumps(obj).encode() if obj is not None else b""
        self.send_response(code)
        if obj is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Mcp-Session-Id", "s1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.answer(405)
    def do_DELETE(self):
        self.answer(200)
    def do_POST(self):
        m = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if "id" not in m:
            return self.answer(202)
        if m["method"] == "initialize":
            r = {"protocolVersion": m["params"]["protocolVersion"],
                 "capabilities": {"tools": {}},
                 "serverInfo": {"name": "tp", "version": "1"}}
        elif m["method"] == "tools/list":
            r = {"tools": [{"name": "hello", "description": "Say hi.",
                            "inputSchema": {"type": "object"}}]}
        elif m["method"] == "tools/call":
            with open(sys.argv[2], "a") as f:
                f.write("%s %s\n" % (m["params"]["name"],
                                     self.headers.get("traceparent")))
            r = {"content": [{"type": "text", "text": "hi"}]}
        else:
            return self.answer(200, {"jsonrpc": "2.0", "id": m["id"],
                "error": {"code": -32601, "message": "no"}})
        self.answer(200, {"jsonrpc": "2.0", "id": m["id"], "result": r})
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(s.server_address[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.serve_forever()
PY
python3 "$T/mcp.py" "$T/mcp.port" "$T/mcp.calls" 2>"$T/mcp.log" &
PIDS="$PIDS $!"
wait_for_grep "$T/mcp.port" '^[0-9]+$' "the MCP server's port"
cat > "$T/tp.lua" <<LUA
local w = require "weft"
w.mcp_server{ name = "tp", url = "http://127.0.0.1:$(cat "$T/mcp.port")/mcp" }
return w.agent{ name = "writer", model = "scripted", tools = { w.mcp("tp") },
  script = { { tool_calls = { { name = "hello", args = {} } } }, { text = "done" } } }
LUA
run_weft "$T/out" "$T/err" run "$T/tp.lua"
expect_rc 0 "a run calling an MCP server over HTTP"
tid=$(last_run)
run_weft "$T/o" "$T/e" export --otlp "$T/tp.json" "$tid"
expect_rc 0 "its export"
python3 - "$T/mcp.calls" "$T/tp.json" "$tid" <<'PY' || fail "the traceparent the MCP server got"
import hashlib, json, sys
calls = open(sys.argv[1]).read().split("\n")
run = sys.argv[3]
name, tp = calls[0].split(" ")
assert name == "hello", calls
v, trace, parent, flags = tp.split("-")
assert v == "00" and flags == "01", tp
assert trace == hashlib.sha256((run + ":trace").encode()).hexdigest()[:32], tp
spans = {s["spanId"]: s for s in json.load(open(sys.argv[2]))["resourceSpans"][0]["scopeSpans"][0]["spans"]}
assert spans[parent]["name"] == "execute_tool hello", spans[parent]
assert spans[spans[parent]["parentSpanId"]]["name"] == "invoke_agent writer"
PY
ok "traceparent on MCP over HTTP: the run's trace id, the tool call's span"

# 8. ... and on calls to a remote A2A agent (tests/interop/a2a_agent.mjs,
# the official SDK's server), the call being an invoke_agent client span.
if [ -d "$WEFT_SRCDIR/node_modules/@a2a-js/sdk" ]; then
	NODE_PATH="$WEFT_SRCDIR/node_modules" node \
	    "$WEFT_SRCDIR/tests/interop/a2a_agent.mjs" "$T/a2a.port" \
	    "$T/a2a.log" --no-stream >"$T/a2a.out" 2>&1 &
	PIDS="$PIDS $!"
	wait_for_grep "$T/a2a.port" '^[0-9]+$' "the A2A agent's port"
	cat > "$T/a2a.lua" <<LUA
local w = require "weft"
return w.sequential{ name = "main",
  w.remote{ name = "peer", agent = "http://127.0.0.1:$(cat "$T/a2a.port")", input = "echo hi", output_key = "answer" },
}
LUA
	run_weft "$T/out" "$T/err" run "$T/a2a.lua"
	expect_rc 0 "a run calling an A2A agent"
	aid=$(last_run)
	run_weft "$T/o" "$T/e" export --otlp "$T/a2a.json" "$aid"
	expect_rc 0 "its export"
	python3 - "$T/a2a.log" "$T/a2a.json" "$aid" <<'PY' || fail "the traceparent the A2A agent got"
import hashlib, json, sys
run = sys.argv[3]
rpc = [l for l in map(json.loads, open(sys.argv[1])) if l.get("http", "").startswith("POST /rpc")]
assert rpc, "no JSON-RPC request"
tps = {l["traceparent"] for l in rpc}
assert len(tps) == 1, tps
v, trace, parent, flags = tps.pop().split("-")
assert trace == hashlib.sha256((run + ":trace").encode()).hexdigest()[:32]
spans = {s["spanId"]: s for s in json.load(open(sys.argv[2]))["resourceSpans"][0]["scopeSpans"][0]["spans"]}
s = spans[parent]
assert s["name"].startswith("invoke_agent ") and s["kind"] == 3, s
a = {x["key"]: list(x["value"].values())[0] for x in s["attributes"]}
assert a["gen_ai.operation.name"] == "invoke_agent", a
assert spans[s["parentSpanId"]]["name"].endswith(" peer"), spans[s["parentSpanId"]]
PY
	ok "traceparent on A2A calls: the run's trace id, the remote call's span"
else
	echo "SKIP (part): @a2a-js/sdk missing: traceparent on A2A NOT tested" >&2
fi
