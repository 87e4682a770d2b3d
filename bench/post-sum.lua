-- wrk script for bench/http-compare: every request is POST [1,2,3] as JSON
-- (the URL given to wrk names the path, /sum). No per-response callback, so
-- wrk stays on its fast path.
wrk.method = "POST"
wrk.body = "[1,2,3]"
wrk.headers["Content-Type"] = "application/json"
