#!/usr/bin/env bash
# The command line against the built binary: the main form (--check,
# --config, --version, --help, bad usage, PATTERNGATE_CONFIG), config
# problems as FILE:LINE:COLUMN: path: reason lines, and every subcommand's
# --help and unknown options.
# Usage: check.sh PATTERNGATE_BINARY SAMPLES_DIR EXAMPLES_DIR
set -uo pipefail
bin=$1 samples=$2 examples=$3
failures=0 checks=0
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
unset PATTERNGATE_CONFIG GATEWAY_TOKEN USERS_HOST

# run ARGS... : runs the binary, keeping stdout, stderr and the exit code.
run() { "$bin" "$@" >"$out" 2>"$err"; code=$?; }

fail() {
  failures=$((failures + 1))
  echo "FAIL: $*"
  echo "  exit code: $code"
  sed 's/^/  stdout: /' "$out"
  sed 's/^/  stderr: /' "$err"
}

expect_code() { checks=$((checks + 1)); [ "$code" -eq "$1" ] || fail "$2: expected exit code $1"; }
expect_stdout() { checks=$((checks + 1)); [ "$(cat "$out")" = "$1" ] || fail "$2: expected stdout '$1'"; }
expect_stderr() { checks=$((checks + 1)); [ "$(cat "$err")" = "$1" ] || fail "$2: expected stderr '$1'"; }
expect_no_stdout() { checks=$((checks + 1)); [ ! -s "$out" ] || fail "$1: expected no stdout"; }
expect_no_stderr() { checks=$((checks + 1)); [ ! -s "$err" ] || fail "$1: expected no stderr"; }
expect_stdout_has() { checks=$((checks + 1)); grep -qF -- "$1" "$out" || fail "$2: stdout lacks '$1'"; }
expect_stderr_has() { checks=$((checks + 1)); grep -qF -- "$1" "$err" || fail "$2: stderr lacks '$1'"; }

# check_ok NAME EXPECTED_LINE ARGS... : a config that validates.
check_ok() {
  local name=$1 line=$2; shift 2
  run "$@"
  expect_code 0 "$name"; expect_stdout "$line" "$name"; expect_no_stderr "$name"
}

# check_bad NAME EXPECTED_STDERR ARGS... : a config that does not.
check_bad() {
  local name=$1 message=$2; shift 2
  run "$@"
  expect_code 2 "$name"; expect_no_stdout "$name"; expect_stderr "$message" "$name"
}

# --- --check -------------------------------------------------------------
check_ok "valid file" "ok: 2 services, 3 routes" --check -c "$samples/valid.json"
check_ok "option order" "ok: 2 services, 3 routes" -c "$samples/valid.json" --check
check_ok "embedded default" "ok: 1 service, 0 routes" --check
check_bad "syntax error" "patterngate: $samples/syntax_error.json:3:16: two commas in a row" \
  --check -c "$samples/syntax_error.json"
check_bad "missing comma" \
  "patterngate: $samples/missing_comma.json:4:48: missing comma after the value on line 4?" \
  --check -c "$samples/missing_comma.json"
check_bad "schema error" \
  "patterngate: $samples/schema_error.json:3:29: services.math.endpoints[0]: expected \"host:port\" (missing port)" \
  --check -c "$samples/schema_error.json"
check_bad "unknown key" "patterngate: $samples/unknown_key.json:3:73: services.math.tls.insecure: unknown key" \
  --check -c "$samples/unknown_key.json"
check_bad "missing file" "patterngate: $samples/nope.json: No such file or directory" \
  --check -c "$samples/nope.json"

# --- every problem, one line each ---------------------------------------------
three="$samples/three_errors.json"
check_bad "three errors" \
"patterngate: $three:4:49: services.users.timout_ms: unknown key (did you mean timeout_ms?)
patterngate: $three:10:43: routes[2].service: unknown service \"user\"; known: users, orders
patterngate: $three:11:7: routes[2].status: expected an integer from 200 to 299" \
  --check -c "$three"
run --check -c "$samples/many_errors.json"
expect_code 2 "many errors"; expect_no_stdout "many errors"
checks=$((checks + 1))
[ "$(wc -l <"$err")" -eq 21 ] && [ "$(tail -n1 "$err")" = "patterngate: (more errors not shown)" ] &&
  [ "$(sed -n 20p "$err")" = "patterngate: $samples/many_errors.json:21:3: bogus19: unknown key" ] ||
  fail "many errors: expected the first 20 and '(more errors not shown)'"

