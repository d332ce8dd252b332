#!/usr/bin/env bash
# Runs the inspector page test in Debian's chromium (tests/browser/inspect_page.cjs).
# usage: run.sh BUILD_DIR   (FERRY_BIN and FERRY_ECHO_BIN in the environment)
#
# Its npm dependencies (playwright-core only, no browser download) are
# installed with `npm ci` from package-lock.json into BUILD_DIR/browser-deps,
# once per lock file. Exits 77 (ctest: skipped) when chromium, node or npm
# is missing; scripts/deps.sh installs them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$1"

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(node)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "SKIP: the inspector browser test needs ${missing[*]}: run scripts/deps.sh (Debian packages chromium, nodejs, npm)"
  exit 77
fi

deps="$build/browser-deps"
mkdir -p "$deps"
if ! cmp -s "$here/package-lock.json" "$deps/package-lock.json" || [ ! -d "$deps/node_modules/playwright-core" ]; then
  cp "$here/package.json" "$here/package-lock.json" "$deps/"
  (cd "$deps" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

export BROWSER_DEPS="$deps"
export SCREENSHOT="${SCREENSHOT:-$build/inspector.png}"
exec timeout 120 node "$here/inspect_page.cjs"
