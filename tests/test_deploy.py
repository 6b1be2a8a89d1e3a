#!/usr/bin/env python3
"""test_deploy.py - the Dockerfile, deploy/ and docs/ checked against what they describe.

Docker cannot run here, so the Dockerfile is parsed: its apt packages must be
tools/deps.sh's (plus curl for the HEALTHCHECK), and the config it writes must
make prunerd refuse 0.0.0.0 without tokens and serve with them.  The systemd
unit goes through `systemd-analyze verify` where that exists (the one check
that may be skipped, with a message).  docs/api.md must name every route of
api/routes.c and docs/operations.md every config key of server/config.c.
"""
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
BIN = os.environ.get("PRUNERD_BIN", "")
import test_daemon as td  # noqa: E402  (one tally for the integration tests)
from test_daemon import check  # noqa: E402


def read(rel):
    with open(os.path.join(SRC, rel), encoding="utf-8") as f:
        return f.read()


def deps_packages():
    """The pkgs=( ... ) array of tools/deps.sh, comments stripped."""
    m = re.search(r"^pkgs=\((.*?)^\)", read("tools/deps.sh"), re.S | re.M)
    if not m:
        return None
    words = []
    for line in m.group(1).splitlines():
        words += shlex.split(line.split("#", 1)[0])
    return words


def dockerfile_instructions():
    """[(INSTRUCTION, arguments)] with continuation lines joined and comments dropped."""
    out, cur = [], ""
    for line in read("Dockerfile").splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if cur and line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        cur += line
        word, _, rest = cur.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        cur = ""
    return out


def apt_packages(run):
    """Packages named by each 'apt-get install' in a RUN line (flags dropped)."""
    pkgs = []
    for cmd in re.split(r"&&|;|\|\|", run):
        words = shlex.split(cmd)
        if "apt-get" in words and "install" in words:
            for w in words[words.index("install") + 1:]:
                if not w.startswith("-"):
                    pkgs.append(w)
    return pkgs


