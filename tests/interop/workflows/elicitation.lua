-- test_elicitation: the workflow asks the user of the MCP client that
-- called it (elicitation/create) through w.mcp_client().
local w = require "weft"

local client = w.mcp_client()

-- "k=v, ..." of a flat table, in key order.
local function show(t)
  local keys, out = {}, {}
  for k in pairs(t or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do out[#out + 1] = k .. "=" .. tostring(t[k]) end
  return "{" .. table.concat(out, ", ") .. "}"
end

return w.workflow{
  name = "test_elicitation",
  description = "Asks the calling client's user for a name and an email address",
  input_schema = { type = "object", properties = { message = { type = "string" } }, required = { "message" } },
  w.tool{ name = "ask", server = client, tool = "elicit", output_key = "reply",
          args = { message = "{message}", schema = {
            type = "object",
            properties = {
              username = { type = "string", description = "User's response" },
              email = { type = "string", description = "User's email address" },
            },
            required = { "username", "email" },
          } } },
  w.fn{ name = "answer", function(ctx)
    local r = ctx.state.reply
    return "User response: action=" .. tostring(r.action) .. ", content=" .. show(r.content)
  end },
}
