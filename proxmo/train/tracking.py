"""Where a training job's params, metrics, tags, artifacts and status go.

A run folder always holds the run's own record (:class:`JsonlTracker`): ``params.json``, ``tags.json``,
``metrics.jsonl`` (one line per call), ``artifacts/`` and ``status.json``. With MLflow
(:class:`MlflowTracker` given that folder) every call is written there first and then sent to the MLflow
run. A tracking server that stops answering does not stop training: the job goes on writing its folder,
tries again every ``retry_s`` seconds by sending whatever the server lacks, and at the end says how to
finish the transfer, ``proxmo sync RUN_DIR`` (:func:`sync_run`).

MLflow is imported only when an :class:`MlflowTracker` is made, so the job runs on machines that have
torch and transformers alone (``run.tracker=jsonl`` there, then ``proxmo sync`` where MLflow is)::

    with make_tracker("mlflow", run_dir, experiment="alfworld", run_name="proxmo-seed0") as tracker:
        tracker.log_params({"optim": {"lr": 1e-6}})            # logged as "optim.lr"
        tracker.log_metrics({"train/loss": 0.3}, step=1)
        tracker.log_artifact(run_dir / "summary.json")
    # closed FINISHED, or FAILED / KILLED when the block raised
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Set, runtime_checkable

from proxmo.train.runfolder import repair_cut_line, write_atomic, writer_alive
from proxmo.results.contract import METRICS_FILE
from proxmo.urls import TRACKING_URI_ENV

logger = logging.getLogger(__name__)

STATUSES = ("FINISHED", "FAILED", "KILLED")
TRACKER_KINDS = ("jsonl", "mlflow", "both", "none")
MAX_PARAM_VALUE_LENGTH = 6000  # MLflow refuses longer param values
TRUNCATION_MARKER = "...[truncated]"
LINK_FILE = "mlflow.json"  # in a run folder: which MLflow run mirrors it
# MLflow error codes that mean the request itself is wrong; anything else means the store did not answer.
_REFUSED = {"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "RESOURCE_DOES_NOT_EXIST", "INVALID_STATE",
            "RESOURCE_ALREADY_EXISTS", "PERMISSION_DENIED", "UNAUTHENTICATED"}


@runtime_checkable
class Tracker(Protocol):
    """What a training job needs from an experiment tracker."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record configuration; nested mappings are flattened with dots ("optim.lr")."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record numeric values for one training step."""

    def log_artifact(self, path: str | Path) -> None:
        """Keep a copy of a file with the run."""

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Attach string labels to the run."""

    def close(self, status: str = "FINISHED") -> None:
        """End the run with status FINISHED, FAILED or KILLED."""


def flatten_params(nested: Mapping[str, Any], prefix: str = "") -> Dict[str, str]:
    """``{"optim": {"lr": 1e-6, "betas": [0.9, 0.999]}}`` -> ``{"optim.lr": "1e-06", "optim.betas": "[0.9, 0.999]"}``.

    Lists become JSON, an empty mapping ``"{}"``, and values over MLflow's 6000 characters are cut,
    ending with ``"...[truncated]"``.
    """
    flat: Dict[str, str] = {}
    for key, value in nested.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, name))
            continue
        text = json.dumps(value if isinstance(value, Mapping) else list(value), default=str) \
            if isinstance(value, (list, tuple, Mapping)) else str(value)
        if len(text) > MAX_PARAM_VALUE_LENGTH:
            text = text[: MAX_PARAM_VALUE_LENGTH - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER
        flat[name] = text
    return flat


def _numbers(metrics: Mapping[str, Any]) -> Dict[str, float]:
    """Every value as a float (NaN and inf kept: they are what the run produced); a non-number raises naming it."""
    clean = {}
    for name, value in metrics.items():
        try:
            clean[str(name)] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"metric {name!r}: {value!r} is not a number") from None
    return clean


def _check_status(status: str) -> str:
    if status not in STATUSES:
        raise ValueError(f"status: {status!r} is not one of {list(STATUSES)}")
    return status


