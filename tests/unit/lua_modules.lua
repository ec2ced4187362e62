-- lua_modules.lua: unit tests of the Lua runner's modules (lua/weft/*.lua)
-- in a plain Lua 5.4 state, with a stand-in for the C `core` table.  Run
-- by tests/unit/test_lua_modules.c: given the source directory, returns a
-- table of test groups (name -> function); a group raises on the first
-- wrong result, naming it.  Whole workflows through the real engine are in
-- tests/integration/t_lua_dsl.sh.
local SRC = ...

local function eq(got, want, what)
  if got ~= want then
    error(string.format("%s: got %s, want %s", what, tostring(got), tostring(want)), 2)
  end
end

local function has(s, sub, what)
  if type(s) ~= "string" or not s:find(sub, 1, true) then
    error(string.format("%s: '%s' does not contain '%s'", what, tostring(s), sub), 2)
  end
end

-- The error a call raises (a string, or the table of a runner error).
local function raises(what, f, ...)
  local ok, e = pcall(f, ...)
  if ok then error(what .. ": no error", 2) end
  return e
end

-- This file's line n, as the modules' errors name it.
local function here(n) return "lua_modules.lua:" .. n end
local function line() return debug.getinfo(2, "l").currentline end

-- A stand-in for lua/luaeng.c's core: modules load from the source tree.
local function new_core()
  local core = { clock = 100, prices = {}, grants = {} }
  function core.module(name, ...)
    local file = SRC .. "/lua/" .. (name == "weft" and "weft/init" or name:gsub("%.", "/")) .. ".lua"
    local chunk = assert(loadfile(file, "t"))
    return chunk(...)
  end
  -- As luaeng.c: the frame `level` above core.where's caller.
  function core.where(level)
    local d = debug.getinfo(level + 1, "Sl")
    return (d.short_src:match("[^/]*$")) .. ":" .. d.currentline
  end
  function core.mono() return core.clock end
  function core.price(m) return core.prices[m] end
  function core.script_dir() return SRC end
  function core.array(t) return t end
  function core.json_check() return true end
  function core.schema_check() return true end
  return core
end

local T = {}

function T.util()
  local U = new_core().module("weft.util", new_core())
  eq(U.distance("output_key", "ouput_key"), 1, "distance of one deletion")
  eq(U.distance("", "abc"), 3, "distance from empty")
  eq(U.suggest("ouput_key", U.set{ "output_key", "model" }),
     " (did you mean 'output_key'?)", "suggestion")
  eq(U.suggest("zzzzzz", U.set{ "output_key", "model" }), "", "no suggestion when far")
  -- Among equal distances, the first in sorted order: not pairs() order.
  eq(U.suggest("ab", U.set{ "xb", "ax" }), " (did you mean 'ax'?)", "sorted tie-break")
  local e = raises("fail", U.fail, "flow.lua:12", "bad %s", "thing")
  eq(e, "flow.lua:12: bad thing", "fail's message has no position of its own")
end

