#!/usr/bin/env python3
"""test_sweep.py - the sensitivity sweep job ("kind": "sweep") against separate prune jobs.

On the shared model (TorchScript, and its weights as torch.save(state_dict) +
config.json for the structured sweep), through `prunerd run`:
  1. each point is a separate job: `prunerd run` pruning just that group by
     that amount (scope local on the group's tensors; structured: that
     fraction of one layer's heads or neurons, scope local) gives the
     point's accuracy and macro-F1 exactly, for 6 unstructured points (the
     first and last amount of the first and last layer, a middle one of the
     others), 2 of group "parameter" and 4 structured ones; the dense
     metrics are the separate job's "before";
  2. the table: every group x amount, groups most sensitive first, each
     sensitivity the mean accuracy drop of its points;
  3. the weights come back: tests/shim_driver sweep-restore prunes every
     group by 0.5 and 0.9 and puts it back, and every tensor equals the
     file's, bit for bit (TorchScript, state_dict, structured); and two
     sweeps in one daemon give the same table;
  4. the recommended job runs: its targets sparsity equals the requested
     0.5 to 1e-4, and its accuracy is printed beside the uniform amount's
     at the same sparsity (not asserted: docs/benchmarks.md has the figures);
  5. over REST: the job goes through the stage "sweeping", its result has
     the points, a cancel stops it between points, and bad sweep requests
     are 400s naming the field (CLI: exit 2 with one line).
Needs PRUNERD_BUILD, PRUNERD_BIN and PRUNERD_SHARED; fails, naming them, when missing.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_daemon  # noqa: E402  (its Daemon: the real daemon on a free port)

BUILD = os.environ.get("PRUNERD_BUILD", "build")
SHARED = os.path.realpath(os.environ["PRUNERD_SHARED"]) if os.environ.get("PRUNERD_SHARED") else ""
PRUNERD = os.path.join(BUILD, "server", "prunerd")
SHIM = os.path.join(BUILD, "tests", "shim_driver")
check = test_daemon.check  # its counters: test_daemon.passed, test_daemon.failed


def shared(*p):
    return os.path.join(SHARED, *p)


def eval_block(limit):
    return {"data": shared("data", "thucnews", "dev.txt"),
            "vocab": shared("data", "vocab", "bert-base-chinese-vocab.txt"),
            "classes": shared("data", "thucnews", "class.txt"), "limit": limit}


def run(tmp, name, req):
    """prunerd run on req; returns (exit status, result or None, output)."""
    path = os.path.join(tmp, name + ".json")
    with open(path, "w") as f:
        json.dump(req, f)
    out = os.path.join(tmp, name)
    p = subprocess.run([PRUNERD, "run", path, "--out-dir", out, "--quiet"], capture_output=True,
                       text=True, timeout=600)
    res = os.path.join(out, "result.json")
    result = json.load(open(res)) if p.returncode == 0 and os.path.exists(res) else None
    return p.returncode, result, p.stdout + p.stderr


def point(result, group, amount):
    for p in result["points"]:
        if p["group"] == group and p["amount"] == amount:
            return p
    return None


def same_as_job(tmp, result, group, amount, req, what):
    """The point against a separate job req; its after metrics must be the point's."""
    rc, r, out = run(tmp, f"job-{len(os.listdir(tmp))}", req)
    if not check(rc == 0 and r, f"{what}: the separate job runs", out[-500:]):
        return
    p = point(result, group, amount)
    after = r["metrics"]["after"]
    check(p is not None and p["accuracy"] == after["accuracy"] and p["macro_f1"] == after["macro_f1"],
          f"{what}: the point equals the separate job exactly",
          (p, after["accuracy"], after["macro_f1"]))
    before = r["metrics"]["before"]
    check(result["sweep"]["dense"]["accuracy"] == before["accuracy"]
          and result["sweep"]["dense"]["macro_f1"] == before["macro_f1"],
          f"{what}: the dense metrics are the separate job's before",
          (result["sweep"]["dense"], before["accuracy"]))


