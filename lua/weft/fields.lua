-- weft.fields: the checks of a constructor's fields (names, types, the
-- grant, budget, policy and sandbox tables), each failing with
-- "file:line: ..." at the workflow line that made the node.

local core, U = ...
local type, tostring, ipairs, pairs, next, select = type, tostring, ipairs, pairs, next, select
local error, pcall, setmetatable, getmetatable = error, pcall, setmetatable, getmetatable
local string, table, math, coroutine = string, table, math, coroutine
local fail, suggest, set = U.fail, U.suggest, U.set

local common = { "name", "description", "budget", "grant" }
-- Accepted by the design, not by this build: refused rather than ignored.
local later = { retry = "retry policies", timeout = "timeouts",
                sandbox = "sandbox profiles", headers = "HTTP headers" }
local fields = {
  agent = set{ "model", "instruction", "tools", "output_key", "max_turns",
               "script", "input", "max_tokens", "temperature", "stream", "retry",
               "timeout", "stall_timeout", "output_schema", "output_retries", "hooks",
               "budget_in_prompt", "sub_agents", "max_transfers" },
  agent_tool = set{},
  sequential = set{ "reducers", "retry", "timeout" },
  parallel = set{ "reducers", "retry", "timeout" },
  loop = set{ "max_iterations", "until", "reducers", "retry", "timeout" },
  fn = set{ "output_key", "run", "retry", "timeout" },
  map = set{ "over", "as", "concurrency", "on_error", "output_key", "reducers", "node",
              "retry", "timeout" },
  tool = set{ "server", "tool", "args", "output_key", "timeout", "retry", "idempotent" },
  approval = set{ "prompt", "schema", "timeout", "on_timeout", "output_key" },
  remote = set{ "agent", "input", "output_key", "auth", "headers", "timeout", "retry",
                "idempotent", "context_id", "max_response", "stream_seconds" },
}
for _, f in pairs(fields) do
  for _, c in ipairs(common) do f[c] = true end
end

-- A node's capability grant (docs/security.md): { tools = {"srv.tool", "srv.*"},
-- args = { ["srv.tool"] = { path = { prefix = {...} } } }, max_calls = n }.
-- The shape is checked here; the engine checks the rest when it mints.
local function check_grant(g, at, what)
  what = what .. ": grant"
  if type(g) ~= "table" then fail(at, "%s must be a table", what) end
  for k in pairs(g) do
    if k ~= "tools" and k ~= "args" and k ~= "max_calls" then
      fail(at, "%s: unknown field '%s' (tools, args, max_calls)", what, tostring(k))
    end
  end
  if type(g.tools) ~= "table" or #g.tools == 0 then
    fail(at, "%s: tools must be a non-empty list of \"server.tool\" or \"server.*\"", what)
  end
  for i, p in ipairs(g.tools) do
    if type(p) ~= "string" or not p:match("^[%w_%-]+%.[%w_%-%./]+$") and not p:match("^[%w_%-]+%.%*$") then
      fail(at, "%s: tools[%d] must be \"server.tool\" or \"server.*\", got %s", what, i,
           type(p) == "string" and ("'" .. p .. "'") or type(p))
    end
  end
  if g.args ~= nil and type(g.args) ~= "table" then fail(at, "%s: args must be a table", what) end
  if g.max_calls ~= nil and (math.type(g.max_calls) ~= "integer" or g.max_calls < 1) then
    fail(at, "%s: max_calls must be a positive integer", what)
  end
end

