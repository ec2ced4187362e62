-- weft.model: model calls.  The scripted provider answers an agent from
-- its script at once, offline; a real model is asked through the gateway
-- (the coroutine yields the request, the coordinator answers it).

local core, raise, copy_list, state_proxy, stats = ...
local type, tostring, ipairs, pairs, next, select = type, tostring, ipairs, pairs, next, select
local error, pcall, setmetatable, getmetatable = error, pcall, setmetatable, getmetatable
local string, table, math, coroutine = string, table, math, coroutine

local script_pos = {}     -- agent node -> turns consumed

-- The scripted provider: answers from the agent's script, offline.
local function scripted_call(req)
  local n, ctx = req.node, req.ctx
  local pos = (script_pos[n] or 0) + 1
  script_pos[n] = pos
  local turn
  if type(n.script) == "function" then
    local ok, t = pcall(n.script, { messages = req.messages, tools = copy_list(req.tools),
                                    state = state_proxy(ctx) }, pos)
    if not ok then raise(ctx, "scripted model: %s", tostring(t)) end
    turn = t
  else
    turn = n.script[pos]
    if turn == nil then
      raise(ctx, "scripted model has no turn %d (its script has %d)", pos, #n.script)
    end
  end
  if type(turn) ~= "table" or (type(turn.text) ~= "string" and type(turn.tool_calls) ~= "table") then
    raise(ctx, "scripted turn %d must be { text = \"...\" } or { tool_calls = {...} }", pos)
  end
  return turn, pos
end

-- One model turn: the scripted provider answers at once, so request and
-- answer are one "model.call" event.  The conversation is encoded once:
-- each turn encodes only its new messages, and the input size (for the
-- bytes / 4 token estimate) accumulates in req.conv.
local function model_call(req)
  local n, ctx, conv = req.node, req.ctx, req.conv
  n.model_text = n.model_text or core.json_encode(n.model)
  local new = core.array({})
  for i = req.recorded + 1, #req.messages do new[#new + 1] = req.messages[i] end
  local jok, newtxt = pcall(core.json_encode, new)
  if not jok then
    raise(ctx, "the conversation is not JSON: %s", select(2, core.json_check(new)))
  end
  conv.bytes = conv.bytes + #newtxt
  local turn, pos = scripted_call(req)
  local calls
  if turn.tool_calls then
    calls = {}
    for i, c in ipairs(turn.tool_calls) do
      calls[i] = { id = c.id or string.format("call_%d_%d", pos, i), name = c.name,
                   args = c.args or {} }
    end
    calls = core.array(calls)
  end
  local resp = { text = turn.text, tool_calls = calls,
                 stop_reason = calls and "tool_use" or "final" }
  local rok, resptxt = pcall(core.json_encode, resp)
  if not rok then
    raise(ctx, "scripted turn %d is not JSON: %s", pos, select(2, core.json_check(resp)))
  end
  -- Usage as if tokens were counted: bytes / 4, so budgets work offline.
  local input_tokens = (conv.bytes + 3) // 4
  local output_tokens = (#resptxt + 3) // 4
  resp.usage = { input_tokens = input_tokens, output_tokens = output_tokens }
  core.event_json("model.call", ctx.span, ctx.parent_span or 0, ctx.path, 0, string.format(
    '{"messages":%s,"model":%s,"provider":"scripted","response":%s,"tools":%s,"turn":%d,' ..
    '"usage":{"input_tokens":%d,"output_tokens":%d}}',
    newtxt, n.model_text, resptxt, conv.toolstxt, req.turn,
    input_tokens, output_tokens), input_tokens + output_tokens, 0)
  stats.model_calls = stats.model_calls + 1
  stats.steps = stats.steps + 1
  stats.tokens = stats.tokens + input_tokens + output_tokens
  stats.scripted = true
  ctx.tokens = (ctx.tokens or 0) + input_tokens + output_tokens
  return resp
end



-- Options of an agent's model calls (JSON text for the gateway), made once.
local function model_opts(n)
  if n.model_opts then return n.model_opts end
  local o = { chain = core.array(n.chain), temperature = n.temperature }
  if n.stream ~= nil then o.stream = n.stream end
  if n.retry then
    o.retry = { max_attempts = n.retry.max_attempts,
                initial_ms = n.retry.initial_interval and math.floor(n.retry.initial_interval * 1000),
                max_ms = n.retry.max_interval and math.floor(n.retry.max_interval * 1000) }
  end
  if n.timeout then o.timeout_ms = math.floor(n.timeout * 1000) end
  if n.stall_timeout then o.stall_ms = math.floor(n.stall_timeout * 1000) end
  n.model_opts = core.json_encode(o)
  return n.model_opts
end

-- Ask the model for a turn.  Returns the response, or nil and an error
-- table { kind, message, context_overflow }.
local function ask_model(req)
  local r = coroutine.yield(req)
  if r.ok ~= nil then                         -- scripted: answered at once
    if not r.ok then error(r.res, 0) end
    return r.res
  end
  local x = r[1]
  if x.err then return nil, x.err end
  local resp, u = x.result, x.result.usage or {}
  local tokens = (u.input_tokens or 0) + (u.output_tokens or 0) +
                 (u.cache_read_tokens or 0) + (u.cache_write_tokens or 0)
  stats.model_calls = stats.model_calls + 1
  stats.steps = stats.steps + 1
  stats.tokens = stats.tokens + tokens
  stats.cost = stats.cost + (resp.cost or 0)
  req.ctx.tokens = (req.ctx.tokens or 0) + tokens
  req.ctx.cost = (req.ctx.cost or 0) + (resp.cost or 0)
  if resp.tool_calls and #resp.tool_calls == 0 then resp.tool_calls = nil end
  return resp
end

return { call = model_call, opts = model_opts, ask = ask_model }
