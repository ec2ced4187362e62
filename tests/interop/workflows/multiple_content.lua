-- test_multiple_content_types: text, image and resource in one result.
local w = require "weft"

return w.workflow{
  name = "test_multiple_content_types",
  description = "Returns text, an image and an embedded resource",
  output_format = "mcp",
  w.fn{ name = "mixed", function(ctx)
    return { content = {
      { type = "text", text = "Multiple content types test:" },
      { type = "image", mimeType = "image/png", data = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC" },
      { type = "resource", resource = { uri = "test://mixed-content-resource",
        mimeType = "application/json", text = '{"test":"data","value":123}' } },
    } }
  end },
}
