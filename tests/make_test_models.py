#!/usr/bin/env python3
"""make_test_models.py - small TorchScript models and torch.save files for the torch_shim tests.

Usage: .venv/bin/python make_test_models.py OUTDIR

Writes into OUTDIR:
  tiny_bert.pt     scripted BERT-like classifier, Hugging Face names (bert.encoder.layer.0...),
                   an int64 buffer, forward(ids, mask) -> Tensor
  tuple.pt         forward returns (logits, hidden); has a non-contiguous parameter
  dict.pt          forward returns {"logits": ...}
  half.pt          float16 / bfloat16 / float64 parameters
  frozen.pt        torch.jit.freeze of tiny_bert (no parameters left)
  garbage.pt       not a TorchScript archive
  masks_dict.pth   plain dict name -> bool / uint8 / float32 tensors
  masks_od.pth     an OrderedDict (a state_dict, with _metadata) of tensors
  masks_p4.pth     pickle protocol 4: a Parameter, empty, 0-d and view tensors
  masks_twice.pth  a dict pickled with one key set twice (torch.load keeps the last value in
                   the first place)
  name_nul.pth     a dict whose key holds a NUL byte
  list.pth         a list of tensors (not a dict)
  legacy.pth       a dict saved in the legacy (non-zip) format
  names_<m>.txt    per model: "name dtype is_param ndim shape..." in named_parameters() then
                   named_buffers() order
  logits_<m>.txt   "B L", the ids, the mask, then B*C logits from Python for the test input
  masks_<f>.txt    per dict file: "name dtype numel bits" with bits the non-zero pattern
"""
import collections
import os
import sys

import torch
from torch import nn

B, L, V, H, C = 3, 7, 50, 16, 4


class SelfAttn(nn.Module):
    def __init__(self):
        super().__init__()
        self.query = nn.Linear(H, H)
        self.key = nn.Linear(H, H)
        self.value = nn.Linear(H, H)

    def forward(self, x, bias):
        q, k, v = self.query(x), self.key(x), self.value(x)
        a = torch.softmax(q @ k.transpose(1, 2) / 4.0 + bias, dim=-1)
        return a @ v


class AttnOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(H, H)
        self.LayerNorm = nn.LayerNorm(H, eps=1e-12)

    def forward(self, h, x):
        return self.LayerNorm(self.dense(h) + x)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.self = SelfAttn()
        self.output = AttnOut()

    def forward(self, x, bias):
        return self.output(self.self(x, bias), x)


class Dense(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.dense = nn.Linear(i, o)

    def forward(self, x):
        return self.dense(x)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = Attention()
        self.intermediate = Dense(H, 2 * H)
        self.output = AttnOut()
        self.output.dense = nn.Linear(2 * H, H)

    def forward(self, x, bias):
        a = self.attention(x, bias)
        return self.output(torch.nn.functional.gelu(self.intermediate(a)), a)


class Encoder(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.layer = nn.ModuleList([Layer() for _ in range(n)])

    def forward(self, x, bias):
        for layer in self.layer:
            x = layer(x, bias)
        return x


class Embeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(V, H)
        self.position_embeddings = nn.Embedding(16, H)
        self.LayerNorm = nn.LayerNorm(H, eps=1e-12)
        self.register_buffer("position_ids", torch.arange(16).unsqueeze(0))

    def forward(self, ids):
        pos = self.position_ids[:, : ids.size(1)]
        return self.LayerNorm(self.word_embeddings(ids) + self.position_embeddings(pos))


class Bert(nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = Embeddings()
        self.encoder = Encoder(2)
        self.pooler = Dense(H, H)

    def forward(self, ids, mask):
        bias = (1.0 - mask[:, None, :].float()) * -10000.0
        x = self.encoder(self.embeddings(ids), bias)
        return torch.tanh(self.pooler(x[:, 0]))


class TinyBert(nn.Module):
    def __init__(self):
        super().__init__()
        self.bert = Bert()
        self.fc = nn.Linear(H, C)

    def forward(self, ids, mask):
        return self.fc(self.bert(ids, mask))


class TupleOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, H)
        self.w = nn.Parameter(torch.randn(C, H).t())  # non-contiguous [H, C]
        self.register_buffer("scale", torch.tensor([0.5]))

    def forward(self, ids, mask):
        h = (self.emb(ids) * mask[:, :, None].float()).sum(1)
        return h @ self.w * self.scale, h


class DictOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, H)
        self.fc = nn.Linear(H, C)

    def forward(self, ids, mask):
        h = (self.emb(ids) * mask[:, :, None].float()).mean(1)
        return {"logits": self.fc(h), "hidden": h}


class HalfOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, H).half()
        self.proj = nn.Parameter(torch.randn(H, C, dtype=torch.bfloat16))
        self.bias = nn.Parameter(torch.randn(C, dtype=torch.float64))

    def forward(self, ids, mask):
        h = (self.emb(ids).float() * mask[:, :, None].float()).sum(1)
        return h @ self.proj.float() + self.bias.float()


