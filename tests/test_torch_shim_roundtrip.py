#!/usr/bin/env python3
"""test_torch_shim_roundtrip.py - the C shim's files and forward, checked with PyTorch.

Drives tests/shim_driver (PRUNERD_BUILD/tests/shim_driver) on models from make_test_models.py
and on the shared BERT (PRUNERD_SHARED/models/thucnews-bert-l4-h256.pt), then reads what it
wrote with torch.jit.load / torch.load.
"""
import os
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_test_models  # noqa: E402

ERR_FORMAT, ERR_UNSUPPORTED, ERR_NOTFOUND = -5, -7, -2
passed = failed = 0


def check(cond, msg):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", msg, flush=True)


def driver(*args):
    """Runs shim_driver; returns (rc, message, other output lines)."""
    exe = os.path.join(os.environ.get("PRUNERD_BUILD", "build"), "tests", "shim_driver")
    p = subprocess.run([exe] + [str(a) for a in args], capture_output=True, text=True, timeout=120)
    if p.returncode != 0 or not p.stdout:
        return None, "driver exit %d: %s" % (p.returncode, p.stderr.strip()[-2000:]), []
    lines = p.stdout.splitlines()
    rc_line = next(i for i, l in enumerate(lines) if l.split(" ", 1)[0].lstrip("-").isdigit())
    head = lines[rc_line].split(" ", 2)
    return int(head[0]), (head[2] if len(head) > 2 else ""), lines[:rc_line] + lines[rc_line + 1:]


