#!/usr/bin/env python3
"""check_transformers4.py - which transformers loads a structured job's result natively.

    tools/check_transformers4.sh [build/server/prunerd]

(the shell script puts transformers 4.57 ahead of the venv's transformers 5
on PYTHONPATH and runs this twice, once with each).  The shared model's
weights, fc.* renamed classifier.*, as a state_dict plus a config.json
naming BertForSequenceClassification; two `prunerd run` jobs with method
structured: heads 0.25 only, and heads 0.25 + neurons 0.25.  For each saved
safetensors folder, BertForSequenceClassification.from_pretrained(folder)
with the transformers on the path: whether it loads without a mismatch or
a missing / unexpected weight, and if it does, its largest logit difference
from clients/python/prunerd_model.py's model of the same folder on 16 dev
titles.  Prints one line per folder; exits 0 whatever the answer (it reports,
it does not gate).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "clients", "python"))
import prunerd_model  # noqa: E402
import transformers  # noqa: E402
from transformers import BertForSequenceClassification, BertTokenizer  # noqa: E402


def main():
    prunerd = sys.argv[1] if len(sys.argv) > 1 else "build/server/prunerd"
    shared = os.environ.get("PRUNERD_SHARED", os.path.join(HERE, "..", "..", "shared"))
    model = os.path.join(shared, "models", "thucnews-bert-l4-h256.pt")
    if not os.path.exists(model):
        sys.exit(f"missing shared model: {model} (set PRUNERD_SHARED)")
    data = os.path.join(shared, "data")
    vocab = os.path.join(data, "vocab", "bert-base-chinese-vocab.txt")
    tmp = tempfile.mkdtemp(prefix="prunerd-tf4-")
    try:
        sd = {("classifier." + k[3:] if k.startswith("fc.") else k): v.float()
              for k, v in torch.jit.load(model).state_dict().items()}
        torch.save(sd, os.path.join(tmp, "model.pt"))
        cfg = json.load(open(os.path.join(shared, "models", "thucnews-bert-l4-h256.config.json")))
        cfg["architectures"] = ["BertForSequenceClassification"]
        json.dump(cfg, open(os.path.join(tmp, "config.json"), "w"))
        titles = [ln.split("\t")[0] for ln in open(os.path.join(data, "thucnews", "dev.txt"), encoding="utf-8")][:16]
        # positional: transformers 4 calls it vocab_file, 5 vocab
        enc = BertTokenizer(vocab, do_lower_case=True)(titles, max_length=32, padding="max_length",
                                                             truncation=True, return_tensors="pt")
        print(f"transformers {transformers.__version__}")
        for name, st in (("heads 0.25", {"heads": 0.25}), ("heads 0.25 + neurons 0.25", {"heads": 0.25, "neurons": 0.25})):
            job = {"model": "model.pt", "model_config": "config.json", "targets": ["bert.encoder.layer.*"],
                   "method": "structured", "structured": dict(st, latency={"batches": [1], "seq_lens": [8]}),
                   "outputs": ["safetensors"], "device": "cpu"}
            path, out = os.path.join(tmp, "job.json"), os.path.join(tmp, "out")
            json.dump(job, open(path, "w"))
            shutil.rmtree(out, ignore_errors=True)
            subprocess.run([prunerd, "run", path, "--out-dir", out, "--quiet"], check=True, stdout=subprocess.DEVNULL)
            folder = os.path.join(out, "safetensors")
            with torch.no_grad():
                want = prunerd_model.load(folder)(enc["input_ids"], enc["attention_mask"])
            try:
                m, info = BertForSequenceClassification.from_pretrained(folder, output_loading_info=True)
            except Exception as e:  # a shape mismatch is an error in both versions
                print(f"{name}: does not load: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
                continue
            bad = {k: v for k, v in info.items() if v}
            if bad:
                print(f"{name}: loads, but not as saved: " + "; ".join(f"{k} {len(v)}: {sorted(map(str, v))[:3]}"
                                                                       for k, v in bad.items()))
                continue
            m.eval()
            with torch.no_grad():
                got = m(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
            d = float((got - want).abs().max())
            print(f"{name}: loads natively; max |logit diff| against prunerd_model {d:.3g}, "
                  f"predictions {'equal' if torch.equal(got.argmax(1), want.argmax(1)) else 'differ'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