-- A budget module with its events recorded in evs.
local function budget()
  local core, evs = new_core(), {}
  local ERR = {}
  local function ev(kind, ctx, p) evs[#evs + 1] = { kind = kind, path = ctx.path, p = p } end
  return core.module("weft.budget", core, ev, ERR), core, evs, ERR
end

function T.budget_carving_and_reservations()
  local B, core, evs, ERR = budget()
  local run = B.open({ path = "" }, { tokens = 100, usd = 1 }, nil)
  local rctx = { path = "", env = run }
  B.reserve(rctx, { tokens = 30 })
  -- A child asking for more than its parent has left gets what is left.
  local child = B.open({ path = "essay/web" }, { tokens = 500, tool_calls = 3 }, run)
  eq(child.limits.tokens, 70, "child's tokens carved from the run's 100 - 30 reserved")
  eq(child.carved.tokens, "the run", "where the limit was carved from")
  eq(child.limits.usd, 1, "an undeclared dimension is inherited")
  eq(child.limits.tool_calls, 3, "the child's own dimension")
  local ctx = { path = "essay/web", env = child }
  local r = B.reserve(ctx, { tokens = 50 })
  eq(run.reserved.tokens, 80, "a reservation is made in every enclosing envelope")
  eq(child.reserved.tokens, 50, "and in the node's own")
  local e = raises("over the carved limit", B.reserve, ctx, { tokens = 21 })
  eq(getmetatable(e), ERR, "a budget failure is a runner error")
  eq(e.budget.dimension, "tokens", "failed dimension")
  eq(e.budget.node, "essay/web", "failing envelope")
  eq(e.budget.limit, 70, "its limit")
  eq(e.budget.requested, 21, "what the step asked for")
  has(e.msg, "budget exceeded: tokens of essay/web: limit 70 (what the run had left "
      .. "when it started), spent 0, this step needs up to 21", "message")
  eq(ctx.stop, "budget_exceeded", "the context stops")
  eq(B.status(e), "budget_exceeded", "status")
  eq(evs[#evs].kind, "budget.exceeded", "recorded")
  -- Exactly up to the limit is allowed (70 = 50 + 20).
  local r2 = B.reserve(ctx, { tokens = 20 })
  -- Settling returns the unspent reservation to every envelope.
  B.settle(ctx, r, { tokens = 12, usd = 0.25 })
  eq(child.reserved.tokens, 20, "child's reservation after settle")
  eq(run.reserved.tokens, 50, "run's: its own 30 and the child's 20")
  eq(run.spent.tokens, 12, "spent recorded in the run")
  eq(child.spent.usd, 0.25, "and in the child")
  B.settle(ctx, r2, { tokens = 0 })
  eq(B.text(ctx), "Remaining budget for this task: 58 tokens, $0.7500, 3 tool calls. "
     .. "Finish within it; a step that does not fit is refused.", "prompt line")
  eq(B.reserve({ path = "x" }, { tokens = 1e9 }), nil, "no envelope, no reservation")
  eq(B.text({ path = "x" }), nil, "no envelope, no prompt line")
end

function T.budget_settle_over_and_pause()
  local B = budget()
  local run = B.open({ path = "" }, { usd = 0.5, on_exceed = "pause" }, nil)
  local ctx = { path = "a", env = B.open({ path = "a" }, {}, run) }
  local r = B.reserve(ctx, { usd = 0.1 })
  -- A call that cost more than it reserved fails once settled.
  local e = raises("settled over", B.settle, ctx, r, { usd = 0.75 })
  eq(e.budget.dimension, "usd", "dimension")
  eq(e.budget.on_exceed, "pause", "on_exceed inherited from the enclosing envelope")
  eq(B.status(e), "paused", "a pause")
  has(e.msg, "budget reached, run paused: usd of a: limit 0.5", "message")
  eq(B.status({}), "failed", "an error without a budget")
end

function T.budget_time_and_model_worst_case()
  local B, core = budget()
  local run = B.open({ path = "" }, { seconds = 10, usd = 1 }, nil)
  local ctx = { path = "a", env = run }
  core.clock = core.clock + 9.5
  B.check_time(ctx)
  core.clock = core.clock + 1
  local e = raises("past the time limit", B.check_time, ctx)
  eq(e.budget.dimension, "seconds", "time dimension")
  eq(e.budget.spent, 10.5, "seconds spent")
  -- Worst case of a model call: every input byte a token, the dearest
  -- model of the chain, cache writes at their price.
  local B2, core2 = budget()
  core2.prices["p:cheap"] = { input = 1, output = 2 }
  core2.prices["p:dear"] = { input = 2, output = 10, cache_write = 3 }
  local env = B2.open({ path = "" }, { usd = 1 }, nil)
  local r = B2.model_reserve({ chain = { "p:cheap", "p:dear", "p:unpriced" } },
                             { path = "a", env = env }, 1000, 100)
  eq(r.tokens, 1100, "tokens")
  eq(r.model_calls, 1, "one call")
  eq(math.abs(r.usd - (1000 * 3 + 100 * 10) / 1e6) < 1e-12, true, "usd at the dearest price")
  local s = B2.usage_spent({ input_tokens = 10, cache_read_tokens = 5, output_tokens = 7 }, 0.01)
  eq(s.input_tokens, 15, "cache reads count as input")
  eq(s.tokens, 22, "total")
  eq(B2.num(3), "3", "integers print without a point")
  eq(B2.num(0.1234567), "0.123457", "reals print with 6 digits")
end

-- A grants module over a core.grant that narrows: a child's tools must be
-- among its parent's ("srv.*" covers "srv.x").
local function grants(servers)
  local core = new_core()
  local calls, next_id, by_id = {}, 0, { [0] = { tools = { "*" } } }
  function core.grant(parent, node, g, eager)
    calls[#calls + 1] = { parent = parent, node = node, g = g, eager = eager }
    for _, t in ipairs(g.tools) do
      local ok = false
      for _, p in ipairs(by_id[parent].tools) do
        if p == "*" or p == t or (p:sub(-2) == ".*" and t:sub(1, #p - 1) == p:sub(1, -2)) then
          ok = true
        end
      end
      if not ok then return nil, "'" .. t .. "' is wider than the parent grant" end
    end
    next_id = next_id + 1
    by_id[next_id] = g
    return next_id
  end
  local w = { exit_loop = {}, _internal = { server_order = servers or {} } }
  local function raise(ctx, fmt, ...) error(string.format(fmt, ...), 0) end
  return core.module("weft.grants", core, w, raise), calls, w
end

function T.grants_narrowing()
  local G, calls, w = grants({ "fs", "web" })
  local run = G.open_run({ name = "flow" }, { tool_calls = 5.7 })
  eq(run, 1, "the run's grant")
  eq(calls[1].g.max_calls, 5, "max_calls from the tool_calls budget, floored")
  eq(table.concat(calls[1].g.tools, ","), "fs.*,web.*", "every declared server")
  -- A declared grant is minted at once under the context's grant.
  local ctx = { path = "flow/a", grant = run }
  G.open({ kind = "sequential", grant = { tools = { "fs.read" } }, where = "f.lua:3" }, ctx)
  eq(ctx.grant, 2, "the node's grant")
  eq(calls[2].parent, 1, "narrowed from the run's")
  eq(calls[2].eager, true, "declared: minted now")
  -- A grant wider than its parent's is refused, naming the node's line.
  local ctx2 = { path = "flow/a/b", grant = 2 }
  local e = raises("wider grant", G.open,
    { kind = "sequential", grant = { tools = { "web.fetch" } }, where = "f.lua:7" }, ctx2)
  eq(e, "f.lua:7: grant refused: 'web.fetch' is wider than the parent grant", "refusal")
  eq(ctx2.grant, 2, "the context keeps its grant")
  -- Agents with the same tools under the same grant share one, made for
  -- the parent grant's node; exit_loop is not a tool of a server.
  local a = { kind = "agent", tools = { { server = "fs", only = { "read", "list" } }, w.exit_loop } }
  local c1, c2 = { path = "flow/x1", grant = 1 }, { path = "flow/x2", grant = 1 }
  G.open(a, c1)
  G.open({ kind = "agent", tools = { { server = "fs", only = { "list", "read" } } } }, c2)
  eq(c1.grant, c2.grant, "one shared grant")
  eq(#calls, 4, "minted once")
  eq(table.concat(calls[4].g.tools, ","), "fs.list,fs.read", "sorted patterns")
  eq(calls[4].parent, 1, "under the context's grant")
  eq(calls[4].node, "flow", "made for the parent grant's node")
  eq(calls[4].eager, false, "an agent's: minted at its first call")
  local c3 = { path = "flow/z", grant = 2 }
  G.open({ kind = "agent", tools = { w.exit_loop } }, c3)
  eq(c3.grant, 2, "an agent without server tools keeps its context's grant")
  local G2, calls2 = grants({})
  eq(G2.open_run({ name = "flow" }, nil), nil, "no server, no run grant")
  eq(#calls2, 0, "nothing minted")
end

-- The DSL (init.lua with fields, validate, graph) on the stand-in core.
local function dsl()
  local core = new_core()
  return core.module("weft", core)
end

function T.fields_errors_name_file_and_line()
  local w = dsl()
  local n, e
  n = line() + 1; e = raises("misspelt field", function()
    local a = w.agent{ name = "critic", model = "openai:gpt-4o-mini", ouput_key = "x" }
    return a end)
  eq(e, here(n) .. ": unknown field 'ouput_key' in agent 'critic' (did you mean 'output_key'?)",
     "unknown field")
  n = line() + 1; e = raises("bad grant", function()
    local a = w.agent{ name = "a", model = "openai:m", grant = { tools = { "fs" } } }
    return a end)
  has(e, here(n) .. ": agent 'a': grant: tools[1] must be \"server.tool\" or \"server.*\", got 'fs'",
      "grant pattern")
  n = line() + 1; e = raises("budget dimension", function()
    local s = w.sequential{ name = "s", budget = { tokenz = 5 } }
    return s end)
  has(e, here(n) .. ": sequential 's': unknown budget dimension 'tokenz' (did you mean 'tokens'?)",
      "budget dimension")
  n = line() + 1; e = raises("on_exceed", function()
    local s = w.sequential{ name = "s", budget = { on_exceed = "stop" } }
    return s end)
  has(e, here(n) .. ": sequential 's': budget.on_exceed must be \"fail\" or \"pause\", got 'stop'",
      "on_exceed")
  n = line(); e = raises("not a node", function() local s = w.sequential{ name = "s", 42 }; return s end)
  has(e, here(n) .. ": sequential 's': child 1 is number, not a node", "child")
  n = line(); e = raises("no name", function() local a = w.agent{ model = "openai:m" }; return a end)
  eq(e, here(n) .. ": agent needs a name", "agent name")
end

function T.validate_whole_graph()
  local w = dsl()
  local a = w.agent{ name = "a", model = "openai:m" }
  local n = line(); local e = raises("used twice", w._internal.validate,
    w.sequential{ name = "s", a, w.parallel{ name = "p", a } }, "flow.lua")
  has(e, ": agent 'a' is used twice in the graph", "node used twice")
  n = line(); local b = w.agent{ name = "b", model = "nowhere:m" }
  e = raises("provider", w._internal.validate, w.sequential{ b }, "flow.lua")
  has(e, here(n) .. ": agent 'b': unknown provider 'nowhere' in model 'nowhere:m'", "provider")
  n = line(); local c = w.agent{ name = "c", model = "openai:m", tools = { w.exit_loop } }
  e = raises("exit_loop", w._internal.validate, w.sequential{ c }, "flow.lua")
  eq(e, here(n) .. ": agent 'c' is offered w.exit_loop but is not inside a w.loop", "exit_loop")
  n = line(); local d = w.agent{ name = "d", model = "openai:m", tools = { w.mcp("fs") } }
  e = raises("server", w._internal.validate, w.sequential{ d }, "flow.lua")
  has(e, here(n) .. ": agent 'd' uses MCP server 'fs', which is not declared", "server")
  e = raises("not a node", w._internal.validate, { kind = "agent" }, "flow.lua")
  has(e, "flow.lua: the workflow must return a node", "root")
  local x, y = w.agent{ name = "x", model = "openai:m" }, w.agent{ name = "x", model = "openai:m" }
  n = line(); e = raises("twins", w._internal.validate, w.sequential{ name = "s", x, y }, "flow.lua")
  has(e, ": two children of sequential 's' are named 'x'", "same names")
end

function T.graph_printing()
  local w = dsl()
  w.mcp_server{ name = "fs", command = { "/bin/true" } }
  local root = w._internal.validate(w.sequential{ name = "essay",
    w.parallel{ name = "research",
      w.agent{ name = "web", model = "openai:m", tools = { w.mcp("fs", { only = { "read" } }) },
               output_key = "facts" },
      w.fn{ name = "notes", run = function() end } },
    w.loop{ name = "refine", max_iterations = 3,
      w.agent{ name = "critic", model = { "openai:a", "anthropic:b" }, tools = { w.exit_loop },
               max_turns = 4 } } }, "flow.lua")
  eq(w._internal.graph(root, false), table.concat({
    "essay [sequential]",
    "  research [parallel]",
    "    web [agent]  model=openai:m tools=fs{read} max_turns=" .. root.children[1].children[1].max_turns
      .. " -> facts",
    "    notes [fn]",
    "  refine [loop]  max_iterations=3",
    "    critic [agent]  model=openai:a,anthropic:b tools=exit_loop max_turns=4", "" }, "\n"),
    "text tree")
  local dot = w._internal.graph(root, true)
  has(dot, "digraph weft {", "dot header")
  has(dot, '  n1 [label="essay (sequential)\\n", shape=folder];', "root node")
  has(dot, "  n2 -> n3 [style=dashed];", "a parallel's edges are dashed")
  has(dot, '  n5 -> n6;', "loop child")
  has(dot, '  n6 -> n6 [color=gray, label="repeat", constraint=false];', "the loop's repeat edge")
  eq(dot:sub(-2), "}\n", "closed")
end

return T
