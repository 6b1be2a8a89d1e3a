#!/usr/bin/env python3
"""test_native_model.py - prunerd's native BERT (core/model/bert.cpp) against PyTorch and transformers.

The oracles:
  - the shared TorchScript model: its weights written as a state_dict with its
    config.json, run natively by `prunerd eval`, give the logits its TorchScript
    forward gives (`prunerd eval` on the .pt), within 1e-5, on the 10,000 dev
    titles, with the same predictions;
  - transformers' BertForSequenceClassification (save_pretrained folders:
    float32, float16, bfloat16, sharded, uneven layers after prune_heads, each
    hidden_act) and the tutorial's BertClassifier (BertModel + nn.Linear fc,
    torch.save(state_dict)), driven through tests/shim_driver forward on
    random ids with padded rows: logits within 1e-5 and the same argmax.
Needs PRUNERD_SHARED (fails, naming it, when missing).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
import torch.nn as nn
from safetensors.torch import save_file
from transformers import BertConfig, BertForSequenceClassification, BertModel

passed = failed = 0
BUILD = os.environ.get("PRUNERD_BUILD", "build")
PRUNERD = os.environ.get("PRUNERD_BIN", os.path.join(BUILD, "server", "prunerd"))
SHARED = os.environ.get("PRUNERD_SHARED", "")


def check(cond, msg):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", msg, flush=True)


class BertClassifier(nn.Module):
    """The tutorial's model: BertModel plus a linear head fc on the pooled output."""

    def __init__(self, config, labels):
        super().__init__()
        self.bert = BertModel(config)
        self.fc = nn.Linear(config.hidden_size, labels)

    def forward(self, input_ids, attention_mask):
        return self.fc(self.bert(input_ids=input_ids, attention_mask=attention_mask).pooler_output)


def inputs(vocab, batch=6, length=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (batch, length), generator=g)
    mask = torch.ones(batch, length, dtype=torch.long)
    for i in range(1, batch):  # rows padded at different lengths, as a batch of titles is
        mask[i, length - 2 * i:] = 0
        ids[i, length - 2 * i:] = 0
    return ids, mask


def native_logits(model, ids, mask, tmp):
    """shim_driver forward MODEL INPUT: (rc line, logits tensor or None)."""
    inp = os.path.join(tmp, "input.txt")
    with open(inp, "w") as f:
        f.write("%d %d\n" % ids.shape)
        f.write(" ".join(map(str, ids.flatten().tolist())) + "\n")
        f.write(" ".join(map(str, mask.flatten().tolist())) + "\n")
    exe = os.path.join(BUILD, "tests", "shim_driver")
    p = subprocess.run([exe, "forward", model, inp], capture_output=True, text=True, timeout=300)
    lines = p.stdout.splitlines()
    if p.returncode != 0 or not lines or not lines[0].startswith("0 "):
        return (lines[0] if lines else p.stderr.strip()[-500:]), None
    ncls = int(lines[1])
    return lines[0], torch.tensor([float(x) for x in lines[2:]]).view(-1, ncls)


def compare(what, model_path, ref, ids, mask, tmp, tol=1e-5):
    rc, got = native_logits(model_path, ids, mask, tmp)
    check(got is not None, "%s: native forward failed: %s" % (what, rc))
    if got is None:
        return
    with torch.no_grad():
        want = ref(ids, mask).float()
    check(got.shape == want.shape, "%s: logits %s, want %s" % (what, tuple(got.shape), tuple(want.shape)))
    if got.shape != want.shape:
        return
    diff = (got - want).abs().max().item()
    check(diff <= tol, "%s: max |logit diff| %.3g > %g" % (what, diff, tol))
    check(torch.equal(got.argmax(1), want.argmax(1)), "%s: predictions differ" % what)


def hf(model):
    return lambda i, m: model(input_ids=i, attention_mask=m).logits


