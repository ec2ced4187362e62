-- weft.runner: executes a validated graph on coroutines.
--
-- Every node runs inside a coroutine.  A node that needs the outside world
-- yields a request: {op="tasks"} (tool calls, run by workers; the
-- coordinator delivers results with R.deliver), {op="model"} (a model
-- call), {op="join"} (parallel branches, each its own coroutine),
-- {op="park"} (waiting for another coroutine's tool list) or
-- {op="commit"} (go on in the next round, after a commit).  The
-- coordinator calls R.pump() after it has committed the events that the
-- graph is about to act on; pump resumes what is ready and returns 0 when
-- everything waits, 1 when another round is ready, 2 when the run ended.

local core, w = ...
-- The standard functions this file calls, as locals: an upvalue is read
-- directly, a global is a table lookup at every call.
local type, tostring, ipairs, pairs, next, select = type, tostring, ipairs, pairs, next, select
local error, pcall, setmetatable, getmetatable = error, pcall, setmetatable, getmetatable
local string, table, math, coroutine = string, table, math, coroutine
local I = w._internal

local R = {}
-- Coroutines to resume and the values to resume them with, as pairs in
-- one flat list (co1, val1, co2, val2, ...; n counts the slots): no table
-- per resume.
local ready, nextwave = { n = 0 }, { n = 0 }
local waiting = {}        -- ticket -> { group, index }
-- Tickets in waiting, and how many of them are approvals: when they are
-- all approvals the run waits for people (R.pump returns 3).
local nwait, napprovals = 0, 0
local joins = {}          -- branch coroutine -> { join, index }
local main, finished, outcome, run_root
local span_seq = 0
local run_input
local run_input_text
local stats = { steps = 0, tokens = 0, cost = 0.0, model_calls = 0, tool_calls = 0, scripted = false }
-- The node each coroutine is running: w.now() and w.random() are recorded
-- (and answered on replay) under it.  run_node removes its entry when the
-- node ends (not a weak table: the collector would traverse it at every
-- cycle, and a wide parallel holds thousands of coroutines).
local co_path = {}
function I.current_path() return co_path[coroutine.running()] or "" end

-- Errors are tables so a failure keeps the node where it happened.
local ERR = {}
local function raise(ctx, fmt, ...)
  local msg = select("#", ...) > 0 and string.format(fmt, ...) or fmt
  error(setmetatable({ path = ctx.path, kind = ctx.kind, msg = msg }, ERR), 0)
end
-- The same with a failure kind (timeout, lost_worker, ...): what a retry
-- policy looks at.
local function raise_kind(ctx, failure, fmt, ...)
  local msg = select("#", ...) > 0 and string.format(fmt, ...) or fmt
  error(setmetatable({ path = ctx.path, kind = ctx.kind, msg = msg, failure = failure }, ERR), 0)
end
-- An error that is not a raise(): from workflow code (it names its
-- file:line) or from the library, whose embedded bytecode has no line
-- information (lua/luadump.c) unless WEFT_LUA_DEBUG=1: say so.
local function as_err(e, ctx)
  if getmetatable(e) == ERR then return e end
  local msg = tostring(e)
  local lib = msg:match("^%?:%-1: (.*)$")
  if lib then
    msg = "weft library: " .. lib .. " (WEFT_LUA_DEBUG=1 names the line)"
  end
  return setmetatable({ path = ctx and ctx.path or "", kind = ctx and ctx.kind or "run",
                        msg = msg }, ERR)
end

local function push(list, co, val)
  local k = list.n + 2
  list.n = k
  list[k - 1], list[k] = co, val
end

local function copy_list(t)
  local c = {}
  for i = 1, #t do c[i] = t[i] end
  return c
end

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks, function(a, b) return tostring(a) < tostring(b) end)
  return ks
end

local function ev(kind, ctx, payload, tokens)
  return core.event(kind, ctx.span or 0, ctx.parent_span or 0, ctx.path or "", 0,
                    payload, tokens or 0, 0)
end

-- w.escalate: fail upward, recorded; no map collects it, no retry retries it.
local function escalate(ctx, reason)
  reason = tostring(reason or "escalated")
  ev("escalate", ctx, { by = ctx.path, reason = reason })
  error(setmetatable({ path = ctx.path, kind = ctx.kind, msg = "escalated: " .. reason,
                      escalated = true }, ERR), 0)
end

-- Write a state key; nil and why when the value cannot be JSON.
local function write_state(ctx, key, value)
  local ok, err = core.state_set(ctx.state, key, value)
  if not ok then return nil, err end
  ev("state.write", ctx, { key = key, value = value })
  return true
end

