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

A notebook that does not run on the daemon's machine sends its files first:
``upload`` streams a file (or a folder, such as a ``save_pretrained`` one, as
a tar made on the fly) to the caller's uploads and returns the path a job
names; ``submit(job, upload=True)`` does it for every local path in the job::

    model = c.upload("bert-finetuned/")            # a folder: PUT /v1/uploads/bert-finetuned?unpack=tar
    dev = c.upload("data/dev.txt")                 # a file, with its Content-SHA256
    job_id = c.submit({..., "model": model, "eval": {"data": dev, ...}})
    job_id = c.submit(job, upload=True)            # the same for each local path in job
    c.uploads(); c.upload_info("dev.txt"); c.delete_upload("dev.txt")

Which checkpoints a job has depends on its ``outputs``; without them it
writes its input's own family (TorchScript: torchscript and state_dict; a
state_dict: state_dict; a safetensors file or Hugging Face folder:
safetensors).  ``result(job_id)["artifacts"]`` lists them.

Every API error raises :class:`PrunerdError` with the HTTP status and the
``code``, ``field`` and ``message`` of the API's error body.
"""

import copy
import hashlib
import http.client
import json
import os
import select
import socket
import stat
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["Client", "PrunerdError", "SweepTable", "UploadPath", "TERMINAL_STATUSES"]

#: Job statuses after which a job never changes again.
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")

_CHUNK = 1 << 20

#: The job fields that name a file or folder, as key paths; ``submit(job, upload=True)``
#: uploads the local ones.
UPLOAD_FIELDS = (("model",), ("model_config",), ("eval", "data"), ("eval", "vocab"),
                 ("eval", "classes"), ("options", "mask"), ("structured", "calibration", "data"),
                 ("recover", "data"))

_CONTINUE_WAIT = 1.0  # seconds to wait for "100 Continue" before sending the body anyway (curl's)
_ANSWER_WAIT = 600.0  # at least this long for the answer after a body (fsync, unpacking)


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


class UploadPath(str):
    """The ``path`` of an upload, as :meth:`Client.upload` returns it: a str to put in a job.

    For an ``admin`` token (or a daemon without tokens) the absolute path on
    the server; for ``read`` and ``submit`` tokens ``"<owner>/<name>"``,
    relative to the uploads folder.  Either form names the upload in a job.

    Attributes:
        info:     the upload object: ``{"name", "owner", "kind" ("file" |
                  "folder"), "bytes", "sha256", "path", "created", "files"}``,
                  plus ``"archive_bytes"`` for a folder.
        replayed: True when the daemon already held this content under the
                  name: nothing was sent (the client found the same sha256
                  there first), or the daemon answered ``200`` with
                  ``Idempotent-Replayed: true``.

    Example::

        p = c.upload("dev.txt")
        p                   # '/var/lib/prunerd/uploads/anonymous/dev.txt'
        p.info["sha256"], p.info["bytes"], p.replayed
    """

    def __new__(cls, info, replayed=False):
        self = super().__new__(cls, info["path"])
        self.info = dict(info)
        self.replayed = bool(replayed)
        return self

    def __getnewargs__(self):  # pickle and copy
        return (self.info, self.replayed)


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

    def submit(self, job, idempotency_key=None, upload=False, progress=True, file=None):
        """Submits a pruning job; returns its id (a UUID string).

        Args:
            job: the job request as a dict (the JSON ``prunerd run`` takes), or
                 the path of a JSON file holding it.  Paths in it are relative
                 to the daemon's roots (the model roots, then the data roots,
                 then its uploads folder; a path starting with the caller's own
                 "<owner>/" goes to the caller's uploads), or absolute under a
                 root, or an upload's path.
            idempotency_key: sent as ``Idempotency-Key``; submitting again with
                 the same key (and token) returns the first job's id instead
                 of queueing a second job.
            upload: False: send the job as it is.  True: first upload (with
                 :meth:`upload`, the name being the file's or folder's own
                 name) each path the job names that exists on this machine:
                 ``model``, ``model_config``, ``eval.data``, ``eval.vocab``,
                 ``eval.classes``, ``options.mask``,
                 ``structured.calibration.data``, ``recover.data``
                 (:data:`UPLOAD_FIELDS`),
                 relative to the current folder, or to the job file's folder
                 when ``job`` is a file (as ``prunerd run`` reads them), and
                 submit the job with their upload paths instead.  Paths that
                 do not exist here are sent as they are (server paths).  A
                 file already uploaded with the same content is not sent
                 again; a name that holds other content raises 409 (upload
                 it yourself with ``replace=True``, or under another name).
                 The caller's ``job`` is not changed.
            progress, file: the uploads' progress bars, as in :meth:`upload`.

        Raises:
            PrunerdError: 400 with ``field`` naming the bad field (e.g.
                ``"amount"``), 403 for a path outside the roots (``denied``
                for another token's upload), 507 over quota; with
                ``upload=True`` also what :meth:`upload` raises.

        Example::

            job_id = c.submit({"model": "models/bert.pt", "method": "l1_unstructured",
                               "amount": 0.3, "targets": ["bert.encoder.layer.*.attention.self.query"],
                               "eval": {...}}, idempotency_key="nightly-2024-05-01")
            # files on the notebook's machine: uploaded first, then the job names them
            job_id = c.submit({"model": "bert-finetuned/", ..., "eval": {"data": "dev.txt", ...}},
                              upload=True)
        """
        base = None
        if isinstance(job, (str, os.PathLike)):
            base = os.path.dirname(os.path.abspath(os.fspath(job)))
            with open(job, encoding="utf-8") as f:
                job = json.load(f)
        if upload:
            job = self._upload_job_files(job, base, progress, file)
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
              recommend=None, wait=True, progress=True, timeout=None, idempotency_key=None,
              upload=False, **fields):
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
            idempotency_key, upload: as in :meth:`submit` (``upload=True``
                      uploads the model and eval files that are on this
                      machine first).
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
        job_id = self.submit(job, idempotency_key=idempotency_key, upload=upload, progress=progress)
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

    # ------------------------------------------------------------ uploads

    def upload(self, path, name=None, replace=False, progress=True, file=None):
        """Uploads a file or a folder to the caller's uploads; returns its server path.

        A file is hashed first, then streamed from disk (never read into
        memory) with its ``Content-Length`` and ``Content-SHA256``.  A folder
        (a ``save_pretrained`` one, a data folder) is sent as a tar made on
        the fly with ``?unpack=tar`` and ``Transfer-Encoding: chunked``: its
        regular files, symlinks followed, named relative to the folder, in
        sorted order, with their mtimes and nothing else of the machine's (no
        owners, modes 0644), so the same folder makes the same archive.  The
        sha256 of the bytes sent is checked against the daemon's answer.
        Either waits for ``100 Continue`` (at most a second) before the
        body, so a refusal on the headers (a read token, over the upload
        limit) comes before anything is sent.

        Before sending, the upload of that name is looked up
        (``GET /v1/uploads/{name}``): when it holds the same content (same
        sha256, same kind; for a folder the archive is hashed locally first),
        nothing is sent and it is returned (``replayed`` is True); when it
        holds other content and ``replace`` is false, :class:`PrunerdError`
        409 ``conflict`` (field ``name``) is raised here, as the daemon would
        answer, without sending the body.

        Args:
            path:    a file or a folder on this machine.
            name:    the upload's name (1 to 128 of ``A-Z a-z 0-9 . _ -``);
                     None for the file's or folder's own name.
            replace: True to replace what the name holds (``?replace=1``).
            progress: draw a one-line progress bar, redrawn in place.
            file:    where the bar goes (default sys.stderr).

        Returns:
            An :class:`UploadPath`: the ``path`` string to put in a job, with
            the whole upload object as its ``info`` attribute.

        Raises:
            PrunerdError: 400 ``invalid_field`` (``name``), 403 ``forbidden``
                (a read token), 409 ``conflict``, 413 ``payload_too_large``
                (over the daemon's upload limit), 422 ``checksum_mismatch``
                (the file changed while being sent), 507 over the quota,
                400 ``unsafe_archive`` / ``invalid_archive`` for a folder;
                ``checksum_mismatch`` (status None) when the daemon's sha256
                is not that of the bytes sent; ``unreachable``.
            OSError: the file or folder cannot be read, or changed size
                while being sent (the connection is then cut, and the daemon
                keeps nothing).
            ValueError: the folder holds no file, or something that is
                neither a file nor a folder (a socket, a FIFO).

        Example::

            p = c.upload("thucnews-bert-l4-h256.pt")        # PUT /v1/uploads/thucnews-bert-l4-h256.pt
            job_id = c.submit({"model": p, ...})
            p.info["sha256"], p.replayed
            hf = c.upload("bert-finetuned/", name="bert-v2", replace=True)   # a folder
        """
        path = os.fspath(path)
        if name is None:
            name = os.path.basename(os.path.normpath(os.path.abspath(path)))
        out = (file or sys.stderr) if progress else None
        if os.path.isdir(path):
            return self._upload_folder(path, name, replace, out)
        size = os.path.getsize(path)  # raises for a missing path
        sha = _sha256_file(path)
        old = self._existing_upload(name)
        if old is not None:
            if old.get("kind") == "file" and old.get("sha256") == sha:
                _note(out, f"{name}: already uploaded ({_size(size)}, sha256 {sha[:12]}...)")
                return UploadPath(old, replayed=True)
            if not replace:
                raise _conflict(name, old)

        def chunks(bar):
            for chunk in _file_chunks(path, size):
                if bar:
                    bar.update(len(chunk))
                yield chunk

        bar = _Bar(out, size, name) if out else None
        info, replayed = self._put_upload(name, {"replace": "1" if replace else None}, chunks(bar),
                                          size, sha, bar)
        if info.get("sha256") != sha:
            raise PrunerdError(None, "checksum_mismatch", None,
                               f"upload {name}: the daemon's sha256 {info.get('sha256')} is not "
                               f"{sha}, that of {path}")
        return UploadPath(info, replayed)

    def _upload_folder(self, folder, name, replace, out):
        """upload() of a folder: a tar stream with ?unpack=tar."""
        entries = _folder_entries(folder)
        if not entries:
            raise ValueError(f"{folder}: no file to upload")
        total = _tar_size(entries)
        sha = None
        old = self._existing_upload(name)
        if old is not None:
            h = hashlib.sha256()
            for chunk in _tar_chunks(entries):
                h.update(chunk)
            sha = h.hexdigest()
            if old.get("kind") == "folder" and old.get("sha256") == sha:
                _note(out, f"{name}: already uploaded ({len(entries)} files, sha256 {sha[:12]}...)")
                return UploadPath(old, replayed=True)
            if not replace:
                raise _conflict(name, old)
        h = hashlib.sha256()
        bar = _Bar(out, total, name + "/") if out else None

        def chunks():
            for chunk in _tar_chunks(entries):
                h.update(chunk)
                if bar:
                    bar.update(len(chunk))
                yield chunk

        info, replayed = self._put_upload(name, {"unpack": "tar", "replace": "1" if replace else None},
                                          chunks(), None, sha, bar)
        got = h.hexdigest()
        if info.get("sha256") != got:
            raise PrunerdError(None, "checksum_mismatch", None,
                               f"upload {name}: the daemon's sha256 {info.get('sha256')} is not "
                               f"{got}, that of the archive sent (delete_upload({name!r}) and retry)")
        return UploadPath(info, replayed)

    def _existing_upload(self, name):
        """The caller's upload object of that name, or None when it has none."""
        try:
            return self.upload_info(name)
        except PrunerdError as e:
            if e.status == 404:
                return None
            raise

    def _put_upload(self, name, query, chunks, length, sha, bar):
        """PUT /v1/uploads/{name} with the body from chunks (an iterable of bytes).

        length: the body's size (Content-Length), or None for chunked.  Waits
        for 100 Continue before the body (plain http only).  Returns
        (upload object, replayed); raises PrunerdError for an error answer.
        Written with http.client rather than urllib to read an early answer
        before sending the body.
        """
        u = urllib.parse.urlsplit(self.url)
        target = (u.path.rstrip("/") + "/v1/uploads/" + urllib.parse.quote(name, safe=""))
        q = {k: v for k, v in (query or {}).items() if v is not None}
        if q:
            target += "?" + urllib.parse.urlencode(q)
        what = f"PUT {self.url}/v1/uploads/{name}"
        cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
        conn = cls(u.hostname, u.port, timeout=self.timeout)
        try:
            try:
                conn.putrequest("PUT", target, skip_accept_encoding=True)
                conn.putheader("Accept", "application/json")
                if self.token:
                    conn.putheader("Authorization", "Bearer " + self.token)
                conn.putheader("Content-Type", "application/octet-stream")
                if sha:
                    conn.putheader("Content-SHA256", sha)
                if length is None:
                    conn.putheader("Transfer-Encoding", "chunked")
                else:
                    conn.putheader("Content-Length", str(length))
                expect = u.scheme == "http" and length != 0
                if expect:
                    conn.putheader("Expect", "100-continue")
                conn.endheaders()
                resp = _early_answer(conn) if expect else None
            except (http.client.HTTPException, OSError) as e:
                raise PrunerdError(None, "unreachable", None, f"{what}: {e}") from None
            if resp is None:
                cut = None
                for chunk in chunks:  # errors reading the files propagate as they are
                    if not chunk:
                        continue
                    try:
                        conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk) if length is None else chunk)
                    except OSError as e:  # the daemon answered and closed: read its answer
                        cut = e
                        break
                try:
                    if cut is None and length is None:
                        conn.send(b"0\r\n\r\n")
                    conn.sock.settimeout(max(self.timeout or 0, _ANSWER_WAIT))
                    resp = conn.getresponse()
                except (http.client.HTTPException, OSError) as e:
                    raise PrunerdError(None, "unreachable", None,
                                       f"{what}: {cut or e} (no answer after the body)") from None
            try:
                raw = resp.read()
            except (http.client.HTTPException, OSError) as e:
                raise PrunerdError(None, "unreachable", None, f"{what}: {e}") from None
        finally:
            if bar:
                bar.close()
            conn.close()
        if resp.status >= 400:
            raise _error_from_body(resp.status, raw, resp.reason)
        try:
            info = json.loads(raw)
        except ValueError:
            info = None
        if not isinstance(info, dict) or not isinstance(info.get("path"), str):
            raise PrunerdError(resp.status, "bad_response", None,
                               f"{what}: no upload object in the answer: {raw[:200]!r}")
        replayed = resp.status == 200 or (resp.getheader("Idempotent-Replayed") or "").lower() == "true"
        return info, replayed

    def uploads(self, owner=None):
        """Lists the caller's uploads, newest first (a list of upload objects).

        Args:
            owner: an admin's choice of another token's uploads (``""``: those
                   made with no tokens configured); None for the caller's own.

        Raises:
            PrunerdError: 403 ``forbidden`` for another owner without admin.

        Example::

            for u in c.uploads():
                print(u["name"], u["kind"], u["bytes"], u["created"])
        """
        body = self._json("GET", "/v1/uploads", query={"owner": owner})
        return list((body or {}).get("uploads") or [])

    def upload_info(self, name, owner=None):
        """Returns the upload object of that name (``{"name", "owner", "kind",
        "bytes", "sha256", "path", "created", "files"}``).

        Raises:
            PrunerdError: 404 ``not_found`` when the caller (or ``owner``, for
                an admin) has no upload of that name.

        Example::

            c.upload_info("dev.txt")["sha256"]
        """
        return self._json("GET", "/v1/uploads/" + urllib.parse.quote(name, safe=""),
                          query={"owner": owner})

    def delete_upload(self, name, owner=None):
        """Deletes an upload (its bytes leave the quota); returns None.

        Raises:
            PrunerdError: 404 ``not_found`` when there is no such upload.

        Example::

            c.delete_upload("dev.txt")
        """
        self._json("DELETE", "/v1/uploads/" + urllib.parse.quote(name, safe=""),
                   query={"owner": owner})

    def _upload_job_files(self, job, base, progress, file):
        """A copy of job whose UPLOAD_FIELDS naming local paths name their uploads instead."""
        job = copy.deepcopy(job)
        done = {}  # realpath -> UploadPath: a file named twice is uploaded once
        for keys in UPLOAD_FIELDS:
            parent = job
            for k in keys[:-1]:
                parent = parent.get(k) if isinstance(parent, dict) else None
            if not isinstance(parent, dict):
                continue
            value = parent.get(keys[-1])
            if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
                continue
            local = os.path.join(base, os.fspath(value)) if base else os.fspath(value)
            if not os.path.exists(local):
                continue
            real = os.path.realpath(local)
            if real not in done:
                done[real] = self.upload(local, progress=progress, file=file)
            parent[keys[-1]] = str(done[real])
        return job

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
    try:
        raw = e.read()
    except OSError:
        raw = b""
    finally:
        e.close()
    return _error_from_body(e.code, raw, e.reason)


