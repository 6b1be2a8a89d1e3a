#!/usr/bin/env python3
"""test_daemon.py - start the real prunerd daemon on a free port and speak HTTP to it.

Every failure prints what it expected and what it got.  Needs PRUNERD_BIN and
PRUNERD_SHARED (the shared data: the seed model and THUCNews); fails, never
skips, when they are missing.
"""
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

BIN = os.environ.get("PRUNERD_BIN", "")
SHARED = os.path.realpath(os.environ.get("PRUNERD_SHARED", "")) if os.environ.get("PRUNERD_SHARED") else ""
MODEL_NAME = "thucnews-bert-l4-h256.pt"
passed = failed = 0


def check(cond, what, got=None):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {what}" + (f": got {got!r}" if got is not None else ""), flush=True)
    return cond


def sha256_file(path):
    """The sha256 of a file, read in 1 MiB blocks, as lowercase hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hash_token(secret):
    return hashlib.sha256(secret.encode()).hexdigest()


class Daemon:
    """One prunerd serve process on 127.0.0.1 with a port it picked itself."""

    def __init__(self, tmp, args=(), config=None, data_dir=None, name="d", preexec=None):
        self.tmp = tmp
        self.preexec = preexec  # run in the child before exec (limits for fault tests)
        self.data_dir = data_dir or os.path.join(tmp, "var")
        self.log_path = os.path.join(tmp, f"{name}.log")
        self.args = list(args)
        self.config = config
        self.start()

    def start(self):
        cmd = [BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data_dir] + self.args
        if self.config:
            path = os.path.join(self.tmp, "prunerd.conf")
            with open(path, "w") as f:
                f.write(self.config)
            cmd += ["--config", path]
        self.log = open(self.log_path, "a")
        self.log_start = self.log.tell()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, preexec_fn=self.preexec)
        deadline = time.time() + 20
        self.port = None
        while time.time() < deadline and self.port is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prunerd exited with {self.proc.returncode}: {self.tail()}")
            with open(self.log_path) as f:
                f.seek(self.log_start)
                for line in f:
                    if "listening on http://127.0.0.1:" in line:
                        self.port = int(line.split("http://127.0.0.1:")[1].split()[0])
            time.sleep(0.05)
        if self.port is None:
            raise RuntimeError("prunerd did not say it was listening: " + self.tail())

    def tail(self):
        with open(self.log_path) as f:
            return f.read()[-3000:]

    def req(self, method, path, body=None, headers=None, token=None, raw=None, timeout=30):
        """Returns (status, headers, body bytes); JSON bodies are sent as JSON."""
        h = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        if token:
            h["Authorization"] = "Bearer " + token
        r = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                   headers=h)
        try:
            with urllib.request.urlopen(r, timeout=timeout) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def json(self, method, path, body=None, **kw):
        st, h, b = self.req(method, path, body, **kw)
        try:
            return st, h, json.loads(b) if b else None
        except ValueError:
            return st, h, b

    def stop(self, sig=signal.SIGTERM, timeout=30):
        t0 = time.time()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log.close()
        return rc, time.time() - t0


def error_of(body):
    return (body.get("error") or {}) if isinstance(body, dict) else {}


def check_error(st, body, want_status, what, field=None):
    e = error_of(body)
    ok = check(st == want_status, f"{what}: status {want_status}", (st, body))
    ok = check(isinstance(e.get("code"), str) and isinstance(e.get("message"), str),
               f"{what}: JSON error body with code and message", body) and ok
    if field is not None:
        ok = check(e.get("field") == field, f"{what}: error field {field!r}", e.get("field")) and ok
    return ok


def wait_status(d, job_id, statuses, timeout=120, token=None):
    deadline = time.time() + timeout
    body = None
    while time.time() < deadline:
        st, _, body = d.json("GET", f"/v1/jobs/{job_id}", token=token)
        if st == 200 and body["status"] in statuses:
            return body
        time.sleep(0.1)
    return body


def seed_request(limit=64, name="seed", batch_size=None):
    data = os.path.join(SHARED, "data")
    req = {
        "name": name,
        "model": MODEL_NAME,
        "targets": ["bert.encoder.layer.*.attention.self.query"],
        "method": "l1_unstructured",
        "amount": 0.3,
        "scope": "global",
        "eval": {"data": os.path.join(data, "thucnews", "dev.txt"),
                 "vocab": os.path.join(data, "vocab", "bert-base-chinese-vocab.txt"),
                 "classes": os.path.join(data, "thucnews", "class.txt"),
                 "limit": limit},
        "outputs": ["torchscript", "state_dict"],
    }
    if batch_size:  # small batches: frequent batch boundaries to stop at
        req["eval"]["batch_size"] = batch_size
    return req


def raw_http(port, data, read_timeout=10):
    """Sends raw bytes, returns the response bytes up to the end of the headers + body."""
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                head, _, rest = out.partition(b"\r\n\r\n")
                cl = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if cl and len(rest) >= int(cl[0].split(b":")[1]):
                    break
    except socket.timeout:
        pass
    s.close()
    return out


# ---------------------------------------------------------------- tests


def test_basics(d):
    st, h, b = d.json("GET", "/healthz")
    check(st == 200 and b == {"status": "ok"}, "healthz", (st, b))
    st, h, b = d.json("GET", "/readyz")
    check(st == 200 and b.get("status") == "ready" and b.get("workers") is True, "readyz", (st, b))
    st, h, b = d.req("GET", "/")
    check(st == 200 and b"openapi" in b and "text/html" in h.get("Content-Type", ""), "index", st)
    st, h, b = d.req("HEAD", "/healthz")
    check(st == 200 and b == b"", "HEAD healthz has no body", (st, b))


def test_errors(d, tmp):
    # 400 with field
    st, _, b = d.json("POST", "/v1/jobs", raw=b"{not json", headers={"Content-Type": "application/json"})
    check_error(st, b, 400, "invalid JSON", field="body")
    st, _, b = d.json("POST", "/v1/jobs", raw=b"", headers={"Content-Type": "application/json"})
    check_error(st, b, 400, "empty body", field="body")
    st, _, b = d.json("POST", "/v1/jobs", {"targets": ["x"]})
    check_error(st, b, 400, "missing model", field="model")
    req = seed_request()
    req["amount"] = -0.5
    st, _, b = d.json("POST", "/v1/jobs", req)
    check_error(st, b, 400, "amount out of range", field="amount")
    check(error_of(b).get("code") == "invalid_field", "a bad field's code is invalid_field", error_of(b))
    req = seed_request()
    req["eval"]["tokenizer"] = "wordpiece"
    st, _, b = d.json("POST", "/v1/jobs", req)
    check_error(st, b, 400, "unknown tokenizer", field="eval.tokenizer")
    check("bert_legacy" in error_of(b).get("message", ""), "the message lists the tokenizers",
          error_of(b))
    for method, path in (("GET", "/v1/jobs/not-a-uuid"), ("GET", "/v1/jobs/does-not-exist/result"),
                         ("POST", "/v1/jobs/does-not-exist/cancel"), ("DELETE", "/v1/jobs/x"),
                         ("GET", "/v1/jobs/" + "9" * 36), ("GET", "/v1/jobs/%2e%2e/checkpoint"),
                         ("GET", "/v1/jobs/00000000-0000-4000-8000-000000000000")):
        st, _, b = d.json(method, path)
        check_error(st, b, 404, f"{method} {path}: an id that names no job")
    st, _, listed = d.json("GET", "/v1/jobs?limit=100")
    before = len(listed["jobs"])
    for body, key in ((b'{"model": "m", "amount": 0.3, "amount": 5}', "amount"),
                      (b'{"model": "m", "eval": {"limit": 1, "limit": 2}}', "limit")):
        st, _, b = d.req("POST", "/v1/jobs", raw=body, headers={"Content-Type": "application/json"})
        b = json.loads(b) if b else None
        check_error(st, b, 400, f"a duplicate key {key!r}", field=key)
        check(error_of(b).get("code") == "duplicate_key", "the code is duplicate_key", error_of(b))
    st, _, listed = d.json("GET", "/v1/jobs?limit=100")
    check(len(listed["jobs"]) == before, "nothing was queued by the duplicate keys", len(listed["jobs"]))
    st, _, b = d.json("GET", "/v1/jobs?limit=0")
    check_error(st, b, 400, "limit 0", field="limit")
    st, _, b = d.json("GET", "/v1/jobs?status=sleeping")
    check_error(st, b, 400, "bad status", field="status")
    st, _, b = d.json("GET", "/v1/jobs?cursor=garbage!")
    check_error(st, b, 400, "bad cursor", field="cursor")
    st, _, b = d.json("GET", "/v1/models/inspect")
    check_error(st, b, 400, "inspect without path", field="path")
    st, _, b = d.json("POST", "/v1/jobs", dict(seed_request(), model="missing-model.pt"))
    check_error(st, b, 400, "missing model file", field="model")

    # 403: paths that escape the roots; the file is never opened
    for what, model in [("..", "../" + MODEL_NAME), ("absolute outside", "/etc/passwd"),
                        ("symlink escape", os.path.join(tmp, "extra", "escape.pt")),
                        ("symlink dir escape", os.path.join(tmp, "extra", "outdir", "secret.pt"))]:
        st, _, b = d.json("POST", "/v1/jobs", dict(seed_request(), model=model))
        check_error(st, b, 403, f"model path {what}", field="model")
    r = seed_request()
    r["eval"]["data"] = "/etc/passwd"
    st, _, b = d.json("POST", "/v1/jobs", r)
    check_error(st, b, 403, "eval.data outside", field="eval.data")
    st, _, b = d.json("GET", "/v1/models/inspect?path=../../etc/passwd")
    check_error(st, b, 403, "inspect ..", field="path")
    st, _, b = d.json("GET", "/v1/models/inspect?path=" + os.path.join(tmp, "extra", "escape.pt"))
    check_error(st, b, 403, "inspect symlink escape", field="path")

    # 404
    st, _, b = d.json("GET", "/v1/nothing")
    check_error(st, b, 404, "unknown route")
    st, _, b = d.json("GET", "/v1/jobs/00000000-0000-4000-8000-000000000000")
    check_error(st, b, 404, "unknown job")
    st, _, b = d.json("GET", "/v1/jobs/00000000-0000-4000-8000-000000000000/checkpoint")
    check_error(st, b, 404, "checkpoint of unknown job")

    # 405 + Allow
    st, h, b = d.json("PUT", "/v1/jobs")
    check_error(st, b, 405, "PUT /v1/jobs")
    check(h.get("Allow") == "POST, GET, HEAD", "Allow on /v1/jobs", h.get("Allow"))
    st, h, b = d.json("GET", "/v1/jobs/00000000-0000-4000-8000-000000000000/cancel")
    check(st == 405 and h.get("Allow") == "POST", "GET cancel: 405 Allow POST", (st, h.get("Allow")))

    # 413: Content-Length over the limit with Expect: 100-continue, answered before the body is sent
    big = 2 * 1024 * 1024
    out = raw_http(d.port, (f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            f"Content-Length: {big}\r\nExpect: 100-continue\r\n\r\n").encode())
    check(out.startswith(b"HTTP/1.1 413"), "413 on Content-Length + Expect before the body", out[:80])
    check(b'"code":"payload_too_large"' in out, "413 body is a JSON error", out[-200:])
    # without Expect the body is read and dropped first: urllib writes it all, then reads the 413
    st, _, b = d.json("POST", "/v1/jobs", raw=b"x" * big, headers={"Content-Type": "application/json"})
    check_error(st, b, 413, "a 2 MiB body written whole before reading")
    # past 64 MiB nothing is read: the 413 goes at once, and the connection closes
    out = raw_http(d.port, (f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            f"Content-Length: {100 << 20}\r\n\r\n").encode())
    check(out.startswith(b"HTTP/1.1 413") and b'"code":"payload_too_large"' in out,
          "413 at once for a declared 100 MiB body", out[:80])
    # 413: a chunked body that grows over the limit: read, discarded, then answered
    def chunks():
        for _ in range(40):
            yield b"x" * 65536
    st, _, b = d.json("POST", "/v1/jobs", raw=chunks(), headers={"Content-Type": "application/json"})
    check_error(st, b, 413, "chunked body over the limit")
    # a small chunked body is fine (reaches validation)
    def small():
        yield b'{"targets": '
        yield b'["x"]}'
    st, _, b = d.json("POST", "/v1/jobs", raw=small(), headers={"Content-Type": "application/json"})
    check_error(st, b, 400, "small chunked body validated", field="model")

    # 415
    st, _, b = d.json("POST", "/v1/jobs", raw=b"model=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    check_error(st, b, 415, "form body")
    st, _, b = d.json("POST", "/v1/jobs", raw=b"{}", headers={"Content-Type": "text/plain"})
    check_error(st, b, 415, "text/plain body")
    st, _, b = d.json("POST", "/v1/jobs", raw=b'{"targets": ["x"]}',
                      headers={"Content-Type": "application/json; charset=utf-8"})
    check_error(st, b, 400, "json with charset accepted", field="model")
    # the connection stays usable after a discarded body
    st, _, b = d.json("GET", "/healthz")
    check(st == 200, "healthz after the error bodies", st)


def test_job_fields(d):
    """model_config, outputs and eval.lowercase through POST /v1/jobs: checked, unset kept unset."""
    r = seed_request(name="fields")
    r["model_config"] = "/etc/passwd"
    st, _, b = d.json("POST", "/v1/jobs", r)
    check_error(st, b, 403, "model_config outside the roots", field="model_config")
    r["model_config"] = r["eval"]["classes"]  # under a data root only: a config is a model's
    st, _, b = d.json("POST", "/v1/jobs", r)
    check_error(st, b, 403, "model_config under a data root", field="model_config")
    for bad, field in (({"outputs": ["onnx"]}, "outputs"), ({"outputs": []}, "outputs"),
                       ({"model_config": 3}, "model_config"),
                       ({"eval": dict(seed_request()["eval"], lowercase="yes")}, "eval.lowercase")):
        st, _, b = d.json("POST", "/v1/jobs", dict(seed_request(name="fields"), **bad))
        check_error(st, b, 400, f"bad {field}", field=field)
    r = seed_request(name="unset")
    del r["outputs"]
    st, _, job = d.json("POST", "/v1/jobs", r)
    if check(st == 201, "a job without outputs is accepted", (st, job)):
        q = job["request"]
        check(q["outputs"] is None and q["model_config"] is None and q["eval"]["lowercase"] is None
              and q["eval"]["vocab"].endswith("vocab.txt"), "unset fields stay null in the job's request", q)
        # reals in their shortest form: 0.3, not 0.29999999999999999 (the 201 and the job view)
        st, _, raw = d.req("GET", f"/v1/jobs/{job['id']}")
        check(b'"amount":0.3,' in raw and b"0.2999999" not in raw,
              "the job view prints amount as 0.3", raw[:300])
        d.json("POST", f"/v1/jobs/{job['id']}/cancel")
    st, _, b = d.json("POST", "/v1/jobs", dict(seed_request(name="count"), amount=1.5, amount_kind="count"))
    check_error(st, b, 400, "a count that is not whole", field="amount")
    check("amount=1.5 " in error_of(b).get("message", ""), "the message quotes 1.5 as it was sent", error_of(b))
    r = seed_request(name="safetensors")
    r["outputs"] = ["safetensors"]
    st, _, b = d.json("POST", "/v1/jobs", r)
    check_error(st, b, 400, "safetensors from a TorchScript model is refused at submission",
                field="outputs")
    check("TorchScript" in error_of(b).get("message", ""), "the message says why", b)


def test_jobs_lifecycle(d):
    """Seed job end to end, 409 before success, downloads with ETag and Range."""
    st, h, job = d.json("POST", "/v1/jobs", seed_request(limit=64))
    if not check(st == 201, "seed job accepted", (st, job)):
        return
    jid = job["id"]
    check(h.get("Location") == f"/v1/jobs/{jid}", "Location header", h.get("Location"))
    check(job["status"] in ("queued", "running"), "new job queued", job["status"])
    check(job["request"]["model"].endswith(MODEL_NAME), "request model resolved", job["request"]["model"])
    check(job["request"]["eval"].get("tokenizer") == "bert", "eval.tokenizer defaults to bert",
          job["request"]["eval"])
    # 409 until succeeded (the job cannot be done this fast... unless it is; then skip)
    st, _, b = d.json("GET", f"/v1/jobs/{jid}/checkpoint")
    st2, _, b2 = d.json("GET", f"/v1/jobs/{jid}/result")
    now = d.json("GET", f"/v1/jobs/{jid}")[2]["status"]
    if now != "succeeded":
        check_error(st, b, 409, "checkpoint before success")
        check_error(st2, b2, 409, "result before success")
    st, _, b = d.json("DELETE", f"/v1/jobs/{jid}")
    if d.json("GET", f"/v1/jobs/{jid}")[2]["status"] in ("queued", "running"):
        check_error(st, b, 409, "DELETE while queued/running")

    job = wait_status(d, jid, ("succeeded", "failed", "cancelled"), timeout=300)
    if not check(job and job["status"] == "succeeded", "seed job succeeded", job):
        print(d.tail())
        return
    check(job["progress"] == 1.0 and job["finished_at"] and job["started_at"], "progress and timestamps", job)
    for k in ("accuracy_before", "accuracy_after", "macro_f1_before", "macro_f1_after"):
        check(isinstance(job.get(k), float) and 0 <= job[k] <= 1, f"job view has {k}", job.get(k))
    st, _, res = d.json("GET", f"/v1/jobs/{jid}/result")
    check(st == 200 and isinstance(res, dict), "result", st)
    for k in ("metrics", "sparsity", "timings", "artifacts", "provenance"):
        check(job.get(k) == res.get(k), f"job view carries result.json's {k}", (job.get(k) is None, k))
    st, _, lst = d.json("GET", "/v1/jobs?status=succeeded")
    mine = [j for j in lst["jobs"] if j["id"] == jid]
    check(mine and mine[0]["accuracy_after"] == job["accuracy_after"], "list shows metrics", mine)

    for fmt in ("torchscript", "state_dict"):
        path = f"/v1/jobs/{jid}/checkpoint?format={fmt}"
        st, h, body = d.req("GET", path)
        if not check(st == 200, f"{fmt} download", st):
            continue
        size = len(body)
        etag = h.get("ETag", "")
        check(int(h.get("Content-Length", -1)) == size and size > 1000, f"{fmt} Content-Length", (h.get("Content-Length"), size))
        check(etag == '"%s"' % hashlib.sha256(body).hexdigest(), f"{fmt} ETag is the sha256", etag)
        check("attachment" in h.get("Content-Disposition", ""), f"{fmt} Content-Disposition", h.get("Content-Disposition"))
        st, h2, b2 = d.req("GET", path, headers={"If-None-Match": etag})
        check(st == 304 and b2 == b"", f"{fmt} If-None-Match -> 304", st)
        st, h2, b2 = d.req("GET", path, headers={"If-None-Match": '"other"'})
        check(st == 200 and len(b2) == size, f"{fmt} other ETag -> 200", st)
        st, h2, b2 = d.req("GET", path, headers={"Range": "bytes=100-199"})
        check(st == 206 and b2 == body[100:200], f"{fmt} Range 100-199", (st, len(b2)))
        check(h2.get("Content-Range") == f"bytes 100-199/{size}", f"{fmt} Content-Range", h2.get("Content-Range"))
        st, h2, b2 = d.req("GET", path, headers={"Range": "bytes=-10"})
        check(st == 206 and b2 == body[-10:], f"{fmt} suffix range", (st, len(b2)))
        st, h2, b2 = d.req("GET", path, headers={"Range": f"bytes={size - 5}-"})
        check(st == 206 and b2 == body[-5:], f"{fmt} open range", (st, len(b2)))
        st, h2, b2 = d.req("GET", path, headers={"Range": f"bytes={size}-"})
        check(st == 416 and h2.get("Content-Range") == f"bytes */{size}", f"{fmt} 416", (st, h2.get("Content-Range")))
        check(error_of(json.loads(b2)).get("code") == "range_not_satisfiable", f"{fmt} 416 JSON", b2[:100])
        st, h2, b2 = d.req("GET", path, headers={"Range": "bytes=0-1,5-6"})
        check(st == 200 and len(b2) == size, f"{fmt} multi-range -> whole file", (st, len(b2)))
        # resume a download: two halves make the file
        st, _, first = d.req("GET", path, headers={"Range": f"bytes=0-{size // 2 - 1}"})
        st, _, second = d.req("GET", path, headers={"Range": f"bytes={size // 2}-"})
        check(first + second == body, f"{fmt} resumed download is the file")
        st, h2, b2 = d.req("HEAD", path)
        check(st == 200 and b2 == b"" and int(h2.get("Content-Length", -1)) == size, f"{fmt} HEAD", (st, h2.get("Content-Length")))
    st, _, b = d.json("GET", f"/v1/jobs/{jid}/checkpoint?format=onnx")
    check_error(st, b, 400, "bad checkpoint format", field="format")
    st, _, b = d.json("POST", f"/v1/jobs/{jid}/cancel")
    check_error(st, b, 409, "cancel a finished job")
    st, _, b = d.req("DELETE", f"/v1/jobs/{jid}")
    check(st == 204, "DELETE finished job", (st, b))
    st, _, b = d.json("GET", f"/v1/jobs/{jid}")
    check_error(st, b, 404, "deleted job is gone")
    check(not os.path.exists(os.path.join(d.data_dir, "jobs", jid)), "deleted job's files are gone")


def test_cancel(d):
    st, _, job = d.json("POST", "/v1/jobs", seed_request(limit=4000, name="long", batch_size=32))
    st2, _, job2 = d.json("POST", "/v1/jobs", seed_request(limit=64, name="behind"))
    if not check(st == 201 and st2 == 201, "two jobs accepted", (st, st2)):
        return
    # the second is queued behind the first (one worker): cancelled at once
    st, _, b = d.json("POST", f"/v1/jobs/{job2['id']}/cancel")
    check(st == 202 and b["status"] == "cancelled", "cancel a queued job", (st, b))
    running = wait_status(d, job["id"], ("running",), timeout=60)
    check(running and running["status"] == "running", "long job running", running)
    st, _, b = d.json("POST", f"/v1/jobs/{job['id']}/cancel")
    check(st == 202 and b.get("cancel_requested") is True, "cancel a running job", (st, b))
    done = wait_status(d, job["id"], ("cancelled", "succeeded", "failed"), timeout=60)
    check(done and done["status"] == "cancelled", "running job cancelled at a batch boundary", done)


def test_idempotency(d):
    r = seed_request(name="idem")
    st1, h1, a = d.json("POST", "/v1/jobs", r, headers={"Idempotency-Key": "k-123"})
    st2, h2, b = d.json("POST", "/v1/jobs", r, headers={"Idempotency-Key": "k-123"})
    st3, h3, c = d.json("POST", "/v1/jobs", r, headers={"Idempotency-Key": "k-456"})
    check(st1 == 201, "first idempotent POST 201", st1)
    check(st2 == 200 and b["id"] == a["id"], "replayed POST gives the same job", (st2, b.get("id"), a.get("id")))
    check(h2.get("Location") == f"/v1/jobs/{a['id']}", "replay Location", h2.get("Location"))
    check(st3 == 201 and c["id"] != a["id"], "another key, another job", (st3, c.get("id")))
    st, _, e = d.json("POST", "/v1/jobs", dict(r, name="not the same"), headers={"Idempotency-Key": "k-123"})
    check_error(st, e, 422, "the same key with another request", field="Idempotency-Key")
    st, _, e = d.json("POST", "/v1/jobs", r, headers={"Idempotency-Key": "x" * 300})
    check_error(st, e, 400, "over-long Idempotency-Key", field="Idempotency-Key")
    for j in (a, c):
        d.json("POST", f"/v1/jobs/{j['id']}/cancel")


def test_pagination(d):
    ids = []
    for i in range(7):
        st, _, j = d.json("POST", "/v1/jobs", seed_request(name=f"page-{i}"))
        check(st == 201, "page job accepted", st)
        ids.append(j["id"])
    for jid in ids:
        d.json("POST", f"/v1/jobs/{jid}/cancel")
    seen, cursor, pages = [], "", 0
    while True:
        st, _, b = d.json("GET", "/v1/jobs?limit=3" + (f"&cursor={cursor}" if cursor else ""))
        if not check(st == 200, "list page", (st, b)):
            return
        check(len(b["jobs"]) <= 3, "page size", len(b["jobs"]))
        seen += [j["id"] for j in b["jobs"]]
        pages += 1
        cursor = b["next_cursor"]
        if not cursor or pages > 50:
            break
    check(len(seen) == len(set(seen)), "no job twice across pages")
    pos = [seen.index(i) for i in ids if i in seen]
    check(len(pos) == 7, "every job listed across pages", len(pos))
    check(pos == sorted(pos, reverse=True), "newest first", pos)
    st, _, b = d.json("GET", "/jobs?limit=2")
    check(st == 200 and len(b["jobs"]) == 2, "unversioned alias /jobs", st)
    for jid in ids:
        wait_status(d, jid, ("cancelled", "succeeded", "failed"), timeout=120)
    st, _, b = d.json("GET", "/v1/jobs?status=cancelled&limit=200")
    check(st == 200 and b["jobs"] and all(j["status"] == "cancelled" for j in b["jobs"]),
          "status filter", (st, [j["status"] for j in b["jobs"]]))
    st, _, b = d.json("GET", "/v1/jobs?status=succeeded&limit=200")
    check(st == 200 and all(j["status"] == "succeeded" for j in b["jobs"]), "status filter", st)


def test_metrics(d):
    st, h, b = d.req("GET", "/metrics")
    text = b.decode()
    check(st == 200 and h.get("Content-Type", "").startswith("text/plain"), "metrics", st)
    for needle in ('prunerd_jobs{status="queued"}', "prunerd_queue_depth ",
                   'prunerd_http_requests_total{route="/v1/jobs",method="POST",code="201"}',
                   'route="(404)"', "prunerd_http_request_duration_seconds_bucket",
                   "prunerd_job_duration_seconds", "prunerd_stage_duration_seconds"):
        check(needle in text, f"metrics has {needle}", text[:300] if needle not in text else None)


def test_openapi(d):
    st, _, doc = d.json("GET", "/v1/openapi.json")
    if not check(st == 200 and doc.get("openapi", "").startswith("3."), "OpenAPI 3 document", st):
        return
    st, _, doc2 = d.json("GET", "/openapi.json")
    check(st == 200 and doc2 == doc, "OpenAPI at /openapi.json too", st)
    # a job to stand in for {id}: one that is cancelled (so every route answers)
    st, _, j = d.json("POST", "/v1/jobs", seed_request(name="openapi"))
    jid = j["id"]
    d.json("POST", f"/v1/jobs/{jid}/cancel")
    methods = ("GET", "POST", "PUT", "DELETE", "PATCH")
    wait_status(d, jid, ("cancelled",), timeout=60)
    # an upload to stand in for {name}
    st, _, _ = d.req("PUT", "/v1/uploads/openapi.txt", raw=b"openapi\n",
                     headers={"Content-Type": "application/octet-stream"})
    check(st in (200, 201), "an upload for {name}", st)

    def concrete_path(path):
        return path.replace("{id}", jid).replace("{name}", "openapi.txt")
    for path, item in doc["paths"].items():
        if path.startswith("/v1/"):
            concrete = concrete_path(path)[3:]
            m = "GET" if "get" in item else "POST"
            st, h, b = d.req(m, concrete, body=seed_request(name="alias") if m == "POST" else None)
            check(st not in (404, 405), f"alias {m} {concrete} answers", (st, b[:200]))
            if st == 201:
                d.json("POST", f"/v1/jobs/{json.loads(b)['id']}/cancel")
    for path, item in doc["paths"].items():
        documented = {m.upper() for m in item}
        concrete = concrete_path(path)
        for m in methods:
            if m in documented:
                op = item[m.lower()]
                body = seed_request(name="openapi-post") if (m == "POST" and "requestBody" in op) else None
                q = "?path=" + MODEL_NAME if path == "/v1/models/inspect" else ""
                st, h, b = d.req(m, concrete + q, body=body)
                check(str(st) in op["responses"], f"{m} {path} answers a documented status",
                      (st, sorted(op["responses"]), b[:200]))
                if st == 201 and m == "POST" and path == "/v1/jobs":
                    d.json("POST", f"/v1/jobs/{json.loads(b)['id']}/cancel")
            else:
                st, h, b = d.req(m, concrete)
                allow = {a.strip() for a in h.get("Allow", "").split(",")} - {"HEAD", ""}
                check(st == 405 and allow == documented,
                      f"{m} {path} (undocumented) answers 405 with Allow = documented",
                      (st, h.get("Allow"), sorted(documented)))
    # anything else is 404: the server answers no route the document lacks
    for path in ("/v2/jobs", "/v1", "/v1/", "/v1/models", "/v1/jobs/x/y/z", "/jobs/" + jid + "/nope",
                 "/health", "/v1/healthz", "/static/x"):
        st, _, b = d.json("GET", path)
        check_error(st, b, 404, f"GET {path} (undocumented) is 404")


def test_concurrency(d):
    results, errors = [], []
    lock = threading.Lock()

    def client(i):
        try:
            st, _, j = d.json("POST", "/v1/jobs", seed_request(name=f"c{i}"))
            statuses = [st]
            for _ in range(5):
                s2, _, _ = d.json("GET", f"/v1/jobs/{j['id']}") if st == 201 else (st, None, None)
                statuses.append(s2)
            with lock:
                results.append((st, j.get("id") if isinstance(j, dict) else None, statuses))
        except Exception as e:  # noqa: BLE001 - report anything
            with lock:
                errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    check(not errors, "50 clients: no connection errors", errors[:3])
    check(len(results) == 50, "50 clients finished", len(results))
    check(all(r[0] == 201 for r in results), "50 POSTs all 201", [r[0] for r in results if r[0] != 201])
    check(all(s < 500 for r in results for s in r[2]), "no 5xx while polling",
          [r[2] for r in results if any(s >= 500 for s in r[2])])
    ids = {r[1] for r in results}
    listed, cursor = set(), ""
    for _ in range(20):
        st, _, b = d.json("GET", "/v1/jobs?limit=200" + (f"&cursor={cursor}" if cursor else ""))
        listed |= {j["id"] for j in b["jobs"]}
        cursor = b["next_cursor"]
        if not cursor:
            break
    check(ids <= listed, "all 50 jobs listed", len(ids - listed))
    print(f"  50 clients posting and polling: {time.time() - t0:.2f} s")
    for jid in ids:
        d.json("POST", f"/v1/jobs/{jid}/cancel")


def test_auth(tmp, roots):
    tokens = {"boss": ("admin", "s-boss"), "alice": ("submit", "s-alice"),
              "bob": ("submit", "s-bob"), "viewer": ("read", "s-view")}
    conf = "[tokens]\n" + "".join(f"{n} = {r}:{hash_token(s)}\n" for n, (r, s) in tokens.items())
    d = Daemon(tmp, roots, config=conf, data_dir=os.path.join(tmp, "var-auth"), name="auth")
    try:
        st, _, b = d.json("GET", "/v1/jobs")
        check_error(st, b, 401, "no token")
        st, _, b = d.json("GET", "/v1/jobs", token="wrong")
        check_error(st, b, 401, "unknown token")
        st, _, b = d.json("POST", "/v1/jobs", raw=b"{}", headers={"Content-Type": "text/plain"})
        check_error(st, b, 401, "no token comes before a wrong Content-Type")
        st, _, b = d.json("GET", "/healthz")
        check(st == 200, "healthz needs no token", st)
        st, _, b = d.json("GET", "/v1/openapi.json")
        check(st == 200, "OpenAPI needs no token", st)
        st, _, b = d.json("GET", "/v1/jobs", token="s-view")
        check(st == 200, "read token lists", st)
        st, _, b = d.json("POST", "/v1/jobs", seed_request(name="by-viewer"), token="s-view")
        check_error(st, b, 403, "read token cannot submit")
        st, _, a = d.json("POST", "/v1/jobs", seed_request(name="by-alice"), token="s-alice")
        check(st == 201 and a.get("owner") == "alice", "submit token submits; owner recorded", (st, a))
        st, _, b = d.json("POST", f"/v1/jobs/{a['id']}/cancel", token="s-bob")
        check_error(st, b, 403, "bob cannot cancel alice's job")
        st, _, b = d.json("POST", f"/v1/jobs/{a['id']}/cancel", token="s-view")
        check_error(st, b, 403, "read token cannot cancel")
        st, _, b = d.json("GET", f"/v1/jobs/{a['id']}", token="s-view")
        check(st == 200 and b["owner"] == "alice", "read token views", (st, b))
        # Server paths: whole for an admin, relative to their root for the rest,
        # and a request sent back with the relative paths names the same files.
        st, _, boss = d.json("GET", f"/v1/jobs/{a['id']}", token="s-boss")
        seen = json.dumps(b)
        check(boss["request"]["eval"]["data"] == os.path.realpath(os.path.join(SHARED, "data", "thucnews", "dev.txt")),
              "an admin sees the absolute path", boss["request"]["eval"])
        check(b["request"]["model"] == MODEL_NAME and b["request"]["eval"]["data"] == "thucnews/dev.txt" and
              b["request"]["eval"]["vocab"] == "vocab/bert-base-chinese-vocab.txt",
              "a read token sees paths relative to their roots", b["request"])
        check(os.path.realpath(SHARED) not in seen and "/" + MODEL_NAME not in seen,
              "no server path anywhere in the read token's view", seen[:300])
        again = dict(b["request"], name="by-alice-again")
        st, _, c = d.json("POST", "/v1/jobs", again, token="s-alice")
        check(st == 201 and c["request"]["eval"]["data"] == "thucnews/dev.txt",
              "the relative paths are taken back", (st, c))
        if st == 201:
            st, _, cb = d.json("GET", f"/v1/jobs/{c['id']}", token="s-boss")
            check(cb["request"]["eval"] == boss["request"]["eval"] and cb["request"]["model"] == boss["request"]["model"],
                  "...and name the same files", (cb["request"], boss["request"]))
            d.json("POST", f"/v1/jobs/{c['id']}/cancel", token="s-boss")
        st, _, b = d.json("POST", f"/v1/jobs/{a['id']}/cancel", token="s-alice")
        check(st == 202, "alice cancels her job", (st, b))
        st, _, b2 = d.json("POST", "/v1/jobs", seed_request(name="by-bob"), token="s-bob")
        st, _, b = d.json("POST", f"/v1/jobs/{b2['id']}/cancel", token="s-boss")
        check(st == 202, "admin cancels anyone's job", (st, b))
        wait_status(d, a["id"], ("cancelled",), timeout=60, token="s-view")
        st, _, b = d.req("DELETE", f"/v1/jobs/{a['id']}", token="s-bob")
        check(st == 403, "bob cannot delete alice's job", st)
        st, _, b = d.req("DELETE", f"/v1/jobs/{a['id']}", token="s-boss")
        check(st == 204, "admin deletes", st)
        # the same Idempotency-Key from two tokens makes two jobs
        st1, _, x = d.json("POST", "/v1/jobs", seed_request(), token="s-alice", headers={"Idempotency-Key": "same"})
        st2, _, y = d.json("POST", "/v1/jobs", seed_request(), token="s-bob", headers={"Idempotency-Key": "same"})
        check(st1 == 201 and st2 == 201 and x["id"] != y["id"], "Idempotency-Key is per token", (st1, st2))
        for j in (x, y):
            d.json("POST", f"/v1/jobs/{j['id']}/cancel", token="s-boss")
    finally:
        d.stop()
    # a non-loopback address needs tokens
    p = subprocess.run([BIN, "serve", "--listen", "0.0.0.0:0", "--data-dir", os.path.join(tmp, "v0")],
                       capture_output=True, text=True, timeout=20)
    check(p.returncode != 0 and "without tokens" in p.stderr, "0.0.0.0 without tokens refused", (p.returncode, p.stderr[-200:]))
    p = subprocess.run([BIN, "token-hash", "--name", "ci", "--role", "read"], input="abc\n",
                       capture_output=True, text=True, timeout=20)
    check(p.returncode == 0 and p.stdout.strip() == f"ci = read:{hash_token('abc')}", "token-hash", p.stdout)


def test_inspect(d):
    st, _, b = d.json("GET", "/v1/models/inspect?path=" + MODEL_NAME)
    ok = check(st == 200 and isinstance(b.get("tensors"), list), "inspect the seed model", (st, b))
    if ok:
        names = {p["name"]: p for p in b["tensors"]}
        fc = names.get("fc.weight", {})
        check(fc.get("shape") == [10, 256] and fc.get("dtype") == "float32", "inspect: fc.weight [10, 256] float32", fc)
        check("bert.encoder.layer.0.attention.self.query.weight" in names, "inspect: BERT names", list(names)[:5])
    st, _, b = d.json("GET", "/v1/models/inspect?path=missing.pt")
    check_error(st, b, 404, "inspect a missing model", field="path")


def test_limits(tmp, roots):
    conf = "[limits]\nquota = 1K\nbody_limit = 2K\n"
    d = Daemon(tmp, roots, config=conf, data_dir=os.path.join(tmp, "var-quota"), name="quota")
    try:
        st, _, b = d.json("POST", "/v1/jobs", seed_request())
        check_error(st, b, 507, "over quota")
        big = {"model": MODEL_NAME, "name": "x" * 3000}
        st, _, b = d.json("POST", "/v1/jobs", big)
        check_error(st, b, 413, "configured body limit (2K)")
        test_big_bodies(d)
    finally:
        d.stop()
    conf = "[limits]\nfree_space_factor = 1000000\n"
    d = Daemon(tmp, roots + ["--log-format", "json"], config=conf,
               data_dir=os.path.join(tmp, "var-space"), name="space")
    try:
        st, _, j = d.json("POST", "/v1/jobs", seed_request(name="no-space"))
        done = wait_status(d, j["id"], ("failed", "succeeded"), timeout=60)
        check(done and done["status"] == "failed" and "free space" in (done.get("error") or ""),
              "job fails before starting when free space < factor x model", done)
    finally:
        d.stop()
    lines = [l for l in open(d.log_path) if l.strip()]
    parsed = []
    for l in lines:
        try:
            parsed.append(json.loads(l))
        except ValueError:
            check(False, "--log-format json: every line is JSON", l)
    check(parsed and all({"time", "level", "where", "message"} <= set(p) for p in parsed),
          "JSON log lines have time, level, where, message", parsed[:2])
    check(any(p.get("job") == j["id"] for p in parsed), "JSON log lines name the job", len(parsed))


def test_quota_total(tmp, roots):
    """The quota is a running total: a finished job's files count at once, a
    DELETE gives them back, and a file dropped into the dir behind the
    daemon's back is not seen until the hourly recount (no walk per POST)."""
    conf = "[limits]\nquota = 10M\n"
    data_dir = os.path.join(tmp, "var-quota-total")
    d = Daemon(tmp, roots, config=conf, data_dir=data_dir, name="quota-total")
    try:
        st, _, j = d.json("POST", "/v1/jobs", seed_request(name="quota-1"))
        check(st == 201, "under the quota: the first job is accepted", (st, j))
        done = wait_status(d, j["id"], ("failed", "succeeded"), timeout=120) if st == 201 else None
        check(done and done["status"] == "succeeded", "the first job succeeds", done)
        st, _, b = d.json("POST", "/v1/jobs", seed_request(name="quota-2"))
        check_error(st, b, 507, "its checkpoints (about 44 MB) put the store over 10M at once")
        st, _, _ = d.req("DELETE", f"/v1/jobs/{j['id']}")
        check(st == 204, "the first job is deleted", st)
        with open(os.path.join(data_dir, "behind-its-back.bin"), "wb") as f:
            f.write(os.urandom(12 << 20))
        st, _, b = d.json("POST", "/v1/jobs", seed_request(name="quota-3"))
        check(st == 201, "the DELETE gave the bytes back; a file written behind the daemon's "
              "back waits for the recount", (st, b))
        if st == 201:
            wait_status(d, b["id"], ("failed", "succeeded"), timeout=120)
    finally:
        d.stop()
    # A restart counts the dir again: now the dropped file and job 3 are seen.
    d = Daemon(tmp, roots, config=conf, data_dir=data_dir, name="quota-total-2")
    try:
        st, _, b = d.json("POST", "/v1/jobs", seed_request(name="quota-4"))
        check_error(st, b, 507, "after a restart the start-up count sees every file")
    finally:
        d.stop()


