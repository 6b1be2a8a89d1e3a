"""prunerd_client.py - a small client for the prunerd REST API, standard library only.

Python 3.9+, no dependencies (urllib).  Copy this one file next to a notebook,
or put ``clients/python`` on ``sys.path``.

Example::

    from prunerd_client import Client, PrunerdError

    c = Client("http://127.0.0.1:8080", token="s3cret")       # token: when the daemon has [tokens]
    job_id = c.submit({
        "model": "models/thucnews-bert-l4-h256.pt",
        "targets": ["bert.encoder.layer.*.attention.self.query"],
        "method": "l1_unstructured", "amount": 0.3, "scope": "global",
        "eval": {"data": "data/thucnews/dev.txt",
                 "vocab": "data/vocab/bert-base-chinese-vocab.txt",
                 "classes": "data/thucnews/class.txt"},
        "name": "seed: global L1 30% on query",
    })
    job = c.wait(job_id)                    # a progress bar; returns the finished job
    if job["status"] == "succeeded":
        res = c.result(job_id)
        print(res["metrics"]["after"]["accuracy"])
        c.download(job_id, "pruned.pt")                          # TorchScript
        c.download(job_id, "pruned.pth", format="state_dict")    # torch.load-able state_dict
        c.download(job_id, "pruned-hf", format="safetensors")    # a folder: from_pretrained("pruned-hf")

Which checkpoints a job has depends on its ``outputs``; without them it
writes its input's own family (TorchScript: torchscript and state_dict; a
state_dict: state_dict; a safetensors file or Hugging Face folder:
safetensors).  ``result(job_id)["artifacts"]`` lists them.

Every API error raises :class:`PrunerdError` with the HTTP status and the
``code``, ``field`` and ``message`` of the API's error body.
"""

import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["Client", "PrunerdError", "TERMINAL_STATUSES"]

#: Job statuses after which a job never changes again.
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")

_CHUNK = 1 << 20


class PrunerdError(Exception):
    """An error answered by prunerd (or met on the way to it).

    Attributes:
        status:  the HTTP status (400, 404, 409, ...), or None when no HTTP
                 answer came (connection refused, a checksum mismatch, ...).
        code:    the API's error code, e.g. ``"invalid_field"``, ``"not_found"``,
                 ``"not_ready"``, ``"unauthorized"``; client-side errors use
                 ``"unreachable"``, ``"bad_response"``, ``"checksum_mismatch"``.
        field:   the request field the error is about (``"amount"``,
                 ``"eval.data"``, ``"limit"``, ...) or None.
        message: the human-readable explanation.

    Example::

        try:
            c.submit({**job, "amount": 1.5})
        except PrunerdError as e:
            print(e.status, e.code, e.field, e.message)   # 400 invalid amount ...
    """

    def __init__(self, status, code, field, message):
        self.status = status
        self.code = code
        self.field = field
        self.message = message
        where = f" [{field}]" if field else ""
        super().__init__(f"{status if status is not None else '-'} {code}{where}: {message}")


