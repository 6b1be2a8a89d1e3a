#!/usr/bin/env python3
"""test_schemathesis.py - schemathesis against the real daemon, from the daemon's own /v1/openapi.json.

Starts prunerd with an admin and a read token, the shared model and data as
roots plus a model root and a data root made here (the seed model's weights as
a state_dict + config.json, so method structured runs; 16-line eval and
calibration files, so jobs are quick), and seeds finished jobs of every kind
(l1, structured with fisher + rescale + safetensors, structured with
target.macs, ln_structured, random global, threshold; one failed, one
cancelled) and uploads (a file, a tar.gz unpacked into a folder, one to
delete): their ids, ETags, a cursor, the upload names and the real paths go
into schemathesis.toml as dictionaries that schemathesis draws from beside
what it generates, so it reaches views, results, ranges, uploads and 201s,
and the seed jobs' requests, views and result.json are checked against the
response schemas.  PUT /v1/uploads/{name} gets application/octet-stream
bodies (its requestBody is format: binary).

Then `schemathesis run` twice: every operation with the admin token (50
examples an operation, all phases), and the operations that change something
(POST, PUT, DELETE) with the read token (403s).  Checks: not_a_server_error,
status_code_conformance, content_type_conformance and
response_schema_conformance, with a fixed seed and one worker.  Afterwards the
daemon must still answer and exit 0 on SIGTERM.  It prints what the daemon
answered, by route and status, and the jobs the runs left.

Needs PRUNERD_BIN (default build/server/prunerd), PRUNERD_SHARED (default
../shared: the seed model and THUCNews) and schemathesis in this Python
(tools/requirements.txt); fails, never skips, when one is missing.  With
PRUNERD_OPENAPI_FILE=api/openapi.json it tests that file against the daemon
instead of the document the daemon serves (while editing the document, before
a rebuild embeds it); without it the served document must equal the file.
"""
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import shutil
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_daemon as td  # noqa: E402  (Daemon, hash_token, wait_status)

ROOT = os.path.dirname(HERE)
BIN = os.environ.get("PRUNERD_BIN") or os.path.join(ROOT, "build", "server", "prunerd")
SHARED = os.path.realpath(os.environ.get("PRUNERD_SHARED") or os.path.join(ROOT, "..", "shared"))
OPENAPI_FILE = os.environ.get("PRUNERD_OPENAPI_FILE", "")
MODEL_NAME = td.MODEL_NAME
ADMIN, READER = "s-admin-schemathesis", "s-read-schemathesis"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
SEED = 20261202
check = td.check  # its tally: td.passed, td.failed


def toml_str(s):
    return json.dumps(s)  # a JSON string is a TOML basic string for these paths


def toml_list(values):
    return "[" + ", ".join(toml_str(v) for v in values) + "]"


