-- test_embedded_resource: a resource embedded in the tool result.
local w = require "weft"

return w.workflow{
  name = "test_embedded_resource",
  description = "Returns an embedded text resource",
  output_format = "mcp",
  w.fn{ name = "resource", function(ctx)
    return { content = { { type = "resource", resource = {
      uri = "test://embedded-resource", mimeType = "text/plain",
      text = "This is an embedded resource content." } } } }
  end },
}
