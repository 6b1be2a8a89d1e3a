#!/usr/bin/env python3
"""make_hostile.py - a corpus of hostile model inputs for `prunerd inspect` (tests/test_hostile.py).

    .venv/bin/python tests/make_hostile.py OUT_DIR

Writes into OUT_DIR (created; must be empty or absent) at least 30 files and folders that
prunerd must refuse with one line on stderr and exit status 2, and manifest.json listing them:

    [{"file": "st/truncated_prefix.safetensors",   relative to OUT_DIR: a file or a folder
      "config": "configs/tiny/config.json",       optional: passed as --model-config
      "expect": "truncated"}, ...]                 a lowercase substring of the error line

plus controls.json, the same shape without "expect": inputs that must load (exit 0).

Nothing here is ever unpickled: the malicious pickles are written opcode by opcode, and if
one ever ran it would only create OUT_DIR/CANARY-<name>, which test_hostile.py looks for.
The weights come from a tiny transformers BertConfig (hidden 32, 2 layers, 2 heads,
intermediate 64, vocab 100, 16 positions), so the whole corpus is a few MB.
"""
import io
import json
import os
import random
import struct
import sys
import zipfile

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import BertConfig, BertModel  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            vocab_size=100, max_position_embeddings=16)
LAYER_KEY = "bert.encoder.layer.1.attention.self.query.weight"


