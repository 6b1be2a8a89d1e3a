#!/usr/bin/env python3
"""test_client.py - clients/python/prunerd_client.py against the real daemon, and the example notebook.

Starts `prunerd serve` (PRUNERD_BIN) on a free port with a temporary data dir,
a model/data root holding the shared seed model and THUCNews files, and two
tokens; then exercises every Client method (sweep, sweep_table and
recommendation on a small sensitivity sweep too), and runs the code cells of
clients/python/examples/seed_job.ipynb as one script against the same daemon.
Fails, never skips, when the shared data or the binary is missing.
"""
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
CLIENT_DIR = os.path.join(SRC, "clients", "python")
NOTEBOOK = os.path.join(CLIENT_DIR, "examples", "seed_job.ipynb")
sys.path.insert(0, CLIENT_DIR)

from prunerd_client import Client, PrunerdError, SweepTable  # noqa: E402

BIN = os.environ.get("PRUNERD_BIN", "")
SHARED = os.environ.get("PRUNERD_SHARED", "")
PY = sys.executable
MODEL = "models/thucnews-bert-l4-h256.pt"
FILES = {  # path under the root -> path under PRUNERD_SHARED
    MODEL: "models/thucnews-bert-l4-h256.pt",
    "data/thucnews/dev.txt": "data/thucnews/dev.txt",
    "data/thucnews/class.txt": "data/thucnews/class.txt",
    "data/vocab/bert-base-chinese-vocab.txt": "data/vocab/bert-base-chinese-vocab.txt",
}
ADMIN, READER = "admin-secret-1", "reader-secret-2"
import test_daemon as td  # noqa: E402  (one tally for the integration tests)
from test_daemon import check, sha256_file  # noqa: E402


def raises(fn, what, status=None, code=None, field=None):
    """Checks fn() raises PrunerdError with the given status/code/field; returns the error."""
    try:
        v = fn()
    except PrunerdError as e:
        ok = check(status is None or e.status == status, f"{what}: status {status}", (e.status, str(e)))
        ok = check(code is None or e.code == code, f"{what}: code {code}", (e.code, str(e))) and ok
        ok = check(field is None or e.field == field, f"{what}: field {field}", (e.field, str(e))) and ok
        check(isinstance(e.message, str) and e.message, f"{what}: a message", e.message)
        return e
    check(False, f"{what}: PrunerdError raised", v)
    return None


def seed_job(limit=200, name="seed: global L1 30% on query"):
    return {
        "name": name,
        "model": MODEL,
        "targets": ["bert.encoder.layer.*.attention.self.query"],
        "method": "l1_unstructured",
        "amount": 0.3,
        "scope": "global",
        "eval": {"data": "data/thucnews/dev.txt",
                 "vocab": "data/vocab/bert-base-chinese-vocab.txt",
                 "classes": "data/thucnews/class.txt",
                 "limit": limit},
        "outputs": ["torchscript", "state_dict"],
    }


