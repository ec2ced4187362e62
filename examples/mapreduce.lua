-- mapreduce.lua: a research map-reduce.  A planner splits the topic into
-- questions (a list known only at run time), a map runs one researcher per
-- question, at most three at once, and a writer combines their notes.
--
-- Every agent runs on the "scripted" provider, so this example runs
-- offline and gives the same answer every time: the planner and the
-- researchers are Lua functions, the writer's turns come from the JSON
-- file next to this one.  Swap model = "scripted" for a real provider
-- ("openai:gpt-4o-mini") and drop the scripts to run it for real.
--
--   weft run examples/mapreduce.lua --input '{"topic":"tides"}'

local w = require "weft"

local planner = w.agent{ name = "planner", model = "scripted",
  instruction = "Split research on {topic} into three questions. Answer with a JSON list of strings.",
  output_schema = { type = "array", items = { type = "string" } },
  output_key = "questions",
  script = function(req)
    local topic = req.state.topic
    return { text = string.format('["What causes %s?", "How are %s measured?", "Where are %s largest?"]',
                                  topic, topic, topic) }
  end }

local researcher = w.agent{ name = "researcher", model = "scripted",
  instruction = "Answer question {index} of the plan: {question}. Be brief.",
  input = "{question}",
  script = function(req)
    return { text = string.format("Note %d: about '%s'.", req.state.index, req.state.question) }
  end }

local writer = w.agent{ name = "writer", model = "scripted",
  instruction = "Write a short report on {topic} from these notes: {notes}",
  input = "{notes}",
  script = "mapreduce.turns.json" }

return w.sequential{ name = "research",
  planner,
  w.map{ name = "investigate", over = "questions", as = "question", concurrency = 3,
         output_key = "notes", researcher },
  writer,
}