def test_big_bodies(d):
    """3 MB bodies over the limit get a 413 with the JSON error, whichever way they are sent."""
    import http.client
    body = b'{"name": "' + b"x" * 3_000_000 + b'"}'
    for what, chunked in (("the whole body written before reading (Content-Length)", False),
                          ("a chunked body", True)):
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
        try:
            if chunked:
                c.request("POST", "/v1/jobs", body=iter([body[i:i + 65536] for i in range(0, len(body), 65536)]),
                          headers={"Content-Type": "application/json"}, encode_chunked=True)
            else:
                c.request("POST", "/v1/jobs", body=body, headers={"Content-Type": "application/json"})
            resp = c.getresponse()
            st, raw = resp.status, resp.read()
        except OSError as e:
            st, raw = None, repr(e).encode()
        finally:
            c.close()
        b = json.loads(raw) if st else None
        check_error(st, b, 413, f"3 MB, {what}")
    # Expect: 100-continue: the 413 comes before the body is sent
    with socket.create_connection(("127.0.0.1", d.port), timeout=10) as sk:
        sk.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 3000000\r\nExpect: 100-continue\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < 20:
            chunk = sk.recv(65536)
            if not chunk:
                break
            got += chunk
    head, _, rest = got.partition(b"\r\n\r\n")
    check(head.startswith(b"HTTP/1.1 413") and b"payload_too_large" in rest,
          "Expect: 100-continue over the limit: 413 before the body, with the JSON error", got[:300])
    st, _, _ = d.req("GET", "/healthz")
    check(st == 200, "the daemon answers after the big bodies", st)