def _error_from_body(status, raw, reason):
    """A PrunerdError from an error status and its body (the API's {"error": {...}})."""
    code, field, message = "http_%d" % status, None, (raw[:500].decode("utf-8", "replace")
                                                       or str(reason))
    try:
        err = json.loads(raw).get("error")
        if isinstance(err, dict):
            code = err.get("code", code)
            field = err.get("field")
            message = err.get("message", message)
    except (ValueError, AttributeError):
        pass
    return PrunerdError(status, code, field, message)


def _conflict(name, old):
    """The 409 the daemon answers for a name holding other content, raised before sending."""
    return PrunerdError(409, "conflict", "name",
                        f"'{name}' holds other content ({old.get('kind')}, sha256 {old.get('sha256')}): "
                        f"pass replace=True to replace it, or choose another name (found by the "
                        f"client before sending)")


def _early_answer(conn, wait=_CONTINUE_WAIT):
    """After the headers of a request with Expect: 100-continue: None to send the body
    (100 Continue came, and was read, or nothing came within wait seconds), or the
    daemon's final answer (an HTTPResponse) when it answered before the body."""
    sock = conn.sock
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            return None
        head = sock.recv(1024, socket.MSG_PEEK)
        if len(head) >= 12 and head[9:12] != b"100" or not head:
            return conn.getresponse()  # a final answer (or a closed connection: raises)
        end = head.find(b"\r\n\r\n")
        if len(head) >= 12 and end >= 0:
            _recv_exact(sock, end + 4)  # the 100 Continue: drop it
            return None
        time.sleep(0.01)  # a partial status line


