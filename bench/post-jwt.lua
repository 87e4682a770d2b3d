-- wrk script for bench/run's JWT cases: every request POSTs the file named
-- by BENCH_BODY_FILE as application/json with `Authorization: Bearer T`,
-- T from the file named by BENCH_TOKENS_FILE (one token a line). One token:
-- the same header on every request (wrk's fast path, as post-file.lua).
-- Several: the next token for each request, round and round; with more
-- tokens than the gateway's verified-token cache holds (4096 per worker),
-- every request brings a token the gateway has to verify.
local body_path = os.getenv("BENCH_BODY_FILE")
local tokens_path = os.getenv("BENCH_TOKENS_FILE")
if not body_path or not tokens_path then error("BENCH_BODY_FILE and BENCH_TOKENS_FILE must be set") end
local f = assert(io.open(body_path, "rb"))
local body = f:read("*a")
f:close()
local tokens = {}
for line in io.lines(tokens_path) do
  if #line > 0 then tokens[#tokens + 1] = "Bearer " .. line end
end
if #tokens == 0 then error(tokens_path .. " has no token") end
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
if #tokens == 1 then
  wrk.headers["Authorization"] = tokens[1]
else
  local i = 0
  local headers = { ["Content-Type"] = "application/json" }
  request = function()
    i = i % #tokens + 1
    headers["Authorization"] = tokens[i]
    return wrk.format("POST", nil, headers, body)
  end
end
