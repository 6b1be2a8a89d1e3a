#!/usr/bin/env python3
"""bench_queue.py - durable POSTs/s and claims/s: SQLite vs PostgreSQL with one and three daemons.

    .venv/bin/python bench/bench_queue.py [--build build] [--seconds 5] [--connections 8]
                                          [--claims 3000]

In one run, on this machine:
  - starts a PostgreSQL of its own (tests/pg_server.py: initdb as the
    postgres user, a free loopback port, fsync on: commits are durable);
  - POST /v1/jobs: one daemon on SQLite, one daemon on PostgreSQL, three
    daemons on one PostgreSQL database, each daemon with one worker busy on
    a long evaluation job (one libtorch thread) as in a working group;
    bench/http_load (C) POSTs for --seconds over --connections keep-alive
    connections to each daemon at once.  Each 201 comes after the commit
    (group commit per daemon);
  - claims/s without HTTP (bench/queue_claims: claim + finish with the
    fence, back to back): SQLite with one process; PostgreSQL with one and
    with three processes (each standing for a daemon) on one database.
Goal: >= 500 durable POSTs/s per daemon.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
import pg_server  # noqa: E402


def start_daemon(a, tmp, name, shared, extra):
    log = open(os.path.join(tmp, name + ".log"), "w+")
    cmd = [os.path.join(a.build, "server", "prunerd"), "serve", "--listen", "127.0.0.1:0",
           "--data-dir", os.path.join(tmp, name + "-var"), "--model-root", os.path.join(shared, "models"),
           "--data-root", os.path.join(shared, "data"), "--workers", "1", "--job-threads", "1",
           "--http-threads", "4"] + extra
    p = subprocess.Popen(cmd, stdout=log, stderr=log)
    for _ in range(400):
        log.seek(0)
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read())
        if m:
            return p, int(m.group(1)), log
        if p.poll() is not None:
            break
        time.sleep(0.05)
    log.seek(0)
    sys.exit(f"{name} did not start: {log.read()[-2000:]}")


def post_load(a, ports, body_path):
    """bench/http_load POSTs to every daemon at once: (req/s per daemon, output lines)."""
    exe = os.path.join(a.build, "bench", "http_load")
    ps = [subprocess.Popen([exe, str(p), "/v1/jobs", str(a.connections), str(a.seconds), body_path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in ports]
    outs = [p.communicate() for p in ps]
    rates = []
    for out, errs in outs:
        m = re.search(r"([\d.]+) req/s, non-201 (\d+)", out)
        if not m:
            sys.exit("http_load: " + out + errs)
        rates.append((float(m.group(1)), int(m.group(2)), out.strip()))
    return rates


def metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name + "{"))


def get_json(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("GET", path)
    return json.loads(c.getresponse().read())


def run_posts(a, tmp, shared, label, n_daemons, queue_args):
    procs = [start_daemon(a, tmp, f"{label.replace(' ', '').replace(',', '-')}-{i}", shared, queue_args)
             for i in range(n_daemons)]
    ports = [p[1] for p in procs]
    data = os.path.join(shared, "data")
    job = {"model": "thucnews-bert-l4-h256.pt", "targets": ["bert.encoder.layer.*.attention.self.query"],
           "method": "l1_unstructured", "amount": 0.3}
    long_job = dict(job, name="long", eval={"data": os.path.join(data, "thucnews", "dev.txt"),
                                            "vocab": os.path.join(data, "vocab", "bert-base-chinese-vocab.txt"),
                                            "classes": os.path.join(data, "thucnews", "class.txt")})
    body = json.dumps(dict(job, name="post-bench")).encode()
    try:
        # One long job per daemon keeps its worker busy (as in a working group): the POSTed
        # jobs stay queued, and the POSTs share the machine with the running jobs.
        for p in ports:
            c = http.client.HTTPConnection("127.0.0.1", p)
            c.request("POST", "/v1/jobs", json.dumps(long_job), {"Content-Type": "application/json"})
            c.getresponse().read()
        deadline = time.time() + 120
        while time.time() < deadline and get_json(ports[0], "/v1/jobs?status=running")["jobs"].__len__() < n_daemons:
            time.sleep(0.1)
        body_path = os.path.join(tmp, "post.json")
        with open(body_path, "wb") as f:
            f.write(body)
        rates = post_load(a, ports, body_path)
        total = sum(r[0] for r in rates)
        bad = sum(r[1] for r in rates)
        rate = total
        print(f"{label}: POST /v1/jobs for {a.seconds} s, {a.connections} keep-alive connections per daemon, "
              f"{n_daemons} job(s) running: {total:.0f}/s in all, per daemon "
              f"{[round(r[0]) for r in rates]}; non-201 answers {bad}", flush=True)
        for r in rates:
            print("    " + r[2], flush=True)
        return rate
    finally:
        for p, _, log in procs:
            p.terminate()
            p.wait(60)
            log.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--shared", default=os.environ.get("PRUNERD_SHARED", os.path.join(ROOT, "..", "shared")))
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--claims", type=int, default=3000)
    a = ap.parse_args()
    why = pg_server.missing()
    if why:
        sys.exit(why)
    shared = os.path.realpath(a.shared)
    tmp = tempfile.mkdtemp(prefix="prunerd-bench-queue-")
    srv = pg_server.PgServer(fsync=True)
    try:
        print(f"PostgreSQL {srv.psql('SHOW server_version')} on 127.0.0.1:{srv.port}, fsync "
              f"{srv.psql('SHOW fsync')}, synchronous_commit {srv.psql('SHOW synchronous_commit')}", flush=True)
        run_posts(a, tmp, shared, "sqlite, 1 daemon", 1, [])
        dsn = srv.createdb("bench1")
        run_posts(a, tmp, shared, "postgres, 1 daemon", 1,
                  ["--queue-backend", "postgres", "--queue-dsn", dsn, "--artifact-dir", os.path.join(tmp, "store1")])
        dsn = srv.createdb("bench3")
        run_posts(a, tmp, shared, "postgres, 3 daemons", 3,
                  ["--queue-backend", "postgres", "--queue-dsn", dsn, "--artifact-dir", os.path.join(tmp, "store3")])

        exe = os.path.join(a.build, "bench", "queue_claims")
        # Claims without HTTP.  A process given SUBMIT fills the queue first, then claims it all alone.
        out = subprocess.run([exe, os.path.join(tmp, "claims.db"), "1", str(a.claims)], capture_output=True, text=True)
        print("sqlite, 1 claimer: " + "; ".join(out.stdout.split("\n")).strip("; ") + out.stderr, flush=True)
        srv.createdb("claims")
        where = "pg:" + srv.conninfo("claims")
        out = subprocess.run([exe, where, "1", str(a.claims)], capture_output=True, text=True)
        print("postgres, 1 claimer: " + "; ".join(out.stdout.split("\n")).strip("; ") + out.stderr, flush=True)
        # Three claimers race for one queue: fill it (submit only: a claimer on an empty queue
        # ends at once), then start three at once.
        fill = subprocess.run(["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(srv.port), "-U", "postgres",
                               "-d", "claims", "-c",
                               "INSERT INTO jobs (id, status, created_at, updated_at, request) "
                               "SELECT (md5(random()::text || g::text)::uuid)::text, 'queued', g, g, '{}' "
                               f"FROM generate_series(1, {a.claims}) g"], capture_output=True, text=True)
        if fill.returncode:
            sys.exit(fill.stderr)
        t0 = time.monotonic()
        ps = [subprocess.Popen([exe, where, "1"], stdout=subprocess.PIPE, text=True) for _ in range(3)]
        outs = [p.communicate()[0].strip() for p in ps]
        took = time.monotonic() - t0
        counts = [int(re.search(r"claimed (\d+)", o).group(1)) for o in outs]
        print(f"postgres, 3 claimers: {sum(counts)} claims in {took:.2f} s: {sum(counts) / took:.0f} claims/s "
              f"in all (per claimer {counts})", flush=True)
    finally:
        srv.destroy()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
