#!/usr/bin/env python3
"""test_client_download.py - Client.download against a fake prunerd in this process (no daemon).

A ThreadingHTTPServer on 127.0.0.1 answers GET /v1/jobs/{id}/result with a
result.json holding a torchscript file and a safetensors folder
(model.safetensors + config.json), and GET /v1/jobs/{id}/checkpoint the way
api_jobs_checkpoint does: ?format=, &file= for the folder's files (404
naming "file" for an unknown one, 400 for file with another format), ETag
the file's sha256, Range and If-Range.  It records every checkpoint request
so the checks can see what the client asked for.  Standard library only.
Every failure prints what it expected and what it got; the last line is
"N passed, N failed".
"""
import hashlib
import http.server
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "clients", "python"))

from prunerd_client import Client, PrunerdError  # noqa: E402

import test_daemon as td  # noqa: E402  (the tally and check the Python tests share)
from test_daemon import check, sha256_file  # noqa: E402

JOB = "0f0e0d0c-0b0a-4908-8706-050403020100"
MODEL = bytes(range(256)) * 4000 + b"tail"  # 1 MB and a bit: more than one client chunk
CONFIG = json.dumps({"architectures": ["BertForSequenceClassification"], "num_labels": 10}).encode()
TS = b"PK\x03\x04 a torchscript zip" * 100


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class Fake:
    """What the fake server serves, and what it was asked."""

    def __init__(self):
        self.folder = {"model.safetensors": MODEL, "config.json": CONFIG}
        self.torchscript = TS
        self.corrupt = None  # a file name whose bytes are served with one byte flipped
        self.result_sha = {}  # file name -> the sha256 result.json claims instead of the real one
        self.safetensors = True  # whether the job has the safetensors artifact
        self.requests = []  # (query dict, headers dict, status) of each checkpoint request

    def result(self):
        arts = [{"format": "torchscript", "path": f"/var/jobs/{JOB}/model.pt",
                 "bytes": len(self.torchscript), "sha256": sha256(self.torchscript)}]
        if self.safetensors:
            arts.append({"format": "safetensors", "path": f"/var/jobs/{JOB}/safetensors",
                         "bytes": sum(len(b) for b in self.folder.values()),
                         "files": [{"name": n, "sha256": self.result_sha.get(n, sha256(b)), "bytes": len(b)}
                                   for n, b in self.folder.items()]})
        return {"metrics": {}, "artifacts": arts}


def make_handler(fake):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def send_json(self, status, body):
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
            return status

        def error(self, status, code, field, message):
            return self.send_json(status, {"error": {"code": code, "field": field, "message": message}})

        def do_GET(self):
            u = urllib.parse.urlsplit(self.path)
            q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
            if u.path == f"/v1/jobs/{JOB}/result":
                self.send_json(200, fake.result())
            elif u.path == f"/v1/jobs/{JOB}/checkpoint":
                status = self.checkpoint(q)
                fake.requests.append((q, {k.lower(): v for k, v in self.headers.items()}, status))
            else:
                self.error(404, "not_found", None, "no route " + u.path)

        def checkpoint(self, q):
            fmt = q.get("format") or "torchscript"
            if fmt not in ("torchscript", "state_dict", "safetensors"):
                return self.error(400, "invalid_field", "format", f"'{fmt}' is not a format")
            if "file" in q and fmt != "safetensors":
                return self.error(400, "invalid_field", "file", "only the safetensors folder has several files")
            if fmt == "torchscript":
                data = fake.torchscript
            elif fmt == "safetensors" and fake.safetensors:
                name = q.get("file") or "model.safetensors"
                if name not in fake.folder:
                    return self.error(404, "not_found", "file", f"no file '{name}'")
                data = fake.folder[name]
            else:
                return self.error(404, "not_found", "format", f"job {JOB} has no {fmt} checkpoint")
            etag = f'"{sha256(data)}"'
            if fmt == "safetensors" and fake.corrupt == (q.get("file") or "model.safetensors"):
                data = data[:10] + bytes([data[10] ^ 0xFF]) + data[11:]
            start, status = 0, 200
            rng = self.headers.get("Range")
            if rng and self.headers.get("If-Range", etag) == etag:
                m = re.fullmatch(r"bytes=(\d+)-", rng)
                if not m or int(m.group(1)) >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return 416
                start, status = int(m.group(1)), 206
            self.send_response(status)
            self.send_header("ETag", etag)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data) - start))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            self.wfile.write(data[start:])
            return status

    return Handler


