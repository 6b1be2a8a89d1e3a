#!/usr/bin/env python3
"""bench_structured.py - forward latency of a structured job's smaller model against the dense one.

    .venv/bin/python bench/bench_structured.py [--prunerd build/server/prunerd] [--threads 2] [--batch 8] [--seq-len 128]

A bert-base-shaped BertForSequenceClassification (hidden 768, 12 layers, 12
heads, FFN 3072, vocab 21128, 10 labels, random weights) saved with
save_pretrained; `prunerd run` on it with method structured, magnitude
importance, no eval, and structured.latency at one batch x length: the job
times the dense model before it removes anything and the smaller one after
(20 runs after 3 warm-ups each, on the job's device and threads, in the same
process), so the ratio is measured in one run.  Two jobs: 50% of heads and
50% of neurons (goal >= 1.5x), and target.macs 0.6 (goal >= 1.3x).  Prints
p50 / p90 of each, the speed-up of p50, and what was kept.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from transformers import BertConfig, BertForSequenceClassification

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prunerd", default=os.path.join(ROOT, "build", "server", "prunerd"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=128)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="prunerd-bench-structured-")
    try:
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
            r = json.load(open(os.path.join(out, "result.json")))["structured"]
            pt = r["latency"]["points"][0]
            d, p = pt["dense_ms"], pt["pruned_ms"]
            print(f"{name}: heads {r['heads']['after']}/{r['heads']['before']}, neurons "
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