# --- --config, and a file given without -c ---------------------------------------
check_ok "--config FILE" "ok: 2 services, 3 routes" --check --config "$samples/valid.json"
check_ok "--config=FILE" "ok: 2 services, 3 routes" --config="$samples/valid.json" --check
for args in "--check --config" "--check --config=" "--check -c"; do
  run $args
  expect_code 2 "'$args'"; expect_no_stdout "'$args'"
  expect_stderr_has "needs a FILE" "'$args'"
done
run --check "$samples/valid.json"
expect_code 2 "a bare file"; expect_no_stdout "a bare file"
checks=$((checks + 1))
[ "$(head -n1 "$err")" = "patterngate: unexpected argument '$samples/valid.json'; did you mean -c $samples/valid.json?" ] ||
  fail "a bare file: expected 'did you mean -c FILE?'"
run --check main.json
expect_code 2 "a bare .json name"; expect_stderr_has "did you mean -c main.json?" "a bare .json name"
run serve
expect_code 2 "a bare word"
checks=$((checks + 1))
[ "$(head -n1 "$err")" = "patterngate: unexpected argument 'serve' (subcommands: call, emit, healthcheck, scaffold, openapi, explain)" ] ||
  fail "a bare word: expected the subcommands named"

# --- PATTERNGATE_CONFIG ---------------------------------------------------
export PATTERNGATE_CONFIG="$samples/valid.json"
check_ok "PATTERNGATE_CONFIG" "ok: 2 services, 3 routes" --check
PATTERNGATE_CONFIG="$samples/schema_error.json"
check_bad "PATTERNGATE_CONFIG invalid" \
  "patterngate: $samples/schema_error.json:3:29: services.math.endpoints[0]: expected \"host:port\" (missing port)" \
  --check
check_ok "-c wins over PATTERNGATE_CONFIG" "ok: 2 services, 3 routes" --check -c "$samples/valid.json"
PATTERNGATE_CONFIG=""
check_ok "empty PATTERNGATE_CONFIG" "ok: 1 service, 0 routes" --check
unset PATTERNGATE_CONFIG

# --- environment substitution -----------------------------------------------
USERS_HOST="bad host" check_bad "substituted value checked" \
  "patterngate: $samples/valid.json:5:30: services.users.endpoints[0]: expected \"host:port\" (bad host name)" \
  --check -c "$samples/valid.json"

# --- examples ------------------------------------------------------------------
check_bad "spec example without its token" \
  "patterngate: $examples/spec.json:7:31: auth.bearer_tokens[0]: \${GATEWAY_TOKEN} is not set" \
  --check -c "$examples/spec.json"