def zero_first_half(t):
    e = t.clone().contiguous()
    if e.is_floating_point():
        e.view(-1)[: e.numel() // 2] = 0
    return e


def same_tensor(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.device == b.device and torch.equal(a, b)


def check_state_dict_file(path, want, what):
    """path (torch.load) holds exactly the tensors of the dict want, in its order."""
    got = torch.load(path)
    check(isinstance(got, dict), "%s: torch.load gave %s, not a dict" % (what, type(got)))
    if not isinstance(got, dict):
        return
    check(list(got.keys()) == list(want.keys()),
          "%s: keys %s, want %s" % (what, list(got.keys())[:5], list(want.keys())[:5]))
    for k, v in want.items():
        g = got.get(k)
        check(isinstance(g, torch.Tensor) and same_tensor(g, v.detach()),
              "%s: %s differs (%s %s vs %s %s)" % (what, k, getattr(g, "dtype", None),
                                                   tuple(getattr(g, "shape", ())), v.dtype, tuple(v.shape)))
        check(isinstance(g, torch.Tensor) and not g.requires_grad, "%s: %s requires grad" % (what, k))


def test_zero_first_half(tmp, name):
    src = os.path.join(tmp, name + ".pt")
    out_ts = os.path.join(tmp, name + "_out.pt")
    out_sd = os.path.join(tmp, name + "_out.pth")
    rc, msg, _ = driver("zero-first-half", src, out_ts, out_sd)
    check(rc == 0, "%s: zero-first-half rc %s %s" % (name, rc, msg))
    if rc != 0:
        return
    orig = torch.jit.load(src)
    want = {k: zero_first_half(v) for k, v in orig.state_dict().items()}
    saved = torch.jit.load(out_ts)
    ssd = saved.state_dict()
    check(list(ssd.keys()) == list(want.keys()), "%s: TorchScript keys differ" % name)
    for k, v in want.items():
        check(k in ssd and same_tensor(ssd[k], v), "%s: TorchScript %s not the modified weights" % (name, k))
    # the saved module runs and computes with the modified weights
    orig.load_state_dict(want)
    ids, mask = make_test_models.test_input()
    with torch.no_grad():
        a, b = orig(ids, mask), saved(ids, mask)
    if isinstance(a, tuple):
        a, b = a[0], b[0]
    elif isinstance(a, dict):
        a, b = a["logits"], b["logits"]
    check(torch.equal(a, b), "%s: saved TorchScript forward differs" % name)
    check_state_dict_file(out_sd, ssd, name + " state_dict")
    # the shim reads its own state_dict back as a dict file
    rc, msg, lines = driver("dict", out_sd)
    check(rc == 0 and [l.split()[0] for l in lines] == list(want.keys()),
          "%s: state_dict through ts_dict_load: %s %s" % (name, rc, msg))


def test_dicts(tmp):
    for f in ("masks_dict.pth", "masks_od.pth", "masks_p4.pth"):
        rc, msg, lines = driver("dict", os.path.join(tmp, f))
        check(rc == 0, "%s: rc %s %s" % (f, rc, msg))
        # our own test files; torch >= 2.6's weights_only unpickler refuses
        # masks_p4's protocol-4 opcodes, which prunerd's reader must take
        want = torch.load(os.path.join(tmp, f), weights_only=False)
        exp = ["%s %s %d %s" % (k, str(v.dtype).replace("torch.", ""), v.numel(),
                                "".join("1" if x else "0" for x in (v != 0).flatten().tolist()) or "-")
               for k, v in want.items()]
        check(lines == exp, "%s: entries differ:\n%s\nwant\n%s" % (f, "\n".join(lines)[:500], "\n".join(exp)[:500]))
    for f in ("list.pth", "legacy.pth", "garbage.pt", "tiny_bert.pt"):
        rc, msg, _ = driver("dict", os.path.join(tmp, f))
        check(rc == ERR_FORMAT, "%s as a dict: rc %s (%s), want ERR_FORMAT" % (f, rc, msg))


def test_errors(tmp):
    rc, msg, _ = driver("load", os.path.join(tmp, "garbage.pt"))
    check(rc == ERR_FORMAT and "not a model" in msg, "garbage.pt: %s %s" % (rc, msg))
    # a state_dict is a model only with its config.json (none beside this one)
    rc, msg, _ = driver("load", os.path.join(tmp, "masks_dict.pth"))
    check(rc == ERR_NOTFOUND and "needs its config.json" in msg,
          "state_dict file as a model: %s %s" % (rc, msg))
    rc, msg, _ = driver("load", os.path.join(tmp, "frozen.pt"))
    check(rc == ERR_UNSUPPORTED and "frozen TorchScript module (no parameters)" in msg,
          "frozen.pt: %s %s" % (rc, msg))
    rc, msg, _ = driver("load", os.path.join(tmp, "nope.pt"))
    check(rc == ERR_NOTFOUND, "missing file: %s %s" % (rc, msg))
    rc, msg, lines = driver("load", os.path.join(tmp, "tiny_bert.pt"), "cuda")
    if rc == 0:
        check(lines and lines[0] == "device cuda:0", "cuda load: %s" % lines[:1])
    else:
        check(rc == ERR_UNSUPPORTED and "CUDA is not available" in msg, "cuda: %s %s" % (rc, msg))


def test_shared_model(tmp):
    shared = os.environ.get("PRUNERD_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
    model = os.path.join(shared, "models", "thucnews-bert-l4-h256.pt")
    check(os.path.exists(model), "shared model missing: %s" % model)
    if not os.path.exists(model):
        return
    ref = torch.jit.load(model)
    g = torch.Generator().manual_seed(11)
    b, l = 4, 32
    ids = torch.randint(1000, 21128, (b, l), generator=g)
    ids[:, 0] = 101
    mask = torch.ones(b, l, dtype=torch.long)
    for i, n in enumerate((32, 20, 9, 3)):
        ids[i, n - 1] = 102
        ids[i, n:] = 0
        mask[i, n:] = 0
    inp = os.path.join(tmp, "bert_input.txt")
    with open(inp, "w") as f:
        f.write("%d %d\n%s\n%s\n" % (b, l, " ".join(map(str, ids.flatten().tolist())),
                                    " ".join(map(str, mask.flatten().tolist()))))
    rc, msg, lines = driver("forward", model, inp)
    check(rc == 0, "forward on the shared model: %s %s" % (rc, msg))
    if rc == 0:
        with torch.no_grad():
            want = ref(ids, mask)
        ncls = int(lines[0])
        got = torch.tensor([float(x) for x in lines[1:]]).view(b, ncls)
        diff = (got - want).abs().max().item()
        check(ncls == want.size(1) and diff <= 1e-5, "shared model logits differ by %g" % diff)

    out = os.path.join(tmp, "bert_sd.pth")
    rc, msg, lines = driver("save-rss", model, out, "sd")
    check(rc == 0, "state_dict of the shared model: %s %s" % (rc, msg))
    if rc == 0:
        check_state_dict_file(out, ref.state_dict(), "shared model state_dict")
        # the same as Python's own torch.save of that state_dict, read back
        py = os.path.join(tmp, "bert_sd_py.pth")
        torch.save(ref.state_dict(), py)
        a, c = torch.load(out), torch.load(py)
        check(list(a) == list(c) and all(same_tensor(a[k], c[k]) for k in c),
              "shim state_dict differs from torch.save's")
        print("save-rss:", lines[0] if lines else "?")


def main():
    with tempfile.TemporaryDirectory(prefix="prunerd-shim-") as tmp:
        make_test_models.main(tmp)
        for name in ("tiny_bert", "tuple", "dict", "half"):
            test_zero_first_half(tmp, name)
        test_dicts(tmp)
        test_errors(tmp)
        test_shared_model(tmp)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed or not passed else 0)


if __name__ == "__main__":
    main()
