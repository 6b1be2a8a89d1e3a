#!/usr/bin/env python3
"""test_prunerd_model.py - clients/python/prunerd_model.py (the torch-only loader) against transformers and prunerd.

The oracles, on small random configs (hidden 64, 4 heads, 3 layers, FFN 96) and
random ids with padded rows:
  1. transformers' BertForSequenceClassification saved with save_pretrained
     (float32; float16, bfloat16, shards, pytorch_model.bin): the same logits
     within 1e-5 (1e-4 for half weights), the same predictions, and a
     state_dict that loads back into transformers with strict=True;
  2. an uneven model, heads and FFN rows cut by hand as test_native_model.py
     does, with a layer of 0 heads and one of 0 FFN rows, saved as a folder
     whose config.json has the prunerd block and pruned_heads: the logits of
     the hand-cut transformers model and of prunerd's native forward
     (tests/shim_driver forward), each within 1e-5.  transformers cannot run a
     layer of 0 heads (its view(..., -1, head_size) of an empty tensor fails),
     so that layer's self-attention is replaced by the [B, L, 0] context it
     stands for;
  3. the tutorial's BertClassifier (BertModel + fc): torch.save(state_dict)
     with a config.json elsewhere, and bare BertModel names + fc as a
     safetensors file, with an old position_ids buffer;
  4. a prunerd block that disagrees with the shapes is a ValueError naming the
     layer; so is pruned_heads; a missing or an unexpected key raises;
  5. the shared TorchScript model's state_dict + config.json: its TorchScript logits.
Needs PRUNERD_BUILD (tests/shim_driver) and PRUNERD_SHARED; fails, naming them, when missing.
"""
import json
import os
import shutil
import sys
import tempfile

import torch
import torch.nn as nn
from safetensors.torch import save_file
from transformers import BertForSequenceClassification

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "clients", "python"))
import prunerd_model  # noqa: E402
from test_native_model import BertClassifier, cut_heads, hf, inputs, native_logits  # noqa: E402
from test_native_model import small_config as native_config  # noqa: E402

passed = failed = 0
BUILD = os.environ.get("PRUNERD_BUILD", "build")
SHARED = os.environ.get("PRUNERD_SHARED", "")


def small_config(**kw):
    """test_native_model's config with weights of std 0.2, not 0.02: at 0.02 the random net is
    nearly linear and its logits near 0, so 1e-5 would not tell gelu from gelu_new."""
    return native_config(**dict(dict(initializer_range=0.2), **kw))


def check(cond, msg):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", msg, flush=True)


def same(what, got, want, tol=1e-5):
    """got and want: logits of one batch, within tol and with the same argmax."""
    check(got.shape == want.shape, "%s: logits %s, want %s" % (what, tuple(got.shape), tuple(want.shape)))
    if got.shape != want.shape:
        return
    diff = (got.float() - want.float()).abs().max().item()
    check(diff <= tol, "%s: max |logit diff| %.3g > %g" % (what, diff, tol))
    check(torch.equal(got.argmax(1), want.argmax(1)), "%s: predictions differ" % what)


def ours(path, ids, mask, **kw):
    """(model, logits) of prunerd_model.load(path, **kw)."""
    m = prunerd_model.load(path, **kw)
    with torch.no_grad():
        return m, m(ids, mask)


def raises(what, exc, words, fn):
    """fn() raises exc with each of words in its message."""
    try:
        fn()
    except exc as e:
        check(all(w in str(e) for w in words), "%s: %s %r lacks %s" % (what, type(e).__name__, str(e), words))
        return
    except Exception as e:  # noqa: BLE001 (the wrong kind is the failure reported)
        check(False, "%s: raised %s %r, want %s" % (what, type(e).__name__, str(e), exc.__name__))
        return
    check(False, "%s: did not raise %s" % (what, exc.__name__))


def cut_ffn(layer, keep):
    """Keeps the FFN rows keep of a BertLayer."""
    keep = torch.tensor(keep, dtype=torch.long)
    inter, out = layer.intermediate.dense, layer.output.dense
    with torch.no_grad():
        inter.weight = nn.Parameter(inter.weight[keep].clone())
        inter.bias = nn.Parameter(inter.bias[keep].clone())
        inter.out_features = len(keep)
        out.weight = nn.Parameter(out.weight[:, keep].clone())
        out.in_features = len(keep)


def edit_config(folder, **changes):
    p = os.path.join(folder, "config.json")
    with open(p) as f:
        cfg = json.load(f)
    cfg.update(changes)
    with open(p, "w") as f:
        json.dump(cfg, f, indent=2)
    return cfg


