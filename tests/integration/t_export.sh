#!/bin/sh
# weft export --otlp: a recorded run as OpenTelemetry spans (OTLP/JSON),
# checked against the OpenTelemetry project's own encoder
# (tests/viewer/otlp.mjs), the span tree and GenAI attributes, to a file
# and to a collector over HTTP (one that fails first, one that is down).
. "$(dirname "$0")/lib.sh"
RECV=
trap '_rc=$?; [ -n "$RECV" ] && kill "$RECV" 2>/dev/null; (exit $_rc); cleanup' EXIT

{
	echo 'local w = require "weft"'
	testserver_decl
	cat <<'LUA'
return w.sequential{ name = "flow",
  w.agent{ name = "writer", model = "scripted", output_key = "answer",
    instruction = "Write.", tools = { w.mcp("test", { only = { "echo", "fail" } }) },
    script = { { tool_calls = { { name = "echo", args = { message = "hi" } },
                                { name = "fail", args = { message = "no" } } } },
               { text = "done" } } },
}
LUA
} > "$T/flow.lua"
run_weft "$T/out" "$T/err" run "$T/flow.lua"
[ "$RC" -eq 0 ] || { cat "$T/err" >&2; fail "the run failed"; }
id=$(last_run)

run_weft "$T/o" "$T/e" export --otlp "$T/a.json" "$id"
expect_rc 0 "export to a file"
run_weft "$T/o" "$T/e" export --otlp "$T/b.json" "${id%????}"
cmp -s "$T/a.json" "$T/b.json" || fail "two exports of a run differ"
python3 - "$T/a.json" "$id" <<'PY' || fail "the span tree or its attributes"
import hashlib, json, sys
d = json.load(open(sys.argv[1]))
run = sys.argv[2]
rs = d["resourceSpans"][0]
res = {a["key"]: a["value"]["stringValue"] for a in rs["resource"]["attributes"]}
assert res["service.name"] == "weft", res
spans = rs["scopeSpans"][0]["spans"]
by = {s["spanId"]: s for s in spans}
def attrs(s):
    return {a["key"]: list(a["value"].values())[0] for a in s["attributes"]}
trace = hashlib.sha256((run + ":trace").encode()).hexdigest()[:32]
assert all(s["traceId"] == trace for s in spans), "trace id from the run id"
roots = [s for s in spans if "parentSpanId" not in s]
assert [s["name"] for s in roots] == ["invoke_workflow flow"], roots
def parent(s): return by[s["parentSpanId"]]["name"]
agent = [s for s in spans if s["name"] == "invoke_agent writer"][0]
assert parent(agent) == "sequential flow"
assert attrs(agent)["gen_ai.agent.name"] == "writer"
chats = [s for s in spans if s["name"] == "chat scripted"]
assert len(chats) == 2 and all(parent(s) == "invoke_agent writer" for s in chats)
for c in chats:
    a = attrs(c)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "scripted"
    assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
    assert a["gen_ai.conversation.id"] == run
tools = {attrs(s)["gen_ai.tool.name"]: s for s in spans if s["name"].startswith("execute_tool ")}
assert sorted(tools) == ["echo", "fail"], tools
assert all(parent(s) == "invoke_agent writer" for s in tools.values())
assert tools["echo"]["status"] == {"code": 0}
assert tools["fail"]["status"]["code"] == 2 and "no" in tools["fail"]["status"]["message"]
for s in spans:
    assert int(s["startTimeUnixNano"]) <= int(s["endTimeUnixNano"]), s["name"]
PY
ok "span tree, GenAI attributes, trace id from the run id, stable"

if command -v node >/dev/null 2>&1 &&
    [ -d "$WEFT_SRCDIR/node_modules/@opentelemetry/otlp-transformer" ]; then
	node "$WEFT_SRCDIR/tests/viewer/otlp.mjs" "$T/a.json" ||
	    fail "not what the OpenTelemetry encoder gives"
