#!/usr/bin/env python3
"""test_sweep_page.py - headless Chromium draws a sensitivity sweep's job page, served by the real prunerd daemon.

Starts `prunerd serve` as test_dashboard.py does (a free port, a temporary
data dir, the shared model and data as roots, one admin token, one worker),
enters the token, and then:

1. two sweep results the test answers itself (page.route): one grouped by
   parameter with no recommendation, one grouped by layer with one.  Each
   page must draw exactly one line (polyline[data-group]) per group of
   result.sweep.groups, in that order (most sensitive first), with a vertex
   per point where x is the amount and y the accuracy (one linear map for
   every line and the reference line[data-ref=dense] at the dense
   accuracy); a legend and a row of the points table per group, in the
   same order; a cell per point with its accuracy; no sparsity or confusion
   card.  The recommendation card shows the amounts (one bar per group),
   the predicted accuracy and the request, and "Submit this job" POSTs the
   request as it stands and opens the job it made (answered by the test).
   The jobs table shows a sweep as "sweep (METHOD)" with no amount, and
   {glob, amount} targets as "glob (62%)".
2. a real sweep on the shared model (the query weights of every layer,
   amounts 0.3, 0.6 and 0.9, eval limit 200, recommend sparsity 0.5): its
   normalized request, stages and result, then the same checks on its
   page; "Submit this job" makes a job whose request has the
   recommendation's targets, which runs and reaches the sparsity the
   recommendation says it achieves.

Saves screenshot-sweep.png into PRUNERD_SCREENSHOTS (default: the build
folder), as test_dashboard.py saves its screenshots.  Needs PRUNERD_BIN,
PRUNERD_SHARED, /usr/bin/chromium (or PRUNERD_CHROMIUM) and Playwright for
Python (the repository's .venv); missing any of them is a failure, never a
skip.  Every failure prints what it expected and what it got; the last line
is "N passed, N failed".  Pauses are page.wait_for_timeout, never
time.sleep (Playwright hands events to Python only while Python waits on it).
"""
import json
import os
import re
import shutil
import sys
import tempfile
import traceback
from datetime import datetime, timezone
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_dashboard as dash  # noqa: E402  (the daemon, the API helpers, Chromium's arguments)
from test_dashboard import api_call, check, squash, to_fixed, wait_for  # noqa: E402

td = dash.td  # the tally the Python tests share

SWEEP_TARGET = "bert.encoder.layer.*.attention.self.query"
SWEEP_AMOUNTS = [0.3, 0.6, 0.9]
TERMINAL = ("succeeded", "failed", "cancelled")


def now_iso():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def js_percent(a):
    """The dashboard's +(a * 100).toFixed(4) + '%': the shortest of the four-decimal form."""
    s = to_fixed(a * 100, 4).rstrip("0").rstrip(".")
    return (s if s not in ("", "-0") else "0") + "%"


def target_text(t):
    """The dashboard's targetText(): a glob, or "glob (62%)" for {glob, amount} (an integer: a count)."""
    if isinstance(t, str):
        return t
    a = t.get("amount")
    if isinstance(a, bool) or not isinstance(a, (int, float)):
        return str(t.get("glob"))
    # JSON.parse makes 1.0 the integer 1, so JavaScript calls it a count too.
    return f"{t.get('glob')} ({int(a) if float(a).is_integer() else js_percent(a)})"


# ---------------------------------------------------------------- sweep results made here


