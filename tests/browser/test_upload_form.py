#!/usr/bin/env python3
"""test_upload_form.py - headless Chromium uploads a model and its data through the submit form.

Starts `prunerd serve` with an EMPTY model root and an EMPTY data root (so
nothing a job names can come from anywhere but the uploads), an upload limit
of 40M and three tokens (browser: admin, for the test's own API calls;
alice: submit; viewer: read), enters alice's token and, on the submit form:

1. uploads the shared TorchScript model with the model field's Upload…
   (set_input_files; the page PUTs the File to /v1/uploads/NAME with the
   bearer token and Content-Type application/octet-stream), with the network
   throttled first to see the progress bar move and Cancel cut the upload off
   (then nothing of that name is listed), then at full speed: the field
   gets the path the daemon answered ("alice/NAME") and the bytes and sha256
   are the file's;
2. uploads 200 lines of the dev titles under a name with a space and CJK in
   it (sent as dev_200_.txt), the vocab and class.txt the same way; Load
   parameters inspects the uploaded model; the job submitted from the form
   names the four paths and succeeds with before and after metrics;
3. a different class.txt under the same name: 409 conflict shown next to the
   classes field with the daemon's code, field and message, the field keeps
   its path; "Replace it" sends ?replace=1 and the upload then holds the new
   bytes; the old file again: 409, and "Use the one there" fills the field
   without a PUT; the same bytes again: 200 Idempotent-Replayed, said so;
4. a torch.save state_dict with its config.json uploaded through the
   model_config field: Load parameters sends model_config and lists the
   parameters; a .tgz of a save_pretrained folder with "unpack" ticked is
   sent with ?unpack=tar under the folder's name and inspects as a model;
5. a file over the upload limit: 413 payload_too_large next to its field;
6. "Your uploads" lists what GET /v1/uploads lists, in its order, offers the
   paths to the path fields (a datalist), and Delete removes one;
7. the read token: its list is empty, and its upload is refused 403
   forbidden next to the field, which stays empty.

Needs PRUNERD_BIN (a binary built from this tree's web/), PRUNERD_SHARED,
/usr/bin/chromium (or PRUNERD_CHROMIUM), Playwright for Python and torch
(the repository's .venv).  Missing any of them is a failure, never a skip.
Every failure prints what it expected and what it got; the last line is
"N passed, N failed".  Pauses are page.wait_for_timeout, never time.sleep
(Playwright hands events to Python only while Python waits on it).
"""
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
import traceback
from urllib.parse import parse_qs, quote, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_dashboard as dash  # noqa: E402  (the daemon's stop, the API helpers, Chromium's arguments)
from test_dashboard import check, error_of, hash_token, squash, wait_for  # noqa: E402
from test_daemon import sha256_file  # noqa: E402

td = dash.td  # the tally the Python tests share

ALICE = "alice-upload-secret"  # submit
VIEWER = "viewer-upload-secret"  # read
UPLOAD_LIMIT = 40 << 20
TERMINAL = ("succeeded", "failed", "cancelled")
SEED_TARGET = dash.SEED_TARGET


class Daemon(dash.Daemon):
    """prunerd serve as test_dashboard's, but with empty roots, an upload limit and three tokens."""

    def __init__(self, tmp):  # not super().__init__(): that starts test_dashboard's daemon
        for d in ("models", "data"):
            os.makedirs(os.path.join(tmp, d))
        self.start(tmp, ["--model-root", os.path.join(tmp, "models"), "--data-root",
                         os.path.join(tmp, "data"), "--upload-limit", str(UPLOAD_LIMIT)],
                   f"browser = admin:{hash_token(dash.TOKEN)}\n"
                   f"alice = submit:{hash_token(ALICE)}\n"
                   f"viewer = read:{hash_token(VIEWER)}\n")


def api_as(d, token, method, path):
    """(status, JSON body or None) of a call with the given token."""
    st, _, raw = dash.http(d, method, path, token=token)
    try:
        return st, json.loads(raw) if raw else None
    except ValueError:
        return st, raw.decode("utf-8", errors="replace")


def is_put(r):
    return r.request.method == "PUT" and urlsplit(r.url).path.startswith("/v1/uploads/")


