-- test_sampling: the workflow asks the model of the MCP client that
-- called it (sampling/createMessage) through w.mcp_client().
local w = require "weft"

local client = w.mcp_client()

return w.workflow{
  name = "test_sampling",
  description = "Asks the calling client's model to answer a prompt",
  input_schema = { type = "object", properties = { prompt = { type = "string" } }, required = { "prompt" } },
  w.tool{ name = "ask", server = client, tool = "sample", args = { prompt = "{prompt}", max_tokens = 100 },
          output_key = "answer" },
  w.fn{ name = "answer", function(ctx) return "LLM response: " .. tostring(ctx.state.answer) end },
}
