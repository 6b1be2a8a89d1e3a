#!/usr/bin/env python3
"""test_daemon_faults.py - the daemon killed mid-job, a disk that fills up while saving, and
a second daemon on the same data dir.

kill -9 during evaluation: the job comes back with attempts + 1 and succeeds,
the jobs queued behind it are all still there and succeed, and SQLite's
integrity_check is ok.  A full disk (RLIMIT_FSIZE below the checkpoint's
size) while saving: the job fails with the reason, leaves no partial
artifact, and the daemon and the next job carry on.  A structured fisher
job cancelled in its importance stage stops between calibration batches.
The retention sweep deletes an old job's files and keeps its row; SIGTERM
with a short --stop-timeout leaves a job mid-batch, queued again.  kill -9
during a recover stage: the job comes back with attempts + 1, resumes from
its last checkpoint (fewer steps this attempt than the job has), and ends
with the sparsity it was pruned to and a result; a recover job cancelled
while training stops at the next step and leaves no checkpoint.
"""
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

import test_daemon as td
from test_daemon import Daemon, check, seed_request, wait_status


def test_kill_during_eval(tmp, roots):
    data = os.path.join(tmp, "var-crash")
    d = Daemon(tmp, roots, data_dir=data, name="crash")
    try:
        st, _, first = d.json("POST", "/v1/jobs", seed_request(limit=2000, name="killed", batch_size=32))
        others = [d.json("POST", "/v1/jobs", seed_request(limit=64, name=f"behind-{i}"))[2]["id"] for i in range(3)]
        deadline = time.time() + 60
        body = None
        while time.time() < deadline:
            st, _, body = d.json("GET", f"/v1/jobs/{first['id']}")
            if body.get("stage") == "evaluating_before" and body.get("progress", 0) > 0.06:
                break
            time.sleep(0.05)
        check(body and body["status"] == "running" and body["stage"] == "evaluating_before",
              "the job is running and evaluating before the kill", body)
        d.stop(signal.SIGKILL)
        db = sqlite3.connect(os.path.join(data, "prunerd.db"))
        check(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "integrity_check after kill -9")
        rows = dict(db.execute("SELECT id, status FROM jobs").fetchall())
        db.close()
        check(len(rows) == 4 and all(rows.get(i) == "queued" for i in others),
              "every other job is still there, queued", rows)
        d.start()
        st, _, b = d.json("GET", f"/v1/jobs/{first['id']}")
        check(b["attempts"] == 1, "attempts went up after kill -9", b.get("attempts"))
        done = wait_status(d, first["id"], ("succeeded", "failed"), timeout=300)
        check(done and done["status"] == "succeeded", "the killed job runs again and succeeds", done and done.get("error"))
        for i in others:
            o = wait_status(d, i, ("succeeded", "failed"), timeout=300)
            check(o and o["status"] == "succeeded", f"job {i} behind it succeeds", o and o.get("error"))
        left = os.listdir(os.path.join(data, "jobs", first["id"]))
        check(not [f for f in left if ".tmp." in f], "no temporary files left", left)
    finally:
        d.stop()
    db = sqlite3.connect(os.path.join(data, "prunerd.db"))
    check(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "integrity_check at the end")
    db.close()


def test_one_daemon_per_data_dir(tmp, roots):
    data = os.path.join(tmp, "var-lock")
    d = Daemon(tmp, roots, data_dir=data, name="lock-1")
    try:
        second = None
        try:
            second = Daemon(tmp, roots, data_dir=data, name="lock-2")
        except RuntimeError as e:
            check("another prunerd serve is using it" in str(e), "a second daemon on the data dir is refused", str(e)[-300:])
        if second:
            check(False, "a second daemon on the same data dir started")
            second.stop()
        st, _, _ = d.req("GET", "/healthz")
        check(st == 200, "the first daemon carries on", st)
    finally:
        d.stop()
    d = Daemon(tmp, roots, data_dir=data, name="lock-3")
    check(d.proc.poll() is None, "the data dir is free again once the daemon stopped")
    d.stop()


