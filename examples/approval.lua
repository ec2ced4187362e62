-- approval.lua: a plan, a person's approval, then the deploy step.
--
-- The planner runs on the "scripted" provider, so this example runs
-- offline.  The run stops at the approval: on a terminal `weft run` asks
-- there; without one it exits with status 6 (waiting) and says how to
-- answer:
--
--   weft run examples/approval.lua --input '{"service":"billing"}'
--   weft approve RUN --answer '{"env":"staging"}'    (or: weft reject RUN --reason ...)
--   weft resume RUN
--
-- The answer is recorded: `weft replay RUN` answers the approval the same
-- way.  Unanswered for 24 hours, the approval is rejected (on_timeout).

local w = require "weft"

local planner = w.agent{ name = "planner", model = "scripted",
  instruction = "Plan the rollout of {service}.",
  output_key = "plan",
  script = function(req)
    return { text = "roll out " .. req.state.service .. " to 10%, then 100%" }
  end }

return w.sequential{ name = "release",
  planner,
  w.approval{ name = "go", prompt = "Deploy {plan}?",
    schema = { type = "object", required = { "env" },
               properties = { env = { type = "string", enum = { "staging", "prod" } } } },
    timeout = "24h", on_timeout = "reject", output_key = "decision" },
  w.fn{ name = "deploy", function(ctx)
    local d = ctx.state.decision
    if not d.approved then return "not deployed: " .. tostring(d.reason) end
    return "deployed " .. ctx.state.service .. " to " .. d.answer.env
  end },
}