def sweep_fixture(group, recommend):
    """A sweep result.json as the daemon writes one, with accuracies the test chose: grouped by
    parameter (six groups, one outside the encoder, four amounts), by layer (four groups, three
    amounts) or structured (each of two layers' heads and neurons), with a recommendation or without."""
    dense = {"accuracy": 0.905, "macro_f1": 0.9012}
    method = "l1_unstructured"
    if group == "structured":
        method, group = "structured", "layer"
        names = [f"bert.encoder.layer.{i}.{u}" for i in (0, 1) for u in ("heads", "neurons")]
        amounts = [0.5, 1.0]
        tensors = {n: [] for n in names}
        params = {}
    elif group == "parameter":
        names = [f"bert.encoder.layer.{i}.attention.self.{w}.weight" for i in (0, 1) for w in ("query", "key")]
        names.append("bert.pooler.dense.weight")
        names.append("classifier.weight")
        amounts = [0.25, 0.5, 0.75, 1.0]
        tensors = {n: [n] for n in names}
        params = {n: 2560 if n == "classifier.weight" else 65536 for n in names}
    else:
        names = [f"bert.encoder.layer.{i}" for i in range(4)]
        amounts = list(SWEEP_AMOUNTS)
        tensors = {n: [n + ".attention.self.query.weight"] for n in names}
        params = {n: 65536 for n in names}
    # How hard each group falls: not in model order, so the sensitivity order differs from it;
    # the last one gains a little at small amounts (a negative drop is possible).
    slope = [0.05, 0.4, 0.12, 0.7, 0.02, 0.25][:len(names)]
    points = []
    for k, n in enumerate(names):
        for j, a in enumerate(amounts):
            acc = round(dense["accuracy"] - slope[k] * a * a + (0.004 if k == len(names) - 1 and j == 0 else 0), 6)
            points.append({"group": n, "amount": a, "accuracy": acc, "macro_f1": round(acc - 0.004, 6),
                           "seconds": 0.25 + 0.01 * j})
    sens = {n: sum(dense["accuracy"] - p["accuracy"] for p in points if p["group"] == n) / len(amounts)
            for n in names}
    groups = [{"group": n, "tensors": tensors[n], "parameters": params[n], "sensitivity": sens[n]}
              if n in params else
              {"group": n, "tensors": [], "sensitivity": sens[n], "layer": int(n.split(".")[3]),
               "unit": n.rsplit(".", 1)[1], "units": 4 if n.endswith("heads") else 1024}
              for n in sorted(names, key=lambda n: -sens[n])]
    res = {"kind": "sweep",
           "metrics": {"before": dict(dense, samples=200, samples_per_s=140.0)},
           "sweep": {"method": method, "group": group, "amounts": amounts, "dense": dense,
                     "groups": groups},
           "points": points, "artifacts": [], "timings": {"load_s": 0.1, "eval_before_s": 1.2, "sweep_s": 9.0},
           "provenance": {"request": {"kind": "sweep"}}}
    if recommend:
        amounts_by = {n: round(0.9 - 0.8 * sens[n] / max(sens.values()), 4) for n in names}
        res["recommendation"] = {
            "sparsity": 0.5, "achieved": 0.50001, "predicted_accuracy": 0.8876,
            "amounts": amounts_by,
            "request": {"name": "sweep recommendation", "model": "/srv/models/m.pt", "model_config": None,
                        "targets": [{"glob": tensors[n][0], "amount": amounts_by[n]} for n in names],
                        "method": "l1_unstructured", "amount": 0.5, "scope": "local",
                        "eval": {"data": "/srv/data/dev.txt", "classes": "/srv/data/class.txt", "limit": 200}}}
    return res


def fixture_job(jid, name, request, status="succeeded"):
    t = now_iso()
    return {"id": jid, "name": name, "status": status, "stage": "saving" if status == "succeeded" else "",
            "progress": 1 if status == "succeeded" else 0, "owner": "browser", "created_at": t,
            "started_at": t, "finished_at": t if status == "succeeded" else None, "request": request,
            "accuracy_before": 0.905, "accuracy_after": None, "macro_f1_before": 0.9012, "macro_f1_after": None,
            "stages": [{"stage": s, "started_at": 1795899576.0 + i, "finished_at": 1795899577.0 + i}
                       for i, s in enumerate(("loading", "evaluating_before", "sweeping", "saving"))]
            if status == "succeeded" else [],
            "attempts": 1, "cancel_requested": False, "error": None, "files_deleted": False}


def sweep_request(group, amounts):
    return {"kind": "sweep", "model": "/srv/models/m.pt", "model_config": None, "targets": [SWEEP_TARGET],
            "method": "l1_unstructured", "group": group, "amounts": amounts, "recommend": None,
            "amount": None, "amount_kind": None, "scope": "local", "outputs": None,
            "eval": {"data": "/srv/data/dev.txt", "classes": "/srv/data/class.txt", "limit": 200},
            "device": "auto", "name": ""}


# ---------------------------------------------------------------- the page against its result.json