def small_files():
    """In the daemon's child: files may not grow past 8 MiB (the checkpoint is ~35 MB)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 20, 8 << 20))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_disk_full(tmp, roots, tiny_model):
    data = os.path.join(tmp, "var-full")
    d = Daemon(tmp, roots, data_dir=data, name="full", preexec=small_files)
    try:
        st, _, j = d.json("POST", "/v1/jobs", seed_request(limit=32, name="no-room"))
        done = wait_status(d, j["id"], ("succeeded", "failed"), timeout=300)
        check(done and done["status"] == "failed" and done.get("error"), "the job fails while saving", done)
        print(f"  disk full while saving: {done and done.get('error')}")
        files = os.listdir(os.path.join(data, "jobs", j["id"]))
        check(not [f for f in files if ".tmp." in f or f.endswith(".pt") or f.endswith(".pth")],
              "no partial artifact is left", files)
        st, _, _ = d.req("GET", f"/v1/jobs/{j['id']}/checkpoint?format=torchscript")
        check(st == 409, "no checkpoint is served for the failed job", st)
        st, _, _ = d.req("GET", "/healthz")
        check(st == 200, "the daemon carries on", st)
        req = {"model": tiny_model, "targets": ["fc"], "method": "l1_unstructured", "amount": 0.5, "name": "fits"}
        st, _, j2 = d.json("POST", "/v1/jobs", req)
        done = wait_status(d, j2["id"], ("succeeded", "failed"), timeout=300)
        check(done and done["status"] == "succeeded", "the next job, small enough, succeeds",
              done and (done["status"], done.get("error")))
    finally:
        rc, _ = d.stop()
        check(rc == 0, "exits 0 after the failures", rc)


def test_cancel_in_importance(tmp, roots, native):
    """A structured fisher job cancelled in its importance stage stops at the next calibration
    batch, not at the end of the pass: the stage's progress moves batch by batch first."""
    d = Daemon(tmp, roots, name="cancel-importance")
    data = os.path.join(td.SHARED, "data")
    try:
        req = {"name": "cancelled in importance", "model": native, "targets": ["bert.encoder.layer.*"],
               "method": "structured", "outputs": ["state_dict"],
               "structured": {"target": {"macs": 0.6}, "importance": "fisher",
                              "calibration": {"data": os.path.join(data, "thucnews", "train.txt"),
                                              "samples": 20000, "batch_size": 8}},
               "eval": {"data": os.path.join(data, "thucnews", "dev.txt"),
                        "vocab": os.path.join(data, "vocab", "bert-base-chinese-vocab.txt"),
                        "classes": os.path.join(data, "thucnews", "class.txt"), "limit": 16}}
        st, _, j = d.json("POST", "/v1/jobs", req)
        check(st == 201, "the structured fisher job is accepted", (st, j))
        seen, body, deadline = [], None, time.time() + 120
        while time.time() < deadline and len(set(seen)) < 3:
            st, _, body = d.json("GET", f"/v1/jobs/{j['id']}")
            if body.get("status") != "running" and body.get("status") != "queued":
                break
            if body.get("stage") == "importance":
                seen.append(body["progress"])
            time.sleep(0.05)
        check(len(set(seen)) >= 3 and seen == sorted(seen),
              "the importance stage's progress moves with the calibration batches", seen[-5:])
        t0 = time.time()
        st, _, _ = d.json("POST", f"/v1/jobs/{j['id']}/cancel")
        done = wait_status(d, j["id"], ("succeeded", "failed", "cancelled"), timeout=120)
        took = time.time() - t0
        check(done and done["status"] == "cancelled", "the job is cancelled", done and done["status"])
        stages = [x["stage"] for x in (done or {}).get("stages") or []]
        check(stages[-1:] == ["importance"], "it stopped in the importance stage", stages)
        # 20,000 calibration titles take minutes; one batch of 8 a fraction of a second
        check(took < 15, f"the cancel took effect between batches ({took:.1f} s)", took)
        print(f"  cancel in the importance stage: cancelled {took:.2f} s after the request")
    finally:
        d.stop()