def state_sel(target):
    return f'.upload-state[data-upload-state="{target}"]'


def settled(page, target):
    """Waits for the upload into #target to end; returns its state (done, failed, cancelled)."""
    page.wait_for_selector(state_sel(target) + ":not([data-state=uploading])")
    return page.get_attribute(state_sel(target), "data-state")


# Playwright cannot read the body of the page's upload responses (Chromium has evicted it by
# then: "Request content was evicted from inspector cache"), so the page keeps each XHR's
# answer for the test.
XHR_SPY = """(() => {
  const send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (body) {
    this.addEventListener('loadend', () => {
      (window.__xhr = window.__xhr || []).push({ status: this.status, text: this.responseText });
    });
    return send.call(this, body);
  };
})();"""


def xhr_count(page):
    return page.evaluate("() => (window.__xhr || []).length")


def put_by(page, act, target):
    """Runs act() (which makes the page upload into #target); returns (the PUT's response, the
    state the upload ended in, its JSON body or None)."""
    n = xhr_count(page)
    with page.expect_response(is_put, timeout=60000) as info:
        act()
    resp = info.value
    state = settled(page, target)
    wait_for(page, lambda: xhr_count(page) > n, "the page to get the upload's answer")
    entry = page.evaluate("(n) => (window.__xhr || [])[n]", n) or {}
    try:
        body = json.loads(entry.get("text") or "null")
    except ValueError:
        body = entry.get("text")
    check(entry.get("status") == resp.status, "the page's XHR saw the response's status", (entry, resp.status))
    return resp, state, body


def upload(page, file_input, target, files):
    """Chooses files in the file input; returns (the PUT's response, the upload's state, its body)."""
    return put_by(page, lambda: page.set_input_files("#" + file_input, files), target)


def field_error(page, field):
    loc = page.locator(f'.field[data-field="{field}"] .upload-error')
    return loc if loc.count() else None


def check_put(resp, name, token, what, query=None):
    """The PUT went to /v1/uploads/NAME?query with the token and application/octet-stream."""
    u = urlsplit(resp.url)
    h = resp.request.all_headers()
    check(u.path == "/v1/uploads/" + quote(name), f"{what}: PUT /v1/uploads/{name}", resp.url)
    check(parse_qs(u.query) == {k: [v] for k, v in (query or {}).items()}, f"{what}: the query is {query}", u.query)
    check(h.get("authorization") == "Bearer " + token, f"{what}: the PUT sends the bearer token",
          h.get("authorization"))
    check(h.get("content-type") == "application/octet-stream", f"{what}: Content-Type application/octet-stream",
          h.get("content-type"))


def check_uploaded(page, got, target, path, name, token, what, query=None, status=201):
    """A successful upload of path (got: put_by's answer): the answer, the field's value, the state line."""
    resp, state, body = got
    check_put(resp, name, token, what, query)
    body = body if isinstance(body, dict) else {}
    ok = check(resp.status == status, f"{what}: {status}", (resp.status, body))
    if os.path.isfile(path) and not (query or {}).get("unpack"):
        ok = check(body.get("bytes") == os.path.getsize(path) and body.get("sha256") == sha256_file(path)
                   and body.get("kind") == "file", f"{what}: the daemon got the file's bytes", body) and ok
    ok = check(body.get("path") == "alice/" + name, f"{what}: a submit token's path is alice/{name}",
               body.get("path")) and ok
    ok = check(body.get("name") == name and body.get("owner") == "alice"
               and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", str(body.get("created"))),
               f"{what}: the upload object names it, its owner and when (ISO 8601 UTC)", body) and ok
    if status == 201:
        ok = check(resp.headers.get("location") == "/v1/uploads/" + name, f"{what}: Location /v1/uploads/{name}",
                   resp.headers.get("location")) and ok
    value = page.input_value("#" + target)
    ok = check(state == "done" and value == body.get("path"), f"{what}: the field gets the path the daemon answered",
               (state, value, body.get("path"))) and ok
    return body if ok else None


# ---------------------------------------------------------------- the steps