def _recv_exact(sock, n):
    while n:
        got = sock.recv(n)
        if not got:
            raise ConnectionResetError("the connection closed")
        n -= len(got)


def _folder_entries(folder):
    """[(arcname, path, size, mtime)] of the regular files under folder, symlinks
    followed (a loop raises ValueError), sorted by path; raises ValueError for
    anything that is neither a file nor a folder."""
    out = []
    on_path = set()

    def walk(d, prefix):
        st = os.stat(d)
        key = (st.st_dev, st.st_ino)
        if key in on_path:
            raise ValueError(f"{d}: a symlink loop")
        on_path.add(key)
        for entry in sorted(os.listdir(d)):
            full = os.path.join(d, entry)
            st = os.stat(full)
            if stat.S_ISDIR(st.st_mode):
                walk(full, prefix + entry + "/")
            elif stat.S_ISREG(st.st_mode):
                out.append((prefix + entry, full, st.st_size, int(st.st_mtime)))
            else:
                raise ValueError(f"{full}: neither a file nor a folder, cannot be uploaded")
        on_path.discard(key)

    walk(folder, "")
    return out


def _tar_header(arcname, size, mtime):
    ti = tarfile.TarInfo(arcname)
    ti.size, ti.mtime, ti.mode, ti.type = size, mtime, 0o644, tarfile.REGTYPE
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _pad(n, block):
    return (block - n % block) % block