def recover_request(native, steps, checkpoint_every, name):
    data = os.path.join(td.SHARED, "data")
    return {"name": name, "model": native,
            "targets": ["bert.encoder.layer.*.query", "bert.encoder.layer.*.key", "bert.encoder.layer.*.value",
                        "bert.encoder.layer.*.dense"],
            "method": "l1_unstructured", "amount": 0.7, "scope": "global", "outputs": ["state_dict"],
            "eval": {"data": os.path.join(data, "thucnews", "dev.txt"),
                     "vocab": os.path.join(data, "vocab", "bert-base-chinese-vocab.txt"),
                     "classes": os.path.join(data, "thucnews", "class.txt"), "limit": 16},
            "recover": {"data": os.path.join(data, "thucnews", "train.txt"), "steps": steps,
                        "checkpoint_every": checkpoint_every}}


def wait_recovering(d, job_id, until, timeout=180):
    """Polls the job while it trains until until(body) holds; the progress values seen in recovering."""
    seen, body, deadline = [], None, time.time() + timeout
    while time.time() < deadline:
        st, _, body = d.json("GET", f"/v1/jobs/{job_id}")
        if body.get("status") not in ("running", "queued"):
            break
        if body.get("stage") == "recovering":
            seen.append(body["progress"])
            if until(body):
                break
        time.sleep(0.05)
    return body, seen


def test_kill_during_recover(tmp, roots, native):
    data = os.path.join(tmp, "var-recover")
    d = Daemon(tmp, roots, data_dir=data, name="recover-kill")
    try:
        st, _, j = d.json("POST", "/v1/jobs", recover_request(native, 120, 20, "killed while training"))
        check(st == 201, "the recover job is accepted", (st, j))
        ckpt = os.path.join(data, "jobs", j["id"], "recover", "state.safetensors")
        body, seen = wait_recovering(d, j["id"], lambda b: os.path.exists(ckpt))
        check(os.path.exists(ckpt) and body and body["stage"] == "recovering",
              "a checkpoint is written while the job trains", body)
        check(len(set(seen)) >= 3 and seen == sorted(seen), "the recovering stage's progress moves by step",
              seen[-5:])
        d.stop(signal.SIGKILL)
        d.start()
        st, _, b = d.json("GET", f"/v1/jobs/{j['id']}")
        check(b["attempts"] == 1, "attempts went up after kill -9", b.get("attempts"))
        done = wait_status(d, j["id"], ("succeeded", "failed"), timeout=600)
        check(done and done["status"] == "succeeded", "the killed job resumes and succeeds",
              done and done.get("error"))
        st, _, r = d.json("GET", f"/v1/jobs/{j['id']}/result")
        r = r if st == 200 else {}
        rec = r.get("recovery") or {}
        check(rec.get("resumed_from_step", 0) >= 20 and rec.get("steps_this_attempt", 120) < 120 and
              rec.get("steps_this_attempt", 0) + rec.get("resumed_from_step", 0) == 120,
              "it resumed from its last checkpoint, not from step 0",
              (rec.get("resumed_from_step"), rec.get("steps_this_attempt")))
        sp = (r.get("sparsity") or {}).get("targets", 0)
        check(abs(sp - 0.7) < 1e-6, "it ends with the sparsity it was pruned to", sp)
        m = r.get("metrics") or {}
        check(m.get("after") == m.get("after_recovery") and "after_pruning" in m,
              "metrics has after_pruning and after_recovery, after the latter", sorted(m))
        check(not os.path.exists(os.path.dirname(ckpt)), "the checkpoint is gone once the job succeeded")
        print(f"  kill -9 in recover: resumed from step {rec.get('resumed_from_step')}, "
              f"{rec.get('steps_this_attempt')} of 120 steps this attempt, sparsity {sp:.4f}")
    finally:
        d.stop()


