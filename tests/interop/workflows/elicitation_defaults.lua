-- test_elicitation_sep1034_defaults: an elicitation whose schema gives a
-- default for every primitive type (SEP-1034).
local w = require "weft"

local client = w.mcp_client()

return w.workflow{
  name = "test_elicitation_sep1034_defaults",
  description = "Asks the calling client's user, with defaults for every field",
  w.tool{ name = "ask", server = client, tool = "elicit", output_key = "reply",
          args = { message = "Please review these defaults", schema = {
            type = "object",
            properties = {
              name = { type = "string", description = "User name", default = "John Doe" },
              age = { type = "integer", description = "User age", default = 30 },
              score = { type = "number", description = "User score", default = 95.5 },
              status = { type = "string", description = "User status",
                         enum = { "active", "inactive", "pending" }, default = "active" },
              verified = { type = "boolean", description = "Verification status", default = true },
            },
          } } },
  w.fn{ name = "answer", function(ctx)
    local r = ctx.state.reply
    return "Elicitation completed: action=" .. tostring(r.action) ..
           ", content={name=" .. tostring(r.content and r.content.name) .. "}"
  end },
}
