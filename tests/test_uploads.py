#!/usr/bin/env python3
"""test_uploads.py - PUT /v1/uploads against the real daemon: memory, faults, quota, owners.

Starts `prunerd serve` (PRUNERD_BIN) with tokens and checks that
- a 400 MB upload raises the daemon's peak RSS (VmHWM) by at most 64 MB;
- an upload cut at half its length, or a daemon killed during one, leaves
  nothing listed and no file under the uploads folders (after a restart);
- the quota counts uploads (507), announced or found while streaming;
- Expect: 100-continue gets 401 / 413 before any of the body is sent;
- one token cannot see, use in a job, inspect or delete another token's
  uploads (404 / 403), an admin can, and a read token cannot upload;
- a job naming uploaded files gets the same metrics as with server paths.
Fails, never skips, when the shared data or the binary is missing.
"""
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_daemon  # noqa: E402
from test_daemon import Daemon, check, check_error, hash_token, wait_status  # noqa: E402

BIN = test_daemon.BIN
SHARED = test_daemon.SHARED
MB = 1 << 20
TOKENS = {"alice": ("submit", "alice-secret"), "bob": ("submit", "bob-secret"),
          "reader": ("read", "reader-secret"), "root": ("admin", "root-secret")}
ALICE, BOB, READER, ROOT = (TOKENS[n][1] for n in ("alice", "bob", "reader", "root"))


def config(extra=""):
    return "[tokens]\n" + "".join(f"{n} = {r}:{hash_token(s)}\n" for n, (r, s) in TOKENS.items()) + extra