def test_input():
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(1, V, (B, L), generator=g)
    mask = torch.ones(B, L, dtype=torch.long)
    mask[1, 5:] = 0
    mask[2, 3:] = 0
    ids[mask == 0] = 0
    return ids, mask


def write_names(path, m):
    with open(path, "w") as f:
        for is_param, items in ((1, m.named_parameters()), (0, m.named_buffers())):
            for name, t in items:
                dt = str(t.dtype).replace("torch.", "")
                f.write(" ".join([name, dt, str(is_param), str(t.dim())] + [str(s) for s in t.shape]) + "\n")


def write_logits(path, m, ids, mask):
    out = m(ids, mask)
    if isinstance(out, tuple):
        out = out[0]
    elif isinstance(out, dict):
        out = out["logits"]
    with open(path, "w") as f:
        f.write("%d %d %d\n" % (ids.size(0), ids.size(1), out.size(1)))
        f.write(" ".join(str(int(x)) for x in ids.flatten()) + "\n")
        f.write(" ".join(str(int(x)) for x in mask.flatten()) + "\n")
        f.write(" ".join(repr(float(x)) for x in out.float().flatten()) + "\n")


class KeySetTwice:
    """Pickles as an OrderedDict whose items are set in the order given, repeats included."""

    def __init__(self, items):
        self.items = items

    def __reduce__(self):
        return (collections.OrderedDict, (), None, None, iter(self.items))


def write_masks(path, d):
    with open(path, "w") as f:
        for name, t in d.items():
            bits = "".join("1" if x else "0" for x in (t != 0).flatten().tolist())
            f.write("%s %s %d %s\n" % (name, str(t.dtype).replace("torch.", ""), t.numel(), bits or "-"))


def main(out):
    torch.manual_seed(1)
    os.makedirs(out, exist_ok=True)
    ids, mask = test_input()
    models = {"tiny_bert": TinyBert(), "tuple": TupleOut(), "dict": DictOut(), "half": HalfOut()}
    for name, mod in models.items():
        sm = torch.jit.script(mod.eval())
        path = os.path.join(out, name + ".pt")
        sm.save(path)
        loaded = torch.jit.load(path)
        write_names(os.path.join(out, "names_%s.txt" % name), loaded)
        with torch.no_grad():
            write_logits(os.path.join(out, "logits_%s.txt" % name), loaded, ids, mask)
    frozen = torch.jit.freeze(torch.jit.script(models["tiny_bert"].eval()))
    frozen.save(os.path.join(out, "frozen.pt"))
    with open(os.path.join(out, "garbage.pt"), "wb") as f:
        f.write(b"this is not a zip archive\n" * 10)

    g = torch.Generator().manual_seed(3)
    masks = {
        "bert.encoder.layer.0.attention.self.query.weight": torch.rand(H, H, generator=g) > 0.3,
        "fc.weight": (torch.rand(C, H, generator=g) > 0.5).to(torch.uint8),
        "fc.bias": (torch.rand(C, generator=g) > 0.5).float(),
        "strided": (torch.rand(5, 6, generator=g) > 0.5).float().t(),
    }
    torch.save(masks, os.path.join(out, "masks_dict.pth"))
    write_masks(os.path.join(out, "masks_masks_dict.txt"), masks)
    od = models["dict"].state_dict()
    od["fc.weight"][0, :3] = 0
    torch.save(od, os.path.join(out, "masks_od.pth"))
    write_masks(os.path.join(out, "masks_masks_od.txt"), od)
    # pickle protocol 4, a Parameter, an empty and a 0-d tensor, a view sharing a storage
    p4 = collections.OrderedDict()
    p4["a"] = torch.tensor([0.0, 1.0, 2.0])
    p4["b"] = nn.Parameter(torch.tensor([[0.0, 3.0], [0.0, 0.0]], dtype=torch.float64))
    p4["c"] = torch.zeros(0)
    p4["d"] = torch.tensor(5, dtype=torch.int64)
    p4["e"] = p4["a"][1:]
    torch.save(p4, os.path.join(out, "masks_p4.pth"), pickle_protocol=4)
    write_masks(os.path.join(out, "masks_masks_p4.txt"), p4)
    twice = KeySetTwice(
        [("a", torch.tensor([1.0, 0.0])), ("b", torch.tensor([0.0, 1.0])), ("a", torch.tensor([0.0, 0.0, 7.0]))]
    )
    torch.save(twice, os.path.join(out, "masks_twice.pth"))
    write_masks(os.path.join(out, "masks_masks_twice.txt"), torch.load(os.path.join(out, "masks_twice.pth")))
    torch.save({"a": torch.ones(2), "fc\0bias": torch.ones(2)}, os.path.join(out, "name_nul.pth"))
    torch.save([torch.ones(2)], os.path.join(out, "list.pth"))
    torch.save({"a": torch.ones(2)}, os.path.join(out, "legacy.pth"), _use_new_zipfile_serialization=False)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_test_models.py OUTDIR")
    main(sys.argv[1])
