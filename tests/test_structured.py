#!/usr/bin/env python3
"""test_structured.py - method structured (heads and FFN neurons, magnitude importance) against Python.

On the shared model's weights as the tutorial's torch.save(state_dict) + config.json:
  1. heads 0.5 and neurons 0.5, global and local: the heads and neurons
     `prunerd run` removes are those of the test's own magnitude ranking (the
     L2 norm of a head's Q, K, V rows and attention.output.dense columns; of
     a neuron's intermediate.dense row and output.dense column; of two equal
     importances the later-numbered goes first), per layer;
  2. the saved smaller model (safetensors folder and state_dict) gives the
     logits of the dense Python model cut by the test's own
     prune_linear_layer (1e-5) and the same predictions, both through
     prunerd's native forward (tests/shim_driver forward) and through
     clients/python/prunerd_model.py; config.json has pruned_heads and the
     prunerd block;
  3. target.macs 0.6: the kept encoder MACs (the issue's formula) are at most
     the target, and no removed head or neuron fits back under it;
  4. result.structured's counts, parameters and MACs are those of the model,
     and its latency has the points asked for (a length above
     max_position_embeddings skipped and listed), p90 >= p50, and the
     speed-up is dense p50 / pruned p50;
  5. importances through tests/shim_driver importance: magnitude, fisher and
     taylor (with labels and with the model's own predictions) against the
     test's own masked forward and autograd (structured_oracle.py), to 1e-4
     of the largest;
  6. rescale factors through tests/shim_driver rescale against the test's own
     least squares (structured_oracle.rescale_py), to 1e-4 of the largest,
     stopping where it stops;
  7. a fisher job with a calibration file runs and says what it used; a
     rescale job's saved model gives the logits of the dense Python model cut
     by prune_linear_layer with the test's own factors folded into its
     columns (1e-4), and metrics.after_mask is there;
  8. bad requests: a TorchScript input, fisher or rescale without
     calibration, calibration nobody reads, rescale not a boolean, fisher
     without eval or on the eval file, amount at the top level: exit 2 with
     one line naming the field.
Needs PRUNERD_BUILD and PRUNERD_SHARED; fails, naming them, when missing.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "clients", "python"))
import prunerd_model  # noqa: E402
import structured_oracle  # noqa: E402
from test_native_model import native_logits  # noqa: E402

BUILD = os.environ.get("PRUNERD_BUILD", "build")
SHARED = os.environ.get("PRUNERD_SHARED", "")
PRUNERD = os.path.join(BUILD, "server", "prunerd")
passed = failed = 0


def check(cond, msg):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: " + msg)


def shared(*p):
    return os.path.join(SHARED, *p)


def magnitude(sd, nl, nh, hs):
    """Per layer: head importances [nh] and neuron importances [ffn], the definitions of the issue."""
    heads, neurons = [], []
    for i in range(nl):
        p = f"bert.encoder.layer.{i}."
        sq = sum(sd[p + f"attention.self.{n}.weight"].view(nh, hs, -1).pow(2).sum((1, 2))
                 for n in ("query", "key", "value"))
        sq = sq + sd[p + "attention.output.dense.weight"].t().reshape(nh, hs, -1).pow(2).sum((1, 2))
        heads.append(sq.sqrt())
        neurons.append((sd[p + "intermediate.dense.weight"].pow(2).sum(1) +
                        sd[p + "output.dense.weight"].pow(2).sum(0)).sqrt())
    return heads, neurons


def removed_by_rank(imps, amount, scope):
    """Which (layer, index) go: round(amount * n) of the lowest, globally or per layer; ties: the
    later-numbered first."""
    items = [(float(v), li, j) for li, t in enumerate(imps) for j, v in enumerate(t.tolist())]
    if scope == "global":
        k = round(amount * len(items))
        items.sort(key=lambda x: (x[0], -(x[1] * 10**6 + x[2])))
        return {(li, j) for _, li, j in items[:k]}
    out = set()
    for li in range(len(imps)):
        mine = sorted([x for x in items if x[1] == li], key=lambda x: (x[0], -x[2]))
        out |= {(li, j) for _, _, j in mine[:round(amount * len(mine))]}
    return out


def fisher_py(model, ids, mask, labels, batch):
    """Kwon's Fisher importance: per batch, the squared gradient of the mean cross-entropy with
    respect to masks of ones on each head's context and each FFN neuron's activation, summed."""
    for p in model.parameters():
        p.requires_grad_(False)
    layers = model.body().encoder.layer
    hm = [torch.ones(ly.heads, requires_grad=True) for ly in layers]
    nm = [torch.ones(ly.ffn, requires_grad=True) for ly in layers]
    hooks = []
    for ly, h, n in zip(layers, hm, nm):
        def head_hook(mod, args, ly=ly, h=h):
            x = args[0]
            B, L, _ = x.shape
            return (x.view(B, L, ly.heads, ly.head_size) * h.view(1, 1, -1, 1)).reshape(B, L, -1),
        hooks.append(ly.attention.output.dense.register_forward_pre_hook(head_hook))
        hooks.append(ly.output.dense.register_forward_pre_hook(lambda mod, args, n=n: (args[0] * n,)))
    acc = [torch.zeros_like(t) for t in hm + nm]
    for s in range(0, ids.shape[0], batch):
        logits = model(ids[s:s + batch], mask[s:s + batch])
        lb = labels[s:s + batch] if labels is not None else logits.detach().argmax(1)
        g = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, lb), hm + nm)
        acc = [a + x.pow(2) for a, x in zip(acc, g)]
    for h in hooks:
        h.remove()
    k = len(hm)
    return torch.cat(acc[:k]), torch.cat(acc[k:])


def driver_importance(model, ids, mask, labels, kind, batch, tmp):
    """tests/shim_driver importance: (heads, neurons) tensors, or the rc line."""
    inp = os.path.join(tmp, "importance.txt")
    with open(inp, "w") as f:
        f.write("%d %d\n" % ids.shape)
        f.write(" ".join(map(str, ids.flatten().tolist())) + "\n")
        f.write(" ".join(map(str, mask.flatten().tolist())) + "\n")
        f.write(("model" if labels is None else " ".join(map(str, labels.tolist()))) + "\n")
    p = subprocess.run([os.path.join(BUILD, "tests", "shim_driver"), "importance", model, inp, kind, str(batch)],
                       capture_output=True, text=True, timeout=600)
    lines = p.stdout.splitlines()
    if p.returncode != 0 or not lines or not lines[0].startswith("0 "):
        return lines[0] if lines else p.stderr.strip()[-300:]
    nh = int(lines[1])
    heads = torch.tensor([float(x) for x in lines[2:2 + nh]])
    nn_ = int(lines[2 + nh])
    return heads, torch.tensor([float(x) for x in lines[3 + nh:3 + nh + nn_]])


def driver_rescale(model, ids, mask, keep_h, keep_n, batch, tmp):
    """tests/shim_driver rescale: (layers done, head factors, neuron factors), or the rc line."""
    inp = os.path.join(tmp, "rescale.txt")
    with open(inp, "w") as f:
        f.write("%d %d\n" % ids.shape)
        f.write(" ".join(map(str, ids.flatten().tolist())) + "\n")
        f.write(" ".join(map(str, mask.flatten().tolist())) + "\n")
        f.write(" ".join(str(int(x)) for x in torch.cat(keep_h).tolist() + torch.cat(keep_n).tolist()) + "\n")
    p = subprocess.run([os.path.join(BUILD, "tests", "shim_driver"), "rescale", model, inp, str(batch)],
                       capture_output=True, text=True, timeout=600)
    lines = p.stdout.splitlines()
    if p.returncode != 0 or not lines or not lines[0].startswith("0 "):
        return lines[0] if lines else p.stderr.strip()[-300:]
    done = int(lines[1].split()[0])
    nh_ = int(lines[2])
    heads = torch.tensor([float(x) for x in lines[3:3 + nh_]])
    nn_ = int(lines[3 + nh_])
    return done, heads, torch.tensor([float(x) for x in lines[4 + nh_:4 + nh_ + nn_]])


def rel_close(a, b, tol=1e-4):
    return a.shape == b.shape and bool(((a - b).abs() <= tol * b.abs().max()).all())


def cut(sd, nl, hs, gone_heads, gone_neurons):
    """The test's own prune_linear_layer: rows and columns removed from a copy of sd."""
    sd = dict(sd)
    for i in range(nl):
        p = f"bert.encoder.layer.{i}."
        nh = sd[p + "attention.self.query.weight"].shape[0] // hs
        rows = torch.tensor([h * hs + j for h in range(nh) if (i, h) not in gone_heads for j in range(hs)],
                            dtype=torch.long)
        for n in ("query", "key", "value"):
            sd[p + f"attention.self.{n}.weight"] = sd[p + f"attention.self.{n}.weight"][rows].clone()
            sd[p + f"attention.self.{n}.bias"] = sd[p + f"attention.self.{n}.bias"][rows].clone()
        sd[p + "attention.output.dense.weight"] = sd[p + "attention.output.dense.weight"][:, rows].clone()
        ffn = sd[p + "intermediate.dense.weight"].shape[0]
        cols = torch.tensor([j for j in range(ffn) if (i, j) not in gone_neurons], dtype=torch.long)
        sd[p + "intermediate.dense.weight"] = sd[p + "intermediate.dense.weight"][cols].clone()
        sd[p + "intermediate.dense.bias"] = sd[p + "intermediate.dense.bias"][cols].clone()
        sd[p + "output.dense.weight"] = sd[p + "output.dense.weight"][:, cols].clone()
    return sd


