-- weft: the workflow DSL.  `local w = require "weft"` in a workflow file.
--
-- Constructors build plain node tables and check their fields at once, so
-- a mistake is reported at the line that made it ("file:line: ...").
-- This file is trusted library code: it runs with the full standard
-- library, while workflow code gets the stripped environment of luaeng.c.

local core = ...          -- C functions, given by lua/luaeng.c
-- The standard functions this file calls, as locals: an upvalue is read
-- directly, a global is a table lookup at every call.
local type, tostring, ipairs, pairs, next, select = type, tostring, ipairs, pairs, next, select
local error, pcall, setmetatable, getmetatable = error, pcall, setmetatable, getmetatable
local string, table, math, coroutine = string, table, math, coroutine

local U = core.module("weft.util", core)
local where, fail, suggest, set = U.where, U.fail, U.suggest, U.set
-- The checks of constructors' fields: lua/weft/fields.lua.
local F = core.module("weft.fields", core, U)
local fields, check, check_grant = F.fields, F.check, F.check_grant
local check_strings, check_resources, check_prompts = F.check_strings, F.check_resources,
  F.check_prompts
local check_policy, check_sandbox, seconds = F.check_policy, F.check_sandbox, F.seconds
local check_node_policy = F.check_node_policy

local w = {}
local servers = {}        -- name -> server declared with w.mcp_server
local server_order = {}
local providers = {}      -- name -> provider declared with w.provider
local provider_order = {}
local run_hooks = {}      -- hooks of every agent, from w.hooks{}
local HOOKS = { before_model = true, after_model = true, before_tool = true, after_tool = true }


local NODE = {}           -- metatable marking node tables
local EXIT = setmetatable({}, { __tostring = function() return "w.exit_loop" end })
local ESCALATE = {}       -- metatable of what w.escalate(reason) returns
local AGENTTOOL = {}      -- metatable of w.agent_tool(agent)
local TOOLSET = {}        -- metatable marking w.mcp(...) tool sets

local function is_node(v) return type(v) == "table" and getmetatable(v) == NODE end

local function node(kind, t, at)
  local n = { kind = kind, where = at, children = {} }
  for k, v in pairs(t) do
    if type(k) == "string" then n[k] = v end
  end
  for i, c in ipairs(t) do
    if not is_node(c) then
      fail(at, "%s '%s': child %d is %s, not a node (w.agent, w.sequential, ...)",
           kind, t.name or kind, i, type(c))
    end
    n.children[i] = c
  end
  return setmetatable(n, NODE)
end

local function posint(v) return math.type(v) == "integer" and v > 0 end
local function posnum(v) return type(v) == "number" and v > 0 end
local function boolean(v) return type(v) == "boolean" end

-- An agent's optional scalar fields: name, check, what it must be.
local AGENT_OPTS = {
  { "max_tokens", posint, "a positive integer" },
  { "temperature", function(v) return type(v) == "number" and v >= 0 and v <= 2 end,
    "a number from 0 to 2" },
  { "stream", boolean, "true or false" },
  { "budget_in_prompt", boolean, "true or false" },
  { "timeout", posnum, "a positive number of seconds" },
  { "stall_timeout", posnum, "a positive number of seconds" },
  { "output_retries", function(v) return math.type(v) == "integer" and v >= 0 end,
    "a non-negative integer" },
}

