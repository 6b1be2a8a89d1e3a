#!/usr/bin/env python3
"""test_client_upload.py - Client.upload and submit(upload=True) against the real daemon.

A notebook with nothing on the server: a daemon whose model and data roots are
an empty folder gets the tutorial's model as a torch.save state_dict plus its
config.json, 300 dev titles, the vocab and the classes from a local folder,
with explicit upload() calls and with submit(job, upload=True); both jobs get
the metrics of the same job run on server paths by a second daemon.  Then a
save_pretrained-like folder (model.safetensors + config.json) sent as a tar
stream and used as a job's model; replays (no second body), 409 and replace;
uploads / upload_info / delete_upload; tokens (relative paths, a read token,
the upload limit, both answered before the body).
Fails, never skips, when PRUNERD_BIN, the shared data or torch is missing.
"""
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_DIR = os.path.join(os.path.dirname(HERE), "clients", "python")
sys.path.insert(0, HERE)
sys.path.insert(0, CLIENT_DIR)

import prunerd_client  # noqa: E402
from prunerd_client import Client, PrunerdError, UploadPath  # noqa: E402
import test_daemon as td  # noqa: E402  (one tally for the integration tests)
from test_daemon import Daemon, check, check_error, hash_token, sha256_file  # noqa: E402

BIN = td.BIN
SHARED = td.SHARED
PY = os.environ.get("PRUNERD_PYTHON") or sys.executable
SHARED_FILES = {  # what the notebook's folder is made of
    "model": "models/thucnews-bert-l4-h256.pt",
    "config": "models/thucnews-bert-l4-h256.config.json",
    "dev": "data/thucnews/dev.txt",
    "classes": "data/thucnews/class.txt",
    "vocab": "data/vocab/bert-base-chinese-vocab.txt",
}
DEV_LINES = 300
TOKENS = {"alice": ("submit", "alice-secret"), "viewer": ("read", "viewer-secret"),
          "root": ("admin", "root-secret")}
ALICE, VIEWER, ROOT = (TOKENS[n][1] for n in ("alice", "viewer", "root"))
CREATED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")

# Writes the shared TorchScript model's weights as the tutorial keeps them: a
# torch.save(state_dict) file, and a save_pretrained-like folder (safetensors).
MAKE_MODELS = r"""
import sys, torch
from safetensors.torch import save_file
ts, pth, st = sys.argv[1:4]
sd = {k: v.detach().clone().contiguous() for k, v in torch.jit.load(ts, map_location="cpu").state_dict().items()}
torch.save(sd, pth)
save_file(sd, st)
print(len(sd))
"""


def raises(fn, what, status=None, code=None, field=None):
    """Checks fn() raises PrunerdError with the given status/code/field; returns the error."""
    try:
        v = fn()
    except PrunerdError as e:
        ok = check(status is None or e.status == status, f"{what}: status {status}", (e.status, str(e)))
        ok = check(code is None or e.code == code, f"{what}: code {code}", (e.code, str(e))) and ok
        check(field is None or e.field == field, f"{what}: field {field}", (e.field, str(e))) and ok
        check(isinstance(e.message, str) and e.message, f"{what}: a message", e.message)
        return e
    check(False, f"{what}: PrunerdError raised", v)
    return None


def make_notebook(nb):
    """The notebook's local files: model.pth, config.json, dev.txt (300 lines),
    vocab.txt, class.txt, and hf/ (model.safetensors + config.json)."""
    os.makedirs(os.path.join(nb, "hf"))
    r = subprocess.run([PY, "-c", MAKE_MODELS, os.path.join(SHARED, SHARED_FILES["model"]),
                        os.path.join(nb, "model.pth"), os.path.join(nb, "hf", "model.safetensors")],
                       capture_output=True, text=True, timeout=120)
    if not check(r.returncode == 0, "torch writes the state_dict and the safetensors folder",
                 (r.returncode, r.stderr[-2000:])):
        return False
    for dst in ("config.json", "hf/config.json"):
        shutil.copyfile(os.path.join(SHARED, SHARED_FILES["config"]), os.path.join(nb, dst))
    shutil.copyfile(os.path.join(SHARED, SHARED_FILES["vocab"]), os.path.join(nb, "vocab.txt"))
    shutil.copyfile(os.path.join(SHARED, SHARED_FILES["classes"]), os.path.join(nb, "class.txt"))
    with open(os.path.join(SHARED, SHARED_FILES["dev"]), encoding="utf-8") as f, \
            open(os.path.join(nb, "dev.txt"), "w", encoding="utf-8") as g:
        for _, line in zip(range(DEV_LINES), f):
            g.write(line)
    return True