def check_table(result, amounts, ngroups, what):
    pts, groups = result["points"], result["sweep"]["groups"]
    check(len(groups) == ngroups and len(pts) == ngroups * len(amounts),
          f"{what}: {ngroups} groups x {len(amounts)} amounts", (len(groups), len(pts)))
    dense = result["sweep"]["dense"]["accuracy"]
    sens = [g["sensitivity"] for g in groups]
    check(sens == sorted(sens, reverse=True), f"{what}: groups most sensitive first", sens)
    for g in groups:
        mine = [p for p in pts if p["group"] == g["group"]]
        want = sum(dense - p["accuracy"] for p in mine) / len(amounts)
        check([p["amount"] for p in mine] == amounts and abs(g["sensitivity"] - want) < 1e-12,
              f"{what}: {g['group']}'s points and sensitivity", (g, mine))
        check(all(p["seconds"] > 0 for p in mine), f"{what}: {g['group']}'s points are timed", mine)


def test_unstructured(tmp):
    model = shared("models", "thucnews-bert-l4-h256.pt")
    amounts = [0.2, 0.5, 0.9]
    targets = ["bert.encoder.layer.*.attention.self.query", "bert.encoder.layer.*.output.dense"]
    req = {"kind": "sweep", "model": model, "targets": targets, "amounts": amounts,
           "eval": eval_block(300)}
    rc, res, out = run(tmp, "sweep", req)
    if not check(rc == 0 and res, "unstructured sweep runs", out[-800:]):
        return
    check(res.get("kind") == "sweep" and res["artifacts"] == [], "a sweep saves no model", res.get("artifacts"))
    check_table(res, amounts, 4, "layer sweep")
    groups = {g["group"]: g for g in res["sweep"]["groups"]}
    check(sorted(groups) == [f"bert.encoder.layer.{i}" for i in range(4)], "the layer groups", sorted(groups))
    g0 = groups.get("bert.encoder.layer.0", {})
    check(g0.get("tensors") == ["bert.encoder.layer.0.attention.self.query.weight",
                                "bert.encoder.layer.0.attention.output.dense.weight",
                                "bert.encoder.layer.0.output.dense.weight"]
          and g0.get("parameters") == 65536 * 2 + 262144,
          "layer 0's group holds its matched weights", g0)
    base = {"model": model, "method": "l1_unstructured", "scope": "local", "eval": eval_block(300),
            "outputs": ["state_dict"]}
    for layer, amount in ((0, 0.2), (0, 0.9), (3, 0.2), (3, 0.9), (1, 0.5), (2, 0.5)):
        name = f"bert.encoder.layer.{layer}"
        same_as_job(tmp, res, name, amount, dict(base, targets=groups[name]["tensors"], amount=amount),
                    f"layer {layer} at {amount}")

    preq = {"kind": "sweep", "model": model, "group": "parameter", "amounts": [0.4, 0.8],
            "targets": ["bert.encoder.layer.1.attention.self.query", "bert.encoder.layer.1.attention.self.key"],
            "eval": eval_block(200)}
    rc, pres, out = run(tmp, "psweep", preq)
    if check(rc == 0 and pres, "parameter sweep runs", out[-800:]):
        check_table(pres, [0.4, 0.8], 2, "parameter sweep")
        for name, amount in (("bert.encoder.layer.1.attention.self.query.weight", 0.4),
                             ("bert.encoder.layer.1.attention.self.key.weight", 0.8)):
            same_as_job(tmp, pres, name, amount,
                        dict(base, targets=[name], amount=amount, eval=eval_block(200)),
                        f"parameter {name} at {amount}")


def write_state_dict(tmp):
    import torch
    m = torch.jit.load(shared("models", "thucnews-bert-l4-h256.pt"))
    folder = os.path.join(tmp, "sd")
    os.makedirs(folder)
    path = os.path.join(folder, "model.pth")
    torch.save(dict(m.state_dict()), path)
    shutil.copy(shared("models", "thucnews-bert-l4-h256.config.json"), os.path.join(folder, "config.json"))
    return path