def linear_fit(pairs):
    """(slope, intercept, worst residual) of v -> pixel over pairs [(v, px)], or None with fewer than
    two distinct values."""
    vs = sorted({v for v, _ in pairs})
    if len(vs) < 2:
        return None
    lo = next(px for v, px in pairs if v == vs[0])
    hi = next(px for v, px in pairs if v == vs[-1])
    a = (hi - lo) / (vs[-1] - vs[0])
    b = lo - a * vs[0]
    return a, b, max(abs(a * v + b - px) for v, px in pairs)


def sweep_dom(page):
    """What the sweep card draws, read from the DOM."""
    return page.evaluate("""() => {
        const chart = document.querySelector('#job-sweep svg.sweep');
        const num = (e, k) => Number(e.getAttribute(k));
        return {
          card: !document.querySelector('#job-sweep').hidden,
          lines: chart ? Array.from(chart.querySelectorAll('polyline[data-group], path[data-group]'), (l) => ({
            group: l.dataset.group, stroke: l.getAttribute('stroke'),
            points: (l.getAttribute('points') || '').trim().split(/\\s+/).filter(Boolean).map((p) => p.split(',').map(Number)) })) : [],
          refs: chart ? Array.from(chart.querySelectorAll('[data-ref=dense]'), (r) => ({
            tag: r.tagName, value: Number(r.dataset.value), y1: num(r, 'y1'), y2: num(r, 'y2'),
            x1: num(r, 'x1'), x2: num(r, 'x2') })) : [],
          dots: chart ? chart.querySelectorAll('circle[data-series]').length : 0,
          legend: Array.from(document.querySelectorAll('#job-sweep-legend li'), (li) => ({
            group: li.dataset.group, text: li.textContent,
            stroke: li.querySelector('line') && li.querySelector('line').getAttribute('stroke') })),
          rows: Array.from(document.querySelectorAll('#job-sweep-points tbody tr[data-group]'), (tr) => ({
            group: tr.dataset.group,
            cells: Array.from(tr.querySelectorAll('td.point'), (td) => ({
              amount: Number(td.dataset.amount), accuracy: td.dataset.accuracy === undefined ? null : Number(td.dataset.accuracy),
              text: td.textContent })) })),
          heads: Array.from(document.querySelectorAll('#job-sweep-points thead th[data-amount]'), (th) => Number(th.dataset.amount)),
          hidden: Object.fromEntries(['job-sparsity-card', 'job-confusion-card', 'job-structured', 'job-speedup', 'job-recommend']
            .map((id) => [id, document.getElementById(id).hidden])),
        };
      }""")


