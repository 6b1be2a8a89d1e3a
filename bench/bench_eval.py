#!/usr/bin/env python3
"""bench_eval.py - evaluation throughput of prunerd against a Python loop, on the 10,000 dev titles.

    .venv/bin/python bench/bench_eval.py [--prunerd build/server/prunerd] [--threads 2] [--batch-size 256]

Python side: torch.jit.load of the shared model, the reference tokenizer's
pure-Python algorithm (bench/py_bert_tokenizer.py), batches of the same size
padded to 32, forward under inference mode.  prunerd side: `prunerd eval`
with padding exact and dynamic (tokenize + forward from its report).  Both
include tokenization.  Prints samples/s and ratios, and how many predictions
differ (dynamic padding may only move predictions whose top-two logits are
within 1e-4).
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
sys.path.insert(0, HERE)

import torch  # noqa: E402
from py_bert_tokenizer import BertTokenizer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prunerd", default=os.path.join(ROOT, "build", "server", "prunerd"))
    ap.add_argument("--shared", default=os.environ.get("PRUNERD_SHARED", os.path.join(ROOT, "..", "shared")))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    a = ap.parse_args()
    model = os.path.join(a.shared, "models", "thucnews-bert-l4-h256.pt")
    dev = os.path.join(a.shared, "data", "thucnews", "dev.txt")
    vocab = os.path.join(a.shared, "data", "vocab", "bert-base-chinese-vocab.txt")
    classes = os.path.join(a.shared, "data", "thucnews", "class.txt")
    for p in (model, dev, vocab, classes):
        if not os.path.exists(p):
            sys.exit(f"missing shared data: {p}")
    torch.set_num_threads(a.threads)
    titles = [line.rstrip("\n").rsplit("\t", 1)[0] for line in open(dev, encoding="utf-8") if line.strip()]
    n, L, B = len(titles), 32, a.batch_size

    tok = BertTokenizer(vocab, lower=True)
    t0 = time.monotonic()
    for s in titles:
        tok.tokenize_ids(s)
    py_tok_s = time.monotonic() - t0

    m = torch.jit.load(model)
    preds, logits = [], []
    t0 = time.monotonic()
    with torch.inference_mode():
        for start in range(0, n, B):
            batch = titles[start:start + B]
            ids = torch.zeros(len(batch), L, dtype=torch.long)
            mask = torch.zeros(len(batch), L, dtype=torch.long)
            for i, s in enumerate(batch):
                row = [101] + tok.tokenize_ids(s)[: L - 2] + [102]
                ids[i, : len(row)] = torch.tensor(row)
                mask[i, : len(row)] = 1
            out = m(ids, mask)
            logits.append(out)
            preds.append(out.argmax(1))
    py_s = time.monotonic() - t0
    py_logits = torch.cat(logits)
    py_pred = torch.cat(preds)

    tmp = tempfile.mkdtemp(prefix="prunerd-bench-eval-")
    res = {}
    for pad in ("exact", "dynamic"):
        rep, lg = os.path.join(tmp, f"{pad}.json"), os.path.join(tmp, f"{pad}.f32")
        subprocess.run([a.prunerd, "eval", model, "--data", dev, "--vocab", vocab, "--classes", classes,
                        "--batch-size", str(B), "--padding", pad, "--threads", str(a.threads),
                        "--report", rep, "--logits", lg], check=True, stdout=subprocess.DEVNULL)
        r = json.load(open(rep))
        ours = torch.frombuffer(bytearray(open(lg, "rb").read()), dtype=torch.float32).view(n, -1)
        top2 = py_logits.topk(2, dim=1).values
        noise = (top2[:, 0] - top2[:, 1]) < 1e-4
        differ = ours.argmax(1) != py_pred
        res[pad] = (r, int(differ.sum()), int((differ & ~noise).sum()))

    c_tok_s = res["exact"][0]["timings"]["tokenize_s"]
    print(f"{n} dev titles, batch {B}, threads {a.threads}")
    print(f"tokenization: Python {py_tok_s:.3f} s ({n / py_tok_s:,.0f} titles/s), prunerd {c_tok_s:.4f} s "
          f"({n / c_tok_s:,.0f} titles/s) -> {py_tok_s / c_tok_s:.0f}x")
    print(f"Python loop (tokenize + forward): {py_s:.2f} s, {n / py_s:,.0f} samples/s")
    for pad in ("exact", "dynamic"):
        r, differ, outside = res[pad]
        sps = r["metrics"]["samples_per_s"]
        print(f"prunerd eval --padding {pad}: {sps:,.0f} samples/s -> {sps / (n / py_s):.2f}x the Python loop; "
              f"accuracy {r['metrics']['accuracy']:.4f}, macro-F1 {r['metrics']['macro_f1']:.4f}; "
              f"{differ} predictions differ from Python's, {outside} outside 1e-4 margins")


if __name__ == "__main__":
    main()
