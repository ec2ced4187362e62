-- test_tool_with_progress: a request with _meta.progressToken gets one
-- notifications/progress per recorded step of the run.
local w = require "weft"

return w.workflow{
  name = "test_tool_with_progress",
  description = "Runs three steps and reports progress",
  w.fn{ name = "first", function(ctx) ctx.state.done = 1 end },
  w.fn{ name = "second", function(ctx) ctx.state.done = 2 end },
  w.fn{ name = "third", function(ctx) return "Progress test completed" end },
}