def test_structured(tmp, sd):
    amounts = [0.25, 0.5, 1.0]
    req = {"kind": "sweep", "method": "structured", "model": sd, "targets": ["bert.encoder.layer.*"],
           "amounts": amounts, "eval": eval_block(300)}
    rc, res, out = run(tmp, "ssweep", req)
    if not check(rc == 0 and res, "structured sweep runs", out[-800:]):
        return
    check_table(res, amounts, 8, "structured sweep")
    units = {g["group"]: (g.get("unit"), g.get("units")) for g in res["sweep"]["groups"]}
    check(units.get("bert.encoder.layer.0.heads") == ("heads", 4)
          and units.get("bert.encoder.layer.3.neurons") == ("neurons", 1024),
          "structured groups: each layer's heads and neurons", units)
    for layer, kind, amount in ((0, "heads", 0.25), (3, "heads", 1.0), (1, "neurons", 0.5), (2, "neurons", 1.0)):
        st = {kind: amount, "scope": "local", "latency": {"batches": [1], "seq_lens": [8]}}
        job = {"model": sd, "method": "structured", "targets": [f"bert.encoder.layer.{layer}"],
               "structured": st, "eval": eval_block(300), "outputs": ["state_dict"]}
        same_as_job(tmp, res, f"bert.encoder.layer.{layer}.{kind}", amount, job,
                    f"structured layer {layer} {kind} at {amount}")


def test_restore(sd):
    for model, how in ((shared("models", "thucnews-bert-l4-h256.pt"), "unstructured"),
                       (sd, "unstructured"), (sd, "structured")):
        p = subprocess.run([SHIM, "sweep-restore", model, "bert.encoder.layer.*", how],
                           capture_output=True, text=True, timeout=300)
        lines = p.stdout.split("\n")
        check(p.returncode == 0 and lines[0].startswith("0 ok") and "differs" not in p.stdout
              and lines[1].startswith("groups ") and " identical 73" in lines[1],
              f"sweep-restore {os.path.basename(model)} {how}: every tensor as in the file",
              p.stdout + p.stderr)


def test_recommendation(tmp):
    model = shared("models", "thucnews-bert-l4-h256.pt")
    targets = [f"bert.encoder.layer.*.{m}" for m in
               ("attention.self.query", "attention.self.key", "attention.self.value",
                "attention.output.dense", "intermediate.dense", "output.dense")]
    amounts = [0.2, 0.4, 0.6, 0.8]
    req = {"kind": "sweep", "model": model, "targets": targets, "amounts": amounts,
           "recommend": {"sparsity": 0.5}, "eval": eval_block(1000), "name": "rec"}
    rc, res, out = run(tmp, "rsweep", req)
    if not check(rc == 0 and res and "recommendation" in res, "sweep with recommend runs", out[-800:]):
        return
    rec = res["recommendation"]
    check(abs(rec["achieved"] - 0.5) < 1e-4, "recommendation: achieved sparsity 0.5 to 1e-4", rec["achieved"])
    check(sorted(rec["amounts"]) == [f"bert.encoder.layer.{i}" for i in range(4)]
          and all(0 <= a <= 0.8 for a in rec["amounts"].values()),
          "recommendation: an amount per group, within the measured range", rec["amounts"])
    rr = rec["request"]
    check(rr.get("name") == "rec recommended" and "kind" not in rr and rr.get("scope") == "local"
          and len(rr["targets"]) == 24 and all(set(t) == {"glob", "amount"} for t in rr["targets"]),
          "recommendation: a ready prune job of 24 {glob, amount} targets", rr)
    rc, rj, out = run(tmp, "recjob", rr)
    if not check(rc == 0 and rj, "the recommended job runs", out[-800:]):
        return
    check(abs(rj["sparsity"]["targets"] - 0.5) < 1e-4, "the recommended job's sparsity is 0.5 to 1e-4",
          rj["sparsity"]["targets"])
    uni = dict(rr, targets=targets, amount=0.5, name="uniform")
    rc, uj, out = run(tmp, "unijob", uni)
    if not check(rc == 0 and uj, "the uniform job runs", out[-800:]):
        return
    ra, ua = rj["metrics"]["after"]["accuracy"], uj["metrics"]["after"]["accuracy"]
    print(f"recommended accuracy {ra:.4f} (predicted {rec['predicted_accuracy']:.4f}), "
          f"uniform 0.5 {ua:.4f}, dense {res['sweep']['dense']['accuracy']:.4f} (dev limit 1000)")
    # Not asserted: on this model the single-layer curves are within noise
    # (docs/benchmarks.md: on all 10,000 dev titles the recommendation loses
    # to the uniform amount), so which wins on a subset says little.
    check(0 < ra <= 1 and 0 < ua <= 1, "both accuracies are measured", (ra, ua))


