#!/usr/bin/env bash
# `make bench` (SPEC section 10): one run, one load tool (wrk), the same
# settings for every contender:
#   (a) the upstream directly: nginx serving WHM-shaped JSON over TLS
#   (b) whmgate, audit fsync "never" and, as separate rows, "always"
#   (c) nginx and (d) HAProxy configured to do the same job (conf/bench/)
# Loads: the small listaccts body at 1 and 64 connections, the 1 MB body at 8.
# Prints one markdown table and writes it to build/bench.md. Everything it
# starts is stopped on exit, failure or Ctrl-C; its files live in build/bench/.
#
# Every contender runs BENCH_ROUNDS times, the rounds interleaved (a b c d,
# a b c d, ...), so drift in what else the host runs hits all alike; the
# table gives each row's median round and the spread of req/s over rounds.
#
# Environment: BENCH_ROUNDS (3), BENCH_SECONDS (5) per row and round,
# BENCH_WARMUP (1), WORKERS (1) for
# whmgate "workers", nginx worker_processes and HAProxy nbthread,
# UPSTREAM_WORKERS (1) for the upstream nginx, BIN (build/whmgate),
# BENCH_ONLY (e.g. "a b c d" - which contenders to run), BENCH_PERF=1 to
# record a perf profile of each measured row (build/bench/perf-<row>.data;
# `perf report -i FILE --no-children` reads it).
# It fails only when a contender cannot be started or answers nothing but
# errors; slowness is reported, never judged.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=${BIN:-build/whmgate}
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECONDS:-5}
WARM=${BENCH_WARMUP:-1}
WORKERS=${WORKERS:-1}
UP_WORKERS=${UPSTREAM_WORKERS:-1}
ONLY=${BENCH_ONLY:-a b c d}
WRK_TIMEOUT=5s
D=$ROOT/build/bench
HELPER="python3 $ROOT/tests/bench/helper.py"
LUA=$ROOT/tests/bench/auth.lua

for v in ROUNDS SECS WARM WORKERS UP_WORKERS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "bench: $v must be a positive integer" >&2; exit 2; }
done
for t in nginx haproxy wrk curl openssl python3; do
  command -v "$t" >/dev/null || { echo "bench: $t is missing (make bench installs it)" >&2; exit 2; }
done
[ -x "$BIN" ] || { echo "bench: $BIN is missing (make all)" >&2; exit 2; }
BIN=$(realpath "$BIN")

