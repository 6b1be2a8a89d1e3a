"""oracle.py - shared helpers for the Python oracle tests (PyTorch, sklearn, golden)."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))


class Tally:
    """Counts checks; every failure prints what it expected and what it got."""

    def __init__(self, name):
        self.name, self.passed, self.failed = name, 0, 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {what}", flush=True)
        return cond

    def done(self):
        print(f"{self.name}: {self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed or not self.passed else 0)


def shared(*parts):
    """A path under the shared data folder; exits with a clear failure when it is missing."""
    root = os.environ.get("PRUNERD_SHARED", os.path.join(HERE, "..", "..", "shared"))
    path = os.path.join(root, *parts)
    if not os.path.exists(path):
        print(f"FAIL shared data missing: {path} (set PRUNERD_SHARED or -Dshared_dir)")
        sys.exit(1)
    return path


def prunerd(*args, check=True):
    """Runs the prunerd binary; returns the CompletedProcess."""
    exe = os.environ.get("PRUNERD_BIN", os.path.join(HERE, "..", "build", "server", "prunerd"))
    p = subprocess.run([exe, *map(str, args)], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"prunerd {' '.join(map(str, args))} exited {p.returncode}: {p.stderr}")
    return p


def golden_ids(lower=True, limit=None):
    """Token ids of the dev titles from the golden file (no [CLS]/[SEP])."""
    out = []
    with open(shared("data", "golden", "tokenize-dev.jsonl"), encoding="utf-8") as f:
        lines = [json.loads(line) for line in f]
    block = [r for r in lines if r["lower"] == lower][26:]
    for r in block[: limit or len(block)]:
        out.append(r["ids"])
    return out


def encode(ids_list, max_length=32):
    """[CLS] + ids[:L-2] + [SEP] padded with 0: (ids, mask) int64 tensors."""
    import torch

    ids = torch.zeros(len(ids_list), max_length, dtype=torch.long)
    mask = torch.zeros(len(ids_list), max_length, dtype=torch.long)
    for i, t in enumerate(ids_list):
        row = [101] + t[: max_length - 2] + [102]
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def logits_of(model, ids, mask, batch=256):
    import torch

    outs = []
    with torch.inference_mode():
        for s in range(0, len(ids), batch):
            outs.append(model(ids[s : s + batch], mask[s : s + batch]).float())
    return torch.cat(outs)


def dev_labels(limit=None):
    with open(shared("data", "thucnews", "dev.txt"), encoding="utf-8") as f:
        labels = [int(line.rstrip("\n").rsplit("\t", 1)[1]) for line in f if line.strip()]
    return labels[: limit or len(labels)]


def tie_aware_compare(t, name, ours, ref, scores, k):
    """Checks an unstructured pruning: zero patterns equal except where the
    importance equals the k-th smallest exactly; non-zeros bit-identical;
    the counts of pruned entries equal."""
    import torch

    oz, rz = ours == 0, ref == 0
    t.check(int(oz.sum()) == int(rz.sum()), f"{name}: pruned {int(oz.sum())}, PyTorch {int(rz.sum())}")
    if k > 0:
        kth = scores.flatten().kthvalue(k).values
        tie = scores == kth
    else:
        tie = torch.zeros_like(oz)
    differ = (oz != rz) & ~tie
    t.check(int(differ.sum()) == 0, f"{name}: {int(differ.sum())} entries differ outside ties")
    both = ~oz & ~rz
    t.check(torch.equal(ours[both], ref[both]), f"{name}: kept weights are not bit-identical")
    return int(((oz != rz) & tie).sum())
