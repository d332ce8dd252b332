#!/usr/bin/env bash
# Installs the Debian packages ferry needs to build, run and test, when any
# is missing. Uses sudo only when not root.
#   scripts/deps.sh [--test] [PACKAGE...]
# --test adds what only the test suite needs (chromium and node for the
# inspector's browser test, prometheus for promtool, haproxy and wrk for the
# cluster rehearsal, python3-yaml for the Kubernetes manifests' test,
# dpkg-dev for the Debian package's dependencies); extra package names are
# installed too (bench/run.sh passes its peers this way).
set -euo pipefail
with_test=0
if [ "${1:-}" = "--test" ]; then
  with_test=1
  shift
fi

need=(cmake make gcc pkg-config python3 libuv1-dev libyaml-dev libssl-dev openssl libcriterion-dev node-llhttp)
# With --test: the inspector's browser test (tests/browser): Debian's chromium, and node
# and npm for playwright-core. node/npm are checked as commands, not as
# packages: a machine may have them from another source, and installing
# Debian's nodejs over that would conflict.
if [ "$with_test" = 1 ]; then
  need+=(chromium prometheus haproxy wrk python3-yaml dpkg-dev)
  command -v node >/dev/null 2>&1 || need+=(nodejs)
  command -v npm >/dev/null 2>&1 || need+=(npm)
fi
need+=("$@")

missing=()
for p in "${need[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "deps.sh: missing packages: ${missing[*]}; not root and no sudo: install them and retry" >&2
    exit 1
  fi
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
