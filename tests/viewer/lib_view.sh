# lib_view.sh: the run the viewer's tests look at (sourced after
# tests/integration/lib.sh by t_view.sh and t_view_browser.sh).

# view_flow_run: record a run with a tool call, hostile text in a tool
# result and a model answer, and two state writes; sets RUN.
view_flow_run() {
	{
		echo 'local w = require "weft"'
		testserver_decl
		cat <<'LUA'
return w.sequential{ name = "flow",
  w.agent{ name = "writer", model = "scripted", output_key = "answer",
    instruction = "Write.", tools = { w.mcp("test", { only = { "echo" } }) },
    script = { { tool_calls = { { name = "echo",
                 args = { message = "<img src=x onerror=alert(1)>" } } } },
               { text = "<script>window.__pwned = 1</script>done" } } },
  w.tool{ name = "second", server = "test", tool = "echo",
    args = { message = "two" }, output_key = "second" },
}
LUA
	} > "$T/flow.lua"
	run_weft "$T/out" "$T/err" run "$T/flow.lua" --input '{"topic":"x"}'
	[ "$RC" -eq 0 ] || { cat "$T/err" >&2; fail "the run failed"; }
	RUN=$(last_run)
}
