"""prunerd_model.py - load the BERT classifiers prunerd's structured pruning writes, torch only.

Structured pruning removes whole attention heads and FFN rows, so each layer
of the result has its own head count and FFN width.  transformers 5 dropped
prune_heads (and with it config.json's pruned_heads), so
BertForSequenceClassification.from_pretrained no longer builds such a model;
this file is how a notebook loads a heads-pruned result.  Copy it next to the
notebook, or put clients/python on sys.path::

    import prunerd_model
    model = prunerd_model.load("pruned-hf")                           # a folder
    model = prunerd_model.load("pruned.pth", config="config.json")    # one file
    logits = model(input_ids, attention_mask)                         # [B, labels]
    prunerd_model.layer_shapes(model)                                 # [(heads, ffn), ...]

The widths come from the weights; config.json's "prunerd" block and
pruned_heads, when there, are checked against them.  The forward is
BertForSequenceClassification's in eval mode, and the module names are the
checkpoint's own, so model.state_dict() loads back with strict=True.
Needs PyTorch 2.0 or later, nothing else (not transformers, not safetensors).
"""
import json
import os
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

ACTS = {"gelu": F.gelu, "relu": F.relu, "silu": F.silu, "swish": F.silu,
        "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
        "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh")}
# what BertConfig assumes for a key config.json leaves out
DEFAULTS = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                intermediate_size=3072, hidden_act="gelu", max_position_embeddings=512,
                type_vocab_size=2, layer_norm_eps=1e-12)
# buffers an old checkpoint may carry that the forward does not use (prunerd skips them too)
IGNORED = ("embeddings.position_ids", "embeddings.token_type_ids")
ST_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
             "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32,
             "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}


def _group(**children):
    """A plain nn.Module holding children under these names: it only gives the state_dict its keys."""
    m = nn.Module()
    for name, child in children.items():
        m.add_module(name, child)
    return m


class BertLayer(nn.Module):
    """One encoder layer with its own head count and FFN width (either may be 0)."""

    def __init__(self, c, heads, ffn):
        super().__init__()
        H, hs, eps = c["hidden_size"], c["hidden_size"] // c["num_attention_heads"], c["layer_norm_eps"]
        self.heads, self.head_size, self.ffn, self.act = heads, hs, ffn, ACTS[c["hidden_act"]]
        self.attention = _group(
            self=_group(query=nn.Linear(H, heads * hs), key=nn.Linear(H, heads * hs),
                        value=nn.Linear(H, heads * hs)),
            output=_group(dense=nn.Linear(heads * hs, H), LayerNorm=nn.LayerNorm(H, eps=eps)))
        self.intermediate = _group(dense=nn.Linear(H, ffn))
        self.output = _group(dense=nn.Linear(ffn, H), LayerNorm=nn.LayerNorm(H, eps=eps))

    def forward(self, x, amask):
        att, (B, L, _) = self.attention, x.shape
        if self.heads:
            def split(lin):
                return lin(x).view(B, L, self.heads, self.head_size).transpose(1, 2)
            ctx = F.scaled_dot_product_attention(split(att.self.query), split(att.self.key),
                                                 split(att.self.value), attn_mask=amask)
            a = att.output.dense(ctx.transpose(1, 2).reshape(B, L, self.heads * self.head_size))
        else:
            a = att.output.dense.bias  # every head removed: only the bias is left
        x = att.output.LayerNorm(a + x)
        if self.ffn:
            f = self.output.dense(self.act(self.intermediate.dense(x)))
        else:
            f = self.output.dense.bias  # likewise with no FFN rows
        return self.output.LayerNorm(f + x)


class PrunedBert(nn.Module):
    """BertForSequenceClassification (head "classifier") or BertModel + nn.Linear fc, uneven layers.

    prefix is "bert." or "" (a bare BertModel's names); shapes is [(heads, ffn), ...].
    """

    def __init__(self, c, shapes, head, labels, prefix):
        super().__init__()
        H, eps = c["hidden_size"], c["layer_norm_eps"]
        body = _group(
            embeddings=_group(word_embeddings=nn.Embedding(c["vocab_size"], H),
                              position_embeddings=nn.Embedding(c["max_position_embeddings"], H),
                              token_type_embeddings=nn.Embedding(c["type_vocab_size"], H),
                              LayerNorm=nn.LayerNorm(H, eps=eps)),
            encoder=_group(layer=nn.ModuleList(BertLayer(c, h, f) for h, f in shapes)),
            pooler=_group(dense=nn.Linear(H, H)))
        if prefix:
            self.bert = body
        else:
            for name, child in body.named_children():
                self.add_module(name, child)
        self.add_module(head, nn.Linear(H, labels))
        self.config, self.head_name, self.prefixed = c, head, bool(prefix)

    def body(self):
        return self.bert if self.prefixed else self

    def forward(self, input_ids, attention_mask=None):
        emb, L = self.body().embeddings, input_ids.shape[1]
        if L > emb.position_embeddings.num_embeddings:
            raise ValueError("inputs of %d tokens are longer than max_position_embeddings %d"
                             % (L, emb.position_embeddings.num_embeddings))
        x = emb.word_embeddings(input_ids) + emb.position_embeddings.weight[:L] \
            + emb.token_type_embeddings.weight[0]
        x = emb.LayerNorm(x)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        # HF's extended mask: 0 where attended, the dtype's lowest value where padded
        amask = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.body().encoder.layer:
            x = layer(x, amask)
        pooled = torch.tanh(self.body().pooler.dense(x[:, 0]))
        return getattr(self, self.head_name)(pooled)


def layer_shapes(model):
    """[(heads, ffn), ...] of a model load() returned, one pair per layer."""
    return [(layer.heads, layer.ffn) for layer in model.body().encoder.layer]