def _tar_size(entries):
    """The size of the archive _tar_chunks makes of entries."""
    n = sum(len(_tar_header(a, size, mtime)) + size + _pad(size, tarfile.BLOCKSIZE)
            for a, _, size, mtime in entries) + 2 * tarfile.BLOCKSIZE
    return n + _pad(n, tarfile.RECORDSIZE)


def _tar_chunks(entries):
    """Yields a tar archive of entries (from _folder_entries) in pieces of at most
    _CHUNK bytes of file data, as tarfile.open(mode="w|") writes it; raises OSError
    when a file's size changed since it was listed."""
    n = 0
    for arcname, path, size, mtime in entries:
        header = _tar_header(arcname, size, mtime)
        n += len(header)
        yield header
        for chunk in _file_chunks(path, size):
            n += len(chunk)
            yield chunk
        pad = _pad(size, tarfile.BLOCKSIZE)
        n += pad
        yield b"\0" * pad
    end = 2 * tarfile.BLOCKSIZE
    yield b"\0" * (end + _pad(n + end, tarfile.RECORDSIZE))


def _file_chunks(path, size):
    """The size bytes of the file at path, _CHUNK at a time; OSError when the
    file is not that size any more (it changed while being sent)."""
    with open(path, "rb") as f:
        left = size
        while left:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                raise OSError(f"{path} shrank while being sent")
            left -= len(chunk)
            yield chunk
        if f.read(1):
            raise OSError(f"{path} grew while being sent")


