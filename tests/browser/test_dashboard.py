#!/usr/bin/env python3
"""test_dashboard.py - headless Chromium drives the dashboard served by the real prunerd daemon.

Starts `prunerd serve` on a free port with a temporary data dir, the shared
model and data as roots and one admin token; then, in the browser: enters
the token, loads the model's parameters, submits the seed job through the
form (no output ticked; first with a bad amount, whose 400 must land next
to the amount field), watches its row reach `succeeded`, opens the job page (sparsity
chart: one bar per pruned parameter; confusion difference; timeline),
downloads a checkpoint and result.json and compares them with the API,
downloads the two files of a safetensors folder from a job the test answers
itself (page.route), checks the structured cards (heads and FFN neurons
kept per layer, totals, latency rows, accuracy change) on two structured
results the test answers itself (with latency and eval, and without), then
runs a method structured job on the shared model's weights written as a
torch.save state_dict with its config.json (a second model root in the
temporary dir) and checks its page against its own result.json, checks a
non-structured job's page shows none of it, checks the Recovery card
(the loss curve, the evaluations during training, the schedule's prunings,
before / after pruning / after recovery) on a resumed result the test
answers itself and on a recover job the daemon runs on that state_dict with
a small training file (a data root of its own), then
cancels and deletes jobs, and checks polling pauses while the tab is hidden.
Saves screenshot-jobs.png, screenshot-job.png, screenshot-structured.png
(the daemon's structured job; the answered one with latency when that job
fails) and screenshot-recovery.png (the daemon's recover job) into
PRUNERD_SCREENSHOTS (default: the build folder); `PRUNERD_SCREENSHOTS=docs`
refreshes the README's.

Needs PRUNERD_BIN, PRUNERD_SHARED, /usr/bin/chromium (or PRUNERD_CHROMIUM),
Playwright for Python and torch (the repository's .venv, which meson runs
this with).  Missing any of them is a failure, never a skip.  Every failure prints
what it expected and what it got; the last line is "N passed, N failed".

Playwright's sync API hands events (requests, route handlers) to Python only
while Python waits on Playwright, so every pause is page.wait_for_timeout,
never time.sleep.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import parse_qsl, quote, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
import test_daemon as td  # noqa: E402  (one tally and one check for the integration tests)
from test_daemon import check, error_of, hash_token  # noqa: E402

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
    PLAYWRIGHT_MISSING = None
except ImportError as e:  # reported as a failure in main(), after the other preconditions
    PlaywrightError = sync_playwright = None
    PLAYWRIGHT_MISSING = str(e)

BIN = os.environ.get("PRUNERD_BIN", "")
# Resolved: the daemon refuses request paths with ".." in them.
SHARED = os.environ.get("PRUNERD_SHARED", "")
if SHARED and os.path.exists(SHARED):
    SHARED = os.path.realpath(SHARED)
CHROMIUM = os.environ.get("PRUNERD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
DOCS = os.path.normpath(os.path.join(
    ROOT, os.environ.get("PRUNERD_SCREENSHOTS") or os.environ.get("PRUNERD_BUILD") or "build"))
MODEL = "thucnews-bert-l4-h256.pt"
TOKEN = "browser-test-secret"
BEARER = "Bearer " + TOKEN
SEED_TARGET = "bert.encoder.layer.*.attention.self.query"

MODEL_PATH = os.path.join(SHARED, "models", MODEL)
MODEL_CONFIG = os.path.join(SHARED, "models", "thucnews-bert-l4-h256.config.json")
DATA_DIR = os.path.join(SHARED, "data")
EVAL_FILES = {
    "data": os.path.join(DATA_DIR, "thucnews", "dev.txt"),
    "vocab": os.path.join(DATA_DIR, "vocab", "bert-base-chinese-vocab.txt"),
    "classes": os.path.join(DATA_DIR, "thucnews", "class.txt"),
}


def finish(extra_failure=None):
    if extra_failure:
        check(False, extra_failure)
    print(f"{td.passed} passed, {td.failed} failed", flush=True)
    sys.exit(1 if td.failed else 0)


def now_ms():
    return time.monotonic() * 1000


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def to_fixed(x, digits):
    """JavaScript's x.toFixed(digits), which the dashboard uses: the exact value, ties away from 0."""
    return f"{Decimal(x).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP):f}"


def is_number(x, want):
    """x is the JSON number want (not a string, not a boolean), like JavaScript's x === want."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == want


def squash(text):
    return re.sub(r"\s+", " ", text or "")


def signed(x, digits):
    """The dashboard's signed(): +0.50, -0.25, 0.00 (never -0.00)."""
    s = to_fixed(x, digits)
    return "+" + s if x > 0 else to_fixed(0, digits) if s == "-" + to_fixed(0, digits) else s


def js_pct(x, digits=1):
    """The dashboard's pct(): (x * 100).toFixed(digits) + '%'."""
    return to_fixed(x * 100, digits) + "%"


def kept_of(text):
    """(kept, before) from "2,048 / 4,096" in whatever digit grouping the browser's locale uses."""
    m = re.fullmatch(r"\s*([\d.,\u00a0\u202f ]+?)\s*/\s*([\d.,\u00a0\u202f ]+?)\s*", text or "")
    return (int(re.sub(r"\D", "", m.group(1))), int(re.sub(r"\D", "", m.group(2)))) if m else None


def write_state_dict_model(folder):
    """The shared model's weights as torch.save(state_dict) with its config.json beside it (what
    method structured reads; TorchScript is refused); returns the weights' path."""
    import torch  # only here: the rest of the test needs no torch

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "bert.pt")
    torch.save(torch.jit.load(MODEL_PATH).state_dict(), path)
    shutil.copy(MODEL_CONFIG, os.path.join(folder, "config.json"))
    return path


# ---------------------------------------------------------------- the daemon


class Daemon:
    """prunerd serve on 127.0.0.1 with a port it picks itself, one admin token, one worker."""

    def __init__(self, tmp, extra_model_root=None, extra_data_root=None):
        self.start(tmp, ["--model-root", os.path.join(SHARED, "models")]
                   + (["--model-root", extra_model_root] if extra_model_root else [])
                   + ["--data-root", DATA_DIR]
                   + (["--data-root", extra_data_root] if extra_data_root else []),
                   f"browser = admin:{hash_token(TOKEN)}\n")

    def start(self, tmp, args, tokens):
        """Starts prunerd serve with args (roots, limits) and the [tokens] lines."""
        self.tmp = tmp
        conf = os.path.join(tmp, "prunerd.conf")
        with open(conf, "w") as f:
            f.write("[tokens]\n" + tokens)
        self.log_path = os.path.join(tmp, "daemon.log")
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(
                [BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(tmp, "var")]
                + args + ["--config", conf, "--workers", "1"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.port = None
        for _ in range(400):
            if self.proc.poll() is not None:
                break
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.log())
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.05)
        self.base = f"http://127.0.0.1:{self.port}"

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self):
        """SIGTERM, 30 s to exit, then SIGKILL; checks the exit status, which ASan makes non-zero on a leak."""
        if self.proc.poll() is not None:
            # It was not asked to stop: a crash, or it never started (reported already).
            if self.port is not None:
                check(False, "the daemon is still running when the test ends", self.proc.returncode)
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        # Under ASan a leak turns into a non-zero exit status.
        check(self.proc.returncode == 0, "the daemon stops cleanly on SIGTERM", self.proc.returncode)