class _ClosingContext:
    """``with tracker:`` closes FINISHED, KILLED on an interrupt, FAILED on any other exception."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close("FINISHED")  # type: ignore[attr-defined]
        else:
            self.close("KILLED" if issubclass(exc_type, (KeyboardInterrupt, SystemExit)) else "FAILED")  # type: ignore[attr-defined]


class NullTracker(_ClosingContext):
    """Records nothing (metric values are still checked to be numbers)."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        _numbers(metrics)

    def log_artifact(self, path: str | Path) -> None:
        pass

    def set_tags(self, tags: Mapping[str, str]) -> None:
        pass

    def close(self, status: str = "FINISHED") -> None:
        _check_status(status)


def _write_json(path: Path, data: Any) -> None:
    """Write ``data`` atomically, so a crash never leaves half a file."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _read_json(path: Path) -> Dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


class JsonlTracker(_ClosingContext):
    """A run recorded as plain files in ``folder`` (created): every write is flushed at once and thread-safe.

    ``metrics.jsonl`` has one line per :meth:`log_metrics` call, ``{"step", "time", "metrics"}`` (read it
    with :func:`read_metrics`); params and tags are merged over calls; artifacts are copied to ``artifacts/``.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        repair_cut_line(self.folder / METRICS_FILE)  # what follows starts on a line of its own
        (self.folder / "status.json").unlink(missing_ok=True)  # the run is live (again)
        self._lock = threading.Lock()

    def log_params(self, params: Mapping[str, Any]) -> None:
        with self._lock:
            path = self.folder / "params.json"
            _write_json(path, {**_read_json(path), **flatten_params(params)})

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        line = json.dumps({"step": int(step), "time": time.time(), "metrics": _numbers(metrics)}) + "\n"
        with self._lock, open(self.folder / METRICS_FILE, "a") as handle:
            handle.write(line)

    def log_artifact(self, path: str | Path) -> None:
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"artifact {str(path)!r}: no such file")
        with self._lock:
            (self.folder / "artifacts").mkdir(exist_ok=True)
            target = self.folder / "artifacts" / source.name
            if source.resolve() != target.resolve():
                shutil.copy2(source, target)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        with self._lock:
            path = self.folder / "tags.json"
            _write_json(path, {**_read_json(path), **{str(k): str(v) for k, v in tags.items()}})

    def close(self, status: str = "FINISHED") -> None:
        with self._lock:
            _write_json(self.folder / "status.json", {"status": _check_status(status), "time": time.time()})

    def logged(self) -> Dict[int, Set[str]]:
        """The metric names already recorded at each step."""
        return _points((int(r["step"]), r["metrics"]) for r in read_metrics(self.folder))


def _points(pairs) -> Dict[int, Set[str]]:
    points: Dict[int, Set[str]] = {}
    for step, names in pairs:
        points.setdefault(step, set()).update(names)
    return points


def read_metrics(folder: str | Path) -> List[Dict[str, Any]]:
    """The records of ``folder/metrics.jsonl``, in order; [] when there is none.

    A cut-off last line (the job died while writing it) is skipped; a broken line elsewhere raises.
    """
    path = Path(folder) / METRICS_FILE
    if not path.exists():
        return []
    return parse_records(path.read_text().splitlines(), path)


def parse_records(lines: List[str], source: str | Path, strict: bool = True) -> List[Dict[str, Any]]:
    """The metric records of ``lines`` of a metrics file. A cut-off last line is skipped; a broken line elsewhere
    raises naming ``source`` and the line, or with ``strict`` off is skipped too (a reader following a live file)."""
    records = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                if number == len(lines) or not strict:
                    continue
                raise ValueError(f"{source}: line {number} is not valid JSON ({error})") from error
    return records


def _unreachable(error: BaseException) -> bool:
    """Whether ``error`` means the tracking store did not answer (retry later), not that the request is wrong."""
    from mlflow.exceptions import MlflowException

    if isinstance(error, MlflowException):
        return error.error_code not in _REFUSED
    return isinstance(error, OSError) or type(error).__module__.split(".")[0] in ("requests", "urllib3", "sqlalchemy")