def job_of(model, data, vocab, classes, model_config=None, name="upload"):
    job = {"name": name, "model": model, "targets": ["bert.encoder.layer.*.attention.self.query"],
           "method": "l1_unstructured", "amount": 0.3, "scope": "global",
           "eval": {"data": data, "vocab": vocab, "classes": classes}}
    if model_config is not None:
        job["model_config"] = model_config
    return job


def run_job(c, job, what, **kw):
    """Submits job (kw to submit), waits; returns (job id, metrics without speeds) or (id, None)."""
    try:
        jid = c.submit(job, **kw)
    except PrunerdError as e:
        check(False, f"{what}: submitted", str(e))
        return None, None
    view = c.wait(jid, progress=False, interval=0.2, timeout=240)
    if not check(view["status"] == "succeeded", f"{what}: succeeds", (view["status"], view.get("error"))):
        return jid, None
    metrics = c.result(jid)["metrics"]
    for stage in metrics.values():  # the speed is not part of the result
        if isinstance(stage, dict):
            stage.pop("samples_per_s", None)
    return jid, metrics


def metric(c, route, method, code):
    """prunerd_http_requests_total of one route, method and status."""
    with c._open("GET", "/metrics") as r:
        text = r.read().decode()
    m = re.search(r'prunerd_http_requests_total\{route="%s",method="%s",code="%d"\} (\d+)'
                  % (re.escape(route), method, code), text)
    return int(m.group(1)) if m else 0


def bar_drawn(out, label):
    """True when out holds one finished progress line for label."""
    text = out.getvalue()
    return (text.startswith("\r[") and text.endswith("\n") and text.count("\n") == 1
            and re.search(r"\] 100%  .* " + re.escape(label) + r" *\n$", text) is not None)


def check_info(p, local, name, kind, what, owner="", absolute=True):
    """Checks an UploadPath against the local file or folder it came from."""
    info = getattr(p, "info", None)
    if not check(isinstance(p, UploadPath) and isinstance(info, dict), f"{what}: an UploadPath", p):
        return
    check(str(p) == info.get("path"), f"{what}: the str is the path", (str(p), info.get("path")))
    if kind == "file":
        check(info.get("bytes") == os.path.getsize(local) and info.get("sha256") == sha256_file(local)
              and info.get("files") == 1 and "archive_bytes" not in info,
              f"{what}: bytes, sha256 and files of the file", info)
    else:
        sizes = [os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(local) for f in fs]
        check(info.get("bytes") == sum(sizes) and info.get("files") == len(sizes)
              and isinstance(info.get("archive_bytes"), int), f"{what}: bytes and files of the folder",
              (info, sizes))
    check(info.get("name") == name and info.get("kind") == kind and info.get("owner") == owner,
          f"{what}: name, kind, owner", info)
    check(CREATED.fullmatch(info.get("created") or "") is not None, f"{what}: created", info.get("created"))
    folder = "anonymous" if owner == "" else owner
    if absolute:
        check(str(p).startswith("/") and str(p).endswith(f"/uploads/{folder}/{name}"),
              f"{what}: an absolute server path", str(p))
    else:
        check(str(p) == f"{folder}/{name}", f"{what}: a path relative to the uploads folder", str(p))


# ---------------------------------------------------------------- tests


def test_server_paths(d, root):
    """The reference: the same job with the files under a model/data root of the second daemon."""
    c = Client(d.url, token=ROOT)
    _, m = run_job(c, job_of("model.pth", "dev.txt", "vocab.txt", "class.txt", "config.json",
                             name="server paths"), "the job on server paths")
    check(m and m["before"].get("samples") == DEV_LINES, "the reference evaluates the 300 titles",
          m and m["before"])
    return m