def http(d, method, path, headers=None, token=None):
    """(status, headers, body bytes) of one request to the daemon; never raises on 4xx/5xx."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    r = urllib.request.Request(d.base + path, method=method, headers=h)
    try:
        with urllib.request.urlopen(r, timeout=60) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def api_call(d, method, path, body=None):
    """(status, JSON body or text) of an API call with the admin token."""
    h = {"Authorization": BEARER}
    data = None
    if body is not None:
        h["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    r = urllib.request.Request(d.base + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(r, timeout=60) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    text = raw.decode("utf-8", errors="replace")
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


def header_int(h, name):
    v = h.get(name)
    return int(v) if v is not None and v.isdigit() else v


def wait_for(page, fn, what, timeout_ms=20000, step_ms=100):
    """Polls fn() until it returns something true and returns that; a failed check on timeout."""
    t0 = now_ms()
    last = None
    while now_ms() - t0 < timeout_ms:
        last = fn()
        if last:
            return last
        page.wait_for_timeout(step_ms)
    check(False, "timed out waiting for " + what, last)
    return None


# ---------------------------------------------------------------- the static files, without a browser


def test_static(d):
    st, h, raw = http(d, "GET", "/")
    body = raw.decode("utf-8", errors="replace")
    check(st == 200, "GET / is 200", st)
    check((h.get("Content-Type") or "").startswith("text/html"), "GET / is HTML", h.get("Content-Type"))
    check(h.get("Cache-Control") == "no-cache", "GET / Cache-Control: no-cache", h.get("Cache-Control"))
    etag = h.get("ETag") or ""
    check(bool(re.fullmatch(r'"[0-9a-f]{32}"', etag)), "GET / has a strong ETag", etag)
    foreign = re.findall(r"https?://(?!127)[^\s\"'<>]*", re.sub(r'http://www\.w3\.org[^"]*', "", body))
    own = 'src="/app.js"' in body and 'href="/style.css"' in body
    check(own and not foreign, "index.html loads its own files only (no CDN)",
          {"src=/app.js and href=/style.css": own, "other hosts": foreign})
    st, h, _ = http(d, "GET", "/index.html")
    check(st == 200 and h.get("ETag") == etag, "/index.html is / with the same ETag", (st, h.get("ETag")))
    for p, ctype in (("/app.js", "text/javascript"), ("/style.css", "text/css")):
        st, h, raw = http(d, "GET", p)
        text = raw.decode("utf-8", errors="replace")
        check(st == 200 and (h.get("Content-Type") or "").startswith(ctype), f"{p} is {ctype}",
              (st, h.get("Content-Type")))
        check(len(text) > 1000 and header_int(h, "Content-Length") == len(raw), f"{p} Content-Length",
              (h.get("Content-Length"), len(raw)))
        st, _, _ = http(d, "GET", p, headers={"If-None-Match": h.get("ETag") or ""})
        check(st == 304, f"{p} If-None-Match -> 304", st)
        st, _, _ = http(d, "GET", p, headers={"If-None-Match": '"0000"'})
        check(st == 200, f"{p} other ETag -> 200", st)
    with open(os.path.join(ROOT, "web", "app.js"), encoding="utf-8") as f:
        markup = re.findall(r"\.innerHTML\s*=|insertAdjacentHTML|document\.write", f.read())
    check(not markup, "app.js never writes markup (no innerHTML)", markup)
    st, _, _ = http(d, "GET", "/nothing.js")
    check(st == 404, "an unknown file is 404", st)
    st, _, _ = http(d, "GET", "/v1/jobs")
    check(st == 401, "the API itself still wants the token", st)


# ---------------------------------------------------------------- hundreds of jobs, DOM changes counted


def fake_jobs(n, changed):
    """The list the test answers for /v1/jobs: n jobs; job 7 running, or succeeded once changed."""
    created = (datetime.now(timezone.utc) - timedelta(days=3)).isoformat(timespec="milliseconds")
    created = created.replace("+00:00", "Z")
    jobs = []
    for i in range(n):
        done = i == 7 and changed
        jobs.append({
            "id": f"00000000-0000-4000-8000-{i:012d}", "name": f"fake job {i}",
            "status": ("succeeded" if done else "running") if i == 7 else "succeeded" if i % 3 else "failed",
            "stage": "evaluating_after" if i == 7 and not done else "saving",
            "progress": 0.6 if i == 7 and not done else 1, "owner": "browser",
            "created_at": created, "started_at": created, "finished_at": created,
            "request": {"model": "/m.pt", "targets": ["bert.encoder.layer.*.attention.self.query"],
                        "method": "l1_unstructured", "amount": 0.3, "amount_kind": "fraction",
                        "scope": "global"},
            "accuracy_before": 0.9, "accuracy_after": 0.85 if done or i != 7 else None,
            "macro_f1_before": 0.88, "macro_f1_after": 0.8 if done or i != 7 else None,
        })
    return {"jobs": jobs, "next_cursor": None}


def test_many_jobs(page):
    n = 300
    state = {"changed": False, "served": 0}

    def is_list(url):
        return urlsplit(url).path == "/v1/jobs"

    def serve(route):
        state["served"] += 1
        route.fulfill(status=200, content_type="application/json",
                      body=json.dumps(fake_jobs(n, state["changed"])))

    rows = page.locator("#jobs tbody tr")
    page.route(is_list, serve)
    wait_for(page, lambda: rows.count() == n, f"{n} rows", 10000)
    check(rows.count() == n, f"{n} jobs make {n} rows", rows.count())
    page.evaluate("""() => {
        window.__mutations = [];
        window.__observer = new MutationObserver((ms) => {
          for (const m of ms) {
            const node = m.target.nodeType === 1 ? m.target : m.target.parentElement;
            const tr = node && node.closest('tr');
            window.__mutations.push(tr ? tr.dataset.id || 'row?' : m.type + ' on tbody');
          }
        });
        window.__observer.observe(document.querySelector('#jobs tbody'),
          { subtree: true, childList: true, characterData: true, attributes: true });
      }""")
    before = state["served"]
    wait_for(page, lambda: state["served"] >= before + 2, "two more polls", 5000, 50)
    page.wait_for_timeout(100)
    quiet = page.evaluate("() => window.__mutations.splice(0)")
    check(len(quiet) == 0, "an unchanged list of 300 jobs changes nothing in the DOM", quiet[:5])
    state["changed"] = True
    id7 = "00000000-0000-4000-8000-000000000007"
    page.wait_for_selector(f'#jobs tbody tr[data-id="{id7}"][data-status=succeeded]')
    page.wait_for_timeout(100)
    touched = page.evaluate("() => window.__mutations.splice(0)")
    check(len(touched) > 0 and all(i == id7 for i in touched), "one job changing touches only its row",
          list(dict.fromkeys(touched))[:5])
    t = now_ms()
    polls = state["served"]
    page.wait_for_timeout(1500)
    ms = page.evaluate("() => { window.__observer.disconnect(); return window.__mutations.length; }")
    check(ms == 0 and state["served"] > polls, "later polls of the same list change nothing",
          {"mutations": ms, "polls": state["served"] - polls, "ms": round(now_ms() - t)})
    page.unroute(is_list)
    wait_for(page, lambda: rows.count() == 3, "the real jobs again", 10000)


# ---------------------------------------------------------------- the browser


def submit(page):
    """Clicks Submit; returns the POST /v1/jobs response it caused."""
    with page.expect_response(lambda r: r.url.endswith("/v1/jobs") and r.request.method == "POST") as info:
        page.click("#f-submit")
    return info.value


def json_of(response):
    try:
        return response.json()
    except Exception:  # not JSON: the check that reads it fails and prints it
        return None


def download_buttons(page):
    """{"torchscript": enabled?, ..., "safetensors/config.json": enabled?} of the job page's download buttons."""
    pairs = page.locator("[data-download]").evaluate_all(
        "(bs) => bs.map((b) => [b.dataset.download + (b.dataset.file ? '/' + b.dataset.file : ''), !b.disabled])")
    return dict(pairs)


FAKE_ST = "5afe7e45-0000-4000-8000-000000000001"


