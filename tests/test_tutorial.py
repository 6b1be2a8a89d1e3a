#!/usr/bin/env python3
"""test_tutorial.py - the tutorial's job end to end, as its user does it, against the real daemon.

1. The tutorial: a BertClassifier (transformers' BertModel + nn.Linear fc) with the
   shared model's weights, saved with torch.save(model.state_dict()) beside a
   bert-base-chinese/ folder holding config.json; the job POSTed with that file
   (global L1, 30%, the 12-layer glob bert.encoder.layer.*.attention.self.query).
   The job's before/after accuracy and macro-F1 equal what a model2dev-style
   Python loop prints on the same dev titles, with the model pruned by
   torch.nn.utils.prune.global_unstructured (ties as docs/pruning.md says); the
   pruned state_dict downloads and loads with load_state_dict(strict=True), and
   its zeros are PyTorch's mask.
2. A Hugging Face round trip: BertForSequenceClassification.save_pretrained ->
   the same job -> the safetensors folder (config.json, model.safetensors,
   downloaded file by file) loads with from_pretrained; its zeros match PyTorch's.
3. Bad model inputs are refused with the field named and the daemon goes on.
Needs PRUNERD_BIN, PRUNERD_SHARED and the venv's torch/transformers; fails when missing.
"""
import io
import json
import os
import shutil
import sys
import tempfile
import time

import torch
import torch.nn.utils.prune as prune
from safetensors.torch import load_file
from sklearn.metrics import accuracy_score, f1_score
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_daemon as td  # noqa: E402  (Daemon, check, the counters)
from test_native_model import BertClassifier  # noqa: E402  (the tutorial's class)
from test_daemon import Daemon, check  # noqa: E402

SHARED = td.SHARED
TARGET = "bert.encoder.layer.*.attention.self.query"


def dev_set():
    titles, labels = [], []
    with open(os.path.join(SHARED, "data", "thucnews", "dev.txt"), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                t, y = line.rstrip("\n").rsplit("\t", 1)
                titles.append(t)
                labels.append(int(y))
    return titles, labels


def model2dev(forward, tok, titles, labels, batch=256):
    """The tutorial's evaluation loop: padded to 32, batches of 256, argmax."""
    preds = []
    with torch.inference_mode():
        for i in range(0, len(titles), batch):
            enc = tok(titles[i:i + batch], padding="max_length", truncation=True, max_length=32,
                      return_tensors="pt")
            preds += forward(enc["input_ids"], enc["attention_mask"]).argmax(1).tolist()
    return accuracy_score(labels, preds), f1_score(labels, preds, average="macro")


def query_modules(model, bert):
    return [(layer.attention.self.query, "weight") for layer in bert.encoder.layer]


def torch_prune(model, bert):
    params = query_modules(model, bert)
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=0.3)
    masks = [m.weight_mask.clone() for m, _ in params]
    for m, n in params:
        prune.remove(m, n)
    return masks


def tie_positions(weights, k):
    """Positions whose |w| equals the k-th smallest over all targets (docs/pruning.md)."""
    flat = torch.cat([w.abs().flatten() for w in weights])
    kth = flat.kthvalue(k).values
    return [(w.abs() == kth) for w in weights]


def check_zeros(what, got_weights, masks, original):
    """The downloaded zeros are PyTorch's mask, except at tie positions, with equal totals."""
    k = sum(int((m == 0).sum()) for m in masks)
    ties = tie_positions(original, k)
    zeros = sum(int((w == 0).sum()) for w in got_weights)
    check(zeros == k, f"{what}: {zeros} zeros in the targets, PyTorch pruned {k}")
    bad = sum(int(((w == 0) != (m == 0))[~t].sum()) for w, m, t in zip(got_weights, masks, ties))
    check(bad == 0, f"{what}: {bad} positions differ from PyTorch's mask outside ties")


def wait_done(d, job_id, timeout=900):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, _, j = d.json("GET", f"/v1/jobs/{job_id}")
        if st == 200 and j.get("status") in ("succeeded", "failed", "cancelled"):
            return j
        time.sleep(0.5)
    return {"status": "timeout"}


def download(d, job_id, fmt, file=None):
    path = f"/v1/jobs/{job_id}/checkpoint?format={fmt}" + (f"&file={file}" if file else "")
    st, _, body = d.req("GET", path, timeout=120)
    return st, body


