#!/usr/bin/env python3
"""bench_sweep.py - what a sensitivity sweep costs, and whether its recommendation beats the uniform amount.

    .venv/bin/python bench/bench_sweep.py [--prunerd build/server/prunerd] [--shared ../shared]
                                          [--threads 2] [--limit 1000] [--sweep-limit 2000]
                                          [--sparsity 0.5 0.7]

1. Cost: `prunerd run` of a sweep of the shared model's 4 encoder layers x 9
   amounts (0.1 .. 0.9, every Linear weight of each layer) on the first
   --limit dev titles.  The job times its own load, tokenizing, the dense
   evaluation and the points, so the ratio is measured in one run:
   sweep seconds / (points x the dense evaluation's seconds); the goal is
   "no more than the evaluations plus one load", a ratio <= 1 (pruning and
   restoring a group is the difference).
2. Recommendation: a sweep on the first --sweep-limit dev titles with
   recommend.sparsity S, then the recommended job and the uniform job (every
   encoder Linear weight by S, scope local) on all 10,000 dev titles; prints
   their sparsity and accuracy / macro-F1 against the dense model's, for
   each S of --sparsity.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LINEARS = [f"bert.encoder.layer.*.{m}" for m in
           ("attention.self.query", "attention.self.key", "attention.self.value",
            "attention.output.dense", "intermediate.dense", "output.dense")]


def run(prunerd, tmp, name, req, threads):
    path = os.path.join(tmp, name + ".json")
    with open(path, "w") as f:
        json.dump(req, f)
    out = os.path.join(tmp, name)
    p = subprocess.run([prunerd, "run", path, "--out-dir", out, "--quiet", "--threads", str(threads)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"bench_sweep: {name} failed ({p.returncode}): {p.stderr.strip()}")
    with open(os.path.join(out, "result.json")) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prunerd", default=os.path.join(ROOT, "build", "server", "prunerd"))
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--sweep-limit", type=int, default=2000)
    ap.add_argument("--sparsity", type=float, nargs="*", default=[0.5, 0.7])
    a = ap.parse_args()
    shared = os.path.realpath(a.shared)
    model = os.path.join(shared, "models", "thucnews-bert-l4-h256.pt")
    if not os.path.isfile(model):
        sys.exit(f"bench_sweep: the shared model {model} is missing (--shared)")

    def ev(limit):
        d = os.path.join(shared, "data")
        e = {"data": os.path.join(d, "thucnews", "dev.txt"),
             "vocab": os.path.join(d, "vocab", "bert-base-chinese-vocab.txt"),
             "classes": os.path.join(d, "thucnews", "class.txt")}
        if limit:
            e["limit"] = limit
        return e

    tmp = tempfile.mkdtemp(prefix="bench-sweep-")
    try:
        req = {"kind": "sweep", "model": model, "targets": LINEARS, "eval": ev(a.limit)}
        r = run(a.prunerd, tmp, "cost", req, a.threads)
        t = r["timings"]
        n = len(r["points"])
        evals = n * t["eval_before_s"]
        print(f"cost: {len(r['sweep']['groups'])} groups x {len(r['sweep']['amounts'])} amounts = {n} points "
              f"on {a.limit} titles, {a.threads} threads")
        print(f"  load {t['load_s']:.2f} s (tokenize {t['tokenize_s']:.2f} s), dense evaluation "
              f"{t['eval_before_s']:.3f} s, sweep {t['sweep_s']:.2f} s")
        print(f"  sweep / ({n} x the dense evaluation) = {t['sweep_s'] / evals:.3f} (goal <= 1); "
              f"whole job / ({n + 1} evaluations + load) = "
              f"{(t['load_s'] + t['eval_before_s'] + t['sweep_s']) / (evals + t['eval_before_s'] + t['load_s']):.3f}")
        for g in r["sweep"]["groups"]:
            pts = [p for p in r["points"] if p["group"] == g["group"]]
            print(f"  {g['group']}: sensitivity {g['sensitivity']:+.4f}, accuracy at "
                  + " ".join(f"{p['amount']:.1f}:{p['accuracy']:.3f}" for p in pts))

        for sp in a.sparsity:
            req = {"kind": "sweep", "model": model, "targets": LINEARS, "eval": ev(a.sweep_limit),
                   "recommend": {"sparsity": sp}, "name": f"rec{sp}"}
            r = run(a.prunerd, tmp, f"sweep{sp}", req, a.threads)
            rec = r["recommendation"]
            job = dict(rec["request"], eval=ev(0))
            rj = run(a.prunerd, tmp, f"rec{sp}", job, a.threads)
            uni = dict(job, targets=LINEARS, amount=sp, name=f"uniform{sp}")
            uj = run(a.prunerd, tmp, f"uni{sp}", uni, a.threads)
            d = rj["metrics"]["before"]
            print(f"sparsity {sp} of every encoder Linear weight (swept on the first {a.sweep_limit} dev "
                  f"titles, scored on all 10,000):")
            print("  amounts " + ", ".join(f"{k.rsplit('.', 1)[1]}: {v:.3f}" for k, v in rec["amounts"].items())
                  + f"; predicted accuracy {rec['predicted_accuracy']:.4f}")
            for name, x in (("dense", {"metrics": {"after": d}, "sparsity": {"targets": 0.0}}),
                            ("recommended", rj), ("uniform", uj)):
                m = x["metrics"]["after"]
                print(f"  {name:12s} sparsity {x['sparsity']['targets']:.6f}  accuracy {m['accuracy']:.4f}  "
                      f"macro-F1 {m['macro_f1']:.4f}")
            diff = rj["metrics"]["after"]["accuracy"] - uj["metrics"]["after"]["accuracy"]
            print(f"  recommended - uniform: {diff * 100:+.2f} points of accuracy")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