def test_cancel_in_recover(tmp, roots, native):
    d = Daemon(tmp, roots, name="recover-cancel")
    try:
        st, _, j = d.json("POST", "/v1/jobs", recover_request(native, 5000, 10, "cancelled while training"))
        body, seen = wait_recovering(d, j["id"], lambda b: b["progress"] > 0.3)
        check(len(set(seen)) >= 3, "the job trains", seen[-5:])
        t0 = time.time()
        d.json("POST", f"/v1/jobs/{j['id']}/cancel")
        done = wait_status(d, j["id"], ("succeeded", "failed", "cancelled"), timeout=120)
        took = time.time() - t0
        check(done and done["status"] == "cancelled", "the job is cancelled", done and done["status"])
        stages = [x["stage"] for x in (done or {}).get("stages") or []]
        check(stages[-1:] == ["recovering"], "it stopped in the recovering stage", stages)
        check(took < 10, f"the cancel took effect at the next step ({took:.1f} s)", took)
        rec = os.path.join(d.data_dir, "jobs", j["id"], "recover")
        check(not os.path.exists(rec), "a cancelled job leaves no checkpoint", rec)
        print(f"  cancel in recover: cancelled {took:.2f} s after the request")
    finally:
        d.stop()


def test_retention(tmp, roots, tiny_model):
    """The retention sweep at start-up deletes the files of a job finished over retention_days
    ago (the row stays, files_deleted, its checkpoint 410) and leaves a newer job's alone."""
    data = os.path.join(tmp, "var-retention")
    req = {"model": tiny_model, "targets": ["fc"], "method": "l1_unstructured", "amount": 0.5}
    d = Daemon(tmp, roots, data_dir=data, name="retention-1")
    try:
        ids = [d.json("POST", "/v1/jobs", dict(req, name=n))[2]["id"] for n in ("old", "new")]
        for i in ids:
            done = wait_status(d, i, ("succeeded", "failed"), timeout=120)
            check(done and done["status"] == "succeeded", f"retention: job {i} succeeds", done and done.get("error"))
    finally:
        d.stop()
    old, new = ids
    db = sqlite3.connect(os.path.join(data, "prunerd.db"))
    db.execute("UPDATE jobs SET finished_at = finished_at - 31 * 86400 WHERE id = ?", (old,))
    db.commit()
    db.close()
    d = Daemon(tmp, roots, data_dir=data, name="retention-2")  # retention_days 30, the default
    try:
        deadline = time.time() + 60
        while time.time() < deadline and os.path.exists(os.path.join(data, "jobs", old)):
            time.sleep(0.1)
        check(not os.path.exists(os.path.join(data, "jobs", old)), "retention: the old job's folder is gone")
        check(os.path.isdir(os.path.join(data, "jobs", new)), "retention: the new job's folder stays")
        st, _, b = d.json("GET", f"/v1/jobs/{old}")
        check(st == 200 and b.get("files_deleted") is True and b.get("status") == "succeeded",
              "retention: the old job's row stays, files_deleted", b)
        st, _, _ = d.req("GET", f"/v1/jobs/{old}/checkpoint?format=state_dict")
        check(st == 410, "retention: the old job's checkpoint is 410", st)
        st, _, b = d.json("GET", f"/v1/jobs/{new}")
        check(st == 200 and b.get("files_deleted") is False, "retention: the new job keeps its files", b)
        st, _, _ = d.req("GET", f"/v1/jobs/{new}/checkpoint?format=state_dict")
        check(st == 200, "retention: the new job's checkpoint is served", st)
    finally:
        d.stop()