def check_sweep_page(page, res, what):
    """The sweep card (and the recommendation card) of the page shown now against res."""
    sw = res["sweep"]
    groups = [g["group"] for g in sw["groups"]]
    page.wait_for_selector("#job-sweep:not([hidden]) svg.sweep")
    dom = sweep_dom(page)
    lines = [ln["group"] for ln in dom["lines"]]
    check(len(lines) == len(groups), f"{what}: exactly one line per group ({len(groups)})", (len(lines), groups))
    check(lines == groups, f"{what}: the lines are result.sweep.groups, most sensitive first", (lines, groups))
    check(len(set(ln["stroke"] for ln in dom["lines"])) == len(lines), f"{what}: every line has its own colour",
          [ln["stroke"] for ln in dom["lines"]])
    by_group = {}
    for p in res["points"]:
        by_group.setdefault(p["group"], []).append(p)
    xs, ys, shape_ok = [], [], True
    for ln in dom["lines"]:
        pts = sorted(by_group.get(ln["group"], []), key=lambda p: p["amount"])
        if len(ln["points"]) != len(pts):
            shape_ok = False
            continue
        for (px, py), p in zip(ln["points"], pts):
            xs.append((p["amount"], px))
            ys.append((p["accuracy"], py))
    check(shape_ok and len(xs) == len(res["points"]), f"{what}: a vertex per point, on its group's line",
          {ln["group"]: len(ln["points"]) for ln in dom["lines"]})
    refs = dom["refs"]
    ref_ok = check(len(refs) == 1 and refs[0]["y1"] == refs[0]["y2"] and refs[0]["x2"] > refs[0]["x1"]
                   and abs(refs[0]["value"] - sw["dense"]["accuracy"]) < 1e-12,
                   f"{what}: one horizontal reference line[data-ref=dense] at the dense accuracy",
                   (refs, sw["dense"]["accuracy"]))
    if ref_ok:
        ys.append((sw["dense"]["accuracy"], refs[0]["y1"]))
    fx, fy = linear_fit(xs), linear_fit(ys)
    check(fx is not None and fx[0] > 0 and fx[2] < 0.05, f"{what}: x is the amount (one increasing linear map)", fx)
    check(fy is not None and fy[0] < 0 and fy[2] < 0.05,
          f"{what}: y is the accuracy (one linear map, up is better, the dense line on it too)", fy)
    check(dom["dots"] == len(res["points"]), f"{what}: a dot per point", (dom["dots"], len(res["points"])))
    legend = [li["group"] for li in dom["legend"]]
    check(legend == groups, f"{what}: the legend lists the groups, most sensitive first", (legend, groups))
    check([li["stroke"] for li in dom["legend"]] == [ln["stroke"] for ln in dom["lines"]],
          f"{what}: each legend entry has its line's colour", (dom["legend"], dom["lines"]))
    sens_shown = all(to_fixed(g["sensitivity"] * 100, 2) + " pt" in li["text"]
                     for g, li in zip(sw["groups"], dom["legend"]))
    check(sens_shown, f"{what}: the legend shows each group's mean drop in points",
          [(g["sensitivity"], li["text"]) for g, li in zip(sw["groups"], dom["legend"])])

    check(dom["heads"] == sw["amounts"], f"{what}: the points table has a column per amount",
          (dom["heads"], sw["amounts"]))
    check([r["group"] for r in dom["rows"]] == groups, f"{what}: the points table has a row per group, in order",
          [r["group"] for r in dom["rows"]])
    want = {(p["group"], p["amount"]): p["accuracy"] for p in res["points"]}
    got, wrong = {}, []
    for r in dom["rows"]:
        for c in r["cells"]:
            got[(r["group"], c["amount"])] = c["accuracy"]
            a = want.get((r["group"], c["amount"]))
            if a is None or c["accuracy"] != a or c["text"] != to_fixed(a, 3):
                wrong.append((r["group"], c))
    check(len(got) == len(want) and not wrong, f"{what}: a table cell per point with its accuracy",
          {"cells": len(got), "points": len(want), "wrong": wrong[:4]})
    hidden = dom["hidden"]
    check(hidden["job-sparsity-card"] and hidden["job-confusion-card"] and hidden["job-structured"]
          and hidden["job-speedup"], f"{what}: no sparsity, confusion or structured card", hidden)
    summary = squash(page.text_content("#job-sweep-summary"))
    check(to_fixed(sw["dense"]["accuracy"], 3) in summary and f"{len(res['points'])} evaluations" in summary,
          f"{what}: the summary gives the dense accuracy and the number of evaluations", summary)
    enabled = dash.download_buttons(page)
    check(enabled.get("result") and not any(v for k, v in enabled.items() if k != "result"),
          f"{what}: only result.json to download (a sweep saves no model)", enabled)

    rec = res.get("recommendation")
    if not rec:
        check(hidden["job-recommend"], f"{what}: no recommendation card without a recommendation", hidden)
        return
    if not check(not hidden["job-recommend"], f"{what}: the recommendation card is shown", hidden):
        return
    bars = page.locator("#job-recommend-amounts svg rect.bar").evaluate_all(
        "(rs) => rs.map((r) => [r.dataset.name, Number(r.dataset.value)])")
    check(dict(bars) == rec["amounts"] and len(bars) == len(rec["amounts"]),
          f"{what}: one bar per group with the recommended amount", (bars, rec["amounts"]))
    shown = page.get_attribute("#job-recommend-predicted", "data-value")
    text = page.text_content("#job-recommend-predicted")
    check(shown is not None and float(shown) == rec["predicted_accuracy"]
          and text == to_fixed(rec["predicted_accuracy"], 3),
          f"{what}: the predicted accuracy", (shown, text, rec["predicted_accuracy"]))
    summary = squash(page.text_content("#job-recommend-summary"))
    check(dash.js_pct(rec["sparsity"]) in summary, f"{what}: the recommendation names its sparsity", summary)
    req_text = page.text_content("#job-recommend-request")
    try:
        req_shown = json.loads(req_text)
    except ValueError:
        req_shown = req_text
    check(req_shown == rec["request"], f"{what}: the request it submits is shown as it is", req_shown)
    check(page.is_enabled("#job-recommend-submit"), f"{what}: Submit this job is enabled")


