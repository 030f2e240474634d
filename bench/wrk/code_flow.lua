-- authorize → code → token: each answer of the authorization endpoint (WRK_AUTHORIZE,
-- sent with the SSO session cookie WRK_COOKIE) carries a code, which the
-- thread's next request exchanges at WRK_TOKEN (client_secret_basic WRK_AUTH,
-- PKCE verifier WRK_VERIFIER); so half the requests are each. The codes are
-- per thread: the connections of one thread share this script's state.
local codes = {}
local authorize = os.getenv("WRK_AUTHORIZE")
local token_path = os.getenv("WRK_TOKEN")
local cookie = os.getenv("WRK_COOKIE")
local form = {
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Authorization"] = os.getenv("WRK_AUTH"),
}
local rest = "&redirect_uri=" .. os.getenv("WRK_REDIRECT") .. "&code_verifier=" .. os.getenv("WRK_VERIFIER")

function request()
  local code = table.remove(codes)
  if code then
    return wrk.format("POST", token_path, form, "grant_type=authorization_code&code=" .. code .. rest)
  end
  return wrk.format("GET", authorize, { ["Cookie"] = cookie }, nil)
end

function response(status, headers, body)
  local location = headers["Location"] or headers["location"]
  local code = location and location:match("[?&]code=([^&]+)")
  if code then
    table.insert(codes, code)
  end
end
