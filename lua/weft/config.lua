-- weft.config: w.mcp_config, MCP servers declared from a host's JSON
-- config file.

local core, w, U = ...

local type, tostring, ipairs, pairs, next, select = type, tostring, ipairs, pairs, next, select
local error, pcall, setmetatable, getmetatable = error, pcall, setmetatable, getmetatable
local string, table, math, coroutine = string, table, math, coroutine
local where, fail, suggest, set = U.where, U.fail, U.suggest, U.set

-- Servers from a JSON config file in the format MCP hosts share
-- ({"mcpServers": {"name": {"command", "args", "env", "cwd"} | {"url", "headers"}}},
-- VS Code's {"servers": {...}} with "type"): w.mcp_config("servers.json",
-- { sandbox = {...}, timeout = 30, servers = { name = { sandbox = {...}, state = true } } })
-- declares each, with the options applied to every command server and a
-- server's own options over them; returns them by name.
local MCP_CONFIG_OPTS = set{ "sandbox", "timeout", "retry", "idempotent", "ping", "only", "servers" }
local MCP_SERVER_OPTS = set{ "sandbox", "state", "timeout", "retry", "idempotent", "ping", "cwd", "env" }

-- The directory ${workspaceFolder} names: the config file's, or its parent
-- when the file is in .vscode/ or .cursor/ (where those editors keep it).
local function workspace_of(path)
  local dir = path:match("^(.*)/[^/]*$") or "."
  if dir == "" then dir = "/" end
  local parent, last = dir:match("^(.*)/([^/]+)$")
  if last == ".vscode" or last == ".cursor" then return parent ~= "" and parent or "/" end
  return dir
end

-- A string of the config with ${env:NAME}, ${workspaceFolder},
-- ${userHome} and a leading ~ expanded; a variable weft cannot expand
-- (${input:...}, an unset ${env:NAME}) is an error naming its JSON pointer.
local function expand(v, ptr, ctx)
  if type(v) ~= "string" then return v end
  local home = os.getenv("HOME")
  if v == "~" or v:sub(1, 2) == "~/" then
    if not home then ctx.fail("%s: cannot expand ~: HOME is not set", ptr) end
    v = home .. v:sub(2)
  end
  return (v:gsub("%${([^}]*)}", function(name)
    local var = name:match("^env:([%w_]+)$")
    if var then
      local val = os.getenv(var)
      if val == nil then ctx.fail("%s: ${env:%s} is not set in weft's environment", ptr, var) end
      return val
    elseif name == "workspaceFolder" then
      return ctx.workspace
    elseif name == "userHome" then
      if not home then ctx.fail("%s: cannot expand ${userHome}: HOME is not set", ptr) end
      return home
    elseif name == "WEFT_STATE" or name == "WEFT_SCRATCH" then
      return nil   -- expanded by the worker
    end
    ctx.fail("%s: ${%s} cannot be expanded by weft (it knows ${env:NAME}, ${workspaceFolder}, " ..
             "${userHome}, ${WEFT_STATE}, ${WEFT_SCRATCH} and ~)", ptr, name)
  end))
end

-- `npx [-y|--yes] PKG ARGS...` as an npm package the worker installs once
-- and runs without npx: PKG and ARGS, or nil when the command is another.
local function npx_package(cmd)
  if cmd[1] ~= "npx" and not cmd[1]:match("/npx$") then return nil end
  local i = 2
  while cmd[i] == "-y" or cmd[i] == "--yes" or cmd[i] == "-q" or cmd[i] == "--quiet" do i = i + 1 end
  if cmd[i] == nil or cmd[i]:sub(1, 1) == "-" then return nil end
  local args = {}
  for j = i + 1, #cmd do args[#args + 1] = cmd[j] end
  return cmd[i], args
end