def test_safetensors_job(page, api_requests):
    """A job whose result has only a safetensors folder, answered by the test (the daemon's job
    runner may not write one yet): the two folder buttons, file by file, named <id>-<file>."""
    files = {"model.safetensors": bytes(range(256)) * 64, "config.json": b'{"num_labels": 10}'}
    created = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    job = {"id": FAKE_ST, "name": "fake safetensors job", "status": "succeeded", "stage": "saving",
           "progress": 1, "created_at": created, "started_at": created, "finished_at": created,
           "stages": [], "attempts": 1, "error": None, "files_deleted": False,
           "request": {"model": "/m/hf", "targets": [SEED_TARGET], "method": "l1_unstructured",
                       "amount": 0.3, "amount_kind": "fraction", "scope": "global"}}
    result = {"metrics": {}, "sparsity": {"parameters": [], "layers": []}, "timings": {}, "provenance": {},
              "artifacts": [{"format": "safetensors", "path": f"/var/jobs/{FAKE_ST}/safetensors",
                             "bytes": sum(len(b) for b in files.values()),
                             "files": [{"name": n, "sha256": sha256(b), "bytes": len(b)} for n, b in files.items()]}]}
    asked = []

    def ours(url):
        return urlsplit(url).path.startswith("/v1/jobs/" + FAKE_ST)

    def serve(route):
        u = urlsplit(route.request.url)
        if u.path.endswith("/result"):
            return route.fulfill(status=200, content_type="application/json", body=json.dumps(result))
        if u.path.endswith("/checkpoint"):
            q = dict(parse_qsl(u.query))
            asked.append(q)
            data = files.get(q.get("file", "model.safetensors")) if q.get("format") == "safetensors" else None
            if data is None:
                return route.fulfill(status=404, content_type="application/json",
                                     body=json.dumps({"error": {"code": "not_found", "field": "file", "message": "no"}}))
            headers = {"ETag": f'"{sha256(data)}"'}
            if q.get("file") == "model.safetensors":  # config.json comes without one: the page names it itself
                headers["Content-Disposition"] = f'attachment; filename="{FAKE_ST}-model.safetensors"'
            return route.fulfill(status=200, content_type="application/octet-stream", headers=headers, body=data)
        return route.fulfill(status=200, content_type="application/json", body=json.dumps(job))

    page.route(ours, serve)
    try:
        page.goto(page.url.split("#")[0] + "#/jobs/" + FAKE_ST)
        page.wait_for_selector("#job-results:not([hidden])")
        page.wait_for_function("() => document.querySelector('#job-name').textContent === 'fake safetensors job'")
        enabled = download_buttons(page)
        check(enabled == {"torchscript": False, "state_dict": False, "safetensors/model.safetensors": True,
                          "safetensors/config.json": True, "result": True},
              "a safetensors-only job: the two folder buttons and result.json", enabled)
        arts = squash(page.text_content("#job-artifacts tbody"))
        check(all(f"safetensors/{n}" in arts and sha256(b) in arts for n, b in files.items()),
              "the artifacts table lists the folder's files with their sha256", arts)
        for name, data in files.items():
            n = len(asked)
            with page.expect_download(timeout=20000) as info:
                page.click(f'[data-download=safetensors][data-file="{name}"]')
            dl = info.value
            with open(dl.path(), "rb") as f:
                got = f.read()
            check(asked[n:] == [{"format": "safetensors", "file": name}],
                  f"{name}: one checkpoint call with format=safetensors&file={name}", asked[n:])
            check(got == data, f"{name}: the downloaded bytes", (len(got), len(data)))
            check(dl.suggested_filename == f"{FAKE_ST}-{name}", f"{name}: saved as <id>-{name}",
                  dl.suggested_filename)
            page.wait_for_function(
                "(f) => document.querySelector('#job-download-state').dataset.file === f"
                " && /sha256 verified/.test(document.querySelector('#job-download-state').textContent)", arg=name)
            check(True, f"{name}: the page checks its sha256 against the file's entry")
        mine = [r for r in api_requests if r["path"].startswith("/v1/jobs/" + FAKE_ST)]
        check(mine and all(r["auth"] == BEARER for r in mine), "the folder downloads send the bearer token", mine)
    finally:
        page.unroute(ours, serve)


FAKE_LAT = "5afe7e45-0000-4000-8000-000000000002"
FAKE_OLD = "5afe7e45-0000-4000-8000-000000000003"


def structured_fixture(latency):
    """A structured result.json as `prunerd run` writes one (heads 0.5, neurons 0.5, global, on the
    shared model): with a latency block and eval; or without either (a result made before latency
    existed), and with markup in its importance."""
    st = {"importance": "magnitude" if latency else '<img src=x onerror="window.__xss_st=1">magnitude', "seq_len": 32,
          "heads": {"before": 16, "after": 8}, "neurons": {"before": 4096, "after": 2048},
          "parameters": {"dense": 8653578, "pruned": 7077130, "kept": 0.8178270306224777},
          "encoder_macs": {"dense": 102760448, "pruned": 51380224, "kept": 0.5},
          "layers": [{"layer": i, "selected": True, "heads_before": 4, "heads": h, "ffn_before": 1024, "ffn": f,
                      "removed_heads": [] if h else [0, 1, 2, 3]}
                     for i, (h, f) in enumerate(((4, 661), (4, 420), (0, 421), (0, 546)))]}
    res = {"metrics": {}, "sparsity": {"parameters": [], "layers": []}, "timings": {}, "provenance": {},
           "artifacts": [], "structured": st}
    if latency:
        st["latency"] = {
            "device": "cpu", "threads": 2, "runs": 20, "skipped_seq_lens": [512],
            "points": [{"batch": 1, "seq_len": 32, "dense_ms": {"p50": 3.25, "p90": 3.5},
                        "pruned_ms": {"p50": 2.5, "p90": 2.75}, "speedup": 1.3},
                       {"batch": 8, "seq_len": 128, "dense_ms": {"p50": 12.125, "p90": 13.0},
                        "pruned_ms": {"p50": 7.25, "p90": 7.875}, "speedup": 12.125 / 7.25}]}
        res["metrics"] = {"before": {"accuracy": 0.84375, "macro_f1": 0.8433394383394385},
                          "after": {"accuracy": 0.796875, "macro_f1": 0.81504218004218},
                          "after_mask": {"accuracy": 0.7265625, "macro_f1": 0.7011204481792717}}
        st["importance"] = "fisher"
        st["rescale"] = {"layers": 3, "stopped": {"layer": 3, "at": "neurons", "reason": "a factor beyond 10 in size",
                                                  "max_abs_factor": 11.5},
                         "heads": {"min": 0.9, "max": 1.1}, "neurons": {"min": -0.5, "max": 4.25}}
    return res


def structured_cards_hidden(page):
    """{card: hidden?} of the structured job's two cards, and whether the sparsity card shows."""
    return page.evaluate("""() => ({
        structured: document.querySelector('#job-structured').hidden,
        speedup: document.querySelector('#job-speedup').hidden,
        sparsity_card_shown: !document.querySelector('#job-sparsity-card').hidden })""")


def check_structured_page(page, res, what):
    """The job page's structured cards against res (that job's result.json): heads and neurons
    kept per layer (text and bar), totals, one latency row per point (none without latency),
    accuracy and macro F1 before -> after with the change in points."""
    st = res["structured"]
    page.wait_for_selector("#job-structured:not([hidden]) #job-structured-layers tbody tr[data-kind]")
    hidden = structured_cards_hidden(page)
    check(hidden == {"structured": False, "speedup": False, "sparsity_card_shown": False},
          f"{what}: the structured cards show; the sparsity card (nothing masked) does not", hidden)

    rows = page.locator("#job-structured-layers tbody tr[data-kind]").evaluate_all("""(rs) => rs.map((r) => ({
        layer: r.dataset.layer, kind: r.dataset.kind, text: r.querySelector('td.kept').textContent,
        fill: parseFloat(r.querySelector('.kfill').style.width),
        removed: r.querySelector('td.removed')?.textContent ?? null }))""")
    want = []
    for lay in st["layers"]:
        want.append({"layer": str(lay["layer"]), "kind": "heads", "kept": (lay["heads"], lay["heads_before"]),
                     "removed": ", ".join(map(str, lay["removed_heads"])) or "none"})
        want.append({"layer": str(lay["layer"]), "kind": "ffn", "kept": (lay["ffn"], lay["ffn_before"]), "removed": None})
    got = [{"layer": r["layer"], "kind": r["kind"], "kept": kept_of(r["text"]), "removed": r["removed"]} for r in rows]
    check(got == want, f"{what}: per layer, heads and FFN neurons kept / before and the removed heads, as in result.json",
          {"page": got, "result.json": want})
    fills = [round(r["fill"], 2) for r in rows]
    want_fills = [round(w["kept"][0] / w["kept"][1] * 100, 2) if w["kept"][1] else 0 for w in want]
    check(len(fills) == len(want_fills) and all(abs(a - b) < 0.011 for a, b in zip(fills, want_fills)),
          f"{what}: each bar is kept / before", (fills, want_fills))
    heads_rows = [r for r in got if r["kind"] == "heads"]
    check(len(heads_rows) == len(st["layers"]) == 4, f"{what}: one heads row per layer (4)",
          (len(heads_rows), len(st["layers"])))

    totals = {t["key"]: t for t in page.locator("#job-structured-totals tbody tr").evaluate_all(
        "(rs) => rs.map((r) => ({ key: r.dataset.total, cells: Array.from(r.querySelectorAll('td'), (c) => c.textContent) }))")}
    h, n, pa, mc = st["heads"], st["neurons"], st["parameters"], st["encoder_macs"]
    want_totals = {
        "heads": (h["after"], h["before"], js_pct(h["after"] / h["before"])),
        "neurons": (n["after"], n["before"], js_pct(n["after"] / n["before"])),
        "parameters": (pa["pruned"], pa["dense"], js_pct(pa["kept"])),
        "encoder_macs": (mc["pruned"], mc["dense"], js_pct(mc["kept"])),
    }
    got_totals = {}
    for k, t in totals.items():
        c = t["cells"]
        got_totals[k] = (int(re.sub(r"\D", "", c[0]) or -1), int(re.sub(r"\D", "", c[1]) or -1), c[2]) if len(c) == 3 else c
    check(got_totals == want_totals, f"{what}: totals: heads, neurons, parameters and encoder MACs kept, as in result.json",
          {"page": got_totals, "result.json": want_totals})
    summary = page.text_content("#job-structured-summary") or ""
    check(f"importance: {st['importance']}" in summary and f"at {st['seq_len']} tokens" in summary,
          f"{what}: the summary names the importance and the tokens MACs are counted at", summary)
    rs = st.get("rescale")
    if rs:
        want = f"rescaled {rs['layers']} of {len(st['layers'])} layers"
        if rs.get("stopped"):
            want += f" (stopped at layer {rs['stopped']['layer']}'s {rs['stopped']['at']}: {rs['stopped']['reason']})"
        check(want in summary, f"{what}: the summary says how far rescale got", (summary, want))
    else:
        check("rescaled" not in summary, f"{what}: no rescale: the summary says none", summary)

    lat = st.get("latency")
    lrows = page.locator("#job-latency tbody tr[data-batch]").evaluate_all(
        "(rs) => rs.map((r) => Array.from(r.querySelectorAll('td'), (c) => c.textContent))")
    if lat is None:
        check(lrows == [] and page.is_hidden("#job-latency"), f"{what}: no latency in result.json: no latency row", lrows)
        info = page.text_content("#job-latency-info") or ""
        check("not measured" in info, f"{what}: the page says latency was not measured", info)
    else:
        want_rows = [[str(p["batch"]), str(p["seq_len"]), to_fixed(p["dense_ms"]["p50"], 2),
                      to_fixed(p["pruned_ms"]["p50"], 2), to_fixed(p["speedup"], 2) + "\u00d7"] for p in lat["points"]]
        check(lrows == want_rows, f"{what}: one latency row per point: batch, seq_len, p50s and the speed-up",
              {"page": lrows, "result.json": want_rows})
        info = page.text_content("#job-latency-info") or ""
        skipped = lat.get("skipped_seq_lens") or []
        check(str(lat["device"]) in info and (not skipped or "skipped seq_len " + ", ".join(map(str, skipped)) in info),
              f"{what}: the latency line names the device and the skipped seq_lens", (info, lat["device"], skipped))

    m = res.get("metrics") or {}
    acc = {r["key"]: r["cells"] for r in page.locator("#job-accuracy-change tbody tr[data-metric]").evaluate_all(
        "(rs) => rs.map((r) => ({ key: r.dataset.metric, cells: Array.from(r.querySelectorAll('td'), (c) => c.textContent) }))")}
    if m.get("before") and m.get("after"):
        want_acc = {}
        for when, suffix in (("after", ""), ("after_mask", "_after_mask")):
            for k in ("accuracy", "macro_f1"):
                if when not in m:
                    continue
                b, a = m["before"][k], m[when][k]
                want_acc[k + suffix] = [js_pct(b, 2), js_pct(a, 2), signed((a - b) * 100, 2) + " pt"]
        check(acc == want_acc, f"{what}: accuracy and macro F1 before -> after, the change in points",
              {"page": acc, "result.json": want_acc})
    else:
        check(acc == {}, f"{what}: no evaluation: no accuracy rows", acc)