def _sqlite_path(uri: str) -> Optional[Path]:
    """The database file of a ``sqlite:///path`` URI (relative to the CWD; four slashes: absolute), else None."""
    prefix = "sqlite:///"
    path = uri[len(prefix):].split("?", 1)[0] if uri.startswith(prefix) else ""
    return Path(path).resolve() if path and path != ":memory:" else None


def _sqlite_folder(uri: str) -> Optional[Path]:
    """The folder of the database of a ``sqlite:///path`` URI."""
    database = _sqlite_path(uri)
    return database.parent if database else None


def _client(tracking_uri: Optional[str]):
    try:
        import mlflow
    except ImportError as error:  # the GPU machines have no mlflow: say what to do instead
        raise ImportError("MLflow tracking needs the 'mlflow' package; install it, or use run.tracker=jsonl "
                          "and send the run later with `proxmo sync RUN_DIR`") from error
    uri = tracking_uri or mlflow.get_tracking_uri()
    prepare_store(uri)
    return mlflow.MlflowClient(tracking_uri=uri), uri


_PREPARED: Set[str] = set()


def prepare_store(uri: str) -> None:
    """Create a SQLite tracking store's schema once, whoever comes first.

    MLflow creates a fresh SQLite store's tables (and runs its migrations) in the first process that opens
    it; two processes doing that at once fail, and may leave the store unusable. The first opening is done
    under an exclusive lock on ``<database>.lock``: the others wait, then find the schema made. Other stores
    (a server, PostgreSQL, a folder) are left to MLflow.
    """
    database = _sqlite_path(uri)
    if uri in _PREPARED or database is None:
        return
    import fcntl

    import mlflow

    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)  # creates the schema if missing
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    _PREPARED.add(uri)


