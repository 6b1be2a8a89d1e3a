#!/usr/bin/env python3
"""test_hostile_http.py - hundreds of malformed requests against the real prunerd daemon.

Starts `$PRUNERD_BIN serve` (default build/server/prunerd) with tokens, a small body
limit and temporary roots (symlinks out of them included), submits two valid jobs on the
shared model, then sends malformed requests through raw sockets, one connection each,
and reads every reply whole.  Categories: bad JSON, wrong types and out-of-range values
for every field of the job request, path escapes through every path field, odd job ids
on every {id} route, query abuse, huge and lying bodies, wrong methods and content
types, bad auth.

For EVERY request: a complete HTTP response (no reset, no early close, no timeout), a
status below 500, and for a 4xx with a body the JSON error {"error": {"code",
"message"}} prunerd answers; where the request has one bad field, error.field must
name it (most requests are checked strictly: status, code and field).  Requests that
libmicrohttpd itself refuses before prunerd sees them (a Content-Length that is no
number, a header block over its memory, broken chunked framing) get the library's own
HTML page: for those only the first two assertions hold, and the test says so.

Uploads (PUT/GET/DELETE /v1/uploads..., the daemon run with --upload-limit 1M): five
good uploads first (a file over body_limit with Content-SHA256, a chunked one, a tar.gz
and a zip unpacked into folders, one sent after Expect: 100-continue), then bad names
(.., ., %2F, %00, 129 characters), bad replace / unpack / Content-SHA256, replays and
conflicts, Content-Lengths over upload_limit (answered before the body with Expect or over
64 MiB, else once it is dropped), chunked bodies
over it, bodies cut mid-way, hostile archives (.., absolute paths, links, devices,
10,001 entries, more than the limit once unpacked: 400 unsafe_archive naming the entry;
garbage: 400 invalid_archive), ?owner= abuse and other owners' uploads in jobs and
inspect.  After EVERY upload request the daemon "loses nothing": it is up, GET
/v1/uploads lists exactly the good uploads, <data dir>/uploads/alice/ holds exactly
them, unchanged, and <data dir>/uploads.partial/ is empty.  Last, a daemon on the same
data dir is killed mid-upload: the next one lists the good uploads only and empties
uploads.partial/.

At the end: the daemon is alive, GET /v1/jobs lists exactly the two jobs submitted on
purpose, the number of requests is printed (at least 150), SIGTERM makes it exit 0,
and its stderr holds no sanitizer report (PRUNERD_BIN may be an ASan build).

Needs the shared data (PRUNERD_SHARED, default ../shared): fails, never skips, without.
"""
import base64
import gzip
import hashlib
import io
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.parse
import warnings
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("PRUNERD_BIN") or os.path.join(HERE, "..", "build", "server", "prunerd")
SHARED = os.path.realpath(os.environ.get("PRUNERD_SHARED") or os.path.join(HERE, "..", "..", "shared"))
MODEL_NAME = "thucnews-bert-l4-h256.pt"
BODY_LIMIT = 256 * 1024
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                   "runtime error:", "ThreadSanitizer")
TOKENS = {"ops": ("admin", "s-admin"), "alice": ("submit", "s-alice"),
          "bob": ("submit", "s-bob"), "viewer": ("read", "s-view")}
ADMIN, ALICE, BOB, VIEWER = "s-admin", "s-alice", "s-bob", "s-view"

passed = failed = 0
sent = {}  # category -> requests sent
dropped = []  # (category, what, why)
mhd_pages = []  # (category, what, status): answered by libmicrohttpd's own HTML


def check(cond, what, expected=None, got=None):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        msg = f"FAIL {what}"
        if expected is not None or got is not None:
            msg += f": expected {expected}, got {got!r}"
        print(msg, flush=True)
    return cond


# ---------------------------------------------------------------- the daemon


class Daemon:
    """One prunerd serve on 127.0.0.1, port picked by itself, stderr in a file."""

    def __init__(self, tmp, args, config):
        self.log_path = os.path.join(tmp, "prunerd.log")
        conf = os.path.join(tmp, "prunerd.conf")
        with open(conf, "w") as f:
            f.write(config)
        cmd = [BIN, "serve", "--listen", "127.0.0.1:0", "--config", conf] + list(args)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        self.port = None
        deadline = time.time() + 60  # an ASan build starts slowly
        while time.time() < deadline and self.port is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prunerd exited with {self.proc.returncode}: {self.tail()}")
            with open(self.log_path, errors="replace") as f:
                for line in f:
                    if "listening on http://127.0.0.1:" in line:
                        self.port = int(line.split("http://127.0.0.1:")[1].split()[0])
            time.sleep(0.05)
        if self.port is None:
            self.proc.kill()
            raise RuntimeError("prunerd did not say it was listening: " + self.tail())

    def tail(self, n=3000):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-n:]

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log.close()
        return rc


# ---------------------------------------------------------------- HTTP by hand


class Reply:
    def __init__(self):
        self.status, self.headers, self.body, self.error = None, {}, b"", None

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def __repr__(self):
        if self.error:
            return f"<no complete reply: {self.error}>"
        return f"<{self.status} {self.body[:300]!r}>"


class Conn:
    """A socket with a read buffer; read_reply parses one response (1xx skipped)."""

    def __init__(self, port, timeout=20):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        c = self.s.recv(65536)
        if not c:
            raise EOFError("the connection closed before the reply was complete")
        self.buf += c

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def read_reply(self, head=False):
        r = Reply()
        try:
            while True:
                while b"\r\n\r\n" not in self.buf:
                    self._fill()
                block, _, self.buf = self.buf.partition(b"\r\n\r\n")
                lines = block.split(b"\r\n")
                parts = lines[0].split(b" ", 2)
                if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                    raise ValueError(f"not a status line: {lines[0][:100]!r}")
                r.status = int(parts[1])
                r.headers = {}
                for l in lines[1:]:
                    k, _, v = l.partition(b":")
                    r.headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
                if not 100 <= r.status < 200:
                    break
            if head or r.status in (204, 304):
                return r
            if "chunked" in r.headers.get("transfer-encoding", "").lower():
                while True:
                    size = int(self._line().split(b";")[0], 16)
                    if size == 0:
                        while self._line():
                            pass
                        break
                    r.body += self._take(size)
                    self._take(2)
            elif "content-length" in r.headers:
                r.body = self._take(int(r.headers["content-length"]))
            else:  # to the end of the connection
                try:
                    while True:
                        self._fill()
                except EOFError:
                    pass
                r.body, self.buf = self.buf, b""
        except (OSError, EOFError, ValueError) as e:  # reset, broken pipe, timeout, garbage
            r.error = f"{type(e).__name__}: {e}"
        return r

    def close(self):
        self.s.close()


def http_bytes(method, path, body=None, headers=None, token=ADMIN, ctype="application/json",
               close=True):
    """A request as bytes: Host, Authorization, Content-Type and Content-Length when given."""
    h = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if token is not None:
        h.append(f"Authorization: Bearer {token}")
    if body is not None:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        if ctype is not None:
            h.append(f"Content-Type: {ctype}")
        h.append(f"Content-Length: {len(body)}")
    for k, v in (headers or {}).items():
        h.append(f"{k}: {v}")
    if close:
        h.append("Connection: close")
    head = ("\r\n".join(h) + "\r\n\r\n").encode("utf-8", "surrogateescape")
    return head + (body or b"")


def error_of(body):
    e = body.get("error") if isinstance(body, dict) else None
    return e if isinstance(e, dict) else {}


class Run:
    """Sends requests and checks every reply; remembers the counts per category."""

    def __init__(self, port):
        self.port = port

    def verify(self, cat, what, r, status=None, code=None, field=None, by_mhd=False, head=False):
        """The checks every reply gets, then the expected status, code and field if given."""
        sent[cat] = sent.get(cat, 0) + 1
        label = f"[{cat}] {what}"
        if r.error:
            dropped.append((cat, what, r.error))
            check(False, f"{label}: a complete HTTP response", "a whole reply", r.error)
            return r
        check(r.status < 500, f"{label}: status below 500", "< 500", (r.status, r.body[:300]))
        body = r.json()
        if by_mhd:
            # libmicrohttpd answers these itself, before prunerd's handler runs: its own
            # HTML page, which prunerd cannot change (see the module docstring)
            mhd_pages.append((cat, what, r.status))
        elif 400 <= r.status < 500 and r.body and not head:
            e = error_of(body)
            check(isinstance(e.get("code"), str) and isinstance(e.get("message"), str),
                  f"{label}: JSON error body with code and message",
                  '{"error": {"code": str, "message": str, ...}}', r.body[:300])
        if status is not None:
            want = status if isinstance(status, (tuple, list, set)) else (status,)
            check(r.status in want, f"{label}: status", " or ".join(map(str, want)),
                  (r.status, r.body[:300]))
        if code is not None:
            check(error_of(body).get("code") == code, f"{label}: error code", code,
                  error_of(body).get("code") if body is not None else r.body[:200])
        if field is not None:
            check(error_of(body).get("field") == field, f"{label}: error field", repr(field),
                  error_of(body).get("field") if body is not None else r.body[:200])
        return r

    def raw(self, cat, what, data, head=False, **expect):
        """Sends bytes on a new connection and reads one reply."""
        try:
            c = Conn(self.port)
        except OSError as e:
            r = Reply()
            r.error = f"connect: {e}"
            return self.verify(cat, what, r, **expect)
        try:
            c.send(data)
            r = c.read_reply(head=head)
        except OSError as e:
            r = Reply()
            r.error = f"{type(e).__name__}: {e}"
        finally:
            c.close()
        return self.verify(cat, what, r, head=head, **expect)

    def req(self, cat, what, method, path, body=None, headers=None, token=ADMIN,
            ctype="application/json", **expect):
        return self.raw(cat, what, http_bytes(method, path, body, headers, token, ctype),
                        head=(method == "HEAD"), **expect)

    def post(self, cat, what, body, **expect):
        return self.req(cat, what, "POST", "/v1/jobs", body, **expect)


def q(s):
    return urllib.parse.quote(s, safe="")


def set_path(obj, dotted, value):
    """A deep copy of obj with obj[a][b]... = value; value DELETE removes the key."""
    obj = json.loads(json.dumps(obj))
    keys = dotted.split(".")
    cur = obj
    for k in keys[:-1]:
        if not isinstance(cur.get(k), dict):
            cur[k] = {}
        cur = cur[k]
    if value is DELETE:
        cur.pop(keys[-1], None)
    else:
        cur[keys[-1]] = value
    return obj


DELETE = object()


# ---------------------------------------------------------------- the request bases


def bases(root):
    data = os.path.join(SHARED, "data")
    ev = {"data": os.path.join(data, "thucnews", "dev.txt"),
          "vocab": os.path.join(data, "vocab", "bert-base-chinese-vocab.txt"),
          "classes": os.path.join(data, "thucnews", "class.txt"), "limit": 16, "batch_size": 16}
    base = {"name": "hostile", "model": "model.pt",
            "targets": ["bert.encoder.layer.*.attention.self.query"],
            "method": "l1_unstructured", "amount": 0.3, "eval": ev, "outputs": ["state_dict"]}
    b = {"base": base}
    b["ln"] = dict(base, method="ln_structured", options={"n": 1, "dim": 0})
    thr = dict(base, method="threshold", options={"threshold": 0.01})
    del thr["amount"]
    b["thr"] = thr
    mask = dict(base, method="custom_from_mask", options={"mask": os.path.join(root, "mask.pth")})
    del mask["amount"]
    b["mask"] = mask
    plug = dict(base, method="plugin", options={"plugin": "foobar"})
    del plug["amount"]
    b["plugin"] = plug
    st = {"name": "hostile-structured", "model": "model.pt", "targets": ["bert.encoder.layer.*"],
          "method": "structured", "structured": {"heads": 2, "neurons": 0.1}, "eval": ev}
    b["st"] = st
    b["st_cal"] = dict(st, structured={"heads": 2, "importance": "taylor",
                                       "calibration": {"data": os.path.join(data, "thucnews", "train.txt"),
                                                       "samples": 16}})
    b["st_tgt"] = dict(st, structured={"target": {"macs": 0.5, "seq_len": 32}})
    return b


# ---------------------------------------------------------------- categories


