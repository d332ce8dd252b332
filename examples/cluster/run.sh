#!/usr/bin/env bash
# A rehearsed cluster: HAProxy in TCP mode in front of three ferry instances,
# with wrk sending traffic through it while the instances are rolled,
# upgraded and reloaded. Everything runs on loopback addresses.
#
#   examples/cluster/run.sh [BUILD_DIR]        full run (about 1.5 minutes)
#   SHORT=1 examples/cluster/run.sh [BUILD_DIR] shorter phases (the test suite's run)
#
# Layout (ports are picked free at start):
#
#   wrk (127.0.0.1) --> HAProxy 127.0.0.1:FE (mode tcp, balance roundrobin)
#        --send-proxy-v2, from 127.0.0.2--> ferry-1/2/3 127.0.0.1:Pn (proxy_protocol: true)
#        health checks: GET /readyz on each ferry's admin port 127.0.0.1:An
#   ferry-n --> ferry-echo e1, e2 (answer with the request they received)
#
# HAProxy connects to the ferries from 127.0.0.2, so a ferry that ignored the
# PROXY header would forward X-Forwarded-For: 127.0.0.2; every response wrk
# gets must show the real client, 127.0.0.1.
#
# Phases, each under its own wrk run (-c CONNS keep-alive connections):
#   baseline  nothing happens
#   roll      each ferry in turn: SIGTERM (drain), wait for its exit, start it
#             again, wait until HAProxy sees it up; with timeouts.drain_grace
#             longer than HAProxy's time to notice a failed check. A ferry
#             without drain_grace closes its listener and idle keep-alive
#             connections at SIGTERM, which races the clients' next requests:
#             then the phase's figures are shown but not held to the bar
#   upgrade   each ferry in turn: SIGUSR2 (binary upgrade), wait for the new
#             pid in pid_file and the old process's exit; skipped, saying so,
#             when this ferry has no SIGUSR2 upgrade
#   reload    new config (a changed response header) for all three, SIGHUP to
#             each, wait for "configuration generation N published" in its log
#             (under --watch: SIGHUP reloads the unchanged file, see watch)
#   watch     when this ferry has --watch (they all run with it then): the
#             config's ..data symlink is swapped to a new directory, as
#             Kubernetes updates a mounted ConfigMap, and each ferry must log
#             a new generation by itself; skipped, saying so, otherwise
# For each phase: requests, socket errors (connect/read/write/timeout),
# non-2xx responses and responses whose upstream saw the wrong client
# address. Exit 0 when every phase that ran has zero of all three.
#
# Environment: FERRY_BIN, FERRY_ECHO_BIN (default BUILD_DIR/ferry, ferry-echo,
# BUILD_DIR defaults to ./build), CONNS (default 32), KEEP_TMP=1 keeps the
# temporary directory (configs, logs) for inspection.
# It stops only the processes it started (by pid) and removes its temporary
# directory; the whole run is bounded (MAX_SECONDS, default 300; 90 with SHORT=1).
set -uo pipefail

build=${1:-build}
FERRY_BIN=${FERRY_BIN:-$build/ferry}
FERRY_ECHO_BIN=${FERRY_ECHO_BIN:-$build/ferry-echo}
SHORT=${SHORT:-0}
CONNS=${CONNS:-32}

if [ "$SHORT" = 1 ]; then
  BASELINE_S=2     # seconds of the baseline phase
  SETTLE_S=1       # traffic kept going after each phase's last action
  CHECK_INTER_MS=300
  MAX_SECONDS=${MAX_SECONDS:-90}
else
  BASELINE_S=10
  SETTLE_S=3
  CHECK_INTER_MS=1000
  MAX_SECONDS=${MAX_SECONDS:-300}
fi
CHECK_FALL=2
CHECK_RISE=2
# drain_grace must cover the time HAProxy needs to see /readyz fail:
# fall x inter, plus one interval for a check already under way.
GRACE_MS=$(((CHECK_FALL + 1) * CHECK_INTER_MS + 500))

die() {
  echo "cluster: $*" >&2
  exit 1
}

for tool in haproxy wrk python3; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "$tool not found: install it (scripts/deps.sh --test installs haproxy and wrk)"
done
[ -x "$FERRY_BIN" ] || die "no ferry binary at $FERRY_BIN: build first (make build) or set FERRY_BIN"
[ -x "$FERRY_ECHO_BIN" ] || die "no ferry-echo binary at $FERRY_ECHO_BIN: build first (make build) or set FERRY_ECHO_BIN"
FERRY_BIN=$(readlink -f "$FERRY_BIN")
FERRY_ECHO_BIN=$(readlink -f "$FERRY_ECHO_BIN")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-cluster.XXXXXX") || die "cannot create a temporary directory"
started=() # pids of every process this script started (or that replaced one by upgrade)
watchdog=""
wrk_pid=""