class MlflowTracker(_ClosingContext):
    """One MLflow run, through ``MlflowClient`` with explicit run ids (no global active run, so trackers of
    concurrent jobs or trials can share a process).

    experiment: created if missing; with a ``sqlite:///`` URI its artifacts go to ``mlartifacts/`` next
    to the database. run_id: continue that run (a resumed job) instead of creating one; parent_run_id:
    nest under that run (``mlflow.parentRunId``).

    folder: the run folder. Given one, everything is recorded there first (:class:`JsonlTracker`) and a
    store that does not answer is retried every ``retry_s`` seconds instead of failing the job; the link
    to the MLflow run is kept in ``folder/mlflow.json``. Without one, errors raise at once.
    Attributes: ``client``, ``run_id``, ``experiment_id``, ``tracking_uri``, ``behind``.
    """

    def __init__(self, experiment: str, run_name: str | None = None, tracking_uri: str | None = None,
                 tags: Mapping[str, str] | None = None, parent_run_id: str | None = None,
                 run_id: str | None = None, folder: str | Path | None = None, retry_s: float = 30.0):
        if not experiment:
            raise ValueError("experiment: must be a non-empty name")
        if folder is not None and (tracking_uri or "").lower().startswith(("http://", "https://")):
            # A dead server must cost seconds per attempt, not MLflow's minutes of retries (unless set).
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        self.client, self.tracking_uri = _client(tracking_uri)
        self.experiment_id = self._experiment(experiment)
        run_tags = {str(k): str(v) for k, v in (tags or {}).items()}
        if parent_run_id is not None:
            self.client.get_run(parent_run_id)  # fails now, with MLflow's message, if there is no such run
            run_tags["mlflow.parentRunId"] = parent_run_id
        if run_id is not None:
            self.client.update_run(run_id, status="RUNNING")
            if run_tags:
                self.client.log_batch(run_id, tags=_tags(run_tags))
            self.run_id = run_id
        else:
            self.run_id = self.client.create_run(self.experiment_id, tags=run_tags, run_name=run_name).info.run_id
        self.local = JsonlTracker(folder) if folder is not None else None
        self.retry_s = retry_s
        self.behind = False
        self._last_try = 0.0
        self._closed = False
        if self.local is not None:
            _write_json(self.local.folder / LINK_FILE, {"tracking_uri": self.tracking_uri, "run_id": self.run_id,
                                                        "experiment_id": self.experiment_id})
            if run_id is not None:  # a resumed run: send what an earlier attempt could not
                self._catch_up()

    def _experiment(self, name: str) -> str:
        """The id of experiment ``name``, created if needed (tolerating a concurrent creator)."""
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is None:
            db_folder = _sqlite_folder(self.tracking_uri)
            location = (db_folder / "mlartifacts").as_uri() if db_folder else None
            try:
                return self.client.create_experiment(name, artifact_location=location)
            except MlflowException:
                found = self.client.get_experiment_by_name(name)
                if found is None:
                    raise
        if found.lifecycle_stage != "active":
            raise ValueError(f"experiment {name!r} is deleted; restore it or use another name")
        return found.experiment_id

    # -- sending ------------------------------------------------------------------------------
    def _send(self, request: Callable[[], None]) -> None:
        """Make ``request``; with a run folder, a store that does not answer only puts the tracker behind."""
        if self.local is None:
            request()
        elif self.behind:
            if time.monotonic() - self._last_try >= self.retry_s:
                self._catch_up()
        else:
            try:
                request()
            except Exception as error:
                if not _unreachable(error):
                    raise
                self._fall_behind(error)

    def _fall_behind(self, error: BaseException) -> None:
        if not self.behind:
            logger.warning("MLflow at %s does not answer (%s); the run goes on in %s and is sent when it answers",
                           self.tracking_uri, str(error).splitlines()[0][:200], self.local.folder)
        self.behind = True
        self._last_try = time.monotonic()

    def _catch_up(self) -> None:
        """Send what the MLflow run lacks from the run folder."""
        self._last_try = time.monotonic()
        try:
            _push(self.local.folder, self.client, self.run_id)
        except Exception as error:
            if not _unreachable(error):
                raise
            self._fall_behind(error)
        else:
            if self.behind:
                logger.warning("MLflow at %s answers again; run %s is up to date", self.tracking_uri, self.run_id)
            self.behind = False

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        if self.local is not None:
            self.local.log_params(params)
        items = [Param(k, v) for k, v in flatten_params(params).items()]
        self._send(lambda: self.client.log_batch(self.run_id, params=items))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        if self.local is not None:
            self.local.log_metrics(metrics, step)
        now = int(time.time() * 1000)
        items = [Metric(k, v, now, int(step)) for k, v in _numbers(metrics).items()]
        self._send(lambda: self.client.log_batch(self.run_id, metrics=items))

    def log_artifact(self, path: str | Path) -> None:
        if self.local is not None:
            self.local.log_artifact(path)
        self._send(lambda: self.client.log_artifact(self.run_id, str(path)))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        if self.local is not None:
            self.local.set_tags(tags)
        self._send(lambda: self.client.log_batch(self.run_id, tags=_tags(tags)))

    def logged(self) -> Dict[int, Set[str]]:
        """The metric names the run folder (else the MLflow run) holds at each step."""
        return self.local.logged() if self.local is not None else _mlflow_points(self.client, self.run_id)

    def close(self, status: str = "FINISHED") -> None:
        """End the run (a second close does nothing). With a run folder, a store that still does not answer
        leaves the MLflow run as it is and says how to send the rest."""
        _check_status(status)
        if self._closed:
            return
        self._closed = True
        if self.local is None:
            self.client.set_terminated(self.run_id, status)
            return
        unwritable = None
        try:
            self.local.close(status)
        except OSError as error:  # the folder cannot take the status (a full disk): MLflow still gets it
            unwritable = error
        self._last_try = -float("inf")
        self._send(lambda: self.client.set_terminated(self.run_id, status))
        if self.behind:
            logger.warning("MLflow run %s misses part of this run; send it when %s answers: proxmo sync %s",
                           self.run_id, self.tracking_uri, self.local.folder)
        if unwritable is not None:
            raise unwritable


def _tags(tags: Mapping[str, Any]):
    from mlflow.entities import RunTag

    return [RunTag(str(k), str(v)) for k, v in tags.items()]


