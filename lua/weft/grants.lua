-- weft.grants: capability grants (docs/security.md): the run's, each
-- node's declared one, and agents' implicit ones, shared.

local core, w, raise = ...
local type, tostring, ipairs, pairs, next, select = type, tostring, ipairs, pairs, next, select
local error, pcall, setmetatable, getmetatable = error, pcall, setmetatable, getmetatable
local string, table, math, coroutine = string, table, math, coroutine
local I = w._internal

-- The tools an agent's tool sets name, as grant patterns ("srv.*", "srv.tool").
local function agent_tool_patterns(n)
  local pats = {}
  for _, ts in ipairs(n.tools) do
    if type(ts.agent) == "table" and ts.agent.kind == "remote" then
      pats[#pats + 1] = ts.agent.name .. ".send"       -- w.a2a
    elseif type(ts.server) == "string" then
      if ts.only then
        for _, name in ipairs(ts.only) do pats[#pats + 1] = ts.server .. "." .. name end
      else
        pats[#pats + 1] = ts.server .. ".*"
      end
    end
  end
  return pats
end

-- The node path each grant was made for (grant id -> path).
local grant_node = {}
-- Agents' implicit grants, shared: "parent id|patterns" -> grant id.
local agent_grants = {}

-- The node's capability grant: declared (minted now, so a wider one fails
-- here), or an agent's tools (minted at its first tool call).  Agents under
-- the same grant with the same tools share one grant, made for the parent
-- grant's node: the token still names only their tools, and a thousand
-- parallel agents cost one signature and one verification per worker, not
-- a thousand of each (docs/security.md).
local function open_grant(n, ctx)
  local g, eager, node = n.grant, true, ctx.path
  local key
  if not g and n.kind == "agent" then
    -- The node's patterns do not change: worked out once, not at every
    -- start of the agent (a loop starts it again and again).
    if not n.grant_pats then
      n.grant_pats = agent_tool_patterns(n)
      table.sort(n.grant_pats)
      n.grant_pats_text = table.concat(n.grant_pats, ",")
    end
    if #n.grant_pats == 0 then return end
    key = tostring(ctx.grant or 0) .. "|" .. n.grant_pats_text
    if agent_grants[key] then ctx.grant = agent_grants[key] return end
    g, eager = { tools = n.grant_pats }, false
    -- A remote agent's tool keeps the run grant's host constraint.
    for _, ts in ipairs(n.tools) do
      if type(ts.agent) == "table" and ts.agent.kind == "remote" then
        g.args = g.args or {}
        g.args[ts.agent.name .. ".send"] = { agent = { hosts = { I.remotes[ts.agent.name] } } }
      end
    end
    node = ctx.grant and grant_node[ctx.grant] or ctx.path
  end
  if not g then return end
  local id, err = core.grant(ctx.grant or 0, node, g, eager)
  if not id then raise(ctx, "%s: grant refused: %s", n.where, err) end
  grant_node[id] = node
  if key then agent_grants[key] = id end
  ctx.grant = id
end

-- The run's grant: every declared MCP server, as many calls as the
-- budget allows (docs/security.md).  Its id, or nil when no server.
local function open_run_grant(root, budget)
  local pats = {}
  for _, name in ipairs(I.server_order) do pats[#pats + 1] = name .. ".*" end
  -- Remote agents (w.remote): "NAME.send", to the agent's host only.
  local args
  for _, name in ipairs(I.remote_order or {}) do
    pats[#pats + 1] = name .. ".send"
    args = args or {}
    args[name .. ".send"] = { agent = { hosts = { I.remotes[name] } } }
  end
  local grant
  if #pats > 0 then
    local g = { tools = pats, args = args }
    if budget and budget.tool_calls then g.max_calls = math.max(1, math.floor(budget.tool_calls)) end
    local err
    grant, err = core.grant(0, root.name, g, false)
    if grant then grant_node[grant] = root.name end
    if not grant then error("run grant refused: " .. err, 0) end
  end
  return grant
end

return { open = open_grant, open_run = open_run_grant }
