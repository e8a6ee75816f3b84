-- read.lua: wrk script for GET requests with bearer tokens.
--
-- BENCH_TARGETS names a file of "path token" lines (the tokens never
-- appear on a command line). With one line the request is built once and
-- wrk runs it statically; with several, each thread walks the lines
-- round-robin so that every organisation is hit. Without BENCH_TARGETS
-- the URL is requested as is (the unauthenticated baseline).
--
-- done() prints one "BENCH {json}" line that bench/serve parses.

local targets = os.getenv("BENCH_TARGETS")
local reqs = {}

if targets then
   for line in io.lines(targets) do
      local path, token = line:match("^(%S+)%s+(%S+)$")
      if path then
         reqs[#reqs + 1] = {path = path, auth = "Bearer " .. token}
      end
   end
end

function init(args)
   if #reqs == 1 then
      wrk.path = reqs[1].path
      wrk.headers["Authorization"] = reqs[1].auth
   elseif #reqs > 1 then
      -- Built here, not per request, so the client spends its CPU on
      -- sending rather than on string formatting.
      for i, r in ipairs(reqs) do
         reqs[i] = wrk.format("GET", r.path, {Authorization = r.auth})
      end
   end
end

if #reqs > 1 then
   local n = 0
   function request()
      n = n + 1
      return reqs[(n % #reqs) + 1]
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format('BENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
      '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"rpc_errors":0}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      e.connect, e.read, e.write, e.status, e.timeout))
end
