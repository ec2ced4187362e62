-- weft.config: w.mcp_config, MCP servers declared from a host's JSON
-- config file.

local core, w, U = ...

local type, tostring, ipairs, pairs, next, select = type, tostring, ipairs, pairs, next, select
local error, pcall, setmetatable, getmetatable = error, pcall, setmetatable, getmetatable
local string, table, math, coroutine = string, table, math, coroutine
local where, fail, suggest, set = U.where, U.fail, U.suggest, U.set

-- Servers from a JSON config file in the format MCP hosts share
-- ({"mcpServers": {"name": {"command", "args", "env", "cwd"} | {"url", "headers"}}}):
-- w.mcp_config("servers.json", { sandbox = {...}, timeout = 30 }) declares
-- each, with the options applied to every command server; returns them by name.
local MCP_CONFIG_OPTS = set{ "sandbox", "timeout", "retry", "idempotent", "ping", "only" }

function w.mcp_config(path, opts)
  local at = where()
  if type(path) ~= "string" then fail(at, "w.mcp_config expects a file name") end
  if opts ~= nil and type(opts) ~= "table" then fail(at, "w.mcp_config: options must be a table") end
  opts = opts or {}
  for k in pairs(opts) do
    if not MCP_CONFIG_OPTS[k] then
      fail(at, "w.mcp_config: unknown option '%s' (sandbox, timeout, retry, idempotent, ping, only)%s",
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
  local list = cfg.mcpServers or cfg.servers
  if type(list) ~= "table" then fail(at, "w.mcp_config: %s has no /mcpServers object", path) end
  local names = {}
  for name in pairs(list) do names[#names + 1] = name end
  table.sort(names)
  local only = opts.only and set(opts.only)
  local out = {}
  for _, name in ipairs(names) do
    local e = list[name]
    if type(e) ~= "table" then fail(at, "w.mcp_config: %s: /mcpServers/%s must be an object", path, name) end
    if not only or only[name] then
      local t = { name = name, url = e.url, headers = e.headers, env = e.env, cwd = e.cwd,
                  timeout = opts.timeout, retry = opts.retry, idempotent = opts.idempotent,
                  ping = opts.ping }
      if e.command ~= nil then
        if type(e.command) ~= "string" then
          fail(at, "w.mcp_config: %s: /mcpServers/%s/command must be a string", path, name)
        end
        t.command = { e.command }
        for i, a in ipairs(type(e.args) == "table" and e.args or {}) do t.command[i + 1] = a end
        t.sandbox = opts.sandbox
      end
      local ok2, r = pcall(w.mcp_server, t)
      if not ok2 then
        fail(at, "w.mcp_config: %s: /mcpServers/%s: %s", path, name, (tostring(r):gsub("^.-%.lua:?%d*: ", "")))
      end
      out[name] = r
    end
  end
  return out
end

return w.mcp_config