def make_inputs(tmp, model, dev):
    """Small eval and calibration files, and the seed model's weights as a state_dict with its
    config.json (so method structured can run). Returns their paths, or None."""
    data = os.path.join(tmp, "data")
    models = os.path.join(tmp, "models")
    os.makedirs(data)
    os.makedirs(models)
    with open(dev, encoding="utf-8") as f:
        lines = [line for _, line in zip(range(32), f)]
    paths = {"data_root": data, "model_root": models, "dev16": os.path.join(data, "dev16.txt"),
             "calib16": os.path.join(data, "calib16.txt"), "state_dict": os.path.join(models, "model.pth"),
             "vocab": os.path.join(SHARED, "data", "vocab", "bert-base-chinese-vocab.txt"),
             "classes": os.path.join(SHARED, "data", "thucnews", "class.txt")}
    for name, part in (("dev16", lines[:16]), ("calib16", lines[16:])):  # small: the jobs are quick
        with open(paths[name], "w", encoding="utf-8") as f:
            f.writelines(part)
    p = subprocess.run([BIN, "prune", model, "--out", os.path.join(tmp, "identity.pt"), "--state-dict",
                        paths["state_dict"], "--method", "identity", "--amount", "0", "--target", "fc",
                        "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not check(p.returncode == 0, "prunerd prune writes the seed model's state_dict", p.stdout[-2000:]):
        return None
    os.unlink(os.path.join(tmp, "identity.pt"))
    shutil.copy(os.path.join(SHARED, "models", "thucnews-bert-l4-h256.config.json"),
                os.path.join(models, "config.json"))
    return paths


def seed_jobs(d, paths):
    """Finished jobs of every kind, for schemathesis to draw as {id} and to read back in lists and
    views: their requests, views and result.json meet the response schemas.  Returns
    {"succeeded": [...], "finished": [...], "deletable": [...], "etags": [...]}, or None."""
    ev = {"data": paths["dev16"], "vocab": paths["vocab"], "classes": paths["classes"], "max_length": 16,
          "batch_size": 8}
    sd = paths["state_dict"]
    seeds = [
        ("l1", {"model": MODEL_NAME, "targets": ["fc"], "method": "l1_unstructured", "amount": 0.5,
                "outputs": ["torchscript", "state_dict"]}, "succeeded"),
        ("structured-fisher", {
            "model": sd, "targets": "bert.encoder.layer.*", "method": "structured",
            "structured": {"heads": 2, "neurons": 0.25, "importance": "fisher", "rescale": True,
                           "calibration": {"data": paths["calib16"], "samples": 16, "batch_size": 8,
                                           "labels": "model"},
                           "latency": {"batches": [2], "seq_lens": [16]}},
            "eval": dict(ev, padding="dynamic", tokenizer="bert_legacy", lowercase=True, limit=16),
            "outputs": ["safetensors", "state_dict"], "device": "cpu"}, "succeeded"),
        ("structured-macs", {
            "model": sd, "targets": ["bert.encoder.layer.[0-1]"], "method": "structured",
            "structured": {"target": {"macs": 0.6, "seq_len": 16}, "min_heads_per_layer": 1,
                           "latency": {"batches": [1], "seq_lens": [8, 128]}}}, "succeeded"),
        ("ln", {"model": MODEL_NAME, "targets": "bert.encoder.layer.0.attention.self.query",
                "method": "ln_structured", "amount": 2, "options": {"n": "fro", "dim": 0},
                "outputs": ["state_dict"]}, "succeeded"),
        ("random-global", {"model": MODEL_NAME, "targets": ["bert.encoder.layer.*.attention.self.key"],
                           "method": "random_unstructured", "amount": 0.1, "amount_kind": "fraction",
                           "scope": "global", "options": {"seed": 7, "iterative": True}, "eval": ev,
                           "outputs": ["state_dict"]}, "succeeded"),
        ("threshold", {"model": MODEL_NAME, "targets": ["fc"], "method": "threshold",
                       "options": {"threshold": 0.01}, "outputs": ["state_dict"]}, "succeeded"),
        ("failed", {"model": MODEL_NAME, "targets": ["no.such.parameter"], "method": "identity"}, "failed"),
        ("cancelled", {"model": MODEL_NAME, "targets": ["fc"], "amount": 3}, "cancelled"),
    ]
    jobs = []
    for name, req, want in seeds:
        st, _, j = d.json("POST", "/v1/jobs", dict(req, name="seed-" + name), token=ADMIN)
        if not check(st == 201, f"seed job {name} submitted", (st, j)):
            return None
        if want == "cancelled":
            d.json("POST", f"/v1/jobs/{j['id']}/cancel", token=ADMIN)
        jobs.append((name, j["id"], want))
    out = {"succeeded": [], "finished": [], "deletable": [], "etags": []}
    for name, jid, want in jobs:
        got = td.wait_status(d, jid, ("succeeded", "failed", "cancelled"), timeout=120, token=ADMIN)
        if not check(got and got["status"] == want, f"seed job {name} {want}",
                     got and (got["status"], got["error"])):
            return None
        out["finished"].append(jid)
        out["succeeded" if want == "succeeded" else "deletable"].append(jid)
        for a in got.get("artifacts", []):
            for f in [a] + a.get("files", []):
                if f.get("sha256"):
                    out["etags"].append('"' + f["sha256"] + '"')
    if not check(out["etags"], "the seed jobs' views list their files' sha256"):
        return None
    st, _, page = d.json("GET", "/v1/jobs?limit=2", token=ADMIN)
    if not check(st == 200 and page["next_cursor"], "a page of the seed jobs has a next_cursor", (st, page)):
        return None
    out["cursor"] = page["next_cursor"]
    return out


def seed_uploads(d):
    """A file, a folder (a tar.gz unpacked) and one for DELETE to draw, made with the admin token;
    their names, or None."""
    body = b"seed upload\n" * 100
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in (("m/config.json", b"{}\n"), ("m/vocab.txt", b"[PAD]\n[UNK]\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    ups = [("seed.bin", body, ""), ("seed-dir", buf.getvalue(), "?unpack=tar"), ("seed-delete.bin", b"x", "")]
    for name, data, query in ups:
        st, h, b = d.req("PUT", f"/v1/uploads/{name}{query}", raw=data, token=ADMIN,
                         headers={"Content-Type": "application/octet-stream",
                                  "Content-SHA256": hashlib.sha256(data).hexdigest()})
        if not check(st == 201, f"seed upload {name}", (st, b[:300])):
            return None
    return {"names": [n for n, _, _ in ups[:2]], "deletable": [ups[2][0]]}


def write_config(tmp, seeds, paths, uploads):
    """schemathesis.toml: real values schemathesis may draw instead of generated ones."""
    models = [MODEL_NAME, os.path.join(SHARED, "models", MODEL_NAME), paths["state_dict"]]
    etags = seeds["etags"][:3] + ["W/" + seeds["etags"][0], "*", '"0000"']
    cursors = [seeds["cursor"], "a" + "\u00e9" * 40]
    text = f"""\
[dictionaries]
job_ids = {{ values = {toml_list(seeds["finished"])} }}
deletable_ids = {{ values = {toml_list(seeds["deletable"])} }}
models = {{ values = {toml_list(models)} }}
targets = {{ values = {toml_list(["fc", "bert.encoder.layer.*.attention.self.query", "*.bias"])} }}
eval_data = {{ values = {toml_list([paths["dev16"]])} }}
calibration = {{ values = {toml_list([paths["calib16"]])} }}
vocab = {{ values = {toml_list([paths["vocab"]])} }}
classes = {{ values = {toml_list([paths["classes"]])} }}
formats = {{ values = ["torchscript", "state_dict", "safetensors"] }}
files = {{ values = ["model.safetensors", "config.json", "weights.bin"] }}
ranges = {{ values = {toml_list(["bytes=0-99", "bytes=100-", "bytes=-10", "bytes=0-1,5-9", "bytes=999999999-"])} }}
etags = {{ values = {toml_list(etags)} }}
# a real cursor, and one whose quote in the error message (cut at 64 bytes) ends mid-character
cursors = {{ values = {toml_list(cursors)} }}
upload_names = {{ values = {toml_list(uploads["names"])} }}
deletable_uploads = {{ values = {toml_list(uploads["deletable"])} }}
# the tokens' names (admin, viewer), and "" (the uploads made without tokens)
owners = {{ values = ["admin", "viewer", ""] }}

[[operations]]
include-name = "GET /v1/jobs"
parameters = {{ "query.cursor" = {{ dictionary = "cursors", probability = 0.5 }} }}

[[operations]]
include-name = ["GET /v1/jobs/{{id}}", "GET /v1/jobs/{{id}}/result", "POST /v1/jobs/{{id}}/cancel"]
parameters = {{ "path.id" = {{ dictionary = "job_ids", probability = 0.6 }} }}

[[operations]]
include-name = "GET /v1/jobs/{{id}}/checkpoint"
[operations.parameters]
"path.id" = {{ dictionary = "job_ids", probability = 0.8 }}
"query.format" = {{ dictionary = "formats", probability = 0.6 }}
"query.file" = {{ dictionary = "files", probability = 0.5 }}
"header.Range" = {{ dictionary = "ranges", probability = 0.5 }}
"header.If-Range" = {{ dictionary = "etags", probability = 0.2 }}
"header.If-None-Match" = {{ dictionary = "etags", probability = 0.3 }}

[[operations]]
include-name = "DELETE /v1/jobs/{{id}}"
parameters = {{ "path.id" = {{ dictionary = "deletable_ids", probability = 0.5 }} }}

[[operations]]
include-name = ["GET /v1/uploads/{{name}}", "PUT /v1/uploads/{{name}}"]
parameters = {{ "path.name" = {{ dictionary = "upload_names", probability = 0.5 }} }}

[[operations]]
include-name = "DELETE /v1/uploads/{{name}}"
parameters = {{ "path.name" = {{ dictionary = "deletable_uploads", probability = 0.5 }} }}

[[operations]]
include-name = "GET /v1/uploads"
parameters = {{ "query.owner" = {{ dictionary = "owners", probability = 0.5 }} }}

[[operations]]
include-name = "GET /v1/models/inspect"
parameters = {{ "query.path" = {{ dictionary = "models", probability = 0.3 }} }}

[[operations]]
include-name = "POST /v1/jobs"
[operations.parameters]
"body.model" = {{ dictionary = "models", probability = 0.8 }}
"body.targets" = {{ dictionary = "targets", probability = 0.5 }}
"body.eval.data" = {{ dictionary = "eval_data", probability = 0.8 }}
"body.eval.vocab" = {{ dictionary = "vocab", probability = 0.8 }}
"body.eval.classes" = {{ dictionary = "classes", probability = 0.8 }}
"body.structured.calibration.data" = {{ dictionary = "calibration", probability = 0.8 }}
"""
    path = os.path.join(tmp, "schemathesis.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def run_schemathesis(tmp, config, location, url, token, extra, what):
    """Runs schemathesis; returns (exit code, output)."""
    cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", config, "--no-color", "run", location]
    if location != f"{url}/v1/openapi.json":
        cmd += ["--url", url]
    cmd += ["-H", f"Authorization: Bearer {token}", "--checks", CHECKS, "--seed", str(SEED),
            "--workers", "1", "--generation-database", "none", "--request-timeout", "30",
            "--report", "junit", "--report-dir", os.path.join(tmp, "report-" + what)] + extra
    t0 = time.time()
    p = subprocess.run(cmd, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    out = p.stdout
    summary = re.search(r"Test cases:\s*\n\s*(.+)", out)
    ops = re.search(r"Operations:\s+(\d+ selected / \d+ total)", out)
    print(f"  schemathesis ({what}): {ops.group(1) if ops else '?'} operations; "
          f"{summary.group(1).strip() if summary else '?'}; exit {p.returncode}; {time.time() - t0:.0f} s",
          flush=True)
    warnings = re.search(r"=+ WARNINGS =+\n(.*?)\n=+ SUMMARY =+", out, re.S)
    for line in (warnings.group(1).strip().splitlines() if warnings else []):
        if line.strip():
            print("    " + line.strip())
    return p.returncode, out


def print_answers(d):
    """What the daemon answered, by route and status (its /metrics), to show what the runs reached."""
    st, _, b = d.req("GET", "/metrics")
    counts = {}
    for m in re.finditer(r'prunerd_http_requests_total\{route="([^"]*)",method="([^"]*)",code="(\d+)"\} (\d+)',
                         b.decode() if st == 200 else ""):
        route, method, code, n = m.groups()
        counts.setdefault(f"{method} {route}", []).append(f"{code}x{n}")
    for key in sorted(counts):
        print(f"    {key}: {' '.join(sorted(counts[key]))}")
    jobs, cursor = [], ""
    for _ in range(50):
        st, _, b = d.json("GET", "/v1/jobs?limit=200" + (f"&cursor={cursor}" if cursor else ""), token=ADMIN)
        if st != 200:
            break
        jobs += b["jobs"]
        cursor = b["next_cursor"]
        if not cursor:
            break
    kinds = {}
    for j in jobs:
        key = f"{j['request']['method']} {j['status']}"
        kinds[key] = kinds.get(key, 0) + 1
    print(f"    jobs in the queue: {len(jobs)} ({', '.join(f'{k} x{n}' for k, n in sorted(kinds.items()))})")


def main():
    if not os.access(BIN, os.X_OK):
        print(f"FAIL PRUNERD_BIN is not an executable: {BIN!r}\n0 passed, 1 failed")
        return 1
    model = os.path.join(SHARED, "models", MODEL_NAME)
    dev = os.path.join(SHARED, "data", "thucnews", "dev.txt")
    for need in (model, dev):
        if not os.path.isfile(need):
            print(f"FAIL the shared file {need} is missing (set PRUNERD_SHARED)\n0 passed, 1 failed")
            return 1
    try:
        import schemathesis  # noqa: F401
    except ImportError as e:
        print(f"FAIL schemathesis is not installed in {sys.executable} ({e}): run tools/deps.sh\n"
              "0 passed, 1 failed")
        return 1
    td.BIN = BIN
    tmp = tempfile.mkdtemp(prefix="prunerd-schemathesis-")
    try:
        paths = make_inputs(tmp, model, dev)
        if not paths:
            print(f"{td.passed} passed, {td.failed} failed")
            return 1
        conf = (f"[tokens]\nadmin = admin:{td.hash_token(ADMIN)}\n"
                f"viewer = read:{td.hash_token(READER)}\n")
        roots = ["--model-root", os.path.join(SHARED, "models"), "--model-root", paths["model_root"],
                 "--data-root", os.path.join(SHARED, "data"), "--data-root", paths["data_root"],
                 "--job-threads", "1", "--stop-timeout", "5"]
        d = td.Daemon(tmp, roots, config=conf, name="schemathesis")
        try:
            url = f"http://127.0.0.1:{d.port}"
            st, _, served = d.json("GET", "/v1/openapi.json")
            check(st == 200 and isinstance(served, dict), "GET /v1/openapi.json", st)
            if OPENAPI_FILE:
                location = os.path.abspath(OPENAPI_FILE)
                print(f"  testing {location} against the daemon (PRUNERD_OPENAPI_FILE)")
            else:
                location = f"{url}/v1/openapi.json"
                with open(os.path.join(ROOT, "api", "openapi.json")) as f:
                    source = json.load(f)
                check(served == source, "the daemon serves api/openapi.json as it is now (rebuild if not)")
            seeds = seed_jobs(d, paths)
            uploads = seed_uploads(d) if seeds else None
            if seeds and uploads:
                config = write_config(tmp, seeds, paths, uploads)
                rc, out = run_schemathesis(tmp, config, location, url, ADMIN, ["--max-examples", "50"], "admin")
                if not check(rc == 0, "schemathesis with the admin token: every check passes", rc):
                    print(out)
                # what a read token may not do, with its 403s
                rc, out = run_schemathesis(tmp, config, location, url, READER,
                                       ["--max-examples", "10", "--phases", "coverage,fuzzing",
                                        "--include-method", "POST", "--include-method", "PUT",
                                        "--include-method", "DELETE"], "read")
                if not check(rc == 0, "schemathesis with the read token: every check passes", rc):
                    print(out)
            alive = d.proc.poll() is None
            check(alive, "the daemon is still running after schemathesis", d.proc.returncode)
            if alive:
                st, _, b = d.json("GET", "/healthz")
                check(st == 200 and b == {"status": "ok"}, "the daemon still answers /healthz", (st, b))
                print_answers(d)
        finally:
            rc, took = d.stop()
            check(rc == 0, "the daemon exits 0 on SIGTERM", (rc, took))
            if td.failed:
                print(d.tail())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{td.passed} passed, {td.failed} failed")
    return 1 if td.failed else 0


if __name__ == "__main__":
    sys.exit(main())
