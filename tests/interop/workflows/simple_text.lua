-- The conformance suite's test_simple_text: a workflow whose output is a
-- string becomes one text block.
local w = require "weft"

return w.workflow{
  name = "test_simple_text",
  description = "Returns a simple text response",
  input_schema = { type = "object", properties = {} },
  w.fn{ name = "answer", function(ctx)
    return "This is a simple text response for testing."
  end },
}
