-- test_error_handling: a failed run is a tool result with isError = true.
local w = require "weft"

return w.workflow{
  name = "test_error_handling",
  description = "Always fails",
  w.fn{ name = "fail", function(ctx)
    error("This tool intentionally returns an error for testing", 0)
  end },
}
