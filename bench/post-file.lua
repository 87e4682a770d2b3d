-- wrk script for bench/run: every request is a POST of the file named by the
-- environment variable BENCH_BODY_FILE, as application/json. The body is read
-- once per wrk thread; no per-response callback, so wrk stays on its fast path.
local path = os.getenv("BENCH_BODY_FILE")
if not path then error("BENCH_BODY_FILE is not set") end
local f = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
wrk.headers["Content-Type"] = "application/json"
f:close()
