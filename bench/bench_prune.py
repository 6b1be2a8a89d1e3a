#!/usr/bin/env python3
"""bench_prune.py - prunerd prune against torch.nn.utils.prune on a bert-base-shaped classifier.

    .venv/bin/python bench/bench_prune.py [--prunerd build/server/prunerd] [--threads 2] [--keep]

Makes a bert-base-chinese-shaped TorchScript classifier (12 layers, hidden 768,
12 heads, FFN 3072, vocab 21128, random weights) with tools/make_bert.py, then,
in one run, for (a) the seed job: global L1 30% of the 12 query weights and
(b) global L1 50% of all 72 encoder Linear weights:
  - prunerd: `prunerd prune` (the pruning step from its report's prune_s; the
    whole process's wall time and peak RSS from wait4),
  - PyTorch: a Python process that loads the same TorchScript, copies it into
    the equivalent eager nn.Module, runs prune.global_unstructured + prune.remove
    (timed alone) and saves the state_dict.
Peak RSS beyond loading is measured against `prunerd inspect` (load + count)
and `prunerd prune --method identity` (load + save, nothing pruned).
Each side runs --repeat times (default 3) and the best of each figure is
kept, since this machine is shared and noisy.  Prints a table of figures and
ratios (PyTorch / prunerd).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = sys.executable

TORCH_SIDE = r'''
import sys, time, json, resource
sys.path.insert(0, sys.argv[1])
import torch
import torch.nn.utils.prune as prune
from make_bert import BertClassifier, PRESETS
torch.set_num_threads(int(sys.argv[5]))
t0 = time.monotonic()
ts = torch.jit.load(sys.argv[2])
m = BertClassifier(**PRESETS["bert-base"]).eval()
m.load_state_dict(ts.state_dict())
del ts
t1 = time.monotonic()
suffixes = sys.argv[3].split(",")
params = [(mod, "weight") for name, mod in m.named_modules()
          if isinstance(mod, torch.nn.Linear) and "encoder" in name and any(name.endswith(s) for s in suffixes)]
amount = float(sys.argv[4])
p0 = time.monotonic()
prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
for mod, n in params:
    prune.remove(mod, n)
p1 = time.monotonic()
torch.save(m.state_dict(), sys.argv[6])
t2 = time.monotonic()
print(json.dumps({"targets": len(params), "load_s": t1 - t0, "prune_s": p1 - p0, "save_s": t2 - p1}))
'''


def run(cmd):
    """Runs cmd; returns (stdout, wall seconds, peak RSS MiB) of that child alone."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{cmd[0]} failed ({os.waitstatus_to_exitcode(status)}): {err.read()}")
        return out.read(), wall, ru.ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prunerd", default=os.path.join(ROOT, "build", "server", "prunerd"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each side; the best is kept")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="prunerd-bench-")
    model = os.path.join(tmp, "bert-base.pt")
    subprocess.run([PY, os.path.join(ROOT, "tools", "make_bert.py"), model, "--preset", "bert-base"],
                   check=True, stdout=subprocess.DEVNULL)
    size_mib = os.path.getsize(model) / 2**20
    print(f"model: {model} ({size_mib:.0f} MiB), threads {a.threads}")

    _, wall_load, rss_load = run([a.prunerd, "inspect", model, "--json"])
    ident = os.path.join(tmp, "ident.pt")
    _, wall_ident, rss_ident = run([a.prunerd, "prune", model, "--out", ident, "--method", "identity",
                                    "--target", "bert.encoder.layer.*", "--threads", str(a.threads)])
    print(f"prunerd load only (inspect): {wall_load:.2f} s, peak RSS {rss_load:.0f} MiB")
    print(f"prunerd load + save, nothing pruned (identity): {wall_ident:.2f} s, peak RSS {rss_ident:.0f} MiB "
          f"(saving adds {rss_ident - rss_load:+.0f} MiB = {100 * (rss_ident - rss_load) / size_mib:+.1f}% of the model)")

    scenarios = [
        ("(a) global L1 30% of the 12 query weights", ["attention.self.query"], 0.3),
        ("(b) global L1 50% of all 72 encoder Linear weights",
         ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
          "intermediate.dense", "output.dense"], 0.5),
    ]
    rows = []
    for title, suffixes, amount in scenarios:
        out = os.path.join(tmp, "p.pt")
        rep = os.path.join(tmp, "p.json")
        targets = []
        for s in suffixes:
            targets += ["--target", f"bert.encoder.layer.*.{s}"]
        best_p = best_t = None
        for _ in range(a.repeat):
            _, wall_p, rss_p = run([a.prunerd, "prune", model, "--out", out, "--report", rep, "--method",
                                    "l1_unstructured", "--amount", str(amount), "--scope", "global",
                                    "--threads", str(a.threads), *targets])
            r = json.load(open(rep))
            cur = (r["timings"]["prune_s"], wall_p, rss_p)
            best_p = cur if best_p is None else tuple(min(x, y) for x, y in zip(best_p, cur))
            sd = os.path.join(tmp, "torch.pth")
            out_t, wall_t, rss_t = run([PY, "-c", TORCH_SIDE, os.path.join(ROOT, "tools"), model,
                                        ",".join(suffixes), str(amount), str(a.threads), sd])
            tj = json.loads(out_t.strip().splitlines()[-1])
            cur = (tj["prune_s"], wall_t, rss_t)
            best_t = cur if best_t is None else tuple(min(x, y) for x, y in zip(best_t, cur))
        n = len(r["sparsity"]["parameters"])
        prune_p, wall_p, rss_p = best_p
        tj["prune_s"], wall_t, rss_t = best_t
        if tj["targets"] != n:
            sys.exit(f"target counts differ: prunerd {n}, PyTorch {tj['targets']}")
        rows.append((title, n, prune_p, tj["prune_s"], wall_p, wall_t, rss_p, rss_t))
        print(f"\n{title}: {n} tensors")
        print(f"  pruning step: prunerd {prune_p:.3f} s, PyTorch {tj['prune_s']:.3f} s -> {tj['prune_s'] / prune_p:.1f}x")
        print(f"  whole process: prunerd {wall_p:.2f} s, PyTorch {wall_t:.2f} s -> {wall_t / wall_p:.2f}x")
        print(f"  peak RSS: prunerd {rss_p:.0f} MiB, PyTorch {rss_t:.0f} MiB -> {rss_t / rss_p:.2f}x")
        print(f"  prunerd pruning adds {rss_p - rss_ident:+.0f} MiB over load + save "
              f"({100 * (rss_p - rss_ident) / size_mib:+.1f}% of the model); load + prune + save is "
              f"{rss_p - rss_load:+.0f} MiB over loading alone ({100 * (rss_p - rss_load) / size_mib:+.1f}%)")
    print("\n| scenario | tensors | prune step prunerd | prune step PyTorch | speed-up | process prunerd | process PyTorch | peak RSS prunerd | peak RSS PyTorch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for title, n, pp, pt, wp, wt, rp, rt in rows:
        print(f"| {title} | {n} | {pp:.3f} s | {pt:.3f} s | {pt / pp:.1f}x | {wp:.2f} s | {wt:.2f} s | {rp:.0f} MiB | {rt:.0f} MiB |")
    if not a.keep:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
