#!/usr/bin/env bash
# Starts the demo upstreams that ./proxy.yaml routes to, then ferry in the
# foreground. Ctrl-C (or SIGTERM) stops ferry and every upstream started here.
#   scripts/run-demo.sh BUILD_DIR [ferry args...]
#
# ferry and the upstreams run in process groups of their own (set -m), so
# the terminal's Ctrl-C reaches only this script, which passes each one on
# to ferry exactly once: the first makes ferry drain, a second (if it takes
# too long) makes it exit at once. The upstreams are stopped only after
# ferry has exited, so requests in flight while it drains still get their
# answers.
set -euo pipefail
build=${1:?usage: run-demo.sh BUILD_DIR [ferry args...]}
shift
cd "$(dirname "$0")/.."

pids=()
ferry_pid=
stopping=
stop() { # SIGNAL for ferry
  if [ -z "$ferry_pid" ]; then
    exit 130
  fi
  stopping=1
  kill "-$1" "$ferry_pid" 2>/dev/null || true
}
finish() { # an upstream ended the demo: stop ferry (its only signal), then the rest
  trap - EXIT
  if [ -n "$ferry_pid" ] && kill -0 "$ferry_pid" 2>/dev/null; then
    kill -TERM "$ferry_pid" 2>/dev/null || true
    wait "$ferry_pid" 2>/dev/null || true
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'stop INT' INT
trap 'stop TERM' TERM
trap finish EXIT

set -m # each job below gets its own process group
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
# Whichever exits first (ferry on a fatal error, or an upstream) ends the
# demo. A signal interrupts `wait`; after a stop, wait for ferry itself.
set +e
wait -n "${pids[@]}" "$ferry_pid"
rc=$?
while [ -n "$stopping" ] && kill -0 "$ferry_pid" 2>/dev/null; do
  wait "$ferry_pid"
  rc=$?
done
exit $rc
