-- weft.util: the DSL's error helpers: where a workflow called us,
-- "file:line: ..." errors, "did you mean" hints and sets.

local core = ...

local type, tostring, ipairs, pairs, next, select = type, tostring, ipairs, pairs, next, select
local error, pcall, setmetatable, getmetatable = error, pcall, setmetatable, getmetatable
local string, table, math, coroutine = string, table, math, coroutine

local U = {}

-- Where the workflow called us: "file:line".  A constructor tail-called
-- by the chunk (`return w.sequential{...}`) leaves no caller frame: then
-- the line of the workflow file that ran last is the call's (core.where).
local function where(level)
  local at = core.where(level or 3)   -- not a tail call: it counts frames
  return at
end

local function fail(at, fmt, ...)
  error(at .. ": " .. string.format(fmt, ...), 0)
end

-- Levenshtein distance, for "did you mean" hints.
local function distance(a, b)
  local prev, cur = {}, {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    cur[0] = i
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev, cur = cur, prev
  end
  return prev[#b]
end

local function suggest(word, allowed)
  local best, bestd
  local names = {}
  for k in pairs(allowed) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    local d = distance(word, k)
    if d <= 2 and (bestd == nil or d < bestd) then best, bestd = k, d end
  end
  return best and (" (did you mean '" .. best .. "'?)") or ""
end

local function set(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

U.where, U.fail, U.distance, U.suggest, U.set = where, fail, distance, suggest, set
return U