def _read_safetensors(path):
    """A .safetensors file's tensors (a small reader, so that torch is all it needs)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        buf = bytearray(f.read())
    header.pop("__metadata__", None)
    out = {}
    for name, t in header.items():
        dt, (begin, end) = ST_DTYPES[t["dtype"]], t["data_offsets"]
        if end == begin:
            out[name] = torch.empty(t["shape"], dtype=dt)
        else:
            count = (end - begin) // torch.tensor([], dtype=dt).element_size()
            out[name] = torch.frombuffer(buf, dtype=dt, count=count, offset=begin).view(t["shape"])
    return out


def _read_file(path):
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":  # u64 header length, then the JSON header
        return _read_safetensors(path)
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(sd, dict):
        raise ValueError("%s: holds a %s, not a state_dict" % (path, type(sd).__name__))
    return sd


def _read_weights(path):
    """The state_dict of a file, or of a Hugging Face folder (single file or shards)."""
    if not os.path.isdir(path):
        return _read_file(path)
    for name in ("model.safetensors", "model.safetensors.index.json",
                 "pytorch_model.bin", "pytorch_model.bin.index.json"):
        p = os.path.join(path, name)
        if not os.path.exists(p):
            continue
        if not name.endswith(".index.json"):
            return _read_file(p)
        with open(p) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        sd = {}
        for s in shards:
            sd.update(_read_file(os.path.join(path, s)))
        return sd
    raise FileNotFoundError("%s: no model.safetensors, pytorch_model.bin or their .index.json" % path)


def _read_config(path, config):
    if config is None:
        config = os.path.join(path if os.path.isdir(path) else os.path.dirname(path), "config.json")
        if not os.path.exists(config):
            raise FileNotFoundError("%s: no config.json beside it; pass config=" % path)
    if not isinstance(config, dict):
        with open(config) as f:
            config = json.load(f)
    c = dict(DEFAULTS, **{k: v for k, v in config.items() if v is not None})
    if c.get("model_type", "bert") != "bert" or c.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError("only model_type bert with absolute positions is read")
    if c["hidden_act"] not in ACTS:
        raise ValueError("hidden_act %r: expected one of %s" % (c["hidden_act"], ", ".join(ACTS)))
    if c["hidden_size"] % c["num_attention_heads"]:
        raise ValueError("hidden_size %d is not a multiple of num_attention_heads %d"
                         % (c["hidden_size"], c["num_attention_heads"]))
    return c


def _check_config(c, shapes):
    """Raises ValueError where config.json's prunerd block or pruned_heads disagree with the weights."""
    said = c.get("prunerd", {}).get("layers")
    if said is not None and len(said) != len(shapes):
        raise ValueError("config.json's prunerd block has %d layers, the weights %d" % (len(said), len(shapes)))
    for i, (heads, ffn) in enumerate(shapes):
        if said is not None and (said[i].get("heads"), said[i].get("ffn")) != (heads, ffn):
            raise ValueError("layer %d: config.json's prunerd block says heads %s, ffn %s; the weights "
                             "have heads %d, ffn %d" % (i, said[i].get("heads"), said[i].get("ffn"), heads, ffn))
        pruned = set(c.get("pruned_heads", {}).get(str(i), []))
        if pruned and c["num_attention_heads"] - len(pruned) != heads:
            raise ValueError("layer %d: config.json's pruned_heads removes %d of %d heads; the weights have %d"
                             % (i, len(pruned), c["num_attention_heads"], heads))


def load(path, config=None, device="cpu", dtype=torch.float32):
    """The model saved at path (a folder or one file) as an nn.Module in eval(), its weights in dtype.

    config: config.json's path or its dict; by default the config.json in the
    folder or beside the file.  Missing or unexpected weights raise
    RuntimeError (load_state_dict strict=True); a config that disagrees with
    the weights' shapes raises ValueError.
    """
    c = _read_config(path, config)
    sd = {k: v for k, v in _read_weights(path).items()
          if not any(k == e or k.endswith("." + e) for e in IGNORED)}
    for k, v in sd.items():
        if not v.is_floating_point():
            raise ValueError("%s is %s, not floating point" % (k, v.dtype))
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in sd else ""
    heads = [h for h in ("classifier", "fc") if h + ".weight" in sd]
    if len(heads) != 1:
        raise ValueError("expected one classification head, classifier.* or fc.*; found %s" % (heads or "none"))
    head, labels = heads[0], sd[heads[0] + ".weight"].shape[0]
    if head == "classifier" and c.get("id2label") and len(c["id2label"]) != labels:
        raise ValueError("config.json names %d labels but classifier.weight has %d rows"
                         % (len(c["id2label"]), labels))
    hs, shapes = c["hidden_size"] // c["num_attention_heads"], []
    for i in range(c["num_hidden_layers"]):
        q = sd.get("%sencoder.layer.%d.attention.self.query.weight" % (prefix, i))
        inter = sd.get("%sencoder.layer.%d.intermediate.dense.weight" % (prefix, i))
        if q is not None and q.shape[0] % hs:
            raise ValueError("layer %d: query.weight has %d rows, not a multiple of the head size %d"
                             % (i, q.shape[0], hs))
        shapes.append((c["num_attention_heads"] if q is None else q.shape[0] // hs,
                       c["intermediate_size"] if inter is None else inter.shape[0]))
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nn.init warns on the empty weights of a layer with none left
        model = PrunedBert(c, shapes, head, labels, prefix)
    model.load_state_dict({k: v.to(dtype) for k, v in sd.items()}, strict=True, assign=True)
    _check_config(c, shapes)
    return model.to(device).eval()
