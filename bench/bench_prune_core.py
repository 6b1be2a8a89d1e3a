#!/usr/bin/env python3
"""bench_prune_core.py - prunerd's pruning core vs PyTorch's global_unstructured on the
72 encoder Linear weights of bert-base (a micro benchmark, not a test).

Cases: (a) global L1 30% of the 12 query weights, (b) global L1 50% of all 72.
prunerd: tests/prune_driver times prune_apply alone and reports its peak RSS.
PyTorch: prune.global_unstructured + prune.remove on nn.Linear modules holding
the same weights, timed together, in a child process (its own peak RSS).
Both use 2 threads.  usage: bench_prune_core.py [BUILD_DIR] [--repeat N]
"""
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils import prune

THREADS = 2
HIDDEN, INTER, LAYERS = 768, 3072, 12
# per layer, as in BertLayer: query, key, value, attention.output.dense,
# intermediate.dense (3072x768), output.dense (768x3072); weight = out x in
PER_LAYER = [("query", HIDDEN, HIDDEN), ("key", HIDDEN, HIDDEN), ("value", HIDDEN, HIDDEN),
             ("attention_output", HIDDEN, HIDDEN), ("intermediate", INTER, HIDDEN),
             ("output", HIDDEN, INTER)]


def shapes():
    return [(f"layer{l}.{name}", o, i) for l in range(LAYERS) for name, o, i in PER_LAYER]


def cases():
    allw = shapes()
    return {"a": ([s for s in allw if s[0].endswith(".query")], 0.3),
            "b": (allw, 0.5)}


def torch_child(tmp, case):
    """Runs in a child: loads the weights into nn.Linear, times prune + remove."""
    torch.set_num_threads(THREADS)
    targets, amount = cases()[case]
    mods = []
    for name, o, i in targets:
        m = nn.Linear(i, o, bias=False)
        w = np.fromfile(os.path.join(tmp, name + ".bin"), dtype="<f4").reshape(o, i)
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(w))
        mods.append(m)
    params = [(m, "weight") for m in mods]
    t0 = time.perf_counter()
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    for m in mods:
        prune.remove(m, "weight")
    dt = (time.perf_counter() - t0) * 1e3
    zeros = sum(int((m.weight == 0).sum()) for m in mods)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open("/proc/self/status") as f:  # VmHWM: ru_maxrss keeps the parent's across exec
        for line in f:
            if line.startswith("VmHWM:"):
                rss = int(line.split()[1])
    print(f"elapsed_ms={dt:.3f} peak_rss_kb={rss} zeros={zeros}")


def parse(out):
    kv = dict(x.split("=", 1) for x in out.split())
    return float(kv["elapsed_ms"]), int(kv["peak_rss_kb"])


def main():
    if len(sys.argv) > 3 and sys.argv[1] == "--torch-child":
        return torch_child(sys.argv[2], sys.argv[3])
    args, repeat, argv = [], 3, sys.argv[1:]
    while argv:
        a = argv.pop(0)
        if a == "--repeat":
            repeat = int(argv.pop(0))
        else:
            args.append(a)
    build = args[0] if args else os.path.join(os.path.dirname(__file__), "..", "build")
    drv = os.path.join(build, "tests", "prune_driver")
    if not os.access(drv, os.X_OK):
        sys.exit(f"no prune_driver in {build}/tests: build first")

    with tempfile.TemporaryDirectory(prefix="prunerd-bench-core-") as tmp:
        g = torch.Generator().manual_seed(0)
        for name, o, i in shapes():
            (torch.randn(o, i, generator=g) * 0.02).numpy().astype("<f4").tofile(
                os.path.join(tmp, name + ".bin"))
        print(f"bert-base encoder Linear weights: {len(shapes())} tensors, "
              f"{sum(o * i for _, o, i in shapes())} entries; {THREADS} threads; "
              f"best of {repeat}")
        for case, (targets, amount) in cases().items():
            n = sum(o * i for _, o, i in targets)
            specs = [f"{os.path.join(tmp, nm + '.bin')}:/dev/null:{o}x{i}" for nm, o, i in targets]
            ours, theirs = [], []
            for _ in range(repeat):
                p = subprocess.run([drv, "--method", "l1_unstructured", "--scope", "global",
                                    "--amount", repr(amount), "--threads", str(THREADS)] + specs,
                                   capture_output=True, text=True, check=True)
                ours.append(parse(p.stdout.split(" pruned=")[0]))
                p = subprocess.run([sys.executable, __file__, "--torch-child", tmp, case],
                                   capture_output=True, text=True, check=True)
                theirs.append(parse(p.stdout.split(" zeros=")[0]))
            o_ms = min(t for t, _ in ours)
            t_ms = min(t for t, _ in theirs)
            print(f"({case}) global L1 {amount:.0%} of {len(targets)} weights ({n} entries):")
            print(f"    prunerd prune_apply   {o_ms:9.1f} ms  (median {statistics.median(t for t, _ in ours):.1f})"
                  f"  peak RSS {max(r for _, r in ours) / 1024:7.1f} MiB")
            print(f"    torch prune + remove  {t_ms:9.1f} ms  (median {statistics.median(t for t, _ in theirs):.1f})"
                  f"  peak RSS {max(r for _, r in theirs) / 1024:7.1f} MiB")
            print(f"    speed-up {t_ms / o_ms:.1f}x   (weights alone: {n * 4 / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