cleanup() {
  local pid
  [ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null
  [ -n "$wrk_pid" ] && kill "$wrk_pid" 2>/dev/null
  for pid in "${started[@]}"; do
    kill "$pid" 2>/dev/null
  done
  for pid in "${started[@]}"; do
    wait_gone "$pid" 15 || kill -KILL "$pid" 2>/dev/null
  done
  if [ "${KEEP_TMP:-0}" = 1 ]; then
    echo "cluster: kept $tmp"
  else
    rm -rf "$tmp"
  fi
}

# Small helpers in Python (standard library only): free ports, HTTP probes
# from a chosen source address, HAProxy's stats socket.
helper() {
  python3 - "$@" <<'EOF'
import socket, sys, time

def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks: s.close()
    print(" ".join(map(str, ports)))

def http_get(port, path="/", src=None, timeout=2.0):
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=timeout,
                                 source_address=(src, 0) if src else None)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        b = s.recv(65536)
        if not b: break
        data += b
    s.close()
    return data.decode("latin-1")

def until(fn, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if fn(): return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"cluster: timed out after {timeout}s waiting for {what}")

def haproxy_stat(sock, proxy, server, field):
    """One field of HAProxy's "show stat" CSV (17: status, 4: scur)."""
    s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(sock)
    s.sendall(b"show stat\n")
    data = b""
    while True:
        b = s.recv(65536)
        if not b: break
        data += b
    for line in data.decode().splitlines():
        f = line.split(",")
        if len(f) > 17 and f[0] == proxy and f[1] == server:
            return f[field]
    return "?"

cmd = sys.argv[1]
if cmd == "ports":
    free_ports(int(sys.argv[2]))
elif cmd == "wait-status":          # PORT PATH STATUS TIMEOUT
    port, path, want, t = sys.argv[2:6]
    until(lambda: http_get(port, path).split(" ", 2)[1] == want, float(t),
          f"{path} on port {port} to answer {want}")
elif cmd == "wait-lb":              # SOCK SERVER STATE TIMEOUT
    sock, srv, want, t = sys.argv[2:6]
    until(lambda: haproxy_stat(sock, "ferries", srv, 17).startswith(want), float(t),
          f"HAProxy to see {srv} {want}")
elif cmd == "wait-clients":         # SOCK N TIMEOUT: N client connections open
    sock, n, t = sys.argv[2:5]
    until(lambda: int(haproxy_stat(sock, "fe", "FRONTEND", 4)) >= int(n), float(t),
          f"{n} client connections on HAProxy")
elif cmd == "probe":                # PORT SOURCE: print the response
    print(http_get(sys.argv[2], "/probe", src=sys.argv[3]))
EOF
}

# Waits up to $2 seconds for process $1 to be gone (our children are reaped
# by bash, so kill -0 fails once they exit).
wait_gone() {
  local pid=$1 deadline=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    [ $SECONDS -ge "$deadline" ] && return 1
    sleep 0.05
  done
  return 0
}

trap cleanup EXIT
trap 'echo "cluster: interrupted or over the ${MAX_SECONDS}s bound; stopping" >&2; exit 1' INT TERM
# The whole run is bounded: past MAX_SECONDS the watchdog stops this script.
(
  trap 'kill "$s" 2>/dev/null; exit 0' TERM
  sleep "$MAX_SECONDS" &
  s=$!
  wait "$s" && kill -TERM $$
) >/dev/null 2>&1 &
watchdog=$!

# --- What this ferry supports -------------------------------------------
help_text=$("$FERRY_BIN" -h 2>&1)
printf 'listeners: [{address: "127.0.0.1:1"}]\ntimeouts: {drain_grace: 1s}\n' >"$tmp/probe-grace.yaml"
have_grace=0
"$FERRY_BIN" -t -c "$tmp/probe-grace.yaml" >/dev/null 2>&1 && have_grace=1
printf 'listeners: [{address: "127.0.0.1:1"}]\npid_file: %s/probe.pid\n' "$tmp" >"$tmp/probe-pid.yaml"
have_pidfile=0
"$FERRY_BIN" -t -c "$tmp/probe-pid.yaml" >/dev/null 2>&1 && have_pidfile=1
have_usr2=0
if grep -q 'USR2' <<<"$help_text" && [ $have_pidfile = 1 ]; then
  have_usr2=1