class Corpus:
    def __init__(self, out):
        self.out = out
        self.entries = []
        self.controls = []

    def path(self, rel):
        p = os.path.join(self.out, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def add(self, rel, expect, config=None):
        assert os.path.lexists(os.path.join(self.out, rel)), rel
        assert expect == expect.lower(), expect
        e = {"file": rel, "expect": expect}
        if config:
            assert os.path.exists(os.path.join(self.out, config)), config
            e["config"] = config
        self.entries.append(e)

    def write(self, rel, data):
        with open(self.path(rel), "wb") as f:
            f.write(data)
        return rel


# ---- building blocks ----

def tiny_config(**over):
    return BertConfig(**{**TINY, **over})


def config_json(cfg):
    d = cfg.to_dict()
    d["architectures"] = ["BertModel"]
    return json.dumps(d, indent=2, sort_keys=True) + "\n"


def tutorial_state_dict():
    """The tutorial's checkpoint: HF BertModel weights under bert., and fc = Linear(hidden, 3)."""
    torch.manual_seed(0)
    bert = BertModel(tiny_config(), add_pooling_layer=True).eval()
    sd = {"bert." + k: v.detach().clone().contiguous() for k, v in bert.state_dict().items()}
    fc = torch.nn.Linear(TINY["hidden_size"], 3)
    sd["fc.weight"] = fc.weight.detach().clone()
    sd["fc.bias"] = fc.bias.detach().clone()
    return sd


def hf_folder(c, rel):
    """A save_pretrained folder (config.json + model.safetensors) of the tiny BertModel."""
    folder = os.path.join(c.out, rel)
    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(0)
    BertModel(tiny_config()).save_pretrained(folder, safe_serialization=True)
    return rel


def st_bytes(header, data=b""):
    """A safetensors file from a header (dict or raw text) and data bytes, unpadded."""
    h = header if isinstance(header, (bytes, str)) else json.dumps(header, separators=(",", ":"))
    h = h.encode() if isinstance(h, str) else h
    return struct.pack("<Q", len(h)) + h + data


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def torch_zip(records, prefix="archive"):
    """A zip laid out as torch.save lays it out: stored (not compressed), each record's data
    64-byte aligned by an 'FB' extra field, names under prefix/."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in records:
            full = f"{prefix}/{name}"
            zi = zipfile.ZipInfo(full, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_STORED
            start = buf.tell() + 30 + len(full.encode()) + 4
            pad = (-start) % 64
            zi.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
            z.writestr(zi, data)
    return buf.getvalue()


def torch_save_bytes(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)  # a file object: the records are named archive/...
    return buf.getvalue()


def records_of(zip_bytes):
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as z:
        return [(i.filename.split("/", 1)[1], z.read(i)) for i in z.infolist()]


# Pickle opcodes (Lib/pickletools.py names them); written by hand, never loaded.
PROTO, STOP, EMPTY_DICT, SETITEM, TUPLE1, REDUCE = b"\x80", b".", b"}", b"s", b"\x85", b"R"
GLOBAL, STACK_GLOBAL, SHORT_BINUNICODE, BINUNICODE = b"c", b"\x93", b"\x8c", b"X"


def binunicode(s):
    b = s.encode()
    return BINUNICODE + struct.pack("<I", len(b)) + b


def short_binunicode(s):
    b = s.encode()
    return SHORT_BINUNICODE + bytes([len(b)]) + b


def canary_cmd(c, name):
    return "touch " + os.path.join(os.path.abspath(c.out), "CANARY-" + name)


def pickle_global_call(module, func, arg):
    """{"bert.embeddings.word_embeddings.weight": module.func(arg)} with GLOBAL (protocol 2)."""
    return (PROTO + b"\x02" + EMPTY_DICT + binunicode("bert.embeddings.word_embeddings.weight")
            + GLOBAL + module.encode() + b"\n" + func.encode() + b"\n"
            + binunicode(arg) + TUPLE1 + REDUCE + SETITEM + STOP)


def pickle_stack_global_call(module, func, arg):
    """The same with STACK_GLOBAL (protocol 4), the names pushed as strings first."""
    return (PROTO + b"\x04" + EMPTY_DICT + short_binunicode("fc.weight")
            + short_binunicode(module) + short_binunicode(func) + STACK_GLOBAL
            + short_binunicode(arg) + TUPLE1 + REDUCE + SETITEM + STOP)


def malicious_torch_zip(pkl):
    """A real torch.save zip of a small dict with data.pkl swapped for pkl."""
    recs = records_of(torch_save_bytes({"fc.bias": torch.zeros(3)}))
    return torch_zip([(n, pkl if n == "data.pkl" else d) for n, d in recs])


# ---- the corpus ----

def safetensors_cases(c):
    f32x4 = bytes(16)
    c.add(c.write("st/truncated_prefix.safetensors", b"\x10\x00\x00\x00\x00"), "truncated")
    c.add(c.write("st/header_len_2pow40.safetensors", struct.pack("<Q", 1 << 40) + b"{}"),
          "over 100 mb")
    c.add(c.write("st/header_past_end.safetensors", struct.pack("<Q", 4096) + b'{"a":'),
          "past the end")
    c.add(c.write("st/not_json.safetensors", st_bytes("{this is not json}   ")), "json")
    c.add(c.write("st/array_header.safetensors", st_bytes('[{"dtype":"F32"}]')), "json object")
    c.add(c.write("st/overlap.safetensors",
                  st_bytes({"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 4, 12)},
                           bytes(12))), "overlap")
    c.add(c.write("st/offsets_out_of_range.safetensors",
                  st_bytes({"a": entry("F32", [1024], 0, 4096)}, f32x4)), "past the end")
    c.add(c.write("st/offsets_huge.safetensors",
                  st_bytes({"a": entry("U8", [16], 2**62, 2**62 + 16)}, f32x4)), "past the end")
    c.add(c.write("st/wrong_dtype_size.safetensors",
                  st_bytes({"a.weight": entry("F32", [2, 2], 0, 8)}, bytes(8))), "needs")
    dup = ('{"fc.bias":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
           '"fc.bias":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}')
    c.add(c.write("st/duplicate_names.safetensors", st_bytes(dup, bytes(8))), "duplicate")
    c.add(c.write("st/unknown_dtype.safetensors",
                  st_bytes({"a": entry("Q7", [4], 0, 16)}, f32x4)), "unknown dtype")
    c.add(c.write("st/f8_e4m3.safetensors",
                  st_bytes({"a": entry("F8_E4M3", [16], 0, 16)}, f32x4)), "f8_e4m3")
    c.add(c.write("st/gap.safetensors",
                  st_bytes({"a": entry("F32", [1], 0, 4), "b": entry("F32", [1], 8, 12)},
                           bytes(12))), "gap")
    c.add(c.write("st/trailing_bytes.safetensors",
                  st_bytes({"a": entry("F32", [4], 0, 16)}, bytes(20))), "trailing")
    c.add(c.write("st/numel_overflow.safetensors",
                  st_bytes({"a": entry("F32", [2**32, 2**32], 0, 16)}, f32x4)), "overflow")
    c.add(c.write("st/negative_shape.safetensors",
                  st_bytes({"a": entry("F32", [-4], 0, 16)}, f32x4)), "negative")
    c.add(c.write("st/metadata_not_string.safetensors",
                  st_bytes({"__metadata__": {"format": 1}, "a": entry("F32", [4], 0, 16)},
                           f32x4)), "__metadata__")


def pickle_cases(c):
    c.add(c.write("pickle/os_system.pt", malicious_torch_zip(
        pickle_global_call("os", "system", canary_cmd(c, "os_system")))), "os.system")
    c.add(c.write("pickle/builtins_eval.pt", malicious_torch_zip(pickle_global_call(
        "builtins", "eval", f"__import__('os').system({canary_cmd(c, 'builtins_eval')!r})"))),
        "builtins.eval")
    c.add(c.write("pickle/posix_system_stack_global.pt", malicious_torch_zip(
        pickle_stack_global_call("posix", "system", canary_cmd(c, "posix_system")))),
        "posix.system")
    # A HF folder whose pytorch_model.bin is the os.system zip.
    c.write("pickle/hf_evil_bin/config.json", config_json(tiny_config()).encode())
    c.write("pickle/hf_evil_bin/pytorch_model.bin", malicious_torch_zip(
        pickle_global_call("os", "system", canary_cmd(c, "hf_evil_bin"))))
    c.add("pickle/hf_evil_bin", "os.system")

    # torch.save before 1.6: a plain pickle stream (magic number, protocol, sys info, the dict).
    buf = io.BytesIO()
    torch.save(tutorial_state_dict(), buf, _use_new_zipfile_serialization=False)
    c.add(c.write("pickle/legacy_pickle.pt", buf.getvalue()), "legacy")

    # A zip, but no torch.save: one text file inside.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "hello, I am not a model\n")
    c.add(c.write("pickle/zip_not_torch.pt", buf.getvalue()), "data.pkl")

    # A real torch.save of the tutorial checkpoint, cut in half (no central directory).
    good = torch_save_bytes(tutorial_state_dict())
    c.add(c.write("pickle/truncated_zip.pt", good[: len(good) // 2]), "zip")

    # A torch.save whose storage record is shorter than the tensor the pickle describes.
    recs = records_of(torch_save_bytes({"fc.weight": torch.zeros(64, 32)}))
    c.add(c.write("pickle/short_storage.pt", torch_zip(
        [(n, d[:8] if n == "data/0" else d) for n, d in recs])), "data/0")


def junk_cases(c):
    c.add(c.write("junk/empty.pt", b""), "empty")
    rnd = random.Random(1234)
    data = bytearray(rnd.getrandbits(8) for _ in range(4096))
    data[0] = 0xA7  # not '{', not 'P' (zip), not 0x80 (pickle)
    data[1:8] = b"\xff\xff\xff\xff\xff\xff\x7f"  # and as a safetensors length: absurd
    c.add(c.write("junk/random.bin", bytes(data)), "format")


def folder_cases(c):
    # config.json and no weights
    c.write("hf/no_weights/config.json", config_json(tiny_config()).encode())
    c.add("hf/no_weights", "model.safetensors")

    # config.json that is not JSON, next to good weights
    hf_folder(c, "hf/bad_config")
    c.write("hf/bad_config/config.json", b'{"hidden_size": 32, "num_hidden_layers": \n')
    c.add("hf/bad_config", "config.json")

    # A sharded folder whose index names a shard that is not there.
    torch.manual_seed(0)
    sd = BertModel(tiny_config()).state_dict()
    names = list(sd)
    half = len(names) // 2
    shard1, shard2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    for rel in ("hf/index_missing_shard", "hf/index_escape"):
        c.write(rel + "/config.json", config_json(tiny_config()).encode())
        save_file({k: sd[k].contiguous() for k in names[:half]}, c.path(f"{rel}/{shard1}"),
                  metadata={"format": "pt"})
    weight_map = {k: (shard1 if i < half else shard2) for i, k in enumerate(names)}
    index = {"metadata": {"total_size": sum(v.numel() * v.element_size() for v in sd.values())},
             "weight_map": weight_map}
    c.write("hf/index_missing_shard/model.safetensors.index.json", json.dumps(index, indent=2).encode())
    c.add("hf/index_missing_shard", shard2)

    # An index that sends the second half of the tensors to a shard outside the folder
    # (which exists: the reader must refuse the path, not just miss the file).
    save_file({k: sd[k].contiguous() for k in names[half:]}, c.path("hf/x.safetensors"),
              metadata={"format": "pt"})
    escape = dict(index, weight_map={k: (shard1 if i < half else "../x.safetensors")
                                     for i, k in enumerate(names)})
    c.write("hf/index_escape/model.safetensors.index.json", json.dumps(escape, indent=2).encode())
    c.add("hf/index_escape", "outside")

    # An index that is not JSON.
    c.write("hf/index_not_json/config.json", config_json(tiny_config()).encode())
    save_file({k: sd[k].contiguous() for k in names[:half]}, c.path(f"hf/index_not_json/{shard1}"))
    c.write("hf/index_not_json/model.safetensors.index.json", b'{"weight_map": [')
    c.add("hf/index_not_json", "index.json")

    # A folder whose model.safetensors is a symlink to a (good) file outside it.
    hf_folder(c, "hf/outside_target")
    c.write("hf/symlink_escape/config.json", config_json(tiny_config()).encode())
    os.symlink("../outside_target/model.safetensors", c.path("hf/symlink_escape/model.safetensors"))
    c.add("hf/symlink_escape", "outside")

    # ... and one whose config.json is a symlink out of it.
    hf_folder(c, "hf/config_symlink_escape")
    os.unlink(c.path("hf/config_symlink_escape/config.json"))
    os.symlink("../outside_target/config.json", c.path("hf/config_symlink_escape/config.json"))
    c.add("hf/config_symlink_escape", "outside")


def config_cases(c):
    """The tutorial's torch.save(model.state_dict()) next to a config.json that must agree."""
    c.write("configs/tiny/config.json", config_json(tiny_config()).encode())
    c.write("configs/hidden64/config.json", config_json(tiny_config(hidden_size=64)).encode())
    c.write("configs/heads3/config.json", config_json(tiny_config(num_attention_heads=3)).encode())
    sd = tutorial_state_dict()

    missing = {k: v for k, v in sd.items() if k != LAYER_KEY}
    c.add(c.write("sd/missing_key.pth", torch_save_bytes(missing)), "missing",
          "configs/tiny/config.json")
    extra = dict(sd, **{"bert.encoder.layer.7.attention.self.query.weight": torch.zeros(32, 32)})
    save_file(extra, c.path("sd/unexpected_key.safetensors"), metadata={"format": "pt"})
    c.add("sd/unexpected_key.safetensors", "unexpected", "configs/tiny/config.json")
    c.add(c.write("sd/hidden_mismatch.pth", torch_save_bytes(sd)), "shape",
          "configs/hidden64/config.json")
    c.add(c.write("sd/heads_not_dividing.pth", torch_save_bytes(sd)), "num_attention_heads",
          "configs/heads3/config.json")

    # The control: the same checkpoint, whole, with the right config.
    c.write("control/tutorial.pth", torch_save_bytes(sd))
    save_file(sd, c.path("control/tutorial.safetensors"), metadata={"format": "pt"})
    c.controls.append({"file": "control/tutorial.safetensors", "config": "configs/tiny/config.json"})


def main():
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    out = sys.argv[1]
    if os.path.exists(out) and os.listdir(out):
        print(f"make_hostile.py: {out} is not empty", file=sys.stderr)
        return 2
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    hf_logging.disable_progress_bar()
    c = Corpus(out)
    safetensors_cases(c)
    pickle_cases(c)
    junk_cases(c)
    folder_cases(c)
    config_cases(c)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(c.entries, f, indent=1)
        f.write("\n")
    with open(os.path.join(out, "controls.json"), "w") as f:
        json.dump(c.controls, f, indent=1)
        f.write("\n")
    print(f"make_hostile.py: {len(c.entries)} hostile inputs and {len(c.controls)} control in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
