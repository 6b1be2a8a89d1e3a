#!/usr/bin/python3
"""bench_queue.py - durable POSTs/s and claims/s: SQLite vs PostgreSQL with one and three daemons.

    /usr/bin/python3 bench/bench_queue.py [--build build] [--posts 3000] [--post-threads 8]
                                          [--claims 3000]

In one run, on this machine:
  - starts a PostgreSQL of its own (tests/pg_server.py: initdb as the
    postgres user, a free loopback port, fsync on: commits are durable);
  - POST /v1/jobs: one daemon on SQLite, one daemon on PostgreSQL, three
    daemons on one PostgreSQL database; --post-threads Python threads with
    keep-alive connections, spread evenly over the daemons.  Each 201 comes
    after the commit (group commit per daemon).  The daemons' workers claim
    the jobs meanwhile, and each fails at once (free_space_factor = 1e6: no
    model is loaded), so claims load the database as in a busy group;
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
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
import pg_server  # noqa: E402


def start_daemon(a, tmp, name, shared, extra):
    conf = os.path.join(tmp, name + ".conf")
    with open(conf, "w") as f:
        f.write("[limits]\nfree_space_factor = 1000000\nretention_days = 0\n")
    log = open(os.path.join(tmp, name + ".log"), "w+")
    cmd = [os.path.join(a.build, "server", "prunerd"), "serve", "--config", conf, "--listen", "127.0.0.1:0",
           "--data-dir", os.path.join(tmp, name + "-var"), "--model-root", os.path.join(shared, "models"),
           "--data-root", os.path.join(shared, "data"), "--workers", "2", "--http-threads", "4"] + extra
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


def post_load(ports, posts, nthreads, body):
    codes = []
    lock = threading.Lock()
    per = posts // nthreads

    def poster(port):
        conn = http.client.HTTPConnection("127.0.0.1", port)
        mine = []
        for _ in range(per):
            conn.request("POST", "/v1/jobs", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            mine.append(r.status)
        with lock:
            codes.extend(mine)

    threads = [threading.Thread(target=poster, args=(ports[i % len(ports)],)) for i in range(nthreads)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes, time.monotonic() - t0


def metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name + "{"))


def run_posts(a, tmp, shared, label, n_daemons, queue_args):
    procs = [start_daemon(a, tmp, f"{label}-{i}", shared, queue_args) for i in range(n_daemons)]
    ports = [p[1] for p in procs]
    body = json.dumps({"model": "thucnews-bert-l4-h256.pt", "targets": ["bert.encoder.layer.*.attention.self.query"],
                       "method": "l1_unstructured", "amount": 0.3, "name": "post-bench"}).encode()
    try:
        post_load(ports, 8 * a.post_threads, a.post_threads, body)  # warm-up: connections, caches
        codes, took = post_load(ports, a.posts, a.post_threads, body)
        ok = codes.count(201)
        rate = len(codes) / took
        print(f"{label}: POST /v1/jobs x{len(codes)} from {a.post_threads} threads over {n_daemons} daemon(s) in "
              f"{took:.2f} s: {rate:.0f}/s in all, {rate / n_daemons:.0f}/s per daemon; {ok} answered 201"
              + (f", others {sorted(set(codes) - {201})}" if ok != len(codes) else ""), flush=True)
        # The workers drain the queue (each job fails at once): claims, per daemon.
        deadline = time.time() + 120
        total = len(codes) + 8 * a.post_threads
        while time.time() < deadline and sum(metric(p, "prunerd_claims_total") for p in ports) < total:
            time.sleep(0.2)
        claims = [int(metric(p, "prunerd_claims_total")) for p in ports]
        print(f"{label}: claims per daemon {claims} (of {total} jobs)", flush=True)
        return rate
    finally:
        for p, _, log in procs:
            p.terminate()
            p.wait(30)
            log.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--shared", default=os.environ.get("PRUNERD_SHARED", os.path.join(ROOT, "..", "shared")))
    ap.add_argument("--posts", type=int, default=3000)
    ap.add_argument("--post-threads", type=int, default=8)
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
