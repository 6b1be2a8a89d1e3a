#!/usr/bin/env bash
# deps.sh - install prunerd's build and test dependencies: Debian 12's apt
# packages, and the project venv (.venv, or $PRUNERD_VENV) with the pinned
# PyPI packages of tools/requirements.txt (torch 2.11, the main build's
# libtorch, and the oracles).  Safe to run again: it installs only what is
# missing or out of date.
set -euo pipefail
cd "$(dirname "$0")/.."
# Build and run (the Dockerfile installs the same list); libtorch-dev is the
# second build (-Dtorch=system) and needs libopenblas0-pthread or it runs 10x
# slower; chromium is for the browser tests (Playwright drives it);
# PostgreSQL is the queue for several boxes (its tests start a server).
pkgs=(
  meson ninja-build pkg-config gcc g++
  libtorch-dev libopenblas0-pthread
  libmicrohttpd-dev libjansson-dev libsqlite3-dev libutf8proc-dev libssl-dev libarchive-dev
  python3-venv chromium
  libpq-dev postgresql
)
# For the tests only, so not in the image: clang builds the libFuzzer targets
# (tests/fuzz, the fuzz suite); clang-format checks the formatting.
test_pkgs=(
  clang clang-format
)
missing=()
for p in "${pkgs[@]}" "${test_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The venv: made with the python3 first on PATH (or $PYTHON), refreshed when
# requirements.txt changes (its hash is kept in the venv).
venv=${PRUNERD_VENV:-.venv}
req=tools/requirements.txt
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  [ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
  echo "$want" > "$venv/.requirements.sha256"
fi
