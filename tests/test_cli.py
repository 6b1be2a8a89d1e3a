#!/usr/bin/env python3
"""test_cli.py - prunerd prune / eval / run on the shared model, PyTorch as the oracle."""
import json
import os
import shutil
import sys
import tempfile

from oracle import (Tally, dev_labels, encode, golden_ids, logits_of, prunerd, shared,
                    tie_aware_compare)

try:
    import torch
    import torch.nn.utils.prune as prune
    from make_bert import BertClassifier
except ImportError as e:
    print(f"FAIL PyTorch is not importable ({e}): run under meson test, whose Python (.venv) has torch")
    raise SystemExit(1)

t = Tally("test_cli")
MODEL = shared("models", "thucnews-bert-l4-h256.pt")
DEV = shared("data", "thucnews", "dev.txt")
VOCAB = shared("data", "vocab", "bert-base-chinese-vocab.txt")
CLASSES = shared("data", "thucnews", "class.txt")
QUERY = "bert.encoder.layer.*.attention.self.query"
tmp = tempfile.mkdtemp(prefix="prunerd-test-cli-")
torch.set_num_threads(2)


def eager():
    m = BertClassifier(layers=4, hidden=256, heads=4, ffn=1024, max_pos=64).eval()
    m.load_state_dict(torch.jit.load(MODEL).state_dict())
    return m


def modules_of(m, suffix):
    return [(mod, "weight") for name, mod in m.named_modules() if name.endswith(suffix)]


def test_global_l1_query():
    out, sd, rep = (os.path.join(tmp, f) for f in ("g.pt", "g.pth", "g.json"))
    prunerd("prune", MODEL, "--out", out, "--state-dict", sd, "--report", rep, "--method",
            "l1_unstructured", "--amount", "0.3", "--scope", "global", "--target", QUERY)
    ref = eager()
    params = modules_of(ref, "attention.self.query")
    scores = torch.cat([m.weight.detach().abs().flatten() for m, _ in params])
    k = round(0.3 * scores.numel())
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=0.3)
    for m, n in params:
        prune.remove(m, n)
    ours = torch.jit.load(out)
    osd, rsd = ours.state_dict(), ref.state_dict()
    mine = torch.cat([osd[f"bert.encoder.layer.{i}.attention.self.query.weight"].flatten() for i in range(4)])
    theirs = torch.cat([rsd[f"bert.encoder.layer.{i}.attention.self.query.weight"].flatten() for i in range(4)])
    ties = tie_aware_compare(t, "global l1 30% query", mine, theirs, scores, k)
    print(f"global l1 30% query: {int((mine == 0).sum())} pruned, {ties} tie positions differ")
    untouched = [n for n in rsd if "self.query.weight" not in n]
    t.check(all(torch.equal(osd[n], rsd[n]) for n in untouched), "non-targets changed")
    # The TorchScript output runs in Python; the state_dict loads into an eager model.
    ids, mask = encode(golden_ids(limit=8))
    with torch.no_grad():
        t.check(torch.allclose(ours(ids, mask), ref(ids, mask), atol=1e-5), "pruned TorchScript logits differ")
    e = BertClassifier(layers=4, hidden=256, heads=4, ffn=1024, max_pos=64)
    state = torch.load(sd)
    t.check(str(e.load_state_dict(state)) == "<All keys matched successfully>", "state_dict did not load")
    t.check(all(torch.equal(state[n], osd[n]) for n in osd), "state_dict differs from the TorchScript")
    r = json.load(open(rep))
    sp = r["sparsity"]
    t.check(abs(sp["targets"] - 0.3) < 1e-4, f"targets sparsity {sp['targets']}")
    t.check([p["name"] for p in sp["parameters"]] ==
            [f"bert.encoder.layer.{i}.attention.self.query.weight" for i in range(4)], "parameters list")
    t.check([layer["layer"] for layer in sp["layers"]] == [0, 1, 2, 3], "layers list")
    t.check(set(r["timings"]) >= {"load_s", "prune_s", "save_s"}, f"timings {r['timings']}")
    arts = {a["format"]: a for a in r["artifacts"]}
    import hashlib
    t.check(arts["torchscript"]["sha256"] == hashlib.sha256(open(out, "rb").read()).hexdigest(), "sha256")
    t.check(arts["state_dict"]["bytes"] == os.path.getsize(sd), "artifact bytes")
    pv = r["provenance"]
    t.check(pv["request"]["scope"] == "global" and pv["request"]["amount_kind"] == "fraction", "provenance request")
    t.check(pv["versions"]["libtorch"].startswith("1.13") or pv["versions"]["libtorch"][0] == "2", "libtorch version")
    t.check(len(pv["inputs"]["model"]["sha256"]) == 64, "input sha256")