def raises(fn, what, status=None, code=None, field=None):
    """Checks fn() raises PrunerdError with the given status/code/field; returns the error."""
    try:
        v = fn()
    except PrunerdError as e:
        check((status is None or e.status == status) and (code is None or e.code == code)
              and (field is None or e.field == field),
              f"{what}: PrunerdError {status} {code} {field}", (e.status, e.code, e.field, e.message))
        return e
    check(False, f"{what}: PrunerdError raised", v)
    return None


def asked(fake, since):
    """The (format, file or None, Range or None, status) of the checkpoint requests since index since."""
    return [(q.get("format"), q.get("file"), h.get("range"), st) for q, h, st in fake.requests[since:]]


def test_folder(c, fake, tmp):
    out = os.path.join(tmp, "hf")
    n = len(fake.requests)
    got = c.download(JOB, out, format="safetensors")
    check(got == out, "download(format='safetensors') returns the folder", got)
    check(sorted(os.listdir(out)) == ["config.json", "model.safetensors"],
          "the folder holds the two files, no .part", sorted(os.listdir(out)))
    check(sha256_file(os.path.join(out, "model.safetensors")) == sha256(MODEL)
          and sha256_file(os.path.join(out, "config.json")) == sha256(CONFIG),
          "both files have the server's bytes")
    check(asked(fake, n) == [("safetensors", "model.safetensors", None, 200), ("safetensors", "config.json", None, 200)],
          "one request per file, each naming it with file=", asked(fake, n))

    # An existing folder is fine; a nested one is made.
    deep = os.path.join(tmp, "a", "b")
    check(c.download(JOB, deep, format="safetensors") == deep
          and sha256_file(os.path.join(deep, "config.json")) == sha256(CONFIG),
          "a folder that does not exist yet is made, parents too")
    c.download(JOB, out, format="safetensors")
    check(sorted(os.listdir(out)) == ["config.json", "model.safetensors"], "downloading into the folder again")


def test_resume(c, fake, tmp):
    out = os.path.join(tmp, "resume")
    os.makedirs(out)
    third = len(MODEL) // 3
    with open(os.path.join(out, "model.safetensors.part"), "wb") as f:
        f.write(MODEL[:third])
    n = len(fake.requests)
    c.download(JOB, out, format="safetensors")
    reqs = fake.requests[n:]
    first = reqs[0] if reqs else ({}, {}, None)
    check(first[0].get("file") == "model.safetensors" and first[1].get("range") == f"bytes={third}-"
          and first[1].get("if-range") == f'"{sha256(MODEL)}"' and first[2] == 206,
          "a .part is resumed with Range and If-Range (the file's sha256), answered 206",
          [(q, h.get("range"), h.get("if-range"), st) for q, h, st in reqs])
    check(len(reqs) == 2 and reqs[1][0].get("file") == "config.json" and "range" not in reqs[1][1],
          "the other file is fetched whole", asked(fake, n))
    check(sha256_file(os.path.join(out, "model.safetensors")) == sha256(MODEL)
          and not os.path.exists(os.path.join(out, "model.safetensors.part")),
          "the resumed file is complete and its .part renamed", sorted(os.listdir(out)))

    # A complete .part is checked and renamed without asking for its bytes.
    with open(os.path.join(out, "config.json.part"), "wb") as f:
        f.write(CONFIG)
    n = len(fake.requests)
    c.download(JOB, out, format="safetensors")
    check([f for _, f, _, _ in asked(fake, n)] == ["model.safetensors"],
          "a complete config.json.part is kept; only model.safetensors is fetched", asked(fake, n))
    check(sha256_file(os.path.join(out, "config.json")) == sha256(CONFIG), "the kept config.json is right")


