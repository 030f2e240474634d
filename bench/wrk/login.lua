-- Complete password + TOTP logins, as a browser makes them: the authorization
-- request (answered with the e-mail screen) → the e-mail (the password screen)
-- → the password (the code screen) → the code, whose answer sends the browser
-- back to the client (WRK_REDIRECT) with a code. A redirect on the way is
-- followed; each screen's form is answered by the field it asks for.
--
-- One connection per thread (wrk -tN -cN), so a thread's requests are one
-- browser's, in order. Each login takes the next account of the thread's
-- share of WRK_ACCOUNTS (one e-mail address per line; an authenticator code
-- works once per account) and comes from its own address (X-Forwarded-For,
-- for the per-address limits). The accounts share one authenticator secret:
-- WRK_CODES holds its codes, a "time-step code" line each.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } wrk_timespec;
  int clock_gettime(int clock, wrk_timespec *ts);
]]
local clock = ffi.new("wrk_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local function encode(text)
  return (text:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local accounts, codes, next_account = {}, {}, 1
local authorize = os.getenv("WRK_AUTHORIZE")
local password = encode(os.getenv("WRK_PASSWORD"))
local back_to_client = os.getenv("WRK_REDIRECT")
local account, address, cookies, step, started, method, target, body
-- A login that has not reached the client after this many requests failed.
local MAX_REQUESTS = 12

-- Per thread, read by done(): completed and failed logins, each login's milliseconds.
logins, failures, durations = 0, 0, {}

local function start_login()
  account = accounts[next_account]
  next_account = next_account + 1
  address = string.format("10.%d.%d.%d", id + 1, math.floor(next_account / 250) % 250, next_account % 250 + 1)
  cookies, step, started = {}, 0, now_ms()
  method, target, body = "GET", authorize, nil
end

function init(args)
  local count = tonumber(os.getenv("WRK_THREADS"))
  local n = 0
  for line in io.lines(os.getenv("WRK_ACCOUNTS")) do
    if n % count == id then table.insert(accounts, line) end
    n = n + 1
  end
  for line in io.lines(os.getenv("WRK_CODES")) do
    local time_step, code = line:match("(%d+) (%d+)")
    codes[tonumber(time_step)] = code
  end
  start_login()
end

function request()
  if account == nil then
    error(string.format("login.lua: thread %d has used all its accounts (%d logins, %d failed)",
      id, logins, failures))
  end
  local headers = { ["X-Forwarded-For"] = address }
  local jar = {}
  for name, value in pairs(cookies) do table.insert(jar, name .. "=" .. value) end
  if #jar > 0 then headers["Cookie"] = table.concat(jar, "; ") end
  if body then headers["Content-Type"] = "application/x-www-form-urlencoded" end
  return wrk.format(method, target, headers, body)
end

local function next_login(ok)
  if ok then
    logins = logins + 1
    table.insert(durations, now_ms() - started)
  else
    failures = failures + 1
  end
  start_login()
end

function response(status, headers, page)
  local header = {}
  for name, value in pairs(headers) do header[name:lower()] = value end
  -- One cookie per answer on the way (the signed session, then the SSO session).
  local set = header["set-cookie"]
  if set then
    local name, value = set:match("^([^=]+)=([^;]*)")
    if value == "" or set:find("Max%-Age=0") then cookies[name] = nil else cookies[name] = value end
  end
  step = step + 1
  local location = header["location"]
  if (status == 302 or status == 303) and location then
    if location:sub(1, #back_to_client) == back_to_client then return next_login(true) end
    if step > MAX_REQUESTS then return next_login(false) end
    method, target, body = "GET", location, nil
    return
  end
  -- A screen with a form: its field says which answer it wants.
  local action = status == 200 and step <= MAX_REQUESTS and page:match('<form method="post" action="([^"]+)"')
  local csrf = action and page:match('name="csrf_token" value="([^"]+)"')
  if not csrf then return next_login(false) end
  local answer
  if page:find('name="code"', 1, true) then
    answer = "code=" .. codes[math.floor(os.time() / 30)]
  elseif page:find('name="password"', 1, true) then
    answer = "password=" .. password
  elseif page:find('name="email"', 1, true) then
    answer = "email=" .. encode(account)
  else
    return next_login(false)
  end
  method, target, body = "POST", action:gsub("&amp;", "&"), answer .. "&csrf_token=" .. encode(csrf)
end

function done(summary, latency, requests)
  local all, completed, failed = {}, 0, 0
  for _, thread in ipairs(threads) do
    completed = completed + thread:get("logins")
    failed = failed + thread:get("failures")
    for _, ms in ipairs(thread:get("durations")) do table.insert(all, ms) end
  end
  table.sort(all)
  local function at(share) return #all > 0 and all[math.max(1, math.ceil(#all * share))] or 0 end
  io.write(string.format("LOGINS %d FAILED %d SECONDS %.3f P50 %.2f P99 %.2f\n",
    completed, failed, summary.duration / 1e6, at(0.5), at(0.99)))
end