def run(tmp, name, job, expect_rc=0):
    path = os.path.join(tmp, name + ".json")
    with open(path, "w") as f:
        json.dump(job, f)
    out = os.path.join(tmp, name + ".out")
    p = subprocess.run([PRUNERD, "run", path, "--out-dir", out, "--quiet"], capture_output=True, text=True,
                       timeout=600)
    check(p.returncode == expect_rc, f"{name}: exit {p.returncode}, want {expect_rc}: {p.stderr.strip()}")
    if p.returncode != 0:
        return p, None, out
    with open(os.path.join(out, "result.json")) as f:
        return p, json.load(f), out


def main():
    for p in (PRUNERD, os.path.join(BUILD, "tests", "shim_driver")):
        if not os.path.exists(p):
            print(f"FAIL: {p} is missing (set PRUNERD_BUILD to a build)")
            return 1
    model = shared("models", "thucnews-bert-l4-h256.pt")
    if not SHARED or not os.path.exists(model):
        print(f"FAIL: the shared model is missing: {model!r} (set PRUNERD_SHARED)")
        return 1
    torch.set_num_threads(2)
    cfg = json.load(open(shared("models", "thucnews-bert-l4-h256.config.json")))
    nl, H, nh = cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"]
    hs = H // nh
    with tempfile.TemporaryDirectory(prefix="prunerd-structured-") as tmp:
        sd = {k: v.float() for k, v in torch.jit.load(model).state_dict().items()}
        torch.save(sd, os.path.join(tmp, "bert20250521.pt"))
        shutil.copy(shared("models", "thucnews-bert-l4-h256.config.json"), os.path.join(tmp, "config.json"))
        g = torch.Generator().manual_seed(5)
        ids = torch.randint(1000, 20000, (8, 32), generator=g)
        ids[:, 0] = 101
        mask = torch.ones(8, 32, dtype=torch.long)
        for i in range(8):
            mask[i, 32 - 3 * i:] = 0
        hi, ni = magnitude(sd, nl, nh, hs)
        dense_path = os.path.join(tmp, "bert20250521.pt")

        # importances: prunerd's (tests/shim_driver importance) against the test's own
        got = driver_importance(dense_path, ids, mask, None, "magnitude", 32, tmp)
        check(isinstance(got, tuple), f"magnitude importance: {got}")
        if isinstance(got, tuple):
            check(rel_close(got[0], torch.cat(hi)) and rel_close(got[1], torch.cat(ni)),
                  "magnitude importances differ from Python's")
        g2 = torch.Generator().manual_seed(7)
        cids = torch.randint(1000, 20000, (80, 32), generator=g2)
        cids[:, 0] = 101
        cmask = torch.ones(80, 32, dtype=torch.long)
        for i in range(80):
            cmask[i, 8 + (i * 7) % 24:] = 0
            cids[i, 8 + (i * 7) % 24:] = 0
        clabels = torch.randint(0, 10, (80,), generator=g2)
        dense = prunerd_model.load(dense_path, config=os.path.join(tmp, "config.json"))
        for labels, what in ((clabels, "labels"), (None, "the model's own predictions")):
            for kind, oracle in (("fisher", fisher_py), ("taylor", structured_oracle.taylor_py)):
                want_h, want_n = oracle(dense, cids, cmask, labels, 32)
                got = driver_importance(dense_path, cids, cmask, labels, kind, 32, tmp)
                check(isinstance(got, tuple), f"{kind} importance ({what}): {got}")
                if isinstance(got, tuple):
                    dh = float((got[0] - want_h).abs().max() / want_h.abs().max())
                    dn = float((got[1] - want_n).abs().max() / want_n.abs().max())
                    check(dh <= 1e-4 and dn <= 1e-4 and float(want_h.abs().max()) > 0,
                          f"{kind} ({what}): heads differ by {dh:.3g}, neurons by {dn:.3g} "
                          f"(relative to the largest)")
                    print(f"{kind} importance ({what}), 80 rows in batches of 32: largest relative "
                          f"difference heads {dh:.2g}, neurons {dn:.2g}")

        # rescale factors: prunerd's (tests/shim_driver rescale) against the test's own least squares
        g3 = torch.Generator().manual_seed(11)
        layers = dense.body().encoder.layer
        keep_h = [torch.rand(ly.heads, generator=g3) > 0.4 for ly in layers]
        keep_n = [torch.rand(ly.ffn, generator=g3) > 0.5 for ly in layers]
        want_h, want_n, want_done = structured_oracle.rescale_py(dense, cids[:32], cmask[:32], 8, keep_h, keep_n)
        got = driver_rescale(dense_path, cids[:32], cmask[:32], keep_h, keep_n, 8, tmp)
        check(isinstance(got, tuple), f"rescale: {got}")
        if isinstance(got, tuple):
            done, gh, gn = got
            wh, wn = torch.cat(want_h), torch.cat(want_n)
            dh = float((gh - wh).abs().max() / wh.abs().max())
            dn = float((gn - wn).abs().max() / wn.abs().max())
            check(done == want_done, f"rescale: prunerd did {done} layers, Python {want_done}")
            check(dh <= 1e-4 and dn <= 1e-4, f"rescale: head factors differ by {dh:.3g}, neuron factors by "
                                             f"{dn:.3g} (relative to the largest)")
            check(bool(((wh != 0) == torch.cat(keep_h)).all()) and bool(((gh != 0) == torch.cat(keep_h)).all()),
                  "rescale: a factor for every kept head, none for a removed one")
            print(f"rescale, 32 rows in batches of 8: {done} of {nl} layers, largest relative difference "
                  f"heads {dh:.2g}, neurons {dn:.2g}")

        base = {"model": "bert20250521.pt", "targets": ["bert.encoder.layer.*"], "method": "structured",
                "outputs": ["safetensors", "state_dict"]}

        for scope in ("global", "local"):
            job = dict(base, structured={"heads": 0.5, "neurons": 0.5, "scope": scope,
                                         "latency": {"batches": [8], "seq_lens": [32, 1000]}})
            _, r, out = run(tmp, "half-" + scope, job)
            if not r:
                continue
            st = r["structured"]
            gone_h = removed_by_rank(hi, 0.5, scope)
            gone_n = removed_by_rank(ni, 0.5, scope)
            got_h = {(lay["layer"], j) for lay in st["layers"] for j in lay["removed_heads"]}
            check(got_h == gone_h, f"{scope}: removed heads {sorted(got_h)}, Python's {sorted(gone_h)}")
            for lay in st["layers"]:
                want = lay["ffn_before"] - sum(1 for (li, _) in gone_n if li == lay["layer"])
                check(lay["ffn"] == want, f"{scope}: layer {lay['layer']} keeps {lay['ffn']} neurons, Python {want}")
            ref_sd = cut(sd, nl, hs, gone_h, gone_n)
            folder = os.path.join(out, "safetensors")
            ref_sd = {k: v for k, v in ref_sd.items() if not k.endswith(("position_ids", "token_type_ids"))}
            ref = prunerd_model.load(folder)  # the saved shapes, then the test's own weights
            ref.load_state_dict(ref_sd, strict=True)
            with torch.no_grad():
                want = ref(ids, mask)
            for what, path in (("safetensors folder", folder), ("state_dict", os.path.join(out, "model.pth"))):
                if what == "state_dict":
                    shutil.copy(os.path.join(folder, "config.json"), os.path.join(out, "config.json"))
                rc, got = native_logits(path, ids, mask, tmp)
                check(got is not None, f"{scope} {what}: native forward: {rc}")
                if got is not None:
                    d = float((got - want).abs().max())
                    check(d <= 1e-5, f"{scope} {what}: max |logit diff| {d:.3g} against prune_linear_layer")
                    check(torch.equal(got.argmax(1), want.argmax(1)), f"{scope} {what}: predictions differ")
            with torch.no_grad():
                loaded = prunerd_model.load(folder)(ids, mask)
            check(float((loaded - want).abs().max()) <= 1e-5, f"{scope}: prunerd_model's logits differ")
            conf = json.load(open(os.path.join(folder, "config.json")))
            ph = {(int(k), j) for k, v in conf.get("pruned_heads", {}).items() for j in v}
            check(ph == gone_h, f"{scope}: config pruned_heads {conf.get('pruned_heads')}")
            shapes = [(x["heads"], x["ffn"]) for x in conf.get("prunerd", {}).get("layers", [])]
            check(shapes == [(lay["heads"], lay["ffn"]) for lay in st["layers"]],
                  f"{scope}: config prunerd block {conf.get('prunerd')}")
            check(shapes == prunerd_model.layer_shapes(prunerd_model.load(folder)), f"{scope}: layer shapes")
            n_params = sum(v.numel() for k, v in ref_sd.items() if not k.endswith("position_ids"))
            check(st["parameters"]["pruned"] == n_params,
                  f"{scope}: parameters {st['parameters']['pruned']}, the model has {n_params}")
            L = st["seq_len"]
            macs = sum(h * (4 * L * H * hs + 2 * L * L * hs) + f * 2 * L * H for h, f in shapes)
            check(st["encoder_macs"]["pruned"] == macs, f"{scope}: MACs {st['encoder_macs']['pruned']} vs {macs}")
            lat = st.get("latency", {})
            pts = lat.get("points", [])
            check([(x["batch"], x["seq_len"]) for x in pts] == [(8, 32)] and lat.get("runs") == 20,
                  f"{scope}: latency points {pts}")
            for x in pts:
                ok = x["dense_ms"]["p50"] > 0 and x["pruned_ms"]["p50"] > 0 and \
                    x["dense_ms"]["p90"] >= x["dense_ms"]["p50"] and x["pruned_ms"]["p90"] >= x["pruned_ms"]["p50"]
                check(ok and abs(x["speedup"] - x["dense_ms"]["p50"] / x["pruned_ms"]["p50"]) < 1e-9,
                      f"{scope}: latency point {x}")
            check(lat.get("skipped_seq_lens") == [1000], f"{scope}: skipped {lat.get('skipped_seq_lens')}")

        # the request as the queue stores it (every default filled in) runs again as it is:
        # the daemon's worker normalizes the stored request a second time
        _, r, _ = run(tmp, "half-global", dict(base, structured={"heads": 0.5, "neurons": 0.5}))
        if r:
            stored = r["provenance"]["request"]
            _, again, _ = run(tmp, "stored", stored)
            check(again and again["provenance"]["request"] == stored,
                  "the normalized request does not normalize to itself")

        # target.macs: under the budget, and nothing removed fits back
        job = dict(base, structured={"target": {"macs": 0.6, "seq_len": 128}})
        _, r, out = run(tmp, "macs", job)
        if r:
            st = r["structured"]
            L = 128
            hc, nc = 4 * L * H * hs + 2 * L * L * hs, 2 * L * H
            budget = 0.6 * st["encoder_macs"]["dense"]
            kept = st["encoder_macs"]["pruned"]
            check(kept <= budget, f"macs: kept {kept} > budget {budget}")
            removed_n = st["neurons"]["before"] - st["neurons"]["after"]
            removed_h = st["heads"]["before"] - st["heads"]["after"]
            check(not (removed_n and kept + nc <= budget), f"macs: a neuron fits back ({budget - kept} left)")
            check(not (removed_h and kept + hc <= budget), f"macs: a head fits back ({budget - kept} left)")
            print(f"target.macs 0.6 at 128 tokens: heads {st['heads']['after']}/{st['heads']['before']}, "
                  f"neurons {st['neurons']['after']}/{st['neurons']['before']}, kept {st['encoder_macs']['kept']:.4f}")

        # a fisher job end to end: calibration on train.txt's first lines, evaluation on dev.txt's
        cal = os.path.join(tmp, "calibration.txt")
        with open(shared("data", "thucnews", "train.txt"), encoding="utf-8") as f, \
                open(cal, "w", encoding="utf-8") as g:
            for _ in range(128):
                g.write(f.readline())
        ev = {"data": shared("data", "thucnews", "dev.txt"), "classes": shared("data", "thucnews", "class.txt"),
              "vocab": shared("data", "vocab", "bert-base-chinese-vocab.txt"), "limit": 256}
        fjob = dict(base, eval=ev, structured={"target": {"macs": 0.6},
                                               "importance": "fisher", "calibration": {"data": cal}})
        _, r, _ = run(tmp, "fisher", fjob)
        if r:
            st = r["structured"]
            check(st["importance"] == "fisher" and st.get("calibration", {}).get("samples") == 128 and
                  st["calibration"]["batch_size"] == 32 and st["calibration"]["labels"] == "data",
                  f"fisher job: {st.get('importance')} {st.get('calibration')}")
            check(st["encoder_macs"]["kept"] <= 0.6, f"fisher job keeps {st['encoder_macs']['kept']}")
            print(f"fisher, target.macs 0.6 (128 calibration titles, 256 dev titles): heads "
                  f"{st['heads']['after']}/{st['heads']['before']}, neurons {st['neurons']['after']}/"
                  f"{st['neurons']['before']}, accuracy {r['metrics']['before']['accuracy']:.4f} -> "
                  f"{r['metrics']['after']['accuracy']:.4f}")

        # a rescale job end to end: magnitude heads 0.5 + neurons 0.5, factors from 48 calibration titles
        cal48 = os.path.join(tmp, "calibration48.txt")
        with open(cal, encoding="utf-8") as f:
            lines = f.readlines()[:48]
        with open(cal48, "w", encoding="utf-8") as f:
            f.writelines(lines)
        rjob = dict(base, eval=dict(ev, limit=64), structured={
            "heads": 0.5, "neurons": 0.5, "rescale": True, "calibration": {"data": cal48, "batch_size": 16}})
        _, r, out = run(tmp, "rescale", rjob)
        if r:
            st, m = r["structured"], r["metrics"]
            check(set(m) == {"before", "after_mask", "after"}, f"rescale job: metrics {sorted(m)}")
            rs = st.get("rescale") or {}
            check(st.get("calibration", {}).get("samples") == 48 and "rescale_s" in r["timings"],
                  f"rescale job: calibration {st.get('calibration')}, timings {sorted(r['timings'])}")
            from transformers import BertTokenizer
            tok = BertTokenizer(vocab=ev["vocab"], do_lower_case=True)
            enc = tok([ln.split("\t")[0] for ln in lines], max_length=32, padding="max_length", truncation=True,
                      return_tensors="pt")
            gone_h, gone_n = removed_by_rank(hi, 0.5, "global"), removed_by_rank(ni, 0.5, "global")
            keep_h = [torch.tensor([(li, j) not in gone_h for j in range(nh)]) for li in range(nl)]
            keep_n = [torch.tensor([(li, j) not in gone_n for j in range(len(ni[li]))]) for li in range(nl)]
            fh, fn, done = structured_oracle.rescale_py(dense, enc["input_ids"], enc["attention_mask"], 16,
                                                       keep_h, keep_n)
            check(rs.get("layers") == done and (rs.get("stopped") is None) == (done == nl),
                  f"rescale job: {rs}, Python did {done} layers")
            ref_sd = {k: v for k, v in cut(sd, nl, hs, gone_h, gone_n).items()
                      if not k.endswith(("position_ids", "token_type_ids"))}
            for li in range(nl):
                p = f"bert.encoder.layer.{li}."
                ref_sd[p + "attention.output.dense.weight"] = \
                    ref_sd[p + "attention.output.dense.weight"] * fh[li][keep_h[li]].repeat_interleave(hs)
                ref_sd[p + "output.dense.weight"] = ref_sd[p + "output.dense.weight"] * fn[li][keep_n[li]]
            folder = os.path.join(out, "safetensors")
            ref = prunerd_model.load(folder)
            ref.load_state_dict(ref_sd, strict=True)
            with torch.no_grad():
                want = ref(ids, mask)
            rc, got = native_logits(folder, ids, mask, tmp)
            check(got is not None, f"rescale job: native forward: {rc}")
            if got is not None:
                d = float((got - want).abs().max())
                check(d <= 1e-4, f"rescale job: max |logit diff| {d:.3g} against the test's cut and factors")
                check(torch.equal(got.argmax(1), want.argmax(1)), "rescale job: predictions differ")
                print(f"rescale job (heads 0.5, neurons 0.5, 48 calibration titles): {rs.get('layers')} of {nl} "
                      f"layers, max |logit diff| {d:.2g} against Python; accuracy on 64 dev titles "
                      f"{m['before']['accuracy']:.4f} -> {m['after_mask']['accuracy']:.4f} (mask) -> "
                      f"{m['after']['accuracy']:.4f}")

        # bad requests: exit 2, one line naming the field
        for name, job, want in (
                ("torchscript", dict(base, model=model, structured={"heads": 0.5}, outputs=None),
                 "prunerd: method: structured needs a model read from its weights"),
                ("taylor-nocal", dict(base, eval=ev, structured={"heads": 0.5, "importance": "taylor"}),
                 "prunerd: structured.calibration: is required for taylor"),
                ("rescale-nocal", dict(base, eval=ev, structured={"heads": 0.5, "rescale": True}),
                 "prunerd: structured.calibration: is required for rescale"),
                ("rescale-type", dict(base, structured={"heads": 0.5, "rescale": 1}),
                 "prunerd: structured.rescale: must be true or false"),
                ("unread-cal", dict(base, eval=ev, structured={"heads": 0.5, "calibration": {"data": cal}}),
                 "prunerd: structured.calibration: is for the taylor and fisher importances and rescale"),
                ("nocal", dict(base, eval=ev, structured={"heads": 0.5, "importance": "fisher"}),
                 "prunerd: structured.calibration: is required for fisher"),
                ("noeval", dict(base, structured={"heads": 0.5, "importance": "fisher",
                                                  "calibration": {"data": cal}}),
                 "prunerd: structured.calibration: fisher reads its data with the job's eval settings"),
                ("evalcal", dict(base, eval=ev, structured={"heads": 0.5, "importance": "fisher",
                                                            "calibration": {"data": ev["data"]}}),
                 "prunerd: structured.calibration.data: is the eval data"),
                ("amount", dict(base, amount=0.3, structured={"heads": 0.5}),
                 "prunerd: amount: is not used by method structured"),
                ("both", dict(base, structured={"heads": 0.5, "target": {"macs": 0.5}}),
                 "prunerd: structured.target: give either"),
                ("nolayer", dict(base, targets=["pooler.dense"], structured={"heads": 0.5}),
                 "prunerd: targets[0]: 'pooler.dense' names no encoder layer"),
                ("latency", dict(base, structured={"heads": 0.5, "latency": {"batches": [0]}}),
                 "prunerd: structured.latency.batches: must be a list of 1 to 8 integers")):
            job = {k: v for k, v in job.items() if v is not None}
            p, _, out = run(tmp, "bad-" + name, job, expect_rc=2)
            line = p.stderr.strip()
            check(line.startswith(want) and "\n" not in line, f"bad {name}: {line!r}")
            check(not os.path.exists(os.path.join(out, "result.json")), f"bad {name}: a result was written")
    print(f"test_structured: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