def test_sigterm_and_crash(tmp, roots):
    data = os.path.join(tmp, "var-stop")
    d = Daemon(tmp, roots + ["--stop-timeout", "10"], data_dir=data, name="stop")
    st, _, job = d.json("POST", "/v1/jobs", seed_request(limit=4000, name="interrupted", batch_size=32))
    jid = job["id"]
    running = wait_status(d, jid, ("running",), timeout=60)
    check(running and running["status"] == "running", "job running before SIGTERM", running)
    time.sleep(0.5)
    rc, took = d.stop(signal.SIGTERM, timeout=30)
    check(rc == 0, "SIGTERM: exit 0", rc)
    check(took < 10, "SIGTERM: exits within the stop timeout", round(took, 2))
    print(f"  SIGTERM with a running job: exited in {took:.2f} s")
    check("re-queued" in d.tail(), "SIGTERM: log says re-queued", d.tail()[-500:])
    d.start()
    st, _, b = d.json("GET", f"/v1/jobs/{jid}")
    check(st == 200 and b["status"] in ("queued", "running") and b["attempts"] == 0,
          "after SIGTERM the job is re-queued without counting an attempt", b)
    # crash: kill -9 while running, restart: recovered with attempts + 1
    running = wait_status(d, jid, ("running",), timeout=60)
    check(running and running["status"] == "running", "job running again after restart", running)
    time.sleep(0.3)
    d.stop(signal.SIGKILL)
    d.start()
    st, _, b = d.json("GET", f"/v1/jobs/{jid}")
    check(st == 200 and b["status"] in ("queued", "running") and b["attempts"] == 1,
          "after kill -9 the job is recovered with attempts 1", b)
    d.json("POST", f"/v1/jobs/{jid}/cancel")
    # a short job survives a crash and completes
    st, _, j2 = d.json("POST", "/v1/jobs", seed_request(limit=64, name="after-crash"))
    done = wait_status(d, jid, ("cancelled", "succeeded", "failed"), timeout=120)
    done2 = wait_status(d, j2["id"], ("succeeded", "failed"), timeout=300)
    check(done2 and done2["status"] == "succeeded", "a job after the crash succeeds", done2)
    rc, took = d.stop()
    check(rc == 0 and took < 10, "idle SIGTERM is quick", (rc, took))


