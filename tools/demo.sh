#!/usr/bin/env bash
# demo.sh - the main job, end to end: generate a small BERT classifier with
# the torch of .venv (tools/deps.sh), inspect it, prune 30% of its query weights globally (L1) and
# evaluate before and after on the shared THUCNews dev titles when present.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/server/prunerd
out=${DEMO_DIR:-var/demo}
mkdir -p "$out"
"${PYTHON:-.venv/bin/python}" tools/make_bert.py "$out/bert-tiny.pt" --layers 2 --hidden 64
"$bin" inspect "$out/bert-tiny.pt" | tail -n 3
"$bin" prune "$out/bert-tiny.pt" --out "$out/bert-tiny-pruned.pt" --state-dict "$out/bert-tiny-pruned.pth" \
  --method l1_unstructured --amount 0.3 --scope global \
  --target 'bert.encoder.layer.*.attention.self.query' --report "$out/report.json"
echo "report: $out/report.json"
shared=${PRUNERD_SHARED:-../shared}
if [ -f "$shared/models/thucnews-bert-l4-h256.pt" ]; then
  cat > "$out/seed.json" <<JSON
{"model": "$(realpath "$shared/models/thucnews-bert-l4-h256.pt")",
 "targets": ["bert.encoder.layer.*.attention.self.query"],
 "method": "l1_unstructured", "amount": 0.3, "scope": "global",
 "eval": {"data": "$(realpath "$shared/data/thucnews/dev.txt")",
          "vocab": "$(realpath "$shared/data/vocab/bert-base-chinese-vocab.txt")",
          "classes": "$(realpath "$shared/data/thucnews/class.txt")", "limit": 2000},
 "name": "seed: global L1 30% on query"}
JSON
  "$bin" run "$out/seed.json" --out-dir "$out/seed"
fi
