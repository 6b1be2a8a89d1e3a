"""test_metrics_oracle.py - core/metrics against sklearn's classification_report and confusion_matrix.

Runs tests/metrics_driver (built by meson) on random label sets and compares
its JSON with sklearn.metrics.classification_report(..., labels=range(k),
output_dict=True, zero_division=0) and confusion_matrix(..., labels=range(k)):
within 1e-9 and, since core/metrics follows numpy's summation order, bit for
bit.  The text report is compared character for character with sklearn's.
"""
import json
import math
import os
import random
import subprocess
import sys
import warnings

passed = 0
failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, file=sys.stderr)


def finish():
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or not passed else 0)


try:
    import sklearn
    from sklearn.metrics import classification_report, confusion_matrix
except ImportError as e:
    print(f"FAIL: sklearn is not importable from {sys.executable}: {e}", file=sys.stderr)
    failed += 1
    finish()

build = os.environ.get("PRUNERD_BUILD")
if not build:
    print("FAIL: PRUNERD_BUILD is not set (run through meson test)", file=sys.stderr)
    failed += 1
    finish()
driver = os.path.join(build, "tests", "metrics_driver")
if not os.access(driver, os.X_OK):
    print(f"FAIL: {driver} is missing (build the project first)", file=sys.stderr)
    failed += 1
    finish()

warnings.simplefilter("ignore")  # sklearn's UndefinedMetricWarning and friends


def run_driver(k, yt, yp, names=None, digits=None):
    args = [driver]
    if digits is not None:
        args += ["--report", str(digits)]
    if names is not None:
        args += ["--names"]
    text = f"{k} {len(yt)}\n"
    if names is not None:
        text += "".join(n + "\n" for n in names)
    text += f"{' '.join(map(str, yt))}\n{' '.join(map(str, yp))}\n"
    return subprocess.run(args, input=text, capture_output=True, text=True, timeout=30)


def close(a, b):
    return math.isclose(a, b, rel_tol=0, abs_tol=1e-9)


def compare_numbers(tag, k, yt, yp):
    r = run_driver(k, yt, yp)
    if r.returncode != 0:
        check(False, f"{tag}: driver exited {r.returncode}: {r.stderr.strip()}")
        return
    got = json.loads(r.stdout)
    labels = list(range(k))
    rep = classification_report(yt, yp, labels=labels, output_dict=True, zero_division=0)
    cm = confusion_matrix(yt, yp, labels=labels).tolist()

    check(set(got) == {"accuracy", "macro_precision", "macro_recall", "macro_f1",
                       "weighted_precision", "weighted_recall", "weighted_f1",
                       "per_class", "confusion", "samples"},
          f"{tag}: keys {sorted(got)}")
    # classification_report names the micro average "accuracy" only when
    # every label asked for occurs; the number is the same either way.
    want_acc = rep["accuracy"] if "accuracy" in rep else rep["micro avg"]["precision"]
    pairs = [("accuracy", got["accuracy"], want_acc)]
    for avg in ("macro", "weighted"):
        for key, skey in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            pairs.append((f"{avg}_{key}", got[f"{avg}_{key}"], rep[f"{avg} avg"][skey]))
    check(len(got["per_class"]) == k, f"{tag}: {len(got['per_class'])} per_class rows, want {k}")
    for c, row in enumerate(got["per_class"][:k]):
        s = rep[str(c)]
        check(row["name"] == str(c), f"{tag}: class {c} name {row['name']!r}")
        check(row["support"] == s["support"], f"{tag}: class {c} support {row['support']} vs {s['support']}")
        for key, skey in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            pairs.append((f"class {c} {key}", row[key], s[skey]))
    for name, a, b in pairs:
        check(close(a, b), f"{tag}: {name} {a!r} vs sklearn {b!r}")
        check(a == b, f"{tag}: {name} {a!r} is not bit-identical to sklearn's {b!r}")
    check(got["confusion"] == cm, f"{tag}: confusion {got['confusion']} vs {cm}")
    check(got["samples"] == len(yt), f"{tag}: samples {got['samples']} vs {len(yt)}")


def compare_report(tag, k, yt, yp, names, digits):
    r = run_driver(k, yt, yp, names=names, digits=digits)
    if r.returncode != 0:
        check(False, f"{tag}: driver exited {r.returncode}: {r.stderr.strip()}")
        return
    want = classification_report(yt, yp, labels=list(range(k)), target_names=names,
                                 digits=digits, zero_division=0)
    ok = r.stdout == want
    check(ok, f"{tag}: report differs\n--- got ---\n{r.stdout}--- sklearn ---\n{want}")


rng = random.Random(20240501)