def test_progress_and_cancel(page, cdp):
    """Throttled to 4 MB/s, the 35 MB model takes a while: the bar moves, and Cancel cuts it off."""
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                  "uploadThroughput": 4 << 20})
    try:
        page.set_input_files("#u-model", dash.MODEL_PATH)
        bar = page.locator(state_sel("f-model") + " [role=progressbar]")
        def moving():
            v = bar.get_attribute("aria-valuenow")
            return v if v and 0 < int(v) < 100 else None

        seen = wait_for(page, moving, "the progress bar to move while the model uploads", timeout_ms=15000)
        text = squash(page.text_content(state_sel("f-model")))
        check(seen is not None and re.search(r"uploading thucnews-bert-l4-h256\.pt: \d+% of 33\.\d MiB", text),
              "the state line says how far the upload is", (seen, text))
        page.click(state_sel("f-model") + " button:has-text('Cancel')")
        st = settled(page, "f-model")
        check(st == "cancelled", "Cancel stops the upload", (st, page.text_content(state_sel("f-model"))))
        check(page.input_value("#f-model") == "", "a cancelled upload leaves the field as it was",
              page.input_value("#f-model"))
    finally:
        cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                      "uploadThroughput": -1})


def test_conflict(page, d, files):
    """Same name, other content: 409 next to the field; Replace it; Use the one there; a replay."""
    before = page.input_value("#f-eval-classes")
    resp, st, body = upload(page, "u-eval-classes", "f-eval-classes", files["other_classes"])
    check_put(resp, "class.txt", ALICE, "class.txt again, other content")
    e = error_of(body)
    check(resp.status == 409 and e.get("code") == "conflict" and e.get("field") == "name",
          "other content under the same name is 409 conflict, field name", (resp.status, body))
    err = field_error(page, "eval.classes")
    text = squash(err.text_content()) if err else ""
    check(st == "failed" and err is not None and "409" in text and "conflict" in text and "name" in text
          and e.get("message", "?") in text,
          "the conflict is shown next to the classes field with the status, code, field and message",
          (st, text, e))
    attrs = err and (err.get_attribute("data-status"), err.get_attribute("data-upload-field"))
    check(attrs == ("409", "name"), "the error element carries the status and the daemon's field", attrs)
    check(page.input_value("#f-eval-classes") == before, "after a conflict the field keeps its path",
          page.input_value("#f-eval-classes"))
    check(page.locator(".field-error").count() == 1, "only that field shows an error",
          page.locator(".field-error").all_text_contents())

    buttons = '.field[data-field="eval.classes"] .upload-error button'
    got = put_by(page, lambda: page.click(buttons + "[data-action=replace]"), "f-eval-classes")
    body = check_uploaded(page, got, "f-eval-classes", files["other_classes"], "class.txt", ALICE,
                          "Replace it", query={"replace": "1"})
    check(page.locator(".field-error").count() == 0, "a replaced upload takes the error away",
          page.locator(".field-error").all_text_contents())
    check("replaced class.txt" in squash(page.text_content(state_sel("f-eval-classes"))),
          "the state line says it replaced", page.text_content(state_sel("f-eval-classes")))
    st2, got = api_as(d, ALICE, "GET", "/v1/uploads/class.txt")
    check(st2 == 200 and (got or {}).get("sha256") == sha256_file(files["other_classes"]),
          "after Replace it the upload holds the new bytes", (st2, got))

    # The first class.txt again (now the other one): 409, and take the one there instead.
    page.fill("#f-eval-classes", "")
    resp, st, _ = upload(page, "u-eval-classes", "f-eval-classes", files["classes"])
    check(resp.status == 409 and st == "failed", "the first class.txt again is a conflict now", resp.status)
    puts = []

    def on_put(r):
        if r.method == "PUT":
            puts.append(r.url)

    page.on("request", on_put)
    with page.expect_response(lambda r: r.request.method == "GET"
                              and urlsplit(r.url).path == "/v1/uploads/class.txt") as info:
        page.click(buttons + "[data-action=use-existing]")
    page.wait_for_function("() => document.querySelector('#f-eval-classes').value !== ''")
    page.remove_listener("request", on_put)
    check(info.value.status == 200 and page.input_value("#f-eval-classes") == "alice/class.txt" and not puts,
          "Use the one there fills the field with the upload's path, without uploading",
          (info.value.status, page.input_value("#f-eval-classes"), puts))
    check(page.locator(".field-error").count() == 0, "Use the one there takes the error away",
          page.locator(".field-error").all_text_contents())

    # The same bytes again: 200, Idempotent-Replayed, and the page says so.
    got = upload(page, "u-eval-classes", "f-eval-classes", files["other_classes"])
    resp = got[0]
    check_uploaded(page, got, "f-eval-classes", files["other_classes"], "class.txt", ALICE,
                   "the same bytes again", status=200)
    check(resp.headers.get("idempotent-replayed") == "true", "a replay says Idempotent-Replayed: true",
          resp.headers.get("idempotent-replayed"))
    check("already uploaded: class.txt" in squash(page.text_content(state_sel("f-eval-classes"))),
          "the state line says it was there already", page.text_content(state_sel("f-eval-classes")))
    # Back to the real classes for anything after.
    return body


