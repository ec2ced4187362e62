-- weft.validate: checks of a whole graph once the workflow file has
-- returned it (the constructors check their own fields as they run).

local core, w, U = ...

local type, tostring, ipairs, pairs, next, select = type, tostring, ipairs, pairs, next, select
local error, pcall, setmetatable, getmetatable = error, pcall, setmetatable, getmetatable
local string, table, math, coroutine = string, table, math, coroutine
local fail = U.fail
local I = w._internal
local is_node, servers, providers = I.is_node, I.servers, I.providers

-- Validate a whole graph after the workflow file returned it.
function w._internal.validate(root, file)
  if not is_node(root) then
    error(file .. ": the workflow must return a node (w.sequential{...}, w.agent{...}, ...), got " ..
          type(root), 0)
  end
  local seen_node, pending = {}, {}
  local function walk(n, path, in_loop)
    if seen_node[n] then
      fail(n.where, "%s '%s' is used twice in the graph; make a second node", n.kind, n.name or n.kind)
    end
    seen_node[n] = true
    local names = {}
    for i, c in ipairs(n.children) do
      c.name = c.name or (c.kind .. tostring(i))
      if names[c.name] then
        fail(c.where, "two children of %s '%s' are named '%s'", n.kind, n.name or n.kind, c.name)
      end
      names[c.name] = true
    end
    local refs = {}
    if n.kind == "agent" then
      for _, m in ipairs(n.chain or {}) do
        local pname = m:match("^([%w_%-]+):")
        if pname ~= "openai" and pname ~= "anthropic" and not providers[pname] then
          fail(n.where, "agent '%s': unknown provider '%s' in model '%s' (built in: openai, anthropic; declare others with w.provider{ name = \"%s\", api = ..., base_url = ... })",
               n.name, pname, m, pname)
        end
      end
      local tnames = {}
      for _, ts in ipairs(n.tools) do
        if ts == w.escalate then
          -- built in, allowed anywhere
        elseif getmetatable(ts) == I.AGENTTOOL then
          refs[#refs + 1] = ts.agent
        elseif ts == w.exit_loop then
          if not in_loop then
            fail(n.where, "agent '%s' is offered w.exit_loop but is not inside a w.loop", n.name)
          end
        else
          if not servers[ts.server] then
            fail(ts.where, "agent '%s' uses MCP server '%s', which is not declared (w.mcp_server{ name = \"%s\", ... })",
                 n.name, ts.server, ts.server)
          end
        end
      end
      n.tnames = tnames
      for _, s in ipairs(n.sub_agents or {}) do refs[#refs + 1] = s end
      -- Agents offered as tools or sub-agents: checked once the graph is.
      for _, r in ipairs(refs) do pending[#pending + 1] = r end
    elseif n.kind == "tool" then
      if not servers[n.server] then
        fail(n.where, "tool '%s' uses MCP server '%s', which is not declared", n.name, n.server)
      end
    end
    for _, c in ipairs(n.children) do
      walk(c, path .. "/" .. c.name, in_loop or n.kind == "loop")
    end
  end
  root.name = root.name or root.kind
  walk(root, root.name, false)
  local k = 1
  while pending[k] do
    if not seen_node[pending[k]] then walk(pending[k], pending[k].name, false) end
    k = k + 1
  end
  return root
end

return w._internal.validate