def test_structured_fixtures(page, shots):
    """Two structured results answered by the test (page.route): with latency points and eval,
    and without either; markup in them stays text."""
    created = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    answers = {}
    for jid, latency in ((FAKE_LAT, True), (FAKE_OLD, False)):
        job = {"id": jid, "name": f"fake structured job {'with' if latency else 'without'} latency",
               "status": "succeeded", "stage": "saving", "progress": 1, "created_at": created,
               "started_at": created, "finished_at": created, "stages": [], "attempts": 1, "error": None,
               "files_deleted": False,
               "request": {"model": "/m/bert.pt", "targets": ["bert.encoder.layer.*"], "method": "structured",
                           "structured": {"heads": 0.5, "neurons": 0.5}}}
        answers[jid] = (job, structured_fixture(latency))

    def ours(url):
        return any(urlsplit(url).path.startswith("/v1/jobs/" + j) for j in answers)

    def serve(route):
        path = urlsplit(route.request.url).path
        job, res = answers[path.split("/")[3]]
        route.fulfill(status=200, content_type="application/json",
                      body=json.dumps(res if path.endswith("/result") else job))

    page.route(ours, serve)
    try:
        for jid, (job, res) in answers.items():
            page.goto(page.url.split("#")[0] + "#/jobs/" + jid)
            page.wait_for_function("(n) => document.querySelector('#job-name').textContent === n", arg=job["name"])
            check_structured_page(page, res, job["name"])
            ran = page.evaluate("() => [typeof window.__xss_st, document.querySelectorAll('#job-structured img').length]")
            check(ran == ["undefined", 0], f"{job['name']}: markup in result.structured is shown as text "
                  "([typeof __xss_st, img elements])", ran)
            if jid == FAKE_LAT:
                screenshot_structured(page, os.path.join(shots, "screenshot-structured.png"))
    finally:
        page.unroute(ours, serve)


def screenshot_structured(page, path):
    """The structured job's two cards, from the top of the first to the bottom of the second."""
    box = page.evaluate("""() => { const a = document.querySelector('#job-structured').getBoundingClientRect();
        const b = document.querySelector('#job-speedup').getBoundingClientRect();
        return { x: a.left, y: a.top + window.scrollY, width: Math.max(a.right, b.right) - a.left,
                 height: b.bottom - a.top }; }""")
    page.screenshot(path=path, full_page=True, clip={"x": max(0, box["x"] - 8), "y": max(0, box["y"] - 8),
                                                     "width": box["width"] + 16, "height": box["height"] + 16})


def test_structured_job(page, d, model_path, seed_id, shots):
    """A method structured job run by the daemon: its page against its own result.json (latency
    rows if the daemon measured it, none if not); then a non-structured job's page shows none of it."""
    test_structured_fixtures(page, shots)
    st, job = api_call(d, "POST", "/v1/jobs", {
        "name": "structured: half the heads and neurons", "model": model_path, "targets": ["bert.encoder.layer.*"],
        "method": "structured", "structured": {"heads": 0.5, "neurons": 0.5},
        "eval": dict(EVAL_FILES, limit=64, max_length=32)})
    if check(st == 201, "a method structured job is accepted", (st, job)):
        jid = job["id"]

        def finished():
            _, j = api_call(d, "GET", "/v1/jobs/" + jid)
            return j if isinstance(j, dict) and j.get("status") in ("succeeded", "failed", "cancelled") else None

        done = wait_for(page, finished, "the structured job to finish", 180000, 250)
        _, res = api_call(d, "GET", f"/v1/jobs/{jid}/result")
        if not check(done and done["status"] == "succeeded", "the structured job succeeds",
                     done and (done["status"], done.get("error"))):
            pass
        elif check(isinstance(res, dict) and isinstance(res.get("structured"), dict),
                   "the structured job's result.json has a structured object", res):
            stages = [s["stage"] for s in done.get("stages") or []]
            check(stages == ["loading", "evaluating_before", "importance", "pruning", "evaluating_after", "saving"],
                  "a structured job's stages: importance is its own, between the evaluation and pruning", stages)
            lat = res["structured"].get("latency")
            print("structured job: result.structured.latency is "
                  + (f"present ({len(lat.get('points') or [])} points)" if lat is not None else "absent"), flush=True)
            page.goto(d.base + "/#/jobs/" + jid)
            check_structured_page(page, res, "the daemon's structured job")
            screenshot_structured(page, os.path.join(shots, "screenshot-structured.png"))

    # A non-structured job's page: none of it.
    page.goto(d.base + "/#/jobs/" + seed_id)
    page.wait_for_selector("svg.sparsity rect.bar")
    hidden = structured_cards_hidden(page)
    check(hidden == {"structured": True, "speedup": True, "sparsity_card_shown": True},
          "a non-structured job's page: no structured cards, the sparsity card", hidden)
    shown = page.locator("#job-structured-layers tbody tr, #job-latency tbody tr").evaluate_all(
        "(rs) => rs.filter((r) => r.offsetParent !== null).length")
    check(shown == 0, "a non-structured job's page shows no per-layer or latency row", shown)


RECOVER_STAGES = ["loading", "evaluating_before", "pruning", "evaluating_after", "recovering",
                  "evaluating_recovered", "saving"]
FAKE_REC = "5afe7e45-0000-4000-8000-000000000004"


