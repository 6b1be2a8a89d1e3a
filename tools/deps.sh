#!/usr/bin/env bash
# deps.sh - install prunerd's build and test dependencies from Debian 12's apt.
set -euo pipefail
# Build, run and oracle tests (the Dockerfile installs the same list).
pkgs=(
  meson ninja-build pkg-config gcc g++
  libtorch-dev libopenblas0-pthread
  libmicrohttpd-dev libjansson-dev libsqlite3-dev libutf8proc-dev libssl-dev
  python3-torch python3-sklearn
)
# Browser tests: Debian's Chromium, driven by playwright-core from npm.
pkgs+=(chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node.js and npm: whichever the machine has; Debian's when it has none.
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
