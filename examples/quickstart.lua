-- quickstart.lua: three research agents in parallel, each using tools of a
-- real MCP server (@modelcontextprotocol/server-everything, installed by
-- `npm ci` in the project root), then a writer and critic refining a draft
-- in a loop until the critic calls exit_loop.
--
-- The agents run on the "scripted" provider: their model turns come from
-- the scripts below, so this example runs offline and gives the same
-- answer every time.  The tool calls are real: they go to worker
-- processes, which call the MCP server.  Swap model = "scripted" for a real
-- provider ("openai:gpt-4o-mini") once providers land.
--
--   weft run examples/quickstart.lua --input '{"topic":"tides"}'

local w = require "weft"

w.mcp_server{
  name = "everything",
  command = { "../node_modules/.bin/mcp-server-everything", "stdio" },
}

-- The text of the last tool result an agent received.  A model gets each
-- result delimited as untrusted data: <tool_result tool="...">...</tool_result>.
local function last_tool_result(req)
  for i = #req.messages, 1, -1 do
    local m = req.messages[i]
    if m.role == "tool" then
      return m.content:match("^<tool_result[^>]*>\n(.*)\n</tool_result>$") or m.content
    end
  end
  return ""
end

local facts = w.agent{
  name = "facts",
  model = "scripted",
  instruction = "Collect key facts about {topic}.",
  tools = { w.mcp("everything", { only = { "echo" } }) },
  output_key = "facts",
  script = function(req, turn)
    if turn == 1 then
      return { tool_calls = { { name = "echo",
        args = { message = req.state.topic .. " rise and fall twice a day" } } } }
    end
    return { text = "Fact: " .. last_tool_result(req):gsub("^Echo: ", "") .. "." }
  end,
}

local conditions = w.agent{
  name = "conditions",
  model = "scripted",
  instruction = "Report current conditions that matter for {topic}.",
  tools = { w.mcp("everything", { only = { "get-structured-content" } }) },
  output_key = "conditions",
  script = function(req, turn)
    if turn == 1 then
      return { tool_calls = { { name = "get-structured-content", args = { location = "Chicago" } } } }
    end
    return { text = "Conditions (Chicago): " .. last_tool_result(req) }
  end,
}

local numbers = w.agent{
  name = "numbers",
  model = "scripted",
  instruction = "Work out the numbers on {topic}.",
  tools = { w.mcp("everything", { only = { "get-sum" } }) },
  output_key = "numbers",
  script = function(req, turn)
    if turn == 1 then
      -- two high tides plus two low tides a day
      return { tool_calls = { { name = "get-sum", args = { a = 2, b = 2 } } } }
    end
    return { text = "Tide turns per day: " .. last_tool_result(req) }
  end,
}

local writer = w.agent{
  name = "writer",
  model = "scripted",
  instruction = "Write a short note on {topic} from {facts} {conditions} {numbers}. Critique so far: {review?}",
  output_key = "draft",
  script = function(req, turn)
    local s = req.state
    local note = string.format("A note on %s. %s %s %s", s.topic, s.facts, s.numbers, s.conditions)
    if s.review then note = note .. " (revised after review)" end
    return { text = note }
  end,
}

local critic = w.agent{
  name = "critic",
  model = "scripted",
  instruction = "Review {draft}. Call exit_loop when it is good enough.",
  tools = { w.exit_loop },
  output_key = "review",
  script = {
    { text = "Needs a mention of the review process." },   -- iteration 1
    { tool_calls = { { name = "exit_loop" } } },            -- iteration 2
    { text = "Good enough." },
  },
}

return w.sequential{
  name = "essay",
  w.parallel{ name = "research", facts, conditions, numbers },
  w.loop{ name = "refine", max_iterations = 3, writer, critic },
  w.fn{ name = "publish", function(ctx) return ctx.state.draft end },
}
