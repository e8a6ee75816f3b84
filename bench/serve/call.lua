-- call.lua: wrk script for CKP tool calls (POST /v1/ckp, claw.tool.call
-- of the builtin "echo").
--
-- BENCH_TARGETS names a file of agent tokens, one a line; requests walk
-- them round-robin. Every call carries a unique context.request_id
-- (BENCH_RUN, thread number, counter): a repeated id would be answered
-- from the kernel's idempotency cache without running the tool, and the
-- figure would measure the cache.
--
-- A call counts as failed unless it gets HTTP 200 with a JSON-RPC
-- "result"; JSON-RPC errors travel in 200 bodies, so the status alone
-- would hide them. done() prints one "BENCH {json}" line.

local tokens = {}
for line in io.lines(os.getenv("BENCH_TARGETS")) do
   if line ~= "" then
      tokens[#tokens + 1] = "Bearer " .. line
   end
end
local run = os.getenv("BENCH_RUN") or "run"

local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
   table.insert(threads, thread)
end

local n = 0
rpc_errors = 0

function request()
   n = n + 1
   local rid = string.format("%s-%d-%d", run, id, n)
   local body = '{"jsonrpc":"2.0","id":' .. n .. ',"method":"claw.tool.call","params":{"name":"echo",' ..
      '"arguments":{"n":"' .. rid .. '"},"context":{"request_id":"' .. rid .. '"}}}'
   return wrk.format("POST", "/v1/ckp",
      {Authorization = tokens[(n % #tokens) + 1], ["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
   if status ~= 200 or not body:find('"result"', 1, true) or body:find('"isError":true', 1, true) then
      rpc_errors = rpc_errors + 1
   end
end

function done(summary, latency, requests)
   local bad = 0
   for _, t in ipairs(threads) do
      bad = bad + t:get("rpc_errors")
   end
   local e = summary.errors
   io.write(string.format('BENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
      '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"rpc_errors":%d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      e.connect, e.read, e.write, e.status, e.timeout, bad))
end
