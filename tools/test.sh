#!/usr/bin/env bash
# test.sh - install dependencies, build, run every test suite, then the unit
# suite again under ASan+UBSan.  Exit status non-zero on any failure.
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
ASAN_OPTIONS=detect_leaks=1 meson test -C build-asan --suite unit --print-errorlogs --num-processes "$jobs"