def test_dockerfile(tmp):
    ins = dockerfile_instructions()
    kinds = [k for k, _ in ins]
    args = {k: [a for kk, a in ins if kk == k] for k in kinds}
    check(ins and ins[0][0] == "FROM" and re.fullmatch(r"debian:bookworm(-slim)?(@sha256:[0-9a-f]+)?",
                                                       ins[0][1].split()[0]) is not None,
          "Dockerfile starts FROM debian:bookworm", ins[:1])
    deps = deps_packages()
    check(deps and len(deps) >= 10, "tools/deps.sh has a pkgs=( ) list", deps)
    apt = [p for run in args.get("RUN", []) for p in apt_packages(run)]
    check(apt == (deps or []) + ["curl"],
          "Dockerfile installs tools/deps.sh's packages, in order, plus curl", (apt, deps))
    check(any("curl" in h and "/healthz" in h for h in args.get("HEALTHCHECK", [])),
          "HEALTHCHECK curls /healthz (why curl is installed)", args.get("HEALTHCHECK"))
    check(args.get("EXPOSE") == ["8080"], "EXPOSE 8080", args.get("EXPOSE"))
    check(any("/var/lib/prunerd" in v for v in args.get("VOLUME", [])), "VOLUME /var/lib/prunerd",
          args.get("VOLUME"))
    check(args.get("USER") == ["prunerd"] and kinds.index("USER") > max(
        i for i, k in enumerate(kinds) if k == "RUN"), "USER prunerd after the last RUN", args.get("USER"))
    check(any(re.search(r"useradd [^&]*\bprunerd\s*(&&|$)", r) for r in args.get("RUN", [])),
          "the prunerd user is created", args.get("RUN"))
    check("TORCH=python" in args.get("ARG", []), "ARG TORCH=python (the main build)", args.get("ARG"))
    venv = [a.split("=", 1)[1] for a in args.get("ARG", []) if a.startswith("VENV=")]
    check(venv == ["/opt/prunerd/venv"], "ARG VENV=/opt/prunerd/venv", args.get("ARG"))
    build = " ".join(args.get("RUN", []))
    check("--buildtype=release" in build and '-Dtorch="${TORCH}"' in build
          and '-Dpython="${VENV}/bin/python"' in build,
          'meson setup --buildtype=release -Dtorch="${TORCH}" -Dpython="${VENV}/bin/python"', build[:400])
    # the venv gets exactly the torch that tools/requirements.txt pins
    check('python3 -m venv "${VENV}"' in build and "grep '^torch==' tools/requirements.txt" in build,
          "the image's venv installs the pinned torch", build[:400])
    pins = [l for l in read("tools/requirements.txt").splitlines() if l.startswith("torch==")]
    check(len(pins) == 1, "tools/requirements.txt pins torch once", pins)
    cmd = args.get("CMD", [""])[-1]
    check(cmd == '["prunerd", "serve", "--config", "/etc/prunerd/prunerd.conf"]', "CMD", cmd)

    # The config the image writes: apply its sed to the example, then ask prunerd.
    sed = [r for r in args.get("RUN", []) if "prunerd.conf.example" in r]
    m = re.search(r"sed -e 's/(.*?)/(.*?)/'", sed[0]) if sed else None
    if not check(m is not None, "the image's config is made with sed from the example", sed):
        return
    example = read("deploy/prunerd.conf.example")
    conf, n = re.subn("^" + m.group(1).lstrip("^").replace(".", r"\."), m.group(2), example,
                      flags=re.M)
    if not check(n == 1 and re.search(r"^listen = 0\.0\.0\.0:8080$", conf, re.M),
                 "the sed turns the example's listen into 0.0.0.0:8080", n):
        return
    for d in ("models", "data"):
        os.makedirs(os.path.join(tmp, d))
    path = os.path.join(tmp, "docker.conf")
    with open(path, "w") as f:
        f.write(conf)
    roots = ["--data-dir", os.path.join(tmp, "var"), "--model-root", os.path.join(tmp, "models"),
             "--data-root", os.path.join(tmp, "data")]
    r = subprocess.run([BIN, "serve", "--config", path] + roots, capture_output=True, text=True,
                       timeout=30)
    check(r.returncode == 2 and "refusing to listen on 0.0.0.0 without tokens" in r.stderr,
          "the image's config without tokens: prunerd refuses to start", (r.returncode, r.stderr[-500:]))
    secret = "docker-test-secret"
    with open(path, "a") as f:
        f.write(f"ops = admin:{hashlib.sha256(secret.encode()).hexdigest()}\n")
    serve_with_tokens(path, roots, secret, tmp)


def serve_with_tokens(path, roots, secret, tmp):
    """With a [tokens] line the same config serves on 0.0.0.0 (port 0 here) and asks for the token."""
    log = os.path.join(tmp, "docker.log")
    with open(log, "w") as lf:
        p = subprocess.Popen([BIN, "serve", "--config", path, "--listen", "0.0.0.0:0"] + roots,
                             stdout=lf, stderr=lf)
    port, deadline = None, time.time() + 20
    while port is None and time.time() < deadline and p.poll() is None:
        with open(log) as f:
            m = re.search(r"listening on http://0\.0\.0\.0:(\d+)", f.read())
        port = int(m.group(1)) if m else None
        time.sleep(0.05)
    try:
        if not check(port is not None, "with a token the image's config serves on 0.0.0.0",
                     open(log).read()[-1000:]):
            return
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
            check(resp.status == 200, "the HEALTHCHECK URL answers 200 without a token", resp.status)
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/jobs", timeout=10)
            check(False, "GET /v1/jobs without a token is refused")
        except urllib.error.HTTPError as e:
            check(e.code == 401, "GET /v1/jobs without a token is 401", e.code)
        rq = urllib.request.Request(f"http://127.0.0.1:{port}/v1/jobs",
                                    headers={"Authorization": "Bearer " + secret})
        with urllib.request.urlopen(rq, timeout=10) as resp:
            check(resp.status == 200, "GET /v1/jobs with the token is 200", resp.status)
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            check(p.wait(30) == 0, "SIGTERM stops it with 0")
        except subprocess.TimeoutExpired:
            p.kill()
            check(False, "SIGTERM stops it within 30 s")


