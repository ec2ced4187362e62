-- test_tool_with_logging: the client sets a level with logging/setLevel,
-- and every step of the run reaches it as a notifications/message.
local w = require "weft"

return w.workflow{
  name = "test_tool_with_logging",
  description = "Runs three steps; each is logged to the client",
  w.fn{ name = "start", function(ctx) ctx.state.log = { "Tool execution started" } end },
  w.fn{ name = "process", function(ctx) ctx.state.step = "Tool processing data" end },
  w.fn{ name = "finish", function(ctx) return "Tool execution completed" end },
}
