-- wrk script: POST the 1 KiB sample event to the built-in sample source of `hookline dev`.
local dir = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
local file = assert(io.open(dir .. "event-1k.json", "r"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Authorization"] = "Bearer dev-token"
wrk.headers["Content-Type"] = "application/json"