def main():
    if not BIN or not os.access(BIN, os.X_OK):
        print(f"FAIL PRUNERD_BIN is not an executable: {BIN!r}\n0 passed, 1 failed")
        return 1
    model = os.path.join(SHARED, "models", MODEL_NAME)
    if not os.path.isfile(model):
        print(f"FAIL the shared model {model} is missing (set PRUNERD_SHARED)\n0 passed, 1 failed")
        return 1
    tmp = tempfile.mkdtemp(prefix="prunerd-test-")
    try:
        extra = os.path.join(tmp, "extra")
        os.makedirs(os.path.join(tmp, "outside"))
        os.makedirs(extra)
        with open(os.path.join(tmp, "outside", "secret.pt"), "w") as f:
            f.write("secret")
        os.symlink(os.path.join(tmp, "outside", "secret.pt"), os.path.join(extra, "escape.pt"))
        os.symlink(os.path.join(tmp, "outside"), os.path.join(extra, "outdir"))
        roots = ["--model-root", os.path.join(SHARED, "models"), "--model-root", extra,
                 "--data-root", os.path.join(SHARED, "data")]
        d = Daemon(tmp, roots)
        try:
            for t in (test_basics, lambda x: test_errors(x, tmp), test_job_fields, test_jobs_lifecycle, test_cancel,
                      test_idempotency, test_pagination, test_openapi, test_concurrency, test_metrics,
                      test_inspect):
                t(d)
        finally:
            rc, took = d.stop()
            check(rc == 0, "main daemon exits 0 on SIGTERM", rc)
            if failed:
                print(d.tail())
        test_auth(tmp, roots)
        test_limits(tmp, roots)
        test_quota_total(tmp, roots)
        test_sigterm_and_crash(tmp, roots)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
