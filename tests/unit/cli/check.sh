#!/usr/bin/env bash
# The command line's main form: --check, --version, --help, bad usage and
# PATTERNGATE_CONFIG, against the built binary.
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
check_bad "syntax error" "patterngate: $samples/syntax_error.json:3:16: string or '}' expected near ','" \
  --check -c "$samples/syntax_error.json"
check_bad "schema error" \
  "patterngate: $samples/schema_error.json: services.math.endpoints[0]: expected \"host:port\" (missing port)" \
  --check -c "$samples/schema_error.json"
check_bad "unknown key" "patterngate: $samples/unknown_key.json: services.math.tls.insecure: unknown key" \
  --check -c "$samples/unknown_key.json"
check_bad "missing file" "patterngate: $samples/nope.json: No such file or directory" \
  --check -c "$samples/nope.json"

# --- PATTERNGATE_CONFIG ---------------------------------------------------
export PATTERNGATE_CONFIG="$samples/valid.json"
check_ok "PATTERNGATE_CONFIG" "ok: 2 services, 3 routes" --check
PATTERNGATE_CONFIG="$samples/schema_error.json"
check_bad "PATTERNGATE_CONFIG invalid" \
  "patterngate: $samples/schema_error.json: services.math.endpoints[0]: expected \"host:port\" (missing port)" \
  --check
check_ok "-c wins over PATTERNGATE_CONFIG" "ok: 2 services, 3 routes" --check -c "$samples/valid.json"
PATTERNGATE_CONFIG=""
check_ok "empty PATTERNGATE_CONFIG" "ok: 1 service, 0 routes" --check
unset PATTERNGATE_CONFIG

# --- environment substitution -----------------------------------------------
USERS_HOST="bad host" check_bad "substituted value checked" \
  "patterngate: $samples/valid.json: services.users.endpoints[0]: expected \"host:port\" (bad host name)" \
  --check -c "$samples/valid.json"

# --- examples ------------------------------------------------------------------
check_bad "spec example without its token" \
  "patterngate: $examples/spec.json: auth.bearer_tokens[0]: \${GATEWAY_TOKEN} is not set" \
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
  for form in "patterngate [-c FILE] [--check] [--version] [--help]" "patterngate call" \
      "patterngate emit" "patterngate healthcheck [URL]" "--timeout MS" "--check" \
      "PATTERNGATE_CONFIG"; do
    expect_stdout_has "$form" "$help"
  done
done

# --- bad usage -------------------------------------------------------------------
for args in "--bogus" "-c" "--check extra" "-x --check"; do
  run $args
  expect_code 2 "bad usage '$args'"; expect_no_stdout "bad usage '$args'"
  expect_stderr_has "usage: patterngate [-c FILE]" "bad usage '$args'"
  checks=$((checks + 1))
  head -n1 "$err" | grep -q '^patterngate: ' || fail "bad usage '$args': first line names the problem"
done

echo "$checks checks, $failures failures"
[ "$failures" -eq 0 ]