def job_request(model, **kw):
    data = os.path.join(SHARED, "data")
    req = {"name": "tutorial", "model": model, "targets": [TARGET], "method": "l1_unstructured",
           "amount": 0.3, "scope": "global",
           "eval": {"data": os.path.join(data, "thucnews", "dev.txt"),
                    "vocab": os.path.join(data, "vocab", "bert-base-chinese-vocab.txt"),
                    "classes": os.path.join(data, "thucnews", "class.txt"),
                    "lowercase": True}}
    req.update(kw)
    return req


def result_of(d, job):
    st, _, res = d.json("GET", f"/v1/jobs/{job['id']}/result")
    return res if st == 200 and isinstance(res, dict) else {}


def metrics_of(res, when):
    m = res.get("metrics", {}).get(when, {})
    return m.get("accuracy"), m.get("macro_f1")


def test_tutorial(d, models, tok, titles, labels, shared_sd, config):
    folder = os.path.join(models, "tutorial")
    os.makedirs(os.path.join(folder, "models_save"))
    os.makedirs(os.path.join(folder, "bert-base-chinese"))
    config.to_json_file(os.path.join(folder, "bert-base-chinese", "config.json"))
    model = BertClassifier(config, 10).eval()
    model.load_state_dict(shared_sd, strict=True)
    torch.save(model.state_dict(), os.path.join(folder, "models_save", "bert20250521.pt"))
    original = [model.bert.encoder.layer[i].attention.self.query.weight.detach().clone()
                for i in range(config.num_hidden_layers)]

    req = job_request("tutorial/models_save/bert20250521.pt",
                      model_config="tutorial/bert-base-chinese/config.json")
    st, _, job = d.json("POST", "/v1/jobs", req)
    check(st == 201, "the tutorial's job is accepted", (st, job))
    if st != 201:
        return
    job = wait_done(d, job["id"])
    check(job.get("status") == "succeeded", "the tutorial's job succeeds", (job.get("status"), job.get("error")))
    if job.get("status") != "succeeded":
        return

    res = result_of(d, job)
    before = model2dev(model, tok, titles, labels)
    masks = torch_prune(model, model.bert)
    after = model2dev(model, tok, titles, labels)
    print(f"tutorial: Python before {before}, after {after}; prunerd before {metrics_of(res, 'before')}, "
          f"after {metrics_of(res, 'after')}")
    check(metrics_of(res, "before") == before, "accuracy and macro-F1 before equal Python's",
          (metrics_of(res, "before"), before))
    check(metrics_of(res, "after") == after, "accuracy and macro-F1 after equal Python's",
          (metrics_of(res, "after"), after))
    outs = [a.get("format") for a in res.get("artifacts", [])]
    check(outs == ["state_dict"], "a state_dict input gives a state_dict by default", outs)

    st, body = download(d, job["id"], "state_dict")
    check(st == 200, "the pruned state_dict downloads", st)
    if st != 200:
        return
    sd = torch.load(io.BytesIO(body), weights_only=True)
    user = BertClassifier(config, 10).eval()
    try:
        user.load_state_dict(sd, strict=True)
        check(True, "load_state_dict(strict=True) takes the pruned file")
    except RuntimeError as e:
        check(False, "load_state_dict(strict=True) takes the pruned file", str(e)[:500])
        return
    got = [user.bert.encoder.layer[i].attention.self.query.weight for i in range(config.num_hidden_layers)]
    check_zeros("tutorial state_dict", got, masks, original)
    with torch.no_grad():
        differ = [n for n, v in user.state_dict().items() if not torch.equal(v, model.state_dict()[n])
                  and ".attention.self.query.weight" not in n]
    check(differ == [], "every other tensor of the download equals the model's", differ[:5])


