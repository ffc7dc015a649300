-- wrk script: GET the entries of one of 100 read lists (read-0 .. read-99, ten
-- entries each, written before the run), chosen at random per request.
request = function()
    return wrk.format("GET", "/lists/read-" .. math.random(0, 99) .. "/entries")
end