def bad_json(run):
    cat = "bad JSON"
    J = dict(code="invalid_json", field="body", status=400)
    cases = [
        ("empty body", b"", dict(status=400, code="invalid_field", field="body")),
        ("whitespace only", b"  \r\n\t ", J),
        ("truncated object", b'{"model": "model.pt", "targets": ["x"', J),
        ("truncated key", b'{"mod', J),
        ("truncated string value", b'{"model": "model.p', J),
        ("lone {", b"{", J),
        ("lone [", b"[", J),
        ("lone quote", b'"', J),
        ("trailing garbage", b'{"model": "model.pt"} xyz', J),
        ("two objects", b"{} {}", J),
        ("trailing comma", b'{"model": "model.pt",}', J),
        ("single quotes", b"{'model': 'model.pt'}", J),
        ("unquoted key", b"{model: 1}", J),
        ("comment", b'{/* c */ "model": "m"}', J),
        ("NaN", b'{"model": "m", "amount": NaN}', J),
        ("Infinity", b'{"model": "m", "amount": Infinity}', J),
        ("-Infinity", b'{"model": "m", "amount": -Infinity}', J),
        ("1e999", b'{"model": "m", "amount": 1e999}', J),
        ("-1e999", b'{"model": "m", "amount": -1e999}', J),
        ("integer over int64", b'{"model": "m", "amount": 99999999999999999999}', J),
        ("leading zero", b'{"model": "m", "amount": 01}', J),
        ("hex number", b'{"model": "m", "amount": 0x10}', J),
        ("plus sign", b'{"model": "m", "amount": +1}', J),
        ("bare fraction", b'{"model": "m", "amount": .5}', J),
        ("deep [ x10000", b"[" * 10000, J),
        ("deep {\"a\": x10000", b'{"a":' * 10000, J),
        ("deep [ x200000 (near the body limit)", b"[" * 200000, J),
        ("deep but closed (3000)", b"[" * 3000 + b"]" * 3000, J),
        ("invalid UTF-8 0xff", b'{"model": "m", "name": "\xff"}', J),
        ("overlong UTF-8 0xc0 0xaf", b'{"model": "m", "name": "\xc0\xaf"}', J),
        ("truncated UTF-8", b'{"model": "m", "name": "\xe4\xb8"}', J),
        ("UTF-8 surrogate bytes", b'{"model": "m", "name": "\xed\xa0\x80"}', J),
        ("lone surrogate \\ud800", b'{"model": "m", "name": "\\ud800"}', J),
        ("lone low surrogate \\udc00", b'{"model": "m", "name": "\\udc00"}', J),
        ("surrogate then letter", b'{"model": "m", "name": "\\ud800\\u0041"}', J),
        ("bad escape", b'{"model": "m", "name": "\\q"}', J),
        ("short \\u escape", b'{"model": "m", "name": "\\u12"}', J),
        ("BOM", b'\xef\xbb\xbf{"model": "model.pt"}', J),
        ("raw NUL in a string", b'{"model": "m\x00.pt"}', J),
        ("raw NUL after the object", b'{"model": "m"}\x00', J),
        ("\\u0000 in a string", b'{"model": "m\\u0000.pt"}', J),
        ("raw control char in a string", b'{"model": "m\x01"}', J),
        ("top-level array", b"[]", dict(status=400)),
        ("top-level string", b'"model"', J),
        ("top-level number", b"42", J),
        ("top-level null", b"null", J),
        ("top-level true", b"true", J),
        ("duplicate top-level key", b'{"model": "model.pt", "amount": 0.3, "amount": 5}',
         dict(status=400, code="duplicate_key", field="amount")),
        ("duplicate nested key", b'{"model": "m", "eval": {"limit": 1, "limit": 2}}',
         dict(status=400, code="duplicate_key", field="limit")),
        ("duplicate key, deep", b'{"model": "m", "structured": {"target": {"macs": 0.5, "macs": 0.6}}}',
         dict(status=400, code="duplicate_key", field="macs")),
        ("duplicate key in a list's object", b'{"model": "m", "options": {"plugin_params": [{"a": 1, "a": 2}]}}',
         dict(status=400, code="duplicate_key", field="a")),
        ("duplicate key spelt with an escape second", b'{"amount": 1, "a\\u006dount": 2}',
         dict(status=400, code="duplicate_key", field="amount")),
        ("duplicate key of 150 characters", b'{"' + b"k" * 150 + b'": 1, "' + b"k" * 150 + b'": 2}',
         dict(status=400, code="duplicate_key", field="k" * 150)),
    ]
    for what, body, exp in cases:
        run.post(cat, what, body, **exp)
    # valid JSON, deeply nested where a string belongs (under jansson's depth limit)
    deep = b'{"model": "model.pt", "targets": ["x"], "method": "identity", "name": ' + b"[" * 1500 + b"]" * 1500 + b"}"
    run.post(cat, "1500 nested lists as the name", deep, status=400, code="invalid_field", field="name")


def wrong_types(run, b):
    """Every field of the job request, wrong type or out of range; one bad field each."""
    cat_t, cat_r = "wrong types", "out of range"
    T = "t"
    R = "r"
    cases = [
        # (kind, base, dotted key, value, expected field); value DELETE removes the key
        (T, "base", "model", 3, "model"), (T, "base", "model", [], "model"),
        (T, "base", "model", {}, "model"), (T, "base", "model", True, "model"),
        (T, "base", "model", None, "model"), (T, "base", "model", "", "model"),
        (T, "base", "model", DELETE, "model"),
        (T, "base", "model_config", 3, "model_config"), (T, "base", "model_config", [], "model_config"),
        (T, "base", "model_config", True, "model_config"), (T, "base", "model_config", "", "model_config"),
        (T, "base", "targets", 3, "targets"), (T, "base", "targets", [], "targets"),
        (T, "base", "targets", [3], "targets"), (T, "base", "targets", [""], "targets"),
        (T, "base", "targets", {}, "targets"), (T, "base", "targets", None, "targets"),
        (T, "base", "targets", [None], "targets"), (T, "base", "targets", ["a", 5], "targets"),
        (T, "base", "targets", "", "targets"),
        (T, "base", "method", 3, "method"), (T, "base", "method", "nope", "method"),
        (T, "base", "method", [], "method"), (T, "base", "method", True, "method"),
        (T, "base", "method", "L1_UNSTRUCTURED", "method"),
        (T, "base", "amount", "0.3", "amount"), (T, "base", "amount", True, "amount"),
        (T, "base", "amount", [0.3], "amount"), (T, "base", "amount", {}, "amount"),
        (T, "base", "amount", DELETE, "amount"),
        (R, "base", "amount", -0.5, "amount"), (R, "base", "amount", 1.5, "amount"),
        (R, "base", "amount", -1, "amount"), (R, "base", "amount", 1e308, "amount"),
        (R, "base", "amount", -1e-300, "amount"), (R, "base", "amount", 2 ** 62, "amount"),
        (T, "base", "amount_kind", 3, "amount_kind"), (T, "base", "amount_kind", "percent", "amount_kind"),
        (T, "base", "amount_kind", True, "amount_kind"),
        (T, "base", "scope", 3, "scope"), (T, "base", "scope", "world", "scope"),
        (T, "ln", "scope", "global", "scope"),
        (T, "base", "options", "x", "options"), (T, "base", "options", [], "options"),
        (T, "base", "options", 3, "options"), (T, "base", "options", True, "options"),
        (T, "base", "options.bogus", 1, "options.bogus"),
        (R, "ln", "options.n", 0, "options.n"), (R, "ln", "options.n", -1, "options.n"),
        (T, "ln", "options.n", "2", "options.n"), (T, "ln", "options.n", "nan", "options.n"),
        (T, "ln", "options.n", True, "options.n"), (T, "ln", "options.n", [], "options.n"),
        (T, "ln", "options.n", DELETE, "options.n"),
        (R, "ln", "options.dim", -9, "options.dim"), (R, "ln", "options.dim", 8, "options.dim"),
        (R, "ln", "options.dim", 1.5, "options.dim"), (T, "ln", "options.dim", "1", "options.dim"),
        (R, "ln", "options.dim", 2 ** 40, "options.dim"), (T, "ln", "options.dim", True, "options.dim"),
        (R, "base", "options.seed", -1, "options.seed"), (R, "base", "options.seed", 1.5, "options.seed"),
        (T, "base", "options.seed", "7", "options.seed"), (T, "base", "options.seed", True, "options.seed"),
        (R, "thr", "options.threshold", -1, "options.threshold"),
        (T, "thr", "options.threshold", "x", "options.threshold"),
        (T, "thr", "options.threshold", DELETE, "options.threshold"),
        (T, "thr", "options.threshold", True, "options.threshold"),
        (T, "mask", "options.mask", 3, "options.mask"), (T, "mask", "options.mask", "", "options.mask"),
        (T, "mask", "options.mask", DELETE, "options.mask"), (T, "mask", "options.mask", [], "options.mask"),
        (T, "plugin", "options.plugin", 3, "options.plugin"),
        (T, "plugin", "options.plugin", "a/b", "options.plugin"),
        (T, "plugin", "options.plugin", "../foobar", "options.plugin"),
        (T, "plugin", "options.plugin", "/tmp/x", "options.plugin"),
        (R, "plugin", "options.plugin", "x" * 65, "options.plugin"),
        (T, "plugin", "options.plugin", "", "options.plugin"),
        (T, "plugin", "options.plugin", DELETE, "options.plugin"),
        (T, "plugin", "options.plugin", "é", "options.plugin"),
        (T, "plugin", "options.plugin", "foo.so", "options.plugin"),
        (T, "base", "options.iterative", "yes", "options.iterative"),
        (T, "base", "options.iterative", 1, "options.iterative"),
        (T, "base", "eval", "x", "eval"), (T, "base", "eval", [], "eval"),
        (T, "base", "eval", 3, "eval"), (T, "base", "eval", True, "eval"),
        (T, "base", "eval.bogus", 1, "eval.bogus"),
        (T, "base", "eval.data", 3, "eval.data"), (T, "base", "eval.data", "", "eval.data"),
        (T, "base", "eval.data", DELETE, "eval.data"), (T, "base", "eval.data", [], "eval.data"),
        (T, "base", "eval.vocab", 3, "eval.vocab"), (T, "base", "eval.vocab", "", "eval.vocab"),
        (T, "base", "eval.vocab", [], "eval.vocab"),
        (T, "base", "eval.vocab", DELETE, "eval.vocab"),  # the TorchScript model has no vocab.txt
        (T, "base", "eval.classes", 3, "eval.classes"), (T, "base", "eval.classes", DELETE, "eval.classes"),
        (T, "base", "eval.classes", "", "eval.classes"),
        (R, "base", "eval.max_length", 1, "eval.max_length"),
        (R, "base", "eval.max_length", 513, "eval.max_length"),
        (R, "base", "eval.max_length", 0, "eval.max_length"),
        (R, "base", "eval.max_length", -1, "eval.max_length"),
        (R, "base", "eval.max_length", 32.5, "eval.max_length"),
        (R, "base", "eval.max_length", 32.0, "eval.max_length"),
        (T, "base", "eval.max_length", "32", "eval.max_length"),
        (R, "base", "eval.batch_size", 0, "eval.batch_size"),
        (R, "base", "eval.batch_size", 4097, "eval.batch_size"),
        (R, "base", "eval.batch_size", -5, "eval.batch_size"),
        (R, "base", "eval.batch_size", 2.5, "eval.batch_size"),
        (T, "base", "eval.batch_size", "x", "eval.batch_size"),
        (R, "base", "eval.limit", 0, "eval.limit"), (R, "base", "eval.limit", -1, "eval.limit"),
        (R, "base", "eval.limit", 2 ** 31, "eval.limit"), (R, "base", "eval.limit", 1.0, "eval.limit"),
        (T, "base", "eval.limit", "1", "eval.limit"),
        (T, "base", "eval.lowercase", "yes", "eval.lowercase"),
        (T, "base", "eval.lowercase", 1, "eval.lowercase"),
        (T, "base", "eval.lowercase", [], "eval.lowercase"),
        (T, "base", "eval.padding", 3, "eval.padding"), (T, "base", "eval.padding", "left", "eval.padding"),
        (T, "base", "eval.tokenizer", 3, "eval.tokenizer"),
        (T, "base", "eval.tokenizer", "wordpiece", "eval.tokenizer"),
        (T, "base", "outputs", "state_dict", "outputs"), (T, "base", "outputs", [3], "outputs"),
        (T, "base", "outputs", ["onnx"], "outputs"),
        (T, "base", "outputs", ["state_dict", "state_dict"], "outputs"),
        (T, "base", "outputs", [], "outputs"), (T, "base", "outputs", {}, "outputs"),
        (T, "base", "outputs", ["torchscript", "state_dict", "safetensors", "state_dict"], "outputs"),
        (T, "base", "outputs", ["safetensors"], "outputs"),  # from a TorchScript model
        (T, "base", "device", 5, "device"), (T, "base", "device", "gpu", "device"),
        (T, "base", "device", "cuda:", "device"), (T, "base", "device", "cuda:-1", "device"),
        (R, "base", "device", "cuda:99999", "device"), (T, "base", "device", "CPU", "device"),
        (T, "base", "device", [], "device"),
        (T, "base", "name", 3, "name"), (T, "base", "name", [], "name"), (T, "base", "name", {}, "name"),
        (R, "base", "name", "x" * 201, "name"), (R, "base", "name", "é" * 101, "name"),
        (T, "base", "structured", {"heads": 1}, "structured"),
        (T, "base", "bogus", 1, "bogus"), (T, "base", "Model", "model.pt", "Model"),
        (T, "base", "k" * 100, 1, "k" * 100),  # an unknown key longer than 63 bytes
        (T, "base", "é" * 40, 1, "é" * 40),  # ... of multi-byte characters
        # method structured and its object
        (T, "st", "structured", "x", "structured"), (T, "st", "structured", [], "structured"),
        (T, "st", "structured", None, "structured"), (T, "st", "structured", 3, "structured"),
        (T, "st", "amount", 0.3, "amount"), (T, "st", "scope", "local", "scope"),
        (T, "st", "amount_kind", "count", "amount_kind"),
        (R, "st", "structured.heads", -1, "structured.heads"),
        (T, "st", "structured.heads", "2", "structured.heads"),
        (T, "st", "structured.heads", True, "structured.heads"),
        (T, "st", "structured.heads", [], "structured.heads"),
        (R, "st", "structured.heads", 1.5, "structured.heads"),
        (R, "st", "structured.neurons", -0.1, "structured.neurons"),
        (R, "st", "structured.neurons", 2.0, "structured.neurons"),
        (T, "st", "structured.neurons", "x", "structured.neurons"),
        (T, "st", "structured.scope", 3, "structured.scope"),
        (T, "st", "structured.scope", "world", "structured.scope"),
        (T, "st", "structured.importance", 3, "structured.importance"),
        (T, "st", "structured.importance", "gradient", "structured.importance"),
        (T, "st", "structured.rescale", "yes", "structured.rescale"),
        (T, "st", "structured.rescale", 1, "structured.rescale"),
        (R, "st", "structured.min_heads_per_layer", -1, "structured.min_heads_per_layer"),
        (R, "st", "structured.min_heads_per_layer", 1025, "structured.min_heads_per_layer"),
        (R, "st", "structured.min_heads_per_layer", 1.5, "structured.min_heads_per_layer"),
        (T, "st", "structured.min_heads_per_layer", "1", "structured.min_heads_per_layer"),
        (T, "st", "structured.latency", "x", "structured.latency"),
        (T, "st", "structured.latency", 3, "structured.latency"),
        (R, "st", "structured.latency.batches", [], "structured.latency.batches"),
        (R, "st", "structured.latency.batches", [0], "structured.latency.batches"),
        (R, "st", "structured.latency.batches", [4097], "structured.latency.batches"),
        (R, "st", "structured.latency.batches", [1] * 9, "structured.latency.batches"),
        (R, "st", "structured.latency.batches", [1.5], "structured.latency.batches"),
        (T, "st", "structured.latency.batches", "8", "structured.latency.batches"),
        (R, "st", "structured.latency.seq_lens", [0], "structured.latency.seq_lens"),
        (R, "st", "structured.latency.seq_lens", [1] * 9, "structured.latency.seq_lens"),
        (T, "st", "structured.latency.seq_lens", ["32"], "structured.latency.seq_lens"),
        (T, "st", "structured.latency.bogus", 1, "structured.latency.bogus"),
        (T, "st", "structured.bogus", 1, "structured.bogus"),
        (T, "st", "structured.calibration", {"data": "x"}, "structured.calibration"),  # magnitude
        (T, "st_tgt", "structured.target", "x", "structured.target"),
        (T, "st_tgt", "structured.target", 3, "structured.target"),
        (R, "st_tgt", "structured.target.macs", 0, "structured.target.macs"),
        (R, "st_tgt", "structured.target.macs", 1.5, "structured.target.macs"),
        (R, "st_tgt", "structured.target.macs", -0.1, "structured.target.macs"),
        (T, "st_tgt", "structured.target.macs", "0.5", "structured.target.macs"),
        (T, "st_tgt", "structured.target.macs", DELETE, "structured.target.macs"),
        (R, "st_tgt", "structured.target.seq_len", 0, "structured.target.seq_len"),
        (R, "st_tgt", "structured.target.seq_len", 4097, "structured.target.seq_len"),
        (T, "st_tgt", "structured.target.bogus", 1, "structured.target.bogus"),
        (T, "st_tgt", "structured.heads", 2, "structured.target"),  # both
        (T, "st_tgt", "structured.scope", "local", "structured.scope"),
        (T, "st_cal", "structured.calibration", "x", "structured.calibration"),
        (T, "st_cal", "structured.calibration", DELETE, "structured.calibration"),
        (T, "st_cal", "structured.calibration.data", 3, "structured.calibration.data"),
        (T, "st_cal", "structured.calibration.data", "", "structured.calibration.data"),
        (T, "st_cal", "structured.calibration.data", DELETE, "structured.calibration.data"),
        (R, "st_cal", "structured.calibration.samples", 0, "structured.calibration.samples"),
        (R, "st_cal", "structured.calibration.samples", 1000001, "structured.calibration.samples"),
        (R, "st_cal", "structured.calibration.samples", 1.5, "structured.calibration.samples"),
        (R, "st_cal", "structured.calibration.batch_size", 0, "structured.calibration.batch_size"),
        (R, "st_cal", "structured.calibration.batch_size", 4097, "structured.calibration.batch_size"),
        (T, "st_cal", "structured.calibration.labels", 3, "structured.calibration.labels"),
        (T, "st_cal", "structured.calibration.labels", "gold", "structured.calibration.labels"),
        (T, "st_cal", "structured.calibration.bogus", 1, "structured.calibration.bogus"),
        (T, "st_cal", "eval", None, "structured.calibration"),  # calibration reads with eval's settings
        (T, "st_cal", "structured.calibration.data", b["base"]["eval"]["data"],
         "structured.calibration.data"),  # the eval set itself
    ]
    for kind, base, key, value, field in cases:
        shown = "removed" if value is DELETE else json.dumps(value, ensure_ascii=False)
        if len(shown) > 40:
            shown = shown[:37] + "..."
        req = set_path(b[base], key, value)
        run.post(cat_t if kind == T else cat_r, f"{base}: {key[:50]} = {shown}", req,
                 status=400, field=field)
    # the structured request on a TorchScript model: well formed, refused naming method
    run.post(cat_t, "st: method structured on a TorchScript model", b["st"], status=400, field="method")
    run.post(cat_t, "st: no heads, neurons or target", set_path(b["st"], "structured", {"scope": "global"}),
             status=400, field="structured")


