-- wrk reporting script for `make bench`: prints one machine-readable line (BENCH_JSON) with
-- the responses counted by status class and the percentiles wrk --latency leaves out (p95).
--   wrk -s bench/lua/report.lua ...
--
-- Only 2xx answers are served pages: bench/measure.py reports req/s of 2xx responses alone and
-- fails a run that saw any other status or a socket error. wrk itself only counts statuses
-- above 399 (summary.errors.status); a 3xx would pass for a served page. So every response is
-- counted here by its class, in the thread's own Lua state, and done() adds the threads up.
--
-- Defining response() makes wrk copy each response's headers and body into Lua (wrk's
-- SCRIPTING notes it is expensive): its cost is measured by `make bench` on the nginx static
-- run (bench/run.py, "status counting cost") and stated in the report. BENCH_COUNT_STATUS=0
-- leaves response() undefined, for that measurement only: such a run counts only statuses
-- above 399 and is never used as a figure.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

n1xx, n2xx, n3xx, n4xx, n5xx, nother = 0, 0, 0, 0, 0, 0

if os.getenv("BENCH_COUNT_STATUS") ~= "0" then
  function response(status)
    if status >= 200 and status < 300 then
      n2xx = n2xx + 1
    elseif status >= 300 and status < 400 then
      n3xx = n3xx + 1
    elseif status >= 400 and status < 500 then
      n4xx = n4xx + 1
    elseif status >= 500 and status < 600 then
      n5xx = n5xx + 1
    elseif status >= 100 and status < 200 then
      n1xx = n1xx + 1
    else
      nother = nother + 1
    end
  end
end

function done(summary, latency, requests)
  local counted = os.getenv("BENCH_COUNT_STATUS") ~= "0"
  local c = {n1xx = 0, n2xx = 0, n3xx = 0, n4xx = 0, n5xx = 0, nother = 0}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(c) do
      c[name] = c[name] + (thread:get(name) or 0)
    end
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {\"requests\": %d, \"duration_us\": %d, \"bytes\": %d, " ..
    "\"status_counted\": %s, \"status_1xx\": %d, \"status_2xx\": %d, \"status_3xx\": %d, " ..
    "\"status_4xx\": %d, \"status_5xx\": %d, \"status_other\": %d, " ..
    "\"p50_us\": %d, \"p90_us\": %d, \"p95_us\": %d, \"p99_us\": %d, " ..
    "\"max_us\": %d, \"mean_us\": %.1f, " ..
    "\"err_connect\": %d, \"err_read\": %d, \"err_write\": %d, \"err_status\": %d, \"err_timeout\": %d}\n",
    summary.requests, summary.duration, summary.bytes,
    counted and "true" or "false", c.n1xx, c.n2xx, c.n3xx, c.n4xx, c.n5xx, c.nother,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