-- The turns of a scripted agent from a JSON file (a list of turns),
-- relative to the workflow file.
local function script_file(path, at, name)
  local full = path:sub(1, 1) == "/" and path or (core.script_dir() .. "/" .. path)
  local f, oerr = io.open(full, "r")
  if not f then fail(at, "agent '%s': script file: %s", name, oerr) end
  local text = f:read("a")
  f:close()
  local ok, turns, jerr = pcall(core.json_decode, text)
  if not ok or turns == nil then
    fail(at, "agent '%s': script file %s is not JSON: %s", name, path, tostring(jerr or turns))
  end
  if type(turns) ~= "table" or (next(turns) ~= nil and #turns == 0) then
    fail(at, "agent '%s': script file %s must hold a JSON list of turns", name, path)
  end
  return turns
end

function w.agent(t)
  local at = where()
  check("agent", t, at, false)
  if t.name == nil then fail(at, "agent needs a name") end
  local chain = t.model
  if type(chain) == "string" then chain = { chain } end
  if type(chain) ~= "table" or #chain == 0 then
    fail(at, "agent '%s' needs model = \"provider:model\" (or \"scripted\", or a list for fallback)", t.name)
  end
  if t.model == "scripted" then
    if type(t.script) == "string" then t.script = script_file(t.script, at, t.name) end
    if type(t.script) ~= "table" and type(t.script) ~= "function" then
      fail(at, "agent '%s': model \"scripted\" needs script = { turn, ... }, \"turns.json\" or a function",
           t.name)
    end
    if type(t.script) == "table" then
      for i, turn in ipairs(t.script) do
        if type(turn) ~= "table" or (turn.text == nil and turn.tool_calls == nil) then
          fail(at, "agent '%s': script turn %d must be { text = ... } or { tool_calls = {...} }",
               t.name, i)
        end
        if turn.tool_calls ~= nil then
          for j, c in ipairs(turn.tool_calls) do
            if type(c) ~= "table" or type(c.name) ~= "string" then
              fail(at, "agent '%s': script turn %d, tool call %d needs a name", t.name, i, j)
            end
          end
        end
      end
    end
  else
    if t.script ~= nil then
      fail(at, "agent '%s': script is only for model = \"scripted\"", t.name)
    end
    for i, m in ipairs(chain) do
      if type(m) ~= "string" or not m:match("^[%w_%-]+:.+$") then
        fail(at, "agent '%s': model%s must be \"provider:model\", got %s", t.name,
             type(t.model) == "table" and ("[" .. i .. "]") or "",
             type(m) == "string" and ("'" .. m .. "'") or type(m))
      end
    end
  end
  for _, o in ipairs(AGENT_OPTS) do
    local v = t[o[1]]
    if v ~= nil and not o[2](v) then
      fail(at, "agent '%s': %s must be %s", t.name, o[1], o[3])
    end
  end
  if t.retry ~= nil then
    if type(t.retry) ~= "table" then fail(at, "agent '%s': retry must be a table", t.name) end
    local rs = set{ "max_attempts", "initial_interval", "max_interval" }
    for k, v in pairs(t.retry) do
      if not rs[k] then
        fail(at, "agent '%s': unknown field '%s' in retry%s", t.name, tostring(k),
             suggest(tostring(k), rs))
      end
      if k == "max_attempts" and not posint(v) or k ~= "max_attempts" and
          (type(v) ~= "number" or v < 0) then
        fail(at, "agent '%s': retry.%s must be a %s", t.name, k,
             k == "max_attempts" and "positive integer" or "number of seconds")
      end
    end
  end
  if t.output_schema ~= nil then
    if type(t.output_schema) ~= "table" then
      fail(at, "agent '%s': output_schema must be a table (a JSON Schema)", t.name)
    end
    local ok, err = core.schema_check(t.output_schema, "output_schema")
    if not ok then fail(at, "agent '%s': %s", t.name, err) end
  end
  if t.hooks ~= nil then
    if type(t.hooks) ~= "table" then fail(at, "agent '%s': hooks must be a table", t.name) end
    for k, v in pairs(t.hooks) do
      if not HOOKS[k] then
        fail(at, "agent '%s': unknown hook '%s'%s", t.name, tostring(k), suggest(tostring(k), HOOKS))
      end
      if type(v) ~= "function" then fail(at, "agent '%s': hook %s must be a function", t.name, k) end
    end
  end
  if t.instruction ~= nil and type(t.instruction) ~= "string" then
    fail(at, "agent '%s': instruction must be a string", t.name)
  end
  if t.max_turns ~= nil and (math.type(t.max_turns) ~= "integer" or t.max_turns < 1) then
    fail(at, "agent '%s': max_turns must be a positive integer", t.name)
  end
  if t.tools ~= nil then
    if type(t.tools) ~= "table" then fail(at, "agent '%s': tools must be a list", t.name) end
    for i, tool in ipairs(t.tools) do
      if tool ~= w.exit_loop and tool ~= w.escalate and getmetatable(tool) ~= TOOLSET and
          getmetatable(tool) ~= AGENTTOOL then
        fail(at, "agent '%s': tools[%d] must be w.mcp(\"server\"), w.agent_tool(agent), w.exit_loop or w.escalate",
             t.name, i)
      end
    end
  end
  if t.sub_agents ~= nil then
    if type(t.sub_agents) ~= "table" or #t.sub_agents == 0 then
      fail(at, "agent '%s': sub_agents must be a list of agents", t.name)
    end
    local seen = {}
    for i, s in ipairs(t.sub_agents) do
      if not is_node(s) or s.kind ~= "agent" then
        fail(at, "agent '%s': sub_agents[%d] must be an agent (w.agent{...})", t.name, i)
      end
      if seen[s.name] or s.name == t.name then
        fail(at, "agent '%s': sub_agents[%d]: a second agent named '%s'", t.name, i, s.name)
      end
      seen[s.name] = true
    end
  end
  if t.max_transfers ~= nil and (math.type(t.max_transfers) ~= "integer" or t.max_transfers < 1) then
    fail(at, "agent '%s': max_transfers must be a positive integer", t.name)
  end
  local n = node("agent", t, at)
  n.max_turns = t.max_turns or 10
  n.tools = t.tools or {}
  if t.model ~= "scripted" then
    n.chain = {}
    for i, m in ipairs(chain) do n.chain[i] = m end
  end
  return n
end

-- An LLM API endpoint: w.provider{ name = "local", api = "openai",
-- base_url = "http://127.0.0.1:11434/v1" }, then model = "local:llama3".
function w.provider(t)
  local at = where()
  if type(t) ~= "table" then fail(at, "w.provider expects a table") end
  local allowed = set{ "name", "api", "base_url", "api_key_env", "max_concurrency",
                       "stream", "headers", "prices", "breaker", "max_tokens_field" }
  for k in pairs(t) do
    if type(k) ~= "string" or not allowed[k] then
      fail(at, "unknown field '%s' in provider%s", tostring(k), suggest(tostring(k), allowed))
    end
  end
  if type(t.name) ~= "string" or not t.name:match("^[%w_%-]+$") then
    fail(at, "provider needs a name of letters, digits, '_' or '-'")
  end
  if t.name == "scripted" then fail(at, "provider name 'scripted' is reserved") end
  if providers[t.name] then
    fail(at, "provider '%s' is declared twice (first at %s)", t.name, providers[t.name].where)
  end
  if t.api ~= nil and t.api ~= "openai" and t.api ~= "anthropic" then
    fail(at, "provider '%s': api must be \"openai\" or \"anthropic\"", t.name)
  end
  if t.api == nil and t.name ~= "openai" and t.name ~= "anthropic" then
    fail(at, "provider '%s' needs api = \"openai\" or \"anthropic\"", t.name)
  end
  if t.base_url ~= nil and (type(t.base_url) ~= "string" or not t.base_url:match("^https?://")) then
    fail(at, "provider '%s': base_url must be an http:// or https:// URL", t.name)
  end
  if t.api_key_env ~= nil and (type(t.api_key_env) ~= "string" or
      not t.api_key_env:match("^[%a_][%w_]*$")) then
    fail(at, "provider '%s': api_key_env must name an environment variable (the key itself never goes in a workflow)", t.name)
  end
  if t.max_concurrency ~= nil and (math.type(t.max_concurrency) ~= "integer" or t.max_concurrency < 1) then
    fail(at, "provider '%s': max_concurrency must be a positive integer", t.name)
  end
  if t.max_tokens_field ~= nil and t.max_tokens_field ~= "max_tokens" and
      t.max_tokens_field ~= "max_completion_tokens" then
    fail(at, "provider '%s': max_tokens_field must be \"max_tokens\" or \"max_completion_tokens\"", t.name)
  end
  if t.breaker ~= nil then
    if type(t.breaker) ~= "table" then fail(at, "provider '%s': breaker must be a table", t.name) end
    for k, v in pairs(t.breaker) do
      if k == "failures" then
        if math.type(v) ~= "integer" or v < 1 then
          fail(at, "provider '%s': breaker.failures must be a positive integer", t.name)
        end
      elseif k == "open_s" then
        if type(v) ~= "number" or v <= 0 then
          fail(at, "provider '%s': breaker.open_s must be a positive number of seconds", t.name)
        end
      else
        fail(at, "provider '%s': unknown field '%s' in breaker (failures, open_s)", t.name, tostring(k))
      end
    end
  end
  if t.prices ~= nil then
    if type(t.prices) ~= "table" then fail(at, "provider '%s': prices must be a table", t.name) end
    for m, p in pairs(t.prices) do
      if type(m) ~= "string" or type(p) ~= "table" then
        fail(at, "provider '%s': prices maps model names to { input = ..., output = ... }", t.name)
      end
      for k, v in pairs(p) do
        if not (k == "input" or k == "output" or k == "cache_read" or k == "cache_write") or
            type(v) ~= "number" or v < 0 then
          fail(at, "provider '%s': prices['%s'].%s: expected input, output, cache_read or cache_write in USD per million tokens",
               t.name, m, tostring(k))
        end
      end
    end
  end
  local p = { where = at }
  for k, v in pairs(t) do p[k] = v end
  providers[t.name] = p
  provider_order[#provider_order + 1] = t.name
  return p
end

-- Hooks for every agent of the run: w.hooks{ before_tool = function(call) ... end }.
function w.hooks(t)
  local at = where()
  if type(t) ~= "table" then fail(at, "w.hooks expects a table") end
  for k, v in pairs(t) do
    if not HOOKS[k] then fail(at, "unknown hook '%s'%s", tostring(k), suggest(tostring(k), HOOKS)) end
    if type(v) ~= "function" then fail(at, "hook %s must be a function", k) end
    if run_hooks[k] then fail(at, "hook %s is set twice for the run", k) end
    run_hooks[k] = v
  end
end

-- Reducers of a container or map: state key -> "append" | "merge" | "sum" | function.
local function check_reducers(kind, t, at)
  if t.reducers == nil then return end
  if type(t.reducers) ~= "table" then fail(at, "%s: reducers must be a table", kind) end
  for k, r in pairs(t.reducers) do
    if type(k) ~= "string" or not (r == "append" or r == "merge" or r == "sum"
        or type(r) == "function") then
      fail(at, "%s '%s': reducer for '%s' must be \"append\", \"merge\", \"sum\" or a function",
           kind, t.name or kind, tostring(k))
    end
  end
end

local function container(kind)
  return function(t)
    local at = where()
    check(kind, t, at, true)
    if #t == 0 then fail(at, "%s '%s' has no children", kind, t.name or kind) end
    check_reducers(kind, t, at)
    local n = node(kind, t, at)
    n.node_policy = check_node_policy(t, at, kind .. " '" .. (t.name or kind) .. "'")
    if kind == "loop" then
      if math.type(t.max_iterations) ~= "integer" or t.max_iterations < 1 then
        fail(at, "loop '%s' needs max_iterations, a positive integer", t.name or "loop")
      end
      if t["until"] ~= nil and type(t["until"]) ~= "function" then
        fail(at, "loop '%s': until must be a function(state)", t.name or "loop")
      end
    end
    return n
  end
end
w.sequential = container("sequential")
w.parallel = container("parallel")
w.loop = container("loop")

-- Fan out over a list known at run time:
-- w.map{ name = ..., over = "key" | function(state), as = "item",
--        concurrency = N, on_error = "fail" | "collect", node }.
function w.map(t)
  local at = where()
  check("map", t, at, true)
  local label = t.name or "map"
  local child = t.node
  if child ~= nil and #t > 0 then
    fail(at, "map '%s': give the node as node = ... or as its one positional entry, not both", label)
  end
  if child == nil then
    if #t ~= 1 then fail(at, "map '%s' needs exactly one node to run per item (node = w.agent{...})", label) end
    child = t[1]
  end
  if not is_node(child) then fail(at, "map '%s': node must be a node (w.agent, w.sequential, ...)", label) end
  if type(t.over) ~= "string" and type(t.over) ~= "function" then
    fail(at, "map '%s' needs over = \"state key\" (a list) or a function(state) returning a list", label)
  end
  if type(t.over) == "string" and not t.over:match("^[%a_][%w_]*$") then
    fail(at, "map '%s': over must name a state key (an identifier), got '%s'", label, t.over)
  end
  if t.as ~= nil and (type(t.as) ~= "string" or not t.as:match("^[%a_][%w_]*$") or t.as == "index") then
    fail(at, "map '%s': as must be an identifier other than 'index'", label)
  end
  if t.concurrency ~= nil and (math.type(t.concurrency) ~= "integer" or t.concurrency < 1) then
    fail(at, "map '%s': concurrency must be a positive integer", label)
  end
  if t.on_error ~= nil and t.on_error ~= "fail" and t.on_error ~= "collect" then
    fail(at, "map '%s': on_error must be \"fail\" or \"collect\", got %s", label,
         type(t.on_error) == "string" and ("'" .. t.on_error .. "'") or type(t.on_error))
  end
  check_reducers("map", t, at)
  local n = node("map", { name = t.name, description = t.description, budget = t.budget,
                          grant = t.grant, output_key = t.output_key, reducers = t.reducers,
                          child }, at)
  n.node_policy = check_node_policy(t, at, "map '" .. label .. "'")
  n.over, n.as = t.over, t.as or "item"
  n.concurrency, n.on_error = t.concurrency or 8, t.on_error or "fail"
  return n
end

function w.fn(t)
  local at = where()
  if type(t) == "function" then t = { t } end
  local f = t[1] or t.run
  t[1] = nil
  check("fn", t, at, false)
  if type(f) ~= "function" then fail(at, "w.fn needs a function: w.fn{ name = ..., function(ctx) ... end }") end
  local n = node("fn", t, at)
  n.run = f
  n.node_policy = check_node_policy(t, at, "fn '" .. (t.name or "fn") .. "'")
  return n
end

-- A human's answer, asked while the run waits (docs/workflows.md):
-- w.approval{ name, prompt = "Deploy {plan}?", schema = {...},
--             timeout = "24h" | seconds, on_timeout = "reject" | "approve" | "fail" }.
local UNITS = { s = 1, m = 60, h = 3600, d = 86400 }
function w.approval(t)
  local at = where()
  check("approval", t, at, false)
  local label = t.name or "approval"
  if type(t.prompt) ~= "string" or t.prompt == "" then
    fail(at, "approval '%s' needs prompt = \"...\" (the question; {key} reads the state)", label)
  end
  if t.schema ~= nil then
    if type(t.schema) ~= "table" then fail(at, "approval '%s': schema must be a table (a JSON Schema)", label) end
    local ok, err = core.schema_check(t.schema, "schema")
    if not ok then fail(at, "approval '%s': %s", label, err) end
  end
  local secs = t.timeout
  if type(secs) == "string" then
    local num, unit = secs:match("^(%d+%.?%d*)([smhd])$")
    secs = num and tonumber(num) * UNITS[unit] or nil
    if not secs then
      fail(at, "approval '%s': timeout must be seconds or a duration like \"90s\", \"30m\", \"24h\", \"7d\", got '%s'",
           label, t.timeout)
    end
  end
  if secs ~= nil and (type(secs) ~= "number" or secs <= 0) then
    fail(at, "approval '%s': timeout must be a positive number of seconds or a duration like \"24h\"", label)
  end
  local on = t.on_timeout or "reject"
  if on ~= "reject" and on ~= "approve" and on ~= "fail" then
    fail(at, "approval '%s': on_timeout must be \"reject\", \"approve\" or \"fail\", got %s", label,
         type(on) == "string" and ("'" .. on .. "'") or type(on))
  end
  local n = node("approval", { name = t.name, description = t.description, budget = t.budget,
                               grant = t.grant, output_key = t.output_key }, at)
  n.prompt, n.schema, n.timeout, n.on_timeout = t.prompt, t.schema, secs, on
  return n
end

function w.workflow(t)
  local at = where()
  check("workflow", t, at, true)
  if #t == 0 then fail(at, "workflow '%s' has no children", t.name or "workflow") end
  if t.name ~= nil and #t.name > 128 then fail(at, "workflow: name is longer than 128 characters") end
  check_strings(at, "workflow '" .. (t.name or "?") .. "'", t, { "title", "description" })
  for _, k in ipairs{ "input_schema", "output_schema" } do
    if t[k] ~= nil and type(t[k]) ~= "table" then
      fail(at, "workflow '%s': %s must be a table (a JSON Schema)", t.name or "?", k)
    end
  end
  if t.output_schema ~= nil then
    local ok, err = core.schema_check(t.output_schema, "output_schema")
    if not ok then fail(at, "workflow '%s': %s", t.name or "?", err) end
  end
  if t.output_format ~= nil and t.output_format ~= "text" and t.output_format ~= "mcp" then
    fail(at, "workflow '%s': output_format must be \"text\" or \"mcp\"", t.name or "?")
  end
  if t.resources ~= nil then check_resources(at, t.resources) end
  if t.prompts ~= nil then check_prompts(at, t.prompts) end
  local meta = { name = t.name, title = t.title, description = t.description,
                 input_schema = t.input_schema, output_schema = t.output_schema,
                 output_format = t.output_format, resources = t.resources, prompts = t.prompts }
  for _, k in ipairs{ "title", "input_schema", "output_schema", "output_format", "resources", "prompts" } do
    t[k] = nil
  end
  local n = node("sequential", t, at)
  n.workflow = meta
  return n
end

-- The MCP client that called this workflow through weft mcp or weft
-- serve, as a tool server with two tools: `sample` (its model) and
-- `elicit` (its user); docs/mcp.md.  The server gives each run the URL and
-- a secret; outside a server the URL leads nowhere and a call fails.
function w.mcp_client(opts)
  local at = where()
  opts = opts or {}
  if type(opts) ~= "table" then fail(at, "w.mcp_client takes an optional table { name = ..., timeout = ... }") end
  for k in pairs(opts) do
    if k ~= "name" and k ~= "timeout" then fail(at, "w.mcp_client: unknown field '%s' (name, timeout)", tostring(k)) end
  end
  local url = core.var("WEFT_MCP_CLIENT_URL") or "http://127.0.0.1:9/no-mcp-client-outside-weft-mcp-or-serve"
  local token = core.var("WEFT_MCP_CLIENT_TOKEN") or "none"
  return w.mcp_server{ name = opts.name or "mcp_client", url = url,
                       headers = { Authorization = "Bearer " .. token }, timeout = opts.timeout or 600 }
end

local function server_of(s, at, what)
  if type(s) == "string" then return s end
  if type(s) == "table" and s.is_server then return s.name end
  fail(at, "%s: server must be a name or a w.mcp_server{...}", what)
end

function w.tool(t)
  local at = where()
  check("tool", t, at, false)
  local n = node("tool", t, at)
  n.policy = check_policy(t, at, "tool '" .. (t.name or tostring(t.tool)) .. "'")
  n.server = server_of(t.server, at, "tool '" .. (t.name or "?") .. "'")
  if type(t.tool) ~= "string" then fail(at, "tool node '%s' needs tool = \"tool name\"", t.name or "?") end
  if t.args ~= nil and type(t.args) ~= "table" then fail(at, "tool '%s': args must be a table", t.name or "?") end
  if t.args ~= nil then
    local ok, why = core.json_check(t.args)
    if not ok then fail(at, "tool '%s': args: %s", t.name or "?", why) end
  end
  n.name = t.name or t.tool
  n.args = t.args or {}
  return n
end

-- A remote A2A agent as a node (docs/a2a.md): w.remote{ name, agent =
-- URL, input = "template {key}" | function(ctx), output_key, auth = {
-- bearer_env = "NAME" }, headers, timeout, retry }.  Its name is also the
-- grant's tool "NAME.send", limited to the agent's host.
local remotes, remote_order, remote_nodes = {}, {}, {}
function w.remote(t)
  local at = where()
  check("remote", t, at, false)
  local what = "remote '" .. tostring(t.name or "?") .. "'"
  if type(t.name) ~= "string" or not t.name:match("^[%w_%-]+$") then
    fail(at, "w.remote needs a name of letters, digits, '_' and '-' (it names the grant's tool NAME.send)")
  end
  if type(t.agent) ~= "string" then
    fail(at, "%s: agent must be the agent's http(s) URL", what)
  end
  local host = t.agent:match("^[hH][tT][tT][pP][sS]?://([^/:?#@]+)")
  if not host or t.agent:match("^[^/]*//[^/]*@") then
    fail(at, "%s: agent '%s' is not an http or https URL (no user or password in it)", what, t.agent)
  end
  if t.input ~= nil and type(t.input) ~= "string" and type(t.input) ~= "function" then
    fail(at, "%s: input must be a template string (\"... {key} ...\") or a function(ctx)", what)
  end
  if t.auth ~= nil then
    if type(t.auth) ~= "table" or type(t.auth.bearer_env) ~= "string" or
        not t.auth.bearer_env:match("^[%a_][%w_]*$") or next(t.auth, next(t.auth)) ~= nil then
      fail(at, "%s: auth must be { bearer_env = \"NAME\" }, the name of an environment variable of the coordinator (the secret itself never goes in a workflow)", what)
    end
  end
  if t.headers ~= nil then
    if type(t.headers) ~= "table" then fail(at, "%s: headers must map names to strings", what) end
    for k, v in pairs(t.headers) do
      if type(k) ~= "string" or not k:match("^[%w%-]+$") or type(v) ~= "string" or v:match("[\r\n]") then
        fail(at, "%s: headers must map header names to one-line strings", what)
      end
    end
  end
  for _, k in ipairs{ "max_response", "stream_seconds" } do
    if t[k] ~= nil and (type(t[k]) ~= "number" or t[k] <= 0) then
      fail(at, "%s: %s must be a positive number", what, k)
    end
  end
  if t.context_id ~= nil and type(t.context_id) ~= "string" then
    fail(at, "%s: context_id must be a template string", what)
  end
  local n = node("remote", t, at)
  n.policy = check_policy(t, at, what)
  n.host = host:lower():gsub("%.$", "")
  if remotes[t.name] and remotes[t.name] ~= n.host then
    fail(at, "%s: another w.remote of that name calls host '%s'", what, remotes[t.name])
  end
  if not remotes[t.name] then remote_order[#remote_order + 1] = t.name end
  remotes[t.name] = n.host
  remote_nodes[t.name] = n
  return n
end

-- A remote agent offered to an LLM agent as a tool taking a message:
-- w.a2a(remote_node_or_name, { name = ..., description = ... }).
local A2A_INPUT = { type = "object", required = core.array{ "message" },
  properties = { message = { type = "string", description = "The message to send to the agent" } } }
function w.a2a(remote, opts)
  local at = where()
  if type(remote) == "string" then remote = remote_nodes[remote] or remote end
  if not is_node(remote) or remote.kind ~= "remote" then
    fail(at, "w.a2a needs a w.remote{...} node or the name of one declared before, got %s",
         type(remote) == "string" and ("'" .. remote .. "'") or type(remote))
  end
  if opts ~= nil and type(opts) ~= "table" then fail(at, "w.a2a: options must be a table") end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "name" and k ~= "description" then
      fail(at, "w.a2a: unknown option '%s' (name, description)", tostring(k))
    end
  end
  return setmetatable({ agent = remote, name = opts.name or remote.name, input_schema = A2A_INPUT,
                        -- none: the agent card's (read once per run, lua/weft/remote.lua)
                        description = opts.description or remote.description,
                        where = at }, AGENTTOOL)
end

-- The transport fields of an mcp_server: command (stdio) xor url (HTTP).
local function server_transport(t, at, s)
  if t.url ~= nil then
    if t.command ~= nil then
      fail(at, "mcp_server '%s': give command (a local server) or url (a remote one), not both", t.name)
    end
    if type(t.url) ~= "string" or not t.url:match("^https?://[^%s]+$") then
      fail(at, "mcp_server '%s': url must be an http:// or https:// URL, got %s", t.name, tostring(t.url))
    end
    for _, k in ipairs{ "env", "cwd", "sandbox", "npm", "args", "bin" } do
      if t[k] ~= nil then
        fail(at, "mcp_server '%s': %s applies to a command server, not to a url one " ..
             "(a remote server runs elsewhere: weft cannot confine or configure its process)", t.name, k)
      end
    end
    s.url = t.url
    if t.transport ~= nil and t.transport ~= "sse" and t.transport ~= "streamable_http" then
      fail(at, "mcp_server '%s': transport must be \"streamable_http\" or \"sse\", got %s", t.name,
           tostring(t.transport))
    end
    s.transport = t.transport == "sse" and "sse" or nil
    if t.headers ~= nil then
      if type(t.headers) ~= "table" then fail(at, "mcp_server '%s': headers must be a table", t.name) end
      local h = {}
      for k, v in pairs(t.headers) do
        if type(k) ~= "string" or not k:match("^[%w!#$%%&'*+.^_`|~-]+$") or type(v) ~= "string"
            or v:find("[\r\n]") then
          fail(at, "mcp_server '%s': headers must map header names to one-line strings", t.name)
        end
        h[k] = v
      end
      s.headers = h
    end
    return
  end
  if t.headers ~= nil then fail(at, "mcp_server '%s': headers apply to a url server", t.name) end
  if t.transport ~= nil then fail(at, "mcp_server '%s': transport applies to a url server", t.name) end
  if t.npm ~= nil or t.args ~= nil or t.bin ~= nil then
    s.npm, s.args, s.bin = F.check_npm(t, at)
  elseif type(t.command) ~= "table" or #t.command == 0 then
    fail(at, "mcp_server '%s' needs command = { \"program\", \"arg\", ... } or url = \"http://...\"", t.name)
  end
  local cmd = {}
  for i, a in ipairs(t.command or {}) do
    if type(a) ~= "string" then fail(at, "mcp_server '%s': command[%d] must be a string", t.name, i) end
    cmd[i] = a
  end
  -- A relative program path is relative to the workflow file, so the
  -- workflow runs the same from any directory.
  if cmd[1] and cmd[1]:find("/") and cmd[1]:sub(1, 1) ~= "/" then
    cmd[1] = core.script_dir() .. "/" .. cmd[1]
  end
  local env = {}
  for k, v in pairs(t.env or {}) do
    if type(k) ~= "string" or type(v) ~= "string" then
      fail(at, "mcp_server '%s': env must map names to strings", t.name)
    end
    env[k] = v
  end
  if t.cwd ~= nil and type(t.cwd) ~= "string" then fail(at, "mcp_server '%s': cwd must be a string", t.name) end
  s.command, s.env, s.cwd = cmd, env, t.cwd
  s.sandbox = check_sandbox(t.sandbox, at, t.name)
end

function w.mcp_server(t, at)
  at = type(at) == "string" and at or where()
  if type(t) ~= "table" then fail(at, "w.mcp_server expects a table") end
  local allowed = set{ "name", "command", "env", "cwd", "url", "headers", "sandbox", "timeout", "ping",
                       "retry", "idempotent", "state", "transport", "npm", "args", "bin", "on",
                       "keep" }
  for k in pairs(t) do
    if type(k) ~= "string" or not allowed[k] then
      fail(at, "unknown field '%s' in mcp_server%s", tostring(k), suggest(tostring(k), allowed))
    end
  end
  if type(t.name) ~= "string" or not t.name:match("^[%w_%-]+$") then
    fail(at, "mcp_server needs a name of letters, digits, '_' or '-'")
  end
  if servers[t.name] then
    fail(at, "mcp_server '%s' is declared twice (first at %s)", t.name, servers[t.name].where)
  end
  local policy = check_policy(t, at, "mcp_server '" .. t.name .. "'")
  local s = { is_server = true, name = t.name, where = at, policy = policy,
              timeout = policy and policy.timeout and policy.timeout.attempt,
              ping = seconds(t, "ping", at) }
  server_transport(t, at, s)
  s.state = F.check_state(t, at)
  if not s.url then F.sandbox_warnings(s, at) end
  if t.on ~= nil and (type(t.on) ~= "string" or not t.on:match("^[%w_%-%.]+$") or #t.on > 64) then
    fail(at, "mcp_server '%s': on must be a worker label (letters, digits, '_', '-', '.'), got %s", t.name, tostring(t.on))
  end
  s.on = t.on
  -- keep = "workflow": one warm server process for the runs of this
  -- workflow (stateless servers); the default, "run", starts one per run.
  if t.keep ~= nil and t.keep ~= "run" and t.keep ~= "workflow" then
    fail(at, "mcp_server '%s': keep must be \"run\" (a server process for each run, the default) or \"workflow\" (one shared by the runs of this workflow, for stateless servers), got %s", t.name, tostring(t.keep))
  end
  if t.keep == "workflow" then
    local file = at:match("^(.*):%d+$") or at
    s.keep = core.script_dir() .. "/" .. (file:match("([^/]+)$") or file)
  end
  servers[t.name] = s
  server_order[#server_order + 1] = t.name
  return s
end

-- w.mcp_config: lua/weft/config.lua.
core.module("weft.config", core, w, U)

-- Tools of a server offered to an agent: w.mcp("srv", { only = {...}, prefix = "srv_" }).
function w.mcp(s, opts)
  local at = where()
  local name = server_of(s, at, "w.mcp")
  if opts ~= nil and type(opts) ~= "table" then fail(at, "w.mcp: options must be a table") end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "only" and k ~= "prefix" then
      fail(at, "w.mcp: unknown option '%s'%s", tostring(k), suggest(tostring(k), set{ "only", "prefix" }))
    end
  end
  return setmetatable({ server = name, only = opts.only, prefix = opts.prefix, where = at }, TOOLSET)
end

-- w.exit_loop as a tool ends the nearest loop; w.exit_loop() from a fn does too.
w.exit_loop = setmetatable({}, {
  __call = function() return EXIT end,
  __tostring = function() return "w.exit_loop" end,
})

-- An agent offered to another as a tool: w.agent_tool(agent, { name =
-- ..., description = ..., budget = {...} }).  The caller's model asks it
-- with { request = "..." }; it runs as a child node, in its own envelope
-- (budget, carved from the caller's) and on a fork of the state.
function w.agent_tool(agent, opts)
  local at = where()
  if not is_node(agent) or agent.kind ~= "agent" then
    fail(at, "w.agent_tool needs an agent (w.agent{...}), got %s", is_node(agent) and agent.kind or type(agent))
  end
  opts = opts or {}
  check("agent_tool", opts, at, false)
  return setmetatable({ agent = agent, name = opts.name or agent.name, budget = opts.budget,
                        description = opts.description or agent.description or
                          string.format("Ask the agent '%s'. Give it the whole request: it sees only what you send.",
                                        agent.name),
                        where = at }, AGENTTOOL)
end

-- w.escalate(reason) returned from a fn, or w.escalate offered to an
-- agent as a tool: fail upward, through every enclosing node (a loop does
-- not consume it, a map does not collect it, a retry does not retry it).
w.escalate = setmetatable({}, {
  __call = function(_, reason)
    return setmetatable({ reason = reason ~= nil and tostring(reason) or "escalated" }, ESCALATE)
  end,
  __tostring = function() return "w.escalate" end,
})

-- Marks a table to be encoded as a JSON array even when empty.
function w.array(t) return core.array(t or {}) end

function w.now() return core.runner_now(w._internal.current_path()) end
function w.random(m, n) return core.runner_random(w._internal.current_path(), m, n) end

-- Used by lua/luaeng.c and the runner.
w._internal = {
  is_node = is_node, servers = servers, server_order = server_order,
  providers = providers, provider_order = provider_order, run_hooks = run_hooks,
  remotes = remotes, remote_order = remote_order,
  EXIT = EXIT, EXIT_TOOL = w.exit_loop, ESCALATE = ESCALATE, AGENTTOOL = AGENTTOOL, TOOLSET = TOOLSET, fail = fail,
}

-- Whether a declared server runs unconfined (sandbox = false) or in debug
-- mode: then the workers confine themselves without seccomp, whose filter
-- would be inherited by, and override, theirs (docs/security.md).
-- Whether the graph can make a task for a worker (an MCP server or a
-- remote agent is declared): its workers start with the coordinator.
function w._internal.needs_workers()
  return #server_order > 0 or #remote_order > 0
end

function w._internal.servers_unconfined()
  for _, name in ipairs(server_order) do
    local sb = servers[name].sandbox
    if sb == false or (type(sb) == "table" and sb.debug) then return true end
  end
  return false
end

-- The whole-graph checks and the graph printer: lua/weft/validate.lua,
-- lua/weft/graph.lua.
core.module("weft.validate", core, w, U)
core.module("weft.graph", core, w)

return w
