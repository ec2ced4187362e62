-- json_schema_2020_12_tool: the input schema is advertised as written,
-- with keywords ($defs, $ref) that weft does not check itself; such
-- arguments reach the workflow unchecked (docs/mcp.md).
local w = require "weft"

return w.workflow{
  name = "json_schema_2020_12_tool",
  description = "Tool with JSON Schema 2020-12 features",
  input_schema = {
    ["$schema"] = "https://json-schema.org/draft/2020-12/schema",
    type = "object",
    ["$defs"] = {
      address = { type = "object", properties = { street = { type = "string" }, city = { type = "string" } } },
    },
    properties = {
      name = { type = "string" },
      address = { ["$ref"] = "#/$defs/address" },
    },
    additionalProperties = false,
  },
  w.fn{ name = "echo", function(ctx) return "hello " .. tostring(ctx.input.name) end },
}
