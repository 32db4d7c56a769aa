-- wrk script for make bench: pipelining.  Every write carries DEPTH requests
-- for the URL's path (default 16; `wrk ... URL -- 8` for another depth), and
-- wrk counts each answer, so its requests/s is answers per second.  Its
-- latency is per burst: from the write to the last answer of the burst.
init = function(args)
   local depth = tonumber(args[1]) or 16
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format(nil, nil, nil, nil)
   end
   burst = table.concat(r)
end

request = function()
   return burst
end