def inspect_click(page):
    with page.expect_response(lambda r: urlsplit(r.url).path == "/v1/models/inspect") as info:
        page.click("#f-inspect")
    return info.value


def test_state_dict_and_folder(page, files):
    """A state_dict needs its config.json (model_config); a .tgz of a folder is unpacked."""
    got = upload(page, "u-model", "f-model", files["state_dict"])
    check_uploaded(page, got, "f-model", files["state_dict"], "bert.pt", ALICE, "the state_dict")
    page.fill("#f-model-config", "")
    got = upload(page, "u-model-config", "f-model-config", dash.MODEL_CONFIG)
    check_uploaded(page, got, "f-model-config", dash.MODEL_CONFIG, os.path.basename(dash.MODEL_CONFIG),
                   ALICE, "the config.json")
    r = inspect_click(page)
    q = parse_qs(urlsplit(r.url).query)
    config = "alice/" + os.path.basename(dash.MODEL_CONFIG)
    check(q.get("path") == ["alice/bert.pt"] and q.get("model_config") == [config],
          "Load parameters sends the model and its model_config", q)
    check(r.status == 200, "the uploaded state_dict with its uploaded config inspects", (r.status, dash.json_of(r)))
    page.wait_for_selector("#f-params-body tr")
    n = page.locator("#f-params-body tr").count()
    check(n > 20, "the state_dict's parameters are listed", n)

    page.fill("#f-model-config", "")
    page.check("#u-model-unpack")
    got = upload(page, "u-model", "f-model", files["folder_tgz"])
    body = check_uploaded(page, got, "f-model", files["folder_tgz"], "hf-model", ALICE,
                          "a .tgz with unpack ticked", query={"unpack": "tar"}) or {}
    check(body.get("kind") == "folder" and body.get("files") == 2
          and body.get("archive_bytes") == os.path.getsize(files["folder_tgz"]),
          "it is unpacked into a folder of two files", body)
    text = squash(page.text_content(state_sel("f-model")))
    check("uploaded hf-model (2 files," in text, "the state line counts the folder's files", text)
    page.uncheck("#u-model-unpack")
    r = inspect_click(page)
    check(r.status == 200 and "model_config" not in parse_qs(urlsplit(r.url).query),
          "the unpacked folder inspects as a model (its own config.json)", (r.status, dash.json_of(r)))


def test_too_large(page, files):
    resp, st, body = upload(page, "u-eval-vocab", "f-eval-vocab", files["too_large"])
    e = error_of(body)
    check(resp.status == 413 and e.get("code") == "payload_too_large" and e.get("field") == "body",
          "a file over upload_limit is 413 payload_too_large, field body", (resp.status, body))
    err = field_error(page, "eval.vocab")
    text = squash(err.text_content()) if err else ""
    check(st == "failed" and "413" in text and "payload_too_large" in text and e.get("message", "?") in text,
          "the 413 is shown next to the vocab field with the daemon's message", (st, text))


