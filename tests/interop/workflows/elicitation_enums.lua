-- test_elicitation_sep1330_enums: an elicitation with the five enum forms
-- of SEP-1330.
local w = require "weft"

local client = w.mcp_client()

return w.workflow{
  name = "test_elicitation_sep1330_enums",
  description = "Asks the calling client's user to pick from enums of every form",
  w.tool{ name = "ask", server = client, tool = "elicit", output_key = "reply",
          args = { message = "Please pick", schema = {
            type = "object",
            properties = {
              untitledSingle = { type = "string", enum = { "option1", "option2", "option3" } },
              titledSingle = { type = "string", oneOf = {
                { const = "value1", title = "First Option" },
                { const = "value2", title = "Second Option" },
                { const = "value3", title = "Third Option" } } },
              legacyEnum = { type = "string", enum = { "opt1", "opt2", "opt3" },
                             enumNames = { "Option One", "Option Two", "Option Three" } },
              untitledMulti = { type = "array", items = { type = "string", enum = { "option1", "option2", "option3" } } },
              titledMulti = { type = "array", items = { anyOf = {
                { const = "value1", title = "First Choice" },
                { const = "value2", title = "Second Choice" },
                { const = "value3", title = "Third Choice" } } } },
            },
          } } },
  w.fn{ name = "answer", function(ctx)
    return "Elicitation completed: action=" .. tostring(ctx.state.reply.action)
  end },
}