def submit_recommendation(page):
    """Clicks "Submit this job"; returns the POST /v1/jobs request and response it caused."""
    with page.expect_response(lambda r: urlsplit(r.url).path == "/v1/jobs" and r.request.method == "POST") as info:
        page.click("#job-recommend-submit")
    resp = info.value
    return resp.request, resp


FAKE_PARAM = "5eeb0000-0000-4000-8000-000000000001"
FAKE_LAYER = "5eeb0000-0000-4000-8000-000000000002"
FAKE_NEW = "5eeb0000-0000-4000-8000-000000000003"
FAKE_PRUNE = "5eeb0000-0000-4000-8000-000000000004"
FAKE_STRUCT = "5eeb0000-0000-4000-8000-000000000005"


def test_fixtures(page, base):
    """The two sweep results made here, the jobs table's sweep and per-target rows, and Submit this
    job answered by the test."""
    results = {FAKE_PARAM: sweep_fixture("parameter", False), FAKE_LAYER: sweep_fixture("layer", True),
               FAKE_STRUCT: sweep_fixture("structured", False)}
    rec = results[FAKE_LAYER]["recommendation"]
    jobs = {FAKE_PARAM: fixture_job(FAKE_PARAM, "fake sweep by parameter", sweep_request("parameter", [0.25, 0.5, 0.75, 1.0])),
            FAKE_LAYER: fixture_job(FAKE_LAYER, "fake sweep by layer",
                                    dict(sweep_request("layer", SWEEP_AMOUNTS), recommend={"sparsity": 0.5})),
            FAKE_STRUCT: fixture_job(FAKE_STRUCT, "fake structured sweep",
                                     dict(sweep_request("layer", [0.5, 1.0]), method="structured")),
            FAKE_PRUNE: fixture_job(FAKE_PRUNE, "fake per-target prune",
                                    dict(rec["request"], amount_kind="fraction", outputs=None, device="auto"))}
    jobs[FAKE_PRUNE]["accuracy_after"] = 0.88
    posted = []

    def ours(url):
        p = urlsplit(url).path
        return p == "/v1/jobs" or p.startswith("/v1/jobs/5eeb0000-")

    def serve(route):
        r = route.request
        p = urlsplit(r.url).path
        if p == "/v1/jobs" and r.method == "POST":
            posted.append(r.post_data_json)
            jobs[FAKE_NEW] = fixture_job(FAKE_NEW, "submitted from the recommendation", r.post_data_json, "queued")
            return route.fulfill(status=201, content_type="application/json", body=json.dumps(jobs[FAKE_NEW]),
                                 headers={"Location": "/v1/jobs/" + FAKE_NEW})
        if p == "/v1/jobs":
            return route.fulfill(status=200, content_type="application/json",
                                 body=json.dumps({"jobs": [jobs[k] for k in (FAKE_PARAM, FAKE_LAYER, FAKE_PRUNE)],
                                                  "next_cursor": None}))
        jid = p.split("/")[3]
        if p.endswith("/result") and jid in results:
            return route.fulfill(status=200, content_type="application/json", body=json.dumps(results[jid]))
        if jid in jobs and not p.endswith("/result"):
            return route.fulfill(status=200, content_type="application/json", body=json.dumps(jobs[jid]))
        return route.fulfill(status=404, content_type="application/json",
                             body=json.dumps({"error": {"code": "not_found", "message": "not in the test"}}))

    page.route(ours, serve)
    try:
        # The jobs table: a sweep says so and has no amount; per-target amounts are shown as such.
        page.goto(base + "/#/jobs")
        row = page.locator(f'#jobs tbody tr[data-id="{FAKE_LAYER}"]')
        row.wait_for()
        method = squash(row.locator("td.method").inner_text())
        amount = row.locator("td").nth(5).inner_text()
        check(method == "sweep (l1_unstructured) per layer" and amount.strip() == "",
              "the jobs table: a sweep's method is 'sweep (l1_unstructured)', its amount blank", (method, amount))
        prow = page.locator(f'#jobs tbody tr[data-id="{FAKE_PRUNE}"]')
        targets = prow.locator("td.targets").text_content()
        want = ", ".join(target_text(t) for t in rec["request"]["targets"])
        check(targets == want and "[object Object]" not in targets,
              "the jobs table: {glob, amount} targets read 'glob (amount)'", (targets, want))
        check("(count)" not in prow.locator("td").nth(5).inner_text()
              and "50%" in prow.locator("td").nth(5).inner_text(),
              "the jobs table: a per-target prune job keeps its top-level amount", prow.inner_text())
        page.fill("#jobs-search", "layer.3.attention")
        wait_for(page, lambda: page.locator("#jobs tbody tr").count() == 1, "the search to find the per-target job")
        check(page.locator(f'#jobs tbody tr[data-id="{FAKE_PRUNE}"]').count() == 1,
              "the search looks into {glob, amount} targets", page.locator("#jobs tbody tr").count())
        page.fill("#jobs-search", "")

        # Grouped by parameter, no recommendation.
        page.goto(base + "/#/jobs/" + FAKE_PARAM)
        page.wait_for_function("() => document.querySelector('#job-name').textContent === 'fake sweep by parameter'")
        check_sweep_page(page, results[FAKE_PARAM], "the fixture grouped by parameter")
        labels = page.locator("#job-sweep-legend li .gname").all_text_contents()
        check("layer 0 · attention.self.query.weight" in labels and "classifier.weight" in labels
              and not any(x.startswith("bert.encoder.") for x in labels),
              "the legend's names: 'layer N · rest' in the encoder, the name elsewhere", labels)

        # Pointing at a legend entry brings its line forward.
        first = results[FAKE_PARAM]["sweep"]["groups"][1]["group"]
        page.hover(f'#job-sweep-legend li[data-group="{first}"]')
        hl = page.evaluate("""() => [document.querySelector('svg.sweep').classList.contains('focus'),
            Array.from(document.querySelectorAll('svg.sweep polyline.hl'), (l) => l.dataset.group)]""")
        check(hl == [True, [first]], "hovering a legend entry highlights that line only", hl)
        page.mouse.move(1, 1)

        # Structured: each layer's heads and neurons; the size column counts them.
        page.goto(base + "/#/jobs/" + FAKE_STRUCT)
        page.wait_for_function("() => document.querySelector('#job-name').textContent === 'fake structured sweep'")
        check_sweep_page(page, results[FAKE_STRUCT], "the structured fixture")
        sizes = page.locator("#job-sweep-points tbody tr").evaluate_all(
            "(rs) => rs.map((r) => [r.dataset.group, r.querySelectorAll('td')[0].textContent])")
        # digits in whatever grouping the browser's locale uses, then the unit
        got = [(g, re.sub(r"\D", "", t), (t.split() or [""])[-1]) for g, t in sizes]
        want = [(g["group"], str(g["units"]), g["unit"]) for g in results[FAKE_STRUCT]["sweep"]["groups"]]
        check(got == want, "a structured group's size is its heads or neurons", (sizes, want))

        # Grouped by layer, with a recommendation; Submit this job.
        page.goto(base + "/#/jobs/" + FAKE_LAYER)
        page.wait_for_function("() => document.querySelector('#job-name').textContent === 'fake sweep by layer'")
        check_sweep_page(page, results[FAKE_LAYER], "the fixture grouped by layer")
        labels = page.locator("#job-sweep-legend li .gname").all_text_contents()
        check(sorted(labels) == ["layer 0", "layer 1", "layer 2", "layer 3"], "layer groups read 'layer N'", labels)
        req, resp = submit_recommendation(page)
        check(req.post_data_json == rec["request"] and posted == [rec["request"]],
              "Submit this job POSTs the recommendation's request as it is", (req.post_data_json, rec["request"]))
        check((req.headers.get("authorization") or "") == dash.BEARER, "Submit this job sends the token",
              req.headers.get("authorization"))
        page.wait_for_function("(id) => location.hash === '#/jobs/' + id", arg=FAKE_NEW)
        page.wait_for_function("() => document.querySelector('#job-name').textContent === 'submitted from the recommendation'")
        check(page.is_hidden("#job-sweep") and page.is_hidden("#job-recommend"),
              "the new job's page shows no sweep cards (it is a prune job)",
              (page.is_hidden("#job-sweep"), page.is_hidden("#job-recommend")))
    finally:
        page.unroute(ours, serve)