def path_escapes(run, b, tmp, root):
    """Every path field, and inspect's path and model_config, with escapes."""
    cat = "path escapes"
    outside = os.path.join(tmp, "outside")
    escapes = [
        # (what, path, expected status, expected code)
        ("'..'", "../outside/secret.pt", 403, "denied"),
        ("'x/../..'", "sub/../../outside/secret.pt", 403, "denied"),
        ("'..' at the end", "sub/..", 403, "denied"),
        ("absolute outside", "/etc/passwd", 403, "denied"),
        ("absolute outside (temp)", os.path.join(outside, "secret.pt"), 403, "denied"),
        ("absolute with '..' through a root", os.path.join(root, "..", "outside", "secret.pt"), 403, "denied"),
        ("/proc/self/environ", "/proc/self/environ", 403, "denied"),
        ("/proc/self/root/...", "/proc/self/root" + os.path.join(root, "model.pt"), 403, "denied"),
        ("/proc/self/cwd/...", "/proc/self/cwd/model.pt", 403, "denied"),
        ("/dev/zero", "/dev/zero", 403, "denied"),
        ("symlink in the root to a file outside", "escape.pt", 403, "denied"),
        ("symlink in the root to a folder outside", "outdir/secret.pt", 403, "denied"),
        ("symlink in the root to /etc", "etc/passwd", 403, "denied"),
        ("symlink in the root to /proc/self", "procself/environ", 403, "denied"),
        ("absolute symlink path", os.path.join(root, "escape.pt"), 403, "denied"),
        ("a root's sibling with the root as prefix", root + "-evil/secret.pt", 403, "denied"),
        ("symlink loop", "loop", (400, 403, 404), None),
        ("a 300-byte name (over NAME_MAX)", "a" * 300, (400, 403, 404), None),
        ("a 5000-byte path", "a/" * 2500, 400, None),
        ("a path that does not exist", "nope.pt", 400, "not_found"),
        ("a FIFO", "fifo", 400, None),
    ]
    fields = [("model", "base"), ("model_config", "base"), ("eval.data", "base"),
              ("eval.vocab", "base"), ("eval.classes", "base"), ("options.mask", "mask"),
              ("structured.calibration.data", "st_cal")]
    for field, base in fields:
        for what, path, status, code in escapes:
            req = set_path(b[base], field, path)
            run.post(cat, f"{field}: {what}", req, status=status, code=code, field=field)
        # a NUL inside the path is refused by the JSON parser (jansson, without ALLOW_NUL)
        body = json.dumps(set_path(b[base], field, "model.pt\u0000../../etc/passwd")).encode()
        run.post(cat, f"{field}: NUL inside the path", body, status=400, code="invalid_json", field="body")
        if field != "model":
            req = set_path(b[base], field, ".")
            run.post(cat, f"{field}: the root folder itself", req, status=400, field=field)
    # a message that quotes the path and is cut at 256 bytes must stay UTF-8
    req = set_path(b["base"], "model", "a" + "é" * 200)
    run.post(cat, "model: a 401-byte name of 'é' (the message quotes it)", req,
             status=(400, 403, 404), field="model")
    req = set_path(b["base"], "eval.data", "d/" + "é" * 100 + "/" + "é" * 100)
    run.post(cat, "eval.data: a missing path of 200 'é' (the message quotes it, cut at 256 bytes)", req,
             status=400, code="not_found", field="eval.data")
    req = set_path(b["base"], "eval.vocab", "../" + "é" * 300)
    run.post(cat, "eval.vocab: '..' then 300 'é' (the message quotes it, cut at 256 bytes)", req,
             status=403, code="denied", field="eval.vocab")
    req = set_path(b["base"], "model", "/" + "é" * 300)
    run.post(cat, "model: '/' then 300 'é', outside (the message quotes it, cut at 256 bytes)", req,
             status=403, code="denied", field="model")
    # inspect
    for what, path, status, code in escapes:
        if code == "not_found":
            status = 404  # inspect answers a missing model 404 (a job's missing file is 400)
        run.req(cat, f"inspect path: {what}", "GET", "/v1/models/inspect?path=" + q(path),
                status=status, code=code, field="path")
    run.req(cat, "inspect path: 'model.pt%00../../etc/passwd'", "GET",
            "/v1/models/inspect?path=model.pt%00..%2F..%2Fetc%2Fpasswd", status=(400, 403, 404), field="path")
    # %00 is not decoded (a NUL would cut the path short): it names a file called "%00", which is not there.
    run.req(cat, "inspect path: %00", "GET", "/v1/models/inspect?path=%00", status=404, field="path")
    run.req(cat, "inspect path: %ff", "GET", "/v1/models/inspect?path=%ff", status=(400, 404), field="path")
    run.req(cat, "inspect path: a directory that is no model", "GET", "/v1/models/inspect?path=sub",
            status=400, field="path")
    for what, path in (("..", "../outside/secret.pt"), ("/etc/passwd", "/etc/passwd"),
                       ("symlink out", "escape.pt")):
        run.req(cat, f"inspect model_config: {what}", "GET",
                f"/v1/models/inspect?path=model.pt&model_config={q(path)}", status=403,
                code="denied", field="model_config")


def odd_ids(run, job1):
    cat = "odd ids"
    ids = [
        ("empty", "", 404), ("one space", "%20", 404), ("200 x", "x" * 200, 404),
        ("127 x", "x" * 127, 404), ("%00", "%00", 404), ("%00 then the real id", "%00" + job1, 404),
        ("..", "..", 404), ("%2e%2e", "%2e%2e", 404),
        ("../../etc/passwd", "../../etc/passwd", 404), ("%2F..%2F..%2Fetc", "%2F..%2F..%2Fetc", 404),
        ("unicode é", "%C3%A9", 404), ("invalid UTF-8 %ff", "%ff", 404),
        ("uppercase of a real id", job1.upper(), 404), ("a real id + x", job1 + "x", 404),
        ("SQL", q("' OR '1'='1"), 404), ("glob *", "*", 404), ("percent sign", "%25", 404),
        ("the nil UUID", "00000000-0000-0000-0000-000000000000", 404),
        # last: the real id with a NUL after it names no job either (a daemon that cuts
        # the decoded path at the NUL acts on the real job: DELETE removes it)
        ("the real id + %00 + junk", job1 + "%00junk", 404),
    ]
    routes = [("GET", "/v1/jobs/{}"), ("POST", "/v1/jobs/{}/cancel"), ("GET", "/v1/jobs/{}/result"),
              ("GET", "/v1/jobs/{}/checkpoint"), ("DELETE", "/v1/jobs/{}")]  # DELETE last
    for what, jid, status in ids:
        for method, pattern in routes:
            path = pattern.format(jid)
            st = status
            if method == "GET" and pattern == "/v1/jobs/{}" and jid == "":
                st = (200, 404)  # /v1/jobs/ : the list or 404
            if method == "DELETE" and jid == "":
                st = (404, 405)
            run.req(cat, f"{method} {pattern}: {what}", method, path, status=st)
    # the job that exists is still there after DELETE of its uppercase id and '%00' tails
    run.req(cat, "GET the real job (untouched)", "GET", f"/v1/jobs/{job1}", status=200)


def query_abuse(run, job1):
    cat = "query abuse"
    L = dict(status=400, code="invalid_field", field="limit")
    for v in ("-1", "0", "201", "1e9", "1.5", "abc", "", "99999999999999999999", "0x10", "%00", "%ff",
              " 5x", "5%20abc"):
        run.req(cat, f"limit={v}", "GET", f"/v1/jobs?limit={v}", **L)
    run.req(cat, "limit twice (5, abc)", "GET", "/v1/jobs?limit=5&limit=abc", status=(200, 400))
    run.req(cat, "limit without '='", "GET", "/v1/jobs?limit", status=(200, 400))
    run.req(cat, "unknown parameter", "GET", "/v1/jobs?foo=bar&__proto__=x", status=(200, 400))
    run.req(cat, "empty query parts", "GET", "/v1/jobs?&&&=&", status=(200, 400))
    S = dict(status=400, code="invalid_field", field="status")
    for v in ("sleeping", "SUCCEEDED", "queued%00", "%ff", "queued,running", "a" * 3000,
              q("é" * 600)):
        run.req(cat, f"status={v[:30]}", "GET", f"/v1/jobs?status={v}", **S)
    run.req(cat, "status twice", "GET", "/v1/jobs?status=queued&status=zzz", status=(200, 400))
    C = dict(status=400, code="invalid_field", field="cursor")
    for what, v in (("garbage", "garbage!"), ("SQL", q("';DROP TABLE jobs;--")), ("3000 bytes", "A" * 3000),
                    ("33 hex", "0" * 33), ("32 hex, seq 0", "0" * 32),
                    ("32 hex, infinite time", "7ff0000000000000" + "0" * 15 + "1"),
                    ("32 hex, NaN time", "fff8000000000000" + "0" * 15 + "1"),
                    ("32 hex, negative time", "bff0000000000000" + "0" * 15 + "1"),
                    ("32 hex, seq over int64", "3ff0000000000000ffffffffffffffff"),
                    ("uppercase hex", "3FF0000000000000" + "0" * 15 + "1"),
                    ("%ff", "%ff"), ("'a' + 40 'é' (cut at 64 bytes)", q("a" + "é" * 40))):
        run.req(cat, f"cursor: {what}", "GET", f"/v1/jobs?cursor={v}", **C)
    run.req(cat, "cursor: a valid one far in the past", "GET",
            "/v1/jobs?cursor=0000000000000001" + "0" * 15 + "1", status=200)
    F = dict(status=400, code="invalid_field", field="format")
    base = f"/v1/jobs/{job1}/checkpoint"
    for v in ("onnx", q("../../etc/passwd"), "%ff", "TORCHSCRIPT", "torchscript%00", "a" * 3000):
        run.req(cat, f"checkpoint format={v[:30]}", "GET", f"{base}?format={v}", **F)
    run.req(cat, "checkpoint file= with torchscript", "GET", f"{base}?format=torchscript&file=" + q("../../etc/passwd"),
            status=400, code="invalid_field", field="file")
    run.req(cat, "checkpoint file= without format", "GET", f"{base}?file=model.safetensors",
            status=400, field="file")
    run.req(cat, "checkpoint safetensors file=../.. (job saved none)", "GET",
            f"{base}?format=safetensors&file=" + q("../../etc/passwd"), status=404, field="format")
    run.req(cat, "checkpoint format the job did not save", "GET", f"{base}?format=torchscript",
            status=404, field="format")
    run.req(cat, "HEAD checkpoint, format twice", "HEAD", f"{base}?format=onnx&format=state_dict",
            status=(200, 400))
    R = f"{base}?format=state_dict"
    for rng in ("bytes=abc", "bytes=99999999999999999999-", "bytes=-0", "bytes=5-1", "bytes=0-1,",
                "bytes=" + "0-1," * 500, "items=0-1", "bytes=-99999999999999999999"):
        run.req(cat, f"HEAD checkpoint Range: {rng[:30]}", "HEAD", R, headers={"Range": rng},
                status=(200, 206, 416))
    run.req(cat, "checkpoint Range past the end", "GET", R, headers={"Range": "bytes=999999999999-"},
            status=416, code="range_not_satisfiable")
    run.req(cat, "checkpoint If-Range garbage", "HEAD", R, headers={"Range": "bytes=0-9", "If-Range": "\"x\""},
            status=200)
    run.req(cat, "inspect without path", "GET", "/v1/models/inspect", status=400, field="path")
    run.req(cat, "inspect path twice", "GET", "/v1/models/inspect?path=../x&path=model.pt", status=(200, 400, 403))


