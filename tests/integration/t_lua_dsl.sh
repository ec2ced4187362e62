#!/bin/sh
# t_lua_dsl.sh: the DSL's load-time errors through the real Lua engine
# (`weft validate`): w.mcp_config's config file errors, field errors and
# whole-graph errors, each naming the workflow's file and line.  The
# modules' own behaviour is unit-tested in tests/unit/lua_modules.lua.
. "$WEFT_SRCDIR/tests/integration/lib.sh"

# check_err LINE MESSAGE LUA...: a workflow whose line LINE is wrong.
check_err() {
	_line=$1 _msg=$2
	shift 2
	printf '%s\n' "$@" >"$T/flow.lua"
	run_weft "$T/out" "$T/err" validate "$T/flow.lua"
	expect_rc 2 "$_msg"
	grep -Fq "flow.lua:$_line: $_msg" "$T/err" || {
		cat "$T/err" >&2
		fail "expected 'flow.lua:$_line: $_msg'"
	}
}

HEAD='local w = require "weft"'
TAIL='return w.sequential{ w.fn{ name = "f", run = function() end } }'

check_err 2 "w.mcp_config: cannot read $T/nope.json: No such file" \
    "$HEAD" 'w.mcp_config("nope.json")' "$TAIL"
ok "a missing config file, resolved beside the workflow"

printf '{"mcpServers": ' >"$T/trunc.json"
check_err 3 "w.mcp_config: $T/trunc.json is not a JSON object" \
    "$HEAD" "" 'w.mcp_config("trunc.json")' "$TAIL"
ok "a config file that is not JSON"

printf '{"servers": 3}' >"$T/nolist.json"
check_err 2 "w.mcp_config: $T/nolist.json has no /mcpServers object" \
    "$HEAD" 'w.mcp_config("nolist.json")' "$TAIL"
ok "a config file without mcpServers"

printf '{"mcpServers": {"fs": {"command": ["ls"]}}}' >"$T/cmd.json"
check_err 2 "w.mcp_config: $T/cmd.json: /mcpServers/fs/command must be a string" \
    "$HEAD" 'w.mcp_config("cmd.json")' "$TAIL"
ok "a server entry of the wrong shape names its JSON pointer"

printf '{"mcpServers": {"fs": {"command": "ls"}}}' >"$T/ok.json"
check_err 2 "w.mcp_config: unknown option 'sandbx' (sandbox, timeout, retry, idempotent, ping, only, servers) (did you mean 'sandbox'?)" \
    "$HEAD" 'w.mcp_config("ok.json", { sandbx = false })' "$TAIL"
ok "a misspelt option gets a hint"

printf '%s\n' "$HEAD" 'local s = w.mcp_config("ok.json")' \
    'return w.agent{ name = "a", model = "openai:m", tools = { w.mcp(s.fs) } }' \
    >"$T/flow.lua"
run_weft "$T/out" "$T/err" validate "$T/flow.lua"
expect_rc 0 "a good config file"
ok "a good config file declares its servers"

check_err 3 "unknown field 'ouput_key' in agent 'a' (did you mean 'output_key'?)" \
    "$HEAD" 'return w.sequential{' \
    '  w.agent{ name = "a", model = "openai:m", ouput_key = "x" } }'
ok "a misspelt field names the line of its node"

check_err 3 "agent 'c' is offered w.exit_loop but is not inside a w.loop" \
    "$HEAD" 'return w.sequential{' \
    '  w.agent{ name = "c", model = "openai:m", tools = { w.exit_loop } } }'
ok "a whole-graph error names the line of its node"
