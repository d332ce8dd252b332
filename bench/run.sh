#!/usr/bin/env bash
# ferry against nginx and HAProxy as reverse proxies, one worker each, on
# one pinned core. Anyone can rerun it: it installs its tools, builds ferry
# when the binary is missing, runs everything on loopback in a temp dir and
# stops only the processes it started.
#
# usage: bench/run.sh [BUILD_DIR]        (default: build)
# env:   QUICK=1       one round, short runs, fewer requests (a try-out)
#        ROUNDS=3 DURATION=5             throughput rounds and seconds per run
#        CG_REQUESTS=20000               requests per callgrind / strace measurement
#        IDLE_CONNS=10000                idle keep-alive connections held
#        STREAM_BYTES=1073741824         body streamed for the peak-RSS figure
#        SKIP=...                        space-separated sections to skip:
#                                        throughput cost memory https
#        TLS_KEY=rsa2048                 https certificate key: rsa2048 or p256
#        HS_CONNS=32                     connections in flight for handshakes/s
#        CG_HS_SECONDS=15                seconds of handshakes under callgrind
#        TLS_IDLE_CONNS=IDLE_CONNS       idle keep-alive TLS connections held
#        PROXY_CPU=0 LOAD_CPU=1          cores (proxy under test / wrk + upstream)
#        PROXIES="ferry nginx haproxy"   proxies to measure (nginx is the ratio base)
#        SIZES="100B 16KiB 1MiB" CONNS="64 1000"   throughput cells to run
#        RAW=FILE      also keep every throughput run's line (size conns target
#                      req/s p99_ms cpu_ticks requests wall errors) in FILE
#        WRK_KEEP=DIR  also keep each throughput run's wrk output (its latency
#                      distribution) as DIR/TARGET.SIZE.CONNS.ROUND
#
# Sections:
#  throughput  wrk -t1 against ferry, nginx, HAProxy and the upstream itself
#              ("direct"), targets interleaved, ROUNDS rounds; 100 B, 16 KiB
#              and 1 MiB responses at 64 and 1000 connections. req/s, p99,
#              ratios to nginx and direct, the proxy's CPU share (utime+stime
#              from /proc/PID/stat) and requests per proxy CPU-second.
#  cost        user-space instructions per proxied request (callgrind,
#              zeroed after a warm-up, dumped after a fixed h2load count) and
#              syscalls per proxied request (strace -c -f over the same count).
#  memory      KiB of proxy RSS per idle keep-alive client connection and
#              peak RSS (VmHWM) while a 1 GiB body streams through.
#  https       the proxies terminate TLS (one self-signed certificate made
#              at run time, the same for all; plain HTTP upstream, 100 B
#              responses): keep-alive req/s and requests per proxy
#              CPU-second (wrk -t1 -c64 over https), full and resumed
#              handshakes/s with a new connection per request
#              (bench-tlsload, which counts the handshakes the server
#              resumed), and KiB per idle keep-alive TLS connection
#              (idle_conns.py --tls). Targets interleaved over ROUNDS.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
"$ROOT/scripts/deps.sh" wrk nginx-light haproxy nghttp2-client valgrind strace curl python3 >&2

BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
FERRY=$BUILD/ferry
if [ ! -x "$FERRY" ]; then
  echo "run.sh: building ferry in $BUILD (Release)" >&2
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFERRY_TESTS=OFF >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" --target ferry >/dev/null
fi

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  ROUNDS=${ROUNDS:-1} DURATION=${DURATION:-2} CG_REQUESTS=${CG_REQUESTS:-4000}
  IDLE_CONNS=${IDLE_CONNS:-2000} STREAM_BYTES=${STREAM_BYTES:-268435456}
fi
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CG_REQUESTS=${CG_REQUESTS:-20000}
IDLE_CONNS=${IDLE_CONNS:-10000}
STREAM_BYTES=${STREAM_BYTES:-1073741824}
SKIP=${SKIP:-}
PROXIES=${PROXIES:-ferry nginx haproxy}
SIZES=${SIZES:-100B 16KiB 1MiB}
CONNS=${CONNS:-64 1000}
NCPU=$(nproc)
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-$((NCPU > 1 ? 1 : 0))}
HZ=$(getconf CLK_TCK)

# 10,000 idle connections and 1,000-connection runs need the descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)