def test_local_methods():
    """The tutorial's "multiple parameters" (local) with several methods."""
    cases = [
        (["--method", "l1_unstructured", "--amount", "0.2"], "attention.self.key",
         lambda m: prune.l1_unstructured(m, "weight", amount=0.2)),
        (["--method", "ln_structured", "--amount", "0.5", "--n", "2", "--dim", "0"], "intermediate.dense",
         lambda m: prune.ln_structured(m, "weight", amount=0.5, n=2, dim=0)),
        (["--method", "ln_structured", "--amount", "3", "--n", "inf", "--dim", "1"], "attention.output.dense",
         lambda m: prune.ln_structured(m, "weight", amount=3, n=float("inf"), dim=1)),
        (["--method", "l1_unstructured", "--amount", "1"], "attention.self.value",
         lambda m: prune.l1_unstructured(m, "weight", amount=1)),
        (["--method", "l1_unstructured", "--amount", "1.0"], "pooler.dense",
         lambda m: prune.l1_unstructured(m, "weight", amount=1.0)),
    ]
    for i, (args, suffix, fn) in enumerate(cases):
        out = os.path.join(tmp, f"local{i}.pt")
        prunerd("prune", MODEL, "--out", out, "--target", f"*{suffix}", *args)
        ref = eager()
        for m, _ in modules_of(ref, suffix):
            fn(m)
            prune.remove(m, "weight")
        osd, rsd = torch.jit.load(out).state_dict(), ref.state_dict()
        names = [n for n in rsd if n.endswith(suffix + ".weight")]
        t.check(len(names) > 0, f"{suffix}: no targets")
        for n in names:
            same = torch.equal(osd[n] == 0, rsd[n] == 0) and torch.equal(osd[n][osd[n] != 0], rsd[n][rsd[n] != 0])
            t.check(same, f"{' '.join(args)} on {n}: pruned {int((osd[n] == 0).sum())}, PyTorch {int((rsd[n] == 0).sum())}")


def test_other_methods():
    """threshold, custom_from_mask, the foobar plugin, random_unstructured and
    iterative pruning on the shared model, each against PyTorch."""
    fc = "fc.weight"
    orig = eager().state_dict()
    w = orig[fc]

    def pruned(name, *args):
        out = os.path.join(tmp, f"{name}.pt")
        prunerd("prune", MODEL, "--out", out, "--target", "fc", *args)
        return torch.jit.load(out).state_dict()[fc]

    def same(name, ours, mask):
        ref = w * mask
        t.check(torch.equal(ours == 0, ref == 0) and torch.equal(ours[ours != 0], ref[ref != 0]),
                f"{name}: pruned {int((ours == 0).sum())}, PyTorch {int((ref == 0).sum())}")

    thr = float(w.abs().median())
    same("threshold", pruned("thr", "--method", "threshold", "--threshold", repr(thr)), (w.abs() >= thr).float())

    gen = torch.Generator().manual_seed(7)
    mask = (torch.rand(w.shape, generator=gen) > 0.4)
    maskfile = os.path.join(tmp, "masks.pth")
    torch.save({fc: mask}, maskfile)
    ref = torch.nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        ref.weight.copy_(w)
    prune.custom_from_mask(ref, "weight", mask)
    prune.remove(ref, "weight")
    same("custom_from_mask", pruned("mask", "--method", "custom_from_mask", "--mask", maskfile),
         (ref.weight.detach() != 0).float())

    plugin_dir = os.path.join(os.environ.get("PRUNERD_BUILD", os.path.join(os.path.dirname(__file__), "..", "build")), "plugins")
    foobar = torch.ones_like(w).flatten()
    foobar[::2] = 0  # the tutorial's FooBarPruningMethod
    same("plugin foobar", pruned("foobar", "--method", "plugin", "--plugin", "foobar", "--plugin-dir", plugin_dir),
         foobar.view_as(w))

    a = pruned("rand-a", "--method", "random_unstructured", "--amount", "100", "--seed", "5")
    b = pruned("rand-b", "--method", "random_unstructured", "--amount", "100", "--seed", "5")
    c = pruned("rand-c", "--method", "random_unstructured", "--amount", "100", "--seed", "6")
    t.check(int((a == 0).sum()) == 100 and torch.equal(a, b) and not torch.equal(a, c),
            f"random_unstructured: {int((a == 0).sum())} pruned; the same seed {'reproduces' if torch.equal(a, b) else 'differs'}")

    # Iterative: 50% then 50% of what remains = PyTorch pruning the module twice.
    once = os.path.join(tmp, "once.pt")
    twice = os.path.join(tmp, "twice.pt")
    prunerd("prune", MODEL, "--out", once, "--target", "fc", "--method", "l1_unstructured", "--amount", "0.5")
    prunerd("prune", once, "--out", twice, "--target", "fc", "--method", "l1_unstructured", "--amount", "0.5",
            "--iterative")
    ref = torch.nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        ref.weight.copy_(w)
    prune.l1_unstructured(ref, "weight", amount=0.5)
    prune.l1_unstructured(ref, "weight", amount=0.5)
    prune.remove(ref, "weight")
    same("iterative l1 50% twice", torch.jit.load(twice).state_dict()[fc], (ref.weight.detach() != 0).float())


