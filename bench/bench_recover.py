#!/usr/bin/env python3
"""bench_recover.py - winning the accuracy back: prune, then one epoch of recovery, and a step's cost.

    .venv/bin/python bench/bench_recover.py [--prunerd build/server/prunerd] [--shared ../shared]
        [--amounts 0.7,0.9] [--epochs 1] [--steps N] [--quick-steps 40] [--skip-jobs]

On the shared model (its weights as a state_dict, its config.json with the
training dropout 0.1), global L1 of every encoder Linear weight (query, key,
value and the three dense layers of each layer) at each --amount, then the
recover stage for --epochs of train.txt (batch 32, lr 2e-5, warm-up 0.06,
weight decay 0.01, max_length 32), without and with distillation (T 2,
alpha 0.5), each one `prunerd run`.  Prints the dev accuracy (all 10,000
titles) before, after pruning and after recovery, and the time per step.

Then the cost of a step against PyTorch in the same run: --quick-steps steps
of the same training (same batches, dropout 0.1) by `prunerd run` and by
PyTorch (transformers' BertModel + fc, torch.nn.utils.prune, torch.optim.AdamW,
clip_grad_norm_), alternated twice, at the same thread count; prints each
time per step, the best of each and the ratio (PyTorch / prunerd), and each
one's peak RSS.
"""
import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TARGETS = ["bert.encoder.layer.*.query", "bert.encoder.layer.*.key", "bert.encoder.layer.*.value",
           "bert.encoder.layer.*.dense"]


def job_for(tmp, shared, amount, recover):
    r = {"data": os.path.join(shared, "data", "thucnews", "train.txt"), "checkpoint_every": 0}
    r.update(recover)
    return {"model": os.path.join(tmp, "model.pt"), "model_config": os.path.join(tmp, "config.json"),
            "targets": TARGETS, "method": "l1_unstructured", "amount": amount, "scope": "global",
            "eval": {"data": os.path.join(shared, "data", "thucnews", "dev.txt"),
                     "vocab": os.path.join(shared, "data", "vocab", "bert-base-chinese-vocab.txt"),
                     "classes": os.path.join(shared, "data", "thucnews", "class.txt")},
            "recover": r, "outputs": ["state_dict"], "options": {"seed": 1}}


def run_job(prunerd, tmp, name, job):
    path = os.path.join(tmp, name + ".json")
    with open(path, "w") as f:
        json.dump(job, f)
    out = os.path.join(tmp, name + ".out")
    t = time.time()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", prunerd, "run", path, "--out-dir", out, "--quiet"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{name}: prunerd exited {p.returncode}: {p.stderr.strip()}")
    with open(os.path.join(out, "result.json")) as f:
        r = json.load(f)
    rss_kb = int(p.stderr.strip().splitlines()[-1])
    return r, time.time() - t, rss_kb