TMP=$(mktemp -d /tmp/ferry-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

skipped() { [[ " $SKIP " == *" $1 "* ]]; }
log() { echo "# $*" >&2; }

# Stop one process we started and forget it.
stop_pid() {
  local p=$1 i
  kill "$p" 2>/dev/null || true
  for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  forget "$p"
}
forget() {
  local i keep=()
  for i in "${PIDS[@]}"; do [ "$i" = "$1" ] || keep+=("$i"); done
  PIDS=("${keep[@]}")
}

# Free loopback ports, picked by the kernel.
read -r P_UP P_FERRY P_NGX P_HAP P_FERRY_S P_NGX_S P_HAP_S < <(python3 - <<'PY'
import socket
ss = [socket.socket() for _ in range(7)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
for s in ss: s.close()
PY
)

# --- the upstream and its files ----------------------------------------
mkdir -p "$TMP/www" "$TMP/logs"
BODY100=$(printf 'x%.0s' $(seq 99))
head -c 16384 /dev/zero | tr '\0' 'a' >"$TMP/www/16k.bin"
head -c 1048576 /dev/zero | tr '\0' 'b' >"$TMP/www/1m.bin"
truncate -s "$STREAM_BYTES" "$TMP/www/stream.bin" # sparse: no disk used

ngx_common() { # $1 name
  cat <<NGX
daemon off; master_process off; worker_processes 1;
worker_rlimit_nofile $NOFILE;
pid $TMP/logs/$1.pid; error_log $TMP/logs/$1.err warn;
events { worker_connections $((NOFILE - 64)); multi_accept off; }
NGX
}
ngx_temp="client_body_temp_path $TMP/tmp-body; proxy_temp_path $TMP/tmp-proxy;
  fastcgi_temp_path $TMP/tmp-fcgi; uwsgi_temp_path $TMP/tmp-uwsgi; scgi_temp_path $TMP/tmp-scgi;"
{
  ngx_common up
  cat <<NGX
http { access_log off; keepalive_requests 100000000; keepalive_timeout 300s; $ngx_temp
  server { listen 127.0.0.1:$P_UP backlog=4096; root $TMP/www;
    location = / { return 200 "$BODY100\n"; } } }
NGX
} >"$TMP/up.conf"
{
  ngx_common proxy
  cat <<NGX
http { access_log off; keepalive_requests 100000000; keepalive_timeout 300s; $ngx_temp
  upstream up { server 127.0.0.1:$P_UP; keepalive 64; keepalive_requests 100000000; }
  server { listen 127.0.0.1:$P_NGX backlog=4096;
    location / { proxy_pass http://up; proxy_http_version 1.1;
                 proxy_set_header Connection ""; } } }
NGX
} >"$TMP/nginx.conf"
HAP_MAXCONN=$(((NOFILE - 100) / 2))
cat >"$TMP/haproxy.cfg" <<HAP
global
  nbthread 1
  maxconn $HAP_MAXCONN
  log stderr format short local0 emerg
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
  http-reuse always
frontend fe
  bind 127.0.0.1:$P_HAP
  default_backend up
backend up
  server s1 127.0.0.1:$P_UP
HAP
cat >"$TMP/ferry.yaml" <<YML
listeners: [{address: "127.0.0.1:$P_FERRY"}]
workers: 1
access_log: {path: "off"}
timeouts: {client_idle: 300s}
upstreams:
  up: {servers: [{address: "127.0.0.1:$P_UP"}], keepalive: {max_idle: 64, idle_timeout: 300s}}
routes:
  - {path_prefix: /, upstream: up}
YML

declare -A PORT=([ferry]=$P_FERRY [nginx]=$P_NGX [haproxy]=$P_HAP [direct]=$P_UP)
declare -A PID=()
# What start() runs; the https section points these at its own files.
SCHEME=http FERRY_YAML=$TMP/ferry.yaml NGX_CONF=$TMP/nginx.conf HAP_CFG=$TMP/haproxy.cfg

wait_port() { # $1 port, $2 seconds
  local i
  for i in $(seq $(($2 * 20))); do
    curl -sk -o /dev/null -m 2 "$SCHEME://127.0.0.1:$1/" && return 0
    sleep 0.05
  done
  echo "run.sh: nothing answered on 127.0.0.1:$1 after $2 s; see $TMP/logs" >&2
  return 1
}

# start NAME [WRAPPER...]: run one proxy pinned to PROXY_CPU.
start() {
  local name=$1
  shift
  local cmd
  case $name in
  ferry) cmd=("$FERRY" -c "$FERRY_YAML") ;;
  nginx) cmd=(nginx -c "$NGX_CONF" -p "$TMP") ;;
  haproxy) cmd=(haproxy -db -f "$HAP_CFG") ;;
  esac
  taskset -c "$PROXY_CPU" "$@" "${cmd[@]}" >"$TMP/logs/$name.out" 2>&1 &
  PID[$name]=$!
  PIDS+=($!)
  wait_port "${PORT[$name]}" 120
}

