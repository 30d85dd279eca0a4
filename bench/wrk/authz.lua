-- wrk script: GET /v1/authz with "Authorization: Bearer <token>", rotating over a file of
-- tokens (ours or JWTs).
-- usage: wrk ... -s authz.lua URL -- TOKENS_FILE
-- done() prints one JSON line: requests, duration, non-2xx/3xx statuses.

local requests = {}
local count = 0
local index = 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      count = count + 1
      requests[count] = wrk.format("GET", "/v1/authz", {["Authorization"] = "Bearer " .. line})
    end
  end
  math.randomseed(os.time() + count)
  index = math.random(count)
end

function request()
  index = index % count + 1
  return requests[index]
end

function done(summary, latency, requests)
  io.write(string.format('{"requests":%d,"duration_us":%d,"status":%d,"p50":%d,"p99":%d}\n',
    summary.requests, summary.duration, summary.errors.status,
    latency:percentile(50), latency:percentile(99)))
end
