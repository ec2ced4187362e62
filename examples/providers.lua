-- providers.lua: one agent on a real LLM, with a fallback chain.
--
--   ANTHROPIC_API_KEY=... weft run examples/providers.lua --input '{"topic":"tides"}'
--   OPENAI_API_KEY=...    weft run examples/providers.lua --input '{"topic":"tides"}'
--   OPENAI_BASE_URL=http://127.0.0.1:11434/v1 weft run ...   (any OpenAI-compatible server)
--
-- The chain is tried in order: a provider whose key is not set is skipped,
-- one that keeps failing (rate limits, 5xx) hands over to the next.  The
-- answer must match output_schema; weft validates it and asks again with
-- the error if it does not.  `weft show RUN` lists every call with its
-- provider, tokens and cost.
local w = require "weft"

return w.agent{
  name = "explainer",
  model = { "anthropic:claude-haiku-4-5", "openai:gpt-4o-mini" },
  max_tokens = 1024,
  instruction = "Explain {topic} to a curious twelve-year-old. Be accurate and brief.",
  output_schema = {
    type = "object",
    required = { "title", "explanation", "key_facts" },
    properties = {
      title = { type = "string", maxLength = 80 },
      explanation = { type = "string" },
      key_facts = { type = "array", minItems = 2, maxItems = 5, items = { type = "string" } },
    },
    additionalProperties = false,
  },
  output_key = "explainer",
}
