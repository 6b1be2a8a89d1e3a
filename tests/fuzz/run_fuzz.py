#!/usr/bin/python3
"""run_fuzz.py - one libFuzzer target as a test: its regression inputs, then a bounded fuzzing run

usage: run_fuzz.py FUZZER --name NAME --corpus DIR --regress DIR [--lsan-supp FILE]

1. Every file in the regression folder (a crash once found, now fixed) is
   run through FUZZER; libFuzzer runs files it is given without fuzzing.
2. FUZZER fuzzes for PRUNERD_FUZZ_SECONDS (default 30) seconds with a fresh
   scratch corpus in a temporary folder first (where libFuzzer writes what
   it finds) and the seed corpus second (only read), so nothing is written
   into the source tree; crash, leak and timeout inputs go to that folder.
3. Prints the number of executions; exits 1 on any crash, leak, timeout,
   out-of-memory or sanitizer report, naming the input that caused it
   (kept, with its folder) and printing the report.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

# libFuzzer's and the sanitizers' words for "this input is a finding".
REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)"
                    r"|runtime error:|==\d+== ?ERROR|SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer")
ARTIFACT = re.compile(r"Test unit written to (\S+)")


def sanitizer_env(supp):
    env = dict(os.environ)
    lsan = "print_suppressions=0"
    if supp:
        lsan = "suppressions=" + supp + ":" + lsan
    # The suite's own settings win; what is missing is filled in.
    env.setdefault("LSAN_OPTIONS", lsan)
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    return env


def report(out):
    """The sanitizer or libFuzzer report in out, from its first line."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if REPORT.search(line) or "deadly signal" in line:
            return "\n".join(lines[max(0, i - 2):i + 80])
    return "\n".join(lines[-60:])


def run_regressions(fuzzer, folder, env):
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder)) if os.path.isdir(folder) else []
    files = [f for f in files if os.path.isfile(f)]
    failed = 0
    for f in files:
        p = subprocess.run([fuzzer, "-rss_limit_mb=2048", "-timeout=10", f], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           errors="replace", timeout=300)
        if p.returncode != 0 or REPORT.search(p.stdout):
            failed += 1
            print("FAIL: regression input %s (exit %d):\n%s" % (f, p.returncode, report(p.stdout)))
    print("%d regression input(s) from %s, %d failed" % (len(files), folder, failed))
    return failed == 0


def fuzz(fuzzer, name, corpus, seconds, env):
    work = tempfile.mkdtemp(prefix="prunerd-fuzz-%s-" % name)
    scratch = os.path.join(work, "corpus")
    os.mkdir(scratch)
    cmd = [fuzzer, scratch] + ([corpus] if os.path.isdir(corpus) else []) + [
        "-max_total_time=%d" % seconds, "-rss_limit_mb=2048", "-timeout=10",
        "-artifact_prefix=" + work + "/", "-print_final_stats=1"]
    print("running:", " ".join(cmd), flush=True)
    try:
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, errors="replace", timeout=seconds + 300)
        out, rc = p.stdout, p.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        out += "\nrun_fuzz.py: the fuzzer ran %d s past -max_total_time: killed" % 300
        rc = -9
    execs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", out)
    done = re.findall(r"^#(\d+)\s+DONE", out, re.M)
    secs = re.findall(r"^Done (\d+) runs in (\d+) second", out, re.M)
    n = execs[-1] if execs else done[-1] if done else "?"
    print("%s: %s executions%s" % (name, n, " in %s s" % secs[-1][1] if secs else ""))
    artifacts = sorted(set(ARTIFACT.findall(out)))
    artifacts += [os.path.join(work, f) for f in sorted(os.listdir(work))
                  if re.match(r"(crash|leak|timeout|oom|slow-unit)-", f)
                  and os.path.join(work, f) not in artifacts]
    if rc != 0 or REPORT.search(out) or artifacts:
        print("FAIL: %s: fuzzer exit %d" % (name, rc))
        for a in artifacts:
            print("crashing input:", a)
        print("(kept in %s)" % work)
        print(report(out))
        return False
    shutil.rmtree(work, ignore_errors=True)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fuzzer")
    ap.add_argument("--name", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--regress", required=True)
    ap.add_argument("--lsan-supp", default="")
    a = ap.parse_args()
    seconds = int(os.environ.get("PRUNERD_FUZZ_SECONDS", "30"))
    env = sanitizer_env(a.lsan_supp)
    ok = run_regressions(a.fuzzer, a.regress, env)
    ok = fuzz(a.fuzzer, a.name, a.corpus, seconds, env) and ok
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