def test_submit_upload(d, nb, ref):
    """submit(job_file, upload=True): relative paths of a job file, uploaded, then the job."""
    c = Client(d.url)
    check(c.uploads() == [], "the daemon starts with no uploads", c.uploads())
    job_file = os.path.join(nb, "job.json")
    with open(job_file, "w") as f:
        json.dump(job_of("model.pth", "dev.txt", "vocab.txt", "class.txt", "config.json",
                         name="submit(upload=True)"), f)
    local = job_of("model.pth", "dev.txt", "vocab.txt", "class.txt", "config.json")
    raises(lambda: c.submit(local), "the job without upload: the server has no model.pth",
           field="model")
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(HERE)  # relative paths are the job file's, not the current folder's
    try:
        jid, m = run_job(c, job_file, "the job with submit(upload=True)", upload=True, file=out)
    finally:
        os.chdir(cwd)
    names = {u["name"] for u in c.uploads()}
    check(names == {"model.pth", "dev.txt", "vocab.txt", "class.txt", "config.json"},
          "submit(upload=True) uploaded the five files", names)
    text = out.getvalue()
    check(all(re.search(r"\] 100%  .* " + re.escape(n) + r" *\n", text) for n in names),
          "submit(upload=True) draws a progress bar per file", text[-1000:])
    if jid:
        req = c.job(jid)["request"]
        want = {u["name"]: u["path"] for u in c.uploads()}
        got = (req["model"], req["model_config"], req["eval"]["data"], req["eval"]["vocab"],
               req["eval"]["classes"])
        check(got == tuple(want[n] for n in ("model.pth", "config.json", "dev.txt", "vocab.txt", "class.txt")),
              "the job names the uploads' paths", (got, want))
    check(m is not None and m == ref, "submit(upload=True): the metrics of the server-path job", (m, ref))
    with open(job_file) as f:
        check(json.load(f)["model"] == "model.pth", "the job file is left as it was")


def test_explicit_upload(d, nb, ref):
    """upload() each file under a name of its own, the job names the returned paths."""
    c = Client(d.url)
    paths = {}
    for key, fname in (("model", "model.pth"), ("config", "config.json"), ("data", "dev.txt"),
                       ("vocab", "vocab.txt"), ("classes", "class.txt")):
        out = io.StringIO()
        local = os.path.join(nb, fname)
        p = c.upload(local, name="x-" + fname, file=out)
        check_info(p, local, "x-" + fname, "file", f"upload {fname}")
        check(p.replayed is False, f"upload {fname}: not replayed", p.replayed)
        check(bar_drawn(out, "x-" + fname), f"upload {fname}: one progress line", out.getvalue()[-300:])
        paths[key] = p
    job = job_of(paths["model"], paths["data"], paths["vocab"], paths["classes"], paths["config"],
                 name="explicit uploads")
    _, m = run_job(c, job, "the job on explicit uploads")
    check(m is not None and m == ref, "explicit uploads: the metrics of the server-path job", (m, ref))
    quiet = io.StringIO()
    p = c.upload(os.path.join(nb, "class.txt"), name="x-class.txt", progress=False, file=quiet)
    check(quiet.getvalue() == "", "progress=False prints nothing", quiet.getvalue())
    check(p.replayed and p == paths["classes"], "the same again is replayed", (p, p.replayed))
    return paths


