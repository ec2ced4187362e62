-- A workflow that calls the served researcher (docs/a2a.md): once as a
-- w.remote node, once through a writer agent that has it as a tool.
--   weft serve examples/a2a/researcher.lua --listen 127.0.0.1:8765 &
--   weft run examples/a2a/caller.lua --input '{"topic":"tides"}'
local w = require "weft"
local URL = "http://127.0.0.1:8765/a2a/researcher"

-- The same agent as a tool of the writer (not placed in the graph).
local ask = w.remote{ name = "ask_researcher", agent = URL,
                      description = "Ask the researcher about a topic; it answers with facts." }

return w.sequential{ name = "caller",
  w.remote{ name = "research", agent = URL, input = "{topic}", output_key = "facts", timeout = 60 },
  w.agent{ name = "writer", model = "scripted", tools = { w.a2a(ask) }, output_key = "article",
    instruction = "Write one paragraph from these facts: {facts}",
    script = function(req, turn)
      if turn == 1 then
        return { tool_calls = { { name = "ask_researcher", args = { message = "moons" } } } }
      end
      return { text = "An article. From the node: " .. req.messages[1].content ..
                      " From the tool: " .. req.messages[#req.messages].content }
    end },
}
