#!/usr/bin/env bash
# Builds the libFuzzer targets and runs each for SECONDS (default 60), one
# after the other, starting from the seed corpus in tests/fuzz/corpus/.
# New inputs go to build-fuzz/corpus/<target>/ (not into the repository);
# a crash, leak, timeout or out-of-memory leaves build-fuzz/<target>-{crash,leak,timeout,oom}-*
# and makes the script exit non-zero.
# Usage: [FERRY_BIN=build-san/ferry] tests/fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_request fuzz_response fuzz_config fuzz_h1parse fuzz_tls)
out="${FUZZ_OUT:-$root/build-fuzz}"
# clang and its libFuzzer runtime (Debian: clang, libclang-rt-dev), plus ferry's own build deps.
"$root/scripts/deps.sh" clang libclang-rt-dev
"$root/tests/fuzz/build.sh" "$out"
for t in "${targets[@]}"; do
  work="$out/corpus/$t"
  mkdir -p "$work"
  echo "== $t for ${secs}s"
  "$out/$t" -max_total_time="$secs" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$out/$t-" "$work" "$root/tests/fuzz/corpus/$t" \
    2>&1 | grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|==[0-9]+==|SUMMARY|.*(crash|leak|timeout)-)' || true
  if compgen -G "$out/$t-crash-*" >/dev/null || compgen -G "$out/$t-leak-*" >/dev/null || compgen -G "$out/$t-timeout-*" >/dev/null || compgen -G "$out/$t-oom-*" >/dev/null; then
    echo "$t: found a failing input (see $out/$t-*)"; exit 1
  fi
done
# The socket code (session, exchange, connpool, tunnel, timers) against
# mutated traffic, when a built ferry is given (use the sanitizer build):
#   FERRY_BIN=build-san/ferry tests/fuzz/run.sh 60
if [ -n "${FERRY_BIN:-}" ]; then
  echo "== wire fuzz of $FERRY_BIN for ${secs}s"
  python3 "$root/tests/fuzz/wire_fuzz.py" "$secs"
fi
