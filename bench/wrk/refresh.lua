-- refresh_token grants: each refresh token works once (reuse revokes the
-- grant), so every request takes the next token from WRK_TOKENS (a file, one
-- per line); each thread uses its own share of the lines.
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  count = tonumber(os.getenv("WRK_THREADS") or "2")
  tokens = {}
  local n = 0
  for line in io.lines(os.getenv("WRK_TOKENS")) do
    if n % count == id then table.insert(tokens, line) end
    n = n + 1
  end
  next_token = 1
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = os.getenv("WRK_AUTH")
end
function request()
  local token = tokens[next_token]
  next_token = next_token + 1
  if token == nil then token = "exhausted" end
  return wrk.format(nil, nil, nil, "grant_type=refresh_token&refresh_token=" .. token)
end
