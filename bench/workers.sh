#!/usr/bin/env bash
# Worker scaling: ferry with `workers: 1` and `workers: 2` against nginx
# with 1 and 2 worker processes, both as reverse proxies with upstream
# keep-alive in front of the same nginx upstream (1 worker, `return 200`
# with a 100-byte body). wrk drives each target for DURATION seconds with
# CONNS connections and THREADS threads; ROUNDS rounds alternate the
# targets; the median req/s of each is reported with ratios to nginx at the
# same worker count. Everything runs on loopback in a temp dir; only the
# processes started here are stopped (by PID).
#
# usage: bench/workers.sh [BUILD_DIR]    env: DURATION=5 CONNS=64 THREADS=1 ROUNDS=3
# Needs: wrk, nginx (scripts/deps.sh installs them).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
"$HERE/../scripts/deps.sh" wrk nginx-light >&2
BUILD=${1:-build}
FERRY=$BUILD/ferry
DURATION=${DURATION:-5}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-3}
TMP=$(mktemp -d /tmp/ferry-workers.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "workers.sh: nothing listens on $1" >&2
  return 1
}

P_UP=$(port)
BODY=$(printf 'x%.0s' $(seq 100))
cat > "$TMP/up.conf" <<NGX
daemon off; master_process off; worker_processes 1;
pid $TMP/up.pid; error_log $TMP/up.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  client_body_temp_path $TMP; proxy_temp_path $TMP;
  server { listen 127.0.0.1:$P_UP; location / { return 200 "$BODY"; } } }
NGX
nginx -c "$TMP/up.conf" -p "$TMP" -e "$TMP/up.err" &
PIDS+=($!)
wait_port "$P_UP"

declare -A PORT
start_nginx() { # workers
  local n=$1 p
  p=$(port)
  cat > "$TMP/ngx$n.conf" <<NGX
daemon off; master_process on; worker_processes $n;
pid $TMP/ngx$n.pid; error_log $TMP/ngx$n.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  client_body_temp_path $TMP; proxy_temp_path $TMP;
  upstream up { server 127.0.0.1:$P_UP; keepalive 64; }
  server { listen 127.0.0.1:$p reuseport;
    location / { proxy_pass http://up; proxy_http_version 1.1;
                 proxy_set_header Connection ""; } } }
NGX
  nginx -c "$TMP/ngx$n.conf" -p "$TMP" -e "$TMP/ngx$n.err" &
  PIDS+=($!)
  PORT[nginx$n]=$p
  wait_port "$p"
}
start_ferry() { # workers
  local n=$1 p
  p=$(port)
  cat > "$TMP/ferry$n.yaml" <<YAML
listeners:
  - address: 127.0.0.1:$p
workers: $n
access_log: {path: off}
upstreams:
  up:
    servers:
      - address: 127.0.0.1:$P_UP
    keepalive: {max_idle: 64}
routes:
  - path_prefix: /
    upstream: up
YAML
  "$FERRY" -c "$TMP/ferry$n.yaml" 2>"$TMP/ferry$n.err" &
  PIDS+=($!)
  PORT[ferry$n]=$p
  wait_port "$p"
}
for n in 1 2; do start_nginx "$n"; start_ferry "$n"; done

declare -A RUNS
for r in $(seq "$ROUNDS"); do
  for t in ferry1 nginx1 ferry2 nginx2; do
    rps=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:${PORT[$t]}/" |
      awk '/^Requests\/sec/ {print $2}')
    RUNS[$t]="${RUNS[$t]:-} $rps"
    echo "# round $r $t: $rps req/s" >&2
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A MED
for t in ferry1 nginx1 ferry2 nginx2; do MED[$t]=$(echo "${RUNS[$t]}" | median); done
echo "wrk -t$THREADS -c$CONNS -d${DURATION}s, median of $ROUNDS rounds, $(nproc) cores"
printf "%-8s %12s %12s %8s\n" workers ferry nginx ratio
for n in 1 2; do
  printf "%-8s %12s %12s %8s\n" "$n" "${MED[ferry$n]}" "${MED[nginx$n]}" \
    "$(python3 -c "print(f'{${MED[ferry$n]}/${MED[nginx$n]}:.2f}')")"
done
printf "scaling 1->2 workers: ferry x%s, nginx x%s\n" \
  "$(python3 -c "print(f'{${MED[ferry2]}/${MED[ferry1]}:.2f}')")" \
  "$(python3 -c "print(f'{${MED[nginx2]}/${MED[nginx1]}:.2f}')")"
