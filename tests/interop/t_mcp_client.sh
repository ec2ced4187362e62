#!/bin/sh
# weft's MCP client against the reference servers from the npm registry
# (@modelcontextprotocol/server-everything over Streamable HTTP and stdio,
# server-filesystem, server-memory) through real `weft run` workflows, plus
# the in-tree test server and a scripted server for what the reference
# servers cannot show (pagination, list changes, JSON-RPC errors, hung
# servers, cancellation, old protocol revisions).
. "$WEFT_SRCDIR/tests/integration/lib.sh"

NM="$WEFT_SRCDIR/node_modules/.bin"
for s in mcp-server-everything mcp-server-filesystem mcp-server-memory; do
	if [ ! -x "$NM/$s" ]; then
		echo "SKIP: $NM/$s is missing (run 'npm ci' in $WEFT_SRCDIR)" >&2
		exit 77
	fi
done
command -v node >/dev/null 2>&1 || { echo "SKIP: node is not installed" >&2; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: python3 is not installed" >&2; exit 77; }

# HTTP servers we start: stopped by pid when the test ends.
EV_PID=
stop_ev() {
	if [ -n "$EV_PID" ]; then
		kill "$EV_PID" 2>/dev/null
		wait "$EV_PID" 2>/dev/null
		EV_PID=
	fi
}
trap 'stop_ev; cleanup' EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_ev PORT LOG: server-everything over Streamable HTTP at :PORT/mcp.
start_ev() {
	PORT=$1 "$NM/mcp-server-everything" streamableHttp >"$2" 2>&1 &
	EV_PID=$!
	i=0
	until grep -q "listening on port $1" "$2"; do
		i=$((i + 1))
		[ $i -lt 200 ] || { cat "$2" >&2; fail "server-everything did not start"; }
		sleep 0.05
	done
}

run_id() {
	sed -n 's/^run  *\([0-9a-f]\{16\}\) .*/\1/p' "$1"
}

# --- Streamable HTTP: results, structuredContent, progress, content blocks
PORT=$(free_port)
start_ev "$PORT" "$T/ev1.log"
cat > "$T/http.lua" <<EOF
local w = require "weft"
w.mcp_server{ name = "ev", url = "http://127.0.0.1:$PORT/mcp", headers = { ["X-Weft-Test"] = "1" } }
return w.sequential{ name = "s",
  w.tool{ name = "e", server = "ev", tool = "echo", args = { message = "over http" }, output_key = "e" },
  w.tool{ name = "sc", server = "ev", tool = "get-structured-content", args = { location = "Chicago" },
          output_key = "sc" },
  w.tool{ name = "lr", server = "ev", tool = "trigger-long-running-operation",
          args = { duration = 1, steps = 4 }, output_key = "lr" },
  w.agent{ name = "a", model = "scripted",
    tools = { w.mcp("ev", { only = { "get-tiny-image", "get-resource-links", "get-resource-reference", "get-sum" } }) },
    script = function(req, n)
      if n == 1 then return { tool_calls = {
        { name = "get-tiny-image", args = {} },
        { name = "get-resource-links", args = { count = 2 } },
        { name = "get-resource-reference", args = { resourceType = "Text", resourceId = 2 } },
        { name = "get-sum", args = { a = "x", b = 1 } } } } end
      local out = {}
      for _, m in ipairs(req.messages) do if m.role == "tool" then out[#out + 1] = m.content end end
      return { text = table.concat(out, "\n") }
    end },
}
EOF
run_weft "$T/out" "$T/err" run "$T/http.lua" --workers 1
expect_rc 0 "HTTP workflow"
id=$(run_id "$T/out")
[ "$(sql "SELECT json_extract(payload,'$.value') FROM events WHERE run_id='$id' AND kind='state.write' AND json_extract(payload,'$.key')='e'")" = "Echo: over http" ] ||
	fail "echo over HTTP"
[ "$(sql "SELECT json_extract(payload,'$.value.conditions') FROM events WHERE run_id='$id' AND kind='state.write' AND json_extract(payload,'$.key')='sc'")" = "Light rain / drizzle" ] ||
	fail "structuredContent becomes the tool node's output"
ok "HTTP: tool results and structuredContent"
[ "$(sql "SELECT group_concat(json_extract(payload,'$.progress') || '/' || json_extract(payload,'$.total'), ' ') FROM (SELECT payload FROM events WHERE run_id='$id' AND kind='tool.progress' ORDER BY seq)")" = "1/4 2/4 3/4 4/4" ] ||
	fail "4 progress notifications recorded as tool.progress, in order"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='tool.progress' AND node_path='s/lr'")" = 4 ] ||
	fail "progress events on the step's node path"
[ "$(sql "SELECT min(p.seq) > max(c.seq) FROM events p, events c WHERE p.run_id='$id' AND c.run_id='$id' AND p.kind='tool.result' AND p.node_path='s/lr' AND c.kind='tool.progress'")" = 1 ] ||
	fail "progress is recorded before the result"
ok "HTTP: progress notifications in the trajectory"
expect_grep "$T/out" '^\[image content: image/png, [0-9]+ bytes of base64\]' "image block shown to the model"
expect_grep "$T/out" '^\[resource link: .* <demo://resource/dynamic/text/2>' "resource_link block"
expect_grep "$T/out" '^Resource 2: This is a plaintext resource' "embedded text resource"
expect_grep "$T/out" '^ERROR: .*Invalid arguments for tool get-sum' "isError result is a tool error the agent sees"
ok "HTTP: every content block type; isError as a tool error"
[ "$(grep -c 'Session initialized' "$T/ev1.log")" = 1 ] || fail "one session for the whole run"
grep -q 'Establishing new SSE stream' "$T/ev1.log" || fail "the server's GET stream is opened"
ok "HTTP: one session, GET stream"

# --- A server that forgot our session: a new one, and the call goes through
cat > "$T/reinit.lua" <<EOF
local w = require "weft"
w.mcp_server{ name = "ev", url = "http://127.0.0.1:$PORT/mcp" }
w.mcp_server{ name = "clock", command = { "$WEFT_TESTSERVER" }, sandbox = false }
return w.sequential{ name = "s",
  w.tool{ name = "e1", server = "ev", tool = "echo", args = { message = "one" }, output_key = "e1" },
  w.tool{ name = "nap", server = "clock", tool = "sleep", args = { ms = 2500 } },
  w.tool{ name = "e2", server = "ev", tool = "echo", args = { message = "two" }, output_key = "e2" },
}
EOF
"$WEFT" run "$T/reinit.lua" --workers 1 >"$T/out" 2>"$T/err" &
wpid=$!
i=0
until [ "$(sql "SELECT count(*) FROM events WHERE kind='tool.result' AND node_path='s/e1'" 2>/dev/null)" = 1 ]; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "first call over HTTP never finished"
	sleep 0.05
done
stop_ev
start_ev "$PORT" "$T/ev2.log"
RC=0
wait $wpid || RC=$?
expect_rc 0 "run across a server restart"
expect_grep "$T/out" '^Echo: two$' "the call after the restart is answered"
[ "$(grep -c 'Session initialized' "$T/ev2.log")" = 1 ] || fail "a new session on the new server"
ok "HTTP: a forgotten session is initialised again and the call resent"
stop_ev

# --- Version negotiation and liveness, with a scripted stdio server
cat > "$T/pysrv.py" <<'EOF'
import json, sys
mode, version = sys.argv[1], sys.argv[2]
for line in sys.stdin:
    m = json.loads(line)
    meth, rid = m.get("method"), m.get("id")
    if meth == "initialize":
        r = {"protocolVersion": version, "capabilities": {"tools": {}},
             "serverInfo": {"name": "py", "version": "1"}}
    elif meth == "tools/list":
        r = {"tools": [{"name": "hang", "inputSchema": {"type": "object"}},
                       {"name": "hi", "inputSchema": {"type": "object"}}]}
    elif meth == "tools/call" and m["params"]["name"] == "hi":
        r = {"content": [{"type": "text", "text": "hi from " + version}]}
    else:
        continue  # hung: never answers calls, nor pings
    print(json.dumps({"jsonrpc": "2.0", "id": rid, "result": r}), flush=True)
EOF
cat > "$T/old.lua" <<EOF
local w = require "weft"
w.mcp_server{ name = "old", command = { "python3", "$T/pysrv.py", "ok", "2024-11-05" }, sandbox = false }
return w.tool{ name = "hi", server = "old", tool = "hi" }
EOF
run_weft "$T/out" "$T/err" run "$T/old.lua" --workers 1 -q
expect_rc 0 "a 2024-11-05 server over stdio"
expect_grep "$T/out" 'hi from 2024-11-05' "older revision accepted"
sed 's/2024-11-05/1999-01-01/' "$T/old.lua" > "$T/bad.lua"
run_weft "$T/out" "$T/err" run "$T/bad.lua" --workers 1 -q
expect_rc 1 "an unknown revision"
expect_grep "$T/err" "MCP server 'old' answered initialize with protocol revision '1999-01-01', which this client does not speak" "unknown revision refused clearly"
ok "version negotiation"
cat > "$T/hung.lua" <<EOF
local w = require "weft"
w.mcp_server{ name = "hung", command = { "python3", "$T/pysrv.py", "hung", "2025-11-25" }, sandbox = false, ping = 0.5 }
return w.tool{ name = "h", server = "hung", tool = "hang" }
EOF
run_weft "$T/out" "$T/err" run "$T/hung.lua" --workers 1 -q
expect_rc 1 "a hung server"
expect_grep "$T/err" "MCP server 'hung' did not answer a ping within 500 ms" "ping finds a hung server"
ok "ping as a liveness check"

# --- stdio: server-filesystem and server-memory, sandboxed
mkdir -p "$T/files" "$T/mem"
echo "tides rise twice a day" > "$T/files/note.txt"
cat > "$T/fs.lua" <<EOF
local w = require "weft"
w.mcp_server{ name = "fs", command = { "$NM/mcp-server-filesystem", "$T/files" },
              sandbox = { write = { "$T/files" } } }
w.mcp_server{ name = "mem", command = { "$NM/mcp-server-memory" },
              env = { MEMORY_FILE_PATH = "$T/mem/memory.jsonl" }, sandbox = { write = { "$T/mem" } } }
return w.sequential{ name = "s",
  w.tool{ name = "read", server = "fs", tool = "read_text_file", args = { path = "$T/files/note.txt" },
          output_key = "note" },
  w.tool{ name = "write", server = "fs", tool = "write_file",
          args = { path = "$T/files/copy.txt", content = "copied: {note}" } },
  w.tool{ name = "remember", server = "mem", tool = "create_entities",
          args = { entities = { { name = "tides", entityType = "fact", observations = { "twice a day" } } } } },
  w.tool{ name = "recall", server = "mem", tool = "search_nodes", args = { query = "tides" }, output_key = "found" },
  w.agent{ name = "a", model = "scripted", tools = { w.mcp("fs", { only = { "read_text_file" } }) },
    script = function(req, n)
      if n == 1 then return { tool_calls = { { name = "read_text_file", args = { path = "/etc/passwd" } } } } end
      return { text = req.messages[#req.messages].content }
    end },
}
EOF
run_weft "$T/out" "$T/err" run "$T/fs.lua" --workers 1
expect_rc 0 "filesystem and memory servers"
id=$(run_id "$T/out")
[ "$(cat "$T/files/copy.txt")" = 'copied: {"content":"tides rise twice a day\n"}' ] || {
	cat "$T/files/copy.txt" >&2; fail "server-filesystem wrote the file"; }
grep -q '"name":"tides"' "$T/mem/memory.jsonl" || fail "server-memory stored the entity"
[ "$(sql "SELECT json_extract(payload,'$.value.entities[0].observations[0]') FROM events WHERE run_id='$id' AND kind='state.write' AND json_extract(payload,'$.key')='found'")" = "twice a day" ] ||
	fail "memory search result (structuredContent) in the state"
expect_grep "$T/out" '^ERROR: .*(denied|outside)' "a path outside the allowed directories is a tool error"
ok "stdio: server-filesystem and server-memory"

# --- Pagination, list_changed, JSON-RPC errors (in-tree test server)
cat > "$T/lc.lua" <<EOF
local w = require "weft"
w.mcp_server{ name = "t", command = { "$WEFT_TESTSERVER", "--page-size", "3" } }
local function names(tools) local t = {} for _, x in ipairs(tools) do t[#t + 1] = x end table.sort(t) return table.concat(t, ",") end
return w.agent{ name = "a", model = "scripted", tools = { w.mcp("t") },
  script = function(req, n)
    if n == 1 then return { tool_calls = { { name = "late", args = {} }, { name = "rpcerror", args = {} } } } end
    if n == 2 then return { tool_calls = { { name = "grow", args = {} } } } end
    if n == 3 then return { tool_calls = { { name = "late", args = {} } } } end
    local out = { "tools: " .. names(req.tools) }
    for _, m in ipairs(req.messages) do if m.role == "tool" then out[#out + 1] = m.content end end
    return { text = table.concat(out, "\n") }
  end }
EOF
run_weft "$T/out" "$T/err" run "$T/lc.lua" --workers 1
expect_rc 0 "list_changed workflow"
id=$(run_id "$T/out")
expect_grep "$T/out" "^ERROR: tool 'late' does not exist" "late is not offered at first"
expect_grep "$T/out" "^ERROR: MCP server 't' answered error -32603: tool exploded" "a JSON-RPC error is a tool error the agent sees"
expect_grep "$T/out" '^late tool here$' "late is offered after the list changed"
expect_grep "$T/out" '^tools: add,crash,echo,fail,grow,late,malformed,noop,rpcerror,sleep$' "every page listed"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='tool.list_changed' AND json_extract(payload,'$.server')='t'")" = 1 ] ||
	fail "tool.list_changed recorded"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='tool.list'")" = 2 ] || fail "listed again after the change"
ok "pagination, list_changed, JSON-RPC error"

# --- A call past the server's timeout is cancelled at the server
cat > "$T/to.lua" <<EOF
local w = require "weft"
w.mcp_server{ name = "slow", command = { "$WEFT_TESTSERVER", "--log", "$T/slow.log" }, timeout = 0.5,
              sandbox = { write = { "$T" } } }
return w.tool{ name = "nap", server = "slow", tool = "sleep", args = { ms = 20000 } }
EOF
run_weft "$T/out" "$T/err" run "$T/to.lua" --workers 1 -q
expect_rc 1 "a call past its timeout"
expect_grep "$T/err" "MCP server 'slow' did not answer tools/call within the attempt's timeout of 0.5 s.*gave up after 3 attempts" "timeout named (retried, then given up)"
expect_grep "$T/slow.log" '^notifications/cancelled \{"requestId":[0-9]+,"reason":' "the server got notifications/cancelled"
id=$(last_run)
[ "$(sql "SELECT json_extract(payload,'$.error.kind') FROM events WHERE run_id='$id' AND kind='tool.error'")" = timeout ] ||
	fail "tool.error of kind timeout"
ok "timeout cancels the call (notifications/cancelled)"

# --- Validation, and servers from a host config file
cat > "$T/v.lua" <<EOF
local w = require "weft"
w.mcp_server{ name = "r", url = "http://127.0.0.1:1/mcp",
  sandbox = { network = true } }
return w.tool{ name = "x", server = "r", tool = "echo" }
EOF
run_weft "$T/out" "$T/err" run "$T/v.lua"
expect_rc 2 "url with sandbox"
expect_grep "$T/err" "v.lua:2: mcp_server 'r': sandbox applies to a command server, not to a url one" "url + sandbox refused with file:line"
cat > "$T/v2.lua" <<EOF
local w = require "weft"
w.mcp_server{ name = "r", url = "ftp://x" }
return w.tool{ name = "x", server = "r", tool = "echo" }
EOF
run_weft "$T/out" "$T/err" run "$T/v2.lua"
expect_rc 2 "bad url"
expect_grep "$T/err" "v2.lua:2: mcp_server 'r': url must be an http:// or https:// URL" "bad url refused"
PORT=$(free_port)
start_ev "$PORT" "$T/ev3.log"
cat > "$T/servers.json" <<EOF
{ "mcpServers": {
    "everything": { "url": "http://127.0.0.1:$PORT/mcp" },
    "memory": { "command": "$NM/mcp-server-memory", "env": { "MEMORY_FILE_PATH": "$T/mem/cfg.jsonl" } } } }
EOF
cat > "$T/cfg.lua" <<EOF
local w = require "weft"
local s = w.mcp_config("servers.json", { sandbox = { write = { "$T/mem" } } })
return w.sequential{ name = "s",
  w.tool{ name = "e", server = s.everything, tool = "echo", args = { message = "from the config" } },
  w.tool{ name = "m", server = "memory", tool = "read_graph" } }
EOF
run_weft "$T/out" "$T/err" run "$T/cfg.lua" --workers 1 -q
expect_rc 0 "servers from a config file"
expect_grep "$T/out" '"entities"' "the memory server from the config answered"
id=$(last_run)
[ "$(sql "SELECT json_extract(payload,'$.result.content[0].text') FROM events WHERE run_id='$id' AND kind='tool.result' AND node_path='s/e'")" = "Echo: from the config" ] ||
	fail "the HTTP server from the config answered"
ok "validation; w.mcp_config"
stop_ev
expect_no_orphans