# ---------------------------------------------------------------- processes
pids=()       # everything started, stopped by cleanup
cleanup() {
  local p i
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  pids=()
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

stop() {   # stop one started process (and its children) and wait for it
  local p=$1 i keep=()
  kill -TERM "$p" 2>/dev/null || true
  for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  for i in "${pids[@]}"; do [ "$i" = "$p" ] || keep+=("$i"); done
  pids=("${keep[@]}")
}

wait_port() {   # wait_port PID PORT: until PORT accepts, or PID died
  local i
  for i in $(seq 100); do
    kill -0 "$1" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------- setup
rm -rf "$D"
mkdir -p "$D/tmp" "$D/www"
chmod 700 "$D"
umask 077
read -r UP_PORT P_NEVER P_ALWAYS P_NGINX P_HAPROXY < <($HELPER ports 5)

# A throwaway CA and a server certificate for 127.0.0.1 and localhost.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=whmgate-bench-ca \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout "$D/ca.key" -out "$D/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
  -keyout "$D/server.key" -out "$D/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
  >"$D/server.ext"
openssl x509 -req -in "$D/server.csr" -CA "$D/ca.crt" -CAkey "$D/ca.key" -CAcreateserial \
  -days 2 -extfile "$D/server.ext" -out "$D/server.crt" 2>/dev/null
# A WHM API token (32 of [0-9A-Z]) and a whmgate client key.
python3 -c 'import secrets, string; a = string.ascii_uppercase + string.digits; print("".join(secrets.choice(a) for _ in range(32)), end="")' >"$D/whm_token"
TOKEN=$(cat "$D/whm_token")
"$BIN" keygen >"$D/client.key"
KEY=$(sed -n 1p "$D/client.key")
KEY_HASH=$(sed -n 2p "$D/client.key")
printf '%s bench\n' "$KEY" >"$D/haproxy-keys.map"
umask 022
BODIES=$($HELPER bodies "$D/www")
chmod 755 "$D/www" "$D/www/json-api"

# Workers drop to "nobody" when nginx starts as root; keep them the invoking
# user, like whmgate and HAProxy, so they can read build/bench/.
USER_LINE=""
[ "$(id -u)" = 0 ] && USER_LINE="user root root;"
render() {   # render TEMPLATE OUT [FSYNC] [GW_PORT]
  sed -e "s|@DIR@|$D|g" -e "s|@UP_PORT@|$UP_PORT|g" -e "s|@GW_PORT@|${4:-0}|g" \
      -e "s|@TOKEN@|$TOKEN|g" -e "s|@KEY@|$KEY|g" -e "s|@KEY_HASH@|$KEY_HASH|g" \
      -e "s|@WORKERS@|$WORKERS|g" -e "s|@UP_WORKERS@|$UP_WORKERS|g" \
      -e "s|@FSYNC@|${3:-never}|g" -e "s|@USER@|$USER_LINE|g" "$ROOT/conf/bench/$1" >"$2"
  chmod 600 "$2"
}
render upstream-nginx.conf.in "$D/upstream-nginx.conf"
render whmgate.json.in "$D/whmgate-never.json" never "$P_NEVER"
render whmgate.json.in "$D/whmgate-always.json" always "$P_ALWAYS"
render gateway-nginx.conf.in "$D/gw-nginx.conf" never "$P_NGINX"
render haproxy.cfg.in "$D/haproxy.cfg" never "$P_HAPROXY"

# ---------------------------------------------------------------- versions
NGINX_V=$(nginx -v 2>&1 | sed 's/^nginx version: nginx.//')
HAPROXY_V=$(haproxy -v | sed -n '1s/^HAProxy version \([^ ]*\).*/\1/p')
WRK_V=$(wrk -v 2>&1 | sed -n '1s/^wrk \([^ ]*\).*/\1/p' || true)
WHMGATE_V=$("$BIN" -V 2>&1 | head -1 | sed 's/^whmgate //')
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
OPENSSL_V=$(openssl version | cut -d' ' -f1-2)
FSYNC_T=$($HELPER fsync "$D")

# ---------------------------------------------------------------- upstream
nginx -p "$D" -e "$D/upstream.error.log" -c "$D/upstream-nginx.conf" >"$D/upstream.out" 2>&1 &
UP_PID=$!
pids+=("$UP_PID")
if ! wait_port "$UP_PID" "$UP_PORT"; then
  echo "bench: the upstream nginx did not start:" >&2
  cat "$D/upstream.out" "$D/upstream.error.log" >&2 2>/dev/null || true
  exit 1
fi
UP_URL=https://127.0.0.1:$UP_PORT
code=$(curl -s --cacert "$D/ca.crt" -o "$D/check.body" -w '%{http_code}' \
  -H "Authorization: whm root:$TOKEN" "$UP_URL/json-api/listaccts?api.version=1")
if [ "$code" != 200 ] || ! cmp -s "$D/check.body" "$D/www/json-api/listaccts"; then
  echo "bench: the upstream answers $code, not the listaccts body" >&2; exit 1
fi
TLS_INFO=$(openssl s_client -connect "127.0.0.1:$UP_PORT" -CAfile "$D/ca.crt" </dev/null 2>/dev/null |
  sed -n 's/^New, \(.*\)$/\1/p' | head -1)

echo "whmgate benchmark: $ROUNDS rounds of $SECS s per row after a $WARM s warm-up; workers=$WORKERS"
echo "bodies: $BODIES"
echo

# ---------------------------------------------------------------- rows
ROWS=$D/rows.jsonl
: >"$ROWS"
failures=()

# check_gateway NAME URL: a good call gets the body, a wrong key 401, an
# unlisted function 403 - the job is done before it is measured.
check_gateway() {
  local name=$1 url=$2 c1 c2 c3
  c1=$(curl -s -o "$D/check.body" -w '%{http_code}' -H "Authorization: Bearer $KEY" \
    "$url/json-api/listaccts?api.version=1") || true
  c2=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer whmg_wrongwrongwrongwrongwrongwrongwrongwrongwro" \
    "$url/json-api/listaccts?api.version=1") || true
  c3=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KEY" \
    "$url/json-api/removeacct?api.version=1&user=cust1") || true
  if [ "$c1" = 200 ] && cmp -s "$D/check.body" "$D/www/json-api/listaccts" &&
     [ "$c2" = 401 ] && [ "$c3" = 403 ]; then
    return 0
  fi
  echo "bench: $name fails the check: listaccts $c1 (want 200 and the body), wrong key $c2 (want 401), removeacct $c3 (want 403)" >&2
  return 1
}

# run_row NAME PID AUTH BASEURL FN CONNS LOGFILE [base]
# LOGFILE is the contender's access log or audit file ("" for none): the row
# reports how many lines it gained per request.
run_row() {
  local name=$1 pid=$2 auth=$3 url=$4 fn=$5 conns=$6 log=$7 base=${8:-}
  local threads=2 tag cpu0 cpu1 rss up0 up1 l0=0 l1=0 rc=0 _
  [ "$conns" -lt 2 ] && threads=1          # wrk needs a connection per thread
  tag="${name//[^a-zA-Z0-9]/_}-$fn-c$conns-r$ROUND"
  tag=${tag//__/_}
  BENCH_AUTH=$auth wrk -t"$threads" -c"$conns" -d"${WARM}s" --timeout "$WRK_TIMEOUT" \
    -s "$LUA" "$url/json-api/$fn?api.version=1" >"$D/wrk-$tag-warmup.txt" 2>&1 || true
  [ -n "$log" ] && l0=$(wc -l <"$log")
  { read -r cpu0 _ _; read -r up0 _ _; } < <($HELPER probe --reset "$pid" "$UP_PID")
  local perf_pid=""
  if [ -n "${BENCH_PERF:-}" ]; then
    perf record -q -F 499 -g -p "$(echo "$pid" $(pgrep -P "$pid") | tr ' ' ,)" -o "$D/perf-$tag.data" -- sleep "$SECS" \
      >"$D/perf-$tag.out" 2>&1 &
    perf_pid=$!
  fi
  BENCH_AUTH=$auth wrk -t"$threads" -c"$conns" -d"${SECS}s" --timeout "$WRK_TIMEOUT" --latency \
    -s "$LUA" "$url/json-api/$fn?api.version=1" >"$D/wrk-$tag.txt" 2>&1 || true
  { read -r cpu1 rss _; read -r up1 _ _; } < <($HELPER probe "$pid" "$UP_PID")
  [ -n "$perf_pid" ] && { wait "$perf_pid" || true; }
  sleep 0.2                                # let the last log lines land
  [ -n "$log" ] && l1=$(wc -l <"$log")
  $HELPER row --out "$ROWS" --wrk "$D/wrk-$tag.txt" --round "$ROUND" --contender "$name" --body "$fn" \
    --conns "$conns" ${base:+--base} --cpu0 "$cpu0" --cpu1 "$cpu1" --upcpu0 "$up0" \
    --upcpu1 "$up1" --rss "$rss" ${log:+--loglines $((l1 - l0))} || rc=$?
  if [ "$rc" = 3 ]; then
    failures+=("$name $fn c=$conns round $ROUND: every request failed (see build/bench/wrk-$tag.txt)")
  elif [ "$rc" != 0 ]; then
    failures+=("$name $fn c=$conns: could not read wrk's output (build/bench/wrk-$tag.txt)")
  fi
}

run_loads() {   # run_loads NAME PID AUTH BASEURL LOGFILE [base]
  run_row "$1" "$2" "$3" "$4" listaccts 1 "$5" "${6:-}"
  run_row "$1" "$2" "$3" "$4" listaccts 64 "$5" "${6:-}"
  run_row "$1" "$2" "$3" "$4" bigdump 8 "$5" "${6:-}"
}

not_started() {   # a row that says the contender did not start
  failures+=("$1 did not start or failed its check in round $ROUND (see build/bench/)")
  printf '{"contender":"%s","round":%d,"body":"-","conns":0,"base":false,"rps":0,"p50":null,"p99":null,"cpu10k":0,"upcpu10k":null,"rss":0,"requests":0,"non2xx":0,"sock":{},"note":"did not start"}\n' \
    "$1" "$ROUND" >>"$ROWS"
}

# (a) the upstream directly
bench_a() {
  echo "(a) upstream nginx directly over TLS"
  run_loads "(a) upstream direct (TLS)" "$UP_PID" "whm root:$TOKEN" "$UP_URL" "" base
}

# (b) whmgate, fsync never or always; the trail written under load must
# still be one intact chain.
bench_b() {
  local mode=$1 name="(b) whmgate fsync=$1" port cfg
  echo "$name"
  port=$P_NEVER; [ "$mode" = always ] && port=$P_ALWAYS
  cfg=$D/whmgate-$mode.json
  AUDIT=$D/audit-$mode.jsonl
  if ! "$BIN" -t -c "$cfg" >"$D/whmgate-$mode.check" 2>&1; then
    echo "bench: whmgate -t refuses $cfg (workers=$WORKERS):" >&2
    cat "$D/whmgate-$mode.check" >&2
    not_started "$name"
    return
  fi
  echo "-- round $ROUND" >>"$D/whmgate-$mode.out"
  "$BIN" -c "$cfg" >>"$D/whmgate-$mode.out" 2>&1 &
  GW_PID=$!
  pids+=("$GW_PID")
  if ! wait_port "$GW_PID" "$port" || ! check_gateway "$name" "http://127.0.0.1:$port"; then
    cat "$D/whmgate-$mode.out" >&2
    not_started "$name"
    stop "$GW_PID"
    return
  fi
  run_loads "$name" "$GW_PID" "Bearer $KEY" "http://127.0.0.1:$port" "$AUDIT"
  if ! kill -0 "$GW_PID" 2>/dev/null; then
    wait "$GW_PID" || failures+=("$name: whmgate exited with status $? during round $ROUND (build/bench/whmgate-$mode.out)")
  fi
  stop "$GW_PID"
  if "$BIN" audit verify "$AUDIT" >"$D/audit-$mode.verify" 2>&1; then
    echo "   audit verify: $(tail -1 "$D/audit-$mode.verify")"
  else
    echo "   audit verify FAILED: $(tail -1 "$D/audit-$mode.verify")" >&2
    failures+=("$name: audit verify failed in round $ROUND (build/bench/audit-$mode.verify)")
  fi
}

# (c) nginx as the gateway
bench_c() {
  local name="(c) nginx gateway"
  echo "$name"
  nginx -p "$D" -e "$D/gw-nginx.error.log" -c "$D/gw-nginx.conf" >"$D/gw-nginx.out" 2>&1 &
  GW_PID=$!
  pids+=("$GW_PID")
  if wait_port "$GW_PID" "$P_NGINX" && check_gateway "$name" "http://127.0.0.1:$P_NGINX"; then
    run_loads "$name" "$GW_PID" "Bearer $KEY" "http://127.0.0.1:$P_NGINX" "$D/gw-nginx.access.jsonl"
  else
    cat "$D/gw-nginx.out" "$D/gw-nginx.error.log" >&2 2>/dev/null || true
    not_started "$name"
  fi
  stop "$GW_PID"
}

# (d) HAProxy as the gateway
bench_d() {
  local name="(d) HAProxy gateway" started=0
  echo "$name"
  if haproxy -c -f "$D/haproxy.cfg" >"$D/haproxy.check" 2>&1; then
    # stdout carries the access log.
    haproxy -db -f "$D/haproxy.cfg" >"$D/haproxy.access.jsonl" 2>"$D/haproxy.err" &
    GW_PID=$!
    pids+=("$GW_PID")
    if wait_port "$GW_PID" "$P_HAPROXY" && check_gateway "$name" "http://127.0.0.1:$P_HAPROXY"; then
      started=1
      run_loads "$name" "$GW_PID" "Bearer $KEY" "http://127.0.0.1:$P_HAPROXY" "$D/haproxy.access.jsonl"
    fi
    stop "$GW_PID"
  fi
  if [ "$started" = 0 ]; then
    cat "$D/haproxy.check" "$D/haproxy.err" "$D/haproxy.access.jsonl" >&2 2>/dev/null || true
    not_started "$name"
  fi
}

for ROUND in $(seq "$ROUNDS"); do
  echo "-- round $ROUND of $ROUNDS"
  for x in $ONLY; do
    case $x in
      a) bench_a ;;
      b) bench_b never; bench_b always ;;
      c) bench_c ;;
      d) bench_d ;;
      *) echo "bench: unknown contender '$x' in BENCH_ONLY" >&2; exit 2 ;;
    esac
  done