def test_float16():
    """float16 weights are pruned through a float32 copy and stay float16 (PyTorch's
    topk has no CPU float16 kernel: the oracle prunes float32 copies)."""
    import subprocess
    half, out = os.path.join(tmp, "half.pt"), os.path.join(tmp, "half-pruned.pt")
    tools = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "make_bert.py")
    subprocess.run([sys.executable, tools, half, "--dtype", "float16"], check=True, capture_output=True)
    prunerd("prune", half, "--out", out, "--method", "l1_unstructured", "--amount", "0.3",
            "--scope", "global", "--target", QUERY)
    before, after = torch.jit.load(half).state_dict(), torch.jit.load(out).state_dict()
    names = [n for n in before if n.endswith("attention.self.query.weight")]
    t.check(all(after[n].dtype == torch.float16 for n in names), "float16 parameters stay float16")
    holders = []
    for n in names:
        h = torch.nn.Module()
        h.weight = torch.nn.Parameter(before[n].float())
        holders.append(h)
    scores = torch.cat([h.weight.detach().abs().flatten() for h in holders])
    prune.global_unstructured([(h, "weight") for h in holders], pruning_method=prune.L1Unstructured, amount=0.3)
    for h in holders:
        prune.remove(h, "weight")
    mine = torch.cat([after[n].float().flatten() for n in names])
    theirs = torch.cat([h.weight.detach().flatten() for h in holders])
    ties = tie_aware_compare(t, "float16 global l1 30%", mine, theirs, scores, round(0.3 * scores.numel()))
    print(f"float16 global l1 30%: {int((mine == 0).sum())} pruned, {ties} tie positions differ")


def test_bad_input():
    out = os.path.join(tmp, "bad.pt")
    cases = [
        (["--target", "nothing.matches.*", "--method", "l1_unstructured", "--amount", "0.3"], "matches no parameter"),
        (["--target", QUERY, "--method", "l1_unstructured", "--amount", "-0.1"], "amount"),
        (["--target", QUERY, "--method", "l1_unstructured", "--amount", "1.5"], "amount"),
        (["--target", QUERY, "--method", "l1_unstructured", "--amount", "70000"], "smaller than"),
        (["--target", QUERY, "--method", "ln_structured", "--n", "2", "--amount", "0.3", "--scope", "global"], "global"),
        (["--target", QUERY, "--method", "no_such_method", "--amount", "0.3"], "--method"),
    ]
    for args, words in cases:
        p = prunerd("prune", MODEL, "--out", out, *args, check=False)
        line = p.stderr.strip()
        t.check(p.returncode == 2, f"{args}: exit {p.returncode}, stderr {line!r}")
        t.check(words in line and "\n" not in line, f"{args}: message {line!r} lacks {words!r}")
        t.check(not os.path.exists(out), f"{args}: wrote {out}")
    p = prunerd("prune", VOCAB, "--out", out, "--target", QUERY, "--amount", "0.3", check=False)
    t.check(p.returncode == 2 and "TorchScript" in p.stderr, f"not TorchScript: {p.returncode} {p.stderr!r}")
    t.check(not os.path.exists(out), "wrote output for a non-TorchScript input")
    t.check(not [f for f in os.listdir(tmp) if ".tmp." in f], "temporary files left behind")
    p = prunerd("prune", MODEL, "--model-config", os.path.join(tmp, "no-config.json"), "--out", out,
                "--target", QUERY, "--amount", "0.3", check=False)
    t.check(p.returncode == 2 and p.stderr.startswith("prunerd: --model-config: "),
            f"missing --model-config: {p.returncode} {p.stderr!r}")


