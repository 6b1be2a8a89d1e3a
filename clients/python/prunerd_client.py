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

A sensitivity sweep prunes each group of the targets (an encoder layer, or
one parameter) alone at each amount and evaluates it; ``sweep`` runs one and
returns its points as a :class:`SweepTable`, with a recommended per-group
prune job when ``recommend`` asks for a sparsity::

    table = c.sweep("models/thucnews-bert-l4-h256.pt",
                    ["bert.encoder.layer.*.attention.self.query"],
                    {"data": "data/thucnews/dev.txt", "vocab": "data/vocab/bert-base-chinese-vocab.txt",
                     "classes": "data/thucnews/class.txt", "limit": 500},
                    amounts=[0.3, 0.6, 0.9], recommend=0.5)
    for g in table.groups:                  # most sensitive first
        print(g["group"], g["sensitivity"], table.curve(g["group"]))
    pruned = c.submit(table.recommendation["request"])   # the recommended prune job

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

__all__ = ["Client", "PrunerdError", "SweepTable", "TERMINAL_STATUSES"]

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
                 ``"unreachable"``, ``"bad_response"``, ``"checksum_mismatch"``,
                 ``"job_failed"`` (a sweep that failed or was cancelled).
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


class SweepTable(list):
    """The points of a sensitivity sweep, as returned by :meth:`Client.sweep`.

    A list of the result's ``points``, one dict per group and amount
    (``{"group", "amount", "accuracy", "macro_f1", "seconds"}``; groups in
    model order, amounts ascending), with the rest of the result as attributes:

    Attributes:
        job:            the sweep job's id.
        dense:          the dense model's ``{"accuracy", "macro_f1"}``.
        groups:         ``[{"group", "tensors", "parameters", "sensitivity"}]``,
                        most sensitive first (sensitivity: the mean accuracy
                        drop over the amounts).
        amounts:        the amounts tried, ascending.
        method, group:  the sweep's pruning method and grouping (``"layer"``
                        or ``"parameter"``).
        recommendation: ``{"sparsity", "achieved", "predicted_accuracy",
                        "amounts": {group: amount}, "request": {...}}`` when the
                        sweep was asked to recommend, else None.
                        ``request`` is a ready prune job for :meth:`Client.submit`.

    Example::

        table = c.sweep_table(job_id)
        worst = table.groups[0]["group"]
        table.curve(worst)          # [(0.1, 0.905), (0.2, 0.9), ...]
        [p for p in table if p["amount"] == 0.5]
    """

    def __init__(self, points=(), job=None, dense=None, groups=None, amounts=None, method=None,
                 group=None, recommendation=None):
        super().__init__(points)
        self.job = job
        self.dense = dense if dense is not None else {}
        self.groups = groups if groups is not None else []
        self.amounts = amounts if amounts is not None else []
        self.method = method
        self.group = group
        self.recommendation = recommendation

    @classmethod
    def from_result(cls, job_id, result):
        """The table of a sweep's result.json (a dict); raises PrunerdError ``bad_response``
        when it is not a sweep's."""
        sw = (result or {}).get("sweep") if isinstance(result, dict) else None
        points = result.get("points") if isinstance(result, dict) else None
        if not isinstance(sw, dict) or not isinstance(points, list):
            raise PrunerdError(None, "bad_response", None,
                               f"job {job_id} is not a sweep: its result has no sweep and points")
        return cls(points, job=job_id, dense=sw.get("dense"), groups=sw.get("groups"),
                   amounts=sw.get("amounts"), method=sw.get("method"), group=sw.get("group"),
                   recommendation=result.get("recommendation"))

    def curve(self, group):
        """``[(amount, accuracy), ...]`` of one group, amounts ascending."""
        return sorted((p["amount"], p["accuracy"]) for p in self if p.get("group") == group)

    def __repr__(self):
        return (f"SweepTable(job={self.job!r}, {len(self.groups)} groups x {len(self.amounts)} amounts"
                f"{', with a recommendation' if self.recommendation else ''})")


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

    def sweep(self, model, targets, eval, amounts=None, group="layer", method="l1_unstructured",
              recommend=None, wait=True, progress=True, timeout=None, idempotency_key=None, **fields):
        """Runs a sensitivity sweep: each group of the targets pruned alone at each amount, and evaluated.

        Args:
            model:    the model path, as in :meth:`submit`.
            targets:  a glob or a list of globs (strings only).
            eval:     the ``eval`` object (required: a sweep is its evaluations);
                      ``"limit"`` keeps it quick, since it runs once per point.
            amounts:  fractions in (0, 1], strictly increasing, 1 to 32 of them;
                      None for the daemon's default (0.1, 0.2, ..., 0.9).
            group:    ``"layer"`` (every target in one encoder layer together) or
                      ``"parameter"`` (each parameter alone); method
                      ``"structured"`` takes ``"layer"`` only (a layer's heads and
                      its neurons are then two groups).
            method:   ``"l1_unstructured"`` or ``"structured"``.
            recommend: a sparsity (a number in (0, max(amounts)], or
                      ``{"sparsity": x}``) to get ``recommendation``: per-group
                      amounts reaching it over the targets, chosen from the
                      points, as a prune job ready to submit (l1_unstructured
                      only); None for none.
            wait:     True: wait for the sweep (with :meth:`wait`) and return its
                      :class:`SweepTable`; False: return the job id at once (read
                      the table later with :meth:`sweep_table`).
            progress, timeout: passed to :meth:`wait`.
            idempotency_key: as in :meth:`submit`.
            **fields: other job fields: ``name``, ``options``, ``device``,
                      ``model_config``.

        Raises:
            PrunerdError: 400 naming the field the daemon refused (``amount``,
                ``scope``, ``outputs``, ``eval``, ...); ``job_failed`` (status
                None) when the sweep failed or was cancelled, with its error.
            TimeoutError: from :meth:`wait`, past ``timeout``.

        Example::

            table = c.sweep("models/bert.pt", "bert.encoder.layer.*.attention.self.query",
                            {"data": "data/dev.txt", "vocab": "data/vocab.txt",
                             "classes": "data/class.txt", "limit": 500},
                            amounts=[0.3, 0.6, 0.9], recommend=0.5)
            table.groups[0]                          # the most sensitive group
            c.submit(table.recommendation["request"])
        """
        job = {"kind": "sweep", "model": model,
               "targets": [targets] if isinstance(targets, str) else list(targets),
               "method": method, "group": group, "eval": eval}
        if amounts is not None:
            job["amounts"] = list(amounts)
        if recommend is not None:
            job["recommend"] = (recommend if isinstance(recommend, dict)
                                else {"sparsity": recommend})
        job.update(fields)
        job_id = self.submit(job, idempotency_key=idempotency_key)
        if not wait:
            return job_id
        view = self.wait(job_id, progress=progress, timeout=timeout)
        if view.get("status") != "succeeded":
            raise PrunerdError(None, "job_failed", None,
                               f"sweep {job_id} {view.get('status')}: {view.get('error') or 'no error given'}")
        return self.sweep_table(job_id)

    def sweep_table(self, job_id):
        """Returns the :class:`SweepTable` of a succeeded sweep.

        Raises:
            PrunerdError: 409 ``not_ready`` while it has not succeeded;
                ``bad_response`` when the job is not a sweep.

        Example::

            job_id = c.sweep(model, targets, eval, wait=False)
            c.wait(job_id)
            table = c.sweep_table(job_id)
        """
        return SweepTable.from_result(job_id, self.result(job_id))

    def recommendation(self, job_id):
        """Returns a succeeded sweep's recommendation (a dict), or None when it has none.

        ``{"sparsity", "achieved", "predicted_accuracy", "amounts": {group:
        amount}, "request"}``; ``request`` is a prune job whose targets are
        ``{"glob", "amount"}`` objects, for :meth:`submit`.  None for a sweep
        run without ``recommend`` and for any other job.

        Raises:
            PrunerdError: 409 ``not_ready`` while the job has not succeeded.

        Example::

            rec = c.recommendation(job_id)
            if rec:
                print(rec["predicted_accuracy"]); c.submit(rec["request"])
        """
        res = self.result(job_id)
        rec = res.get("recommendation") if isinstance(res, dict) else None
        return rec if isinstance(rec, dict) else None

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