def random_case(i):
    k = rng.randint(2, 12)
    n = rng.randint(1, 500)
    kind = i % 6
    if kind == 0:  # uniform noise
        yt = [rng.randrange(k) for _ in range(n)]
        yp = [rng.randrange(k) for _ in range(n)]
    elif kind == 1:  # mostly right, as a real classifier
        yt = [rng.randrange(k) for _ in range(n)]
        yp = [y if rng.random() < 0.8 else rng.randrange(k) for y in yt]
    elif kind == 2:  # some classes never predicted, some never true
        ts = rng.sample(range(k), rng.randint(1, k))
        ps = rng.sample(range(k), rng.randint(1, k))
        yt = [rng.choice(ts) for _ in range(n)]
        yp = [rng.choice(ps) for _ in range(n)]
    elif kind == 3:  # all correct, maybe over a subset of the classes
        ts = rng.sample(range(k), rng.randint(1, k))
        yt = [rng.choice(ts) for _ in range(n)]
        yp = list(yt)
    elif kind == 4:  # all wrong
        yt = [rng.randrange(k) for _ in range(n)]
        yp = [(y + rng.randint(1, k - 1)) % k for y in yt]
    else:  # one class predicted for everything
        yt = [rng.randrange(k) for _ in range(n)]
        yp = [rng.randrange(k)] * n
    return k, yt, yp


for i in range(300):
    k, yt, yp = random_case(i)
    compare_numbers(f"random#{i} (k={k}, n={len(yt)})", k, yt, yp)

# Edges: a single sample, a single class.
compare_numbers("one sample", 3, [2], [2])
compare_numbers("one sample wrong", 3, [2], [0])
compare_numbers("one class", 1, [0, 0, 0], [0, 0, 0])
# No samples at all: sklearn 1.2 gave every score 0; sklearn 1.9 refuses
# empty input, so prunerd keeps the zeros (docs/pruning.md) and they are
# checked here without an oracle.
r = run_driver(4, [], [])
check(r.returncode == 0, f"no samples: driver exited {r.returncode}: {r.stderr.strip()}")
if r.returncode == 0:
    got = json.loads(r.stdout)
    zeros = [got[k] for k in ("accuracy", "macro_precision", "macro_recall", "macro_f1",
                              "weighted_precision", "weighted_recall", "weighted_f1")]
    check(zeros == [0.0] * 7 and got["samples"] == 0, f"no samples: scores {zeros}, want all 0")
    check(all(row["f1"] == 0 and row["support"] == 0 for row in got["per_class"]),
          f"no samples: per_class {got['per_class']}")
# More classes than numpy's 8-way unrolled block, to exercise the pairwise sum.
k = 40
yt = [rng.randrange(k) for _ in range(2000)]
compare_numbers("40 classes", k, yt, [y if rng.random() < 0.6 else rng.randrange(k) for y in yt])
k = 300
yt = [rng.randrange(k) for _ in range(3000)]
compare_numbers("300 classes", k, yt, [y if rng.random() < 0.6 else rng.randrange(k) for y in yt])

# Out-of-range labels are refused.
r = run_driver(3, [0, 3], [0, 1])
check(r.returncode == 1 and "true label 3" in r.stderr, f"true label 3 of 3 classes: rc {r.returncode} {r.stderr!r}")
r = run_driver(3, [0, 1], [0, -1])
check(r.returncode == 1 and "predicted label -1" in r.stderr, f"predicted -1: rc {r.returncode} {r.stderr!r}")

# Text reports.
thuc = ["finance", "realty", "stocks", "education", "science", "society",
        "politics", "sports", "game", "entertainment"]
for digits in (2, 4):
    yt = [rng.randrange(10) for _ in range(1000)]
    yp = [y if rng.random() < 0.85 else rng.randrange(10) for y in yt]
    compare_report(f"THUCNews names digits={digits}", 10, yt, yp, thuc, digits)
yt = [rng.randrange(10) for _ in range(300)]
compare_report("index names digits=2", 10, yt, [y if rng.random() < 0.5 else 3 for y in yt], None, 2)
compare_report("short names digits=3", 4, [0, 1, 2, 3, 3, 2], [0, 2, 2, 3, 1, 1], ["a", "b", "c", "d"], 3)
compare_report("class 2 unseen (still the accuracy row)", 3, [0, 0, 1, 1], [0, 1, 1, 1], ["x", "y", "z"], 2)
compare_report("long name digits=15", 3, [0, 1, 2, 2], [0, 1, 1, 2],
               ["a-rather-long-class-name", "b", "c"], 15)
compare_report("all wrong digits=0", 3, [0, 1, 2], [1, 2, 0], ["p", "q", "r"], 0)
compare_report("all wrong digits=2", 4, [0, 1, 2, 3, 3] * 300, [1, 2, 3, 0, 0] * 300,
               ["a", "b", "c", "d"], 2)
# No samples: sklearn 1.9 refuses empty input; prunerd prints the zero report.
r = run_driver(3, [], [], names=["a", "b", "c"], digits=2)
check(r.returncode == 0 and "accuracy" in r.stdout and "0.00" in r.stdout,
      f"no samples report: exit {r.returncode}\n{r.stdout}{r.stderr}")
compare_report("non-ASCII names", 3, [0, 1, 2, 2], [0, 2, 1, 2], ["财经", "房产", "股票"], 2)

finish()
