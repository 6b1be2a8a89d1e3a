#!/usr/bin/env bash
# check_transformers4.sh - does transformers 4 (and 5) load a structured job's
# result natively?  Installs transformers 4.57 and the hub and tokenizers it
# wants into build/tf4 (pip --target, apart from the venv's transformers 5),
# then runs tools/check_transformers4.py with each.  Usage:
#   tools/check_transformers4.sh [build/server/prunerd]
set -euo pipefail
cd "$(dirname "$0")/.."
prunerd=${1:-build/server/prunerd}
target=build/tf4
if [ ! -d "$target/transformers" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --target "$target" \
    "transformers==4.57.6" "huggingface_hub==0.36.2" "tokenizers==0.22.2"
fi
PYTHONPATH="$target" .venv/bin/python tools/check_transformers4.py "$prunerd"
.venv/bin/python tools/check_transformers4.py "$prunerd"
