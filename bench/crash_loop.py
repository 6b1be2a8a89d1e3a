#!/usr/bin/env python3
"""crash_loop.py - kill -9 the daemon at random moments, restart it, and check nothing is lost.

    .venv/bin/python bench/crash_loop.py [--build build] [--kills 10] [--seed 1]

Each round submits one fresh job (the seed job on the shared model, a small
eval), waits a random 0.2-4 s (queued, loading, evaluating, pruning or
saving), kills the daemon with SIGKILL and restarts it on the same data dir.
After the last round it lets every job finish and checks: every submitted
job is there, none is lost, each ends succeeded (or failed only for the
attempt limit), attempts went up for the ones that were running, no
temporary file is left in a succeeded job's folder, and SQLite's
integrity_check says ok.
"""
import argparse
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class Daemon:
    def __init__(self, exe, data, shared):
        self.exe, self.data, self.shared = exe, data, shared
        self.log = open(os.path.join(os.path.dirname(data), "daemon.log"), "a+")

    def start(self):
        pos = self.log.tell()
        self.proc = subprocess.Popen([self.exe, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data,
                                      "--model-root", os.path.join(self.shared, "models"),
                                      "--data-root", os.path.join(self.shared, "data")],
                                     stdout=self.log, stderr=self.log)
        for _ in range(400):
            self.log.seek(pos)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.log.read())
            if m:
                self.port = int(m.group(1))
                return
            time.sleep(0.025)
        sys.exit("the daemon did not start")

    def call(self, method, path, body=None):
        r = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                   data=json.dumps(body).encode() if body else None,
                                   headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(r, timeout=30) as resp:
            return json.loads(resp.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--shared", default=os.environ.get("PRUNERD_SHARED", os.path.join(ROOT, "..", "shared")))
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    shared = os.path.realpath(a.shared)
    tmp = tempfile.mkdtemp(prefix="prunerd-crash-")
    data = os.path.join(tmp, "var")
    d = Daemon(os.path.join(a.build, "server", "prunerd"), data, shared)
    d.start()
    dd = os.path.join(shared, "data")
    job = {"model": "thucnews-bert-l4-h256.pt", "targets": ["bert.encoder.layer.*.attention.self.query"],
           "method": "l1_unstructured", "amount": 0.3, "scope": "global",
           "eval": {"data": os.path.join(dd, "thucnews", "dev.txt"),
                    "vocab": os.path.join(dd, "vocab", "bert-base-chinese-vocab.txt"),
                    "classes": os.path.join(dd, "thucnews", "class.txt"), "limit": 300, "batch_size": 32}}
    ids, killed_in = [], {}
    for k in range(a.kills):
        ids.append(d.call("POST", "/v1/jobs", dict(job, name=f"round {k}"))["id"])
        time.sleep(rnd.uniform(0.2, 4.0))
        running = [j for j in d.call("GET", "/v1/jobs?status=running")["jobs"]]
        for j in running:
            killed_in[j["id"]] = killed_in.get(j["id"], []) + [j["stage"]]
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        print(f"kill {k + 1}: {len(running)} running ({', '.join(j['stage'] for j in running) or '-'})", flush=True)
        d.start()
    deadline = time.time() + 900
    while time.time() < deadline:
        jobs = {i: d.call("GET", f"/v1/jobs/{i}") for i in ids}
        if all(j["status"] in ("succeeded", "failed", "cancelled") for j in jobs.values()):
            break
        time.sleep(0.5)
    d.proc.send_signal(signal.SIGTERM)
    d.proc.wait(30)
    ok = True
    for i in ids:
        j = jobs[i]
        left = os.listdir(os.path.join(data, "jobs", i)) if os.path.isdir(os.path.join(data, "jobs", i)) else []
        tmpfiles = [f for f in left if ".tmp." in f]
        fine = j["status"] == "succeeded" and not tmpfiles
        if j["status"] == "failed" and "giving up" in (j.get("error") or ""):
            fine = True  # killed in every one of its max attempts
        if i in killed_in and j["attempts"] < 1:
            fine = False
        ok &= fine
        print(f"{i}: {j['status']}, attempts {j['attempts']}, killed while {killed_in.get(i, [])}"
              f"{', temporary files ' + str(tmpfiles) if tmpfiles else ''}{'' if fine else '  <-- WRONG'}")
    db = sqlite3.connect(os.path.join(data, "prunerd.db"))
    integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    count = db.execute("SELECT count(*) FROM jobs").fetchone()[0]
    db.close()
    print(f"{a.kills} kills, {len(ids)} jobs submitted, {count} in the database, "
          f"{sum(jobs[i]['status'] == 'succeeded' for i in ids)} succeeded; integrity_check: {integrity}")
    ok &= integrity == "ok" and count == len(ids)
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    print("crash loop:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