def _mlflow_points(client, run_id: str) -> Dict[int, Set[str]]:
    return _points((int(m.step), [key]) for key in client.get_run(run_id).data.metrics
                   for m in client.get_metric_history(run_id, key))


def _push(folder: Path, client, run_id: str) -> Dict[str, int]:
    """Send to MLflow run ``run_id`` what it lacks of the record in ``folder`` (params, tags, metric points,
    artifacts, and the final status once the folder has one). Answers how many of each were sent."""
    from mlflow.entities import Metric, Param

    run = client.get_run(run_id)
    params = {k: v for k, v in _read_json(folder / "params.json").items() if k not in run.data.params}
    tags = {k: v for k, v in _read_json(folder / "tags.json").items() if run.data.tags.get(k) != v}
    held = _mlflow_points(client, run_id)
    points = [Metric(name, value, int(record["time"] * 1000), int(record["step"]))
              for record in read_metrics(folder)
              for name, value in record["metrics"].items() if name not in held.get(int(record["step"]), ())]
    client.log_batch(run_id, metrics=points, params=[Param(k, v) for k, v in params.items()], tags=_tags(tags))
    artifacts = sorted(p for p in (folder / "artifacts").glob("*") if p.is_file())
    if artifacts:
        client.log_artifacts(run_id, str(folder / "artifacts"))
    status = _read_json(folder / "status.json")
    if status and run.info.status != status["status"]:
        client.set_terminated(run_id, status["status"], end_time=int(status["time"] * 1000))
    return {"params": len(params), "tags": len(tags), "metric_points": len(points), "artifacts": len(artifacts),
            "status": status.get("status", "")}


def sync_run(folder: str | Path, tracking_uri: Optional[str] = None) -> Dict[str, Any]:
    """Send what MLflow lacks of the run recorded in ``folder`` (``proxmo sync``); safe to repeat.

    A folder linked to an MLflow run (``mlflow.json``) goes to that run, on ``tracking_uri`` if given (the
    store moved), else the one it was recorded with. An unlinked folder (``run.tracker=jsonl``) becomes a
    new run named after the folder, in the experiment of its config, on ``tracking_uri`` or MLflow's default.
    """
    folder = Path(folder)
    if not (folder / METRICS_FILE).is_file() and not (folder / "params.json").is_file():
        raise FileNotFoundError(f"{folder}: not a run folder (no metrics.jsonl or params.json)")
    link = _read_json(folder / LINK_FILE)
    check_tracking_server(tracking_uri or link.get("tracking_uri"))  # a dead server: seconds, not minutes
    if link:
        client, uri = _client(tracking_uri or link["tracking_uri"])
        run_id = link["run_id"]
    else:
        experiment = _read_json(folder / "params.json").get("run.experiment", "proxmo")
        tracker = MlflowTracker(experiment, run_name=folder.name, tracking_uri=tracking_uri)
        client, uri, run_id = tracker.client, tracker.tracking_uri, tracker.run_id
        _write_json(folder / LINK_FILE, {"tracking_uri": uri, "run_id": run_id, "experiment_id": tracker.experiment_id})
    sent = _push(folder, client, run_id)
    return {"run_id": run_id, "tracking_uri": uri, **sent}


def close_abandoned(folder: str | Path, status: str) -> bool:
    """End a run whose job died without closing it (killed by a signal, its machine lost): ``status.json`` and
    the linked MLflow run (if still RUNNING) get ``status``. A run that was closed, or whose folder a live job
    still writes, is left alone. Answers whether it was abandoned. A retry continues the same run (back to RUNNING)."""
    folder = Path(folder)
    _check_status(status)
    if not folder.is_dir() or (folder / "status.json").exists() or writer_alive(folder):
        return False  # ended, never started, or still written by a live job
    _write_json(folder / "status.json", {"status": status, "time": time.time()})
    link = _read_json(folder / LINK_FILE)
    if link:
        client, _ = _client(link["tracking_uri"])
        if client.get_run(link["run_id"]).info.status == "RUNNING":
            client.set_terminated(link["run_id"], status)
    return True


