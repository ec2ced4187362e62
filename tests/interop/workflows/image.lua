-- test_image_content: output_format = "mcp" makes the workflow's output
-- the MCP tool result itself, so a workflow can answer with images.
local w = require "weft"

return w.workflow{
  name = "test_image_content",
  description = "Returns a 1x1 red PNG image",
  output_format = "mcp",
  w.fn{ name = "image", function(ctx)
    return { content = { { type = "image", mimeType = "image/png",
      data = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC" } } }
  end },
}
