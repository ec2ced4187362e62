-- A researcher served as an A2A agent (docs/a2a.md):
--   weft serve examples/a2a/researcher.lua --listen 127.0.0.1:8765
-- Its card is at http://127.0.0.1:8765/.well-known/agent-card.json.  The
-- model is scripted, so it runs offline.
local w = require "weft"

return w.workflow{
  name = "researcher",
  description = "Finds three facts about a topic.",
  input_schema = { type = "object", properties = { topic = { type = "string" } }, required = { "topic" } },
  w.agent{ name = "find", model = "scripted", output_key = "facts",
    instruction = "List three facts about the topic.",
    script = function(req)
      local topic = req.messages[#req.messages].content:match('"topic":"([^"]*)"') or "it"
      return { text = string.format("1. %s are old. 2. %s are studied. 3. %s change.", topic, topic, topic) }
    end },
}