def bodies(run, port):
    """Over the body limit (with and without Expect), lying lengths, chunked."""
    cat = "huge bodies"
    TL = dict(status=413, code="payload_too_large")
    over = BODY_LIMIT * 2
    head = (f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n"
            f"Content-Type: application/json\r\n")
    # Expect: 100-continue over the limit: 413 before the body is sent
    run.raw(cat, "Content-Length over the limit + Expect: 100-continue",
            (head + f"Content-Length: {over}\r\nExpect: 100-continue\r\n\r\n").encode(), **TL)
    run.raw(cat, "Content-Length 10 GiB + Expect: 100-continue",
            (head + f"Content-Length: {10 << 30}\r\nExpect: 100-continue\r\n\r\n").encode(), **TL)
    # no Expect: the body is read and dropped, then 413
    run.raw(cat, "Content-Length over the limit, the whole body sent",
            (head + f"Content-Length: {over}\r\nConnection: close\r\n\r\n").encode() + b" " * over, **TL)
    run.raw(cat, "one byte over the limit", (head + f"Content-Length: {BODY_LIMIT + 1}\r\nConnection: close\r\n\r\n").encode()
            + b'{"name": "' + b"x" * (BODY_LIMIT - 11) + b'"}', **TL)
    run.raw(cat, "Content-Length 100 MiB, nothing sent (answered at once)",
            (head + f"Content-Length: {100 << 20}\r\n\r\n").encode(), **TL)
    # chunked over the limit
    chunk = b"x" * 65536
    chunks = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(over // len(chunk) + 1))
    run.raw(cat, "chunked over the limit", (head + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
            + chunks + b"0\r\n\r\n", **TL)
    parts = (b'{"tar', b'gets": ["x"]}')
    run.raw(cat, "chunked, small, valid framing", (head + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
            + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n", status=400, field="model")
    # lying Content-Length: shorter than the body (the reply is to the first 5 bytes)
    body = b'{"targets": ["x"]}'
    run.raw(cat, "Content-Length shorter than the body", (head + "Content-Length: 5\r\n\r\n").encode() + body,
            status=400, code="invalid_json", field="body")
    # longer than what is sent: nothing is answered until the rest comes
    c = Conn(port)
    try:
        c.send((head + "Content-Length: 500\r\nConnection: close\r\n\r\n").encode() + body)
        c.s.settimeout(1.0)
        early = b""
        try:
            early = c.s.recv(100)
        except socket.timeout:
            pass
        check(early == b"", "[huge bodies] Content-Length longer than the body: no answer before the rest",
              "no bytes", early)
        c.s.settimeout(20)
        c.send(b" " * (500 - len(body)))
        r = c.read_reply()
    except OSError as e:
        r = Reply()
        r.error = repr(e)
    finally:
        c.close()
    run.verify(cat, "Content-Length longer than the body, the rest sent later", r, status=400, field="model")
    # two Content-Length headers, Content-Length with Transfer-Encoding
    run.raw(cat, "two different Content-Length headers",
            (head + f"Content-Length: {len(body)}\r\nContent-Length: 3\r\nConnection: close\r\n\r\n").encode() + body,
            status=(400, 413))
    run.raw(cat, "Content-Length and chunked together",
            (head + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
            + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n", status=400)
    # Expect: 100-continue with a small body: 100 Continue (or the answer), then the body
    c = Conn(port)
    try:
        c.send((head + f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n").encode())
        c.s.settimeout(2.0)
        try:
            while b"\r\n\r\n" not in c.buf:
                c._fill()
        except (socket.timeout, EOFError):
            pass
        c.s.settimeout(20)
        c.send(body)
        r = c.read_reply()
    except OSError as e:
        r = Reply()
        r.error = repr(e)
    finally:
        c.close()
    run.verify(cat, "Expect: 100-continue with a small body", r, status=400, field="model")
    run.raw(cat, "Expect: something else", (head + f"Content-Length: {len(body)}\r\nExpect: 42-teapot\r\n"
                                            "Connection: close\r\n\r\n").encode() + body, status=(400, 417))
    # libmicrohttpd refuses these before prunerd runs (its own HTML page)
    for what, cl in (("Content-Length: -1", "-1"), ("Content-Length: abc", "abc"),
                     ("Content-Length over 2^64", "99999999999999999999999")):
        run.raw(cat, what, (head + f"Content-Length: {cl}\r\nConnection: close\r\n\r\n").encode() + body,
                status=(400, 413), by_mhd=True)
    run.raw(cat, "broken chunked framing", (head + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
            + b"zz\r\n" + body + b"\r\n0\r\n\r\n", status=400, by_mhd=True)
    run.raw(cat, "a 100 kB header", (head + "X-Big: " + "a" * 100000 + "\r\nContent-Length: 2\r\n"
                                     "Connection: close\r\n\r\n").encode() + b"{}", status=(400, 413, 431), by_mhd=True)
    # Idempotency-Key abuse
    run.req(cat, "Idempotency-Key of 201 characters", "POST", "/v1/jobs", {"targets": ["x"]},
            headers={"Idempotency-Key": "k" * 201}, status=400, field="Idempotency-Key")
    run.req(cat, "empty Idempotency-Key", "POST", "/v1/jobs", {"targets": ["x"]},
            headers={"Idempotency-Key": ""}, status=400, field="Idempotency-Key")


def methods_and_types(run, job1):
    cat = "methods and content types"
    M = dict(status=405, code="method_not_allowed")
    for method, path in (("PUT", "/v1/jobs"), ("PATCH", "/v1/jobs"), ("DELETE", "/v1/jobs"),
                         ("OPTIONS", "/v1/jobs"), ("TRACE", "/v1/jobs"), ("FOO", "/v1/jobs"),
                         ("get", "/v1/jobs"), ("POST", f"/v1/jobs/{job1}"), ("PUT", f"/v1/jobs/{job1}"),
                         ("GET", f"/v1/jobs/{job1}/cancel"), ("DELETE", f"/v1/jobs/{job1}/result"),
                         ("POST", f"/v1/jobs/{job1}/checkpoint"), ("POST", "/healthz"),
                         ("DELETE", "/metrics"), ("POST", "/v1/models/inspect"), ("PUT", "/")):
        run.req(cat, f"{method} {path.replace(job1, '{id}')}", method, path, **M)
    run.req(cat, "an unknown route", "GET", "/v1/nothing", status=404, code="not_found")
    run.req(cat, "an unknown route of 600 'é' (the message quotes it)", "GET", "/" + q("é" * 600) + "a",
            status=404, code="not_found")
    run.req(cat, "absolute-form request target", "GET", f"http://127.0.0.1/v1/jobs/{job1}", status=(200, 400, 404))
    run.req(cat, "a path with '..' segments", "GET", "/v1/jobs/../../etc/passwd", status=404)
    run.raw(cat, "HTTP/1.0 without Host",
            f"GET /v1/jobs?limit=1 HTTP/1.0\r\nAuthorization: Bearer {ADMIN}\r\n\r\n".encode(), status=200)
    body = {"targets": ["x"]}
    U = dict(status=415, code="unsupported_media_type")
    for ct in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
               "application/jsonx", "json", "application/xml", "text/json", "*/*", "application/+json"):
        run.req(cat, f"Content-Type: {ct}", "POST", "/v1/jobs", body, ctype=ct, **U)
    run.req(cat, "no Content-Type with a body", "POST", "/v1/jobs", body, ctype=None, **U)
    run.req(cat, "empty Content-Type", "POST", "/v1/jobs", body, ctype="", **U)
    for ct in ("APPLICATION/JSON", "application/json; charset=latin1", "application/merge-patch+json",
               "application/json ; x=y"):
        run.req(cat, f"Content-Type: {ct} (accepted)", "POST", "/v1/jobs", body, ctype=ct,
                status=400, field="model")
    run.req(cat, "a body on GET /v1/jobs", "GET", "/v1/jobs?limit=1", b"{not json", status=200)
    run.req(cat, "a form body on cancel", "POST", f"/v1/jobs/{job1}/cancel", b"a=b",
            ctype="application/x-www-form-urlencoded", **U)
    run.req(cat, "cancel a finished job", "POST", f"/v1/jobs/{job1}/cancel", status=409, code="conflict")


def bad_auth(run, job1):
    cat = "bad auth"
    A = dict(status=401, code="unauthorized")
    for what, hdr in (("Basic", "Basic b3BzOnMtYWRtaW4="), ("Bearer without a token", "Bearer"),
                      ("Bearer and spaces", "Bearer    "), ("wrong token", "Bearer nope"),
                      ("the hash instead of the secret", "Bearer " + hashlib.sha256(ADMIN.encode()).hexdigest()),
                      ("token with a suffix", f"Bearer {ADMIN}x"), ("token prefix", f"Bearer {ADMIN[:-1]}"),
                      ("8 kB token", "Bearer " + "t" * 8000), ("Token scheme", f"Token {ADMIN}"),
                      ("no space after Bearer", f"Bearer{ADMIN}"), ("a token in the query only", None)):
        path = "/v1/jobs" + (f"?access_token={ADMIN}" if hdr is None else "")
        headers = {"Authorization": hdr} if hdr is not None else None
        run.req(cat, f"GET /v1/jobs, {what}", "GET", path, headers=headers, token=None, **A)
    run.req(cat, "no token on POST /v1/jobs", "POST", "/v1/jobs", {"targets": ["x"]}, token=None, **A)
    run.req(cat, "no token before a wrong Content-Type", "POST", "/v1/jobs", b"x", token=None,
            ctype="text/plain", **A)
    run.req(cat, "no token on the checkpoint", "GET", f"/v1/jobs/{job1}/checkpoint?format=state_dict",
            token=None, **A)
    run.req(cat, "wrong token on DELETE", "DELETE", f"/v1/jobs/{job1}", token="nope", **A)
    run.req(cat, "wrong token on inspect", "GET", "/v1/models/inspect?path=model.pt", token="nope", **A)
    F = dict(status=403, code="forbidden")
    run.req(cat, "read token submits a valid job", "POST", "/v1/jobs", VALID_JOB, token=VIEWER, **F)
    run.req(cat, "read token submits garbage", "POST", "/v1/jobs", b"{not json", token=VIEWER, **F)
    run.req(cat, "read token cancels", "POST", f"/v1/jobs/{job1}/cancel", token=VIEWER, **F)
    run.req(cat, "read token deletes", "DELETE", f"/v1/jobs/{job1}", token=VIEWER, **F)
    run.req(cat, "bob cancels alice's job", "POST", f"/v1/jobs/{job1}/cancel", token=BOB, **F)
    run.req(cat, "bob deletes alice's job", "DELETE", f"/v1/jobs/{job1}", token=BOB, **F)
    run.req(cat, "two Authorization headers (wrong first)", "GET", "/v1/jobs?limit=1", token=None,
            headers={"Authorization": "Bearer nope", "authorization": f"Bearer {ADMIN}"},
            status=(200, 400, 401))
    run.req(cat, "lowercase scheme (accepted)", "GET", "/v1/jobs?limit=1", token=None,
            headers={"Authorization": f"bearer {ADMIN}"}, status=(200, 401))


def keep_alive(run, port):
    """Errors on one kept-alive connection: each answered, the next request still served."""
    cat = "keep-alive after errors"
    c = Conn(port)
    try:
        seq = [
            (http_bytes("POST", "/v1/jobs", b"{bad", close=False), dict(status=400, field="body")),
            (http_bytes("GET", "/healthz", close=False), dict(status=200)),
            (http_bytes("POST", "/v1/jobs", b"x" * 1000, ctype="text/plain", close=False), dict(status=415)),
            (http_bytes("GET", "/v1/jobs/%ff", close=False), dict(status=404)),
            (http_bytes("POST", "/v1/jobs", b" " * (BODY_LIMIT + 100), close=False), dict(status=413)),
            (http_bytes("PUT", "/v1/jobs", close=False), dict(status=405)),
            (http_bytes("GET", "/v1/jobs?limit=1", close=True), dict(status=200)),
        ]
        for i, (data, exp) in enumerate(seq):
            try:
                c.send(data)
                r = c.read_reply()
            except OSError as e:
                r = Reply()
                r.error = repr(e)
            run.verify(cat, f"request {i + 1} of {len(seq)} on one connection ({data.split(b' ')[0].decode()} "
                            f"{data.split(b' ')[1][:40].decode()})", r, **exp)
            if r.error:
                break
    finally:
        c.close()


VALID_JOB = None


def list_jobs(port):
    """Every job id the daemon lists (GET /v1/jobs, all pages), or None when that fails."""
    ids, cursor = [], ""
    for _ in range(50):
        c = Conn(port)
        try:
            c.send(http_bytes("GET", "/v1/jobs?limit=200" + (f"&cursor={cursor}" if cursor else "")))
            r = c.read_reply()
        finally:
            c.close()
        b = r.json() if not r.error and r.status == 200 else None
        if not isinstance(b, dict):
            print(f"FAIL GET /v1/jobs: expected 200 with a list, got {r!r}")
            return None
        ids += [j["id"] for j in b["jobs"]]
        cursor = b.get("next_cursor")
        if not cursor:
            return ids
    return ids


def get_json(port, path, token=ADMIN):
    c = Conn(port)
    try:
        c.send(http_bytes("GET", path, token=token))
        r = c.read_reply()
    finally:
        c.close()
    return r, r.json()


def wait_done(port, jid, timeout):
    deadline = time.time() + timeout
    body = None
    while time.time() < deadline:
        r, body = get_json(port, f"/v1/jobs/{jid}")
        if isinstance(body, dict) and body.get("status") in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(0.2)
    return body


# ---------------------------------------------------------------- uploads

UPLOAD_LIMIT = 1 << 20  # the daemon runs with --upload-limit 1M
UCAT = "uploads"
T0 = 1764700000  # mtime of the archive members
CREATED_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UPLOAD_KEYS = {"name", "owner", "kind", "bytes", "sha256", "path", "created", "files"}


def sha(data):
    return hashlib.sha256(data).hexdigest()


def member(name, kind=tarfile.REGTYPE, data=b"", linkname="", pax=None):
    """A tar member: (TarInfo, data or None)."""
    t = tarfile.TarInfo(name)
    t.type, t.linkname, t.mtime = kind, linkname, T0
    t.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        t.devmajor, t.devminor = 1, 3
    if pax:
        t.pax_headers = dict(pax)
    if kind in (tarfile.REGTYPE, tarfile.AREGTYPE):
        t.size = len(data)
        return t, data
    return t, None


def tar_of(members, mode="w", fmt=tarfile.GNU_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=fmt) as tf:
        for t, data in members:
            tf.addfile(t, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def zip_of(entries):
    """entries: (name, data, unix mode or None)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name" is the point of one case
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data, mode in entries:
                zi = zipfile.ZipInfo(name, date_time=(2026, 12, 2, 0, 0, 0))
                zi.compress_type = zipfile.ZIP_DEFLATED
                if mode is not None:
                    zi.create_system, zi.external_attr = 3, mode << 16
                z.writestr(zi, data)
    return buf.getvalue()


def zip_lying_sizes(name, data, said):
    """A zip whose headers say `said` bytes for an entry that inflates to len(data)."""
    z = bytearray(zip_of([(name, data, None)]))
    assert z[:4] == b"PK\x03\x04"
    struct.pack_into("<I", z, 22, said)  # local header: uncompressed size
    cd = z.rfind(b"PK\x01\x02")
    struct.pack_into("<I", z, cd + 24, said)  # central directory: uncompressed size
    return bytes(z)


def tree_digest(path):
    """A file's sha256, or a folder's [(relative path, sha256 | "dir" | "link")]."""
    if os.path.islink(path):
        return "link"
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return sha(f.read())
    out = []
    for top, dirs, files in os.walk(path):
        for n in dirs:
            out.append((os.path.relpath(os.path.join(top, n), path), "dir"))
        for n in files:
            p = os.path.join(top, n)
            out.append((os.path.relpath(p, path), "link" if os.path.islink(p) else tree_digest(p)))
    return sorted(out)


def wanted_tree(files):
    """tree_digest of a folder holding files {relative path: bytes}."""
    out, dirs = [], set()
    for rel, data in files.items():
        out.append((rel, sha(data)))
        parts = rel.split("/")[:-1]
        for i in range(len(parts)):
            dirs.add("/".join(parts[:i + 1]))
    return sorted(out + [(d, "dir") for d in dirs])


class Uploads:
    """Upload requests, and after each hostile one the "loses nothing" checks: the daemon is up,
    GET /v1/uploads lists exactly the good uploads (alice's), uploads/alice/ holds exactly them,
    unchanged, and uploads.partial/ is empty."""

    def __init__(self, run, d, tmp):
        self.run, self.d, self.port, self.tmp = run, d, d.port, tmp
        self.var = os.path.realpath(os.path.join(tmp, "var"))
        self.udir = os.path.join(self.var, "uploads")
        self.mine = os.path.join(self.udir, "alice")
        self.partial = os.path.join(self.var, "uploads.partial")
        self.good = {}  # name -> the upload object answered
        self.disk = {}  # name -> tree_digest of what is on disk
        self.alive = True

    # -- requests

    def put(self, what, name, body=b"", query="", headers=None, token=ALICE, ctype="application/octet-stream",
            after=True, **expect):
        r = self.run.req(UCAT, what, "PUT", f"/v1/uploads/{name}{query}", body, headers, token, ctype, **expect)
        if after:
            self.intact(what)
        return r

    def req(self, what, method, path, token=ALICE, after=True, **expect):
        r = self.run.req(UCAT, what, method, path, token=token, **expect)
        if after:
            self.intact(what)
        return r

    def raw(self, what, data, after=True, **expect):
        r = self.run.raw(UCAT, what, data, **expect)
        if after:
            self.intact(what)
        return r

    def stream(self, what, head, pieces, after=True, **expect):
        """Sends head, then the pieces one by one until an answer comes; reads it."""
        r = Reply()
        try:
            c = Conn(self.port)
        except OSError as e:
            r.error = f"connect: {e}"
            return self.run.verify(UCAT, what, r, **expect)
        try:
            c.send(head)
            for p in pieces:
                if select.select([c.s], [], [], 0)[0]:
                    break  # answered early: read it
                try:
                    c.send(p)
                except OSError:
                    break  # the daemon closed: its answer may be waiting
                time.sleep(0.002)
            r = c.read_reply()
        except OSError as e:
            r.error = f"{type(e).__name__}: {e}"
        finally:
            c.close()
        self.run.verify(UCAT, what, r, **expect)
        if after:
            self.intact(what)
        return r

    def early(self, what, head, length, **expect):
        """Sends a head whose Content-Length is refused.  With Expect: 100-continue, or a length
        over 64 MiB, the answer must come before the body; otherwise the daemon reads and drops
        the body first (as for body_limit), so that a client writing before it reads hears it."""
        if b"100-continue" not in head.lower() and length <= 64 << 20:
            return self.stream(what + " (sent, then answered)", head,
                               [bytes(min(65536, length - i)) for i in range(0, length, 65536)],
                               **expect)
        r = Reply()
        try:
            c = Conn(self.port)
        except OSError as e:
            r.error = f"connect: {e}"
            return self.run.verify(UCAT, what, r, **expect)
        try:
            c.send(head)
            early = bool(select.select([c.s], [], [], 5)[0])
            check(early, f"[{UCAT}] {what}: answered before the body is sent", "an answer within 5 s",
                  "nothing yet: the daemon waits for the body")
            if not early and length <= 4 * UPLOAD_LIMIT:
                c.send(bytes(length))
            r = c.read_reply()
        except OSError as e:
            r.error = f"{type(e).__name__}: {e}"
        finally:
            c.close()
        self.run.verify(UCAT, what, r, **expect)
        self.intact(what)
        return r

    def cut(self, what, head, data, reset=False):
        """Sends head and part of a body, then closes the connection (with a RST when reset)."""
        sent[UCAT] = sent.get(UCAT, 0) + 1
        try:
            c = Conn(self.port)
            c.send(head)
            if data:
                c.send(data)
            time.sleep(0.3)  # let the daemon start writing it
            if reset:
                c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
        except OSError as e:
            check(False, f"[{UCAT}] {what}: sent", "sent", repr(e))
        self.intact(what)

    # -- the upload object

    def check_upload(self, what, r, name, kind, body, nbytes, files, status=201):
        """The answer to a good upload: status, Location, every field (alice is no admin: her path is
        relative to the uploads root, <owner>/<name>); returns the object or None."""
        label = f"[{UCAT}] {what}"
        b = r.json()
        if not check(not r.error and r.status == status and isinstance(b, dict), f"{label}: {status} with the upload",
                     status, r):
            return None
        keys = set(b)
        want_keys = UPLOAD_KEYS | ({"archive_bytes"} if kind == "folder" else set())
        check(keys == want_keys, f"{label}: the upload's keys", sorted(want_keys), sorted(keys))
        check(r.headers.get("location") == f"/v1/uploads/{name}", f"{label}: Location", f"/v1/uploads/{name}",
              r.headers.get("location"))
        check(r.headers.get("content-type", "").startswith("application/json"), f"{label}: Content-Type",
              "application/json", r.headers.get("content-type"))
        for k, want in (("name", name), ("owner", "alice"), ("kind", kind), ("bytes", nbytes),
                        ("sha256", sha(body)), ("path", f"alice/{name}"), ("files", files)):
            check(b.get(k) == want, f"{label}: {k}", repr(want), b.get(k))
        if kind == "folder":
            check(b.get("archive_bytes") == len(body), f"{label}: archive_bytes", len(body), b.get("archive_bytes"))
        check(isinstance(b.get("created"), str) and CREATED_RE.match(b["created"]), f"{label}: created is ISO 8601 UTC",
              "2026-12-02T18:21:46.123Z", b.get("created"))
        return b

    def add_good(self, what, r, name, body, kind="file", files=None, tree=None, status=201):
        """Checks a good upload's answer and its file(s) on disk, and adds it to the good set."""
        if kind == "file":
            nbytes, files = len(body), 1
        else:
            nbytes = sum(len(v) for v in tree.values())
            files = len(tree)
        b = self.check_upload(what, r, name, kind, body, nbytes, files, status)
        path = os.path.join(self.mine, name)
        if kind == "file":
            got = tree_digest(path) if os.path.exists(path) else None
            check(got == sha(body), f"[{UCAT}] {what}: the file on disk is the body", sha(body), got)
        else:
            got = tree_digest(path) if os.path.isdir(path) else None
            check(got == wanted_tree(tree), f"[{UCAT}] {what}: the folder on disk", wanted_tree(tree), got)
        if b is not None and os.path.exists(path):
            self.good[name] = b
            self.disk[name] = tree_digest(path)
        self.intact(what)
        return b

    def forget(self, name):
        self.good.pop(name, None)
        self.disk.pop(name, None)

    # -- the "loses nothing" checks

    def partial_left(self, timeout):
        deadline = time.time() + timeout
        while True:
            left = sorted(os.listdir(self.partial)) if os.path.isdir(self.partial) else []
            if not left or time.time() > deadline:
                return left
            time.sleep(0.05)

    def intact(self, what):
        if not self.alive:
            return False
        label = f"[{UCAT}] after {what}"
        if not check(self.d.proc.poll() is None, f"{label}: the daemon is running", "running",
                     f"exited with {self.d.proc.returncode}"):
            self.alive = False
            print(self.d.tail())
            return False
        r, b = get_json(self.port, "/v1/uploads", token=ALICE)
        ups = b.get("uploads") if r.status == 200 and isinstance(b, dict) else None
        listed = {u.get("name"): u for u in ups if isinstance(u, dict)} if isinstance(ups, list) else None
        check(listed is not None and sorted(listed) == sorted(self.good),
              f"{label}: GET /v1/uploads lists exactly the good uploads", sorted(self.good),
              sorted(listed) if listed is not None else r)
        if listed:
            same = [n for n in self.good if n in listed and listed[n] != self.good[n]]
            check(not same, f"{label}: the good uploads' objects are unchanged", [],
                  [(self.good[n], listed[n]) for n in same][:2])
        on_disk = sorted(os.listdir(self.mine)) if os.path.isdir(self.mine) else []
        check(on_disk == sorted(self.good), f"{label}: uploads/alice/ holds exactly the good uploads",
              sorted(self.good), on_disk)
        changed = [n for n in self.good if os.path.lexists(os.path.join(self.mine, n))
                   and tree_digest(os.path.join(self.mine, n)) != self.disk[n]]
        check(not changed, f"{label}: the good uploads' files are unchanged", [], changed)
        left = self.partial_left(5)
        check(not left, f"{label}: uploads.partial/ is empty", [], left)
        # put things back so that one failure does not fail every later check
        for n in sorted(set(listed or {}) - set(self.good)):
            get_json(self.port, f"/v1/uploads/{q(n)}", token=ALICE)
            c = Conn(self.port)
            try:
                c.send(http_bytes("DELETE", f"/v1/uploads/{q(n)}", token=ALICE))
                c.read_reply()
            finally:
                c.close()
        return True

    def escaped(self, what):
        """No file named evil* anywhere in the test's folder (where '..', absolute paths and links
        in the archives point)."""
        found = []
        for top, dirs, files in os.walk(self.tmp):
            found += [os.path.join(top, n) for n in dirs + files if n.startswith("evil")]
        check(not found, f"[{UCAT}] {what}: nothing written outside the upload", [], found)


def upload_head(name, query="", length=None, chunked=False, token=ALICE, extra=None,
                ctype="application/octet-stream"):
    h = [f"PUT /v1/uploads/{name}{query} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {token}"]
    if ctype:
        h.append(f"Content-Type: {ctype}")
    if length is not None:
        h.append(f"Content-Length: {length}")
    if chunked:
        h.append("Transfer-Encoding: chunked")
    h += [f"{k}: {v}" for k, v in (extra or {}).items()]
    h.append("Connection: close")
    return ("\r\n".join(h) + "\r\n\r\n").encode()


def chunked(data, size=65536):
    """data as a list of chunked-encoding pieces, the last-chunk included."""
    return [b"%x\r\n" % len(data[i:i + size]) + data[i:i + size] + b"\r\n" for i in range(0, len(data), size)] \
        + [b"0\r\n\r\n"]


def upload_good(u):
    """One good upload of each way in; the hostile requests must lose none of them."""
    rnd = random.Random(15)
    body = rnd.randbytes(600 * 1024)  # over body_limit (256K), under upload_limit (1M)
    r = u.put("good file: 600 KiB (over body_limit) with Content-SHA256", "good.bin", body,
              headers={"Content-SHA256": sha(body)}, after=False)
    u.add_good("good file", r, "good.bin", body)
    with open(os.path.join(SHARED, "data", "thucnews", "class.txt"), "rb") as f:
        classes = f.read()
    r = u.stream("good file: chunked, no Content-Type", upload_head("classes.txt", chunked=True, ctype=None),
                 chunked(classes, 20), after=False)
    u.add_good("good chunked file", r, "classes.txt", classes)
    tree = {"config.json": b'{"model_type": "bert"}\n', "sub/vocab.txt": b"[PAD]\n[UNK]\n[CLS]\n" * 100}
    tgz = tar_of([member("m", tarfile.DIRTYPE), member("m/config.json", data=tree["config.json"]),
                  member("m/sub", tarfile.DIRTYPE), member("m/sub/vocab.txt", data=tree["sub/vocab.txt"])],
                 mode="w:gz")
    r = u.put("good folder: tar.gz under one top folder, unpack=tar", "model-dir", tgz, "?unpack=tar",
              headers={"Content-SHA256": sha(tgz).upper()}, after=False)
    u.add_good("good tar.gz folder", r, "model-dir", tgz, "folder", tree=tree)
    ztree = {"a.txt": b"a\n" * 1000, "b/c.txt": b"c\n"}
    zbody = zip_of([("a.txt", ztree["a.txt"], None), ("b/", b"", 0o40755), ("b/c.txt", ztree["b/c.txt"], None)])
    r = u.put("good folder: zip, unpack=zip", "zipped", zbody, "?unpack=zip", after=False)
    u.add_good("good zip folder", r, "zipped", zbody, "folder", tree=ztree)
    # Expect: 100-continue (curl's way with a large file): 100 Continue, then the body, then 201
    ebody = rnd.randbytes(200 * 1024)
    c = Conn(u.port)
    r, interim = Reply(), b""
    try:
        c.send(upload_head("expect.bin", length=len(ebody), extra={"Expect": "100-continue"}, ctype="text/plain"))
        c.s.settimeout(5)
        try:
            while b"\r\n\r\n" not in c.buf:
                c._fill()
        except (socket.timeout, EOFError):
            pass
        interim = c.buf.split(b"\r\n")[0]
        c.s.settimeout(20)
        c.send(ebody)
        r = c.read_reply()
    except OSError as e:
        r.error = repr(e)
    finally:
        c.close()
    check(interim.startswith(b"HTTP/1.1 100"), f"[{UCAT}] Expect: 100-continue: 100 Continue before the body",
          "HTTP/1.1 100 Continue", interim)
    u.run.verify(UCAT, "good file: Expect: 100-continue, Content-Type text/plain", r, status=201)
    u.add_good("good file with Expect: 100-continue", r, "expect.bin", ebody)
    r, b = get_json(u.port, "/v1/uploads", token=ALICE)
    order = [x.get("name") for x in b.get("uploads", [])] if isinstance(b, dict) else None
    check(order == ["expect.bin", "zipped", "model-dir", "classes.txt", "good.bin"],
          f"[{UCAT}] GET /v1/uploads: newest first", "expect.bin, zipped, model-dir, classes.txt, good.bin", order)
    for name in ("good.bin", "model-dir"):
        r = u.req(f"GET /v1/uploads/{name}", "GET", f"/v1/uploads/{name}", status=200, after=False)
        check(r.json() == u.good.get(name), f"[{UCAT}] GET /v1/uploads/{name}: the object the PUT answered",
              u.good.get(name), r.json())
    u.req("HEAD /v1/uploads/good.bin", "HEAD", "/v1/uploads/good.bin", status=200)
    u.req("GET /uploads/good.bin (no /v1)", "GET", "/uploads/good.bin", status=200)
    return body, tgz


def upload_replays(u, body, tgz):
    """The same content again, other content under a taken name, and replace that fails."""
    other = random.Random(16).randbytes(4000)
    r = u.put("the same body again: replayed", "good.bin", body, status=200)
    check(r.headers.get("idempotent-replayed") == "true" and r.json() == u.good["good.bin"],
          f"[{UCAT}] replay: Idempotent-Replayed: true and the same object", u.good["good.bin"],
          (r.headers.get("idempotent-replayed"), r.json()))
    u.put("the same body, replace=false: replayed", "good.bin", body, "?replace=false", status=200)
    u.put("the same archive again, unpack=tar: replayed", "model-dir", tgz, "?unpack=tar", status=200)
    u.put("the folder's archive sent as a file (other kind)", "model-dir", tgz, status=409, code="conflict",
          field="name")
    u.put("other content under a taken name", "good.bin", other, status=409, code="conflict", field="name")
    u.put("other content, replace=0", "good.bin", other, "?replace=0", status=409, code="conflict", field="name")
    u.put("a valid tar under a taken file name", "good.bin", tar_of([member("x.txt", data=b"x")]), "?unpack=tar",
          status=409, code="conflict", field="name")
    # replace=1 that fails must keep the old content
    u.put("replace=1 with a wrong Content-SHA256", "good.bin", other, "?replace=1",
          headers={"Content-SHA256": sha(b"not it")}, status=422, code="checksum_mismatch", field="Content-SHA256")
    u.put("replace=1 with an unsafe archive", "good.bin", tar_of([member("../evil", data=b"x")]),
          "?replace=1&unpack=tar", status=400, code="unsafe_archive", field="body")
    u.put("replace=1 with garbage as a tar", "good.bin", other, "?replace=1&unpack=tar", status=400,
          code="invalid_archive", field="body")
    u.early("replace=1 with a Content-Length over upload_limit",
            upload_head("good.bin", "?replace=1", length=UPLOAD_LIMIT + 1), UPLOAD_LIMIT + 1,
            status=413, code="payload_too_large", field="body")
    u.cut("replace=1 cut mid-body", upload_head("good.bin", "?replace=1", length=len(body)), body[:300000])
    u.put("replace=1 on the folder, with an unsafe zip", "model-dir", zip_of([("../evil", b"x", None)]),
          "?replace=1&unpack=zip", status=400, code="unsafe_archive", field="body")
    # a whole life: create, replace, read, delete
    one, two = b"one\n" * 100, b"two\n" * 50
    r = u.put("create tmp.bin", "tmp.bin", one, after=False)
    u.add_good("create tmp.bin", r, "tmp.bin", one)
    r = u.put("replace tmp.bin (replace=true)", "tmp.bin", two, "?replace=true", after=False)
    u.forget("tmp.bin")
    u.add_good("replace tmp.bin", r, "tmp.bin", two)
    u.put("replace=1 with the same content", "tmp.bin", two, "?replace=1", status=(200, 201))
    r = u.req("GET the replaced tmp.bin", "GET", "/v1/uploads/tmp.bin", status=200)
    check(r.json() is not None and r.json().get("sha256") == sha(two), f"[{UCAT}] tmp.bin holds the new content",
          sha(two), r.json())
    u.forget("tmp.bin")
    u.req("DELETE tmp.bin", "DELETE", "/v1/uploads/tmp.bin", status=204)
    u.req("GET tmp.bin after DELETE", "GET", "/v1/uploads/tmp.bin", status=404, code="not_found")
    u.req("DELETE tmp.bin again", "DELETE", "/v1/uploads/tmp.bin", status=404, code="not_found")


def upload_names(u):
    N = dict(status=400, code="invalid_field", field="name")
    for what, name, exp in (
            ("..", "..", N), (".", ".", N), ("%2e%2e", "%2e%2e", N), ("%2e", "%2e", N),
            ("%00", "%00", N), ("a%00b", "a%00b", N), ("good.bin%00", "good.bin%00", N),
            ("129 characters", "x" * 129, N), ("unicode é", "%C3%A9", N), ("a space", "a%20b", N),
            ("a backslash", "a%5Cb", N), ("a colon", "a:b", N), ("a semicolon", "a%3Bb", N),
            ("a star", "*", N), ("a tilde", "~x", N), ("a quote", "a%27b", N), ("a '%'", "%25", N),
            ("'..' as %2E%2E", "%2E%2E", N),
            ("%2F (a slash)", "a%2Fb", dict(status=(400, 404))),
            ("..%2F..%2Fjobs", "..%2F..%2Fjobs", dict(status=(400, 404))),
            ("%2F..%2F..%2Fprunerd.db", "%2F..%2F..%2Fprunerd.db", dict(status=(400, 404))),
            ("a/b", "a/b", dict(status=(400, 404))),
            ("../x", "../x", dict(status=(400, 404))),
            ("empty", "", dict(status=(404, 405)))):
        u.put(f"PUT name {what}", name, b"x", **exp)
        get_exp = dict(status=(400, 404))
        u.req(f"GET name {what}", "GET", f"/v1/uploads/{name}", **get_exp)
        u.req(f"DELETE name {what}", "DELETE", f"/v1/uploads/{name}", status=(400, 404, 405))
    # names at the edge that are valid: made, then deleted
    for what, name in (("128 characters", "y" * 128), ("'...'", "..."), ("a leading dash", "-rf"),
                       ("a leading dot", ".hidden")):
        data = f"edge {what}\n".encode()
        r = u.put(f"PUT valid name {what}", name, data, after=False)
        u.add_good(f"PUT valid name {what}", r, name, data)
        u.forget(name)
        u.req(f"DELETE valid name {what}", "DELETE", f"/v1/uploads/{name}", status=204)


def upload_params(u):
    for v in ("bogus", "TAR", "tar.gz", "rar", "tar%00", q("../tar"), "zip,tar", "a" * 3000):
        u.put(f"unpack={v[:20]}", "p.bin", b"x", f"?unpack={v}", status=400, code="invalid_field", field="unpack")
    for v in ("maybe", "2", "yes", "tru", "1%00", "-1", "on"):
        u.put(f"replace={v}", "p.bin", b"x", f"?replace={v}", status=400, code="invalid_field", field="replace")
    data = b"checksummed\n"
    H = dict(status=400, code="invalid_field", field="Content-SHA256")
    for what, v in (("three characters", "abc"), ("63 hex", sha(data)[:63]), ("65 hex", sha(data) + "0"),
                    ("64 'g'", "g" * 64), ("'sha256=' prefix", "sha256=" + sha(data)),
                    ("base64 of the digest", base64.b64encode(hashlib.sha256(data).digest()).decode()),
                    ("a space inside", sha(data)[:32] + " " + sha(data)[32:]), ("empty", ""),
                    ("128 hex", sha(data) * 2), ("0x prefix", "0x" + sha(data)[:62])):
        u.put(f"Content-SHA256 {what}", "c.bin", data, headers={"Content-SHA256": v}, **H)
    M = dict(status=422, code="checksum_mismatch", field="Content-SHA256")
    u.put("Content-SHA256 of other bytes", "c.bin", data, headers={"Content-SHA256": sha(b"other")}, **M)
    u.put("Content-SHA256 of the body's first half", "c.bin", data, headers={"Content-SHA256": sha(data[:5])}, **M)
    u.put("Content-SHA256 of the empty body, one byte sent", "c.bin", b"\x00",
          headers={"Content-SHA256": sha(b"")}, **M)
    good_tar = tar_of([member("x.txt", data=b"x")])
    u.put("Content-SHA256 mismatch with unpack=tar", "c-dir", good_tar, "?unpack=tar",
          headers={"Content-SHA256": sha(b"other")}, **M)
    u.stream("Content-SHA256 mismatch, chunked", upload_head("c.bin", chunked=True,
                                                             extra={"Content-SHA256": sha(b"other")}),
             chunked(data, 4), **M)
    r = u.put("Content-SHA256 upper-case (valid)", "upper.bin", data, headers={"Content-SHA256": sha(data).upper()},
              after=False)
    u.add_good("Content-SHA256 upper-case", r, "upper.bin", data)
    u.forget("upper.bin")
    u.req("DELETE upper.bin", "DELETE", "/v1/uploads/upper.bin", status=204)


def upload_limits(u, body):
    TL = dict(status=413, code="payload_too_large", field="body")
    # a Content-Length over the limit is answered before the body with Expect: 100-continue or
    # over 64 MiB (only the head is sent, and the answer must come within 5 s); under 64 MiB
    # without Expect, after the daemon has read and dropped the body
    for what, n, name, query, extra, token, exp in (
            ("upload_limit + 1", UPLOAD_LIMIT + 1, "big.bin", "", None, ALICE, TL),
            ("2 x upload_limit", 2 * UPLOAD_LIMIT, "big.bin", "", None, ALICE, TL),
            ("10 GiB", 10 << 30, "big.bin", "", None, ALICE, TL),
            ("2^63", 1 << 63, "big.bin", "", None, ALICE, TL),
            ("upload_limit + 1 with Expect: 100-continue", UPLOAD_LIMIT + 1, "big.bin", "",
             {"Expect": "100-continue"}, ALICE, TL),
            ("upload_limit + 1 with unpack=tar", UPLOAD_LIMIT + 1, "big", "?unpack=tar", None, ALICE, TL),
            ("upload_limit + 1, read token", UPLOAD_LIMIT + 1, "big.bin", "", None, VIEWER, dict(status=(403, 413)))):
        u.early(f"Content-Length {what}, the head only", upload_head(name, query, length=n, extra=extra, token=token),
                n, **exp)
    zeros = bytes(UPLOAD_LIMIT + 65536)
    u.stream("Content-Length over upload_limit, the body sent", upload_head("big.bin", length=len(zeros)),
             [zeros[i:i + 65536] for i in range(0, len(zeros), 65536)], **TL)
    u.stream("chunked over upload_limit", upload_head("big.bin", chunked=True), chunked(zeros), **TL)
    u.stream("chunked over upload_limit with unpack=tar", upload_head("big", "?unpack=tar", chunked=True),
             chunked(zeros), **TL)
    # exactly the limit is not over it
    exact = bytes(UPLOAD_LIMIT)
    r = u.put("exactly upload_limit bytes", "limit.bin", exact, after=False)
    u.add_good("exactly upload_limit bytes", r, "limit.bin", exact)
    u.forget("limit.bin")
    u.req("DELETE limit.bin", "DELETE", "/v1/uploads/limit.bin", status=204)
    # bodies cut mid-way: nothing listed, nothing under uploads/, uploads.partial/ empty
    u.cut("Content-Length 800 KiB, 300 KiB sent, then closed", upload_head("cut.bin", length=800 * 1024),
          body[:300 * 1024])
    u.cut("Content-Length 800 KiB, 300 KiB sent, then reset", upload_head("cut.bin", length=800 * 1024),
          body[:300 * 1024], reset=True)
    u.cut("chunked, 300 KiB sent, no last chunk, closed", upload_head("cut.bin", chunked=True),
          b"".join(chunked(body[:300 * 1024])[:-1]))
    u.cut("chunked, cut inside a chunk", upload_head("cut.bin", chunked=True), b"%x\r\n" % 65536 + body[:1000])
    u.cut("all but the last byte, with Content-SHA256", upload_head("cut.bin", length=len(body),
                                                                    extra={"Content-SHA256": sha(body)}), body[:-1])
    u.cut("headers only, then closed", upload_head("cut.bin", length=1000), b"")
    tgz = tar_of([member(f"f{i}.bin", data=random.Random(i).randbytes(50000)) for i in range(10)], mode="w:gz")
    u.cut("unpack=tar, half the archive sent", upload_head("cut-dir", "?unpack=tar", length=len(tgz)),
          tgz[:len(tgz) // 2])
    u.cut("unpack=zip, all but the central directory", upload_head("cut-zip", "?unpack=zip", length=len(tgz) + 100),
          zip_of([("a.bin", body[:100000], None)])[:-22])
    # a body longer than its Content-Length: the rest is the next request (garbage): 400 or a closed connection
    u.raw("a Content-Length shorter than the body", upload_head("short.bin", length=5) + b"0123456789",
          after=False, status=201)
    r, b = get_json(u.port, "/v1/uploads/short.bin", token=ALICE)
    check(r.status == 200 and isinstance(b, dict) and b.get("bytes") == 5 and b.get("sha256") == sha(b"01234"),
          f"[{UCAT}] the short upload holds the first 5 bytes", "5 bytes", b)
    u.req("DELETE short.bin", "DELETE", "/v1/uploads/short.bin", status=204)


def upload_archives(u):
    U = dict(status=400, code="unsafe_archive", field="body")
    absolute = os.path.join(u.tmp, "evil-absolute")
    target = os.path.join(u.tmp, "evil-target")

    def unsafe(what, archive, unpack, entry=None, names=None, name="evil-dir", codes=None):
        label = f"{what} (unpack={unpack})"
        if codes:
            r = u.put(label, name, archive, f"?unpack={unpack}", after=False, status=400, field="body")
            c = error_of(r.json()).get("code")
            check(c in codes, f"[{UCAT}] {label}: error code", " or ".join(codes), c)
        else:
            r = u.put(label, name, archive, f"?unpack={unpack}", after=False, **U)
            e = error_of(r.json())
            got = e.get("entry")
            if entry is not None:
                check(got == entry, f"[{UCAT}] {label}: error.entry names the entry", repr(entry), got)
            elif names is not None:
                check(got in names, f"[{UCAT}] {label}: error.entry is one of the archive's entries",
                      f"one of {len(names)} names", got)
            else:
                check(isinstance(got, str) and got, f"[{UCAT}] {label}: error.entry is there", "a string", got)
            check(isinstance(got, str) and got and got in str(e.get("message")),
                  f"[{UCAT}] {label}: the message names the entry", got, e.get("message"))
        u.escaped(label)
        u.intact(label)

    a = member("a.txt", data=b"a\n")
    for mode, suffix in (("w", ""), ("w:gz", " (gzip)")):
        unsafe("tar: ../evil" + suffix, tar_of([a, member("../evil", data=b"x")], mode), "tar", "../evil")
    unsafe("tar: m/../../evil", tar_of([member("m", tarfile.DIRTYPE), member("m/a.txt", data=b"a"),
                                        member("m/../../evil", data=b"x")]), "tar", "m/../../evil")
    unsafe("tar: a directory ../evil-d/", tar_of([member("../evil-d", tarfile.DIRTYPE)]), "tar", "../evil-d/")
    unsafe("tar: absolute " + absolute, tar_of([a, member(absolute, data=b"x")], "w:bz2"), "tar", absolute)
    unsafe("tar: symlink to an absolute path", tar_of([a, member("link", tarfile.SYMTYPE, linkname=target)], "w:xz"),
           "tar", "link")
    unsafe("tar: symlink under the top folder", tar_of([member("m", tarfile.DIRTYPE), member("m/a.txt", data=b"a"),
                                                        member("m/link", tarfile.SYMTYPE, linkname="a.txt")]),
           "tar", "m/link")
    unsafe("tar: symlink then a file through it", tar_of([member("evil-l", tarfile.SYMTYPE, linkname=u.tmp),
                                                          member("evil-l/evil-through", data=b"x")]), "tar", "evil-l")
    unsafe("tar: hard link", tar_of([a, member("hl", tarfile.LNKTYPE, linkname="a.txt")]), "tar", "hl")
    unsafe("tar: hard link to outside", tar_of([member("hl", tarfile.LNKTYPE, linkname="/etc/passwd")]), "tar", "hl")
    unsafe("tar: character device", tar_of([a, member("null", tarfile.CHRTYPE)]), "tar", "null")
    unsafe("tar: block device", tar_of([a, member("sda", tarfile.BLKTYPE)]), "tar", "sda")
    unsafe("tar: FIFO", tar_of([a, member("fifo", tarfile.FIFOTYPE)]), "tar", "fifo")
    unsafe("tar: an entry twice", tar_of([a, member("b.txt", data=b"b"), member("a.txt", data=b"again")]),
           "tar", "a.txt")
    unsafe("tar: a.txt and ./a.txt", tar_of([a, member("./a.txt", data=b"again")]), "tar",
           names={"a.txt", "./a.txt"})
    unsafe("tar: pax path ../evil-pax over a safe name",
           tar_of([member("safe.txt", data=b"x", pax={"path": "../evil-pax"})], fmt=tarfile.PAX_FORMAT),
           "tar", "../evil-pax")
    long = "../" + "evil" + "x" * 300
    unsafe("tar: a 307-byte '../' name (GNU longname)", tar_of([member(long, data=b"x")]), "tar")
    names = [f"e{i:05d}" for i in range(10001)]
    unsafe("tar.xz: 10,001 empty entries", tar_of([member(n) for n in names], "w:xz"), "tar", names=set(names))
    unsafe("tar.gz: one entry of 2 MiB of zeros (over upload_limit unpacked)",
           tar_of([a, member("zeros.bin", data=bytes(2 << 20))], "w:gz"), "tar", "zeros.bin")
    unsafe("tar.gz: three entries of 400 KiB (over upload_limit together)",
           tar_of([member(f"p{i}", data=bytes(400 << 10)) for i in (1, 2, 3)], "w:gz"), "tar", "p3")
    unsafe("zip: ../evil", zip_of([("a.txt", b"a", None), ("../evil", b"x", None)]), "zip", "../evil")
    unsafe("zip: absolute " + absolute, zip_of([("a.txt", b"a", None), (absolute, b"x", None)]), "zip", absolute)
    unsafe("zip: symlink", zip_of([("a.txt", b"a", None), ("link", target.encode(), 0o120777)]), "zip", "link")
    unsafe("zip: an entry twice", zip_of([("a.txt", b"a", None), ("a.txt", b"again", None)]), "zip", "a.txt")
    unsafe("zip: one entry of 2 MiB of zeros", zip_of([("zeros.bin", bytes(2 << 20), None)]), "zip", "zeros.bin")
    unsafe("zip: 2 MiB of zeros whose headers say 1000 bytes", zip_lying_sizes("zeros.bin", bytes(2 << 20), 1000),
           "zip", codes=("unsafe_archive", "invalid_archive"))
    # not archives
    I = dict(status=400, code="invalid_archive", field="body")
    junk = random.Random(17).randbytes(5000)
    for what, body, unpack in (("random bytes", junk, "tar"), ("random bytes", junk, "zip"),
                               ("text", b"hello, I am no archive\n" * 30, "tar"),
                               ("gzip of text", gzip.compress(b"no tar inside\n" * 100), "tar"),
                               ("half a tar.gz", tar_of([member("f.bin", data=random.Random(18).randbytes(40000))],
                                                        "w:gz")[:20000], "tar"),
                               ("a zip sent as tar", zip_of([("a.txt", b"a", None)]), "tar"),
                               ("a tar sent as zip", tar_of([a]), "zip")):
        u.put(f"{what} (unpack={unpack})", "evil-dir", body, f"?unpack={unpack}", **I)


def upload_owners(u, b):
    """Tokens, owners and ?owner= abuse; other owners' uploads in jobs and inspect."""
    F = dict(status=403, code="forbidden")
    A = dict(status=401, code="unauthorized")
    u.put("no token", "n.bin", b"x", token=None, **A)
    u.put("a wrong token", "n.bin", b"x", token="nope", **A)
    u.req("GET /v1/uploads without a token", "GET", "/v1/uploads", token=None, **A)
    u.put("read token uploads", "n.bin", b"x", token=VIEWER, **F)
    u.put("read token uploads an archive", "n", tar_of([member("a", data=b"a")]), "?unpack=tar", token=VIEWER, **F)
    u.req("read token deletes", "DELETE", "/v1/uploads/good.bin", token=VIEWER, **F)
    u.req("read token deletes alice's (?owner)", "DELETE", "/v1/uploads/good.bin?owner=alice", token=VIEWER,
          status=403)
    r = u.req("read token lists its own", "GET", "/v1/uploads", token=VIEWER, status=200)
    check(r.json() == {"uploads": []}, f"[{UCAT}] the read token has no uploads", {"uploads": []}, r.json())
    r = u.req("bob lists his own", "GET", "/v1/uploads", token=BOB, status=200)
    check(r.json() == {"uploads": []}, f"[{UCAT}] bob has no uploads", {"uploads": []}, r.json())
    u.req("bob lists his own with ?owner=bob", "GET", "/v1/uploads?owner=bob", token=BOB, status=200)
    u.req("bob gets alice's good.bin by name", "GET", "/v1/uploads/good.bin", token=BOB, status=404, code="not_found")
    u.req("bob deletes alice's good.bin by name", "DELETE", "/v1/uploads/good.bin", token=BOB, status=404,
          code="not_found")
    u.req("bob lists ?owner=alice", "GET", "/v1/uploads?owner=alice", token=BOB, **F)
    u.req("bob gets ?owner=alice", "GET", "/v1/uploads/good.bin?owner=alice", token=BOB, **F)
    u.req("bob deletes ?owner=alice", "DELETE", "/v1/uploads/good.bin?owner=alice", token=BOB, **F)
    u.req("bob lists ?owner= (anonymous)", "GET", "/v1/uploads?owner=", token=BOB, **F)
    r = u.req("admin lists ?owner=alice", "GET", "/v1/uploads?owner=alice", token=ADMIN, status=200)
    got = {x.get("name"): x.get("path") for x in (r.json() or {}).get("uploads", [])}
    want = {n: os.path.join(u.mine, n) for n in u.good}
    check(got == want, f"[{UCAT}] admin sees alice's uploads, with absolute paths", want, got)
    r = u.req("admin gets alice's good.bin", "GET", "/v1/uploads/good.bin?owner=alice", token=ADMIN, status=200)
    want = dict(u.good["good.bin"], path=os.path.join(u.mine, "good.bin"))
    check(r.json() == want, f"[{UCAT}] admin's view of good.bin: the absolute path", want, r.json())
    r = u.req("admin lists its own", "GET", "/v1/uploads", token=ADMIN, status=200)
    check(r.json() == {"uploads": []}, f"[{UCAT}] admin (ops) has no uploads", {"uploads": []}, r.json())
    u.req("admin lists ?owner= (anonymous)", "GET", "/v1/uploads?owner=", token=ADMIN, status=200)
    # ?owner= that is no owner: never a listing of something else, never a deletion outside
    for what, owner in (("..", ".."), (".", "."), ("%2e%2e", "%2e%2e"), ("alice/../alice", q("alice/../alice")),
                        ("../var", q("../var")), ("/etc", q("/etc")), ("%00", "%00"), ("alice%00", "alice%00"),
                        ("65 characters", "o" * 65), ("3000 characters", "o" * 3000), ("é", q("é")),
                        ("uploads.meta/..", q("uploads.meta/..")), ("a space", "a%20b")):
        r = u.req(f"admin lists ?owner={what}", "GET", f"/v1/uploads?owner={owner}", token=ADMIN,
                  status=(200, 400, 403, 404))
        if r.status == 200:
            check(r.json() == {"uploads": []}, f"[{UCAT}] ?owner={what}: an empty list if any", {"uploads": []},
                  r.json())
        for name in ("good.bin", "prunerd.db", "alice", "jobs", "uploads"):
            u.req(f"admin gets {name}?owner={what}", "GET", f"/v1/uploads/{name}?owner={owner}", token=ADMIN,
                  status=(400, 403, 404))
            u.req(f"admin deletes {name}?owner={what}", "DELETE", f"/v1/uploads/{name}?owner={owner}", token=ADMIN,
                  status=(400, 403, 404))
    for p in ("prunerd.db", "jobs", "uploads"):
        check(os.path.exists(os.path.join(u.var, p)), f"[{UCAT}] the data dir's {p} is still there", "there",
              "gone")
    # another owner's upload in a job or inspect: 403 denied naming the field
    D = dict(status=403, code="denied")
    folder = os.path.join(u.mine, "model-dir")
    for how, good, classes, cfg in (
            ("relative", "alice/good.bin", "alice/classes.txt", "alice/model-dir/config.json"),
            ("absolute", os.path.join(u.mine, "good.bin"), os.path.join(u.mine, "classes.txt"),
             os.path.join(folder, "config.json"))):
        for field, base, path in (("model", "base", good), ("model_config", "base", cfg),
                                  ("eval.data", "base", classes), ("eval.vocab", "base", classes),
                                  ("eval.classes", "base", classes), ("options.mask", "mask", good),
                                  ("structured.calibration.data", "st_cal", classes)):
            u.run.req(UCAT, f"bob's job with alice's upload as {field} ({how}: {path})", "POST", "/v1/jobs",
                      set_path(b[base], field, path), token=BOB, field=field, **D)
    for path in ("alice/model-dir", folder):
        u.run.req(UCAT, f"bob's job with alice's folder as the model ({path})", "POST", "/v1/jobs",
                  set_path(b["base"], "model", path), token=BOB, field="model", **D)
    good, cfg = os.path.join(u.mine, "good.bin"), os.path.join(folder, "config.json")
    via = os.path.join(u.udir, "bob", "..", "alice", "good.bin")
    u.run.req(UCAT, "bob's job: uploads/bob/../alice/good.bin", "POST", "/v1/jobs", set_path(b["base"], "model", via),
              token=BOB, field="model", **D)
    for path in (good, "alice/good.bin", folder, "alice/model-dir"):
        u.run.req(UCAT, f"bob inspects {path}", "GET", "/v1/models/inspect?path=" + q(path), token=BOB,
                  field="path", **D)
    u.run.req(UCAT, "bob inspects with alice's config.json", "GET",
              f"/v1/models/inspect?path=model.pt&model_config={q(cfg)}", token=BOB, field="model_config", **D)
    u.run.req(UCAT, "alice inspects her good.bin (no model)", "GET", "/v1/models/inspect?path=alice/good.bin",
              token=ALICE, status=400, field="path")
    u.run.req(UCAT, "admin inspects alice's good.bin (no model)", "GET", "/v1/models/inspect?path=" + q(good),
              status=400, field="path")
    u.intact("the jobs and inspects with other owners' uploads")
    # methods
    M = dict(status=405, code="method_not_allowed")
    for method, path in (("POST", "/v1/uploads/good.bin"), ("PATCH", "/v1/uploads/good.bin"),
                         ("POST", "/v1/uploads"), ("PUT", "/v1/uploads"), ("DELETE", "/v1/uploads"),
                         ("PATCH", "/v1/uploads")):
        r = u.req(f"{method} {path}", method, path, **M)
        if path.endswith("good.bin"):
            allow = {a.strip() for a in r.headers.get("allow", "").split(",")}
            check({"GET", "PUT", "DELETE"} <= allow, f"[{UCAT}] {method} {path}: Allow", "GET, HEAD, PUT, DELETE",
                  r.headers.get("allow"))
    u.req("GET /v1/uploads/good.bin/x", "GET", "/v1/uploads/good.bin/x", status=404)


def upload_hostile(run, d, tmp, b):
    u = Uploads(run, d, tmp)
    body, tgz = upload_good(u)
    if len(u.good) < 5:
        check(False, f"[{UCAT}] the good uploads were made (the rest needs them)", 5, sorted(u.good))
        return u
    for part in (lambda: upload_replays(u, body, tgz), lambda: upload_names(u), lambda: upload_params(u),
                 lambda: upload_limits(u, body), lambda: upload_archives(u), lambda: upload_owners(u, b)):
        if not u.alive:
            break
        part()
    return u


def kill_mid_upload(tmp, args, conf, good):
    """SIGKILL while a body arrives; a restart lists the good uploads only and empties uploads.partial/."""
    label = f"[{UCAT}] kill mid-upload"
    var = os.path.realpath(os.path.join(tmp, "var"))
    partial = os.path.join(var, "uploads.partial")
    mine = os.path.join(var, "uploads", "alice")
    rounds = []
    for i in (1, 2):
        sub = os.path.join(tmp, f"restart{i}")
        os.makedirs(sub)
        rounds.append(sub)
    d = Daemon(rounds[0], args, conf)
    try:
        c = Conn(d.port)
        c.send(upload_head("killed.bin", length=800 * 1024))
        c.send(bytes(300 * 1024))
        deadline = time.time() + 5
        while time.time() < deadline and not (os.path.isdir(partial) and os.listdir(partial)):
            time.sleep(0.02)
        check(os.path.isdir(partial) and os.listdir(partial), f"{label}: the body is written in uploads.partial/",
              "a file", os.listdir(partial) if os.path.isdir(partial) else None)
        d.proc.kill()
        d.proc.wait()
        c.close()
    finally:
        d.stop()
    # the start-up cleaning leaves partial files younger than 2 s (PARTIAL_GRACE_S in
    # core/store/upload.c: another daemon sharing the store may not hold its lock yet)
    time.sleep(3)
    d = Daemon(rounds[1], args, conf)
    try:
        r, b = get_json(d.port, "/v1/uploads", token=ALICE)
        names = sorted(x.get("name") for x in b.get("uploads", [])) if isinstance(b, dict) else None
        check(names == sorted(good), f"{label}: after the restart GET /v1/uploads lists exactly the good uploads",
              sorted(good), names or r)
        on_disk = sorted(os.listdir(mine)) if os.path.isdir(mine) else []
        check(on_disk == sorted(good), f"{label}: uploads/alice/ holds exactly the good uploads", sorted(good), on_disk)
        deadline = time.time() + 10
        while time.time() < deadline and os.listdir(partial):
            time.sleep(0.05)
        check(not os.listdir(partial), f"{label}: the restart emptied uploads.partial/", [], os.listdir(partial))
        c = Conn(d.port)
        c.send(upload_head("killed.bin", length=5) + b"after")
        rep = c.read_reply()
        c.close()
        check(rep.status == 201, f"{label}: the name the killed upload had is free", 201, rep)
    finally:
        rc = d.stop()
    check(rc == 0, f"{label}: SIGTERM after the restart: exit 0", 0, rc)
    for sub in rounds:
        with open(os.path.join(sub, "prunerd.log"), errors="replace") as f:
            log = f.read()
        marks = [m for m in SANITIZER_MARKS if m in log]
        check(not marks, f"{label}: no sanitizer report ({os.path.basename(sub)})", "none",
              log[log.find(marks[0]) - 200:][:3000] if marks else None)


def main():
    global VALID_JOB
    if not os.access(BIN, os.X_OK):
        print(f"FAIL PRUNERD_BIN is not an executable: {BIN!r}\n0 passed, 1 failed")
        return 1
    for part in (("models", MODEL_NAME), ("data", "thucnews", "dev.txt"), ("data", "thucnews", "train.txt"),
                 ("data", "thucnews", "class.txt"), ("data", "vocab", "bert-base-chinese-vocab.txt")):
        if not os.path.isfile(os.path.join(SHARED, *part)):
            print(f"FAIL the shared data {os.path.join(SHARED, *part)} is missing "
                  f"(set PRUNERD_SHARED or -Dshared_dir)\n0 passed, 1 failed")
            return 1
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="prunerd-test-hostile-http-")
    d = None
    try:
        root = os.path.join(tmp, "root")
        outside = os.path.join(tmp, "outside")
        for p in (root, outside, os.path.join(root, "sub"), root + "-evil"):
            os.makedirs(p)
        for p in (os.path.join(outside, "secret.pt"), os.path.join(root + "-evil", "secret.pt"),
                  os.path.join(root, "mask.pth")):
            with open(p, "w") as f:
                f.write("secret\n")
        os.symlink(os.path.join(SHARED, "models", MODEL_NAME), os.path.join(root, "model.pt"))
        os.symlink(os.path.join(outside, "secret.pt"), os.path.join(root, "escape.pt"))
        os.symlink(outside, os.path.join(root, "outdir"))
        os.symlink("/etc", os.path.join(root, "etc"))
        os.symlink("/proc/self", os.path.join(root, "procself"))
        os.symlink("loop", os.path.join(root, "loop"))
        os.mkfifo(os.path.join(root, "fifo"))
        conf = ("[server]\nworkers = 1\njob_threads = 1\nhttp_threads = 4\n"
                f"[limits]\nbody_limit = {BODY_LIMIT // 1024}K\nstop_timeout = 20\n"
                "[tokens]\n" + "".join(f"{n} = {r}:{hashlib.sha256(s.encode()).hexdigest()}\n"
                                       for n, (r, s) in TOKENS.items()))
        args = ["--data-dir", os.path.join(tmp, "var"), "--model-root", root,
                "--model-root", os.path.join(SHARED, "models"), "--data-root", root,
                "--data-root", os.path.join(SHARED, "data"), "--upload-limit", f"{UPLOAD_LIMIT >> 20}M"]
        d = Daemon(tmp, args, conf)
        port = d.port
        run = Run(port)
        b = bases(root)

        # the jobs submitted on purpose: a quick identity job (its checkpoint is the
        # target of the query abuse), and a small L1 job with an Idempotency-Key
        job = {"name": "on purpose 1", "model": "model.pt", "targets": ["fc"], "method": "identity",
               "outputs": ["state_dict"]}
        VALID_JOB = job
        mine = []
        for what, body, headers in (("identity job", job, None),
                                    ("small L1 job", dict(b["base"], name="on purpose 2"), {"Idempotency-Key": "k-1"})):
            c = Conn(port)
            c.send(http_bytes("POST", "/v1/jobs", body, headers, token=ALICE))
            r = c.read_reply()
            c.close()
            ok = check(not r.error and r.status == 201 and isinstance(r.json(), dict),
                       f"valid {what} accepted", "201 with the job", r)
            if not ok:
                print(d.tail())
                return 1
            mine.append(r.json()["id"])
        job1, job2 = mine
        done = wait_done(port, job1, 180)
        if not check(isinstance(done, dict) and done.get("status") == "succeeded",
                     "the identity job succeeded", "succeeded", done):
            print(d.tail())
            return 1
        before = list_jobs(port)
        check(before is not None and sorted(before) == sorted(mine), "before: the list holds the two jobs",
              sorted(mine), before)

        bad_json(run)
        wrong_types(run, b)
        path_escapes(run, b, tmp, root)
        query_abuse(run, job1)
        bodies(run, port)
        methods_and_types(run, job1)
        bad_auth(run, job1)
        keep_alive(run, port)
        odd_ids(run, job1)  # last of those that use job1: a NUL-cutting daemon deletes it
        # a replay of the second job queues nothing; the same key with another body is 422
        run.req("idempotency", "replay with the same key", "POST", "/v1/jobs", dict(b["base"], name="on purpose 2"),
                headers={"Idempotency-Key": "k-1"}, token=ALICE, status=200)
        run.req("idempotency", "the same key, another body", "POST", "/v1/jobs", dict(b["base"], name="other"),
                headers={"Idempotency-Key": "k-1"}, token=ALICE, status=422, field="Idempotency-Key")
        up = upload_hostile(run, d, tmp, b)

        # an incomplete body and then EOF: nothing to answer; the daemon must stay up
        c = Conn(port)
        c.send(http_bytes("POST", "/v1/jobs", None, {"Content-Type": "application/json",
                                                     "Content-Length": "500"}, close=False) + b'{"tar')
        c.s.shutdown(socket.SHUT_WR)
        try:
            c.s.settimeout(5)
            c.s.recv(100)
        except OSError:
            pass
        c.close()

        alive = d.proc.poll() is None
        check(alive, "the daemon is alive after the hostile requests", "running",
              f"exited with {d.proc.returncode}")
        if alive:
            r, h = get_json(port, "/healthz", token=None)
            check(r.status == 200 and h == {"status": "ok"}, "healthz after the hostile requests", 200, r)
            after = list_jobs(port)
            check(after is not None and sorted(after) == sorted(mine),
                  "after: GET /v1/jobs lists exactly the two jobs submitted on purpose (bad requests queued nothing)",
                  f"{len(mine)} jobs {sorted(mine)}", f"{len(after or [])} jobs {after}")
            check(len(after or []) == len(before or []), "the job count did not change", len(before or []),
                  len(after or []))
            done2 = wait_done(port, job2, 180)
            check(isinstance(done2, dict) and done2.get("status") in ("succeeded", "failed", "cancelled"),
                  "the second job finished", "a final status", done2)

        total = sum(sent.values())
        print(f"requests sent: {total}")
        for cat, n in sent.items():
            print(f"  {cat}: {n}")
        if mhd_pages:
            print(f"  answered by libmicrohttpd itself (HTML, not prunerd's JSON): {len(mhd_pages)}: "
                  + ", ".join(f"{w} -> {s}" for _, w, s in mhd_pages))
        check(total >= 150, "at least 150 hostile requests sent", ">= 150", total)
        check(not dropped, "no dropped connection (reset, early close, timeout)", 0,
              f"{len(dropped)}: {dropped[:5]}")
        rc = d.stop()
        d = None
        check(rc == 0, "SIGTERM: exit 0", 0, rc)
        log = open(os.path.join(tmp, "prunerd.log"), errors="replace").read()
        marks = [m for m in SANITIZER_MARKS if m in log]
        check(not marks, "no sanitizer report in the daemon's stderr", "none",
              f"{marks}: {log[log.find(marks[0]) - 200:][:3000]}" if marks else None)
        if up.alive and up.good:
            kill_mid_upload(tmp, args, conf, up.good)
        print(f"  took {time.time() - t0:.1f} s")
    finally:
        if d is not None:
            d.stop()
            if failed:
                print(d.tail())
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