done

stop "$UP_PID"

# ---------------------------------------------------------------- report
{
  echo "# whmgate benchmark"
  echo
  echo "- machine: $(nproc) CPUs, $CPU, $(uname -sr); load average before the run: $LOAD (other work on the machine skews the numbers)"
  echo "- versions: whmgate $WHMGATE_V, nginx $NGINX_V, HAProxy $HAPROXY_V, wrk $WRK_V, $OPENSSL_V"
  echo "- duration: $ROUNDS rounds, interleaved (every contender once per round); in each, $SECS s per row after a $WARM s warm-up at the same load; wrk --latency, --timeout $WRK_TIMEOUT, 2 threads (1 at 1 connection)"
  echo "- each row is the round with the median req/s (its p50, p99, CPU and RSS); req/s range: the lowest and highest of the rounds; ratios are of medians"
  echo "- workers: $WORKERS (whmgate \"workers\", nginx worker_processes, HAProxy nbthread); upstream nginx worker_processes $UP_WORKERS"
  echo "- upstream: nginx over TLS on 127.0.0.1 ($TLS_INFO, RSA 2048 certificate from a throwaway CA), keep-alive; bodies: $BODIES"
  echo "- request: GET /json-api/<function>?api.version=1 with one Authorization header; the gateways listen on plain HTTP on 127.0.0.1 and verify the upstream's certificate"
  echo "- CPU s/10k req: utime+stime of the contender's processes (all threads, nginx master+workers) over the measured run; upstream CPU the same for the upstream nginx; peak RSS: sum of VmHWM, reset before each run"
  echo "- vs (a): requests/s over (a)'s at the same body and connection count. (a) makes wrk itself speak TLS while the gateways take plain HTTP and speak TLS to the upstream, so a gateway can beat 1.00; all processes (wrk, upstream, gateway) share the $(nproc) CPUs"
  echo "- log lines/req: lines the contender's access log or audit file gained per completed request (whmgate writes a request and a response record)"
  echo
  echo "What each contender does:"
  echo
  echo "- (a) upstream direct: wrk speaks TLS to the nginx stand-in, which checks the WHM token by string comparison and serves a static file. No gateway."
  echo "- (b) whmgate: strict HTTP/1.1 parsing (SPEC 4), SHA-256 of the bearer key compared in constant time, function allowlist and parameter-level policy (query parsed and decoded, api.version checked, duplicates refused), the upstream request rebuilt from parsed values, a hash-chained audit trail written ahead (a request record before forwarding, a response record with WHM's metadata.result after: 2 lines per call), metrics, response streamed back; upstream via libcurl over verified TLS with reused connections. fsync=never leaves syncing to the kernel; fsync=always fdatasyncs each batch of request records before forwarding (group commit); one fdatasync of an appended line in build/bench/ took $FSYNC_T on this disk before the run."
  echo "- (c) nginx: exact map lookup of the whole Authorization value (no hashing, not constant-time), function allowlist by map on the path, Authorization replaced by the WHM token, other client headers dropped, X-Request-Id added, one JSON access-log line per request written after the response (no fsync, no chain), verified TLS (proxy_ssl_verify, name localhost) with upstream keep-alive. No parameter parsing or checks, query passed as is, upstream response headers passed on."
  echo "- (d) HAProxy: map lookup of the bearer key, path allowlist by ACL, Authorization replaced, X-Request-Id added, other client headers passed on, one JSON log line per request to stdout redirected to a file (after the response, no fsync, no chain), verified TLS (verify required, ca-file, verifyhost) with idle connection reuse. No parameter parsing or checks, query passed as is."
} >"$D/header.md"
$HELPER table "$ROWS" "$D/header.md" >"$ROOT/build/bench.md"
echo
cat "$ROOT/build/bench.md"
echo
echo "written to build/bench.md; raw wrk output and logs in build/bench/"

cleanup
for p in $UP_PORT $P_NEVER $P_ALWAYS $P_NGINX $P_HAPROXY; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "bench: something still listens on 127.0.0.1:$p" >&2
    failures+=("port $p still open after the run")
  fi
done
if [ "${#failures[@]}" -gt 0 ]; then
  echo >&2
  printf 'bench: FAILED: %s\n' "${failures[@]}" >&2
  exit 1
fi