def cut_heads(layer, keep, head_size):
    """Keeps the heads keep of a BertLayer (none when keep is empty), as head pruning leaves it."""
    rows = torch.tensor([h * head_size + j for h in keep for j in range(head_size)], dtype=torch.long)
    att = layer.attention
    with torch.no_grad():
        for lin in (att.self.query, att.self.key, att.self.value):
            lin.weight = nn.Parameter(lin.weight[rows].clone())
            lin.bias = nn.Parameter(lin.bias[rows].clone())
            lin.out_features = len(rows)
        att.output.dense.weight = nn.Parameter(att.output.dense.weight[:, rows].clone())
        att.output.dense.in_features = len(rows)
    att.self.num_attention_heads = len(keep)
    att.self.all_head_size = len(rows)
    if not keep:  # transformers cannot view an empty tensor: the context of no heads, [B, L, 0]
        att.self.forward = lambda hidden_states, *a, **k: (hidden_states[..., :0], None)


def small_config(**kw):
    base = dict(vocab_size=300, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                intermediate_size=96, max_position_embeddings=40, num_labels=5)
    base.update(kw)
    return BertConfig(**base)


def test_hf_folders(tmp):
    torch.manual_seed(0)
    ids, mask = inputs(300)
    for act in ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu"):
        m = BertForSequenceClassification(small_config(hidden_act=act)).eval()
        d = os.path.join(tmp, "hf-" + act)
        m.save_pretrained(d)
        compare("save_pretrained, hidden_act %s" % act, d, hf(m), ids, mask, tmp)

    # uneven layers: heads and FFN rows cut by hand (transformers 5 has no prune_heads)
    m = BertForSequenceClassification(small_config()).eval()
    cut_heads(m.bert.encoder.layer[0], [0, 3], 16)
    cut_heads(m.bert.encoder.layer[2], [2], 16)
    with torch.no_grad():
        lay = m.bert.encoder.layer[1]
        keep = torch.arange(0, 96, 2)
        inter, out = lay.intermediate.dense, lay.output.dense
        inter.weight = nn.Parameter(inter.weight[keep].clone())
        inter.bias = nn.Parameter(inter.bias[keep].clone())
        inter.out_features = len(keep)
        out.weight = nn.Parameter(out.weight[:, keep].clone())
        out.in_features = len(keep)
    d = os.path.join(tmp, "hf-uneven")
    m.save_pretrained(d)
    compare("uneven layers (heads 2/4/1, FFN 96/48/96)", d, hf(m), ids, mask, tmp)
    rc = subprocess.run([PRUNERD, "inspect", d, "--json"], capture_output=True, text=True, timeout=120)
    arch = json.loads(rc.stdout).get("architecture", {}) if rc.returncode == 0 else {}
    check([(x["heads"], x["ffn"]) for x in arch.get("layers", [])] == [(2, 96), (4, 48), (1, 96)],
          "inspect of the uneven model: %s %s" % (arch.get("layers"), rc.stderr.strip()))

    # float16 and bfloat16 weights: the same as the float32 model of the same values
    for dt in (torch.float16, torch.bfloat16):
        m = BertForSequenceClassification(small_config()).eval().to(dt)
        d = os.path.join(tmp, "hf-%s" % str(dt).split(".")[1])
        m.save_pretrained(d)
        ref = m.float()
        compare("save_pretrained in %s" % dt, d, hf(ref), ids, mask, tmp, tol=1e-4)

    # shards: model.safetensors.index.json
    m = BertForSequenceClassification(small_config()).eval()
    d = os.path.join(tmp, "hf-sharded")
    m.save_pretrained(d, max_shard_size="100KB")
    shards = [f for f in os.listdir(d) if f.endswith(".safetensors")]
    check(len(shards) > 1 and os.path.exists(os.path.join(d, "model.safetensors.index.json")),
          "sharded save gave %s" % sorted(os.listdir(d)))
    compare("sharded save_pretrained (%d shards)" % len(shards), d, hf(m), ids, mask, tmp)

    # pytorch_model.bin in a folder
    d2 = os.path.join(tmp, "hf-bin")
    os.makedirs(d2)
    shutil.copy(os.path.join(tmp, "hf-gelu", "config.json"), d2)
    m = BertForSequenceClassification.from_pretrained(os.path.join(tmp, "hf-gelu")).eval()
    torch.save(m.state_dict(), os.path.join(d2, "pytorch_model.bin"))
    compare("folder with pytorch_model.bin", d2, hf(m), ids, mask, tmp)

    # a config.json that says nothing of labels (BertModel's) and a 10-class head
    m = BertForSequenceClassification(small_config(num_labels=10)).eval()
    d = os.path.join(tmp, "hf-nolabels")
    m.save_pretrained(d)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    for k in ("id2label", "label2id", "num_labels"):
        cfg.pop(k, None)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    compare("config.json without labels, 10-class head", d, hf(m), ids, mask, tmp)