def test_rest(tmp, sd):
    roots = ["--model-root", shared("models"), "--model-root", os.path.dirname(sd),
             "--data-root", shared("data")]
    d = test_daemon.Daemon(tmp, roots, name="sweep")
    try:
        req = {"kind": "sweep", "model": "thucnews-bert-l4-h256.pt",
               "targets": ["bert.encoder.layer.*.attention.self.query"], "amounts": [0.3, 0.6],
               "eval": eval_block(100)}
        tables = []
        for _ in range(2):
            st, _, body = d.json("POST", "/v1/jobs", req)
            if not check(st == 201, "POST a sweep: 201", (st, body)):
                return
            job = test_daemon.wait_status(d, body["id"], ("succeeded", "failed", "cancelled"))
            check(job and job["status"] == "succeeded", "the sweep succeeds", job)
            stages = [s["stage"] for s in (job or {}).get("stages", [])]
            check(stages == ["loading", "evaluating_before", "sweeping", "saving"],
                  "its stages", stages)
            st, _, r = d.json("GET", f"/v1/jobs/{body['id']}/result")
            check(st == 200 and len(r.get("points", [])) == 8, "its result has the 8 points", (st, r))
            tables.append([(p["group"], p["amount"], p["accuracy"], p["macro_f1"]) for p in r.get("points", [])])
        check(len(tables) == 2 and tables[0] == tables[1], "two sweeps in one daemon: the same table", tables)

        big = dict(req, amounts=[i / 32 for i in range(1, 33)], eval=eval_block(2000),
                   targets=["bert.encoder.layer.*"], group="parameter")
        st, _, body = d.json("POST", "/v1/jobs", big)
        if check(st == 201, "POST a long sweep", (st, body)):
            deadline = time.time() + 120
            job = {}
            while time.time() < deadline:
                job = d.json("GET", f"/v1/jobs/{body['id']}")[2]
                if job.get("stage") == "sweeping" and job.get("progress", 0) > 0.06:
                    break
                time.sleep(0.1)
            check(job.get("stage") == "sweeping", "the long sweep reaches sweeping", job)
            st, _, _ = d.json("POST", f"/v1/jobs/{body['id']}/cancel")
            t0 = time.time()
            job = test_daemon.wait_status(d, body["id"], ("cancelled", "failed", "succeeded"), timeout=60)
            check(job and job["status"] == "cancelled" and time.time() - t0 < 20,
                  "a cancel stops the sweep between points", (job, time.time() - t0))

        bad = [({"amount": 0.3}, "amount"), ({"scope": "global"}, "scope"),
               ({"amounts": [0.5, 0.2]}, "amounts"), ({"amounts": [0]}, "amounts"),
               ({"amounts": []}, "amounts"), ({"group": "head"}, "group"),
               ({"recommend": {"sparsity": 0.9}}, "recommend.sparsity"),
               ({"recommend": {"sparsity": 0.2, "x": 1}}, "recommend.x"),
               ({"method": "random_unstructured"}, "method"), ({"outputs": ["state_dict"]}, "outputs"),
               ({"targets": [{"glob": "x", "amount": 0.1}]}, "targets"), ({"kind": "swept"}, "kind"),
               ({"method": "structured", "group": "parameter"}, "group"),
               ({"method": "structured", "recommend": {"sparsity": 0.3}}, "recommend"),
               ({"eval": None}, "eval")]
        for change, field in bad:
            st, _, body = d.json("POST", "/v1/jobs", dict(req, **change))
            test_daemon.check_error(st, body, 400, f"sweep with {change}", field)
        for change, field in (({"group": "layer"}, "group"), ({"amounts": [0.1]}, "amounts")):
            st, _, body = d.json("POST", "/v1/jobs", {"model": "thucnews-bert-l4-h256.pt", "targets": ["x"],
                                                      "amount": 0.1, **change})
            test_daemon.check_error(st, body, 400, f"a prune job with {change}", field)
        st, _, body = d.json("POST", "/v1/jobs", {"model": "thucnews-bert-l4-h256.pt", "amount": 0.1,
                                                  "scope": "global", "targets": [{"glob": "x", "amount": 0.2}]})
        test_daemon.check_error(st, body, 400, "per-target amounts with scope global", "targets[0].amount")
        st, _, body = d.json("POST", "/v1/jobs", {"model": "thucnews-bert-l4-h256.pt", "amount": 0.1,
                                                  "targets": [{"glob": "x", "amount": 2.5}]})
        test_daemon.check_error(st, body, 400, "per-target amount out of range", "targets[0].amount")
        st, _, body = d.json("POST", "/v1/jobs", {"model": "thucnews-bert-l4-h256.pt", "amount": 0.1,
                                                  "targets": [{"glob": "x", "amount": 0.2, "dim": 1}]})
        test_daemon.check_error(st, body, 400, "per-target unknown key", "targets[0].dim")
        st, _, body = d.json("POST", "/v1/jobs", dict(req, method="structured", targets=["bert.encoder.layer.0"]))
        test_daemon.check_error(st, body, 400, "a structured sweep of TorchScript", "method")
    finally:
        rc, _ = d.stop()
        check(rc == 0, "the daemon exits 0 on SIGTERM", rc)
        if test_daemon.failed:
            print(d.tail())

    # the command line: exit 2 with one line naming the field
    path = os.path.join(tmp, "bad.json")
    with open(path, "w") as f:
        json.dump(dict(req, model=shared("models", "thucnews-bert-l4-h256.pt"), amounts=[0.5, 0.5]), f)
    p = subprocess.run([PRUNERD, "run", path], capture_output=True, text=True)
    check(p.returncode == 2 and len(p.stderr.strip().split("\n")) == 1 and "amounts" in p.stderr,
          "prunerd run: a bad sweep is exit 2 with one line naming amounts", (p.returncode, p.stderr))


