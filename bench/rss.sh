#!/usr/bin/env bash
# Peak RSS of ferry while a 1 GiB body streams through it, each way.
#
# Upload: curl sends 1 GiB (Content-Length, then chunked) through ferry to
# ferry-echo, which counts and discards it. Download: nginx serves a sparse
# 1 GiB file through ferry to curl, which discards it. ferry's VmHWM (peak
# resident set) is read from /proc before and after.
#
# usage: bench/rss.sh [BUILD_DIR]   (default: build)
# Needs: curl, nginx, bc: installed here through scripts/deps.sh.
set -euo pipefail
"$(dirname "$0")/../scripts/deps.sh" curl nginx-light bc
BUILD=${1:-build}
FERRY=$BUILD/ferry
ECHO=$BUILD/ferry-echo
SIZE=${SIZE:-1073741824}
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

PORT_F=18480 PORT_E=18481 PORT_N=18482
truncate -s "$SIZE" "$TMP/big.bin"
cat > "$TMP/nginx.conf" <<NGX
daemon off;
master_process off;
worker_processes 1;
error_log $TMP/nginx-error.log;
pid $TMP/nginx.pid;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $TMP; proxy_temp_path $TMP; fastcgi_temp_path $TMP;
  uwsgi_temp_path $TMP; scgi_temp_path $TMP;
  server { listen 127.0.0.1:$PORT_N; root $TMP; }
}
NGX
cat > "$TMP/proxy.yaml" <<YML
listeners: [{address: "127.0.0.1:$PORT_F"}]
workers: 1
access_log: {path: "off"}
upstreams:
  echo: {servers: [{address: "127.0.0.1:$PORT_E"}]}
  files: {servers: [{address: "127.0.0.1:$PORT_N"}]}
routes:
  - {path_prefix: /up, upstream: echo}
  - {path_prefix: /, upstream: files}
YML
"$ECHO" -n sink "127.0.0.1:$PORT_E" 2>/dev/null & PIDS+=($!)
nginx -c "$TMP/nginx.conf" -p "$TMP" & PIDS+=($!)
"$FERRY" -c "$TMP/proxy.yaml" 2>"$TMP/ferry.log" & FPID=$!; PIDS+=($FPID)
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT_F/none" 2>/dev/null && break
  sleep 0.05
done
hwm() { awk '/VmHWM/ {print $2}' "/proc/$FPID/status"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$FPID/status"; }
base=$(hwm)
echo "ferry peak RSS at start: ${base} KiB"
t0=$(date +%s.%N)
curl -sS -o /dev/null -T "$TMP/big.bin" -H "Expect:" "http://127.0.0.1:$PORT_F/up/length"
t1=$(date +%s.%N)
up1=$(hwm)
echo "after 1 GiB upload (Content-Length): peak ${up1} KiB (+$((up1 - base)) KiB), $(echo "$SIZE / ($t1 - $t0) / 1048576" | bc) MiB/s"
head -c "$SIZE" /dev/zero | curl -sS -o /dev/null -T - -H "Expect:" "http://127.0.0.1:$PORT_F/up/chunked"
up2=$(hwm)
echo "after 1 GiB upload (chunked): peak ${up2} KiB (+$((up2 - base)) KiB)"
t0=$(date +%s.%N)
got=$(curl -sS -o /dev/null -w '%{size_download}' "http://127.0.0.1:$PORT_F/big.bin")
t1=$(date +%s.%N)
down=$(hwm)
echo "after 1 GiB download: ${got} bytes, peak ${down} KiB (+$((down - base)) KiB), $(echo "$SIZE / ($t1 - $t0) / 1048576" | bc) MiB/s"
echo "current RSS: $(rss) KiB"
[ "$got" = "$SIZE" ] || { echo "download size mismatch" >&2; exit 1; }
