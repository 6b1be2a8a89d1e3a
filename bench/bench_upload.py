#!/usr/bin/env python3
"""bench_upload.py - what an upload costs the daemon: throughput against a plain write, and RSS.

    .venv/bin/python bench/bench_upload.py [--prunerd build/server/prunerd] [--mb 400] [--runs 3]

Starts `prunerd serve` on a free port with a temporary data dir, then, --runs
times each, alternating:
- the upload: PUT /v1/uploads/big.bin of --mb MiB made on the fly (1 MiB
  pieces over one connection, Content-Length, Content-SHA256), deleted after;
- the reference: this process writing the same bytes to a file in the same
  data dir, hashing them with sha256 as they go and fsyncing at the end: the
  least an upload has to do, with no HTTP.
Prints each run, the best of each, their ratio (upload / reference, 1.0 is
free), and the daemon's peak RSS (VmHWM) before and after all the uploads.
"""
import argparse
import hashlib
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MB = 1 << 20


def vm_hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def start(prunerd, tmp):
    log = open(os.path.join(tmp, "d.log"), "w")
    p = subprocess.Popen([prunerd, "serve", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(tmp, "var")],
                         stdout=log, stderr=log)
    deadline = time.time() + 20
    while time.time() < deadline:
        with open(os.path.join(tmp, "d.log")) as f:
            for line in f:
                if "listening on http://127.0.0.1:" in line:
                    return p, int(line.split("http://127.0.0.1:")[1].split()[0])
        time.sleep(0.05)
    p.kill()
    sys.exit("prunerd did not start")


def upload(port, block, n, sha):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    t0 = time.perf_counter()
    c.putrequest("PUT", "/v1/uploads/big.bin")
    c.putheader("Content-Type", "application/octet-stream")
    c.putheader("Content-Length", str(len(block) * n))
    c.putheader("Content-SHA256", sha)
    c.endheaders()
    for _ in range(n):
        c.send(block)
    r = c.getresponse()
    r.read()
    secs = time.perf_counter() - t0
    if r.status != 201:
        sys.exit(f"upload answered {r.status}")
    c.request("DELETE", "/v1/uploads/big.bin")
    c.getresponse().read()
    c.close()
    return secs


def reference(path, block, n):
    t0 = time.perf_counter()
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(n):
            h.update(block)
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    secs = time.perf_counter() - t0
    os.unlink(path)
    return secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prunerd", default=os.path.join(ROOT, "build", "server", "prunerd"))
    ap.add_argument("--mb", type=int, default=400)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    block = bytes(range(256)) * (MB // 256)
    h = hashlib.sha256()
    for _ in range(a.mb):
        h.update(block)
    sha = h.hexdigest()
    tmp = tempfile.mkdtemp(prefix="prunerd-bench-upload-")
    p, port = start(a.prunerd, tmp)
    try:
        before = vm_hwm(p.pid)
        ups, refs = [], []
        for i in range(a.runs):
            ups.append(upload(port, block, a.mb, sha))
            refs.append(reference(os.path.join(tmp, "var", "reference.bin"), block, a.mb))
            print(f"run {i + 1}: upload {ups[-1]:.2f} s ({a.mb / ups[-1]:.0f} MiB/s), "
                  f"reference {refs[-1]:.2f} s ({a.mb / refs[-1]:.0f} MiB/s)")
        after = vm_hwm(p.pid)
        print(f"best: upload {min(ups):.2f} s, reference {min(refs):.2f} s, "
              f"ratio upload/reference {min(ups) / min(refs):.2f}")
        print(f"daemon VmHWM: {before / MB:.1f} MiB before, {after / MB:.1f} MiB after "
              f"{a.runs} uploads of {a.mb} MiB (+{(after - before) / MB:.1f} MiB)")
    finally:
        p.terminate()
        p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
