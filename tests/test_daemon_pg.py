#!/usr/bin/env python3
"""test_daemon_pg.py - several daemons on one PostgreSQL queue and one artifact dir, and faults.

Starts its own PostgreSQL (tests/pg_server.py: initdb as the postgres user,
a free loopback port) and real `prunerd serve` daemons, each with its own
data dir, all with the same --queue-dsn and --artifact-dir:

  group      three daemons, 30 jobs: every job succeeds exactly once (one
             "running" and one "succeeded" log line over all the logs, one
             run in its stage records), the claims spread over the
             daemons and add up to 30, any daemon serves any job's result,
             checkpoint and delete.
  kill -9    the daemon running a job is killed: another takes it once the
             lease has run out and finishes it (attempts 1).
  SIGSTOP    the daemon running a job is frozen past its lease and thawed
             once another daemon has taken the job: its writes are
             refused, it abandons the job and removes its own files; the
             one result and artifact are the rescuer's.
  cancel     a cancel sent to one daemon stops the job another runs; SIGTERM
             re-queues a running job and another daemon finishes it.
  restart    PostgreSQL restarts while jobs run: requests answer 503 with
             a JSON error while it is down, no daemon exits, every job
             succeeds exactly once.

Skips (77) with a message only when the PostgreSQL server binaries are
missing.  PRUNERD_PG_TESTS=group,kill,... runs a subset.
"""
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time

import test_daemon as td
from test_daemon import Daemon, check, seed_request, wait_status
import pg_server

LEASE = 2  # seconds: the shortest allowed, so the fault cases are quick


def job_request(name, limit=16, batch_size=None):
    req = seed_request(limit=limit, name=name, batch_size=batch_size)
    req["outputs"] = ["torchscript"]
    return req


class Group:
    """Daemons sharing one database and one artifact dir."""

    def __init__(self, tmp, srv, dbname, roots, lease=LEASE):
        self.tmp = tmp
        self.dsn = srv.createdb(dbname)
        self.store = os.path.join(tmp, dbname + "-store")
        self.roots = roots
        self.lease = lease
        self.daemons = []

    def start(self, name, workers=1):
        args = self.roots + ["--queue-backend", "postgres", "--queue-dsn", self.dsn,
                             "--artifact-dir", self.store, "--lease-seconds", str(self.lease),
                             "--workers", str(workers), "--job-threads", "1", "--max-attempts", "3"]
        d = Daemon(self.tmp, args, data_dir=os.path.join(self.tmp, name + "-var"), name=name)
        self.daemons.append(d)
        return d

    def stop(self):
        rcs = []
        for d in self.daemons:
            if d.proc.poll() is None:
                try:
                    os.kill(d.proc.pid, signal.SIGCONT)
                except OSError:
                    pass
            rcs.append(d.stop()[0])
        return rcs

    def logs(self):
        out = {}
        for d in self.daemons:
            with open(d.log_path) as f:
                out[d.log_path] = f.read()
        return out


def count_lines(logs, job_id, what):
    return sum(1 for text in logs.values() for line in text.splitlines() if job_id in line and what in line)


def pid_of(claimed_by):
    """host:pid:start -> pid."""
    parts = (claimed_by or "").split(":")
    return int(parts[-2]) if len(parts) >= 3 else None