def torch_steps(shared, tmp, steps, threads):
    """PyTorch's time per step for the same training; in a child so its RSS is its own."""
    code = f"""
import json, math, os, resource, sys, time
import torch, torch.nn as nn, torch.nn.functional as F, torch.nn.utils.prune as prune
from transformers import BertConfig, BertModel, BertTokenizer, get_linear_schedule_with_warmup
torch.set_num_threads({threads})
torch.manual_seed(1)
class M(nn.Module):
    def __init__(s, c, n):
        super().__init__(); s.bert = BertModel(c); s.fc = nn.Linear(c.hidden_size, n)
    def forward(s, i, a):
        return s.fc(s.bert(input_ids=i, attention_mask=a).pooler_output)
sd = torch.load({os.path.join(tmp, "model.pt")!r})
cfg = BertConfig.from_json_file({os.path.join(tmp, "config.json")!r}); cfg._attn_implementation = "sdpa"
m = M(cfg, sd["fc.weight"].shape[0]); m.load_state_dict(sd)
lin = [(mod, "weight") for n, mod in m.named_modules() if isinstance(mod, nn.Linear) and n.startswith("bert.encoder.layer.")]
prune.global_unstructured(lin, pruning_method=prune.L1Unstructured, amount=0.7)
m.train()
dec = [p for n, p in m.named_parameters() if not (n.endswith(".bias") or "LayerNorm." in n)]
nod = [p for n, p in m.named_parameters() if n.endswith(".bias") or "LayerNorm." in n]
opt = torch.optim.AdamW([{{"params": dec, "weight_decay": 0.01}}, {{"params": nod, "weight_decay": 0.0}}], lr=2e-5)
sch = get_linear_schedule_with_warmup(opt, math.ceil(0.06 * {steps}), {steps})
tok = BertTokenizer({os.path.join(shared, "data", "vocab", "bert-base-chinese-vocab.txt")!r})
rows = [l.rstrip("\\n").split("\\t") for _, l in zip(range(32 * {steps}), open({os.path.join(shared, "data", "thucnews", "train.txt")!r}, encoding="utf-8"))]
enc = tok([t for t, _ in rows], padding="max_length", truncation=True, max_length=32, return_tensors="pt")
y = torch.tensor([int(l) for _, l in rows])
t0 = time.perf_counter()
for s in range({steps}):
    sl = slice(32 * s, 32 * s + 32)
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(m(enc["input_ids"][sl], enc["attention_mask"][sl]), y[sl])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    opt.step(); sch.step()
dt = (time.perf_counter() - t0) / {steps}
print(json.dumps({{"time_per_step_s": dt, "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("the PyTorch reference failed: " + p.stderr[-2000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prunerd", default=os.path.join(ROOT, "build", "server", "prunerd"))
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--amounts", default="0.7,0.9")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--steps", type=int, default=0, help="recover steps instead of epochs (a quick look)")
    ap.add_argument("--quick-steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--skip-jobs", action="store_true", help="only the step cost against PyTorch")
    a = ap.parse_args()
    import torch
    shared = os.path.abspath(a.shared)
    with tempfile.TemporaryDirectory(prefix="prunerd-bench-recover-") as tmp:
        sd = {k: v.float() for k, v in torch.jit.load(os.path.join(shared, "models", "thucnews-bert-l4-h256.pt"))
              .state_dict().items()}
        torch.save(sd, os.path.join(tmp, "model.pt"))
        cfg = json.load(open(os.path.join(shared, "models", "thucnews-bert-l4-h256.config.json")))
        json.dump(cfg, open(os.path.join(tmp, "config.json"), "w"))
        print(f"prunerd {a.prunerd}, {a.threads} threads, dropout {cfg.get('hidden_dropout_prob')} "
              f"(hidden) {cfg.get('attention_probs_dropout_prob')} (attention)", flush=True)
        if not a.skip_jobs:
            rec = {"steps": a.steps} if a.steps else {"epochs": a.epochs}
            print("| amount | distill | dense acc | after pruning | after recovery | steps | time/step (s) | "
                  "job wall (s) |", flush=True)
            print("|---|---|---|---|---|---|---|---|", flush=True)
            for amount in [float(x) for x in a.amounts.split(",")]:
                for distill in (False, True):
                    r2 = dict(rec, distill={"temperature": 2.0, "alpha": 0.5} if distill else None)
                    name = f"a{amount}-{'kd' if distill else 'ce'}"
                    r, wall, _ = run_job(a.prunerd, tmp, name, job_for(tmp, shared, amount, r2))
                    m, rc = r["metrics"], r["recovery"]
                    print(f"| {amount:.0%} | {'T 2, alpha 0.5' if distill else 'no'} | "
                          f"{m['before']['accuracy']:.4f} | {m['after_pruning']['accuracy']:.4f} | "
                          f"{m['after_recovery']['accuracy']:.4f} | {rc['steps']} | {rc['time_per_step_s']:.4f} | "
                          f"{wall:.0f} |", flush=True)
        # the cost of a step against PyTorch, alternated
        n = a.quick_steps
        mine, ref = [], []
        for rep in range(2):
            r, _, rss = run_job(a.prunerd, tmp, f"quick{rep}",
                                dict(job_for(tmp, shared, 0.7, {"steps": n, "shuffle": False, "warmup": 0.06}),
                                     eval={**job_for(tmp, shared, 0.7, {})["eval"], "limit": 32}))
            mine.append((r["recovery"]["time_per_step_s"], rss))
            ref.append(torch_steps(shared, tmp, n, a.threads))
            print(f"run {rep + 1}: prunerd {mine[-1][0]:.4f} s/step (job peak RSS {rss / 1024:.0f} MiB), "
                  f"PyTorch {ref[-1]['time_per_step_s']:.4f} s/step (peak RSS {ref[-1]['rss_kb'] / 1024:.0f} MiB)",
                  flush=True)
        bm, br = min(x[0] for x in mine), min(x["time_per_step_s"] for x in ref)
        print(f"best of 2, {n} steps of batch 32 x 32 tokens: prunerd {bm:.4f} s/step, PyTorch {br:.4f} s/step, "
              f"PyTorch / prunerd = {br / bm:.2f}; peak RSS prunerd {min(x[1] for x in mine) / 1024:.0f} MiB "
              f"(the whole job: load, eval of 32 titles, prune, train, save), PyTorch "
              f"{min(x['rss_kb'] for x in ref) / 1024:.0f} MiB (Python, transformers, the model, the training)")


if __name__ == "__main__":
    main()
