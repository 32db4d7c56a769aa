-- wrk script for make bench, section counter: POST /incr {"key":"kN","by":1}.
-- `wrk ... URL -- KEYS` spreads the increments over KEYS keys, round robin
-- (default 1: every request hits one hot counter).  The requests are built
-- once in init; request() only picks the next one.
init = function(args)
   local keys = tonumber(args[1]) or 1
   reqs = {}
   for i = 1, keys do
      local body = string.format('{"key":"k%d","by":1}', i - 1)
      reqs[i] = wrk.format("POST", "/incr", {["Content-Type"] = "application/json"}, body)
   end
   n = keys
   at = 0
end

request = function()
   at = at % n + 1
   return reqs[at]
end
