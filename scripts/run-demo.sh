#!/usr/bin/env bash
# Starts the demo upstreams that ./proxy.yaml routes to, then ferry in the
# foreground. Ctrl-C (or SIGTERM) stops ferry and every upstream started here.
#   scripts/run-demo.sh BUILD_DIR [ferry args...]
set -euo pipefail
build=${1:?usage: run-demo.sh BUILD_DIR [ferry args...]}
shift
cd "$(dirname "$0")/.."

pids=()
ferry_pid=
cleanup() { # SIGNAL to send ferry: none after Ctrl-C, which it got itself
  trap - INT TERM EXIT
  if [ -n "$ferry_pid" ]; then
    [ "$1" = none ] || kill "-$1" "$ferry_pid" 2>/dev/null || true
    wait "$ferry_pid" 2>/dev/null || true # ferry drains its requests in flight
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
# Ctrl-C reaches the whole foreground process group, ferry included.
trap 'cleanup none' INT
trap 'cleanup TERM' TERM EXIT

start_echo() { # NAME ADDR
  "$build/ferry-echo" -n "$1" "$2" &
  pids+=($!)
}
start_echo api-1 127.0.0.1:19001
start_echo api-2 127.0.0.1:19002
start_echo web 127.0.0.1:19003

"$build/ferry" -c proxy.yaml "$@" &
ferry_pid=$!
echo "ferry: listening on http://127.0.0.1:8080 (try: curl -i http://127.0.0.1:8080/api/users); Ctrl-C stops" >&2
# Whichever exits first (ferry on a fatal error, or an upstream) ends the demo.
set +e
wait -n "${pids[@]}" "$ferry_pid"
rc=$?
exit $rc
