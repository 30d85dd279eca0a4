-- wrk script: POST /v1/introspect {"token": ...}, rotating over a file of tokens.
-- usage: wrk ... -s introspect.lua URL -- TOKENS_FILE AUTHORIZATION
-- Pacing (open-ish loop at a target rate): set BENCH_PACE_MS to the mean pause, in
-- milliseconds, each connection waits between a response and its next request; latency
-- excludes the pause. Unset: closed loop at full speed (delay() not even defined, since wrk
-- pays a timer per request as soon as it exists).
-- done() prints one JSON line: requests, duration, errors and latency percentiles (µs).

local requests = {}
local count = 0
local index = 0

function init(args)
  local path, authorization = args[1], args[2]
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = authorization}
  for line in io.lines(path) do
    if #line > 0 then
      count = count + 1
      requests[count] = wrk.format("POST", "/v1/introspect", headers,
        '{"token":"' .. line .. '"}')
    end
  end
  math.randomseed(os.time() + count)
  index = math.random(count)
end

function request()
  index = index % count + 1
  return requests[index]
end

local pace = tonumber(os.getenv("BENCH_PACE_MS") or "")
if pace then
  function delay()
    -- Uniform on [0, 2 * pace], dithered to whole milliseconds (wrk truncates).
    return math.floor(math.random() * 2 * pace + math.random())
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