fi
have_watch=0
watch_arg=()
if grep -q -- '--watch' <<<"$help_text"; then
  have_watch=1
  watch_arg=(--watch)
fi

# --- Start everything ----------------------------------------------------
read -r FE E1 E2 P1 P2 P3 A1 A2 A3 <<<"$(helper ports 9)" || die "cannot pick free ports"
P=("" "$P1" "$P2" "$P3")
A=("" "$A1" "$A2" "$A3")
FPID=("" "" "" "")

"$FERRY_ECHO_BIN" -n e1 "127.0.0.1:$E1" >"$tmp/echo-e1.log" 2>&1 &
started+=($!)
"$FERRY_ECHO_BIN" -n e2 "127.0.0.1:$E2" >"$tmp/echo-e2.log" 2>&1 &
started+=($!)

# write_config N GENERATION: ferry-N's proxy.yaml, laid out as Kubernetes
# mounts a ConfigMap: ferry-N/proxy.yaml -> ..data/proxy.yaml, and ..data a
# symlink to the current ..genG directory, swapped atomically (rename).
write_config() {
  local n=$1 gen=$2 d="$tmp/ferry-$1"
  mkdir -p "$d/..gen$gen"
  {
    echo "# ferry-$n of the cluster rehearsal, generation $gen"
    echo "listeners:"
    echo "  - address: 127.0.0.1:${P[$n]}"
    echo "    proxy_protocol: true"
    echo "workers: 1"
    echo "admin:"
    echo "  address: 127.0.0.1:${A[$n]}"
    echo "access_log: {path: \"off\"}"
    echo "timeouts:"
    echo "  drain: 20s"
    [ $have_grace = 1 ] && echo "  drain_grace: ${GRACE_MS}ms"
    [ $have_pidfile = 1 ] && echo "pid_file: $tmp/ferry-$n.pid"
    echo "upstreams:"
    echo "  echo:"
    echo "    servers:"
    echo "      - address: 127.0.0.1:$E1"
    echo "      - address: 127.0.0.1:$E2"
    echo "routes:"
    echo "  - path_prefix: /"
    echo "    upstream: echo"
    echo "    response_headers:"
    echo "      set: {X-Ferry: \"ferry-$n gen-$gen\"}"
  } >"$d/..gen$gen/proxy.yaml" || die "cannot write $d/..gen$gen/proxy.yaml"
  ln -sfn "..gen$gen" "$d/..data.new" && mv -T "$d/..data.new" "$d/..data" ||
    die "cannot swap $d/..data"
  [ -L "$d/proxy.yaml" ] || ln -s ..data/proxy.yaml "$d/proxy.yaml"
}

# probe_gen G: several requests through HAProxy all answer X-Ferry ... gen-G.
probe_gen() {
  local out
  for _ in 1 2 3 4 5 6; do
    out=$(helper probe "$FE" 127.0.0.9) || die "probe through HAProxy failed"
    grep -q "^X-Ferry: ferry-[123] gen-$1" <<<"$out" ||
      die "a response lacks X-Ferry: ferry-N gen-$1 (the new configuration): $out"
  done
}

# wait_published N BEFORE WHAT: ferry-N's log gets a new "configuration
# generation ... published" line (more than BEFORE).
published='configuration generation [0-9]* published'
wait_published() {
  local deadline=$((SECONDS + 20))
  until [ "$(grep -c "$published" "$tmp/ferry-$1.log")" -gt "$2" ]; do
    [ $SECONDS -ge $deadline ] && die "ferry-$1 did not log a new configuration generation after $3"
    sleep 0.05
  done
}

start_ferry() {
  local n=$1
  "$FERRY_BIN" "${watch_arg[@]}" -c "$tmp/ferry-$n/proxy.yaml" >>"$tmp/ferry-$n.log" 2>&1 &
  FPID[$n]=$!
  started+=($!)
  helper wait-status "${A[$n]}" /readyz 200 20 || die "ferry-$n did not become ready; its log: $tmp/ferry-$n.log"
}

for n in 1 2 3; do
  write_config "$n" 1
  "$FERRY_BIN" -t -c "$tmp/ferry-$n/proxy.yaml" >/dev/null || die "ferry-$n's configuration is refused"
  start_ferry "$n"
done

cat >"$tmp/haproxy.cfg" <<EOF
global
    maxconn 256
    stats socket $tmp/haproxy.sock mode 600 level admin
    # One line per client session in haproxy.log (KEEP_TMP=1 keeps it): the
    # termination flags say which side ended a failed one.
    log stdout format raw local0