# ---------------------------------------------------------------- a real sweep


def finished(d, jid):
    _, j = api_call(d, "GET", "/v1/jobs/" + jid)
    return j if isinstance(j, dict) and j.get("status") in TERMINAL else None


def test_real_sweep(page, d):
    body = {"kind": "sweep", "name": "sweep: query weights per layer", "model": dash.MODEL,
            "targets": [SWEEP_TARGET], "amounts": SWEEP_AMOUNTS, "recommend": {"sparsity": 0.5},
            "eval": dict(dash.EVAL_FILES, limit=200)}
    st, job = api_call(d, "POST", "/v1/jobs", body)
    if not check(st == 201 and isinstance(job, dict), "a sweep job is accepted", (st, job)):
        return
    jid = job["id"]
    req = job.get("request") or {}
    want = {"kind": "sweep", "method": "l1_unstructured", "group": "layer", "amounts": SWEEP_AMOUNTS,
            "recommend": {"sparsity": 0.5}, "amount": None, "amount_kind": None, "scope": "local",
            "outputs": None, "targets": [SWEEP_TARGET]}
    check({k: req.get(k, "(absent)") for k in want} == want, "the sweep's normalized request",
          {k: req.get(k, "(absent)") for k in want})
    done = wait_for(page, lambda: finished(d, jid), "the sweep to finish", 300000, 250)
    if not check(done is not None and done["status"] == "succeeded", "the sweep succeeds",
                 done and (done["status"], done.get("error"))):
        return
    stages = [s["stage"] for s in done.get("stages") or []]
    check(stages == ["loading", "evaluating_before", "sweeping", "saving"], "a sweep's stages", stages)
    st, res = api_call(d, "GET", f"/v1/jobs/{jid}/result")
    if not check(st == 200 and isinstance(res, dict) and isinstance(res.get("sweep"), dict)
                 and isinstance(res.get("points"), list), "the sweep's result.json has sweep and points",
                 (st, res if not isinstance(res, dict) else list(res))):
        return
    groups = [g.get("group") for g in res["sweep"].get("groups") or []]
    check(sorted(groups) == [f"bert.encoder.layer.{i}" for i in range(4)], "grouped by layer: four groups",
          groups)
    check(len(res["points"]) == len(groups) * len(SWEEP_AMOUNTS), "a point per group and amount",
          (len(res["points"]), len(groups)))
    check(res.get("kind") == "sweep" and res.get("artifacts") == [], "kind sweep, no artifacts",
          (res.get("kind"), res.get("artifacts")))
    rec = res.get("recommendation")
    if not check(isinstance(rec, dict) and isinstance(rec.get("request"), dict), "the result has a recommendation",
                 rec):
        return

    page.goto(d.base + "/#/jobs/" + jid)
    page.wait_for_function("(n) => document.querySelector('#job-name').textContent === n", arg=body["name"])
    check_sweep_page(page, res, "the daemon's sweep")
    os.makedirs(dash.DOCS, exist_ok=True)
    page.locator("#job-sweep").screenshot(path=os.path.join(dash.DOCS, "screenshot-sweep.png"))

    # The jobs table's row for it.
    page.goto(d.base + "/#/jobs")
    row = page.locator(f'#jobs tbody tr[data-id="{jid}"]')
    row.wait_for()
    method = squash(row.locator("td.method").inner_text())
    check(method.startswith("sweep (l1_unstructured)") and row.locator("td").nth(5).inner_text().strip() == "",
          "the daemon's sweep in the jobs table: method 'sweep (l1_unstructured)', no amount",
          (method, row.locator("td").nth(5).inner_text()))

    # Submit this job: the recommendation's prune job, as it stands.
    page.goto(d.base + "/#/jobs/" + jid)
    page.wait_for_selector("#job-recommend:not([hidden]) #job-recommend-submit:not([disabled])")
    post, resp = submit_recommendation(page)
    check(post.post_data_json == rec["request"], "Submit this job POSTs the recommendation's request",
          (post.post_data_json, rec["request"]))
    new = dash.json_of(resp)
    if not check(resp.status == 201 and isinstance(new, dict) and "id" in new,
                 "the daemon accepts the recommended job", (resp.status, new)):
        return
    page.wait_for_function("(id) => location.hash === '#/jobs/' + id", arg=new["id"])
    check(True, "after Submit this job, the page shows the new job")
    _, view = api_call(d, "GET", "/v1/jobs/" + new["id"])
    nreq = (view or {}).get("request") or {}
    check(nreq.get("targets") == rec["request"].get("targets"),
          "the new job's request has the recommendation's targets", (nreq.get("targets"), rec["request"].get("targets")))
    check("kind" not in nreq and nreq.get("method") == "l1_unstructured" and nreq.get("scope") == "local",
          "the new job is an ordinary local l1_unstructured prune job",
          {k: nreq.get(k, "(absent)") for k in ("kind", "method", "scope")})
    ndone = wait_for(page, lambda: finished(d, new["id"]), "the recommended job to finish", 240000, 250)
    if not check(ndone is not None and ndone["status"] == "succeeded", "the recommended job succeeds",
                 ndone and (ndone["status"], ndone.get("error"))):
        return
    _, nres = api_call(d, "GET", f"/v1/jobs/{new['id']}/result")
    got = ((nres or {}).get("sparsity") or {}).get("targets")
    check(isinstance(got, (int, float)) and abs(got - rec["achieved"]) < 1e-4,
          "the recommended job reaches the sparsity the recommendation says it achieves",
          {"sparsity.targets": got, "achieved": rec["achieved"]})
    after = ((nres or {}).get("metrics") or {}).get("after") or {}
    print(f"recommended job: accuracy {after.get('accuracy')} (predicted {rec.get('predicted_accuracy')}), "
          f"sparsity {got} (asked {rec.get('sparsity')}, achieved {rec.get('achieved')})", flush=True)
    row = page.locator(f'#jobs tbody tr[data-id="{new["id"]}"]')
    page.goto(d.base + "/#/jobs")
    row.wait_for()
    targets = row.locator("td.targets").text_content()
    check(targets == ", ".join(target_text(t) for t in nreq.get("targets") or []),
          "the recommended job's row lists its targets with their amounts", targets)