def test_dense(tmp):
    torch.manual_seed(0)
    ids, mask = inputs(300)
    m = BertForSequenceClassification(small_config()).eval()
    d = os.path.join(tmp, "dense")
    m.save_pretrained(d)
    with torch.no_grad():
        want = hf(m)(ids, mask)
    got_m, got = ours(d, ids, mask)
    same("save_pretrained folder", got, want)
    check(prunerd_model.layer_shapes(got_m) == [(4, 96)] * 3, "dense shapes %s" % prunerd_model.layer_shapes(got_m))
    check(not got_m.training, "load() gave a model in training mode")
    sd = got_m.state_dict()
    check(set(sd) == set(m.state_dict()), "state_dict keys differ from transformers': %s"
          % sorted(set(sd) ^ set(m.state_dict()))[:6])
    fresh = BertForSequenceClassification(small_config()).eval()
    try:
        fresh.load_state_dict(sd, strict=True)
        got_m.load_state_dict(fresh.state_dict(), strict=True)
        with torch.no_grad():
            same("state_dict round trip through transformers", hf(fresh)(ids, mask), want, tol=0)
    except RuntimeError as e:
        check(False, "state_dict round trip: %s" % e)

    for dt in (torch.float16, torch.bfloat16):
        h = BertForSequenceClassification(small_config()).eval().to(dt)
        d2 = os.path.join(tmp, "dense-%s" % str(dt).split(".")[1])
        h.save_pretrained(d2)
        with torch.no_grad():
            want2 = hf(h.float())(ids, mask)
        got_m, got = ours(d2, ids, mask)
        check(all(p.dtype == torch.float32 for p in got_m.parameters()), "%s weights not computed in float32" % dt)
        same("save_pretrained in %s" % dt, got, want2, tol=1e-4)

    d3 = os.path.join(tmp, "dense-sharded")
    m.save_pretrained(d3, max_shard_size="100KB")
    check(os.path.exists(os.path.join(d3, "model.safetensors.index.json")), "no shards: %s" % os.listdir(d3))
    same("sharded save_pretrained", ours(d3, ids, mask)[1], want)
    for act in ("gelu_new", "gelu_pytorch_tanh", "relu", "silu"):
        h = BertForSequenceClassification(small_config(hidden_act=act)).eval()
        d5 = os.path.join(tmp, "dense-" + act)
        h.save_pretrained(d5)
        with torch.no_grad():
            same("save_pretrained, hidden_act %s" % act, ours(d5, ids, mask)[1], hf(h)(ids, mask))

    d4 = os.path.join(tmp, "dense-bin")
    os.makedirs(d4)
    shutil.copy(os.path.join(d, "config.json"), d4)
    torch.save(m.state_dict(), os.path.join(d4, "pytorch_model.bin"))
    same("folder with pytorch_model.bin", ours(d4, ids, mask)[1], want)


def uneven_model():
    """The hand-cut model: heads 2/0/1, FFN 96/48/0, and its layer shapes."""
    torch.manual_seed(1)
    m = BertForSequenceClassification(small_config()).eval()
    lay = m.bert.encoder.layer
    cut_heads(lay[0], [0, 3], 16)
    cut_heads(lay[1], [], 16)
    cut_heads(lay[2], [2], 16)
    cut_ffn(lay[1], list(range(0, 96, 2)))
    cut_ffn(lay[2], [])
    return m, [(2, 96), (0, 48), (1, 0)]


def test_uneven(tmp):
    ids, mask = inputs(300, seed=5)
    m, shapes = uneven_model()
    d = os.path.join(tmp, "uneven")
    m.save_pretrained(d)
    edit_config(d, pruned_heads={"0": [1, 2], "1": [0, 1, 2, 3], "2": [0, 1, 3]},
                prunerd={"layers": [{"heads": h, "ffn": f} for h, f in shapes]})
    with torch.no_grad():
        want = hf(m)(ids, mask)
    got_m, got = ours(d, ids, mask)
    check(prunerd_model.layer_shapes(got_m) == shapes, "uneven shapes %s, want %s"
          % (prunerd_model.layer_shapes(got_m), shapes))
    same("uneven (heads 2/0/1, FFN 96/48/0) vs hand-cut transformers", got, want)
    try:
        m.load_state_dict(got_m.state_dict(), strict=True)
    except RuntimeError as e:
        check(False, "uneven state_dict into the hand-cut model: %s" % e)
    exe = os.path.join(BUILD, "tests", "shim_driver")
    rc, native = native_logits(d, ids, mask, tmp)
    check(native is not None, "uneven: %s forward failed: %s" % (exe, rc))
    if native is not None:
        same("uneven vs prunerd's native forward", got, native)
        same("hand-cut transformers vs prunerd's native forward", want, native)
    return d, ids, mask