-- A table that reads and writes the run state as a node sees it.
local function state_proxy(ctx)
  return setmetatable({}, {
    __index = function(_, k) return core.state_get(ctx.state, k) end,
    __newindex = function(_, k, v)
      if type(k) ~= "string" then error("state keys are strings", 2) end
      local ok, err = write_state(ctx, k, v)
      if not ok then error(string.format("state key '%s': %s", k, err), 2) end
    end,
  })
end

local function render(ctx, what, tmpl)
  local s, err = core.render(tmpl, ctx.state)
  if s == nil then raise(ctx, "%s: %s", what, err) end
  return s
end

-- A task's execution policy: the server's, with a tool node's fields over
-- it (the coordinator reads it from the spec; docs/workflows.md).
local function task_policy(sp, np)
  if not sp and not np then return nil end
  local p = { timeout = {}, retry = {} }
  for _, src in ipairs({ sp or {}, np or {} }) do
    for k, v in pairs(src.timeout or {}) do p.timeout[k] = v end
    for k, v in pairs(src.retry or {}) do p.retry[k] = v end
    if src.idempotent ~= nil then p.idempotent = src.idempotent end
  end
  return p
end

-- The spec of a server for a task; a server's own (no node policy over
-- it) is made once and shared by its tasks, which only read it.
local spec_cache = {}
local function server_spec(name, node_policy)
  if not node_policy and spec_cache[name] then return spec_cache[name] end
  local s = I.servers[name]
  local policy = task_policy(s.policy, node_policy)
  local timeout = policy and policy.timeout.attempt or s.timeout
  local spec
  if s.url then
    spec = { name = s.name, url = s.url, transport = s.transport, headers = s.headers, timeout = timeout,
             ping = s.ping, policy = policy, on = s.on, keep = s.keep }
  else
    spec = { name = s.name, command = core.array(s.command), npm = s.npm, args = s.args, bin = s.bin,
             env = s.env, cwd = s.cwd,
             sandbox = s.sandbox, state = s.state, timeout = timeout, ping = s.ping, policy = policy, on = s.on,
             keep = s.keep }
  end
  if not node_policy then spec_cache[name] = spec end
  return spec
end

