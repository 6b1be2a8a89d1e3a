#!/usr/bin/env python3
"""test_safetensors_oracle.py - core/model/safetensors against the safetensors package.

Files written by safetensors.torch.save_file (and transformers' save_pretrained) are read
with tests/st_driver (PRUNERD_BUILD/tests/st_driver), tensor by tensor (dtype, shape, sha256
of the bytes); a file the C writer wrote is read back with safetensors.torch.load_file; a few
malformed files are refused by both.
"""
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

from oracle import Tally

try:
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
except ImportError as e:
    print(f"FAIL torch / safetensors are not importable ({e}): run under meson test, whose "
          "Python (.venv) has them")
    raise SystemExit(1)

t = Tally("test_safetensors_oracle")
tmp = tempfile.mkdtemp(prefix="prunerd-test-st-")
NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
         torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
         torch.uint8: "U8", torch.bool: "BOOL"}


def driver(*args):
    """Runs st_driver; returns (rc, message, other output lines)."""
    exe = os.path.join(os.environ.get("PRUNERD_BUILD", "build"), "tests", "st_driver")
    p = subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=120)
    if p.returncode != 0 or not p.stdout:
        return None, f"driver exit {p.returncode}: {p.stderr.strip()[-2000:]}", []
    lines = p.stdout.splitlines()
    head = lines[0].split(" ", 2)
    return int(head[0]), (head[2] if len(head) > 2 else ""), lines[1:]


def sha256_of(x):
    return hashlib.sha256(x.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest()


def read_with_c(path, *keys):
    """{name: (dtype, shape, numel, sha256)} and {key: value} as st_driver sees path."""
    rc, msg, lines = driver("read", path, *keys)
    t.check(rc == 0, f"{os.path.basename(path)}: st_driver read rc {rc}: {msg}")
    tensors, meta = {}, {}
    for line in lines:
        kind, rest = line.split(" ", 1)
        if kind == "tensor":
            name, dtype, shape, numel, digest = rest.split(" ")
            dims = shape.strip("[]")
            tensors[name] = (dtype, [int(d) for d in dims.split(",")] if dims else [], int(numel), digest)
        elif kind == "meta":
            k, v = rest.split(" ", 1)
            meta[k] = v
    return tensors, meta


def check_same(what, got, want):
    t.check(list(got) == list(want) or set(got) == set(want),
            f"{what}: names {sorted(got)[:6]}, want {sorted(want)[:6]}")
    for name, x in want.items():
        g = got.get(name)
        w = (NAMES[x.dtype], list(x.shape), x.numel(), sha256_of(x))
        t.check(g == w, f"{what}: {name}: C read {g}, want {w}")


def test_read_save_file():
    g = torch.Generator().manual_seed(0)
    want = {
        "fp32": torch.randn(3, 4, generator=g),
        "fp16": torch.randn(5, generator=g).half(),
        "bf16": torch.randn(2, 3, generator=g).bfloat16(),
        "int64": torch.arange(-3, 4, dtype=torch.int64).reshape(7, 1),
        "f64": torch.randn(2, generator=g).double(),
        "i32": torch.tensor([-(2**31), 2**31 - 1], dtype=torch.int32),
        "i16": torch.tensor([-300, 300], dtype=torch.int16),
        "i8": torch.tensor([-128, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 5),
        "4d": torch.randn(2, 1, 3, 2, generator=g),
    }
    path = os.path.join(tmp, "save_file.safetensors")
    save_file(want, path, metadata={"format": "pt", "note": "from save_file"})
    got, meta = read_with_c(path, "format", "note", "absent")
    check_same("save_file", got, want)
    t.check(meta == {"format": "pt", "note": "from save_file"}, f"save_file metadata {meta}")


def test_read_hf_bert():
    try:
        from transformers import BertConfig, BertModel
    except ImportError as e:
        t.check(False, f"transformers is not importable ({e})")
        return
    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     vocab_size=100, max_position_embeddings=16)
    model = BertModel(cfg).eval()
    folder = os.path.join(tmp, "bert")
    model.save_pretrained(folder, safe_serialization=True)
    path = os.path.join(folder, "model.safetensors")
    want = load_file(path)
    got, meta = read_with_c(path, "format")
    check_same("save_pretrained", got, want)
    t.check(len(got) == len(want) and len(got) > 30, f"save_pretrained: {len(got)} tensors")
    t.check(meta.get("format") == "pt", f"save_pretrained metadata {meta}")


def expected_sample():
    return {
        "bert.encoder.layer.0.attention.self.query.weight":
            torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]).reshape(2, 3),
        "half": torch.tensor([1, -2, 0, 65504], dtype=torch.float16),
        "brain": torch.tensor([1, -3, 0, 3.140625], dtype=torch.bfloat16).reshape(2, 2),
        "double": torch.tensor([3.141592653589793, -1e300, 5e-324], dtype=torch.float64),
        "bert.embeddings.position_ids": torch.tensor([[-(2**63), -1, 0, 2**63 - 1]]),
        "i32": torch.tensor([-(2**31), 2**31 - 1], dtype=torch.int32),
        "i16": torch.tensor([-300, 300], dtype=torch.int16),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 128, 255], dtype=torch.uint8),
        "mask": torch.tensor([[True, False], [False, True]]),
        "scalar": torch.tensor(42.0),
        "empty": torch.zeros(4, 0),
    }