def test_list(page, d):
    """Your uploads: the API's list in its order, the datalist, Delete."""
    st, listed = api_as(d, ALICE, "GET", "/v1/uploads")
    want = [u["name"] for u in (listed or {}).get("uploads", [])]
    page.click("#uploads summary")
    wait_for(page, lambda: page.locator("#uploads-table tbody tr").count() == len(want),
             "the uploads table to list every upload")
    rows = page.locator("#uploads-table tbody tr").evaluate_all("(rs) => rs.map((r) => r.dataset.upload)")
    check(st == 200 and rows == want and len(want) >= 5, "Your uploads lists GET /v1/uploads, newest first",
          (rows, want))
    count = page.text_content("#uploads-count")
    check(count == f"({len(want)})", "the summary counts them", count)
    opts = page.locator("#upload-paths option").evaluate_all("(os) => os.map((o) => o.value)")
    check(opts == [u["path"] for u in listed["uploads"]], "the path fields are offered the upload paths", opts)
    lists = page.locator("#f-model, #f-model-config, #f-eval-data, #f-eval-vocab, #f-eval-classes").evaluate_all(
        "(is) => is.map((i) => i.getAttribute('list'))")
    check(lists == ["upload-paths"] * 5, "the five path fields use the datalist", lists)

    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_response(lambda r: r.request.method == "DELETE") as info:
        page.click('#uploads-table tr[data-upload="bert.pt"] button')
    check(info.value.status == 204 and urlsplit(info.value.url).path == "/v1/uploads/bert.pt",
          "Delete sends DELETE /v1/uploads/NAME", (info.value.status, info.value.url))
    wait_for(page, lambda: page.locator('#uploads-table tr[data-upload="bert.pt"]').count() == 0,
             "the deleted upload to leave the table")
    st, _ = api_as(d, ALICE, "GET", "/v1/uploads/bert.pt")
    check(st == 404, "after Delete the upload is gone", st)


def test_read_token(page, d):
    # Switched on the submit page itself: the list follows the token.
    page.fill("#token", VIEWER)
    page.click("#token-form button[type=submit]")
    wait_for(page, lambda: page.text_content("#uploads-count") == "(0)",
             "the read token's uploads (none) to be listed")
    check(page.locator("#uploads-table tbody tr").count() == 0, "a read token sees none of alice's uploads",
          page.locator("#uploads-table tbody tr").count())
    resp, st, body = upload(page, "u-model-config", "f-model-config", dash.MODEL_CONFIG)
    check_put(resp, os.path.basename(dash.MODEL_CONFIG), VIEWER, "the read token's upload")
    e = error_of(body)
    check(resp.status == 403 and e.get("code") == "forbidden", "a read token's upload is 403 forbidden",
          (resp.status, body))
    err = field_error(page, "model_config")
    text = squash(err.text_content()) if err else ""
    check(st == "failed" and err is not None and "403" in text and "forbidden" in text
          and e.get("message", "?") in text,
          "the 403 is shown next to the model config field with the daemon's message", (st, text))
    check(page.input_value("#f-model-config") == "", "the refused upload leaves the field empty",
          page.input_value("#f-model-config"))
    st2, listed = api_as(d, dash.TOKEN, "GET", "/v1/uploads?owner=viewer")
    check(st2 == 200 and listed.get("uploads") == [], "nothing is stored for the read token", (st2, listed))