defaults
    mode tcp
    log global
    option tcplog
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    # A connect that fails (a ferry that just stopped listening) is tried
    # again on another server: the client never sees it.
    retries 3
    option redispatch 1
frontend fe
    bind 127.0.0.1:$FE
    default_backend ferries
backend ferries
    balance roundrobin
    # Health checks: GET /readyz on each ferry's admin port (no PROXY header
    # there: "port" turns it off for checks).
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter ${CHECK_INTER_MS}ms fall $CHECK_FALL rise $CHECK_RISE send-proxy-v2 source 127.0.0.2
    server ferry-1 127.0.0.1:$P1 check port $A1
    server ferry-2 127.0.0.1:$P2 check port $A2
    server ferry-3 127.0.0.1:$P3 check port $A3
EOF
haproxy -c -q -f "$tmp/haproxy.cfg" || die "HAProxy refuses its configuration ($tmp/haproxy.cfg)"
haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
started+=($!)
for n in 1 2 3; do
  helper wait-lb "$tmp/haproxy.sock" "ferry-$n" UP 20 || die "HAProxy never saw ferry-$n up; see $tmp/haproxy.log"
done

# The client address seen upstream, from a distinct loopback source.
probe=$(helper probe "$FE" 127.0.0.9) || die "probe through HAProxy failed"
grep -q '^X-Forwarded-For: 127\.0\.0\.9$' <<<"$probe" ||
  die "the upstream did not see the client's address 127.0.0.9 (PROXY protocol lost?): $probe"

echo "cluster: HAProxy $(haproxy -v | head -1 | awk '{print $3}') on 127.0.0.1:$FE (mode tcp, send-proxy-v2, checks /readyz every ${CHECK_INTER_MS}ms, fall $CHECK_FALL, rise $CHECK_RISE)"
echo "cluster: 3 ferry ($("$FERRY_BIN" --version)) on ports $P1 $P2 $P3, admin $A1 $A2 $A3; upstreams ferry-echo on $E1 $E2"
echo "cluster: wrk -t1 -c$CONNS through HAProxy; drain_grace: $([ $have_grace = 1 ] && echo "${GRACE_MS}ms" || echo "not supported by this ferry")"
echo "cluster: client 127.0.0.9 seen upstream as X-Forwarded-For: 127.0.0.9 (PROXY v2 from HAProxy's 127.0.0.2)"

cat >"$tmp/count.lua" <<'EOF'
-- Counts non-2xx responses and responses whose upstream saw another client
-- address than 127.0.0.1 (ferry-echo puts the forwarded head in its body).
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non2xx = 0; wrong_client = 0 end
function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  elseif not string.find(body, "\nX%-Forwarded%-For: 127%.0%.0%.1\n") then
    wrong_client = wrong_client + 1
  end
end
function done(summary, latency, requests)
  local n, w = 0, 0
  for _, t in ipairs(threads) do n = n + t:get("non2xx"); w = w + t:get("wrong_client") end
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d %.1f\n", summary.requests,
    e.connect + e.read + e.write + e.timeout, e.connect, e.read, e.write, n, w,
    summary.duration / 1e6))
end
EOF

failed=0
rows=()

wrk_start() {
  wrk -t1 -c"$CONNS" -d"$MAX_SECONDS"s --timeout 5s -s "$tmp/count.lua" \
    "http://127.0.0.1:$FE/" >"$tmp/wrk-$1.out" 2>&1 &
  wrk_pid=$!
  # The action starts once all of wrk's connections are open.
  helper wait-clients "$tmp/haproxy.sock" "$CONNS" 20 || die "wrk did not open its $CONNS connections"
}

# wrk_stop PHASE NOTE [HELD]: ends the phase's traffic and records its row;
# HELD=0 reports the figures without holding them to the bar.
wrk_stop() {
  local phase=$1 note=${2:-} held=${3:-1} r
  sleep "$SETTLE_S"
  kill -INT "$wrk_pid" 2>/dev/null
  wait "$wrk_pid"
  wrk_pid=""
  r=$(grep '^RESULT' "$tmp/wrk-$phase.out") || {
    cat "$tmp/wrk-$phase.out" >&2
    die "wrk gave no result for $phase"
  }
  # shellcheck disable=SC2086
  set -- $r
  rows+=("$(printf '%-9s %9s %7s %7s %7s %7s %8s %13s %8ss  %s' "$phase" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9" "$note")")
  if [ "$held" = 1 ] && { [ "$3" != 0 ] || [ "$7" != 0 ] || [ "$8" != 0 ]; }; then
    failed=1
  fi
}

