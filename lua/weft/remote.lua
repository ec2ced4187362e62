-- weft.remote: a w.remote node's run (docs/a2a.md): the message built
-- from the state, sent as one a2a.send task on a worker, its answer the
-- node's output.  The coordinator never talks to the agent itself.

local core, h = ...
local type, tostring, ipairs, pairs, pcall, error = type, tostring, ipairs, pairs, pcall, error
local setmetatable, coroutine, table, string = setmetatable, coroutine, table, string

local sent = {}           -- node path -> messages sent from it
-- Agent cards, read once per run (an a2a.send task named "card", recorded
-- and so answered from the record on a resume or a replay): agent URL ->
-- { card } or { waiters } while it is read.
local cards = {}

-- Call take(parts) for the parts of an answer: the direct message's,
-- else each artifact's.
local function each_parts(res, take)
  if type(res.message) == "table" then
    take(res.message.parts)
  else
    for _, a in ipairs(res.artifacts or {}) do take(a.parts) end
  end
end

-- The data parts of an answer.
local function data_parts(res)
  local out = {}
  each_parts(res, function(parts)
    for _, p in ipairs(parts or {}) do
      if type(p) == "table" and p.data ~= nil then out[#out + 1] = p.data end
    end
  end)
  return out
end

-- The answer's file parts as references: bytes sent inline become a blob
-- of the store ({ name, mediaType, size, blob = SHA-256 }); a file given
-- by its uri stays one ({ name, mediaType, uri }).
local function files_of(n, ctx, res)
  local out = {}
  each_parts(res, function(parts)
    for _, p in ipairs(parts or {}) do
      local f = type(p) == "table" and p.file
      if type(f) == "table" then
        local ref = { name = f.name, mediaType = f.mediaType }
        if type(f.bytes) == "string" then
          local hash, size = core.blob(f.bytes)
          if not hash then
            h.raise_kind(ctx, "protocol", "remote agent '%s': file '%s': %s", n.name,
                         tostring(f.name or "(unnamed)"), tostring(size))
          end
          ref.blob, ref.size = hash, size
        else
          ref.uri = f.uri
        end
        out[#out + 1] = ref
      end
    end
  end)
  return out
end

-- The node's output: the answer's text, else its data (one part as it
-- is, several as a list); with files, { text, data, files }.
local function output_of(n, ctx, res)
  local d, files = data_parts(res), files_of(n, ctx, res)
  local text = type(res.text) == "string" and res.text ~= "" and res.text or nil
  if #files > 0 then
    return { text = text, data = #d == 1 and d[1] or (#d > 1 and core.array(d) or nil),
             files = core.array(files) }
  end
  if text then return text end
  if #d == 1 then return d[1] end
  if #d > 1 then return core.array(d) end
  return ""
end

-- The message's text and data parts from the node's input.
local function message_of(n, ctx)
  if ctx.call_input then
    -- Offered as a tool (w.a2a): the model's { message = ... }.
    local ok, v = pcall(core.json_decode, ctx.call_input)
    if ok and type(v) == "table" and type(v.message) == "string" then return v.message end
    return ctx.call_input
  elseif type(n.input) == "function" then
    -- Workflow code runs after a commit, as a fn node's does.
    coroutine.yield(h.COMMIT)
    local v = n.input({ state = h.state_proxy(ctx), path = ctx.path, input = h.run_input() })
    if type(v) == "string" then return v end
    if type(v) == "table" then return nil, v end
    h.raise(ctx, "remote '%s': input function returned %s (a string or a table)", n.name, type(v))
  elseif type(n.input) == "string" then
    return h.render(ctx, "input", n.input)
  end
  return h.input_text()
end

-- The server spec of remote n's tasks.
local function server_of(n, ctx)
  local server = { name = n.name, agent = n.agent, policy = h.deadline_policy(ctx, n.policy),
                   max_response = n.max_response, stream_seconds = n.stream_seconds }
  if n.headers then
    server.headers = {}
    for k, v in pairs(n.headers) do server.headers[k] = v end
  end
  if server.policy and server.policy.timeout then server.timeout = server.policy.timeout.attempt end
  if n.idempotent ~= nil then
    server.policy = server.policy or {}
    server.policy.idempotent = n.idempotent
  end
  -- The secret is read by the coordinator as the task is sent; only the
  -- variable's name is here, and neither is recorded.
  if n.auth then server.bearer_env = n.auth.bearer_env end
  return server
end

-- The card of remote n's agent, read once per run; concurrent callers
-- wait for the first.  A failed read is not kept: the next caller tries.
local function card_of(n, ctx)
  local c = cards[n.agent]
  if c and c.card then return c.card end
  if c then
    c.waiters[#c.waiters + 1] = coroutine.running()
    coroutine.yield({ op = "park" })
    if c.card then return c.card end
    h.raise_kind(ctx, c.err.kind, "%s", c.err.message)
  end
  c = { waiters = {} }
  cards[n.agent] = c
  local ok, r = pcall(function()
    return h.call_tasks({ { kind = "a2a.send", path = ctx.path, span = ctx.span, grant = ctx.grant,
                            params = { server = server_of(n, ctx), name = "card" } } })[1]
  end)
  if not ok then
    c.err = { message = type(r) == "table" and r.msg or tostring(r) }
  elseif r.err then
    c.err = { kind = r.err.kind, message = string.format("remote agent '%s': its card: %s",
                                                          n.name, tostring(r.err.message)) }
  else
    c.card = r.result
  end
  if not c.card then cards[n.agent] = nil end
  for _, co in ipairs(c.waiters) do h.wake(co) end
  c.waiters = {}
  if not ok then error(r, 0) end
  if c.err then h.raise_kind(ctx, c.err.kind, "%s", c.err.message) end
  return c.card
end

-- The description of remote n as an agent's tool (w.a2a without one):
-- its agent card's description and skills.
local function describe(n, ctx)
  local card = card_of(n, ctx)
  local out = { string.format("Send a message to the remote agent '%s'", n.name) }
  if type(card.name) == "string" and card.name ~= "" then out[1] = out[1] .. " (" .. card.name .. ")" end
  out[1] = out[1] .. "; it answers with text or JSON."
  if type(card.description) == "string" and card.description ~= "" then
    out[#out + 1] = card.description
  end
  local skills = {}
  for _, sk in ipairs(type(card.skills) == "table" and card.skills or {}) do
    local name = type(sk.name) == "string" and sk.name or sk.id
    if type(name) == "string" then
      skills[#skills + 1] = "- " .. name .. (type(sk.description) == "string" and sk.description ~= "" and
                                              (": " .. sk.description) or "")
    end
  end
  if #skills > 0 then out[#out + 1] = "Its skills:\n" .. table.concat(skills, "\n") end
  return table.concat(out, "\n")
end

local function run(n, ctx)
  local server = server_of(n, ctx)
  server.card = card_of(n, ctx)
  local text, data = message_of(n, ctx)
  -- The message's number at this path: with the run and the path it
  -- makes the messageId, the same when a resume sends it again.
  sent[ctx.path] = (sent[ctx.path] or 0) + 1
  local args = { text = text, data = data, n = sent[ctx.path] }
  if n.context_id then args.contextId = h.render(ctx, "context_id", n.context_id) end
  local rsv = ctx.env and h.budget_reserve(ctx, { tool_calls = 1 })
  local r = h.call_tasks({ { kind = "a2a.send", path = ctx.path, span = ctx.span, grant = ctx.grant,
                             params = { server = server, name = "send", arguments = args } } })[1]
  h.stats.tool_calls = h.stats.tool_calls + 1
  h.stats.steps = h.stats.steps + 1
  if rsv then h.budget_settle(ctx, rsv, { tool_calls = 1 }) end
  if r.err then
    h.raise_kind(ctx, r.err.kind, "remote agent '%s': %s", n.name, tostring(r.err.message))
  end
  h.ev("remote.answer", ctx, { agent = n.agent, protocol = r.result.protocol,
                                task = r.result.task, messageId = r.result.messageId })
  return output_of(n, ctx, r.result)
end

return setmetatable({ card = card_of, describe = describe }, { __call = function(_, n, ctx)
  return run(n, ctx)
end })
