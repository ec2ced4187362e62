-- weft.budget: budget envelopes (docs/budgets.md): open, reserve, settle,
-- the limits left as text for a prompt, the failure a crossed limit raises.

local core, ev, ERR = ...

local type, tostring, ipairs, pairs, next, select = type, tostring, ipairs, pairs, next, select
local error, pcall, setmetatable, getmetatable = error, pcall, setmetatable, getmetatable
local string, table, math, coroutine = string, table, math, coroutine

-- An envelope per node that declares `budget` (and one for the run, from
-- --budget).  Every model or tool call reserves its worst case in its own
-- envelope and in every enclosing one before it is dispatched; the
-- reservation fails if any of them would go over its limit.  When the call
-- returns, the reservation is replaced by what was really spent.  Since
-- reservations are made one at a time on the one loop, parallel branches
-- can never spend more than an enclosing limit, whatever their own say.

local DIMS = { "input_tokens", "output_tokens", "tokens", "usd", "model_calls",
               "tool_calls" }

local function num(x)
  if x == nil then return "?" end
  if x == math.floor(x) and math.abs(x) < 1e15 then return string.format("%d", math.floor(x)) end
  return string.format("%.6g", x)
end

-- What crossing env's limit does: its on_exceed, else its nearest
-- enclosing envelope's, else "fail".
local function on_exceed_of(env)
  while env do
    if env.on_exceed then return env.on_exceed end
    env = env.parent
  end
  return "fail"
end

local function budget_fail(ctx, env, dim, limit, spent, want)
  local b = { dimension = dim, node = env.path ~= "" and env.path or "(run)", limit = limit,
              spent = spent, requested = want,
              carved_from = env.carved and env.carved[dim] or nil,
              on_exceed = on_exceed_of(env) }
  ev("budget.exceeded", ctx, b)
  ctx.stop = "budget_exceeded"
  local e = setmetatable({ path = ctx.path, kind = ctx.kind, budget = b,
    msg = string.format("budget %s: %s of %s: limit %s%s, spent %s%s",
                        b.on_exceed == "pause" and "reached, run paused" or "exceeded", dim, b.node,
                        num(limit), b.carved_from and
                          (" (what " .. b.carved_from .. " had left when it started)") or "",
                        num(spent),
                        want and string.format(", this step needs up to %s", num(want)) or "") },
    ERR)
  error(e, 0)
end

-- The status a node or run ends with after error e.
local function budget_status(e)
  if not e.budget then return "failed" end
  return e.budget.on_exceed == "pause" and "paused" or "budget_exceeded"
end

-- Time and depth limits of every enclosing envelope.
local function budget_check_time(ctx)
  local now = core.mono()
  local env = ctx.env
  while env do
    if env.limits.seconds and now - env.start > env.limits.seconds then
      budget_fail(ctx, env, "seconds", env.limits.seconds,
                  math.floor((now - env.start) * 1000) / 1000)
    end
    env = env.parent
  end
end

-- Reserve amounts (dimension -> number) in every enclosing envelope.
local function budget_reserve(ctx, amounts)
  if not ctx.env then return nil end
  budget_check_time(ctx)
  local env = ctx.env
  while env do
    for _, d in ipairs(DIMS) do
      local a, lim = amounts[d], env.limits[d]
      if a and lim and env.spent[d] + env.reserved[d] + a > lim + 1e-12 then
        budget_fail(ctx, env, d, lim, env.spent[d], a)
      end
    end
    env = env.parent
  end
  env = ctx.env
  while env do
    for d, a in pairs(amounts) do env.reserved[d] = env.reserved[d] + a end
    env = env.parent
  end
  ev("budget.reserve", ctx, amounts)
  return amounts
end

-- Replace a reservation by what was spent; fail if a limit was crossed.
local function budget_settle(ctx, rsv, spent)
  if not rsv then return end
  local env, over = ctx.env, nil
  while env do
    for d, a in pairs(rsv) do env.reserved[d] = env.reserved[d] - a end
    for d, a in pairs(spent) do
      env.spent[d] = env.spent[d] + a
      if not over and env.limits[d] and env.spent[d] > env.limits[d] + 1e-12 then
        over = { env, d }
      end
    end
    env = env.parent
  end
  ev("budget.settle", ctx, spent)
  if over then budget_fail(ctx, over[1], over[2], over[1].limits[over[2]], over[1].spent[over[2]]) end
end

-- A new envelope for a node with a budget, carved out of what its
-- parent has left.
local function budget_open(ctx, limits, parent_env)
  local env = { path = ctx.path, limits = {}, spent = {}, reserved = {}, parent = parent_env,
                start = core.mono(), depth0 = ctx.depth or 0 }
  for _, d in ipairs(DIMS) do env.spent[d], env.reserved[d] = 0, 0 end
  for k, v in pairs(limits) do
    if k == "on_exceed" then env.on_exceed = v else env.limits[k] = v end
  end
  local p = parent_env
  while p do
    for _, d in ipairs(DIMS) do
      local lim = p.limits[d]
      if lim then
        local left = lim - p.spent[d] - p.reserved[d]
        if not env.limits[d] or left < env.limits[d] then
          env.limits[d] = left
          env.carved = env.carved or {}
          env.carved[d] = p.path ~= "" and p.path or "the run"
        end
      end
    end
    p = p.parent
  end
  ev("budget.envelope", ctx, { limits = env.limits, declared = limits })
  return env
end

-- What is left of every limit that applies to ctx, as one line for a prompt.
local function budget_text(ctx)
  local left = {}
  local env = ctx.env
  while env do
    for _, d in ipairs(DIMS) do
      local lim = env.limits[d]
      if lim then
        local l = lim - env.spent[d] - env.reserved[d]
        if left[d] == nil or l < left[d] then left[d] = l end
      end
    end
    env = env.parent
  end
  local parts = {}
  for _, d in ipairs(DIMS) do
    if left[d] then
      parts[#parts + 1] = d == "usd" and string.format("$%.4f", math.max(left[d], 0))
                          or string.format("%s %s", num(math.max(left[d], 0)), d:gsub("_", " "))
    end
  end
  if #parts == 0 then return nil end
  return "Remaining budget for this task: " .. table.concat(parts, ", ") ..
         ". Finish within it; a step that does not fit is refused."
end

-- Worst case of one model call: every input byte a token (no tokenizer
-- packs more), the whole output limit, at the dearest price of the chain.
local function model_reserve(n, ctx, input_bytes, max_tokens)
  if not ctx.env then return nil end
  local r = { model_calls = 1, input_tokens = input_bytes, output_tokens = max_tokens,
              tokens = input_bytes + max_tokens }
  if n.chain then
    local worst = 0
    for _, m in ipairs(n.chain) do
      local p = core.price(m)
      if p then
        worst = math.max(worst, input_bytes * math.max(p.input, p.cache_write or 0) +
                                max_tokens * p.output)
      end
    end
    r.usd = worst / 1e6
  else
    r.usd = 0
  end
  return budget_reserve(ctx, r)
end

local function usage_spent(u, cost)
  u = u or {}
  local i = (u.input_tokens or 0) + (u.cache_read_tokens or 0) + (u.cache_write_tokens or 0)
  local o = u.output_tokens or 0
  return { model_calls = 1, input_tokens = i, output_tokens = o, tokens = i + o, usd = cost or 0 }
end
return { DIMS = DIMS, num = num, fail = budget_fail, status = budget_status,
  check_time = budget_check_time, reserve = budget_reserve, settle = budget_settle,
  open = budget_open, text = budget_text, model_reserve = model_reserve,
  usage_spent = usage_spent }