skip() {
  rows+=("$(printf '%-9s skipped: %s' "$1" "$2")")
}

# --- baseline ------------------------------------------------------------
wrk_start baseline
sleep "$BASELINE_S"
wrk_stop baseline

# --- roll: drain, exit, restart, one by one ------------------------------
wrk_start roll
for n in 1 2 3; do
  kill -TERM "${FPID[$n]}"
  if [ $have_grace = 1 ]; then
    helper wait-lb "$tmp/haproxy.sock" "ferry-$n" DOWN 20 || die "HAProxy never saw draining ferry-$n down"
  fi
  wait_gone "${FPID[$n]}" 40 || die "ferry-$n did not exit within 40s of SIGTERM"
  start_ferry "$n"
  helper wait-lb "$tmp/haproxy.sock" "ferry-$n" UP 20 || die "HAProxy never saw ferry-$n up again"
done
if [ $have_grace = 1 ]; then
  wrk_stop roll "drain_grace ${GRACE_MS}ms"
else
  # Without a grace the listener closes at SIGTERM and idle keep-alive
  # connections are closed at once, racing the client's next request on
  # them: the figures are shown, not held to the bar.
  wrk_stop roll "not held to the bar: this ferry has no timeouts.drain_grace" 0
fi

# --- upgrade: SIGUSR2, one by one ----------------------------------------
if [ $have_usr2 = 1 ]; then
  wrk_start upgrade
  for n in 1 2 3; do
    old=${FPID[$n]}
    kill -USR2 "$old"
    deadline=$((SECONDS + 30))
    new=$old
    while [ "$new" = "$old" ] || [ -z "$new" ]; do
      [ $SECONDS -ge $deadline ] && die "ferry-$n: no new pid in $tmp/ferry-$n.pid 30s after SIGUSR2"
      sleep 0.05
      new=$(cat "$tmp/ferry-$n.pid" 2>/dev/null | tr -d '[:space:]')
    done
    started+=("$new")
    FPID[$n]=$new
    wait_gone "$old" 40 || die "ferry-$n: the old process $old did not exit after the upgrade"
    helper wait-status "${A[$n]}" /readyz 200 20 || die "ferry-$n: the upgraded process is not ready"
    helper wait-lb "$tmp/haproxy.sock" "ferry-$n" UP 20 || die "HAProxy does not see the upgraded ferry-$n up"
  done
  wrk_stop upgrade "new pids ${FPID[1]} ${FPID[2]} ${FPID[3]}"
else
  skip upgrade "this ferry has no SIGUSR2 binary upgrade (ferry -h does not mention USR2 or pid_file is refused)"
fi

# --- reload: SIGHUP to each ---------------------------------------------
# Under --watch a changed file reloads by itself, so the SIGHUP phase then
# reloads the same file (a new generation all the same) and the change of
# content is left to the watch phase.
wrk_start reload
for n in 1 2 3; do
  before=$(grep -c "$published" "$tmp/ferry-$n.log")
  [ $have_watch = 0 ] && write_config "$n" 2
  kill -HUP "${FPID[$n]}"
  wait_published "$n" "$before" SIGHUP
done
if [ $have_watch = 0 ]; then
  wrk_stop reload "all three on a new configuration (gen-2)"
  probe_gen 2
else
  wrk_stop reload "all three reloaded the same file"
fi

# --- watch: a ConfigMap-style symlink swap, no signal -------------------
if [ $have_watch = 1 ]; then
  wrk_start watch
  for n in 1 2 3; do
    before=$(grep -c "$published" "$tmp/ferry-$n.log")
    write_config "$n" 2
    wait_published "$n" "$before" "the ..data symlink swap (--watch)"
  done
  wrk_stop watch "all three on gen-2 after a ..data symlink swap"
  probe_gen 2
else
  skip watch "this ferry has no --watch (ferry -h does not mention it)"
fi

echo
printf '%-9s %9s %7s %7s %7s %7s %8s %13s %9s\n' phase requests errors connect read write non-2xx wrong-client duration
printf '%s\n' "${rows[@]}"
if [ $failed = 0 ]; then
  echo "cluster: PASS: zero socket errors, zero non-2xx, the real client address upstream, in every phase that ran"
else
  echo "cluster: FAIL: some phase had socket errors, non-2xx responses or a wrong client address (logs: KEEP_TMP=1)"
fi
exit $failed