def test_folder(d, nb, ref):
    """A save_pretrained-like folder as a tar stream (unpack=tar), used as a job's model."""
    c = Client(d.url)
    hf = os.path.join(nb, "hf")
    entries = prunerd_client._folder_entries(hf)
    stream = b"".join(prunerd_client._tar_chunks(entries))
    check([e[0] for e in entries] == ["config.json", "model.safetensors"],
          "the folder's entries: relative names, sorted", [e[0] for e in entries])
    check(len(stream) == prunerd_client._tar_size(entries), "the archive is the size announced",
          (len(stream), prunerd_client._tar_size(entries)))
    with tarfile.open(fileobj=io.BytesIO(stream), mode="r:") as t:
        members = t.getmembers()
        same = all(t.extractfile(mm).read() == open(os.path.join(hf, mm.name), "rb").read() for mm in members)
    check([mm.name for mm in members] == ["config.json", "model.safetensors"] and same
          and all(mm.isreg() and mm.uid == 0 and mm.uname == "" and mm.mode == 0o644 for mm in members),
          "tarfile reads the stream back: regular files, no owners, the same bytes",
          [(mm.name, mm.type, mm.uid, mm.uname, oct(mm.mode)) for mm in members])

    n201 = metric(c, "/v1/uploads/{name}", "PUT", 201)
    out = io.StringIO()
    p = c.upload(hf + "/", file=out)
    check_info(p, hf, "hf", "folder", "upload the hf folder")
    check(p.info.get("sha256") == hashlib.sha256(stream).hexdigest()
          and p.info.get("archive_bytes") == len(stream), "the folder's sha256 and archive_bytes are the stream's",
          (p.info, len(stream)))
    check(bar_drawn(out, "hf/"), "the folder upload draws one progress line", out.getvalue()[-300:])
    check(metric(c, "/v1/uploads/{name}", "PUT", 201) == n201 + 1, "one PUT for the folder")
    check(os.path.isfile(os.path.join(str(p), "model.safetensors"))
          and os.path.isfile(os.path.join(str(p), "config.json")),
          "the folder's files land directly in uploads/anonymous/hf/", os.listdir(str(p)) if
          os.path.isdir(str(p)) else str(p))
    vocab = c.upload_info("x-vocab.txt")["path"]
    data = c.upload_info("x-dev.txt")["path"]
    classes = c.upload_info("x-class.txt")["path"]
    _, m = run_job(c, job_of(p, data, vocab, classes, name="folder"), "the job on the uploaded folder")
    check(m is not None and m == ref, "the folder job: the metrics of the state_dict job", (m, ref))

    # The same folder again: hashed here, not sent; submit(upload=True) with the folder: the same.
    out = io.StringIO()
    again = c.upload(hf, file=out)
    check(again.replayed and again == p and metric(c, "/v1/uploads/{name}", "PUT", 201) == n201 + 1
          and metric(c, "/v1/uploads/{name}", "PUT", 200) == 0,
          "the same folder again: replayed, no PUT", (again.replayed, out.getvalue()))
    check("already uploaded" in out.getvalue() and "\r" not in out.getvalue(),
          "a replay says so, with no bar", out.getvalue())

    # A data folder with a symlink (as in a Hugging Face cache): the link is followed.
    data_dir = os.path.join(nb, "thucnews")
    os.makedirs(os.path.join(data_dir, "more"))
    shutil.copyfile(os.path.join(nb, "dev.txt"), os.path.join(data_dir, "dev.txt"))
    os.symlink(os.path.join(nb, "vocab.txt"), os.path.join(data_dir, "more", "vocab.txt"))
    q = c.upload(data_dir, progress=False)
    check_info(q, data_dir, "thucnews", "folder", "a folder with a subfolder and a symlink")
    check(os.path.isfile(os.path.join(str(q), "more", "vocab.txt"))
          and not os.path.islink(os.path.join(str(q), "more", "vocab.txt"))
          and sha256_file(os.path.join(str(q), "more", "vocab.txt")) == sha256_file(os.path.join(nb, "vocab.txt")),
          "the symlinked file arrives as a file", str(q))
    empty = os.path.join(nb, "empty")
    os.makedirs(empty)
    try:
        c.upload(empty, progress=False)
        check(False, "an empty folder is refused here")
    except ValueError as e:
        check("no file" in str(e), "an empty folder is refused here", str(e))
    c.delete_upload("thucnews")


