-- wrk script: POSTs like ../shared/bench/wrk-client-credentials.lua (HTTP Basic, WRK_BODY), each
-- request carrying the next line of LINES_FILE in the header LINES_HEADER (default "DPoP"):
-- single-use values such as DPoP proofs. The lines are dealt out between wrk's threads; a thread
-- that runs out starts again from its first line (the server then refuses the replays, and they
-- show as non-2xx answers). WRK_THREADS = wrk's -t. Prints the same WRKJSON summary line.

local function b64(s)
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    out[#out + 1] = alphabet:sub(math.floor(n / 262144) % 64 + 1, math.floor(n / 262144) % 64 + 1)
      .. alphabet:sub(math.floor(n / 4096) % 64 + 1, math.floor(n / 4096) % 64 + 1)
      .. (b and alphabet:sub(math.floor(n / 64) % 64 + 1, math.floor(n / 64) % 64 + 1) or "=")
      .. (c and alphabet:sub(n % 64 + 1, n % 64 + 1) or "=")
  end
  return table.concat(out)
end

local id = os.getenv("CLIENT_ID") or "bench"
local secret = os.getenv("CLIENT_SECRET") or "bench-secret-0123456789abcdef0123456789abcdef"
local header = os.getenv("LINES_HEADER") or "DPoP"
local body = os.getenv("WRK_BODY") or "grant_type=client_credentials"
local basic = "Basic " .. b64(id .. ":" .. secret)

-- WRK_THREADS must equal wrk's -t: each thread takes every WRK_THREADS-th line.
local count = tonumber(os.getenv("WRK_THREADS") or "1")
local created = 0
function setup(thread)
  thread:set("index", created)
  created = created + 1
end
function init()
  local n = 0
  lines, next_line = {}, 1
  for line in io.lines(os.getenv("LINES_FILE")) do
    if n % count == index then lines[#lines + 1] = line end
    n = n + 1
  end
end
function request()
  local line = lines[next_line]
  next_line = next_line % #lines + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = basic,
    [header] = line,
  }, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"rps":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,"non2xx":%d,"err_connect":%d,"err_read":%d,"err_write":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.status, e.connect, e.read, e.write, e.timeout))
end