mkdir -p "$TMP"/tmp-{body,proxy,fcgi,uwsgi,scgi}
taskset -c "$LOAD_CPU" nginx -c "$TMP/up.conf" -p "$TMP" >"$TMP/logs/up.out" 2>&1 &
PID[direct]=$!
PIDS+=($!)
wait_port "$P_UP" 30

cpu_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
hwm() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

echo "ferry bench: $(date -u '+%Y-%m-%d %H:%M UTC'), nproc $NCPU, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
echo "ferry $("$FERRY" --version | awk '{print $2}') ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo ?)), $(nginx -v 2>&1 | sed 's/.*: //'), HAProxy $(haproxy -v | awk 'NR==1 {print $3}'), $(wrk -v 2>&1 | awk 'NR==1 {print $1, $2}')"
echo "proxy pinned to CPU $PROXY_CPU; wrk and the upstream nginx to CPU $LOAD_CPU"

# --- memory --------------------------------------------------------------
if ! skipped memory; then
  echo
  echo "## Memory (proxy resident set)"
  echo
  echo "| proxy | peak RSS before | peak RSS after a $((STREAM_BYTES >> 20)) MiB streamed body | KiB per idle keep-alive connection ($IDLE_CONNS held) |"
  echo "|---|---|---|---|"
  for name in $PROXIES; do
    start "$name"
    p=${PID[$name]}
    h0=$(hwm "$p")
    got=$(taskset -c "$LOAD_CPU" curl -sS -m 300 -o /dev/null -w '%{size_download}' \
      "http://127.0.0.1:${PORT[$name]}/stream.bin")
    h1=$(hwm "$p")
    [ "$got" = "$STREAM_BYTES" ] || log "$name: streamed $got of $STREAM_BYTES bytes"
    if [ "$name" = haproxy ] && [ "$IDLE_CONNS" -gt "$HAP_MAXCONN" ]; then
      idle="- (maxconn $HAP_MAXCONN)"
    else
      idle=$(taskset -c "$LOAD_CPU" python3 "$HERE/idle_conns.py" "${PORT[$name]}" "$p" "$IDLE_CONNS" /16k.bin |
        awk '{print $5}') || idle="failed"
    fi
    echo "| $name | $h0 KiB | $h1 KiB (+$((h1 - h0))) | $idle |"
    stop_pid "$p"
  done
fi

