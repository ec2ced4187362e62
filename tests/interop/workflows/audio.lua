-- test_audio_content: a tiny WAV file as an audio block.
local w = require "weft"

return w.workflow{
  name = "test_audio_content",
  description = "Returns a short silent WAV clip",
  output_format = "mcp",
  w.fn{ name = "audio", function(ctx)
    return { content = { { type = "audio", mimeType = "audio/wav",
      data = "UklGRigAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQQAAAAAAAAA" } } }
  end },
}