def test_dockerignore():
    lines = {l.strip() for l in read(".dockerignore").splitlines() if l.strip() and l[0] != "#"}
    check({".git", "build*", "var"} <= lines, ".dockerignore keeps .git, build trees and var out", lines)
    check(not any(l.startswith("libtorch") for l in lines),
          ".dockerignore lets ./libtorch in (TORCH_DIR=/src/libtorch)", lines)


def test_config_example():
    """prunerd serve parses --config before --help: the examples must parse."""
    for name in ("deploy/prunerd.conf.example", "deploy/prunerd-group.conf.example"):
        r = subprocess.run([BIN, "serve", "--config", os.path.join(SRC, name), "--help"],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, f"{name} parses", (r.returncode, r.stderr))


def test_systemd(tmp):
    exe = shutil.which("systemd-analyze")
    if not exe:
        print("SKIP systemd-analyze verify deploy/prunerd.service: systemd-analyze is not installed")
        return
    for name in ("deploy/prunerd.service", "deploy/prunerd-group.service"):
        verify_unit(tmp, exe, name)


def verify_unit(tmp, exe, name):
    unit = read(name)
    # The unit runs /usr/local/bin/prunerd; verify checks that it is executable,
    # so point it at the binary under test and change nothing else.
    fixed, n = re.subn(r"^ExecStart=/usr/local/bin/prunerd ", f"ExecStart={BIN} ", unit, flags=re.M)
    check(n == 1, "the unit has one ExecStart=/usr/local/bin/prunerd", n)
    check(re.search(r"^ExecStart=.* serve --config /etc/prunerd/prunerd\.conf$", unit, re.M),
          "the unit runs prunerd serve --config /etc/prunerd/prunerd.conf")
    d = os.path.join(tmp, "unit-" + os.path.basename(name))
    os.makedirs(d)
    path = os.path.join(d, os.path.basename(name))
    with open(path, "w") as f:
        f.write(fixed)
    r = subprocess.run([exe, "verify", path], capture_output=True, text=True, timeout=60)
    out = (r.stdout + r.stderr).strip()
    check(r.returncode == 0 and out == "", f"systemd-analyze verify {name} is clean",
          (r.returncode, out))


def test_docs():
    routes = re.findall(r'\{"(GET|POST|DELETE|PUT|PATCH)", "([^"]+)"', read("api/routes.c"))
    check(len(routes) >= 12, "api/routes.c has its route table", routes)
    api = read("docs/api.md") if os.path.exists(os.path.join(SRC, "docs/api.md")) else ""
    for method, pattern in routes:
        check(re.search(rf"^#+ .*\b{method} {re.escape(pattern)}(\s|`|$)", api, re.M) is not None,
              f"docs/api.md has a section for {method} {pattern}")
    cfg = read("server/config.c")
    keys = set(re.findall(r'KEY\("(\w+)", "(\w+)"\)', cfg))
    flags = re.findall(r'\{"(--[\w-]+)", "\w+", "\w+"\}', cfg)
    check(len(keys) >= 13 and len(flags) >= 13, "server/config.c keys and flags found", (keys, flags))
    ops = read("docs/operations.md") if os.path.exists(os.path.join(SRC, "docs/operations.md")) else ""
    for section, key in sorted(keys):
        check(re.search(rf"`{key}`", ops) is not None and f"[{section}]" in ops,
              f"docs/operations.md documents [{section}] {key}")
    for flag in flags:
        check(f"`{flag}" in ops, f"docs/operations.md documents {flag}")
    codes = set(re.findall(r'api_reply_error\(\w+, \d+, "(\w+)"', read("api/jobs.c") + read("api/models.c")
                           + read("api/routes.c") + read("server/http.c") + read("api/health.c")))
    for code in sorted(codes):
        check(f"`{code}`" in api, f"docs/api.md lists the error code {code}")


def main():
    if not BIN or not os.access(BIN, os.X_OK):
        print(f"FAIL PRUNERD_BIN is not an executable: {BIN!r}\n0 passed, 1 failed")
        return 1
    tmp = tempfile.mkdtemp(prefix="prunerd-deploy-")
    try:
        test_dockerfile(tmp)
        test_dockerignore()
        test_config_example()
        test_systemd(tmp)
        test_docs()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{td.passed} passed, {td.failed} failed")
    return 1 if td.failed or not td.passed else 0


if __name__ == "__main__":
    sys.exit(main())
