#!/usr/bin/env bash
# test.sh - install dependencies, build, and run every suite on the main
# build (torch 2.11's libtorch from .venv, CUDA compiled in); then every
# suite again under ASan+UBSan (leaks included; the daemon, the CLI and the
# drivers the Python tests start are the sanitized builds there); then the
# unit and oracle suites on the second build, Debian's libtorch 1.13
# (-Dtorch=system).  Exit status non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
jobs=$(nproc)
step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "main build: torch 2.11 of .venv"
[ -d build ] || meson setup build
meson compile -C build -j "$jobs"
build/server/prunerd version
meson test -C build --print-errorlogs --num-processes "$jobs"

step "main build under ASan+UBSan"
[ -d build-asan ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
meson compile -C build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1 meson test -C build-asan --print-errorlogs --num-processes "$jobs"

step "second build: Debian libtorch 1.13 (-Dtorch=system), unit and oracle suites"
[ -d build-system ] || meson setup build-system -Dtorch=system
meson compile -C build-system -j "$jobs"
build-system/server/prunerd version
meson test -C build-system --print-errorlogs --num-processes "$jobs" --suite unit --suite oracle
step "all suites passed"