def wait_for(cond, timeout, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return None


def metric(d, name, daemon=True):
    st, _, b = d.req("GET", "/metrics")
    total = 0.0
    for line in b.decode().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


# ---------------------------------------------------------------- group


def test_group(tmp, srv, roots):
    g = Group(tmp, srv, "grp", roots, lease=5)
    t0 = time.time()
    try:
        ds = [g.start(f"grp-{i}") for i in range(3)]
        for d in ds:
            st, _, b = d.json("GET", "/readyz")
            check(st == 200 and b.get("database") is True and b.get("backend") == "postgres",
                  "readyz reports the PostgreSQL database", (st, b))
        ids = []
        for i in range(30):
            d = ds[i % 3]
            st, _, b = d.json("POST", "/v1/jobs", job_request(f"g{i}"), headers={"Idempotency-Key": f"k{i}"})
            if check(st == 201, f"submit g{i} to daemon {i % 3}", (st, b)):
                ids.append(b["id"])
        # A retry on another daemon is the same job (the key is in the shared database).
        st, _, b = ds[1].json("POST", "/v1/jobs", job_request("g0"), headers={"Idempotency-Key": "k0"})
        check(st == 200 and b.get("id") == ids[0], "an idempotent retry on another daemon replays", (st, b))
        done = {}
        deadline = time.time() + 400
        while time.time() < deadline and len(done) < len(ids):
            for jid in ids:
                if jid in done:
                    continue
                st, _, b = ds[len(done) % 3].json("GET", f"/v1/jobs/{jid}")
                if st == 200 and b["status"] in ("succeeded", "failed", "cancelled"):
                    done[jid] = b
            time.sleep(0.2)
        took = time.time() - t0
        print(f"  group: 30 jobs on 3 daemons in {took:.1f} s")
        check(len(done) == 30 and all(b["status"] == "succeeded" for b in done.values()),
              "all 30 jobs succeed", {k: (b["status"], b.get("error")) for k, b in done.items() if b["status"] != "succeeded"} or len(done))
        logs = g.logs()
        runs = {jid: count_lines(logs, jid, "running (attempt") for jid in ids}
        wins = {jid: count_lines(logs, jid, "succeeded in") for jid in ids}
        check(all(v == 1 for v in runs.values()), "every job ran exactly once (logs)",
              {k: v for k, v in runs.items() if v != 1})
        check(all(v == 1 for v in wins.values()), "every job succeeded exactly once (logs)",
              {k: v for k, v in wins.items() if v != 1})
        stage_ok = all([s["stage"] for s in b["stages"]] == ["loading", "evaluating_before", "pruning",
                                                                 "evaluating_after", "saving"]
                       and b["attempts"] == 0 for b in done.values())
        check(stage_ok, "every job's stage records show one run, each stage once",
              [b["stages"] for b in done.values()][:1])
        by = {}
        for b in done.values():
            by[b["claimed_by"]] = by.get(b["claimed_by"], 0) + 1
        print(f"  jobs per daemon: {sorted(by.values())}")
        check(len(by) == 3, "the jobs spread over the three daemons", by)
        claims = [metric(d, "prunerd_claims_total") for d in ds]
        check(sum(claims) == 30 and all(c > 0 for c in claims), "claims per daemon add up to 30", claims)
        check(all(metric(d, "prunerd_rescues_total") == 0 for d in ds), "no rescues without a fault")
        # Any daemon serves any job.
        pid_to_d = {d.proc.pid: d for d in ds}
        for b in list(done.values())[:3]:
            runner = pid_to_d.get(pid_of(b["claimed_by"]))
            other = next(d for d in ds if d is not runner)
            st, _, res = other.json("GET", f"/v1/jobs/{b['id']}/result")
            check(st == 200 and res.get("artifacts"), "another daemon serves the result", st)
            st, h, blob = other.req("GET", f"/v1/jobs/{b['id']}/checkpoint")
            sha = res["artifacts"][0]["sha256"] if st == 200 else None
            check(st == 200 and h.get("ETag") == f'"{sha}"' and len(blob) > 1000,
                  "another daemon serves the checkpoint", (st, len(blob)))
        victim = list(done.values())[0]
        runner = pid_to_d.get(pid_of(victim["claimed_by"]))
        other = next(d for d in ds if d is not runner)
        st, _, _ = other.req("DELETE", f"/v1/jobs/{victim['id']}")
        check(st == 204, "another daemon deletes a job", st)
        check(not os.path.exists(os.path.join(g.store, "jobs", victim["id"])), "its files are gone from the store")
        st, _, _ = runner.req("GET", f"/v1/jobs/{victim['id']}")
        check(st == 404, "gone for every daemon", st)
    finally:
        rcs = g.stop()
        check(all(rc == 0 for rc in rcs), "the daemons exit 0", rcs)


# ---------------------------------------------------------------- kill -9


def running_on(d, jid, min_progress=0.05):
    st, _, b = d.json("GET", f"/v1/jobs/{jid}")
    if st == 200 and b["status"] == "running" and b.get("stage") == "evaluating_before" and \
            b.get("progress", 0) > min_progress:
        return b
    return None


def test_kill(tmp, srv, roots):
    g = Group(tmp, srv, "kill", roots)
    try:
        a = g.start("kill-a")
        st, _, j = a.json("POST", "/v1/jobs", job_request("killed", limit=1500, batch_size=16))
        b0 = wait_for(lambda: running_on(a, j["id"]), 120)
        check(b0 and pid_of(b0["claimed_by"]) == a.proc.pid, "daemon a runs the job", b0)
        b = g.start("kill-b")
        a.stop(signal.SIGKILL)
        t_kill = time.time()
        taken = wait_for(lambda: (lambda r: r if r[0] == 200 and r[2]["status"] == "running" and
                                  pid_of(r[2]["claimed_by"]) == b.proc.pid else None)(b.json("GET", f"/v1/jobs/{j['id']}")),
                         60)
        waited = time.time() - t_kill
        print(f"  kill -9: daemon b took the job {waited:.1f} s after the kill (lease {LEASE} s)")
        check(taken is not None, "another daemon takes the job after the lease", b.tail()[-800:])
        check(waited < LEASE * 4 / 3 + 3, f"within lease + a rescue period (+3 s slack)", waited)
        done = wait_status(b, j["id"], ("succeeded", "failed"), timeout=400)
        check(done and done["status"] == "succeeded" and done["attempts"] == 1,
              "it finishes there, attempts 1", done and (done["status"], done["attempts"], done.get("error")))
        check(metric(b, "prunerd_rescues_total") == 1, "b counts one rescue", metric(b, "prunerd_rescues_total"))
        left = os.listdir(os.path.join(g.store, "jobs", j["id"]))
        check(left == [f"run-{done['fence']}"], "only the finishing run's folder is left", left)
    finally:
        g.stop()


# ---------------------------------------------------------------- SIGSTOP


def test_sigstop(tmp, srv, roots):
    g = Group(tmp, srv, "stop", roots)
    try:
        a = g.start("stop-a")
        st, _, j = a.json("POST", "/v1/jobs", job_request("frozen", limit=800, batch_size=16))
        jid = j["id"]
        b0 = wait_for(lambda: running_on(a, jid, 0.1), 120)
        check(b0 and pid_of(b0["claimed_by"]) == a.proc.pid, "daemon a runs the job", b0)
        fence_a = b0["fence"] if b0 else None
        a_dir = os.path.join(g.store, "jobs", jid, f"run-{fence_a}")
        b = g.start("stop-b")
        os.kill(a.proc.pid, signal.SIGSTOP)
        taken = wait_for(lambda: (lambda r: r[2] if r[0] == 200 and r[2]["status"] == "running" and
                                  pid_of(r[2]["claimed_by"]) == b.proc.pid and r[2].get("stage") else None)(
            b.json("GET", f"/v1/jobs/{jid}")), 60)
        check(taken is not None, "daemon b takes the frozen daemon's job", b.tail()[-800:])
        os.kill(a.proc.pid, signal.SIGCONT)
        abandoned = wait_for(lambda: "abandoned" in a.tail(), 60, 0.2)
        check(abandoned, "the thawed daemon abandons the job", a.tail()[-1500:])
        check("refused" in a.tail() or "taken over" in a.tail(), "its writes were refused", a.tail()[-800:])
        check(wait_for(lambda: not os.path.exists(a_dir), 20, 0.1), "it removed its own run folder", a_dir)
        done = wait_status(b, jid, ("succeeded", "failed"), timeout=400)
        check(done and done["status"] == "succeeded" and pid_of(done["claimed_by"]) == b.proc.pid,
              "the job succeeds once, by the rescuer", done and (done["status"], done.get("claimed_by")))
        logs = g.logs()
        check(count_lines(logs, jid, "succeeded in") == 1, "one success over all the logs",
              count_lines(logs, jid, "succeeded in"))
        st, _, res = a.json("GET", f"/v1/jobs/{jid}/result")
        paths = [x.get("path", "") for x in res.get("artifacts", [])] if st == 200 else []
        check(paths and all(f"/run-{done['fence']}/" in p for p in paths),
              "the one result's artifacts are the rescuer's run", paths)
        st, h, blob = a.req("GET", f"/v1/jobs/{jid}/checkpoint")
        check(st == 200 and h.get("ETag") == f'"{res["artifacts"][0]["sha256"]}"',
              "the thawed daemon serves the rescuer's artifact", st)
        check(os.listdir(os.path.join(g.store, "jobs", jid)) == [f"run-{done['fence']}"],
              "one run folder left", os.listdir(os.path.join(g.store, "jobs", jid)))
        check(a.proc.poll() is None and a.req("GET", "/healthz")[0] == 200, "the thawed daemon carries on")
        check(metric(a, "prunerd_leases_lost_total") == 1, "it counts one lost lease")
        # And it still runs jobs.
        st, _, j2 = a.json("POST", "/v1/jobs", job_request("after"))
        d2 = wait_status(a, j2["id"], ("succeeded", "failed"), timeout=300)
        check(d2 and d2["status"] == "succeeded", "the group runs the next job", d2 and d2.get("error"))
    finally:
        rcs = g.stop()
        check(all(rc == 0 for rc in rcs), "the daemons exit 0", rcs)


# ---------------------------------------------------------------- cancel, SIGTERM


def test_cancel_sigterm(tmp, srv, roots):
    """A cancel sent to another daemon reaches the one running the job; SIGTERM re-queues
    a running job (no attempt counted) and another daemon finishes it."""
    g = Group(tmp, srv, "term", roots)
    try:
        a = g.start("term-a")
        b = g.start("term-b")
        st, _, j = a.json("POST", "/v1/jobs", job_request("cancel-me", limit=1500, batch_size=16))
        run = wait_for(lambda: running_on(a, j["id"]) or running_on(b, j["id"]), 120)
        check(run is not None, "the job runs on one daemon", run)
        runner = a if run and pid_of(run["claimed_by"]) == a.proc.pid else b
        other = b if runner is a else a
        t0 = time.time()
        st, _, _ = other.json("POST", f"/v1/jobs/{j['id']}/cancel")
        check(st == 202, "the other daemon accepts the cancel", st)
        done = wait_status(other, j["id"], ("cancelled", "succeeded", "failed"), timeout=60)
        took = time.time() - t0
        print(f"  cancel through the other daemon: {done and done['status']} after {took:.2f} s")
        check(done and done["status"] == "cancelled", "the running daemon stops the job", done and done["status"])
        check(took < 10, "within seconds", took)

        st, _, j2 = a.json("POST", "/v1/jobs", job_request("term", limit=600, batch_size=16))
        run = wait_for(lambda: running_on(a, j2["id"]) or running_on(b, j2["id"]), 120)
        runner = a if run and pid_of(run["claimed_by"]) == a.proc.pid else b
        other = b if runner is a else a
        rc, _ = runner.stop(signal.SIGTERM)
        check(rc == 0, "SIGTERM: the running daemon exits 0", rc)
        check("re-queued" in runner.tail(), "it re-queued the job", runner.tail()[-600:])
        done = wait_status(other, j2["id"], ("succeeded", "failed"), timeout=400)
        check(done and done["status"] == "succeeded" and done["attempts"] == 0 and
              pid_of(done["claimed_by"]) == other.proc.pid,
              "the other daemon finishes it, no attempt counted",
              done and (done["status"], done["attempts"], done.get("claimed_by")))
        check(metric(other, "prunerd_rescues_total") == 0, "no rescue was needed")
    finally:
        g.stop()


# ---------------------------------------------------------------- restart


def test_restart(tmp, srv, roots):
    g = Group(tmp, srv, "rst", roots, lease=5)
    try:
        ds = [g.start(f"rst-{i}") for i in range(2)]
        ids = []
        for i in range(6):
            st, _, b = ds[i % 2].json("POST", "/v1/jobs", job_request(f"r{i}", limit=200, batch_size=16))
            if check(st == 201, f"submit r{i}", (st, b)):
                ids.append(b["id"])
        wait_for(lambda: any(running_on(ds[0], i, 0.0) for i in ids), 120)
        srv.stop()
        t_down = time.time()
        st, _, b = ds[0].json("GET", "/v1/jobs")
        check(st == 503 and td.error_of(b).get("code") and td.error_of(b).get("message"),
              "a request while PostgreSQL is down: 503 with a JSON error", (st, b))
        st, _, b = ds[1].json("POST", "/v1/jobs", job_request("down"))
        check(st == 503 and td.error_of(b).get("code"), "a submission while it is down: 503", (st, b))
        st, _, b = ds[1].json("GET", "/readyz")
        check(st == 503 and b.get("database") is False, "readyz: database false", (st, b))
        time.sleep(max(0.0, 2.0 - (time.time() - t_down)))
        srv.start()
        print(f"  PostgreSQL was down {time.time() - t_down:.1f} s")
        ok = wait_for(lambda: ds[0].json("GET", "/readyz")[0] == 200, 30, 0.2)
        check(ok, "ready again once it is back")
        done = {}
        deadline = time.time() + 400
        while time.time() < deadline and len(done) < len(ids):
            for jid in ids:
                st, _, b = ds[0].json("GET", f"/v1/jobs/{jid}")
                if st == 200 and b["status"] in ("succeeded", "failed", "cancelled"):
                    done[jid] = b
            time.sleep(0.3)
        check(len(done) == len(ids) and all(b["status"] == "succeeded" for b in done.values()),
              "every job succeeds", {k: (b["status"], b.get("error")) for k, b in done.items()})
        logs = g.logs()
        wins = [count_lines(logs, jid, "succeeded in") for jid in ids]
        check(wins == [1] * len(ids), "each exactly once (logs)", wins)
        st, _, b = ds[0].json("GET", "/v1/jobs?limit=200")
        check(st == 200 and len(b["jobs"]) == len(ids), "no job lost or added", st == 200 and len(b["jobs"]))
        check(all(d.proc.poll() is None for d in ds), "no daemon exited")
    finally:
        rcs = g.stop()
        check(all(rc == 0 for rc in rcs), "the daemons exit 0", rcs)


def main():
    why = pg_server.missing()
    if why:
        print(f"SKIP: {why}")
        return pg_server.SKIP
    if not td.BIN or not os.access(td.BIN, os.X_OK) or not os.path.isfile(
            os.path.join(td.SHARED, "models", td.MODEL_NAME)):
        print("FAIL PRUNERD_BIN or the shared model is missing\n0 passed, 1 failed")
        return 1
    tmp = tempfile.mkdtemp(prefix="prunerd-pg-daemons-")
    roots = ["--model-root", os.path.join(td.SHARED, "models"), "--data-root", os.path.join(td.SHARED, "data")]
    want = os.environ.get("PRUNERD_PG_TESTS", "group,kill,sigstop,cancel,restart").split(",")
    srv = pg_server.PgServer()
    try:
        for name, t in (("group", test_group), ("kill", test_kill), ("sigstop", test_sigstop),
                        ("cancel", test_cancel_sigterm), ("restart", test_restart)):
            if name in want:
                t0 = time.time()
                t(tmp, srv, roots)
                print(f"{name}: {time.time() - t0:.1f} s", flush=True)
    finally:
        srv.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"test_daemon_pg: {td.passed} passed, {td.failed} failed")
    return 1 if td.failed or not td.passed else 0


if __name__ == "__main__":
    sys.exit(main())