def test_model_config():
    """--model-config travels in the request, resolved; a TorchScript model needs none of it."""
    out, rep, cfg = (os.path.join(tmp, f) for f in ("mc.pt", "mc.json", "config.json"))
    json.dump({"model_type": "bert", "num_hidden_layers": 4}, open(cfg, "w"))
    prunerd("prune", MODEL, "--model-config", os.path.relpath(cfg), "--out", out, "--report", rep,
            "--method", "l1_unstructured", "--amount", "0.3", "--target", QUERY)
    req = json.load(open(rep))["provenance"]["request"]
    t.check(req["model_config"] == os.path.realpath(cfg), f"model_config {req['model_config']!r}")


LIMIT = 512


def test_eval():
    ids, mask = encode(golden_ids(limit=LIMIT))
    labels = dev_labels(LIMIT)
    ref = logits_of(torch.jit.load(MODEL), ids, mask, batch=256)
    lg = os.path.join(tmp, "eval.f32")
    rep = os.path.join(tmp, "eval.json")
    p = prunerd("eval", MODEL, "--data", DEV, "--vocab", VOCAB, "--classes", CLASSES, "--limit", LIMIT,
                "--batch-size", 256, "--logits", lg, "--report", rep)
    ours = torch.frombuffer(bytearray(open(lg, "rb").read()), dtype=torch.float32).view(LIMIT, 10)
    t.check(torch.equal(ours.argmax(1), ref.argmax(1)), "exact padding: predictions differ from Python's")
    t.check(torch.allclose(ours, ref, atol=1e-5), f"exact logits differ by {float((ours - ref).abs().max())}")
    r = json.load(open(rep))["metrics"]
    acc = float((ref.argmax(1) == torch.tensor(labels)).float().mean())
    t.check(abs(r["accuracy"] - acc) < 1e-12, f"accuracy {r['accuracy']} vs {acc}")
    t.check("macro avg" in p.stdout and "weighted avg" in p.stdout, "report not printed")
    # dynamic padding: the same predictions except where the top-two margin is float noise.
    prunerd("eval", MODEL, "--data", DEV, "--vocab", VOCAB, "--classes", CLASSES, "--limit", LIMIT,
            "--padding", "dynamic", "--logits", lg)
    dyn = torch.frombuffer(bytearray(open(lg, "rb").read()), dtype=torch.float32).view(LIMIT, 10)
    top2 = ref.topk(2, dim=1).values
    close = (top2[:, 0] - top2[:, 1]) < 1e-4
    differ = dyn.argmax(1) != ref.argmax(1)
    t.check(int((differ & ~close).sum()) == 0, f"dynamic: {int((differ & ~close).sum())} predictions differ outside float noise")
    print(f"dynamic padding: {int(differ.sum())} predictions differ, {int(close.sum())} within 1e-4 margins")
    t.check(torch.allclose(dyn, ref, atol=1e-4), f"dynamic logits differ by {float((dyn - ref).abs().max())}")