class Client:
    """A connection to one prunerd daemon.

    Args:
        url:     the daemon's base URL, e.g. ``"http://127.0.0.1:8080"``.
        token:   the bearer token (the secret, not its hash) when the daemon
                 has a ``[tokens]`` section; None to send no Authorization.
        timeout: seconds to wait for each HTTP answer (not for a whole job).

    Example::

        c = Client("http://127.0.0.1:8080")
        c.health()          # {'status': 'ok'}
    """

    def __init__(self, url, token=None, timeout=60.0):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def __repr__(self):
        return f"Client({self.url!r}{', token=...' if self.token else ''})"

    # ------------------------------------------------------------ plumbing

    def _open(self, method, path, query=None, body=None, headers=None):
        """Sends one request; returns the open response (2xx/3xx) or raises PrunerdError."""
        url = self.url + path
        if query:
            q = {k: v for k, v in query.items() if v is not None}
            if q:
                url += "?" + urllib.parse.urlencode(q)
        h = {"Accept": "application/json"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        req = urllib.request.Request(url, data=data, method=method, headers=h)
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            raise _error_from(e) from None
        except urllib.error.URLError as e:
            raise PrunerdError(None, "unreachable", None, f"{method} {url}: {e.reason}") from None
        except OSError as e:  # timeouts, resets
            raise PrunerdError(None, "unreachable", None, f"{method} {url}: {e}") from None

    def _json(self, method, path, query=None, body=None, headers=None):
        """Sends one request and decodes its JSON answer (None for an empty body)."""
        with self._open(method, path, query, body, headers) as resp:
            raw = resp.read()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise PrunerdError(resp.status, "bad_response", None,
                               f"{method} {path}: the answer is not JSON: {raw[:200]!r}") from None

    @staticmethod
    def _id_path(job_id, suffix=""):
        return "/v1/jobs/" + urllib.parse.quote(str(job_id), safe="") + suffix

    # ------------------------------------------------------------ jobs

    def submit(self, job, idempotency_key=None):
        """Submits a pruning job; returns its id (a UUID string).

        Args:
            job: the job request as a dict (the JSON ``prunerd run`` takes), or
                 the path of a JSON file holding it.  Paths in it are relative
                 to the daemon's first model root, or absolute under a root.
            idempotency_key: sent as ``Idempotency-Key``; submitting again with
                 the same key (and token) returns the first job's id instead
                 of queueing a second job.

        Raises:
            PrunerdError: 400 with ``field`` naming the bad field (e.g.
                ``"amount"``), 403 for a path outside the roots, 507 over quota.

        Example::

            job_id = c.submit({"model": "models/bert.pt", "method": "l1_unstructured",
                               "amount": 0.3, "targets": ["bert.encoder.layer.*.attention.self.query"],
                               "eval": {...}}, idempotency_key="nightly-2024-05-01")
        """
        if isinstance(job, (str, os.PathLike)):
            with open(job, encoding="utf-8") as f:
                job = json.load(f)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        view = self._json("POST", "/v1/jobs", body=job, headers=headers)
        if not isinstance(view, dict) or "id" not in view:
            raise PrunerdError(None, "bad_response", None, f"submit: no job id in {view!r}")
        return view["id"]

    def job(self, job_id):
        """Returns the job's current view (a dict).

        Keys: ``id, name, status`` (queued | running | succeeded | failed |
        cancelled), ``stage``, ``progress`` (0..1 over the whole job),
        ``owner``, ``created_at/started_at/finished_at``, ``request`` (every
        default filled in), ``stages``, ``attempts``, ``error``,
        ``accuracy_before/after``, ``macro_f1_before/after`` (null until known).

        Example::

            c.job(job_id)["status"]     # 'running'
        """
        return self._json("GET", self._id_path(job_id))

    def result(self, job_id):
        """Returns result.json of a succeeded job (metrics, sparsity, timings, artifacts, provenance).

        Raises:
            PrunerdError: 409 ``not_ready`` while the job has not succeeded.

        Example::

            r = c.result(job_id)
            r["metrics"]["before"]["accuracy"], r["metrics"]["after"]["accuracy"]
            r["sparsity"]["targets"]
        """
        return self._json("GET", self._id_path(job_id, "/result"))

    def cancel(self, job_id):
        """Cancels a queued job, or asks a running one to stop at its next batch; returns the job.

        A running job turns ``cancelled`` shortly after; ``wait`` for it.

        Raises:
            PrunerdError: 409 ``conflict`` when the job has already finished.

        Example::

            c.cancel(job_id); c.wait(job_id, progress=False)["status"]   # 'cancelled'
        """
        return self._json("POST", self._id_path(job_id, "/cancel"))

    def delete(self, job_id):
        """Deletes a finished job and its files; returns None.

        Raises:
            PrunerdError: 409 ``conflict`` while the job is queued or running
            (cancel it first), 404 when there is no such job.

        Example::

            c.delete(job_id)
        """
        self._json("DELETE", self._id_path(job_id))

    def jobs(self, status=None, limit=None, page_size=50):
        """Yields jobs newest first, following ``next_cursor`` from page to page.

        Args:
            status: only jobs with this status (queued, running, succeeded,
                    failed, cancelled); None for all.
            limit:  stop after this many jobs; None for all of them.
            page_size: jobs per request (1 to 200).

        Example::

            for j in c.jobs(status="succeeded", limit=10):
                print(j["id"], j["name"], j["accuracy_after"])
            everything = list(c.jobs())
        """
        if limit is not None and limit <= 0:
            return
        seen = 0
        cursor = None
        while True:
            per = page_size if limit is None else min(page_size, limit - seen)
            page = self._json("GET", "/v1/jobs",
                              query={"status": status, "limit": per, "cursor": cursor})
            for j in page.get("jobs", []):
                yield j
                seen += 1
                if limit is not None and seen >= limit:
                    return
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def wait(self, job_id, progress=True, interval=1.0, timeout=None, file=None):
        """Polls until the job is succeeded, failed or cancelled; returns the final job.

        Args:
            progress: draw a one-line text progress bar, redrawn in place with
                      a carriage return (works in a terminal and in Jupyter).
            interval: seconds between polls.
            timeout:  give up after this many seconds (raises TimeoutError);
                      None waits for ever.
            file:     where the bar goes (default sys.stdout).

        The job is returned whatever its final status: check ``job["status"]``
        and ``job["error"]``.

        Example::

            job = c.wait(job_id)
            # [##############----------------]  47%  running  evaluating_after
            assert job["status"] == "succeeded", job["error"]
        """
        out = file or sys.stdout
        deadline = None if timeout is None else time.monotonic() + timeout
        last_line = None
        width = 0
        while True:
            job = self.job(job_id)
            done = job.get("status") in TERMINAL_STATUSES
            if progress:
                line = _progress_line(job)
                if line != last_line:
                    pad = " " * max(0, width - len(line))
                    out.write("\r" + line + pad)
                    out.flush()
                    width = max(width, len(line))
                    last_line = line
                if done:
                    out.write("\n")
                    out.flush()
            if done:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                if progress:
                    out.write("\n")
                    out.flush()
                raise TimeoutError(f"job {job_id} is still {job.get('status')} after {timeout} s")
            time.sleep(interval if deadline is None
                       else max(0.0, min(interval, deadline - time.monotonic())))

    def download(self, job_id, path, format="torchscript"):
        """Downloads a succeeded job's checkpoint to ``path``; returns ``path``.

        Each file goes to ``<file>.part``, which is renamed to its name only
        once complete and its sha256 equals the server's (the ``ETag`` and the
        ``sha256`` in result.json).  A ``.part`` left by an interrupted
        download is resumed with a ``Range`` request (``If-Range`` makes the
        server send the whole file if it changed meanwhile).

        Args:
            path:   the file to write; for ``"safetensors"`` a folder, made if
                    needed, that receives every file of the artifact
                    (``model.safetensors`` and ``config.json``), each checked
                    and resumed on its own as above.
            format: ``"torchscript"`` (load with ``torch.jit.load``),
                    ``"state_dict"`` (load with ``torch.load``) or
                    ``"safetensors"`` (a Hugging Face folder: load with
                    ``BertForSequenceClassification.from_pretrained(path)``, or
                    the tensors alone with
                    ``safetensors.torch.load_file(path + "/model.safetensors")``).

        Raises:
            PrunerdError: 409 ``not_ready`` before the job succeeded, 404 when
                the job did not save that format, 410 ``gone`` when retention
                deleted the files; ``checksum_mismatch`` (status None) when the
                bytes do not hash to the server's sha256 (that file's .part is
                removed, so calling again starts it afresh); ``bad_response``
                when result.json names a folder file that is not a plain name.

        Example::

            c.download(job_id, "pruned.pt")
            model = torch.jit.load("pruned.pt")
            c.download(job_id, "pruned.pth", format="state_dict")
            sd = torch.load("pruned.pth")
            c.download(job_id, "pruned-hf", format="safetensors")
            model = BertForSequenceClassification.from_pretrained("pruned-hf")
        """
        path = os.fspath(path)
        art = _artifact(self.result(job_id), format)
        if format != "safetensors":
            return self._download_file(job_id, path, {"format": format},
                                       art.get("sha256") if art else None,
                                       art.get("bytes") if art else None)

        files = (art or {}).get("files")
        if not isinstance(files, list) or not files:
            # Let the server say why (404 naming "format" when the job saved none).
            with self._open("GET", self._id_path(job_id, "/checkpoint"),
                            query={"format": format}, headers={"Accept": "application/octet-stream"}):
                pass
            raise PrunerdError(None, "bad_response", None,
                               f"result.json of job {job_id} lists no files for its {format} checkpoint")
        names = []
        for f in files:
            name = f.get("name") if isinstance(f, dict) else None
            # The name becomes a path here: a plain file name, nothing that leaves the folder.
            if (not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name
                    or "\0" in name):
                raise PrunerdError(None, "bad_response", None,
                                   f"result.json of job {job_id} names a {format} file {name!r}")
            names.append(name)
        os.makedirs(path, exist_ok=True)
        for f, name in zip(files, names):
            self._download_file(job_id, os.path.join(path, name), {"format": format, "file": name},
                                f.get("sha256"), f.get("bytes"))
        return path

    def _download_file(self, job_id, path, query, want_sha, want_bytes):
        """GET /checkpoint with query into path via path.part, resumed and checked; returns path."""
        part = path + ".part"

        have = os.path.getsize(part) if os.path.exists(part) else 0
        if want_bytes is not None and have > want_bytes:
            have = 0  # not a prefix of this file
        if want_bytes is not None and want_sha and have == want_bytes:
            if _sha256_file(part) == want_sha:
                os.replace(part, path)
                return path
            have = 0

        headers = {"Accept": "application/octet-stream"}
        if have:
            headers["Range"] = f"bytes={have}-"
            if want_sha:
                headers["If-Range"] = f'"{want_sha}"'
        try:
            resp = self._open("GET", self._id_path(job_id, "/checkpoint"), query=query,
                              headers=headers)
        except PrunerdError as e:
            if e.status != 416 or not have:
                raise
            # The .part is no prefix of the file (it changed): start afresh.
            have = 0
            headers.pop("Range", None)
            headers.pop("If-Range", None)
            resp = self._open("GET", self._id_path(job_id, "/checkpoint"), query=query,
                              headers=headers)
        with resp:
            etag = (resp.headers.get("ETag") or "").strip().strip('"') or None
            if resp.status == 206:
                start = _content_range_start(resp.headers.get("Content-Range"))
                if start != have:
                    raise PrunerdError(206, "bad_response", None,
                                       f"asked for bytes from {have}, got Content-Range "
                                       f"{resp.headers.get('Content-Range')!r}")
                mode = "ab"
            else:
                have = 0
                mode = "wb"
            h = hashlib.sha256()
            if have:
                _hash_prefix(part, have, h)
            with open(part, mode) as f:
                if mode == "ab":
                    f.truncate(have)
                while True:
                    chunk = resp.read(_CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    h.update(chunk)
                f.flush()
                os.fsync(f.fileno())
        got = h.hexdigest()
        for what, want in (("ETag", etag), ("result.json sha256", want_sha)):
            if want and got != want:
                os.unlink(part)
                raise PrunerdError(None, "checksum_mismatch", None,
                                   f"{path}: sha256 {got} differs from the {what} {want}")
        size = os.path.getsize(part)
        if want_bytes is not None and size != want_bytes:
            os.unlink(part)
            raise PrunerdError(None, "checksum_mismatch", None,
                               f"{path}: {size} bytes, the server has {want_bytes}")
        os.replace(part, path)
        return path

    # ------------------------------------------------------------ models, health

    def inspect(self, model_path):
        """Lists the parameters of a model under one of the daemon's model roots.

        Args:
            model_path: relative to the first model root, or absolute under a root.

        Returns:
            ``{"model", "parameters" (count), "numel", "sparsity", "tensors":
            [{"name", "kind" (parameter | buffer), "shape", "dtype", "numel",
            "zeros", "sparsity"}]}``.

        Example::

            info = c.inspect("models/thucnews-bert-l4-h256.pt")
            [t["name"] for t in info["tensors"] if ".query." in t["name"]]
        """
        return self._json("GET", "/v1/models/inspect", query={"path": os.fspath(model_path)})

    def health(self):
        """Returns /healthz (``{"status": "ok"}``) or raises PrunerdError when unreachable.

        Example::

            Client("http://127.0.0.1:8080").health()
        """
        return self._json("GET", "/healthz")


# ---------------------------------------------------------------- helpers


def _error_from(e):
    """A PrunerdError from an HTTPError, reading the API's {"error": {...}} body."""
    status = e.code
    try:
        raw = e.read()
    except OSError:
        raw = b""
    finally:
        e.close()
    code, field, message = "http_%d" % status, None, (raw[:500].decode("utf-8", "replace")
                                                       or str(e.reason))
    try:
        err = json.loads(raw).get("error")
        if isinstance(err, dict):
            code = err.get("code", code)
            field = err.get("field")
            message = err.get("message", message)
    except (ValueError, AttributeError):
        pass
    return PrunerdError(status, code, field, message)


def _artifact(result, fmt):
    """The {"format", "path", "bytes", "sha256"} entry of result.json for a format, or None."""
    arts = (result or {}).get("artifacts") or []
    if isinstance(arts, dict):
        return arts.get(fmt)
    for a in arts:
        if isinstance(a, dict) and a.get("format") == fmt:
            return a
    return None


def _content_range_start(value):
    """The first byte of 'bytes A-B/N', or None."""
    try:
        unit, rng = value.split(None, 1)
        if unit.lower() != "bytes":
            return None
        return int(rng.split("-", 1)[0])
    except (AttributeError, ValueError):
        return None


def _hash_prefix(path, n, h):
    with open(path, "rb") as f:
        left = n
        while left:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                raise PrunerdError(None, "bad_response", None, f"{path} shrank while resuming")
            h.update(chunk)
            left -= len(chunk)


def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _progress_line(job, width=30):
    """'[#####-----]  42%  running  evaluating_before' for a job view."""
    p = job.get("progress") or 0.0
    p = 1.0 if job.get("status") == "succeeded" else min(max(float(p), 0.0), 1.0)
    n = int(round(p * width))
    line = f"[{'#' * n}{'-' * (width - n)}] {p * 100:3.0f}%  {job.get('status', '?')}"
    stage = job.get("stage")
    if stage and job.get("status") == "running":
        line += f"  {stage}"
    if job.get("status") == "failed" and job.get("error"):
        line += f"  {job['error']}"
    return line
