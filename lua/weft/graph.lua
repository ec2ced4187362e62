-- weft.graph: `weft graph`, a validated graph as an indented text tree
-- or as Graphviz DOT.

local core, w = ...

local type, tostring, ipairs, pairs, next, select = type, tostring, ipairs, pairs, next, select
local error, pcall, setmetatable, getmetatable = error, pcall, setmetatable, getmetatable
local string, table, math, coroutine = string, table, math, coroutine

-- Describe a validated graph: an indented text tree, or Graphviz DOT.
function w._internal.graph(root, dot)
  local out = {}
  local function detail(n)
    local d = {}
    if n.kind == "agent" then
      d[#d + 1] = "model=" .. (type(n.model) == "table" and table.concat(n.model, ",") or n.model)
      local tools = {}
      for _, ts in ipairs(n.tools) do
        if ts == w.exit_loop then tools[#tools + 1] = "exit_loop"
        elseif ts == w.escalate then tools[#tools + 1] = "escalate"
        elseif ts.agent then tools[#tools + 1] = "agent:" .. ts.agent.name
        else tools[#tools + 1] = ts.server .. (ts.only and ("{" .. table.concat(ts.only, ",") .. "}") or ".*") end
      end
      if #tools > 0 then d[#d + 1] = "tools=" .. table.concat(tools, " ") end
      if n.sub_agents then
        local subs = {}
        for i, s in ipairs(n.sub_agents) do subs[i] = s.name end
        d[#d + 1] = "sub_agents=" .. table.concat(subs, ",")
      end
      d[#d + 1] = "max_turns=" .. n.max_turns
    elseif n.kind == "loop" then
      d[#d + 1] = "max_iterations=" .. n.max_iterations
    elseif n.kind == "map" then
      d[#d + 1] = "over=" .. (type(n.over) == "string" and n.over or "function") ..
                  " concurrency=" .. n.concurrency
    elseif n.kind == "tool" then
      d[#d + 1] = n.server .. "." .. n.tool
    elseif n.kind == "approval" then
      d[#d + 1] = "on_timeout=" .. n.on_timeout
    end
    if n.output_key then d[#d + 1] = "-> " .. n.output_key end
    return table.concat(d, " ")
  end
  if dot then
    local id = 0
    out[1] = "digraph weft {\n  node [shape=box, fontname=\"monospace\"];"
    local function walk(n)
      id = id + 1
      local me = "n" .. id
      local label = string.format("%s (%s)\\n%s", n.name, n.kind, detail(n)):gsub('"', '\\"')
      local shape = (n.kind == "agent" and "box") or (n.kind == "fn" and "ellipse") or
                    (n.kind == "tool" and "component") or "folder"
      out[#out + 1] = string.format('  %s [label="%s", shape=%s];', me, label, shape)
      local prev, first
      for _, c in ipairs(n.children) do
        local cid = walk(c)
        first = first or cid
        out[#out + 1] = string.format("  %s -> %s%s;", me, cid,
          n.kind == "parallel" and " [style=dashed]" or "")
        if prev and (n.kind == "sequential" or n.kind == "loop") then
          out[#out + 1] = string.format("  %s -> %s [color=gray, constraint=false];", prev, cid)
        end
        prev = cid
      end
      if n.kind == "loop" and first then
        out[#out + 1] = string.format('  %s -> %s [color=gray, label="repeat", constraint=false];',
          prev, first)
      end
      return me
    end
    walk(root)
    out[#out + 1] = "}"
  else
    local function walk(n, depth)
      local d = detail(n)
      out[#out + 1] = string.rep("  ", depth) .. n.name .. " [" .. n.kind .. "]" ..
                      (d ~= "" and ("  " .. d) or "")
      for _, c in ipairs(n.children) do walk(c, depth + 1) end
    end
    walk(root, 0)
  end
  return table.concat(out, "\n") .. "\n"
end

return w._internal.graph