def test_tutorial_state_dict(tmp):
    torch.manual_seed(2)
    cfg = small_config()
    ids, mask = inputs(300, seed=3)
    m = BertClassifier(cfg, 7).eval()
    d = os.path.join(tmp, "tutorial")
    os.makedirs(d)
    torch.save(m.state_dict(), os.path.join(d, "bert20250521.pt"))
    cfg.to_json_file(os.path.join(d, "config.json"))
    compare("BertClassifier torch.save(state_dict) + config.json", os.path.join(d, "bert20250521.pt"),
            m, ids, mask, tmp)

    # a bare BertModel's names (no "bert." prefix) plus fc, as safetensors
    sd = {k: v.contiguous() for k, v in m.bert.state_dict().items()}
    sd["fc.weight"], sd["fc.bias"] = m.fc.weight.detach(), m.fc.bias.detach()
    d2 = os.path.join(tmp, "bare")
    os.makedirs(d2)
    save_file(sd, os.path.join(d2, "weights.safetensors"))
    cfg.to_json_file(os.path.join(d2, "config.json"))
    compare("bare BertModel names + fc, safetensors file", os.path.join(d2, "weights.safetensors"),
            m, ids, mask, tmp)

    # an old checkpoint's position_ids buffer is ignored
    sd = dict(m.state_dict())
    sd["bert.embeddings.position_ids"] = torch.arange(cfg.max_position_embeddings).unsqueeze(0)
    d3 = os.path.join(tmp, "old")
    os.makedirs(d3)
    torch.save(sd, os.path.join(d3, "old.pth"))
    cfg.to_json_file(os.path.join(d3, "config.json"))
    compare("state_dict with an old position_ids buffer", os.path.join(d3, "old.pth"), m, ids, mask, tmp)


