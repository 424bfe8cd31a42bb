-- Kora's script sandbox (src/command/scripting/engine.rs runs this once per
-- Lua state). Builds what a script sees as its globals, as Redis 7.0 does:
-- an allow-list of builtins, read-only library tables, the `redis` API, a
-- global table that refuses writes ("Attempt to modify a readonly table")
-- and reads of missing names ("Script attempted to access nonexistent
-- global variable"). Stock Lua 5.1 has no read-only tables, so they are
-- proxies (an empty table whose metatable reads through and refuses
-- writes); `rawset` and `setmetatable` refuse them too.
local real, raw = ...
local type, tostring, select, error, rawget, rawset = type, tostring, select, error, rawget, rawset
local setmetatable, getmetatable, setfenv, xpcall, pcall, unpack = setmetatable, getmetatable, setfenv, xpcall, pcall, unpack
local loadstring, load = loadstring, load
local floor = math.floor
local getinfo = real.debug.getinfo
local sub, find, gsub = string.sub, string.find, string.gsub
local rawcall, aborting = raw.call, raw.aborting

local readonly = raw.readonly -- weak-keyed, made by engine.rs
local RO = 'Attempt to modify a readonly table'
local function refuse() error(RO, 2) end
local function protect(t)
  local p = setmetatable({}, { __index = t, __newindex = refuse, __metatable = false })
  readonly[p] = true
  return p
end

-- What scripts see as globals: G, behind the read-only proxy `env`.
local G = {}
local env = setmetatable({}, { __index = G, __newindex = refuse, __metatable = false })
readonly[env] = true
setmetatable(G, {
  __index = function(_, k)
    error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
  end,
})

for _, name in ipairs({ 'assert', 'collectgarbage', 'error', 'gcinfo', 'getmetatable', 'ipairs',
  'next', 'pairs', 'rawequal', 'rawget', 'select', 'tonumber', 'tostring', 'type', 'unpack',
  'xpcall' }) do
  G[name] = real[name]
end
G._G = env
G._VERSION = real._VERSION
-- C functions (Rust), so that an error keeps the script's frame (a
-- Lua wrapper called in tail position would lose it).
G.rawset = raw.rawset
G.setmetatable = raw.setmetatable
-- Chunks made inside a script run in the script's sandbox, not in the
-- state's real globals.
G.loadstring = function(s, name)
  local f, e = loadstring(s, name)
  if f then setfenv(f, env) end
  return f, e
end
G.load = function(f, name)
  local c, e = load(f, name)
  if c then setfenv(c, env) end
  return c, e
end