def test_replay_conflict(d, nb):
    """The same file twice: no second body; other content: 409 unless replace=True."""
    c = Client(d.url)
    cls = os.path.join(nb, "class.txt")
    n201, n200 = (metric(c, "/v1/uploads/{name}", "PUT", s) for s in (201, 200))
    a = c.upload(cls, name="labels.txt", progress=False)
    out = io.StringIO()
    b = c.upload(cls, name="labels.txt", file=out)
    check(a == b and b.replayed and not a.replayed and a.info == b.info,
          "the same file twice: the same path and object, replayed", (a, b, a.info, b.info))
    check(metric(c, "/v1/uploads/{name}", "PUT", 201) == n201 + 1
          and metric(c, "/v1/uploads/{name}", "PUT", 200) == n200,
          "the second upload sent no PUT", (n201, n200))
    check(out.getvalue().startswith("labels.txt: already uploaded"), "the replay says so", out.getvalue())
    # The daemon's own replay: the same body PUT again answers 200, Idempotent-Replayed.
    with open(cls, "rb") as f:
        body = f.read()
    st, h, raw = d.req("PUT", "/v1/uploads/labels.txt", raw=body,
                       headers={"Content-Type": "application/octet-stream"})
    check(st == 200 and h.get("Idempotent-Replayed") == "true" and json.loads(raw) == a.info,
          "the daemon replays the same body with 200", (st, dict(h), raw[:300]))

    other = os.path.join(nb, "other.txt")
    with open(other, "w") as f:
        f.write("not the classes\n")
    raises(lambda: c.upload(other, name="labels.txt", progress=False), "other content, same name",
           status=409, code="conflict", field="name")
    st, _, err = d.json("PUT", "/v1/uploads/labels.txt", raw=b"not the classes\n",
                        headers={"Content-Type": "application/octet-stream"})
    check_error(st, err, 409, "the daemon's answer to other content", field="name")
    check(c.upload_info("labels.txt") == a.info, "the conflict changed nothing", c.upload_info("labels.txt"))
    raises(lambda: c.upload(os.path.join(nb, "hf"), name="labels.txt", progress=False),
           "a folder under a file's name", status=409, field="name")
    r = c.upload(other, name="labels.txt", replace=True, progress=False)
    check(not r.replayed and r.info.get("sha256") == sha256_file(other) and r.info.get("bytes") == 16,
          "replace=True replaces it", r.info)
    check(c.upload_info("labels.txt") == r.info, "upload_info has the new content", c.upload_info("labels.txt"))
    with open(other, "rb") as f:
        check(open(str(r), "rb").read() == f.read(), "the server's file is the new content")
    again = c.upload(other, name="labels.txt", replace=True, progress=False)
    check(again.replayed and again.info == r.info, "replace=True with the same content sends nothing",
          again.info)


def test_list_get_delete(d):
    c = Client(d.url)
    ups = c.uploads()
    names = [u["name"] for u in ups]
    check(len(ups) >= 10 and "labels.txt" in names and "hf" in names, "uploads() lists them", names)
    created = [u["created"] for u in ups]
    check(created == sorted(created, reverse=True), "uploads() is newest first", created)
    check(c.uploads(owner="") == ups, "an admin's uploads(owner='') is the anonymous folder's")
    for u in ups:
        check(c.upload_info(u["name"]) == u, f"upload_info({u['name']!r}) is the listed object")
    check(c.delete_upload("labels.txt") is None, "delete_upload returns None")
    raises(lambda: c.upload_info("labels.txt"), "upload_info after delete", status=404, code="not_found")
    raises(lambda: c.delete_upload("labels.txt"), "delete_upload twice", status=404, code="not_found")
    check("labels.txt" not in [u["name"] for u in c.uploads()], "a deleted upload leaves the list")
    raises(lambda: c.upload_info("no-such-upload"), "upload_info of a name never used", status=404)
    raises(lambda: c.upload_info("a b"), "upload_info of a name no upload can have", status=404,
           code="not_found")


