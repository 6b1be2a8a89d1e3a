#!/usr/bin/env python3
"""bench_structured.py - forward latency of a structured job's smaller model against the dense one.

    .venv/bin/python bench/bench_structured.py [--prunerd build/server/prunerd] [--threads 2] [--batch 8] [--seq-len 128]
    .venv/bin/python bench/bench_structured.py --accuracy [--shared ../shared]

A bert-base-shaped BertForSequenceClassification (hidden 768, 12 layers, 12
heads, FFN 3072, vocab 21128, 10 labels, random weights) saved with
save_pretrained; `prunerd run` on it with method structured, magnitude
importance, no eval, and structured.latency at one batch x length: the job
times the dense model before it removes anything and the smaller one after
(20 runs after 3 warm-ups each, on the job's device and threads, in the same
process), so the ratio is measured in one run.  Two jobs: 50% of heads and
50% of neurons (goal >= 1.5x), and target.macs 0.6 (goal >= 1.3x).  Prints
p50 / p90 of each, the speed-up of p50, and what was kept.

--accuracy: instead, the shared model's weights as a torch.save state_dict
plus its config.json, and one job for each target.macs 0.8, 0.6, 0.4, each
importance (magnitude, taylor, fisher) and rescale off and on (18 jobs;
calibration: the first 2,048 titles of train.txt, batch 32, the file's
labels), evaluated on the 10,000 dev titles before and after; prints what
was kept, accuracy and macro-F1 before -> after (and after_mask, the smaller
model before its rescale factors), the latency speed-up at batch 8 x eval
max_length, the importance and rescale seconds and each job's wall time.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import torch
from transformers import BertConfig, BertForSequenceClassification

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def accuracy(a, tmp):
    model = os.path.join(a.shared, "models", "thucnews-bert-l4-h256.pt")
    data = os.path.join(a.shared, "data")
    if not os.path.exists(model):
        sys.exit(f"missing shared model: {model}")
    torch.save({k: v.float() for k, v in torch.jit.load(model).state_dict().items()},
               os.path.join(tmp, "bert20250521.pt"))
    shutil.copy(os.path.join(a.shared, "models", "thucnews-bert-l4-h256.config.json"),
                os.path.join(tmp, "config.json"))
    ev = {"data": os.path.join(data, "thucnews", "dev.txt"), "classes": os.path.join(data, "thucnews", "class.txt"),
          "vocab": os.path.join(data, "vocab", "bert-base-chinese-vocab.txt")}
    cal = {"data": os.path.join(data, "thucnews", "train.txt")}
    jobs = []
    for m in (0.8, 0.6, 0.4):
        for imp in ("magnitude", "taylor", "fisher"):
            for rescale in (False, True):
                st = {"target": {"macs": m}, "importance": imp, "rescale": rescale}
                if imp != "magnitude" or rescale:
                    st["calibration"] = cal
                jobs.append((f"macs {m}, {imp}{', rescale' if rescale else ''}", st))
    for name, st in jobs:
        job = {"model": "bert20250521.pt", "targets": ["bert.encoder.layer.*"], "method": "structured",
               "structured": st, "eval": ev, "outputs": ["state_dict"], "device": "cpu"}
        path, out = os.path.join(tmp, "job.json"), os.path.join(tmp, "out")
        with open(path, "w") as f:
            json.dump(job, f)
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.monotonic()
        subprocess.run([a.prunerd, "run", path, "--out-dir", out, "--threads", str(a.threads), "--quiet"], check=True)
        wall = time.monotonic() - t0
        r = json.load(open(os.path.join(out, "result.json")))
        s, m = r["structured"], r["metrics"]
        ups = ", ".join("%.2fx" % p["speedup"] for p in s["latency"]["points"])
        tm = r["timings"]
        mask = ""
        if "after_mask" in m:
            mask = f" (after_mask {m['after_mask']['accuracy']:.4f} / {m['after_mask']['macro_f1']:.4f})"
        print(f"{name}: heads {s['heads']['after']}/{s['heads']['before']}, neurons {s['neurons']['after']}/"
              f"{s['neurons']['before']}, MACs kept {s['encoder_macs']['kept']:.3f} at {s['seq_len']} tokens; "
              f"accuracy {m['before']['accuracy']:.4f} -> {m['after']['accuracy']:.4f}, macro-F1 "
              f"{m['before']['macro_f1']:.4f} -> {m['after']['macro_f1']:.4f}{mask}; speed-up {ups}; "
              f"importance {tm['importance_s']:.1f} s, rescale {tm.get('rescale_s', 0):.1f} s; job {wall:.0f} s",
              flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prunerd", default=os.path.join(ROOT, "build", "server", "prunerd"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--accuracy", action="store_true", help="the shared model on the dev set instead")
    ap.add_argument("--shared", default=os.environ.get("PRUNERD_SHARED", os.path.join(ROOT, "..", "shared")))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="prunerd-bench-structured-")
    try:
        if a.accuracy:
            accuracy(a, tmp)
            return 0
        cfg = BertConfig(vocab_size=21128, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                         intermediate_size=3072, max_position_embeddings=512, num_labels=10)
        torch.manual_seed(0)
        folder = os.path.join(tmp, "bert-base")
        BertForSequenceClassification(cfg).save_pretrained(folder)
        lat = {"batches": [a.batch], "seq_lens": [a.seq_len]}
        for name, st, goal in (("heads 0.5 + neurons 0.5", {"heads": 0.5, "neurons": 0.5}, 1.5),
                               ("target.macs 0.6", {"target": {"macs": 0.6, "seq_len": a.seq_len}}, 1.3)):
            job = {"model": folder, "targets": ["bert.encoder.layer.*"], "method": "structured",
                   "structured": dict(st, latency=lat), "device": "cpu"}
            path = os.path.join(tmp, "job.json")
            with open(path, "w") as f:
                json.dump(job, f)
            out = os.path.join(tmp, "out")
            shutil.rmtree(out, ignore_errors=True)
            subprocess.run([a.prunerd, "run", path, "--out-dir", out, "--threads", str(a.threads), "--quiet"],
                           check=True)
            res = json.load(open(os.path.join(out, "result.json")))
            r, tm = res["structured"], res["timings"]
            pt = r["latency"]["points"][0]
            d, p = pt["dense_ms"], pt["pruned_ms"]
            imp_s = tm["importance_s"] + tm["prune_s"] - tm.get("latency_s", 0)
            print(f"{name}: importance + choice + shrink {imp_s:.1f} s; heads {r['heads']['after']}/{r['heads']['before']}, neurons "
                  f"{r['neurons']['after']}/{r['neurons']['before']}, parameters kept {r['parameters']['kept']:.3f}, "
                  f"encoder MACs kept {r['encoder_macs']['kept']:.3f}; batch {pt['batch']} x {pt['seq_len']} tokens, "
                  f"{r['latency']['threads']} threads: dense p50 {d['p50']:.1f} ms (p90 {d['p90']:.1f}), pruned p50 "
                  f"{p['p50']:.1f} ms (p90 {p['p90']:.1f}) -> {pt['speedup']:.2f}x "
                  f"(goal >= {goal}x: {'met' if pt['speedup'] >= goal else 'NOT met'}); load average "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    sys.exit(main())
