-- weft.tools: the tools of MCP servers as agents see them: each server's
-- list (listed once per run, listed again when it changes) and each
-- agent's resolution of its tool sets, cached.

local core, w, raise, ERR, ev, wake, call_tasks, server_spec, remote_describe = ...

local type, tostring, ipairs, pairs, next, select = type, tostring, ipairs, pairs, next, select
local error, pcall, setmetatable, getmetatable = error, pcall, setmetatable, getmetatable
local string, table, math, coroutine = string, table, math, coroutine

local T = {}
local tool_cache = {}     -- server name -> { tools, byname, waiters, err }
local tools_epoch = 0     -- bumped when a server's tool list changes
-- The tools an agent offers: resolved once per run (tool lists are listed
-- once per run too), then shared by every invocation of the agent.
local agent_tools = setmetatable({}, { __mode = "k" })
-- The same, by what an agent's tool sets say (toolset_key): agents given
-- the same tools share one resolution.  Its lists are only read; code of
-- the workflow (hooks, scripts) gets copies.
local tools_by_key = {}

-- The tools of an MCP server, listed once per run; concurrent callers wait.
local function list_tools(server, ctx)
  local c = tool_cache[server]
  if c and c.tools then return c end
  if c and c.err then raise(ctx, "%s", c.err) end
  if c then
    c.waiters[#c.waiters + 1] = coroutine.running()
    coroutine.yield({ op = "park" })
    if c.err then raise(ctx, "%s", c.err) end
    return c
  end
  c = { waiters = {} }
  tool_cache[server] = c
  -- Whatever happens to the leader, the waiters are woken with the outcome.
  local ok, r = pcall(function()
    return call_tasks({ { kind = "mcp.list", path = ctx.path, span = ctx.span, grant = ctx.grant,
                          params = { server = server_spec(server) } } })[1]
  end)
  if not ok then
    c.err = getmetatable(r) == ERR and r.msg or tostring(r)
  elseif r.err then
    c.err = r.err.message or "tools/list failed"
  else
    c.tools, c.byname = {}, {}
    for _, t in ipairs(type(r.result.tools) == "table" and r.result.tools or {}) do
      if type(t) == "table" and type(t.name) == "string" then
        c.tools[#c.tools + 1] = t
        c.byname[t.name] = t
      end
    end
  end
  for _, co in ipairs(c.waiters) do wake(co) end
  c.waiters = {}
  if c.err then raise(ctx, "%s", c.err) end
  return c
end

local function offered_names(c)
  local names = {}
  for _, t in ipairs(c.tools) do names[#names + 1] = t.name end
  table.sort(names)
  return table.concat(names, ", ")
end

-- A tool result says its server's tool list changed (the worker marks the
-- first result after notifications/tools/list_changed): list it again, and
-- re-resolve every agent's tools before its next turn.
local function note_tools_changed(ctx, server, result)
  local meta = type(result) == "table" and result._meta
  if type(meta) ~= "table" or not meta["weft/tools_changed"] then return end
  ev("tool.list_changed", ctx, { server = server })
  local c = tool_cache[server]
  if c and (c.tools or c.err) then tool_cache[server] = nil end
  for k in pairs(agent_tools) do agent_tools[k] = nil end
  tools_by_key = {}
  tools_epoch = tools_epoch + 1
end

local function check_tool(ctx, c, server, name)
  if not c.byname[name] then
    raise(ctx, "tool '%s' not offered by server '%s' (it offers: %s)", name, server,
          offered_names(c))
  end
end

local EXIT_LOOP_DEF = { name = "exit_loop",
  description = "End the enclosing loop: call this when the work is good enough. " ..
                "The loop stops after you give your final answer.",
  input_schema = { type = "object", properties = {} } }

local ESCALATE_DEF = { name = "escalate",
  description = "Give up: fail this agent and everything above it, with a reason. " ..
                "Use it only when the task cannot be done.",
  input_schema = { type = "object", properties = { reason = { type = "string" } } } }

local AGENT_INPUT = { type = "object", required = { "request" },
  properties = { request = { type = "string", description = "What to ask the agent" } } }
core.array(AGENT_INPUT.required)

-- What an agent's tool sets say, as a string (made once per node).
local function toolset_key(n)
  if n.tools_key then return n.tools_key end
  local parts = {}
  for i, ts in ipairs(n.tools) do
    if ts == w.exit_loop then
      parts[i] = "\1exit_loop"
    elseif ts == w.escalate then
      parts[i] = "\1escalate"
    elseif ts.agent then
      parts[i] = "\1agent\1" .. tostring(ts)
    else
      parts[i] = ts.server .. "\1" .. (ts.prefix or "") .. "\1" ..
                 (ts.only and table.concat(ts.only, "\2") or "\3")
    end
  end
  for _, s in ipairs(n.sub_agents or {}) do parts[#parts + 1] = "\1transfer\1" .. tostring(s) end
  n.tools_key = table.concat(parts, "\4")
  return n.tools_key
end

-- The tools agent n offers: { offered, byname, defs, offered_text, epoch },
-- epoch being tools_epoch when the resolution began.  Listing a server
-- may wait, and a list may change meanwhile: then the resolution is used
-- once (its epoch is old, so the agent resolves again before its turn)
-- and not kept for others.
local function resolve_tools(n, ctx)
  local cached = agent_tools[n]
  if cached then return cached end
  local key = toolset_key(n)
  cached = tools_by_key[key]
  if cached then
    agent_tools[n] = cached
    return cached
  end
  -- Wait for the servers' lists first: of agents that start together
  -- (a parallel), the first to resume resolves, the others find it.
  for _, ts in ipairs(n.tools) do
    if ts ~= w.exit_loop and ts ~= w.escalate and not ts.agent then list_tools(ts.server, ctx) end
  end
  cached = tools_by_key[key]
  if cached and cached.epoch == tools_epoch then
    agent_tools[n] = cached
    return cached
  end
  local epoch = tools_epoch
  local offered, byname, defs = {}, {}, {}
  for _, ts in ipairs(n.tools) do
    if ts == w.exit_loop then
      offered[#offered + 1] = "exit_loop"
      byname.exit_loop = { builtin = true }
      defs[#defs + 1] = EXIT_LOOP_DEF
    elseif ts == w.escalate then
      offered[#offered + 1] = "escalate"
      byname.escalate = { builtin = "escalate" }
      defs[#defs + 1] = ESCALATE_DEF
    elseif ts.agent then
      if byname[ts.name] then
        raise(ctx, "agent '%s' is offered two tools named '%s'; give w.agent_tool a name", n.name, ts.name)
      end
      offered[#offered + 1] = ts.name
      byname[ts.name] = { builtin = "agent", node = ts.agent, budget = ts.budget }
      -- A remote agent (w.a2a) given no description: its card's.
      local desc = ts.description
      if desc == nil and ts.agent.kind == "remote" then desc = remote_describe(ts.agent, ctx) end
      defs[#defs + 1] = { name = ts.name, description = desc,
                          input_schema = ts.input_schema or AGENT_INPUT }
    else
      local c = list_tools(ts.server, ctx)
      local only
      if ts.only then
        only = {}
        for _, name in ipairs(ts.only) do
          check_tool(ctx, c, ts.server, name)
          only[name] = true
        end
      end
      for _, t in ipairs(c.tools) do
        if not only or only[t.name] then
          local exposed = (ts.prefix or "") .. t.name
          if byname[exposed] then
            raise(ctx, "tool '%s' is offered by two MCP servers ('%s' and '%s'); use w.mcp(\"%s\", { prefix = \"%s_\" })",
                  exposed, byname[exposed].server or "builtin", ts.server, ts.server, ts.server)
          end
          byname[exposed] = { server = ts.server, name = t.name }
          offered[#offered + 1] = exposed
          defs[#defs + 1] = { name = exposed, description = type(t.description) == "string" and
                                t.description or "",
                              input_schema = type(t.inputSchema) == "table" and t.inputSchema or
                                { type = "object" } }
        end
      end
    end
  end
  for _, s in ipairs(n.sub_agents or {}) do
    local name = "transfer_to_" .. s.name
    offered[#offered + 1] = name
    byname[name] = { builtin = "transfer", node = s }
    defs[#defs + 1] = { name = name, input_schema = { type = "object", properties = {} },
                        description = "Hand this conversation to the agent '" .. s.name .. "'" ..
                          (s.description and (": " .. s.description) or "") ..
                          ". It answers in your place from then on." }
  end
  core.array(offered)
  core.array(defs)
  cached = { offered = offered, byname = byname, defs = defs,
             offered_text = core.json_encode(offered), epoch = epoch }
  if epoch == tools_epoch then
    agent_tools[n] = cached
    tools_by_key[key] = cached
  end
  return cached
end

-- tools_epoch, for an agent to see whether its resolution is old.
function T.epoch() return tools_epoch end

T.list_tools, T.check_tool, T.note_tools_changed = list_tools, check_tool, note_tools_changed
T.resolve_tools = resolve_tools
return T