def test_stop_timeout(tmp, roots):
    """SIGTERM with --stop-timeout 1 while a job is inside one long batch: the daemon exits 0
    within the timeout (not waiting for the batch), and the job is queued again and succeeds."""
    data = os.path.join(tmp, "var-stop")
    d = Daemon(tmp, roots + ["--stop-timeout", "1"], data_dir=data, name="stop-1")
    try:
        st, _, j = d.json("POST", "/v1/jobs", seed_request(limit=4096, name="one long batch", batch_size=4096))
        deadline, body = time.time() + 60, None
        while time.time() < deadline:
            st, _, body = d.json("GET", f"/v1/jobs/{j['id']}")
            if body.get("stage") == "evaluating_before":
                break
            time.sleep(0.05)
        time.sleep(0.5)  # inside the batch of 4,096 titles
        rc, took = d.stop()
        check(rc == 0, "exits 0 with a job mid-batch", rc)
        check(took < 5, f"it stops within the timeout, not after the batch ({took:.1f} s)", took)
        log = open(d.log_path).read()
        check("stopped with a job mid-batch (re-queued)" in log, "the log says the job was re-queued", log[-400:])
        print(f"  stop timeout 1 s with a job mid-batch: exited in {took:.2f} s")
    finally:
        d.stop()
    d = Daemon(tmp, roots, data_dir=data, name="stop-2")
    try:
        done = wait_status(d, j["id"], ("succeeded", "failed"), timeout=300)
        check(done and done["status"] == "succeeded", "the job runs again after the restart and succeeds",
              done and (done["status"], done.get("error")))
    finally:
        d.stop()


def main():
    if not td.BIN or not os.access(td.BIN, os.X_OK) or not os.path.isfile(
            os.path.join(td.SHARED, "models", td.MODEL_NAME)):
        print("FAIL PRUNERD_BIN or the shared model is missing\n0 passed, 1 failed")
        return 1
    tmp = tempfile.mkdtemp(prefix="prunerd-faults-")
    tiny = os.path.join(tmp, "tiny")
    os.makedirs(tiny)
    tools = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools")
    if subprocess.run([sys.executable, os.path.join(tools, "make_bert.py"), os.path.join(tiny, "tiny.pt"),
                       "--layers", "1", "--hidden", "32", "--heads", "2", "--ffn", "64"],
                      capture_output=True).returncode != 0:
        print("FAIL could not make a model with " + sys.executable + " (torch)\n0 passed, 1 failed")
        return 1
    # the shared model's weights as a state_dict plus config.json: method structured reads those
    import torch
    native = os.path.join(tiny, "native", "bert.pt")
    os.makedirs(os.path.dirname(native))
    torch.save({k: v.float() for k, v in torch.jit.load(os.path.join(td.SHARED, "models", td.MODEL_NAME))
                .state_dict().items()}, native)
    shutil.copy(os.path.join(td.SHARED, "models", "thucnews-bert-l4-h256.config.json"),
                os.path.join(tiny, "native", "config.json"))
    roots = ["--model-root", os.path.join(td.SHARED, "models"), "--model-root", tiny,
             "--data-root", os.path.join(td.SHARED, "data")]
    try:
        test_one_daemon_per_data_dir(tmp, roots)
        test_kill_during_eval(tmp, roots)
        test_disk_full(tmp, roots, os.path.join(tiny, "tiny.pt"))
        test_cancel_in_importance(tmp, roots, native)
        test_kill_during_recover(tmp, roots, native)
        test_cancel_in_recover(tmp, roots, native)
        test_retention(tmp, roots, os.path.join(tiny, "tiny.pt"))
        test_stop_timeout(tmp, roots)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"test_daemon_faults: {td.passed} passed, {td.failed} failed")
    return 1 if td.failed or not td.passed else 0


if __name__ == "__main__":
    sys.exit(main())