class Daemon:
    """prunerd serve on 127.0.0.1, port chosen by the kernel and read from the log."""

    def __init__(self, tmp, root):
        self.log_path = os.path.join(tmp, "prunerd.log")
        conf = os.path.join(tmp, "prunerd.conf")
        with open(conf, "w") as f:
            f.write("[tokens]\n")
            for name, role, secret in (("alice", "admin", ADMIN), ("bob", "read", READER)):
                f.write(f"{name} = {role}:{hashlib.sha256(secret.encode()).hexdigest()}\n")
        cmd = [BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(tmp, "var"),
               "--model-root", root, "--data-root", root, "--config", conf]
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        self.port = None
        deadline = time.time() + 20
        while time.time() < deadline and self.port is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prunerd exited with {self.proc.returncode}: {self.tail()}")
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.tail())
            if m:
                self.port = int(m.group(1))
            time.sleep(0.05)
        if self.port is None:
            raise RuntimeError("prunerd did not say it was listening: " + self.tail())
        self.url = f"http://127.0.0.1:{self.port}"

    def tail(self):
        with open(self.log_path) as f:
            return f.read()[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log.close()
        return rc


def metric_count(c, code):
    """prunerd_http_requests_total for GET /v1/jobs/{id}/checkpoint with a status code."""
    with c._open("GET", "/metrics") as r:
        text = r.read().decode()
    m = re.search(r'prunerd_http_requests_total\{route="/v1/jobs/\{id\}/checkpoint",method="GET",'
                  r'code="%d"\} (\d+)' % code, text)
    return int(m.group(1)) if m else 0


# ---------------------------------------------------------------- tests


def test_basics(d):
    c = Client(d.url, token=ADMIN)
    check(c.health() == {"status": "ok"}, "health", c.health())
    raises(lambda: Client("http://127.0.0.1:1").health(), "unreachable daemon", code="unreachable")
    raises(lambda: Client(d.url).job("00000000-0000-4000-8000-000000000000"), "no token",
           status=401, code="unauthorized")
    raises(lambda: Client(d.url, token="wrong").job("00000000-0000-4000-8000-000000000000"),
           "wrong token", status=401, code="unauthorized")
    raises(lambda: Client(d.url, token=READER).submit(seed_job()), "read token submits",
           status=403, code="forbidden")
    raises(lambda: c.job("00000000-0000-4000-8000-000000000000"), "unknown job", status=404,
           code="not_found")
    raises(lambda: c.job("nope"), "an id that names no job", status=404, code="not_found")
    try:
        Client("ftp://x")
        check(False, "a non-http url is refused")
    except ValueError:
        check(True, "a non-http url is refused")


def test_inspect(d):
    c = Client(d.url, token=READER)
    info = c.inspect(MODEL)
    names = [t["name"] for t in info.get("tensors", [])]
    q = [n for n in names if re.fullmatch(r"bert\.encoder\.layer\.\d+\.attention\.self\.query\.weight", n)]
    check(len(q) == 4, "inspect lists the 4 query weights", q)
    check(info.get("parameters", 0) > 10 and info.get("numel", 0) > 1_000_000,
          "inspect counts parameters", {k: info.get(k) for k in ("parameters", "numel")})
    raises(lambda: c.inspect("models/missing.pt"), "inspect a missing model", status=404, field="path")
    raises(lambda: c.inspect("/etc/passwd"), "inspect outside the roots", status=403, field="path")


def test_field_errors(d):
    c = Client(d.url, token=ADMIN)
    e = raises(lambda: c.submit(dict(seed_job(), amount=1.5)), "amount 1.5", status=400,
               code="invalid_field", field="amount")
    if e:
        check("amount" in str(e) and e.message in str(e), "str(PrunerdError) has field and message", str(e))
    raises(lambda: c.submit(dict(seed_job(), method="l3_magic")), "unknown method", status=400,
           field="method")
    job = seed_job()
    job["eval"] = dict(job["eval"], data="data/thucnews/nope.txt")
    raises(lambda: c.submit(job), "missing eval data", status=400, field="eval.data")
    raises(lambda: list(c.jobs(status="done")), "jobs with a bad status", status=400, field="status")


def test_seed_job(d, tmp):
    """Submit, wait, result, download both formats with resume, load with torch."""
    c = Client(d.url, token=ADMIN)
    jid = c.submit(seed_job(), idempotency_key="seed-1")
    check(re.fullmatch(r"[0-9a-f-]{36}", jid or "") is not None, "submit returns a UUID", jid)
    check(c.submit(seed_job(), idempotency_key="seed-1") == jid, "same Idempotency-Key, same job")
    out = io.StringIO()
    job = c.wait(jid, interval=0.2, timeout=240, file=out)
    check(job["status"] == "succeeded", "seed job succeeds", (job["status"], job.get("error")))
    bar = out.getvalue()
    check(bar.startswith("\r[") and re.search(r"\r\[#{30}\] 100%  succeeded *\n$", bar) is not None
          and bar.count("\n") == 1, "wait draws a carriage-return progress bar", bar[-200:])
    check(Client(d.url, token=READER).job(jid)["id"] == jid, "a read token views a job")
    quiet = io.StringIO()
    check(c.wait(jid, progress=False, file=quiet)["status"] == "succeeded" and quiet.getvalue() == "",
          "wait(progress=False) prints nothing", quiet.getvalue())
    if job["status"] != "succeeded":
        return None

    res = c.result(jid)
    m = res.get("metrics", {})
    for when in ("before", "after"):
        mm = m.get(when, {})
        check(all(isinstance(mm.get(k), float) and 0 <= mm[k] <= 1
                  for k in ("accuracy", "macro_f1", "macro_precision")) and mm.get("samples") == 200,
              f"result metrics {when}", {k: mm.get(k) for k in ("accuracy", "macro_f1", "samples")})
    sp = res.get("sparsity", {})
    check(abs(sp.get("targets", 0) - 0.3) < 1e-3, "target sparsity 0.3", sp.get("targets"))
    check(job.get("accuracy_after") == m.get("after", {}).get("accuracy"),
          "job view carries accuracy_after", (job.get("accuracy_after"), m.get("after")))
    arts = {a["format"]: a for a in res.get("artifacts", [])}
    check(set(arts) == {"torchscript", "state_dict"}, "two artifacts", list(arts))

    files = {}
    for fmt in ("torchscript", "state_dict"):
        art = arts.get(fmt)
        if not art:
            continue
        full = os.path.join(tmp, f"full.{fmt}")
        check(c.download(jid, full, format=fmt) == full, f"download {fmt} returns the path")
        check(os.path.getsize(full) == art["bytes"] and sha256_file(full) == art["sha256"],
              f"download {fmt}: bytes and sha256", (os.path.getsize(full), art["bytes"]))
        check(not os.path.exists(full + ".part"), f"download {fmt}: no .part left")

        # Resume: a truncated .part (the first third) is completed with a 206.
        resumed = os.path.join(tmp, f"resumed.{fmt}")
        with open(full, "rb") as f, open(resumed + ".part", "wb") as g:
            g.write(f.read(art["bytes"] // 3))
        n206 = metric_count(c, 206)
        c.download(jid, resumed, format=fmt)
        check(sha256_file(resumed) == art["sha256"], f"resumed {fmt}: sha256", sha256_file(resumed))
        check(metric_count(c, 206) == n206 + 1, f"resumed {fmt}: one 206 Range answer",
              (n206, metric_count(c, 206)))
        check(not os.path.exists(resumed + ".part"), f"resumed {fmt}: .part renamed")

        # A complete .part is verified and renamed without a download.
        again = os.path.join(tmp, f"again.{fmt}")
        shutil.copyfile(full, again + ".part")
        c.download(jid, again, format=fmt)
        check(sha256_file(again) == art["sha256"], f"complete .part {fmt} is kept")

        # A .part that is no prefix of the file: the checksum catches it, .part is removed.
        bad = os.path.join(tmp, f"bad.{fmt}")
        with open(bad + ".part", "wb") as g:
            g.write(b"\0" * 1000)
        raises(lambda: c.download(jid, bad, format=fmt), f"corrupt .part {fmt}",
               code="checksum_mismatch")
        check(not os.path.exists(bad) and not os.path.exists(bad + ".part"),
              f"corrupt .part {fmt}: nothing left behind")
        c.download(jid, bad, format=fmt)
        check(sha256_file(bad) == art["sha256"], f"download after a mismatch {fmt}")
        files[fmt] = resumed
    raises(lambda: c.download(jid, os.path.join(tmp, "x"), format="onnx"), "download format onnx",
           status=400, field="format")

    # Load the downloads with torch: 30% zeros over the query weights.
    if len(files) == 2:
        script = r"""
import json, sys, torch
ts = torch.jit.load(sys.argv[1], map_location="cpu")
sd = torch.load(sys.argv[2], map_location="cpu")
def q(d):
    return {k: v for k, v in d.items() if k.endswith("attention.self.query.weight")}
a, b = q(dict(ts.named_parameters())), q(sd)
z = lambda d: sum(int((v == 0).sum()) for v in d.values()) / sum(v.numel() for v in d.values())
same = sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
ids = torch.zeros(2, 32, dtype=torch.long); ids[:, 0] = 101; ids[:, 1] = 102
logits = ts(ids, (ids != 0).long())
print(json.dumps({"n": len(a), "ts": z(a), "sd": z(b), "same": same, "logits": list(logits.shape)}))
"""
        r = subprocess.run([PY, "-c", script, files["torchscript"], files["state_dict"]],
                           capture_output=True, text=True, timeout=120)
        try:
            got = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            got = {"rc": r.returncode, "stderr": r.stderr[-2000:]}
        check(got.get("n") == 4 and abs(got.get("ts", 0) - 0.3) < 1e-3
              and abs(got.get("sd", 0) - 0.3) < 1e-3 and got.get("same") is True
              and got.get("logits") == [2, 10],
              "torch.jit.load and torch.load read the downloads (30% zeros, same weights)", got)
    return jid


def sweep_eval(limit=64):
    return {"data": "data/thucnews/dev.txt", "vocab": "data/vocab/bert-base-chinese-vocab.txt",
            "classes": "data/thucnews/class.txt", "limit": limit}


def test_sweep_table():
    """SweepTable.from_result on a result made here (no daemon): the points, and the rest as attributes."""
    dense = {"accuracy": 0.9, "macro_f1": 0.88}
    groups = [{"group": "bert.encoder.layer.1", "tensors": ["bert.encoder.layer.1.attention.self.query.weight"],
               "parameters": 65536, "sensitivity": 0.2},
              {"group": "bert.encoder.layer.0", "tensors": ["bert.encoder.layer.0.attention.self.query.weight"],
               "parameters": 65536, "sensitivity": 0.05}]
    points = [{"group": f"bert.encoder.layer.{layer}", "amount": a, "accuracy": acc, "macro_f1": acc - 0.01,
               "seconds": 0.1}
              for layer, accs in ((0, (0.88, 0.82)), (1, (0.8, 0.6))) for a, acc in zip((0.5, 0.9), accs)]
    res = {"kind": "sweep", "metrics": {"before": dense},
           "sweep": {"method": "l1_unstructured", "group": "layer", "amounts": [0.5, 0.9], "dense": dense,
                     "groups": groups},
           "points": points, "artifacts": [], "timings": {}, "provenance": {}}
    t = SweepTable.from_result("job-1", res)
    check(isinstance(t, list) and list(t) == points and len(t) == 4, "SweepTable is the list of points", list(t))
    check((t.job, t.dense, t.groups, t.amounts, t.method, t.group, t.recommendation)
          == ("job-1", dense, groups, [0.5, 0.9], "l1_unstructured", "layer", None),
          "SweepTable's attributes come from result.sweep",
          (t.job, t.dense, t.groups, t.amounts, t.method, t.group, t.recommendation))
    check(t.curve("bert.encoder.layer.1") == [(0.5, 0.8), (0.9, 0.6)], "curve(group): (amount, accuracy) ascending",
          t.curve("bert.encoder.layer.1"))
    rec = {"sparsity": 0.5, "achieved": 0.5, "predicted_accuracy": 0.85, "amounts": {}, "request": {}}
    check(SweepTable.from_result("job-1", dict(res, recommendation=rec)).recommendation == rec,
          "SweepTable.recommendation is the result's")
    check("2 groups x 2 amounts" in repr(t), "repr(SweepTable) says its size", repr(t))
    try:
        SweepTable.from_result("job-2", {"metrics": {}, "sparsity": {}})
        check(False, "a prune job's result is no SweepTable")
    except PrunerdError as e:
        check(e.code == "bad_response" and "job-2" in e.message, "a prune job's result is no SweepTable", str(e))


def test_sweep(d, seed_id):
    """sweep (waiting and not), sweep_table and recommendation against a small real sweep."""
    c = Client(d.url, token=ADMIN)
    target = "bert.encoder.layer.*.attention.self.query"
    try:
        t = c.sweep(MODEL, target, sweep_eval(), amounts=[0.3, 0.9], recommend=0.5, name="client sweep",
                    progress=False, timeout=300)
    except (PrunerdError, TimeoutError) as e:
        check(False, "sweep() runs a sweep and returns its table", str(e))
        return
    check(isinstance(t, SweepTable) and re.fullmatch(r"[0-9a-f-]{36}", t.job or "") is not None,
          "sweep() returns a SweepTable with the job id", repr(t))
    res = c.result(t.job)
    sw = res.get("sweep") or {}
    check(list(t) == res.get("points") and len(t) == 4 * 2, "the table is the result's points (4 layers x 2 amounts)",
          (len(t), len(res.get("points") or [])))
    check(t.dense == sw.get("dense") and t.groups == sw.get("groups") and t.amounts == [0.3, 0.9]
          and t.group == "layer" and t.method == "l1_unstructured", "the table's attributes are the result's",
          {"dense": t.dense, "groups": len(t.groups), "amounts": t.amounts, "group": t.group})
    sens = [g.get("sensitivity") for g in t.groups]
    check(sens == sorted(sens, reverse=True), "groups are most sensitive first", sens)
    job = c.job(t.job)
    req = job.get("request") or {}
    check(req.get("kind") == "sweep" and req.get("targets") == [target] and req.get("recommend") == {"sparsity": 0.5}
          and job.get("name") == "client sweep", "sweep() sent kind, one target as a list, recommend and name",
          {k: req.get(k) for k in ("kind", "targets", "recommend")})
    rec = c.recommendation(t.job)
    check(isinstance(rec, dict) and rec == t.recommendation == res.get("recommendation"),
          "recommendation(job) is the table's and the result's", rec)
    targets = ((rec or {}).get("request") or {}).get("targets") or []
    check(targets and all(isinstance(x, dict) and set(x) == {"glob", "amount"} for x in targets),
          "the recommended request's targets are {glob, amount} objects", targets)
    if seed_id:
        check(c.recommendation(seed_id) is None, "recommendation(a prune job) is None")
        raises(lambda: c.sweep_table(seed_id), "sweep_table(a prune job)", code="bad_response")

    jid = c.sweep(MODEL, [target], sweep_eval(32), amounts=[0.5], group="parameter", wait=False)
    check(isinstance(jid, str) and re.fullmatch(r"[0-9a-f-]{36}", jid) is not None,
          "sweep(wait=False) returns the job id", jid)
    try:
        early = c.sweep_table(jid)
        check(c.job(jid)["status"] == "succeeded", "sweep_table before the sweep ends: 409 not_ready", repr(early))
    except PrunerdError as e:
        check(e.status == 409 and e.code == "not_ready", "sweep_table before the sweep ends: 409 not_ready", str(e))
    done = c.wait(jid, progress=False, interval=0.2, timeout=300)
    if check(done["status"] == "succeeded", "the parameter sweep succeeds", (done["status"], done.get("error"))):
        t2 = c.sweep_table(jid)
        check(t2.group == "parameter" and len(t2.groups) == 4 and len(t2) == 4 and t2.recommendation is None
              and all(g["group"].endswith(".attention.self.query.weight") for g in t2.groups),
              "sweep_table(id): grouped by parameter, no recommendation", repr(t2))

    raises(lambda: c.sweep(MODEL, target, sweep_eval(), amount=0.5), "a sweep with amount", status=400,
           field="amount")
    raises(lambda: c.sweep(MODEL, target, None), "a sweep without eval", status=400, field="eval")
    raises(lambda: c.sweep(MODEL, target, sweep_eval(), amounts=[0.6, 0.3]), "amounts not increasing",
           status=400, field="amounts")


def test_cancel_delete_paging(d, seed_id):
    c = Client(d.url, token=ADMIN)
    long_id = c.submit(seed_job(limit=None, name="long"))
    queued = [c.submit(seed_job(name=f"queued-{i}")) for i in range(5)]
    t0 = time.time()
    while c.job(long_id)["status"] == "queued" and time.time() - t0 < 60:
        time.sleep(0.05)
    try:
        c.wait(long_id, progress=False, interval=0.1, timeout=0.3)
        check(False, "wait(timeout=0.3) on a long job raises TimeoutError")
    except TimeoutError:
        check(True, "wait(timeout=0.3) on a long job raises TimeoutError")
    raises(lambda: c.delete(long_id), "delete a running job", status=409, code="conflict")
    raises(lambda: Client(d.url, token=READER).cancel(long_id), "a read token cancels",
           status=403, code="forbidden")
    # the queued ones first: once the long job stops, the worker would claim
    # the next queued job before a later cancel reached it
    for q in queued:
        c.cancel(q)
    view = c.cancel(long_id)
    check(view.get("id") == long_id and view.get("cancel_requested") is True,
          "cancel answers the job with cancel_requested", view)
    job = c.wait(long_id, progress=False, interval=0.1, timeout=60)
    check(job["status"] == "cancelled", "a running job is cancelled", job["status"])
    check(all(c.job(q)["status"] == "cancelled" for q in queued), "queued jobs are cancelled")
    raises(lambda: c.cancel(long_id), "cancel a cancelled job", status=409, code="conflict")
    raises(lambda: c.result(long_id), "result of a cancelled job", status=409, code="not_ready")
    raises(lambda: c.download(long_id, "/nonexistent/x"), "download a cancelled job",
           status=409, code="not_ready")

    # Paging: every job once, newest first, whatever the page size.
    everything = list(c.jobs(page_size=200))
    ids = [j["id"] for j in everything]
    for size in (1, 2, 3):
        paged = [j["id"] for j in c.jobs(page_size=size)]
        check(paged == ids, f"jobs(page_size={size}) pages through the same list",
              (len(paged), len(ids)))
    check(len(ids) == len(set(ids)) and {long_id, *queued} <= set(ids)
          and (seed_id is None or seed_id in ids), "jobs lists every job once", len(ids))
    created = [j["created_at"] for j in everything]
    check(created == sorted(created, reverse=True), "jobs newest first", created)
    canc = list(c.jobs(status="cancelled", page_size=2))
    check(len(canc) == 6 and all(j["status"] == "cancelled" for j in canc),
          "jobs(status='cancelled') pages the 6 cancelled jobs", [j["status"] for j in canc])
    check([j["id"] for j in c.jobs(limit=3, page_size=2)] == ids[:3], "jobs(limit=3) gives 3")
    check(list(c.jobs(limit=0)) == [], "jobs(limit=0) gives none")

    # Delete: finished jobs go, and then answer 404.
    for q in [long_id] + queued:
        check(c.delete(q) is None, "delete a cancelled job")
    raises(lambda: c.job(long_id), "a deleted job", status=404, code="not_found")
    raises(lambda: c.delete(long_id), "delete twice", status=404, code="not_found")
    left = {j["id"] for j in c.jobs()}
    check(not ({long_id, *queued} & left), "deleted jobs leave the list", left)


def notebook_cells(path):
    """The notebook's code cells, after checking it is an nbformat 4 document."""
    with open(path, encoding="utf-8") as f:
        nb = json.load(f)
    ok = check(nb.get("nbformat") == 4 and isinstance(nb.get("nbformat_minor"), int)
               and isinstance(nb.get("metadata"), dict) and isinstance(nb.get("cells"), list),
               "notebook: nbformat 4 top level", {k: nb.get(k) for k in ("nbformat", "nbformat_minor")})
    code = []
    for i, cell in enumerate(nb.get("cells", [])):
        t = cell.get("cell_type")
        src = cell.get("source")
        good = (t in ("code", "markdown") and isinstance(cell.get("metadata"), dict)
                and (isinstance(src, str) or (isinstance(src, list) and all(isinstance(s, str) for s in src))))
        if t == "code":
            good = good and cell.get("outputs") == [] and "execution_count" in cell
        ok = check(good, f"notebook cell {i} is a valid {t} cell", cell) and ok
        if t == "code":
            code.append(src if isinstance(src, str) else "".join(src))
    check(len(code) >= 4, "notebook has code cells", len(code))
    return code


def test_notebook(d, tmp, root):
    c = Client(d.url, token=ADMIN)
    if not check(os.path.isfile(NOTEBOOK), "the example notebook exists", NOTEBOOK):
        return
    code = notebook_cells(NOTEBOOK)
    gen = subprocess.run([PY, os.path.join(os.path.dirname(NOTEBOOK), "make_seed_job.py"), "--check"],
                         capture_output=True, text=True, timeout=60)
    check(gen.returncode == 0, "seed_job.ipynb is what make_seed_job.py writes", gen.stdout + gen.stderr)
    check(not any(line.lstrip().startswith(("%", "!")) for cell in code for line in cell.splitlines()),
          "notebook code has no IPython magics (it runs as a script)")
    script = os.path.join(tmp, "seed_job.py")
    with open(script, "w") as f:
        f.write("\n\n".join(code))
    out_dir = os.path.join(tmp, "nb-out")
    os.makedirs(out_dir)
    env = dict(os.environ, PRUNERD_URL=d.url, PRUNERD_TOKEN=ADMIN, PRUNERD_EVAL_LIMIT="200",
               PRUNERD_OUT=out_dir, PRUNERD_CLIENT_DIR=CLIENT_DIR)
    before = {j["id"] for j in c.jobs()}
    r = subprocess.run([PY, script], capture_output=True, text=True, env=env, timeout=300,
                       cwd=os.path.dirname(NOTEBOOK))
    check(r.returncode == 0, "the notebook's code runs", (r.returncode, r.stdout[-2000:], r.stderr[-3000:]))
    new = [j for j in c.jobs() if j["id"] not in before]
    check(len(new) == 1 and new[0]["status"] == "succeeded"
          and new[0]["request"]["eval"]["limit"] == 200
          and new[0]["request"]["method"] == "l1_unstructured" and new[0]["request"]["amount"] == 0.3,
          "the notebook ran one seed job (limit 200)", [(j["status"], j["request"]) for j in new])
    if len(new) != 1:
        return
    res = c.result(new[0]["id"])
    out = r.stdout
    for metric in ("accuracy", "macro_f1", "macro_precision"):
        b, a = res["metrics"]["before"][metric], res["metrics"]["after"][metric]
        row = r"\s+".join(re.escape(v) for v in (metric, f"{b:.4f}", f"{a:.4f}", f"{a - b:+.4f}"))
        check(re.search(rf"^{row}\s*$", out, re.M) is not None,
              f"notebook prints the {metric} row before/after", out[-1500:])
    for p in res["sparsity"]["parameters"]:
        check(re.search(rf"^{re.escape(p['name'])}\s.*{p['sparsity']:.4f}\s*$", out, re.M) is not None,
              f"notebook prints the sparsity of {p['name']}", out[-1500:])
    pt = os.path.join(out_dir, "seed-pruned.pt")
    ts_art = [a for a in res["artifacts"] if a["format"] == "torchscript"][0]
    check(os.path.isfile(pt) and sha256_file(pt) == ts_art["sha256"],
          "the notebook downloaded the pruned TorchScript", pt)
    check(re.search(r"^loaded .*: query weights 0\.300\d zeros", out, re.M) is not None,
          "the notebook loaded the checkpoint with torch", out[-800:])


def main():
    if not BIN or not os.access(BIN, os.X_OK):
        print(f"FAIL PRUNERD_BIN is not an executable: {BIN!r}\n0 passed, 1 failed")
        return 1
    missing = [s for s in FILES.values() if not os.path.isfile(os.path.join(SHARED, s))]
    if missing:
        print(f"FAIL shared data missing under PRUNERD_SHARED={SHARED!r}: {missing}\n0 passed, 1 failed")
        return 1
    tmp = tempfile.mkdtemp(prefix="prunerd-client-")
    d = None
    try:
        # The roots get hard links (or copies): prunerd resolves symlinks and
        # refuses any whose target leaves the roots.
        root = os.path.join(tmp, "root")
        for dst, src in FILES.items():
            dst = os.path.join(root, dst)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            try:
                os.link(os.path.join(SHARED, src), dst)
            except OSError:
                shutil.copyfile(os.path.join(SHARED, src), dst)
        d = Daemon(tmp, root)
        test_basics(d)
        test_inspect(d)
        test_field_errors(d)
        seed_id = test_seed_job(d, tmp)
        test_sweep_table()
        test_sweep(d, seed_id)
        test_notebook(d, tmp, root)
        test_cancel_delete_paging(d, seed_id)
        if seed_id:
            c = Client(d.url, token=ADMIN)
            c.delete(seed_id)
            raises(lambda: c.result(seed_id), "result of a deleted job", status=404)
    finally:
        if d:
            rc = d.stop()
            check(rc == 0, "daemon exits 0 on SIGTERM", rc)
            if td.failed:
                print(d.tail())
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{td.passed} passed, {td.failed} failed")
    return 1 if td.failed or not td.passed else 0


if __name__ == "__main__":
    sys.exit(main())
