#!/usr/bin/env python3
"""make_seed_job.py - writes seed_job.ipynb (nbformat 4) from the cells below, with the json module.

    python3 make_seed_job.py           # (re)write seed_job.ipynb beside this file
    python3 make_seed_job.py --check   # exit 1 if seed_job.ipynb differs from what it would write

Edit the cells here, not in the .ipynb, so the two never drift.
"""
import json
import os
import sys

CELLS = [
    ("markdown", """\
# The seed job through the prunerd REST API

The tutorial's job, run by the `prunerd` daemon instead of a Python loop: prune
30% of the BERT self-attention **query** weights with global L1 (magnitude)
pruning — the masks of `torch.nn.utils.prune.global_unstructured(...,
pruning_method=prune.L1Unstructured, amount=0.3)`, made permanent — evaluate
before and after on the THUCNews dev titles, and download the pruned model.

Settings come from environment variables, with defaults for a daemon on this
machine (`prunerd serve --listen 127.0.0.1:8080 --model-root R --data-root R`,
where `R` holds `models/` and `data/` as in `/work/shared`):

| variable | default | meaning |
|---|---|---|
| `PRUNERD_URL` | `http://127.0.0.1:8080` | the daemon |
| `PRUNERD_TOKEN` | (none) | bearer token, when the daemon has `[tokens]` |
| `PRUNERD_MODEL` | `models/thucnews-bert-l4-h256.pt` | model, relative to the first model root |
| `PRUNERD_DEV`, `PRUNERD_VOCAB`, `PRUNERD_CLASSES` | `data/...` | eval files, relative to the first model root |
| `PRUNERD_EVAL_LIMIT` | (all 10,000 titles) | evaluate on the first N titles only |
| `PRUNERD_OUT` | `.` | where the checkpoints are saved |
| `PRUNERD_CLIENT_DIR` | `..` | the folder holding `prunerd_client.py` |
"""),
    ("code", """\
import os
import sys

URL = os.environ.get("PRUNERD_URL", "http://127.0.0.1:8080")
TOKEN = os.environ.get("PRUNERD_TOKEN") or None
MODEL = os.environ.get("PRUNERD_MODEL", "models/thucnews-bert-l4-h256.pt")
DEV = os.environ.get("PRUNERD_DEV", "data/thucnews/dev.txt")
VOCAB = os.environ.get("PRUNERD_VOCAB", "data/vocab/bert-base-chinese-vocab.txt")
CLASSES = os.environ.get("PRUNERD_CLASSES", "data/thucnews/class.txt")
EVAL_LIMIT = int(os.environ["PRUNERD_EVAL_LIMIT"]) if os.environ.get("PRUNERD_EVAL_LIMIT") else None
OUT = os.environ.get("PRUNERD_OUT", ".")

sys.path.insert(0, os.path.abspath(os.environ.get("PRUNERD_CLIENT_DIR", "..")))
from prunerd_client import Client, PrunerdError

client = Client(URL, token=TOKEN)
print(client, client.health())
"""),
    ("markdown", """\
## The model's query weights

`GET /v1/models/inspect` lists the parameters of a model under a model root;
the tutorial's targets `bert.encoder.layer[i].attention.self.query` are
`bert.encoder.layer.N.attention.self.query.weight` here.
"""),
    ("code", """\
info = client.inspect(MODEL)
print(f"{info['parameters']} parameters, {info['numel']:,} weights, sparsity {info['sparsity']:.4f}")
for t in info["tensors"]:
    if t["name"].endswith("attention.self.query.weight"):
        print(f"{t['name']:50s} {str(t['shape']):12s} zeros {t['zeros']}")
"""),
    ("markdown", """\
## Submit the job and wait

`wait` polls `GET /v1/jobs/{id}` and redraws a progress bar over the stages
(loading, evaluating_before, pruning, evaluating_after, saving).
"""),
    ("code", """\
job = {
    "name": "seed: global L1 30% on query",
    "model": MODEL,
    "targets": ["bert.encoder.layer.*.attention.self.query"],
    "method": "l1_unstructured",
    "amount": 0.3,
    "scope": "global",
    "eval": {"data": DEV, "vocab": VOCAB, "classes": CLASSES,
             "max_length": 32, "batch_size": 256, "lowercase": True, "limit": EVAL_LIMIT},
    "outputs": ["torchscript", "state_dict"],
}
job_id = client.submit(job)
print("job", job_id)
final = client.wait(job_id)
if final["status"] != "succeeded":
    raise RuntimeError(f"job {job_id} {final['status']}: {final['error']}")
"""),
    ("markdown", """\
## Before and after

`GET /v1/jobs/{id}/result` is the job's `result.json`: metrics before and
after, sparsity per parameter and per layer, timings, artifacts, provenance.
"""),
    ("code", """\
result = client.result(job_id)
before, after = result["metrics"]["before"], result["metrics"]["after"]
print(f"evaluated on {before['samples']} titles")
print(f"{'metric':16s} {'before':>8s} {'after':>8s} {'change':>8s}")
for metric in ("accuracy", "macro_f1", "macro_precision"):
    b, a = before[metric], after[metric]
    print(f"{metric:16s} {b:8.4f} {a:8.4f} {a - b:+8.4f}")
"""),
    ("code", """\
sparsity = result["sparsity"]
print(f"global sparsity {sparsity['global']:.4f}, over the targets {sparsity['targets']:.4f}")
print(f"{'parameter':50s} {'shape':>12s} {'zeros':>8s} {'sparsity':>8s}")
for p in sparsity["parameters"]:
    print(f"{p['name']:50s} {str(p['shape']):>12s} {p['zeros']:8d} {p['sparsity']:8.4f}")
"""),
    ("markdown", """\
## Download and load the pruned model

`download` resumes an interrupted transfer (`Range`) and checks the sha256
before renaming `*.part` to the file.  The TorchScript file loads with
`torch.jit.load`, the state_dict with `torch.load`.
"""),
    ("code", """\
import torch

ts_path = client.download(job_id, os.path.join(OUT, "seed-pruned.pt"))
sd_path = client.download(job_id, os.path.join(OUT, "seed-pruned.pth"), format="state_dict")

model = torch.jit.load(ts_path, map_location="cpu").eval()
state = torch.load(sd_path, map_location="cpu")
query = {k: v for k, v in state.items() if k.endswith("attention.self.query.weight")}
zeros = sum(int((v == 0).sum()) for v in query.values()) / sum(v.numel() for v in query.values())
print(f"loaded {ts_path} and {sd_path}: query weights {zeros:.4f} zeros")
same = all(torch.equal(dict(model.named_parameters())[k], v) for k, v in query.items())
print("TorchScript and state_dict hold the same pruned weights:", same)
"""),
]


def notebook():
    cells = []
    for kind, text in CELLS:
        lines = text.splitlines(keepends=True)
        if lines:
            lines[-1] = lines[-1].rstrip("\n")
        cell = {"cell_type": kind, "metadata": {}, "source": lines}
        if kind == "code":
            cell["execution_count"] = None
            cell["outputs"] = []
        cells.append(cell)
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def main():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seed_job.ipynb")
    nb = notebook()
    # nbformat 4.5 wants a unique id per cell: stable ones keep the file reproducible.
    for i, c in enumerate(nb["cells"]):
        c["id"] = f"cell-{i:02d}"
    text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if sys.argv[1:] == ["--check"]:
        with open(path, encoding="utf-8") as f:
            same = f.read() == text
        print(f"{path}: {'up to date' if same else 'differs: run make_seed_job.py'}")
        return 0 if same else 1
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
