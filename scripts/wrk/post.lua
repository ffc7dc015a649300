-- wrk script: POST one entry to one of WRK_LISTS lists (default 100: bench-0 ..
-- bench-99), chosen at random per request; the path's query comes from the env var
-- WRK_QUERY (e.g. "?ack=durable"). Counts non-2xx answers per status so the run can
-- report them.
local query = os.getenv("WRK_QUERY") or ""
local lists = tonumber(os.getenv("WRK_LISTS") or "100")
local body = '{"date":"2026-12-02","title":"Dentist"}'
local headers = { ["Content-Type"] = "application/json" }
request = function()
    local path = "/lists/bench-" .. math.random(0, lists - 1) .. "/entries" .. query
    return wrk.format("POST", path, headers, body)
end
