-- wrk reporting script for `make bench`: prints one machine-readable line with the
-- percentiles wrk --latency leaves out (p95) next to the ones it prints.
--   wrk -s bench/lua/report.lua ...
-- Optional: BENCH_UNIQUE=1 makes every request's URL unique (appends bench_nonce=<n> to the
-- query string) so no cache (Django's page cache, nginx's microcache) can answer it.

local unique = os.getenv("BENCH_UNIQUE") == "1"
local counter = 0
local run_id = tostring(os.time()) .. tostring(math.random(100000, 999999))

if unique then
  request = function()
    counter = counter + 1
    local path = wrk.path
    local sep = "?"
    if string.find(path, "?", 1, true) then sep = "&" end
    return wrk.format(nil, path .. sep .. "bench_nonce=" .. run_id .. "-" .. counter)
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {\"requests\": %d, \"duration_us\": %d, \"bytes\": %d, " ..
    "\"p50_us\": %d, \"p90_us\": %d, \"p95_us\": %d, \"p99_us\": %d, " ..
    "\"max_us\": %d, \"mean_us\": %.1f, " ..
    "\"err_connect\": %d, \"err_read\": %d, \"err_write\": %d, \"err_status\": %d, \"err_timeout\": %d}\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