-- Check a constructor's table: field names, and types of common fields.
local function check(kind, t, at, has_children)
  if type(t) ~= "table" then
    fail(at, "w.%s expects a table, got %s", kind, type(t))
  end
  local allowed = fields[kind]
  local label = t.name and ("'" .. tostring(t.name) .. "'") or "(unnamed)"
  -- Positional children (1..#t) are checked here.  The other keys are
  -- looked at once; only when one is wrong are they sorted, so the first
  -- error reported does not depend on table order (sorting the fields of
  -- every node cost a third of loading a graph of 10,000 agents).
  local keys, n, bad = {}, #t, false
  for k in pairs(t) do
    if math.type(k) == "integer" and k >= 1 and k <= n then
      if not has_children then fail(at, "%s %s takes no positional children", kind, label) end
    else
      keys[#keys + 1] = k
      if not allowed[k] then bad = true end
    end
  end
  if bad then table.sort(keys, function(a, b) return tostring(a) < tostring(b) end) end
  for _, k in ipairs(keys) do
    if type(k) == "string" then
      if later[k] and not allowed[k] then
        fail(at, "%s %s: '%s' (%s) is not supported yet by this build", kind, label, k, later[k])
      end
      if not allowed[k] then
        fail(at, "unknown field '%s' in %s %s%s", k, kind, label,
             suggest(k, allowed))
      end
    elseif type(k) == "number" then
      if not has_children then
        fail(at, "%s %s takes no positional children", kind, label)
      end
    else
      fail(at, "%s %s: field keys must be names", kind, label)
    end
  end
  if t.name ~= nil then
    if type(t.name) ~= "string" or not t.name:match("^[%w_%-%.]+$") then
      fail(at, "%s: name must be a string of letters, digits, '_', '-' or '.', got %s",
           kind, type(t.name) == "string" and ("'" .. t.name .. "'") or type(t.name))
    end
  end
  if t.budget ~= nil then
    local dims = set{ "usd", "tokens", "input_tokens", "output_tokens", "model_calls",
                      "tool_calls", "seconds", "depth" }
    if type(t.budget) ~= "table" then fail(at, "%s %s: budget must be a table", kind, label) end
    for k, v in pairs(t.budget) do
      if k == "on_exceed" then
        if v ~= "fail" and v ~= "pause" then
          fail(at, "%s %s: budget.on_exceed must be \"fail\" or \"pause\", got %s", kind, label,
               type(v) == "string" and ("'" .. v .. "'") or type(v))
        end
      elseif not dims[k] then
        fail(at, "%s %s: unknown budget dimension '%s'%s (usd, tokens, input_tokens, output_tokens, model_calls, tool_calls, seconds, depth)",
             kind, label, tostring(k), suggest(tostring(k), dims))
      elseif type(v) ~= "number" or v < 0 then
        fail(at, "%s %s: budget.%s must be a non-negative number", kind, label, k)
      end
    end
  end
  if t.grant ~= nil then check_grant(t.grant, at, kind .. " " .. label) end
  if t.output_key ~= nil and (type(t.output_key) ~= "string" or
      not t.output_key:match("^[%a_][%w_]*$")) then
    fail(at, "%s %s: output_key must be an identifier", kind, label)
  end
end

-- A workflow served as an MCP tool (docs/mcp.md): a sequential root with
-- the tool's name, description and schemas, and the resources and prompts
-- the server publishes with it.  Data only: nothing here runs in the server.
fields.workflow = set{ "name", "description", "budget", "reducers", "title", "input_schema",
                       "output_schema", "output_format", "resources", "prompts" }

local function check_strings(at, what, t, names, required)
  for _, k in ipairs(names) do
    if t[k] ~= nil and type(t[k]) ~= "string" then fail(at, "%s: %s must be a string", what, k) end
  end
  for _, k in ipairs(required or {}) do
    if t[k] == nil then fail(at, "%s needs %s", what, k) end
  end
end

local function check_resources(at, list)
  if type(list) ~= "table" then fail(at, "workflow: resources must be a list of tables") end
  for i, r in ipairs(list) do
    local what = "workflow: resources[" .. i .. "]"
    if type(r) ~= "table" then fail(at, "%s must be a table", what) end
    check_strings(at, what, r, { "uri", "uri_template", "name", "title", "description",
                                 "mime_type", "text", "blob" }, { "name" })
    if (r.uri == nil) == (r.uri_template == nil) then
      fail(at, "%s needs exactly one of uri, uri_template", what)
    end
    if (r.text == nil) == (r.blob == nil) then
      fail(at, "%s needs exactly one of text, blob (base64)", what)
    end
  end
end

local function check_prompts(at, list)
  if type(list) ~= "table" then fail(at, "workflow: prompts must be a list of tables") end
  for i, p in ipairs(list) do
    local what = "workflow: prompts[" .. i .. "]"
    if type(p) ~= "table" then fail(at, "%s must be a table", what) end
    check_strings(at, what, p, { "name", "title", "description" }, { "name", "messages" })
    if type(p.messages) ~= "table" or #p.messages == 0 then
      fail(at, "%s: messages must be a non-empty list of { role = ..., content = {...} }", what)
    end
    for j, m in ipairs(p.messages) do
      if type(m) ~= "table" or (m.role ~= "user" and m.role ~= "assistant")
          or type(m.content) ~= "table" or type(m.content.type) ~= "string" then
        fail(at, "%s: messages[%d] needs role \"user\" or \"assistant\" and content = { type = ... }", what, j)
      end
    end
    for j, a in ipairs(p.arguments or {}) do
      if type(a) ~= "table" or type(a.name) ~= "string" then
        fail(at, "%s: arguments[%d] needs a name", what, j)
      end
    end
  end
end

-- Task execution policy (docs/workflows.md, "Timeouts and retries"):
-- timeout = seconds of one attempt, or { attempt, total, queue, heartbeat };
-- retry = { max_attempts, backoff, max_backoff, multiplier, on = {kinds} };
-- idempotent = false: a call lost in flight is never re-run blindly.
local TIMEOUTS = set{ "attempt", "total", "queue", "heartbeat" }
local RETRY_FIELDS = set{ "max_attempts", "backoff", "max_backoff", "multiplier", "on" }
local RETRY_KINDS = set{ "timeout", "lost_worker", "server_exited", "server_start", "transport",
                         "protocol", "rate_limited" }
local function check_policy(t, at, what)
  local p = {}
  local function secs(v, name)
    if type(v) ~= "number" or v <= 0 or v > 86400 then
      fail(at, "%s: %s must be a number of seconds (0 < %s <= 86400), got %s", what, name, name,
           tostring(v))
    end
    return v
  end
  if type(t.timeout) == "number" then
    p.timeout = { attempt = secs(t.timeout, "timeout") }
  elseif type(t.timeout) == "table" then
    p.timeout = {}
    for k, v in pairs(t.timeout) do
      if not TIMEOUTS[k] then
        fail(at, "%s: unknown field '%s' in timeout (attempt, total, queue, heartbeat)%s", what,
             tostring(k), suggest(tostring(k), TIMEOUTS))
      end
      p.timeout[k] = secs(v, "timeout." .. k)
    end
  elseif t.timeout ~= nil then
    fail(at, "%s: timeout must be seconds or { attempt, total, queue, heartbeat }", what)
  end
  if t.retry ~= nil then
    if type(t.retry) ~= "table" then fail(at, "%s: retry must be a table", what) end
    p.retry = {}
    for k, v in pairs(t.retry) do
      if not RETRY_FIELDS[k] then
        fail(at, "%s: unknown field '%s' in retry%s", what, tostring(k), suggest(tostring(k), RETRY_FIELDS))
      end
      if k == "max_attempts" then
        if math.type(v) ~= "integer" or v < 1 or v > 100 then
          fail(at, "%s: retry.max_attempts must be an integer from 1 to 100", what)
        end
      elseif k == "on" then
        if type(v) ~= "table" then fail(at, "%s: retry.on must be a list of failure kinds", what) end
        local on = {}
        for i, kind in ipairs(v) do
          if not RETRY_KINDS[kind] then
            fail(at, "%s: retry.on[%d]: '%s' is not a retryable failure kind (%s)", what, i,
                 tostring(kind), "timeout, lost_worker, server_exited, server_start, transport, protocol, rate_limited")
          end
          on[i] = kind
        end
        v = core.array(on)
      elseif type(v) ~= "number" or v < 0 or v > 3600 or (k == "multiplier" and v < 1) then
        fail(at, "%s: retry.%s must be a number %s", what, k,
             k == "multiplier" and "from 1 to 3600" or "of seconds from 0 to 3600")
      end
      p.retry[k] = v
    end
  end
  if t.idempotent ~= nil then
    if type(t.idempotent) ~= "boolean" then fail(at, "%s: idempotent must be true or false", what) end
    p.idempotent = t.idempotent
  end
  return next(p) and p or nil
end

-- Sandbox profile of an MCP server (docs/security.md, "Sandbox").  The
-- checked profile travels in the server spec; the worker applies defaults
-- for the fields left out.
local SANDBOX_FIELDS = set{ "read", "write", "network", "memory", "cpu", "processes",
                            "files", "file_size", "env_allow", "require", "disable", "debug" }
local LAYERS = set{ "rlimits", "no_new_privs", "landlock", "landlock_net", "landlock_scope",
                    "seccomp", "userns", "netns" }
local OPTIONAL_LAYERS = set{ "landlock", "landlock_net", "landlock_scope", "seccomp", "userns", "netns" }
local SIZE_UNITS = { [""] = 1, K = 1024, M = 1024 ^ 2, G = 1024 ^ 3, T = 1024 ^ 4 }

-- state = true on an mcp_server: a directory of its own, per workflow file
-- and server, that outlives runs ($WEFT_STATE).  The worker makes it under
-- the state directory, keyed by the workflow file's path, returned here.
local function check_state(t, at)
  if t.state == nil or t.state == false then return nil end
  if t.state ~= true then
    fail(at, "mcp_server '%s': state must be true or false, got %s", t.name, tostring(t.state))
  end
  if t.url ~= nil then
    fail(at, "mcp_server '%s': state applies to a command server, not to a url one", t.name)
  end
  local file = at:match("^(.*):%d+$") or at
  return core.script_dir() .. "/" .. (file:match("([^/]+)$") or file)
end

-- npm = "@scope/pkg@1.2.3", args = {...}, bin = "name": a server the
-- worker installs once into its cache and runs without npx; returns the
-- package, its arguments and the bin to run.
local function check_npm(t, at)
  local what = "mcp_server '" .. t.name .. "'"
  if t.npm == nil then fail(at, "%s: args and bin go with npm = \"package@version\"", what) end
  if t.command ~= nil then fail(at, "%s: give command or npm, not both", what) end
  if type(t.npm) ~= "string" or not (t.npm:match("^@[%w._-]+/[%w._-]+@?[%w.^~<>=*|_ -]*$")
      or t.npm:match("^[%w._-]+@?[%w.^~<>=*|_ -]*$")) or t.npm:find("^[._]") then
    fail(at, "%s: npm must name a package, \"name\" or \"@scope/name\", with an optional @version, got %s",
         what, tostring(t.npm))
  end
  local args = {}
  if t.args ~= nil and type(t.args) ~= "table" then fail(at, "%s: args must be a list of strings", what) end
  for i, a in ipairs(t.args or {}) do
    if type(a) ~= "string" then fail(at, "%s: args[%d] must be a string", what, i) end
    args[i] = a
  end
  if t.bin ~= nil and (type(t.bin) ~= "string" or not t.bin:match("^[%w@._-]+$")) then
    fail(at, "%s: bin must name one of the package's programs", what)
  end
  return t.npm, core.array(args), t.bin
end

-- Warnings about a command server under its sandbox, found without running
-- it: npx, paths in its command line or sandbox lists that do not exist,
-- env variables naming files it may not write (docs/mcp-servers.md).
local function exists(p)
  local f = io.open(p, "r")
  if f then f:close() return true end
  return false
end

local function beneath(p, list)
  for _, d in ipairs(list or {}) do
    if p == d or p:sub(1, #d + 1) == d .. "/" or d == "/" then return true end
  end
  return false
end

local function sandbox_warnings(s, at)
  local sb, out = s.sandbox, {}
  local function warn(fmt, ...) out[#out + 1] = string.format(fmt, ...) end
  local what = "mcp_server '" .. s.name .. "'"
  local cmd = s.command or {}
  if sb ~= false and cmd[1] and (cmd[1] == "npx" or cmd[1]:match("/npx$")) then
    warn("%s: npx fetches its package at every start, and the sandbox gives it no network: " ..
         "use npm = \"PKG@VERSION\" (installed once, run without npx)", what)
  end
  local args = {}
  for i = 2, #cmd do args[#args + 1] = cmd[i] end
  for _, a in ipairs(s.args or {}) do args[#args + 1] = a end
  for _, a in ipairs(args) do
    local p = a:match("^%-[%w-]*=(/.*)$") or a:match("^/.*$")
    if p == "/" and sb ~= false then
      warn("%s: argument '/' is not made readable by the sandbox: name the directories the server needs",
           what)
    elseif p and not p:find("${", 1, true) and not exists(p) then
      warn("%s: argument '%s' does not exist (a path copied from an example?)", what, p)
    end
  end
  if type(sb) == "table" then
    for _, k in ipairs{ "read", "write" } do
      for _, p in ipairs(sb[k] or {}) do
        if not exists(p) then
          warn("%s: sandbox.%s path '%s' does not exist: the server will not start", what, k, p)
        end
      end
    end
  end
  if sb ~= false then
    local names = {}
    for k in pairs(s.env or {}) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do
      local v = s.env[k]
      if k ~= "PATH" and (k:match("PATH$") or k:match("FILE$") or k:match("DIR$") or k:match("ROOT$"))
          and v:match("^/[^:]*$") and not beneath(v, sb and sb.write) then
        local dir = v:match("^(.*)/[^/]*$")
        warn("%s: env %s names %s, which the sandbox does not let the server write: " ..
             "add sandbox = { write = { \"%s\" } }, or state = true and %s = \"${WEFT_STATE}/%s\"",
             what, k, v, exists(v) and v or (dir ~= "" and dir or "/"), k, v:match("([^/]*)$"))
      end
    end
  end
  for _, m in ipairs(out) do io.stderr:write("weft: warning: ", at, ": ", m, "\n") end
end

local function check_sandbox(sb, at, server)
  if sb == nil then return nil end
  if sb == false then return false end
  local what = "mcp_server '" .. server .. "': sandbox"
  if type(sb) ~= "table" then fail(at, "%s must be a table or false", what) end
  local keys = {}
  for k in pairs(sb) do
    if type(k) ~= "string" then fail(at, "%s: field keys must be names", what) end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local out = {}
  local function list(k, check)
    local v = sb[k]
    if type(v) ~= "table" then fail(at, "%s.%s must be a list of strings", what, k) end
    local r = {}
    for i, x in ipairs(v) do
      if type(x) ~= "string" or x == "" then
        fail(at, "%s.%s[%d] must be a non-empty string", what, k, i)
      end
      r[i] = check(x, i)
    end
    for kk in pairs(v) do
      if math.type(kk) ~= "integer" or kk < 1 or kk > #v then
        fail(at, "%s.%s must be a list of strings", what, k)
      end
    end
    return core.array(r)
  end
  local function path(x)
    -- Relative paths are relative to the workflow file, like command.
    if x:sub(1, 1) ~= "/" then x = core.script_dir() .. "/" .. x end
    return x
  end
  local function limit(k, sizes)
    local v = sb[k]
    if v == false then return false end
    if math.type(v) == "integer" and v > 0 then return v end
    if sizes and type(v) == "string" then
      local n, u = v:match("^(%d+)%s*([KMGT]?)i?B?$")
      if n and tonumber(n) > 0 then return math.tointeger(tonumber(n) * SIZE_UNITS[u]) end
    end
    fail(at, "%s.%s must be a positive integer%s or false, got %s", what, k,
         sizes and " of bytes, a size such as \"512M\" or \"4G\"," or "",
         type(v) == "string" and ("'" .. v .. "'") or tostring(v))
  end
  for _, k in ipairs(keys) do
    if not SANDBOX_FIELDS[k] then
      fail(at, "unknown field '%s' in %s%s", k, what, suggest(k, SANDBOX_FIELDS))
    elseif k == "read" or k == "write" then
      out[k] = list(k, path)
    elseif k == "env_allow" then
      out[k] = list(k, function(x, i)
        if not x:match("^[%a_][%w_]*$") then
          fail(at, "%s.env_allow[%d]: '%s' is not a variable name", what, i, x)
        end
        return x
      end)
    elseif k == "require" or k == "disable" then
      local allowed = k == "require" and LAYERS or OPTIONAL_LAYERS
      out[k] = list(k, function(x, i)
        if not allowed[x] then
          fail(at, "%s.%s[%d]: '%s' is not a layer that can be %s%s", what, k, i, x,
               k == "require" and "required" or "disabled", suggest(x, allowed))
        end
        return x
      end)
    elseif k == "network" or k == "debug" then
      if type(sb[k]) ~= "boolean" then fail(at, "%s.%s must be true or false", what, k) end
      out[k] = sb[k]
    else
      out[k] = limit(k, k == "memory" or k == "file_size")
    end
  end
  for _, x in ipairs(out.require or {}) do
    for _, y in ipairs(out.disable or {}) do
      if x == y then fail(at, "%s: layer '%s' is both required and disabled", what, x) end
    end
    if out.network and (x == "netns" or x == "landlock_net") then
      fail(at, "%s: '%s' cannot be required with network = true", what, x)
    end
  end
  return out
end

-- Seconds (a positive number) for an mcp_server field, or nil.
local function seconds(t, k, at)
  local v = t[k]
  if v == nil then return nil end
  if type(v) ~= "number" or v <= 0 or v > 86400 then
    fail(at, "mcp_server '%s': %s must be a number of seconds (0 < %s <= 86400), got %s",
         t.name, k, k, tostring(v))
  end
  return v
end

-- The policy of a node that is not a tool call: the tool fields, less
-- what only the coordinator's task queue can do.
local function check_node_policy(t, at, what)
  local p = check_policy(t, at, what)
  if not p then return nil end
  for _, k in ipairs{ "backoff", "max_backoff", "multiplier" } do
    if p.retry and p.retry[k] then
      fail(at, "%s: retry.%s applies to tool calls; a node's attempts start at once", what, k)
    end
  end
  for _, k in ipairs{ "queue", "heartbeat" } do
    if p.timeout and p.timeout[k] then
      fail(at, "%s: timeout.%s applies to tool calls; a node takes attempt and total", what, k)
    end
  end
  return p
end

return { fields = fields, check_node_policy = check_node_policy, check = check, check_grant = check_grant,
  check_strings = check_strings, check_resources = check_resources,
  check_prompts = check_prompts, check_policy = check_policy,
  check_sandbox = check_sandbox, seconds = seconds, check_state = check_state, check_npm = check_npm,
  sandbox_warnings = sandbox_warnings }
