#!/usr/bin/env bash
# What the inspector costs: ferry throughput with no admin listener
# ("none"), with the admin listener but the route not inspected ("off"), and
# with the route captured on every request ("on": record built, handed to
# the admin thread, kept in the ring of 500). One worker, ferry-echo as the
# upstream, wrk on loopback; rounds rotate the modes to spread drift.
#
# usage: bench/inspect.sh [BUILD_DIR]   env: DURATION=5 CONNS=32 ROUNDS=3
# Needs: wrk (installed through scripts/deps.sh).
set -euo pipefail
"$(dirname "$0")/../scripts/deps.sh" wrk
BUILD=${1:-build}
DURATION=${DURATION:-5}
CONNS=${CONNS:-32}
ROUNDS=${ROUNDS:-3}
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
P_HTTP=18591 P_ADMIN=18592 P_UP=18593

for mode in none off on; do
  {
    echo "listeners: [{address: 127.0.0.1:$P_HTTP}]"
    echo "workers: 1"
    [ "$mode" = none ] || echo "admin: {address: 127.0.0.1:$P_ADMIN}"
    echo "access_log: {path: off}"
    echo "upstreams: {api: {servers: [{address: 127.0.0.1:$P_UP}]}}"
    echo "routes:"
    echo "  - path_prefix: /"
    echo "    upstream: api"
    echo "    inspect: $([ "$mode" = on ] && echo true || echo false)"
  } >"$TMP/$mode.yaml"
done

"$BUILD/ferry-echo" -n api "127.0.0.1:$P_UP" >/dev/null 2>&1 &
PIDS+=($!)

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "port $1 did not open" >&2
  exit 1
}
wait_port $P_UP

declare -A results cpu
for round in $(seq "$ROUNDS"); do
  for mode in none off on; do
    "$BUILD/ferry" -c "$TMP/$mode.yaml" 2>"$TMP/ferry.err" &
    fp=$!
    wait_port $P_HTTP
    wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$P_HTTP/api/x" >"$TMP/wrk.out"
    # ferry's CPU time (all threads, admin included) per request: less
    # sensitive than req/s to other load on the machine.
    ticks=$(awk '{print $14 + $15}' "/proc/$fp/stat")
    kill "$fp"
    wait "$fp" || true
    rps=$(awk '/Requests\/sec/ {print $2}' "$TMP/wrk.out")
    reqs=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
    us=$(awk -v t="$ticks" -v n="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
    results[$mode]+="$rps "
    cpu[$mode]+="$us "
    echo "round $round  $mode  $rps req/s  $us us CPU/request"
  done
done
echo
for mode in none off on; do
  echo "$mode: req/s ${results[$mode]}; ferry CPU us/request ${cpu[$mode]}(wrk -t1 -c$CONNS -d${DURATION}s)"
done