def test_run_seed_job():
    job_dir = os.path.join(tmp, "job")
    os.makedirs(os.path.join(job_dir, "models"))
    os.symlink(MODEL, os.path.join(job_dir, "models", "bert.pt"))
    for f, src in (("dev.txt", DEV), ("vocab.txt", VOCAB), ("class.txt", CLASSES)):
        os.symlink(src, os.path.join(job_dir, f))
    job = {"model": "models/bert.pt", "targets": [QUERY], "method": "l1_unstructured", "amount": 0.3,
           "amount_kind": "fraction", "scope": "global",
           "options": {"n": 2, "dim": -1, "seed": None, "threshold": None, "mask": None, "plugin": None,
                       "plugin_params": None, "iterative": False},
           "eval": {"data": "dev.txt", "vocab": "vocab.txt", "classes": "class.txt", "max_length": 32,
                    "batch_size": 256, "lowercase": True, "padding": "exact", "limit": LIMIT},
           "outputs": ["torchscript", "state_dict"], "device": "auto", "name": "seed: global L1 30% on query"}
    path = os.path.join(job_dir, "seed.json")
    json.dump(job, open(path, "w"))
    out_dir = os.path.join(tmp, "seed.out")
    p = prunerd("run", path, "--out-dir", out_dir)
    t.check("before: " in p.stdout and "after: " in p.stdout and "[:5, :5]" in p.stdout, "seed printout")
    r = json.load(open(os.path.join(out_dir, "result.json")))
    ids, mask = encode(golden_ids(limit=LIMIT))
    labels = torch.tensor(dev_labels(LIMIT))
    ref = eager()
    before = logits_of(ref, ids, mask)
    params = modules_of(ref, "attention.self.query")
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=0.3)
    for m, n in params:
        prune.remove(m, n)
    after = logits_of(ref, ids, mask)
    for when, lg in (("before", before), ("after", after)):
        acc = float((lg.argmax(1) == labels).float().mean())
        t.check(abs(r["metrics"][when]["accuracy"] - acc) < 1e-12, f"{when}: accuracy {r['metrics'][when]['accuracy']} vs {acc}")
    from sklearn.metrics import f1_score
    f1 = f1_score(labels, after.argmax(1), average="macro", labels=list(range(10)), zero_division=0)
    t.check(abs(r["metrics"]["after"]["macro_f1"] - f1) < 1e-9, f"after macro-F1 {r['metrics']['after']['macro_f1']} vs {f1}")
    lg = os.path.join(tmp, "after.f32")
    model_pt = os.path.join(out_dir, "model.pt")
    prunerd("eval", model_pt, "--data", DEV, "--vocab", VOCAB, "--classes", CLASSES, "--limit", LIMIT, "--logits", lg)
    ours = torch.frombuffer(bytearray(open(lg, "rb").read()), dtype=torch.float32).view(LIMIT, 10)
    t.check(not torch.allclose(ours, before, atol=1e-5), "after-logits equal before-logits: nothing was pruned")
    t.check(torch.allclose(ours, after, atol=1e-5), f"after-logits differ from Python's by {float((ours - after).abs().max())}")
    t.check(r["provenance"]["request"]["model"] == os.path.realpath(MODEL), "model path not resolved against the job folder")
    t.check(set(r["timings"]) >= {"load_s", "eval_before_s", "prune_s", "eval_after_s", "save_s"}, f"timings {r['timings']}")
    bad = dict(job, eval=dict(job["eval"], max_length=1000))
    json.dump(bad, open(path, "w"))
    p = prunerd("run", path, "--out-dir", os.path.join(tmp, "bad.out"), check=False)
    t.check(p.returncode == 2 and p.stderr.strip() == "prunerd: eval.max_length: must be an integer from 2 to 512",
            f"bad job: {p.returncode} {p.stderr!r}")
    json.dump(dict(job, outputs=["safetensors"]), open(path, "w"))
    p = prunerd("run", path, "--out-dir", os.path.join(tmp, "st.out"), check=False)
    t.check(p.returncode == 2 and p.stderr.strip().startswith("prunerd: outputs: safetensors is written for models "
                                                               "read from their weights; this one is TorchScript"),
            f"safetensors from TorchScript: {p.returncode} {p.stderr!r}")
    t.check(not os.path.exists(os.path.join(tmp, "st.out")), "safetensors: an out dir was made")
    json.dump(dict(job, eval={k: v for k, v in job["eval"].items() if k != "vocab"}), open(path, "w"))
    p = prunerd("run", path, "--out-dir", os.path.join(tmp, "novocab.out"), check=False)
    t.check(p.returncode == 2 and p.stderr.strip() ==
            "prunerd: eval.vocab: is required (the model is no Hugging Face folder with a vocab.txt)",
            f"no vocab: {p.returncode} {p.stderr!r}")


def test_version():
    """One line naming the libtorch linked and whether CUDA is compiled in: the
    main build is the venv's torch (CUDA), -Dtorch=system is Debian's 1.13.1."""
    import re
    p = prunerd("version")
    line = p.stdout.strip()
    t.check(p.returncode == 0 and "\n" not in line, f"version: {p.returncode} {p.stdout!r}")
    if os.environ.get("PRUNERD_TORCH") == "system":
        want = "prunerd 0.2.0 (libtorch 1.13.1, CUDA not compiled in)"
        t.check(line == want, f"version {line!r}, want {want!r}")
        return
    n = torch.cuda.device_count()
    want = (f"prunerd 0.2.0 (libtorch {torch.__version__.split('+')[0]}, CUDA {torch.version.cuda} "
            f"compiled in, {n} CUDA device{'' if n == 1 else 's'})")
    t.check(line == want, f"version {line!r}, want {want!r}")
    t.check(re.fullmatch(r"prunerd 0\.2\.0 \(libtorch 2\.11\.\d+, CUDA \d+\.\d+ compiled in, \d+ CUDA devices?\)", line),
            f"version {line!r} is not the torch 2.11 with CUDA build")


try:
    for test in (test_version, test_global_l1_query, test_local_methods, test_other_methods, test_float16, test_bad_input, test_model_config, test_eval, test_run_seed_job):
        try:
            test()
        except Exception as e:  # a crash is a failure, with its reason
            t.check(False, f"{test.__name__} raised {type(e).__name__}: {e}")
finally:
    shutil.rmtree(tmp, ignore_errors=True)
t.done()