def write_train_file(folder, rows=96):
    """The first rows lines of the shared train.txt (THUCNews format, not the eval file) in folder,
    a data root of the test's own; returns its path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"train{rows}.txt")
    with open(os.path.join(DATA_DIR, "thucnews", "train.txt"), encoding="utf-8") as f, \
            open(path, "w", encoding="utf-8") as g:
        g.writelines(line for _, line in zip(range(rows), f))
    return path


def recovery_fixture():
    """A recover result the daemon would write after a kill -9 and a resume: 1000 curve points
    (the most it keeps), from step 400 on, no evaluations, no schedule, no distillation, and
    markup in its device."""
    curve = [{"step": 400 + 2 * (i + 1), "loss": round(2.3 * 0.995 ** i + 0.05, 6), "lr": 2e-05} for i in range(1000)]
    ev = {"before": {"accuracy": 0.9, "macro_f1": 0.89}, "after_pruning": {"accuracy": 0.61, "macro_f1": 0.55},
          "after_recovery": {"accuracy": 0.8725, "macro_f1": 0.8675}}
    ev["after"] = ev["after_recovery"]
    rec = {"steps": 2400, "epochs": 3, "steps_per_epoch": 800, "batch_size": 32, "warmup_steps": 144, "lr": 2e-05,
           "weight_decay": 0.01, "resumed_from_step": 400, "steps_this_attempt": 2000, "time_per_step_s": 0.18,
           "device": '<img src=x onerror="window.__xss_rec=1">cuda:0', "distill": None, "curve": curve, "eval": [],
           "schedule": None, "rows": 25600, "train_s": 360.0}
    return {"metrics": ev, "sparsity": {"parameters": [], "layers": []}, "timings": {}, "provenance": {},
            "artifacts": [], "recovery": rec}


def check_recovery_page(page, res, what):
    """The job page's Recovery card against res (that job's result.json): svg#recovery-curve with
    one polyline.loss of as many points as the curve (x growing with the step, the highest loss
    highest), a circle.eval-pt per evaluation, a line.pruning per pruning of a schedule, the
    summary line, and before / after pruning / after recovery side by side."""
    rec, m = res["recovery"], res["metrics"]
    page.wait_for_selector("#job-recovery:not([hidden]) svg#recovery-curve polyline.loss")
    lines = page.locator("svg#recovery-curve polyline").evaluate_all(
        "(ps) => ps.map((p) => ({ cls: p.getAttribute('class'), points: p.getAttribute('points') }))")
    curve = rec["curve"]
    pts = [tuple(map(float, xy.split(","))) for xy in lines[0]["points"].split()] if len(lines) == 1 else []
    check(len(lines) == 1 and lines[0]["cls"] == "loss" and len(pts) == len(curve),
          f"{what}: one polyline, the loss, with a point per curve entry ({len(curve)})",
          [(p["cls"], len((p["points"] or "").split())) for p in lines])
    if pts and len(pts) == len(curve):
        xs = [p[0] for p in pts]
        hi = max(range(len(curve)), key=lambda i: curve[i]["loss"])
        lo = min(range(len(curve)), key=lambda i: curve[i]["loss"])
        check(all(a < b for a, b in zip(xs, xs[1:])) and pts[hi][1] == min(p[1] for p in pts)
              and pts[lo][1] == max(p[1] for p in pts),
              f"{what}: the loss line runs left to right by step, its highest point the highest loss",
              {"x not increasing at": next((i for i, (a, b) in enumerate(zip(xs, xs[1:])) if a >= b), None),
               "highest loss at": hi, "highest point at": min(range(len(pts)), key=lambda i: pts[i][1])})
    marks = page.locator("svg#recovery-curve circle.eval-pt").evaluate_all(
        "(cs) => cs.map((c) => [Number(c.dataset.step), Number(c.dataset.accuracy)])")
    want = [[e["step"], e["accuracy"]] for e in rec["eval"]]
    check(marks == want, f"{what}: a marker per evaluation during training, at its step and accuracy",
          {"page": marks, "result.json": want})
    prunings = page.locator("svg#recovery-curve line.pruning").evaluate_all(
        "(ls) => ls.map((l) => [Number(l.dataset.step), Number(l.dataset.sparsity)])")
    want = [[p["step"], p["sparsity"]] for p in (rec["schedule"] or {}).get("prunings", [])]
    check(prunings == want, f"{what}: a line per pruning of the schedule on the step axis",
          {"page": prunings, "result.json": want})
    resumed = page.locator("svg#recovery-curve line.resumed").evaluate_all(
        "(ls) => ls.map((l) => Number(l.dataset.step))")
    want = [rec["resumed_from_step"]] if rec["resumed_from_step"] > 0 else []
    check(resumed == want, f"{what}: a resumed attempt is marked where it resumed, a fresh one not", (resumed, want))

    summary = page.text_content("#job-recovery-summary") or ""
    d = rec["distill"]
    wants = [f"{rec['steps']} steps", f"a step on {rec['device']}",
             f"distilled from the dense model (temperature {d['temperature']:g}, alpha {d['alpha']:g})" if d
             else "no distillation"]
    if rec["resumed_from_step"] > 0:
        wants.append(f"resumed from step {rec['resumed_from_step']} ({rec['steps_this_attempt']} this attempt)")
    if rec["schedule"]:
        wants.append(f"{len(rec['schedule']['prunings'])} prunings")
    missing = [w for w in wants if w not in summary]
    check(not missing and ("resumed" in summary) == (rec["resumed_from_step"] > 0),
          f"{what}: the summary names the steps, the device, distillation (and a resume)",
          {"summary": summary, "missing": missing})

    rows = {r["key"]: r["cells"] for r in page.locator("#job-recovery-metrics tbody tr[data-metric]").evaluate_all(
        "(rs) => rs.map((r) => ({ key: r.dataset.metric, cells: Object.fromEntries(Array.from("
        "r.querySelectorAll('td[data-when]'), (c) => [c.dataset.when, c.textContent])) }))")}
    want = {k: {w: to_fixed(m[w][k], 3) for w in ("before", "after_pruning", "after_recovery")}
            for k in ("accuracy", "macro_f1")}
    check(rows == want and page.is_visible("#job-recovery-metrics"),
          f"{what}: accuracy and macro F1 before, after pruning and after recovery side by side",
          {"page": rows, "result.json": want})


def test_recovery_fixture(page):
    """A resumed recover result answered by the test: 1000 points, no evaluations, markup as text."""
    created = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    res = recovery_fixture()
    job = {"id": FAKE_REC, "name": "fake recover job, resumed", "status": "succeeded", "stage": "saving",
           "progress": 1, "created_at": created, "started_at": created, "finished_at": created, "stages": [],
           "attempts": 2, "error": None, "files_deleted": False,
           "request": {"model": "/m/bert.pt", "targets": [SEED_TARGET], "method": "l1_unstructured", "amount": 0.5,
                       "recover": {"data": "/d/train.txt", "epochs": 3}}}

    def ours(url):
        return urlsplit(url).path.startswith("/v1/jobs/" + FAKE_REC)

    def serve(route):
        path = urlsplit(route.request.url).path
        route.fulfill(status=200, content_type="application/json",
                      body=json.dumps(res if path.endswith("/result") else job))

    page.route(ours, serve)
    try:
        page.goto(page.url.split("#")[0] + "#/jobs/" + FAKE_REC)
        page.wait_for_function("(n) => document.querySelector('#job-name').textContent === n", arg=job["name"])
        check_recovery_page(page, res, job["name"])
        legend = page.text_content("#job-recovery-legend") or ""
        check("no evaluation during training" in legend, "no evaluations: the legend says so", legend)
        ran = page.evaluate("() => [typeof window.__xss_rec, document.querySelectorAll('#job-recovery img').length]")
        check(ran == ["undefined", 0],
              "markup in result.recovery is shown as text ([typeof __xss_rec, img elements])", ran)
    finally:
        page.unroute(ours, serve)


def test_recovery_job(page, d, model_path, train_path, seed_id, shots):
    """A recover job run by the daemon on the state_dict model: 6 steps with a cubic schedule,
    distillation and an evaluation every 2 steps; its page against its own result.json, and
    its timeline with the two new stages.  Then a job without recover shows no Recovery card."""
    test_recovery_fixture(page)
    st, job = api_call(d, "POST", "/v1/jobs", {
        "name": "recover: L1 50% on query, 6 steps", "model": model_path, "targets": [SEED_TARGET],
        "method": "l1_unstructured", "amount": 0.5, "eval": dict(EVAL_FILES, limit=64, max_length=32),
        "recover": {"data": train_path, "steps": 6, "batch_size": 8, "warmup": 0.2, "eval_every": 2,
                    "shuffle": False, "checkpoint_every": 0, "distill": {"temperature": 2, "alpha": 0.5},
                    "schedule": {"steps": 4, "every": 2}}})
    if check(st == 201, "a job with a recover stage is accepted", (st, job)):
        jid = job["id"]

        def finished():
            _, j = api_call(d, "GET", "/v1/jobs/" + jid)
            return j if isinstance(j, dict) and j.get("status") in ("succeeded", "failed", "cancelled") else None

        done = wait_for(page, finished, "the recover job to finish", 120000, 250)
        _, res = api_call(d, "GET", f"/v1/jobs/{jid}/result")
        if not check(done and done["status"] == "succeeded", "the recover job succeeds",
                     done and (done["status"], done.get("error"))):
            pass
        elif check(isinstance(res, dict) and isinstance(res.get("recovery"), dict)
                   and len(res["recovery"].get("curve") or []) == 6 and len(res["recovery"].get("eval") or []) >= 2
                   and len((res["recovery"].get("schedule") or {}).get("prunings") or []) == 2,
                   "the recover job's result.json has a recovery: 6 curve points, evaluations, 2 prunings",
                   res if not isinstance(res, dict) else res.get("recovery")):
            stages = [s["stage"] for s in done.get("stages") or []]
            check(stages == RECOVER_STAGES, "a recover job's stages: recovering and evaluating_recovered after "
                  "the evaluation after pruning", stages)
            page.goto(d.base + "/#/jobs/" + jid)
            check_recovery_page(page, res, "the daemon's recover job")
            shown = page.locator("#job-timeline tr[data-stage]").evaluate_all("(rs) => rs.map((r) => r.dataset.stage)")
            check(shown == stages, "the recover job's timeline lists its stages", (shown, stages))
            page.locator("#job-recovery").screenshot(path=os.path.join(shots, "screenshot-recovery.png"))

    # A job without recover: no Recovery card.
    page.goto(d.base + "/#/jobs/" + seed_id)
    page.wait_for_selector("svg.sparsity rect.bar")
    check(page.is_hidden("#job-recovery") and page.locator("#recovery-curve").count() == 0,
          "a job without recover shows no Recovery card", page.is_hidden("#job-recovery"))


def run(pw, d, run_state):
    test_static(d)
    st, inspect = api_call(d, "GET", "/v1/models/inspect?path=" + quote(MODEL, safe=""))
    if not check(st == 200, "inspect the shared model through the API", (st, inspect)):
        return
    param_names = [t["name"] for t in inspect["tensors"] if t["kind"] == "parameter"]
    query_weights = [n for n in param_names
                     if re.fullmatch(r"bert\.encoder\.layer\.\d+\.attention\.self\.query\.weight", n)]

    page, page_errors = open_page(pw, run_state, accept_downloads=True)
    api_requests = []  # every request the page makes to the API

    def on_request(r):
        u = urlsplit(r.url)
        if u.path.startswith("/v1/"):
            api_requests.append({"t": now_ms(), "method": r.method, "path": u.path,
                                 "search": "?" + u.query if u.query else "",
                                 "auth": r.headers.get("authorization", "")})

    page.on("request", on_request)

    # 1. No token yet: the page says so.
    page.goto(d.base + "/")
    page.wait_for_selector("#banner:not([hidden])")
    banner = page.text_content("#banner")
    check(bool(re.search("token", banner or "", re.I)), "without a token the page asks for one", banner)
    token_set_at = len(api_requests)

    # 2. Token in the page (sessionStorage), then the empty jobs table.
    page.fill("#token", TOKEN)
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("#jobs-empty:not([hidden])")
    check(page.is_hidden("#banner"), "the banner goes once the token works", page.text_content("#banner"))
    stored = page.evaluate("() => sessionStorage.getItem('prunerd.token')")
    check(stored == TOKEN, "the token is kept in sessionStorage", stored)

    # 3. Submit form: load the parameters, pick a target, bad amount first.
    page.click("nav a[data-nav=submit]")
    page.wait_for_selector("#view-submit:not([hidden])")
    outputs = page.locator("input[name=outputs]").evaluate_all("(bs) => bs.map((b) => [b.value, b.checked])")
    check(outputs == [["torchscript", False], ["state_dict", False], ["safetensors", False]],
          "Outputs offers torchscript, state_dict and safetensors, none ticked", outputs)
    hint = squash(page.text_content('.field[data-field="outputs"]'))
    check("none: the input's own format" in hint, "Outputs says what ticking none means", hint)
    page.fill("#f-model", MODEL)
    page.click("#f-inspect")
    page.wait_for_selector("#f-params-body tr")
    shown = page.locator("#f-params-body tr").count()
    check(shown == len(param_names), "the parameter list shows every parameter", (shown, len(param_names)))
    box = page.locator(f'#f-params-body tr[data-param="{query_weights[0]}"] input[type=checkbox]')
    box.check()
    targets = page.input_value("#f-targets")
    check(targets.strip() == query_weights[0], "ticking a parameter adds it to the targets", targets)
    box.uncheck()
    targets = page.input_value("#f-targets")
    check(targets.strip() == "", "unticking takes it away", targets)
    page.fill("#f-targets", SEED_TARGET)
    page.fill("#f-name", "seed: global L1 30% on query")
    page.select_option("#f-method", "l1_unstructured")
    page.check("input[name=amount_kind][value=fraction]")
    page.select_option("#f-scope", "global")
    page.fill("#f-eval-data", EVAL_FILES["data"])
    page.fill("#f-eval-vocab", EVAL_FILES["vocab"])
    page.fill("#f-eval-classes", EVAL_FILES["classes"])
    # A fraction of 1 goes out as the JSON number 1: amount_kind keeps it a fraction.
    # limit 0 is refused, and the error for a nested field lands next to it.
    # Ticked outputs go out in the form's order; this one is answered by the test, not the daemon.
    page.check("input[name=outputs][value=safetensors]")
    page.check("input[name=outputs][value=state_dict]")

    def is_submit(url):
        return urlsplit(url).path == "/v1/jobs"

    def refuse(route):
        if route.request.method != "POST":
            return route.continue_()
        return route.fulfill(status=400, content_type="application/json", body=json.dumps(
            {"error": {"code": "invalid_field", "field": "outputs", "message": "refused by the test"}}))

    page.route(is_submit, refuse)
    ticked = submit(page)
    page.unroute(is_submit)
    check((ticked.request.post_data_json or {}).get("outputs") == ["state_dict", "safetensors"],
          "ticked outputs are sent as a list", (ticked.request.post_data_json or {}).get("outputs"))
    page.locator('.field[data-field="outputs"] .field-error').wait_for()
    check(True, "an error about outputs lands next to the Outputs field")
    page.uncheck("input[name=outputs][value=safetensors]")
    page.uncheck("input[name=outputs][value=state_dict]")

    page.fill("#f-eval-limit", "0")
    page.fill("#f-amount", "1")
    nested = submit(page)
    sent_nested = nested.request.post_data_json or {}
    check(is_number(sent_nested.get("amount"), 1) and sent_nested.get("amount_kind") == "fraction",
          "amount 1 is sent with amount_kind fraction", sent_nested)
    nested_body = json_of(nested)
    check(nested.status == 400 and error_of(nested_body).get("field") == "eval.limit",
          "limit 0 is refused as eval.limit", (nested.status, nested_body))
    limit_error = page.locator('.field[data-field="eval.limit"] .field-error')
    limit_error.wait_for()
    shown = limit_error.text_content()
    check(shown == error_of(nested_body).get("message"), "the eval.limit error is shown next to the limit field",
          (shown, error_of(nested_body).get("message")))
    page.fill("#f-eval-limit", "200")

    page.fill("#f-amount", "1.5")
    bad = submit(page)
    check(bad.status == 400, "amount 1.5 (fraction) is refused by the API", bad.status)
    bad_body = json_of(bad)
    check(error_of(bad_body).get("field") == "amount", "the API names the amount field", bad_body)
    err = page.locator('.field[data-field="amount"] .field-error')
    err.wait_for()
    err_text = err.text_content()
    check(err_text == error_of(bad_body).get("message"), "the API's message is shown next to the amount field",
          (err_text, error_of(bad_body).get("message")))
    invalid = page.get_attribute("#f-amount", "aria-invalid")
    check(invalid == "true", "the amount input is marked invalid (aria-invalid)", invalid)
    errors = page.locator(".field-error").count()
    check(errors == 1, "only that field shows an error", errors)
    sent_bad = bad.request.post_data_json or {}
    check(is_number(sent_bad.get("amount"), 1.5) and sent_bad.get("amount_kind") == "fraction",
          "the bad request carried amount and amount_kind", sent_bad)

    page.fill("#f-amount", "0.3")
    errors = page.locator(".field-error").count()
    check(errors == 0, "editing the field clears its error", errors)
    good = submit(page)
    check(good.status == 201, "the seed job is accepted", good.status)
    sent = good.request.post_data_json or {}
    check(is_number(sent.get("amount"), 0.3) and sent.get("amount_kind") == "fraction"
          and sent.get("scope") == "global" and sent.get("method") == "l1_unstructured"
          and sent.get("targets") == [SEED_TARGET] and is_number((sent.get("eval") or {}).get("limit"), 200),
          "the form sent the seed request", sent)
    check("outputs" not in sent, "with no output ticked the request has no outputs (the input's own format)",
          sent.get("outputs"))
    seed_id = good.json()["id"]
    page.wait_for_function("(id) => location.hash === '#/jobs/' + id", arg=seed_id)
    check(True, "after submitting, the page shows the new job")

    # Two more jobs through the API: one that fails (with markup in its name), one to cancel.
    eval_small = dict(EVAL_FILES, limit=64)
    xss_name = '<img src=x onerror="window.__xss=1"><b>bad</b> targets'
    st, failing = api_call(d, "POST", "/v1/jobs", {
        "name": xss_name, "model": MODEL, "targets": ["no.such.parameter"], "method": "l1_unstructured",
        "amount": 0.5, "eval": eval_small})
    check(st == 201, "a job that will fail is accepted", (st, failing))
    st, cancel_me = api_call(d, "POST", "/v1/jobs", {
        "name": "to cancel", "model": MODEL, "targets": ["bert.encoder.layer.*.output.dense"],
        "method": "random_unstructured", "amount": 0.5, "options": {"seed": 1}, "eval": dict(EVAL_FILES)})
    check(st == 201, "a job to cancel is accepted", (st, cancel_me))

    # 4. The jobs table follows the seed job to the end.
    page.click("nav a[data-nav=jobs]")
    row = page.locator(f'#jobs tbody tr[data-id="{seed_id}"]')
    row.wait_for()
    seen = []

    def seed_finished():
        st = row.get_attribute("data-status")
        if st not in seen:
            seen.append(st)
        return st if st in ("succeeded", "failed", "cancelled") else None

    final_status = wait_for(page, seed_finished, "the seed row to finish", 180000, 150)
    check(final_status == "succeeded", "the seed row reaches succeeded", (final_status, seen))
    check(len(seen) >= 2, "the row changed status while polling", seen)
    _, seed_job = api_call(d, "GET", "/v1/jobs/" + seed_id)
    row_text = squash(row.inner_text())
    check(all(s in row_text for s in ("100%", "l1_unstructured", "30%", SEED_TARGET)),
          "the row shows progress, method, amount and targets", row_text)
    check(to_fixed(seed_job["accuracy_before"], 3) in row_text and to_fixed(seed_job["macro_f1_after"], 3) in row_text,
          "the row shows accuracy and F1 from the API",
          (row_text, seed_job["accuracy_before"], seed_job["macro_f1_after"]))

    # The failing job: shown as text, never as markup.
    fail_row = page.locator(f'#jobs tbody tr[data-id="{failing["id"]}"]')

    def fail_status():
        try:
            return fail_row.get_attribute("data-status")
        except PlaywrightError:
            return None

    wait_for(page, lambda: fail_status() == "failed", "the failing job to fail", 60000, 200)
    name_shown = fail_row.locator("td.name a").text_content()
    check(name_shown == xss_name, "a name with markup is shown as text", name_shown)
    ran = page.evaluate("() => [typeof window.__xss, document.querySelectorAll('#jobs img, #jobs b').length]")
    check(ran == ["undefined", 0], "no markup from job names runs or renders ([typeof __xss, elements])", ran)

    # Status filter: one list call with ?status=failed.
    page.click('.filters button[data-status=failed]')
    rows = page.locator("#jobs tbody tr")
    wait_for(page, lambda: rows.evaluate_all("(rs) => rs.map((r) => r.dataset.status)") == ["failed"],
             "the failed filter to show only the failed job", 10000)
    lists = [r["search"] for r in api_requests if r["path"] == "/v1/jobs"]
    check(any("status=failed" in s for s in lists), "the filter asks the API with ?status=failed", lists[-5:])
    page.click('.filters button[data-status=""]')
    wait_for(page, lambda: rows.count() == 3, "all three jobs to be listed again", 10000)

    # Cancel the third job from its page.
    page.goto(d.base + "/#/jobs/" + cancel_me["id"])
    page.wait_for_selector("#job-cancel:not([disabled])")
    page.click("#job-cancel")
    page.wait_for_function("() => document.querySelector('#job-status')?.textContent === 'cancelled'",
                           timeout=60000)
    _, cancelled = api_call(d, "GET", "/v1/jobs/" + cancel_me["id"])
    check(cancelled["status"] == "cancelled", "Cancel cancels the job", cancelled["status"])
    buttons = {"delete enabled": page.is_enabled("#job-delete"), "cancel disabled": page.is_disabled("#job-cancel")}
    check(all(buttons.values()), "a cancelled job can be deleted, not cancelled again", buttons)

    # 5. Polling: one list call per tick, none while the tab is hidden.
    page.click("nav a[data-nav=jobs]")
    page.select_option("#poll-interval", "1000")
    page.wait_for_timeout(300)
    t0 = now_ms()
    page.wait_for_timeout(2600)
    in_window = [r for r in api_requests if t0 <= r["t"] < t0 + 2600]
    lists = [r for r in in_window if r["method"] == "GET" and r["path"] == "/v1/jobs"]
    check(2 <= len(lists) <= 4 and len(in_window) == len(lists), "the jobs view polls with one list call per tick",
          [r["path"] + r["search"] for r in in_window])
    poll_state = page.text_content("#poll-state")
    check(bool(re.search(r"every 1 s", poll_state or "")), "the interval is shown", poll_state)
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
        document.dispatchEvent(new Event('visibilitychange'));
      }""")
    check(page.get_attribute("#poll-state", "data-state") == "paused", "hidden tab: polling shown as paused",
          (page.get_attribute("#poll-state", "data-state"), page.text_content("#poll-state")))
    page.wait_for_timeout(300)
    t1 = now_ms()
    page.wait_for_timeout(2200)
    hidden_calls = [r["path"] + r["search"] for r in api_requests if r["t"] >= t1]
    check(len(hidden_calls) == 0, "hidden tab: no API calls", hidden_calls)
    t2 = now_ms()
    page.evaluate("""() => {
        delete document.hidden;
        delete document.visibilityState;
        document.dispatchEvent(new Event('visibilitychange'));
      }""")
    wait_for(page, lambda: any(r["t"] >= t2 and r["path"] == "/v1/jobs" for r in api_requests),
             "a list call once the tab shows again", 3000, 50)
    test_many_jobs(page)
    page.select_option("#poll-interval", "2000")
    page.wait_for_selector(f'#jobs tbody tr[data-id="{cancel_me["id"]}"][data-status=cancelled]')
    os.makedirs(DOCS, exist_ok=True)
    page.screenshot(path=os.path.join(DOCS, "screenshot-jobs.png"))

    # 6. The job page.
    page.click(f'#jobs tbody tr[data-id="{seed_id}"] td.name a')
    page.wait_for_selector("svg.sparsity rect.bar")
    _, result = api_call(d, "GET", f"/v1/jobs/{seed_id}/result")
    bars = page.locator("svg.sparsity rect.bar").evaluate_all(
        "(rs) => rs.map((r) => ({ name: r.dataset.name, w: Number(r.getAttribute('width')) }))")
    tracks = page.locator("svg.sparsity rect.track").evaluate_all(
        "(rs) => rs.map((r) => Number(r.getAttribute('width')))")
    check(len(bars) == len(query_weights) and len(bars) == 4, "one sparsity bar per target parameter (4)",
          (len(bars), len(query_weights)))
    check(sorted(b["name"] for b in bars) == sorted(query_weights), "the bars are the query weights",
          [b["name"] for b in bars])
    sparsity = {p["name"]: p["sparsity"] for p in result["sparsity"]["parameters"]}
    ratios = [b["w"] / tracks[i] if i < len(tracks) and tracks[i] else None for i, b in enumerate(bars)]
    check(all(r is not None and b["name"] in sparsity and abs(r - sparsity[b["name"]]) < 0.005
              for r, b in zip(ratios, bars)),
          "bar lengths are the sparsities from result.json",
          {"bars": ratios, "result.json": [sparsity.get(b["name"]) for b in bars]})
    layer_bars = page.locator("svg.layer-sparsity rect.bar").count()
    check(layer_bars == len(result["sparsity"]["layers"]), "one bar per layer",
          (layer_bars, len(result["sparsity"]["layers"])))
    stages = page.locator("#job-timeline tr[data-stage]").evaluate_all("(rs) => rs.map((r) => r.dataset.stage)")
    want_stages = [s["stage"] for s in seed_job["stages"]]
    check(stages == want_stages, "the timeline lists the stages", (stages, want_stages))
    acc_row = squash(page.locator("#job-metrics tr[data-metric=accuracy]").inner_text())
    before, after = result["metrics"]["before"], result["metrics"]["after"]
    check(to_fixed(before["accuracy"], 3) in acc_row and to_fixed(after["accuracy"], 3) in acc_row,
          "before/after accuracy side by side", (acc_row, before["accuracy"], after["accuracy"]))
    n_classes = len(before["per_class"])
    class_rows = page.locator("#job-classes tbody tr").count()
    check(class_rows == n_classes, "one per-class F1 row per class", (class_rows, n_classes))
    cells = page.locator("#job-confusion td.cell").evaluate_all(
        "(cs) => cs.map((c) => [Number(c.dataset.row), Number(c.dataset.col), Number(c.dataset.diff)])")
    cb, ca = before["confusion"], after["confusion"]

    def diff_ok(cell):
        i, j, diff = cell
        try:
            return diff == ca[int(i)][int(j)] - cb[int(i)][int(j)]
        except (IndexError, TypeError, ValueError):
            return False

    wrong = [c for c in cells if not diff_ok(c)]
    check(len(cells) == n_classes * n_classes and not wrong, "the heat map is after - before of the confusion matrices",
          {"cells": len(cells), "want": n_classes * n_classes, "wrong": wrong[:5]})
    check(page.is_hidden("#job-error"), "no error box on a job that succeeded", page.text_content("#job-error"))
    # The seed job is TorchScript in, no outputs asked: torchscript and state_dict, no safetensors.
    enabled = download_buttons(page)
    check(enabled == {"torchscript": True, "state_dict": True, "safetensors/model.safetensors": False,
                      "safetensors/config.json": False, "result": True},
          "the seed job's buttons: its two checkpoints and result.json, no safetensors",
          (enabled, [a["format"] for a in result["artifacts"]]))
    page.screenshot(path=os.path.join(DOCS, "screenshot-job.png"), full_page=True)

    # 7. Downloads through fetch + blob, with the token.
    art = next(a for a in result["artifacts"] if a["format"] == "torchscript")
    with page.expect_download(timeout=60000) as info:
        page.click("[data-download=torchscript]")
    dl = info.value
    with open(dl.path(), "rb") as f:
        data = f.read()
    _, head, _ = http(d, "HEAD", f"/v1/jobs/{seed_id}/checkpoint?format=torchscript", token=TOKEN)
    check(len(data) == art["bytes"] and len(data) == header_int(head, "Content-Length"),
          "the checkpoint has the bytes the API announces", (len(data), art["bytes"], head.get("Content-Length")))
    check(sha256(data) == art["sha256"] and head.get("ETag") == f'"{art["sha256"]}"',
          "the checkpoint sha256 matches result.json and the ETag", (sha256(data), art["sha256"], head.get("ETag")))
    check(dl.suggested_filename.startswith(seed_id), "the file is named after Content-Disposition",
          dl.suggested_filename)
    page.wait_for_function("() => /sha256 verified/.test(document.querySelector('#job-download-state').textContent)")
    check(True, "the page checks the sha256 itself")
    with page.expect_download() as info:
        page.click("[data-download=result]")
    with open(info.value.path(), encoding="utf-8") as f:
        res_text = f.read()
    check(json.dumps(json.loads(res_text)) == json.dumps(result), "result.json downloads as the API serves it",
          res_text[:300])
    dl_reqs = [r for r in api_requests if r["path"].endswith("/checkpoint") or r["path"].endswith("/result")]
    check(len(dl_reqs) >= 2 and all(r["auth"] == BEARER for r in dl_reqs), "downloads send the bearer token",
          dl_reqs)

    test_safetensors_job(page, api_requests)
    test_structured_job(page, d, run_state["structured_model"], seed_id, DOCS)
    test_recovery_job(page, d, run_state["structured_model"], run_state["recover_train"], seed_id, DOCS)

    # 8. The failed job's page shows the error; Delete removes it.
    page.goto(d.base + "/#/jobs/" + failing["id"])
    page.wait_for_selector("#job-error:not([hidden])")
    _, fail_job = api_call(d, "GET", "/v1/jobs/" + failing["id"])
    shown = page.text_content("#job-error")
    check(fail_job["error"] in (shown or ""), "the job page shows the error", (shown, fail_job["error"]))
    enabled = download_buttons(page)
    check(not any(enabled.values()), "no download for a failed job (buttons disabled)", enabled)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#job-delete")
    page.wait_for_function("() => location.hash === '#/jobs'")
    st, _ = api_call(d, "GET", "/v1/jobs/" + failing["id"])
    check(st == 404, "Delete deletes the job (then GET is 404)", st)

    # Every API call after the token was set carried it.
    after = api_requests[token_set_at:]
    without = [r for r in after if r["auth"] != BEARER]
    check(len(after) > 10 and not without, "every API call sends Authorization: Bearer",
          {"calls": len(after), "without the token": without[:5]})
    check(len(page_errors) == 0, "no script errors in the page", page_errors)


