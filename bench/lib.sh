# Helpers shared by bench/http-compare and bench/run (sourced, not run).
#
# The sourcing script sets before use:
#   PROG           its name, the prefix of every message
#   ready_timeout  seconds to wait for a READY line
#   out            absolute output folder (make_certs)
# and gets:
#   pids           every process started: `pids+=($!)`; bench_cleanup (an
#                  EXIT trap set by bench_traps) stops them all
#
# Processes are stopped by their recorded ids only (TERM, then KILL after
# 3 s), never by name.

pids=()

# bench_cleanup: stops every recorded process (the EXIT trap).
bench_cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 30); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  pids=()
}

bench_traps() {
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# stop PID: TERM, wait up to 3 s, then KILL; forget it.
stop() {
  local pid=$1 keep=() p
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${pids[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}

# wait_ready PID OUTFILE ERRFILE NAME: prints the port of the READY line.
wait_ready() {
  local pid=$1 outf=$2 errf=$3 name=$4 deadline=$((SECONDS + ready_timeout)) line
  while ((SECONDS < deadline)); do
    line=$(grep -m1 '^READY [0-9]' "$outf" 2>/dev/null || true)
    if [ -n "$line" ]; then echo "${line#READY }"; return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$PROG: $name exited before it was ready; its stderr:" >&2
      tail -20 "$errf" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "$PROG: $name printed no READY line within ${ready_timeout}s" >&2
  return 1
}

# free_port: a port nobody listens on now, picked by the kernel.
free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# cpu_ticks PID: utime+stime (all threads) in clock ticks.
cpu_ticks() {
  local stat rest fields
  stat=$(<"/proc/$1/stat")
  rest=${stat##*) }            # fields from 3 (state) on; comm may hold spaces
  read -r -a fields <<<"$rest"
  echo $((fields[11] + fields[12]))   # fields 14 utime and 15 stime
}

# rss_kb PID: VmRSS in kB.
rss_kb() {
  local key val _
  while read -r key val _; do
    [ "$key" = "VmRSS:" ] && { echo "$val"; return; }
  done <"/proc/$1/status"
  echo 0
}

# sample_rss PID FILE: writes the largest VmRSS seen to FILE, every 0.2 s,
# until killed (or PID exits).
sample_rss() {
  local pid=$1 file=$2 max=0 v
  while kill -0 "$pid" 2>/dev/null; do
    v=$(rss_kb "$pid" 2>/dev/null || echo 0)
    ((v > max)) && { max=$v; echo "$max" >"$file"; }
    sleep 0.2
  done
}

# to_ms VALUE [DECIMALS]: a wrk duration (12.3us, 4.5ms, 1.2s, 2m) in
# milliseconds, with 2 decimals unless told.
to_ms() {
  awk -v v="$1" -v d="${2:-2}" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
    printf "%." d "f", n }'
}

# make_certs: a CA and a certificate for 127.0.0.1 in $out/certs.
make_certs() {
  local d=$out/certs ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  [ -f "$d/server.crt" ] && return 0
  mkdir -p "$d"
  {
    openssl req -x509 "${ec[@]}" -keyout "$d/ca.key" -out "$d/ca.crt" -days 2 -subj /CN=bench-ca &&
    openssl req "${ec[@]}" -keyout "$d/server.key" -out "$d/server.csr" -subj /CN=localhost &&
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$d/server.ext" &&
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
      -out "$d/server.crt" -days 2 -extfile "$d/server.ext"
  } >"$d/openssl.log" 2>&1 || { echo "$PROG: openssl failed (see $d/openssl.log)" >&2; return 1; }
}

# wrk_field FILE WHAT: reads one figure from wrk's output.
wrk_field() {
  local f=$1
  case $2 in
    rps) awk '/^Requests\/sec:/ {print $2}' "$f" ;;
    requests) awk '/ requests in / {print $1}' "$f" ;;
    p50) awk '$1 == "50%" {print $2}' "$f" ;;
    p99) awk '$1 == "99%" {print $2}' "$f" ;;
    non2xx) awk '/Non-2xx or 3xx responses:/ {print $NF; f=1} END {if (!f) print 0}' "$f" ;;
    sockerr) awk '/Socket errors:/ {gsub(/,/, ""); print $4 + $6 + $8 + $10; f=1} END {if (!f) print 0}' "$f" ;;
  esac
}