class SkipLogged(_ClosingContext):
    """Forwards to ``tracker`` every metric point it does not hold yet.

    A resumed run replays the iterations after its last checkpoint with the same random states, so
    those points are already recorded (with the same values); skipping them keeps one point per step.
    """

    def __init__(self, tracker: Tracker, logged: Mapping[int, Set[str]]):
        self.tracker = tracker
        self._logged = {step: set(keys) for step, keys in logged.items()}

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        fresh = {k: v for k, v in metrics.items() if k not in self._logged.get(int(step), ())}
        if fresh:
            self.tracker.log_metrics(fresh, step)

    def __getattr__(self, name: str):  # everything else goes straight through
        return getattr(self.tracker, name)

    def close(self, status: str = "FINISHED") -> None:
        self.tracker.close(status)


def skip_logged(tracker: Tracker) -> Tracker:
    """``tracker`` made to skip the points it already holds (see :class:`SkipLogged`)."""
    logged = getattr(tracker, "logged", None)
    return SkipLogged(tracker, logged()) if callable(logged) else tracker


TRACKING_SCHEMES = ("file", "sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks", "databricks-uc")
"""URI schemes an MLflow tracking store can have (a plain path means a file store)."""


def check_tracking_uri(uri: Optional[str]) -> Optional[str]:
    """Return ``uri`` if MLflow can use its scheme, else raise ValueError naming ``run.tracking_uri``."""
    if uri is None:
        return None
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri or uri.startswith("sqlite:") else ""
    if scheme.startswith("sqlite"):
        scheme = "sqlite"
    if scheme and scheme not in TRACKING_SCHEMES:
        raise ValueError(f"run.tracking_uri: scheme {scheme!r} of {uri!r} is not a tracking store; use one of "
                         f"{list(TRACKING_SCHEMES)} or a folder path")
    return uri


def check_tracking_server(uri: Optional[str] = None, timeout: float = 5.0) -> None:
    """Fail in seconds, naming the URI, when an MLflow tracking server (http/https) does not answer.

    ``uri`` defaults to ``MLFLOW_TRACKING_URI``. Other stores (a SQLite file, a folder) need no server.
    MLflow's own client would retry for minutes before failing; this asks the server's health endpoint once.
    """
    import urllib.error
    import urllib.request

    uri = uri or os.environ.get(TRACKING_URI_ENV)
    if not uri or not uri.lower().startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            pass
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise ConnectionError(f"run.tracking_uri: the MLflow server at {uri} does not answer ({reason}); start it, "
                              "or set run.tracker=jsonl and send the run later with `proxmo sync`") from None


def make_tracker(kind: str, folder: str | Path, experiment: str, run_name: str, tracking_uri: str | None = None,
                 run_id: str | None = None, parent_run_id: str | None = None,
                 tags: Mapping[str, str] | None = None) -> Tracker:
    """The tracker a job config asks for: ``"jsonl"`` (the run folder alone), ``"mlflow"`` or ``"both"`` (the
    run folder mirrored to MLflow run ``run_name``, or the existing ``run_id``; a child of ``parent_run_id``
    when given) or ``"none"``."""
    if kind == "jsonl":
        return JsonlTracker(folder)
    if kind in ("mlflow", "both"):
        return MlflowTracker(experiment, run_name=run_name, tracking_uri=tracking_uri, run_id=run_id,
                             parent_run_id=parent_run_id, tags=tags, folder=folder)
    if kind == "none":
        return NullTracker()
    raise ValueError(f"kind: unknown tracker {kind!r}; expected one of {list(TRACKER_KINDS)}")


__all__ = ["JsonlTracker", "MlflowTracker", "NullTracker", "SkipLogged", "STATUSES", "TRACKER_KINDS", "Tracker",
           "check_tracking_server", "check_tracking_uri", "close_abandoned", "flatten_params", "make_tracker", "parse_records",
           "prepare_store", "read_metrics",
           "skip_logged", "sync_run"]