def open_page(pw, run_state, **options):
    """Chromium (a persistent profile in run_state["user_dir"], its context in
    run_state["context"], for drive to close) and its first page; returns the
    page and the list its script errors and console errors go to."""
    run_state["user_dir"] = tempfile.mkdtemp(prefix="prunerd-chromium-")
    context = pw.chromium.launch_persistent_context(
        run_state["user_dir"], executable_path=CHROMIUM, headless=True,
        viewport={"width": 1440, "height": 900}, args=CHROMIUM_ARGS, **options)
    run_state["context"] = context
    page = context.pages[0] if context.pages else context.new_page()
    page.set_default_timeout(20000)
    page_errors = []
    page.on("pageerror", lambda e: page_errors.append(e.message))
    page.on("console", lambda m: page_errors.append(m.text)
            if m.type == "error" and "Failed to load resource" not in m.text else None)
    return page, page_errors


def drive(d, tmp, run, run_state):
    """Runs run(pw, d, run_state) in Playwright against the daemon d (its
    failures checked, not raised), then stops d and removes tmp and the
    browser profile run_state["user_dir"]."""
    try:
        if d.port is None:
            check(False, "prunerd did not start listening", d.log()[-2000:])
        else:
            with sync_playwright() as pw:
                try:
                    run(pw, d, run_state)
                except Exception:
                    check(False, "unexpected exception: " + traceback.format_exc())
                if run_state["context"]:
                    try:
                        run_state["context"].close()
                    except Exception:
                        pass
    except Exception:  # Playwright's driver failed to start or stop
        check(False, "unexpected exception: " + traceback.format_exc())
    finally:
        d.stop()
        if td.failed:
            print("--- daemon log (tail) ---\n" + d.log()[-3000:])
        shutil.rmtree(tmp, ignore_errors=True)
        if run_state["user_dir"]:
            shutil.rmtree(run_state["user_dir"], ignore_errors=True)