else
	echo "SKIP (part): node or @opentelemetry/otlp-transformer missing (npm ci): the encoding was NOT checked against it" >&2
fi

# A collector: the first POST gets 503, the second is kept.
cat > "$T/recv.py" <<'PY'
import http.server, sys
n = 0
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global n
        n += 1
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if n == 1:
            self.send_response(503); self.end_headers(); return
        open(sys.argv[2], "wb").write(body)
        open(sys.argv[2] + ".hdr", "w").write(self.path + "\n" + str(self.headers))
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1]))
s.serve_forever()
PY
python3 "$T/recv.py" "$T/port.tmp" "$T/got.json" &
RECV=$!
wait_for_grep "$T/port.tmp" '^[0-9]+$' "the receiver's port"
P=$(cat "$T/port.tmp")
OTEL_EXPORTER_OTLP_PROTOCOL=http/json \
    OTEL_EXPORTER_OTLP_HEADERS="x-team=weft,authorization=Bearer abc" \
    run_weft "$T/o" "$T/e" export --otlp "http://127.0.0.1:$P" "$id"
expect_rc 0 "export to a collector that failed once"
cmp -s "$T/a.json" "$T/got.json" || { tr -d '\n' < "$T/a.json" | cmp -s - "$T/got.json" || fail "the collector got another body"; }
expect_grep "$T/got.json.hdr" '^/v1/traces$' "POSTed to /v1/traces"
expect_grep "$T/got.json.hdr" '^x-team: weft' "OTEL_EXPORTER_OTLP_HEADERS sent"
expect_grep "$T/got.json.hdr" '^Content-Type: application/json' "as JSON"
kill "$RECV"
wait "$RECV" 2>/dev/null
RECV=
ok "to a collector over HTTP, retried after a 503"

# A collector that is down: a clear error, exit 1.
run_weft "$T/o" "$T/e" export --otlp "http://127.0.0.1:$P/v1/traces" "$id"
expect_rc 1 "a collector that is down"
expect_grep "$T/e" "^weft: export failed: http://127.0.0.1:$P/v1/traces: " "the error names the collector"
run_weft "$T/o" "$T/e" export --otlp "$T/x.json" nosuchrun
expect_rc 1 "an unknown run"
expect_grep "$T/e" "no run 'nosuchrun'" "names the run"
run_weft "$T/o" "$T/e" export "$id"
expect_rc 2 "no --otlp"
ok "errors"

# --jsonl: one line per model turn, the conversation as the model saw it.
run_weft "$T/o" "$T/e" export --jsonl "$T/turns.jsonl" "$id"
expect_rc 0 "export --jsonl"
python3 - "$T/turns.jsonl" "$id" <<'PY' || fail "the JSON lines"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 2, lines
a, b = lines
assert a["run"] == b["run"] == sys.argv[2]
assert a["node"] == "flow/writer" and a["provider"] == "scripted" and a["turn"] == 1
assert [m["role"] for m in a["messages"]] == ["system", "user"], a["messages"]
assert [c["name"] for c in a["answer"]["tool_calls"]] == ["echo", "fail"]
assert b["messages"][:2] == a["messages"]
assert [m["role"] for m in b["messages"]] == ["system", "user", "assistant", "tool", "tool"]
assert b["messages"][2]["tool_calls"] == a["answer"]["tool_calls"]
assert b["answer"] == {"role": "assistant", "content": "done"}
assert b["stop_reason"] == "final" and b["usage"]["output_tokens"] > 0
PY
run_weft "$T/o" "$T/e" export --jsonl - "$id"
expect_rc 0 "export --jsonl to stdout"
cmp -s "$T/o" "$T/turns.jsonl" || fail "--jsonl - differs from the file"
run_weft "$T/o" "$T/e" export --jsonl - --otlp - "$id"
expect_rc 2 "--jsonl and --otlp"
ok "--jsonl: the model turns, one a line"
