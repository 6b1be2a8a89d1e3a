#!/usr/bin/env python3
"""pg_server.py - a throwaway PostgreSQL server for the tests, started by the tests themselves.

    .venv/bin/python tests/pg_server.py --run PROGRAM [ARGS...]

initdb into a temporary folder as the `postgres` system user (the server
refuses to run as root; Debian's postgresql package creates that user),
start it on a free loopback port, run PROGRAM with PRUNERD_TEST_PG set to a
keyword/value connection string without dbname ("host=127.0.0.1 port=N
user=postgres"), stop the server and remove the folder; exit with PROGRAM's
status.  Exits 77 (meson's "skipped") with a message only when the server
binaries are missing.  Python tests import PgServer.
"""
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time

PG_BIN = os.environ.get("PRUNERD_PG_BIN", "/usr/lib/postgresql/15/bin")
SKIP = 77


def missing():
    """Why a server cannot be started here, or None."""
    for b in ("initdb", "postgres", "psql", "pg_isready"):
        if not os.access(os.path.join(PG_BIN, b), os.X_OK):
            return f"PostgreSQL server binaries are missing ({PG_BIN}/{b}); install postgresql-15"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        if os.geteuid() == 0:
            return "no 'postgres' system user to run the server as (the postgresql package creates it)"
    return None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class PgServer:
    """One postgres on 127.0.0.1:port with a data folder of its own (trust auth)."""

    def __init__(self, fsync=True):
        self.root = tempfile.mkdtemp(prefix="prunerd-pg-")
        os.chmod(self.root, 0o755)
        self.data = os.path.join(self.root, "data")
        self.sock = os.path.join(self.root, "sock")
        self.log_path = os.path.join(self.root, "postgres.log")
        self.port = free_port()
        self.fsync = fsync
        self.proc = None
        self.user = None
        if os.geteuid() == 0:
            self.user = pwd.getpwnam("postgres")
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        self._as_user([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-A", "trust", "-U", "postgres",
                       "--no-sync", "-E", "UTF8", "--locale=C"], check=True)
        os.makedirs(self.sock, exist_ok=True)
        if self.user:
            os.chown(self.sock, self.user.pw_uid, self.user.pw_gid)
        self.start()

    def _preexec(self):
        if self.user:
            os.setgid(self.user.pw_gid)
            os.setgroups([])
            os.setuid(self.user.pw_uid)

    def _as_user(self, cmd, check=False, **kw):
        return subprocess.run(cmd, preexec_fn=self._preexec, capture_output=True, text=True, check=check, **kw)

    def start(self, timeout=30):
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [os.path.join(PG_BIN, "postgres"), "-D", self.data, "-p", str(self.port), "-k", self.sock,
             "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200",
             "-c", "fsync=" + ("on" if self.fsync else "off")],
            stdout=log, stderr=log, preexec_fn=self._preexec)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited: " + self.tail())
            r = subprocess.run([os.path.join(PG_BIN, "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                               capture_output=True)
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("postgres did not start: " + self.tail())

    def stop(self, mode="fast", timeout=30):
        """Stops the server (SIGINT: fast shutdown, closing every connection)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal({"smart": 15, "fast": 2, "immediate": 3}[mode])
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, down_s=0.0):
        self.stop()
        time.sleep(down_s)
        self.start()

    def tail(self):
        try:
            with open(self.log_path) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def conninfo(self, dbname=None):
        s = f"host=127.0.0.1 port={self.port} user=postgres"
        return s + (f" dbname={dbname}" if dbname else "")

    def psql(self, sql, dbname="postgres"):
        r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                            str(self.port), "-U", "postgres", "-d", dbname, "-c", sql],
                           capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"psql {sql!r}: {r.stderr}")
        return r.stdout.strip()

    def createdb(self, name):
        self.psql(f"CREATE DATABASE {name}")
        return self.conninfo(name)

    def destroy(self):
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def main(argv):
    if len(argv) < 3 or argv[1] != "--run":
        sys.stderr.write(__doc__)
        return 2
    why = missing()
    if why:
        print(f"SKIP: {why}")
        return SKIP
    srv = PgServer()
    try:
        env = dict(os.environ, PRUNERD_TEST_PG=srv.conninfo())
        return subprocess.run(argv[2:], env=env).returncode
    finally:
        srv.destroy()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