def test_tutorial(tmp):
    torch.manual_seed(2)
    cfg = small_config()
    ids, mask = inputs(300, seed=3)
    m = BertClassifier(cfg, 7).eval()
    with torch.no_grad():
        want = m(ids, mask)
    d = os.path.join(tmp, "tutorial")
    os.makedirs(os.path.join(d, "bert-base"))
    torch.save(m.state_dict(), os.path.join(d, "bert20250521.pt"))
    cfg.to_json_file(os.path.join(d, "bert-base", "config.json"))
    got_m, got = ours(os.path.join(d, "bert20250521.pt"), ids, mask,
                      config=os.path.join(d, "bert-base", "config.json"))
    same("BertClassifier torch.save(state_dict) + config.json elsewhere", got, want)
    check(set(got_m.state_dict()) == set(m.state_dict()), "tutorial state_dict keys differ: %s"
          % sorted(set(got_m.state_dict()) ^ set(m.state_dict()))[:6])
    raises("a state_dict with no config.json beside it", FileNotFoundError, ["config="],
           lambda: prunerd_model.load(os.path.join(d, "bert20250521.pt")))

    sd = {k: v.contiguous() for k, v in m.bert.state_dict().items()}
    sd["fc.weight"], sd["fc.bias"] = m.fc.weight.detach(), m.fc.bias.detach()
    sd["embeddings.position_ids"] = torch.arange(cfg.max_position_embeddings).unsqueeze(0)
    save_file(sd, os.path.join(d, "weights.safetensors"))
    with open(os.path.join(d, "bert-base", "config.json")) as f:
        cfg_dict = json.load(f)
    got_m, got = ours(os.path.join(d, "weights.safetensors"), ids, mask, config=cfg_dict)
    same("bare BertModel names + fc + position_ids, safetensors file, config as a dict", got, want)
    sd.pop("embeddings.position_ids")
    check(set(got_m.state_dict()) == set(sd), "bare state_dict keys differ: %s"
          % sorted(set(got_m.state_dict()) ^ set(sd))[:6])


def test_errors(tmp, uneven):
    ids, mask = inputs(300)
    bad = os.path.join(tmp, "bad-block")
    shutil.copytree(uneven, bad)
    with open(os.path.join(bad, "config.json")) as f:
        block = json.load(f)["prunerd"]
    block["layers"][2]["ffn"] = 96
    edit_config(bad, prunerd=block)
    raises("prunerd block with ffn 96 on layer 2", ValueError, ["layer 2", "ffn 96", "ffn 0"],
           lambda: prunerd_model.load(bad))
    edit_config(bad, prunerd={"layers": block["layers"][:2]})
    raises("prunerd block of 2 layers", ValueError, ["2 layers", "3"], lambda: prunerd_model.load(bad))
    edit_config(bad, prunerd={"layers": [{"heads": 2, "ffn": 96}, {"heads": 0, "ffn": 48},
                                         {"heads": 1, "ffn": 0}]}, pruned_heads={"0": [1]})
    raises("pruned_heads removing 1 head of layer 0", ValueError, ["layer 0", "pruned_heads"],
           lambda: prunerd_model.load(bad))

    m = BertForSequenceClassification(small_config()).eval()
    sd = dict(m.state_dict())
    d = os.path.join(tmp, "keys")
    os.makedirs(d)
    m.config.to_json_file(os.path.join(d, "config.json"))
    gone = "bert.encoder.layer.2.output.LayerNorm.bias"
    torch.save({k: v for k, v in sd.items() if k != gone}, os.path.join(d, "missing.pt"))
    raises("a missing key", RuntimeError, ["Missing", gone], lambda: prunerd_model.load(os.path.join(d, "missing.pt")))
    torch.save(dict(sd, **{"bert.encoder.extra.weight": torch.zeros(2)}), os.path.join(d, "extra.pt"))
    raises("an unexpected key", RuntimeError, ["Unexpected", "bert.encoder.extra.weight"],
           lambda: prunerd_model.load(os.path.join(d, "extra.pt")))
    torch.save(dict(sd, **{"fc.weight": sd["classifier.weight"], "fc.bias": sd["classifier.bias"]}),
               os.path.join(d, "two-heads.pt"))
    raises("two heads", ValueError, ["classifier", "fc"], lambda: prunerd_model.load(os.path.join(d, "two-heads.pt")))


def test_shared(tmp):
    model = os.path.join(SHARED, "models", "thucnews-bert-l4-h256.pt")
    config = os.path.join(SHARED, "models", "thucnews-bert-l4-h256.config.json")
    for p in (model, config):
        if not os.path.exists(p):
            check(False, "shared data missing: %s (set PRUNERD_SHARED)" % p)
            return
    ts = torch.jit.load(model).eval()
    path = os.path.join(tmp, "shared.pt")
    torch.save(ts.state_dict(), path)
    ids, mask = inputs(21128, batch=8, length=32, seed=7)
    with torch.no_grad():
        want = ts(ids, mask)
    got_m, got = ours(path, ids, mask, config=config)
    same("the shared model's state_dict vs its TorchScript forward", got, want)
    check(prunerd_model.layer_shapes(got_m) == [(4, 1024)] * 4, "shared shapes %s" % prunerd_model.layer_shapes(got_m))


def main():
    if not SHARED or not os.path.isdir(SHARED):
        print("FAIL: PRUNERD_SHARED (%r) is not a folder: the shared model is needed" % SHARED)
        return 1
    exe = os.path.join(BUILD, "tests", "shim_driver")
    if not os.access(exe, os.X_OK):
        print("FAIL: %s is missing: set PRUNERD_BUILD to a build folder (meson compile builds it)" % exe)
        return 1
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory(prefix="prunerd-model-") as tmp:
        test_dense(tmp)
        uneven, _, _ = test_uneven(tmp)
        test_tutorial(tmp)
        test_errors(tmp, uneven)
        test_shared(tmp)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
