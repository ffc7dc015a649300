-- wrk script: POST one entry per request to a list never written before
-- (fresh-<thread>-<n>, n counting up per thread), so every request starts a list
-- server and loads its (empty) list: the cost of a first touch. Compare with
-- post.lua and WRK_LISTS=1000 (scripts/first-touch.sh).
local body = '{"date":"2026-12-02","title":"Dentist"}'
local headers = { ["Content-Type"] = "application/json" }
local prefix = tostring(math.random(0, 1000000000))
local n = 0
request = function()
    n = n + 1
    return wrk.format("POST", "/lists/fresh-" .. prefix .. "-" .. n .. "/entries", headers, body)
end