def test_shared_model(tmp):
    model = os.path.join(SHARED, "models", "thucnews-bert-l4-h256.pt")
    config = os.path.join(SHARED, "models", "thucnews-bert-l4-h256.config.json")
    data = os.path.join(SHARED, "data", "thucnews")
    vocab = os.path.join(SHARED, "data", "vocab", "bert-base-chinese-vocab.txt")
    for p in (model, config, data, vocab):
        if not os.path.exists(p):
            check(False, "shared data missing: %s (set PRUNERD_SHARED)" % p)
            return
    d = os.path.join(tmp, "shared-sd")
    os.makedirs(d)
    torch.save(torch.jit.load(model).state_dict(), os.path.join(d, "model.pt"))
    shutil.copy(config, os.path.join(d, "config.json"))
    out = {}
    for name, path in (("torchscript", model), ("native", os.path.join(d, "model.pt"))):
        logits = os.path.join(tmp, name + ".f32")
        p = subprocess.run([PRUNERD, "eval", path, "--data", os.path.join(data, "dev.txt"), "--vocab", vocab,
                            "--classes", os.path.join(data, "class.txt"), "--logits", logits,
                            "--threads", "2"], capture_output=True, text=True, timeout=600)
        check(p.returncode == 0, "prunerd eval %s: exit %d: %s" % (name, p.returncode, p.stderr.strip()))
        if p.returncode != 0:
            return
        with open(logits, "rb") as f:
            out[name] = torch.frombuffer(bytearray(f.read()), dtype=torch.float32).view(-1, 10)
    ts, nat = out["torchscript"], out["native"]
    check(ts.shape == (10000, 10), "logits of %s, want 10000 x 10" % (tuple(ts.shape),))
    diff = (ts - nat).abs().max().item()
    check(diff <= 1e-5, "shared model: native vs TorchScript max |logit diff| %.3g > 1e-5" % diff)
    check(torch.equal(ts.argmax(1), nat.argmax(1)), "shared model: predictions differ")
    print("shared model on the dev titles: max |logit diff| native vs TorchScript %.3g" % diff)

    # prunerd eval on a Hugging Face folder takes its vocab.txt and do_lower_case when the
    # flags say nothing; a flag wins; a single file without --vocab is exit 2
    hfd = os.path.join(tmp, "shared-hf")
    os.makedirs(hfd)
    save_file({k: v.contiguous() for k, v in torch.jit.load(model).state_dict().items()},
              os.path.join(hfd, "model.safetensors"), metadata={"format": "pt"})
    shutil.copy(config, os.path.join(hfd, "config.json"))
    shutil.copy(vocab, os.path.join(hfd, "vocab.txt"))
    with open(os.path.join(hfd, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": False}, f)
    common = ["--data", os.path.join(data, "dev.txt"), "--classes", os.path.join(data, "class.txt"),
              "--limit", "256", "--threads", "2"]

    def cli_eval(path, *flags):
        rep, lg = os.path.join(tmp, "cli.json"), os.path.join(tmp, "cli.f32")
        p = subprocess.run([PRUNERD, "eval", path, *common, *flags, "--report", rep, "--logits", lg],
                           capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            return p, None, None
        with open(lg, "rb") as f:
            lgt = torch.frombuffer(bytearray(f.read()), dtype=torch.float32).view(-1, 10)
        with open(rep) as f:
            return p, json.load(f)["settings"], lgt

    p, folder_settings, folder_logits = cli_eval(hfd)
    check(p.returncode == 0, "prunerd eval FOLDER without --vocab: exit %d: %s" % (p.returncode, p.stderr.strip()))
    p, said, said_logits = cli_eval(os.path.join(d, "model.pt"), "--vocab", vocab, "--no-lowercase")
    check(p.returncode == 0, "prunerd eval --no-lowercase: exit %d: %s" % (p.returncode, p.stderr.strip()))
    if folder_settings and said:
        check(folder_settings["lowercase"] is False, "folder do_lower_case false: settings %s" % folder_settings)
        check(torch.equal(folder_logits, said_logits), "the folder's vocab and casing give other logits than the flags")
    p, over, _ = cli_eval(hfd, "--lowercase")
    check(p.returncode == 0 and over and over["lowercase"] is True,
          "--lowercase on a cased folder: exit %d, settings %s %s" % (p.returncode, over, p.stderr.strip()))
    p, _, _ = cli_eval(os.path.join(d, "model.pt"))
    check(p.returncode == 2 and p.stderr.strip() ==
          "prunerd: --vocab: is required (the model is no Hugging Face folder with a vocab.txt)",
          "a state_dict without --vocab: exit %d %r" % (p.returncode, p.stderr))


def main():
    if not SHARED or not os.path.isdir(SHARED):
        print("FAIL: PRUNERD_SHARED (%r) is not a folder: the shared model and data are needed" % SHARED)
        return 1
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory(prefix="prunerd-native-") as tmp:
        test_hf_folders(tmp)
        test_tutorial_state_dict(tmp)
        test_shared_model(tmp)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
