#!/usr/bin/env python3
"""test_hostile.py - `prunerd inspect` on the hostile corpus of make_hostile.py.

Regenerates the corpus into a temporary folder and runs
`$PRUNERD_BIN inspect PATH [--model-config CONFIG]` on every manifest entry (60 s each).
Each must exit with status 2, write exactly one line to stderr naming the problem (the
entry's "expect", case-insensitive, found in the line with the input's own path taken out),
and leave no sanitizer report, signal or canary file (a pickle that ran).  The controls
(controls.json) must exit 0.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile

from oracle import Tally

HERE = os.path.dirname(os.path.abspath(__file__))
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                   "runtime error:", "ThreadSanitizer")

t = Tally("test_hostile")
exe = os.environ.get("PRUNERD_BIN", os.path.join(HERE, "..", "build", "server", "prunerd"))
if not os.access(exe, os.X_OK):
    print(f"FAIL no prunerd binary at {exe} (set PRUNERD_BIN; meson test does)")
    sys.exit(1)
tmp = tempfile.mkdtemp(prefix="prunerd-test-hostile-")
corpus = os.path.join(tmp, "corpus")
gen = subprocess.run([sys.executable, os.path.join(HERE, "make_hostile.py"), corpus],
                     capture_output=True, text=True, timeout=600,
                     env=dict(os.environ, HF_HUB_DISABLE_PROGRESS_BARS="1"))
if gen.returncode != 0:
    print(f"FAIL make_hostile.py exited {gen.returncode}: {gen.stderr.strip()[-3000:]}")
    sys.exit(1)
manifest = json.load(open(os.path.join(corpus, "manifest.json")))
controls = json.load(open(os.path.join(corpus, "controls.json")))
t.check(len(manifest) >= 30, f"the manifest lists {len(manifest)} inputs, want at least 30")


def inspect(e):
    """Runs prunerd inspect on a manifest entry: (what, CompletedProcess or None, paths in it)."""
    path = os.path.join(corpus, e["file"])
    args = [exe, "inspect", path]
    paths = [path, os.path.realpath(path), e["file"], os.path.basename(path)]
    if e.get("config"):
        cfg = os.path.join(corpus, e["config"])
        args += ["--model-config", cfg]
        paths += [cfg, os.path.realpath(cfg), e["config"]]
    what = e["file"] + (f" --model-config {e['config']}" if e.get("config") else "")
    try:
        return what, subprocess.run(args, capture_output=True, text=True, errors="replace",
                                    timeout=60, cwd=tmp), paths
    except subprocess.TimeoutExpired:
        t.check(False, f"{what}: still running after 60 s")
        return what, None, paths


def status(rc):
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit {rc}"


def no_sanitizer(what, p):
    out = p.stdout + p.stderr
    marks = [m for m in SANITIZER_MARKS if m in out]
    t.check(not marks, f"{what}: sanitizer report ({', '.join(marks)}): {p.stderr.strip()[-1500:]}")
    t.check(p.returncode >= 0, f"{what}: {status(p.returncode)}")


for e in manifest:
    what, p, paths = inspect(e)
    if p is None:
        continue
    no_sanitizer(what, p)
    t.check(p.returncode == 2, f"{what}: expected exit 2, got {status(p.returncode)}; stderr: "
            f"{p.stderr.strip()[-500:]!r}")
    lines = p.stderr.split("\n")
    one = len(lines) == 2 and lines[1] == "" and lines[0].strip() != ""
    t.check(one, f"{what}: expected one line on stderr, got {len(p.stderr.splitlines())}: "
            f"{p.stderr[-800:]!r}")
    # The input's own name often says what is wrong with it: match without it.
    msg = p.stderr.strip()
    for s in sorted(set(paths), key=len, reverse=True):
        msg = msg.replace(s, "<input>")
    t.check(e["expect"] in msg.lower(), f"{what}: expected \"{e['expect']}\" in the error, got "
            f"{p.stderr.strip()[:500]!r}")

for e in controls:
    what, p, _ = inspect(e)
    if p is None:
        continue
    no_sanitizer(what, p)
    t.check(p.returncode == 0, f"control {what}: expected exit 0, got {status(p.returncode)}: "
            f"{p.stderr.strip()[-800:]!r}")

canaries = [f for f in os.listdir(corpus) if f.startswith("CANARY")]
t.check(not canaries, f"a hostile pickle ran code: {canaries}")

if not t.failed:
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
else:
    print(f"the corpus stays in {corpus}")
t.done()