-- Text of an MCP tools/call result for a model: text blocks as they are,
-- embedded text resources, a note for each binary block or link, and
-- structuredContent as JSON when no block carries text.
local function block_text(b)
  local t = b.type
  if t == "text" then return tostring(b.text) end
  if t == "resource" and type(b.resource) == "table" then
    local r = b.resource
    if r.text then return tostring(r.text) end
    return string.format("[embedded resource %s (%s, %d bytes of base64)]", tostring(r.uri),
                         tostring(r.mimeType or "binary"), type(r.blob) == "string" and #r.blob or 0)
  end
  if t == "image" or t == "audio" then
    return string.format("[%s content: %s, %d bytes of base64]", t, tostring(b.mimeType),
                         type(b.data) == "string" and #b.data or 0)
  end
  if t == "resource_link" then
    return string.format("[resource link: %s <%s>%s]", tostring(b.name or b.title or ""), tostring(b.uri),
                         type(b.description) == "string" and (" " .. b.description) or "")
  end
  return "[" .. tostring(t) .. " content]"
end

local function result_text(r)
  local parts, texts = {}, 0
  if type(r) == "table" and type(r.content) == "table" then
    for _, b in ipairs(r.content) do
      if type(b) == "table" then
        parts[#parts + 1] = block_text(b)
        if b.type == "text" then texts = texts + 1 end
      end
    end
  end
  if texts == 0 and type(r) == "table" and r.structuredContent ~= nil then
    table.insert(parts, 1, core.json_encode(r.structuredContent))
  end
  return table.concat(parts, "\n")
end

local COMMIT = { op = "commit" }

local function call_tasks(list)
  return coroutine.yield({ op = "tasks", list = list })
end

-- A node policy's deadline over a task's: the task's total timeout cut to
-- the time the enclosing nodes have left (nil when none has a timeout).
local function deadline_policy(ctx, np)
  if not ctx.deadline then return np end
  local left = ctx.deadline - core.mono()
  if left <= 0 then raise_kind(ctx, "timeout", "the node's timeout passed") end
  local p = { timeout = {}, retry = np and np.retry, idempotent = np and np.idempotent }
  for k, v in pairs(np and np.timeout or {}) do p.timeout[k] = v end
  p.timeout.total = math.min(p.timeout.total or left, left)
  return p
end

-- MCP tool lists and agents' tools: lua/weft/tools.lua.
local remote_describe     -- lua/weft/remote.lua's, once it is loaded (below)
local T = core.module("weft.tools", core, w, raise, ERR, ev,
  function(co) push(ready, co, nil) end, call_tasks, server_spec,
  function(n, ctx) return remote_describe(n, ctx) end)
local list_tools, check_tool, note_tools_changed = T.list_tools, T.check_tool, T.note_tools_changed
local resolve_tools, tools_epoch = T.resolve_tools, T.epoch

local exec = {}
local run_node

-- Model calls: lua/weft/model.lua, loaded by the first model call (a
-- graph without agents does without it, as without the agent loop).
local M
local function model_module()
  M = M or core.module("weft.model", core, raise, copy_list, state_proxy, stats)
  return M
end
local function model_call(...) return model_module().call(...) end
local function model_opts(...) return model_module().opts(...) end
local function ask_model(...) return model_module().ask(...) end



-- Budgets: lua/weft/budget.lua.
local B = core.module("weft.budget", core, ev, ERR)
local budget_fail, budget_status, budget_check_time = B.fail, B.status, B.check_time
local budget_reserve, budget_settle, budget_open = B.reserve, B.settle, B.open
local budget_text, model_reserve, usage_spent = B.text, B.model_reserve, B.usage_spent


-- The agent loop: lua/weft/agent.lua, loaded by the first agent node: a
-- graph without agents keeps its 30 KB out of every Lua state (a served
-- call is a Lua state of its own).
local load_agent = function() return core.module("weft.agent", core, w, {
  ev = ev, raise = raise, render = render, copy_list = copy_list,
  ERR = ERR, ask_model = ask_model, result_text = result_text,
  call_tasks = call_tasks, server_spec = server_spec, stats = stats,
  resolve_tools = resolve_tools, tools_epoch = tools_epoch,
  note_tools_changed = note_tools_changed, budget_text = budget_text,
  budget_reserve = budget_reserve, budget_settle = budget_settle,
  model_reserve = model_reserve, usage_spent = usage_spent,
  input_text = function() return run_input_text end,
  raise_kind = raise_kind, escalate = escalate, deadline_policy = deadline_policy,
  agent_tool_call = function(...) return exec.agent_tool_call(...) end,
  transfer = function(...) return exec.transfer(...) end,
}) end
function exec.agent(n, ctx)
  exec.agent = load_agent()
  return exec.agent(n, ctx)
end

-- An agent offered as a tool (w.agent_tool), called by the model: a child
-- node under the caller's path, on a fork of the state, in its own budget
-- envelope within the caller's.  Its answer, or its error, goes back to
-- the model as the tool result; an escalation or a budget stop goes up.
function exec.agent_tool_call(ctx, b, tc, args)
  local child = b.node
  local cctx = { state = core.state_fork(ctx.state), path = ctx.path, span = ctx.span,
                 grant = ctx.grant, iteration = ctx.iteration, kind = ctx.kind, env = ctx.env,
                 depth = ctx.depth, deadline = ctx.deadline, call_for = child,
                 call_input = type(args.request) == "string" and args.request or core.json_encode(args) }
  if b.budget then
    cctx.path = ctx.path .. "/" .. child.name    -- the envelope is the child's
    cctx.env = budget_open(cctx, b.budget, ctx.env)
    cctx.path = ctx.path
  end
  ev("agent_tool.call", ctx, { tool = tc.name, call_id = tc.id, node = ctx.path .. "/" .. child.name })
  local ok, out = pcall(run_node, child, cctx)
  if not ok then
    local e = as_err(out, ctx)
    if e.escalated or e.budget then error(e, 0) end
    return "ERROR: the agent '" .. child.name .. "' failed: " .. e.msg
  end
  if type(out) ~= "string" then out = core.json_encode(out) end
  return out
end

-- A transfer to a sub-agent: it goes on with the conversation, under the
-- caller's path, and its answer is the caller's.  Transfers along one
-- chain are counted; beyond the first agent's max_transfers the agent fails.
function exec.transfer(n, ctx, a)
  local target = a.transfer
  local count = (ctx.transfers or 0) + 1
  local limit = ctx.transfer_limit or n.max_transfers or 4
  ev("agent.transfer", ctx, { from = n.name, to = target.name, count = count, limit = limit })
  if count > limit then
    ctx.stop = "transfer_limit"
    raise(ctx, "transfer to '%s' refused: %d transfers in one conversation (max_transfers = %d)",
          target.name, count, limit)
  end
  ctx.stop = "transfer"
  local out, sig = run_node(target, { state = ctx.state, path = ctx.path, span = ctx.span,
    grant = ctx.grant, iteration = ctx.iteration, kind = ctx.kind, env = ctx.env,
    depth = ctx.depth, deadline = ctx.deadline, handoff = a.messages, handoff_for = target,
    transfers = count, transfer_limit = limit })
  return out, sig or a.signal
end

function exec.sequential(n, ctx)
  local out
  for _, c in ipairs(n.children) do
    local o, sig = run_node(c, ctx)
    out = o
    if sig then return out, sig end
  end
  return out
end

function exec.loop(n, ctx)
  local out
  for i = 1, n.max_iterations do
    ev("loop.iteration", ctx, { iteration = i })
    local ictx = { state = ctx.state, path = ctx.path, span = ctx.span, grant = ctx.grant, iteration = i,
                   kind = ctx.kind, env = ctx.env, depth = ctx.depth, deadline = ctx.deadline }
    local sig
    for _, c in ipairs(n.children) do
      local o, s = run_node(c, ictx)
      out = o
      if s then sig = s break end
    end
    if sig then
      -- exit_loop is scoped: consumed here, never seen by outer loops.
      ev("loop.exit", ctx, { iteration = i, consumed_by = ctx.path, requested_by = sig.by })
      ctx.stop = "exit_loop"
      return out
    end
    if n["until"] then
      local ok, done = pcall(n["until"], state_proxy(ctx))
      if not ok then raise(ctx, "until: %s", tostring(done)) end
      if done then
        ctx.stop = "until"
        return out
      end
    end
  end
  ctx.stop = "max_iterations"
  return out
end

function exec.parallel(n, ctx)
  local states, fns, names = {}, {}, {}
  for i, c in ipairs(n.children) do
    local st = core.state_fork(ctx.state)
    states[i] = st
    names[i] = c.name
    local bctx = { state = st, path = ctx.path, span = ctx.span, grant = ctx.grant, iteration = ctx.iteration,
                   kind = ctx.kind, env = ctx.env, depth = ctx.depth, deadline = ctx.deadline }
    fns[i] = function() return table.pack(run_node(c, bctx)) end
  end
  local j = coroutine.yield({ op = "join", fns = fns, shared_env = ctx.env ~= nil })
  for i = 1, #fns do
    if j.errors[i] then error(j.errors[i], 0) end
  end
  local ok, err = core.state_merge(ctx.state, n.name, names, states, n.reducers or {})
  if not ok then raise(ctx, "%s", err) end
  local outputs, signal = {}, nil
  for i, c in ipairs(n.children) do
    local r = j.results[i]
    if r[1] ~= nil then outputs[c.name] = r[1] end
    signal = signal or r[2]
  end
  ev("state.merge", ctx, { branches = core.array(names) })
  return outputs, signal
end

local NULL = core.json_decode("null")

-- The list a map runs over: a state key's value or what over(state) gives.
local function map_list(n, ctx)
  local list
  if type(n.over) == "function" then
    coroutine.yield(COMMIT)     -- workflow code: see exec.fn
    local ok, r = pcall(n.over, state_proxy(ctx))
    if not ok then raise(ctx, "over: %s", getmetatable(r) == ERR and r.msg or tostring(r)) end
    list = r
    if type(list) ~= "table" then raise(ctx, "over returned %s, not a list", type(list)) end
  else
    list = core.state_get(ctx.state, n.over)
    if list == nil then raise(ctx, "over: state key '%s' is missing", n.over) end
    if type(list) ~= "table" then
      raise(ctx, "over: state key '%s' is %s, not a list", n.over, type(list))
    end
  end
  local k = next(list)
  if k ~= nil and #list == 0 then raise(ctx, "over: the value is an object, not a list") end
  return list
end

-- One branch per item, at most n.concurrency at once, each made when it
-- starts and gone when it ends: memory follows the concurrency, not the
-- list.  Item i runs under the path MAP/i (calls are matched by it on
-- resume and replay) on a fork of the map's state holding the item and
-- its index; only what a branch wrote is kept for the merge.
function exec.map(n, ctx)
  local list = map_list(n, ctx)
  local total, child, as = #list, n.children[1], n.as
  ev("map.start", ctx, { items = total, concurrency = n.concurrency, on_error = n.on_error })
  local writes, signals = {}, {}
  local function make(i)
    return function()
      local scope = core.state_fork(ctx.state)
      local ok, err = core.state_set(scope, as, list[i])
      if not ok then raise(ctx, "item %d is not JSON: %s", i, err) end
      core.state_set(scope, "index", i)
      local st = core.state_fork(scope)
      local bctx = { state = st, path = ctx.path .. "/" .. i, span = ctx.span, grant = ctx.grant,
                     iteration = ctx.iteration, kind = ctx.kind, env = ctx.env, depth = ctx.depth,
                     deadline = ctx.deadline }
      local out, sig = run_node(child, bctx)
      writes[i] = core.state_delta(st)
      signals[i] = sig
      return out
    end
  end
  local j = coroutine.yield({ op = "join", count = total, make = make, limit = n.concurrency,
                              failfast = n.on_error ~= "collect" })
  local out, failed = {}, 0
  for i = 1, total do
    local e = j.errors[i]
    if e and (n.on_error ~= "collect" or e.escalated) then error(e, 0) end
    if e then
      failed = failed + 1
      out[i] = { error = e.msg, index = i }
    else
      local r = j.results[i]
      if r == nil then r = NULL end
      out[i] = r
    end
  end
  -- What the items wrote merges in item order, by the map's reducers.
  local names, states = {}, {}
  for i = 1, total do
    local d = writes[i]
    if d then
      local f = core.state_fork(ctx.state)
      for _, k in ipairs(sorted_keys(d)) do core.state_set(f, k, d[k]) end
      names[#names + 1] = string.format("%s/%d", child.name, i)
      states[#states + 1] = f
    end
  end
  if #states > 0 then
    local ok, err = core.state_merge(ctx.state, n.name, names, states, n.reducers or {})
    if not ok then raise(ctx, "%s", err) end
    ev("state.merge", ctx, { branches = core.array(names) })
  end
  ev("map.end", ctx, { items = total, failed = failed })
  local signal
  for i = 1, total do signal = signal or signals[i] end
  return core.array(out), signal
end

function exec.fn(n, ctx)
  -- A round ends before workflow code computes, so what the run did so
  -- far (this node's start) is committed: the store's write lock is free
  -- while the function runs (weft cancel, show and runs open the store),
  -- and the coordinator serves signals first.  Branches of a parallel
  -- yield together: one round per wave.
  coroutine.yield(COMMIT)
  local api = { state = state_proxy(ctx), path = ctx.path, input = core.json_copy(run_input) }
  local r = n.run(api)
  if r == I.EXIT then return nil, { exit_loop = true, by = ctx.path } end
  if getmetatable(r) == I.ESCALATE then escalate(ctx, r.reason) end
  return r
end

-- w.approval: the question, rendered from the state, waits for its answer
-- (engine/approval.c); the answer is the node's output.
function exec.approval(n, ctx)
  local prompt = render(ctx, "prompt", n.prompt)
  local spec = core.json_encode({ prompt = prompt, schema = n.schema, timeout = n.timeout,
                                  on_timeout = n.on_timeout })
  local r = coroutine.yield({ op = "approval", ctx = ctx, spec = spec, prompt = prompt })[1]
  local a = r.result
  if r.err or type(a) ~= "table" then
    raise(ctx, "approval '%s': %s", n.name, r.err and tostring(r.err.message) or "no answer")
  end
  if a.timed_out and a.on_timeout == "fail" then
    raise_kind(ctx, "timeout", "approval '%s': no answer before the deadline (on_timeout = \"fail\")", n.name)
  end
  ctx.stop = a.timed_out and "timed_out" or a.approved and "approved" or "rejected"
  return a
end

-- Render string arguments of a tool node from the state, recursively.
local function render_args(ctx, v)
  if type(v) == "string" then return render(ctx, "args", v) end
  if type(v) ~= "table" then return v end
  local out = {}
  for _, k in ipairs(sorted_keys(v)) do out[k] = render_args(ctx, v[k]) end
  return out
end

function exec.tool(n, ctx)
  local c = list_tools(n.server, ctx)
  check_tool(ctx, c, n.server, n.tool)
  local args = render_args(ctx, n.args)
  local rsv = ctx.env and budget_reserve(ctx, { tool_calls = 1 })
  local r = call_tasks({ { kind = "mcp.call", path = ctx.path, span = ctx.span, grant = ctx.grant,
                           params = { server = server_spec(n.server, deadline_policy(ctx, n.policy)),
                                      name = n.tool,
                                      arguments = args } } })[1]
  stats.tool_calls = stats.tool_calls + 1
  stats.steps = stats.steps + 1
  if rsv then budget_settle(ctx, rsv, { tool_calls = 1 }) end
  if r.err then raise_kind(ctx, r.err.kind, "tool '%s': %s", n.tool, tostring(r.err.message)) end
  note_tools_changed(ctx, n.server, r.result)
  if r.result.isError then
    raise(ctx, "tool '%s' failed: %s", n.tool, result_text(r.result))
  end
  if r.result.structuredContent ~= nil then return r.result.structuredContent end
  return result_text(r.result)
end

-- Remote A2A agents (w.remote): lua/weft/remote.lua, loaded at the first
-- use, as the agent loop.
local remote_module
local function load_remote()
  remote_module = remote_module or core.module("weft.remote", core, {
  ev = ev, raise = raise, raise_kind = raise_kind, render = render, state_proxy = state_proxy,
  call_tasks = call_tasks, deadline_policy = deadline_policy, stats = stats, COMMIT = COMMIT,
  budget_reserve = budget_reserve, budget_settle = budget_settle,
  input_text = function() return run_input_text end,
  run_input = function() return core.json_copy(run_input) end,
  wake = function(co) push(ready, co, nil) end,
})
  return remote_module
end
function exec.remote(n, ctx)
  local R = load_remote()
  exec.remote = function(n2, ctx2) return R(n2, ctx2) end
  return R(n, ctx)
end
remote_describe = function(n, ctx) return load_remote().describe(n, ctx) end

-- A node's work and its output_key write, inside run_node's pcall.
local function run_body(n, ctx)
  local o, sig = exec[n.kind](n, ctx)
  if n.output_key and o ~= nil then
    local wok, werr = write_state(ctx, n.output_key, o)
    if not wok then
      raise(ctx, "%s: output for output_key '%s' is not JSON: %s", n.where,
            n.output_key, werr)
    end
  end
  return o, sig
end

-- Capability grants: lua/weft/grants.lua.
local G = core.module("weft.grants", core, w, raise)
local open_grant = G.open

-- Failure kinds a node's retry policy retries unless it names its own
-- (the tool calls' default, docs/workflows.md).
local RETRIED = { timeout = true, lost_worker = true, server_exited = true, transport = true,
                  rate_limited = true }

-- A node with retry or timeout: attempts until one succeeds, an error
-- that is not retried, or the attempts or the total time run out.  Each
-- attempt's deadline cuts the tool calls made under it (deadline_policy).
local function run_policy(n, ctx)
  local p = n.node_policy
  local t = p.timeout or {}
  local max = p.retry and p.retry.max_attempts or 1
  local on = RETRIED
  if p.retry and p.retry.on then
    on = {}
    for _, k in ipairs(p.retry.on) do on[k] = true end
  end
  local outer = ctx.deadline
  local total = t.total and core.mono() + t.total
  for attempt = 1, max do
    local dl = outer
    if total and (not dl or total < dl) then dl = total end
    if t.attempt and (not dl or core.mono() + t.attempt < dl) then dl = core.mono() + t.attempt end
    ctx.deadline = dl
    local ok, o, sig = pcall(run_body, n, ctx)
    ctx.deadline = outer
    if ok then return o, sig end
    local e = as_err(o, ctx)
    if e.failure == nil and dl and core.mono() >= dl then e.failure = "timeout" end
    if attempt == max or e.escalated or e.budget or not on[e.failure or ""] or
        (total and core.mono() >= total) then
      error(e, 0)
    end
    ev("node.retry", ctx, { attempt = attempt, error = e.msg, failure = e.failure })
  end
end

-- A node inside run_node's pcall: its envelope, limits, then its work.
local function node_body(n, ctx)
  open_grant(n, ctx)
  if n.budget then ctx.env = budget_open(ctx, n.budget, ctx.env) end
  local env = ctx.env
  if env then
    while env do
      if env.limits.depth and ctx.depth - (env.depth0 or 0) > env.limits.depth then
        budget_fail(ctx, env, "depth", env.limits.depth, ctx.depth - (env.depth0 or 0))
      end
      env = env.parent
    end
    budget_check_time(ctx)
  end
  if ctx.deadline and core.mono() >= ctx.deadline then
    raise_kind(ctx, "timeout", "the enclosing node's timeout passed before this node started")
  end
  if n.node_policy then return run_policy(n, ctx) end
  return run_body(n, ctx)
end

-- Run one node: record its span, run it, write its output_key.
function run_node(n, parent)
  local path = parent.path and (parent.path .. "/" .. n.name) or n.name
  span_seq = span_seq + 1
  local ctx = { state = parent.state, path = path, span = span_seq, parent_span = parent.span,
                iteration = parent.iteration, kind = n.kind, env = parent.env, grant = parent.grant,
                depth = (parent.depth or 0) + 1, deadline = parent.deadline }
  if parent.call_for == n then ctx.call_input = parent.call_input end
  if parent.handoff_for == n then
    ctx.handoff, ctx.transfers, ctx.transfer_limit = parent.handoff, parent.transfers,
      parent.transfer_limit
  end
  core.event_kv("node.start", ctx.span, parent.span or 0, path, 0,
                "iteration", parent.iteration, "kind", n.kind, "name", n.name)
  local t0 = core.mono()
  local co = coroutine.running()
  local outer = co_path[co]
  co_path[co] = path
  local ok, out, signal = pcall(node_body, n, ctx)
  co_path[co] = outer
  local dur = core.mono() - t0
  if not ok then
    local e = as_err(out, ctx)
    core.event("node.end", ctx.span, parent.span or 0, path, 0,
               { status = budget_status(e), error = e.msg,
                 duration = dur, stop = ctx.stop, tokens = ctx.tokens, cost = ctx.cost,
                 budget = e.budget }, 0, 0)
    error(e, 0)
  end
  core.event_kv("node.end", ctx.span, parent.span or 0, path, ctx.tokens or 0,
                "cost", ctx.cost, "duration", dur, "exit_loop", signal and true or nil,
                "status", "succeeded", "stop", ctx.stop, "tokens", ctx.tokens)
  if ctx.tokens and parent.kind then parent.tokens = (parent.tokens or 0) + ctx.tokens end
  if ctx.cost and parent.kind then parent.cost = (parent.cost or 0) + ctx.cost end
  return out, signal
end

-- Scheduler -------------------------------------------------------------

-- An offline replay runs at most this many branches of a parallel at a
-- time, starting the next as one ends.  Every call is answered from the
-- record at once, so running them all together overlaps no waiting; it
-- only keeps every branch's coroutine and conversation alive at once (a
-- parallel of 10,000 agents: about 70 MB, all of it traversed by the
-- collector).  Calls are matched by node path and call index, not by
-- order, so the outcome is usually the same.  Not always: what branches
-- share can make it depend on how many run at once (a tool list changed
-- by one branch, a hook counting calls across branches).  So a replay
-- that diverges this way is run again with every branch at once, as live
-- (engine/exec.c), and that verdict counts.  Under a budget envelope the
-- branches share they always run at once: every call reserves its worst
-- case while it runs, so how many run together decides which reservation
-- crosses the limit.
local OFFLINE_BRANCHES = 64

-- Start branch i of a join: its function from the list, or made now (a
-- map makes each item's branch when it starts, so only the running ones
-- exist).
local function start_branch(j, i)
  local c = coroutine.create(j.make and j.make(i) or j.fns[i])
  joins[c] = { join = j, i = i }
  j.n = j.n + 1
  j.next = i + 1
  push(ready, c, nil)
end

local function handle_yield(co, req)
  if type(req) ~= "table" then
    error("coroutine.yield is not available to workflow code", 0)
  end
  if req.op == "tasks" then
    local group = { co = co, n = #req.list, results = {} }
    for i, t in ipairs(req.list) do
      -- A task that cannot be sent (its arguments are not JSON) ends
      -- at once with that error, for its node to raise.
      local ok, ticket = pcall(core.submit, t.kind, t.path, t.span, t.params, t.grant)
      if ok then
        waiting[ticket] = { group = group, i = i }
        nwait = nwait + 1
      else
        group.results[i] = { err = { kind = "invalid", message = tostring(ticket) } }
        group.n = group.n - 1
      end
    end
    if group.n == 0 then push(ready, co, group.results) end
  elseif req.op == "model" then
    if req.node.chain then
      local ctx = req.ctx
      local ticket, err = core.model(ctx.path, ctx.span, ctx.parent_span or 0,
                                     model_opts(req.node), req.body)
      if not ticket then
        push(nextwave, co, { ok = false, res = as_err(err, ctx) })
      else
        waiting[ticket] = { group = { co = co, n = 1, results = {} }, i = 1 }
        nwait = nwait + 1
      end
    else
      local ok, res = pcall(model_call, req)
      push(nextwave, co, { ok = ok, res = res })
    end
  elseif req.op == "join" then
    -- fns: the branches; or count and make(i) (a map), limit: how many
    -- run at once, failfast: start no more once one failed.
    local fns = req.fns
    local total = req.count or #fns
    local j = { co = co, n = 0, results = {}, errors = {}, fns = fns, make = req.make,
                total = total, next = 1, failfast = req.failfast }
    local start = total
    if req.limit then
      start = math.min(total, req.limit)
    elseif start > OFFLINE_BRANCHES and not req.shared_env and core.may_bound() then
      start = OFFLINE_BRANCHES
    end
    for i = 1, start do start_branch(j, i) end
    if total == 0 then push(ready, co, j) end
  elseif req.op == "approval" then
    local ctx = req.ctx
    local ticket = core.approval(ctx.path, ctx.span, ctx.parent_span or 0, req.spec)
    waiting[ticket] = { group = { co = co, n = 1, results = {} }, i = 1, approval = req.prompt,
                        path = ctx.path }
    nwait, napprovals = nwait + 1, napprovals + 1
  elseif req.op == "commit" then
    push(nextwave, co, nil)
  elseif req.op ~= "park" then
    error("unknown runner request " .. tostring(req.op), 0)
  end
end

local function finish_co(co, ok, val)
  if co == main then
    finished = true
    outcome = { ok = ok, val = val }
    return
  end
  local jr = joins[co]
  if jr == nil then return end
  joins[co] = nil
  local j = jr.join
  if ok then
    j.results[jr.i] = val
  else
    j.errors[jr.i] = as_err(val)
    j.failed = true
  end
  j.n = j.n - 1
  if not ok and j.errors[jr.i].escalated then j.escalated = true end
  if j.next <= j.total and not (j.failfast and j.failed) and not j.escalated then
    start_branch(j, j.next)
  end
  if j.n == 0 then push(ready, j.co, j) end
end

function R.deliver(ticket, result, err)
  local wt = waiting[ticket]
  if wt == nil then return end
  waiting[ticket] = nil
  nwait = nwait - 1
  if wt.approval then napprovals = napprovals - 1 end
  local g = wt.group
  g.results[wt.i] = { result = result, err = err }
  g.n = g.n - 1
  if g.n == 0 and coroutine.status(g.co) ~= "dead" then push(ready, g.co, g.results) end
end

function R.pump()
  while ready.n > 0 do
    local batch = ready
    ready = { n = 0 }
    for k = 1, batch.n, 2 do
      local co = batch[k]
      local ok, done, req = core.resume(co, batch[k + 1])
      if not ok then
        finish_co(co, false, req)
      elseif done then
        finish_co(co, true, req)
      else
        local hok, herr = pcall(handle_yield, co, req)
        if not hok then finish_co(co, false, herr) end
      end
      if finished then return 2 end
    end
  end
  if nextwave.n > 0 then
    ready, nextwave = nextwave, { n = 0 }
    return 1
  end
  if napprovals > 0 and nwait == napprovals then return 3 end
  return 0
end

-- A USD limit over an agent whose model has no known price would count
-- its calls as free: refuse that before anything runs.
local function check_prices(n, usd_above)
  local usd = usd_above or (n.budget and n.budget.usd ~= nil)
  if n.kind == "agent" and usd and n.chain then
    for _, m in ipairs(n.chain) do
      if not core.price(m) then
        error(string.format("%s: agent '%s': model '%s' has no known price, and a USD budget applies to it; " ..
              "give one with w.provider{ name = ..., prices = { [\"%s\"] = { input = ..., output = ... } } }",
              n.where, n.name, m, m:match(":(.*)$")), 0)
      end
    end
  end
  for _, c in ipairs(n.children) do check_prices(c, usd) end
end

function R.start(root, input, budget)
  for _, name in ipairs(I.provider_order) do
    local decl = {}
    for k, v in pairs(I.providers[name]) do
      if k ~= "where" then decl[k] = v end
    end
    local ok, err = core.provider(decl)
    if not ok then error(I.providers[name].where .. ": " .. err, 0) end
  end
  check_prices(root, budget and budget.usd ~= nil)
  span_seq = core.span_base()   -- a resumed run's spans go on after its last
  run_input = input
  run_input_text = core.json_encode(input)
  local st = core.state_new(input)
  local grant = G.open_run(root, budget)
  run_root = root
  main = coroutine.create(function()
    local top = { state = st, path = "", depth = 0 }
    if budget then top.env = budget_open(top, budget, nil) end
    return run_node(root, { state = st, env = top.env, depth = 0, grant = grant })
  end)
  push(ready, main, nil)
  R.state = st
end

-- status, output, error message, stats
function R.result()
  if not finished and napprovals > 0 then
    local list = {}
    for _, wt in pairs(waiting) do
      if wt.approval then list[#list + 1] = string.format("'%s': %s", wt.path, wt.approval) end
    end
    table.sort(list)
    return "waiting", nil, "waiting for approval at " .. table.concat(list, "; "), stats
  end
  if not finished then return "running", nil, nil, stats end
  if outcome.ok then
    local ok, why = core.json_check(outcome.val)
    if ok then return "succeeded", outcome.val, nil, stats end
    return "failed", nil, string.format("%s '%s': the run's output is not JSON: %s",
                                        run_root.kind, run_root.name, why), stats
  end
  local e = as_err(outcome.val)
  local msg = e.path ~= "" and string.format("%s '%s': %s", e.kind or "node", e.path, e.msg)
              or e.msg
  return budget_status(e), nil, msg, stats
end

function R.final_state()
  return core.state_snapshot(R.state)
end

return R