# ---------------------------------------------------------------- main


def run(pw, d, run_state):
    page, page_errors = dash.open_page(pw, run_state)

    page.goto(d.base + "/")
    page.fill("#token", dash.TOKEN)
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("#jobs-empty:not([hidden])")
    test_fixtures(page, d.base)
    test_real_sweep(page, d)
    check(len(page_errors) == 0, "no script errors in the page", page_errors)


def main():
    if not dash.BIN or not os.path.exists(dash.BIN):
        dash.finish(f"PRUNERD_BIN is not a prunerd binary: {dash.BIN!r} (run through meson test)")
    for f in [dash.MODEL_PATH] + list(dash.EVAL_FILES.values()):
        if not os.path.exists(f):
            dash.finish(f"shared data missing: {f} (PRUNERD_SHARED={dash.SHARED!r})")
    if not os.path.exists(dash.CHROMIUM):
        dash.finish(f"{dash.CHROMIUM} is missing: install Debian's chromium (tools/deps.sh)")
    if dash.PLAYWRIGHT_MISSING:
        dash.finish(f"cannot load Playwright for Python ({dash.PLAYWRIGHT_MISSING}): run this with "
                    f"{dash.ROOT}/.venv/bin/python, the venv that has it (this is {sys.executable})")
    tmp = os.path.realpath(tempfile.mkdtemp(prefix="prunerd-sweep-page-"))
    d = dash.Daemon(tmp)
    run_state = {"context": None, "user_dir": None}
    dash.drive(d, tmp, run, run_state)
    dash.finish()


if __name__ == "__main__":
    main()
