-- wrk script: POST a JSON body from a file with the given auth header, and print the result as one
-- JSON line (prefix BENCH_JSON) so bench/run.mjs can parse exact percentiles.
-- Environment: BENCH_BODY (file), BENCH_HEADERS ("name: value" lines), BENCH_MAX (requests per thread, optional).
wrk.method = "POST"
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\n]+") do
  local name, value = line:match("^([^:]+):%s*(.*)$")
  if name then wrk.headers[name] = value end
end

-- A body with the marker {{N}} gets a number unique to each request in its place, so that every
-- prompt differs from the last as real ones do (the router keeps what it found in texts it has
-- scanned before; a fixed body would be scanned only once).
local prefix, suffix = wrk.body:match("^(.-){{N}}(.*)$")
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
if prefix then
  local n = 0
  function request()
    n = n + 1
    return wrk.format(nil, nil, nil, prefix .. (tid or 0) .. "-" .. n .. suffix)
  end
end

local max = tonumber(os.getenv("BENCH_MAX") or "")
if max then
  local count = 0
  function response(status, headers, body)
    count = count + 1
    if count >= max then wrk.thread:stop() end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,"err_read":%d,"err_write":%d,' ..
    '"err_status":%d,"err_timeout":%d,"lat_mean_us":%.1f,"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,' ..
    '"lat_p999_us":%d,"lat_max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
