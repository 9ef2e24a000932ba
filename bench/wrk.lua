-- wrk script: adds `Authorization: Bearer $BENCH_KEY` when set, an optional
-- random 1 MiB `Range` per request when $BENCH_RANGE_SIZE (the file size) is
-- set, and prints one JSON line of results at the end for bench/run to parse.
local key = os.getenv("BENCH_KEY")
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

local size = tonumber(os.getenv("BENCH_RANGE_SIZE") or "")
local chunk = 1024 * 1024

if size then
  request = function()
    local start = math.random(0, math.floor(size / chunk) - 1) * chunk
    wrk.headers["Range"] = string.format("bytes=%d-%d", start, start + chunk - 1)
    return wrk.format(nil)
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    'WRKJSON {"requests": %d, "seconds": %.6f, "bytes": %d, "errors": %d, "non2xx": %d, ' ..
    '"p50_ms": %.4f, "p99_ms": %.4f, "max_ms": %.4f}\n',
    summary.requests, summary.duration / 1e6, summary.bytes, errors, e.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
