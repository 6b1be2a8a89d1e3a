#!/usr/bin/env python3
"""bench_http.py - the daemon's API under load while a job runs on the other core.

    .venv/bin/python bench/bench_http.py [--build build] [--seconds 5] [--connections 8] [--posts 1000]

Starts `prunerd serve` (defaults: one worker, the job leaves one core to the
API) on a free port with a temporary data dir, submits a long evaluation job
on the shared model, and while it runs:
  - GET /v1/jobs/{id} from bench/http_load (keep-alive, C, N connections):
    requests/s and p50/p99 latency;
  - POST /v1/jobs (durable: each 201 comes after the SQLite commit) from
    Python threads with keep-alive connections: jobs/s.
Goals on the 2-core machine: >= 10,000 GETs/s with p99 < 10 ms; >= 500 POSTs/s.
"""
import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--shared", default=os.environ.get("PRUNERD_SHARED", os.path.join(ROOT, "..", "shared")))
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--posts", type=int, default=1000)
    ap.add_argument("--post-threads", type=int, default=4)
    a = ap.parse_args()
    shared = os.path.realpath(a.shared)
    tmp = tempfile.mkdtemp(prefix="prunerd-bench-http-")
    log = open(os.path.join(tmp, "daemon.log"), "w+")
    d = subprocess.Popen([os.path.join(a.build, "server", "prunerd"), "serve", "--listen", "127.0.0.1:0",
                          "--data-dir", os.path.join(tmp, "var"), "--model-root", os.path.join(shared, "models"),
                          "--data-root", os.path.join(shared, "data")], stdout=log, stderr=log)
    port = None
    for _ in range(200):
        log.seek(0)
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read())
        if m:
            port = int(m.group(1))
            break
        time.sleep(0.05)
    if not port:
        sys.exit("the daemon did not start: " + open(log.name).read())
    data = os.path.join(shared, "data")
    job = {"model": "thucnews-bert-l4-h256.pt", "targets": ["bert.encoder.layer.*.attention.self.query"],
           "method": "l1_unstructured", "amount": 0.3, "scope": "global",
           "eval": {"data": os.path.join(data, "thucnews", "dev.txt"),
                    "vocab": os.path.join(data, "vocab", "bert-base-chinese-vocab.txt"),
                    "classes": os.path.join(data, "thucnews", "class.txt")}}
    try:
        c = http.client.HTTPConnection("127.0.0.1", port)
        c.request("POST", "/v1/jobs", json.dumps(dict(job, name="long")), {"Content-Type": "application/json"})
        jid = json.loads(c.getresponse().read())["id"]
        for _ in range(600):
            c.request("GET", f"/v1/jobs/{jid}")
            st = json.loads(c.getresponse().read())
            if st["status"] == "running" and st.get("stage") == "evaluating_before":
                break
            time.sleep(0.05)
        print(f"job {jid} is {st['status']} ({st.get('stage')}); GET load for {a.seconds} s on "
              f"{a.connections} connections")
        out = subprocess.run([os.path.join(a.build, "bench", "http_load"), str(port), f"/v1/jobs/{jid}",
                              str(a.connections), str(a.seconds)], capture_output=True, text=True, check=True)
        print("GET /v1/jobs/{id}: " + out.stdout.strip())
        c.request("GET", f"/v1/jobs/{jid}")
        st = json.loads(c.getresponse().read())
        print(f"job still {st['status']} ({st.get('stage')}, progress {st.get('progress', 0):.2f})")

        body = json.dumps(dict(job, name="post-bench", eval=None)).encode()
        per = a.posts // a.post_threads
        codes = []

        def poster():
            conn = http.client.HTTPConnection("127.0.0.1", port)
            for _ in range(per):
                conn.request("POST", "/v1/jobs", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                codes.append(r.status)

        t0 = time.monotonic()
        threads = [threading.Thread(target=poster) for _ in range(a.post_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - t0
        ok = codes.count(201)
        print(f"POST /v1/jobs: {len(codes)} requests from {a.post_threads} threads in {took:.2f} s: "
              f"{len(codes) / took:.0f}/s, {ok} answered 201, others {sorted(set(codes) - {201})}")
    finally:
        d.terminate()
        d.wait(30)
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