def _size(n):
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def _note(out, line):
    if out:
        out.write(line + "\n")
        out.flush()


class _Bar:
    """A one-line byte progress bar on out, redrawn in place (at most 10 times a second)."""

    def __init__(self, out, total, label, width=30):
        self.out, self.total, self.label, self.width = out, total, label, width
        self.done = 0
        self.drawn = 0  # the width of the last line drawn, 0 before the first
        self.last = 0.0
        self.t0 = time.monotonic()

    def update(self, n):
        self.done += n
        now = time.monotonic()
        if now - self.last >= 0.1 or self.done >= self.total:
            self.last = now
            self._draw()

    def _draw(self):
        p = min(self.done / self.total, 1.0) if self.total else 1.0
        k = int(round(p * self.width))
        secs = max(time.monotonic() - self.t0, 1e-6)
        line = (f"[{'#' * k}{'-' * (self.width - k)}] {p * 100:3.0f}%  {_size(self.done)} / "
                f"{_size(self.total)}  {_size(self.done / secs)}/s  {self.label}")
        self.out.write("\r" + line + " " * max(0, self.drawn - len(line)))
        self.out.flush()
        self.drawn = max(self.drawn, len(line))

    def close(self):
        if self.drawn:
            self._draw()
            self.out.write("\n")
            self.out.flush()
            self.drawn = 0


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
