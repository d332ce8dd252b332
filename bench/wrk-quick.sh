#!/usr/bin/env bash
# Quick throughput comparison: ferry vs nginx as reverse proxies, both with
# one worker and upstream keep-alive, in front of the same nginx upstream
# (1 worker, `return 200` with a 100-byte body). wrk drives each for
# DURATION seconds with CONNS connections; rounds alternate the targets.
#
# usage: bench/wrk-quick.sh [BUILD_DIR]   env: DURATION=5 CONNS=64 ROUNDS=3
# Needs: wrk, nginx: installed here through scripts/deps.sh.
set -euo pipefail
"$(dirname "$0")/../scripts/deps.sh" wrk nginx-light bc
BUILD=${1:-build}
FERRY=$BUILD/ferry
DURATION=${DURATION:-5}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-3}
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
P_UP=18580 P_NGX=18581 P_FERRY=18582
BODY=$(printf 'x%.0s' $(seq 100))
common="daemon off; master_process off; worker_processes 1;
pid PIDFILE; error_log ERRLOG;
events { worker_connections 4096; }"
cat > "$TMP/up.conf" <<NGX
${common//PIDFILE/$TMP/up.pid}
http { access_log off; keepalive_requests 1000000;
  client_body_temp_path $TMP; proxy_temp_path $TMP;
  server { listen 127.0.0.1:$P_UP; location / { return 200 "$BODY"; } } }
NGX
sed -i "s|ERRLOG|$TMP/up.err|" "$TMP/up.conf"
cat > "$TMP/proxy.conf" <<NGX
${common//PIDFILE/$TMP/proxy.pid}
http { access_log off; keepalive_requests 1000000;
  client_body_temp_path $TMP; proxy_temp_path $TMP;
  upstream up { server 127.0.0.1:$P_UP; keepalive 64; }
  server { listen 127.0.0.1:$P_NGX;
    location / { proxy_pass http://up; proxy_http_version 1.1;
                 proxy_set_header Connection ""; } } }
NGX
sed -i "s|ERRLOG|$TMP/proxy.err|" "$TMP/proxy.conf"
cat > "$TMP/proxy.yaml" <<YML
listeners: [{address: "127.0.0.1:$P_FERRY"}]
workers: 1
access_log: {path: "off"}
upstreams:
  up: {servers: [{address: "127.0.0.1:$P_UP"}], keepalive: {max_idle: 64}}
routes:
  - {path_prefix: /, upstream: up}
YML
nginx -c "$TMP/up.conf" -p "$TMP" & PIDS+=($!)
nginx -c "$TMP/proxy.conf" -p "$TMP" & PIDS+=($!)
"$FERRY" -c "$TMP/proxy.yaml" 2>"$TMP/ferry.log" & PIDS+=($!)
for p in $P_UP $P_NGX $P_FERRY; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$p/" && break; sleep 0.05; done
done
run() { wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$1/" | awk '/Requests\/sec/ {print $2}'; }
declare -A sum=([ferry]=0 [nginx]=0)
for r in $(seq "$ROUNDS"); do
  f=$(run $P_FERRY); n=$(run $P_NGX)
  echo "round $r: ferry $f req/s, nginx $n req/s"
  sum[ferry]=$(echo "${sum[ferry]} + $f" | bc); sum[nginx]=$(echo "${sum[nginx]} + $n" | bc)
done
f=$(echo "${sum[ferry]} / $ROUNDS" | bc); n=$(echo "${sum[nginx]} / $ROUNDS" | bc)
echo "mean: ferry $f req/s, nginx $n req/s, ratio ferry/nginx $(echo "scale=2; $f / $n" | bc)"