function w.mcp_config(path, opts)
  local at = where()
  if type(path) ~= "string" then fail(at, "w.mcp_config expects a file name") end
  if opts ~= nil and type(opts) ~= "table" then fail(at, "w.mcp_config: options must be a table") end
  opts = opts or {}
  for k in pairs(opts) do
    if not MCP_CONFIG_OPTS[k] then
      fail(at, "w.mcp_config: unknown option '%s' (sandbox, timeout, retry, idempotent, ping, only, servers)%s",
           tostring(k), suggest(tostring(k), MCP_CONFIG_OPTS))
    end
  end
  if path:sub(1, 1) ~= "/" then path = core.script_dir() .. "/" .. path end
  local f, err = io.open(path, "rb")
  if not f then fail(at, "w.mcp_config: cannot read %s", err) end
  local text = f:read(1048577)
  f:close()
  if #text > 1048576 then fail(at, "w.mcp_config: %s is larger than 1 MiB", path) end
  local cfg, jerr = core.json_decode(text)
  if type(cfg) ~= "table" then
    fail(at, "w.mcp_config: %s is not a JSON object%s", path, jerr and (": " .. tostring(jerr)) or "")
  end
  local key = cfg.mcpServers and "mcpServers" or "servers"
  local list = cfg[key]
  if type(list) ~= "table" then fail(at, "w.mcp_config: %s has no /mcpServers object", path) end
  local names = {}
  for name in pairs(list) do names[#names + 1] = name end
  table.sort(names)
  local per = opts.servers or {}
  if type(per) ~= "table" then fail(at, "w.mcp_config: servers must map server names to options") end
  for name, o in pairs(per) do
    if list[name] == nil then
      fail(at, "w.mcp_config: servers.%s: %s has no server '%s' (it has %s)%s", tostring(name), path,
           tostring(name), #names > 0 and table.concat(names, ", ") or "none",
           suggest(tostring(name), set(names)))
    end
    if type(o) ~= "table" then fail(at, "w.mcp_config: servers.%s must be a table of options", name) end
    for k in pairs(o) do
      if not MCP_SERVER_OPTS[k] then
        fail(at, "w.mcp_config: servers.%s: unknown option '%s' (sandbox, state, timeout, retry, idempotent, " ..
             "ping, cwd, env)%s", name, tostring(k), suggest(tostring(k), MCP_SERVER_OPTS))
      end
    end
  end
  local only = opts.only and set(opts.only)
  local ctx = { workspace = workspace_of(path),
                fail = function(fmt, ...) fail(at, "w.mcp_config: %s: " .. fmt, path, ...) end }
  local out = {}
  for _, name in ipairs(names) do
    local e = list[name]
    local ptr = "/" .. key .. "/" .. name
    if type(e) ~= "table" then fail(at, "w.mcp_config: %s: %s must be an object", path, ptr) end
    local o = per[name] or {}
    local function pick(k) if o[k] ~= nil then return o[k] end return opts[k] end
    if (not only or only[name]) and e.disabled ~= true then
      local kind = e.type
      if kind ~= nil and kind ~= "stdio" and kind ~= "sse" and kind ~= "http" and kind ~= "streamable-http"
          and kind ~= "streamableHttp" then
        fail(at, "w.mcp_config: %s: %s/type must be \"stdio\", \"sse\" or \"http\", got %s", path, ptr,
             tostring(kind))
      end
      local env
      if type(e.env) == "table" then
        env = {}
        for k, v in pairs(e.env) do env[k] = expand(v, ptr .. "/env/" .. tostring(k), ctx) end
      else
        env = e.env
      end
      for k, v in pairs(o.env or {}) do env = env or {}; env[k] = v end
      local headers
      if type(e.headers) == "table" then
        headers = {}
        for k, v in pairs(e.headers) do headers[k] = expand(v, ptr .. "/headers/" .. tostring(k), ctx) end
      else
        headers = e.headers
      end
      local t = { name = name, url = expand(e.url, ptr .. "/url", ctx), headers = headers, env = env,
                  cwd = expand(o.cwd or e.cwd, ptr .. "/cwd", ctx),
                  timeout = pick("timeout"), retry = pick("retry"), idempotent = pick("idempotent"),
                  ping = pick("ping") }
      -- Without a type, a URL ending in /sse is the HTTP+SSE transport's
      -- stream, as hosts that guess take it.
      if kind == nil and type(e.url) == "string" and e.url:match("/sse/?$") then kind = "sse" end
      if kind == "sse" then t.transport = "sse" end
      if e.command ~= nil then
        if type(e.command) ~= "string" then
          fail(at, "w.mcp_config: %s: %s/command must be a string", path, ptr)
        end
        t.command = { expand(e.command, ptr .. "/command", ctx) }
        for i, a in ipairs(type(e.args) == "table" and e.args or {}) do
          t.command[i + 1] = expand(a, ptr .. "/args/" .. (i - 1), ctx)
        end
        t.npm, t.args = npx_package(t.command)
        if t.npm then t.command = nil end
        t.sandbox = pick("sandbox")
        t.state = o.state
      end
      local ok2, r = pcall(w.mcp_server, t, at)
      if not ok2 then
        fail(at, "w.mcp_config: %s: %s: %s", path, ptr, (tostring(r):gsub("^.-%.lua:?%d*: ", "")))
      end
      out[name] = r
    end
  end
  return out
end

return w.mcp_config