def test_c_writer():
    path = os.path.join(tmp, "c_writer.safetensors")
    rc, msg, _ = driver("write", path)
    t.check(rc == 0, f"st_driver write rc {rc}: {msg}")
    if rc != 0:
        return
    want = expected_sample()
    got = load_file(path)
    t.check(list(got) == list(want) or set(got) == set(want), f"load_file names {list(got)}")
    for name, x in want.items():
        g = got.get(name)
        t.check(g is not None and g.dtype == x.dtype and g.shape == x.shape and torch.equal(g, x),
                f"{name}: load_file gave {g!r}, want {x!r}")
    with safe_open(path, "pt") as f:
        t.check(f.metadata() == {"format": "pt"}, f"metadata {f.metadata()}")
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    t.check((8 + n) % 8 == 0, f"header length {n}: 8 + N is not a multiple of 8")
    header = json.loads(raw[8:8 + n])
    t.check(list(header) == ["__metadata__", *want], f"header order {list(header)}")
    # and the C reader reads what the C writer wrote
    back, _ = read_with_c(path)
    check_same("C writer", back, want)


def raw_file(name, header, data):
    h = header.encode() if isinstance(header, str) else header
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)
    return path


def test_both_refuse():
    e = lambda dt, shape, a, b: {"dtype": dt, "shape": shape, "data_offsets": [a, b]}  # noqa: E731
    cases = {
        "overlap": ({"a": e("F32", [2], 0, 8), "b": e("F32", [2], 4, 12)}, 12),
        "gap": ({"a": e("F32", [1], 0, 4), "b": e("F32", [1], 8, 12)}, 12),
        "trailing": ({"a": e("F32", [1], 0, 4)}, 8),
        "short": ({"a": e("F32", [4], 0, 16)}, 8),
        "size": ({"a": e("F32", [2, 2], 0, 12)}, 12),
        "dtype": ({"a": e("F33", [1], 0, 4)}, 4),
        "reversed": ({"a": e("F32", [1], 8, 4)}, 8),
    }
    for name, (header, datalen) in cases.items():
        path = raw_file(name + ".safetensors", json.dumps(header), bytes(datalen))
        rc, msg, _ = driver("read", path)
        t.check(rc is not None and rc < 0, f"{name}: the C reader accepted it ({rc} {msg})")
        try:
            with safe_open(path, "pt") as f:
                list(f.keys())
            ref = "accepted"
        except Exception as ex:  # noqa: BLE001 - any refusal will do
            ref = f"refused ({type(ex).__name__})"
        t.check(ref.startswith("refused"), f"{name}: safetensors {ref}, the C reader {msg}")


torch.set_num_threads(2)
test_read_save_file()
test_read_hf_bert()
test_c_writer()
test_both_refuse()
shutil.rmtree(tmp, ignore_errors=True)
t.done()
