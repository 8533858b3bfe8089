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