def vm_hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def put_stream(d, name, total, token, query="", chunk=MB, chunked=False, sha=None, pattern=None):
    """PUTs total bytes made on the fly (never all in memory); returns (status, body)."""
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=120)
    block = (pattern or bytes(range(256))) * (chunk // len(pattern or bytes(range(256))))
    c.putrequest("PUT", f"/v1/uploads/{name}{query}")
    c.putheader("Authorization", "Bearer " + token)
    c.putheader("Content-Type", "application/octet-stream")
    if sha:
        c.putheader("Content-SHA256", sha)
    if chunked:
        c.putheader("Transfer-Encoding", "chunked")
    else:
        c.putheader("Content-Length", str(total))
    c.endheaders()
    sent = 0
    try:
        while sent < total:
            piece = block[:min(len(block), total - sent)]
            c.send(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
        if chunked:
            c.send(b"0\r\n\r\n")
        r = c.getresponse()
        body = r.read()
    except (BrokenPipeError, ConnectionResetError) as e:
        return None, str(e)
    finally:
        c.close()
    try:
        return r.status, json.loads(body) if body else None
    except ValueError:
        return r.status, body


def put_file(d, name, path, token, query=""):
    with open(path, "rb") as f:
        data = f.read()
    return d.json("PUT", f"/v1/uploads/{name}{query}", raw=data, token=token,
                  headers={"Content-Type": "application/octet-stream",
                           "Content-SHA256": hashlib.sha256(data).hexdigest()})


def leftovers(d, owner):
    """What is under the owner's uploads folder and in uploads.partial."""
    out = []
    for sub in (os.path.join("uploads", owner), "uploads.partial"):
        top = os.path.join(d.data_dir, sub)
        for dirpath, dirnames, filenames in os.walk(top):
            out += [os.path.join(dirpath, f) for f in filenames]
            out += [os.path.join(dirpath, x) for x in dirnames]
    return out


def wait_until(cond, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def listed(d, token):
    st, _, b = d.json("GET", "/v1/uploads", token=token)
    return [u["name"] for u in b["uploads"]] if st == 200 else None


# ---------------------------------------------------------------- tests


def test_memory(d):
    """400 MB through the upload callback: the peak RSS stays flat."""
    before = vm_hwm(d.proc.pid)
    t0 = time.time()
    st, body = put_stream(d, "big.bin", 400 * MB, ALICE)
    secs = time.time() - t0
    after = vm_hwm(d.proc.pid)
    check(st == 201 and body.get("bytes") == 400 * MB, "a 400 MB upload: 201 with its size", (st, body))
    grew = after - before
    print(f"400 MB upload: {secs:.1f} s ({400 / secs:.0f} MB/s), VmHWM {before / MB:.1f} -> "
          f"{after / MB:.1f} MB (+{grew / MB:.1f} MB)")
    check(grew <= 64 * MB, "the daemon's VmHWM grew by at most 64 MB", f"+{grew / MB:.1f} MB")
    want = hashlib.sha256()
    block = bytes(range(256)) * (MB // 256)
    for _ in range(400):
        want.update(block)
    check(isinstance(body, dict) and body.get("sha256") == want.hexdigest(), "its sha256 is the body's", body)
    st, _, _ = d.req("DELETE", "/v1/uploads/big.bin", token=ALICE)
    check(st == 204, "DELETE of the 400 MB upload: 204", st)


def test_cut(d):
    """A connection cut at half the length: nothing listed, nothing on disk."""
    total = 8 * MB
    s = socket.create_connection(("127.0.0.1", d.port))
    s.sendall((f"PUT /v1/uploads/cut.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ALICE}\r\n"
               f"Content-Type: application/octet-stream\r\nContent-Length: {total}\r\n\r\n").encode())
    s.sendall(b"\x01" * (total // 2))
    check(wait_until(lambda: any(os.scandir(os.path.join(d.data_dir, "uploads.partial")))),
          "while it arrives, the body is in uploads.partial")
    s.close()
    check(wait_until(lambda: not leftovers(d, "alice")), "a cut upload leaves no file",
          (leftovers(d, "alice"), d.tail()[-1500:]))
    check(wait_until(lambda: not os.listdir(os.path.join(d.data_dir, "uploads.partial"))),
          "uploads.partial is empty again", os.listdir(os.path.join(d.data_dir, "uploads.partial")))
    check("cut.bin" not in (listed(d, ALICE) or []), "the cut upload is not listed", listed(d, ALICE))
    check(not os.path.exists(os.path.join(d.data_dir, "uploads", "alice", "cut.bin")),
          "no uploads/alice/cut.bin")
    st, _, _ = d.json("GET", "/healthz")
    check(st == 200, "the daemon still answers", st)


def test_kill(tmp):
    """kill -9 during an upload: after a restart, nothing of it anywhere."""
    d = Daemon(tmp, config=config(), name="kill")
    try:
        s = socket.create_connection(("127.0.0.1", d.port))
        s.sendall((f"PUT /v1/uploads/killed.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ALICE}\r\n"
                   f"Content-Length: {64 * MB}\r\n\r\n").encode())
        s.sendall(b"\x02" * (4 * MB))
        partial = os.path.join(d.data_dir, "uploads.partial")
        check(wait_until(lambda: any(os.scandir(partial))), "the killed upload was under way")
        d.stop(signal.SIGKILL)
        s.close()
        left = os.listdir(partial)
        check(len(left) == 1, "a killed daemon leaves its partial body (only there)", left)
        time.sleep(2.5)  # the cleaner spares files younger than 2 s (not yet locked)
        d.start()
        check(not os.listdir(partial), "the restart removed it", os.listdir(partial))
        check(listed(d, ALICE) == [], "nothing is listed", listed(d, ALICE))
        check(not os.path.exists(os.path.join(d.data_dir, "uploads", "alice", "killed.bin")),
              "no uploads/alice/killed.bin")
    finally:
        d.stop()


def test_quota(tmp):
    """The quota counts uploads: 507 announced, and while streaming."""
    probe = Daemon(tmp, config=config(), name="probe")
    probe.stop()
    used = sum(os.path.getsize(os.path.join(p, f)) for p, _, fs in os.walk(probe.data_dir) for f in fs)
    quota = used + 4 * MB
    d = Daemon(tmp, args=["--quota", str(quota)], config=config(), name="quota")
    try:
        st, body = put_stream(d, "fits.bin", 1 * MB, ALICE)
        check(st == 201, "1 MB fits the quota", (st, body))
        st, _, body = d.json("PUT", "/v1/uploads/over.bin", raw=b"x" * (5 * MB), token=ALICE,
                             headers={"Content-Type": "application/octet-stream"})
        check_error(st, body, 507, "an announced upload over the quota")
        st, body = put_stream(d, "over.bin", 5 * MB, ALICE, chunked=True)
        check_error(st, body, 507, "a chunked upload over the quota")
        check(sorted(listed(d, ALICE)) == ["fits.bin"], "only the upload that fits is listed", listed(d, ALICE))
        check(not os.listdir(os.path.join(d.data_dir, "uploads.partial")), "no partial left")
        st, _, _ = d.req("DELETE", "/v1/uploads/fits.bin", token=ALICE)
        st, body = put_stream(d, "again.bin", 3 * MB, ALICE)
        check(st == 201, "a DELETE gives its bytes back to the quota", (st, body))
    finally:
        d.stop()


def expect_continue(d, path, headers, what, want_status):
    """Sends headers with Expect: 100-continue and no body: the answer must come first."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    head = f"PUT {path} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    s.sendall(head.encode())
    got = b""
    try:
        while b"\r\n\r\n" not in got:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        pass
    s.close()
    line = got.split(b"\r\n", 1)[0].decode(errors="replace")
    check(line.startswith(f"HTTP/1.1 {want_status}"), f"{what}: {want_status} before the body", line)


def test_early(tmp):
    d = Daemon(tmp, args=["--upload-limit", "1M"], config=config(), name="early")
    try:
        expect_continue(d, "/v1/uploads/x.bin", {"Content-Length": 100 * MB}, "no token", 401)
        expect_continue(d, "/v1/uploads/x.bin", {"Content-Length": 100 * MB,
                                                 "Authorization": "Bearer " + READER}, "a read token", 403)
        expect_continue(d, "/v1/uploads/x.bin", {"Content-Length": 2 * MB,
                                                 "Authorization": "Bearer " + ALICE}, "over --upload-limit 1M", 413)
        st, body = put_stream(d, "two.bin", 2 * MB, ALICE, chunked=True)
        check_error(st, body, 413, "a chunked body over --upload-limit 1M", "body")
        st, body = put_stream(d, "one.bin", MB, ALICE)
        check(st == 201, "exactly the limit is allowed", (st, body))
    finally:
        d.stop()


def seed(model, data, vocab, classes):
    return {"name": "uploaded", "model": model, "targets": ["bert.encoder.layer.*.attention.self.query"],
            "method": "l1_unstructured", "amount": 0.3, "scope": "global",
            "eval": {"data": data, "vocab": vocab, "classes": classes, "limit": 64}}


def test_owners(tmp):
    """Alice's uploads are Alice's: bob and a reader cannot see, use or delete them."""
    root = os.path.join(tmp, "root")  # the server-path copy of the same files
    os.makedirs(root, exist_ok=True)
    files = {"model.pt": "models/thucnews-bert-l4-h256.pt", "dev.txt": "data/thucnews/dev.txt",
             "vocab.txt": "data/vocab/bert-base-chinese-vocab.txt", "class.txt": "data/thucnews/class.txt"}
    for name, rel in files.items():
        src = os.path.join(SHARED, rel)
        if name == "dev.txt":
            with open(src, encoding="utf-8") as f, open(os.path.join(root, name), "w", encoding="utf-8") as g:
                g.writelines(f.readlines()[:64])
        else:
            shutil.copy(src, os.path.join(root, name))
    d = Daemon(tmp, args=["--model-root", root, "--data-root", root], config=config(), name="owners")
    try:
        paths = {}
        for name in files:
            st, _, body = put_file(d, name, os.path.join(root, name), ALICE)
            check(st == 201, f"alice uploads {name}", (st, body))
            paths[name] = body.get("path") if isinstance(body, dict) else None
        check(paths["model.pt"] == "alice/model.pt",
              "a submit token sees its upload's path relative to the uploads root", paths["model.pt"])
        st, _, body = d.json("GET", "/v1/uploads/model.pt", token=ROOT, headers={})
        check(st == 404, "the admin's own folder has no model.pt", st)
        st, _, body = d.json("GET", "/v1/uploads/model.pt?owner=alice", token=ROOT)
        absolute = body.get("path", "") if isinstance(body, dict) else ""
        check(st == 200 and absolute.startswith("/") and absolute.endswith("/uploads/alice/model.pt"),
              "an admin sees alice's upload with ?owner=alice, with its server path", (st, body))

        # The job with the uploads, and the same job with server paths.
        job = seed(paths["model.pt"], paths["dev.txt"], paths["vocab.txt"], paths["class.txt"])
        st, _, a = d.json("POST", "/v1/jobs", job, token=ALICE)
        check(st == 201, "alice's job naming her uploads is accepted", (st, a))
        st, _, b = d.json("POST", "/v1/jobs", seed("model.pt", "dev.txt", "vocab.txt", "class.txt"), token=ALICE)
        check(st == 201, "the same job with server paths", (st, b))
        ra = wait_status(d, a["id"], ("succeeded", "failed"), timeout=300, token=ALICE)
        rb = wait_status(d, b["id"], ("succeeded", "failed"), timeout=300, token=ALICE)
        check(ra and ra["status"] == "succeeded", "the uploaded-files job succeeds", ra and ra.get("error"))
        ma, mb = ((r or {}).get("metrics") or {} for r in (ra, rb))
        for m in (ma, mb):  # the speed is not part of the result
            for stage in m.values():
                stage.pop("samples_per_s", None)
        check(ma and ma == mb, "its metrics equal the server-path job's", (ma, mb))

        # Bob.
        check(listed(d, BOB) == [], "bob lists none of alice's uploads", listed(d, BOB))
        st, _, body = d.json("GET", "/v1/uploads/model.pt", token=BOB)
        check_error(st, body, 404, "bob GETs alice's upload")
        st, _, body = d.json("DELETE", "/v1/uploads/model.pt", token=BOB)
        check_error(st, body, 404, "bob DELETEs alice's upload")
        st, _, body = d.json("GET", "/v1/uploads?owner=alice", token=BOB)
        check_error(st, body, 403, "bob lists with ?owner=alice", "owner")
        st, _, body = d.json("POST", "/v1/jobs", job, token=BOB)
        check_error(st, body, 403, "bob's job naming alice's uploads", "model")
        bob_job = seed("model.pt", paths["dev.txt"], "vocab.txt", "class.txt")
        st, _, body = d.json("POST", "/v1/jobs", bob_job, token=BOB)
        check_error(st, body, 403, "bob's job naming alice's eval data", "eval.data")
        st, _, body = d.json("POST", "/v1/jobs", seed(absolute, "dev.txt", "vocab.txt", "class.txt"), token=BOB)
        check_error(st, body, 403, "bob's job naming alice's upload by its server path", "model")
        st, _, body = d.json("GET", "/v1/models/inspect?path=alice/model.pt", token=BOB)
        check_error(st, body, 403, "bob inspects alice's model", "path")
        st, _, body = d.json("GET", "/v1/models/inspect?path=alice/model.pt", token=ALICE)
        check(st == 200, "alice inspects her own model", st)

        # The reader, and the admin.
        st, _, body = d.json("PUT", "/v1/uploads/r.txt", raw=b"x", token=READER,
                             headers={"Content-Type": "application/octet-stream"})
        check_error(st, body, 403, "a read token cannot upload")
        check(listed(d, READER) == [], "a read token lists its own (none)", listed(d, READER))
        st, _, body = d.json("POST", "/v1/jobs", job, token=ROOT)
        check(st == 201, "an admin's job may name alice's uploads", (st, body))
        if st == 201:
            wait_status(d, body["id"], ("succeeded", "failed"), timeout=300, token=ROOT)
        st, _, _ = d.req("DELETE", "/v1/uploads/class.txt?owner=alice", token=ROOT)
        check(st == 204, "an admin deletes alice's upload", st)
        check("class.txt" not in listed(d, ALICE), "it is gone from alice's list", listed(d, ALICE))
        check(sorted(listed(d, ALICE)) == ["dev.txt", "model.pt", "vocab.txt"],
              "alice's other uploads are all still there", listed(d, ALICE))
    finally:
        d.stop()


def main():
    if not BIN or not os.path.exists(BIN):
        print("FAIL: PRUNERD_BIN is not set or missing")
        return 1
    if not SHARED or not os.path.isdir(os.path.join(SHARED, "models")):
        print("FAIL: PRUNERD_SHARED is not set or has no models/ (the shared data is required)")
        return 1
    tmp = tempfile.mkdtemp(prefix="prunerd-uploads-")
    try:
        d = Daemon(tmp, config=config(), name="main")
        try:
            test_memory(d)
            test_cut(d)
        finally:
            d.stop()
        for name, test in (("kill", test_kill), ("quota", test_quota), ("early", test_early),
                           ("owners", test_owners)):
            sub = os.path.join(tmp, name)  # a data dir and log of its own
            os.makedirs(sub)
            test(sub)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"test_uploads: {test_daemon.passed} passed, {test_daemon.failed} failed")
    return 1 if test_daemon.failed or not test_daemon.passed else 0


if __name__ == "__main__":
    sys.exit(main())
