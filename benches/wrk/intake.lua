-- wrk script for intake: one alert per request, the same body as
-- benches/intake.rs, against Rouse, the bench's bare floor or Alertmanager.
--
--   wrk -t1 -c16 -d10s -s benches/wrk/intake.lua http://ADDR -- rouse new
--
-- First argument: `rouse`, `floor` (the bench's bare axum handler, sent
-- Rouse's body) or `alertmanager`. Second: `new` (every request a new distinct
-- alert) or `duplicate` (1,000 keys over and over; the first pass opens them).
-- Globals, not locals: `done` runs in wrk's main script state and reads
-- them from a thread's (`thread:get`).
target, keys = "rouse", "new"
local counter = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end
-- Keeps this run's new keys apart from an earlier run's on a server that
-- outlives it.
local run = tostring(os.time())

function init(args)
  target = args[1] or target
  keys = args[2] or keys
  -- Third argument: a prefix for new keys, so several wrk processes started
  -- in the same second (benches/replicas.sh) send distinct alerts.
  run = args[3] or run
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  -- The integration key of the bench catalog (benches/common/mod.rs).
  wrk.headers["X-Rouse-Key"] = "bench-key-0123456789abcdef"
end

local function key()
  counter = counter + 1
  if keys == "duplicate" then
    return "dup-" .. (counter % 1000)
  end
  return "new-" .. run .. "-" .. counter
end

function request()
  local k = key()
  if target == "alertmanager" then
    return wrk.format(nil, "/api/v2/alerts", nil, string.format(
      '[{"labels":{"alertname":"HighCpu","instance":"web-1:9100","key":"%s"},' ..
      '"annotations":{"summary":"CPU over 90%% on web-1"}}]', k))
  end
  return wrk.format(nil, "/v1/events", nil, string.format(
    '{"action":"trigger","dedup_key":"%s","summary":"CPU over 90%% on web-1",' ..
    '"severity":"critical","source":"web-1",' ..
    '"labels":{"alertname":"HighCpu","instance":"web-1:9100"}}', k))
end

-- One JSON line, like the other benchmarks print.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"bench":"wrk_%s_%s","requests":%d,"requests_per_second":%.0f,' ..
    '"p50_us":%d,"p99_us":%d,"non_2xx":%d,"socket_errors":%d}\n',
    threads[1]:get("target"), threads[1]:get("keys"), summary.requests,
    summary.requests / (summary.duration / 1e6), latency:percentile(50),
    latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