GATEWAY_TOKEN=t0ken check_ok "spec example" "ok: 3 services, 4 routes" --check -c "$examples/spec.json"
check_ok "egress example" "ok: 2 services, 0 routes" --check -c "$examples/egress.json"
check_ok "ingress example" "ok: 1 service, 6 routes" --check -c "$examples/ingress.json"
for example in "$examples"/*.json; do
  GATEWAY_TOKEN=t0ken run --check -c "$example"
  expect_code 0 "example $example"
done

# --- --version, --help ------------------------------------------------------------
run --version
expect_code 0 "--version"; expect_no_stderr "--version"
checks=$((checks + 1))
grep -qE '^patterngate [0-9]+\.[0-9]+\.[0-9]+$' "$out" && [ "$(wc -l <"$out")" -eq 1 ] ||
  fail "--version: expected 'patterngate X.Y.Z'"
for help in --help -h; do
  run $help
  expect_code 0 "$help"; expect_no_stderr "$help"
  for form in "patterngate [-c FILE] [--check [--live]] [--version] [--help]" "patterngate scaffold" "patterngate call" \
      "patterngate openapi [-c FILE]" \
      "patterngate emit" "patterngate healthcheck [-c FILE] [URL]" "--timeout MS" "--check" \
      "patterngate explain [-c FILE] METHOD PATH [BODY]" \
      "-c, --config FILE" "takes --help" "PATTERNGATE_CONFIG"; do
    expect_stdout_has "$form" "$help"
  done
done

# --- bad usage -------------------------------------------------------------------
for args in "--bogus" "-c" "--check extra" "-x --check" "--live"; do
  run $args
  expect_code 2 "bad usage '$args'"; expect_no_stdout "bad usage '$args'"
  expect_stderr_has "usage: patterngate [-c FILE]" "bad usage '$args'"
  checks=$((checks + 1))
  head -n1 "$err" | grep -q '^patterngate: ' || fail "bad usage '$args': first line names the problem"
done

for args in "--bogus" "-x --check"; do
  run $args
  checks=$((checks + 1))
  [ "$(head -n1 "$err")" = "patterngate: unknown option '${args%% *}'" ] ||
    fail "bad usage '$args': the option named"
done

# --- subcommands: --help, unknown options ------------------------------------------
for sub in call emit healthcheck scaffold openapi explain; do
  for help in --help -h; do
    run $sub $help
    expect_code 0 "$sub $help"; expect_no_stderr "$sub $help"
    checks=$((checks + 1))
    head -n1 "$out" | grep -q "^usage: patterngate $sub " || fail "$sub $help: usage on stdout"
  done
  run $sub --bogus
  expect_code 2 "$sub --bogus"; expect_no_stdout "$sub --bogus"
  checks=$((checks + 1))
  [ "$(head -n1 "$err")" = "patterngate $sub: unknown option '--bogus'" ] ||
    fail "$sub --bogus: the option named"
  expect_stderr_has "usage: patterngate $sub" "$sub --bogus"
done
run call --timeout 5 --help
expect_code 0 "call --help after an option"
for opt in --timeout --tls-ca --servername; do
  run call $opt
  expect_code 2 "call $opt"; expect_stderr_has "option $opt needs a value" "call $opt"
done
run call --help
for form in "--insecure" "--tls-cert F, --tls-key F" "--timeout MS" "PATTERN" "DATA"; do
  expect_stdout_has "$form" "call --help"
done
run scaffold --help
for form in "--name NAME" "patterngate-nest" "--check --live" "--tls-ca F"; do
  expect_stdout_has "$form" "scaffold --help"
done
for args in "" "127.0.0.1:1 extra" "--name bad/name 127.0.0.1:1" "--tls-cert c.pem 127.0.0.1:1"; do
  run scaffold $args
  expect_code 2 "scaffold $args"; expect_no_stdout "scaffold $args"
  expect_stderr_has "usage: patterngate scaffold" "scaffold $args"
done
run --live
expect_stderr_has "patterngate: --live goes with --check" "--live alone"
run healthcheck --help
for form in "-c, --config FILE" "admin_listen" "PATTERNGATE_CONFIG"; do
  expect_stdout_has "$form" "healthcheck --help"
done
run healthcheck -c "$three"
expect_code 2 "healthcheck with a bad config"; expect_no_stdout "healthcheck with a bad config"
expect_stderr_has "patterngate: $three:10:43: routes[2].service" "healthcheck with a bad config"
run healthcheck --config
expect_code 2 "healthcheck --config"; expect_stderr_has "option --config needs a FILE" "healthcheck --config"
run healthcheck -c "$samples/valid.json" http://127.0.0.1:1/healthz
expect_code 2 "healthcheck with -c and a URL"; expect_stderr_has "not both" "healthcheck with -c and a URL"


# --- openapi -------------------------------------------------------------------------
run openapi --help
for form in "-c, --config FILE" "OpenAPI 3.1" "/openapi.json" "PATTERNGATE_CONFIG"; do
  expect_stdout_has "$form" "openapi --help"
done
for args in "extra" "-c" "--config=" "-c $samples/valid.json extra"; do
  run openapi $args
  expect_code 2 "openapi $args"; expect_no_stdout "openapi $args"
  expect_stderr_has "usage: patterngate openapi [-c FILE]" "openapi $args"
done
run openapi extra
checks=$((checks + 1))
[ "$(head -n1 "$err")" = "patterngate openapi: unexpected argument 'extra'" ] || fail "openapi extra: the argument named"
run openapi -c "$three"
expect_code 2 "openapi with a bad config"; expect_no_stdout "openapi with a bad config"
expect_stderr_has "patterngate: $three:10:43: routes[2].service" "openapi with a bad config"
run openapi -c "$samples/valid.json"
expect_code 0 "openapi -c valid.json"; expect_no_stderr "openapi -c valid.json"
expect_stdout_has '"openapi": "3.1.0"' "openapi -c valid.json"
checks=$((checks + 1))
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["paths"], "no paths"' "$out" ||
  fail "openapi -c valid.json: stdout is not a document with paths"
run openapi
expect_code 0 "openapi (embedded default)"
expect_stdout_has '"/v1/send/{service}"' "openapi (embedded default): the generic API"
PATTERNGATE_CONFIG="$samples/valid.json" "$bin" openapi >"$out" 2>"$err"; code=$?
expect_code 0 "openapi with PATTERNGATE_CONFIG"
checks=$((checks + 1))
PATTERNGATE_CONFIG="$samples/valid.json" "$bin" openapi --config "$samples/valid.json" | cmp -s - "$out" ||
  fail "openapi: PATTERNGATE_CONFIG and -c give other documents"
# --- explain: a dry run of one request -------------------------------------------
ex=$samples/explain.json
run explain -c "$ex" GET '/users/7?full=true' -H 'Authorization: Bearer tok' -H 'Accept-Language: fr'
expect_code 0 "explain a route"; expect_no_stderr "explain a route"
expect_stdout "$(printf '%s\n' 'route: GET /users/:id' 'auth: bearer' 'service: users' 'kind: send' 'reply: auto' \
  'pattern: "get_user"' 'data: {"id":7,"full":true,"lang":"fr"}')" "explain a route"
run explain --config "$ex" POST 'http://gw.example:8080/users#frag' '{"name":"é","n":123456789012345678901234567890}' \
  -H 'authorization: bearer tok'
expect_code 0 "explain a URL with a body"
expect_stdout_has 'data: {"name":"é","n":123456789012345678901234567890}' "explain a URL with a body"
expect_stdout_has 'pattern: {"cmd":"create"}' "explain a URL with a body"
run explain -c "$ex" POST '/v1/send/users?reply=ndjson' '{"pattern":"p","data":[1]}' -H 'Authorization: Bearer tok'
expect_code 0 "explain the generic API"
expect_stdout "$(printf '%s\n' 'route: generic' 'auth: bearer' 'service: users' 'kind: send' 'reply: ndjson' \
  'pattern: "p"' 'data: [1]')" "explain the generic API"
run explain -c "$ex" HEAD '/users/7?full=true' -H 'Authorization: Bearer tok'
expect_code 0 "explain HEAD on a GET route"
expect_stdout "$(printf '%s\n' 'route: GET /users/:id' 'auth: bearer' 'service: users' 'kind: send' 'reply: auto' \
  'pattern: "get_user"' 'data: {"id":7,"full":true,"lang":null}')" "explain HEAD on a GET route"
run explain -c "$ex" HEAD /ticks -H 'Authorization: Bearer tok'
expect_code 0 "explain HEAD on a stream route"
expect_stdout_has "head: HEAD on a stream route is answered with the stream's head alone (no packet)" \
  "explain HEAD on a stream route"
run explain -c "$ex" PUT /users/7 -H 'Authorization: Bearer tok'
expect_code 1 "explain a 405 where GET is allowed"
expect_stdout_has 'allow: GET, HEAD' "explain a 405 where GET is allowed"
run explain -c "$ex" GET /users/7
expect_code 1 "explain without the token"; expect_no_stderr "explain without the token"
expect_stdout "$(printf '%s\n' 'route: GET /users/:id' 'www-authenticate: Bearer' 'status: 401' \
  'body: {"statusCode":401,"error":"unauthorized","message":"a valid bearer token is required"}')" \
  "explain without the token"
run explain -c "$ex" GET /nowhere -H 'Authorization: Bearer tok'
expect_code 1 "explain a 404"
expect_stdout_has 'status: 404' "explain a 404"; expect_stdout_has '"error":"not_found"' "explain a 404"
run explain -c "$ex" DELETE /users -H 'Authorization: Bearer tok'
expect_code 1 "explain a 405"
expect_stdout_has 'allow: POST' "explain a 405"; expect_stdout_has 'status: 405' "explain a 405"
run explain -c "$ex" GET /users/x7 -H 'Authorization: Bearer tok'
expect_code 1 "explain a bad conversion"
expect_stdout_has 'path parameter \"id\": expected a decimal integer, got \"x7\"' "explain a bad conversion"
run explain -c "$ex" POST /users '{"a":' -H 'Authorization: Bearer tok'
expect_code 1 "explain a bad body"; expect_stdout_has 'status: 400' "explain a bad body"
run explain -c "$ex" GET
expect_code 2 "explain without a path"; expect_stderr_has "METHOD and PATH are required" "explain without a path"
run explain -c "$ex" GET users
expect_code 2 "explain a relative path"; expect_stderr_has "PATH must start with /" "explain a relative path"
# --- explain: the edge policy (CORS, JWT auth, require_claims, rate limit) ----------
edge=$samples/explain_edge.json
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
# hs256 PAYLOAD: a JWT signed with explain_edge.json's secret
hs256() {
  local h p
  h=$(printf '%s' '{"alg":"HS256","typ":"JWT"}' | b64url)
  p=$(printf '%s' "$1" | b64url)
  printf '%s.%s.%s' "$h" "$p" "$(printf '%s.%s' "$h" "$p" |
    openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef -binary | b64url)"
}
now=$(date +%s)
claims() { printf '{"iss":"https://issuer.test/","aud":"explain","sub":"u42","exp":%s,"scope":"%s","roles":["a"]}' "$1" "$2"; }
good=$(hs256 "$(claims $((now + 3600)) 'orders:read orders:write')")
run explain -c "$edge" GET /orders/7 -H "Authorization: Bearer $good" -H 'Origin: https://app.example'
expect_code 0 "explain a JWT route"; expect_no_stderr "explain a JWT route"
expect_stdout "$(printf '%s\n' 'route: GET /orders/:id' 'cors: allowed' \
  'access-control-allow-origin: https://app.example' 'vary: Origin' 'access-control-allow-credentials: true' \
  'auth: jwt (verified with the configured keys)' \
  'rate_limit: 5 per second, burst 10, bucket GET /orders/:id key "u42" (a dry run takes no token)' \
  'service: orders' 'kind: send' 'reply: auto' 'metadata: {"jwt.sub":"u42","jwt.roles":"[\"a\"]"}' \
  'pattern: "get"' 'data: {"id":"7","user":"u42"}')" "explain a JWT route"
run explain -c "$edge" GET /orders/7 -H "Authorization: Bearer $(hs256 "$(claims $((now - 3600)) orders:read)")"
expect_code 1 "explain an expired JWT"
expect_stdout_has 'www-authenticate: Bearer error="invalid_token", error_description="token expired"' \
  "explain an expired JWT"
expect_stdout_has '"statusCode":401,"error":"unauthorized"' "explain an expired JWT"
run explain -c "$edge" GET /orders/7 -H "Authorization: Bearer $(hs256 "$(claims $((now + 3600)) orders:write)")"
expect_code 1 "explain require_claims"
expect_stdout_has 'www-authenticate: Bearer error="insufficient_scope"' "explain require_claims"
expect_stdout_has '"statusCode":403,"error":"forbidden"' "explain require_claims"
run explain -c "$edge" GET /orders/7 -H 'Authorization: Bearer tok'
expect_code 1 "explain a bearer token on a JWT route"
expect_stdout_has 'error_description="not three base64url parts"' "explain a bearer token on a JWT route"
run explain -c "$edge" POST /orders '{}' -H 'Authorization: Bearer tok'
expect_code 0 "explain a bearer token on a route of every mechanism"; expect_stdout_has 'auth: bearer' \
  "explain a bearer token on a route of every mechanism"
run explain -c "$edge" OPTIONS /orders/7 -H 'Origin: https://app.example' \
  -H 'Access-Control-Request-Method: GET' -H 'Access-Control-Request-Headers: authorization'
expect_code 0 "explain a preflight"
expect_stdout "$(printf '%s\n' 'route: /orders/:id' \
  'cors: preflight allowed: answered by the gateway (no auth, nothing sent)' \
  'access-control-allow-origin: https://app.example' 'access-control-allow-credentials: true' \
  'access-control-allow-methods: GET, HEAD' 'access-control-allow-headers: authorization' \
  'access-control-max-age: 600' 'status: 204')" "explain a preflight"
run explain -c "$edge" OPTIONS /orders/7 -H 'Origin: https://evil.example' -H 'Access-Control-Request-Method: GET'
expect_code 1 "explain a refused preflight"
expect_stdout_has '"statusCode":403,"error":"forbidden","message":"CORS preflight refused: origin not allowed"' \
  "explain a refused preflight"
run explain -c "$edge" OPTIONS /orders/7 -H 'Origin: https://app.example' -H 'Authorization: Bearer tok'
expect_code 1 "explain OPTIONS that is no preflight"; expect_stdout_has 'status: 405' "explain OPTIONS that is no preflight"
run explain -c "$edge" GET /health -H 'Origin: https://elsewhere.example'
expect_code 0 "explain a public route"; expect_stdout_has 'access-control-allow-origin: *' "explain a public route"
checks=$((checks + 1)); ! grep -q '^auth:' "$out" || fail "explain a public route: no auth line expected"
run explain -c "$samples/explain_jwks_missing.json" GET /orders
expect_code 2 "explain without the JWKS file"; expect_stderr_has "auth.jwt.jwks_file: cannot read" \
  "explain without the JWKS file"

run explain --help
for form in "-H \"Name: value\"" "METHOD" "whole URL" "Exit codes"; do
  expect_stdout_has "$form" "explain --help"
done

echo "$checks checks, $failures failures"
[ "$failures" -eq 0 ]