def test_checksums(c, fake, tmp):
    # The bytes on the wire differ from the ETag and result.json: refused, nothing left behind.
    out = os.path.join(tmp, "corrupt")
    fake.corrupt = "config.json"
    raises(lambda: c.download(JOB, out, format="safetensors"), "corrupted config.json",
           code="checksum_mismatch")
    fake.corrupt = None
    left = sorted(os.listdir(out))
    check(left == ["model.safetensors"], "corrupted config.json: no config.json and no .part left", left)
    c.download(JOB, out, format="safetensors")
    check(sha256_file(os.path.join(out, "config.json")) == sha256(CONFIG), "downloading again after a mismatch")

    # result.json claims another sha256 than the file the server has (the ETag agrees with the bytes).
    out = os.path.join(tmp, "claimed")
    fake.result_sha = {"model.safetensors": "0" * 64}
    e = raises(lambda: c.download(JOB, out, format="safetensors"), "a wrong sha256 in result.json",
               code="checksum_mismatch")
    fake.result_sha = {}
    check(e is not None and "result.json" in e.message, "the mismatch names result.json", e and e.message)
    check(os.listdir(out) == [], "a wrong sha256: nothing is left in the folder", os.listdir(out))

    # A .part that is no prefix of the file.
    out = os.path.join(tmp, "badpart")
    os.makedirs(out)
    with open(os.path.join(out, "model.safetensors.part"), "wb") as f:
        f.write(b"\0" * 1000)
    raises(lambda: c.download(JOB, out, format="safetensors"), "a .part that is no prefix",
           code="checksum_mismatch")
    check(os.listdir(out) == [], "a .part that is no prefix is removed", os.listdir(out))


def test_single_file_and_errors(c, fake, tmp):
    ts = os.path.join(tmp, "pruned.pt")
    n = len(fake.requests)
    check(c.download(JOB, ts) == ts and sha256_file(ts) == sha256(TS), "torchscript downloads to a file")
    check(asked(fake, n) == [("torchscript", None, None, 200)], "a single-file format sends no file=",
          asked(fake, n))
    raises(lambda: c.download(JOB, os.path.join(tmp, "x.pth"), format="state_dict"),
           "a format the job did not save", status=404, code="not_found", field="format")

    fake.safetensors = False
    nothing = os.path.join(tmp, "none")
    raises(lambda: c.download(JOB, nothing, format="safetensors"), "safetensors when the job saved none",
           status=404, code="not_found", field="format")
    fake.safetensors = True
    check(not os.path.exists(nothing), "no folder is made when there is nothing to download")

    # A file name in result.json that would leave the folder is refused before anything is written.
    fake.folder = {"../evil": b"x", "config.json": CONFIG}
    evil = os.path.join(tmp, "evil-dir")
    raises(lambda: c.download(JOB, evil, format="safetensors"), "a file named ../evil", code="bad_response")
    fake.folder = {"model.safetensors": MODEL, "config.json": CONFIG}
    check(not os.path.exists(evil) and not os.path.exists(os.path.join(tmp, "evil")),
          "nothing is written for a file named ../evil")


def main():
    fake = Fake()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(fake))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    tmp = tempfile.mkdtemp(prefix="prunerd-client-download-")
    try:
        c = Client(f"http://127.0.0.1:{server.server_address[1]}", timeout=10)
        for t in (test_folder, test_resume, test_checksums, test_single_file_and_errors):
            try:
                t(c, fake, tmp)
            except Exception as e:  # an unexpected error fails this part, the others still run
                check(False, f"{t.__name__} raised", repr(e))
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{td.passed} passed, {td.failed} failed")
    return 1 if td.failed or not td.passed else 0


if __name__ == "__main__":
    sys.exit(main())