# --- throughput -----------------------------------------------------------
RES=$TMP/results.txt
: >"$RES"
# One wrk run; appends "size conns target rps p99_ms cpu_ticks requests wall errors".
wrk_run() { # target size conns path
  local target=$1 size=$2 conns=$3 path=$4 out c0 c1 p=""
  [ "$target" != direct ] && p=${PID[$target]}
  [ -n "$p" ] && c0=$(cpu_ticks "$p")
  local t0 t1
  t0=$(date +%s.%N)
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$conns" -d"${DURATION}s" --timeout 10s --latency \
    "$SCHEME://127.0.0.1:${PORT[$target]}$path" 2>&1) || true
  t1=$(date +%s.%N)
  [ -n "$p" ] && c1=$(cpu_ticks "$p")
  [ -n "${WRK_KEEP:-}" ] && echo "$out" >"$WRK_KEEP/$target.$size.$conns.${r:-0}"
  local rps req p99 err
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  req=$(awk '/requests in/ {print $1}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) sub(/ms/,"",v); else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
  err=$(awk '/Socket errors|Non-2xx/ {gsub(/,/,""); s=s" "$0} END {print (s=="" ? "-" : "err")}' <<<"$out")
  [ "$err" != "-" ] && log "$target $size c=$conns: $(grep -E 'Socket errors|Non-2xx' <<<"$out" | tr '\n' ' ')"
  echo "$size $conns $target ${rps:-0} ${p99:-0} $([ -n "$p" ] && echo $((c1 - c0)) || echo -) ${req:-0} $(echo "$t1 - $t0" | bc) $err" >>"$RES"
}

if ! skipped throughput; then
  for name in $PROXIES; do start "$name"; done
  # warm every path once (pools, page cache)
  for t in $PROXIES direct; do
    for path in / /16k.bin /1m.bin; do
      taskset -c "$LOAD_CPU" wrk -t1 -c64 -d1s "http://127.0.0.1:${PORT[$t]}$path" >/dev/null 2>&1 || true
    done
  done
  for r in $(seq "$ROUNDS"); do
    for spec in "100B /" "16KiB /16k.bin" "1MiB /1m.bin"; do
      read -r size path <<<"$spec"
      [[ " $SIZES " == *" $size "* ]] || continue
      for conns in $CONNS; do
        # rotate the order each round so no target always runs first
        order=($PROXIES direct)
        k=$(((r - 1) % ${#order[@]}))
        order=("${order[@]:$k}" "${order[@]:0:$k}")
        for t in "${order[@]}"; do wrk_run "$t" "$size" "$conns" "$path"; done
        log "round $r $size c=$conns done"
      done
    done
  done
  for name in $PROXIES; do stop_pid "${PID[$name]}"; done
  [ -n "${RAW:-}" ] && cp "$RES" "$RAW"
  echo
  echo "## Throughput (wrk -t1, ${DURATION}s per run, mean of $ROUNDS interleaved rounds)"
  echo
  python3 - "$RES" "$HZ" <<'PY'
import sys, collections
res, hz = sys.argv[1], int(sys.argv[2])
acc = collections.defaultdict(list)
for line in open(res):
    size, conns, t, rps, p99, ticks, req, wall, err = line.split()
    acc[(size, int(conns), t)].append((float(rps), float(p99), ticks, int(req), float(wall)))
def mean(v): return sum(v) / len(v) if v else 0.0
print("| response | conns | target | req/s | ×nginx | ×direct | p99 ms | p99 ×nginx | proxy CPU | req per proxy CPU-s | ×nginx |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for size in ("100B", "16KiB", "1MiB"):
    for conns in (64, 1000):
        row = {}
        for t in ("ferry", "nginx", "haproxy", "direct"):
            runs = acc.get((size, conns, t), [])
            if not runs:
                continue
            rps = mean([r[0] for r in runs]); p99 = mean([r[1] for r in runs])
            if t != "direct":
                cpu_s = sum(int(r[2]) for r in runs) / hz
                wall = sum(r[4] for r in runs)
                share = cpu_s / wall if wall else 0
                per_cpu = sum(r[3] for r in runs) / cpu_s if cpu_s else 0
            else:
                share = per_cpu = None
            row[t] = (rps, p99, share, per_cpu)
        n = row.get("nginx"); d = row.get("direct")
        for t, (rps, p99, share, per_cpu) in row.items():
            rn = f"{rps / n[0]:.2f}" if n and n[0] else "-"
            rd = f"{rps / d[0]:.2f}" if d and d[0] else "-"
            pn = f"{p99 / n[1]:.2f}" if n and n[1] else "-"
            sh = f"{share * 100:.0f}%" if share is not None else "-"
            pc = f"{per_cpu:,.0f}" if per_cpu is not None else "-"
            pcn = f"{per_cpu / n[3]:.2f}" if per_cpu and n and n[3] else "-"
            print(f"| {size} | {conns} | {t} | {rps:,.0f} | {rn} | {rd} | {p99:.2f} | {pn} | {sh} | {pc} | {pcn} |")
PY
fi

# --- cost: instructions and syscalls per request ----------------------------
h2() { # port count conns -> h2load, bounded in time
  timeout 300 taskset -c "$LOAD_CPU" h2load --h1 -n "$2" -c "$3" -m 1 "$SCHEME://127.0.0.1:$1/" >"$TMP/h2load.out" 2>&1 ||
    { log "h2load failed: $(tail -3 "$TMP/h2load.out")"; return 1; }
  grep -q "succeeded, 0 failed, 0 errored" "$TMP/h2load.out" ||
    log "h2load: $(grep 'requests:' "$TMP/h2load.out")"
}
if ! skipped cost; then
  echo
  echo "## Cost per proxied request (100 B response, $CG_REQUESTS requests over 16 connections after a warm-up)"
  echo
  echo "| proxy | user-space instructions per request (callgrind) | syscalls per request (strace -c -f) | top syscalls per request |"
  echo "|---|---|---|---|"
  for name in $PROXIES; do
    # callgrind: zero the counters after the warm-up, dump after the fixed count
    if ! start "$name" valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.$name.out" \
      --dump-instr=no --vgdb=yes; then
      log "$name did not start under callgrind: $(tail -3 "$TMP/logs/$name.out" | tr '\n' ' ')"
      stop_pid "${PID[$name]}"
      echo "| $name | (did not start under callgrind) | | |"
      continue
    fi
    p=${PID[$name]}
    h2 "${PORT[$name]}" 2000 16 || true
    callgrind_control -z "$p" >/dev/null 2>&1 || log "callgrind_control -z failed"
    ins="-"
    if h2 "${PORT[$name]}" "$CG_REQUESTS" 16; then
      rm -f "$TMP"/cg.$name.out.*
      callgrind_control -d "$p" >/dev/null 2>&1 || log "callgrind_control -d failed"
      f=$(ls "$TMP"/cg.$name.out.* 2>/dev/null | tail -1 || true)
      ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$f" 2>/dev/null || true)
      [ -n "$ir" ] && ins=$(echo "$ir / $CG_REQUESTS" | bc)
      [ -n "$f" ] && cp "$f" "${CG_KEEP:-$TMP}/callgrind.$name.out" 2>/dev/null || true
    fi
    stop_pid "$p"
    # strace: attach to every thread after the warm-up, same count
    start "$name"
    p=${PID[$name]}
    h2 "${PORT[$name]}" 2000 16 || true
    strace -c -f -p "$p" -o "$TMP/strace.$name" 2>/dev/null &
    sp=$!
    PIDS+=($sp)
    for _ in $(seq 200); do
      n_t=$(ls "/proc/$p/task" 2>/dev/null | wc -l || true)
      n_a=$(grep -l '^TracerPid:[[:space:]]*[1-9]' /proc/"$p"/task/*/status 2>/dev/null | wc -l || true)
      [ "$n_a" -ge "$n_t" ] && break
      sleep 0.05
    done
    sys="-" top="-"
    if h2 "${PORT[$name]}" "$CG_REQUESTS" 16; then
      kill -INT "$sp" 2>/dev/null || true
      wait "$sp" 2>/dev/null || true
      calls=$(awk '$NF == "total" {print $4}' "$TMP/strace.$name")
      [ -n "$calls" ] && sys=$(echo "scale=2; $calls / $CG_REQUESTS" | bc)
      top=$(awk -v n="$CG_REQUESTS" '$1 ~ /^[0-9.]+$/ && $NF != "total" {printf "%s %.2f\n", $NF, $4 / n}' "$TMP/strace.$name" |
        sort -k2 -nr | head -4 | awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2}')
    else
      kill -INT "$sp" 2>/dev/null || true
      wait "$sp" 2>/dev/null || true
    fi
    forget "$sp"
    stop_pid "$p"
    echo "| $name | $ins | $sys | $top |"
  done
fi

# --- https: the proxies terminate TLS ------------------------------------------
TLS_KEY=${TLS_KEY:-rsa2048}
HS_CONNS=${HS_CONNS:-32}
CG_HS_SECONDS=${CG_HS_SECONDS:-$((QUICK == 1 ? 4 : 15))}
TLS_IDLE_CONNS=${TLS_IDLE_CONNS:-$IDLE_CONNS}
TLSLOAD=$BUILD/bench-tlsload
if ! skipped https; then
  if [ ! -x "$TLSLOAD" ]; then
    cmake -S "$ROOT" -B "$BUILD" >/dev/null
    cmake --build "$BUILD" --target bench-tlsload >/dev/null
  fi
  case $TLS_KEY in
  rsa2048) kopt=(-newkey rsa:2048) ;;
  p256) kopt=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
  *) echo "run.sh: TLS_KEY must be rsa2048 or p256, not $TLS_KEY" >&2; exit 2 ;;
  esac
  # One self-signed certificate for every proxy, made now, never kept.
  openssl req -x509 "${kopt[@]}" -nodes -keyout "$TMP/tls.key" -out "$TMP/tls.pem" -days 2 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
  cat "$TMP/tls.pem" "$TMP/tls.key" >"$TMP/tls-both.pem" # HAProxy's crt: chain and key
  {
    ngx_common proxy
    cat <<NGX
http { access_log off; keepalive_requests 100000000; keepalive_timeout 300s; $ngx_temp
  upstream up { server 127.0.0.1:$P_UP; keepalive 64; keepalive_requests 100000000; }
  server { listen 127.0.0.1:$P_NGX_S ssl backlog=4096;
    ssl_certificate $TMP/tls.pem; ssl_certificate_key $TMP/tls.key; ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://up; proxy_http_version 1.1;
                 proxy_set_header Connection ""; } } }
NGX
  } >"$TMP/nginx-tls.conf"
  sed -e "s|bind 127.0.0.1:$P_HAP|bind 127.0.0.1:$P_HAP_S ssl crt $TMP/tls-both.pem alpn http/1.1|" \
    "$TMP/haproxy.cfg" >"$TMP/haproxy-tls.cfg"
  sed -e "s|^listeners: .*|listeners: [{address: \"127.0.0.1:$P_FERRY_S\", tls: {certificates: [{cert: \"$TMP/tls.pem\", key: \"$TMP/tls.key\"}]}}]|" \
    "$TMP/ferry.yaml" >"$TMP/ferry-tls.yaml"
  PORT[ferry]=$P_FERRY_S PORT[nginx]=$P_NGX_S PORT[haproxy]=$P_HAP_S
  SCHEME=https FERRY_YAML=$TMP/ferry-tls.yaml NGX_CONF=$TMP/nginx-tls.conf HAP_CFG=$TMP/haproxy-tls.cfg

  # Idle keep-alive TLS connections, one proxy at a time.
  IDLE_RES=$TMP/https-idle.txt
  : >"$IDLE_RES"
  for name in $PROXIES; do
    start "$name"
    p=${PID[$name]}
    if [ "$name" = haproxy ] && [ "$TLS_IDLE_CONNS" -gt "$HAP_MAXCONN" ]; then
      idle="-"
    else
      idle=$(taskset -c "$LOAD_CPU" python3 "$HERE/idle_conns.py" --tls "${PORT[$name]}" "$p" \
        "$TLS_IDLE_CONNS" /16k.bin | awk '{print $5}') || idle="-"
    fi
    echo "$name ${idle:--}" >>"$IDLE_RES"
    stop_pid "$p"
  done

  # One handshake run: appends "mode target done full resumed errors ticks wall version cipher group".
  HS_RES=$TMP/https-hs.txt
  : >"$HS_RES"
  hs_run() { # target mode
    local t=$1 mode=$2 p=${PID[$1]} c0 c1 t0 t1 out
    c0=$(cpu_ticks "$p")
    t0=$(date +%s.%N)
    out=$(timeout $((DURATION + 60)) taskset -c "$LOAD_CPU" "$TLSLOAD" 127.0.0.1 "${PORT[$t]}" \
      "$mode" "$HS_CONNS" "$DURATION" / 2>&1) || log "$t $mode: $out"
    t1=$(date +%s.%N)
    c1=$(cpu_ticks "$p")
    read -r done_ full res err ver ciph grp < <(awk '$1 == "tlsload" {print $4, $6, $8, $10, $16, $18, $20}' <<<"$out") ||
      { done_=0 full=0 res=0 err=0 ver=- ciph=- grp=-; }
    echo "$mode $t ${done_:-0} ${full:-0} ${res:-0} ${err:-0} $((c1 - c0)) $(echo "$t1 - $t0" | bc) ${ver:--} ${ciph:--} ${grp:--}" >>"$HS_RES"
  }
  RES=$TMP/https-ka.txt
  : >"$RES"
  for name in $PROXIES; do start "$name"; done
  for t in $PROXIES; do # warm up: pools, session caches
    taskset -c "$LOAD_CPU" wrk -t1 -c64 -d1s "https://127.0.0.1:${PORT[$t]}/" >/dev/null 2>&1 || true
    timeout 30 taskset -c "$LOAD_CPU" "$TLSLOAD" 127.0.0.1 "${PORT[$t]}" full "$HS_CONNS" 1 >/dev/null 2>&1 || true
  done
  for r in $(seq "$ROUNDS"); do
    order=($PROXIES)
    k=$(((r - 1) % ${#order[@]}))
    order=("${order[@]:$k}" "${order[@]:0:$k}")
    for t in "${order[@]}"; do wrk_run "$t" 100B 64 /; done
    for t in "${order[@]}"; do hs_run "$t" full; done
    for t in "${order[@]}"; do hs_run "$t" resume; done
    log "https round $r done"
  done
  for name in $PROXIES; do stop_pid "${PID[$name]}"; done

  # User-space instructions per keep-alive request (callgrind, as in the
  # cost section; the 16 connections' handshakes, SSL_do_handshake and
  # all it calls, taken out): a figure the machine's load does not move.
  CG_RES=$TMP/https-cg.txt
  : >"$CG_RES"
  for name in $PROXIES; do
    if ! start "$name" valgrind --tool=callgrind --callgrind-out-file="$TMP/cgs.$name.out" \
      --dump-instr=no --vgdb=yes; then
      stop_pid "${PID[$name]}"
      echo "$name - - -" >>"$CG_RES"
      continue
    fi
    p=${PID[$name]}
    h2 "${PORT[$name]}" 2000 16 || true
    callgrind_control -z "$p" >/dev/null 2>&1 || log "callgrind_control -z failed"
    ins="-"
    if h2 "${PORT[$name]}" "$CG_REQUESTS" 16; then
      rm -f "$TMP"/cgs.$name.out.*
      callgrind_control -d "$p" >/dev/null 2>&1 || log "callgrind_control -d failed"
      f=$(ls "$TMP"/cgs.$name.out.* 2>/dev/null | tail -1 || true)
      if [ -n "$f" ]; then
        callgrind_annotate --inclusive=yes "$f" >"$TMP/cgs.$name.txt" 2>/dev/null || true
        tot=$(awk '/PROGRAM TOTALS/ {gsub(/,/, "", $1); print $1; exit}' "$TMP/cgs.$name.txt")
        hs=$(awk '/:SSL_do_handshake / {gsub(/,/, "", $1); print $1; exit}' "$TMP/cgs.$name.txt")
        [ -n "$tot" ] && ins=$(((tot - ${hs:-0}) / CG_REQUESTS))
      fi
    fi
    # instructions per full and per resumed handshake (and its one
    # request): one connection at a time for CG_HS_SECONDS; the resumed
    # run's one untimed full handshake is taken out at the full figure
    hs_ins=()
    for mode in full resume; do
      callgrind_control -z "$p" >/dev/null 2>&1 || log "callgrind_control -z failed"
      out=$(timeout $((CG_HS_SECONDS + 120)) taskset -c "$LOAD_CPU" "$TLSLOAD" 127.0.0.1 \
        "${PORT[$name]}" "$mode" 1 "$CG_HS_SECONDS" / 2>&1) || log "$name $mode under callgrind: $out"
      n_conn=$(awk '$1 == "tlsload" {print $4}' <<<"$out")
      rm -f "$TMP"/cgs.$name.out.*
      callgrind_control -d "$p" >/dev/null 2>&1 || log "callgrind_control -d failed"
      f=$(ls "$TMP"/cgs.$name.out.* 2>/dev/null | tail -1 || true)
      tot=$([ -n "$f" ] && awk '/^(summary|totals):/ {print $2; exit}' "$f" || true)
      if [ -n "$tot" ] && [ "${n_conn:-0}" -gt 0 ]; then
        if [ "$mode" = full ]; then
          hs_ins+=($((tot / n_conn)))
        else
          hs_ins+=($(((tot - ${hs_ins[0]:-0}) / n_conn)))
        fi
      else
        hs_ins+=("-")
      fi
    done
    stop_pid "$p"
    echo "$name $ins ${hs_ins[*]}" >>"$CG_RES"
  done
  [ -n "${RAW:-}" ] && cat "$RES" "$HS_RES" "$IDLE_RES" "$CG_RES" >>"$RAW"
  echo
  echo "## HTTPS ($TLS_KEY certificate, the same for every proxy; plain HTTP upstream, 100 B responses; mean of $ROUNDS interleaved rounds, ${DURATION}s each)"
  echo
  python3 - "$RES" "$HS_RES" "$IDLE_RES" "$HZ" "$TLS_IDLE_CONNS" "$HS_CONNS" "$CG_RES" "$CG_REQUESTS" <<'PY'
import sys, collections
ka_f, hs_f, idle_f, hz, nidle, hsc = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6]
cgl = {l.split()[0]: l.split()[1:] for l in open(sys.argv[7])}
cg = {k: v[0] for k, v in cgl.items()}
names = []
ka = collections.defaultdict(list)
for line in open(ka_f):
    size, conns, t, rps, p99, ticks, req, wall, err = line.split()
    ka[t].append((float(rps), int(ticks), int(req), float(wall)))
    if t not in names: names.append(t)
hs = collections.defaultdict(list)
info = {}
for line in open(hs_f):
    mode, t, done, full, res, err, ticks, wall, ver, ciph, grp = line.split()
    hs[(mode, t)].append((int(done), int(full), int(res), int(err), int(ticks), float(wall)))
    info.setdefault(t, (ver, ciph, grp))
idle = dict(line.split() for line in open(idle_f))
def ka_fig(t):
    runs = ka.get(t, [])
    if not runs: return None
    rps = sum(r[0] for r in runs) / len(runs)
    cpu = sum(r[1] for r in runs) / hz
    wall = sum(r[3] for r in runs)
    return rps, sum(r[2] for r in runs) / cpu if cpu else 0, cpu / wall if wall else 0
def hs_fig(mode, t):
    runs = hs.get((mode, t), [])
    if not runs: return None
    done = sum(r[0] for r in runs); wall = sum(r[5] for r in runs); cpu = sum(r[4] for r in runs) / hz
    tot = sum(r[1] + r[2] for r in runs)
    return done / wall if wall else 0, done / cpu if cpu else 0, cpu / wall if wall else 0, \
        sum(r[2] for r in runs), tot, sum(r[3] for r in runs)
def ratio(a, b): return f"{a / b:.2f}" if a and b else "-"
print(f"Keep-alive (wrk -t1 -c64 over https; instructions: callgrind over {sys.argv[8]} requests on 16 connections, handshakes taken out):")
print()
print("| proxy | keep-alive req/s | ×nginx | proxy CPU | req per proxy CPU-s | ×nginx | user-space instructions per request | ×nginx |")
print("|---|---|---|---|---|---|---|---|")
n = ka_fig("nginx")
ci = cg.get("nginx", "-")
for t in names:
    f = ka_fig(t)
    c = cg.get(t, "-")
    cr = f"{int(c) / int(ci):.2f}" if c != "-" and ci != "-" else "-"
    cs = f"{int(c):,}" if c != "-" else "-"
    print(f"| {t} | {f[0]:,.0f} | {ratio(f[0], n and n[0])} | {f[2] * 100:.0f}% | {f[1]:,.0f} | {ratio(f[1], n and n[1])} | {cs} | {cr} |")
print()
print(f"Handshakes, a new connection per request ({hsc} in flight, `Connection: close`):")
print()
print("| proxy | handshake | per s | ×nginx | proxy CPU | per proxy CPU-s | ×nginx | resumed / all | errors | version, cipher, group |")
print("|---|---|---|---|---|---|---|---|---|---|")
for mode in ("full", "resume"):
    n = hs_fig(mode, "nginx")
    for t in names:
        f = hs_fig(mode, t)
        if not f: continue
        v = " ".join(info.get(t, ("-", "-", "-")))
        print(f"| {t} | {'full' if mode == 'full' else 'resumed'} | {f[0]:,.0f} | {ratio(f[0], n and n[0])} | {f[2] * 100:.0f}% | {f[1]:,.0f} | {ratio(f[1], n and n[1])} | {f[3]:,} / {f[4]:,} | {f[5]} | {v} |")
print()
print("User-space instructions per connection (callgrind; one connection at a time: handshake, one request, close):")
print()
print("| proxy | full handshake | ×nginx | resumed handshake | ×nginx |")
print("|---|---|---|---|---|")
ng = cgl.get("nginx", ["-", "-", "-"])
for t in names:
    v = cgl.get(t, ["-", "-", "-"])
    cells = []
    for i in (1, 2):
        a = v[i] if len(v) > i else "-"
        b = ng[i] if len(ng) > i else "-"
        cells.append(f"{int(a):,}" if a != "-" else "-")
        cells.append(f"{int(a) / int(b):.2f}" if a != "-" and b != "-" else "-")
    print(f"| {t} | " + " | ".join(cells) + " |")
print()
print(f"| proxy | KiB per idle keep-alive TLS connection ({nidle} held) | ×nginx |")
print("|---|---|---|")
ni = idle.get("nginx", "-")
for t in names:
    v = idle.get(t, "-")
    r = f"{float(v) / float(ni):.2f}" if v != "-" and ni != "-" and float(ni) else "-"
    print(f"| {t} | {v} | {r} |")
PY
fi
