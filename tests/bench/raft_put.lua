-- wrk script for make bench, section raft-node: POST /v3/kv/put of a 1 KiB
-- value (etcd's JSON gateway body: key and value in base64), keys round
-- robin over `-- KEYS` keys (default 1000).  Bodies are built once in init.
-- `-- KEYS range`: POST /v3/kv/range of those keys instead (linearizable,
-- the gateway's default), for the read case.
init = function(args)
   local keys = tonumber(args[1]) or 1000
   local op = args[2] or "put"
   local b64 = "QUFB"   -- "AAA": 1 KiB of 'A' is 1366 base64 characters
   local value = string.rep(b64, 341) .. "QQ=="
   reqs = {}
   for i = 1, keys do
      local k = string.format("bench/k%d", i - 1)
      local key = ""
      -- base64 of the key, by hand: wrk's lua has no base64
      local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
      local bytes = { k:byte(1, -1) }
      for j = 1, #bytes, 3 do
         local a, b, c = bytes[j], bytes[j + 1], bytes[j + 2]
         local n = a * 65536 + (b or 0) * 256 + (c or 0)
         local s = ""
         for q = 3, 0, -1 do
            local idx = math.floor(n / 64 ^ q) % 64
            s = s .. alphabet:sub(idx + 1, idx + 1)
         end
         if not b then s = s:sub(1, 2) .. "==" elseif not c then s = s:sub(1, 3) .. "=" end
         key = key .. s
      end
      local body = string.format('{"key":"%s","value":"%s"}', key, value)
      if op == "range" then body = string.format('{"key":"%s"}', key) end
      reqs[i] = wrk.format("POST", "/v3/kv/" .. op, {["Content-Type"] = "application/json"}, body)
   end
   n = keys
   at = 0
end

request = function()
   at = at % n + 1
   return reqs[at]
end

response = function(status, headers, body)
   if status ~= 200 then
      wrk.thread:stop()
   end
end
