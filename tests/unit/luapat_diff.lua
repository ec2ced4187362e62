-- luapat_diff.lua: weft's pattern functions (W, lua/luapat.c) against the
-- stock string library, on generated patterns and subjects.  Run by
-- tests/unit/test_luapat.c: W is given, as are the seed, the number of
-- cases and budget(n), which makes W's n-th poll raise "stopped at poll"
-- (a poll comes every few thousand steps).  Returns the number of calls
-- compared and the number skipped, or raises naming the first difference.
--
-- Some generated patterns backtrack for hours on some subjects: the very
-- thing weft's functions can be stopped in, and the stock ones cannot.
-- Each call runs on W first with a budget; a call that W does not finish
-- within it is not given to the stock library (and counted as skipped).
local W, seed, cases, budget = ...
local S = string
math.randomseed(seed)
local rnd = math.random

local function pick(t) return t[rnd(#t)] end

local SUBJECT_CHARS = { "a", "a", "a", "b", "b", "c", "x", "A", " ", "1", "2", "(", ")", "[",
                        "]", "%", "-", ".", "^", "$", "_", "\0", "\n", "\200" }

local function subject()
  local n = rnd(0, 3) == 0 and rnd(0, 40) or rnd(0, 10)
  local t = {}
  for i = 1, n do t[i] = pick(SUBJECT_CHARS) end
  return table.concat(t)
end

local ATOMS = { "a", "a", "b", "c", "x", " ", "1", ".", ".", "%a", "%d", "%s", "%w", "%p",
                "%l", "%u", "%x", "%c", "%g", "%A", "%S", "%W", "%%", "%.", "%(", "%)",
                "%[", "%]", "%-", "%^", "%$", "[abc]", "[^a]", "[a-c]", "[%a_]", "[]]", "[^]a]",
                "[%]]", "[a-]", "[-a]", "[%d-z]", "[^%s]", "[.]", "[a%-c]", "\0", "%z", "%Z",
                "%q", "%1", "%2" }
local SPECIALS = { "%b()", "%b[]", "%baa", "%f[%w]", "%f[^a]", "%f[%z]", "%f[a]", "()", "%1",
                   "%2", "%0", "$", "^" }
-- Pieces that make malformed patterns.
local BROKEN = { "[", "%", "(", ")", "[a", "%b", "%b(", "%f", "%fa", "[^", "[%", "%f[a" }
local QUANT = { "", "", "", "*", "+", "-", "?" }

local pattern
local function items(depth)
  local t, n = {}, rnd(0, 5)
  for i = 1, n do
    local r = rnd(100)
    if r <= 60 then
      t[#t + 1] = pick(ATOMS) .. pick(QUANT)
    elseif r <= 75 then
      t[#t + 1] = pick(SPECIALS)
    elseif r <= 92 and depth < 3 then
      t[#t + 1] = "(" .. items(depth + 1) .. ")"
    elseif r <= 95 then
      t[#t + 1] = pick(BROKEN)
    else
      t[#t + 1] = pick(SUBJECT_CHARS)
    end
  end
  return table.concat(t)
end

function pattern()
  local p = items(0)
  if rnd(4) == 1 then p = "^" .. p end
  if rnd(4) == 1 then p = p .. "$" end
  return p
end

-- A call's outcome as comparable text: its results with their types, or
-- its error with the name of the function taken out.
local function outcome(ok, ...)
  if not ok then
    local msg = tostring((...))
    msg = msg:gsub("bad argument #(%d+) to '[^']*'", "bad argument #%1")
    return "error: " .. msg
  end
  local n = select("#", ...)
  local parts = { tostring(n) }
  for i = 1, n do
    local v = select(i, ...)
    parts[#parts + 1] = type(v) == "function" and "function" or
                        (math.type(v) or type(v)) .. ":" .. tostring(v)
  end
  return table.concat(parts, "|")
end

local function show(s)
  return (string.format("%q", s):gsub("\n", "n"))
end

local compared, skipped = 0, 0
-- Compare stock(...) with weft(...), weft's first, under the budget.
local function same(what, s, p, stock, weft, ...)
  budget(50)
  local b = outcome(pcall(weft, ...))
  budget(0)
  if b:find("stopped at poll", 1, true) then
    skipped = skipped + 1
    return
  end
  local a = outcome(pcall(stock, ...))
  compared = compared + 1
  if a ~= b then
    error(string.format("%s differs for subject %s, pattern %s:\n  stock: %s\n  weft:  %s",
                        what, show(s), show(p), a, b), 0)
  end
end

local function gmatch_of(lib)
  return function(s, p, init)
    local out = {}
    for a, b, c in lib.gmatch(s, p, init) do
      out[#out + 1] = outcome(true, a, b, c)
      if #out > 60 then break end
    end
    return table.concat(out, ";")
  end
end
local SG, WG = gmatch_of(S), gmatch_of(W)

local REPL_STRINGS = { "", "<%0>", "%1", "%2-%1", "%%", "x", "%", "%a", "[%1]", "%9" }
local REPL_TABLE = { a = "A", b = false, ["1"] = 1, x = 2.5, [""] = "E", ab = {} }
local function repl_fn(a, b)
  if a == "a" then return nil end
  return tostring(a) .. "/" .. tostring(b)
end

local function check(s, p)
  local init = rnd(-14, 14)
  same("find", s, p, S.find, W.find, s, p)
  same("find init " .. init, s, p, S.find, W.find, s, p, init)
  same("find plain", s, p, S.find, W.find, s, p, init, true)
  same("match", s, p, S.match, W.match, s, p)
  same("match init " .. init, s, p, S.match, W.match, s, p, init)
  same("gmatch", s, p, SG, WG, s, p)
  same("gmatch init " .. init, s, p, SG, WG, s, p, init)
  local r = pick(REPL_STRINGS)
  local n = rnd(3) == 1 and rnd(-1, 3) or nil
  same("gsub '" .. r .. "'", s, p, S.gsub, W.gsub, s, p, r, n)
  same("gsub table", s, p, S.gsub, W.gsub, s, p, REPL_TABLE)
  same("gsub function", s, p, S.gsub, W.gsub, s, p, repl_fn)
  same("gsub number", s, p, S.gsub, W.gsub, s, p, 7)
end

for _ = 1, cases do check(subject(), pattern()) end

-- Fixed cases: the limits, argument errors, plain finds of all lengths.
local fixed = {
  { "aaa", string.rep("a?", 250) },           -- pattern too complex
  { "aaa", string.rep("()", 33) },            -- too many captures
  { "aaa", string.rep("(a*)", 32) },
  { string.rep("a", 300), string.rep("a?", 199) .. "b" },
  { "hello world from Lua", "(%w+) (%w+)" },
  { "THE (quick) fox", "%f[%a]%a+" },
  { "x = (a(b)c) y", "%b()" },
  { "key=val, k2=v2", "(%w+)=(%w+)" },
  { "", "" }, { "", "^$" }, { "abc", "" }, { "abc", "^" }, { "abc", "$" },
  { "a.b.c", "." }, { "a+b", "a+b" }, { "a+b", "a%+b" },
}
for _, c in ipairs(fixed) do check(c[1], c[2]) end
for _, a in ipairs({ { nil, "a" }, { "a", nil }, { {}, "a" }, { "a", {} }, { 12, 2 } }) do
  same("find args", "?", "?", S.find, W.find, a[1], a[2])
  same("gmatch args", "?", "?", S.gmatch, W.gmatch, a[1], a[2])
  same("gsub args", "?", "?", S.gsub, W.gsub, a[1], a[2], "x")
end
same("gsub no repl", "a", "a", S.gsub, W.gsub, "a", "a")
same("gsub bad value", "a", "a", S.gsub, W.gsub, "a", "a", function() return {} end)
same("find huge init", "abc", "b", S.find, W.find, "abc", "b", math.maxinteger)
same("find min init", "abc", "b", S.find, W.find, "abc", "b", math.mininteger)
same("gmatch huge init", "abc", "b", SG, WG, "abc", "b", math.maxinteger)
for _ = 1, 2000 do
  local s, p = subject(), subject()
  same("plain find", s, p, S.find, W.find, s, p, 1, true)
end

-- string.rep (not string.rep("", math.maxinteger): the stock one copies
-- nothing that many times, for ever; test_luapat.c checks weft's)
for _, a in ipairs({ { "ab", 3 }, { "ab", 3, "," }, { "", 5 }, { "", 5, "-" }, { "x", 0 },
                     { "x", -1 }, { "x", 1, "sep" }, { "abc", 1000, "" }, { "ab", 777, "xyz" },
                     { "ab", 1 << 30 }, { "ab", 1 << 30, "" }, { "a", math.maxinteger },
                     { "x", 2, 3 }, { 5, 3 }, { "a", "b" },
                     { "a", 2.5 } }) do
  same("rep", tostring(a[1]), tostring(a[2]), S.rep, W.rep, a[1], a[2], a[3])
end
for _ = 1, 300 do
  local s, sep, n = subject(), rnd(2) == 1 and subject() or nil, rnd(0, 3000)
  same("rep", s, tostring(n), S.rep, W.rep, s, n, sep)
end
return compared, skipped
