#!/usr/bin/env bash
# test.sh - install dependencies, build, run every test suite, then every
# suite again under ASan+UBSan (leaks included; the daemon, the CLI and the
# drivers the Python tests start are the sanitized builds there).  Exit
# status non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
jobs=$(nproc)
[ -d build ] || meson setup build
meson compile -C build -j "$jobs"
npm ci --no-audit --no-fund
meson test -C build --print-errorlogs --num-processes "$jobs"
[ -d build-asan ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
meson compile -C build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1 meson test -C build-asan --print-errorlogs --num-processes "$jobs"