def main():
    # Preconditions: fail loudly, never skip.
    if not BIN or not os.path.exists(BIN):
        finish(f"PRUNERD_BIN is not a prunerd binary: {BIN!r} (run through meson test)")
    for f in [MODEL_PATH] + list(EVAL_FILES.values()):
        if not os.path.exists(f):
            finish(f"shared data missing: {f} (PRUNERD_SHARED={SHARED!r})")
    if not os.path.exists(MODEL_CONFIG):
        finish(f"shared data missing: {MODEL_CONFIG} (PRUNERD_SHARED={SHARED!r})")
    if not os.path.exists(CHROMIUM):
        finish(f"{CHROMIUM} is missing: install Debian's chromium (tools/deps.sh)")
    if PLAYWRIGHT_MISSING:
        finish(f"cannot load Playwright for Python ({PLAYWRIGHT_MISSING}): run this with "
               f"{ROOT}/.venv/bin/python, the venv that has it (this is {sys.executable})")

    tmp = os.path.realpath(tempfile.mkdtemp(prefix="prunerd-browser-"))
    # A second model root: the shared model as a state_dict + config.json, for method structured.
    own_models = os.path.join(tmp, "models")
    try:
        structured_model = write_state_dict_model(os.path.join(own_models, "structured"))
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        finish("cannot write the shared model as a state_dict (torch in this Python?): " + traceback.format_exc())
    # A data root of its own: a small training file for the recover job.
    own_data = os.path.join(tmp, "data")
    recover_train = write_train_file(own_data)
    d = Daemon(tmp, own_models, own_data)
    run_state = {"context": None, "user_dir": None, "structured_model": structured_model,
                 "recover_train": recover_train}
    drive(d, tmp, run, run_state)
    finish()

if __name__ == "__main__":
    main()