-- math.random / math.randomseed: Redis' rand48 (same sequence on every
-- platform), from a per-core state (engine.rs).
-- (C functions in engine.rs, so that errors name the script's line).
real.math.random = raw.random
real.math.randomseed = raw.randomseed

-- The redis API.
local redis = {}
local function errtext(s)
  -- "-CODE msg" or "msg" (then ERR): the error code is the first word.
  if sub(s, 1, 1) == '-' then s = sub(s, 2) end
  s = gsub(s, '[\r\n]+$', '')
  if not find(s, ' ', 1, true) then return 'ERR ' .. s end
  return s
end
-- redis.call raises from Rust (a C function keeps the caller's frame for
-- the error's "on @user_script:<line>"); redis.pcall returns the error.
redis.call = raw.call_raise
redis.pcall = function(...)
  local r, e = rawcall(...)
  if e ~= nil then return { err = e } end
  return r
end
redis.error_reply = function(...)
  local s = ...
  if select('#', ...) ~= 1 or type(s) ~= 'string' then
    return { err = 'ERR wrong number or type of arguments' }
  end
  return { err = errtext(s) }
end
redis.status_reply = function(...)
  local s = ...
  if select('#', ...) ~= 1 or type(s) ~= 'string' then
    return { err = 'ERR wrong number or type of arguments' }
  end
  return { ok = s }
end
redis.sha1hex = raw.sha1hex
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.log = raw.log
redis.setresp = raw.setresp
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.set_repl = raw.set_repl
redis.replicate_commands = function() return true end
redis.breakpoint = function() return false end
redis.debug = function() end

-- A script's pcall sees a redis.call error as its text (Redis 7); a
-- SCRIPT KILL / shutdown abort is not caught.
local function caught(ok, ...)
  if ok then return true, ... end
  if aborting() then error((...), 0) end
  local e = ...
  if type(e) == 'table' and type(rawget(e, 'err')) == 'string' then return false, e.err end
  if type(e) == 'userdata' then return false, raw.abort_text(e) end
  return false, ...
end
-- Lua 5.1 cannot yield across pcall, and a multi-shard script's
-- redis.call yields while it waits for another core: so a script's pcall
-- runs its function as a coroutine and passes yields through (the
-- coxpcall technique). C functions cannot be coroutines: plain pcall.
local cocreate, coresume, costatus, coyield = coroutine.create, coroutine.resume, coroutine.status, coroutine.yield
local function pack(...) return { n = select('#', ...), ... } end
local function drive(co, ...)
  local res = pack(coresume(co, ...))
  while costatus(co) ~= 'dead' do
    res = pack(coresume(co, coyield(unpack(res, 2, res.n))))
  end
  return res
end
G.pcall = function(f, ...)
  if type(f) ~= 'function' or getinfo(f, 'S').what == 'C' then return caught(pcall(f, ...)) end
  local res = drive(cocreate(f), ...)
  return caught(unpack(res, 1, res.n))
end

-- Libraries, read-only.
for _, name in ipairs({ 'string', 'table', 'math', 'coroutine', 'cjson', 'bit', 'struct', 'cmsgpack' }) do
  if type(real[name]) == 'table' then G[name] = protect(real[name]) end
end
G.redis = protect(redis)

-- The error handler of every run: turns any error into Redis' error
-- table {err=..., source=..., line=...}, where source/line are the
-- innermost frame of the user's code (chunks named "@user_...").
local function where()
  for level = 2, 60 do
    local i = getinfo(level, 'Sl')
    if not i then return nil end
    local src = i.source
    if src and sub(src, 1, 6) == '@user_' then return src, i.currentline end
  end
end
local function handler(e)
  local t = type(e)
  if t == 'table' then
    if type(rawget(e, 'err')) ~= 'string' then e = { err = 'ERR ' .. tostring(e) } end
  elseif t == 'userdata' then
    e = { err = raw.abort_text(e) }
  else
    e = { err = 'ERR ' .. tostring(e) }
  end
  if rawget(e, 'source') == nil then
    local s, l = where()
    rawset(e, 'source', s)
    rawset(e, 'line', l)
  end
  return e
end
local function located(co, e)
  local t = type(e)
  if t == 'table' then
    if type(rawget(e, 'err')) ~= 'string' then e = { err = 'ERR ' .. tostring(e) } end
  elseif t == 'userdata' then
    e = { err = raw.abort_text(e) }
  else
    e = { err = 'ERR ' .. tostring(e) }
  end
  if rawget(e, 'source') == nil then
    for level = 0, 60 do
      local i = getinfo(co, level, 'Sl')
      if not i then break end
      if i.source and sub(i.source, 1, 6) == '@user_' then
        rawset(e, 'source', i.source)
        rawset(e, 'line', i.currentline)
        break
      end
    end
  end
  return e
end
-- The multi-shard mode's runner: the script as a coroutine whose yields
-- (redis.call waiting for another core) pass through to the Rust poller.
local function run_co(f, k, a, globals)
  local co = cocreate(globals and f or function() return f(k, a) end)
  local res = drive(co)
  if res[1] then return true, unpack(res, 2, res.n) end
  return false, located(co, res[2])
end
local direct_call, direct_pcall = redis.call, redis.pcall
local acall = raw.acall
-- In tail position (`return redis.call(...)`) a Lua function loses the
-- script's frame: errors then name no line (multi-shard mode only).
local async_call = function(...)
  local r, e = acall(...)
  if e ~= nil then error({ err = e }) end
  return r
end
local async_pcall = function(...)
  local r, e = acall(...)
  if e ~= nil then return { err = e } end
  return r
end
local function use_async(on)
  if on then
    redis.call, redis.pcall = async_call, async_pcall
  else
    redis.call, redis.pcall = direct_call, direct_pcall
  end
end
local function run(f) return xpcall(f, handler) end
local function run_with(f, k, a) return xpcall(function() return f(k, a) end, handler) end

return { G = G, env = env, readonly = readonly, run = run, run_with = run_with, run_co = run_co, use_async = use_async, handler = handler, protect = protect }
