-- One fixed request, described by environment variables:
-- WRK_METHOD, WRK_BODY, and WRK_HEADERS ("Name: value" pairs separated by "|").
-- wrk itself reports answers that are not 2xx/3xx ("Non-2xx or 3xx responses").
wrk.method = os.getenv("WRK_METHOD") or "GET"
wrk.body = os.getenv("WRK_BODY")
for pair in string.gmatch(os.getenv("WRK_HEADERS") or "", "[^|]+") do
  local name, value = pair:match("^%s*(.-)%s*:%s*(.-)%s*$")
  if name then wrk.headers[name] = value end
end