def make_files(tmp):
    """The files the browser uploads, under tmp/files."""
    import torch  # only here

    out = os.path.join(tmp, "files")
    os.makedirs(os.path.join(out, "other"))
    files = {"model": dash.MODEL_PATH, "vocab": dash.EVAL_FILES["vocab"], "classes": dash.EVAL_FILES["classes"]}
    files["data"] = os.path.join(out, "dev 200 条.txt")
    with open(dash.EVAL_FILES["data"], encoding="utf-8") as src, open(files["data"], "w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i == 200:
                break
            dst.write(line)
    files["other_classes"] = os.path.join(out, "other", "class.txt")
    with open(dash.EVAL_FILES["classes"], encoding="utf-8") as src:
        lines = src.read().splitlines()
    with open(files["other_classes"], "w", encoding="utf-8") as dst:
        dst.write("\n".join(reversed(lines)) + "\n")
    state = torch.jit.load(dash.MODEL_PATH).state_dict()
    os.makedirs(os.path.join(out, "sd"))
    files["state_dict"] = os.path.join(out, "sd", "bert.pt")
    torch.save(state, files["state_dict"])
    hf = os.path.join(out, "hf")
    os.makedirs(hf)
    torch.save(state, os.path.join(hf, "pytorch_model.bin"))
    with open(dash.MODEL_CONFIG, "rb") as src, open(os.path.join(hf, "config.json"), "wb") as dst:
        dst.write(src.read())
    files["folder_tgz"] = os.path.join(out, "hf-model.tgz")
    with tarfile.open(files["folder_tgz"], "w:gz") as t:
        t.add(hf, arcname="hf")
    files["too_large"] = os.path.join(out, "too-large.bin")
    with open(files["too_large"], "wb") as f:
        f.truncate(UPLOAD_LIMIT + (8 << 20))  # sparse: under 64 MiB, so the daemon reads it before the 413
    return files


def run(pw, d, run_state):
    files = run_state["files"]
    page, page_errors = dash.open_page(pw, run_state)
    api_requests = []

    def on_request(r):
        path = urlsplit(r.url).path
        if path.startswith("/v1/"):
            api_requests.append((r.method, path, r.headers.get("authorization", "")))

    page.on("request", on_request)

    context = run_state["context"]
    context.add_init_script(XHR_SPY)
    page.goto(d.base + "/")
    page.wait_for_selector("#banner:not([hidden])")  # no token yet: the page asks for one
    first_with_token = len(api_requests)
    page.fill("#token", ALICE)
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("#jobs-empty:not([hidden])")
    page.click("nav a[data-nav=submit]")
    page.wait_for_selector("#view-submit:not([hidden])")
    wait_for(page, lambda: page.text_content("#uploads-count") == "(0)", "Your uploads (0) on an empty store")
    uploads = page.locator("#submit-form input[type=file][data-upload-for]").evaluate_all(
        "(is) => is.map((i) => [i.id, i.dataset.uploadFor, i.closest('[data-field]').dataset.field])")
    check(uploads == [["u-model", "f-model", "model"], ["u-model-config", "f-model-config", "model_config"],
                      ["u-eval-data", "f-eval-data", "eval.data"], ["u-eval-vocab", "f-eval-vocab", "eval.vocab"],
                      ["u-eval-classes", "f-eval-classes", "eval.classes"]],
          "an Upload… per path field: model, model_config and the three eval files", uploads)

    # 1. The model: throttled and cancelled first, then whole.
    cdp = context.new_cdp_session(page)
    test_progress_and_cancel(page, cdp)
    page.wait_for_timeout(500)  # the daemon notices the cut connection
    st, got = api_as(d, ALICE, "GET", "/v1/uploads/thucnews-bert-l4-h256.pt")
    check(st == 404, "a cancelled upload leaves nothing listed", (st, got))
    got = upload(page, "u-model", "f-model", files["model"])
    model = check_uploaded(page, got, "f-model", files["model"], "thucnews-bert-l4-h256.pt", ALICE,
                           "the model")
    text = squash(page.text_content(state_sel("f-model")))
    check("uploaded thucnews-bert-l4-h256.pt (33.1 MiB)" in text, "the state line says what was uploaded", text)
    check(page.get_attribute(state_sel("f-model") + " [role=progressbar]", "aria-valuenow") == "100",
          "the bar ends at 100%", page.get_attribute(state_sel("f-model") + " [role=progressbar]", "aria-valuenow"))

    # 2. The data files, then the job.
    got = upload(page, "u-eval-data", "f-eval-data", files["data"])
    check_uploaded(page, got, "f-eval-data", files["data"], "dev_200_.txt", ALICE,
                   "dev titles under a name with a space and CJK")
    got = upload(page, "u-eval-vocab", "f-eval-vocab", files["vocab"])
    check_uploaded(page, got, "f-eval-vocab", files["vocab"], "bert-base-chinese-vocab.txt", ALICE, "the vocab")
    got = upload(page, "u-eval-classes", "f-eval-classes", files["classes"])
    check_uploaded(page, got, "f-eval-classes", files["classes"], "class.txt", ALICE, "the classes")
    r = inspect_click(page)
    check(r.status == 200, "Load parameters inspects the uploaded model", (r.status, dash.json_of(r)))
    page.wait_for_selector("#f-params-body tr")
    page.fill("#f-name", "on uploads: global L1 30% on query")
    page.fill("#f-targets", SEED_TARGET)
    page.select_option("#f-method", "l1_unstructured")
    page.fill("#f-amount", "0.3")
    page.select_option("#f-scope", "global")
    good = dash.submit(page)
    sent = good.request.post_data_json or {}
    check(good.status == 201, "the job on the uploads is accepted", (good.status, dash.json_of(good)))
    check(sent.get("model") == "alice/thucnews-bert-l4-h256.pt" and "model_config" not in sent
          and {k: (sent.get("eval") or {}).get(k) for k in ("data", "vocab", "classes")}
          == {"data": "alice/dev_200_.txt", "vocab": "alice/bert-base-chinese-vocab.txt", "classes": "alice/class.txt"},
          "the job names the four uploads' paths", sent)
    job = None
    if good.status == 201:
        jid = good.json()["id"]
        t0 = time.monotonic()
        while time.monotonic() - t0 < 300:
            st, job = api_as(d, ALICE, "GET", "/v1/jobs/" + jid)
            if st != 200 or job.get("status") in TERMINAL:
                break
            page.wait_for_timeout(500)
        check(st == 200 and job.get("status") == "succeeded", "the job on the uploads succeeds",
              (st, job and {k: job.get(k) for k in ("status", "error", "stage")}))
        m = (job or {}).get("metrics") or {}
        acc = [(m.get(k) or {}).get("accuracy") for k in ("before", "after")]
        check(all(isinstance(a, float) and 0 <= a <= 1 for a in acc) and acc[0] > 0.5,
              "it has before and after accuracy (the uploaded data, vocab and classes read right)", m)
        page.wait_for_function("() => document.querySelector('#job-status').textContent === 'succeeded'")
        check(True, "the job page shows it succeeded")

    # 3. to 5.: back to the form (its values stay).
    page.click("nav a[data-nav=submit]")
    page.wait_for_selector("#view-submit:not([hidden])")
    check(page.input_value("#f-model") == (model or {}).get("path"), "the form keeps the uploaded paths",
          page.input_value("#f-model"))
    test_conflict(page, d, files)
    test_state_dict_and_folder(page, files)
    test_too_large(page, files)
    test_list(page, d)
    page.screenshot(path=os.path.join(dash.DOCS, "screenshot-upload.png"), full_page=True)

    # 7. The read token.
    test_read_token(page, d)

    api_requests = api_requests[first_with_token:]
    mine = [r for r in api_requests if r[2] not in ("Bearer " + ALICE, "Bearer " + VIEWER)]
    check(len(api_requests) > 20 and not mine, "every API call sends a bearer token",
          {"calls": len(api_requests), "without": mine[:5]})
    check(len(page_errors) == 0, "no script errors in the page", page_errors)


def main():
    if not dash.BIN or not os.path.exists(dash.BIN):
        dash.finish(f"PRUNERD_BIN is not a prunerd binary: {dash.BIN!r} (run through meson test)")
    for f in [dash.MODEL_PATH, dash.MODEL_CONFIG] + list(dash.EVAL_FILES.values()):
        if not os.path.exists(f):
            dash.finish(f"shared data missing: {f} (PRUNERD_SHARED={dash.SHARED!r})")
    if not os.path.exists(dash.CHROMIUM):
        dash.finish(f"{dash.CHROMIUM} is missing: install Debian's chromium (tools/deps.sh)")
    if dash.PLAYWRIGHT_MISSING:
        dash.finish(f"cannot load Playwright for Python ({dash.PLAYWRIGHT_MISSING}): run this with "
                    f"{dash.ROOT}/.venv/bin/python, the venv that has it (this is {sys.executable})")
    tmp = os.path.realpath(tempfile.mkdtemp(prefix="prunerd-upload-form-"))
    try:
        files = make_files(tmp)
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        dash.finish("cannot write the files to upload (torch in this Python?): " + traceback.format_exc())
    d = Daemon(tmp)
    run_state = {"context": None, "user_dir": None, "files": files}
    dash.drive(d, tmp, run, run_state)
    dash.finish()


if __name__ == "__main__":
    main()