def test_target_amounts(tmp):
    """A prune job whose targets carry their own amounts equals the jobs of each."""
    model = shared("models", "thucnews-bert-l4-h256.pt")
    q0, k1 = "bert.encoder.layer.0.attention.self.query.weight", "bert.encoder.layer.1.attention.self.key.weight"
    req = {"model": model, "method": "l1_unstructured", "amount": 0.3, "scope": "local",
           "targets": [{"glob": q0, "amount": 0.7}, k1, {"glob": "bert.encoder.layer.2.*.value", "amount": 100}],
           "outputs": ["state_dict"]}
    rc, r, out = run(tmp, "tamounts", req)
    if not check(rc == 0 and r, "a job with per-target amounts runs", out[-500:]):
        return
    zeros = {p["name"]: p["zeros"] for p in r["sparsity"]["parameters"]}
    check(zeros == {q0: round(0.7 * 65536), k1: round(0.3 * 65536),
                    "bert.encoder.layer.2.attention.self.value.weight": 100},
          "each target pruned by its own amount (a count too), the rest by the top-level one", zeros)
    req["targets"].append({"glob": "bert.encoder.layer.0.attention.self.*", "amount": 0.5})
    rc, r, out = run(tmp, "tconflict", req)
    check(rc == 2 and "targets[3]" in out and "another amount" in out,
          "a parameter two entries give different amounts is refused", (rc, out))


def main():
    for what, path in (("PRUNERD_BUILD's prunerd", PRUNERD), ("PRUNERD_BUILD's tests/shim_driver", SHIM),
                       ("PRUNERD_SHARED's model", shared("models", "thucnews-bert-l4-h256.pt")),
                       ("PRUNERD_SHARED's dev.txt", shared("data", "thucnews", "dev.txt"))):
        if not SHARED or not os.path.exists(path):
            print(f"FAIL {what} is missing: {path!r} (set PRUNERD_BUILD and PRUNERD_SHARED)\n0 passed, 1 failed")
            return 1
    if not test_daemon.BIN:
        print("FAIL PRUNERD_BIN is not set\n0 passed, 1 failed")
        return 1
    tmp = tempfile.mkdtemp(prefix="prunerd-sweep-")
    try:
        sd = write_state_dict(tmp)
        jobs = os.path.join(tmp, "jobs")
        os.makedirs(jobs)
        test_unstructured(jobs)
        test_structured(jobs, sd)
        test_restore(sd)
        test_target_amounts(jobs)
        test_recommendation(jobs)
        test_rest(tmp, sd)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{test_daemon.passed} passed, {test_daemon.failed} failed")
    return 1 if test_daemon.failed else 0


if __name__ == "__main__":
    sys.exit(main())