def test_tokens(d, nb):
    """Tokens: relative paths, other owners, a read token and the upload limit before the body."""
    alice, viewer, root = (Client(d.url, token=t) for t in (ALICE, VIEWER, ROOT))
    cls = os.path.join(nb, "class.txt")
    p = alice.upload(cls, progress=False)
    check_info(p, cls, "class.txt", "file", "alice's upload", owner="alice", absolute=False)
    check(root.upload_info("class.txt", owner="alice")["path"].endswith("/uploads/alice/class.txt"),
          "an admin sees alice's upload, with its server path", root.upload_info("class.txt", owner="alice"))
    raises(lambda: root.upload_info("class.txt"), "the admin's own folder has no class.txt", status=404)
    check([u["name"] for u in root.uploads(owner="alice")] == ["class.txt"], "an admin lists alice's")
    raises(lambda: alice.uploads(owner="root"), "alice lists another owner's", status=403,
           code="forbidden")

    # Refused on the headers: answered before the body (nothing sent, so no bar drawn).
    out = io.StringIO()
    raises(lambda: viewer.upload(cls, name="v.txt", file=out), "a read token uploads", status=403,
           code="forbidden")
    check(out.getvalue() == "", "the read token's refusal came before the body", out.getvalue())
    big = os.path.join(nb, "big.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(2 << 20))  # over --upload-limit 1M
    out = io.StringIO()
    t0 = time.monotonic()
    raises(lambda: alice.upload(big, file=out), "a file over the upload limit", status=413,
           code="payload_too_large", field="body")
    check(out.getvalue() == "", "the 413 came before the body", out.getvalue())
    check(time.monotonic() - t0 < 5, "the 413 came at once", time.monotonic() - t0)
    folder = os.path.join(nb, "bigdir")
    os.makedirs(folder)
    shutil.copyfile(big, os.path.join(folder, "big.bin"))
    raises(lambda: alice.upload(folder, progress=False), "a chunked folder over the upload limit",
           status=413, code="payload_too_large", field="body")
    raises(lambda: alice.upload_info("bigdir"), "nothing is kept of it", status=404)
    raises(lambda: alice.upload(cls, name="a b", progress=False), "a bad name", status=400,
           code="invalid_field", field="name")
    # A Content-SHA256 that is not the body's (the file changed after hashing): 422.
    raises(lambda: alice._put_upload("c2.txt", None, [b"other bytes"], 11, "0" * 64, None),
           "a body that is not its Content-SHA256", status=422, code="checksum_mismatch",
           field="Content-SHA256")
    raises(lambda: Client(d.url, token="wrong").upload(cls, progress=False), "a wrong token",
           status=401, code="unauthorized")
    raises(lambda: Client("http://127.0.0.1:1").upload(cls, progress=False), "no daemon",
           code="unreachable")
    alice.delete_upload("class.txt")
    check(alice.uploads() == [], "alice's uploads are gone", alice.uploads())


def main():
    if not BIN or not os.access(BIN, os.X_OK):
        print(f"FAIL PRUNERD_BIN is not an executable: {BIN!r}\n0 passed, 1 failed")
        return 1
    missing = [s for s in SHARED_FILES.values() if not SHARED or not os.path.isfile(os.path.join(SHARED, s))]
    if missing:
        print(f"FAIL shared data missing under PRUNERD_SHARED={SHARED!r}: {missing}\n0 passed, 1 failed")
        return 1
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="prunerd-client-upload-")
    daemons = []
    try:
        nb = os.path.join(tmp, "notebook")
        if not make_notebook(nb):
            print(f"{td.passed} passed, {td.failed} failed")
            return 1
        empty = os.path.join(tmp, "empty")
        os.makedirs(empty)
        root = os.path.join(tmp, "root")  # the second daemon's root: the same files, by hand
        os.makedirs(root)
        for f in ("model.pth", "config.json", "dev.txt", "vocab.txt", "class.txt"):
            shutil.copyfile(os.path.join(nb, f), os.path.join(root, f))
        config = "[tokens]\n" + "".join(f"{n} = {r}:{hash_token(s)}\n" for n, (r, s) in TOKENS.items())
        b = Daemon(tmp, args=["--model-root", root, "--data-root", root, "--upload-limit", "1M"],
                   config=config, data_dir=os.path.join(tmp, "var-b"), name="b")
        daemons.append(b)
        b.url = f"http://127.0.0.1:{b.port}"
        ref = test_server_paths(b, root)
        test_tokens(b, nb)
        a = Daemon(tmp, args=["--model-root", empty, "--data-root", empty],
                   data_dir=os.path.join(tmp, "var-a"), name="a")
        daemons.append(a)
        a.url = f"http://127.0.0.1:{a.port}"
        if ref:
            test_submit_upload(a, nb, ref)
            test_explicit_upload(a, nb, ref)
            test_folder(a, nb, ref)
        test_replay_conflict(a, nb)
        test_list_get_delete(a)
    finally:
        for d in daemons:
            rc, _ = d.stop()
            check(rc == 0, f"daemon {d.log_path} exits 0 on SIGTERM", rc)
            if td.failed:
                print(d.tail())
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{td.passed} passed, {td.failed} failed in {time.monotonic() - t0:.0f} s")
    return 1 if td.failed or not td.passed else 0


if __name__ == "__main__":
    sys.exit(main())