def test_hf_roundtrip(d, models, shared_sd, config):
    torch.manual_seed(5)
    hf_sd = {("classifier." + k[3:] if k.startswith("fc.") else k): v for k, v in shared_sd.items()}
    base = {k: v for k, v in config.to_dict().items() if k not in ("id2label", "label2id")}
    cfg = BertConfig(**base, num_labels=10)
    m = BertForSequenceClassification(cfg).eval()
    m.load_state_dict(hf_sd, strict=True)
    folder = os.path.join(models, "hf-model")
    m.save_pretrained(folder)
    shutil.copy(os.path.join(SHARED, "data", "vocab", "bert-base-chinese-vocab.txt"),
                os.path.join(folder, "vocab.txt"))
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True}, f)
    original = [m.bert.encoder.layer[i].attention.self.query.weight.detach().clone()
                for i in range(cfg.num_hidden_layers)]

    req = job_request("hf-model", eval=None)
    st, _, job = d.json("POST", "/v1/jobs", req)
    check(st == 201, "the HF folder's job is accepted", (st, job))
    if st != 201:
        return
    job = wait_done(d, job["id"])
    check(job.get("status") == "succeeded", "the HF folder's job succeeds", (job.get("status"), job.get("error")))
    if job.get("status") != "succeeded":
        return
    arts = {a.get("format"): a for a in result_of(d, job).get("artifacts", [])}
    check(list(arts) == ["safetensors"], "a HF folder gives a safetensors folder by default", list(arts))
    out = os.path.join(models, "hf-pruned")
    os.makedirs(out)
    for name in ("config.json", "model.safetensors"):
        st, body = download(d, job["id"], "safetensors", name)
        check(st == 200, f"{name} of the safetensors folder downloads", st)
        with open(os.path.join(out, name), "wb") as f:
            f.write(body)
    st, body = download(d, job["id"], "safetensors", "secret.txt")
    check(st == 404, "a file the folder does not have is 404", st)
    try:
        back = BertForSequenceClassification.from_pretrained(out).eval()
    except Exception as e:  # noqa: BLE001  (any failure to load is the finding)
        check(False, "from_pretrained loads the pruned folder", str(e)[:500])
        return
    check(back.config.num_labels == 10, "the saved config names 10 labels", back.config.num_labels)
    st_meta = load_file(os.path.join(out, "model.safetensors"))
    check(set(st_meta) == set(m.state_dict()) - {"bert.embeddings.position_ids"},
          "model.safetensors holds the input's names")
    masks = torch_prune(m, m.bert)  # m is now PyTorch's pruned model
    got = [back.bert.encoder.layer[i].attention.self.query.weight for i in range(cfg.num_hidden_layers)]
    check_zeros("HF round trip", got, masks, original)
    want_sd, got_sd = m.state_dict(), back.state_dict()
    check(set(got_sd) == set(want_sd), "from_pretrained gives the same tensors",
          set(got_sd) ^ set(want_sd))
    def same(n):  # the targets' kept weights are the original ones; zeros were checked above
        a, b = want_sd[n], got_sd[n]
        if ".attention.self.query.weight" in n:
            keep = (a != 0) & (b != 0)
            return torch.equal(a[keep], b[keep])
        return torch.equal(a, b)
    other = [n for n in want_sd if n in got_sd and not same(n)]
    check(other == [], "every tensor equals the PyTorch-pruned model's", other[:5])


def test_bad_models(d, models):
    with open(os.path.join(models, "garbage.bin"), "wb") as f:
        f.write(b"not a model at all")
    os.makedirs(os.path.join(models, "empty-folder"))
    for model, want in (("garbage.bin", "not a model"), ("empty-folder", "config.json")):
        st, _, b = d.json("POST", "/v1/jobs", job_request(model, eval=None))
        err = td.error_of(b)
        check(st == 400 and err.get("field") == "model" and want in err.get("message", ""),
              f"POST with model {model} is refused naming the field", (st, b))
    st, _, b = d.json("GET", "/healthz")
    check(st == 200, "the daemon goes on after bad models", st)


def main():
    if not td.BIN or not os.access(td.BIN, os.X_OK):
        print(f"FAIL PRUNERD_BIN is not an executable: {td.BIN!r}\n0 passed, 1 failed")
        return 1
    model_path = os.path.join(SHARED, "models", "thucnews-bert-l4-h256.pt") if SHARED else ""
    if not os.path.isfile(model_path):
        print(f"FAIL the shared model {model_path!r} is missing (set PRUNERD_SHARED)\n0 passed, 1 failed")
        return 1
    torch.set_num_threads(2)
    shared_sd = torch.jit.load(model_path).state_dict()
    config = BertConfig.from_json_file(os.path.join(SHARED, "models", "thucnews-bert-l4-h256.config.json"))
    tok = BertTokenizer(os.path.join(SHARED, "data", "vocab", "bert-base-chinese-vocab.txt"), do_lower_case=True)
    titles, labels = dev_set()
    tmp = tempfile.mkdtemp(prefix="prunerd-tutorial-")
    try:
        models = os.path.join(tmp, "models")
        os.makedirs(models)
        d = Daemon(tmp, ["--model-root", models, "--data-root", os.path.join(SHARED, "data")])
        try:
            test_tutorial(d, models, tok, titles, labels, shared_sd, config)
            test_hf_roundtrip(d, models, shared_sd, config)
            test_bad_models(d, models)
        finally:
            rc, _ = d.stop()
            check(rc == 0, "the daemon exits 0 on SIGTERM", rc)
            if td.failed:
                print(d.tail())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{td.passed} passed, {td.failed} failed")
    return 1 if td.failed or not td.passed else 0


if __name__ == "__main__":
    sys.exit(main())
