#!/usr/bin/env python3
"""make_bert.py - write a BERT classifier as TorchScript, with Hugging Face
parameter names (bert.encoder.layer.N.attention.self.query.weight, ...) and
the tutorial's linear head `fc` on the pooled output.

    .venv/bin/python tools/make_bert.py OUT.pt [--layers 2] [--hidden 64]
        [--heads 4] [--ffn 256] [--vocab 21128] [--classes 10] [--max-pos 64]
        [--seed 0] [--dtype float32|float16]

The weights are random (no pretrained weights can be had here); --preset
bert-base gives bert-base-chinese's shape (12 layers, hidden 768, 12 heads,
FFN 3072, vocab 21128).  Importable: BertClassifier is the eager module the
benchmarks and tests prune with torch.nn.utils.prune.
"""
import argparse
import math

import torch
from torch import nn


class SelfAttention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.heads = heads
        self.scale = 1.0 / math.sqrt(hidden // heads)
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)

    def forward(self, x, bias):
        b, l, h = x.shape
        d = h // self.heads

        def split(t):
            return t.view(b, l, self.heads, d).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = (q @ k.transpose(-1, -2)) * self.scale + bias
        return (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, l, h)


class Output(nn.Module):
    def __init__(self, inp, hidden):
        super().__init__()
        self.dense = nn.Linear(inp, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.self = SelfAttention(hidden, heads)
        self.output = Output(hidden, hidden)

    def forward(self, x, bias):
        return self.output(self.self(x, bias), x)


class Intermediate(nn.Module):
    def __init__(self, hidden, ffn):
        super().__init__()
        self.dense = nn.Linear(hidden, ffn)

    def forward(self, x):
        return torch.nn.functional.gelu(self.dense(x))


class Layer(nn.Module):
    def __init__(self, hidden, heads, ffn):
        super().__init__()
        self.attention = Attention(hidden, heads)
        self.intermediate = Intermediate(hidden, ffn)
        self.output = Output(ffn, hidden)

    def forward(self, x, bias):
        a = self.attention(x, bias)
        return self.output(self.intermediate(a), a)


class Encoder(nn.Module):
    def __init__(self, layers, hidden, heads, ffn):
        super().__init__()
        self.layer = nn.ModuleList([Layer(hidden, heads, ffn) for _ in range(layers)])

    def forward(self, x, bias):
        for layer in self.layer:
            x = layer(x, bias)
        return x


class Embeddings(nn.Module):
    def __init__(self, vocab, hidden, max_pos):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(max_pos, hidden)
        self.token_type_embeddings = nn.Embedding(2, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, ids):
        pos = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
        x = self.word_embeddings(ids) + self.position_embeddings(pos)
        x = x + self.token_type_embeddings(torch.zeros_like(ids))
        return self.LayerNorm(x)


class Pooler(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)

    def forward(self, x):
        return torch.tanh(self.dense(x[:, 0]))


class Bert(nn.Module):
    def __init__(self, layers, hidden, heads, ffn, vocab, max_pos):
        super().__init__()
        self.embeddings = Embeddings(vocab, hidden, max_pos)
        self.encoder = Encoder(layers, hidden, heads, ffn)
        self.pooler = Pooler(hidden)

    def forward(self, ids, mask):
        bias = (1.0 - mask[:, None, None, :].to(torch.float32)) * -10000.0
        return self.pooler(self.encoder(self.embeddings(ids), bias))


class BertClassifier(nn.Module):
    def __init__(self, layers=2, hidden=64, heads=4, ffn=256, vocab=21128, classes=10, max_pos=64):
        super().__init__()
        self.bert = Bert(layers, hidden, heads, ffn, vocab, max_pos)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, input_ids, attention_mask):
        return self.fc(self.bert(input_ids, attention_mask))


PRESETS = {
    "tiny": dict(layers=2, hidden=64, heads=4, ffn=256, vocab=21128, classes=10, max_pos=64),
    "bert-base": dict(layers=12, hidden=768, heads=12, ffn=3072, vocab=21128, classes=10, max_pos=512),
}


def build(seed=0, **kw):
    torch.manual_seed(seed)
    return BertClassifier(**kw).eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    for k in ("layers", "hidden", "heads", "ffn", "vocab", "classes", "max_pos"):
        ap.add_argument("--" + k.replace("_", "-"), type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    ap.add_argument("--state-dict", help="also write the eager state_dict here")
    a = ap.parse_args()
    kw = dict(PRESETS[a.preset])
    for k in kw:
        if getattr(a, k) is not None:
            kw[k] = getattr(a, k)
    model = build(a.seed, **kw)
    ids = torch.ones(2, 8, dtype=torch.long)
    mask = torch.ones(2, 8, dtype=torch.long)
    with torch.no_grad():
        traced = torch.jit.trace(model, (ids, mask))
    if a.dtype == "float16":
        traced = traced.half()
    traced.save(a.out)
    if a.state_dict:
        torch.save(model.state_dict(), a.state_dict)
    print(f"{a.out}: {sum(p.numel() for p in model.parameters())} parameters, {kw}")


if __name__ == "__main__":
    main()
