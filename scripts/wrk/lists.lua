-- wrk script: requests to the lists named in the env var WRK_LISTS (comma-separated),
-- one chosen at random per request: GET their entries, or with WRK_METHOD=POST add
-- an entry (the query from WRK_QUERY, e.g. "?ack=durable").
local lists = {}
for name in string.gmatch(os.getenv("WRK_LISTS") or "", "[^,]+") do
    lists[#lists + 1] = name
end
local method = os.getenv("WRK_METHOD") or "GET"
local query = os.getenv("WRK_QUERY") or ""
local body = '{"date":"2026-12-02","title":"Dentist"}'
local headers = { ["Content-Type"] = "application/json" }
request = function()
    local path = "/lists/" .. lists[math.random(1, #lists)] .. "/entries" .. query
    if method == "POST" then
        return wrk.format("POST", path, headers, body)
    end
    return wrk.format("GET", path)
end
